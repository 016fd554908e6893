/*
 * Tags: groups (exclusive or not), tag definitions, manual add/remove by an
 * actor and rule actions (tag.add/tag.remove), a customer's tags, and the
 * history of every change with its source (rule id + version, or actor).
 * Rule tags (kind 'rule', defined by an expression) are kept by ruletag.c.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rules-int.h"
#include "scrm/identity.h"

#define TAG_MAX 64       /* bytes of a tag or group name */
#define ACTOR_MAX 128

/* ------------------------------------------------------------ customers */

int ru__canonical(scrm_db *db, int64_t id, int64_t *root)
{
	if (id <= 0)
		return scrm__error(db, SCRM_INVALID, "customer %lld is not a customer id", (long long)id);
	return scrm_identity_canonical(db, id, root);
}

int ru__live_customer(scrm_db *db, int64_t id, int64_t *root)
{
	int64_t erased = 0;
	int rc = ru__canonical(db, id, root);
	if (!rc)
		rc = scrm_identity_erased(db, *root, &erased);
	if (!rc && erased)
		rc = scrm__error(db, SCRM_STATE, "customer %lld was erased", (long long)id);
	return rc;
}

/* ------------------------------------------------------------ internals */

typedef struct tag_info {
	int64_t id, grp;
	bool exclusive;
	bool rule; /* a rule tag (ruletag.c) */
} tag_info;

static int tag_lookup(scrm_db *db, const char *name, size_t n, tag_info *t, bool *found)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT t.id, t.grp, coalesce(g.exclusive, 0), t.kind = 'rule' FROM tag t "
		    "LEFT JOIN tag_group g ON g.id = t.grp WHERE t.name = ?1");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_text(st, 1, name, (int)n, SQLITE_STATIC);
	int s = sqlite3_step(st);
	*found = s == SQLITE_ROW;
	if (*found) {
		t->id = sqlite3_column_int64(st, 0);
		t->grp = sqlite3_column_int64(st, 1);
		t->exclusive = sqlite3_column_int(st, 2) != 0;
		t->rule = sqlite3_column_int(st, 3) != 0;
	}
	sqlite3_reset(st);
	return s == SQLITE_ROW || s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "reading a tag");
}

int ru__tag_exists(scrm_db *db, const char *tag, bool *exists)
{
	tag_info t;
	return tag_lookup(db, tag, strlen(tag), &t, exists);
}

int ru__tag_has(scrm_db *db, int64_t customer, const char *tag, size_t n, int *has)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT 1 FROM customer_tag WHERE customer = ?1 AND "
		    "tag = (SELECT id FROM tag WHERE name = ?2)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, customer);
	sqlite3_bind_text(st, 2, tag, (int)n, SQLITE_STATIC);
	int s = sqlite3_step(st);
	*has = s == SQLITE_ROW;
	sqlite3_reset(st);
	return s == SQLITE_ROW || s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "reading tags");
}

int ru__tag_held(scrm_db *db, int64_t customer, int64_t tag, bool *held)
{
	sqlite3_stmt *st = scrm__stmt(db, "SELECT 1 FROM customer_tag WHERE customer = ?1 AND tag = ?2");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, customer);
	sqlite3_bind_int64(st, 2, tag);
	int s = sqlite3_step(st);
	*held = s == SQLITE_ROW;
	sqlite3_reset(st);
	return s == SQLITE_ROW || s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "reading tags");
}

static int history(scrm_db *db, int64_t customer, int64_t tag, bool add, int64_t at,
		   const char *rule_id, int64_t version, const char *actor, const char *reason)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "INSERT INTO tag_history(customer, tag, op, at, rule, rule_version, actor, reason) "
		    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, customer);
	sqlite3_bind_int64(st, 2, tag);
	sqlite3_bind_text(st, 3, add ? "add" : "remove", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, at);
	if (rule_id) {
		sqlite3_bind_text(st, 5, rule_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, version);
	}
	if (actor)
		sqlite3_bind_text(st, 7, actor, -1, SQLITE_STATIC);
	if (reason)
		sqlite3_bind_text(st, 8, reason, -1, SQLITE_STATIC);
	return scrm__step_done(db, st, "recording a tag change");
}

