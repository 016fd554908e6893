/*
 * Check suite for the expression language's limits and robustness: every
 * configurable limit, hostile regular expressions (which must end in
 * SCRM_LIMIT quickly, never hang), allocation failure at every site, the
 * allocation-free hot path and concurrent evaluation.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "scrm/rules.h"
#include "core-int.h"
#include "testutil.h"
#include "expr_test.h"

/* ------------------------------------------------------------ limits */

START_TEST(test_limit_options)
{
	scrm_expr_options *o = NULL;
	ck_assert_int_eq(scrm_expr_options_new(NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_expr_options_set_limit(NULL, SCRM_EXPR_LIMIT_DEPTH, 3), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, 99, 3), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(NULL), "unknown expression limit 99");
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_DEPTH, 0), SCRM_RANGE);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_DEPTH, -5), SCRM_RANGE);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_DEPTH, 257), SCRM_RANGE);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_DEPTH, 256), SCRM_OK);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_SOURCE, INT64_C(1) << 31),
			 SCRM_RANGE);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_COST, INT64_MAX), SCRM_OK);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_REGEX_HEAP, 1), SCRM_OK);
	scrm_expr_options_free(o);
	scrm_expr_options_free(NULL);
}
END_TEST

START_TEST(test_limit_source)
{
	char buf[512];
	scrm_expr_options *o = NULL;
	ck_assert_int_eq(scrm_expr_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_SOURCE, 16), SCRM_OK);
	ck_assert_int_eq(eval_with("1 + 2 + 3 + 4 + 5", o, NULL, buf, sizeof buf), SCRM_LIMIT);
	tu_assert_contains(buf, "expression longer than the limit of 16 bytes");
	int line = -1, col = -1;
	ck_assert_int_eq(scrm_expr_error_pos(NULL, &line, &col), SCRM_NOTFOUND);
	ck_assert_int_eq(line, 0);
	ck_assert_int_eq(eval_with("1 + 2 + 3 + 4 + ", o, NULL, buf, sizeof buf), SCRM_PARSE);
	scrm_expr_options_free(o);

	/* the default: 64 KiB */
	char *big = repeat("", " ", 65536, "1");
	ck_assert_int_eq(eval_with(big, NULL, NULL, buf, sizeof buf), SCRM_LIMIT);
	tu_assert_contains(buf, "65536 bytes");
	free(big);
	big = repeat("", " ", 65535, "1");
	ck_assert_int_eq(eval_with(big, NULL, NULL, buf, sizeof buf), SCRM_OK);
	ck_assert_str_eq(buf, "1");
	free(big);
}
END_TEST

