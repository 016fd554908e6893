/*
 * Read side: the whole profile as JSON (attributes, figures, RFM, live
 * lifecycle, consent, masked identifiers), a customer's events, and the
 * count/sum statistics the rule functions use.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "profile-int.h"
#include "scrm/identity.h"

static void int_or_null(scrm_buf *b, sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		scrm__buf_puts(b, "null");
	else
		scrm__buf_printf(b, "%lld", (long long)sqlite3_column_int64(st, i));
}

static void text_or_null(scrm_buf *b, sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) != SQLITE_TEXT)
		scrm__buf_puts(b, "null");
	else
		scrm__buf_json_str(b, (const char *)sqlite3_column_text(st, i));
}

typedef struct life_in {
	bool has_events, has_order;
	int64_t first_seen, first_order, last_order;
} life_in;

static int figures_json(scrm_db *db, scrm_buf *b, int64_t root, life_in *li)
{
	sqlite3_stmt *st = scrm__stmt(db, "SELECT events, first_seen, last_seen, orders, refunds, "
					  "first_order, last_order FROM profile_figures WHERE customer = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		li->has_events = true;
		li->first_seen = sqlite3_column_int64(st, 1);
		li->has_order = sqlite3_column_type(st, 5) != SQLITE_NULL;
		li->first_order = sqlite3_column_int64(st, 5);
		li->last_order = sqlite3_column_int64(st, 6);
		scrm__buf_printf(b, "{\"events\":%lld,\"first_seen\":%lld,\"last_seen\":%lld,",
				 (long long)sqlite3_column_int64(st, 0), (long long)li->first_seen,
				 (long long)sqlite3_column_int64(st, 2));
		scrm__buf_printf(b, "\"orders\":%lld,\"refunds\":%lld,\"first_order\":",
				 (long long)sqlite3_column_int64(st, 3), (long long)sqlite3_column_int64(st, 4));
		int_or_null(b, st, 5);
		scrm__buf_puts(b, ",\"last_order\":");
		int_or_null(b, st, 6);
	} else {
		scrm__buf_puts(b, "{\"events\":0,\"first_seen\":null,\"last_seen\":null,\"orders\":0,"
				  "\"refunds\":0,\"first_order\":null,\"last_order\":null");
	}
	sqlite3_reset(st);
	if (s != SQLITE_ROW && s != SQLITE_DONE)
		return scrm__sqlerr(db, s, "reading figures");

	if (!(st = scrm__stmt(db, "SELECT channel, max(at) FROM event WHERE customer = ?1 "
				  "GROUP BY channel ORDER BY channel")))
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	scrm__buf_puts(b, ",\"last_seen_by_channel\":{");
	scrm_buf names;
	scrm__buf_init(&names, db);
	int n = 0;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *ch = (const char *)sqlite3_column_text(st, 0);
		scrm__buf_puts(b, n ? "," : "");
		scrm__buf_json_str(b, ch);
		scrm__buf_printf(b, ":%lld", (long long)sqlite3_column_int64(st, 1));
		scrm__buf_puts(&names, n++ ? "," : "");
		scrm__buf_json_str(&names, ch);
	}
	sqlite3_reset(st);
	scrm__buf_puts(b, "},\"channels\":[");
	if (names.len)
		scrm__buf_append(b, names.data, names.len);
	b->oom |= names.oom;
	scrm__buf_reset(&names);
	scrm__buf_puts(b, "]");
	if (s != SQLITE_DONE)
		return scrm__sqlerr(db, s, "reading channel figures");

	/* Average order value: net spend / orders in that currency, integer
	 * division (net spend is never negative, so it rounds down). */
	if (!(st = scrm__stmt(db, "SELECT currency, spend - refunded, orders FROM profile_money "
				  "WHERE customer = ?1 ORDER BY currency")))
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	scrm_buf aov;
	scrm__buf_init(&aov, db);
	scrm__buf_puts(b, ",\"net_spend\":{");
	n = 0;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *cur = (const char *)sqlite3_column_text(st, 0);
		int64_t net = sqlite3_column_int64(st, 1), orders = sqlite3_column_int64(st, 2);
		scrm__buf_printf(b, "%s\"%s\":%lld", n ? "," : "", cur, (long long)net);
		scrm__buf_printf(&aov, "%s\"%s\":%lld", n++ ? "," : "", cur,
				 (long long)(orders ? net / orders : 0));
	}
	sqlite3_reset(st);
	scrm__buf_puts(b, "},\"avg_order_value\":{");
	if (aov.len)
		scrm__buf_append(b, aov.data, aov.len);
	b->oom |= aov.oom;
	scrm__buf_reset(&aov);
	scrm__buf_puts(b, "}}");
	return s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "reading money figures");
}

