/*
 * Deciding and firing: a triggered rule goes through its condition, then
 * fire-once, cooldown, consent, cap and quiet hours, and either fires
 * (built-in actions run, host actions go to the outbox, all in the caller's
 * transaction) or is stopped or deferred; every outcome is traced.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <xxhash.h>

#include "rules-int.h"

/* ------------------------------------------------------------ keys, actions */

void ru__action_key(const char *rule_id, int64_t version, int64_t customer, const char *instance,
		    size_t index, char out[33])
{
	/* The bytes of "%s\x1f%lld\x1f%lld\x1f%s\x1f%zu" cut at 511, as the
	 * snprintf this replaces wrote them: keys of stored actions must not
	 * change. */
	char buf[2 * 511 + 4 + 3 * 21];
	size_t n = strnlen(rule_id, 511);
	memcpy(buf, rule_id, n);
	buf[n++] = '\x1f';
	n += scrm__fmt_int(buf + n, version);
	buf[n++] = '\x1f';
	n += scrm__fmt_int(buf + n, customer);
	buf[n++] = '\x1f';
	size_t l = strnlen(instance, 511);
	memcpy(buf + n, instance, l);
	n += l;
	buf[n++] = '\x1f';
	n += scrm__fmt_int(buf + n, (int64_t)index);
	if (n > 511)
		n = 511;
	XXH128_hash_t h = XXH3_128bits(buf, n);
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		out[i] = hex[(h.high64 >> (60 - 4 * i)) & 0xf];
		out[16 + i] = hex[(h.low64 >> (60 - 4 * i)) & 0xf];
	}
	out[32] = '\0';
}

int ru__actions_json(const ru_rule *r, scrm_buf *b)
{
	scrm__buf_puts(b, "[");
	for (size_t i = 0; i < r->nactions; i++) {
		const ru_action *a = &r->actions[i];
		scrm__buf_puts(b, i ? ",{\"type\":" : "{\"type\":");
		scrm__buf_json_str(b, a->name);
		if (a->tag) {
			scrm__buf_puts(b, ",\"tag\":");
			scrm__buf_json_str(b, a->tag);
		}
		if (a->params) {
			scrm__buf_puts(b, a->kind == RU_ACT_PROFILE_SET ? ",\"attributes\":" : ",\"params\":");
			scrm__buf_puts(b, a->params);
		}
		const char *consent = a->consent ? a->consent : a->kind == RU_ACT_HOST ? r->consent : NULL;
		if (consent) {
			scrm__buf_puts(b, ",\"consent\":");
			scrm__buf_json_str(b, consent);
		}
		scrm__buf_puts(b, "}");
	}
	scrm__buf_puts(b, "]");
	return b->oom ? SCRM_NOMEM : SCRM_OK;
}

static void actions_free(ru_action *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		scrm__free(a[i].name);
		scrm__free(a[i].tag);
		scrm__free(a[i].params);
		scrm__free(a[i].consent);
	}
	scrm__free(a);
}

/* The actions stored with a deferral (written by ru__actions_json). */
static int actions_parse(scrm_db *db, const char *json, ru_action **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	cJSON *j = cJSON_Parse(json);
	int cnt = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : 0;
	ru_action *a = cnt ? scrm__calloc(db, (size_t)cnt, sizeof *a) : NULL;
	if (!j || (cnt && !a)) {
		cJSON_Delete(j);
		return scrm__error(db, SCRM_NOMEM, "out of memory");
	}
	size_t k = 0;
	int rc = SCRM_OK;
	for (const cJSON *it = j->child; it && !rc; it = it->next, k++) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "type");
		const cJSON *tag = cJSON_GetObjectItemCaseSensitive(it, "tag");
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(it, "params");
		const cJSON *con = cJSON_GetObjectItemCaseSensitive(it, "consent");
		if (!p)
			p = cJSON_GetObjectItemCaseSensitive(it, "attributes");
		const char *name = cJSON_IsString(t) ? t->valuestring : "";
		a[k].kind = strcmp(name, "tag.add") == 0      ? RU_ACT_TAG_ADD
			    : strcmp(name, "tag.remove") == 0 ? RU_ACT_TAG_REMOVE
			    : strcmp(name, "profile.set") == 0 ? RU_ACT_PROFILE_SET
							       : RU_ACT_HOST;
		char *pt = p ? cJSON_PrintUnformatted(p) : NULL;
		if (!(a[k].name = scrm__strdup(db, name)) ||
		    (cJSON_IsString(tag) && !(a[k].tag = scrm__strdup(db, tag->valuestring))) ||
		    (pt && !(a[k].params = scrm__strdup(db, pt))) ||
		    (p && !pt) ||
		    (cJSON_IsString(con) && !(a[k].consent = scrm__strdup(db, con->valuestring))))
			rc = scrm__error(db, SCRM_NOMEM, "out of memory");
		cJSON_free(pt);
	}
	cJSON_Delete(j);
	if (rc) {
		actions_free(a, (size_t)cnt);
		return rc;
	}
	*out = a;
	*n = (size_t)cnt;
	return SCRM_OK;
}

