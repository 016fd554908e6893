/*
 * Segments in SQL: the common shapes of an expression over the profile —
 * comparisons of figures, RFM scores, lifecycle and net spend, has_tag(), now() and
 * days_since(), joined by && || ! — translated into one SQL condition with
 * the language's null rules (segment.c runs it, or evaluates any other
 * expression customer by customer).
 *
 * The SQL keeps the language's semantics:
 *  - `a == b` / `a != b` of one type are `a IS b` / `a IS NOT b` (null is
 *    a value); of different types they are constant false / true;
 *  - ordering compares operands of one type (ints, or strings bytewise,
 *    which is SQLite's BINARY collation) and is null with a null operand;
 *    other operand types are a type error, so such expressions scan;
 *  - && || ! only ever see booleans or null (comparisons, has_tag(),
 *    boolean literals), where SQL's three-valued logic is the language's;
 *  - `x in [..]` is never null: `(x IN (..)) IS 1`, with `x IS NULL OR`
 *    when the list holds null, elements of another type dropped;
 *  - a path that no customer can be missing from is given its profile
 *    value (figures.events is 0 without events, as the profile says).
 * Time and the lifecycle thresholds are parameters (?1 now, ?2..?5 the
 * thresholds' ms) bound by segment.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment-int.h"

enum { T_NULL = 0, T_BOOL, T_INT, T_STR };

typedef struct tr {
	scrm_db *db;
	const scrm_expr *e;
	ru_seg *g;
	scrm_buf *b;
	bool fail;
	bool reorder; /* operands of && || cheapest first */
} tr;

/* Not translatable: why = a b c (the first reason is kept). */
static void no3(tr *t, const char *a, const char *b, const char *c)
{
	if (!t->fail)
		snprintf(t->g->why, sizeof t->g->why, "%s%.100s%s", a, b, c);
	t->fail = true;
}

static void no(tr *t, const char *why)
{
	no3(t, why, "", "");
}

/* A literal into SQL; *type its type. Strings with NUL bytes do not go. */
static void lit(tr *t, const scrm_xval *v, int *type)
{
	switch (v->t) {
	case SCRM_XV_NULL:
		scrm__buf_puts(t->b, "NULL");
		*type = T_NULL;
		return;
	case SCRM_XV_BOOL:
		scrm__buf_puts(t->b, v->u.i ? "1" : "0");
		*type = T_BOOL;
		return;
	case SCRM_XV_INT:
		scrm__buf_printf(t->b, "%lld", (long long)v->u.i);
		*type = T_INT;
		return;
	case SCRM_XV_STR:
		if (memchr(v->u.s, '\0', v->n)) {
			no(t, "a string literal holds a NUL byte");
			return;
		}
		scrm__buf_puts(t->b, "'");
		for (uint32_t i = 0; i < v->n; i++)
			scrm__buf_append(t->b, v->u.s[i] == '\'' ? "''" : &v->u.s[i], v->u.s[i] == '\'' ? 2 : 1);
		scrm__buf_puts(t->b, "'");
		*type = T_STR;
		return;
	default:
		no(t, "a list outside `in`");
	}
}

/* Lifecycle stage as pf__lifecycle() computes it: ?1 now, ?2..?5 the
 * thresholds in ms. */
#define LIFECYCLE_SQL                                                                 \
	"(CASE WHEN f.first_order IS NOT NULL THEN CASE"                                  \
	" WHEN ?1 - f.first_order < ?2 THEN 'new' WHEN ?1 - f.last_order < ?3 THEN 'active'" \
	" WHEN ?1 - f.last_order < ?4 THEN 'at_risk' WHEN ?1 - f.last_order < ?5 THEN 'dormant'" \
	" ELSE 'lost' END ELSE CASE"                                                    \
	" WHEN ?1 - coalesce(f.first_seen, c.created_at) < ?2 THEN 'new'"                 \
	" WHEN ?1 - coalesce(f.first_seen, c.created_at) < ?3 THEN 'active'"              \
	" WHEN ?1 - coalesce(f.first_seen, c.created_at) < ?4 THEN 'at_risk'"             \
	" WHEN ?1 - coalesce(f.first_seen, c.created_at) < ?5 THEN 'dormant'"             \
	" ELSE 'lost' END END)"

