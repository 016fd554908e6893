/*
 * Check suite for the database handle (include/scrm/db.h): options, open and
 * its refusals, WAL and foreign keys, hooks, batches and savepoints, lock
 * waits, several processes, crash safety, info JSON and fault injection.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>
#include <sqlite3.h>

#include "core-int.h"
#include "testutil.h"

/* --------------------------------------------------------------- helpers */

/* Open with explicit options; returns the result code, *out the handle. */
static int open_with(const char *path, unsigned int flags, int busy_ms, scrm_db **out)
{
	scrm_db_options *o = NULL;
	ck_assert_int_eq(scrm_db_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_db_options_set_flags(o, flags), SCRM_OK);
	ck_assert_int_eq(scrm_db_options_set_busy_timeout(o, busy_ms), SCRM_OK);
	int rc = scrm_db_open(path, o, out);
	scrm_db_options_free(o);
	return rc;
}

/* Insert key=value into scrm_meta on the handle's own connection. */
static void put(scrm_db *db, const char *key)
{
	char sql[256];
	snprintf(sql, sizeof sql, "INSERT INTO scrm_meta(key, value) VALUES('%s', 'v')", key);
	int rc = tu_sql(db, sql);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(scrm__sqlite(db)));
}

static bool has(scrm_db *db, const char *key)
{
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM scrm_meta WHERE key = '%s'", key);
	return tu_sql_int(db, sql) == 1;
}

static long long meta_rows(scrm_db *db)
{
	return tu_sql_int(db, "SELECT count(*) FROM scrm_meta WHERE key NOT LIKE '%.%'");
}

/* scrm_db_info_json parsed; release with cJSON_Delete. */
static cJSON *info(scrm_db *db)
{
	char *json = NULL;
	tu_assert_ok(db, scrm_db_info_json(db, &json));
	ck_assert_ptr_nonnull(json);
	cJSON *j = cJSON_Parse(json);
	ck_assert_msg(j != NULL, "scrm_db_info_json gave invalid JSON: %s", json);
	scrm_free(json);
	return j;
}

/* Rows of table `name` according to scrm_db_info_json (-1 if absent). */
static long long info_rows(scrm_db *db, const char *name)
{
	cJSON *j = info(db);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(j, "tables"), name);
	long long n = cJSON_IsNumber(t) ? (long long)t->valuedouble : -1;
	cJSON_Delete(j);
	return n;
}

/* Rows the tests put into scrm_meta, as scrm_db_info_json counts them:
 * engines keep rows of their own there under dotted keys ("identity.x"). */
static long long user_rows(scrm_db *db)
{
	return info_rows(db, "scrm_meta") -
	       tu_sql_int(db, "SELECT count(*) FROM scrm_meta WHERE key LIKE '%.%'");
}

/* Create a libscrm database file and close it. */
static void create_db(const char *path)
{
	scrm_db *db = tu_open(path, SCRM_OPEN_CREATE);
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}

/* Wait for a child; returns its wait status. */
static int wait_child(pid_t pid)
{
	int status = 0;
	while (waitpid(pid, &status, 0) < 0)
		ck_assert_int_eq(errno, EINTR);
	return status;
}

static void write_byte(int fd)
{
	char c = 'x';
	ck_assert_int_eq(write(fd, &c, 1), 1);
}

static void read_byte(int fd)
{
	char c;
	ssize_t n;
	while ((n = read(fd, &c, 1)) < 0 && errno == EINTR)
		;
	ck_assert_int_eq(n, 1);
}

/* In a forked child: fail loudly and leave without running Check's code. */
#define CHILD_CHECK(cond, code)                                                      \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "child: %s failed at line %d\n", #cond, __LINE__); \
			_exit(code);                                                 \
		}                                                                    \
	} while (0)

/* -------------------------------------------------------------- options */

