/*
 * Recording events: validation, idempotency, refunds against their order,
 * the customer named by id or by identifiers (observed on the way in), and
 * the figure upkeep. Also the JSON form and JSON-lines import (batches of
 * scrm_event structs are in batch.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "profile-int.h"
#include "scrm/identity.h"

/* ------------------------------------------------------------ validation */

static bool is_type(const char *t, const char *want)
{
	return strcmp(t, want) == 0;
}

/* Items must be a JSON array and props an object, each at most PF_JSON_MAX
 * bytes. */
/* `label` names the member in messages ("event props"): a literal, so
 * nothing is formatted per event. */
static int check_json_member(scrm_db *db, const char *text, const char *label, bool array)
{
	if (!text)
		return SCRM_OK;
	if (strnlen(text, PF_JSON_MAX + 1) > PF_JSON_MAX)
		return scrm__error(db, SCRM_LIMIT, "%s: more than %d bytes of JSON", label,
				   PF_JSON_MAX);
	cJSON *j;
	int rc = scrm__json_parse(db, text, label, &j);
	if (rc)
		return rc;
	if (array ? !cJSON_IsArray(j) : !cJSON_IsObject(j))
		rc = scrm__error(db, SCRM_INVALID, "%s must be a JSON %s", label,
				 array ? "array" : "object");
	cJSON_Delete(j);
	return rc;
}

/* json_checked: items and props come printed from a parsed event. */
static int validate(scrm_db *db, const scrm_event *ev, bool json_checked)
{
	if (!ev)
		return scrm__error(db, SCRM_MISUSE, "scrm_profile_event_add: event is NULL");
	if (ev->version != SCRM_EVENT_VERSION)
		return scrm__error(db, SCRM_MISUSE,
				   "struct scrm_event version %u is not supported (this library knows %u; "
				   "initialise with SCRM_EVENT_INIT)",
				   ev->version, SCRM_EVENT_VERSION);
	if (!ev->key || !ev->type || !ev->channel)
		return scrm__error(db, SCRM_INVALID, "event: %s is required",
				   !ev->key ? "\"key\"" : !ev->type ? "\"type\"" : "\"channel\"");
	if (!pf__is_text(ev->key, PF_KEY_MAX))
		return scrm__error(db, SCRM_INVALID,
				   "event key must be 1-%d bytes of UTF-8 text without control characters",
				   PF_KEY_MAX);
	if (!pf__is_name(ev->type, PF_TYPE_MAX, false))
		return scrm__error(db, SCRM_INVALID, "event type '%.*s' must be 1-%d characters of [a-z0-9_]",
				   scrm__utf8_clip(ev->type, 40), ev->type, PF_TYPE_MAX);
	if (!pf__is_text(ev->channel, PF_CHANNEL_MAX))
		return scrm__error(db, SCRM_INVALID,
				   "event channel must be 1-%d bytes of UTF-8 text without control characters",
				   PF_CHANNEL_MAX);
	if (ev->at_ms < 0 || ev->at_ms > PF_AT_MAX)
		return scrm__error(db, SCRM_RANGE, "event time %lld is outside 0..%lld (year 9999)",
				   (long long)ev->at_ms, (long long)PF_AT_MAX);
	if (ev->customer < 0)
		return scrm__error(db, SCRM_INVALID, "event customer %lld is not a customer id",
				   (long long)ev->customer);
	if ((ev->customer != 0) == (ev->n_ids != 0))
		return scrm__error(db, SCRM_INVALID, "event must name its customer by %s",
				   ev->customer ? "id or by identifiers, not both"
						: "id or by identifiers (neither was given)");
	if (ev->n_ids > PF_IDS_MAX)
		return scrm__error(db, SCRM_LIMIT, "event has %zu identifiers (at most %d)", ev->n_ids,
				   PF_IDS_MAX);
	if (ev->n_ids && (!ev->id_kinds || !ev->id_values))
		return scrm__error(db, SCRM_MISUSE, "event identifiers: id_kinds or id_values is NULL");
	bool money = is_type(ev->type, "order") || is_type(ev->type, "refund");
	if (ev->has_amount) {
		if (!pf__is_currency(ev->currency))
			return scrm__error(db, SCRM_INVALID,
					   "event currency must be an ISO 4217 code of three letters A-Z");
		int64_t lo = money ? 1 : -PF_AMOUNT_MAX;
		if (ev->amount < lo || ev->amount > PF_AMOUNT_MAX)
			return scrm__error(db, SCRM_RANGE, "event amount %lld is outside %lld..%lld",
					   (long long)ev->amount, (long long)lo, (long long)PF_AMOUNT_MAX);
	} else if (money) {
		return scrm__error(db, SCRM_INVALID, "%s event needs an amount and a currency", ev->type);
	} else if (ev->currency) {
		return scrm__error(db, SCRM_INVALID, "event currency given without an amount");
	}
	if (is_type(ev->type, "refund")) {
		if (!ev->refund_of)
			return scrm__error(db, SCRM_INVALID,
					   "refund event needs refund_of (the key of its order)");
		if (!pf__is_text(ev->refund_of, PF_KEY_MAX))
			return scrm__error(db, SCRM_INVALID, "event refund_of must be 1-%d bytes of UTF-8 text",
					   PF_KEY_MAX);
	} else if (ev->refund_of) {
		return scrm__error(db, SCRM_INVALID, "refund_of is only for refund events (this is a %s)",
				   ev->type);
	}
	int rc;
	if (!json_checked && ((rc = check_json_member(db, ev->items_json, "event items", true)) ||
			      (rc = check_json_member(db, ev->props_json, "event props", false))))
		return rc;
	return SCRM_OK;
}

