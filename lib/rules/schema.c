/*
 * Tables of the rule engine (rules and their versions, firings, pending
 * absence waits and date schedules, deferrals, the outbox, the decision
 * trace, tags). The step is listed in lib/core/schema.c; never edit a
 * released step.
 */
#include "rules-int.h"

const char scrm__rules_schema_1[] =
	/* The current definition of each rule. A removed rule keeps its row so
	 * the ids in traces and outbox rows still name it. */
	"CREATE TABLE rule ("
	"  rid INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  version INTEGER NOT NULL,"
	"  enabled INTEGER NOT NULL,"
	"  removed INTEGER NOT NULL DEFAULT 0,"
	"  priority INTEGER NOT NULL,"
	"  definition TEXT NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE TABLE rule_version ("
	"  rid INTEGER NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  definition TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  PRIMARY KEY (rid, version)) WITHOUT ROWID;"
	/* One row per firing: what caps, cooldowns and fire-once count. grp is
	 * the rule's cap group at the time it fired. */
	"CREATE TABLE rule_fire ("
	"  id INTEGER PRIMARY KEY,"
	"  rid INTEGER NOT NULL,"
	"  customer INTEGER NOT NULL,"
	"  grp TEXT,"
	"  at INTEGER NOT NULL);"
	"CREATE INDEX rule_fire_rule ON rule_fire(customer, rid, at);"
	"CREATE INDEX rule_fire_group ON rule_fire(customer, grp, at) WHERE grp IS NOT NULL;"
	/* Absence triggers waiting for their deadline: the start event, and
	 * when the wait runs out (start time + within). A row goes when it
	 * fires or when the awaited event cancels it. */
	"CREATE TABLE rule_wait ("
	"  id INTEGER PRIMARY KEY,"
	"  rid INTEGER NOT NULL,"
	"  customer INTEGER NOT NULL,"
	"  event INTEGER NOT NULL,"
	"  start_at INTEGER NOT NULL,"
	"  due INTEGER NOT NULL);"
	"CREATE INDEX rule_wait_due ON rule_wait(due);"
	"CREATE INDEX rule_wait_customer ON rule_wait(customer, rid);"
	/* Date triggers: the next due time per rule and customer (NULL when
	 * there is none), and the last occurrence fired so that a recomputed
	 * schedule never fires one occurrence twice. */
	"CREATE TABLE rule_date ("
	"  rid INTEGER NOT NULL,"
	"  customer INTEGER NOT NULL,"
	"  due INTEGER,"
	"  instance TEXT,"
	"  last_instance TEXT,"
	"  PRIMARY KEY (rid, customer)) WITHOUT ROWID;"
	"CREATE INDEX rule_date_due ON rule_date(due) WHERE due IS NOT NULL;"
	"CREATE INDEX rule_date_customer ON rule_date(customer);"
	/* Attribute names date rules read (their date attributes and `tz`).
	 * Triggers on the profile engine's attribute table note the customers
	 * whose such attributes changed, by whatever path (set, unset, erase),
	 * in the same transaction; scrm_rules_tick() recomputes their
	 * schedules from `since` (the change time) on. */
	"CREATE TABLE rule_date_attr (name TEXT PRIMARY KEY) WITHOUT ROWID;"
	"CREATE TABLE rule_date_dirty (customer INTEGER PRIMARY KEY, since INTEGER NOT NULL);"
	"CREATE TRIGGER rule_attr_insert AFTER INSERT ON profile_attr "
	"  WHEN NEW.name IN (SELECT name FROM rule_date_attr) BEGIN"
	"  INSERT OR IGNORE INTO rule_date_dirty(customer, since) VALUES (NEW.customer, NEW.at);"
	"  UPDATE rule_date_dirty SET since = min(since, NEW.at) WHERE customer = NEW.customer;"
	"  END;"
	"CREATE TRIGGER rule_attr_update AFTER UPDATE ON profile_attr "
	"  WHEN NEW.name IN (SELECT name FROM rule_date_attr) BEGIN"
	"  INSERT OR IGNORE INTO rule_date_dirty(customer, since) VALUES (NEW.customer, NEW.at);"
	"  UPDATE rule_date_dirty SET since = min(since, NEW.at) WHERE customer = NEW.customer;"
	"  END;"
	"CREATE TRIGGER rule_attr_delete AFTER DELETE ON profile_attr "
	"  WHEN OLD.name IN (SELECT name FROM rule_date_attr) BEGIN"
	"  INSERT OR IGNORE INTO rule_date_dirty(customer, since) VALUES (OLD.customer, OLD.at);"
	"  END;"
	/* Firings held back by a cap (on_cap defer) or quiet hours, with the
	 * actions decided then; scrm_rules_tick() delivers them when due. */
	"CREATE TABLE rule_deferred ("
	"  id INTEGER PRIMARY KEY,"
	"  rid INTEGER NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  customer INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  instance TEXT NOT NULL,"
	"  event INTEGER,"
	"  actions TEXT NOT NULL,"
	"  due INTEGER NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL);"
	"CREATE INDEX rule_deferred_due ON rule_deferred(due);"
	"CREATE INDEX rule_deferred_customer ON rule_deferred(customer, rid);"
	/* Host actions. state: pending (never taken), leased (taken; offered
	 * again once next_at = the lease end passes), failed (retry at
	 * next_at), done, dead (gave up). ikey is the stable idempotency key;
	 * it is unique by construction (one row per decided action), so it
	 * has no index: a random 128-bit key in a B-tree cost a third of an
	 * event's rule work. Only the undelivered rows are indexed. */
	"CREATE TABLE outbox ("
	"  id INTEGER PRIMARY KEY,"
	"  ikey TEXT NOT NULL,"
	"  action TEXT NOT NULL,"
	"  params TEXT NOT NULL,"
	"  customer INTEGER NOT NULL,"
	"  rid INTEGER,"
	"  version INTEGER,"
	"  context TEXT,"
	"  state TEXT NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_at INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  done_at INTEGER,"
	"  last_error TEXT);"
	"CREATE INDEX outbox_ready ON outbox(next_at, id) "
	"  WHERE state IN ('pending', 'leased', 'failed');"
	/* The decision trace: every evaluation that fired or was stopped.
	 * inputs: what the condition read (replayed for the sub-expression
	 * trace when queried); detail: the outcome's particulars. Clustered by
	 * customer and time: the decisions about one event sit side by side
	 * and are written with one statement (a rowid table with a customer
	 * index cost twice as much per decision). The key is unique by
	 * construction: one decision per rule, trigger instance and outcome
	 * at a time. */
	"CREATE TABLE rule_trace ("
	"  customer INTEGER NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  rid INTEGER NOT NULL,"
	"  instance TEXT NOT NULL,"
	"  outcome TEXT NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  event INTEGER,"
	"  detail TEXT,"
	"  inputs TEXT,"
	"  PRIMARY KEY (customer, at, rid, instance, outcome)) WITHOUT ROWID;"
	"CREATE INDEX rule_trace_rule ON rule_trace(rid, at);"
	/* Tags. A customer's tag row remembers the id it was given to
	 * (origin) so that an unmerge hands it back to that side. */
	"CREATE TABLE tag_group ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  exclusive INTEGER NOT NULL,"
	"  description TEXT);"
	"CREATE TABLE tag ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  grp INTEGER,"
	"  kind TEXT NOT NULL DEFAULT 'manual',"
	"  definition TEXT,"
	"  description TEXT);"
	"CREATE TABLE customer_tag ("
	"  customer INTEGER NOT NULL,"
	"  tag INTEGER NOT NULL,"
	"  origin INTEGER NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  rule TEXT,"
	"  rule_version INTEGER,"
	"  actor TEXT,"
	"  PRIMARY KEY (customer, tag)) WITHOUT ROWID;"
	"CREATE INDEX customer_tag_tag ON customer_tag(tag, customer);"
	"CREATE TABLE tag_history ("
	"  id INTEGER PRIMARY KEY,"
	"  customer INTEGER NOT NULL,"
	"  tag INTEGER NOT NULL,"
	"  op TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  rule TEXT,"
	"  rule_version INTEGER,"
	"  actor TEXT,"
	"  reason TEXT);"
	"CREATE INDEX tag_history_customer ON tag_history(customer, at);"
	/* Erasure (scrm_profile_erase, anonymization) reaches the rule
	 * engine's personal data through the profile engine's erasure record:
	 * the values conditions read are dropped from the trace, tags and
	 * pending work go, and undelivered host actions are given up. */
	"CREATE TRIGGER rule_erasure AFTER INSERT ON profile_erasure BEGIN"
	"  UPDATE rule_trace SET inputs = NULL WHERE customer IN"
	"    (SELECT id FROM identity_customers WHERE root = NEW.customer) OR customer = NEW.customer;"
	"  DELETE FROM customer_tag WHERE customer = NEW.customer;"
	"  DELETE FROM rule_wait WHERE customer = NEW.customer;"
	"  DELETE FROM rule_date WHERE customer = NEW.customer;"
	"  DELETE FROM rule_deferred WHERE customer = NEW.customer;"
	"  UPDATE outbox SET state = 'dead', last_error = 'customer erased'"
	"    WHERE customer = NEW.customer AND state IN ('pending', 'leased', 'failed');"
	"  END;"
	"INSERT INTO scrm_meta(key, value) VALUES ('rules.rev', '0');";

