"""Tests of the events and profiles binding against the semantics of include/scrm/profile.h."""
import datetime
import io
import json
import sqlite3
import unittest
from unittest import mock

from support import OwnershipLedger, TempDirTestCase, has_profile

import scrm
from scrm import _lib

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000
P1, P1_E164, P2 = "13800138000", "+8613800138000", "13900139000"
UTC = datetime.timezone.utc


class TestMissingEngine(unittest.TestCase):
    """Without the profile symbols the core works and profile calls say why they fail."""

    def test_missing_symbol_is_clear(self):
        with scrm.open() as db:
            with mock.patch.object(_lib, "_funcs", {}), mock.patch.object(_lib, "lib", object()):
                with self.assertRaises(NotImplementedError) as cm:
                    db.profile(1)
            self.assertIn("scrm_profile_json", str(cm.exception))
            self.assertIn("tables", db.info())


@unittest.skipUnless(has_profile(), "the loaded libscrm lacks the profile engine "
                     "(scrm_profile_* not exported)")
class ProfileTestCase(TempDirTestCase):
    def setUp(self):
        super().setUp()
        self.now = T0
        self.db = scrm.open(self.path(), clock=lambda: self.now)
        self.addCleanup(self.db.close)

    def order(self, key, customer, amount=12900, at=T0, channel="pos", **more):
        return self.db.event_add(key=key, type="order", channel=channel, at=at,
                                 customer=customer, amount=amount, currency="CNY", **more)

    def customer(self, phone=P1):
        return self.db.observe({"phone": phone}, channel="wecom")


