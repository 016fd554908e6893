/*
 * Evaluating rule conditions: binding event, profile and trigger fields to
 * an expression's slots (the profile only when the expression reads it),
 * has_tag()/count()/sum() for the customer, and recording what was read so
 * that the trace can replay the evaluation sub-expression by sub-expression
 * later without storing every intermediate value on the hot path.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rules-int.h"
#include "expr-int.h" /* scrm_expr_env: the resolver hook for lazy profile binding */

/* ------------------------------------------------------------ context */

void ru__ctx_init(ru_ctx *c, scrm_db *db, ru_state *st, int64_t customer, int64_t now)
{
	memset(c, 0, sizeof *c);
	c->db = db;
	c->st = st;
	c->customer = customer;
	c->now = now;
	scrm__buf_init(&c->calls, db);
}

void ru__ctx_clear(ru_ctx *c)
{
	ru__trace_drop(c);
	scrm__free(c->profile);
	cJSON_Delete(c->profile_j);
	for (size_t i = 0; i < c->nattrs; i++) {
		scrm__free(c->attrs[i].name);
		scrm__free(c->attrs[i].json);
	}
	scrm__free(c->attrs);
	scrm__buf_reset(&c->calls);
	c->profile = NULL;
	c->profile_j = NULL;
	c->attrs = NULL;
	c->nattrs = c->capattrs = 0;
	c->profile_loaded = c->tz_loaded = false;
}

/* Infrastructure failures (the database, memory) fail the whole call;
 * anything else a callee refuses is the expression's problem. */
static bool infra(int rc)
{
	return rc == SCRM_NOMEM || rc == SCRM_IO || rc == SCRM_BUSY || rc == SCRM_CORRUPT ||
	       rc == SCRM_ERROR || rc == SCRM_READONLY || rc == SCRM_SCHEMA || rc == SCRM_STATE ||
	       rc == SCRM_MISUSE;
}

/* One attribute's value as JSON text (*json NULL when unset), cached. */
int ru__ctx_attr(ru_ctx *c, const char *name, const char **json)
{
	for (size_t i = 0; i < c->nattrs; i++)
		if (strcmp(c->attrs[i].name, name) == 0) {
			*json = c->attrs[i].json;
			return SCRM_OK;
		}
	if (c->nattrs == c->capattrs) {
		size_t cap = c->capattrs ? c->capattrs * 2 : 4;
		ru_attr_cache *p = scrm__realloc(c->db, c->attrs, cap * sizeof *p);
		if (!p)
			return scrm__error(c->db, SCRM_NOMEM, "out of memory");
		c->attrs = p;
		c->capattrs = cap;
	}
	char *val = NULL, *nm = scrm__strdup(c->db, name);
	if (!nm)
		return scrm__error(c->db, SCRM_NOMEM, "out of memory");
	int rc = scrm_profile_get(c->db, c->customer, name, &val);
	/* Unset, an erased customer, or a name the profile engine refuses:
	 * the attribute is missing, as in the profile JSON. */
	if (rc == SCRM_NOTFOUND || rc == SCRM_STATE || rc == SCRM_INVALID) {
		scrm__clear_error(c->db);
		rc = SCRM_OK;
		val = NULL;
	}
	if (rc) {
		scrm__free(nm);
		return rc;
	}
	/* scrm_free and scrm__free release the same allocator's blocks. */
	c->attrs[c->nattrs].name = nm;
	c->attrs[c->nattrs].json = val;
	c->nattrs++;
	*json = val;
	return SCRM_OK;
}

static int ctx_profile(ru_ctx *c)
{
	if (c->profile_loaded)
		return SCRM_OK;
	int rc = scrm_profile_json(c->db, c->customer, 0, &c->profile);
	if (rc == SCRM_NOTFOUND || rc == SCRM_STATE) {
		scrm__clear_error(c->db);
		rc = SCRM_OK;
	}
	c->profile_loaded = rc == SCRM_OK;
	return rc;
}

