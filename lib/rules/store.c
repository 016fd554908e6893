/*
 * Stored rules: loading (versioned: a changed definition is version + 1,
 * an unchanged reload keeps its version), enabling, removing, listing, and
 * the per-handle cache of compiled rules indexed by event type, refreshed
 * when the stored revision scrm_meta 'rules.rev' moves.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rules-int.h"

/* ------------------------------------------------------------ the cache */

static void rules_free(ru_rule *rules, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ru__rule_free(&rules[i]);
	scrm__free(rules);
}

static void buckets_free(ru_bucket *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		scrm__free(b[i].type);
		scrm__free(b[i].ev);
		scrm__free(b[i].start);
		scrm__free(b[i].miss);
	}
	scrm__free(b);
}

static void state_clear_rules(ru_state *s)
{
	rules_free(s->rules, s->nrules);
	buckets_free(s->buckets, s->nbuckets);
	ru__config_clear(&s->cfg);
	ru__ruletags_clear(s);
	s->rules = NULL;
	s->buckets = NULL;
	s->nrules = s->nbuckets = s->ndate = 0;
}

static void state_destroy(scrm_db *db, void *p)
{
	(void)db;
	ru_state *s = p;
	state_clear_rules(s);
	scrm_expr_env_free(s->env);
	scrm__free(s);
}

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

const ru_bucket *ru__bucket(const ru_state *s, const char *type)
{
	if (!s->nbuckets)
		return NULL;
	size_t mask = s->nbuckets - 1;
	for (size_t i = (size_t)str_hash(type) & mask;; i = (i + 1) & mask) {
		const ru_bucket *b = &s->buckets[i];
		if (!b->type)
			return NULL;
		if (strcmp(b->type, type) == 0)
			return b;
	}
}

static ru_bucket *bucket_get(scrm_db *db, ru_bucket *tab, size_t cap, const char *type)
{
	size_t mask = cap - 1;
	for (size_t i = (size_t)str_hash(type) & mask;; i = (i + 1) & mask) {
		ru_bucket *b = &tab[i];
		if (!b->type) {
			b->type = scrm__strdup(db, type);
			return b->type ? b : NULL;
		}
		if (strcmp(b->type, type) == 0)
			return b;
	}
}

static bool push(scrm_db *db, int **arr, size_t *n, int v)
{
	/* Lists are short; grow one by one in powers of two. */
	if ((*n & (*n - 1)) == 0) {
		size_t cap = *n ? *n * 2 : 1;
		int *p = scrm__realloc(db, *arr, cap * sizeof *p);
		if (!p)
			return false;
		*arr = p;
	}
	(*arr)[(*n)++] = v;
	return true;
}

static int build_index(scrm_db *db, ru_state *s)
{
	size_t cap = 8;
	while (cap < s->nrules * 4)
		cap *= 2;
	ru_bucket *tab = scrm__calloc(db, cap, sizeof *tab);
	if (!tab)
		return scrm__error(db, SCRM_NOMEM, "out of memory indexing rules");
	for (size_t i = 0; i < s->nrules; i++) {
		const ru_rule *r = &s->rules[i];
		ru_bucket *b;
		bool ok = true;
		if (r->trig == RU_TRIG_EVENT)
			ok = (b = bucket_get(db, tab, cap, r->type)) && push(db, &b->ev, &b->nev, (int)i);
		else if (r->trig == RU_TRIG_ABSENCE)
			ok = (b = bucket_get(db, tab, cap, r->type)) &&
			     push(db, &b->start, &b->nstart, (int)i) &&
			     (b = bucket_get(db, tab, cap, r->missing)) &&
			     push(db, &b->miss, &b->nmiss, (int)i);
		else
			s->ndate++;
		if (!ok) {
			buckets_free(tab, cap);
			return scrm__error(db, SCRM_NOMEM, "out of memory indexing rules");
		}
	}
	s->buckets = tab;
	s->nbuckets = cap;
	return SCRM_OK;
}

static int read_rev(scrm_db *db, char rev[40])
{
	sqlite3_stmt *st = scrm__stmt(db, "SELECT value FROM scrm_meta WHERE key = 'rules.rev'");
	if (!st)
		return scrm_errcode(db);
	rev[0] = '\0';
	int s = sqlite3_step(st), rc = SCRM_OK;
	if (s == SQLITE_ROW)
		snprintf(rev, 40, "r%s", (const char *)sqlite3_column_text(st, 0));
	else if (s != SQLITE_DONE)
		rc = scrm__sqlerr(db, s, "reading the rules revision");
	sqlite3_reset(st);
	return rc;
}

