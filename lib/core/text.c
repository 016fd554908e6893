/*
 * Text helpers every engine needs at its boundary: JSON parsing with a
 * position in the error, strict integer extraction, UTF-8 validation and
 * RFC 3339 timestamps.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core-int.h"

int scrm__json_parse(scrm_db *db, const char *text, const char *what, cJSON **root)
{
	*root = NULL;
	if (!text)
		return scrm__error(db, SCRM_MISUSE, "%s: JSON text is NULL", what);
	size_t n = strlen(text);
	if (!scrm__utf8_valid(text, n))
		return scrm__error(db, SCRM_INVALID, "%s: JSON text is not valid UTF-8", what);
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
	if (!j) {
		const char *at = end ? end : cJSON_GetErrorPtr();
		if (!at)
			return scrm__error(db, SCRM_NOMEM, "%s: out of memory parsing JSON", what);
		int line = 1, col = 1;
		for (const char *p = text; p < at && *p; p++) {
			if (*p == '\n') {
				line++;
				col = 1;
			} else if (((unsigned char)*p & 0xC0) != 0x80) {
				col++;
			}
		}
		return scrm__error(db, SCRM_PARSE, "%s: malformed JSON at line %d, column %d", what,
				   line, col);
	}
	*root = j;
	return SCRM_OK;
}

int scrm__json_only(scrm_db *db, const cJSON *obj, const char *what, const char *const *allowed)
{
	for (const cJSON *it = obj ? obj->child : NULL; it; it = it->next) {
		bool ok = false;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = it->string && strcmp(it->string, *a) == 0;
		if (!ok)
			return scrm__error(db, SCRM_INVALID, "%s: unknown field '%s'", what,
					   it->string ? it->string : "?");
	}
	return SCRM_OK;
}

int scrm__json_int(scrm_db *db, const cJSON *item, const char *what, int64_t min, int64_t max,
		   int64_t *out)
{
	if (!cJSON_IsNumber(item))
		return scrm__error(db, SCRM_INVALID, "%s must be an integer", what);
	double d = item->valuedouble;
	/* 2^63 as a double; doubles above 2^53 are not exact but bound-checking still holds. */
	if (!isfinite(d) || d != floor(d) || d < -9223372036854775808.0 ||
	    d >= 9223372036854775808.0)
		return scrm__error(db, SCRM_INVALID, "%s must be an integer", what);
	int64_t v = (int64_t)d;
	if (v < min || v > max)
		return scrm__error(db, SCRM_RANGE, "%s = %lld is outside %lld..%lld", what,
				   (long long)v, (long long)min, (long long)max);
	*out = v;
	return SCRM_OK;
}

bool scrm__utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str, *e = s + n;
	while (s < e) {
		unsigned c = *s;
		if (c < 0x80) {
			if (c == 0 || (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
				return false;
			s++;
			continue;
		}
		int len;
		unsigned min;
		if ((c & 0xE0) == 0xC0) {
			len = 2;
			min = 0x80;
			c &= 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3;
			min = 0x800;
			c &= 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			len = 4;
			min = 0x10000;
			c &= 0x07;
		} else {
			return false;
		}
		if (e - s < len)
			return false;
		for (int i = 1; i < len; i++) {
			if ((s[i] & 0xC0) != 0x80)
				return false;
			c = (c << 6) | (s[i] & 0x3F);
		}
		if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
			return false;
		s += len;
	}
	return true;
}

int scrm__utf8_clip(const char *s, int max)
{
	int n = 0;
	while (n < max && s[n])
		n++;
	if (s[n] == '\0')
		return n;
	/* Cut before a continuation byte's lead so no character is split. */
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

int64_t scrm__days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

bool scrm__parse_time(const char *s, int64_t *ms)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
	const char *p = s;
	if (!s || !digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
	    !digits(&p, 2, &d))
		return false;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
		return false;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo == 2 && d == 29 && !leap)
		return false;
	int64_t off_min = 0;
	if (*p) {
		if (*p != 'T' && *p != 't' && *p != ' ')
			return false;
		p++;
		if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
			return false;
		if (*p == ':') {
			p++;
			if (!digits(&p, 2, &sec))
				return false;
		}
		if (h > 23 || mi > 59 || sec > 60)
			return false;
		if (*p == '.') {
			p++;
			int nd = 0;
			while (*p >= '0' && *p <= '9') {
				if (nd < 3)
					frac = frac * 10 + (*p - '0');
				nd++;
				p++;
			}
			if (nd == 0)
				return false;
			for (; nd < 3; nd++)
				frac *= 10;
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1, oh, om;
			if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 ||
			    om > 59)
				return false;
			off_min = sign * (oh * 60 + om);
		} else {
			return false;
		}
		if (*p)
			return false;
	}
	int64_t days = scrm__days_from_civil(y, (unsigned)mo, (unsigned)d);
	*ms = ((days * 24 + h) * 60 + mi - off_min) * 60000 + (int64_t)sec * 1000 + frac;
	return true;
}

void scrm__format_time(int64_t ms, char *buf, size_t size)
{
	int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
	int64_t rem = ms - days * 86400000;
	/* civil_from_days (Howard Hinnant) */
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	snprintf(buf, size, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
		 (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
		 (int)(rem % 1000));
}
