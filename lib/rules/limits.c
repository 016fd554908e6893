/*
 * Limits on firing: fire-once and cooldown per rule and customer, consent
 * for host actions, frequency caps per group (rolling, or calendar periods
 * in the customer's time zone), and quiet hours in the customer's time
 * zone; plus the calendar arithmetic they share with date triggers.
 */
#include <stdio.h>
#include <string.h>

#include "rules-int.h"

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

void ru__civil(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	/* Howard Hinnant's civil_from_days. */
	z += 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

void ru__calendar(int unit, int64_t t, const scrm_tz *z, int64_t *start, int64_t *next)
{
	int64_t day = floor_div(t + scrm__tz_offset(z, t), RU_DAY_MS), s = day, n = day + 1;
	if (unit == RU_CAL_WEEK) {
		/* 1970-01-01 was a Thursday; weeks start on Monday (ISO 8601). */
		int64_t wd = ((day + 3) % 7 + 7) % 7;
		s = day - wd;
		n = s + 7;
	} else if (unit == RU_CAL_MONTH) {
		int64_t y;
		unsigned m, d;
		ru__civil(day, &y, &m, &d);
		s = scrm__days_from_civil(y, m, 1);
		n = m == 12 ? scrm__days_from_civil(y + 1, 1, 1) : scrm__days_from_civil(y, m + 1, 1);
	}
	/* Local midnights: with daylight saving time a period is an hour
	 * shorter or longer; a midnight the clocks skip starts the day at the
	 * first instant that exists, a repeated one at its first occurrence. */
	*start = scrm__tz_utc(z, s * RU_DAY_MS, false);
	*next = scrm__tz_utc(z, n * RU_DAY_MS, false);
}

/* ------------------------------------------------------------ once, cooldown */

int ru__check_once_cooldown(ru_ctx *c, const ru_rule *r, const char **outcome, int64_t *until)
{
	*outcome = NULL;
	*until = 0;
	if (!r->once && !r->cooldown_ms)
		return SCRM_OK;
	scrm_db *db = c->db;
	/* A deferral still waiting counts as a firing: it will fire. */
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT (SELECT max(at) FROM rule_fire WHERE customer = ?1 AND rid = ?2), "
		    "EXISTS (SELECT 1 FROM rule_deferred WHERE customer = ?1 AND rid = ?2)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, c->customer);
	sqlite3_bind_int64(st, 2, r->rid);
	int s = sqlite3_step(st);
	if (s != SQLITE_ROW) {
		sqlite3_reset(st);
		return scrm__sqlerr(db, s, "reading firings");
	}
	bool fired = sqlite3_column_type(st, 0) != SQLITE_NULL;
	int64_t last = sqlite3_column_int64(st, 0);
	bool pending = sqlite3_column_int(st, 1) != 0;
	sqlite3_reset(st);
	if (r->once && (fired || pending)) {
		*outcome = "once";
	} else if (r->cooldown_ms && pending) {
		*outcome = "cooldown";
	} else if (r->cooldown_ms && fired && c->now < last + r->cooldown_ms) {
		*outcome = "cooldown";
		*until = last + r->cooldown_ms;
	}
	return SCRM_OK;
}

/* ------------------------------------------------------------ consent */

int ru__check_consent(ru_ctx *c, const ru_rule *r, const ru_action *acts, size_t n,
		      const char **purpose)
{
	*purpose = NULL;
	for (size_t i = 0; i < n; i++) {
		const ru_action *a = &acts[i];
		const char *p = a->consent ? a->consent
			      : a->kind == RU_ACT_HOST && r ? r->consent : NULL;
		if (!p)
			continue;
		int granted = -1;
		for (int k = 0; k < c->nconsent && granted < 0; k++)
			if (strcmp(c->consent[k].purpose, p) == 0)
				granted = c->consent[k].granted;
		if (granted < 0) {
			int rc = scrm_profile_consent_get(c->db, c->customer, p, &granted);
			if (rc == SCRM_NOTFOUND) {
				scrm__clear_error(c->db);
				granted = 0;
			} else if (rc) {
				return rc;
			}
			if (c->nconsent < (int)SCRM_ARRAY_LEN(c->consent)) {
				snprintf(c->consent[c->nconsent].purpose, sizeof c->consent[0].purpose, "%s", p);
				c->consent[c->nconsent++].granted = granted;
			}
		}
		if (!granted) {
			*purpose = p;
			return SCRM_OK;
		}
	}
	return SCRM_OK;
}

/* ------------------------------------------------------------ caps */

int ru__check_cap(ru_ctx *c, const ru_rule *r, const ru_group *g, ru_cap *cap)
{
	(void)r;
	scrm_db *db = c->db;
	memset(cap, 0, sizeof *cap);
	cap->max = g->max;
	int64_t from, next = 0;
	if (g->calendar) {
		const scrm_tz *z;
		int rc = ru__ctx_tz(c, &z);
		if (rc)
			return rc;
		ru__calendar(g->calendar, c->now, z, &from, &next);
	} else {
		from = c->now - g->per_ms + 1;
	}
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT count(*) FROM rule_fire WHERE customer = ?1 AND grp = ?2 AND at >= ?3 "
		    "AND at <= ?4");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, c->customer);
	sqlite3_bind_text(st, 2, g->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, from);
	sqlite3_bind_int64(st, 4, c->now);
	int s = sqlite3_step(st);
	cap->count = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (s != SQLITE_ROW)
		return scrm__sqlerr(db, s, "counting firings");
	if (cap->count < cap->max)
		return SCRM_OK;
	if (g->calendar) {
		cap->release = next;
		return SCRM_OK;
	}
	/* Rolling: a unit frees up when the firing that makes the count
	 * exceed max - 1 leaves the window. */
	st = scrm__stmt(db, "SELECT at FROM rule_fire WHERE customer = ?1 AND grp = ?2 AND at >= ?3 "
			    "AND at <= ?4 ORDER BY at LIMIT 1 OFFSET ?5");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, c->customer);
	sqlite3_bind_text(st, 2, g->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, from);
	sqlite3_bind_int64(st, 4, c->now);
	sqlite3_bind_int64(st, 5, cap->count - cap->max);
	s = sqlite3_step(st);
	cap->release = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) + g->per_ms : c->now + g->per_ms;
	sqlite3_reset(st);
	if (s != SQLITE_ROW && s != SQLITE_DONE)
		return scrm__sqlerr(db, s, "reading firings");
	return SCRM_OK;
}