static int load_rules(scrm_db *db, ru_state *s)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT rid, id, version, definition FROM rule WHERE removed = 0 AND enabled = 1 "
		    "ORDER BY priority, id");
	if (!st)
		return scrm_errcode(db);
	ru_rule *rules = NULL;
	size_t n = 0, cap = 0;
	int rc = SCRM_OK, step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			ru_rule *nr = scrm__realloc(db, rules, cap * sizeof *nr);
			if (!nr) {
				rc = scrm__error(db, SCRM_NOMEM, "out of memory loading rules");
				break;
			}
			rules = nr;
		}
		const char *id = (const char *)sqlite3_column_text(st, 1);
		cJSON *j = cJSON_Parse((const char *)sqlite3_column_text(st, 3));
		if (!j) {
			rc = scrm__error(db, SCRM_NOMEM, "out of memory loading rule '%s'", id);
			break;
		}
		rc = ru__rule_parse(db, j, &s->cfg, &rules[n]);
		cJSON_Delete(j);
		if (rc == SCRM_NOMEM)
			break;
		if (rc) {
			/* A stored rule this library cannot run (say, a tag it
			 * needs is gone) must not stop events from being stored. */
			scrm__log(db, SCRM_LOG_WARN, "rule '%s' skipped: %s", id, scrm_errmsg(db));
			scrm__clear_error(db);
			rc = SCRM_OK;
			continue;
		}
		rules[n].rid = sqlite3_column_int64(st, 0);
		rules[n].version = sqlite3_column_int64(st, 2);
		rules[n].enabled = true;
		n++;
	}
	if (!rc && step != SQLITE_DONE)
		rc = scrm__sqlerr(db, step, "loading rules");
	sqlite3_reset(st);
	if (rc) {
		rules_free(rules, n);
		return rc;
	}
	s->rules = rules;
	s->nrules = n;
	return SCRM_OK;
}

int ru__state_raw(scrm_db *db, ru_state **out)
{
	ru_state *s = scrm__engine_get(db, SCRM_ENGINE_RULES);
	if (!s) {
		if (!(s = scrm__calloc(db, 1, sizeof *s)))
			return scrm__error(db, SCRM_NOMEM, "out of memory");
		if (scrm_expr_env_new(&s->env) != SCRM_OK) {
			scrm__free(s);
			return scrm__error(db, SCRM_NOMEM, "out of memory");
		}
		scrm__engine_set(db, SCRM_ENGINE_RULES, s, state_destroy);
	}
	*out = s;
	return SCRM_OK;
}

int ru__state(scrm_db *db, ru_state **out)
{
	ru_state *s;
	int rc = ru__state_raw(db, &s);
	if (rc)
		return rc;
	/* Nobody else can commit while we hold the write lock: checked once
	 * per write transaction is enough. */
	uint64_t serial = scrm__tx_in_write(db) ? scrm__tx_serial(db) : 0;
	if (serial && s->fresh_in_tx == serial && s->rev[0]) {
		*out = s;
		return SCRM_OK;
	}
	char rev[40];
	if ((rc = read_rev(db, rev)))
		return rc;
	if (s->rev[0] && strcmp(rev, s->rev) == 0) {
		s->fresh_in_tx = serial;
		*out = s;
		return SCRM_OK;
	}
	s->rev[0] = '\0';
	state_clear_rules(s);
	if ((rc = ru__config_load(db, &s->cfg)) || (rc = load_rules(db, s)) ||
	    (rc = build_index(db, s))) {
		state_clear_rules(s);
		return rc;
	}
	s->fresh_in_tx = serial;
	memcpy(s->rev, rev, sizeof rev);
	*out = s;
	return SCRM_OK;
}

int ru__bump_rev(scrm_db *db)
{
	/* A random revision, not a counter: a change rolled back here and a
	 * different change committed elsewhere must never look the same. */
	sqlite3_stmt *st = scrm__stmt(
		db, "UPDATE scrm_meta SET value = lower(hex(randomblob(8))) WHERE key = 'rules.rev'");
	return st ? scrm__step_done(db, st, "bumping the rules revision") : scrm_errcode(db);
}

