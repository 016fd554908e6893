/*
 * Rule engine configuration (default time zone, quiet hours, cap groups,
 * outbox retry policy, trace policy) kept in scrm_meta 'rules.config', and
 * the small parsers rules share with it: durations, "HH:MM", time zones.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rules-int.h"
#include "expr-int.h" /* scrm__tz_parse: one zone table for the whole rule engine */

#define DEFAULT_TZ "Asia/Shanghai"

/* ------------------------------------------------------------ parsers */

bool ru__is_name(const char *s, size_t max, bool punct)
{
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= max || !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
				  (punct && (c == '.' || c == '-'))))
			return false;
	}
	return n > 0;
}

bool ru__is_text(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n == 0 || n > max || !scrm__utf8_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20)
			return false;
	return true;
}

bool ru__tz(const char *name, size_t n, scrm_tz *z)
{
	return scrm__tz_parse(name, n, z);
}

static int64_t unit_ms(const char *u, size_t n)
{
	static const struct {
		const char *name;
		int64_t ms;
	} units[] = {{"ms", 1},         {"s", 1000},           {"m", RU_MIN_MS},
		     {"h", 60 * RU_MIN_MS}, {"d", RU_DAY_MS}, {"w", 7 * RU_DAY_MS}};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(units); i++)
		if (strlen(units[i].name) == n && memcmp(units[i].name, u, n) == 0)
			return units[i].ms;
	return 0;
}

int ru__duration(scrm_db *db, const cJSON *item, const char *what, int64_t min, int64_t max,
		 int64_t *ms)
{
	if (!cJSON_IsString(item))
		return scrm__error(db, SCRM_INVALID,
				   "%s must be a duration string such as \"30m\", \"72h\" or \"7d\"", what);
	const char *s = item->valuestring;
	int64_t total = 0;
	bool any = false;
	while (*s) {
		if (*s < '0' || *s > '9')
			goto bad;
		int64_t v = 0;
		while (*s >= '0' && *s <= '9') {
			if (v > RU_DURATION_MAX)
				goto range;
			v = v * 10 + (*s++ - '0');
		}
		const char *u = s;
		while ((*s >= 'a' && *s <= 'z'))
			s++;
		int64_t m = unit_ms(u, (size_t)(s - u));
		if (!m)
			goto bad;
		if (v > RU_DURATION_MAX / m)
			goto range;
		total += v * m;
		if (total > RU_DURATION_MAX)
			goto range;
		any = true;
	}
	if (!any)
		goto bad;
	if (total < min || total > max)
		goto range;
	*ms = total;
	return SCRM_OK;
bad:
	return scrm__error(db, SCRM_INVALID,
			   "%s: bad duration \"%.*s\" (a number and a unit ms, s, m, h, d or w, "
			   "e.g. \"30m\", \"72h\", \"7d\")",
			   what, scrm__utf8_clip(item->valuestring, 40), item->valuestring);
range:
	return scrm__error(db, SCRM_RANGE, "%s: duration \"%.*s\" is outside %lld ms .. %lld days",
			   what, scrm__utf8_clip(item->valuestring, 40), item->valuestring,
			   (long long)min, (long long)(max / RU_DAY_MS));
}

int ru__hhmm(scrm_db *db, const cJSON *item, const char *what, int *min)
{
	const char *s = cJSON_IsString(item) ? item->valuestring : NULL;
	if (s && strlen(s) == 5 && s[2] == ':' && s[0] >= '0' && s[0] <= '2' && s[1] >= '0' &&
	    s[1] <= '9' && s[3] >= '0' && s[3] <= '5' && s[4] >= '0' && s[4] <= '9') {
		int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
		if (h < 24) {
			*min = h * 60 + m;
			return SCRM_OK;
		}
	}
	return scrm__error(db, SCRM_INVALID, "%s must be a local time \"HH:MM\" (00:00-23:59)", what);
}

int ru__quiet_parse(scrm_db *db, const cJSON *item, const char *what, ru_quiet *q)
{
	static const char *const fields[] = {"start", "end", NULL};
	char label[96];
	if (!cJSON_IsObject(item))
		return scrm__error(db, SCRM_INVALID, "%s must be an object {\"start\":\"HH:MM\",\"end\":\"HH:MM\"}",
				   what);
	int rc = scrm__json_only(db, item, what, fields);
	if (rc)
		return rc;
	snprintf(label, sizeof label, "%s.start", what);
	if ((rc = ru__hhmm(db, cJSON_GetObjectItemCaseSensitive(item, "start"), label, &q->start_min)))
		return rc;
	snprintf(label, sizeof label, "%s.end", what);
	if ((rc = ru__hhmm(db, cJSON_GetObjectItemCaseSensitive(item, "end"), label, &q->end_min)))
		return rc;
	if (q->start_min == q->end_min)
		return scrm__error(db, SCRM_INVALID, "%s: start and end are the same time", what);
	q->on = true;
	return SCRM_OK;
}