int ru__ctx_tz(ru_ctx *c, const scrm_tz **z)
{
	if (!c->tz_loaded) {
		const char *json;
		int rc = ru__ctx_attr(c, "tz", &json);
		if (rc)
			return rc;
		c->tz = c->st->cfg.default_zone;
		snprintf(c->tz_name, sizeof c->tz_name, "%s", c->st->cfg.default_tz);
		size_t n = json ? strlen(json) : 0;
		scrm_tz o;
		/* A name without escapes: "Asia/Shanghai". Unknown zones fall
		 * back to the default. */
		if (n > 2 && n < sizeof c->tz_name && json[0] == '"' && json[n - 1] == '"' &&
		    !memchr(json, '\\', n) && ru__tz(json + 1, n - 2, &o)) {
			c->tz = o;
			snprintf(c->tz_name, sizeof c->tz_name, "%.*s", (int)(n - 2), json + 1);
		}
		c->tz_loaded = true;
	}
	*z = &c->tz;
	return SCRM_OK;
}

/* ------------------------------------------------------------ events */

void ru__event_row_free(ru_ev_row *row)
{
	for (size_t i = 0; i < SCRM_ARRAY_LEN(row->buf); i++)
		scrm__free(row->buf[i]);
	memset(row, 0, sizeof *row);
}

int ru__event_read(scrm_db *db, int64_t id, ru_ev_row *row, bool *found)
{
	memset(row, 0, sizeof *row);
	*found = false;
	/* The profile engine's event rows, read as scrm_profile_events_json()
	 * shows them: an erased event has no key, props or items. */
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT e.type, e.channel, CASE WHEN typeof(e.ikey) = 'text' THEN e.ikey END, "
		    "e.at, e.amount, e.currency, "
		    "(SELECT CASE WHEN typeof(o.ikey) = 'text' THEN o.ikey END FROM event o "
		    " WHERE o.id = e.refund_of), e.props, e.items FROM event e WHERE e.id = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, id);
	int s = sqlite3_step(st), rc = SCRM_OK;
	if (s == SQLITE_ROW) {
		static const int cols[] = {0, 1, 2, 5, 6, 7, 8};
		for (size_t i = 0; i < SCRM_ARRAY_LEN(cols) && !rc; i++) {
			const char *t = (const char *)sqlite3_column_text(st, cols[i]);
			if (t && !(row->buf[i] = scrm__strdup(db, t)))
				rc = scrm__error(db, SCRM_NOMEM, "out of memory");
		}
		row->ev.id = id;
		row->ev.type = row->buf[0] ? row->buf[0] : "";
		row->ev.channel = row->buf[1] ? row->buf[1] : "";
		row->ev.key = row->buf[2];
		row->ev.at = sqlite3_column_int64(st, 3);
		row->ev.has_amount = sqlite3_column_type(st, 4) != SQLITE_NULL;
		row->ev.amount = sqlite3_column_int64(st, 4);
		row->ev.currency = row->buf[3];
		row->ev.refund_of = row->buf[4];
		row->ev.props = row->buf[5];
		row->ev.items = row->buf[6];
		*found = true;
	} else if (s != SQLITE_DONE) {
		rc = scrm__sqlerr(db, s, "reading an event");
	}
	sqlite3_reset(st);
	if (rc)
		ru__event_row_free(row);
	return rc;
}

/* ------------------------------------------------------------ host functions */

typedef struct replay {
	cJSON *calls; /* recorded [fn, arg…, result] in call order */
	const cJSON *next;
} replay;

static int tag_cb(void *ud, const char *tag, size_t n, int *has)
{
	ru_ctx *c = ud;
	int rc = ru__tag_has(c->db, c->customer, tag, n, has);
	if (rc) {
		if (infra(rc))
			c->err = rc;
		return rc;
	}
	scrm__buf_puts(&c->calls, c->ncalls++ ? ",[\"has_tag\"," : "[\"has_tag\",");
	char *t = scrm__strndup(c->db, tag, n);
	if (!t)
		return c->err = scrm__error(c->db, SCRM_NOMEM, "out of memory");
	scrm__buf_json_str(&c->calls, t);
	scrm__free(t);
	scrm__buf_printf(&c->calls, ",%d]", *has);
	return SCRM_OK;
}

