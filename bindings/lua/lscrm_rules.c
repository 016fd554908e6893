/*
 * Lua binding of libscrm: the rule engine as methods of the database handle
 * — rules, tick, trace, the outbox (take/ack/fail, an iterator, a delivery
 * function), tags and segments.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "scrm/rules.h"

#include "lscrm.h"

/* ------------------------------------------------------------ helpers */

/* Lookups answer nil plus the error table when the thing is not found. */
static int not_found(lua_State *L, lscrm_db *ud, int rc, char *out)
{
	scrm_free(out);
	lua_pushnil(L);
	lscrm_push_error(L, rc, scrm_errmsg(ud->db));
	return 2;
}

/* An optional integer argument that must fit an int (the library checks
 * its own range). */
static int opt_int(lua_State *L, int idx, int dflt)
{
	if (lua_isnoneornil(L, idx))
		return dflt;
	int64_t v = lscrm_checkid(L, idx);
	if (v < INT_MIN || v > INT_MAX)
		luaL_argerror(L, idx, "out of range");
	return (int)v;
}

static int64_t opt_int64(lua_State *L, int idx, int64_t dflt)
{
	return lua_isnoneornil(L, idx) ? dflt : lscrm_checkid(L, idx);
}

static int push_true(lua_State *L)
{
	lua_pushboolean(L, 1);
	return 1;
}

/* Push the handle's slots table. */
static void push_slots(lua_State *L, lscrm_db *ud)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, ud->ref);
}

/* ------------------------------------------------------------ rules */

/* db:rules_load(rule | {rule, ...} | json) -> {rules={{id=, version=, changed=, enabled=}...}} */
static int ru_rules_load(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lua_settop(L, 2);
	const char *json = lscrm_push_json_arg(L, 2, "rules");
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_rules_load(ud->db, json, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

/* db:rules_get(id [, version]) -> definition | nil, err */
static int ru_rules_get(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	const char *id = lscrm_checkcstr(L, 2);
	int64_t version = opt_int64(L, 3, 0);
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_rules_get_json(ud->db, id, version, &out));
	if (rc == SCRM_NOTFOUND && !ud->has_pending)
		return not_found(L, ud, rc, out);
	return lscrm_finish(L, ud, rc, out, 1);
}

/* db:rules_list() -> {{id=, version=, enabled=, priority=, ...}, ...} */
static int ru_rules_list(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_rules_list_json(ud->db, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

/* db:rules_enable(id, enabled) -> true */
static int ru_rules_enable(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	const char *id = lscrm_checkcstr(L, 2);
	luaL_checktype(L, 3, LUA_TBOOLEAN);
	int on = lua_toboolean(L, 3);
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_rules_enable(ud->db, id, on)));
	return push_true(L);
}

/* db:rules_remove(id) -> true */
static int ru_rules_remove(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	const char *id = lscrm_checkcstr(L, 2);
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_rules_remove(ud->db, id)));
	return push_true(L);
}

/* db:rules_config() -> the whole configuration */
static int ru_rules_config(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_rules_config_json(ud->db, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

/* db:rules_config_set(table | json) -> the configuration after the change */
static int ru_rules_config_set(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lua_settop(L, 2);
	const char *json = lscrm_push_json_arg(L, 2, "configuration");
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_rules_config_set(ud->db, json)));
	lua_settop(L, 1);
	return ru_rules_config(L);
}

