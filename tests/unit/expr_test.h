/*
 * Fixtures shared by the expression suites (check_expr.c, check_expr_limits.c):
 * the default bindings, host functions, an environment and small helpers.
 */
#ifndef SCRM_EXPR_TEST_H
#define SCRM_EXPR_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "scrm/rules.h"

/* ------------------------------------------------------------ fixtures */

/* Bound for every table case unless the case brings its own JSON. */
#define EXPR_DEFAULT_JSON \
	"{\"i\": 7, \"neg\": -3, \"zero\": 0, \"big\": 9223372036854775807," \
	" \"small\": -9223372036854775808, \"s\": \"Hello\", \"empty\": \"\"," \
	" \"cn\": \"退货申请\", \"t\": true, \"f\": false, \"n\": null," \
	" \"l\": [1, 2, \"a\", null], \"tags\": [\"vip\", \"new\"], \"nested\": [[1, 2], [3]]," \
	" \"event\": {\"type\": \"order\", \"amount\": 12000, \"at\": 1705320000000," \
	"             \"props\": {\"sku\": \"A-1\", \"qty\": 2}}," \
	" \"profile\": {\"level\": \"gold\", \"spend\": 500000, \"birthday\": null, \"tz\": \"+08:00\"}," \
	" \"obj\": {\"x\": 1}, \"other\": 1.5, \"h\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\"}"

/* 2024-01-15 12:00:00 UTC, a Monday. */
#define NOW_MS INT64_C(1705320000000)

static inline int tag_fn(void *ud, const char *tag, size_t len, int *has)
{
	(void)ud;
	*has = (len == 3 && memcmp(tag, "vip", 3) == 0) || (len == 3 && memcmp(tag, "new", 3) == 0);
	return SCRM_OK;
}

static inline int events_fn(void *ud, int agg, const char *type, size_t len, int64_t from,
			    int64_t to, int64_t *out)
{
	(void)ud;
	if (len == 4 && memcmp(type, "fail", 4) == 0)
		return SCRM_IO;
	if (to != NOW_MS)
		return SCRM_ERROR;
	if (agg == SCRM_EXPR_AGG_SUM)
		*out = 12345;
	else
		*out = to - from >= 30 * INT64_C(86400000) ? 3 : 1;
	return SCRM_OK;
}

static inline scrm_expr_env *make_env(void)
{
	scrm_expr_env *env = NULL;
	ck_assert_int_eq(scrm_expr_env_new(&env), SCRM_OK);
	ck_assert_int_eq(scrm_expr_env_set_now(env, NOW_MS), SCRM_OK);
	ck_assert_int_eq(scrm_expr_env_set_functions(env, tag_fn, events_fn, NULL), SCRM_OK);
	return env;
}

/* ------------------------------------------------------------ helpers */

static inline scrm_expr *compile_ok(const char *src, const scrm_expr_options *opts)
{
	scrm_expr *e = NULL;
	int rc = scrm_expr_compile(src, opts, &e);
	ck_assert_msg(rc == SCRM_OK, "compile %s: %s", src, scrm_errmsg(NULL));
	return e;
}

/* Evaluate `src` with `json` bound; returns the code and the JSON text or
 * message in buf. */
static inline int eval_with(const char *src, const scrm_expr_options *opts, const char *json,
			    char *buf, size_t cap)
{
	scrm_expr *e = NULL;
	int rc = scrm_expr_compile(src, opts, &e);
	if (rc) {
		snprintf(buf, cap, "%s", scrm_errmsg(NULL));
		return rc;
	}
	scrm_expr_vars *v = NULL;
	ck_assert_int_eq(scrm_expr_vars_new(e, &v), SCRM_OK);
	if (json)
		ck_assert_int_eq(scrm_expr_vars_set_json(v, NULL, json), SCRM_OK);
	char *out = NULL;
	rc = scrm_expr_eval_json(e, v, &out);
	snprintf(buf, cap, "%s", rc ? scrm_expr_errmsg(v) : out);
	scrm_free(out);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
	return rc;
}

static inline char *repeat(const char *head, const char *unit, int n, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(hl + ul * (size_t)n + tl + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, head, hl);
	for (int i = 0; i < n; i++)
		memcpy(s + hl + ul * (size_t)i, unit, ul);
	memcpy(s + hl + ul * (size_t)n, tail, tl + 1);
	return s;
}

/* "(((...(1)...)))" with n parentheses */
static inline char *parens(int n)
{
	char *s = malloc((size_t)n * 2 + 2);
	ck_assert_ptr_nonnull(s);
	memset(s, '(', (size_t)n);
	s[n] = '1';
	memset(s + n + 1, ')', (size_t)n);
	s[2 * n + 1] = '\0';
	return s;
}

static inline double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif /* SCRM_EXPR_TEST_H */
