/*
 * Check suite for segments and rule tags (include/scrm/rules.h). The core
 * is a differential test: every expression the SQL translation covers is
 * also evaluated customer by customer (the same expression wrapped as
 * `(E) ?? (profile.customer < 0)`, which the translation does not cover and which holds
 * exactly when E does), over a population with orders, refunds, views,
 * RFM scores, tags, a merge and an erasure; both must give the same ids.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "scrm/identity.h"
#include "scrm/profile.h"
#include "scrm/rules.h"
#include "core-int.h"
#include "testutil.h"

#define T0 INT64_C(1767571200000) /* 2026-01-05T00:00:00Z */
#define DAY INT64_C(86400000)

static tu_clock clk;

static scrm_db *open_db(const char *name)
{
	scrm_db *db = tu_open(tu_path(name), SCRM_OPEN_CREATE);
	clk.now = T0;
	tu_assert_ok(db, scrm_db_set_clock(db, tu_clock_fn, &clk));
	return db;
}

static int64_t customer(scrm_db *db, const char *card)
{
	char email[64];
	snprintf(email, sizeof email, "%s@example.com", card);
	const char *k[] = {"email"}, *v[] = {email};
	int64_t c = 0;
	tu_assert_ok(db, scrm_identity_observe(db, "pos", 0, k, v, 1, &c, NULL));
	return c;
}

static void event(scrm_db *db, const char *type, int64_t c, int64_t at, int64_t amount,
		  const char *refund_of, const char *key)
{
	char json[512];
	int n = snprintf(json, sizeof json,
			 "{\"key\":\"%s\",\"type\":\"%s\",\"channel\":\"pos\",\"at\":%lld,\"customer\":%lld",
			 key, type, (long long)at, (long long)c);
	if (amount)
		n += snprintf(json + n, sizeof json - (size_t)n, ",\"amount\":%lld,\"currency\":\"CNY\"",
			      (long long)amount);
	if (refund_of)
		n += snprintf(json + n, sizeof json - (size_t)n, ",\"refund_of\":\"%s\"", refund_of);
	snprintf(json + n, sizeof json - (size_t)n, "}");
	tu_assert_ok(db, scrm_profile_event_add_json(db, json, NULL, NULL));
}

static uint64_t rs = 42;
static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

/* ids of a segment as text "1,4,9". */
static char *ids(scrm_db *db, const char *expr)
{
	char *out = NULL;
	tu_assert_ok(db, scrm_segment_ids_json(db, expr, 0, 100000, &out));
	return out;
}

static const char *plan(scrm_db *db, const char *expr)
{
	static char buf[32];
	char *out = NULL;
	tu_assert_ok(db, scrm_segment_explain_json(db, expr, &out));
	snprintf(buf, sizeof buf, "%s", strstr(out, "\"plan\":\"sql\"") ? "sql" : "scan");
	scrm_free(out);
	return buf;
}

/* ~150 customers: orders, refunds, views over a year; RFM; tags; one merge
 * and one erasure. */
static scrm_db *population_in(const char *name)
{
	scrm_db *db = open_db(name);
	rs = 42; /* the same population every time */
	int64_t c[150];
	char card[32], key[32];
	tu_assert_ok(db, scrm_db_begin(db));
	for (int i = 0; i < 150; i++) {
		snprintf(card, sizeof card, "C%03d", i);
		c[i] = customer(db, card);
	}
	int k = 0;
	for (int i = 0; i < 150; i++) {
		int n = (int)(rnd() % 6);
		for (int j = 0; j < n; j++) {
			int64_t at = T0 - (int64_t)(rnd() % 400) * DAY;
			snprintf(key, sizeof key, "e%d", ++k);
			if (rnd() % 3) {
				event(db, "order", c[i], at, 100 + (int64_t)(rnd() % 50000), NULL, key);
				if (rnd() % 5 == 0) {
					char rk[32];
					snprintf(rk, sizeof rk, "r%d", k);
					event(db, "refund", c[i], at + DAY, 50, key, rk);
				}
			} else {
				event(db, "view", c[i], at, 0, NULL, key);
			}
		}
	}
	tu_assert_ok(db, scrm_db_commit(db));
	tu_assert_ok(db, scrm_profile_rfm_refresh(db, T0, NULL));
	tu_assert_ok(db, scrm_tags_define(db, "{\"name\":\"vip\"}"));
	for (int i = 0; i < 150; i += 7)
		tu_assert_ok(db, scrm_tag_add(db, c[i], "vip", "test"));
	int64_t survivor = 0;
	tu_assert_ok(db, scrm_identity_merge(db, c[3], c[4], "test", &survivor));
	tu_assert_ok(db, scrm_profile_erase(db, c[5], "test"));
	clk.now = T0 + 2 * DAY;
	return db;
}

static scrm_db *population(void)
{
	return population_in("seg.db");
}

