/*
 * Triggers: the event listener (rules of the event's type in priority
 * order, absence waits started and cancelled, state following merges and
 * unmerges), date schedules computed in the customer's time zone, and
 * scrm_rules_tick(), which fires due absence waits, date occurrences and
 * deferrals in time order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules-int.h"
#include "scrm/identity.h"

/* ------------------------------------------------------------ dates */

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool parse_date(const char *s, int64_t *y, unsigned *m, unsigned *d)
{
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return false;
	*y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	*m = (unsigned)((s[5] - '0') * 10 + (s[6] - '0'));
	*d = (unsigned)((s[8] - '0') * 10 + (s[9] - '0'));
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return *m >= 1 && *m <= 12 && *d >= 1 && *d <= mdays[*m - 1] &&
	       !(*m == 2 && *d == 29 && !leap(*y));
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* The first occurrence at or after (inclusive) / after `after`: the date
 * (in year Y for yearly triggers; 29 February is kept on the 28th in
 * other years) minus days_before, at the trigger's local time. */
int ru__date_next(const ru_rule *r, const char *date, const scrm_tz *z, int64_t after,
		  bool inclusive, int64_t *due, char instance[32])
{
	int64_t y;
	unsigned m, d;
	if (!parse_date(date, &y, &m, &d))
		return 0;
	int64_t from = y, to = y;
	if (r->yearly) {
		int64_t ly;
		unsigned lm, ld;
		ru__civil(floor_div(after + scrm__tz_offset(z, after), RU_DAY_MS), &ly, &lm, &ld);
		from = ly - 1 > y ? ly - 1 : y;
		to = ly + 2;
	}
	for (int64_t yy = from; yy <= to && yy <= 9999; yy++) {
		unsigned dd = (m == 2 && d == 29 && !leap(yy)) ? 28 : d;
		int64_t day = scrm__days_from_civil(yy, m, dd) - r->days_before;
		/* The local time on that date, at that date's offset (a time the
		 * clocks skip fires the gap's length later, a repeated one at its
		 * first occurrence). */
		int64_t t = scrm__tz_utc(z, day * RU_DAY_MS + r->at_min * RU_MIN_MS, false);
		if (t > after || (inclusive && t == after)) {
			*due = t;
			snprintf(instance, 32, "%04lld-%02u-%02u", (long long)yy, m, dd);
			return 1;
		}
	}
	return 0;
}

/* The attribute's date as text, or NULL. */
static const char *date_value(const char *json, char buf[16])
{
	size_t n = json ? strlen(json) : 0;
	if (n != 12 || json[0] != '"' || json[11] != '"')
		return NULL;
	memcpy(buf, json + 1, 10);
	buf[10] = '\0';
	return buf;
}

static int date_row(scrm_db *db, int64_t rid, int64_t customer, bool *found, char last[32])
{
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT last_instance FROM rule_date WHERE rid = ?1 AND customer = ?2");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, rid);
	sqlite3_bind_int64(st, 2, customer);
	int s = sqlite3_step(st);
	*found = s == SQLITE_ROW;
	last[0] = '\0';
	if (*found && sqlite3_column_text(st, 0))
		snprintf(last, 32, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	return s == SQLITE_ROW || s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "reading schedules");
}

static int date_store(scrm_db *db, int64_t rid, int64_t customer, int64_t due, const char *inst,
		      const char *last)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "INSERT INTO rule_date(rid, customer, due, instance, last_instance) "
		    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(rid, customer) DO UPDATE SET due = ?3, "
		    "instance = ?4, last_instance = coalesce(?5, last_instance)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, rid);
	sqlite3_bind_int64(st, 2, customer);
	if (inst) {
		sqlite3_bind_int64(st, 3, due);
		sqlite3_bind_text(st, 4, inst, -1, SQLITE_STATIC);
	}
	if (last)
		sqlite3_bind_text(st, 5, last, -1, SQLITE_STATIC);
	return scrm__step_done(db, st, "scheduling a date rule");
}

/* Schedule one date rule for one customer from `since` on (inclusive),
 * never repeating the occurrence fired last. */
