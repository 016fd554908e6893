"""Loading libscrm and declaring the C prototypes the binding calls.

Every C function the binding uses is declared in PROTOTYPES with its exact
argument and result types; `func()` hands out the declared function. The
core functions are checked at import time; engine functions (identity, ...)
are looked up on first use so that a library built without them still
serves the core API.
"""
import ctypes
import ctypes.util
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_int64, c_long, c_size_t,
                    c_uint, c_void_p)

#: The major version of libscrm this binding speaks to (SCRM_VERSION_MAJOR).
EXPECTED_MAJOR = 0

INT_MIN, INT_MAX = -(2 ** 31), 2 ** 31 - 1
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1

#: scrm_clock_fn: int64_t (*)(void *userdata)
CLOCK_FN = CFUNCTYPE(c_int64, c_void_p)
#: scrm_log_fn: void (*)(void *userdata, int level, const char *msg)
LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)
NULL_CLOCK, NULL_LOG = CLOCK_FN(), LOG_FN()  # NULL function pointers

_db = c_void_p              # scrm_db * (opaque)
_out_str = POINTER(c_void_p)  # char **out: kept as void * so it can go to scrm_free()
_out_i64 = POINTER(c_int64)
_strv = POINTER(c_char_p)   # const char *const *

CORE = {
    # common.h
    "scrm_errstr": (c_char_p, [c_int]),
    "scrm_free": (None, [c_void_p]),
    "scrm_version": (c_char_p, []),
    "scrm_version_number": (c_int, []),
    # db.h
    "scrm_schema_version": (c_int, []),
    "scrm_db_options_new": (c_int, [POINTER(c_void_p)]),
    "scrm_db_options_free": (None, [c_void_p]),
    "scrm_db_options_set_flags": (c_int, [c_void_p, c_uint]),
    "scrm_db_options_set_busy_timeout": (c_int, [c_void_p, c_int]),
    "scrm_db_options_set_clock": (c_int, [c_void_p, CLOCK_FN, c_void_p]),
    "scrm_db_options_set_log": (c_int, [c_void_p, LOG_FN, c_void_p, c_int]),
    "scrm_db_open": (c_int, [c_char_p, c_void_p, POINTER(_db)]),
    "scrm_db_close": (c_int, [_db]),
    "scrm_db_path": (c_char_p, [_db]),
    "scrm_db_set_clock": (c_int, [_db, CLOCK_FN, c_void_p]),
    "scrm_db_set_log": (c_int, [_db, LOG_FN, c_void_p, c_int]),
    "scrm_db_now": (c_int64, [_db]),
    "scrm_db_begin": (c_int, [_db]),
    "scrm_db_commit": (c_int, [_db]),
    "scrm_db_rollback": (c_int, [_db]),
    "scrm_db_batch_depth": (c_int, [_db]),
    "scrm_db_info_json": (c_int, [_db, _out_str]),
    "scrm_errmsg": (c_char_p, [_db]),
    "scrm_errcode": (c_int, [_db]),
    "scrm_db_test_alloc_fail": (c_int, [_db, c_long]),
}

IDENTITY = {
    "scrm_identity_kind_set": (c_int, [_db, c_char_p]),
    "scrm_identity_kind_get": (c_int, [_db, c_char_p, _out_str]),
    "scrm_identity_kinds_json": (c_int, [_db, _out_str]),
    "scrm_identity_normalize": (c_int, [_db, c_char_p, c_char_p, _out_str]),
    "scrm_identity_observe": (c_int, [_db, c_char_p, c_int64, _strv, _strv, c_size_t,
                                      _out_i64, _out_str]),
    "scrm_identity_observe_json": (c_int, [_db, c_char_p, _out_i64, _out_str]),
    "scrm_identity_resolve": (c_int, [_db, c_char_p, c_char_p, _out_i64]),
    "scrm_identity_canonical": (c_int, [_db, c_int64, _out_i64]),
    "scrm_identity_list_json": (c_int, [_db, c_int64, _out_str]),
    "scrm_identity_merge": (c_int, [_db, c_int64, c_int64, c_char_p, _out_i64]),
    "scrm_identity_never_merge": (c_int, [_db, c_int64, c_int64, c_char_p]),
    "scrm_identity_unmerge": (c_int, [_db, c_int64, c_char_p, _out_i64]),
    "scrm_identity_history_json": (c_int, [_db, c_int64, _out_str]),
    "scrm_identity_explain_json": (c_int, [_db, c_int64, _out_str]),
    "scrm_identity_explain_dot": (c_int, [_db, c_int64, _out_str]),
}

