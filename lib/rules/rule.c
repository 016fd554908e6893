/*
 * Rule definitions: JSON parsing and validation (every refusal names the
 * rule and the field), expression compiling with the plan of how each path
 * an expression reads gets bound, and the canonical form that decides
 * whether a reload is a new version.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rules-int.h"

#define EXPR_MAX 65536
#define TYPE_MAX 32

/* ------------------------------------------------------------ expressions */

void ru__expr_free(ru_expr *x)
{
	if (!x)
		return;
	for (int i = 0; i < x->nslots; i++)
		scrm__free(x->slots[i].attr);
	scrm__free(x->slots);
	scrm_expr_vars_free(x->v);
	scrm_expr_free(x->e);
	scrm__free(x);
}

static const struct {
	const char *name;
	int src;
} event_fields[] = {
	{"id", RU_SRC_EV_ID},         {"type", RU_SRC_EV_TYPE},     {"channel", RU_SRC_EV_CHANNEL},
	{"key", RU_SRC_EV_KEY},       {"at", RU_SRC_EV_AT},         {"amount", RU_SRC_EV_AMOUNT},
	{"currency", RU_SRC_EV_CURRENCY}, {"refund_of", RU_SRC_EV_REFUND_OF},
};

/* Classify `path` (a slot of an event-reading prefix) into *s. */
static bool event_slot(const char *rest, ru_slot *s, ru_expr *x)
{
	if (!*rest) {
		s->src = RU_SRC_EV_OBJ;
		return true;
	}
	if (*rest != '.')
		return false;
	rest++;
	for (size_t i = 0; i < SCRM_ARRAY_LEN(event_fields); i++)
		if (strcmp(rest, event_fields[i].name) == 0) {
			s->src = event_fields[i].src;
			return true;
		}
	if (strncmp(rest, "props", 5) == 0 && (rest[5] == '\0' || rest[5] == '.')) {
		s->src = RU_SRC_EV_PROPS;
		x->props[s->which] = true;
		return true;
	}
	if (strncmp(rest, "items", 5) == 0 && (rest[5] == '\0' || rest[5] == '.')) {
		s->src = RU_SRC_EV_ITEMS;
		x->items[s->which] = true;
		return true;
	}
	return false;
}

int ru__expr_compile(scrm_db *db, const char *src, const char *rule_id, const char *what,
		     bool absence_match, ru_trig trig, ru_expr **out)
{
	*out = NULL;
	ru_expr *x = scrm__calloc(db, 1, sizeof *x);
	if (!x)
		return scrm__error(db, SCRM_NOMEM, "out of memory");
	int rc = scrm_expr_compile(src, NULL, &x->e);
	if (rc) {
		rc = scrm__error(db, rc == SCRM_MISUSE ? SCRM_INVALID : rc, "rule '%s': %s: %s", rule_id,
				 what, scrm_errmsg(NULL));
		goto fail;
	}
	if ((rc = scrm_expr_vars_new(x->e, &x->v))) {
		rc = scrm__error(db, rc, "rule '%s': %s: %s", rule_id, what, scrm_errmsg(NULL));
		goto fail;
	}
	int nslots = scrm_expr_var_count(x->e);
	if (nslots > 0 && !(x->slots = scrm__calloc(db, (size_t)nslots, sizeof *x->slots))) {
		rc = scrm__error(db, SCRM_NOMEM, "out of memory");
		goto fail;
	}
	x->nslots = nslots;
	for (int i = 0; i < x->nslots; i++) {
		const char *p = scrm_expr_var_name(x->e, i);
		ru_slot *s = &x->slots[i];
		bool ok = false;
		if (strncmp(p, "event", 5) == 0 && (p[5] == '\0' || p[5] == '.')) {
			if (trig == RU_TRIG_DATE) {
				rc = scrm__error(db, SCRM_INVALID,
						 "rule '%s': %s reads '%s' but a date trigger has no event",
						 rule_id, what, p);
				goto fail;
			}
			s->which = RU_EVT_MAIN;
			ok = event_slot(p + 5, s, x);
		} else if (absence_match && strncmp(p, "start", 5) == 0 &&
			   (p[5] == '\0' || p[5] == '.')) {
			s->which = RU_EVT_START;
			ok = event_slot(p + 5, s, x);
		} else if (strncmp(p, "profile.attributes.", 19) == 0 && p[19]) {
			const char *name = p + 19, *dot = strchr(name, '.');
			s->src = RU_SRC_PROFILE_ATTR;
			s->attr = dot ? scrm__strndup(db, name, (size_t)(dot - name)) : scrm__strdup(db, name);
			if (!s->attr) {
				rc = scrm__error(db, SCRM_NOMEM, "out of memory");
				goto fail;
			}
			if (!ru__is_name(s->attr, RU_ID_MAX, false)) {
				rc = scrm__error(db, SCRM_INVALID,
						 "rule '%s': %s reads '%s', but attribute names are 1-%d "
						 "characters of [a-z0-9_]",
						 rule_id, what, p, RU_ID_MAX);
				goto fail;
			}
			ok = true;
		} else if (strncmp(p, "profile", 7) == 0 && (p[7] == '\0' || p[7] == '.')) {
			s->src = RU_SRC_PROFILE;
			x->profile = true;
			ok = true;
		} else if (strcmp(p, "trigger.kind") == 0 || strcmp(p, "trigger.instance") == 0 ||
			   strcmp(p, "trigger.due") == 0) {
			s->src = RU_SRC_TRIGGER;
			ok = true;
		}
		if (!ok) {
			rc = scrm__error(db, SCRM_INVALID,
					 "rule '%s': %s reads '%s', which no rule can bind (fields are "
					 "event.{id,type,channel,key,at,amount,currency,refund_of,props.…,"
					 "items}, profile.…, trigger.{kind,instance,due}%s)",
					 rule_id, what, p, absence_match ? ", start.…" : "");
			goto fail;
		}
	}
	*out = x;
	return SCRM_OK;
fail:
	ru__expr_free(x);
	return rc;
}