START_TEST(test_limit_depth)
{
	char buf[512];
	char *s = parens(63);
	ck_assert_int_eq(eval_with(s, NULL, NULL, buf, sizeof buf), SCRM_OK);
	free(s);
	s = parens(65);
	ck_assert_int_eq(eval_with(s, NULL, NULL, buf, sizeof buf), SCRM_LIMIT);
	tu_assert_contains(buf, "1:65: expression nested deeper than 64 levels");
	free(s);
	/* 100 000 levels must fail cleanly, not blow the stack */
	s = parens(100000);
	scrm_expr_options *o = NULL;
	ck_assert_int_eq(scrm_expr_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_SOURCE, 1 << 20), SCRM_OK);
	ck_assert_int_eq(eval_with(s, o, NULL, buf, sizeof buf), SCRM_LIMIT);
	free(s);

	const char *deep[] = {"!", "-", "len(", "[", "lower(", "t ? 1 : ", "n ?? "};
	for (size_t k = 0; k < sizeof deep / sizeof deep[0]; k++) {
		s = repeat("", deep[k], 5000, "1");
		ck_assert_int_eq(eval_with(s, o, NULL, buf, sizeof buf), SCRM_LIMIT);
		tu_assert_contains(buf, "nested deeper than 64 levels");
		free(s);
	}
	/* a long left-leaning chain is deep too */
	s = repeat("1", " + 1", 70, "");
	ck_assert_int_eq(eval_with(s, NULL, NULL, buf, sizeof buf), SCRM_LIMIT);
	free(s);
	s = repeat("1", " + 1", 60, "");
	ck_assert_int_eq(eval_with(s, NULL, NULL, buf, sizeof buf), SCRM_OK);
	ck_assert_str_eq(buf, "61");
	free(s);
	/* but && / || chains are flat: 1000 clauses */
	s = repeat("i == 0", " || i == 1", 1000, "");
	ck_assert_int_eq(eval_with(s, NULL, "{\"i\":1}", buf, sizeof buf), SCRM_OK);
	ck_assert_str_eq(buf, "true");
	free(s);
	/* a lower limit */
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_DEPTH, 3), SCRM_OK);
	ck_assert_int_eq(eval_with("1 + 2 + 3", o, NULL, buf, sizeof buf), SCRM_OK);
	ck_assert_int_eq(eval_with("((1))", o, NULL, buf, sizeof buf), SCRM_OK);
	ck_assert_int_eq(eval_with("1 + 2 + 3 + 4", o, NULL, buf, sizeof buf), SCRM_LIMIT);
	tu_assert_contains(buf, "1:11: expression nested deeper than 3 levels");
	scrm_expr_options_free(o);
}
END_TEST

START_TEST(test_limit_nodes)
{
	char buf[512];
	char *s = repeat("[1", ",1", 4094, "]"); /* 4096 nodes */
	ck_assert_int_eq(eval_with(s, NULL, NULL, buf, sizeof buf), SCRM_OK);
	free(s);
	s = repeat("[1", ",1", 4095, "]");
	ck_assert_int_eq(eval_with(s, NULL, NULL, buf, sizeof buf), SCRM_LIMIT);
	tu_assert_contains(buf, "expression has more than 4096 nodes");
	free(s);
	scrm_expr_options *o = NULL;
	ck_assert_int_eq(scrm_expr_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_NODES, 3), SCRM_OK);
	ck_assert_int_eq(eval_with("1 + 2", o, NULL, buf, sizeof buf), SCRM_OK);
	ck_assert_int_eq(eval_with("1 + 2 + 3", o, NULL, buf, sizeof buf), SCRM_LIMIT);
	tu_assert_contains(buf, "1:9: expression has more than 3 nodes");
	scrm_expr_options_free(o);
}
END_TEST

START_TEST(test_limit_string)
{
	char buf[512];
	scrm_expr_options *o = NULL;
	ck_assert_int_eq(scrm_expr_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_STRING, 10), SCRM_OK);
	ck_assert_int_eq(eval_with("s + s", o, "{\"s\":\"Hello\"}", buf, sizeof buf), SCRM_OK);
	ck_assert_str_eq(buf, "\"HelloHello\"");
	ck_assert_int_eq(eval_with("s + s + s", o, "{\"s\":\"Hello\"}", buf, sizeof buf), SCRM_LIMIT);
	ck_assert_str_eq(buf, "1:7: string longer than the limit of 10 bytes");
	/* lower() makes a string too */
	ck_assert_int_eq(eval_with("lower(s)", o, "{\"s\":\"HelloHello\"}", buf, sizeof buf), SCRM_OK);
	ck_assert_str_eq(buf, "\"hellohello\"");
	ck_assert_int_eq(eval_with("1 + 1 == 2 && lower(s) == \"\"", o, "{\"s\":\"HelloHello!\"}", buf,
				   sizeof buf), SCRM_LIMIT);
	ck_assert_str_eq(buf, "1:15: string longer than the limit of 10 bytes");
	scrm_expr_options_free(o);
	/* the default is 64 KiB */
	scrm_expr *e = compile_ok("a + a", NULL);
	scrm_expr_vars *v;
	ck_assert_int_eq(scrm_expr_vars_new(e, &v), SCRM_OK);
	char *x = malloc(40000);
	memset(x, 'x', 40000);
	ck_assert_int_eq(scrm_expr_vars_set_str(v, 0, x, 32768), SCRM_OK);
	int holds;
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_str(v, 0, x, 32769), SCRM_OK);
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_LIMIT);
	tu_assert_contains(scrm_expr_errmsg(v), "65536 bytes");
	free(x);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
}
END_TEST

