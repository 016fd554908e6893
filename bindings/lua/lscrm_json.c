/*
 * Lua binding of libscrm: JSON both ways. The decoder turns the library's
 * output into Lua tables (keeping int64 ids exact on Lua 5.3+, which a
 * double-based parser such as cJSON would not); the encoder turns a Lua table
 * into the JSON text the library takes (kind definitions, observations).
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lscrm.h"

#define JSON_MAX_DEPTH 200

/* ------------------------------------------------------------ decoder */

typedef struct jdec {
	lua_State *L;
	const char *s, *p, *end;
	int depth;
} jdec;

static void dec_error(jdec *d, const char *what)
{
	lscrm_raise(d->L, SCRM_PARSE, "cannot decode JSON from the library: %s at byte %d", what,
		    (int)(d->p - d->s));
}

static void skip_ws(jdec *d)
{
	while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
		d->p++;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static unsigned long read_hex4(jdec *d)
{
	unsigned long v = 0;
	if (d->end - d->p < 4)
		dec_error(d, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		int h = hexval((unsigned char)d->p[i]);
		if (h < 0)
			dec_error(d, "bad \\u escape");
		v = v << 4 | (unsigned long)h;
	}
	d->p += 4;
	return v;
}

static size_t utf8_encode(char *out, unsigned long cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* d->p is at the opening quote; pushes the string. */
static void dec_string(jdec *d)
{
	const char *start = ++d->p, *q = start;
	while (q < d->end && *q != '"' && *q != '\\')
		q++;
	if (q < d->end && *q == '"') { /* no escapes: the common case */
		lua_pushlstring(d->L, start, (size_t)(q - start));
		d->p = q + 1;
		return;
	}
	/* Nothing else touches the stack until luaL_pushresult. */
	luaL_Buffer b;
	luaL_buffinit(d->L, &b);
	luaL_addlstring(&b, start, (size_t)(q - start));
	d->p = q;
	for (;;) {
		if (d->p >= d->end)
			dec_error(d, "unterminated string");
		char c = *d->p++;
		if (c == '"')
			break;
		if (c != '\\') {
			luaL_addchar(&b, c);
			continue;
		}
		if (d->p >= d->end)
			dec_error(d, "unterminated string");
		c = *d->p++;
		switch (c) {
		case '"': case '\\': case '/': luaL_addchar(&b, c); break;
		case 'b': luaL_addchar(&b, '\b'); break;
		case 'f': luaL_addchar(&b, '\f'); break;
		case 'n': luaL_addchar(&b, '\n'); break;
		case 'r': luaL_addchar(&b, '\r'); break;
		case 't': luaL_addchar(&b, '\t'); break;
		case 'u': {
			unsigned long cp = read_hex4(d);
			if (cp >= 0xD800 && cp < 0xDC00 && d->end - d->p >= 6 && d->p[0] == '\\' &&
			    d->p[1] == 'u') {
				const char *save = d->p;
				d->p += 2;
				unsigned long lo = read_hex4(d);
				if (lo >= 0xDC00 && lo < 0xE000)
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				else
					d->p = save; /* lone high surrogate: keep as is */
			}
			char u[4];
			luaL_addlstring(&b, u, utf8_encode(u, cp));
			break;
		}
		default:
			dec_error(d, "bad escape");
		}
	}
	luaL_pushresult(&b);
}

static void dec_number(jdec *d)
{
	const char *start = d->p;
	int integral = 1;
	if (d->p < d->end && *d->p == '-')
		d->p++;
	if (d->p >= d->end || *d->p < '0' || *d->p > '9')
		dec_error(d, "bad number");
	while (d->p < d->end && *d->p >= '0' && *d->p <= '9')
		d->p++;
	if (d->p < d->end && *d->p == '.') {
		integral = 0;
		d->p++;
		while (d->p < d->end && *d->p >= '0' && *d->p <= '9')
			d->p++;
	}
	if (d->p < d->end && (*d->p == 'e' || *d->p == 'E')) {
		integral = 0;
		d->p++;
		if (d->p < d->end && (*d->p == '+' || *d->p == '-'))
			d->p++;
		while (d->p < d->end && *d->p >= '0' && *d->p <= '9')
			d->p++;
	}
#if LSCRM_HAVE_INT64
	if (integral) {
		/* Exact int64 when it fits; otherwise fall through to a double. */
		const char *q = start;
		int neg = *q == '-';
		unsigned long long v = 0, lim = neg ? 9223372036854775808ull : 9223372036854775807ull;
		q += neg;
		for (; q < d->p; q++) {
			unsigned dig = (unsigned)(*q - '0');
			if (v > (lim - dig) / 10)
				break;
			v = v * 10 + dig;
		}
		if (q == d->p) {
			lscrm_pushid(d->L, neg ? (int64_t)(0 - v) : (int64_t)v);
			return;
		}
	}
#endif
	(void)integral;
	char buf[64];
	size_t n = (size_t)(d->p - start);
	if (n >= sizeof buf)
		dec_error(d, "number too long");
	memcpy(buf, start, n);
	buf[n] = '\0';
	/* strtod follows the C locale's decimal point, which the host may have changed. */
	char dp = localeconv()->decimal_point[0];
	if (dp != '.') {
		char *dot = strchr(buf, '.');
		if (dot)
			*dot = dp;
	}
	lua_pushnumber(d->L, (lua_Number)strtod(buf, NULL));
}

static int match_lit(jdec *d, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(d->end - d->p) < n || memcmp(d->p, lit, n) != 0)
		return 0;
	d->p += n;
	return 1;
}

static void dec_value(jdec *d)
{
	lua_State *L = d->L;
	luaL_checkstack(L, 4, "JSON nested too deep");
	skip_ws(d);
	if (d->p >= d->end)
		dec_error(d, "unexpected end");
	switch (*d->p) {
	case '{': {
		if (++d->depth > JSON_MAX_DEPTH)
			dec_error(d, "nested too deep");
		d->p++;
		lua_newtable(L);
		/* Marked, so that a decoded {} encodes back as {}. */
		luaL_setmetatable(L, LSCRM_OBJECT_MT);
		skip_ws(d);
		if (d->p < d->end && *d->p == '}') {
			d->p++;
		} else {
			for (;;) {
				skip_ws(d);
				if (d->p >= d->end || *d->p != '"')
					dec_error(d, "object key expected");
				dec_string(d);
				skip_ws(d);
				if (d->p >= d->end || *d->p != ':')
					dec_error(d, "':' expected");
				d->p++;
				dec_value(d);
				lua_rawset(L, -3);
				skip_ws(d);
				if (d->p < d->end && *d->p == ',') {
					d->p++;
					continue;
				}
				if (d->p < d->end && *d->p == '}') {
					d->p++;
					break;
				}
				dec_error(d, "',' or '}' expected");
			}
		}
		d->depth--;
		return;
	}
	case '[': {
		if (++d->depth > JSON_MAX_DEPTH)
			dec_error(d, "nested too deep");
		d->p++;
		lua_newtable(L);
		skip_ws(d);
		if (d->p < d->end && *d->p == ']') {
			d->p++;
		} else {
			for (int i = 1;; i++) {
				dec_value(d);
				lua_rawseti(L, -2, i);
				skip_ws(d);
				if (d->p < d->end && *d->p == ',') {
					d->p++;
					continue;
				}
				if (d->p < d->end && *d->p == ']') {
					d->p++;
					break;
				}
				dec_error(d, "',' or ']' expected");
			}
		}
		d->depth--;
		return;
	}
	case '"':
		dec_string(d);
		return;
	case 't':
		if (!match_lit(d, "true"))
			break;
		lua_pushboolean(L, 1);
		return;
	case 'f':
		if (!match_lit(d, "false"))
			break;
		lua_pushboolean(L, 0);
		return;
	case 'n':
		if (!match_lit(d, "null"))
			break;
		lscrm_pushnull(L);
		return;
	default:
		if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9')) {
			dec_number(d);
			return;
		}
	}
	dec_error(d, "unexpected character");
}

