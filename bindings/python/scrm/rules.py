"""The rule engine (include/scrm/rules.h): compiled expressions, and as methods
of Database rules, tick, the decision trace, the outbox, tags and segments.

scrm.Expr needs no database: compile once, evaluate many times::

    e = scrm.Expr('event.amount >= 10000 && profile.level == "gold"')
    e.test({"event": {"amount": 12000}, "profile": {"level": "gold"}})   # True

The rest are Database methods; doc/rules.md tells the story.
"""
import ctypes
import json
import threading
import weakref
from collections.abc import Mapping
from ctypes import byref, c_int, c_int64, c_void_p

from . import _lib
from ._args import duration_arg, id_arg, json_text, optional_time, time_arg
from .errors import Error, EvalError, InvalidError, MisuseError, from_code, int_arg

__all__ = ["Expr", "RulesMixin", "OutboxIterator", "EXPR_LIMITS"]

#: Names of the compile limits accepted by Expr(limits=...) (SCRM_EXPR_LIMIT_*).
EXPR_LIMITS = {"source": 1, "depth": 2, "nodes": 3, "string": 4, "cost": 5,
               "regex_match": 6, "regex_depth": 7, "regex_heap": 8}

_OK, _ERROR, _EVAL = 0, 1, 17
_AGG_COUNT, _AGG_SUM = 1, 2
_TRACE_STEPS = 0x1
_FUNCTIONS = ("has_tag", "count", "sum")
_CLOCK = object()   # Expr's environment follows the real-time clock
_ERROR_MAX = 1024   # bytes of outbox last_error the library keeps


def _with_position(err, handle):
    """Attach .line and .column (1-based; None when the error has none)."""
    line, column = c_int(), c_int()
    if _lib.func("scrm_expr_error_pos")(handle, byref(line), byref(column)) == _OK:
        err.line, err.column = line.value, column.value
    return err


def _compile_error(rc):
    return _with_position(from_code(rc, _lib.errmsg(None)), None)


def _error_text(exc):
    """An exception as outbox last_error text: "Type: message", at most 1024 bytes."""
    text = f"{type(exc).__name__}: {exc}".replace("\0", " ")
    return text.encode("utf-8", "replace")[:_ERROR_MAX].decode("utf-8", "ignore")


class _HostCalls:
    """The Python host functions of one Expr evaluation, behind C trampolines.

    Kept apart from the Expr so that the trampolines do not make a reference
    cycle with it (an Expr is then freed as soon as it is unreferenced).
    """

    def __init__(self):
        self.functions = {}
        self.pending = None
        self.tag_fn = _lib.EXPR_TAG_FN(self._has_tag)
        self.events_fn = _lib.EXPR_EVENTS_FN(self._events)

    def _stash(self, exc):
        if self.pending is None:
            self.pending = exc

    def _has_tag(self, _ud, tag, length, has):
        try:
            name = ctypes.string_at(tag, length).decode("utf-8")
            has[0] = 1 if self.functions["has_tag"](name) else 0
            return _OK
        except BaseException as e:  # noqa: B902 - must not unwind through C
            self._stash(e)
            return _ERROR

    def _events(self, _ud, agg, type_, length, from_ms, to_ms, result):
        name = "count" if agg == _AGG_COUNT else "sum"
        try:
            fn = self.functions.get(name)
            if fn is None:
                raise EvalError(f"{name}: no Python function given (functions={{{name!r}: ...}})")
            kind = ctypes.string_at(type_, length).decode("utf-8")
            result[0] = int_arg(fn(kind, from_ms, to_ms), _lib.INT64_MIN, _lib.INT64_MAX,
                                f"result of {name}()")
            return _OK
        except BaseException as e:  # noqa: B902 - must not unwind through C
            self._stash(e)
            return _EVAL if isinstance(e, Error) and e.code == _EVAL else _ERROR

    def take_pending(self):
        exc, self.pending = self.pending, None
        return exc


