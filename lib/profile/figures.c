/*
 * Maintained figures: one UPSERT per figure row on every event (channels
 * and last seen per channel are read from the customer's events), rebuilt
 * from the stored events when an unmerge splits a customer, summed when a
 * merge joins two. The merge/unmerge listener lives here.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "profile-int.h"
#include "scrm/identity.h"

/* An int64 overflow in the money sums trips a CHECK constraint. */
static int money_err(scrm_db *db, int rc, int64_t customer, const char *what)
{
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return scrm__error(db, SCRM_RANGE, "%s: the sums of customer %lld would overflow int64",
				   what, (long long)customer);
	return scrm__sqlerr(db, rc, what);
}

static int step_money(scrm_db *db, sqlite3_stmt *st, int64_t customer, const char *what)
{
	int s = sqlite3_step(st);
	sqlite3_reset(st);
	return s == SQLITE_DONE || s == SQLITE_ROW ? SCRM_OK : money_err(db, s, customer, what);
}

/* The update of a figures row by a new row (`excluded`) of one event or
 * of several events' sums (pf__figures_add_rows): the same arithmetic
 * either way. */
#define FIGURES_SET                                                                           \
	"events = profile_figures.events + excluded.events, "                                \
	"first_seen = min(profile_figures.first_seen, excluded.first_seen), "                \
	"last_seen = max(profile_figures.last_seen, excluded.last_seen), "                   \
	"orders = profile_figures.orders + excluded.orders, "                                \
	"refunds = profile_figures.refunds + excluded.refunds, "                             \
	"first_order = coalesce(min(profile_figures.first_order, excluded.first_order), "    \
	"profile_figures.first_order, excluded.first_order), "                               \
	"last_order = coalesce(max(profile_figures.last_order, excluded.last_order), "       \
	"profile_figures.last_order, excluded.last_order)"
#define MONEY_SET                                                                             \
	"orders = profile_money.orders + excluded.orders, "                                  \
	"spend = profile_money.spend + excluded.spend, "                                     \
	"refunded = profile_money.refunded + excluded.refunded"
#define FIGURES_UPSERT " ON CONFLICT(customer) DO UPDATE SET " FIGURES_SET
#define MONEY_UPSERT " ON CONFLICT(customer, currency) DO UPDATE SET " MONEY_SET

/* One upsert per row: a statement of several rows would be cheaper to run,
 * but an upsert of several rows may abort part way, and SQLite then
 * journals every page it changes, once per statement, for as long as the
 * caller's savepoint lasts (gigabytes, fifty times slower, for a batch of
 * 50,000 events). */
int pf__figures_add_rows(scrm_db *db, const pf_figrow *rows, size_t n)
{
	for (size_t j = 0; j < n; j++) {
		const pf_figrow *r = &rows[j];
		sqlite3_stmt *st = scrm__stmt(
			db, "INSERT INTO profile_figures(customer, events, first_seen, last_seen, orders, "
			    "refunds, first_order, last_order) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
			    FIGURES_UPSERT);
		if (!st)
			return scrm_errcode(db);
		sqlite3_bind_int64(st, 1, r->customer);
		sqlite3_bind_int64(st, 2, r->events);
		sqlite3_bind_int64(st, 3, r->first_seen);
		sqlite3_bind_int64(st, 4, r->last_seen);
		sqlite3_bind_int64(st, 5, r->orders);
		sqlite3_bind_int64(st, 6, r->refunds);
		if (r->orders) {
			sqlite3_bind_int64(st, 7, r->first_order);
			sqlite3_bind_int64(st, 8, r->last_order);
		}
		int rc = scrm__step_done(db, st, "updating figures");
		if (rc)
			return rc;
	}
	return SCRM_OK;
}

int pf__money_add_rows(scrm_db *db, const pf_moneyrow *rows, size_t n)
{
	for (size_t j = 0; j < n; j++) {
		const pf_moneyrow *r = &rows[j];
		sqlite3_stmt *st = scrm__stmt(
			db, "INSERT INTO profile_money(customer, currency, orders, spend, refunded) "
			    "VALUES(?1, ?2, ?3, ?4, ?5)" MONEY_UPSERT);
		if (!st)
			return scrm_errcode(db);
		sqlite3_bind_int64(st, 1, r->customer);
		sqlite3_bind_text(st, 2, r->currency, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, r->orders);
		sqlite3_bind_int64(st, 4, r->spend);
		sqlite3_bind_int64(st, 5, r->refunded);
		int rc = step_money(db, st, r->customer, "updating money figures");
		if (rc)
			return rc;
	}
	return SCRM_OK;
}

