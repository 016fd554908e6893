/*
 * Property test of the profile engine: random event streams (orders,
 * refunds, views across channels and currencies, replays, merges through
 * observations and by hand, unmerges, erasures, batches committed or rolled
 * back). After every step the maintained figures equal figures recomputed
 * from scratch by SQL over the stored events, every event belongs to a
 * canonical customer, refunds stay with their order and under it, and the
 * money per currency equals a model kept by the test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <sqlite3.h>

#include "scrm/identity.h"
#include "scrm/profile.h"
#include "core-int.h"
#include "testutil.h"

#define T0 INT64_C(1767225600000)
#define MAXEV 4000

static const char *const channels[] = {"pos", "tmall", "wecom", "douyin"};
static const char *const currencies[] = {"CNY", "USD"};

typedef struct mev {
	char key[24];
	int channel;
	int type;       /* 0 view, 1 order, 2 refund */
	int currency;
	int64_t amount;
	int order;      /* refunds: index of the order */
	int64_t refunded;
	bool erased;    /* its customer was erased: key no longer resolves */
} mev;

typedef struct model {
	mev ev[MAXEV];
	int n;
	int64_t money[2]; /* orders - refunds per currency */
} model;

static model M, saved;
static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int pick(int n) { return (int)(rnd() % (uint64_t)n); }

static tu_clock clk;

static long long q1(scrm_db *db, const char *sql) { return tu_sql_int(db, sql); }

/* Print the rows of a query (for a failing check's message). */
static void show(scrm_db *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(scrm__sqlite(db), sql, -1, &st, NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(st); i++)
			fprintf(stderr, "%s|", sqlite3_column_text(st, i) ? (const char *)sqlite3_column_text(st, i) : "NULL");
		fprintf(stderr, "\n");
	}
	sqlite3_finalize(st);
}

/* ------------------------------------------------------------ invariants */

