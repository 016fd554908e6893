"""Argument helpers shared by the engine modules: ids, times, durations, JSON.

Each turns a Python value into what the C prototype takes, raising
RangeError for integers that do not fit (ctypes would truncate them) and
TypeError for values of the wrong type.
"""
import datetime
import json

from . import _lib
from .errors import int_arg

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
MS = datetime.timedelta(milliseconds=1)


def id_arg(value, what="customer id"):
    """A customer/merge/action id as a checked int64."""
    return int_arg(value, _lib.INT64_MIN, _lib.INT64_MAX, what)


def time_arg(at, what="time"):
    """A time given as ms since the epoch or as a datetime (naive = local time), as ms."""
    if isinstance(at, datetime.datetime):
        if at.tzinfo is None:
            at = at.astimezone()  # naive means local time, as datetime.timestamp() has it
        return (at - EPOCH) // MS
    return int_arg(at, _lib.INT64_MIN, _lib.INT64_MAX, what)


def optional_time(at, what="time"):
    """None as 0 (the library's "now" for the calls that take it), else time_arg()."""
    return 0 if at is None else time_arg(at, what)


def duration_arg(value, what="duration", lo=_lib.INT64_MIN, hi=_lib.INT64_MAX):
    """A duration given as int milliseconds or a datetime.timedelta, as ms (None: 0)."""
    if value is None:
        return 0
    if isinstance(value, datetime.timedelta):
        value = value // MS
    return int_arg(value, lo, hi, what)


def json_text(obj):
    """JSON text passed through unchanged; anything else encoded as JSON."""
    return obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)


def json_arg(value, what, optional=True):
    """A dict/list (encoded as JSON) or JSON text, as a C string; None stays NULL."""
    if value is None and optional:
        return None
    return _lib.cstr(json_text(value), what)
