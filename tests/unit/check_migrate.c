/*
 * Check suite for schema migration: a database written by the previous
 * library (tests/data/migrate/v5.db, schema 5, made by make_v5.c against
 * d7ad443) opened by this one must migrate to the current schema and answer
 * the trace, outbox, tag and event queries as the old library did
 * (v5-expected.json, written by that library), then keep working.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "scrm/identity.h"
#include "scrm/profile.h"
#include "scrm/rules.h"
#include "testutil.h"

#define MIN INT64_C(60000)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
/* make_v5.c's clock: the events ran from T0 + 1 min, the tick at T0 + 2 days. */
#define T0 INT64_C(1767571200000)

static tu_clock clk;

/* ---------------------------------------------------------------- helpers */

static const char *data_path(const char *name)
{
	static char buf[2048];
	const char *dir = getenv("SCRM_TEST_DATA");
	ck_assert_msg(dir != NULL, "SCRM_TEST_DATA is not set (meson sets it to tests/data)");
	snprintf(buf, sizeof buf, "%s/migrate/%s", dir, name);
	return buf;
}

static cJSON *parse_n(const char *text, size_t n)
{
	cJSON *j = cJSON_ParseWithLength(text, n);
	ck_assert_msg(j != NULL, "not JSON: %.200s", text ? text : "(null)");
	return j;
}

/* Take a library string, parse it and release it. */
static cJSON *take(char *out)
{
	ck_assert_ptr_nonnull(out);
	cJSON *j = parse_n(out, strlen(out));
	scrm_free(out);
	return j;
}

static cJSON *load_expected(void)
{
	size_t n;
	char *text = tu_read_file(data_path("v5-expected.json"), &n);
	cJSON *j = parse_n(text, n);
	free(text);
	return j;
}

/* Copy v5.db into the temporary directory and open it with this library. */
static scrm_db *open_migrated(cJSON *expected)
{
	size_t n;
	void *bytes = tu_read_file(data_path("v5.db"), &n);
	const char *path = tu_path("v5.db");
	tu_write_file(path, bytes, n);
	free(bytes);
	ck_assert_str_eq(tu_sql_file_text(path, "PRAGMA user_version"), "5");
	clk.now = (int64_t)cJSON_GetObjectItem(expected, "now")->valuedouble;
	scrm_db_options *o;
	scrm_db *db = NULL;
	ck_assert_int_eq(scrm_db_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_db_options_set_clock(o, tu_clock_fn, &clk), SCRM_OK);
	int rc = scrm_db_open(path, o, &db);
	scrm_db_options_free(o);
	ck_assert_msg(rc == SCRM_OK, "opening v5.db: %s", scrm_errmsg(NULL));
	ck_assert_int_eq(tu_sql_int(db, "PRAGMA user_version"), scrm_schema_version());
	return db;
}

static char *show(const cJSON *j)
{
	return j ? cJSON_PrintUnformatted(j) : strdup("(none)");
}

static int64_t jint(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	ck_assert_msg(cJSON_IsNumber(v), "no number \"%s\"", k);
	return (int64_t)v->valuedouble;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	ck_assert_msg(cJSON_IsString(v), "no string \"%s\"", k);
	return v->valuestring;
}

/* Exactly equal, as parsed JSON. */
static void same_json(const char *what, const cJSON *want, const cJSON *got)
{
	if (cJSON_Compare(want, got, 1))
		return;
	char *w = show(want), *g = show(got);
	ck_abort_msg("%s differs after migration:\n want %.1500s\n got  %.1500s", what, w, g);
}

/*
 * Trace arrays. The records must be the same and in the same time order
 * (newest first). The old library broke ties between records of EQUAL `at`
 * by rule or customer; this one orders them by recording order (rowid
 * DESC; migrated rows were copied in (at, customer, rid, instance,
 * outcome) order). So where cJSON_Compare of the whole arrays fails, each
 * run of records sharing one `at` is compared as a multiset (every
 * expected record matched by one equal actual record of the same run);
 * anything else is a real difference.
 */
static void same_trace(const char *what, const cJSON *want, const cJSON *got)
{
	if (cJSON_Compare(want, got, 1))
		return;
	int n = cJSON_GetArraySize(want);
	if (cJSON_GetArraySize(got) != n) {
		char *w = show(want), *g = show(got);
		ck_abort_msg("%s: %d records after migration, %d before:\n want %.1500s\n got  %.1500s", what,
			     cJSON_GetArraySize(got), n, w, g);
	}
	for (int i = 0; i < n;) {
		int64_t at = jint(cJSON_GetArrayItem(want, i), "at");
		int end = i;
		while (end < n && jint(cJSON_GetArrayItem(want, end), "at") == at)
			end++;
		bool used[64] = {false};
		ck_assert_int_lt(end - i, 64);
		for (int k = i; k < end; k++) {
			const cJSON *g = cJSON_GetArrayItem(got, k);
			if (jint(g, "at") != at) {
				char *gs = show(g);
				ck_abort_msg("%s: record %d has at %lld, expected at %lld: %.1500s", what, k,
					     (long long)jint(g, "at"), (long long)at, gs);
			}
		}
		for (int k = i; k < end; k++) {
			const cJSON *w = cJSON_GetArrayItem(want, k);
			int m = i;
			for (; m < end; m++)
				if (!used[m - i] && cJSON_Compare(w, cJSON_GetArrayItem(got, m), 1))
					break;
			if (m == end) {
				/* The first differing record of the run, to read side by side. */
				int f = i;
				while (f < end - 1 && used[f - i])
					f++;
				char *ws = show(w), *gs = show(cJSON_GetArrayItem(got, f));
				ck_abort_msg("%s: record %d (at %lld) has no equal among the %d records "
					     "of that time after migration:\n want %.1500s\n got  %.1500s",
					     what, k, (long long)at, end - i, ws, gs);
			}
			used[m - i] = true;
		}
		i = end;
	}
}