static int schedule(ru_ctx *c, const ru_rule *r, int64_t since)
{
	const char *json;
	char buf[16], inst[32], last[32];
	const scrm_tz *z;
	int64_t due = 0;
	bool found;
	int rc;
	if ((rc = ru__ctx_attr(c, r->attr, &json)) || (rc = ru__ctx_tz(c, &z)) ||
	    (rc = date_row(c->db, r->rid, c->customer, &found, last)))
		return rc;
	const char *date = date_value(json, buf);
	int got = date ? ru__date_next(r, date, z, since, true, &due, inst) : 0;
	if (got && strcmp(inst, last) == 0)
		got = ru__date_next(r, date, z, due, false, &due, inst);
	if (!got && !found)
		return SCRM_OK;
	return date_store(c->db, r->rid, c->customer, due, got ? inst : NULL, NULL);
}

/* Customers whose date attributes (or tz) changed, or who a date rule
 * newly applies to. */
static int reschedule_dirty(scrm_db *db, ru_state *s, int64_t *count)
{
	sqlite3_stmt *st = scrm__stmt(db, "SELECT customer, since FROM rule_date_dirty ORDER BY customer");
	if (!st)
		return scrm_errcode(db);
	int64_t *rows = NULL;
	size_t n = 0, cap = 0;
	int rc = SCRM_OK, step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (n + 2 > cap) {
			cap = cap ? cap * 2 : 64;
			int64_t *p = scrm__realloc(db, rows, cap * sizeof *p);
			if (!p) {
				rc = scrm__error(db, SCRM_NOMEM, "out of memory");
				break;
			}
			rows = p;
		}
		rows[n++] = sqlite3_column_int64(st, 0);
		rows[n++] = sqlite3_column_int64(st, 1);
	}
	if (!rc && step != SQLITE_DONE)
		rc = scrm__sqlerr(db, step, "reading rescheduling work");
	sqlite3_reset(st);
	if (!rc && n)
		rc = scrm__exec(db, "DELETE FROM rule_date_dirty");
	for (size_t i = 0; i < n && !rc; i += 2) {
		int64_t root, erased = 0;
		rc = ru__canonical(db, rows[i], &root);
		if (rc == SCRM_NOTFOUND) {
			scrm__clear_error(db);
			rc = SCRM_OK;
			continue;
		}
		if (!rc)
			rc = scrm_identity_erased(db, root, &erased);
		if (rc || erased)
			continue;
		ru_ctx c;
		ru__ctx_init(&c, db, s, root, rows[i + 1]);
		for (size_t k = 0; k < s->nrules && !rc; k++)
			if (s->rules[k].trig == RU_TRIG_DATE)
				rc = schedule(&c, &s->rules[k], rows[i + 1]);
		ru__ctx_clear(&c);
		(*count)++;
	}
	scrm__free(rows);
	return rc;
}

/* ------------------------------------------------------------ events */

static int insert_wait(ru_ctx *c, const ru_rule *r, const ru_ev *ev)
{
	sqlite3_stmt *st = scrm__stmt(
		c->db, "INSERT INTO rule_wait(rid, customer, event, start_at, due) VALUES (?1,?2,?3,?4,?5)");
	if (!st)
		return scrm_errcode(c->db);
	sqlite3_bind_int64(st, 1, r->rid);
	sqlite3_bind_int64(st, 2, c->customer);
	sqlite3_bind_int64(st, 3, ev->id);
	sqlite3_bind_int64(st, 4, ev->at);
	sqlite3_bind_int64(st, 5, ev->at > RU_TIME_MAX - r->within_ms ? RU_TIME_MAX : ev->at + r->within_ms);
	return scrm__step_done(c->db, st, "starting an absence wait");
}

typedef struct wait_row {
	int64_t id, event, start_at, due;
} wait_row;

static int cancel_some(ru_ctx *c, const ru_rule *r, const ru_ev *ev, const wait_row *w, size_t n);

