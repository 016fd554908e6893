/*
 * Observing identifiers seen together, exactly as SPEC.md "Resolving one
 * observation" says, plus resolve(). The walk is done in one transaction;
 * the observation row is written only when something changed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "identity-int.h"

typedef struct item {
	const id_kind *kind;
	const char *raw;
	char value[ID_VALUE_MAX + 1];
	char why[96];
	bool usable;
	int64_t owner;          /* canonical owner at lookup, 0 = none */
	bool conflict;
	int64_t conflict_owner;
	char conflict_why[160];
	bool attached;
} item;

typedef struct merge_rec { int64_t id, survivor, absorbed; } merge_rec;

typedef struct run {
	scrm_db *db;
	id_state *ids;
	const char *channel;
	int64_t at;
	item *items;
	size_t n;
	int64_t target;
	const item *anchor;
	bool created;
	merge_rec merges[ID_OBSERVE_MAX];
	size_t nmerges;
	int64_t obs;
} run;

static int cmp_items(const void *pa, const void *pb)
{
	const item *a = pa, *b = pb;
	if (a->usable != b->usable)
		return a->usable ? -1 : 1;
	if (!a->usable)
		return 0;
	if (a->kind->priority != b->kind->priority)
		return a->kind->priority < b->kind->priority ? -1 : 1;
	int c = strcmp(a->kind->name, b->kind->name);
	return c ? c : strcmp(a->value, b->value);
}

static int lookup(scrm_db *db, const item *it, int64_t *owner)
{
	sqlite3_stmt *st = scrm__stmt(db, "SELECT customer FROM ident WHERE kind=?1 AND value=?2");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, it->kind->id);
	sqlite3_bind_text(st, 2, it->value, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	*owner = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return s == SQLITE_ROW || s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "looking up an identifier");
}

static int count_kind(scrm_db *db, int64_t customer, int64_t kind, int64_t *n)
{
	sqlite3_stmt *st = scrm__stmt(db, "SELECT count(*) FROM ident WHERE customer=?1 AND kind=?2");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, customer);
	sqlite3_bind_int64(st, 2, kind);
	int s = sqlite3_step(st);
	*n = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return s == SQLITE_ROW ? SCRM_OK : scrm__sqlerr(db, s, "counting identifiers");
}

static int create_customer(run *r)
{
	sqlite3_stmt *st = scrm__stmt(r->db, "SELECT coalesce(max(id), 0) + 1 FROM customer");
	if (!st)
		return scrm_errcode(r->db);
	sqlite3_step(st);
	int64_t id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	st = scrm__stmt(r->db, "INSERT INTO customer(id, created_at, root) VALUES(?1, ?2, ?1)");
	if (!st)
		return scrm_errcode(r->db);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, r->at);
	int rc = scrm__step_done(r->db, st, "creating a customer");
	if (!rc) {
		r->target = id;
		r->created = true;
	}
	return rc;
}

static const char *outcome(const run *r, bool attached)
{
	if (r->nmerges)
		return "merged";
	if (r->created)
		return "created";
	return attached ? "attached" : "unchanged";
}

