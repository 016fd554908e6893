"""Exceptions: one class per libscrm result code (include/scrm/common.h)."""
import operator

from . import _lib

__all__ = [
    "Error", "MisuseError", "InvalidError", "NotFoundError", "ExistsError", "ConflictError",
    "StateError", "BusyError", "NoMemoryError", "IOFailure", "CorruptError", "SchemaError",
    "RangeError", "ParseError", "ReadOnlyError", "LimitError", "EvalError", "DuplicateError",
]


class Error(Exception):
    """A libscrm call failed.

    Attributes:
        code:    the numeric result code (SCRM_* in scrm/common.h);
        name:    its English name from scrm_errstr(), e.g. "not found";
        message: the library's message for this failure (scrm_errmsg()),
                 which names the problem and, for JSON or expressions, the
                 position;
        line, column: for errors of scrm.Expr (compiling or evaluating)
                 the 1-based position in the expression, when the library
                 reports one; otherwise None.

    Catch a subclass for one code (``except scrm.NotFoundError``) or this
    class for all of them. Codes newer than this binding raise Error itself
    with their own ``code``.
    """

    code = 1  # SCRM_ERROR
    line = None
    column = None

    def __init__(self, message, code=None):
        if code is not None:
            self.code = code
        self.message = message
        super().__init__(message)

    @property
    def name(self):
        return _lib.errstr(self.code)

    def __str__(self):
        return self.message

    def __repr__(self):
        return f"{type(self).__name__}({self.message!r}, code={self.code})"

    def __reduce__(self):
        return type(self), (self.message, self.code)


class MisuseError(Error):
    """The API was used wrongly: closed database, unbalanced batch, re-entry from a callback."""
    code = 2


class InvalidError(Error):
    """An argument is invalid (bad value, bad UTF-8, unknown field)."""
    code = 3


class NotFoundError(Error):
    """The named object does not exist."""
    code = 4


class ExistsError(Error):
    """The object already exists."""
    code = 5


class ConflictError(Error):
    """A constraint or conflict prevents the change."""
    code = 6


class StateError(Error):
    """Illegal state transition."""
    code = 7


class BusyError(Error):
    """The database is locked by another connection and the busy timeout ran out."""
    code = 8


class NoMemoryError(Error, MemoryError):
    """The library ran out of memory."""
    code = 9


class IOFailure(Error, OSError):
    """I/O error, or the file cannot be opened."""
    code = 10


class CorruptError(Error):
    """The file is corrupt or is not a libscrm database."""
    code = 11


class SchemaError(Error):
    """The file was written by a newer libscrm (or is older and was opened read-only)."""
    code = 12


class RangeError(Error):
    """A number is out of range, or arithmetic overflowed."""
    code = 13


class ParseError(Error):
    """Malformed input text (JSON, expression); the message has the position."""
    code = 14


class ReadOnlyError(Error):
    """Write attempted on a database opened read-only."""
    code = 15


class LimitError(Error):
    """A configured limit (size, depth, cost, count) was exceeded."""
    code = 16


class EvalError(Error):
    """An expression could not be evaluated (type mismatch, division by zero)."""
    code = 17


class DuplicateError(Error):
    """The input was already recorded (idempotency key seen); nothing changed.

    Raised by Database.event_add() with `customer` and `event` set to the
    canonical customer and the id of the event stored before.
    """
    code = 18
    customer = None
    event = None


_BY_CODE = {cls.code: cls for cls in (Error,) + tuple(Error.__subclasses__())}
for _cls in _BY_CODE.values():
    _cls.__module__ = "scrm"  # tracebacks and pickles name them scrm.NotFoundError etc.


def from_code(code, message):
    """The exception for result `code` (Error itself for unknown codes)."""
    return _BY_CODE.get(code, Error)(message, code)


def int_arg(value, lo, hi, what):
    """`value` as an int within [lo, hi], else RangeError (ctypes would truncate it)."""
    value = operator.index(value)
    if not lo <= value <= hi:
        raise RangeError(f"{what} {value} is out of range [{lo}, {hi}]")
    return value
