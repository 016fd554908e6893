/*
 * Expression lexer: UTF-8 checking, positions (line:column), tokens,
 * string escapes and duration literals.
 */
#include <stdio.h>
#include <string.h>

#include "expr-int.h"

int scrm__xutf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (n == 0)
		return 0;
	unsigned c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	int len;
	uint32_t v, min;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2, v = c & 0x1F, min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3, v = c & 0x0F, min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if ((size_t)len > n)
		return 0;
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return len;
}

void scrm__xlinecol(const char *src, uint32_t off, int *line, int *col)
{
	int l = 1, c = 1;
	for (uint32_t i = 0; i < off && src[i]; i++) {
		unsigned char ch = (unsigned char)src[i];
		if (ch == '\n') {
			l++;
			c = 1;
		} else if ((ch & 0xC0) != 0x80) {
			c++;
		}
	}
	*line = l;
	*col = c;
}

int scrm__xcomp_error(scrm_xcomp *cp, int code, uint32_t pos, const char *fmt, ...)
{
	if (cp->code)
		return cp->code; /* keep the first error */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cp->msg, sizeof cp->msg, fmt, ap);
	va_end(ap);
	cp->code = code;
	cp->errpos = pos;
	return code;
}

int scrm__xlex_check_utf8(scrm_xcomp *cp)
{
	const unsigned char *s = (const unsigned char *)cp->src;
	for (uint32_t i = 0; i < cp->len;) {
		uint32_t u;
		int k = scrm__xutf8_seq(s + i, cp->len - i, &u);
		if (!k)
			return scrm__xcomp_error(cp, SCRM_INVALID, i, "invalid UTF-8");
		i += (uint32_t)k;
	}
	return SCRM_OK;
}

