/*
 * Expression evaluator: a recursive walk over the compiled node array with
 * the null rules, three-valued logic, checked integer arithmetic, the cost
 * budget, and the public evaluation calls.
 */
#include <stdio.h>
#include <string.h>

#include "expr-int.h"

const char *scrm__xtype_name(int t)
{
	switch (t) {
	case SCRM_XV_NULL: return "null";
	case SCRM_XV_BOOL: return "bool";
	case SCRM_XV_INT: return "int";
	case SCRM_XV_STR: return "string";
	case SCRM_XV_LIST: return "list";
	case SCRM_XV_OBJ: return "object";
	default: return "missing";
	}
}

int scrm__xfail(scrm_xctx *c, const scrm_xnode *n, int code, const char *fmt, ...)
{
	int line, col;
	scrm__xlinecol(c->e->src, n->pos, &line, &col);
	int k = snprintf(c->msg, SCRM_X_ERRMSG, "%d:%d: ", line, col);
	if (k < 0 || k >= SCRM_X_ERRMSG)
		k = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->msg + k, SCRM_X_ERRMSG - (size_t)k, fmt, ap);
	va_end(ap);
	c->err_node = (int)(n - c->nodes);
	return code;
}

int scrm__xover_budget(scrm_xctx *c, const scrm_xnode *n)
{
	return scrm__xfail(c, n, SCRM_LIMIT, "evaluation cost budget of %lld exceeded",
			   (long long)c->budget);
}

static const char *op_name(int kind)
{
	switch (kind) {
	case SCRM_XK_NOT: return "!";
	case SCRM_XK_NEG: return "-";
	case SCRM_XK_AND: return "&&";
	case SCRM_XK_OR: return "||";
	case SCRM_XK_COND: return "?:";
	case SCRM_XK_EQ: return "==";
	case SCRM_XK_NE: return "!=";
	case SCRM_XK_LT: return "<";
	case SCRM_XK_LE: return "<=";
	case SCRM_XK_GT: return ">";
	case SCRM_XK_GE: return ">=";
	case SCRM_XK_IN: return "in";
	case SCRM_XK_ADD: return "+";
	case SCRM_XK_SUB: return "-";
	case SCRM_XK_MUL: return "*";
	case SCRM_XK_DIV: return "/";
	case SCRM_XK_MOD: return "%";
	default: return "?";
	}
}

int scrm__xtype_error(scrm_xctx *c, const scrm_xnode *n, const char *what, const scrm_xval *a,
		      const scrm_xval *b)
{
	if (!b)
		return scrm__xfail(c, n, SCRM_EVAL, "type mismatch: %s %s", what,
				   scrm__xtype_name(a->t));
	return scrm__xfail(c, n, SCRM_EVAL, "type mismatch: %s %s %s", scrm__xtype_name(a->t), what,
			   scrm__xtype_name(b->t));
}

static inline void set_bool(scrm_xval *o, bool b)
{
	o->t = SCRM_XV_BOOL;
	o->n = 0;
	o->u.i = b;
}

static inline void set_null(scrm_xval *o)
{
	o->t = SCRM_XV_NULL;
	o->n = 0;
	o->u.i = 0;
}