class TestEventAdd(ProfileTestCase):
    def test_keywords_by_identifiers(self):
        db = self.db
        cid = db.event_add(key="T0042", type="order", channel="pos", at=T0,
                           ids={"phone": "138 0013 8000", "email": "Z@Example.com"},
                           amount=12900, currency="CNY",
                           items=[{"sku": "A1", "qty": 2, "price": 6450}],
                           props={"store": "SH-01"})
        self.assertIsInstance(cid, int)
        self.assertEqual(db.resolve("phone", P1), cid)
        self.assertEqual(db.resolve("email", "z@example.com"), cid)
        (e,) = db.events(cid)
        self.assertEqual((e["key"], e["type"], e["channel"], e["at"], e["amount"], e["currency"]),
                         ("T0042", "order", "pos", T0, 12900, "CNY"))
        self.assertEqual(e["items"], [{"sku": "A1", "qty": 2, "price": 6450}])
        self.assertEqual(e["props"], {"store": "SH-01"})
        self.assertIsNone(e["refund_of"])
        # identifiers as (kind, value) pairs, several values of a kind
        self.assertEqual(db.event_add(key="V1", type="view", channel="web", at=T0,
                                      ids=[("phone", P1), ("phone", P2)]), cid)
        self.assertEqual(db.resolve("phone", P2), cid)

    def test_dict_json_text_and_times(self):
        db = self.db
        cid = self.customer()
        ev = {"key": "T1", "type": "order", "channel": "pos", "at": T0, "customer": cid,
              "amount": 100, "currency": "CNY"}
        self.assertEqual(db.event_add(ev), cid)
        self.assertEqual(db.event_add(json.dumps(dict(ev, key="T2"))), cid)
        self.assertEqual(db.event_add(json.dumps(dict(ev, key="T3")).encode()), cid)
        self.assertEqual(db.event_add(ev, key="T4"), cid, "keywords override the dict")
        # RFC 3339 text, a datetime, and None (the database's clock)
        db.event_add(ev, key="T5", at="2026-01-02T08:00:00+08:00")
        db.event_add(ev, key="T6", at=datetime.datetime(2026, 1, 3, tzinfo=UTC))
        self.now = T0 + 10 * DAY
        db.event_add(ev, key="T7", at=None)
        db.event_add(dict(ev, key="T8", at="2026-01-04T00:00:00Z", ids={"phone": P1}),
                     customer=None)
        db.event_add(key="T9", type="view", channel="pos", at="2026-01-05T00:00:00Z",
                     ids=[("phone", P1)], props='{"a":1}')
        at = {e["key"]: e["at"] for e in db.events(cid)}
        self.assertEqual(at["T5"], T0 + DAY)
        self.assertEqual(at["T6"], T0 + 2 * DAY)
        self.assertEqual(at["T7"], T0 + 10 * DAY)
        self.assertEqual(at["T8"], T0 + 3 * DAY)
        self.assertEqual(at["T9"], T0 + 4 * DAY)
        self.assertEqual(len(at), 9)

    def test_duplicate(self):
        cid = self.customer()
        self.order("T1", cid)
        first = self.db.events(cid)[0]["id"]
        with self.assertRaises(scrm.DuplicateError) as cm:
            self.order("T1", cid, amount=99999)
        e = cm.exception
        self.assertEqual((e.code, e.customer, e.event), (18, cid, first))
        self.assertIn("T1", e.message)
        with self.assertRaises(scrm.DuplicateError):
            self.db.event_add(json.dumps({"key": "T1", "type": "order", "channel": "pos",
                                          "at": T0, "customer": cid, "amount": 1,
                                          "currency": "CNY"}))
        self.assertEqual(self.db.profile(cid)["figures"]["net_spend"], {"CNY": 12900})
        self.order("T1", cid, channel="tmall")  # another channel: another event
        self.assertEqual(self.db.profile(cid)["figures"]["orders"], 2)

    def test_refunds(self):
        cid = self.customer()
        self.order("T1", cid, amount=10000)
        self.db.event_add(key="R1", type="refund", channel="pos", at=T0 + DAY, customer=cid,
                          amount=3000, currency="CNY", refund_of="T1")
        fig = self.db.profile(cid)["figures"]
        self.assertEqual((fig["orders"], fig["refunds"], fig["net_spend"]), (1, 1, {"CNY": 7000}))
        with self.assertRaises(scrm.InvalidError) as cm:
            self.db.event_add(key="R2", type="refund", channel="pos", at=T0 + DAY, customer=cid,
                              amount=8000, currency="CNY", refund_of="T1")
        self.assertIn("exceeds", cm.exception.message)
        with self.assertRaises(scrm.NotFoundError):
            self.db.event_add(key="R3", type="refund", channel="pos", at=T0, customer=cid,
                              amount=1, currency="CNY", refund_of="nope")

    def test_errors(self):
        db = self.db
        cid = self.customer()
        base = dict(key="E1", type="order", channel="pos", at=T0, amount=1, currency="CNY")
        with self.assertRaises(scrm.InvalidError):      # neither customer nor ids
            db.event_add(**base)
        with self.assertRaises(scrm.InvalidError):      # both
            db.event_add(**base, customer=cid, ids={"phone": P1})
        with self.assertRaises(scrm.InvalidError):      # an order needs an amount
            db.event_add(key="E1", type="order", channel="pos", at=T0, customer=cid)
        with self.assertRaises(scrm.InvalidError):
            db.event_add(**dict(base, type="Order!"), customer=cid)
        with self.assertRaises(scrm.NotFoundError):
            db.event_add(**base, customer=424242)
        with self.assertRaises(scrm.NotFoundError):
            db.event_add(**base, ids={"no_such_kind": "x"})
        with self.assertRaises(scrm.RangeError):
            db.event_add(**dict(base, at=-1), customer=cid)
        with self.assertRaises(scrm.RangeError):
            db.event_add(**dict(base, amount=10 ** 16), customer=cid)
        with self.assertRaises(scrm.ParseError):
            db.event_add(**base, customer=cid, props="{not json")
        with self.assertRaises(scrm.LimitError):
            db.event_add(**dict(base, amount=None, type="view"),
                         ids=[("email", f"u{i}@example.com") for i in range(65)])
        with self.assertRaises(scrm.ParseError):
            db.event_add('{"key": "E1",')
        with self.assertRaises(scrm.InvalidError) as cm:
            db.event_add(json.dumps(dict(base, customer=cid, surprise=1)))
        self.assertIn("surprise", cm.exception.message)
        # Python-side mistakes
        with self.assertRaises(TypeError) as cm:
            db.event_add(**base, customer=cid, surprise=1)
        self.assertIn("surprise", str(cm.exception))
        with self.assertRaises(TypeError):
            db.event_add('{"key":"E1"}', key="E2")
        with self.assertRaises(TypeError):
            db.event_add(42)
        with self.assertRaises(TypeError):
            db.event_add(type="view", channel="pos", at=T0, customer=cid)  # no key
        with self.assertRaises(scrm.RangeError):
            db.event_add(**dict(base, amount=2 ** 63), customer=cid)
        self.assertEqual(db.events(cid), [], "nothing was stored")


