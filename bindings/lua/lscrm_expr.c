/*
 * Lua binding of libscrm: compiled expressions (scrm.expr) as userdata that
 * own the expression, one activation and one environment; no database needed.
 */
#include <stdio.h>
#include <string.h>

#include "scrm/rules.h"

#include "lscrm.h"

#define LSCRM_EXPR_MT "scrm.expr"

typedef struct lexpr {
	scrm_expr *expr;       /* NULL once closed */
	scrm_expr_vars *vars;  /* made for expr; freed first */
	scrm_expr_env *env;    /* now() for evaluations */
	char *owned;           /* library string being copied into Lua (freed if that throws) */
} lexpr;

static void expr_release(lexpr *x)
{
	scrm_expr_vars_free(x->vars);
	x->vars = NULL;
	scrm_expr_free(x->expr);
	x->expr = NULL;
	scrm_expr_env_free(x->env);
	x->env = NULL;
	scrm_free(x->owned);
	x->owned = NULL;
}

static lexpr *check_expr(lua_State *L, int idx)
{
	lexpr *x = (lexpr *)luaL_checkudata(L, idx, LSCRM_EXPR_MT);
	if (!x->expr)
		lscrm_raise(L, SCRM_MISUSE, "expression is closed");
	if (x->owned) { /* left over by a copy that raised (out of memory) */
		scrm_free(x->owned);
		x->owned = NULL;
	}
	return x;
}

/* Raise the error table for `rc` with `msg`, plus line and column if known. */
static int raise_expr(lua_State *L, int rc, const char *msg, int has_pos, int line, int column)
{
	lscrm_push_error(L, rc, msg);
	if (has_pos) {
		lua_pushinteger(L, line);
		lua_setfield(L, -2, "line");
		lua_pushinteger(L, column);
		lua_setfield(L, -2, "column");
	}
	return lua_error(L);
}

/* Raise the last evaluation error of x's activation. */
static int raise_eval(lua_State *L, lexpr *x, int rc)
{
	int line = 0, column = 0;
	int has_pos = scrm_expr_error_pos(x->vars, &line, &column) == SCRM_OK;
	return raise_expr(L, rc, scrm_expr_errmsg(x->vars), has_pos, line, column);
}

/* ------------------------------------------------------------ compile */

static const struct {
	const char *name;
	int limit;
} limit_names[] = {
	{"source", SCRM_EXPR_LIMIT_SOURCE},
	{"depth", SCRM_EXPR_LIMIT_DEPTH},
	{"nodes", SCRM_EXPR_LIMIT_NODES},
	{"string", SCRM_EXPR_LIMIT_STRING},
	{"cost", SCRM_EXPR_LIMIT_COST},
	{"regex_match", SCRM_EXPR_LIMIT_REGEX_MATCH},
	{"regex_depth", SCRM_EXPR_LIMIT_REGEX_DEPTH},
	{"regex_heap", SCRM_EXPR_LIMIT_REGEX_HEAP},
};
#define N_LIMITS (sizeof limit_names / sizeof limit_names[0])

static const char *const limit_opts[] = {"source", "depth", "nodes", "string", "cost",
					 "regex_match", "regex_depth", "regex_heap", NULL};

/* scrm.expr(src [, limits]) -> expression; raises PARSE etc. with line/column */
static int l_expr(lua_State *L)
{
	const char *src = lscrm_checkcstr(L, 1);
	int64_t value[N_LIMITS];
	int given[N_LIMITS];
	memset(given, 0, sizeof given);
	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		lscrm_checkopts(L, 2, limit_opts);
		for (size_t i = 0; i < N_LIMITS; i++) {
			lua_getfield(L, 2, limit_names[i].name);
			given[i] = !lua_isnil(L, -1);
			lua_pop(L, 1);
			/* The library checks each limit's own range. */
			value[i] = lscrm_optint(L, 2, limit_names[i].name, 0, INT64_MIN, INT64_MAX);
		}
	}
	lexpr *x = (lexpr *)lua_newuserdata(L, sizeof *x);
	memset(x, 0, sizeof *x);
	luaL_setmetatable(L, LSCRM_EXPR_MT);

	/* From here until the result is known only C runs: nothing may raise. */
	scrm_expr_options *o = NULL;
	int rc = scrm_expr_options_new(&o);
	for (size_t i = 0; i < N_LIMITS && rc == SCRM_OK; i++)
		if (given[i])
			rc = scrm_expr_options_set_limit(o, limit_names[i].limit, value[i]);
	if (rc == SCRM_OK)
		rc = scrm_expr_compile(src, o, &x->expr);
	char msg[512];
	int line = 0, column = 0, has_pos = 0;
	if (rc != SCRM_OK) {
		const char *m = scrm_errmsg(NULL);
		snprintf(msg, sizeof msg, "%s", m ? m : scrm_errstr(rc));
		has_pos = scrm_expr_error_pos(NULL, &line, &column) == SCRM_OK;
	}
	scrm_expr_options_free(o);
	if (rc != SCRM_OK)
		return raise_expr(L, rc, msg, has_pos, line, column);

	rc = scrm_expr_vars_new(x->expr, &x->vars);
	if (rc == SCRM_OK)
		rc = scrm_expr_env_new(&x->env);
	if (rc == SCRM_OK)
		rc = scrm_expr_vars_set_env(x->vars, x->env);
	if (rc != SCRM_OK) {
		lscrm_push_error(L, rc, scrm_errmsg(NULL)); /* if this raises, __gc frees x */
		expr_release(x);
		return lua_error(L);
	}
	return 1;
}

