/*
 * Lua binding of libscrm: events and profiles (event add/batch/import/list/stats,
 * profile and attributes, RFM configuration and refresh, consent, erase,
 * anonymize) as methods of the database handle, and scrm.mask().
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "scrm/profile.h"

#include "lscrm.h"

/* Lookups answer nil plus the error table when the thing is not found. */
static int not_found(lua_State *L, lscrm_db *ud, int rc)
{
	if (rc != SCRM_NOTFOUND || ud->has_pending)
		return 0;
	lua_pushnil(L);
	lscrm_push_error(L, rc, scrm_errmsg(ud->db));
	return 2;
}

/* An optional time argument (nil -> 0, which the library reads as "now"). */
static int64_t opt_time(lua_State *L, int idx)
{
	return lua_isnoneornil(L, idx) ? 0 : lscrm_checkid(L, idx);
}

/* ------------------------------------------------------------ events */

/*
 * db:event_add(event) -> customer id, event id. `event` is a table of the
 * event JSON's members (key, type, channel, at, customer, ids, amount,
 * currency, refund_of, items, props) or that JSON as text. A missing `at`
 * is the handle's clock. A duplicate key raises DUPLICATE with the stored
 * event's `customer` and `event` in the error table.
 */
static int pf_event_add(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lua_settop(L, 2);
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_getfield(L, 2, "at");
		int has_at = !lua_isnil(L, -1);
		lua_pop(L, 1);
		/* props is always an object: an empty table given there is {}. */
		lua_getfield(L, 2, "props");
		int empty_props = lua_type(L, -1) == LUA_TTABLE && !lua_getmetatable(L, -1);
		if (empty_props) {
			lua_pushnil(L);
			if (lua_next(L, -2)) {
				lua_pop(L, 2);
				empty_props = 0;
			}
		}
		lua_settop(L, 2);
		if (!has_at || empty_props) {
			/* A copy (with the clock's time): the caller's table stays as it was. */
			int64_t now = 0;
			if (!has_at) {
				ud->in_call = 1;
				now = scrm_db_now(ud->db);
				ud->in_call = 0;
				lscrm_check(L, ud, SCRM_OK); /* raises what the clock hook raised */
			}
			lua_newtable(L);
			lua_pushnil(L);
			while (lua_next(L, 2)) {
				lua_pushvalue(L, -2);
				lua_insert(L, -2);
				lua_rawset(L, 3);
			}
			if (!has_at) {
				lscrm_pushid(L, now);
				lua_setfield(L, 3, "at");
			}
			if (empty_props) {
				lua_newtable(L);
				luaL_setmetatable(L, LSCRM_OBJECT_MT);
				lua_setfield(L, 3, "props");
			}
			lua_replace(L, 2);
		}
	}
	const char *json = lscrm_push_json_arg(L, 2, "event");
	int64_t customer = 0, event = 0;
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_event_add_json(ud->db, json, &customer, &event));
	if (rc == SCRM_DUPLICATE && !ud->has_pending) {
		lscrm_push_error(L, rc, scrm_errmsg(ud->db));
		lscrm_pushid(L, customer);
		lua_setfield(L, -2, "customer");
		lscrm_pushid(L, event);
		lua_setfield(L, -2, "event");
		return lua_error(L);
	}
	lscrm_check(L, ud, rc);
	lscrm_pushid(L, customer);
	lscrm_pushid(L, event);
	return 2;
}

/* ---- db:add_events */

/* Keep the value on top of the stack referenced by the anchor table; pops it. */
static void anchor_top(lua_State *L, int anchor, int *na)
{
	lua_rawseti(L, anchor, ++*na);
}

/* Field `name` of event table t as a C string (NULL when nil), anchored. */
static const char *ev_str(lua_State *L, int t, int i, const char *name, int anchor, int *na)
{
	lua_getfield(L, t, name);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}
	size_t n;
	const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
	if (!s || memchr(s, '\0', n))
		luaL_argerror(L, 2, lua_pushfstring(L, "event %d: '%s' must be a string without "
						       "zero bytes", i, name));
	anchor_top(L, anchor, na);
	return s;
}