static const char *const covered[] = {
	"profile.figures.orders >= 2",
	"profile.figures.orders == 0",
	"profile.figures.events > 3 && profile.figures.refunds >= 1",
	"profile.figures.refunds != 0 || profile.figures.orders < 1",
	"profile.figures.first_order < 1750000000000",
	"profile.figures.last_seen >= 1760000000000",
	"profile.figures.last_order == null",
	"profile.figures.last_order != null",
	"profile.figures.net_spend.CNY > 30000",
	"profile.figures.net_spend.CNY == null",
	"profile.figures.avg_order_value.CNY >= 20000",
	"profile.figures.net_spend.USD == null",
	"profile.rfm.r >= 4",
	"profile.rfm.r >= 3 && profile.rfm.f >= 3 && profile.rfm.m >= 3",
	"!(profile.rfm.m >= 3)",
	"profile.rfm.recency_days <= 60",
	"profile.rfm.frequency in [1, 2, 3]",
	"profile.rfm.r in [null, 5]",
	"profile.rfm.r in [\"5\", 5]",
	"profile.lifecycle == \"active\"",
	"profile.lifecycle in [\"new\", \"at_risk\", \"lost\"]",
	"profile.lifecycle != \"lost\" && !has_tag(\"vip\")",
	"has_tag(\"vip\")",
	"has_tag(\"nope\")",
	"!has_tag(\"vip\") || profile.figures.orders > 4",
	"days_since(profile.figures.last_order) > 90",
	"days_since(profile.figures.last_order) <= 30 || days_since(profile.figures.first_seen) < 100",
	"profile.figures.orders == \"2\"",
	"profile.figures.orders != \"2\"",
	"profile.rfm.r == profile.rfm.f",
	"profile.rfm.r > null",
	"!(profile.rfm.r > null)",
	"profile.figures.orders",
	"true",
	"false || null",
	"profile.customer > 100",
	"profile.lifecycle >= \"dormant\"",
};

START_TEST(test_differential)
{
	scrm_db *db = population();
	int64_t total = 0, none = 0;
	tu_assert_ok(db, scrm_segment_count(db, "true", &total));
	ck_assert_int_eq(total, 148); /* 150, one absorbed, one erased */
	for (size_t i = 0; i < SCRM_ARRAY_LEN(covered); i++) {
		const char *e = covered[i];
		char wrapped[512];
		snprintf(wrapped, sizeof wrapped, "(%s) ?? (profile.customer < 0)", e);
		ck_assert_msg(strcmp(plan(db, e), "sql") == 0, "not SQL: %s", e);
		ck_assert_msg(strcmp(plan(db, wrapped), "scan") == 0, "not a scan: %s", wrapped);
		char *a = ids(db, e), *b = ids(db, wrapped);
		ck_assert_msg(strcmp(a, b) == 0, "%s\n sql:  %s\n scan: %s", e, a, b);
		int64_t n = -1;
		tu_assert_ok(db, scrm_segment_count(db, e, &n));
		int64_t commas = 0;
		for (const char *p = a; *p; p++)
			commas += *p == ',';
		ck_assert_int_eq(n, strcmp(a, "[]") == 0 ? 0 : commas + 1);
		none += n == 0;
		scrm_free(a);
		scrm_free(b);
	}
	ck_assert_int_lt(none, 10); /* the population exercises most of them */
	scrm_db_close(db);
}
END_TEST

static int stop_at_3(void *ud, int64_t c)
{
	int *n = ud;
	(void)c;
	return ++*n == 3 ? 77 : 0;
}

START_TEST(test_paging_and_errors)
{
	scrm_db *db = population();
	/* Paging with `after` gives the whole segment. */
	char *all = ids(db, "profile.figures.events >= 1");
	cJSON *j = cJSON_Parse(all);
	int n = cJSON_GetArraySize(j);
	ck_assert_int_gt(n, 20);
	int64_t after = 0;
	int seen = 0;
	for (;;) {
		char *page = NULL;
		tu_assert_ok(db, scrm_segment_ids_json(db, "profile.figures.events >= 1", after, 7, &page));
		cJSON *p = cJSON_Parse(page);
		int m = cJSON_GetArraySize(p);
		for (int i = 0; i < m; i++, seen++)
			ck_assert_int_eq((int64_t)cJSON_GetArrayItem(p, i)->valuedouble,
					 (int64_t)cJSON_GetArrayItem(j, seen)->valuedouble);
		if (m)
			after = (int64_t)cJSON_GetArrayItem(p, m - 1)->valuedouble;
		cJSON_Delete(p);
		scrm_free(page);
		if (m < 7)
			break;
	}
	ck_assert_int_eq(seen, n);
	cJSON_Delete(j);
	scrm_free(all);
	/* foreach stops with the callback's value. */
	int calls = 0;
	ck_assert_int_eq(scrm_segment_foreach(db, "true", stop_at_3, &calls), 77);
	ck_assert_int_eq(calls, 3);
	char *out = NULL;
	tu_assert_rc(db, scrm_segment_ids_json(db, "true", 0, 0, &out), SCRM_RANGE);
	tu_assert_rc(db, scrm_segment_ids_json(db, "true", 0, 100001, &out), SCRM_RANGE);
	int64_t cnt;
	tu_assert_rc(db, scrm_segment_count(db, "event.amount > 1", &cnt), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "event.amount");
	tu_assert_rc(db, scrm_segment_count(db, "profile.rfm.r >", &cnt), SCRM_PARSE);
	tu_assert_contains(scrm_errmsg(db), "1:");
	tu_assert_rc(db, scrm_segment_count(db, NULL, &cnt), SCRM_MISUSE);
	tu_assert_rc(db, scrm_segment_count(db, "true", NULL), SCRM_MISUSE);
	scrm_db_close(db);
}
END_TEST