/* ------------------------------------------------------------ firing */

static int insert_outbox(ru_ctx *c, const ru_fire_in *in, int64_t version, size_t index,
			 const ru_action *a, scrm_buf *detail, bool first)
{
	scrm_db *db = c->db;
	const ru_rule *r = in->r;
	char key[33];
	ru__action_key(r->id, version, c->customer, in->instance, index, key);
	/* kind and instance are the engine's own words ("absence", "ev:12",
	 * "date:2026-05-01"): nothing to escape. */
	scrm_buf ctxb;
	scrm__buf_init(&ctxb, db);
	scrm__buf_puts(&ctxb, "{\"kind\":\"");
	scrm__buf_puts(&ctxb, in->kind);
	scrm__buf_puts(&ctxb, "\",\"instance\":\"");
	scrm__buf_puts(&ctxb, in->instance);
	if (in->event_id) {
		scrm__buf_puts(&ctxb, "\",\"event\":");
		scrm__buf_int(&ctxb, in->event_id);
		scrm__buf_puts(&ctxb, "}");
	} else {
		scrm__buf_puts(&ctxb, "\"}");
	}
	if (ctxb.oom) {
		scrm__buf_reset(&ctxb);
		return scrm__error(db, SCRM_NOMEM, "out of memory");
	}
	const char *context = ctxb.data;
	sqlite3_stmt *st = scrm__stmt(
		db, "INSERT INTO outbox(ikey, action, params, customer, rid, version, context, state, "
		    "next_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8)");
	if (!st) {
		scrm__buf_reset(&ctxb);
		return scrm_errcode(db);
	}
	sqlite3_bind_text(st, 1, key, 32, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, a->params ? a->params : "{}", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, c->customer);
	sqlite3_bind_int64(st, 5, r->rid);
	sqlite3_bind_int64(st, 6, version);
	sqlite3_bind_text(st, 7, context, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, c->now);
	int rc = scrm__step_done(db, st, "writing to the outbox");
	scrm__buf_reset(&ctxb);
	if (rc)
		return rc;
	scrm__buf_puts(detail, first ? "{\"action\":" : ",{\"action\":");
	scrm__buf_json_str(detail, a->name);
	scrm__buf_puts(detail, ",\"outbox\":");
	scrm__buf_int(detail, sqlite3_last_insert_rowid(scrm__sqlite(db)));
	scrm__buf_puts(detail, ",\"key\":\"");
	scrm__buf_append(detail, key, 32);
	scrm__buf_puts(detail, "\"}");
	return SCRM_OK;
}

