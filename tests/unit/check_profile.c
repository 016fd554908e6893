/*
 * Check suite for the profile engine (include/scrm/profile.h): events and
 * idempotency, refunds, figures, merge/unmerge effects, RFM (SPEC.md "RFM
 * scores") and lifecycle, attributes, consent, erase and anonymize (nothing
 * personal left in the file), masking, import, error paths, batches and
 * allocation failure.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <sqlite3.h>

#include "scrm/identity.h"
#include "scrm/profile.h"
#include "scrm/rules.h"
#include "core-int.h"
#include "testutil.h"

#define T0 INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */
#define DAY INT64_C(86400000)

#define P1 "138 0013 8000"
#define P1N "+8613800138000"
#define P2 "139-0013-9000"
#define P2N "+8613900139000"

/* --------------------------------------------------------------- helpers */

static tu_clock clk;

static scrm_db *open_db(const char *name)
{
	scrm_db *db = tu_open(tu_path(name), SCRM_OPEN_CREATE);
	clk.now = T0;
	tu_assert_ok(db, scrm_db_set_clock(db, tu_clock_fn, &clk));
	return db;
}

static int64_t obs(scrm_db *db, const char *kind, const char *value)
{
	int64_t c = 0;
	tu_assert_ok(db, scrm_identity_observe(db, "pos", T0, &kind, &value, 1, &c, NULL));
	return c;
}

static int64_t obs2(scrm_db *db, const char *k1, const char *v1, const char *k2, const char *v2)
{
	const char *kinds[] = {k1, k2}, *values[] = {v1, v2};
	int64_t c = 0;
	tu_assert_ok(db, scrm_identity_observe(db, "pos", T0, kinds, values, 2, &c, NULL));
	return c;
}

static int64_t g_cust, g_event;

/* Record an event given as printf-formatted JSON; returns the result code
 * and leaves the outputs in g_cust / g_event. */
static int ev(scrm_db *db, const char *fmt, ...) SCRM_PRINTF(2, 3);
static int ev(scrm_db *db, const char *fmt, ...)
{
	char json[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(json, sizeof json, fmt, ap);
	va_end(ap);
	g_cust = g_event = -1;
	return scrm_profile_event_add_json(db, json, &g_cust, &g_event);
}

#define EV_OK(db, ...) tu_assert_ok(db, ev(db, __VA_ARGS__))

/* An order of `customer` through the typed call. */
static int order(scrm_db *db, const char *key, const char *channel, int64_t customer,
		 int64_t amount, const char *currency, int64_t at)
{
	scrm_event e = SCRM_EVENT_INIT;
	e.key = key;
	e.type = "order";
	e.channel = channel;
	e.at_ms = at;
	e.customer = customer;
	e.has_amount = 1;
	e.amount = amount;
	e.currency = currency;
	return scrm_profile_event_add(db, &e, &g_cust, &g_event);
}

static int view_ev(scrm_db *db, const char *key, const char *channel, int64_t customer, int64_t at)
{
	scrm_event e = SCRM_EVENT_INIT;
	e.key = key;
	e.type = "view";
	e.channel = channel;
	e.at_ms = at;
	e.customer = customer;
	return scrm_profile_event_add(db, &e, &g_cust, &g_event);
}

static int refund(scrm_db *db, const char *key, const char *channel, int64_t customer,
		  const char *of, int64_t amount, const char *currency, int64_t at)
{
	scrm_event e = SCRM_EVENT_INIT;
	e.key = key;
	e.type = "refund";
	e.channel = channel;
	e.at_ms = at;
	e.customer = customer;
	e.has_amount = 1;
	e.amount = amount;
	e.currency = currency;
	e.refund_of = of;
	return scrm_profile_event_add(db, &e, &g_cust, &g_event);
}

static cJSON *parse(const char *text)
{
	ck_assert_ptr_nonnull(text);
	cJSON *j = cJSON_Parse(text);
	ck_assert_msg(j != NULL, "invalid JSON: %s", text);
	return j;
}

static const cJSON *jget(const cJSON *o, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
	ck_assert_msg(it != NULL, "no member '%s'", key);
	return it;
}

static long long jint(const cJSON *o, const char *key)
{
	const cJSON *it = jget(o, key);
	ck_assert_msg(cJSON_IsNumber(it), "member '%s' is not a number", key);
	return (long long)it->valuedouble;
}

static bool jnull(const cJSON *o, const char *key)
{
	return cJSON_IsNull(jget(o, key));
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *it = jget(o, key);
	ck_assert_msg(cJSON_IsString(it), "member '%s' is not a string", key);
	return it->valuestring;
}

static cJSON *profile(scrm_db *db, int64_t id, unsigned flags)
{
	char *out = (char *)&out;
	tu_assert_ok(db, scrm_profile_json(db, id, flags, &out));
	cJSON *j = parse(out);
	scrm_free(out);
	return j;
}

/* One member of a customer's figures (-1 when null). */
static long long fig(scrm_db *db, int64_t id, const char *name)
{
	cJSON *p = profile(db, id, 0);
	const cJSON *f = jget(jget(p, "figures"), name);
	long long v = cJSON_IsNull(f) ? -1 : (long long)f->valuedouble;
	cJSON_Delete(p);
	return v;
}

/* figures.<obj>.<key> (-1 when absent). */
static long long fig2(scrm_db *db, int64_t id, const char *obj, const char *key)
{
	cJSON *p = profile(db, id, 0);
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(jget(jget(p, "figures"), obj), key);
	long long v = f ? (long long)f->valuedouble : -1;
	cJSON_Delete(p);
	return v;
}

static char *figures_text(scrm_db *db, int64_t id)
{
	cJSON *p = profile(db, id, 0);
	char *t = cJSON_PrintUnformatted(jget(p, "figures"));
	cJSON_Delete(p);
	return t;
}

/* rfm.<key> of a customer (-1 null, -2 when rfm is null). */
static long long rfm(scrm_db *db, int64_t id, const char *key)
{
	cJSON *p = profile(db, id, 0);
	const cJSON *r = jget(p, "rfm");
	long long v = -2;
	if (!cJSON_IsNull(r))
		v = jnull(r, key) ? -1 : jint(r, key);
	cJSON_Delete(p);
	return v;
}

static char *lifecycle(scrm_db *db, int64_t id)
{
	static char buf[4][32];
	static int slot;
	char *b = buf[slot++ & 3];
	cJSON *p = profile(db, id, 0);
	snprintf(b, 32, "%s", jstr(p, "lifecycle"));
	cJSON_Delete(p);
	return b;
}

static int64_t canon(scrm_db *db, int64_t id)
{
	int64_t s = 0;
	int rc = scrm_identity_canonical(db, id, &s);
	return rc == SCRM_OK ? s : -rc;
}

/* Every row of every table on the handle's connection, to compare states. */
static char *dump(scrm_db *db)
{
	sqlite3 *sq = scrm__sqlite(db);
	sqlite3_stmt *tabs = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(sq, "SELECT name FROM sqlite_master WHERE type='table' "
					    "ORDER BY name", -1, &tabs, NULL), SQLITE_OK);
	scrm_buf b;
	scrm__buf_init(&b, NULL);
	while (sqlite3_step(tabs) == SQLITE_ROW) {
		char sql[256];
		snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", sqlite3_column_text(tabs, 0));
		scrm__buf_printf(&b, "#%s\n", sqlite3_column_text(tabs, 0));
		sqlite3_stmt *st = NULL;
		ck_assert_int_eq(sqlite3_prepare_v2(sq, sql, -1, &st, NULL), SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW) {
			for (int i = 0; i < sqlite3_column_count(st); i++) {
				const char *v = (const char *)sqlite3_column_text(st, i);
				scrm__buf_printf(&b, "%s|", v ? v : "NULL");
			}
			scrm__buf_puts(&b, "\n");
		}
		sqlite3_finalize(st);
	}
	sqlite3_finalize(tabs);
	ck_assert(!b.oom);
	return b.data;
}

/* A test's alloc-fail loop must see SCRM_NOMEM only, then success. */
#define OOM_LOOP_MAX 5000

/* ------------------------------------------------------------------ events */

