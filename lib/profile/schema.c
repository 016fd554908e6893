/*
 * Tables of the profile engine, the SQL function used to anonymize
 * idempotency keys, and small validation helpers. The migration is listed
 * in lib/core/schema.c; never edit a released step.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "profile-int.h"

const char scrm__profile_schema_1[] =
	/* One row per event. customer: the current canonical owner (kept so by
	 * the merge/unmerge listener); named: the id the event gave, or NULL
	 * when identifiers brought it, then anchor_kind/anchor_value say which
	 * identifier (normalized) it follows on unmerge. ikey is the
	 * idempotency key as text, or an 8-byte XXH3 BLOB once erased: a BLOB
	 * never equals a TEXT key, and replays are checked against both. */
	"CREATE TABLE event ("
	"  id INTEGER PRIMARY KEY,"
	"  customer INTEGER NOT NULL,"
	"  channel TEXT NOT NULL,"
	"  ikey NOT NULL,"
	"  type TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  amount INTEGER,"
	"  currency TEXT,"
	"  refund_of INTEGER,"
	"  named INTEGER,"
	"  anchor_kind TEXT,"
	"  anchor_value TEXT,"
	"  items TEXT,"
	"  props TEXT);"
	"CREATE UNIQUE INDEX event_key ON event(channel, ikey);"
	/* A customer's events. Its channels and the last time seen on each are
	 * read from them (max(at) per channel) rather than kept in a table of
	 * their own: one B-tree less to update on every event, which at a
	 * million customers decides whether the hot pages fit the cache. */
	"CREATE INDEX event_customer ON event(customer, at);"
	/* Covering index for RFM (orders in a time window); partial, so other
	 * events do not pay for it, and by time, so a feed arriving in time
	 * order appends to it. */
	"CREATE INDEX event_order ON event(at, customer, amount, currency) WHERE type = 'order';"
	"CREATE INDEX event_refund ON event(refund_of) WHERE type = 'refund';"
	/* Maintained figures, one row per canonical customer with events. The
	 * CHECKs turn an int64 overflow (SQLite would go to REAL) into an error. */
	"CREATE TABLE profile_figures ("
	"  customer INTEGER PRIMARY KEY,"
	"  events INTEGER NOT NULL,"
	"  first_seen INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL,"
	"  orders INTEGER NOT NULL,"
	"  refunds INTEGER NOT NULL,"
	"  first_order INTEGER,"
	"  last_order INTEGER);"
	"CREATE TABLE profile_money ("
	"  customer INTEGER NOT NULL,"
	"  currency TEXT NOT NULL,"
	"  orders INTEGER NOT NULL,"
	"  spend INTEGER NOT NULL CHECK (typeof(spend) = 'integer'),"
	"  refunded INTEGER NOT NULL CHECK (typeof(refunded) = 'integer'),"
	"  PRIMARY KEY (customer, currency)) WITHOUT ROWID;"
	/* Attributes and consent stay with the id they were recorded on (the
	 * canonical id at the time); a profile reads them over all ids merged
	 * into it, the most recent record winning, so an unmerge gives each
	 * side back its own. */
	"CREATE TABLE profile_attr ("
	"  id INTEGER PRIMARY KEY,"
	"  customer INTEGER NOT NULL,"
	"  name TEXT NOT NULL,"
	"  vtype TEXT NOT NULL CHECK (vtype IN ('s','i','r','b','j')),"
	"  value NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  UNIQUE (customer, name));"
	"CREATE TABLE profile_consent ("
	"  id INTEGER PRIMARY KEY,"
	"  customer INTEGER NOT NULL,"
	"  purpose TEXT NOT NULL,"
	"  granted INTEGER NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  source TEXT);"
	"CREATE INDEX profile_consent_customer ON profile_consent(customer, purpose);"
	/* RFM and lifecycle as of the last refresh (scrm_meta
	 * profile.rfm_refreshed_at), one row per canonical, unerased customer. */
	"CREATE TABLE profile_score ("
	"  customer INTEGER PRIMARY KEY,"
	"  recency_days INTEGER,"
	"  frequency INTEGER NOT NULL,"
	"  monetary INTEGER NOT NULL,"
	"  r INTEGER, f INTEGER, m INTEGER,"
	"  lifecycle TEXT NOT NULL);"
	"CREATE TABLE profile_erasure ("
	"  customer INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  reason TEXT);";

