/*
 * Fuzz target for observations as JSON (scrm_identity_observe_json) and the
 * report it returns, through the public API only. Every input starts from
 * the same in-memory database: a few customers (two merged, two marked
 * never-merge) that inputs can attach to, merge or conflict with. Without
 * SCRM_LIBFUZZER a main() runs files or directories of inputs (the corpus
 * is a test).
 *
 * Each input is observed three ways, which must agree: inside a batch that
 * is rolled back; through the typed call with the same identifiers (when
 * the JSON is well-formed, parsed here independently); and on its own,
 * first with an allocation failure injected at every library allocation in
 * turn until the call gets through.
 *
 * Invariants: a call either succeeds with a well-formed report or fails
 * with one of the documented codes, a non-empty UTF-8 message, no report
 * and no change at all (every table's row count as before, also after an
 * allocation failure anywhere); on success the report's outcome, lists and
 * ids match what changed in the tables, every accepted identifier (raw and
 * as stored) resolves to the reported customer, a rejected one resolves to
 * nothing, a conflicting one to its owner, merged ids to the survivor, and
 * the customer's identifier list and explain view hold what was attached.
 *
 * libFuzzer: configure with -Dfuzzing=true, then e.g.
 *   cp -r tests/fuzz/corpus/observe /tmp/observe-corpus
 *   build/tests/fuzz/observe_libfuzzer -max_total_time=300 -timeout=10 \
 *       -dict=tests/fuzz/observe.dict /tmp/observe-corpus
 * and copy each crash input, minimised (-minimize_crash=1), into
 * tests/fuzz/corpus/observe/.
 */
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "fuzz_tables.h"
#include "scrm/identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a finding: crash so the fuzzer records it. */
#define CHECK(cond)                                                                     \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "observe_fuzzer: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                       \
			abort();                                                        \
		}                                                                       \
	} while (0)

#define OBSERVE_MAX 64 /* identifiers in one observation (identity.h) */
#define INPUT_MAX 16384
#define OOM_TRIES 400

#define T0 INT64_C(1767225600000)
static int64_t clock_fn(void *ud)
{
	(void)ud;
	return T0;
}

static const char *const custom[] = {
	"{\"name\":\"fz_fold\",\"normalizer\":\"casefold\",\"limit\":2,\"blocklist\":[\"test\"]}",
	"{\"name\":\"fz_card\",\"normalizer\":\"pattern\",\"limit\":1,"
	"\"pattern\":\"^(?:VIP-?)?(\\\\d{4,12})$\"}",
	"{\"name\":\"fz_one\",\"limit\":1}",
};

/* Kinds whose stored form need not normalize again (a pattern extracts). */
static bool pattern_kind(const char *kind)
{
	return strcmp(kind, "fz_card") == 0;
}

static scrm_db *db;
static bool dirty;

/* ------------------------------------------------------------ text checks */

static bool utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p;
		int n;
		unsigned min;
		if (c < 0x80) {
			p++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			n = 1, min = 0x80, c &= 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2, min = 0x800, c &= 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3, min = 0x10000, c &= 0x07;
		} else {
			return false;
		}
		p++;
		for (int i = 0; i < n; i++, p++) {
			if ((*p & 0xC0) != 0x80)
				return false;
			c = (c << 6) | (*p & 0x3F);
		}
		if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
			return false;
	}
	return true;
}

/* What the library accepts as text (core/text.c): UTF-8 without control
 * characters other than tab, CR and LF, and without DEL. */
static bool text_ok(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') || *p == 0x7f)
			return false;
	return utf8_ok(s);
}

static void check_error(int rc)
{
	CHECK(rc != SCRM_OK);
	CHECK(scrm_errcode(db) == rc);
	const char *m = scrm_errmsg(db);
	CHECK(m != NULL && m[0] != '\0');
	CHECK(strcmp(m, "not an error") != 0);
	CHECK(utf8_ok(m));
}

/* -------------------------------------------------------------- database */