/* ------------------------------------------------------------ binding */

/* Bind a table value: encoded as JSON at path `key`. */
static void bind_table(lua_State *L, lexpr *x, const char *key, int idx)
{
	lscrm_json_encode(L, idx);
	int rc = scrm_expr_vars_set_json(x->vars, key, lua_tostring(L, -1));
	lua_pop(L, 1);
	if (rc != SCRM_OK) {
		lua_pushfstring(L, "bindings: '%s': %s", key, scrm_expr_errmsg(x->vars));
		lscrm_push_error(L, rc, lua_tostring(L, -1));
		lua_error(L);
	}
}

/* Bind a scalar at `key` (value at -1) with the typed setters. */
static void bind_scalar(lua_State *L, lexpr *x, int tidx, const char *key)
{
	int slot = scrm_expr_var_index(x->expr, key);
	int64_t iv;
	size_t len;
	const char *s;
	int rc;
	switch (lua_type(L, -1)) {
	case LUA_TBOOLEAN:
		if (slot < 0)
			return;
		rc = scrm_expr_vars_set_bool(x->vars, slot, lua_toboolean(L, -1));
		break;
	case LUA_TNUMBER:
		if (!lscrm_toint64(L, -1, &iv))
			luaL_argerror(L, tidx, lua_pushfstring(L, "bindings: '%s' is not an integer "
							       "(expressions have no fractions)", key));
		if (slot < 0)
			return;
		rc = scrm_expr_vars_set_int(x->vars, slot, iv);
		break;
	case LUA_TSTRING:
		if (slot < 0)
			return;
		/* Borrowed: the string stays referenced by the bindings table, which
		 * is an argument of the running call, and no Lua runs meanwhile. */
		s = lua_tolstring(L, -1, &len);
		rc = scrm_expr_vars_set_str(x->vars, slot, s, len);
		break;
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, -1) == NULL) { /* scrm.null */
			if (slot < 0)
				return;
			rc = scrm_expr_vars_set_null(x->vars, slot);
			break;
		}
		/* fall through */
	default:
		luaL_argerror(L, tidx, lua_pushfstring(L, "bindings: '%s' is a %s (expected a "
						       "boolean, integer, string, table or scrm.null)",
						       key, luaL_typename(L, -1)));
		return;
	}
	if (rc != SCRM_OK) {
		lscrm_push_error(L, rc, scrm_expr_errmsg(x->vars));
		lua_error(L);
	}
}

/*
 * Bind the table at `tidx`: keys are paths ("event.amount", or "event" with
 * a table that is bound as JSON at that path). Every slot is first made
 * missing. Tables are bound first, shorter paths before longer ones, and
 * scalars last, so that a scalar at a deeper path is never cleared by a
 * table at a shorter one. Keys the expression does not read are ignored.
 */
static void bind_all(lua_State *L, lexpr *x, int tidx)
{
	scrm_expr_vars_reset(x->vars);
	if (lua_isnoneornil(L, tidx))
		return;
	luaL_checktype(L, tidx, LUA_TTABLE);
	luaL_checkstack(L, 8, "bindings");
	lua_newtable(L); /* the keys whose values are tables, sorted by length */
	int keys = lua_gettop(L);
	int n = 0;
	lua_pushnil(L);
	while (lua_next(L, tidx)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_argerror(L, tidx, "bindings: keys must be path strings");
		if (lua_type(L, -1) == LUA_TTABLE) {
			/* insertion sort by key length */
			size_t klen = lua_rawlen(L, -2);
			int i = n;
			while (i > 0) {
				lua_rawgeti(L, keys, i);
				size_t ilen = lua_rawlen(L, -1);
				if (ilen <= klen) {
					lua_pop(L, 1);
					break;
				}
				lua_rawseti(L, keys, i + 1);
				i--;
			}
			lua_pushvalue(L, -2);
			lua_rawseti(L, keys, i + 1);
			n++;
		}
		lua_pop(L, 1);
	}
	for (int i = 1; i <= n; i++) {
		lua_rawgeti(L, keys, i);
		lua_pushvalue(L, -1);
		lua_rawget(L, tidx);
		bind_table(L, x, lua_tostring(L, -2), lua_gettop(L));
		lua_pop(L, 2);
	}
	lua_pushnil(L);
	while (lua_next(L, tidx)) {
		if (lua_type(L, -1) != LUA_TTABLE)
			bind_scalar(L, x, tidx, lua_tostring(L, -2));
		lua_pop(L, 1);
	}
	lua_settop(L, keys - 1);
}

