/*
 * Personal information protection: consent per purpose, erasure of one
 * customer or of every inactive one (set-wise, through the identity
 * engine's erase for identifiers), and masked rendering of identifiers.
 */
#include <stdio.h>
#include <string.h>

#include "profile-int.h"
#include "scrm/identity.h"

#define MEMBERS "(SELECT id FROM identity_customers WHERE root = ?1)"

/* ------------------------------------------------------------ consent */

static int consent_set(scrm_db *db, int64_t customer, const char *purpose, int granted, int64_t at,
		       const char *source)
{
	int64_t root;
	int rc = pf__live_customer(db, customer, &root);
	if (rc)
		return rc;
	sqlite3_stmt *st = scrm__stmt(db, "INSERT INTO profile_consent(customer, purpose, granted, at, "
					  "source) VALUES(?1, ?2, ?3, ?4, ?5)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	sqlite3_bind_text(st, 2, purpose, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, granted != 0);
	sqlite3_bind_int64(st, 4, at);
	if (source)
		sqlite3_bind_text(st, 5, source, -1, SQLITE_STATIC);
	return scrm__step_done(db, st, "recording consent");
}

static int check_purpose(scrm_db *db, const char *purpose)
{
	if (!pf__is_name(purpose, PF_NAME_MAX, false))
		return scrm__error(db, SCRM_INVALID, "consent purpose '%.*s' must be 1-%d characters of [a-z0-9_]",
				   scrm__utf8_clip(purpose, 64), purpose, PF_NAME_MAX);
	return SCRM_OK;
}

SCRM_API int scrm_profile_consent_set(scrm_db *db, int64_t customer, const char *purpose,
				      int granted, int64_t at_ms, const char *source)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (!purpose)
		return scrm__error(db, SCRM_MISUSE, "scrm_profile_consent_set: purpose is NULL");
	if ((rc = check_purpose(db, purpose)))
		return rc;
	if (source && !pf__is_text(source, PF_SOURCE_MAX))
		return scrm__error(db, SCRM_INVALID,
				   "consent source must be 1-%d bytes of UTF-8 text without control characters",
				   PF_SOURCE_MAX);
	if (at_ms < 0 || at_ms > PF_AT_MAX)
		return scrm__error(db, SCRM_RANGE, "consent time %lld is outside 0..%lld",
				   (long long)at_ms, (long long)PF_AT_MAX);
	int64_t at = at_ms ? at_ms : scrm__now(db);
	if ((rc = scrm__tx_begin(db)))
		return rc;
	return scrm__tx_end(db, consent_set(db, customer, purpose, granted, at, source));
}

/* The current record per purpose: latest time, then latest recorded. */
static const char sql_consent[] =
	"SELECT purpose, granted, at, source FROM (SELECT purpose, granted, at, source, "
	"row_number() OVER (PARTITION BY purpose ORDER BY at DESC, id DESC) AS rn "
	"FROM profile_consent WHERE customer IN " MEMBERS ") WHERE rn = 1 AND (?2 IS NULL OR "
	"purpose = ?2) ORDER BY purpose";

static int consent_get(scrm_db *db, int64_t customer, const char *purpose, int *granted)
{
	int64_t root;
	int rc = pf__canonical_fast(db, customer, &root, NULL);
	if (rc)
		return rc;
	/* One purpose: probe profile_consent_customer per merged id and keep
	 * the latest record (time, then id) here, instead of a window over
	 * every purpose (the rule engine asks this on every marketing firing). */
	sqlite3_stmt *st = scrm__stmt(db, "SELECT p.granted, p.at, p.id FROM identity_customers c "
					  "JOIN profile_consent p ON p.customer = c.id AND p.purpose = ?2 "
					  "WHERE c.root = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	sqlite3_bind_text(st, 2, purpose, -1, SQLITE_STATIC);
	int64_t best_at = 0, best_id = 0;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t at = sqlite3_column_int64(st, 1), id = sqlite3_column_int64(st, 2);
		if (best_id && (at < best_at || (at == best_at && id < best_id)))
			continue;
		best_at = at;
		best_id = id;
		*granted = sqlite3_column_int(st, 0) != 0;
	}
	sqlite3_reset(st);
	return s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "reading consent");
}

