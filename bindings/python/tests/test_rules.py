"""Tests of the rule engine binding (scrm.Expr and the Database rule, outbox,
trace, tag and segment methods) against the semantics of include/scrm/rules.h."""
import datetime
import gc
import json
import threading
import time
import unittest
import warnings
import weakref

from support import OwnershipLedger, TempDirTestCase, has_profile

import scrm
from scrm import _lib

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000
DAY = 24 * HOUR
UTC = datetime.timezone.utc


def has_rules():
    """True when the loaded library exports the rule engine."""
    try:
        _lib.func("scrm_rules_load")
        return True
    except NotImplementedError:
        return False


needs_rules = unittest.skipUnless(has_rules() and has_profile(),
                                  "the loaded libscrm lacks the rule or profile engine")


# ====================================================================== Expr

@unittest.skipUnless(has_rules(), "the loaded libscrm lacks the rule engine")
class TestExprValues(unittest.TestCase):
    def ev(self, src, bindings=None, **kw):
        with scrm.Expr(src) as e:
            return e.eval(bindings, **kw)

    def test_literals_and_operators(self):
        self.assertEqual(self.ev("1 + 2 * 3"), 7)
        self.assertEqual(self.ev("-7 / 2"), -3)
        self.assertEqual(self.ev("'a' + \"b\""), "ab")
        self.assertIs(self.ev("1 < 2 == true"), True)
        self.assertEqual(self.ev("[1, 'a', [true], null]"), [1, "a", [True], None])
        self.assertEqual(self.ev("7d"), 7 * DAY)
        self.assertEqual(self.ev("len('退货')"), 2)
        self.assertEqual(self.ev("lower('ＡＢＣ')"), "ａｂｃ")

    def test_null_rules(self):
        self.assertIsNone(self.ev("null < 1"))
        self.assertIsNone(self.ev("x + 1"))                    # missing path is null
        self.assertIs(self.ev("x == null"), True)
        self.assertIs(self.ev("null && false"), False)
        self.assertIsNone(self.ev("null && true"))
        self.assertIs(self.ev("null || true"), True)
        self.assertIsNone(self.ev("!x"))
        self.assertEqual(self.ev("x ?? 5"), 5)
        self.assertIsNone(self.ev("x ? 1 : 2"))
        self.assertIs(self.ev("null in [null]"), True)

    def test_missing_versus_null(self):
        with scrm.Expr("has(a.b)") as e:
            self.assertIs(e.eval(), False)
            self.assertIs(e.eval({"a": {"b": None}}), True, "None binds null, present")
            self.assertIs(e.eval({"a.b": None}), True, "dotted names work too")
            self.assertIs(e.eval({"a": {}}), False)
            self.assertIs(e.eval(), False, "every evaluation starts with nothing bound")

    def test_test_is_exactly_true(self):
        with scrm.Expr("x") as e:
            self.assertIs(e.test({"x": True}), True)
            for v in (False, None, 1, "true", [True]):
                self.assertIs(e.test({"x": v}), False, v)
            self.assertIs(e.test(), False)

    def test_typed_bindings(self):
        with scrm.Expr("[a, b, c, d]") as e:
            self.assertEqual(e.eval({"a": True, "b": 1, "c": "中文", "d": None}),
                             [True, 1, "中文", None])
        with scrm.Expr("a == 1") as e:
            self.assertIs(e.eval({"a": True}), False, "a bool is not an int")
            self.assertIs(e.eval({"a": 1}), True)
        with scrm.Expr("a") as e:
            self.assertEqual(e.eval({"a": 2 ** 63 - 1}), 2 ** 63 - 1)
            self.assertEqual(e.eval({"a": -2 ** 63}), -2 ** 63)
            with self.assertRaises(scrm.RangeError):
                e.eval({"a": 2 ** 63})
            self.assertEqual(e.eval({"a": "x\0y"}), "x\0y", "strings go with their length")

    def test_json_bindings(self):
        with scrm.Expr("'vip' in tags && event.props.sku == 'A1' && has(event.props) "
                       "&& event.props != null") as e:
            self.assertEqual(e.vars, ("tags", "event.props.sku", "event.props"))
            self.assertIs(e.eval({"tags": ["new", "vip"],
                                  "event": {"props": {"sku": "A1", "qty": 2}}}), True)
            self.assertIs(e.eval({"tags": ["new"], "event": {"props": {"sku": "A1"}}}), False)
        with scrm.Expr("o") as e:
            self.assertEqual(e.eval({"o": {"k": [1]}}), {}, "an object is written as {}")
        with scrm.Expr("x") as e:
            with self.assertRaises(scrm.InvalidError):
                e.eval({"x": 1.5})                  # numbers must be integers
            with self.assertRaises(TypeError):
                e.eval({"x": object()})
            with self.assertRaises(TypeError):
                e.eval({1: 2})
            with self.assertRaises(TypeError):
                e.eval([("x", 1)])
            self.assertIsNone(e.eval({"y": 1, "x.z": 2}), "unread paths are ignored")

    def test_many_strings_rebound(self):
        # the typed string setter borrows the bytes: each evaluation must see its own
        with scrm.Expr("s + '!'") as e:
            for i in range(300):
                self.assertEqual(e.eval({"s": f"v{i}" * (i % 7 + 1)}), f"v{i}" * (i % 7 + 1) + "!")
                if i % 50 == 0:
                    gc.collect()

    def test_vars_slots(self):
        with scrm.Expr("profile.rfm.m >= 3 && event.amount > 0 || profile.rfm.m == 5") as e:
            self.assertEqual(e.vars, ("profile.rfm.m", "event.amount"))
        self.assertEqual(scrm.Expr("1 + 1").vars, ())


