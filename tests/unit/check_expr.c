/*
 * Check suite for the expression language (lib/rules/expr_*.c): a table of
 * expressions with their value or error (expr_cases.h), then the API,
 * binding, host hooks, the trace and the internal interface the rules
 * engine uses. Limits, hostile regexes, allocation failure and threads are
 * in check_expr_limits.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "scrm/rules.h"
#include "core-int.h"
#include "rules/expr-int.h"
#include "testutil.h"
#include "expr_test.h"

/* ------------------------------------------------------------ the table */

#include "expr_cases.h"

static void check_case(const xcase *tc, int idx, scrm_expr_env *env)
{
	scrm_expr *e = NULL;
	int rc = scrm_expr_compile(tc->src, NULL, &e);
	if (rc != SCRM_OK) {
		ck_assert_msg(e == NULL, "[%d] %s: out set on failure", idx, tc->src);
		ck_assert_msg(rc == tc->rc, "[%d] %s: compile returned %d (%s: %s), want %d", idx,
			      tc->src, rc, scrm_errstr(rc), scrm_errmsg(NULL), tc->rc);
		ck_assert_msg(strstr(scrm_errmsg(NULL), tc->want), "[%d] %s: message \"%s\" lacks \"%s\"",
			      idx, tc->src, scrm_errmsg(NULL), tc->want);
		ck_assert_int_eq(scrm_errcode(NULL), rc);
		return;
	}
	scrm_expr_vars *v = NULL;
	ck_assert_int_eq(scrm_expr_vars_new(e, &v), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_env(v, env), SCRM_OK);
	rc = scrm_expr_vars_set_json(v, NULL, tc->json ? tc->json : EXPR_DEFAULT_JSON);
	ck_assert_msg(rc == SCRM_OK, "[%d] binding: %s", idx, scrm_errmsg(NULL));

	char *out = NULL;
	rc = scrm_expr_eval_json(e, v, &out);
	if (tc->rc == SCRM_OK) {
		ck_assert_msg(rc == SCRM_OK, "[%d] %s: eval returned %d: %s", idx, tc->src, rc,
			      scrm_expr_errmsg(v));
		ck_assert_msg(strcmp(out, tc->want) == 0, "[%d] %s: got %s, want %s", idx, tc->src, out,
			      tc->want);
	} else {
		ck_assert_msg(rc == tc->rc, "[%d] %s: eval returned %d (%s), want %d", idx, tc->src, rc,
			      rc ? scrm_expr_errmsg(v) : out, tc->rc);
		ck_assert_msg(out == NULL, "[%d] out set on failure", idx);
		ck_assert_msg(strstr(scrm_expr_errmsg(v), tc->want), "[%d] %s: message \"%s\" lacks \"%s\"",
			      idx, tc->src, scrm_expr_errmsg(v), tc->want);
		ck_assert_str_eq(scrm_errmsg(NULL), scrm_expr_errmsg(v));
		int line = 0, col = 0;
		ck_assert_int_eq(scrm_expr_error_pos(v, &line, &col), SCRM_OK);
		char pos[32];
		snprintf(pos, sizeof pos, "%d:%d: ", line, col);
		ck_assert_msg(strncmp(scrm_expr_errmsg(v), pos, strlen(pos)) == 0,
			      "[%d] position %s vs message %s", idx, pos, scrm_expr_errmsg(v));
	}

	/* The condition API agrees with the value. */
	int holds = -1;
	rc = scrm_expr_test(e, v, &holds);
	ck_assert_int_eq(rc, tc->rc);
	ck_assert_int_eq(holds, tc->rc == SCRM_OK && strcmp(tc->want, "true") == 0);

	/* So does the trace, which also reports failures. */
	char *trace = NULL;
	rc = scrm_expr_eval_trace(e, v, &trace);
	ck_assert_int_eq(rc, tc->rc);
	ck_assert_ptr_nonnull(trace);
	char head[1024];
	if (tc->rc == SCRM_OK)
		snprintf(head, sizeof head, "{\"ok\":true,\"value\":%s,", tc->want);
	else
		snprintf(head, sizeof head, "{\"ok\":false,\"code\":%d,", tc->rc);
	ck_assert_msg(strncmp(trace, head, strlen(head)) == 0, "[%d] %s: trace %s", idx, tc->src,
		      trace);
	scrm_free(trace);
	scrm_free(out);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
}

START_TEST(test_table)
{
	scrm_expr_env *env = make_env();
	check_case(&cases[_i], _i, env);
	scrm_expr_env_free(env);
}
END_TEST

/* ------------------------------------------------------------ the API */