static bool is_ident_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident(int c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9');
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

static size_t put_utf8(char *o, uint32_t u)
{
	if (u < 0x80) {
		o[0] = (char)u;
		return 1;
	}
	if (u < 0x800) {
		o[0] = (char)(0xC0 | (u >> 6));
		o[1] = (char)(0x80 | (u & 0x3F));
		return 2;
	}
	if (u < 0x10000) {
		o[0] = (char)(0xE0 | (u >> 12));
		o[1] = (char)(0x80 | ((u >> 6) & 0x3F));
		o[2] = (char)(0x80 | (u & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (u >> 18));
	o[1] = (char)(0x80 | ((u >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((u >> 6) & 0x3F));
	o[3] = (char)(0x80 | (u & 0x3F));
	return 4;
}

/* Four hex digits at s[i..]; -1 if not. */
static long hex4(const char *s, uint32_t i, uint32_t len)
{
	if (i + 4 > len)
		return -1;
	long v = 0;
	for (int k = 0; k < 4; k++) {
		int h = hexval((unsigned char)s[i + (uint32_t)k]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* A quoted string starting at `q` (the quote). Raw strings keep every
 * backslash, which is what regular expressions want. The decoded bytes go
 * to the pool: at most as many as the source span, plus a NUL. */
static int lex_string(scrm_xcomp *cp, uint32_t start, uint32_t q, bool raw)
{
	const char *s = cp->src;
	char quote = s[q];
	uint32_t i = q + 1;
	uint32_t end = i;
	while (end < cp->len && s[end] != quote && s[end] != '\n') {
		if (s[end] == '\\' && !raw && end + 1 < cp->len && s[end + 1] != '\n')
			end++;
		end++;
	}
	if (end >= cp->len || s[end] != quote)
		return scrm__xcomp_error(cp, SCRM_PARSE, start,
					 "unterminated string: expected a closing %c before the end "
					 "of the %s", quote, end >= cp->len ? "input" : "line");
	char *out = scrm__xarena_alloc(&cp->e->pool, end - i + 1);
	if (!out)
		return scrm__xcomp_error(cp, SCRM_NOMEM, start, "out of memory");
	size_t n = 0;
	while (i < end) {
		char c = s[i];
		if (c != '\\' || raw) {
			out[n++] = c;
			i++;
			continue;
		}
		uint32_t esc = i;
		char e = s[i + 1];
		i += 2;
		switch (e) {
		case '\\': out[n++] = '\\'; break;
		case '"': out[n++] = '"'; break;
		case '\'': out[n++] = '\''; break;
		case '/': out[n++] = '/'; break;
		case 'n': out[n++] = '\n'; break;
		case 'r': out[n++] = '\r'; break;
		case 't': out[n++] = '\t'; break;
		case 'b': out[n++] = '\b'; break;
		case 'f': out[n++] = '\f'; break;
		case 'u': {
			long u = hex4(s, i, end);
			if (u < 0)
				return scrm__xcomp_error(cp, SCRM_PARSE, esc,
							 "expected 4 hex digits after \\u");
			i += 4;
			if (u >= 0xD800 && u <= 0xDBFF) {
				long lo = (i + 1 < end && s[i] == '\\' && s[i + 1] == 'u')
						  ? hex4(s, i + 2, end) : -1;
				if (lo < 0xDC00 || lo > 0xDFFF)
					return scrm__xcomp_error(cp, SCRM_INVALID, esc,
								 "unpaired surrogate in \\u escape");
				i += 6;
				u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
			} else if (u >= 0xDC00 && u <= 0xDFFF) {
				return scrm__xcomp_error(cp, SCRM_INVALID, esc,
							 "unpaired surrogate in \\u escape");
			}
			/* A 6- or 12-byte escape never yields more than 4 bytes. */
			n += put_utf8(out + n, (uint32_t)u);
			break;
		}
		default:
			return scrm__xcomp_error(cp, SCRM_PARSE, esc,
						 "unknown escape '\\%c' (write \\\\ for a backslash, or "
						 "use a raw string r\"...\")",
						 (unsigned char)e >= 0x20 && (unsigned char)e < 0x7F ? e : '?');
		}
	}
	out[n] = '\0';
	cp->tok.type = SCRM_XT_STR;
	cp->tok.s = out;
	cp->tok.n = (uint32_t)n;
	cp->lexpos = end + 1;
	return SCRM_OK;
}

/* Duration units, longest first so "ms" wins over "m". */
static const struct {
	const char *name;
	size_t len;
	int64_t ms;
} units[] = {
	{"ms", 2, 1}, {"s", 1, 1000}, {"m", 1, 60000}, {"h", 1, 3600000}, {"d", 1, 86400000},
};

static int lex_number(scrm_xcomp *cp, uint32_t start)
{
	const char *s = cp->src;
	uint32_t i = start;
	uint64_t total = 0;
	bool dur = false;
	for (;;) {
		uint32_t dstart = i;
		uint64_t v = 0;
		bool big = false;
		while (i < cp->len && s[i] >= '0' && s[i] <= '9') {
			unsigned d = (unsigned)(s[i] - '0');
			if (v > (UINT64_C(9223372036854775808) - d) / 10)
				big = true;
			else
				v = v * 10 + d;
			i++;
		}
		if (i < cp->len && s[i] == '.' && i + 1 < cp->len && s[i + 1] >= '0' && s[i + 1] <= '9')
			return scrm__xcomp_error(cp, SCRM_PARSE, start,
						 "floating-point numbers are not supported "
						 "(use integers, e.g. money in minor units)");
		if (i < cp->len && is_ident_start((unsigned char)s[i])) {
			uint32_t ustart = i;
			while (i < cp->len && is_ident((unsigned char)s[i]) &&
			       !(s[i] >= '0' && s[i] <= '9'))
				i++;
			size_t ulen = i - ustart;
			int64_t mult = 0;
			for (size_t k = 0; k < SCRM_ARRAY_LEN(units); k++)
				if (units[k].len == ulen && memcmp(units[k].name, s + ustart, ulen) == 0)
					mult = units[k].ms;
			if (!mult)
				return scrm__xcomp_error(cp, SCRM_PARSE, ustart,
							 "unknown duration unit '%.*s' (use ms, s, m, h or d)",
							 (int)(ulen > 16 ? 16 : ulen), s + ustart);
			if (big || v > (uint64_t)INT64_MAX / (uint64_t)mult ||
			    total + v * (uint64_t)mult > (uint64_t)INT64_MAX)
				return scrm__xcomp_error(cp, SCRM_RANGE, start, "duration out of range");
			total += v * (uint64_t)mult;
			dur = true;
			if (i < cp->len && s[i] >= '0' && s[i] <= '9')
				continue; /* compound duration such as 1h30m */
			break;
		}
		if (dur)
			return scrm__xcomp_error(cp, SCRM_PARSE, dstart,
						 "expected a duration unit after '%.*s'",
						 (int)(i - dstart > 20 ? 20 : i - dstart), s + dstart);
		if (big)
			return scrm__xcomp_error(cp, SCRM_RANGE, start, "integer literal out of range");
		total = v;
		break;
	}
	cp->tok.type = SCRM_XT_INT;
	cp->tok.mag = total;
	cp->tok.dur = dur;
	cp->lexpos = i;
	return SCRM_OK;
}

static const struct {
	const char *word;
	int type;
} keywords[] = {
	{"true", SCRM_XT_TRUE}, {"false", SCRM_XT_FALSE}, {"null", SCRM_XT_NULL}, {"in", SCRM_XT_IN},
};

int scrm__xlex_next(scrm_xcomp *cp)
{
	const char *s = cp->src;
	uint32_t i = cp->lexpos;
	cp->prev_end = cp->tok.end;
	for (;;) {
		while (i < cp->len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
			i++;
		if (i + 1 < cp->len && s[i] == '/' && s[i + 1] == '/') {
			while (i < cp->len && s[i] != '\n')
				i++;
			continue;
		}
		break;
	}
	memset(&cp->tok, 0, sizeof cp->tok);
	cp->tok.start = i;
	if (i >= cp->len) {
		cp->tok.type = SCRM_XT_END;
		cp->tok.end = i;
		cp->lexpos = i;
		return SCRM_OK;
	}
	int rc = SCRM_OK;
	unsigned char c = (unsigned char)s[i];
	unsigned char d = i + 1 < cp->len ? (unsigned char)s[i + 1] : 0;
	int t = -1, w = 1;
	switch (c) {
	case '(': t = SCRM_XT_LPAREN; break;
	case ')': t = SCRM_XT_RPAREN; break;
	case '[': t = SCRM_XT_LBRACK; break;
	case ']': t = SCRM_XT_RBRACK; break;
	case ',': t = SCRM_XT_COMMA; break;
	case '.': t = SCRM_XT_DOT; break;
	case ':': t = SCRM_XT_COLON; break;
	case '+': t = SCRM_XT_PLUS; break;
	case '-': t = SCRM_XT_MINUS; break;
	case '*': t = SCRM_XT_STAR; break;
	case '/': t = SCRM_XT_SLASH; break;
	case '%': t = SCRM_XT_PERCENT; break;
	case '?': t = d == '?' ? (w = 2, SCRM_XT_QQ) : SCRM_XT_QUEST; break;
	case '<': t = d == '=' ? (w = 2, SCRM_XT_LE) : SCRM_XT_LT; break;
	case '>': t = d == '=' ? (w = 2, SCRM_XT_GE) : SCRM_XT_GT; break;
	case '!': t = d == '=' ? (w = 2, SCRM_XT_NE) : SCRM_XT_NOT; break;
	case '=':
		if (d != '=')
			return scrm__xcomp_error(cp, SCRM_PARSE, i, "expected '==' but found '='");
		t = SCRM_XT_EQ, w = 2;
		break;
	case '&':
		if (d != '&')
			return scrm__xcomp_error(cp, SCRM_PARSE, i, "expected '&&' but found '&'");
		t = SCRM_XT_AND, w = 2;
		break;
	case '|':
		if (d != '|')
			return scrm__xcomp_error(cp, SCRM_PARSE, i, "expected '||' but found '|'");
		t = SCRM_XT_OR, w = 2;
		break;
	default: break;
	}
	if (t >= 0) {
		cp->tok.type = t;
		cp->lexpos = i + (uint32_t)w;
	} else if (c == '"' || c == '\'') {
		rc = lex_string(cp, i, i, false);
	} else if ((c == 'r' || c == 'R') && (d == '"' || d == '\'')) {
		rc = lex_string(cp, i, i + 1, true);
	} else if (c >= '0' && c <= '9') {
		rc = lex_number(cp, i);
	} else if (is_ident_start(c)) {
		uint32_t j = i;
		while (j < cp->len && is_ident((unsigned char)s[j]))
			j++;
		cp->tok.type = SCRM_XT_IDENT;
		for (size_t k = 0; k < SCRM_ARRAY_LEN(keywords); k++)
			if (strlen(keywords[k].word) == j - i &&
			    memcmp(keywords[k].word, s + i, j - i) == 0)
				cp->tok.type = keywords[k].type;
		cp->lexpos = j;
	} else {
		uint32_t u;
		int k = scrm__xutf8_seq((const unsigned char *)s + i, cp->len - i, &u);
		return scrm__xcomp_error(cp, SCRM_PARSE, i,
					 "unexpected character '%.*s' (expected an operator, a "
					 "literal, a field name or a function call)",
					 k ? k : 1, s + i);
	}
	cp->tok.end = cp->lexpos;
	return rc;
}

void scrm__xtok_describe(const scrm_xcomp *cp, char *buf, size_t cap)
{
	const scrm_xtok *t = &cp->tok;
	if (t->type == SCRM_XT_END) {
		snprintf(buf, cap, "end of input");
		return;
	}
	/* Quote the token's source text, cut at a character boundary. */
	uint32_t n = t->end - t->start, max = 24;
	bool cut = false;
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)cp->src[t->start + n] & 0xC0) == 0x80)
			n--;
		cut = true;
	}
	snprintf(buf, cap, "'%.*s%s'", (int)n, cp->src + t->start, cut ? "..." : "");
}
