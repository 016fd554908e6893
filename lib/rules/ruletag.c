/*
 * Rule tags: tags defined by an expression over the profile. A customer
 * holds one exactly when the expression is true for it. The definition
 * lives in tag.definition as {"expr":…,"version":V}; changes are recorded
 * with source rule "tag:NAME" and that version. Kept current for a
 * customer when its events or attributes change (ru__ruletags_customer,
 * from the rule engine's listener) and for everyone by scrm_tags_refresh().
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "rules-int.h"


void ru__ruletags_clear(ru_state *s)
{
	for (size_t i = 0; i < s->nrtags; i++) {
		scrm__free(s->rtags[i].name);
		ru__seg_free(s->rtags[i].g);
	}
	scrm__free(s->rtags);
	s->rtags = NULL;
	s->nrtags = 0;
	s->rtags_loaded = false;
}

static int parse_def(scrm_db *db, const char *name, const char *def, char **expr, int64_t *version)
{
	cJSON *j = cJSON_Parse(def ? def : "");
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "expr");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
	int rc = SCRM_OK;
	if (!cJSON_IsString(e) || !cJSON_IsNumber(v))
		rc = scrm__error(db, j ? SCRM_CORRUPT : SCRM_NOMEM, "tag '%s': bad stored definition", name);
	else if (!(*expr = scrm__strdup(db, e->valuestring)))
		rc = scrm__error(db, SCRM_NOMEM, "out of memory");
	else
		*version = (int64_t)v->valuedouble;
	cJSON_Delete(j);
	return rc;
}

static int load(scrm_db *db, ru_state *s)
{
	if (s->rtags_loaded)
		return SCRM_OK;
	sqlite3_stmt *st = scrm__stmt(db, "SELECT id, name, definition FROM tag WHERE kind = 'rule' "
					  "ORDER BY name");
	if (!st)
		return scrm_errcode(db);
	int rc = SCRM_OK, r;
	size_t cap = 0;
	while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
		if (s->nrtags == cap) {
			size_t nc = cap ? 2 * cap : 8;
			ru_rtag *n = scrm__realloc(db, s->rtags, nc * sizeof *n);
			if (!n) {
				rc = scrm__error(db, SCRM_NOMEM, "out of memory");
				break;
			}
			s->rtags = n;
			cap = nc;
		}
		ru_rtag *t = &s->rtags[s->nrtags];
		memset(t, 0, sizeof *t);
		t->id = sqlite3_column_int64(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 1);
		char *expr = NULL, who[96];
		if (!(t->name = scrm__strdup(db, name))) {
			rc = scrm__error(db, SCRM_NOMEM, "out of memory");
			break;
		}
		s->nrtags++;
		snprintf(t->source, sizeof t->source, "tag:%s", name);
		snprintf(who, sizeof who, "tag '%s'", name);
		if (!(rc = parse_def(db, name, (const char *)sqlite3_column_text(st, 2), &expr,
				     &t->version)))
			rc = ru__seg_compile(db, expr, who, &t->g);
		scrm__free(expr);
	}
	if (!rc && r != SQLITE_DONE)
		rc = scrm__sqlerr(db, r, "reading rule tags");
	sqlite3_reset(st);
	if (rc)
		ru__ruletags_clear(s);
	else
		s->rtags_loaded = true;
	return rc;
}

int ru__ruletag_is(scrm_db *db, const char *name, bool *is)
{
	sqlite3_stmt *st = scrm__stmt(db, "SELECT kind = 'rule' FROM tag WHERE name = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	*is = s == SQLITE_ROW && sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	return s == SQLITE_ROW || s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "reading a tag");
}

int ru__ruletag_define(scrm_db *db, const char *name, const char *expr, int64_t gid,
		       const char *description)
{
	char who[96];
	snprintf(who, sizeof who, "tag '%s'", name);
	ru_seg *g;
	int rc = ru__seg_compile(db, expr, who, &g);
	if (rc)
		return rc;
	ru__seg_free(g);
	sqlite3_stmt *st;
	if (gid) {
		st = scrm__stmt(db, "SELECT exclusive FROM tag_group WHERE id = ?1");
		if (!st)
			return scrm_errcode(db);
		sqlite3_bind_int64(st, 1, gid);
		int s = sqlite3_step(st);
		bool excl = s == SQLITE_ROW && sqlite3_column_int(st, 0);
		sqlite3_reset(st);
		if (s != SQLITE_ROW && s != SQLITE_DONE)
			return scrm__sqlerr(db, s, "reading tag groups");
		if (excl)
			return scrm__error(db, SCRM_INVALID,
					   "tag '%s': a rule tag cannot be in an exclusive group", name);
	}
	st = scrm__stmt(db, "SELECT kind, definition, EXISTS (SELECT 1 FROM customer_tag WHERE "
			    "tag = t.id) FROM tag t WHERE name = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int64_t version = 1;
	if (s == SQLITE_ROW) {
		bool rule = strcmp((const char *)sqlite3_column_text(st, 0), "rule") == 0;
		if (!rule && sqlite3_column_int(st, 2)) {
			rc = scrm__error(db, SCRM_CONFLICT,
					 "tag '%s' is held by customers as a manual tag; it cannot "
					 "become a rule tag", name);
		} else if (rule) {
			char *old = NULL;
			int64_t v = 0;
			rc = parse_def(db, name, (const char *)sqlite3_column_text(st, 1), &old, &v);
			if (!rc)
				version = strcmp(old, expr) == 0 ? v : v + 1;
			scrm__free(old);
		}
	} else if (s != SQLITE_DONE) {
		rc = scrm__sqlerr(db, s, "reading a tag");
	}
	sqlite3_reset(st);
	if (rc)
		return rc;
	scrm_buf b;
	scrm__buf_init(&b, db);
	scrm__buf_puts(&b, "{\"expr\":");
	scrm__buf_json_str(&b, expr);
	scrm__buf_printf(&b, ",\"version\":%lld}", (long long)version);
	char *def;
	if ((rc = scrm__buf_finish(&b, &def)))
		return scrm__error(db, rc, "out of memory");
	st = scrm__stmt(db, "INSERT INTO tag(name, grp, kind, definition, description) "
			    "VALUES (?1, ?2, 'rule', ?3, ?4) ON CONFLICT(name) DO UPDATE SET "
			    "grp = ?2, kind = 'rule', definition = ?3, description = ?4");
	if (!st) {
		scrm__free(def);
		return scrm_errcode(db);
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (gid)
		sqlite3_bind_int64(st, 2, gid);
	sqlite3_bind_text(st, 3, def, -1, SQLITE_STATIC);
	if (description)
		sqlite3_bind_text(st, 4, description, -1, SQLITE_STATIC);
	rc = scrm__step_done(db, st, "storing a rule tag");
	scrm__free(def);
	if (!rc && !(rc = ru__bump_rev(db)))
		ru__invalidate(db);
	return rc;
}

/* ------------------------------------------------------------ one customer */