static void check(scrm_db *db, const char *when)
{
	/* Figures equal a recomputation over the events, both ways. */
	static const char *const figures_sql =
		"SELECT customer, count(*), min(at), max(at), sum(type = 'order'), sum(type = 'refund'), "
		"min(CASE WHEN type = 'order' THEN at END), max(CASE WHEN type = 'order' THEN at END) "
		"FROM event GROUP BY customer";
	static const char *const stored_figures =
		"SELECT customer, events, first_seen, last_seen, orders, refunds, first_order, last_order "
		"FROM profile_figures";
	static const char *const money_sql =
		"SELECT customer, currency, sum(type = 'order'), "
		"sum(CASE WHEN type = 'order' THEN amount ELSE 0 END), "
		"sum(CASE WHEN type = 'refund' THEN amount ELSE 0 END) FROM event "
		"WHERE type IN ('order', 'refund') GROUP BY customer, currency";
	static const char *const stored_money =
		"SELECT customer, currency, orders, spend, refunded FROM profile_money";
	char sql[1024];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM (%s EXCEPT %s)", figures_sql, stored_figures);
	if (q1(db, sql) != 0) {
		snprintf(sql, sizeof sql, "%s EXCEPT %s", figures_sql, stored_figures);
		show(db, sql);
		fprintf(stderr, "--- stored\n");
		snprintf(sql, sizeof sql, "%s EXCEPT %s", stored_figures, figures_sql);
		show(db, sql);
		show(db, "SELECT * FROM merge_log ORDER BY id DESC LIMIT 3");
		snprintf(sql, sizeof sql, "SELECT count(*) FROM (%s EXCEPT %s)", figures_sql, stored_figures);
	}
	ck_assert_msg(q1(db, sql) == 0, "%s: figures differ from the events", when);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM (%s EXCEPT %s)", stored_figures, figures_sql);
	ck_assert_msg(q1(db, sql) == 0, "%s: figures without events", when);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM (%s EXCEPT %s)", money_sql, stored_money);
	ck_assert_msg(q1(db, sql) == 0, "%s: money differs from the events", when);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM (%s EXCEPT %s)", stored_money, money_sql);
	ck_assert_msg(q1(db, sql) == 0, "%s: money without events", when);
	/* Every event belongs to a canonical customer; refunds to their order's. */
	ck_assert_msg(q1(db, "SELECT count(*) FROM event e JOIN identity_customers c ON c.id = e.customer "
			     "WHERE c.root <> c.id") == 0, "%s: event of a merged-away id", when);
	ck_assert_msg(q1(db, "SELECT count(*) FROM event r JOIN event o ON o.id = r.refund_of "
			     "WHERE r.customer <> o.customer OR r.currency <> o.currency") == 0,
		      "%s: refund apart from its order", when);
	ck_assert_msg(q1(db, "SELECT count(*) FROM event o WHERE o.type = 'order' AND o.amount < "
			     "(SELECT coalesce(sum(amount), 0) FROM event r WHERE r.refund_of = o.id)") == 0,
		      "%s: refunds above an order", when);
	/* The model's events and money. */
	ck_assert_msg(q1(db, "SELECT count(*) FROM event") == M.n, "%s: %lld events stored, model %d",
		      when, q1(db, "SELECT count(*) FROM event"), M.n);
	for (int c = 0; c < 2; c++) {
		snprintf(sql, sizeof sql, "SELECT coalesce(sum(spend - refunded), 0) FROM profile_money "
					  "WHERE currency = '%s'", currencies[c]);
		ck_assert_msg(q1(db, sql) == M.money[c], "%s: %s money %lld, model %lld", when,
			      currencies[c], q1(db, sql), (long long)M.money[c]);
	}
	/* The JSON of one customer agrees with the events. */
	long long maxc = q1(db, "SELECT coalesce(max(customer), 0) FROM event");
	if (maxc <= 0)
		return;
	int64_t c = 1 + pick((int)maxc);
	char *out = NULL;
	tu_assert_ok(db, scrm_profile_json(db, c, 0, &out));
	cJSON *p = cJSON_Parse(out);
	scrm_free(out);
	ck_assert_ptr_nonnull(p);
	int64_t root = (int64_t)cJSON_GetObjectItem(p, "customer")->valuedouble;
	const cJSON *f = cJSON_GetObjectItem(p, "figures");
	snprintf(sql, sizeof sql, "SELECT count(*) FROM event WHERE customer = %lld", (long long)root);
	ck_assert_int_eq((long long)cJSON_GetObjectItem(f, "events")->valuedouble, q1(db, sql));
	for (int k = 0; k < 2; k++) {
		const cJSON *net = cJSON_GetObjectItem(cJSON_GetObjectItem(f, "net_spend"), currencies[k]);
		const cJSON *aov = cJSON_GetObjectItem(cJSON_GetObjectItem(f, "avg_order_value"), currencies[k]);
		snprintf(sql, sizeof sql, "SELECT coalesce(sum(CASE type WHEN 'order' THEN amount ELSE -amount END), -1) "
					  "FROM event WHERE customer = %lld AND currency = '%s' AND type IN ('order', 'refund')",
			 (long long)root, currencies[k]);
		long long want = q1(db, sql);
		ck_assert_int_eq(net ? (long long)net->valuedouble : -1, want);
		if (want >= 0) {
			snprintf(sql, sizeof sql, "SELECT count(*) FROM event WHERE customer = %lld AND "
						  "currency = '%s' AND type = 'order'", (long long)root, currencies[k]);
			ck_assert_int_eq((long long)aov->valuedouble, want / q1(db, sql));
		}
	}
	const cJSON *ch;
	cJSON_ArrayForEach(ch, cJSON_GetObjectItem(f, "last_seen_by_channel"))
	{
		snprintf(sql, sizeof sql, "SELECT max(at) FROM event WHERE customer = %lld AND channel = '%s'",
			 (long long)root, ch->string);
		ck_assert_int_eq((long long)ch->valuedouble, q1(db, sql));
	}
	cJSON_Delete(p);
}

/* ------------------------------------------------------------ operations */

static void ident(int *kind, char *value, size_t n)
{
	static const char *const kinds[] = {"phone", "wechat_openid", "wechat_unionid"};
	*kind = pick(3);
	int i = pick(12);
	if (*kind == 0)
		snprintf(value, n, "139%08d", 1000 + i);
	else
		snprintf(value, n, "%s%d", kinds[*kind] + 6, i);
}

static const char *kind_name(int k)
{
	static const char *const kinds[] = {"phone", "wechat_openid", "wechat_unionid"};
	return kinds[k];
}

static int64_t max_customer(scrm_db *db)
{
	return q1(db, "SELECT coalesce(max(id), 0) FROM identity_customers");
}

