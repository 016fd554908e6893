/*
 * Profile configuration (RFM window and currency, lifecycle thresholds),
 * the lifecycle rule, and the population-wide RFM refresh: one aggregate
 * query, the quintile ranks computed in C, one INSERT ... SELECT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "profile-int.h"

#define DAYS_MAX 36500

static const pf_config defaults = {365, "CNY", 30, 90, 180, 365};

/* scrm_meta keys, one per setting. */
static const struct {
	const char *key;
	size_t off;
} int_keys[] = {
	{"profile.rfm_window_days", offsetof(pf_config, window_days)},
	{"profile.lifecycle.new_days", offsetof(pf_config, new_days)},
	{"profile.lifecycle.active_days", offsetof(pf_config, active_days)},
	{"profile.lifecycle.at_risk_days", offsetof(pf_config, at_risk_days)},
	{"profile.lifecycle.dormant_days", offsetof(pf_config, dormant_days)},
};

static int64_t *field(pf_config *c, size_t i)
{
	return (int64_t *)(void *)((char *)c + int_keys[i].off);
}

int pf__config_get(scrm_db *db, pf_config *cfg)
{
	if (pf__config_cached(db, cfg))
		return SCRM_OK;
	*cfg = defaults;
	sqlite3_stmt *st = scrm__stmt(db, "SELECT key, value FROM scrm_meta "
					  "WHERE key >= 'profile.' AND key < 'profile/'");
	if (!st)
		return scrm_errcode(db);
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		if (strcmp(k, "profile.currency") == 0) {
			const char *v = (const char *)sqlite3_column_text(st, 1);
			if (pf__is_currency(v))
				memcpy(cfg->currency, v, 4);
			continue;
		}
		for (size_t i = 0; i < SCRM_ARRAY_LEN(int_keys); i++)
			if (strcmp(k, int_keys[i].key) == 0)
				*field(cfg, i) = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (s != SQLITE_DONE)
		return scrm__sqlerr(db, s, "reading the profile configuration");
	pf__config_keep(db, cfg);
	return SCRM_OK;
}

int scrm__profile_lifecycle_ms(scrm_db *db, int64_t ms[4])
{
	pf_config c;
	int rc = pf__config_get(db, &c);
	if (rc)
		return rc;
	ms[0] = c.new_days * PF_DAY_MS;
	ms[1] = c.active_days * PF_DAY_MS;
	ms[2] = c.at_risk_days * PF_DAY_MS;
	ms[3] = c.dormant_days * PF_DAY_MS;
	return SCRM_OK;
}

const char *pf__lifecycle(const pf_config *c, int64_t now, bool has_order, int64_t first_order,
			  int64_t last_order, int64_t first_seen)
{
	int64_t since_first = now - (has_order ? first_order : first_seen);
	int64_t since_last = has_order ? now - last_order : since_first;
	if (since_first < c->new_days * PF_DAY_MS)
		return "new";
	if (since_last < c->active_days * PF_DAY_MS)
		return "active";
	if (since_last < c->at_risk_days * PF_DAY_MS)
		return "at_risk";
	if (since_last < c->dormant_days * PF_DAY_MS)
		return "dormant";
	return "lost";
}

static void config_json(scrm_buf *b, const pf_config *c)
{
	scrm__buf_printf(b,
			 "{\"rfm_window_days\":%lld,\"currency\":\"%s\",\"lifecycle\":{\"new_days\":%lld,"
			 "\"active_days\":%lld,\"at_risk_days\":%lld,\"dormant_days\":%lld}}",
			 (long long)c->window_days, c->currency, (long long)c->new_days,
			 (long long)c->active_days, (long long)c->at_risk_days,
			 (long long)c->dormant_days);
}

