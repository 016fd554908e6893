/*
 * The outbox of host actions: take with a lease, acknowledge, fail with
 * exponential backoff (dead after the configured attempts), redelivery
 * after a lease runs out, and the optional delivery callback that runs
 * right after the transaction that wrote the actions commits — still
 * through the outbox, so a crash in between loses nothing.
 */
#include <stdio.h>
#include <string.h>

#include "rules-int.h"

#define TAKE_MAX 1000
#define ERROR_MAX 1024

static void put_opt_text(scrm_buf *b, const char *t)
{
	if (t)
		scrm__buf_json_str(b, t);
	else
		scrm__buf_puts(b, "null");
}

/* One action as JSON, from a row of sql_action. */
static void action_json(scrm_buf *b, sqlite3_stmt *st)
{
	const char *state = (const char *)sqlite3_column_text(st, 8);
	scrm__buf_printf(b, "{\"id\":%lld,\"key\":", (long long)sqlite3_column_int64(st, 0));
	put_opt_text(b, (const char *)sqlite3_column_text(st, 1));
	scrm__buf_puts(b, ",\"action\":");
	put_opt_text(b, (const char *)sqlite3_column_text(st, 2));
	scrm__buf_puts(b, ",\"params\":");
	scrm__buf_puts(b, (const char *)sqlite3_column_text(st, 3));
	scrm__buf_printf(b, ",\"customer\":%lld,\"rule\":", (long long)sqlite3_column_int64(st, 4));
	put_opt_text(b, (const char *)sqlite3_column_text(st, 5));
	scrm__buf_printf(b, ",\"version\":%lld,\"trigger\":", (long long)sqlite3_column_int64(st, 6));
	const char *ctx = (const char *)sqlite3_column_text(st, 7);
	scrm__buf_puts(b, ctx ? ctx : "null");
	scrm__buf_puts(b, ",\"state\":");
	put_opt_text(b, state);
	scrm__buf_printf(b, ",\"attempt\":%lld,\"created_at\":%lld",
			 (long long)sqlite3_column_int64(st, 9), (long long)sqlite3_column_int64(st, 11));
	if (state && strcmp(state, "leased") == 0)
		scrm__buf_printf(b, ",\"lease_until\":%lld", (long long)sqlite3_column_int64(st, 10));
	else if (state && (strcmp(state, "failed") == 0 || strcmp(state, "pending") == 0))
		scrm__buf_printf(b, ",\"next_at\":%lld", (long long)sqlite3_column_int64(st, 10));
	if (sqlite3_column_type(st, 12) != SQLITE_NULL)
		scrm__buf_printf(b, ",\"done_at\":%lld", (long long)sqlite3_column_int64(st, 12));
	scrm__buf_puts(b, ",\"last_error\":");
	put_opt_text(b, (const char *)sqlite3_column_text(st, 13));
	scrm__buf_puts(b, "}");
}

static int append_action(scrm_db *db, int64_t id, scrm_buf *b)
{
	static const char sql[] = "SELECT o.id, o.ikey, o.action, o.params, o.customer, r.id, o.version, "
				  "o.context, o.state, o.attempts, o.next_at, o.created_at, o.done_at, "
				  "o.last_error FROM outbox o LEFT JOIN rule r ON r.rid = o.rid "
				  "WHERE o.id = ?1";
	sqlite3_stmt *st = scrm__stmt(db, sql);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, id);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		action_json(b, st);
	sqlite3_reset(st);
	return s == SQLITE_ROW ? SCRM_OK : scrm__sqlerr(db, s == SQLITE_DONE ? SQLITE_ERROR : s,
							 "reading an outbox action");
}

/* ------------------------------------------------------------ take */

