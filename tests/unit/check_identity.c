/*
 * Check suite for the identity engine (include/scrm/identity.h): kinds and
 * their cache, normalizers, observe as SPEC.md "Resolving one observation"
 * defines it, reports, canonical ids, merge / never-merge / unmerge, the
 * explain views, read-only handles, batches and allocation failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <sqlite3.h>

#include "scrm/identity.h"
#include "core-int.h"
#include "testutil.h"

/* 2026-01-01T00:00:00Z */
#define T0 INT64_C(1767225600000)

/* Phones used throughout, raw and normalized. Sorted normalized:
 * P5 < P4 < P3 < P1 < P2. */
#define P1 "138 0013 8000"
#define P1N "+8613800138000"
#define P2 "139-0013-9000"
#define P2N "+8613900139000"
#define P3 "13700137000"
#define P3N "+8613700137000"
#define P4 "+86 136 0013 6000"
#define P4N "+8613600136000"
#define P5 "0086 13500135000"
#define P5N "+8613500135000"

/* --------------------------------------------------------------- helpers */

static tu_clock clk;

static scrm_db *open_db(const char *name)
{
	scrm_db *db = tu_open(tu_path(name), SCRM_OPEN_CREATE);
	clk.now = T0;
	tu_assert_ok(db, scrm_db_set_clock(db, tu_clock_fn, &clk));
	return db;
}

/* NULL-terminated list of kind, value pairs. */
#define IDS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Observe the pairs on `channel`; *customer and the parsed report (when rep
 * is not NULL) on success. Returns the result code. */
static int obs_rc(scrm_db *db, const char *channel, const char *const *kv, int64_t *customer,
		  cJSON **rep)
{
	const char *kinds[80], *values[80];
	size_t n = 0;
	for (; kv[2 * n]; n++) {
		ck_assert_uint_lt(n, 80);
		kinds[n] = kv[2 * n];
		values[n] = kv[2 * n + 1];
	}
	char *report = (char *)&report;
	int64_t c = -1;
	int rc = scrm_identity_observe(db, channel, 0, kinds, values, n, &c, rep ? &report : NULL);
	if (customer)
		*customer = c;
	if (rep) {
		if (rc == SCRM_OK) {
			ck_assert_ptr_nonnull(report);
			*rep = cJSON_Parse(report);
			ck_assert_msg(*rep != NULL, "report is not JSON: %s", report);
			scrm_free(report);
		} else {
			ck_assert_ptr_null(report);
			*rep = NULL;
		}
	}
	return rc;
}

/* Observe and expect success; returns the customer. */
static int64_t obs(scrm_db *db, const char *const *kv)
{
	int64_t c = 0;
	tu_assert_ok(db, obs_rc(db, "pos", kv, &c, NULL));
	ck_assert_int_gt(c, 0);
	return c;
}

/* Observe and expect success; returns the parsed report (cJSON_Delete). */
static cJSON *obs_rep(scrm_db *db, const char *const *kv)
{
	cJSON *rep = NULL;
	int64_t c = 0;
	tu_assert_ok(db, obs_rc(db, "wecom", kv, &c, &rep));
	ck_assert_int_eq(c, (int64_t)cJSON_GetObjectItemCaseSensitive(rep, "customer")->valuedouble);
	return rep;
}

/* Customer holding (kind, value), or -(result code). */
static int64_t who(scrm_db *db, const char *kind, const char *value)
{
	int64_t c = 0;
	int rc = scrm_identity_resolve(db, kind, value, &c);
	return rc == SCRM_OK ? c : -rc;
}

static int64_t canon(scrm_db *db, int64_t id)
{
	int64_t s = 0;
	int rc = scrm_identity_canonical(db, id, &s);
	return rc == SCRM_OK ? s : -rc;
}

static cJSON *parse(const char *text)
{
	ck_assert_ptr_nonnull(text);
	cJSON *j = cJSON_Parse(text);
	ck_assert_msg(j != NULL, "invalid JSON: %s", text);
	return j;
}

static const cJSON *jget(const cJSON *o, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
	ck_assert_msg(it != NULL, "no member '%s'", key);
	return it;
}

static long long jint(const cJSON *o, const char *key)
{
	const cJSON *it = jget(o, key);
	ck_assert_msg(cJSON_IsNumber(it), "member '%s' is not a number", key);
	return (long long)it->valuedouble;
}

static bool jnull(const cJSON *o, const char *key)
{
	return cJSON_IsNull(jget(o, key));
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *it = jget(o, key);
	ck_assert_msg(cJSON_IsString(it), "member '%s' is not a string", key);
	return it->valuestring;
}

static int jlen(const cJSON *o, const char *key)
{
	const cJSON *it = jget(o, key);
	ck_assert_msg(cJSON_IsArray(it), "member '%s' is not an array", key);
	return cJSON_GetArraySize(it);
}

static const cJSON *jat(const cJSON *o, const char *key, int i)
{
	const cJSON *it = cJSON_GetArrayItem(jget(o, key), i);
	ck_assert_msg(it != NULL, "%s[%d] missing", key, i);
	return it;
}

/* Function output parsed (views of a customer). */
typedef int (*view_fn)(scrm_db *db, int64_t customer, char **out);

static cJSON *view(scrm_db *db, view_fn fn, int64_t customer)
{
	char *out = NULL;
	tu_assert_ok(db, fn(db, customer, &out));
	cJSON *j = parse(out);
	scrm_free(out);
	return j;
}

/* Does the array of {"kind","value",...} objects hold (kind, value)? */
static bool has_ident(const cJSON *arr, const char *kind, const char *value)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
	{
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(it, "kind");
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "value");
		if (cJSON_IsString(k) && cJSON_IsString(v) && strcmp(k->valuestring, kind) == 0 &&
		    strcmp(v->valuestring, value) == 0)
			return true;
	}
	return false;
}

/* Identifiers of a customer as "kind=value;..." in list order. */
static char *idents(scrm_db *db, int64_t customer)
{
	cJSON *l = view(db, scrm_identity_list_json, customer);
	static char buf[4][2048];
	static int slot;
	char *b = buf[slot++ & 3];
	b[0] = '\0';
	const cJSON *it;
	cJSON_ArrayForEach(it, l)
	{
		size_t n = strlen(b);
		snprintf(b + n, 2048 - n, "%s=%s;", jstr(it, "kind"), jstr(it, "value"));
	}
	cJSON_Delete(l);
	return b;
}

/* The "tables" member of scrm_db_info_json, printed. Release with free(). */
static char *table_counts(scrm_db *db)
{
	char *json = NULL;
	tu_assert_ok(db, scrm_db_info_json(db, &json));
	cJSON *j = parse(json);
	scrm_free(json);
	char *t = cJSON_PrintUnformatted(jget(j, "tables"));
	cJSON_Delete(j);
	return t;
}

/* Every row of the identity tables as text, to compare states exactly.
 * Release with free(). */
static char *dump(scrm_db *db)
{
	static const char *const sql[] = {
		"SELECT * FROM id_kind ORDER BY id", "SELECT * FROM customer ORDER BY id",
		"SELECT * FROM observation ORDER BY id", "SELECT * FROM ident ORDER BY kind, value",
		"SELECT * FROM merge_log ORDER BY id", "SELECT * FROM never_merge ORDER BY a, b",
		"SELECT * FROM id_conflict ORDER BY id", "SELECT * FROM scrm_meta ORDER BY key"};
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	ck_assert_ptr_nonnull(out);
	out[0] = '\0';
	for (size_t q = 0; q < SCRM_ARRAY_LEN(sql); q++) {
		sqlite3_stmt *st = NULL;
		ck_assert_int_eq(sqlite3_prepare_v2(scrm__sqlite(db), sql[q], -1, &st, NULL), SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW) {
			for (int i = 0; i < sqlite3_column_count(st); i++) {
				const char *v = (const char *)sqlite3_column_text(st, i);
				size_t need = len + (v ? strlen(v) : 4) + 4;
				if (need > cap) {
					cap = need * 2;
					out = realloc(out, cap);
					ck_assert_ptr_nonnull(out);
				}
				len += (size_t)sprintf(out + len, "%s|", v ? v : "NULL");
			}
			out[len++] = '\n';
			out[len] = '\0';
		}
		sqlite3_finalize(st);
		if (len + 2 > cap) {
			cap *= 2;
			out = realloc(out, cap);
			ck_assert_ptr_nonnull(out);
		}
		out[len++] = '#';
		out[len] = '\0';
	}
	return out;
}

static long long rows(scrm_db *db, const char *table)
{
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
	return tu_sql_int(db, sql);
}

static bool utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		int n = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2
			: (*p & 0xF8) == 0xF0 ? 3 : -1;
		if (n < 0 || (n == 1 && *p < 0xC2))
			return false;
		p++;
		for (int i = 0; i < n; i++, p++)
			if ((*p & 0xC0) != 0x80)
				return false;
	}
	return true;
}

/* ------------------------------------------------------------------ kinds */

static const cJSON *find_kind(const cJSON *arr, const char *name)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
	if (strcmp(jstr(it, "name"), name) == 0)
		return it;
	return NULL;
}

START_TEST(test_kinds_defaults)
{
	scrm_db *db = open_db("k.db");
	char *out = NULL;
	tu_assert_ok(db, scrm_identity_kinds_json(db, &out));
	cJSON *arr = parse(out);
	scrm_free(out);
	ck_assert(cJSON_IsArray(arr));
	static const struct {
		const char *name, *norm;
		int limit;
	} want[] = {{"wechat_unionid", "trim", 1}, {"phone", "phone", 3}, {"email", "email", 3},
		    {"member_card", "trim", 1},      {"wechat_openid", "trim", 0},
		    {"wecom_external_userid", "trim", 0}, {"douyin_openid", "trim", 0},
		    {"tmall_buyer_nick", "trim", 0}, {"youzan_fans_id", "trim", 0}};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(want); i++) {
		const cJSON *k = find_kind(arr, want[i].name);
		ck_assert_msg(k != NULL, "default kind %s missing", want[i].name);
		ck_assert_int_eq(jint(k, "limit"), want[i].limit);
		ck_assert_str_eq(jstr(k, "normalizer"), want[i].norm);
	}
	/* Ordered by (priority, name). */
	long long prev = -2000000;
	const char *prev_name = "";
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
	{
		long long p = jint(it, "priority");
		ck_assert(p > prev || (p == prev && strcmp(jstr(it, "name"), prev_name) > 0));
		prev = p;
		prev_name = jstr(it, "name");
	}
	/* unionid outranks phone, phone outranks email. */
	ck_assert_int_lt(jint(find_kind(arr, "wechat_unionid"), "priority"),
			 jint(find_kind(arr, "phone"), "priority"));
	ck_assert_int_lt(jint(find_kind(arr, "phone"), "priority"),
			 jint(find_kind(arr, "email"), "priority"));
	/* Junk is blocked out of the box. */
	const cJSON *bl = jget(find_kind(arr, "phone"), "blocklist");
	bool has_null = false, has_zeros = false;
	cJSON_ArrayForEach(it, bl)
	{
		has_null |= strcmp(it->valuestring, "null") == 0;
		has_zeros |= strcmp(it->valuestring, "00000000000") == 0;
	}
	ck_assert(has_null && has_zeros);
	cJSON_Delete(arr);

	tu_assert_ok(db, scrm_identity_kind_get(db, "phone", &out));
	cJSON *k = parse(out);
	scrm_free(out);
	ck_assert_str_eq(jstr(k, "name"), "phone");
	ck_assert_int_eq(jint(k, "limit"), 3);
	cJSON_Delete(k);

	out = (char *)&out;
	tu_assert_rc(db, scrm_identity_kind_get(db, "fax", &out), SCRM_NOTFOUND);
	ck_assert_ptr_null(out);
	tu_assert_contains(scrm_errmsg(db), "'fax' is not registered");
	tu_assert_rc(db, scrm_identity_kind_get(db, NULL, &out), SCRM_MISUSE);
	tu_assert_rc(db, scrm_identity_kinds_json(db, NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_identity_kinds_json(NULL, &out), SCRM_MISUSE);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_kind_set_add_replace)
{
	scrm_db *db = open_db("k.db");
	long long before = rows(db, "id_kind");
	tu_assert_ok(db, scrm_identity_kind_set(
				 db, "{\"name\":\"vip_card\",\"normalizer\":\"pattern\",\"priority\":15,"
				     "\"limit\":2,\"pattern\":\"^(?:VIP-?)?(\\\\d{8})$\","
				     "\"blocklist\":[\"99999999\"]}"));
	ck_assert_int_eq(rows(db, "id_kind"), before + 1);
	char *out = NULL;
	tu_assert_ok(db, scrm_identity_kind_get(db, "vip_card", &out));
	cJSON *k = parse(out);
	scrm_free(out);
	ck_assert_str_eq(jstr(k, "normalizer"), "pattern");
	ck_assert_int_eq(jint(k, "priority"), 15);
	ck_assert_int_eq(jint(k, "limit"), 2);
	ck_assert_str_eq(jstr(k, "pattern"), "^(?:VIP-?)?(\\d{8})$");
	ck_assert_int_eq(jlen(k, "blocklist"), 1);
	ck_assert_int_eq(jlen(k, "block_patterns"), 0);
	cJSON_Delete(k);

	/* Between wechat_unionid (10) and member_card (20). */
	tu_assert_ok(db, scrm_identity_kinds_json(db, &out));
	cJSON *arr = parse(out);
	scrm_free(out);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(arr, 0), "name"), "wechat_unionid");
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(arr, 1), "name"), "vip_card");
	cJSON_Delete(arr);

	out = NULL;
	tu_assert_ok(db, scrm_identity_normalize(db, "vip_card", "VIP-12345678", &out));
	ck_assert_str_eq(out, "12345678");
	scrm_free(out);

	/* Replace: same name, new definition; no second row. */
	tu_assert_ok(db, scrm_identity_kind_set(db, "{\"name\":\"vip_card\",\"normalizer\":\"casefold\","
						    "\"priority\":95}"));
	ck_assert_int_eq(rows(db, "id_kind"), before + 1);
	tu_assert_ok(db, scrm_identity_kind_get(db, "vip_card", &out));
	k = parse(out);
	scrm_free(out);
	ck_assert_str_eq(jstr(k, "normalizer"), "casefold");
	ck_assert_int_eq(jint(k, "priority"), 95);
	ck_assert_int_eq(jint(k, "limit"), 0); /* default: unlimited */
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(k, "pattern"));
	cJSON_Delete(k);
	tu_assert_ok(db, scrm_identity_kinds_json(db, &out));
	arr = parse(out);
	scrm_free(out);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(arr, cJSON_GetArraySize(arr) - 1), "name"),
			 "vip_card");
	cJSON_Delete(arr);
	tu_assert_ok(db, scrm_identity_normalize(db, "vip_card", " VIP-ABC ", &out));
	ck_assert_str_eq(out, "vip-abc");
	scrm_free(out);

	/* Replacing a default kind changes how future values are handled. */
	tu_assert_ok(db, scrm_identity_kind_set(db, "{\"name\":\"member_card\",\"limit\":2}"));
	int64_t c = obs(db, IDS("member_card", "K1"));
	ck_assert_int_eq(obs(db, IDS("member_card", "K1", "member_card", "K2")), c);
	ck_assert_int_eq(who(db, "member_card", "K2"), c);
	scrm_db_close(db);
}
END_TEST