/* A holding a bulk refresh added records its addition in its row only
 * (implicit, schema 8): that goes to tag_history before the row goes. */
static int untag(scrm_db *db, int64_t customer, int64_t tag, bool *removed)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "INSERT INTO tag_history(customer, tag, op, at, rule, rule_version, actor) "
		    "SELECT origin, tag, 'add', at, rule, rule_version, actor FROM customer_tag "
		    "WHERE tag = ?2 AND customer = ?1 AND implicit IS NOT NULL");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, customer);
	sqlite3_bind_int64(st, 2, tag);
	int rc = scrm__step_done(db, st, "recording a tag's addition");
	if (rc)
		return rc;
	if (!(st = scrm__stmt(db, "DELETE FROM customer_tag WHERE tag = ?2 AND customer = ?1")))
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, customer);
	sqlite3_bind_int64(st, 2, tag);
	rc = scrm__step_done(db, st, "removing a tag");
	*removed = !rc && sqlite3_changes(scrm__sqlite(db)) > 0;
	return rc;
}

/* Other tags of an exclusive group held by the customer go first. */
static int clear_group(scrm_db *db, int64_t customer, const tag_info *t, int64_t at,
		       const char *rule_id, int64_t version, const char *actor)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT ct.tag FROM tag t CROSS JOIN customer_tag ct ON ct.tag = t.id "
		    "AND ct.customer = ?1 WHERE t.grp = ?2 AND ct.tag <> ?3 LIMIT 1");
	if (!st)
		return scrm_errcode(db);
	for (;;) {
		sqlite3_bind_int64(st, 1, customer);
		sqlite3_bind_int64(st, 2, t->grp);
		sqlite3_bind_int64(st, 3, t->id);
		int s = sqlite3_step(st);
		int64_t other = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_reset(st);
		if (s == SQLITE_DONE)
			return SCRM_OK;
		if (s != SQLITE_ROW)
			return scrm__sqlerr(db, s, "reading tags");
		bool removed;
		int rc = untag(db, customer, other, &removed);
		if (!rc)
			rc = history(db, customer, other, false, at, rule_id, version, actor, "exclusive group");
		if (rc)
			return rc;
	}
}

/* The customer holds tag from now on: its row and its history. */
static int give(scrm_db *db, int64_t customer, int64_t tag, int64_t at, const char *rule_id,
		int64_t version, const char *actor)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "INSERT INTO customer_tag(customer, tag, origin, at, rule, rule_version, actor) "
		    "VALUES (?1, ?2, ?1, ?3, ?4, ?5, ?6)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, customer);
	sqlite3_bind_int64(st, 2, tag);
	sqlite3_bind_int64(st, 3, at);
	if (rule_id) {
		sqlite3_bind_text(st, 4, rule_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, version);
	}
	if (actor)
		sqlite3_bind_text(st, 6, actor, -1, SQLITE_STATIC);
	int rc = scrm__step_done(db, st, "adding a tag");
	if (rc)
		return rc;
	ru_state *rs = scrm__engine_get(db, SCRM_ENGINE_RULES);
	if (rs)
		rs->tag_changes++;
	return history(db, customer, tag, true, at, rule_id, version, actor, NULL);
}

/* The customer no longer holds tag (if it did): *changed says whether. */
static int take(scrm_db *db, int64_t customer, int64_t tag, int64_t at, const char *rule_id,
		int64_t version, const char *actor, bool *changed)
{
	int rc = untag(db, customer, tag, changed);
	if (rc || !*changed)
		return rc;
	return history(db, customer, tag, false, at, rule_id, version, actor, NULL);
}

