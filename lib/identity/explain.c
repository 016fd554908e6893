/*
 * Read-side views of the identity graph: identifiers of a customer, the
 * merge history, and the explain graph as JSON and Graphviz DOT.
 */
#include <string.h>

#include "identity-int.h"

static const char sql_idents[] =
	"SELECT k.name, i.value, o.channel, i.obs, o.at, i.home FROM ident i "
	"JOIN id_kind k ON k.id = i.kind LEFT JOIN observation o ON o.id = i.obs "
	"WHERE i.customer = ?1 ORDER BY k.priority, k.name, i.value";
static const char sql_history[] =
	"SELECT id, op, survivor, absorbed, obs, at, reason, undone_by, undoes FROM merge_log "
	"WHERE survivor IN (SELECT id FROM customer WHERE root=?1) "
	"OR absorbed IN (SELECT id FROM customer WHERE root=?1) ORDER BY id";
static const char sql_members[] = "SELECT id FROM customer WHERE root=?1 AND id<>?1 ORDER BY id";
/* Observations that attached an identifier now held, merged, or recorded a
 * conflict involving this customer's members. */
static const char sql_obs[] =
	"WITH m(id) AS (SELECT id FROM customer WHERE root=?1) "
	"SELECT id, channel, at, customer, outcome FROM observation WHERE id IN ("
	" SELECT obs FROM ident WHERE customer=?1"
	" UNION SELECT obs FROM merge_log WHERE survivor IN m OR absorbed IN m"
	" UNION SELECT obs FROM id_conflict WHERE owner IN m OR target IN m) ORDER BY id";
static const char sql_conflicts[] =
	"SELECT c.id, c.obs, k.name, c.value, c.owner, c.target, c.reason, c.at FROM id_conflict c "
	"JOIN id_kind k ON k.id = c.kind WHERE c.owner IN (SELECT id FROM customer WHERE root=?1) "
	"OR c.target IN (SELECT id FROM customer WHERE root=?1) ORDER BY c.id";

static void col_json(scrm_buf *b, sqlite3_stmt *st, int i)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_NULL: scrm__buf_puts(b, "null"); break;
	case SQLITE_INTEGER: scrm__buf_printf(b, "%lld", (long long)sqlite3_column_int64(st, i)); break;
	default: scrm__buf_json_str(b, (const char *)sqlite3_column_text(st, i)); break;
	}
}

/* Append rows of `sql` (bound to ?1 = root) as a JSON array of objects. */
static int rows_json(scrm_db *db, scrm_buf *b, const char *sql, int64_t root,
		     const char *const *names)
{
	sqlite3_stmt *st = scrm__stmt(db, sql);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	scrm__buf_puts(b, "[");
	int s, n = 0;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		scrm__buf_puts(b, n++ ? ",{" : "{");
		for (int i = 0; names[i]; i++) {
			scrm__buf_printf(b, "%s\"%s\":", i ? "," : "", names[i]);
			col_json(b, st, i);
		}
		scrm__buf_puts(b, "}");
	}
	sqlite3_reset(st);
	scrm__buf_puts(b, "]");
	return s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "reading the identity graph");
}

static const char *const ident_cols[] = {"kind", "value", "channel", "observation", "at", "home", NULL};
static const char *const hist_cols[] = {"id", "op", "survivor", "absorbed", "observation", "at",
					"reason", "undone_by", "undoes", NULL};
static const char *const obs_cols[] = {"id", "channel", "at", "customer", "outcome", NULL};
static const char *const conf_cols[] = {"id", "observation", "kind", "value", "owner", "target",
					"reason", "at", NULL};

typedef int (*view_fn)(scrm_db *db, scrm_buf *b, int64_t id, int64_t root);

static int view(scrm_db *db, int64_t id, char **out, view_fn fn)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "output pointer is NULL");
	*out = NULL;
	if ((rc = scrm__tx_begin_read(db)))
		return rc;
	int64_t root;
	scrm_buf b;
	scrm__buf_init(&b, db);
	if (!(rc = id__root(db, id, &root)) && !(rc = fn(db, &b, id, root)))
		rc = scrm__buf_finish(&b, out);
	scrm__buf_reset(&b);
	return scrm__tx_end(db, rc);
}

static int v_list(scrm_db *db, scrm_buf *b, int64_t id, int64_t root)
{
	(void)id;
	return rows_json(db, b, sql_idents, root, ident_cols);
}

static int v_history(scrm_db *db, scrm_buf *b, int64_t id, int64_t root)
{
	(void)id;
	return rows_json(db, b, sql_history, root, hist_cols);
}