static cJSON *tables(void)
{
	return fuzz_tables(db);
}

static long long rows(const cJSON *t, const char *table)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, table);
	CHECK(cJSON_IsNumber(n));
	return (long long)n->valuedouble;
}

static void same_tables(const cJSON *before)
{
	cJSON *now = tables();
	CHECK(cJSON_Compare(before, now, 1));
	cJSON_Delete(now);
}

static int64_t seed_obs(const char *const *kv)
{
	const char *k[8], *v[8];
	size_t n = 0;
	for (; kv[2 * n]; n++) {
		k[n] = kv[2 * n];
		v[n] = kv[2 * n + 1];
	}
	int64_t c = 0;
	CHECK(scrm_identity_observe(db, "seed", T0 - 1000, k, v, n, &c, NULL) == SCRM_OK);
	return c;
}
#define IDS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The state every input starts from. */
static void reset(void)
{
	if (db)
		scrm_db_close(db);
	scrm_db_options *o = NULL;
	CHECK(scrm_db_options_new(&o) == SCRM_OK);
	CHECK(scrm_db_options_set_clock(o, clock_fn, NULL) == SCRM_OK);
	CHECK(scrm_db_open(":memory:", o, &db) == SCRM_OK);
	scrm_db_options_free(o);
	for (size_t i = 0; i < sizeof custom / sizeof custom[0]; i++)
		CHECK(scrm_identity_kind_set(db, custom[i]) == SCRM_OK);
	CHECK(seed_obs(IDS("phone", "13800138000", "wechat_unionid", "o1", "email", "a@x.com")) == 1);
	CHECK(seed_obs(IDS("phone", "13900139000", "wechat_unionid", "o2", "member_card", "m2")) == 2);
	CHECK(seed_obs(IDS("member_card", "m3", "email", "c@x.com", "fz_one", "one3")) == 3);
	CHECK(seed_obs(IDS("phone", "13700137000", "fz_fold", "Four")) == 4);
	CHECK(scrm_identity_never_merge(db, 3, 4, "fuzz seed") == SCRM_OK);
	CHECK(seed_obs(IDS("tmall_buyer_nick", "nick5")) == 5);
	CHECK(seed_obs(IDS("wechat_openid", "w6")) == 6);
	CHECK(seed_obs(IDS("tmall_buyer_nick", "nick5", "wechat_openid", "w6")) == 5);
	CHECK(seed_obs(IDS("fz_card", "VIP-1234", "fz_fold", "Seven")) == 7);
	dirty = false;
}

/* ------------------------------------------------------- the JSON, again */

/* The observation as parsed here, independently of the library. */
typedef struct parsed {
	cJSON *root;
	bool ok;           /* well-formed as identity.h describes */
	bool at_known;     /* "at" absent or an integer in range */
	const char *channel;
	int64_t at;
	const char *kinds[OBSERVE_MAX], *values[OBSERVE_MAX];
	size_t n;
} parsed;

static void parse_input(const char *text, parsed *p)
{
	memset(p, 0, sizeof *p);
	if (!text_ok(text))
		return;
	p->root = cJSON_ParseWithOpts(text, NULL, 1);
	if (!cJSON_IsObject(p->root))
		return;
	const cJSON *it;
	cJSON_ArrayForEach(it, p->root)
	{
		if (strcmp(it->string, "channel") != 0 && strcmp(it->string, "at") != 0 &&
		    strcmp(it->string, "ids") != 0)
			return;
	}
	const cJSON *ch = cJSON_GetObjectItemCaseSensitive(p->root, "channel");
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(p->root, "at");
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(p->root, "ids");
	if (!cJSON_IsString(ch) || !cJSON_IsObject(ids))
		return;
	p->channel = ch->valuestring;
	if (!at) {
		p->at_known = true;
	} else if (cJSON_IsNumber(at)) {
		double d = at->valuedouble;
		if (!isfinite(d) || d != floor(d) || d < 0 || d > (double)(INT64_MAX / 2))
			return;
		p->at = (int64_t)d;
		if (p->at > INT64_MAX / 2)
			return;
		p->at_known = true;
	} else if (!cJSON_IsString(at)) {
		return;
	}
	cJSON_ArrayForEach(it, ids)
	{
		const cJSON *v = cJSON_IsArray(it) ? it->child : it;
		for (; v; v = cJSON_IsArray(it) ? v->next : NULL) {
			if (!cJSON_IsString(v) || p->n == OBSERVE_MAX)
				return;
			p->kinds[p->n] = it->string;
			p->values[p->n++] = v->valuestring;
		}
	}
	p->ok = true;
}