void ru__invalidate(scrm_db *db)
{
	ru_state *s = scrm__engine_get(db, SCRM_ENGINE_RULES);
	if (s) {
		s->rev[0] = '\0';
		s->fresh_in_tx = 0;
	}
}

/* ------------------------------------------------------------ storing */

static int step_sql(scrm_db *db, const char *sql, const char *what, int64_t a, const char *s)
{
	sqlite3_stmt *st = scrm__stmt(db, sql);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, a);
	if (s)
		sqlite3_bind_text(st, 2, s, -1, SQLITE_STATIC);
	return scrm__step_done(db, st, what);
}

/* Forget a rule's pending work (its trigger changed, or it went away). */
static int drop_pending(scrm_db *db, int64_t rid, bool waits, bool dates, bool deferred)
{
	int rc = SCRM_OK;
	if (waits)
		rc = step_sql(db, "DELETE FROM rule_wait WHERE rid = ?1", "dropping waits", rid, NULL);
	if (!rc && dates)
		rc = step_sql(db, "DELETE FROM rule_date WHERE rid = ?1", "dropping schedules", rid, NULL);
	if (!rc && deferred)
		rc = step_sql(db, "DELETE FROM rule_deferred WHERE rid = ?1", "dropping deferrals", rid,
			      NULL);
	return rc;
}

/* The attributes date rules read, for the profile_attr triggers. */
static int date_attrs_refresh(scrm_db *db)
{
	return scrm__exec(
		db, "DELETE FROM rule_date_attr;"
		    "INSERT OR IGNORE INTO rule_date_attr(name) "
		    "  SELECT json_extract(definition, '$.trigger.attribute') FROM rule "
		    "  WHERE removed = 0 AND enabled = 1 "
		    "  AND json_extract(definition, '$.trigger.type') = 'date';"
		    "INSERT OR IGNORE INTO rule_date_attr(name) "
		    "  SELECT 'tz' WHERE EXISTS (SELECT 1 FROM rule_date_attr);");
}

/* Every customer holding `attr` is (re)scheduled by the next tick. */
static int mark_attr_dirty(scrm_db *db, const char *attr, int64_t now)
{
	return step_sql(db, "INSERT OR IGNORE INTO rule_date_dirty(customer, since) "
			    "SELECT DISTINCT customer, ?1 FROM profile_attr WHERE name = ?2",
			"scheduling date rules", now, attr);
}

typedef struct stored {
	bool found, removed, enabled;
	int64_t rid, version;
	char *definition;
} stored;

static int read_stored(scrm_db *db, const char *id, stored *o)
{
	memset(o, 0, sizeof *o);
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT rid, version, enabled, removed, definition FROM rule WHERE id = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st), rc = SCRM_OK;
	if (s == SQLITE_ROW) {
		o->found = true;
		o->rid = sqlite3_column_int64(st, 0);
		o->version = sqlite3_column_int64(st, 1);
		o->enabled = sqlite3_column_int(st, 2) != 0;
		o->removed = sqlite3_column_int(st, 3) != 0;
		if (!(o->definition = scrm__strdup(db, (const char *)sqlite3_column_text(st, 4))))
			rc = scrm__error(db, SCRM_NOMEM, "out of memory");
	} else if (s != SQLITE_DONE) {
		rc = scrm__sqlerr(db, s, "reading a rule");
	}
	sqlite3_reset(st);
	return rc;
}

static bool same_trigger(const char *a, const char *b)
{
	cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b);
	bool same = ja && jb &&
		    cJSON_Compare(cJSON_GetObjectItemCaseSensitive(ja, "trigger"),
				  cJSON_GetObjectItemCaseSensitive(jb, "trigger"), 1);
	cJSON_Delete(ja);
	cJSON_Delete(jb);
	return same;
}

