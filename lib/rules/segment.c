/*
 * Segments: an expression over the profile evaluated for the population
 * (canonical, unerased customers). What segment_sql.c can translate runs
 * as one SQL query, which reads the time and the lifecycle thresholds as
 * parameters, so a plan is prepared once; anything else is evaluated
 * customer by customer with the rule engine's lazy profile binding. Rule
 * tags (ruletag.c) use the same plans.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment-int.h"

/* ------------------------------------------------------------ compile */

void ru__seg_free(ru_seg *g)
{
	if (!g)
		return;
	ru__expr_free(g->x);
	scrm__free(g->where);
	scrm__free(g->mwhere);
	sqlite3_finalize(g->ids);
	sqlite3_finalize(g->count);
	sqlite3_finalize(g->test);
	sqlite3_finalize(g->fill);
	scrm__free(g);
}

int ru__seg_compile(scrm_db *db, const char *src, const char *who, ru_seg **out)
{
	*out = NULL;
	if (!src)
		return scrm__error(db, SCRM_MISUSE, "%s: expression is NULL", who);
	scrm_expr *e;
	int rc = scrm_expr_compile(src, NULL, &e);
	if (rc)
		return scrm__error(db, rc == SCRM_MISUSE ? SCRM_INVALID : rc, "%s: %s", who,
				   scrm_errmsg(NULL));
	for (int i = 0; i < scrm_expr_var_count(e); i++) {
		const char *p = scrm_expr_var_name(e, i);
		if (strncmp(p, "profile", 7) != 0 || (p[7] != '\0' && p[7] != '.')) {
			rc = scrm__error(db, SCRM_INVALID,
					 "%s: reads '%.120s', but segments and rule tags read profile.… only",
					 who, p);
			scrm_expr_free(e);
			return rc;
		}
	}
	ru_seg *g = scrm__calloc(db, 1, sizeof *g);
	if (!g) {
		scrm_expr_free(e);
		return scrm__error(db, SCRM_NOMEM, "out of memory");
	}
	scrm_buf b;
	scrm__buf_init(&b, db);
	bool is_bool = false;
	bool sql = ru__seg_sql(db, e, g, false, &b, &is_bool);
	if (sql && !is_bool) {
		/* Holds only when exactly true: never, for a non-boolean. */
		b.len = 0;
		scrm__buf_puts(&b, "0");
	}
	if (!sql)
		scrm__buf_reset(&b);
	else if ((rc = scrm__buf_finish(&b, &g->where)))
		goto fail;
	if (sql && is_bool) {
		/* Again, cheapest operands first, for ru__seg_multi. */
		scrm__buf_init(&b, db);
		if (!ru__seg_sql(db, e, g, true, &b, &is_bool) ||
		    (rc = scrm__buf_finish(&b, &g->mwhere))) {
			scrm__buf_reset(&b);
			rc = rc ? scrm__error(db, rc, "out of memory")
				: scrm__error(db, SCRM_ERROR, "%s: translating again failed", who);
			goto fail;
		}
	}
	scrm_expr_free(e);
	e = NULL;
	if ((rc = ru__expr_compile(db, src, who, "expr", false, RU_TRIG_DATE, &g->x)))
		goto fail;
	*out = g;
	return SCRM_OK;
fail:
	scrm_expr_free(e);
	ru__seg_free(g);
	return rc ? rc : scrm__error(db, SCRM_NOMEM, "out of memory");
}

bool ru__seg_is_sql(const ru_seg *g)
{
	return g->where != NULL;
}

/* ------------------------------------------------------------ running */

