/*
 * Segments: an expression over the profile evaluated for the population
 * (canonical, unerased customers). The common shapes — comparisons of
 * figures, RFM scores, lifecycle and net spend, has_tag(), now() and
 * days_since(), joined by && || ! — are translated into one SQL query with
 * the language's null rules; anything else is evaluated customer by
 * customer with the rule engine's lazy profile binding. Rule tags
 * (ruletag.c) use the same plans.
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
 * The query reads the time and the lifecycle thresholds as parameters, so
 * a plan is prepared once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rules-int.h"
#include "expr-int.h" /* the syntax tree, for the SQL translation */

enum { T_NULL = 0, T_BOOL, T_INT, T_STR };

struct ru_seg {
	ru_expr *x;          /* for evaluation customer by customer */
	char *where;         /* translated condition, or NULL: scan */
	char *mwhere;        /* the same, operands of && || cheapest first (ru__seg_multi) */
	char why[160];       /* what kept it from SQL */
	bool fig, score;     /* joins the SQL needs */
	bool need_fig, need_score; /* ...and a top-level conjunct is false without the row */
	sqlite3_stmt *ids, *count, *test, *fill;
};

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
	tr t = {db, e, g, &b, false, false};
	int type = T_NULL;
	node(&t, e->root, &type);
	if (!t.fail)
		requirements(e, g);
	if (!t.fail && type != T_BOOL) {
		/* Holds only when exactly true: never, for a non-boolean. */
		b.len = 0;
		scrm__buf_puts(&b, "0");
	}
	if (t.fail)
		scrm__buf_reset(&b);
	else if ((rc = scrm__buf_finish(&b, &g->where)))
		goto fail;
	if (!t.fail && type == T_BOOL) {
		/* Again, cheapest operands first, for ru__seg_multi. */
		scrm__buf_init(&b, db);
		t = (tr){db, e, g, &b, false, true};
		node(&t, e->root, &type);
		if (t.fail || (rc = scrm__buf_finish(&b, &g->mwhere))) {
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

/* Lifecycle thresholds in ms, from the profile configuration. */
static int thresholds(scrm_db *db, int64_t ms[4])
{
	char *json = NULL;
	int rc = scrm_profile_config_json(db, &json);
	if (rc)
		return rc;
	cJSON *j = cJSON_Parse(json);
	scrm__free(json);
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "lifecycle");
	static const char *const names[] = {"new_days", "active_days", "at_risk_days", "dormant_days"};
	for (int i = 0; i < 4; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(l, names[i]);
		if (!cJSON_IsNumber(v)) {
			cJSON_Delete(j);
			return scrm__error(db, j ? SCRM_ERROR : SCRM_NOMEM, "reading the lifecycle thresholds");
		}
		ms[i] = (int64_t)v->valuedouble * RU_DAY_MS;
	}
	cJSON_Delete(j);
	return SCRM_OK;
}

static int bind(scrm_db *db, ru_seg *g, sqlite3_stmt *st, int64_t now)
{
	int64_t ms[4] = {0, 0, 0, 0};
	int rc = g->fig ? thresholds(db, ms) : SCRM_OK;
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
