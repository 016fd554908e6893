/*
 * Writes v5.db (a schema 5 database) and v5-expected.json (what the library
 * that wrote it answers about it) for check_migrate. NOT part of the build:
 * it is compiled by hand against the d7ad443 library (the last one writing
 * schema 5), and rerunning it against a newer library defeats its purpose:
 *
 *   gcc -std=c11 -O1 -o make_v5 tests/data/migrate/make_v5.c \
 *       -I/work/base/include -I/work/base/build-rel/include -DSCRM_STATIC $(pkg-config --cflags libcjson) \
 *       /work/base/build-rel/lib/libscrm.a \
 *       -lsqlite3 -lcjson -lxxhash -lpcre2-8 -lm -lpthread
 *   ./make_v5 tests/data/migrate
 *
 * Everything runs on a fixed clock, so the output is the same on every run.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <sqlite3.h>

#include "scrm/db.h"
#include "scrm/identity.h"
#include "scrm/profile.h"
#include "scrm/rules.h"

/* 2026-01-05T00:00:00Z, a Monday (08:00 in Shanghai). */
#define T0 INT64_C(1767571200000)
#define MIN INT64_C(60000)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static int64_t now_ms = T0;
static scrm_db *db;

static int64_t clock_fn(void *ud)
{
	(void)ud;
	return now_ms;
}

static void check(int rc, const char *what)
{
	if (rc != SCRM_OK) {
		fprintf(stderr, "make_v5: %s: %s (%s)\n", what, scrm_errstr(rc), scrm_errmsg(db));
		exit(1);
	}
}

/* JSON written with single quotes. */
static const char *jq(const char *fmt, ...)
{
	static char ring[4][4096];
	static int next;
	char *buf = ring[next++ % 4];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof ring[0], fmt, ap);
	va_end(ap);
	for (char *p = buf; *p; p++)
		if (*p == '\'')
			*p = '"';
	return buf;
}

static int64_t customer(const char *phone)
{
	const char *k[] = {"phone"}, *v[] = {phone};
	int64_t c = 0;
	check(scrm_identity_observe(db, "pos", 0, k, v, 1, &c, NULL), "observe");
	return c;
}

/* One event at the current clock, the clock then moves on a minute. */
static void event(const char *type, int64_t c, int64_t amount)
{
	static int seq;
	char json[512];
	int n = snprintf(json, sizeof json,
			 "{\"key\":\"v5-%d\",\"type\":\"%s\",\"channel\":\"pos\",\"at\":%lld,"
			 "\"customer\":%lld",
			 ++seq, type, (long long)now_ms, (long long)c);
	if (amount)
		n += snprintf(json + n, sizeof json - n, ",\"amount\":%lld,\"currency\":\"CNY\"",
			      (long long)amount);
	snprintf(json + n, sizeof json - n, ",\"props\":{\"store\":\"SH-01\"}}");
	check(scrm_profile_event_add_json(db, json, NULL, NULL), json);
	now_ms += MIN;
}