/* ------------------------------------------------------------ rules */

void ru__rule_free(ru_rule *r)
{
	if (!r)
		return;
	scrm__free(r->id);
	scrm__free(r->name);
	scrm__free(r->definition);
	scrm__free(r->type);
	scrm__free(r->missing);
	scrm__free(r->attr);
	ru__expr_free(r->cond);
	ru__expr_free(r->match);
	for (size_t i = 0; i < r->nactions; i++) {
		scrm__free(r->actions[i].name);
		scrm__free(r->actions[i].tag);
		scrm__free(r->actions[i].params);
		scrm__free(r->actions[i].consent);
	}
	scrm__free(r->actions);
	scrm__free(r->group);
	scrm__free(r->consent);
	memset(r, 0, sizeof *r);
}

typedef struct pctx {
	scrm_db *db;
	const char *id;
	cJSON *canon; /* canonical definition being built */
} pctx;

static int nomem(scrm_db *db)
{
	return scrm__error(db, SCRM_NOMEM, "out of memory");
}

static int dup_str(pctx *p, const char *s, char **out)
{
	*out = scrm__strdup(p->db, s);
	return *out ? SCRM_OK : nomem(p->db);
}

/* A required or optional string member; *out NULL when absent. */
static int get_str(pctx *p, const cJSON *obj, const char *name, const char *where, bool required,
		   const cJSON **out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	*out = NULL;
	if (!it) {
		if (required)
			return scrm__error(p->db, SCRM_INVALID, "rule '%s': %s\"%s\" is required", p->id,
					   where, name);
		return SCRM_OK;
	}
	if (!cJSON_IsString(it))
		return scrm__error(p->db, SCRM_INVALID, "rule '%s': %s\"%s\" must be a string", p->id,
				   where, name);
	*out = it;
	return SCRM_OK;
}

static int event_type(pctx *p, const cJSON *it, const char *what, char **out)
{
	if (!ru__is_name(it->valuestring, TYPE_MAX, false))
		return scrm__error(p->db, SCRM_INVALID,
				   "rule '%s': %s '%.*s' must be an event type of 1-%d characters of "
				   "[a-z0-9_]",
				   p->id, what, scrm__utf8_clip(it->valuestring, 40), it->valuestring,
				   TYPE_MAX);
	return dup_str(p, it->valuestring, out);
}

