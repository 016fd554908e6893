"""Events and customer profiles (include/scrm/profile.h) as methods of Database.

An event (an order, a refund, a page view, ...) carries an idempotency key
unique per channel: the same key twice is stored once, the second time
raising DuplicateError. Every event keeps its customer's figures current;
rfm_refresh() scores the whole population; erase() and anonymize_inactive()
remove personal data while keeping totals right.
"""
import json
from collections import namedtuple
from collections.abc import Iterable, Mapping
from ctypes import byref, c_char_p, c_int, c_int64, c_void_p

from . import _lib
from ._args import id_arg as _id
from ._args import json_arg as _json_arg
from ._args import optional_time as _optional_time
from ._args import time_arg as _time
from .errors import DuplicateError, NotFoundError, from_code, int_arg
from .identity import _pairs

__all__ = ["EventResult", "ProfileMixin", "mask"]

_PROFILE_UNMASKED = 0x1
_EVENT_FIELDS = ("key", "type", "channel", "at", "customer", "ids", "amount", "currency",
                 "refund_of", "items", "props")
_MISSING = object()

def _check_fields(fields, what):
    """TypeError "<what> 'name' (known: ...)" for a member events do not have."""
    unknown = sorted(set(fields) - set(_EVENT_FIELDS))
    if unknown:
        raise TypeError(f"{what} {unknown[0]!r} (known: {', '.join(_EVENT_FIELDS)})")


#: One event's outcome in Database.add_events(): the customer and event ids,
#: and None or the exception that says why it was not stored.
EventResult = namedtuple("EventResult", ["customer", "event", "error"])


def mask(kind, value):
    """Masked rendering of an identifier for display and export, no database needed::

        scrm.mask("phone", "+8613800138000")    # '138****8000'
        scrm.mask("email", "zhang@example.com") # 'z***@example.com'

    The rule follows the kind's name ("phone"/"mobile", "mail", anything
    else). Raises InvalidError (not UTF-8) or LimitError (above 64 KiB).
    """
    out = c_void_p()
    rc = _lib.func("scrm_profile_mask")(_lib.cstr(kind, "kind"), _lib.cstr(value, "value"),
                                        byref(out))
    if rc:
        if out.value:
            _lib.free(out.value)
        raise from_code(rc, _lib.errmsg(None))
    return _lib.take_string(out.value)