static int store_rule(scrm_db *db, const ru_rule *r, int64_t now, size_t index, scrm_buf *rep)
{
	stored o;
	int rc = read_stored(db, r->id, &o);
	if (rc)
		return rc;
	bool changed = !o.found || o.removed || strcmp(o.definition, r->definition) != 0;
	bool trig_changed = !o.found || o.removed || !same_trigger(o.definition, r->definition);
	int64_t version = o.found ? o.version + (changed ? 1 : 0) : 1;
	int64_t rid = o.rid;
	sqlite3_stmt *st;
	if (!o.found) {
		st = scrm__stmt(db, "INSERT INTO rule(id, version, enabled, priority, definition, "
				    "updated_at) VALUES (?1, 1, ?2, ?3, ?4, ?5)");
		if (!st) {
			rc = scrm_errcode(db);
			goto out;
		}
		sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
	} else {
		st = scrm__stmt(db, "UPDATE rule SET version = ?6, enabled = ?2, priority = ?3, "
				    "definition = ?4, updated_at = ?5, removed = 0 WHERE rid = ?1");
		if (!st) {
			rc = scrm_errcode(db);
			goto out;
		}
		sqlite3_bind_int64(st, 1, rid);
		sqlite3_bind_int64(st, 6, version);
	}
	sqlite3_bind_int(st, 2, r->enabled);
	sqlite3_bind_int64(st, 3, r->priority);
	sqlite3_bind_text(st, 4, r->definition, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now);
	if ((rc = scrm__step_done(db, st, "storing a rule")))
		goto out;
	if (!o.found)
		rid = sqlite3_last_insert_rowid(scrm__sqlite(db));
	if (changed) {
		st = scrm__stmt(db, "INSERT OR REPLACE INTO rule_version(rid, version, definition, at) "
				    "VALUES (?1, ?2, ?3, ?4)");
		if (!st) {
			rc = scrm_errcode(db);
			goto out;
		}
		sqlite3_bind_int64(st, 1, rid);
		sqlite3_bind_int64(st, 2, version);
		sqlite3_bind_text(st, 3, r->definition, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, now);
		if ((rc = scrm__step_done(db, st, "storing a rule version")))
			goto out;
	}
	bool was_on = o.found && !o.removed && o.enabled;
	if (o.found && (trig_changed || !r->enabled) &&
	    (rc = drop_pending(db, rid, trig_changed, trig_changed || !r->enabled, false)))
		goto out;
	if (r->trig == RU_TRIG_DATE && r->enabled && (trig_changed || !was_on))
		rc = mark_attr_dirty(db, r->attr, now);
	if (!rc) {
		scrm__buf_puts(rep, index ? ",{\"id\":" : "{\"id\":");
		scrm__buf_json_str(rep, r->id);
		scrm__buf_printf(rep, ",\"version\":%lld,\"changed\":%s,\"enabled\":%s}",
				 (long long)version, changed ? "true" : "false",
				 r->enabled ? "true" : "false");
	}
out:
	scrm__free(o.definition);
	return rc;
}

static int load_doc(scrm_db *db, const char *json, scrm_buf *rep)
{
	cJSON *root;
	ru_config cfg;
	ru_rule *rules = NULL;
	size_t n = 0;
	if (strnlen(json, RU_LOAD_MAX + 1) > RU_LOAD_MAX)
		return scrm__error(db, SCRM_LIMIT, "rules: more than %d bytes of JSON", RU_LOAD_MAX);
	int rc = scrm__json_parse(db, json, "rules", &root);
	if (rc)
		return rc;
	if ((rc = ru__config_load(db, &cfg))) {
		cJSON_Delete(root);
		return rc;
	}
	int count = cJSON_IsArray(root) ? cJSON_GetArraySize(root) : 1;
	if (!cJSON_IsArray(root) && !cJSON_IsObject(root)) {
		rc = scrm__error(db, SCRM_INVALID, "rules must be a rule object or an array of rules");
		goto out;
	}
	if (count > RU_RULES_MAX) {
		rc = scrm__error(db, SCRM_LIMIT, "rules: more than %d rules in one load", RU_RULES_MAX);
		goto out;
	}
	if (count && !(rules = scrm__calloc(db, (size_t)count, sizeof *rules))) {
		rc = scrm__error(db, SCRM_NOMEM, "out of memory");
		goto out;
	}
	const cJSON *first = cJSON_IsArray(root) ? root->child : root;
	for (const cJSON *j = first; j; j = cJSON_IsArray(root) ? j->next : NULL) {
		if ((rc = ru__rule_parse(db, j, &cfg, &rules[n])))
			goto out;
		n++;
		for (size_t k = 0; k + 1 < n; k++)
			if (strcmp(rules[k].id, rules[n - 1].id) == 0) {
				rc = scrm__error(db, SCRM_INVALID, "rules: id '%s' is given twice",
						 rules[k].id);
				goto out;
			}
	}
	int64_t now = scrm__now(db);
	scrm__buf_puts(rep, "{\"rules\":[");
	for (size_t i = 0; i < n && !rc; i++)
		rc = store_rule(db, &rules[i], now, i, rep);
	scrm__buf_puts(rep, "]}");
	if (!rc)
		rc = date_attrs_refresh(db);
	if (!rc)
		rc = ru__bump_rev(db);
	if (!rc && rep->oom)
		rc = scrm__error(db, SCRM_NOMEM, "out of memory building the load report");
out:
	for (size_t i = 0; i < n; i++)
		ru__rule_free(&rules[i]);
	scrm__free(rules);
	ru__config_clear(&cfg);
	cJSON_Delete(root);
	return rc;
}

