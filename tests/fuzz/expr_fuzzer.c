/*
 * Fuzz target for the expression language: compile the input, evaluate it
 * against fixed bindings (as JSON and through typed setters), trace it, do
 * it again under tight limits, and also bind the input as JSON. Without
 * SCRM_LIBFUZZER a main() runs files or directories of inputs, so the
 * corpus doubles as a regression test.
 *
 * libFuzzer: configure with -Dfuzzing=true, then e.g.
 *   cp -r tests/fuzz/corpus/expr /tmp/expr-corpus
 *   build/tests/fuzz/expr_libfuzzer -max_total_time=600 -timeout=5 \
 *       -dict=tests/fuzz/expr.dict /tmp/expr-corpus
 * and copy each crash input, minimised (-minimize_crash=1), into
 * tests/fuzz/corpus/expr/.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scrm/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a finding: crash so the fuzzer records it. */
#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "expr_fuzzer: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                    \
			abort();                                                     \
		}                                                                    \
	} while (0)

static const char *bindings =
	"{\"i\":7,\"n\":null,\"t\":true,\"f\":false,\"s\":\"Hello\",\"cn\":\"退货申请\","
	"\"big\":9223372036854775807,\"small\":-9223372036854775808,\"zero\":0,"
	"\"l\":[1,\"a\",null,[2]],\"tags\":[\"vip\"],\"o\":{\"x\":1,\"y\":{\"z\":\"deep\"}},"
	"\"event\":{\"type\":\"order\",\"amount\":12000,\"at\":1705320000000,"
	"\"props\":{\"sku\":\"A-1\",\"qty\":2}},\"profile\":{\"level\":\"gold\",\"tz\":\"+08:00\"}}";

static int tag_fn(void *ud, const char *tag, size_t len, int *has)
{
	(void)ud;
	*has = len > 0 && tag[0] == 'v';
	return len == 4 && memcmp(tag, "fail", 4) == 0 ? SCRM_IO : SCRM_OK;
}

static int events_fn(void *ud, int agg, const char *type, size_t len, int64_t from, int64_t to,
		     int64_t *out)
{
	(void)ud;
	(void)type;
	CHECK(from <= to);
	*out = agg == SCRM_EXPR_AGG_SUM ? (int64_t)len * 1000 : (int64_t)len;
	return SCRM_OK;
}

static int ok_eval_rc(int rc)
{
	return rc == SCRM_OK || rc == SCRM_EVAL || rc == SCRM_RANGE || rc == SCRM_LIMIT ||
	       rc == SCRM_NOMEM || rc == SCRM_IO;
}

/* Evaluate every way and check that the answers agree. */
static void evaluate(const scrm_expr *e, scrm_expr_vars *v)
{
	char *json = NULL, *trace = NULL;
	int holds = -1;
	int rc = scrm_expr_eval_json(e, v, &json);
	CHECK(ok_eval_rc(rc));
	CHECK((rc == SCRM_OK) == (json != NULL));
	if (rc != SCRM_OK)
		CHECK(strlen(scrm_expr_errmsg(v)) > 0);
	int rc2 = scrm_expr_test(e, v, &holds);
	CHECK(rc2 == rc);
	CHECK(holds == (rc == SCRM_OK && strcmp(json, "true") == 0));
	int rc3 = scrm_expr_eval_trace(e, v, &trace);
	CHECK(rc3 == rc);
	CHECK(trace != NULL);
	CHECK(strncmp(trace, rc == SCRM_OK ? "{\"ok\":true," : "{\"ok\":false,", rc ? 12 : 11) ==
	      0);
	scrm_free(json);
	scrm_free(trace);
}

