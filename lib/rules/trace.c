/*
 * The decision trace: one row per evaluation that fired or was stopped,
 * written in the transaction that decided; queried per customer (over
 * every id merged into it) or per rule, with the condition replayed from
 * the recorded inputs to show each sub-expression's value.
 */
#include <stdio.h>
#include <string.h>

#include "rules-int.h"

struct ru_trace_row {
	int64_t rid, version, at, event;
	const char *outcome;
	char *kind, *instance, *detail, *inputs;
};

static void row_free(struct ru_trace_row *t)
{
	scrm__free(t->kind);
	scrm__free(t->instance);
	scrm__free(t->detail);
	scrm__free(t->inputs);
}

void ru__trace_drop(ru_ctx *c)
{
	for (size_t i = 0; i < c->ntrace; i++)
		row_free(&c->trace[i]);
	scrm__free(c->trace);
	c->trace = NULL;
	c->ntrace = c->captrace = 0;
}

int ru__trace(ru_ctx *c, const ru_rule *r, int64_t version, const char *kind,
	      const char *instance, int64_t event_id, const char *outcome, const char *detail,
	      const char *inputs)
{
	scrm_db *db = c->db;
	if (c->ntrace == c->captrace) {
		size_t cap = c->captrace ? c->captrace * 2 : 8;
		struct ru_trace_row *p = scrm__realloc(db, c->trace, cap * sizeof *p);
		if (!p)
			return scrm__error(db, SCRM_NOMEM, "out of memory tracing");
		c->trace = p;
		c->captrace = cap;
	}
	struct ru_trace_row *t = &c->trace[c->ntrace];
	memset(t, 0, sizeof *t);
	t->rid = r->rid;
	t->version = version;
	t->at = c->now;
	t->event = event_id;
	t->outcome = outcome;
	bool ok = (t->kind = scrm__strdup(db, kind)) && (t->instance = scrm__strdup(db, instance ? instance : ""));
	if (ok && detail && strcmp(detail, "{}") != 0)
		ok = (t->detail = scrm__strdup(db, detail)) != NULL;
	if (ok && inputs)
		ok = (t->inputs = scrm__strdup(db, inputs)) != NULL;
	if (!ok) {
		row_free(t);
		return scrm__error(db, SCRM_NOMEM, "out of memory tracing");
	}
	c->ntrace++;
	return SCRM_OK;
}

/* Up to four decisions per statement: they share customer and time and
 * land on one page of the clustered table. */
#define TRACE_INS "INSERT INTO rule_trace(customer, at, rid, instance, outcome, version, kind, " \
		  "event, detail, inputs) VALUES "
#define TRACE_ROW "(?,?,?,?,?,?,?,?,?,?)"
#define TRACE_END " ON CONFLICT DO NOTHING"
static const char *const trace_sql[4] = {
	TRACE_INS TRACE_ROW TRACE_END,
	TRACE_INS TRACE_ROW "," TRACE_ROW TRACE_END,
	TRACE_INS TRACE_ROW "," TRACE_ROW "," TRACE_ROW TRACE_END,
	TRACE_INS TRACE_ROW "," TRACE_ROW "," TRACE_ROW "," TRACE_ROW TRACE_END,
};

int ru__trace_flush(ru_ctx *c)
{
	scrm_db *db = c->db;
	int rc = SCRM_OK;
	for (size_t i = 0; i < c->ntrace && !rc; i += 4) {
		size_t n = c->ntrace - i < 4 ? c->ntrace - i : 4;
		sqlite3_stmt *st = scrm__stmt(db, trace_sql[n - 1]);
		if (!st) {
			rc = scrm_errcode(db);
			break;
		}
		for (size_t k = 0; k < n; k++) {
			const struct ru_trace_row *t = &c->trace[i + k];
			int b = (int)k * 10;
			sqlite3_bind_int64(st, b + 1, c->customer);
			sqlite3_bind_int64(st, b + 2, t->at);
			sqlite3_bind_int64(st, b + 3, t->rid);
			sqlite3_bind_text(st, b + 4, t->instance, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, b + 5, t->outcome, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, b + 6, t->version);
			sqlite3_bind_text(st, b + 7, t->kind, -1, SQLITE_STATIC);
			if (t->event)
				sqlite3_bind_int64(st, b + 8, t->event);
			if (t->detail)
				sqlite3_bind_text(st, b + 9, t->detail, -1, SQLITE_STATIC);
			if (t->inputs)
				sqlite3_bind_text(st, b + 10, t->inputs, -1, SQLITE_STATIC);
		}
		rc = scrm__step_done(db, st, "writing the decision trace");
	}
	ru__trace_drop(c);
	return rc;
}