static long long holders(scrm_db *db, const char *tag)
{
	char sql[160];
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM customer_tag WHERE tag = (SELECT id FROM tag WHERE name = '%s')", tag);
	return tu_sql_int(db, sql);
}

START_TEST(test_rule_tags)
{
	scrm_db *db = population();
	tu_assert_ok(db, scrm_tags_define(db, "{\"name\":\"repeat\",\"expr\":\"profile.figures.orders >= 2\"}"));
	char *out = NULL;
	tu_assert_ok(db, scrm_tags_list_json(db, &out));
	tu_assert_contains(out, "\"name\":\"repeat\",\"group\":null,\"kind\":\"rule\"");
	tu_assert_contains(out, "\"expr\":\"profile.figures.orders >= 2\",\"version\":1");
	scrm_free(out);
	ck_assert_int_eq(holders(db, "repeat"), 0); /* defining evaluates nobody */
	int64_t want = 0;
	tu_assert_ok(db, scrm_segment_count(db, "profile.figures.orders >= 2", &want));
	tu_assert_ok(db, scrm_tags_refresh(db, NULL, &out));
	char exp[128];
	snprintf(exp, sizeof exp, "\"repeat\":{\"holders\":%lld,\"added\":%lld,\"removed\":0,\"version\":1}",
		 (long long)want, (long long)want);
	tu_assert_contains(out, exp);
	scrm_free(out);
	ck_assert_int_eq(holders(db, "repeat"), want);
	/* A refresh records its additions in the holdings' rows (schema 8). */
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM customer_tag WHERE rule = 'tag:repeat' "
					"AND rule_version = 1 AND implicit = 1"), want);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM tag_history WHERE rule = 'tag:repeat'"), 0);
	int64_t had = want;
	/* Same expression: same version; a new one: version 2, refresh follows. */
	tu_assert_ok(db, scrm_tags_define(db, "{\"name\":\"repeat\",\"expr\":\"profile.figures.orders >= 2\"}"));
	tu_assert_ok(db, scrm_tags_define(db, "{\"name\":\"repeat\",\"expr\":\"profile.figures.orders >= 3\"}"));
	tu_assert_ok(db, scrm_tags_refresh(db, "repeat", &out));
	tu_assert_contains(out, "\"version\":2");
	scrm_free(out);
	tu_assert_ok(db, scrm_segment_count(db, "profile.figures.orders >= 3", &want));
	ck_assert_int_eq(holders(db, "repeat"), want);
	/* Those who lost it: their addition (version 1) went to the history
	 * first, then the removal (version 2). */
	ck_assert_int_gt(had - want, 0);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM tag_history WHERE rule = 'tag:repeat' "
					"AND rule_version = 1 AND op = 'add'"), had - want);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM tag_history WHERE rule = 'tag:repeat' "
					"AND rule_version = 2 AND op = 'remove'"), had - want);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM tag_history a JOIN tag_history r "
					"ON r.customer = a.customer AND r.tag = a.tag AND r.op = 'remove' "
					"WHERE a.op = 'add' AND a.rule = 'tag:repeat' AND a.id < r.id "
					"AND a.at <= r.at"), had - want);
	/* Manual changes are refused; conversions too. */
	int64_t c = customer(db, "NEW1");
	tu_assert_rc(db, scrm_tag_add(db, c, "repeat", "alice"), SCRM_STATE);
	tu_assert_contains(scrm_errmsg(db), "rule tag");
	tu_assert_rc(db, scrm_tags_define(db, "{\"name\":\"repeat\"}"), SCRM_CONFLICT);
	tu_assert_rc(db, scrm_tags_define(db, "{\"name\":\"vip\",\"expr\":\"true\"}"), SCRM_CONFLICT);
	tu_assert_rc(db, scrm_tags_define(db, "{\"name\":\"x\",\"expr\":\"event.amount > 1\"}"), SCRM_INVALID);
	tu_assert_rc(db, scrm_tags_define(db, "{\"name\":\"x\",\"expr\":\"1 +\"}"), SCRM_PARSE);
	tu_assert_ok(db, scrm_tags_group_set(db, "{\"name\":\"lvl\",\"exclusive\":true}"));
	tu_assert_rc(db, scrm_tags_define(db, "{\"name\":\"x\",\"group\":\"lvl\",\"expr\":\"true\"}"),
		     SCRM_INVALID);
	tu_assert_ok(db, scrm_tags_group_set(db, "{\"name\":\"seg\"}"));
	tu_assert_ok(db, scrm_tags_define(db, "{\"name\":\"y\",\"group\":\"seg\",\"expr\":\"true\"}"));
	tu_assert_rc(db, scrm_tags_group_set(db, "{\"name\":\"seg\",\"exclusive\":true}"), SCRM_CONFLICT);
	tu_assert_rc(db, scrm_tags_refresh(db, "nope", &out), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_tags_refresh(db, "vip", &out), SCRM_INVALID);
	/* Events and attributes keep a customer's rule tags current. */
	tu_assert_ok(db, scrm_tags_define(db, "{\"name\":\"gold\",\"expr\":"
					     "\"profile.attributes.level == 'gold' || profile.figures.orders >= 1\"}"));
	int has = -1;
	tu_assert_ok(db, scrm_tag_has(db, c, "gold", &has));
	ck_assert_int_eq(has, 0);
	tu_assert_ok(db, scrm_profile_set_json(db, c, "{\"level\":\"gold\"}"));
	tu_assert_ok(db, scrm_tag_has(db, c, "gold", &has));
	ck_assert_int_eq(has, 1);
	tu_assert_ok(db, scrm_profile_unset(db, c, "level"));
	tu_assert_ok(db, scrm_tag_has(db, c, "gold", &has));
	ck_assert_int_eq(has, 0);
	event(db, "order", c, clk.now, 500, NULL, "new-order");
	tu_assert_ok(db, scrm_tag_has(db, c, "gold", &has));
	ck_assert_int_eq(has, 1);
	event(db, "order", c, clk.now, 500, NULL, "new-order-2");
	event(db, "order", c, clk.now, 500, NULL, "new-order-3");
	tu_assert_ok(db, scrm_tag_has(db, c, "repeat", &has));
	ck_assert_int_eq(has, 1);
	scrm_db_close(db);
}
END_TEST

