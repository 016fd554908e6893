/*
 * Helpers shared by the Check suites (see testutil.h). They reach the
 * handle's SQLite connection through the internal core-int.h hooks.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core-int.h"
#include "testutil.h"

/* -------------------------------------------------------- temporary files */

static char tmpdir[4096];

void tu_tmpdir_setup(void)
{
	const char *base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	snprintf(tmpdir, sizeof tmpdir, "%s/scrm-test-XXXXXX", base);
	ck_assert_msg(mkdtemp(tmpdir) != NULL, "mkdtemp(%s): %s", tmpdir, strerror(errno));
}

void tu_tmpdir_teardown(void)
{
	if (tmpdir[0])
		tu_rmrf(tmpdir);
	tmpdir[0] = '\0';
}

const char *tu_tmpdir(void)
{
	ck_assert_msg(tmpdir[0], "tu_tmpdir_setup() was not run");
	return tmpdir;
}

const char *tu_path(const char *name)
{
	static char ring[8][4200];
	static unsigned next;
	char *p = ring[next++ % 8];
	snprintf(p, sizeof ring[0], "%s/%s", tu_tmpdir(), name);
	return p;
}

void tu_write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	ck_assert_msg(f != NULL, "fopen(%s): %s", path, strerror(errno));
	ck_assert_uint_eq(fwrite(data, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

bool tu_file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

void *tu_read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "fopen(%s): %s", path, strerror(errno));
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	size_t got;
	while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
		len += got;
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			ck_assert_ptr_nonnull(buf);
		}
	}
	fclose(f);
	*n = len;
	return buf;
}

int tu_rmrf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		size_t n = strlen(path) + strlen(e->d_name) + 2;
		char *child = malloc(n);
		if (!child) {
			rc = -1;
			break;
		}
		snprintf(child, n, "%s/%s", path, e->d_name);
		if (tu_rmrf(child) != 0)
			rc = -1;
		free(child);
	}
	closedir(d);
	if (rmdir(path) != 0)
		rc = -1;
	return rc;
}

/* ------------------------------------------------------------ fake clock */

int64_t tu_clock_fn(void *userdata)
{
	tu_clock *c = userdata;
	c->calls++;
	return c->now;
}

int64_t tu_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tu_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ----------------------------------------------------------- log capture */

void tu_log_fn(void *userdata, int level, const char *msg)
{
	tu_log *log = userdata;
	if (log->count < TU_LOG_MAX) {
		log->level[log->count] = level;
		snprintf(log->msg[log->count], TU_LOG_MSG, "%s", msg ? msg : "(null)");
	}
	log->count++;
}

void tu_log_reset(tu_log *log)
{
	memset(log, 0, sizeof *log);
}

int tu_log_find(const tu_log *log, int level, const char *needle)
{
	int n = log->count < TU_LOG_MAX ? log->count : TU_LOG_MAX;
	for (int i = 0; i < n; i++)
		if ((level == 0 || log->level[i] == level) && strstr(log->msg[i], needle))
			return i;
	return -1;
}

/* --------------------------------------------------------- handles, SQL */

scrm_db *tu_open(const char *path, unsigned int flags)
{
	scrm_db_options *o = NULL;
	ck_assert_int_eq(scrm_db_options_new(&o), SCRM_OK);
	ck_assert_int_eq(scrm_db_options_set_flags(o, flags), SCRM_OK);
	scrm_db *db = NULL;
	int rc = scrm_db_open(path, o, &db);
	scrm_db_options_free(o);
	ck_assert_msg(rc == SCRM_OK, "opening %s: %s: %s", path, scrm_errstr(rc), scrm_errmsg(NULL));
	ck_assert_ptr_nonnull(db);
	return db;
}

static sqlite3 *raw_open(const char *path, int flags)
{
	sqlite3 *sq = NULL;
	int rc = sqlite3_open_v2(path, &sq, flags, NULL);
	ck_assert_msg(rc == SQLITE_OK, "sqlite3_open_v2(%s): %s", path,
		      sq ? sqlite3_errmsg(sq) : sqlite3_errstr(rc));
	sqlite3_busy_timeout(sq, 5000);
	return sq;
}

void tu_sql_file(const char *path, const char *sql)
{
	sqlite3 *sq = raw_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	char *err = NULL;
	int rc = sqlite3_exec(sq, sql, NULL, NULL, &err);
	ck_assert_msg(rc == SQLITE_OK, "%s on %s: %s", sql, path, err ? err : sqlite3_errstr(rc));
	sqlite3_free(err);
	ck_assert_int_eq(sqlite3_close(sq), SQLITE_OK);
}

const char *tu_sql_file_text(const char *path, const char *sql)
{
	static char out[1024];
	sqlite3 *sq = raw_open(path, SQLITE_OPEN_READWRITE);
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(sq, sql, -1, &st, NULL);
	ck_assert_msg(rc == SQLITE_OK, "%s on %s: %s", sql, path, sqlite3_errmsg(sq));
	out[0] = '\0';
	rc = sqlite3_step(st);
	ck_assert_msg(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s on %s: %s", sql, path,
		      sqlite3_errmsg(sq));
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, sizeof out, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	ck_assert_int_eq(sqlite3_close(sq), SQLITE_OK);
	return out;
}

int tu_sql(scrm_db *db, const char *sql)
{
	return sqlite3_exec(scrm__sqlite(db), sql, NULL, NULL, NULL);
}

long long tu_sql_int(scrm_db *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(scrm__sqlite(db), sql, -1, &st, NULL);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(scrm__sqlite(db)));
	long long v = -1;
	rc = sqlite3_step(st);
	ck_assert_msg(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: %s", sql,
		      sqlite3_errmsg(scrm__sqlite(db)));
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* ---------------------------------------------------------------- runner */

int tu_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	/* Fork status is left at CK_FORK_GETENV: CK_FORK=no runs in-process. */
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