void lscrm_json_push(lua_State *L, const char *s, size_t len)
{
	jdec d = {L, s, s, s + len, 0};
	dec_value(&d);
	skip_ws(&d);
	if (d.p != d.end)
		dec_error(&d, "trailing characters");
}

/* ------------------------------------------------------------ encoder */

/* Growable buffer whose storage is a userdata at stack slot `idx`, so an
 * error anywhere in the encoder leaves nothing to free. */
typedef struct jbuf {
	lua_State *L;
	int idx;
	char *p;
	size_t n, cap;
} jbuf;

static void jb_reserve(jbuf *b, size_t more)
{
	if (b->cap - b->n >= more)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->n < more)
		cap *= 2;
	char *np = (char *)lua_newuserdata(b->L, cap);
	if (b->n)
		memcpy(np, b->p, b->n);
	lua_replace(b->L, b->idx);
	b->p = np;
	b->cap = cap;
}

static void jb_add(jbuf *b, const char *s, size_t n)
{
	jb_reserve(b, n);
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

#define jb_lit(b, s) jb_add((b), (s), sizeof(s) - 1)

static void enc_string(jbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	jb_reserve(b, n + 2);
	b->p[b->n++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			jb_add(b, esc, 2);
		} else if (c < 0x20) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			jb_add(b, esc, 6);
		} else {
			jb_reserve(b, 1);
			b->p[b->n++] = (char)c;
		}
	}
	jb_lit(b, "\"");
}

static void enc_error(jbuf *b, const char *what)
{
	lscrm_raise(b->L, SCRM_INVALID, "cannot encode as JSON: %s", what);
}