/* Every row of `sql` as text lines "a|b|c\n" (the caller frees). */
static char *rows(scrm_db *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(scrm__sqlite(db), sql, -1, &st, NULL), SQLITE_OK);
	size_t n = 0, cap = 4096;
	char *out = malloc(cap);
	ck_assert_ptr_nonnull(out);
	out[0] = '\0';
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			const char *v = (const char *)sqlite3_column_text(st, i);
			size_t need = (v ? strlen(v) : 4) + 2;
			if (n + need + 1 > cap) {
				cap = 2 * (n + need + 1);
				ck_assert_ptr_nonnull(out = realloc(out, cap));
			}
			n += (size_t)sprintf(out + n, "%s%c", v ? v : "NULL",
					     i + 1 < sqlite3_column_count(st) ? '|' : '\n');
		}
	}
	ck_assert_int_eq(r, SQLITE_DONE);
	sqlite3_finalize(st);
	return out;
}

/* The same rows in a and b; on a difference, the first differing line. */
static void same_rows(scrm_db *a, scrm_db *b, const char *sql, const char *what)
{
	char *x = rows(a, sql), *y = rows(b, sql);
	size_t i = 0, line = 0;
	while (x[i] && x[i] == y[i])
		i++;
	if (x[i] || y[i]) {
		while (i > 0 && x[i - 1] != '\n')
			i--;
		for (size_t j = 0; j < i; j++)
			line += x[j] == '\n';
		ck_abort_msg("%s differ at line %zu:\n sql:  %.80s\n scan: %.80s", what, line + 1,
			     x + i, y + i);
	}
	ck_assert_int_gt(strlen(x), 0);
	free(x);
	free(y);
}

/* The summary without its timing. */
static char *tags_part(char *summary)
{
	char *t = strstr(summary, ",\"seconds\"");
	ck_assert_ptr_nonnull(t);
	*t = '\0';
	return summary;
}

/* A refresh of translated rule tags (one pass, set-wise writes) gives the
 * same holders and history as one of the same expressions evaluated
 * customer by customer (the `??` wrapping: one tag at a time), through a
 * first refresh that adds thousands, time passing, a new version, manual
 * tag changes and a merge that remove and add many more. */
