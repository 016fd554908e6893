"""Identity merging (include/scrm/identity.h) as methods of Database.

An identifier is a (kind, value) pair; an observation is the set of
identifiers seen together on one channel at one time. Observing returns the
customer id they resolve to, creating, attaching to or merging customers.
"""
import json
from collections.abc import Mapping
from ctypes import byref, c_char_p, c_int64, c_void_p

from . import _lib
from ._args import id_arg as _id
from ._args import json_text as _json_text
from ._args import optional_time as _millis

__all__ = ["IdentityMixin"]


def _pairs(ids):
    """(kind, value) pairs from {kind: value or [values]} or an iterable of pairs."""
    items = ids.items() if isinstance(ids, Mapping) else ids
    pairs = []
    for kind, values in items:
        if isinstance(values, str):
            values = (values,)
        for value in values:
            pairs.append((_lib.cstr(kind, "identifier kind"),
                          _lib.cstr(value, f"value of {kind!r}")))
    return pairs


class IdentityMixin:
    """Identity methods of Database (see scrm/identity.h for the exact semantics)."""

    # ------------------------------------------------------------ kinds

    def kind_set(self, definition):
        """Create or replace an identifier kind from a dict (or JSON text)::

            db.kind_set({"name": "member_card", "normalizer": "pattern",
                         "pattern": "^M(\\\\d{8})$", "priority": 30, "limit": 1})

        Raises ParseError (malformed JSON) or InvalidError (bad definition).
        """
        self._invoke("scrm_identity_kind_set", _lib.cstr(_json_text(definition), "definition"))

    def kind_get(self, name):
        """Definition of one kind as a dict; NotFoundError if unknown."""
        return self._invoke_json("scrm_identity_kind_get", _lib.cstr(name, "kind"))

    def kinds(self):
        """All kinds as a list of dicts, ordered by (priority, name)."""
        return self._invoke_json("scrm_identity_kinds_json")

    def normalize(self, kind, value):
        """`value` as `kind` would store it, storing nothing.

        Raises NotFoundError (unknown kind) or InvalidError (invalid or blocked).
        """
        return self._invoke_str("scrm_identity_normalize", _lib.cstr(kind, "kind"),
                                _lib.cstr(value, "value"))

    # ------------------------------------------------------------ observe, resolve

    def observe(self, ids, channel="api", at=None, report=False):
        """Observe identifiers seen together; return the canonical customer id.

        Args:
            ids: {kind: value or [values]}, e.g.
                ``{"wechat_unionid": "o6_bm", "phone": ["13800138000"]}``,
                or an iterable of (kind, value) pairs.
            channel: source channel ("pos", "wecom", "tmall", ...).
            at: observation time, ms since the epoch or a datetime; None
                uses the database's clock.
            report: also return the observation report as a dict (outcome
                "created"/"attached"/"merged"/"unchanged", attached, merged,
                conflicts, rejected).

        Returns the customer id, or (customer id, report) with report=True.
        Raises NotFoundError (unknown kind) or InvalidError (no usable
        identifier; blocked or invalid values next to usable ones are only
        reported).
        """
        pairs = _pairs(ids)
        n = len(pairs)
        kinds = (c_char_p * n)(*(k for k, _ in pairs))
        values = (c_char_p * n)(*(v for _, v in pairs))
        return self._observe("scrm_identity_observe", report, _lib.cstr(channel, "channel"),
                             _millis(at), kinds, values, n)

    def observe_json(self, observation, report=False):
        """Observe from a dict (or JSON text) shaped like
        ``{"channel": "tmall", "at": 1767225600000, "ids": {"phone": "13800138000"}}``.

        Returns like observe().
        """
        return self._observe("scrm_identity_observe_json", report,
                             _lib.cstr(_json_text(observation), "observation"))

    def _observe(self, name, report, *args):
        customer = c_int64()
        out = c_void_p()
        try:
            self._invoke(name, *args, byref(customer), byref(out) if report else None)
        except BaseException:
            if out.value:
                _lib.free(out.value)
            raise
        if report:
            return customer.value, json.loads(_lib.take_string(out.value))
        return customer.value

    def resolve(self, kind, value):
        """Canonical customer id holding (kind, value) (normalized first).

        Raises NotFoundError (unknown kind or value) or InvalidError.
        """
        customer = c_int64()
        self._invoke("scrm_identity_resolve", _lib.cstr(kind, "kind"), _lib.cstr(value, "value"),
                     byref(customer))
        return customer.value

    def canonical(self, customer):
        """Survivor of any customer id ever issued (itself when not merged)."""
        survivor = c_int64()
        self._invoke("scrm_identity_canonical", _id(customer), byref(survivor))
        return survivor.value

    def identifiers(self, customer):
        """Identifiers of a customer (of its survivor) as a list of dicts
        with kind, value, channel, observation, at."""
        return self._invoke_json("scrm_identity_list_json", _id(customer))

    # ------------------------------------------------------------ merge log

    def merge(self, a, b, reason=None):
        """Merge two customers by hand (the older id survives); return the merge id.

        Raises NotFoundError, InvalidError (already one customer) or
        ConflictError (a kind limit would break, or never-merge).
        """
        merge_id = c_int64()
        self._invoke("scrm_identity_merge", _id(a), _id(b), _lib.cstr(reason, "reason", optional=True),
                     byref(merge_id))
        return merge_id.value

    def never_merge(self, a, b, reason=None):
        """Record that two customers must never be merged.

        Raises NotFoundError, InvalidError (same customer) or ExistsError.
        """
        self._invoke("scrm_identity_never_merge", _id(a), _id(b), _lib.cstr(reason, "reason", optional=True))

    def unmerge(self, merge_id, reason=None):
        """Undo one logged merge; return the unmerge's log id. The pair is
        then marked never-merge.

        Raises NotFoundError (no such merge) or StateError (already undone,
        or a later merge of the absorbed side must be undone first).
        """
        unmerge_id = c_int64()
        self._invoke("scrm_identity_unmerge", _id(merge_id, "merge id"),
                     _lib.cstr(reason, "reason", optional=True), byref(unmerge_id))
        return unmerge_id.value

    def history(self, customer):
        """Merge/unmerge history touching a customer, as a list of dicts."""
        return self._invoke_json("scrm_identity_history_json", _id(customer))

    def explain(self, customer):
        """Identity graph of a customer as a dict (identifiers, observations,
        history, conflicts, absorbed ids)."""
        return self._invoke_json("scrm_identity_explain_json", _id(customer))

    def explain_dot(self, customer):
        """The identity graph as Graphviz DOT text."""
        return self._invoke_str("scrm_identity_explain_dot", _id(customer))