static void kind_err(scrm_db *db, const char *json, int code, const char *needle)
{
	long long before = rows(db, "id_kind");
	int rc = scrm_identity_kind_set(db, json);
	ck_assert_msg(rc == code, "kind_set(%s) returned %d (%s), expected %d: %s", json ? json : "NULL",
		      rc, scrm_errstr(rc), code, scrm_errmsg(db));
	ck_assert_int_eq(scrm_errcode(db), code);
	tu_assert_contains(scrm_errmsg(db), needle);
	ck_assert_int_eq(rows(db, "id_kind"), before);
}

START_TEST(test_kind_set_errors)
{
	scrm_db *db = open_db("k.db");
	char *before = dump(db);
	kind_err(db, "{\"name\":\"x\",", SCRM_PARSE, "line 1, column");
	kind_err(db, "{\"name\":\"x\",\n \"limit\": }", SCRM_PARSE, "line 2, column");
	kind_err(db, "{\"name\":\"x\",\"colour\":\"red\"}", SCRM_INVALID, "unknown field 'colour'");
	kind_err(db, "{\"name\":\"Bad-Name\"}", SCRM_INVALID, "\"name\"");
	kind_err(db, "{\"name\":\"\"}", SCRM_INVALID, "1-64 characters");
	kind_err(db, "{\"name\":\"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij12345\"}",
		 SCRM_INVALID, "1-64 characters");
	kind_err(db, "{\"normalizer\":\"trim\"}", SCRM_INVALID, "\"name\"");
	kind_err(db, "{\"name\":7}", SCRM_INVALID, "\"name\"");
	kind_err(db, "{\"name\":\"x\",\"normalizer\":\"soundex\"}", SCRM_INVALID,
		 "normalizer must be one of");
	kind_err(db, "{\"name\":\"x\",\"normalizer\":\"pattern\"}", SCRM_INVALID,
		 "\"pattern\" is required");
	kind_err(db, "{\"name\":\"x\",\"normalizer\":\"trim\",\"pattern\":\"a\"}", SCRM_INVALID,
		 "\"pattern\"");
	kind_err(db, "{\"name\":\"x\",\"normalizer\":\"pattern\",\"pattern\":\"(ab\"}", SCRM_INVALID,
		 "offset");
	kind_err(db, "{\"name\":\"x\",\"block_patterns\":[\"[z-a]\"]}", SCRM_INVALID, "offset");
	kind_err(db, "{\"name\":\"x\",\"limit\":-1}", SCRM_RANGE, "limit");
	kind_err(db, "{\"name\":\"x\",\"limit\":1.5}", SCRM_INVALID, "integer");
	kind_err(db, "{\"name\":\"x\",\"blocklist\":\"null\"}", SCRM_INVALID, "blocklist");
	kind_err(db, "{\"name\":\"x\",\"blocklist\":[1]}", SCRM_INVALID, "blocklist");
	kind_err(db, "[\"name\"]", SCRM_INVALID, "JSON object");
	kind_err(db, "{\"name\":\"caf\xc3\"}", SCRM_INVALID, "UTF-8");
	kind_err(db, NULL, SCRM_MISUSE, "NULL");
	ck_assert_int_eq(scrm_identity_kind_set(NULL, "{\"name\":\"x\"}"), SCRM_MISUSE);
	/* Nothing was stored by any refusal. */
	char *after = dump(db);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	tu_assert_rc(db, scrm_identity_normalize(db, "x", "v", &before), SCRM_NOTFOUND);
	scrm_db_close(db);
}
END_TEST

/* A kind set through one handle is seen by another handle on the file. */
START_TEST(test_kind_cache_refresh)
{
	scrm_db *a = open_db("k.db");
	scrm_db *b = tu_open(tu_path("k.db"), 0);
	char *out = NULL;
	tu_assert_rc(a, scrm_identity_normalize(a, "shop_id", "X", &out), SCRM_NOTFOUND);
	tu_assert_ok(b, scrm_identity_kind_set(b, "{\"name\":\"shop_id\",\"normalizer\":\"casefold\"}"));
	tu_assert_ok(a, scrm_identity_normalize(a, "shop_id", " ShopA ", &out));
	ck_assert_str_eq(out, "shopa");
	scrm_free(out);
	int64_t c = obs(a, IDS("shop_id", "S1"));
	ck_assert_int_eq(obs(a, IDS("shop_id", "S1", "shop_id", "S2")), c);

	/* Replaced on b: trim instead of casefold, limit 2. */
	tu_assert_ok(b, scrm_identity_kind_set(b, "{\"name\":\"shop_id\",\"limit\":2}"));
	tu_assert_ok(a, scrm_identity_normalize(a, "shop_id", " ShopA ", &out));
	ck_assert_str_eq(out, "ShopA");
	scrm_free(out);
	cJSON *rep = obs_rep(a, IDS("shop_id", "s1", "shop_id", "S3"));
	ck_assert_int_eq(jlen(rep, "conflicts"), 1);
	ck_assert_str_eq(jstr(jat(rep, "conflicts", 0), "value"), "S3");
	cJSON_Delete(rep);

	/* And inside a batch on a, after b changed it again. */
	tu_assert_ok(b, scrm_identity_kind_set(b, "{\"name\":\"shop_id\",\"normalizer\":\"casefold\","
						  "\"limit\":0}"));
	tu_assert_ok(a, scrm_db_begin(a));
	ck_assert_int_eq(obs(a, IDS("shop_id", "S1", "shop_id", "S3")), c);
	tu_assert_ok(a, scrm_db_commit(a));
	ck_assert_int_eq(who(b, "shop_id", "S3"), c);
	scrm_db_close(b);
	scrm_db_close(a);
}
END_TEST

/* A kind registered in a batch that is rolled back does not exist after. */
START_TEST(test_kind_rolled_back)
{
	scrm_db *db = open_db("k.db");
	char *out = NULL;
	tu_assert_ok(db, scrm_db_begin(db));
	tu_assert_ok(db, scrm_identity_kind_set(db, "{\"name\":\"temp_id\"}"));
	tu_assert_ok(db, scrm_identity_normalize(db, "temp_id", "t1", &out));
	scrm_free(out);
	tu_assert_ok(db, scrm_db_rollback(db));
	tu_assert_rc(db, scrm_identity_kind_get(db, "temp_id", &out), SCRM_NOTFOUND);
	out = NULL;
	tu_assert_rc(db, scrm_identity_normalize(db, "temp_id", "t1", &out), SCRM_NOTFOUND);
	scrm_free(out);
	int64_t c = 0;
	tu_assert_rc(db, obs_rc(db, "pos", IDS("temp_id", "t1"), &c, NULL), SCRM_NOTFOUND);
	ck_assert_int_eq(rows(db, "ident"), 0);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------ normalizers */

static void norm_ok(scrm_db *db, const char *kind, const char *raw, const char *want)
{
	char *out = NULL;
	int rc = scrm_identity_normalize(db, kind, raw, &out);
	ck_assert_msg(rc == SCRM_OK, "normalize(%s, \"%s\") returned %s: %s", kind, raw,
		      scrm_errstr(rc), scrm_errmsg(db));
	ck_assert_msg(strcmp(out, want) == 0, "normalize(%s, \"%s\") = \"%s\", expected \"%s\"", kind,
		      raw, out, want);
	scrm_free(out);
}

static void norm_bad(scrm_db *db, const char *kind, const char *raw, const char *needle)
{
	char *out = (char *)&out;
	int rc = scrm_identity_normalize(db, kind, raw, &out);
	ck_assert_msg(rc == SCRM_INVALID, "normalize(%s, \"%s\") returned %s (%s), expected invalid",
		      kind, raw, scrm_errstr(rc), rc ? "" : out);
	ck_assert_ptr_null(out);
	tu_assert_contains(scrm_errmsg(db), needle);
}

START_TEST(test_normalize_phone)
{
	scrm_db *db = open_db("n.db");
	static const char *const same[] = {"138 0013 8000", "138-0013-8000", "(138)00138000",
					   "+86 138 0013 8000", "0086 13800138000", "8613800138000",
					   "13800138000", "+86-138-0013-8000", " 138.0013.8000 "};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(same); i++)
		norm_ok(db, "phone", same[i], "+8613800138000");
	norm_ok(db, "phone", "+1 415 555 2671", "+14155552671");
	norm_ok(db, "phone", "021-12345678", "+862112345678");
	norm_ok(db, "phone", "0755-1234567", "+867551234567");
	norm_bad(db, "phone", "12345", "not a plausible phone number");
	norm_bad(db, "phone", "abc", "not a phone number");
	norm_bad(db, "phone", "1380013800a", "not a phone number");
	norm_bad(db, "phone", "+0123", "not a plausible");
	norm_bad(db, "phone", "1380013800", "not a plausible");     /* 10 digits */
	norm_bad(db, "phone", "12800128000", "not a plausible");    /* no 12x mobiles */
	norm_bad(db, "phone", "+86 12345", "not a plausible +86");
	norm_bad(db, "phone", "1234567890123456789012", "too many digits");
	norm_bad(db, "phone", "138+00138000", "unexpected character");
	/* The message quotes the value and the kind. */
	norm_bad(db, "phone", "abc", "phone value 'abc' rejected");
	scrm_db_close(db);
}
END_TEST

/* Beijing's area code is 010: its landlines are +86 10 xxxxxxxx. */
START_TEST(test_normalize_phone_beijing_landline)
{
	scrm_db *db = open_db("n.db");
	norm_ok(db, "phone", "010-12345678", "+861012345678");
	norm_ok(db, "phone", "+86 10 1234 5678", "+861012345678");
	norm_ok(db, "phone", "(010) 12345678", "+861012345678");
	scrm_db_close(db);
}
END_TEST

START_TEST(test_normalize_blocked)
{
	scrm_db *db = open_db("n.db");
	norm_bad(db, "phone", "null", "blocked");
	norm_bad(db, "phone", "00000000000", "blocked");
	norm_bad(db, "phone", " NULL ", "blocked");
	norm_bad(db, "phone", "+86 133 3333 3333", "blocked"); /* one digit repeated */
	norm_bad(db, "email", "unknown", "blocked");
	norm_bad(db, "wechat_unionid", "null", "blocked");
	norm_bad(db, "wechat_unionid", "0000", "blocked");
	norm_bad(db, "member_card", "N/A", "blocked");
	norm_bad(db, "member_card", "-", "blocked");
	norm_ok(db, "member_card", "0001", "0001");
	norm_ok(db, "tmall_buyer_nick", "nullable", "nullable");
	scrm_db_close(db);
}
END_TEST

START_TEST(test_normalize_email)
{
	scrm_db *db = open_db("n.db");
	norm_ok(db, "email", "  Alice.Wang@Example.COM\t", "alice.wang@example.com");
	norm_ok(db, "email", "a@b.cn", "a@b.cn");
	norm_ok(db, "email", "\xE3\x80\x80" "Bob@Mail.Example.Com\xE3\x80\x80", "bob@mail.example.com");
	norm_bad(db, "email", "alice.example.com", "no '@'");
	norm_bad(db, "email", "a@b@c.com", "more than one '@'");
	norm_bad(db, "email", "a@localhost", "dotted name");
	norm_bad(db, "email", "a@.com", "dotted name");
	norm_bad(db, "email", "a@b..com", "empty label");
	norm_bad(db, "email", "@b.com", "empty local part");
	norm_bad(db, "email", "a@", "empty local part or domain");
	norm_bad(db, "email", "a b@c.com", "space");
	scrm_db_close(db);
}
END_TEST

START_TEST(test_normalize_trim_casefold)
{
	scrm_db *db = open_db("n.db");
	/* U+3000 ideographic space, as pasted from Chinese input methods. */
	norm_ok(db, "wechat_unionid", "\xE3\x80\x80 oABC-123 \xE3\x80\x80", "oABC-123");
	norm_ok(db, "wechat_unionid", "\t\r\noX\n", "oX");
	norm_ok(db, "tmall_buyer_nick", " 小明 的 店 ", "小明 的 店");
	norm_bad(db, "wechat_unionid", " \xE3\x80\x80 ", "empty");
	norm_bad(db, "wechat_unionid", "o\tX", "control character");
	tu_assert_ok(db, scrm_identity_kind_set(db, "{\"name\":\"nick_ci\",\"normalizer\":\"casefold\"}"));
	norm_ok(db, "nick_ci", "  MiXed Case Nick\xE3\x80\x80", "mixed case nick");
	norm_ok(db, "nick_ci", "ÄBC", "Äbc"); /* ASCII case folding only */
	scrm_db_close(db);
}
END_TEST

