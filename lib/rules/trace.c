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

/* The decisions one evaluation pass made about one trigger instance (the
 * rules an event triggered, say) are one row: [rid, version, outcome,
 * detail, inputs] each, the latest recorded first. A row per decision, with
 * its index entry, was the largest single cost of an event with rules. */
static bool same_group(const struct ru_trace_row *a, const struct ru_trace_row *b)
{
	return a->at == b->at && a->event == b->event && strcmp(a->kind, b->kind) == 0 &&
	       strcmp(a->instance, b->instance) == 0;
}

static int flush_group(ru_ctx *c, const struct ru_trace_row *g, size_t n, scrm_buf *b)
{
	scrm_db *db = c->db;
	b->len = 0;
	scrm__buf_puts(b, "[");
	for (size_t k = n; k-- > 0;) {
		const struct ru_trace_row *t = &g[k];
		scrm__buf_puts(b, k + 1 < n ? ",[" : "[");
		scrm__buf_int(b, t->rid);
		scrm__buf_puts(b, ",");
		scrm__buf_int(b, t->version);
		scrm__buf_puts(b, ",\"");
		scrm__buf_puts(b, t->outcome); /* one of the engine's own words */
		scrm__buf_puts(b, "\",");
		scrm__buf_puts(b, t->detail ? t->detail : "null");
		scrm__buf_puts(b, ",");
		scrm__buf_puts(b, t->inputs ? t->inputs : "null");
		scrm__buf_puts(b, "]");
	}
	scrm__buf_puts(b, "]");
	if (b->oom)
		return scrm__error(db, SCRM_NOMEM, "out of memory tracing");
	sqlite3_stmt *st = scrm__stmt(db, "INSERT INTO rule_trace(customer, at, kind, instance, "
					  "event, n, decisions) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, c->customer);
	sqlite3_bind_int64(st, 2, g->at);
	sqlite3_bind_text(st, 3, g->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, g->instance, -1, SQLITE_STATIC);
	if (g->event)
		sqlite3_bind_int64(st, 5, g->event);
	sqlite3_bind_int64(st, 6, (int64_t)n);
	sqlite3_bind_text(st, 7, b->data, (int)b->len, SQLITE_STATIC);
	return scrm__step_done(db, st, "writing the decision trace");
}

int ru__trace_flush(ru_ctx *c)
{
	scrm_buf b;
	scrm__buf_init(&b, c->db);
	int rc = SCRM_OK;
	for (size_t i = 0, n; i < c->ntrace && !rc; i += n) {
		for (n = 1; i + n < c->ntrace && same_group(&c->trace[i], &c->trace[i + n]); n++)
			;
		rc = flush_group(c, &c->trace[i], n, &b);
	}
	scrm__buf_reset(&b);
	ru__trace_drop(c);
	return rc;
}

/* ------------------------------------------------------------ queries */

/* One result row per decision: json_each unpacks a trace row. */
#define DEC(i) "json_extract(j.value, '$[" #i "]')"
#define TRACE_COLS                                                                          \
	"SELECT t.at, r.id, " DEC(1) ", t.customer, t.at, t.kind, t.instance, t.event, " DEC(2) \
	", " DEC(3) ", " DEC(4) ", r.rid, "                                                      \
	"(SELECT json_extract(v.definition, '$.condition') FROM rule_version v "               \
	" WHERE v.rid = r.rid AND v.version = " DEC(1) ") "                                     \
	"FROM rule_trace t JOIN json_each(t.decisions) j JOIN rule r ON r.rid = " DEC(0) " "

/* Without a customer: the table newest first (rowid order is recording
 * order), stopping at the limit. With one: its index, by time. Within a
 * row the latest decision comes first. */
static const char sql_all[] = TRACE_COLS "WHERE t.at >= ?3 ORDER BY t.id DESC LIMIT ?4";
static const char sql_rule[] =
	TRACE_COLS "WHERE " DEC(0) " = ?1 AND t.at >= ?3 ORDER BY t.id DESC LIMIT ?4";
static const char sql_customer[] =
	TRACE_COLS "WHERE t.customer IN (SELECT id FROM identity_customers WHERE root = ?2) "
		   "AND t.at >= ?3 ORDER BY t.at DESC, t.id DESC LIMIT ?4";
static const char sql_both[] =
	TRACE_COLS "WHERE " DEC(0) " = ?1 AND t.customer IN (SELECT id FROM identity_customers "
		   "WHERE root = ?2) AND t.at >= ?3 ORDER BY t.at DESC, t.id DESC LIMIT ?4";

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
	sqlite3_stmt *st = scrm__stmt(db, "SELECT coalesce(sum(n), 0) FROM rule_trace WHERE at < ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, before);
	int s = sqlite3_step(st);
	int64_t n = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (s != SQLITE_ROW)
		return scrm__sqlerr(db, s, "reading the decision trace");
	if (!(st = scrm__stmt(db, "DELETE FROM rule_trace WHERE at < ?1")))
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, before);
	int rc = scrm__step_done(db, st, "pruning the decision trace");
	if (!rc && deleted)
		*deleted = n;
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
