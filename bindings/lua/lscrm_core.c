/*
 * Lua binding of libscrm: the module table, error values, the database
 * handle (open/close, batches, hooks, info) and the plumbing every method
 * uses to call into the library safely.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "scrm/rules.h"

#include "lscrm.h"

#if defined(__GNUC__) && __GNUC__ >= 4
#  define LSCRM_EXPORT __attribute__((visibility("default")))
#else
#  define LSCRM_EXPORT
#endif

/* ------------------------------------------------------------ compat */

#if LUA_VERSION_NUM < 502
void lscrm_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
	luaL_checkstack(L, nup + 1, "too many upvalues");
	for (; l->name; l++) {
		for (int i = 0; i < nup; i++)
			lua_pushvalue(L, -nup);
		lua_pushcclosure(L, l->func, nup);
		lua_setfield(L, -(nup + 2), l->name);
	}
	lua_pop(L, nup);
}

void *lscrm_testudata(lua_State *L, int idx, const char *tname)
{
	void *p = lua_touserdata(L, idx);
	if (!p || !lua_getmetatable(L, idx))
		return NULL;
	luaL_getmetatable(L, tname);
	int same = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	return same ? p : NULL;
}

void lscrm_setmetatable(lua_State *L, const char *tname)
{
	luaL_getmetatable(L, tname);
	lua_setmetatable(L, -2);
}
#endif

/* ------------------------------------------------------------ errors */

void lscrm_push_error(lua_State *L, int code, const char *msg)
{
	lua_createtable(L, 0, 3);
	lua_pushinteger(L, code);
	lua_setfield(L, -2, "code");
	lua_pushstring(L, scrm_errstr(code));
	lua_setfield(L, -2, "name");
	lua_pushstring(L, msg ? msg : scrm_errstr(code));
	lua_setfield(L, -2, "message");
	luaL_setmetatable(L, LSCRM_ERROR_MT);
}

int lscrm_raise(lua_State *L, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	lscrm_push_error(L, code, msg);
	return lua_error(L);
}

/* "scrm: <message> (<name>)" */
static int error_tostring(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "message");
	lua_getfield(L, 1, "name");
	const char *msg = lua_tostring(L, -2);
	const char *name = lua_tostring(L, -1);
	lua_pushfstring(L, "scrm: %s (%s)", msg ? msg : "?", name ? name : "error");
	return 1;
}

/* ------------------------------------------------------------ values */

int lscrm_toint64(lua_State *L, int idx, int64_t *out)
{
#if LUA_VERSION_NUM >= 503
	if (lua_isinteger(L, idx)) {
		*out = (int64_t)lua_tointeger(L, idx);
		return 1;
	}
#endif
	if (lua_type(L, idx) != LUA_TNUMBER)
		return 0;
	lua_Number n = lua_tonumber(L, idx);
	/* 2^63 is exact as a double; the range test also rejects NaN. */
	if (!(n >= -9223372036854775808.0 && n < 9223372036854775808.0))
		return 0;
	int64_t v = (int64_t)n;
	if ((lua_Number)v != n)
		return 0;
	*out = v;
	return 1;
}

int64_t lscrm_checkid(lua_State *L, int idx)
{
	int64_t v = 0;
	if (!lscrm_toint64(L, idx, &v)) {
		const char *msg = lua_pushfstring(L, "integer expected, got %s",
						  lua_type(L, idx) == LUA_TNUMBER ? "a non-integral number"
										  : luaL_typename(L, idx));
		luaL_argerror(L, idx, msg);
	}
	return v;
}

void lscrm_pushid(lua_State *L, int64_t v)
{
#if LSCRM_HAVE_INT64 && defined(LUA_MAXINTEGER) && LUA_MAXINTEGER >= INT64_MAX
	lua_pushinteger(L, (lua_Integer)v);
#else
	lua_pushnumber(L, (lua_Number)v); /* exact up to 2^53 */
#endif
}

const char *lscrm_checkcstr(lua_State *L, int idx)
{
	size_t len;
	const char *s = luaL_checklstring(L, idx, &len);
	if (memchr(s, '\0', len))
		luaL_argerror(L, idx, "string contains a zero byte");
	return s;
}

const char *lscrm_optcstr(lua_State *L, int idx)
{
	return lua_isnoneornil(L, idx) ? NULL : lscrm_checkcstr(L, idx);
}