START_TEST(test_rule_tag_refresh_differential)
{
	static const char *const defs[][2] = {
		/* names out of alphabetical order: ids and names sort apart */
		{"zeta", "profile.figures.orders >= 2"},
		{"alpha", "profile.lifecycle in [\"new\", \"at_risk\", \"lost\"]"},
		{"mid", "days_since(profile.figures.last_order) <= 30 || "
			"days_since(profile.figures.first_seen) < 100"},
		{"beta", "has_tag(\"vip\") && profile.figures.orders >= 1"},
		{"omega", "profile.figures.net_spend.CNY > 30000"},
		{"gamma", "profile.rfm.r >= 3 && profile.rfm.f >= 3"},
		{"all", "true"},
	};
	scrm_db *dbs[2];
	int64_t vips[2][8];
	for (int k = 0; k < 2; k++) {
		dbs[k] = population_in(k ? "scan.db" : "sql.db");
		for (size_t i = 0; i < SCRM_ARRAY_LEN(defs); i++) {
			char e[256], def[512];
			snprintf(e, sizeof e, k ? "(%s) ?? (profile.customer < 0)" : "%s", defs[i][1]);
			ck_assert_str_eq(plan(dbs[k], e), k ? "scan" : "sql");
			cJSON *j = cJSON_CreateObject();
			cJSON_AddStringToObject(j, "name", defs[i][0]);
			cJSON_AddStringToObject(j, "expr", e);
			char *txt = cJSON_PrintUnformatted(j);
			snprintf(def, sizeof def, "%s", txt);
			cJSON_free(txt);
			cJSON_Delete(j);
			tu_assert_ok(dbs[k], scrm_tags_define(dbs[k], def));
		}
		for (int i = 0; i < 8; i++) {
			char card[32];
			snprintf(card, sizeof card, "C%03d", 10 + 7 * i);
			vips[k][i] = customer(dbs[k], card);
		}
	}
	static const char *const ct = "SELECT * FROM customer_tag ORDER BY customer, tag";
	static const char *const th = "SELECT customer, tag, op, at, rule, rule_version, actor, reason "
				      "FROM tag_history ORDER BY customer, tag, at, op";
	char *sum[2];
	for (int round = 0; round < 3; round++) {
		for (int k = 0; k < 2; k++) {
			scrm_db *db = dbs[k];
			if (round == 1) {
				/* time passes; vip moves; a new version of zeta */
				clk.now = T0 + 200 * DAY;
				for (int i = 0; i < 8; i++)
					tu_assert_ok(db, i % 2 ? scrm_tag_add(db, vips[k][i], "vip", "t")
							       : scrm_tag_remove(db, vips[k][i], "vip", "t"));
				tu_assert_ok(db, scrm_tags_define(db, k ? "{\"name\":\"zeta\",\"expr\":"
									  "\"(profile.figures.orders >= 3) ?? "
									  "(profile.customer < 0)\"}"
									: "{\"name\":\"zeta\",\"expr\":"
									  "\"profile.figures.orders >= 3\"}"));
			} else if (round == 2) {
				int64_t survivor = 0;
				clk.now = T0 + 400 * DAY;
				tu_assert_ok(db, scrm_identity_merge(db, vips[k][1], vips[k][2], "t", &survivor));
			}
			tu_assert_ok(db, scrm_tags_refresh(db, NULL, &sum[k]));
		}
		ck_assert_str_eq(tags_part(sum[0]), tags_part(sum[1]));
		if (round == 0)
			ck_assert_int_gt(tu_sql_int(dbs[0], "SELECT count(*) FROM customer_tag"), 300);
		else
			ck_assert_ptr_nonnull(strstr(sum[0], "\"removed\":"));
		scrm_free(sum[0]);
		scrm_free(sum[1]);
		same_rows(dbs[0], dbs[1], ct, "customer_tag");
		same_rows(dbs[0], dbs[1], th, "tag_history");
	}
	/* Both directions happened in volume. */
	ck_assert_int_gt(tu_sql_int(dbs[0], "SELECT count(*) FROM tag_history WHERE op = 'remove' "
					    "AND rule LIKE 'tag:%'"), 100);
	/* A refresh's removals are in the history in the order they were
	 * found (customer, then tag name), as when written one by one. */
	char sql[512];
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM tag_history a JOIN tag_history b ON b.id = a.id + 1 "
		 "JOIN tag ta ON ta.id = a.tag JOIN tag tb ON tb.id = b.tag WHERE a.at = %lld AND "
		 "b.at = a.at AND a.op = 'remove' AND b.op = 'remove' AND a.rule LIKE 'tag:%%' AND "
		 "b.rule LIKE 'tag:%%' AND (b.customer < a.customer OR (b.customer = a.customer AND "
		 "tb.name <= ta.name))",
		 (long long)(T0 + 200 * DAY));
	ck_assert_int_eq(tu_sql_int(dbs[0], sql), 0);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM tag_history WHERE at = %lld AND op = 'remove' "
		 "AND rule LIKE 'tag:%%'", (long long)(T0 + 200 * DAY));
	ck_assert_int_gt(tu_sql_int(dbs[0], sql), 20);
	/* The first refresh's additions are in the holdings' rows, not in
	 * tag_history, until something takes them away. */
	snprintf(sql, sizeof sql, "SELECT count(*) FROM tag_history WHERE at = %lld AND op = 'add' "
		 "AND rule LIKE 'tag:%%' AND id > (SELECT min(id) FROM tag_history WHERE at = %lld)",
		 (long long)(T0 + 2 * DAY), (long long)(T0 + 200 * DAY));
	ck_assert_int_gt(tu_sql_int(dbs[0], sql), 20);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM customer_tag WHERE at = %lld AND implicit = 1",
		 (long long)(T0 + 2 * DAY));
	ck_assert_int_gt(tu_sql_int(dbs[0], sql), 300);
	scrm_db_close(dbs[0]);
	scrm_db_close(dbs[1]);
}
END_TEST

/* A refresh records its additions in the holdings' rows (implicit, schema
 * 8), not in tag_history: the history still shows them (without an id),
 * and whatever takes such a holding away writes its addition first — a
 * merge that drops the absorbed side's copy, an erasure. */