#: struct scrm_event of scrm/profile.h, version SCRM_EVENT_VERSION.
EVENT_VERSION = 1


class Event(Structure):
    _fields_ = [
        ("version", c_uint),
        ("key", c_char_p),
        ("type", c_char_p),
        ("channel", c_char_p),
        ("at_ms", c_int64),
        ("customer", c_int64),
        ("id_kinds", _strv),
        ("id_values", _strv),
        ("n_ids", c_size_t),
        ("has_amount", c_int),
        ("amount", c_int64),
        ("currency", c_char_p),
        ("refund_of", c_char_p),
        ("items_json", c_char_p),
        ("props_json", c_char_p),
    ]


PROFILE = {
    "scrm_profile_event_add": (c_int, [_db, POINTER(Event), _out_i64, _out_i64]),
    "scrm_profile_event_add_json": (c_int, [_db, c_char_p, _out_i64, _out_i64]),
    "scrm_profile_events_add": (c_int, [_db, POINTER(Event), c_size_t, c_uint, POINTER(c_int),
                                        POINTER(c_int64), POINTER(c_int64), POINTER(c_size_t)]),
    "scrm_profile_events_import": (c_int, [_db, c_char_p, c_size_t, _out_str]),
    "scrm_profile_events_refusal": (c_char_p, [_db, c_size_t]),
    "scrm_profile_events_json": (c_int, [_db, c_int64, c_int64, c_int, _out_str]),
    "scrm_profile_event_stats": (c_int, [_db, c_int64, c_char_p, c_int64, c_char_p,
                                         _out_i64, _out_i64]),
    "scrm_profile_set_json": (c_int, [_db, c_int64, c_char_p]),
    "scrm_profile_get": (c_int, [_db, c_int64, c_char_p, _out_str]),
    "scrm_profile_unset": (c_int, [_db, c_int64, c_char_p]),
    "scrm_profile_json": (c_int, [_db, c_int64, c_uint, _out_str]),
    "scrm_profile_mask": (c_int, [c_char_p, c_char_p, _out_str]),
    "scrm_profile_config_set": (c_int, [_db, c_char_p]),
    "scrm_profile_config_json": (c_int, [_db, _out_str]),
    "scrm_profile_rfm_refresh": (c_int, [_db, c_int64, _out_str]),
    "scrm_profile_consent_set": (c_int, [_db, c_int64, c_char_p, c_int, c_int64, c_char_p]),
    "scrm_profile_consent_get": (c_int, [_db, c_int64, c_char_p, POINTER(c_int)]),
    "scrm_profile_erase": (c_int, [_db, c_int64, c_char_p]),
    "scrm_profile_anonymize_inactive": (c_int, [_db, c_int64, c_int64, _out_i64]),
}

#: scrm_expr_tag_fn: int (*)(void *userdata, const char *tag, size_t len, int *has)
EXPR_TAG_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t, POINTER(c_int))
#: scrm_expr_events_fn: int (*)(void *userdata, int agg, const char *type, size_t len,
#:                              int64_t from_ms, int64_t to_ms, int64_t *result)
EXPR_EVENTS_FN = CFUNCTYPE(c_int, c_void_p, c_int, c_void_p, c_size_t, c_int64, c_int64,
                           POINTER(c_int64))
#: scrm_outbox_fn: int (*)(void *userdata, const char *action_json)
OUTBOX_FN = CFUNCTYPE(c_int, c_void_p, c_char_p)
NULL_EXPR_TAG, NULL_EXPR_EVENTS, NULL_OUTBOX = EXPR_TAG_FN(), EXPR_EVENTS_FN(), OUTBOX_FN()