static int v_explain(scrm_db *db, scrm_buf *b, int64_t id, int64_t root)
{
	int rc;
	scrm__buf_printf(b, "{\"customer\":%lld,\"canonical\":%lld,\"absorbed\":[", (long long)id,
			 (long long)root);
	sqlite3_stmt *st = scrm__stmt(db, sql_members);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	for (int n = 0; sqlite3_step(st) == SQLITE_ROW; n++)
		scrm__buf_printf(b, "%s%lld", n ? "," : "", (long long)sqlite3_column_int64(st, 0));
	sqlite3_reset(st);
	scrm__buf_puts(b, "],\"identifiers\":");
	if ((rc = rows_json(db, b, sql_idents, root, ident_cols)))
		return rc;
	scrm__buf_puts(b, ",\"observations\":");
	if ((rc = rows_json(db, b, sql_obs, root, obs_cols)))
		return rc;
	scrm__buf_puts(b, ",\"history\":");
	if ((rc = rows_json(db, b, sql_history, root, hist_cols)))
		return rc;
	scrm__buf_puts(b, ",\"conflicts\":");
	if ((rc = rows_json(db, b, sql_conflicts, root, conf_cols)))
		return rc;
	scrm__buf_puts(b, "}");
	return SCRM_OK;
}

/* DOT string literal: JSON escaping is valid DOT escaping for our text. */
static int v_dot(scrm_db *db, scrm_buf *b, int64_t id, int64_t root)
{
	(void)id;
	scrm__buf_printf(b, "digraph customer_%lld {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n",
			 (long long)root);
	scrm__buf_printf(b, "  c%lld [shape=box, style=bold, label=\"customer %lld\"];\n",
			 (long long)root, (long long)root);
	sqlite3_stmt *st = scrm__stmt(db, sql_members);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	while (sqlite3_step(st) == SQLITE_ROW) {
		long long m = sqlite3_column_int64(st, 0);
		scrm__buf_printf(b, "  c%lld [shape=box, label=\"customer %lld\\n(absorbed)\"];\n", m, m);
	}
	sqlite3_reset(st);
	st = scrm__stmt(db, sql_idents);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	int s, n = 0;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		char label[600];
		snprintf(label, sizeof label, "%s\n%s", (const char *)sqlite3_column_text(st, 0),
			 (const char *)sqlite3_column_text(st, 1));
		scrm__buf_printf(b, "  i%d [shape=ellipse, label=", n);
		scrm__buf_json_str(b, label);
		scrm__buf_printf(b, "];\n  i%d -> c%lld [label=", n, (long long)sqlite3_column_int64(st, 5));
		snprintf(label, sizeof label, "obs %lld (%s)", (long long)sqlite3_column_int64(st, 3),
			 sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2) : "?");
		scrm__buf_json_str(b, label);
		scrm__buf_puts(b, "];\n");
		n++;
	}
	sqlite3_reset(st);
	if (s != SQLITE_DONE)
		return scrm__sqlerr(db, s, "reading identifiers");
	st = scrm__stmt(db, sql_history);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		bool merge = strcmp((const char *)sqlite3_column_text(st, 1), "merge") == 0;
		long long lid = sqlite3_column_int64(st, 0);
		long long sv = sqlite3_column_int64(st, 2), ab = sqlite3_column_int64(st, 3);
		/* Customers split off by an unmerge are no longer members: name them. */
		if (!merge || sqlite3_column_type(st, 7) != SQLITE_NULL)
			scrm__buf_printf(b, "  c%lld [shape=box, label=\"customer %lld\"];\n", ab, ab);
		if (merge)
			scrm__buf_printf(b, "  c%lld -> c%lld [style=dashed, color=blue, label=\"merge %lld%s\"];\n",
					 ab, sv, lid, sqlite3_column_type(st, 7) == SQLITE_NULL ? "" : " (undone)");
		else
			scrm__buf_printf(b, "  c%lld -> c%lld [style=dotted, color=red, dir=none, label=\"unmerge %lld\"];\n",
					 ab, sv, lid);
	}
	sqlite3_reset(st);
	if (s != SQLITE_DONE)
		return scrm__sqlerr(db, s, "reading history");
	scrm__buf_puts(b, "}\n");
	return SCRM_OK;
}

SCRM_API int scrm_identity_list_json(scrm_db *db, int64_t customer, char **out)
{
	return view(db, customer, out, v_list);
}

SCRM_API int scrm_identity_history_json(scrm_db *db, int64_t customer, char **out)
{
	return view(db, customer, out, v_history);
}

SCRM_API int scrm_identity_explain_json(scrm_db *db, int64_t customer, char **out)
{
	return view(db, customer, out, v_explain);
}

SCRM_API int scrm_identity_explain_dot(scrm_db *db, int64_t customer, char **out)
{
	return view(db, customer, out, v_dot);
}