static int run_actions(ru_ctx *c, const ru_fire_in *in, int64_t version, const ru_action *acts,
		       size_t n, scrm_buf *detail, bool *host)
{
	const ru_rule *r = in->r;
	int rc = SCRM_OK;
	bool first = true;
	*host = false;
	scrm__buf_puts(detail, ",\"actions\":[");
	/* Built-ins that can refuse their input go first, so a refusal
	 * leaves nothing of the firing behind (its savepoint is rolled back). */
	for (size_t i = 0; i < n && !rc; i++) {
		if (acts[i].kind != RU_ACT_PROFILE_SET)
			continue;
		rc = scrm_profile_set_json(c->db, c->customer, acts[i].params);
		scrm__buf_printf(detail, "%s{\"action\":\"profile.set\"}", first ? "" : ",");
		first = false;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		const ru_action *a = &acts[i];
		if (a->kind == RU_ACT_TAG_ADD || a->kind == RU_ACT_TAG_REMOVE) {
			bool changed = false;
			rc = ru__tag_change(c->db, c->customer, a->tag, a->kind == RU_ACT_TAG_ADD, c->now,
					    r->id, version, NULL, &changed);
			scrm__buf_printf(detail, "%s{\"action\":\"%s\",\"tag\":", first ? "" : ",", a->name);
			scrm__buf_json_str(detail, a->tag ? a->tag : "");
			scrm__buf_printf(detail, ",\"changed\":%s}", changed ? "true" : "false");
			first = false;
		} else if (a->kind == RU_ACT_HOST) {
			rc = insert_outbox(c, in, version, i, a, detail, first);
			*host = true;
			first = false;
		}
	}
	scrm__buf_puts(detail, "]");
	return rc;
}

static bool refusal(int rc)
{
	return rc == SCRM_INVALID || rc == SCRM_NOTFOUND || rc == SCRM_STATE || rc == SCRM_LIMIT ||
	       rc == SCRM_RANGE || rc == SCRM_PARSE || rc == SCRM_CONFLICT;
}

int ru__fire(ru_ctx *c, const ru_fire_in *in, const ru_action *acts, size_t n, scrm_buf *detail)
{
	scrm_db *db = c->db;
	const ru_rule *r = in->r;
	int64_t version = in->deferred ? in->version : r->version;
	int rc;
	bool guarded = false;
	for (size_t i = 0; i < n; i++)
		guarded |= acts[i].kind == RU_ACT_PROFILE_SET;
	if (guarded && (rc = scrm__tx_begin(db)))
		return rc;
	bool host = false;
	rc = run_actions(c, in, version, acts, n, detail, &host);
	if (!rc) {
		sqlite3_stmt *st = scrm__stmt(
			db, "INSERT INTO rule_fire(rid, customer, grp, at) VALUES (?1, ?2, ?3, ?4)");
		if (!st) {
			rc = scrm_errcode(db);
		} else {
			sqlite3_bind_int64(st, 1, r->rid);
			sqlite3_bind_int64(st, 2, c->customer);
			if (r->group)
				sqlite3_bind_text(st, 3, r->group, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 4, c->now);
			rc = scrm__step_done(db, st, "recording a firing");
		}
	}
	if (guarded) {
		if (rc && refusal(rc)) {
			/* Traced by the caller as an error of this rule; the
			 * event (or tick) goes on. */
			char msg[256];
			snprintf(msg, sizeof msg, "%s", scrm_errmsg(db));
			int code = rc;
			if ((rc = scrm__tx_end(db, rc)) == code) {
				detail->len = 0;
				detail->oom = false;
				scrm__buf_printf(detail, ",\"code\":\"%s\",\"error\":", ru__code_name(code));
				scrm__buf_json_str(detail, msg);
				rc = SCRM_EVAL; /* "not fired, traced as an error" */
			}
			return rc;
		}
		rc = scrm__tx_end(db, rc);
	}
	if (!rc && host)
		ru__outbox_wrote(db, c->st);
	return rc;
}