/* ------------------------------------------------------------ hooks */

/*
 * The library calls the hooks from inside its own frames, so a Lua error
 * must never unwind through them: each hook runs under lua_pcall/lua_cpcall,
 * and an error is parked in the handle's slots table, to be raised by the
 * binding once the library call has returned. Meanwhile a failing clock
 * reads as the real time. Storing into an existing array slot never
 * allocates, so parking cannot fail either.
 */
typedef struct hook_call {
	lscrm_db *ud;
	int slot;
	int level;
	const char *msg;
	int64_t value;
} hook_call;

static int hook_body(lua_State *L)
{
	hook_call *c = (hook_call *)lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->ud->ref);
	lua_rawgeti(L, -1, c->slot);
	if (c->slot == LSCRM_SLOT_CLOCK) {
		lua_call(L, 0, 1);
		lua_Number n;
		if (lscrm_toint64(L, -1, &c->value))
			return 0;
		n = lua_tonumber(L, -1);
		if (lua_type(L, -1) == LUA_TNUMBER && n >= -9223372036854775808.0 &&
		    n < 9223372036854775808.0) {
			c->value = (int64_t)n; /* fractional milliseconds are dropped */
			return 0;
		}
		return luaL_error(L, "scrm: the clock returned %s, not milliseconds since the epoch",
				  luaL_typename(L, -1));
	}
	lua_pushinteger(L, c->level);
	lua_pushstring(L, c->msg ? c->msg : "");
	lua_call(L, 2, 0);
	return 0;
}

static int run_hook(hook_call *c)
{
	lscrm_db *ud = c->ud;
	lua_State *L = ud->L;
	if (!L || ud->ref == LUA_NOREF)
		return 0;
	int top = lua_gettop(L);
	int st;
#if LUA_VERSION_NUM < 502
	/* The running C function has LUA_MINSTACK slots; the binding keeps its
	 * own use well below that, so the pushes here need no growth. */
	st = lua_cpcall(L, hook_body, c);
#else
	if (!lua_checkstack(L, 4))
		return 0;
	lua_pushcfunction(L, hook_body);
	lua_pushlightuserdata(L, c);
	st = lua_pcall(L, 1, 0, 0);
#endif
	if (st != 0) {
		/* error value at -1 */
		lua_rawgeti(L, LUA_REGISTRYINDEX, ud->ref);
		lua_rawgeti(L, -1, LSCRM_SLOT_PENDING);
		int first = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
		lua_pop(L, 1);
		if (first) {
			lua_pushvalue(L, -2);
			lua_rawseti(L, -2, LSCRM_SLOT_PENDING);
			ud->has_pending = 1;
		}
	}
	lua_settop(L, top);
	return st == 0;
}

static int64_t clock_hook(void *p)
{
	hook_call c = {(lscrm_db *)p, LSCRM_SLOT_CLOCK, 0, NULL, 0};
	return run_hook(&c) ? c.value : scrm_db_now(NULL);
}

static void log_hook(void *p, int level, const char *msg)
{
	hook_call c = {(lscrm_db *)p, LSCRM_SLOT_LOG, level, msg, 0};
	run_hook(&c);
}

/* Push the parked hook error and clear its slot. */
static void take_pending(lua_State *L, lscrm_db *ud)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, ud->ref);
	lua_rawgeti(L, -1, LSCRM_SLOT_PENDING);
	lua_pushboolean(L, 0);
	lua_rawseti(L, -3, LSCRM_SLOT_PENDING);
	lua_remove(L, -2);
	ud->has_pending = 0;
}

/* ------------------------------------------------------------ call plumbing */

static lscrm_db *checkdb(lua_State *L, int idx)
{
	return (lscrm_db *)luaL_checkudata(L, idx, LSCRM_DB_MT);
}

lscrm_db *lscrm_enter(lua_State *L, int idx)
{
	lscrm_db *ud = checkdb(L, idx);
	if (ud->in_call)
		lscrm_raise(L, SCRM_MISUSE, "a callback called back into the database");
	if (!ud->db)
		lscrm_raise(L, SCRM_MISUSE, "database handle is closed");
	if (ud->owned) { /* left over by a copy that raised (out of memory) */
		scrm_free(ud->owned);
		ud->owned = NULL;
	}
	ud->L = L;
	return ud;
}