static int events_cb(void *ud, int agg, const char *type, size_t n, int64_t from, int64_t to,
		     int64_t *result)
{
	ru_ctx *c = ud;
	char t[64];
	if (n >= sizeof t)
		return scrm__error(c->db, SCRM_INVALID, "event type is longer than %zu bytes",
				   sizeof t - 1);
	memcpy(t, type, n);
	t[n] = '\0';
	int64_t count = 0, sum = 0;
	int rc = scrm_profile_event_stats(c->db, c->customer, t, from, NULL, &count, &sum);
	if (rc == SCRM_NOTFOUND) {
		scrm__clear_error(c->db);
		rc = SCRM_OK;
	}
	if (rc) {
		if (infra(rc))
			c->err = rc;
		return rc;
	}
	(void)to;
	*result = agg == SCRM_EXPR_AGG_SUM ? sum : count;
	scrm__buf_printf(&c->calls, "%s[\"%s\",", c->ncalls++ ? "," : "",
			 agg == SCRM_EXPR_AGG_SUM ? "sum" : "count");
	scrm__buf_json_str(&c->calls, t);
	scrm__buf_printf(&c->calls, ",%lld,%lld]", (long long)from, (long long)*result);
	return SCRM_OK;
}

/* Replayed host calls return what they returned when recorded. */
static const cJSON *replay_next(replay *r, const char *fn)
{
	const cJSON *c = r->next;
	if (!c || !cJSON_IsArray(c))
		return NULL;
	r->next = c->next;
	const cJSON *f = cJSON_GetArrayItem(c, 0);
	return cJSON_IsString(f) && strcmp(f->valuestring, fn) == 0 ? c : NULL;
}

static int replay_tag(void *ud, const char *tag, size_t n, int *has)
{
	(void)tag;
	(void)n;
	const cJSON *c = replay_next(ud, "has_tag");
	const cJSON *v = c ? cJSON_GetArrayItem(c, 2) : NULL;
	if (!cJSON_IsNumber(v))
		return SCRM_EVAL;
	*has = v->valueint != 0;
	return SCRM_OK;
}

static int replay_events(void *ud, int agg, const char *type, size_t n, int64_t from, int64_t to,
			 int64_t *result)
{
	(void)type;
	(void)n;
	(void)from;
	(void)to;
	const cJSON *c = replay_next(ud, agg == SCRM_EXPR_AGG_SUM ? "sum" : "count");
	const cJSON *v = c ? cJSON_GetArrayItem(c, 3) : NULL;
	if (!cJSON_IsNumber(v))
		return SCRM_EVAL;
	*result = (int64_t)v->valuedouble;
	return SCRM_OK;
}

/* ------------------------------------------------------------ binding */

static const char *ev_prefix(int which, const char *field, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s%s", which == RU_EVT_START ? "start" : "event", field);
	return buf;
}

static int bind_str(scrm_expr_vars *v, int slot, const char *s)
{
	return s ? scrm_expr_vars_set_str(v, slot, s, strlen(s)) : scrm_expr_vars_set_null(v, slot);
}