class TestImport(ProfileTestCase):
    def lines(self, cid):
        return [
            {"key": "T1", "type": "order", "channel": "pos", "at": T0, "customer": cid,
             "amount": 500, "currency": "CNY"},
            '{"key":"T2",',
            {"key": "T1", "type": "order", "channel": "pos", "at": T0, "customer": cid,
             "amount": 500, "currency": "CNY"},
            {"key": "V1", "type": "view", "channel": "web", "at": T0, "ids": {"phone": P2}},
        ]

    def test_iterable(self):
        cid = self.customer()
        s = self.db.import_events(self.lines(cid))
        self.assertEqual((s["lines"], s["stored"], s["duplicate"], s["rejected"]), (4, 2, 1, 1))
        self.assertEqual([(e["line"], e["code"]) for e in s["errors"]], [(2, "SCRM_PARSE")])
        self.assertTrue(s["errors"][0]["message"])
        self.assertEqual(self.db.profile(cid)["figures"]["net_spend"], {"CNY": 500})
        self.assertGreater(self.db.resolve("phone", P2), cid)

    def test_text_bytes_and_file(self):
        cid = self.customer()
        text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in self.lines(cid))
        text = "\n\n" + text + "\n"
        s = self.db.import_events(text)
        self.assertEqual((s["lines"], s["stored"]), (4, 2))
        self.assertEqual(s["errors"][0]["line"], 4, "line numbers count blank lines too")
        s = self.db.import_events(text.encode())
        self.assertEqual((s["stored"], s["duplicate"], s["rejected"]), (0, 3, 1))
        s = self.db.import_events(io.StringIO(text))
        self.assertEqual(s["duplicate"], 3)
        self.assertEqual(self.db.import_events(""), {"lines": 0, "stored": 0, "duplicate": 0,
                                                     "rejected": 0, "errors": []})
        with self.assertRaises(TypeError):
            self.db.import_events(42)