START_TEST(test_event_typed)
{
	scrm_db *db = open_db("e.db");
	int64_t c = obs(db, "member_card", "M1");
	tu_assert_ok(db, order(db, "T1", "pos", c, 12900, "CNY", T0 + 1000));
	ck_assert_int_eq(g_cust, c);
	ck_assert_int_eq(g_event, 1);
	tu_assert_ok(db, view_ev(db, "V1", "tmall", c, T0 + 2000));
	ck_assert_int_eq(g_event, 2);
	/* NULL outputs are fine. */
	scrm_event e = SCRM_EVENT_INIT;
	e.key = "V2";
	e.type = "cart_add";
	e.channel = "tmall";
	e.at_ms = T0 + 3000;
	e.customer = c;
	e.items_json = "[{\"sku\":\"A1\",\"qty\":2}]";
	e.props_json = "{\"store\": \"SH-01\"}";
	tu_assert_ok(db, scrm_profile_event_add(db, &e, NULL, NULL));

	char *out = NULL;
	tu_assert_ok(db, scrm_profile_events_json(db, c, 0, 0, &out));
	cJSON *evs = parse(out);
	scrm_free(out);
	ck_assert_int_eq(cJSON_GetArraySize(evs), 3);
	const cJSON *first = cJSON_GetArrayItem(evs, 0); /* newest first */
	ck_assert_str_eq(jstr(first, "key"), "V2");
	ck_assert_str_eq(jstr(first, "type"), "cart_add");
	ck_assert_str_eq(jstr(jget(first, "props"), "store"), "SH-01");
	ck_assert_int_eq(cJSON_GetArraySize(jget(first, "items")), 1);
	ck_assert(jnull(first, "amount"));
	const cJSON *last = cJSON_GetArrayItem(evs, 2);
	ck_assert_str_eq(jstr(last, "key"), "T1");
	ck_assert_int_eq(jint(last, "amount"), 12900);
	ck_assert_str_eq(jstr(last, "currency"), "CNY");
	ck_assert_int_eq(jint(last, "at"), T0 + 1000);
	ck_assert(jnull(last, "refund_of"));
	cJSON_Delete(evs);

	/* since and limit */
	tu_assert_ok(db, scrm_profile_events_json(db, c, T0 + 2000, 0, &out));
	evs = parse(out);
	scrm_free(out);
	ck_assert_int_eq(cJSON_GetArraySize(evs), 2);
	cJSON_Delete(evs);
	tu_assert_ok(db, scrm_profile_events_json(db, c, 0, 1, &out));
	evs = parse(out);
	scrm_free(out);
	ck_assert_int_eq(cJSON_GetArraySize(evs), 1);
	cJSON_Delete(evs);
	tu_assert_rc(db, scrm_profile_events_json(db, c, 0, -1, &out), SCRM_RANGE);
	tu_assert_rc(db, scrm_profile_events_json(db, 99, 0, 0, &out), SCRM_NOTFOUND);
	ck_assert_ptr_null(out);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_event_json)
{
	scrm_db *db = open_db("e.db");
	EV_OK(db, "{\"key\":\"T20261122-0042\",\"type\":\"order\",\"channel\":\"pos\","
		  "\"at\":\"2026-11-22T10:00:00+08:00\",\"ids\":{\"phone\":\"%s\",\"member_card\":\"M0042\"},"
		  "\"amount\":12900,\"currency\":\"CNY\",\"items\":[{\"sku\":\"A1\",\"qty\":2,\"price\":6450}],"
		  "\"props\":{\"store\":\"SH-01\"}}", P1);
	int64_t c = g_cust;
	ck_assert_int_gt(c, 0);
	int64_t r = 0;
	tu_assert_ok(db, scrm_identity_resolve(db, "member_card", "M0042", &r));
	ck_assert_int_eq(r, c);
	/* The identifiers were observed on the event's channel and time. */
	char *list = NULL;
	tu_assert_ok(db, scrm_identity_list_json(db, c, &list));
	tu_assert_contains(list, "\"channel\":\"pos\"");
	tu_assert_contains(list, "1795312800000");
	scrm_free(list);
	ck_assert_int_eq(fig(db, c, "last_order"), INT64_C(1795312800000));
	/* Identifiers may be arrays; an unknown member is refused. */
	EV_OK(db, "{\"key\":\"V1\",\"type\":\"view\",\"channel\":\"tmall\",\"at\":%lld,"
		  "\"ids\":{\"phone\":[\"%s\",\"13700137000\"]}}", (long long)T0, P1);
	ck_assert_int_eq(g_cust, c);
	tu_assert_rc(db, ev(db, "{\"key\":\"V2\",\"type\":\"view\",\"channel\":\"x\",\"at\":1,"
				"\"customer\":%lld,\"colour\":\"red\"}", (long long)c), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "unknown field 'colour'");
	ck_assert_int_eq(g_cust, 0);
	ck_assert_int_eq(g_event, 0);
	tu_assert_rc(db, ev(db, "{\"key\":\"V2\",\"type\":\"view\",\"channel\":\"x\",\"at\":1,"
				"\"customer\":%lld,\"ids\":{\"phone\":\"%s\"}}", (long long)c, P1),
		     SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "not both");
	tu_assert_rc(db, ev(db, "{\"key\":\"V2\",\"type\":\"view\",\"channel\":\"x\",\"at\":1}"),
		     SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "neither");
	tu_assert_rc(db, ev(db, "{\"key\":\"V2\",\"type\":\"view\",\"channel\":\"x\",\"at\":1,"
				"\"ids\":{}}"), SCRM_INVALID);
	tu_assert_rc(db, ev(db, "{\"key\":\"V2\",\"type\":\"view\",\"channel\":\"x\",\"at\":\"yesterday\","
				"\"customer\":1}"), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "RFC 3339");
	tu_assert_rc(db, ev(db, "{\"key\":\"V2\",\"type\":\"view\",\"channel\":\"x\",\"customer\":1}"),
		     SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "\"at\"");
	tu_assert_rc(db, ev(db, "{\"key\":\"V2\",\"type\":\"view\",\"channel\":\"x\",\"at\":1,"
				"\"customer\":1,"), SCRM_PARSE);
	tu_assert_contains(scrm_errmsg(db), "line 1, column");
	tu_assert_rc(db, ev(db, "[1]"), SCRM_INVALID);
	tu_assert_rc(db, ev(db, "{\"key\":\"V2\",\"type\":\"view\",\"channel\":\"x\",\"at\":1,"
				"\"customer\":1,\"items\":{}}"), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "\"items\" must be a JSON array");
	tu_assert_rc(db, ev(db, "{\"key\":\"V2\",\"type\":\"view\",\"channel\":\"x\",\"at\":1,"
				"\"customer\":1,\"props\":[]}"), SCRM_INVALID);
	tu_assert_rc(db, ev(db, "{\"key\":\"V2\",\"type\":\"view\",\"channel\":\"x\",\"at\":1,"
				"\"customer\":1.5}"), SCRM_INVALID);
	tu_assert_rc(db, ev(db, "{\"key\":\"V2\",\"type\":\"view\",\"channel\":\"x\",\"at\":-5,"
				"\"customer\":1}"), SCRM_RANGE);
	tu_assert_rc(db, ev(db, "{\"key\":\"V2\",\"type\":\"view\",\"channel\":\"x\",\"at\":1,"
				"\"customer\":1,\"ids\":{\"phone\":5}}"), SCRM_INVALID);
	tu_assert_rc(db, scrm_profile_event_add_json(db, NULL, NULL, NULL), SCRM_MISUSE);
	/* Unknown kind, and identifiers that are all unusable. */
	tu_assert_rc(db, ev(db, "{\"key\":\"V2\",\"type\":\"view\",\"channel\":\"x\",\"at\":1,"
				"\"ids\":{\"shoe_size\":\"42\"}}"), SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(db), "shoe_size");
	tu_assert_rc(db, ev(db, "{\"key\":\"V2\",\"type\":\"view\",\"channel\":\"x\",\"at\":1,"
				"\"ids\":{\"phone\":\"null\"}}"), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "no usable identifier");
	/* An oversized event. */
	size_t big = (1u << 20) + 100;
	char *huge = malloc(big + 1);
	memset(huge, ' ', big);
	huge[big] = '\0';
	huge[0] = '{';
	huge[big - 1] = '}';
	tu_assert_rc(db, scrm_profile_event_add_json(db, huge, NULL, NULL), SCRM_LIMIT);
	free(huge);
	ck_assert_int_eq(fig(db, c, "events"), 2);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_event_validation)
{
	scrm_db *db = open_db("e.db");
	int64_t c = obs(db, "member_card", "M1");
	scrm_event e = SCRM_EVENT_INIT;
	int64_t oc = 5, oe = 5;
	tu_assert_rc(db, scrm_profile_event_add(db, NULL, &oc, &oe), SCRM_MISUSE);
	ck_assert_int_eq(oc, 0);
	ck_assert_int_eq(oe, 0);
	tu_assert_rc(db, scrm_profile_event_add(NULL, &e, NULL, NULL), SCRM_MISUSE);
	e.version = 2;
	tu_assert_rc(db, scrm_profile_event_add(db, &e, NULL, NULL), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(db), "version 2");
	e.version = SCRM_EVENT_VERSION;
	tu_assert_rc(db, scrm_profile_event_add(db, &e, NULL, NULL), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "\"key\" is required");
	e.key = "K";
	e.type = "view";
	e.channel = "pos";
	e.customer = c;
	e.at_ms = T0;
	tu_assert_ok(db, scrm_profile_event_add(db, &e, NULL, NULL));
	struct {
		const char *key, *type, *channel;
		int64_t at, customer;
		int has_amount;
		int64_t amount;
		const char *currency, *refund_of, *items, *props;
		int rc;
		const char *msg;
	} bad[] = {
		{"", "view", "pos", T0, 1, 0, 0, NULL, NULL, NULL, NULL, SCRM_INVALID, "event key"},
		{"K\n", "view", "pos", T0, 1, 0, 0, NULL, NULL, NULL, NULL, SCRM_INVALID, "event key"},
		{"K\xff", "view", "pos", T0, 1, 0, 0, NULL, NULL, NULL, NULL, SCRM_INVALID, "event key"},
		{"K", "View", "pos", T0, 1, 0, 0, NULL, NULL, NULL, NULL, SCRM_INVALID, "event type 'View'"},
		{"K", "view", "", T0, 1, 0, 0, NULL, NULL, NULL, NULL, SCRM_INVALID, "event channel"},
		{"K", "view", "pos", -1, 1, 0, 0, NULL, NULL, NULL, NULL, SCRM_RANGE, "event time -1"},
		{"K", "view", "pos", INT64_MAX, 1, 0, 0, NULL, NULL, NULL, NULL, SCRM_RANGE, "year 9999"},
		{"K", "view", "pos", T0, -3, 0, 0, NULL, NULL, NULL, NULL, SCRM_INVALID, "not a customer id"},
		{"K", "order", "pos", T0, 1, 0, 0, NULL, NULL, NULL, NULL, SCRM_INVALID, "needs an amount"},
		{"K", "order", "pos", T0, 1, 1, 0, "CNY", NULL, NULL, NULL, SCRM_RANGE, "amount 0"},
		{"K", "order", "pos", T0, 1, 1, 5, "cny", NULL, NULL, NULL, SCRM_INVALID, "ISO 4217"},
		{"K", "order", "pos", T0, 1, 1, 5, NULL, NULL, NULL, NULL, SCRM_INVALID, "ISO 4217"},
		{"K", "view", "pos", T0, 1, 0, 0, "CNY", NULL, NULL, NULL, SCRM_INVALID, "without an amount"},
		{"K", "view", "pos", T0, 1, 1, INT64_C(2000000000000000), "CNY", NULL, NULL, NULL, SCRM_RANGE, "amount"},
		{"K", "refund", "pos", T0, 1, 1, 5, "CNY", NULL, NULL, NULL, SCRM_INVALID, "needs refund_of"},
		{"K", "view", "pos", T0, 1, 0, 0, NULL, "T1", NULL, NULL, SCRM_INVALID, "only for refund"},
		{"K", "view", "pos", T0, 1, 0, 0, NULL, NULL, "{\"a\":1}", NULL, SCRM_INVALID, "items must be a JSON array"},
		{"K", "view", "pos", T0, 1, 0, 0, NULL, NULL, "[1,", NULL, SCRM_PARSE, "event items: malformed JSON"},
		{"K", "view", "pos", T0, 1, 0, 0, NULL, NULL, NULL, "[]", SCRM_INVALID, "props must be a JSON object"},
		{"K2", "view", "pos", T0, 42, 0, 0, NULL, NULL, NULL, NULL, SCRM_NOTFOUND, "customer 42 does not exist"},
	};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(bad); i++) {
		scrm_event b = SCRM_EVENT_INIT;
		b.key = bad[i].key;
		b.type = bad[i].type;
		b.channel = bad[i].channel;
		b.at_ms = bad[i].at;
		b.customer = bad[i].customer;
		b.has_amount = bad[i].has_amount;
		b.amount = bad[i].amount;
		b.currency = bad[i].currency;
		b.refund_of = bad[i].refund_of;
		b.items_json = bad[i].items;
		b.props_json = bad[i].props;
		int rc = scrm_profile_event_add(db, &b, NULL, NULL);
		ck_assert_msg(rc == bad[i].rc, "case %zu: %d (%s)", i, rc, scrm_errmsg(db));
		ck_assert_msg(strstr(scrm_errmsg(db), bad[i].msg), "case %zu: '%s' lacks '%s'", i,
			      scrm_errmsg(db), bad[i].msg);
	}
	/* Identifiers: NULL arrays, too many, both ways of naming. */
	scrm_event b = SCRM_EVENT_INIT;
	b.key = "K3";
	b.type = "view";
	b.channel = "pos";
	b.n_ids = 1;
	tu_assert_rc(db, scrm_profile_event_add(db, &b, NULL, NULL), SCRM_MISUSE);
	b.n_ids = 65;
	const char *kinds[65], *values[65];
	for (int i = 0; i < 65; i++)
		kinds[i] = "member_card", values[i] = "M";
	b.id_kinds = kinds;
	b.id_values = values;
	tu_assert_rc(db, scrm_profile_event_add(db, &b, NULL, NULL), SCRM_LIMIT);
	b.n_ids = 1;
	b.customer = c;
	tu_assert_rc(db, scrm_profile_event_add(db, &b, NULL, NULL), SCRM_INVALID);
	/* Oversized items. */
	char *items = malloc(70000);
	memset(items, ' ', 69999);
	items[0] = '[';
	items[69998] = ']';
	items[69999] = '\0';
	b.n_ids = 0;
	b.items_json = items;
	tu_assert_rc(db, scrm_profile_event_add(db, &b, NULL, NULL), SCRM_LIMIT);
	free(items);
	/* Nothing but the first event was stored. */
	ck_assert_int_eq(fig(db, c, "events"), 1);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM event"), 1);
	/* Read-only handle. */
	scrm_db_close(db);
	db = tu_open(tu_path("e.db"), SCRM_OPEN_READONLY);
	e.key = "K9";
	tu_assert_rc(db, scrm_profile_event_add(db, &e, NULL, NULL), SCRM_READONLY);
	ck_assert_int_eq(fig(db, c, "events"), 1);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_idempotency)
{
	scrm_db *db = open_db("e.db");
	int64_t a = obs(db, "member_card", "MA");
	int64_t b = obs(db, "member_card", "MB");
	tu_assert_ok(db, order(db, "T1", "pos", a, 1000, "CNY", T0));
	int64_t first = g_event;
	/* The same key on the same channel: stored once, even with other content
	 * or another customer; the outputs name the stored event. */
	tu_assert_rc(db, order(db, "T1", "pos", b, 5000, "USD", T0 + 5), SCRM_DUPLICATE);
	ck_assert_int_eq(g_event, first);
	ck_assert_int_eq(g_cust, a);
	tu_assert_contains(scrm_errmsg(db), "already recorded");
	tu_assert_rc(db, view_ev(db, "T1", "pos", a, T0), SCRM_DUPLICATE);
	/* A duplicate brought by identifiers observes nothing. */
	int64_t before = tu_sql_int(db, "SELECT count(*) FROM identity_customers");
	tu_assert_rc(db, ev(db, "{\"key\":\"T1\",\"type\":\"view\",\"channel\":\"pos\",\"at\":1,"
				"\"ids\":{\"member_card\":\"MNEW\"}}"), SCRM_DUPLICATE);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM identity_customers"), before);
	/* A duplicate refund is a duplicate, not a refund above the order. */
	tu_assert_ok(db, refund(db, "R1", "pos", a, "T1", 1000, "CNY", T0 + 1));
	tu_assert_rc(db, refund(db, "R1", "pos", a, "T1", 1000, "CNY", T0 + 1), SCRM_DUPLICATE);
	/* The same key on another channel is another event. */
	tu_assert_ok(db, order(db, "T1", "tmall", a, 1000, "CNY", T0));
	ck_assert_int_ne(g_event, first);
	ck_assert_int_eq(fig(db, a, "orders"), 2);
	ck_assert_int_eq(fig(db, a, "events"), 3);
	ck_assert_int_eq(fig2(db, a, "net_spend", "CNY"), 1000);
	ck_assert_int_eq(fig(db, b, "events"), 0);
	/* Replaying for an unknown or erased customer is still a duplicate. */
	tu_assert_rc(db, order(db, "T1", "pos", 999, 1000, "CNY", T0), SCRM_DUPLICATE);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------------ refunds */

START_TEST(test_refunds)
{
	scrm_db *db = open_db("e.db");
	int64_t a = obs(db, "member_card", "MA");
	int64_t b = obs(db, "member_card", "MB");
	tu_assert_ok(db, order(db, "T1", "pos", a, 10000, "CNY", T0));
	tu_assert_ok(db, refund(db, "R1", "pos", a, "T1", 3000, "CNY", T0 + 10));
	/* Capped by what is left: 7000. */
	tu_assert_rc(db, refund(db, "R2", "pos", a, "T1", 7001, "CNY", T0 + 20), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "refund of 7001 exceeds what is left of order 'T1' (7000 of 10000)");
	tu_assert_ok(db, refund(db, "R2", "pos", a, "T1", 7000, "CNY", T0 + 20));
	tu_assert_rc(db, refund(db, "R3", "pos", a, "T1", 1, "CNY", T0 + 30), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "(0 of 10000)");
	ck_assert_int_eq(fig2(db, a, "net_spend", "CNY"), 0);
	ck_assert_int_eq(fig2(db, a, "avg_order_value", "CNY"), 0);
	ck_assert_int_eq(fig(db, a, "refunds"), 2);
	ck_assert_int_eq(fig(db, a, "orders"), 1);

	tu_assert_ok(db, order(db, "T2", "pos", a, 5000, "USD", T0 + 40));
	tu_assert_rc(db, refund(db, "R4", "pos", a, "T2", 100, "CNY", T0 + 50), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "refund currency CNY does not match the currency USD of order 'T2'");
	/* Unknown order, an order on another channel, a refund of a view. */
	tu_assert_rc(db, refund(db, "R5", "pos", a, "NOPE", 100, "USD", T0), SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(db), "no order 'NOPE' on channel 'pos'");
	tu_assert_rc(db, refund(db, "R5", "tmall", a, "T2", 100, "USD", T0), SCRM_NOTFOUND);
	tu_assert_ok(db, view_ev(db, "V1", "pos", a, T0));
	tu_assert_rc(db, refund(db, "R5", "pos", a, "V1", 100, "USD", T0), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "is a view, not an order");
	/* A refund names the order's customer. */
	tu_assert_rc(db, refund(db, "R5", "pos", b, "T2", 100, "USD", T0), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "belongs to customer");
	/* Through identifiers: observing would write, then the mismatch is
	 * refused and nothing of it is left. */
	int64_t n_before = tu_sql_int(db, "SELECT count(*) FROM identity_customers");
	tu_assert_rc(db, ev(db, "{\"key\":\"R6\",\"type\":\"refund\",\"channel\":\"pos\",\"at\":1,"
				"\"ids\":{\"member_card\":\"MZ\"},\"amount\":100,\"currency\":\"USD\","
				"\"refund_of\":\"T2\"}"), SCRM_INVALID);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM identity_customers"), n_before);
	EV_OK(db, "{\"key\":\"R6\",\"type\":\"refund\",\"channel\":\"pos\",\"at\":1,"
		  "\"ids\":{\"member_card\":\"MA\"},\"amount\":100,\"currency\":\"USD\","
		  "\"refund_of\":\"T2\"}");
	ck_assert_int_eq(g_cust, a);
	ck_assert_int_eq(fig2(db, a, "net_spend", "USD"), 4900);
	ck_assert_int_eq(fig2(db, a, "net_spend", "CNY"), 0);
	/* events_json shows the order's key. */
	char *out = NULL;
	tu_assert_ok(db, scrm_profile_events_json(db, a, T0 + 10, 1, &out));
	ck_assert_ptr_nonnull(out);
	scrm_free(out);
	tu_assert_ok(db, scrm_profile_events_json(db, a, 0, 0, &out));
	tu_assert_contains(out, "\"key\":\"R2\",\"type\":\"refund\",\"channel\":\"pos\",\"at\":1767225600020,"
				"\"amount\":7000,\"currency\":\"CNY\",\"refund_of\":\"T1\"");
	scrm_free(out);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_figures)
{
	scrm_db *db = open_db("e.db");
	int64_t a = obs(db, "member_card", "MA");
	ck_assert_int_eq(fig(db, a, "events"), 0);
	ck_assert_int_eq(fig(db, a, "first_seen"), -1);
	/* Out of order times: first/last are min/max. */
	tu_assert_ok(db, view_ev(db, "V1", "tmall", a, T0 + 5 * DAY));
	tu_assert_ok(db, order(db, "O1", "pos", a, 100, "CNY", T0 + 2 * DAY));
	tu_assert_ok(db, order(db, "O2", "pos", a, 100, "CNY", T0 + 3 * DAY));
	tu_assert_ok(db, order(db, "O3", "wecom", a, 101, "CNY", T0 + 1 * DAY));
	tu_assert_ok(db, order(db, "O4", "pos", a, 999, "USD", T0 + 4 * DAY));
	tu_assert_ok(db, view_ev(db, "V2", "tmall", a, T0 + 6 * DAY));
	tu_assert_ok(db, view_ev(db, "V3", "tmall", a, T0));
	cJSON *p = profile(db, a, 0);
	const cJSON *f = jget(p, "figures");
	ck_assert_int_eq(jint(f, "events"), 7);
	ck_assert_int_eq(jint(f, "first_seen"), T0);
	ck_assert_int_eq(jint(f, "last_seen"), T0 + 6 * DAY);
	ck_assert_int_eq(jint(f, "orders"), 4);
	ck_assert_int_eq(jint(f, "refunds"), 0);
	ck_assert_int_eq(jint(f, "first_order"), T0 + DAY);
	ck_assert_int_eq(jint(f, "last_order"), T0 + 4 * DAY);
	ck_assert_int_eq(jint(jget(f, "last_seen_by_channel"), "pos"), T0 + 4 * DAY);
	ck_assert_int_eq(jint(jget(f, "last_seen_by_channel"), "tmall"), T0 + 6 * DAY);
	ck_assert_int_eq(jint(jget(f, "last_seen_by_channel"), "wecom"), T0 + DAY);
	char *ch = cJSON_PrintUnformatted(jget(f, "channels"));
	ck_assert_str_eq(ch, "[\"pos\",\"tmall\",\"wecom\"]");
	free(ch);
	ck_assert_int_eq(jint(jget(f, "net_spend"), "CNY"), 301);
	ck_assert_int_eq(jint(jget(f, "net_spend"), "USD"), 999);
	/* 301 / 3 rounds toward zero. */
	ck_assert_int_eq(jint(jget(f, "avg_order_value"), "CNY"), 100);
	ck_assert_int_eq(jint(jget(f, "avg_order_value"), "USD"), 999);
	ck_assert_int_eq(jint(p, "customer"), a);
	ck_assert(cJSON_IsFalse(jget(p, "erased")));
	ck_assert(jnull(p, "rfm"));
	cJSON_Delete(p);
	/* event_stats: count of the type, sum in a currency. */
	int64_t n = -1, s = -1;
	tu_assert_ok(db, scrm_profile_event_stats(db, a, "order", 0, NULL, &n, &s));
	ck_assert_int_eq(n, 4);
	ck_assert_int_eq(s, 301);
	tu_assert_ok(db, scrm_profile_event_stats(db, a, "order", T0 + 2 * DAY, "USD", &n, &s));
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(s, 999);
	tu_assert_ok(db, scrm_profile_event_stats(db, a, "view", 0, NULL, &n, NULL));
	ck_assert_int_eq(n, 3);
	tu_assert_ok(db, scrm_profile_event_stats(db, a, "coupon_redeem", 0, NULL, NULL, &s));
	ck_assert_int_eq(s, 0);
	tu_assert_rc(db, scrm_profile_event_stats(db, a, "Order", 0, NULL, &n, &s), SCRM_INVALID);
	tu_assert_rc(db, scrm_profile_event_stats(db, a, "order", 0, "usd", &n, &s), SCRM_INVALID);
	tu_assert_rc(db, scrm_profile_event_stats(db, a, NULL, 0, NULL, &n, &s), SCRM_MISUSE);
	tu_assert_rc(db, scrm_profile_event_stats(db, 77, "order", 0, NULL, &n, &s), SCRM_NOTFOUND);
	/* Profile errors. */
	char *out = (char *)&out;
	tu_assert_rc(db, scrm_profile_json(db, 77, 0, &out), SCRM_NOTFOUND);
	ck_assert_ptr_null(out);
	tu_assert_rc(db, scrm_profile_json(db, a, 0x4, &out), SCRM_INVALID);
	tu_assert_rc(db, scrm_profile_json(db, a, 0, NULL), SCRM_MISUSE);
	tu_assert_rc(db, scrm_profile_json(NULL, a, 0, &out), SCRM_MISUSE);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_money_overflow)
{
	scrm_db *db = open_db("e.db");
	int64_t a = obs(db, "member_card", "MA");
	char key[32];
	int rc = SCRM_OK;
	/* 10^15 each: the 9224th order would overflow the int64 sum. */
	tu_assert_ok(db, scrm_db_begin(db));
	int i;
	for (i = 0; i < 9300 && rc == SCRM_OK; i++) {
		snprintf(key, sizeof key, "O%d", i);
		rc = order(db, key, "pos", a, INT64_C(1000000000000000), "CNY", T0);
	}
	ck_assert_int_eq(rc, SCRM_RANGE);
	tu_assert_contains(scrm_errmsg(db), "would overflow int64");
	/* It failed after writing: the batch is rolled back. */
	tu_assert_rc(db, scrm_db_commit(db), SCRM_STATE);
	ck_assert_int_eq(fig(db, a, "events"), 0);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------ merge effects */

/* The merge log id of the last merge touching `customer`. */
static int64_t last_merge(scrm_db *db, int64_t customer)
{
	char *h = NULL;
	tu_assert_ok(db, scrm_identity_history_json(db, customer, &h));
	cJSON *j = parse(h);
	scrm_free(h);
	int64_t id = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, j)
		if (strcmp(jstr(it, "op"), "merge") == 0)
			id = jint(it, "id");
	cJSON_Delete(j);
	ck_assert_int_gt(id, 0);
	return id;
}

START_TEST(test_merge_sums_figures)
{
	scrm_db *db = open_db("m.db");
	/* Two customers, events for each through their identifiers. */
	EV_OK(db, "{\"key\":\"A1\",\"type\":\"order\",\"channel\":\"pos\",\"at\":%lld,"
		  "\"ids\":{\"phone\":\"%s\"},\"amount\":1000,\"currency\":\"CNY\"}", (long long)T0, P1);
	int64_t a = g_cust;
	EV_OK(db, "{\"key\":\"A2\",\"type\":\"view\",\"channel\":\"tmall\",\"at\":%lld,"
		  "\"ids\":{\"phone\":\"%s\"}}", (long long)(T0 + 5 * DAY), P1);
	EV_OK(db, "{\"key\":\"B1\",\"type\":\"order\",\"channel\":\"wecom\",\"at\":%lld,"
		  "\"ids\":{\"wechat_unionid\":\"oB\"},\"amount\":2500,\"currency\":\"CNY\"}",
	      (long long)(T0 + DAY));
	int64_t b = g_cust;
	EV_OK(db, "{\"key\":\"B2\",\"type\":\"order\",\"channel\":\"wecom\",\"at\":%lld,"
		  "\"ids\":{\"wechat_unionid\":\"oB\"},\"amount\":300,\"currency\":\"USD\"}",
	      (long long)(T0 + 2 * DAY));
	tu_assert_ok(db, refund(db, "BR", "wecom", b, "B1", 500, "CNY", T0 + 3 * DAY));
	ck_assert_int_ne(a, b);
	char *fa = figures_text(db, a), *fb = figures_text(db, b);
	/* An observation linking them merges b into a. */
	int64_t m = obs2(db, "phone", P1, "wechat_unionid", "oB");
	ck_assert_int_eq(m, a);
	ck_assert_int_eq(canon(db, b), a);
	cJSON *p = profile(db, b, 0); /* any id shows the survivor */
	ck_assert_int_eq(jint(p, "customer"), a);
	const cJSON *f = jget(p, "figures");
	ck_assert_int_eq(jint(f, "events"), 5);
	ck_assert_int_eq(jint(f, "orders"), 3);
	ck_assert_int_eq(jint(f, "refunds"), 1);
	ck_assert_int_eq(jint(f, "first_seen"), T0);
	ck_assert_int_eq(jint(f, "last_seen"), T0 + 5 * DAY);
	ck_assert_int_eq(jint(f, "first_order"), T0);
	ck_assert_int_eq(jint(f, "last_order"), T0 + 2 * DAY);
	ck_assert_int_eq(jint(jget(f, "net_spend"), "CNY"), 3000);
	ck_assert_int_eq(jint(jget(f, "net_spend"), "USD"), 300);
	ck_assert_int_eq(jint(jget(f, "avg_order_value"), "CNY"), 1500);
	ck_assert_int_eq(jint(jget(f, "last_seen_by_channel"), "wecom"), T0 + 3 * DAY);
	cJSON_Delete(p);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM profile_figures"), 1);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(DISTINCT customer) FROM event"), 1);
	/* Later events by the absorbed identifier go to the survivor. */
	EV_OK(db, "{\"key\":\"B3\",\"type\":\"view\",\"channel\":\"wecom\",\"at\":%lld,"
		  "\"ids\":{\"wechat_unionid\":\"oB\"}}", (long long)(T0 + 6 * DAY));
	ck_assert_int_eq(g_cust, a);
	/* Named by the absorbed id, too. */
	tu_assert_ok(db, view_ev(db, "B4", "pos", b, T0 + 7 * DAY));
	ck_assert_int_eq(g_cust, a);
	ck_assert_int_eq(fig(db, a, "events"), 7);

	/* Unmerge: each side gets back its own; the later events follow their
	 * identifier and the id they named. */
	tu_assert_ok(db, scrm_identity_unmerge(db, last_merge(db, a), "wrong", NULL));
	ck_assert_int_eq(canon(db, b), b);
	ck_assert_int_eq(fig(db, a, "events"), 2);
	ck_assert_int_eq(fig(db, b, "events"), 5);
	char *fa2 = figures_text(db, a);
	ck_assert_str_eq(fa2, fa);
	ck_assert_int_eq(fig2(db, b, "net_spend", "CNY"), 2000);
	ck_assert_int_eq(fig2(db, b, "net_spend", "USD"), 300);
	ck_assert_int_eq(fig(db, b, "last_seen"), T0 + 7 * DAY);
	ck_assert_int_eq(fig(db, b, "first_seen"), T0 + DAY);
	char *fb2 = figures_text(db, b);
	ck_assert_str_ne(fb2, fb); /* b has two events more */
	free(fb2);
	/* And new events keep following their identifiers. */
	EV_OK(db, "{\"key\":\"B5\",\"type\":\"view\",\"channel\":\"wecom\",\"at\":%lld,"
		  "\"ids\":{\"wechat_unionid\":\"oB\"}}", (long long)(T0 + 8 * DAY));
	ck_assert_int_eq(g_cust, b);
	EV_OK(db, "{\"key\":\"A3\",\"type\":\"view\",\"channel\":\"wecom\",\"at\":%lld,"
		  "\"ids\":{\"phone\":\"%s\"}}", (long long)(T0 + 8 * DAY), P1);
	ck_assert_int_eq(g_cust, a);
	free(fa);
	free(fa2);
	free(fb);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_unmerge_refund_follows_order)
{
	scrm_db *db = open_db("m.db");
	int64_t a = obs(db, "wechat_openid", "MA");
	int64_t b = obs(db, "wechat_openid", "MB");
	tu_assert_ok(db, order(db, "O1", "pos", b, 1000, "CNY", T0));
	int64_t mid = 0;
	tu_assert_ok(db, scrm_identity_merge(db, a, b, "test", &mid));
	/* The refund names the survivor (the order's customer now). */
	tu_assert_ok(db, refund(db, "R1", "pos", a, "O1", 400, "CNY", T0 + 1));
	tu_assert_ok(db, order(db, "O2", "pos", a, 70, "CNY", T0 + 2));
	ck_assert_int_eq(fig2(db, a, "net_spend", "CNY"), 670);
	tu_assert_ok(db, scrm_identity_unmerge(db, mid, NULL, NULL));
	/* The refund went with its order to b, though it named a. */
	ck_assert_int_eq(fig2(db, b, "net_spend", "CNY"), 600);
	ck_assert_int_eq(fig(db, b, "refunds"), 1);
	ck_assert_int_eq(fig2(db, a, "net_spend", "CNY"), 70);
	ck_assert_int_eq(fig(db, a, "refunds"), 0);
	/* The refund (naming a) now lives with b. Undoing another merge of b
	 * keeps it with its order, not with the customer it named (found by the
	 * property test). */
	int64_t c = obs(db, "wechat_openid", "MC");
	tu_assert_ok(db, scrm_identity_merge(db, b, c, NULL, &mid));
	tu_assert_ok(db, scrm_identity_unmerge(db, mid, NULL, NULL));
	ck_assert_int_eq(fig(db, b, "refunds"), 1);
	ck_assert_int_eq(fig2(db, b, "net_spend", "CNY"), 600);
	ck_assert_int_eq(fig(db, a, "refunds"), 0);
	ck_assert_int_eq(fig(db, a, "events"), 1);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM event r JOIN event o ON o.id = r.refund_of "
					"WHERE r.customer <> o.customer"), 0);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_merge_without_profile_data)
{
	scrm_db *db = open_db("m.db");
	int64_t a = obs(db, "wechat_openid", "MA");
	int64_t b = obs(db, "wechat_openid", "MB");
	int64_t mid = 0;
	tu_assert_ok(db, scrm_identity_merge(db, a, b, NULL, &mid));
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM profile_figures"), 0);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM event"), 0);
	tu_assert_ok(db, scrm_identity_unmerge(db, mid, NULL, NULL));
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM profile_figures"), 0);
	/* The listener's work uses indexes only. */
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(scrm__sqlite(db),
					    "EXPLAIN QUERY PLAN UPDATE event SET customer = 1 WHERE customer = 2",
					    -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	tu_assert_contains((const char *)sqlite3_column_text(st, 3), "INDEX event_customer");
	sqlite3_finalize(st);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_merge_attributes_consent)
{
	scrm_db *db = open_db("m.db");
	int64_t a = obs(db, "wechat_openid", "MA");
	int64_t b = obs(db, "wechat_openid", "MB");
	tu_assert_ok(db, scrm_profile_set_json(db, a, "{\"name\":\"A\",\"level\":1}"));
	clk.now += 1000;
	tu_assert_ok(db, scrm_profile_set_json(db, b, "{\"name\":\"B\",\"store\":\"SH\"}"));
	tu_assert_ok(db, scrm_profile_consent_set(db, a, "marketing", 1, T0 + 10, "pos"));
	tu_assert_ok(db, scrm_profile_consent_set(db, b, "marketing", 0, T0 + 20, "wecom"));
	int64_t mid = 0;
	tu_assert_ok(db, scrm_identity_merge(db, a, b, NULL, &mid));
	/* Over both ids, the most recent record wins. */
	cJSON *p = profile(db, a, 0);
	const cJSON *at = jget(p, "attributes");
	ck_assert_str_eq(jstr(at, "name"), "B");
	ck_assert_int_eq(jint(at, "level"), 1);
	ck_assert_str_eq(jstr(at, "store"), "SH");
	ck_assert(cJSON_IsFalse(jget(jget(jget(p, "consent"), "marketing"), "granted")));
	cJSON_Delete(p);
	int g = -1;
	tu_assert_ok(db, scrm_profile_consent_get(db, b, "marketing", &g));
	ck_assert_int_eq(g, 0);
	/* Setting on the merged customer replaces every id's value. */
	clk.now += 1000;
	tu_assert_ok(db, scrm_profile_set_json(db, b, "{\"name\":\"AB\"}"));
	char *v = NULL;
	tu_assert_ok(db, scrm_profile_get(db, a, "name", &v));
	ck_assert_str_eq(v, "\"AB\"");
	scrm_free(v);
	tu_assert_ok(db, scrm_profile_unset(db, a, "store"));
	tu_assert_rc(db, scrm_profile_get(db, b, "store", &v), SCRM_NOTFOUND);
	/* Unmerge: each keeps what was recorded on it. */
	tu_assert_ok(db, scrm_identity_unmerge(db, mid, NULL, NULL));
	tu_assert_ok(db, scrm_profile_get(db, a, "name", &v));
	ck_assert_str_eq(v, "\"AB\"");
	scrm_free(v);
	tu_assert_ok(db, scrm_profile_get(db, a, "level", &v));
	ck_assert_str_eq(v, "1");
	scrm_free(v);
	tu_assert_rc(db, scrm_profile_get(db, b, "name", &v), SCRM_NOTFOUND);
	tu_assert_ok(db, scrm_profile_consent_get(db, a, "marketing", &g));
	ck_assert_int_eq(g, 1);
	tu_assert_ok(db, scrm_profile_consent_get(db, b, "marketing", &g));
	ck_assert_int_eq(g, 0);
	scrm_db_close(db);
}
END_TEST

