"""Shared set-up for the binding tests: find the package and the library.

Under `meson test` PYTHONPATH and SCRM_LIBRARY are set. Run by hand, the
tests fall back to this source tree and to build/lib/libscrm.so.1.
"""
import collections
import ctypes
import os
import pathlib
import shutil
import sys
import tempfile
import unittest

HERE = pathlib.Path(__file__).resolve().parent
PACKAGE_ROOT = HERE.parent
REPO_ROOT = PACKAGE_ROOT.parent.parent

if str(PACKAGE_ROOT) not in sys.path:
    sys.path.insert(0, str(PACKAGE_ROOT))
if "SCRM_LIBRARY" not in os.environ:
    candidate = REPO_ROOT / "build" / "lib" / "libscrm.so.1"
    if candidate.exists():
        os.environ["SCRM_LIBRARY"] = str(candidate)

import scrm  # noqa: E402
from scrm import _lib  # noqa: E402


def has_identity():
    """True when the loaded library exports the identity engine."""
    try:
        _lib.func("scrm_identity_observe")
        return True
    except NotImplementedError:
        return False


def has_profile():
    """True when the loaded library exports the profile engine."""
    try:
        _lib.func("scrm_profile_event_add")
        return True
    except NotImplementedError:
        return False


class TempDirTestCase(unittest.TestCase):
    """A test with a fresh temporary directory in self.dir."""

    def setUp(self):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="scrm-py-"))
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def path(self, name="test.db"):
        return str(self.dir / name)


class OwnershipLedger:
    """Checks that every string the library hands out is released with scrm_free().

    While installed it wraps the declared C functions and records each
    pointer they store into a `char **out` parameter, and wraps the
    binding's scrm_free() to record each pointer released. `produced` and
    `freed` must then be equal as multisets: nothing leaked, nothing freed
    twice, nothing freed that the library did not hand out.
    """

    def __init__(self):
        self.produced = []
        self.freed = []

    def __enter__(self):
        self._orig_func, self._orig_free = _lib.func, _lib.free

        def func(name):
            real = self._orig_func(name)
            if name in ("scrm_db_options_new", "scrm_db_open"):
                return real  # their out parameters are objects with own destructors

            def wrapper(*args):
                result = real(*args)
                for a in args:
                    obj = getattr(a, "_obj", None)  # what byref() points at
                    if isinstance(obj, ctypes.c_void_p) and obj.value:
                        self.produced.append(obj.value)
                return result
            return wrapper

        def free(ptr):
            if ptr:
                self.freed.append(ptr)
            self._orig_free(ptr)
        _lib.func, _lib.free = func, free
        return self

    def __exit__(self, *exc):
        _lib.func, _lib.free = self._orig_func, self._orig_free

    def balanced(self):
        return collections.Counter(self.produced) == collections.Counter(self.freed)