static int rfm_json(scrm_db *db, scrm_buf *b, int64_t root)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT s.recency_days, s.frequency, s.monetary, s.r, s.f, s.m, "
		    "(SELECT value FROM scrm_meta WHERE key = 'profile.rfm_refreshed_at') "
		    "FROM profile_score s WHERE s.customer = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		static const char *const names[] = {"recency_days", "frequency", "monetary", "r", "f", "m",
						    "refreshed_at"};
		for (int i = 0; i < 7; i++) {
			scrm__buf_printf(b, "%s\"%s\":", i ? "," : "{", names[i]);
			int_or_null(b, st, i);
		}
		scrm__buf_puts(b, "}");
	} else {
		scrm__buf_puts(b, "null");
	}
	sqlite3_reset(st);
	return s == SQLITE_ROW || s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "reading RFM scores");
}

static int identifiers_json(scrm_db *db, scrm_buf *b, int64_t root, bool unmasked)
{
	char *list = NULL;
	int rc = scrm_identity_list_json(db, root, &list);
	if (rc)
		return rc;
	cJSON *arr = cJSON_Parse(list);
	scrm__free(list);
	if (!arr)
		return scrm__error(db, SCRM_NOMEM, "out of memory reading identifiers");
	scrm__buf_puts(b, "[");
	int n = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
	{
		const cJSON *kind = cJSON_GetObjectItemCaseSensitive(it, "kind");
		const cJSON *value = cJSON_GetObjectItemCaseSensitive(it, "value");
		if (!cJSON_IsString(kind) || !cJSON_IsString(value))
			continue;
		scrm__buf_puts(b, n++ ? ",{\"kind\":" : "{\"kind\":");
		scrm__buf_json_str(b, kind->valuestring);
		scrm__buf_puts(b, ",\"value\":");
		if (unmasked) {
			scrm__buf_json_str(b, value->valuestring);
		} else {
			scrm_buf m;
			scrm__buf_init(&m, db);
			scrm__buf_append(&m, "", 0);
			pf__mask_buf(&m, kind->valuestring, value->valuestring);
			if (!m.oom)
				scrm__buf_json_str(b, m.data);
			b->oom |= m.oom;
			scrm__buf_reset(&m);
		}
		scrm__buf_puts(b, "}");
	}
	cJSON_Delete(arr);
	scrm__buf_puts(b, "]");
	return SCRM_OK;
}

static int profile(scrm_db *db, int64_t customer, unsigned int flags, char **out)
{
	int64_t root, erased;
	pf_config cfg;
	int rc = pf__canonical(db, customer, &root, &erased);
	if (rc || (rc = pf__config_get(db, &cfg)))
		return rc;
	sqlite3_stmt *st = scrm__stmt(db, "SELECT created_at FROM identity_customers WHERE id = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	int s = sqlite3_step(st);
	int64_t created = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (s != SQLITE_ROW)
		return scrm__sqlerr(db, s, "reading the customer");
	scrm_buf b;
	scrm__buf_init(&b, db);
	life_in li = {false, false, 0, 0, 0};
	scrm__buf_printf(&b, "{\"customer\":%lld,\"erased\":%s,\"attributes\":", (long long)root,
			 erased ? "true" : "false");
	if ((rc = pf__attrs_json(db, &b, root)))
		goto out;
	scrm__buf_puts(&b, ",\"figures\":");
	if ((rc = figures_json(db, &b, root, &li)))
		goto out;
	scrm__buf_puts(&b, ",\"rfm\":");
	if ((rc = rfm_json(db, &b, root)))
		goto out;
	scrm__buf_printf(&b, ",\"lifecycle\":\"%s\",\"consent\":",
			 pf__lifecycle(&cfg, scrm__now(db), li.has_order, li.first_order,
				       li.last_order, li.has_events ? li.first_seen : created));
	if ((rc = pf__consent_json(db, &b, root)))
		goto out;
	scrm__buf_puts(&b, ",\"identifiers\":");
	if ((rc = identifiers_json(db, &b, root, flags & SCRM_PROFILE_UNMASKED)))
		goto out;
	scrm__buf_puts(&b, "}");
	return scrm__buf_finish(&b, out);
out:
	scrm__buf_reset(&b);
	return rc;
}

SCRM_API int scrm_profile_json(scrm_db *db, int64_t customer, unsigned int flags, char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_profile_json: out is NULL");
	*out = NULL;
	if (flags & ~SCRM_PROFILE_UNMASKED)
		return scrm__error(db, SCRM_INVALID, "unknown profile flags 0x%x",
				   flags & ~SCRM_PROFILE_UNMASKED);
	if ((rc = scrm__tx_begin_read(db)))
		return rc;
	return scrm__tx_end(db, profile(db, customer, flags, out));
}

/* ------------------------------------------------------------ events */

static int events(scrm_db *db, int64_t customer, int64_t since, int limit, char **out)
{
	int64_t root;
	int rc = pf__canonical(db, customer, &root, NULL);
	if (rc)
		return rc;
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT e.id, e.ikey, e.type, e.channel, e.at, e.amount, e.currency, o.ikey, "
		    "e.items, e.props FROM event e LEFT JOIN event o ON o.id = e.refund_of "
		    "WHERE e.customer = ?1 AND e.at >= ?2 ORDER BY e.at DESC, e.id DESC LIMIT ?3");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	sqlite3_bind_int64(st, 2, since);
	sqlite3_bind_int64(st, 3, limit ? limit : -1);
	scrm_buf b;
	scrm__buf_init(&b, db);
	scrm__buf_puts(&b, "[");
	int s, n = 0;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		scrm__buf_printf(&b, "%s{\"id\":%lld,\"key\":", n++ ? "," : "",
				 (long long)sqlite3_column_int64(st, 0));
		text_or_null(&b, st, 1);
		scrm__buf_puts(&b, ",\"type\":");
		scrm__buf_json_str(&b, (const char *)sqlite3_column_text(st, 2));
		scrm__buf_puts(&b, ",\"channel\":");
		scrm__buf_json_str(&b, (const char *)sqlite3_column_text(st, 3));
		scrm__buf_printf(&b, ",\"at\":%lld,\"amount\":", (long long)sqlite3_column_int64(st, 4));
		int_or_null(&b, st, 5);
		scrm__buf_puts(&b, ",\"currency\":");
		text_or_null(&b, st, 6);
		scrm__buf_puts(&b, ",\"refund_of\":");
		text_or_null(&b, st, 7);
		/* items and props were validated as JSON when recorded. */
		for (int i = 8; i <= 9; i++) {
			scrm__buf_puts(&b, i == 8 ? ",\"items\":" : ",\"props\":");
			const char *j = (const char *)sqlite3_column_text(st, i);
			scrm__buf_puts(&b, j ? j : "null");
		}
		scrm__buf_puts(&b, "}");
	}
	sqlite3_reset(st);
	if (s != SQLITE_DONE) {
		scrm__buf_reset(&b);
		return scrm__sqlerr(db, s, "reading events");
	}
	scrm__buf_puts(&b, "]");
	return scrm__buf_finish(&b, out);
}

