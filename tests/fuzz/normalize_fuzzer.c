/*
 * Fuzz target for the identifier normalizers and kind definitions, through
 * the public API only. Every input runs inside a batch that is rolled back,
 * so each one starts from the same database. Without SCRM_LIBFUZZER a
 * main() runs files or directories of inputs (the corpus is a test).
 *
 * Input: records separated by NUL bytes (a C caller cannot pass a NUL
 * inside a value: it ends the string). The first byte of the input picks
 * the mode:
 *   < 0xE0  each record is <kind byte><value>: the value is checked as one
 *           of the shipped kinds or a few custom ones (see kinds[]);
 *   0xE0-0xFE  a kind is built with cJSON from the records: normalizer
 *           (low bits of the mode byte), pattern, blocklist entries and
 *           block patterns ('\n'-separated), then values checked against it
 *           and against its twin without blocklists;
 *   0xFF    "<kind definition JSON>\n<value>\n<value>...", raw.
 *
 * Invariants: normalizing is idempotent (the stored form, observed again,
 * gives the same customer); phones are E.164 built from the input's digits;
 * emails are the trimmed input lower-cased with one '@' and a dotted
 * domain; casefold/trim outputs are the trimmed input (lower-cased); a
 * pattern extracts a substring of the input; all outputs are 1..256 bytes
 * of UTF-8 without control characters; a blocklist only ever refuses (and
 * refuses every value that normalizes like an entry); rejected or blocked
 * values are never stored (observe refuses or reports them, resolve says
 * invalid, no row is added); every error has a non-empty UTF-8 message;
 * nothing of a rolled-back kind definition survives, in the database or in
 * the handle's kind cache.
 *
 * libFuzzer: configure with -Dfuzzing=true, then e.g.
 *   cp -r tests/fuzz/corpus/normalize /tmp/normalize-corpus
 *   build/tests/fuzz/normalize_libfuzzer -max_total_time=300 -timeout=10 \
 *       -dict=tests/fuzz/normalize.dict /tmp/normalize-corpus
 * and copy each crash input, minimised (-minimize_crash=1), into
 * tests/fuzz/corpus/normalize/.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "scrm/identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a finding: crash so the fuzzer records it. */
#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "normalize_fuzzer: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                         \
			abort();                                                          \
		}                                                                         \
	} while (0)

#define VALUE_MAX 256 /* bytes of a stored value (identity.h) */
#define MAX_RECORDS 8
#define REOPEN_EVERY 20000

enum norm { N_TRIM, N_CASEFOLD, N_PHONE, N_EMAIL, N_PATTERN };
static const char *const norm_names[] = {"trim", "casefold", "phone", "email", "pattern"};

typedef struct kind_info {
	const char *name;
	enum norm norm;
	const char *twin;         /* same normalizer without blocklists, or NULL */
	const char *const *block; /* NULL-terminated exact entries, or NULL */
} kind_info;

/* Shipped kinds (lib/identity/schema.c) and their junk list. */
static const char *const junk[] = {"null", "NULL", "Null", "none", "None", "undefined",
				   "unknown", "N/A", "n/a", "-", "0", "00000000000", NULL};
static const char *const fold_block[] = {"test", NULL};