static int take(scrm_db *db, int max, int64_t lease_ms, int64_t now, scrm_buf *b, int64_t *ids,
		int *n)
{
	ru_state *s;
	int rc = ru__state(db, &s);
	if (rc)
		return rc;
	if (!lease_ms)
		lease_ms = s->cfg.lease_ms;
	*n = 0;
	if (b)
		scrm__buf_puts(b, "[");
	sqlite3_stmt *sel = scrm__stmt(
		db, "SELECT id, attempts FROM outbox WHERE state <> 'done' AND state <> 'dead' "
		    "AND next_at <= ?1 ORDER BY next_at, id LIMIT 1");
	if (!sel)
		return scrm_errcode(db);
	while (*n < max) {
		sqlite3_bind_int64(sel, 1, now);
		int step = sqlite3_step(sel);
		int64_t id = step == SQLITE_ROW ? sqlite3_column_int64(sel, 0) : 0;
		int64_t attempts = step == SQLITE_ROW ? sqlite3_column_int64(sel, 1) : 0;
		sqlite3_reset(sel);
		if (step == SQLITE_DONE)
			break;
		if (step != SQLITE_ROW)
			return scrm__sqlerr(db, step, "reading the outbox");
		sqlite3_stmt *up;
		if (attempts >= s->cfg.max_attempts) {
			/* Offered max_attempts times and never settled (the
			 * taker died each time): give up on it. */
			up = scrm__stmt(db, "UPDATE outbox SET state = 'dead', last_error = "
					    "coalesce(last_error, 'lease expired') WHERE id = ?1");
			if (!up)
				return scrm_errcode(db);
			sqlite3_bind_int64(up, 1, id);
			if ((rc = scrm__step_done(db, up, "updating the outbox")))
				return rc;
			continue;
		}
		up = scrm__stmt(db, "UPDATE outbox SET state = 'leased', attempts = attempts + 1, "
				    "next_at = ?2 WHERE id = ?1");
		if (!up)
			return scrm_errcode(db);
		sqlite3_bind_int64(up, 1, id);
		sqlite3_bind_int64(up, 2, now > RU_TIME_MAX - lease_ms ? RU_TIME_MAX : now + lease_ms);
		if ((rc = scrm__step_done(db, up, "leasing an outbox action")))
			return rc;
		if (b) {
			if (*n)
				scrm__buf_puts(b, ",");
			if ((rc = append_action(db, id, b)))
				return rc;
		}
		if (ids)
			ids[*n] = id;
		(*n)++;
	}
	if (b) {
		scrm__buf_puts(b, "]");
		if (b->oom)
			return scrm__error(db, SCRM_NOMEM, "out of memory building the actions");
	}
	return SCRM_OK;
}

SCRM_API int scrm_outbox_take(scrm_db *db, int max, int64_t lease_ms, char **out)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_outbox_take: out is NULL");
	*out = NULL;
	if (max < 1 || max > TAKE_MAX)
		return scrm__error(db, SCRM_RANGE, "outbox take: max %d is outside 1..%d", max, TAKE_MAX);
	if (lease_ms < 0 || lease_ms > 7 * RU_DAY_MS)
		return scrm__error(db, SCRM_RANGE, "outbox take: lease %lld ms is outside 0..7 days",
				   (long long)lease_ms);
	scrm_buf b;
	scrm__buf_init(&b, db);
	int n;
	if ((rc = scrm__tx_begin(db)) == SCRM_OK)
		rc = scrm__tx_end(db, take(db, max, lease_ms, scrm__now(db), &b, NULL, &n));
	if (rc == SCRM_OK)
		return scrm__buf_finish(&b, out);
	scrm__buf_reset(&b);
	return rc;
}

/* ------------------------------------------------------------ settle */