int ru__tag_change(scrm_db *db, int64_t customer, const char *tag, bool add, int64_t at,
		   const char *rule_id, int64_t version, const char *actor, bool *changed)
{
	tag_info t = {0, 0, false, false};
	bool found = false;
	*changed = false;
	int rc = tag_lookup(db, tag, strlen(tag), &t, &found);
	if (rc)
		return rc;
	if (!found)
		return scrm__error(db, SCRM_NOTFOUND, "tag '%.*s' is not defined",
				   scrm__utf8_clip(tag, TAG_MAX), tag);
	/* Rule tags change only by their expression (source "tag:NAME";
	 * rule ids have no ':'). */
	if (t.rule && !(rule_id && strncmp(rule_id, "tag:", 4) == 0))
		return scrm__error(db, SCRM_STATE,
				   "tag '%.*s' is a rule tag: it follows its expression "
				   "(scrm_tags_refresh), not %s",
				   scrm__utf8_clip(tag, TAG_MAX), tag, rule_id ? "rule actions" : "actors");
	if (!add)
		return take(db, customer, t.id, at, rule_id, version, actor, changed);
	bool held = false;
	if ((rc = ru__tag_held(db, customer, t.id, &held)) || held)
		return rc;
	if (t.exclusive && (rc = clear_group(db, customer, &t, at, rule_id, version, actor)))
		return rc;
	*changed = true;
	return give(db, customer, t.id, at, rule_id, version, actor);
}

int ru__tag_set_known(scrm_db *db, int64_t customer, int64_t tag, bool add, int64_t at,
		      const char *rule_id, int64_t version)
{
	bool changed;
	return add ? give(db, customer, tag, at, rule_id, version, NULL)
		   : take(db, customer, tag, at, rule_id, version, NULL, &changed);
}

/* Merge: the absorbed side's tags join the survivor's, except where the
 * survivor already holds one of an exclusive group (its own wins). */
int ru__tags_merge(scrm_db *db, int64_t survivor, int64_t absorbed, int64_t log_id, int64_t now)
{
	char reason[48];
	snprintf(reason, sizeof reason, "merge %lld", (long long)log_id);
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT ct.tag, EXISTS (SELECT 1 FROM customer_tag s WHERE s.customer = ?1 AND "
		    "(s.tag = ct.tag OR (g.exclusive AND s.tag IN (SELECT id FROM tag WHERE grp = g.id)))) "
		    "FROM tag t CROSS JOIN customer_tag ct ON ct.tag = t.id AND ct.customer = ?2 "
		    "LEFT JOIN tag_group g ON g.id = t.grp LIMIT 1");
	if (!st)
		return scrm_errcode(db);
	for (;;) {
		sqlite3_bind_int64(st, 1, survivor);
		sqlite3_bind_int64(st, 2, absorbed);
		int s = sqlite3_step(st);
		int64_t tag = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		bool clash = s == SQLITE_ROW && sqlite3_column_int(st, 1);
		sqlite3_reset(st);
		if (s == SQLITE_DONE)
			return SCRM_OK;
		if (s != SQLITE_ROW)
			return scrm__sqlerr(db, s, "reading tags");
		int rc;
		if (clash) {
			bool removed;
			rc = untag(db, absorbed, tag, &removed);
			if (!rc)
				rc = history(db, absorbed, tag, false, now, NULL, 0, NULL, reason);
		} else {
			sqlite3_stmt *u = scrm__stmt(
				db, "UPDATE customer_tag SET customer = ?1 WHERE customer = ?2 AND tag = ?3");
			if (!u)
				return scrm_errcode(db);
			sqlite3_bind_int64(u, 1, survivor);
			sqlite3_bind_int64(u, 2, absorbed);
			sqlite3_bind_int64(u, 3, tag);
			rc = scrm__step_done(db, u, "moving a tag");
		}
		if (rc)
			return rc;
	}
}

/* Unmerge: tags given to an id now on the split-off side go with it. */
int ru__tags_unmerge(scrm_db *db, int64_t old_root, int64_t new_root)
{
	sqlite3_stmt *st = scrm__stmt(
		db, "UPDATE customer_tag SET customer = ?2 WHERE tag IN (SELECT id FROM tag) AND "
		    "customer = ?1 AND origin IN (SELECT id FROM identity_customers WHERE root = ?2)");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, old_root);
	sqlite3_bind_int64(st, 2, new_root);
	return scrm__step_done(db, st, "moving tags");
}

