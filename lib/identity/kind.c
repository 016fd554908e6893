/*
 * The identifier-kind registry: definitions stored as JSON in id_kind,
 * parsed and compiled once into a per-handle cache that is reloaded when
 * any connection changes the kinds.
 */
#include <ctype.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "identity-int.h"

static const char sql_kinds[] = "SELECT id, definition FROM id_kind ORDER BY priority, name";
static const char sql_rev[] = "SELECT value FROM scrm_meta WHERE key='identity.kinds_rev'";

static void kind_clear(id_kind *k)
{
	scrm__free(k->name);
	for (size_t i = 0; i < k->nblock; i++)
		scrm__free(k->block[i]);
	scrm__free(k->block);
	for (size_t i = 0; i < k->nblock_re; i++)
		pcre2_code_free(k->block_re[i]);
	scrm__free(k->block_re);
	pcre2_code_free(k->pattern);
	memset(k, 0, sizeof *k);
}

static void kinds_free(id_kind *kinds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kind_clear(&kinds[i]);
	scrm__free(kinds);
}

static void state_destroy(scrm_db *db, void *p)
{
	(void)db;
	id_state *st = p;
	kinds_free(st->kinds, st->nkinds);
	pcre2_match_data_free(st->md);
	pcre2_match_context_free(st->mctx);
	scrm__free(st);
}

static int compile_re(scrm_db *db, const char *what, const char *pat, pcre2_code **out)
{
	int err;
	PCRE2_SIZE off;
	/* \C matches one byte even in UTF mode: it could extract half a
	 * character, or leave the matcher inside one. */
	*out = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
			     PCRE2_UTF | PCRE2_NEVER_BACKSLASH_C, &err, &off, NULL);
	if (!*out) {
		PCRE2_UCHAR msg[128];
		pcre2_get_error_message(err, msg, sizeof msg);
		return scrm__error(db, SCRM_INVALID, "%s: bad regular expression at offset %zu: %s",
				   what, (size_t)off, (char *)msg);
	}
	pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
	return SCRM_OK;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_'))
			return false;
	return true;
}

static const char *const norm_names[] = {"trim", "casefold", "phone", "email", "pattern"};

/* Add the normal form of each blocklist entry that differs from the entry
 * itself, so that an entry blocks every way of writing it. */
static int block_normalize(scrm_db *db, id_state *st, id_kind *k)
{
	char norm[ID_VALUE_MAX + 1];
	for (size_t i = 0, n = k->nblock; i < n; i++) {
		if (id__normalize_block(st->md, st->mctx, k, k->block[i], norm))
			continue;
		bool known = false;
		for (size_t j = 0; j < k->nblock && !known; j++)
			known = strcmp(k->block[j], norm) == 0;
		if (known)
			continue;
		if (!(k->block[k->nblock] = scrm__strdup(db, norm)))
			return scrm__error(db, SCRM_NOMEM, "out of memory");
		k->nblock++;
	}
	return SCRM_OK;
}