START_TEST(test_normalize_pattern)
{
	scrm_db *db = open_db("n.db");
	tu_assert_ok(db, scrm_identity_kind_set(
				 db, "{\"name\":\"vip_card\",\"normalizer\":\"pattern\","
				     "\"pattern\":\"^(?:VIP-?)?(\\\\d{8})$\"}"));
	norm_ok(db, "vip_card", "VIP-12345678", "12345678");
	norm_ok(db, "vip_card", " VIP87654321 ", "87654321");
	norm_ok(db, "vip_card", "12345678", "12345678");
	norm_bad(db, "vip_card", "VIP-1234", "does not match");
	norm_bad(db, "vip_card", "VIP-123456789", "does not match");
	/* Without a group the whole match is the value. */
	tu_assert_ok(db, scrm_identity_kind_set(
				 db, "{\"name\":\"order_no\",\"normalizer\":\"pattern\","
				     "\"pattern\":\"[A-Z]{2}\\\\d{4}\"}"));
	norm_ok(db, "order_no", "no. TB1234 (tmall)", "TB1234");
	norm_bad(db, "order_no", "tb1234", "does not match");
	/* An empty capture is no value. */
	tu_assert_ok(db, scrm_identity_kind_set(
				 db, "{\"name\":\"opt_no\",\"normalizer\":\"pattern\","
				     "\"pattern\":\"^N(\\\\d*)$\"}"));
	norm_ok(db, "opt_no", "N42", "42");
	norm_bad(db, "opt_no", "N", "empty");
	/* A hostile pattern is bounded: the value is refused, nothing hangs. */
	tu_assert_ok(db, scrm_identity_kind_set(
				 db, "{\"name\":\"evil\",\"normalizer\":\"pattern\","
				     "\"pattern\":\"^(a+)+$\"}"));
	norm_bad(db, "evil", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "pattern");
	scrm_db_close(db);
}
END_TEST

START_TEST(test_normalize_block_patterns)
{
	scrm_db *db = open_db("n.db");
	tu_assert_ok(db, scrm_identity_kind_set(
				 db, "{\"name\":\"shop_id\",\"normalizer\":\"casefold\","
				     "\"blocklist\":[\"test\"],\"block_patterns\":[\"^9+$\",\"^tmp_\"]}"));
	norm_bad(db, "shop_id", "999", "blocked");
	norm_bad(db, "shop_id", "TMP_42", "blocked"); /* patterns see the normalized value */
	norm_bad(db, "shop_id", "test", "blocked");
	norm_bad(db, "shop_id", " TEST ", "blocked"); /* so does the list */
	norm_ok(db, "shop_id", "9x9", "9x9");
	norm_ok(db, "shop_id", "my_tmp_1", "my_tmp_1");
	/* A blocked value never links anything: resolve refuses it too. */
	int64_t c = 0;
	tu_assert_rc(db, scrm_identity_resolve(db, "shop_id", "999", &c), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "blocked");
	scrm_db_close(db);
}
END_TEST

