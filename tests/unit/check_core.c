/*
 * Check suite for lib/core basics: result codes and their names, the
 * version, scrm_free, the output buffer and the fault-injecting allocator.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "core-int.h"
#include "testutil.h"

/* The highest result code this suite knows; see the table below. */
#define LAST_CODE SCRM_DUPLICATE

/* Codes and the values the ABI fixes for them (never renumbered). */
static const struct {
	int code, value;
	const char *name;
} codes[] = {
	{SCRM_OK, 0, "SCRM_OK"},
	{SCRM_ERROR, 1, "SCRM_ERROR"},
	{SCRM_MISUSE, 2, "SCRM_MISUSE"},
	{SCRM_INVALID, 3, "SCRM_INVALID"},
	{SCRM_NOTFOUND, 4, "SCRM_NOTFOUND"},
	{SCRM_EXISTS, 5, "SCRM_EXISTS"},
	{SCRM_CONFLICT, 6, "SCRM_CONFLICT"},
	{SCRM_STATE, 7, "SCRM_STATE"},
	{SCRM_BUSY, 8, "SCRM_BUSY"},
	{SCRM_NOMEM, 9, "SCRM_NOMEM"},
	{SCRM_IO, 10, "SCRM_IO"},
	{SCRM_CORRUPT, 11, "SCRM_CORRUPT"},
	{SCRM_SCHEMA, 12, "SCRM_SCHEMA"},
	{SCRM_RANGE, 13, "SCRM_RANGE"},
	{SCRM_PARSE, 14, "SCRM_PARSE"},
	{SCRM_READONLY, 15, "SCRM_READONLY"},
	{SCRM_LIMIT, 16, "SCRM_LIMIT"},
	{SCRM_EVAL, 17, "SCRM_EVAL"},
	{SCRM_DUPLICATE, 18, "SCRM_DUPLICATE"},
};

/* ------------------------------------------------------------ error codes */

START_TEST(test_codes_are_stable)
{
	for (size_t i = 0; i < SCRM_ARRAY_LEN(codes); i++)
		ck_assert_msg(codes[i].code == codes[i].value, "%s is %d, the ABI fixes it at %d",
			      codes[i].name, codes[i].code, codes[i].value);
	ck_assert_int_eq(SCRM_ARRAY_LEN(codes), LAST_CODE + 1);
}
END_TEST

START_TEST(test_errstr_distinct_nonempty)
{
	const char *unknown = scrm_errstr(-1);
	ck_assert_str_eq(unknown, "unknown error");
	for (int a = 0; a <= LAST_CODE; a++) {
		const char *sa = scrm_errstr(a);
		ck_assert_ptr_nonnull(sa);
		ck_assert_msg(sa[0] != '\0', "scrm_errstr(%d) is empty", a);
		ck_assert_msg(strcmp(sa, unknown) != 0, "scrm_errstr(%d) is the unknown-code text", a);
		for (int b = a + 1; b <= LAST_CODE; b++)
			ck_assert_msg(strcmp(sa, scrm_errstr(b)) != 0,
				      "codes %d and %d share the name \"%s\"", a, b, sa);
	}
	ck_assert_str_eq(scrm_errstr(SCRM_OK), "not an error");
	ck_assert_str_eq(scrm_errstr(SCRM_NOTFOUND), "not found");
	ck_assert_str_eq(scrm_errstr(SCRM_BUSY), "database is busy");
	ck_assert_str_eq(scrm_errstr(SCRM_NOMEM), "out of memory");
}
END_TEST

START_TEST(test_errstr_unknown_codes)
{
	const int bad[] = {-1, -1000, LAST_CODE + 1, 100, 256, INT_MAX, INT_MIN};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(bad); i++)
		ck_assert_str_eq(scrm_errstr(bad[i]), "unknown error");
}
END_TEST

/* The handle-less error slot: set by failing handle-less calls, "not an
 * error" after success. */
