/*
 * Tables of the identity engine and the kinds shipped by default. The
 * migration is listed in lib/core/schema.c; never edit a released step.
 */
#include "identity-int.h"

const char scrm__identity_schema_1[] =
	"CREATE TABLE id_kind ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  priority INTEGER NOT NULL,"
	"  lim INTEGER NOT NULL,"
	"  definition TEXT NOT NULL);"
	/* root: the canonical survivor (itself when not merged), kept current so
	 * canonical lookups are one row read; merged_into: the direct link. */
	"CREATE TABLE customer ("
	"  id INTEGER PRIMARY KEY,"
	"  created_at INTEGER NOT NULL,"
	"  root INTEGER NOT NULL,"
	"  merged_into INTEGER,"
	"  merge_id INTEGER);"
	"CREATE INDEX customer_root ON customer(root);"
	"CREATE INDEX customer_merged ON customer(merged_into) WHERE merged_into IS NOT NULL;"
	/* Only observations that changed something are stored. anchor: the
	 * identifier through which the observation found its customer. */
	"CREATE TABLE observation ("
	"  id INTEGER PRIMARY KEY,"
	"  channel TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  customer INTEGER NOT NULL,"
	"  anchor_kind INTEGER,"
	"  anchor_value TEXT,"
	"  outcome TEXT NOT NULL);"
	/* No index on customer: explain reaches a customer's observations
	 * through ident, merge_log and id_conflict, which are indexed, and the
	 * index cost ~10% of observe throughput. */
	/* customer: current canonical owner; home: the customer the identifier
	 * was attached to (what unmerge returns it to). */
	"CREATE TABLE ident ("
	"  kind INTEGER NOT NULL,"
	"  value TEXT NOT NULL,"
	"  customer INTEGER NOT NULL,"
	"  home INTEGER NOT NULL,"
	"  obs INTEGER NOT NULL,"
	"  PRIMARY KEY (kind, value)) WITHOUT ROWID;"
	"CREATE INDEX ident_customer ON ident(customer, kind);"
	"CREATE TABLE merge_log ("
	"  id INTEGER PRIMARY KEY,"
	"  op TEXT NOT NULL CHECK (op IN ('merge','unmerge')),"
	"  survivor INTEGER NOT NULL,"
	"  absorbed INTEGER NOT NULL,"
	"  obs INTEGER,"
	"  after_obs INTEGER NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  reason TEXT,"
	"  undoes INTEGER,"
	"  undone_by INTEGER);"
	"CREATE INDEX merge_log_survivor ON merge_log(survivor);"
	"CREATE INDEX merge_log_absorbed ON merge_log(absorbed);"
	/* Stored in both directions so either side finds it by primary key. */
	"CREATE TABLE never_merge ("
	"  a INTEGER NOT NULL, b INTEGER NOT NULL, at INTEGER NOT NULL, reason TEXT,"
	"  PRIMARY KEY (a, b)) WITHOUT ROWID;"
	"CREATE TABLE id_conflict ("
	"  id INTEGER PRIMARY KEY,"
	"  obs INTEGER,"
	"  kind INTEGER NOT NULL,"
	"  value TEXT NOT NULL,"
	"  owner INTEGER,"
	"  target INTEGER NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  at INTEGER NOT NULL);"
	"CREATE INDEX id_conflict_owner ON id_conflict(owner);"
	"CREATE INDEX id_conflict_target ON id_conflict(target);"
#define JUNK "\"null\",\"NULL\",\"Null\",\"none\",\"None\",\"undefined\",\"unknown\",\"N/A\",\"n/a\",\"-\",\"0\",\"00000000000\""
#define KIND(id, name, norm, prio, lim, extra) \
	"INSERT INTO id_kind VALUES(" #id ",'" name "'," #prio "," #lim ",'{\"name\":\"" name \
	"\",\"normalizer\":\"" norm "\",\"priority\":" #prio ",\"limit\":" #lim \
	",\"blocklist\":[" JUNK "],\"block_patterns\":[" extra "]}');"
	KIND(1, "wechat_unionid", "trim", 10, 1, "\"^0+$\"")
	KIND(2, "member_card", "trim", 20, 1, "\"^0+$\"")
	KIND(3, "phone", "phone", 30, 3, "\"^\\\\+861(\\\\d)\\\\1{9}$\"")
	KIND(4, "email", "email", 40, 3, "")
	KIND(5, "wecom_external_userid", "trim", 50, 0, "\"^0+$\"")
	KIND(6, "wechat_openid", "trim", 60, 0, "\"^0+$\"")
	KIND(7, "douyin_openid", "trim", 70, 0, "\"^0+$\"")
	KIND(8, "tmall_buyer_nick", "trim", 80, 0, "")
	KIND(9, "youzan_fans_id", "trim", 90, 0, "\"^0+$\"")
	"INSERT INTO scrm_meta VALUES('identity.kinds_rev','1');";

/* Step 2: erasure (a customer whose personal data was deleted keeps its id
 * and history) and the view other engines read customers through. */
const char scrm__identity_schema_2[] =
	"ALTER TABLE customer ADD COLUMN erased_at INTEGER;"
	/* The identity engine's public face inside the database: other engines
	 * read customers through this view, never the table. */
	"CREATE VIEW identity_customers AS "
	"  SELECT id, root, created_at, erased_at FROM customer;";