static void record(scrm_db *db, int type)
{
	if (M.n >= MAXEV)
		return;
	mev e = {0};
	bool replay = M.n > 0 && pick(8) == 0;
	int orig = replay ? pick(M.n) : -1;
	if (replay) {
		e = M.ev[orig];
		type = e.type;
	} else {
		snprintf(e.key, sizeof e.key, "K%d", M.n);
		e.channel = pick(4);
		e.type = type;
	}
	scrm_event x = SCRM_EVENT_INIT;
	x.key = e.key;
	x.channel = channels[e.channel];
	x.at_ms = T0 + (int64_t)pick(1000) * 3600000;
	static const char *const types[] = {"view", "order", "refund"};
	x.type = types[type];
	char v1[32], v2[32];
	const char *kinds[2], *values[2] = {v1, v2};
	int k1, k2;
	int64_t named = 0;
	if (type == 2) {
		/* A refund of one of the orders, by its customer (or not). */
		int orders[MAXEV], no = 0;
		for (int i = 0; i < M.n; i++)
			if (M.ev[i].type == 1)
				orders[no++] = i;
		if (!no)
			return;
		if (!replay) {
			e.order = orders[pick(no)];
			e.channel = M.ev[e.order].channel;
			e.currency = pick(10) ? M.ev[e.order].currency : 1 - M.ev[e.order].currency;
			int64_t left = M.ev[e.order].amount - M.ev[e.order].refunded;
			e.amount = 1 + (int64_t)pick((int)(left + 20));
		}
		x.channel = channels[e.channel];
		x.refund_of = M.ev[e.order].key;
		char sql[128];
		snprintf(sql, sizeof sql, "SELECT coalesce((SELECT customer FROM event WHERE channel = '%s' "
					  "AND ikey = '%s'), 0)", channels[e.channel], M.ev[e.order].key);
		named = q1(db, sql);
		if (!named || pick(8) == 0)
			named = 1 + pick((int)max_customer(db));
	} else if (!replay) {
		e.currency = pick(2);
		e.amount = 1 + pick(100000);
	}
	x.has_amount = type != 0 || pick(5) == 0;
	x.amount = e.amount ? e.amount : 1;
	x.currency = x.has_amount ? currencies[e.currency] : NULL;
	bool by_id = named || (max_customer(db) > 0 && pick(2) == 0);
	if (by_id) {
		x.customer = named ? named : 1 + pick((int)max_customer(db));
	} else {
		ident(&k1, v1, sizeof v1);
		kinds[0] = kind_name(k1);
		x.n_ids = 1;
		if (pick(3) == 0) {
			ident(&k2, v2, sizeof v2);
			kinds[1] = kind_name(k2);
			x.n_ids = 2;
		}
		x.id_kinds = kinds;
		x.id_values = values;
	}
	if (type != 0 || x.has_amount)
		e.amount = x.amount;
	int64_t c = 0, id = 0;
	int rc = scrm_profile_event_add(db, &x, &c, &id);
	bool known = false;
	for (int i = 0; i < M.n && !known; i++)
		known = M.ev[i].channel == e.channel && strcmp(M.ev[i].key, e.key) == 0;
	if (known) {
		ck_assert_msg(rc == SCRM_DUPLICATE, "replay of %s: %d %s", e.key, rc, scrm_errmsg(db));
		ck_assert_int_gt(id, 0);
		return;
	}
	if (rc != SCRM_OK) {
		/* Refused: for a reason the model can tell, or an erased customer. */
		ck_assert_msg(rc == SCRM_INVALID || rc == SCRM_STATE || rc == SCRM_NOTFOUND, "%s: %d %s",
			      e.key, rc, scrm_errmsg(db));
		if (type == 2 && rc == SCRM_INVALID && !M.ev[e.order].erased &&
		    e.currency == M.ev[e.order].currency &&
		    e.amount <= M.ev[e.order].amount - M.ev[e.order].refunded)
			tu_assert_contains(scrm_errmsg(db), "belongs to customer");
		return;
	}
	ck_assert_msg(!(type == 2 && (M.ev[e.order].erased || e.currency != M.ev[e.order].currency ||
				      e.amount > M.ev[e.order].amount - M.ev[e.order].refunded)),
		      "refund %s accepted against the model", e.key);
	if (!x.has_amount)
		e.amount = 0;
	M.ev[M.n++] = e;
	if (type == 1)
		M.money[e.currency] += e.amount;
	if (type == 2) {
		M.money[e.currency] -= e.amount;
		M.ev[e.order].refunded += e.amount;
	}
}

static void link_ids(scrm_db *db)
{
	char v1[32], v2[32];
	int k1, k2;
	ident(&k1, v1, sizeof v1);
	ident(&k2, v2, sizeof v2);
	const char *kinds[] = {kind_name(k1), kind_name(k2)}, *values[] = {v1, v2};
	int64_t c;
	tu_assert_ok(db, scrm_identity_observe(db, "pos", T0, kinds, values, 2, &c, NULL));
}