int scrm__xequal(scrm_xctx *c, const scrm_xnode *n, const scrm_xval *a, const scrm_xval *b,
		 bool *eq)
{
	if (a->t == SCRM_XV_OBJ || b->t == SCRM_XV_OBJ) {
		if (a->t == SCRM_XV_NULL || b->t == SCRM_XV_NULL) { /* an object is not null */
			*eq = false;
			return SCRM_OK;
		}
		return scrm__xfail(c, n, SCRM_EVAL,
				   "cannot compare an object; compare one of its fields instead");
	}
	if (a->t != b->t) {
		*eq = false;
		return SCRM_OK;
	}
	switch (a->t) {
	case SCRM_XV_NULL: *eq = true; return SCRM_OK;
	case SCRM_XV_BOOL:
	case SCRM_XV_INT: *eq = a->u.i == b->u.i; return SCRM_OK;
	case SCRM_XV_STR:
		*eq = a->n == b->n && (a->n == 0 || memcmp(a->u.s, b->u.s, a->n) == 0);
		return SCRM_OK;
	case SCRM_XV_LIST: {
		*eq = false;
		if (a->n != b->n)
			return SCRM_OK;
		int rc = scrm__xcharge(c, n, a->n);
		if (rc)
			return rc;
		for (uint32_t i = 0; i < a->n; i++) {
			if ((rc = scrm__xequal(c, n, &a->u.l[i], &b->u.l[i], eq)) != SCRM_OK)
				return rc;
			if (!*eq)
				return SCRM_OK;
		}
		*eq = true;
		return SCRM_OK;
	}
	default: *eq = false; return SCRM_OK;
	}
}

static int order(scrm_xctx *c, const scrm_xnode *n, int kind, const scrm_xval *a,
		 const scrm_xval *b, scrm_xval *o)
{
	int r;
	if (a->t == SCRM_XV_INT && b->t == SCRM_XV_INT) {
		r = (a->u.i > b->u.i) - (a->u.i < b->u.i);
	} else if (a->t == SCRM_XV_STR && b->t == SCRM_XV_STR) {
		uint32_t m = a->n < b->n ? a->n : b->n;
		r = m ? memcmp(a->u.s, b->u.s, m) : 0;
		if (r == 0)
			r = (a->n > b->n) - (a->n < b->n);
	} else if (a->t == SCRM_XV_NULL || b->t == SCRM_XV_NULL) {
		set_null(o);
		return SCRM_OK;
	} else {
		return scrm__xtype_error(c, n, op_name(kind), a, b);
	}
	bool res;
	switch (kind) {
	case SCRM_XK_LT: res = r < 0; break;
	case SCRM_XK_LE: res = r <= 0; break;
	case SCRM_XK_GT: res = r > 0; break;
	default: res = r >= 0; break;
	}
	set_bool(o, res);
	return SCRM_OK;
}

static int in_list(scrm_xctx *c, const scrm_xnode *n, const scrm_xval *a, const scrm_xval *l,
		   scrm_xval *o)
{
	if (l->t == SCRM_XV_NULL) {
		set_null(o);
		return SCRM_OK;
	}
	if (l->t != SCRM_XV_LIST) {
		if (l->t == SCRM_XV_STR)
			return scrm__xfail(c, n, SCRM_EVAL,
					   "type mismatch: 'in' needs a list on the right, not a "
					   "string (use contains(text, part) for substrings)");
		return scrm__xtype_error(c, n, "in", a, l);
	}
	int rc = scrm__xcharge(c, n, l->n);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < l->n; i++) {
		bool eq;
		if ((rc = scrm__xequal(c, n, a, &l->u.l[i], &eq)) != SCRM_OK)
			return rc;
		if (eq) {
			set_bool(o, true);
			return SCRM_OK;
		}
	}
	set_bool(o, false);
	return SCRM_OK;
}