_expr = c_void_p            # scrm_expr * (opaque), also scrm_expr_vars *, scrm_expr_env *
_pint = POINTER(c_int)

RULES = {
    # expressions
    "scrm_expr_options_new": (c_int, [POINTER(c_void_p)]),
    "scrm_expr_options_free": (None, [c_void_p]),
    "scrm_expr_options_set_limit": (c_int, [c_void_p, c_int, c_int64]),
    "scrm_expr_compile": (c_int, [c_char_p, c_void_p, POINTER(_expr)]),
    "scrm_expr_free": (None, [_expr]),
    "scrm_expr_var_count": (c_int, [_expr]),
    "scrm_expr_var_name": (c_char_p, [_expr, c_int]),
    "scrm_expr_var_index": (c_int, [_expr, c_char_p]),
    "scrm_expr_vars_new": (c_int, [_expr, POINTER(c_void_p)]),
    "scrm_expr_vars_free": (None, [c_void_p]),
    "scrm_expr_vars_set_int": (c_int, [c_void_p, c_int, c_int64]),
    "scrm_expr_vars_set_bool": (c_int, [c_void_p, c_int, c_int]),
    "scrm_expr_vars_set_str": (c_int, [c_void_p, c_int, c_char_p, c_size_t]),
    "scrm_expr_vars_set_null": (c_int, [c_void_p, c_int]),
    "scrm_expr_vars_clear": (c_int, [c_void_p, c_int]),
    "scrm_expr_vars_reset": (c_int, [c_void_p]),
    "scrm_expr_vars_set_json": (c_int, [c_void_p, c_char_p, c_char_p]),
    "scrm_expr_vars_set_env": (c_int, [c_void_p, c_void_p]),
    "scrm_expr_env_new": (c_int, [POINTER(c_void_p)]),
    "scrm_expr_env_free": (None, [c_void_p]),
    "scrm_expr_env_set_now": (c_int, [c_void_p, c_int64]),
    "scrm_expr_env_set_clock": (c_int, [c_void_p, CLOCK_FN, c_void_p]),
    "scrm_expr_env_set_functions": (c_int, [c_void_p, EXPR_TAG_FN, EXPR_EVENTS_FN, c_void_p]),
    "scrm_expr_test": (c_int, [_expr, c_void_p, _pint]),
    "scrm_expr_eval_json": (c_int, [_expr, c_void_p, _out_str]),
    "scrm_expr_eval_trace": (c_int, [_expr, c_void_p, _out_str]),
    "scrm_expr_errmsg": (c_char_p, [c_void_p]),
    "scrm_expr_error_pos": (c_int, [c_void_p, _pint, _pint]),
    # rules
    "scrm_rules_load": (c_int, [_db, c_char_p, _out_str]),
    "scrm_rules_get_json": (c_int, [_db, c_char_p, c_int64, _out_str]),
    "scrm_rules_list_json": (c_int, [_db, _out_str]),
    "scrm_rules_enable": (c_int, [_db, c_char_p, c_int]),
    "scrm_rules_remove": (c_int, [_db, c_char_p]),
    "scrm_rules_config_set": (c_int, [_db, c_char_p]),
    "scrm_rules_config_json": (c_int, [_db, _out_str]),
    "scrm_rules_tick": (c_int, [_db, c_int64, _out_str]),
    "scrm_rules_trace_json": (c_int, [_db, c_char_p, c_int64, c_int64, c_int, c_uint, _out_str]),
    "scrm_rules_trace_prune": (c_int, [_db, c_int64, _out_i64]),
    # outbox
    "scrm_outbox_take": (c_int, [_db, c_int, c_int64, _out_str]),
    "scrm_outbox_ack": (c_int, [_db, c_int64]),
    "scrm_outbox_fail": (c_int, [_db, c_int64, c_char_p, c_int]),
    "scrm_outbox_retry": (c_int, [_db, c_int64]),
    "scrm_outbox_list_json": (c_int, [_db, c_char_p, c_int64, c_int, _out_str]),
    "scrm_outbox_set_handler": (c_int, [_db, OUTBOX_FN, c_void_p]),
    "scrm_outbox_deliver": (c_int, [_db, c_int, _pint]),
    # tags
    "scrm_tags_group_set": (c_int, [_db, c_char_p]),
    "scrm_tags_define": (c_int, [_db, c_char_p]),
    "scrm_tags_list_json": (c_int, [_db, _out_str]),
    "scrm_tag_add": (c_int, [_db, c_int64, c_char_p, c_char_p]),
    "scrm_tag_remove": (c_int, [_db, c_int64, c_char_p, c_char_p]),
    "scrm_tag_has": (c_int, [_db, c_int64, c_char_p, _pint]),
    "scrm_tags_customer_json": (c_int, [_db, c_int64, _out_str]),
    "scrm_tags_history_json": (c_int, [_db, c_int64, c_int, _out_str]),
    "scrm_tags_refresh": (c_int, [_db, c_char_p, _out_str]),
    # segments
    "scrm_segment_count": (c_int, [_db, c_char_p, _out_i64]),
    "scrm_segment_ids_json": (c_int, [_db, c_char_p, c_int64, c_int, _out_str]),
    "scrm_segment_explain_json": (c_int, [_db, c_char_p, _out_str]),
}

