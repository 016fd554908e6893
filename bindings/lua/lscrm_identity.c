/*
 * Lua binding of libscrm: identity methods of the database handle (kinds,
 * observe, resolve, merge/never-merge/unmerge, history and explain).
 */
#include <stdio.h>
#include <string.h>

#include "scrm/identity.h"

#include "lscrm.h"

/* Push the value at `idx` as identifier text: strings as they are, integral
 * numbers without a fractional part (13800138000, not "1.38e+10"). */
static void push_value_text(lua_State *L, int idx, int arg)
{
	int64_t iv;
	switch (lua_type(L, idx)) {
	case LUA_TSTRING: {
		size_t n;
		const char *s = lua_tolstring(L, idx, &n);
		if (memchr(s, '\0', n))
			luaL_argerror(L, arg, "identifier value contains a zero byte");
		lua_pushvalue(L, idx);
		return;
	}
	case LUA_TNUMBER:
		if (lscrm_toint64(L, idx, &iv)) {
			char buf[32];
			snprintf(buf, sizeof buf, "%lld", (long long)iv);
			lua_pushstring(L, buf);
		} else {
			lua_pushvalue(L, idx);
			lua_tostring(L, -1); /* converts the copy */
		}
		return;
	default:
		lua_pushfstring(L, "identifier values must be strings or numbers, got %s",
				luaL_typename(L, idx));
		luaL_argerror(L, arg, lua_tostring(L, -1));
	}
}

/* Append (kind at kidx, value at vidx) to the anchor table as two strings. */
static void add_pair(lua_State *L, int anchor, size_t *n, int kidx, int vidx, int arg)
{
	size_t kn;
	if (lua_type(L, kidx) != LUA_TSTRING) {
		lua_pushfstring(L, "identifier kinds must be strings, got %s", luaL_typename(L, kidx));
		luaL_argerror(L, arg, lua_tostring(L, -1));
	}
	const char *k = lua_tolstring(L, kidx, &kn);
	if (memchr(k, '\0', kn))
		luaL_argerror(L, arg, "identifier kind contains a zero byte");
	lua_pushvalue(L, kidx);
	lua_rawseti(L, anchor, (int)(2 * *n + 1));
	push_value_text(L, vidx, arg);
	lua_rawseti(L, anchor, (int)(2 * *n + 2));
	(*n)++;
}

/* (lscrm.h) */
size_t lscrm_collect_ids(lua_State *L, int arg, int anchor)
{
	size_t n = 0;
	lua_pushnil(L);
	while (lua_next(L, arg)) {
		int k = lua_gettop(L) - 1, v = k + 1;
		if (lua_type(L, k) == LUA_TSTRING) {
			if (lua_type(L, v) == LUA_TTABLE) {
				size_t len = lua_rawlen(L, v);
				for (size_t i = 1; i <= len; i++) {
					lua_rawgeti(L, v, (int)i);
					add_pair(L, anchor, &n, k, lua_gettop(L), arg);
					lua_pop(L, 1);
				}
			} else {
				add_pair(L, anchor, &n, k, v, arg);
			}
		} else if (lua_type(L, k) == LUA_TNUMBER && lua_type(L, v) == LUA_TTABLE) {
			lua_rawgeti(L, v, 1);
			lua_rawgeti(L, v, 2);
			add_pair(L, anchor, &n, k + 2, k + 3, arg);
			lua_pop(L, 2);
		} else {
			luaL_argerror(L, arg, "identifiers must be {kind = value or {values}} or "
					      "{{kind, value}, ...}");
		}
		lua_pop(L, 1);
	}
	return n;
}

/* Push the customer id, then the report table if one was asked for. */
static int push_observed(lua_State *L, lscrm_db *ud, int rc, int64_t customer, char *report)
{
	int n = lscrm_finish(L, ud, rc, report, 1);
	lscrm_pushid(L, customer);
	if (n)
		lua_insert(L, -2);
	return 1 + n;
}

static const char *const observe_opts[] = {"channel", "at", "report", NULL};