static bool add_copy(cJSON *to, const char *name, const cJSON *it)
{
	cJSON *d = cJSON_Duplicate(it, 1);
	if (!d || !cJSON_AddItemToObject(to, name, d)) {
		cJSON_Delete(d);
		return false;
	}
	return true;
}

static int parse_trigger(pctx *p, const cJSON *t, ru_rule *r)
{
	static const char *const ev_fields[] = {"type", "event", "max_age", NULL};
	static const char *const ab_fields[] = {"type", "start", "missing", "within", "match", NULL};
	static const char *const dt_fields[] = {"type", "attribute", "days_before", "at", "yearly", NULL};
	scrm_db *db = p->db;
	char what[128];
	if (!t)
		return scrm__error(db, SCRM_INVALID, "rule '%s': \"trigger\" is required", p->id);
	if (!cJSON_IsObject(t))
		return scrm__error(db, SCRM_INVALID, "rule '%s': \"trigger\" must be an object", p->id);
	const cJSON *type, *it;
	int rc = get_str(p, t, "type", "trigger.", true, &type);
	if (rc)
		return rc;
	snprintf(what, sizeof what, "rule '%s': trigger", p->id);
	cJSON *ct = cJSON_AddObjectToObject(p->canon, "trigger");
	if (!ct || !cJSON_AddStringToObject(ct, "type", type->valuestring))
		return nomem(db);
	if (strcmp(type->valuestring, "event") == 0) {
		r->trig = RU_TRIG_EVENT;
		if ((rc = scrm__json_only(db, t, what, ev_fields)) ||
		    (rc = get_str(p, t, "event", "trigger.", true, &it)) ||
		    (rc = event_type(p, it, "trigger.event", &r->type)))
			return rc;
		if (!cJSON_AddStringToObject(ct, "event", r->type))
			return nomem(db);
		if ((it = cJSON_GetObjectItemCaseSensitive(t, "max_age"))) {
			snprintf(what, sizeof what, "rule '%s': trigger.max_age", p->id);
			if ((rc = ru__duration(db, it, what, 1000, RU_DURATION_MAX, &r->max_age_ms)))
				return rc;
			if (!add_copy(ct, "max_age", it))
				return nomem(db);
		}
	} else if (strcmp(type->valuestring, "absence") == 0) {
		r->trig = RU_TRIG_ABSENCE;
		if ((rc = scrm__json_only(db, t, what, ab_fields)) ||
		    (rc = get_str(p, t, "start", "trigger.", true, &it)) ||
		    (rc = event_type(p, it, "trigger.start", &r->type)) ||
		    (rc = get_str(p, t, "missing", "trigger.", true, &it)) ||
		    (rc = event_type(p, it, "trigger.missing", &r->missing)))
			return rc;
		if (!cJSON_AddStringToObject(ct, "start", r->type) ||
		    !cJSON_AddStringToObject(ct, "missing", r->missing))
			return nomem(db);
		it = cJSON_GetObjectItemCaseSensitive(t, "within");
		if (!it)
			return scrm__error(db, SCRM_INVALID, "rule '%s': trigger.\"within\" is required",
					   p->id);
		snprintf(what, sizeof what, "rule '%s': trigger.within", p->id);
		if ((rc = ru__duration(db, it, what, 1000, RU_DURATION_MAX, &r->within_ms)))
			return rc;
		if (!add_copy(ct, "within", it))
			return nomem(db);
		if ((rc = get_str(p, t, "match", "trigger.", false, &it)))
			return rc;
		if (it) {
			if (strlen(it->valuestring) > EXPR_MAX)
				return scrm__error(db, SCRM_LIMIT, "rule '%s': trigger.match: more than %d bytes",
						   p->id, EXPR_MAX);
			if ((rc = ru__expr_compile(db, it->valuestring, p->id, "trigger.match", true,
						   RU_TRIG_ABSENCE, &r->match)))
				return rc;
			if (!cJSON_AddStringToObject(ct, "match", it->valuestring))
				return nomem(db);
		}
	} else if (strcmp(type->valuestring, "date") == 0) {
		r->trig = RU_TRIG_DATE;
		if ((rc = scrm__json_only(db, t, what, dt_fields)) ||
		    (rc = get_str(p, t, "attribute", "trigger.", true, &it)))
			return rc;
		if (!ru__is_name(it->valuestring, RU_ID_MAX, false))
			return scrm__error(db, SCRM_INVALID,
					   "rule '%s': trigger.attribute '%.*s' must be an attribute name "
					   "(1-%d of [a-z0-9_])",
					   p->id, scrm__utf8_clip(it->valuestring, 40), it->valuestring,
					   RU_ID_MAX);
		if ((rc = dup_str(p, it->valuestring, &r->attr)))
			return rc;
		r->at_min = 10 * 60;
		r->yearly = true;
		if ((it = cJSON_GetObjectItemCaseSensitive(t, "days_before"))) {
			snprintf(what, sizeof what, "rule '%s': trigger.days_before", p->id);
			if ((rc = scrm__json_int(db, it, what, 0, 366, &r->days_before)))
				return rc;
		}
		if ((it = cJSON_GetObjectItemCaseSensitive(t, "at"))) {
			snprintf(what, sizeof what, "rule '%s': trigger.at", p->id);
			if ((rc = ru__hhmm(db, it, what, &r->at_min)))
				return rc;
		}
		if ((it = cJSON_GetObjectItemCaseSensitive(t, "yearly"))) {
			if (!cJSON_IsBool(it))
				return scrm__error(db, SCRM_INVALID,
						   "rule '%s': trigger.yearly must be true or false", p->id);
			r->yearly = cJSON_IsTrue(it);
		}
		char at[16];
		snprintf(at, sizeof at, "%02d:%02d", (r->at_min / 60) % 24, r->at_min % 60);
		if (!cJSON_AddStringToObject(ct, "attribute", r->attr) ||
		    !cJSON_AddNumberToObject(ct, "days_before", (double)r->days_before) ||
		    !cJSON_AddStringToObject(ct, "at", at) || !cJSON_AddBoolToObject(ct, "yearly", r->yearly))
			return nomem(db);
	} else {
		return scrm__error(db, SCRM_INVALID,
				   "rule '%s': trigger.type '%.*s' is unknown (event, absence or date)", p->id,
				   scrm__utf8_clip(type->valuestring, 40), type->valuestring);
	}
	return SCRM_OK;
}