START_TEST(test_errmsg_thread_slot)
{
	scrm__clear_error(NULL);
	ck_assert_int_eq(scrm_errcode(NULL), SCRM_OK);
	ck_assert_str_eq(scrm_errmsg(NULL), "not an error");

	ck_assert_int_eq(scrm__error(NULL, SCRM_INVALID, "value %d is %s", 42, "bad"),
			 SCRM_INVALID);
	ck_assert_int_eq(scrm_errcode(NULL), SCRM_INVALID);
	ck_assert_str_eq(scrm_errmsg(NULL), "value 42 is bad");

	/* No message: the code's name stands in. */
	scrm__error(NULL, SCRM_RANGE, NULL);
	ck_assert_str_eq(scrm_errmsg(NULL), "out of range");

	/* Long messages are truncated, never overflow. */
	char big[2000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	scrm__error(NULL, SCRM_LIMIT, "%s", big);
	size_t n = strlen(scrm_errmsg(NULL));
	ck_assert_uint_gt(n, 100);
	ck_assert_uint_lt(n, sizeof big - 1);

	scrm__clear_error(NULL);
	ck_assert_str_eq(scrm_errmsg(NULL), "not an error");
}
END_TEST

static void *set_error_in_thread(void *arg)
{
	(void)arg;
	scrm__error(NULL, SCRM_PARSE, "from the other thread");
	return NULL;
}

START_TEST(test_errmsg_thread_slot_is_per_thread)
{
	scrm__error(NULL, SCRM_NOTFOUND, "main thread message");
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, set_error_in_thread, NULL), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(scrm_errcode(NULL), SCRM_NOTFOUND);
	ck_assert_str_eq(scrm_errmsg(NULL), "main thread message");
}
END_TEST

/* SQLite results map to distinct scrm codes: above all, a lock is BUSY and
 * never CORRUPT, and extended codes map like their primary code. */
START_TEST(test_map_sqlite)
{
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_OK), SCRM_OK);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_DONE), SCRM_OK);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_ROW), SCRM_OK);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_BUSY), SCRM_BUSY);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_BUSY_SNAPSHOT), SCRM_BUSY);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_BUSY_RECOVERY), SCRM_BUSY);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_LOCKED), SCRM_BUSY);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_NOMEM), SCRM_NOMEM);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_IOERR_WRITE), SCRM_IO);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_CANTOPEN), SCRM_IO);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_FULL), SCRM_IO);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_CORRUPT), SCRM_CORRUPT);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_NOTADB), SCRM_CORRUPT);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_CONSTRAINT_UNIQUE), SCRM_CONFLICT);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_READONLY), SCRM_READONLY);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_TOOBIG), SCRM_LIMIT);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_MISUSE), SCRM_MISUSE);
	ck_assert_int_eq(scrm__map_sqlite(SQLITE_ERROR), SCRM_ERROR);
}
END_TEST

/* ---------------------------------------------------------------- version */

START_TEST(test_version_matches_headers)
{
	ck_assert_str_eq(scrm_version(), SCRM_VERSION_STRING);
	ck_assert_int_eq(scrm_version_number(), SCRM_VERSION_NUMBER);
	ck_assert_int_eq(SCRM_VERSION_NUMBER,
			 SCRM_VERSION_MAJOR * 10000 + SCRM_VERSION_MINOR * 100 + SCRM_VERSION_PATCH);
	char expect[64];
	snprintf(expect, sizeof expect, "%d.%d.%d", SCRM_VERSION_MAJOR, SCRM_VERSION_MINOR,
		 SCRM_VERSION_PATCH);
	ck_assert_str_eq(scrm_version(), expect);
	/* Two calls give the same static string. */
	ck_assert_ptr_eq(scrm_version(), scrm_version());
}
END_TEST

START_TEST(test_free_null)
{
	scrm_free(NULL);
	scrm__free(NULL);
	/* And memory from the library's allocator goes back through it. */
	char *p = scrm__strdup(NULL, "released with scrm_free");
	ck_assert_ptr_nonnull(p);
	scrm_free(p);
}
END_TEST

/* ------------------------------------------------------------ the buffer */