/* --------------------------------------------------------------------- RFM */

/* n customers; orders[i] is "amount@days-before-now" list handled by caller. */
static int64_t cust(scrm_db *db, int i)
{
	char card[16];
	snprintf(card, sizeof card, "C%04d", i);
	return obs(db, "member_card", card);
}

static void rfm_order(scrm_db *db, int64_t c, int64_t amount, int64_t at)
{
	static int seq;
	char key[32];
	snprintf(key, sizeof key, "RO%d", ++seq);
	tu_assert_ok(db, order(db, key, "pos", c, amount, "CNY", at));
}

static void refresh(scrm_db *db, int64_t now)
{
	char *sum = NULL;
	tu_assert_ok(db, scrm_profile_rfm_refresh(db, now, &sum));
	ck_assert_ptr_nonnull(sum);
	scrm_free(sum);
}

START_TEST(test_rfm_quintiles_ties)
{
	scrm_db *db = open_db("r.db");
	int64_t now = T0 + 100 * DAY;
	/* Ten customers; monetary 100,100,200,300,300,300,400,500,600,700. */
	int64_t m[10] = {100, 100, 200, 300, 300, 300, 400, 500, 600, 700};
	int64_t c[10];
	for (int i = 0; i < 10; i++) {
		c[i] = cust(db, i);
		rfm_order(db, c[i], m[i], now - (i % 3) * DAY);
	}
	ck_assert_int_eq(rfm(db, c[0], "m"), -2); /* null before a refresh */
	refresh(db, now);
	/* score = 1 + floor(5 * strictly_smaller / 10) */
	int smaller[10] = {0, 0, 2, 3, 3, 3, 6, 7, 8, 9};
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(rfm(db, c[i], "monetary"), m[i]);
		ck_assert_int_eq(rfm(db, c[i], "m"), 1 + 5 * smaller[i] / 10);
		/* All have frequency 1: none strictly smaller. */
		ck_assert_int_eq(rfm(db, c[i], "f"), 1);
		/* Recency 0, 1 or 2 days; recent is good. */
		int64_t rd = i % 3;
		ck_assert_int_eq(rfm(db, c[i], "recency_days"), rd);
		int greater = rd == 0 ? 6 : rd == 1 ? 3 : 0; /* days 0:4 custs, 1:3, 2:3 */
		ck_assert_int_eq(rfm(db, c[i], "r"), 1 + 5 * greater / 10);
	}
	ck_assert_int_eq(rfm(db, c[0], "refreshed_at"), now);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_rfm_small_populations)
{
	scrm_db *db = open_db("r.db");
	int64_t now = T0 + 100 * DAY;
	/* One customer: every score 1. */
	int64_t a = cust(db, 0);
	rfm_order(db, a, 500, now - DAY);
	refresh(db, now);
	ck_assert_int_eq(rfm(db, a, "r"), 1);
	ck_assert_int_eq(rfm(db, a, "f"), 1);
	ck_assert_int_eq(rfm(db, a, "m"), 1);
	/* N = 3: 1 + floor(5k/3) for k = 0, 1, 2 gives 1, 2, 4. */
	int64_t b = cust(db, 1), c = cust(db, 2);
	rfm_order(db, b, 600, now - 2 * DAY);
	rfm_order(db, b, 1, now - 3 * DAY);
	rfm_order(db, c, 900, now - 3 * DAY);
	rfm_order(db, c, 1, now - 4 * DAY);
	rfm_order(db, c, 1, now - 5 * DAY);
	refresh(db, now);
	ck_assert_int_eq(rfm(db, a, "m"), 1);
	ck_assert_int_eq(rfm(db, b, "m"), 2);
	ck_assert_int_eq(rfm(db, c, "m"), 4);
	ck_assert_int_eq(rfm(db, a, "f"), 1);
	ck_assert_int_eq(rfm(db, b, "f"), 2);
	ck_assert_int_eq(rfm(db, c, "f"), 4);
	ck_assert_int_eq(rfm(db, a, "r"), 4); /* 1 day: two are less recent */
	ck_assert_int_eq(rfm(db, b, "r"), 2);
	ck_assert_int_eq(rfm(db, c, "r"), 1);
	/* A customer without orders has no scores. */
	int64_t d = cust(db, 3);
	tu_assert_ok(db, view_ev(db, "DV", "pos", d, now));
	int64_t e = cust(db, 4);
	refresh(db, now);
	ck_assert_int_eq(rfm(db, d, "r"), -1);
	ck_assert_int_eq(rfm(db, d, "m"), -1);
	ck_assert_int_eq(rfm(db, d, "recency_days"), -1);
	ck_assert_int_eq(rfm(db, d, "frequency"), 0);
	ck_assert_int_eq(rfm(db, d, "monetary"), 0);
	ck_assert_int_eq(rfm(db, e, "f"), -1);
	/* No orders at all: every score null. */
	scrm_db_close(db);
	db = open_db("r2.db");
	a = cust(db, 0);
	tu_assert_ok(db, view_ev(db, "V", "pos", a, now));
	char *sum = NULL;
	tu_assert_ok(db, scrm_profile_rfm_refresh(db, now, &sum));
	cJSON *s = parse(sum);
	scrm_free(sum);
	ck_assert_int_eq(jint(s, "customers"), 1);
	ck_assert_int_eq(jint(s, "scored"), 0);
	cJSON_Delete(s);
	ck_assert_int_eq(rfm(db, a, "m"), -1);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_rfm_window)
{
	scrm_db *db = open_db("r.db");
	int64_t now = T0 + 400 * DAY;
	tu_assert_ok(db, scrm_profile_config_set(db, "{\"rfm_window_days\":30}"));
	int64_t a = cust(db, 0), b = cust(db, 1), c = cust(db, 2), d = cust(db, 3);
	tu_assert_ok(db, order(db, "A1", "pos", a, 100, "CNY", now - 30 * DAY)); /* boundary: in */
	tu_assert_ok(db, order(db, "B1", "pos", b, 100, "CNY", now - 30 * DAY - 1)); /* outside */
	tu_assert_ok(db, order(db, "C1", "pos", c, 100, "CNY", now));      /* now: in */
	tu_assert_ok(db, order(db, "D1", "pos", d, 100, "CNY", now + 1));  /* the future: out */
	/* Refunds recorded by now reduce M; orders in another currency count in F only. */
	tu_assert_ok(db, refund(db, "RF", "pos", a, "A1", 30, "CNY", now - DAY));
	tu_assert_ok(db, order(db, "A2", "pos", a, 5000, "CNY", now - DAY));
	tu_assert_ok(db, order(db, "USD1", "pos", c, 9999, "USD", now - 2 * DAY));
	refresh(db, now);
	ck_assert_int_eq(rfm(db, a, "frequency"), 2);
	ck_assert_int_eq(rfm(db, a, "monetary"), 5070);
	ck_assert_int_eq(rfm(db, a, "recency_days"), 1);
	ck_assert_int_eq(rfm(db, b, "frequency"), 0);
	ck_assert_int_eq(rfm(db, b, "m"), -1);
	ck_assert_int_eq(rfm(db, c, "frequency"), 2);
	ck_assert_int_eq(rfm(db, c, "monetary"), 100);
	ck_assert_int_eq(rfm(db, c, "recency_days"), 0);
	ck_assert_int_eq(rfm(db, d, "frequency"), 0);
	/* With a refund recorded after `now`, M is as of now. */
	tu_assert_ok(db, refund(db, "RF2", "pos", c, "C1", 50, "CNY", now + DAY));
	refresh(db, now);
	ck_assert_int_eq(rfm(db, c, "monetary"), 100);
	refresh(db, now + DAY);
	ck_assert_int_eq(rfm(db, c, "monetary"), 50);
	/* Recency is floored: 1 ms short of a day is 0 days. */
	refresh(db, now + DAY - 1 + 0);
	ck_assert_int_eq(rfm(db, c, "recency_days"), 0);
	/* Summary and errors. */
	char *sum = NULL;
	tu_assert_ok(db, scrm_profile_rfm_refresh(db, now, &sum));
	cJSON *s = parse(sum);
	scrm_free(sum);
	ck_assert_int_eq(jint(s, "customers"), 4);
	ck_assert_int_eq(jint(s, "scored"), 2);
	ck_assert_int_eq(jint(s, "refreshed_at"), now);
	ck_assert(cJSON_IsNumber(jget(s, "seconds")));
	ck_assert(cJSON_IsObject(jget(s, "lifecycle")));
	cJSON_Delete(s);
	tu_assert_rc(db, scrm_profile_rfm_refresh(db, -1, &sum), SCRM_RANGE);
	ck_assert_ptr_null(sum);
	tu_assert_ok(db, scrm_profile_rfm_refresh(db, 0, NULL)); /* the handle's clock */
	ck_assert_int_eq(rfm(db, a, "refreshed_at"), clk.now);
	scrm_db_close(db);
}
END_TEST