static cJSON *trace(scrm_db *db, const char *rule, int64_t customer)
{
	char *out = NULL;
	tu_assert_ok(db, scrm_rules_trace_json(db, rule, customer, 0, 0, SCRM_RULES_TRACE_STEPS, &out));
	return take(out);
}

static int64_t event(scrm_db *db, const char *key, const char *type, int64_t c, int64_t amount)
{
	char json[512];
	int n = snprintf(json, sizeof json,
			 "{\"key\":\"%s\",\"type\":\"%s\",\"channel\":\"pos\",\"at\":%lld,\"customer\":%lld",
			 key, type, (long long)clk.now, (long long)c);
	if (amount)
		snprintf(json + n, sizeof json - n, ",\"amount\":%lld,\"currency\":\"CNY\"",
			 (long long)amount);
	strcat(json, "}");
	int64_t id = 0;
	tu_assert_ok(db, scrm_profile_event_add_json(db, json, NULL, &id));
	return id;
}

static int count_with(const cJSON *arr, const char *member)
{
	int n = 0;
	const cJSON *t;
	cJSON_ArrayForEach(t, arr)
		n += cJSON_GetObjectItemCaseSensitive(t, member) != NULL;
	return n;
}

static int count_before(const cJSON *arr, int64_t before)
{
	int n = 0;
	const cJSON *t;
	cJSON_ArrayForEach(t, arr)
		n += jint(t, "at") < before;
	return n;
}

/* ------------------------------------------------------------------ tests */

START_TEST(test_v5_answers_as_before)
{
	cJSON *x = load_expected();
	ck_assert_int_eq(jint(x, "schema_version"), 5);
	scrm_db *db = open_migrated(x);
	ck_assert_str_eq(tu_sql_file_text(tu_path("v5.db"), "PRAGMA integrity_check"), "ok");

	cJSON *got = trace(db, NULL, 0);
	same_trace("trace (all)", cJSON_GetObjectItem(x, "trace_all"), got);
	cJSON_Delete(got);
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(x, "trace_customer")) {
		char what[64];
		snprintf(what, sizeof what, "trace of customer %s", e->string);
		got = trace(db, NULL, strtoll(e->string, NULL, 10));
		same_trace(what, e, got);
		cJSON_Delete(got);
	}
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(x, "trace_rule")) {
		char what[64];
		snprintf(what, sizeof what, "trace of rule %s", e->string);
		got = trace(db, e->string, 0);
		same_trace(what, e, got);
		cJSON_Delete(got);
	}
	char *out = NULL;
	tu_assert_ok(db, scrm_outbox_list_json(db, NULL, 0, 0, &out));
	got = take(out);
	same_json("outbox (all)", cJSON_GetObjectItem(x, "outbox_all"), got);
	cJSON_Delete(got);
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(x, "tags_customer")) {
		char what[64];
		snprintf(what, sizeof what, "tags of customer %s", e->string);
		tu_assert_ok(db, scrm_tags_customer_json(db, strtoll(e->string, NULL, 10), &out));
		got = take(out);
		same_json(what, e, got);
		cJSON_Delete(got);
	}
	/* Schema 8 rebuilt customer_tag: every old holding kept its history
	 * rows (none became implicit), and the history reads them with ids. */
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM customer_tag WHERE implicit IS NOT NULL"), 0);
	int hist = 0;
	for (int64_t c = 1; c <= 5; c++) {
		char q[96];
		snprintf(q, sizeof q, "SELECT count(*) FROM identity_customers WHERE id = %lld AND root = id",
			 (long long)c);
		if (!tu_sql_int(db, q)) /* merged: its history is its root's */
			continue;
		tu_assert_ok(db, scrm_tags_history_json(db, c, 0, &out));
		got = take(out);
		const cJSON *h;
		cJSON_ArrayForEach(h, got) {
			ck_assert_msg(cJSON_IsNumber(cJSON_GetObjectItem(h, "id")), "history id of customer %lld",
				      (long long)c);
			hist++;
		}
		cJSON_Delete(got);
	}
	ck_assert_int_eq(hist, tu_sql_int(db, "SELECT count(*) FROM tag_history"));
	ck_assert_int_gt(hist, 0);
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(x, "event_stats")) {
		int64_t n = -1, s = -1;
		tu_assert_ok(db, scrm_profile_event_stats(db, jint(e, "customer"), jstr(e, "type"), 0,
							  NULL, &n, &s));
		ck_assert_int_eq(n, jint(e, "count"));
		ck_assert_int_eq(s, jint(e, "sum"));
	}
	scrm_db_close(db);
	/* Closing checkpointed: the migrated file opens again as it is. */
	db = tu_open(tu_path("v5.db"), 0);
	ck_assert_int_eq(tu_sql_int(db, "PRAGMA user_version"), scrm_schema_version());
	scrm_db_close(db);
	cJSON_Delete(x);
}
END_TEST