START_TEST(test_limit_cost)
{
	char buf[512];
	scrm_expr_options *o = NULL;
	ck_assert_int_eq(scrm_expr_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_COST, 7), SCRM_OK);
	/* 7 nodes: a + b + c + d */
	ck_assert_int_eq(eval_with("a + b + c + d", o, "{\"a\":1,\"b\":1,\"c\":1,\"d\":1}", buf,
				   sizeof buf), SCRM_OK);
	ck_assert_int_eq(eval_with("a + b + c + d + e", o, "{\"a\":1,\"b\":1,\"c\":1,\"d\":1}", buf,
				   sizeof buf), SCRM_LIMIT);
	tu_assert_contains(buf, "evaluation cost budget of 7 exceeded");
	/* fused `path == const` still costs 3 */
	ck_assert_int_eq(eval_with("a == 1 && b == 1", o, "{\"a\":1,\"b\":1}", buf, sizeof buf),
			 SCRM_OK);
	ck_assert_int_eq(eval_with("a == 1 && b == 1 && c", o, "{\"a\":1,\"b\":1,\"c\":true}", buf,
				   sizeof buf), SCRM_LIMIT);
	/* scanning a list costs its length */
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_COST, 100), SCRM_OK);
	char *list = repeat("{\"l\":[0", ",0", 200, "]}");
	ck_assert_int_eq(eval_with("1 in l", o, list, buf, sizeof buf), SCRM_LIMIT);
	ck_assert_int_eq(eval_with("contains(l, 1)", o, list, buf, sizeof buf), SCRM_LIMIT);
	ck_assert_int_eq(eval_with("l == l", o, list, buf, sizeof buf), SCRM_LIMIT);
	ck_assert_int_eq(eval_with("len(l)", o, list, buf, sizeof buf), SCRM_OK);
	ck_assert_str_eq(buf, "201");
	free(list);
	/* a regex costs 10, plus (subject of at most 128 bytes) the quick
	 * pass's worst case (n + 1) * 16 / 64 + n * (n + 1) / 2 / 16: here 3
	 * nodes + 10 + 0 */
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_COST, 12), SCRM_OK);
	ck_assert_int_eq(eval_with("matches(s, \"a\")", o, "{\"s\":\"a\"}", buf, sizeof buf),
			 SCRM_LIMIT);
	ck_assert_str_eq(buf, "1:1: evaluation cost budget of 12 exceeded");
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_COST, 13), SCRM_OK);
	ck_assert_int_eq(eval_with("matches(s, \"a\")", o, "{\"s\":\"a\"}", buf, sizeof buf), SCRM_OK);
	/* 128 bytes: 3 + 10 + 32 + 516 */
	char *text = repeat("{\"s\":\"", "abcd", 32, "\"}");
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_COST, 560), SCRM_OK);
	ck_assert_int_eq(eval_with("matches(s, \"x\")", o, text, buf, sizeof buf), SCRM_LIMIT);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_COST, 561), SCRM_OK);
	ck_assert_int_eq(eval_with("matches(s, \"x\")", o, text, buf, sizeof buf), SCRM_OK);
	free(text);
	/* longer subjects, and patterns that need more than 16 steps at a
	 * position, are metered: items tried plus bytes moved / 16 */
	text = repeat("{\"s\":\"", "word ", 400, "\"}");
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_COST, 1000), SCRM_OK);
	ck_assert_int_eq(eval_with("matches(s, r\"\\w+\\d\")", o, text, buf, sizeof buf), SCRM_LIMIT);
	ck_assert_str_eq(buf, "1:1: matches: evaluation cost budget of 1000 exceeded (the pattern "
			      "backtracks too much on this text)");
	ck_assert_int_eq(eval_with("matches(s, \"word\")", o, text, buf, sizeof buf), SCRM_OK);
	ck_assert_str_eq(buf, "true");
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_COST, 100000), SCRM_OK);
	ck_assert_int_eq(eval_with("matches(s, r\"\\w+\\d\")", o, text, buf, sizeof buf), SCRM_OK);
	ck_assert_str_eq(buf, "false");
	ck_assert_int_eq(eval_with("matches(s, r\"^(\\w+\\s?)*$\")", o, text, buf, sizeof buf), SCRM_OK);
	ck_assert_str_eq(buf, "true");
	free(text);
	text = repeat("{\"s\":\"", "word ", 40, "\"}");
	ck_assert_int_eq(eval_with("matches(s, r\"^(\\w+\\s?)*$\")", o, text, buf, sizeof buf), SCRM_OK);
	ck_assert_str_eq(buf, "true");
	free(text);
	scrm_expr_options_free(o);
}
END_TEST