START_TEST(test_api_misuse)
{
	scrm_expr *e = NULL;
	ck_assert_int_eq(scrm_expr_compile(NULL, NULL, &e), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_compile("1", NULL, NULL), SCRM_MISUSE);
	scrm_expr_free(NULL);
	scrm_expr_vars_free(NULL);
	scrm_expr_env_free(NULL);
	ck_assert_int_eq(scrm_expr_var_count(NULL), -1);
	ck_assert_ptr_null(scrm_expr_var_name(NULL, 0));
	ck_assert_int_eq(scrm_expr_var_index(NULL, "a"), -1);

	e = compile_ok("a > 1", NULL);
	ck_assert_str_eq(scrm_errmsg(NULL), "not an error"); /* success clears the thread's error */
	scrm_expr *e2 = compile_ok("b", NULL);
	scrm_expr_vars *v = NULL, *v2 = NULL;
	ck_assert_int_eq(scrm_expr_vars_new(NULL, &v), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_vars_new(e, NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_vars_new(e, &v), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_new(e2, &v2), SCRM_OK);
	int holds = 5;
	char *out = (char *)1;
	ck_assert_int_eq(scrm_expr_test(NULL, v, &holds), SCRM_MISUSE);
	ck_assert_int_eq(holds, 0);
	ck_assert_int_eq(scrm_expr_test(e, NULL, &holds), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_test(e, v, NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_test(e, v2, &holds), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(NULL), "made for another expression");
	ck_assert_int_eq(scrm_expr_eval_json(e, v2, &out), SCRM_MISUSE);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(scrm_expr_eval_json(e, v, NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_eval_trace(e, v2, &out), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_eval_trace(NULL, v, &out), SCRM_MISUSE);

	ck_assert_int_eq(scrm_expr_vars_set_int(NULL, 0, 1), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_vars_set_int(v, 1, 1), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(NULL), "slot 1 out of range");
	ck_assert_int_eq(scrm_expr_vars_set_int(v, -1, 1), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_vars_set_bool(v, 9, 1), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_vars_set_str(v, 0, NULL, 3), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_vars_set_str(v, 0, NULL, 0), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_null(v, 2), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_vars_clear(v, 2), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_vars_reset(NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_vars_set_json(NULL, NULL, "{}"), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_vars_set_json(v, NULL, NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_vars_set_env(NULL, NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_env_new(NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_env_set_now(NULL, 1), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_env_set_functions(NULL, NULL, NULL, NULL), SCRM_MISUSE);
	ck_assert_str_eq(scrm_expr_errmsg(v), "not an error");
	scrm_expr_vars_free(v);
	scrm_expr_vars_free(v2);
	scrm_expr_free(e);
	scrm_expr_free(e2);
}
END_TEST

START_TEST(test_vars_slots)
{
	scrm_expr *e = compile_ok("event.amount >= 100 && profile.level == \"gold\" && "
				  "has(event.coupon) && event.amount < 1000000",
				  NULL);
	ck_assert_int_eq(scrm_expr_var_count(e), 3);
	ck_assert_str_eq(scrm_expr_var_name(e, 0), "event.amount");
	ck_assert_str_eq(scrm_expr_var_name(e, 1), "profile.level");
	ck_assert_str_eq(scrm_expr_var_name(e, 2), "event.coupon");
	ck_assert_ptr_null(scrm_expr_var_name(e, 3));
	ck_assert_ptr_null(scrm_expr_var_name(e, -1));
	ck_assert_int_eq(scrm_expr_var_index(e, "event.amount"), 0);
	ck_assert_int_eq(scrm_expr_var_index(e, "profile.level"), 1);
	ck_assert_int_eq(scrm_expr_var_index(e, "event.coupon"), 2);
	ck_assert_int_eq(scrm_expr_var_index(e, "event"), -1); /* a prefix, not a slot */
	ck_assert_int_eq(scrm_expr_var_index(e, "event.amoun"), -1);
	ck_assert_int_eq(scrm_expr_var_index(e, ""), -1);
	ck_assert_int_eq(scrm_expr_var_index(e, NULL), -1);

	scrm_expr_vars *v;
	ck_assert_int_eq(scrm_expr_vars_new(e, &v), SCRM_OK);
	int holds = -1;
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_OK);
	ck_assert_int_eq(holds, 0); /* all missing: null && ... */
	char gold[] = "gold";
	ck_assert_int_eq(scrm_expr_vars_set_int(v, 0, 12000), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_str(v, 1, gold, 4), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_null(v, 2), SCRM_OK);
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_OK);
	ck_assert_int_eq(holds, 1);
	/* the string is borrowed, not copied */
	gold[0] = 'b';
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_OK);
	ck_assert_int_eq(holds, 0);
	gold[0] = 'g';
	ck_assert_int_eq(scrm_expr_vars_set_str(v, 1, "golden", 4), SCRM_OK); /* length counts */
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_OK);
	ck_assert_int_eq(holds, 1);
	ck_assert_int_eq(scrm_expr_vars_clear(v, 2), SCRM_OK); /* missing: has() false */
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_OK);
	ck_assert_int_eq(holds, 0);
	ck_assert_int_eq(scrm_expr_vars_set_bool(v, 2, 7), SCRM_OK);
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_OK);
	ck_assert_int_eq(holds, 1);
	ck_assert_int_eq(scrm_expr_vars_set_int(v, 0, 99), SCRM_OK);
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_OK);
	ck_assert_int_eq(holds, 0);
	ck_assert_int_eq(scrm_expr_vars_set_str(v, 0, "100", 3), SCRM_OK);
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_EVAL);
	ck_assert_int_eq(holds, 0);
	ck_assert_str_eq(scrm_expr_errmsg(v), "1:14: type mismatch: string >= int");
	int line, col;
	ck_assert_int_eq(scrm_expr_error_pos(v, &line, &col), SCRM_OK);
	ck_assert_int_eq(line, 1);
	ck_assert_int_eq(col, 14);
	ck_assert_int_eq(scrm_expr_error_pos(NULL, &line, &col), SCRM_OK);
	ck_assert_int_eq(col, 14);
	/* success clears the activation's error */
	ck_assert_int_eq(scrm_expr_vars_set_int(v, 0, 100), SCRM_OK);
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_OK);
	ck_assert_str_eq(scrm_expr_errmsg(v), "not an error");
	ck_assert_int_eq(scrm_expr_error_pos(v, &line, &col), SCRM_NOTFOUND);
	ck_assert_int_eq(scrm_expr_vars_reset(v), SCRM_OK);
	char *out;
	ck_assert_int_eq(scrm_expr_eval_json(e, v, &out), SCRM_OK);
	ck_assert_str_eq(out, "false"); /* null && null && has(...) is false */
	scrm_free(out);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
}
END_TEST