/* Event and trigger fields (everything but the profile). */
static int bind_common(scrm_db *db, ru_expr *x, const ru_ev *evs[2], const char *kind,
		       const char *instance, int64_t due)
{
	scrm_expr_vars *v = x->v;
	char name[16];
	int rc = scrm_expr_vars_reset(v);
	/* A path naming the event object itself: present, opaque. */
	for (int i = 0; i < x->nslots && !rc; i++)
		if (x->slots[i].src == RU_SRC_EV_OBJ && evs[x->slots[i].which])
			rc = scrm_expr_vars_set_json(v, ev_prefix(x->slots[i].which, "", name, sizeof name),
						     "{}");
	for (int w = 0; w < 2 && !rc; w++) {
		const ru_ev *ev = evs[w];
		if (!ev)
			continue;
		if (x->props[w] && ev->props)
			rc = scrm_expr_vars_set_json(v, ev_prefix(w, ".props", name, sizeof name), ev->props);
		if (!rc && x->items[w] && ev->items)
			rc = scrm_expr_vars_set_json(v, ev_prefix(w, ".items", name, sizeof name), ev->items);
	}
	for (int i = 0; i < x->nslots && !rc; i++) {
		const ru_slot *s = &x->slots[i];
		const ru_ev *ev = s->src >= RU_SRC_EV_ID && s->src <= RU_SRC_EV_REFUND_OF ? evs[s->which]
											   : NULL;
		switch (s->src) {
		case RU_SRC_EV_ID: if (ev) rc = scrm_expr_vars_set_int(v, i, ev->id); break;
		case RU_SRC_EV_TYPE: if (ev) rc = bind_str(v, i, ev->type); break;
		case RU_SRC_EV_CHANNEL: if (ev) rc = bind_str(v, i, ev->channel); break;
		case RU_SRC_EV_KEY: if (ev) rc = bind_str(v, i, ev->key); break;
		case RU_SRC_EV_AT: if (ev) rc = scrm_expr_vars_set_int(v, i, ev->at); break;
		case RU_SRC_EV_AMOUNT:
			if (ev)
				rc = ev->has_amount ? scrm_expr_vars_set_int(v, i, ev->amount)
						    : scrm_expr_vars_set_null(v, i);
			break;
		case RU_SRC_EV_CURRENCY: if (ev) rc = bind_str(v, i, ev->currency); break;
		case RU_SRC_EV_REFUND_OF: if (ev) rc = bind_str(v, i, ev->refund_of); break;
		case RU_SRC_TRIGGER: {
			const char *p = scrm_expr_var_name(x->e, i) + 8;
			if (strcmp(p, "kind") == 0)
				rc = bind_str(v, i, kind);
			else if (strcmp(p, "instance") == 0)
				rc = bind_str(v, i, instance);
			else if (due)
				rc = scrm_expr_vars_set_int(v, i, due);
			break;
		}
		default: break;
		}
	}
	if (rc && rc != SCRM_NOMEM)
		/* Stored JSON that no longer binds (it was valid when stored). */
		rc = scrm__error(db, rc, "binding rule inputs: %s", scrm_expr_errmsg(v));
	else if (rc)
		rc = scrm__error(db, SCRM_NOMEM, "out of memory binding rule inputs");
	return rc;
}

/* Copy the subtree at dotted `path` (after "profile.") of src into dst. */
static bool prune_copy(cJSON *dst, const cJSON *src, const char *path)
{
	while (*path) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);
		char key[128];
		if (n >= sizeof key || !cJSON_IsObject(src))
			return true;
		memcpy(key, path, n);
		key[n] = '\0';
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(src, key);
		if (!s)
			return true; /* missing stays missing */
		cJSON *d = cJSON_GetObjectItemCaseSensitive(dst, key);
		if (!dot || !cJSON_IsObject(s)) {
			if (d)
				return true;
			cJSON *dup = cJSON_Duplicate(s, 1);
			if (!dup || !cJSON_AddItemToObject(dst, key, dup)) {
				cJSON_Delete(dup);
				return false;
			}
			return true;
		}
		if (!d && !(d = cJSON_AddObjectToObject(dst, key)))
			return false;
		if (!cJSON_IsObject(d))
			return true;
		dst = d;
		src = s;
		path = dot + 1;
	}
	return true;
}

/* Profile paths are bound lazily, when the evaluation first reads one
 * (the expression engine asks its resolver for slots nobody bound): a
 * condition whose `event.amount >= 50000 && profile…` stops at the event
 * costs no profile read. */
typedef struct lazy {
	ru_ctx *c;
	ru_expr *x;
	bool record;
	bool full;        /* the whole profile was bound */
	scrm_buf attrs;   /* ,"name":json… of the attributes bound */
} lazy;

