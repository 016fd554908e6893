/*
 * Private to the segment planner: a compiled segment (segment.c) and its
 * translation to SQL (segment_sql.c). Never leaves lib/rules/.
 */
#ifndef SCRM_SEGMENT_INT_H
#define SCRM_SEGMENT_INT_H

#include "rules-int.h"
#include "expr-int.h" /* the syntax tree, for the SQL translation */

struct ru_seg {
	ru_expr *x;          /* for evaluation customer by customer */
	char *where;         /* translated condition, or NULL: scan */
	char *mwhere;        /* the same, operands of && || cheapest first (ru__seg_multi) */
	char why[160];       /* what kept it from SQL */
	bool fig, score;     /* joins the SQL needs */
	bool need_fig, need_score; /* ...and a top-level conjunct is false without the row */
	sqlite3_stmt *ids, *count, *test, *fill;
};

/* Appends e translated to one SQL condition over the customer row c (and
 * the joins f = profile_figures, s = profile_score it marks in g->fig,
 * g->score) to b. reorder: operands of && || cheapest first. False when e
 * has a shape SQL cannot express with the language's semantics (the first
 * reason is in g->why; b holds garbage then). Otherwise *is_bool tells
 * whether the condition is boolean-typed, and, without reorder, the
 * top-level conjuncts that need a figures or score row are marked in
 * g->need_fig, g->need_score. */
bool ru__seg_sql(scrm_db *db, const scrm_expr *e, ru_seg *g, bool reorder, scrm_buf *b,
		 bool *is_bool);

#endif /* SCRM_SEGMENT_INT_H */