@unittest.skipUnless(has_rules(), "the loaded libscrm lacks the rule engine")
class TestExprErrors(unittest.TestCase):
    def test_compile_error_position(self):
        with self.assertRaises(scrm.ParseError) as cm:
            scrm.Expr("event.amount >=\n   && true")
        e = cm.exception
        self.assertEqual((e.line, e.column), (2, 4))
        self.assertTrue(e.message.startswith("2:4: "), e.message)
        self.assertEqual(e.code, 14)
        with self.assertRaises(scrm.ParseError) as cm:
            scrm.Expr("nosuch(1)")
        self.assertEqual((cm.exception.line, cm.exception.column), (1, 1))
        self.assertIn("nosuch", cm.exception.message)
        with self.assertRaises(scrm.ParseError):
            scrm.Expr("1.5")
        with self.assertRaises(scrm.InvalidError) as cm:
            scrm.Expr('matches(x, "(")')
        self.assertIsNotNone(cm.exception.line)
        with self.assertRaises(scrm.RangeError):
            scrm.Expr("99999999999999999999")

    def test_evaluation_errors_have_positions(self):
        with scrm.Expr("1 + (a / b)") as e:
            self.assertEqual(e.eval({"a": 6, "b": 3}), 3)
            with self.assertRaises(scrm.EvalError) as cm:
                e.eval({"a": 6, "b": 0})
            self.assertEqual((cm.exception.line, cm.exception.column), (1, 8))
            self.assertIn("division by zero", str(cm.exception))
            self.assertEqual(e.eval({"a": 6, "b": 2}), 4, "usable after an error")
        with scrm.Expr("a + 1") as e:
            with self.assertRaises(scrm.RangeError) as cm:
                e.eval({"a": 2 ** 63 - 1})
            self.assertIsNotNone(cm.exception.line)
        with scrm.Expr('"a" < 1') as e:
            with self.assertRaises(scrm.EvalError):
                e.test()
        with scrm.Expr('true && x') as e:
            with self.assertRaises(scrm.EvalError):
                e.test({"x": 1})

    def test_limits(self):
        with self.assertRaises(scrm.LimitError):
            scrm.Expr("1 + 2 + 3", limits={"source": 5})
        with self.assertRaises(scrm.LimitError):
            scrm.Expr("((((1))))", limits={"depth": 2})
        with self.assertRaises(scrm.LimitError):
            scrm.Expr("[a, b, c, d]", limits={"nodes": 3})
        with scrm.Expr("a + b + c + d + e", limits={"cost": 5}) as e:
            with self.assertRaises(scrm.LimitError) as cm:
                e.eval({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1})
            self.assertIn("cost", str(cm.exception))
        with scrm.Expr("s + s", limits={"string": 8}) as e:
            self.assertEqual(e.eval({"s": "abcd"}), "abcdabcd")
            with self.assertRaises(scrm.LimitError):
                e.eval({"s": "abcde"})
        with scrm.Expr("x", limits={"depth": 3}) as e:
            with self.assertRaises(scrm.LimitError):
                e.eval({"x": [[[[1]]]]})
        self.assertEqual(scrm.Expr("1 + 1", limits={"source": 5}).eval(), 2)
        with self.assertRaises(scrm.InvalidError):
            scrm.Expr("1", limits={"bogus": 1})
        with self.assertRaises(scrm.RangeError):
            scrm.Expr("1", limits={"depth": 0})
        with self.assertRaises(scrm.RangeError):
            scrm.Expr("1", limits={"depth": 2 ** 64})
        with self.assertRaises(TypeError):
            scrm.Expr("1", limits=[("depth", 3)])
        self.assertEqual(set(scrm.EXPR_LIMITS), {"source", "depth", "nodes", "string", "cost",
                                                  "regex_match", "regex_depth", "regex_heap"})

    def test_bad_source(self):
        with self.assertRaises(TypeError):
            scrm.Expr(b"1")
        with self.assertRaises(ValueError):
            scrm.Expr("1\0")


@unittest.skipUnless(has_rules(), "the loaded libscrm lacks the rule engine")
class TestExprEnvironment(unittest.TestCase):
    def test_now(self):
        with scrm.Expr("now()") as e:
            self.assertEqual(e.eval(now=T0), T0)
            self.assertEqual(e.eval(now=datetime.datetime(2026, 1, 1, tzinfo=UTC)), T0)
            real = e.eval()
            self.assertLess(abs(real - time.time() * 1000), 60_000, "None is the real clock")
            self.assertEqual(e.eval(now=T0 + 1), T0 + 1)
        with scrm.Expr("days_since(t)") as e:
            self.assertEqual(e.eval({"t": T0}, now=T0 + 3 * DAY + 1), 3)
        with scrm.Expr("local_hour(t, 'Asia/Shanghai')") as e:
            self.assertEqual(e.eval({"t": T0}), 8)

    def test_host_functions(self):
        calls = []

        def count(kind, start, end):
            calls.append((kind, start, end))
            return 4

        fns = {"has_tag": lambda t: t == "vip", "count": count, "sum": lambda k, a, b: 12345}
        with scrm.Expr("has_tag('vip') && !has_tag('new') && count('order', 30d) >= 3 "
                       "&& sum('order', 1d) > 10000") as e:
            self.assertIs(e.test(now=T0, functions=fns), True)
            self.assertEqual(calls, [("order", T0 - 30 * DAY, T0)])
            self.assertIs(e.test(now=T0, functions=dict(fns, has_tag=lambda t: False)), False)
            with self.assertRaises(scrm.EvalError) as cm:
                e.test(now=T0)                       # functions are per evaluation
            self.assertIn("has_tag", str(cm.exception))
            with self.assertRaises(scrm.EvalError) as cm:
                e.test(now=T0, functions={"has_tag": fns["has_tag"], "count": count})
            self.assertIn("sum", str(cm.exception))

    def test_host_function_exception_is_reraised(self):
        class Boom(Exception):
            pass

        def bad(tag):
            raise Boom(tag)

        with scrm.Expr("has_tag('x')") as e:
            with self.assertRaises(Boom) as cm:
                e.eval(functions={"has_tag": bad})
            self.assertIsInstance(cm.exception.__context__, scrm.Error)
            self.assertIn("has_tag", str(cm.exception.__context__))
            self.assertIs(e.eval(functions={"has_tag": lambda t: True}), True)
        with scrm.Expr("count('o', 1d)") as e:
            with self.assertRaises(scrm.RangeError):
                e.eval(now=T0, functions={"count": lambda *a: 2 ** 64})
            with self.assertRaises(TypeError):
                e.eval(now=T0, functions={"count": lambda *a: "3"})
            with self.assertRaises(TypeError):
                e.eval(functions={"counts": len})
            with self.assertRaises(TypeError):
                e.eval(functions={"count": 3})

    def test_reentry_from_host_function(self):
        e = scrm.Expr("has_tag('x')")
        seen = []

        def again(tag):
            try:
                e.eval()
            except scrm.MisuseError as x:
                seen.append(x)
            return True

        self.assertIs(e.eval(functions={"has_tag": again}), True)
        self.assertEqual(len(seen), 1)
        e.close()

    def test_trace(self):
        with scrm.Expr("a > 1 && b") as e:
            t = e.trace({"a": 0})
            self.assertEqual((t["ok"], t["value"]), (True, False))
            self.assertEqual(t["steps"][0]["expr"], "a > 1 && b")
            skipped = [s for s in t["steps"] if s["expr"] == "b"]
            self.assertEqual(skipped[0].get("evaluated"), False)
            t = e.trace({"a": 2})
            self.assertTrue(any(s.get("missing") for s in t["steps"] if s["expr"] == "b"))
        with scrm.Expr("10 / a") as e:
            t = e.trace({"a": 0})                     # errors are reported, not raised
            self.assertIs(t["ok"], False)
            self.assertEqual(t["code"], scrm.EvalError.code)
            self.assertIn("division by zero", t["error"])
            self.assertTrue(any("error" in s for s in t["steps"]))

    def test_threads_share_one_expr(self):
        e = scrm.Expr("s + ':' + t")
        errors = []

        def work(n):
            try:
                for i in range(300):
                    s, t = f"{n}-{i}", "x" * (i % 5)
                    if e.eval({"s": s, "t": t}) != f"{s}:{t}":
                        errors.append((n, i))
            except Exception as x:  # noqa: BLE001
                errors.append(x)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(errors, [])
        e.close()


