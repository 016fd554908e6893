/*
 * Rule engine benchmark (SPEC.md floor: rules on event, 50 active rules,
 * one event <= 20 us median). Prints `name value unit` lines.
 *
 *   bench_rules_engine [CUSTOMERS [EVENTS [DBFILE]]]
 *       (defaults: 5000 customers, 20000 events, a temp file)
 *
 * Setup (not timed): CUSTOMERS customers (a phone each), half with a level
 * attribute, a fifth with a time zone and a birthday, 70% with marketing
 * consent; two cap groups (marketing: 3 per rolling 7 days; service: 2 per
 * calendar week in the customer's time zone); 50 active rules: 45 event
 * rules, 5 on each of 9 event types (conditions over the event, its props,
 * profile attributes, has_tag() and count(); host actions into the
 * outbox; tag.add; caps, cooldown, once, quiet hours, consent), 3 absence
 * rules and 2 birthday rules.
 *
 * Workload: EVENTS events named by customer id over random customers and
 * the 9 types, 10 simulated seconds apart (the handle's clock follows), in
 * batches of 1000 (a till or an import batches; commit time is reported
 * separately). Each scrm_profile_event_add() call is timed: that is the
 * event stored with its profile upkeep plus every rule it triggers
 * (conditions, limits, outbox, trace) — rules_event_median_us / p99. The
 * same workload with every rule disabled gives the baseline
 * event_norules_median_us; the difference of the medians is
 * rules_overhead_median_us. rules_event_no_false_trace_median_us: the same
 * with trace.condition_false off. SCRM_BENCH_NO_PROFILE=1 replaces the two
 * conditions that call the profile engine (an attribute, count()) by
 * conditions on the event, isolating the rule engine's own cost. Last,
 * ref_sqlite_insert_ns: the machine's speed at SQLite work, for comparing
 * runs of different days (bench_ref.h).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <scrm.h>

#include "bench_ref.h"

#define T0 INT64_C(1767582000000) /* 2026-01-05T03:00:00Z, 11:00 in Shanghai */
#define BATCH 1000

static const char *const types[] = {"view",  "cart_add", "order",  "message", "coupon_redeem",
				    "login", "share",    "review", "visit"};
#define NTYPES 9