/* ------------------------------------------------------------ recording */

typedef struct order_ref {
	int64_t id, customer;
} order_ref;

/* The order a refund references: same channel, type order, same currency,
 * and enough of it left. */
static int check_refund(scrm_db *db, const scrm_event *ev, order_ref *o)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT o.id, o.customer, o.type, o.amount, o.currency, "
		    "(SELECT coalesce(sum(r.amount), 0) FROM event r WHERE r.refund_of = o.id "
		    "AND r.type = 'refund') FROM event o WHERE o.channel = ?1 AND o.ikey = ?2");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_text(st, 1, ev->channel, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, ev->refund_of, -1, SQLITE_STATIC);
	int s = sqlite3_step(st), rc = SCRM_OK;
	if (s == SQLITE_DONE) {
		rc = scrm__error(db, SCRM_NOTFOUND, "refund_of: no order '%.*s' on channel '%s'",
				 scrm__utf8_clip(ev->refund_of, 80), ev->refund_of, ev->channel);
	} else if (s != SQLITE_ROW) {
		rc = scrm__sqlerr(db, s, "reading the refunded order");
	} else {
		const char *type = (const char *)sqlite3_column_text(st, 2);
		const char *cur = (const char *)sqlite3_column_text(st, 4);
		int64_t amount = sqlite3_column_int64(st, 3), refunded = sqlite3_column_int64(st, 5);
		o->id = sqlite3_column_int64(st, 0);
		o->customer = sqlite3_column_int64(st, 1);
		if (!is_type(type, "order"))
			rc = scrm__error(db, SCRM_INVALID, "refund_of: event '%.*s' is a %s, not an order",
					 scrm__utf8_clip(ev->refund_of, 80), ev->refund_of, type);
		else if (strcmp(cur, ev->currency) != 0)
			rc = scrm__error(db, SCRM_INVALID,
					 "refund currency %s does not match the currency %s of order '%.*s'",
					 ev->currency, cur, scrm__utf8_clip(ev->refund_of, 80), ev->refund_of);
		else if (ev->amount > amount - refunded)
			rc = scrm__error(db, SCRM_INVALID,
					 "refund of %lld exceeds what is left of order '%.*s' (%lld of %lld)",
					 (long long)ev->amount, scrm__utf8_clip(ev->refund_of, 80),
					 ev->refund_of, (long long)(amount - refunded), (long long)amount);
	}
	sqlite3_reset(st);
	return rc;
}