class TestAddEvents(ProfileTestCase):
    def test_results_order_and_duplicates(self):
        db = self.db
        a, b = self.customer(P1), self.customer(P2)
        events = [
            {"key": "K1", "type": "order", "channel": "pos", "at": T0, "customer": b,
             "amount": 500, "currency": "CNY"},
            {"key": "V1", "type": "view", "channel": "pos", "at": T0 + 1, "customer": a},
            {"key": "K1", "type": "order", "channel": "pos", "at": T0 + 2, "customer": a,
             "amount": 700, "currency": "CNY"},
            {"key": "X1", "type": "view", "channel": "pos", "at": T0, "customer": 999},
            {"key": "B1", "type": "Bad!", "channel": "pos", "customer": a,
             "at": datetime.datetime(2026, 1, 2, tzinfo=UTC)},
        ]
        r = db.add_events(events)
        self.assertEqual(len(r), 5)
        self.assertIsInstance(r[0], scrm.EventResult)
        # By customer id: a's K1 first, b's is the duplicate.
        self.assertIsNone(r[1].error)
        self.assertIsNone(r[2].error)
        self.assertIsInstance(r[0].error, scrm.DuplicateError)
        self.assertEqual((r[0].customer, r[0].event), (a, r[2].event))
        self.assertEqual((r[0].error.customer, r[0].error.event), (a, r[2].event))
        self.assertIsInstance(r[3].error, scrm.NotFoundError)
        self.assertEqual((r[3].customer, r[3].event), (0, 0))
        self.assertIsInstance(r[4].error, scrm.InvalidError)
        self.assertIn("event 4", str(r[4].error))
        # The library's reasons, as event_add() would give them.
        self.assertIn("[a-z0-9_]", str(r[4].error))
        self.assertIn("999", str(r[3].error))
        self.assertLess(r[1].event, r[2].event)
        self.assertEqual(db.profile(a)["figures"]["net_spend"], {"CNY": 700})
        self.assertEqual(db.profile(b)["figures"]["events"], 0)
        # Input order: the first K1 wins.
        events2 = [dict(e, channel="tmall") for e in events[:3]]
        r = db.add_events(events2, input_order=True)
        self.assertIsNone(r[0].error)
        self.assertIsInstance(r[2].error, scrm.DuplicateError)
        self.assertEqual(r[2].customer, b)
        self.assertLess(r[0].event, r[1].event)
        self.assertEqual(db.add_events([]), [])

    def test_bad_arguments(self):
        db = self.db
        a = self.customer()
        ok = {"key": "K", "type": "view", "channel": "pos", "at": T0, "customer": a}
        for bad, exc in (([42], TypeError), ([dict(ok, colour=1)], TypeError),
                         ([dict(ok, at="2026-01-01T00:00:00Z")], TypeError),
                         ([dict(ok, customer="x")], TypeError)):
            with self.subTest(bad=bad), self.assertRaises(exc):
                db.add_events(bad)
        self.assertEqual(db.profile(a)["figures"]["events"], 0, "nothing stored")
        # Events from a generator; at None is the database clock.
        r = db.add_events(dict(ok, key=f"G{i}", at=None) for i in range(3))
        self.assertEqual([x.error for x in r], [None] * 3)
        self.assertEqual([e["at"] for e in db.events(a)], [T0] * 3)

    def test_out_of_memory(self):
        """Each allocation failing in turn: NoMemoryError and nothing stored, then success."""
        db = self.db
        a = self.customer()
        events = [{"key": "M1", "type": "order", "channel": "pos", "at": T0, "customer": a,
                   "amount": 500, "currency": "CNY", "props": {"sku": "A1"}},
                  {"key": "M2", "type": "view", "channel": "pos", "at": T0, "ids": {"phone": P2}}]
        failures = 0
        for nth in range(1, 3000):
            db.test_alloc_fail(nth)
            try:
                r = db.add_events(events)
            except scrm.NoMemoryError:
                failures += 1
                self.assertEqual(db.profile(a)["figures"]["events"], 0)
                with self.assertRaises(scrm.NotFoundError):
                    db.resolve("phone", P2)
                continue
            finally:
                db.test_alloc_fail(0)
            break
        else:
            self.fail("add_events never succeeded")
        self.assertGreater(failures, 0)
        self.assertEqual([x.error for x in r], [None, None])
        self.assertEqual(db.profile(a)["figures"]["events"], 1)

    def test_rolled_back_with_the_batch(self):
        db = self.db
        a = self.customer()
        with self.assertRaises(RuntimeError):
            with db.batch():
                db.add_events([{"key": "K", "type": "view", "channel": "pos", "at": T0,
                                "customer": a}])
                raise RuntimeError("boom")
        self.assertEqual(db.profile(a)["figures"]["events"], 0)