/* Field `name` of event table t as an integer; *has = 0 when nil. */
static int64_t ev_int(lua_State *L, int t, int i, const char *name, int *has)
{
	lua_getfield(L, t, name);
	int64_t v = 0;
	*has = !lua_isnil(L, -1);
	if (*has && !lscrm_toint64(L, -1, &v))
		luaL_argerror(L, 2, lua_pushfstring(L, "event %d: '%s' must be an integer%s", i, name,
						       strcmp(name, "at") == 0 ? " (ms)" : ""));
	lua_pop(L, 1);
	return v;
}

/* items / props: a table (encoded as JSON; props {} is an object) or JSON text. */
static const char *ev_json(lua_State *L, int t, int i, const char *name, int anchor, int *na)
{
	lua_getfield(L, t, name);
	if (lua_type(L, -1) != LUA_TTABLE) {
		lua_pop(L, 1);
		return ev_str(L, t, i, name, anchor, na);
	}
	int empty = !lua_getmetatable(L, -1);
	if (!empty)
		lua_pop(L, 1);
	else {
		lua_pushnil(L);
		if (lua_next(L, -2)) {
			lua_pop(L, 2);
			empty = 0;
		}
	}
	if (empty && strcmp(name, "props") == 0)
		lua_pushliteral(L, "{}");
	else
		lscrm_json_encode(L, -1);
	const char *s = lua_tostring(L, -1);
	anchor_top(L, anchor, na);
	lua_pop(L, 1);
	return s;
}

static const char *const add_events_opts[] = {"input_order", NULL};
static const char *const event_fields[] = {"key",      "type",      "channel", "at",
					   "customer", "ids",       "amount",  "currency",
					   "refund_of", "items",    "props",   NULL};

/*
 * db:add_events({event, ...} [, {input_order = true}]) -> array of results,
 * one per event: {customer =, event =}, plus `error` (an error table) for a
 * duplicate (DUPLICATE; customer and event name the stored one) or a
 * refused event (customer and event 0). Events are tables of event_add()'s
 * fields with `at` in ms (nil = the clock). Raises when the batch as a
 * whole failed (nothing stored).
 */
