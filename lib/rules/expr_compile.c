/*
 * Compiling expressions: options and limits, the bump allocator, constant
 * folding, fusing hot node shapes, the slot table and the public
 * compile/free/variable calls.
 */
#include <string.h>

#include <xxhash.h>

#include "expr-int.h"

/* ------------------------------------------------------------ arena */

#define BLOCK_HDR ((sizeof(scrm_xblock) + 15) & ~(size_t)15)

/* PCRE2's JIT reads a subject in aligned 16-byte loads, past its end
 * (never past a page). Blocks are zeroed and have 16 bytes of slack so
 * those reads stay in defined memory and memcheck stays quiet. */
#define BLOCK_SLACK 16

void *scrm__xarena_alloc(scrm_xarena *a, size_t size)
{
	if (size > SIZE_MAX / 2)
		return NULL;
	size_t n = (size + 15) & ~(size_t)15;
	scrm_xblock *b = a->head;
	if (b && b->cap - b->used >= n) {
		char *p = (char *)b + BLOCK_HDR + b->used;
		b->used += n;
		return p;
	}
	/* Each block at least doubles, so the newest holds more than all the
	 * older ones together and is the one worth keeping on reset. */
	size_t cap = b ? b->cap * 2 : 1024;
	if (cap < n)
		cap = n;
	scrm_xblock *nb = scrm__calloc(NULL, 1, BLOCK_HDR + cap + BLOCK_SLACK);
	if (!nb)
		return NULL;
	nb->next = b;
	nb->cap = cap;
	nb->used = n;
	a->head = nb;
	return (char *)nb + BLOCK_HDR;
}

void scrm__xarena_reset(scrm_xarena *a)
{
	scrm_xblock *b = a->head;
	if (!b)
		return;
	scrm_xblock *old = b->next;
	while (old) {
		scrm_xblock *next = old->next;
		scrm__free(old);
		old = next;
	}
	b->next = NULL;
	b->used = 0;
}

void scrm__xarena_free(scrm_xarena *a)
{
	scrm__xarena_reset(a);
	scrm__free(a->head);
	a->head = NULL;
}

/* ------------------------------------------------------------ limits */

void scrm__xlimits_default(scrm_xlimits *l)
{
	l->source = 65536;
	l->depth = 64;
	l->nodes = 4096;
	l->string = 65536;
	l->cost = 100000;
	l->re_match = 100000;
	l->re_depth = 5000;
	l->re_heap = 2048;
}

SCRM_API int scrm_expr_options_new(scrm_expr_options **out)
{
	if (!out)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_expr_options_new: out is NULL");
	*out = scrm__calloc(NULL, 1, sizeof **out);
	if (!*out)
		return scrm__error(NULL, SCRM_NOMEM, "out of memory");
	scrm__xlimits_default(&(*out)->lim);
	return SCRM_OK;
}

SCRM_API void scrm_expr_options_free(scrm_expr_options *opts)
{
	scrm__free(opts);
}

SCRM_API int scrm_expr_options_set_limit(scrm_expr_options *opts, int limit, int64_t value)
{
	if (!opts)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_expr_options_set_limit: opts is NULL");
	int64_t *field, max = INT64_MAX;
	switch (limit) {
	case SCRM_EXPR_LIMIT_SOURCE: field = &opts->lim.source, max = INT64_C(1) << 30; break;
	case SCRM_EXPR_LIMIT_DEPTH: field = &opts->lim.depth, max = 256; break;
	case SCRM_EXPR_LIMIT_NODES: field = &opts->lim.nodes, max = INT64_C(1) << 30; break;
	case SCRM_EXPR_LIMIT_STRING: field = &opts->lim.string, max = INT64_C(1) << 30; break;
	case SCRM_EXPR_LIMIT_COST: field = &opts->lim.cost; break;
	case SCRM_EXPR_LIMIT_REGEX_MATCH: field = &opts->lim.re_match, max = UINT32_MAX; break;
	case SCRM_EXPR_LIMIT_REGEX_DEPTH: field = &opts->lim.re_depth, max = UINT32_MAX; break;
	case SCRM_EXPR_LIMIT_REGEX_HEAP: field = &opts->lim.re_heap, max = UINT32_MAX; break;
	default: return scrm__error(NULL, SCRM_INVALID, "unknown expression limit %d", limit);
	}
	if (value < 1 || value > max)
		return scrm__error(NULL, SCRM_RANGE, "expression limit %d must be between 1 and %lld",
				   limit, (long long)max);
	*field = value;
	return SCRM_OK;
}

