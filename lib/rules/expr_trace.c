/*
 * Evaluation trace: the value of every sub-expression (or that it was not
 * evaluated) as JSON, for the decision trace of rules.
 */
#include <string.h>

#include "expr-int.h"

/* Expression text longer than this is cut in the trace: a 64 KiB source
 * with thousands of nodes must not make a trace of gigabytes. */
#define TRACE_TEXT_MAX 120

void scrm__xtrace_record(scrm_xctx *c, int32_t node, int rc, const scrm_xval *v)
{
	scrm_xtstep *st = &c->tr->steps[node];
	st->state = rc ? 2 : 1;
	if (!rc)
		st->v = *v;
}

typedef struct tw {
	scrm_buf *b;
	const scrm_expr *e;
	const scrm_expr_vars *v;
	const scrm_xtrace *tr;
	const uint32_t *line, *col; /* by byte offset */
	const char *errmsg;
	bool first;
} tw;

static int step(void *ud, const scrm_expr *e, int32_t i, int depth)
{
	tw *w = ud;
	scrm_buf *b = w->b;
	const scrm_xnode *n = &e->nodes[i];
	const scrm_xtstep *st = &w->tr->steps[i];
	if (!w->first)
		scrm__buf_append(b, ",", 1);
	w->first = false;
	scrm__buf_printf(b, "{\"depth\":%d,\"pos\":\"%u:%u\",\"expr\":", depth, w->line[n->pos],
			 w->col[n->pos]);
	uint32_t len = n->end > n->start ? n->end - n->start : 0;
	bool cut = false;
	if (len > TRACE_TEXT_MAX) {
		len = TRACE_TEXT_MAX;
		while (len > 0 && ((unsigned char)e->src[n->start + len] & 0xC0) == 0x80)
			len--;
		cut = true;
	}
	if (!cut) {
		scrm__xjson_str(b, e->src + n->start, len);
	} else {
		scrm_buf t;
		scrm__buf_init(&t, NULL);
		scrm__buf_append(&t, e->src + n->start, len);
		scrm__buf_append(&t, "...", 3);
		if (t.oom)
			b->oom = true;
		else
			scrm__xjson_str(b, t.data, t.len);
		scrm__buf_reset(&t);
	}
	switch (st->state) {
	case 0: scrm__buf_puts(b, ",\"evaluated\":false"); break;
	case 1:
		scrm__buf_puts(b, ",\"value\":");
		scrm__xjson_value(b, &st->v);
		if (n->kind == SCRM_XK_PATH && w->v->slots[n->slot].v.t >= SCRM_XV_MISSING)
			scrm__buf_puts(b, ",\"missing\":true");
		break;
	default:
		scrm__buf_puts(b, ",\"error\":");
		scrm__xjson_str(b, w->errmsg, strlen(w->errmsg));
		break;
	}
	scrm__buf_append(b, "}", 1);
	return 0;
}

int scrm__xtrace_run(const scrm_expr *e, scrm_expr_vars *v, const scrm_xhooks *h, char **out)
{
	*out = NULL;
	scrm_xtrace tr = {0};
	tr.steps = scrm__calloc(NULL, e->nnodes, sizeof *tr.steps);
	uint32_t *lc = scrm__malloc(NULL, ((size_t)e->src_len + 1) * 2 * sizeof *lc);
	if (!tr.steps || !lc) {
		scrm__free(tr.steps);
		scrm__free(lc);
		return scrm__error(NULL, SCRM_NOMEM, "out of memory");
	}
	scrm_xval r;
	int rc = scrm__xrun(e, v, h, &tr, &r);
	if (rc == SCRM_NOMEM || rc == SCRM_MISUSE) {
		scrm__free(tr.steps);
		scrm__free(lc);
		return rc;
	}
	/* Line and column of every byte offset, in one pass. */
	uint32_t *line = lc, *col = lc + e->src_len + 1, l = 1, c = 1;
	for (uint32_t k = 0; k <= e->src_len; k++) {
		line[k] = l;
		col[k] = c;
		unsigned char ch = k < e->src_len ? (unsigned char)e->src[k] : 0;
		if (ch == '\n')
			l++, c = 1;
		else if ((ch & 0xC0) != 0x80)
			c++;
	}
	scrm_buf b;
	scrm__buf_init(&b, NULL);
	if (rc == SCRM_OK) {
		scrm__buf_puts(&b, "{\"ok\":true,\"value\":");
		scrm__xjson_value(&b, &r);
	} else {
		scrm__buf_printf(&b, "{\"ok\":false,\"code\":%d,\"error\":", rc);
		scrm__xjson_str(&b, v->errmsg, strlen(v->errmsg));
	}
	scrm__buf_printf(&b, ",\"cost\":%lld,\"steps\":[", (long long)tr.cost);
	tw w = {.b = &b, .e = e, .v = v, .tr = &tr, .line = line, .col = col,
		.errmsg = v->errmsg, .first = true};
	scrm__xwalk(e, step, &w);
	scrm__buf_puts(&b, "]}");
	scrm__free(tr.steps);
	scrm__free(lc);
	int brc = scrm__buf_finish(&b, out);
	return brc ? brc : rc;
}
