/*
 * The set of changes a rule-tag refresh found (ruletag.c), and the
 * table-valued function scrm_tagdiff that lets one statement read them:
 * the refresh writes its differences set-wise instead of a statement per
 * change.
 */
#include <string.h>

#include "rules-int.h"

int ru__changes_push(ru_changes *c, int64_t customer, uint32_t tag, bool add)
{
	if (c->n == c->cap) {
		size_t nc = c->cap ? 2 * c->cap : 4096;
		ru_change *v = scrm__realloc(c->db, c->v, nc * sizeof *v);
		if (!v)
			return scrm__error(c->db, SCRM_NOMEM, "out of memory");
		c->v = v;
		c->cap = nc;
	}
	c->v[c->n++] = (ru_change){customer, tag, add};
	return SCRM_OK;
}

/* ---- scrm_tagdiff(src, mode): the rows of an ru_changes bound as a
 * pointer (customer, tag id, op, rule, version); the modes are described
 * in rules-int.h. Registered on the connection by the first refresh that
 * writes; eponymous and direct-only, so the schema can never refer to it. */

enum { TD_CUSTOMER, TD_TAG, TD_OP, TD_RULE, TD_VERSION, TD_SRC, TD_MODE };

typedef struct td_cursor {
	sqlite3_vtab_cursor base;
	const ru_changes *c;
	int mode;
	size_t at, n; /* position in c->v (c->adds for RU_TAGDIFF_ADDS), and its end */
} td_cursor;

static int td_connect(sqlite3 *sq, void *aux, int argc, const char *const *argv,
		      sqlite3_vtab **out, char **err)
{
	(void)aux, (void)argc, (void)argv, (void)err;
	int r = sqlite3_declare_vtab(sq, "CREATE TABLE x(customer INTEGER, tag INTEGER, op TEXT, "
					 "rule TEXT, version INTEGER, src HIDDEN, mode HIDDEN)");
	if (r != SQLITE_OK)
		return r;
	sqlite3_vtab_config(sq, SQLITE_VTAB_DIRECTONLY);
	if (!(*out = sqlite3_malloc(sizeof **out)))
		return SQLITE_NOMEM;
	memset(*out, 0, sizeof **out);
	return SQLITE_OK;
}

static int td_disconnect(sqlite3_vtab *vt)
{
	sqlite3_free(vt);
	return SQLITE_OK;
}

/* Both arguments are required equality constraints; without them the
 * table is empty. */
static int td_best_index(sqlite3_vtab *vt, sqlite3_index_info *ii)
{
	(void)vt;
	int src = -1, mode = -1;
	for (int i = 0; i < ii->nConstraint; i++) {
		const struct sqlite3_index_constraint *k = &ii->aConstraint[i];
		if (k->op != SQLITE_INDEX_CONSTRAINT_EQ ||
		    (k->iColumn != TD_SRC && k->iColumn != TD_MODE))
			continue;
		if (!k->usable)
			return SQLITE_CONSTRAINT;
		*(k->iColumn == TD_SRC ? &src : &mode) = i;
	}
	if (src < 0 || mode < 0) {
		ii->idxNum = 0;
		ii->estimatedCost = 1e12;
		return SQLITE_OK;
	}
	ii->aConstraintUsage[src].argvIndex = 1;
	ii->aConstraintUsage[src].omit = 1;
	ii->aConstraintUsage[mode].argvIndex = 2;
	ii->aConstraintUsage[mode].omit = 1;
	ii->idxNum = 1;
	ii->estimatedCost = 1e6;
	ii->estimatedRows = 1000000;
	return SQLITE_OK;
}

static int td_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
	(void)vt;
	td_cursor *k = sqlite3_malloc(sizeof *k);
	if (!k)
		return SQLITE_NOMEM;
	memset(k, 0, sizeof *k);
	*out = &k->base;
	return SQLITE_OK;
}

static int td_close(sqlite3_vtab_cursor *cur)
{
	sqlite3_free(cur);
	return SQLITE_OK;
}

/* The index into c->v of the cursor's row. */
static size_t td_row(const td_cursor *k)
{
	return k->mode == RU_TAGDIFF_ADDS ? k->c->adds[k->at] : k->at;
}

/* Skips to the next row of the cursor's kind. */
static void td_skip(td_cursor *k)
{
	if (k->mode == RU_TAGDIFF_REMOVES)
		while (k->at < k->n && k->c->v[k->at].add)
			k->at++;
}

static int td_filter(sqlite3_vtab_cursor *cur, int idx_num, const char *idx_str, int argc,
		     sqlite3_value **argv)
{
	(void)idx_str;
	td_cursor *k = (td_cursor *)cur;
	k->c = idx_num == 1 && argc == 2 ? sqlite3_value_pointer(argv[0], RU_TAGDIFF_POINTER) : NULL;
	k->mode = k->c ? sqlite3_value_int(argv[1]) : RU_TAGDIFF_ALL;
	k->at = 0;
	k->n = !k->c ? 0 : k->mode == RU_TAGDIFF_ADDS ? k->c->nadds : k->c->n;
	td_skip(k);
	return SQLITE_OK;
}

static int td_next(sqlite3_vtab_cursor *cur)
{
	td_cursor *k = (td_cursor *)cur;
	k->at++;
	td_skip(k);
	return SQLITE_OK;
}

static int td_eof(sqlite3_vtab_cursor *cur)
{
	const td_cursor *k = (const td_cursor *)cur;
	return k->at >= k->n;
}

static int td_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
	const td_cursor *k = (const td_cursor *)cur;
	const ru_change *x = &k->c->v[td_row(k)];
	const ru_rtag *t = k->c->ts[x->tag];
	switch (col) {
	case TD_CUSTOMER:
		sqlite3_result_int64(ctx, x->customer);
		break;
	case TD_TAG:
		sqlite3_result_int64(ctx, t->id);
		break;
	case TD_OP:
		sqlite3_result_text(ctx, x->add ? "add" : "remove", -1, SQLITE_STATIC);
		break;
	case TD_RULE:
		sqlite3_result_text(ctx, t->source, -1, SQLITE_STATIC);
		break;
	case TD_VERSION:
		sqlite3_result_int64(ctx, t->version);
		break;
	default:
		sqlite3_result_null(ctx);
	}
	return SQLITE_OK;
}

static int td_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid)
{
	*rowid = (sqlite3_int64)td_row((const td_cursor *)cur);
	return SQLITE_OK;
}

static const sqlite3_module td_module = {
	.xConnect = td_connect,
	.xBestIndex = td_best_index,
	.xDisconnect = td_disconnect,
	.xOpen = td_open,
	.xClose = td_close,
	.xFilter = td_filter,
	.xNext = td_next,
	.xEof = td_eof,
	.xColumn = td_column,
	.xRowid = td_rowid,
};

int ru__tagdiff_register(scrm_db *db, ru_state *s)
{
	if (s->rtags_module)
		return SCRM_OK;
	int r = sqlite3_create_module_v2(scrm__sqlite(db), "scrm_tagdiff", &td_module, NULL, NULL);
	if (r != SQLITE_OK)
		return scrm__sqlerr(db, r, "registering scrm_tagdiff");
	s->rtags_module = true;
	return SCRM_OK;
}
