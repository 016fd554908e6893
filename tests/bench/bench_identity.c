/*
 * Identity benchmark (SPEC.md floors: >= 100k observations/s, resolve
 * <= 5 us median, peak RSS <= 256 MiB). Prints `name value unit` lines.
 *
 *   bench_identity [OBSERVATIONS [DBFILE [BATCH]]]
 *       (defaults: 1000000, a temp file, 50000 observations per batch)
 *
 * Workload: observations over ~0.7 x N persons across 5 channels, batched
 * 10k per transaction into a file-backed WAL database. About 68% introduce
 * a new person, 30% link to a known customer (half attach a new openid, half
 * change nothing), 2% carry identifiers of two different customers (merge).
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

enum { CH_WECOM, CH_TMALL, CH_DOUYIN, CH_YOUZAN, CH_POS, NCH };
static const char *const channels[NCH] = {"wecom", "tmall", "douyin", "youzan", "pos"};

/* The channel a person was first seen on, derived from the person number. */
static int person_channel(uint64_t p) { return (int)((p * 2654435761u >> 7) % NCH); }

/* The identifier a person was first seen with (besides the phone). */
static void primary_id(uint64_t p, const char **kind, char *buf, size_t n)
{
	switch (person_channel(p)) {
	case CH_WECOM: *kind = "wecom_external_userid"; snprintf(buf, n, "wm%" PRIu64, p); break;
	case CH_TMALL: *kind = "tmall_buyer_nick"; snprintf(buf, n, "nick_%" PRIu64, p); break;
	case CH_DOUYIN: *kind = "douyin_openid"; snprintf(buf, n, "dy%" PRIu64, p); break;
	case CH_YOUZAN: *kind = "youzan_fans_id"; snprintf(buf, n, "yz%" PRIu64, p); break;
	default: *kind = "member_card"; snprintf(buf, n, "M%08" PRIu64, p); break;
	}
}

static void phone_of(uint64_t p, char *buf, size_t n)
{
	/* Formats vary the way channel exports do; all normalize to one value. */
	uint64_t num = 13000000000ull + p * 7919 % 999999999ull;
	switch (p % 3) {
	case 0: snprintf(buf, n, "%" PRIu64, num); break;
	case 1: snprintf(buf, n, "+86 %" PRIu64, num); break;
	default:
		snprintf(buf, n, "%03" PRIu64 "-%04" PRIu64 "-%04" PRIu64, num / 100000000,
			 num / 10000 % 10000, num % 10000);
	}
}

static void die(scrm_db *db, int rc, const char *what)
{
	fprintf(stderr, "bench_identity: %s: %s (%s)\n", what, db ? scrm_errmsg(db) : scrm_errmsg(NULL),
		scrm_errstr(rc));
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long total = argc > 1 ? atol(argv[1]) : 1000000;
	long batch = argc > 3 ? atol(argv[3]) : 50000;
	if (total < 1 || batch < 1) {
		fprintf(stderr, "usage: bench_identity [OBSERVATIONS [DBFILE [BATCH]]]\n");
		return 2;
	}
	char path[256];
	char dir[] = "/tmp/bench_identity.XXXXXX";
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
	int rc = scrm_db_open(path, NULL, &db);
	if (rc)
		die(NULL, rc, "open");

	uint64_t persons = 0;
	long merges_sent = 0, links = 0;
	char v1[64], v2[64];
	const char *kinds[2], *values[2] = {v1, v2};
	double t0 = now_s();
	for (long i = 0; i < total; i++) {
		if (i % batch == 0 && (rc = scrm_db_begin(db)))
			die(db, rc, "begin");
		unsigned roll = (unsigned)(rnd() % 100);
		size_t n = 2;
		int ch;
		if (persons < 2 || roll < 68) {
			uint64_t p = persons++;
			primary_id(p, &kinds[0], v1, sizeof v1);
			ch = person_channel(p);
			kinds[1] = "phone";
			phone_of(p, v2, sizeof v2);
			if (ch == CH_DOUYIN)
				n = 1; /* Douyin exports carry no phone */
		} else if (roll < 98) {
			uint64_t q = rnd() % persons;
			primary_id(q, &kinds[0], v1, sizeof v1);
			ch = (int)(rnd() % NCH);
			links++;
			if (roll < 83) {
				kinds[1] = "wechat_openid";
				snprintf(v2, sizeof v2, "op%" PRIu64 "_%ld", q, i);
			} else {
				n = 1;
			}
		} else {
			/* Identifiers of two different people seen together: merge. */
			uint64_t a = rnd() % persons, b = rnd() % persons;
			if (a == b)
				b = (b + 1) % persons;
			primary_id(a, &kinds[0], v1, sizeof v1);
			primary_id(b, &kinds[1], v2, sizeof v2);
			ch = CH_POS;
			merges_sent++;
		}
		int64_t customer;
		rc = scrm_identity_observe(db, channels[ch], 1767225600000 + i * 1000, kinds, values, n,
					   &customer, NULL);
		if (rc)
			die(db, rc, "observe");
		if ((i % batch == batch - 1 || i == total - 1) && (rc = scrm_db_commit(db)))
			die(db, rc, "commit");
	}
	double elapsed = now_s() - t0;

	/* Warm resolve: identifiers of random known persons. */
	enum { SAMPLES = 20000 };
	static double lat[SAMPLES];
	for (int i = 0; i < SAMPLES; i++) {
		uint64_t q = rnd() % persons;
		const char *kind;
		if (i & 1) {
			primary_id(q, &kind, v1, sizeof v1);
		} else {
			kind = "phone";
			phone_of(q, v1, sizeof v1);
			if (person_channel(q) == CH_DOUYIN)
				primary_id(q, &kind, v1, sizeof v1);
		}
		int64_t c;
		double s = now_s();
		rc = scrm_identity_resolve(db, kind, v1, &c);
		lat[i] = now_s() - s;
		if (rc)
			die(db, rc, "resolve");
	}
	qsort(lat, SAMPLES, sizeof lat[0], cmp_double);

	char *info = NULL;
	long long customers = 0, merges = 0, conflicts = 0;
	if (scrm_db_info_json(db, &info) == SCRM_OK) {
		const char *p;
		if ((p = strstr(info, "\"customer\":")))
			customers = atoll(p + 11);
		if ((p = strstr(info, "\"merge_log\":")))
			merges = atoll(p + 12);
		if ((p = strstr(info, "\"id_conflict\":")))
			conflicts = atoll(p + 14);
		scrm_free(info);
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("identity_observe_rate %.0f obs/s\n", (double)total / elapsed);
	printf("identity_resolve_median_us %.2f us\n", lat[SAMPLES / 2] * 1e6);
	printf("identity_resolve_p99_us %.2f us\n", lat[SAMPLES * 99 / 100] * 1e6);
	printf("identity_peak_rss_mib %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);
	printf("identity_observations %ld count\n", total);
	printf("identity_persons %" PRIu64 " count\n", persons);
	printf("identity_link_observations %ld count\n", links);
	printf("identity_customers %lld count\n", customers);
	printf("identity_merges %lld count\n", merges);
	printf("identity_conflicts %lld count\n", conflicts);
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
	(void)merges_sent;
	return 0;
}