static int pf_add_events(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	int input_order = 0;
	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		lscrm_checkopts(L, 3, add_events_opts);
		input_order = lscrm_optbool(L, 3, "input_order", 0);
	}
	lua_settop(L, 2);
	lua_newtable(L); /* 3: anchor of every string the events point to */
	int anchor = 3, na = 0;
	size_t n = lua_rawlen(L, 2);
	if (n > (size_t)INT_MAX / 2)
		luaL_argerror(L, 2, "too many events");
	scrm_event *evs = lua_newuserdata(L, (n ? n : 1) * sizeof *evs);
	anchor_top(L, anchor, &na);
	int64_t now = 0;
	int have_now = 0;
	for (size_t k = 0; k < n; k++) {
		int i = (int)k + 1;
		lua_rawgeti(L, 2, i);
		int t = lua_gettop(L);
		if (lua_type(L, t) != LUA_TTABLE)
			luaL_argerror(L, 2, lua_pushfstring(L, "event %d is a %s, not a table", i,
							       luaL_typename(L, t)));
		char prefix[32];
		snprintf(prefix, sizeof prefix, "event %d: ", i);
		lscrm_check_keys(L, t, event_fields, 2, prefix, "field");
		scrm_event *e = &evs[k];
		*e = (scrm_event)SCRM_EVENT_INIT;
		e->key = ev_str(L, t, i, "key", anchor, &na);
		e->type = ev_str(L, t, i, "type", anchor, &na);
		e->channel = ev_str(L, t, i, "channel", anchor, &na);
		e->currency = ev_str(L, t, i, "currency", anchor, &na);
		e->refund_of = ev_str(L, t, i, "refund_of", anchor, &na);
		e->items_json = ev_json(L, t, i, "items", anchor, &na);
		e->props_json = ev_json(L, t, i, "props", anchor, &na);
		int has;
		e->customer = ev_int(L, t, i, "customer", &has);
		e->amount = ev_int(L, t, i, "amount", &e->has_amount);
		e->at_ms = ev_int(L, t, i, "at", &has);
		if (!has) {
			if (!have_now) {
				ud->in_call = 1;
				now = scrm_db_now(ud->db);
				ud->in_call = 0;
				lscrm_check(L, ud, SCRM_OK); /* raises what the clock hook raised */
				have_now = 1;
			}
			e->at_ms = now;
		}
		lua_getfield(L, t, "ids");
		if (lua_type(L, -1) == LUA_TTABLE) {
			int ids = lua_gettop(L);
			lua_newtable(L); /* the pairs */
			int pairs = ids + 1;
			size_t m = lscrm_collect_ids(L, ids, pairs);
			const char **v = lua_newuserdata(L, (2 * m + 1) * sizeof *v);
			for (size_t j = 0; j < 2 * m; j++) {
				lua_rawgeti(L, pairs, (int)j + 1);
				v[j] = lua_tostring(L, -1);
				lua_pop(L, 1);
			}
			e->id_kinds = v;
			e->id_values = v + m;
			e->n_ids = m;
			anchor_top(L, anchor, &na); /* the pointers */
			anchor_top(L, anchor, &na); /* the strings */
		} else if (!lua_isnil(L, -1)) {
			luaL_argerror(L, 2, lua_pushfstring(L, "event %d: 'ids' must be a table", i));
		}
		lua_settop(L, t - 1);
	}
	int *res = lua_newuserdata(L, (n ? n : 1) * sizeof *res);
	int64_t *cu = lua_newuserdata(L, (n ? n : 1) * sizeof *cu);
	int64_t *ids = lua_newuserdata(L, (n ? n : 1) * sizeof *ids);
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_events_add(ud->db, evs, n,
						    input_order ? SCRM_EVENTS_INPUT_ORDER : 0, res, cu,
						    ids, NULL));
	lscrm_check(L, ud, rc);
	lua_createtable(L, (int)n, 0);
	for (size_t k = 0; k < n; k++) {
		lua_createtable(L, 0, 3);
		lscrm_pushid(L, cu[k]);
		lua_setfield(L, -2, "customer");
		lscrm_pushid(L, ids[k]);
		lua_setfield(L, -2, "event");
		if (res[k]) {
			/* A refusal's reason is the handle's until its next batch. */
			const char *why = res[k] != SCRM_DUPLICATE
						  ? scrm_profile_events_refusal(ud->db, k)
						  : NULL;
			const char *msg = lua_pushfstring(L, "event %d: %s", (int)k + 1,
							  why ? why : scrm_errstr(res[k]));
			lscrm_push_error(L, res[k], msg);
			lua_setfield(L, -3, "error");
			lua_pop(L, 1);
		}
		lua_rawseti(L, -2, (int)k + 1);
	}
	return 1;
}

/*
 * db:import_events(text | {event, ...}) -> summary table. An array holds
 * events as tables or JSON strings, one per line.
 */
