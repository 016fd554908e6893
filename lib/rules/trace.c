/*
 * The decision trace: one row per evaluation that fired or was stopped,
 * written in the transaction that decided; queried per customer (over
 * every id merged into it) or per rule, with the condition replayed from
 * the recorded inputs to show each sub-expression's value.
 */
#include <stdio.h>
#include <string.h>

#include "rules-int.h"

int ru__trace(ru_ctx *c, const ru_rule *r, int64_t version, const char *kind,
	      const char *instance, int64_t event_id, const char *outcome, const char *detail,
	      const char *inputs)
{
	scrm_db *db = c->db;
	sqlite3_stmt *st = scrm__stmt(
		db, "INSERT INTO rule_trace(rid, version, customer, at, kind, instance, event, outcome, "
		    "detail, inputs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, r->rid);
	sqlite3_bind_int64(st, 2, version);
	sqlite3_bind_int64(st, 3, c->customer);
	sqlite3_bind_int64(st, 4, c->now);
	sqlite3_bind_text(st, 5, kind, -1, SQLITE_STATIC);
	if (instance)
		sqlite3_bind_text(st, 6, instance, -1, SQLITE_STATIC);
	if (event_id)
		sqlite3_bind_int64(st, 7, event_id);
	sqlite3_bind_text(st, 8, outcome, -1, SQLITE_STATIC);
	if (detail && strcmp(detail, "{}") != 0)
		sqlite3_bind_text(st, 9, detail, -1, SQLITE_STATIC);
	if (inputs)
		sqlite3_bind_text(st, 10, inputs, -1, SQLITE_STATIC);
	return scrm__step_done(db, st, "writing the decision trace");
}

/* ------------------------------------------------------------ queries */

#define TRACE_COLS                                                                          \
	"SELECT t.id, r.id, t.version, t.customer, t.at, t.kind, t.instance, t.event, t.outcome, " \
	"t.detail, t.inputs, t.rid, "                                                         \
	"(SELECT json_extract(v.definition, '$.condition') FROM rule_version v "               \
	" WHERE v.rid = t.rid AND v.version = t.version) "                                     \
	"FROM rule_trace t JOIN rule r ON r.rid = t.rid "

static const char sql_all[] = TRACE_COLS "WHERE t.at >= ?3 ORDER BY t.at DESC, t.id DESC LIMIT ?4";
static const char sql_rule[] =
	TRACE_COLS "WHERE t.rid = ?1 AND t.at >= ?3 ORDER BY t.at DESC, t.id DESC LIMIT ?4";
static const char sql_customer[] =
	TRACE_COLS "WHERE t.customer IN (SELECT id FROM identity_customers WHERE root = ?2) "
		   "AND t.at >= ?3 ORDER BY t.at DESC, t.id DESC LIMIT ?4";
static const char sql_both[] =
	TRACE_COLS "WHERE t.rid = ?1 AND t.customer IN (SELECT id FROM identity_customers "
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
		scrm__buf_printf(b, "%s{\"id\":%lld,\"rule\":", n++ ? "," : "",
				 (long long)sqlite3_column_int64(st, 0));
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
			if (!ci || !cc)
				rc = scrm__error(db, SCRM_NOMEM, "out of memory");
			else
				rc = ru__replay(db, cc, ci, false, b);
			scrm__free(ci);
			scrm__free(cc);
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