PROTOTYPES = {**CORE, **IDENTITY, **PROFILE, **RULES}


def _load():
    """Load the shared library: $SCRM_LIBRARY, else libscrm.so.1, else find_library."""
    explicit = os.environ.get("SCRM_LIBRARY")
    if explicit:
        # An explicit choice is never silently replaced by another copy.
        try:
            return ctypes.CDLL(explicit), explicit
        except OSError as e:
            raise ImportError(f"scrm: cannot load libscrm from SCRM_LIBRARY={explicit!r}: {e}") from None
    tried = []
    for name in ("libscrm.so.1", ctypes.util.find_library("scrm")):
        if name is None:
            tried.append("ctypes.util.find_library('scrm'): not found")
            continue
        try:
            return ctypes.CDLL(name), name
        except OSError as e:
            tried.append(f"{name}: {e}")
    raise ImportError("scrm: cannot load libscrm (" + "; ".join(tried) + "). Install libscrm or "
                      "set SCRM_LIBRARY to the path of libscrm.so.1, e.g. build/lib/libscrm.so.1")


lib, path = _load()
_funcs = {}


def func(name):
    """The C function `name` of the loaded library, with its prototype declared.

    Raises NotImplementedError if the library does not export it (a build
    without that engine, or an older 0.x library).
    """
    f = _funcs.get(name)
    if f is None:
        restype, argtypes = PROTOTYPES[name]
        try:
            f = getattr(lib, name)
        except AttributeError:
            raise NotImplementedError(
                f"scrm: {name}() is not exported by {path}; "
                "this build of libscrm lacks it") from None
        f.restype, f.argtypes = restype, argtypes
        _funcs[name] = f
    return f


try:
    for _name in CORE:
        func(_name)
except NotImplementedError as e:
    raise ImportError(f"scrm: {path} is not a usable libscrm: {e}") from None


def version():
    """Run-time version string of the loaded library."""
    return func("scrm_version")().decode()


_number = func("scrm_version_number")()
if _number // 10000 != EXPECTED_MAJOR:
    raise ImportError(f"scrm: {path} is libscrm {version()} (major {_number // 10000}); "
                      f"this binding needs major version {EXPECTED_MAJOR}")


def errstr(code):
    """Static English name of a result code."""
    return func("scrm_errstr")(code).decode()


def errmsg(handle):
    """Last error message of a handle (None: this thread's handle-less slot)."""
    return func("scrm_errmsg")(handle).decode("utf-8", "replace")


def free(ptr):
    """Release memory the library handed out (an int address or None)."""
    func("scrm_free")(ptr)


def take_string(ptr):
    """Copy the NUL-terminated UTF-8 string at `ptr` into a str and release it."""
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode("utf-8")
    finally:
        free(ptr)


def cstr(value, what="string", optional=False):
    """Encode a str as a NUL-terminated UTF-8 C string (None is NULL if `optional`)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{what} contains a NUL character: {value!r}")
    return value.encode("utf-8")