class ProfileMixin:
    """Event and profile methods of Database (see scrm/profile.h for the exact semantics)."""

    mask = staticmethod(mask)

    # ------------------------------------------------------------ events

    def event_add(self, event=None, /, **fields):
        """Record one event and bring its customer's figures up to date.

        Give the event as keyword arguments, as a dict with the same members,
        or as JSON text (passed to the library unchanged)::

            cid = db.event_add(key="T0042", type="order", channel="pos",
                               at=datetime.datetime(2026, 11, 22, 10, tzinfo=tz),
                               ids={"phone": "138 0013 8000"},
                               amount=12900, currency="CNY",
                               items=[{"sku": "A1", "qty": 2, "price": 6450}],
                               props={"store": "SH-01"})
            db.event_add(key="R0042", type="refund", channel="pos", customer=cid,
                         amount=6450, currency="CNY", refund_of="T0042")

        key, type and channel are required; the customer is named by
        `customer` (an id) or by `ids` ({kind: value or [values]} or (kind,
        value) pairs, observed on the way in). `at` is ms since the epoch, a
        datetime, an RFC 3339 string, or None for the database's clock.
        `amount` is int minor units; `items` (a list) and `props` (a dict)
        may also be JSON text.

        Returns the canonical customer id. Raises DuplicateError when the
        key was already recorded on the channel — nothing changed; the
        exception's `customer` and `event` attributes name the stored event —
        and InvalidError, NotFoundError, RangeError, LimitError, ParseError or
        StateError (erased customer) as scrm_profile_event_add() documents.
        Unknown keyword arguments raise TypeError.
        """
        if isinstance(event, (str, bytes)):
            if fields:
                raise TypeError("event_add() takes JSON text or fields, not both")
            text = event.decode("utf-8") if isinstance(event, bytes) else event
            return self._event_call("scrm_profile_event_add_json", _lib.cstr(text, "event"))
        if event is not None:
            if not isinstance(event, Mapping):
                raise TypeError("event must be a dict, JSON text or keyword arguments, "
                                f"not {type(event).__name__}")
            fields = {**event, **fields}
        _check_fields(fields, "unknown event field")
        if isinstance(fields.get("at"), str):
            # RFC 3339 text: the library parses it, through the JSON form.
            obj = {k: v for k, v in fields.items() if v is not None}
            if "ids" in obj and not isinstance(obj["ids"], Mapping):
                grouped = {}
                for kind, value in _pairs(obj["ids"]):
                    grouped.setdefault(kind.decode(), []).append(value.decode())
                obj["ids"] = grouped
            for name in ("items", "props"):
                if isinstance(obj.get(name), str):
                    obj[name] = json.loads(obj[name])
            return self._event_call("scrm_profile_event_add_json",
                                    _lib.cstr(json.dumps(obj, ensure_ascii=False), "event"))

        return self._event_call("scrm_profile_event_add", byref(self._event_struct(fields)))

    def _event_struct(self, fields):
        """A struct scrm_event for `fields` (at as ms or a datetime)."""
        ev = _lib.Event()
        ev.version = _lib.EVENT_VERSION
        ev.key = _lib.cstr(fields.get("key"), "key")
        ev.type = _lib.cstr(fields.get("type"), "type")
        ev.channel = _lib.cstr(fields.get("channel"), "channel")
        at = fields.get("at")
        ev.at_ms = self.now() if at is None else _time(at, "at")
        customer = fields.get("customer")
        ev.customer = 0 if customer is None else _id(customer)
        ids = fields.get("ids")
        pairs = _pairs(ids) if ids is not None else []
        n = len(pairs)
        kinds = (c_char_p * max(n, 1))(*(k for k, _ in pairs))
        values = (c_char_p * max(n, 1))(*(v for _, v in pairs))
        ev.id_kinds, ev.id_values, ev.n_ids = kinds, values, n
        amount = fields.get("amount")
        if amount is not None:
            ev.has_amount = 1
            ev.amount = int_arg(amount, _lib.INT64_MIN, _lib.INT64_MAX, "amount")
        ev.currency = _lib.cstr(fields.get("currency"), "currency", optional=True)
        ev.refund_of = _lib.cstr(fields.get("refund_of"), "refund_of", optional=True)
        ev.items_json = _json_arg(fields.get("items"), "items")
        ev.props_json = _json_arg(fields.get("props"), "props")
        return ev

    def add_events(self, events, input_order=False):
        """Record many events in one call and one transaction; return a list of
        EventResult(customer, event, error), one per event, in input order.

        Each event is a dict with event_add()'s fields (`at` as ms or a
        datetime, not text). `error` is None when the event was stored, a
        DuplicateError when its key was already recorded on the channel
        (customer and event then name the stored one), or the exception that
        refused it (InvalidError, NotFoundError, RangeError, LimitError,
        ParseError, StateError, with the library's reason as its message;
        customer and event are 0): a refused event changes nothing and does
        not stop the others.

        When every event names its customer by id, they are applied by
        customer id, each customer's in input order (faster for large
        batches; event ids, which of two events with one key is stored, and
        rule firings follow that order); input_order=True keeps the input
        order, as does any event named by identifiers.

        Raises (nothing stored) when the batch as a whole failed: BusyError,
        NoMemoryError, IOFailure, ...; TypeError for a bad event.
        """
        items = list(events)
        for i, fields in enumerate(items):
            if not isinstance(fields, Mapping):
                raise TypeError(f"event {i} must be a dict, not {type(fields).__name__}")
            _check_fields(fields, f"event {i}: unknown field")
            if isinstance(fields.get("at"), str):
                raise TypeError(f"event {i}: give at as ms or a datetime (text: use event_add "
                                "or import_events)")
        n = len(items)
        arr = (_lib.Event * max(n, 1))()
        # The copies in arr point into the strings the structs keep alive.
        structs = [self._event_struct(fields) for fields in items]
        for i, ev in enumerate(structs):
            arr[i] = ev
        results = (c_int * max(n, 1))()
        customers = (c_int64 * max(n, 1))()
        ids = (c_int64 * max(n, 1))()
        why = {}
        # Under the handle's lock: the reasons are the handle's until its
        # next batch.
        with self._lock:
            self._invoke("scrm_profile_events_add", arr, n, 1 if input_order else 0, results,
                         customers, ids, None)
            refusal = _lib.func("scrm_profile_events_refusal")
            for i in range(n):
                if results[i] and results[i] != DuplicateError.code:
                    text = refusal(self._handle, i)
                    why[i] = text.decode("utf-8", "replace") if text else _lib.errstr(results[i])
        del structs
        out = []
        for i in range(n):
            code = results[i]
            err = None
            if code:
                err = from_code(code, f"event {i}: {why.get(i) or _lib.errstr(code)}")
                if isinstance(err, DuplicateError):
                    err.customer, err.event = customers[i], ids[i]
            out.append(EventResult(customers[i], ids[i], err))
        return out

    def _event_call(self, name, arg):
        customer, event = c_int64(), c_int64()
        try:
            self._invoke(name, arg, byref(customer), byref(event))
        except DuplicateError as e:
            e.customer, e.event = customer.value, event.value
            raise
        return customer.value

    def import_events(self, source):
        """Record events from JSON lines in one transaction; return the summary dict
        ``{"lines", "stored", "duplicate", "rejected", "errors": [{"line", "code", "message"}]}``.

        `source` is the JSON-lines text (str or bytes), a file object to
        read it from, or an iterable of events (dicts or JSON strings, one
        per line). A rejected line changes nothing and does not stop the
        import; duplicates are counted, not stored. Raises only when the
        import as a whole failed (nothing stored): BusyError, NoMemoryError,
        IOFailure, ...
        """
        if hasattr(source, "read"):
            source = source.read()
        if isinstance(source, str):
            data = source.encode("utf-8")
        elif isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        elif isinstance(source, Iterable):
            data = "\n".join(line if isinstance(line, str) else
                             json.dumps(line, ensure_ascii=False) for line in source).encode()
        else:
            raise TypeError("source must be JSON-lines text, a file object or an iterable "
                            f"of events, not {type(source).__name__}")
        return self._invoke_json("scrm_profile_events_import", data, len(data))

    def events(self, customer, since=None, limit=0):
        """A customer's events, newest first, as a list of dicts (id, key, type,
        channel, at, amount, currency, refund_of, items, props); `since` (ms or
        datetime) keeps those at or after it, `limit` caps the count (0 = all)."""
        return self._invoke_json("scrm_profile_events_json", _id(customer),
                                 _optional_time(since, "since"),
                                 int_arg(limit, _lib.INT_MIN, _lib.INT_MAX, "limit"))

    def event_stats(self, customer, type, since=None, currency=None):
        """(count, amount sum) of a customer's events of `type` at or after `since`;
        the sum is over amounts in `currency` (None: the configured RFM currency),
        refunds not subtracted."""
        count, total = c_int64(), c_int64()
        self._invoke("scrm_profile_event_stats", _id(customer), _lib.cstr(type, "type"),
                     _optional_time(since, "since"),
                     _lib.cstr(currency, "currency", optional=True), byref(count), byref(total))
        return count.value, total.value

    # ------------------------------------------------------------ profile

    def profile(self, customer, unmasked=False):
        """The whole profile as a dict: customer (canonical id), erased,
        attributes, figures, rfm, lifecycle, consent and identifiers (masked,
        e.g. 138****8000, unless `unmasked`). NotFoundError if unknown."""
        return self._invoke_json("scrm_profile_json", _id(customer),
                                 _PROFILE_UNMASKED if unmasked else 0)

    def set_attributes(self, customer, attributes=None, /, **more):
        """Set host attributes from a dict (or JSON text) and/or keywords, all or
        nothing; a value of None unsets that attribute::

            db.set_attributes(cid, name="王小明", birthday="1990-05-01",
                              tz="Asia/Shanghai", vip=True, note=None)

        Raises InvalidError (bad name, birthday or tz), LimitError,
        NotFoundError (unknown customer) or StateError (erased customer).
        """
        if isinstance(attributes, str):
            if more:
                raise TypeError("set_attributes() takes JSON text or a dict/keywords, not both")
            text = attributes
        else:
            if attributes is not None and not isinstance(attributes, Mapping):
                raise TypeError(f"attributes must be a dict, not {type(attributes).__name__}")
            text = json.dumps({**(attributes or {}), **more}, ensure_ascii=False,
                              allow_nan=False)
        self._invoke("scrm_profile_set_json", _id(customer), _lib.cstr(text, "attributes"))

    def get_attribute(self, customer, name, default=_MISSING):
        """Value of one attribute (str, int, float, bool, list or dict).

        When it is not set: `default` if given, else NotFoundError (which is
        also what an unknown customer raises).
        """
        try:
            text = self._invoke_str("scrm_profile_get", _id(customer), _lib.cstr(name, "name"))
        except NotFoundError:
            if default is _MISSING:
                raise
            return default
        return json.loads(text)

    def unset_attribute(self, customer, name):
        """Remove one attribute; NotFoundError if it was not set."""
        self._invoke("scrm_profile_unset", _id(customer), _lib.cstr(name, "name"))

    # ------------------------------------------------------------ RFM

    def profile_config(self):
        """The profile configuration: rfm_window_days, currency and the
        lifecycle thresholds (new_days, active_days, at_risk_days, dormant_days)."""
        return self._invoke_json("scrm_profile_config_json")

    def profile_config_set(self, changes=None, /, **more):
        """Change the configuration from a dict (or JSON text) and/or keywords;
        members not given keep their values. Returns the new configuration::

            db.profile_config_set(rfm_window_days=180, lifecycle={"new_days": 14})

        Raises RangeError or InvalidError (thresholds must increase).
        """
        if isinstance(changes, str) and not more:
            text = changes
        else:
            text = json.dumps({**(changes or {}), **more}, ensure_ascii=False)
        self._invoke("scrm_profile_config_set", _lib.cstr(text, "configuration"))
        return self.profile_config()

    def rfm_refresh(self, now=None):
        """Recompute RFM scores and lifecycle stages for every customer as of
        `now` (ms or datetime; None: the database's clock). Returns the summary
        ``{"customers", "scored", "seconds", "refreshed_at", "lifecycle": {stage: n}}``."""
        return self._invoke_json("scrm_profile_rfm_refresh", _optional_time(now, "now"))

    # ------------------------------------------------------------ privacy

    def consent_set(self, customer, purpose, granted, at=None, source=None):
        """Record consent for `purpose` ("marketing", ...) being granted (True)
        or withdrawn (False), at `at` (ms or datetime; None: the clock), from
        `source` ("wecom", ...). Every record is kept; the latest counts."""
        self._invoke("scrm_profile_consent_set", _id(customer), _lib.cstr(purpose, "purpose"),
                     1 if granted else 0, _optional_time(at, "at"),
                     _lib.cstr(source, "source", optional=True))

    def consent_get(self, customer, purpose):
        """Whether consent for `purpose` is granted now (False when never recorded
        and after erasure). NotFoundError for an unknown customer."""
        granted = c_int()
        self._invoke("scrm_profile_consent_get", _id(customer), _lib.cstr(purpose, "purpose"),
                     byref(granted))
        return bool(granted.value)

    def erase(self, customer, reason=None):
        """Erase a customer (and those merged into it) for good: identifiers,
        attributes, consent and event details go; totals stay. Raises
        NotFoundError, StateError (already erased) or InvalidError (reason)."""
        self._invoke("scrm_profile_erase", _id(customer),
                     _lib.cstr(reason, "reason", optional=True))

    def anonymize_inactive(self, days, now=None):
        """Erase every customer with no event in the `days` (1..36500) before
        `now` (ms or datetime; None: the clock); return how many were erased."""
        count = c_int64()
        self._invoke("scrm_profile_anonymize_inactive",
                     int_arg(days, _lib.INT64_MIN, _lib.INT64_MAX, "days"),
                     _optional_time(now, "now"), byref(count))
        return count.value
