"""Python binding of libscrm, the customer-operations core (ctypes, no dependencies).

    import scrm

    with scrm.open("shop.db") as db:
        with db.batch():
            cid = db.observe({"wechat_unionid": "o6_bm", "phone": "138 0013 8000"},
                             channel="wecom")
        print(db.resolve("phone", "+86 13800138000") == cid)
        db.event_add(key="T0042", type="order", channel="pos", customer=cid,
                     amount=12900, currency="CNY")
        print(db.profile(cid)["figures"]["net_spend"])   # {'CNY': 12900}

The shared library is found through $SCRM_LIBRARY, else libscrm.so.1 on the
loader path, else ctypes.util.find_library("scrm"). Every failure of the
library raises a subclass of scrm.Error carrying .code, .name and .message.
"""
from . import _lib
from .db import LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_WARN, Database, open
from .errors import (BusyError, ConflictError, CorruptError, DuplicateError, Error, EvalError,
                     ExistsError, InvalidError, IOFailure, LimitError, MisuseError,
                     NoMemoryError, NotFoundError, ParseError, RangeError, ReadOnlyError,
                     SchemaError, StateError)
from .profile import EventResult, mask
from .rules import EXPR_LIMITS, Expr, OutboxIterator

__all__ = [
    "open", "Database", "version", "version_number", "schema_version", "library_path", "mask",
    "EventResult",
    "Expr", "EXPR_LIMITS", "OutboxIterator",
    "LOG_ERROR", "LOG_WARN", "LOG_INFO", "LOG_DEBUG",
    "Error", "MisuseError", "InvalidError", "NotFoundError", "ExistsError", "ConflictError",
    "StateError", "BusyError", "NoMemoryError", "IOFailure", "CorruptError", "SchemaError",
    "RangeError", "ParseError", "ReadOnlyError", "LimitError", "EvalError", "DuplicateError",
]

#: Path or name the shared library was loaded from.
library_path = _lib.path


def version():
    """Version string of the loaded library, e.g. "0.1.0"."""
    return _lib.version()


def version_number():
    """Version of the loaded library as MAJOR*10000 + MINOR*100 + PATCH."""
    return _lib.func("scrm_version_number")()


def schema_version():
    """Schema version the loaded library writes (PRAGMA user_version)."""
    return _lib.func("scrm_schema_version")()