static int arith(scrm_xctx *c, const scrm_xnode *n, int kind, const scrm_xval *a,
		 const scrm_xval *b, scrm_xval *o)
{
	if (a->t == SCRM_XV_INT && b->t == SCRM_XV_INT) {
		int64_t x = a->u.i, y = b->u.i, r;
		bool ovf = false;
		switch (kind) {
		case SCRM_XK_ADD: ovf = __builtin_add_overflow(x, y, &r); break;
		case SCRM_XK_SUB: ovf = __builtin_sub_overflow(x, y, &r); break;
		case SCRM_XK_MUL: ovf = __builtin_mul_overflow(x, y, &r); break;
		case SCRM_XK_DIV:
			if (y == 0)
				return scrm__xfail(c, n, SCRM_EVAL, "division by zero");
			ovf = x == INT64_MIN && y == -1;
			r = ovf ? 0 : x / y;
			break;
		default:
			if (y == 0)
				return scrm__xfail(c, n, SCRM_EVAL, "modulo by zero");
			r = y == -1 ? 0 : x % y; /* INT64_MIN % -1 traps in C */
			break;
		}
		if (ovf)
			return scrm__xfail(c, n, SCRM_RANGE, "integer overflow: %lld %s %lld",
					   (long long)x, op_name(kind), (long long)y);
		o->t = SCRM_XV_INT;
		o->n = 0;
		o->u.i = r;
		return SCRM_OK;
	}
	if (kind == SCRM_XK_ADD && a->t == SCRM_XV_STR && b->t == SCRM_XV_STR) {
		uint64_t len = (uint64_t)a->n + b->n;
		if (len > (uint64_t)c->e->lim.string)
			return scrm__xfail(c, n, SCRM_LIMIT,
					   "string longer than the limit of %lld bytes",
					   (long long)c->e->lim.string);
		int rc = scrm__xcharge(c, n, (int64_t)(len / 64));
		if (rc)
			return rc;
		char *s = scrm__xarena_alloc(c->scratch, (size_t)len ? (size_t)len : 1);
		if (!s)
			return scrm__xfail(c, n, SCRM_NOMEM, "out of memory");
		if (a->n)
			memcpy(s, a->u.s, a->n);
		if (b->n)
			memcpy(s + a->n, b->u.s, b->n);
		o->t = SCRM_XV_STR;
		o->n = (uint32_t)len;
		o->u.s = s;
		return SCRM_OK;
	}
	if (a->t == SCRM_XV_NULL || b->t == SCRM_XV_NULL) {
		set_null(o);
		return SCRM_OK;
	}
	return scrm__xtype_error(c, n, op_name(kind), a, b);
}

/* A slot nobody bound: ask the resolver once, then it is missing. */
static int load_slow(scrm_xctx *c, const scrm_xnode *n, int32_t slot, scrm_xval *o)
{
	scrm_xslot *s = &c->v->slots[slot];
	if (s->v.t == SCRM_XV_UNSET && c->h && c->h->resolve) {
		int rc = c->h->resolve(c->h->resolve_ud, c->v, (int)slot, c->e->names[slot]);
		if (rc) {
			/* Point at the path, also when a fused node read it. */
			for (uint32_t k = 0; k < n->nkids; k++)
				if (c->nodes[c->kids[n->first + k]].kind == SCRM_XK_PATH)
					n = &c->nodes[c->kids[n->first + k]];
			return scrm__xfail(c, n, rc, "reading '%s': %s", c->e->names[slot],
					   scrm_errstr(rc));
		}
		s = &c->v->slots[slot];
	}
	if (s->v.t == SCRM_XV_UNSET)
		s->v.t = SCRM_XV_MISSING;
	if (s->v.t == SCRM_XV_MISSING)
		set_null(o);
	else
		*o = s->v;
	return SCRM_OK;
}

static inline int load(scrm_xctx *c, const scrm_xnode *n, int32_t slot, scrm_xval *o)
{
	const scrm_xslot *s = &c->v->slots[slot];
	if (SCRM_X_LIKELY(s->v.t < SCRM_XV_MISSING)) {
		*o = s->v;
		return SCRM_OK;
	}
	return load_slow(c, n, slot, o);
}

static int ev_node(scrm_xctx *c, const scrm_xnode *n, int op, scrm_xval *o);

/* Tracing: every node runs in its plain form so each child is its own
 * step, costing 1 as in the fused form's sum. */
static int ev_traced(scrm_xctx *c, int32_t i, scrm_xval *o)
{
	const scrm_xnode *n = &c->nodes[i];
	int rc = ++c->cost > c->budget ? scrm__xover_budget(c, n) : ev_node(c, n, n->kind, o);
	scrm__xtrace_record(c, i, rc, o);
	return rc;
}