class Expr:
    """A compiled expression of the rule language (doc/expressions.md); no database needed.

        e = scrm.Expr("event.amount >= 10000 && has_tag('vip')", limits={"cost": 5000})
        e.vars                                    # ('event.amount',)
        e.eval({"event": {"amount": 12000}}, functions={"has_tag": lambda t: t == "vip"})

    Compile errors raise the exception of their code (ParseError, LimitError,
    RangeError, InvalidError) with the library's message ("1:14: expected
    ...") and the 1-based ``line`` and ``column`` as attributes.

    `limits` maps names of EXPR_LIMITS ("source", "depth", "nodes",
    "string", "cost", "regex_match", "regex_depth", "regex_heap") to values;
    an unknown name raises InvalidError, a bad value RangeError.

    Bindings: a dict of paths to values, nested (``{"event": {"amount": 5}}``)
    or dotted (``{"event.amount": 5}``), or both. Every evaluation starts
    from nothing bound: a path not given is *missing* (null, has() false), a
    path given as None is null but present. int, bool, str and None are bound
    through the typed setters; lists, dicts at a path the expression reads
    (an opaque object), and other values go through JSON (numbers must be
    integers: a float raises InvalidError). Paths the expression does not
    read are ignored.

    `now` (ms since the epoch or a datetime) fixes now(); None follows the
    real-time clock. `functions` maps "has_tag" to callable(tag) -> bool and
    "count" / "sum" to callable(type, from_ms, to_ms) -> int; an exception
    one raises fails the evaluation and is re-raised (chained to the
    library's error). Without one, the expression function fails with
    EvalError.

    Evaluation errors raise EvalError, RangeError or LimitError with
    ``line`` and ``column``. An Expr may be used from several threads; its
    evaluations are serialized (compile one per thread for parallelism). It
    holds C memory: close() it or use it as a context manager; it is also
    freed when garbage collected.
    """

    def __init__(self, src, limits=None):
        self._expr = self._vars = self._env = None
        self._lock = threading.RLock()
        self._busy = False
        self.source = src
        csrc = _lib.cstr(src, "expression")
        f = _lib.func
        opts = c_void_p()
        if limits:
            if not isinstance(limits, Mapping):
                raise TypeError(f"limits must be a dict, not {type(limits).__name__}")
            rc = f("scrm_expr_options_new")(byref(opts))
            if rc:
                raise from_code(rc, _lib.errmsg(None))
        try:
            for name, value in (limits or {}).items():
                number = EXPR_LIMITS.get(name)
                if number is None:
                    raise InvalidError(f"unknown expression limit {name!r} (known: "
                                       f"{', '.join(EXPR_LIMITS)})")
                rc = f("scrm_expr_options_set_limit")(
                    opts, number, int_arg(value, _lib.INT64_MIN, _lib.INT64_MAX, f"limit {name}"))
                if rc:
                    raise from_code(rc, f"limit {name}: " + _lib.errmsg(None))
            handle = c_void_p()
            rc = f("scrm_expr_compile")(csrc, opts, byref(handle))
        finally:
            f("scrm_expr_options_free")(opts)
        if rc:
            raise _compile_error(rc)
        self._expr = handle.value
        vars_, env = c_void_p(), c_void_p()
        rc = f("scrm_expr_vars_new")(self._expr, byref(vars_))
        self._vars = vars_.value
        if not rc:
            rc = f("scrm_expr_env_new")(byref(env))
            self._env = env.value
        if rc:
            err = from_code(rc, _lib.errmsg(None))
            self._free()
            raise err
        f("scrm_expr_vars_set_env")(self._vars, self._env)
        count = f("scrm_expr_var_count")(self._expr)
        #: The field paths the expression reads, in slot order.
        self.vars = tuple(f("scrm_expr_var_name")(self._expr, i).decode("utf-8")
                          for i in range(count))
        self._slots = {path: i for i, path in enumerate(self.vars)}
        self._prefixes = frozenset(p.rsplit(".", k)[0] for p in self.vars
                                   for k in range(1, p.count(".") + 1))
        self._keep = ()          # str bytes borrowed by the activation
        self._now = None         # what the environment's clock is set to
        self._calls = None       # _HostCalls, once functions were given
        self._fn_set = (False, False)
        # The setters, bound once: the hot path is a dict lookup and a C call.
        self._set_int = f("scrm_expr_vars_set_int")
        self._set_bool = f("scrm_expr_vars_set_bool")
        self._set_str = f("scrm_expr_vars_set_str")
        self._set_null = f("scrm_expr_vars_set_null")
        self._set_json = f("scrm_expr_vars_set_json")
        self._reset = f("scrm_expr_vars_reset")

    # ------------------------------------------------------------ lifetime

    def close(self):
        """Free the compiled expression and its activation. Idempotent."""
        with self._lock:
            if self._busy:
                raise MisuseError("Expr closed from one of its own host functions")
            self._free()

    def _free(self):
        f = _lib.func
        vars_, env, expr = self._vars, self._env, self._expr
        self._vars = self._env = self._expr = None
        if vars_:
            f("scrm_expr_vars_free")(vars_)   # before the env and expr it uses
        if env:
            f("scrm_expr_env_free")(env)
        if expr:
            f("scrm_expr_free")(expr)

    @property
    def closed(self):
        """True once close() was called."""
        return not self._expr

    def __enter__(self):
        if not self._expr:
            raise MisuseError("expression is closed")
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        if getattr(self, "_expr", None) or getattr(self, "_vars", None):
            try:
                self._free()
            except Exception:  # noqa: BLE001 - interpreter shutdown: the process frees it
                pass

    def __repr__(self):
        return f"<scrm.Expr {self.source!r}{' closed' if self.closed else ''}>"

    # ------------------------------------------------------------ binding

    def _bind_one(self, path, value, keep):
        slot = self._slots.get(path)
        if slot is not None:
            if value is None:
                rc = self._set_null(self._vars, slot)
            elif value is True or value is False:
                rc = self._set_bool(self._vars, slot, 1 if value else 0)
            elif isinstance(value, int):
                rc = self._set_int(self._vars, slot,
                                   int_arg(value, _lib.INT64_MIN, _lib.INT64_MAX, path))
            elif isinstance(value, str):
                data = value.encode("utf-8")
                keep.append(data)   # borrowed by the library until the next binding
                rc = self._set_str(self._vars, slot, data, len(data))
            else:
                text = json.dumps(value, ensure_ascii=False, allow_nan=False)
                rc = self._set_json(self._vars, _lib.cstr(path, "path"), text.encode("utf-8"))
            if rc:
                raise from_code(rc, f"{path}: {_lib.errmsg(None)}")
        elif path in self._prefixes and isinstance(value, Mapping):
            for name, member in value.items():
                if not isinstance(name, str):
                    raise TypeError(f"binding names must be str, not {type(name).__name__} "
                                    f"(under {path!r})")
                self._bind_one(path + "." + name, member, keep)
        # anything else binds no path the expression reads

    def _prepare(self, bindings, now, functions):
        """Bind for one evaluation (called with the lock held)."""
        if not self._expr:
            raise MisuseError("expression is closed")
        if self._busy:
            raise MisuseError("Expr evaluated again from one of its own host functions")
        f = _lib.func
        if now is None:
            if self._now is not _CLOCK:
                f("scrm_expr_env_set_clock")(self._env, _lib.NULL_CLOCK, None)
                self._now = _CLOCK
        else:
            ms = time_arg(now, "now")
            if self._now != ms:
                f("scrm_expr_env_set_now")(self._env, ms)
                self._now = ms
        if functions:
            if not isinstance(functions, Mapping):
                raise TypeError(f"functions must be a dict, not {type(functions).__name__}")
            for name, fn in functions.items():
                if name not in _FUNCTIONS:
                    raise TypeError(f"unknown host function {name!r} (known: has_tag, count, sum)")
                if not callable(fn):
                    raise TypeError(f"host function {name!r} is not callable")
            if self._calls is None:
                self._calls = _HostCalls()
            self._calls.functions = functions
            want = ("has_tag" in functions, "count" in functions or "sum" in functions)
        else:
            want = (False, False)
        if want != self._fn_set:
            c = self._calls
            f("scrm_expr_env_set_functions")(self._env,
                                             c.tag_fn if want[0] else _lib.NULL_EXPR_TAG,
                                             c.events_fn if want[1] else _lib.NULL_EXPR_EVENTS,
                                             None)
            self._fn_set = want
        self._reset(self._vars)
        self._keep = ()
        if bindings:
            if not isinstance(bindings, Mapping):
                raise TypeError(f"bindings must be a dict, not {type(bindings).__name__}")
            keep = []
            try:
                for path, value in bindings.items():
                    if not isinstance(path, str):
                        raise TypeError(f"binding names must be str, not {type(path).__name__}")
                    self._bind_one(path, value, keep)
            except BaseException:
                self._reset(self._vars)
                raise
            self._keep = keep

    def _run(self, name, bindings, now, functions, out):
        with self._lock:
            self._prepare(bindings, now, functions)
            self._busy = True
            try:
                rc = _lib.func(name)(self._expr, self._vars, byref(out))
            finally:
                self._busy = False
            err = None
            if rc:
                msg = _lib.func("scrm_expr_errmsg")(self._vars).decode("utf-8", "replace")
                err = _with_position(from_code(rc, msg), self._vars)
            pending = self._calls.take_pending() if self._calls else None
        return err, pending

    @staticmethod
    def _raise(err, pending):
        if pending is not None:
            if err is not None:
                pending.__context__ = err
            raise pending
        if err is not None:
            raise err

    # ------------------------------------------------------------ evaluating

    def eval(self, bindings=None, now=None, functions=None):
        """Evaluate and return the value: int, str, bool, None, list ({} for an object).

        Raises EvalError, RangeError, LimitError (with .line/.column), or what
        a host function raised.
        """
        out = c_void_p()
        err, pending = self._run("scrm_expr_eval_json", bindings, now, functions, out)
        text = _lib.take_string(out.value)
        self._raise(err, pending)
        return json.loads(text)

    def test(self, bindings=None, now=None, functions=None):
        """True iff the value is exactly true (null, false, anything else: False).

        Raises as eval().
        """
        holds = c_int()
        err, pending = self._run("scrm_expr_test", bindings, now, functions, holds)
        self._raise(err, pending)
        return bool(holds.value)

    def trace(self, bindings=None, now=None, functions=None):
        """Evaluate with every sub-expression's value, as a dict::

            {"ok": True, "value": V, "cost": N,
             "steps": [{"depth": 0, "pos": "1:1", "expr": "...", "value": V}, ...]}

        A failed evaluation is not raised but reported: ``"ok": False`` with
        "code" and "error", and the failing step has "error". Raises only
        MisuseError, NoMemoryError, or what a host function raised.
        """
        out = c_void_p()
        err, pending = self._run("scrm_expr_eval_trace", bindings, now, functions, out)
        text = _lib.take_string(out.value)
        if text is None:
            self._raise(err, pending)
        self._raise(None, pending)
        return json.loads(text)