/* The awaited event came: waits it falls inside (start <= at <= due, and
 * the correlation holds) are cancelled, and traced. */
static int cancel_waits(ru_ctx *c, const ru_rule *r, const ru_ev *ev)
{
	scrm_db *db = c->db;
	int rc = SCRM_OK;
	/* In pages of 16, so the statement is not stepping while its table
	 * changes. */
	for (int64_t after = 0; !rc;) {
		sqlite3_stmt *st = scrm__stmt(
			db, "SELECT id, event, start_at, due FROM rule_wait WHERE customer = ?1 AND rid = ?2 "
			    "AND start_at <= ?3 AND due >= ?3 AND id > ?4 ORDER BY id LIMIT 16");
		if (!st)
			return scrm_errcode(db);
		sqlite3_bind_int64(st, 1, c->customer);
		sqlite3_bind_int64(st, 2, r->rid);
		sqlite3_bind_int64(st, 3, ev->at);
		sqlite3_bind_int64(st, 4, after);
		wait_row w[16];
		size_t n = 0;
		int s;
		while (n < SCRM_ARRAY_LEN(w) && (s = sqlite3_step(st)) == SQLITE_ROW) {
			w[n].id = sqlite3_column_int64(st, 0);
			w[n].event = sqlite3_column_int64(st, 1);
			w[n].start_at = sqlite3_column_int64(st, 2);
			w[n].due = sqlite3_column_int64(st, 3);
			n++;
		}
		sqlite3_reset(st);
		if (n < SCRM_ARRAY_LEN(w) && s != SQLITE_DONE)
			return scrm__sqlerr(db, s, "reading absence waits");
		if (n == 0)
			break;
		after = w[n - 1].id;
		rc = cancel_some(c, r, ev, w, n);
		if (n < SCRM_ARRAY_LEN(w))
			break;
	}
	return rc;
}

static int cancel_some(ru_ctx *c, const ru_rule *r, const ru_ev *ev, const wait_row *w, size_t n)
{
	scrm_db *db = c->db;
	int rc = SCRM_OK;
	for (size_t i = 0; i < n && !rc; i++) {
		scrm_buf detail, inputs;
		scrm__buf_init(&detail, db);
		scrm__buf_init(&inputs, db);
		ru_ev_row start;
		bool found = false;
		int holds = 1, evalerr = 0;
		if (r->match) {
			if ((rc = ru__event_read(db, w[i].event, &start, &found)))
				break;
			c->ev = ev;
			c->start = found ? &start.ev : NULL;
			rc = ru__eval(c, r->match, &holds, &evalerr, &inputs);
			c->start = NULL;
			ru__event_row_free(&start);
		}
		if (!rc && holds) {
			sqlite3_stmt *d = scrm__stmt(db, "DELETE FROM rule_wait WHERE id = ?1");
			if (!d) {
				rc = scrm_errcode(db);
			} else {
				sqlite3_bind_int64(d, 1, w[i].id);
				rc = scrm__step_done(db, d, "cancelling an absence wait");
			}
			char inst[32];
			snprintf(inst, sizeof inst, "ev:%lld", (long long)w[i].event);
			scrm__buf_printf(&detail, "{\"by_event\":%lld,\"start_at\":%lld,\"due\":%lld",
					 (long long)ev->id, (long long)w[i].start_at, (long long)w[i].due);
			if (inputs.len) {
				scrm__buf_puts(&detail, ",\"match_inputs\":");
				scrm__buf_append(&detail, inputs.data, inputs.len);
			}
			scrm__buf_puts(&detail, "}");
			if (!rc)
				rc = detail.oom || inputs.oom
					     ? scrm__error(db, SCRM_NOMEM, "out of memory")
					     : ru__trace(c, r, r->version, "absence", inst, w[i].event,
							 "cancelled_by_event", detail.data, NULL);
		}
		scrm__buf_reset(&detail);
		scrm__buf_reset(&inputs);
	}
	return rc;
}

