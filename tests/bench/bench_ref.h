/*
 * A reference figure of the machine, not of libscrm: how long SQLite takes
 * to insert one row with a random key into an indexed table of an
 * in-memory database, the kind of work that dominates event ingest and
 * rule firing. The timed floors of SPEC.md move with the machine (the
 * same binary has measured twice as slow on one day as on another);
 * printing this line beside them lets a reader compare runs made on
 * different days. The best of three rounds of 100,000 rows, in ns.
 */
#ifndef SCRM_BENCH_REF_H
#define SCRM_BENCH_REF_H

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static double bench_ref_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Prints `ref_sqlite_insert_ns <ns> ns`; nothing when SQLite fails. */
static void bench_ref_print(void)
{
	enum { ROWS = 100000, ROUNDS = 3 };
	double best = 0;
	for (int round = 0; round < ROUNDS; round++) {
		sqlite3 *db = NULL;
		sqlite3_stmt *st = NULL;
		if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
		    sqlite3_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT);"
				     "CREATE INDEX t_k ON t(k); BEGIN",
				 NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_prepare_v2(db, "INSERT INTO t(k, v) VALUES (?1, 'view')", -1, &st, NULL) !=
			    SQLITE_OK) {
			sqlite3_close(db);
			return;
		}
		uint64_t x = 0x9E3779B97F4A7C15ull;
		double t0 = bench_ref_now_ns();
		for (int i = 0; i < ROWS; i++) {
			x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
			sqlite3_bind_int64(st, 1, (sqlite3_int64)(x >> 1));
			if (sqlite3_step(st) != SQLITE_DONE) {
				sqlite3_finalize(st);
				sqlite3_close(db);
				return;
			}
			sqlite3_reset(st);
		}
		double ns = (bench_ref_now_ns() - t0) / ROWS;
		sqlite3_finalize(st);
		sqlite3_close(db);
		if (round == 0 || ns < best)
			best = ns;
	}
	printf("ref_sqlite_insert_ns %.0f ns\n", best);
}

#endif