/* ------------------------------------------------------------ queries */

#define TRACE_COLS                                                                          \
	"SELECT t.at, r.id, t.version, t.customer, t.at, t.kind, t.instance, t.event, t.outcome, " \
	"t.detail, t.inputs, t.rid, "                                                         \
	"(SELECT json_extract(v.definition, '$.condition') FROM rule_version v "               \
	" WHERE v.rid = t.rid AND v.version = t.version) "                                     \
	"FROM rule_trace t JOIN rule r ON r.rid = t.rid "

static const char sql_all[] = TRACE_COLS "WHERE t.at >= ?3 ORDER BY t.at DESC, t.rid LIMIT ?4";
static const char sql_rule[] =
	TRACE_COLS "WHERE t.rid = ?1 AND t.at >= ?3 ORDER BY t.at DESC, t.customer LIMIT ?4";
static const char sql_customer[] =
	TRACE_COLS "WHERE t.customer IN (SELECT id FROM identity_customers WHERE root = ?2) "
		   "AND t.at >= ?3 ORDER BY t.at DESC, t.rid LIMIT ?4";
static const char sql_both[] =
	TRACE_COLS "WHERE t.rid = ?1 AND t.customer IN (SELECT id FROM identity_customers "
		   "WHERE root = ?2) AND t.at >= ?3 ORDER BY t.at DESC LIMIT ?4";

static void put_text(scrm_buf *b, sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);
	if (t)
		scrm__buf_json_str(b, t);
	else
		scrm__buf_puts(b, "null");
}