static int refund_owner_matches(scrm_db *db, const scrm_event *ev, const order_ref *o,
				int64_t customer)
{
	if (o->customer == customer)
		return SCRM_OK;
	return scrm__error(db, SCRM_INVALID,
			   "refund names customer %lld but order '%.*s' belongs to customer %lld",
			   (long long)customer, scrm__utf8_clip(ev->refund_of, 80), ev->refund_of,
			   (long long)o->customer);
}

/* The identifier an event follows on unmerge: the first of its identifiers
 * that resolves to the event's customer, as (kind, normalized value). */
static int find_anchor(scrm_db *db, const scrm_event *ev, int64_t customer, const char **kind,
		       char **value)
{
	*kind = NULL;
	*value = NULL;
	for (size_t i = 0; i < ev->n_ids; i++) {
		int64_t owner = 0;
		int rc = scrm_identity_resolve(db, ev->id_kinds[i], ev->id_values[i], &owner);
		if (rc == SCRM_NOTFOUND || rc == SCRM_INVALID || (rc == SCRM_OK && owner != customer))
			continue;
		if (rc == SCRM_OK)
			rc = scrm_identity_normalize(db, ev->id_kinds[i], ev->id_values[i], value);
		if (rc)
			return rc;
		*kind = ev->id_kinds[i];
		break;
	}
	/* Misses above are expected: they are not this call's error. */
	scrm__clear_error(db);
	return SCRM_OK;
}

/* Insert unless (channel, key) is taken: *inserted false then. */
static int insert_event(scrm_db *db, const scrm_event *ev, int64_t customer, int64_t refund_of,
			const char *anchor_kind, const char *anchor_value, int64_t *event_id,
			bool *inserted)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "INSERT INTO event(customer, channel, ikey, type, at, amount, currency, refund_of, "
		    "named, anchor_kind, anchor_value, items, props) "
		    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
		    "ON CONFLICT(channel, ikey) DO NOTHING");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, customer);
	sqlite3_bind_text(st, 2, ev->channel, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, ev->key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, ev->type, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, ev->at_ms);
	if (ev->has_amount) {
		sqlite3_bind_int64(st, 6, ev->amount);
		sqlite3_bind_text(st, 7, ev->currency, -1, SQLITE_STATIC);
	}
	if (refund_of)
		sqlite3_bind_int64(st, 8, refund_of);
	if (ev->customer)
		sqlite3_bind_int64(st, 9, ev->customer);
	if (anchor_kind) {
		sqlite3_bind_text(st, 10, anchor_kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 11, anchor_value, -1, SQLITE_STATIC);
	}
	if (ev->items_json)
		sqlite3_bind_text(st, 12, ev->items_json, -1, SQLITE_STATIC);
	if (ev->props_json)
		sqlite3_bind_text(st, 13, ev->props_json, -1, SQLITE_STATIC);
	int rc = scrm__step_done(db, st, "recording the event");
	if (rc)
		return rc;
	sqlite3 *sq = scrm__sqlite(db);
	*inserted = sqlite3_changes(sq) > 0;
	*event_id = *inserted ? sqlite3_last_insert_rowid(sq) : 0;
	return SCRM_OK;
}

/* A replay of (channel, key): the live key, or (when some keys were
 * anonymized) its hash. SCRM_OK when there is none. Two equality probes
 * rather than `ikey IN (?2, ?3)`, which SQLite runs through an ephemeral
 * table (ten times the cost of a probe). */
static int find_duplicate(scrm_db *db, const scrm_event *ev, bool hashed, int64_t *customer,
			  int64_t *event_id)
{
	unsigned char h[8];
	if (hashed)
		pf__key_hash(ev->key, strlen(ev->key), h);
	int s = SQLITE_DONE;
	for (int probe = 0; probe < (hashed ? 2 : 1) && s == SQLITE_DONE; probe++) {
		sqlite3_stmt *st =
			scrm__stmt(db, "SELECT id, customer FROM event WHERE channel = ?1 AND ikey = ?2");
		if (!st)
			return scrm_errcode(db);
		sqlite3_bind_text(st, 1, ev->channel, -1, SQLITE_STATIC);
		if (probe == 0)
			sqlite3_bind_text(st, 2, ev->key, -1, SQLITE_STATIC);
		else
			sqlite3_bind_blob(st, 2, h, sizeof h, SQLITE_STATIC);
		s = sqlite3_step(st);
		if (s == SQLITE_ROW) {
			*event_id = sqlite3_column_int64(st, 0);
			*customer = sqlite3_column_int64(st, 1);
		}
		sqlite3_reset(st);
	}
	if (s == SQLITE_ROW)
		return scrm__error(db, SCRM_DUPLICATE,
				   "event '%.*s' was already recorded on channel '%s' (event %lld)",
				   scrm__utf8_clip(ev->key, 80), ev->key, ev->channel,
				   (long long)*event_id);
	if (s != SQLITE_DONE)
		return scrm__sqlerr(db, s, "looking up the idempotency key");
	return SCRM_OK;
}

