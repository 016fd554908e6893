/*
 * Helpers shared by the Check suites: temporary directories, a fake clock,
 * log capture, raw SQLite access to a database file, and the suite runner.
 */
#ifndef SCRM_TESTUTIL_H
#define SCRM_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <check.h>

#include "scrm/common.h"
#include "scrm/db.h"

/* ---------------------------------------------------------------- asserts */

/* Assert that `hay` (a string, possibly NULL) contains `needle`. */
#define tu_assert_contains(hay, needle)                                                     \
	do {                                                                                \
		const char *tu_h_ = (hay), *tu_n_ = (needle);                               \
		ck_assert_msg(tu_h_ && strstr(tu_h_, tu_n_), "expected \"%s\" to contain \"%s\"", \
			      tu_h_ ? tu_h_ : "(null)", tu_n_);                             \
	} while (0)

/* Assert a libscrm call returned `code`, showing the handle's message if not. */
#define tu_assert_rc(db, call, code)                                                        \
	do {                                                                                \
		int tu_rc_ = (call);                                                        \
		ck_assert_msg(tu_rc_ == (code), "%s returned %d (%s), expected %d (%s): %s", #call, \
			      tu_rc_, scrm_errstr(tu_rc_), (int)(code), scrm_errstr(code),  \
			      scrm_errmsg(db));                                             \
	} while (0)

#define tu_assert_ok(db, call) tu_assert_rc(db, call, SCRM_OK)

/* -------------------------------------------------------- temporary files */

/* A private temporary directory (under $TMPDIR or /tmp), created by
 * tu_tmpdir_setup() and removed with its contents by tu_tmpdir_teardown().
 * Use them as a checked fixture: tcase_add_checked_fixture(tc, tu_tmpdir_setup,
 * tu_tmpdir_teardown). */
void tu_tmpdir_setup(void);
void tu_tmpdir_teardown(void);
const char *tu_tmpdir(void);

/* Path of `name` inside the temporary directory. The result lives in a small
 * ring of static buffers (8 at a time). */
const char *tu_path(const char *name);

/* Create a file with exactly these bytes. */
void tu_write_file(const char *path, const void *data, size_t n);
bool tu_file_exists(const char *path);
/* Read a whole file; release with free(). *n receives the size. */
void *tu_read_file(const char *path, size_t *n);

/* Remove a directory tree (used by the fixture; usable on its own). */
int tu_rmrf(const char *path);

/* ------------------------------------------------------------ fake clock */

typedef struct tu_clock {
	int64_t now;   /* ms since the epoch returned by the hook */
	long calls;    /* how often the hook ran */
} tu_clock;

/* scrm_clock_fn over a tu_clock passed as userdata. */
int64_t tu_clock_fn(void *userdata);

/* Wall-clock ms since the epoch, and a monotonic ms counter for timing. */
int64_t tu_wall_ms(void);
int64_t tu_mono_ms(void);

/* ----------------------------------------------------------- log capture */

#define TU_LOG_MAX 64
#define TU_LOG_MSG 512

typedef struct tu_log {
	int count;                    /* messages received (may exceed TU_LOG_MAX) */
	int level[TU_LOG_MAX];
	char msg[TU_LOG_MAX][TU_LOG_MSG];
} tu_log;

/* scrm_log_fn that appends to a tu_log passed as userdata. */
void tu_log_fn(void *userdata, int level, const char *msg);
void tu_log_reset(tu_log *log);
/* Index of the first captured message containing `needle` at `level`
 * (level 0: any level), or -1. */
int tu_log_find(const tu_log *log, int level, const char *needle);

/* --------------------------------------------------------- handles, SQL */

/* Open `path` with the given flags (and default options otherwise); fails
 * the test on error. */
scrm_db *tu_open(const char *path, unsigned int flags);

/* Run SQL on a fresh raw SQLite connection to `path` (read-write, created
 * if missing); fails the test on error. */
void tu_sql_file(const char *path, const char *sql);
/* First column of the first row of `sql` on a raw connection to the
 * existing file `path`, as text in a static buffer ("" when NULL or no row). */
const char *tu_sql_file_text(const char *path, const char *sql);

/* Run SQL on the handle's own connection (inside its current batch); returns
 * the SQLite result code. */
int tu_sql(scrm_db *db, const char *sql);
/* First column of the first row of `sql` on the handle's connection as an
 * integer (-1 without a row); fails the test on a SQL error. */
long long tu_sql_int(scrm_db *db, const char *sql);

/* ---------------------------------------------------------------- runner */

/* Run a suite and return the process exit status (0 when all passed). Fork
 * mode follows Check's default, which honours CK_FORK=no (used under
 * valgrind). */
int tu_run_suite(Suite *s);

#endif /* SCRM_TESTUTIL_H */
