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


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + [a for a in sys.argv[1:] if a != "--"])