int pf__figures_add(scrm_db *db, int64_t customer, const char *type, int64_t at,
		    bool has_amount, int64_t amount, const char *currency)
{
	bool order = strcmp(type, "order") == 0, refund = !order && strcmp(type, "refund") == 0;
	const pf_figrow f = {.customer = customer, .events = 1, .first_seen = at, .last_seen = at,
			     .orders = order, .refunds = refund, .first_order = at, .last_order = at};
	int rc = pf__figures_add_rows(db, &f, 1);
	if (rc || !(order || refund) || !has_amount)
		return rc;
	const pf_moneyrow m = {.customer = customer, .currency = currency, .orders = order,
			       .spend = order ? amount : 0, .refunded = refund ? amount : 0};
	return pf__money_add_rows(db, &m, 1);
}

static int exec1(scrm_db *db, const char *sql, int64_t a, const char *what)
{
	sqlite3_stmt *st = scrm__stmt(db, sql);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, a);
	return step_money(db, st, a, what);
}

static int exec2(scrm_db *db, const char *sql, int64_t a, int64_t b, const char *what)
{
	sqlite3_stmt *st = scrm__stmt(db, sql);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	return step_money(db, st, a, what);
}

int pf__figures_rebuild(scrm_db *db, int64_t customer)
{
	static const char *const steps[][2] = {
		{"DELETE FROM profile_figures WHERE customer = ?1", "clearing figures"},
		{"DELETE FROM profile_money WHERE customer = ?1", "clearing money figures"},
		{"INSERT INTO profile_figures(customer, events, first_seen, last_seen, orders, refunds, "
		 "first_order, last_order) SELECT ?1, count(*), min(at), max(at), "
		 "sum(type = 'order'), sum(type = 'refund'), "
		 "min(CASE WHEN type = 'order' THEN at END), max(CASE WHEN type = 'order' THEN at END) "
		 "FROM event WHERE customer = ?1 GROUP BY customer",
		 "rebuilding figures"},
		{"INSERT INTO profile_money(customer, currency, orders, spend, refunded) "
		 "SELECT ?1, currency, sum(type = 'order'), "
		 "sum(CASE WHEN type = 'order' THEN amount ELSE 0 END), "
		 "sum(CASE WHEN type = 'refund' THEN amount ELSE 0 END) "
		 "FROM event WHERE customer = ?1 AND type IN ('order', 'refund') GROUP BY currency",
		 "rebuilding money figures"},
	};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(steps); i++) {
		int rc = exec1(db, steps[i][0], customer, steps[i][1]);
		if (rc)
			return rc;
	}
	return SCRM_OK;
}

/* ------------------------------------------------------------ merge */

/* Survivor's figures become the sum of both; the absorbed side's events
 * are the survivor's. Neither side with events: two index probes. */
static int on_merge(scrm_db *db, int64_t survivor, int64_t absorbed)
{
	int rc = exec1(db, "DELETE FROM profile_score WHERE customer = ?1", absorbed,
		       "dropping the absorbed customer's scores");
	if (rc)
		return rc;
	sqlite3_stmt *st = scrm__stmt(db, "SELECT 1 FROM profile_figures WHERE customer = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, absorbed);
	int s = sqlite3_step(st);
	sqlite3_reset(st);
	if (s == SQLITE_DONE)
		return SCRM_OK; /* no events: nothing to move */
	if (s != SQLITE_ROW)
		return scrm__sqlerr(db, s, "reading figures");
	static const char *const steps[][2] = {
		{"UPDATE event SET customer = ?1 WHERE customer = ?2", "moving events"},
		{"INSERT INTO profile_figures(customer, events, first_seen, last_seen, orders, refunds, "
		 "first_order, last_order) SELECT ?1, events, first_seen, last_seen, orders, refunds, "
		 "first_order, last_order FROM profile_figures WHERE customer = ?2" FIGURES_UPSERT,
		 "summing figures"},
		{"INSERT INTO profile_money(customer, currency, orders, spend, refunded) "
		 "SELECT ?1, currency, orders, spend, refunded FROM profile_money WHERE customer = ?2"
		 MONEY_UPSERT,
		 "summing money figures"},
		{"DELETE FROM profile_figures WHERE customer = ?2 AND ?1 IS NOT NULL",
		 "dropping absorbed figures"},
		{"DELETE FROM profile_money WHERE customer = ?2 AND ?1 IS NOT NULL",
		 "dropping absorbed money figures"},
	};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(steps); i++)
		if ((rc = exec2(db, steps[i][0], survivor, absorbed, steps[i][1])))
			return rc;
	return SCRM_OK;
}