/* ---------------------------------------------------------------- report */

static const cJSON *field(const cJSON *o, const char *name)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
	CHECK(f != NULL);
	return f;
}

static int64_t num(const cJSON *o, const char *name)
{
	const cJSON *f = field(o, name);
	CHECK(cJSON_IsNumber(f) && f->valuedouble == floor(f->valuedouble));
	return (int64_t)f->valuedouble;
}

static const char *str(const cJSON *o, const char *name)
{
	const cJSON *f = field(o, name);
	CHECK(cJSON_IsString(f));
	return f->valuestring;
}

static const cJSON *find(const cJSON *list, const char *kind, const char *value)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, list)
	{
		if (strcmp(str(it, "kind"), kind) == 0 && strcmp(str(it, "value"), value) == 0)
			return it;
	}
	return NULL;
}

static int64_t canonical(int64_t id)
{
	int64_t s = 0;
	CHECK(scrm_identity_canonical(db, id, &s) == SCRM_OK);
	return s;
}

/* The report of a successful call on the state `before` describes it. */
static void check_success(const parsed *p, int64_t c, const char *report, const cJSON *before)
{
	CHECK(report != NULL && utf8_ok(report));
	cJSON *rep = cJSON_ParseWithOpts(report, NULL, 1);
	CHECK(cJSON_IsObject(rep));
	CHECK(num(rep, "customer") == c && c >= 1);
	CHECK(canonical(c) == c);
	int64_t obs = num(rep, "observation");
	CHECK(obs >= 0);
	const char *outcome = str(rep, "outcome");
	const cJSON *att = field(rep, "attached"), *mer = field(rep, "merged");
	const cJSON *con = field(rep, "conflicts"), *rej = field(rep, "rejected");
	CHECK(cJSON_IsArray(att) && cJSON_IsArray(mer) && cJSON_IsArray(con) && cJSON_IsArray(rej));
	int natt = cJSON_GetArraySize(att), nmer = cJSON_GetArraySize(mer);
	int ncon = cJSON_GetArraySize(con), nrej = cJSON_GetArraySize(rej);
	CHECK(natt + ncon + nrej <= OBSERVE_MAX);
	bool created = strcmp(outcome, "created") == 0, merged = strcmp(outcome, "merged") == 0;
	bool attached = strcmp(outcome, "attached") == 0;
	CHECK(created || merged || attached || strcmp(outcome, "unchanged") == 0);
	CHECK(merged == (nmer > 0));
	if (attached)
		CHECK(natt > 0);
	if (natt > 0)
		CHECK(strcmp(outcome, "unchanged") != 0);
	if (obs == 0)
		CHECK(strcmp(outcome, "unchanged") == 0 && natt == 0 && nmer == 0 && ncon == 0);

	/* What changed is what the report says. */
	cJSON *after = tables();
	CHECK(rows(after, "customer") - rows(before, "customer") == (created ? 1 : 0));
	CHECK(rows(after, "observation") - rows(before, "observation") == (obs ? 1 : 0));
	CHECK(rows(after, "ident") - rows(before, "ident") == natt);
	CHECK(rows(after, "merge_log") - rows(before, "merge_log") == nmer);
	CHECK(rows(after, "id_conflict") - rows(before, "id_conflict") == ncon);
	CHECK(rows(after, "id_kind") == rows(before, "id_kind"));
	CHECK(rows(after, "never_merge") == rows(before, "never_merge"));
	cJSON_Delete(after);
	if (created)
		CHECK(c == rows(before, "customer") + 1);

	const cJSON *it;
	cJSON_ArrayForEach(it, mer)
	{
		int64_t s = num(it, "survivor"), a = num(it, "absorbed");
		CHECK(num(it, "merge") >= 1);
		CHECK(s < a && canonical(s) == c && canonical(a) == c);
	}
	int64_t r = 0;
	cJSON_ArrayForEach(it, att)
	{
		const char *k = str(it, "kind"), *v = str(it, "value");
		CHECK(!find(con, k, v));
		if (!pattern_kind(k)) {
			int rc = scrm_identity_resolve(db, k, v, &r);
			if (rc)
				fprintf(stderr, "attached %s '%s': %s\n", k, v, scrm_errmsg(db));
			CHECK(rc == SCRM_OK && r == c);
		}
	}
	cJSON_ArrayForEach(it, con)
	{
		str(it, "kind");
		str(it, "value");
		CHECK(strlen(str(it, "reason")) > 0);
		const cJSON *o = field(it, "owner");
		CHECK(cJSON_IsNull(o) || cJSON_IsNumber(o));
	}
	cJSON_ArrayForEach(it, rej)
	{
		str(it, "kind");
		str(it, "value");
		CHECK(strlen(str(it, "reason")) > 0);
	}

	/* Each identifier of the input, as the caller would look it up. */
	CHECK(p->ok);
	for (size_t i = 0; i < p->n; i++) {
		char *y = NULL;
		int nrc = scrm_identity_normalize(db, p->kinds[i], p->values[i], &y);
		CHECK(nrc == SCRM_OK || nrc == SCRM_INVALID);
		int rrc = scrm_identity_resolve(db, p->kinds[i], p->values[i], &r);
		if (nrc != SCRM_OK) {
			CHECK(find(rej, p->kinds[i], p->values[i]) != NULL);
			CHECK(rrc == SCRM_INVALID);
			check_error(rrc);
			continue;
		}
		const cJSON *cf = find(con, p->kinds[i], y);
		if (!cf) {
			if (rrc)
				fprintf(stderr, "%s '%s' (%s): %s\n", p->kinds[i], p->values[i], y,
					scrm_errmsg(db));
			CHECK(rrc == SCRM_OK && r == c);
		} else if (cJSON_IsNull(field(cf, "owner"))) {
			CHECK(rrc == SCRM_NOTFOUND); /* over a limit: attached nowhere */
		} else {
			/* (the owner may still have been merged in by a later identifier) */
			CHECK(rrc == SCRM_OK && r == canonical(num(cf, "owner")));
		}
		scrm_free(y);
	}

	/* The customer's views hold what was attached. */
	char *list = NULL;
	CHECK(scrm_identity_list_json(db, c, &list) == SCRM_OK);
	cJSON *l = cJSON_Parse(list);
	CHECK(cJSON_IsArray(l));
	cJSON_ArrayForEach(it, att)
	CHECK(find(l, str(it, "kind"), str(it, "value")) != NULL);
	cJSON_Delete(l);
	scrm_free(list);
	char *ex = NULL;
	CHECK(scrm_identity_explain_json(db, c, &ex) == SCRM_OK);
	CHECK(utf8_ok(ex));
	cJSON *e = cJSON_Parse(ex);
	CHECK(cJSON_IsObject(e));
	cJSON_Delete(e);
	scrm_free(ex);
	cJSON_Delete(rep);
}

