/*
 * The database handle: options, open/close, the prepared-statement cache,
 * transactions and savepoints, per-engine state, clock and log hooks.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core-int.h"
#include "db-int.h"

#define SCRM_DEFAULT_BUSY_MS 5000

/* ------------------------------------------------------------------ options */

SCRM_API int scrm_db_options_new(scrm_db_options **out)
{
	if (!out)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_db_options_new: out is NULL");
	*out = scrm__calloc(NULL, 1, sizeof **out);
	if (!*out)
		return scrm__error(NULL, SCRM_NOMEM, "out of memory allocating options");
	(*out)->flags = SCRM_OPEN_CREATE;
	(*out)->busy_timeout_ms = SCRM_DEFAULT_BUSY_MS;
	(*out)->log_level = SCRM_LOG_WARN;
	return SCRM_OK;
}

SCRM_API void scrm_db_options_free(scrm_db_options *opts)
{
	scrm__free(opts);
}

SCRM_API int scrm_db_options_set_flags(scrm_db_options *opts, unsigned int flags)
{
	if (!opts)
		return scrm__error(NULL, SCRM_MISUSE, "options object is NULL");
	if (flags & ~(SCRM_OPEN_CREATE | SCRM_OPEN_READONLY))
		return scrm__error(NULL, SCRM_INVALID, "unknown open flags 0x%x",
				   flags & ~(SCRM_OPEN_CREATE | SCRM_OPEN_READONLY));
	if ((flags & SCRM_OPEN_CREATE) && (flags & SCRM_OPEN_READONLY))
		return scrm__error(NULL, SCRM_INVALID,
				   "SCRM_OPEN_CREATE and SCRM_OPEN_READONLY exclude each other");
	opts->flags = flags;
	return SCRM_OK;
}

SCRM_API int scrm_db_options_set_busy_timeout(scrm_db_options *opts, int ms)
{
	if (!opts)
		return scrm__error(NULL, SCRM_MISUSE, "options object is NULL");
	if (ms < 0)
		return scrm__error(NULL, SCRM_RANGE, "busy timeout %d ms is negative", ms);
	opts->busy_timeout_ms = ms;
	return SCRM_OK;
}

SCRM_API int scrm_db_options_set_clock(scrm_db_options *opts, scrm_clock_fn fn, void *ud)
{
	if (!opts)
		return scrm__error(NULL, SCRM_MISUSE, "options object is NULL");
	opts->clock = fn;
	opts->clock_ud = ud;
	return SCRM_OK;
}

static int check_level(scrm_db *db, int level)
{
	if (level < 0 || level > SCRM_LOG_DEBUG)
		return scrm__error(db, SCRM_RANGE, "log level %d is not 0..%d", level, SCRM_LOG_DEBUG);
	return SCRM_OK;
}

SCRM_API int scrm_db_options_set_log(scrm_db_options *opts, scrm_log_fn fn, void *ud, int level)
{
	if (!opts)
		return scrm__error(NULL, SCRM_MISUSE, "options object is NULL");
	int rc = check_level(NULL, level);
	if (rc)
		return rc;
	opts->log = fn;
	opts->log_ud = ud;
	opts->log_level = level;
	return SCRM_OK;
}

/* -------------------------------------------------------------- hooks, time */

static int64_t real_clock(void *ud)
{
	(void)ud;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t scrm__now(scrm_db *db)
{
	return db->clock ? db->clock(db->clock_ud) : real_clock(NULL);
}

SCRM_API int64_t scrm_db_now(scrm_db *db)
{
	return db ? scrm__now(db) : real_clock(NULL);
}

void scrm__log(scrm_db *db, int level, const char *fmt, ...)
{
	if (!db || !db->log || level > db->log_level)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	db->log(db->log_ud, level, msg);
}

int scrm__enter(scrm_db *db)
{
	if (!db)
		return scrm__error(NULL, SCRM_MISUSE, "database handle is NULL");
	if (!db->sq)
		return scrm__error(db, SCRM_MISUSE, "database handle is closed");
	scrm__clear_error(db);
	return SCRM_OK;
}

int scrm__enter_write(scrm_db *db)
{
	int rc = scrm__enter(db);
	if (rc == SCRM_OK && db->readonly)
		rc = scrm__error(db, SCRM_READONLY, "database '%s' was opened read-only", db->path);
	return rc;
}

SCRM_API int scrm_db_set_clock(scrm_db *db, scrm_clock_fn fn, void *ud)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	db->clock = fn;
	db->clock_ud = ud;
	return SCRM_OK;
}