class TestEventsAndStats(ProfileTestCase):
    def test_events_since_limit(self):
        cid = self.customer()
        for i in range(5):
            self.order(f"T{i}", cid, at=T0 + i * DAY, amount=100 * (i + 1))
        self.assertEqual([e["key"] for e in self.db.events(cid)], ["T4", "T3", "T2", "T1", "T0"])
        self.assertEqual([e["key"] for e in self.db.events(cid, limit=2)], ["T4", "T3"])
        self.assertEqual([e["key"] for e in self.db.events(cid, since=T0 + 3 * DAY)], ["T4", "T3"])
        since = datetime.datetime(2026, 1, 4, tzinfo=UTC)
        self.assertEqual(len(self.db.events(cid, since=since)), 2)
        with self.assertRaises(scrm.RangeError):
            self.db.events(cid, limit=-1)
        with self.assertRaises(scrm.NotFoundError):
            self.db.events(424242)

    def test_event_stats(self):
        cid = self.customer()
        self.order("T1", cid, at=T0, amount=1000)
        self.order("T2", cid, at=T0 + DAY, amount=2000)
        self.db.event_add(key="T3", type="order", channel="pos", at=T0 + 2 * DAY,
                          customer=cid, amount=400, currency="USD")
        self.assertEqual(self.db.event_stats(cid, "order"), (3, 3000))
        self.assertEqual(self.db.event_stats(cid, "order", currency="USD"), (3, 400))
        self.assertEqual(self.db.event_stats(cid, "order", since=T0 + DAY), (2, 2000))
        self.assertEqual(self.db.event_stats(cid, "view"), (0, 0))
        with self.assertRaises(scrm.NotFoundError):
            self.db.event_stats(424242, "order")


class TestProfile(ProfileTestCase):
    def test_profile_masked_and_unmasked(self):
        cid = self.db.observe({"phone": P1, "email": "zhang@example.com"})
        self.order("T1", cid, amount=25800)
        p = self.db.profile(cid)
        for key in ("customer", "erased", "attributes", "figures", "rfm", "lifecycle", "consent",
                    "identifiers"):
            self.assertIn(key, p)
        self.assertEqual((p["customer"], p["erased"], p["rfm"]), (cid, False, None))
        self.assertEqual(sorted(i["value"] for i in p["identifiers"]),
                         ["138****8000", "z***@example.com"])
        self.assertEqual(p["figures"]["avg_order_value"], {"CNY": 25800})
        self.assertIn(p["lifecycle"], ("new", "active", "at_risk", "dormant", "lost"))
        clear = self.db.profile(cid, unmasked=True)
        self.assertEqual(sorted(i["value"] for i in clear["identifiers"]),
                         [P1_E164, "zhang@example.com"])
        with self.assertRaises(scrm.NotFoundError):
            self.db.profile(424242)

    def test_merge_sums_and_unmerge_splits(self):
        a, b = self.customer(P1), self.customer(P2)
        self.order("A1", a, amount=100)
        self.order("B1", b, amount=200)
        m = self.db.merge(a, b)
        self.assertEqual(self.db.profile(b)["customer"], a)
        self.assertEqual(self.db.profile(a)["figures"]["net_spend"], {"CNY": 300})
        self.db.unmerge(m)
        self.assertEqual(self.db.profile(a)["figures"]["net_spend"], {"CNY": 100})
        self.assertEqual(self.db.profile(b)["figures"]["net_spend"], {"CNY": 200})

    def test_attributes(self):
        db, cid = self.db, self.customer()
        db.set_attributes(cid, {"name": "王小明", "tags": ["tea"]}, birthday="1990-05-01",
                          tz="Asia/Shanghai", vip=True, visits=12, score=4.5)
        self.assertEqual(db.profile(cid)["attributes"],
                         {"name": "王小明", "tags": ["tea"], "birthday": "1990-05-01",
                          "tz": "Asia/Shanghai", "vip": True, "visits": 12, "score": 4.5})
        self.assertEqual(db.get_attribute(cid, "name"), "王小明")
        self.assertIs(db.get_attribute(cid, "vip"), True)
        self.assertEqual(db.get_attribute(cid, "visits"), 12)
        db.set_attributes(cid, '{"visits": 13, "score": null}')
        self.assertEqual(db.get_attribute(cid, "visits"), 13)
        self.assertIsNone(db.get_attribute(cid, "score", None))
        db.set_attributes(cid, tags=None)
        self.assertEqual(db.get_attribute(cid, "tags", "gone"), "gone")
        db.unset_attribute(cid, "vip")
        with self.assertRaises(scrm.NotFoundError) as cm:
            db.get_attribute(cid, "vip")
        self.assertIn("vip", cm.exception.message)
        with self.assertRaises(scrm.NotFoundError):
            db.unset_attribute(cid, "vip")
        # all or nothing
        with self.assertRaises(scrm.InvalidError):
            db.set_attributes(cid, visits=14, birthday="01/05/1990")
        with self.assertRaises(scrm.InvalidError):
            db.set_attributes(cid, {"Bad Name": 1, "visits": 14})
        self.assertEqual(db.get_attribute(cid, "visits"), 13)
        with self.assertRaises(scrm.ParseError):
            db.set_attributes(cid, "{")
        with self.assertRaises(scrm.NotFoundError):
            db.set_attributes(424242, a=1)
        with self.assertRaises(TypeError):
            db.set_attributes(cid, ["a"])
        with self.assertRaises(ValueError):
            db.set_attributes(cid, x=float("nan"))


