"""The database handle: open/close, batches, clock and log hooks, info."""
import contextlib
import json
import os
import threading
import time
import warnings
from ctypes import byref, c_void_p

from . import _lib
from .errors import MisuseError, from_code, int_arg
from .identity import IdentityMixin
from .profile import ProfileMixin
from .rules import RulesMixin

__all__ = ["Database", "open", "LOG_ERROR", "LOG_WARN", "LOG_INFO", "LOG_DEBUG"]

LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG = 1, 2, 3, 4
_OPEN_CREATE, _OPEN_READONLY = 0x1, 0x2


class _Hooks:
    """Python callables behind a handle's C hooks.

    Holds the ctypes trampolines, which must stay alive as long as the C
    side may call them, and the first exception a callable raised: C cannot
    propagate it, so the binding call during which it happened re-raises it.
    """

    def __init__(self):
        self.clock = None   # CLOCK_FN or None
        self.log = None     # LOG_FN or None
        self.pending = None

    def _stash(self, exc):
        if self.pending is None:
            self.pending = exc

    def make_clock(self, fn):
        if fn is None:
            return None
        if not callable(fn):
            raise TypeError("clock must be a callable returning milliseconds since the epoch")

        def trampoline(_userdata):
            try:
                return int_arg(fn(), _lib.INT64_MIN, _lib.INT64_MAX, "clock value")
            except BaseException as e:  # noqa: B902 - must not unwind through C
                self._stash(e)
                return time.time_ns() // 1_000_000
        return _lib.CLOCK_FN(trampoline)

    def make_log(self, fn):
        if fn is None:
            return None
        if not callable(fn):
            raise TypeError("log must be a callable(level, message)")

        def trampoline(_userdata, level, msg):
            try:
                fn(level, msg.decode("utf-8", "replace") if msg is not None else "")
            except BaseException as e:  # noqa: B902 - must not unwind through C
                self._stash(e)
        return _lib.LOG_FN(trampoline)

    def take_pending(self):
        exc, self.pending = self.pending, None
        return exc


def _raise(err, pending):
    """Raise a callback's exception (chained to the call's error) or the error."""
    if pending is not None:
        if err is not None:
            pending.__context__ = err
        raise pending
    if err is not None:
        raise err


def open(path=":memory:", *, readonly=False, create=True, busy_timeout_ms=5000,
         clock=None, log=None, log_level=LOG_INFO):
    """Open (creating or migrating forward) a libscrm database.

    Args:
        path: file name (str, bytes or path-like), or ":memory:" for a
            private in-memory database.
        readonly: open read-only; writes raise ReadOnlyError. Implies
            create=False, and the schema is not migrated.
        create: create the file if it is missing; otherwise a missing file
            raises NotFoundError.
        busy_timeout_ms: how long to wait for another connection's lock
            before BusyError (0: fail at once).
        clock: callable returning the current time in milliseconds since the
            epoch (UTC); replaces the real-time clock, e.g. in tests.
        log: callable(level, message) receiving the library's log lines
            (LOG_ERROR .. LOG_DEBUG) up to `log_level`.

    Callables must not call back into the database. An exception they raise
    is re-raised by the call during which it happened, after that call has
    completed (a failing clock reads as the real time meanwhile).

    Returns a Database, which is a context manager that closes it.
    Raises NotFoundError, IOFailure, CorruptError, SchemaError, BusyError, ...
    """
    cpath = os.fsencode(path)
    if b"\0" in cpath:
        raise ValueError(f"path contains a NUL character: {path!r}")
    busy_timeout_ms = int_arg(busy_timeout_ms, _lib.INT_MIN, _lib.INT_MAX, "busy_timeout_ms")
    log_level = int_arg(log_level, _lib.INT_MIN, _lib.INT_MAX, "log_level")
    flags = _OPEN_READONLY if readonly else (_OPEN_CREATE if create else 0)
    hooks = _Hooks()
    hooks.clock = hooks.make_clock(clock)
    hooks.log = hooks.make_log(log)

    def check(rc):
        if rc:
            raise from_code(rc, _lib.errmsg(None))

    f = _lib.func
    opts = c_void_p()
    check(f("scrm_db_options_new")(byref(opts)))
    handle = c_void_p()
    try:
        check(f("scrm_db_options_set_flags")(opts, flags))
        check(f("scrm_db_options_set_busy_timeout")(opts, busy_timeout_ms))
        if hooks.clock:
            check(f("scrm_db_options_set_clock")(opts, hooks.clock, None))
        if hooks.log:
            check(f("scrm_db_options_set_log")(opts, hooks.log, None, log_level))
        rc = f("scrm_db_open")(cpath, opts, byref(handle))
        err = from_code(rc, _lib.errmsg(None)) if rc else None
    finally:
        f("scrm_db_options_free")(opts)
    pending = hooks.take_pending()
    if pending is not None and handle:
        f("scrm_db_close")(handle)
        handle = c_void_p()
    _raise(err, pending)
    return Database(handle.value, os.fsdecode(f("scrm_db_path")(handle)), hooks)