SCRM_API int scrm_db_set_log(scrm_db *db, scrm_log_fn fn, void *ud, int level)
{
	int rc = scrm__enter(db);
	if (rc || (rc = check_level(db, level)))
		return rc;
	db->log = fn;
	db->log_ud = ud;
	db->log_level = level;
	return SCRM_OK;
}

SCRM_API int scrm_db_test_alloc_fail(scrm_db *db, long nth)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	db->alloc_fail_countdown = nth > 0 ? nth : 0;
	return SCRM_OK;
}

SCRM_API const char *scrm_db_path(const scrm_db *db)
{
	return db ? db->path : NULL;
}

sqlite3 *scrm__sqlite(scrm_db *db) { return db->sq; }
bool scrm__readonly(const scrm_db *db) { return db->readonly; }

/* ------------------------------------------------------- statement cache */

static size_t slot_of(const char *sql, size_t cap)
{
	uintptr_t h = (uintptr_t)sql;
	h ^= h >> 17;
	h *= (uintptr_t)0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 7) & (cap - 1);
}

static bool stmt_table_grow(scrm_db *db)
{
	size_t cap = db->capstmts ? db->capstmts * 2 : 64;
	scrm_stmt_slot *t = scrm__calloc(db, cap, sizeof *t);
	if (!t)
		return false;
	for (size_t i = 0; i < db->capstmts; i++) {
		if (!db->stmts[i].sql)
			continue;
		size_t j = slot_of(db->stmts[i].sql, cap);
		while (t[j].sql)
			j = (j + 1) & (cap - 1);
		t[j] = db->stmts[i];
	}
	scrm__free(db->stmts);
	db->stmts = t;
	db->capstmts = cap;
	return true;
}

sqlite3_stmt *scrm__stmt(scrm_db *db, const char *sql)
{
	if (db->capstmts) {
		size_t j = slot_of(sql, db->capstmts);
		while (db->stmts[j].sql) {
			if (db->stmts[j].sql == sql) {
				sqlite3_stmt *st = db->stmts[j].stmt;
				sqlite3_reset(st);
				sqlite3_clear_bindings(st);
				return st;
			}
			j = (j + 1) & (db->capstmts - 1);
		}
	}
	if ((db->nstmts + 1) * 2 > db->capstmts && !stmt_table_grow(db)) {
		scrm__error(db, SCRM_NOMEM, "out of memory growing the statement cache");
		return NULL;
	}
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v3(db->sq, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK) {
		scrm__sqlerr(db, rc, "preparing statement");
		scrm__log(db, SCRM_LOG_ERROR, "cannot prepare: %s", sql);
		return NULL;
	}
	size_t j = slot_of(sql, db->capstmts);
	while (db->stmts[j].sql)
		j = (j + 1) & (db->capstmts - 1);
	db->stmts[j].sql = sql;
	db->stmts[j].stmt = st;
	db->nstmts++;
	return st;
}

int scrm__exec(scrm_db *db, const char *sql)
{
	char *err = NULL;
	int rc = sqlite3_exec(db->sq, sql, NULL, NULL, &err);
	if (rc != SQLITE_OK) {
		int code = scrm__error(db, scrm__map_sqlite(rc), "%s", err ? err : sqlite3_errstr(rc));
		sqlite3_free(err);
		return code;
	}
	return SCRM_OK;
}