static const kind_info kinds[] = {
	{"wechat_unionid", N_TRIM, "fz_trim0", junk},
	{"member_card", N_TRIM, "fz_trim0", junk},
	{"phone", N_PHONE, "fz_phone0", junk},
	{"email", N_EMAIL, "fz_email0", junk},
	{"wecom_external_userid", N_TRIM, "fz_trim0", junk},
	{"wechat_openid", N_TRIM, "fz_trim0", junk},
	{"douyin_openid", N_TRIM, "fz_trim0", junk},
	{"tmall_buyer_nick", N_TRIM, "fz_trim0", junk},
	{"youzan_fans_id", N_TRIM, "fz_trim0", junk},
	{"fz_fold", N_CASEFOLD, "fz_fold0", fold_block},
	{"fz_card", N_PATTERN, NULL, NULL},
	{"fz_order", N_PATTERN, NULL, NULL},
	{"fz_blocked", N_TRIM, "fz_trim0", NULL},
	{"fz_phone0", N_PHONE, NULL, NULL},
	{"fz_email0", N_EMAIL, NULL, NULL},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* Registered at open; an anchor kind keeps observations usable so that a
 * rejected value shows up in the report instead of failing the call. */
static const char *const custom[] = {
	"{\"name\":\"fz_fold\",\"normalizer\":\"casefold\",\"blocklist\":[\"test\"],"
	"\"block_patterns\":[\"^x+$\"]}",
	"{\"name\":\"fz_card\",\"normalizer\":\"pattern\",\"limit\":1,"
	"\"pattern\":\"^(?:VIP-?)?(\\\\d{4,12})$\"}",
	"{\"name\":\"fz_order\",\"normalizer\":\"pattern\",\"pattern\":\"[A-Z]{2}\\\\d+|(\\\\p{Han}+)\"}",
	"{\"name\":\"fz_blocked\",\"normalizer\":\"trim\",\"block_patterns\":[\"^(a|aa)+$\",\"\\\\s\"]}",
	"{\"name\":\"fz_trim0\",\"normalizer\":\"trim\"}",
	"{\"name\":\"fz_fold0\",\"normalizer\":\"casefold\"}",
	"{\"name\":\"fz_phone0\",\"normalizer\":\"phone\"}",
	"{\"name\":\"fz_email0\",\"normalizer\":\"email\"}",
	"{\"name\":\"fz_anchor\",\"normalizer\":\"trim\"}",
};

static scrm_db *db;
static char *kinds_before;
static char *tables_before;
static unsigned long runs;

#define T0 INT64_C(1767225600000)
static int64_t clock_fn(void *ud)
{
	(void)ud;
	return T0;
}

/* ------------------------------------------------------------ text checks */

static bool utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p;
		int n;
		unsigned min;
		if (c < 0x80) {
			p++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			n = 1, min = 0x80, c &= 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2, min = 0x800, c &= 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3, min = 0x10000, c &= 0x07;
		} else {
			return false;
		}
		p++;
		for (int i = 0; i < n; i++, p++) {
			if ((*p & 0xC0) != 0x80)
				return false;
			c = (c << 6) | (*p & 0x3F);
		}
		if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
			return false;
	}
	return true;
}

/* The last call failed with rc: its message must say something, in UTF-8. */
static void check_error(int rc)
{
	CHECK(rc != SCRM_OK);
	CHECK(scrm_errcode(db) == rc);
	const char *m = scrm_errmsg(db);
	CHECK(m != NULL && m[0] != '\0');
	CHECK(strcmp(m, "not an error") != 0);
	CHECK(utf8_ok(m));
}

/* Reference trim: ASCII blanks and U+3000 at both ends (identity.h). */
static void trim_ref(const char *s, const char **start, size_t *len)
{
	const char *p = s, *e = s + strlen(s);
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
	*start = p;
	*len = (size_t)(e - p);
}

static bool same_lower(const char *a, size_t n, const char *b)
{
	if (strlen(b) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = a[i] >= 'A' && a[i] <= 'Z' ? (char)(a[i] + 32) : a[i];
		if (c != b[i])
			return false;
	}
	return true;
}