static bool is_currency(const char *s)
{
	return strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' &&
	       s[2] >= 'A' && s[2] <= 'Z';
}

static void path(tr *t, const char *p, int *type)
{
	static const struct {
		const char *path, *sql;
		int type;
		bool fig;
	} cols[] = {
		{"profile.customer", "c.id", T_INT, false},
		{"profile.figures.events", "coalesce(f.events, 0)", T_INT, true},
		{"profile.figures.orders", "coalesce(f.orders, 0)", T_INT, true},
		{"profile.figures.refunds", "coalesce(f.refunds, 0)", T_INT, true},
		{"profile.figures.first_seen", "f.first_seen", T_INT, true},
		{"profile.figures.last_seen", "f.last_seen", T_INT, true},
		{"profile.figures.first_order", "f.first_order", T_INT, true},
		{"profile.figures.last_order", "f.last_order", T_INT, true},
		{"profile.rfm.recency_days", "s.recency_days", T_INT, false},
		{"profile.rfm.frequency", "s.frequency", T_INT, false},
		{"profile.rfm.monetary", "s.monetary", T_INT, false},
		{"profile.rfm.r", "s.r", T_INT, false},
		{"profile.rfm.f", "s.f", T_INT, false},
		{"profile.rfm.m", "s.m", T_INT, false},
		{"profile.lifecycle", LIFECYCLE_SQL, T_STR, true},
	};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(cols); i++)
		if (strcmp(p, cols[i].path) == 0) {
			scrm__buf_puts(t->b, cols[i].sql);
			*type = cols[i].type;
			t->g->fig |= cols[i].fig;
			t->g->score |= strncmp(p, "profile.rfm.", 12) == 0;
			return;
		}
	static const char ns[] = "profile.figures.net_spend.", aov[] = "profile.figures.avg_order_value.";
	if (strncmp(p, ns, sizeof ns - 1) == 0 && is_currency(p + sizeof ns - 1)) {
		scrm__buf_printf(t->b, "(SELECT spend - refunded FROM profile_money WHERE customer = c.id "
				       "AND currency = '%s')", p + sizeof ns - 1);
		*type = T_INT;
		return;
	}
	if (strncmp(p, aov, sizeof aov - 1) == 0 && is_currency(p + sizeof aov - 1)) {
		scrm__buf_printf(t->b, "(SELECT CASE WHEN orders THEN (spend - refunded) / orders ELSE 0 "
				       "END FROM profile_money WHERE customer = c.id AND currency = '%s')",
				 p + sizeof aov - 1);
		*type = T_INT;
		return;
	}
	no3(t, "it reads '", p, "'");
}

static void node(tr *t, int32_t i, int *type);

static void kid(tr *t, const scrm_xnode *n, uint32_t k, int *type)
{
	node(t, scrm__xkid(t->e, n, k), type);
}

/* How much an operand costs a row: a subquery (has_tag(), net spend)
 * most, then a CASE (lifecycle, days_since()), then column tests. */
static int cost(const char *sql, size_t n)
{
	int c = 0;
	for (size_t i = 0; i < n && c < 2; i++)
		if (sql[i] == 'S' && n - i >= 6 && memcmp(sql + i, "SELECT", 6) == 0)
			c = 2;
		else if (sql[i] == 'C' && n - i >= 4 && memcmp(sql + i, "CASE", 4) == 0)
			c = 1;
	return c;
}

/* With t->reorder the operands are written cheapest first: the refresh
 * query evaluates each tag's condition where SQLite stops at the first
 * operand that decides it (CASE WHEN, see ru__seg_multi), and AND / OR of
 * the translated operands commute — they are booleans or null, and none
 * can raise an error. */