/* Compile `src` with `opts` and evaluate it every way. */
static void compile_and_run(const char *src, size_t size, const scrm_expr_options *opts,
			    scrm_expr_env *env)
{
	scrm_expr *e = NULL;
	int rc = scrm_expr_compile(src, opts, &e);
	CHECK(rc == SCRM_OK || rc == SCRM_PARSE || rc == SCRM_LIMIT || rc == SCRM_RANGE ||
	      rc == SCRM_INVALID);
	CHECK((rc == SCRM_OK) == (e != NULL));
	if (rc != SCRM_OK) {
		int line, col;
		CHECK(strlen(scrm_errmsg(NULL)) > 0);
		scrm_expr_error_pos(NULL, &line, &col);
		return;
	}
	scrm_expr_vars *v = NULL;
	CHECK(scrm_expr_vars_new(e, &v) == SCRM_OK);
	int n = scrm_expr_var_count(e);
	CHECK(n >= 0);
	for (int k = 0; k < n; k++)
		CHECK(scrm_expr_var_index(e, scrm_expr_var_name(e, k)) == k);

	/* 1: everything missing, without an environment */
	evaluate(e, v);
	/* 2: the fixed JSON bindings */
	scrm_expr_vars_set_env(v, env);
	rc = scrm_expr_vars_set_json(v, NULL, bindings);
	CHECK(rc == SCRM_OK || (opts && rc == SCRM_LIMIT));
	evaluate(e, v);
	/* 3: each slot gets a type chosen by its position */
	static const char *lists[] = {"[]", "[1,2,3]", "[\"a\",null,[true]]", "{\"k\":1}"};
	for (int k = 0; k < n; k++) {
		switch ((k + (int)size) % 7) {
		case 0: scrm_expr_vars_set_int(v, k, k - 3); break;
		case 1: scrm_expr_vars_set_str(v, k, "Vip", 3); break;
		case 2: scrm_expr_vars_set_null(v, k); break;
		case 3: scrm_expr_vars_clear(v, k); break;
		case 4: scrm_expr_vars_set_bool(v, k, k & 1); break;
		case 5: scrm_expr_vars_set_int(v, k, INT64_MIN + k); break;
		default:
			CHECK(scrm_expr_vars_set_json(v, scrm_expr_var_name(e, k),
						      lists[k % 4]) == SCRM_OK);
		}
	}
	evaluate(e, v);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	char *src = malloc(size + 1);
	if (!src)
		return 0;
	memcpy(src, data, size);
	src[size] = '\0';

	scrm_expr_env *env = NULL;
	CHECK(scrm_expr_env_new(&env) == SCRM_OK);
	scrm_expr_env_set_now(env, INT64_C(1705320000000));
	scrm_expr_env_set_functions(env, tag_fn, events_fn, NULL);

	compile_and_run(src, size, NULL, env);

	/* Again under tight limits, so that every limit is hit somewhere. */
	static scrm_expr_options *tight;
	if (!tight) {
		CHECK(scrm_expr_options_new(&tight) == SCRM_OK);
		static const int64_t lim[][2] = {
			{SCRM_EXPR_LIMIT_DEPTH, 6}, {SCRM_EXPR_LIMIT_NODES, 40},
			{SCRM_EXPR_LIMIT_STRING, 16}, {SCRM_EXPR_LIMIT_COST, 60},
			{SCRM_EXPR_LIMIT_REGEX_MATCH, 50}, {SCRM_EXPR_LIMIT_REGEX_DEPTH, 20},
			{SCRM_EXPR_LIMIT_REGEX_HEAP, 1},
		};
		for (size_t k = 0; k < sizeof lim / sizeof lim[0]; k++)
			CHECK(scrm_expr_options_set_limit(tight, (int)lim[k][0], lim[k][1]) ==
			      SCRM_OK);
	}
	compile_and_run(src, size, tight, env);

	/* The same bytes as bindings for a fixed expression. */
	static const char *fixed = "[a, a.b, a.b.c, i, s, l, has(o), o.x, event.props.sku]";
	scrm_expr *e = NULL;
	CHECK(scrm_expr_compile(fixed, NULL, &e) == SCRM_OK);
	scrm_expr_vars *v = NULL;
	CHECK(scrm_expr_vars_new(e, &v) == SCRM_OK);
	int rc = scrm_expr_vars_set_json(v, NULL, src);
	CHECK(rc == SCRM_OK || rc == SCRM_PARSE || rc == SCRM_INVALID || rc == SCRM_RANGE ||
	      rc == SCRM_LIMIT);
	rc = scrm_expr_vars_set_json(v, "a", src);
	CHECK(rc == SCRM_OK || rc == SCRM_PARSE || rc == SCRM_INVALID || rc == SCRM_RANGE ||
	      rc == SCRM_LIMIT);
	evaluate(e, v);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);

	scrm_expr_env_free(env);
	free(src);
	return 0;
}

#define FUZZ_NAME "expr"
#include "fuzz_main.h"