/* Parse and compile one definition into *k (k zeroed by the caller). */
static int kind_parse(scrm_db *db, id_state *st, const char *json, id_kind *k)
{
	static const char *const fields[] = {"name", "normalizer", "priority", "limit",
					     "blocklist", "block_patterns", "pattern", NULL};
	cJSON *root;
	int rc = scrm__json_parse(db, json, "kind definition", &root);
	if (rc)
		return rc;
	if (!cJSON_IsObject(root)) {
		rc = scrm__error(db, SCRM_INVALID, "kind definition must be a JSON object");
		goto out;
	}
	if ((rc = scrm__json_only(db, root, "kind definition", fields)))
		goto out;
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
	if (!cJSON_IsString(name) || !valid_name(name->valuestring)) {
		rc = scrm__error(db, SCRM_INVALID,
				 "kind definition: \"name\" must be 1-64 characters of [a-z0-9_]");
		goto out;
	}
	if (!(k->name = scrm__strdup(db, name->valuestring))) {
		rc = scrm__error(db, SCRM_NOMEM, "out of memory");
		goto out;
	}
	const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
	k->norm = NORM_TRIM;
	if (norm) {
		size_t i = 0;
		while (i < SCRM_ARRAY_LEN(norm_names) &&
		       !(cJSON_IsString(norm) && strcmp(norm->valuestring, norm_names[i]) == 0))
			i++;
		if (i == SCRM_ARRAY_LEN(norm_names)) {
			rc = scrm__error(db, SCRM_INVALID,
					 "kind '%s': normalizer must be one of trim, casefold, "
					 "phone, email, pattern",
					 k->name);
			goto out;
		}
		k->norm = (id_norm)i;
	}
	int64_t v = 100;
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "priority");
	if (it && (rc = scrm__json_int(db, it, "kind priority", -1000000, 1000000, &v)))
		goto out;
	k->priority = (int)v;
	v = 0;
	it = cJSON_GetObjectItemCaseSensitive(root, "limit");
	if (it && (rc = scrm__json_int(db, it, "kind limit", 0, 1000000, &v)))
		goto out;
	k->limit = (int)v;
	const cJSON *pat = cJSON_GetObjectItemCaseSensitive(root, "pattern");
	if ((k->norm == NORM_PATTERN) != (pat != NULL)) {
		rc = scrm__error(db, SCRM_INVALID,
				 "kind '%s': \"pattern\" is required with normalizer \"pattern\" "
				 "and allowed only with it",
				 k->name);
		goto out;
	}
	if (pat) {
		if (!cJSON_IsString(pat)) {
			rc = scrm__error(db, SCRM_INVALID, "kind '%s': pattern must be a string", k->name);
			goto out;
		}
		if ((rc = compile_re(db, "kind pattern", pat->valuestring, &k->pattern)))
			goto out;
	}
	const cJSON *bl = cJSON_GetObjectItemCaseSensitive(root, "blocklist");
	const cJSON *bp = cJSON_GetObjectItemCaseSensitive(root, "block_patterns");
	if ((bl && !cJSON_IsArray(bl)) || (bp && !cJSON_IsArray(bp))) {
		rc = scrm__error(db, SCRM_INVALID,
				 "kind '%s': blocklist and block_patterns must be arrays of strings",
				 k->name);
		goto out;
	}
	int nb = bl ? cJSON_GetArraySize(bl) : 0, np = bp ? cJSON_GetArraySize(bp) : 0;
	/* Room for each entry and its normal form. */
	k->block = scrm__calloc(db, 2 * (size_t)nb + 1, sizeof *k->block);
	k->block_re = scrm__calloc(db, (size_t)np + 1, sizeof *k->block_re);
	if (!k->block || !k->block_re) {
		rc = scrm__error(db, SCRM_NOMEM, "out of memory");
		goto out;
	}
	cJSON_ArrayForEach(it, bl)
	{
		if (!cJSON_IsString(it)) {
			rc = scrm__error(db, SCRM_INVALID, "kind '%s': blocklist entries must be strings",
					 k->name);
			goto out;
		}
		if (!(k->block[k->nblock] = scrm__strdup(db, it->valuestring))) {
			rc = scrm__error(db, SCRM_NOMEM, "out of memory");
			goto out;
		}
		k->nblock++;
	}
	cJSON_ArrayForEach(it, bp)
	{
		if (!cJSON_IsString(it)) {
			rc = scrm__error(db, SCRM_INVALID,
					 "kind '%s': block_patterns entries must be strings", k->name);
			goto out;
		}
		if ((rc = compile_re(db, "block pattern", it->valuestring, &k->block_re[k->nblock_re])))
			goto out;
		k->nblock_re++;
	}
	rc = block_normalize(db, st, k);
out:
	cJSON_Delete(root);
	return rc;
}

static int read_rev(scrm_db *db, char rev[48])
{
	sqlite3_stmt *st = scrm__stmt(db, sql_rev);
	if (!st)
		return scrm_errcode(db);
	rev[0] = '\0';
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(rev, 48, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	return SCRM_OK;
}

static int load_kinds(scrm_db *db, id_state *s)
{
	sqlite3_stmt *st = scrm__stmt(db, sql_kinds);
	if (!st)
		return scrm_errcode(db);
	id_kind *kinds = NULL;
	size_t n = 0, cap = 0;
	int rc = SCRM_OK, step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			id_kind *nk = scrm__realloc(db, kinds, cap * sizeof *nk);
			if (!nk) {
				rc = scrm__error(db, SCRM_NOMEM, "out of memory loading kinds");
				break;
			}
			kinds = nk;
		}
		memset(&kinds[n], 0, sizeof kinds[n]);
		rc = kind_parse(db, s, (const char *)sqlite3_column_text(st, 1), &kinds[n]);
		kinds[n].id = sqlite3_column_int64(st, 0);
		n++;
		if (rc)
			break;
	}
	if (!rc && step != SQLITE_DONE)
		rc = scrm__sqlerr(db, step, "loading identifier kinds");
	sqlite3_reset(st);
	if (rc) {
		kinds_free(kinds, n);
		return rc;
	}
	kinds_free(s->kinds, s->nkinds);
	s->kinds = kinds;
	s->nkinds = n;
	return SCRM_OK;
}