static int write_observation(run *r, bool attached)
{
	sqlite3_stmt *st = scrm__stmt(
		r->db, "INSERT INTO observation(channel, at, customer, anchor_kind, anchor_value, outcome) "
		       "VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
	if (!st)
		return scrm_errcode(r->db);
	sqlite3_bind_text(st, 1, r->channel, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, r->at);
	sqlite3_bind_int64(st, 3, r->target);
	if (r->anchor) {
		sqlite3_bind_int64(st, 4, r->anchor->kind->id);
		sqlite3_bind_text(st, 5, r->anchor->value, -1, SQLITE_STATIC);
	}
	sqlite3_bind_text(st, 6, outcome(r, attached), -1, SQLITE_STATIC);
	int rc = scrm__step_done(r->db, st, "recording the observation");
	if (rc)
		return rc;
	r->obs = sqlite3_last_insert_rowid(scrm__sqlite(r->db));
	for (size_t i = 0; i < r->nmerges; i++) {
		st = scrm__stmt(r->db, "UPDATE merge_log SET obs=?1, reason=coalesce(reason, 'observation') WHERE id=?2");
		if (!st)
			return scrm_errcode(r->db);
		sqlite3_bind_int64(st, 1, r->obs);
		sqlite3_bind_int64(st, 2, r->merges[i].id);
		if ((rc = scrm__step_done(r->db, st, "linking the merge to its observation")))
			return rc;
	}
	return SCRM_OK;
}

static int record_conflict(run *r, const item *it)
{
	sqlite3_stmt *st = scrm__stmt(
		r->db, "INSERT INTO id_conflict(obs, kind, value, owner, target, reason, at) "
		       "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
	if (!st)
		return scrm_errcode(r->db);
	sqlite3_bind_int64(st, 1, r->obs);
	sqlite3_bind_int64(st, 2, it->kind->id);
	sqlite3_bind_text(st, 3, it->value, -1, SQLITE_STATIC);
	if (it->conflict_owner)
		sqlite3_bind_int64(st, 4, it->conflict_owner);
	sqlite3_bind_int64(st, 5, r->target);
	sqlite3_bind_text(st, 6, it->conflict_why, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, r->at);
	return scrm__step_done(r->db, st, "recording a conflict");
}

static int resolve_walk(run *r)
{
	int rc;
	size_t usable = 0;
	while (usable < r->n && r->items[usable].usable)
		usable++;
	for (size_t i = 0; i < usable; i++) {
		item *it = &r->items[i];
		if ((rc = lookup(r->db, it, &it->owner)))
			return rc;
		if (!it->owner || it->owner == r->target)
			continue;
		if (!r->target) {
			r->target = it->owner;
			r->anchor = it;
			continue;
		}
		rc = id__can_merge(r->db, r->ids, it->owner, r->target, it->conflict_why,
				   sizeof it->conflict_why);
		if (rc == SCRM_CONFLICT) {
			it->conflict = true;
			it->conflict_owner = it->owner;
			continue;
		}
		if (rc)
			return rc;
		merge_rec *m = &r->merges[r->nmerges];
		m->survivor = it->owner < r->target ? it->owner : r->target;
		m->absorbed = it->owner < r->target ? r->target : it->owner;
		if ((rc = id__merge(r->db, m->survivor, m->absorbed, r->at, NULL, &m->id)))
			return rc;
		r->nmerges++;
		r->target = m->survivor;
	}
	if (!r->target && (rc = create_customer(r)))
		return rc;
	/* Decide attachments (limits) before writing, so the observation row
	 * exists for the identifiers to point at. */
	bool attached = false, any_conflict = false;
	for (size_t i = 0; i < usable; i++) {
		item *it = &r->items[i];
		if (it->owner)
			continue;
		if (it->kind->limit > 0) {
			int64_t have = 0;
			/* A customer created by this observation holds nothing yet. */
			if (!r->created && (rc = count_kind(r->db, r->target, it->kind->id, &have)))
				return rc;
			for (size_t j = 0; j < i; j++)
				have += r->items[j].attached && r->items[j].kind == it->kind;
			if (have >= it->kind->limit) {
				it->conflict = true;
				snprintf(it->conflict_why, sizeof it->conflict_why,
					 "customer %lld already has %lld %s value(s) (limit %d)",
					 (long long)r->target, (long long)have, it->kind->name,
					 it->kind->limit);
				continue;
			}
		}
		it->attached = attached = true;
	}
	for (size_t i = 0; i < usable; i++)
		any_conflict |= r->items[i].conflict;
	if (!attached && !any_conflict && !r->nmerges && !r->created)
		return SCRM_OK; /* nothing changed: nothing to record */
	if ((rc = write_observation(r, attached)))
		return rc;
	for (size_t i = 0; i < usable; i++) {
		item *it = &r->items[i];
		if (it->conflict) {
			if ((rc = record_conflict(r, it)))
				return rc;
			continue;
		}
		if (!it->attached)
			continue;
		sqlite3_stmt *st = scrm__stmt(
			r->db, "INSERT INTO ident(kind, value, customer, home, obs) VALUES(?1, ?2, ?3, ?3, ?4)");
		if (!st)
			return scrm_errcode(r->db);
		sqlite3_bind_int64(st, 1, it->kind->id);
		sqlite3_bind_text(st, 2, it->value, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, r->target);
		sqlite3_bind_int64(st, 4, r->obs);
		if ((rc = scrm__step_done(r->db, st, "attaching an identifier")))
			return rc;
	}
	return SCRM_OK;
}

static void ident_json(scrm_buf *b, const item *it)
{
	scrm__buf_puts(b, "{\"kind\":");
	scrm__buf_json_str(b, it->kind ? it->kind->name : "?");
	scrm__buf_puts(b, ",\"value\":");
	scrm__buf_json_str(b, it->usable ? it->value : it->raw);
}

static int build_report(const run *r, char **out)
{
	scrm_buf b;
	scrm__buf_init(&b, r->db);
	bool attached = false;
	for (size_t i = 0; i < r->n; i++)
		attached |= r->items[i].attached;
	scrm__buf_printf(&b, "{\"customer\":%lld,\"observation\":%lld,\"outcome\":\"%s\",\"attached\":[",
			 (long long)r->target, (long long)r->obs, outcome(r, attached));
	int k = 0;
	for (size_t i = 0; i < r->n; i++) {
		if (!r->items[i].attached)
			continue;
		scrm__buf_puts(&b, k++ ? "," : "");
		ident_json(&b, &r->items[i]);
		scrm__buf_puts(&b, "}");
	}
	scrm__buf_puts(&b, "],\"merged\":[");
	for (size_t i = 0; i < r->nmerges; i++)
		scrm__buf_printf(&b, "%s{\"merge\":%lld,\"survivor\":%lld,\"absorbed\":%lld}", i ? "," : "",
				 (long long)r->merges[i].id, (long long)r->merges[i].survivor,
				 (long long)r->merges[i].absorbed);
	scrm__buf_puts(&b, "],\"conflicts\":[");
	k = 0;
	for (size_t i = 0; i < r->n; i++) {
		const item *it = &r->items[i];
		if (!it->conflict)
			continue;
		scrm__buf_puts(&b, k++ ? "," : "");
		ident_json(&b, it);
		if (it->conflict_owner)
			scrm__buf_printf(&b, ",\"owner\":%lld", (long long)it->conflict_owner);
		else
			scrm__buf_puts(&b, ",\"owner\":null");
		scrm__buf_puts(&b, ",\"reason\":");
		scrm__buf_json_str(&b, it->conflict_why);
		scrm__buf_puts(&b, "}");
	}
	scrm__buf_puts(&b, "],\"rejected\":[");
	k = 0;
	for (size_t i = 0; i < r->n; i++) {
		const item *it = &r->items[i];
		if (it->usable)
			continue;
		scrm__buf_puts(&b, k++ ? "," : "");
		ident_json(&b, it);
		scrm__buf_puts(&b, ",\"reason\":");
		scrm__buf_json_str(&b, it->why);
		scrm__buf_puts(&b, "}");
	}
	scrm__buf_puts(&b, "]}");
	return scrm__buf_finish(&b, out);
}

static int observe(scrm_db *db, const char *channel, int64_t at, const char *const *kinds,
		   const char *const *values, size_t n, int64_t *customer, char **report)
{
	if (!channel || !customer || (n && (!kinds || !values)))
		return scrm__error(db, SCRM_MISUSE, "scrm_identity_observe: NULL argument");
	if (!*channel || strlen(channel) > 64 || !scrm__utf8_valid(channel, strlen(channel)))
		return scrm__error(db, SCRM_INVALID, "channel must be 1-64 bytes of UTF-8 text");
	if (n > ID_OBSERVE_MAX)
		return scrm__error(db, SCRM_LIMIT, "observation has %zu identifiers (at most %d)", n,
				   ID_OBSERVE_MAX);
	if (at < 0)
		return scrm__error(db, SCRM_RANGE, "observation time %lld is negative", (long long)at);
	id_state *ids;
	int rc = id__state(db, &ids);
	if (rc)
		return rc;
	item items[ID_OBSERVE_MAX];
	size_t usable = 0;
	for (size_t i = 0; i < n; i++) {
		item *it = &items[i];
		memset(it, 0, sizeof *it);
		if (!kinds[i] || !values[i])
			return scrm__error(db, SCRM_MISUSE, "identifier %zu has a NULL kind or value", i);
		it->raw = values[i];
		if (!(it->kind = id__kind_by_name(ids, kinds[i])))
			return scrm__error(db, SCRM_NOTFOUND, "identifier kind '%.*s' is not registered",
					   scrm__utf8_clip(kinds[i], 64), kinds[i]);
		it->usable = id__normalize(ids, it->kind, values[i], it->value, it->why,
					   sizeof it->why) == SCRM_OK;
		/* A repeated identifier counts once. */
		for (size_t j = 0; it->usable && j < i; j++)
			if (items[j].usable && items[j].kind == it->kind &&
			    strcmp(items[j].value, it->value) == 0)
				it->usable = false, snprintf(it->why, sizeof it->why, "duplicate in this observation");
		usable += it->usable;
	}
	if (usable == 0) {
		if (n == 0)
			return scrm__error(db, SCRM_INVALID, "observation has no identifiers");
		scrm_buf b;
		scrm__buf_init(&b, db);
		for (size_t i = 0; i < n; i++)
			scrm__buf_printf(&b, "%s%s '%.*s': %s", i ? "; " : "", items[i].kind->name,
					 scrm__utf8_clip(items[i].raw, 40), items[i].raw, items[i].why);
		rc = scrm__error(db, SCRM_INVALID, "observation has no usable identifier (%s)",
				 b.data ? b.data : "");
		scrm__buf_reset(&b);
		return rc;
	}
	qsort(items, n, sizeof items[0], cmp_items);
	run r = {.db = db, .ids = ids, .channel = channel, .at = at ? at : scrm__now(db),
		 .items = items, .n = n};
	/* Everything bad input can cause was refused above; from here only the
	 * database itself can fail, so no savepoint (see core-int.h). */
	if ((rc = scrm__tx_begin_unguarded(db)))
		return rc;
	rc = resolve_walk(&r);
	/* Built before commit: failing to report must not leave the change. */
	if (!rc && report)
		rc = build_report(&r, report);
	rc = scrm__tx_end(db, rc);
	if (rc) {
		if (report) {
			scrm__free(*report);
			*report = NULL;
		}
		return rc;
	}
	*customer = r.target;
	return SCRM_OK;
}

SCRM_API int scrm_identity_observe(scrm_db *db, const char *channel, int64_t at_ms,
				   const char *const *kinds, const char *const *values, size_t n,
				   int64_t *customer, char **report)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (report)
		*report = NULL;
	return observe(db, channel, at_ms, kinds, values, n, customer, report);
}

SCRM_API int scrm_identity_observe_json(scrm_db *db, const char *json, int64_t *customer,
					char **report)
{
	static const char *const fields[] = {"channel", "at", "ids", NULL};
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (report)
		*report = NULL;
	if (!customer)
		return scrm__error(db, SCRM_MISUSE, "scrm_identity_observe_json: customer is NULL");
	cJSON *root;
	if ((rc = scrm__json_parse(db, json, "observation", &root)))
		return rc;
	const char *kinds[ID_OBSERVE_MAX], *values[ID_OBSERVE_MAX];
	size_t n = 0;
	int64_t at = 0;
	const cJSON *ch = cJSON_GetObjectItemCaseSensitive(root, "channel");
	const cJSON *jat = cJSON_GetObjectItemCaseSensitive(root, "at");
	const cJSON *jids = cJSON_GetObjectItemCaseSensitive(root, "ids");
	if (!cJSON_IsObject(root)) {
		rc = scrm__error(db, SCRM_INVALID, "observation must be a JSON object");
		goto out;
	}
	if ((rc = scrm__json_only(db, root, "observation", fields)))
		goto out;
	if (!cJSON_IsString(ch)) {
		rc = scrm__error(db, SCRM_INVALID, "observation: \"channel\" (a string) is required");
		goto out;
	}
	if (cJSON_IsString(jat)) {
		if (!scrm__parse_time(jat->valuestring, &at)) {
			rc = scrm__error(db, SCRM_INVALID, "observation: \"at\" '%.*s' is not an RFC 3339 time",
					 scrm__utf8_clip(jat->valuestring, 40), jat->valuestring);
			goto out;
		}
	} else if (jat && (rc = scrm__json_int(db, jat, "observation \"at\"", 0, INT64_MAX / 2, &at))) {
		goto out;
	}
	if (!cJSON_IsObject(jids)) {
		rc = scrm__error(db, SCRM_INVALID, "observation: \"ids\" (an object of kind: value) is required");
		goto out;
	}
	const cJSON *k;
	cJSON_ArrayForEach(k, jids)
	{
		const cJSON *v = k, *first = cJSON_IsArray(k) ? k->child : k;
		for (v = first; v; v = cJSON_IsArray(k) ? v->next : NULL) {
			if (!cJSON_IsString(v)) {
				rc = scrm__error(db, SCRM_INVALID,
						 "observation: ids.%s must be a string or an array of strings",
						 k->string);
				goto out;
			}
			if (n == ID_OBSERVE_MAX) {
				rc = scrm__error(db, SCRM_LIMIT, "observation has more than %d identifiers",
						 ID_OBSERVE_MAX);
				goto out;
			}
			kinds[n] = k->string;
			values[n++] = v->valuestring;
		}
	}
	rc = observe(db, ch->valuestring, at, kinds, values, n, customer, report);
out:
	cJSON_Delete(root);
	return rc;
}

static int resolve(scrm_db *db, const char *kind, const char *value, int64_t *customer);

SCRM_API int scrm_identity_resolve(scrm_db *db, const char *kind, const char *value,
				   int64_t *customer)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!kind || !value || !customer)
		return scrm__error(db, SCRM_MISUSE, "scrm_identity_resolve: NULL argument");
	/* One read transaction for the cache check and the lookup: one lock
	 * round instead of two implicit ones. */
	if ((rc = scrm__tx_begin_read(db)))
		return rc;
	return scrm__tx_end(db, resolve(db, kind, value, customer));
}

static int resolve(scrm_db *db, const char *kind, const char *value, int64_t *customer)
{
	int rc;
	id_state *ids;
	if ((rc = id__state(db, &ids)))
		return rc;
	item it;
	it.kind = id__kind_by_name(ids, kind);
	if (!it.kind)
		return scrm__error(db, SCRM_NOTFOUND, "identifier kind '%.*s' is not registered",
				   scrm__utf8_clip(kind, 64), kind);
	if (id__normalize(ids, it.kind, value, it.value, it.why, sizeof it.why))
		return scrm__error(db, SCRM_INVALID, "%s value '%.*s' rejected: %s", kind, scrm__utf8_clip(value, 64), value, it.why);
	int64_t owner;
	if ((rc = lookup(db, &it, &owner)))
		return rc;
	if (!owner)
		return scrm__error(db, SCRM_NOTFOUND, "no customer has %s '%s'", kind, it.value);
	*customer = owner;
	return SCRM_OK;
}