/* Step 2 (schema 7): a customer's events by time carry their type, so that
 * count(type, within) and sum(type, within) of the rule language (and
 * scrm_profile_event_stats()) filter in the index and read only the rows
 * they count, instead of every event in the window. */
const char scrm__profile_schema_2[] =
	"DROP INDEX event_customer;"
	"CREATE INDEX event_customer ON event(customer, at, type);";

/* ------------------------------------------------------------ helpers */

bool pf__is_name(const char *s, size_t max, bool dots)
{
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= max || !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
				  (dots && c == '.')))
			return false;
	}
	return n > 0;
}

bool pf__is_text(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	return n > 0 && n <= max && scrm__utf8_valid(s, n) && !strpbrk(s, "\t\r\n");
}

bool pf__is_currency(const char *s)
{
	return s && strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' &&
	       s[2] >= 'A' && s[2] <= 'Z';
}

void pf__key_hash(const char *key, size_t n, unsigned char out[8])
{
	uint64_t h = XXH3_64bits(key, n);
	for (int i = 7; i >= 0; i--, h >>= 8)
		out[i] = (unsigned char)(h & 0xff);
}

static void key_hash_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	if (sqlite3_value_type(argv[0]) != SQLITE_TEXT) {
		sqlite3_result_value(ctx, argv[0]); /* already anonymized */
		return;
	}
	unsigned char h[8];
	pf__key_hash((const char *)sqlite3_value_text(argv[0]), (size_t)sqlite3_value_bytes(argv[0]), h);
	sqlite3_result_blob(ctx, h, sizeof h, SQLITE_TRANSIENT);
}

typedef struct pf_state {
	bool functions;
	uint64_t erased_tx;   /* write transaction in which erased_keys was read */
	/* pf__canonical_fast()'s last answer: valid in transaction canon_tx
	 * while the identity generation is canon_gen */
	uint64_t canon_tx, canon_gen;
	int64_t canon_id, canon_root, canon_erased;
	bool erased_keys;     /* some event key was anonymized (scrm_meta profile.erased_keys) */
	/* The refusals of the last batch of events, by index once sorted. */
	pf_refusal *refusals;
	size_t nrefusals, caprefusals;
	bool refusals_sorted;
	/* pf__config_get()'s last answer: valid in write transaction cfg_tx
	 * while the settings generation is cfg_gen */
	pf_config cfg;
	uint64_t cfg_tx, cfg_gen;
} pf_state;

static void refusals_clear(pf_state *s)
{
	for (size_t i = 0; i < s->nrefusals; i++)
		scrm__free(s->refusals[i].msg);
	scrm__free(s->refusals);
	s->refusals = NULL;
	s->nrefusals = s->caprefusals = 0;
	s->refusals_sorted = true;
}

static void state_destroy(scrm_db *db, void *p)
{
	(void)db;
	refusals_clear(p);
	scrm__free(p);
}

static int get_state(scrm_db *db, pf_state **out)
{
	pf_state *s = scrm__engine_get(db, SCRM_ENGINE_PROFILE);
	if (!s) {
		if (!(s = scrm__calloc(db, 1, sizeof *s)))
			return scrm__error(db, SCRM_NOMEM, "out of memory");
		scrm__engine_set(db, SCRM_ENGINE_PROFILE, s, state_destroy);
	}
	*out = s;
	return SCRM_OK;
}

/* ------------------------------------------------------------ refusals */

void pf__refusals_clear(scrm_db *db)
{
	pf_state *s = scrm__engine_get(db, SCRM_ENGINE_PROFILE);
	if (s)
		refusals_clear(s);
}

int pf__refusal_add(scrm_db *db, size_t i, const char *msg)
{
	pf_state *s = NULL;
	int rc = get_state(db, &s);
	if (rc)
		return rc;
	if (s->nrefusals == s->caprefusals) {
		size_t cap = s->caprefusals ? 2 * s->caprefusals : 16;
		pf_refusal *p = cap <= SIZE_MAX / sizeof *p ? scrm__realloc(db, s->refusals, cap * sizeof *p)
							    : NULL;
		if (!p)
			return scrm__error(db, SCRM_NOMEM, "out of memory keeping the reasons of refusals");
		s->refusals = p;
		s->caprefusals = cap;
	}
	char *m = scrm__strdup(db, msg);
	if (!m)
		return scrm__error(db, SCRM_NOMEM, "out of memory keeping the reasons of refusals");
	if (s->nrefusals && s->refusals[s->nrefusals - 1].i > i)
		s->refusals_sorted = false;
	s->refusals[s->nrefusals++] = (pf_refusal){i, m};
	return SCRM_OK;
}