class TestRfm(ProfileTestCase):
    def test_config(self):
        conf = self.db.profile_config()
        self.assertEqual((conf["rfm_window_days"], conf["currency"]), (365, "CNY"))
        self.assertEqual(conf["lifecycle"], {"new_days": 30, "active_days": 90,
                                             "at_risk_days": 180, "dormant_days": 365})
        conf = self.db.profile_config_set(rfm_window_days=180, lifecycle={"new_days": 14})
        self.assertEqual((conf["rfm_window_days"], conf["lifecycle"]["new_days"]), (180, 14))
        self.assertEqual(self.db.profile_config_set('{"currency":"USD"}')["currency"], "USD")
        self.assertEqual(self.db.profile_config_set({"currency": "CNY"})["rfm_window_days"], 180)
        with self.assertRaises(scrm.RangeError):
            self.db.profile_config_set(rfm_window_days=0)
        with self.assertRaises(scrm.InvalidError):
            self.db.profile_config_set(lifecycle={"new_days": 500})
        with self.assertRaises(scrm.InvalidError):
            self.db.profile_config_set(window=1)
        self.assertEqual(self.db.profile_config()["rfm_window_days"], 180)

    def test_refresh_scores(self):
        db = self.db
        a, b, c, d = (self.customer(p) for p in (P1, P2, "13700137000", "13600136000"))
        self.order("A1", a, at=T0 - 10 * DAY, amount=10000)
        self.order("A2", a, at=T0 - 2 * DAY, amount=10000)
        self.order("B1", b, at=T0 - 40 * DAY, amount=50000)
        self.order("C1", c, at=T0 - 400 * DAY, amount=90000)  # outside the window
        db.event_add(key="D1", type="view", channel="web", at=T0 - DAY, customer=d)
        s = db.rfm_refresh(T0)
        self.assertEqual((s["customers"], s["scored"], s["refreshed_at"]), (4, 2, T0))
        self.assertEqual(sum(s["lifecycle"].values()), 4)
        self.assertIsInstance(s["seconds"], (int, float))
        ra = db.profile(a)["rfm"]
        self.assertEqual((ra["recency_days"], ra["frequency"], ra["monetary"]), (2, 2, 20000))
        self.assertEqual((ra["r"], ra["f"], ra["m"]), (3, 3, 1))
        rb = db.profile(b)["rfm"]
        self.assertEqual((rb["r"], rb["f"], rb["m"]), (1, 1, 3))
        rc = db.profile(c)["rfm"]
        self.assertEqual((rc["r"], rc["frequency"], rc["monetary"]), (None, 0, 0))
        self.assertEqual(db.profile(a)["rfm"]["refreshed_at"], T0)
        # a datetime and the clock
        self.assertEqual(db.rfm_refresh(datetime.datetime(2026, 1, 1, tzinfo=UTC))["refreshed_at"],
                         T0)
        self.now = T0 + 5
        self.assertEqual(db.rfm_refresh()["refreshed_at"], T0 + 5)
        with self.assertRaises(scrm.RangeError):
            db.rfm_refresh(-1)