static int trace_json(scrm_db *db, const char *rule_id, int64_t customer, int64_t since,
		      int limit, unsigned flags, scrm_buf *b)
{
	int64_t rid = 0, root = 0;
	int rc;
	if (rule_id) {
		sqlite3_stmt *st = scrm__stmt(db, "SELECT rid FROM rule WHERE id = ?1");
		if (!st)
			return scrm_errcode(db);
		sqlite3_bind_text(st, 1, rule_id, -1, SQLITE_STATIC);
		int s = sqlite3_step(st);
		rid = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_reset(st);
		if (s != SQLITE_ROW && s != SQLITE_DONE)
			return scrm__sqlerr(db, s, "reading a rule");
		if (!rid)
			return scrm__error(db, SCRM_NOTFOUND, "no rule '%.*s'", scrm__utf8_clip(rule_id, 64),
					   rule_id);
	}
	if (customer && (rc = ru__canonical(db, customer, &root)))
		return rc;
	sqlite3_stmt *st = scrm__stmt(db, rule_id ? (customer ? sql_both : sql_rule)
						  : (customer ? sql_customer : sql_all));
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, rid);
	sqlite3_bind_int64(st, 2, root);
	sqlite3_bind_int64(st, 3, since);
	sqlite3_bind_int64(st, 4, limit > 0 ? limit : -1);
	int s, n = 0;
	rc = SCRM_OK;
	scrm__buf_puts(b, "[");
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		scrm__buf_puts(b, n++ ? ",{\"rule\":" : "{\"rule\":");
		put_text(b, st, 1);
		scrm__buf_printf(b, ",\"version\":%lld,\"customer\":%lld,\"at\":%lld,\"trigger\":",
				 (long long)sqlite3_column_int64(st, 2),
				 (long long)sqlite3_column_int64(st, 3),
				 (long long)sqlite3_column_int64(st, 4));
		put_text(b, st, 5);
		scrm__buf_puts(b, ",\"instance\":");
		put_text(b, st, 6);
		if (sqlite3_column_type(st, 7) != SQLITE_NULL)
			scrm__buf_printf(b, ",\"event\":%lld", (long long)sqlite3_column_int64(st, 7));
		scrm__buf_puts(b, ",\"outcome\":");
		put_text(b, st, 8);
		const char *detail = (const char *)sqlite3_column_text(st, 9);
		scrm__buf_puts(b, ",\"detail\":");
		scrm__buf_puts(b, detail ? detail : "{}");
		const char *inputs = (const char *)sqlite3_column_text(st, 10);
		const char *cond = (const char *)sqlite3_column_text(st, 12);
		if (inputs) {
			scrm__buf_puts(b, ",\"inputs\":");
			scrm__buf_puts(b, inputs);
		}
		if (inputs && cond && (flags & SCRM_RULES_TRACE_STEPS)) {
			scrm__buf_puts(b, ",\"condition\":");
			/* Copies: the replay uses other cached statements. */
			char *ci = scrm__strdup(db, inputs), *cc = scrm__strdup(db, cond);
			const char *kind = (const char *)sqlite3_column_text(st, 5);
			const char *inst = (const char *)sqlite3_column_text(st, 6);
			char *ck = kind ? scrm__strdup(db, kind) : NULL, *cin = inst ? scrm__strdup(db, inst) : NULL;
			ru_replay_row row = {sqlite3_column_int64(st, 4), sqlite3_column_int64(st, 7), ck, cin};
			if (!ci || !cc || (kind && !ck) || (inst && !cin))
				rc = scrm__error(db, SCRM_NOMEM, "out of memory");
			else
				rc = ru__replay(db, cc, ci, &row, b);
			scrm__free(ci);
			scrm__free(cc);
			scrm__free(ck);
			scrm__free(cin);
			if (rc)
				break;
		}
		scrm__buf_puts(b, "}");
	}
	sqlite3_reset(st);
	scrm__buf_puts(b, "]");
	if (rc)
		return rc;
	if (s != SQLITE_DONE)
		return scrm__sqlerr(db, s, "reading the decision trace");
	return b->oom ? scrm__error(db, SCRM_NOMEM, "out of memory building the trace") : SCRM_OK;
}

SCRM_API int scrm_rules_trace_json(scrm_db *db, const char *rule_id, int64_t customer,
				   int64_t since_ms, int limit, unsigned int flags, char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_rules_trace_json: out is NULL");
	*out = NULL;
	if (customer < 0)
		return scrm__error(db, SCRM_INVALID, "customer %lld is not a customer id",
				   (long long)customer);
	if (limit < 0)
		return scrm__error(db, SCRM_RANGE, "trace limit %d is negative", limit);
	if (flags & ~(unsigned)SCRM_RULES_TRACE_STEPS)
		return scrm__error(db, SCRM_INVALID, "unknown trace flags 0x%x", flags);
	scrm_buf b;
	scrm__buf_init(&b, db);
	if ((rc = scrm__tx_begin_read(db)) == SCRM_OK)
		rc = scrm__tx_end(db, trace_json(db, rule_id, customer, since_ms, limit, flags, &b));
	if (rc == SCRM_OK)
		return scrm__buf_finish(&b, out);
	scrm__buf_reset(&b);
	return rc;
}

static int prune(scrm_db *db, int64_t before, int64_t *deleted)
{
	sqlite3_stmt *st = scrm__stmt(db, "DELETE FROM rule_trace WHERE at < ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, before);
	int rc = scrm__step_done(db, st, "pruning the decision trace");
	if (!rc && deleted)
		*deleted = sqlite3_changes64(scrm__sqlite(db));
	return rc;
}

SCRM_API int scrm_rules_trace_prune(scrm_db *db, int64_t before_ms, int64_t *deleted)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (deleted)
		*deleted = 0;
	if ((rc = scrm__tx_begin(db)))
		return rc;
	return scrm__tx_end(db, prune(db, before_ms, deleted));
}