START_TEST(test_normalize_bad_text)
{
	scrm_db *db = open_db("n.db");
	norm_bad(db, "wechat_unionid", "o\xff\xfe", "UTF-8");
	norm_bad(db, "wechat_unionid", "\xc0\xaf", "UTF-8");       /* overlong '/' */
	norm_bad(db, "wechat_unionid", "\xed\xa0\x80", "UTF-8");   /* surrogate */
	norm_bad(db, "email", "a\xe4\xb8@b.com", "UTF-8");         /* truncated sequence */
	char big[2100];
	memset(big, 'x', 256);
	big[256] = '\0';
	norm_ok(db, "wechat_unionid", big, big);
	memset(big, 'x', 257);
	big[257] = '\0';
	norm_bad(db, "wechat_unionid", big, "too long");
	memset(big, 'y', 2000);
	big[2000] = '\0';
	norm_bad(db, "wechat_unionid", big, "too long");
	/* Long only because of surrounding blanks: fine. */
	memset(big, ' ', 600);
	memcpy(big + 600, "oK", 2);
	memset(big + 602, ' ', 400);
	big[1002] = '\0';
	norm_ok(db, "wechat_unionid", big, "oK");

	char *out = (char *)&out;
	tu_assert_rc(db, scrm_identity_normalize(db, "fax", "1", &out), SCRM_NOTFOUND);
	ck_assert_ptr_null(out);
	tu_assert_contains(scrm_errmsg(db), "'fax' is not registered");
	tu_assert_rc(db, scrm_identity_normalize(db, "phone", NULL, &out), SCRM_MISUSE);
	tu_assert_rc(db, scrm_identity_normalize(db, NULL, "1", &out), SCRM_MISUSE);
	tu_assert_rc(db, scrm_identity_normalize(db, "phone", "1", NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_identity_normalize(NULL, "phone", "1", &out), SCRM_MISUSE);
	scrm_db_close(db);
}
END_TEST

/* Messages and reports are UTF-8 even when they quote bad or long input. */
START_TEST(test_text_out_is_utf8)
{
	scrm_db *db = open_db("n.db");
	/* 30 CJK characters (90 bytes): quoting a prefix must not cut one. */
	char cjk[128] = "";
	for (int i = 0; i < 30; i++)
		strcat(cjk, "\xe5\x8f\xb7");
	char *out = NULL;
	tu_assert_rc(db, scrm_identity_normalize(db, "phone", cjk, &out), SCRM_INVALID);
	ck_assert_msg(utf8_ok(scrm_errmsg(db)), "message is not UTF-8: %s", scrm_errmsg(db));
	int64_t c = 0;
	tu_assert_rc(db, obs_rc(db, "pos", IDS("phone", cjk), &c, NULL), SCRM_INVALID);
	ck_assert_msg(utf8_ok(scrm_errmsg(db)), "message is not UTF-8: %s", scrm_errmsg(db));

	/* A rejected value that is not UTF-8 next to a usable one. */
	const char *kinds[] = {"phone", "wechat_unionid"};
	const char *values[] = {P1, "o\xff\xfe"};
	char *report = NULL;
	tu_assert_ok(db, scrm_identity_observe(db, "pos", 0, kinds, values, 2, &c, &report));
	ck_assert_msg(utf8_ok(report), "report is not UTF-8: %s", report);
	cJSON *rep = parse(report);
	scrm_free(report);
	ck_assert_int_eq(jlen(rep, "rejected"), 1);
	tu_assert_contains(jstr(jat(rep, "rejected", 0), "reason"), "UTF-8");
	cJSON_Delete(rep);
	scrm_db_close(db);
}
END_TEST

/* ---------------------------------------------------------------- observe */

START_TEST(test_observe_outcomes)
{
	scrm_db *db = open_db("o.db");
	/* created */
	cJSON *rep = obs_rep(db, IDS("phone", P1, "wechat_unionid", "oU1", "email", "null"));
	ck_assert_int_eq(jint(rep, "customer"), 1);
	ck_assert_int_gt(jint(rep, "observation"), 0);
	ck_assert_str_eq(jstr(rep, "outcome"), "created");
	ck_assert_int_eq(jlen(rep, "attached"), 2);
	/* In resolution order: unionid (priority 10) before phone (30). */
	ck_assert_str_eq(jstr(jat(rep, "attached", 0), "kind"), "wechat_unionid");
	ck_assert_str_eq(jstr(jat(rep, "attached", 0), "value"), "oU1");
	ck_assert_str_eq(jstr(jat(rep, "attached", 1), "kind"), "phone");
	ck_assert_str_eq(jstr(jat(rep, "attached", 1), "value"), P1N);
	ck_assert_int_eq(jlen(rep, "merged"), 0);
	ck_assert_int_eq(jlen(rep, "conflicts"), 0);
	ck_assert_int_eq(jlen(rep, "rejected"), 1);
	ck_assert_str_eq(jstr(jat(rep, "rejected", 0), "kind"), "email");
	ck_assert_str_eq(jstr(jat(rep, "rejected", 0), "value"), "null");
	ck_assert_str_eq(jstr(jat(rep, "rejected", 0), "reason"), "blocked");
	long long first_obs = jint(rep, "observation");
	cJSON_Delete(rep);

	/* attached */
	rep = obs_rep(db, IDS("phone", "+86 138-0013-8000", "email", "A@B.com"));
	ck_assert_int_eq(jint(rep, "customer"), 1);
	ck_assert_str_eq(jstr(rep, "outcome"), "attached");
	ck_assert_int_gt(jint(rep, "observation"), first_obs);
	ck_assert_int_eq(jlen(rep, "attached"), 1);
	ck_assert_str_eq(jstr(jat(rep, "attached", 0), "value"), "a@b.com");
	cJSON_Delete(rep);

	/* unchanged: everything known, nothing stored */
	long long nobs = rows(db, "observation");
	rep = obs_rep(db, IDS("email", "a@b.com", "wechat_unionid", "oU1"));
	ck_assert_int_eq(jint(rep, "customer"), 1);
	ck_assert_str_eq(jstr(rep, "outcome"), "unchanged");
	ck_assert_int_eq(jlen(rep, "attached"), 0);
	cJSON_Delete(rep);
	ck_assert_int_eq(rows(db, "observation"), nobs);

	/* A second customer, then merged by an observation linking both. */
	ck_assert_int_eq(obs(db, IDS("member_card", "K2")), 2);
	rep = obs_rep(db, IDS("member_card", "K2", "email", "a@b.com", "wechat_openid", "op1"));
	ck_assert_int_eq(jint(rep, "customer"), 1);
	ck_assert_str_eq(jstr(rep, "outcome"), "merged"); /* merged wins over attached */
	ck_assert_int_eq(jlen(rep, "attached"), 1);
	ck_assert_int_eq(jlen(rep, "merged"), 1);
	const cJSON *m = jat(rep, "merged", 0);
	ck_assert_int_gt(jint(m, "merge"), 0);
	ck_assert_int_eq(jint(m, "survivor"), 1);
	ck_assert_int_eq(jint(m, "absorbed"), 2);
	cJSON_Delete(rep);
	ck_assert_int_eq(who(db, "member_card", "K2"), 1);
	ck_assert_int_eq(who(db, "wechat_openid", "op1"), 1);
	ck_assert_int_eq(canon(db, 2), 1);

	/* A repeated identifier counts once. */
	rep = obs_rep(db, IDS("phone", "13700137000", "phone", P3));
	ck_assert_int_eq(jint(rep, "customer"), 3);
	ck_assert_int_eq(jlen(rep, "attached"), 1);
	ck_assert_int_eq(jlen(rep, "rejected"), 1);
	tu_assert_contains(jstr(jat(rep, "rejected", 0), "reason"), "duplicate");
	cJSON_Delete(rep);

	/* The report is optional. */
	int64_t c = 0;
	tu_assert_ok(db, obs_rc(db, "pos", IDS("phone", P3), &c, NULL));
	ck_assert_int_eq(c, 3);
	scrm_db_close(db);
}
END_TEST

static bool has_conflict(const cJSON *arr, const char *kind, const char *value)
{
	return has_ident(arr, kind, value);
}

/* Two different unionids never end on one customer: attach path. */
START_TEST(test_unionid_conflict_attach)
{
	scrm_db *db = open_db("o.db");
	int64_t c1 = obs(db, IDS("wechat_unionid", "oU1", "phone", P1));
	cJSON *rep = obs_rep(db, IDS("wechat_unionid", "oU2", "phone", P1));
	ck_assert_int_eq(jint(rep, "customer"), c1);
	ck_assert_int_eq(jlen(rep, "attached"), 0);
	ck_assert_int_eq(jlen(rep, "conflicts"), 1);
	const cJSON *cf = jat(rep, "conflicts", 0);
	ck_assert_str_eq(jstr(cf, "kind"), "wechat_unionid");
	ck_assert_str_eq(jstr(cf, "value"), "oU2");
	ck_assert(jnull(cf, "owner"));
	tu_assert_contains(jstr(cf, "reason"), "limit 1");
	long long obs_id = jint(rep, "observation");
	ck_assert_int_gt(obs_id, 0); /* recorded, not dropped */
	cJSON_Delete(rep);
	ck_assert_int_eq(who(db, "wechat_unionid", "oU2"), -SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(db), "no customer has wechat_unionid 'oU2'");
	ck_assert_str_eq(idents(db, c1), "wechat_unionid=oU1;phone=" P1N ";");

	cJSON *ex = view(db, scrm_identity_explain_json, c1);
	ck_assert_int_eq(jlen(ex, "conflicts"), 1);
	cf = jat(ex, "conflicts", 0);
	ck_assert_str_eq(jstr(cf, "kind"), "wechat_unionid");
	ck_assert_str_eq(jstr(cf, "value"), "oU2");
	ck_assert_int_eq(jint(cf, "observation"), obs_id);
	ck_assert_int_eq(jint(cf, "target"), c1);
	ck_assert(jnull(cf, "owner"));
	tu_assert_contains(jstr(cf, "reason"), "wechat_unionid");
	cJSON_Delete(ex);
	scrm_db_close(db);
}
END_TEST

/* Two different unionids never end on one customer: merge path. */
START_TEST(test_unionid_conflict_merge)
{
	scrm_db *db = open_db("o.db");
	int64_t c1 = obs(db, IDS("wechat_unionid", "oU1", "phone", P1));
	int64_t c2 = obs(db, IDS("wechat_unionid", "oU2", "phone", P2));
	ck_assert_int_ne(c1, c2);
	cJSON *rep = obs_rep(db, IDS("phone", P1, "phone", P2, "email", "x@y.com"));
	ck_assert_int_eq(jint(rep, "customer"), c1);
	ck_assert_str_eq(jstr(rep, "outcome"), "attached");
	ck_assert_int_eq(jlen(rep, "merged"), 0);
	ck_assert_int_eq(jlen(rep, "conflicts"), 1);
	const cJSON *cf = jat(rep, "conflicts", 0);
	ck_assert_str_eq(jstr(cf, "kind"), "phone");
	ck_assert_str_eq(jstr(cf, "value"), P2N);
	ck_assert_int_eq(jint(cf, "owner"), c2);
	tu_assert_contains(jstr(cf, "reason"), "wechat_unionid");
	cJSON_Delete(rep);
	ck_assert_int_eq(canon(db, c2), c2);
	ck_assert_int_eq(who(db, "phone", P2), c2);
	ck_assert_int_eq(who(db, "email", "x@y.com"), c1);
	/* Both sides' explain show it. */
	for (int i = 0; i < 2; i++) {
		cJSON *ex = view(db, scrm_identity_explain_json, i ? c2 : c1);
		ck_assert(has_conflict(jget(ex, "conflicts"), "phone", P2N));
		cJSON_Delete(ex);
	}
	/* Same with the order of discovery reversed: the unionid is met first. */
	rep = obs_rep(db, IDS("wechat_unionid", "oU2", "phone", P1));
	ck_assert_int_eq(jint(rep, "customer"), c2);
	ck_assert_int_eq(jlen(rep, "conflicts"), 1);
	ck_assert_str_eq(jstr(jat(rep, "conflicts", 0), "value"), P1N);
	ck_assert_int_eq(jint(jat(rep, "conflicts", 0), "owner"), c1);
	cJSON_Delete(rep);
	ck_assert_int_eq(rows(db, "id_conflict"), 2);
	/* Manual merge is refused for the same reason. */
	tu_assert_rc(db, scrm_identity_merge(db, c1, c2, "same person?", NULL), SCRM_CONFLICT);
	tu_assert_contains(scrm_errmsg(db), "wechat_unionid");
	scrm_db_close(db);
}
END_TEST

/* Three customers linked by one observation: one survivor, two merges. */
START_TEST(test_three_way_merge)
{
	scrm_db *db = open_db("o.db");
	ck_assert_int_eq(obs(db, IDS("email", "e1@x.com")), 1);
	ck_assert_int_eq(obs(db, IDS("member_card", "K2")), 2);
	ck_assert_int_eq(obs(db, IDS("phone", P3)), 3);
	/* Walk: card (owner 2) → target 2; phone (owner 3) → 2 absorbs 3;
	 * email (owner 1) → 1 absorbs 2. */
	cJSON *rep = obs_rep(db, IDS("email", "E1@X.com", "phone", P3, "member_card", "K2",
				     "wechat_openid", "op4"));
	ck_assert_int_eq(jint(rep, "customer"), 1);
	ck_assert_str_eq(jstr(rep, "outcome"), "merged");
	ck_assert_int_eq(jlen(rep, "merged"), 2);
	ck_assert_int_eq(jint(jat(rep, "merged", 0), "survivor"), 2);
	ck_assert_int_eq(jint(jat(rep, "merged", 0), "absorbed"), 3);
	ck_assert_int_eq(jint(jat(rep, "merged", 1), "survivor"), 1);
	ck_assert_int_eq(jint(jat(rep, "merged", 1), "absorbed"), 2);
	long long obs_id = jint(rep, "observation");
	cJSON_Delete(rep);
	ck_assert_int_eq(rows(db, "merge_log"), 2);
	ck_assert_int_eq(canon(db, 1), 1);
	ck_assert_int_eq(canon(db, 2), 1);
	ck_assert_int_eq(canon(db, 3), 1);
	ck_assert_str_eq(idents(db, 3), "member_card=K2;phone=" P3N ";email=e1@x.com;wechat_openid=op4;");
	cJSON *h = view(db, scrm_identity_history_json, 1);
	ck_assert_int_eq(cJSON_GetArraySize(h), 2);
	for (int i = 0; i < 2; i++) {
		const cJSON *e = cJSON_GetArrayItem(h, i);
		ck_assert_str_eq(jstr(e, "op"), "merge");
		ck_assert_int_eq(jint(e, "observation"), obs_id);
		ck_assert(jnull(e, "undone_by"));
	}
	cJSON_Delete(h);
	cJSON *ex = view(db, scrm_identity_explain_json, 3);
	ck_assert_int_eq(jint(ex, "customer"), 3);
	ck_assert_int_eq(jint(ex, "canonical"), 1);
	ck_assert_int_eq(jlen(ex, "absorbed"), 2);
	ck_assert_int_eq(jat(ex, "absorbed", 0)->valueint, 2);
	ck_assert_int_eq(jat(ex, "absorbed", 1)->valueint, 3);
	cJSON_Delete(ex);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_limit_on_attach)
{
	scrm_db *db = open_db("o.db");
	int64_t c = obs(db, IDS("phone", P1));
	ck_assert_int_eq(obs(db, IDS("phone", P1, "phone", P2)), c);
	ck_assert_int_eq(obs(db, IDS("phone", P1, "phone", P3)), c);
	cJSON *rep = obs_rep(db, IDS("phone", P1, "phone", P4));
	ck_assert_int_eq(jint(rep, "customer"), c);
	ck_assert_int_eq(jlen(rep, "attached"), 0);
	ck_assert_int_eq(jlen(rep, "conflicts"), 1);
	const cJSON *cf = jat(rep, "conflicts", 0);
	ck_assert_str_eq(jstr(cf, "value"), P4N);
	ck_assert(jnull(cf, "owner"));
	tu_assert_contains(jstr(cf, "reason"), "limit 3");
	cJSON_Delete(rep);
	ck_assert_int_eq(who(db, "phone", P4), -SCRM_NOTFOUND);
	ck_assert_str_eq(idents(db, c), "phone=" P3N ";phone=" P1N ";phone=" P2N ";");
	cJSON *ex = view(db, scrm_identity_explain_json, c);
	ck_assert(has_conflict(jget(ex, "conflicts"), "phone", P4N));
	cJSON_Delete(ex);

	/* Known phones make c the target; the new card fits, new phones do not. */
	rep = obs_rep(db, IDS("member_card", "K9", "phone", P2, "phone", P1, "phone", P5, "phone",
			      P4, "phone", P3));
	ck_assert_int_eq(jint(rep, "customer"), c);
	ck_assert_str_eq(jstr(rep, "outcome"), "attached");
	ck_assert_int_eq(jlen(rep, "attached"), 1);
	ck_assert_str_eq(jstr(jat(rep, "attached", 0), "value"), "K9");
	ck_assert_int_eq(jlen(rep, "conflicts"), 2);
	ck_assert_str_eq(jstr(jat(rep, "conflicts", 0), "value"), P5N);
	ck_assert_str_eq(jstr(jat(rep, "conflicts", 1), "value"), P4N);
	cJSON_Delete(rep);
	ck_assert_int_eq(rows(db, "customer"), 1);
	scrm_db_close(db);
}
END_TEST

/* Five fresh phones in one observation: the first three in value order. */
START_TEST(test_limit_within_one_observation)
{
	scrm_db *db = open_db("o.db");
	cJSON *rep = obs_rep(db, IDS("phone", P2, "phone", P1, "phone", P5, "phone", P4, "phone", P3));
	ck_assert_str_eq(jstr(rep, "outcome"), "created");
	ck_assert_int_eq(jlen(rep, "attached"), 3);
	ck_assert_str_eq(jstr(jat(rep, "attached", 0), "value"), P5N);
	ck_assert_str_eq(jstr(jat(rep, "attached", 1), "value"), P4N);
	ck_assert_str_eq(jstr(jat(rep, "attached", 2), "value"), P3N);
	ck_assert_int_eq(jlen(rep, "conflicts"), 2);
	ck_assert_str_eq(jstr(jat(rep, "conflicts", 0), "value"), P1N);
	ck_assert_str_eq(jstr(jat(rep, "conflicts", 1), "value"), P2N);
	cJSON_Delete(rep);
	ck_assert_int_eq(who(db, "phone", P1), -SCRM_NOTFOUND);
	ck_assert_int_eq(rows(db, "id_conflict"), 2);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_never_merge_blocks)
{
	scrm_db *db = open_db("o.db");
	int64_t c1 = obs(db, IDS("phone", P1));
	int64_t c2 = obs(db, IDS("phone", P2));
	tu_assert_ok(db, scrm_identity_never_merge(db, c1, c2, "twins"));
	cJSON *rep = obs_rep(db, IDS("phone", P1, "phone", P2));
	ck_assert_int_eq(jint(rep, "customer"), c1);
	ck_assert_int_eq(jlen(rep, "merged"), 0);
	ck_assert_int_eq(jlen(rep, "conflicts"), 1);
	ck_assert_int_eq(jint(jat(rep, "conflicts", 0), "owner"), c2);
	tu_assert_contains(jstr(jat(rep, "conflicts", 0), "reason"), "never-merge");
	cJSON_Delete(rep);
	ck_assert_int_eq(canon(db, c2), c2);
	ck_assert_int_eq(who(db, "phone", P2), c2);
	int64_t mid = 77;
	tu_assert_rc(db, scrm_identity_merge(db, c2, c1, NULL, &mid), SCRM_CONFLICT);
	tu_assert_contains(scrm_errmsg(db), "never-merge");
	ck_assert_int_eq(mid, 0);
	ck_assert_int_eq(rows(db, "merge_log"), 0);

	/* The pair binds through merges: c3 absorbed by c1 still may not
	 * bring c2 in, nor may c2's side absorb c1 through a third party. */
	int64_t c3 = obs(db, IDS("email", "c3@x.com"));
	tu_assert_ok(db, scrm_identity_merge(db, c1, c3, NULL, NULL));
	rep = obs_rep(db, IDS("email", "c3@x.com", "phone", P2));
	ck_assert_int_eq(jlen(rep, "merged"), 0);
	ck_assert_int_eq(jlen(rep, "conflicts"), 1);
	cJSON_Delete(rep);
	ck_assert_int_eq(canon(db, c2), c2);
	scrm_db_close(db);
}
END_TEST

/* Junk never links: two observations sharing only junk stay apart. */
START_TEST(test_junk_links_nothing)
{
	scrm_db *db = open_db("o.db");
	int64_t a = obs(db, IDS("phone", "00000000000", "member_card", "KA", "email", "null"));
	int64_t b = obs(db, IDS("phone", "00000000000", "member_card", "KB", "email", "null"));
	int64_t c = obs(db, IDS("phone", "null", "member_card", "KC", "wechat_unionid", "0"));
	ck_assert_int_ne(a, b);
	ck_assert_int_ne(b, c);
	ck_assert_int_ne(a, c);
	ck_assert_int_eq(rows(db, "ident"), 3);
	ck_assert_int_eq(who(db, "phone", "00000000000"), -SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "blocked");
	ck_assert_str_eq(idents(db, a), "member_card=KA;");
	scrm_db_close(db);
}
END_TEST

/* Only junk: refused and nothing is stored. */
START_TEST(test_only_junk_stores_nothing)
{
	scrm_db *db = open_db("o.db");
	obs(db, IDS("phone", P1));
	char *before = table_counts(db);
	char *full = dump(db);
	int64_t c = 5;
	cJSON *rep = (cJSON *)&rep;
	tu_assert_rc(db, obs_rc(db, "pos", IDS("phone", "00000000000", "email", "null", "member_card",
					  "unknown", "phone", "12345"),
				&c, &rep),
		     SCRM_INVALID);
	ck_assert_ptr_null(rep);
	tu_assert_contains(scrm_errmsg(db), "no usable identifier");
	tu_assert_contains(scrm_errmsg(db), "blocked");
	tu_assert_contains(scrm_errmsg(db), "not a plausible phone number");
	char *after = table_counts(db);
	ck_assert_str_eq(before, after);
	free(after);
	after = dump(db);
	ck_assert_str_eq(full, after);
	free(after);
	/* No identifiers at all. */
	const char *k[1], *v[1];
	tu_assert_rc(db, scrm_identity_observe(db, "pos", 0, k, v, 0, &c, NULL), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "no identifiers");
	tu_assert_rc(db, scrm_identity_observe_json(db, "{\"channel\":\"pos\",\"ids\":{}}", &c, NULL),
		     SCRM_INVALID);
	after = table_counts(db);
	ck_assert_str_eq(before, after);
	free(after);
	free(before);
	free(full);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_observe_unknown_kind)
{
	scrm_db *db = open_db("o.db");
	char *before = dump(db);
	int64_t c = 0;
	tu_assert_rc(db, obs_rc(db, "pos", IDS("phone", P1, "fax", "123"), &c, NULL), SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(db), "'fax' is not registered");
	tu_assert_rc(db, scrm_identity_observe_json(
				 db, "{\"channel\":\"pos\",\"ids\":{\"phone\":\"" P1 "\",\"Phone\":\"1\"}}",
				 &c, NULL),
		     SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(db), "'Phone'");
	char *after = dump(db);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_observe_arguments)
{
	scrm_db *db = open_db("o.db");
	const char *k[70], *v[70];
	int64_t c = 0;
	k[0] = "phone";
	v[0] = P1;
	ck_assert_int_eq(scrm_identity_observe(NULL, "pos", 0, k, v, 1, &c, NULL), SCRM_MISUSE);
	tu_assert_rc(db, scrm_identity_observe(db, NULL, 0, k, v, 1, &c, NULL), SCRM_MISUSE);
	tu_assert_rc(db, scrm_identity_observe(db, "pos", 0, k, v, 1, NULL, NULL), SCRM_MISUSE);
	tu_assert_rc(db, scrm_identity_observe(db, "pos", 0, NULL, v, 1, &c, NULL), SCRM_MISUSE);
	tu_assert_rc(db, scrm_identity_observe(db, "", 0, k, v, 1, &c, NULL), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "channel");
	tu_assert_rc(db, scrm_identity_observe(db, "p\xff", 0, k, v, 1, &c, NULL), SCRM_INVALID);
	tu_assert_rc(db, scrm_identity_observe(db, "pos", -1, k, v, 1, &c, NULL), SCRM_RANGE);
	tu_assert_contains(scrm_errmsg(db), "negative");
	v[0] = NULL;
	tu_assert_rc(db, scrm_identity_observe(db, "pos", 0, k, v, 1, &c, NULL), SCRM_MISUSE);
	char vals[70][16];
	for (int i = 0; i < 70; i++) {
		k[i] = "wechat_openid";
		snprintf(vals[i], sizeof vals[i], "op%d", i);
		v[i] = vals[i];
	}
	tu_assert_rc(db, scrm_identity_observe(db, "pos", 0, k, v, 65, &c, NULL), SCRM_LIMIT);
	tu_assert_contains(scrm_errmsg(db), "at most 64");
	ck_assert_int_eq(rows(db, "ident"), 0);
	tu_assert_ok(db, scrm_identity_observe(db, "pos", 0, k, v, 64, &c, NULL));
	ck_assert_int_eq(rows(db, "ident"), 64);
	scrm_db_close(db);
}
END_TEST

static int obs_json(scrm_db *db, const char *json, int64_t *c)
{
	return scrm_identity_observe_json(db, json, c, NULL);
}

START_TEST(test_observe_json_forms)
{
	scrm_db *db = open_db("o.db");
	int64_t c = 0;
	char *before = dump(db);
	tu_assert_rc(db, obs_json(db, "{\"channel\":\"pos\",\"ids\":{\"phone\":\"1\"},\"shop\":1}", &c),
		     SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "unknown field 'shop'");
	tu_assert_rc(db, obs_json(db, "{\"ids\":{\"phone\":\"" P1 "\"}}", &c), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "\"channel\"");
	tu_assert_rc(db, obs_json(db, "{\"channel\":7,\"ids\":{\"phone\":\"" P1 "\"}}", &c),
		     SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "\"channel\"");
	tu_assert_rc(db, obs_json(db, "{\"channel\":\"pos\",\"ids\":[\"phone\"]}", &c), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "\"ids\"");
	tu_assert_rc(db, obs_json(db, "{\"channel\":\"pos\"}", &c), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "\"ids\"");
	tu_assert_rc(db, obs_json(db, "{\"channel\":\"pos\",\"ids\":{\"phone\":13800138000}}", &c),
		     SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "ids.phone");
	tu_assert_rc(db, obs_json(db, "{\"channel\":\"pos\",\"ids\":{\"phone\":[\"" P1 "\",null]}}", &c),
		     SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "ids.phone");
	tu_assert_rc(db, obs_json(db, "{\"channel\":\"pos\",\"at\":\"yesterday\",\"ids\":{\"phone\":\"" P1 "\"}}",
				  &c),
		     SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "RFC 3339");
	tu_assert_rc(db, obs_json(db, "{\"channel\":\"pos\",\"at\":\"2026-13-01T00:00:00Z\",\"ids\":{\"phone\":\"" P1 "\"}}",
				  &c),
		     SCRM_INVALID);
	tu_assert_rc(db, obs_json(db, "{\"channel\":\"pos\",\"at\":-5,\"ids\":{\"phone\":\"" P1 "\"}}", &c),
		     SCRM_RANGE);
	tu_assert_rc(db, obs_json(db, "{\"channel\":\"pos\",\"at\":1.5,\"ids\":{\"phone\":\"" P1 "\"}}", &c),
		     SCRM_INVALID);
	tu_assert_rc(db, obs_json(db, "{\"channel\":\"pos\",\"at\":true,\"ids\":{\"phone\":\"" P1 "\"}}", &c),
		     SCRM_INVALID);
	tu_assert_rc(db, obs_json(db, "{\"channel\":\"pos\",\"ids\":{\"phone\":\"" P1 "\"}", &c),
		     SCRM_PARSE);
	tu_assert_contains(scrm_errmsg(db), "line 1, column");
	tu_assert_rc(db, obs_json(db, "[1]", &c), SCRM_INVALID);
	tu_assert_rc(db, obs_json(db, NULL, &c), SCRM_MISUSE);
	tu_assert_rc(db, scrm_identity_observe_json(db, "{}", NULL, NULL), SCRM_MISUSE);
	char *after = dump(db);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);

	/* Accepted: RFC 3339 string time with an offset, arrays of values. */
	char *report = NULL;
	tu_assert_ok(db, scrm_identity_observe_json(
				 db,
				 "{\"channel\":\"tmall\",\"at\":\"2026-01-01T08:00:00+08:00\","
				 "\"ids\":{\"tmall_buyer_nick\":\"小明\",\"phone\":[\"" P1 "\",\"" P2 "\"]}}",
				 &c, &report));
	cJSON *rep = parse(report);
	scrm_free(report);
	ck_assert_int_eq(jint(rep, "customer"), c);
	ck_assert_int_eq(jlen(rep, "attached"), 3);
	cJSON_Delete(rep);
	cJSON *l = view(db, scrm_identity_list_json, c);
	ck_assert_int_eq(cJSON_GetArraySize(l), 3);
	const cJSON *it;
	cJSON_ArrayForEach(it, l)
	{
		ck_assert_int_eq(jint(it, "at"), T0);
		ck_assert_str_eq(jstr(it, "channel"), "tmall");
	}
	ck_assert(has_ident(l, "tmall_buyer_nick", "小明"));
	cJSON_Delete(l);
	/* Numeric time in ms; without `at` the handle's clock. */
	tu_assert_ok(db, obs_json(db, "{\"channel\":\"pos\",\"at\":1767225700000,\"ids\":{\"email\":\"a@b.cn\"}}",
				  &c));
	clk.now = T0 + 999;
	tu_assert_ok(db, obs_json(db, "{\"channel\":\"pos\",\"ids\":{\"email\":\"c@d.cn\"}}", &c));
	l = view(db, scrm_identity_list_json, who(db, "email", "a@b.cn"));
	ck_assert_int_eq(jint(cJSON_GetArrayItem(l, 0), "at"), INT64_C(1767225700000));
	cJSON_Delete(l);
	l = view(db, scrm_identity_list_json, c);
	ck_assert_int_eq(jint(cJSON_GetArrayItem(l, 0), "at"), T0 + 999);
	cJSON_Delete(l);
	/* The JSON form and the typed form give the same customers. */
	tu_assert_ok(db, obs_json(db, "{\"channel\":\"pos\",\"ids\":{\"phone\":\"+86 139 0013 9000\"}}", &c));
	ck_assert_int_eq(c, who(db, "phone", P1));
	scrm_db_close(db);
}
END_TEST