static int64_t clock_now = T0;
static int64_t fake_clock(void *ud)
{
	(void)ud;
	return clock_now;
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
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

static void die(scrm_db *db, int rc, const char *what)
{
	fprintf(stderr, "bench_rules_engine: %s: %s (%s)\n", what,
		db ? scrm_errmsg(db) : scrm_errmsg(NULL), scrm_errstr(rc));
	exit(1);
}

#define CHECK(db, call, what)                 \
	do {                                  \
		int rc_ = (call);             \
		if (rc_)                      \
			die(db, rc_, what);   \
	} while (0)

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Append one rule to buf: the template with $ID and $TYPE replaced. */
static size_t rule(char *buf, size_t cap, size_t len, const char *tmpl, const char *type, int i)
{
	char id[64];
	snprintf(id, sizeof id, "%s_%d", type, i);
	if (len > 1)
		buf[len++] = ',';
	for (const char *p = tmpl; *p && len + 64 < cap;) {
		if (strncmp(p, "$ID", 3) == 0) {
			len += (size_t)snprintf(buf + len, cap - len, "%s", id);
			p += 3;
		} else if (strncmp(p, "$TYPE", 5) == 0) {
			len += (size_t)snprintf(buf + len, cap - len, "%s", type);
			p += 5;
		} else {
			buf[len++] = *p++;
		}
	}
	buf[len] = '\0';
	return len;
}

/* SCRM_BENCH_NO_PROFILE=1: the two conditions that read the profile
 * (an attribute; count()) read event fields instead, to tell the rule
 * engine's own cost from the profile engine's read calls. */
static const char *const no_profile[] = {
	"{\"id\":\"$ID\",\"priority\":20,\"trigger\":{\"type\":\"event\",\"event\":\"$TYPE\"},"
	"\"condition\":\"event.channel == \\\"youzan\\\" && !has_tag(\\\"vip\\\")\","
	"\"actions\":[{\"type\":\"tag.add\",\"tag\":\"vip\"},{\"type\":\"push_message\","
	"\"params\":{\"template\":\"vip_welcome\"}}],"
	"\"limits\":{\"group\":\"marketing\",\"cooldown\":\"1d\"}}",
	"{\"id\":\"$ID\",\"priority\":30,\"trigger\":{\"type\":\"event\",\"event\":\"$TYPE\"},"
	"\"condition\":\"event.channel in [\\\"pos\\\", \\\"wecom\\\"] && event.amount >= 90000\","
	"\"actions\":[{\"type\":\"notify_staff\",\"params\":{\"queue\":\"loyal\"}}],"
	"\"limits\":{\"group\":\"service\",\"quiet_hours\":true}}",
};

static void load_rules(scrm_db *db)
{
	static const char *fmts[] = {
		"{\"id\":\"$ID\",\"priority\":10,\"trigger\":{\"type\":\"event\",\"event\":\"$TYPE\"},"
		"\"condition\":\"event.channel == \\\"tmall\\\" || event.amount >= 50000\","
		"\"actions\":[{\"type\":\"send_coupon\",\"params\":{\"coupon\":\"C10\"},"
		"\"consent\":\"marketing\"}],\"limits\":{\"group\":\"marketing\"}}",
		"{\"id\":\"$ID\",\"priority\":20,\"trigger\":{\"type\":\"event\",\"event\":\"$TYPE\"},"
		"\"condition\":\"profile.attributes.level == \\\"gold\\\" && !has_tag(\\\"vip\\\")\","
		"\"actions\":[{\"type\":\"tag.add\",\"tag\":\"vip\"},{\"type\":\"push_message\","
		"\"params\":{\"template\":\"vip_welcome\"}}],"
		"\"limits\":{\"group\":\"marketing\",\"cooldown\":\"1d\"}}",
		"{\"id\":\"$ID\",\"priority\":30,\"trigger\":{\"type\":\"event\",\"event\":\"$TYPE\"},"
		"\"condition\":\"event.channel in [\\\"pos\\\", \\\"wecom\\\"] && count(\\\"order\\\", 30d) >= 2\","
		"\"actions\":[{\"type\":\"notify_staff\",\"params\":{\"queue\":\"loyal\"}}],"
		"\"limits\":{\"group\":\"service\",\"quiet_hours\":true}}",
		"{\"id\":\"$ID\",\"priority\":40,\"trigger\":{\"type\":\"event\",\"event\":\"$TYPE\"},"
		"\"actions\":[{\"type\":\"track_first\"}],\"limits\":{\"once\":true}}",
		"{\"id\":\"$ID\",\"priority\":50,\"trigger\":{\"type\":\"event\",\"event\":\"$TYPE\"},"
		"\"condition\":\"event.props.sku == \\\"A1\\\" && event.props.store != null\","
		"\"actions\":[{\"type\":\"push_message\",\"params\":{\"template\":\"a1\"}}],"
		"\"limits\":{\"group\":\"service\",\"consent\":\"marketing\"}}",
	};
	const char *np = getenv("SCRM_BENCH_NO_PROFILE");
	if (np && strcmp(np, "1") == 0) {
		fmts[1] = no_profile[0];
		fmts[2] = no_profile[1];
		printf("rules_variant no_profile_reads\n");
	}
	size_t cap = 1 << 16, len = 1;
	char *buf = malloc(cap);
	buf[0] = '[';
	for (int t = 0; t < NTYPES; t++)
		for (int i = 0; i < 5; i++)
			len = rule(buf, cap, len, fmts[i], types[t], i);
	len += (size_t)snprintf(
		buf + len, cap - len,
		",{\"id\":\"cart_abandon\",\"trigger\":{\"type\":\"absence\",\"start\":\"cart_add\","
		"\"missing\":\"order\",\"within\":\"72h\"},\"actions\":[{\"type\":\"send_coupon\","
		"\"consent\":\"marketing\"}],\"limits\":{\"group\":\"marketing\"}}"
		",{\"id\":\"browse_abandon\",\"trigger\":{\"type\":\"absence\",\"start\":\"view\","
		"\"missing\":\"order\",\"within\":\"7d\",\"match\":\"event.props.sku == start.props.sku\"},"
		"\"actions\":[{\"type\":\"push_message\"}],\"limits\":{\"cooldown\":\"7d\"}}"
		",{\"id\":\"coupon_unused\",\"trigger\":{\"type\":\"absence\",\"start\":\"coupon_redeem\","
		"\"missing\":\"order\",\"within\":\"1d\"},\"actions\":[{\"type\":\"push_message\"}]}"
		",{\"id\":\"birthday\",\"trigger\":{\"type\":\"date\",\"attribute\":\"birthday\"},"
		"\"actions\":[{\"type\":\"send_coupon\",\"params\":{\"coupon\":\"BDAY\"}}]}"
		",{\"id\":\"birthday_soon\",\"trigger\":{\"type\":\"date\",\"attribute\":\"birthday\","
		"\"days_before\":7},\"actions\":[{\"type\":\"push_message\"}]}]");
	CHECK(db, scrm_rules_load(db, buf, NULL), "loading rules");
	free(buf);
}

static void setup(scrm_db *db, long customers)
{
	CHECK(db,
	      scrm_rules_config_set(
		      db, "{\"groups\":{\"marketing\":{\"max\":3,\"per\":\"7d\"},"
			  "\"service\":{\"max\":2,\"per\":\"week\",\"on_cap\":\"defer\"}}}"),
	      "config");
	CHECK(db, scrm_tags_define(db, "{\"name\":\"vip\"}"), "tags");
	const char *kind = "phone";
	char phone[32], attrs[160];
	const char *value = phone;
	CHECK(db, scrm_db_begin(db), "begin");
	for (long i = 0; i < customers; i++) {
		snprintf(phone, sizeof phone, "138%08ld", i);
		int64_t c;
		CHECK(db, scrm_identity_observe(db, "pos", 0, &kind, &value, 1, &c, NULL), "observe");
		int n = snprintf(attrs, sizeof attrs, "{\"level\":\"%s\"",
				 i % 2 ? "gold" : (i % 3 ? "silver" : "basic"));
		if (i % 5 == 0)
			n += snprintf(attrs + n, sizeof attrs - (size_t)n,
				      ",\"tz\":\"%s\",\"birthday\":\"19%02ld-%02ld-%02ld\"",
				      i % 10 ? "Asia/Tokyo" : "Asia/Shanghai", 60 + i % 40, 1 + i % 12,
				      1 + i % 28);
		snprintf(attrs + n, sizeof attrs - (size_t)n, "}");
		CHECK(db, scrm_profile_set_json(db, c, attrs), "attributes");
		if (i % 10 < 7)
			CHECK(db, scrm_profile_consent_set(db, c, "marketing", 1, 0, "wecom"), "consent");
	}
	CHECK(db, scrm_db_commit(db), "commit");
}

static const char *const channels[] = {"tmall", "pos", "wecom", "douyin", "youzan"};

/* Run `total` events; per-call times into lat[]. Returns commit ms total. */
static double run(scrm_db *db, long customers, long total, const char *prefix, double *lat)
{
	scrm_event ev = SCRM_EVENT_INIT;
	char key[48], props[96];
	ev.key = key;
	double commit_us = 0;
	for (long i = 0; i < total; i++) {
		if (i % BATCH == 0)
			CHECK(db, scrm_db_begin(db), "begin");
		clock_now += 10000;
		snprintf(key, sizeof key, "%s%ld", prefix, i);
		ev.type = types[rnd() % NTYPES];
		ev.channel = channels[rnd() % 5];
		ev.customer = (int64_t)(rnd() % (uint64_t)customers) + 1;
		ev.at_ms = clock_now;
		ev.has_amount = strcmp(ev.type, "order") == 0;
		ev.amount = ev.has_amount ? 100 + (int64_t)(rnd() % 99901) : 0;
		ev.currency = ev.has_amount ? "CNY" : NULL;
		snprintf(props, sizeof props, "{\"sku\":\"%c%d\",\"store\":\"SH-%02d\"}",
			 (char)('A' + rnd() % 3), (int)(1 + rnd() % 3), (int)(rnd() % 20));
		ev.props_json = props;
		double t = now_us();
		int rc = scrm_profile_event_add(db, &ev, NULL, NULL);
		lat[i] = now_us() - t;
		if (rc)
			die(db, rc, "event");
		if (i % BATCH == BATCH - 1 || i == total - 1) {
			t = now_us();
			CHECK(db, scrm_db_commit(db), "commit");
			commit_us += now_us() - t;
		}
	}
	return commit_us;
}

static double pct(double *v, long n, double p)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	long i = (long)(p * (double)(n - 1));
	return v[i];
}