/* The stored form `out` of `raw` has the shape its normalizer promises. */
static void check_output(enum norm norm, const char *raw, const char *out)
{
	size_t n = strlen(out);
	CHECK(n >= 1 && n <= VALUE_MAX);
	CHECK(utf8_ok(out));
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
	const char *t;
	size_t tn;
	trim_ref(raw, &t, &tn);
	switch (norm) {
	case N_TRIM:
		CHECK(tn == n && memcmp(t, out, n) == 0);
		break;
	case N_CASEFOLD:
		CHECK(same_lower(t, tn, out));
		break;
	case N_EMAIL: {
		CHECK(same_lower(t, tn, out));
		const char *at = strchr(out, '@');
		CHECK(at && at > out && !strchr(at + 1, '@'));
		const char *dom = at + 1;
		CHECK(*dom && *dom != '.' && out[n - 1] != '.' && strchr(dom, '.'));
		CHECK(!strstr(dom, ".."));
		for (size_t i = 0; i < n; i++)
			CHECK((unsigned char)out[i] > ' ' && !(out[i] >= 'A' && out[i] <= 'Z'));
		break;
	}
	case N_PHONE: {
		/* E.164: '+', 8-15 digits, no leading zero. */
		CHECK(out[0] == '+' && n >= 9 && n <= 16 && out[1] != '0');
		for (size_t i = 1; i < n; i++)
			CHECK(out[i] >= '0' && out[i] <= '9');
		/* Built from the input's digits: kept, or after an international
		 * "00", or "86" put in front of a national number (without its
		 * trunk 0). */
		char d[VALUE_MAX + 1];
		size_t nd = 0;
		for (size_t i = 0; i < tn; i++)
			if (t[i] >= '0' && t[i] <= '9')
				d[nd++] = t[i];
		d[nd] = '\0';
		const char *o = out + 1;
		bool ok = strcmp(o, d) == 0 || (nd > 2 && d[0] == '0' && d[1] == '0' &&
						strcmp(o, d + 2) == 0);
		if (!ok && strncmp(o, "86", 2) == 0)
			ok = strcmp(o + 2, d) == 0 || (d[0] == '0' && strcmp(o + 2, d + 1) == 0);
		if (!ok)
			fprintf(stderr, "phone '%s' -> '%s'\n", raw, out);
		CHECK(ok);
		break;
	}
	case N_PATTERN:
		/* The first group or the whole match: a piece of the trimmed input. */
		CHECK(n <= tn && memmem(t, tn, out, n) != NULL);
		break;
	}
}

/* -------------------------------------------------------------- database */

static char *tables_json(void)
{
	char *info = NULL;
	CHECK(scrm_db_info_json(db, &info) == SCRM_OK);
	cJSON *j = cJSON_Parse(info);
	CHECK(j != NULL);
	char *t = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "tables"));
	CHECK(t != NULL);
	cJSON_Delete(j);
	scrm_free(info);
	return t;
}

static void open_db(void)
{
	scrm_db_options *o = NULL;
	CHECK(scrm_db_options_new(&o) == SCRM_OK);
	CHECK(scrm_db_options_set_clock(o, clock_fn, NULL) == SCRM_OK);
	CHECK(scrm_db_open(":memory:", o, &db) == SCRM_OK);
	scrm_db_options_free(o);
	for (size_t i = 0; i < sizeof custom / sizeof custom[0]; i++)
		CHECK(scrm_identity_kind_set(db, custom[i]) == SCRM_OK);
	CHECK(scrm_identity_kinds_json(db, &kinds_before) == SCRM_OK);
	tables_before = tables_json();
}

static void close_db(void)
{
	scrm_free(kinds_before);
	cJSON_free(tables_before);
	kinds_before = NULL;
	tables_before = NULL;
	scrm_db_close(db);
	db = NULL;
}

/* Normalize; on success *out is the stored form (scrm_free). */
static int normalize(const char *kind, const char *value, char **out)
{
	*out = (char *)&out; /* must be reset on failure */
	int rc = scrm_identity_normalize(db, kind, value, out);
	CHECK(rc == SCRM_OK || rc == SCRM_INVALID);
	if (rc) {
		CHECK(*out == NULL);
		check_error(rc);
	} else {
		CHECK(*out != NULL);
	}
	return rc;
}

static bool report_has(const cJSON *rep, const char *list, const char *kind, const char *value)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(rep, list))
	{
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(it, "kind");
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "value");
		CHECK(cJSON_IsString(k) && cJSON_IsString(v));
		if (strcmp(k->valuestring, kind) == 0 && (!value || strcmp(v->valuestring, value) == 0))
			return true;
	}
	return false;
}

