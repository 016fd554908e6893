/*
 * Layout of the scrm_db handle. Private to lib/core: engines use the
 * accessors of core-int.h, never these fields.
 */
#ifndef SCRM_DB_INT_H
#define SCRM_DB_INT_H

#include "core-int.h"

#define SCRM_MAX_TX_DEPTH 32

#define SCRM_ERRMSG_MAX 512

typedef struct scrm_stmt_slot {
	const char *sql;       /* cache key: the static SQL text pointer */
	sqlite3_stmt *stmt;
} scrm_stmt_slot;

struct scrm_db_options {
	unsigned int flags;
	int busy_timeout_ms;
	scrm_clock_fn clock;
	void *clock_ud;
	scrm_log_fn log;
	void *log_ud;
	int log_level;
};

struct scrm_db {
	sqlite3 *sq;
	char *path;
	bool readonly;
	int batch_depth;       /* scrm_db_begin nesting */
	int tx_depth;          /* internal + batch nesting, for savepoint names */
	uint64_t tx_serial;    /* counts outermost transactions */
	uint64_t identity_gen; /* see scrm__identity_gen() */
	uint64_t config_gen;   /* see scrm__config_gen() */
	bool tx_write;         /* the outermost transaction holds the write lock */
	/* Unguarded levels (scrm__tx_begin_unguarded) open no savepoint; they
	 * remember the change count at entry to know whether a failure left
	 * writes behind. doomed: such a failure rolled the whole transaction
	 * back; the open levels unwind without SQL and refuse new calls. */
	bool tx_unguarded[SCRM_MAX_TX_DEPTH];
	int64_t tx_changes[SCRM_MAX_TX_DEPTH];
	bool doomed;

	scrm_clock_fn clock;
	void *clock_ud;
	scrm_log_fn log;
	void *log_ud;
	int log_level;

	long alloc_fail_countdown;

	int errcode;
	char errmsg[SCRM_ERRMSG_MAX];

	scrm_stmt_slot *stmts; /* open-addressing table keyed by SQL pointer */
	size_t nstmts, capstmts;

	struct {
		void *state;
		void (*destroy)(scrm_db *db, void *state);
	} engines[SCRM_ENGINE_COUNT_];
	/* scrm__after_commit requests of the open outermost transaction. */
	void (*after_commit[SCRM_ENGINE_COUNT_])(scrm_db *db);
	bool after_commit_any;
};

/* Error slot for handle-less calls (scrm_db_open, expression compile). */
int *scrm__tls_errcode(void);
char *scrm__tls_errmsg(void);

/* lib/core/schema.c */
int scrm__schema_migrate(scrm_db *db);

#endif /* SCRM_DB_INT_H */