static void boolean_kids(tr *t, const scrm_xnode *n, const char *op)
{
	size_t mark = t->b->len;
	scrm__buf_puts(t->b, "(");
	size_t start[8], end[8];
	bool order = t->reorder && n->nkids <= 8;
	for (uint32_t k = 0; k < n->nkids && !t->fail; k++) {
		int ty = T_NULL;
		if (k)
			scrm__buf_puts(t->b, op);
		if (order)
			start[k] = t->b->len;
		kid(t, n, k, &ty);
		if (order)
			end[k] = t->b->len;
		if (ty != T_BOOL && ty != T_NULL)
			no(t, "&&, || or ! has an operand that is not a boolean");
	}
	scrm__buf_puts(t->b, ")");
	if (!order || t->fail || t->b->oom)
		return;
	char *all = scrm__strndup(t->db, t->b->data + mark, t->b->len - mark);
	if (!all) {
		t->b->oom = true;
		return;
	}
	t->b->len = mark;
	scrm__buf_puts(t->b, "(");
	bool first = true;
	for (int c = 0; c <= 2; c++)
		for (uint32_t k = 0; k < n->nkids; k++) {
			const char *x = all + (start[k] - mark);
			size_t len = end[k] - start[k];
			if (cost(x, len) != c)
				continue;
			if (!first)
				scrm__buf_puts(t->b, op);
			scrm__buf_append(t->b, x, len);
			first = false;
		}
	scrm__buf_puts(t->b, ")");
	scrm__free(all);
}

static void compare(tr *t, const scrm_xnode *n, int *type)
{
	static const char *const ops[] = {[SCRM_XK_EQ] = " IS ", [SCRM_XK_NE] = " IS NOT ",
					  [SCRM_XK_LT] = " < ",  [SCRM_XK_LE] = " <= ",
					  [SCRM_XK_GT] = " > ",  [SCRM_XK_GE] = " >= "};
	bool eq = n->kind == SCRM_XK_EQ || n->kind == SCRM_XK_NE;
	size_t mark = t->b->len;
	int a = T_NULL, b = T_NULL;
	scrm__buf_puts(t->b, "(");
	kid(t, n, 0, &a);
	scrm__buf_puts(t->b, ops[n->kind]);
	kid(t, n, 1, &b);
	scrm__buf_puts(t->b, ")");
	*type = T_BOOL;
	if (t->fail)
		return;
	if (eq && a != b && a != T_NULL && b != T_NULL) {
		/* Values of different types are never equal. */
		t->b->len = mark;
		scrm__buf_puts(t->b, n->kind == SCRM_XK_EQ ? "0" : "1");
	} else if (!eq && (a == T_NULL || b == T_NULL)) {
		t->b->len = mark;
		scrm__buf_puts(t->b, "NULL");
	} else if (!eq && (a != b || a == T_BOOL)) {
		no(t, "an ordering compares values of different types (or booleans)");
	}
}

static void in_list(tr *t, const scrm_xnode *n, int *type)
{
	const scrm_xnode *l = scrm__xnode(t->e, scrm__xkid(t->e, n, 1));
	if (l->kind != SCRM_XK_CONST || t->e->consts[l->aux].t != SCRM_XV_LIST) {
		no(t, "`in` is not given a literal list");
		return;
	}
	const scrm_xval *v = &t->e->consts[l->aux];
	size_t mark = t->b->len;
	int a = T_NULL;
	scrm__buf_puts(t->b, "((");
	kid(t, n, 0, &a);
	scrm__buf_puts(t->b, ") IN (");
	bool any = false, has_null = false;
	*type = T_BOOL;
	for (uint32_t k = 0; k < v->n && !t->fail; k++) {
		const scrm_xval *el = &v->u.l[k];
		int et = el->t == SCRM_XV_NULL ? T_NULL : el->t == SCRM_XV_BOOL ? T_BOOL
						: el->t == SCRM_XV_INT ? T_INT : el->t == SCRM_XV_STR ? T_STR : -1;
		if (et < 0) {
			no(t, "`in` over a list holding lists");
			return;
		}
		if (et == T_NULL) {
			has_null = true;
			continue;
		}
		if (a != T_NULL && et != a)
			continue; /* never equal */
		if (any)
			scrm__buf_puts(t->b, ", ");
		int dummy;
		lit(t, el, &dummy);
		any = true;
	}
	if (t->fail)
		return;
	scrm__buf_puts(t->b, ")) IS 1");
	if (!any) {
		t->b->len = mark;
		scrm__buf_puts(t->b, "0");
	}
	if (has_null) {
		/* null in [null, …] is true. */
		char *tail = scrm__strndup(t->db, t->b->data + mark, t->b->len - mark);
		if (!tail) {
			t->b->oom = true;
			return;
		}
		t->b->len = mark;
		int a2;
		scrm__buf_puts(t->b, "((");
		kid(t, n, 0, &a2);
		scrm__buf_printf(t->b, ") IS NULL OR %s)", tail);
		scrm__free(tail);
	}
}