static int pf_import_events(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lua_settop(L, 2);
	if (lua_type(L, 2) == LUA_TTABLE) {
		size_t n = lua_rawlen(L, 2);
		lua_createtable(L, (int)n, 0); /* 3: the lines as text */
		for (size_t i = 1; i <= n; i++) {
			lua_rawgeti(L, 2, (int)i);
			if (lua_type(L, -1) == LUA_TTABLE) {
				lscrm_json_encode(L, -1);
				lua_remove(L, -2);
			} else if (lua_type(L, -1) != LUA_TSTRING) {
				luaL_argerror(L, 2, lua_pushfstring(L, "event %d is a %s, not a table or "
								       "JSON text", (int)i, luaL_typename(L, -1)));
			}
			lua_rawseti(L, 3, (int)i);
		}
		luaL_Buffer b;
		luaL_buffinit(L, &b);
		for (size_t i = 1; i <= n; i++) {
			lua_rawgeti(L, 3, (int)i);
			luaL_addvalue(&b);
			if (i < n)
				luaL_addchar(&b, '\n');
		}
		luaL_pushresult(&b);
		lua_replace(L, 2);
		lua_settop(L, 2);
	} else if (lua_type(L, 2) != LUA_TSTRING) {
		luaL_argerror(L, 2, "JSON-lines text or an array of events expected");
	}
	size_t len;
	const char *text = lua_tolstring(L, 2, &len);
	char *out = NULL;
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_events_import(ud->db, text, len, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

static const char *const events_opts[] = {"since", "limit", NULL};

/* db:events(id [, {since=ms, limit=n}]) -> array of events, newest first */
static int pf_events(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	lscrm_opt_table(L, 3, events_opts);
	int64_t since = lscrm_optint(L, 3, "since", 0, INT64_MIN, INT64_MAX);
	int limit = (int)lscrm_optint(L, 3, "limit", 0, -2147483647 - 1, 2147483647);
	char *out = NULL;
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_events_json(ud->db, id, since, limit, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

static const char *const stats_opts[] = {"since", "currency", NULL};

/* db:event_stats(id, type [, {since=ms, currency="CNY"}]) -> count, sum */
static int pf_event_stats(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	const char *type = lscrm_checkcstr(L, 3);
	lscrm_opt_table(L, 4, stats_opts);
	int64_t since = lscrm_optint(L, 4, "since", 0, INT64_MIN, INT64_MAX);
	lua_getfield(L, 4, "currency"); /* 5: kept on the stack while C uses it */
	const char *currency = lscrm_optcstr(L, 5);
	int64_t count = 0, sum = 0;
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_event_stats(ud->db, id, type, since, currency, &count,
						     &sum));
	lscrm_check(L, ud, rc);
	lscrm_pushid(L, count);
	lscrm_pushid(L, sum);
	return 2;
}

/* ------------------------------------------------------------ profile */

static const char *const profile_opts[] = {"unmasked", NULL};

/* db:profile(id [, {unmasked=true}]) -> table | nil, err */
static int pf_profile(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	lscrm_opt_table(L, 3, profile_opts);
	unsigned flags = lscrm_optbool(L, 3, "unmasked", 0) ? SCRM_PROFILE_UNMASKED : 0u;
	char *out = NULL;
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_json(ud->db, id, flags, &out));
	if (rc == SCRM_NOTFOUND && !ud->has_pending) {
		scrm_free(out);
		return not_found(L, ud, rc);
	}
	return lscrm_finish(L, ud, rc, out, 1);
}

/* db:set_attributes(id, table_or_json) -> true; scrm.null unsets */
static int pf_set_attributes(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	lua_settop(L, 3);
	if (lua_type(L, 3) == LUA_TTABLE) {
		lua_pushnil(L);
		if (lua_next(L, 3)) {
			lua_pop(L, 2);
		} else {
			lua_pushliteral(L, "{}"); /* an empty table would encode as [] */
			lua_replace(L, 3);
		}
	}
	const char *json = lscrm_push_json_arg(L, 3, "attributes");
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_set_json(ud->db, id, json));
	lscrm_check(L, ud, rc);
	lua_pushboolean(L, 1);
	return 1;
}

/* db:get_attribute(id, name) -> value | nil, err (unset, or unknown customer) */
static int pf_get_attribute(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	const char *name = lscrm_checkcstr(L, 3);
	char *out = NULL;
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_get(ud->db, id, name, &out));
	if (rc == SCRM_NOTFOUND && !ud->has_pending) {
		scrm_free(out);
		return not_found(L, ud, rc);
	}
	return lscrm_finish(L, ud, rc, out, 1);
}

/* db:unset_attribute(id, name) -> true; raises NOTFOUND if it was not set */
static int pf_unset_attribute(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	const char *name = lscrm_checkcstr(L, 3);
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_unset(ud->db, id, name));
	lscrm_check(L, ud, rc);
	lua_pushboolean(L, 1);
	return 1;
}

/* ------------------------------------------------------------ RFM */