class TestPrivacy(ProfileTestCase):
    def test_consent(self):
        db, cid = self.db, self.customer()
        self.assertFalse(db.consent_get(cid, "marketing"))
        db.consent_set(cid, "marketing", True, source="wecom")
        self.assertIs(db.consent_get(cid, "marketing"), True)
        c = db.profile(cid)["consent"]["marketing"]
        self.assertEqual(c, {"granted": True, "at": T0, "source": "wecom"})
        db.consent_set(cid, "marketing", False, at=T0 + DAY)
        self.assertFalse(db.consent_get(cid, "marketing"))
        db.consent_set(cid, "marketing", True, at=datetime.datetime(2025, 12, 1, tzinfo=UTC))
        self.assertFalse(db.consent_get(cid, "marketing"), "the latest time wins")
        with self.assertRaises(scrm.InvalidError):
            db.consent_set(cid, "Marketing!", True)
        with self.assertRaises(scrm.NotFoundError):
            db.consent_set(424242, "marketing", True)
        with self.assertRaises(scrm.NotFoundError):
            db.consent_get(424242, "marketing")

    def test_erase(self):
        db = self.db
        cid = db.observe({"phone": P1, "wechat_unionid": "oUnion_secret"})
        self.order("T1", cid, amount=25800, props={"note": "gift for Wang"})
        db.set_attributes(cid, name="王小明")
        db.consent_set(cid, "marketing", True, source="wecom")
        db.erase(cid, reason="customer request")
        p = db.profile(cid, unmasked=True)
        self.assertTrue(p["erased"])
        self.assertEqual((p["identifiers"], p["attributes"], p["consent"]), ([], {}, {}))
        self.assertEqual(p["figures"]["net_spend"], {"CNY": 25800})
        self.assertEqual(db.events(cid)[0]["props"], None)
        self.assertFalse(db.consent_get(cid, "marketing"))
        with self.assertRaises(scrm.NotFoundError):
            db.resolve("phone", P1)
        with self.assertRaises(scrm.DuplicateError) as cm:
            self.order("T1", cid, amount=25800)
        self.assertEqual(cm.exception.customer, cid)
        with self.assertRaises(scrm.StateError):
            self.order("T2", cid)
        with self.assertRaises(scrm.StateError):
            db.set_attributes(cid, a=1)
        with self.assertRaises(scrm.StateError):
            db.erase(cid)
        with self.assertRaises(scrm.NotFoundError):
            db.erase(424242)
        db.close()  # the last handle: the WAL is checkpointed into the file
        with open(self.path(), "rb") as f:
            data = f.read()
        for secret in ("8613800138000", "oUnion_secret", "王小明", "gift for Wang"):
            self.assertNotIn(secret.encode(), data, secret)
        # and no table holds them either
        con = sqlite3.connect(self.path())
        self.addCleanup(con.close)
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            text = repr(con.execute(f'SELECT * FROM "{table}"').fetchall())
            for secret in ("8613800138000", "oUnion_secret", "王小明", "gift for Wang"):
                self.assertNotIn(secret, text, f"{secret} in table {table}")

    def test_anonymize_inactive(self):
        db = self.db
        old = db.observe({"phone": P1}, at=T0 - 400 * DAY)
        new = db.observe({"phone": P2}, at=T0 - 400 * DAY)
        self.order("T1", old, at=T0 - 300 * DAY)
        self.order("T2", new, at=T0 - 10 * DAY)
        self.assertEqual(db.anonymize_inactive(100, now=T0), 1)
        self.assertTrue(db.profile(old)["erased"])
        self.assertFalse(db.profile(new)["erased"])
        self.assertEqual(db.anonymize_inactive(100, now=T0), 0)
        self.assertEqual(db.anonymize_inactive(5), 1, "the clock: T2 is 10 days old")
        with self.assertRaises(scrm.RangeError):
            db.anonymize_inactive(0)
        with self.assertRaises(scrm.RangeError):
            db.anonymize_inactive(36501)

    def test_mask(self):
        self.assertEqual(scrm.mask("phone", "+8613800138000"), "138****8000")
        self.assertEqual(scrm.mask("email", "zhang@example.com"), "z***@example.com")
        self.assertEqual(scrm.mask("member_card", "M00012345"), "M***5")
        self.assertEqual(scrm.mask("nick", "小"), "*")
        self.assertEqual(self.db.mask("mobile", "13800138000"), "138****8000")
        with self.assertRaises(scrm.LimitError) as cm:
            scrm.mask("nick", "x" * (64 * 1024 + 1))
        self.assertTrue(cm.exception.message)
        with self.assertRaises(TypeError):
            scrm.mask("phone", None)