static void add_out(cJSON *obj, const char *key, char *text)
{
	cJSON *j = cJSON_Parse(text);
	if (!j) {
		fprintf(stderr, "make_v5: not JSON for %s: %s\n", key, text);
		exit(1);
	}
	cJSON_AddItemToObject(obj, key, j);
	scrm_free(text);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";
	char path[1024], wal[1100], xpath[1024];
	snprintf(path, sizeof path, "%s/v5.db", dir);
	snprintf(xpath, sizeof xpath, "%s/v5-expected.json", dir);
	remove(path);
	snprintf(wal, sizeof wal, "%s-wal", path);
	remove(wal);
	snprintf(wal, sizeof wal, "%s-shm", path);
	remove(wal);

	scrm_db_options *opts;
	check(scrm_db_options_new(&opts), "options");
	check(scrm_db_options_set_clock(opts, clock_fn, NULL), "clock");
	check(scrm_db_open(path, opts, &db), "open");
	scrm_db_options_free(opts);
	if (scrm_schema_version() != 5) {
		fprintf(stderr, "make_v5: built against schema %d, not 5\n", scrm_schema_version());
		return 1;
	}

	check(scrm_rules_config_set(db, jq("{'groups':{'marketing':{'max':2,'per':'7d','on_cap':'drop'}}}")),
	      "config");
	check(scrm_tags_define(db, jq("{'name':'vip','description':'very important'}")), "tag vip");
	check(scrm_tags_define(db, jq("{'name':'buyer','expr':'profile.figures.orders >= 1'}")),
	      "rule tag buyer");

	int64_t a = customer("13800138000"), b = customer("13900139000"),
		c = customer("13700137000"), d = customer("13600136000"),
		e = customer("13500135000");
	check(scrm_profile_set_json(db, a, jq("{'name':'王小明','tz':'Asia/Shanghai','birthday':'1990-01-06'}")),
	      "attrs a");
	check(scrm_profile_set_json(db, b, jq("{'tz':'UTC','birthday':'1985-01-06','level':3}")), "attrs b");
	check(scrm_profile_set_json(db, c, jq("{'tz':'Asia/Tokyo'}")), "attrs c");
	check(scrm_profile_set_json(db, e, jq("{'birthday':'2000-01-06','name':'erase me'}")), "attrs e");
	check(scrm_profile_consent_set(db, a, "marketing", 1, 0, "wecom"), "consent a");
	check(scrm_profile_consent_set(db, c, "marketing", 1, 0, "pos"), "consent c");
	check(scrm_profile_consent_set(db, b, "marketing", 0, 0, "pos"), "consent b");
	check(scrm_tag_add(db, c, "vip", "alice"), "tag c");

	check(scrm_rules_load(db, jq("["
		"{'id':'welcome','priority':10,'trigger':{'type':'event','event':'order'},"
		" 'condition':'event.amount >= 10000 && count(\\\"order\\\", 30d) >= 1',"
		" 'actions':[{'type':'send_coupon','params':{'coupon':'BIG'},'consent':'marketing'},"
		"            {'type':'tag.add','tag':'vip'}]},"
		"{'id':'view_once','priority':20,'trigger':{'type':'event','event':'view'},"
		" 'limits':{'once':true},'actions':[{'type':'push','params':{'msg':'hello'}}]},"
		"{'id':'cap_view','priority':30,'trigger':{'type':'event','event':'view'},"
		" 'condition':'profile.attributes.tz != null','limits':{'group':'marketing'},"
		" 'actions':[{'type':'sms','params':{'t':'view'}}]},"
		"{'id':'cap_cart','priority':40,'trigger':{'type':'event','event':'cart_add'},"
		" 'limits':{'group':'marketing'},'actions':[{'type':'sms','params':{'t':'cart'}}]},"
		"{'id':'cart','priority':50,'trigger':{'type':'absence','start':'cart_add',"
		" 'missing':'order','within':'1h'},'condition':'has_tag(\\\"vip\\\") == false',"
		" 'actions':[{'type':'send_coupon','params':{'coupon':'CART10'}}]},"
		"{'id':'bday','priority':60,'trigger':{'type':'date','attribute':'birthday','at':'10:00'},"
		" 'actions':[{'type':'send_coupon','params':{'coupon':'BDAY'}}]}]"), NULL),
	      "rules");
	/* Schedules the birthdays (they fall on 2026-01-06). */
	check(scrm_rules_tick(db, 0, NULL), "tick (schedule)");

	now_ms = T0 + MIN;
	event("view", a, 0);        /* view_once fired, cap_view fired 1/2 */
	event("view", a, 0);        /* once, cap_view fired 2/2 */
	event("view", a, 0);        /* once, cap_reached */
	event("cart_add", a, 0);    /* cap_cart cap_reached; a wait begins */
	event("order", a, 5000);    /* welcome condition_false; the wait is cancelled */
	event("order", a, 20000);   /* welcome fired (consent) */
	event("order", b, 15000);   /* welcome no_consent */
	event("cart_add", b, 0);    /* cap_cart fired; a wait that runs out */
	event("view", d, 0);        /* view_once fired; cap_view condition_false (no tz) */
	event("view", c, 0);        /* view_once fired; cap_view fired */
	event("view", e, 0);        /* view_once fired; cap_view condition_false */
	event("order", e, 12000);   /* welcome no_consent */
	event("cart_add", c, 0);    /* cap_cart fired; a wait, condition false at the tick (vip) */

	/* The waits run out and the birthdays come due. */
	now_ms = T0 + 2 * DAY;
	char *sum = NULL;
	check(scrm_rules_tick(db, 0, &sum), "tick");
	fprintf(stderr, "tick: %s\n", sum);
	scrm_free(sum);

	now_ms += MIN;
	char *taken = NULL;
	check(scrm_outbox_take(db, 3, 0, &taken), "take");
	cJSON *tj = cJSON_Parse(taken);
	scrm_free(taken);
	for (int i = 0; i < 2 && i < cJSON_GetArraySize(tj); i++)
		check(scrm_outbox_ack(db, (int64_t)cJSON_GetObjectItem(cJSON_GetArrayItem(tj, i), "id")->valuedouble),
		      "ack");
	cJSON_Delete(tj);

	now_ms += MIN;
	check(scrm_identity_merge(db, c, d, "same person", NULL), "merge");
	now_ms += MIN;
	check(scrm_profile_erase(db, e, "request"), "erase");
	now_ms += MIN;

	cJSON *x = cJSON_CreateObject();
	cJSON_AddNumberToObject(x, "schema_version", scrm_schema_version());
	cJSON_AddNumberToObject(x, "now", (double)now_ms);
	char *out;
	check(scrm_rules_trace_json(db, NULL, 0, 0, 0, SCRM_RULES_TRACE_STEPS, &out), "trace all");
	add_out(x, "trace_all", out);
	cJSON *tc = cJSON_AddObjectToObject(x, "trace_customer");
	int64_t tcs[] = {a, c};
	for (int i = 0; i < 2; i++) {
		char key[32];
		snprintf(key, sizeof key, "%lld", (long long)tcs[i]);
		check(scrm_rules_trace_json(db, NULL, tcs[i], 0, 0, SCRM_RULES_TRACE_STEPS, &out),
		      "trace customer");
		add_out(tc, key, out);
	}
	cJSON *tr = cJSON_AddObjectToObject(x, "trace_rule");
	const char *rules[] = {"welcome", "cap_view"};
	for (int i = 0; i < 2; i++) {
		check(scrm_rules_trace_json(db, rules[i], 0, 0, 0, SCRM_RULES_TRACE_STEPS, &out),
		      "trace rule");
		add_out(tr, rules[i], out);
	}
	check(scrm_outbox_list_json(db, NULL, 0, 0, &out), "outbox");
	add_out(x, "outbox_all", out);
	cJSON *tg = cJSON_AddObjectToObject(x, "tags_customer");
	for (int i = 0; i < 2; i++) {
		char key[32];
		snprintf(key, sizeof key, "%lld", (long long)tcs[i]);
		check(scrm_tags_customer_json(db, tcs[i], &out), "tags");
		add_out(tg, key, out);
	}
	/* scrm_profile_event_stats(customer, type, since 0, currency NULL) */
	cJSON *es = cJSON_AddArrayToObject(x, "event_stats");
	struct { int64_t c; const char *type; } st[] = {{a, "order"}, {a, "view"}, {b, "order"}};
	for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
		int64_t n = -1, s = -1;
		check(scrm_profile_event_stats(db, st[i].c, st[i].type, 0, NULL, &n, &s), "stats");
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "customer", (double)st[i].c);
		cJSON_AddStringToObject(o, "type", st[i].type);
		cJSON_AddNumberToObject(o, "count", (double)n);
		cJSON_AddNumberToObject(o, "sum", (double)s);
		cJSON_AddItemToArray(es, o);
	}
	check(scrm_db_close(db), "close");

	/* Small and self-contained: 1 KiB pages (most of the file is the
	 * schema's many tables and indexes, a page each at least; the page
	 * size can only change outside WAL mode), back in WAL mode as the
	 * library leaves it, and no -wal file next to it. */
	sqlite3 *raw;
	char *err = NULL;
	if (sqlite3_open(path, &raw) != SQLITE_OK ||
	    sqlite3_exec(raw, "PRAGMA journal_mode = DELETE; PRAGMA page_size = 1024; VACUUM; "
			      "PRAGMA journal_mode = WAL; PRAGMA wal_checkpoint(TRUNCATE);",
			 NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "make_v5: vacuum: %s\n", err ? err : sqlite3_errmsg(raw));
		return 1;
	}
	sqlite3_close(raw);

	char *text = cJSON_Print(x);
	FILE *f = fopen(xpath, "w");
	if (!f || fputs(text, f) < 0 || fputc('\n', f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "make_v5: cannot write %s\n", xpath);
		return 1;
	}
	free(text);
	cJSON_Delete(x);
	return 0;
}