/* A scripted history: merges, conflicts, junk, never-merge, unmerge. */
static void script(scrm_db *db, int64_t *ids, size_t *n)
{
	static const char *const steps[][12] = {
		{"wechat_unionid", "oA", "phone", P1, NULL},
		{"member_card", "KB", "phone", P2, NULL},
		{"email", "c@x.com", NULL},
		{"phone", P1, "phone", P2, "email", "C@X.com", NULL},
		{"wechat_unionid", "oD", "phone", P3, NULL},
		{"phone", P3, "phone", P1, NULL},
		{"wechat_unionid", "oE", "phone", "00000000000", "email", "null", NULL},
		{"wechat_unionid", "oF", "phone", "null", NULL},
		{"phone", P4, "phone", P5, "tmall_buyer_nick", "  小红  ", NULL},
		{"phone", P4, "phone", P3, "phone", P1, NULL},
		{"tmall_buyer_nick", "小红", "member_card", "KB", NULL},
		{"wechat_openid", "op", "wechat_unionid", "oF", "email", "c@x.com", NULL},
		{"email", "h@x.com", "douyin_openid", "dyH", NULL},
	};
	*n = 0;
	for (size_t i = 0; i < SCRM_ARRAY_LEN(steps); i++) {
		clk.now = T0 + (int64_t)i * 1000;
		cJSON *rep = obs_rep(db, steps[i]);
		ids[(*n)++] = jint(rep, "customer");
		cJSON_Delete(rep);
	}
	int64_t mid = 0, uid = 0;
	clk.now = T0 + 50000;
	tu_assert_ok(db, scrm_identity_merge(db, who(db, "email", "h@x.com"),
					     who(db, "wechat_unionid", "oE"), "agent", &mid));
	ids[(*n)++] = mid;
	tu_assert_ok(db, scrm_identity_unmerge(db, 1, "wrong", &uid));
	ids[(*n)++] = uid;
	clk.now = T0 + 60000;
	ids[(*n)++] = obs(db, IDS("phone", P1, "member_card", "KB", "wechat_openid", "op2"));
}

START_TEST(test_determinism)
{
	scrm_db *a = open_db("a.db");
	scrm_db *b = open_db("b.db");
	int64_t ia[32], ib[32];
	size_t na, nb;
	script(a, ia, &na);
	script(b, ib, &nb);
	ck_assert_uint_eq(na, nb);
	for (size_t i = 0; i < na; i++)
		ck_assert_msg(ia[i] == ib[i], "step %zu: %lld vs %lld", i, (long long)ia[i],
			      (long long)ib[i]);
	long long n = rows(a, "customer");
	ck_assert_int_eq(n, rows(b, "customer"));
	ck_assert_int_ge(n, 5);
	for (int64_t id = 1; id <= n; id++) {
		view_fn fns[] = {scrm_identity_explain_json, scrm_identity_explain_dot,
				 scrm_identity_list_json, scrm_identity_history_json};
		for (size_t f = 0; f < SCRM_ARRAY_LEN(fns); f++) {
			char *x = NULL, *y = NULL;
			tu_assert_ok(a, fns[f](a, id, &x));
			tu_assert_ok(b, fns[f](b, id, &y));
			ck_assert_str_eq(x, y);
			scrm_free(x);
			scrm_free(y);
		}
	}
	scrm_db_close(a);
	scrm_db_close(b);
}
END_TEST