/*
 * Observe `value` as `kind` next to an anchor, inside the caller's batch,
 * on a database holding no customer. rc/out: what normalize said.
 */
static void check_observe(const kind_info *k, const char *value, int rc, const char *out)
{
	const char *kn[2] = {"fz_anchor", k->name}, *vals[2] = {"anchor", value};
	int64_t c = -1, r = -1;
	char *report = NULL;
	char *t0 = rc ? tables_json() : NULL;

	/* Each part in a nested batch (a savepoint) rolled back at its end, so
	 * that a kind defined by the caller's batch stays. */
	CHECK(scrm_db_begin(db) == SCRM_OK);
	/* Alone: stored exactly when normalize accepts it. */
	int orc = scrm_identity_observe(db, "fuzz", 0, kn + 1, vals + 1, 1, &c, &report);
	if (rc) {
		CHECK(orc == SCRM_INVALID);
		check_error(orc);
		CHECK(report == NULL && c == -1);
		char *t1 = tables_json();
		CHECK(strcmp(t0, t1) == 0);
		cJSON_free(t1);
	} else {
		CHECK(orc == SCRM_OK && c >= 1 && report != NULL);
		CHECK(utf8_ok(report));
		cJSON *rep = cJSON_Parse(report);
		CHECK(rep != NULL);
		CHECK(report_has(rep, "attached", k->name, out));
		CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(rep, "outcome")->valuestring,
			     "created") == 0);
		cJSON_Delete(rep);
		scrm_free(report);
		report = NULL;
		CHECK(scrm_identity_resolve(db, k->name, value, &r) == SCRM_OK && r == c);
		if (k->norm != N_PATTERN) {
			/* Idempotent: the stored form names the same customer and
			 * observing it again changes nothing. */
			CHECK(scrm_identity_resolve(db, k->name, out, &r) == SCRM_OK && r == c);
			int64_t c2 = -1;
			const char *again[1] = {out};
			CHECK(scrm_identity_observe(db, "fuzz", 0, kn + 1, again, 1, &c2, &report) ==
			      SCRM_OK);
			CHECK(c2 == c);
			cJSON *rep2 = cJSON_Parse(report);
			CHECK(rep2 != NULL);
			CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(rep2, "outcome")->valuestring,
				     "unchanged") == 0);
			cJSON_Delete(rep2);
			scrm_free(report);
			report = NULL;
		}
	}
	CHECK(scrm_db_rollback(db) == SCRM_OK);
	cJSON_free(t0);

	/* Next to a usable anchor: the call succeeds; a rejected value is
	 * reported (with the reason normalize gave) and resolves to nothing. */
	c = -1;
	CHECK(scrm_db_begin(db) == SCRM_OK);
	CHECK(scrm_identity_observe(db, "fuzz", 0, kn, vals, 2, &c, &report) == SCRM_OK);
	CHECK(c >= 1 && report != NULL && utf8_ok(report));
	cJSON *rep = cJSON_Parse(report);
	CHECK(rep != NULL);
	CHECK(cJSON_GetObjectItemCaseSensitive(rep, "customer")->valuedouble == (double)c);
	int rrc = scrm_identity_resolve(db, k->name, value, &r);
	if (rc) {
		CHECK(report_has(rep, "rejected", k->name, NULL));
		CHECK(!report_has(rep, "attached", k->name, NULL));
		CHECK(rrc == SCRM_INVALID);
		check_error(rrc);
	} else {
		CHECK(report_has(rep, "attached", k->name, out));
		CHECK(rrc == SCRM_OK && r == c);
	}
	CHECK(scrm_identity_resolve(db, "fz_anchor", "anchor", &r) == SCRM_OK && r == c);
	cJSON_Delete(rep);
	scrm_free(report);
	CHECK(scrm_db_rollback(db) == SCRM_OK);
}