/* db:tick([now_ms]) -> {now=, scheduled=, absence=, date=, deferred=, dropped=} */
static int ru_tick(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t now = opt_int64(L, 2, 0);
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_rules_tick(ud->db, now, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

static const char *const trace_opts[] = {"customer", "rule", "since", "limit", "steps", NULL};

/* db:trace{customer=, rule=, since=, limit=, steps=} -> records, newest first */
static int ru_trace(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lscrm_opt_table(L, 2, trace_opts);
	int64_t customer = lscrm_optint(L, 2, "customer", 0, INT64_MIN, INT64_MAX);
	int64_t since = lscrm_optint(L, 2, "since", 0, INT64_MIN, INT64_MAX);
	int limit = (int)lscrm_optint(L, 2, "limit", 0, INT_MIN, INT_MAX);
	unsigned flags = lscrm_optbool(L, 2, "steps", 0) ? SCRM_RULES_TRACE_STEPS : 0u;
	lua_getfield(L, 2, "rule"); /* 3: kept on the stack while C uses it */
	const char *rule = lscrm_optcstr(L, 3);
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_rules_trace_json(ud->db, rule, customer, since, limit, flags,
						      &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

/* db:trace_prune(before_ms) -> number of records deleted */
static int ru_trace_prune(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t before = lscrm_checkid(L, 2);
	int64_t deleted = 0;
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_rules_trace_prune(ud->db, before, &deleted)));
	lscrm_pushid(L, deleted);
	return 1;
}

/* ------------------------------------------------------------ outbox */

/*
 * The ids db:outbox() iterators have handed out and not seen settled live in
 * the HANDED slot as {[id] = true}. db:outbox_ack/fail/retry remove the id,
 * so that the iterator does not acknowledge an action the loop body failed.
 */
static void handed_put(lua_State *L, lscrm_db *ud, int64_t id)
{
	push_slots(L, ud);
	lua_rawgeti(L, -1, LSCRM_SLOT_HANDED);
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_rawseti(L, -3, LSCRM_SLOT_HANDED);
	}
	lscrm_pushid(L, id);
	lua_pushboolean(L, 1);
	lua_rawset(L, -3);
	lua_pop(L, 2);
}

/* Forget `id`; 1 if an iterator had handed it out unsettled. */
static int handed_settle(lua_State *L, lscrm_db *ud, int64_t id)
{
	int was = 0;
	push_slots(L, ud);
	lua_rawgeti(L, -1, LSCRM_SLOT_HANDED);
	if (lua_istable(L, -1)) {
		lscrm_pushid(L, id);
		lua_rawget(L, -2);
		was = lua_toboolean(L, -1);
		lua_pop(L, 1);
		if (was) {
			lscrm_pushid(L, id);
			lua_pushnil(L);
			lua_rawset(L, -3);
		}
	}
	lua_pop(L, 2);
	return was;
}

/* db:outbox_take([max [, lease_ms]]) -> {action, ...} (max default 100) */
static int ob_take(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int max = opt_int(L, 2, 100);
	int64_t lease = opt_int64(L, 3, 0);
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_outbox_take(ud->db, max, lease, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

/* db:outbox_ack(id) -> true */
static int ob_ack(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	handed_settle(L, ud, id);
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_outbox_ack(ud->db, id)));
	return push_true(L);
}

/* db:outbox_fail(id [, error [, permanent]]) -> true */
static int ob_fail(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	const char *error = lscrm_optcstr(L, 3);
	int permanent = 0;
	if (!lua_isnoneornil(L, 4)) {
		luaL_checktype(L, 4, LUA_TBOOLEAN);
		permanent = lua_toboolean(L, 4);
	}
	handed_settle(L, ud, id);
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_outbox_fail(ud->db, id, error, permanent)));
	return push_true(L);
}

/* db:outbox_retry(id) -> true */
static int ob_retry(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	handed_settle(L, ud, id);
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_outbox_retry(ud->db, id)));
	return push_true(L);
}

static const char *const list_opts[] = {"state", "customer", "limit", NULL};

