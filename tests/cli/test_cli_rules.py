#!/usr/bin/env python3
"""End-to-end tests of the rule engine commands of the scrm tool: expr eval,
rules, tick, trace, outbox, tags, tag, segment.

Runs the binary named by $SCRM_EXE, each test in a fresh temporary directory
(the harness of test_cli.py).
"""
import json
import os
import pty
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_cli import SCRM, SOURCE_ROOT, ScrmTestCase, ev, obs  # noqa: E402

T0 = 1767225600000  # 2026-01-01T00:00:00Z
HOUR = 3600_000
DAY = 24 * HOUR

ORDER_RULE = {
    "id": "thanks", "name": "Thank-you coupon",
    "trigger": {"type": "event", "event": "order"},
    "condition": "event.amount >= 10000",
    "actions": [{"type": "send_coupon", "params": {"coupon": "THANKS"}, "consent": "marketing"},
                {"type": "tag.add", "tag": "thanked"}],
}
CART_RULE = {
    "id": "cart_abandon", "priority": 20,
    "trigger": {"type": "absence", "start": "cart_add", "missing": "order", "within": "72h"},
    "actions": [{"type": "push_message", "params": {"template": "cart"}}],
}


class RulesTestCase(ScrmTestCase):
    def setUp(self):
        super().setUp()
        self.init()

    def customer(self, phone="13800138000"):
        return self.ok_json("observe", obs("wecom", {"phone": phone}))["customer"]

    def add(self, key, **fields):
        return self.ok_json("event", "add", ev(key, **fields))

    def load(self, rules):
        self.write("rules.json", json.dumps(rules))
        return self.ok_json("rules", "load", "rules.json")

    def setup_order_rule(self):
        """A customer with marketing consent, the `thanked` tag and the order rule."""
        cid = self.customer()
        self.ok("consent", str(cid), "marketing", "grant")
        self.ok("tags", "define", '{"name":"thanked"}')
        self.load(ORDER_RULE)
        return cid


class TestExpr(ScrmTestCase):
    def test_eval(self):
        self.assertEqual(self.ok("expr", "eval", "1 + 2 * 3"), "7\n")
        self.assertEqual(self.ok("expr", "eval", '"a" + "b"'), '"ab"\n')
        self.assertEqual(self.ok("expr", "eval", '[1, "a"]'),
                         '[1,"a"]\n')
        bind = '{"event":{"amount":12900,"props":{"sku":"A1"}},"profile":{"level":"gold"}}'
        self.assertEqual(self.ok("expr", "eval", 'event.amount >= 10000 && profile.level == "gold"',
                                 "--bind", bind), "true\n")
        self.assertEqual(self.ok("expr", "eval", "event.props.sku", "-b", bind), '"A1"\n')
        self.assertEqual(self.ok("expr", "eval", "has(event.nothing)", "--bind", bind), "false\n")
        self.assertEqual(self.ok("expr", "eval", "missing.path"), "null\n")
        self.assertEqual(self.ok("--json", "expr", "eval", "40 + 2"), "42\n")
        # --now: ms or ISO 8601
        self.assertEqual(self.ok("expr", "eval", "now()", "--now", str(T0)), f"{T0}\n")
        self.assertEqual(self.ok("expr", "eval", "now()", "--now", "2026-01-01T08:00:00+08:00"),
                         f"{T0}\n")
        self.assertEqual(self.ok("expr", "eval", "days_since(t)", "--now", "2026-01-11",
                                 "--bind", json.dumps({"t": T0})), "10\n")
        # without --now the clock is used
        self.assertGreater(int(self.ok("expr", "eval", "now()")), T0)
        self.assertFalse(os.path.exists(self.path("scrm.db")), "expr eval needs no database")

    def test_trace(self):
        bind = '{"a":{"b":2}}'
        out = self.ok("expr", "eval", "a.b > 1 && c", "--bind", bind, "--trace")
        self.assertRegex(out, r"(?m)^1:9\s+a\.b > 1 && c   = null$")
        self.assertRegex(out, r"(?m)^1:1\s+a\.b   = 2$")
        self.assertRegex(out, r"(?m)^1:12\s+c   = null \(missing\)$")
        self.assertRegex(out, r"(?m)^result: null   \(cost \d+\)$")
        out = self.ok("expr", "eval", "false && x", "-t")
        self.assertRegex(out, r"(?m)^1:10\s+x   \(not evaluated\)$")
        t = self.ok_json("expr", "eval", "a.b * 10", "--bind", bind, "--trace")
        self.assertEqual((t["ok"], t["value"]), (True, 20))
        self.assertEqual([s["expr"] for s in t["steps"]], ["a.b * 10", "a.b", "10"])
        # a failing evaluation is traced, and exits 1
        r = self.run_scrm("--json", "expr", "eval", "1 / (a.b - 2)", "--bind", bind, "--trace")
        self.assertEqual(r.returncode, 1, r.stderr)
        t = json.loads(r.stdout)
        self.assertFalse(t["ok"])
        self.assertIn("division by zero", t["error"])
        self.assertIn("division by zero", r.stderr)

    def test_compile_error(self):
        err = self.fails(1, "expr", "eval", "event.amount >= 10000 &&")
        self.assertRegex(err, r"^scrm: expr eval: 1:25: expected .*\(parse error\)\n")
        # the source line and a caret under the column
        lines = err.splitlines()
        self.assertEqual(lines[1], "  event.amount >= 10000 &&")
        self.assertEqual(lines[2], "  " + " " * 24 + "^")
        err = self.fails(1, "expr", "eval", "1 +\n  (2 *")
        self.assertIn("scrm: expr eval: 2:7: ", err)
        self.assertIn("(parse error)", self.fails(1, "expr", "eval", "nosuchfn(1)"))

    def test_eval_errors(self):
        self.assertRegex(self.fails(1, "expr", "eval", "1 / 0"),
                         r"^scrm: expr eval: 1:\d+: division by zero \(evaluation error\)\n$")
        err = self.fails(1, "expr", "eval", "x + 1", "--bind", '{"x":"a"}')
        self.assertIn("(evaluation error)", err)
        err = self.fails(1, "expr", "eval", 'has_tag("vip")')
        self.assertIn("has_tag", err)
        err = self.fails(1, "expr", "eval", "x", "--bind", "{bad")
        self.assertRegex(err, r"^scrm: expr eval: --bind: json 1:\d+: .*\(parse error\)\n$")
        self.assertIn("(invalid argument)", self.fails(1, "expr", "eval", "x", "--bind", "[1]"))
        self.assertIn("(invalid argument)",
                      self.fails(1, "expr", "eval", "x", "--bind", '{"x":1.5}'))

    def test_usage(self):
        self.assertIn("missing argument", self.usage_error("expr", "eval"))
        self.assertIn("missing subcommand", self.usage_error("expr"))
        self.assertIn("--now must be", self.usage_error("expr", "eval", "now()", "--now", "later"))
        self.assertIn("needs an argument", self.usage_error("expr", "eval", "1", "--bind"))
        self.assertIn("unexpected argument", self.usage_error("expr", "eval", "1", "2"))
        self.assertIn("unknown option '--frob'", self.usage_error("expr", "eval", "1", "--frob"))