START_TEST(test_vars_rebind)
{
	/* A slot rebound to another type: no payload of the old value shows. */
	scrm_expr *e = compile_ok("[x == null, x != null, null == x, x == 5, x == true, x == \"\", "
				  "x ?? 1, (x == null) && (x != 5)]", NULL);
	scrm_expr_vars *v;
	ck_assert_int_eq(scrm_expr_vars_new(e, &v), SCRM_OK);
	char *out;
	ck_assert_int_eq(scrm_expr_vars_set_int(v, 0, 5), SCRM_OK);
	ck_assert_int_eq(scrm_expr_eval_json(e, v, &out), SCRM_OK);
	ck_assert_str_eq(out, "[false,true,false,true,false,false,5,false]");
	scrm_free(out);
	ck_assert_int_eq(scrm_expr_vars_set_null(v, 0), SCRM_OK);
	ck_assert_int_eq(scrm_expr_eval_json(e, v, &out), SCRM_OK);
	ck_assert_str_eq(out, "[true,false,true,false,false,false,1,true]");
	scrm_free(out);
	ck_assert_int_eq(scrm_expr_vars_set_bool(v, 0, 1), SCRM_OK);
	ck_assert_int_eq(scrm_expr_eval_json(e, v, &out), SCRM_OK);
	ck_assert_str_eq(out, "[false,true,false,false,true,false,true,false]");
	scrm_free(out);
	ck_assert_int_eq(scrm_expr_vars_set_str(v, 0, "", 0), SCRM_OK);
	ck_assert_int_eq(scrm_expr_eval_json(e, v, &out), SCRM_OK);
	ck_assert_str_eq(out, "[false,true,false,false,false,true,\"\",false]");
	scrm_free(out);
	ck_assert_int_eq(scrm_expr_vars_set_json(v, "x", "[5]"), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_null(v, 0), SCRM_OK);
	ck_assert_int_eq(scrm_expr_eval_json(e, v, &out), SCRM_OK);
	ck_assert_str_eq(out, "[true,false,true,false,false,false,1,true]");
	scrm_free(out);
	ck_assert_int_eq(scrm_expr_vars_clear(v, 0), SCRM_OK);
	ck_assert_int_eq(scrm_expr_eval_json(e, v, &out), SCRM_OK);
	ck_assert_str_eq(out, "[true,false,true,false,false,false,1,true]");
	scrm_free(out);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
}
END_TEST

START_TEST(test_vars_json)
{
	scrm_expr *e = compile_ok("[event.type, event.amount, event.props.sku, event.tags, "
				  "has(event.props), profile.level, event.props, has(event)]",
				  NULL);
	scrm_expr_vars *v;
	ck_assert_int_eq(scrm_expr_vars_new(e, &v), SCRM_OK);
	char *out;
#define EVAL_IS(want)                                                 \
	do {                                                          \
		ck_assert_int_eq(scrm_expr_eval_json(e, v, &out), SCRM_OK); \
		ck_assert_str_eq(out, want);                          \
		scrm_free(out);                                       \
	} while (0)
	ck_assert_int_eq(scrm_expr_vars_set_json(v, NULL,
		"{\"event\":{\"type\":\"order\",\"amount\":-5,\"props\":{\"sku\":\"A\\u00e9\","
		"\"n\":1.5},\"tags\":[\"a\",[1,{\"x\":2}],null,true]},\"profile\":{\"level\":\"gold\"},"
		"\"unused\":[1e5, {\"deep\": [true, false, null]}]}"), SCRM_OK);
	EVAL_IS("[\"order\",-5,\"Aé\",[\"a\",[1,{}],null,true],true,\"gold\",{},true]");
	/* with a prefix only that subtree is replaced */
	ck_assert_int_eq(scrm_expr_vars_set_json(v, "event", "{\"type\":\"refund\"}"), SCRM_OK);
	EVAL_IS("[\"refund\",null,null,null,false,\"gold\",null,true]");
	ck_assert_int_eq(scrm_expr_vars_set_json(v, "event.tags", "[1, 2]"), SCRM_OK);
	EVAL_IS("[\"refund\",null,null,[1,2],false,\"gold\",null,true]");
	ck_assert_int_eq(scrm_expr_vars_set_json(v, "event.amount", "42"), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_json(v, "event.props", "{\"sku\":\"B\"}"), SCRM_OK);
	EVAL_IS("[\"refund\",42,\"B\",[1,2],true,\"gold\",{},true]");
	/* dotted keys, escaped keys, duplicate keys (last wins) */
	ck_assert_int_eq(scrm_expr_vars_set_json(v, NULL,
		"{\"event.type\":\"x\",\"ev\\u0065nt\":{\"amount\":1,\"amount\":2},"
		"\"profile\":{\"level\":\"a\",\"level\":\"b\"}}"), SCRM_OK);
	EVAL_IS("[\"x\",2,null,null,false,\"b\",null,true]");
	/* typed setters mix with JSON: a slot bound from JSON can be rebound */
	ck_assert_int_eq(scrm_expr_vars_set_int(v, scrm_expr_var_index(e, "event.type"), 5), SCRM_OK);
	EVAL_IS("[5,2,null,null,false,\"b\",null,true]");
	/* a prefix naming nothing the expression reads is harmless */
	ck_assert_int_eq(scrm_expr_vars_set_json(v, "nothing.here", "{\"a\":1}"), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_json(v, "a.very.long.prefix.that.is.longer.than.any.path",
						 "[1,2,{\"a\":\"b\"}]"), SCRM_OK);
	EVAL_IS("[5,2,null,null,false,\"b\",null,true]");
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
}
END_TEST

