/*
 * Expression parser: recursive descent over the token stream, building the
 * node array children-first, with depth and size limits enforced as it goes.
 */
#include <string.h>

#include "expr-int.h"

static int32_t parse_cond(scrm_xcomp *cp);

static int advance(scrm_xcomp *cp)
{
	return scrm__xlex_next(cp);
}

static int expected(scrm_xcomp *cp, const char *what)
{
	char found[64];
	scrm__xtok_describe(cp, found, sizeof found);
	return scrm__xcomp_error(cp, SCRM_PARSE, cp->tok.start, "expected %s but found %s", what,
				 found);
}

static bool grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
	if (need <= *cap)
		return true;
	uint32_t c = *cap ? *cap : 16;
	while (c < need)
		c *= 2;
	void *q = scrm__realloc(NULL, *p, (size_t)c * elem);
	if (!q)
		return false;
	*p = q;
	*cap = c;
	return true;
}

static int push_kid(scrm_xcomp *cp, int32_t k)
{
	if (!grow((void **)&cp->stack, &cp->capstack, cp->nstack + 1, sizeof *cp->stack))
		return scrm__xcomp_error(cp, SCRM_NOMEM, cp->tok.start, "out of memory");
	cp->stack[cp->nstack++] = k;
	return SCRM_OK;
}

/* New node whose children are the top `nkids` entries of the stack. */
static int32_t mknode(scrm_xcomp *cp, int kind, uint32_t pos, uint32_t start, uint32_t nkids)
{
	scrm_expr *e = cp->e;
	if ((int64_t)e->nnodes + 1 > e->lim.nodes) {
		scrm__xcomp_error(cp, SCRM_LIMIT, pos, "expression has more than %lld nodes",
				  (long long)e->lim.nodes);
		return -1;
	}
	uint16_t depth = 0;
	for (uint32_t k = 0; k < nkids; k++) {
		uint16_t d = e->nodes[cp->stack[cp->nstack - nkids + k]].depth;
		if (d > depth)
			depth = d;
	}
	depth++;
	if (depth > e->lim.depth) {
		scrm__xcomp_error(cp, SCRM_LIMIT, pos, "expression nested deeper than %lld levels",
				  (long long)e->lim.depth);
		return -1;
	}
	if (!grow((void **)&e->nodes, &e->capnodes, e->nnodes + 1, sizeof *e->nodes) ||
	    !grow((void **)&e->kids, &e->capkids, e->nkids + nkids, sizeof *e->kids)) {
		scrm__xcomp_error(cp, SCRM_NOMEM, pos, "out of memory");
		return -1;
	}
	scrm_xnode *n = &e->nodes[e->nnodes];
	memset(n, 0, sizeof *n);
	n->kind = n->op = (uint8_t)kind;
	n->cost = 1;
	n->depth = depth;
	n->nkids = nkids;
	n->first = e->nkids;
	n->slot = -1;
	n->aux = -1;
	n->pos = pos;
	n->start = start;
	n->end = cp->prev_end > start ? cp->prev_end : start;
	if (nkids)
		memcpy(e->kids + e->nkids, cp->stack + cp->nstack - nkids, nkids * sizeof *e->kids);
	e->nkids += nkids;
	cp->nstack -= nkids;
	return (int32_t)e->nnodes++;
}

int32_t scrm__xconst_add(scrm_xcomp *cp, const scrm_xval *v)
{
	scrm_expr *e = cp->e;
	if (!grow((void **)&e->consts, &e->capconsts, e->nconsts + 1, sizeof *e->consts))
		return -1;
	e->consts[e->nconsts] = *v;
	return (int32_t)e->nconsts++;
}

