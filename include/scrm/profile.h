/*
 * libscrm — events and customer profiles: idempotent event ingest,
 * maintained figures, RFM, lifecycle, consent, erase and anonymize.
 */
#ifndef SCRM_PROFILE_H
#define SCRM_PROFILE_H

#include "scrm/common.h"
#include "scrm/db.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @file scrm/profile.h
 *  @brief Events and customer profiles (SPEC.md §2, "RFM scores").
 *
 *  Every call that takes a customer id accepts any id ever issued; it acts
 *  on the canonical (surviving) customer. Money is int64 minor units with
 *  an ISO 4217 currency code ("CNY"); time is ms since the epoch, UTC.
 *
 *  Event JSON (scrm_profile_event_add_json, one line of an import):
 *  @code
 *  {"key":"T20261122-0042", "type":"order", "channel":"pos",
 *   "at":"2026-11-22T10:00:00+08:00",
 *   "customer":7,                                   // or:
 *   "ids":{"phone":"138 0013 8000","member_card":"M0042"},
 *   "amount":12900, "currency":"CNY",
 *   "items":[{"sku":"A1","qty":2,"price":6450}],
 *   "props":{"store":"SH-01"}}
 *  @endcode
 *  `key`, `type`, `channel` and `at` are required; exactly one of
 *  `customer` and `ids` names the customer (`ids` are observed through the
 *  identity engine, on `channel` at `at`). A `refund` event carries
 *  `"refund_of":"<key of the order, same channel>"` and a positive `amount`
 *  in the order's currency; the refunds of one order never exceed it, and a
 *  refund must name the order's customer. `order` and `refund` need an
 *  amount (1..10^15); other types may carry one (-10^15..10^15). `at` is ms
 *  since the epoch or an RFC 3339 string, 0..253402300799999 (year 9999).
 *  `key` is 1-256 bytes, `channel` 1-64 bytes of UTF-8 text without control
 *  characters; `type` 1-32 of [a-z0-9_]; `currency` three letters A-Z;
 *  `items` a JSON array and `props` a JSON object, 64 KiB each at most.
 *  Unknown members are refused.
 *
 *  An event brought by identifiers remembers the first of them that
 *  resolves to its customer (kind and normalized value, its *anchor*); an
 *  event named by id remembers that id. When a merge is undone
 *  (scrm_identity_unmerge()), each event of the split customer goes to the
 *  side that holds its anchor identifier now, or to the canonical id of the
 *  customer it named; refunds go with their order; both sides' figures are
 *  then rebuilt from their events. A merge moves the absorbed side's events
 *  to the survivor and sums the figures. Attributes and consent stay with
 *  the id they were recorded on and are read over every id merged into a
 *  customer (the most recently recorded value winning), so an unmerge gives
 *  each side back its own.
 *
 *  Profile JSON (scrm_profile_json):
 *  @code
 *  {"customer":7, "erased":false,
 *   "attributes":{"name":"王小明","birthday":"1990-05-01","tz":"Asia/Shanghai"},
 *   "figures":{"events":12, "first_seen":…, "last_seen":…,
 *              "orders":3, "refunds":1, "first_order":…, "last_order":…,
 *              "last_seen_by_channel":{"pos":…,"tmall":…}, "channels":["pos","tmall"],
 *              "net_spend":{"CNY":25800}, "avg_order_value":{"CNY":8600}},
 *   "rfm":{"recency_days":3,"frequency":3,"monetary":25800,"r":5,"f":4,"m":4,
 *          "refreshed_at":…},                       // null before a refresh
 *   "lifecycle":"active",
 *   "consent":{"marketing":{"granted":true,"at":…,"source":"wecom"}},
 *   "identifiers":[{"kind":"phone","value":"138****8000"}]}
 *  @endcode
 *  `customer` is the canonical id; times are ms since the epoch. Figures
 *  count every stored event: `first_seen`/`last_seen` are the earliest and
 *  latest event times, `orders`/`refunds` count events of those types,
 *  `net_spend` per currency is the orders' amounts minus their refunds, and
 *  `avg_order_value` per currency is net spend divided by the number of
 *  orders in that currency, in integer minor units rounded toward zero.
 *  `lifecycle` is computed at the time of the call (the handle's clock); `rfm`
 *  is as of the last scrm_profile_rfm_refresh() (null before one, or for a
 *  customer that did not exist then).
 */

/** @name Events
 *  @{ */

/** Version of struct scrm_event this header describes. */
#define SCRM_EVENT_VERSION 1u

/**
 * One event for the typed hot path. Initialise with SCRM_EVENT_INIT and set
 * the fields you need; fields may be appended in later versions (the
 * library reads `version` to know which exist). Strings are UTF-8 and are
 * only read during the call.
 */
typedef struct scrm_event {
	unsigned int version;   /**< SCRM_EVENT_VERSION */
	const char *key;        /**< idempotency key, unique per channel (required) */
	const char *type;       /**< "order", "refund", "view", "cart_add", … (required) */
	const char *channel;    /**< source channel (required) */
	int64_t at_ms;          /**< when it happened, 0..253402300799999 (required) */
	int64_t customer;       /**< the customer, or 0 to name it by identifiers */
	const char *const *id_kinds;  /**< identifiers observed for the event … */
	const char *const *id_values; /**< … parallel to id_kinds */
	size_t n_ids;           /**< number of identifiers (0 when `customer` is set) */
	int has_amount;         /**< nonzero when `amount`/`currency` are given */
	int64_t amount;         /**< minor units; > 0 for order and refund */
	const char *currency;   /**< ISO 4217 code, required with an amount */
	const char *refund_of;  /**< for type "refund": key of the order (same channel) */
	const char *items_json; /**< JSON array of items, or NULL */
	const char *props_json; /**< JSON object of free properties, or NULL */
} scrm_event;

/** Initialiser for struct scrm_event. */
#define SCRM_EVENT_INIT                                                        \
	{ SCRM_EVENT_VERSION, NULL, NULL, NULL, 0, 0, NULL, NULL, 0, 0, 0, NULL, \
	  NULL, NULL, NULL }

/**
 * Record one event and bring its customer's figures up to date.
 * @param customer receives the canonical customer id (may be NULL).
 * @param event_id receives the event's id (may be NULL).
 * @return SCRM_OK; SCRM_DUPLICATE (the key was already recorded on this
 *   channel, also after its customer was erased: nothing changed, *customer
 *   and *event_id name the stored event); SCRM_INVALID (missing or bad
 *   field, both or neither of customer and identifiers, no usable
 *   identifier, refund above what is left of the order, currency mismatch,
 *   refund naming another customer than its order's); SCRM_RANGE (time or
 *   amount out of range); SCRM_LIMIT (more than 64 identifiers, items or
 *   props above 64 KiB); SCRM_PARSE (items or props not JSON);
 *   SCRM_NOTFOUND (unknown customer, unknown kind, refund of an unknown
 *   order); SCRM_STATE (the customer was erased); SCRM_MISUSE (NULL or
 *   unknown struct version); SCRM_BUSY; SCRM_NOMEM.
 *   Inside a batch (scrm_db_begin()) this is a hot path without a savepoint
 *   of its own: every refusal above happens before anything is written;
 *   a failure after writing (I/O, out of memory) rolls the batch back.
 */
SCRM_API int scrm_profile_event_add(scrm_db *db, const scrm_event *ev, int64_t *customer,
				    int64_t *event_id);

/** Record one event given as JSON (see the file comment). Results as scrm_profile_event_add(). */
SCRM_API int scrm_profile_event_add_json(scrm_db *db, const char *json, int64_t *customer,
					 int64_t *event_id);

/** Flag of scrm_profile_events_add(): apply the events in input order. */
#define SCRM_EVENTS_INPUT_ORDER 1u

/**
 * Record @p n events in one transaction (a savepoint inside the caller's
 * batch): each as scrm_profile_event_add() would, except for the order.
 *
 * Order: when every event names its customer by id (none by identifiers)
 * and @p flags does not hold SCRM_EVENTS_INPUT_ORDER, the events are
 * applied by customer id, each customer's events in input order. The rows
 * of neighbouring customers share B-tree pages, so a batch visits them in
 * key order instead of at random: about a quarter faster at a million
 * customers. What the order decides across customers: which of two events
 * with the same key on the same channel is stored (the one applied first;
 * the other is SCRM_DUPLICATE), and the order of their rule firings and
 * outbox rows. A batch with an event named by identifiers is applied in
 * input order.
 *
 * Speed: an event named by id that is not a refund and that no rule or
 * rule tag acts on (no rule tag is defined, no active rule is triggered,
 * started or cancelled by its type) is stored with up to 63 such
 * neighbours by one statement, and their figures are summed per customer:
 * the same rows and ids as one by one, in a third fewer instructions. The
 * others are stored one by one in between.
 *
 * @param events, n  the events (@p events may be NULL when n is 0).
 * @param flags    0 or SCRM_EVENTS_INPUT_ORDER.
 * @param results  NULL or n codes: SCRM_OK (stored), SCRM_DUPLICATE, or what
 *   refused the event for its content (SCRM_INVALID, SCRM_NOTFOUND,
 *   SCRM_RANGE, SCRM_LIMIT, SCRM_PARSE, SCRM_STATE, SCRM_MISUSE, as
 *   scrm_profile_event_add() documents them); a refused event changes
 *   nothing and does not stop the batch.
 * @param customers, event_ids  NULL or n ids, as scrm_profile_event_add()
 *   gives them (0 for a refused event).
 * @param refused  NULL, or receives the number of refused events.
 * @return SCRM_OK when every event was stored, a duplicate or refused;
 *   SCRM_MISUSE (events NULL with n > 0, unknown flags); SCRM_RANGE when a
 *   customer's money sum would overflow int64 (it may take the caller's
 *   batch with it, as with scrm_profile_event_add()); SCRM_BUSY,
 *   SCRM_NOMEM, SCRM_IO and similar when the batch as a whole failed:
 *   nothing of it is stored, every results[i] is that code and the ids
 *   are 0; scrm_errmsg() names the event (its index) where it failed.
 *   Why each refused event was refused: scrm_profile_events_refusal().
 */
SCRM_API int scrm_profile_events_add(scrm_db *db, const scrm_event *events, size_t n,
				     unsigned flags, int *results, int64_t *customers,
				     int64_t *event_ids, size_t *refused);

/**
 * Why the last scrm_profile_events_add() call on this handle refused an
 * event: the message scrm_errmsg() would have given for that event alone
 * at that point of the batch ("event key must be …", "unknown customer
 * 42", …).
 * @param i  the event's index in that call's array.
 * @return the message, or NULL when event i was stored or a duplicate,
 *   when i is not an index of that batch, when the batch failed as a whole
 *   (its reason is scrm_errmsg()), or when no batch was recorded on @p db
 *   (or @p db is NULL). Owned by the handle: valid until the next
 *   scrm_profile_events_add() call on it (which clears them, whatever its
 *   outcome) or scrm_db_close(). The messages of a batch take memory in
 *   proportion to its refused events; running out of it fails the batch
 *   (SCRM_NOMEM).
 */
SCRM_API const char *scrm_profile_events_refusal(scrm_db *db, size_t i);

/**
 * Import JSON lines (one event per line; blank lines are skipped) in one
 * transaction. A line that is rejected does not stop the import and
 * changes nothing; duplicates are counted, not stored.
 * @param text, len  the JSON-lines text (need not be NUL-terminated).
 * @param summary receives `{"lines":N,"stored":N,"duplicate":N,"rejected":N,
 *   "errors":[{"line":L,"code":"SCRM_INVALID","message":"…"}…]}` (at most
 *   100 errors listed; `lines` counts the non-blank lines, L is 1-based);
 *   release with scrm_free(). May be NULL. A line is rejected for what
 *   scrm_profile_event_add_json() refuses for its content (SCRM_INVALID,
 *   SCRM_PARSE, SCRM_NOTFOUND, SCRM_RANGE, SCRM_LIMIT, SCRM_STATE).
 * @return SCRM_OK even when lines were rejected; SCRM_BUSY, SCRM_NOMEM,
 *   SCRM_IO and similar when the import as a whole failed (nothing stored).
 */
SCRM_API int scrm_profile_events_import(scrm_db *db, const char *text, size_t len,
					char **summary);

/**
 * A customer's events, newest first, as a JSON array of
 * `{"id","key","type","channel","at","amount","currency","refund_of","items","props"}`
 * (`key`, `refund_of`, `items` and `props` are null once the customer was erased).
 * @param since_ms only events at or after this time.
 * @param limit at most this many (0 = all; negative: SCRM_RANGE).
 */
SCRM_API int scrm_profile_events_json(scrm_db *db, int64_t customer, int64_t since_ms,
				      int limit, char **out);

/**
 * Count and amount sum of a customer's events of `type` at or after
 * `since_ms` (for rule functions count()/sum()). `currency` selects the
 * amounts summed (NULL: the configured RFM currency); refunds are not
 * subtracted here. Either output may be NULL.
 */
SCRM_API int scrm_profile_event_stats(scrm_db *db, int64_t customer, const char *type,
				      int64_t since_ms, const char *currency, int64_t *count,
				      int64_t *sum);
/** @} */

/** @name Attributes and the profile
 *  @{ */

/**
 * Set host attributes from a JSON object: each member is an attribute
 * name (1–64 of [a-z0-9_.]) and its value (string, number, bool, or a
 * JSON array/object); a null value unsets the attribute. All or nothing.
 * `birthday` must be "YYYY-MM-DD" and `tz` an IANA zone name ("Asia/Shanghai";
 * checked for its form, not against a zone database). A string or JSON
 * value may be 64 KiB; at most 256 members per call. Integral numbers up to
 * 2^53 are stored as integers, other numbers as doubles.
 * @return SCRM_OK; SCRM_PARSE; SCRM_INVALID; SCRM_LIMIT; SCRM_NOTFOUND
 *   (unknown customer); SCRM_STATE (erased customer).
 */
SCRM_API int scrm_profile_set_json(scrm_db *db, int64_t customer, const char *json);

/** Value of one attribute as JSON text (release with scrm_free()); SCRM_NOTFOUND if unset. */
SCRM_API int scrm_profile_get(scrm_db *db, int64_t customer, const char *name, char **out);

/** Remove one attribute; SCRM_NOTFOUND if it was not set. */
SCRM_API int scrm_profile_unset(scrm_db *db, int64_t customer, const char *name);

/** Flags for scrm_profile_json(). */
#define SCRM_PROFILE_UNMASKED 0x1u /**< identifiers in clear text (default: masked) */

/** The whole profile as JSON (see the file comment); release with scrm_free(). */
SCRM_API int scrm_profile_json(scrm_db *db, int64_t customer, unsigned int flags, char **out);

/**
 * Masked rendering of an identifier value for display and export:
 * phone "+8613800138000" → "138****8000", email "zhang@example.com" →
 * "z***@example.com", anything else keeps its first and last character.
 * The rule is chosen by the kind's name: a kind whose name contains "phone"
 * or "mobile" is a phone (a leading +86 is dropped; the first 3 and last 4
 * characters stay, "****" between; values under 7 characters are masked as
 * "anything else"); one whose name contains "mail", with a value holding
 * '@', is an email (first character, "***", then '@' and the domain).
 * Anything else: 1 character → "*", 2 → first + "*", more → first + "***" +
 * last (characters, not bytes). Needs no database; errors are reported
 * through scrm_errmsg(NULL). @param out release with scrm_free().
 * @return SCRM_OK; SCRM_MISUSE (NULL argument); SCRM_INVALID (not UTF-8);
 *   SCRM_LIMIT (value above 64 KiB); SCRM_NOMEM.
 */
SCRM_API int scrm_profile_mask(const char *kind, const char *value, char **out);
/** @} */

/** @name RFM and lifecycle
 *  @{ */

/**
 * Set profile configuration from a JSON object (members not given keep
 * their values):
 * `{"rfm_window_days":365, "currency":"CNY",
 *   "lifecycle":{"new_days":30,"active_days":90,"at_risk_days":180,"dormant_days":365}}`.
 * `rfm_window_days` is 1..36500; the thresholds are 0..36500 days and must
 * increase strictly in that order (SCRM_INVALID otherwise); unknown members
 * are refused.
 *
 * Lifecycle stage as of a time `now`, with d = 86400000 ms:
 * - a customer with an order is `new` while now - first order < new_days·d;
 *   otherwise, by now - last order: `active` (< active_days·d), `at_risk`
 *   (< at_risk_days·d), `dormant` (< dormant_days·d), else `lost`;
 * - a customer that never ordered goes through the same ladder by the time
 *   since it was first seen (its earliest event, or its creation when it
 *   has none): `new`, `active`, `at_risk`, `dormant`, `lost`.
 */
SCRM_API int scrm_profile_config_set(scrm_db *db, const char *json);

/** Current configuration as JSON (release with scrm_free()). */
SCRM_API int scrm_profile_config_json(scrm_db *db, char **out);

/**
 * Recompute RFM scores (SPEC.md "RFM scores") and lifecycle stages for the
 * whole population (canonical customers not erased) as of `now_ms`
 * (0 = the handle's clock).
 *
 * An order is in the window when now - rfm_window_days·86400000 <= at <= now.
 * Per customer: frequency F = orders in the window (any currency);
 * monetary M = the sum over those orders in the configured currency of the
 * amount minus the refunds of that order recorded at or before now;
 * recency R = floor((now - latest order in the window) / 86400000) days.
 * Over the N customers with an order in the window:
 * score_m = 1 + floor(5 · #{strictly smaller M} / N), score_f likewise with F,
 * score_r = 1 + floor(5 · #{strictly greater R} / N). Customers without an
 * order in the window have null R and scores and F = M = 0.
 * @param summary receives `{"customers":N,"scored":N,"seconds":S,
 *   "refreshed_at":T,"lifecycle":{"new":N,"active":N,"at_risk":N,"dormant":N,"lost":N}}`
 *   (may be NULL; release with scrm_free()).
 * @return SCRM_OK; SCRM_RANGE (now_ms outside 0..253402300799999); SCRM_BUSY; SCRM_NOMEM.
 */
SCRM_API int scrm_profile_rfm_refresh(scrm_db *db, int64_t now_ms, char **summary);
/** @} */

/** @name Privacy
 *  @{ */

/**
 * Record consent (granted or withdrawn) for a purpose ("marketing", …;
 * 1–64 of [a-z0-9_]) with its time (0 = the handle's clock) and source
 * (1-128 bytes of text, or NULL). Every record is kept; the current state
 * of a purpose is the record with the latest time (then the latest
 * recorded), over every id merged into the customer.
 * @return SCRM_OK; SCRM_INVALID; SCRM_RANGE (time); SCRM_NOTFOUND;
 *   SCRM_STATE (erased customer).
 */
SCRM_API int scrm_profile_consent_set(scrm_db *db, int64_t customer, const char *purpose,
				      int granted, int64_t at_ms, const char *source);

/**
 * Whether consent for `purpose` is currently granted: *granted is 1 or 0
 * (0 also when nothing was ever recorded, and after erasure).
 */
SCRM_API int scrm_profile_consent_get(scrm_db *db, int64_t customer, const char *purpose,
				      int *granted);

/**
 * Erase a customer (and the customers merged into it): identifiers, attributes,
 * consent and event properties/items are deleted; events keep type, channel,
 * time, amount and currency so totals stay right; the merge log keeps ids and
 * times only. No identifier resolves to the customer any more; its id stays
 * known (scrm_profile_json shows `"erased":true`). Events' idempotency keys
 * are replaced by a hash (XXH3, 64 bits), so replaying an erased event is
 * still SCRM_DUPLICATE. Erasing runs with SQLite's secure_delete on, so the
 * deleted bytes are overwritten in the pages it changes; they leave the
 * write-ahead log at its next checkpoint (at the latest when the last
 * handle closes). New events, attributes and consent for an erased
 * customer are refused (SCRM_STATE).
 * @param reason free text kept with the erasure (1-256 bytes, or NULL).
 * @return SCRM_OK; SCRM_NOTFOUND; SCRM_STATE (already erased); SCRM_INVALID (reason).
 */
SCRM_API int scrm_profile_erase(scrm_db *db, int64_t customer, const char *reason);

/**
 * Erase (as scrm_profile_erase()) every canonical customer not yet erased
 * that has no event at or after `now_ms - days`·86400000 and whose ids were
 * all created (first observed) before then; now_ms 0 = the handle's clock.
 * Observations that only attached identifiers to an existing customer do
 * not count as interaction (the identity engine keeps no such time).
 * @param days 1..36500.
 * @param count receives how many customers were erased (may be NULL).
 * @return SCRM_OK; SCRM_RANGE; SCRM_BUSY; SCRM_NOMEM.
 */
SCRM_API int scrm_profile_anonymize_inactive(scrm_db *db, int64_t days, int64_t now_ms,
					     int64_t *count);
/** @} */

#ifdef __cplusplus
}
#endif

#endif /* SCRM_PROFILE_H */