@unittest.skipUnless(has_rules(), "the loaded libscrm lacks the rule engine")
class TestExprLifetime(unittest.TestCase):
    def test_close_and_context_manager(self):
        e = scrm.Expr("x")
        with e as same:
            self.assertIs(same, e)
        self.assertTrue(e.closed)
        e.close()  # idempotent
        with self.assertRaises(scrm.MisuseError):
            e.eval()
        with self.assertRaises(scrm.MisuseError):
            e.trace()
        with self.assertRaises(scrm.MisuseError):
            with e:
                pass
        self.assertEqual(e.vars, ("x",), "vars stay readable")
        self.assertIn("closed", repr(e))

    def test_freed_when_collected(self):
        freed = []
        orig = _lib.func("scrm_expr_free")
        e = scrm.Expr("a + 1")
        handle = e._expr
        ref = weakref.ref(e)

        class Spy:
            def __call__(self, h):
                freed.append(h)
                orig(h)
        _lib._funcs["scrm_expr_free"] = Spy()
        try:
            del e
            self.assertIsNone(ref(), "no reference cycle keeps an Expr alive")
        finally:
            _lib._funcs["scrm_expr_free"] = orig
        self.assertEqual(freed, [handle])

    def test_every_output_is_freed_once(self):
        e = scrm.Expr("a / b")
        with OwnershipLedger() as ledger:
            e.eval({"a": 1, "b": 1})
            e.trace({"a": 1, "b": 0})
            with self.assertRaises(scrm.EvalError):
                e.eval({"a": 1, "b": 0})
        self.assertTrue(ledger.produced)
        self.assertTrue(ledger.balanced(), (ledger.produced, ledger.freed))
        e.close()


# ====================================================================== Database

@needs_rules
class RulesTestCase(TempDirTestCase):
    def setUp(self):
        super().setUp()
        self.now = T0
        self.db = scrm.open(self.path(), clock=lambda: self.now)
        self.addCleanup(self.db.close)

    def customer(self, phone="13800138000"):
        return self.db.observe({"phone": phone}, channel="wecom")

    def order(self, key, customer, amount=12900, **more):
        return self.db.event_add(key=key, type="order", channel="pos", customer=customer,
                                 amount=amount, currency="CNY", **more)

    def load_coupon_rule(self, **more):
        rule = {"id": "big_order", "trigger": {"type": "event", "event": "order"},
                "condition": "event.amount >= 10000",
                "actions": [{"type": "send_coupon", "params": {"coupon": "THANKS"}}]}
        rule.update(more)
        return self.db.rules_load(rule)


class TestRulesMemory(RulesTestCase):
    def test_out_of_memory_raises_and_leaves_nothing_half_done(self):
        # Every library allocation of each call failing in turn: NoMemoryError
        # (never a crash or another error), then the call that succeeds.
        db = self.db
        self.load_coupon_rule()
        db.tags_define(name="buyer", expr="profile.figures.orders >= 1")
        cid = self.customer()
        n = [0]

        def order():
            n[0] += 1
            return self.order(f"M{n[0]}", cid, amount=20000 + n[0])
        calls = [order,
                 lambda: db.outbox_take(10),
                 lambda: db.trace(customer=cid, steps=True),
                 lambda: db.tags_refresh(),
                 lambda: db.tags_history(cid),
                 lambda: db.segment_count("profile.figures.orders >= 1"),
                 lambda: db.tick(self.now + 3_600_000),
                 lambda: db.rules_list()]
        for i, call in enumerate(calls):
            failures = 0
            for nth in range(1, 3000):
                db.test_alloc_fail(nth)
                try:
                    call()
                except scrm.NoMemoryError:
                    failures += 1
                    continue
                finally:
                    db.test_alloc_fail(0)
                break
            else:
                self.fail(f"call {i} never succeeded")
            self.assertGreater(failures, 0, f"call {i} met an injected failure")
        # the failed orders left nothing: one order, one coupon
        self.assertEqual(len(db.outbox_list()), 1)
        self.assertTrue(db.tag_has(cid, "buyer"))