/* Check one value of kind k, inside the caller's batch. */
static void check_value(const kind_info *k, const char *value)
{
	char *out, why[512] = "";
	int rc = normalize(k->name, value, &out);
	if (rc == SCRM_OK)
		check_output(k->norm, value, out);
	else
		snprintf(why, sizeof why, "%s", scrm_errmsg(db));

	/* The twin has the same normalizer and no blocklists: blocking only
	 * ever refuses, and refuses every value that normalizes like an entry. */
	if (k->twin) {
		char *out0;
		int rc0 = normalize(k->twin, value, &out0);
		if (rc0 != SCRM_OK) {
			CHECK(rc != SCRM_OK);
		} else if (rc == SCRM_OK) {
			CHECK(strcmp(out, out0) == 0);
		} else {
			CHECK(strstr(why, "blocked") != NULL);
		}
		if (rc0 == SCRM_OK && k->block) {
			for (const char *const *b = k->block; *b; b++) {
				char *bn;
				if (normalize(k->twin, *b, &bn) == SCRM_OK) {
					if (strcmp(bn, out0) == 0)
						CHECK(rc == SCRM_INVALID);
					scrm_free(bn);
				}
			}
		}
		if (rc0 == SCRM_OK)
			scrm_free(out0);
	}

	/* Idempotent: the stored form normalizes to itself. */
	if (rc == SCRM_OK && k->norm != N_PATTERN) {
		char *again;
		int arc = normalize(k->name, out, &again);
		if (arc != SCRM_OK)
			fprintf(stderr, "'%s' -> '%s' -> %s\n", value, out, scrm_errmsg(db));
		CHECK(arc == SCRM_OK);
		CHECK(strcmp(again, out) == 0);
		scrm_free(again);
	}

	/* Nothing is stored by normalize or resolve. */
	int64_t c = -1;
	int rrc = scrm_identity_resolve(db, k->name, value, &c);
	if (rc) {
		CHECK(rrc == SCRM_INVALID);
		check_error(rrc);
	} else {
		CHECK(rrc == SCRM_NOTFOUND);
		check_error(rrc);
	}
	CHECK(c == -1);

	check_observe(k, value, rc, rc ? NULL : out);
	if (rc == SCRM_OK)
		scrm_free(out);
}

/* After the input's batch is rolled back: all as it was. */
static void check_restored(void)
{
	char *now = NULL;
	CHECK(scrm_identity_kinds_json(db, &now) == SCRM_OK);
	CHECK(strcmp(now, kinds_before) == 0);
	scrm_free(now);
	char *t = tables_json();
	CHECK(strcmp(t, tables_before) == 0);
	cJSON_free(t);
	/* And the kind cache: shipped and custom kinds behave as defined. */
	char *out = NULL;
	CHECK(scrm_identity_normalize(db, "phone", "138 0013 8000", &out) == SCRM_OK);
	CHECK(strcmp(out, "+8613800138000") == 0);
	scrm_free(out);
	CHECK(scrm_identity_normalize(db, "fz_card", "VIP-1234", &out) == SCRM_OK);
	CHECK(strcmp(out, "1234") == 0);
	scrm_free(out);
	CHECK(scrm_identity_normalize(db, "fz_dyn", "x", &out) == SCRM_NOTFOUND);
	CHECK(scrm_identity_normalize(db, "fz_dyn0", "x", &out) == SCRM_NOTFOUND);
	int64_t c = 0;
	CHECK(scrm_identity_canonical(db, 1, &c) == SCRM_NOTFOUND);
}

/* ------------------------------------------------------------------ modes */

/* Split buf[0..n) at NUL bytes into at most max C strings. */
static size_t split(char *buf, size_t n, char **rec, size_t max)
{
	size_t k = 0;
	char *p = buf, *e = buf + n;
	while (k < max && p <= e) {
		rec[k++] = p;
		char *z = memchr(p, '\0', (size_t)(e - p));
		if (!z)
			break;
		p = z + 1;
	}
	return k;
}