class TestBoundary(ProfileTestCase):
    def test_every_output_is_freed_once(self):
        db = self.db
        cid = self.customer()
        with OwnershipLedger() as ledger:
            self.order("T1", cid)
            db.import_events([{"key": "V1", "type": "view", "channel": "web", "at": T0,
                               "customer": cid}])
            db.events(cid)
            db.profile(cid)
            db.set_attributes(cid, name="x")
            db.get_attribute(cid, "name")
            db.profile_config()
            db.rfm_refresh(T0)
            scrm.mask("phone", P1_E164)
            produced_ok = len(ledger.produced)
            for call in (lambda: db.profile(424242), lambda: db.get_attribute(cid, "nope"),
                         lambda: db.events(cid, limit=-1), lambda: db.rfm_refresh(-1),
                         lambda: scrm.mask("nick", "x" * 70000),
                         lambda: self.order("T1", cid)):
                with self.assertRaises(scrm.Error):
                    call()
        self.assertEqual(produced_ok, 7)
        self.assertTrue(ledger.balanced(), (ledger.produced, ledger.freed))

    def test_use_after_close_and_readonly(self):
        cid = self.customer()
        self.db.close()
        for call in (lambda: self.order("T1", cid), lambda: self.db.profile(cid),
                     lambda: self.db.rfm_refresh(), lambda: self.db.erase(cid)):
            with self.assertRaises(scrm.MisuseError):
                call()
        with scrm.open(self.path(), readonly=True) as ro:
            self.assertEqual(ro.profile(cid)["customer"], cid)
            with self.assertRaises(scrm.ReadOnlyError):
                ro.event_add(key="T1", type="view", channel="web", at=T0, customer=cid)
            with self.assertRaises(scrm.ReadOnlyError):
                ro.set_attributes(cid, a=1)

    def test_batch_groups_events(self):
        cid = self.customer()
        with self.assertRaises(RuntimeError):
            with self.db.batch():
                self.order("T1", cid)
                raise RuntimeError("abort")
        self.assertEqual(self.db.events(cid), [])
        with self.db.batch():
            self.order("T1", cid)
            with self.assertRaises(scrm.DuplicateError):
                self.order("T1", cid)  # refused inside a batch: the batch goes on
            self.order("T2", cid)
        self.assertEqual(len(self.db.events(cid)), 2)


if __name__ == "__main__":
    unittest.main()
