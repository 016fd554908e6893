/*
 * Rule-evaluator benchmarks: prints one "name value unit" line per figure.
 * It measures and never fails on time. Add new figures as functions in
 * the `figures` table at the bottom.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <scrm/rules.h>

#define NREC 1024 /* distinct input records cycled through */

typedef struct rec {
	const char *origin, *country, *text;
	size_t origin_len, country_len, text_len;
	int64_t value, adults;
} rec;

static rec recs[NREC];

static volatile uint64_t sink; /* results go here so no loop is optimised away */

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rng = 0x9E3779B97F4A7C15u;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void make_records(void)
{
	static const char *origins[] = {"MOW", "LED", "PEK", "SHA", "CAN", "SVX"};
	static const char *countries[] = {"RU", "CN", "DE", "US", "KZ"};
	static const char *texts[] = {
		"我要退货，质量有问题", "什么时候发货？", "please refund my order 12345",
		"物流太慢了", "商品很好，谢谢", "申请退款，尺码不对",
	};
	for (int i = 0; i < NREC; i++) {
		rec *r = &recs[i];
		r->origin = origins[next_rand() % 6];
		r->country = countries[next_rand() % 5];
		r->text = texts[next_rand() % 6];
		r->origin_len = strlen(r->origin);
		r->country_len = strlen(r->country);
		r->text_len = strlen(r->text);
		r->value = (int64_t)(next_rand() % 200);
		r->adults = (int64_t)(next_rand() % 3);
	}
}

static const char *predicate = "(origin == \"MOW\" || country == \"RU\") && "
			       "(value >= 100 || adults == 1)";

/* The same predicate written by hand; noinline so that it is a call, as
 * the evaluator is. */
__attribute__((noinline)) static int native(const rec *r)
{
	return ((r->origin_len == 3 && memcmp(r->origin, "MOW", 3) == 0) ||
		(r->country_len == 2 && memcmp(r->country, "RU", 2) == 0)) &&
	       (r->value >= 100 || r->adults == 1);
}

static long iterations(void)
{
	const char *s = getenv("SCRM_BENCH_ITERS");
	long n = s ? atol(s) : 0;
	return n > 0 ? n : 20000000;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_rules: %s: %s\n", what, scrm_errmsg(NULL));
	exit(1);
}

/* Binding four values and evaluating: what a till does per event. */
static void fig_expr_eval(void)
{
	scrm_expr *e;
	scrm_expr_vars *v;
	if (scrm_expr_compile(predicate, NULL, &e) || scrm_expr_vars_new(e, &v))
		die("compile");
	int so = scrm_expr_var_index(e, "origin"), sc = scrm_expr_var_index(e, "country");
	int sv = scrm_expr_var_index(e, "value"), sa = scrm_expr_var_index(e, "adults");
	long n = iterations();
	uint64_t holds_total = 0;
	double best = 1e300;
	for (int round = 0; round < 3; round++) {
		double t0 = now_ns();
		for (long i = 0; i < n; i++) {
			const rec *r = &recs[i & (NREC - 1)];
			int holds;
			scrm_expr_vars_set_str(v, so, r->origin, r->origin_len);
			scrm_expr_vars_set_str(v, sc, r->country, r->country_len);
			scrm_expr_vars_set_int(v, sv, r->value);
			scrm_expr_vars_set_int(v, sa, r->adults);
			if (scrm_expr_test(e, v, &holds))
				die("eval");
			holds_total += (uint64_t)holds;
		}
		double dt = (now_ns() - t0) / (double)n;
		if (dt < best)
			best = dt;
	}
	sink += holds_total;
	printf("expr_eval_ns %.1f ns\n", best);

	/* The binding share of that figure. */
	best = 1e300;
	for (int round = 0; round < 3; round++) {
		double t0 = now_ns();
		for (long i = 0; i < n; i++) {
			const rec *r = &recs[i & (NREC - 1)];
			scrm_expr_vars_set_str(v, so, r->origin, r->origin_len);
			scrm_expr_vars_set_str(v, sc, r->country, r->country_len);
			scrm_expr_vars_set_int(v, sv, r->value);
			scrm_expr_vars_set_int(v, sa, r->adults);
			__asm__ volatile("" ::: "memory");
		}
		double dt = (now_ns() - t0) / (double)n;
		if (dt < best)
			best = dt;
	}
	printf("expr_bind_ns %.1f ns\n", best);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
}

static void fig_expr_regex(void)
{
	scrm_expr *e;
	scrm_expr_vars *v;
	if (scrm_expr_compile("value >= 10 && matches(text, \"退货|退款|refund\")", NULL, &e) ||
	    scrm_expr_vars_new(e, &v))
		die("compile regex");
	int st = scrm_expr_var_index(e, "text"), sv = scrm_expr_var_index(e, "value");
	long n = iterations() / 10;
	uint64_t holds_total = 0;
	double best = 1e300;
	for (int round = 0; round < 3; round++) {
		double t0 = now_ns();
		for (long i = 0; i < n; i++) {
			const rec *r = &recs[i & (NREC - 1)];
			int holds;
			scrm_expr_vars_set_str(v, st, r->text, r->text_len);
			scrm_expr_vars_set_int(v, sv, r->value);
			if (scrm_expr_test(e, v, &holds))
				die("eval regex");
			holds_total += (uint64_t)holds;
		}
		double dt = (now_ns() - t0) / (double)n;
		if (dt < best)
			best = dt;
	}
	sink += holds_total;
	printf("expr_eval_regex_ns %.1f ns\n", best);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
}

static void fig_native(void)
{
	long n = iterations();
	uint64_t holds_total = 0;
	double best = 1e300;
	for (int round = 0; round < 3; round++) {
		double t0 = now_ns();
		for (long i = 0; i < n; i++)
			holds_total += (uint64_t)native(&recs[i & (NREC - 1)]);
		double dt = (now_ns() - t0) / (double)n;
		if (dt < best)
			best = dt;
	}
	sink += holds_total;
	printf("expr_native_ns %.1f ns\n", best);
}

/* Figures in print order. rules_event_median_us, segment_query_ms and
 * tag_refresh_s join here as the rules, profile and segment engines land. */
static const struct {
	const char *name;
	void (*run)(void);
} figures[] = {
	{"expr_eval", fig_expr_eval},
	{"expr_eval_regex", fig_expr_regex},
	{"expr_native", fig_native},
};

int main(int argc, char **argv)
{
	make_records();
	for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++) {
		/* Arguments, if any, pick figures by name. */
		int want = argc < 2;
		for (int a = 1; a < argc; a++)
			want |= strcmp(argv[a], figures[i].name) == 0;
		if (want) {
			figures[i].run();
			fflush(stdout);
		}
	}
	/* The other figures of the issue come from their own programs. */
	if (argc < 2)
		fprintf(stderr, "bench_rules: rules_event_median_us is printed by bench_rules_engine, "
				"segment_query_ms and tag_refresh_s by bench_segments\n");
	return 0;
}