/* Most events change no rule tag: whether the customer holds it is read
 * by id first, and only a difference is written, with its history. A rule
 * tag is never in an exclusive group (ru__ruletag_define refuses it), so
 * nothing else of the customer's changes. */
static int set_one(scrm_db *db, const ru_rtag *t, int64_t customer, bool holds, int64_t now)
{
	bool held = false;
	int rc = ru__tag_held(db, customer, t->id, &held);
	if (rc || held == holds)
		return rc;
	return ru__tag_set_known(db, customer, t->id, holds, now, t->source, t->version);
}

int ru__ruletags_any(scrm_db *db, ru_state *s, bool *any)
{
	int rc = load(db, s);
	*any = rc == SCRM_OK && s->nrtags > 0;
	return rc;
}

int ru__ruletags_customer(scrm_db *db, int64_t customer, int64_t now)
{
	ru_state *s;
	int rc = ru__state(db, &s);
	if (rc || (rc = load(db, s)))
		return rc;
	for (size_t i = 0; i < s->nrtags && !rc; i++) {
		int holds = 0;
		if (!(rc = ru__seg_test(db, s->rtags[i].g, customer, now, &holds)))
			rc = set_one(db, &s->rtags[i], customer, holds != 0, now);
	}
	return rc;
}

/* ------------------------------------------------------------ refresh */