START_TEST(test_vars_json_errors)
{
	scrm_expr *e = compile_ok("[i, s, l, o.x]", NULL);
	scrm_expr_vars *v;
	ck_assert_int_eq(scrm_expr_vars_new(e, &v), SCRM_OK);
	static const struct {
		const char *json;
		int rc;
		const char *msg;
	} bad[] = {
		{"{\"i\": 1.5}", SCRM_INVALID, "json 1:7: i: numbers must be integers, not 1.5"},
		{"{\"i\": 1e3}", SCRM_INVALID, "numbers must be integers, not 1e3"},
		{"{\"l\": [1, 2.0]}", SCRM_INVALID, "l: numbers must be integers, not 2.0"},
		{"{\"o\": {\"x\": -0.5}}", SCRM_INVALID, "o.x: numbers must be integers"},
		{"{\"i\": 9223372036854775808}", SCRM_RANGE, "json 1:7: integer out of range"},
		{"{\"i\": -9223372036854775809}", SCRM_RANGE, "integer out of range"},
		{"{\"i\": }", SCRM_PARSE, "json 1:7: expected a JSON value but found '}'"},
		{"{\"i\" 1}", SCRM_PARSE, "json 1:6: expected ':' but found '1'"},
		{"{\"i\": 1", SCRM_PARSE, "expected ',' or '}' but found end of input"},
		{"{\"i\": 1,}", SCRM_PARSE, "expected a string (object key) but found '}'"},
		{"{\"i\": [1,}", SCRM_PARSE, "expected a JSON value but found '}'"},
		{"{\"x\": [1,}", SCRM_PARSE, "expected a JSON value but found '}'"},
		{"{\"i\": 1} x", SCRM_PARSE, "json 1:10: expected end of input but found 'x'"},
		{"{\"i\": tru}", SCRM_PARSE, "expected a JSON value"},
		{"{\"i\": 01}", SCRM_PARSE, "expected ',' or '}' but found '1'"},
		{"{\"i\": -}", SCRM_PARSE, "expected a digit"},
		{"{\"i\": 1.}", SCRM_PARSE, "expected a digit"},
		{"{\"s\": \"a\nb\"}", SCRM_PARSE, "control character in string"},
		{"{\"s\": \"a\\qb\"}", SCRM_PARSE, "unknown escape in string"},
		{"{\"s\": \"\\u12x4\"}", SCRM_PARSE, "expected 4 hex digits"},
		{"{\"s\": \"\\ud800\"}", SCRM_INVALID, "unpaired surrogate"},
		{"{\"s\": \"\xff\"}", SCRM_INVALID, "invalid UTF-8 in string"},
		{"{\"x\": \"\xc3\"}", SCRM_INVALID, "invalid UTF-8 in string"},
		{"{\"s\": \"abc", SCRM_PARSE, "unterminated string"},
		{"[1]", SCRM_INVALID, "json 1:1: expected an object at the top level"},
		{"\"s\"", SCRM_INVALID, "expected an object at the top level"},
		{"", SCRM_INVALID, "expected an object at the top level"},
		{"{\"i\": 1}\n\n  }", SCRM_PARSE, "json 3:3: expected end of input"},
	};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		ck_assert_int_eq(scrm_expr_vars_set_json(v, NULL, "{\"i\":1,\"s\":\"a\",\"l\":[1],"
							      "\"o\":{\"x\":1}}"), SCRM_OK);
		int rc = scrm_expr_vars_set_json(v, NULL, bad[k].json);
		ck_assert_msg(rc == bad[k].rc, "%s: %d (%s)", bad[k].json, rc, scrm_errmsg(NULL));
		tu_assert_contains(scrm_errmsg(NULL), bad[k].msg);
		/* failure leaves every slot missing */
		char *out;
		ck_assert_int_eq(scrm_expr_eval_json(e, v, &out), SCRM_OK);
		ck_assert_str_eq(out, "[null,null,null,null]");
		scrm_free(out);
	}
	/* deep nesting is refused, referenced or not */
	char *deep = repeat("{\"l\":", "[", 100, "");
	ck_assert_int_eq(scrm_expr_vars_set_json(v, NULL, deep), SCRM_LIMIT);
	tu_assert_contains(scrm_errmsg(NULL), "nested deeper than 64 levels");
	free(deep);
	deep = repeat("{\"zz\":", "{\"a\":", 100000, "");
	ck_assert_int_eq(scrm_expr_vars_set_json(v, NULL, deep), SCRM_LIMIT);
	free(deep);
	/* with a prefix the value may be anything */
	ck_assert_int_eq(scrm_expr_vars_set_json(v, "i", "5"), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_json(v, "l", "[]"), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_json(v, "s", "null"), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_json(v, "i", "5 6"), SCRM_PARSE);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
}
END_TEST