START_TEST(test_v5_keeps_working)
{
	cJSON *x = load_expected();
	scrm_db *db = open_migrated(x);
	const int64_t a = 1, b = 2, c = 3; /* make_v5.c's first three customers */
	int old = cJSON_GetArraySize(cJSON_GetObjectItem(x, "trace_all"));
	clk.now += HOUR;

	/* Two decisions about one event land in one packed row: view_once has
	 * fired for c before (once), and c's cap is full (2/2 in 7 days). */
	event(db, "mig-1", "view", c, 0);
	ck_assert_int_eq(tu_sql_int(db, "SELECT n FROM rule_trace ORDER BY id DESC LIMIT 1"), 2);
	/* A new order still fires welcome (a holds consent), traced first. */
	clk.now += MIN;
	int64_t ev = event(db, "mig-2", "order", a, 30000);
	cJSON *all = trace(db, NULL, 0);
	ck_assert_int_eq(cJSON_GetArraySize(all), old + 3);
	cJSON *t = cJSON_GetArrayItem(all, 0);
	ck_assert_str_eq(jstr(t, "rule"), "welcome");
	ck_assert_str_eq(jstr(t, "outcome"), "fired");
	ck_assert_int_eq(jint(t, "customer"), a);
	ck_assert_int_eq(jint(t, "at"), clk.now);
	ck_assert_int_eq(jint(t, "event"), ev);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "condition"), "value")));
	bool once = false, cap = false;
	for (int i = 1; i <= 2; i++) {
		t = cJSON_GetArrayItem(all, i);
		ck_assert_int_eq(jint(t, "customer"), c);
		once |= !strcmp(jstr(t, "rule"), "view_once") && !strcmp(jstr(t, "outcome"), "once");
		cap |= !strcmp(jstr(t, "rule"), "cap_view") && !strcmp(jstr(t, "outcome"), "cap_reached");
	}
	ck_assert(once && cap);
	cJSON_Delete(all);
	cJSON *ta = trace(db, NULL, a);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(ta, 0), "rule"), "welcome");
	ck_assert_int_eq(jint(cJSON_GetArrayItem(ta, 0), "event"), ev);
	int a_inputs = count_with(ta, "inputs");
	cJSON_Delete(ta);

	/* Erasing b drops the inputs of its migrated and its new records, and
	 * only those. */
	clk.now += MIN;
	event(db, "mig-3", "order", b, 11000); /* welcome: no_consent, inputs (count) */
	cJSON *tb = trace(db, NULL, b);
	int nb = cJSON_GetArraySize(tb);
	ck_assert_int_ge(count_with(tb, "inputs"), 2);
	cJSON_Delete(tb);
	tu_assert_ok(db, scrm_profile_erase(db, b, "migration test"));
	tb = trace(db, NULL, b);
	ck_assert_int_eq(cJSON_GetArraySize(tb), nb);
	ck_assert_int_eq(count_with(tb, "inputs"), 0);
	ck_assert_int_eq(count_with(tb, "condition"), 0);
	cJSON_Delete(tb);
	ta = trace(db, NULL, a);
	ck_assert_int_eq(count_with(ta, "inputs"), a_inputs);
	cJSON_Delete(ta);

	/* Pruning counts decisions, migrated rows (one each) and packed ones. */
	all = trace(db, NULL, 0);
	int total = cJSON_GetArraySize(all);
	int64_t tick = T0 + 2 * DAY, deleted = -1;
	int early = count_before(all, tick);
	ck_assert_int_gt(early, 0);
	cJSON_Delete(all);
	tu_assert_ok(db, scrm_rules_trace_prune(db, tick, &deleted));
	ck_assert_int_eq(deleted, early);
	all = trace(db, NULL, 0);
	ck_assert_int_eq(cJSON_GetArraySize(all), total - early);
	ck_assert_int_eq(count_before(all, tick), 0);
	cJSON_Delete(all);
	tu_assert_ok(db, scrm_rules_trace_prune(db, clk.now + 1, &deleted));
	ck_assert_int_eq(deleted, total - early);
	all = trace(db, NULL, 0);
	ck_assert_int_eq(cJSON_GetArraySize(all), 0);
	cJSON_Delete(all);
	scrm_db_close(db);
	cJSON_Delete(x);
}
END_TEST

static Suite *migrate_suite(void)
{
	Suite *s = suite_create("migrate");
	TCase *tc = tcase_create("v5");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_v5_answers_as_before);
	tcase_add_test(tc, test_v5_keeps_working);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(migrate_suite());
}