static int record(scrm_db *db, const scrm_event *ev, int64_t *customer, int64_t *event_id)
{
	bool refund = is_type(ev->type, "refund"), hashed;
	int rc = pf__erased_keys(db, &hashed);
	if (rc)
		return rc;
	/* A replay is found before anything is checked or observed. On the hot
	 * path (named by id, not a refund, no anonymized keys) the insert
	 * itself finds it, one index descent instead of two. */
	bool probed = refund || ev->n_ids || hashed;
	if (probed && (rc = find_duplicate(db, ev, hashed, customer, event_id)))
		return rc;
	order_ref order = {0, 0};
	if (refund && (rc = check_refund(db, ev, &order)))
		return rc;
	int64_t root = 0;
	const char *anchor_kind = NULL;
	char *anchor_value = NULL;
	if (ev->customer) {
		if ((rc = pf__live_customer(db, ev->customer, &root))) {
			/* The replay of an event whose customer is gone is a replay. */
			if (!probed && (rc == SCRM_NOTFOUND || rc == SCRM_STATE)) {
				int d = find_duplicate(db, ev, false, customer, event_id);
				if (d)
					return d;
			}
			return rc;
		}
		if (refund && (rc = refund_owner_matches(db, ev, &order, root)))
			return rc;
	} else {
		/* Everything the input can get wrong was checked above, except
		 * what observing finds out; observe refuses before writing. */
		if ((rc = scrm_identity_observe(db, ev->channel, ev->at_ms, ev->id_kinds,
						ev->id_values, ev->n_ids, &root, NULL)) ||
		    (rc = find_anchor(db, ev, root, &anchor_kind, &anchor_value)))
			return rc;
		if (refund && (rc = refund_owner_matches(db, ev, &order, root)))
			goto out;
	}
	bool inserted = false;
	if ((rc = insert_event(db, ev, root, order.id, anchor_kind, anchor_value, event_id,
			       &inserted)))
		goto out;
	if (!inserted) {
		rc = find_duplicate(db, ev, false, customer, event_id);
		if (rc == SCRM_OK) /* cannot happen: the conflict is on this key */
			rc = scrm__error(db, SCRM_ERROR, "event key conflict without a stored event");
		goto out;
	}
	if ((rc = pf__figures_add(db, root, ev->type, ev->at_ms, ev->has_amount, ev->amount,
				  ev->currency)))
		goto out;
	/* Engines that act on events (rules) see it in this transaction. */
	const scrm_note note = {SCRM_NOTE_EVENT, *event_id, root, 0, ev};
	if ((rc = scrm__notify(db, &note)))
		goto out;
	*customer = root;
out:
	scrm__free(anchor_value);
	return rc;
}

/* Validated event; the transaction is opened here. */
static int add_event(scrm_db *db, const scrm_event *ev, bool json_checked, int64_t *customer,
		     int64_t *event_id)
{
	int64_t c = 0, e = 0;
	int rc = validate(db, ev, json_checked);
	if (rc)
		return rc;
	/* A refund brought by identifiers may be refused after observing
	 * wrote (it names another customer than its order's): that case gets
	 * a savepoint. Every other refusal happens before the first write. */
	bool guarded = ev->n_ids && is_type(ev->type, "refund");
	if ((rc = guarded ? scrm__tx_begin(db) : scrm__tx_begin_unguarded(db)))
		return rc;
	rc = scrm__tx_end(db, record(db, ev, &c, &e));
	if (rc == SCRM_OK || rc == SCRM_DUPLICATE) {
		if (customer)
			*customer = c;
		if (event_id)
			*event_id = e;
	}
	return rc;
}

