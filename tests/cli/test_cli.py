#!/usr/bin/env python3
"""End-to-end tests of the scrm command-line tool (examples/scrm).

Runs the binary named by $SCRM_EXE, each test in a fresh temporary
directory. $SCRM_SOURCE_ROOT (default: two levels up) locates examples/demo.sh.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

SCRM = os.environ.get("SCRM_EXE")
SOURCE_ROOT = os.environ.get(
    "SCRM_SOURCE_ROOT",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

UNION_A = "oUnion_A_0001"
UNION_B = "oUnion_B_0002"


def obs(channel, ids, at=None):
    o = {"channel": channel, "ids": ids}
    if at is not None:
        o["at"] = at
    return json.dumps(o, ensure_ascii=False)


class ScrmTestCase(unittest.TestCase):
    def setUp(self):
        if not SCRM:
            self.skipTest("SCRM_EXE is not set")
        self.dir = tempfile.mkdtemp(prefix="scrm-cli-")
        self.env = dict(os.environ)
        self.env.pop("SCRM_DB", None)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def run_scrm(self, *args, input=None, env=None):
        return subprocess.run([SCRM, *args], cwd=self.dir, input=input,
                              capture_output=True, text=True, timeout=120,
                              env=env if env is not None else self.env)

    def ok(self, *args, input=None):
        r = self.run_scrm(*args, input=input)
        self.assertEqual(r.returncode, 0,
                         f"scrm {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
        return r.stdout

    def ok_json(self, *args, input=None):
        return json.loads(self.ok("--json", *args, input=input))

    def fails(self, code, *args, input=None):
        r = self.run_scrm(*args, input=input)
        self.assertEqual(r.returncode, code,
                         f"scrm {' '.join(args)}: expected exit {code}, got {r.returncode}\n"
                         f"stdout: {r.stdout}\nstderr: {r.stderr}")
        self.assertTrue(r.stderr.startswith("scrm: "), r.stderr)
        return r.stderr

    def usage_error(self, *args):
        err = self.fails(2, *args)
        self.assertIn("usage: scrm", err)
        return err

    def init(self):
        self.ok("init")

    def write(self, name, text):
        with open(self.path(name), "w", encoding="utf-8") as f:
            f.write(text)
        return self.path(name)


class TestFoundation(ScrmTestCase):
    def test_version(self):
        out = self.ok("--version")
        self.assertRegex(out, r"(?m)^scrm \d+\.\d+\.\d+$")
        self.assertRegex(out, r"(?m)^libscrm \d+\.\d+\.\d+$")
        self.assertRegex(out, r"(?m)^schema version \d+$")
        self.assertEqual(self.ok("version"), out)
        self.assertEqual(self.ok("info", "--version"), out)
        v = self.ok_json("--version")
        self.assertEqual(set(v), {"tool", "library", "schema_version"})
        self.assertGreaterEqual(v["schema_version"], 1)
        self.assertFalse(os.path.exists(self.path("scrm.db")), "--version must not create a file")

    def test_init_creates_default_db_in_cwd(self):
        out = self.ok("init")
        self.assertTrue(os.path.isfile(self.path("scrm.db")))
        self.assertIn("scrm.db", out)
        self.assertRegex(out, r"created .*scrm\.db \(schema version \d+\)")
        self.assertRegex(self.ok("init"), r"opened .*scrm\.db")
        j = self.ok_json("init")
        self.assertEqual(j["created"], False)
        self.assertEqual(j["path"], "scrm.db")

    def test_db_option_and_env(self):
        self.ok("--db", "a.db", "init")
        self.ok("init", "--db=b.db")
        env = dict(self.env, SCRM_DB=self.path("c.db"))
        self.assertEqual(self.run_scrm("init", env=env).returncode, 0)
        for name in ("a.db", "b.db", "c.db"):
            self.assertTrue(os.path.isfile(self.path(name)), name)
        self.assertFalse(os.path.exists(self.path("scrm.db")))
        # --db wins over $SCRM_DB
        r = self.run_scrm("--json", "info", "--db", "a.db", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["path"], "a.db")

    def test_info_human(self):
        self.init()
        out = self.ok("info")
        self.assertRegex(out, r"(?m)^database\s+scrm\.db$")
        self.assertRegex(out, r"(?m)^schema version\s+\d+")
        self.assertRegex(out, r"(?m)^library\s+\d+\.\d+\.\d+$")
        self.assertRegex(out, r"(?m)^table\s+rows$")
        self.assertRegex(out, r"(?m)^\w+\s+\d+$")

    def test_info_json(self):
        self.init()
        j = self.ok_json("info")
        self.assertEqual(j["path"], "scrm.db")
        self.assertIsInstance(j["schema_version"], int)
        self.assertRegex(j["library_version"], r"^\d+\.\d+\.\d+$")
        self.assertIsInstance(j["tables"], dict)
        self.assertTrue(all(isinstance(n, int) for n in j["tables"].values()))
        # global option after the command, output is one line
        out = self.ok("info", "--json")
        self.assertEqual(out.count("\n"), 1)

    def test_info_needs_existing_db(self):
        err = self.fails(1, "info")
        self.assertIn("scrm: info: ", err)
        self.assertIn("(not found)", err)
        self.assertIn("scrm init", err)
        self.assertFalse(os.path.exists(self.path("scrm.db")), "info must not create the file")

    def test_garbage_file(self):
        with open(self.path("garbage.db"), "wb") as f:
            f.write(b"this is not an SQLite file at all\n" * 100)
        err = self.fails(1, "--db", "garbage.db", "info")
        self.assertRegex(err, r"^scrm: info: .*\((database is corrupt)\)\n")
        self.assertRegex(err, r"not a (libscrm )?database")
        self.assertEqual(err.count("\n"), 1, "one line, no noise")
        self.fails(1, "--db", "garbage.db", "init")

    def test_unknown_command(self):
        err = self.usage_error("frobnicate")
        self.assertIn("unknown command 'frobnicate'", err)

    def test_unknown_options(self):
        self.init()
        self.assertIn("unknown option '--bogus'", self.usage_error("--bogus", "info"))
        self.assertIn("scrm: info: unknown option '--bogus'", self.usage_error("info", "--bogus"))
        self.assertIn("unexpected argument 'extra'", self.usage_error("info", "extra"))
        self.assertIn("needs an argument", self.usage_error("info", "--db"))
        self.assertIn("needs an argument", self.usage_error("--db"))

    def test_no_command(self):
        err = self.usage_error()
        self.assertIn("no command", err)

    def test_help(self):
        out = self.ok("--help")
        for cmd in ("init", "info", "observe", "resolve", "customer", "merge", "unmerge", "kinds"):
            self.assertRegex(out, rf"(?m)^  {cmd}\s")
        self.assertEqual(self.ok("-h"), out)
        self.assertEqual(self.ok("help"), out)
        self.assertTrue(self.ok("observe", "--help").startswith("usage: scrm observe"))
        self.assertTrue(self.ok("help", "observe").startswith("usage: scrm observe"))
        self.assertTrue(self.ok("--help", "init").startswith("usage: scrm init"))
        # --help wins over other mistakes and never opens the database
        self.assertTrue(self.ok("merge", "x", "--help").startswith("usage: scrm merge"))
        sub = self.ok("customer", "--help")
        self.assertIn("customer show ID", sub)
        self.assertIn("customer explain ID", sub)
        self.assertTrue(self.ok("customer", "show", "-h").startswith("usage: scrm customer show ID"))
        self.assertTrue(self.ok("help", "kinds", "set").startswith("usage: scrm kinds set"))
        self.assertFalse(os.path.exists(self.path("scrm.db")))

    def test_subcommand_usage(self):
        self.assertIn("missing subcommand", self.usage_error("customer"))
        self.assertIn("unknown subcommand 'frob'", self.usage_error("kinds", "frob"))
        self.assertIn("customer id must be a positive integer, not 'abc'",
                      self.usage_error("customer", "show", "abc"))
        self.assertIn("missing argument", self.usage_error("customer", "show"))
        self.assertIn("merge id must be a positive integer", self.usage_error("unmerge", "0"))
        self.usage_error("merge", "1")
        self.usage_error("resolve", "phone")


class TestIdentity(ScrmTestCase):
    def setUp(self):
        super().setUp()
        self.init()

    def observe(self, channel, ids, at=None):
        """Observe one and return its report."""
        return self.ok_json("observe", obs(channel, ids, at))

    def test_observe_one_and_resolve(self):
        out = self.ok("observe", obs("wecom", {"wechat_unionid": UNION_A, "phone": "13800138000"}))
        self.assertRegex(out, r"^customer 1: created\n")
        cid = self.ok("resolve", "phone", "+86 138 0013 8000")
        self.assertEqual(cid, "1\n")
        self.assertEqual(self.ok("resolve", "wechat_unionid", UNION_A), "1\n")
        j = self.ok_json("resolve", "phone", "138-0013-8000")
        self.assertEqual(j["customer"], 1)
        # same identifiers again: unchanged; a new one next to a known one: attached
        rep = self.observe("tmall", {"phone": "138-0013-8000"})
        self.assertEqual((rep["customer"], rep["outcome"]), (1, "unchanged"))
        rep = self.observe("tmall", {"tmall_buyer_nick": "小明", "phone": "13800138000"})
        self.assertEqual((rep["customer"], rep["outcome"]), (1, "attached"))
        self.assertEqual(self.ok("resolve", "tmall_buyer_nick", "小明"), "1\n")
        # --report without --json also prints the report JSON
        rep = json.loads(self.ok("observe", "--report", obs("pos", {"phone": "13800138000"})))
        self.assertEqual(rep["outcome"], "unchanged")

    def test_resolve_unknown(self):
        err = self.fails(1, "resolve", "phone", "13900000001")
        self.assertRegex(err, r"^scrm: resolve: .*\(not found\)\n$")
        err = self.fails(1, "resolve", "phone", "123")
        self.assertRegex(err, r"^scrm: resolve: .*\((not found|invalid argument)\)\n$")
        err = self.fails(1, "resolve", "no_such_kind", "x")
        self.assertIn("(not found)", err)

    def test_observe_bad_argument(self):
        err = self.fails(1, "observe", '{"channel":"pos","ids":{"phone":"13800138000"}')
        self.assertIn("(parse error)", err)
        err = self.fails(1, "observe", "observations.jsonl")
        self.assertIn("--file", err)
        err = self.fails(1, "observe", obs("pos", {"phone": "00000000000"}))
        self.assertIn("(invalid argument)", err)
        self.assertIn("usage", self.fails(2, "observe", "{}", "--file", "x.jsonl"))
        err = self.fails(1, "observe", "--file", "missing.jsonl")
        self.assertIn("cannot open 'missing.jsonl'", err)

    def test_observe_file_with_bad_lines(self):
        lines = [
            obs("wecom", {"wechat_unionid": UNION_A, "phone": "13800138000"}),   # 1 created
            '{"channel":"pos","ids":{"phone":"13800138000"',                   # 2 bad JSON
            obs("tmall", {"tmall_buyer_nick": "nick_a", "phone": "138-0013-8000"}),  # 3 attached
            "",                                                                   # 4 blank
            obs("pos", {"phone": "00000000000"}),                                 # 5 blocked only
            obs("pos", {"no_such_kind": "x"}),                                    # 6 unknown kind
            obs("douyin", {"douyin_openid": "dy_b"}),                             # 7 created
            obs("douyin", {"douyin_openid": "dy_b", "phone": "+8613800138000"}),  # 8 merged
            obs("pos", {"phone": "13800138000"}),                                 # 9 unchanged
            '{"channel":"pos","bogus_field":1,"ids":{"phone":"13800138000"}}',    # 10 unknown field
            obs("pos", {"phone": ["13800138000", "null"]}),                       # 11 unchanged, 1 skipped
        ]
        f = self.write("obs.jsonl", "\n".join(lines) + "\n")
        r = self.run_scrm("--json", "observe", "--file", f)
        self.assertEqual(r.returncode, 0, r.stderr)
        s = json.loads(r.stdout)
        self.assertEqual(s["lines"], 10)
        self.assertEqual(s["observed"], 6)
        self.assertEqual((s["created"], s["attached"], s["merged"], s["unchanged"]), (2, 1, 1, 2))
        self.assertEqual(s["rejected"], 4)
        self.assertEqual([x["line"] for x in s["rejects"]], [2, 5, 6, 10])
        self.assertEqual([x["error"] for x in s["rejects"]],
                         ["parse error", "invalid argument", "not found", "invalid argument"])
        self.assertEqual(s["skipped_identifiers"], 1)
        self.assertEqual(s["conflicts"], 0)
        self.assertNotIn("stopped_at_line", s)
        # each rejected line is named on stderr; no progress line when stderr is not a tty
        for n in (2, 5, 6, 10):
            self.assertIn(f"scrm: observe: {f}:{n}: ", r.stderr)
        self.assertNotIn("\r", r.stderr)
        # the stored result: one customer holds all of them
        self.assertEqual(self.ok("resolve", "douyin_openid", "dy_b"), "1\n")
        # human summary; --strict turns rejects into exit 1
        out = self.ok("observe", "-f", f)
        self.assertRegex(out, r"(?m)^lines\s+10$")
        self.assertRegex(out, r"(?m)^rejected\s+4\s+\(lines 2, 5, 6, 10\)$")
        self.assertRegex(out, r"(?m)^merged\s+0$")
        self.fails(1, "observe", "--strict", "--file", f)

    def test_observe_stdin_and_report(self):
        lines = "\n".join([
            obs("wecom", {"wechat_unionid": UNION_A}),
            "not json",
            obs("wecom", {"wechat_unionid": UNION_B}),
        ]) + "\n"
        r = self.run_scrm("observe", "--report", "-", input=lines)
        self.assertEqual(r.returncode, 0, r.stderr)
        reports = [json.loads(x) for x in r.stdout.splitlines()]
        self.assertEqual([x["customer"] for x in reports], [1, 2])
        self.assertEqual([x["outcome"] for x in reports], ["created", "created"])
        self.assertIn("<stdin>:2:", r.stderr)
        self.assertRegex(r.stderr, r"(?m)^rejected\s+1\s+\(lines 2\)$")  # summary on stderr
        # a pipe with no argument is read as JSON lines too
        s = self.ok_json("observe", input=lines)
        self.assertEqual((s["lines"], s["unchanged"], s["rejected"]), (3, 2, 1))

    def test_observe_batches(self):
        n = 25000
        bad = {10000, 10001, 20001}
        with open(self.path("big.jsonl"), "w") as f:
            for i in range(1, n + 1):
                if i in bad:
                    f.write("{oops\n")
                else:
                    f.write(obs("pos", {"email": f"user{i // 2}@example.com"}) + "\n")
        s = self.ok_json("observe", "--file", "big.jsonl")
        self.assertEqual(s["lines"], n)
        self.assertEqual(s["rejected"], len(bad))
        self.assertEqual([x["line"] for x in s["rejects"]], sorted(bad))
        self.assertEqual(s["observed"], n - len(bad))
        self.assertEqual(s["created"] + s["unchanged"], n - len(bad))
        # every good line is stored, across the batch boundaries
        self.assertEqual(self.ok("resolve", "email", "user12500@example.com").strip(),
                         self.ok("resolve", "email", "USER12500@example.com").strip())
        self.ok("resolve", "email", "user5001@example.com")

    def make_two(self):
        a = self.observe("wecom", {"wechat_unionid": UNION_A, "phone": "13800138000"})["customer"]
        b = self.observe("douyin", {"douyin_openid": "dy_b", "email": "b@example.com"})["customer"]
        self.assertEqual((a, b), (1, 2))
        return a, b

    def test_customer_show(self):
        self.make_two()
        self.observe("tmall", {"tmall_buyer_nick": "nick_a", "phone": "138 0013 8000"})
        out = self.ok("customer", "show", "1")
        self.assertTrue(out.startswith("customer 1\n"), out)
        self.assertRegex(out, r"(?m)^identifiers \(3\):$")
        self.assertRegex(out, r"(?m)^  phone\s+\+8613800138000\s+wecom\s")
        self.assertRegex(out, r"(?m)^  tmall_buyer_nick\s+nick_a\s+tmall\s")
        self.assertRegex(out, r"(?m)^history \(0\):$")
        j = self.ok_json("customer", "show", "1")
        self.assertEqual((j["customer"], j["canonical"]), (1, 1))
        self.assertEqual(sorted(i["kind"] for i in j["identifiers"]),
                         ["phone", "tmall_buyer_nick", "wechat_unionid"])
        self.assertEqual(j["history"], [])
        err = self.fails(1, "customer", "show", "99")
        self.assertRegex(err, r"^scrm: customer show: .*\(not found\)\n$")

    def test_customer_explain(self):
        self.make_two()
        self.observe("douyin", {"douyin_openid": "dy_b", "phone": "13800138000"})  # merges 2 into 1
        j = json.loads(self.ok("customer", "explain", "2"))  # indented JSON by default
        for key in ("customer", "canonical", "absorbed", "identifiers", "observations", "history",
                    "conflicts"):
            self.assertIn(key, j)
        self.assertEqual(j["canonical"], 1)
        self.assertGreater(self.ok("customer", "explain", "1").count("\n"), 5)
        self.assertEqual(self.ok("--json", "customer", "explain", "1").count("\n"), 1)
        dot = self.ok("customer", "explain", "1", "--dot")
        self.assertRegex(dot, r"^\s*(strict\s+)?(di)?graph\b")
        self.assertTrue(dot.rstrip().endswith("}"))
        self.assertIn("8613800138000", dot)
        self.assertIn("(not found)", self.fails(1, "customer", "explain", "42", "--dot"))

    def test_merge_unmerge(self):
        a, b = self.make_two()
        m = self.ok_json("merge", "2", "1", "--reason", "same shopper (phone call)")
        self.assertEqual((m["survivor"], m["absorbed"]), (1, 2))
        self.assertEqual(self.ok("resolve", "email", "b@example.com"), "1\n")
        show = self.ok("customer", "show", "2")
        self.assertIn("customer 2 was merged into 1", show)
        self.assertIn("same shopper (phone call)", show)
        hist = self.ok_json("customer", "show", "1")["history"]
        self.assertEqual(len(hist), 1)
        self.assertEqual((hist[0]["op"], hist[0]["survivor"], hist[0]["absorbed"]), ("merge", 1, 2))
        self.assertEqual(hist[0]["id"], m["merge"])
        err = self.fails(1, "merge", "1", "2")
        self.assertIn("(invalid argument)", err)

        out = self.ok("unmerge", str(m["merge"]), "-r", "two people after all")
        self.assertRegex(out, rf"^undid merge #{m['merge']} ")
        self.assertEqual(self.ok("resolve", "email", "b@example.com"), "2\n")
        self.assertEqual(self.ok("resolve", "phone", "13800138000"), "1\n")
        self.assertIn("(illegal state transition)", self.fails(1, "unmerge", str(m["merge"])))
        self.assertIn("(not found)", self.fails(1, "unmerge", "999"))
        # after an unmerge the pair is never-merge: a manual merge is refused
        self.assertIn("(constraint or conflict)", self.fails(1, "merge", "1", "2"))
        self.assertIn("(not found)", self.fails(1, "merge", "1", "99"))

    def test_never_merge_and_conflict(self):
        a, b = self.make_two()
        out = self.ok("never-merge", "1", "2", "--reason", "twins")
        self.assertIn("never be merged", out)
        self.assertIn("(already exists)", self.fails(1, "never-merge", "2", "1"))
        self.assertIn("(constraint or conflict)", self.fails(1, "merge", "1", "2"))
        # an observation linking them records a conflict instead of merging
        s = self.ok_json("observe", "-", input=obs("pos", {"phone": "13800138000",
                                                           "email": "b@example.com"}) + "\n")
        self.assertEqual((s["merged"], s["conflicts"]), (0, 1))
        self.assertEqual(self.ok("resolve", "email", "b@example.com"), "2\n")

    def test_unionid_limit_conflict(self):
        self.make_two()
        self.observe("wecom", {"wechat_unionid": UNION_B, "email": "b@example.com"})
        rep = self.observe("pos", {"wechat_unionid": UNION_A, "email": "b@example.com"})
        self.assertEqual(rep["outcome"], "unchanged")
        self.assertEqual(len(rep["conflicts"]), 1)
        self.assertEqual(self.ok("resolve", "email", "b@example.com"), "2\n")
        out = self.ok("observe", obs("pos", {"wechat_unionid": UNION_A, "email": "b@example.com"}))
        self.assertRegex(out, r"(?m)^  conflict ")

    def test_kinds(self):
        out = self.ok("kinds", "list")
        self.assertRegex(out, r"(?m)^kind\s+normalizer\s+priority\s+limit")
        self.assertRegex(out, r"(?m)^phone\s+phone\s")
        kinds = self.ok_json("kinds", "list")
        names = [k["name"] for k in kinds]
        self.assertIn("wechat_unionid", names)
        self.assertIn("phone", names)
        self.assertEqual(self.ok("kinds", "normalize", "phone", "138-0013-8000"), "+8613800138000\n")
        self.assertEqual(self.ok("kinds", "normalize", "email", " A@Example.COM "), "a@example.com\n")
        self.assertEqual(self.ok_json("kinds", "normalize", "phone", "13800138000")["normalized"],
                         "+8613800138000")
        self.assertIn("(invalid argument)", self.fails(1, "kinds", "normalize", "phone", "00000000000"))
        self.assertIn("(not found)", self.fails(1, "kinds", "normalize", "nope", "x"))

        card = {"name": "member_card", "normalizer": "pattern", "pattern": r"^[Mm](\d{8})$",
                "priority": 15, "limit": 2}
        self.assertEqual(self.ok("kinds", "set", json.dumps(card)), "kind member_card set\n")
        self.assertEqual(self.ok("kinds", "normalize", "member_card", " M00012345 "), "00012345\n")
        self.assertIn("(invalid argument)", self.fails(1, "kinds", "normalize", "member_card", "M1"))
        self.assertEqual(self.ok_json("kinds", "show", "member_card")["name"], "member_card")
        self.assertIn("member_card", [k["name"] for k in self.ok_json("kinds", "list")])

        # an array from a file: all or nothing
        self.write("kinds.json", json.dumps([{"name": "vip_code", "normalizer": "casefold"},
                                             {"name": "Bad Name", "normalizer": "trim"}]))
        err = self.fails(1, "kinds", "set", "--file", "kinds.json")
        self.assertIn("kind 2 of the array", err)
        self.assertIn("no kind was changed", err)
        self.assertIn("(not found)", self.fails(1, "kinds", "show", "vip_code"))
        self.write("kinds.json", json.dumps([{"name": "vip_code", "normalizer": "casefold"},
                                             {"name": "crm_code", "normalizer": "trim"}]))
        self.assertEqual(self.ok("kinds", "set", "-f", "kinds.json"),
                         "kind vip_code set\nkind crm_code set\n")
        self.assertEqual(self.ok("kinds", "normalize", "vip_code", "ABC"), "abc\n")

        self.assertIn("(parse error)", self.fails(1, "kinds", "set", '{"name":"x",'))
        self.assertIn("(invalid argument)",
                      self.fails(1, "kinds", "set", '{"name":"x","normalizer":"nope"}'))
        self.usage_error("kinds", "set")
        self.usage_error("kinds", "set", "{}", "--file", "kinds.json")


def ev(key, type="order", channel="pos", at=1767225600000, **fields):
    """One event as JSON text; `customer` or `ids` name the customer."""
    e = {"key": key, "type": type, "channel": channel, "at": at}
    if type in ("order", "refund") and "amount" not in fields:
        fields["amount"] = 12900
    if "amount" in fields and "currency" not in fields:
        fields["currency"] = "CNY"
    e.update(fields)
    return json.dumps(e, ensure_ascii=False)


DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class ProfileTestCase(ScrmTestCase):
    def setUp(self):
        super().setUp()
        self.init()

    def add(self, *args, **kw):
        """Record one event; return the --json answer."""
        return self.ok_json("event", "add", ev(*args, **kw))

    def customer_with_phone(self, phone="13800138000", channel="wecom"):
        return self.ok_json("observe", obs(channel, {"phone": phone}))["customer"]


class TestEvents(ProfileTestCase):
    def test_help(self):
        out = self.ok("--help")
        for cmd in ("event", "import", "profile", "rfm", "consent", "erase", "anonymize"):
            self.assertRegex(out, rf"(?m)^  {cmd}\s")
        self.assertIn("event add JSON", self.ok("event", "--help"))
        self.assertTrue(self.ok("help", "import", "events").startswith("usage: scrm import events"))
        self.assertTrue(self.ok("profile", "set", "--help").startswith("usage: scrm profile set"))
        self.assertIn("NAME= (empty) or NAME=null unsets", self.ok("profile", "set", "--help"))
        self.assertTrue(self.ok("rfm", "refresh", "-h").startswith("usage: scrm rfm refresh"))
        self.assertTrue(self.ok("anonymize", "--help").startswith("usage: scrm anonymize"))
        self.assertIn("grant|withdraw", self.ok("help", "consent"))

    def test_event_add(self):
        out = self.ok("event", "add", ev("T1", ids={"phone": "138 0013 8000"}))
        self.assertEqual(out, "event 1 stored for customer 1\n")
        self.assertEqual(self.ok("resolve", "phone", "13800138000"), "1\n")
        j = self.add("V1", type="view", channel="web", customer=1, props={"page": "/"})
        self.assertEqual(j, {"customer": 1, "event": 2, "duplicate": False})
        # the same key on the same channel: reported, stored once, exit 0
        out = self.ok("event", "add", ev("T1", ids={"phone": "13800138000"}))
        self.assertRegex(out, r"^duplicate: event 'T1' was already recorded on channel 'pos' "
                              r"\(event 1\); customer 1, nothing changed\n$")
        self.assertEqual(self.add("T1", customer=1), {"customer": 1, "event": 1, "duplicate": True})
        # ... but the same key on another channel is another event
        self.assertEqual(self.add("T1", channel="tmall", customer=1)["event"], 3)
        events = self.ok_json("event", "list", "1")
        self.assertEqual(len(events), 3)
        self.assertEqual(self.ok_json("profile", "show", "1")["figures"]["orders"], 2)

    def test_event_add_errors(self):
        cid = self.customer_with_phone()
        err = self.fails(1, "event", "add", '{"key":"T1",')
        self.assertRegex(err, r"^scrm: event add: .*\(parse error\)\n")
        err = self.fails(1, "event", "add", "events.jsonl")
        self.assertIn("use 'scrm import events FILE'", err)
        err = self.fails(1, "event", "add", '{"key":"T1","channel":"pos","at":1,"customer":1}')
        self.assertRegex(err, r"^scrm: event add: .*type.*\(invalid argument\)\n$")
        err = self.fails(1, "event", "add", ev("T1", customer=999))
        self.assertIn("(not found)", err)
        err = self.fails(1, "event", "add", ev("T1", customer=cid, surprise=1))
        self.assertIn("surprise", err)
        self.assertIn("(invalid argument)", err)
        err = self.fails(1, "event", "add", ev("R1", type="refund", customer=cid, refund_of="nope"))
        self.assertIn("(not found)", err)
        self.add("T1", customer=cid, amount=5000)
        err = self.fails(1, "event", "add", ev("R1", type="refund", customer=cid, refund_of="T1",
                                                amount=6000))
        self.assertIn("exceeds", err)
        self.assertIn("(invalid argument)", err)
        err = self.fails(1, "event", "add", ev("T2", customer=cid, at=-5))
        self.assertIn("(out of range)", err)
        self.usage_error("event", "add")
        self.usage_error("event", "add", "{}", "{}")
        self.assertIn("missing subcommand", self.usage_error("event"))
        self.assertIn("unknown subcommand 'del'", self.usage_error("event", "del", "1"))
        self.assertEqual(len(self.ok_json("event", "list", str(cid))), 1, "nothing else stored")

    def test_event_list(self):
        cid = self.customer_with_phone()
        self.add("T1", customer=cid, at=T0, items=[{"sku": "A1", "qty": 2, "price": 6450}])
        self.add("V1", type="view", channel="web", customer=cid, at=T0 + DAY)
        self.add("R1", type="refund", customer=cid, at=T0 + 2 * DAY, refund_of="T1", amount=4500)
        out = self.ok("event", "list", str(cid))
        self.assertTrue(out.startswith(f"events of customer {cid} (3):\n"), out)
        lines = out.splitlines()[1:]
        self.assertRegex(lines[0], r"^  2026-01-03 00:00:00Z\s+pos\s+refund\s+45\.00 CNY  R1  "
                                   r"\(refund of T1\)$")
        self.assertRegex(lines[1], r"^  2026-01-02 00:00:00Z\s+web\s+view\s+-  V1$")
        self.assertRegex(lines[2], r"^  2026-01-01 00:00:00Z\s+pos\s+order\s+129\.00 CNY  T1$")
        j = self.ok_json("event", "list", str(cid))
        self.assertEqual([e["key"] for e in j], ["R1", "V1", "T1"])
        self.assertEqual(j[2]["items"], [{"sku": "A1", "qty": 2, "price": 6450}])
        self.assertEqual(j[0]["refund_of"], "T1")
        self.assertEqual([e["key"] for e in self.ok_json("event", "list", str(cid), "-n", "1")],
                         ["R1"])
        since = self.ok_json("event", "list", str(cid), "--since", "2026-01-02")
        self.assertEqual([e["key"] for e in since], ["R1", "V1"])
        since = self.ok_json("event", "list", str(cid), "--since", "2026-01-02T08:00:00+08:00")
        self.assertEqual([e["key"] for e in since], ["R1", "V1"])
        since = self.ok_json("event", "list", str(cid), "--since", str(T0 + DAY + 1))
        self.assertEqual([e["key"] for e in since], ["R1"])
        self.assertIn("(not found)", self.fails(1, "event", "list", "99"))
        self.assertIn("--since must be milliseconds since the epoch or a date",
                      self.usage_error("event", "list", "1", "--since", "yesterday"))
        self.usage_error("event", "list", "1", "--since", "2026-02-30")
        self.assertIn("--limit must be a positive integer",
                      self.usage_error("event", "list", "1", "--limit", "-3"))

    def test_import_events(self):
        cid = self.customer_with_phone()
        lines = [
            ev("T1", customer=cid),                                         # 1 stored
            ev("V1", type="view", channel="web", ids={"email": "x@example.com"}),  # 2 stored, new
            '{"key":"T2",',                                                 # 3 bad JSON
            "",                                                             # 4 blank
            ev("T1", customer=cid),                                         # 5 duplicate
            ev("T3", customer=cid, bogus=1),                                # 6 unknown member
            ev("R1", type="refund", customer=cid, refund_of="T1", amount=2900),  # 7 stored
            ev("R2", type="refund", customer=cid, refund_of="T1", amount=20000),  # 8 too much
            ev("T4", ids={"no_such_kind": "x"}),                            # 9 unknown kind
            ev("T1", customer=cid),                                         # 10 duplicate
            ev("T5", ids={"phone": "+86 138-0013-8000"}, amount=100),       # 11 stored
        ]
        f = self.write("events.jsonl", "\n".join(lines) + "\n")
        r = self.run_scrm("--json", "import", "events", f)
        self.assertEqual(r.returncode, 0, r.stderr)
        s = json.loads(r.stdout)
        self.assertEqual((s["lines"], s["stored"], s["duplicate"], s["rejected"]), (10, 4, 2, 4))
        self.assertEqual(s["duplicate_lines"], [5, 10])
        self.assertEqual([x["line"] for x in s["rejects"]], [3, 6, 8, 9])
        self.assertEqual([x["error"] for x in s["rejects"]],
                         ["parse error", "invalid argument", "invalid argument", "not found"])
        self.assertIn("bogus", s["rejects"][1]["message"])
        self.assertNotIn("stopped_at_line", s)
        for n in (3, 6, 8, 9):
            self.assertIn(f"scrm: import events: {f}:{n}: ", r.stderr)
        self.assertNotIn("\r", r.stderr, "no progress line when stderr is not a terminal")
        figures = self.ok_json("profile", "show", str(cid))["figures"]
        self.assertEqual((figures["orders"], figures["refunds"]), (2, 1))
        self.assertEqual(figures["net_spend"], {"CNY": 12900 - 2900 + 100})
        self.assertEqual(self.ok("resolve", "email", "x@example.com"), "2\n")

        # human summary; a second run stores nothing new
        out = self.ok("import", "events", f)
        self.assertRegex(out, r"(?m)^lines\s+10$")
        self.assertRegex(out, r"(?m)^stored\s+0$")
        self.assertRegex(out, r"(?m)^duplicate\s+6\s+\(lines 1, 2, 5, 7, 10, 11\)$")
        self.assertRegex(out, r"(?m)^rejected\s+4\s+\(lines 3, 6, 8, 9\)$")
        self.assertRegex(out, r"(?m)^time\s+[\d.]+ s \(\d+ lines/s\)$")
        self.fails(1, "import", "events", "--strict", f)

        # standard input
        r = self.run_scrm("import", "events", "-", input=ev("T9", customer=cid) + "\nnot json\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^stored\s+1$")
        self.assertIn("<stdin>:2:", r.stderr)

        err = self.fails(1, "import", "events", "missing.jsonl")
        self.assertIn("cannot open 'missing.jsonl'", err)
        self.assertIn("missing argument", self.usage_error("import", "events"))
        self.assertIn("unknown subcommand 'orders'", self.usage_error("import", "orders", f))

    def test_import_across_batches(self):
        cid = self.customer_with_phone()
        n = 10_010
        with open(self.path("big.jsonl"), "w") as f:
            for i in range(1, n + 1):
                key = "V5" if i == 10_005 else f"V{i}"  # line 10005 repeats line 5
                f.write(ev(key, type="view", channel="web", customer=cid, at=T0 + i) + "\n")
        s = self.ok_json("import", "events", "big.jsonl")
        self.assertEqual((s["lines"], s["stored"], s["duplicate"], s["rejected"]),
                         (n, n - 1, 1, 0))
        self.assertEqual(s["duplicate_lines"], [10_005])
        self.assertEqual(self.ok_json("profile", "show", str(cid))["figures"]["events"], n - 1)

    def test_needs_database(self):
        err = self.run_scrm("--db", "none.db", "event", "add", ev("T1", customer=1))
        self.assertEqual(err.returncode, 1)
        self.assertIn("scrm init", err.stderr)
        self.assertFalse(os.path.exists(self.path("none.db")))


class TestProfile(ProfileTestCase):
    def test_profile_show(self):
        cid = self.ok_json("observe", obs("wecom", {"phone": "13800138000",
                                                    "email": "zhang@example.com"}))["customer"]
        self.add("T1", customer=cid, at=T0, amount=25800)
        self.add("T2", channel="tmall", customer=cid, at=T0 + DAY, amount=15900)
        self.add("R1", type="refund", channel="tmall", customer=cid, at=T0 + 2 * DAY,
                 refund_of="T2", amount=15900)
        out = self.ok("profile", "show", str(cid))
        self.assertTrue(out.startswith(f"customer {cid}\n"), out)
        self.assertRegex(out, r"(?m)^lifecycle\s+\w+ \(as of now\)$")
        self.assertRegex(out, r"(?m)^rfm\s+not computed \(run 'scrm rfm refresh'\)$")
        self.assertRegex(out, r"(?m)^  orders\s+2  \(first 2026-01-01 00:00:00Z, "
                              r"last 2026-01-02 00:00:00Z\)$")
        self.assertRegex(out, r"(?m)^  refunds\s+1$")
        self.assertRegex(out, r"(?m)^  net spend\s+258\.00 CNY$")
        self.assertRegex(out, r"(?m)^  avg order\s+129\.00 CNY$")
        self.assertRegex(out, r"(?m)^    tmall\s+2026-01-03 00:00:00Z$")
        self.assertRegex(out, r"(?m)^  phone\s+138\*\*\*\*8000$")
        self.assertRegex(out, r"(?m)^  email\s+z\*\*\*@example\.com$")
        self.assertNotIn("13800138000", out)
        self.assertNotIn("zhang@", out)
        clear = self.ok("profile", "show", str(cid), "--unmasked")
        self.assertRegex(clear, r"(?m)^  phone\s+\+8613800138000$")
        self.assertIn("zhang@example.com", clear)

        j = self.ok_json("profile", "show", str(cid))
        for key in ("customer", "erased", "attributes", "figures", "rfm", "lifecycle", "consent",
                    "identifiers"):
            self.assertIn(key, j)
        self.assertEqual(j["figures"]["net_spend"], {"CNY": 25800})
        self.assertIsNone(j["rfm"])
        self.assertEqual(sorted(i["value"] for i in j["identifiers"]),
                         ["138****8000", "z***@example.com"])
        j = self.ok_json("profile", "show", str(cid), "--unmasked")
        self.assertIn("+8613800138000", [i["value"] for i in j["identifiers"]])

        err = self.fails(1, "profile", "show", "99")
        self.assertRegex(err, r"^scrm: profile show: .*\(not found\)\n$")
        self.assertIn("customer id must be a positive integer",
                      self.usage_error("profile", "show", "x"))
        self.assertIn("unknown option '--masked'",
                      self.usage_error("profile", "show", "1", "--masked"))

    def test_profile_of_merged_id(self):
        a = self.customer_with_phone("13800138000")
        b = self.customer_with_phone("13900139000")
        self.add("T1", customer=a, amount=100)
        self.add("T2", customer=b, amount=200)
        self.ok("merge", str(a), str(b))
        out = self.ok("profile", "show", str(b))
        self.assertTrue(out.startswith(f"customer {a}\n(customer {b} was merged into {a})\n"), out)
        self.assertEqual(self.ok_json("profile", "show", str(b))["figures"]["net_spend"],
                         {"CNY": 300})

    def test_set_get_unset(self):
        cid = self.customer_with_phone()
        c = str(cid)
        out = self.ok("profile", "set", c, "name=王小明", "birthday=1990-05-01", "vip=true",
                      "visits=12", "score=4.5", 'tags=["tea","gift"]', 'nick="30"', "zip=01234",
                      "tier=gold", "code=+1", "ratio=1.")
        self.assertEqual(out, f"customer {cid}: set name, birthday, vip, visits, score, tags, "
                              "nick, zip, tier, code, ratio\n")
        attrs = self.ok_json("profile", "show", c)["attributes"]
        self.assertEqual(attrs, {"name": "王小明", "birthday": "1990-05-01", "vip": True,
                                 "visits": 12, "score": 4.5, "tags": ["tea", "gift"],
                                 "nick": "30", "zip": "01234", "tier": "gold", "code": "+1",
                                 "ratio": "1."})
        self.assertEqual(self.ok("profile", "get", c, "name"), "王小明\n")
        self.assertEqual(self.ok("profile", "get", c, "nick"), "30\n")
        self.assertEqual(self.ok("--json", "profile", "get", c, "nick"), '"30"\n')
        self.assertEqual(self.ok("profile", "get", c, "tags"), '["tea","gift"]\n')
        self.assertEqual(self.ok("profile", "get", c, "visits"), "12\n")
        big = 2 ** 53
        self.ok("profile", "set", c, f"big={big}")
        self.assertEqual(self.ok("profile", "get", c, "big"), f"{big}\n")

        # NAME= and NAME=null unset; the text null needs quotes
        out = self.ok("profile", "set", c, "tier=", "zip=null", "visits=13", 'word="null"')
        self.assertEqual(out, f"customer {cid}: set visits, word; unset tier, zip\n")
        j = self.ok_json("profile", "set", c, "tier=silver", "nick=")
        self.assertEqual(j, {"customer": cid, "set": ["tier"], "unset": ["nick"]})
        attrs = self.ok_json("profile", "show", c)["attributes"]
        self.assertNotIn("zip", attrs)
        self.assertNotIn("nick", attrs)
        self.assertEqual((attrs["tier"], attrs["visits"], attrs["word"]), ("silver", 13, "null"))
        err = self.fails(1, "profile", "get", c, "zip")
        self.assertRegex(err, r"^scrm: profile get: .*zip.*\(not found\)\n$")

        # all or nothing: a bad name or a bad birthday changes nothing
        err = self.fails(1, "profile", "set", c, "tier=bronze", "Bad Name=x")
        self.assertIn("(invalid argument)", err)
        err = self.fails(1, "profile", "set", c, "tier=bronze", "birthday=01/05/1990")
        self.assertIn("birthday", err)
        self.assertEqual(self.ok("profile", "get", c, "tier"), "silver\n")
        self.assertIn("attribute 'tier' is given twice",
                      self.usage_error("profile", "set", c, "tier=a", "tier=b"))
        self.assertIn("expected NAME=VALUE, not 'tier'", self.usage_error("profile", "set", c, "tier"))
        self.assertIn("expected NAME=VALUE, not '=x'", self.usage_error("profile", "set", c, "=x"))
        self.usage_error("profile", "set", c)
        self.assertIn("(not found)", self.fails(1, "profile", "set", "99", "a=1"))

        out = self.ok("profile", "unset", c, "tier", "word")
        self.assertEqual(out, f"customer {cid}: unset tier, word\n")
        err = self.fails(1, "profile", "unset", c, "name", "tier")
        self.assertIn("tier", err)
        self.assertIn("no attribute was changed", err)
        self.assertEqual(self.ok("profile", "get", c, "name"), "王小明\n")
        self.assertEqual(self.ok_json("profile", "unset", c, "name"),
                         {"customer": cid, "unset": ["name"]})
        self.usage_error("profile", "unset", c)

    def test_rfm(self):
        # three customers with orders, one without
        ids = [self.customer_with_phone(p) for p in
               ("13800138000", "13900139000", "13700137000", "13600136000")]
        self.add("A1", customer=ids[0], at=T0 - 10 * DAY, amount=10000)
        self.add("A2", customer=ids[0], at=T0 - 2 * DAY, amount=10000)
        self.add("B1", customer=ids[1], at=T0 - 40 * DAY, amount=50000)
        self.add("C1", customer=ids[2], at=T0 - 400 * DAY, amount=90000)  # outside the window
        self.add("D1", type="view", customer=ids[3], at=T0 - DAY)
        now = "2026-01-01T00:00:00Z"
        s = self.ok_json("rfm", "refresh", "--now", now)
        self.assertEqual((s["customers"], s["scored"], s["refreshed_at"]), (4, 2, T0))
        self.assertEqual(set(s["lifecycle"]), {"new", "active", "at_risk", "dormant", "lost"})
        self.assertEqual(sum(s["lifecycle"].values()), 4)
        rfm = self.ok_json("profile", "show", str(ids[0]))["rfm"]
        self.assertEqual((rfm["recency_days"], rfm["frequency"], rfm["monetary"]), (2, 2, 20000))
        self.assertEqual((rfm["r"], rfm["f"], rfm["m"]), (3, 3, 1))
        rfm = self.ok_json("profile", "show", str(ids[2]))["rfm"]
        self.assertIsNone(rfm["r"])
        out = self.ok("profile", "show", str(ids[0]))
        self.assertRegex(out, r"(?m)^rfm\s+R 3  F 3  M 1  \(as of 2026-01-01 00:00:00Z\)$")
        self.assertRegex(out, r"(?m)^\s+2 day\(s\) since the last order; 2 order\(s\), "
                              r"200\.00 CNY in the window$")
        self.assertRegex(self.ok("profile", "show", str(ids[2])),
                         r"(?m)^rfm\s+no order in the window \(as of 2026-01-01 00:00:00Z\)$")
        out = self.ok("rfm", "refresh", "--now", str(T0))
        self.assertRegex(out, r"(?m)^customers\s+4$")
        self.assertRegex(out, r"(?m)^scored\s+2\s")
        self.assertRegex(out, r"(?m)^as of\s+2026-01-01 00:00:00Z$")
        self.ok("rfm", "refresh")  # as of now
        self.assertIn("--now must be", self.usage_error("rfm", "refresh", "--now", "soon"))
        self.assertIn("(out of range)", self.fails(1, "rfm", "refresh", "--now", "99999999999999999"
                                                   [:15]))

    def test_rfm_config(self):
        conf = self.ok_json("rfm", "config")
        self.assertEqual(conf["rfm_window_days"], 365)
        self.assertEqual(conf["currency"], "CNY")
        self.assertEqual(set(conf["lifecycle"]), {"new_days", "active_days", "at_risk_days",
                                                  "dormant_days"})
        out = self.ok("rfm", "config", '{"rfm_window_days":180,"lifecycle":{"new_days":14}}')
        self.assertGreater(out.count("\n"), 3, "indented for reading")
        conf = json.loads(out)
        self.assertEqual((conf["rfm_window_days"], conf["lifecycle"]["new_days"]), (180, 14))
        self.assertEqual(conf["currency"], "CNY")
        self.assertIn("(out of range)", self.fails(1, "rfm", "config", '{"rfm_window_days":0}'))
        self.assertIn("(invalid argument)",
                      self.fails(1, "rfm", "config", '{"lifecycle":{"new_days":500}}'))
        self.assertIn("(invalid argument)", self.fails(1, "rfm", "config", '{"window":1}'))
        self.assertIn("(parse error)", self.fails(1, "rfm", "config", '{'))
        self.assertEqual(self.ok_json("rfm", "config")["rfm_window_days"], 180)
        self.usage_error("rfm", "config", "{}", "{}")


class TestPrivacy(ProfileTestCase):
    def test_consent(self):
        cid = self.customer_with_phone()
        c = str(cid)
        self.assertEqual(self.ok("consent", c, "marketing"), "marketing: not granted\n")
        self.assertEqual(self.ok("consent", c), "consent (0):\n")
        out = self.ok("consent", c, "marketing", "grant", "--source", "wecom", "--at",
                      "2026-01-03T10:16:00+08:00")
        self.assertEqual(out, f"customer {cid}: marketing consent granted (source wecom)\n")
        self.assertEqual(self.ok("consent", c, "marketing"), "marketing: granted\n")
        self.assertEqual(self.ok_json("consent", c, "marketing"),
                         {"customer": cid, "purpose": "marketing", "granted": True})
        self.assertRegex(self.ok("consent", c),
                         r"(?m)^  marketing\s+granted\s+2026-01-03 02:16:00Z  \(wecom\)$")
        j = self.ok_json("consent", c)
        self.assertEqual(j["marketing"], {"granted": True, "at": T0 + 2 * DAY + 2 * 3600_000 +
                                          16 * 60_000, "source": "wecom"})
        self.assertEqual(self.ok_json("consent", c, "sms", "withdraw", "-s", "pos"),
                         {"customer": cid, "purpose": "sms", "granted": False})
        self.ok("consent", c, "marketing", "withdraw")  # now, later than the grant
        self.assertEqual(self.ok("consent", c, "marketing"), "marketing: not granted\n")
        self.assertRegex(self.ok("consent", c), r"(?m)^  sms\s+withdrawn\s")
        self.assertEqual(self.ok_json("profile", "show", c)["consent"]["marketing"]["granted"],
                         False)

        self.assertIn("expected grant or withdraw, not 'yes'",
                      self.usage_error("consent", c, "marketing", "yes"))
        self.assertIn("--source and --at go with grant or withdraw",
                      self.usage_error("consent", c, "marketing", "--source", "x"))
        self.assertIn("--at must be", self.usage_error("consent", c, "marketing", "grant",
                                                       "--at", "now"))
        self.assertIn("(invalid argument)", self.fails(1, "consent", c, "Marketing!", "grant"))
        self.assertIn("(not found)", self.fails(1, "consent", "99", "marketing", "grant"))
        self.assertIn("(not found)", self.fails(1, "consent", "99", "marketing"))
        self.assertIn("(not found)", self.fails(1, "consent", "99"))
        self.usage_error("consent")

    def test_erase(self):
        cid = self.ok_json("observe", obs("wecom", {"phone": "13800138000",
                                                    "wechat_unionid": UNION_A}))["customer"]
        c = str(cid)
        self.add("T1", customer=cid, amount=25800, props={"note": "gift wrap for 王小明"})
        self.ok("profile", "set", c, "name=王小明")
        self.ok("consent", c, "marketing", "grant", "--source", "wecom")
        out = self.ok("erase", c, "--reason", "customer request 2026-11-01")
        self.assertEqual(out, f"erased customer {cid}: identifiers, attributes, consent and "
                              "event details deleted; totals kept\n")
        p = self.ok_json("profile", "show", c, "--unmasked")
        self.assertTrue(p["erased"])
        self.assertEqual((p["identifiers"], p["attributes"], p["consent"]), ([], {}, {}))
        self.assertEqual(p["figures"]["net_spend"], {"CNY": 25800})
        self.assertIn("(erased)", self.ok("profile", "show", c).splitlines()[0])
        events = self.ok_json("event", "list", c)
        self.assertEqual((events[0]["key"], events[0]["props"], events[0]["amount"]),
                         (None, None, 25800))
        self.assertIn("(erased)", self.ok("event", "list", c))
        self.assertIn("(not found)", self.fails(1, "resolve", "phone", "13800138000"))
        self.assertIn("(not found)", self.fails(1, "resolve", "wechat_unionid", UNION_A))
        # replaying an erased event is still a duplicate; new data is refused
        self.assertTrue(self.add("T1", customer=cid, amount=25800)["duplicate"])
        self.assertIn("(illegal state transition)",
                      self.fails(1, "event", "add", ev("T2", customer=cid)))
        self.assertIn("(illegal state transition)", self.fails(1, "profile", "set", c, "a=1"))
        self.assertIn("(illegal state transition)", self.fails(1, "erase", c))
        self.assertIn("(not found)", self.fails(1, "erase", "99"))
        self.assertEqual(self.ok_json("erase", str(self.customer_with_phone("13900139000"))),
                         {"erased": 2})
        self.usage_error("erase")
        self.usage_error("erase", "0")
        # nothing personal is left in the file
        self.ok("info")  # a clean close checkpoints the WAL
        with open(self.path("scrm.db"), "rb") as f:
            raw = f.read()
        for secret in ("8613800138000", UNION_A, "王小明", "gift wrap"):
            self.assertNotIn(secret.encode(), raw, secret)

    def test_anonymize(self):
        old = self.ok_json("observe", obs("pos", {"phone": "13800138000"}, at=T0 - 400 * DAY))
        new = self.ok_json("observe", obs("pos", {"phone": "13900139000"}, at=T0 - 400 * DAY))
        self.add("T1", customer=old["customer"], at=T0 - 300 * DAY)
        self.add("T2", customer=new["customer"], at=T0 - 10 * DAY)
        j = self.ok_json("anonymize", "--inactive-days", "100", "--now", "2026-01-01")
        self.assertEqual(j, {"erased": 1, "inactive_days": 100, "cutoff": T0 - 100 * DAY})
        self.assertTrue(self.ok_json("profile", "show", str(old["customer"]))["erased"])
        self.assertFalse(self.ok_json("profile", "show", str(new["customer"]))["erased"])
        out = self.ok("anonymize", "--inactive-days=100", "--now", str(T0))
        self.assertEqual(out, "erased 0 customers with no event since 2025-09-23 00:00:00Z\n")
        self.assertRegex(self.ok("anonymize", "--inactive-days", "36500"),
                         r"^erased 0 customers with no event since \d{4}-")
        self.assertIn("--inactive-days N is required", self.usage_error("anonymize"))
        self.assertIn("--inactive-days must be a positive integer",
                      self.usage_error("anonymize", "--inactive-days", "0"))
        self.assertIn("(out of range)", self.fails(1, "anonymize", "--inactive-days", "36501"))
        self.assertIn("--now must be", self.usage_error("anonymize", "--inactive-days", "1",
                                                        "--now", "x"))
        self.usage_error("anonymize", "--inactive-days", "5", "extra")


class TestDemo(ScrmTestCase):
    def test_demo_script(self):
        demo = os.path.join(SOURCE_ROOT, "examples", "demo.sh")
        if not os.path.exists(demo):
            self.skipTest(f"{demo} not found")
        env = dict(self.env, SCRM_EXE=SCRM, SCRM_DB=self.path("elsewhere.db"))
        r = subprocess.run(["sh", demo], cwd=self.dir, capture_output=True, text=True,
                           timeout=120, env=env)
        self.assertEqual(r.returncode, 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        self.assertTrue(os.path.isfile(self.path("scrm.db")), "the demo works on ./scrm.db")
        self.assertFalse(os.path.exists(self.path("elsewhere.db")))
        headers = re.findall(r"(?m)^==> (.*)$", r.stdout)
        self.assertGreaterEqual(len(headers), 8, r.stdout)
        self.assertRegex(r.stdout, r"(?m)^lines\s+40$")
        self.assertRegex(r.stdout, r"(?m)^schema version\s+\d+")
        self.assertRegex(r.stdout, r"(?m)^customer 1$")
        self.assertIn("digraph", r.stdout)
        # events: stored, the POS resend counted as a duplicate, the oversized refund rejected
        self.assertRegex(r.stdout, r"(?m)^lines\s+16$")
        self.assertRegex(r.stdout, r"(?m)^duplicate\s+1\s+\(lines 11\)$")
        self.assertRegex(r.stdout, r"(?m)^rejected\s+1\s+\(lines 14\)$")
        self.assertIn("events.jsonl:14: refund of 19900 exceeds", r.stderr)
        # the RFM refresh and the masked profile close the demo
        self.assertRegex(r.stdout, r"(?m)^scored\s+\d+\s")
        profile = r.stdout[r.stdout.rindex("==> The profile of customer"):]
        self.assertRegex(profile, r"(?m)^rfm\s+R \d  F \d  M \d  \(as of 2026-01-31 16:00:00Z\)$")
        self.assertRegex(profile, r"(?m)^  net spend\s+486\.00 CNY$")
        self.assertRegex(profile, r"(?m)^  phone\s+138\*\*\*\*8000$")
        self.assertRegex(profile, r"(?m)^  marketing\s+granted\s")
        self.assertNotIn("13800138000", profile)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + [a for a in sys.argv[1:] if a != "--"])
