/*
 * Normalizers: turn a raw identifier value into the one stored form (phone
 * to E.164, email lower-cased, trimmed text, PCRE2 extraction) and apply
 * the kind's blocklist. Nothing here allocates.
 */
#include <stdio.h>
#include <string.h>

#include "identity-int.h"

static int reject(char *why, size_t n, const char *reason)
{
	snprintf(why, n, "%s", reason);
	return SCRM_INVALID;
}

/* Trim ASCII whitespace and U+3000 (ideographic space) at both ends. */
static void trim(const char **s, size_t *n)
{
	const char *p = *s, *e = p + *n;
	for (;;) {
		if (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
			p++;
		else if (e - p >= 3 && memcmp(p, "\xE3\x80\x80", 3) == 0)
			p += 3;
		else
			break;
	}
	for (;;) {
		if (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
			e--;
		else if (e - p >= 3 && memcmp(e - 3, "\xE3\x80\x80", 3) == 0)
			e -= 3;
		else
			break;
	}
	*s = p;
	*n = (size_t)(e - p);
}

/* Chinese national number (after +86): mobile 1[3-9]xxxxxxxxx, or a
 * landline of area code + subscriber without the trunk 0 (9-11 digits;
 * Beijing's area code 10 is the one that starts with 1). */
static bool cn_national_ok(const char *d, size_t n)
{
	if (n == 11 && d[0] == '1')
		return d[1] >= '3' && d[1] <= '9';
	if (d[0] == '1') /* Beijing, area code 10: 10 + 8 digits */
		return n == 10 && d[1] == '0';
	return n >= 9 && n <= 11 && d[0] >= '2' && d[0] <= '9';
}

static int norm_phone(const char *s, size_t n, char *out, char *why, size_t wn)
{
	char d[32];
	size_t nd = 0;
	bool plus = false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c >= '0' && c <= '9') {
			if (nd >= 20)
				return reject(why, wn, "too many digits for a phone number");
			d[nd++] = c;
		} else if (c == '+' && nd == 0 && !plus) {
			plus = true;
		} else if (c != ' ' && c != '-' && c != '(' && c != ')' && c != '.') {
			return reject(why, wn, "not a phone number (unexpected character)");
		}
	}
	d[nd] = '\0';
	const char *p = d;
	if (!plus && nd > 2 && d[0] == '0' && d[1] == '0') { /* 00 international prefix */
		plus = true;
		p += 2;
		nd -= 2;
	}
	if (plus) {
		if (nd >= 2 && p[0] == '8' && p[1] == '6') {
			if (!cn_national_ok(p + 2, nd - 2))
				return reject(why, wn, "not a plausible +86 number");
			sprintf(out, "+%s", p);
			return SCRM_OK;
		}
		if (nd < 8 || nd > 15 || p[0] == '0')
			return reject(why, wn, "not a plausible E.164 number");
		sprintf(out, "+%s", p);
		return SCRM_OK;
	}
	if (nd == 13 && p[0] == '8' && p[1] == '6' && p[2] == '1' && cn_national_ok(p + 2, 11)) {
		sprintf(out, "+%s", p);
		return SCRM_OK;
	}
	if (nd == 11 && p[0] == '1' && cn_national_ok(p, 11)) {
		sprintf(out, "+86%s", p);
		return SCRM_OK;
	}
	if (nd >= 10 && nd <= 12 && p[0] == '0' && cn_national_ok(p + 1, nd - 1)) {
		sprintf(out, "+86%s", p + 1); /* drop the trunk 0 of a landline */
		return SCRM_OK;
	}
	return reject(why, wn, "not a plausible phone number");
}

static int norm_email(const char *s, size_t n, char *out, char *why, size_t wn)
{
	const char *at = NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '@') {
			if (at)
				return reject(why, wn, "email has more than one '@'");
			at = s + i;
		} else if (c <= ' ' || c == 0x7f) {
			return reject(why, wn, "email contains a space or control character");
		}
		out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	out[n] = '\0';
	if (!at)
		return reject(why, wn, "email has no '@'");
	const char *dom = at + 1, *end = s + n;
	if (at == s || dom == end)
		return reject(why, wn, "email has an empty local part or domain");
	if (*dom == '.' || end[-1] == '.' || !memchr(dom, '.', (size_t)(end - dom)))
		return reject(why, wn, "email domain is not a dotted name");
	for (const char *p = dom; p + 1 < end; p++)
		if (p[0] == '.' && p[1] == '.')
			return reject(why, wn, "email domain has an empty label");
	return SCRM_OK;
}