static int on_event(scrm_db *db, const scrm_note *note)
{
	const scrm_event *e = note->event;
	ru_state *s;
	int rc = ru__state(db, &s);
	if (rc || !e)
		return rc;
	const ru_bucket *b = ru__bucket(s, e->type);
	if (!b)
		return SCRM_OK;
	ru_ev ev = {note->log_id, e->type,      e->channel,   e->key,       e->at_ms,   e->has_amount != 0,
		    e->amount,    e->currency, e->refund_of, e->props_json, e->items_json};
	ru_ctx c;
	ru__ctx_init(&c, db, s, note->survivor, scrm__now(db));
	char inst[32];
	memcpy(inst, "ev:", 3);
	inst[3 + scrm__fmt_int(inst + 3, ev.id)] = '\0';
	for (size_t i = 0; i < b->nmiss && !rc; i++)
		rc = cancel_waits(&c, &s->rules[b->miss[i]], &ev);
	c.ev = &ev;
	c.trig_kind = "event";
	c.instance = inst;
	for (size_t i = 0; i < b->nev && !rc; i++) {
		const ru_rule *r = &s->rules[b->ev[i]];
		if (r->max_age_ms && c.now - ev.at > r->max_age_ms)
			continue;
		ru_fire_in in = {r, "event", inst, ev.id, false, 0, NULL, 0};
		rc = ru__decide(&c, &in);
	}
	for (size_t i = 0; i < b->nstart && !rc; i++)
		rc = insert_wait(&c, &s->rules[b->start[i]], &ev);
	if (!rc)
		rc = ru__trace_flush(&c);
	ru__ctx_clear(&c);
	return rc;
}

/* Rule tags follow every event and attribute change of the customer:
 * before the rules, so that their conditions' has_tag() sees the event's
 * effect as profile.figures does, and again after them when a rule's
 * tag action changed a tag a rule tag's expression may read. (A rule's
 * profile.set is an attribute change and re-evaluates them by itself.) */
static int on_event_all(scrm_db *db, const scrm_note *note)
{
	ru_state *s;
	int64_t now = scrm__now(db);
	int rc = ru__state(db, &s);
	if (rc || (rc = ru__ruletags_customer(db, note->survivor, now)))
		return rc;
	uint64_t before = s->tag_changes;
	rc = on_event(db, note);
	if (!rc && s->tag_changes != before)
		rc = ru__ruletags_customer(db, note->survivor, now);
	return rc;
}

static int exec2(scrm_db *db, const char *sql, int64_t a, int64_t b, const char *what)
{
	sqlite3_stmt *st = scrm__stmt(db, sql);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	return scrm__step_done(db, st, what);
}

static int on_merge(scrm_db *db, const scrm_note *note)
{
	int64_t sv = note->survivor, ab = note->absorbed, now = scrm__now(db);
	static const char *const moves[] = {
		"UPDATE rule_fire SET customer = ?1 WHERE customer = ?2",
		"UPDATE rule_wait SET customer = ?1 WHERE customer = ?2",
		"UPDATE rule_deferred SET customer = ?1 WHERE customer = ?2",
		"UPDATE OR IGNORE rule_date SET customer = ?1 WHERE customer = ?2",
		"DELETE FROM rule_date WHERE customer = ?2 AND ?1 <> 0",
	};
	int rc = SCRM_OK;
	for (size_t i = 0; i < SCRM_ARRAY_LEN(moves) && !rc; i++)
		rc = exec2(db, moves[i], sv, ab, "moving rule state to the survivor");
	/* Dates are read over every merged id: schedule the survivor again. */
	if (!rc)
		rc = exec2(db, "INSERT OR IGNORE INTO rule_date_dirty(customer, since) "
			       "SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM rule_date_attr)",
			   sv, now, "rescheduling");
	if (!rc)
		rc = ru__tags_merge(db, sv, ab, note->log_id, now);
	return rc;
}

/* Unmerge (the profile engine has already given each side back its
 * events): absence waits and held firings go with the event that started
 * them. Firings stay with the old root, whose caps they counted in. */