static int32_t mkconst(scrm_xcomp *cp, const scrm_xval *v, uint32_t pos)
{
	int32_t ci = scrm__xconst_add(cp, v);
	if (ci < 0) {
		scrm__xcomp_error(cp, SCRM_NOMEM, pos, "out of memory");
		return -1;
	}
	int32_t i = mknode(cp, SCRM_XK_CONST, pos, pos, 0);
	if (i >= 0)
		cp->e->nodes[i].aux = ci;
	return i;
}

int32_t scrm__xslot_intern(scrm_xcomp *cp, const char *path, size_t len)
{
	scrm_expr *e = cp->e;
	for (uint32_t s = 0; s < e->nslots; s++)
		if (e->name_lens[s] == len && memcmp(e->names[s], path, len) == 0)
			return (int32_t)s;
	uint32_t capn = e->capslots, capl = e->capslots;
	if (!grow((void **)&e->names, &capn, e->nslots + 1, sizeof *e->names) ||
	    !grow((void **)&e->name_lens, &capl, e->nslots + 1, sizeof *e->name_lens))
		return -1;
	e->capslots = capn < capl ? capn : capl;
	char *name = scrm__xarena_alloc(&e->pool, len + 1);
	if (!name)
		return -1;
	memcpy(name, path, len);
	name[len] = '\0';
	e->names[e->nslots] = name;
	e->name_lens[e->nslots] = (uint32_t)len;
	if (len > e->max_name)
		e->max_name = (uint32_t)len;
	return (int32_t)e->nslots++;
}

/* Parser nesting guard: the recursion itself must stay bounded even where
 * no node is made, as in "((((x))))" or "!!!!x". */
static bool enter(scrm_xcomp *cp)
{
	if (++cp->depth > cp->e->lim.depth) {
		scrm__xcomp_error(cp, SCRM_LIMIT, cp->tok.start,
				  "expression nested deeper than %lld levels",
				  (long long)cp->e->lim.depth);
		return false;
	}
	return true;
}

static bool is_name_tok(int t)
{
	return t == SCRM_XT_IDENT || t == SCRM_XT_TRUE || t == SCRM_XT_FALSE || t == SCRM_XT_NULL ||
	       t == SCRM_XT_IN;
}

/* "unknown function" names what was expected: the functions there are, or
 * for method syntax (`s.lower()`) the way to write it. */
static void unknown_function(scrm_xcomp *cp, uint32_t start, const char *name, size_t nlen)
{
	const char *dot = NULL;
	for (size_t k = 0; k < nlen; k++)
		if (name[k] == '.')
			dot = name + k;
	if (dot) {
		const char *m = dot + 1;
		size_t mlen = nlen - (size_t)(m - name);
		const scrm_xfunc *f = scrm__xfunc_lookup(m, mlen);
		if (f && f->min_args >= 1) {
			size_t recv = (size_t)(dot - name);
			scrm__xcomp_error(cp, SCRM_PARSE, start,
					  "unknown function '%.*s': there are no methods, write "
					  "%s(%.*s%s)",
					  (int)(nlen > 40 ? 40 : nlen), name, f->name,
					  (int)(recv > 40 ? 40 : recv), name, f->max_args > 1 ? ", ..." : "");
			return;
		}
	}
	scrm__xcomp_error(cp, SCRM_PARSE, start,
			  "unknown function '%.*s' (expected one of: has, matches, contains, "
			  "starts_with, ends_with, lower, len, now, days_since, local_hour, "
			  "day_of_week, has_tag, count, sum)",
			  (int)(nlen > 40 ? 40 : nlen), name);
}

