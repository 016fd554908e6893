/*
 * Internal interface of lib/core: allocation, errors, statement cache,
 * transactions, clock and logging. Every engine talks to the database
 * handle through this header only; it never leaves lib/.
 */
#ifndef SCRM_CORE_INT_H
#define SCRM_CORE_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "scrm/common.h"
#include "scrm/db.h"

#if defined(__GNUC__)
#  define SCRM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#  define SCRM_UNUSED __attribute__((unused))
#else
#  define SCRM_PRINTF(a, b)
#  define SCRM_UNUSED
#endif

#define SCRM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------
 * Allocation. Everything the library allocates goes through here so that
 * tests can make the Nth allocation fail (per handle, or per thread for
 * calls that have no handle). `db` may be NULL.
 * ------------------------------------------------------------------- */
void *scrm__malloc(scrm_db *db, size_t n);
void *scrm__calloc(scrm_db *db, size_t count, size_t size);
void *scrm__realloc(scrm_db *db, void *p, size_t n);
char *scrm__strdup(scrm_db *db, const char *s);
char *scrm__strndup(scrm_db *db, const char *s, size_t n);
void scrm__free(void *p);

/* Per-thread fault injection for handle-less allocations (tests only):
 * the nth allocation from now fails, 0 disables. */
void scrm__test_alloc_fail(long nth);

/* ---------------------------------------------------------------------
 * Errors. scrm__error() records code + message on the handle (or in the
 * thread's handle-less slot when db is NULL) and returns the code, so it
 * reads `return scrm__error(db, SCRM_INVALID, "phone '%s' ...", v);`.
 * ------------------------------------------------------------------- */
int scrm__error(scrm_db *db, int code, const char *fmt, ...) SCRM_PRINTF(3, 4);
int scrm__verror(scrm_db *db, int code, const char *fmt, va_list ap) SCRM_PRINTF(3, 0);
void scrm__clear_error(scrm_db *db);
/* Translate a SQLite result (and the connection's message) into an scrm
 * error on the handle; `what` names the operation. Returns the scrm code. */
int scrm__sqlerr(scrm_db *db, int sqlite_rc, const char *what);
/* Map a SQLite primary result code to an scrm code. */
int scrm__map_sqlite(int sqlite_rc);

/* ---------------------------------------------------------------------
 * Growable string buffer (for JSON, DOT and trace output).
 * On allocation failure `oom` sticks and later appends are ignored.
 * ------------------------------------------------------------------- */
typedef struct scrm_buf {
	scrm_db *db;
	char *data;
	size_t len, cap;
	bool oom;
} scrm_buf;

void scrm__buf_init(scrm_buf *b, scrm_db *db);
void scrm__buf_append(scrm_buf *b, const char *s, size_t n);
void scrm__buf_puts(scrm_buf *b, const char *s);
void scrm__buf_printf(scrm_buf *b, const char *fmt, ...) SCRM_PRINTF(2, 3);
/* Append an integer in decimal (what "%lld" gives, without printf: the
 * rule engine writes several per event). */
void scrm__buf_int(scrm_buf *b, int64_t v);
/* Write v in decimal at out (room for 21 bytes, no NUL); returns the length. */
size_t scrm__fmt_int(char *out, int64_t v);
/* Append `s` as a JSON string literal (quoted, escaped). */
void scrm__buf_json_str(scrm_buf *b, const char *s);
/* Hand the buffer to the caller (NUL-terminated, release with scrm_free);
 * returns SCRM_NOMEM (and frees) if an append failed. */
int scrm__buf_finish(scrm_buf *b, char **out);
void scrm__buf_reset(scrm_buf *b);

/* ---------------------------------------------------------------------
 * The handle.
 * ------------------------------------------------------------------- */
sqlite3 *scrm__sqlite(scrm_db *db);
bool scrm__readonly(const scrm_db *db);

/* Cached prepared statement for a SQL text with static storage duration
 * (the pointer is the cache key). Reset and bindings cleared on return.
 * Returns NULL with the error set on the handle. */
sqlite3_stmt *scrm__stmt(scrm_db *db, const char *sql);

/* Run SQL without results (no user data in it). */
int scrm__exec(scrm_db *db, const char *sql);

/* Step a statement that returns no rows (or whose rows are ignored) and
 * reset it. */
int scrm__step_done(scrm_db *db, sqlite3_stmt *st, const char *what);

/* Every public call that writes wraps its work in tx_begin / tx_end so that
 * it is atomic on its own and nests inside a caller's batch:
 *     if ((rc = scrm__tx_begin(db)) != SCRM_OK) return rc;
 *     rc = work(db);
 *     return scrm__tx_end(db, rc);
 * tx_end commits (releases) on SCRM_OK and rolls back otherwise, keeping
 * the error message of the failed work. */