static int prepare(scrm_db *db, ru_seg *g, int which, sqlite3_stmt **st)
{
	static const char *const heads[] = {"SELECT c.id", "SELECT count(*)", "SELECT 1",
					    "INSERT INTO temp.scrm_seg_ids(customer) SELECT c.id"};
	static const char *const tails[] = {" AND c.id > ?6 ORDER BY c.id", "", " AND c.id = ?6", ""};
	if (*st) {
		sqlite3_reset(*st);
		return SCRM_OK;
	}
	scrm_buf b;
	scrm__buf_init(&b, db);
	/* Start from a table the condition needs a row of (CROSS JOIN keeps
	 * that order); join the others as the condition reads them. */
	scrm__buf_printf(&b, "%s FROM ", heads[which]);
	if (g->need_score)
		scrm__buf_puts(&b, "profile_score s CROSS JOIN identity_customers c ON c.id = s.customer");
	else if (g->need_fig)
		scrm__buf_puts(&b, "profile_figures f CROSS JOIN identity_customers c ON c.id = f.customer");
	else
		scrm__buf_puts(&b, "identity_customers c");
	if (g->fig && !(g->need_fig && !g->need_score))
		scrm__buf_puts(&b, g->need_fig ? " CROSS JOIN profile_figures f ON f.customer = c.id"
					       : " LEFT JOIN profile_figures f ON f.customer = c.id");
	if (g->score && !g->need_score)
		scrm__buf_puts(&b, " LEFT JOIN profile_score s ON s.customer = c.id");
	scrm__buf_printf(&b, " WHERE c.root = c.id AND c.erased_at IS NULL AND %s%s", g->where,
			 tails[which]);
	char *sql;
	int rc = scrm__buf_finish(&b, &sql);
	if (rc)
		return scrm__error(db, rc, "out of memory");
	int s = sqlite3_prepare_v3(scrm__sqlite(db), sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
	if (s != SQLITE_OK) {
		rc = scrm__sqlerr(db, s, "preparing a segment query");
		scrm__log(db, SCRM_LOG_ERROR, "cannot prepare: %s", sql);
	}
	scrm__free(sql);
	return rc;
}

static int bind(scrm_db *db, ru_seg *g, sqlite3_stmt *st, int64_t now)
{
	int64_t ms[4] = {0, 0, 0, 0};
	int rc = g->fig ? scrm__profile_lifecycle_ms(db, ms) : SCRM_OK;
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, now);
	for (int i = 0; i < 4; i++)
		sqlite3_bind_int64(st, 2 + i, ms[i]);
	return SCRM_OK;
}

/* Customer by customer: evaluate with the rule engine's binding. */
static int scan_one(scrm_db *db, ru_state *s, ru_seg *g, int64_t customer, int64_t now, int *holds)
{
	ru_ctx c;
	int evalerr;
	ru__ctx_init(&c, db, s, customer, now);
	c.trig_kind = "segment";
	int rc = ru__eval(&c, g->x, holds, &evalerr, NULL);
	ru__ctx_clear(&c);
	return rc;
}

int ru__seg_test(scrm_db *db, ru_seg *g, int64_t customer, int64_t now, int *holds)
{
	*holds = 0;
	if (!g->where) {
		ru_state *s;
		int rc = ru__state(db, &s);
		return rc ? rc : scan_one(db, s, g, customer, now, holds);
	}
	int rc = prepare(db, g, 2, &g->test);
	if (rc || (rc = bind(db, g, g->test, now)))
		return rc;
	sqlite3_bind_int64(g->test, 6, customer);
	int st = sqlite3_step(g->test);
	*holds = st == SQLITE_ROW;
	sqlite3_reset(g->test);
	return st == SQLITE_ROW || st == SQLITE_DONE ? SCRM_OK
						     : scrm__sqlerr(db, st, "evaluating a segment");
}

int ru__seg_run(scrm_db *db, ru_seg *g, int64_t now, int64_t after, int64_t limit,
		int (*fn)(void *ud, int64_t customer), void *ud)
{
	int rc, st;
	int64_t n = 0;
	if (g->where) {
		if ((rc = prepare(db, g, 0, &g->ids)) || (rc = bind(db, g, g->ids, now)))
			return rc;
		sqlite3_bind_int64(g->ids, 6, after);
		while ((st = sqlite3_step(g->ids)) == SQLITE_ROW) {
			if ((rc = fn(ud, sqlite3_column_int64(g->ids, 0))) || (limit && ++n >= limit)) {
				sqlite3_reset(g->ids);
				return rc;
			}
		}
		sqlite3_reset(g->ids);
		return st == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, st, "running a segment");
	}
	ru_state *s;
	if ((rc = ru__state(db, &s)))
		return rc;
	/* Not a cached statement: evaluating runs others meanwhile. */
	sqlite3_stmt *q;
	st = sqlite3_prepare_v2(scrm__sqlite(db),
				"SELECT id FROM identity_customers WHERE root = id AND erased_at IS NULL "
				"AND id > ?1 ORDER BY id", -1, &q, NULL);
	if (st != SQLITE_OK)
		return scrm__sqlerr(db, st, "preparing a segment scan");
	sqlite3_bind_int64(q, 1, after);
	rc = SCRM_OK;
	while (!rc && (st = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0);
		int holds = 0;
		if (!(rc = scan_one(db, s, g, id, now, &holds)) && holds) {
			rc = fn(ud, id);
			if (!rc && limit && ++n >= limit)
				break;
		}
	}
	if (!rc && st != SQLITE_ROW && st != SQLITE_DONE)
		rc = scrm__sqlerr(db, st, "scanning customers");
	sqlite3_finalize(q);
	return rc;
}

static int count_one(void *ud, int64_t customer)
{
	(void)customer;
	(*(int64_t *)ud)++;
	return 0;
}

