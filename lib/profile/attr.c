/*
 * Host-set attributes: typed values set from JSON, read one at a time or as
 * the attributes object of the profile. Read over every id merged into the
 * customer, the most recently set value of a name winning.
 */
#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "profile-int.h"

/* Members of the customer's tree: the ids whose root is ?1. */
#define MEMBERS "(SELECT id FROM identity_customers WHERE root = ?1)"

static bool is_tz(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	bool seg_start = true;
	for (const char *p = s; *p; p++) {
		char c = *p;
		if (c == '/') {
			if (seg_start)
				return false;
			seg_start = true;
			continue;
		}
		bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
		if (seg_start && !letter)
			return false;
		if (!letter && !(c >= '0' && c <= '9') && c != '_' && c != '+' && c != '-')
			return false;
		seg_start = false;
	}
	return !seg_start;
}

static bool is_date(const char *s)
{
	int64_t ms;
	return strlen(s) == 10 && s[4] == '-' && s[7] == '-' && scrm__parse_time(s, &ms);
}

typedef struct attr_val {
	const char *name;
	char vtype;       /* 0 = unset */
	int64_t i;
	double r;
	const char *s;    /* 's' */
	char *json;       /* 'j' (cJSON_PrintUnformatted) */
} attr_val;

static int check_value(scrm_db *db, const cJSON *v, attr_val *a)
{
	const char *name = a->name;
	if (!pf__is_name(name, PF_NAME_MAX, true))
		return scrm__error(db, SCRM_INVALID, "attribute name '%.*s' must be 1-%d characters of [a-z0-9_.]",
				   scrm__utf8_clip(name, 64), name, PF_NAME_MAX);
	if (cJSON_IsNull(v)) {
		a->vtype = 0;
	} else if (cJSON_IsString(v)) {
		if (strlen(v->valuestring) > PF_JSON_MAX)
			return scrm__error(db, SCRM_LIMIT, "attribute %s: more than %d bytes", name,
					   PF_JSON_MAX);
		a->vtype = 's';
		a->s = v->valuestring;
	} else if (cJSON_IsBool(v)) {
		a->vtype = 'b';
		a->i = cJSON_IsTrue(v);
	} else if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		if (!isfinite(d))
			return scrm__error(db, SCRM_RANGE, "attribute %s: number out of range", name);
		if (d == floor(d) && fabs(d) <= 9007199254740992.0) {
			a->vtype = 'i';
			a->i = (int64_t)d;
		} else {
			a->vtype = 'r';
			a->r = d;
		}
	} else {
		a->json = cJSON_PrintUnformatted(v);
		if (!a->json)
			return scrm__error(db, SCRM_NOMEM, "out of memory printing attribute %s", name);
		if (strlen(a->json) > PF_JSON_MAX)
			return scrm__error(db, SCRM_LIMIT, "attribute %s: more than %d bytes of JSON",
					   name, PF_JSON_MAX);
		a->vtype = 'j';
	}
	if (strcmp(name, "birthday") == 0 && a->vtype && (a->vtype != 's' || !is_date(a->s)))
		return scrm__error(db, SCRM_INVALID, "attribute birthday must be a date \"YYYY-MM-DD\"");
	if (strcmp(name, "tz") == 0 && a->vtype && (a->vtype != 's' || !is_tz(a->s)))
		return scrm__error(db, SCRM_INVALID,
				   "attribute tz must be an IANA time zone name such as \"Asia/Shanghai\"");
	return SCRM_OK;
}