/* Scores equal a brute-force reading of SPEC.md over a random population. */
START_TEST(test_rfm_brute_force)
{
	scrm_db *db = open_db("r.db");
	int64_t now = T0 + 200 * DAY;
	enum { N = 60 };
	int64_t c[N], f[N] = {0}, m[N] = {0}, last[N];
	uint64_t x = 12345;
	tu_assert_ok(db, scrm_db_begin(db));
	for (int i = 0; i < N; i++) {
		c[i] = cust(db, i);
		last[i] = -1;
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		int orders = (int)(x >> 60) % 4; /* 0..3 */
		for (int k = 0; k < orders; k++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			int64_t amount = 100 * (int64_t)((x >> 33) % 5 + 1);
			int64_t at = now - (int64_t)((x >> 20) % 500) * DAY / 2;
			rfm_order(db, c[i], amount, at);
			if (at >= now - 365 * DAY) {
				f[i]++;
				m[i] += amount;
				if (at > last[i])
					last[i] = at;
			}
		}
	}
	tu_assert_ok(db, scrm_db_commit(db));
	refresh(db, now);
	int n = 0;
	for (int i = 0; i < N; i++)
		n += f[i] > 0;
	for (int i = 0; i < N; i++) {
		if (!f[i]) {
			ck_assert_int_eq(rfm(db, c[i], "m"), -1);
			continue;
		}
		int sm = 0, sf = 0, gr = 0;
		int64_t rd = (now - last[i]) / DAY;
		for (int j = 0; j < N; j++) {
			if (!f[j])
				continue;
			sm += m[j] < m[i];
			sf += f[j] < f[i];
			gr += (now - last[j]) / DAY > rd;
		}
		ck_assert_int_eq(rfm(db, c[i], "m"), 1 + 5 * sm / n);
		ck_assert_int_eq(rfm(db, c[i], "f"), 1 + 5 * sf / n);
		ck_assert_int_eq(rfm(db, c[i], "r"), 1 + 5 * gr / n);
		ck_assert_int_eq(rfm(db, c[i], "recency_days"), rd);
	}
	scrm_db_close(db);
}
END_TEST

/* --------------------------------------------------------------- lifecycle */

START_TEST(test_lifecycle)
{
	scrm_db *db = open_db("l.db");
	tu_assert_ok(db, scrm_profile_config_set(
				 db, "{\"lifecycle\":{\"new_days\":10,\"active_days\":20,\"at_risk_days\":30,"
				     "\"dormant_days\":40}}"));
	char *cfg = NULL;
	tu_assert_ok(db, scrm_profile_config_json(db, &cfg));
	ck_assert_str_eq(cfg, "{\"rfm_window_days\":365,\"currency\":\"CNY\",\"lifecycle\":{"
			      "\"new_days\":10,\"active_days\":20,\"at_risk_days\":30,\"dormant_days\":40}}");
	scrm_free(cfg);
	int64_t a = cust(db, 0); /* created at T0 */
	/* Never ordered, no events: by the time since its creation. */
	clk.now = T0 + 10 * DAY - 1;
	ck_assert_str_eq(lifecycle(db, a), "new");
	clk.now = T0 + 10 * DAY;
	ck_assert_str_eq(lifecycle(db, a), "active");
	clk.now = T0 + 20 * DAY;
	ck_assert_str_eq(lifecycle(db, a), "at_risk");
	clk.now = T0 + 30 * DAY;
	ck_assert_str_eq(lifecycle(db, a), "dormant");
	clk.now = T0 + 40 * DAY;
	ck_assert_str_eq(lifecycle(db, a), "lost");
	/* Never ordered, with events: by the first event. */
	tu_assert_ok(db, view_ev(db, "V", "pos", a, T0 + 35 * DAY));
	ck_assert_str_eq(lifecycle(db, a), "new");
	/* Ordered: new while the first order is recent, then by the last order. */
	int64_t b = cust(db, 1);
	rfm_order(db, b, 100, T0);
	clk.now = T0 + 10 * DAY - 1;
	ck_assert_str_eq(lifecycle(db, b), "new");
	rfm_order(db, b, 100, T0 + 5 * DAY);
	clk.now = T0 + 10 * DAY;
	ck_assert_str_eq(lifecycle(db, b), "active");
	clk.now = T0 + 25 * DAY - 1;
	ck_assert_str_eq(lifecycle(db, b), "active");
	clk.now = T0 + 25 * DAY;
	ck_assert_str_eq(lifecycle(db, b), "at_risk");
	clk.now = T0 + 35 * DAY;
	ck_assert_str_eq(lifecycle(db, b), "dormant");
	clk.now = T0 + 45 * DAY;
	ck_assert_str_eq(lifecycle(db, b), "lost");
	/* The refresh stores the same stages and counts them. */
	char *sum = NULL;
	tu_assert_ok(db, scrm_profile_rfm_refresh(db, 0, &sum));
	cJSON *s = parse(sum);
	scrm_free(sum);
	ck_assert_int_eq(jint(jget(s, "lifecycle"), "lost"), 1);
	ck_assert_int_eq(jint(jget(s, "lifecycle"), "active"), 1);
	ck_assert_int_eq(jint(jget(s, "lifecycle"), "new"), 0);
	cJSON_Delete(s);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM profile_score WHERE "
					"(customer = 1 AND lifecycle = 'active') OR "
					"(customer = 2 AND lifecycle = 'lost')"), 2);
	/* Thresholds may start at 0: nobody is new then. */
	tu_assert_ok(db, scrm_profile_config_set(db, "{\"lifecycle\":{\"new_days\":0}}"));
	clk.now = T0 + 35 * DAY;
	ck_assert_str_eq(lifecycle(db, a), "active");
	scrm_db_close(db);
}
END_TEST

START_TEST(test_config_errors)
{
	scrm_db *db = open_db("l.db");
	struct {
		const char *json;
		int rc;
		const char *msg;
	} bad[] = {
		{"{\"lifecycle\":{\"new_days\":100}}", SCRM_INVALID, "must increase"},
		{"{\"lifecycle\":{\"active_days\":180}}", SCRM_INVALID, "must increase"},
		{"{\"lifecycle\":{\"new_days\":-1}}", SCRM_RANGE, "new_days = -1"},
		{"{\"lifecycle\":{\"old_days\":1}}", SCRM_INVALID, "unknown field 'old_days'"},
		{"{\"lifecycle\":5}", SCRM_INVALID, "lifecycle must be a JSON object"},
		{"{\"rfm_window_days\":0}", SCRM_RANGE, "rfm_window_days"},
		{"{\"rfm_window_days\":\"365\"}", SCRM_INVALID, "must be an integer"},
		{"{\"currency\":\"yuan\"}", SCRM_INVALID, "ISO 4217"},
		{"{\"window\":3}", SCRM_INVALID, "unknown field 'window'"},
		{"[]", SCRM_INVALID, "must be a JSON object"},
		{"{", SCRM_PARSE, "line 1, column 2"},
	};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(bad); i++) {
		int rc = scrm_profile_config_set(db, bad[i].json);
		ck_assert_msg(rc == bad[i].rc, "case %zu: %d %s", i, rc, scrm_errmsg(db));
		tu_assert_contains(scrm_errmsg(db), bad[i].msg);
	}
	tu_assert_rc(db, scrm_profile_config_set(db, NULL), SCRM_MISUSE);
	tu_assert_rc(db, scrm_profile_config_json(db, NULL), SCRM_MISUSE);
	char *cfg = NULL;
	tu_assert_ok(db, scrm_profile_config_set(db, "{\"currency\":\"USD\",\"rfm_window_days\":90}"));
	tu_assert_ok(db, scrm_profile_config_json(db, &cfg));
	ck_assert_str_eq(cfg, "{\"rfm_window_days\":90,\"currency\":\"USD\",\"lifecycle\":{"
			      "\"new_days\":30,\"active_days\":90,\"at_risk_days\":180,\"dormant_days\":365}}");
	scrm_free(cfg);
	/* event_stats defaults to the configured currency. */
	int64_t a = cust(db, 0);
	tu_assert_ok(db, order(db, "U", "pos", a, 42, "USD", T0));
	int64_t s = 0;
	tu_assert_ok(db, scrm_profile_event_stats(db, a, "order", 0, NULL, NULL, &s));
	ck_assert_int_eq(s, 42);
	scrm_db_close(db);
}
END_TEST