SCRM_API int scrm_profile_consent_get(scrm_db *db, int64_t customer, const char *purpose,
				      int *granted)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!purpose || !granted)
		return scrm__error(db, SCRM_MISUSE, "scrm_profile_consent_get: NULL argument");
	*granted = 0;
	if ((rc = check_purpose(db, purpose)) || (rc = scrm__tx_begin_read(db)))
		return rc;
	return scrm__tx_end(db, consent_get(db, customer, purpose, granted));
}

int pf__consent_json(scrm_db *db, scrm_buf *b, int64_t root)
{
	sqlite3_stmt *st = scrm__stmt(db, sql_consent);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	scrm__buf_puts(b, "{");
	int s, n = 0;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		scrm__buf_puts(b, n++ ? "," : "");
		scrm__buf_json_str(b, (const char *)sqlite3_column_text(st, 0));
		scrm__buf_printf(b, ":{\"granted\":%s,\"at\":%lld,\"source\":",
				 sqlite3_column_int(st, 1) ? "true" : "false",
				 (long long)sqlite3_column_int64(st, 2));
		if (sqlite3_column_type(st, 3) == SQLITE_NULL)
			scrm__buf_puts(b, "null");
		else
			scrm__buf_json_str(b, (const char *)sqlite3_column_text(st, 3));
		scrm__buf_puts(b, "}");
	}
	sqlite3_reset(st);
	scrm__buf_puts(b, "}");
	return s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "reading consent");
}

/* ------------------------------------------------------------ erase */

static int temp_table(scrm_db *db)
{
	int rc = scrm__exec(db, "CREATE TEMP TABLE IF NOT EXISTS pf_erase(id INTEGER PRIMARY KEY)");
	return rc ? rc : scrm__exec(db, "DELETE FROM temp.pf_erase");
}

static int run(scrm_db *db, const char *sql, const char *what)
{
	sqlite3_stmt *st = scrm__stmt(db, sql);
	return st ? scrm__step_done(db, st, what) : scrm_errcode(db);
}

/* Erase the canonical customers listed in temp.pf_erase. */
static int erase_listed(scrm_db *db, const char *reason, int64_t *count)
{
	int rc = pf__ensure_functions(db);
	if (rc)
		return rc;
	sqlite3_stmt *st = scrm__stmt(db, "SELECT count(*) FROM temp.pf_erase");
	if (!st)
		return scrm_errcode(db);
	int s = sqlite3_step(st);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (s != SQLITE_ROW)
		return scrm__sqlerr(db, s, "counting customers to erase");
	*count = n;
	if (n == 0)
		return SCRM_OK;
	int64_t *ids = scrm__malloc(db, (size_t)n * sizeof *ids);
	if (!ids)
		return scrm__error(db, SCRM_NOMEM, "out of memory listing %lld customers", (long long)n);
	size_t k = 0;
	if (!(st = scrm__stmt(db, "SELECT id FROM temp.pf_erase"))) {
		scrm__free(ids);
		return scrm_errcode(db);
	}
	while ((s = sqlite3_step(st)) == SQLITE_ROW && k < (size_t)n)
		ids[k++] = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	rc = s == SQLITE_ROW || s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "listing customers");
	if (!rc)
		rc = scrm_identity_erase(db, ids, k, NULL);
	scrm__free(ids);
	if (rc)
		return rc;
	static const char *const steps[][2] = {
		/* Amounts, currency, type, channel and time stay: totals stay right.
		 * The key becomes its hash so a replay is still a duplicate. */
		{"UPDATE event SET ikey = scrm_key_hash(ikey), items = NULL, props = NULL, "
		 "anchor_value = NULL WHERE customer IN (SELECT id FROM temp.pf_erase)",
		 "anonymizing events"},
		{"DELETE FROM profile_attr WHERE customer IN (SELECT c.id FROM identity_customers c "
		 "JOIN temp.pf_erase e ON c.root = e.id)",
		 "deleting attributes"},
		{"DELETE FROM profile_consent WHERE customer IN (SELECT c.id FROM identity_customers c "
		 "JOIN temp.pf_erase e ON c.root = e.id)",
		 "deleting consent"},
		{"DELETE FROM profile_score WHERE customer IN (SELECT id FROM temp.pf_erase)",
		 "deleting scores"},
	};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(steps); i++)
		if ((rc = run(db, steps[i][0], steps[i][1])))
			return rc;
	if ((rc = pf__note_erased_keys(db)))
		return rc;
	if (!(st = scrm__stmt(db, "INSERT OR REPLACE INTO profile_erasure(customer, at, reason) "
				  "SELECT id, ?1, ?2 FROM temp.pf_erase")))
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, scrm__now(db));
	if (reason)
		sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
	if ((rc = scrm__step_done(db, st, "logging the erasure")))
		return rc;
	return scrm__exec(db, "DELETE FROM temp.pf_erase");
}