class TestRulesDefinitions(RulesTestCase):
    def test_load_versions_get_list(self):
        db = self.db
        rep = self.load_coupon_rule()
        self.assertEqual(rep, {"rules": [{"id": "big_order", "version": 1, "changed": True,
                                          "enabled": True}]})
        # the same definition again (as JSON text, other member order) keeps the version
        text = json.dumps({"actions": [{"type": "send_coupon", "params": {"coupon": "THANKS"}}],
                           "condition": "event.amount >= 10000", "id": "big_order",
                           "trigger": {"event": "order", "type": "event"}})
        self.assertEqual(db.rules_load(text)["rules"][0]["changed"], False)
        self.assertEqual(db.rules_load(text)["rules"][0]["version"], 1)
        rep = self.load_coupon_rule(condition="event.amount >= 20000")
        self.assertEqual(rep["rules"][0]["version"], 2)
        cur = db.rules_get("big_order")
        self.assertEqual((cur["version"], cur["current_version"], cur["condition"]),
                         (2, 2, "event.amount >= 20000"))
        old = db.rules_get("big_order", 1)
        self.assertEqual((old["version"], old["condition"]), (1, "event.amount >= 10000"))
        with self.assertRaises(scrm.NotFoundError):
            db.rules_get("big_order", 3)
        with self.assertRaises(scrm.NotFoundError):
            db.rules_get("nosuch")
        with self.assertRaises(scrm.RangeError):
            db.rules_get("big_order", -1)
        # a list, all or nothing
        rep = db.rules_load([{"id": "a", "priority": 5, "trigger": {"type": "event", "event": "view"},
                              "actions": [{"type": "ping"}]},
                             {"id": "b", "trigger": {"type": "event", "event": "view"},
                              "actions": [{"type": "ping"}]}])
        self.assertEqual([r["id"] for r in rep["rules"]], ["a", "b"])
        listed = db.rules_list()
        self.assertEqual([r["id"] for r in listed], ["a", "b", "big_order"])  # priority order
        self.assertEqual(listed[2]["version"], 2)
        self.assertEqual((listed[0]["trigger"], listed[0]["on"]), ("event", "view"))
        with self.assertRaises(scrm.InvalidError):
            db.rules_load([{"id": "c", "trigger": {"type": "event", "event": "view"},
                            "actions": [{"type": "ping"}]},
                           {"id": "d", "trigger": {"type": "event", "event": "view"},
                            "actions": [{"type": "tag.ad", "tag": "x"}]}])
        self.assertNotIn("c", [r["id"] for r in db.rules_list()], "nothing of a failed load")

    def test_disable_enable_remove(self):
        db = self.db
        self.load_coupon_rule()
        cid = self.customer()
        db.rules_disable("big_order")
        self.assertIs(db.rules_get("big_order")["enabled"], False)
        self.assertEqual(db.rules_get("big_order")["version"], 1, "no new version")
        self.order("T1", cid)
        self.assertEqual(db.outbox_list(), [])
        db.rules_enable("big_order")
        self.assertIs(db.rules_list()[0]["enabled"], True)
        self.order("T2", cid)
        self.assertEqual(len(db.outbox_list()), 1)
        db.rules_enable("big_order", False)
        self.assertIs(db.rules_list()[0]["enabled"], False)
        db.rules_remove("big_order")
        self.assertEqual(db.rules_list(), [])
        self.assertIs(db.rules_get("big_order")["removed"], True)
        self.assertEqual(len(db.trace(rule="big_order")), 1, "the trace stays")
        self.assertEqual(self.load_coupon_rule(condition="true")["rules"][0]["version"], 2,
                         "the numbering continues")
        for call in (db.rules_enable, db.rules_disable, db.rules_remove):
            with self.assertRaises(scrm.NotFoundError):
                call("nosuch")

    def test_load_errors(self):
        db = self.db
        with self.assertRaises(scrm.ParseError) as cm:
            self.load_coupon_rule(condition="event.amount >=")
        self.assertIn("rule 'big_order': condition: 1:", cm.exception.message)
        with self.assertRaises(scrm.ParseError):
            db.rules_load('{"id": ')
        with self.assertRaises(scrm.InvalidError) as cm:
            self.load_coupon_rule(actions=[{"type": "tag.ad", "tag": "x"}])
        self.assertIn("actions[0]", cm.exception.message)
        with self.assertRaises(scrm.InvalidError):
            self.load_coupon_rule(condition="foo.bar == 1")
        with self.assertRaises(scrm.NotFoundError):
            self.load_coupon_rule(limits={"group": "nosuch"})
        with self.assertRaises(scrm.NotFoundError):
            self.load_coupon_rule(actions=[{"type": "tag.add", "tag": "undefined"}])
        with self.assertRaises(TypeError):
            db.rules_load(b"{}")
        with self.assertRaises(TypeError):
            db.rules_get(1)
        self.assertEqual(db.rules_list(), [])

    def test_config(self):
        db = self.db
        cfg = db.rules_config()
        self.assertEqual(cfg["default_tz"], "Asia/Shanghai")
        cfg = db.rules_config_set({"groups": {"marketing": {"max": 3, "per": "7d"}}},
                                  outbox={"max_attempts": 4})
        self.assertEqual(cfg["groups"]["marketing"]["max"], 3)
        self.assertEqual(cfg["outbox"]["max_attempts"], 4)
        self.assertEqual(db.rules_config_set('{"default_tz": "Asia/Tokyo"}')["default_tz"],
                         "Asia/Tokyo")
        self.assertEqual(db.rules_config()["groups"]["marketing"]["per"], "7d", "others kept")
        self.load_coupon_rule(limits={"group": "marketing"})
        with self.assertRaises(scrm.ConflictError):
            db.rules_config_set(groups={"marketing": None})
        with self.assertRaises(scrm.RangeError):
            db.rules_config_set(groups={"x": {"max": 0, "per": "7d"}})
        with self.assertRaises(scrm.InvalidError):
            db.rules_config_set(nosuch=1)
        with self.assertRaises(TypeError):
            db.rules_config_set("{}", default_tz="UTC")
        with self.assertRaises(TypeError):
            db.rules_config_set(["groups"])