START_TEST(test_env)
{
	char buf[512];
	/* without an environment */
	ck_assert_int_eq(eval_with("has_tag(\"vip\")", NULL, NULL, buf, sizeof buf), SCRM_EVAL);
	ck_assert_str_eq(buf, "1:1: has_tag: no tag source bound");
	ck_assert_int_eq(eval_with("1 + count(\"order\", 1d)", NULL, NULL, buf, sizeof buf), SCRM_EVAL);
	ck_assert_str_eq(buf, "1:5: count: no event source bound");
	ck_assert_int_eq(eval_with("sum(\"order\", 1d)", NULL, NULL, buf, sizeof buf), SCRM_EVAL);
	ck_assert_str_eq(buf, "1:1: sum: no event source bound");
	ck_assert_int_eq(eval_with("now()", NULL, NULL, buf, sizeof buf), SCRM_EVAL);
	ck_assert_str_eq(buf, "1:1: now: no current time bound (scrm_expr_env_set_now or "
			      "scrm_expr_env_set_clock)");
	ck_assert_int_eq(eval_with("days_since(1)", NULL, NULL, buf, sizeof buf), SCRM_EVAL);
	tu_assert_contains(buf, "days_since: no current time bound");
	ck_assert_int_eq(eval_with("days_since(n)", NULL, NULL, buf, sizeof buf), SCRM_OK);

	/* an environment with functions but no time */
	scrm_expr_env *env;
	ck_assert_int_eq(scrm_expr_env_new(&env), SCRM_OK);
	ck_assert_int_eq(scrm_expr_env_set_functions(env, tag_fn, events_fn, NULL), SCRM_OK);
	scrm_expr *e = compile_ok("has_tag(\"vip\") && count(\"order\", 1d) > 0", NULL);
	scrm_expr_vars *v;
	ck_assert_int_eq(scrm_expr_vars_new(e, &v), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_env(v, env), SCRM_OK);
	int holds;
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_EVAL);
	tu_assert_contains(scrm_expr_errmsg(v), "1:19: count: no current time bound");
	ck_assert_int_eq(scrm_expr_env_set_now(env, NOW_MS), SCRM_OK);
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_OK);
	ck_assert_int_eq(holds, 1);
	/* one environment serves several activations; detaching works */
	ck_assert_int_eq(scrm_expr_vars_set_env(v, NULL), SCRM_OK);
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_EVAL);
	ck_assert_int_eq(scrm_expr_env_set_functions(env, NULL, NULL, NULL), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_env(v, env), SCRM_OK);
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_EVAL);
	ck_assert_str_eq(scrm_expr_errmsg(v), "1:1: has_tag: no tag source bound");
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
	scrm_expr_env_free(env);
}
END_TEST

typedef struct clock_state {
	int calls;
	int64_t t;
} clock_state;

static int64_t test_clock(void *ud)
{
	clock_state *st = ud;
	st->calls++;
	return st->t;
}

START_TEST(test_env_clock)
{
	clock_state st = {0, NOW_MS};
	scrm_expr_env *env;
	ck_assert_int_eq(scrm_expr_env_new(&env), SCRM_OK);
	ck_assert_int_eq(scrm_expr_env_set_clock(NULL, test_clock, &st), SCRM_MISUSE);
	ck_assert_int_eq(scrm_expr_env_set_clock(env, test_clock, &st), SCRM_OK);
	ck_assert_int_eq(scrm_expr_env_set_functions(env, tag_fn, events_fn, NULL), SCRM_OK);
	/* the clock is read once per evaluation, so every use agrees */
	scrm_expr *e = compile_ok("now() == now() && days_since(now() - 2d) == 2 && "
				  "count(\"order\", 30d) == 3 && (x ?? now()) > 0", NULL);
	scrm_expr_vars *v;
	ck_assert_int_eq(scrm_expr_vars_new(e, &v), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_env(v, env), SCRM_OK);
	int holds;
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_OK);
	ck_assert_int_eq(holds, 1);
	ck_assert_int_eq(st.calls, 1);
	/* and again on the next evaluation: the time moves */
	st.t = NOW_MS + 1; /* events_fn refuses a window not ending at NOW_MS */
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_ERROR);
	tu_assert_contains(scrm_expr_errmsg(v), "count: the host function failed");
	ck_assert_int_eq(st.calls, 2);
	/* an expression that does not need the time does not read the clock */
	scrm_expr *e2 = compile_ok("x ?? 1 > 0", NULL);
	scrm_expr_vars *v2;
	ck_assert_int_eq(scrm_expr_vars_new(e2, &v2), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_env(v2, env), SCRM_OK);
	ck_assert_int_eq(scrm_expr_test(e2, v2, &holds), SCRM_OK);
	ck_assert_int_eq(st.calls, 2);
	/* set_now replaces the clock, and set_clock the fixed time */
	ck_assert_int_eq(scrm_expr_env_set_now(env, NOW_MS), SCRM_OK);
	st.t = 0;
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_OK);
	ck_assert_int_eq(holds, 1);
	ck_assert_int_eq(st.calls, 2);
	ck_assert_int_eq(scrm_expr_env_set_clock(env, test_clock, &st), SCRM_OK);
	ck_assert_int_eq(scrm_expr_test(e, v, &holds), SCRM_ERROR);
	ck_assert_int_eq(st.calls, 3);
	scrm_expr_vars_free(v2);
	scrm_expr_free(e2);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);

	/* a NULL clock is real time */
	ck_assert_int_eq(scrm_expr_env_set_clock(env, NULL, NULL), SCRM_OK);
	e = compile_ok("now()", NULL);
	ck_assert_int_eq(scrm_expr_vars_new(e, &v), SCRM_OK);
	ck_assert_int_eq(scrm_expr_vars_set_env(v, env), SCRM_OK);
	int64_t before = scrm_db_now(NULL);
	char *out;
	ck_assert_int_eq(scrm_expr_eval_json(e, v, &out), SCRM_OK);
	int64_t got = strtoll(out, NULL, 10), after = scrm_db_now(NULL);
	ck_assert(got >= before && got <= after);
	scrm_free(out);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
	scrm_expr_env_free(env);
}
END_TEST

/* ------------------------------------------------------------ trace */

static char *trace_of(const char *src, const char *json, int want_rc)
{
	scrm_expr *e = compile_ok(src, NULL);
	scrm_expr_vars *v;
	ck_assert_int_eq(scrm_expr_vars_new(e, &v), SCRM_OK);
	if (json)
		ck_assert_int_eq(scrm_expr_vars_set_json(v, NULL, json), SCRM_OK);
	char *out = NULL;
	ck_assert_int_eq(scrm_expr_eval_trace(e, v, &out), want_rc);
	ck_assert_ptr_nonnull(out);
	char *copy = strdup(out);
	scrm_free(out);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
	return copy;
}