/* Freed pages and cells are overwritten with zeros while erasing, so the
 * deleted bytes do not linger in the file (after the next checkpoint). */
static int with_secure_delete(scrm_db *db, int (*fn)(scrm_db *, void *), void *arg)
{
	sqlite3_stmt *st = scrm__stmt(db, "PRAGMA secure_delete");
	if (!st)
		return scrm_errcode(db);
	int old = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_reset(st);
	int rc = scrm__exec(db, "PRAGMA secure_delete = 1");
	if (rc)
		return rc;
	rc = fn(db, arg);
	sqlite3_exec(scrm__sqlite(db), old == 2 ? "PRAGMA secure_delete = FAST" : old ? "PRAGMA secure_delete = 1"
									    : "PRAGMA secure_delete = 0",
		     NULL, NULL, NULL);
	return rc;
}

typedef struct erase_one_arg {
	int64_t customer;
	const char *reason;
} erase_one_arg;

static int erase_one(scrm_db *db, void *p)
{
	erase_one_arg *a = p;
	int64_t root, erased, n;
	int rc = pf__canonical(db, a->customer, &root, &erased);
	if (rc)
		return rc;
	if (erased)
		return scrm__error(db, SCRM_STATE, "customer %lld was already erased",
				   (long long)a->customer);
	if ((rc = temp_table(db)))
		return rc;
	sqlite3_stmt *st = scrm__stmt(db, "INSERT INTO temp.pf_erase(id) VALUES(?1)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	if ((rc = scrm__step_done(db, st, "listing the customer")))
		return rc;
	return erase_listed(db, a->reason, &n);
}

SCRM_API int scrm_profile_erase(scrm_db *db, int64_t customer, const char *reason)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (reason && !pf__is_text(reason, 256))
		return scrm__error(db, SCRM_INVALID,
				   "erase reason must be 1-256 bytes of UTF-8 text without control characters");
	if ((rc = scrm__tx_begin(db)))
		return rc;
	erase_one_arg a = {customer, reason};
	return scrm__tx_end(db, with_secure_delete(db, erase_one, &a));
}

typedef struct inactive_arg {
	int64_t cutoff, days, count;
} inactive_arg;