int pf__event_validate(scrm_db *db, const scrm_event *ev, bool json_checked)
{
	return validate(db, ev, json_checked);
}

int pf__event_add(scrm_db *db, const scrm_event *ev, bool json_checked, int64_t *customer,
		  int64_t *event_id)
{
	return add_event(db, ev, json_checked, customer, event_id);
}

int pf__event_find_duplicate(scrm_db *db, const scrm_event *ev, int64_t *customer,
			     int64_t *event_id)
{
	return find_duplicate(db, ev, false, customer, event_id);
}

SCRM_API int scrm_profile_event_add(scrm_db *db, const scrm_event *ev, int64_t *customer,
				    int64_t *event_id)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (customer)
		*customer = 0;
	if (event_id)
		*event_id = 0;
	return add_event(db, ev, false, customer, event_id);
}

/* ------------------------------------------------------------ JSON */

static int json_text(scrm_db *db, const cJSON *root, const char *name, bool required,
		     const char **out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, name);
	*out = NULL;
	if (!it) {
		if (required)
			return scrm__error(db, SCRM_INVALID, "event: \"%s\" (a string) is required", name);
		return SCRM_OK;
	}
	if (!cJSON_IsString(it))
		return scrm__error(db, SCRM_INVALID, "event: \"%s\" must be a string", name);
	*out = it->valuestring;
	return SCRM_OK;
}

/* Print a parsed member back as compact JSON text (NULL when absent). */
static int json_member(scrm_db *db, const cJSON *root, const char *name, bool array, char **out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, name);
	*out = NULL;
	if (!it)
		return SCRM_OK;
	if (array ? !cJSON_IsArray(it) : !cJSON_IsObject(it))
		return scrm__error(db, SCRM_INVALID, "event \"%s\" must be a JSON %s", name,
				   array ? "array" : "object");
	char *text = cJSON_PrintUnformatted(it);
	if (!text)
		return scrm__error(db, SCRM_NOMEM, "out of memory printing event %s", name);
	if (strlen(text) > PF_JSON_MAX) {
		cJSON_free(text);
		return scrm__error(db, SCRM_LIMIT, "event %s: more than %d bytes of JSON", name,
				   PF_JSON_MAX);
	}
	*out = scrm__strdup(db, text);
	cJSON_free(text);
	return *out ? SCRM_OK : scrm__error(db, SCRM_NOMEM, "out of memory");
}

/* An event parsed from JSON: ev points into the rest. */
typedef struct parsed_event {
	cJSON *root;
	scrm_event ev;
	const char *kinds[PF_IDS_MAX], *values[PF_IDS_MAX];
	char *items, *props;
} parsed_event;

static void parsed_free(parsed_event *p)
{
	scrm__free(p->items);
	scrm__free(p->props);
	cJSON_Delete(p->root);
	memset(p, 0, sizeof *p);
}

/* Parse and check the JSON form; *p is cleared on failure. `p` must not
 * move while the event is used (ev points into it). */
