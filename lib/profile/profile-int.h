/*
 * Private interface of the profile engine: limits, validation helpers, the
 * figure upkeep shared by ingest, merge and unmerge, configuration and the
 * lifecycle rule. Never leaves lib/profile/.
 */
#ifndef SCRM_PROFILE_INT_H
#define SCRM_PROFILE_INT_H

#include "core-int.h"
#include "scrm/profile.h"

#define PF_DAY_MS INT64_C(86400000)
#define PF_AT_MAX INT64_C(253402300799999)    /* 9999-12-31T23:59:59.999Z */
#define PF_AMOUNT_MAX INT64_C(1000000000000000) /* 10^15 minor units */
#define PF_KEY_MAX 256        /* bytes of an idempotency key */
#define PF_CHANNEL_MAX 64     /* bytes of a channel name */
#define PF_TYPE_MAX 32        /* [a-z0-9_] */
#define PF_NAME_MAX 64        /* attribute names, consent purposes */
#define PF_SOURCE_MAX 128     /* bytes of a consent source */
#define PF_JSON_MAX 65536     /* bytes of items, props, one attribute value */
#define PF_EVENT_MAX (1 << 20) /* bytes of one event as JSON */
#define PF_IDS_MAX 64         /* identifiers of one event (as an observation) */
#define PF_ATTRS_MAX 256      /* attributes in one scrm_profile_set_json() */
#define PF_IMPORT_ERRORS 100  /* errors listed in an import summary */

/* ------------------------------------------------------------ validation */

/* 1..max bytes of [a-z0-9_] (plus '.' when dots). */
bool pf__is_name(const char *s, size_t max, bool dots);
/* 1..max bytes of UTF-8 text without control characters. */
bool pf__is_text(const char *s, size_t max);
/* Three letters A-Z (ISO 4217 code). */
bool pf__is_currency(const char *s);

/* Erased idempotency keys are stored as this hash (8 bytes, big-endian
 * XXH3_64bits of the key) so a replayed event is still a duplicate. */
void pf__key_hash(const char *key, size_t n, unsigned char out[8]);

/* Whether any event key was ever anonymized (then replays must also be
 * looked up by hash), read once per write transaction; and recording that
 * some now are. */
int pf__erased_keys(scrm_db *db, bool *any);
int pf__note_erased_keys(scrm_db *db);

/* The engine state: registers the SQL function scrm_key_hash(text) on the
 * connection the first time it is needed. */
int pf__ensure_functions(scrm_db *db);

/* ------------------------------------------------------------ customers */

/* Canonical id of `id` and its erasure time (0 = not erased), read through
 * the identity_customers view. SCRM_NOTFOUND when never issued. */
int pf__canonical(scrm_db *db, int64_t id, int64_t *root, int64_t *erased_at);

/* The same, reading one row when the customer is its own root. */
int pf__canonical_fast(scrm_db *db, int64_t id, int64_t *root, int64_t *erased_at);

/* Canonical and not erased (SCRM_STATE with a message if erased). */
int pf__live_customer(scrm_db *db, int64_t id, int64_t *root);

/* ------------------------------------------------------------ figures */

/* Bring a customer's figures up to date for one new event. */
int pf__figures_add(scrm_db *db, int64_t customer, const char *type, int64_t at,
		    bool has_amount, int64_t amount, const char *currency);

/* The sums of some new events of one customer (first_order, last_order:
 * meaningful when orders > 0). */
typedef struct pf_figrow {
	int64_t customer, events, first_seen, last_seen, orders, refunds, first_order, last_order;
} pf_figrow;

/* The sums of some new orders and refunds of one customer in one currency. */
typedef struct pf_moneyrow {
	int64_t customer;
	const char *currency;
	int64_t orders, spend, refunded;
} pf_moneyrow;

/* Add such sums to the figures, as many one-event updates would (one
 * statement per row). A money sum that would overflow int64 is SCRM_RANGE,
 * with the rows before it written. */
int pf__figures_add_rows(scrm_db *db, const pf_figrow *rows, size_t n);
int pf__money_add_rows(scrm_db *db, const pf_moneyrow *rows, size_t n);

/* Rebuild a customer's figures from its stored events. */
int pf__figures_rebuild(scrm_db *db, int64_t customer);