static int erase_inactive(scrm_db *db, void *p)
{
	inactive_arg *a = p;
	int rc = temp_table(db);
	if (rc)
		return rc;
	/* Canonical, not erased, first seen before the cutoff (every merged
	 * id too) and no event at or after it. */
	sqlite3_stmt *st = scrm__stmt(
		db, "INSERT INTO temp.pf_erase(id) SELECT c.id FROM identity_customers c "
		    "LEFT JOIN profile_figures f ON f.customer = c.id "
		    "WHERE c.id = c.root AND c.erased_at IS NULL AND c.created_at < ?1 "
		    "AND (f.last_seen IS NULL OR f.last_seen < ?1) "
		    "AND NOT EXISTS (SELECT 1 FROM identity_customers m WHERE m.root = c.id "
		    "AND m.created_at >= ?1)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, a->cutoff);
	if ((rc = scrm__step_done(db, st, "finding inactive customers")))
		return rc;
	char reason[64];
	snprintf(reason, sizeof reason, "inactive for %lld days", (long long)a->days);
	return erase_listed(db, reason, &a->count);
}

SCRM_API int scrm_profile_anonymize_inactive(scrm_db *db, int64_t days, int64_t now_ms,
					     int64_t *count)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (count)
		*count = 0;
	if (days < 1 || days > 36500)
		return scrm__error(db, SCRM_RANGE, "inactive days %lld is outside 1..36500",
				   (long long)days);
	if (now_ms < 0 || now_ms > PF_AT_MAX)
		return scrm__error(db, SCRM_RANGE, "time %lld is outside 0..%lld", (long long)now_ms,
				   (long long)PF_AT_MAX);
	int64_t now = now_ms ? now_ms : scrm__now(db);
	inactive_arg a = {now - days * PF_DAY_MS, days, 0};
	if ((rc = scrm__tx_begin(db)))
		return rc;
	rc = scrm__tx_end(db, with_secure_delete(db, erase_inactive, &a));
	if (rc == SCRM_OK && count)
		*count = a.count;
	return rc;
}

/* ------------------------------------------------------------ masking */

/* Bytes of the UTF-8 character at s (1 for a stray byte). */
static size_t char_len(const char *s)
{
	unsigned char c = (unsigned char)*s;
	size_t n = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
	for (size_t i = 1; i < n; i++)
		if (!s[i])
			return i;
	return n;
}

static size_t char_count(const char *s)
{
	size_t n = 0;
	for (; *s; s += char_len(s))
		n++;
	return n;
}

/* Start of the last character of s (non-empty). */
static const char *last_char(const char *s)
{
	const char *last = s;
	for (const char *p = s; *p; p += char_len(p))
		last = p;
	return last;
}

static void mask_generic(scrm_buf *b, const char *v)
{
	size_t n = char_count(v);
	if (n == 0)
		return;
	if (n == 1) {
		scrm__buf_puts(b, "*");
		return;
	}
	scrm__buf_append(b, v, char_len(v));
	if (n == 2) {
		scrm__buf_puts(b, "*");
		return;
	}
	scrm__buf_puts(b, "***");
	scrm__buf_puts(b, last_char(v));
}

void pf__mask_buf(scrm_buf *b, const char *kind, const char *value)
{
	bool phone = strstr(kind, "phone") || strstr(kind, "mobile");
	bool email = strstr(kind, "mail") && strchr(value, '@') && value[0] != '@';
	if (phone) {
		const char *v = strncmp(value, "+86", 3) == 0 ? value + 3 : value;
		size_t n = strlen(v);
		bool ascii = true;
		for (size_t i = 0; i < n; i++)
			ascii &= (unsigned char)v[i] < 0x80;
		if (ascii && n >= 7) {
			scrm__buf_append(b, v, 3);
			scrm__buf_puts(b, "****");
			scrm__buf_append(b, v + n - 4, 4);
			return;
		}
	} else if (email) {
		const char *at = strrchr(value, '@');
		scrm__buf_append(b, value, char_len(value));
		scrm__buf_puts(b, "***");
		scrm__buf_puts(b, at);
		return;
	}
	mask_generic(b, value);
}

SCRM_API int scrm_profile_mask(const char *kind, const char *value, char **out)
{
	if (!out)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_profile_mask: out is NULL");
	*out = NULL;
	if (!kind || !value)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_profile_mask: NULL argument");
	size_t n = strnlen(value, PF_JSON_MAX + 1);
	if (n > PF_JSON_MAX)
		return scrm__error(NULL, SCRM_LIMIT, "value to mask is longer than %d bytes", PF_JSON_MAX);
	if (!scrm__utf8_valid(value, n) || !scrm__utf8_valid(kind, strlen(kind)))
		return scrm__error(NULL, SCRM_INVALID, "value to mask is not valid UTF-8 text");
	scrm_buf b;
	scrm__buf_init(&b, NULL);
	scrm__buf_append(&b, "", 0);
	pf__mask_buf(&b, kind, value);
	int rc = scrm__buf_finish(&b, out);
	if (rc == SCRM_OK)
		scrm__clear_error(NULL);
	return rc;
}