static int parse_event(scrm_db *db, const char *json, parsed_event *p)
{
	static const char *const fields[] = {"key",      "type",     "channel", "at",    "customer",
					     "ids",      "amount",   "currency", "items", "props",
					     "refund_of", NULL};
	memset(p, 0, sizeof *p);
	if (!json)
		return scrm__error(db, SCRM_MISUSE, "scrm_profile_event_add_json: json is NULL");
	if (strnlen(json, PF_EVENT_MAX + 1) > PF_EVENT_MAX)
		return scrm__error(db, SCRM_LIMIT, "event: more than %d bytes of JSON", PF_EVENT_MAX);
	cJSON *root;
	int rc = scrm__json_parse(db, json, "event", &root);
	if (rc)
		return rc;
	p->root = root;
	scrm_event ev = SCRM_EVENT_INIT;
	const char **kinds = p->kinds, **values = p->values;
	if (!cJSON_IsObject(root)) {
		rc = scrm__error(db, SCRM_INVALID, "event must be a JSON object");
		goto out;
	}
	if ((rc = scrm__json_only(db, root, "event", fields)) ||
	    (rc = json_text(db, root, "key", true, &ev.key)) ||
	    (rc = json_text(db, root, "type", true, &ev.type)) ||
	    (rc = json_text(db, root, "channel", true, &ev.channel)) ||
	    (rc = json_text(db, root, "currency", false, &ev.currency)) ||
	    (rc = json_text(db, root, "refund_of", false, &ev.refund_of)))
		goto out;
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(root, "at");
	if (!at) {
		rc = scrm__error(db, SCRM_INVALID, "event: \"at\" (a time) is required");
		goto out;
	}
	if (cJSON_IsString(at)) {
		if (!scrm__parse_time(at->valuestring, &ev.at_ms)) {
			rc = scrm__error(db, SCRM_INVALID, "event: \"at\" '%.*s' is not an RFC 3339 time",
					 scrm__utf8_clip(at->valuestring, 40), at->valuestring);
			goto out;
		}
	} else if ((rc = scrm__json_int(db, at, "event \"at\"", 0, PF_AT_MAX, &ev.at_ms))) {
		goto out;
	}
	const cJSON *cust = cJSON_GetObjectItemCaseSensitive(root, "customer");
	if (cust && (rc = scrm__json_int(db, cust, "event \"customer\"", 1, INT64_MAX, &ev.customer)))
		goto out;
	const cJSON *amount = cJSON_GetObjectItemCaseSensitive(root, "amount");
	if (amount) {
		if ((rc = scrm__json_int(db, amount, "event \"amount\"", -PF_AMOUNT_MAX, PF_AMOUNT_MAX,
					 &ev.amount)))
			goto out;
		ev.has_amount = 1;
	}
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(root, "ids");
	if (ids) {
		if (!cJSON_IsObject(ids)) {
			rc = scrm__error(db, SCRM_INVALID,
					 "event: \"ids\" must be an object of kind: value");
			goto out;
		}
		const cJSON *k;
		cJSON_ArrayForEach(k, ids)
		{
			const cJSON *first = cJSON_IsArray(k) ? k->child : k;
			for (const cJSON *v = first; v; v = cJSON_IsArray(k) ? v->next : NULL) {
				if (!cJSON_IsString(v)) {
					rc = scrm__error(db, SCRM_INVALID,
							 "event: ids.%s must be a string or an array of strings",
							 k->string);
					goto out;
				}
				if (ev.n_ids == PF_IDS_MAX) {
					rc = scrm__error(db, SCRM_LIMIT, "event has more than %d identifiers",
							 PF_IDS_MAX);
					goto out;
				}
				kinds[ev.n_ids] = k->string;
				values[ev.n_ids++] = v->valuestring;
			}
		}
		if (!ev.n_ids) {
			rc = scrm__error(db, SCRM_INVALID, "event: \"ids\" is empty");
			goto out;
		}
		ev.id_kinds = kinds;
		ev.id_values = values;
	}
	if ((rc = json_member(db, root, "items", true, &p->items)) ||
	    (rc = json_member(db, root, "props", false, &p->props)))
		goto out;
	ev.items_json = p->items;
	ev.props_json = p->props;
	p->ev = ev;
out:
	if (rc)
		parsed_free(p);
	return rc;
}

int pf__event_add_json(scrm_db *db, const char *json, int64_t *customer, int64_t *event_id)
{
	parsed_event *p = scrm__malloc(db, sizeof *p);
	if (!p)
		return scrm__error(db, SCRM_NOMEM, "out of memory");
	int rc = parse_event(db, json, p);
	if (!rc)
		rc = add_event(db, &p->ev, true, customer, event_id);
	parsed_free(p);
	scrm__free(p);
	return rc;
}

SCRM_API int scrm_profile_event_add_json(scrm_db *db, const char *json, int64_t *customer,
					 int64_t *event_id)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (customer)
		*customer = 0;
	if (event_id)
		*event_id = 0;
	return pf__event_add_json(db, json, customer, event_id);
}

/* ------------------------------------------------------------ import */