static int32_t parse_call(scrm_xcomp *cp, uint32_t start, const char *name, size_t nlen)
{
	const scrm_xfunc *f = scrm__xfunc_lookup(name, nlen);
	if (!f && !(nlen == 3 && memcmp(name, "has", 3) == 0)) {
		unknown_function(cp, start, name, nlen);
		return -1;
	}
	if (!enter(cp) || advance(cp)) /* '(' */
		return -1;
	uint32_t nargs = 0;
	uint32_t argpos[4] = {0};
	if (cp->tok.type != SCRM_XT_RPAREN) {
		for (;;) {
			if (nargs < 4)
				argpos[nargs] = cp->tok.start;
			int32_t a = parse_cond(cp);
			if (a < 0 || push_kid(cp, a))
				return -1;
			nargs++;
			if (cp->tok.type == SCRM_XT_COMMA) {
				if (advance(cp))
					return -1;
				continue;
			}
			if (cp->tok.type != SCRM_XT_RPAREN) {
				expected(cp, "',' or ')'");
				return -1;
			}
			break;
		}
	}
	cp->depth--;
	if (advance(cp)) /* ')' */
		return -1;
	scrm_expr *e = cp->e;
	if (!f) { /* has(path) */
		int32_t a = nargs == 1 ? cp->stack[cp->nstack - 1] : -1;
		if (a < 0 || e->nodes[a].kind != SCRM_XK_PATH) {
			scrm__xcomp_error(cp, SCRM_PARSE, nargs >= 1 ? argpos[0] : start,
					  "has() expects one field path, e.g. has(event.props.sku)");
			return -1;
		}
		cp->nstack--;
		/* Reuse the path node: it becomes has(path), spanning the call. */
		scrm_xnode *n = &e->nodes[a];
		n->kind = n->op = SCRM_XK_HAS;
		n->pos = start;
		n->start = start;
		n->end = cp->prev_end;
		e->uses |= SCRM_XU_HAS;
		return a;
	}
	if (nargs < f->min_args || nargs > f->max_args) {
		if (f->min_args == f->max_args)
			scrm__xcomp_error(cp, SCRM_PARSE, start, "%s() expects %u argument%s but got %u",
					  f->name, f->min_args, f->min_args == 1 ? "" : "s", nargs);
		else
			scrm__xcomp_error(cp, SCRM_PARSE, start,
					  "%s() expects %u to %u arguments but got %u", f->name,
					  f->min_args, f->max_args, nargs);
		return -1;
	}
	int32_t re = -1;
	if (f->id == SCRM_XF_MATCHES) {
		const scrm_xnode *p = &e->nodes[cp->stack[cp->nstack - 1]];
		const scrm_xval *pv = p->kind == SCRM_XK_CONST ? &e->consts[p->aux] : NULL;
		if (!pv || pv->t != SCRM_XV_STR) {
			scrm__xcomp_error(cp, SCRM_PARSE, argpos[1],
					  "matches: the pattern must be a string literal");
			return -1;
		}
		char msg[200];
		int rc = scrm__xregex_compile(e, pv->u.s, pv->n, &re, msg, sizeof msg);
		if (rc) {
			scrm__xcomp_error(cp, rc, argpos[1], "matches: %s", msg);
			return -1;
		}
		e->uses |= SCRM_XU_REGEX;
	} else if (f->id == SCRM_XF_LOCAL_HOUR || f->id == SCRM_XF_DAY_OF_WEEK) {
		/* A literal zone is checked now rather than on every evaluation. */
		const scrm_xnode *z = &e->nodes[cp->stack[cp->nstack - 1]];
		const scrm_xval *zv = z->kind == SCRM_XK_CONST ? &e->consts[z->aux] : NULL;
		scrm_tz tz;
		if (zv && zv->t == SCRM_XV_STR && !scrm__tz_parse(zv->u.s, zv->n, &tz)) {
			scrm__xcomp_error(cp, SCRM_INVALID, argpos[1],
					  "%s: unknown time zone '%.*s' (use an IANA name such as "
					  "\"Europe/London\", an offset such as \"+08:00\" or a POSIX "
					  "rule such as \"EST5EDT,M3.2.0,M11.1.0\")",
					  f->name, (int)(zv->n > 40 ? 40 : zv->n), zv->u.s);
			return -1;
		}
	}
	switch (f->id) {
	case SCRM_XF_NOW:
	case SCRM_XF_DAYS_SINCE: e->uses |= SCRM_XU_NOW; break;
	case SCRM_XF_HAS_TAG: e->uses |= SCRM_XU_HAS_TAG; break;
	case SCRM_XF_COUNT: e->uses |= SCRM_XU_COUNT | SCRM_XU_NOW; break;
	case SCRM_XF_SUM: e->uses |= SCRM_XU_SUM | SCRM_XU_NOW; break;
	default: break;
	}
	int32_t i = mknode(cp, SCRM_XK_CALL, start, start, nargs);
	if (i >= 0) {
		e->nodes[i].fn = f->id;
		e->nodes[i].aux = re;
	}
	return i;
}