static int on_unmerge(scrm_db *db, const scrm_note *note)
{
	int64_t now = scrm__now(db);
	static const char *const moves[] = {
		"UPDATE rule_wait SET customer = ?2 WHERE customer = ?1 AND "
		"(SELECT customer FROM event WHERE id = rule_wait.event) = ?2",
		"UPDATE rule_deferred SET customer = ?2 WHERE customer = ?1 AND event IS NOT NULL AND "
		"(SELECT customer FROM event WHERE id = rule_deferred.event) = ?2",
	};
	int rc = ru__tags_unmerge(db, note->survivor, note->absorbed);
	for (size_t i = 0; i < SCRM_ARRAY_LEN(moves) && !rc; i++)
		rc = exec2(db, moves[i], note->survivor, note->absorbed,
			   "giving rule state back to the split-off customer");
	for (int i = 0; i < 2 && !rc; i++)
		rc = exec2(db, "INSERT OR IGNORE INTO rule_date_dirty(customer, since) "
			       "SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM rule_date_attr)",
			   i ? note->absorbed : note->survivor, now, "rescheduling");
	return rc;
}

int scrm__rules_note_wanted(scrm_db *db, const scrm_note *note, scrm_want *want)
{
	*want = SCRM_WANT_EACH;
	if (note->kind != SCRM_NOTE_EVENT || !note->event)
		return SCRM_OK;
	ru_state *s;
	bool tags;
	int rc = ru__state(db, &s);
	if (rc || (rc = ru__ruletags_any(db, s, &tags)))
		return rc;
	if (ru__bucket(s, note->event->type) == NULL)
		*want = tags ? SCRM_WANT_CUSTOMER : SCRM_WANT_NONE;
	return SCRM_OK;
}

int scrm__rules_on_note(scrm_db *db, const scrm_note *note)
{
	switch (note->kind) {
	case SCRM_NOTE_EVENT: return on_event_all(db, note);
	case SCRM_NOTE_ATTR: /* fall through: both change only the profile */
	case SCRM_NOTE_EVENTS: return ru__ruletags_customer(db, note->survivor, scrm__now(db));
	case SCRM_NOTE_MERGE: {
		int rc = on_merge(db, note);
		return rc ? rc : ru__ruletags_customer(db, note->survivor, scrm__now(db));
	}
	case SCRM_NOTE_UNMERGE: {
		int rc = on_unmerge(db, note);
		if (!rc)
			rc = ru__ruletags_customer(db, note->survivor, scrm__now(db));
		return rc ? rc : ru__ruletags_customer(db, note->absorbed, scrm__now(db));
	}
	default: return SCRM_OK;
	}
}

/* ------------------------------------------------------------ tick */

enum { DUE_WAIT = 0, DUE_DATE, DUE_DEFERRED };

typedef struct due_item {
	int what;
	int64_t id, rid, customer, due, event, version;
	int64_t priority;
	const char *rule_id;
	char *instance, *kind, *actions;
} due_item;

static int due_cmp(const void *pa, const void *pb)
{
	const due_item *a = pa, *b = pb;
	if (a->due != b->due)
		return a->due < b->due ? -1 : 1;
	if (a->priority != b->priority)
		return a->priority < b->priority ? -1 : 1;
	int c = strcmp(a->rule_id, b->rule_id);
	if (c)
		return c;
	if (a->customer != b->customer)
		return a->customer < b->customer ? -1 : 1;
	if (a->what != b->what)
		return a->what < b->what ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

static const ru_rule *rule_by_rid(const ru_state *s, int64_t rid)
{
	for (size_t i = 0; i < s->nrules; i++)
		if (s->rules[i].rid == rid)
			return &s->rules[i];
	return NULL;
}

typedef struct due_list {
	due_item *items;
	size_t n, cap;
} due_list;

static void due_free(due_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		scrm__free(l->items[i].instance);
		scrm__free(l->items[i].kind);
		scrm__free(l->items[i].actions);
	}
	scrm__free(l->items);
}

