"""Tests of the identity binding against the semantics of include/scrm/identity.h."""
import datetime
import json
import unittest
from unittest import mock

from support import OwnershipLedger, TempDirTestCase, has_identity

import scrm
from scrm import _lib

P1 = "13800138000"
P1_E164 = "+8613800138000"
P2 = "13900139000"


class TestMissingEngine(unittest.TestCase):
    """Without the identity symbols the core works and identity calls say why they fail."""

    def test_missing_symbol_is_clear(self):
        with scrm.open() as db:
            with mock.patch.object(_lib, "_funcs", {}), mock.patch.object(_lib, "lib", object()):
                with self.assertRaises(NotImplementedError) as cm:
                    db.observe({"phone": P1})
            self.assertIn("scrm_identity_observe", str(cm.exception))
            self.assertIn("tables", db.info())


@unittest.skipUnless(has_identity(), "the loaded libscrm lacks the identity engine "
                     "(scrm_identity_* not exported)")
class IdentityTestCase(TempDirTestCase):
    def setUp(self):
        super().setUp()
        self.db = scrm.open(self.path(), clock=lambda: 1_767_225_600_000)
        self.addCleanup(self.db.close)


class TestKinds(IdentityTestCase):
    def test_default_kinds(self):
        kinds = self.db.kinds()
        names = [k["name"] for k in kinds]
        for name in ("wechat_unionid", "phone", "email"):
            self.assertIn(name, names)
        order = [(k["priority"], k["name"]) for k in kinds]
        self.assertEqual(order, sorted(order))
        self.assertEqual(self.db.kind_get("wechat_unionid")["limit"], 1)
        self.assertEqual(self.db.kind_get("phone")["name"], "phone")

    def test_phone_normalization(self):
        for raw in (P1, "138 0013 8000", "+86 138-0013-8000", " 13800138000 "):
            self.assertEqual(self.db.normalize("phone", raw), P1_E164, raw)

    def test_email_normalization(self):
        self.assertEqual(self.db.normalize("email", "  Li.Lei@Example.COM "), "li.lei@example.com")

    def test_junk_values_are_rejected(self):
        with self.assertRaises(scrm.InvalidError) as cm:
            self.db.normalize("phone", "00000000000")
        self.assertEqual(cm.exception.code, 3)
        self.assertIn("00000000000", cm.exception.message)
        for junk in ("null", "unknown"):
            with self.assertRaises(scrm.InvalidError) as cm:
                self.db.normalize("wechat_unionid", junk)
            self.assertIn("blocked", cm.exception.message)

    def test_unknown_kind(self):
        with self.assertRaises(scrm.NotFoundError) as cm:
            self.db.kind_get("no_such_kind")
        self.assertIn("no_such_kind", cm.exception.message)
        with self.assertRaises(scrm.NotFoundError):
            self.db.normalize("no_such_kind", "x")

    def test_kind_set_pattern(self):
        self.db.kind_set({"name": "member_card", "normalizer": "pattern",
                          "pattern": r"^M(\d{8})$", "priority": 30, "limit": 1})
        self.assertEqual(self.db.normalize("member_card", "M12345678"), "12345678")
        with self.assertRaises(scrm.InvalidError):
            self.db.normalize("member_card", "X1")
        got = self.db.kind_get("member_card")
        self.assertEqual((got["name"], got["normalizer"], got["limit"]), ("member_card", "pattern", 1))
        self.assertIn("member_card", [k["name"] for k in self.db.kinds()])

    def test_kind_set_takes_effect_on_the_same_handle(self):
        # the kinds are cached once used: kind_set must refresh that cache
        self.assertEqual(self.db.normalize("member_card", " M12345678 "), "M12345678")
        self.db.kind_set('{"name":"shop_nick","normalizer":"casefold","priority":50,"limit":0}')
        self.assertEqual(self.db.normalize("shop_nick", "ABC"), "abc")
        self.db.kind_set({"name": "member_card", "normalizer": "pattern",
                          "pattern": r"^M(\d{8})$", "priority": 20, "limit": 1})
        self.assertEqual(self.db.normalize("member_card", "M12345678"), "12345678")
        cid = self.db.observe({"shop_nick": "Shop-A"})
        self.assertEqual(self.db.resolve("shop_nick", "shop-a"), cid)

    def test_kind_set_errors(self):
        with self.assertRaises(scrm.ParseError) as cm:
            self.db.kind_set('{"name": "x", ')
        self.assertEqual(cm.exception.code, 14)
        with self.assertRaises(scrm.InvalidError):
            self.db.kind_set({"name": "Bad Name!", "normalizer": "trim"})
        with self.assertRaises(scrm.InvalidError):
            self.db.kind_set({"name": "k", "normalizer": "no_such_normalizer"})
        with self.assertRaises(scrm.InvalidError):
            self.db.kind_set({"name": "k", "normalizer": "trim", "surprise": 1})
        with self.assertRaises(scrm.InvalidError):
            self.db.kind_set({"name": "k", "normalizer": "pattern", "pattern": "(unclosed"})
        with self.assertRaises(scrm.InvalidError) as cm:
            self.db.kind_set(42)  # any JSON value goes to the library, which wants an object
        self.assertIn("JSON object", cm.exception.message)
        with self.assertRaises(TypeError):
            self.db.kind_set(object())