START_TEST(test_rule_tag_history_implicit)
{
	scrm_db *db = open_db("implicit.db");
	int64_t a = customer(db, "A"), b = customer(db, "B"), c = customer(db, "C");
	tu_assert_ok(db, scrm_tags_define(db, "{\"name\":\"all\",\"expr\":\"true\"}"));
	char *out = NULL;
	tu_assert_ok(db, scrm_tags_refresh(db, NULL, &out));
	scrm_free(out);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM customer_tag WHERE implicit = 1"), 3);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM tag_history"), 0);
	tu_assert_ok(db, scrm_tags_history_json(db, a, 0, &out));
	char want[256];
	snprintf(want, sizeof want,
		 "[{\"id\":null,\"customer\":%lld,\"tag\":\"all\",\"op\":\"add\",\"at\":%lld,"
		 "\"source\":{\"rule\":\"tag:all\",\"version\":1},\"reason\":null}]",
		 (long long)a, (long long)T0);
	ck_assert_str_eq(out, want);
	scrm_free(out);
	/* Both hold it: the merge drops the absorbed side's holding. */
	clk.now = T0 + DAY;
	int64_t survivor = 0;
	tu_assert_ok(db, scrm_identity_merge(db, a, b, "t", &survivor));
	int64_t absorbed = survivor == a ? b : a;
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM tag_history WHERE op = 'add'"), 1);
	tu_assert_ok(db, scrm_tags_history_json(db, survivor, 0, &out));
	/* newest first: the removal, then both additions (same time: the one
	 * with a history id first) */
	const char *rm = strstr(out, "\"op\":\"remove\"");
	char add_abs[64], add_surv[64];
	snprintf(add_abs, sizeof add_abs, "\"customer\":%lld,\"tag\":\"all\",\"op\":\"add\"",
		 (long long)absorbed);
	snprintf(add_surv, sizeof add_surv, "{\"id\":null,\"customer\":%lld,\"tag\":\"all\",\"op\":\"add\"",
		 (long long)survivor);
	ck_assert_ptr_nonnull(rm);
	ck_assert_ptr_nonnull(strstr(out, add_abs));
	ck_assert_ptr_nonnull(strstr(out, add_surv));
	ck_assert(rm < strstr(out, add_abs));
	ck_assert(strstr(out, add_abs) < strstr(out, add_surv));
	tu_assert_contains(out, "\"reason\":\"merge ");
	scrm_free(out);
	snprintf(want, sizeof want, "SELECT count(*) FROM tag_history WHERE customer = %lld AND "
		 "op = 'add' AND at = %lld AND rule = 'tag:all' AND rule_version = 1", (long long)absorbed,
		 (long long)T0);
	ck_assert_int_eq(tu_sql_int(db, want), 1);
	/* Erasure takes the holding and keeps its addition in the history. */
	tu_assert_ok(db, scrm_profile_erase(db, c, "asked"));
	snprintf(want, sizeof want, "SELECT count(*) FROM customer_tag WHERE customer = %lld", (long long)c);
	ck_assert_int_eq(tu_sql_int(db, want), 0);
	snprintf(want, sizeof want, "SELECT count(*) FROM tag_history WHERE customer = %lld AND "
		 "op = 'add' AND at = %lld", (long long)c, (long long)T0);
	ck_assert_int_eq(tu_sql_int(db, want), 1);
	/* The survivor still holds it, implicitly; a refresh changes nothing. */
	tu_assert_ok(db, scrm_tags_refresh(db, NULL, &out));
	tu_assert_contains(out, "\"all\":{\"holders\":1,\"added\":0,\"removed\":0");
	scrm_free(out);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM customer_tag WHERE implicit = 1"), 1);
	scrm_db_close(db);
}
END_TEST

/* Every allocation of a refresh (set-wise and one-by-one) failing in turn:
 * SCRM_NOMEM with nothing written, never a crash (the summary's separator
 * read the buffer of a failed append), then the refresh that succeeds. */
