/*
 * Property test of identity resolution: random persons seen through random
 * channels, fed to the library and to a plain in-memory reference of
 * SPEC.md "Resolving one observation"; customer ids, outcomes and the
 * partition of identifiers into customers must agree. Fixed seeds keep it
 * reproducible; a failure names the seed and the observation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "scrm/identity.h"
#include "core-int.h"
#include "testutil.h"

/* ------------------------------------------------------------------ PRNG */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static int rn(int n) { return (int)(rnd() % (uint64_t)n); }
static bool chance(int percent) { return rn(100) < percent; }

/* ----------------------------------------------------------------- kinds */

enum { K_UNIONID, K_CARD, K_PHONE, K_EMAIL, K_OPENID, K_NICK, NKINDS };
static const char *const kind_name[NKINDS] = {"wechat_unionid", "member_card", "phone",
					      "email", "wechat_openid", "tmall_buyer_nick"};
/* As shipped (schema defaults). */
static const int kind_prio[NKINDS] = {10, 20, 30, 40, 60, 80};
static const int kind_limit[NKINDS] = {1, 1, 3, 3, 0, 0};

/* ------------------------------------------------- reference normalizers */

static const char *const junk[] = {"null", "NULL", "Null", "none", "None", "undefined",
				   "unknown", "N/A", "n/a", "-", "0", "00000000000"};