class TestOutbox(RulesTestCase):
    def setUp(self):
        super().setUp()
        self.db.rules_config_set(outbox={"backoff": "1m", "max_attempts": 3})
        self.load_coupon_rule()
        self.cid = self.customer()

    def test_event_rule_writes_host_action(self):
        db = self.db
        self.order("T1", self.cid, amount=500)          # condition false: nothing
        self.assertEqual(db.outbox_list(), [])
        self.order("T2", self.cid)
        (a,) = db.outbox_list()
        self.assertEqual((a["action"], a["params"], a["customer"], a["rule"], a["version"],
                          a["state"], a["attempt"]),
                         ("send_coupon", {"coupon": "THANKS"}, self.cid, "big_order", 1,
                          "pending", 0))
        self.assertEqual(a["trigger"]["kind"], "event")
        self.assertRegex(a["key"], "^[0-9a-f]{32}$")
        self.assertEqual(db.outbox_list(state="pending", customer=self.cid, limit=1), [a])
        self.assertEqual(db.outbox_list(state="done"), [])
        with self.assertRaises(scrm.InvalidError):
            db.outbox_list(state="nosuch")
        with self.assertRaises(scrm.NotFoundError):
            db.outbox_list(customer=999)

    def test_take_ack_fail_retry(self):
        db = self.db
        self.order("T1", self.cid)
        (a,) = db.outbox_take(10)
        self.assertEqual((a["state"], a["attempt"]), ("leased", 1))
        self.assertEqual(db.outbox_take(10), [], "leased: not offered again")
        db.outbox_fail(a["id"], "gateway timeout")
        (f,) = db.outbox_list()
        self.assertEqual((f["state"], f["last_error"]), ("failed", "gateway timeout"))
        self.assertEqual(db.outbox_take(), [], "not before the backoff")
        self.now += 61_000
        (b,) = db.outbox_take()
        self.assertEqual((b["id"], b["key"], b["attempt"]), (a["id"], a["key"], 2))
        db.outbox_ack(b["id"])
        db.outbox_ack(b["id"])                          # again: harmless
        self.assertEqual(db.outbox_list()[0]["state"], "done")
        with self.assertRaises(scrm.StateError):
            db.outbox_fail(b["id"], "late")
        with self.assertRaises(scrm.StateError):
            db.outbox_retry(b["id"])
        # permanent failure: dead, then retried
        self.order("T2", self.cid)
        (c,) = db.outbox_take(lease=datetime.timedelta(minutes=1))
        self.assertEqual(c["lease_until"], T0 + 61_000 + 60_000)
        db.outbox_fail(c["id"], "bad coupon", permanent=True)
        self.assertEqual(db.outbox_list(state="dead")[0]["id"], c["id"])
        with self.assertRaises(scrm.StateError):
            db.outbox_ack(c["id"])
        db.outbox_retry(c["id"])
        (d,) = db.outbox_take()
        self.assertEqual((d["id"], d["attempt"]), (c["id"], 1))
        db.outbox_ack(d["id"])
        for call in (db.outbox_ack, db.outbox_retry, db.outbox_fail):
            with self.assertRaises(scrm.NotFoundError):
                call(12345)

    def test_lease_runs_out(self):
        db = self.db
        self.order("T1", self.cid)
        (a,) = db.outbox_take(1, lease=1000)
        self.now += 1001
        (b,) = db.outbox_take(1)
        self.assertEqual((b["id"], b["key"], b["attempt"]), (a["id"], a["key"], 2))

    def test_bad_arguments(self):
        db = self.db
        with self.assertRaises(scrm.RangeError):
            db.outbox_take(0)
        with self.assertRaises(scrm.RangeError):
            db.outbox_take(1001)
        with self.assertRaises(scrm.RangeError):
            db.outbox_take(2 ** 40)                    # caught before C
        with self.assertRaises(scrm.RangeError):
            db.outbox_take(1, lease=8 * DAY)
        with self.assertRaises(TypeError):
            db.outbox_take("1")
        with self.assertRaises(TypeError):
            db.outbox_ack("1")
        with self.assertRaises(scrm.RangeError):
            db.outbox_ack(2 ** 63)
        self.order("T1", self.cid)
        (a,) = db.outbox_take()
        with self.assertRaises(scrm.InvalidError):
            db.outbox_fail(a["id"], "x" * 1025)
        with self.assertRaises(TypeError):
            db.outbox_fail(a["id"], 42)

    def test_iterator_acks_after_body(self):
        db = self.db
        for i in range(3):
            self.order(f"T{i}", self.cid)
        seen = []
        for action in db.outbox():
            # the previous action is acknowledged when the loop asks for this one
            states = {a["id"]: a["state"] for a in db.outbox_list()}
            self.assertEqual(states[action["id"]], "leased")
            self.assertTrue(all(states[s] == "done" for s in seen))
            seen.append(action["id"])
        self.assertEqual(len(seen), 3)
        self.assertEqual({a["state"] for a in db.outbox_list()}, {"done"})

    def test_iterator_fails_on_exception(self):
        db = self.db
        self.order("T1", self.cid)
        self.order("T2", self.cid)
        first = None
        with self.assertRaises(RuntimeError):
            for action in db.outbox():
                first = action["id"]
                raise RuntimeError("gateway down")
        states = {a["id"]: a for a in db.outbox_list()}
        self.assertEqual(states[first]["state"], "failed")
        self.assertIn("left before this action completed", states[first]["last_error"])
        other = [a for i, a in states.items() if i != first][0]
        self.assertEqual(other["state"], "pending", "an action not reached was not taken")

    def test_iterator_with_form_is_exact(self):
        db = self.db
        for i in range(3):
            self.order(f"T{i}", self.cid)
        with self.assertRaises(ValueError):
            with db.outbox() as actions:
                for action in actions:
                    failed = action["id"]
                    raise ValueError("no such coupon")
        a = [x for x in db.outbox_list() if x["id"] == failed][0]
        self.assertEqual((a["state"], a["last_error"]), ("failed", "ValueError: no such coupon"))
        with db.outbox() as actions:
            for action in actions:
                broke = action["id"]
                break
        a = [x for x in db.outbox_list() if x["id"] == broke][0]
        self.assertEqual(a["state"], "done", "break in the with form acknowledges")
        # bare break fails it (the iterator cannot tell break from an exception)
        for action in db.outbox():
            bare = action["id"]
            break
        gc.collect()
        self.assertEqual([x for x in db.outbox_list() if x["id"] == bare][0]["state"], "failed")

    def test_iterator_max_manual_and_ack_false(self):
        db = self.db
        for i in range(4):
            self.order(f"T{i}", self.cid)
        self.assertEqual(len(list(db.outbox(max=2))), 2)
        self.assertEqual(len(db.outbox_list(state="done")), 2)
        it = db.outbox(ack=False)
        taken = [a["id"] for a in it]
        self.assertEqual(len(taken), 2)
        del it
        gc.collect()
        self.assertEqual(len(db.outbox_list(state="leased")), 2, "ack=False settles nothing")
        self.now += 10 * 60_000                           # leases run out
        with db.outbox() as actions:
            for action in actions:
                self.assertIs(actions.current, action)
                if action["id"] == taken[0]:
                    actions.fail("retry later", permanent=True)
                    self.assertIsNone(actions.current, "settled: not acknowledged later")
        states = {a["id"]: a["state"] for a in db.outbox_list()}
        self.assertEqual((states[taken[0]], states[taken[1]]), ("dead", "done"))
        self.assertEqual(list(db.outbox()), [])
        with self.assertRaises(scrm.RangeError):
            db.outbox(max=-1)

    def test_handler_delivers_immediately(self):
        db = self.db
        got = []
        db.outbox_set_handler(lambda action: got.append(action))
        gc.collect()                                   # the binding keeps the trampoline
        self.order("T1", self.cid)
        self.assertEqual([a["action"] for a in got], ["send_coupon"])
        self.assertEqual(got[0]["state"], "leased")
        self.assertEqual(db.outbox_list()[0]["state"], "done", "acknowledged before returning")
        # inside a batch: delivered when it commits
        with db.batch():
            self.order("T2", self.cid)
            self.assertEqual(len(got), 1)
        self.assertEqual(len(got), 2)
        with self.assertRaises(scrm.MisuseError):
            with db.batch():
                db.outbox_deliver()
        db.outbox_set_handler(None)
        self.order("T3", self.cid)
        self.assertEqual(len(got), 2)
        self.assertEqual(len(db.outbox_list(state="pending")), 1, "removed: not delivered")
        with self.assertRaises(scrm.MisuseError):
            db.outbox_deliver()                        # no handler
        with self.assertRaises(TypeError):
            db.outbox_set_handler(42)

    def test_handler_leaves_no_reference_cycle(self):
        # The trampoline reaches the Database through a weak reference: an
        # unclosed Database with a handler is finalized (and its handle
        # closed) as soon as its last reference goes, without the cycle
        # collector.
        closed = []
        orig = _lib.func("scrm_db_close")

        class Spy:
            def __call__(self, h):
                closed.append(h)
                return orig(h)
        db = scrm.open(self.path("cycle.db"))
        db.outbox_set_handler(lambda action: None)
        handle = db._handle
        ref = weakref.ref(db)
        _lib._funcs["scrm_db_close"] = Spy()
        gc.disable()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                del db
            self.assertIsNone(ref(), "no reference cycle keeps the Database alive")
        finally:
            gc.enable()
            _lib._funcs["scrm_db_close"] = orig
        self.assertEqual(closed, [handle])

    def test_handler_exception_becomes_failure(self):
        db = self.db
        calls = []

        def handler(action):
            calls.append(action["id"])
            raise ConnectionError("gateway down")
        db.outbox_set_handler(handler)
        self.order("T1", self.cid)                     # does not raise
        (a,) = db.outbox_list()
        self.assertEqual((a["state"], a["last_error"]), ("failed", "ConnectionError: gateway down"))
        self.assertEqual(db.outbox_deliver(), 0, "not ready before the backoff")
        self.now += 61_000
        db.outbox_set_handler(lambda action: calls.append(action["id"]))
        self.assertEqual(db.outbox_deliver(), 1)
        self.assertEqual(calls, [a["id"], a["id"]])
        self.assertEqual(db.outbox_list()[0]["state"], "done")
        with self.assertRaises(scrm.RangeError):
            db.outbox_deliver(-1)

    def test_handler_base_exception_is_reraised(self):
        class Stop(BaseException):
            pass

        def handler(action):
            raise Stop()
        self.db.outbox_set_handler(handler)
        with self.assertRaises(Stop):
            self.order("T1", self.cid)
        (a,) = self.db.outbox_list()
        self.assertEqual((a["state"], a["last_error"]), ("failed", "Stop: "))
        self.assertEqual(len(self.db.events(self.cid)), 1, "the event was stored")

    def test_handler_may_call_the_database(self):
        db = self.db
        db.tags_define(name="coupon_sent")
        seen = []

        def handler(action):
            seen.append(db.tag_has(action["customer"], "coupon_sent"))
            db.tag_add(action["customer"], "coupon_sent", "outbox")
            try:
                db.close()
            except scrm.MisuseError:
                seen.append("close refused")
            try:
                db.outbox_set_handler(None)
            except scrm.MisuseError:
                seen.append("replace refused")
        db.outbox_set_handler(handler)
        self.order("T1", self.cid)
        self.assertEqual(seen, [False, "close refused", "replace refused"])
        self.assertTrue(db.tag_has(self.cid, "coupon_sent"))
        self.assertFalse(db.closed)
        self.assertEqual(db.outbox_list()[0]["state"], "done")