START_TEST(test_hostile_regex)
{
	/* Catastrophic backtracking must end in SCRM_LIMIT quickly, not hang. */
	static const char *patterns[] = {
		"(a+)+$", "(a|a)+$", "(a|aa)+$", "^(a+)+b", "(x+x+)+y", "(a*)*b", "((a+)*)+c",
		"(.*a){12}", "^(\\w+\\s?)*$",
	};
	/* Wall-clock bounds, stretched where the suite runs slower on purpose
	 * (valgrind: SCRM_TEST_TIME_SCALE, set by the test setup). */
	const char *scale_env = getenv("SCRM_TEST_TIME_SCALE");
	double scale = scale_env && atof(scale_env) >= 1 ? atof(scale_env) : 1;
	char *text = repeat("{\"s\":\"", "a", 5000, "!\"}");
	char *xs = repeat("{\"s\":\"", "x", 5000, "\"}");
	char *words = repeat("{\"s\":\"", "word ", 3000, "!\"}");
	for (size_t k = 0; k < sizeof patterns / sizeof patterns[0]; k++) {
		char src[128], buf[512];
		snprintf(src, sizeof src, "matches(s, r\"%s\")", patterns[k]);
		const char *json = patterns[k][1] == 'x' ? xs : k == 8 ? words : text;
		double t0 = mono_s();
		int rc = eval_with(src, NULL, json, buf, sizeof buf);
		double dt = mono_s() - t0;
		ck_assert_msg(rc == SCRM_LIMIT || rc == SCRM_OK, "%s: %d %s", src, rc, buf);
		if (rc == SCRM_LIMIT)
			tu_assert_contains(buf, "the pattern backtracks too much on this text");
		ck_assert_msg(dt < 5.0 * scale, "%s took %.2fs", src, dt);
	}
	/* the classic one must be refused */
	char buf[512];
	ck_assert_int_eq(eval_with("matches(s, \"(a+)+$\")", NULL, text, buf, sizeof buf), SCRM_LIMIT);
	/* a tighter match limit refuses even an honest scan of a long text */
	scrm_expr_options *o = NULL;
	ck_assert_int_eq(scrm_expr_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_REGEX_MATCH, 1), SCRM_OK);
	ck_assert_int_eq(scrm_expr_options_set_limit(o, SCRM_EXPR_LIMIT_REGEX_DEPTH, 1), SCRM_OK);
	ck_assert_int_eq(eval_with("matches(s, \"(a|b)*!\")", o, text, buf, sizeof buf), SCRM_LIMIT);
	tu_assert_contains(buf, "1:1: matches: regular expression match limit exceeded");
	scrm_expr_options_free(o);
	free(text);
	free(xs);

	/* PCRE2's match limit counts per start position: a text made of many
	 * short runs keeps every attempt under it, and a pattern that scans
	 * the rest of the text at each position uses few steps per attempt.
	 * Both once took seconds and answered false; the cost budget now
	 * meters the matcher's work over the whole call. */
	static const struct {
		const char *pattern, *unit;
		int n;
	} spread[] = {
		{"(a|aa)+$", "aaaaaaaaaaaaaaaaaaaaaa!", 2000},
		{"(*NO_JIT)(a|aa)+$", "aaaaaaaaaaaaaaaaaaaaaa!", 2000},
		{"(?=(a+))+$", "a", 5000},
		{"(?=(a+))+$", "a", 60000},
		{"\\w++\\d", "a", 60000},
		{"\\w+\\d", "a", 60000},
	};
	for (size_t k = 0; k < sizeof spread / sizeof spread[0]; k++) {
		char src[128];
		snprintf(src, sizeof src, "matches(s, r\"%s\")", spread[k].pattern);
		char *json = repeat("{\"s\":\"", spread[k].unit, spread[k].n, "\"}");
		double t0 = mono_s();
		int rc = eval_with(src, NULL, json, buf, sizeof buf);
		double dt = mono_s() - t0;
		ck_assert_msg(rc == SCRM_LIMIT, "%s: %d %s", src, rc, buf);
		tu_assert_contains(buf, "the pattern backtracks too much on this text");
		ck_assert_msg(dt < 0.5 * scale, "%s took %.2fs", src, dt);
		free(json);
	}
	free(words);
}
END_TEST