static void ref_trim(const char **s, size_t *n)
{
	const char *p = *s, *e = p + *n;
	for (;;) {
		if (p < e && (*p == ' ' || *p == '\t'))
			p++;
		else if (e - p >= 3 && memcmp(p, "\xE3\x80\x80", 3) == 0)
			p += 3;
		else
			break;
	}
	for (;;) {
		if (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		else if (e - p >= 3 && memcmp(e - 3, "\xE3\x80\x80", 3) == 0)
			e -= 3;
		else
			break;
	}
	*s = p;
	*n = (size_t)(e - p);
}

/* Normalized value into out, or false when the library must reject it.
 * Covers exactly the formats the generator produces. */
static bool ref_norm(int kind, const char *raw, char out[300])
{
	const char *s = raw;
	size_t n = strlen(raw);
	ref_trim(&s, &n);
	if (n == 0 || n > 256)
		return false;
	for (size_t i = 0; i < SCRM_ARRAY_LEN(junk); i++)
		if (strlen(junk[i]) == n && memcmp(s, junk[i], n) == 0)
			return false;
	switch (kind) {
	case K_PHONE: {
		char d[64];
		size_t nd = 0;
		bool plus = false;
		for (size_t i = 0; i < n; i++) {
			if (s[i] == '+' && i == 0)
				plus = true;
			else if (s[i] == ' ' || s[i] == '-')
				continue;
			else if (s[i] >= '0' && s[i] <= '9' && nd < 60)
				d[nd++] = s[i];
			else
				return false;
		}
		d[nd] = '\0';
		const char *p = d;
		if (plus && strncmp(p, "86", 2) == 0)
			p += 2;
		else if (plus)
			return false;
		else if (strncmp(p, "0086", 4) == 0)
			p += 4;
		else if (strlen(p) == 13 && strncmp(p, "86", 2) == 0)
			p += 2;
		if (strlen(p) != 11 || p[0] != '1' || p[1] < '3' || p[1] > '9')
			return false;
		bool same = true; /* placeholder mobiles: 1 then ten equal digits */
		for (int i = 2; i < 11; i++)
			same &= p[i] == p[1];
		if (same)
			return false;
		snprintf(out, 300, "+86%s", p);
		return true;
	}
	case K_EMAIL: {
		int ats = 0;
		for (size_t i = 0; i < n; i++) {
			char c = s[i];
			ats += c == '@';
			if (c == ' ')
				return false;
			out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		out[n] = '\0';
		return ats == 1 && out[0] != '@' && strchr(strchr(out, '@'), '.');
	}
	default:
		memcpy(out, s, n);
		out[n] = '\0';
		/* trim kinds with a ^0+$ block pattern */
		if (kind != K_NICK && strspn(out, "0") == n)
			return false;
		return true;
	}
}

/* ---------------------------------------------------- reference state */

typedef struct slot {
	char *key;      /* "kind\x01value" */
	int64_t owner;  /* customer attached to (0: seen but stored nowhere) */
} slot;

#define MAP_CAP (1 << 16)

typedef struct ref {
	slot map[MAP_CAP];
	int64_t *parent; /* merged_into, 0 for roots */
	int (*count)[NKINDS];
	int64_t ncust, cap;
} ref;

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

static slot *ref_slot(ref *r, int kind, const char *value, bool add)
{
	char key[320];
	snprintf(key, sizeof key, "%d\x01%s", kind, value);
	size_t i = hash_str(key) & (MAP_CAP - 1);
	while (r->map[i].key) {
		if (strcmp(r->map[i].key, key) == 0)
			return &r->map[i];
		i = (i + 1) & (MAP_CAP - 1);
	}
	if (!add)
		return NULL;
	r->map[i].key = strdup(key);
	ck_assert_ptr_nonnull(r->map[i].key);
	return &r->map[i];
}

static int64_t ref_root(const ref *r, int64_t c)
{
	while (r->parent[c])
		c = r->parent[c];
	return c;
}

static int64_t ref_new_customer(ref *r)
{
	if (r->ncust + 1 >= r->cap) {
		r->cap = r->cap ? r->cap * 2 : 1024;
		r->parent = realloc(r->parent, (size_t)r->cap * sizeof *r->parent);
		r->count = realloc(r->count, (size_t)r->cap * sizeof *r->count);
		ck_assert(r->parent && r->count);
	}
	int64_t id = ++r->ncust;
	r->parent[id] = 0;
	memset(r->count[id], 0, sizeof r->count[id]);
	return id;
}

typedef struct ref_item {
	int kind;
	char value[300];
	int64_t owner;
} ref_item;

static int cmp_ref_items(const void *pa, const void *pb)
{
	const ref_item *a = pa, *b = pb;
	if (kind_prio[a->kind] != kind_prio[b->kind])
		return kind_prio[a->kind] < kind_prio[b->kind] ? -1 : 1;
	int c = strcmp(kind_name[a->kind], kind_name[b->kind]);
	return c ? c : strcmp(a->value, b->value);
}

static bool ref_can_merge(const ref *r, int64_t a, int64_t b)
{
	for (int k = 0; k < NKINDS; k++)
		if (kind_limit[k] && r->count[a][k] + r->count[b][k] > kind_limit[k])
			return false;
	return true;
}

/* SPEC.md "Resolving one observation", straight from the text. Returns the
 * customer, 0 when nothing usable; *outcome as the library names it. */
static int64_t ref_observe(ref *r, const int *kinds, const char *const *raws, int n,
			   const char **outcome)
{
	ref_item items[8];
	int m = 0;
	for (int i = 0; i < n; i++) { /* 1. normalize, drop invalid, count repeats once */
		ref_item it = {.kind = kinds[i]};
		if (!ref_norm(kinds[i], raws[i], it.value))
			continue;
		bool dup = false;
		for (int j = 0; j < m; j++)
			dup |= items[j].kind == it.kind && strcmp(items[j].value, it.value) == 0;
		if (!dup)
			items[m++] = it;
	}
	if (m == 0)
		return 0;
	qsort(items, (size_t)m, sizeof items[0], cmp_ref_items); /* 2. order */
	int64_t target = 0;
	bool merged = false, attached = false, created = false;
	for (int i = 0; i < m; i++) { /* 3. walk */
		slot *s = ref_slot(r, items[i].kind, items[i].value, false);
		int64_t owner = s && s->owner ? ref_root(r, s->owner) : 0;
		items[i].owner = owner;
		if (!owner || owner == target)
			continue;
		if (!target) {
			target = owner;
			continue;
		}
		if (!ref_can_merge(r, owner, target))
			continue; /* conflict: stays with its owner */
		int64_t surv = owner < target ? owner : target, abs = owner < target ? target : owner;
		r->parent[abs] = surv;
		for (int k = 0; k < NKINDS; k++)
			r->count[surv][k] += r->count[abs][k];
		target = surv;
		merged = true;
	}
	if (!target) { /* 4. create */
		target = ref_new_customer(r);
		created = true;
	}
	for (int i = 0; i < m; i++) { /* 5. attach within limits */
		slot *s = ref_slot(r, items[i].kind, items[i].value, true);
		if (items[i].owner)
			continue;
		int k = items[i].kind;
		if (kind_limit[k] && r->count[target][k] >= kind_limit[k])
			continue; /* conflict: stored nowhere */
		s->owner = target;
		r->count[target][k]++;
		attached = true;
	}
	*outcome = merged ? "merged" : created ? "created" : attached ? "attached" : "unchanged";
	return target;
}

static void ref_free(ref *r)
{
	for (size_t i = 0; i < MAP_CAP; i++)
		free(r->map[i].key);
	free(r->parent);
	free(r->count);
	free(r);
}

/* -------------------------------------------------------------- persons */

typedef struct person {
	char unionid[32], card[16], email[48], openid[24], nick[32];
	char phone[2][16];
	int nphones;
} person;

static void mobile(char out[16])
{
	for (;;) {
		snprintf(out, 16, "1%d%09d", 3 + rn(7), rn(1000000000));
		bool same = true;
		for (int i = 2; i < 11; i++)
			same &= out[i] == out[1];
		if (!same)
			return;
	}
}

static void make_persons(person *ps, int np)
{
	for (int i = 0; i < np; i++) {
		person *p = &ps[i];
		memset(p, 0, sizeof *p);
		if (chance(70))
			snprintf(p->unionid, sizeof p->unionid, "oU%04d%llx", i,
				 (unsigned long long)(rnd() & 0xffff));
		if (chance(50))
			snprintf(p->card, sizeof p->card, "M%06d", i);
		if (chance(60))
			snprintf(p->email, sizeof p->email, "user%d.shop@example.com", i);
		if (chance(50))
			snprintf(p->openid, sizeof p->openid, "op_%d", i);
		if (chance(40))
			snprintf(p->nick, sizeof p->nick, "小明%d", i);
		p->nphones = 1 + chance(40);
		for (int k = 0; k < p->nphones; k++) {
			if (i > 0 && chance(8)) /* a family phone shared with someone */
				memcpy(p->phone[k], ps[rn(i)].phone[0], 16);
			else
				mobile(p->phone[k]);
		}
		if (chance(3) && i > 0 && ps[i - 1].card[0]) /* a lent member card */
			memcpy(p->card, ps[i - 1].card, sizeof p->card);
	}
}

/* Raw forms, as different channels write them. */
static void fmt_phone(const char *d, char *out, size_t n)
{
	switch (rn(8)) {
	case 0: snprintf(out, n, "%s", d); break;
	case 1: snprintf(out, n, "%.3s %.4s %.4s", d, d + 3, d + 7); break;
	case 2: snprintf(out, n, "%.3s-%.4s-%.4s", d, d + 3, d + 7); break;
	case 3: snprintf(out, n, "+86 %.3s %.4s %.4s", d, d + 3, d + 7); break;
	case 4: snprintf(out, n, "+86%s", d); break;
	case 5: snprintf(out, n, "0086 %s", d); break;
	case 6: snprintf(out, n, "86%s", d); break;
	default: snprintf(out, n, " %s ", d); break;
	}
	if (chance(4)) { /* a typo: O for 0, or a lost digit */
		char *q = out + strlen(out) - 1 - rn(4);
		if (chance(50))
			*q = 'O';
		else
			memmove(q, q + 1, strlen(q + 1) + 1);
	}
}

static void fmt_email(const char *e, char *out, size_t n)
{
	size_t i = 0;
	if (chance(20))
		out[i++] = ' ';
	for (const char *p = e; *p && i + 2 < n; p++)
		out[i++] = (char)(*p >= 'a' && *p <= 'z' && chance(25) ? *p - 32 : *p);
	if (chance(20))
		out[i++] = ' ';
	out[i] = '\0';
	if (chance(3)) { /* typo: the '@' lost */
		char *at = strchr(out, '@');
		memmove(at, at + 1, strlen(at));
	}
}

static void fmt_trim(const char *v, char *out, size_t n)
{
	switch (rn(6)) {
	case 0: snprintf(out, n, " %s", v); break;
	case 1: snprintf(out, n, "%s\xE3\x80\x80", v); break;
	default: snprintf(out, n, "%s", v); break;
	}
}

/* ------------------------------------------------------------------ run */

static const char *const channels[] = {"pos", "wecom", "tmall", "douyin", "youzan", "mini"};

static void check_partition(scrm_db *db, ref *r, uint64_t seed, int at_obs)
{
	for (size_t i = 0; i < MAP_CAP; i++) {
		slot *s = &r->map[i];
		if (!s->key)
			continue;
		int kind = atoi(s->key);
		const char *value = strchr(s->key, '\x01') + 1;
		int64_t want = s->owner ? ref_root(r, s->owner) : 0, got = 0;
		int rc = scrm_identity_resolve(db, kind_name[kind], value, &got);
		if (want)
			ck_assert_msg(rc == SCRM_OK && got == want,
				      "seed %llu after %d observations: %s '%s' resolves to %lld "
				      "(%s), reference %lld",
				      (unsigned long long)seed, at_obs, kind_name[kind], value,
				      (long long)got, scrm_errstr(rc), (long long)want);
		else
			ck_assert_msg(rc == SCRM_NOTFOUND,
				      "seed %llu after %d observations: %s '%s' should be stored "
				      "nowhere, resolves to %lld (%s)",
				      (unsigned long long)seed, at_obs, kind_name[kind], value,
				      (long long)got, scrm_errstr(rc));
	}
	for (int64_t c = 1; c <= r->ncust + 1; c++) {
		int64_t got = 0;
		int rc = scrm_identity_canonical(db, c, &got);
		if (c > r->ncust)
			ck_assert_msg(rc == SCRM_NOTFOUND, "seed %llu: library has more than %lld customers",
				      (unsigned long long)seed, (long long)r->ncust);
		else
			ck_assert_msg(rc == SCRM_OK && got == ref_root(r, c),
				      "seed %llu after %d observations: canonical(%lld) = %lld, reference %lld",
				      (unsigned long long)seed, at_obs, (long long)c, (long long)got,
				      (long long)ref_root(r, c));
	}
}

static void run_seed(uint64_t seed, int npersons, int nobs)
{
	rng_state = seed;
	person *ps = calloc((size_t)npersons, sizeof *ps);
	ref *r = calloc(1, sizeof *r);
	ck_assert(ps && r);
	make_persons(ps, npersons);
	scrm_db *db = tu_open(":memory:", SCRM_OPEN_CREATE);
	tu_clock clk = {.now = INT64_C(1767225600000)};
	scrm_db_set_clock(db, tu_clock_fn, &clk);
	int merges = 0, conflicts = 0;
	for (int o = 0; o < nobs; o++) {
		const person *p = &ps[rn(npersons)];
		int kinds[4];
		char raw[4][128];
		const char *raws[4], *kn[4];
		int n = 1 + rn(4);
		for (int i = 0; i < n; i++) {
			int k = 0;
			const char *v = "";
			for (int tries = 0; tries < 20 && !*v; tries++) {
				k = rn(NKINDS);
				v = k == K_UNIONID ? p->unionid : k == K_CARD ? p->card
				    : k == K_EMAIL ? p->email : k == K_OPENID ? p->openid
				    : k == K_NICK ? p->nick : p->phone[rn(p->nphones)];
			}
			if (!*v) {
				k = K_PHONE;
				v = p->phone[0];
			}
			if (chance(6)) /* reused junk */
				v = junk[rn((int)SCRM_ARRAY_LEN(junk))];
			if (k == K_PHONE && v[0] >= '0' && v[0] <= '9' && strlen(v) == 11)
				fmt_phone(v, raw[i], sizeof raw[i]);
			else if (k == K_EMAIL && strchr(v, '@'))
				fmt_email(v, raw[i], sizeof raw[i]);
			else
				fmt_trim(v, raw[i], sizeof raw[i]);
			kinds[i] = k;
			kn[i] = kind_name[k];
			raws[i] = raw[i];
		}
		const char *want_outcome = NULL;
		int64_t want = ref_observe(r, kinds, raws, n, &want_outcome);
		int64_t got = 0;
		char *report = NULL;
		clk.now += 1000;
		int rc = scrm_identity_observe(db, channels[rn(6)], 0, kn, raws, (size_t)n, &got,
					       &report);
		if (!want) {
			ck_assert_msg(rc == SCRM_INVALID,
				      "seed %llu observation %d: nothing usable, library says %s (%s) "
				      "for %s '%s'",
				      (unsigned long long)seed, o, scrm_errstr(rc), scrm_errmsg(db), kn[0],
				      raws[0]);
			continue;
		}
		ck_assert_msg(rc == SCRM_OK, "seed %llu observation %d: %s: %s (first: %s '%s')",
			      (unsigned long long)seed, o, scrm_errstr(rc), scrm_errmsg(db), kn[0],
			      raws[0]);
		cJSON *rep = cJSON_Parse(report);
		ck_assert_ptr_nonnull(rep);
		const char *outcome = cJSON_GetObjectItemCaseSensitive(rep, "outcome")->valuestring;
		ck_assert_msg(got == want && strcmp(outcome, want_outcome) == 0,
			      "seed %llu observation %d: customer %lld (%s), reference %lld (%s); "
			      "report %s",
			      (unsigned long long)seed, o, (long long)got, outcome, (long long)want,
			      want_outcome, report);
		merges += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rep, "merged"));
		conflicts += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rep, "conflicts"));
		cJSON_Delete(rep);
		scrm_free(report);
		if ((o + 1) % 1000 == 0)
			check_partition(db, r, seed, o + 1);
	}
	check_partition(db, r, seed, nobs);
	/* The generator must exercise what it is for. */
	ck_assert_msg(merges > 10 && conflicts > 10, "seed %llu: only %d merges, %d conflicts",
		      (unsigned long long)seed, merges, conflicts);
	if (getenv("SCRM_PROP_STATS"))
		printf("seed %llu: %d persons, %d observations, %lld customers, %d merges, %d conflicts\n",
		       (unsigned long long)seed, npersons, nobs, (long long)r->ncust, merges, conflicts);
	scrm_db_close(db);
	ref_free(r);
	free(ps);
}

static const uint64_t seeds[] = {1, 42, 20261122, 0xC0FFEE, 987654321, 77};

START_TEST(test_random_observations)
{
	run_seed(seeds[_i], 300, 3000);
}
END_TEST

/* Few persons, many observations: dense merging and limits. */
START_TEST(test_random_observations_dense)
{
	run_seed(seeds[_i] * 7919, 40, 2000);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("identity_prop");
	TCase *tc = tcase_create("reference");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_random_observations, 0, (int)SCRM_ARRAY_LEN(seeds));
	tcase_add_loop_test(tc, test_random_observations_dense, 0, 3);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