/* Absorbed ids stay valid forever, through chains of merges. */
START_TEST(test_canonical_chain)
{
	scrm_db *db = open_db("o.db");
	int64_t a = obs(db, IDS("phone", P1));
	int64_t b = obs(db, IDS("phone", P2));
	int64_t c = obs(db, IDS("phone", P3));
	int64_t m1 = 0, m2 = 0;
	/* C into B, then B into A. */
	tu_assert_ok(db, scrm_identity_merge(db, c, b, "c=b", &m1));
	ck_assert_int_eq(canon(db, c), b);
	tu_assert_ok(db, scrm_identity_merge(db, b, a, "b=a", &m2));
	ck_assert_int_ne(m1, m2);
	ck_assert_int_eq(canon(db, a), a);
	ck_assert_int_eq(canon(db, b), a);
	ck_assert_int_eq(canon(db, c), a);
	ck_assert_int_eq(who(db, "phone", P3), a);
	/* Observing through an absorbed customer's identifier lands on the root. */
	ck_assert_int_eq(obs(db, IDS("phone", P3, "email", "c@x.com")), a);
	ck_assert_str_eq(idents(db, c), idents(db, a));
	/* Views of an absorbed id show the survivor's graph. */
	cJSON *ex = view(db, scrm_identity_explain_json, c);
	ck_assert_int_eq(jint(ex, "customer"), c);
	ck_assert_int_eq(jint(ex, "canonical"), a);
	ck_assert_int_eq(jlen(ex, "history"), 2);
	cJSON_Delete(ex);
	ck_assert_int_eq(canon(db, 99), -SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(db), "customer 99 does not exist");
	ck_assert_int_eq(canon(db, 0), -SCRM_NOTFOUND);
	ck_assert_int_eq(canon(db, -1), -SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_identity_canonical(db, a, NULL), SCRM_MISUSE);
	/* Survives reopening. */
	scrm_db_close(db);
	db = open_db("o.db");
	ck_assert_int_eq(canon(db, c), a);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_resolve_errors)
{
	scrm_db *db = open_db("o.db");
	int64_t c = obs(db, IDS("phone", P1, "email", "a@b.com"));
	ck_assert_int_eq(who(db, "phone", "+86 13800138000"), c);
	ck_assert_int_eq(who(db, "email", " A@B.COM "), c);
	ck_assert_int_eq(who(db, "fax", "1"), -SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(db), "'fax' is not registered");
	ck_assert_int_eq(who(db, "phone", P2), -SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(db), "no customer has phone '" P2N "'");
	ck_assert_int_eq(who(db, "phone", "12345"), -SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "not a plausible");
	ck_assert_int_eq(who(db, "email", "null"), -SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "blocked");
	int64_t x;
	tu_assert_rc(db, scrm_identity_resolve(db, "phone", NULL, &x), SCRM_MISUSE);
	tu_assert_rc(db, scrm_identity_resolve(db, "phone", P1, NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_identity_resolve(NULL, "phone", P1, &x), SCRM_MISUSE);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_views)
{
	scrm_db *db = open_db("o.db");
	clk.now = T0 + 1;
	int64_t a = obs(db, IDS("email", "a@x.com", "phone", P1, "wechat_unionid", "oA"));
	clk.now = T0 + 2;
	int64_t b = 0;
	tu_assert_ok(db, obs_rc(db, "douyin", IDS("member_card", "KB", "douyin_openid", "dy1"), &b, NULL));
	clk.now = T0 + 3;
	cJSON *rep = obs_rep(db, IDS("phone", P1, "member_card", "KB"));
	long long merge_obs = jint(rep, "observation");
	long long merge_id = jint(jat(rep, "merged", 0), "merge");
	cJSON_Delete(rep);
	rep = obs_rep(db, IDS("phone", P1, "wechat_unionid", "oZ"));
	long long conf_obs = jint(rep, "observation");
	cJSON_Delete(rep);

	/* list: (priority, kind, value), with where each came from. */
	cJSON *l = view(db, scrm_identity_list_json, b);
	ck_assert_int_eq(cJSON_GetArraySize(l), 5);
	static const char *const order[][2] = {{"wechat_unionid", "oA"}, {"member_card", "KB"},
					       {"phone", P1N}, {"email", "a@x.com"},
					       {"douyin_openid", "dy1"}};
	for (int i = 0; i < 5; i++) {
		const cJSON *it = cJSON_GetArrayItem(l, i);
		ck_assert_str_eq(jstr(it, "kind"), order[i][0]);
		ck_assert_str_eq(jstr(it, "value"), order[i][1]);
		ck_assert_int_gt(jint(it, "observation"), 0);
	}
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(l, 1), "channel"), "douyin");
	ck_assert_int_eq(jint(cJSON_GetArrayItem(l, 1), "at"), T0 + 2);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(l, 0), "channel"), "pos");
	ck_assert_int_eq(jint(cJSON_GetArrayItem(l, 0), "at"), T0 + 1);
	cJSON_Delete(l);

	/* history */
	cJSON *h = view(db, scrm_identity_history_json, a);
	ck_assert_int_eq(cJSON_GetArraySize(h), 1);
	const cJSON *e = cJSON_GetArrayItem(h, 0);
	ck_assert_int_eq(jint(e, "id"), merge_id);
	ck_assert_str_eq(jstr(e, "op"), "merge");
	ck_assert_int_eq(jint(e, "survivor"), a);
	ck_assert_int_eq(jint(e, "absorbed"), b);
	ck_assert_int_eq(jint(e, "observation"), merge_obs);
	ck_assert_int_eq(jint(e, "at"), T0 + 3);
	ck_assert_str_eq(jstr(e, "reason"), "observation");
	ck_assert(jnull(e, "undone_by"));
	cJSON_Delete(h);

	/* explain */
	cJSON *ex = view(db, scrm_identity_explain_json, a);
	ck_assert_int_eq(jint(ex, "customer"), a);
	ck_assert_int_eq(jint(ex, "canonical"), a);
	ck_assert_int_eq(jlen(ex, "absorbed"), 1);
	ck_assert_int_eq(jlen(ex, "identifiers"), 5);
	ck_assert_int_eq(jlen(ex, "history"), 1);
	ck_assert_int_eq(jlen(ex, "conflicts"), 1);
	ck_assert_int_eq(jint(jat(ex, "conflicts", 0), "observation"), conf_obs);
	/* The observations that brought identifiers, merged, or conflicted. */
	ck_assert_int_eq(jlen(ex, "observations"), 4);
	const cJSON *o = jat(ex, "observations", 1);
	ck_assert_str_eq(jstr(o, "channel"), "douyin");
	ck_assert_str_eq(jstr(o, "outcome"), "created");
	ck_assert_int_eq(jint(jat(ex, "observations", 2), "id"), merge_obs);
	ck_assert_str_eq(jstr(jat(ex, "observations", 2), "outcome"), "merged");
	/* Each identifier names its observation, which is listed. */
	const cJSON *it;
	cJSON_ArrayForEach(it, jget(ex, "identifiers"))
	{
		bool found = false;
		const cJSON *ob;
		cJSON_ArrayForEach(ob, jget(ex, "observations"))
		found |= jint(ob, "id") == jint(it, "observation");
		ck_assert_msg(found, "observation %lld not listed", jint(it, "observation"));
	}
	cJSON_Delete(ex);

	/* DOT */
	char *dot = NULL;
	tu_assert_ok(db, scrm_identity_explain_dot(db, b, &dot));
	char want[128];
	snprintf(want, sizeof want, "digraph customer_%lld {", (long long)a);
	ck_assert_msg(strncmp(dot, want, strlen(want)) == 0, "DOT starts: %.60s", dot);
	tu_assert_contains(dot, "\"phone\\n" P1N "\"");
	tu_assert_contains(dot, "(absorbed)");
	snprintf(want, sizeof want, "c%lld -> c%lld", (long long)b, (long long)a);
	tu_assert_contains(dot, want);
	snprintf(want, sizeof want, "merge %lld", merge_id);
	tu_assert_contains(dot, want);
	ck_assert(dot[strlen(dot) - 2] == '}');
	scrm_free(dot);

	/* Unknown customers and bad arguments. */
	char *out = (char *)&out;
	tu_assert_rc(db, scrm_identity_explain_json(db, 42, &out), SCRM_NOTFOUND);
	ck_assert_ptr_null(out);
	tu_assert_contains(scrm_errmsg(db), "customer 42 does not exist");
	tu_assert_rc(db, scrm_identity_explain_dot(db, 42, &out), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_identity_list_json(db, 42, &out), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_identity_history_json(db, 42, &out), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_identity_explain_json(db, a, NULL), SCRM_MISUSE);
	ck_assert_int_eq(scrm_identity_list_json(NULL, a, &out), SCRM_MISUSE);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_manual_merge)
{
	scrm_db *db = open_db("o.db");
	int64_t a = obs(db, IDS("phone", P1));
	int64_t b = obs(db, IDS("phone", P2, "wechat_unionid", "oB"));
	int64_t c = obs(db, IDS("wechat_unionid", "oC"));
	int64_t mid = 0;
	clk.now = T0 + 7;
	tu_assert_ok(db, scrm_identity_merge(db, b, a, "same family account", &mid)); /* order free */
	ck_assert_int_gt(mid, 0);
	ck_assert_int_eq(canon(db, b), a); /* the older id survives */
	ck_assert_int_eq(who(db, "wechat_unionid", "oB"), a);
	cJSON *h = view(db, scrm_identity_history_json, a);
	const cJSON *e = cJSON_GetArrayItem(h, 0);
	ck_assert_int_eq(jint(e, "id"), mid);
	ck_assert_str_eq(jstr(e, "reason"), "same family account");
	ck_assert(jnull(e, "observation"));
	ck_assert_int_eq(jint(e, "at"), T0 + 7);
	cJSON_Delete(h);
	/* Already one customer, also through the absorbed id. */
	tu_assert_rc(db, scrm_identity_merge(db, a, b, NULL, NULL), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "already one customer");
	tu_assert_rc(db, scrm_identity_merge(db, a, a, NULL, NULL), SCRM_INVALID);
	tu_assert_rc(db, scrm_identity_merge(db, a, 99, NULL, NULL), SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(db), "customer 99 does not exist");
	/* A limit blocks it. */
	tu_assert_rc(db, scrm_identity_merge(db, c, b, NULL, &mid), SCRM_CONFLICT);
	tu_assert_contains(scrm_errmsg(db), "limit 1");
	ck_assert_int_eq(mid, 0);
	ck_assert_int_eq(rows(db, "merge_log"), 1);
	/* A NULL reason is "manual". */
	int64_t d = obs(db, IDS("email", "d@x.com"));
	tu_assert_ok(db, scrm_identity_merge(db, d, c, NULL, NULL));
	h = view(db, scrm_identity_history_json, c);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(h, 0), "reason"), "manual");
	cJSON_Delete(h);
	ck_assert_int_eq(scrm_identity_merge(NULL, a, b, NULL, NULL), SCRM_MISUSE);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_never_merge_api)
{
	scrm_db *db = open_db("o.db");
	int64_t a = obs(db, IDS("phone", P1));
	int64_t b = obs(db, IDS("phone", P2));
	int64_t c = obs(db, IDS("phone", P3));
	tu_assert_ok(db, scrm_identity_never_merge(db, a, b, "twins"));
	tu_assert_rc(db, scrm_identity_never_merge(db, a, b, "again"), SCRM_EXISTS);
	tu_assert_contains(scrm_errmsg(db), "already marked never-merge");
	tu_assert_rc(db, scrm_identity_never_merge(db, b, a, NULL), SCRM_EXISTS);
	tu_assert_rc(db, scrm_identity_never_merge(db, a, a, NULL), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "one customer");
	tu_assert_rc(db, scrm_identity_never_merge(db, a, 99, NULL), SCRM_NOTFOUND);
	tu_assert_ok(db, scrm_identity_merge(db, a, c, NULL, NULL));
	tu_assert_rc(db, scrm_identity_never_merge(db, c, a, NULL), SCRM_INVALID);
	tu_assert_rc(db, scrm_identity_merge(db, c, b, NULL, NULL), SCRM_CONFLICT);
	ck_assert_int_eq(scrm_identity_never_merge(NULL, a, b, NULL), SCRM_MISUSE);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_unmerge)
{
	scrm_db *db = open_db("o.db");
	int64_t a = obs(db, IDS("wechat_unionid", "oA", "phone", P1));
	int64_t b = obs(db, IDS("member_card", "KB", "phone", P2));
	cJSON *rep = obs_rep(db, IDS("phone", P1, "phone", P2));
	int64_t mid = jint(jat(rep, "merged", 0), "merge");
	cJSON_Delete(rep);
	ck_assert_int_eq(who(db, "member_card", "KB"), a);

	int64_t uid = 0;
	clk.now = T0 + 5;
	tu_assert_ok(db, scrm_identity_unmerge(db, mid, "two people", &uid));
	ck_assert_int_gt(uid, mid);
	ck_assert_int_eq(canon(db, b), b);
	ck_assert_int_eq(who(db, "member_card", "KB"), b);
	ck_assert_int_eq(who(db, "phone", P2), b);
	ck_assert_int_eq(who(db, "phone", P1), a);
	ck_assert_int_eq(who(db, "wechat_unionid", "oA"), a);
	ck_assert_str_eq(idents(db, a), "wechat_unionid=oA;phone=" P1N ";");
	ck_assert_str_eq(idents(db, b), "member_card=KB;phone=" P2N ";");

	/* Logged on both sides. */
	for (int side = 0; side < 2; side++) {
		cJSON *h = view(db, scrm_identity_history_json, side ? b : a);
		ck_assert_int_eq(cJSON_GetArraySize(h), 2);
		const cJSON *m = cJSON_GetArrayItem(h, 0), *u = cJSON_GetArrayItem(h, 1);
		ck_assert_str_eq(jstr(m, "op"), "merge");
		ck_assert_int_eq(jint(m, "undone_by"), uid);
		ck_assert_str_eq(jstr(u, "op"), "unmerge");
		ck_assert_int_eq(jint(u, "id"), uid);
		ck_assert_int_eq(jint(u, "survivor"), a);
		ck_assert_int_eq(jint(u, "absorbed"), b);
		ck_assert_str_eq(jstr(u, "reason"), "two people");
		ck_assert_int_eq(jint(u, "at"), T0 + 5);
		cJSON_Delete(h);
	}
	cJSON *ex = view(db, scrm_identity_explain_json, a);
	ck_assert_int_eq(jlen(ex, "absorbed"), 0);
	cJSON_Delete(ex);
	char *dot = NULL;
	tu_assert_ok(db, scrm_identity_explain_dot(db, a, &dot));
	tu_assert_contains(dot, "(undone)");
	tu_assert_contains(dot, "unmerge");
	scrm_free(dot);

	/* Errors. */
	tu_assert_rc(db, scrm_identity_unmerge(db, mid, NULL, &uid), SCRM_STATE);
	tu_assert_contains(scrm_errmsg(db), "already undone");
	ck_assert_int_eq(uid, 0);
	tu_assert_rc(db, scrm_identity_unmerge(db, 999, NULL, NULL), SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(db), "merge 999 does not exist");
	tu_assert_rc(db, scrm_identity_unmerge(db, uid ? uid : mid + 1, NULL, NULL), SCRM_NOTFOUND);
	ck_assert_int_eq(scrm_identity_unmerge(NULL, mid, NULL, NULL), SCRM_MISUSE);

	/* The next observation linking both sides records a conflict. */
	long long merges = rows(db, "merge_log");
	rep = obs_rep(db, IDS("phone", P1, "member_card", "KB"));
	ck_assert_int_eq(jlen(rep, "merged"), 0);
	ck_assert_int_eq(jlen(rep, "conflicts"), 1);
	tu_assert_contains(jstr(jat(rep, "conflicts", 0), "reason"), "never-merge");
	cJSON_Delete(rep);
	ck_assert_int_eq(rows(db, "merge_log"), merges);
	ck_assert_int_eq(canon(db, b), b);
	scrm_db_close(db);
}
END_TEST

/* Identifiers attached after the merge follow the identifier their
 * observation was resolved through, also along chains. */
START_TEST(test_unmerge_after_later_observations)
{
	scrm_db *db = open_db("o.db");
	int64_t a = obs(db, IDS("wechat_unionid", "oA", "phone", P1));
	int64_t b = obs(db, IDS("member_card", "KB", "phone", P2));
	cJSON *rep = obs_rep(db, IDS("phone", P1, "phone", P2));
	int64_t mid = jint(jat(rep, "merged", 0), "merge");
	cJSON_Delete(rep);
	/* Through B's card: the email came to B. */
	ck_assert_int_eq(obs(db, IDS("member_card", "KB", "email", "later@x.com")), a);
	/* Through A's unionid: the openid came to A. */
	ck_assert_int_eq(obs(db, IDS("wechat_unionid", "oA", "wechat_openid", "opA")), a);
	/* Through the email that came to B: the nick follows. */
	ck_assert_int_eq(obs(db, IDS("email", "later@x.com", "tmall_buyer_nick", "nickB")), a);
	/* Through A's phone: a third phone for A. */
	ck_assert_int_eq(obs(db, IDS("phone", P1, "phone", P3)), a);

	tu_assert_ok(db, scrm_identity_unmerge(db, mid, NULL, NULL));
	ck_assert_str_eq(idents(db, a), "wechat_unionid=oA;phone=" P3N ";phone=" P1N ";wechat_openid=opA;");
	ck_assert_str_eq(idents(db, b),
			 "member_card=KB;phone=" P2N ";email=later@x.com;tmall_buyer_nick=nickB;");
	ck_assert_int_eq(who(db, "email", "later@x.com"), b);
	ck_assert_int_eq(who(db, "tmall_buyer_nick", "nickB"), b);
	ck_assert_int_eq(who(db, "wechat_openid", "opA"), a);
	/* Later lookups land on the right side. */
	ck_assert_int_eq(obs(db, IDS("tmall_buyer_nick", "nickB", "douyin_openid", "dyB")), b);
	ck_assert_int_eq(obs(db, IDS("wechat_openid", "opA", "douyin_openid", "dyA")), a);
	scrm_db_close(db);
}
END_TEST

