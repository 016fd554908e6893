/*
 * Fuzz target for the identifier normalizers and kind definitions: the
 * first byte picks a kind (shipped, or one of a few custom ones) and the
 * rest is the raw value; or the input is a kind definition, a newline and
 * a value, tried inside a batch that is rolled back. Without SCRM_LIBFUZZER
 * a main() runs files or directories of inputs (the corpus is a test).
 *
 * libFuzzer build by hand, from the source root (the library compiled with
 * the target so that coverage reaches it):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DSCRM_LIBFUZZER \
 *     -Iinclude -Ibuild/include -Ilib -Ilib/core tests/fuzz/normalize_fuzzer.c \
 *     $(ls lib/core/[a-z]*.c lib/identity/[a-z]*.c lib/rules/[a-z]*.c) \
 *     -lsqlite3 -lcjson -lpcre2-8 -lxxhash -lm -o /tmp/normalize_fuzzer
 *   /tmp/normalize_fuzzer -max_total_time=300 /tmp/corpus tests/fuzz/corpus/normalize
 * (or -Dfuzzing=true, which builds build/tests/fuzz/normalize_libfuzzer).
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "scrm/identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a finding: crash so the fuzzer records it. */
#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "normalize_fuzzer: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                         \
			abort();                                                          \
		}                                                                         \
	} while (0)

static const char *const kinds[] = {
	"wechat_unionid", "member_card", "phone", "email", "wecom_external_userid",
	"wechat_openid", "douyin_openid", "tmall_buyer_nick", "youzan_fans_id",
	/* custom, registered below */
	"fz_fold", "fz_card", "fz_order", "fz_blocked"};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static const char *const custom[] = {
	"{\"name\":\"fz_fold\",\"normalizer\":\"casefold\",\"blocklist\":[\"test\"],"
	"\"block_patterns\":[\"^x+$\"]}",
	"{\"name\":\"fz_card\",\"normalizer\":\"pattern\",\"limit\":1,"
	"\"pattern\":\"^(?:VIP-?)?(\\\\d{4,12})$\"}",
	"{\"name\":\"fz_order\",\"normalizer\":\"pattern\",\"pattern\":\"[A-Z]{2}\\\\d+|(\\\\p{Han}+)\"}",
	"{\"name\":\"fz_blocked\",\"normalizer\":\"trim\",\"block_patterns\":[\"^(a|aa)+$\",\"\\\\s\"]}",
};

static scrm_db *db;
static char *kinds_before;

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

static void init(void)
{
	if (db)
		return;
	CHECK(scrm_db_open(":memory:", NULL, &db) == SCRM_OK);
	for (size_t i = 0; i < sizeof custom / sizeof custom[0]; i++)
		CHECK(scrm_identity_kind_set(db, custom[i]) == SCRM_OK);
	CHECK(scrm_identity_kinds_json(db, &kinds_before) == SCRM_OK);
}

/* Normalize value as `kind`, checking everything that must hold. */
static void check_value(const char *kind, const char *value, bool pattern_kind)
{
	char *out = (char *)&out;
	int rc = scrm_identity_normalize(db, kind, value, &out);
	CHECK(rc == SCRM_OK || rc == SCRM_INVALID);
	int64_t c = 0;
	int rrc = scrm_identity_resolve(db, kind, value, &c);
	if (rc != SCRM_OK) {
		CHECK(out == NULL);
		CHECK(utf8_ok(scrm_errmsg(db)));
		CHECK(rrc == SCRM_INVALID);
		return;
	}
	CHECK(rrc == SCRM_NOTFOUND); /* nothing is ever stored here */
	CHECK(out != NULL);
	size_t n = strlen(out);
	CHECK(n >= 1 && n <= 256);
	CHECK(utf8_ok(out));
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)out[i] >= 0x20);
	/* Trimmed. */
	CHECK(out[0] != ' ' && out[n - 1] != ' ');
	CHECK(!(n >= 3 && memcmp(out + n - 3, "\xE3\x80\x80", 3) == 0));
	if (strcmp(kind, "phone") == 0) {
		CHECK(out[0] == '+' && n >= 9 && n <= 16);
		for (size_t i = 1; i < n; i++)
			CHECK(out[i] >= '0' && out[i] <= '9');
		CHECK(out[1] != '0');
	}
	if (strcmp(kind, "email") == 0 || strcmp(kind, "fz_fold") == 0) {
		for (size_t i = 0; i < n; i++)
			CHECK(!(out[i] >= 'A' && out[i] <= 'Z'));
	}
	if (strcmp(kind, "email") == 0) {
		const char *at = strchr(out, '@');
		CHECK(at && at > out && !strchr(at + 1, '@') && strchr(at + 1, '.'));
	}
	/* A stored form normalizes to itself (patterns need not re-match). */
	if (!pattern_kind) {
		char *again = NULL;
		rc = scrm_identity_normalize(db, kind, out, &again);
		if (rc != SCRM_OK)
			fprintf(stderr, "'%s' -> '%s' -> %s\n", value, out, scrm_errmsg(db));
		CHECK(rc == SCRM_OK);
		CHECK(strcmp(again, out) == 0);
		scrm_free(again);
	}
	scrm_free(out);
}