class TestTickAndTrace(RulesTestCase):
    def setUp(self):
        super().setUp()
        self.db.rules_load({"id": "cart_abandon",
                            "trigger": {"type": "absence", "start": "cart_add",
                                        "missing": "order", "within": "2h"},
                            "condition": "event.props.sku != 'FREE'",
                            "actions": [{"type": "push_message",
                                         "params": {"template": "cart"}}]})
        self.cid = self.customer()

    def cart(self, key, sku="A1"):
        self.db.event_add(key=key, type="cart_add", channel="web", customer=self.cid,
                          props={"sku": sku})

    def test_absence_fires_from_tick(self):
        db = self.db
        self.cart("C1")
        s = db.tick()
        self.assertEqual((s["now"], s["absence"]), (T0, 0))
        self.now += 2 * HOUR + 1
        s = db.tick()
        self.assertEqual((s["now"], s["absence"]), (T0 + 2 * HOUR + 1, 1))
        (a,) = db.outbox_list()
        self.assertEqual((a["action"], a["trigger"]["kind"]), ("push_message", "absence"))
        self.assertEqual(db.tick()["absence"], 0, "fires once")

    def test_tick_with_explicit_now_and_cancel(self):
        db = self.db
        self.cart("C1")
        self.cart("C2", sku="B2")
        self.now += HOUR
        self.order("T1", self.cid)                     # cancels both waits (no match)
        s = db.tick(now=T0 + 3 * HOUR)
        self.assertEqual(s["absence"], 0)
        self.assertEqual(s["now"], T0 + 3 * HOUR)
        outcomes = [t["outcome"] for t in db.trace(self.cid)]
        self.assertEqual(outcomes, ["cancelled_by_event", "cancelled_by_event"])
        self.cart("C3")
        s = db.tick(now=datetime.datetime.fromtimestamp((T0 + 6 * HOUR) / 1000, UTC))
        self.assertEqual(s["absence"], 1)
        with self.assertRaises(scrm.RangeError):
            db.tick(-1)
        with self.assertRaises(TypeError):
            db.tick("now")

    def test_trace_queries(self):
        db = self.db
        self.cart("C1")
        self.cart("C2", sku="FREE")
        self.now += 3 * HOUR
        db.tick()
        recs = db.trace(self.cid)
        self.assertEqual(sorted(r["outcome"] for r in recs), ["condition_false", "fired"])
        fired = [r for r in recs if r["outcome"] == "fired"][0]
        self.assertEqual((fired["rule"], fired["version"], fired["customer"], fired["trigger"]),
                         ("cart_abandon", 1, self.cid, "absence"))
        self.assertEqual(fired["detail"]["actions"][0]["outbox"], db.outbox_list()[0]["id"])
        self.assertNotIn("condition", fired)
        full = db.trace(self.cid, steps=True)
        self.assertTrue(all(r["condition"]["steps"] for r in full))
        self.assertEqual(len(db.trace(rule="cart_abandon", limit=1)), 1)
        self.assertEqual(db.trace(since=T0 + 4 * HOUR), [])
        self.assertEqual(len(db.trace(since=datetime.datetime.fromtimestamp(T0 / 1000, UTC))), 2)
        self.assertEqual(len(db.trace()), 2)
        with self.assertRaises(scrm.NotFoundError):
            db.trace(rule="nosuch")
        with self.assertRaises(scrm.NotFoundError):
            db.trace(customer=999)
        with self.assertRaises(scrm.RangeError):
            db.trace(limit=-1)
        self.assertEqual(db.trace_prune(T0), 0)
        self.assertEqual(db.trace_prune(T0 + 4 * HOUR), 2)
        self.assertEqual(db.trace(), [])