static int parse_config(scrm_db *db, const cJSON *root, pf_config *c)
{
	static const char *const top[] = {"rfm_window_days", "currency", "lifecycle", NULL};
	static const char *const life[] = {"new_days", "active_days", "at_risk_days", "dormant_days",
					   NULL};
	if (!cJSON_IsObject(root))
		return scrm__error(db, SCRM_INVALID, "profile configuration must be a JSON object");
	int rc = scrm__json_only(db, root, "profile configuration", top);
	if (rc)
		return rc;
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "rfm_window_days");
	if (w && (rc = scrm__json_int(db, w, "rfm_window_days", 1, DAYS_MAX, &c->window_days)))
		return rc;
	const cJSON *cur = cJSON_GetObjectItemCaseSensitive(root, "currency");
	if (cur) {
		if (!cJSON_IsString(cur) || !pf__is_currency(cur->valuestring))
			return scrm__error(db, SCRM_INVALID,
					   "currency must be an ISO 4217 code of three letters A-Z");
		memcpy(c->currency, cur->valuestring, 4);
	}
	const cJSON *lc = cJSON_GetObjectItemCaseSensitive(root, "lifecycle");
	if (lc) {
		if (!cJSON_IsObject(lc))
			return scrm__error(db, SCRM_INVALID, "lifecycle must be a JSON object");
		if ((rc = scrm__json_only(db, lc, "lifecycle", life)))
			return rc;
		for (size_t i = 1; i < SCRM_ARRAY_LEN(int_keys); i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(lc, life[i - 1]);
			if (v && (rc = scrm__json_int(db, v, life[i - 1], 0, DAYS_MAX, field(c, i))))
				return rc;
		}
	}
	if (!(c->new_days < c->active_days && c->active_days < c->at_risk_days &&
	      c->at_risk_days < c->dormant_days))
		return scrm__error(db, SCRM_INVALID,
				   "lifecycle thresholds must increase: new_days %lld < active_days %lld "
				   "< at_risk_days %lld < dormant_days %lld does not hold",
				   (long long)c->new_days, (long long)c->active_days,
				   (long long)c->at_risk_days, (long long)c->dormant_days);
	return SCRM_OK;
}

static int meta_put(scrm_db *db, const char *key, const char *text, int64_t num)
{
	sqlite3_stmt *st = scrm__stmt(db, "INSERT OR REPLACE INTO scrm_meta(key, value) VALUES(?1, ?2)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (text)
		sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 2, num);
	return scrm__step_done(db, st, "storing the profile configuration");
}

static int config_set(scrm_db *db, const cJSON *root)
{
	pf_config c;
	int rc = pf__config_get(db, &c);
	if (rc || (rc = parse_config(db, root, &c)))
		return rc;
	/* Whatever is kept from the old settings (here or in another engine)
	 * goes, written or not: a failure rolls back, which counts too. */
	scrm__config_changed(db);
	if ((rc = meta_put(db, "profile.currency", c.currency, 0)))
		return rc;
	for (size_t i = 0; i < SCRM_ARRAY_LEN(int_keys); i++)
		if ((rc = meta_put(db, int_keys[i].key, NULL, *field(&c, i))))
			return rc;
	scrm__config_changed(db);
	return SCRM_OK;
}

SCRM_API int scrm_profile_config_set(scrm_db *db, const char *json)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	cJSON *root;
	if ((rc = scrm__json_parse(db, json, "profile configuration", &root)))
		return rc;
	if ((rc = scrm__tx_begin(db)) == SCRM_OK)
		rc = scrm__tx_end(db, config_set(db, root));
	cJSON_Delete(root);
	return rc;
}

static int config_out(scrm_db *db, char **out)
{
	pf_config c;
	int rc = pf__config_get(db, &c);
	if (rc)
		return rc;
	scrm_buf b;
	scrm__buf_init(&b, db);
	config_json(&b, &c);
	return scrm__buf_finish(&b, out);
}

SCRM_API int scrm_profile_config_json(scrm_db *db, char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_profile_config_json: out is NULL");
	*out = NULL;
	if ((rc = scrm__tx_begin_read(db)))
		return rc;
	return scrm__tx_end(db, config_out(db, out));
}

/* ------------------------------------------------------------ refresh */

/* Lifecycle stage in SQL, the same rule as pf__lifecycle(): ?1 now, ?4..?7
 * the thresholds in ms; fg the figures row, c the customer. */
#define LIFECYCLE \
	"CASE WHEN fg.first_order IS NOT NULL THEN CASE" \
	"  WHEN ?1 - fg.first_order < ?4 THEN 'new'" \
	"  WHEN ?1 - fg.last_order < ?5 THEN 'active'" \
	"  WHEN ?1 - fg.last_order < ?6 THEN 'at_risk'" \
	"  WHEN ?1 - fg.last_order < ?7 THEN 'dormant' ELSE 'lost' END" \
	" ELSE CASE" \
	"  WHEN ?1 - coalesce(fg.first_seen, c.created_at) < ?4 THEN 'new'" \
	"  WHEN ?1 - coalesce(fg.first_seen, c.created_at) < ?5 THEN 'active'" \
	"  WHEN ?1 - coalesce(fg.first_seen, c.created_at) < ?6 THEN 'at_risk'" \
	"  WHEN ?1 - coalesce(fg.first_seen, c.created_at) < ?7 THEN 'dormant' ELSE 'lost' END" \
	" END"