/* -------------------------------------------------------------- attributes */

START_TEST(test_attributes)
{
	scrm_db *db = open_db("a.db");
	int64_t a = cust(db, 0);
	tu_assert_ok(db, scrm_profile_set_json(
				 db, a, "{\"name\":\"王小明\",\"birthday\":\"1990-05-01\",\"tz\":\"Asia/Shanghai\","
					"\"level\":3,\"ratio\":0.25,\"vip\":true,\"tags\":[\"a\",1],"
					"\"addr\":{\"city\":\"上海\"},\"member.level\":\"gold\"}"));
	char *v = NULL;
	static const char *const want[][2] = {
		{"name", "\"王小明\""}, {"birthday", "\"1990-05-01\""}, {"level", "3"}, {"ratio", "0.25"},
		{"vip", "true"}, {"tags", "[\"a\",1]"}, {"addr", "{\"city\":\"上海\"}"},
		{"member.level", "\"gold\""}};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(want); i++) {
		tu_assert_ok(db, scrm_profile_get(db, a, want[i][0], &v));
		ck_assert_str_eq(v, want[i][1]);
		scrm_free(v);
	}
	cJSON *p = profile(db, a, 0);
	const cJSON *at = jget(p, "attributes");
	ck_assert_int_eq(cJSON_GetArraySize(at), 9);
	ck_assert(cJSON_IsTrue(jget(at, "vip")));
	ck_assert_str_eq(jstr(jget(at, "addr"), "city"), "上海");
	cJSON_Delete(p);
	/* null unsets; replacing changes type. */
	tu_assert_ok(db, scrm_profile_set_json(db, a, "{\"vip\":null,\"level\":\"3\"}"));
	tu_assert_rc(db, scrm_profile_get(db, a, "vip", &v), SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(db), "has no attribute 'vip'");
	tu_assert_ok(db, scrm_profile_get(db, a, "level", &v));
	ck_assert_str_eq(v, "\"3\"");
	scrm_free(v);
	tu_assert_ok(db, scrm_profile_unset(db, a, "level"));
	tu_assert_rc(db, scrm_profile_unset(db, a, "level"), SCRM_NOTFOUND);
	/* All or nothing: one bad member changes nothing. */
	struct {
		const char *json;
		int rc;
		const char *msg;
	} bad[] = {
		{"{\"ok\":1,\"birthday\":\"1990-02-30\"}", SCRM_INVALID, "birthday must be a date"},
		{"{\"ok\":1,\"birthday\":\"1990-05-01T00:00:00Z\"}", SCRM_INVALID, "birthday"},
		{"{\"ok\":1,\"birthday\":19900501}", SCRM_INVALID, "birthday"},
		{"{\"ok\":1,\"tz\":\"Shanghai time\"}", SCRM_INVALID, "IANA"},
		{"{\"ok\":1,\"tz\":\"/Asia\"}", SCRM_INVALID, "IANA"},
		{"{\"ok\":1,\"Bad\":1}", SCRM_INVALID, "attribute name 'Bad'"},
		{"{\"ok\":1,\"\":1}", SCRM_INVALID, "attribute name ''"},
		{"[1]", SCRM_INVALID, "must be a JSON object"},
		{"{\"ok\":", SCRM_PARSE, "line 1"},
	};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(bad); i++) {
		int rc = scrm_profile_set_json(db, a, bad[i].json);
		ck_assert_msg(rc == bad[i].rc, "case %zu: %d %s", i, rc, scrm_errmsg(db));
		tu_assert_contains(scrm_errmsg(db), bad[i].msg);
	}
	tu_assert_rc(db, scrm_profile_get(db, a, "ok", &v), SCRM_NOTFOUND);
	tu_assert_ok(db, scrm_profile_set_json(db, a, "{\"tz\":\"America/Argentina/Buenos_Aires\"}"));
	tu_assert_ok(db, scrm_profile_set_json(db, a, "{\"tz\":\"UTC\"}"));
	tu_assert_ok(db, scrm_profile_set_json(db, a, "{}"));
	/* Too many members, an oversized value. */
	scrm_buf b;
	scrm__buf_init(&b, NULL);
	scrm__buf_puts(&b, "{");
	for (int i = 0; i < 257; i++)
		scrm__buf_printf(&b, "%s\"k%d\":%d", i ? "," : "", i, i);
	scrm__buf_puts(&b, "}");
	tu_assert_rc(db, scrm_profile_set_json(db, a, b.data), SCRM_LIMIT);
	scrm__buf_reset(&b);
	char *big = malloc(70010);
	memcpy(big, "{\"x\":\"", 6);
	memset(big + 6, 'x', 70000);
	memcpy(big + 70006, "\"}", 3);
	tu_assert_rc(db, scrm_profile_set_json(db, a, big), SCRM_LIMIT);
	free(big);
	/* Argument errors. */
	tu_assert_rc(db, scrm_profile_set_json(db, 99, "{\"a\":1}"), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_profile_get(db, 99, "a", &v), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_profile_unset(db, 99, "a"), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_profile_get(db, a, "A", &v), SCRM_INVALID);
	tu_assert_rc(db, scrm_profile_get(db, a, NULL, &v), SCRM_MISUSE);
	tu_assert_rc(db, scrm_profile_get(db, a, "a", NULL), SCRM_MISUSE);
	tu_assert_rc(db, scrm_profile_unset(db, a, NULL), SCRM_MISUSE);
	tu_assert_rc(db, scrm_profile_unset(db, a, "A"), SCRM_INVALID);
	tu_assert_rc(db, scrm_profile_set_json(db, a, NULL), SCRM_MISUSE);
	scrm_db_close(db);
}
END_TEST

/* ----------------------------------------------------------------- consent */