class Database(IdentityMixin, ProfileMixin, RulesMixin):
    """An open libscrm database (one SQLite connection). Create with scrm.open().

    Use it as a context manager, or call close(). Methods may be called from
    several threads; calls on one Database are serialized. After close(),
    every call raises MisuseError.
    """

    def __init__(self, handle, path, hooks):
        self._handle = handle
        self._path = path
        self._hooks = hooks
        self._lock = threading.RLock()
        self._in_call = False
        self._in_handler = 0          # > 0 while the outbox handler runs
        self._outbox_handler = None   # OUTBOX_FN trampoline while installed
        self._handler_failures = []   # (action id, message) the handler raised

    # ------------------------------------------------------------ plumbing

    def _invoke(self, name, *args, check=True):
        """Call C function `name` with this handle first; raise on failure."""
        with self._lock:
            if not self._handle:
                raise MisuseError("database handle is closed")
            if self._in_call:
                raise MisuseError("a callback called back into the database")
            self._in_call = True
            err = None
            try:
                result = _lib.func(name)(self._handle, *args)
                if check and result:
                    err = from_code(result, _lib.errmsg(self._handle))
            finally:
                self._in_call = False
            if self._handler_failures and not self._in_handler:
                self._settle_handler_failures()
            _raise(err, self._hooks.take_pending())
            return result

    def _invoke_str(self, name, *args):
        """Call a function whose last parameter is `char **out`; return the str."""
        out = c_void_p()
        try:
            self._invoke(name, *args, byref(out))
        except BaseException:
            if out.value:  # the library leaves NULL on failure; never leak if not
                _lib.free(out.value)
            raise
        return _lib.take_string(out.value)

    def _invoke_json(self, name, *args):
        return json.loads(self._invoke_str(name, *args))

    # ------------------------------------------------------------ lifetime

    def close(self):
        """Close the database, rolling back an unfinished batch. Idempotent."""
        with self._lock:
            if self._in_call:
                raise MisuseError("a callback called back into the database")
            if self._in_handler:
                raise MisuseError("the outbox handler may not close the database")
            handle, self._handle = self._handle, None
            if handle:
                rc = _lib.func("scrm_db_close")(handle)
                if rc:  # the handle is released regardless; its message went with it
                    raise from_code(rc, f"database '{self._path}' could not be closed cleanly")

    @property
    def closed(self):
        """True once close() was called."""
        return not self._handle

    def __enter__(self):
        if not self._handle:
            raise MisuseError("database handle is closed")
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None):
            what = f"unclosed <scrm.Database {self._path!r}>"
            try:
                self.close()
            finally:
                warnings.warn(what, ResourceWarning, source=self)

    def __repr__(self):
        state = "closed" if self.closed else "open"
        return f"<scrm.Database {self._path!r} {state}>"

    # ------------------------------------------------------------ properties

    @property
    def path(self):
        """The path the database was opened with (still available after close)."""
        return self._path

    def now(self):
        """Current time in ms since the epoch, according to the database's clock."""
        return self._invoke("scrm_db_now", check=False)

    def info(self):
        """Summary as a dict: path, schema_version, library_version, tables {name: rows}."""
        return self._invoke_json("scrm_db_info_json")

    def set_clock(self, clock):
        """Replace the clock (a callable returning ms); None restores real time."""
        tramp = self._hooks.make_clock(clock)
        self._invoke("scrm_db_set_clock", tramp or _lib.NULL_CLOCK, None)
        self._hooks.clock = tramp  # only now may the old trampoline die

    def set_log(self, log, level=LOG_INFO):
        """Replace the log callable(level, message); None disables logging."""
        level = int_arg(level, _lib.INT_MIN, _lib.INT_MAX, "log level")
        tramp = self._hooks.make_log(log)
        self._invoke("scrm_db_set_log", tramp or _lib.NULL_LOG, None, level)
        self._hooks.log = tramp

    def test_alloc_fail(self, nth):
        """Testing hook: make the nth library allocation from now fail (0 disables)."""
        self._invoke("scrm_db_test_alloc_fail", int_arg(nth, 0, _lib.INT_MAX, "nth"))

    # ------------------------------------------------------------ batches

    def begin(self):
        """Begin a batch (nested batches are savepoints). Prefer `with db.batch():`."""
        self._invoke("scrm_db_begin")

    def commit(self):
        """Commit the innermost batch; MisuseError if none is open."""
        self._invoke("scrm_db_commit")

    def rollback(self):
        """Roll back the innermost batch; MisuseError if none is open."""
        self._invoke("scrm_db_rollback")

    @property
    def batch_depth(self):
        """Number of open batches (0 when none)."""
        return self._invoke("scrm_db_batch_depth", check=False)

    @contextlib.contextmanager
    def batch(self):
        """Group calls in one transaction: committed on success, rolled back
        if the block raises. Batches nest (inner ones are savepoints)::

            with db.batch():
                for row in rows:
                    db.observe(row)
        """
        self.begin()
        try:
            yield self
        except BaseException:
            if not self.closed:
                self.rollback()
            raise
        self.commit()
