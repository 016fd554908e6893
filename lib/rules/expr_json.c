/*
 * JSON for expressions: binding a JSON value to an activation's slots, and
 * writing values out. The parser is our own rather than cJSON's because
 * integers must stay exact int64 (cJSON keeps doubles), allocations must go
 * through the library allocator, and only referenced paths are copied.
 */
#include <stdio.h>
#include <string.h>

#include "expr-int.h"

/* ------------------------------------------------------------ output */

void scrm__xjson_str(scrm_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	scrm__buf_append(b, "\"", 1);
	size_t run = 0, i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			i++;
			continue;
		}
		uint32_t u;
		int k = c >= 0x80 ? scrm__xutf8_seq((const unsigned char *)s + i, n - i, &u) : 0;
		if (k > 0) {
			i += (size_t)k;
			continue;
		}
		scrm__buf_append(b, s + run, i - run);
		switch (c) {
		case '"': scrm__buf_append(b, "\\\"", 2); break;
		case '\\': scrm__buf_append(b, "\\\\", 2); break;
		case '\n': scrm__buf_append(b, "\\n", 2); break;
		case '\r': scrm__buf_append(b, "\\r", 2); break;
		case '\t': scrm__buf_append(b, "\\t", 2); break;
		default:
			if (c < 0x20) {
				char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
				scrm__buf_append(b, e, 6);
			} else { /* a byte that is not UTF-8 */
				scrm__buf_append(b, "\\ufffd", 6);
			}
		}
		i++;
		run = i;
	}
	scrm__buf_append(b, s + run, n - run);
	scrm__buf_append(b, "\"", 1);
}

void scrm__xjson_value(scrm_buf *b, const scrm_xval *v)
{
	switch (v->t) {
	case SCRM_XV_BOOL: scrm__buf_puts(b, v->u.i ? "true" : "false"); break;
	case SCRM_XV_INT: scrm__buf_printf(b, "%lld", (long long)v->u.i); break;
	case SCRM_XV_STR: scrm__xjson_str(b, v->u.s, v->n); break;
	case SCRM_XV_LIST:
		scrm__buf_append(b, "[", 1);
		for (uint32_t i = 0; i < v->n; i++) {
			if (i)
				scrm__buf_append(b, ",", 1);
			scrm__xjson_value(b, &v->u.l[i]);
		}
		scrm__buf_append(b, "]", 1);
		break;
	case SCRM_XV_OBJ: scrm__buf_puts(b, "{}"); break;
	default: scrm__buf_puts(b, "null"); break;
	}
}

/* ------------------------------------------------------------ binding */

typedef struct jp {
	scrm_expr_vars *v;
	const scrm_expr *e;
	const char *s;
	size_t i;
	int depth;
	int code;
	char msg[SCRM_X_ERRMSG];
	char *path;          /* current dotted path */
	size_t plen, pcap;
	/* Building one slot's value: sizes first, then the copy. */
	bool fill;
	size_t need;
	uint32_t *counts;    /* element count of each array, in pre-order */
	size_t ncounts, capcounts, ci;
	char *blk;
	size_t used;
} jp;

static int jerr(jp *p, int code, const char *fmt, ...) SCRM_PRINTF(3, 4);

static int jerr(jp *p, int code, const char *fmt, ...)
{
	if (p->code)
		return p->code;
	int line = 1, col = 1;
	for (size_t k = 0; k < p->i; k++) {
		unsigned char ch = (unsigned char)p->s[k];
		if (ch == '\n')
			line++, col = 1;
		else if ((ch & 0xC0) != 0x80)
			col++;
	}
	int k = snprintf(p->msg, sizeof p->msg, "json %d:%d: ", line, col);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->msg + k, sizeof p->msg - (size_t)k, fmt, ap);
	va_end(ap);
	p->code = code;
	return code;
}

static int found(jp *p, const char *what)
{
	char c = p->s[p->i];
	if (!c)
		return jerr(p, SCRM_PARSE, "expected %s but found end of input", what);
	if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7F)
		return jerr(p, SCRM_PARSE, "expected %s but found byte 0x%02x", what, (unsigned char)c);
	return jerr(p, SCRM_PARSE, "expected %s but found '%c'", what, c);
}

