/*
 * Segment and rule-tag benchmark (SPEC.md floors: a 3-clause segment over
 * 1M customers <= 300 ms; 10 rule tags refreshed over 1M customers <= 5 s).
 * Prints `name value unit` lines.
 *
 *   bench_segments [CUSTOMERS [DBFILE]]   (defaults: 1000000, a temp file)
 *
 * Setup (reported, not a floor): CUSTOMERS customers with a member card,
 * CUSTOMERS events over uniformly random customers in time order over one
 * year (30% orders of 1.00-1000.00 CNY, 70% views), an RFM refresh, and a
 * manual tag "vip" on every tenth customer.
 *
 * segment_query_ms: median of 5 scrm_segment_count() of
 *   profile.rfm.r >= 3 && profile.figures.orders >= 1 && !has_tag("vip")
 * segment_export_ms: scrm_segment_foreach() over the same segment (every id).
 * tag_refresh_s: scrm_tags_refresh() of 10 rule tags, the first time (every
 * holder added); tag_refresh_again_s: the same again a day later (only
 * changes written); tag_refresh_cpu_s, tag_refresh_again_cpu_s: the CPU
 * time (user + system) of each, for comparing on a loaded machine.
 * rfm_tags_refresh_s: the SPEC.md row "RFM + rule-tag refresh over 1M
 * customers <= 5 s" as a host runs it nightly, another day later:
 * scrm_profile_rfm_refresh() of the whole population, then
 * scrm_tags_refresh() of the 10 rule tags over the new scores.
 * Last, ref_sqlite_insert_ns: the machine's speed at SQLite work, for
 * comparing runs of different days (bench_ref.h).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <scrm.h>

#include "bench_ref.h"

#define T0 INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */
#define DAY INT64_C(86400000)

static int64_t now_ms = T0;

