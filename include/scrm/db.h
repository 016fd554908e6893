/*
 * libscrm — the database handle: open/close, options, batching
 * (transactions), host hooks (clock, log) and the last error.
 */
#ifndef SCRM_DB_H
#define SCRM_DB_H

#include "scrm/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @file scrm/db.h
 *  @brief The database handle.
 *
 *  One scrm_db wraps one SQLite connection to one file. A handle is used by
 *  one thread at a time; several handles (in one or many processes) may use
 *  the same file at once, lock waits being bounded by the busy timeout.
 */

/** Opaque database handle. */
typedef struct scrm_db scrm_db;

/** Opaque open options (create with scrm_db_options_new()). */
typedef struct scrm_db_options scrm_db_options;

/** @name Open flags
 *  @{ */
#define SCRM_OPEN_CREATE   0x1u /**< Create the file if missing (default). */
#define SCRM_OPEN_READONLY 0x2u /**< Open read-only; no migration, writes fail with SCRM_READONLY. */
/** @} */

/** @name Log levels
 *  @{ */
#define SCRM_LOG_ERROR 1
#define SCRM_LOG_WARN  2
#define SCRM_LOG_INFO  3
#define SCRM_LOG_DEBUG 4
/** @} */

/** Clock hook: milliseconds since the Unix epoch, UTC. */
typedef int64_t (*scrm_clock_fn)(void *userdata);

/** Log hook. `msg` is valid only during the call. */
typedef void (*scrm_log_fn)(void *userdata, int level, const char *msg);

/** Default path used by the command-line tool. */
#define SCRM_DEFAULT_DB_PATH "scrm.db"

/** The schema version this library writes (PRAGMA user_version). */
SCRM_API int scrm_schema_version(void);

/**
 * Create an options object with defaults: flags SCRM_OPEN_CREATE, busy
 * timeout 5000 ms, real-time clock, no log hook.
 * @param out receives the object; release with scrm_db_options_free().
 * @return SCRM_OK, SCRM_MISUSE (out is NULL) or SCRM_NOMEM.
 */
SCRM_API int scrm_db_options_new(scrm_db_options **out);

/** Release an options object. NULL is a no-op. */
SCRM_API void scrm_db_options_free(scrm_db_options *opts);

/** Set open flags (SCRM_OPEN_*). @return SCRM_OK or SCRM_INVALID for unknown bits. */
SCRM_API int scrm_db_options_set_flags(scrm_db_options *opts, unsigned int flags);

/** Busy timeout in milliseconds (0 = fail at once with SCRM_BUSY).
 *  @return SCRM_OK or SCRM_RANGE when negative. */
SCRM_API int scrm_db_options_set_busy_timeout(scrm_db_options *opts, int ms);

/** Clock hook (NULL restores the real-time clock). */
SCRM_API int scrm_db_options_set_clock(scrm_db_options *opts, scrm_clock_fn fn, void *userdata);

/** Log hook and the most verbose level delivered (NULL fn disables logging). */
SCRM_API int scrm_db_options_set_log(scrm_db_options *opts, scrm_log_fn fn, void *userdata,
				     int max_level);

/**
 * Open (and create or migrate forward) a libscrm database.
 *
 * @param path file name, or ":memory:" for a private in-memory database.
 * @param opts options, or NULL for the defaults. Not retained.
 * @param out  receives the handle on success, NULL on failure.
 * @return SCRM_OK; SCRM_MISUSE (NULL path/out); SCRM_NOTFOUND (file missing
 *   and SCRM_OPEN_CREATE not set); SCRM_IO (cannot open); SCRM_CORRUPT (not
 *   a database); SCRM_SCHEMA (written by a newer libscrm, or older and opened
 *   read-only); SCRM_BUSY; SCRM_NOMEM. On failure the message is available
 *   from scrm_errmsg(NULL) on the same thread.
 */
SCRM_API int scrm_db_open(const char *path, const scrm_db_options *opts, scrm_db **out);

/**
 * Close a handle, rolling back an unfinished batch. NULL is a no-op.
 * @return SCRM_OK, or SCRM_BUSY if the connection could not be closed
 *   cleanly (the handle is released regardless).
 */
SCRM_API int scrm_db_close(scrm_db *db);

/** Path the handle was opened with (owned by the handle). */
SCRM_API const char *scrm_db_path(const scrm_db *db);

/** Replace the clock hook on an open handle (NULL restores real time). */
SCRM_API int scrm_db_set_clock(scrm_db *db, scrm_clock_fn fn, void *userdata);

/** Replace the log hook on an open handle. */
SCRM_API int scrm_db_set_log(scrm_db *db, scrm_log_fn fn, void *userdata, int max_level);

/** Current time according to the handle's clock hook (ms since epoch, UTC). */
SCRM_API int64_t scrm_db_now(scrm_db *db);

/**
 * Begin a batch. Batches nest: the outermost is a write transaction
 * (BEGIN IMMEDIATE), inner ones are savepoints. Every public call is atomic
 * on its own; a batch groups many for speed and all-or-nothing effect.
 *
 * Inside a batch, a call refused for its input (invalid value, unknown
 * kind, duplicate key, …) changes nothing and the batch goes on. A call
 * that fails after it began writing, for a reason outside its input (I/O
 * error, disk full, out of memory), rolls the whole batch back at once:
 * the hot paths (scrm_identity_observe, scrm_profile_event_add) keep no
 * per-call undo inside a batch, for speed. Until the batch is ended every
 * call fails with SCRM_STATE; scrm_db_commit() then returns SCRM_STATE and
 * scrm_db_rollback() SCRM_OK, and the file holds what it held before the
 * batch. Re-run the batch.
 * @return SCRM_OK, SCRM_BUSY, SCRM_READONLY, SCRM_MISUSE.
 */
SCRM_API int scrm_db_begin(scrm_db *db);

/** Commit the innermost batch. @return SCRM_OK, SCRM_MISUSE (none open), SCRM_BUSY, SCRM_IO,
 *  SCRM_STATE (the batch was rolled back after a failed call; see scrm_db_begin()). */
SCRM_API int scrm_db_commit(scrm_db *db);

/** Roll back the innermost batch. @return SCRM_OK or SCRM_MISUSE (none open). */
SCRM_API int scrm_db_rollback(scrm_db *db);

/** Depth of open batches (0 when none). */
SCRM_API int scrm_db_batch_depth(const scrm_db *db);

/**
 * Summary of the database as JSON:
 * `{"path":…,"schema_version":N,"library_version":"…","tables":{"name":rows,…}}`.
 * @param out receives a NUL-terminated string; release with scrm_free().
 */
SCRM_API int scrm_db_info_json(scrm_db *db, char **out);

/**
 * Message for the last failed call on `db` (or, with db NULL, for the last
 * failed handle-less call on this thread, such as scrm_db_open()). Owned by
 * the library, valid until the next call on the same handle. Never NULL:
 * "not an error" when the last call succeeded.
 */
SCRM_API const char *scrm_errmsg(const scrm_db *db);

/** Result code of the last failed call on `db` (NULL: this thread's handle-less slot). */
SCRM_API int scrm_errcode(const scrm_db *db);

/**
 * Testing hook: make the nth library allocation made through this handle
 * from now on fail with SCRM_NOMEM (1 = the next one); 0 disables. Allocations
 * made by SQLite itself are not counted.
 */
SCRM_API int scrm_db_test_alloc_fail(scrm_db *db, long nth);

#ifdef __cplusplus
}
#endif

#endif /* SCRM_DB_H */