/* A merge made by hand is undone the same way; the ids are usable again. */
START_TEST(test_unmerge_manual_and_remerge)
{
	scrm_db *db = open_db("o.db");
	int64_t a = obs(db, IDS("phone", P1));
	int64_t b = obs(db, IDS("phone", P2));
	int64_t c = obs(db, IDS("phone", P3));
	int64_t m1 = 0, m2 = 0;
	tu_assert_ok(db, scrm_identity_merge(db, a, b, NULL, &m1));
	tu_assert_ok(db, scrm_identity_merge(db, a, c, NULL, &m2));
	tu_assert_ok(db, scrm_identity_unmerge(db, m1, NULL, NULL));
	ck_assert_int_eq(canon(db, b), b);
	ck_assert_int_eq(canon(db, c), a); /* the other merge stands */
	ck_assert_int_eq(who(db, "phone", P3), a);
	ck_assert_int_eq(who(db, "phone", P2), b);
	/* Undone pairs are never-merge; merging by hand is refused. */
	tu_assert_rc(db, scrm_identity_merge(db, a, b, NULL, NULL), SCRM_CONFLICT);
	tu_assert_rc(db, scrm_identity_never_merge(db, a, b, NULL), SCRM_EXISTS);
	/* b can still be merged with others. */
	int64_t d = obs(db, IDS("email", "d@x.com"));
	tu_assert_ok(db, scrm_identity_merge(db, d, b, NULL, NULL));
	ck_assert_int_eq(canon(db, d), b);
	scrm_db_close(db);
}
END_TEST

/* Erasure removes every identifier value of the customer's whole tree,
 * from identifiers, observation anchors and conflicts; ids stay canonical,
 * nothing resolves to them, and they cannot be merged again. */
START_TEST(test_erase)
{
	scrm_db *db = open_db("er.db");
	int64_t a = obs(db, IDS("wechat_unionid", "oErase", "phone", P1, "email", "Gone@Example.com"));
	int64_t b = obs(db, IDS("member_card", "KErase", "phone", P2));
	ck_assert_int_eq(obs(db, IDS("phone", P1, "member_card", "KErase")), a);
	ck_assert_int_eq(canon(db, b), a);
	/* A conflict carrying a second unionid: its value belongs to nobody
	 * but was recorded against a. */
	ck_assert_int_eq(obs(db, IDS("phone", P2, "wechat_unionid", "oOther")), a);
	int64_t c = obs(db, IDS("phone", P3));
	char *before = dump(db);
	int64_t n = -1;
	const int64_t bogus[] = {b, 999};
	tu_assert_rc(db, scrm_identity_erase(db, bogus, 2, &n), SCRM_NOTFOUND);
	ck_assert_int_eq(n, 0);
	char *after = dump(db);
	ck_assert_str_eq(before, after);
	free(after);
	free(before);
	tu_assert_rc(db, scrm_identity_erase(db, NULL, 1, &n), SCRM_MISUSE);

	clk.now = T0 + 5000;
	const int64_t one[] = {b}; /* any id of the tree */
	tu_assert_ok(db, scrm_identity_erase(db, one, 1, &n));
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(who(db, "phone", P1), -SCRM_NOTFOUND);
	ck_assert_int_eq(who(db, "phone", P2), -SCRM_NOTFOUND);
	ck_assert_int_eq(who(db, "wechat_unionid", "oErase"), -SCRM_NOTFOUND);
	ck_assert_int_eq(who(db, "member_card", "KErase"), -SCRM_NOTFOUND);
	ck_assert_int_eq(who(db, "phone", P3), c);
	ck_assert_int_eq(canon(db, b), a);
	int64_t at = -1;
	tu_assert_ok(db, scrm_identity_erased(db, b, &at));
	ck_assert_int_eq(at, T0 + 5000);
	tu_assert_ok(db, scrm_identity_erased(db, c, &at));
	ck_assert_int_eq(at, 0);
	tu_assert_rc(db, scrm_identity_erased(db, 999, &at), SCRM_NOTFOUND);
	char *out = NULL;
	tu_assert_ok(db, scrm_identity_list_json(db, a, &out));
	ck_assert_str_eq(out, "[]");
	scrm_free(out);
	/* Nothing personal is left in any identity table. */
	char *all = dump(db);
	static const char *const gone[] = {"oErase", P1N, P2N, "gone@example.com", "KErase", "oOther"};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(gone); i++)
		ck_assert_msg(strstr(all, gone[i]) == NULL, "'%s' survived erasure", gone[i]);
	ck_assert_ptr_nonnull(strstr(all, P3N));
	free(all);
	/* Erased customers cannot merge; erasing again is a no-op. */
	tu_assert_rc(db, scrm_identity_merge(db, a, c, NULL, NULL), SCRM_STATE);
	tu_assert_ok(db, scrm_identity_erase(db, one, 1, &n));
	ck_assert_int_eq(n, 0);
	/* The same values seen again make a new customer. */
	int64_t d = obs(db, IDS("phone", P1));
	ck_assert_int_gt(d, c);
	ck_assert_int_eq(who(db, "phone", P1), d);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_readonly)
{
	scrm_db *db = open_db("o.db");
	int64_t a = obs(db, IDS("phone", P1));
	int64_t b = obs(db, IDS("phone", P2));
	scrm_db_close(db);
	db = tu_open(tu_path("o.db"), SCRM_OPEN_READONLY);
	int64_t c = 0;
	tu_assert_rc(db, obs_rc(db, "pos", IDS("phone", P3), &c, NULL), SCRM_READONLY);
	tu_assert_contains(scrm_errmsg(db), "read-only");
	tu_assert_rc(db, scrm_identity_observe_json(db, "{\"channel\":\"pos\",\"ids\":{\"phone\":\"" P3 "\"}}",
						    &c, NULL),
		     SCRM_READONLY);
	tu_assert_rc(db, scrm_identity_kind_set(db, "{\"name\":\"x\"}"), SCRM_READONLY);
	tu_assert_rc(db, scrm_identity_merge(db, a, b, NULL, NULL), SCRM_READONLY);
	tu_assert_rc(db, scrm_identity_never_merge(db, a, b, NULL), SCRM_READONLY);
	tu_assert_rc(db, scrm_identity_unmerge(db, 1, NULL, NULL), SCRM_READONLY);
	/* Reading works. */
	ck_assert_int_eq(who(db, "phone", P1), a);
	ck_assert_int_eq(canon(db, b), b);
	char *out = NULL;
	tu_assert_ok(db, scrm_identity_explain_json(db, a, &out));
	scrm_free(out);
	tu_assert_ok(db, scrm_identity_kinds_json(db, &out));
	scrm_free(out);
	ck_assert_int_eq(rows(db, "customer"), 2);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_batch_rollback)
{
	scrm_db *db = open_db("o.db");
	int64_t a = obs(db, IDS("phone", P1));
	char *before = dump(db);
	tu_assert_ok(db, scrm_db_begin(db));
	ck_assert_int_eq(obs(db, IDS("phone", P2)), a + 1);
	ck_assert_int_eq(obs(db, IDS("phone", P2, "phone", P1)), a);
	ck_assert_int_eq(obs(db, IDS("phone", P3, "email", "x@y.com")), a + 2);
	/* A refused call inside the batch leaves the batch usable. */
	int64_t c = 0;
	tu_assert_rc(db, obs_rc(db, "pos", IDS("fax", "1"), &c, NULL), SCRM_NOTFOUND);
	ck_assert_int_eq(who(db, "phone", P2), a);
	ck_assert_int_eq(scrm_db_batch_depth(db), 1);
	tu_assert_ok(db, scrm_db_rollback(db));
	char *after = dump(db);
	ck_assert_str_eq(before, after);
	free(after);
	ck_assert_int_eq(who(db, "phone", P2), -SCRM_NOTFOUND);
	/* Ids are issued again from where the file stands. */
	ck_assert_int_eq(obs(db, IDS("phone", P3)), a + 1);
	/* Committed batches keep everything. */
	tu_assert_ok(db, scrm_db_begin(db));
	obs(db, IDS("phone", P4));
	obs(db, IDS("phone", P4, "phone", P3));
	tu_assert_ok(db, scrm_db_commit(db));
	ck_assert_int_eq(who(db, "phone", P4), a + 1);
	free(before);
	scrm_db_close(db);
}
END_TEST

/* Allocation failure at every site of an observe with a report: each
 * failure is SCRM_NOMEM and leaves the database exactly as it was. */
static void alloc_fail_observe(bool cold)
{
	scrm_db *db = open_db("af.db");
	obs(db, IDS("wechat_unionid", "oA", "phone", P1));
	obs(db, IDS("member_card", "KB", "phone", P2));
	obs(db, IDS("wechat_unionid", "oC", "phone", P3));
	char *before = dump(db);
	const char *kinds[] = {"phone", "phone", "phone", "email", "email", "member_card"};
	const char *values[] = {P1, P2, P3, "new@x.com", "null", "KB"};
	long nth;
	int rc = SCRM_NOMEM;
	for (nth = 1; nth < 10000; nth++) {
		if (cold) {
			scrm_db_close(db);
			db = open_db("af.db");
		}
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		int64_t c = -1;
		char *report = (char *)&report;
		rc = scrm_identity_observe(db, "pos", 0, kinds, values, 6, &c, &report);
		scrm_db_test_alloc_fail(db, 0);
		if (rc == SCRM_OK) {
			ck_assert_ptr_nonnull(report);
			cJSON *rep = parse(report);
			scrm_free(report);
			ck_assert_str_eq(jstr(rep, "outcome"), "merged");
			ck_assert_int_eq(jlen(rep, "conflicts"), 1);
			cJSON_Delete(rep);
			break;
		}
		ck_assert_msg(rc == SCRM_NOMEM, "nth=%ld: %s: %s", nth, scrm_errstr(rc), scrm_errmsg(db));
		ck_assert_msg(report == NULL, "nth=%ld: report set on failure", nth);
		char *after = dump(db);
		ck_assert_msg(strcmp(before, after) == 0, "nth=%ld: database changed by a failed observe",
			      nth);
		free(after);
	}
	ck_assert_int_eq(rc, SCRM_OK);
	ck_assert_int_gt(nth, 1);
	/* KB's customer absorbed oC's; oA's stays apart (one unionid each). */
	ck_assert_int_eq(who(db, "member_card", "KB"), 2);
	ck_assert_int_eq(canon(db, 3), 2);
	ck_assert_int_eq(who(db, "phone", P1), 1);
	free(before);
	scrm_db_close(db);
}

/* Inside a batch observe opens no savepoint (core-int.h,
 * scrm__tx_begin_unguarded): a failure before its first write leaves the
 * batch going; a failure after it (here: the report cannot be allocated)
 * rolls the whole batch back, refuses further calls with SCRM_STATE, and
 * commit says so. Either way nothing of a failed call stays. */
START_TEST(test_alloc_fail_observe_in_batch)
{
	scrm_db *db = open_db("afb.db");
	obs(db, IDS("wechat_unionid", "oA", "phone", P1));
	obs(db, IDS("member_card", "KB", "phone", P2));
	char *before = dump(db);
	const char *kinds[] = {"phone", "member_card", "email"};
	const char *values[] = {P2, "KC", "new@x.com"};
	int doomed = 0, kept = 0;
	long nth;
	for (nth = 1; nth < 10000; nth++) {
		tu_assert_ok(db, scrm_db_begin(db));
		int64_t first = obs(db, IDS("phone", P3));
		char *mid = dump(db);
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		int64_t c = -1;
		char *report = NULL;
		int rc = scrm_identity_observe(db, "pos", 0, kinds, values, 3, &c, &report);
		scrm_db_test_alloc_fail(db, 0);
		if (rc == SCRM_OK) {
			scrm_free(report);
			tu_assert_ok(db, scrm_db_rollback(db));
			free(mid);
			break;
		}
		ck_assert_msg(rc == SCRM_NOMEM, "nth=%ld: %s", nth, scrm_errmsg(db));
		ck_assert_ptr_null(report);
		ck_assert_int_eq(scrm_db_batch_depth(db), 1);
		int64_t x = 0;
		int rc2 = obs_rc(db, "pos", IDS("phone", P4), &x, NULL);
		if (rc2 == SCRM_OK) {
			/* Failed before writing: the batch holds exactly what it held. */
			kept++;
			ck_assert_int_eq(who(db, "phone", P3), first);
			tu_assert_ok(db, scrm_db_rollback(db));
		} else {
			doomed++;
			tu_assert_rc(db, rc2, SCRM_STATE);
			tu_assert_rc(db, scrm_db_commit(db), SCRM_STATE);
			ck_assert_int_eq(scrm_db_batch_depth(db), 0);
		}
		char *after = dump(db);
		ck_assert_msg(strcmp(before, after) == 0, "nth=%ld: state left behind", nth);
		free(after);
		free(mid);
		/* The handle works normally after the batch ended. */
		ck_assert_int_eq(who(db, "phone", P3), -SCRM_NOTFOUND);
	}
	/* observe allocates only for its report, after writing; refusals
	 * before the first write are covered by test_batch_rollback. */
	ck_assert_int_eq(kept, 0);
	ck_assert_int_gt(doomed, 0);
	free(before);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_alloc_fail_observe_warm)
{
	alloc_fail_observe(false);
}
END_TEST

START_TEST(test_alloc_fail_observe_cold)
{
	alloc_fail_observe(true);
}
END_TEST