static void manual_merge(scrm_db *db)
{
	int64_t n = max_customer(db);
	if (n < 2)
		return;
	int rc = scrm_identity_merge(db, 1 + pick((int)n), 1 + pick((int)n), NULL, NULL);
	ck_assert_msg(rc == SCRM_OK || rc == SCRM_INVALID || rc == SCRM_CONFLICT || rc == SCRM_STATE,
		      "merge: %s", scrm_errmsg(db));
}

static void unmerge(scrm_db *db)
{
	long long n = q1(db, "SELECT count(*) FROM merge_log WHERE op = 'merge' AND undone_by IS NULL");
	if (n <= 0)
		return;
	char sql[160];
	snprintf(sql, sizeof sql, "SELECT id FROM merge_log WHERE op = 'merge' AND undone_by IS NULL "
				  "ORDER BY id LIMIT 1 OFFSET %d", pick((int)n));
	int rc = scrm_identity_unmerge(db, q1(db, sql), NULL, NULL);
	ck_assert_msg(rc == SCRM_OK || rc == SCRM_STATE, "unmerge: %s", scrm_errmsg(db));
}

static void erase(scrm_db *db)
{
	int64_t n = max_customer(db);
	if (n < 1)
		return;
	int64_t c = 1 + pick((int)n), root = 0;
	int rc = scrm_profile_erase(db, c, NULL);
	ck_assert_msg(rc == SCRM_OK || rc == SCRM_STATE, "erase: %s", scrm_errmsg(db));
	if (rc)
		return;
	tu_assert_ok(db, scrm_identity_canonical(db, c, &root));
	/* Its orders can no longer be named by key. */
	char sql[200];
	for (int i = 0; i < M.n; i++) {
		if (M.ev[i].type != 1 || M.ev[i].erased)
			continue;
		snprintf(sql, sizeof sql, "SELECT count(*) FROM event WHERE channel = '%s' AND ikey = '%s'",
			 channels[M.ev[i].channel], M.ev[i].key);
		M.ev[i].erased = q1(db, sql) == 0;
	}
}

static void step(scrm_db *db)
{
	int r = pick(100);
	if (r < 30)
		record(db, 0);
	else if (r < 60)
		record(db, 1);
	else if (r < 75)
		record(db, 2);
	else if (r < 85)
		link_ids(db);
	else if (r < 90)
		manual_merge(db);
	else if (r < 96)
		unmerge(db);
	else if (r < 97)
		erase(db);
	else
		tu_assert_ok(db, scrm_profile_rfm_refresh(db, T0 + 30 * INT64_C(86400000), NULL));
}

static void run(uint64_t seed, int steps)
{
	rng = seed * 0x9E3779B97F4A7C15ull + 1;
	memset(&M, 0, sizeof M);
	char name[64];
	snprintf(name, sizeof name, "prop%llu.db", (unsigned long long)seed);
	scrm_db *db = tu_open(tu_path(name), SCRM_OPEN_CREATE);
	clk.now = T0;
	tu_assert_ok(db, scrm_db_set_clock(db, tu_clock_fn, &clk));
	char when[64];
	for (int i = 0; i < steps; i++) {
		if (pick(25) == 0) {
			/* A batch of steps, committed or rolled back as a whole. */
			memcpy(&saved, &M, sizeof M);
			tu_assert_ok(db, scrm_db_begin(db));
			int n = 1 + pick(8);
			for (int k = 0; k < n; k++)
				step(db);
			if (pick(2)) {
				tu_assert_ok(db, scrm_db_commit(db));
			} else {
				tu_assert_ok(db, scrm_db_rollback(db));
				memcpy(&M, &saved, sizeof M);
			}
		} else {
			step(db);
		}
		snprintf(when, sizeof when, "seed %llu step %d", (unsigned long long)seed, i);
		check(db, when);
	}
	ck_assert_int_gt(M.n, steps / 4);
	scrm_db_close(db);
}

START_TEST(test_random_streams)
{
	for (uint64_t seed = 1; seed <= 8; seed++)
		run(seed, 150);
}
END_TEST

START_TEST(test_long_stream)
{
	run(4242, 600);
}
END_TEST

static Suite *prop_suite(void)
{
	Suite *s = suite_create("profile_prop");
	TCase *tc = tcase_create("streams");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_random_streams);
	tcase_add_test(tc, test_long_stream);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(prop_suite());
}