static int resolve_cb(void *ud, scrm_expr_vars *vars, int slot, const char *path)
{
	lazy *lz = ud;
	ru_ctx *c = lz->c;
	const ru_slot *s = &lz->x->slots[slot];
	int rc = SCRM_OK;
	(void)path;
	if (s->src == RU_SRC_PROFILE || (s->src == RU_SRC_PROFILE_ATTR && lz->x->profile)) {
		if (lz->full || (rc = ctx_profile(c)) || !c->profile)
			goto out;
		lz->full = true;
		if ((rc = scrm_expr_vars_set_json(vars, "profile", c->profile)))
			rc = scrm__error(c->db, rc, "binding the profile: %s", scrm_expr_errmsg(vars));
	} else if (s->src == RU_SRC_PROFILE_ATTR) {
		const char *json;
		if ((rc = ru__ctx_attr(c, s->attr, &json)) || !json)
			goto out;
		char prefix[96];
		snprintf(prefix, sizeof prefix, "profile.attributes.%s", s->attr);
		if ((rc = scrm_expr_vars_set_json(vars, prefix, json))) {
			rc = scrm__error(c->db, rc, "binding attribute %s: %s", s->attr,
					 scrm_expr_errmsg(vars));
			goto out;
		}
		if (lz->record) {
			scrm__buf_puts(&lz->attrs, ",");
			scrm__buf_json_str(&lz->attrs, s->attr);
			scrm__buf_puts(&lz->attrs, ":");
			scrm__buf_puts(&lz->attrs, json);
		}
	}
out:
	if (rc)
		c->err = rc;
	return rc;
}

/* The part of the profile that was read, for the trace. */
static int record_profile(lazy *lz, scrm_buf *rec)
{
	ru_ctx *c = lz->c;
	ru_expr *x = lz->x;
	if (lz->attrs.len) {
		scrm__buf_puts(rec, ",\"profile\":{\"attributes\":{");
		scrm__buf_append(rec, lz->attrs.data + 1, lz->attrs.len - 1);
		scrm__buf_puts(rec, "}}");
	}
	if (lz->attrs.oom)
		rec->oom = true;
	if (!lz->full)
		return SCRM_OK;
	if (!c->profile_j && !(c->profile_j = cJSON_Parse(c->profile)))
		return scrm__error(c->db, SCRM_NOMEM, "out of memory");
	cJSON *pr = cJSON_CreateObject();
	bool ok = pr != NULL;
	for (int i = 0; i < x->nslots && ok; i++) {
		const char *p = scrm_expr_var_name(x->e, i);
		if ((x->slots[i].src == RU_SRC_PROFILE || x->slots[i].src == RU_SRC_PROFILE_ATTR) &&
		    strlen(p) > 8)
			ok = prune_copy(pr, c->profile_j, p + 8);
	}
	char *text = ok ? cJSON_PrintUnformatted(pr) : NULL;
	cJSON_Delete(pr);
	if (!text)
		return scrm__error(c->db, SCRM_NOMEM, "out of memory");
	scrm__buf_puts(rec, ",\"profile\":");
	scrm__buf_puts(rec, text);
	cJSON_free(text);
	return SCRM_OK;
}

int ru__eval(ru_ctx *c, ru_expr *x, int *holds, int *evalerr, scrm_buf *inputs)
{
	const ru_ev *evs[2] = {c->ev, c->start};
	*holds = 0;
	*evalerr = 0;
	int rc = bind_common(c->db, x, evs, c->trig_kind, c->instance, c->due);
	if (rc)
		return rc;
	lazy lz = {c, x, inputs != NULL, false, {0}};
	scrm__buf_init(&lz.attrs, c->db);
	scrm_expr_env *env = c->st->env;
	scrm_expr_env_set_now(env, c->now);
	scrm_expr_env_set_functions(env, tag_cb, events_cb, c);
	env->h.resolve = resolve_cb;
	env->h.resolve_ud = &lz;
	scrm_expr_vars_set_env(x->v, env);
	c->calls.len = 0; /* keep the buffer */
	c->calls.oom = false;
	c->ncalls = 0;
	c->err = 0;
	rc = scrm_expr_test(x->e, x->v, holds);
	env->h.resolve = NULL;
	env->h.resolve_ud = NULL;
	/* Recorded: what the trace row does not hold already (its time, kind,
	 * instance and event are the evaluation's now, trigger and event). */
	if (inputs) {
		scrm_buf m;
		scrm__buf_init(&m, c->db);
		if (c->start) /* correlation: the two events */
			scrm__buf_printf(&m, ",\"event\":%lld,\"start\":%lld", (long long)c->ev->id,
					 (long long)c->start->id);
		if (c->due)
			scrm__buf_printf(&m, ",\"due\":%lld", (long long)c->due);
		int prc = rc == SCRM_OK || !c->err ? record_profile(&lz, &m) : SCRM_OK;
		if (c->ncalls) {
			scrm__buf_puts(&m, ",\"calls\":[");
			scrm__buf_append(&m, c->calls.data, c->calls.len);
			if (c->calls.oom)
				m.oom = true;
			scrm__buf_puts(&m, "]");
		}
		scrm__buf_puts(inputs, "{");
		if (m.len)
			scrm__buf_append(inputs, m.data + 1, m.len - 1);
		scrm__buf_puts(inputs, "}");
		if (m.oom)
			inputs->oom = true;
		scrm__buf_reset(&m);
		if (prc && !c->err)
			c->err = prc;
	}
	scrm__buf_reset(&lz.attrs);
	if (rc == SCRM_OK && !c->err)
		return SCRM_OK;
	if (c->err)
		return c->err;
	if (rc == SCRM_NOMEM)
		return scrm__error(c->db, SCRM_NOMEM, "out of memory evaluating a condition");
	*evalerr = rc;
	*holds = 0;
	return SCRM_OK;
}