/* db:outbox_list{state=, customer=, limit=} -> actions, newest first */
static int ob_list(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lscrm_opt_table(L, 2, list_opts);
	int64_t customer = lscrm_optint(L, 2, "customer", 0, INT64_MIN, INT64_MAX);
	int limit = (int)lscrm_optint(L, 2, "limit", 0, INT_MIN, INT_MAX);
	lua_getfield(L, 2, "state"); /* 3: kept on the stack while C uses it */
	const char *state = lscrm_optcstr(L, 3);
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_outbox_list_json(ud->db, state, customer, limit, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

/*
 * The iterator of db:outbox(). Upvalues: 1 the handle, 2 actions still to
 * take (-1: no limit), 3 the lease, 4 the id handed out last (or false).
 * Each call first acknowledges the action handed out last, unless the loop
 * body settled it itself, then takes (leases) one more. An action is only
 * acknowledged once the body has returned for it: on `break` or an error
 * it stays leased and is offered again when the lease ends.
 */
static int ob_iter(lua_State *L)
{
	lua_settop(L, 0);
	lua_pushvalue(L, lua_upvalueindex(1));
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t prev = 0;
	if (lscrm_toint64(L, lua_upvalueindex(4), &prev)) {
		lua_pushboolean(L, 0);
		lua_replace(L, lua_upvalueindex(4));
		if (handed_settle(L, ud, prev))
			lscrm_check(L, ud, LSCRM_CALL(ud, scrm_outbox_ack(ud->db, prev)));
	}
	int64_t left = 0, lease = 0;
	lscrm_toint64(L, lua_upvalueindex(2), &left);
	lscrm_toint64(L, lua_upvalueindex(3), &lease);
	if (left == 0)
		return 0;
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_outbox_take(ud->db, 1, lease, &out));
	lscrm_finish(L, ud, rc, out, 1); /* 2: the array */
	lua_rawgeti(L, 2, 1);            /* 3: the action */
	if (lua_isnil(L, 3)) {
		lua_pushinteger(L, 0);
		lua_replace(L, lua_upvalueindex(2));
		return 0;
	}
	lua_getfield(L, 3, "id");
	int64_t id = 0;
	if (!lscrm_toint64(L, -1, &id))
		return lscrm_raise(L, SCRM_ERROR, "outbox action without an id");
	lua_replace(L, lua_upvalueindex(4));
	handed_put(L, ud, id);
	if (left > 0) {
		lua_pushinteger(L, (lua_Integer)(left - 1));
		lua_replace(L, lua_upvalueindex(2));
	}
	lua_settop(L, 3);
	return 1;
}

/* for action in db:outbox([max [, lease_ms]]) do ... end */
static int ob_outbox(lua_State *L)
{
	lscrm_enter(L, 1);
	int max = opt_int(L, 2, 0);
	if (max < 0)
		luaL_argerror(L, 2, "must not be negative (0 or nil: until none is ready)");
	int64_t lease = opt_int64(L, 3, 0);
	lua_settop(L, 1);
	lua_pushinteger(L, max > 0 ? max : -1);
	lscrm_pushid(L, lease);
	lua_pushboolean(L, 0);
	lua_pushcclosure(L, ob_iter, 4);
	return 1;
}

/* ------------------------------------------------------------ delivery function */

typedef struct handler_call {
	lscrm_db *ud;
	const char *json;
	int rc;
} handler_call;

/* Keep `why` (a string at -1) and the error value at `err` (0: none) as
 * the handler's last failure: {id=, message=, error=}. */
static void record_failure(lua_State *L, lscrm_db *ud, int action, int err)
{
	int why = lua_gettop(L);
	lua_createtable(L, 0, 3);
	lua_getfield(L, action, "id");
	lua_setfield(L, -2, "id");
	lua_pushvalue(L, why);
	lua_setfield(L, -2, "message");
	if (err) {
		lua_pushvalue(L, err);
		lua_setfield(L, -2, "error");
	}
	push_slots(L, ud);
	lua_pushvalue(L, -2);
	lua_rawseti(L, -2, LSCRM_SLOT_HANDLER_ERROR);
	lua_pop(L, 3);
}

/* Runs protected: decode the action, call the Lua function protected, and
 * turn what it did into the callback's result. */
static int handler_body(lua_State *L)
{
	handler_call *c = (handler_call *)lua_touserdata(L, 1);
	lua_settop(L, 0);
	push_slots(L, c->ud);                           /* 1 */
	lua_rawgeti(L, 1, LSCRM_SLOT_HANDLER);          /* 2 */
	if (!lua_isfunction(L, 2))
		return 0;
	lscrm_json_push(L, c->json, strlen(c->json)); /* 3: the action */
	lua_pushvalue(L, 2);
	lua_pushvalue(L, 3);
	if (lua_pcall(L, 1, 2, 0) != 0) { /* 4: the error */
		if (lua_type(L, 4) == LUA_TSTRING || lua_type(L, 4) == LUA_TNUMBER)
			lua_pushvalue(L, 4);
		else if (!luaL_callmeta(L, 4, "__tostring") || !lua_isstring(L, -1))
			lua_pushfstring(L, "the outbox handler raised a %s value", luaL_typename(L, 4));
		record_failure(L, c->ud, 3, 4);
		c->rc = SCRM_ERROR;
		return 0;
	}
	/* 4, 5: the results; false (with an optional message) fails the action. */
	if (lua_type(L, 4) == LUA_TBOOLEAN && !lua_toboolean(L, 4)) {
		if (lua_isstring(L, 5))
			lua_pushvalue(L, 5);
		else
			lua_pushliteral(L, "the outbox handler returned false");
		record_failure(L, c->ud, 3, 0);
		c->rc = SCRM_ERROR;
		return 0;
	}
	c->rc = SCRM_OK;
	return 0;
}

/* The library's delivery callback. Any Lua error stays in here: it fails
 * the action rather than unwinding through the library. */
static int outbox_cb(void *p, const char *json)
{
	lscrm_db *ud = (lscrm_db *)p;
	lua_State *L = ud->L;
	if (!L || ud->ref == LUA_NOREF)
		return SCRM_MISUSE;
	handler_call c = {ud, json, SCRM_ERROR};
	int top = lua_gettop(L);
#if LUA_VERSION_NUM < 502
	/* As the hooks: the running C function's LUA_MINSTACK slots suffice. */
	if (lua_cpcall(L, handler_body, &c) != 0)
		c.rc = SCRM_ERROR; /* out of memory decoding the action */
#else
	if (!lua_checkstack(L, 4))
		return SCRM_NOMEM;
	lua_pushcfunction(L, handler_body);
	lua_pushlightuserdata(L, &c);
	if (lua_pcall(L, 1, 0, 0) != 0)
		c.rc = SCRM_ERROR;
#endif
	lua_settop(L, top);
	return c.rc;
}

/* db:outbox_set_handler(fn | nil): fn(action) runs inside the library right
 * after each commit that wrote actions; returning (anything but false)
 * acknowledges, raising or returning false fails the action. */
static int ob_set_handler(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int on = !lua_isnoneornil(L, 2);
	if (on)
		luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_settop(L, 2);
	push_slots(L, ud);
	if (on)
		lua_pushvalue(L, 2);
	else
		lua_pushboolean(L, 0);
	lua_rawseti(L, -2, LSCRM_SLOT_HANDLER);
	lua_pushboolean(L, 0);
	lua_rawseti(L, -2, LSCRM_SLOT_HANDLER_ERROR);
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_outbox_set_handler(ud->db, on ? outbox_cb : NULL,
								   on ? ud : NULL)));
	return 0;
}