static void call(tr *t, const scrm_xnode *n, int *type)
{
	if (n->fn == SCRM_XF_NOW) {
		scrm__buf_puts(t->b, "?1");
		*type = T_INT;
		return;
	}
	if (n->fn == SCRM_XF_DAYS_SINCE) {
		/* floor((now - x) / day), x an integer (or null). */
		size_t mark = t->b->len;
		int a = T_NULL;
		kid(t, n, 0, &a);
		if (t->fail)
			return;
		if (a == T_NULL) {
			t->b->len = mark;
			scrm__buf_puts(t->b, "NULL");
			*type = T_NULL;
			return;
		}
		if (a != T_INT) {
			no(t, "days_since() of something that is not a time");
			return;
		}
		char *x = scrm__strndup(t->db, t->b->data + mark, t->b->len - mark);
		if (!x) {
			t->b->oom = true;
			return;
		}
		t->b->len = mark;
		scrm__buf_printf(t->b, "(CASE WHEN ?1 >= %s THEN (?1 - %s) / 86400000 ELSE -((%s - ?1 + 86399999) / 86400000) END)",
				 x, x, x);
		scrm__free(x);
		*type = T_INT;
		return;
	}
	if (n->fn == SCRM_XF_HAS_TAG) {
		const scrm_xnode *a = scrm__xnode(t->e, scrm__xkid(t->e, n, 0));
		const scrm_xval *v = a->kind == SCRM_XK_CONST ? &t->e->consts[a->aux] : NULL;
		if (!v || v->t != SCRM_XV_STR) {
			no(t, "has_tag() of something that is not a literal string");
			return;
		}
		scrm__buf_puts(t->b, "(c.id IN (SELECT ct.customer FROM customer_tag ct JOIN tag tg ON "
				     "tg.id = ct.tag WHERE tg.name = ");
		int dummy;
		lit(t, v, &dummy);
		scrm__buf_puts(t->b, "))");
		*type = T_BOOL;
		return;
	}
	const scrm_xfunc *f = scrm__xfunc_get(n->fn);
	no3(t, "it calls ", f ? f->name : "a function", "()");
}

static void node(tr *t, int32_t i, int *type)
{
	if (t->fail)
		return;
	const scrm_xnode *n = scrm__xnode(t->e, i);
	switch (n->kind) {
	case SCRM_XK_CONST: lit(t, &t->e->consts[n->aux], type); return;
	case SCRM_XK_PATH: path(t, t->e->names[n->slot], type); return;
	case SCRM_XK_NOT: {
		int a = T_NULL;
		scrm__buf_puts(t->b, "(NOT ");
		kid(t, n, 0, &a);
		scrm__buf_puts(t->b, ")");
		if (a != T_BOOL && a != T_NULL)
			no(t, "! of something that is not a boolean");
		*type = T_BOOL;
		return;
	}
	case SCRM_XK_AND: boolean_kids(t, n, " AND "); *type = T_BOOL; return;
	case SCRM_XK_OR: boolean_kids(t, n, " OR "); *type = T_BOOL; return;
	case SCRM_XK_EQ: case SCRM_XK_NE: case SCRM_XK_LT: case SCRM_XK_LE: case SCRM_XK_GT:
	case SCRM_XK_GE: compare(t, n, type); return;
	case SCRM_XK_IN: in_list(t, n, type); return;
	case SCRM_XK_CALL: call(t, n, type); return;
	default: no(t, "it uses an operator the SQL translation does not cover"); return;
	}
}