static int state_of(scrm_db *db, int64_t id, char state[16], int64_t *attempts)
{
	sqlite3_stmt *st = scrm__stmt(db, "SELECT state, attempts FROM outbox WHERE id = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, id);
	int s = sqlite3_step(st), rc = SCRM_OK;
	if (s == SQLITE_ROW) {
		snprintf(state, 16, "%s", (const char *)sqlite3_column_text(st, 0));
		*attempts = sqlite3_column_int64(st, 1);
	} else if (s == SQLITE_DONE) {
		rc = scrm__error(db, SCRM_NOTFOUND, "no outbox action %lld", (long long)id);
	} else {
		rc = scrm__sqlerr(db, s, "reading the outbox");
	}
	sqlite3_reset(st);
	return rc;
}

static int ack(scrm_db *db, int64_t id, int64_t now)
{
	char state[16];
	int64_t attempts;
	int rc = state_of(db, id, state, &attempts);
	if (rc || strcmp(state, "done") == 0)
		return rc; /* acknowledging twice is harmless */
	if (strcmp(state, "dead") == 0)
		return scrm__error(db, SCRM_STATE,
				   "outbox action %lld was given up after %lld attempts; retry it first",
				   (long long)id, (long long)attempts);
	sqlite3_stmt *st = scrm__stmt(
		db, "UPDATE outbox SET state = 'done', done_at = ?2, last_error = NULL WHERE id = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	return scrm__step_done(db, st, "acknowledging an outbox action");
}

static int fail(scrm_db *db, int64_t id, const char *error, bool permanent, int64_t now)
{
	ru_state *s;
	char state[16];
	int64_t attempts;
	int rc = ru__state(db, &s);
	if (!rc)
		rc = state_of(db, id, state, &attempts);
	if (rc)
		return rc;
	if (strcmp(state, "done") == 0 || strcmp(state, "dead") == 0)
		return scrm__error(db, SCRM_STATE, "outbox action %lld is already %s", (long long)id,
				   state);
	bool dead = permanent || attempts >= s->cfg.max_attempts;
	/* backoff · 2^(attempts-1), capped. */
	int64_t delay = s->cfg.backoff_ms;
	for (int64_t i = 1; i < attempts && delay < s->cfg.backoff_max_ms; i++)
		delay *= 2;
	if (delay > s->cfg.backoff_max_ms)
		delay = s->cfg.backoff_max_ms;
	sqlite3_stmt *st = scrm__stmt(
		db, "UPDATE outbox SET state = ?2, next_at = ?3, last_error = ?4 WHERE id = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, dead ? "dead" : "failed", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now + delay);
	if (error)
		sqlite3_bind_text(st, 4, error, -1, SQLITE_STATIC);
	return scrm__step_done(db, st, "failing an outbox action");
}

static int retry(scrm_db *db, int64_t id, int64_t now)
{
	char state[16];
	int64_t attempts;
	int rc = state_of(db, id, state, &attempts);
	if (rc)
		return rc;
	if (strcmp(state, "dead") != 0 && strcmp(state, "failed") != 0)
		return scrm__error(db, SCRM_STATE, "outbox action %lld is %s, not dead or failed",
				   (long long)id, state);
	sqlite3_stmt *st = scrm__stmt(
		db, "UPDATE outbox SET state = 'failed', attempts = 0, next_at = ?2 WHERE id = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	return scrm__step_done(db, st, "retrying an outbox action");
}

SCRM_API int scrm_outbox_ack(scrm_db *db, int64_t id)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if ((rc = scrm__tx_begin(db)))
		return rc;
	return scrm__tx_end(db, ack(db, id, scrm__now(db)));
}

SCRM_API int scrm_outbox_fail(scrm_db *db, int64_t id, const char *error, int permanent)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (error && !(strnlen(error, ERROR_MAX + 1) <= ERROR_MAX &&
		       scrm__utf8_valid(error, strlen(error))))
		return scrm__error(db, SCRM_INVALID,
				   "outbox fail: error must be at most %d bytes of UTF-8 text", ERROR_MAX);
	if ((rc = scrm__tx_begin(db)))
		return rc;
	return scrm__tx_end(db, fail(db, id, error, permanent != 0, scrm__now(db)));
}

SCRM_API int scrm_outbox_retry(scrm_db *db, int64_t id)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if ((rc = scrm__tx_begin(db)))
		return rc;
	return scrm__tx_end(db, retry(db, id, scrm__now(db)));
}

/* ------------------------------------------------------------ listing */

static int list_json(scrm_db *db, const char *state, int64_t customer, int limit, scrm_buf *b)
{
	static const char sql[] =
		"SELECT o.id, o.ikey, o.action, o.params, o.customer, r.id, o.version, o.context, "
		"o.state, o.attempts, o.next_at, o.created_at, o.done_at, o.last_error "
		"FROM outbox o LEFT JOIN rule r ON r.rid = o.rid "
		"WHERE (?1 IS NULL OR o.state = ?1) AND (?2 = 0 OR o.customer IN "
		"(SELECT id FROM identity_customers WHERE root = ?2)) ORDER BY o.id DESC LIMIT ?3";
	int64_t root = 0;
	int rc = customer ? ru__canonical(db, customer, &root) : SCRM_OK;
	if (rc)
		return rc;
	sqlite3_stmt *st = scrm__stmt(db, sql);
	if (!st)
		return scrm_errcode(db);
	if (state)
		sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, root);
	sqlite3_bind_int64(st, 3, limit > 0 ? limit : -1);
	int s, n = 0;
	scrm__buf_puts(b, "[");
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		if (n++)
			scrm__buf_puts(b, ",");
		action_json(b, st);
	}
	sqlite3_reset(st);
	scrm__buf_puts(b, "]");
	return s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "listing the outbox");
}

SCRM_API int scrm_outbox_list_json(scrm_db *db, const char *state, int64_t customer, int limit,
				   char **out)
{
	static const char *const states[] = {"pending", "leased", "failed", "done", "dead"};
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_outbox_list_json: out is NULL");
	*out = NULL;
	bool known = !state;
	for (size_t i = 0; i < SCRM_ARRAY_LEN(states) && !known; i++)
		known = strcmp(state, states[i]) == 0;
	if (!known)
		return scrm__error(db, SCRM_INVALID,
				   "outbox state '%.*s' is unknown (pending, leased, failed, done, dead)",
				   scrm__utf8_clip(state, 32), state);
	if (limit < 0)
		return scrm__error(db, SCRM_RANGE, "outbox list: limit %d is negative", limit);
	scrm_buf b;
	scrm__buf_init(&b, db);
	if ((rc = scrm__tx_begin_read(db)) == SCRM_OK)
		rc = scrm__tx_end(db, list_json(db, state, customer, limit, &b));
	if (rc == SCRM_OK)
		return scrm__buf_finish(&b, out);
	scrm__buf_reset(&b);
	return rc;
}