int scrm__step_done(scrm_db *db, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
		sqlite3_reset(st);
		return SCRM_OK;
	}
	int code = scrm__sqlerr(db, rc, what);
	sqlite3_reset(st);
	return code;
}

/* ---------------------------------------------------------- transactions */

#define SP(n) "SAVEPOINT s" #n
#define RL(n) "RELEASE s" #n
#define RB(n) "ROLLBACK TO s" #n
#define TEN(M, d) M(d##0), M(d##1), M(d##2), M(d##3), M(d##4), M(d##5), M(d##6), M(d##7), M(d##8), M(d##9)
#define NAMES(M) M(0), M(1), M(2), M(3), M(4), M(5), M(6), M(7), M(8), M(9), TEN(M, 1), TEN(M, 2), M(30), M(31)
static const char *const sp_sql[SCRM_MAX_TX_DEPTH] = {NAMES(SP)};
static const char *const rl_sql[SCRM_MAX_TX_DEPTH] = {NAMES(RL)};
static const char *const rb_sql[SCRM_MAX_TX_DEPTH] = {NAMES(RB)};
static const char sql_begin[] = "BEGIN IMMEDIATE";
static const char sql_begin_read[] = "BEGIN";
static const char sql_commit[] = "COMMIT";
static const char sql_rollback[] = "ROLLBACK";

static int run_cached(scrm_db *db, const char *sql, const char *what)
{
	sqlite3_stmt *st = scrm__stmt(db, sql);
	if (!st)
		return db->errcode;
	return scrm__step_done(db, st, what);
}

static int tx_open(scrm_db *db, bool write, bool unguarded)
{
	if (db->tx_depth >= SCRM_MAX_TX_DEPTH)
		return scrm__error(db, SCRM_LIMIT, "transactions nested deeper than %d", SCRM_MAX_TX_DEPTH);
	if (db->doomed)
		return scrm__error(db, SCRM_STATE, "the batch was rolled back after a failed call; "
						   "end it with scrm_db_rollback()");
	int rc;
	int d = db->tx_depth;
	bool outermost = d == 0 || sqlite3_get_autocommit(db->sq);
	if (outermost) {
		bool w = write && !db->readonly;
		rc = run_cached(db, w ? sql_begin : sql_begin_read, "beginning a transaction");
		if (rc == SCRM_OK) {
			db->tx_serial++;
			db->tx_write = w;
		}
	} else if (unguarded) {
		rc = SCRM_OK;
	} else
		rc = run_cached(db, sp_sql[d], "opening a savepoint");
	if (rc == SCRM_OK) {
		db->tx_unguarded[d] = unguarded && !outermost;
		db->tx_changes[d] = sqlite3_total_changes64(db->sq);
		db->tx_depth++;
	}
	return rc;
}

void scrm__after_commit(scrm_db *db, scrm_engine_slot slot, void (*fn)(scrm_db *db))
{
	if (db->tx_depth == 0)
		return;
	db->after_commit[slot] = fn;
	db->after_commit_any = true;
}

static void after_commit_clear(scrm_db *db)
{
	if (!db->after_commit_any)
		return;
	memset(db->after_commit, 0, sizeof db->after_commit);
	db->after_commit_any = false;
}

/* Requests are taken off the handle before they run: a callback may call
 * the library (and commit) again. */
static void after_commit_run(scrm_db *db)
{
	if (!db->after_commit_any)
		return;
	void (*fns[SCRM_ENGINE_COUNT_])(scrm_db *);
	memcpy(fns, db->after_commit, sizeof fns);
	after_commit_clear(db);
	for (int i = 0; i < SCRM_ENGINE_COUNT_; i++)
		if (fns[i])
			fns[i](db);
}