int ru__seg_count(scrm_db *db, ru_seg *g, int64_t now, int64_t *count)
{
	*count = 0;
	if (!g->where)
		return ru__seg_run(db, g, now, 0, 0, count_one, count);
	int rc = prepare(db, g, 1, &g->count);
	if (rc || (rc = bind(db, g, g->count, now)))
		return rc;
	int st = sqlite3_step(g->count);
	if (st == SQLITE_ROW)
		*count = sqlite3_column_int64(g->count, 0);
	sqlite3_reset(g->count);
	return st == SQLITE_ROW ? SCRM_OK : scrm__sqlerr(db, st, "counting a segment");
}

static int fill_one(void *ud, int64_t customer)
{
	scrm_db *db = ud;
	sqlite3_stmt *st = scrm__stmt(db, "INSERT INTO temp.scrm_seg_ids(customer) VALUES (?1)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, customer);
	return scrm__step_done(db, st, "collecting a segment");
}

int ru__seg_fill(scrm_db *db, ru_seg *g, int64_t now, int64_t *n)
{
	int rc = scrm__exec(db, "CREATE TEMP TABLE IF NOT EXISTS scrm_seg_ids("
				"customer INTEGER PRIMARY KEY); DELETE FROM temp.scrm_seg_ids;");
	if (rc)
		return rc;
	if (!g->where)
		rc = ru__seg_run(db, g, now, 0, 0, fill_one, db);
	else if (!(rc = prepare(db, g, 3, &g->fill)) && !(rc = bind(db, g, g->fill, now))) {
		int st = sqlite3_step(g->fill);
		sqlite3_reset(g->fill);
		if (st != SQLITE_DONE)
			rc = scrm__sqlerr(db, st, "collecting a segment");
	}
	if (rc)
		return rc;
	sqlite3_stmt *st = scrm__stmt(db, "SELECT count(*) FROM temp.scrm_seg_ids");
	if (!st)
		return scrm_errcode(db);
	int s = sqlite3_step(st);
	*n = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return s == SQLITE_ROW ? SCRM_OK : scrm__sqlerr(db, s, "counting a segment");
}

int ru__seg_multi(scrm_db *db, ru_seg *const *gs, size_t n, int64_t now, sqlite3_stmt **out)
{
	*out = NULL;
	bool fig = false, score = false;
	for (size_t i = 0; i < n; i++) {
		if (!gs[i]->where)
			return scrm__error(db, SCRM_MISUSE, "ru__seg_multi: a plan that is not SQL");
		fig |= gs[i]->fig;
		score |= gs[i]->score;
	}
	scrm_buf b;
	scrm__buf_init(&b, db);
	scrm__buf_puts(&b, "SELECT c.id");
	/* CASE WHEN x THEN 1 ELSE 0 END is `(x) IS 1`, but SQLite codes the
	 * condition as jumps: && and || stop at the first operand that decides
	 * them (the mwhere order puts subqueries last), where a value context
	 * computes every operand. */
	for (size_t i = 0; i < n; i++)
		scrm__buf_printf(&b, ", CASE WHEN %s THEN 1 ELSE 0 END",
				 gs[i]->mwhere ? gs[i]->mwhere : gs[i]->where);
	scrm__buf_printf(&b, " FROM identity_customers c%s%s WHERE c.root = c.id AND "
			     "c.erased_at IS NULL ORDER BY c.id",
			 fig ? " LEFT JOIN profile_figures f ON f.customer = c.id" : "",
			 score ? " LEFT JOIN profile_score s ON s.customer = c.id" : "");
	char *sql;
	int rc = scrm__buf_finish(&b, &sql);
	if (rc)
		return scrm__error(db, rc, "out of memory");
	int s = sqlite3_prepare_v2(scrm__sqlite(db), sql, -1, out, NULL);
	scrm__free(sql);
	if (s != SQLITE_OK)
		return scrm__sqlerr(db, s, "preparing rule tag evaluation");
	/* Thresholds are needed when any plan reads figures (lifecycle). */
	ru_seg tmp = {.fig = fig};
	if ((rc = bind(db, &tmp, *out, now))) {
		sqlite3_finalize(*out);
		*out = NULL;
	}
	return rc;
}

int ru__seg_explain(scrm_db *db, ru_seg *g, scrm_buf *b)
{
	if (!g->where) {
		scrm__buf_puts(b, "{\"plan\":\"scan\",\"why\":");
		scrm__buf_json_str(b, g->why);
		scrm__buf_puts(b, "}");
		return SCRM_OK;
	}
	int rc = prepare(db, g, 0, &g->ids);
	if (rc)
		return rc;
	scrm__buf_puts(b, "{\"plan\":\"sql\",\"sql\":");
	scrm__buf_json_str(b, sqlite3_sql(g->ids));
	scrm__buf_puts(b, "}");
	return SCRM_OK;
}