static int parse_consent(pctx *p, const cJSON *obj, const char *where, char **out)
{
	const cJSON *it;
	int rc = get_str(p, obj, "consent", where, false, &it);
	if (rc || !it)
		return rc;
	if (!ru__is_name(it->valuestring, RU_ID_MAX, false))
		return scrm__error(p->db, SCRM_INVALID,
				   "rule '%s': %sconsent '%.*s' must be a consent purpose (1-%d of [a-z0-9_])",
				   p->id, where, scrm__utf8_clip(it->valuestring, 40), it->valuestring,
				   RU_ID_MAX);
	return dup_str(p, it->valuestring, out);
}

static int json_text(pctx *p, const cJSON *it, const char *what, char **out)
{
	char *s = cJSON_PrintUnformatted(it);
	if (!s)
		return nomem(p->db);
	int rc = SCRM_OK;
	if (strlen(s) > RU_PARAMS_MAX)
		rc = scrm__error(p->db, SCRM_LIMIT, "rule '%s': %s: more than %d bytes of JSON", p->id,
				 what, RU_PARAMS_MAX);
	else if (!(*out = scrm__strdup(p->db, s)))
		rc = nomem(p->db);
	cJSON_free(s);
	return rc;
}

static int parse_action(pctx *p, const cJSON *a, size_t i, ru_action *out, cJSON *ca)
{
	static const char *const tag_fields[] = {"type", "tag", NULL};
	static const char *const set_fields[] = {"type", "attributes", NULL};
	static const char *const host_fields[] = {"type", "params", "consent", NULL};
	scrm_db *db = p->db;
	char where[48], what[128];
	snprintf(where, sizeof where, "actions[%zu].", i);
	snprintf(what, sizeof what, "rule '%s': actions[%zu]", p->id, i);
	if (!cJSON_IsObject(a))
		return scrm__error(db, SCRM_INVALID, "%s must be an object", what);
	const cJSON *type, *it;
	int rc = get_str(p, a, "type", where, true, &type);
	if (rc)
		return rc;
	const char *t = type->valuestring;
	if (!cJSON_AddStringToObject(ca, "type", t))
		return nomem(db);
	if ((rc = dup_str(p, t, &out->name)))
		return rc;
	if (strcmp(t, "tag.add") == 0 || strcmp(t, "tag.remove") == 0) {
		out->kind = t[4] == 'a' ? RU_ACT_TAG_ADD : RU_ACT_TAG_REMOVE;
		if ((rc = scrm__json_only(db, a, what, tag_fields)) ||
		    (rc = get_str(p, a, "tag", where, true, &it)))
			return rc;
		bool exists = false;
		if ((rc = ru__tag_exists(db, it->valuestring, &exists)))
			return rc;
		if (!exists)
			return scrm__error(db, SCRM_NOTFOUND,
					   "%s: tag '%.*s' is not defined (define it with scrm_tags_define)",
					   what, scrm__utf8_clip(it->valuestring, 64), it->valuestring);
		if ((rc = dup_str(p, it->valuestring, &out->tag)) ||
		    !cJSON_AddStringToObject(ca, "tag", it->valuestring))
			return rc ? rc : nomem(db);
	} else if (strcmp(t, "profile.set") == 0) {
		out->kind = RU_ACT_PROFILE_SET;
		if ((rc = scrm__json_only(db, a, what, set_fields)))
			return rc;
		it = cJSON_GetObjectItemCaseSensitive(a, "attributes");
		if (!cJSON_IsObject(it) || !it->child)
			return scrm__error(db, SCRM_INVALID,
					   "%s: \"attributes\" must be a non-empty object of name: value", what);
		for (const cJSON *m = it->child; m; m = m->next)
			if (!ru__is_name(m->string, RU_ID_MAX, true) || strchr(m->string, '-'))
				return scrm__error(db, SCRM_INVALID,
						   "%s: attribute name '%.*s' must be 1-%d of [a-z0-9_.]", what,
						   scrm__utf8_clip(m->string, 40), m->string, RU_ID_MAX);
		if ((rc = json_text(p, it, what, &out->params)) || !add_copy(ca, "attributes", it))
			return rc ? rc : nomem(db);
	} else if (strchr(t, '.')) {
		return scrm__error(db, SCRM_INVALID,
				   "%s: unknown action '%.*s' (built-in actions are tag.add, tag.remove and "
				   "profile.set; host action names have no dot)",
				   what, scrm__utf8_clip(t, 64), t);
	} else {
		out->kind = RU_ACT_HOST;
		if (!ru__is_name(t, RU_ID_MAX, false))
			return scrm__error(db, SCRM_INVALID,
					   "%s: action name '%.*s' must be 1-%d characters of [a-z0-9_]", what,
					   scrm__utf8_clip(t, 64), t, RU_ID_MAX);
		if ((rc = scrm__json_only(db, a, what, host_fields)))
			return rc;
		it = cJSON_GetObjectItemCaseSensitive(a, "params");
		if (it && !cJSON_IsObject(it))
			return scrm__error(db, SCRM_INVALID, "%s: \"params\" must be an object", what);
		if (it) {
			if ((rc = json_text(p, it, what, &out->params)) || !add_copy(ca, "params", it))
				return rc ? rc : nomem(db);
		} else if (!(out->params = scrm__strdup(db, "{}")) ||
			   !cJSON_AddObjectToObject(ca, "params")) {
			return nomem(db);
		}
		if ((rc = parse_consent(p, a, where, &out->consent)))
			return rc;
		if (out->consent && !cJSON_AddStringToObject(ca, "consent", out->consent))
			return nomem(db);
	}
	return SCRM_OK;
}