/* A kind definition, tried and rolled back: nothing may stick. */
static void check_definition(const char *def, const char *value)
{
	CHECK(scrm_db_begin(db) == SCRM_OK);
	int rc = scrm_identity_kind_set(db, def);
	CHECK(rc == SCRM_OK || rc == SCRM_PARSE || rc == SCRM_INVALID || rc == SCRM_RANGE);
	CHECK(utf8_ok(scrm_errmsg(db)));
	if (rc == SCRM_OK) {
		cJSON *j = cJSON_Parse(def);
		CHECK(j != NULL);
		const char *name = cJSON_GetObjectItemCaseSensitive(j, "name")->valuestring;
		char *got = NULL;
		CHECK(scrm_identity_kind_get(db, name, &got) == SCRM_OK);
		cJSON *g = cJSON_Parse(got);
		CHECK(g != NULL);
		cJSON_Delete(g);
		scrm_free(got);
		char *out = NULL;
		rc = scrm_identity_normalize(db, name, value, &out);
		CHECK(rc == SCRM_OK || rc == SCRM_INVALID);
		if (rc == SCRM_OK) {
			CHECK(utf8_ok(out) && strlen(out) >= 1 && strlen(out) <= 256);
			/* Usable in an observation too. */
			const char *k[1] = {name}, *v[1] = {value};
			int64_t c = 0;
			char *report = NULL;
			rc = scrm_identity_observe(db, "fuzz", 0, k, v, 1, &c, &report);
			CHECK(rc == SCRM_OK);
			CHECK(c == 1 && report && utf8_ok(report));
			int64_t r = 0;
			CHECK(scrm_identity_resolve(db, name, value, &r) == SCRM_OK && r == 1);
			scrm_free(report);
		}
		scrm_free(out);
		cJSON_Delete(j);
	}
	CHECK(scrm_db_rollback(db) == SCRM_OK);
	/* The kinds and their cache are as before. */
	char *now = NULL;
	CHECK(scrm_identity_kinds_json(db, &now) == SCRM_OK);
	CHECK(strcmp(now, kinds_before) == 0);
	scrm_free(now);
	char *out = NULL;
	CHECK(scrm_identity_normalize(db, "phone", "138 0013 8000", &out) == SCRM_OK);
	CHECK(strcmp(out, "+8613800138000") == 0);
	scrm_free(out);
	CHECK(scrm_identity_normalize(db, "fz_card", "VIP-1234", &out) == SCRM_OK);
	CHECK(strcmp(out, "1234") == 0);
	scrm_free(out);
	int64_t c = 0;
	CHECK(scrm_identity_canonical(db, 1, &c) == SCRM_NOTFOUND);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	if (size < 1 || size > 4096)
		return 0;
	char *text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	unsigned sel = data[0];
	if (sel >= 0xF0) {
		/* "definition\nvalue" */
		char *nl = strchr(text, '\n');
		const char *value = "";
		if (nl) {
			*nl = '\0';
			value = nl + 1;
		}
		check_definition(text, value);
	} else {
		size_t k = sel % NKINDS;
		bool pattern_kind = strcmp(kinds[k], "fz_card") == 0 || strcmp(kinds[k], "fz_order") == 0;
		check_value(kinds[k], text, pattern_kind);
	}
	free(text);
	return 0;
}

#ifndef SCRM_LIBFUZZER
static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return 1;
	}
	uint8_t *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			uint8_t *b = realloc(buf, cap);
			if (!b) {
				free(buf);
				fclose(f);
				return 1;
			}
			buf = b;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		if (got == 0)
			break;
		n += got;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

static int run_path(const char *path, int *count)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		perror(path);
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*count)++;
		return run_file(path);
	}
	DIR *d = opendir(path);
	if (!d) {
		perror(path);
		return 1;
	}
	int failed = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		size_t len = strlen(path) + strlen(de->d_name) + 2;
		char *sub = malloc(len);
		if (!sub) {
			failed = 1;
			break;
		}
		snprintf(sub, len, "%s/%s", path, de->d_name);
		failed |= run_path(sub, count);
		free(sub);
	}
	closedir(d);
	return failed;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE-OR-DIRECTORY...\n", argv[0]);
		return 2;
	}
	int failed = 0, count = 0;
	for (int i = 1; i < argc; i++)
		failed |= run_path(argv[i], &count);
	printf("normalize_fuzzer: %d input%s\n", count, count == 1 ? "" : "s");
	scrm_free(kinds_before);
	scrm_db_close(db);
	return failed || count == 0;
}
#endif