static int64_t clock_fn(void *ud)
{
	(void)ud;
	return now_ms;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of the process (user + system): steadier than wall time on a
 * machine shared with other work. */
static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static void check(scrm_db *db, int rc, const char *what)
{
	if (rc) {
		fprintf(stderr, "bench_segments: %s: %s (%s)\n", what,
			db ? scrm_errmsg(db) : scrm_errmsg(NULL), scrm_errstr(rc));
		exit(1);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int count_cb(void *ud, int64_t customer)
{
	(void)customer;
	(*(int64_t *)ud)++;
	return 0;
}

int main(int argc, char **argv)
{
	long customers = argc > 1 ? atol(argv[1]) : 1000000;
	if (customers < 10) {
		fprintf(stderr, "usage: bench_segments [CUSTOMERS [DBFILE]]\n");
		return 2;
	}
	char path[256], dir[] = "/tmp/bench_segments.XXXXXX";
	bool own = argc <= 2;
	if (own) {
		if (!mkdtemp(dir)) {
			perror("mkdtemp");
			return 1;
		}
		snprintf(path, sizeof path, "%s/bench.db", dir);
	} else {
		snprintf(path, sizeof path, "%s", argv[2]);
	}
	scrm_db *db;
	check(NULL, scrm_db_open(path, NULL, &db), "open");
	check(db, scrm_db_set_clock(db, clock_fn, NULL), "clock");

	const long batch = 50000;
	double t = now_s();
	char card[32], key[32];
	const char *kind = "member_card", *value = card;
	for (long i = 0; i < customers; i++) {
		if (i % batch == 0)
			check(db, scrm_db_begin(db), "begin");
		snprintf(card, sizeof card, "M%09ld", i);
		int64_t c;
		check(db, scrm_identity_observe(db, "pos", T0 - 30 * DAY, &kind, &value, 1, &c, NULL),
		      "observe");
		if (i % batch == batch - 1 || i == customers - 1)
			check(db, scrm_db_commit(db), "commit");
	}
	static const char *const channels[] = {"wecom", "tmall", "douyin", "youzan", "pos"};
	scrm_event ev = SCRM_EVENT_INIT;
	ev.key = key;
	for (long i = 0; i < customers; i++) {
		if (i % batch == 0)
			check(db, scrm_db_begin(db), "begin");
		snprintf(key, sizeof key, "E%ld", i);
		ev.channel = channels[rnd() % 5];
		ev.customer = (int64_t)(rnd() % (uint64_t)customers) + 1;
		ev.at_ms = T0 + i * (365 * DAY / customers);
		bool order = rnd() % 10 < 3;
		ev.type = order ? "order" : "view";
		ev.has_amount = order;
		ev.amount = order ? 100 + (int64_t)(rnd() % 99901) : 0;
		ev.currency = order ? "CNY" : NULL;
		check(db, scrm_profile_event_add(db, &ev, NULL, NULL), "event");
		if (i % batch == batch - 1 || i == customers - 1)
			check(db, scrm_db_commit(db), "commit");
	}
	now_ms = T0 + 366 * DAY;
	check(db, scrm_profile_rfm_refresh(db, now_ms, NULL), "rfm refresh");
	check(db, scrm_tags_define(db, "{\"name\":\"vip\"}"), "define vip");
	check(db, scrm_db_begin(db), "begin");
	for (long i = 1; i <= customers; i += 10)
		check(db, scrm_tag_add(db, i, "vip", "bench"), "tag add");
	check(db, scrm_db_commit(db), "commit");
	double setup = now_s() - t;

	const char *seg = "profile.rfm.r >= 3 && profile.figures.orders >= 1 && !has_tag(\"vip\")";
	double q[5];
	int64_t n = 0;
	for (int i = 0; i < 5; i++) {
		t = now_s();
		check(db, scrm_segment_count(db, seg, &n), "segment count");
		q[i] = now_s() - t;
	}
	qsort(q, 5, sizeof q[0], cmp_double);
	int64_t m = 0;
	t = now_s();
	check(db, scrm_segment_foreach(db, seg, count_cb, &m), "segment foreach");
	double export_s = now_s() - t;
	if (m != n) {
		fprintf(stderr, "bench_segments: count %" PRId64 " but foreach gave %" PRId64 "\n", n, m);
		return 1;
	}
	char *plan = NULL;
	check(db, scrm_segment_explain_json(db, seg, &plan), "explain");
	bool sql = strstr(plan, "\"plan\":\"sql\"") != NULL;
	scrm_free(plan);

	static const char *const tags[10][2] = {
		{"buyer", "profile.figures.orders >= 1"},
		{"repeat", "profile.figures.orders >= 2"},
		{"champion", "profile.rfm.r >= 4 && profile.rfm.f >= 4 && profile.rfm.m >= 4"},
		{"big_spender", "profile.figures.net_spend.CNY >= 100000"},
		{"lapsed", "days_since(profile.figures.last_order) > 90"},
		{"browser", "profile.figures.events >= 1 && profile.figures.orders == 0"},
		{"at_risk", "profile.lifecycle == \"at_risk\""},
		{"active_or_new", "profile.lifecycle in [\"active\", \"new\"]"},
		{"vip_buyer", "has_tag(\"vip\") && profile.figures.orders >= 1"},
		{"low_value", "profile.rfm.m <= 2 || profile.rfm.m == null"},
	};
	char def[512];
	for (int i = 0; i < 10; i++) {
		/* {"name":…,"expr":…} with the expression's quotes escaped */
		int k = snprintf(def, sizeof def, "{\"name\":\"%s\",\"expr\":\"", tags[i][0]);
		for (const char *p = tags[i][1]; *p && k < (int)sizeof def - 4; p++) {
			if (*p == '"')
				def[k++] = '\\';
			def[k++] = *p;
		}
		snprintf(def + k, sizeof def - (size_t)k, "\"}");
		check(db, scrm_tags_define(db, def), def);
	}
	char *sum = NULL;
	t = now_s();
	double c = cpu_s();
	check(db, scrm_tags_refresh(db, NULL, &sum), "tags refresh");
	double refresh1 = now_s() - t, cpu1 = cpu_s() - c;
	scrm_free(sum);
	now_ms += DAY;
	t = now_s();
	c = cpu_s();
	check(db, scrm_tags_refresh(db, NULL, &sum), "tags refresh again");
	double refresh2 = now_s() - t, cpu2 = cpu_s() - c;
	scrm_free(sum);
	now_ms += DAY;
	t = now_s();
	check(db, scrm_profile_rfm_refresh(db, now_ms, NULL), "nightly rfm refresh");
	check(db, scrm_tags_refresh(db, NULL, &sum), "nightly tags refresh");
	double nightly = now_s() - t;

	printf("segment_query_ms %.1f ms\n", q[2] * 1e3);
	printf("segment_export_ms %.1f ms\n", export_s * 1e3);
	printf("segment_members %" PRId64 " count\n", n);
	printf("segment_plan_sql %d bool\n", sql ? 1 : 0);
	printf("tag_refresh_s %.3f s\n", refresh1);
	printf("tag_refresh_again_s %.3f s\n", refresh2);
	printf("tag_refresh_cpu_s %.3f s\n", cpu1);
	printf("tag_refresh_again_cpu_s %.3f s\n", cpu2);
	printf("rfm_tags_refresh_s %.3f s\n", nightly);
	printf("segments_setup_s %.1f s\n", setup);
	printf("segments_customers %ld count\n", customers);
	printf("tag_refresh_summary %s\n", sum);
	bench_ref_print();
	scrm_free(sum);
	scrm_db_close(db);
	if (own) {
		const char *sfx[] = {"", "-wal", "-shm"};
		for (int i = 0; i < 3; i++) {
			char f[300];
			snprintf(f, sizeof f, "%s%s", path, sfx[i]);
			unlink(f);
		}
		rmdir(dir);
	}
	return 0;
}