/* ------------------------------------------------------------ definitions */

static int name_ok(scrm_db *db, const cJSON *it, const char *what)
{
	if (!cJSON_IsString(it) || !ru__is_text(it->valuestring, TAG_MAX))
		return scrm__error(db, SCRM_INVALID,
				   "%s must be 1-%d bytes of UTF-8 text without control characters", what,
				   TAG_MAX);
	return SCRM_OK;
}

static int desc_ok(scrm_db *db, const cJSON *it, const char *what)
{
	if (it && !cJSON_IsNull(it) && (!cJSON_IsString(it) || !ru__is_text(it->valuestring, RU_TEXT_MAX)))
		return scrm__error(db, SCRM_INVALID, "%s: description must be 1-%d bytes of text", what,
				   RU_TEXT_MAX);
	return SCRM_OK;
}

static int group_set(scrm_db *db, const char *json)
{
	static const char *const fields[] = {"name", "exclusive", "description", NULL};
	cJSON *j;
	int rc = scrm__json_parse(db, json, "tag group", &j);
	if (rc)
		return rc;
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
	const cJSON *ex = cJSON_GetObjectItemCaseSensitive(j, "exclusive");
	const cJSON *desc = cJSON_GetObjectItemCaseSensitive(j, "description");
	if (!cJSON_IsObject(j))
		rc = scrm__error(db, SCRM_INVALID, "tag group must be a JSON object");
	else if (!(rc = scrm__json_only(db, j, "tag group", fields)) &&
		 !(rc = name_ok(db, name, "tag group: \"name\"")) &&
		 !(rc = desc_ok(db, desc, "tag group")) && ex && !cJSON_IsBool(ex))
		rc = scrm__error(db, SCRM_INVALID, "tag group: \"exclusive\" must be true or false");
	if (rc)
		goto out;
	bool exclusive = cJSON_IsTrue(ex);
	if (exclusive) {
		/* Becoming exclusive must not leave anyone with two of its tags. */
		sqlite3_stmt *st = scrm__stmt(
			db, "SELECT ct.customer FROM tag_group g JOIN tag t ON t.grp = g.id "
			    "CROSS JOIN customer_tag ct ON ct.tag = t.id WHERE g.name = ?1 "
			    "GROUP BY ct.customer HAVING count(*) > 1 LIMIT 1");
		if (!st) {
			rc = scrm_errcode(db);
			goto out;
		}
		sqlite3_bind_text(st, 1, name->valuestring, -1, SQLITE_STATIC);
		int s = sqlite3_step(st);
		if (s == SQLITE_ROW)
			rc = scrm__error(db, SCRM_CONFLICT,
					 "tag group '%s' cannot become exclusive: customer %lld holds "
					 "several of its tags",
					 name->valuestring, (long long)sqlite3_column_int64(st, 0));
		else if (s != SQLITE_DONE)
			rc = scrm__sqlerr(db, s, "reading tags");
		sqlite3_reset(st);
		if (rc)
			goto out;
		/* Rule tags follow their expressions; they cannot evict each other. */
		st = scrm__stmt(db, "SELECT t.name FROM tag t JOIN tag_group g ON g.id = t.grp "
				    "WHERE g.name = ?1 AND t.kind = 'rule' LIMIT 1");
		if (!st) {
			rc = scrm_errcode(db);
			goto out;
		}
		sqlite3_bind_text(st, 1, name->valuestring, -1, SQLITE_STATIC);
		if ((s = sqlite3_step(st)) == SQLITE_ROW)
			rc = scrm__error(db, SCRM_CONFLICT,
					 "tag group '%s' cannot become exclusive: it holds rule tag '%s'",
					 name->valuestring, (const char *)sqlite3_column_text(st, 0));
		else if (s != SQLITE_DONE)
			rc = scrm__sqlerr(db, s, "reading tags");
		sqlite3_reset(st);
		if (rc)
			goto out;
	}
	sqlite3_stmt *st = scrm__stmt(
		db, "INSERT INTO tag_group(name, exclusive, description) VALUES (?1, ?2, ?3) "
		    "ON CONFLICT(name) DO UPDATE SET exclusive = ?2, description = ?3");
	if (!st) {
		rc = scrm_errcode(db);
		goto out;
	}
	sqlite3_bind_text(st, 1, name->valuestring, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, exclusive);
	if (cJSON_IsString(desc))
		sqlite3_bind_text(st, 3, desc->valuestring, -1, SQLITE_STATIC);
	rc = scrm__step_done(db, st, "storing a tag group");
out:
	cJSON_Delete(j);
	return rc;
}