/* db:outbox_deliver([max]) -> number acknowledged */
static int ob_deliver(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int max = opt_int(L, 2, 0);
	int n = 0;
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_outbox_deliver(ud->db, max, &n)));
	lua_pushinteger(L, n);
	return 1;
}

/* db:outbox_handler_error() -> {id=, message=, error=} of the last failure, or nil */
static int ob_handler_error(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	push_slots(L, ud);
	lua_rawgeti(L, -1, LSCRM_SLOT_HANDLER_ERROR);
	if (!lua_istable(L, -1))
		lua_pushnil(L);
	return 1;
}

/* ------------------------------------------------------------ tags */

/* db:tags_group_set(table | json) -> true */
static int tg_group_set(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lua_settop(L, 2);
	const char *json = lscrm_push_json_arg(L, 2, "tag group");
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_tags_group_set(ud->db, json)));
	return push_true(L);
}

/* db:tags_define(table | json) -> true */
static int tg_define(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lua_settop(L, 2);
	const char *json = lscrm_push_json_arg(L, 2, "tag");
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_tags_define(ud->db, json)));
	return push_true(L);
}

/* db:tags_list() -> {groups={...}, tags={...}} */
static int tg_list(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_tags_list_json(ud->db, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

/* db:tag_add(id, tag, actor) / db:tag_remove(id, tag, actor) -> true */
static int tg_change(lua_State *L, int add)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	const char *tag = lscrm_checkcstr(L, 3);
	const char *actor = lscrm_checkcstr(L, 4);
	int rc = add ? LSCRM_CALL(ud, scrm_tag_add(ud->db, id, tag, actor))
		     : LSCRM_CALL(ud, scrm_tag_remove(ud->db, id, tag, actor));
	lscrm_check(L, ud, rc);
	return push_true(L);
}

static int tg_add(lua_State *L)
{
	return tg_change(L, 1);
}

static int tg_remove(lua_State *L)
{
	return tg_change(L, 0);
}

/* db:tag_has(id, tag) -> boolean */
static int tg_has(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	const char *tag = lscrm_checkcstr(L, 3);
	int has = 0;
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_tag_has(ud->db, id, tag, &has)));
	lua_pushboolean(L, has);
	return 1;
}

