/*
 * matches(): PCRE2 patterns compiled (and JIT-compiled) with the expression,
 * matched under PCRE2's match, depth and heap limits and the evaluation's
 * cost budget.
 */
#include <stdio.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "expr-int.h"

/*
 * PCRE2's match limit counts the steps of one attempt, and pcre2_match()
 * makes an attempt at every candidate start position, so on its own the
 * limit bounds a call only by (subject length x limit): a text of many
 * short runs, each just under the limit, once kept matches() busy for
 * seconds per evaluation. Matching therefore runs in up to two passes:
 *
 * 1. The quick pass, for subjects of at most QUICK_BYTES, allows QUICK_STEPS
 *    steps per start position and is charged its worst case up front: the
 *    steps, and a scan of the rest of the subject by each (one step such
 *    as a possessive repeat or a lookahead may read to the end). Ordinary
 *    patterns need a handful of steps per position, so short subjects, the
 *    common case, finish here at full PCRE2 speed; a finished pass is exact
 *    (no attempt was cut short).
 * 2. Otherwise the metered pass runs: the same pattern compiled with
 *    PCRE2_AUTO_CALLOUT, whose callout charges every pattern item tried plus
 *    the distance the matcher moved through the subject, and stops the match
 *    when the evaluation's budget is spent. Auto-callouts cost time and
 *    disable some of PCRE2's optimisations, which is why this pass is not
 *    the only one.
 *
 * A cost unit is one metered item, or 64 quick-pass steps, or 16 bytes
 * scanned: each is a few nanoseconds to a few tens.
 */
#define QUICK_STEPS 16
#define QUICK_BYTES 128
#define STEPS_PER_UNIT 64
#define BYTES_PER_UNIT 16

static void *re_malloc(PCRE2_SIZE n, void *ud)
{
	(void)ud;
	return scrm__malloc(NULL, n);
}

static void re_free(void *p, void *ud)
{
	(void)ud;
	scrm__free(p);
}

int scrm__xregex_setup(scrm_expr *e)
{
	if (e->qctx)
		return SCRM_OK;
	if (!e->gctx && !(e->gctx = pcre2_general_context_create(re_malloc, re_free, NULL)))
		return SCRM_NOMEM;
	if (!e->mctx) {
		pcre2_match_context *m = pcre2_match_context_create(e->gctx);
		if (!m)
			return SCRM_NOMEM;
		pcre2_set_match_limit(m, (uint32_t)e->lim.re_match);
		pcre2_set_depth_limit(m, (uint32_t)e->lim.re_depth);
		pcre2_set_heap_limit(m, (uint32_t)e->lim.re_heap);
		e->mctx = m;
	}
	pcre2_match_context *q = pcre2_match_context_copy(e->mctx);
	if (!q)
		return SCRM_NOMEM;
	pcre2_set_match_limit(q, e->lim.re_match < QUICK_STEPS ? (uint32_t)e->lim.re_match
							       : QUICK_STEPS);
	e->qctx = q;
	return SCRM_OK;
}

static const uint32_t compile_options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_UCP |
					PCRE2_NEVER_BACKSLASH_C;

int scrm__xregex_compile(scrm_expr *e, const char *pat, size_t n, int32_t *index, char *msg,
			 size_t msgcap)
{
	if (scrm__xregex_setup(e))
		goto nomem;
	if (e->nre == e->capre) {
		uint32_t cap = e->capre ? e->capre * 2 : 4;
		scrm_xregex *r = scrm__realloc(NULL, e->re, cap * sizeof *r);
		if (!r)
			goto nomem;
		e->re = r;
		e->capre = cap;
	}
	pcre2_compile_context *cc = pcre2_compile_context_create(e->gctx);
	if (!cc)
		goto nomem;
	int err;
	PCRE2_SIZE off;
	pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, n, compile_options, &err, &off, cc);
	if (!code) {
		pcre2_compile_context_free(cc);
		if (err == PCRE2_ERROR_HEAP_FAILED)
			goto nomem;
		PCRE2_UCHAR buf[160];
		if (pcre2_get_error_message(err, buf, sizeof buf) < 0)
			snprintf((char *)buf, sizeof buf, "error %d", err);
		snprintf(msg, msgcap, "invalid regular expression at offset %zu: %s", (size_t)off,
			 (const char *)buf);
		return SCRM_INVALID;
	}
	/* The pattern compiled once, so this can only fail for memory. */
	pcre2_code *metered = pcre2_compile((PCRE2_SPTR)pat, n,
					    compile_options | PCRE2_AUTO_CALLOUT, &err, &off, cc);
	pcre2_compile_context_free(cc);
	if (!metered) {
		pcre2_code_free(code);
		goto nomem;
	}
	/* JIT is an optimisation only: without it (or out of executable
	 * memory) the interpreter gives the same answers under the same limits. */
	(void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
	(void)pcre2_jit_compile(metered, PCRE2_JIT_COMPLETE);
	e->re[e->nre].code = code;
	e->re[e->nre].metered = metered;
	*index = (int32_t)e->nre++;
	return SCRM_OK;
nomem:
	snprintf(msg, msgcap, "out of memory");
	return SCRM_NOMEM;
}