bool pf__content_refusal(int rc)
{
	return rc == SCRM_INVALID || rc == SCRM_NOTFOUND || rc == SCRM_PARSE || rc == SCRM_RANGE ||
	       rc == SCRM_LIMIT || rc == SCRM_STATE || rc == SCRM_MISUSE;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* Lines are parsed a chunk at a time and their events stored as one batch
 * in input order (pf__events_batch): the outcome of every line is the one
 * it would have alone, in line order. */
#define IMPORT_CHUNK 256

typedef struct import_line {
	int64_t lineno;
	int code;  /* the line's refusal, or SCRM_OK: it is event `ev` of the chunk */
	size_t ev;
	char *msg; /* the reason of a refusal */
} import_line;

typedef struct import_chunk {
	scrm_db *db;
	parsed_event *parsed; /* IMPORT_CHUNK */
	scrm_event *evs;
	int *res;
	import_line *lines;
	size_t *line_of; /* event -> its line in `lines` */
	size_t nlines, nevs;
} import_chunk;

typedef struct import_sum {
	int64_t lines, stored, dup, rejected;
	scrm_buf errs;
} import_sum;

static int keep_reason(void *ud, size_t i, const char *msg)
{
	import_chunk *c = ud;
	char **m = &c->lines[c->line_of[i]].msg;
	scrm__free(*m);
	*m = scrm__strdup(c->db, msg);
	return *m ? SCRM_OK : scrm__error(c->db, SCRM_NOMEM, "out of memory");
}

static void chunk_clear(import_chunk *c)
{
	for (size_t i = 0; i < c->nevs; i++)
		parsed_free(&c->parsed[i]);
	for (size_t i = 0; i < c->nlines; i++)
		scrm__free(c->lines[i].msg);
	c->nlines = c->nevs = 0;
}

static void count_rejected(import_sum *s, int64_t lineno, int code, const char *msg)
{
	if (s->rejected++ < PF_IMPORT_ERRORS) {
		scrm__buf_printf(&s->errs, "%s{\"line\":%lld,\"code\":\"%s\",\"message\":",
				 s->rejected > 1 ? "," : "", (long long)lineno, pf__code_name(code));
		scrm__buf_json_str(&s->errs, msg ? msg : "");
		scrm__buf_puts(&s->errs, "}");
	}
}

/* Store the chunk's events, then count its lines in order. */
static int chunk_run(import_chunk *c, import_sum *s)
{
	scrm_db *db = c->db;
	size_t refused = 0, at = 0, run = 0;
	/* Their items and props were printed from parsed JSON: checked. */
	int rc = c->nevs ? pf__events_batch(db, c->evs, c->nevs,
					    SCRM_EVENTS_INPUT_ORDER | PF_BATCH_JSON_CHECKED, c->res,
					    NULL, NULL, &refused, keep_reason, c, &at, &run)
			 : SCRM_OK;
	if (rc) {
		char keep[256];
		snprintf(keep, sizeof keep, "%s", scrm_errmsg(db));
		int64_t lineno = c->lines[at < c->nevs ? c->line_of[at] : 0].lineno;
		return scrm__error(db, rc, "import failed at line %lld: %s", (long long)lineno, keep);
	}
	for (size_t i = 0; i < c->nlines; i++) {
		const import_line *l = &c->lines[i];
		int code = l->code ? l->code : c->res[l->ev];
		if (code == SCRM_OK)
			s->stored++;
		else if (code == SCRM_DUPLICATE)
			s->dup++;
		else
			count_rejected(s, l->lineno, code, l->msg);
	}
	chunk_clear(c);
	return SCRM_OK;
}

/* Parse one line into the chunk, or note why it is refused. */
static int chunk_add(import_chunk *c, int64_t lineno, const char *start, const char *line, size_t n)
{
	scrm_db *db = c->db;
	import_line *l = &c->lines[c->nlines];
	*l = (import_line){lineno, SCRM_OK, c->nevs, NULL};
	/* A NUL inside the line would hide the rest of it. */
	int r = memchr(start, '\0', n) ? scrm__error(db, SCRM_INVALID, "event: line contains a NUL byte")
				      : parse_event(db, line, &c->parsed[c->nevs]);
	if (r == SCRM_OK) {
		c->evs[c->nevs] = c->parsed[c->nevs].ev;
		c->line_of[c->nevs++] = c->nlines++;
		return SCRM_OK;
	}
	if (!pf__content_refusal(r)) {
		char keep[256];
		snprintf(keep, sizeof keep, "%s", scrm_errmsg(db));
		return scrm__error(db, r, "import failed at line %lld: %s", (long long)lineno, keep);
	}
	l->code = r;
	if (!(l->msg = scrm__strdup(db, scrm_errmsg(db))))
		return scrm__error(db, SCRM_NOMEM, "out of memory reading line %lld", (long long)lineno);
	c->nlines++;
	return SCRM_OK;
}

static int import(scrm_db *db, const char *text, size_t len, scrm_buf *sum)
{
	import_sum s = {0, 0, 0, 0, {0}};
	scrm__buf_init(&s.errs, db);
	import_chunk c = {db, scrm__calloc(db, IMPORT_CHUNK, sizeof *c.parsed),
			  scrm__calloc(db, IMPORT_CHUNK, sizeof *c.evs),
			  scrm__calloc(db, IMPORT_CHUNK, sizeof *c.res),
			  scrm__calloc(db, IMPORT_CHUNK, sizeof *c.lines),
			  scrm__calloc(db, IMPORT_CHUNK, sizeof *c.line_of), 0, 0};
	char *line = NULL;
	size_t cap = 0;
	int rc = SCRM_OK;
	if (!c.parsed || !c.evs || !c.res || !c.lines || !c.line_of)
		rc = scrm__error(db, SCRM_NOMEM, "out of memory");
	size_t pos = 0;
	for (int64_t lineno = 1; pos < len && !rc; lineno++) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;
		pos += n + (nl ? 1 : 0);
		if (blank(start, n))
			continue;
		s.lines++;
		if (n && start[n - 1] == '\r')
			n--;
		if (n + 1 > cap) {
			char *p = scrm__realloc(db, line, n + 1);
			if (!p) {
				rc = scrm__error(db, SCRM_NOMEM, "out of memory reading line %lld",
						 (long long)lineno);
				break;
			}
			line = p;
			cap = n + 1;
		}
		memcpy(line, start, n);
		line[n] = '\0';
		rc = chunk_add(&c, lineno, start, line, n);
		if (!rc && c.nlines == IMPORT_CHUNK)
			rc = chunk_run(&c, &s);
	}
	if (!rc)
		rc = chunk_run(&c, &s);
	if (c.lines)
		chunk_clear(&c);
	scrm__free(c.parsed);
	scrm__free(c.evs);
	scrm__free(c.res);
	scrm__free(c.lines);
	scrm__free(c.line_of);
	scrm__free(line);
	if (!rc)
		scrm__clear_error(db);
	if (!rc && sum) {
		scrm__buf_printf(sum,
				 "{\"lines\":%lld,\"stored\":%lld,\"duplicate\":%lld,\"rejected\":%lld,"
				 "\"errors\":[",
				 (long long)s.lines, (long long)s.stored, (long long)s.dup,
				 (long long)s.rejected);
		if (s.errs.len)
			scrm__buf_append(sum, s.errs.data, s.errs.len);
		if (s.errs.oom)
			sum->oom = true;
		scrm__buf_puts(sum, "]}");
		if (sum->oom)
			rc = scrm__error(db, SCRM_NOMEM, "out of memory building the import summary");
	}
	scrm__buf_reset(&s.errs);
	return rc;
}

SCRM_API int scrm_profile_events_import(scrm_db *db, const char *text, size_t len, char **summary)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (summary)
		*summary = NULL;
	if (!text && len)
		return scrm__error(db, SCRM_MISUSE, "scrm_profile_events_import: text is NULL");
	if ((rc = scrm__tx_begin(db)))
		return rc;
	scrm_buf sum;
	scrm__buf_init(&sum, db);
	/* The summary is built before commit: failing to report must not leave
	 * the import behind. */
	rc = scrm__tx_end(db, import(db, text, len, summary ? &sum : NULL));
	if (rc == SCRM_OK && summary)
		rc = scrm__buf_finish(&sum, summary);
	scrm__buf_reset(&sum);
	return rc;
}