static int32_t parse_primary(scrm_xcomp *cp)
{
	scrm_xtok t = cp->tok;
	scrm_xval v = {0};
	switch (t.type) {
	case SCRM_XT_INT:
		if (t.mag > (uint64_t)INT64_MAX) {
			scrm__xcomp_error(cp, SCRM_RANGE, t.start, "integer literal out of range");
			return -1;
		}
		v.t = SCRM_XV_INT;
		v.u.i = (int64_t)t.mag;
		break;
	case SCRM_XT_STR:
		v.t = SCRM_XV_STR;
		v.u.s = t.s;
		v.n = t.n;
		break;
	case SCRM_XT_TRUE:
	case SCRM_XT_FALSE:
		v.t = SCRM_XV_BOOL;
		v.u.i = t.type == SCRM_XT_TRUE;
		break;
	case SCRM_XT_NULL: v.t = SCRM_XV_NULL; break;
	case SCRM_XT_LPAREN: {
		if (!enter(cp) || advance(cp))
			return -1;
		int32_t i = parse_cond(cp);
		cp->depth--;
		if (i < 0)
			return -1;
		if (cp->tok.type != SCRM_XT_RPAREN) {
			expected(cp, "')'");
			return -1;
		}
		return advance(cp) ? -1 : i;
	}
	case SCRM_XT_LBRACK: {
		if (!enter(cp) || advance(cp))
			return -1;
		uint32_t n = 0;
		while (cp->tok.type != SCRM_XT_RBRACK) {
			int32_t k = parse_cond(cp);
			if (k < 0 || push_kid(cp, k))
				return -1;
			n++;
			if (cp->tok.type == SCRM_XT_COMMA) {
				if (advance(cp))
					return -1;
			} else if (cp->tok.type != SCRM_XT_RBRACK) {
				expected(cp, "',' or ']'");
				return -1;
			}
		}
		cp->depth--;
		if (advance(cp))
			return -1;
		return mknode(cp, SCRM_XK_LIST, t.start, t.start, n);
	}
	case SCRM_XT_IDENT: {
		/* A path: name ('.' name)*, or a function call: name '('. */
		if (advance(cp))
			return -1;
		if (cp->tok.type == SCRM_XT_LPAREN)
			return parse_call(cp, t.start, cp->src + t.start, t.end - t.start);
		scrm_buf path;
		scrm__buf_init(&path, NULL);
		scrm__buf_append(&path, cp->src + t.start, t.end - t.start);
		while (cp->tok.type == SCRM_XT_DOT) {
			if (advance(cp))
				goto fail;
			if (!is_name_tok(cp->tok.type)) {
				expected(cp, "a field name after '.'");
				goto fail;
			}
			scrm__buf_append(&path, ".", 1);
			scrm__buf_append(&path, cp->src + cp->tok.start, cp->tok.end - cp->tok.start);
			if (advance(cp))
				goto fail;
		}
		if (path.oom) {
			scrm__xcomp_error(cp, SCRM_NOMEM, t.start, "out of memory");
			goto fail;
		}
		if (cp->tok.type == SCRM_XT_LPAREN) {
			unknown_function(cp, t.start, path.data, path.len);
			goto fail;
		}
		int32_t slot = scrm__xslot_intern(cp, path.data, path.len);
		scrm__buf_reset(&path);
		if (slot < 0) {
			scrm__xcomp_error(cp, SCRM_NOMEM, t.start, "out of memory");
			return -1;
		}
		int32_t i = mknode(cp, SCRM_XK_PATH, t.start, t.start, 0);
		if (i >= 0)
			cp->e->nodes[i].slot = slot;
		return i;
	fail:
		scrm__buf_reset(&path);
		return -1;
	}
	default:
		expected(cp, "an expression");
		return -1;
	}
	if (advance(cp))
		return -1;
	return mkconst(cp, &v, t.start);
}