class TestHelp(ScrmTestCase):
    def test_overview_lists_the_commands(self):
        out = self.ok("--help")
        for cmd in ("expr", "rules", "tick", "trace", "outbox", "tags", "tag", "segment"):
            self.assertRegex(out, rf"(?m)^  {cmd}\s+\S")
        self.assertIn("rules and the outbox:", out)
        self.assertIn("tags and segments:", out)

    def test_help_per_command(self):
        for cmd, subs in (("expr", ["eval"]),
                          ("rules", ["load", "list", "show", "disable", "enable", "remove",
                                     "config"]),
                          ("outbox", ["take", "ack", "fail", "retry", "list"]),
                          ("trace", ["customer", "rule"]),
                          ("tags", ["define", "group", "list", "refresh", "show", "history"]),
                          ("tag", ["add", "remove"]),
                          ("segment", ["count", "export", "explain"])):
            out = self.ok("help", cmd)
            self.assertTrue(out.startswith(f"usage: scrm {cmd} "), out)
            for sub in subs:
                self.assertRegex(out, rf"(?m)^  {cmd} {sub}\b")
                h = self.ok("help", cmd, sub)
                self.assertTrue(h.startswith(f"usage: scrm {cmd} {sub}"), h)
                self.assertEqual(self.ok(cmd, sub, "--help"), h)
        self.assertTrue(self.ok("help", "tick").startswith("usage: scrm tick [--now T]"))
        self.assertIn("--bind JSON", self.ok("expr", "eval", "--help"))
        self.assertIn("--lease DUR", self.ok("help", "outbox", "take"))
        self.assertFalse(os.path.exists(self.path("scrm.db")))