/* ------------------------------------------------------------ unmerge */

/* Events of the old root go back where they belong: named ones to the
 * canonical id of the customer they named; those brought by identifiers to
 * the side that holds their anchor identifier now; refunds, whatever they
 * named, with their order (which is on one side or the other: a refund is
 * always with its order). Then both sides are rebuilt from their events. */
static int on_unmerge(scrm_db *db, int64_t old_root, int64_t split)
{
	sqlite3_stmt *st = scrm__stmt(db, "SELECT 1 FROM profile_figures WHERE customer = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, old_root);
	int s = sqlite3_step(st);
	sqlite3_reset(st);
	if (s == SQLITE_DONE)
		return SCRM_OK;
	if (s != SQLITE_ROW)
		return scrm__sqlerr(db, s, "reading figures");
	int rc = exec2(db,
		       "UPDATE event SET customer = (SELECT root FROM identity_customers WHERE id = "
		       "event.named) WHERE customer = ?1 AND named IS NOT NULL AND type <> 'refund' "
		       "AND ?2 IS NOT NULL",
		       old_root, split, "returning named events");
	if (rc)
		return rc;
	char *list = NULL;
	if ((rc = scrm_identity_list_json(db, split, &list)))
		return rc;
	cJSON *idents = cJSON_Parse(list);
	scrm__free(list);
	if (!idents)
		return scrm__error(db, SCRM_NOMEM, "out of memory reading identifiers");
	const cJSON *it;
	cJSON_ArrayForEach(it, idents)
	{
		const cJSON *kind = cJSON_GetObjectItemCaseSensitive(it, "kind");
		const cJSON *value = cJSON_GetObjectItemCaseSensitive(it, "value");
		if (!cJSON_IsString(kind) || !cJSON_IsString(value))
			continue;
		if (!(st = scrm__stmt(db, "UPDATE event SET customer = ?2 WHERE customer = ?1 AND "
					  "anchor_kind = ?3 AND anchor_value = ?4 AND named IS NULL "
					  "AND type <> 'refund'"))) {
			rc = scrm_errcode(db);
			break;
		}
		sqlite3_bind_int64(st, 1, old_root);
		sqlite3_bind_int64(st, 2, split);
		sqlite3_bind_text(st, 3, kind->valuestring, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, value->valuestring, -1, SQLITE_STATIC);
		if ((rc = scrm__step_done(db, st, "returning events with their identifiers")))
			break;
	}
	cJSON_Delete(idents);
	if (rc ||
	    (rc = exec2(db,
			"UPDATE event SET customer = (SELECT o.customer FROM event o WHERE o.id = "
			"event.refund_of) WHERE customer IN (?1, ?2) AND type = 'refund'",
			old_root, split, "returning refunds with their orders")) ||
	    (rc = pf__figures_rebuild(db, old_root)) || (rc = pf__figures_rebuild(db, split)))
		return rc;
	return SCRM_OK;
}

int scrm__profile_on_note(scrm_db *db, const scrm_note *note)
{
	if (note->kind == SCRM_NOTE_MERGE)
		return on_merge(db, note->survivor, note->absorbed);
	if (note->kind == SCRM_NOTE_UNMERGE)
		return on_unmerge(db, note->survivor, note->absorbed);
	return SCRM_OK; /* our own notes (events) */
}