class TestObserve(IdentityTestCase):
    def test_outcomes_created_unchanged_attached_merged(self):
        db = self.db
        c1, rep = db.observe({"phone": P1}, report=True)
        self.assertEqual(rep["outcome"], "created")
        self.assertEqual(rep["customer"], c1)
        self.assertGreater(c1, 0)

        again, rep = db.observe({"phone": "138 0013 8000"}, report=True)
        self.assertEqual((again, rep["outcome"]), (c1, "unchanged"))

        same, rep = db.observe({"phone": P1, "email": "A@Example.com"}, report=True)
        self.assertEqual((same, rep["outcome"]), (c1, "attached"))
        self.assertIn({"kind": "email", "value": "a@example.com"},
                      [{"kind": a["kind"], "value": a["value"]} for a in rep["attached"]])

        c2 = db.observe({"email": "b@example.com"})
        self.assertGreater(c2, c1)

        merged, rep = db.observe({"phone": P1, "email": "b@example.com"}, channel="pos",
                                 report=True)
        self.assertEqual((merged, rep["outcome"]), (c1, "merged"))
        self.assertEqual(len(rep["merged"]), 1)
        self.assertEqual((rep["merged"][0]["survivor"], rep["merged"][0]["absorbed"]), (c1, c2))
        self.assertEqual(db.canonical(c2), c1)
        self.assertEqual(db.canonical(c1), c1)
        self.assertEqual(db.resolve("email", "B@EXAMPLE.COM"), c1)

    def test_without_report_returns_int(self):
        cid = self.db.observe({"phone": P1})
        self.assertIsInstance(cid, int)
        self.assertEqual(self.db.resolve("phone", P1_E164), cid)

    def test_list_values_and_pairs(self):
        db = self.db
        cid = db.observe({"phone": [P1, P2]})
        self.assertEqual(db.resolve("phone", P2), cid)
        self.assertEqual(db.observe([("phone", P2), ("email", "c@example.com")]), cid)
        self.assertEqual(db.resolve("email", "c@example.com"), cid)

    def test_identifiers(self):
        at = 1_700_000_000_123
        cid = self.db.observe({"phone": P1, "email": "x@example.com"}, channel="wecom", at=at)
        ids = self.db.identifiers(cid)
        self.assertEqual(sorted((i["kind"], i["value"]) for i in ids),
                         [("email", "x@example.com"), ("phone", P1_E164)])
        for i in ids:
            self.assertEqual(i["channel"], "wecom")
            self.assertEqual(i["at"], at)
            self.assertIn("observation", i)

    def test_at_datetime_and_clock(self):
        when = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        c1 = self.db.observe({"phone": P1}, at=when)
        self.assertEqual(self.db.identifiers(c1)[0]["at"], 1_767_225_600_000)
        c2 = self.db.observe({"phone": P2})  # at=None: the injected clock
        self.assertEqual(self.db.identifiers(c2)[0]["at"], 1_767_225_600_000)
        self.assertEqual(self.db.identifiers(c2)[0]["channel"], "api")

    def test_blocked_alone_is_invalid_and_stores_nothing(self):
        before = self.db.info()["tables"]
        with self.assertRaises(scrm.InvalidError) as cm:
            self.db.observe({"phone": "00000000000"})
        self.assertIn("00000000000", cm.exception.message)
        self.assertEqual(self.db.info()["tables"], before)
        with self.assertRaises(scrm.InvalidError):
            self.db.resolve("phone", "00000000000")

    def test_blocked_next_to_usable_is_reported(self):
        cid, rep = self.db.observe({"phone": ["00000000000", P1], "wechat_unionid": "null"},
                                   report=True)
        self.assertEqual(rep["outcome"], "created")
        rejected = sorted((r["kind"], r["value"]) for r in rep["rejected"])
        self.assertEqual(rejected, [("phone", "00000000000"), ("wechat_unionid", "null")])
        reasons = {r["kind"]: r["reason"] for r in rep["rejected"]}
        self.assertIn("blocked", reasons["wechat_unionid"])
        self.assertEqual([i["value"] for i in self.db.identifiers(cid)], [P1_E164])

    def test_two_unionids_never_merge(self):
        db = self.db
        c1 = db.observe({"wechat_unionid": "oUnion_1", "phone": P1})
        c2 = db.observe({"wechat_unionid": "oUnion_2", "phone": P2})
        self.assertNotEqual(c1, c2)
        cid, rep = db.observe({"wechat_unionid": "oUnion_2", "phone": P1}, report=True)
        self.assertIn(cid, (c1, c2))
        self.assertEqual(rep["merged"], [])
        self.assertTrue(rep["conflicts"], rep)
        self.assertTrue(all("reason" in c and "owner" in c for c in rep["conflicts"]))
        self.assertEqual((db.canonical(c1), db.canonical(c2)), (c1, c2))
        self.assertEqual(db.resolve("wechat_unionid", "oUnion_1"), c1)
        self.assertEqual(db.resolve("wechat_unionid", "oUnion_2"), c2)
        self.assertTrue(db.explain(c1)["conflicts"] or db.explain(c2)["conflicts"])

    def test_unknown_kind_is_not_found(self):
        with self.assertRaises(scrm.NotFoundError) as cm:
            self.db.observe({"no_such_kind": "x"})
        self.assertIn("no_such_kind", cm.exception.message)

    def test_empty_observation_is_invalid(self):
        with self.assertRaises(scrm.InvalidError):
            self.db.observe({})

    def test_python_side_argument_errors(self):
        with self.assertRaises(TypeError):
            self.db.observe({"phone": 13800138000})
        with self.assertRaises(ValueError):
            self.db.observe({"phone": "138\x00"})
        with self.assertRaises(TypeError):
            self.db.observe({"phone": P1}, channel=None)
        with self.assertRaises(scrm.RangeError):
            self.db.canonical(2 ** 63)
        with self.assertRaises(scrm.RangeError):
            self.db.observe({"phone": P1}, at=2 ** 64)

    def test_observe_json(self):
        db = self.db
        c1, rep = db.observe_json({"channel": "tmall", "at": 1_767_225_600_000,
                                   "ids": {"tmall_buyer_nick": "小明", "phone": ["138 0013 8000"]}},
                                  report=True)
        self.assertEqual(rep["outcome"], "created")
        self.assertEqual(db.observe_json(json.dumps({"channel": "pos", "ids": {"phone": P1}})), c1)
        self.assertEqual(db.resolve("tmall_buyer_nick", "小明"), c1)
        with self.assertRaises(scrm.ParseError) as cm:
            db.observe_json('{"channel": "pos", "ids": {')
        self.assertEqual(cm.exception.code, 14)
        with self.assertRaises(scrm.InvalidError):
            db.observe_json({"channel": "pos", "ids": {"phone": P1}, "surprise": True})

    def test_resolve_and_canonical_not_found(self):
        with self.assertRaises(scrm.NotFoundError):
            self.db.resolve("phone", P2)
        with self.assertRaises(scrm.NotFoundError):
            self.db.canonical(424242)

    def test_deterministic(self):
        script = [{"phone": P1}, {"email": "a@example.com"}, {"wechat_unionid": "oU"},
                  {"phone": P1, "email": "a@example.com"}, {"phone": P2, "wechat_unionid": "oU"}]

        def run(path):
            with scrm.open(path, clock=lambda: 1) as db:
                return [db.observe(ids, report=True) for ids in script]
        self.assertEqual(run(self.path("a.db")), run(self.path("b.db")))