static int store(scrm_db *db, int64_t root, const attr_val *a, int64_t now)
{
	sqlite3_stmt *st = scrm__stmt(db, "DELETE FROM profile_attr WHERE name = ?2 AND customer IN " MEMBERS);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	sqlite3_bind_text(st, 2, a->name, -1, SQLITE_STATIC);
	int rc = scrm__step_done(db, st, "removing an attribute");
	if (rc || !a->vtype)
		return rc;
	st = scrm__stmt(db, "INSERT INTO profile_attr(customer, name, vtype, value, at) "
			    "VALUES(?1, ?2, ?3, ?4, ?5)");
	if (!st)
		return scrm_errcode(db);
	char vt[2] = {a->vtype, '\0'};
	sqlite3_bind_int64(st, 1, root);
	sqlite3_bind_text(st, 2, a->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, vt, 1, SQLITE_TRANSIENT);
	switch (a->vtype) {
	case 's': sqlite3_bind_text(st, 4, a->s, -1, SQLITE_STATIC); break;
	case 'j': sqlite3_bind_text(st, 4, a->json, -1, SQLITE_STATIC); break;
	case 'r': sqlite3_bind_double(st, 4, a->r); break;
	default: sqlite3_bind_int64(st, 4, a->i); break;
	}
	sqlite3_bind_int64(st, 5, now);
	return scrm__step_done(db, st, "storing an attribute");
}

static int set_attrs(scrm_db *db, int64_t customer, attr_val *vals, size_t n)
{
	int64_t root;
	int rc = pf__live_customer(db, customer, &root);
	int64_t now = scrm__now(db);
	for (size_t i = 0; !rc && i < n; i++)
		rc = store(db, root, &vals[i], now);
	/* Engines that derive state from attributes (rule tags) follow. */
	const scrm_note note = {SCRM_NOTE_ATTR, 0, root, 0, NULL};
	return rc ? rc : scrm__notify(db, &note);
}

SCRM_API int scrm_profile_set_json(scrm_db *db, int64_t customer, const char *json)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	cJSON *root;
	if ((rc = scrm__json_parse(db, json, "attributes", &root)))
		return rc;
	attr_val *vals = NULL;
	size_t n = 0;
	if (!cJSON_IsObject(root)) {
		rc = scrm__error(db, SCRM_INVALID, "attributes must be a JSON object");
		goto out;
	}
	size_t count = (size_t)cJSON_GetArraySize(root);
	if (count > PF_ATTRS_MAX) {
		rc = scrm__error(db, SCRM_LIMIT, "%zu attributes in one call (at most %d)", count,
				 PF_ATTRS_MAX);
		goto out;
	}
	if (!(vals = scrm__calloc(db, count ? count : 1, sizeof *vals))) {
		rc = scrm__error(db, SCRM_NOMEM, "out of memory");
		goto out;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, root)
	{
		vals[n].name = it->string;
		if ((rc = check_value(db, it, &vals[n++])))
			goto out;
	}
	if ((rc = scrm__tx_begin(db)))
		goto out;
	rc = scrm__tx_end(db, set_attrs(db, customer, vals, n));
out:
	for (size_t i = 0; i < n; i++)
		cJSON_free(vals[i].json);
	scrm__free(vals);
	cJSON_Delete(root);
	return rc;
}

/* Append the stored value (columns vt, v of st) as JSON. */
static void value_json(scrm_buf *b, sqlite3_stmt *st, int vt, int v)
{
	const char *t = (const char *)sqlite3_column_text(st, vt);
	switch (t ? t[0] : 's') {
	case 'i': scrm__buf_printf(b, "%lld", (long long)sqlite3_column_int64(st, v)); break;
	case 'b': scrm__buf_puts(b, sqlite3_column_int64(st, v) ? "true" : "false"); break;
	case 'r': scrm__buf_printf(b, "%.17g", sqlite3_column_double(st, v)); break;
	case 'j': scrm__buf_puts(b, (const char *)sqlite3_column_text(st, v)); break;
	default: scrm__buf_json_str(b, (const char *)sqlite3_column_text(st, v)); break;
	}
}

int pf__attrs_json(scrm_db *db, scrm_buf *b, int64_t root)
{
	/* Per name, the most recently set value over the merged ids. */
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT name, vtype, value FROM (SELECT name, vtype, value, row_number() OVER "
		    "(PARTITION BY name ORDER BY at DESC, id DESC) AS rn FROM profile_attr "
		    "WHERE customer IN " MEMBERS ") WHERE rn = 1 ORDER BY name");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	scrm__buf_puts(b, "{");
	int s, n = 0;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		scrm__buf_puts(b, n++ ? "," : "");
		scrm__buf_json_str(b, (const char *)sqlite3_column_text(st, 0));
		scrm__buf_puts(b, ":");
		value_json(b, st, 1, 2);
	}
	sqlite3_reset(st);
	scrm__buf_puts(b, "}");
	return s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "reading attributes");
}