static void add_list(cJSON *def, const char *name, const char *text, size_t *count,
		     const char **items, size_t max)
{
	cJSON *arr = cJSON_AddArrayToObject(def, name);
	CHECK(arr != NULL);
	const char *p = text;
	while (*p && *count < max) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char *s = strndup(p, len);
		CHECK(s != NULL);
		cJSON_AddItemToArray(arr, cJSON_CreateString(s));
		items[(*count)++] = s;
		p += len + (nl != NULL);
	}
}

/*
 * A kind built from fuzzer-chosen parts: normalizer from the mode byte,
 * rec[0] the pattern, rec[1] blocklist entries, rec[2] block patterns,
 * rec[3..] values.
 */
static void mode_built(unsigned mode, char **rec, size_t nrec)
{
	enum norm norm = (enum norm)(mode % 5);
	/* Sometimes a pattern with another normalizer (must be refused),
	 * sometimes a limit or priority off the edge. */
	bool stray_pattern = (mode & 0x08) && norm != N_PATTERN;
	const char *pattern = nrec > 0 ? rec[0] : "";
	const char *block[9] = {0}, *bpat[9] = {0};
	size_t nblock = 0, nbpat = 0;

	cJSON *def = cJSON_CreateObject(), *twin = cJSON_CreateObject();
	CHECK(def && twin);
	cJSON_AddStringToObject(def, "name", "fz_dyn");
	cJSON_AddStringToObject(twin, "name", "fz_dyn0");
	cJSON_AddStringToObject(def, "normalizer", norm_names[norm]);
	cJSON_AddStringToObject(twin, "normalizer", norm_names[norm]);
	if (norm == N_PATTERN || stray_pattern) {
		cJSON_AddStringToObject(def, "pattern", pattern);
		cJSON_AddStringToObject(twin, "pattern", pattern);
	}
	if (mode & 0x10)
		cJSON_AddNumberToObject(def, "limit", (mode & 0x08) ? -1 : 1);
	if (nrec > 1)
		add_list(def, "blocklist", rec[1], &nblock, block, 8);
	if (nrec > 2)
		add_list(def, "block_patterns", rec[2], &nbpat, bpat, 8);
	char *dj = cJSON_PrintUnformatted(def), *tj = cJSON_PrintUnformatted(twin);
	CHECK(dj && tj);

	CHECK(scrm_db_begin(db) == SCRM_OK);
	int rc = scrm_identity_kind_set(db, dj);
	CHECK(rc == SCRM_OK || rc == SCRM_INVALID || rc == SCRM_RANGE);
	if (rc) {
		check_error(rc);
		CHECK(scrm_identity_kind_get(db, "fz_dyn", &(char *){NULL}) == SCRM_NOTFOUND);
	}
	if (stray_pattern || ((mode & 0x18) == 0x18))
		CHECK(rc != SCRM_OK);
	int trc = rc ? rc : scrm_identity_kind_set(db, tj);
	/* Whatever the definition refused, the twin (a subset) may not add. */
	if (rc == SCRM_OK)
		CHECK(trc == SCRM_OK);
	if (rc == SCRM_OK) {
		char *got = NULL;
		CHECK(scrm_identity_kind_get(db, "fz_dyn", &got) == SCRM_OK);
		cJSON *g = cJSON_Parse(got);
		CHECK(g != NULL);
		CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(g, "normalizer")->valuestring,
			     norm_names[norm]) == 0);
		CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(g, "blocklist")) ==
		      (int)nblock);
		CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(g, "block_patterns")) ==
		      (int)nbpat);
		cJSON_Delete(g);
		/* The stored definition is accepted as it is. */
		CHECK(scrm_identity_kind_set(db, got) == SCRM_OK);
		scrm_free(got);
		block[nblock] = NULL;
		const kind_info k = {"fz_dyn", norm, "fz_dyn0", block};
		for (size_t i = 3; i < nrec; i++)
			check_value(&k, rec[i]);
		/* Block entries themselves never pass (raw or normalized). */
		for (size_t i = 0; i < nblock; i++) {
			char *o;
			if (normalize("fz_dyn", block[i], &o) == SCRM_OK) {
				fprintf(stderr, "blocklist entry '%s' -> '%s'\n", block[i], o);
				CHECK(false);
			}
		}
	}
	CHECK(scrm_db_rollback(db) == SCRM_OK);
	for (size_t i = 0; i < nblock; i++)
		free((void *)block[i]);
	for (size_t i = 0; i < nbpat; i++)
		free((void *)bpat[i]);
	cJSON_free(dj);
	cJSON_free(tj);
	cJSON_Delete(def);
	cJSON_Delete(twin);
}