class TestMergeLog(IdentityTestCase):
    def two_customers(self):
        a = self.db.observe({"phone": P1, "email": "a@example.com"})
        b = self.db.observe({"phone": P2, "email": "b@example.com"})
        return a, b

    def test_manual_merge(self):
        a, b = self.two_customers()
        merge_id = self.db.merge(b, a, reason="same person, confirmed by phone call")
        self.assertIsInstance(merge_id, int)
        self.assertEqual(self.db.canonical(b), a)
        self.assertEqual(len(self.db.identifiers(b)), 4)
        with self.assertRaises(scrm.InvalidError):
            self.db.merge(a, b)
        with self.assertRaises(scrm.NotFoundError):
            self.db.merge(a, 999_999)
        hist = self.db.history(a)
        self.assertEqual([(h["op"], h["survivor"], h["absorbed"]) for h in hist],
                         [("merge", a, b)])
        self.assertEqual(hist[0]["id"], merge_id)
        self.assertIn("phone call", hist[0]["reason"])

    def test_never_merge(self):
        a, b = self.two_customers()
        self.db.never_merge(a, b, reason="twins")
        with self.assertRaises(scrm.ExistsError):
            self.db.never_merge(b, a)
        with self.assertRaises(scrm.ConflictError):
            self.db.merge(a, b)
        with self.assertRaises(scrm.InvalidError):
            self.db.never_merge(a, a)
        with self.assertRaises(scrm.NotFoundError):
            self.db.never_merge(a, 999_999)
        cid, rep = self.db.observe({"phone": P1, "email": "b@example.com"}, report=True)
        self.assertEqual(rep["merged"], [])
        self.assertTrue(rep["conflicts"])
        self.assertEqual((self.db.canonical(a), self.db.canonical(b)), (a, b))

    def test_unmerge_restores(self):
        db = self.db
        a, b = self.two_customers()
        ids_a = sorted((i["kind"], i["value"]) for i in db.identifiers(a))
        ids_b = sorted((i["kind"], i["value"]) for i in db.identifiers(b))
        _, rep = db.observe({"phone": P1, "email": "b@example.com"}, report=True)
        self.assertEqual(rep["outcome"], "merged")
        merge_id = rep["merged"][0]["merge"]
        self.assertEqual(db.canonical(b), a)

        unmerge_id = db.unmerge(merge_id, reason="wrong link")
        self.assertIsInstance(unmerge_id, int)
        self.assertEqual((db.canonical(a), db.canonical(b)), (a, b))
        self.assertEqual(sorted((i["kind"], i["value"]) for i in db.identifiers(a)), ids_a)
        self.assertEqual(sorted((i["kind"], i["value"]) for i in db.identifiers(b)), ids_b)
        self.assertEqual(db.resolve("email", "b@example.com"), b)

        hist = {h["id"]: h for h in db.history(a)}
        self.assertEqual(hist[merge_id]["undone_by"], unmerge_id)
        self.assertEqual(hist[unmerge_id]["op"], "unmerge")

        with self.assertRaises(scrm.StateError):
            db.unmerge(merge_id)
        with self.assertRaises(scrm.NotFoundError):
            db.unmerge(999_999)
        # the pair is now never-merge: the same link is a conflict, not a merge
        _, rep = db.observe({"phone": P1, "email": "b@example.com"}, report=True)
        self.assertEqual(rep["merged"], [])
        self.assertTrue(rep["conflicts"])

    def test_explain(self):
        a, b = self.two_customers()
        self.db.merge(a, b)
        graph = self.db.explain(b)
        for key in ("customer", "canonical", "absorbed", "identifiers", "observations",
                    "history", "conflicts"):
            self.assertIn(key, graph)
        self.assertEqual(graph["canonical"], a)
        dot = self.db.explain_dot(a)
        self.assertTrue(dot.startswith("digraph"), dot[:40])
        self.assertIn(P1_E164, dot)
        with self.assertRaises(scrm.NotFoundError):
            self.db.explain(999_999)
        with self.assertRaises(scrm.NotFoundError):
            self.db.explain_dot(999_999)