static void enc_number(jbuf *b, int idx)
{
	lua_State *L = b->L;
	char buf[64];
	int64_t iv;
	if (lscrm_toint64(L, idx, &iv)) { /* integers, and floats with an integral value */
		snprintf(buf, sizeof buf, "%lld", (long long)iv);
	} else {
		lua_Number n = lua_tonumber(L, idx);
		if (n != n || n - n != 0)
			enc_error(b, "NaN or infinity");
		snprintf(buf, sizeof buf, "%.17g", (double)n);
		char dp = localeconv()->decimal_point[0];
		if (dp != '.') {
			char *q = strchr(buf, dp);
			if (q)
				*q = '.';
		}
	}
	jb_add(b, buf, strlen(buf));
}

static void enc_value(jbuf *b, int idx, int depth);

static void enc_table(jbuf *b, int idx, int depth)
{
	lua_State *L = b->L;
	if (depth > JSON_MAX_DEPTH)
		enc_error(b, "tables nested too deep (or a cycle)");
	luaL_checkstack(L, 4, "JSON nested too deep");
	/* An array is a table whose keys are exactly 1..n; {} encodes as [],
	 * unless the table is marked as an object (scrm.object, or decoded
	 * from a JSON object). */
	size_t count = 0;
	int64_t max = 0;
	int array = !luaL_getmetafield(L, idx, "__jsonobject");
	if (!array)
		lua_pop(L, 1);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int64_t k;
		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TNUMBER && lscrm_toint64(L, -1, &k) && k >= 1) {
			if (k > max)
				max = k;
		} else {
			array = 0;
		}
		count++;
	}
	if (array) {
		if ((int64_t)count != max)
			enc_error(b, "array with holes");
		jb_lit(b, "[");
		for (size_t i = 1; i <= count; i++) {
			if (i > 1)
				jb_lit(b, ",");
			lua_rawgeti(L, idx, (int)i);
			enc_value(b, lua_gettop(L), depth + 1);
			lua_pop(L, 1);
		}
		jb_lit(b, "]");
		return;
	}
	jb_lit(b, "{");
	int first = 1;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		/* Only real strings: lua_tolstring on a number key would break lua_next. */
		if (lua_type(L, -2) != LUA_TSTRING)
			enc_error(b, "object keys must be strings");
		size_t kn;
		const char *k = lua_tolstring(L, -2, &kn);
		if (!first)
			jb_lit(b, ",");
		first = 0;
		enc_string(b, k, kn);
		jb_lit(b, ":");
		enc_value(b, lua_gettop(L), depth + 1);
		lua_pop(L, 1);
	}
	jb_lit(b, "}");
}

static void enc_value(jbuf *b, int idx, int depth)
{
	lua_State *L = b->L;
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		jb_lit(b, "null");
		return;
	case LUA_TBOOLEAN:
		if (lua_toboolean(L, idx))
			jb_lit(b, "true");
		else
			jb_lit(b, "false");
		return;
	case LUA_TNUMBER:
		enc_number(b, idx);
		return;
	case LUA_TSTRING: {
		size_t n;
		const char *s = lua_tolstring(L, idx, &n);
		enc_string(b, s, n);
		return;
	}
	case LUA_TTABLE:
		enc_table(b, idx, depth);
		return;
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) == NULL) { /* scrm.null */
			jb_lit(b, "null");
			return;
		}
		break;
	default:
		break;
	}
	lua_pushfstring(L, "a %s value", luaL_typename(L, idx));
	enc_error(b, lua_tostring(L, -1));
}

void lscrm_json_encode(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	lua_pushnil(L); /* buffer storage slot */
	jbuf b = {L, lua_gettop(L), NULL, 0, 0};
	enc_value(&b, idx, 0);
	lua_pushlstring(L, b.p ? b.p : "", b.n);
	lua_remove(L, b.idx);
}

int lscrm_json_object(lua_State *L)
{
	if (lua_isnoneornil(L, 1)) {
		lua_settop(L, 0);
		lua_newtable(L);
	} else {
		luaL_checktype(L, 1, LUA_TTABLE);
		lua_settop(L, 1);
	}
	luaL_setmetatable(L, LSCRM_OBJECT_MT);
	return 1;
}

/* ------------------------------------------------------------ JSON arguments */

/* The value at `idx` as JSON text pushed on the stack: a table is encoded,
 * a string is taken as JSON text as it is. */
const char *lscrm_push_json_arg(lua_State *L, int idx, const char *what)
{
	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) == LUA_TTABLE)
		lscrm_json_encode(L, idx);
	else if (lua_type(L, idx) == LUA_TSTRING)
		lua_pushvalue(L, idx);
	else
		luaL_argerror(L, idx, lua_pushfstring(L, "%s (table or JSON text) expected, got %s",
						       what, luaL_typename(L, idx)));
	return lscrm_checkcstr(L, lua_gettop(L));
}

/* Options table at `idx` (absent: an empty one left in its place). */
void lscrm_opt_table(lua_State *L, int idx, const char *const *known)
{
	if (lua_isnoneornil(L, idx)) {
		lua_settop(L, idx - 1);
		lua_newtable(L);
		return;
	}
	luaL_checktype(L, idx, LUA_TTABLE);
	lscrm_checkopts(L, idx, known);
	lua_settop(L, idx);
}