/* ------------------------------------------------------ thread's error pos */

static _Thread_local int tls_line, tls_col;

void scrm__xset_tls_pos(int line, int col)
{
	tls_line = line;
	tls_col = col;
}

SCRM_API int scrm_expr_error_pos(const scrm_expr_vars *vars, int *line, int *column)
{
	int l = vars ? vars->err_line : tls_line, c = vars ? vars->err_col : tls_col;
	if (line)
		*line = l;
	if (column)
		*column = c;
	return l > 0 ? SCRM_OK : SCRM_NOTFOUND;
}

/* ------------------------------------------------------------ folding */

/* Copy a folded value into the expression's pool: the scratch arena it was
 * made in goes away. */
static bool pool_copy(scrm_expr *e, const scrm_xval *src, scrm_xval *dst)
{
	*dst = *src;
	if (src->t == SCRM_XV_STR) {
		char *s = scrm__xarena_alloc(&e->pool, (size_t)src->n + 1);
		if (!s)
			return false;
		if (src->n)
			memcpy(s, src->u.s, src->n);
		s[src->n] = '\0';
		dst->u.s = s;
	} else if (src->t == SCRM_XV_LIST && src->n) {
		scrm_xval *l = scrm__xarena_alloc(&e->pool, (size_t)src->n * sizeof *l);
		if (!l)
			return false;
		for (uint32_t i = 0; i < src->n; i++)
			if (!pool_copy(e, &src->u.l[i], &l[i]))
				return false;
		dst->u.l = l;
	}
	return true;
}

static bool foldable(const scrm_expr *e, const scrm_xnode *n)
{
	switch (n->kind) {
	case SCRM_XK_CONST:
	case SCRM_XK_PATH:
	case SCRM_XK_HAS: return false;
	case SCRM_XK_CALL:
		if (!scrm__xfunc_get(n->fn)->pure)
			return false;
		break;
	default: break;
	}
	for (uint32_t k = 0; k < n->nkids; k++)
		if (e->nodes[scrm__xkid(e, n, k)].kind != SCRM_XK_CONST)
			return false;
	return true;
}

/* Nodes are stored children-first, so one forward pass folds bottom-up. */
static int fold(scrm_xcomp *cp)
{
	scrm_expr *e = cp->e;
	scrm_xarena tmp = {0};
	char msg[SCRM_X_ERRMSG];
	int rc = SCRM_OK;
	for (uint32_t i = 0; i < e->nnodes && rc == SCRM_OK; i++) {
		scrm_xnode *n = &e->nodes[i];
		if (!foldable(e, n))
			continue;
		scrm_xctx c = {
			.e = e, .nodes = e->nodes, .kids = e->kids, .consts = e->consts,
			.scratch = &tmp, .rx = cp->rx, .budget = e->lim.cost, .err_node = -1, .msg = msg,
		};
		scrm_xval v;
		int erc = scrm__xeval(&c, (int32_t)i, &v);
		if (erc == SCRM_OK) {
			scrm_xval pv;
			int32_t ci = -1;
			if (pool_copy(e, &v, &pv))
				ci = scrm__xconst_add(cp, &pv);
			if (ci < 0) {
				rc = scrm__xcomp_error(cp, SCRM_NOMEM, n->pos, "out of memory");
				break;
			}
			n = &e->nodes[i];
			n->kind = n->op = SCRM_XK_CONST;
			n->nkids = 0;
			n->aux = ci;
			n->cost = 1;
			n->depth = 1;
		} else if (erc == SCRM_NOMEM) {
			rc = scrm__xcomp_error(cp, SCRM_NOMEM, n->pos, "out of memory");
		}
		/* Other errors (the cost budget too: a constant sub-expression
		 * costs what it would at evaluation) stay for evaluation: the
		 * branch may never run. */
		scrm__xarena_reset(&tmp);
	}
	scrm__xarena_free(&tmp);
	return rc;
}

/* `path OP constant` is the commonest shape of a condition: execute it as
 * one node reading the slot directly. */