/* The optional `now` argument fixes now(); without it now() is the real time. */
static void set_now(lua_State *L, lexpr *x, int idx)
{
	if (lua_isnoneornil(L, idx))
		scrm_expr_env_set_clock(x->env, NULL, NULL);
	else
		scrm_expr_env_set_now(x->env, lscrm_checkid(L, idx));
}

/* ------------------------------------------------------------ methods */

/* e:eval([bindings [, now_ms]]) -> value (null is scrm.null; lists are tables) */
static int ex_eval(lua_State *L)
{
	lexpr *x = check_expr(L, 1);
	set_now(L, x, 3);
	bind_all(L, x, 2);
	char *out = NULL;
	int rc = scrm_expr_eval_json(x->expr, x->vars, &out);
	if (rc != SCRM_OK) {
		scrm_free(out);
		return raise_eval(L, x, rc);
	}
	x->owned = out;
	lscrm_json_push(L, out, strlen(out));
	x->owned = NULL;
	scrm_free(out);
	return 1;
}

/* e:test([bindings [, now_ms]]) -> true iff the result is exactly true */
static int ex_test(lua_State *L)
{
	lexpr *x = check_expr(L, 1);
	set_now(L, x, 3);
	bind_all(L, x, 2);
	int holds = 0;
	int rc = scrm_expr_test(x->expr, x->vars, &holds);
	if (rc != SCRM_OK)
		return raise_eval(L, x, rc);
	lua_pushboolean(L, holds);
	return 1;
}

/* e:trace([bindings [, now_ms]]) -> {ok=, value= | code=, error=, cost=, steps={...}};
 * an evaluation error is reported in the table, not raised. */
static int ex_trace(lua_State *L)
{
	lexpr *x = check_expr(L, 1);
	set_now(L, x, 3);
	bind_all(L, x, 2);
	char *out = NULL;
	int rc = scrm_expr_eval_trace(x->expr, x->vars, &out);
	if (!out)
		return raise_eval(L, x, rc);
	x->owned = out;
	lscrm_json_push(L, out, strlen(out));
	x->owned = NULL;
	scrm_free(out);
	return 1;
}

/* e:vars() -> {"event.amount", ...} in order of first appearance */
static int ex_vars(lua_State *L)
{
	lexpr *x = check_expr(L, 1);
	int n = scrm_expr_var_count(x->expr);
	lua_createtable(L, n > 0 ? n : 0, 0);
	for (int i = 0; i < n; i++) {
		lua_pushstring(L, scrm_expr_var_name(x->expr, i));
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static int ex_close(lua_State *L)
{
	expr_release((lexpr *)luaL_checkudata(L, 1, LSCRM_EXPR_MT));
	return 0;
}

static int ex_is_closed(lua_State *L)
{
	lua_pushboolean(L, ((lexpr *)luaL_checkudata(L, 1, LSCRM_EXPR_MT))->expr == NULL);
	return 1;
}

static int ex_tostring(lua_State *L)
{
	lexpr *x = (lexpr *)luaL_checkudata(L, 1, LSCRM_EXPR_MT);
	if (x->expr)
		lua_pushfstring(L, "scrm.expr (%d paths)", scrm_expr_var_count(x->expr));
	else
		lua_pushliteral(L, "scrm.expr (closed)");
	return 1;
}

static const luaL_Reg expr_methods[] = {
	{"eval", ex_eval},
	{"test", ex_test},
	{"trace", ex_trace},
	{"vars", ex_vars},
	{"close", ex_close},
	{"is_closed", ex_is_closed},
	{NULL, NULL},
};

static const luaL_Reg expr_meta[] = {
	{"__gc", ex_close},
	{"__close", ex_close},
	{"__tostring", ex_tostring},
	{NULL, NULL},
};

void lscrm_expr_open(lua_State *L)
{
	if (luaL_newmetatable(L, LSCRM_EXPR_MT)) {
		luaL_setfuncs(L, expr_meta, 0);
		lua_newtable(L);
		luaL_setfuncs(L, expr_methods, 0);
		lua_setfield(L, -2, "__index");
		lua_pushliteral(L, LSCRM_EXPR_MT);
		lua_setfield(L, -2, "__name");
	}
	lua_pop(L, 1);
}

const luaL_Reg lscrm_expr_funcs[] = {
	{"expr", l_expr},
	{NULL, NULL},
};