int lscrm_finish(lua_State *L, lscrm_db *ud, int rc, char *out, int json)
{
	ud->owned = out;
	if (ud->has_pending || rc != SCRM_OK) {
		ud->owned = NULL;
		scrm_free(out);
		if (ud->has_pending) {
			take_pending(L, ud);
			lua_error(L);
		}
		lscrm_push_error(L, rc, scrm_errmsg(ud->db));
		lua_error(L);
	}
	if (!out)
		return 0;
	if (json)
		lscrm_json_push(L, out, strlen(out));
	else
		lua_pushstring(L, out);
	ud->owned = NULL;
	scrm_free(out);
	return 1;
}

void lscrm_check(lua_State *L, lscrm_db *ud, int rc)
{
	lscrm_finish(L, ud, rc, NULL, 0);
}

/* (lscrm.h) */
void lscrm_check_keys(lua_State *L, int idx, const char *const *known, int arg, const char *prefix,
		      const char *noun)
{
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
		int ok = 0;
		for (int i = 0; k && known[i]; i++)
			ok |= strcmp(k, known[i]) == 0;
		if (!ok) {
			lua_pushfstring(L, "%sunknown %s '%s'", prefix, noun, k ? k : luaL_typename(L, -1));
			luaL_argerror(L, arg, lua_tostring(L, -1));
		}
	}
}

/* Reject keys of an options table that are not in `known` (catches typos). */
void lscrm_checkopts(lua_State *L, int idx, const char *const *known)
{
	lscrm_check_keys(L, idx, known, idx, "", "option");
}

/* opts.name as a boolean (nil -> dflt). */
int lscrm_optbool(lua_State *L, int idx, const char *name, int dflt)
{
	lua_getfield(L, idx, name);
	int t = lua_type(L, -1);
	int v = t == LUA_TNIL ? dflt : lua_toboolean(L, -1);
	if (t != LUA_TNIL && t != LUA_TBOOLEAN) {
		lua_pushfstring(L, "option '%s' must be a boolean", name);
		luaL_argerror(L, idx, lua_tostring(L, -1));
	}
	lua_pop(L, 1);
	return v;
}

/* opts.name as an integer in [lo, hi] (nil -> dflt). */
int64_t lscrm_optint(lua_State *L, int idx, const char *name, int64_t dflt, int64_t lo, int64_t hi)
{
	int64_t v = dflt;
	lua_getfield(L, idx, name);
	if (!lua_isnil(L, -1) && (!lscrm_toint64(L, -1, &v) || v < lo || v > hi)) {
		lua_pushfstring(L, "option '%s' must be an integer in range", name);
		luaL_argerror(L, idx, lua_tostring(L, -1));
	}
	lua_pop(L, 1);
	return v;
}

/* opts.name as a function or nil; leaves it (or false) on the stack. */
static int optfunc(lua_State *L, int idx, const char *name)
{
	lua_getfield(L, idx, name);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushboolean(L, 0);
		return 0;
	}
	if (!lua_isfunction(L, -1)) {
		lua_pushfstring(L, "option '%s' must be a function", name);
		luaL_argerror(L, idx, lua_tostring(L, -1));
	}
	return 1;
}

/* ------------------------------------------------------------ open/close */

static const char *const open_opts[] = {"readonly", "create", "busy_timeout_ms", "clock",
					"log", "log_level", NULL};

