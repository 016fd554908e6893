/*
 * Schema creation and forward migration. Each released schema step is one
 * entry below; PRAGMA user_version records how many have been applied.
 */
#include <stdio.h>
#include <string.h>

#include "core-int.h"
#include "db-int.h"

/* 'SCRM' — marks the file as ours so a foreign SQLite file is refused. */
#define SCRM_APPLICATION_ID 0x5343524D

static const char core_v1[] =
	"CREATE TABLE scrm_meta ("
	"  key   TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL"
	") WITHOUT ROWID;";

/* Engine schema steps, defined in their own folders. */
extern const char scrm__identity_schema_1[];
extern const char scrm__identity_schema_2[];
extern const char scrm__profile_schema_1[];
extern const char scrm__profile_schema_2[];
extern const char scrm__rules_schema_1[];
extern const char scrm__rules_schema_2[];
extern const char scrm__rules_schema_3[];

static const scrm_migration migrations[] = {
	{1, core_v1},
	{2, scrm__identity_schema_1},
	{3, scrm__identity_schema_2},
	{4, scrm__profile_schema_1},
	{5, scrm__rules_schema_1},
	{6, scrm__rules_schema_2},
	{7, scrm__profile_schema_2},
	{8, scrm__rules_schema_3},
};

SCRM_API int scrm_schema_version(void)
{
	return migrations[SCRM_ARRAY_LEN(migrations) - 1].version;
}

static int read_int_pragma(scrm_db *db, const char *sql, int *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK) {
		int code = scrm__map_sqlite(rc);
		if (code == SCRM_CORRUPT || (rc & 0xff) == SQLITE_NOTADB)
			return scrm__error(db, SCRM_CORRUPT, "'%s' is not a database: %s", db->path,
					   sqlite3_errmsg(db->sq));
		return scrm__sqlerr(db, rc, "reading the schema version");
	}
	return SCRM_OK;
}

static int count_tables(scrm_db *db, int *n)
{
	return read_int_pragma(db, "SELECT count(*) FROM sqlite_master WHERE type='table'", n);
}

int scrm__schema_migrate(scrm_db *db)
{
	int current = scrm_schema_version();
	int uv, appid, ntables, rc;
	if ((rc = read_int_pragma(db, "PRAGMA user_version", &uv)) ||
	    (rc = read_int_pragma(db, "PRAGMA application_id", &appid)) ||
	    (rc = count_tables(db, &ntables)))
		return rc;
	if (appid != 0 && appid != SCRM_APPLICATION_ID)
		return scrm__error(db, SCRM_CORRUPT,
				   "'%s' is an SQLite file of another application (id 0x%08x)",
				   db->path, (unsigned)appid);
	if (appid == 0 && ntables > 0)
		return scrm__error(db, SCRM_CORRUPT,
				   "'%s' is an SQLite file but not a libscrm database", db->path);
	if (uv > current)
		return scrm__error(db, SCRM_SCHEMA,
				   "'%s' has schema version %d, newer than %d known to libscrm %s; "
				   "upgrade the library",
				   db->path, uv, current, scrm_version());
	if (uv == current)
		return SCRM_OK;
	if (db->readonly)
		return scrm__error(db, SCRM_SCHEMA,
				   "'%s' has schema version %d, older than %d; open it read-write once "
				   "to migrate it",
				   db->path, uv, current);

	if ((rc = scrm__exec(db, "BEGIN IMMEDIATE")))
		return rc;
	/* Re-read under the write lock: another process may have migrated. */
	if ((rc = read_int_pragma(db, "PRAGMA user_version", &uv)))
		goto fail;
	for (size_t i = 0; i < SCRM_ARRAY_LEN(migrations); i++) {
		if (migrations[i].version <= uv)
			continue;
		if ((rc = scrm__exec(db, migrations[i].sql))) {
			scrm__error(db, rc, "migrating to schema %d: %s", migrations[i].version,
				    db->errmsg);
			goto fail;
		}
		scrm__log(db, SCRM_LOG_INFO, "migrated '%s' to schema %d", db->path,
			  migrations[i].version);
	}
	char pragma[96];
	snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d; PRAGMA application_id=%d;", current,
		 SCRM_APPLICATION_ID);
	if ((rc = scrm__exec(db, pragma)) || (rc = scrm__exec(db, "COMMIT")))
		goto fail;
	return SCRM_OK;
fail:
	if (!sqlite3_get_autocommit(db->sq))
		sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}