/* ------------------------------------------------------------ config */

void ru__config_clear(ru_config *c)
{
	for (size_t i = 0; i < c->ngroups; i++)
		scrm__free(c->groups[i].name);
	scrm__free(c->groups);
	memset(c, 0, sizeof *c);
}

static void config_defaults(ru_config *c)
{
	memset(c, 0, sizeof *c);
	snprintf(c->default_tz, sizeof c->default_tz, "%s", DEFAULT_TZ);
	scrm__tz_fixed(&c->default_zone, 8 * 3600);
	c->quiet = (ru_quiet){true, 22 * 60, 8 * 60};
	c->lease_ms = 5 * RU_MIN_MS;
	c->backoff_ms = RU_MIN_MS;
	c->backoff_max_ms = 6 * 60 * RU_MIN_MS;
	c->max_attempts = 10;
	c->trace_condition_false = true;
}

const ru_group *ru__group(const ru_config *c, const char *name)
{
	for (size_t i = 0; i < c->ngroups; i++)
		if (strcmp(c->groups[i].name, name) == 0)
			return &c->groups[i];
	return NULL;
}

static int group_parse(scrm_db *db, const cJSON *j, const char *name, ru_group *g)
{
	static const char *const fields[] = {"max", "per", "on_cap", NULL};
	char what[128];
	snprintf(what, sizeof what, "rules config: groups.%s", name);
	if (!ru__is_name(name, RU_ID_MAX, true))
		return scrm__error(db, SCRM_INVALID,
				   "rules config: group name '%.*s' must be 1-%d characters of [a-z0-9_.-]",
				   scrm__utf8_clip(name, 40), name, RU_ID_MAX);
	if (!cJSON_IsObject(j))
		return scrm__error(db, SCRM_INVALID,
				   "%s must be an object {\"max\":3,\"per\":\"7d\",\"on_cap\":\"drop\"}", what);
	int rc = scrm__json_only(db, j, what, fields);
	if (rc)
		return rc;
	const cJSON *max = cJSON_GetObjectItemCaseSensitive(j, "max");
	const cJSON *per = cJSON_GetObjectItemCaseSensitive(j, "per");
	const cJSON *on = cJSON_GetObjectItemCaseSensitive(j, "on_cap");
	char label[256];
	snprintf(label, sizeof label, "%s.max", what);
	if (!max)
		return scrm__error(db, SCRM_INVALID, "%s: \"max\" is required", what);
	if ((rc = scrm__json_int(db, max, label, 1, RU_CAP_MAX, &g->max)))
		return rc;
	if (!per)
		return scrm__error(db, SCRM_INVALID, "%s: \"per\" is required", what);
	g->calendar = RU_CAL_NONE;
	if (cJSON_IsString(per) && strcmp(per->valuestring, "day") == 0)
		g->calendar = RU_CAL_DAY;
	else if (cJSON_IsString(per) && strcmp(per->valuestring, "week") == 0)
		g->calendar = RU_CAL_WEEK;
	else if (cJSON_IsString(per) && strcmp(per->valuestring, "month") == 0)
		g->calendar = RU_CAL_MONTH;
	snprintf(label, sizeof label, "%s.per (a rolling duration, or \"day\", \"week\", \"month\")",
		 what);
	if (g->calendar == RU_CAL_NONE &&
	    (rc = ru__duration(db, per, label, 1000, RU_DURATION_MAX, &g->per_ms)))
		return rc;
	g->on_cap = RU_ON_CAP_DROP;
	if (on) {
		if (cJSON_IsString(on) && strcmp(on->valuestring, "drop") == 0)
			g->on_cap = RU_ON_CAP_DROP;
		else if (cJSON_IsString(on) && strcmp(on->valuestring, "defer") == 0)
			g->on_cap = RU_ON_CAP_DEFER;
		else
			return scrm__error(db, SCRM_INVALID, "%s.on_cap must be \"drop\" or \"defer\"",
					   what);
	}
	g->name = scrm__strdup(db, name);
	return g->name ? SCRM_OK : scrm__error(db, SCRM_NOMEM, "out of memory");
}

