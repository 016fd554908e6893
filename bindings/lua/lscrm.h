/*
 * Lua binding of libscrm: shared declarations and the compatibility shims
 * that let one source build against Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT.
 */
#ifndef LSCRM_H
#define LSCRM_H

#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include "scrm/db.h"

/* ------------------------------------------------------------ compat */

#if LUA_VERSION_NUM < 502
/* Lua 5.1 and LuaJIT. */
#  define lua_rawlen(L, i) lua_objlen((L), (i))
#  define lua_absindex(L, i) ((i) > 0 || (i) <= LUA_REGISTRYINDEX ? (i) : lua_gettop(L) + (i) + 1)
void lscrm_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
/* The value at `idx` as JSON text pushed on the stack (a table is encoded,
 * a string taken as it is); raises an argument error naming `what`. */
const char *lscrm_push_json_arg(lua_State *L, int idx, const char *what);
/* Options table at `idx`, keys checked against `known` (absent: an empty
 * one left in its place). */
void lscrm_opt_table(lua_State *L, int idx, const char *const *known);
void *lscrm_testudata(lua_State *L, int idx, const char *tname);
void lscrm_setmetatable(lua_State *L, const char *tname);
#  define luaL_setfuncs(L, l, n) lscrm_setfuncs((L), (l), (n))
#  define luaL_testudata(L, i, t) lscrm_testudata((L), (i), (t))
#  define luaL_setmetatable(L, t) lscrm_setmetatable((L), (t))
#endif

#if LUA_VERSION_NUM >= 503
/* Integers are 64-bit (unless Lua was built with LUA_32BITS): ids are exact. */
#  define LSCRM_HAVE_INT64 1
#else
/* lua_Number is a double: ids above 2^53 cannot be represented exactly. */
#  define LSCRM_HAVE_INT64 0
#endif

/* ------------------------------------------------------------ handle */

#define LSCRM_DB_MT "scrm.db"
#define LSCRM_ERROR_MT "scrm.error"
/* Marks a table as a JSON object, so that an empty one encodes as {}. */
#define LSCRM_OBJECT_MT "scrm.object"

/* Slots of the per-handle registry table holding the Lua side of the hooks.
 * The table is created with all its array slots filled so storing into
 * them later never allocates (it happens inside library callbacks).
 * HANDLER: the outbox delivery function; HANDED: the ids db:outbox()
 * iterators handed out and not yet settled; HANDLER_ERROR: the last failure
 * of the delivery function. Each holds false when unused. */
enum {
	LSCRM_SLOT_CLOCK = 1,
	LSCRM_SLOT_LOG = 2,
	LSCRM_SLOT_PENDING = 3,
	LSCRM_SLOT_HANDLER = 4,
	LSCRM_SLOT_HANDED = 5,
	LSCRM_SLOT_HANDLER_ERROR = 6,
	LSCRM_SLOT_COUNT = 6
};

typedef struct lscrm_db {
	scrm_db *db;       /* NULL once closed (or when open failed) */
	lua_State *L;      /* thread of the call in progress; the hooks run on it */
	int ref;           /* registry ref of the slots table, or LUA_NOREF */
	int in_call;       /* a library call is running: callbacks must not re-enter */
	int has_pending;   /* a hook raised an error, kept in LSCRM_SLOT_PENDING */
	char *owned;       /* library string being copied into Lua (freed if that throws) */
} lscrm_db;

/* Raise `{code=, name=, message=}` (metatable LSCRM_ERROR_MT). */
int lscrm_raise(lua_State *L, int code, const char *fmt, ...);
/* Push (without raising) the same error table. */
void lscrm_push_error(lua_State *L, int code, const char *msg);

/* Check arg `idx` is an open handle not busy in a call; bind it to L. */
lscrm_db *lscrm_enter(lua_State *L, int idx);

/* Call bracket: mark the handle busy around a library call; yields its result. */
static inline int lscrm_call_end(lscrm_db *ud, int rc)
{
	ud->in_call = 0;
	return rc;
}
#define LSCRM_CALL(ud, expr) ((ud)->in_call = 1, lscrm_call_end((ud), (expr)))

/*
 * After a library call: raise a hook's error if one is pending, else the
 * library's error when rc != SCRM_OK. `out` (may be NULL) is a library string
 * that is released on every path; on success it is pushed (or decoded from
 * JSON into a table when `json` is set). Returns the number of values pushed.
 */
int lscrm_finish(lua_State *L, lscrm_db *ud, int rc, char *out, int json);
/* Like lscrm_finish(..., NULL, 0) but pushes nothing. */
void lscrm_check(lua_State *L, lscrm_db *ud, int rc);

/* Ids: int64 from/to Lua (exact on 5.3+, doubles below). */
int64_t lscrm_checkid(lua_State *L, int idx);
void lscrm_pushid(lua_State *L, int64_t v);
int lscrm_toint64(lua_State *L, int idx, int64_t *out);
/* A string argument that must not contain NUL bytes (the C API uses C strings). */
const char *lscrm_checkcstr(lua_State *L, int idx);
const char *lscrm_optcstr(lua_State *L, int idx);

/* Options tables: reject unknown keys; read typed fields (nil -> default). */
void lscrm_checkopts(lua_State *L, int idx, const char *const *known);
/* Reject keys of the table at idx that are not in `known`: an argument error
 * on `arg`, "<prefix>unknown <noun> 'key'" ("event 2: " "field"). */
void lscrm_check_keys(lua_State *L, int idx, const char *const *known, int arg, const char *prefix,
		      const char *noun);
int lscrm_optbool(lua_State *L, int idx, const char *name, int dflt);
int64_t lscrm_optint(lua_State *L, int idx, const char *name, int64_t dflt, int64_t lo, int64_t hi);

/* JSON: decode the library's output into Lua values; encode a Lua table. */
void lscrm_json_push(lua_State *L, const char *s, size_t len);
void lscrm_json_encode(lua_State *L, int idx); /* pushes the text */
/* The value at `idx` as JSON text pushed on the stack (a table is encoded,
 * a string taken as it is); raises an argument error naming `what`. */
const char *lscrm_push_json_arg(lua_State *L, int idx, const char *what);
/* Options table at `idx`, keys checked against `known` (absent: an empty
 * one left in its place). */
void lscrm_opt_table(lua_State *L, int idx, const char *const *known);

/* Flatten the identifiers table at `arg` ({kind = value}, {kind = {v1, v2}}
 * and {{kind, value}, ...}, any mix; integral numbers as text) into the
 * anchor table as kind1, value1, kind2, value2, ...; returns the number of
 * pairs. The strings stay referenced by the anchor for the library call. */
size_t lscrm_collect_ids(lua_State *L, int arg, int anchor);
/* scrm.object([t]): t (or a new table) marked as a JSON object. */
int lscrm_json_object(lua_State *L);
/* Push the light userdata used as JSON null (`scrm.null`). */
#define lscrm_pushnull(L) lua_pushlightuserdata((L), NULL)

/* Method tables, and module functions of the engines. */
extern const luaL_Reg lscrm_identity_methods[];
extern const luaL_Reg lscrm_profile_methods[];
extern const luaL_Reg lscrm_profile_funcs[];
extern const luaL_Reg lscrm_rules_methods[];
/* Registers the scrm.expr metatable; leaves nothing on the stack. */
void lscrm_expr_open(lua_State *L);
extern const luaL_Reg lscrm_expr_funcs[];

#endif /* LSCRM_H */