/* The handle's state, created empty (stale) when missing. */
static id_state *state_get(scrm_db *db)
{
	id_state *s = scrm__engine_get(db, SCRM_ENGINE_IDENTITY);
	if (s)
		return s;
	s = scrm__calloc(db, 1, sizeof *s);
	if (!s) {
		scrm__error(db, SCRM_NOMEM, "out of memory");
		return NULL;
	}
	s->md = pcre2_match_data_create(16, NULL);
	s->mctx = pcre2_match_context_create(NULL);
	if (!s->md || !s->mctx) {
		state_destroy(db, s);
		scrm__error(db, SCRM_NOMEM, "out of memory");
		return NULL;
	}
	/* Bounded work on hostile patterns: a limit hit counts as no match. */
	pcre2_set_match_limit(s->mctx, 100000);
	pcre2_set_depth_limit(s->mctx, 1000);
	pcre2_set_heap_limit(s->mctx, 1024);
	scrm__engine_set(db, SCRM_ENGINE_IDENTITY, s, state_destroy);
	return s;
}

int id__state(scrm_db *db, id_state **out)
{
	id_state *s = scrm__engine_get(db, SCRM_ENGINE_IDENTITY);
	/* Nobody else can commit while we hold the write lock: checked once
	 * per write transaction is enough — unless this transaction set a
	 * kind, which a rolled-back savepoint may have undone since. */
	uint64_t serial = scrm__tx_in_write(db) ? scrm__tx_serial(db) : 0;
	if (s && serial && s->fresh_in_tx == serial && s->set_in_tx != serial && s->rev[0]) {
		*out = s;
		return SCRM_OK;
	}
	/* Compare the stored revision, not PRAGMA data_version: the latter does
	 * not move when this connection itself commits or rolls back. */
	char rev[48];
	int rc = read_rev(db, rev);
	if (rc)
		return rc;
	if (s && s->rev[0] && strcmp(rev, s->rev) == 0) {
		s->fresh_in_tx = serial;
		*out = s;
		return SCRM_OK;
	}
	if (!s && !(s = state_get(db)))
		return scrm_errcode(db);
	s->rev[0] = '\0';
	if ((rc = load_kinds(db, s)))
		return rc;
	s->fresh_in_tx = serial;
	memcpy(s->rev, rev, sizeof rev);
	*out = s;
	return SCRM_OK;
}

const id_kind *id__kind_by_name(const id_state *st, const char *name)
{
	for (size_t i = 0; i < st->nkinds; i++)
		if (strcmp(st->kinds[i].name, name) == 0)
			return &st->kinds[i];
	return NULL;
}

const id_kind *id__kind_by_id(const id_state *st, int64_t id)
{
	for (size_t i = 0; i < st->nkinds; i++)
		if (st->kinds[i].id == id)
			return &st->kinds[i];
	return NULL;
}

/* Canonical JSON of a parsed kind (what is stored and returned). */
static char *kind_json(scrm_db *db, const char *json_in, const id_kind *k)
{
	cJSON *root = cJSON_Parse(json_in), *out = cJSON_CreateObject();
	char *text = NULL;
	if (root && out) {
		cJSON_AddStringToObject(out, "name", k->name);
		cJSON_AddStringToObject(out, "normalizer", norm_names[k->norm]);
		cJSON_AddNumberToObject(out, "priority", k->priority);
		cJSON_AddNumberToObject(out, "limit", k->limit);
		const char *keep[] = {"pattern", "blocklist", "block_patterns"};
		for (size_t i = 0; i < SCRM_ARRAY_LEN(keep); i++) {
			cJSON *it = cJSON_GetObjectItemCaseSensitive(root, keep[i]);
			if (it)
				cJSON_AddItemToObject(out, keep[i], cJSON_Duplicate(it, 1));
			else if (i > 0)
				cJSON_AddItemToObject(out, keep[i], cJSON_CreateArray());
		}
		char *p = cJSON_PrintUnformatted(out);
		if (p) {
			text = scrm__strdup(db, p);
			cJSON_free(p);
		}
	}
	cJSON_Delete(root);
	cJSON_Delete(out);
	return text;
}

