"""Tests of the core binding: loading, versions, open/close, errors, batches, hooks, memory."""
import gc
import os
import pathlib
import pickle
import re
import sqlite3
import subprocess
import sys
import threading
import time
import unittest
import warnings

from support import PACKAGE_ROOT, OwnershipLedger, TempDirTestCase, has_identity

import scrm
from scrm import _lib, errors


def run_python(code, **env):
    """Run `code` in a fresh interpreter that imports this scrm package."""
    full_env = dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT), **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=60)


class TestModule(unittest.TestCase):
    def test_version(self):
        self.assertRegex(scrm.version(), r"^\d+\.\d+\.\d+")
        major, minor, patch = (int(x) for x in re.match(r"(\d+)\.(\d+)\.(\d+)",
                                                        scrm.version()).groups())
        self.assertEqual(scrm.version_number(), major * 10000 + minor * 100 + patch)
        self.assertEqual(scrm.version_number() // 10000, _lib.EXPECTED_MAJOR)

    def test_schema_version(self):
        self.assertGreaterEqual(scrm.schema_version(), 1)
        with scrm.open() as db:
            info = db.info()
        self.assertEqual(info["schema_version"], scrm.schema_version())
        self.assertEqual(info["library_version"], scrm.version())

    def test_library_path(self):
        if os.environ.get("SCRM_LIBRARY"):
            self.assertEqual(scrm.library_path, os.environ["SCRM_LIBRARY"])


class TestLoading(unittest.TestCase):
    """The loader, in fresh interpreters."""

    def test_bad_scrm_library_is_import_error(self):
        r = run_python("import scrm", SCRM_LIBRARY="/nonexistent/libscrm.so.1")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("SCRM_LIBRARY='/nonexistent/libscrm.so.1'", r.stderr)

    def test_not_libscrm_is_import_error(self):
        libc = "libc.so.6"
        r = run_python("import scrm", SCRM_LIBRARY=libc)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("is not a usable libscrm", r.stderr)

    def test_other_major_version_is_refused(self):
        # Make the library report 1.1.0 by wrapping scrm_version_number.
        code = (
            "import ctypes\n"
            "real = ctypes.CDLL\n"
            "class Fake:\n"
            "    def __init__(self, *a, **k): self._l = real(*a, **k)\n"
            "    def __getattr__(self, name):\n"
            "        if name == 'scrm_version_number':\n"
            "            def f(): return 10100\n"
            "            return f\n"
            "        return getattr(self._l, name)\n"
            "ctypes.CDLL = Fake\n"
            "import scrm\n")
        r = run_python(code)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("needs major version 0", r.stderr)


class TestOpenClose(TempDirTestCase):
    def test_memory(self):
        db = scrm.open()
        try:
            self.assertEqual(db.path, ":memory:")
            self.assertFalse(db.closed)
            info = db.info()
            self.assertEqual(info["path"], ":memory:")
            self.assertIsInstance(info["tables"], dict)
        finally:
            db.close()
        self.assertTrue(db.closed)

    def test_file_is_created_and_reopened(self):
        path = self.path()
        with scrm.open(path) as db:
            self.assertEqual(db.path, path)
        self.assertTrue(os.path.exists(path))
        with scrm.open(path, create=False) as db:
            self.assertEqual(db.info()["path"], path)

    def test_pathlike_and_bytes_path(self):
        p = pathlib.Path(self.path())
        with scrm.open(p) as db:
            self.assertEqual(db.path, str(p))
        with scrm.open(os.fsencode(p)) as db:
            self.assertEqual(db.path, str(p))

    def test_context_manager_closes(self):
        with scrm.open() as db:
            self.assertIs(db.__enter__(), db)
        self.assertTrue(db.closed)
        self.assertIn("closed", repr(db))

    def test_context_manager_closes_on_exception(self):
        with self.assertRaises(KeyError):
            with scrm.open() as db:
                raise KeyError("boom")
        self.assertTrue(db.closed)

    def test_close_is_idempotent(self):
        db = scrm.open()
        db.close()
        db.close()
        self.assertTrue(db.closed)

    def test_use_after_close_raises_misuse(self):
        db = scrm.open(self.path())
        db.close()
        calls = [db.now, db.info, db.begin, db.commit, db.rollback,
                 lambda: db.batch_depth, lambda: db.set_clock(None),
                 lambda: db.set_log(None), lambda: db.test_alloc_fail(0),
                 lambda: db.__enter__(), lambda: db.batch().__enter__()]
        for call in calls:
            with self.assertRaises(scrm.MisuseError) as cm:
                call()
            self.assertEqual(cm.exception.code, 2)
            self.assertEqual(cm.exception.message, "database handle is closed")
        self.assertEqual(db.path, self.path())  # still known after close

    def test_unclosed_database_warns_and_closes(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            db = scrm.open()
            del db
            gc.collect()
        self.assertTrue(any(issubclass(w.category, ResourceWarning) for w in caught))

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            scrm.open("a\0b")
        with self.assertRaises(TypeError):
            scrm.open(42)
        with self.assertRaises(TypeError):
            scrm.open(clock=5)
        with self.assertRaises(TypeError):
            scrm.open(log="stderr")
        with self.assertRaises(TypeError):
            scrm.open(busy_timeout_ms=1.5)


class TestErrors(TempDirTestCase):
    def assertScrmError(self, cm, cls, code):
        e = cm.exception
        self.assertIs(type(e), cls)
        self.assertIsInstance(e, scrm.Error)
        self.assertEqual(e.code, code)
        self.assertEqual(e.name, _lib.errstr(code))
        self.assertEqual(str(e), e.message)
        self.assertTrue(e.message)

    def test_missing_file_without_create(self):
        path = self.path("missing.db")
        with self.assertRaises(scrm.NotFoundError) as cm:
            scrm.open(path, create=False)
        self.assertScrmError(cm, scrm.NotFoundError, 4)
        self.assertEqual(cm.exception.name, "not found")
        self.assertIn(path, cm.exception.message)
        self.assertFalse(os.path.exists(path))

    def test_missing_file_readonly(self):
        with self.assertRaises(scrm.NotFoundError):
            scrm.open(self.path("missing.db"), readonly=True)

    def test_garbage_file_is_corrupt(self):
        path = self.path("garbage.db")
        pathlib.Path(path).write_bytes(b"this is not an SQLite file\n" * 200)
        with self.assertRaises(scrm.CorruptError) as cm:
            scrm.open(path)
        self.assertScrmError(cm, scrm.CorruptError, 11)

    def test_foreign_sqlite_file_is_corrupt(self):
        path = self.path("foreign.db")
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE t (x)")
        con.close()
        with self.assertRaises(scrm.CorruptError) as cm:
            scrm.open(path)
        self.assertIn(path, cm.exception.message)
        self.assertIn("not a libscrm database", cm.exception.message)

    def test_newer_schema_is_refused(self):
        path = self.path("newer.db")
        scrm.open(path).close()
        con = sqlite3.connect(path)
        con.execute("PRAGMA user_version = 9999")
        con.commit()
        con.close()
        with self.assertRaises(scrm.SchemaError) as cm:
            scrm.open(path)
        self.assertScrmError(cm, scrm.SchemaError, 12)
        self.assertIn("9999", cm.exception.message)
        self.assertIn(path, cm.exception.message)

    def test_unopenable_path_is_io_failure(self):
        with self.assertRaises(scrm.IOFailure) as cm:
            scrm.open(str(self.dir / "no-such-dir" / "x.db"))
        self.assertScrmError(cm, scrm.IOFailure, 10)
        self.assertIsInstance(cm.exception, OSError)

    def test_memory_readonly_is_invalid(self):
        with self.assertRaises(scrm.InvalidError) as cm:
            scrm.open(":memory:", readonly=True)
        self.assertScrmError(cm, scrm.InvalidError, 3)
        self.assertIn("read-only", cm.exception.message)

    def test_out_of_range_options(self):
        with self.assertRaises(scrm.RangeError) as cm:
            scrm.open(busy_timeout_ms=-1)
        self.assertScrmError(cm, scrm.RangeError, 13)
        self.assertIn("-1", cm.exception.message)
        with self.assertRaises(scrm.RangeError) as cm:  # caught before ctypes truncates it
            scrm.open(busy_timeout_ms=2 ** 40)
        with self.assertRaises(scrm.RangeError) as cm:
            scrm.open(log=lambda level, msg: None, log_level=9)
        self.assertIn("log level 9", cm.exception.message)

    def test_readonly_refuses_writes(self):
        path = self.path()
        scrm.open(path).close()
        with scrm.open(path, readonly=True) as db:
            self.assertEqual(db.info()["path"], path)  # reads work
            with self.assertRaises(scrm.ReadOnlyError) as cm:
                db.begin()
            self.assertScrmError(cm, scrm.ReadOnlyError, 15)
            self.assertIn("read-only", cm.exception.message)
            with self.assertRaises(scrm.ReadOnlyError):
                with db.batch():
                    self.fail("the batch must not start")

    def test_busy(self):
        path = self.path()
        with scrm.open(path) as a, scrm.open(path, busy_timeout_ms=0) as b:
            a.begin()
            with self.assertRaises(scrm.BusyError) as cm:
                b.begin()
            self.assertScrmError(cm, scrm.BusyError, 8)
            a.commit()
            b.begin()
            b.rollback()

    def test_out_of_memory(self):
        with scrm.open() as db:
            db.test_alloc_fail(1)
            with self.assertRaises(scrm.NoMemoryError) as cm:
                db.info()
            self.assertScrmError(cm, scrm.NoMemoryError, 9)
            self.assertIsInstance(cm.exception, MemoryError)
            self.assertIn("tables", db.info())  # one failure, then normal again

    def test_message_is_per_call(self):
        with scrm.open() as db:
            with self.assertRaises(scrm.MisuseError) as cm:
                db.commit()
            self.assertIn("no batch is open", cm.exception.message)
            db.begin()
            db.rollback()
            with self.assertRaises(scrm.MisuseError) as cm2:
                db.rollback()
            self.assertEqual(cm2.exception.message, cm.exception.message)

    def test_code_to_class(self):
        expected = {
            1: scrm.Error, 2: scrm.MisuseError, 3: scrm.InvalidError, 4: scrm.NotFoundError,
            5: scrm.ExistsError, 6: scrm.ConflictError, 7: scrm.StateError, 8: scrm.BusyError,
            9: scrm.NoMemoryError, 10: scrm.IOFailure, 11: scrm.CorruptError,
            12: scrm.SchemaError, 13: scrm.RangeError, 14: scrm.ParseError,
            15: scrm.ReadOnlyError, 16: scrm.LimitError, 17: scrm.EvalError,
            18: scrm.DuplicateError,
        }
        for code, cls in expected.items():
            e = errors.from_code(code, f"message {code}")
            self.assertIs(type(e), cls)
            self.assertEqual((e.code, e.message), (code, f"message {code}"))
            self.assertEqual(cls.code, code)
            self.assertNotEqual(e.name, "unknown error")
            self.assertEqual(e.name, _lib.errstr(code))
        e = errors.from_code(99, "from the future")
        self.assertIs(type(e), scrm.Error)
        self.assertEqual((e.code, e.name), (99, "unknown error"))

    def test_pickle_and_repr(self):
        for e in (errors.from_code(4, "no such thing"), errors.from_code(10, "disk"),
                  errors.from_code(99, "new code")):
            back = pickle.loads(pickle.dumps(e))
            self.assertIs(type(back), type(e))
            self.assertEqual((back.code, back.message), (e.code, e.message))
        self.assertEqual(repr(errors.from_code(4, "x")), "NotFoundError('x', code=4)")
        self.assertEqual(scrm.NotFoundError.__module__, "scrm")


class TestBatch(TempDirTestCase):
    def test_begin_commit_rollback_depth(self):
        with scrm.open(self.path()) as db:
            self.assertEqual(db.batch_depth, 0)
            db.begin()
            db.begin()
            self.assertEqual(db.batch_depth, 2)
            db.rollback()
            db.commit()
            self.assertEqual(db.batch_depth, 0)
            with self.assertRaises(scrm.MisuseError):
                db.commit()

    def test_batch_context_nests(self):
        with scrm.open(self.path()) as db:
            with db.batch() as b:
                self.assertIs(b, db)
                with db.batch():
                    self.assertEqual(db.batch_depth, 2)
                self.assertEqual(db.batch_depth, 1)
            self.assertEqual(db.batch_depth, 0)

    def test_batch_rolls_back_and_reraises(self):
        with scrm.open(self.path()) as db:
            with self.assertRaises(ZeroDivisionError):
                with db.batch():
                    with db.batch():
                        1 / 0
            self.assertEqual(db.batch_depth, 0)

    def test_close_inside_batch_is_misuse(self):
        db = scrm.open(self.path())
        # close() rolled the batch back: leaving the block must not pretend to commit
        with self.assertRaises(scrm.MisuseError):
            with db.batch():
                db.close()
        self.assertTrue(db.closed)
        with self.assertRaises(KeyError):  # an exception in the block wins
            with scrm.open().batch() as db2:
                db2.close()
                raise KeyError("x")

    @unittest.skipUnless(has_identity(), "library lacks the identity engine")
    def test_batch_effects_visible_in_table_counts(self):
        with scrm.open(self.path()) as db:
            def rows():
                return sum(db.info()["tables"].values())
            before = rows()
            with self.assertRaises(RuntimeError):
                with db.batch():
                    db.observe({"phone": "13800138000"})
                    self.assertGreater(rows(), before)
                    raise RuntimeError("abandon")
            self.assertEqual(rows(), before)
            with db.batch():
                db.observe({"phone": "13800138000"})
                with self.assertRaises(RuntimeError):
                    with db.batch():
                        db.observe({"phone": "13900139000"})
                        raise RuntimeError("inner only")
            after = rows()
            self.assertGreater(after, before)
            with self.assertRaises(scrm.NotFoundError):
                db.resolve("phone", "13900139000")
            self.assertEqual(db.resolve("phone", "13800138000"),
                             db.resolve("phone", "+86 138 0013 8000"))


class TestClock(TempDirTestCase):
    def test_injected_clock(self):
        t = [1_767_225_600_000]
        with scrm.open(clock=lambda: t[0]) as db:
            self.assertEqual(db.now(), 1_767_225_600_000)
            t[0] += 5
            self.assertEqual(db.now(), 1_767_225_600_005)

    def test_set_clock_and_restore(self):
        with scrm.open() as db:
            db.set_clock(lambda: 42)
            self.assertEqual(db.now(), 42)
            db.set_clock(None)
            self.assertLess(abs(db.now() - time.time() * 1000), 60_000)

    def test_clock_exception_is_reraised(self):
        def broken():
            raise LookupError("no time server")
        with scrm.open(clock=broken) as db:
            with self.assertRaises(LookupError):
                db.now()
            db.set_clock(lambda: 7)
            self.assertEqual(db.now(), 7)  # nothing left pending

    def test_clock_bad_values(self):
        with scrm.open(clock=lambda: "noon") as db:
            with self.assertRaises(TypeError):
                db.now()
        with scrm.open(clock=lambda: 2 ** 64) as db:
            with self.assertRaises(scrm.RangeError):
                db.now()


class TestLog(TempDirTestCase):
    def test_log_receives_messages(self):
        seen = []
        path = self.path()
        with scrm.open(path, log=lambda level, msg: seen.append((level, msg))):
            pass
        self.assertTrue(seen)
        self.assertTrue(all(isinstance(lv, int) and isinstance(m, str) for lv, m in seen))
        self.assertTrue(any(lv == scrm.LOG_INFO and path in m for lv, m in seen), seen)

    def test_log_level_filters(self):
        seen = []
        with scrm.open(log=lambda lv, m: seen.append(lv), log_level=scrm.LOG_WARN):
            pass
        self.assertTrue(all(lv <= scrm.LOG_WARN for lv in seen))

    def test_set_log_debug_sees_errors(self):
        seen = []
        with scrm.open() as db:
            db.set_log(lambda lv, m: seen.append((lv, m)), scrm.LOG_DEBUG)
            with self.assertRaises(scrm.MisuseError):
                db.commit()
            db.set_log(None)
            with self.assertRaises(scrm.MisuseError):
                db.commit()
        self.assertEqual(len([m for lv, m in seen if "no batch is open" in m]), 1)

    def test_log_exception_during_open(self):
        def bad(level, msg):
            raise ValueError("log sink down")
        with self.assertRaises(ValueError):
            scrm.open(self.path(), log=bad)

    def test_reentry_from_callback_is_misuse(self):
        with scrm.open() as db:
            db.set_log(lambda lv, m: db.info(), scrm.LOG_DEBUG)
            with self.assertRaises(scrm.MisuseError) as cm:
                db.commit()  # fails, logs at DEBUG, the callback re-enters
            self.assertIn("called back into the database", cm.exception.message)
            self.assertIsInstance(cm.exception.__context__, scrm.MisuseError)
            db.set_log(None)
            self.assertIn("tables", db.info())


class TestThreads(unittest.TestCase):
    def test_calls_from_many_threads_are_serialized(self):
        failures = []
        with scrm.open(clock=lambda: 1) as db:
            def work():
                try:
                    for _ in range(200):
                        db.info()
                        db.now()
                except Exception as e:  # pragma: no cover - reported below
                    failures.append(e)
            threads = [threading.Thread(target=work) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        self.assertEqual(failures, [])


class TestMemory(unittest.TestCase):
    def test_every_output_is_freed_once(self):
        with scrm.open() as db, OwnershipLedger() as ledger:
            for _ in range(5):
                db.info()
            db.test_alloc_fail(1)
            with self.assertRaises(scrm.NoMemoryError):
                db.info()
        self.assertEqual(len(ledger.produced), 5)
        self.assertTrue(ledger.balanced(), (ledger.produced, ledger.freed))

    def test_heap_does_not_grow(self):
        try:
            import ctypes

            class MallInfo2(ctypes.Structure):
                _fields_ = [(n, ctypes.c_size_t) for n in (
                    "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                    "uordblks", "fordblks", "keepcost")]
            mallinfo2 = ctypes.CDLL(None).mallinfo2
            mallinfo2.restype = MallInfo2
        except (AttributeError, OSError):
            self.skipTest("mallinfo2() not available")

        def in_use():
            gc.collect()
            return mallinfo2().uordblks
        with scrm.open() as db:
            for _ in range(200):  # warm caches
                db.info()
            if in_use() == 0:
                self.skipTest("malloc is interposed (sanitizer build)")
            before = in_use()
            for _ in range(5000):
                db.info()
            grown = in_use() - before
        # a leaked info() string is ~100 bytes: 5000 of them would be ~500 kB
        self.assertLess(grown, 100_000)


if __name__ == "__main__":
    unittest.main()