static int tag_define(scrm_db *db, const char *json)
{
	static const char *const fields[] = {"name", "group", "description", "expr", NULL};
	cJSON *j;
	int rc = scrm__json_parse(db, json, "tag", &j);
	if (rc)
		return rc;
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
	const cJSON *grp = cJSON_GetObjectItemCaseSensitive(j, "group");
	const cJSON *desc = cJSON_GetObjectItemCaseSensitive(j, "description");
	const cJSON *expr = cJSON_GetObjectItemCaseSensitive(j, "expr");
	int64_t gid = 0;
	if (!cJSON_IsObject(j))
		rc = scrm__error(db, SCRM_INVALID, "tag must be a JSON object");
	else if (!(rc = scrm__json_only(db, j, "tag", fields)) &&
		 !(rc = name_ok(db, name, "tag: \"name\"")) && !(rc = desc_ok(db, desc, "tag")) &&
		 grp && !cJSON_IsNull(grp))
		rc = name_ok(db, grp, "tag: \"group\"");
	if (!rc && expr && !cJSON_IsString(expr))
		rc = scrm__error(db, SCRM_INVALID, "tag '%s': \"expr\" must be a string",
				 name->valuestring);
	if (rc)
		goto out;
	sqlite3_stmt *st;
	if (cJSON_IsString(grp)) {
		st = scrm__stmt(db, "SELECT id FROM tag_group WHERE name = ?1");
		if (!st) {
			rc = scrm_errcode(db);
			goto out;
		}
		sqlite3_bind_text(st, 1, grp->valuestring, -1, SQLITE_STATIC);
		int s = sqlite3_step(st);
		gid = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_reset(st);
		if (s == SQLITE_DONE)
			rc = scrm__error(db, SCRM_NOTFOUND, "tag '%s': no tag group '%s'", name->valuestring,
					 grp->valuestring);
		else if (s != SQLITE_ROW)
			rc = scrm__sqlerr(db, s, "reading tag groups");
		if (rc)
			goto out;
	}
	/* Moving a tag between groups would break exclusivity silently. */
	st = scrm__stmt(db, "SELECT coalesce(t.grp, 0) <> ?2 AND EXISTS "
			    "(SELECT 1 FROM customer_tag WHERE tag = t.id) FROM tag t WHERE t.name = ?1");
	if (!st) {
		rc = scrm_errcode(db);
		goto out;
	}
	sqlite3_bind_text(st, 1, name->valuestring, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, gid);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW && sqlite3_column_int(st, 0))
		rc = scrm__error(db, SCRM_CONFLICT,
				 "tag '%s' is held by customers; it cannot move to another group",
				 name->valuestring);
	else if (s != SQLITE_ROW && s != SQLITE_DONE)
		rc = scrm__sqlerr(db, s, "reading tags");
	sqlite3_reset(st);
	if (rc)
		goto out;
	if (expr) {
		rc = ru__ruletag_define(db, name->valuestring, expr->valuestring, gid,
					cJSON_IsString(desc) ? desc->valuestring : NULL);
		goto out;
	}
	bool rule;
	if ((rc = ru__ruletag_is(db, name->valuestring, &rule)))
		goto out;
	if (rule) {
		rc = scrm__error(db, SCRM_CONFLICT,
				 "tag '%s' is a rule tag; it cannot become a manual tag (give its "
				 "\"expr\" to change it)", name->valuestring);
		goto out;
	}
	st = scrm__stmt(db, "INSERT INTO tag(name, grp, description) VALUES (?1, ?2, ?3) "
			    "ON CONFLICT(name) DO UPDATE SET grp = ?2, description = ?3");
	if (!st) {
		rc = scrm_errcode(db);
		goto out;
	}
	sqlite3_bind_text(st, 1, name->valuestring, -1, SQLITE_STATIC);
	if (gid)
		sqlite3_bind_int64(st, 2, gid);
	if (cJSON_IsString(desc))
		sqlite3_bind_text(st, 3, desc->valuestring, -1, SQLITE_STATIC);
	rc = scrm__step_done(db, st, "storing a tag");