static int collect(scrm_db *db, ru_state *s, int what, const char *sql, int64_t now, due_list *l,
		   int64_t *dropped)
{
	sqlite3_stmt *st = scrm__stmt(db, sql);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, now);
	int step, rc = SCRM_OK;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const ru_rule *r = rule_by_rid(s, sqlite3_column_int64(st, 1));
		if (l->n == l->cap) {
			size_t cap = l->cap ? l->cap * 2 : 64;
			due_item *p = scrm__realloc(db, l->items, cap * sizeof *p);
			if (!p) {
				rc = scrm__error(db, SCRM_NOMEM, "out of memory");
				break;
			}
			l->items = p;
			l->cap = cap;
		}
		due_item *it = &l->items[l->n];
		memset(it, 0, sizeof *it);
		it->what = r ? what : -1 - what; /* rule gone or disabled: dropped */
		it->id = sqlite3_column_int64(st, 0);
		it->rid = sqlite3_column_int64(st, 1);
		it->customer = sqlite3_column_int64(st, 2);
		it->due = sqlite3_column_int64(st, 3);
		it->event = sqlite3_column_int64(st, 4);
		it->version = sqlite3_column_int64(st, 7);
		it->priority = r ? r->priority : 0;
		it->rule_id = r ? r->id : "";
		const char *t5 = (const char *)sqlite3_column_text(st, 5);
		const char *t6 = (const char *)sqlite3_column_text(st, 6);
		const char *t8 = (const char *)sqlite3_column_text(st, 8);
		l->n++;
		if ((t5 && !(it->instance = scrm__strdup(db, t5))) ||
		    (t6 && !(it->kind = scrm__strdup(db, t6))) ||
		    (t8 && !(it->actions = scrm__strdup(db, t8)))) {
			rc = scrm__error(db, SCRM_NOMEM, "out of memory");
			break;
		}
		if (!r)
			(*dropped)++;
	}
	if (!rc && step != SQLITE_DONE)
		rc = scrm__sqlerr(db, step, "reading due work");
	sqlite3_reset(st);
	return rc;
}

static int delete_row(scrm_db *db, int what, const due_item *it)
{
	static const char *const sql[] = {
		"DELETE FROM rule_wait WHERE id = ?1 AND ?2 = ?2",
		"UPDATE rule_date SET due = NULL WHERE rid = ?2 AND customer = ?1",
		"DELETE FROM rule_deferred WHERE id = ?1 AND ?2 = ?2",
	};
	return exec2(db, sql[what], what == DUE_DATE ? it->customer : it->id, it->rid,
		     "removing due work");
}

static int run_item(scrm_db *db, ru_state *s, const due_item *it, int64_t now)
{
	const ru_rule *r = rule_by_rid(s, it->rid);
	int64_t root;
	int rc = ru__canonical(db, it->customer, &root);
	if (rc == SCRM_NOTFOUND) {
		scrm__clear_error(db);
		return delete_row(db, it->what, it);
	}
	if (rc)
		return rc;
	ru_ctx c;
	ru__ctx_init(&c, db, s, root, now);
	c.due = it->due;
	ru_ev_row row;
	memset(&row, 0, sizeof row);
	char inst[48];
	if (it->what == DUE_WAIT) {
		bool found;
		if ((rc = delete_row(db, it->what, it)) ||
		    (rc = ru__event_read(db, it->event, &row, &found)) || !found)
			goto out;
		snprintf(inst, sizeof inst, "ev:%lld", (long long)it->event);
		c.ev = &row.ev;
		c.trig_kind = "absence";
		c.instance = inst;
		ru_fire_in in = {r, "absence", inst, it->event, false, 0, NULL, 0};
		rc = ru__decide(&c, &in);
	} else if (it->what == DUE_DATE) {
		/* Move the schedule on first: the next occurrence after this. */
		const char *json;
		char buf[16], next[32];
		const scrm_tz *z;
		int64_t due = 0;
		if ((rc = ru__ctx_attr(&c, r->attr, &json)) || (rc = ru__ctx_tz(&c, &z)))
			goto out;
		const char *date = date_value(json, buf);
		int got = date ? ru__date_next(r, date, z, it->due, false, &due, next) : 0;
		if ((rc = date_store(db, r->rid, root, due, got ? next : NULL,
				     it->instance ? it->instance : "")))
			goto out;
		snprintf(inst, sizeof inst, "date:%s", it->instance ? it->instance : "");
		c.trig_kind = "date";
		c.instance = inst;
		ru_fire_in in = {r, "date", inst, 0, false, 0, NULL, 0};
		rc = ru__decide(&c, &in);
	} else {
		ru_fire_in in = {r,     it->kind ? it->kind : "event", it->instance ? it->instance : "",
				 it->event, true, it->id, it->actions ? it->actions : "[]", it->version};
		c.trig_kind = in.kind;
		c.instance = in.instance;
		rc = ru__decide_deferred(&c, &in);
	}
out:
	if (!rc)
		rc = ru__trace_flush(&c);
	ru__event_row_free(&row);
	ru__ctx_clear(&c);
	return rc;
}

