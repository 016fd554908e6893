/*
 * The segment API (scrm_segment_*): each call compiles the expression
 * (segment.c: SQL plan or scan), runs it in one read transaction as of the
 * handle's clock, and frees it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules-int.h"

/* ------------------------------------------------------------ public API */

static int open_read(scrm_db *db, const char *expr, const char *fn, ru_seg **g)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!expr)
		return scrm__error(db, SCRM_MISUSE, "%s: expression is NULL", fn);
	if ((rc = ru__seg_compile(db, expr, "segment", g)))
		return rc;
	if ((rc = scrm__tx_begin_read(db))) {
		ru__seg_free(*g);
		*g = NULL;
	}
	return rc;
}

SCRM_API int scrm_segment_count(scrm_db *db, const char *expr, int64_t *count)
{
	ru_seg *g;
	if (!count)
		return scrm__error(db, SCRM_MISUSE, "scrm_segment_count: count is NULL");
	*count = 0;
	int rc = open_read(db, expr, "scrm_segment_count", &g);
	if (rc)
		return rc;
	rc = scrm__tx_end(db, ru__seg_count(db, g, scrm__now(db), count));
	ru__seg_free(g);
	return rc;
}

typedef struct fe {
	scrm_segment_fn fn;
	void *ud;
	int stopped;
} fe;

static int fe_one(void *ud, int64_t customer)
{
	fe *f = ud;
	f->stopped = f->fn(f->ud, customer);
	return f->stopped ? -1 : 0;
}

SCRM_API int scrm_segment_foreach(scrm_db *db, const char *expr, scrm_segment_fn fn,
				  void *userdata)
{
	if (!fn)
		return scrm__error(db, SCRM_MISUSE, "scrm_segment_foreach: fn is NULL");
	ru_seg *g;
	int rc = open_read(db, expr, "scrm_segment_foreach", &g);
	if (rc)
		return rc;
	fe f = {fn, userdata, 0};
	rc = ru__seg_run(db, g, scrm__now(db), 0, 0, fe_one, &f);
	if (rc == -1)
		rc = SCRM_OK;
	rc = scrm__tx_end(db, rc);
	ru__seg_free(g);
	return rc ? rc : f.stopped;
}

static int page_one(void *ud, int64_t customer)
{
	scrm_buf *b = ud;
	scrm__buf_printf(b, "%s%lld", b->len > 1 ? "," : "", (long long)customer);
	return b->oom ? SCRM_NOMEM : 0;
}

SCRM_API int scrm_segment_ids_json(scrm_db *db, const char *expr, int64_t after, int limit,
				   char **out)
{
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_segment_ids_json: out is NULL");
	*out = NULL;
	if (limit < 1 || limit > 100000)
		return scrm__error(db, SCRM_RANGE, "segment page limit %d is outside 1..100000", limit);
	ru_seg *g;
	int rc = open_read(db, expr, "scrm_segment_ids_json", &g);
	if (rc)
		return rc;
	scrm_buf b;
	scrm__buf_init(&b, db);
	scrm__buf_puts(&b, "[");
	rc = ru__seg_run(db, g, scrm__now(db), after < 0 ? 0 : after, limit, page_one, &b);
	if (rc == SCRM_NOMEM && b.oom)
		rc = scrm__error(db, SCRM_NOMEM, "out of memory");
	scrm__buf_puts(&b, "]");
	rc = scrm__tx_end(db, rc);
	ru__seg_free(g);
	if (rc) {
		scrm__buf_reset(&b);
		return rc;
	}
	return scrm__buf_finish(&b, out);
}

SCRM_API int scrm_segment_explain_json(scrm_db *db, const char *expr, char **out)
{
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_segment_explain_json: out is NULL");
	*out = NULL;
	ru_seg *g;
	int rc = open_read(db, expr, "scrm_segment_explain_json", &g);
	if (rc)
		return rc;
	scrm_buf b;
	scrm__buf_init(&b, db);
	rc = scrm__tx_end(db, ru__seg_explain(db, g, &b));
	ru__seg_free(g);
	if (rc) {
		scrm__buf_reset(&b);
		return rc;
	}
	return scrm__buf_finish(&b, out);
}