int ru__defer(ru_ctx *c, const ru_fire_in *in, int64_t until, const char *reason)
{
	scrm_db *db = c->db;
	const ru_rule *r = in->r;
	sqlite3_stmt *st;
	if (in->deferred) {
		st = scrm__stmt(db, "UPDATE rule_deferred SET due = ?2, reason = ?3 WHERE id = ?1");
		if (!st)
			return scrm_errcode(db);
		sqlite3_bind_int64(st, 1, in->deferred_id);
		sqlite3_bind_int64(st, 2, until);
		sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
		return scrm__step_done(db, st, "deferring a firing");
	}
	scrm_buf acts;
	scrm__buf_init(&acts, db);
	if (ru__actions_json(r, &acts)) {
		scrm__buf_reset(&acts);
		return scrm__error(db, SCRM_NOMEM, "out of memory");
	}
	st = scrm__stmt(db, "INSERT INTO rule_deferred(rid, version, customer, kind, instance, event, "
			    "actions, due, reason, created_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)");
	int rc;
	if (!st) {
		rc = scrm_errcode(db);
	} else {
		sqlite3_bind_int64(st, 1, r->rid);
		sqlite3_bind_int64(st, 2, r->version);
		sqlite3_bind_int64(st, 3, c->customer);
		sqlite3_bind_text(st, 4, in->kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, in->instance, -1, SQLITE_STATIC);
		if (in->event_id)
			sqlite3_bind_int64(st, 6, in->event_id);
		sqlite3_bind_text(st, 7, acts.data, (int)acts.len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, until);
		sqlite3_bind_text(st, 9, reason, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 10, c->now);
		rc = scrm__step_done(db, st, "deferring a firing");
	}
	scrm__buf_reset(&acts);
	return rc;
}