START_TEST(test_consent)
{
	scrm_db *db = open_db("c.db");
	int64_t a = cust(db, 0);
	int g = -1;
	tu_assert_ok(db, scrm_profile_consent_get(db, a, "marketing", &g));
	ck_assert_int_eq(g, 0);
	tu_assert_ok(db, scrm_profile_consent_set(db, a, "marketing", 1, T0 + 100, "wecom"));
	tu_assert_ok(db, scrm_profile_consent_get(db, a, "marketing", &g));
	ck_assert_int_eq(g, 1);
	/* An older record does not override a newer one. */
	tu_assert_ok(db, scrm_profile_consent_set(db, a, "marketing", 0, T0 + 50, "pos"));
	tu_assert_ok(db, scrm_profile_consent_get(db, a, "marketing", &g));
	ck_assert_int_eq(g, 1);
	/* At the same time the later recorded wins; the clock when at is 0. */
	tu_assert_ok(db, scrm_profile_consent_set(db, a, "marketing", 0, T0 + 100, "tmall"));
	tu_assert_ok(db, scrm_profile_consent_get(db, a, "marketing", &g));
	ck_assert_int_eq(g, 0);
	clk.now = T0 + 200;
	tu_assert_ok(db, scrm_profile_consent_set(db, a, "sms", 7, 0, NULL));
	cJSON *p = profile(db, a, 0);
	const cJSON *c = jget(p, "consent");
	ck_assert(cJSON_IsFalse(jget(jget(c, "marketing"), "granted")));
	ck_assert_int_eq(jint(jget(c, "marketing"), "at"), T0 + 100);
	ck_assert_str_eq(jstr(jget(c, "marketing"), "source"), "tmall");
	ck_assert(cJSON_IsTrue(jget(jget(c, "sms"), "granted")));
	ck_assert_int_eq(jint(jget(c, "sms"), "at"), T0 + 200);
	ck_assert(jnull(jget(c, "sms"), "source"));
	cJSON_Delete(p);
	tu_assert_rc(db, scrm_profile_consent_set(db, a, "Marketing", 1, 0, NULL), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "consent purpose 'Marketing'");
	tu_assert_rc(db, scrm_profile_consent_set(db, a, "m.x", 1, 0, NULL), SCRM_INVALID);
	tu_assert_rc(db, scrm_profile_consent_set(db, a, "marketing", 1, 0, ""), SCRM_INVALID);
	tu_assert_rc(db, scrm_profile_consent_set(db, a, "marketing", 1, -5, NULL), SCRM_RANGE);
	tu_assert_rc(db, scrm_profile_consent_set(db, 99, "marketing", 1, 0, NULL), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_profile_consent_set(db, a, NULL, 1, 0, NULL), SCRM_MISUSE);
	tu_assert_rc(db, scrm_profile_consent_get(db, a, "marketing", NULL), SCRM_MISUSE);
	tu_assert_rc(db, scrm_profile_consent_get(db, 99, "marketing", &g), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_profile_consent_get(db, a, "", &g), SCRM_INVALID);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------------- erase */

static const char *const secrets[] = {"13800138000", "oUNION-SECRET", "王小明", "SECRET-PROP-VALUE",
				      "SKU-SECRET", "ORDER-KEY-SECRET", "zhang.secret@example.com",
				      "M-SECRET-CARD", "wecom-secret-source"};

/* Does any column of any row of any table of the file hold `needle`? */
static const char *find_in_tables(const char *path, const char *needle)
{
	static char where[256];
	sqlite3 *sq = NULL;
	ck_assert_int_eq(sqlite3_open_v2(path, &sq, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *tabs = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(sq, "SELECT name FROM sqlite_master WHERE type='table'",
					    -1, &tabs, NULL), SQLITE_OK);
	const char *found = NULL;
	int ntables = 0;
	while (!found && sqlite3_step(tabs) == SQLITE_ROW) {
		char sql[256];
		snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", sqlite3_column_text(tabs, 0));
		sqlite3_stmt *st = NULL;
		ck_assert_int_eq(sqlite3_prepare_v2(sq, sql, -1, &st, NULL), SQLITE_OK);
		ntables++;
		while (!found && sqlite3_step(st) == SQLITE_ROW) {
			for (int i = 0; i < sqlite3_column_count(st); i++) {
				const void *v = sqlite3_column_blob(st, i);
				int n = sqlite3_column_bytes(st, i);
				if (v && memmem(v, (size_t)n, needle, strlen(needle))) {
					snprintf(where, sizeof where, "%s.%s", sqlite3_column_text(tabs, 0),
						 sqlite3_column_name(st, i));
					found = where;
					break;
				}
			}
		}
		sqlite3_finalize(st);
	}
	sqlite3_finalize(tabs);
	sqlite3_close(sq);
	if (!found)
		ck_assert_int_gt(ntables, 10);
	return found;
}

static void personal_customer(scrm_db *db, int64_t *out)
{
	EV_OK(db, "{\"key\":\"ORDER-KEY-SECRET\",\"type\":\"order\",\"channel\":\"pos\",\"at\":%lld,"
		  "\"ids\":{\"phone\":\"13800138000\",\"wechat_unionid\":\"oUNION-SECRET\","
		  "\"email\":\"zhang.secret@example.com\"},"
		  "\"amount\":12900,\"currency\":\"CNY\",\"items\":[{\"sku\":\"SKU-SECRET\"}],"
		  "\"props\":{\"note\":\"SECRET-PROP-VALUE\"}}", (long long)T0);
	int64_t a = g_cust;
	EV_OK(db, "{\"key\":\"V-1\",\"type\":\"view\",\"channel\":\"tmall\",\"at\":%lld,"
		  "\"ids\":{\"member_card\":\"M-SECRET-CARD\",\"phone\":\"13800138000\"}}",
	      (long long)(T0 + DAY));
	ck_assert_int_eq(g_cust, a);
	tu_assert_ok(db, refund(db, "R-1", "pos", a, "ORDER-KEY-SECRET", 900, "CNY", T0 + 2 * DAY));
	tu_assert_ok(db, scrm_profile_set_json(db, a, "{\"name\":\"王小明\",\"level\":2}"));
	tu_assert_ok(db, scrm_profile_consent_set(db, a, "marketing", 1, T0, "wecom-secret-source"));
	*out = a;
}

START_TEST(test_erase_leaves_nothing_personal)
{
	const char *path = tu_path("erase.db");
	scrm_db *db = open_db("erase.db");
	int64_t a;
	personal_customer(db, &a);
	/* A second customer merged into a: its data goes as well. */
	int64_t b = obs(db, "wechat_openid", "M-OTHER");
	tu_assert_ok(db, scrm_identity_merge(db, a, b, "same person", NULL));
	/* Someone else stays untouched. */
	int64_t keep = obs(db, "member_card", "M-KEEP");
	tu_assert_ok(db, order(db, "K1", "pos", keep, 500, "CNY", T0));
	tu_assert_ok(db, scrm_profile_set_json(db, keep, "{\"name\":\"李四\"}"));
	char *before = figures_text(db, a);
	for (size_t i = 0; i < SCRM_ARRAY_LEN(secrets); i++)
		ck_assert_ptr_nonnull(find_in_tables(path, secrets[i]));

	tu_assert_ok(db, scrm_profile_erase(db, b, "PIPL request"));
	/* Nothing personal is left in any table. */
	for (size_t i = 0; i < SCRM_ARRAY_LEN(secrets); i++) {
		const char *where = find_in_tables(path, secrets[i]);
		ck_assert_msg(where == NULL, "'%s' is still in %s", secrets[i], where);
	}
	ck_assert_ptr_null(find_in_tables(path, "M-OTHER"));
	ck_assert_ptr_nonnull(find_in_tables(path, "李四"));
	/* No identifier resolves to it; its id stays known. */
	int64_t r = 0;
	tu_assert_rc(db, scrm_identity_resolve(db, "phone", "13800138000", &r), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_identity_resolve(db, "wechat_unionid", "oUNION-SECRET", &r), SCRM_NOTFOUND);
	ck_assert_int_eq(canon(db, b), a);
	cJSON *p = profile(db, a, SCRM_PROFILE_UNMASKED);
	ck_assert(cJSON_IsTrue(jget(p, "erased")));
	ck_assert_int_eq(cJSON_GetArraySize(jget(p, "attributes")), 0);
	ck_assert_int_eq(cJSON_GetArraySize(jget(p, "consent")), 0);
	ck_assert_int_eq(cJSON_GetArraySize(jget(p, "identifiers")), 0);
	cJSON_Delete(p);
	/* Totals stay right. */
	char *after = figures_text(db, a);
	ck_assert_str_eq(after, before);
	ck_assert_int_eq(fig2(db, a, "net_spend", "CNY"), 12000);
	char *out = NULL;
	tu_assert_ok(db, scrm_profile_events_json(db, a, 0, 0, &out));
	tu_assert_contains(out, "\"key\":null,\"type\":\"order\",\"channel\":\"pos\",\"at\":1767225600000,"
				"\"amount\":12900,\"currency\":\"CNY\",\"refund_of\":null,\"items\":null,\"props\":null");
	scrm_free(out);
	/* A replay is still a duplicate; new data for the erased id is refused. */
	tu_assert_rc(db, ev(db, "{\"key\":\"ORDER-KEY-SECRET\",\"type\":\"order\",\"channel\":\"pos\","
				"\"at\":1,\"ids\":{\"phone\":\"13800138000\"},\"amount\":1,\"currency\":\"CNY\"}"),
		     SCRM_DUPLICATE);
	tu_assert_rc(db, order(db, "ORDER-KEY-SECRET", "pos", a, 1, "CNY", T0), SCRM_DUPLICATE);
	tu_assert_rc(db, order(db, "NEW", "pos", a, 1, "CNY", T0), SCRM_STATE);
	tu_assert_contains(scrm_errmsg(db), "was erased");
	tu_assert_rc(db, scrm_profile_set_json(db, a, "{\"name\":\"x\"}"), SCRM_STATE);
	tu_assert_rc(db, scrm_profile_consent_set(db, a, "marketing", 1, 0, NULL), SCRM_STATE);
	tu_assert_rc(db, scrm_profile_unset(db, a, "name"), SCRM_STATE);
	tu_assert_rc(db, scrm_profile_erase(db, a, NULL), SCRM_STATE);
	tu_assert_contains(scrm_errmsg(db), "already erased");
	int64_t erased_at = 0;
	tu_assert_ok(db, scrm_identity_erased(db, a, &erased_at));
	ck_assert_int_gt(erased_at, 0);
	/* The same identifiers later make a new customer. */
	int64_t fresh = obs(db, "phone", "13800138000");
	ck_assert_int_ne(fresh, a);
	/* Not erased: the other customer. */
	ck_assert_int_eq(fig2(db, keep, "net_spend", "CNY"), 500);
	tu_assert_rc(db, scrm_profile_erase(db, 999, NULL), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_profile_erase(db, keep, "bad\nreason"), SCRM_INVALID);
	free(before);
	free(after);
	scrm_db_close(db);
	/* Not in the file's bytes either, once the log is checkpointed (the
	 * last handle closing does it). The fresh customer holds the phone
	 * again, so look for the others. */
	ck_assert(!tu_file_exists(tu_path("erase.db-wal")));
	size_t n = 0;
	char *bytes = tu_read_file(path, &n);
	for (size_t i = 1; i < SCRM_ARRAY_LEN(secrets); i++)
		ck_assert_msg(!memmem(bytes, n, secrets[i], strlen(secrets[i])),
			      "'%s' is still in the file's bytes", secrets[i]);
	free(bytes);
}
END_TEST

START_TEST(test_anonymize_inactive)
{
	scrm_db *db = open_db("an.db");
	/* Created at T0; events at various times. */
	int64_t old = cust(db, 0), recent = cust(db, 1), quiet = cust(db, 2);
	tu_assert_ok(db, order(db, "O1", "pos", old, 100, "CNY", T0 + DAY));
	tu_assert_ok(db, scrm_profile_set_json(db, old, "{\"name\":\"gone\"}"));
	tu_assert_ok(db, order(db, "O2", "pos", recent, 100, "CNY", T0 + DAY));
	tu_assert_ok(db, view_ev(db, "V2", "pos", recent, T0 + 95 * DAY));
	/* A customer merged from one created recently counts as recent. */
	int64_t merged = 0;
	const char *k = "wechat_openid", *v = "C-NEW";
	tu_assert_ok(db, scrm_identity_observe(db, "pos", T0 + 99 * DAY, &k, &v, 1, &merged, NULL));
	int64_t grown = cust(db, 3);
	tu_assert_ok(db, scrm_identity_merge(db, grown, merged, NULL, NULL));
	int64_t n = -1;
	/* Nobody inactive for 100 days as of T0 + 100 days: all created at T0... */
	tu_assert_ok(db, scrm_profile_anonymize_inactive(db, 100, T0 + 100 * DAY, &n));
	ck_assert_int_eq(n, 0);
	/* ...but for 90 days: old and quiet (no event, created at T0). */
	tu_assert_ok(db, scrm_profile_anonymize_inactive(db, 90, T0 + 100 * DAY, &n));
	ck_assert_int_eq(n, 2);
	int64_t at = 0;
	tu_assert_ok(db, scrm_identity_erased(db, old, &at));
	ck_assert_int_gt(at, 0);
	tu_assert_ok(db, scrm_identity_erased(db, quiet, &at));
	ck_assert_int_gt(at, 0);
	tu_assert_ok(db, scrm_identity_erased(db, recent, &at));
	ck_assert_int_eq(at, 0);
	tu_assert_ok(db, scrm_identity_erased(db, grown, &at));
	ck_assert_int_eq(at, 0);
	char *val = NULL;
	tu_assert_rc(db, scrm_profile_get(db, old, "name", &val), SCRM_NOTFOUND);
	ck_assert_int_eq(fig2(db, old, "net_spend", "CNY"), 100);
	ck_assert_str_eq(tu_sql_file_text(tu_path("an.db"), "SELECT reason FROM profile_erasure "
							    "WHERE customer = 1"), "inactive for 90 days");
	/* Already erased are skipped. */
	tu_assert_ok(db, scrm_profile_anonymize_inactive(db, 90, T0 + 100 * DAY, &n));
	ck_assert_int_eq(n, 0);
	tu_assert_rc(db, scrm_profile_anonymize_inactive(db, 0, 0, &n), SCRM_RANGE);
	tu_assert_rc(db, scrm_profile_anonymize_inactive(db, 36501, 0, &n), SCRM_RANGE);
	tu_assert_rc(db, scrm_profile_anonymize_inactive(db, 5, -1, &n), SCRM_RANGE);
	/* The handle's clock when now is 0, and a NULL count. */
	clk.now = T0 + 1000 * DAY;
	tu_assert_ok(db, scrm_profile_anonymize_inactive(db, 30, 0, NULL));
	tu_assert_ok(db, scrm_identity_erased(db, recent, &at));
	ck_assert_int_gt(at, 0);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------------- mask */

START_TEST(test_mask)
{
	static const char *const cases[][3] = {
		{"phone", "+8613800138000", "138****8000"},
		{"phone", "13800138000", "138****8000"},
		{"phone", "+14155550123", "+14****0123"},
		{"mobile_phone", "+8613900139000", "139****9000"},
		{"phone", "12345", "1***5"},
		{"email", "zhang@example.com", "z***@example.com"},
		{"email", "王@例子.中国", "王***@例子.中国"},
		{"work_email", "a@b.c", "a***@b.c"},
		{"email", "no-at-sign", "n***n"},
		{"member_card", "M0042", "M***2"},
		{"tmall_buyer_nick", "小明同学", "小***学"},
		{"tmall_buyer_nick", "小明", "小*"},
		{"member_card", "X", "*"},
		{"member_card", "", ""},
	};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(cases); i++) {
		char *out = NULL;
		ck_assert_int_eq(scrm_profile_mask(cases[i][0], cases[i][1], &out), SCRM_OK);
		ck_assert_msg(strcmp(out, cases[i][2]) == 0, "%s '%s' -> '%s', want '%s'", cases[i][0],
			      cases[i][1], out, cases[i][2]);
		scrm_free(out);
	}
	char *out = (char *)&out;
	ck_assert_int_eq(scrm_profile_mask("phone", NULL, &out), SCRM_MISUSE);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(scrm_profile_mask(NULL, "x", &out), SCRM_MISUSE);
	ck_assert_int_eq(scrm_profile_mask("phone", "x", NULL), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(NULL), "out is NULL");
	ck_assert_int_eq(scrm_profile_mask("phone", "\xff\xfe", &out), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(NULL), "not valid UTF-8");
	char *big = malloc(70000);
	memset(big, 'x', 69999);
	big[69999] = '\0';
	ck_assert_int_eq(scrm_profile_mask("x", big, &out), SCRM_LIMIT);
	free(big);
	/* Allocation failure without a handle. */
	scrm__test_alloc_fail(1);
	ck_assert_int_eq(scrm_profile_mask("phone", "+8613800138000", &out), SCRM_NOMEM);
	ck_assert_ptr_null(out);

	/* The profile shows identifiers masked unless asked. */
	scrm_db *db = open_db("mask.db");
	int64_t a = obs2(db, "phone", P1, "email", "Zhang@Example.com");
	cJSON *p = profile(db, a, 0);
	char *ids = cJSON_PrintUnformatted(jget(p, "identifiers"));
	ck_assert_str_eq(ids, "[{\"kind\":\"phone\",\"value\":\"138****8000\"},"
			      "{\"kind\":\"email\",\"value\":\"z***@example.com\"}]");
	free(ids);
	cJSON_Delete(p);
	p = profile(db, a, SCRM_PROFILE_UNMASKED);
	ids = cJSON_PrintUnformatted(jget(p, "identifiers"));
	ck_assert_str_eq(ids, "[{\"kind\":\"phone\",\"value\":\"" P1N "\"},"
			      "{\"kind\":\"email\",\"value\":\"zhang@example.com\"}]");
	free(ids);
	cJSON_Delete(p);
	scrm_db_close(db);
}
END_TEST

/* ----------------------------------------------------------------- import */

START_TEST(test_import)
{
	scrm_db *db = open_db("i.db");
	int64_t a = cust(db, 0);
	scrm_buf b;
	scrm__buf_init(&b, NULL);
	scrm__buf_printf(&b, "{\"key\":\"O1\",\"type\":\"order\",\"channel\":\"pos\",\"at\":1,"
			     "\"customer\":%lld,\"amount\":100,\"currency\":\"CNY\"}\r\n", (long long)a);
	scrm__buf_puts(&b, "\n   \n");
	scrm__buf_printf(&b, "{\"key\":\"O1\",\"type\":\"order\",\"channel\":\"pos\",\"at\":1,"
			     "\"customer\":%lld,\"amount\":100,\"currency\":\"CNY\"}\n", (long long)a);
	scrm__buf_puts(&b, "{\"key\":\"O2\",\"type\":\"order\",\"channel\":\"pos\",\"at\":1,"
			   "\"customer\":999,\"amount\":100,\"currency\":\"CNY\"}\n");
	scrm__buf_puts(&b, "{oops\n");
	scrm__buf_printf(&b, "{\"key\":\"R1\",\"type\":\"refund\",\"channel\":\"pos\",\"at\":2,"
			     "\"customer\":%lld,\"amount\":100,\"currency\":\"CNY\",\"refund_of\":\"O1\"}\n",
			 (long long)a);
	scrm__buf_printf(&b, "{\"key\":\"R2\",\"type\":\"refund\",\"channel\":\"pos\",\"at\":2,"
			     "\"customer\":%lld,\"amount\":1,\"currency\":\"CNY\",\"refund_of\":\"O1\"}\n",
			 (long long)a);
	scrm__buf_puts(&b, "{\"key\":\"V1\",\"type\":\"view\",\"channel\":\"pos\",\"at\":3,"
			   "\"ids\":{\"member_card\":\"NEWCARD\"}}");
	char *sum = NULL;
	tu_assert_ok(db, scrm_profile_events_import(db, b.data, b.len, &sum));
	cJSON *s = parse(sum);
	scrm_free(sum);
	ck_assert_int_eq(jint(s, "lines"), 7);
	ck_assert_int_eq(jint(s, "stored"), 3);
	ck_assert_int_eq(jint(s, "duplicate"), 1);
	ck_assert_int_eq(jint(s, "rejected"), 3);
	const cJSON *errs = jget(s, "errors");
	ck_assert_int_eq(cJSON_GetArraySize(errs), 3);
	ck_assert_int_eq(jint(cJSON_GetArrayItem(errs, 0), "line"), 5);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(errs, 0), "code"), "SCRM_NOTFOUND");
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(errs, 0), "message"), "customer 999 does not exist");
	ck_assert_int_eq(jint(cJSON_GetArrayItem(errs, 1), "line"), 6);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(errs, 1), "code"), "SCRM_PARSE");
	ck_assert_int_eq(jint(cJSON_GetArrayItem(errs, 2), "line"), 8);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(errs, 2), "code"), "SCRM_INVALID");
	cJSON_Delete(s);
	ck_assert_int_eq(fig2(db, a, "net_spend", "CNY"), 0);
	int64_t r = 0;
	tu_assert_ok(db, scrm_identity_resolve(db, "member_card", "NEWCARD", &r));
	scrm__buf_reset(&b);
	/* Text need not be NUL-terminated; NUL inside a line rejects it; at
	 * most 100 errors are listed. */
	const char nul[] = "{\"key\":\"Z\",\"type\":\"view\",\"channel\":\"pos\",\"at\":3,\"customer\":1}\0xx\n";
	tu_assert_ok(db, scrm_profile_events_import(db, nul, sizeof nul - 1, &sum));
	tu_assert_contains(sum, "\"rejected\":1");
	tu_assert_contains(sum, "NUL byte");
	scrm_free(sum);
	for (int i = 0; i < 150; i++)
		scrm__buf_puts(&b, "[]\n");
	tu_assert_ok(db, scrm_profile_events_import(db, b.data, b.len, &sum));
	s = parse(sum);
	scrm_free(sum);
	ck_assert_int_eq(jint(s, "rejected"), 150);
	ck_assert_int_eq(cJSON_GetArraySize(jget(s, "errors")), 100);
	cJSON_Delete(s);
	scrm__buf_reset(&b);
	tu_assert_ok(db, scrm_profile_events_import(db, "", 0, NULL));
	tu_assert_ok(db, scrm_profile_events_import(db, NULL, 0, &sum));
	tu_assert_contains(sum, "\"lines\":0");
	scrm_free(sum);
	tu_assert_rc(db, scrm_profile_events_import(db, NULL, 5, &sum), SCRM_MISUSE);
	ck_assert_ptr_null(sum);
	scrm_db_close(db);
}
END_TEST

/* ----------------------------------------------------------------- batches */