SCRM_API int scrm_identity_kind_set(scrm_db *db, const char *json)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (!json)
		return scrm__error(db, SCRM_MISUSE, "scrm_identity_kind_set: json is NULL");
	/* The state exists from here on, so that the change is marked on it. */
	id_state *cached = state_get(db);
	if (!cached)
		return scrm_errcode(db);
	id_kind k = {0};
	if ((rc = kind_parse(db, cached, json, &k))) {
		kind_clear(&k);
		return rc;
	}
	char *text = kind_json(db, json, &k);
	if (!text) {
		kind_clear(&k);
		return scrm__error(db, SCRM_NOMEM, "out of memory");
	}
	if ((rc = scrm__tx_begin(db)) == SCRM_OK) {
		sqlite3_stmt *st = scrm__stmt(
			db, "INSERT INTO id_kind(name, priority, lim, definition) VALUES(?1,?2,?3,?4) "
			    "ON CONFLICT(name) DO UPDATE SET priority=?2, lim=?3, definition=?4");
		if (!st) {
			rc = scrm_errcode(db);
		} else {
			sqlite3_bind_text(st, 1, k.name, -1, SQLITE_STATIC);
			sqlite3_bind_int(st, 2, k.priority);
			sqlite3_bind_int(st, 3, k.limit);
			sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
			rc = scrm__step_done(db, st, "storing the kind");
		}
		if (!rc) {
			/* A counter and a random part: a change rolled back here
			 * and another committed elsewhere never look the same. */
			sqlite3_stmt *r = scrm__stmt(
				db, "UPDATE scrm_meta SET value = (CAST(value AS INTEGER) + 1) || '-' || "
				    "lower(hex(randomblob(8))) WHERE key='identity.kinds_rev'");
			rc = r ? scrm__step_done(db, r, "bumping the kinds revision") : scrm_errcode(db);
		}
		rc = scrm__tx_end(db, rc);
	}
	/* data_version does not move for this connection's own commits: drop
	 * the cached revision so the next call reloads, and keep checking it
	 * for the rest of an enclosing batch. */
	cached->rev[0] = '\0';
	cached->fresh_in_tx = 0;
	cached->set_in_tx = scrm__tx_serial(db);
	scrm__free(text);
	kind_clear(&k);
	return rc;
}

SCRM_API int scrm_identity_kind_get(scrm_db *db, const char *name, char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!name || !out)
		return scrm__error(db, SCRM_MISUSE, "scrm_identity_kind_get: NULL argument");
	*out = NULL;
	sqlite3_stmt *st = scrm__stmt(db, "SELECT definition FROM id_kind WHERE name=?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		*out = scrm__strdup(db, (const char *)sqlite3_column_text(st, 0));
		rc = *out ? SCRM_OK : scrm__error(db, SCRM_NOMEM, "out of memory");
	} else if (s == SQLITE_DONE) {
		rc = scrm__error(db, SCRM_NOTFOUND, "identifier kind '%s' is not registered", name);
	} else {
		rc = scrm__sqlerr(db, s, "reading the kind");
	}
	sqlite3_reset(st);
	return rc;
}

SCRM_API int scrm_identity_kinds_json(scrm_db *db, char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_identity_kinds_json: out is NULL");
	*out = NULL;
	sqlite3_stmt *st = scrm__stmt(db, sql_kinds);
	if (!st)
		return scrm_errcode(db);
	scrm_buf b;
	scrm__buf_init(&b, db);
	scrm__buf_puts(&b, "[");
	int s, n = 0;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		scrm__buf_puts(&b, n++ ? "," : "");
		scrm__buf_puts(&b, (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_reset(st);
	if (s != SQLITE_DONE) {
		scrm__buf_reset(&b);
		return scrm__sqlerr(db, s, "listing kinds");
	}
	scrm__buf_puts(&b, "]");
	return scrm__buf_finish(&b, out);
}

SCRM_API int scrm_identity_normalize(scrm_db *db, const char *kind, const char *value, char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!kind || !value || !out)
		return scrm__error(db, SCRM_MISUSE, "scrm_identity_normalize: NULL argument");
	*out = NULL;
	id_state *st;
	if ((rc = id__state(db, &st)))
		return rc;
	const id_kind *k = id__kind_by_name(st, kind);
	if (!k)
		return scrm__error(db, SCRM_NOTFOUND, "identifier kind '%s' is not registered", kind);
	char norm[ID_VALUE_MAX + 1], why[96];
	if (id__normalize(st, k, value, norm, why, sizeof why))
		return scrm__error(db, SCRM_INVALID, "%s value '%.*s' rejected: %s", kind, scrm__utf8_clip(value, 64), value, why);
	*out = scrm__strdup(db, norm);
	return *out ? SCRM_OK : scrm__error(db, SCRM_NOMEM, "out of memory");
}