/* ------------------------------------------------------------ failures */

static int run_everything(void)
{
	scrm_expr *e = NULL;
	scrm_expr_vars *v = NULL;
	scrm_expr_env *env = NULL;
	char *out = NULL;
	int rc = scrm_expr_compile(
		"(lower(s + \"X\") == \"hellox\" || matches(cn, \"退货|退款\")) && "
		"[i, s, [1, \"two\"]] != l && local_hour(event.at, \"+08:00\") >= 0 && "
		"has_tag(\"vip\") && len(tags) == 2 && \"vip\" in tags && i ?? 0 > 1 && "
		"days_since(event.at) >= 0",
		NULL, &e);
	if (rc)
		goto done;
	if ((rc = scrm_expr_vars_new(e, &v)) || (rc = scrm_expr_env_new(&env)))
		goto done;
	scrm_expr_env_set_now(env, NOW_MS);
	scrm_expr_env_set_functions(env, tag_fn, events_fn, NULL);
	scrm_expr_vars_set_env(v, env);
	if ((rc = scrm_expr_vars_set_json(v, NULL, EXPR_DEFAULT_JSON)))
		goto done;
	if ((rc = scrm_expr_eval_json(e, v, &out)))
		goto done;
	ck_assert_str_eq(out, "true");
	scrm_free(out);
	out = NULL;
	if ((rc = scrm_expr_eval_trace(e, v, &out)))
		goto done;
	tu_assert_contains(out, "\"ok\":true");
	scrm_free(out);
	out = NULL;
	if ((rc = scrm_expr_vars_set_json(v, "tags", "[\"a\", \"b\", \"c\"]")))
		goto done;
	int holds;
	rc = scrm_expr_test(e, v, &holds);
	if (rc == SCRM_OK)
		ck_assert_int_eq(holds, 0);
done:
	scrm_free(out);
	scrm_expr_vars_free(v);
	scrm_expr_env_free(env);
	scrm_expr_free(e);
	return rc;
}

