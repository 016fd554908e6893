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

/* ------------------------------------------------------------ time zones */

/* Zones that have kept one UTC offset, without daylight saving time, since
 * at least 2019 (IANA tzdata). Anything with DST is refused rather than
 * answered wrongly for half the year; the process TZ is never touched. */
static const struct {
	const char *name;
	int minutes;
} zones[] = {
	{"UTC", 0}, {"GMT", 0}, {"Etc/UTC", 0}, {"Etc/GMT", 0}, {"Universal", 0},
	{"Asia/Shanghai", 480}, {"Asia/Chongqing", 480}, {"Asia/Chungking", 480},
	{"Asia/Harbin", 480}, {"Asia/Urumqi", 360}, {"Asia/Hong_Kong", 480}, {"Asia/Macau", 480},
	{"Asia/Taipei", 480}, {"Asia/Singapore", 480}, {"Asia/Kuala_Lumpur", 480},
	{"Asia/Manila", 480}, {"Asia/Brunei", 480}, {"Asia/Makassar", 480},
	{"Asia/Ulaanbaatar", 480}, {"Asia/Tokyo", 540}, {"Asia/Seoul", 540},
	{"Asia/Pyongyang", 540}, {"Asia/Jayapura", 540}, {"Asia/Bangkok", 420},
	{"Asia/Ho_Chi_Minh", 420}, {"Asia/Saigon", 420}, {"Asia/Jakarta", 420},
	{"Asia/Phnom_Penh", 420}, {"Asia/Vientiane", 420}, {"Asia/Yangon", 390},
	{"Asia/Dhaka", 360}, {"Asia/Thimphu", 360}, {"Asia/Kathmandu", 345},
	{"Asia/Kolkata", 330}, {"Asia/Calcutta", 330}, {"Asia/Colombo", 330},
	{"Asia/Karachi", 300}, {"Asia/Tashkent", 300}, {"Asia/Dubai", 240}, {"Asia/Muscat", 240},
	{"Asia/Baku", 240}, {"Asia/Riyadh", 180}, {"Asia/Qatar", 180}, {"Asia/Kuwait", 180},
	{"Asia/Baghdad", 180}, {"Europe/Moscow", 180}, {"Europe/Minsk", 180},
	{"Europe/Istanbul", 180}, {"Africa/Nairobi", 180}, {"Africa/Johannesburg", 120},
	{"Africa/Lagos", 60}, {"America/Sao_Paulo", -180},
	{"America/Argentina/Buenos_Aires", -180}, {"America/Bogota", -300},
	{"America/Lima", -300}, {"America/Panama", -300}, {"America/Phoenix", -420},
	{"Pacific/Honolulu", -600}, {"Australia/Brisbane", 600}, {"Australia/Perth", 480},
	{"Australia/Darwin", 570}, {"PRC", 480}, {"ROC", 480}, {"Hongkong", 480},
	{"Singapore", 480}, {"Japan", 540}, {"ROK", 540},
};

static int digits2(const char *s)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return -1;
	return (s[0] - '0') * 10 + (s[1] - '0');
}

bool scrm__xtz_parse(const char *s, size_t n, int64_t *off_ms)
{
	if (n == 1 && s[0] == 'Z') {
		*off_ms = 0;
		return true;
	}
	if (n >= 3 && (s[0] == '+' || s[0] == '-')) {
		int h = digits2(s + 1), m = 0;
		if (h < 0)
			return false;
		if (n == 6 && s[3] == ':')
			m = digits2(s + 4);
		else if (n == 5)
			m = digits2(s + 3);
		else if (n != 3)
			return false;
		if (m < 0 || m > 59 || h * 60 + m > 18 * 60)
			return false;
		*off_ms = (int64_t)(s[0] == '-' ? -1 : 1) * (h * 60 + m) * 60000;
		return true;
	}
	for (size_t i = 0; i < SCRM_ARRAY_LEN(zones); i++)
		if (strlen(zones[i].name) == n && memcmp(zones[i].name, s, n) == 0) {
			*off_ms = (int64_t)zones[i].minutes * 60000;
			return true;
		}
	return false;
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
		int64_t off, t;
		if (!scrm__xtz_parse(a[1].u.s, a[1].n, &off))
			return scrm__xfail(c, n, SCRM_EVAL, "%s: unknown time zone '%.*s'", f->name,
					   (int)(a[1].n > 40 ? 40 : a[1].n), a[1].u.s);
		if (__builtin_add_overflow(a[0].u.i, off, &t))
			return scrm__xfail(c, n, SCRM_RANGE, "integer overflow: %s(%lld)", f->name,
					   (long long)a[0].u.i);
		int64_t day = floor_div(t, 86400000);
		int64_t ms = t - day * 86400000;
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