START_TEST(test_batch)
{
	scrm_db *db = open_db("b.db");
	int64_t a = cust(db, 0);
	tu_assert_ok(db, order(db, "O0", "pos", a, 100, "CNY", T0));
	char *before = dump(db);
	tu_assert_ok(db, scrm_db_begin(db));
	tu_assert_ok(db, order(db, "O1", "pos", a, 100, "CNY", T0));
	/* Refusals inside the batch change nothing and the batch goes on. */
	tu_assert_rc(db, order(db, "O1", "pos", a, 100, "CNY", T0), SCRM_DUPLICATE);
	tu_assert_rc(db, order(db, "O2", "pos", 999, 100, "CNY", T0), SCRM_NOTFOUND);
	tu_assert_rc(db, refund(db, "R1", "pos", a, "O1", 101, "CNY", T0), SCRM_INVALID);
	tu_assert_rc(db, ev(db, "{\"key\":\"X\",\"type\":\"view\",\"channel\":\"pos\",\"at\":1,"
				"\"ids\":{\"phone\":\"null\"}}"), SCRM_INVALID);
	tu_assert_rc(db, ev(db, "{\"key\":\"R9\",\"type\":\"refund\",\"channel\":\"pos\",\"at\":1,"
				"\"ids\":{\"member_card\":\"OTHER\"},\"amount\":1,\"currency\":\"CNY\","
				"\"refund_of\":\"O1\"}"), SCRM_INVALID);
	EV_OK(db, "{\"key\":\"V1\",\"type\":\"view\",\"channel\":\"pos\",\"at\":1,"
		  "\"ids\":{\"member_card\":\"C0000\"}}");
	tu_assert_ok(db, scrm_db_commit(db));
	ck_assert_int_eq(fig(db, a, "events"), 3);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM identity_customers"), 1);
	/* A rolled back batch leaves nothing. */
	tu_assert_ok(db, scrm_db_begin(db));
	tu_assert_ok(db, order(db, "O5", "pos", a, 100, "CNY", T0));
	tu_assert_ok(db, scrm_profile_set_json(db, a, "{\"x\":1}"));
	tu_assert_ok(db, scrm_profile_erase(db, a, NULL));
	tu_assert_ok(db, scrm_db_rollback(db));
	ck_assert_int_eq(fig(db, a, "events"), 3);
	free(before);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_null_handle)
{
	char *out = NULL;
	int g;
	int64_t n;
	ck_assert_int_eq(scrm_profile_event_add_json(NULL, "{}", NULL, NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_profile_events_import(NULL, "", 0, NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_profile_events_json(NULL, 1, 0, 0, &out), SCRM_MISUSE);
	ck_assert_int_eq(scrm_profile_event_stats(NULL, 1, "x", 0, NULL, NULL, NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_profile_set_json(NULL, 1, "{}"), SCRM_MISUSE);
	ck_assert_int_eq(scrm_profile_get(NULL, 1, "x", &out), SCRM_MISUSE);
	ck_assert_int_eq(scrm_profile_unset(NULL, 1, "x"), SCRM_MISUSE);
	ck_assert_int_eq(scrm_profile_config_set(NULL, "{}"), SCRM_MISUSE);
	ck_assert_int_eq(scrm_profile_config_json(NULL, &out), SCRM_MISUSE);
	ck_assert_int_eq(scrm_profile_rfm_refresh(NULL, 0, &out), SCRM_MISUSE);
	ck_assert_int_eq(scrm_profile_consent_set(NULL, 1, "m", 1, 0, NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_profile_consent_get(NULL, 1, "m", &g), SCRM_MISUSE);
	ck_assert_int_eq(scrm_profile_erase(NULL, 1, NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_profile_anonymize_inactive(NULL, 1, 0, &n), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(NULL), "handle is NULL");
	/* Read-only handles refuse every write. */
	scrm_db *db = open_db("ro.db");
	int64_t a = cust(db, 0);
	scrm_db_close(db);
	db = tu_open(tu_path("ro.db"), SCRM_OPEN_READONLY);
	tu_assert_rc(db, scrm_profile_set_json(db, a, "{}"), SCRM_READONLY);
	tu_assert_rc(db, scrm_profile_unset(db, a, "x"), SCRM_READONLY);
	tu_assert_rc(db, scrm_profile_config_set(db, "{}"), SCRM_READONLY);
	tu_assert_rc(db, scrm_profile_rfm_refresh(db, 0, NULL), SCRM_READONLY);
	tu_assert_rc(db, scrm_profile_consent_set(db, a, "m", 1, 0, NULL), SCRM_READONLY);
	tu_assert_rc(db, scrm_profile_erase(db, a, NULL), SCRM_READONLY);
	tu_assert_rc(db, scrm_profile_anonymize_inactive(db, 1, 0, NULL), SCRM_READONLY);
	tu_assert_rc(db, scrm_profile_events_import(db, "", 0, NULL), SCRM_READONLY);
	/* Reading works. */
	tu_assert_ok(db, scrm_profile_json(db, a, 0, &out));
	scrm_free(out);
	tu_assert_ok(db, scrm_profile_config_json(db, &out));
	scrm_free(out);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------- allocation failure */

/* Run `call` with the nth allocation failing for n = 1, 2, …: each failure
 * is SCRM_NOMEM and leaves the database exactly as it was; finally it
 * succeeds. */
typedef int (*af_fn)(scrm_db *db, void *arg);

static void alloc_fail_loop(scrm_db *db, af_fn fn, void *arg)
{
	char *before = dump(db);
	long nth;
	int rc = SCRM_NOMEM;
	for (nth = 1; nth < OOM_LOOP_MAX; nth++) {
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		rc = fn(db, arg);
		scrm_db_test_alloc_fail(db, 0);
		if (rc == SCRM_OK)
			break;
		ck_assert_msg(rc == SCRM_NOMEM, "nth=%ld: %s: %s", nth, scrm_errstr(rc), scrm_errmsg(db));
		char *after = dump(db);
		ck_assert_msg(strcmp(before, after) == 0, "nth=%ld: the database changed", nth);
		free(after);
	}
	ck_assert_int_eq(rc, SCRM_OK);
	free(before);
}

static int af_event_ids(scrm_db *db, void *arg)
{
	(void)arg;
	return ev(db, "{\"key\":\"AF1\",\"type\":\"order\",\"channel\":\"pos\",\"at\":%lld,"
		      "\"ids\":{\"phone\":\"%s\",\"member_card\":\"MA\"},\"amount\":500,\"currency\":\"CNY\","
		      "\"items\":[1],\"props\":{\"a\":1}}", (long long)T0, P1);
}

static int af_import(scrm_db *db, void *arg)
{
	(void)arg;
	static const char text[] =
		"{\"key\":\"AF2\",\"type\":\"view\",\"channel\":\"pos\",\"at\":1,\"customer\":1}\n"
		"{bad\n"
		"{\"key\":\"AF3\",\"type\":\"view\",\"channel\":\"pos\",\"at\":1,\"ids\":{\"member_card\":\"MQ\"}}\n";
	char *sum = (char *)&sum;
	int rc = scrm_profile_events_import(db, text, sizeof text - 1, &sum);
	if (rc == SCRM_OK) {
		tu_assert_contains(sum, "\"stored\":2");
		scrm_free(sum);
	} else {
		ck_assert_ptr_null(sum);
		/* The failure keeps its reason. */
		tu_assert_contains(scrm_errmsg(db), "memory");
	}
	return rc;
}

static int af_set(scrm_db *db, void *arg)
{
	(void)arg;
	return scrm_profile_set_json(db, 1, "{\"name\":\"n\",\"tags\":[1,2],\"x\":null,\"r\":1.5}");
}

static int af_erase(scrm_db *db, void *arg)
{
	(void)arg;
	return scrm_profile_erase(db, 1, "test");
}

static int af_anonymize(scrm_db *db, void *arg)
{
	(void)arg;
	int64_t n = 0;
	int rc = scrm_profile_anonymize_inactive(db, 1, T0 + 100 * DAY, &n);
	if (rc == SCRM_OK)
		ck_assert_int_gt(n, 0);
	return rc;
}

static int af_refresh(scrm_db *db, void *arg)
{
	(void)arg;
	char *sum = (char *)&sum;
	int rc = scrm_profile_rfm_refresh(db, T0 + DAY, &sum);
	if (rc == SCRM_OK)
		scrm_free(sum);
	else
		ck_assert_ptr_null(sum);
	return rc;
}

/* ------------------------------------------------------------ many at once */

static scrm_event mk(const char *key, const char *type, int64_t customer, int64_t amount,
		     const char *refund_of, int64_t at)
{
	scrm_event e = SCRM_EVENT_INIT;
	e.key = key;
	e.type = type;
	e.channel = "pos";
	e.customer = customer;
	e.at_ms = at;
	if (amount) {
		e.has_amount = 1;
		e.amount = amount;
		e.currency = "CNY";
	}
	e.refund_of = refund_of;
	return e;
}

START_TEST(test_events_add)
{
	for (int input_order = 0; input_order < 2; input_order++) {
		scrm_db *db = open_db(input_order ? "bi.db" : "bs.db");
		int64_t c[3];
		for (int i = 0; i < 3; i++)
			c[i] = cust(db, i);
		tu_assert_ok(db, order(db, "O0", "pos", c[2], 1000, "CNY", T0));
		scrm_event e[8] = {
			mk("K1", "order", c[2], 500, NULL, T0 + 1),  /* K1 of c3: applied after c1's */
			mk("V1", "view", c[0], 0, NULL, T0 + 2),
			mk("R0", "refund", c[2], 300, "O0", T0 + 3), /* refund of an earlier order */
			mk("X1", "order", 999, 100, NULL, T0 + 4),   /* unknown customer */
			mk("K1", "order", c[0], 700, NULL, T0 + 5),  /* the same key, for c1 */
			mk("V2", "view", c[0], 0, NULL, T0 + 6),
			mk("B1", "Bad!", c[0], 0, NULL, T0 + 7),      /* bad type */
			mk("R1", "refund", c[2], 100, "K1", T0 + 8), /* K1 may be c1's */
		};
		int res[8];
		int64_t cu[8], id[8];
		size_t refused = 99;
		tu_assert_ok(db, scrm_profile_events_add(db, e, 8, input_order ? SCRM_EVENTS_INPUT_ORDER : 0,
							 res, cu, id, &refused));
		ck_assert_int_eq(res[1], SCRM_OK);
		ck_assert_int_eq(res[2], SCRM_OK);
		ck_assert_int_eq(res[3], SCRM_NOTFOUND);
		ck_assert_int_eq(res[5], SCRM_OK);
		ck_assert_int_eq(res[6], SCRM_INVALID);
		ck_assert_int_eq(cu[3], 0);
		ck_assert_int_eq(id[3], 0);
		ck_assert_int_eq(cu[6], 0);
		if (!input_order) {
			/* By customer: c1's K1 (index 4) first, c3's is the duplicate,
			 * and R1 names an order of another customer. */
			ck_assert_int_eq(res[4], SCRM_OK);
			ck_assert_int_eq(res[0], SCRM_DUPLICATE);
			ck_assert_int_eq(id[0], id[4]);
			ck_assert_int_eq(cu[0], c[0]);
			ck_assert_int_eq(res[7], SCRM_INVALID);
			ck_assert_int_eq(refused, 3);
			tu_assert_contains(scrm_profile_events_refusal(db, 7), "customer");
			ck_assert(id[1] < id[4] && id[4] < id[5] && id[5] < id[2]);
			ck_assert_int_eq(fig(db, c[0], "events"), 3);
			ck_assert_int_eq(fig(db, c[2], "events"), 2);
			ck_assert_int_eq(fig2(db, c[0], "net_spend", "CNY"), 700);
			ck_assert_int_eq(fig2(db, c[2], "net_spend", "CNY"), 700);
		} else {
			ck_assert_int_eq(res[0], SCRM_OK);
			ck_assert_int_eq(res[4], SCRM_DUPLICATE);
			ck_assert_int_eq(cu[4], c[2]);
			ck_assert_int_eq(res[7], SCRM_OK);
			ck_assert_int_eq(refused, 2);
			ck_assert(id[0] < id[1] && id[1] < id[2] && id[2] < id[5] && id[5] < id[7]);
			ck_assert_int_eq(fig(db, c[0], "events"), 2);
			ck_assert_int_eq(fig(db, c[2], "events"), 4);
			ck_assert_int_eq(fig2(db, c[2], "net_spend", "CNY"), 1100);
		}
		for (int i = 0; i < 8; i++) {
			if (res[i] == SCRM_OK)
				ck_assert_int_eq(cu[i], e[i].customer);
			/* A reason for each refused event, none for the others. */
			bool refused_i = res[i] != SCRM_OK && res[i] != SCRM_DUPLICATE;
			ck_assert_int_eq(scrm_profile_events_refusal(db, (size_t)i) != NULL, refused_i);
		}
		tu_assert_contains(scrm_profile_events_refusal(db, 3), "999");
		tu_assert_contains(scrm_profile_events_refusal(db, 6), "type");
		ck_assert_ptr_null(scrm_profile_events_refusal(db, 8));
		ck_assert_ptr_null(scrm_profile_events_refusal(db, SIZE_MAX));
		ck_assert_ptr_null(scrm_profile_events_refusal(NULL, 3));
		/* Outputs are optional; the replay is all duplicates. */
		tu_assert_ok(db, scrm_profile_events_add(db, e, 8, 0, NULL, NULL, NULL, NULL));
		tu_assert_ok(db, scrm_profile_events_add(db, e, 8, 0, res, NULL, NULL, &refused));
		ck_assert_int_eq(res[1], SCRM_DUPLICATE);
		/* Nothing to do; the last batch's reasons are gone. */
		ck_assert_ptr_nonnull(scrm_profile_events_refusal(db, 3));
		tu_assert_ok(db, scrm_profile_events_add(db, NULL, 0, 0, NULL, NULL, NULL, &refused));
		ck_assert_int_eq(refused, 0);
		ck_assert_ptr_null(scrm_profile_events_refusal(db, 3));
		scrm_db_close(db);
	}
}
END_TEST

START_TEST(test_events_add_errors)
{
	scrm_db *db = open_db("be.db");
	int64_t a = cust(db, 0);
	char *before = dump(db);
	scrm_event e[2] = {mk("A1", "order", a, 100, NULL, T0), mk("A2", "view", a, 0, NULL, T0)};
	int res[2] = {-1, -1};
	int64_t cu[2] = {-1, -1}, id[2] = {-1, -1};
	size_t refused = 99;
	tu_assert_rc(db, scrm_profile_events_add(db, NULL, 2, 0, res, cu, id, &refused), SCRM_MISUSE);
	ck_assert_int_eq(res[0], SCRM_MISUSE);
	ck_assert_int_eq(cu[1], 0);
	ck_assert_int_eq(id[1], 0);
	ck_assert_int_eq(refused, 0);
	tu_assert_rc(db, scrm_profile_events_add(db, e, 2, 0x10, res, NULL, NULL, NULL), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(db), "unknown flags");
	tu_assert_rc(db, scrm_profile_events_add(NULL, e, 2, 0, res, NULL, NULL, NULL), SCRM_MISUSE);
	/* A struct of an unknown version is refused like any bad event, and
	 * makes the batch go in input order. */
	e[1].version = 99;
	tu_assert_ok(db, scrm_profile_events_add(db, e, 2, 0, res, cu, id, &refused));
	ck_assert_int_eq(res[0], SCRM_OK);
	ck_assert_int_eq(res[1], SCRM_MISUSE);
	ck_assert_int_eq(refused, 1);
	tu_assert_contains(scrm_profile_events_refusal(db, 1), "version 99");
	/* A batch refused at the door clears the last batch's reasons too. */
	tu_assert_rc(db, scrm_profile_events_add(db, e, 2, 0x10, res, NULL, NULL, NULL), SCRM_MISUSE);
	ck_assert_ptr_null(scrm_profile_events_refusal(db, 1));
	/* Inside the caller's batch: a rollback takes it all back. */
	char *mid = dump(db);
	e[0].key = "A3";
	e[1] = mk("A4", "view", a, 0, NULL, T0);
	tu_assert_ok(db, scrm_db_begin(db));
	tu_assert_ok(db, scrm_profile_events_add(db, e, 2, 0, res, NULL, NULL, NULL));
	ck_assert_int_eq(fig(db, a, "events"), 3);
	tu_assert_ok(db, scrm_db_rollback(db));
	char *after = dump(db);
	ck_assert_str_eq(after, mid);
	ck_assert_str_ne(mid, before);
	free(after);
	free(mid);
	free(before);
	scrm_db_close(db);
}
END_TEST

/* The batch equals the same events added one by one in the order the batch
 * documents (by customer id, stable), byte for byte in every table, with the
 * same outcome per event; and in input order once an event is named by
 * identifiers. Keys repeat within and across batches, refunds name orders
 * of this and earlier batches, some events are refused. */
START_TEST(test_events_add_overflow)
{
	/* A money sum over int64 in a batch of events fails the batch as a
	 * whole (as an event alone fails the caller's batch): nothing stored. */
	scrm_db *db = open_db("bo.db");
	int64_t a = cust(db, 0);
	enum { N = 9300 };
	static scrm_event e[N];
	static char keys[N][16];
	static int res[N];
	for (int j = 0; j < N; j++) {
		snprintf(keys[j], sizeof keys[j], "B%d", j);
		e[j] = mk(keys[j], "order", a, INT64_C(1000000000000000), NULL, T0);
	}
	size_t refused = 99;
	tu_assert_rc(db, scrm_profile_events_add(db, e, N, 0, res, NULL, NULL, &refused), SCRM_RANGE);
	tu_assert_contains(scrm_errmsg(db), "would overflow int64");
	ck_assert_int_eq(res[0], SCRM_RANGE);
	ck_assert_int_eq(res[N - 1], SCRM_RANGE);
	ck_assert_int_eq(refused, 0);
	ck_assert_int_eq(fig(db, a, "events"), 0);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM event"), 0);
	/* 9223 of them fit. */
	tu_assert_ok(db, scrm_profile_events_add(db, e, 9223, 0, res, NULL, NULL, &refused));
	ck_assert_int_eq(fig(db, a, "orders"), 9223);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_events_add_last_ids)
{
	/* Past the largest possible id SQLite picks ids at random: the batch
	 * then stores its events one by one, still all of them. */
	scrm_db *db = open_db("bl.db");
	int64_t a = cust(db, 0);
	ck_assert_int_eq(sqlite3_exec(scrm__sqlite(db),
				      "INSERT INTO event(id, customer, channel, ikey, type, at) "
				      "VALUES (9223372036854775807, 1, 'x', 'k', 'view', 0)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	scrm_event e[3] = {mk("L1", "view", a, 0, NULL, T0), mk("L2", "order", a, 5, NULL, T0),
			   mk("L1", "view", a, 0, NULL, T0)};
	int res[3];
	int64_t id[3];
	tu_assert_ok(db, scrm_profile_events_add(db, e, 3, 0, res, NULL, id, NULL));
	ck_assert_int_eq(res[0], SCRM_OK);
	ck_assert_int_eq(res[1], SCRM_OK);
	ck_assert_int_eq(res[2], SCRM_DUPLICATE);
	ck_assert_int_eq(id[2], id[0]);
	ck_assert_int_eq(fig(db, a, "orders"), 1);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM event"), 3);
	scrm_db_close(db);
}
END_TEST

/* The one row two databases given the same rules differ in: a random
 * revision stamp. b gets a's. */
static void sync_rules_rev(scrm_db *a, scrm_db *b)
{
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(scrm__sqlite(a), "SELECT value FROM scrm_meta "
					    "WHERE key = 'rules.rev'", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW) {
		char sql[128];
		snprintf(sql, sizeof sql, "UPDATE scrm_meta SET value = '%s' WHERE key = 'rules.rev'",
			 (const char *)sqlite3_column_text(st, 0));
		ck_assert_int_eq(sqlite3_exec(scrm__sqlite(b), sql, NULL, NULL, NULL), SQLITE_OK);
	}
	sqlite3_finalize(st);
}

START_TEST(test_events_add_differential)
{
	scrm_db *a = open_db("da.db"), *b = open_db("db.db");
	for (int i = 0; i < 12; i++) {
		cust(a, i);
		cust(b, i);
	}
	uint64_t r = 0x2545F4914F6CDD1Dull;
	enum { N = 300 };
	static scrm_event e[N];
	static char keys[N][16], refs[N][16], card[N][16];
	static const char *kind = "member_card";
	const char *values[N];
	int res[N];
	int64_t cu[N], id[N];
	size_t order[N];
	for (int round = 0; round < 6; round++) {
		bool by_ids = round == 5;
		if (round == 3) {
			/* From here a rule acts on orders: they are told to the rule
			 * engine one by one, between the runs of the other events. */
			static const char rule[] =
				"{\"id\":\"big\",\"trigger\":{\"type\":\"event\",\"event\":\"order\"},"
				"\"condition\":\"event.amount >= 250 && profile.figures.orders >= 2\","
				"\"actions\":[{\"type\":\"tag.add\",\"tag\":\"big\"}]}";
			for (int k = 0; k < 2; k++) {
				scrm_db *d = k ? b : a;
				tu_assert_ok(d, scrm_tags_define(d, "{\"name\":\"big\"}"));
				tu_assert_ok(d, scrm_rules_load(d, rule, NULL));
			}
		}
		if (round == 4) /* a rule tag that flips with every event: all go one by one */
			for (int k = 0; k < 2; k++) {
				scrm_db *d = k ? b : a;
				tu_assert_ok(d, scrm_tags_define(d, "{\"name\":\"repeat\",\"expr\":"
								    "\"profile.figures.events % 2 == 0\"}"));
			}
		for (int i = 0; i < N; i++) {
			r ^= r << 13, r ^= r >> 7, r ^= r << 17;
			int t = (int)(r % 10);
			snprintf(keys[i], sizeof keys[i], "K%llu", (unsigned long long)((r >> 8) % 900));
			snprintf(refs[i], sizeof refs[i], "K%llu", (unsigned long long)((r >> 20) % 900));
			int64_t c = (r >> 32) % 13 == 12 ? 999 : 1 + (int64_t)((r >> 32) % 12);
			e[i] = mk(keys[i], t < 5 ? "view" : t < 8 ? "order" : t < 9 ? "refund" : "Bad!", c,
				  t >= 5 && t < 9 ? 1 + (int64_t)((r >> 40) % 500) : 0,
				  t == 8 ? refs[i] : NULL, T0 + (int64_t)((r >> 12) % 100000));
			e[i].channel = (r >> 50) % 2 ? "pos" : "tmall";
			/* Most refunds are of an order earlier in this batch. */
			for (int j = i - 1; t == 8 && (r >> 60) % 4 && j >= 0; j--)
				if (strcmp(e[j].type, "order") == 0 && e[j].customer != 999) {
					snprintf(refs[i], sizeof refs[i], "%s", e[j].key);
					e[i].customer = e[j].customer;
					e[i].channel = e[j].channel;
					e[i].amount = 1 + e[j].amount / 2;
					break;
				}
			if (by_ids && i == N / 2) {
				snprintf(card[i], sizeof card[i], "C%04d", (int)(r % 12));
				values[i] = card[i];
				e[i].customer = 0;
				e[i].id_kinds = &kind;
				e[i].id_values = &values[i];
				e[i].n_ids = 1;
			}
		}
		size_t refused;
		tu_assert_ok(a, scrm_profile_events_add(a, e, N, 0, res, cu, id, &refused));
		for (size_t i = 0; i < N; i++)
			order[i] = i;
		if (!by_ids) /* insertion sort: stable */
			for (size_t i = 1; i < N; i++)
				for (size_t j = i; j > 0 && e[order[j - 1]].customer > e[order[j]].customer; j--) {
					size_t x = order[j];
					order[j] = order[j - 1];
					order[j - 1] = x;
				}
		size_t nref = 0;
		for (size_t k = 0; k < N; k++) {
			size_t i = order[k];
			int64_t c = 0, x = 0;
			int rc = scrm_profile_event_add(b, &e[i], &c, &x);
			ck_assert_msg(rc == res[i], "round %d event %zu: %d in the batch, %d alone (%s)",
				      round, i, res[i], rc, scrm_errmsg(b));
			const char *why = scrm_profile_events_refusal(a, i);
			if (rc == SCRM_OK || rc == SCRM_DUPLICATE) {
				ck_assert_int_eq(c, cu[i]);
				ck_assert_int_eq(x, id[i]);
				ck_assert_ptr_null(why);
			} else {
				/* The batch keeps the reason the event alone gets. */
				ck_assert_ptr_nonnull(why);
				ck_assert_str_eq(why, scrm_errmsg(b));
				nref++;
			}
		}
		ck_assert_int_eq(refused, nref);
		ck_assert_ptr_null(scrm_profile_events_refusal(a, N));
		sync_rules_rev(a, b);
		char *da = dump(a), *db = dump(b);
		if (strcmp(da, db) != 0 && getenv("SCRM_TEST_DUMP")) {
			FILE *f = fopen("/tmp/da.txt", "w");
			fputs(da, f);
			fclose(f);
			f = fopen("/tmp/db.txt", "w");
			fputs(db, f);
			fclose(f);
		}
		ck_assert_msg(strcmp(da, db) == 0, "round %d: the databases differ", round);
		free(da);
		free(db);
	}
	ck_assert_int_gt(tu_sql_int(a, "SELECT count(*) FROM event WHERE type = 'refund'"), 10);
	ck_assert_int_gt(tu_sql_int(a, "SELECT count(*) FROM customer_tag"), 0);
	ck_assert_int_gt(tu_sql_int(a, "SELECT count(*) FROM tag_history h JOIN tag t ON t.id = h.tag "
				       "WHERE t.name = 'repeat'"), 0);
	scrm_db_close(a);
	scrm_db_close(b);
}
END_TEST

static int af_events_add(scrm_db *db, void *arg)
{
	(void)arg;
	scrm_event e[4] = {mk("M2", "order", 2, 300, NULL, T0), mk("M1", "view", 1, 0, NULL, T0),
			   mk("M3", "refund", 1, 50, "O1", T0), mk("M4", "view", 77, 0, NULL, T0)};
	e[1].props_json = "{\"sku\":\"A1\"}";
	int res[4];
	size_t refused = 0;
	int rc = scrm_profile_events_add(db, e, 4, 0, res, NULL, NULL, &refused);
	if (rc == SCRM_OK) {
		ck_assert_int_eq(res[3], SCRM_NOTFOUND); /* no customer 77 */
		ck_assert_int_eq(refused, 1);
		ck_assert_ptr_nonnull(scrm_profile_events_refusal(db, 3));
		ck_assert_ptr_null(scrm_profile_events_refusal(db, 0));
		return rc;
	}
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(res[i], rc);
	ck_assert_int_eq(refused, 0);
	for (size_t i = 0; i < 5; i++) /* a failed batch keeps no reasons */
		ck_assert_ptr_null(scrm_profile_events_refusal(db, i));
	return rc;
}

static int af_unmerge(scrm_db *db, void *arg)
{
	return scrm_identity_unmerge(db, *(int64_t *)arg, NULL, NULL);
}

static int af_config(scrm_db *db, void *arg)
{
	(void)arg;
	return scrm_profile_config_set(db, "{\"currency\":\"USD\",\"lifecycle\":{\"new_days\":1}}");
}

static int af_consent(scrm_db *db, void *arg)
{
	(void)arg;
	return scrm_profile_consent_set(db, 1, "marketing", 1, 0, "src");
}

static void af_setup(scrm_db *db)
{
	int64_t a = obs(db, "wechat_openid", "MA");
	int64_t b = obs(db, "wechat_openid", "MB");
	tu_assert_ok(db, order(db, "O1", "pos", a, 100, "CNY", T0));
	tu_assert_ok(db, order(db, "O2", "pos", b, 100, "CNY", T0));
	tu_assert_ok(db, scrm_profile_set_json(db, a, "{\"name\":\"A\"}"));
}

START_TEST(test_alloc_fail_writes)
{
	static const af_fn fns[] = {af_event_ids, af_import, af_events_add, af_set, af_config, af_consent,
				    af_refresh, af_erase, af_anonymize};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(fns); i++) {
		char name[32];
		snprintf(name, sizeof name, "af%zu.db", i);
		scrm_db *db = open_db(name);
		af_setup(db);
		alloc_fail_loop(db, fns[i], NULL);
		scrm_db_close(db);
	}
	/* Unmerge: the listener (identity list parsed, figures rebuilt) too. */
	scrm_db *db = open_db("afu.db");
	af_setup(db);
	int64_t mid = 0;
	tu_assert_ok(db, scrm_identity_merge(db, 1, 2, NULL, &mid));
	alloc_fail_loop(db, af_unmerge, &mid);
	ck_assert_int_eq(fig(db, 2, "events"), 1);
	scrm_db_close(db);
}
END_TEST

typedef int (*view_fn)(scrm_db *db, int64_t id, char **out);

static int v_profile(scrm_db *db, int64_t id, char **out) { return scrm_profile_json(db, id, 0, out); }
static int v_events(scrm_db *db, int64_t id, char **out) { return scrm_profile_events_json(db, id, 0, 0, out); }
static int v_get(scrm_db *db, int64_t id, char **out) { return scrm_profile_get(db, id, "name", out); }
static int v_config(scrm_db *db, int64_t id, char **out) { (void)id; return scrm_profile_config_json(db, out); }

START_TEST(test_alloc_fail_reads)
{
	scrm_db *db = open_db("afr.db");
	af_setup(db);
	tu_assert_ok(db, scrm_profile_consent_set(db, 1, "marketing", 1, 0, "src"));
	tu_assert_ok(db, scrm_profile_rfm_refresh(db, T0 + DAY, NULL));
	view_fn fns[] = {v_profile, v_events, v_get, v_config};
	for (size_t f = 0; f < SCRM_ARRAY_LEN(fns); f++) {
		char *want = NULL;
		tu_assert_ok(db, fns[f](db, 1, &want));
		long nth;
		for (nth = 1; nth < 1000; nth++) {
			char *out = (char *)&out;
			tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
			int rc = fns[f](db, 1, &out);
			scrm_db_test_alloc_fail(db, 0);
			if (rc == SCRM_OK) {
				ck_assert_str_eq(out, want);
				scrm_free(out);
				break;
			}
			ck_assert_msg(rc == SCRM_NOMEM, "fn %zu nth=%ld: %s", f, nth, scrm_errmsg(db));
			ck_assert_ptr_null(out);
		}
		ck_assert_int_lt(nth, 1000);
		scrm_free(want);
	}
	scrm_db_close(db);
}
END_TEST

START_TEST(test_alloc_fail_event_in_batch)
{
	scrm_db *db = open_db("afb.db");
	af_setup(db);
	char *before = dump(db);
	int kept = 0, doomed = 0;
	long nth;
	for (nth = 1; nth < OOM_LOOP_MAX; nth++) {
		tu_assert_ok(db, scrm_db_begin(db));
		tu_assert_ok(db, order(db, "B0", "pos", 1, 5, "CNY", T0));
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		int rc = af_event_ids(db, NULL);
		scrm_db_test_alloc_fail(db, 0);
		if (rc == SCRM_OK) {
			tu_assert_ok(db, scrm_db_rollback(db));
			break;
		}
		ck_assert_msg(rc == SCRM_NOMEM, "nth=%ld: %s", nth, scrm_errmsg(db));
		int rc2 = order(db, "B1", "pos", 1, 5, "CNY", T0);
		if (rc2 == SCRM_OK) {
			kept++; /* failed before writing: the batch goes on */
			ck_assert_int_eq(fig(db, 1, "events"), 3);
			tu_assert_ok(db, scrm_db_rollback(db));
		} else {
			doomed++;
			tu_assert_rc(db, rc2, SCRM_STATE);
			tu_assert_rc(db, scrm_db_commit(db), SCRM_STATE);
		}
		char *after = dump(db);
		ck_assert_msg(strcmp(before, after) == 0, "nth=%ld: state left behind", nth);
		free(after);
	}
	ck_assert_int_lt(nth, OOM_LOOP_MAX);
	ck_assert_int_gt(kept, 0);
	free(before);
	scrm_db_close(db);
}
END_TEST

static Suite *profile_suite(void)
{
	Suite *s = suite_create("profile");
	TCase *tc = tcase_create("events");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_add_test(tc, test_event_typed);
	tcase_add_test(tc, test_event_json);
	tcase_add_test(tc, test_event_validation);
	tcase_add_test(tc, test_idempotency);
	tcase_add_test(tc, test_refunds);
	tcase_add_test(tc, test_figures);
	tcase_add_test(tc, test_import);
	tcase_add_test(tc, test_batch);
	tcase_add_test(tc, test_events_add);
	tcase_add_test(tc, test_events_add_errors);
	tcase_add_test(tc, test_events_add_overflow);
	tcase_add_test(tc, test_events_add_last_ids);
	tcase_add_test(tc, test_events_add_differential);
	tcase_add_test(tc, test_null_handle);
	suite_add_tcase(s, tc);

	tc = tcase_create("merge");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_add_test(tc, test_merge_sums_figures);
	tcase_add_test(tc, test_unmerge_refund_follows_order);
	tcase_add_test(tc, test_merge_without_profile_data);
	tcase_add_test(tc, test_merge_attributes_consent);
	suite_add_tcase(s, tc);

	tc = tcase_create("rfm");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_add_test(tc, test_rfm_quintiles_ties);
	tcase_add_test(tc, test_rfm_small_populations);
	tcase_add_test(tc, test_rfm_window);
	tcase_add_test(tc, test_rfm_brute_force);
	tcase_add_test(tc, test_lifecycle);
	tcase_add_test(tc, test_config_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("privacy");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_add_test(tc, test_attributes);
	tcase_add_test(tc, test_consent);
	tcase_add_test(tc, test_erase_leaves_nothing_personal);
	tcase_add_test(tc, test_anonymize_inactive);
	tcase_add_test(tc, test_mask);
	suite_add_tcase(s, tc);

	tc = tcase_create("robustness");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_money_overflow);
	tcase_add_test(tc, test_alloc_fail_writes);
	tcase_add_test(tc, test_alloc_fail_reads);
	tcase_add_test(tc, test_alloc_fail_event_in_batch);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(profile_suite());
}
