/*
 * Profile benchmark (SPEC.md floors: event ingest with profile upkeep
 * >= 100k events/s batched, RFM refresh over 1M customers <= 5 s). Prints
 * `name value unit` lines.
 *
 *   bench_profile [CUSTOMERS [EVENTS [DBFILE [BATCH]]]]
 *       (defaults: 1000000, 1000000, a temp file, 50000 events per batch)
 *
 * Setup (reported, not a floor): CUSTOMERS customers observed with a member
 * card each. Workload: EVENTS events named by customer id, BATCH per
 * scrm_profile_events_add() call and transaction (made before the clock
 * starts; SCRM_BENCH_INPUT_ORDER=1 applies them in input order), over
 * uniformly random customers, on five channels, arriving in time order
 * (give or take an hour) over one year as a live feed or a chronological
 * import does: 70% views, 30% orders (CNY, 1.00-1000.00) —
 * profile_event_rate. Then EVENTS/10
 * events named by a member card (observed on the way in) —
 * profile_event_ids_rate. Then one RFM + lifecycle refresh of the whole
 * population and scrm_profile_json() of 20k random customers. Then 3 rule
 * tags are defined (orders >= 1, orders >= 2, lifecycle at_risk) and
 * EVENTS/10 more events go in as the first ones did, a day later —
 * profile_event_ruletags_rate: each is stored alone and re-evaluates the
 * tags of its customer. Last,
 * ref_sqlite_insert_ns: the machine's speed at SQLite work, for comparing
 * runs of different days (bench_ref.h).
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

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

static const char *const channels[] = {"wecom", "tmall", "douyin", "youzan", "pos"};

static void die(scrm_db *db, int rc, const char *what)
{
	fprintf(stderr, "bench_profile: %s: %s (%s)\n", what, db ? scrm_errmsg(db) : scrm_errmsg(NULL),
		scrm_errstr(rc));
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void begin(scrm_db *db)
{
	int rc = scrm_db_begin(db);
	if (rc)
		die(db, rc, "begin");
}

static double commit_s; /* time spent committing batches, all phases */

static void commit(scrm_db *db)
{
	double t0 = now_s();
	int rc = scrm_db_commit(db);
	commit_s += now_s() - t0;
	if (rc)
		die(db, rc, "commit");
}

/* n events named by customer id, `batch` per scrm_profile_events_add()
 * call and transaction, at times spread over [from, from + span) in input
 * order (give or take an hour); keys PREFIX0, PREFIX1, ... The seconds
 * spent in the calls and their commits. */
static double ingest_batches(scrm_db *db, scrm_event *evs, char (*keys)[24], int *results,
			     long customers, long total, long batch, unsigned flags,
			     const char *prefix, int64_t from, int64_t span)
{
	double spent = 0;
	for (long i0 = 0; i0 < total; i0 += batch) {
		long n = total - i0 < batch ? total - i0 : batch;
		for (long k = 0; k < n; k++) {
			long i = i0 + k;
			scrm_event *e = &evs[k];
			*e = (scrm_event)SCRM_EVENT_INIT;
			snprintf(keys[k], sizeof keys[k], "%s%ld", prefix, i);
			e->key = keys[k];
			e->channel = channels[rnd() % 5];
			e->customer = (int64_t)(rnd() % (uint64_t)customers) + 1;
			e->at_ms = from + i * (span / total) + (int64_t)(rnd() % (2 * 3600000));
			if (rnd() % 10 < 3) {
				e->type = "order";
				e->has_amount = 1;
				e->amount = 100 + (int64_t)(rnd() % 99901);
				e->currency = "CNY";
			} else {
				e->type = "view";
			}
		}
		double t = now_s();
		begin(db);
		size_t refused;
		int rc = scrm_profile_events_add(db, evs, (size_t)n, flags, results, NULL, NULL, &refused);
		if (rc)
			die(db, rc, "events");
		if (refused)
			die(db, results[0], "refused events");
		commit(db);
		spent += now_s() - t;
	}
	return spent;
}