/* ------------------------------------------------------------ quiet hours */

int ru__check_quiet(ru_ctx *c, const ru_rule *r, int64_t *until)
{
	*until = 0;
	const ru_quiet *q = r->quiet == 2 ? &r->own_quiet : r->quiet == 1 ? &c->st->cfg.quiet : NULL;
	if (!q || !q->on)
		return SCRM_OK;
	const scrm_tz *z;
	int rc = ru__ctx_tz(c, &z);
	if (rc)
		return rc;
	/* The window is in wall-clock time at this instant's offset. */
	int64_t local = c->now + scrm__tz_offset(z, c->now);
	int64_t day0 = floor_div(local, RU_DAY_MS) * RU_DAY_MS, mod = local - day0;
	int64_t start = q->start_min * RU_MIN_MS, end = q->end_min * RU_MIN_MS;
	bool inside = start < end ? (mod >= start && mod < end) : (mod >= start || mod < end);
	if (!inside)
		return SCRM_OK;
	/* The next instant the clock shows the end: an end the clocks skip
	 * is the gap's length later; one they repeat, the occurrence still
	 * ahead (the later one when now is between the two). */
	int64_t end_local = mod < end ? day0 + end : day0 + RU_DAY_MS + end;
	*until = scrm__tz_utc(z, end_local, false);
	if (*until <= c->now)
		*until = scrm__tz_utc(z, end_local, true);
	return SCRM_OK;
}