START_TEST(test_trace)
{
	char *t = trace_of("i > 5 && s == \"x\"", "{\"i\":7,\"s\":\"Hello\"}", SCRM_OK);
	ck_assert_str_eq(t,
		"{\"ok\":true,\"value\":false,\"cost\":7,\"steps\":["
		"{\"depth\":0,\"pos\":\"1:7\",\"expr\":\"i > 5 && s == \\\"x\\\"\",\"value\":false},"
		"{\"depth\":1,\"pos\":\"1:3\",\"expr\":\"i > 5\",\"value\":true},"
		"{\"depth\":2,\"pos\":\"1:1\",\"expr\":\"i\",\"value\":7},"
		"{\"depth\":2,\"pos\":\"1:5\",\"expr\":\"5\",\"value\":5},"
		"{\"depth\":1,\"pos\":\"1:12\",\"expr\":\"s == \\\"x\\\"\",\"value\":false},"
		"{\"depth\":2,\"pos\":\"1:10\",\"expr\":\"s\",\"value\":\"Hello\"},"
		"{\"depth\":2,\"pos\":\"1:15\",\"expr\":\"\\\"x\\\"\",\"value\":\"x\"}]}");
	free(t);
	/* short-circuit: the right side is not evaluated */
	t = trace_of("f && (i > 5)", "{\"f\":false}", SCRM_OK);
	ck_assert_str_eq(t,
		"{\"ok\":true,\"value\":false,\"cost\":2,\"steps\":["
		"{\"depth\":0,\"pos\":\"1:3\",\"expr\":\"f && (i > 5)\",\"value\":false},"
		"{\"depth\":1,\"pos\":\"1:1\",\"expr\":\"f\",\"value\":false},"
		"{\"depth\":1,\"pos\":\"1:9\",\"expr\":\"i > 5\",\"evaluated\":false},"
		"{\"depth\":2,\"pos\":\"1:7\",\"expr\":\"i\",\"evaluated\":false},"
		"{\"depth\":2,\"pos\":\"1:11\",\"expr\":\"5\",\"evaluated\":false}]}");
	free(t);
	/* a missing path, a folded constant, has() */
	t = trace_of("missing ?? 2 * 30d > 0 || has(x)", NULL, SCRM_OK);
	ck_assert_str_eq(t,
		"{\"ok\":true,\"value\":true,\"cost\":6,\"steps\":["
		"{\"depth\":0,\"pos\":\"1:24\",\"expr\":\"missing ?? 2 * 30d > 0 || has(x)\",\"value\":true},"
		"{\"depth\":1,\"pos\":\"1:20\",\"expr\":\"missing ?? 2 * 30d > 0\",\"value\":true},"
		"{\"depth\":2,\"pos\":\"1:9\",\"expr\":\"missing ?? 2 * 30d\",\"value\":5184000000},"
		"{\"depth\":3,\"pos\":\"1:1\",\"expr\":\"missing\",\"value\":null,\"missing\":true},"
		"{\"depth\":3,\"pos\":\"1:14\",\"expr\":\"2 * 30d\",\"value\":5184000000},"
		"{\"depth\":2,\"pos\":\"1:22\",\"expr\":\"0\",\"value\":0},"
		"{\"depth\":1,\"pos\":\"1:27\",\"expr\":\"has(x)\",\"evaluated\":false}]}");
	free(t);
	/* an error: the failing step and its ancestors say so */
	t = trace_of("n + 1 > 0 ||\n i / z > 1", "{\"i\":1,\"z\":0}", SCRM_EVAL);
	ck_assert_str_eq(t,
		"{\"ok\":false,\"code\":17,\"error\":\"2:4: division by zero\",\"cost\":10,\"steps\":["
		"{\"depth\":0,\"pos\":\"1:11\",\"expr\":\"n + 1 > 0 ||\\n i / z > 1\",\"error\":\"2:4: division by zero\"},"
		"{\"depth\":1,\"pos\":\"1:7\",\"expr\":\"n + 1 > 0\",\"value\":null},"
		"{\"depth\":2,\"pos\":\"1:3\",\"expr\":\"n + 1\",\"value\":null},"
		"{\"depth\":3,\"pos\":\"1:1\",\"expr\":\"n\",\"value\":null,\"missing\":true},"
		"{\"depth\":3,\"pos\":\"1:5\",\"expr\":\"1\",\"value\":1},"
		"{\"depth\":2,\"pos\":\"1:9\",\"expr\":\"0\",\"value\":0},"
		"{\"depth\":1,\"pos\":\"2:8\",\"expr\":\"i / z > 1\",\"error\":\"2:4: division by zero\"},"
		"{\"depth\":2,\"pos\":\"2:4\",\"expr\":\"i / z\",\"error\":\"2:4: division by zero\"},"
		"{\"depth\":3,\"pos\":\"2:2\",\"expr\":\"i\",\"value\":1},"
		"{\"depth\":3,\"pos\":\"2:6\",\"expr\":\"z\",\"value\":0},"
		"{\"depth\":2,\"pos\":\"2:10\",\"expr\":\"1\",\"evaluated\":false}]}");
	free(t);
	/* long sub-expressions are cut; strings are escaped */
	char *src = repeat("s == \"", "长", 100, "\"");
	t = trace_of(src, "{\"s\":\"\\u0001\\\"\"}", SCRM_OK);
	tu_assert_contains(t, "\"value\":\"\\u0001\\\"\"");
	tu_assert_contains(t, "长长...\"");
	free(t);
	free(src);
}
END_TEST

/* ------------------------------------------------------------ internals */

typedef struct resolver_state {
	int calls;
	int fail;
} resolver_state;

static int resolve_fn(void *ud, scrm_expr_vars *vars, int slot, const char *path)
{
	resolver_state *st = ud;
	st->calls++;
	if (st->fail)
		return SCRM_BUSY;
	if (strcmp(path, "profile.spend") == 0)
		return scrm_expr_vars_set_int(vars, slot, 500);
	if (strcmp(path, "profile.level") == 0) /* binds a whole subtree while evaluating */
		return scrm_expr_vars_set_json(vars, "profile", "{\"level\":\"gold\",\"spend\":7}");
	return SCRM_OK; /* leave it: missing */
}