out:
	cJSON_Delete(j);
	return rc;
}

static int write_call(scrm_db *db, const char *json, int (*fn)(scrm_db *, const char *),
		      const char *what)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if (!json)
		return scrm__error(db, SCRM_MISUSE, "%s: json is NULL", what);
	if ((rc = scrm__tx_begin(db)))
		return rc;
	return scrm__tx_end(db, fn(db, json));
}

SCRM_API int scrm_tags_group_set(scrm_db *db, const char *json)
{
	return write_call(db, json, group_set, "scrm_tags_group_set");
}

SCRM_API int scrm_tags_define(scrm_db *db, const char *json)
{
	return write_call(db, json, tag_define, "scrm_tags_define");
}

/* ------------------------------------------------------------ add, remove */

static int change(scrm_db *db, int64_t customer, const char *tag, const char *actor, bool add)
{
	int64_t root;
	bool changed;
	if (!tag || !actor)
		return scrm__error(db, SCRM_MISUSE, "scrm_tag_%s: tag or actor is NULL",
				   add ? "add" : "remove");
	if (!ru__is_text(actor, ACTOR_MAX))
		return scrm__error(db, SCRM_INVALID,
				   "actor must be 1-%d bytes of UTF-8 text without control characters",
				   ACTOR_MAX);
	int rc = ru__live_customer(db, customer, &root);
	if (rc)
		return rc;
	return ru__tag_change(db, root, tag, add, scrm__now(db), NULL, 0, actor, &changed);
}

static int change_call(scrm_db *db, int64_t customer, const char *tag, const char *actor, bool add)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	if ((rc = scrm__tx_begin(db)))
		return rc;
	return scrm__tx_end(db, change(db, customer, tag, actor, add));
}

SCRM_API int scrm_tag_add(scrm_db *db, int64_t customer, const char *tag, const char *actor)
{
	return change_call(db, customer, tag, actor, true);
}

SCRM_API int scrm_tag_remove(scrm_db *db, int64_t customer, const char *tag, const char *actor)
{
	return change_call(db, customer, tag, actor, false);
}

static int has_tag(scrm_db *db, int64_t customer, const char *tag, int *out)
{
	int64_t root;
	int rc = ru__canonical(db, customer, &root);
	if (!rc)
		rc = ru__tag_has(db, root, tag, strlen(tag), out);
	return rc;
}

SCRM_API int scrm_tag_has(scrm_db *db, int64_t customer, const char *tag, int *out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!tag || !out)
		return scrm__error(db, SCRM_MISUSE, "scrm_tag_has: tag or out is NULL");
	*out = 0;
	if ((rc = scrm__tx_begin_read(db)))
		return rc;
	return scrm__tx_end(db, has_tag(db, customer, tag, out));
}

/* ------------------------------------------------------------ reading */

static void put_col(scrm_buf *b, sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);
	if (t)
		scrm__buf_json_str(b, t);
	else
		scrm__buf_puts(b, "null");
}