/* Finish `b` and compare with `expect`. */
static void buf_expect(scrm_buf *b, const char *expect)
{
	char *out = NULL;
	ck_assert_int_eq(scrm__buf_finish(b, &out), SCRM_OK);
	ck_assert_ptr_nonnull(out);
	ck_assert_str_eq(out, expect);
	scrm_free(out);
}

START_TEST(test_buf_empty_finish)
{
	scrm_buf b;
	scrm__buf_init(&b, NULL);
	/* An empty buffer still hands out a NUL-terminated string. */
	buf_expect(&b, "");
	scrm__buf_reset(&b); /* after finish: harmless */
}
END_TEST

START_TEST(test_buf_append_puts)
{
	scrm_buf b;
	scrm__buf_init(&b, NULL);
	scrm__buf_puts(&b, "abc");
	scrm__buf_append(&b, "defgh", 2);
	scrm__buf_append(&b, "", 0);
	ck_assert_uint_eq(b.len, 5);
	ck_assert_str_eq(b.data, "abcde");
	buf_expect(&b, "abcde");
	/* finish hands the data over: the buffer is empty and reusable. */
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	scrm__buf_puts(&b, "again");
	buf_expect(&b, "again");
}
END_TEST

START_TEST(test_buf_json_escaping)
{
	scrm_buf b;
	scrm__buf_init(&b, NULL);
	const char *in = "q\"b\\s/n\nr\rt\tc\x01\x1f\x7f 小明 🙂 end";
	scrm__buf_json_str(&b, in);
	buf_expect(&b,
		   "\"q\\\"b\\\\s/n\\nr\\rt\\tc\\u0001\\u001f\x7f 小明 🙂 end\"");

	/* What it writes is valid JSON that decodes to the input. */
	scrm__buf_init(&b, NULL);
	scrm__buf_puts(&b, "{\"k\":");
	scrm__buf_json_str(&b, in);
	scrm__buf_puts(&b, "}");
	char *out = NULL;
	ck_assert_int_eq(scrm__buf_finish(&b, &out), SCRM_OK);
	cJSON *j = cJSON_Parse(out);
	ck_assert_msg(j != NULL, "not valid JSON: %s", out);
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "k");
	ck_assert(cJSON_IsString(k));
	ck_assert_str_eq(k->valuestring, in);
	cJSON_Delete(j);
	scrm_free(out);
}
END_TEST

START_TEST(test_buf_json_every_control_char)
{
	for (int c = 1; c < 0x20; c++) {
		char in[2] = {(char)c, 0};
		scrm_buf b;
		scrm__buf_init(&b, NULL);
		scrm__buf_json_str(&b, in);
		char *out = NULL;
		ck_assert_int_eq(scrm__buf_finish(&b, &out), SCRM_OK);
		/* No raw control character survives. */
		for (const char *p = out; *p; p++)
			ck_assert_msg((unsigned char)*p >= 0x20, "raw 0x%02x in %s", c, out);
		char doc[64];
		snprintf(doc, sizeof doc, "[%s]", out);
		cJSON *j = cJSON_Parse(doc);
		ck_assert_msg(j != NULL, "0x%02x gave invalid JSON %s", c, out);
		ck_assert_str_eq(cJSON_GetArrayItem(j, 0)->valuestring, in);
		cJSON_Delete(j);
		scrm_free(out);
	}
}
END_TEST

START_TEST(test_buf_json_empty_string)
{
	scrm_buf b;
	scrm__buf_init(&b, NULL);
	scrm__buf_json_str(&b, "");
	buf_expect(&b, "\"\"");
}
END_TEST