static int32_t parse_unary(scrm_xcomp *cp)
{
	scrm_xtok t = cp->tok;
	if (t.type != SCRM_XT_NOT && t.type != SCRM_XT_MINUS)
		return parse_primary(cp);
	if (!enter(cp) || advance(cp))
		return -1;
	if (t.type == SCRM_XT_MINUS && cp->tok.type == SCRM_XT_INT) {
		/* Fold "-N" here so that -9223372036854775808 is a literal. */
		scrm_xtok n = cp->tok;
		if (n.mag > UINT64_C(9223372036854775808) ||
		    (n.dur && n.mag > (uint64_t)INT64_MAX)) {
			scrm__xcomp_error(cp, SCRM_RANGE, t.start, "integer literal out of range");
			return -1;
		}
		if (advance(cp))
			return -1;
		cp->depth--;
		scrm_xval v = {.t = SCRM_XV_INT};
		v.u.i = n.mag == UINT64_C(9223372036854775808) ? INT64_MIN : -(int64_t)n.mag;
		int32_t i = mkconst(cp, &v, t.start);
		if (i >= 0)
			cp->e->nodes[i].end = n.end;
		return i;
	}
	int32_t k = parse_unary(cp);
	cp->depth--;
	if (k < 0 || push_kid(cp, k))
		return -1;
	return mknode(cp, t.type == SCRM_XT_NOT ? SCRM_XK_NOT : SCRM_XK_NEG, t.start, t.start, 1);
}

static int32_t parse_mul(scrm_xcomp *cp)
{
	uint32_t start = cp->tok.start;
	int32_t l = parse_unary(cp);
	while (l >= 0) {
		int t = cp->tok.type, kind;
		if (t == SCRM_XT_STAR)
			kind = SCRM_XK_MUL;
		else if (t == SCRM_XT_SLASH)
			kind = SCRM_XK_DIV;
		else if (t == SCRM_XT_PERCENT)
			kind = SCRM_XK_MOD;
		else
			break;
		uint32_t pos = cp->tok.start;
		if (push_kid(cp, l) || advance(cp))
			return -1;
		int32_t r = parse_unary(cp);
		if (r < 0 || push_kid(cp, r))
			return -1;
		l = mknode(cp, kind, pos, start, 2);
	}
	return l;
}

static int32_t parse_add(scrm_xcomp *cp)
{
	uint32_t start = cp->tok.start;
	int32_t l = parse_mul(cp);
	while (l >= 0 && (cp->tok.type == SCRM_XT_PLUS || cp->tok.type == SCRM_XT_MINUS)) {
		int kind = cp->tok.type == SCRM_XT_PLUS ? SCRM_XK_ADD : SCRM_XK_SUB;
		uint32_t pos = cp->tok.start;
		if (push_kid(cp, l) || advance(cp))
			return -1;
		int32_t r = parse_mul(cp);
		if (r < 0 || push_kid(cp, r))
			return -1;
		l = mknode(cp, kind, pos, start, 2);
	}
	return l;
}

/* `a ?? b` binds tighter than comparisons (as in Swift and Kotlin) so that
 * `profile.spend ?? 0 >= 100` reads as intended; it is right-associative. */