START_TEST(test_options_defaults_and_free)
{
	scrm_db_options *o = NULL;
	ck_assert_int_eq(scrm_db_options_new(&o), SCRM_OK);
	ck_assert_ptr_nonnull(o);
	scrm_db_options_free(o);
	scrm_db_options_free(NULL);

	ck_assert_int_eq(scrm_db_options_new(NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_errcode(NULL), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(NULL), "out is NULL");
}
END_TEST

START_TEST(test_options_null)
{
	ck_assert_int_eq(scrm_db_options_set_flags(NULL, SCRM_OPEN_CREATE), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(NULL), "options object is NULL");
	ck_assert_int_eq(scrm_db_options_set_busy_timeout(NULL, 10), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(NULL), "options object is NULL");
	ck_assert_int_eq(scrm_db_options_set_clock(NULL, tu_clock_fn, NULL), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(NULL), "options object is NULL");
	ck_assert_int_eq(scrm_db_options_set_log(NULL, tu_log_fn, NULL, SCRM_LOG_INFO), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(NULL), "options object is NULL");
}
END_TEST

START_TEST(test_options_bad_values)
{
	scrm_db_options *o = NULL;
	ck_assert_int_eq(scrm_db_options_new(&o), SCRM_OK);

	ck_assert_int_eq(scrm_db_options_set_flags(o, 0x4), SCRM_INVALID);
	ck_assert_int_eq(scrm_errcode(NULL), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(NULL), "unknown open flags 0x4");
	ck_assert_int_eq(scrm_db_options_set_flags(o, SCRM_OPEN_CREATE | 0x80000000u), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(NULL), "0x80000000");

	ck_assert_int_eq(scrm_db_options_set_flags(o, SCRM_OPEN_CREATE | SCRM_OPEN_READONLY),
			 SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(NULL), "SCRM_OPEN_CREATE");
	tu_assert_contains(scrm_errmsg(NULL), "SCRM_OPEN_READONLY");

	ck_assert_int_eq(scrm_db_options_set_busy_timeout(o, -1), SCRM_RANGE);
	tu_assert_contains(scrm_errmsg(NULL), "busy timeout -1 ms is negative");
	ck_assert_int_eq(scrm_db_options_set_busy_timeout(o, 0), SCRM_OK);

	ck_assert_int_eq(scrm_db_options_set_log(o, tu_log_fn, NULL, -1), SCRM_RANGE);
	tu_assert_contains(scrm_errmsg(NULL), "log level -1");
	ck_assert_int_eq(scrm_db_options_set_log(o, tu_log_fn, NULL, SCRM_LOG_DEBUG + 1), SCRM_RANGE);
	tu_assert_contains(scrm_errmsg(NULL), "log level 5");
	for (int lvl = 0; lvl <= SCRM_LOG_DEBUG; lvl++)
		ck_assert_int_eq(scrm_db_options_set_log(o, tu_log_fn, NULL, lvl), SCRM_OK);
	ck_assert_int_eq(scrm_db_options_set_log(o, NULL, NULL, 0), SCRM_OK);
	scrm_db_options_free(o);
}
END_TEST

/* A refused setter leaves the options as they were. */
START_TEST(test_options_refusal_keeps_value)
{
	scrm_db_options *o = NULL;
	ck_assert_int_eq(scrm_db_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_db_options_set_flags(o, 0), SCRM_OK); /* no create */
	ck_assert_int_eq(scrm_db_options_set_flags(o, 0x10), SCRM_INVALID);
	scrm_db *db = (scrm_db *)&db;
	ck_assert_int_eq(scrm_db_open(tu_path("missing.db"), o, &db), SCRM_NOTFOUND);
	ck_assert_ptr_null(db);
	ck_assert(!tu_file_exists(tu_path("missing.db")));
	scrm_db_options_free(o);
}
END_TEST

/* ------------------------------------------------------------------ open */

START_TEST(test_open_bad_arguments)
{
	scrm_db *db = (scrm_db *)&db;
	ck_assert_int_eq(scrm_db_open(NULL, NULL, &db), SCRM_MISUSE);
	ck_assert_ptr_null(db);
	tu_assert_contains(scrm_errmsg(NULL), "path is NULL");
	ck_assert_int_eq(scrm_db_open(":memory:", NULL, NULL), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(NULL), "out is NULL");
	db = (scrm_db *)&db;
	ck_assert_int_eq(scrm_db_open("", NULL, &db), SCRM_INVALID);
	ck_assert_ptr_null(db);
	tu_assert_contains(scrm_errmsg(NULL), "path is empty");
}
END_TEST

START_TEST(test_open_memory)
{
	scrm_db *db = NULL;
	tu_assert_ok(NULL, scrm_db_open(":memory:", NULL, &db));
	ck_assert_ptr_nonnull(db);
	ck_assert_str_eq(scrm_db_path(db), ":memory:");
	ck_assert_int_eq(scrm_errcode(db), SCRM_OK);
	ck_assert_str_eq(scrm_errmsg(db), "not an error");
	ck_assert_int_eq(scrm_errcode(NULL), SCRM_OK);
	ck_assert_int_eq(scrm_db_batch_depth(db), 0);
	ck_assert_int_eq(tu_sql_int(db, "PRAGMA user_version"), scrm_schema_version());
	ck_assert_int_eq(tu_sql_int(db, "PRAGMA foreign_keys"), 1);

	/* Each :memory: handle is a private database. */
	scrm_db *other = tu_open(":memory:", SCRM_OPEN_CREATE);
	put(db, "only-in-first");
	ck_assert(has(db, "only-in-first"));
	ck_assert(!has(other, "only-in-first"));
	ck_assert_int_eq(scrm_db_close(other), SCRM_OK);
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

START_TEST(test_schema_version)
{
	ck_assert_int_ge(scrm_schema_version(), 1);
}
END_TEST

/* A new file is WAL, has foreign keys on, and is stamped as ours. */
START_TEST(test_open_file_wal_fk)
{
	const char *path = tu_path("wal.db");
	scrm_db *db = tu_open(path, SCRM_OPEN_CREATE);
	ck_assert(tu_file_exists(path));
	ck_assert_str_eq(scrm_db_path(db), path);
	/* Foreign keys are per connection: ask the handle's own. */
	ck_assert_int_eq(tu_sql_int(db, "PRAGMA foreign_keys"), 1);
	ck_assert_int_eq(tu_sql_int(db, "PRAGMA synchronous"), 1); /* NORMAL */
	/* WAL is a property of the file: a second connection sees it. */
	ck_assert_str_eq(tu_sql_file_text(path, "PRAGMA journal_mode"), "wal");
	char v[32];
	snprintf(v, sizeof v, "%d", scrm_schema_version());
	ck_assert_str_eq(tu_sql_file_text(path, "PRAGMA user_version"), v);
	ck_assert_str_eq(tu_sql_file_text(path, "PRAGMA application_id"), "1396920909");
	ck_assert_str_eq(tu_sql_file_text(path, "SELECT name FROM sqlite_master WHERE name='scrm_meta'"),
			 "scrm_meta");
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

/* Reopening migrates nothing and keeps the data. */
START_TEST(test_reopen_keeps_data)
{
	const char *path = tu_path("reopen.db");
	tu_log log;
	tu_log_reset(&log);
	scrm_db_options *o = NULL;
	ck_assert_int_eq(scrm_db_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_db_options_set_log(o, tu_log_fn, &log, SCRM_LOG_INFO), SCRM_OK);
	scrm_db *db = NULL;
	tu_assert_ok(NULL, scrm_db_open(path, o, &db));
	ck_assert_int_ge(tu_log_find(&log, SCRM_LOG_INFO, "migrated"), 0);
	put(db, "survives");
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);

	tu_log_reset(&log);
	tu_assert_ok(NULL, scrm_db_open(path, o, &db));
	ck_assert_int_eq(tu_log_find(&log, 0, "migrated"), -1);
	ck_assert_int_ge(tu_log_find(&log, SCRM_LOG_INFO, "opened"), 0);
	ck_assert(has(db, "survives"));
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
	scrm_db_options_free(o);
}
END_TEST

START_TEST(test_open_missing_without_create)
{
	const char *path = tu_path("nope.db");
	scrm_db *db = (scrm_db *)&db;
	ck_assert_int_eq(open_with(path, 0, 5000, &db), SCRM_NOTFOUND);
	ck_assert_ptr_null(db);
	ck_assert_int_eq(scrm_errcode(NULL), SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(NULL), path);
	tu_assert_contains(scrm_errmsg(NULL), "does not exist");
	ck_assert(!tu_file_exists(path));
}
END_TEST

START_TEST(test_open_readonly_missing)
{
	const char *path = tu_path("nope-ro.db");
	scrm_db *db = (scrm_db *)&db;
	ck_assert_int_eq(open_with(path, SCRM_OPEN_READONLY, 5000, &db), SCRM_NOTFOUND);
	ck_assert_ptr_null(db);
	tu_assert_contains(scrm_errmsg(NULL), path);
	ck_assert(!tu_file_exists(path));
}
END_TEST

START_TEST(test_open_readonly_memory)
{
	scrm_db *db = (scrm_db *)&db;
	ck_assert_int_eq(open_with(":memory:", SCRM_OPEN_READONLY, 0, &db), SCRM_INVALID);
	ck_assert_ptr_null(db);
	tu_assert_contains(scrm_errmsg(NULL), "in-memory");
}
END_TEST

/* A path in a missing directory cannot be opened (or created). */
START_TEST(test_open_unopenable)
{
	scrm_db *db = (scrm_db *)&db;
	char path[4300];
	snprintf(path, sizeof path, "%s/no/such/dir/x.db", tu_tmpdir());
	int rc = scrm_db_open(path, NULL, &db);
	ck_assert_int_eq(rc, SCRM_IO);
	ck_assert_ptr_null(db);
	tu_assert_contains(scrm_errmsg(NULL), path);
}
END_TEST

/* Not an SQLite file at all: refused as corrupt, and left untouched. */
START_TEST(test_open_garbage)
{
	const char *path = tu_path("garbage.db");
	unsigned char junk[8192];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (unsigned char)(i * 131 + 7);
	tu_write_file(path, junk, sizeof junk);
	scrm_db *db = (scrm_db *)&db;
	ck_assert_int_eq(scrm_db_open(path, NULL, &db), SCRM_CORRUPT);
	ck_assert_ptr_null(db);
	ck_assert_int_eq(scrm_errcode(NULL), SCRM_CORRUPT);
	ck_assert_str_ne(scrm_errmsg(NULL), "not an error");
	tu_assert_contains(scrm_errmsg(NULL), "not a database");

	size_t n;
	unsigned char *after = tu_read_file(path, &n);
	ck_assert_uint_eq(n, sizeof junk);
	ck_assert_mem_eq(after, junk, sizeof junk);
	free(after);

	/* Read-only gives the same answer. */
	ck_assert_int_eq(open_with(path, SCRM_OPEN_READONLY, 0, &db), SCRM_CORRUPT);
}
END_TEST

START_TEST(test_open_text_file)
{
	const char *path = tu_path("notes.txt");
	const char text[] = "customer list, not a database\n";
	tu_write_file(path, text, sizeof text - 1);
	scrm_db *db = (scrm_db *)&db;
	ck_assert_int_eq(scrm_db_open(path, NULL, &db), SCRM_CORRUPT);
	ck_assert_ptr_null(db);
}
END_TEST

/* Another application's SQLite file is refused, named, and not modified. */
START_TEST(test_open_foreign_sqlite)
{
	const char *path = tu_path("foreign.db");
	tu_sql_file(path, "CREATE TABLE orders(id INTEGER PRIMARY KEY, total INTEGER);"
			  "INSERT INTO orders(total) VALUES (100), (200);");
	scrm_db *db = (scrm_db *)&db;
	ck_assert_int_eq(scrm_db_open(path, NULL, &db), SCRM_CORRUPT);
	ck_assert_ptr_null(db);
	tu_assert_contains(scrm_errmsg(NULL), path);
	tu_assert_contains(scrm_errmsg(NULL), "not a libscrm database");
	/* Their data is left as it was. */
	ck_assert_str_eq(tu_sql_file_text(path, "SELECT count(*) FROM orders"), "2");
	ck_assert_str_eq(tu_sql_file_text(path, "PRAGMA user_version"), "0");
	ck_assert_str_eq(tu_sql_file_text(path, "SELECT count(*) FROM sqlite_master "
						"WHERE name LIKE 'scrm%'"),
			 "0");
}
END_TEST

/* Refusing another application's file must not change it: switching it to
 * WAL is a persistent change of its journal mode (and leaves -wal/-shm files
 * next to it), which can break the application that owns it. */
START_TEST(test_open_foreign_sqlite_untouched)
{
	const char *path = tu_path("foreign2.db");
	tu_sql_file(path, "CREATE TABLE orders(id INTEGER PRIMARY KEY, total INTEGER);");
	ck_assert_str_eq(tu_sql_file_text(path, "PRAGMA journal_mode"), "delete");
	scrm_db *db = (scrm_db *)&db;
	ck_assert_int_eq(scrm_db_open(path, NULL, &db), SCRM_CORRUPT);
	ck_assert_str_eq(tu_sql_file_text(path, "PRAGMA journal_mode"), "delete");
}
END_TEST

START_TEST(test_open_other_application_id)
{
	const char *path = tu_path("appid.db");
	tu_sql_file(path, "PRAGMA application_id = 1234;");
	scrm_db *db = (scrm_db *)&db;
	ck_assert_int_eq(scrm_db_open(path, NULL, &db), SCRM_CORRUPT);
	ck_assert_ptr_null(db);
	tu_assert_contains(scrm_errmsg(NULL), "another application");
	tu_assert_contains(scrm_errmsg(NULL), "0x000004d2");
}
END_TEST

/* A file from a newer libscrm: refused with both versions named. */
START_TEST(test_open_newer_schema)
{
	const char *path = tu_path("future.db");
	create_db(path);
	tu_sql_file(path, "PRAGMA user_version = 9999;");
	scrm_db *db = (scrm_db *)&db;
	ck_assert_int_eq(scrm_db_open(path, NULL, &db), SCRM_SCHEMA);
	ck_assert_ptr_null(db);
	ck_assert_int_eq(scrm_errcode(NULL), SCRM_SCHEMA);
	char known[64];
	snprintf(known, sizeof known, "newer than %d", scrm_schema_version());
	tu_assert_contains(scrm_errmsg(NULL), "9999");
	tu_assert_contains(scrm_errmsg(NULL), known);
	tu_assert_contains(scrm_errmsg(NULL), path);
	/* Not touched: still 9999. */
	ck_assert_str_eq(tu_sql_file_text(path, "PRAGMA user_version"), "9999");

	ck_assert_int_eq(open_with(path, SCRM_OPEN_READONLY, 0, &db), SCRM_SCHEMA);
	tu_assert_contains(scrm_errmsg(NULL), "9999");
}
END_TEST

/* An old (unmigrated) file cannot be opened read-only; read-write migrates. */
START_TEST(test_open_older_schema)
{
	const char *path = tu_path("old.db");
	tu_sql_file(path, "PRAGMA application_id = 1396920909;"); /* ours, schema 0 */
	scrm_db *db = (scrm_db *)&db;
	ck_assert_int_eq(open_with(path, SCRM_OPEN_READONLY, 0, &db), SCRM_SCHEMA);
	ck_assert_ptr_null(db);
	tu_assert_contains(scrm_errmsg(NULL), "older than");
	tu_assert_contains(scrm_errmsg(NULL), "read-write");

	db = tu_open(path, 0);
	ck_assert_int_eq(tu_sql_int(db, "PRAGMA user_version"), scrm_schema_version());
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

/* An empty file (e.g. made by touch) becomes a fresh database. */
START_TEST(test_open_empty_file)
{
	const char *path = tu_path("empty.db");
	tu_write_file(path, "", 0);
	scrm_db *db = tu_open(path, 0);
	ck_assert_int_eq(tu_sql_int(db, "PRAGMA user_version"), scrm_schema_version());
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

/* ------------------------------------------------------------- read-only */

START_TEST(test_readonly)
{
	const char *path = tu_path("ro.db");
	scrm_db *rw = tu_open(path, SCRM_OPEN_CREATE);
	put(rw, "before");

	scrm_db *ro = tu_open(path, SCRM_OPEN_READONLY);
	ck_assert_int_eq(scrm_db_begin(ro), SCRM_READONLY);
	ck_assert_int_eq(scrm_errcode(ro), SCRM_READONLY);
	tu_assert_contains(scrm_errmsg(ro), "read-only");
	tu_assert_contains(scrm_errmsg(ro), path);
	ck_assert_int_eq(scrm_db_batch_depth(ro), 0);
	ck_assert_int_eq(scrm_db_commit(ro), SCRM_MISUSE);
	/* Reading works and sees what the writer commits (engines keep rows of
	 * their own in scrm_meta, so count relative to the first read). */
	long long base = user_rows(ro);
	ck_assert_int_ge(base, 1);
	put(rw, "after");
	ck_assert_int_eq(user_rows(ro), base + 1);
	/* Its connection really is read-only. */
	ck_assert_int_ne(tu_sql(ro, "INSERT INTO scrm_meta VALUES('x', 'y')"), SQLITE_OK);
	ck_assert_int_eq(scrm_db_close(ro), SCRM_OK);
	ck_assert_int_eq(scrm_db_close(rw), SCRM_OK);

	/* With no writer around too. */
	ro = tu_open(path, SCRM_OPEN_READONLY);
	ck_assert_int_eq(user_rows(ro), base + 1);
	ck_assert_int_eq(scrm_db_begin(ro), SCRM_READONLY);
	ck_assert_int_eq(scrm_db_close(ro), SCRM_OK);
}
END_TEST

/* --------------------------------------------------------------- hooks */

START_TEST(test_clock_hook)
{
	tu_clock clk = {1767225600000LL, 0}; /* 2026-01-01T00:00:00Z */
	scrm_db_options *o = NULL;
	ck_assert_int_eq(scrm_db_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_db_options_set_clock(o, tu_clock_fn, &clk), SCRM_OK);
	scrm_db *db = NULL;
	tu_assert_ok(NULL, scrm_db_open(":memory:", o, &db));
	scrm_db_options_free(o); /* options are not retained */

	ck_assert_int_eq(scrm_db_now(db), 1767225600000LL);
	clk.now += 72 * 3600 * 1000LL;
	ck_assert_int_eq(scrm_db_now(db), 1767484800000LL);
	ck_assert_int_ge(clk.calls, 2);

	/* Replace it on the open handle. */
	tu_clock other = {42, 0};
	tu_assert_ok(db, scrm_db_set_clock(db, tu_clock_fn, &other));
	ck_assert_int_eq(scrm_db_now(db), 42);

	/* NULL restores the real clock. */
	tu_assert_ok(db, scrm_db_set_clock(db, NULL, NULL));
	int64_t before = tu_wall_ms();
	int64_t now = scrm_db_now(db);
	int64_t after = tu_wall_ms();
	ck_assert_int_ge(now, before);
	ck_assert_int_le(now, after);
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);

	/* Options with NULL clock: real time as well. */
	ck_assert_int_eq(scrm_db_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_db_options_set_clock(o, tu_clock_fn, &clk), SCRM_OK);
	ck_assert_int_eq(scrm_db_options_set_clock(o, NULL, NULL), SCRM_OK);
	tu_assert_ok(NULL, scrm_db_open(":memory:", o, &db));
	scrm_db_options_free(o);
	ck_assert_int_ge(scrm_db_now(db), before);
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

START_TEST(test_log_hook_levels)
{
	tu_log log;
	tu_log_reset(&log);
	scrm_db_options *o = NULL;
	ck_assert_int_eq(scrm_db_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_db_options_set_log(o, tu_log_fn, &log, SCRM_LOG_INFO), SCRM_OK);
	scrm_db *db = NULL;
	tu_assert_ok(NULL, scrm_db_open(":memory:", o, &db));
	scrm_db_options_free(o);

	/* Open reports at INFO; nothing above the chosen level arrives. */
	int i = tu_log_find(&log, SCRM_LOG_INFO, "opened ':memory:'");
	ck_assert_int_ge(i, 0);
	char schema[32];
	snprintf(schema, sizeof schema, "schema %d", scrm_schema_version());
	tu_assert_contains(log.msg[i], schema);
	for (int k = 0; k < log.count && k < TU_LOG_MAX; k++)
		ck_assert_int_le(log.level[k], SCRM_LOG_INFO);

	/* Errors are reported at DEBUG: silent at INFO ... */
	int before = log.count;
	ck_assert_int_eq(scrm_db_commit(db), SCRM_MISUSE);
	ck_assert_int_eq(log.count, before);

	/* ... and delivered once the level allows it. */
	tu_assert_ok(db, scrm_db_set_log(db, tu_log_fn, &log, SCRM_LOG_DEBUG));
	ck_assert_int_eq(scrm_db_rollback(db), SCRM_MISUSE);
	i = tu_log_find(&log, SCRM_LOG_DEBUG, "no batch is open");
	ck_assert_int_ge(i, 0);
	tu_assert_contains(log.msg[i], "library misuse");

	/* Bad level is refused and keeps the hook. */
	ck_assert_int_eq(scrm_db_set_log(db, tu_log_fn, &log, 9), SCRM_RANGE);
	ck_assert_int_eq(scrm_errcode(db), SCRM_RANGE);
	tu_assert_contains(scrm_errmsg(db), "log level 9");
	before = log.count;
	ck_assert_int_eq(scrm_db_commit(db), SCRM_MISUSE);
	ck_assert_int_gt(log.count, before);

	/* Level 0 and a NULL hook both silence it. */
	tu_assert_ok(db, scrm_db_set_log(db, tu_log_fn, &log, 0));
	before = log.count;
	ck_assert_int_eq(scrm_db_commit(db), SCRM_MISUSE);
	ck_assert_int_eq(log.count, before);
	tu_assert_ok(db, scrm_db_set_log(db, NULL, NULL, SCRM_LOG_DEBUG));
	ck_assert_int_eq(scrm_db_commit(db), SCRM_MISUSE);
	ck_assert_int_eq(log.count, before);
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

/* The default level (WARN) keeps a normal open silent. */
START_TEST(test_log_default_level)
{
	tu_log log;
	tu_log_reset(&log);
	scrm_db_options *o = NULL;
	ck_assert_int_eq(scrm_db_options_new(&o), SCRM_OK);
	scrm_db *db = NULL;
	tu_assert_ok(NULL, scrm_db_open(":memory:", o, &db));
	tu_assert_ok(db, scrm_db_set_log(db, tu_log_fn, &log, SCRM_LOG_WARN));
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
	ck_assert_int_eq(log.count, 0);
	scrm_db_options_free(o);
}
END_TEST

/* ----------------------------------------------------- batches, savepoints */

START_TEST(test_batch_depth_and_misuse)
{
	scrm_db *db = tu_open(":memory:", SCRM_OPEN_CREATE);
	ck_assert_int_eq(scrm_db_commit(db), SCRM_MISUSE);
	ck_assert_int_eq(scrm_errcode(db), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(db), "no batch is open");
	ck_assert_int_eq(scrm_db_rollback(db), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(db), "no batch is open");

	for (int d = 1; d <= 3; d++) {
		tu_assert_ok(db, scrm_db_begin(db));
		ck_assert_int_eq(scrm_db_batch_depth(db), d);
	}
	/* A successful call clears the last error. */
	ck_assert_int_eq(scrm_errcode(db), SCRM_OK);
	ck_assert_str_eq(scrm_errmsg(db), "not an error");
	tu_assert_ok(db, scrm_db_commit(db));
	ck_assert_int_eq(scrm_db_batch_depth(db), 2);
	tu_assert_ok(db, scrm_db_rollback(db));
	ck_assert_int_eq(scrm_db_batch_depth(db), 1);
	tu_assert_ok(db, scrm_db_commit(db));
	ck_assert_int_eq(scrm_db_batch_depth(db), 0);
	ck_assert_int_eq(scrm_db_commit(db), SCRM_MISUSE);
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

START_TEST(test_batch_nesting_limit)
{
	scrm_db *db = tu_open(":memory:", SCRM_OPEN_CREATE);
	int depth = 0;
	int rc;
	while ((rc = scrm_db_begin(db)) == SCRM_OK && depth < 1000)
		depth++;
	ck_assert_int_eq(rc, SCRM_LIMIT);
	tu_assert_contains(scrm_errmsg(db), "nested deeper than");
	ck_assert_int_ge(depth, 16);
	ck_assert_int_eq(scrm_db_batch_depth(db), depth);
	put(db, "deep");
	while (depth-- > 0)
		tu_assert_ok(db, scrm_db_commit(db));
	ck_assert_int_eq(scrm_db_batch_depth(db), 0);
	ck_assert(has(db, "deep"));
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

START_TEST(test_inner_rollback_keeps_outer)
{
	scrm_db *db = tu_open(tu_path("nest.db"), SCRM_OPEN_CREATE);
	tu_assert_ok(db, scrm_db_begin(db));
	put(db, "outer");
	tu_assert_ok(db, scrm_db_begin(db));
	put(db, "inner");
	ck_assert(has(db, "inner"));
	tu_assert_ok(db, scrm_db_rollback(db));
	ck_assert(!has(db, "inner"));
	ck_assert(has(db, "outer"));
	put(db, "outer2");
	tu_assert_ok(db, scrm_db_commit(db));
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);

	/* What was committed is on disk; the rolled-back row is not. */
	db = tu_open(tu_path("nest.db"), 0);
	ck_assert(has(db, "outer"));
	ck_assert(has(db, "outer2"));
	ck_assert(!has(db, "inner"));
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

START_TEST(test_outer_rollback_undoes_inner_commit)
{
	scrm_db *db = tu_open(":memory:", SCRM_OPEN_CREATE);
	put(db, "committed");
	tu_assert_ok(db, scrm_db_begin(db));
	put(db, "a");
	tu_assert_ok(db, scrm_db_begin(db));
	put(db, "b");
	tu_assert_ok(db, scrm_db_commit(db)); /* inner released into the outer */
	ck_assert(has(db, "b"));
	tu_assert_ok(db, scrm_db_rollback(db));
	ck_assert(!has(db, "a"));
	ck_assert(!has(db, "b"));
	ck_assert(has(db, "committed"));
	ck_assert_int_eq(meta_rows(db), 1);
	ck_assert_int_eq(user_rows(db), 1);
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

/* A batch is visible to other connections only when committed. */
START_TEST(test_batch_isolation)
{
	const char *path = tu_path("iso.db");
	scrm_db *w = tu_open(path, SCRM_OPEN_CREATE);
	scrm_db *r = tu_open(path, 0);
	tu_assert_ok(w, scrm_db_begin(w));
	put(w, "pending");
	ck_assert_int_eq(user_rows(r), 0);
	ck_assert_str_eq(tu_sql_file_text(path, "SELECT count(*) FROM scrm_meta WHERE key NOT LIKE '%.%'"), "0");
	tu_assert_ok(w, scrm_db_commit(w));
	ck_assert_int_eq(user_rows(r), 1);
	ck_assert_int_eq(scrm_db_close(r), SCRM_OK);
	ck_assert_int_eq(scrm_db_close(w), SCRM_OK);
}
END_TEST

/* Closing with a batch open rolls it back. */
START_TEST(test_close_rolls_back)
{
	const char *path = tu_path("close.db");
	scrm_db *db = tu_open(path, SCRM_OPEN_CREATE);
	put(db, "kept");
	tu_assert_ok(db, scrm_db_begin(db));
	tu_assert_ok(db, scrm_db_begin(db));
	put(db, "dropped");
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
	db = tu_open(path, 0);
	ck_assert(has(db, "kept"));
	ck_assert(!has(db, "dropped"));
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

/* The engines' wrapper: a failed call inside a batch undoes only itself
 * and keeps its own error message. */
START_TEST(test_internal_tx_atomic_call)
{
	scrm_db *db = tu_open(":memory:", SCRM_OPEN_CREATE);
	tu_assert_ok(db, scrm_db_begin(db));
	put(db, "batch-work");

	ck_assert_int_eq(scrm__tx_begin(db), SCRM_OK);
	put(db, "half-done");
	int rc = scrm__error(db, SCRM_INVALID, "phone '%s' is not a number", "abc");
	ck_assert_int_eq(scrm__tx_end(db, rc), SCRM_INVALID);
	ck_assert_int_eq(scrm_errcode(db), SCRM_INVALID);
	ck_assert_str_eq(scrm_errmsg(db), "phone 'abc' is not a number");
	ck_assert(!has(db, "half-done"));
	ck_assert(has(db, "batch-work"));
	ck_assert_int_eq(scrm_db_batch_depth(db), 1);

	ck_assert_int_eq(scrm__tx_begin(db), SCRM_OK);
	put(db, "done");
	ck_assert_int_eq(scrm__tx_end(db, SCRM_OK), SCRM_OK);
	tu_assert_ok(db, scrm_db_commit(db));
	ck_assert(has(db, "done"));
	ck_assert(has(db, "batch-work"));

	/* Outside any batch the call is its own transaction. */
	ck_assert_int_eq(scrm__tx_begin(db), SCRM_OK);
	put(db, "alone");
	ck_assert_int_eq(scrm__tx_end(db, SCRM_CONFLICT), SCRM_CONFLICT);
	ck_assert(!has(db, "alone"));
	ck_assert(sqlite3_get_autocommit(scrm__sqlite(db)));
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

/* A host callback running inside a library call cannot open a batch. */
START_TEST(test_begin_inside_library_call)
{
	scrm_db *db = tu_open(":memory:", SCRM_OPEN_CREATE);
	ck_assert_int_eq(scrm__tx_begin(db), SCRM_OK);
	ck_assert_int_eq(scrm_db_begin(db), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(db), "inside a library call");
	ck_assert_int_eq(scrm_db_batch_depth(db), 0);
	ck_assert_int_eq(scrm__tx_end(db, SCRM_OK), SCRM_OK);
	tu_assert_ok(db, scrm_db_begin(db));
	tu_assert_ok(db, scrm_db_commit(db));
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

/* ----------------------------------------------------------- lock waits */

START_TEST(test_busy_no_wait)
{
	const char *path = tu_path("busy.db");
	scrm_db *holder = tu_open(path, SCRM_OPEN_CREATE);
	scrm_db *waiter = NULL;
	tu_assert_ok(NULL, open_with(path, 0, 0, &waiter));
	tu_assert_ok(holder, scrm_db_begin(holder));
	put(holder, "locked");

	int64_t t0 = tu_mono_ms();
	ck_assert_int_eq(scrm_db_begin(waiter), SCRM_BUSY);
	int64_t took = tu_mono_ms() - t0;
	ck_assert_int_eq(scrm_errcode(waiter), SCRM_BUSY);
	tu_assert_contains(scrm_errmsg(waiter), "locked");
	ck_assert_int_eq(scrm_db_batch_depth(waiter), 0);
	ck_assert_int_lt(took, 1000);
	/* Readers are not blocked by the writer (WAL), and see the old state. */
	ck_assert_int_eq(user_rows(waiter), 0);

	/* Once the holder commits, the waiter gets its batch. */
	tu_assert_ok(holder, scrm_db_commit(holder));
	tu_assert_ok(waiter, scrm_db_begin(waiter));
	ck_assert(has(waiter, "locked"));
	tu_assert_ok(waiter, scrm_db_commit(waiter));
	ck_assert_int_eq(scrm_db_close(waiter), SCRM_OK);
	ck_assert_int_eq(scrm_db_close(holder), SCRM_OK);
}
END_TEST

START_TEST(test_busy_timeout_waits)
{
	const char *path = tu_path("busy2.db");
	scrm_db *holder = tu_open(path, SCRM_OPEN_CREATE);
	scrm_db *waiter = NULL;
	tu_assert_ok(NULL, open_with(path, 0, 200, &waiter));
	tu_assert_ok(holder, scrm_db_begin(holder));

	int64_t t0 = tu_mono_ms();
	ck_assert_int_eq(scrm_db_begin(waiter), SCRM_BUSY);
	int64_t took = tu_mono_ms() - t0;
	ck_assert_msg(took >= 150, "gave up after %lld ms, busy timeout is 200", (long long)took);
	ck_assert_msg(took < 5000, "waited %lld ms, busy timeout is 200", (long long)took);
	ck_assert_int_ne(scrm_errcode(waiter), SCRM_CORRUPT);
	tu_assert_ok(holder, scrm_db_rollback(holder));
	ck_assert_int_eq(scrm_db_close(waiter), SCRM_OK);
	ck_assert_int_eq(scrm_db_close(holder), SCRM_OK);
}
END_TEST

/* A waiter whose timeout outlasts the holder gets the lock. */
START_TEST(test_busy_wait_succeeds)
{
	const char *path = tu_path("busy3.db");
	create_db(path);
	int ready[2], go[2];
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		alarm(60); /* never outlive a failed parent */
		close(ready[0]);
		close(go[1]);
		scrm_db *db = NULL;
		CHILD_CHECK(scrm_db_open(path, NULL, &db) == SCRM_OK, 2);
		CHILD_CHECK(scrm_db_begin(db) == SCRM_OK, 3);
		CHILD_CHECK(tu_sql(db, "INSERT INTO scrm_meta VALUES('child', 'v')") == SQLITE_OK, 4);
		char c = 'r';
		CHILD_CHECK(write(ready[1], &c, 1) == 1, 5);
		CHILD_CHECK(read(go[0], &c, 1) == 1, 6);
		usleep(300 * 1000); /* hold the lock while the parent waits */
		CHILD_CHECK(scrm_db_commit(db) == SCRM_OK, 7);
		CHILD_CHECK(scrm_db_close(db) == SCRM_OK, 8);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	read_byte(ready[0]);
	scrm_db *db = NULL;
	tu_assert_ok(NULL, open_with(path, 0, 10000, &db));
	write_byte(go[1]);
	int64_t t0 = tu_mono_ms();
	tu_assert_ok(db, scrm_db_begin(db));
	int64_t took = tu_mono_ms() - t0;
	ck_assert_msg(took >= 100, "got the lock after %lld ms while it was held", (long long)took);
	ck_assert(has(db, "child"));
	tu_assert_ok(db, scrm_db_commit(db));
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
	int status = wait_child(pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	close(ready[0]);
	close(go[1]);
}
END_TEST

/* ------------------------------------------------------ several processes */

#define MP_BATCHES 20
#define MP_ROWS 50

/* A child writes batches of MP_ROWS rows while the parent keeps reading:
 * the parent only ever sees whole batches. */
START_TEST(test_multiprocess_consistent)
{
	const char *path = tu_path("mp.db");
	create_db(path);
	int ready[2];
	ck_assert_int_eq(pipe(ready), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		alarm(60);
		close(ready[0]);
		scrm_db *db = NULL;
		CHILD_CHECK(scrm_db_open(path, NULL, &db) == SCRM_OK, 2);
		char c = 'r';
		CHILD_CHECK(write(ready[1], &c, 1) == 1, 3);
		for (int b = 0; b < MP_BATCHES; b++) {
			CHILD_CHECK(scrm_db_begin(db) == SCRM_OK, 4);
			for (int i = 0; i < MP_ROWS; i++) {
				char sql[128];
				snprintf(sql, sizeof sql,
					 "INSERT INTO scrm_meta VALUES('b%d-r%d', 'v')", b, i);
				CHILD_CHECK(tu_sql(db, sql) == SQLITE_OK, 5);
				if (i == MP_ROWS / 2)
					usleep(1000); /* widen the window for a torn read */
			}
			CHILD_CHECK(scrm_db_commit(db) == SCRM_OK, 6);
		}
		CHILD_CHECK(scrm_db_close(db) == SCRM_OK, 7);
		_exit(0);
	}
	close(ready[1]);
	read_byte(ready[0]);
	scrm_db *db = tu_open(path, 0);
	long long seen = 0, reads = 0;
	int status = 0;
	for (;;) {
		long long n = user_rows(db);
		ck_assert_msg(n % MP_ROWS == 0, "read %lld rows: a batch was seen half-written", n);
		ck_assert_int_ge(n, seen); /* never goes back */
		seen = n;
		reads++;
		pid_t w = waitpid(pid, &status, WNOHANG);
		ck_assert_int_ge(w, 0);
		if (w == pid)
			break;
	}
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	ck_assert_int_eq(user_rows(db), MP_BATCHES * MP_ROWS);
	ck_assert_int_gt(reads, 0);
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
	close(ready[0]);
}
END_TEST

/* --------------------------------------------------------- crash safety */

/* A child commits one row, then writes many rows in a batch (enough to
 * spill into the WAL) and is killed with SIGKILL before committing: the
 * file holds exactly the committed row and passes integrity_check. */
START_TEST(test_kill9_before_commit)
{
	const char *path = tu_path("crash.db");
	create_db(path);
	int ready[2];
	ck_assert_int_eq(pipe(ready), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		alarm(60); /* SIGKILL is expected long before */
		close(ready[0]);
		scrm_db *db = NULL;
		CHILD_CHECK(scrm_db_open(path, NULL, &db) == SCRM_OK, 2);
		CHILD_CHECK(tu_sql(db, "INSERT INTO scrm_meta VALUES('committed', 'v')") == SQLITE_OK, 3);
		CHILD_CHECK(tu_sql(db, "PRAGMA cache_size = 16") == SQLITE_OK, 4);
		CHILD_CHECK(scrm_db_begin(db) == SCRM_OK, 5);
		CHILD_CHECK(scrm_db_begin(db) == SCRM_OK, 6);
		for (int i = 0; i < 5000; i++) {
			char sql[160];
			snprintf(sql, sizeof sql,
				 "INSERT INTO scrm_meta VALUES('lost-%d', hex(randomblob(40)))", i);
			CHILD_CHECK(tu_sql(db, sql) == SQLITE_OK, 7);
		}
		CHILD_CHECK(scrm_db_commit(db) == SCRM_OK, 8); /* inner only */
		char c = 'w';
		CHILD_CHECK(write(ready[1], &c, 1) == 1, 9);
		for (;;)
			pause(); /* wait for SIGKILL, the outer batch still open */
	}
	close(ready[1]);
	char c;
	ssize_t got = read(ready[0], &c, 1);
	char wal[4300];
	snprintf(wal, sizeof wal, "%s-wal", path);
	struct stat st;
	off_t wal_size = stat(wal, &st) == 0 ? st.st_size : -1;
	kill(pid, SIGKILL); /* first, so no assertion below can leave it running */
	int status = wait_child(pid);
	close(ready[0]);
	ck_assert_msg(got == 1, "child failed before the kill (status %d)", status);
	ck_assert(WIFSIGNALED(status));
	ck_assert_int_eq(WTERMSIG(status), SIGKILL);
	/* The uncommitted batch had spilled pages into the WAL: the kill hit a
	 * file with half a transaction in it, not just a private cache. */
	ck_assert_msg(wal_size > 256 * 1024, "WAL was %lld bytes at the kill", (long long)wal_size);

	scrm_db *db = tu_open(path, 0);
	ck_assert(has(db, "committed"));
	ck_assert_int_eq(meta_rows(db), 1);
	ck_assert_int_eq(user_rows(db), 1);
	/* The handle works normally after recovery. */
	put(db, "after-crash");
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
	ck_assert_str_eq(tu_sql_file_text(path, "PRAGMA integrity_check"), "ok");
	ck_assert_str_eq(tu_sql_file_text(path, "SELECT count(*) FROM scrm_meta WHERE key NOT LIKE '%.%'"), "2");
}
END_TEST

/* -------------------------------------------------------------- info */

START_TEST(test_info_json)
{
	/* A path that needs JSON escaping. */
	const char *path = tu_path("we\"ird\\name 小明.db");
	scrm_db *db = tu_open(path, SCRM_OPEN_CREATE);
	cJSON *j = info(db);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "path");
	ck_assert(cJSON_IsString(p));
	ck_assert_str_eq(p->valuestring, path);
	const cJSON *sv = cJSON_GetObjectItemCaseSensitive(j, "schema_version");
	ck_assert(cJSON_IsNumber(sv));
	ck_assert_int_eq(sv->valueint, scrm_schema_version());
	const cJSON *lv = cJSON_GetObjectItemCaseSensitive(j, "library_version");
	ck_assert(cJSON_IsString(lv));
	ck_assert_str_eq(lv->valuestring, scrm_version());
	const cJSON *tables = cJSON_GetObjectItemCaseSensitive(j, "tables");
	ck_assert(cJSON_IsObject(tables));
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(tables, "scrm_meta");
	ck_assert(cJSON_IsNumber(meta));
	ck_assert_int_eq(user_rows(db), 0);
	/* SQLite's own tables are not listed. */
	const cJSON *t;
	cJSON_ArrayForEach(t, tables)
		ck_assert_msg(strncmp(t->string, "sqlite_", 7) != 0, "lists %s", t->string);
	cJSON_Delete(j);

	put(db, "a");
	put(db, "b");
	put(db, "c");
	ck_assert_int_eq(user_rows(db), 3);

	/* Inside a batch it reads the batch's own state. */
	tu_assert_ok(db, scrm_db_begin(db));
	put(db, "d");
	ck_assert_int_eq(user_rows(db), 4);
	ck_assert_int_eq(scrm_db_batch_depth(db), 1);
	tu_assert_ok(db, scrm_db_rollback(db));
	ck_assert_int_eq(user_rows(db), 3);

	char *out = (char *)"sentinel";
	ck_assert_int_eq(scrm_db_info_json(db, NULL), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(db), "out is NULL");
	ck_assert_int_eq(scrm_db_info_json(NULL, &out), SCRM_MISUSE);
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

START_TEST(test_info_json_memory)
{
	scrm_db *db = tu_open(":memory:", SCRM_OPEN_CREATE);
	cJSON *j = info(db);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "path")->valuestring, ":memory:");
	cJSON_Delete(j);
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

/* ---------------------------------------------------- fault injection */

/* Fail the 1st, 2nd, ... library allocation of scrm_db_info_json until it
 * succeeds; each failure is SCRM_NOMEM with a message, hands out nothing,
 * leaves no transaction open and leaks nothing (valgrind/ASan check that). */
static int info_json_oom_loop(scrm_db *db)
{
	long nth;
	for (nth = 1; nth < 1000; nth++) {
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		char *out = (char *)"sentinel";
		int rc = scrm_db_info_json(db, &out);
		if (rc == SCRM_OK) {
			/* Fewer allocations than nth: disarm before going on. */
			tu_assert_ok(db, scrm_db_test_alloc_fail(db, 0));
			cJSON *j = cJSON_Parse(out);
			ck_assert_ptr_nonnull(j);
			cJSON_Delete(j);
			scrm_free(out);
			break;
		}
		ck_assert_msg(rc == SCRM_NOMEM, "allocation %ld failing gave %d (%s): %s", nth, rc,
			      scrm_errstr(rc), scrm_errmsg(db));
		ck_assert_ptr_null(out);
		ck_assert_int_eq(scrm_errcode(db), SCRM_NOMEM);
		tu_assert_contains(scrm_errmsg(db), "out of memory");
		ck_assert(sqlite3_get_autocommit(scrm__sqlite(db)));
		ck_assert_int_eq(scrm_db_batch_depth(db), 0);
		/* The injected failure was used up: the next call works. */
		ck_assert_int_eq(user_rows(db), 0);
	}
	ck_assert_int_lt(nth, 1000);
	return (int)nth - 1; /* failures seen */
}

START_TEST(test_info_json_alloc_fail_fresh)
{
	/* A fresh handle per step, so first-use allocations (statement cache)
	 * are failed too. */
	int failures = 0;
	for (long nth = 1; nth < 100; nth++) {
		scrm_db *db = tu_open(tu_path("oom.db"), SCRM_OPEN_CREATE);
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		char *out = NULL;
		int rc = scrm_db_info_json(db, &out);
		if (rc == SCRM_OK) {
			scrm_free(out);
			ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
			break;
		}
		ck_assert_int_eq(rc, SCRM_NOMEM);
		ck_assert_ptr_null(out);
		tu_assert_contains(scrm_errmsg(db), "out of memory");
		/* The handle still works after the failure. */
		ck_assert_int_eq(user_rows(db), 0);
		ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
		failures++;
	}
	ck_assert_int_ge(failures, 1);
}
END_TEST

START_TEST(test_info_json_alloc_fail_warm)
{
	scrm_db *db = tu_open(":memory:", SCRM_OPEN_CREATE);
	/* Enough output to need several buffer growths. */
	tu_assert_ok(db, scrm_db_begin(db));
	for (int i = 0; i < 40; i++) {
		char sql[160];
		snprintf(sql, sizeof sql,
			 "CREATE TABLE t_%02d_with_a_rather_long_name_to_grow_the_output(x)", i);
		ck_assert_int_eq(tu_sql(db, sql), SQLITE_OK);
	}
	tu_assert_ok(db, scrm_db_commit(db));
	char *warm = NULL;
	tu_assert_ok(db, scrm_db_info_json(db, &warm));
	ck_assert_uint_gt(strlen(warm), 1024);
	scrm_free(warm);
	ck_assert_int_ge(info_json_oom_loop(db), 3);

	/* Inside a batch: a failure rolls back only its own read, not the batch. */
	tu_assert_ok(db, scrm_db_begin(db));
	put(db, "in-batch");
	tu_assert_ok(db, scrm_db_test_alloc_fail(db, 1));
	char *out = NULL;
	ck_assert_int_eq(scrm_db_info_json(db, &out), SCRM_NOMEM);
	ck_assert_int_eq(scrm_db_batch_depth(db), 1);
	ck_assert(has(db, "in-batch"));
	tu_assert_ok(db, scrm_db_commit(db));
	ck_assert(has(db, "in-batch"));
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

/* scrm_db_open with its handle-less allocations failing one by one. */
START_TEST(test_open_alloc_fail)
{
	int failures = 0;
	for (long nth = 1; nth < 100; nth++) {
		scrm__test_alloc_fail(nth);
		scrm_db *db = (scrm_db *)&db;
		int rc = scrm_db_open(tu_path("oom-open.db"), NULL, &db);
		scrm__test_alloc_fail(0);
		if (rc == SCRM_OK) {
			ck_assert_ptr_nonnull(db);
			ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
			break;
		}
		ck_assert_int_eq(rc, SCRM_NOMEM);
		ck_assert_ptr_null(db);
		ck_assert_int_eq(scrm_errcode(NULL), SCRM_NOMEM);
		tu_assert_contains(scrm_errmsg(NULL), "out of memory");
		failures++;
	}
	ck_assert_int_ge(failures, 1);
}
END_TEST

START_TEST(test_alloc_fail_null_handle)
{
	ck_assert_int_eq(scrm_db_test_alloc_fail(NULL, 1), SCRM_MISUSE);
}
END_TEST

/* ------------------------------------------------------------ NULL handle */

START_TEST(test_null_handle_everywhere)
{
	char *out = (char *)"sentinel";
	const struct {
		const char *what;
		int rc;
	} calls[] = {
		{"scrm_db_begin", scrm_db_begin(NULL)},
		{"scrm_db_commit", scrm_db_commit(NULL)},
		{"scrm_db_rollback", scrm_db_rollback(NULL)},
		{"scrm_db_info_json", scrm_db_info_json(NULL, &out)},
		{"scrm_db_set_clock", scrm_db_set_clock(NULL, tu_clock_fn, NULL)},
		{"scrm_db_set_log", scrm_db_set_log(NULL, tu_log_fn, NULL, SCRM_LOG_INFO)},
		{"scrm_db_test_alloc_fail", scrm_db_test_alloc_fail(NULL, 0)},
	};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(calls); i++)
		ck_assert_msg(calls[i].rc == SCRM_MISUSE, "%s(NULL) gave %d", calls[i].what,
			      calls[i].rc);
	ck_assert_int_eq(scrm_errcode(NULL), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(NULL), "handle is NULL");
	ck_assert_int_eq(scrm_db_batch_depth(NULL), 0);
	ck_assert_ptr_null(scrm_db_path(NULL));
	ck_assert_int_eq(scrm_db_close(NULL), SCRM_OK);

	/* scrm_db_now(NULL) falls back to the real clock rather than crashing. */
	int64_t before = tu_wall_ms();
	int64_t now = scrm_db_now(NULL);
	ck_assert_int_ge(now, before);
	ck_assert_int_le(now, tu_wall_ms());
}
END_TEST

/* The handle's error and the thread's are separate slots. */
START_TEST(test_error_slots_separate)
{
	scrm_db *db = tu_open(":memory:", SCRM_OPEN_CREATE);
	ck_assert_int_eq(scrm_db_commit(db), SCRM_MISUSE);
	scrm_db *dummy = (scrm_db *)&dummy;
	ck_assert_int_eq(open_with(tu_path("nope.db"), 0, 0, &dummy), SCRM_NOTFOUND);
	ck_assert_int_eq(scrm_errcode(db), SCRM_MISUSE);
	tu_assert_contains(scrm_errmsg(db), "no batch is open");
	ck_assert_int_eq(scrm_errcode(NULL), SCRM_NOTFOUND);
	/* A successful call on the handle resets its slot. */
	tu_assert_ok(db, scrm_db_begin(db));
	ck_assert_str_eq(scrm_errmsg(db), "not an error");
	tu_assert_ok(db, scrm_db_rollback(db));
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

static Suite *db_suite(void)
{
	Suite *s = suite_create("db");
	TCase *tc = tcase_create("options");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_add_test(tc, test_options_defaults_and_free);
	tcase_add_test(tc, test_options_null);
	tcase_add_test(tc, test_options_bad_values);
	tcase_add_test(tc, test_options_refusal_keeps_value);
	suite_add_tcase(s, tc);

	tc = tcase_create("open");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_add_test(tc, test_open_bad_arguments);
	tcase_add_test(tc, test_open_memory);
	tcase_add_test(tc, test_schema_version);
	tcase_add_test(tc, test_open_file_wal_fk);
	tcase_add_test(tc, test_reopen_keeps_data);
	tcase_add_test(tc, test_open_missing_without_create);
	tcase_add_test(tc, test_open_readonly_missing);
	tcase_add_test(tc, test_open_readonly_memory);
	tcase_add_test(tc, test_open_unopenable);
	tcase_add_test(tc, test_open_garbage);
	tcase_add_test(tc, test_open_text_file);
	tcase_add_test(tc, test_open_foreign_sqlite);
	tcase_add_test(tc, test_open_foreign_sqlite_untouched);
	tcase_add_test(tc, test_open_other_application_id);
	tcase_add_test(tc, test_open_newer_schema);
	tcase_add_test(tc, test_open_older_schema);
	tcase_add_test(tc, test_open_empty_file);
	tcase_add_test(tc, test_readonly);
	suite_add_tcase(s, tc);

	tc = tcase_create("hooks");
	tcase_add_test(tc, test_clock_hook);
	tcase_add_test(tc, test_log_hook_levels);
	tcase_add_test(tc, test_log_default_level);
	suite_add_tcase(s, tc);

	tc = tcase_create("batch");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_add_test(tc, test_batch_depth_and_misuse);
	tcase_add_test(tc, test_batch_nesting_limit);
	tcase_add_test(tc, test_inner_rollback_keeps_outer);
	tcase_add_test(tc, test_outer_rollback_undoes_inner_commit);
	tcase_add_test(tc, test_batch_isolation);
	tcase_add_test(tc, test_close_rolls_back);
	tcase_add_test(tc, test_internal_tx_atomic_call);
	tcase_add_test(tc, test_begin_inside_library_call);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_busy_no_wait);
	tcase_add_test(tc, test_busy_timeout_waits);
	tcase_add_test(tc, test_busy_wait_succeeds);
	tcase_add_test(tc, test_multiprocess_consistent);
	tcase_add_test(tc, test_kill9_before_commit);
	suite_add_tcase(s, tc);

	tc = tcase_create("info");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_info_json);
	tcase_add_test(tc, test_info_json_memory);
	tcase_add_test(tc, test_info_json_alloc_fail_fresh);
	tcase_add_test(tc, test_info_json_alloc_fail_warm);
	tcase_add_test(tc, test_open_alloc_fail);
	tcase_add_test(tc, test_alloc_fail_null_handle);
	suite_add_tcase(s, tc);

	tc = tcase_create("misuse");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_add_test(tc, test_null_handle_everywhere);
	tcase_add_test(tc, test_error_slots_separate);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(db_suite());
}
