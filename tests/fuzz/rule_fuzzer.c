/*
 * Fuzz target for rule definitions: the input is loaded as rules JSON (and
 * as rules configuration) into an in-memory database with tags, groups,
 * customers and profile attributes; when it loads, the rules are read
 * back, an event of each interesting type is stored, time-based work is
 * ticked, the trace is queried with its replayed conditions and the outbox
 * is taken — all inside a batch that is rolled back, so every input starts
 * from the same state. Without SCRM_LIBFUZZER a main() runs files or
 * directories of inputs, so the corpus doubles as a regression test.
 *
 * libFuzzer: configure with -Dfuzzing=true, then e.g.
 *   cp -r tests/fuzz/corpus/rule /tmp/rule-corpus
 *   build/tests/fuzz/rule_libfuzzer -max_total_time=600 -timeout=10 /tmp/rule-corpus
 * and copy each crash input, minimised (-minimize_crash=1), into
 * tests/fuzz/corpus/rule/.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scrm/identity.h"
#include "scrm/profile.h"
#include "scrm/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "rule_fuzzer: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                    \
			abort();                                                     \
		}                                                                    \
	} while (0)

#define T0 INT64_C(1767571200000)

static int64_t now_ms = T0;
static int64_t clock_fn(void *ud)
{
	(void)ud;
	return now_ms;
}

static scrm_db *db;
static int64_t cust;

static void setup(void)
{
	CHECK(scrm_db_open(":memory:", NULL, &db) == SCRM_OK);
	CHECK(scrm_db_set_clock(db, clock_fn, NULL) == SCRM_OK);
	CHECK(scrm_rules_config_set(db, "{\"groups\":{\"marketing\":{\"max\":2,\"per\":\"7d\"},"
					"\"weekly\":{\"max\":1,\"per\":\"week\",\"on_cap\":\"defer\"}}}") ==
	      SCRM_OK);
	CHECK(scrm_tags_group_set(db, "{\"name\":\"level\",\"exclusive\":true}") == SCRM_OK);
	CHECK(scrm_tags_define(db, "{\"name\":\"vip\",\"group\":\"level\"}") == SCRM_OK);
	CHECK(scrm_tags_define(db, "{\"name\":\"gold\",\"group\":\"level\"}") == SCRM_OK);
	CHECK(scrm_tags_define(db, "{\"name\":\"seen\"}") == SCRM_OK);
	const char *k = "phone", *v = "13800138000";
	CHECK(scrm_identity_observe(db, "pos", 0, &k, &v, 1, &cust, NULL) == SCRM_OK);
	CHECK(scrm_profile_set_json(db, cust, "{\"level\":\"gold\",\"birthday\":\"1990-01-06\","
					      "\"tz\":\"Asia/Tokyo\"}") == SCRM_OK);
	CHECK(scrm_profile_consent_set(db, cust, "marketing", 1, 0, "pos") == SCRM_OK);
}

static bool load_rc_ok(int rc)
{
	return rc == SCRM_OK || rc == SCRM_PARSE || rc == SCRM_INVALID || rc == SCRM_RANGE ||
	       rc == SCRM_NOTFOUND || rc == SCRM_LIMIT || rc == SCRM_CONFLICT || rc == SCRM_NOMEM;
}

static void event(const char *type, int n, const char *props)
{
	char json[512];
	snprintf(json, sizeof json,
		 "{\"key\":\"f%d\",\"type\":\"%s\",\"channel\":\"pos\",\"at\":%lld,\"customer\":%lld%s%s%s}",
		 n, type, (long long)now_ms, (long long)cust,
		 strcmp(type, "order") == 0 ? ",\"amount\":5000,\"currency\":\"CNY\"" : "",
		 props ? ",\"props\":" : "", props ? props : "");
	int rc = scrm_profile_event_add_json(db, json, NULL, NULL);
	CHECK(rc == SCRM_OK || rc == SCRM_NOMEM);
}

/* Exercise what the loaded rules do. */
static void exercise(void)
{
	char *out = NULL;
	CHECK(scrm_rules_list_json(db, &out) == SCRM_OK);
	scrm_free(out);
	static const char *const types[] = {"order", "view", "cart_add", "message", "refund_x"};
	int n = 0;
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		event(types[i], n++, "{\"sku\":\"A1\",\"store\":\"SH-01\",\"qty\":2}");
	now_ms += 3600000;
	event("order", n++, NULL);
	CHECK(scrm_rules_tick(db, now_ms + 4 * 86400000LL, &out) == SCRM_OK);
	scrm_free(out);
	CHECK(scrm_rules_tick(db, now_ms + 400 * 86400000LL, NULL) == SCRM_OK);
	CHECK(scrm_rules_trace_json(db, NULL, cust, 0, 0, SCRM_RULES_TRACE_STEPS, &out) == SCRM_OK);
	CHECK(out && out[0] == '[');
	scrm_free(out);
	CHECK(scrm_outbox_take(db, 100, 0, &out) == SCRM_OK);
	scrm_free(out);
	CHECK(scrm_tags_customer_json(db, cust, &out) == SCRM_OK);
	scrm_free(out);
	now_ms = T0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!db)
		setup();
	if (size > (1u << 20))
		return 0;
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	CHECK(scrm_db_begin(db) == SCRM_OK);
	char *rep = NULL;
	int rc = scrm_rules_load(db, text, &rep);
	CHECK(load_rc_ok(rc));
	CHECK((rc == SCRM_OK) == (rep != NULL));
	if (rc != SCRM_OK)
		CHECK(strlen(scrm_errmsg(db)) > 0 && strcmp(scrm_errmsg(db), "not an error") != 0);
	if (rc == SCRM_OK) {
		CHECK(strncmp(rep, "{\"rules\":[", 10) == 0);
		exercise();
	}
	scrm_free(rep);
	CHECK(scrm_db_rollback(db) == SCRM_OK);
	/* The same text as configuration. */
	CHECK(scrm_db_begin(db) == SCRM_OK);
	rc = scrm_rules_config_set(db, text);
	CHECK(load_rc_ok(rc));
	if (rc == SCRM_OK) {
		char *cfg = NULL;
		CHECK(scrm_rules_config_json(db, &cfg) == SCRM_OK);
		scrm_free(cfg);
	}
	CHECK(scrm_db_rollback(db) == SCRM_OK);
	free(text);
	return 0;
}

#define FUZZ_NAME "rule"
#define FUZZ_AT_EXIT() scrm_db_close(db)
#include "fuzz_main.h"