static int run(scrm_db *db, const char *sql, const ru_rtag *t, int64_t now, int64_t *changes)
{
	sqlite3_stmt *st = scrm__stmt(db, sql);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, t->id);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_text(st, 3, t->source, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, t->version);
	int rc = scrm__step_done(db, st, "refreshing a rule tag");
	if (!rc && changes)
		*changes = sqlite3_changes(scrm__sqlite(db));
	return rc;
}

/* The comma before a tag's entry in the summary, unless it is the first.
 * After a failed append the buffer may hold nothing at all (its oom sticks
 * and the call fails when it finishes). */
static void sum_sep(scrm_buf *sum)
{
	if (sum->len && sum->data[sum->len - 1] != '{')
		scrm__buf_puts(sum, ",");
}

static int refresh_one(scrm_db *db, const ru_rtag *t, int64_t now, scrm_buf *sum)
{
	int64_t holders = 0, added = 0, removed = 0;
	int rc = ru__seg_fill(db, t->g, now, &holders);
	/* History first (it needs the difference), then the change. A
	 * holding whose addition only its row records gets that addition
	 * written before it goes. */
	if (!rc)
		rc = run(db, "INSERT INTO tag_history(customer, tag, op, at, rule, rule_version, actor) "
			     "SELECT n.origin, ?1, 'add', n.at, n.rule, n.rule_version, n.actor "
			     "FROM customer_tag n WHERE n.tag = ?1 AND n.implicit IS NOT NULL AND "
			     "n.customer NOT IN (SELECT customer FROM temp.scrm_seg_ids)",
			 t, now, NULL);
	if (!rc)
		rc = run(db, "INSERT INTO tag_history(customer, tag, op, at, rule, rule_version) "
			     "SELECT n.customer, ?1, 'remove', ?2, ?3, ?4 FROM customer_tag n "
			     "WHERE n.tag = ?1 AND n.customer NOT IN (SELECT customer FROM temp.scrm_seg_ids)",
			 t, now, NULL);
	if (!rc)
		rc = run(db, "DELETE FROM customer_tag WHERE tag = ?1 AND customer NOT IN "
			     "(SELECT customer FROM temp.scrm_seg_ids)", t, now, &removed);
	/* Additions are recorded in their rows, as by the set-wise refresh. */
	if (!rc)
		rc = run(db, "INSERT INTO customer_tag(tag, customer, origin, at, rule, rule_version, "
			     "implicit) SELECT ?1, n.customer, n.customer, ?2, ?3, ?4, 1 "
			     "FROM temp.scrm_seg_ids n WHERE NOT EXISTS "
			     "(SELECT 1 FROM customer_tag WHERE tag = ?1 AND customer = n.customer)",
			 t, now, &added);
	if (rc)
		return rc;
	sum_sep(sum);
	scrm__buf_json_str(sum, t->name);
	scrm__buf_printf(sum, ":{\"holders\":%lld,\"added\":%lld,\"removed\":%lld,\"version\":%lld}",
			 (long long)holders, (long long)added, (long long)removed,
			 (long long)t->version);
	return SCRM_OK;
}

/* ---- every SQL rule tag in one pass: evaluate them all over the
 * population in id order, merge with the holders (customer_tag in key
 * order), collect the differences in memory, then write them set-wise.
 * Everything is evaluated before anything is written, so has_tag() of a
 * rule tag sees the holders as they were before the refresh.
 *
 * Writing the differences one statement each (two per change) cost 40% of
 * a first refresh (1.9M additions over 1M customers: 6.6G instructions at
 * 100k customers before, 4.4G after). Statements read them instead from
 * scrm_tagdiff (tagdiff.c), a table-valued function over the array: the
 * removals' history in the order found (customer, then tag name), the removals,
 * then the additions by tag id and customer, which is customer_tag's key
 * order (schema 8): they append. Additions are recorded in their
 * customer_tag rows (implicit), not in tag_history: at 1M customers a
 * first refresh spent as long writing two million history rows as it did
 * evaluating. */