/* ------------------------------------------------------------ config */

typedef struct pf_config {
	int64_t window_days;
	char currency[4];
	int64_t new_days, active_days, at_risk_days, dormant_days;
} pf_config;

/* The stored configuration over the defaults. Within a write transaction
 * the answer is kept (pf_state) until the transaction ends or the
 * configuration changes on this handle (scrm__config_gen): an event with
 * rule tags asks for the lifecycle thresholds every time. */
int pf__config_get(scrm_db *db, pf_config *cfg);
/* The kept answer: true and *cfg filled when it is still valid. */
bool pf__config_cached(scrm_db *db, pf_config *cfg);
void pf__config_keep(scrm_db *db, const pf_config *cfg);

/* Lifecycle stage as of `now` (see include/scrm/profile.h for the rule).
 * first_order/last_order 0-valued when has_order is false; `seen` is the
 * first event (or creation) time of a customer without orders. */
const char *pf__lifecycle(const pf_config *cfg, int64_t now, bool has_order, int64_t first_order,
			  int64_t last_order, int64_t first_seen);

/* ------------------------------------------------------------ JSON */

/* Append a profile's attributes / current consent as a JSON object. */
int pf__attrs_json(scrm_db *db, scrm_buf *b, int64_t root);
int pf__consent_json(scrm_db *db, scrm_buf *b, int64_t root);

/* Append a masked rendering of an identifier value. */
void pf__mask_buf(scrm_buf *b, const char *kind, const char *value);

/* Name of a result code as "SCRM_INVALID". */
const char *pf__code_name(int code);

/* The reasons of the refused events of the last batch
 * (scrm_profile_events_refusal): cleared when a batch starts, one added
 * per refusal (SCRM_NOMEM when it cannot be kept). */
typedef struct pf_refusal {
	size_t i;
	char *msg;
} pf_refusal;
void pf__refusals_clear(scrm_db *db);
int pf__refusal_add(scrm_db *db, size_t i, const char *msg);

/* ------------------------------------------------------------ events */

/* Check an event's content (nothing is read from the database);
 * json_checked: items and props come printed from parsed JSON. */
int pf__event_validate(scrm_db *db, const struct scrm_event *ev, bool json_checked);

/* Record one event as scrm_profile_event_add() does, in the caller's
 * transaction. */
int pf__event_add(scrm_db *db, const struct scrm_event *ev, bool json_checked, int64_t *customer,
		  int64_t *event_id);

/* SCRM_DUPLICATE with the stored event's id and customer when (channel,
 * key) is taken by a live key, else SCRM_OK. */
int pf__event_find_duplicate(scrm_db *db, const struct scrm_event *ev, int64_t *customer,
			     int64_t *event_id);

/* A refusal of one event's content (a line of an import, an event of a
 * batch); anything else fails the whole import or batch. */
bool pf__content_refusal(int rc);

/* The work of scrm_profile_events_add() inside the caller's transaction:
 * no entry checks, no savepoint. on_refusal (may be NULL) is given each
 * refused event's index and reason, in the order they are applied; its
 * failure fails the batch. On failure, the error message is the failing
 * event's own, *failed_at its index (SIZE_MAX: no event's, such as
 * memory for the batch itself) and *failed_run the number of events
 * stored together with it (0: it went alone). */
typedef int (*pf_refusal_fn)(void *ud, size_t i, const char *msg);
/* A flag of pf__events_batch() beside SCRM_EVENTS_INPUT_ORDER: the events'
 * items and props were printed from parsed JSON (no need to parse them
 * again). */
#define PF_BATCH_JSON_CHECKED 0x100u
int pf__events_batch(scrm_db *db, const struct scrm_event *evs, size_t n, unsigned flags,
		     int *results, int64_t *customers, int64_t *event_ids, size_t *refused,
		     pf_refusal_fn on_refusal, void *ud, size_t *failed_at, size_t *failed_run);

/* Record one event given as JSON (no entry check, inside the caller's
 * transaction handling). */
int pf__event_add_json(scrm_db *db, const char *json, int64_t *customer, int64_t *event_id);

/* Schema step of the profile engine (schema.c). */
extern const char scrm__profile_schema_1[];
extern const char scrm__profile_schema_2[];

#endif