START_TEST(test_rule_tag_refresh_alloc_fail)
{
	/* A few customers: the loop runs a refresh per allocation. */
	scrm_db *db = open_db("af.db");
	for (int i = 0; i < 6; i++) {
		char card[16], key[16];
		snprintf(card, sizeof card, "AF%d", i);
		int64_t c = customer(db, card);
		for (int k = 0; k <= i % 3; k++) {
			snprintf(key, sizeof key, "af%d-%d", i, k);
			event(db, "order", c, T0 + k * DAY, 1000 + 100 * i, NULL, key);
		}
	}
	tu_assert_ok(db, scrm_tags_define(db, "{\"name\":\"repeat\",\"expr\":\"profile.figures.orders >= 2\"}"));
	tu_assert_ok(db, scrm_tags_define(db, "{\"name\":\"odd\",\"expr\":"
					  "\"(profile.figures.orders >= 1) ?? (profile.customer < 0)\"}"));
	int rc = SCRM_NOMEM;
	long nth, failures = 0;
	for (nth = 1; nth < 20000 && rc; nth++) {
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		scrm__test_alloc_fail(nth);
		char *out = NULL;
		rc = scrm_tags_refresh(db, NULL, &out);
		scrm_db_test_alloc_fail(db, 0);
		scrm__test_alloc_fail(0);
		if (rc == SCRM_OK) {
			tu_assert_contains(out, "\"repeat\":{\"holders\":");
			tu_assert_contains(out, "\"odd\":{\"holders\":");
			scrm_free(out);
			break;
		}
		ck_assert_msg(rc == SCRM_NOMEM, "nth=%ld: %s: %s", nth, scrm_errstr(rc), scrm_errmsg(db));
		ck_assert_ptr_null(out);
		ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM customer_tag t JOIN tag g "
						"ON g.id = t.tag WHERE g.kind = 'rule'"), 0);
		failures++;
	}
	ck_assert_int_eq(rc, SCRM_OK);
	ck_assert_int_gt(failures, 10);
	ck_assert_int_gt(tu_sql_int(db, "SELECT count(*) FROM customer_tag WHERE implicit = 1"), 0);
	/* Again with the rule state loaded: now the summary's first append is
	 * among the first allocations. A day later lifecycles move. */
	clk.now += 400 * DAY;
	tu_assert_ok(db, scrm_tags_define(db, "{\"name\":\"lc\",\"expr\":"
					  "\"profile.lifecycle == \\\"lost\\\"\"}"));
	char *warm = NULL;
	tu_assert_ok(db, scrm_tags_refresh(db, "repeat", &warm)); /* loads the rule state */
	scrm_free(warm);
	long held = tu_sql_int(db, "SELECT count(*) FROM customer_tag");
	rc = SCRM_NOMEM;
	for (nth = 1; nth < 20000 && rc; nth++) {
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		char *out = NULL;
		rc = scrm_tags_refresh(db, NULL, &out);
		scrm_db_test_alloc_fail(db, 0);
		if (rc == SCRM_OK) {
			tu_assert_contains(out, "\"lc\":{\"holders\":");
			scrm_free(out);
			break;
		}
		ck_assert_msg(rc == SCRM_NOMEM, "nth=%ld: %s: %s", nth, scrm_errstr(rc), scrm_errmsg(db));
		ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM customer_tag"), held);
	}
	ck_assert_int_eq(rc, SCRM_OK);
	ck_assert_int_gt(tu_sql_int(db, "SELECT count(*) FROM customer_tag"), held);
	scrm_db_close(db);
}
END_TEST

/* The refresh query writes && and || operands cheapest first (subqueries
 * last) and tests each tag as CASE WHEN; every covered expression, and
 * mixes that put has_tag() and net spend first, over nulls, in long
 * chains and nested, must still give the scan's holders. The page cache
 * the writes grow is given back. */
START_TEST(test_rule_tag_refresh_reordered)
{
	static const char *const mixed[] = {
		"has_tag(\"vip\") || profile.figures.net_spend.CNY > 30000 || profile.rfm.r >= 4",
		"(profile.figures.net_spend.CNY > 30000 && has_tag(\"vip\")) || "
		"(profile.lifecycle == \"active\" && profile.figures.orders >= 2)",
		"!(has_tag(\"vip\") && profile.rfm.m == null) && profile.rfm.r in [null, 5]",
		"profile.figures.net_spend.USD > 5 || profile.rfm.r > null || has_tag(\"vip\")",
		"profile.figures.net_spend.USD > 5 && profile.rfm.r > null || !has_tag(\"vip\")",
		"has_tag(\"vip\") && profile.figures.avg_order_value.CNY >= 100 && profile.rfm.r >= 1 && "
		"profile.rfm.f >= 1 && profile.rfm.m >= 1 && profile.figures.orders >= 1 && "
		"days_since(profile.figures.last_order) >= 0 && profile.lifecycle != \"x\" && "
		"profile.figures.events >= 1 && profile.customer > 0",
		"profile.figures.net_spend.CNY > 100 || has_tag(\"nope\") || profile.figures.orders == 0 || "
		"profile.lifecycle == \"lost\" || profile.rfm.r == 1 || profile.rfm.r == 2 || "
		"profile.rfm.r == 3 || profile.rfm.m == null || profile.figures.last_order == null || "
		"profile.customer == 7",
	};
	scrm_db *db = population_in("reorder.db");
	size_t n = SCRM_ARRAY_LEN(covered) + SCRM_ARRAY_LEN(mixed);
	for (size_t i = 0; i < n; i++) {
		const char *e = i < SCRM_ARRAY_LEN(covered) ? covered[i] : mixed[i - SCRM_ARRAY_LEN(covered)];
		ck_assert_msg(strcmp(plan(db, e), "sql") == 0, "not SQL: %s", e);
		char name[16], *def;
		snprintf(name, sizeof name, "t%02zu", i);
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "name", name);
		cJSON_AddStringToObject(j, "expr", e);
		def = cJSON_PrintUnformatted(j);
		tu_assert_ok(db, scrm_tags_define(db, def));
		cJSON_free(def);
		cJSON_Delete(j);
	}
	/* A cache too small for the thousands of changes: grown for the
	 * writes and the commit, then set back. */
	tu_assert_ok(db, tu_sql(db, "PRAGMA cache_size = 12"));
	char *sum = NULL;
	tu_assert_ok(db, scrm_tags_refresh(db, NULL, &sum));
	ck_assert_int_gt(tu_sql_int(db, "SELECT count(*) FROM customer_tag"), 2000);
	scrm_free(sum);
	ck_assert_int_eq(tu_sql_int(db, "PRAGMA cache_size"), 12);
	int64_t some = 0;
	for (size_t i = 0; i < n; i++) {
		const char *e = i < SCRM_ARRAY_LEN(covered) ? covered[i] : mixed[i - SCRM_ARRAY_LEN(covered)];
		char wrapped[1024], sql[256];
		snprintf(wrapped, sizeof wrapped, "(%s) ?? (profile.customer < 0)", e);
		char *a = ids(db, wrapped);
		cJSON *l = cJSON_Parse(a);
		long long cnt = 0, s1 = 0, s2 = 0;
		const cJSON *x;
		cJSON_ArrayForEach(x, l) {
			long long c = (long long)x->valuedouble;
			cnt++, s1 += c, s2 += c * c;
		}
		cJSON_Delete(l);
		scrm_free(a);
		snprintf(sql, sizeof sql, "SELECT count(*) * 1000000000000 + sum(customer) * 1000000 + "
					  "sum(customer * customer) FROM customer_tag WHERE tag = "
					  "(SELECT id FROM tag WHERE name = 't%02zu')", i);
		ck_assert_msg(tu_sql_int(db, sql) == cnt * 1000000000000 + s1 * 1000000 + s2,
			      "%s: %lld holders by scan", e, cnt);
		some += cnt > 0 && cnt < 148;
	}
	ck_assert_int_gt(some, (int64_t)n / 2);
	scrm_db_close(db);
}
END_TEST