static long long count(scrm_db *db, const char *state)
{
	char *out = NULL;
	CHECK(db, scrm_outbox_list_json(db, state, 0, 0, &out), "outbox");
	long long n = 0;
	for (const char *p = out; (p = strstr(p, "\"id\":")); p++)
		n++;
	scrm_free(out);
	return n;
}

int main(int argc, char **argv)
{
	long customers = argc > 1 ? atol(argv[1]) : 5000;
	long total = argc > 2 ? atol(argv[2]) : 20000;
	if (customers < 10 || total < 10) {
		fprintf(stderr, "usage: bench_rules_engine [CUSTOMERS [EVENTS [DBFILE]]]\n");
		return 2;
	}
	char path[256], dir[] = "/tmp/bench_rules_engine.XXXXXX";
	bool own = argc <= 3;
	if (own) {
		if (!mkdtemp(dir)) {
			perror("mkdtemp");
			return 1;
		}
		snprintf(path, sizeof path, "%s/bench.db", dir);
	} else {
		snprintf(path, sizeof path, "%s", argv[3]);
	}
	scrm_db *db;
	scrm_db_options *opts;
	CHECK(NULL, scrm_db_options_new(&opts), "options");
	scrm_db_options_set_clock(opts, fake_clock, NULL);
	CHECK(NULL, scrm_db_open(path, opts, &db), "open");
	scrm_db_options_free(opts);
	setup(db, customers);
	load_rules(db);
	char *sum = NULL;
	CHECK(db, scrm_rules_tick(db, clock_now, &sum), "tick");
	scrm_free(sum);

	double *lat = malloc((size_t)total * sizeof *lat);
	/* Warm-up (caches, statements), not counted. */
	run(db, customers, total / 10 + 1, "W", lat);
	long long outbox0 = count(db, NULL);
	double commit_us = run(db, customers, total, "E", lat);
	double sum_us = 0;
	for (long i = 0; i < total; i++)
		sum_us += lat[i];
	long long outbox = count(db, NULL) - outbox0;
	double med = pct(lat, total, 0.5), p99 = pct(lat, total, 0.99);
	CHECK(db, scrm_rules_tick(db, clock_now + 8 * 86400000LL, &sum), "tick");
	printf("rules_event_median_us %.2f us\n", med);
	printf("rules_event_p99_us %.2f us\n", p99);
	printf("rules_event_mean_us %.2f us\n", sum_us / (double)total);
	printf("rules_event_commit_per_event_us %.2f us\n", commit_us / (double)total);
	printf("rules_active %d count\n", 50);
	printf("rules_outbox_per_event %.3f count\n", (double)outbox / (double)total);
	printf("rules_tick_summary %s\n", sum);
	scrm_free(sum);

	/* The same workload without tracing evaluations whose condition was
	 * false (scrm_rules_config_set trace.condition_false). */
	CHECK(db, scrm_rules_config_set(db, "{\"trace\":{\"condition_false\":false}}"), "config");
	run(db, customers, total / 10 + 1, "Y", lat);
	run(db, customers, total, "F", lat);
	printf("rules_event_no_false_trace_median_us %.2f us\n", pct(lat, total, 0.5));

	/* Baseline: the same workload with every rule disabled. */
	char *list = NULL;
	CHECK(db, scrm_rules_list_json(db, &list), "list");
	for (const char *p = list; (p = strstr(p, "{\"id\":\"")); p++) {
		char id[64];
		const char *s = p + 7, *e = strchr(s, '"');
		snprintf(id, sizeof id, "%.*s", (int)(e - s), s);
		CHECK(db, scrm_rules_enable(db, id, 0), "disable");
	}
	scrm_free(list);
	run(db, customers, total / 10 + 1, "X", lat);
	run(db, customers, total, "N", lat);
	double base = pct(lat, total, 0.5);
	printf("event_norules_median_us %.2f us\n", base);
	printf("rules_overhead_median_us %.2f us\n", med - base);
	printf("rules_customers %ld count\n", customers);
	printf("rules_events %ld count\n", total);
	bench_ref_print();
	free(lat);
	scrm_db_close(db);
	if (own) {
		char f[300];
		snprintf(f, sizeof f, "%s-wal", path);
		unlink(f);
		snprintf(f, sizeof f, "%s-shm", path);
		unlink(f);
		unlink(path);
		rmdir(dir);
	}
	return 0;
}