/* ------------------------------------------------------------ delivery */

/* After the callback: acknowledge or fail the action, unless the callback
 * settled it itself (acknowledged it, or failed it with its own error
 * text): then it stays as the callback left it. */
static int settle(scrm_db *db, int64_t id, int hrc, int *delivered)
{
	char state[16];
	int64_t attempts;
	int rc = state_of(db, id, state, &attempts);
	if (rc)
		return rc;
	if (strcmp(state, "leased") != 0) {
		if (strcmp(state, "done") == 0)
			(*delivered)++;
		return SCRM_OK;
	}
	if (hrc == SCRM_OK) {
		if ((rc = ack(db, id, scrm__now(db))) == SCRM_OK)
			(*delivered)++;
		return rc;
	}
	char why[64];
	snprintf(why, sizeof why, "delivery callback returned %d (%s)", hrc, scrm_errstr(hrc));
	return fail(db, id, why, false, scrm__now(db));
}

/* Hand ready actions to the callback one batch at a time, each batch taken
 * (leased) and settled in transactions of its own. */
static int deliver(scrm_db *db, ru_state *s, int max, int *delivered)
{
	int rc = SCRM_OK;
	*delivered = 0;
	while (!rc && (max == 0 || *delivered < max)) {
		int64_t ids[16];
		int n = 0, want = (int)SCRM_ARRAY_LEN(ids);
		if (max && max - *delivered < want)
			want = max - *delivered;
		if ((rc = scrm__tx_begin(db)))
			break;
		rc = scrm__tx_end(db, take(db, want, 0, scrm__now(db), NULL, ids, &n));
		if (rc || n == 0)
			break;
		for (int i = 0; i < n && !rc; i++) {
			scrm_buf b;
			scrm__buf_init(&b, db);
			if ((rc = scrm__tx_begin_read(db)) == SCRM_OK)
				rc = scrm__tx_end(db, append_action(db, ids[i], &b));
			char *json = NULL;
			if (!rc)
				rc = scrm__buf_finish(&b, &json);
			scrm__buf_reset(&b);
			if (rc)
				break;
			int hrc = s->deliver(s->deliver_ud, json);
			scrm_free(json);
			if ((rc = scrm__tx_begin(db)))
				break;
			rc = scrm__tx_end(db, settle(db, ids[i], hrc, delivered));
		}
	}
	return rc;
}

static void after_commit(scrm_db *db)
{
	ru_state *s = scrm__engine_get(db, SCRM_ENGINE_RULES);
	if (!s || !s->deliver || s->delivering)
		return;
	s->delivering = true;
	int delivered;
	int rc = deliver(db, s, 0, &delivered);
	s->delivering = false;
	/* The call that committed succeeded; what is not delivered now stays
	 * in the outbox for the next delivery or take. */
	if (rc)
		scrm__log(db, SCRM_LOG_WARN, "outbox delivery stopped: %s", scrm_errmsg(db));
	scrm__clear_error(db);
}

void ru__outbox_wrote(scrm_db *db, ru_state *s)
{
	if (s->deliver && !s->delivering)
		scrm__after_commit(db, SCRM_ENGINE_RULES, after_commit);
}

SCRM_API int scrm_outbox_set_handler(scrm_db *db, scrm_outbox_fn fn, void *userdata)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	ru_state *s;
	if ((rc = ru__state_raw(db, &s)))
		return rc;
	s->deliver = fn;
	s->deliver_ud = userdata;
	return SCRM_OK;
}

SCRM_API int scrm_outbox_deliver(scrm_db *db, int max, int *delivered)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	int n = 0;
	if (delivered)
		*delivered = 0;
	if (max < 0)
		return scrm__error(db, SCRM_RANGE, "outbox deliver: max %d is negative", max);
	ru_state *s;
	if ((rc = ru__state_raw(db, &s)))
		return rc;
	if (!s->deliver)
		return scrm__error(db, SCRM_MISUSE,
				   "outbox deliver: no delivery callback (scrm_outbox_set_handler)");
	if (s->delivering)
		return scrm__error(db, SCRM_MISUSE, "outbox deliver: called from the delivery callback");
	if (scrm_db_batch_depth(db))
		return scrm__error(db, SCRM_MISUSE,
				   "outbox deliver: inside a batch (deliver after it commits)");
	s->delivering = true;
	rc = deliver(db, s, max, &n);
	s->delivering = false;
	if (delivered)
		*delivered = n;
	return rc;
}