/* SPEC.md "RFM scores": a score counts the customers strictly before in
 * its order (strictly smaller F or M, strictly greater recency days); N is
 * the number of customers with an order in the window. Step 1 reads those
 * customers' figures in id order (sql_agg), scores them in C (score()) and
 * lists them in a temporary table; step 2 writes every customer's row in
 * id order, joining it. The ranks were window functions (rank() OVER ...
 * / count(*) OVER ()) before: three sorts of SQLite records and the rows
 * buffered for each took 2.5 s of a 3.1 s step at 1M customers. */
static const char sql_agg[] =
	"WITH rf AS ("
	"  SELECT refund_of AS oid, sum(amount) AS amt FROM event"
	"  WHERE type = 'refund' AND at <= ?1 GROUP BY refund_of),"
	" agg AS ("
	"  SELECT o.customer AS customer, count(*) AS freq,"
	"   sum(CASE WHEN o.currency = ?3 THEN o.amount - coalesce(rf.amt, 0) ELSE 0 END) AS mon,"
	"   (?1 - max(o.at)) / 86400000 AS rd"
	"  FROM event o INDEXED BY event_order LEFT JOIN rf ON rf.oid = o.id"
	"  WHERE o.type = 'order' AND o.at >= ?2 AND o.at <= ?1 AND o.customer NOT IN"
	"   (SELECT id FROM identity_customers WHERE erased_at IS NOT NULL)"
	"  GROUP BY o.customer)"
	" SELECT customer, freq, mon, rd FROM agg";

static const char sql_all[] =
	"INSERT INTO profile_score(customer, recency_days, frequency, monetary, r, f, m, lifecycle)"
	" SELECT c.id, s.rd, coalesce(s.freq, 0), coalesce(s.mon, 0), s.r, s.f, s.m, " LIFECYCLE
	" FROM identity_customers c LEFT JOIN profile_figures fg ON fg.customer = c.id"
	" LEFT JOIN temp.pf_rfm s ON s.customer = c.id"
	" WHERE c.id = c.root AND c.erased_at IS NULL AND ?2 IS NOT NULL AND ?3 IS NOT NULL";

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One scored customer: its figures, then its three scores. */
typedef struct rfm_row {
	int64_t customer, v[3]; /* recency days, frequency, monetary */
	int64_t score[3];       /* r, f, m */
} rfm_row;

typedef struct rfm_key {
	int64_t key;
	size_t row;
} rfm_key;

static int cmp_key(const void *a, const void *b)
{
	int64_t x = ((const rfm_key *)a)->key, y = ((const rfm_key *)b)->key;
	return (x > y) - (x < y);
}

/* score = 1 + floor(5 * before / n), before = how many keys sort strictly
 * before this one: recency by days descending (negated), F and M
 * ascending. keys: room for n. */
static void score(rfm_row *rows, size_t n, rfm_key *keys)
{
	for (int k = 0; k < 3; k++) {
		for (size_t i = 0; i < n; i++)
			keys[i] = (rfm_key){k == 0 ? -rows[i].v[0] : rows[i].v[k], i};
		qsort(keys, n, sizeof *keys, cmp_key);
		size_t first = 0;
		for (size_t i = 0; i < n; i++) {
			if (i && keys[i].key != keys[i - 1].key)
				first = i;
			rows[keys[i].row].score[k] = 1 + (int64_t)(5 * (uint64_t)first / n);
		}
	}
}

/* Step 1: the customers with an order in the window, scored, into
 * temp.pf_rfm (in id order: the aggregate groups by customer). */
static int scored(scrm_db *db, sqlite3_stmt *agg)
{
	rfm_row *rows = NULL;
	size_t n = 0, cap = 0;
	int s, rc = SCRM_OK;
	while ((s = sqlite3_step(agg)) == SQLITE_ROW) {
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 4096;
			rfm_row *p = scrm__realloc(db, rows, nc * sizeof *p);
			if (!p) {
				rc = scrm__error(db, SCRM_NOMEM, "out of memory scoring %zu customers", nc);
				break;
			}
			rows = p;
			cap = nc;
		}
		rows[n++] = (rfm_row){sqlite3_column_int64(agg, 0),
				      {sqlite3_column_int64(agg, 3), sqlite3_column_int64(agg, 1),
				       sqlite3_column_int64(agg, 2)},
				      {0, 0, 0}};
	}
	if (!rc && s != SQLITE_DONE)
		rc = scrm__sqlerr(db, s, "reading RFM figures");
	sqlite3_reset(agg);
	rfm_key *keys = NULL;
	if (!rc && n && !(keys = scrm__malloc(db, n * sizeof *keys)))
		rc = scrm__error(db, SCRM_NOMEM, "out of memory scoring %zu customers", n);
	if (!rc && n)
		score(rows, n, keys);
	scrm__free(keys);
	sqlite3_stmt *ins = rc ? NULL : scrm__stmt(db, "INSERT INTO temp.pf_rfm(customer, freq, mon, "
						     "rd, r, f, m) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
	if (!rc && !ins)
		rc = scrm_errcode(db);
	for (size_t i = 0; !rc && i < n; i++) {
		const rfm_row *r = &rows[i];
		int64_t cols[7] = {r->customer, r->v[1], r->v[2], r->v[0],
				   r->score[0], r->score[1], r->score[2]};
		for (int k = 0; k < 7; k++)
			sqlite3_bind_int64(ins, k + 1, cols[k]);
		rc = scrm__step_done(db, ins, "listing RFM scores");
	}
	scrm__free(rows);
	return rc;
}