/* {"rule":…,"version":…} or {"actor":…} from columns rule, version, actor. */
static void put_source(scrm_buf *b, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) != SQLITE_NULL) {
		scrm__buf_puts(b, "{\"rule\":");
		put_col(b, st, col);
		scrm__buf_printf(b, ",\"version\":%lld}", (long long)sqlite3_column_int64(st, col + 1));
	} else if (sqlite3_column_type(st, col + 2) != SQLITE_NULL) {
		scrm__buf_puts(b, "{\"actor\":");
		put_col(b, st, col + 2);
		scrm__buf_puts(b, "}");
	} else {
		scrm__buf_puts(b, "{}");
	}
}

static int list_json(scrm_db *db, scrm_buf *b)
{
	sqlite3_stmt *st = scrm__stmt(db, "SELECT name, exclusive, description FROM tag_group ORDER BY name");
	if (!st)
		return scrm_errcode(db);
	int s, n = 0;
	scrm__buf_puts(b, "{\"groups\":[");
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		scrm__buf_puts(b, n++ ? ",{\"name\":" : "{\"name\":");
		put_col(b, st, 0);
		scrm__buf_printf(b, ",\"exclusive\":%s,\"description\":",
				 sqlite3_column_int(st, 1) ? "true" : "false");
		put_col(b, st, 2);
		scrm__buf_puts(b, "}");
	}
	sqlite3_reset(st);
	if (s != SQLITE_DONE)
		return scrm__sqlerr(db, s, "listing tag groups");
	st = scrm__stmt(db, "SELECT t.name, g.name, t.kind, t.description, "
			    "(SELECT count(*) FROM customer_tag WHERE tag = t.id), "
			    "CASE WHEN t.kind = 'rule' THEN t.definition END "
			    "FROM tag t LEFT JOIN tag_group g ON g.id = t.grp ORDER BY t.name");
	if (!st)
		return scrm_errcode(db);
	scrm__buf_puts(b, "],\"tags\":[");
	n = 0;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		scrm__buf_puts(b, n++ ? ",{\"name\":" : "{\"name\":");
		put_col(b, st, 0);
		scrm__buf_puts(b, ",\"group\":");
		put_col(b, st, 1);
		scrm__buf_puts(b, ",\"kind\":");
		put_col(b, st, 2);
		scrm__buf_puts(b, ",\"description\":");
		put_col(b, st, 3);
		scrm__buf_printf(b, ",\"customers\":%lld", (long long)sqlite3_column_int64(st, 4));
		/* A rule tag's stored {"expr":…,"version":V}, spliced in. */
		const char *def = (const char *)sqlite3_column_text(st, 5);
		size_t dn = def ? strlen(def) : 0;
		if (dn > 2 && def[0] == '{' && def[dn - 1] == '}') {
			scrm__buf_puts(b, ",");
			scrm__buf_append(b, def + 1, dn - 2);
		}
		scrm__buf_puts(b, "}");
	}
	sqlite3_reset(st);
	scrm__buf_puts(b, "]}");
	return s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "listing tags");
}

static int customer_json(scrm_db *db, int64_t customer, scrm_buf *b)
{
	int64_t root;
	int rc = ru__canonical(db, customer, &root);
	if (rc)
		return rc;
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT t.name, g.name, ct.at, ct.rule, ct.rule_version, ct.actor FROM tag t "
		    "CROSS JOIN customer_tag ct ON ct.tag = t.id AND ct.customer = ?1 "
		    "LEFT JOIN tag_group g ON g.id = t.grp ORDER BY t.name");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	int s, n = 0;
	scrm__buf_puts(b, "[");
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		scrm__buf_puts(b, n++ ? ",{\"tag\":" : "{\"tag\":");
		put_col(b, st, 0);
		scrm__buf_puts(b, ",\"group\":");
		put_col(b, st, 1);
		scrm__buf_printf(b, ",\"at\":%lld,\"source\":", (long long)sqlite3_column_int64(st, 2));
		put_source(b, st, 3);
		scrm__buf_puts(b, "}");
	}
	sqlite3_reset(st);
	scrm__buf_puts(b, "]");
	return s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "reading tags");
}