int main(int argc, char **argv)
{
	long customers = argc > 1 ? atol(argv[1]) : 1000000;
	long total = argc > 2 ? atol(argv[2]) : 1000000;
	long batch = argc > 4 ? atol(argv[4]) : 50000;
	if (customers < 1 || total < 10 || batch < 1) {
		fprintf(stderr, "usage: bench_profile [CUSTOMERS [EVENTS [DBFILE [BATCH]]]]\n");
		return 2;
	}
	char path[256];
	char dir[] = "/tmp/bench_profile.XXXXXX";
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
	int rc = scrm_db_open(path, NULL, &db);
	if (rc)
		die(NULL, rc, "open");

	/* Customers: one member card each. */
	char card[32], key[48];
	const char *kind = "member_card";
	const char *value = card;
	double t = now_s();
	commit_s = 0;
	for (long i = 0; i < customers; i++) {
		if (i % batch == 0)
			begin(db);
		snprintf(card, sizeof card, "M%09ld", i);
		int64_t c;
		if ((rc = scrm_identity_observe(db, "pos", T0 - 400 * DAY + i, &kind, &value, 1, &c, NULL)))
			die(db, rc, "observe");
		if (i % batch == batch - 1 || i == customers - 1)
			commit(db);
	}
	double setup = now_s() - t;

	/* Events named by customer id, a batch per scrm_profile_events_add()
	 * call (the keys and events are made before the clock starts). */
	scrm_event ev = SCRM_EVENT_INIT;
	scrm_event *evs = calloc((size_t)batch, sizeof *evs);
	char(*keys)[24] = calloc((size_t)batch, sizeof *keys);
	int *results = calloc((size_t)batch, sizeof *results);
	if (!evs || !keys || !results) {
		fprintf(stderr, "bench_profile: out of memory\n");
		return 1;
	}
	/* SCRM_BENCH_INPUT_ORDER=1: the same batches applied in input order
	 * (SCRM_EVENTS_INPUT_ORDER), for comparison. */
	const char *io = getenv("SCRM_BENCH_INPUT_ORDER");
	unsigned flags = io && strcmp(io, "1") == 0 ? SCRM_EVENTS_INPUT_ORDER : 0;
	if (flags)
		printf("profile_variant input_order\n");
	commit_s = 0;
	double ingest = ingest_batches(db, evs, keys, results, customers, total, batch, flags, "E",
				       T0, 365 * DAY);
	double ingest_commit = commit_s;

	/* Events named by identifiers. */
	long total_ids = total / 10;
	ev.key = key;
	ev.customer = 0;
	ev.id_kinds = &kind;
	ev.id_values = &value;
	ev.n_ids = 1;
	t = now_s();
	for (long i = 0; i < total_ids; i++) {
		if (i % batch == 0)
			begin(db);
		snprintf(key, sizeof key, "I%ld", i);
		snprintf(card, sizeof card, "M%09" PRIu64, rnd() % (uint64_t)customers);
		ev.channel = channels[rnd() % 5];
		ev.at_ms = T0 + 365 * DAY + i * 1000;
		ev.type = "view";
		if ((rc = scrm_profile_event_add(db, &ev, NULL, NULL)))
			die(db, rc, "event by identifier");
		if (i % batch == batch - 1 || i == total_ids - 1)
			commit(db);
	}
	double ingest_ids = now_s() - t;

	t = now_s();
	char *summary = NULL;
	if ((rc = scrm_profile_rfm_refresh(db, T0 + 366 * DAY, &summary)))
		die(db, rc, "refresh");
	double refresh = now_s() - t;

	enum { SAMPLES = 20000 };
	static double lat[SAMPLES];
	for (int i = 0; i < SAMPLES; i++) {
		int64_t c = (int64_t)(rnd() % (uint64_t)customers) + 1;
		char *out = NULL;
		double s = now_s();
		rc = scrm_profile_json(db, c, 0, &out);
		lat[i] = now_s() - s;
		if (rc)
			die(db, rc, "profile");
		scrm_free(out);
	}
	qsort(lat, SAMPLES, sizeof lat[0], cmp_double);

	/* The same ingest with rule tags defined: every event re-evaluates
	 * them for its customer, so it is stored alone (not in a run). */
	static const char *const rtags[] = {
		"{\"name\":\"buyer\",\"expr\":\"profile.figures.orders >= 1\"}",
		"{\"name\":\"repeat\",\"expr\":\"profile.figures.orders >= 2\"}",
		"{\"name\":\"at_risk\",\"expr\":\"profile.lifecycle == 'at_risk'\"}",
	};
	for (size_t i = 0; i < sizeof rtags / sizeof rtags[0]; i++)
		if ((rc = scrm_tags_define(db, rtags[i])))
			die(db, rc, "rule tag");
	long total_tags = total / 10;
	double ingest_tags = ingest_batches(db, evs, keys, results, customers, total_tags, batch,
					    flags, "R", T0 + 366 * DAY, DAY);

	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("profile_event_rate %.0f events/s\n", (double)total / ingest);
	printf("profile_event_commit_share %.2f ratio\n", ingest_commit / ingest);
	printf("profile_event_ids_rate %.0f events/s\n", (double)total_ids / ingest_ids);
	printf("profile_event_ruletags_rate %.0f events/s\n", (double)total_tags / ingest_tags);
	printf("profile_rfm_refresh_s %.3f s\n", refresh);
	printf("profile_get_median_us %.2f us\n", lat[SAMPLES / 2] * 1e6);
	printf("profile_get_p99_us %.2f us\n", lat[SAMPLES * 99 / 100] * 1e6);
	printf("profile_peak_rss_mib %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);
	printf("profile_setup_customers_s %.3f s\n", setup);
	printf("profile_customers %ld count\n", customers);
	printf("profile_events %ld count\n", total + total_ids + total_tags);
	printf("profile_refresh_summary %s\n", summary);
	bench_ref_print();
	scrm_free(summary);
	free(evs);
	free(keys);
	free(results);
	scrm_db_close(db);
	if (own) {
		char f[300];
		const char *sfx[] = {"", "-wal", "-shm"};
		for (int i = 0; i < 3; i++) {
			snprintf(f, sizeof f, "%s%s", path, sfx[i]);
			unlink(f);
		}
		rmdir(dir);
	}
	return 0;
}