class OutboxIterator:
    """Iterates over ready outbox actions; made by Database.outbox(), which see."""

    def __init__(self, db, max, lease, ack):
        self._db = db
        self._max = int_arg(max or 0, 0, _lib.INT64_MAX, "max")
        self._lease = duration_arg(lease, "lease")
        self._ack = ack
        self._current = None
        self._taken = 0
        self._done = False

    def __iter__(self):
        return self

    def __next__(self):
        if self._current is not None and self._ack:
            self.ack()   # the body completed normally: it asks for the next one
        self._current = None
        if self._done or (self._max and self._taken >= self._max):
            self._done = True
            raise StopIteration
        batch = self._db.outbox_take(1, self._lease)
        if not batch:
            self._done = True
            raise StopIteration
        self._taken += 1
        self._current = batch[0]
        return self._current

    @property
    def current(self):
        """The action the loop body is handling (None between actions)."""
        return self._current

    def ack(self):
        """Acknowledge the current action now (it is then not settled again)."""
        action, self._current = self._current, None
        if action is not None:
            self._db.outbox_ack(action["id"])

    def fail(self, error=None, permanent=False):
        """Fail the current action now with `error` text (it is then not settled again)."""
        action, self._current = self._current, None
        if action is not None:
            self._db.outbox_fail(action["id"], error, permanent)

    def close(self, exc=None):
        """Stop: a current action is failed (with `exc`'s message if given) when
        acknowledging is on. Actions not yet taken stay ready."""
        self._done = True
        if self._current is not None and self._ack:
            self.fail(_error_text(exc) if exc is not None else
                      "the loop over db.outbox() was left before this action completed "
                      "(an exception or break in its body)")
        self._current = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self._done = True
        if self._current is not None and self._ack:
            if exc is None:
                self.ack()
            else:
                self.fail(_error_text(exc))
        self._current = None
        return False

    def __del__(self):
        if getattr(self, "_current", None) is not None and self._ack:
            try:
                self.close()
            except Exception:  # noqa: BLE001 - a finalizer must not raise; the lease runs out
                pass