/* Parse a whole (merged) configuration object into *c. */
static int config_parse(scrm_db *db, const cJSON *root, ru_config *c)
{
	static const char *const fields[] = {"default_tz", "quiet_hours", "groups",
					     "outbox",     "trace",       NULL};
	static const char *const ofields[] = {"lease", "max_attempts", "backoff", "backoff_max", NULL};
	static const char *const tfields[] = {"condition_false", NULL};
	config_defaults(c);
	if (!cJSON_IsObject(root))
		return scrm__error(db, SCRM_INVALID, "rules config must be a JSON object");
	int rc = scrm__json_only(db, root, "rules config", fields);
	if (rc)
		return rc;
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "default_tz");
	if (it) {
		scrm_tz z;
		if (!cJSON_IsString(it) || strlen(it->valuestring) >= sizeof c->default_tz ||
		    !ru__tz(it->valuestring, strlen(it->valuestring), &z))
			return scrm__error(db, SCRM_INVALID,
					   "rules config: default_tz must be a known time zone "
					   "(\"Asia/Shanghai\", \"Europe/London\", \"+08:00\")");
		snprintf(c->default_tz, sizeof c->default_tz, "%s", it->valuestring);
		c->default_zone = z;
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "quiet_hours"))) {
		if (cJSON_IsFalse(it) || cJSON_IsNull(it))
			c->quiet.on = false;
		else if ((rc = ru__quiet_parse(db, it, "rules config: quiet_hours", &c->quiet)))
			return rc;
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "groups"))) {
		if (!cJSON_IsObject(it))
			return scrm__error(db, SCRM_INVALID, "rules config: groups must be an object of "
							     "name: {\"max\",\"per\",\"on_cap\"}");
		int n = cJSON_GetArraySize(it);
		if (n > 1000)
			return scrm__error(db, SCRM_LIMIT, "rules config: more than 1000 groups");
		if (n && !(c->groups = scrm__calloc(db, (size_t)n, sizeof *c->groups)))
			return scrm__error(db, SCRM_NOMEM, "out of memory");
		const cJSON *g;
		cJSON_ArrayForEach(g, it)
		{
			if ((rc = group_parse(db, g, g->string, &c->groups[c->ngroups])))
				return rc;
			c->ngroups++;
		}
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "outbox"))) {
		if (!cJSON_IsObject(it))
			return scrm__error(db, SCRM_INVALID, "rules config: outbox must be an object");
		if ((rc = scrm__json_only(db, it, "rules config: outbox", ofields)))
			return rc;
		const cJSON *o;
		if ((o = cJSON_GetObjectItemCaseSensitive(it, "lease")) &&
		    (rc = ru__duration(db, o, "rules config: outbox.lease", 1000, 7 * RU_DAY_MS,
				       &c->lease_ms)))
			return rc;
		if ((o = cJSON_GetObjectItemCaseSensitive(it, "backoff")) &&
		    (rc = ru__duration(db, o, "rules config: outbox.backoff", 1, 30 * RU_DAY_MS,
				       &c->backoff_ms)))
			return rc;
		if ((o = cJSON_GetObjectItemCaseSensitive(it, "backoff_max")) &&
		    (rc = ru__duration(db, o, "rules config: outbox.backoff_max", 1, 365 * RU_DAY_MS,
				       &c->backoff_max_ms)))
			return rc;
		if ((o = cJSON_GetObjectItemCaseSensitive(it, "max_attempts")) &&
		    (rc = scrm__json_int(db, o, "rules config: outbox.max_attempts", 1, 1000,
					 &c->max_attempts)))
			return rc;
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "trace"))) {
		if (!cJSON_IsObject(it))
			return scrm__error(db, SCRM_INVALID, "rules config: trace must be an object");
		if ((rc = scrm__json_only(db, it, "rules config: trace", tfields)))
			return rc;
		const cJSON *o = cJSON_GetObjectItemCaseSensitive(it, "condition_false");
		if (o) {
			if (!cJSON_IsBool(o))
				return scrm__error(db, SCRM_INVALID,
						   "rules config: trace.condition_false must be true or false");
			c->trace_condition_false = cJSON_IsTrue(o);
		}
	}
	return SCRM_OK;
}

static const char sql_get[] = "SELECT value FROM scrm_meta WHERE key = 'rules.config'";

