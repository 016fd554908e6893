/*
 * Merge primitives and the manual calls: canonical ids, limit and
 * never-merge checks, merge, never-merge and unmerge.
 */
#include <string.h>

#include "identity-int.h"

int id__root(scrm_db *db, int64_t id, int64_t *root)
{
	sqlite3_stmt *st = scrm__stmt(db, "SELECT root FROM customer WHERE id=?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, id);
	int s = sqlite3_step(st);
	int rc = SCRM_OK;
	if (s == SQLITE_ROW)
		*root = sqlite3_column_int64(st, 0);
	else if (s == SQLITE_DONE)
		rc = scrm__error(db, SCRM_NOTFOUND, "customer %lld does not exist", (long long)id);
	else
		rc = scrm__sqlerr(db, s, "reading a customer");
	sqlite3_reset(st);
	return rc;
}

int id__can_merge(scrm_db *db, id_state *ids, int64_t a, int64_t b, char *why, size_t wn)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT 1 FROM customer c1 JOIN never_merge n ON n.a = c1.id "
		    "JOIN customer c2 ON c2.id = n.b "
		    "WHERE c1.root IN (?1, ?2) AND c2.root IN (?1, ?2) AND c1.root <> c2.root LIMIT 1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	int s = sqlite3_step(st);
	sqlite3_reset(st);
	if (s == SQLITE_ROW) {
		snprintf(why, wn, "customers %lld and %lld are marked never-merge", (long long)a,
			 (long long)b);
		return SCRM_CONFLICT;
	}
	if (s != SQLITE_DONE)
		return scrm__sqlerr(db, s, "checking never-merge pairs");
	st = scrm__stmt(db, "SELECT kind, count(*) FROM ident WHERE customer IN (?1, ?2) "
			    "GROUP BY kind");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	int rc = SCRM_OK;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const id_kind *k = id__kind_by_id(ids, sqlite3_column_int64(st, 0));
		int64_t cnt = sqlite3_column_int64(st, 1);
		if (k && k->limit > 0 && cnt > k->limit) {
			snprintf(why, wn, "merging %lld and %lld would give %lld %s values (limit %d)",
				 (long long)a, (long long)b, (long long)cnt, k->name, k->limit);
			rc = SCRM_CONFLICT;
			break;
		}
	}
	if (!rc && s != SQLITE_DONE)
		rc = scrm__sqlerr(db, s, "checking kind limits");
	sqlite3_reset(st);
	return rc;
}

static int exec_ids(scrm_db *db, const char *sql, int64_t p1, int64_t p2, const char *what)
{
	sqlite3_stmt *st = scrm__stmt(db, sql);
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, p1);
	sqlite3_bind_int64(st, 2, p2);
	return scrm__step_done(db, st, what);
}

static int max_obs(scrm_db *db, int64_t *out)
{
	sqlite3_stmt *st = scrm__stmt(db, "SELECT coalesce(max(id), 0) FROM observation");
	if (!st)
		return scrm_errcode(db);
	int s = sqlite3_step(st);
	*out = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return s == SQLITE_ROW ? SCRM_OK : scrm__sqlerr(db, s, "reading observations");
}

int id__merge(scrm_db *db, int64_t survivor, int64_t absorbed, int64_t at, const char *reason,
	      int64_t *merge_id)
{
	int64_t after = 0;
	int rc;
	scrm__identity_changed(db); /* roots change below */
	if ((rc = max_obs(db, &after)) ||
	    (rc = exec_ids(db, "UPDATE ident SET customer=?1 WHERE customer=?2", survivor, absorbed,
			   "moving identifiers")) ||
	    (rc = exec_ids(db, "UPDATE customer SET root=?1 WHERE root=?2", survivor, absorbed,
			   "re-rooting customers")))
		return rc;
	sqlite3_stmt *st = scrm__stmt(
		db, "INSERT INTO merge_log(op, survivor, absorbed, after_obs, at, reason) "
		    "VALUES('merge', ?1, ?2, ?3, ?4, ?5)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, survivor);
	sqlite3_bind_int64(st, 2, absorbed);
	sqlite3_bind_int64(st, 3, after);
	sqlite3_bind_int64(st, 4, at);
	if (reason)
		sqlite3_bind_text(st, 5, reason, -1, SQLITE_STATIC);
	if ((rc = scrm__step_done(db, st, "logging the merge")))
		return rc;
	int64_t id = sqlite3_last_insert_rowid(scrm__sqlite(db));
	st = scrm__stmt(db, "UPDATE customer SET merged_into=?1, merge_id=?2 WHERE id=?3");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, survivor);
	sqlite3_bind_int64(st, 2, id);
	sqlite3_bind_int64(st, 3, absorbed);
	if ((rc = scrm__step_done(db, st, "linking the absorbed customer")))
		return rc;
	const scrm_note note = {SCRM_NOTE_MERGE, id, survivor, absorbed, NULL};
	if ((rc = scrm__notify(db, &note)))
		return rc;
	*merge_id = id;
	return SCRM_OK;
}