static void fuse(scrm_expr *e)
{
	for (uint32_t i = 0; i < e->nnodes; i++) {
		scrm_xnode *n = &e->nodes[i];
		if (n->kind < SCRM_XK_EQ || n->kind > SCRM_XK_IN || n->nkids != 2)
			continue;
		const scrm_xnode *a = &e->nodes[scrm__xkid(e, n, 0)];
		const scrm_xnode *b = &e->nodes[scrm__xkid(e, n, 1)];
		bool flip = false;
		if (a->kind == SCRM_XK_CONST && b->kind == SCRM_XK_PATH && n->kind != SCRM_XK_IN) {
			const scrm_xnode *t = a;
			a = b;
			b = t;
			flip = true;
		}
		if (a->kind != SCRM_XK_PATH || b->kind != SCRM_XK_CONST)
			continue;
		const scrm_xval *cv = &e->consts[b->aux];
		int op = -1;
		switch (n->kind) {
		case SCRM_XK_EQ: op = SCRM_XOP_EQ_SC; break;
		case SCRM_XK_NE: op = SCRM_XOP_NE_SC; break;
		case SCRM_XK_LT: op = flip ? SCRM_XOP_GT_SI : SCRM_XOP_LT_SI; break;
		case SCRM_XK_LE: op = flip ? SCRM_XOP_GE_SI : SCRM_XOP_LE_SI; break;
		case SCRM_XK_GT: op = flip ? SCRM_XOP_LT_SI : SCRM_XOP_GT_SI; break;
		case SCRM_XK_GE: op = flip ? SCRM_XOP_LE_SI : SCRM_XOP_GE_SI; break;
		case SCRM_XK_IN: op = SCRM_XOP_IN_SC; break;
		}
		if (op >= SCRM_XOP_LT_SI && op <= SCRM_XOP_GE_SI && cv->t != SCRM_XV_INT)
			continue;
		if (op == SCRM_XOP_IN_SC && cv->t != SCRM_XV_LIST)
			continue;
		n->op = (uint8_t)op;
		n->slot = a->slot;
		n->aux = b->aux;
		n->cost = 3;
	}
}

/* ------------------------------------------------------------ slot table */

static uint64_t hash_name(const char *s, size_t n)
{
	return XXH3_64bits(s, n);
}

static void hash_put(scrm_expr *e, const char *name, uint32_t len, int32_t slot)
{
	uint64_t h = hash_name(name, len);
	for (uint32_t i = (uint32_t)h & e->hmask;; i = (i + 1) & e->hmask) {
		scrm_xhent *he = &e->hash[i];
		if (he->slot == -1) {
			he->hash = h;
			he->name = name;
			he->len = len;
			he->slot = slot;
			return;
		}
		if (he->hash == h && he->len == len && memcmp(he->name, name, len) == 0) {
			if (slot >= 0)
				he->slot = slot; /* a path that is also a prefix is a slot */
			return;
		}
	}
}

static int build_hash(scrm_expr *e)
{
	size_t entries = 0;
	for (uint32_t s = 0; s < e->nslots; s++) {
		entries++;
		for (uint32_t k = 0; k < e->name_lens[s]; k++)
			entries += e->names[s][k] == '.';
	}
	size_t size = 8;
	while (size < entries * 2)
		size *= 2;
	e->hash = scrm__malloc(NULL, size * sizeof *e->hash);
	if (!e->hash)
		return SCRM_NOMEM;
	e->hmask = (uint32_t)size - 1;
	for (size_t i = 0; i < size; i++)
		e->hash[i].slot = -1;
	for (uint32_t s = 0; s < e->nslots; s++) {
		hash_put(e, e->names[s], e->name_lens[s], (int32_t)s);
		for (uint32_t k = 0; k < e->name_lens[s]; k++)
			if (e->names[s][k] == '.')
				hash_put(e, e->names[s], k, -2);
	}
	return SCRM_OK;
}

int32_t scrm__xslot_lookup(const scrm_expr *e, const char *path, size_t len)
{
	if (!e->hash)
		return -1;
	uint64_t h = hash_name(path, len);
	for (uint32_t i = (uint32_t)h & e->hmask;; i = (i + 1) & e->hmask) {
		const scrm_xhent *he = &e->hash[i];
		if (he->slot == -1)
			return -1;
		if (he->hash == h && he->len == len && memcmp(he->name, path, len) == 0)
			return he->slot;
	}
}

/* ------------------------------------------------------------ public */