static int tick(scrm_db *db, int64_t now, scrm_buf *sum)
{
	ru_state *s;
	int rc = ru__state(db, &s);
	if (rc)
		return rc;
	int64_t scheduled = 0, dropped = 0, counts[3] = {0, 0, 0};
	if ((rc = reschedule_dirty(db, s, &scheduled)))
		return rc;
	due_list l = {NULL, 0, 0};
	/* Columns: id, rid, customer, due, event, instance, kind, version, actions. */
	if (!(rc = collect(db, s, DUE_WAIT,
			   "SELECT id, rid, customer, due, event, NULL, NULL, 0, NULL FROM rule_wait "
			   "WHERE due <= ?1",
			   now, &l, &dropped)) &&
	    !(rc = collect(db, s, DUE_DATE,
			   "SELECT 0, rid, customer, due, 0, instance, NULL, 0, NULL FROM rule_date "
			   "WHERE due IS NOT NULL AND due <= ?1",
			   now, &l, &dropped)))
		rc = collect(db, s, DUE_DEFERRED,
			     "SELECT id, rid, customer, due, coalesce(event, 0), instance, kind, version, "
			     "actions FROM rule_deferred WHERE due <= ?1",
			     now, &l, &dropped);
	if (!rc && l.n)
		qsort(l.items, l.n, sizeof *l.items, due_cmp);
	for (size_t i = 0; i < l.n && !rc; i++) {
		due_item *it = &l.items[i];
		if (it->what < 0) {
			rc = delete_row(db, -1 - it->what, it);
			continue;
		}
		counts[it->what]++;
		rc = run_item(db, s, it, now);
	}
	due_free(&l);
	if (!rc && sum)
		scrm__buf_printf(sum,
				 "{\"now\":%lld,\"scheduled\":%lld,\"absence\":%lld,\"date\":%lld,"
				 "\"deferred\":%lld,\"dropped\":%lld}",
				 (long long)now, (long long)scheduled, (long long)counts[DUE_WAIT],
				 (long long)counts[DUE_DATE], (long long)counts[DUE_DEFERRED],
				 (long long)dropped);
	return rc;
}

SCRM_API int scrm_rules_tick(scrm_db *db, int64_t now_ms, char **summary)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (summary)
		*summary = NULL;
	if (now_ms == 0)
		now_ms = scrm__now(db);
	if (now_ms < 0 || now_ms > RU_TIME_MAX)
		return scrm__error(db, SCRM_RANGE, "tick time %lld is outside 0..%lld (year 9999)",
				   (long long)now_ms, (long long)RU_TIME_MAX);
	scrm_buf sum;
	scrm__buf_init(&sum, db);
	if ((rc = scrm__tx_begin(db)) == SCRM_OK) {
		rc = tick(db, now_ms, summary ? &sum : NULL);
		if (!rc && sum.oom)
			rc = scrm__error(db, SCRM_NOMEM, "out of memory building the tick summary");
		rc = scrm__tx_end(db, rc);
	}
	if (rc == SCRM_OK && summary)
		rc = scrm__buf_finish(&sum, summary);
	scrm__buf_reset(&sum);
	return rc;
}