static int cmp_refusal(const void *a, const void *b)
{
	size_t x = ((const pf_refusal *)a)->i, y = ((const pf_refusal *)b)->i;
	return (x > y) - (x < y);
}

SCRM_API const char *scrm_profile_events_refusal(scrm_db *db, size_t i)
{
	pf_state *s = db ? scrm__engine_get(db, SCRM_ENGINE_PROFILE) : NULL;
	if (!s || !s->nrefusals)
		return NULL;
	if (!s->refusals_sorted) {
		qsort(s->refusals, s->nrefusals, sizeof *s->refusals, cmp_refusal);
		s->refusals_sorted = true;
	}
	const pf_refusal key = {i, NULL};
	const pf_refusal *r = bsearch(&key, s->refusals, s->nrefusals, sizeof key, cmp_refusal);
	return r ? r->msg : NULL;
}

int pf__erased_keys(scrm_db *db, bool *any)
{
	pf_state *s = NULL;
	int rc = get_state(db, &s);
	if (rc)
		return rc;
	/* Nobody else can commit while we hold the write lock: read once per
	 * write transaction. */
	uint64_t serial = scrm__tx_in_write(db) ? scrm__tx_serial(db) : 0;
	if (!serial || s->erased_tx != serial) {
		sqlite3_stmt *st = scrm__stmt(db, "SELECT 1 FROM scrm_meta WHERE key = 'profile.erased_keys'");
		if (!st)
			return scrm_errcode(db);
		int r = sqlite3_step(st);
		sqlite3_reset(st);
		if (r != SQLITE_ROW && r != SQLITE_DONE)
			return scrm__sqlerr(db, r, "reading profile state");
		s->erased_keys = r == SQLITE_ROW;
		s->erased_tx = serial;
	}
	*any = s->erased_keys;
	return SCRM_OK;
}

int pf__note_erased_keys(scrm_db *db)
{
	pf_state *s = NULL;
	int rc = get_state(db, &s);
	if (rc)
		return rc;
	sqlite3_stmt *st = scrm__stmt(db, "INSERT OR IGNORE INTO scrm_meta(key, value) "
					  "VALUES('profile.erased_keys', '1')");
	if (!st)
		return scrm_errcode(db);
	if ((rc = scrm__step_done(db, st, "recording erased keys")))
		return rc;
	s->erased_keys = true; /* conservative if this transaction rolls back */
	return SCRM_OK;
}

