/*
 * Fuzz target for events as JSON lines (scrm_profile_events_import), through
 * the public API only. The import stores its lines in batches, runs of
 * plain events sharing statements; it must come out as the same lines
 * added one by one. Every input starts from two fresh in-memory databases
 * with the same three customers (one with a member card) and clock, and,
 * for inputs of odd length, two rule tags (one flips on every event: the
 * import evaluates them once per customer of a run, which must come out as
 * after each event):
 *
 * - A imports the input in one call;
 * - B adds each non-blank line alone with scrm_profile_event_add_json(),
 *   after the same splitting (LF, a CR before it dropped, a line with a NUL
 *   refused).
 *
 * Invariants: the import either succeeds with a well-formed summary whose
 * counts are B's (stored, duplicate, rejected, lines) and whose listed
 * errors name B's line numbers and codes in order, or fails with a
 * documented code, a message, no summary and nothing stored; after a
 * success both databases hold the same rows (table by table counts) and
 * the same profile JSON for every customer B knows of.
 *
 * libFuzzer: configure with -Dfuzzing=true, then e.g.
 *   cp -r tests/fuzz/corpus/events /tmp/events-corpus
 *   build/tests/fuzz/events_libfuzzer -max_total_time=300 -timeout=10 \
 *       -dict=tests/fuzz/events.dict /tmp/events-corpus
 * and copy each crash input, minimised (-minimize_crash=1), into
 * tests/fuzz/corpus/events/.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz_tables.h"
#include "scrm/identity.h"
#include "scrm/profile.h"
#include "scrm/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "events_fuzzer: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                       \
			abort();                                                        \
		}                                                                       \
	} while (0)

#define INPUT_MAX 65536
#define LINES_MAX 512
#define T0 INT64_C(1767225600000)

static int64_t clock_fn(void *ud)
{
	(void)ud;
	return T0;
}

static scrm_db *fresh(bool tags)
{
	scrm_db *db = NULL;
	scrm_db_options *o = NULL;
	CHECK(scrm_db_options_new(&o) == SCRM_OK);
	CHECK(scrm_db_options_set_flags(o, SCRM_OPEN_CREATE) == SCRM_OK);
	CHECK(scrm_db_options_set_clock(o, clock_fn, NULL) == SCRM_OK);
	CHECK(scrm_db_open(":memory:", o, &db) == SCRM_OK);
	scrm_db_options_free(o);
	/* Customers 1-3; 2 has member card M2 (events may name it either way). */
	static const char *const cards[] = {"M1", "M2", "M3"};
	const char *kind = "member_card";
	for (int i = 0; i < 3; i++) {
		int64_t c = 0;
		CHECK(scrm_identity_observe(db, "seed", T0 - 1000, &kind, &cards[i], 1, &c, NULL) ==
		      SCRM_OK);
		CHECK(c == i + 1);
	}
	if (tags) {
		CHECK(scrm_tags_define(db, "{\"name\":\"odd\",\"expr\":"
					   "\"profile.figures.events % 2 == 1\"}") == SCRM_OK);
		CHECK(scrm_tags_define(db, "{\"name\":\"buyer\",\"expr\":"
					   "\"profile.figures.orders >= 1\"}") == SCRM_OK);
	}
	return db;
}

static bool documented(int rc)
{
	return rc == SCRM_INVALID || rc == SCRM_NOTFOUND || rc == SCRM_PARSE || rc == SCRM_RANGE ||
	       rc == SCRM_LIMIT || rc == SCRM_STATE || rc == SCRM_MISUSE || rc == SCRM_NOMEM;
}


static long long jnum(const cJSON *o, const char *name)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, name);
	CHECK(cJSON_IsNumber(n));
	return (long long)n->valuedouble;
}

typedef struct line_out {
	long long lineno;
	int rc;
} line_out;