class TestRules(RulesTestCase):
    def setUp(self):
        super().setUp()
        self.ok("tags", "define", '{"name":"thanked"}')

    def test_load_and_versions(self):
        out = self.ok("rules", "load", self.write("r.json", json.dumps([ORDER_RULE, CART_RULE])))
        self.assertEqual(out, "rule thanks: version 1, loaded\nrule cart_abandon: version 1, loaded\n")
        # the same definitions again (other spacing, other order of members): unchanged
        again = json.dumps([dict(reversed(list(ORDER_RULE.items()))), CART_RULE], indent=2)
        out = self.ok("rules", "load", "-", input=again)
        self.assertEqual(out, "rule thanks: version 1, unchanged\n"
                              "rule cart_abandon: version 1, unchanged\n")
        changed = dict(ORDER_RULE, condition="event.amount >= 20000", enabled=False)
        rep = self.ok_json("rules", "load", "-", input=json.dumps(changed))
        self.assertEqual(rep, {"rules": [{"id": "thanks", "version": 2, "changed": True,
                                          "enabled": False}]})
        self.assertEqual(self.ok("rules", "load", "-", input=json.dumps(changed)),
                         "rule thanks: version 2, unchanged (disabled)\n")

        show = self.ok_json("rules", "show", "thanks")
        self.assertEqual((show["version"], show["current_version"], show["condition"]),
                         (2, 2, "event.amount >= 20000"))
        v1 = self.ok_json("rules", "show", "thanks", "--version", "1")
        self.assertEqual((v1["version"], v1["condition"]), (1, "event.amount >= 10000"))
        self.assertEqual(self.ok_json("rules", "show", "thanks", "--version=2")["version"], 2)
        human = self.ok("rules", "show", "cart_abandon")
        self.assertGreater(human.count("\n"), 5, "indented for reading")
        self.assertEqual(json.loads(human)["trigger"]["within"], "72h")
        self.assertIn("(not found)", self.fails(1, "rules", "show", "thanks", "--version", "3"))
        self.assertIn("--version must be a positive integer",
                      self.usage_error("rules", "show", "thanks", "--version", "x"))

    def test_load_errors(self):
        bad = dict(ORDER_RULE, condition="event.amount >=")
        err = self.fails(1, "rules", "load", "-", input=json.dumps([CART_RULE, bad]))
        self.assertRegex(err, r"^scrm: rules load: rule 'thanks': condition: 1:\d+: .*"
                              r"\(parse error\)\n")
        self.assertIn("no rule was changed", err)
        self.assertEqual(self.ok_json("rules", "list"), [], "all or nothing")
        err = self.fails(1, "rules", "load", "-", input='{"id":"x",')
        self.assertIn("(parse error)", err)
        err = self.fails(1, "rules", "load", "-",
                         input=json.dumps(dict(ORDER_RULE, actions=[{"type": "tag.ad", "tag": "x"}])))
        self.assertIn("unknown action 'tag.ad'", err)
        self.assertIn("(invalid argument)", err)
        err = self.fails(1, "rules", "load", "-",
                         input=json.dumps(dict(ORDER_RULE, limits={"group": "nope"})))
        self.assertIn("(not found)", err)
        self.assertIn("cannot open 'missing.json'", self.fails(1, "rules", "load", "missing.json"))
        self.usage_error("rules", "load")
        self.usage_error("rules", "load", "a.json", "b.json")

    def test_list_enable_disable_remove(self):
        self.ok("rules", "config", '{"groups":{"marketing":{"max":3,"per":"7d"}}}')
        self.load([dict(ORDER_RULE, priority=10, limits={"group": "marketing"}), CART_RULE])
        out = self.ok("rules", "list")
        lines = out.splitlines()
        self.assertRegex(lines[0], r"^rule\s+ver\s+state\s+prio\s+trigger\s+on\s+group\s+updated$")
        self.assertRegex(lines[1], r"^thanks\s+1 enabled\s+10\s+event\s+order\s+marketing\s+"
                                   r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ  Thank-you coupon$")
        self.assertRegex(lines[2], r"^cart_abandon\s+1 enabled\s+20\s+absence\s+cart_add\s+-\s")
        self.assertEqual(lines[3], "(2 rules)")
        lst = self.ok_json("rules", "list")
        self.assertEqual([r["id"] for r in lst], ["thanks", "cart_abandon"])
        self.assertEqual(lst[0]["group"], "marketing")

        self.assertEqual(self.ok("rules", "disable", "thanks"), "rule thanks disabled\n")
        self.assertFalse(self.ok_json("rules", "show", "thanks")["enabled"])
        self.assertRegex(self.ok("rules", "list"), r"(?m)^thanks\s+1 disabled\s")
        self.assertEqual(self.ok_json("rules", "enable", "thanks"),
                         {"rule": "thanks", "enabled": True})
        self.assertTrue(self.ok_json("rules", "show", "thanks")["enabled"])
        self.assertEqual(self.ok_json("rules", "disable", "thanks"),
                         {"rule": "thanks", "enabled": False})
        self.assertEqual(self.ok("rules", "remove", "cart_abandon"), "rule cart_abandon removed\n")
        self.assertEqual([r["id"] for r in self.ok_json("rules", "list")], ["thanks"])
        self.assertTrue(self.ok_json("rules", "show", "cart_abandon")["removed"])
        self.assertEqual(self.ok_json("rules", "remove", "thanks"),
                         {"rule": "thanks", "removed": True})
        self.assertEqual(self.ok("rules", "list"), "rule                      ver state     prio  "
                                                   "trigger  on             group        updated\n"
                                                   "(0 rules)\n")
        for verb in ("show", "enable", "disable", "remove"):
            err = self.fails(1, "rules", verb, "no_such_rule")
            self.assertRegex(err, rf"^scrm: rules {verb}: .*no_such_rule.*\(not found\)\n$")
            self.assertIn("missing argument", self.usage_error("rules", verb))
        self.assertIn("unexpected argument", self.usage_error("rules", "list", "x"))
        self.assertIn("unknown subcommand 'frob'", self.usage_error("rules", "frob"))

    def test_config(self):
        conf = self.ok_json("rules", "config")
        self.assertEqual(conf["default_tz"], "Asia/Shanghai")
        self.assertEqual(conf["outbox"]["max_attempts"], 10)
        out = self.ok("rules", "config", '{"groups":{"marketing":{"max":2,"per":"week"}},'
                                         '"outbox":{"max_attempts":3}}')
        self.assertGreater(out.count("\n"), 5, "indented for reading")
        conf = json.loads(out)
        self.assertEqual(conf["groups"]["marketing"]["max"], 2)
        self.assertEqual(conf["outbox"]["max_attempts"], 3)
        self.assertEqual(self.ok_json("rules", "config")["groups"]["marketing"]["per"], "week")
        self.assertIn("(invalid argument)", self.fails(1, "rules", "config", '{"bogus":1}'))
        self.assertIn("(parse error)", self.fails(1, "rules", "config", "{"))
        self.usage_error("rules", "config", "{}", "{}")
        # a group still used by a rule cannot go
        self.load(dict(ORDER_RULE, limits={"group": "marketing"}))
        self.assertIn("(constraint or conflict)",
                      self.fails(1, "rules", "config", '{"groups":{"marketing":null}}'))


class TestOutboxTickTrace(RulesTestCase):
    def test_outbox_cycle(self):
        cid = self.setup_order_rule()
        c = str(cid)
        self.assertEqual(self.ok("outbox", "take"), "(0 actions)\n")
        self.add("O1", customer=cid, amount=12900)
        self.add("O2", customer=cid, amount=500)  # condition false: nothing queued
        pending = self.ok_json("outbox", "list", "--state", "pending")
        self.assertEqual(len(pending), 1)
        a = pending[0]
        self.assertEqual((a["action"], a["params"], a["customer"], a["rule"], a["attempt"]),
                         ("send_coupon", {"coupon": "THANKS"}, cid, "thanks", 0))
        self.assertRegex(a["key"], r"^[0-9a-f]{32}$")
        aid = str(a["id"])

        out = self.ok("outbox", "take", "--max", "5", "--lease", "1m")
        self.assertRegex(out, rf"(?m)^#{aid}  send_coupon\s+leased\s+customer {cid}  rule thanks v1"
                              r"  attempt 1$")
        self.assertRegex(out, rf"(?m)^    key {a['key']}  created .*  lease until \d{{4}}-")
        self.assertIn('    params {"coupon":"THANKS"}\n', out)
        self.assertTrue(out.endswith("(1 action)\n"))
        self.assertEqual(self.ok_json("outbox", "take"), [], "leased: not offered again")
        self.assertEqual([x["state"] for x in self.ok_json("outbox", "list", "-c", c)], ["leased"])

        # fail, retry, fail for good, retry, ack
        self.assertEqual(self.ok("outbox", "fail", aid, "--error", "gateway timeout"),
                         f"action {aid} failed (offered again after the backoff)\n")
        failed = self.ok_json("outbox", "list", "--state", "failed")
        self.assertEqual((len(failed), failed[0]["last_error"]), (1, "gateway timeout"))
        self.assertIn("last error: gateway timeout", self.ok("outbox", "list"))
        self.assertEqual(self.ok_json("outbox", "retry", aid), {"id": int(aid), "retried": True})
        taken = self.ok_json("outbox", "take", "-n", "1")
        self.assertEqual([x["id"] for x in taken], [int(aid)])
        self.assertEqual(self.ok_json("outbox", "fail", aid, "--permanent", "-e", "bad coupon"),
                         {"id": int(aid), "failed": True, "permanent": True})
        self.assertEqual(self.ok_json("outbox", "list", "--state", "dead")[0]["id"], int(aid))
        self.assertIn("(illegal state transition)", self.fails(1, "outbox", "ack", aid))
        self.assertRegex(self.ok("outbox", "retry", aid), rf"^action {aid} is ready again")
        self.ok("outbox", "take")
        self.assertEqual(self.ok("outbox", "ack", aid), f"action {aid} acknowledged (done)\n")
        self.assertEqual(self.ok_json("outbox", "ack", aid), {"acknowledged": [int(aid)]},
                         "acknowledging again is fine")
        self.assertEqual([x["state"] for x in self.ok_json("outbox", "list")], ["done"])
        self.assertIn("(illegal state transition)", self.fails(1, "outbox", "fail", aid))
        self.assertIn("(illegal state transition)", self.fails(1, "outbox", "retry", aid))

        # unknown ids; all or nothing for several
        self.add("O3", customer=cid, amount=20000, at=T0 + DAY)
        new = str(self.ok_json("outbox", "list", "--state", "pending")[0]["id"])
        err = self.fails(1, "outbox", "ack", new, "999")
        self.assertIn("action 999: ", err)
        self.assertIn("(not found)", err)
        self.assertIn("no action was acknowledged", err)
        self.assertEqual(self.ok_json("outbox", "list", "--state", "pending")[0]["id"], int(new))
        self.assertEqual(self.ok_json("outbox", "ack", new, aid),
                         {"acknowledged": [int(new), int(aid)]})
        self.assertIn("(not found)", self.fails(1, "outbox", "fail", "999"))
        self.assertIn("(not found)", self.fails(1, "outbox", "retry", "999"))
        self.assertEqual(len(self.ok_json("outbox", "list", "--limit", "1")), 1)
        self.assertEqual(len(self.ok_json("outbox", "list", "--state", "done")), 2)
        self.assertIn("(invalid argument)", self.fails(1, "outbox", "list", "--state", "bogus"))
        self.assertIn("(not found)", self.fails(1, "outbox", "list", "--customer", "99"))

        # usage errors
        self.assertIn("--max must be a positive integer", self.usage_error("outbox", "take", "--max", "0"))
        self.assertIn("--max must be at most 1000", self.usage_error("outbox", "take", "-n", "1001"))
        self.assertIn("--lease must be milliseconds or a duration",
                      self.usage_error("outbox", "take", "--lease", "5x"))
        self.assertIn("--lease must be longer than 0",
                      self.usage_error("outbox", "take", "--lease", "0"))
        self.assertIn("(out of range)", self.fails(1, "outbox", "take", "--lease", "8d"))
        self.assertIn("action id must be a positive integer, not 'x'",
                      self.usage_error("outbox", "ack", "1", "x"))
        self.usage_error("outbox", "ack")
        self.usage_error("outbox", "fail")
        self.usage_error("outbox", "fail", "1", "--error")
        self.usage_error("outbox", "retry", "0")
        self.usage_error("outbox", "list", "--customer", "abc")
        self.usage_error("outbox", "list", "--limit", "-1")

    def test_lease_runs_out(self):
        cid = self.setup_order_rule()
        self.add("O1", customer=cid, amount=12900)
        first = self.ok_json("outbox", "take", "--lease", "1000")  # 1 s, in ms
        self.assertEqual(len(first), 1)
        time.sleep(1.3)
        again = self.ok_json("outbox", "take")
        self.assertEqual([(a["id"], a["key"], a["attempt"]) for a in again],
                         [(first[0]["id"], first[0]["key"], 2)], "offered again, same key")

    def test_tick_fires_absence(self):
        cid = self.customer()
        self.load(CART_RULE)
        self.add("C1", type="cart_add", customer=cid, at=T0)
        s = self.ok_json("tick", "--now", str(T0 + 71 * HOUR))
        self.assertEqual((s["now"], s["absence"]), (T0 + 71 * HOUR, 0))
        self.assertEqual(self.ok_json("outbox", "list"), [])
        out = self.ok("tick", "--now", "2026-01-04T01:00:00Z")  # T0 + 73h
        self.assertRegex(out, r"(?m)^tick at\s+2026-01-04 01:00:00Z$")
        self.assertRegex(out, r"(?m)^absence\s+1   absence waits fired$")
        for key in ("scheduled", "date", "deferred", "dropped"):
            self.assertRegex(out, rf"(?m)^{key}\s+0\s")
        acts = self.ok_json("outbox", "list")
        self.assertEqual([(a["action"], a["trigger"]["kind"]) for a in acts],
                         [("push_message", "absence")])
        self.assertEqual(self.ok_json("tick", "--now", "2026-01-05")["absence"], 0, "fires once")
        self.ok("tick")  # the clock
        self.assertIn("--now must be", self.usage_error("tick", "--now", "tomorrow"))
        self.assertIn("--now must be after the epoch", self.usage_error("tick", "--now", "0"))
        self.assertIn("(out of range)", self.fails(1, "tick", "--now", "999999999999999"))
        self.usage_error("tick", "extra")

    def test_absence_cancelled_by_order(self):
        cid = self.customer()
        self.load(CART_RULE)
        self.add("C1", type="cart_add", customer=cid, at=T0)
        self.add("O1", customer=cid, at=T0 + 10 * HOUR)
        self.assertEqual(self.ok_json("tick", "--now", str(T0 + 80 * HOUR))["absence"], 0)
        trace = self.ok_json("trace", "rule", "cart_abandon")
        self.assertEqual([t["outcome"] for t in trace], ["cancelled_by_event"])
        self.assertRegex(self.ok("trace", "customer", str(cid)),
                         r"(?m)  cart_abandon v1  customer \d+  absence ev:\d+  cancelled_by_event$")

    def test_trace(self):
        cid = self.setup_order_rule()
        other = self.customer("13900139000")  # no consent
        self.add("O1", customer=cid, amount=12900)
        self.add("O2", customer=cid, amount=100)
        self.add("O3", customer=other, amount=50000)
        out = self.ok("trace", "customer", str(cid))
        recs = re.findall(r"(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ  thanks v1  customer (\d+)  "
                          r"event ev:(\d+)  (\w+)$", out)
        self.assertEqual([(int(c), o) for c, _, o in recs],
                         [(cid, "condition_false"), (cid, "fired")])
        self.assertRegex(out, r'(?m)^    detail  \{"actions":\[\{"action":"send_coupon","outbox":\d+')
        self.assertTrue(out.endswith("(2 records)\n"))
        self.assertNotIn("condition:", out)
        t = self.ok_json("trace", "customer", str(cid), "--limit", "1")
        self.assertEqual([x["outcome"] for x in t], ["condition_false"])
        self.assertNotIn("condition", t[0])
        t = self.ok_json("trace", "customer", str(cid), "--steps")
        self.assertEqual(t[1]["condition"]["value"], True)
        out = self.ok("trace", "customer", str(cid), "--steps", "-n", "1")
        self.assertIn("    condition:\n", out)
        self.assertRegex(out, r"(?m)^      1:14\s+event\.amount >= 10000   = false$")
        self.assertRegex(out, r"(?m)^      1:1\s+  event\.amount   = 100$")
        rule = self.ok_json("trace", "rule", "thanks")
        self.assertEqual(sorted((x["customer"], x["outcome"]) for x in rule),
                         sorted([(cid, "fired"), (cid, "condition_false"),
                                 (other, "no_consent")]))
        self.assertEqual(self.ok_json("trace", "rule", "thanks", "--since", "2100-01-01"), [])
        self.assertRegex(self.ok("trace", "rule", "thanks", "-n", "1"),
                         r"no_consent\n    detail  \{\"purpose\":\"marketing\"\}\n\(1 record\)\n$")
        self.assertIn("(not found)", self.fails(1, "trace", "rule", "no_such_rule"))
        self.assertIn("(not found)", self.fails(1, "trace", "customer", "99"))
        self.assertIn("customer id must be a positive integer",
                      self.usage_error("trace", "customer", "x"))
        self.assertIn("--limit must be a positive integer",
                      self.usage_error("trace", "rule", "thanks", "--limit", "0"))
        self.usage_error("trace", "rule")
        self.usage_error("trace", "customer", "1", "--since", "yesterday")
        self.assertIn("unknown subcommand 'event'", self.usage_error("trace", "event", "1"))


class TestTags(RulesTestCase):
    def test_groups_and_manual_tags(self):
        cid = self.customer()
        c = str(cid)
        self.assertEqual(self.ok("tags", "group", '{"name":"level","exclusive":true,'
                                                  '"description":"membership"}'),
                         "tag group level set (exclusive)\n")
        self.assertEqual(self.ok_json("tags", "group", '{"name":"interest"}'), {"group": "interest"})
        self.assertEqual(self.ok("tags", "define", '{"name":"gold","group":"level"}'),
                         "tag gold defined in group level\n")
        self.write("tags.json", json.dumps([{"name": "silver", "group": "level"},
                                            {"name": "茶", "group": "interest",
                                             "description": "tea lover"}]))
        self.assertEqual(self.ok_json("tags", "define", "--file", "tags.json"), {"tags_defined": 2})

        self.assertEqual(self.ok("tag", "add", c, "silver", "--actor", "alice"),
                         f"customer {cid} holds tag silver (by alice)\n")
        self.assertEqual(self.ok_json("tag", "add", c, "gold", "-a", "bob"),
                         {"customer": cid, "tag": "gold", "has": True})
        self.ok("tag", "add", c, "茶", "--actor", "alice")
        shown = self.ok_json("tags", "show", c)
        self.assertEqual(sorted(t["tag"] for t in shown), ["gold", "茶"], "exclusive: silver went")
        self.assertEqual([t["source"] for t in shown if t["tag"] == "gold"], [{"actor": "bob"}])
        out = self.ok("tags", "show", c)
        self.assertTrue(out.startswith(f"tags of customer {cid} (2):\n"), out)
        self.assertRegex(out, r"(?m)^  gold\s+level\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+actor bob$")
        self.assertRegex(out, r"(?m)^  茶\s+interest\s+\d{4}-")

        self.assertEqual(self.ok("tag", "remove", c, "gold", "--actor", "carol"),
                         f"customer {cid} does not hold tag gold (by carol)\n")
        self.assertEqual(self.ok_json("tag", "remove", c, "gold", "--actor", "carol")["has"], False)
        hist = self.ok_json("tags", "history", c)
        self.assertEqual([(h["op"], h["tag"]) for h in hist],
                         [("remove", "gold"), ("add", "茶"), ("add", "gold"),
                          ("remove", "silver"), ("add", "silver")])
        self.assertEqual(hist[3]["reason"], "exclusive group")
        out = self.ok("tags", "history", c, "--limit", "2")
        self.assertTrue(out.startswith(f"tag changes of customer {cid} (2):\n"), out)
        self.assertRegex(out, r"(?m)^  \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+remove\s+gold\s+actor carol$")
        self.assertRegex(self.ok("tags", "history", c), r"(?m)\s+remove\s+silver\s+actor bob"
                                                         r"  \(exclusive group\)$")

        lst = self.ok_json("tags", "list")
        self.assertEqual([g["name"] for g in lst["groups"]], ["interest", "level"])
        counts = {t["name"]: t["customers"] for t in lst["tags"]}
        self.assertEqual(counts, {"gold": 0, "silver": 0, "茶": 1})
        out = self.ok("tags", "list")
        self.assertRegex(out, r"(?m)^groups \(2\):$")
        self.assertRegex(out, r"(?m)^  level\s+exclusive membership$")
        self.assertRegex(out, r"(?m)^tags \(3\):$")
        self.assertRegex(out, r"(?m)^  茶\s+interest\s+manual\s+1 customer  \(tea lover\)$")
        self.assertRegex(out, r"(?m)^  gold\s+level\s+manual\s+0 customers$")

        # failures
        self.assertIn("(not found)", self.fails(1, "tag", "add", c, "platinum"))
        self.assertIn("(not found)", self.fails(1, "tag", "add", "99", "gold"))
        self.assertIn("(not found)", self.fails(1, "tags", "show", "99"))
        self.assertIn("(not found)", self.fails(1, "tags", "define", '{"name":"x","group":"nope"}'))
        self.assertIn("(parse error)", self.fails(1, "tags", "define", '{"name":'))
        self.assertIn("(parse error)", self.fails(1, "tags", "group", '{"name":'))
        # an array is all or nothing
        self.write("bad.json", json.dumps([{"name": "bronze", "group": "level"},
                                           {"name": "y", "group": "nope"}]))
        err = self.fails(1, "tags", "define", "-f", "bad.json")
        self.assertIn("tag 2 of the array (\"y\")", err)
        self.assertIn("no tag was changed", err)
        self.assertNotIn("bronze", [t["name"] for t in self.ok_json("tags", "list")["tags"]])
        self.assertIn("give one JSON definition or --file FILE", self.usage_error("tags", "define"))
        self.usage_error("tags", "define", "{}", "--file", "tags.json")
        self.usage_error("tags", "group")
        self.usage_error("tag", "add", c)
        self.assertIn("customer id must be a positive integer", self.usage_error("tag", "add", "x", "gold"))
        self.usage_error("tags", "history", c, "--limit", "0")
        self.usage_error("tags", "show")

    def test_rule_tags_and_refresh(self):
        a = self.customer()
        b = self.customer("13900139000")
        self.add("A1", customer=a, amount=1000)
        self.add("A2", customer=a, amount=1000, at=T0 + 1)
        self.add("B1", customer=b, amount=1000)
        out = self.ok("tags", "define", '{"name":"repeat","expr":"profile.figures.orders >= 2"}')
        self.assertEqual(out, "tag repeat defined (rule tag: profile.figures.orders >= 2; run "
                              "'scrm tags refresh' to apply it to everyone)\n")
        self.assertEqual(self.ok_json("tags", "show", str(a)), [], "defining evaluates nobody")
        out = self.ok("tags", "refresh")
        self.assertRegex(out, r"(?m)^rule tag\s+ver\s+holders\s+added\s+removed$")
        self.assertRegex(out, r"(?m)^repeat\s+1\s+1\s+1\s+0$")
        self.assertRegex(out, r"(?m)^2 customers evaluated in \d+\.\d\d s$")
        self.assertEqual([t["tag"] for t in self.ok_json("tags", "show", str(a))], ["repeat"])
        self.assertEqual(self.ok_json("tags", "show", str(a))[0]["source"],
                         {"rule": "tag:repeat", "version": 1})
        self.assertIn("rule tag:repeat v1", self.ok("tags", "history", str(a)))
        # kept current on events
        self.add("B2", customer=b, amount=1000, at=T0 + 2)
        self.assertEqual([t["tag"] for t in self.ok_json("tags", "show", str(b))], ["repeat"])
        s = self.ok_json("tags", "refresh", "repeat")
        self.assertEqual(s["tags"]["repeat"], {"holders": 2, "added": 0, "removed": 0, "version": 1})
        t = [x for x in self.ok_json("tags", "list")["tags"] if x["name"] == "repeat"][0]
        self.assertEqual((t["kind"], t["expr"], t["customers"]), ("rule", "profile.figures.orders >= 2", 2))
        self.assertRegex(self.ok("tags", "list"),
                         r"(?m)^  repeat\s+-\s+rule\s+2 customers  v1 profile\.figures\.orders >= 2$")

        self.assertIn("(illegal state transition)", self.fails(1, "tag", "add", str(a), "repeat"))
        self.ok("tags", "define", '{"name":"manual"}')
        self.assertIn("(invalid argument)", self.fails(1, "tags", "refresh", "manual"))
        self.assertIn("(not found)", self.fails(1, "tags", "refresh", "nope"))
        err = self.fails(1, "tags", "define", '{"name":"x","expr":"profile.figures.orders >="}')
        self.assertRegex(err, r"^scrm: tags define: .*1:\d+: .*\(parse error\)\n$")
        err = self.fails(1, "tags", "define", '{"name":"x","expr":"event.amount > 1"}')
        self.assertIn("event.amount", err)
        self.assertIn("(invalid argument)", err)
        self.usage_error("tags", "refresh", "a", "b")


class TestSegment(RulesTestCase):
    def test_count_export_explain(self):
        ids = [self.customer(p) for p in ("13800138000", "13900139000", "13700137000")]
        self.add("A1", customer=ids[0], amount=50000)
        self.add("C1", customer=ids[2], amount=20000)
        expr = "profile.figures.orders >= 1"
        self.assertEqual(self.ok("segment", "count", expr), "2\n")
        self.assertEqual(self.ok_json("segment", "count", expr), {"count": 2})
        self.assertEqual(self.ok("segment", "export", expr), f"{ids[0]}\n{ids[2]}\n")
        self.assertEqual(self.ok_json("segment", "export", expr), [ids[0], ids[2]])
        self.assertEqual(self.ok_json("segment", "export", "profile.figures.orders >= 5"), [])
        self.assertEqual(self.ok("segment", "export", "profile.figures.orders >= 5"), "")
        r = self.run_scrm("segment", "export", expr, "--out", "ids.txt")
        self.assertEqual((r.returncode, r.stdout), (0, ""), r.stderr)
        self.assertEqual(r.stderr, "scrm: segment export: 2 customers written to ids.txt\n")
        with open(self.path("ids.txt")) as f:
            self.assertEqual(f.read(), f"{ids[0]}\n{ids[2]}\n")
        self.ok("--json", "segment", "export", expr, "-o", "ids.json")
        with open(self.path("ids.json")) as f:
            self.assertEqual(json.load(f), [ids[0], ids[2]])

        out = self.ok("segment", "explain", expr)
        self.assertRegex(out, r"^plan  sql \(one SQL query\)\nsql   SELECT ")
        self.assertEqual(self.ok_json("segment", "explain", expr)["plan"], "sql")
        scan = "profile.attributes.tier == \"gold\" || profile.figures.orders >= 1"
        out = self.ok("segment", "explain", scan)
        self.assertRegex(out, r"^plan  scan \(customer by customer\)\nwhy   .*tier")
        self.assertEqual(self.ok("segment", "count", scan), "2\n", "both plans agree")

        for sub in ("count", "export", "explain"):
            err = self.fails(1, "segment", sub, "profile.figures.orders >=")
            self.assertRegex(err, rf"^scrm: segment {sub}: .*1:\d+: .*\(parse error\)\n$")
            self.assertIn("(invalid argument)", self.fails(1, "segment", sub, "event.amount > 1"))
            self.assertIn("missing argument", self.usage_error("segment", sub))
        self.assertFalse(os.path.exists(self.path("bad.txt")))
        self.fails(1, "segment", "export", "nosuch(", "--out", "bad.txt")
        self.assertFalse(os.path.exists(self.path("bad.txt")), "no file for a bad expression")
        self.assertIn("cannot create", self.fails(1, "segment", "export", expr, "--out",
                                                  self.path("no/such/dir/x.txt")))
        self.usage_error("segment", "export", expr, "--out")

    def test_export_pages(self):
        # more than one page of scrm_segment_ids_json (10000 ids)
        n = 10005
        with open(self.path("many.jsonl"), "w") as f:
            for i in range(1, n + 1):
                f.write(obs("pos", {"email": f"u{i}@example.com"}) + "\n")
        self.ok("observe", "--file", "many.jsonl")
        self.assertEqual(self.ok("segment", "count", "profile.customer >= 1"), f"{n}\n")
        ids = self.ok("segment", "export", "profile.customer >= 1").split()
        self.assertEqual(ids, [str(i) for i in range(1, n + 1)])
        odd = "profile.customer % 2 == 1"  # customer by customer
        r = self.run_scrm("--json", "segment", "export", odd)
        self.assertEqual((r.returncode, r.stderr), (0, ""), "no progress line off a terminal")
        self.assertEqual(json.loads(r.stdout), list(range(1, n + 1, 2)))

    def test_export_progress_on_a_terminal(self):
        with open(self.path("many.jsonl"), "w") as f:
            for i in range(1, 10006):
                f.write(obs("pos", {"email": f"u{i}@example.com"}) + "\n")
        self.ok("observe", "--file", "many.jsonl")
        # redraw on every update, however fast the scan is
        master, slave = pty.openpty()
        try:
            r = subprocess.run([SCRM, "segment", "export", "profile.customer % 2 == 1",
                                "--out", "odd.txt"], cwd=self.dir, stderr=slave,
                               stdout=subprocess.PIPE, timeout=120,
                               env=dict(self.env, SCRM_PROGRESS_INTERVAL="0"))
            os.close(slave)
            slave = None
            err = b""
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                err += chunk
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        self.assertEqual(r.returncode, 0, err)
        text = err.decode()
        self.assertRegex(text, r"\r\s+5003 ids\s+\d+/s")
        self.assertIn("\r\033[K", text, "the progress line is cleared")
        self.assertIn("5003 customers written to odd.txt", text)


class TestEndToEnd(RulesTestCase):
    def test_scenario(self):
        """A tag, an event rule with a host action, an absence rule; the whole round."""
        cid = self.customer()
        c = str(cid)
        self.ok("consent", c, "marketing", "grant", "--at", "2025-12-01")
        self.ok("tags", "define", '{"name":"big_spender","expr":"profile.figures.net_spend.CNY >= 10000"}')
        self.ok("tags", "define", '{"name":"thanked"}')
        self.ok("rules", "config", '{"groups":{"marketing":{"max":3,"per":"7d"}}}')
        rules = [dict(ORDER_RULE, limits={"group": "marketing"}),
                 dict(CART_RULE, actions=[{"type": "push_message", "params": {"template": "cart"},
                                           "consent": "marketing"}])]
        self.write("rules.json", json.dumps(rules))
        self.assertIn("rule thanks: version 1, loaded", self.ok("rules", "load", "rules.json"))

        out = self.ok("event", "add", ev("O1", customer=cid, amount=12900, at=T0))
        self.assertRegex(out, rf"^event \d+ stored for customer {cid}\n$")
        self.assertEqual([t["tag"] for t in self.ok_json("tags", "show", c)],
                         ["big_spender", "thanked"])

        out = self.ok("outbox", "take")
        m = re.search(rf"(?m)^#(\d+)  send_coupon\s+leased\s+customer {cid}  rule thanks v1", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(self.ok("outbox", "ack", m.group(1)),
                         f"action {m.group(1)} acknowledged (done)\n")
        self.assertEqual([a["state"] for a in self.ok_json("outbox", "list", "--customer", c)],
                         ["done"])
        trace = self.ok("trace", "customer", c)
        self.assertRegex(trace, rf"(?m)  thanks v1  customer {cid}  event ev:\d+  fired$")
        self.assertIn(f'"outbox":{m.group(1)}', trace)

        # an abandoned cart: fired by a later tick
        self.add("C1", type="cart_add", customer=cid, at=T0 + HOUR, props={"sku": "TEA"})
        self.assertEqual(self.ok_json("tick", "--now", "2026-01-03T00:00:00Z")["absence"], 0)
        self.assertEqual(self.ok_json("outbox", "take"), [])
        self.assertEqual(self.ok_json("tick", "--now", "2026-01-05T00:00:00Z")["absence"], 1)
        taken = self.ok_json("outbox", "take")
        self.assertEqual([(a["action"], a["rule"], a["trigger"]["kind"]) for a in taken],
                         [("push_message", "cart_abandon", "absence")])
        self.ok("outbox", "ack", str(taken[0]["id"]))
        out = self.ok("trace", "rule", "cart_abandon")
        self.assertRegex(out, rf"(?m)^2026-01-05 00:00:00Z  cart_abandon v1  customer {cid}  "
                              r"absence ev:\d+  fired$")
        self.assertEqual({a["state"] for a in self.ok_json("outbox", "list")}, {"done"})

        # segments agree with the tags
        other = self.customer("13900139000")
        self.add("O2", customer=other, amount=500)
        seg = 'has_tag("big_spender")'
        self.assertEqual(self.ok("segment", "count", seg), "1\n")
        self.assertEqual(self.ok("segment", "export", seg), f"{cid}\n")
        self.assertEqual(self.ok_json("segment", "export", "profile.figures.orders >= 1"),
                         sorted([cid, other]))
        s = self.ok_json("tags", "refresh")
        self.assertEqual(s["tags"]["big_spender"]["holders"], 1)


class TestDemoRules(ScrmTestCase):
    def test_demo_rules_section(self):
        demo = os.path.join(SOURCE_ROOT, "examples", "demo.sh")
        if not os.path.exists(demo):
            self.skipTest(f"{demo} not found")
        r = subprocess.run(["sh", demo], cwd=self.dir, capture_output=True, text=True,
                           timeout=120, env=dict(self.env, SCRM_EXE=SCRM))
        self.assertEqual(r.returncode, 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        out = r.stdout[r.stdout.index("==> A rule tag"):]
        self.assertRegex(out, r"(?m)^big_spender\s+1\s+\d+\s+\d+\s+0$")
        self.assertIn("rule thank_big_spender: version 1, loaded\n", out)
        self.assertIn("rule cart_abandon: version 1, loaded\n", out)
        self.assertRegex(out, r"(?m)^absence\s+1   absence waits fired$")
        taken = out[out.index("(scrm outbox take)"):out.index("(scrm outbox ack")]
        self.assertRegex(taken, r"(?m)^#\d+  push_message\s+leased\s+customer 1  rule cart_abandon v1")
        self.assertRegex(taken, r"(?m)^#\d+  send_coupon\s+leased\s+customer 1  rule thank_big_spender v1")
        self.assertIn("(2 actions)", taken)
        self.assertEqual(len(re.findall(r"(?m)^action \d+ acknowledged \(done\)$", out)), 2)
        self.assertRegex(out, r"(?m)  thank_big_spender v1  customer 1  event ev:\d+  fired$")
        self.assertRegex(out, r"(?m)  cart_abandon v1  customer 1  absence ev:\d+  fired$")
        self.assertRegex(out, r"(?m)^  coupon_sent\s+-\s+.*rule thank_big_spender v1$")
        seg = out[out.index("==> A segment"):]
        count = int(seg.splitlines()[1])
        ids = seg.splitlines()[2:2 + count]
        self.assertGreaterEqual(count, 1)
        self.assertIn("1", ids)
        self.assertEqual(ids, sorted(ids, key=int))
        # the database agrees: every action done
        states = json.loads(self.ok("--json", "outbox", "list"))
        self.assertEqual({a["state"] for a in states}, {"done"})


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + [a for a in sys.argv[1:] if a != "--"])