/* ------------------------------------------------------------ replay */

int ru__replay(scrm_db *db, const char *src, const char *inputs, const ru_replay_row *row,
	       scrm_buf *out)
{
	ru_expr *x = NULL;
	cJSON *in = NULL;
	ru_ev_row rows[2];
	memset(rows, 0, sizeof rows);
	scrm_expr_env *env = NULL;
	char *trace = NULL;
	int rc = ru__expr_compile(db, src, "?", "condition", false, RU_TRIG_EVENT, &x);
	if (rc == SCRM_NOMEM)
		return rc;
	if (rc) {
		/* Stored by an older library, say: report, do not fail the query. */
		scrm__clear_error(db);
		scrm__buf_puts(out, "null");
		return SCRM_OK;
	}
	if (!(in = cJSON_Parse(inputs))) {
		rc = scrm__error(db, SCRM_NOMEM, "out of memory");
		goto out;
	}
	const ru_ev *evs[2] = {NULL, NULL};
	bool found = false;
	if (row->event && (rc = ru__event_read(db, row->event, &rows[0], &found)))
		goto out;
	if (found)
		evs[0] = &rows[0].ev;
	const cJSON *due = cJSON_GetObjectItemCaseSensitive(in, "due");
	if ((rc = bind_common(db, x, evs, row->kind, row->instance,
			      cJSON_IsNumber(due) ? (int64_t)due->valuedouble : 0)))
		goto out;
	const cJSON *prof = cJSON_GetObjectItemCaseSensitive(in, "profile");
	if (cJSON_IsObject(prof)) {
		char *p = cJSON_PrintUnformatted(prof);
		if (!p) {
			rc = scrm__error(db, SCRM_NOMEM, "out of memory");
			goto out;
		}
		rc = scrm_expr_vars_set_json(x->v, "profile", p);
		cJSON_free(p);
		if (rc) {
			rc = scrm__error(db, rc, "replaying: %s", scrm_expr_errmsg(x->v));
			goto out;
		}
	}
	replay r = {cJSON_GetObjectItemCaseSensitive(in, "calls"), NULL};
	r.next = r.calls ? r.calls->child : NULL;
	if (scrm_expr_env_new(&env)) {
		rc = scrm__error(db, SCRM_NOMEM, "out of memory");
		goto out;
	}
	scrm_expr_env_set_now(env, row->now);
	scrm_expr_env_set_functions(env, replay_tag, replay_events, &r);
	scrm_expr_vars_set_env(x->v, env);
	rc = scrm_expr_eval_trace(x->e, x->v, &trace);
	if (!trace) {
		rc = scrm__error(db, SCRM_NOMEM, "out of memory tracing");
		goto out;
	}
	rc = SCRM_OK;
	scrm__buf_puts(out, trace);
out:
	scrm_free(trace);
	ru__expr_free(x);
	scrm_expr_env_free(env);
	ru__event_row_free(&rows[0]);
	ru__event_row_free(&rows[1]);
	cJSON_Delete(in);
	return rc;
}