static int l_open(lua_State *L)
{
	const char *path = lscrm_checkcstr(L, 1);
	int has_opts = !lua_isnoneornil(L, 2);
	if (has_opts) {
		luaL_checktype(L, 2, LUA_TTABLE);
		lscrm_checkopts(L, 2, open_opts);
	} else {
		lua_settop(L, 1);
		lua_newtable(L);
	}
	int readonly = lscrm_optbool(L, 2, "readonly", 0);
	int create = lscrm_optbool(L, 2, "create", 1);
	int busy = (int)lscrm_optint(L, 2, "busy_timeout_ms", 5000, INT_MIN, INT_MAX);
	int level = (int)lscrm_optint(L, 2, "log_level", SCRM_LOG_INFO, INT_MIN, INT_MAX);
	lua_settop(L, 2);

	lscrm_db *ud = (lscrm_db *)lua_newuserdata(L, sizeof *ud); /* 3 */
	memset(ud, 0, sizeof *ud);
	ud->ref = LUA_NOREF;
	luaL_setmetatable(L, LSCRM_DB_MT);

	lua_createtable(L, LSCRM_SLOT_COUNT, 0);
	int has_clock = optfunc(L, 2, "clock");
	lua_rawseti(L, -2, LSCRM_SLOT_CLOCK);
	int has_log = optfunc(L, 2, "log");
	lua_rawseti(L, -2, LSCRM_SLOT_LOG);
	for (int slot = LSCRM_SLOT_PENDING; slot <= LSCRM_SLOT_COUNT; slot++) {
		lua_pushboolean(L, 0);
		lua_rawseti(L, -2, slot);
	}
	ud->ref = luaL_ref(L, LUA_REGISTRYINDEX);

	/* From here to options_free only C calls: nothing may raise. */
	unsigned flags = readonly ? SCRM_OPEN_READONLY : create ? SCRM_OPEN_CREATE : 0;
	scrm_db_options *o = NULL;
	int rc = scrm_db_options_new(&o);
	if (rc == SCRM_OK)
		rc = scrm_db_options_set_flags(o, flags);
	if (rc == SCRM_OK)
		rc = scrm_db_options_set_busy_timeout(o, busy);
	if (rc == SCRM_OK && has_clock)
		rc = scrm_db_options_set_clock(o, clock_hook, ud);
	if (rc == SCRM_OK && has_log)
		rc = scrm_db_options_set_log(o, log_hook, ud, level);
	if (rc == SCRM_OK) {
		ud->L = L;
		rc = LSCRM_CALL(ud, scrm_db_open(path, o, &ud->db));
	}
	scrm_db_options_free(o);

	if (ud->has_pending) {
		take_pending(L, ud);
		if (ud->db) {
			scrm_db_close(ud->db);
			ud->db = NULL;
		}
		lua_error(L);
	}
	if (rc != SCRM_OK) {
		lscrm_push_error(L, rc, scrm_errmsg(NULL));
		lua_error(L);
	}
	lua_settop(L, 3);
	return 1;
}

/* Release everything a handle holds; safe to repeat. */
static int release(lua_State *L, lscrm_db *ud)
{
	int rc = SCRM_OK;
	if (ud->db) {
		/* No Lua may run while closing (this may be __gc or lua_close). */
		scrm_db_set_clock(ud->db, NULL, NULL);
		scrm_db_set_log(ud->db, NULL, NULL, 0);
		scrm_outbox_set_handler(ud->db, NULL, NULL);
		rc = scrm_db_close(ud->db);
		ud->db = NULL;
	}
	scrm_free(ud->owned);
	ud->owned = NULL;
	if (ud->ref != LUA_NOREF) {
		luaL_unref(L, LUA_REGISTRYINDEX, ud->ref);
		ud->ref = LUA_NOREF;
	}
	ud->has_pending = 0;
	ud->L = NULL;
	return rc;
}

static int db_close(lua_State *L)
{
	lscrm_db *ud = checkdb(L, 1);
	if (ud->in_call)
		return lscrm_raise(L, SCRM_MISUSE, "a callback called back into the database");
	if (release(L, ud) != SCRM_OK)
		return lscrm_raise(L, SCRM_BUSY, "the database was not closed cleanly "
						 "(the handle is released regardless)");
	return 0;
}

static int db_gc(lua_State *L)
{
	lscrm_db *ud = checkdb(L, 1);
	if (!ud->in_call)
		release(L, ud);
	return 0;
}

static int db_tostring(lua_State *L)
{
	lscrm_db *ud = checkdb(L, 1);
	if (ud->db)
		lua_pushfstring(L, "scrm.db (%s)", scrm_db_path(ud->db));
	else
		lua_pushliteral(L, "scrm.db (closed)");
	return 1;
}

static int db_is_closed(lua_State *L)
{
	lua_pushboolean(L, checkdb(L, 1)->db == NULL);
	return 1;
}

/* ------------------------------------------------------------ methods */

static int db_path(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lua_pushstring(L, scrm_db_path(ud->db));
	return 1;
}

static int db_now(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	ud->in_call = 1;
	int64_t now = scrm_db_now(ud->db);
	ud->in_call = 0;
	lscrm_check(L, ud, SCRM_OK); /* raises what the clock hook raised */
	lscrm_pushid(L, now);
	return 1;
}