/* printf output longer than the 256-byte stack buffer takes the growth path. */
START_TEST(test_buf_printf_growth)
{
	char big[1000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	for (int width = 250; width <= 262; width++) {
		scrm_buf b;
		scrm__buf_init(&b, NULL);
		scrm__buf_puts(&b, "<");
		scrm__buf_printf(&b, "%.*s|%d", width, big, width);
		char expect[1100];
		snprintf(expect, sizeof expect, "<%.*s|%d", width, big, width);
		ck_assert_uint_eq(b.len, strlen(expect));
		buf_expect(&b, expect);
	}

	scrm_buf b;
	scrm__buf_init(&b, NULL);
	scrm__buf_printf(&b, "%s", big);
	scrm__buf_printf(&b, "%s", big);
	scrm__buf_printf(&b, "-%lld", (long long)INT64_MAX);
	ck_assert_uint_eq(b.len, 2 * 999 + 20);
	ck_assert_uint_ge(b.cap, b.len + 1);
	ck_assert_int_eq(b.data[b.len], '\0');
	ck_assert_str_eq(b.data + 2 * 999, "-9223372036854775807");
	scrm__buf_reset(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(test_buf_many_small_appends)
{
	scrm_buf b;
	scrm__buf_init(&b, NULL);
	for (int i = 0; i < 100000; i++)
		scrm__buf_append(&b, &"0123456789"[i % 10], 1);
	ck_assert(!b.oom);
	ck_assert_uint_eq(b.len, 100000);
	for (int i = 0; i < 100000; i++)
		ck_assert_int_eq(b.data[i], '0' + i % 10);
	scrm__buf_reset(&b);
}
END_TEST

/* The first allocation fails: every later append is ignored (sticky), finish
 * reports SCRM_NOMEM with a message and hands out nothing. */
START_TEST(test_buf_oom_sticky)
{
	scrm__clear_error(NULL);
	scrm_buf b;
	scrm__buf_init(&b, NULL);
	scrm__test_alloc_fail(1);
	scrm__buf_puts(&b, "lost");
	ck_assert(b.oom);
	/* The allocator works again, but the buffer stays failed. */
	scrm__buf_puts(&b, "also lost");
	scrm__buf_printf(&b, "%d", 7);
	scrm__buf_json_str(&b, "x");
	ck_assert(b.oom);
	ck_assert_uint_eq(b.len, 0);
	char *out = (char *)"sentinel";
	ck_assert_int_eq(scrm__buf_finish(&b, &out), SCRM_NOMEM);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(scrm_errcode(NULL), SCRM_NOMEM);
	tu_assert_contains(scrm_errmsg(NULL), "out of memory");
	/* finish freed the data; reset makes the buffer usable again. */
	ck_assert_ptr_null(b.data);
	ck_assert(!b.oom);
	scrm__buf_puts(&b, "fresh");
	buf_expect(&b, "fresh");
}
END_TEST

/* Growth fails half-way: what was there is freed by finish, nothing leaks. */
START_TEST(test_buf_oom_on_growth)
{
	scrm_buf b;
	scrm__buf_init(&b, NULL);
	scrm__buf_puts(&b, "small");
	char big[600];
	memset(big, 'b', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	scrm__test_alloc_fail(1);
	scrm__buf_printf(&b, "%s", big);
	ck_assert(b.oom);
	ck_assert_uint_eq(b.len, 5);
	ck_assert_str_eq(b.data, "small"); /* the old block is intact until finish */
	scrm__buf_append(&b, big, 10);
	ck_assert_uint_eq(b.len, 5);
	char *out = NULL;
	ck_assert_int_eq(scrm__buf_finish(&b, &out), SCRM_NOMEM);
	ck_assert_ptr_null(out);
}
END_TEST

/* A buffer tied to a handle counts against the handle's fault injection and
 * reports the error on the handle. */
START_TEST(test_buf_oom_on_handle)
{
	scrm_db *db = tu_open(":memory:", SCRM_OPEN_CREATE);
	scrm__clear_error(NULL);
	scrm_buf b;
	scrm__buf_init(&b, db);
	ck_assert_int_eq(scrm_db_test_alloc_fail(db, 1), SCRM_OK);
	scrm__buf_puts(&b, "x");
	ck_assert(b.oom);
	char *out = NULL;
	ck_assert_int_eq(scrm__buf_finish(&b, &out), SCRM_NOMEM);
	ck_assert_int_eq(scrm_errcode(db), SCRM_NOMEM);
	tu_assert_contains(scrm_errmsg(db), "out of memory");
	ck_assert_int_eq(scrm_errcode(NULL), SCRM_OK); /* not the thread slot */
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

/* --------------------------------------------------------- the allocator */

START_TEST(test_alloc_basics)
{
	scrm__test_alloc_fail(0);
	void *p = scrm__malloc(NULL, 0); /* zero bytes still gives a pointer */
	ck_assert_ptr_nonnull(p);
	scrm__free(p);
	unsigned char *z = scrm__calloc(NULL, 16, 4);
	ck_assert_ptr_nonnull(z);
	for (int i = 0; i < 64; i++)
		ck_assert_int_eq(z[i], 0);
	z = scrm__realloc(NULL, z, 4096);
	ck_assert_ptr_nonnull(z);
	ck_assert_int_eq(z[63], 0);
	scrm__free(z);
	char *s = scrm__strndup(NULL, "abcdef", 3);
	ck_assert_str_eq(s, "abc");
	scrm__free(s);
	s = scrm__strdup(NULL, "");
	ck_assert_str_eq(s, "");
	scrm__free(s);
}
END_TEST

START_TEST(test_alloc_fail_nth)
{
	/* nth = 3: two succeed, the third fails, then allocations work again. */
	scrm__test_alloc_fail(3);
	void *a = scrm__malloc(NULL, 8);
	void *b = scrm__calloc(NULL, 1, 8);
	void *c = scrm__malloc(NULL, 8);
	void *d = scrm__malloc(NULL, 8);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(d);
	scrm__free(a);
	scrm__free(b);
	scrm__free(d);

	/* Every entry point honours it. */
	scrm__test_alloc_fail(1);
	ck_assert_ptr_null(scrm__calloc(NULL, 2, 2));
	scrm__test_alloc_fail(1);
	ck_assert_ptr_null(scrm__strdup(NULL, "x"));
	scrm__test_alloc_fail(1);
	ck_assert_ptr_null(scrm__strndup(NULL, "xyz", 2));

	/* A failed realloc leaves the old block alone. */
	char *p = scrm__strdup(NULL, "keep me");
	scrm__test_alloc_fail(1);
	ck_assert_ptr_null(scrm__realloc(NULL, p, 1 << 20));
	ck_assert_str_eq(p, "keep me");
	scrm__free(p);

	/* 0 and negative values disable it. */
	scrm__test_alloc_fail(2);
	scrm__test_alloc_fail(0);
	for (int i = 0; i < 5; i++) {
		void *q = scrm__malloc(NULL, 1);
		ck_assert_ptr_nonnull(q);
		scrm__free(q);
	}
	scrm__test_alloc_fail(-5);
	void *q = scrm__malloc(NULL, 1);
	ck_assert_ptr_nonnull(q);
	scrm__free(q);
}
END_TEST

struct thread_alloc {
	int ok;      /* allocations that succeeded in the thread */
	long arm;    /* if > 0, arm the thread's own injection first */
};

static void *alloc_in_thread(void *arg)
{
	struct thread_alloc *t = arg;
	if (t->arm)
		scrm__test_alloc_fail(t->arm);
	for (int i = 0; i < 3; i++) {
		void *p = scrm__malloc(NULL, 32);
		if (p)
			t->ok++;
		scrm__free(p);
	}
	return NULL;
}

/* Handle-less injection is per thread: arming it in one thread does not
 * make another thread's allocations fail, and vice versa. */
START_TEST(test_alloc_fail_per_thread)
{
	scrm__test_alloc_fail(1);
	struct thread_alloc t = {0, 0};
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, alloc_in_thread, &t), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(t.ok, 3);
	/* Still armed here. */
	ck_assert_ptr_null(scrm__malloc(NULL, 32));

	struct thread_alloc u = {0, 2};
	ck_assert_int_eq(pthread_create(&th, NULL, alloc_in_thread, &u), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(u.ok, 2); /* its own second allocation failed */
	void *p = scrm__malloc(NULL, 32);
	ck_assert_ptr_nonnull(p); /* ours is not armed by the other thread */
	scrm__free(p);
}
END_TEST

/* Injection through a handle counts only that handle's allocations. */
START_TEST(test_alloc_fail_per_handle)
{
	scrm_db *db = tu_open(":memory:", SCRM_OPEN_CREATE);
	scrm_db *other = tu_open(":memory:", SCRM_OPEN_CREATE);
	ck_assert_int_eq(scrm_db_test_alloc_fail(db, 2), SCRM_OK);
	void *a = scrm__malloc(other, 8); /* other handle: not counted */
	void *b = scrm__malloc(NULL, 8);  /* no handle: not counted */
	void *c = scrm__malloc(db, 8);    /* first on db */
	void *d = scrm__malloc(db, 8);    /* second on db: fails */
	void *e = scrm__malloc(db, 8);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_null(d);
	ck_assert_ptr_nonnull(e);
	scrm__free(a);
	scrm__free(b);
	scrm__free(c);
	scrm__free(e);
	ck_assert_int_eq(scrm_db_test_alloc_fail(db, 1), SCRM_OK);
	ck_assert_int_eq(scrm_db_test_alloc_fail(db, 0), SCRM_OK); /* disarm */
	void *f = scrm__malloc(db, 8);
	ck_assert_ptr_nonnull(f);
	scrm__free(f);
	ck_assert_int_eq(scrm_db_close(other), SCRM_OK);
	ck_assert_int_eq(scrm_db_close(db), SCRM_OK);
}
END_TEST

/* scrm_db_options_new fails cleanly at its allocation. */
START_TEST(test_alloc_fail_options_new)
{
	scrm_db_options *o = (scrm_db_options *)&o;
	scrm__test_alloc_fail(1);
	ck_assert_int_eq(scrm_db_options_new(&o), SCRM_NOMEM);
	ck_assert_ptr_null(o);
	ck_assert_int_eq(scrm_errcode(NULL), SCRM_NOMEM);
	tu_assert_contains(scrm_errmsg(NULL), "out of memory");
	ck_assert_int_eq(scrm_db_options_new(&o), SCRM_OK);
	scrm_db_options_free(o);
}
END_TEST

static void reset_injection(void)
{
	scrm__test_alloc_fail(0);
	scrm__clear_error(NULL);
}

static Suite *core_suite(void)
{
	Suite *s = suite_create("core");
	TCase *tc = tcase_create("errors");
	tcase_add_test(tc, test_codes_are_stable);
	tcase_add_test(tc, test_errstr_distinct_nonempty);
	tcase_add_test(tc, test_errstr_unknown_codes);
	tcase_add_test(tc, test_errmsg_thread_slot);
	tcase_add_test(tc, test_errmsg_thread_slot_is_per_thread);
	tcase_add_test(tc, test_map_sqlite);
	suite_add_tcase(s, tc);

	tc = tcase_create("version");
	tcase_add_test(tc, test_version_matches_headers);
	tcase_add_test(tc, test_free_null);
	suite_add_tcase(s, tc);

	tc = tcase_create("buffer");
	tcase_add_checked_fixture(tc, reset_injection, reset_injection);
	tcase_add_test(tc, test_buf_empty_finish);
	tcase_add_test(tc, test_buf_append_puts);
	tcase_add_test(tc, test_buf_json_escaping);
	tcase_add_test(tc, test_buf_json_every_control_char);
	tcase_add_test(tc, test_buf_json_empty_string);
	tcase_add_test(tc, test_buf_printf_growth);
	tcase_add_test(tc, test_buf_many_small_appends);
	tcase_add_test(tc, test_buf_oom_sticky);
	tcase_add_test(tc, test_buf_oom_on_growth);
	tcase_add_test(tc, test_buf_oom_on_handle);
	suite_add_tcase(s, tc);

	tc = tcase_create("alloc");
	tcase_add_checked_fixture(tc, reset_injection, reset_injection);
	tcase_add_test(tc, test_alloc_basics);
	tcase_add_test(tc, test_alloc_fail_nth);
	tcase_add_test(tc, test_alloc_fail_per_thread);
	tcase_add_test(tc, test_alloc_fail_per_handle);
	tcase_add_test(tc, test_alloc_fail_options_new);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(core_suite());
}