static int parse_limits(pctx *p, const cJSON *l, const ru_config *cfg, ru_rule *r)
{
	static const char *const fields[] = {"group", "on_cap", "cooldown", "once",
					     "quiet_hours", "consent", NULL};
	scrm_db *db = p->db;
	char what[128];
	if (!l)
		return SCRM_OK;
	snprintf(what, sizeof what, "rule '%s': limits", p->id);
	if (!cJSON_IsObject(l))
		return scrm__error(db, SCRM_INVALID, "%s must be an object", what);
	int rc = scrm__json_only(db, l, what, fields);
	if (rc)
		return rc;
	cJSON *cl = cJSON_AddObjectToObject(p->canon, "limits");
	if (!cl)
		return nomem(db);
	const cJSON *it;
	if ((rc = get_str(p, l, "group", "limits.", false, &it)))
		return rc;
	if (it) {
		if (!ru__group(cfg, it->valuestring))
			return scrm__error(db, SCRM_NOTFOUND,
					   "%s.group '%.*s' is not defined (scrm_rules_config_set "
					   "{\"groups\":{…}})",
					   what, scrm__utf8_clip(it->valuestring, 64), it->valuestring);
		if ((rc = dup_str(p, it->valuestring, &r->group)) ||
		    !cJSON_AddStringToObject(cl, "group", r->group))
			return rc ? rc : nomem(db);
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(l, "on_cap"))) {
		if (cJSON_IsString(it) && strcmp(it->valuestring, "drop") == 0)
			r->on_cap = RU_ON_CAP_DROP;
		else if (cJSON_IsString(it) && strcmp(it->valuestring, "defer") == 0)
			r->on_cap = RU_ON_CAP_DEFER;
		else
			return scrm__error(db, SCRM_INVALID, "%s.on_cap must be \"drop\" or \"defer\"", what);
		if (!r->group)
			return scrm__error(db, SCRM_INVALID, "%s.on_cap needs a group", what);
		if (!add_copy(cl, "on_cap", it))
			return nomem(db);
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(l, "cooldown"))) {
		char w[160];
		snprintf(w, sizeof w, "%s.cooldown", what);
		if ((rc = ru__duration(db, it, w, 1000, RU_DURATION_MAX, &r->cooldown_ms)))
			return rc;
		if (!add_copy(cl, "cooldown", it))
			return nomem(db);
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(l, "once"))) {
		if (!cJSON_IsBool(it))
			return scrm__error(db, SCRM_INVALID, "%s.once must be true or false", what);
		r->once = cJSON_IsTrue(it);
		if (r->once && !cJSON_AddTrueToObject(cl, "once"))
			return nomem(db);
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(l, "quiet_hours"))) {
		char w[160];
		snprintf(w, sizeof w, "%s.quiet_hours", what);
		if (cJSON_IsTrue(it)) {
			r->quiet = 1;
		} else if (cJSON_IsObject(it)) {
			if ((rc = ru__quiet_parse(db, it, w, &r->own_quiet)))
				return rc;
			r->quiet = 2;
		} else if (!cJSON_IsFalse(it)) {
			return scrm__error(db, SCRM_INVALID,
					   "%s must be true, false or {\"start\":\"HH:MM\",\"end\":\"HH:MM\"}", w);
		}
		if (r->quiet && !add_copy(cl, "quiet_hours", it))
			return nomem(db);
	}
	if ((rc = parse_consent(p, l, "limits.", &r->consent)))
		return rc;
	if (r->consent && !cJSON_AddStringToObject(cl, "consent", r->consent))
		return nomem(db);
	return SCRM_OK;
}