int pf__ensure_functions(scrm_db *db)
{
	pf_state *s = NULL;
	int rc = get_state(db, &s);
	if (rc)
		return rc;
	if (s->functions)
		return SCRM_OK;
	rc = sqlite3_create_function_v2(scrm__sqlite(db), "scrm_key_hash", 1,
					    SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY,
					    NULL, key_hash_fn, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return scrm__sqlerr(db, rc, "registering SQL functions");
	s->functions = true;
	return SCRM_OK;
}

int pf__canonical(scrm_db *db, int64_t id, int64_t *root, int64_t *erased_at)
{
	sqlite3_stmt *st = scrm__stmt(db, "SELECT r.id, r.erased_at FROM identity_customers c "
					  "JOIN identity_customers r ON r.id = c.root WHERE c.id = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, id);
	int s = sqlite3_step(st);
	int rc = SCRM_OK;
	if (s == SQLITE_ROW) {
		*root = sqlite3_column_int64(st, 0);
		if (erased_at)
			*erased_at = sqlite3_column_int64(st, 1);
	} else if (s == SQLITE_DONE) {
		rc = scrm__error(db, SCRM_NOTFOUND, "customer %lld does not exist", (long long)id);
	} else {
		rc = scrm__sqlerr(db, s, "reading a customer");
	}
	sqlite3_reset(st);
	return rc;
}

static int canonical_read(scrm_db *db, int64_t id, int64_t *root, int64_t *erased_at);

int pf__canonical_fast(scrm_db *db, int64_t id, int64_t *root, int64_t *erased_at)
{
	/* The last answer holds for the rest of the transaction unless the
	 * identity engine re-rooted or erased something (or anything was
	 * rolled back): an event with rules asks for the same customer several
	 * times. */
	pf_state *ps = NULL;
	int rc0 = get_state(db, &ps);
	if (rc0)
		return rc0;
	uint64_t serial = scrm__tx_serial(db), gen = scrm__identity_gen(db);
	if (serial && ps->canon_tx == serial && ps->canon_gen == gen && ps->canon_id == id) {
		*root = ps->canon_root;
		if (erased_at)
			*erased_at = ps->canon_erased;
		return SCRM_OK;
	}
	int rc1 = canonical_read(db, id, root, erased_at ? erased_at : &ps->canon_erased);
	if (rc1 == SCRM_OK && serial) {
		ps->canon_tx = serial;
		ps->canon_gen = gen;
		ps->canon_id = id;
		ps->canon_root = *root;
		if (erased_at)
			ps->canon_erased = *erased_at;
	} else {
		ps->canon_tx = 0;
	}
	return rc1;
}

static int canonical_read(scrm_db *db, int64_t id, int64_t *root, int64_t *erased_at)
{
	/* One row read for the common case, a customer that is its own root. */
	sqlite3_stmt *st = scrm__stmt(db, "SELECT root, erased_at FROM identity_customers WHERE id = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, id);
	int s = sqlite3_step(st);
	int rc = SCRM_OK;
	if (s == SQLITE_ROW) {
		*root = sqlite3_column_int64(st, 0);
		if (erased_at)
			*erased_at = sqlite3_column_int64(st, 1);
	} else if (s == SQLITE_DONE) {
		rc = scrm__error(db, SCRM_NOTFOUND, "customer %lld does not exist", (long long)id);
	} else {
		rc = scrm__sqlerr(db, s, "reading a customer");
	}
	sqlite3_reset(st);
	if (rc == SCRM_OK && *root != id)
		return pf__canonical(db, id, root, erased_at);
	return rc;
}

bool pf__config_cached(scrm_db *db, pf_config *cfg)
{
	pf_state *s = scrm__engine_get(db, SCRM_ENGINE_PROFILE);
	uint64_t serial = scrm__tx_serial(db);
	if (!s || !serial || !scrm__tx_in_write(db) || s->cfg_tx != serial ||
	    s->cfg_gen != scrm__config_gen(db))
		return false;
	*cfg = s->cfg;
	return true;
}

void pf__config_keep(scrm_db *db, const pf_config *cfg)
{
	pf_state *s = NULL;
	uint64_t serial = scrm__tx_serial(db);
	if (!serial || !scrm__tx_in_write(db) || get_state(db, &s))
		return; /* not kept: read again next time */
	s->cfg = *cfg;
	s->cfg_tx = serial;
	s->cfg_gen = scrm__config_gen(db);
}

int pf__live_customer(scrm_db *db, int64_t id, int64_t *root)
{
	int64_t erased = 0;
	int rc = pf__canonical_fast(db, id, root, &erased);
	if (rc == SCRM_OK && erased)
		rc = scrm__error(db, SCRM_STATE, "customer %lld was erased", (long long)id);
	return rc;
}

const char *pf__code_name(int code)
{
	static const char *const names[] = {
		"SCRM_OK",      "SCRM_ERROR",    "SCRM_MISUSE", "SCRM_INVALID", "SCRM_NOTFOUND",
		"SCRM_EXISTS",  "SCRM_CONFLICT", "SCRM_STATE",  "SCRM_BUSY",    "SCRM_NOMEM",
		"SCRM_IO",      "SCRM_CORRUPT",  "SCRM_SCHEMA", "SCRM_RANGE",   "SCRM_PARSE",
		"SCRM_READONLY", "SCRM_LIMIT",   "SCRM_EVAL",   "SCRM_DUPLICATE"};
	if (code < 0 || (size_t)code >= SCRM_ARRAY_LEN(names))
		return "SCRM_ERROR";
	return names[code];
}