/* db:observe(ids [, {channel="api", at=ms, report=false}]) -> id [, report] */
static int id_observe(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		lscrm_checkopts(L, 3, observe_opts);
	} else {
		lua_settop(L, 2);
		lua_newtable(L);
	}
	lua_settop(L, 3);
	lua_getfield(L, 3, "channel"); /* 4: kept on the stack while C uses it */
	if (lua_isnil(L, 4)) {
		lua_pop(L, 1);
		lua_pushliteral(L, "api");
	} else if (lua_type(L, 4) != LUA_TSTRING ||
		   strlen(lua_tostring(L, 4)) != lua_rawlen(L, 4)) {
		luaL_argerror(L, 3, "option 'channel' must be a string without zero bytes");
	}
	const char *channel = lua_tostring(L, 4);
	int64_t at = lscrm_optint(L, 3, "at", 0, INT64_MIN, INT64_MAX);
	int want_report = lscrm_optbool(L, 3, "report", 0);

	lua_newtable(L); /* 5: anchor */
	size_t n = lscrm_collect_ids(L, 2, 5);
	const char **v = (const char **)lua_newuserdata(L, (2 * n + 1) * sizeof *v);
	for (size_t i = 0; i < n; i++) {
		lua_rawgeti(L, 5, (int)(2 * i + 1));
		v[i] = lua_tostring(L, -1);
		lua_rawgeti(L, 5, (int)(2 * i + 2));
		v[n + i] = lua_tostring(L, -1);
		lua_pop(L, 2);
	}
	int64_t customer = 0;
	char *report = NULL;
	int rc;
	rc = LSCRM_CALL(ud, scrm_identity_observe(ud->db, channel, at, v, v + n, n, &customer,
					     want_report ? &report : NULL));
	return push_observed(L, ud, rc, customer, report);
}

/* db:observe_json(text_or_table [, {report=bool} or bool]) -> id [, report] */
static int id_observe_json(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int want_report = 0;
	if (lua_type(L, 3) == LUA_TBOOLEAN) {
		want_report = lua_toboolean(L, 3);
	} else if (!lua_isnoneornil(L, 3)) {
		static const char *const opts[] = {"report", NULL};
		luaL_checktype(L, 3, LUA_TTABLE);
		lscrm_checkopts(L, 3, opts);
		want_report = lscrm_optbool(L, 3, "report", 0);
	}
	lua_settop(L, 2);
	if (lua_type(L, 2) == LUA_TTABLE)
		lscrm_json_encode(L, 2);
	else
		lua_pushvalue(L, 2);
	const char *json = lscrm_checkcstr(L, 3);
	int64_t customer = 0;
	char *report = NULL;
	int rc;
	rc = LSCRM_CALL(ud, scrm_identity_observe_json(ud->db, json, &customer,
						  want_report ? &report : NULL));
	return push_observed(L, ud, rc, customer, report);
}

/* Lookups answer nil plus the error table when the thing is not found. */
static int not_found(lua_State *L, lscrm_db *ud, int rc)
{
	if (rc != SCRM_NOTFOUND || ud->has_pending)
		return 0;
	lua_pushnil(L);
	lscrm_push_error(L, rc, scrm_errmsg(ud->db));
	return 2;
}

/* db:resolve(kind, value) -> id | nil, err */
static int id_resolve(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	const char *kind = lscrm_checkcstr(L, 2);
	luaL_checkany(L, 3);
	push_value_text(L, 3, 3);
	int64_t customer = 0;
	int rc;
	rc = LSCRM_CALL(ud, scrm_identity_resolve(ud->db, kind, lua_tostring(L, -1), &customer));
	if (not_found(L, ud, rc))
		return 2;
	lscrm_check(L, ud, rc);
	lscrm_pushid(L, customer);
	return 1;
}

/* db:canonical(id) -> survivor id | nil, err */
static int id_canonical(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2), survivor = 0;
	int rc;
	rc = LSCRM_CALL(ud, scrm_identity_canonical(ud->db, id, &survivor));
	if (not_found(L, ud, rc))
		return 2;
	lscrm_check(L, ud, rc);
	lscrm_pushid(L, survivor);
	return 1;
}

typedef int (*id_json_fn)(scrm_db *, int64_t, char **);

/* Methods taking a customer id and answering the library's JSON as tables. */
static int id_json(lua_State *L, id_json_fn fn, int json)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	char *out = NULL;
	int rc;
	rc = LSCRM_CALL(ud, fn(ud->db, id, &out));
	return lscrm_finish(L, ud, rc, out, json);
}