static bool documented(int rc)
{
	return rc == SCRM_PARSE || rc == SCRM_INVALID || rc == SCRM_NOTFOUND ||
	       rc == SCRM_LIMIT || rc == SCRM_RANGE;
}

typedef struct result {
	int rc;
	int64_t c;
	char *report;
	char msg[600];
} result;

/* Right after the call: its result and message. */
static void keep(result *r, int rc, int64_t c, char *report)
{
	r->rc = rc;
	r->c = c;
	r->report = report;
	r->msg[0] = '\0';
	if (rc) {
		check_error(rc);
		snprintf(r->msg, sizeof r->msg, "%s", scrm_errmsg(db));
	}
}

/* A failed call: an error, no report, no customer, nothing changed. */
static void check_failure(const result *r, const cJSON *before)
{
	CHECK(r->rc != SCRM_OK && r->msg[0] != '\0');
	CHECK(r->report == NULL);
	CHECK(r->c == -1);
	same_tables(before);
}

static void same_result(const result *a, const result *b)
{
	CHECK(a->rc == b->rc);
	CHECK(a->c == b->c);
	CHECK((a->report == NULL) == (b->report == NULL));
	if (a->report && strcmp(a->report, b->report) != 0) {
		fprintf(stderr, "%s\n%s\n", a->report, b->report);
		CHECK(false);
	}
	if (a->rc && strcmp(a->msg, b->msg) != 0) {
		fprintf(stderr, "%s\n%s\n", a->msg, b->msg);
		CHECK(false);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > INPUT_MAX)
		return 0;
	if (!db || dirty)
		reset();
	char *text = malloc(size + 1);
	CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	parsed p;
	parse_input(text, &p);
	cJSON *before = tables();

	/* 1: inside a batch, rolled back. */
	result inb, typed, own;
	int64_t c = -1;
	char *report = (char *)&report; /* must be reset */
	CHECK(scrm_db_begin(db) == SCRM_OK);
	int rc = scrm_identity_observe_json(db, text, &c, &report);
	keep(&inb, rc, c, report);
	if (rc) {
		CHECK(documented(rc));
		check_failure(&inb, before);
	} else {
		check_success(&p, c, report, before);
	}
	CHECK(scrm_db_rollback(db) == SCRM_OK);
	same_tables(before);
	/* Malformed here, refused there (the converse is not true: unknown
	 * kinds, no usable identifier, a bad time string...). */
	if (!p.ok)
		CHECK(rc != SCRM_OK);

	/* 2: the typed call with the same identifiers gives the same result. */
	if (p.ok && p.at_known) {
		c = -1;
		report = (char *)&report;
		CHECK(scrm_db_begin(db) == SCRM_OK);
		rc = scrm_identity_observe(db, p.channel, p.at, p.kinds, p.values, p.n, &c, &report);
		keep(&typed, rc, c, report);
		CHECK(scrm_db_rollback(db) == SCRM_OK);
		same_result(&inb, &typed);
		scrm_free(typed.report);
	}

	/* 3: on its own, failing each allocation in turn until it gets
	 * through: every failure leaves everything as it was. */
	for (long nth = inb.rc == SCRM_OK ? 1 : 0;; nth++) {
		CHECK(nth < OOM_TRIES);
		CHECK(scrm_db_test_alloc_fail(db, nth) == SCRM_OK);
		c = -1;
		report = (char *)&report;
		rc = scrm_identity_observe_json(db, text, &c, &report);
		keep(&own, rc, c, report);
		CHECK(scrm_db_test_alloc_fail(db, 0) == SCRM_OK);
		if (rc == SCRM_NOMEM && nth > 0) {
			check_failure(&own, before);
			continue;
		}
		break;
	}
	same_result(&inb, &own);
	if (own.rc) {
		check_failure(&own, before);
	} else {
		check_success(&p, own.c, own.report, before);
		dirty = true; /* committed: start the next input afresh */
	}
	scrm_free(inb.report);
	scrm_free(own.report);
	cJSON_Delete(before);
	cJSON_Delete(p.root);
	free(text);
	return 0;
}

#define FUZZ_NAME "observe"
#define FUZZ_AT_EXIT() scrm_db_close(db)
#include "fuzz_main.h"