START_TEST(test_resolver)
{
	scrm_expr *e = compile_ok("profile.spend > 100 && profile.nope == null && "
				  "profile.spend + 1 > 0 && !has(profile.nope) && "
				  "profile.level == \"gold\" && profile.spend == 7",
				  NULL);
	scrm_expr_vars *v;
	ck_assert_int_eq(scrm_expr_vars_new(e, &v), SCRM_OK);
	resolver_state st = {0};
	scrm_xhooks h = {.resolve = resolve_fn, .resolve_ud = &st};
	scrm_xval r;
	ck_assert_int_eq(scrm__xrun(e, v, &h, NULL, &r), SCRM_OK);
	ck_assert_int_eq(r.t, SCRM_XV_BOOL);
	ck_assert_int_eq(r.u.i, 1);
	ck_assert_int_eq(st.calls, 3); /* spend, nope and level: once each */
	/* bound slots are not resolved again */
	st.calls = 0;
	ck_assert_int_eq(scrm__xrun(e, v, &h, NULL, &r), SCRM_OK);
	ck_assert_int_eq(st.calls, 0);
	/* after a reset, errors from the resolver fail the evaluation */
	ck_assert_int_eq(scrm_expr_vars_reset(v), SCRM_OK);
	st.fail = 1;
	ck_assert_int_eq(scrm__xrun(e, v, &h, NULL, &r), SCRM_BUSY);
	ck_assert_str_eq(scrm_expr_errmsg(v), "1:1: reading 'profile.spend': database is busy");
	/* clear() means missing: the resolver is not asked */
	st.fail = 0;
	st.calls = 0;
	for (int slot = 0; slot < scrm_expr_var_count(e); slot++)
		ck_assert_int_eq(scrm_expr_vars_clear(v, slot), SCRM_OK);
	ck_assert_int_eq(scrm__xrun(e, v, &h, NULL, &r), SCRM_OK);
	ck_assert_int_eq(st.calls, 0);
	ck_assert_int_eq(r.t, SCRM_XV_BOOL); /* ... && null == "gold" && ... */
	ck_assert_int_eq(r.u.i, 0);
	scrm_expr_vars_free(v);
	scrm_expr_free(e);
}
END_TEST

static int count_visit(void *ud, const scrm_expr *e, int32_t node, int depth)
{
	(void)depth;
	int *counts = ud;
	counts[scrm__xnode(e, node)->kind]++;
	return 0;
}

START_TEST(test_walk_and_uses)
{
	scrm_expr *e = compile_ok("(event.type == \"order\" || matches(s, \"x\")) && "
				  "has_tag(\"vip\") && count(\"order\", 30d) > 1 && has(a) && "
				  "[1, 2 + 3] == l",
				  NULL);
	int counts[SCRM_XK_COUNT_] = {0};
	ck_assert_int_eq(scrm__xwalk(e, count_visit, counts), 0);
	ck_assert_int_eq(counts[SCRM_XK_AND], 1);
	ck_assert_int_eq(counts[SCRM_XK_OR], 1);
	ck_assert_int_eq(counts[SCRM_XK_EQ], 2);
	ck_assert_int_eq(counts[SCRM_XK_CALL], 3);
	ck_assert_int_eq(counts[SCRM_XK_HAS], 1);
	ck_assert_int_eq(counts[SCRM_XK_PATH], 3); /* event.type, s, l */
	ck_assert_int_eq(counts[SCRM_XK_ADD], 0);  /* folded with the list */
	ck_assert_uint_eq(scrm__xuses(e), SCRM_XU_NOW | SCRM_XU_HAS_TAG | SCRM_XU_COUNT |
						  SCRM_XU_REGEX | SCRM_XU_HAS);
	/* the fused node keeps its children for walkers */
	const scrm_xnode *root = scrm__xnode(e, e->root);
	const scrm_xnode *eq = scrm__xnode(e, scrm__xkid(e, scrm__xnode(e, scrm__xkid(e, root, 0)), 0));
	ck_assert_int_eq(eq->kind, SCRM_XK_EQ);
	ck_assert_int_eq(eq->op, SCRM_XOP_EQ_SC);
	ck_assert_int_eq(scrm__xnode(e, scrm__xkid(e, eq, 0))->kind, SCRM_XK_PATH);
	ck_assert_int_eq(scrm__xnode(e, scrm__xkid(e, eq, 1))->kind, SCRM_XK_CONST);
	ck_assert_str_eq(scrm__xsource(e), "(event.type == \"order\" || matches(s, \"x\")) && "
					   "has_tag(\"vip\") && count(\"order\", 30d) > 1 && has(a) && "
					   "[1, 2 + 3] == l");
	scrm_expr_free(e);
}
END_TEST

/* ------------------------------------------------------------ time zones */

static scrm_tz zone(const char *name)
{
	scrm_tz z;
	ck_assert_msg(scrm__tz_parse(name, strlen(name), &z), "zone %s", name);
	return z;
}

static int64_t wall(int64_t y, unsigned m, unsigned d, int hh, int mm)
{
	return scrm__days_from_civil(y, m, d) * 86400000 + (int64_t)hh * 3600000 + mm * 60000;
}