static int norm_pattern(pcre2_match_data *md, pcre2_match_context *mctx, const id_kind *k,
			const char *s, size_t n, char *out, char *why, size_t wn)
{
	int m = pcre2_match(k->pattern, (PCRE2_SPTR)s, n, 0, 0, md, mctx);
	if (m < 0)
		return reject(why, wn, m == PCRE2_ERROR_NOMATCH ? "does not match the kind's pattern"
								 : "pattern match limit reached");
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
	int g = m > 1 && ov[2] != PCRE2_UNSET ? 1 : 0;
	/* \K in a lookahead (PCRE2 before 10.38) can end a match before it starts. */
	if (ov[2 * g + 1] <= ov[2 * g])
		return reject(why, wn, "pattern extracted an empty value");
	size_t len = ov[2 * g + 1] - ov[2 * g];
	memcpy(out, s + ov[2 * g], len);
	out[len] = '\0';
	return SCRM_OK;
}

/* Checks every value passes and the trim; *s, *n: what the normalizer sees. */
static int prepare(const char *raw, const char **s, size_t *n, char *why, size_t wn)
{
	*s = raw;
	*n = strlen(raw);
	if (*n > 4 * ID_VALUE_MAX)
		return reject(why, wn, "value too long");
	/* Before the UTF-8 check, which refuses control characters too: say
	 * what is wrong. Blanks are allowed where trim removes them. */
	for (size_t i = 0; i < *n; i++) {
		unsigned char c = (unsigned char)raw[i];
		if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
			return reject(why, wn, "contains a control character");
	}
	if (!scrm__utf8_valid(raw, *n))
		return reject(why, wn, "not valid UTF-8 text");
	trim(s, n);
	if (*n == 0)
		return reject(why, wn, "empty");
	if (*n > ID_VALUE_MAX)
		return reject(why, wn, "value too long");
	for (size_t i = 0; i < *n; i++)
		if ((unsigned char)(*s)[i] < 0x20)
			return reject(why, wn, "contains a control character");
	return SCRM_OK;
}

static int apply(pcre2_match_data *md, pcre2_match_context *mctx, const id_kind *k,
		 const char *s, size_t n, char *out, char *why, size_t wn)
{
	switch (k->norm) {
	case NORM_PHONE: return norm_phone(s, n, out, why, wn);
	case NORM_EMAIL: return norm_email(s, n, out, why, wn);
	case NORM_PATTERN: return norm_pattern(md, mctx, k, s, n, out, why, wn);
	case NORM_CASEFOLD:
		for (size_t i = 0; i < n; i++)
			out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
		out[n] = '\0';
		return SCRM_OK;
	case NORM_TRIM:
		memcpy(out, s, n);
		out[n] = '\0';
		return SCRM_OK;
	}
	return reject(why, wn, "unknown normalizer");
}

int id__normalize(id_state *st, const id_kind *k, const char *raw, char *out, char *why,
		  size_t wn)
{
	const char *s;
	size_t n;
	int rc = prepare(raw, &s, &n, why, wn);
	if (rc)
		return rc;
	/* Junk is reported as blocked even where the normalizer would also
	 * reject it: the caller learns it is junk, not a typo. */
	for (size_t i = 0; i < k->nblock; i++)
		if (strlen(k->block[i]) == n && memcmp(s, k->block[i], n) == 0)
			return reject(why, wn, "blocked");
	if ((rc = apply(st->md, st->mctx, k, s, n, out, why, wn)))
		return rc;
	for (size_t i = 0; i < k->nblock; i++)
		if (strcmp(out, k->block[i]) == 0)
			return reject(why, wn, "blocked");
	for (size_t i = 0; i < k->nblock_re; i++) {
		int m = pcre2_match(k->block_re[i], (PCRE2_SPTR)out, strlen(out), 0, 0, st->md,
				    st->mctx);
		if (m >= 0 || m == PCRE2_ERROR_MATCHLIMIT || m == PCRE2_ERROR_DEPTHLIMIT ||
		    m == PCRE2_ERROR_HEAPLIMIT)
			return reject(why, wn, "blocked");
	}
	return SCRM_OK;
}

int id__normalize_block(pcre2_match_data *md, pcre2_match_context *mctx, const id_kind *k,
			const char *entry, char *out)
{
	const char *s;
	size_t n;
	char why[96];
	int rc = prepare(entry, &s, &n, why, sizeof why);
	return rc ? rc : apply(md, mctx, k, s, n, out, why, sizeof why);
}