/* ------------------------------------------------------------ joins */

/* Is `lit op 0`-style comparison false for the value a customer without a
 * figures row has (0 for the counters)? op is the node kind with the path
 * on the left. */
static bool false_at_zero(int kind, int64_t lit)
{
	switch (kind) {
	case SCRM_XK_LT: return !(0 < lit);
	case SCRM_XK_LE: return !(0 <= lit);
	case SCRM_XK_GT: return !(0 > lit);
	case SCRM_XK_GE: return !(0 >= lit);
	case SCRM_XK_EQ: return lit != 0;
	default: return false;
	}
}

/* A top-level conjunct `path op int` that cannot hold for a customer
 * without a score (or figures) row lets the query start from that table:
 * the population is then what it holds, not every customer. */
static void conjunct(const scrm_expr *e, int32_t i, ru_seg *g)
{
	const scrm_xnode *n = scrm__xnode(e, i);
	if (n->kind < SCRM_XK_EQ || n->kind > SCRM_XK_GE || n->kind == SCRM_XK_NE || n->nkids != 2)
		return;
	const scrm_xnode *a = scrm__xnode(e, scrm__xkid(e, n, 0)), *b = scrm__xnode(e, scrm__xkid(e, n, 1));
	int kind = n->kind;
	if (a->kind == SCRM_XK_CONST) {
		const scrm_xnode *t = a;
		a = b;
		b = t;
		static const int flip[] = {[SCRM_XK_EQ] = SCRM_XK_EQ, [SCRM_XK_LT] = SCRM_XK_GT,
					   [SCRM_XK_LE] = SCRM_XK_GE, [SCRM_XK_GT] = SCRM_XK_LT,
					   [SCRM_XK_GE] = SCRM_XK_LE};
		kind = flip[kind];
	}
	if (a->kind != SCRM_XK_PATH || b->kind != SCRM_XK_CONST || e->consts[b->aux].t != SCRM_XV_INT)
		return;
	const char *p = e->names[a->slot];
	int64_t lit = e->consts[b->aux].u.i;
	if (strncmp(p, "profile.rfm.", 12) == 0)
		g->need_score = true;
	else if (strcmp(p, "profile.figures.first_seen") == 0 ||
		 strcmp(p, "profile.figures.last_seen") == 0 ||
		 strcmp(p, "profile.figures.first_order") == 0 ||
		 strcmp(p, "profile.figures.last_order") == 0)
		g->need_fig = true;
	else if ((strcmp(p, "profile.figures.events") == 0 || strcmp(p, "profile.figures.orders") == 0 ||
		  strcmp(p, "profile.figures.refunds") == 0) && false_at_zero(kind, lit))
		g->need_fig = true;
}

static void requirements(const scrm_expr *e, ru_seg *g)
{
	const scrm_xnode *r = scrm__xnode(e, e->root);
	if (r->kind == SCRM_XK_AND)
		for (uint32_t k = 0; k < r->nkids; k++)
			conjunct(e, scrm__xkid(e, r, k), g);
	else
		conjunct(e, e->root, g);
}

bool ru__seg_sql(scrm_db *db, const scrm_expr *e, ru_seg *g, bool reorder, scrm_buf *b,
		 bool *is_bool)
{
	tr t = {db, e, g, b, false, reorder};
	int type = T_NULL;
	node(&t, e->root, &type);
	if (t.fail)
		return false;
	if (!reorder)
		requirements(e, g);
	*is_bool = type == T_BOOL;
	return true;
}