class TestBoundary(IdentityTestCase):
    def test_every_output_is_freed_once(self):
        db = self.db
        with OwnershipLedger() as ledger:
            db.kinds()
            db.kind_get("phone")
            db.normalize("phone", P1)
            a, _ = db.observe({"phone": P1}, report=True)
            b, _ = db.observe_json({"channel": "pos", "ids": {"email": "z@example.com"}},
                                   report=True)
            db.observe({"phone": P2})
            m = db.merge(a, b)
            db.identifiers(a)
            db.history(a)
            db.explain(a)
            db.explain_dot(a)
            db.unmerge(m)
            produced_ok = len(ledger.produced)
            for call in (lambda: db.kind_get("nope"), lambda: db.normalize("phone", "00000000000"),
                         lambda: db.observe({"phone": "00000000000"}, report=True),
                         lambda: db.observe_json("{", report=True),
                         lambda: db.explain(999_999), lambda: db.explain_dot(999_999)):
                with self.assertRaises(scrm.Error):
                    call()
        self.assertEqual(produced_ok, 9)
        self.assertTrue(ledger.balanced(), (ledger.produced, ledger.freed))

    def test_use_after_close(self):
        self.db.close()
        for call in (lambda: self.db.observe({"phone": P1}), lambda: self.db.kinds(),
                     lambda: self.db.resolve("phone", P1), lambda: self.db.merge(1, 2)):
            with self.assertRaises(scrm.MisuseError):
                call()

    def test_readonly_refuses_observe(self):
        self.db.observe({"phone": P1})
        self.db.close()
        with scrm.open(self.path(), readonly=True) as ro:
            self.assertGreater(ro.resolve("phone", P1), 0)
            with self.assertRaises(scrm.ReadOnlyError):
                ro.observe({"phone": P2})
            with self.assertRaises(scrm.ReadOnlyError):
                ro.kind_set({"name": "k", "normalizer": "trim"})


if __name__ == "__main__":
    unittest.main()
