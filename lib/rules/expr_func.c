/*
 * Built-in functions of the expression language: strings, lists, time and
 * host functions (has_tag, count, sum, now); matches() is in expr_regex.c.
 */
#include <stdio.h>
#include <string.h>

#include "expr-int.h"

/* Extra cost of a call on top of the node's 1. matches() also pays for
 * the work its matcher does (scrm_xmatcher); host functions may touch the
 * database. */
static const scrm_xfunc funcs[SCRM_XF_COUNT_] = {
	[SCRM_XF_MATCHES] = {"matches", SCRM_XF_MATCHES, 2, 2, true, 10},
	[SCRM_XF_CONTAINS] = {"contains", SCRM_XF_CONTAINS, 2, 2, true, 0},
	[SCRM_XF_STARTS_WITH] = {"starts_with", SCRM_XF_STARTS_WITH, 2, 2, true, 0},
	[SCRM_XF_ENDS_WITH] = {"ends_with", SCRM_XF_ENDS_WITH, 2, 2, true, 0},
	[SCRM_XF_LOWER] = {"lower", SCRM_XF_LOWER, 1, 1, true, 0},
	[SCRM_XF_LEN] = {"len", SCRM_XF_LEN, 1, 1, true, 0},
	[SCRM_XF_NOW] = {"now", SCRM_XF_NOW, 0, 0, false, 0},
	[SCRM_XF_DAYS_SINCE] = {"days_since", SCRM_XF_DAYS_SINCE, 1, 1, false, 0},
	[SCRM_XF_LOCAL_HOUR] = {"local_hour", SCRM_XF_LOCAL_HOUR, 2, 2, true, 0},
	[SCRM_XF_DAY_OF_WEEK] = {"day_of_week", SCRM_XF_DAY_OF_WEEK, 2, 2, true, 0},
	[SCRM_XF_HAS_TAG] = {"has_tag", SCRM_XF_HAS_TAG, 1, 1, false, 10},
	[SCRM_XF_COUNT] = {"count", SCRM_XF_COUNT, 2, 2, false, 10},
	[SCRM_XF_SUM] = {"sum", SCRM_XF_SUM, 2, 2, false, 10},
};

const scrm_xfunc *scrm__xfunc_lookup(const char *name, size_t len)
{
	for (size_t i = 0; i < SCRM_ARRAY_LEN(funcs); i++)
		if (strlen(funcs[i].name) == len && memcmp(funcs[i].name, name, len) == 0)
			return &funcs[i];
	return NULL;
}