static int db_info(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	char *out = NULL;
	int rc;
	rc = LSCRM_CALL(ud, scrm_db_info_json(ud->db, &out));
	return lscrm_finish(L, ud, rc, out, 1);
}

static int db_begin(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_db_begin(ud->db)));
	return 0;
}

static int db_commit(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_db_commit(ud->db)));
	return 0;
}

static int db_rollback(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_db_rollback(ud->db)));
	return 0;
}

static int db_batch_depth(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	lua_pushinteger(L, scrm_db_batch_depth(ud->db));
	return 1;
}

/* Roll back open batches down to `depth` (best effort, on an error path). */
static void unwind(lscrm_db *ud, int depth)
{
	while (ud->db && scrm_db_batch_depth(ud->db) > depth)
		if (LSCRM_CALL(ud, scrm_db_rollback(ud->db)) != SCRM_OK)
			break;
}

/*
 * db:batch(fn, ...): run fn(...) inside a batch; commit when it returns
 * (passing its results through), roll back and re-raise when it raises.
 */
static int db_batch(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	int depth = scrm_db_batch_depth(ud->db);
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_db_begin(ud->db)));
	/* Call fn with the arguments where they are: db, fn, [fn, args...]. */
	int nargs = lua_gettop(L) - 2;
	lua_pushvalue(L, 2);
	lua_insert(L, 3);
	int st = lua_pcall(L, nargs, LUA_MULTRET, 0);
	ud->L = L; /* fn may have used the handle from a coroutine */
	if (st != 0) {
		unwind(ud, depth);
		if (ud->has_pending) { /* the function's error is the one to report */
			take_pending(L, ud);
			lua_pop(L, 1);
		}
		return lua_error(L);
	}
	if (!ud->db)
		return lscrm_raise(L, SCRM_MISUSE, "the database was closed inside db:batch()");
	/* fn's results may have used up the free stack; the hooks need a few slots
	 * (on Lua 5.1 they cannot grow it safely from inside the library). */
	luaL_checkstack(L, LUA_MINSTACK, "too many results from the db:batch() function");
	if (scrm_db_batch_depth(ud->db) != depth + 1) {
		unwind(ud, depth);
		return lscrm_raise(L, SCRM_MISUSE, "the function given to db:batch() left the batches "
						   "unbalanced (commit/rollback without begin); rolled back");
	}
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_db_commit(ud->db)));
	return lua_gettop(L) - 2;
}

static int db_set_clock(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int on = !lua_isnoneornil(L, 2);
	if (on)
		luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ud->ref);
	if (on)
		lua_pushvalue(L, 2);
	else
		lua_pushboolean(L, 0);
	lua_rawseti(L, -2, LSCRM_SLOT_CLOCK);
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_db_set_clock(ud->db, on ? clock_hook : NULL, ud)));
	return 0;
}

static int db_set_log(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int on = !lua_isnoneornil(L, 2);
	if (on)
		luaL_checktype(L, 2, LUA_TFUNCTION);
	int64_t level = SCRM_LOG_INFO;
	if (!lua_isnoneornil(L, 3))
		level = lscrm_checkid(L, 3);
	if (level < INT_MIN || level > INT_MAX)
		luaL_argerror(L, 3, "log level out of range");
	lua_rawgeti(L, LUA_REGISTRYINDEX, ud->ref);
	if (on)
		lua_pushvalue(L, 2);
	else
		lua_pushboolean(L, 0);
	lua_rawseti(L, -2, LSCRM_SLOT_LOG);
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_db_set_log(ud->db, on ? log_hook : NULL, ud,
							   (int)level)));
	return 0;
}

static int db_test_alloc_fail(lua_State *L)
{
	lscrm_db *ud = lscrm_enter(L, 1);
	int64_t n = lscrm_checkid(L, 2);
	if (n < LONG_MIN || n > LONG_MAX)
		luaL_argerror(L, 2, "out of range");
	lscrm_check(L, ud, LSCRM_CALL(ud, scrm_db_test_alloc_fail(ud->db, (long)n)));
	return 0;
}

static const luaL_Reg db_methods[] = {
	{"close", db_close},
	{"is_closed", db_is_closed},
	{"path", db_path},
	{"now", db_now},
	{"info", db_info},
	{"begin", db_begin},
	{"commit", db_commit},
	{"rollback", db_rollback},
	{"batch", db_batch},
	{"batch_depth", db_batch_depth},
	{"set_clock", db_set_clock},
	{"set_log", db_set_log},
	{"test_alloc_fail", db_test_alloc_fail},
	{NULL, NULL},
};