/* Step 2 (schema 6): cheaper writes on the event path.
 * - The trace becomes a rowid table in the order it is recorded, one row
 *   per trigger instance evaluated (the decisions of all the rules one
 *   event triggered, packed as JSON), with one narrow index by customer
 *   and time (the question the trace answers: why did this customer get
 *   this). Clustered by customer (WITHOUT ROWID), a row per decision was
 *   inserted in the middle of a B-tree, and the index by rule cost as much
 *   again: together the largest cost of an event with rules. Per-rule
 *   queries read the table newest first instead, stopping at their limit.
 *   Old rows are copied in time order, one decision each.
 * - The outbox's partial index and the attribute triggers tested
 *   `IN (list)` / `IN (SELECT …)`, which SQLite evaluates with an
 *   ephemeral table: one created and dropped for every outbox row and
 *   every attribute written. */
const char scrm__rules_schema_2[] =
	"DROP TRIGGER rule_erasure;"
	"CREATE TABLE rule_trace_v2 ("
	"  id INTEGER PRIMARY KEY,"
	"  customer INTEGER NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  instance TEXT NOT NULL,"
	"  event INTEGER,"
	"  n INTEGER NOT NULL,"         /* decisions in the row */
	"  decisions TEXT NOT NULL);"   /* [[rid, version, outcome, detail, inputs]…], latest first */
	"INSERT INTO rule_trace_v2(customer, at, kind, instance, event, n, decisions) "
	"  SELECT customer, at, kind, instance, event, 1, json_array(json_array(rid, version, "
	"  outcome, json(detail), json(inputs))) FROM rule_trace "
	"  ORDER BY at, customer, rid, instance, outcome;"
	"DROP TABLE rule_trace;"
	"ALTER TABLE rule_trace_v2 RENAME TO rule_trace;"
	"CREATE INDEX rule_trace_customer ON rule_trace(customer, at);"
	"DROP INDEX outbox_ready;"
	"CREATE INDEX outbox_ready ON outbox(next_at, id) WHERE state <> 'done' AND state <> 'dead';"
	"DROP TRIGGER rule_attr_insert;"
	"DROP TRIGGER rule_attr_update;"
	"DROP TRIGGER rule_attr_delete;"
	"CREATE TRIGGER rule_attr_insert AFTER INSERT ON profile_attr "
	"  WHEN EXISTS (SELECT 1 FROM rule_date_attr WHERE name = NEW.name) BEGIN"
	"  INSERT OR IGNORE INTO rule_date_dirty(customer, since) VALUES (NEW.customer, NEW.at);"
	"  UPDATE rule_date_dirty SET since = min(since, NEW.at) WHERE customer = NEW.customer;"
	"  END;"
	"CREATE TRIGGER rule_attr_update AFTER UPDATE ON profile_attr "
	"  WHEN EXISTS (SELECT 1 FROM rule_date_attr WHERE name = NEW.name) BEGIN"
	"  INSERT OR IGNORE INTO rule_date_dirty(customer, since) VALUES (NEW.customer, NEW.at);"
	"  UPDATE rule_date_dirty SET since = min(since, NEW.at) WHERE customer = NEW.customer;"
	"  END;"
	"CREATE TRIGGER rule_attr_delete AFTER DELETE ON profile_attr "
	"  WHEN EXISTS (SELECT 1 FROM rule_date_attr WHERE name = OLD.name) BEGIN"
	"  INSERT OR IGNORE INTO rule_date_dirty(customer, since) VALUES (OLD.customer, OLD.at);"
	"  END;"
	"CREATE TRIGGER rule_erasure AFTER INSERT ON profile_erasure BEGIN"
	"  UPDATE rule_trace SET decisions = (SELECT json_group_array(json(json_replace(j.value, "
	"    '$[4]', NULL))) FROM json_each(rule_trace.decisions) j) WHERE customer IN"
	"    (SELECT id FROM identity_customers WHERE root = NEW.customer) OR customer = NEW.customer;"
	"  DELETE FROM customer_tag WHERE customer = NEW.customer;"
	"  DELETE FROM rule_wait WHERE customer = NEW.customer;"
	"  DELETE FROM rule_date WHERE customer = NEW.customer;"
	"  DELETE FROM rule_deferred WHERE customer = NEW.customer;"
	"  UPDATE outbox SET state = 'dead', last_error = 'customer erased'"
	"    WHERE customer = NEW.customer AND state <> 'done' AND state <> 'dead';"
	"  END;";