static int manual_merge(scrm_db *db, int64_t a, int64_t b, const char *reason, int64_t *mid)
{
	id_state *ids;
	int64_t ra, rb;
	int rc;
	if ((rc = id__state(db, &ids)) || (rc = id__root(db, a, &ra)) || (rc = id__root(db, b, &rb)))
		return rc;
	if (ra == rb)
		return scrm__error(db, SCRM_INVALID, "customers %lld and %lld are already one customer (%lld)",
				   (long long)a, (long long)b, (long long)ra);
	sqlite3_stmt *st = scrm__stmt(db, "SELECT id FROM customer WHERE id IN (?1, ?2) "
					  "AND erased_at IS NOT NULL LIMIT 1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, ra);
	sqlite3_bind_int64(st, 2, rb);
	int s = sqlite3_step(st);
	int64_t gone = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (s == SQLITE_ROW)
		return scrm__error(db, SCRM_STATE, "customer %lld was erased and cannot be merged",
				   (long long)gone);
	if (s != SQLITE_DONE)
		return scrm__sqlerr(db, s, "reading customers");
	char why[160];
	rc = id__can_merge(db, ids, ra, rb, why, sizeof why);
	if (rc == SCRM_CONFLICT)
		return scrm__error(db, SCRM_CONFLICT, "cannot merge: %s", why);
	if (rc)
		return rc;
	return id__merge(db, ra < rb ? ra : rb, ra < rb ? rb : ra, scrm__now(db),
			 reason ? reason : "manual", mid);
}

SCRM_API int scrm_identity_merge(scrm_db *db, int64_t a, int64_t b, const char *reason,
				 int64_t *merge_id)
{
	int rc = scrm__enter_write(db);
	if (rc || (rc = scrm__tx_begin(db)))
		return rc;
	int64_t mid = 0;
	rc = scrm__tx_end(db, manual_merge(db, a, b, reason, &mid));
	if (merge_id)
		*merge_id = rc ? 0 : mid;
	return rc;
}

static int add_never(scrm_db *db, int64_t a, int64_t b, const char *reason, bool must_be_new)
{
	sqlite3_stmt *st = scrm__stmt(db, "INSERT OR IGNORE INTO never_merge(a, b, at, reason) "
					  "VALUES(?1, ?2, ?3, ?4), (?2, ?1, ?3, ?4)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	sqlite3_bind_int64(st, 3, scrm__now(db));
	if (reason)
		sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
	int rc = scrm__step_done(db, st, "recording never-merge");
	if (!rc && must_be_new && sqlite3_changes(scrm__sqlite(db)) == 0)
		rc = scrm__error(db, SCRM_EXISTS, "customers %lld and %lld are already marked never-merge",
				 (long long)a, (long long)b);
	return rc;
}

static int never_merge(scrm_db *db, int64_t a, int64_t b, const char *reason)
{
	int64_t ra, rb;
	int rc;
	if ((rc = id__root(db, a, &ra)) || (rc = id__root(db, b, &rb)))
		return rc;
	if (ra == rb)
		return scrm__error(db, SCRM_INVALID,
				   "customers %lld and %lld are one customer already; unmerge first",
				   (long long)a, (long long)b);
	return add_never(db, a, b, reason, true);
}

SCRM_API int scrm_identity_never_merge(scrm_db *db, int64_t a, int64_t b, const char *reason)
{
	int rc = scrm__enter_write(db);
	if (rc || (rc = scrm__tx_begin(db)))
		return rc;
	return scrm__tx_end(db, never_merge(db, a, b, reason));
}

/* Identifiers attached after the merge follow the identifier (anchor) their
 * observation was resolved through: re-home those whose anchor is now back
 * with the absorbed side. Observation order makes chains propagate. */
static int rehome_later(scrm_db *db, int64_t old_root, int64_t absorbed, int64_t after_obs)
{
	/* One observation at a time: each re-homing can move the anchor of a
	 * later one. */
	int64_t last = after_obs;
	for (;;) {
		sqlite3_stmt *st = scrm__stmt(
			db, "SELECT o.id FROM observation o WHERE o.id > ?2 AND o.customer IN "
			    "(SELECT id FROM customer WHERE root=?1) AND o.anchor_kind IS NOT NULL "
			    "AND (SELECT customer FROM ident a WHERE a.kind=o.anchor_kind AND "
			    "a.value=o.anchor_value) = ?3 ORDER BY o.id LIMIT 1");
		if (!st)
			return scrm_errcode(db);
		sqlite3_bind_int64(st, 1, old_root);
		sqlite3_bind_int64(st, 2, last);
		sqlite3_bind_int64(st, 3, absorbed);
		int s = sqlite3_step(st);
		if (s == SQLITE_DONE) {
			sqlite3_reset(st);
			return SCRM_OK;
		}
		if (s != SQLITE_ROW) {
			sqlite3_reset(st);
			return scrm__sqlerr(db, s, "re-resolving later observations");
		}
		int64_t obs = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		int rc;
		if ((rc = exec_ids(db, "UPDATE ident SET home=?1, customer=?1 WHERE obs=?2", absorbed,
				   obs, "re-homing identifiers")) ||
		    (rc = exec_ids(db, "UPDATE observation SET customer=?1 WHERE id=?2", absorbed, obs,
				   "re-homing an observation")))
			return rc;
		last = obs;
	}
}

static int unmerge(scrm_db *db, int64_t merge_id, const char *reason, int64_t *out)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT op, survivor, absorbed, after_obs, undone_by FROM merge_log WHERE id=?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, merge_id);
	int s = sqlite3_step(st);
	if (s != SQLITE_ROW) {
		sqlite3_reset(st);
		return s == SQLITE_DONE ? scrm__error(db, SCRM_NOTFOUND, "merge %lld does not exist",
						      (long long)merge_id)
					: scrm__sqlerr(db, s, "reading the merge log");
	}
	bool is_merge = strcmp((const char *)sqlite3_column_text(st, 0), "merge") == 0;
	int64_t survivor = sqlite3_column_int64(st, 1), absorbed = sqlite3_column_int64(st, 2);
	int64_t after = sqlite3_column_int64(st, 3);
	bool undone = sqlite3_column_type(st, 4) != SQLITE_NULL;
	sqlite3_reset(st);
	if (!is_merge)
		return scrm__error(db, SCRM_NOTFOUND, "log entry %lld is an unmerge, not a merge",
				   (long long)merge_id);
	if (undone)
		return scrm__error(db, SCRM_STATE, "merge %lld was already undone", (long long)merge_id);
	int64_t old_root;
	int rc;
	if ((rc = id__root(db, absorbed, &old_root)))
		return rc;
	/* Cut the link, then give the absorbed subtree its own root again. */
	scrm__identity_changed(db);
	if ((rc = exec_ids(db, "UPDATE customer SET merged_into=NULL, merge_id=NULL WHERE id=?1",
			   absorbed, 0, "unlinking the absorbed customer")) ||
	    (rc = exec_ids(db,
			   "WITH RECURSIVE sub(id) AS (SELECT ?1 UNION ALL SELECT c.id FROM customer c "
			   "JOIN sub ON c.merged_into = sub.id) "
			   "UPDATE customer SET root=?1 WHERE id IN (SELECT id FROM sub)",
			   absorbed, 0, "re-rooting the absorbed side")) ||
	    (rc = exec_ids(db,
			   "UPDATE ident SET customer=?2 WHERE customer=?1 AND home IN "
			   "(SELECT id FROM customer WHERE root=?2)",
			   old_root, absorbed, "returning identifiers")) ||
	    (rc = rehome_later(db, old_root, absorbed, after)) ||
	    (rc = add_never(db, absorbed, survivor, "unmerged", false)))
		return rc;
	st = scrm__stmt(db, "INSERT INTO merge_log(op, survivor, absorbed, after_obs, at, reason, undoes) "
			    "VALUES('unmerge', ?1, ?2, ?3, ?4, ?5, ?6)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, survivor);
	sqlite3_bind_int64(st, 2, absorbed);
	sqlite3_bind_int64(st, 3, after);
	sqlite3_bind_int64(st, 4, scrm__now(db));
	if (reason)
		sqlite3_bind_text(st, 5, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, merge_id);
	if ((rc = scrm__step_done(db, st, "logging the unmerge")))
		return rc;
	*out = sqlite3_last_insert_rowid(scrm__sqlite(db));
	if ((rc = exec_ids(db, "UPDATE merge_log SET undone_by=?1 WHERE id=?2", *out, merge_id,
			   "marking the merge undone")))
		return rc;
	const scrm_note note = {SCRM_NOTE_UNMERGE, *out, old_root, absorbed, NULL};
	return scrm__notify(db, &note);
}

SCRM_API int scrm_identity_unmerge(scrm_db *db, int64_t merge_id, const char *reason,
				   int64_t *unmerge_id)
{
	int rc = scrm__enter_write(db);
	if (rc || (rc = scrm__tx_begin(db)))
		return rc;
	int64_t id = 0;
	rc = scrm__tx_end(db, unmerge(db, merge_id, reason, &id));
	if (unmerge_id)
		*unmerge_id = rc ? 0 : id;
	return rc;
}

SCRM_API int scrm_identity_canonical(scrm_db *db, int64_t id, int64_t *survivor)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!survivor)
		return scrm__error(db, SCRM_MISUSE, "scrm_identity_canonical: survivor is NULL");
	return id__root(db, id, survivor);
}