/* Close the innermost level; commit or roll back. */
static int tx_close(scrm_db *db, bool commit)
{
	int d = --db->tx_depth;
	int rc;
	if (!commit || db->doomed) {
		db->identity_gen++; /* whatever was undone may have been a merge */
		db->config_gen++;   /* or a change of settings */
	}
	if (db->doomed) {
		/* Everything was rolled back already; unwind without SQL. */
		if (d == 0) {
			db->doomed = false;
			after_commit_clear(db);
		}
		return SCRM_OK;
	}
	if (d == 0) {
		if (sqlite3_get_autocommit(db->sq)) {
			after_commit_clear(db);
			return SCRM_OK; /* SQLite already rolled back (e.g. after SQLITE_FULL) */
		}
		if (commit) {
			rc = run_cached(db, sql_commit, "committing");
			if (rc == SCRM_OK)
				after_commit_run(db);
			else
				after_commit_clear(db);
			if (rc != SCRM_OK) {
				char keep[SCRM_ERRMSG_MAX];
				int code = db->errcode;
				memcpy(keep, db->errmsg, sizeof keep);
				if (!sqlite3_get_autocommit(db->sq))
					run_cached(db, sql_rollback, "rolling back");
				db->errcode = code;
				memcpy(db->errmsg, keep, sizeof keep);
			}
			return rc;
		}
		after_commit_clear(db);
		return run_cached(db, sql_rollback, "rolling back");
	}
	if (db->tx_unguarded[d]) {
		if (commit || sqlite3_total_changes64(db->sq) == db->tx_changes[d])
			return SCRM_OK;
		/* Writes without a savepoint to undo them: only the whole
		 * transaction can go. */
		if (!sqlite3_get_autocommit(db->sq))
			run_cached(db, sql_rollback, "rolling back");
		db->doomed = true;
		return SCRM_OK;
	}
	if (!commit) {
		rc = run_cached(db, rb_sql[d], "rolling back to a savepoint");
		if (rc != SCRM_OK)
			return rc;
	}
	return run_cached(db, rl_sql[d], "releasing a savepoint");
}

uint64_t scrm__identity_gen(const scrm_db *db)
{
	return db->identity_gen;
}

void scrm__identity_changed(scrm_db *db)
{
	db->identity_gen++;
}

uint64_t scrm__config_gen(const scrm_db *db)
{
	return db->config_gen;
}

void scrm__config_changed(scrm_db *db)
{
	db->config_gen++;
}

uint64_t scrm__tx_serial(const scrm_db *db)
{
	return db->tx_depth > 0 ? db->tx_serial : 0;
}

bool scrm__tx_in_write(const scrm_db *db)
{
	return db->tx_depth > 0 && db->tx_write;
}

int scrm__tx_begin(scrm_db *db)
{
	return tx_open(db, true, false);
}

int scrm__tx_begin_unguarded(scrm_db *db)
{
	return tx_open(db, true, true);
}

int scrm__tx_begin_read(scrm_db *db)
{
	/* Nested in a transaction, a read needs no savepoint: it has nothing
	 * to undo (and one that wrote after all would doom the batch, as an
	 * unguarded write does, rather than half-apply). Calls other engines
	 * make while an event is processed are mostly such reads. */
	return tx_open(db, false, true);
}

bool scrm__tx_doomed(const scrm_db *db)
{
	return db->doomed;
}

int scrm__tx_end(scrm_db *db, int rc)
{
	if (rc == SCRM_OK)
		return tx_close(db, true);
	/* Keep the message of the failed work, not of the rollback. */
	char keep[SCRM_ERRMSG_MAX];
	memcpy(keep, db->errmsg, sizeof keep);
	bool was_doomed = db->doomed;
	tx_close(db, false);
	db->errcode = rc;
	memcpy(db->errmsg, keep, sizeof keep);
	if (db->doomed && !was_doomed)
		scrm__log(db, SCRM_LOG_WARN, "batch rolled back: a call failed after writing: %s", keep);
	return rc;
}

SCRM_API int scrm_db_begin(scrm_db *db)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (db->batch_depth != db->tx_depth)
		return scrm__error(db, SCRM_MISUSE, "scrm_db_begin called from inside a library call");
	rc = tx_open(db, true, false);
	if (rc == SCRM_OK)
		db->batch_depth++;
	return rc;
}