static int drop_deferral(scrm_db *db, int64_t id)
{
	sqlite3_stmt *st = scrm__stmt(db, "DELETE FROM rule_deferred WHERE id = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, id);
	return scrm__step_done(db, st, "removing a deferral");
}

/* ------------------------------------------------------------ deciding */

static int trace_out(ru_ctx *c, const ru_fire_in *in, const char *outcome, scrm_buf *detail,
		     const scrm_buf *inputs)
{
	int64_t version = in->deferred ? in->version : in->r->version;
	if (detail->oom || (inputs && inputs->oom))
		return scrm__error(c->db, SCRM_NOMEM, "out of memory tracing");
	/* detail holds ",member…" pieces: wrap them as an object. */
	scrm_buf d;
	scrm__buf_init(&d, c->db);
	scrm__buf_puts(&d, "{");
	if (detail->len)
		scrm__buf_append(&d, detail->data + 1, detail->len - 1);
	scrm__buf_puts(&d, "}");
	int rc = d.oom ? scrm__error(c->db, SCRM_NOMEM, "out of memory tracing")
		       : ru__trace(c, in->r, version, in->kind, in->instance, in->event_id, outcome,
				   d.data, inputs && inputs->len ? inputs->data : NULL);
	scrm__buf_reset(&d);
	return rc;
}

static void cap_detail(scrm_buf *d, const ru_group *g, const ru_cap *cap, int on_cap)
{
	static const char *const cal[] = {"", "day", "week", "month"};
	scrm__buf_puts(d, ",\"group\":");
	scrm__buf_json_str(d, g->name);
	scrm__buf_printf(d, ",\"cap\":\"%lld/%lld\",\"count\":%lld,\"max\":%lld", (long long)cap->count,
			 (long long)cap->max, (long long)cap->count, (long long)cap->max);
	if (g->calendar)
		scrm__buf_printf(d, ",\"window\":\"calendar %s\"", cal[g->calendar]);
	else
	{
		char dur[32];
		ru__dur_str(g->per_ms, dur, sizeof dur);
		scrm__buf_printf(d, ",\"window\":\"rolling %s\"", dur);
	}
	if (on_cap)
		scrm__buf_printf(d, ",\"on_cap\":\"%s\"", on_cap == RU_ON_CAP_DEFER ? "defer" : "drop");
}

/* The limits checked at every firing attempt, fresh or deferred: consent,
 * cap, quiet hours; then fire. */
static int limits_and_fire(ru_ctx *c, const ru_fire_in *in, const ru_action *acts, size_t n,
			   scrm_buf *detail, scrm_buf *inputs)
{
	const ru_rule *r = in->r;
	const char *purpose;
	int rc = ru__check_consent(c, in->deferred ? NULL : r, acts, n, &purpose);
	if (rc)
		return rc;
	if (purpose) {
		scrm__buf_puts(detail, ",\"purpose\":");
		scrm__buf_json_str(detail, purpose);
		if (in->deferred && (rc = drop_deferral(c->db, in->deferred_id)))
			return rc;
		return trace_out(c, in, "no_consent", detail, inputs);
	}
	const ru_group *g = r->group ? ru__group(&c->st->cfg, r->group) : NULL;
	ru_cap cap = {0, 0, 0};
	if (g) {
		if ((rc = ru__check_cap(c, r, g, &cap)))
			return rc;
		if (cap.count >= cap.max) {
			int on_cap = r->on_cap ? r->on_cap : g->on_cap;
			cap_detail(detail, g, &cap, on_cap);
			if (on_cap == RU_ON_CAP_DEFER) {
				scrm__buf_printf(detail, ",\"until\":%lld", (long long)cap.release);
				if ((rc = ru__defer(c, in, cap.release, "cap")))
					return rc;
				return trace_out(c, in, "cap_deferred", detail, inputs);
			}
			if (in->deferred && (rc = drop_deferral(c->db, in->deferred_id)))
				return rc;
			return trace_out(c, in, "cap_reached", detail, inputs);
		}
	}
	int64_t until;
	if ((rc = ru__check_quiet(c, r, &until)))
		return rc;
	if (until) {
		scrm__buf_printf(detail, ",\"until\":%lld,\"tz\":", (long long)until);
		scrm__buf_json_str(detail, c->tz_name);
		if ((rc = ru__defer(c, in, until, "quiet_hours")))
			return rc;
		return trace_out(c, in, "quiet_hours_deferred", detail, inputs);
	}
	if (g) {
		cap.count++;
		cap_detail(detail, g, &cap, 0);
	}
	if (in->deferred) {
		scrm__buf_printf(detail, ",\"deferred\":%lld", (long long)in->deferred_id);
		if ((rc = drop_deferral(c->db, in->deferred_id)))
			return rc;
	}
	rc = ru__fire(c, in, acts, n, detail);
	if (rc == SCRM_EVAL) /* a built-in action refused its input: nothing was done */
		return trace_out(c, in, "error", detail, inputs);
	if (rc)
		return rc;
	return trace_out(c, in, "fired", detail, inputs);
}

int ru__decide(ru_ctx *c, const ru_fire_in *in)
{
	const ru_rule *r = in->r;
	scrm_buf detail, inputs;
	scrm__buf_init(&detail, c->db);
	scrm__buf_init(&inputs, c->db);
	int rc = SCRM_OK;
	if (r->cond) {
		int holds, evalerr;
		if ((rc = ru__eval(c, r->cond, &holds, &evalerr, &inputs)))
			goto out;
		if (evalerr) {
			scrm__buf_printf(&detail, ",\"code\":\"%s\",\"error\":", ru__code_name(evalerr));
			scrm__buf_json_str(&detail, scrm_expr_errmsg(r->cond->v));
			rc = trace_out(c, in, "error", &detail, &inputs);
			goto out;
		}
		if (!holds) {
			if (c->st->cfg.trace_condition_false)
				rc = trace_out(c, in, "condition_false", &detail, &inputs);
			goto out;
		}
	}
	const char *stop;
	int64_t until;
	if ((rc = ru__check_once_cooldown(c, r, &stop, &until)))
		goto out;
	if (stop) {
		if (until)
			scrm__buf_printf(&detail, ",\"until\":%lld", (long long)until);
		rc = trace_out(c, in, stop, &detail, &inputs);
		goto out;
	}
	rc = limits_and_fire(c, in, r->actions, r->nactions, &detail, &inputs);
out:
	scrm__buf_reset(&detail);
	scrm__buf_reset(&inputs);
	return rc;
}

int ru__decide_deferred(ru_ctx *c, const ru_fire_in *in)
{
	ru_action *acts;
	size_t n;
	int rc = actions_parse(c->db, in->actions, &acts, &n);
	if (rc)
		return rc;
	scrm_buf detail;
	scrm__buf_init(&detail, c->db);
	rc = limits_and_fire(c, in, acts, n, &detail, NULL);
	scrm__buf_reset(&detail);
	actions_free(acts, n);
	return rc;
}