SCRM_API void scrm_expr_free(scrm_expr *e)
{
	if (!e)
		return;
	scrm__xregex_free_all(e);
	scrm__free(e->src);
	scrm__free(e->nodes);
	scrm__free(e->kids);
	scrm__free(e->consts);
	scrm__free(e->names);
	scrm__free(e->name_lens);
	scrm__free(e->hash);
	scrm__xarena_free(&e->pool);
	scrm__free(e);
}

static int compile_fail(scrm_xcomp *cp, scrm_expr *e)
{
	int line = 0, col = 0;
	int code = cp->code ? cp->code : SCRM_ERROR;
	if (code == SCRM_NOMEM) {
		scrm__error(NULL, code, "out of memory compiling an expression");
	} else {
		scrm__xlinecol(cp->src, cp->errpos, &line, &col);
		scrm__error(NULL, code, "%d:%d: %s", line, col, cp->msg);
	}
	scrm__xset_tls_pos(line, col);
	scrm__free(cp->stack);
	scrm__xmatcher_free(cp->rx);
	scrm_expr_free(e);
	return code;
}

SCRM_API int scrm_expr_compile(const char *src, const scrm_expr_options *opts, scrm_expr **out)
{
	scrm__clear_error(NULL);
	scrm__xset_tls_pos(0, 0);
	if (!out)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_expr_compile: out is NULL");
	*out = NULL;
	if (!src)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_expr_compile: src is NULL");
	scrm_xlimits lim;
	if (opts)
		lim = opts->lim;
	else
		scrm__xlimits_default(&lim);
	size_t len = strnlen(src, (size_t)lim.source + 1);
	if (len > (size_t)lim.source)
		return scrm__error(NULL, SCRM_LIMIT, "expression longer than the limit of %lld bytes",
				   (long long)lim.source);

	scrm_expr *e = scrm__calloc(NULL, 1, sizeof *e);
	if (!e)
		return scrm__error(NULL, SCRM_NOMEM, "out of memory compiling an expression");
	e->lim = lim;
	e->root = -1;
	scrm_xcomp cp = {.e = e, .src = src, .len = (uint32_t)len};
	e->src = scrm__strndup(NULL, src, len);
	if (!e->src) {
		cp.code = SCRM_NOMEM;
		return compile_fail(&cp, e);
	}
	e->src_len = (uint32_t)len;
	cp.src = e->src;
	if (scrm__xlex_check_utf8(&cp) || scrm__xparse(&cp))
		return compile_fail(&cp, e);
	if (e->nre) {
		cp.rx = scrm__xmatcher_new(e);
		if (!cp.rx) {
			cp.code = SCRM_NOMEM;
			return compile_fail(&cp, e);
		}
	}
	if (fold(&cp))
		return compile_fail(&cp, e);
	fuse(e);
	if (build_hash(e)) {
		cp.code = SCRM_NOMEM;
		return compile_fail(&cp, e);
	}
	scrm__free(cp.stack);
	scrm__xmatcher_free(cp.rx);
	*out = e;
	return SCRM_OK;
}

SCRM_API int scrm_expr_var_count(const scrm_expr *e)
{
	return e ? (int)e->nslots : -1;
}

SCRM_API const char *scrm_expr_var_name(const scrm_expr *e, int slot)
{
	if (!e || slot < 0 || (uint32_t)slot >= e->nslots)
		return NULL;
	return e->names[slot];
}

SCRM_API int scrm_expr_var_index(const scrm_expr *e, const char *path)
{
	if (!e || !path)
		return -1;
	int32_t s = scrm__xslot_lookup(e, path, strlen(path));
	return s >= 0 ? s : -1;
}

/* ------------------------------------------------------------ walking */

static int walk(const scrm_expr *e, int32_t i, int depth, scrm_xvisit_fn fn, void *ud)
{
	int rc = fn(ud, e, i, depth);
	if (rc)
		return rc;
	const scrm_xnode *n = &e->nodes[i];
	for (uint32_t k = 0; k < n->nkids; k++)
		if ((rc = walk(e, scrm__xkid(e, n, k), depth + 1, fn, ud)) != 0)
			return rc;
	return 0;
}

int scrm__xwalk(const scrm_expr *e, scrm_xvisit_fn enter, void *ud)
{
	return e->root >= 0 ? walk(e, e->root, 0, enter, ud) : 0;
}