class RulesMixin:
    """Rules, tick, trace, outbox, tags and segments as methods of Database
    (see scrm/rules.h for the exact semantics)."""

    # ------------------------------------------------------------ rules

    def rules_load(self, rules):
        """Load (create or replace) one rule (a dict), several (a list) or JSON
        text, all or nothing. Returns the report
        ``{"rules": [{"id", "version", "changed", "enabled"}, ...]}``: a changed
        definition gets version + 1, an unchanged one keeps its version.

        Raises ParseError (malformed JSON, or a condition that does not
        compile; the message names rule, member, line and column),
        InvalidError, RangeError, NotFoundError (undefined tag or cap group),
        LimitError.
        """
        return self._invoke_json("scrm_rules_load", _lib.cstr(json_text(rules), "rules"))

    def rules_get(self, id, version=0):
        """A rule as a dict: its definition with version, current_version,
        enabled and removed; `version` 0 is the current one. NotFoundError
        for an unknown rule or version."""
        return self._invoke_json("scrm_rules_get_json", _lib.cstr(id, "rule id"),
                                 int_arg(version, _lib.INT64_MIN, _lib.INT64_MAX, "version"))

    def rules_list(self):
        """The rules not removed, in priority order: a list of dicts with id,
        version, enabled, priority, updated_at, name, trigger, on, group."""
        return self._invoke_json("scrm_rules_list_json")

    def rules_enable(self, id, enabled=True):
        """Enable (or with enabled=False disable) a rule; NotFoundError if unknown."""
        self._invoke("scrm_rules_enable", _lib.cstr(id, "rule id"), 1 if enabled else 0)

    def rules_disable(self, id):
        """Disable a rule (kept with its version); NotFoundError if unknown."""
        self.rules_enable(id, False)

    def rules_remove(self, id):
        """Remove a rule: it stops acting; its versions, trace and outbox actions
        stay. NotFoundError if unknown."""
        self._invoke("scrm_rules_remove", _lib.cstr(id, "rule id"))

    def rules_config(self):
        """The rule engine configuration with defaults filled in (default_tz,
        quiet_hours, groups, outbox, trace)."""
        return self._invoke_json("scrm_rules_config_json")

    def rules_config_set(self, changes=None, /, **more):
        """Change the configuration from a dict (or JSON text) and/or keywords;
        members not given keep their values, a group given as None is removed.
        Returns the new configuration::

            db.rules_config_set(groups={"marketing": {"max": 3, "per": "7d"}},
                                outbox={"backoff": "1m"})

        Raises ParseError, InvalidError, RangeError, ConflictError (removing a
        group a rule uses).
        """
        if isinstance(changes, str):
            if more:
                raise TypeError("rules_config_set() takes JSON text or a dict/keywords, not both")
            text = changes
        else:
            if changes is not None and not isinstance(changes, Mapping):
                raise TypeError(f"changes must be a dict, not {type(changes).__name__}")
            text = json.dumps({**(changes or {}), **more}, ensure_ascii=False)
        self._invoke("scrm_rules_config_set", _lib.cstr(text, "configuration"))
        return self.rules_config()

    def tick(self, now=None):
        """Run the time-based work due at `now` (ms or datetime; None: the
        database's clock): absence waits run out, date rules, deferred firings.
        Returns ``{"now", "scheduled", "absence", "date", "deferred", "dropped"}``.
        Raises RangeError (now out of range) or BusyError."""
        return self._invoke_json("scrm_rules_tick", optional_time(now, "now"))

    # ------------------------------------------------------------ trace

    def trace(self, customer=0, rule=None, since=0, limit=0, steps=False):
        """Decision trace records, newest first, as a list of dicts (rule,
        version, customer, at, trigger, instance, event, outcome, detail,
        inputs; with steps=True also "condition", the replayed
        sub-expression trace).

        customer 0 means any (else that customer and every id merged into
        it); rule None any; since (ms or datetime) the earliest time; limit 0
        all. Raises NotFoundError (unknown rule or customer), RangeError.
        """
        return self._invoke_json("scrm_rules_trace_json",
                                 _lib.cstr(rule, "rule id", optional=True),
                                 id_arg(customer or 0), optional_time(since, "since"),
                                 int_arg(limit, _lib.INT_MIN, _lib.INT_MAX, "limit"),
                                 _TRACE_STEPS if steps else 0)

    def trace_prune(self, before):
        """Delete trace records older than `before` (ms or datetime); return how many."""
        deleted = c_int64()
        self._invoke("scrm_rules_trace_prune", time_arg(before, "before"), byref(deleted))
        return deleted.value

    # ------------------------------------------------------------ outbox

    def outbox_take(self, max=10, lease=None):
        """Take (lease) up to `max` (1..1000) ready actions, oldest due first,
        for `lease` (ms or timedelta; None: the configured lease, 5 minutes by
        default). Returns a list of action dicts (id, key, action, params,
        customer, rule, version, trigger, state, attempt, created_at,
        lease_until, last_error), possibly empty. Raises RangeError."""
        return self._invoke_json("scrm_outbox_take", int_arg(max, _lib.INT_MIN, _lib.INT_MAX, "max"),
                                 duration_arg(lease, "lease"))

    def outbox_ack(self, id):
        """Acknowledge an action as performed (again: no-op). NotFoundError;
        StateError when it is dead (retry it first)."""
        self._invoke("scrm_outbox_ack", id_arg(id, "action id"))

    def outbox_fail(self, id, error=None, permanent=False):
        """Report that performing an action failed: offered again after the
        backoff, or dead when `permanent` or out of attempts. `error` (text up
        to 1024 bytes) is kept as last_error. NotFoundError; StateError (done
        or dead); InvalidError (error text)."""
        self._invoke("scrm_outbox_fail", id_arg(id, "action id"),
                     _lib.cstr(error, "error", optional=True), 1 if permanent else 0)

    def outbox_retry(self, id):
        """Make a dead or failed action ready at once, attempts reset.
        NotFoundError; StateError (neither dead nor failed)."""
        self._invoke("scrm_outbox_retry", id_arg(id, "action id"))

    def outbox_list(self, state=None, customer=0, limit=0):
        """Actions newest first: only `state` ("pending", "leased", "failed",
        "done", "dead"; None: any), only `customer` (0: any), at most `limit`
        (0: all). InvalidError for an unknown state."""
        return self._invoke_json("scrm_outbox_list_json", _lib.cstr(state, "state", optional=True),
                                 id_arg(customer or 0),
                                 int_arg(limit, _lib.INT_MIN, _lib.INT_MAX, "limit"))

    def outbox_set_handler(self, handler):
        """Install `handler(action: dict)` for immediate delivery (None removes it).

        Right after a call of this Database commits host actions (an event
        stored, a tick, the end of a batch), before that call returns, each
        ready action is taken and handed to `handler`: returning normally
        acknowledges it; raising an exception fails it (retried after the
        backoff) with "ExceptionType: message" kept as its last_error — the
        exception does not propagate, except KeyboardInterrupt and other
        non-Exception exceptions, which are re-raised after the call once
        the action is failed. The handler may call this Database (actions
        those calls produce are delivered by the same loop) but not close
        it, replace the handler, or deliver. It is kept referenced here as
        long as it is installed.
        """
        if handler is not None and not callable(handler):
            raise TypeError("handler must be a callable(action) or None")
        if self._in_handler:
            raise MisuseError("outbox_set_handler() called from the outbox handler")
        tramp = self._make_outbox_handler(handler) if handler is not None else None
        self._invoke("scrm_outbox_set_handler", tramp or _lib.NULL_OUTBOX, None)
        self._outbox_handler = tramp   # only now may the old trampoline die

    def _make_outbox_handler(self, handler):
        ref = weakref.ref(self)   # no cycle: an unclosed Database is still finalized

        def trampoline(_userdata, action_json):
            db = ref()
            if db is None:
                return _ERROR
            action = None
            saved, db._in_call = db._in_call, False   # the handler may call the database
            db._in_handler += 1
            try:
                action = json.loads(action_json.decode("utf-8"))
                handler(action)
                return _OK
            except BaseException as e:  # noqa: B902 - must not unwind through C
                if action is not None:
                    db._handler_failures.append((action["id"], _error_text(e)))
                if not isinstance(e, Exception):
                    db._hooks._stash(e)
                return _ERROR
            finally:
                db._in_handler -= 1
                db._in_call = saved
        return _lib.OUTBOX_FN(trampoline)

    def _settle_handler_failures(self):
        """Write the messages of the handler's exceptions as last_error.

        The library fails an action whose callback returned an error with
        "delivery callback returned N"; failing it again (same attempt,
        hence the same backoff and dead-or-not) replaces that by the
        exception's message. An action that became dead keeps the library's.
        """
        failures, self._handler_failures = self._handler_failures, []
        fail = _lib.func("scrm_outbox_fail")
        for action_id, message in failures:
            fail(self._handle, action_id, message.encode("utf-8"), 0)

    def outbox_deliver(self, max=0):
        """Hand ready actions to the handler now (retries, actions written by
        other handles); at most `max` (0: until none is ready). Returns how
        many were acknowledged. MisuseError without a handler, inside a batch
        or from the handler."""
        delivered = c_int()
        self._invoke("scrm_outbox_deliver", int_arg(max, _lib.INT_MIN, _lib.INT_MAX, "max"),
                     byref(delivered))
        return delivered.value

    def outbox(self, max=10, lease=None, ack=True):
        """Iterate over ready actions, taking (leasing) them one at a time,
        at most `max` in all (0 or None: until none is ready)::

            for action in db.outbox():
                perform(action)

        With ack=True (the default), exactly:

        - when the loop asks for the next action (the body completed
          normally, including `continue`), the previous one is acknowledged;
          the loop ending acknowledges the last;
        - when the body raises, the action is failed (offered again after
          the backoff) and the exception propagates. The bare `for` form
          learns this only when the iterator is discarded (at once in
          CPython) and cannot tell an exception from `break`: leaving the
          loop early either way fails the current action, with a generic
          last_error. The `with` form is exact — it fails with the
          exception's "Type: message" and acknowledges on `break`::

              with db.outbox() as actions:
                  for action in actions:
                      perform(action)

        - to settle the current action yourself, call actions.ack() or
          actions.fail(error, permanent) on the iterator (not
          db.outbox_fail(), which the iterator would not know about);
        - actions not reached stay ready (they were not taken).

        With ack=False nothing is settled automatically: call
        db.outbox_ack()/outbox_fail(); an action left unsettled is offered
        again when its lease runs out.
        """
        return OutboxIterator(self, max, lease, ack)

    # ------------------------------------------------------------ tags

    @staticmethod
    def _definition(definition, fields, what):
        if isinstance(definition, str):
            if fields:
                raise TypeError(f"{what}: JSON text or a dict/keywords, not both")
            return _lib.cstr(definition, what)
        if definition is not None and not isinstance(definition, Mapping):
            raise TypeError(f"{what} must be a dict, not {type(definition).__name__}")
        return _lib.cstr(json.dumps({**(definition or {}), **fields}, ensure_ascii=False), what)

    def tags_group_set(self, definition=None, /, **fields):
        """Create or change a tag group from a dict, JSON text or keywords::

            db.tags_group_set(name="level", exclusive=True, description="membership level")

        Raises ParseError, InvalidError, ConflictError (becoming exclusive
        while a customer holds several of its tags)."""
        self._invoke("scrm_tags_group_set", self._definition(definition, fields, "group"))

    def tags_define(self, definition=None, /, **fields):
        """Create or change a tag (``name``, optional ``group``, ``description``),
        or a rule tag with ``expr`` (an expression over the profile)::

            db.tags_define(name="gold", group="level")
            db.tags_define(name="repeat", expr="profile.figures.orders >= 2")

        A new rule tag expression evaluates nobody: call tags_refresh().
        Raises ParseError (also the expression: "expr: L:C: ..."),
        InvalidError, NotFoundError (group), ConflictError."""
        self._invoke("scrm_tags_define", self._definition(definition, fields, "tag"))

    def tags_list(self):
        """Groups and tags: ``{"groups": [{"name", "exclusive", "description"}],
        "tags": [{"name", "group", "kind", "description", "customers", ...}]}``."""
        return self._invoke_json("scrm_tags_list_json")

    def tag_add(self, customer, tag, actor):
        """Give a customer a tag, recorded with `actor` as source (no change if
        held). NotFoundError (tag or customer), StateError (erased customer or
        a rule tag), InvalidError (actor)."""
        self._invoke("scrm_tag_add", id_arg(customer), _lib.cstr(tag, "tag"),
                     _lib.cstr(actor, "actor"))

    def tag_remove(self, customer, tag, actor):
        """Take a tag from a customer (no change if not held); raises as tag_add()."""
        self._invoke("scrm_tag_remove", id_arg(customer), _lib.cstr(tag, "tag"),
                     _lib.cstr(actor, "actor"))

    def tag_has(self, customer, tag):
        """Whether the customer holds the tag (False for an unknown tag).
        NotFoundError for an unknown customer."""
        has = c_int()
        self._invoke("scrm_tag_has", id_arg(customer), _lib.cstr(tag, "tag"), byref(has))
        return bool(has.value)

    def tags_customer(self, customer):
        """A customer's tags: list of ``{"tag", "group", "at", "source"}``."""
        return self._invoke_json("scrm_tags_customer_json", id_arg(customer))

    def tags_history(self, customer, limit=0):
        """A customer's tag changes, newest first: list of ``{"id", "customer",
        "tag", "op", "at", "source", "reason"}``; `limit` 0 is all. ``id`` is
        None for an addition made by :meth:`tags_refresh` to a tag the
        customer still holds."""
        return self._invoke_json("scrm_tags_history_json", id_arg(customer),
                                 int_arg(limit, _lib.INT_MIN, _lib.INT_MAX, "limit"))

    def tags_refresh(self, tag=None):
        """Re-evaluate one rule tag (or all) for every customer. Returns
        ``{"tags": {name: {"holders", "added", "removed", "version"}},
        "customers", "seconds"}``. NotFoundError (no such tag), InvalidError
        (a manual tag)."""
        return self._invoke_json("scrm_tags_refresh", _lib.cstr(tag, "tag", optional=True))

    # ------------------------------------------------------------ segments

    def segment_count(self, expr):
        """Number of customers for which `expr` (over the profile) is true now.
        Raises ParseError, InvalidError, LimitError."""
        count = c_int64()
        self._invoke("scrm_segment_count", _lib.cstr(expr, "expression"), byref(count))
        return count.value

    def segment_ids(self, expr, page=10000):
        """The customers of a segment in ascending id order, as a generator
        fetching `page` ids (1..100000) per call. The expression is checked,
        and the first page fetched, at once (errors raise here, as
        segment_count()); each later page is evaluated as of when it is
        fetched."""
        cexpr = _lib.cstr(expr, "expression")
        page = int_arg(page, _lib.INT_MIN, _lib.INT_MAX, "page")
        first = self._invoke_json("scrm_segment_ids_json", cexpr, 0, page)

        def pages(ids):
            while True:
                yield from ids
                if len(ids) < page:
                    return
                ids = self._invoke_json("scrm_segment_ids_json", cexpr, ids[-1], page)
        return pages(first)

    def segment_explain(self, expr):
        """How a segment runs: ``{"plan": "sql", "sql": ...}`` or
        ``{"plan": "scan", "why": ...}``."""
        return self._invoke_json("scrm_segment_explain_json", _lib.cstr(expr, "expression"))