int ru__rule_parse(scrm_db *db, const cJSON *j, const ru_config *cfg, ru_rule *r)
{
	static const char *const fields[] = {"id",        "name",    "priority", "enabled",
					     "trigger",   "condition", "actions", "limits", NULL};
	memset(r, 0, sizeof *r);
	pctx p = {db, "?", NULL};
	int rc;
	if (!cJSON_IsObject(j))
		return scrm__error(db, SCRM_INVALID, "a rule must be a JSON object");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
	if (!id)
		return scrm__error(db, SCRM_INVALID, "rule: \"id\" is required");
	if (!cJSON_IsString(id) || !ru__is_name(id->valuestring, RU_ID_MAX, true))
		return scrm__error(db, SCRM_INVALID, "rule: \"id\" must be 1-%d characters of [a-z0-9_.-]",
				   RU_ID_MAX);
	p.id = id->valuestring;
	if (!(p.canon = cJSON_CreateObject()))
		return nomem(db);
	char what[96];
	snprintf(what, sizeof what, "rule '%s'", p.id);
	if ((rc = scrm__json_only(db, j, what, fields)) || (rc = dup_str(&p, p.id, &r->id)))
		goto out;
	if (!cJSON_AddStringToObject(p.canon, "id", r->id))
		goto oom;
	const cJSON *it;
	if ((rc = get_str(&p, j, "name", "", false, &it)))
		goto out;
	if (it) {
		if (!ru__is_text(it->valuestring, RU_TEXT_MAX)) {
			rc = scrm__error(db, SCRM_INVALID,
					 "rule '%s': \"name\" must be 1-%d bytes of text without control "
					 "characters",
					 p.id, RU_TEXT_MAX);
			goto out;
		}
		if ((rc = dup_str(&p, it->valuestring, &r->name)))
			goto out;
		if (!cJSON_AddStringToObject(p.canon, "name", r->name))
			goto oom;
	}
	r->priority = 100;
	if ((it = cJSON_GetObjectItemCaseSensitive(j, "priority"))) {
		snprintf(what, sizeof what, "rule '%s': priority", p.id);
		if ((rc = scrm__json_int(db, it, what, -RU_PRIORITY_MAX, RU_PRIORITY_MAX, &r->priority)))
			goto out;
	}
	if (!cJSON_AddNumberToObject(p.canon, "priority", (double)r->priority))
		goto oom;
	r->enabled = true;
	if ((it = cJSON_GetObjectItemCaseSensitive(j, "enabled"))) {
		if (!cJSON_IsBool(it)) {
			rc = scrm__error(db, SCRM_INVALID, "rule '%s': \"enabled\" must be true or false", p.id);
			goto out;
		}
		r->enabled = cJSON_IsTrue(it);
	}
	if ((rc = parse_trigger(&p, cJSON_GetObjectItemCaseSensitive(j, "trigger"), r)))
		goto out;
	if ((rc = get_str(&p, j, "condition", "", false, &it)))
		goto out;
	if (it) {
		if (strlen(it->valuestring) > EXPR_MAX) {
			rc = scrm__error(db, SCRM_LIMIT, "rule '%s': condition: more than %d bytes", p.id,
					 EXPR_MAX);
			goto out;
		}
		if ((rc = ru__expr_compile(db, it->valuestring, p.id, "condition", false, r->trig,
					   &r->cond)))
			goto out;
		if (!cJSON_AddStringToObject(p.canon, "condition", it->valuestring))
			goto oom;
	}
	const cJSON *acts = cJSON_GetObjectItemCaseSensitive(j, "actions");
	int n = cJSON_IsArray(acts) ? cJSON_GetArraySize(acts) : -1;
	if (n < 1 || n > RU_ACTIONS_MAX) {
		rc = scrm__error(db, SCRM_INVALID, "rule '%s': \"actions\" must be an array of 1-%d actions",
				 p.id, RU_ACTIONS_MAX);
		goto out;
	}
	if (!(r->actions = scrm__calloc(db, (size_t)n, sizeof *r->actions)))
		goto oom;
	cJSON *cacts = cJSON_AddArrayToObject(p.canon, "actions");
	if (!cacts)
		goto oom;
	const cJSON *a;
	cJSON_ArrayForEach(a, acts)
	{
		cJSON *ca = cJSON_CreateObject();
		if (!ca || !cJSON_AddItemToArray(cacts, ca)) {
			cJSON_Delete(ca);
			goto oom;
		}
		rc = parse_action(&p, a, r->nactions, &r->actions[r->nactions], ca);
		r->nactions++;
		if (rc)
			goto out;
	}
	if ((rc = parse_limits(&p, cJSON_GetObjectItemCaseSensitive(j, "limits"), cfg, r)))
		goto out;
	if (r->quiet == 1 && !cfg->quiet.on) {
		rc = scrm__error(db, SCRM_INVALID,
				 "rule '%s': limits.quiet_hours is true but no quiet hours are "
				 "configured (scrm_rules_config_set {\"quiet_hours\":{…}})",
				 p.id);
		goto out;
	}
	char *text = cJSON_PrintUnformatted(p.canon);
	if (!text)
		goto oom;
	r->definition = scrm__strdup(db, text);
	cJSON_free(text);
	if (!r->definition)
		goto oom;
	rc = SCRM_OK;
	goto out;
oom:
	rc = nomem(db);
out:
	cJSON_Delete(p.canon);
	if (rc)
		ru__rule_free(r);
	return rc;
}