static int config_read(scrm_db *db, cJSON **out)
{
	*out = NULL;
	sqlite3_stmt *st = scrm__stmt(db, sql_get);
	if (!st)
		return scrm_errcode(db);
	int s = sqlite3_step(st), rc = SCRM_OK;
	if (s == SQLITE_ROW)
		rc = scrm__json_parse(db, (const char *)sqlite3_column_text(st, 0), "rules config", out);
	else if (s != SQLITE_DONE)
		rc = scrm__sqlerr(db, s, "reading the rules config");
	sqlite3_reset(st);
	if (!rc && !*out && !(*out = cJSON_CreateObject()))
		rc = scrm__error(db, SCRM_NOMEM, "out of memory");
	return rc;
}

int ru__config_load(scrm_db *db, ru_config *c)
{
	cJSON *root;
	int rc = config_read(db, &root);
	if (rc)
		return rc;
	rc = config_parse(db, root, c);
	cJSON_Delete(root);
	if (rc)
		ru__config_clear(c);
	return rc;
}

/* Fail if a rule still uses a group the new configuration drops. */
static int check_groups_used(scrm_db *db, const ru_config *c)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT id, json_extract(definition, '$.limits.group') FROM rule "
		    "WHERE removed = 0 AND json_extract(definition, '$.limits.group') IS NOT NULL");
	if (!st)
		return scrm_errcode(db);
	int s, rc = SCRM_OK;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *g = (const char *)sqlite3_column_text(st, 1);
		if (!ru__group(c, g)) {
			rc = scrm__error(db, SCRM_CONFLICT,
					 "rules config: group '%s' is used by rule '%s'; change the rule first",
					 g, (const char *)sqlite3_column_text(st, 0));
			break;
		}
	}
	if (!rc && s != SQLITE_DONE)
		rc = scrm__sqlerr(db, s, "reading rules");
	sqlite3_reset(st);
	return rc;
}

static int config_set(scrm_db *db, const char *json)
{
	cJSON *in = NULL, *cur = NULL;
	char *text = NULL;
	ru_config c = {0};
	int rc;
	if (strnlen(json, RU_DEF_MAX + 1) > RU_DEF_MAX)
		return scrm__error(db, SCRM_LIMIT, "rules config: more than %d bytes", RU_DEF_MAX);
	if ((rc = scrm__json_parse(db, json, "rules config", &in)))
		return rc;
	if (!cJSON_IsObject(in)) {
		rc = scrm__error(db, SCRM_INVALID, "rules config must be a JSON object");
		goto out;
	}
	if ((rc = config_read(db, &cur)))
		goto out;
	/* Merge: members given replace the stored ones; inside "groups" each
	 * group given replaces that group and null removes it. */
	for (cJSON *it = in->child; it; it = it->next) {
		if (strcmp(it->string, "groups") == 0 && cJSON_IsObject(it)) {
			cJSON *g = cJSON_GetObjectItemCaseSensitive(cur, "groups");
			if (!g && !(g = cJSON_AddObjectToObject(cur, "groups")))
				goto nomem;
			for (cJSON *m = it->child; m; m = m->next) {
				cJSON_DeleteItemFromObjectCaseSensitive(g, m->string);
				if (cJSON_IsNull(m))
					continue;
				cJSON *dup = cJSON_Duplicate(m, 1);
				if (!dup || !cJSON_AddItemToObject(g, m->string, dup)) {
					cJSON_Delete(dup);
					goto nomem;
				}
			}
			continue;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(cur, it->string);
		if (cJSON_IsNull(it))
			continue;
		cJSON *dup = cJSON_Duplicate(it, 1);
		if (!dup || !cJSON_AddItemToObject(cur, it->string, dup)) {
			cJSON_Delete(dup);
			goto nomem;
		}
	}
	if ((rc = config_parse(db, cur, &c)) || (rc = check_groups_used(db, &c)))
		goto out;
	char *p = cJSON_PrintUnformatted(cur);
	if (!p)
		goto nomem;
	text = scrm__strdup(db, p);
	cJSON_free(p);
	if (!text)
		goto nomem;
	sqlite3_stmt *st = scrm__stmt(db, "INSERT INTO scrm_meta(key, value) VALUES ('rules.config', ?1) "
					  "ON CONFLICT(key) DO UPDATE SET value = ?1");
	if (!st) {
		rc = scrm_errcode(db);
		goto out;
	}
	sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
	if ((rc = scrm__step_done(db, st, "storing the rules config")))
		goto out;
	rc = ru__bump_rev(db);
	goto out;
nomem:
	rc = scrm__error(db, SCRM_NOMEM, "out of memory");
out:
	ru__config_clear(&c);
	scrm__free(text);
	cJSON_Delete(in);
	cJSON_Delete(cur);
	return rc;
}

SCRM_API int scrm_rules_config_set(scrm_db *db, const char *json)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (!json)
		return scrm__error(db, SCRM_MISUSE, "scrm_rules_config_set: json is NULL");
	if ((rc = scrm__tx_begin(db)))
		return rc;
	rc = scrm__tx_end(db, config_set(db, json));
	ru__invalidate(db);
	return rc;
}