static int get_attr(scrm_db *db, int64_t customer, const char *name, char **out)
{
	int64_t root;
	int rc = pf__canonical_fast(db, customer, &root, NULL);
	if (rc)
		return rc;
	/* A join driven by customer_root and UNIQUE(customer, name): one probe
	 * per merged id. `IN (SELECT …) ORDER BY … LIMIT 1` built an ephemeral
	 * table and a sorter on every call, which made an attribute read in a
	 * rule condition cost more than the rest of the event. The latest
	 * record (time, then id) is picked here. */
	sqlite3_stmt *st = scrm__stmt(db, "SELECT a.vtype, a.value, a.at, a.id FROM identity_customers c "
					  "JOIN profile_attr a ON a.customer = c.id AND a.name = ?2 "
					  "WHERE c.root = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	scrm_buf b;
	scrm__buf_init(&b, db);
	int64_t best_at = 0, best_id = 0;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t at = sqlite3_column_int64(st, 2), id = sqlite3_column_int64(st, 3);
		if (best_id && (at < best_at || (at == best_at && id < best_id)))
			continue;
		best_at = at;
		best_id = id;
		b.len = 0; /* a later record of the name over another merged id */
		value_json(&b, st, 0, 1);
	}
	sqlite3_reset(st);
	if (s != SQLITE_DONE)
		rc = scrm__sqlerr(db, s, "reading an attribute");
	else if (!best_id)
		rc = scrm__error(db, SCRM_NOTFOUND, "customer %lld has no attribute '%s'",
				 (long long)customer, name);
	if (rc) {
		scrm__buf_reset(&b);
		return rc;
	}
	return scrm__buf_finish(&b, out);
}

static int check_name(scrm_db *db, const char *name)
{
	if (!pf__is_name(name, PF_NAME_MAX, true))
		return scrm__error(db, SCRM_INVALID, "attribute name '%.*s' must be 1-%d characters of [a-z0-9_.]",
				   scrm__utf8_clip(name, 64), name, PF_NAME_MAX);
	return SCRM_OK;
}

SCRM_API int scrm_profile_get(scrm_db *db, int64_t customer, const char *name, char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!name || !out)
		return scrm__error(db, SCRM_MISUSE, "scrm_profile_get: NULL argument");
	*out = NULL;
	if ((rc = check_name(db, name)) || (rc = scrm__tx_begin_read(db)))
		return rc;
	return scrm__tx_end(db, get_attr(db, customer, name, out));
}

static int unset_attr(scrm_db *db, int64_t customer, const char *name)
{
	int64_t root;
	int rc = pf__live_customer(db, customer, &root);
	if (rc)
		return rc;
	sqlite3_stmt *st = scrm__stmt(db, "DELETE FROM profile_attr WHERE name = ?2 AND customer IN " MEMBERS);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if ((rc = scrm__step_done(db, st, "removing an attribute")))
		return rc;
	if (sqlite3_changes(scrm__sqlite(db)) == 0)
		return scrm__error(db, SCRM_NOTFOUND, "customer %lld has no attribute '%s'",
				   (long long)customer, name);
	const scrm_note note = {SCRM_NOTE_ATTR, 0, root, 0, NULL};
	return scrm__notify(db, &note);
}

SCRM_API int scrm_profile_unset(scrm_db *db, int64_t customer, const char *name)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (!name)
		return scrm__error(db, SCRM_MISUSE, "scrm_profile_unset: name is NULL");
	if ((rc = check_name(db, name)) || (rc = scrm__tx_begin(db)))
		return rc;
	return scrm__tx_end(db, unset_attr(db, customer, name));
}