/* Step 3 (schema 8): cheaper bulk tag writes.
 * - customer_tag is clustered by (tag, customer), with no second index:
 *   a refresh adds holders tag by tag in customer order, which now appends
 *   to the one B-tree it writes (the index by tag took the appends before
 *   and the table took ten sweeps of inserts inside the tree). Questions
 *   by customer name the tag or join the small tag table, which gives a
 *   key probe per tag.
 * - implicit: set on a holding added by a bulk refresh, whose addition is
 *   recorded only in this row (at, rule, rule_version) instead of a
 *   tag_history row too: a first refresh over 1M customers wrote two
 *   million history rows and their index entries. The history reads these
 *   rows as additions (with no history id), and whatever takes such a
 *   holding away first writes its addition to tag_history. */
const char scrm__rules_schema_3[] =
	"DROP TRIGGER rule_erasure;"
	"CREATE TABLE customer_tag_v3 ("
	"  tag INTEGER NOT NULL,"
	"  customer INTEGER NOT NULL,"
	"  origin INTEGER NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  rule TEXT,"
	"  rule_version INTEGER,"
	"  actor TEXT,"
	"  implicit INTEGER,"
	"  PRIMARY KEY (tag, customer)) WITHOUT ROWID;"
	"INSERT INTO customer_tag_v3(tag, customer, origin, at, rule, rule_version, actor) "
	"  SELECT tag, customer, origin, at, rule, rule_version, actor FROM customer_tag "
	"  ORDER BY tag, customer;"
	"DROP TABLE customer_tag;"
	"ALTER TABLE customer_tag_v3 RENAME TO customer_tag;"
	"CREATE TRIGGER rule_erasure AFTER INSERT ON profile_erasure BEGIN"
	"  UPDATE rule_trace SET decisions = (SELECT json_group_array(json(json_replace(j.value, "
	"    '$[4]', NULL))) FROM json_each(rule_trace.decisions) j) WHERE customer IN"
	"    (SELECT id FROM identity_customers WHERE root = NEW.customer) OR customer = NEW.customer;"
	"  INSERT INTO tag_history(customer, tag, op, at, rule, rule_version, actor)"
	"    SELECT origin, tag, 'add', at, rule, rule_version, actor FROM customer_tag"
	"    WHERE tag IN (SELECT id FROM tag) AND customer = NEW.customer AND implicit IS NOT NULL;"
	"  DELETE FROM customer_tag WHERE tag IN (SELECT id FROM tag) AND customer = NEW.customer;"
	"  DELETE FROM rule_wait WHERE customer = NEW.customer;"
	"  DELETE FROM rule_date WHERE customer = NEW.customer;"
	"  DELETE FROM rule_deferred WHERE customer = NEW.customer;"
	"  UPDATE outbox SET state = 'dead', last_error = 'customer erased'"
	"    WHERE customer = NEW.customer AND state <> 'done' AND state <> 'dead';"
	"  END;";
