/*
 * Growable output buffer used to build JSON, DOT and trace text. An
 * allocation failure is sticky so builders check once, at the end.
 */
#include <stdio.h>
#include <string.h>

#include "core-int.h"

void scrm__buf_init(scrm_buf *b, scrm_db *db)
{
	memset(b, 0, sizeof *b);
	b->db = db;
}

static bool reserve(scrm_buf *b, size_t extra)
{
	if (b->oom)
		return false;
	if (b->len + extra + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = scrm__realloc(b->db, b->data, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void scrm__buf_append(scrm_buf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void scrm__buf_puts(scrm_buf *b, const char *s)
{
	scrm__buf_append(b, s, strlen(s));
}

void scrm__buf_printf(scrm_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char small[256];
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0) {
		va_end(ap2);
		b->oom = true;
		return;
	}
	if ((size_t)n < sizeof small) {
		va_end(ap2);
		scrm__buf_append(b, small, (size_t)n);
		return;
	}
	if (reserve(b, (size_t)n))
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
	if (!b->oom)
		b->len += (size_t)n;
	va_end(ap2);
}

size_t scrm__fmt_int(char *out, int64_t v)
{
	char tmp[20];
	size_t n = 0, len = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		out[len++] = '-';
	while (n)
		out[len++] = tmp[--n];
	return len;
}

void scrm__buf_int(scrm_buf *b, int64_t v)
{
	char d[21];
	scrm__buf_append(b, d, scrm__fmt_int(d, v));
}

/* Length of the well-formed UTF-8 sequence at p (1-4), or 0 if invalid. */
static int utf8_seq(const unsigned char *p)
{
	int len = *p < 0xC0 ? 0 : *p < 0xE0 ? 2 : *p < 0xF0 ? 3 : *p < 0xF8 ? 4 : 0;
	for (int i = 1; i < len; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	return len && scrm__utf8_valid((const char *)p, (size_t)len) ? len : 0;
}

void scrm__buf_json_str(scrm_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	scrm__buf_append(b, "\"", 1);
	const char *run = s;
	while (*s) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x80) {
			/* Output is always valid UTF-8: a bad byte becomes U+FFFD. */
			int n = utf8_seq((const unsigned char *)s);
			if (n) {
				s += n;
				continue;
			}
			scrm__buf_append(b, run, (size_t)(s - run));
			scrm__buf_append(b, "\\ufffd", 6);
			run = ++s;
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\') {
			s++;
			continue;
		}
		scrm__buf_append(b, run, (size_t)(s - run));
		run = ++s;
		switch (c) {
		case '"': scrm__buf_append(b, "\\\"", 2); break;
		case '\\': scrm__buf_append(b, "\\\\", 2); break;
		case '\n': scrm__buf_append(b, "\\n", 2); break;
		case '\r': scrm__buf_append(b, "\\r", 2); break;
		case '\t': scrm__buf_append(b, "\\t", 2); break;
		default: {
			char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			scrm__buf_append(b, u, 6);
		}
		}
	}
	scrm__buf_append(b, run, (size_t)(s - run));
	scrm__buf_append(b, "\"", 1);
}

int scrm__buf_finish(scrm_buf *b, char **out)
{
	if (!b->oom && !reserve(b, 0))
		b->oom = true;
	if (b->oom) {
		scrm__buf_reset(b);
		*out = NULL;
		return scrm__error(b->db, SCRM_NOMEM, "out of memory building output text");
	}
	b->data[b->len] = '\0'; /* an empty buffer was never terminated */
	*out = b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return SCRM_OK;
}

void scrm__buf_reset(scrm_buf *b)
{
	scrm__free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}