static int refresh(scrm_db *db, int64_t now, scrm_buf *sum)
{
	double t0 = mono_s();
	pf_config c;
	int rc = pf__config_get(db, &c);
	if (rc || (rc = scrm__exec(db, "DELETE FROM profile_score")) ||
	    (rc = scrm__exec(db, "CREATE TEMP TABLE IF NOT EXISTS pf_rfm(customer INTEGER PRIMARY KEY, "
				 "freq INTEGER, mon INTEGER, rd INTEGER, r INTEGER, f INTEGER, m INTEGER)")) ||
	    (rc = scrm__exec(db, "DELETE FROM temp.pf_rfm")))
		return rc;
	sqlite3_stmt *st;
	for (int i = 0; i < 2; i++) {
		if (!(st = scrm__stmt(db, i ? sql_all : sql_agg)))
			return scrm_errcode(db);
		sqlite3_bind_int64(st, 1, now);
		sqlite3_bind_int64(st, 2, now - c.window_days * PF_DAY_MS);
		sqlite3_bind_text(st, 3, c.currency, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 4, c.new_days * PF_DAY_MS);
		sqlite3_bind_int64(st, 5, c.active_days * PF_DAY_MS);
		sqlite3_bind_int64(st, 6, c.at_risk_days * PF_DAY_MS);
		sqlite3_bind_int64(st, 7, c.dormant_days * PF_DAY_MS);
		if ((rc = i ? scrm__step_done(db, st, "refreshing RFM scores") : scored(db, st)))
			return rc;
	}
	if ((rc = scrm__exec(db, "DELETE FROM temp.pf_rfm")) ||
	    (rc = meta_put(db, "profile.rfm_refreshed_at", NULL, now)))
		return rc;
	if (!sum)
		return SCRM_OK;
	st = scrm__stmt(db, "SELECT count(*), count(r), coalesce(sum(lifecycle = 'new'), 0), "
			    "coalesce(sum(lifecycle = 'active'), 0), coalesce(sum(lifecycle = 'at_risk'), 0), "
			    "coalesce(sum(lifecycle = 'dormant'), 0), coalesce(sum(lifecycle = 'lost'), 0) "
			    "FROM profile_score");
	if (!st)
		return scrm_errcode(db);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		scrm__buf_printf(sum,
				 "{\"customers\":%lld,\"scored\":%lld,\"seconds\":%.3f,\"refreshed_at\":%lld,"
				 "\"lifecycle\":{\"new\":%lld,\"active\":%lld,\"at_risk\":%lld,"
				 "\"dormant\":%lld,\"lost\":%lld}}",
				 (long long)sqlite3_column_int64(st, 0), (long long)sqlite3_column_int64(st, 1),
				 mono_s() - t0, (long long)now, (long long)sqlite3_column_int64(st, 2),
				 (long long)sqlite3_column_int64(st, 3), (long long)sqlite3_column_int64(st, 4),
				 (long long)sqlite3_column_int64(st, 5), (long long)sqlite3_column_int64(st, 6));
	sqlite3_reset(st);
	if (s != SQLITE_ROW)
		return scrm__sqlerr(db, s, "counting scores");
	return sum->oom ? scrm__error(db, SCRM_NOMEM, "out of memory building the summary") : SCRM_OK;
}

SCRM_API int scrm_profile_rfm_refresh(scrm_db *db, int64_t now_ms, char **summary)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (summary)
		*summary = NULL;
	if (now_ms < 0 || now_ms > PF_AT_MAX)
		return scrm__error(db, SCRM_RANGE, "refresh time %lld is outside 0..%lld",
				   (long long)now_ms, (long long)PF_AT_MAX);
	int64_t now = now_ms ? now_ms : scrm__now(db);
	if ((rc = scrm__tx_begin(db)))
		return rc;
	scrm_buf b;
	scrm__buf_init(&b, db);
	rc = scrm__tx_end(db, refresh(db, now, summary ? &b : NULL));
	if (rc == SCRM_OK && summary)
		rc = scrm__buf_finish(&b, summary);
	scrm__buf_reset(&b);
	return rc;
}