static const char *code_name(int rc)
{
	switch (rc) {
	case SCRM_INVALID: return "SCRM_INVALID";
	case SCRM_NOTFOUND: return "SCRM_NOTFOUND";
	case SCRM_PARSE: return "SCRM_PARSE";
	case SCRM_RANGE: return "SCRM_RANGE";
	case SCRM_LIMIT: return "SCRM_LIMIT";
	case SCRM_STATE: return "SCRM_STATE";
	case SCRM_MISUSE: return "SCRM_MISUSE";
	default: return "?";
	}
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* B: the lines one by one; *failed when one failed for other reasons than
 * its content (then the import may fail too). */
static size_t one_by_one(scrm_db *db, const char *text, size_t len, line_out *out, bool *failed)
{
	size_t n = 0, pos = 0;
	char *line = malloc(len + 1);
	CHECK(line != NULL);
	*failed = false;
	CHECK(scrm_db_begin(db) == SCRM_OK);
	for (long long lineno = 1; pos < len; lineno++) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t k = nl ? (size_t)(nl - start) : len - pos;
		pos += k + (nl ? 1 : 0);
		if (blank(start, k))
			continue;
		if (k && start[k - 1] == '\r')
			k--;
		memcpy(line, start, k);
		line[k] = '\0';
		int rc = memchr(start, '\0', k) ? SCRM_INVALID : scrm_profile_event_add_json(db, line, NULL, NULL);
		CHECK(rc == SCRM_OK || rc == SCRM_DUPLICATE || documented(rc));
		/* Not a refusal of the line: the import may fail as a whole. */
		if (rc == SCRM_MISUSE || rc == SCRM_NOMEM)
			*failed = true;
		CHECK(n < LINES_MAX);
		out[n++] = (line_out){lineno, rc};
	}
	free(line);
	int rc = scrm_db_commit(db);
	if (rc != SCRM_OK) {
		*failed = true;
		scrm_db_rollback(db);
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > INPUT_MAX)
		return 0;
	const char *text = (const char *)data;
	/* At most LINES_MAX lines: keep each input quick. */
	size_t nl = 0;
	for (size_t i = 0; i < size; i++)
		if (data[i] == '\n' && ++nl >= LINES_MAX - 1)
			return 0;
	bool tags = size % 2 == 1;
	scrm_db *a = fresh(tags), *b = fresh(tags);
	static line_out want[LINES_MAX];
	bool failed;
	size_t n = one_by_one(b, text, size, want, &failed);

	cJSON *before = fuzz_tables(a);
	char *sum = NULL;
	int rc = scrm_profile_events_import(a, text, size, &sum);
	if (rc != SCRM_OK) {
		/* Only what fails B too, or memory. */
		CHECK(documented(rc));
		CHECK(failed || rc == SCRM_NOMEM);
		CHECK(sum == NULL);
		const char *m = scrm_errmsg(a);
		CHECK(m && m[0] && strcmp(m, "not an error") != 0);
		cJSON *now = fuzz_tables(a);
		CHECK(cJSON_Compare(before, now, 1));
		cJSON_Delete(now);
		cJSON_Delete(before);
		scrm_db_close(a);
		scrm_db_close(b);
		return 0;
	}
	cJSON_Delete(before);
	CHECK(!failed);
	cJSON *s = cJSON_Parse(sum);
	CHECK(s != NULL);
	scrm_free(sum);
	long long stored = 0, dup = 0, rejected = 0;
	for (size_t i = 0; i < n; i++) {
		if (want[i].rc == SCRM_OK)
			stored++;
		else if (want[i].rc == SCRM_DUPLICATE)
			dup++;
		else
			rejected++;
	}
	CHECK(jnum(s, "lines") == (long long)n);
	CHECK(jnum(s, "stored") == stored);
	CHECK(jnum(s, "duplicate") == dup);
	CHECK(jnum(s, "rejected") == rejected);
	const cJSON *errs = cJSON_GetObjectItemCaseSensitive(s, "errors");
	CHECK(cJSON_IsArray(errs));
	CHECK(cJSON_GetArraySize(errs) == (int)(rejected < 100 ? rejected : 100));
	const cJSON *e = errs->child;
	for (size_t i = 0; i < n && e; i++) {
		if (want[i].rc == SCRM_OK || want[i].rc == SCRM_DUPLICATE)
			continue;
		CHECK(jnum(e, "line") == want[i].lineno);
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
		CHECK(cJSON_IsString(code) && strcmp(code->valuestring, code_name(want[i].rc)) == 0);
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
		CHECK(cJSON_IsString(msg) && msg->valuestring[0]);
		e = e->next;
	}
	cJSON_Delete(s);
	/* The same rows, and the same profiles. */
	cJSON *ta = fuzz_tables(a), *tb = fuzz_tables(b);
	CHECK(cJSON_Compare(ta, tb, 1));
	const cJSON *customers = cJSON_GetObjectItemCaseSensitive(tb, "customer");
	long long nc = cJSON_IsNumber(customers) ? (long long)customers->valuedouble : 3;
	for (long long c = 1; c <= nc; c++) {
		char *pa = NULL, *pb = NULL;
		int ra = scrm_profile_json(a, c, SCRM_PROFILE_UNMASKED, &pa);
		int rb = scrm_profile_json(b, c, SCRM_PROFILE_UNMASKED, &pb);
		CHECK(ra == rb);
		CHECK((pa == NULL) == (pb == NULL));
		if (pa)
			CHECK(strcmp(pa, pb) == 0);
		scrm_free(pa);
		scrm_free(pb);
	}
	cJSON_Delete(ta);
	cJSON_Delete(tb);
	scrm_db_close(a);
	scrm_db_close(b);
	return 0;
}

#define FUZZ_NAME "events"
#include "fuzz_main.h"