START_TEST(test_tz)
{
	ck_assert(scrm__tz_table_sorted());
	/* Fixed zones: one offset at every instant, as before. */
	scrm_tz z = zone("Asia/Kathmandu");
	ck_assert(!z.has_dst);
	ck_assert_int_eq(scrm__tz_offset(&z, INT64_MAX), (5 * 60 + 45) * 60000);
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2024, 3, 10, 2, 30), false),
			 wall(2024, 3, 10, 2, 30) - (5 * 60 + 45) * 60000);
	z = zone("-05:30");
	ck_assert_int_eq(scrm__tz_offset(&z, 0), -(5 * 60 + 30) * 60000);

	/* New York, 2024-03-10: 02:00 EST -> 03:00 EDT. 02:30 does not exist:
	 * it is read as EST, 07:30Z, which the clock shows as 03:30 EDT. */
	z = zone("America/New_York");
	ck_assert(z.has_dst);
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2024, 3, 10, 2, 30), false), INT64_C(1710055800000));
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2024, 3, 10, 2, 30), true), INT64_C(1710055800000));
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2024, 3, 10, 3, 0), false), INT64_C(1710054000000));
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2024, 3, 10, 1, 59), false), INT64_C(1710053940000));
	/* 2024-11-03: 01:30 happens twice, 05:30Z (EDT) first, 06:30Z (EST). */
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2024, 11, 3, 1, 30), false), INT64_C(1730611800000));
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2024, 11, 3, 1, 30), true), INT64_C(1730615400000));
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2024, 11, 3, 2, 0), false), INT64_C(1730617200000));
	/* Summer and winter 10:00: 14:00Z and 15:00Z. */
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2025, 7, 4, 10, 0), false), INT64_C(1751637600000));
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2025, 12, 25, 10, 0), false), INT64_C(1766674800000));
	/* Transitions of other years: 2025-03-09 07:00Z, 2026-11-01 06:00Z. */
	ck_assert_int_eq(scrm__tz_offset(&z, INT64_C(1741503599999)), -5 * 3600000);
	ck_assert_int_eq(scrm__tz_offset(&z, INT64_C(1741503600000)), -4 * 3600000);
	ck_assert_int_eq(scrm__tz_offset(&z, INT64_C(1793512799999)), -4 * 3600000);
	ck_assert_int_eq(scrm__tz_offset(&z, INT64_C(1793512800000)), -5 * 3600000);

	/* London, 2024-03-31: 01:30 does not exist -> 01:30Z (02:30 BST). */
	z = zone("Europe/London");
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2024, 3, 31, 1, 30), false), INT64_C(1711848600000));
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2024, 3, 31, 0, 0), false), INT64_C(1711843200000));
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2024, 4, 1, 0, 0), false), INT64_C(1711926000000));
	/* Dublin's negative DST: GMT in winter, IST (+01) in summer. */
	z = zone("Europe/Dublin");
	ck_assert_int_eq(scrm__tz_offset(&z, INT64_C(1705320000000)), 0);
	ck_assert_int_eq(scrm__tz_offset(&z, INT64_C(1719835200000)), 3600000);
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2024, 10, 27, 1, 30), false), INT64_C(1729989000000));
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2024, 10, 27, 1, 30), true), INT64_C(1729992600000));
	/* Santiago skips Sunday 00:00-01:00 in September: the day starts at
	 * 01:00 -03, 04:00Z. */
	z = zone("America/Santiago");
	ck_assert_int_eq(scrm__tz_utc(&z, wall(2024, 9, 8, 0, 0), false), INT64_C(1725768000000));

	/* Every instant maps back to itself (or, when its wall time repeats,
	 * to one of the two), across years and hemispheres. */
	static const char *const names[] = {
		"America/New_York", "Europe/London", "Europe/Berlin", "Australia/Sydney",
		"Australia/Lord_Howe", "Pacific/Chatham", "America/Santiago", "Asia/Jerusalem",
		"America/Nuuk", "Africa/Cairo", "Europe/Dublin", "America/Havana",
		"EST5EDT,M3.2.0,M11.1.0", "XST-1XDT-2:30,J90/1:30:00,300"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		z = zone(names[i]);
		int changes = 0;
		int64_t prev = scrm__tz_offset(&z, INT64_C(1577836800000)), bad = 0;
		/* (ck_assert costs a pipe write each: checked once at the end) */
		for (int64_t t = INT64_C(1577836800000); t < INT64_C(1893456000000) && !bad;
		     t += 37 * 60000 + 11) {
			int64_t off = scrm__tz_offset(&z, t), l = t + off;
			int64_t a = scrm__tz_utc(&z, l, false), b = scrm__tz_utc(&z, l, true);
			if ((a != t && b != t) || a > b)
				bad = t;
			changes += off != prev;
			prev = off;
		}
		ck_assert_msg(!bad, "%s: %lld does not map back", names[i], (long long)bad);
		ck_assert_msg(changes == 20, "%s: %d changes in 10 years", names[i], changes);
	}
	/* Far from now: no overflow, the same answer. */
	z = zone("Australia/Sydney");
	ck_assert_int_eq(scrm__tz_offset(&z, INT64_MAX), scrm__tz_offset(&z, INT64_C(1) << 50));
	ck_assert_int_eq(scrm__tz_offset(&z, INT64_MIN), scrm__tz_offset(&z, -(INT64_C(1) << 50)));
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *expr_suite(void)
{
	Suite *s = suite_create("expr");
	TCase *tc = tcase_create("table");
	tcase_add_loop_test(tc, test_table, 0, NCASES);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_test(tc, test_api_misuse);
	tcase_add_test(tc, test_vars_slots);
	tcase_add_test(tc, test_vars_rebind);
	tcase_add_test(tc, test_vars_json);
	tcase_add_test(tc, test_vars_json_errors);
	tcase_add_test(tc, test_env);
	tcase_add_test(tc, test_env_clock);
	tcase_add_test(tc, test_trace);
	tcase_add_test(tc, test_resolver);
	tcase_add_test(tc, test_walk_and_uses);
	tcase_add_test(tc, test_tz);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(expr_suite());
}