/* Every child goes through here. Inlined at each call site so that a
 * child costs one call, not two. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int ev(scrm_xctx *c, int32_t i, scrm_xval *o)
{
	if (SCRM_X_UNLIKELY(c->tr != NULL))
		return ev_traced(c, i, o);
	const scrm_xnode *n = &c->nodes[i];
	if (SCRM_X_UNLIKELY((c->cost += n->cost) > c->budget))
		return scrm__xover_budget(c, n);
	return ev_node(c, n, n->op, o);
}

/* Strings in conditions are short (codes, SKUs): a loop beats a libc call. */
static inline bool bytes_eq(const char *a, const char *b, uint32_t n)
{
	if (n > 16)
		return memcmp(a, b, n) == 0;
	for (uint32_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/* A fused comparison answered on the spot when its slot holds a value of
 * the expected type: 0 or 1; -1 sends it down the general path (missing
 * slot, null, object, list, type error). No side effects. */
static inline int fused_fast(const scrm_xctx *c, const scrm_xnode *n)
{
	const scrm_xval *a = &c->v->slots[n->slot].v;
	const scrm_xval *k = &c->consts[n->aux];
	switch (n->op) {
	case SCRM_XOP_EQ_SC:
	case SCRM_XOP_NE_SC: {
		bool eq;
		if (a->t != k->t)
			return a->t >= SCRM_XV_LIST ? -1 : n->op == SCRM_XOP_NE_SC;
		if (a->t == SCRM_XV_STR)
			eq = a->n == k->n && bytes_eq(a->u.s, k->u.s, a->n);
		else if (a->t <= SCRM_XV_INT) /* a null slot's payload is stale */
			eq = a->t == SCRM_XV_NULL || a->u.i == k->u.i;
		else
			return -1;
		return eq == (n->op == SCRM_XOP_EQ_SC);
	}
	case SCRM_XOP_LT_SI: return a->t == SCRM_XV_INT ? a->u.i < k->u.i : -1;
	case SCRM_XOP_LE_SI: return a->t == SCRM_XV_INT ? a->u.i <= k->u.i : -1;
	case SCRM_XOP_GT_SI: return a->t == SCRM_XV_INT ? a->u.i > k->u.i : -1;
	case SCRM_XOP_GE_SI: return a->t == SCRM_XV_INT ? a->u.i >= k->u.i : -1;
	default: return -1;
	}
}

static int logic(scrm_xctx *c, const scrm_xnode *n, bool is_and, scrm_xval *o)
{
	bool seen_null = false;
	for (uint32_t k = 0; k < n->nkids; k++) {
		int32_t ki = c->kids[n->first + k];
		const scrm_xnode *kn = &c->nodes[ki];
		int tv;
		if (kn->op >= SCRM_XOP_EQ_SC && kn->op <= SCRM_XOP_GE_SI && c->tr == NULL &&
		    (tv = fused_fast(c, kn)) >= 0) {
			if (SCRM_X_UNLIKELY((c->cost += kn->cost) > c->budget))
				return scrm__xover_budget(c, kn);
			if ((bool)tv != is_and) {
				set_bool(o, !is_and);
				return SCRM_OK;
			}
			continue;
		}
		scrm_xval v;
		int rc = ev(c, ki, &v);
		if (rc)
			return rc;
		if (v.t == SCRM_XV_BOOL) {
			if ((bool)v.u.i != is_and) { /* false && ..., true || ... */
				set_bool(o, !is_and);
				return SCRM_OK;
			}
		} else if (v.t == SCRM_XV_NULL) {
			seen_null = true;
		} else {
			return scrm__xfail(c, n, SCRM_EVAL, "type mismatch: %s needs bool operands, not %s",
					   is_and ? "&&" : "||", scrm__xtype_name(v.t));
		}
	}
	if (seen_null)
		set_null(o);
	else
		set_bool(o, is_and);
	return SCRM_OK;
}

static int ev_node(scrm_xctx *c, const scrm_xnode *n, int op, scrm_xval *o)
{
	scrm_xval a, b;
	int rc;
	switch (op) {
	case SCRM_XK_CONST:
		*o = c->consts[n->aux];
		return SCRM_OK;
	case SCRM_XK_PATH:
		return load(c, n, n->slot, o);
	case SCRM_XK_HAS:
		if ((rc = load(c, n, n->slot, &a)) != SCRM_OK)
			return rc;
		set_bool(o, c->v->slots[n->slot].v.t < SCRM_XV_MISSING);
		return SCRM_OK;
	case SCRM_XK_LIST: {
		scrm_xval *l = scrm__xarena_alloc(c->scratch, (size_t)n->nkids * sizeof *l);
		if (!l)
			return scrm__xfail(c, n, SCRM_NOMEM, "out of memory");
		for (uint32_t k = 0; k < n->nkids; k++)
			if ((rc = ev(c, c->kids[n->first + k], &l[k])) != SCRM_OK)
				return rc;
		o->t = SCRM_XV_LIST;
		o->n = n->nkids;
		o->u.l = l;
		return SCRM_OK;
	}
	case SCRM_XK_NOT:
		if ((rc = ev(c, c->kids[n->first], &a)) != SCRM_OK)
			return rc;
		if (a.t == SCRM_XV_BOOL)
			set_bool(o, !a.u.i);
		else if (a.t == SCRM_XV_NULL)
			set_null(o);
		else
			return scrm__xtype_error(c, n, "!", &a, NULL);
		return SCRM_OK;
	case SCRM_XK_NEG:
		if ((rc = ev(c, c->kids[n->first], &a)) != SCRM_OK)
			return rc;
		if (a.t == SCRM_XV_INT) {
			if (a.u.i == INT64_MIN)
				return scrm__xfail(c, n, SCRM_RANGE, "integer overflow: -(%lld)",
						   (long long)a.u.i);
			o->t = SCRM_XV_INT;
			o->n = 0;
			o->u.i = -a.u.i;
		} else if (a.t == SCRM_XV_NULL) {
			set_null(o);
		} else {
			return scrm__xtype_error(c, n, "-", &a, NULL);
		}
		return SCRM_OK;
	case SCRM_XK_AND:
		return logic(c, n, true, o);
	case SCRM_XK_OR:
		return logic(c, n, false, o);
	case SCRM_XK_COND:
		if ((rc = ev(c, c->kids[n->first], &a)) != SCRM_OK)
			return rc;
		if (a.t == SCRM_XV_BOOL)
			return ev(c, c->kids[n->first + (a.u.i ? 1 : 2)], o);
		if (a.t == SCRM_XV_NULL) {
			set_null(o);
			return SCRM_OK;
		}
		return scrm__xfail(c, n, SCRM_EVAL, "type mismatch: ?: needs a bool condition, not %s",
				   scrm__xtype_name(a.t));
	case SCRM_XK_COALESCE:
		if ((rc = ev(c, c->kids[n->first], o)) != SCRM_OK)
			return rc;
		if (o->t != SCRM_XV_NULL)
			return SCRM_OK;
		return ev(c, c->kids[n->first + 1], o);
	case SCRM_XK_EQ:
	case SCRM_XK_NE: {
		if ((rc = ev(c, c->kids[n->first], &a)) != SCRM_OK ||
		    (rc = ev(c, c->kids[n->first + 1], &b)) != SCRM_OK)
			return rc;
		bool eq;
		if ((rc = scrm__xequal(c, n, &a, &b, &eq)) != SCRM_OK)
			return rc;
		set_bool(o, eq == (op == SCRM_XK_EQ));
		return SCRM_OK;
	}
	case SCRM_XK_LT:
	case SCRM_XK_LE:
	case SCRM_XK_GT:
	case SCRM_XK_GE:
		if ((rc = ev(c, c->kids[n->first], &a)) != SCRM_OK ||
		    (rc = ev(c, c->kids[n->first + 1], &b)) != SCRM_OK)
			return rc;
		return order(c, n, op, &a, &b, o);
	case SCRM_XK_IN:
		if ((rc = ev(c, c->kids[n->first], &a)) != SCRM_OK ||
		    (rc = ev(c, c->kids[n->first + 1], &b)) != SCRM_OK)
			return rc;
		return in_list(c, n, &a, &b, o);
	case SCRM_XK_ADD:
	case SCRM_XK_SUB:
	case SCRM_XK_MUL:
	case SCRM_XK_DIV:
	case SCRM_XK_MOD:
		if ((rc = ev(c, c->kids[n->first], &a)) != SCRM_OK ||
		    (rc = ev(c, c->kids[n->first + 1], &b)) != SCRM_OK)
			return rc;
		return arith(c, n, op, &a, &b, o);
	case SCRM_XK_CALL: {
		scrm_xval args[3];
		for (uint32_t k = 0; k < n->nkids && k < 3; k++)
			if ((rc = ev(c, c->kids[n->first + k], &args[k])) != SCRM_OK)
				return rc;
		return scrm__xcall(c, n, args, o);
	}

	/* Fused `slot OP constant` (cost 3, charged by ev()). */
	case SCRM_XOP_EQ_SC:
	case SCRM_XOP_NE_SC: {
		if ((rc = load(c, n, n->slot, &a)) != SCRM_OK)
			return rc;
		const scrm_xval *k = &c->consts[n->aux];
		bool eq;
		if (a.t == k->t && a.t == SCRM_XV_STR)
			eq = a.n == k->n && bytes_eq(a.u.s, k->u.s, a.n);
		else if (a.t == k->t && a.t <= SCRM_XV_INT)
			eq = a.t == SCRM_XV_NULL || a.u.i == k->u.i;
		else if ((rc = scrm__xequal(c, n, &a, k, &eq)) != SCRM_OK)
			return rc;
		set_bool(o, eq == (op == SCRM_XOP_EQ_SC));
		return SCRM_OK;
	}
	case SCRM_XOP_LT_SI:
	case SCRM_XOP_LE_SI:
	case SCRM_XOP_GT_SI:
	case SCRM_XOP_GE_SI: {
		if ((rc = load(c, n, n->slot, &a)) != SCRM_OK)
			return rc;
		const scrm_xval *k = &c->consts[n->aux];
		if (SCRM_X_LIKELY(a.t == SCRM_XV_INT)) {
			int64_t x = a.u.i, y = k->u.i;
			bool res;
			switch (op) {
			case SCRM_XOP_LT_SI: res = x < y; break;
			case SCRM_XOP_LE_SI: res = x <= y; break;
			case SCRM_XOP_GT_SI: res = x > y; break;
			default: res = x >= y; break;
			}
			set_bool(o, res);
			return SCRM_OK;
		}
		/* Anything else: the generic rule, operands in source order. */
		if (c->nodes[c->kids[n->first]].kind == SCRM_XK_CONST)
			return order(c, n, n->kind, k, &a, o);
		return order(c, n, n->kind, &a, k, o);
	}
	case SCRM_XOP_IN_SC:
		if ((rc = load(c, n, n->slot, &a)) != SCRM_OK)
			return rc;
		return in_list(c, n, &a, &c->consts[n->aux], o);
	default:
		return scrm__xfail(c, n, SCRM_ERROR, "internal error: unknown node %d", op);
	}
}

int scrm__xeval(scrm_xctx *c, int32_t node, scrm_xval *out)
{
	return ev(c, node, out);
}

/* ------------------------------------------------------------ running */

static void free_graveyard(scrm_expr_vars *v)
{
	while (v->graveyard) {
		scrm_xowned *next = v->graveyard->next;
		scrm__free(v->graveyard);
		v->graveyard = next;
	}
}

int scrm__xrun(const scrm_expr *e, scrm_expr_vars *v, const scrm_xhooks *h, scrm_xtrace *tr,
	       scrm_xval *out)
{
	if (SCRM_X_UNLIKELY(v->busy))
		return scrm__error(NULL, SCRM_MISUSE,
				   "expression variables are in use by a running evaluation");
	v->busy = true;
	scrm__xarena_reset(&v->scratch);
	if (SCRM_X_UNLIKELY(v->graveyard != NULL))
		free_graveyard(v);
	scrm_xctx c;
	c.e = e;
	c.nodes = e->nodes;
	c.kids = e->kids;
	c.consts = e->consts;
	c.v = v;
	c.h = h;
	c.scratch = &v->scratch;
	c.rx = v->rx;
	c.cost = 0;
	c.budget = e->lim.cost;
	c.now_read = false;
	c.now = 0;
	c.tr = tr;
	c.err_node = -1;
	c.msg = v->errmsg;
	int rc = ev(&c, e->root, out);
	v->busy = false;
	if (tr) {
		tr->cost = c.cost;
		tr->err_node = c.err_node;
	}
	if (SCRM_X_LIKELY(rc == SCRM_OK)) {
		if (SCRM_X_UNLIKELY(v->errcode != SCRM_OK)) {
			v->errcode = SCRM_OK;
			v->err_line = v->err_col = 0;
		}
		return SCRM_OK;
	}
	v->errcode = rc;
	if (c.err_node >= 0) {
		scrm__xlinecol(e->src, e->nodes[c.err_node].pos, &v->err_line, &v->err_col);
	} else {
		v->err_line = v->err_col = 0;
		snprintf(v->errmsg, sizeof v->errmsg, "%s", scrm_errstr(rc));
	}
	scrm__xset_tls_pos(v->err_line, v->err_col);
	scrm__error(NULL, rc, "%s", v->errmsg);
	return rc;
}

static int check_args(const scrm_expr *e, const scrm_expr_vars *v, const void *out,
		      const char *fn)
{
	scrm__xset_tls_pos(0, 0);
	if (!e || !v || !out)
		return scrm__error(NULL, SCRM_MISUSE, "%s: NULL argument", fn);
	return scrm__error(NULL, SCRM_MISUSE, "%s: the variables were made for another expression",
			   fn);
}

SCRM_API int scrm_expr_test(const scrm_expr *e, scrm_expr_vars *v, int *holds)
{
	if (SCRM_X_UNLIKELY(!e || !v || !holds || v->expr != e)) {
		if (holds)
			*holds = 0;
		return check_args(e, v, holds, "scrm_expr_test");
	}
	scrm_xval r;
	int rc = scrm__xrun(e, v, v->hooks, NULL, &r);
	*holds = rc == SCRM_OK && r.t == SCRM_XV_BOOL && r.u.i;
	return rc;
}

SCRM_API int scrm_expr_eval_json(const scrm_expr *e, scrm_expr_vars *v, char **out)
{
	if (out)
		*out = NULL;
	if (!e || !v || !out || v->expr != e)
		return check_args(e, v, out, "scrm_expr_eval_json");
	scrm_xval r;
	int rc = scrm__xrun(e, v, v->hooks, NULL, &r);
	if (rc)
		return rc;
	scrm_buf b;
	scrm__buf_init(&b, NULL);
	scrm__xjson_value(&b, &r);
	return scrm__buf_finish(&b, out);
}

SCRM_API int scrm_expr_eval_trace(const scrm_expr *e, scrm_expr_vars *v, char **out)
{
	if (out)
		*out = NULL;
	if (!e || !v || !out || v->expr != e)
		return check_args(e, v, out, "scrm_expr_eval_trace");
	return scrm__xtrace_run(e, v, v->hooks, out);
}

SCRM_API const char *scrm_expr_errmsg(const scrm_expr_vars *v)
{
	if (!v)
		return scrm_errmsg(NULL);
	return v->errcode ? v->errmsg : "not an error";
}