START_TEST(test_alloc_fail_views)
{
	scrm_db *db = open_db("af.db");
	script(db, (int64_t[32]){0}, &(size_t){0});
	view_fn fns[] = {scrm_identity_explain_json, scrm_identity_explain_dot,
			 scrm_identity_list_json, scrm_identity_history_json};
	for (size_t f = 0; f < SCRM_ARRAY_LEN(fns); f++) {
		char *want = NULL;
		tu_assert_ok(db, fns[f](db, 1, &want));
		long nth;
		for (nth = 1; nth < 1000; nth++) {
			char *out = (char *)&out;
			tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
			int rc = fns[f](db, 1, &out);
			scrm_db_test_alloc_fail(db, 0);
			if (rc == SCRM_OK) {
				ck_assert_str_eq(out, want);
				scrm_free(out);
				break;
			}
			ck_assert_msg(rc == SCRM_NOMEM, "view %zu nth=%ld: %s", f, nth, scrm_errstr(rc));
			ck_assert_ptr_null(out);
		}
		ck_assert_int_gt(nth, 1);
		scrm_free(want);
	}
	/* And the kinds listing / normalize / resolve. */
	for (long nth = 1; nth < 1000; nth++) {
		char *out = (char *)&out;
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		int rc = scrm_identity_kinds_json(db, &out);
		scrm_db_test_alloc_fail(db, 0);
		if (rc == SCRM_OK) {
			scrm_free(out);
			break;
		}
		ck_assert_int_eq(rc, SCRM_NOMEM);
		ck_assert_ptr_null(out);
	}
	scrm_db_close(db);
}
END_TEST

/* Allocation failure while the kinds are (re)loaded does not poison the
 * cache: later calls see every kind. */
START_TEST(test_alloc_fail_kind_set)
{
	scrm_db *db = open_db("af.db");
	char *before = dump(db);
	long nth;
	for (nth = 1; nth < 1000; nth++) {
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		int rc = scrm_identity_kind_set(db, "{\"name\":\"shop_id\",\"normalizer\":\"pattern\","
						    "\"pattern\":\"^S(\\\\d+)$\",\"blocklist\":[\"0\"],"
						    "\"block_patterns\":[\"^9+$\"]}");
		scrm_db_test_alloc_fail(db, 0);
		if (rc == SCRM_OK)
			break;
		ck_assert_msg(rc == SCRM_NOMEM, "nth=%ld: %s", nth, scrm_errstr(rc));
		char *after = dump(db);
		ck_assert_str_eq(before, after);
		free(after);
	}
	ck_assert_int_gt(nth, 3);
	free(before);
	for (nth = 1; nth < 1000; nth++) {
		char *out = NULL;
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		int rc = scrm_identity_normalize(db, "shop_id", "S42", &out);
		scrm_db_test_alloc_fail(db, 0);
		if (rc == SCRM_OK) {
			ck_assert_str_eq(out, "42");
			scrm_free(out);
			break;
		}
		ck_assert_int_eq(rc, SCRM_NOMEM);
	}
	ck_assert_int_eq(obs(db, IDS("shop_id", "S42", "phone", P1)), 1);
	ck_assert_int_eq(who(db, "phone", P1), 1);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------------ suite */

/* ------------------------------------------ regressions found by fuzzing */

/* A kind set inside a nested batch that is rolled back is gone at once,
 * although the outer transaction (and the handle's kind cache) goes on:
 * nothing may be normalized or stored with the rolled-back definition. */
START_TEST(test_kind_rolled_back_savepoint)
{
	scrm_db *db = open_db("k.db");
	char *out = NULL;
	int64_t c = 0;
	tu_assert_ok(db, scrm_db_begin(db));
	tu_assert_ok(db, scrm_db_begin(db));
	tu_assert_ok(db, scrm_identity_kind_set(db, "{\"name\":\"temp_id\"}"));
	tu_assert_ok(db, scrm_identity_kind_set(db, "{\"name\":\"tmall_buyer_nick\","
						    "\"normalizer\":\"casefold\"}"));
	tu_assert_ok(db, scrm_identity_normalize(db, "temp_id", "t1", &out));
	scrm_free(out);
	tu_assert_ok(db, scrm_db_rollback(db));
	out = NULL;
	tu_assert_rc(db, scrm_identity_normalize(db, "temp_id", "t1", &out), SCRM_NOTFOUND);
	tu_assert_rc(db, obs_rc(db, "pos", IDS("temp_id", "t1"), &c, NULL), SCRM_NOTFOUND);
	norm_ok(db, "tmall_buyer_nick", "MiXed", "MiXed");
	tu_assert_ok(db, scrm_db_commit(db));
	ck_assert_int_eq(rows(db, "ident"), 0);
	ck_assert_int_eq(rows(db, "id_kind"), 9);
	scrm_db_close(db);
}
END_TEST

/* A handle that saw a kind inside a batch it rolled back must not take
 * another handle's later change for the one it saw: kind revisions are
 * never reused. */
START_TEST(test_kind_rolled_back_other_handle)
{
	scrm_db *a = open_db("k.db");
	scrm_db *b = tu_open(tu_path("k.db"), 0);
	tu_assert_ok(a, scrm_db_begin(a));
	tu_assert_ok(a, scrm_identity_kind_set(a, "{\"name\":\"nick\",\"normalizer\":\"casefold\"}"));
	norm_ok(a, "nick", "ABC", "abc");
	tu_assert_ok(a, scrm_db_rollback(a));
	/* No call on a in between: its cache still holds the rolled-back kind. */
	tu_assert_ok(b, scrm_identity_kind_set(b, "{\"name\":\"nick\",\"normalizer\":\"trim\"}"));
	norm_ok(b, "nick", "ABC", "ABC");
	norm_ok(a, "nick", "ABC", "ABC");
	scrm_db_close(b);
	scrm_db_close(a);
}
END_TEST

/* Blocklist entries are compared after normalization: an entry blocks
 * every way of writing it, and an entry that is itself not in normal form
 * still blocks its normal form. */
START_TEST(test_normalize_blocklist_normalized)
{
	scrm_db *db = open_db("n.db");
	tu_assert_ok(db, scrm_identity_kind_set(
				 db, "{\"name\":\"hotline\",\"normalizer\":\"phone\","
				     "\"blocklist\":[\"13800138000\",\"+86 10 1234 5678\"]}"));
	norm_bad(db, "hotline", "13800138000", "blocked");
	norm_bad(db, "hotline", "138 0013 8000", "blocked");
	norm_bad(db, "hotline", "+86 138-0013-8000", "blocked");
	norm_bad(db, "hotline", "010-12345678", "blocked");
	norm_bad(db, "hotline", "+861012345678", "blocked");
	norm_ok(db, "hotline", "139 0013 9000", "+8613900139000");
	tu_assert_ok(db, scrm_identity_kind_set(
				 db, "{\"name\":\"shop\",\"normalizer\":\"casefold\","
				     "\"blocklist\":[\"Test\"]}"));
	norm_bad(db, "shop", "Test", "blocked");
	norm_bad(db, "shop", "TEST", "blocked");
	norm_bad(db, "shop", " test ", "blocked");
	norm_ok(db, "shop", "Tester", "tester");
	tu_assert_ok(db, scrm_identity_kind_set(
				 db, "{\"name\":\"code\",\"blocklist\":[\" x \"]}"));
	norm_bad(db, "code", "x", "blocked");
	tu_assert_ok(db, scrm_identity_kind_set(
				 db, "{\"name\":\"mail\",\"normalizer\":\"email\","
				     "\"blocklist\":[\"Test@Example.com\"]}"));
	norm_bad(db, "mail", "test@example.com", "blocked");
	norm_bad(db, "mail", "TEST@EXAMPLE.COM", "blocked");
	tu_assert_ok(db, scrm_identity_kind_set(
				 db, "{\"name\":\"card\",\"normalizer\":\"pattern\","
				     "\"pattern\":\"^(?:VIP-?)?(\\\\d{8})$\",\"blocklist\":[\"VIP-00000000\"]}"));
	norm_bad(db, "card", "00000000", "blocked");
	norm_bad(db, "card", "VIP00000000", "blocked");
	norm_ok(db, "card", "VIP-12345678", "12345678");
	/* Shipped junk lists behave as before. */
	norm_ok(db, "member_card", "0001", "0001");
	norm_bad(db, "phone", "00000000000", "blocked");
	/* Blocked values are never stored. */
	int64_t c = 0;
	tu_assert_rc(db, obs_rc(db, "pos", IDS("hotline", "138 0013 8000", "shop", "TEST"), &c, NULL),
		     SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "blocked");
	tu_assert_rc(db, scrm_identity_resolve(db, "hotline", "+8613800138000", &c), SCRM_INVALID);
	ck_assert_int_eq(rows(db, "ident"), 0);
	scrm_db_close(db);
}
END_TEST

/* \C matches one byte even in UTF mode: a pattern could store half a
 * character (not UTF-8) or read past one. Refused when the kind is set. */
START_TEST(test_normalize_pattern_no_backslash_c)
{
	scrm_db *db = open_db("n.db");
	kind_err(db, "{\"name\":\"half\",\"normalizer\":\"pattern\",\"pattern\":\"^(\\\\C)\"}",
		 SCRM_INVALID, "\\C");
	kind_err(db, "{\"name\":\"half\",\"block_patterns\":[\"\\\\C\\\\C(.)\"]}", SCRM_INVALID,
		 "\\C");
	/* A literal backslash-C is still fine. */
	tu_assert_ok(db, scrm_identity_kind_set(
				 db, "{\"name\":\"bs\",\"normalizer\":\"pattern\",\"pattern\":\"^(\\\\\\\\C\\\\d+)$\"}"));
	norm_ok(db, "bs", "\\C12", "\\C12");
	scrm_db_close(db);
}
END_TEST

/* A control character is reported as one, not as bad UTF-8 (which the
 * value is not); the value stays refused and unstored. */
START_TEST(test_normalize_control_reason)
{
	scrm_db *db = open_db("n.db");
	norm_bad(db, "wechat_unionid", "o\x01X", "control character");
	norm_bad(db, "wechat_unionid", "\x1b[0m", "control character");
	norm_bad(db, "tmall_buyer_nick", "nick\x7f", "control character");
	norm_bad(db, "email", "a\x7f@b.com", "control character");
	norm_bad(db, "wechat_unionid", "o\xff" "X", "UTF-8");
	norm_ok(db, "wechat_unionid", "\t oX \r\n", "oX");
	int64_t c = 0;
	tu_assert_rc(db, obs_rc(db, "pos", IDS("wechat_unionid", "o\x01X"), &c, NULL), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "control character");
	ck_assert_int_eq(rows(db, "ident"), 0);
	scrm_db_close(db);
}
END_TEST

static Suite *identity_suite(void)
{
	Suite *s = suite_create("identity");
	TCase *tc = tcase_create("kinds");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_add_test(tc, test_kinds_defaults);
	tcase_add_test(tc, test_kind_set_add_replace);
	tcase_add_test(tc, test_kind_set_errors);
	tcase_add_test(tc, test_kind_cache_refresh);
	tcase_add_test(tc, test_kind_rolled_back);
	tcase_add_test(tc, test_kind_rolled_back_savepoint);
	tcase_add_test(tc, test_kind_rolled_back_other_handle);
	suite_add_tcase(s, tc);

	tc = tcase_create("normalize");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_add_test(tc, test_normalize_phone);
	tcase_add_test(tc, test_normalize_phone_beijing_landline);
	tcase_add_test(tc, test_normalize_blocked);
	tcase_add_test(tc, test_normalize_email);
	tcase_add_test(tc, test_normalize_trim_casefold);
	tcase_add_test(tc, test_normalize_pattern);
	tcase_add_test(tc, test_normalize_block_patterns);
	tcase_add_test(tc, test_normalize_bad_text);
	tcase_add_test(tc, test_text_out_is_utf8);
	tcase_add_test(tc, test_normalize_blocklist_normalized);
	tcase_add_test(tc, test_normalize_pattern_no_backslash_c);
	tcase_add_test(tc, test_normalize_control_reason);
	suite_add_tcase(s, tc);

	tc = tcase_create("observe");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_add_test(tc, test_observe_outcomes);
	tcase_add_test(tc, test_unionid_conflict_attach);
	tcase_add_test(tc, test_unionid_conflict_merge);
	tcase_add_test(tc, test_three_way_merge);
	tcase_add_test(tc, test_limit_on_attach);
	tcase_add_test(tc, test_limit_within_one_observation);
	tcase_add_test(tc, test_never_merge_blocks);
	tcase_add_test(tc, test_junk_links_nothing);
	tcase_add_test(tc, test_only_junk_stores_nothing);
	tcase_add_test(tc, test_observe_unknown_kind);
	tcase_add_test(tc, test_observe_arguments);
	tcase_add_test(tc, test_observe_json_forms);
	tcase_add_test(tc, test_determinism);
	tcase_add_test(tc, test_canonical_chain);
	tcase_add_test(tc, test_resolve_errors);
	tcase_add_test(tc, test_views);
	suite_add_tcase(s, tc);

	tc = tcase_create("merge");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_add_test(tc, test_manual_merge);
	tcase_add_test(tc, test_never_merge_api);
	tcase_add_test(tc, test_unmerge);
	tcase_add_test(tc, test_unmerge_after_later_observations);
	tcase_add_test(tc, test_unmerge_manual_and_remerge);
	tcase_add_test(tc, test_erase);
	suite_add_tcase(s, tc);

	tc = tcase_create("robustness");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_readonly);
	tcase_add_test(tc, test_batch_rollback);
	tcase_add_test(tc, test_alloc_fail_observe_warm);
	tcase_add_test(tc, test_alloc_fail_observe_cold);
	tcase_add_test(tc, test_alloc_fail_observe_in_batch);
	tcase_add_test(tc, test_alloc_fail_views);
	tcase_add_test(tc, test_alloc_fail_kind_set);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(identity_suite());
}