const scrm_xfunc *scrm__xfunc_get(int id)
{
	return &funcs[id];
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* ------------------------------------------------------------ strings */

/* Simple one-to-one lower-case mappings that keep the UTF-8 length:
 * ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic and full-width Latin
 * (common in Chinese input). */
static uint32_t lower_cp(uint32_t u)
{
	if (u < 0x80)
		return (u >= 'A' && u <= 'Z') ? u + 32 : u;
	if (u >= 0xC0 && u <= 0xDE && u != 0xD7)
		return u + 32;
	if (u >= 0x100 && u <= 0x17F) {
		if ((u <= 0x12F || (u >= 0x132 && u <= 0x137) || (u >= 0x14A && u <= 0x177)) &&
		    !(u & 1))
			return u + 1;
		if (((u >= 0x139 && u <= 0x148) || (u >= 0x179 && u <= 0x17E)) && (u & 1))
			return u + 1;
		if (u == 0x178)
			return 0xFF;
		return u;
	}
	if (u >= 0x391 && u <= 0x3A9 && u != 0x3A2)
		return u + 32;
	if (u >= 0x410 && u <= 0x42F)
		return u + 32;
	if (u >= 0x400 && u <= 0x40F)
		return u + 80;
	if (u >= 0xFF21 && u <= 0xFF3A)
		return u + 32;
	return u;
}

static void put_same_len(char *o, uint32_t u, int k)
{
	if (k == 1) {
		o[0] = (char)u;
	} else if (k == 2) {
		o[0] = (char)(0xC0 | (u >> 6));
		o[1] = (char)(0x80 | (u & 0x3F));
	} else if (k == 3) {
		o[0] = (char)(0xE0 | (u >> 12));
		o[1] = (char)(0x80 | ((u >> 6) & 0x3F));
		o[2] = (char)(0x80 | (u & 0x3F));
	} else {
		o[0] = (char)(0xF0 | (u >> 18));
		o[1] = (char)(0x80 | ((u >> 12) & 0x3F));
		o[2] = (char)(0x80 | ((u >> 6) & 0x3F));
		o[3] = (char)(0x80 | (u & 0x3F));
	}
}

static int fn_lower(scrm_xctx *c, const scrm_xnode *n, const scrm_xval *s, scrm_xval *o)
{
	if (s->n > c->e->lim.string)
		return scrm__xfail(c, n, SCRM_LIMIT, "string longer than the limit of %lld bytes",
				   (long long)c->e->lim.string);
	char *out = scrm__xarena_alloc(c->scratch, s->n ? s->n : 1);
	if (!out)
		return scrm__xfail(c, n, SCRM_NOMEM, "out of memory");
	const unsigned char *in = (const unsigned char *)s->u.s;
	for (uint32_t i = 0; i < s->n;) {
		uint32_t u;
		int k = scrm__xutf8_seq(in + i, s->n - i, &u);
		if (!k) { /* invalid byte: kept as it is */
			out[i] = (char)in[i];
			i++;
			continue;
		}
		put_same_len(out + i, lower_cp(u), k);
		i += (uint32_t)k;
	}
	o->t = SCRM_XV_STR;
	o->n = s->n;
	o->u.s = out;
	return SCRM_OK;
}

static bool has_sub(const char *h, size_t hn, const char *nd, size_t nn)
{
	if (nn == 0)
		return true;
	if (nn > hn)
		return false;
	const char *end = h + (hn - nn);
	for (const char *p = h; p <= end;) {
		p = memchr(p, nd[0], (size_t)(end - p) + 1);
		if (!p)
			return false;
		if (memcmp(p, nd, nn) == 0)
			return true;
		p++;
	}
	return false;
}

/* ------------------------------------------------------------ calls */

static int arg_error(scrm_xctx *c, const scrm_xnode *n, int argi, const char *want,
		     const scrm_xval *got)
{
	return scrm__xfail(c, n, SCRM_EVAL, "type mismatch: %s argument %d must be %s, not %s",
			   funcs[n->fn].name, argi + 1, want, scrm__xtype_name(got->t));
}

static void set_int(scrm_xval *o, int64_t i)
{
	o->t = SCRM_XV_INT;
	o->n = 0;
	o->u.i = i;
}

static void set_bool(scrm_xval *o, bool b)
{
	o->t = SCRM_XV_BOOL;
	o->n = 0;
	o->u.i = b;
}

/* The clock is read once per evaluation, so that now(), days_since() and
 * the count()/sum() windows of one evaluation agree. */
static int need_now(scrm_xctx *c, const scrm_xnode *n, int64_t *now)
{
	if (!c->now_read) {
		if (c->h && c->h->has_now)
			c->now = c->h->now;
		else if (c->h && c->h->has_clock)
			c->now = c->h->clock ? c->h->clock(c->h->clock_ud) : scrm_db_now(NULL);
		else
			return scrm__xfail(c, n, SCRM_EVAL,
					   "%s: no current time bound (scrm_expr_env_set_now or "
					   "scrm_expr_env_set_clock)",
					   funcs[n->fn].name);
		c->now_read = true;
	}
	*now = c->now;
	return SCRM_OK;
}

static int host_failed(scrm_xctx *c, const scrm_xnode *n, int rc)
{
	return scrm__xfail(c, n, rc, "%s: the host function failed: %s", funcs[n->fn].name,
			   scrm_errstr(rc));
}

int scrm__xcall(scrm_xctx *c, const scrm_xnode *n, const scrm_xval *a, scrm_xval *o)
{
	const scrm_xfunc *f = &funcs[n->fn];
	int rc;
	if (f->cost && (rc = scrm__xcharge(c, n, f->cost)) != SCRM_OK)
		return rc;
	/* Null in, null out: every function but contains(list, null) and
	 * now() gives null when an argument is null. */
	bool any_null = false;
	for (int k = 0; k < f->max_args; k++)
		any_null |= a[k].t == SCRM_XV_NULL;
	if (any_null && !(n->fn == SCRM_XF_CONTAINS && a[0].t == SCRM_XV_LIST)) {
		o->t = SCRM_XV_NULL;
		o->n = 0;
		o->u.i = 0;
		return SCRM_OK;
	}
	switch (n->fn) {
	case SCRM_XF_MATCHES:
		if (a[0].t != SCRM_XV_STR)
			return arg_error(c, n, 0, "a string", &a[0]);
		return scrm__xmatches(c, n, &a[0], o);
	case SCRM_XF_CONTAINS:
		if (a[0].t == SCRM_XV_LIST) {
			if ((rc = scrm__xcharge(c, n, a[0].n)) != SCRM_OK)
				return rc;
			for (uint32_t i = 0; i < a[0].n; i++) {
				bool eq;
				if ((rc = scrm__xequal(c, n, &a[0].u.l[i], &a[1], &eq)) != SCRM_OK)
					return rc;
				if (eq) {
					set_bool(o, true);
					return SCRM_OK;
				}
			}
			set_bool(o, false);
			return SCRM_OK;
		}
		/* fall through */
	case SCRM_XF_STARTS_WITH:
	case SCRM_XF_ENDS_WITH:
		if (a[0].t != SCRM_XV_STR)
			return arg_error(c, n, 0, n->fn == SCRM_XF_CONTAINS ? "a string or list" : "a string",
					 &a[0]);
		if (a[1].t != SCRM_XV_STR)
			return arg_error(c, n, 1, "a string", &a[1]);
		if ((rc = scrm__xcharge(c, n, a[0].n / 64)) != SCRM_OK)
			return rc;
		if (n->fn == SCRM_XF_CONTAINS)
			set_bool(o, has_sub(a[0].u.s, a[0].n, a[1].u.s, a[1].n));
		else if (a[1].n > a[0].n)
			set_bool(o, false);
		else if (n->fn == SCRM_XF_STARTS_WITH)
			set_bool(o, a[1].n == 0 || memcmp(a[0].u.s, a[1].u.s, a[1].n) == 0);
		else
			set_bool(o, a[1].n == 0 ||
					    memcmp(a[0].u.s + (a[0].n - a[1].n), a[1].u.s, a[1].n) == 0);
		return SCRM_OK;
	case SCRM_XF_LOWER:
		if (a[0].t != SCRM_XV_STR)
			return arg_error(c, n, 0, "a string", &a[0]);
		if ((rc = scrm__xcharge(c, n, a[0].n / 16)) != SCRM_OK) /* decoding UTF-8 */
			return rc;
		return fn_lower(c, n, &a[0], o);
	case SCRM_XF_LEN:
		if (a[0].t == SCRM_XV_LIST) {
			set_int(o, a[0].n);
		} else if (a[0].t == SCRM_XV_STR) {
			if ((rc = scrm__xcharge(c, n, a[0].n / 64)) != SCRM_OK)
				return rc;
			int64_t cps = 0;
			for (uint32_t i = 0; i < a[0].n; i++)
				cps += ((unsigned char)a[0].u.s[i] & 0xC0) != 0x80;
			set_int(o, cps);
		} else {
			return arg_error(c, n, 0, "a string or list", &a[0]);
		}
		return SCRM_OK;
	case SCRM_XF_NOW: {
		int64_t now = 0;
		if ((rc = need_now(c, n, &now)) != SCRM_OK)
			return rc;
		set_int(o, now);
		return SCRM_OK;
	}
	case SCRM_XF_DAYS_SINCE: {
		if (a[0].t != SCRM_XV_INT)
			return arg_error(c, n, 0, "an int (ms timestamp)", &a[0]);
		int64_t now = 0, d;
		if ((rc = need_now(c, n, &now)) != SCRM_OK)
			return rc;
		if (__builtin_sub_overflow(now, a[0].u.i, &d))
			return scrm__xfail(c, n, SCRM_RANGE, "integer overflow: days_since(%lld)",
					   (long long)a[0].u.i);
		set_int(o, floor_div(d, 86400000));
		return SCRM_OK;
	}
	case SCRM_XF_LOCAL_HOUR:
	case SCRM_XF_DAY_OF_WEEK: {
		if (a[0].t != SCRM_XV_INT)
			return arg_error(c, n, 0, "an int (ms timestamp)", &a[0]);
		if (a[1].t != SCRM_XV_STR)
			return arg_error(c, n, 1, "a string (time zone)", &a[1]);
		/* Zones live in tz.c; the offset is the one in force at t. */
		scrm_tz z;
		int64_t t;
		if (!scrm__tz_parse(a[1].u.s, a[1].n, &z))
			return scrm__xfail(c, n, SCRM_EVAL, "%s: unknown time zone '%.*s'", f->name,
					   (int)(a[1].n > 40 ? 40 : a[1].n), a[1].u.s);
		if (__builtin_add_overflow(a[0].u.i, scrm__tz_offset(&z, a[0].u.i), &t))
			return scrm__xfail(c, n, SCRM_RANGE, "integer overflow: %s(%lld)", f->name,
					   (long long)a[0].u.i);
		/* Not t - day * 86400000: near INT64_MIN the product overflows
		 * (found by the expression fuzzer). */
		int64_t day = floor_div(t, 86400000);
		int64_t ms = t % 86400000;
		if (ms < 0)
			ms += 86400000;
		if (n->fn == SCRM_XF_LOCAL_HOUR)
			set_int(o, ms / 3600000);
		else /* ISO 8601: Monday 1 .. Sunday 7; 1970-01-01 was a Thursday */
			set_int(o, (day % 7 + 7 + 3) % 7 + 1);
		return SCRM_OK;
	}
	case SCRM_XF_HAS_TAG: {
		if (a[0].t != SCRM_XV_STR)
			return arg_error(c, n, 0, "a string", &a[0]);
		if (!c->h || !c->h->tag_fn)
			return scrm__xfail(c, n, SCRM_EVAL, "has_tag: no tag source bound");
		int has = 0;
		if ((rc = c->h->tag_fn(c->h->ud, a[0].u.s, a[0].n, &has)) != SCRM_OK)
			return host_failed(c, n, rc);
		set_bool(o, has != 0);
		return SCRM_OK;
	}
	case SCRM_XF_COUNT:
	case SCRM_XF_SUM: {
		if (a[0].t != SCRM_XV_STR)
			return arg_error(c, n, 0, "a string (event type)", &a[0]);
		if (a[1].t != SCRM_XV_INT)
			return arg_error(c, n, 1, "an int (duration)", &a[1]);
		if (a[1].u.i < 0)
			return scrm__xfail(c, n, SCRM_EVAL, "%s: the window must not be negative",
					   f->name);
		if (!c->h || !c->h->events_fn)
			return scrm__xfail(c, n, SCRM_EVAL, "%s: no event source bound", f->name);
		int64_t now = 0, from, r = 0;
		if ((rc = need_now(c, n, &now)) != SCRM_OK)
			return rc;
		if (__builtin_sub_overflow(now, a[1].u.i, &from))
			return scrm__xfail(c, n, SCRM_RANGE, "integer overflow: %s window", f->name);
		rc = c->h->events_fn(c->h->ud,
				     n->fn == SCRM_XF_COUNT ? SCRM_EXPR_AGG_COUNT : SCRM_EXPR_AGG_SUM,
				     a[0].u.s, a[0].n, from, now, &r);
		if (rc)
			return host_failed(c, n, rc);
		set_int(o, r);
		return SCRM_OK;
	}
	default:
		return scrm__xfail(c, n, SCRM_ERROR, "internal error: unknown function %d", n->fn);
	}
}