static int history_json(scrm_db *db, int64_t customer, int limit, scrm_buf *b)
{
	int64_t root;
	int rc = ru__canonical(db, customer, &root);
	if (rc)
		return rc;
	sqlite3_stmt *st = scrm__stmt(
		db, "SELECT h.id AS id, h.customer, t.name, h.op, h.at AS at, h.rule, h.rule_version, "
		    "h.actor, h.reason FROM tag_history h JOIN tag t ON t.id = h.tag WHERE h.customer IN "
		    "(SELECT id FROM identity_customers WHERE root = ?1) "
		    /* additions a bulk refresh recorded in the holding's row */
		    "UNION ALL SELECT NULL, ct.origin, t.name, 'add', ct.at, ct.rule, ct.rule_version, "
		    "ct.actor, NULL FROM tag t CROSS JOIN customer_tag ct ON ct.tag = t.id AND ct.customer = ?1 "
		    "WHERE ct.implicit IS NOT NULL "
		    "ORDER BY at DESC, id DESC LIMIT ?2");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, root);
	sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1);
	int s, n = 0;
	scrm__buf_puts(b, "[");
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		scrm__buf_puts(b, n++ ? ",{\"id\":" : "{\"id\":");
		if (sqlite3_column_type(st, 0) == SQLITE_NULL)
			scrm__buf_puts(b, "null");
		else
			scrm__buf_int(b, sqlite3_column_int64(st, 0));
		scrm__buf_printf(b, ",\"customer\":%lld,\"tag\":", (long long)sqlite3_column_int64(st, 1));
		put_col(b, st, 2);
		scrm__buf_puts(b, ",\"op\":");
		put_col(b, st, 3);
		scrm__buf_printf(b, ",\"at\":%lld,\"source\":", (long long)sqlite3_column_int64(st, 4));
		put_source(b, st, 5);
		scrm__buf_puts(b, ",\"reason\":");
		put_col(b, st, 8);
		scrm__buf_puts(b, "}");
	}
	sqlite3_reset(st);
	scrm__buf_puts(b, "]");
	return s == SQLITE_DONE ? SCRM_OK : scrm__sqlerr(db, s, "reading tag history");
}

SCRM_API int scrm_tags_list_json(scrm_db *db, char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_tags_list_json: out is NULL");
	*out = NULL;
	scrm_buf b;
	scrm__buf_init(&b, db);
	if ((rc = scrm__tx_begin_read(db)) == SCRM_OK)
		rc = scrm__tx_end(db, list_json(db, &b));
	if (rc == SCRM_OK)
		return scrm__buf_finish(&b, out);
	scrm__buf_reset(&b);
	return rc;
}

SCRM_API int scrm_tags_customer_json(scrm_db *db, int64_t customer, char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_tags_customer_json: out is NULL");
	*out = NULL;
	scrm_buf b;
	scrm__buf_init(&b, db);
	if ((rc = scrm__tx_begin_read(db)) == SCRM_OK)
		rc = scrm__tx_end(db, customer_json(db, customer, &b));
	if (rc == SCRM_OK)
		return scrm__buf_finish(&b, out);
	scrm__buf_reset(&b);
	return rc;
}

SCRM_API int scrm_tags_history_json(scrm_db *db, int64_t customer, int limit, char **out)
{
	int rc = scrm__enter(db);
	if (rc)
		return rc;
	if (!out)
		return scrm__error(db, SCRM_MISUSE, "scrm_tags_history_json: out is NULL");
	*out = NULL;
	if (limit < 0)
		return scrm__error(db, SCRM_RANGE, "history limit %d is negative", limit);
	scrm_buf b;
	scrm__buf_init(&b, db);
	if ((rc = scrm__tx_begin_read(db)) == SCRM_OK)
		rc = scrm__tx_end(db, history_json(db, customer, limit, &b));
	if (rc == SCRM_OK)
		return scrm__buf_finish(&b, out);
	scrm__buf_reset(&b);
	return rc;
}