static int batch_close(scrm_db *db, bool commit)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (db->batch_depth == 0)
		return scrm__error(db, SCRM_MISUSE, "no batch is open (scrm_db_begin was not called)");
	db->batch_depth--;
	if (db->doomed) {
		tx_close(db, false);
		if (commit)
			return scrm__error(db, SCRM_STATE, "the batch was rolled back after a call failed "
							   "while writing; nothing of it was committed");
		return SCRM_OK;
	}
	return tx_close(db, commit);
}

SCRM_API int scrm_db_commit(scrm_db *db) { return batch_close(db, true); }
SCRM_API int scrm_db_rollback(scrm_db *db) { return batch_close(db, false); }

SCRM_API int scrm_db_batch_depth(const scrm_db *db)
{
	return db ? db->batch_depth : 0;
}

/* ------------------------------------------------------------ engines */

void *scrm__engine_get(scrm_db *db, scrm_engine_slot slot)
{
	return db->engines[slot].state;
}

void scrm__engine_set(scrm_db *db, scrm_engine_slot slot, void *state,
		      void (*destroy)(scrm_db *db, void *state))
{
	db->engines[slot].state = state;
	db->engines[slot].destroy = destroy;
}

/* ------------------------------------------------------------ open/close */

static void db_release(scrm_db *db)
{
	for (int i = 0; i < SCRM_ENGINE_COUNT_; i++)
		if (db->engines[i].state && db->engines[i].destroy)
			db->engines[i].destroy(db, db->engines[i].state);
	for (size_t i = 0; i < db->capstmts; i++)
		if (db->stmts[i].stmt)
			sqlite3_finalize(db->stmts[i].stmt);
	scrm__free(db->stmts);
	db->stmts = NULL;
	db->capstmts = db->nstmts = 0;
}

SCRM_API int scrm_db_close(scrm_db *db)
{
	if (!db)
		return SCRM_OK;
	db_release(db);
	int rc = SCRM_OK;
	if (db->sq) {
		if (!sqlite3_get_autocommit(db->sq))
			sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
		if (sqlite3_close(db->sq) != SQLITE_OK) {
			sqlite3_close_v2(db->sq);
			rc = SCRM_BUSY;
		}
	}
	scrm__free(db->path);
	scrm__free(db);
	return rc;
}

/* Move a handle's error into the thread slot before the handle dies. */
static int fail_open(scrm_db *db, int rc)
{
	scrm__error(NULL, rc, "%s", db->errmsg[0] ? db->errmsg : scrm_errstr(rc));
	scrm_db_close(db);
	return rc;
}

SCRM_API int scrm_schema_version(void);