int scrm__tx_begin(scrm_db *db);
/* Same for calls that only read: a deferred transaction at the outermost
 * level (a consistent snapshot without taking the write lock). */
int scrm__tx_begin_read(scrm_db *db);
int scrm__tx_end(scrm_db *db, int rc);
/* For hot paths (observe, record an event) that do every check that can
 * fail on bad input before their first write. Inside an open transaction it
 * opens no savepoint: copying each touched page into the statement journal
 * cost ~30% of observe throughput. If the work then fails without having
 * changed a row, nothing needs undoing and the caller's batch goes on; if
 * it fails after writing (I/O, disk full, SQLite out of memory, a failed
 * listener) the whole transaction is rolled back at once and the batch is
 * doomed: scrm__tx_doomed() is true, later calls fail with SCRM_STATE, and
 * the batch must be ended (commit reports SCRM_STATE, rollback succeeds).
 * Outside a transaction it behaves exactly like scrm__tx_begin. Close it
 * with scrm__tx_end. */
int scrm__tx_begin_unguarded(scrm_db *db);
bool scrm__tx_doomed(const scrm_db *db);

/* Serial number of the open outermost transaction (0 when none). While it
 * stays the same, no other connection can have committed in between if the
 * transaction is a write transaction (scrm__tx_in_write). */
uint64_t scrm__tx_serial(const scrm_db *db);
/* A counter that changes whenever which customer an id resolves to (or
 * whether it is erased) may have changed on this handle: the identity
 * engine calls scrm__identity_changed() when it re-roots or erases, and
 * every rollback counts too. With scrm__tx_serial() it lets another engine
 * keep a lookup for the rest of a transaction. */
uint64_t scrm__identity_gen(const scrm_db *db);
void scrm__identity_changed(scrm_db *db);
/* The same for an engine's stored settings (the profile configuration):
 * the engine that writes them calls scrm__config_changed(), and every
 * rollback counts. A value read from the settings may be kept while
 * scrm__tx_in_write() holds and scrm__tx_serial() and this stay the same. */
uint64_t scrm__config_gen(const scrm_db *db);
void scrm__config_changed(scrm_db *db);
bool scrm__tx_in_write(const scrm_db *db);

/* Entry check for every public function taking a handle: non-NULL and
 * open. Clears the previous error. */
int scrm__enter(scrm_db *db);
/* Like scrm__enter, and refuses read-only handles with SCRM_READONLY. */
int scrm__enter_write(scrm_db *db);

/* Clock (milliseconds since the Unix epoch, UTC) from the handle's hook. */
int64_t scrm__now(scrm_db *db);

/* Log through the host callback (no-op without one). */
void scrm__log(scrm_db *db, int level, const char *fmt, ...) SCRM_PRINTF(3, 4);

/* Per-engine state hung on the handle (created lazily by the engine,
 * destroyed by its destructor when the handle closes). */
typedef enum scrm_engine_slot {
	SCRM_ENGINE_IDENTITY = 0,
	SCRM_ENGINE_PROFILE,
	SCRM_ENGINE_RULES,
	SCRM_ENGINE_TICKET,
	SCRM_ENGINE_SETTLE,
	SCRM_ENGINE_COUNT_
} scrm_engine_slot;

void *scrm__engine_get(scrm_db *db, scrm_engine_slot slot);
void scrm__engine_set(scrm_db *db, scrm_engine_slot slot, void *state,
		      void (*destroy)(scrm_db *db, void *state));

/* Ask for fn(db) to run once, right after the outermost transaction that is
 * open now commits (dropped if it rolls back); one request per engine slot,
 * repeated requests in one transaction are one. It runs outside any
 * transaction, before the public call that committed returns, and must
 * leave that call's result alone: it handles its own errors and ends with
 * the handle's error cleared. Used to hand committed outbox actions to a
 * host's delivery callback (lib/rules/outbox.c). */
void scrm__after_commit(scrm_db *db, scrm_engine_slot slot, void (*fn)(scrm_db *db));

/* scrm_meta (key TEXT PRIMARY KEY, value TEXT) holds small facts of the
 * engines; their keys are namespaced "engine.name" (e.g. identity.kinds_rev).
 *
 * Schema migrations: engine migrations are listed in lib/core/schema.c in
 * the order they were released; user_version counts them. */
typedef struct scrm_migration {
	int version;       /* user_version after this step */
	const char *sql;   /* one or more statements */
} scrm_migration;


/* ---------------------------------------------------------------------
 * Text helpers shared by the engines (lib/core/text.c).
 * ------------------------------------------------------------------- */
struct cJSON;

/* Parse JSON text; on failure sets SCRM_PARSE with "line L, column C". The
 * caller owns *root (cJSON_Delete). `what` names the input in messages. */
int scrm__json_parse(scrm_db *db, const char *text, const char *what, struct cJSON **root);

/* Fail with SCRM_INVALID naming the first member of `obj` not in the
 * NULL-terminated `allowed` list. */