/* "definition\nvalue\nvalue...": a raw kind definition. */
static void mode_raw(char *text)
{
	char *nl = strchr(text, '\n');
	if (nl)
		*nl = '\0';
	CHECK(scrm_db_begin(db) == SCRM_OK);
	int rc = scrm_identity_kind_set(db, text);
	CHECK(rc == SCRM_OK || rc == SCRM_PARSE || rc == SCRM_INVALID || rc == SCRM_RANGE);
	if (rc) {
		check_error(rc);
	} else {
		cJSON *j = cJSON_Parse(text);
		CHECK(j != NULL);
		const char *name = cJSON_GetObjectItemCaseSensitive(j, "name")->valuestring;
		char *got = NULL;
		CHECK(scrm_identity_kind_get(db, name, &got) == SCRM_OK);
		cJSON *g = cJSON_Parse(got);
		CHECK(g != NULL);
		const char *nn = cJSON_GetObjectItemCaseSensitive(g, "normalizer")->valuestring;
		enum norm norm = N_TRIM;
		while (strcmp(norm_names[norm], nn) != 0)
			norm++;
		cJSON_Delete(g);
		CHECK(scrm_identity_kind_set(db, got) == SCRM_OK);
		scrm_free(got);
		char *n2 = strdup(name);
		CHECK(n2 != NULL);
		cJSON_Delete(j);
		/* Values: each line after the definition. */
		const kind_info k = {n2, norm, NULL, NULL};
		/* The anchor of check_observe() must stay what it is. */
		char *p = nl && strcmp(n2, "fz_anchor") != 0 ? nl + 1 : NULL;
		for (int i = 0; p && i < MAX_RECORDS; i++) {
			char *e = strchr(p, '\n');
			if (e)
				*e = '\0';
			check_value(&k, p);
			p = e ? e + 1 : NULL;
		}
		free(n2);
	}
	CHECK(scrm_db_rollback(db) == SCRM_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	if (!db)
		open_db();
	char *text = malloc(size);
	CHECK(text != NULL);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	unsigned mode = data[0];
	if (mode == 0xFF) {
		mode_raw(text);
	} else if (mode >= 0xE0) {
		char *rec[MAX_RECORDS + 3];
		size_t n = split(text, size - 1, rec, MAX_RECORDS + 3);
		mode_built(mode, rec, n);
	} else {
		/* The mode byte is the first record's kind byte. */
		char *buf = malloc(size + 1);
		CHECK(buf != NULL);
		memcpy(buf, data, size);
		buf[size] = '\0';
		char *rec[MAX_RECORDS];
		size_t n = split(buf, size, rec, MAX_RECORDS);
		CHECK(scrm_db_begin(db) == SCRM_OK);
		for (size_t i = 0; i < n; i++) {
			if (rec[i][0] == '\0')
				continue;
			const kind_info *k = &kinds[(unsigned char)rec[i][0] % NKINDS];
			check_value(k, rec[i] + 1);
		}
		CHECK(scrm_db_rollback(db) == SCRM_OK);
		free(buf);
	}
	check_restored();
	free(text);
	/* In-memory SQLite keeps freed pages: start afresh now and then. */
	if (++runs % REOPEN_EVERY == 0)
		close_db();
	return 0;
}

#define FUZZ_NAME "normalize"
#define FUZZ_AT_EXIT() (db ? close_db() : (void)0)
#include "fuzz_main.h"