static int id_identifiers(lua_State *L) { return id_json(L, scrm_identity_list_json, 1); }
static int id_history(lua_State *L) { return id_json(L, scrm_identity_history_json, 1); }
static int id_explain(lua_State *L) { return id_json(L, scrm_identity_explain_json, 1); }
static int id_explain_dot(lua_State *L) { return id_json(L, scrm_identity_explain_dot, 0); }

/* db:merge(a, b [, reason]) -> merge id */
static int id_merge(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t a = lscrm_checkid(L, 2), b = lscrm_checkid(L, 3), merge_id = 0;
	const char *reason = lscrm_optcstr(L, 4);
	int rc;
	rc = LSCRM_CALL(ud, scrm_identity_merge(ud->db, a, b, reason, &merge_id));
	lscrm_check(L, ud, rc);
	lscrm_pushid(L, merge_id);
	return 1;
}

/* db:never_merge(a, b [, reason]) -> true */
static int id_never_merge(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t a = lscrm_checkid(L, 2), b = lscrm_checkid(L, 3);
	const char *reason = lscrm_optcstr(L, 4);
	int rc;
	rc = LSCRM_CALL(ud, scrm_identity_never_merge(ud->db, a, b, reason));
	lscrm_check(L, ud, rc);
	lua_pushboolean(L, 1);
	return 1;
}

/* db:unmerge(merge_id [, reason]) -> unmerge id */
static int id_unmerge(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t merge_id = lscrm_checkid(L, 2), unmerge_id = 0;
	const char *reason = lscrm_optcstr(L, 3);
	int rc;
	rc = LSCRM_CALL(ud, scrm_identity_unmerge(ud->db, merge_id, reason, &unmerge_id));
	lscrm_check(L, ud, rc);
	lscrm_pushid(L, unmerge_id);
	return 1;
}

/* db:kind_set(table_or_json) -> true */
static int id_kind_set(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lua_settop(L, 2);
	if (lua_type(L, 2) == LUA_TTABLE)
		lscrm_json_encode(L, 2);
	else
		lua_pushvalue(L, 2);
	if (lua_type(L, 3) != LUA_TSTRING)
		luaL_argerror(L, 2, "kind definition (table or JSON text) expected");
	const char *json = lscrm_checkcstr(L, 3);
	int rc;
	rc = LSCRM_CALL(ud, scrm_identity_kind_set(ud->db, json));
	lscrm_check(L, ud, rc);
	lua_pushboolean(L, 1);
	return 1;
}

/* db:kind_get(name) -> table | nil, err */
static int id_kind_get(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	const char *name = lscrm_checkcstr(L, 2);
	char *out = NULL;
	int rc;
	rc = LSCRM_CALL(ud, scrm_identity_kind_get(ud->db, name, &out));
	if (rc == SCRM_NOTFOUND && !ud->has_pending) {
		scrm_free(out);
		return not_found(L, ud, rc);
	}
	return lscrm_finish(L, ud, rc, out, 1);
}

/* db:kinds() -> array of kind tables ordered by (priority, name) */
static int id_kinds(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	char *out = NULL;
	int rc;
	rc = LSCRM_CALL(ud, scrm_identity_kinds_json(ud->db, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

/* db:normalize(kind, value) -> normalized text */
static int id_normalize(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	const char *kind = lscrm_checkcstr(L, 2);
	luaL_checkany(L, 3);
	push_value_text(L, 3, 3);
	char *out = NULL;
	int rc;
	rc = LSCRM_CALL(ud, scrm_identity_normalize(ud->db, kind, lua_tostring(L, -1), &out));
	return lscrm_finish(L, ud, rc, out, 0);
}

const luaL_Reg lscrm_identity_methods[] = {
	{"observe", id_observe},
	{"observe_json", id_observe_json},
	{"resolve", id_resolve},
	{"canonical", id_canonical},
	{"identifiers", id_identifiers},
	{"merge", id_merge},
	{"never_merge", id_never_merge},
	{"unmerge", id_unmerge},
	{"history", id_history},
	{"explain", id_explain},
	{"explain_dot", id_explain_dot},
	{"kind_set", id_kind_set},
	{"kind_get", id_kind_get},
	{"kinds", id_kinds},
	{"normalize", id_normalize},
	{NULL, NULL},
};