/* db:tags_customer(id) -> {{tag=, group=, at=, source=}, ...} */
static int tg_customer(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_tags_customer_json(ud->db, id, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

/* db:tags_history(id [, limit]) -> changes, newest first */
static int tg_history(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t id = lscrm_checkid(L, 2);
	int limit = opt_int(L, 3, 0);
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_tags_history_json(ud->db, id, limit, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

/* db:tags_refresh([tag]) -> {tags={NAME={holders=, added=, removed=, version=}}, ...} */
static int tg_refresh(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	const char *tag = lscrm_optcstr(L, 2);
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_tags_refresh(ud->db, tag, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

/* ------------------------------------------------------------ segments */

/* db:segment_count(expr) -> number of customers */
static int sg_count(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	const char *expr = lscrm_checkcstr(L, 2);
	int64_t n = 0;
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_segment_count(ud->db, expr, &n)));
	lscrm_pushid(L, n);
	return 1;
}

/* db:segment_explain(expr) -> {plan="sql", sql=} | {plan="scan", why=} */
static int sg_explain(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	const char *expr = lscrm_checkcstr(L, 2);
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_segment_explain_json(ud->db, expr, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

/* Upvalues of the segment_ids() iterator. */
enum { SG_DB = 1, SG_EXPR, SG_PAGE, SG_NEXT, SG_AFTER, SG_SIZE, SG_DONE };

/* Read the page after SG_AFTER into SG_PAGE; 0 when it is empty. */

static int sg_fetch(lua_State *L, lscrm_db *ud)
{
	int64_t after = 0, size = 0;
	lscrm_toint64(L, lua_upvalueindex(SG_AFTER), &after);
	lscrm_toint64(L, lua_upvalueindex(SG_SIZE), &size);
	const char *expr = lua_tostring(L, lua_upvalueindex(SG_EXPR));
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_segment_ids_json(ud->db, expr, after, (int)size, &out));
	lscrm_finish(L, ud, rc, out, 1);
	size_t n = lua_rawlen(L, -1);
	if ((int64_t)n < size) {
		lua_pushboolean(L, 1);
		lua_replace(L, lua_upvalueindex(SG_DONE));
	}
	lua_replace(L, lua_upvalueindex(SG_PAGE));
	lua_pushinteger(L, 1);
	lua_replace(L, lua_upvalueindex(SG_NEXT));
	return n > 0;
}

/* The iterator of db:segment_ids(): the next id, paging on when needed. */
static int sg_iter(lua_State *L)
{
	lua_settop(L, 0);
	lua_pushvalue(L, lua_upvalueindex(SG_DB));
	lscrm_db *ud = lscrm_enter(L, 1);
	lua_Integer next = lua_tointeger(L, lua_upvalueindex(SG_NEXT));
	if ((size_t)next > lua_rawlen(L, lua_upvalueindex(SG_PAGE))) {
		if (lua_toboolean(L, lua_upvalueindex(SG_DONE)) || !sg_fetch(L, ud))
			return 0;
		next = 1;
	}
	lua_rawgeti(L, lua_upvalueindex(SG_PAGE), (int)next);
	lua_pushinteger(L, next + 1);
	lua_replace(L, lua_upvalueindex(SG_NEXT));
	lua_pushvalue(L, -1);
	lua_replace(L, lua_upvalueindex(SG_AFTER));
	return 1;
}

/* for id in db:segment_ids(expr [, page_size]) do ... end (ascending ids;
 * pages of page_size, default 1000, read as the loop goes). The first page
 * is read here, so that a bad expression raises at the call. */
static int sg_ids(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	const char *expr = lscrm_checkcstr(L, 2);
	int size = opt_int(L, 3, 1000);
	lua_settop(L, 3);
	char *out = NULL;
	int rc = LSCRM_CALL(ud, scrm_segment_ids_json(ud->db, expr, 0, size, &out));
	lscrm_finish(L, ud, rc, out, 1); /* 4: the first page */
	size_t n = lua_rawlen(L, 4);
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_pushvalue(L, 4);
	lua_pushinteger(L, 1); /* next index in the page */
	lua_pushinteger(L, 0); /* after */
	lua_pushinteger(L, size);
	lua_pushboolean(L, (int64_t)n < size); /* done: no page after this one */
	lua_pushcclosure(L, sg_iter, 7);
	return 1;
}

const luaL_Reg lscrm_rules_methods[] = {
	{"rules_load", ru_rules_load},
	{"rules_get", ru_rules_get},
	{"rules_list", ru_rules_list},
	{"rules_enable", ru_rules_enable},
	{"rules_remove", ru_rules_remove},
	{"rules_config", ru_rules_config},
	{"rules_config_set", ru_rules_config_set},
	{"tick", ru_tick},
	{"trace", ru_trace},
	{"trace_prune", ru_trace_prune},
	{"outbox_take", ob_take},
	{"outbox_ack", ob_ack},
	{"outbox_fail", ob_fail},
	{"outbox_retry", ob_retry},
	{"outbox_list", ob_list},
	{"outbox", ob_outbox},
	{"outbox_set_handler", ob_set_handler},
	{"outbox_deliver", ob_deliver},
	{"outbox_handler_error", ob_handler_error},
	{"tags_group_set", tg_group_set},
	{"tags_define", tg_define},
	{"tags_list", tg_list},
	{"tag_add", tg_add},
	{"tag_remove", tg_remove},
	{"tag_has", tg_has},
	{"tags_customer", tg_customer},
	{"tags_history", tg_history},
	{"tags_refresh", tg_refresh},
	{"segment_count", sg_count},
	{"segment_explain", sg_explain},
	{"segment_ids", sg_ids},
	{NULL, NULL},
};