static void ws(jp *p)
{
	for (;;) {
		char c = p->s[p->i];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			return;
		p->i++;
	}
}

static void *take(jp *p, size_t n)
{
	n = (n + 7) & ~(size_t)7;
	if (!p->fill) {
		p->need += n;
		return NULL;
	}
	void *r = p->blk + p->used;
	p->used += n;
	return r;
}

static int hex4(jp *p, size_t at, uint32_t *u)
{
	*u = 0;
	for (int k = 0; k < 4; k++) {
		char c = p->s[at + (size_t)k];
		int h = (c >= '0' && c <= '9') ? c - '0'
			: (c >= 'a' && c <= 'f') ? c - 'a' + 10
			: (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
		if (h < 0) {
			p->i = at;
			return jerr(p, SCRM_PARSE, "expected 4 hex digits after \\u");
		}
		*u = *u * 16 + (uint32_t)h;
	}
	return SCRM_OK;
}

/* Decode the string at p->i (a '"'). Writes up to `cap` bytes to `out`
 * (NULL: only measure); *len gets the full decoded length. */
static int jstring(jp *p, char *out, size_t cap, size_t *len)
{
	size_t n = 0;
	p->i++;
	for (;;) {
		unsigned char c = (unsigned char)p->s[p->i];
		char tmp[4];
		size_t k = 0;
		if (c == '"') {
			p->i++;
			break;
		}
		if (c == 0)
			return jerr(p, SCRM_PARSE, "unterminated string");
		if (c < 0x20)
			return jerr(p, SCRM_PARSE, "control character in string");
		if (c == '\\') {
			char e = p->s[p->i + 1];
			uint32_t u;
			switch (e) {
			case '"': case '\\': case '/': tmp[0] = e; k = 1; break;
			case 'b': tmp[0] = '\b'; k = 1; break;
			case 'f': tmp[0] = '\f'; k = 1; break;
			case 'n': tmp[0] = '\n'; k = 1; break;
			case 'r': tmp[0] = '\r'; k = 1; break;
			case 't': tmp[0] = '\t'; k = 1; break;
			case 'u':
				if (hex4(p, p->i + 2, &u))
					return p->code;
				if (u >= 0xD800 && u <= 0xDBFF) {
					uint32_t lo;
					if (p->s[p->i + 6] != '\\' || p->s[p->i + 7] != 'u' ||
					    hex4(p, p->i + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
						p->code = 0;
						return jerr(p, SCRM_INVALID, "unpaired surrogate in string");
					}
					u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
					p->i += 6;
				} else if (u >= 0xDC00 && u <= 0xDFFF) {
					return jerr(p, SCRM_INVALID, "unpaired surrogate in string");
				}
				if (u < 0x80) {
					tmp[0] = (char)u, k = 1;
				} else if (u < 0x800) {
					tmp[0] = (char)(0xC0 | (u >> 6));
					tmp[1] = (char)(0x80 | (u & 0x3F));
					k = 2;
				} else if (u < 0x10000) {
					tmp[0] = (char)(0xE0 | (u >> 12));
					tmp[1] = (char)(0x80 | ((u >> 6) & 0x3F));
					tmp[2] = (char)(0x80 | (u & 0x3F));
					k = 3;
				} else {
					tmp[0] = (char)(0xF0 | (u >> 18));
					tmp[1] = (char)(0x80 | ((u >> 12) & 0x3F));
					tmp[2] = (char)(0x80 | ((u >> 6) & 0x3F));
					tmp[3] = (char)(0x80 | (u & 0x3F));
					k = 4;
				}
				p->i += 4;
				break;
			default:
				p->i++;
				return jerr(p, SCRM_PARSE, "unknown escape in string");
			}
			p->i += 2;
			if (out)
				for (size_t j = 0; j < k; j++)
					if (n + j < cap)
						out[n + j] = tmp[j];
			n += k;
			continue;
		}
		uint32_t u;
		size_t left = strnlen(p->s + p->i, 4);
		int sl = scrm__xutf8_seq((const unsigned char *)p->s + p->i, left, &u);
		if (!sl)
			return jerr(p, SCRM_INVALID, "invalid UTF-8 in string");
		if (out)
			for (int j = 0; j < sl; j++)
				if (n + (size_t)j < cap)
					out[n + (size_t)j] = p->s[p->i + (size_t)j];
		n += (size_t)sl;
		p->i += (size_t)sl;
	}
	*len = n;
	return SCRM_OK;
}

/* A number; `bind` asks for an exact int64. */
static int jnumber(jp *p, bool bind, int64_t *val)
{
	size_t start = p->i;
	bool neg = false, frac = false;
	uint64_t mag = 0;
	bool big = false;
	if (p->s[p->i] == '-')
		neg = true, p->i++;
	char c = p->s[p->i];
	if (c < '0' || c > '9')
		return found(p, "a digit");
	if (c == '0') {
		p->i++;
	} else {
		while ((c = p->s[p->i]) >= '0' && c <= '9') {
			unsigned d = (unsigned)(c - '0');
			if (mag > (UINT64_C(9223372036854775808) - d) / 10)
				big = true;
			else
				mag = mag * 10 + d;
			p->i++;
		}
	}
	if (p->s[p->i] == '.') {
		frac = true;
		p->i++;
		if (p->s[p->i] < '0' || p->s[p->i] > '9')
			return found(p, "a digit");
		while (p->s[p->i] >= '0' && p->s[p->i] <= '9')
			p->i++;
	}
	if (p->s[p->i] == 'e' || p->s[p->i] == 'E') {
		frac = true;
		p->i++;
		if (p->s[p->i] == '+' || p->s[p->i] == '-')
			p->i++;
		if (p->s[p->i] < '0' || p->s[p->i] > '9')
			return found(p, "a digit");
		while (p->s[p->i] >= '0' && p->s[p->i] <= '9')
			p->i++;
	}
	if (!bind)
		return SCRM_OK;
	size_t end = p->i;
	p->i = start;
	if (frac)
		return jerr(p, SCRM_INVALID, "%.*s: numbers must be integers, not %.*s",
			    (int)(p->plen > 60 ? 60 : p->plen), p->path ? p->path : "",
			    (int)(end - start > 40 ? 40 : end - start), p->s + start);
	if (big || mag > (uint64_t)INT64_MAX + neg)
		return jerr(p, SCRM_RANGE, "integer out of range");
	p->i = end;
	*val = neg ? (mag == UINT64_C(9223372036854775808) ? INT64_MIN : -(int64_t)mag)
		   : (int64_t)mag;
	return SCRM_OK;
}

static int jword(jp *p, const char *w)
{
	size_t n = strlen(w);
	if (strncmp(p->s + p->i, w, n) != 0)
		return found(p, "a JSON value");
	p->i += n;
	return SCRM_OK;
}

static bool enter(jp *p)
{
	if (++p->depth > p->e->lim.depth) {
		jerr(p, SCRM_LIMIT, "nested deeper than %lld levels", (long long)p->e->lim.depth);
		return false;
	}
	return true;
}

/* Parse one value. With dst, store it (measure or fill pass); without,
 * only check its syntax. Objects inside a stored value are opaque. */
static int jvalue(jp *p, scrm_xval *dst)
{
	ws(p);
	char c = p->s[p->i];
	int rc;
	if (c == '{' || c == '[') {
		if (!enter(p))
			return p->code;
		bool arr = c == '[';
		char close = arr ? ']' : '}';
		size_t slot_ci = 0;
		scrm_xval *elems = NULL;
		uint32_t n = 0;
		if (arr && dst) {
			if (!p->fill) {
				if (p->ncounts == p->capcounts) {
					size_t cap = p->capcounts ? p->capcounts * 2 : 16;
					uint32_t *nc = scrm__realloc(NULL, p->counts, cap * sizeof *nc);
					if (!nc)
						return jerr(p, SCRM_NOMEM, "out of memory");
					p->counts = nc;
					p->capcounts = cap;
				}
				slot_ci = p->ncounts++;
			} else {
				uint32_t cnt = p->counts[p->ci++];
				elems = cnt ? take(p, (size_t)cnt * sizeof *elems) : NULL;
			}
		}
		p->i++;
		ws(p);
		if (p->s[p->i] == close) {
			p->i++;
		} else {
			for (;;) {
				if (!arr) {
					ws(p);
					size_t len;
					if (p->s[p->i] != '"')
						return found(p, "a string (object key)");
					if ((rc = jstring(p, NULL, 0, &len)) != SCRM_OK)
						return rc;
					ws(p);
					if (p->s[p->i] != ':')
						return found(p, "':'");
					p->i++;
				}
				if (arr && dst) {
					scrm_xval measured;
					scrm_xval *d = p->fill ? &elems[n] : &measured;
					rc = jvalue(p, d);
				} else {
					rc = jvalue(p, NULL);
				}
				if (rc)
					return rc;
				n++;
				ws(p);
				if (p->s[p->i] == ',') {
					p->i++;
					continue;
				}
				if (p->s[p->i] == close) {
					p->i++;
					break;
				}
				return found(p, arr ? "',' or ']'" : "',' or '}'");
			}
		}
		p->depth--;
		if (dst) {
			memset(dst, 0, sizeof *dst);
			if (arr) {
				if (!p->fill) {
					p->counts[slot_ci] = n;
					take(p, (size_t)n * sizeof *elems);
				}
				dst->t = SCRM_XV_LIST;
				dst->n = n;
				dst->u.l = elems;
			} else {
				dst->t = SCRM_XV_OBJ;
			}
		}
		return SCRM_OK;
	}
	if (c == '"') {
		size_t len;
		size_t at = p->i;
		if ((rc = jstring(p, NULL, 0, &len)) != SCRM_OK)
			return rc;
		if (!dst)
			return SCRM_OK;
		if (len > UINT32_MAX)
			return jerr(p, SCRM_RANGE, "string too long");
		char *s = take(p, len + 1);
		if (s) {
			size_t end = p->i;
			p->i = at;
			jstring(p, s, len, &len);
			s[len] = '\0';
			p->i = end;
		}
		memset(dst, 0, sizeof *dst);
		dst->t = SCRM_XV_STR;
		dst->n = (uint32_t)len;
		dst->u.s = s;
		return SCRM_OK;
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		int64_t x = 0;
		if ((rc = jnumber(p, dst != NULL, &x)) != SCRM_OK)
			return rc;
		if (dst) {
			memset(dst, 0, sizeof *dst);
			dst->t = SCRM_XV_INT;
			dst->u.i = x;
		}
		return SCRM_OK;
	}
	scrm_xval v = {0};
	if (c == 't')
		rc = jword(p, "true"), v.t = SCRM_XV_BOOL, v.u.i = 1;
	else if (c == 'f')
		rc = jword(p, "false"), v.t = SCRM_XV_BOOL;
	else if (c == 'n')
		rc = jword(p, "null"), v.t = SCRM_XV_NULL;
	else
		return found(p, "a JSON value");
	if (rc == SCRM_OK && dst)
		*dst = v;
	return rc;
}

/* Bind the value at p->i to `slot`: measure, allocate one block, fill. */
static int bind_slot(jp *p, int32_t slot)
{
	size_t start = p->i;
	scrm_xval val;
	p->fill = false;
	p->need = 0;
	p->ncounts = 0;
	int depth = p->depth;
	int rc = jvalue(p, &val);
	if (rc)
		return rc;
	scrm_xowned *blk = NULL;
	if (p->need) {
		size_t hdr = (sizeof(scrm_xowned) + 15) & ~(size_t)15;
		/* zeroed, with slack for PCRE2's JIT: see scrm__xarena_alloc() */
		blk = scrm__calloc(NULL, 1, hdr + p->need + 16);
		if (!blk)
			return jerr(p, SCRM_NOMEM, "out of memory");
		blk->next = NULL;
		p->fill = true;
		p->blk = (char *)blk + hdr;
		p->used = 0;
		p->ci = 0;
		p->i = start;
		p->depth = depth;
		rc = jvalue(p, &val);
		p->fill = false;
		if (rc) { /* cannot happen: the same text parsed a moment ago */
			scrm__free(blk);
			return rc;
		}
	}
	scrm_xslot *s = &p->v->slots[slot];
	scrm__xslot_release(p->v, s);
	s->v = val;
	s->owned = blk;
	return SCRM_OK;
}

static int bind_at(jp *p, bool addressable);

static int bind_members(jp *p, bool addressable)
{
	if (!enter(p))
		return p->code;
	p->i++; /* '{' */
	ws(p);
	if (p->s[p->i] == '}') {
		p->i++;
		p->depth--;
		return SCRM_OK;
	}
	size_t base = p->plen;
	for (;;) {
		ws(p);
		if (p->s[p->i] != '"')
			return found(p, "a string (object key)");
		/* Member path: base + "." + key, if it can still name a slot. */
		bool addr = addressable;
		size_t len, at = base;
		if (addr && base > 0) {
			if (at < p->pcap)
				p->path[at] = '.';
			at++;
		}
		int rc = jstring(p, addr && at <= p->pcap ? p->path + at : NULL,
				 at <= p->pcap ? p->pcap - at : 0, &len);
		if (rc)
			return rc;
		if (addr && at + len <= p->pcap)
			p->plen = at + len;
		else
			addr = false;
		ws(p);
		if (p->s[p->i] != ':')
			return found(p, "':'");
		p->i++;
		ws(p);
		if ((rc = bind_at(p, addr)) != SCRM_OK)
			return rc;
		p->plen = base;
		ws(p);
		if (p->s[p->i] == ',') {
			p->i++;
			continue;
		}
		if (p->s[p->i] == '}') {
			p->i++;
			break;
		}
		return found(p, "',' or '}'");
	}
	p->depth--;
	return SCRM_OK;
}

/* The value at p->i sits at path p->path[0..plen). */
static int bind_at(jp *p, bool addressable)
{
	int32_t slot = addressable ? scrm__xslot_lookup(p->e, p->path, p->plen) : -1;
	bool obj = p->s[p->i] == '{';
	if (slot >= 0 && !obj)
		return bind_slot(p, slot);
	if (slot >= 0) {
		scrm_xslot *s = &p->v->slots[slot];
		scrm__xslot_release(p->v, s);
		memset(&s->v, 0, sizeof s->v);
		s->v.t = SCRM_XV_OBJ;
	}
	if (obj && (slot >= 0 || slot == -2))
		return bind_members(p, true);
	return jvalue(p, NULL);
}

static bool under(const char *name, size_t nlen, const char *prefix, size_t plen)
{
	if (plen == 0)
		return true;
	return nlen >= plen && memcmp(name, prefix, plen) == 0 && (nlen == plen || name[plen] == '.');
}

static void clear_prefix(scrm_expr_vars *v, const char *prefix, size_t plen)
{
	const scrm_expr *e = v->expr;
	for (uint32_t i = 0; i < e->nslots; i++)
		if (under(e->names[i], e->name_lens[i], prefix, plen)) {
			scrm__xslot_release(v, &v->slots[i]);
			memset(&v->slots[i].v, 0, sizeof v->slots[i].v);
			v->slots[i].v.t = SCRM_XV_MISSING;
		}
}

int scrm__xjson_bind(scrm_expr_vars *v, const char *prefix, const char *json)
{
	jp p;
	memset(&p, 0, sizeof p);
	p.v = v;
	p.e = v->expr;
	p.s = json;
	size_t plen = strlen(prefix);
	clear_prefix(v, prefix, plen);
	p.pcap = p.e->max_name;
	p.path = scrm__malloc(NULL, p.pcap + 1);
	if (!p.path)
		return scrm__error(NULL, SCRM_NOMEM, "out of memory");
	bool addressable = plen <= p.pcap;
	if (addressable) {
		memcpy(p.path, prefix, plen);
		p.plen = plen;
	}
	int rc;
	ws(&p);
	if (plen == 0) {
		if (p.s[p.i] != '{')
			rc = jerr(&p, SCRM_INVALID, "expected an object at the top level");
		else
			rc = bind_members(&p, true);
	} else {
		rc = bind_at(&p, addressable);
	}
	if (rc == SCRM_OK) {
		ws(&p);
		if (p.s[p.i])
			rc = found(&p, "end of input");
	}
	scrm__free(p.path);
	scrm__free(p.counts);
	if (rc) {
		clear_prefix(v, prefix, plen);
		return scrm__error(NULL, rc, "%s", rc == SCRM_NOMEM ? "out of memory" : p.msg);
	}
	return SCRM_OK;
}