/* db:profile_config() -> table */
static int pf_profile_config(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	char *out = NULL;
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_config_json(ud->db, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

/* db:profile_config_set(table_or_json) -> the new configuration */
static int pf_profile_config_set(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lua_settop(L, 2);
	const char *json = lscrm_push_json_arg(L, 2, "configuration");
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_config_set(ud->db, json));
	lscrm_check(L, ud, rc);
	return pf_profile_config(L);
}

/* db:rfm_refresh([now_ms]) -> summary table */
static int pf_rfm_refresh(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t now = opt_time(L, 2);
	char *out = NULL;
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_rfm_refresh(ud->db, now, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

/* ------------------------------------------------------------ privacy */

static const char *const consent_opts[] = {"at", "source", NULL};

/* db:consent_set(id, purpose, granted [, {at=ms, source="wecom"}]) -> true */
static int pf_consent_set(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	const char *purpose = lscrm_checkcstr(L, 3);
	luaL_checktype(L, 4, LUA_TBOOLEAN);
	int granted = lua_toboolean(L, 4);
	lscrm_opt_table(L, 5, consent_opts);
	int64_t at = lscrm_optint(L, 5, "at", 0, INT64_MIN, INT64_MAX);
	lua_getfield(L, 5, "source"); /* 6: kept on the stack while C uses it */
	const char *source = lscrm_optcstr(L, 6);
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_consent_set(ud->db, id, purpose, granted, at, source));
	lscrm_check(L, ud, rc);
	lua_pushboolean(L, 1);
	return 1;
}

/* db:consent_get(id, purpose) -> boolean */
static int pf_consent_get(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	const char *purpose = lscrm_checkcstr(L, 3);
	int granted = 0;
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_consent_get(ud->db, id, purpose, &granted));
	lscrm_check(L, ud, rc);
	lua_pushboolean(L, granted);
	return 1;
}

/* db:erase(id [, reason]) -> true */
static int pf_erase(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	const char *reason = lscrm_optcstr(L, 3);
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_erase(ud->db, id, reason));
	lscrm_check(L, ud, rc);
	lua_pushboolean(L, 1);
	return 1;
}

/* db:anonymize_inactive(days [, now_ms]) -> number of customers erased */
static int pf_anonymize_inactive(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t days = lscrm_checkid(L, 2);
	int64_t now = opt_time(L, 3);
	int64_t count = 0;
	int rc;
	rc = LSCRM_CALL(ud, scrm_profile_anonymize_inactive(ud->db, days, now, &count));
	lscrm_check(L, ud, rc);
	lscrm_pushid(L, count);
	return 1;
}

#define OWNED_MT "scrm.owned"

/* __gc of the box holding a library string while it is copied into Lua. */
static int owned_gc(lua_State *L)
{
	char **box = (char **)lua_touserdata(L, 1);
	scrm_free(*box);
	*box = NULL;
	return 0;
}

/* scrm.mask(kind, value) -> masked text ("138****8000"); needs no database */
static int pf_mask(lua_State *L)
{
	const char *kind = lscrm_checkcstr(L, 1);
	const char *value = lscrm_checkcstr(L, 2);
	/* The result waits in a collectable box so that a failing copy leaks nothing. */
	char **box = (char **)lua_newuserdata(L, sizeof *box);
	*box = NULL;
	if (luaL_newmetatable(L, OWNED_MT)) {
		lua_pushcfunction(L, owned_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
	int rc = scrm_profile_mask(kind, value, box);
	if (rc != SCRM_OK) {
		lscrm_push_error(L, rc, scrm_errmsg(NULL));
		return lua_error(L);
	}
	lua_pushstring(L, *box);
	scrm_free(*box);
	*box = NULL;
	return 1;
}

const luaL_Reg lscrm_profile_methods[] = {
	{"event_add", pf_event_add},
	{"import_events", pf_import_events},
	{"add_events", pf_add_events},
	{"events", pf_events},
	{"event_stats", pf_event_stats},
	{"profile", pf_profile},
	{"set_attributes", pf_set_attributes},
	{"get_attribute", pf_get_attribute},
	{"unset_attribute", pf_unset_attribute},
	{"profile_config", pf_profile_config},
	{"profile_config_set", pf_profile_config_set},
	{"rfm_refresh", pf_rfm_refresh},
	{"consent_set", pf_consent_set},
	{"consent_get", pf_consent_get},
	{"erase", pf_erase},
	{"anonymize_inactive", pf_anonymize_inactive},
	{NULL, NULL},
};

const luaL_Reg lscrm_profile_funcs[] = {
	{"mask", pf_mask},
	{NULL, NULL},
};