static int32_t parse_coalesce(scrm_xcomp *cp)
{
	uint32_t start = cp->tok.start;
	int32_t l = parse_add(cp);
	if (l < 0 || cp->tok.type != SCRM_XT_QQ)
		return l;
	uint32_t pos = cp->tok.start;
	if (push_kid(cp, l) || !enter(cp) || advance(cp))
		return -1;
	int32_t r = parse_coalesce(cp);
	cp->depth--;
	if (r < 0 || push_kid(cp, r))
		return -1;
	return mknode(cp, SCRM_XK_COALESCE, pos, start, 2);
}

static int32_t parse_rel(scrm_xcomp *cp)
{
	uint32_t start = cp->tok.start;
	int32_t l = parse_coalesce(cp);
	while (l >= 0) {
		int kind;
		switch (cp->tok.type) {
		case SCRM_XT_EQ: kind = SCRM_XK_EQ; break;
		case SCRM_XT_NE: kind = SCRM_XK_NE; break;
		case SCRM_XT_LT: kind = SCRM_XK_LT; break;
		case SCRM_XT_LE: kind = SCRM_XK_LE; break;
		case SCRM_XT_GT: kind = SCRM_XK_GT; break;
		case SCRM_XT_GE: kind = SCRM_XK_GE; break;
		case SCRM_XT_IN: kind = SCRM_XK_IN; break;
		default: return l;
		}
		uint32_t pos = cp->tok.start;
		if (push_kid(cp, l) || advance(cp))
			return -1;
		int32_t r = parse_coalesce(cp);
		if (r < 0 || push_kid(cp, r))
			return -1;
		l = mknode(cp, kind, pos, start, 2);
	}
	return l;
}

/* && and || chains become one n-ary node, so a long list of clauses stays
 * shallow. */
static int32_t parse_logic(scrm_xcomp *cp, bool is_or)
{
	uint32_t start = cp->tok.start;
	int tok = is_or ? SCRM_XT_OR : SCRM_XT_AND;
	int32_t l = is_or ? parse_logic(cp, false) : parse_rel(cp);
	if (l < 0 || cp->tok.type != tok)
		return l;
	uint32_t pos = cp->tok.start, n = 1;
	if (push_kid(cp, l))
		return -1;
	while (cp->tok.type == tok) {
		if (advance(cp))
			return -1;
		int32_t r = is_or ? parse_logic(cp, false) : parse_rel(cp);
		if (r < 0 || push_kid(cp, r))
			return -1;
		n++;
	}
	return mknode(cp, is_or ? SCRM_XK_OR : SCRM_XK_AND, pos, start, n);
}

static int32_t parse_cond(scrm_xcomp *cp)
{
	uint32_t start = cp->tok.start;
	int32_t c = parse_logic(cp, true);
	if (c < 0 || cp->tok.type != SCRM_XT_QUEST)
		return c;
	uint32_t pos = cp->tok.start;
	if (push_kid(cp, c) || !enter(cp) || advance(cp))
		return -1;
	int32_t a = parse_cond(cp);
	if (a < 0 || push_kid(cp, a))
		return -1;
	if (cp->tok.type != SCRM_XT_COLON) {
		expected(cp, "':'");
		return -1;
	}
	if (advance(cp))
		return -1;
	int32_t b = parse_cond(cp);
	cp->depth--;
	if (b < 0 || push_kid(cp, b))
		return -1;
	return mknode(cp, SCRM_XK_COND, pos, start, 3);
}

int scrm__xparse(scrm_xcomp *cp)
{
	if (advance(cp))
		return cp->code;
	int32_t root = parse_cond(cp);
	if (root < 0)
		return cp->code ? cp->code : SCRM_ERROR;
	if (cp->tok.type != SCRM_XT_END)
		return expected(cp, "an operator or end of input");
	cp->e->root = root;
	return SCRM_OK;
}