SCRM_API int scrm_rules_load(scrm_db *db, const char *json, char **report)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (report)
		*report = NULL;
	if (!json)
		return scrm__error(db, SCRM_MISUSE, "scrm_rules_load: json is NULL");
	scrm_buf rep;
	scrm__buf_init(&rep, db);
	if ((rc = scrm__tx_begin(db)) == SCRM_OK)
		rc = scrm__tx_end(db, load_doc(db, json, &rep));
	ru__invalidate(db);
	if (rc == SCRM_OK && report)
		rc = scrm__buf_finish(&rep, report);
	scrm__buf_reset(&rep);
	return rc;
}

static int find_live(scrm_db *db, const char *id, stored *o)
{
	if (!id)
		return scrm__error(db, SCRM_MISUSE, "rule id is NULL");
	int rc = read_stored(db, id, o);
	if (!rc && (!o->found || o->removed))
		rc = scrm__error(db, SCRM_NOTFOUND, "no rule '%.*s'", scrm__utf8_clip(id, 64), id);
	return rc;
}

static int set_enabled(scrm_db *db, const char *id, bool on)
{
	stored o;
	int rc = find_live(db, id, &o);
	if (!rc && o.enabled != on) {
		int64_t now = scrm__now(db);
		rc = step_sql(db, on ? "UPDATE rule SET enabled = 1 WHERE rid = ?1"
				     : "UPDATE rule SET enabled = 0 WHERE rid = ?1",
			      "enabling a rule", o.rid, NULL);
		if (!rc && !on)
			rc = drop_pending(db, o.rid, false, true, false);
		if (!rc) {
			cJSON *j = cJSON_Parse(o.definition);
			const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "trigger") : NULL;
			const cJSON *ty = t ? cJSON_GetObjectItemCaseSensitive(t, "type") : NULL;
			const cJSON *at = t ? cJSON_GetObjectItemCaseSensitive(t, "attribute") : NULL;
			if (!j)
				rc = scrm__error(db, SCRM_NOMEM, "out of memory");
			else if (cJSON_IsString(ty) && strcmp(ty->valuestring, "date") == 0) {
				rc = date_attrs_refresh(db);
				if (!rc && on && cJSON_IsString(at))
					rc = mark_attr_dirty(db, at->valuestring, now);
			}
			cJSON_Delete(j);
		}
		if (!rc)
			rc = ru__bump_rev(db);
	}
	scrm__free(o.definition);
	return rc;
}

SCRM_API int scrm_rules_enable(scrm_db *db, const char *id, int enabled)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if ((rc = scrm__tx_begin(db)) == SCRM_OK)
		rc = scrm__tx_end(db, set_enabled(db, id, enabled != 0));
	ru__invalidate(db);
	return rc;
}

static int remove_rule(scrm_db *db, const char *id)
{
	stored o;
	int rc = find_live(db, id, &o);
	if (!rc)
		rc = step_sql(db, "UPDATE rule SET removed = 1, enabled = 0 WHERE rid = ?1",
			      "removing a rule", o.rid, NULL);
	if (!rc)
		rc = drop_pending(db, o.rid, true, true, true);
	if (!rc)
		rc = date_attrs_refresh(db);
	if (!rc)
		rc = ru__bump_rev(db);
	scrm__free(o.definition);
	return rc;
}

SCRM_API int scrm_rules_remove(scrm_db *db, const char *id)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if ((rc = scrm__tx_begin(db)) == SCRM_OK)
		rc = scrm__tx_end(db, remove_rule(db, id));
	ru__invalidate(db);
	return rc;
}

/* ------------------------------------------------------------ reading */