int scrm__json_only(scrm_db *db, const struct cJSON *obj, const char *what,
		    const char *const *allowed);

/* An exactly integral JSON number in [min, max]. */
int scrm__json_int(scrm_db *db, const struct cJSON *item, const char *what, int64_t min,
		   int64_t max, int64_t *out);

/* True if s[0..n) is well-formed UTF-8 without NUL or C0 controls other
 * than tab/newline/carriage return. */
bool scrm__utf8_valid(const char *s, size_t n);

/* Bytes of the longest prefix of s, at most `max`, that ends on a UTF-8
 * character boundary: for quoting user text in messages as "%.*s". */
int scrm__utf8_clip(const char *s, int max);

/* Parse an RFC 3339 timestamp ("2026-11-22T10:00:00Z", "+08:00" offsets,
 * optional fraction) or a date "2026-11-22" (UTC midnight) into ms since
 * the epoch. Returns false when malformed. */
bool scrm__parse_time(const char *s, int64_t *ms);

/* Format ms since the epoch as "2026-11-22T10:00:00.000Z" (buf >= 32). */
void scrm__format_time(int64_t ms, char *buf, size_t size);

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
int64_t scrm__days_from_civil(int64_t y, unsigned m, unsigned d);

/* ---------------------------------------------------------------------
 * Cross-engine notifications (lib/core/notify.c). An engine that changes
 * something other engines keep derived state on (identity merges and
 * unmerges move events and profile figures) calls scrm__notify inside its
 * write transaction; core hands the note to a fixed list of listeners, in
 * order. A listener's error makes scrm__notify fail, and the caller's whole
 * call rolls back: derived state never disagrees with its source.
 * ------------------------------------------------------------------- */
typedef enum scrm_note_kind {
	SCRM_NOTE_MERGE = 1, /* root `absorbed` merged into root `survivor` */
	SCRM_NOTE_UNMERGE,   /* `absorbed` split off root `survivor` again */
	SCRM_NOTE_EVENT,     /* an event was stored (not for duplicates) */
	SCRM_NOTE_ATTR,      /* attributes of root `survivor` were set or unset */
	SCRM_NOTE_EVENTS     /* events of root `survivor` were stored together, no
			      * listener wanting each (see scrm__notify_wanted) */
} scrm_note_kind;

struct scrm_event;

typedef struct scrm_note {
	scrm_note_kind kind;
	int64_t log_id;   /* MERGE/UNMERGE: the merge_log entry; EVENT: the event id */
	int64_t survivor; /* MERGE: the survivor root; UNMERGE: the old root;
			   * EVENT: the event's canonical customer */
	int64_t absorbed; /* MERGE: the absorbed root; UNMERGE: the new root */
	/* EVENT: the event as recorded (struct scrm_event of scrm/profile.h,
	 * after defaults were applied); valid only during the call. */
	const struct scrm_event *event;
} scrm_note;

int scrm__notify(scrm_db *db, const scrm_note *note);

/* The listeners scrm__notify calls; each engine that keeps derived state
 * defines one (lib/core/notify.c lists them). */
int scrm__profile_on_note(scrm_db *db, const scrm_note *note);
int scrm__rules_on_note(scrm_db *db, const scrm_note *note);

/* How much the listeners need to see of an event (kind, survivor and the
 * event's type are read; the event may not be stored yet), the most any
 * of them needs:
 *   SCRM_WANT_NONE      nothing: the profile engine may record such events
 *                       several per statement without notifying;
 *   SCRM_WANT_CUSTOMER  only the customer's state after its events: it may
 *                       record several customers' events per statement and
 *                       then send one SCRM_NOTE_EVENTS per customer, in the
 *                       order they came — as long as no customer has two
 *                       events among them (the state between the two would
 *                       be skipped);
 *   SCRM_WANT_EACH      an SCRM_NOTE_EVENT per event, as it is stored.
 * Any other kind of note is always wanted. */
typedef enum scrm_want { SCRM_WANT_NONE = 0, SCRM_WANT_CUSTOMER, SCRM_WANT_EACH } scrm_want;
int scrm__notify_wanted(scrm_db *db, const scrm_note *note, scrm_want *want);

/* The profile engine's lifecycle thresholds (new, active, at-risk,
 * dormant) in ms, for the rule engine's SQL plans of profile.lifecycle:
 * kept for the rest of a write transaction like the rest of the profile
 * configuration (pf__config_get). */
int scrm__profile_lifecycle_ms(scrm_db *db, int64_t ms[4]);

/* The rule engine's answer: each event when an active rule is triggered,
 * started or cancelled by its type; else the customer when rule tags exist
 * (they read the profile, not the event). */
int scrm__rules_note_wanted(scrm_db *db, const scrm_note *note, scrm_want *want);

#endif /* SCRM_CORE_INT_H */