static const luaL_Reg db_meta[] = {
	{"__gc", db_gc},
	{"__close", db_close}, /* Lua 5.4: local db <close> = scrm.open(...) */
	{"__tostring", db_tostring},
	{NULL, NULL},
};

/* ------------------------------------------------------------ module */

static int l_version(lua_State *L)
{
	lua_pushstring(L, scrm_version());
	return 1;
}

static int l_version_number(lua_State *L)
{
	lua_pushinteger(L, scrm_version_number());
	return 1;
}

static int l_schema_version(lua_State *L)
{
	lua_pushinteger(L, scrm_schema_version());
	return 1;
}

static int l_errstr(lua_State *L)
{
	lua_pushstring(L, scrm_errstr((int)luaL_checkinteger(L, 1)));
	return 1;
}

static const luaL_Reg module_funcs[] = {
	{"version", l_version},
	{"version_number", l_version_number},
	{"schema_version", l_schema_version},
	{"errstr", l_errstr},
	{"open", l_open},
	{"object", lscrm_json_object},
	{NULL, NULL},
};

static const struct {
	const char *name;
	int value;
} constants[] = {
	{"OK", SCRM_OK},
	{"ERROR", SCRM_ERROR},
	{"MISUSE", SCRM_MISUSE},
	{"INVALID", SCRM_INVALID},
	{"NOTFOUND", SCRM_NOTFOUND},
	{"EXISTS", SCRM_EXISTS},
	{"CONFLICT", SCRM_CONFLICT},
	{"STATE", SCRM_STATE},
	{"BUSY", SCRM_BUSY},
	{"NOMEM", SCRM_NOMEM},
	{"IO", SCRM_IO},
	{"CORRUPT", SCRM_CORRUPT},
	{"SCHEMA", SCRM_SCHEMA},
	{"RANGE", SCRM_RANGE},
	{"PARSE", SCRM_PARSE},
	{"READONLY", SCRM_READONLY},
	{"LIMIT", SCRM_LIMIT},
	{"EVAL", SCRM_EVAL},
	{"DUPLICATE", SCRM_DUPLICATE},
	{"LOG_ERROR", SCRM_LOG_ERROR},
	{"LOG_WARN", SCRM_LOG_WARN},
	{"LOG_INFO", SCRM_LOG_INFO},
	{"LOG_DEBUG", SCRM_LOG_DEBUG},
};

LSCRM_EXPORT int luaopen_scrm(lua_State *L);

LSCRM_EXPORT int luaopen_scrm(lua_State *L)
{
	if (luaL_newmetatable(L, LSCRM_ERROR_MT)) {
		lua_pushcfunction(L, error_tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);

	if (luaL_newmetatable(L, LSCRM_OBJECT_MT)) {
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, "__jsonobject");
	}
	lua_pop(L, 1);

	if (luaL_newmetatable(L, LSCRM_DB_MT)) {
		luaL_setfuncs(L, db_meta, 0);
		lua_newtable(L);
		luaL_setfuncs(L, db_methods, 0);
		luaL_setfuncs(L, lscrm_identity_methods, 0);
		luaL_setfuncs(L, lscrm_profile_methods, 0);
		luaL_setfuncs(L, lscrm_rules_methods, 0);
		lua_setfield(L, -2, "__index");
		lua_pushliteral(L, "scrm.db");
		lua_setfield(L, -2, "__name");
	}
	lua_pop(L, 1);

	lscrm_expr_open(L);

	lua_newtable(L);
	luaL_setfuncs(L, module_funcs, 0);
	luaL_setfuncs(L, lscrm_profile_funcs, 0);
	luaL_setfuncs(L, lscrm_expr_funcs, 0);
	for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
		lua_pushinteger(L, constants[i].value);
		lua_setfield(L, -2, constants[i].name);
	}
	lscrm_pushnull(L);
	lua_setfield(L, -2, "null");
	lua_pushboolean(L, LSCRM_HAVE_INT64);
	lua_setfield(L, -2, "INT64_IDS");
	luaL_getmetatable(L, LSCRM_ERROR_MT);
	lua_setfield(L, -2, "error_mt");
	return 1;
}