static int diff_sql(scrm_db *db, ru_rtag *const *ts, size_t n, int64_t now, ru_changes *out,
		    int64_t *holders)
{
	ru_seg **gs = scrm__calloc(db, n, sizeof *gs);
	if (!gs)
		return scrm__error(db, SCRM_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		gs[i] = ts[i]->g;
	sqlite3_stmt *q = NULL, **m = scrm__calloc(db, n, sizeof *m);
	int *ms = scrm__calloc(db, n, sizeof *ms);
	int rc = m && ms ? ru__seg_multi(db, gs, n, now, &q)
			 : scrm__error(db, SCRM_NOMEM, "out of memory");
	/* The holders of each tag in customer order (its key range), merged
	 * with the evaluation as it goes. */
	for (size_t k = 0; !rc && k < n; k++) {
		int st = sqlite3_prepare_v2(scrm__sqlite(db),
					    "SELECT customer FROM customer_tag WHERE tag = ?1 "
					    "ORDER BY customer",
					    -1, &m[k], NULL);
		if (st != SQLITE_OK) {
			rc = scrm__sqlerr(db, st, "preparing rule tag holders");
			break;
		}
		sqlite3_bind_int64(m[k], 1, ts[k]->id);
		ms[k] = sqlite3_step(m[k]);
	}
	int qs = SQLITE_DONE;
	while (!rc && (qs = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0);
		for (size_t k = 0; !rc && k < n; k++) {
			/* Holders that are not (or no longer) live canonical
			 * customers lose the tag; then this customer's holding. */
			bool held = false;
			for (; !rc && ms[k] == SQLITE_ROW && sqlite3_column_int64(m[k], 0) <= id;
			     ms[k] = sqlite3_step(m[k])) {
				int64_t c = sqlite3_column_int64(m[k], 0);
				if (c < id)
					rc = ru__changes_push(out, c, (uint32_t)k, false);
				else
					held = true;
			}
			bool want = sqlite3_column_int(q, 1 + (int)k) != 0;
			holders[k] += want;
			if (!rc && want != held)
				rc = ru__changes_push(out, id, (uint32_t)k, want);
		}
	}
	for (size_t k = 0; !rc && k < n; k++)
		for (; !rc && ms[k] == SQLITE_ROW; ms[k] = sqlite3_step(m[k]))
			rc = ru__changes_push(out, sqlite3_column_int64(m[k], 0), (uint32_t)k, false);
	if (!rc && qs != SQLITE_DONE)
		rc = scrm__sqlerr(db, qs, "evaluating rule tags");
	for (size_t k = 0; !rc && k < n; k++)
		if (ms[k] != SQLITE_DONE)
			rc = scrm__sqlerr(db, ms[k], "reading rule tag holders");
	sqlite3_finalize(q);
	for (size_t k = 0; m && k < n; k++)
		sqlite3_finalize(m[k]);
	scrm__free(m);
	scrm__free(ms);
	scrm__free(gs);
	return rc;
}

/* One statement over scrm_tagdiff: ?1 the changes, ?2 now. */
static int apply_one(scrm_db *db, const char *sql, const ru_changes *c, int64_t now, const char *what)
{
	sqlite3_stmt *st = scrm__stmt(db, sql);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_pointer(st, 1, (void *)c, RU_TAGDIFF_POINTER, NULL);
	sqlite3_bind_int64(st, 2, now);
	int rc = scrm__step_done(db, st, what);
	sqlite3_clear_bindings(st); /* the pointer dies with the array */
	return rc;
}

static int pragma_int(scrm_db *db, const char *sql, int64_t *v)
{
	sqlite3_stmt *st = scrm__stmt(db, sql);
	if (!st)
		return scrm_errcode(db);
	int r = sqlite3_step(st);
	*v = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return r == SQLITE_ROW ? SCRM_OK : scrm__sqlerr(db, r, "reading the page cache size");
}

/* Bytes of pages one change dirties: an addition's customer_tag row
 * (about 30 at 1M customers, measured by the WAL a first refresh writes),
 * with room for partly filled pages and the history rows of removals. */
#define CHANGE_PAGE_BYTES 64
#define REFRESH_CACHE_MAX (INT64_C(1) << 30)

/* Grows the page cache so that the pages the writes dirty stay in it
 * until the commit. With the handle's 64 MiB, a first refresh over 1M
 * customers (230 MB of new pages) spilled pages to the WAL and read them
 * back: 140k more reads and writes. *old: the cache_size to restore after
 * the commit, or 0 when it was left alone (cache_size is never 0 here:
 * SQLite clamps it to at least 10 pages). */
static int grow_cache(scrm_db *db, size_t nchanges, int64_t *old)
{
	int64_t cur, psz;
	int rc = pragma_int(db, "PRAGMA cache_size", &cur);
	if (rc || (rc = pragma_int(db, "PRAGMA page_size", &psz)))
		return rc;
	int64_t have = cur < 0 ? -cur * 1024 : cur * psz;
	int64_t need = have + (int64_t)nchanges * CHANGE_PAGE_BYTES;
	if (need > REFRESH_CACHE_MAX)
		need = REFRESH_CACHE_MAX;
	if (need <= have + have / 4)
		return SCRM_OK; /* within what the cache holds anyway */
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA cache_size = %lld", -(long long)(need / 1024));
	if ((rc = scrm__exec(db, sql)))
		return rc;
	*old = cur;
	return SCRM_OK;
}

/* Removals first: the additions their rows alone recorded, then their own
 * history in the order found (customer, then tag name), then the rows.
 * Then the additions, recorded in their rows (implicit). Each change is
 * for a distinct (customer, tag), so the order of the two does not
 * matter. */
static int apply(scrm_db *db, ru_state *s, const ru_changes *c, int64_t now, int64_t *cache)
{
	if (!c->n)
		return SCRM_OK;
	int rc = grow_cache(db, c->n, cache);
	if (rc)
		return rc;
	if ((rc = ru__tagdiff_register(db, s)))
		return rc;
	if (c->nadds < c->n) {
		rc = apply_one(db, "INSERT INTO tag_history(customer, tag, op, at, rule, rule_version, "
				   "actor) SELECT origin, tag, 'add', at, rule, rule_version, actor "
				   "FROM customer_tag WHERE (tag, customer) IN "
				   "(SELECT tag, customer FROM scrm_tagdiff(?1, 2)) "
				   "AND implicit IS NOT NULL",
			       c, now, "recording the additions of removed tags");
		if (!rc)
			rc = apply_one(db, "INSERT INTO tag_history(customer, tag, op, at, rule, "
					   "rule_version) SELECT customer, tag, op, ?2, rule, version "
					   "FROM scrm_tagdiff(?1, 2)",
				       c, now, "recording tag removals");
		if (!rc)
			rc = apply_one(db, "DELETE FROM customer_tag WHERE (tag, customer) IN "
					   "(SELECT tag, customer FROM scrm_tagdiff(?1, 2))",
				       c, now, "removing tags");
	}
	if (!rc && c->nadds)
		rc = apply_one(db, "INSERT INTO customer_tag(tag, customer, origin, at, rule, "
				   "rule_version, implicit) SELECT tag, customer, customer, ?2, rule, "
				   "version, 1 FROM scrm_tagdiff(?1, 1)",
			       c, now, "adding tags");
	return rc;
}

/* c->adds: the additions by tag id, then customer (the order found). */
static int order_adds(scrm_db *db, ru_changes *c, const int64_t *added)
{
	size_t n = c->nts, *at = scrm__calloc(db, n, sizeof *at);
	if (!at)
		return scrm__error(db, SCRM_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) /* tags before tag i in id order */
		for (size_t j = 0; j < n; j++)
			if (c->ts[j]->id < c->ts[i]->id)
				at[i] += (size_t)added[j];
	for (size_t i = 0; i < n; i++)
		c->nadds += (size_t)added[i];
	if (c->nadds && !(c->adds = scrm__malloc(db, c->nadds * sizeof *c->adds))) {
		scrm__free(at);
		return scrm__error(db, SCRM_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].add)
			c->adds[at[c->v[i].tag]++] = i;
	scrm__free(at);
	return SCRM_OK;
}

static int refresh_sql(scrm_db *db, ru_state *s, ru_rtag *const *ts, size_t n, int64_t now,
		       scrm_buf *sum, int64_t *cache)
{
	if (!n)
		return SCRM_OK;
	/* holders, added, removed by tag */
	int64_t *cnt = scrm__calloc(db, 3 * n, sizeof *cnt);
	if (!cnt)
		return scrm__error(db, SCRM_NOMEM, "out of memory");
	ru_changes c = {db, ts, n, NULL, 0, 0, NULL, 0};
	int rc = diff_sql(db, ts, n, now, &c, cnt);
	for (size_t i = 0; !rc && i < c.n; i++)
		cnt[(c.v[i].add ? n : 2 * n) + c.v[i].tag]++;
	if (!rc)
		rc = order_adds(db, &c, cnt + n);
	if (!rc)
		rc = apply(db, s, &c, now, cache);
	for (size_t i = 0; !rc && i < n; i++) {
		sum_sep(sum);
		scrm__buf_json_str(sum, ts[i]->name);
		scrm__buf_printf(sum, ":{\"holders\":%lld,\"added\":%lld,\"removed\":%lld,\"version\":%lld}",
				 (long long)cnt[i], (long long)cnt[n + i], (long long)cnt[2 * n + i],
				 (long long)ts[i]->version);
	}
	scrm__free(c.v);
	scrm__free(c.adds);
	scrm__free(cnt);
	return rc;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int refresh(scrm_db *db, const char *tag, scrm_buf *sum, int64_t *cache)
{
	double t0 = mono_s();
	ru_state *s;
	int rc = ru__state(db, &s);
	if (rc || (rc = load(db, s)))
		return rc;
	bool found = false;
	if (tag) {
		bool exists;
		if ((rc = ru__tag_exists(db, tag, &exists)))
			return rc;
		if (!exists)
			return scrm__error(db, SCRM_NOTFOUND, "tag '%.64s' is not defined", tag);
	}
	int64_t now = scrm__now(db);
	scrm__buf_puts(sum, "{\"tags\":{");
	/* SQL plans all together in one pass; the others one by one. */
	ru_rtag **sqlt = s->nrtags ? scrm__calloc(db, s->nrtags, sizeof *sqlt) : NULL;
	if (s->nrtags && !sqlt)
		return scrm__error(db, SCRM_NOMEM, "out of memory");
	size_t nsql = 0;
	for (size_t i = 0; i < s->nrtags && !rc; i++) {
		if (tag && strcmp(tag, s->rtags[i].name) != 0)
			continue;
		found = true;
		if (ru__seg_is_sql(s->rtags[i].g))
			sqlt[nsql++] = &s->rtags[i];
		else
			rc = refresh_one(db, &s->rtags[i], now, sum);
	}
	if (!rc)
		rc = refresh_sql(db, s, sqlt, nsql, now, sum, cache);
	scrm__free(sqlt);
	if (rc)
		return rc;
	if (tag && !found)
		return scrm__error(db, SCRM_INVALID, "tag '%.64s' is a manual tag, not a rule tag", tag);
	sqlite3_stmt *st = scrm__stmt(db, "SELECT count(*) FROM identity_customers WHERE root = id "
					  "AND erased_at IS NULL");
	if (!st)
		return scrm_errcode(db);
	int r = sqlite3_step(st);
	int64_t n = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (r != SQLITE_ROW)
		return scrm__sqlerr(db, r, "counting customers");
	scrm__buf_printf(sum, "},\"customers\":%lld,\"seconds\":%.3f}", (long long)n, mono_s() - t0);
	return SCRM_OK;
}

SCRM_API int scrm_tags_refresh(scrm_db *db, const char *tag, char **summary)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (summary)
		*summary = NULL;
	if ((rc = scrm__tx_begin(db)))
		return rc;
	scrm_buf b;
	scrm__buf_init(&b, db);
	int64_t cache = 0; /* cache_size to restore: the commit writes with the grown cache */
	/* The summary is complete before the commit: failing to report must
	 * not leave the refresh behind. */
	rc = refresh(db, tag, &b, &cache);
	if (rc == SCRM_OK && b.oom)
		rc = scrm__error(db, SCRM_NOMEM, "out of memory building the refresh summary");
	rc = scrm__tx_end(db, rc);
	if (cache) {
		char sql[64];
		snprintf(sql, sizeof sql, "PRAGMA cache_size = %lld", (long long)cache);
		int r = sqlite3_exec(scrm__sqlite(db), sql, NULL, NULL, NULL);
		if (!rc && r != SQLITE_OK)
			rc = scrm__sqlerr(db, r, "restoring the page cache size");
	}
	if (rc || !summary) {
		scrm__buf_reset(&b);
		return rc;
	}
	return scrm__buf_finish(&b, summary);
}