START_TEST(test_alloc_failure)
{
	/* Fail the 1st, 2nd, ... allocation: each must give SCRM_NOMEM and
	 * leak nothing (valgrind and ASan check the leaks), until a run makes
	 * fewer allocations than n and succeeds. */
	int n, failures = 0, streak = 0;
	for (n = 1; n < 100000 && streak < 50; n++) {
		scrm__test_alloc_fail(n);
		int rc = run_everything();
		scrm__test_alloc_fail(0);
		if (rc == SCRM_OK) { /* n was past the end, or hit an optional step (JIT) */
			streak++;
			continue;
		}
		streak = 0;
		failures++;
		ck_assert_msg(rc == SCRM_NOMEM, "allocation %d: %d (%s)", n, rc, scrm_errmsg(NULL));
	}
	ck_assert_int_gt(failures, 40);
	ck_assert_int_lt(n, 100000);
	ck_assert_int_eq(run_everything(), SCRM_OK);
}
END_TEST

START_TEST(test_no_alloc_on_hot_path)
{
	scrm_expr *e = compile_ok("(origin == \"MOW\" || country == \"RU\") && "
				  "(value >= 100 || adults == 1) && lower(origin) != \"x\"", NULL);
	scrm_expr_vars *v;
	ck_assert_int_eq(scrm_expr_vars_new(e, &v), SCRM_OK);
	int holds;
	scrm_expr_vars_set_str(v, 0, "MOW", 3);
	scrm_expr_vars_set_str(v, 1, "RU", 2);
	scrm_expr_vars_set_int(v, 2, 100);
	scrm_expr_vars_set_int(v, 3, 1);
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_OK); /* warms the scratch space */
	scrm__test_alloc_fail(1);
	for (int i = 0; i < 1000; i++) {
		scrm_expr_vars_set_int(v, 2, i);
		ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_OK);
		ck_assert_int_eq(holds, 1);
	}
	scrm__test_alloc_fail(0);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
}
END_TEST

/* ------------------------------------------------------------ threads */

typedef struct thr {
	const scrm_expr *e;
	int id;
	int errors;
} thr;

static void *thread_main(void *arg)
{
	thr *t = arg;
	scrm_expr_vars *v;
	if (scrm_expr_vars_new(t->e, &v)) {
		t->errors++;
		return NULL;
	}
	char s[32] = {0}; /* PCRE2's JIT reads the word past the end */
	for (int i = 0; i < 20000; i++) {
		int x = i * 7 + t->id;
		snprintf(s, sizeof s, "u%d", x % 10);
		scrm_expr_vars_set_int(v, 0, x);
		scrm_expr_vars_set_str(v, 1, s, strlen(s));
		int holds;
		if (scrm_expr_test(t->e, v, &holds) != SCRM_OK)
			t->errors++;
		if (holds != ((x % 3 == 0 || x % 10 == 5) && x % 10 != 7))
			t->errors++;
	}
	scrm_expr_vars_free(v);
	return NULL;
}

START_TEST(test_threads)
{
	scrm_expr *e = compile_ok("(x % 3 == 0 || lower(s) + \"\" == \"u5\") && !matches(s, \"7$\")",
				  NULL);
	pthread_t th[4];
	thr t[4];
	for (int k = 0; k < 4; k++) {
		t[k] = (thr){.e = e, .id = k};
		ck_assert_int_eq(pthread_create(&th[k], NULL, thread_main, &t[k]), 0);
	}
	for (int k = 0; k < 4; k++) {
		pthread_join(th[k], NULL);
		ck_assert_int_eq(t[k].errors, 0);
	}
	scrm_expr_free(e);
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *expr_limits_suite(void)
{
	Suite *s = suite_create("expr_limits");
	TCase *tc = tcase_create("limits");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_limit_options);
	tcase_add_test(tc, test_limit_source);
	tcase_add_test(tc, test_limit_depth);
	tcase_add_test(tc, test_limit_nodes);
	tcase_add_test(tc, test_limit_string);
	tcase_add_test(tc, test_limit_cost);
	tcase_add_test(tc, test_hostile_regex);
	suite_add_tcase(s, tc);

	tc = tcase_create("robustness");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_alloc_failure);
	tcase_add_test(tc, test_no_alloc_on_hot_path);
	tcase_add_test(tc, test_threads);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(expr_limits_suite());
}