void scrm__xregex_free_all(scrm_expr *e)
{
	for (uint32_t i = 0; i < e->nre; i++) {
		pcre2_code_free(e->re[i].code);
		pcre2_code_free(e->re[i].metered);
	}
	scrm__free(e->re);
	e->re = NULL;
	e->nre = 0;
	pcre2_match_context_free(e->qctx);
	pcre2_match_context_free(e->mctx);
	pcre2_general_context_free(e->gctx);
	e->qctx = e->mctx = e->gctx = NULL;
}

static int meter(pcre2_callout_block *cb, void *ud)
{
	scrm_xmatcher *rx = ud;
	size_t pos = cb->current_position;
	size_t moved = pos > rx->last ? pos - rx->last : rx->last - pos;
	rx->last = pos;
	rx->work += 1 + (int64_t)(moved / BYTES_PER_UNIT);
	return rx->work > rx->budget ? PCRE2_ERROR_CALLOUT : 0;
}

scrm_xmatcher *scrm__xmatcher_new(const scrm_expr *e)
{
	scrm_xmatcher *rx = scrm__calloc(NULL, 1, sizeof *rx);
	if (!rx)
		return NULL;
	/* One pair of offsets: matches() only asks whether there is a match. */
	rx->md = pcre2_match_data_create(1, e->gctx);
	rx->mctx = pcre2_match_context_copy(e->mctx);
	if (!rx->md || !rx->mctx) {
		scrm__xmatcher_free(rx);
		return NULL;
	}
	pcre2_set_callout(rx->mctx, meter, rx);
	return rx;
}

void scrm__xmatcher_free(scrm_xmatcher *rx)
{
	if (!rx)
		return;
	pcre2_match_data_free(rx->md);
	pcre2_match_context_free(rx->mctx);
	scrm__free(rx);
}

int scrm__xmatches(scrm_xctx *c, const scrm_xnode *n, const scrm_xval *s, scrm_xval *o)
{
	const scrm_xregex *re = &c->e->re[n->aux];
	scrm_xmatcher *rx = c->rx;
	PCRE2_SPTR subject = (PCRE2_SPTR)(s->n ? s->u.s : "");
	int m = PCRE2_ERROR_MATCHLIMIT;
	if (s->n <= QUICK_BYTES) {
		int64_t len = s->n;
		int rc = scrm__xcharge(c, n, (len + 1) * QUICK_STEPS / STEPS_PER_UNIT +
						     len * (len + 1) / 2 / BYTES_PER_UNIT);
		if (rc)
			return rc;
		m = pcre2_match(re->code, subject, s->n, 0, 0, rx->md, c->e->qctx);
	}
	if (m == PCRE2_ERROR_MATCHLIMIT) {
		rx->work = 0;
		rx->budget = c->budget - c->cost;
		rx->last = 0;
		m = pcre2_match(re->metered, subject, s->n, 0, 0, rx->md, rx->mctx);
		c->cost += rx->work;
		if (m == PCRE2_ERROR_CALLOUT)
			return scrm__xfail(c, n, SCRM_LIMIT,
					   "matches: evaluation cost budget of %lld exceeded (the "
					   "pattern backtracks too much on this text)",
					   (long long)c->budget);
	}
	if (m >= 0 || m == PCRE2_ERROR_NOMATCH) {
		o->t = SCRM_XV_BOOL;
		o->n = 0;
		o->u.i = m >= 0;
		return SCRM_OK;
	}
	switch (m) {
	case PCRE2_ERROR_MATCHLIMIT:
	case PCRE2_ERROR_DEPTHLIMIT:
	case PCRE2_ERROR_HEAPLIMIT:
	case PCRE2_ERROR_JIT_STACKLIMIT:
		return scrm__xfail(c, n, SCRM_LIMIT,
				   "matches: regular expression match limit exceeded "
				   "(the pattern backtracks too much on this text)");
	case PCRE2_ERROR_NOMEMORY:
		return scrm__xfail(c, n, SCRM_NOMEM, "out of memory");
	default: {
		PCRE2_UCHAR buf[120];
		if (pcre2_get_error_message(m, buf, sizeof buf) < 0)
			snprintf((char *)buf, sizeof buf, "error %d", m);
		return scrm__xfail(c, n, SCRM_EVAL, "matches: %s", (const char *)buf);
	}
	}
}