class TestTags(RulesTestCase):
    def test_manual_tags_and_groups(self):
        db = self.db
        cid = self.customer()
        db.tags_group_set(name="level", exclusive=True, description="membership level")
        db.tags_define({"name": "gold", "group": "level"})
        db.tags_define('{"name": "silver", "group": "level"}')
        db.tags_define(name="高价值")
        db.tag_add(cid, "silver", "alice")
        db.tag_add(cid, "gold", "bob")                 # exclusive: silver goes
        db.tag_add(cid, "高价值", "alice")
        self.assertTrue(db.tag_has(cid, "gold"))
        self.assertFalse(db.tag_has(cid, "silver"))
        self.assertFalse(db.tag_has(cid, "nosuch"))
        tags = {t["tag"]: t for t in db.tags_customer(cid)}
        self.assertEqual(set(tags), {"gold", "高价值"})
        self.assertEqual((tags["gold"]["group"], tags["gold"]["source"]), ("level", {"actor": "bob"}))
        hist = db.tags_history(cid)
        self.assertEqual([(h["tag"], h["op"], h["reason"]) for h in hist if h["tag"] != "高价值"],
                         [("gold", "add", None), ("silver", "remove", "exclusive group"),
                          ("silver", "add", None)], "newest first")
        self.assertEqual(hist[-1]["source"], {"actor": "alice"})
        self.assertEqual(len(db.tags_history(cid, limit=1)), 1)
        db.tag_remove(cid, "gold", "carol")
        self.assertFalse(db.tag_has(cid, "gold"))
        listed = db.tags_list()
        self.assertEqual(listed["groups"][0]["name"], "level")
        self.assertIs(listed["groups"][0]["exclusive"], True)
        counts = {t["name"]: (t["kind"], t["customers"]) for t in listed["tags"]}
        self.assertEqual(counts["高价值"], ("manual", 1))
        self.assertEqual(counts["gold"], ("manual", 0))
        with self.assertRaises(scrm.NotFoundError):
            db.tag_add(cid, "nosuch", "alice")
        with self.assertRaises(scrm.NotFoundError):
            db.tag_add(999, "gold", "alice")
        with self.assertRaises(scrm.NotFoundError):
            db.tag_has(999, "gold")
        with self.assertRaises(scrm.InvalidError):
            db.tag_add(cid, "gold", "")
        with self.assertRaises(TypeError):
            db.tag_add(cid, "gold", None)
        with self.assertRaises(scrm.NotFoundError):
            db.tags_define(name="x", group="nosuch")
        with self.assertRaises(scrm.ParseError):
            db.tags_group_set("{")
        with self.assertRaises(TypeError):
            db.tags_define("{}", name="x")

    def test_rule_action_and_rule_tags(self):
        db = self.db
        db.tags_define(name="big_spender")
        db.rules_load({"id": "tagger", "trigger": {"type": "event", "event": "order"},
                       "condition": "event.amount >= 10000",
                       "actions": [{"type": "tag.add", "tag": "big_spender"}]})
        a, b = self.customer(), self.customer("13900139000")
        self.order("T1", a)
        self.order("T2", b, amount=100)
        self.assertTrue(db.tag_has(a, "big_spender"))
        self.assertFalse(db.tag_has(b, "big_spender"))
        (t,) = db.tags_customer(a)
        self.assertEqual(t["source"], {"rule": "tagger", "version": 1})
        # a rule tag: kept current on events, and by refresh for everyone
        db.tags_define(name="repeat", expr="profile.figures.orders >= 2")
        self.assertFalse(db.tag_has(a, "repeat"), "defining evaluates nobody")
        s = db.tags_refresh()
        self.assertEqual(s["tags"]["repeat"], {"holders": 0, "added": 0, "removed": 0,
                                                "version": 1})
        self.order("T3", a)
        self.assertTrue(db.tag_has(a, "repeat"), "kept current on the event")
        (h,) = [x for x in db.tags_history(a) if x["tag"] == "repeat"]
        self.assertEqual(h["source"], {"rule": "tag:repeat", "version": 1})
        db.tags_define(name="repeat", expr="profile.figures.orders >= 1")
        s = db.tags_refresh("repeat")
        self.assertEqual((s["tags"]["repeat"]["holders"], s["tags"]["repeat"]["added"],
                          s["tags"]["repeat"]["version"]), (2, 1, 2))
        self.assertGreaterEqual(s["customers"], 2)
        self.assertTrue(db.tag_has(b, "repeat"))
        kinds = {t["name"]: t for t in db.tags_list()["tags"]}
        self.assertEqual((kinds["repeat"]["kind"], kinds["repeat"]["expr"]),
                         ("rule", "profile.figures.orders >= 1"))
        with self.assertRaises(scrm.StateError):
            db.tag_add(a, "repeat", "alice")
        with self.assertRaises(scrm.InvalidError):
            db.tags_refresh("big_spender")           # manual
        with self.assertRaises(scrm.NotFoundError):
            db.tags_refresh("nosuch")
        with self.assertRaises(scrm.ParseError) as cm:
            db.tags_define(name="bad", expr="profile.figures.orders >=")
        self.assertIn("1:26:", cm.exception.message)   # the position in the expression
        with self.assertRaises(scrm.InvalidError):
            db.tags_define(name="bad", expr="event.amount > 1")