SCRM_API int scrm_profile_events_json(scrm_db *db, int64_t customer, int64_t since_ms, int limit,
				      char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_profile_events_json: out is NULL");
	*out = NULL;
	if (limit < 0)
		return scrm__error(db, SCRM_RANGE, "event limit %d is negative", limit);
	if ((rc = scrm__tx_begin_read(db)))
		return rc;
	return scrm__tx_end(db, events(db, customer, since_ms, limit, out));
}

static int stats(scrm_db *db, int64_t customer, const char *type, int64_t since,
		 const char *currency, int64_t *count, int64_t *sum)
{
	int64_t root;
	pf_config cfg;
	int rc = pf__canonical_fast(db, customer, &root, NULL);
	if (rc)
		return rc;
	if (!currency) {
		if ((rc = pf__config_get(db, &cfg)))
			return rc;
		currency = cfg.currency;
	}
	/* `type || ''`: a bare `type = ?3` is compared with the partial index
	 * event_order's `type = 'order'` while planning, which makes SQLite
	 * prepare the statement again every time ?3 changes. */
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT count(*), coalesce(sum(CASE WHEN currency = ?4 THEN amount END), 0) "
		    "FROM event WHERE customer = ?1 AND at >= ?2 AND type || '' = ?3");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	sqlite3_bind_int64(st, 2, since);
	sqlite3_bind_text(st, 3, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, currency, -1, SQLITE_TRANSIENT);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		if (count)
			*count = sqlite3_column_int64(st, 0);
		if (sum)
			*sum = sqlite3_column_int64(st, 1);
		rc = SCRM_OK;
	} else if ((s & 0xff) == SQLITE_ERROR) {
		rc = scrm__error(db, SCRM_RANGE, "sum of %s amounts of customer %lld overflows int64",
				 type, (long long)customer);
	} else {
		rc = scrm__sqlerr(db, s, "reading event statistics");
	}
	sqlite3_reset(st);
	return rc;
}

SCRM_API int scrm_profile_event_stats(scrm_db *db, int64_t customer, const char *type,
				      int64_t since_ms, const char *currency, int64_t *count,
				      int64_t *sum)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!type)
		return scrm__error(db, SCRM_MISUSE, "scrm_profile_event_stats: type is NULL");
	if (count)
		*count = 0;
	if (sum)
		*sum = 0;
	if (!pf__is_name(type, PF_TYPE_MAX, false))
		return scrm__error(db, SCRM_INVALID, "event type '%.*s' must be 1-%d characters of [a-z0-9_]",
				   scrm__utf8_clip(type, 40), type, PF_TYPE_MAX);
	if (currency && !pf__is_currency(currency))
		return scrm__error(db, SCRM_INVALID, "currency must be an ISO 4217 code of three letters A-Z");
	if ((rc = scrm__tx_begin_read(db)))
		return rc;
	return scrm__tx_end(db, stats(db, customer, type, since_ms, currency, count, sum));
}