void ru__dur_str(int64_t ms, char *buf, size_t size)
{
	static const struct {
		const char *u;
		int64_t ms;
	} units[] = {{"d", RU_DAY_MS}, {"h", 60 * RU_MIN_MS}, {"m", RU_MIN_MS}, {"s", 1000}};
	for (size_t i = 0; i < SCRM_ARRAY_LEN(units); i++)
		if (ms % units[i].ms == 0) {
			snprintf(buf, size, "%lld%s", (long long)(ms / units[i].ms), units[i].u);
			return;
		}
	snprintf(buf, size, "%lldms", (long long)ms);
}

static void dur_str(scrm_buf *b, int64_t ms)
{
	char buf[32];
	ru__dur_str(ms, buf, sizeof buf);
	scrm__buf_printf(b, "\"%s\"", buf);
}

static void hhmm_str(scrm_buf *b, int min)
{
	scrm__buf_printf(b, "\"%02d:%02d\"", min / 60, min % 60);
}

SCRM_API int scrm_rules_config_json(scrm_db *db, char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_rules_config_json: out is NULL");
	*out = NULL;
	ru_config c;
	if ((rc = scrm__tx_begin_read(db)))
		return rc;
	rc = scrm__tx_end(db, ru__config_load(db, &c));
	if (rc)
		return rc;
	static const char *const cal[] = {"", "day", "week", "month"};
	scrm_buf b;
	scrm__buf_init(&b, db);
	scrm__buf_puts(&b, "{\"default_tz\":");
	scrm__buf_json_str(&b, c.default_tz);
	scrm__buf_puts(&b, ",\"quiet_hours\":");
	if (c.quiet.on) {
		scrm__buf_puts(&b, "{\"start\":");
		hhmm_str(&b, c.quiet.start_min);
		scrm__buf_puts(&b, ",\"end\":");
		hhmm_str(&b, c.quiet.end_min);
		scrm__buf_puts(&b, "}");
	} else {
		scrm__buf_puts(&b, "null");
	}
	scrm__buf_puts(&b, ",\"groups\":{");
	for (size_t i = 0; i < c.ngroups; i++) {
		const ru_group *g = &c.groups[i];
		scrm__buf_puts(&b, i ? "," : "");
		scrm__buf_json_str(&b, g->name);
		scrm__buf_printf(&b, ":{\"max\":%lld,\"per\":", (long long)g->max);
		if (g->calendar)
			scrm__buf_printf(&b, "\"%s\"", cal[g->calendar]);
		else
			dur_str(&b, g->per_ms);
		scrm__buf_printf(&b, ",\"on_cap\":\"%s\"}", g->on_cap == RU_ON_CAP_DEFER ? "defer" : "drop");
	}
	scrm__buf_puts(&b, "},\"outbox\":{\"lease\":");
	dur_str(&b, c.lease_ms);
	scrm__buf_printf(&b, ",\"max_attempts\":%lld,\"backoff\":", (long long)c.max_attempts);
	dur_str(&b, c.backoff_ms);
	scrm__buf_puts(&b, ",\"backoff_max\":");
	dur_str(&b, c.backoff_max_ms);
	scrm__buf_printf(&b, "},\"trace\":{\"condition_false\":%s}}",
			 c.trace_condition_false ? "true" : "false");
	ru__config_clear(&c);
	return scrm__buf_finish(&b, out);
}

const char *ru__code_name(int code)
{
	static const char *const names[] = {
		"SCRM_OK",      "SCRM_ERROR",  "SCRM_MISUSE",   "SCRM_INVALID", "SCRM_NOTFOUND",
		"SCRM_EXISTS",  "SCRM_CONFLICT", "SCRM_STATE",  "SCRM_BUSY",    "SCRM_NOMEM",
		"SCRM_IO",      "SCRM_CORRUPT", "SCRM_SCHEMA",  "SCRM_RANGE",   "SCRM_PARSE",
		"SCRM_READONLY", "SCRM_LIMIT",  "SCRM_EVAL",    "SCRM_DUPLICATE"};
	return code >= 0 && (size_t)code < SCRM_ARRAY_LEN(names) ? names[code] : "SCRM_ERROR";
}