class TestSegments(RulesTestCase):
    def setUp(self):
        super().setUp()
        self.ids = []
        for i in range(5):
            cid = self.customer(f"1390013900{i}")
            self.ids.append(cid)
            for k in range(i):
                self.order(f"T{i}-{k}", cid)

    def test_count_ids_explain(self):
        db = self.db
        expr = "profile.figures.orders >= 2"
        self.assertEqual(db.segment_count(expr), 3)
        self.assertEqual(list(db.segment_ids(expr)), self.ids[2:])
        self.assertEqual(list(db.segment_ids(expr, page=1)), self.ids[2:])
        self.assertEqual(list(db.segment_ids("profile.figures.orders >= 0", page=2)),
                         sorted(self.ids))
        self.assertEqual(list(db.segment_ids(expr, page=3)), self.ids[2:], "exact page size")
        self.assertEqual(list(db.segment_ids("profile.figures.orders > 100")), [])
        plan = db.segment_explain(expr)
        self.assertEqual(plan["plan"], "sql")
        self.assertIn("SELECT", plan["sql"])
        scan = db.segment_explain("lower(profile.lifecycle ?? '') == 'new'")
        self.assertEqual(scan["plan"], "scan")
        self.assertTrue(scan["why"])
        db.set_attributes(self.ids[0], level="gold")
        self.assertEqual(db.segment_count("profile.attributes.level == 'gold'"), 1)

    def test_errors_raise_at_call(self):
        db = self.db
        for call in (db.segment_count, db.segment_ids, db.segment_explain):
            with self.assertRaises(scrm.ParseError):
                call("profile.figures.orders >=")
            with self.assertRaises(scrm.InvalidError):
                call("event.amount > 1")
            with self.assertRaises(TypeError):
                call(None)
        with self.assertRaises(scrm.RangeError):
            db.segment_ids("true", page=0)
        with self.assertRaises(scrm.RangeError):
            db.segment_ids("true", page=2 ** 40)


class TestBoundary(RulesTestCase):
    def test_every_output_is_freed_once(self):
        db = self.db
        db.tags_define(name="t")
        self.load_coupon_rule()
        cid = self.customer()
        with OwnershipLedger() as ledger:
            db.rules_list()
            db.rules_get("big_order")
            db.rules_config()
            with self.assertRaises(scrm.NotFoundError):
                db.rules_get("nosuch")
            self.order("T1", cid)
            db.outbox_list()
            for a in db.outbox_take():
                db.outbox_ack(a["id"])
            db.trace(steps=True)
            db.tick()
            db.tags_list()
            db.tag_add(cid, "t", "x")
            db.tags_customer(cid)
            db.tags_history(cid)
            list(db.segment_ids("true", page=1))
            db.segment_explain("true")
            with self.assertRaises(scrm.ParseError):
                db.segment_explain("(")
        self.assertTrue(ledger.produced)
        self.assertTrue(ledger.balanced(), (ledger.produced, ledger.freed))

    def test_closed_database(self):
        db = scrm.open()
        db.close()
        with self.assertRaises(scrm.MisuseError):
            db.rules_list()
        with self.assertRaises(scrm.MisuseError):
            db.outbox_set_handler(None)
        with self.assertRaises(scrm.MisuseError):
            list(db.outbox())


if __name__ == "__main__":
    unittest.main()