static int get_json(scrm_db *db, const char *id, int64_t version, char **out)
{
	stored o;
	int rc = read_stored(db, id, &o);
	if (rc)
		return rc;
	if (!o.found) {
		rc = scrm__error(db, SCRM_NOTFOUND, "no rule '%.*s'", scrm__utf8_clip(id, 64), id);
		goto out;
	}
	const char *def = o.definition;
	char *old = NULL;
	if (version && version != o.version) {
		sqlite3_stmt *st = scrm__stmt(
			db, "SELECT definition FROM rule_version WHERE rid = ?1 AND version = ?2");
		if (!st) {
			rc = scrm_errcode(db);
			goto out;
		}
		sqlite3_bind_int64(st, 1, o.rid);
		sqlite3_bind_int64(st, 2, version);
		int s = sqlite3_step(st);
		if (s == SQLITE_ROW) {
			if (!(old = scrm__strdup(db, (const char *)sqlite3_column_text(st, 0))))
				rc = scrm__error(db, SCRM_NOMEM, "out of memory");
		} else if (s == SQLITE_DONE) {
			rc = scrm__error(db, SCRM_NOTFOUND, "rule '%s' has no version %lld", id,
					 (long long)version);
		} else {
			rc = scrm__sqlerr(db, s, "reading a rule version");
		}
		sqlite3_reset(st);
		if (rc)
			goto out;
		def = old;
	} else {
		version = o.version;
	}
	/* The stored definition is canonical JSON: splice in the state. */
	scrm_buf b;
	scrm__buf_init(&b, db);
	scrm__buf_printf(&b, "{\"version\":%lld,\"current_version\":%lld,\"enabled\":%s,\"removed\":%s,",
			 (long long)version, (long long)o.version,
			 o.enabled && !o.removed ? "true" : "false", o.removed ? "true" : "false");
	scrm__buf_puts(&b, def + 1);
	scrm__free(old);
	rc = scrm__buf_finish(&b, out);
out:
	scrm__free(o.definition);
	return rc;
}

SCRM_API int scrm_rules_get_json(scrm_db *db, const char *id, int64_t version, char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!id || !out)
		return scrm__error(db, SCRM_MISUSE, "scrm_rules_get_json: id or out is NULL");
	*out = NULL;
	if (version < 0)
		return scrm__error(db, SCRM_RANGE, "rule version %lld is negative", (long long)version);
	if ((rc = scrm__tx_begin_read(db)))
		return rc;
	return scrm__tx_end(db, get_json(db, id, version, out));
}

static int list_json(scrm_db *db, scrm_buf *b)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT id, version, enabled, priority, updated_at, "
		    "json_extract(definition, '$.name'), json_extract(definition, '$.trigger.type'), "
		    "coalesce(json_extract(definition, '$.trigger.event'), "
		    "json_extract(definition, '$.trigger.start'), "
		    "json_extract(definition, '$.trigger.attribute')), "
		    "json_extract(definition, '$.limits.group') "
		    "FROM rule WHERE removed = 0 ORDER BY priority, id");
	if (!st)
		return scrm_errcode(db);
	int s, n = 0;
	scrm__buf_puts(b, "[");
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		scrm__buf_puts(b, n++ ? ",{\"id\":" : "{\"id\":");
		scrm__buf_json_str(b, (const char *)sqlite3_column_text(st, 0));
		scrm__buf_printf(b, ",\"version\":%lld,\"enabled\":%s,\"priority\":%lld,\"updated_at\":%lld",
				 (long long)sqlite3_column_int64(st, 1),
				 sqlite3_column_int(st, 2) ? "true" : "false",
				 (long long)sqlite3_column_int64(st, 3),
				 (long long)sqlite3_column_int64(st, 4));
		static const char *const names[] = {"name", "trigger", "on", "group"};
		for (int i = 0; i < 4; i++) {
			const char *v = (const char *)sqlite3_column_text(st, 5 + i);
			scrm__buf_printf(b, ",\"%s\":", names[i]);
			if (v)
				scrm__buf_json_str(b, v);
			else
				scrm__buf_puts(b, "null");
		}
		scrm__buf_puts(b, "}");
	}
	sqlite3_reset(st);
	scrm__buf_puts(b, "]");
	return s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "listing rules");
}

SCRM_API int scrm_rules_list_json(scrm_db *db, char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_rules_list_json: out is NULL");
	*out = NULL;
	scrm_buf b;
	scrm__buf_init(&b, db);
	if ((rc = scrm__tx_begin_read(db)) == SCRM_OK)
		rc = scrm__tx_end(db, list_json(db, &b));
	if (rc == SCRM_OK)
		return scrm__buf_finish(&b, out);
	scrm__buf_reset(&b);
	return rc;
}