SCRM_API int scrm_db_open(const char *path, const scrm_db_options *opts, scrm_db **out)
{
	if (!out)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_db_open: out is NULL");
	*out = NULL;
	if (!path)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_db_open: path is NULL");
	if (!*path)
		return scrm__error(NULL, SCRM_INVALID, "scrm_db_open: path is empty");
	scrm_db_options defaults = {SCRM_OPEN_CREATE, SCRM_DEFAULT_BUSY_MS, NULL, NULL, NULL, NULL,
				    SCRM_LOG_WARN};
	if (!opts)
		opts = &defaults;
	bool memory = strcmp(path, ":memory:") == 0;
	bool readonly = (opts->flags & SCRM_OPEN_READONLY) != 0;
	if (!memory && !(opts->flags & SCRM_OPEN_CREATE) && access(path, F_OK) != 0)
		return scrm__error(NULL, errno == ENOENT ? SCRM_NOTFOUND : SCRM_IO,
				   "database file '%s' does not exist: %s", path, strerror(errno));
	if (memory && readonly)
		return scrm__error(NULL, SCRM_INVALID, "an in-memory database cannot be opened read-only");

	scrm_db *db = scrm__calloc(NULL, 1, sizeof *db);
	if (!db)
		return scrm__error(NULL, SCRM_NOMEM, "out of memory allocating the handle");
	db->readonly = readonly;
	db->clock = opts->clock;
	db->clock_ud = opts->clock_ud;
	db->log = opts->log;
	db->log_ud = opts->log_ud;
	db->log_level = opts->log_level;
	db->path = scrm__strdup(NULL, path);
	if (!db->path) {
		scrm__free(db);
		return scrm__error(NULL, SCRM_NOMEM, "out of memory copying the path");
	}

	int sflags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
		     SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
	int rc = sqlite3_open_v2(path, &db->sq, sflags, NULL);
	if (rc != SQLITE_OK) {
		if (!db->sq)
			scrm__error(db, SCRM_NOMEM, "out of memory opening '%s'", path);
		else
			scrm__error(db, scrm__map_sqlite(rc), "cannot open '%s': %s", path,
				    sqlite3_errmsg(db->sq));
		return fail_open(db, db->errcode);
	}
	sqlite3_busy_timeout(db->sq, opts->busy_timeout_ms);

	/* Check the file is ours (and migrate it) before changing its journal
	 * mode, so a foreign SQLite file opened by mistake is left untouched. */
	int code = scrm__schema_migrate(db);
	if (code)
		return fail_open(db, code);
	if (!readonly && !memory) {
		code = scrm__exec(db, "PRAGMA journal_mode=WAL");
		if (code)
			return fail_open(db, code);
	}
	code = scrm__exec(db, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=16384;");
	if (code)
		return fail_open(db, code);
	scrm__clear_error(db);
	scrm__clear_error(NULL);
	scrm__log(db, SCRM_LOG_INFO, "opened '%s' (schema %d)", path, scrm_schema_version());
	*out = db;
	return SCRM_OK;
}

/* ------------------------------------------------------------ info */

SCRM_API int scrm_db_info_json(scrm_db *db, char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_db_info_json: out is NULL");
	*out = NULL;
	if ((rc = scrm__tx_begin_read(db)))
		return rc;
	scrm_buf b;
	scrm__buf_init(&b, db);
	scrm__buf_puts(&b, "{\"path\":");
	scrm__buf_json_str(&b, db->path);
	int uv = 0;
	sqlite3_stmt *st = scrm__stmt(db, "PRAGMA user_version");
	if (!st) {
		rc = db->errcode;
		goto done;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		uv = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	scrm__buf_printf(&b, ",\"schema_version\":%d,\"library_version\":\"%s\",\"tables\":{", uv,
			 scrm_version());
	st = scrm__stmt(db, "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE "
			    "'sqlite\\_%' ESCAPE '\\' ORDER BY name");
	if (!st) {
		rc = db->errcode;
		goto done;
	}
	bool first = true;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		/* Table names come from the schema, not from user data. */
		char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", name);
		sqlite3_stmt *cnt = NULL;
		int prc = sql ? sqlite3_prepare_v2(db->sq, sql, -1, &cnt, NULL) : SQLITE_NOMEM;
		sqlite3_free(sql);
		if (prc != SQLITE_OK || sqlite3_step(cnt) != SQLITE_ROW) {
			rc = scrm__sqlerr(db, prc ? prc : sqlite3_errcode(db->sq), "counting rows");
			sqlite3_finalize(cnt);
			sqlite3_reset(st);
			goto done;
		}
		scrm__buf_printf(&b, "%s", first ? "" : ",");
		scrm__buf_json_str(&b, name);
		scrm__buf_printf(&b, ":%lld", (long long)sqlite3_column_int64(cnt, 0));
		sqlite3_finalize(cnt);
		first = false;
	}
	sqlite3_reset(st);
	if (s != SQLITE_DONE) {
		rc = scrm__sqlerr(db, s, "listing tables");
		goto done;
	}
	scrm__buf_puts(&b, "}}");
	rc = scrm__buf_finish(&b, out);
done:
	scrm__buf_reset(&b);
	return scrm__tx_end(db, rc);
}