static int has_tag(scrm_db *db, int64_t c, const char *tag)
{
	int has = -1;
	tu_assert_ok(db, scrm_tag_has(db, c, tag, &has));
	return has;
}

/* A rule tag over the lifecycle, kept current on each event inside one
 * batch while the thresholds change in it: the engines keep the profile
 * configuration for the rest of a write transaction, and must drop it when
 * it is set, and when a savepoint that set it is rolled back. */
START_TEST(test_rule_tag_config_in_batch)
{
	scrm_db *db = open_db("config.db");
	int64_t c = customer(db, "C1");
	event(db, "order", c, T0, 1000, NULL, "o1");
	tu_assert_ok(db, scrm_tags_define(db, "{\"name\":\"fresh\",\"expr\":\"profile.lifecycle == 'new'\"}"));
	clk.now = T0 + 10 * DAY;
	tu_assert_ok(db, scrm_db_begin(db));
	event(db, "view", c, T0 + 10 * DAY, 0, NULL, "v1");
	ck_assert_int_eq(has_tag(db, c, "fresh"), 1); /* 10 days < new_days 30 */
	tu_assert_ok(db, scrm_profile_config_set(db, "{\"lifecycle\":{\"new_days\":5}}"));
	event(db, "view", c, T0 + 10 * DAY, 0, NULL, "v2");
	ck_assert_int_eq(has_tag(db, c, "fresh"), 0);
	tu_assert_ok(db, scrm_db_begin(db));
	tu_assert_ok(db, scrm_profile_config_set(db, "{\"lifecycle\":{\"new_days\":20}}"));
	event(db, "view", c, T0 + 10 * DAY, 0, NULL, "v3");
	ck_assert_int_eq(has_tag(db, c, "fresh"), 1);
	tu_assert_ok(db, scrm_db_rollback(db)); /* new_days is 5 again */
	ck_assert_int_eq(has_tag(db, c, "fresh"), 0);
	event(db, "view", c, T0 + 10 * DAY, 0, NULL, "v4");
	ck_assert_int_eq(has_tag(db, c, "fresh"), 0);
	char *json = NULL;
	tu_assert_ok(db, scrm_profile_json(db, c, 0, &json));
	tu_assert_contains(json, "\"lifecycle\":\"active\"");
	scrm_free(json);
	tu_assert_ok(db, scrm_db_commit(db));
	/* Another handle changes the thresholds; this one's next batch sees it. */
	scrm_db *other = tu_open(tu_path("config.db"), 0);
	tu_assert_ok(other, scrm_profile_config_set(other, "{\"lifecycle\":{\"new_days\":25}}"));
	scrm_db_close(other);
	tu_assert_ok(db, scrm_db_begin(db));
	event(db, "view", c, T0 + 10 * DAY, 0, NULL, "v5");
	ck_assert_int_eq(has_tag(db, c, "fresh"), 1);
	tu_assert_ok(db, scrm_db_commit(db));
	/* Every change went to the history, with the tag's source. */
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM tag_history WHERE rule = 'tag:fresh'"), 3);
	scrm_db_close(db);
}
END_TEST

static Suite *segment_suite(void)
{
	Suite *s = suite_create("segment");
	TCase *tc = tcase_create("segment");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_add_test(tc, test_differential);
	tcase_add_test(tc, test_paging_and_errors);
	tcase_add_test(tc, test_rule_tags);
	tcase_add_test(tc, test_rule_tag_refresh_differential);
	tcase_add_test(tc, test_rule_tag_history_implicit);
	tcase_add_test(tc, test_rule_tag_refresh_alloc_fail);
	tcase_add_test(tc, test_rule_tag_refresh_reordered);
	tcase_add_test(tc, test_rule_tag_config_in_batch);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(segment_suite());
}
