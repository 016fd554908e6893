/*
 * Erasure of personal identity data (PIPL): identifiers and the values kept
 * with observations and conflicts go; ids, times and merge structure stay.
 */
#include "identity-int.h"

/* The subtrees being erased, collected first so every delete is one
 * set-wise statement (anonymizing many customers scans each table once). */
static int collect(scrm_db *db, const int64_t *customers, size_t n)
{
	int rc;
	if ((rc = scrm__exec(db, "CREATE TEMP TABLE IF NOT EXISTS id_erase(id INTEGER PRIMARY KEY)")) ||
	    (rc = scrm__exec(db, "DELETE FROM temp.id_erase")))
		return rc;
	for (size_t i = 0; i < n; i++) {
		int64_t root;
		if ((rc = id__root(db, customers[i], &root)))
			return rc;
		sqlite3_stmt *st = scrm__stmt(
			db, "INSERT OR IGNORE INTO temp.id_erase SELECT id FROM customer "
			    "WHERE root=?1 AND erased_at IS NULL");
		if (!st)
			return scrm_errcode(db);
		sqlite3_bind_int64(st, 1, root);
		if ((rc = scrm__step_done(db, st, "collecting customers to erase")))
			return rc;
	}
	return SCRM_OK;
}

static int erase(scrm_db *db, const int64_t *customers, size_t n, int64_t *erased)
{
	int rc = collect(db, customers, n);
	if (rc)
		return rc;
	sqlite3_stmt *st = scrm__stmt(db, "SELECT count(*) FROM temp.id_erase e JOIN customer c "
					  "ON c.id = e.id WHERE c.id = c.root");
	if (!st)
		return scrm_errcode(db);
	int s = sqlite3_step(st);
	int64_t roots = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (s != SQLITE_ROW)
		return scrm__sqlerr(db, s, "counting customers to erase");
	static const char *const steps[][2] = {
		{"DELETE FROM ident WHERE customer IN (SELECT id FROM temp.id_erase)",
		 "deleting identifiers"},
		{"UPDATE observation SET anchor_value = NULL WHERE anchor_value IS NOT NULL "
		 "AND customer IN (SELECT id FROM temp.id_erase)", "clearing observation anchors"},
		{"DELETE FROM id_conflict WHERE owner IN (SELECT id FROM temp.id_erase) "
		 "OR target IN (SELECT id FROM temp.id_erase)", "deleting conflicts"},
		{"UPDATE merge_log SET reason = NULL WHERE reason IS NOT NULL AND "
		 "(survivor IN (SELECT id FROM temp.id_erase) OR absorbed IN (SELECT id FROM temp.id_erase))",
		 "clearing merge reasons"},
		{"UPDATE never_merge SET reason = NULL WHERE reason IS NOT NULL AND "
		 "(a IN (SELECT id FROM temp.id_erase) OR b IN (SELECT id FROM temp.id_erase))",
		 "clearing never-merge reasons"},
	};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(steps); i++) {
		if (!(st = scrm__stmt(db, steps[i][0])))
			return scrm_errcode(db);
		if ((rc = scrm__step_done(db, st, steps[i][1])))
			return rc;
	}
	scrm__identity_changed(db);
	if (!(st = scrm__stmt(db, "UPDATE customer SET erased_at=?1 WHERE id IN (SELECT id FROM temp.id_erase)")))
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, scrm__now(db));
	if ((rc = scrm__step_done(db, st, "marking customers erased")) ||
	    (rc = scrm__exec(db, "DELETE FROM temp.id_erase")))
		return rc;
	*erased = roots;
	return SCRM_OK;
}

SCRM_API int scrm_identity_erase(scrm_db *db, const int64_t *customers, size_t n, int64_t *erased)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (!customers && n)
		return scrm__error(db, SCRM_MISUSE, "scrm_identity_erase: customers is NULL");
	if ((rc = scrm__tx_begin(db)))
		return rc;
	int64_t count = 0;
	rc = scrm__tx_end(db, erase(db, customers, n, &count));
	if (erased)
		*erased = rc ? 0 : count;
	return rc;
}

SCRM_API int scrm_identity_erased(scrm_db *db, int64_t customer, int64_t *erased_at)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!erased_at)
		return scrm__error(db, SCRM_MISUSE, "scrm_identity_erased: erased_at is NULL");
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT r.erased_at FROM customer c JOIN customer r ON r.id = c.root WHERE c.id=?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, customer);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		*erased_at = sqlite3_column_int64(st, 0); /* 0 when NULL */
	sqlite3_reset(st);
	if (s == SQLITE_DONE)
		return scrm__error(db, SCRM_NOTFOUND, "customer %lld does not exist", (long long)customer);
	return s == SQLITE_ROW ? SCRM_OK : scrm__sqlerr(db, s, "reading a customer");
}
