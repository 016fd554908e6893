/*
 * Check suite for the rule engine (include/scrm/rules.h, rules, outbox,
 * trace and tags): triggers (event, absence, date) on a fake clock, limits
 * (caps by group, rolling and calendar in the customer's time zone, drop
 * or defer, cooldown, once, quiet hours, consent), priority, versioning,
 * the outbox protocol including a killed taker, the decision trace, tags,
 * every refusal with its message, and allocation failure.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>

#include "scrm/identity.h"
#include "scrm/profile.h"
#include "scrm/rules.h"
#include "core-int.h"
#include "testutil.h"

/* 2026-01-05T00:00:00Z, a Monday (08:00 in Shanghai). */
#define T0 INT64_C(1767571200000)
#define MIN INT64_C(60000)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/* --------------------------------------------------------------- helpers */

static tu_clock clk;

static scrm_db *open_db(const char *name)
{
	scrm_db *db = tu_open(tu_path(name), SCRM_OPEN_CREATE);
	clk.now = T0;
	tu_assert_ok(db, scrm_db_set_clock(db, tu_clock_fn, &clk));
	return db;
}

/* JSON written with single quotes (none of the tests' texts holds one). */
static const char *jq(const char *fmt, ...) SCRM_PRINTF(1, 2);
static const char *jq(const char *fmt, ...)
{
	static char ring[8][8192];
	static int next;
	char *buf = ring[next++ % 8];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof ring[0], fmt, ap);
	va_end(ap);
	for (char *p = buf; *p; p++)
		if (*p == '\'')
			*p = '"';
	return buf;
}

static int64_t customer(scrm_db *db, const char *phone)
{
	const char *k[] = {"phone"}, *v[] = {phone};
	int64_t c = 0;
	tu_assert_ok(db, scrm_identity_observe(db, "pos", 0, k, v, 1, &c, NULL));
	return c;
}

/* Store an event (type, customer, time, amount or 0, props JSON or NULL). */
static int64_t event_at(scrm_db *db, const char *type, int64_t c, int64_t at, int64_t amount,
			const char *props)
{
	static int seq;
	char json[2048];
	int n = snprintf(json, sizeof json,
			 "{\"key\":\"k%d\",\"type\":\"%s\",\"channel\":\"pos\",\"at\":%lld,\"customer\":%lld",
			 ++seq, type, (long long)at, (long long)c);
	if (amount)
		n += snprintf(json + n, sizeof json - n, ",\"amount\":%lld,\"currency\":\"CNY\"",
			      (long long)amount);
	if (props)
		n += snprintf(json + n, sizeof json - n, ",\"props\":%s", props);
	snprintf(json + n, sizeof json - n, "}");
	int64_t cust = 0, id = 0;
	tu_assert_ok(db, scrm_profile_event_add_json(db, json, &cust, &id));
	return id;
}

static int64_t event(scrm_db *db, const char *type, int64_t c, int64_t amount)
{
	return event_at(db, type, c, clk.now, amount, NULL);
}

static void load(scrm_db *db, const char *json)
{
	tu_assert_ok(db, scrm_rules_load(db, json, NULL));
}

static void config(scrm_db *db, const char *json)
{
	tu_assert_ok(db, scrm_rules_config_set(db, json));
}

static void tick(scrm_db *db, int64_t now)
{
	tu_assert_ok(db, scrm_rules_tick(db, now, NULL));
}

static cJSON *parse(const char *text)
{
	cJSON *j = cJSON_Parse(text);
	ck_assert_msg(j != NULL, "not JSON: %s", text ? text : "(null)");
	return j;
}

/* Trace rows of `rule` with `outcome` (any customer). */
static long long traced(scrm_db *db, const char *rule, const char *outcome)
{
	char sql[256];
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM rule_trace t, json_each(t.decisions) j "
		 "JOIN rule r ON r.rid = j.value ->> 0 WHERE r.id = '%s' AND j.value ->> 2 = '%s'",
		 rule, outcome);
	return tu_sql_int(db, sql);
}

static long long outbox_rows(scrm_db *db, const char *state)
{
	char sql[128];
	if (state)
		snprintf(sql, sizeof sql, "SELECT count(*) FROM outbox WHERE state = '%s'", state);
	else
		snprintf(sql, sizeof sql, "SELECT count(*) FROM outbox");
	return tu_sql_int(db, sql);
}

/* The newest trace record of a rule, parsed (with the condition steps). */
static cJSON *last_trace(scrm_db *db, const char *rule, int64_t c)
{
	char *out = NULL;
	tu_assert_ok(db, scrm_rules_trace_json(db, rule, c, 0, 1, SCRM_RULES_TRACE_STEPS, &out));
	cJSON *j = parse(out);
	scrm_free(out);
	ck_assert_int_eq(cJSON_GetArraySize(j), 1);
	cJSON *first = cJSON_DetachItemFromArray(j, 0);
	cJSON_Delete(j);
	return first;
}

static const char *jstr(const cJSON *j, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	const cJSON *it = j;
	for (char *tok = strtok(buf, "."); tok && it; tok = strtok(NULL, "."))
		it = cJSON_GetObjectItemCaseSensitive(it, tok);
	return cJSON_IsString(it) ? it->valuestring : NULL;
}

static double jnum(const cJSON *j, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	const cJSON *it = j;
	for (char *tok = strtok(buf, "."); tok && it; tok = strtok(NULL, "."))
		it = cJSON_GetObjectItemCaseSensitive(it, tok);
	ck_assert_msg(cJSON_IsNumber(it), "%s is not a number", path);
	return it->valuedouble;
}

static cJSON *take(scrm_db *db, int max, int64_t lease)
{
	char *out = NULL;
	tu_assert_ok(db, scrm_outbox_take(db, max, lease, &out));
	cJSON *j = parse(out);
	scrm_free(out);
	return j;
}

static const char *marketing_cfg = "{'groups':{'marketing':{'max':3,'per':'7d'}}}";

/* ------------------------------------------------------------ absence */

static const char *cart_rule =
	"{'id':'cart','trigger':{'type':'absence','start':'cart_add','missing':'order',"
	"'within':'72h'},'actions':[{'type':'push_message','params':{'text':'come back'}}]}";

START_TEST(test_absence_fires_at_72h)
{
	scrm_db *db = open_db("a.db");
	load(db, jq("%s", cart_rule));
	int64_t c = customer(db, "13800138000");
	int64_t start = event(db, "cart_add", c, 0);
	tick(db, T0 + 72 * HOUR - 1);
	ck_assert_int_eq(outbox_rows(db, NULL), 0);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM rule_wait"), 1);
	tick(db, T0 + 72 * HOUR);
	ck_assert_int_eq(outbox_rows(db, "pending"), 1);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM rule_wait"), 0);
	cJSON *t = last_trace(db, "cart", c);
	ck_assert_str_eq(jstr(t, "outcome"), "fired");
	ck_assert_str_eq(jstr(t, "trigger"), "absence");
	ck_assert_int_eq((int64_t)jnum(t, "event"), start);
	ck_assert_int_eq((int64_t)jnum(t, "at"), T0 + 72 * HOUR);
	cJSON_Delete(t);
	/* Fired once: a later tick does nothing more. */
	tick(db, T0 + 100 * HOUR);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_absence_cancelled_by_order_at_71h)
{
	scrm_db *db = open_db("a.db");
	load(db, jq("%s", cart_rule));
	int64_t c = customer(db, "13800138000"), d = customer(db, "13900139000");
	event(db, "cart_add", c, 0);
	event(db, "cart_add", d, 0);
	/* Many waits of one customer are all cancelled by one order. */
	int64_t e = customer(db, "13700137000");
	for (int i = 0; i < 40; i++)
		event(db, "cart_add", e, 0);
	clk.now = T0 + 71 * HOUR;
	int64_t order = event(db, "order", c, 5000);
	event(db, "order", e, 5000);
	ck_assert_int_eq(traced(db, "cart", "cancelled_by_event"), 41);
	/* d's order comes after the window: it does not cancel (the tick
	 * has not run yet, but the order was not within 72h). */
	clk.now = T0 + 73 * HOUR;
	event(db, "order", d, 5000);
	tick(db, T0 + 80 * HOUR);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	ck_assert_int_eq(traced(db, "cart", "cancelled_by_event"), 41);
	cJSON *t = last_trace(db, "cart", c);
	ck_assert_str_eq(jstr(t, "outcome"), "cancelled_by_event");
	ck_assert_int_eq((int64_t)jnum(t, "detail.by_event"), order);
	ck_assert_int_eq((int64_t)jnum(t, "detail.due"), T0 + 72 * HOUR);
	cJSON_Delete(t);
	t = last_trace(db, "cart", d);
	ck_assert_str_eq(jstr(t, "outcome"), "fired");
	cJSON_Delete(t);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_absence_match)
{
	scrm_db *db = open_db("a.db");
	load(db, jq("{'id':'cart','trigger':{'type':'absence','start':'cart_add','missing':'order',"
		    "'within':'72h','match':'event.props.sku == start.props.sku'},"
		    "'condition':'event.props.sku != null',"
		    "'actions':[{'type':'push_message'}]}"));
	int64_t c = customer(db, "13800138000");
	event_at(db, "cart_add", c, T0, 0, jq("{'sku':'A1'}"));
	event_at(db, "cart_add", c, T0, 0, jq("{'sku':'B2'}"));
	clk.now = T0 + HOUR;
	event_at(db, "order", c, clk.now, 100, jq("{'sku':'A1'}"));
	tick(db, T0 + 72 * HOUR);
	ck_assert_int_eq(traced(db, "cart", "cancelled_by_event"), 1);
	ck_assert_int_eq(traced(db, "cart", "fired"), 1);
	cJSON *t = last_trace(db, "cart", c);
	ck_assert_str_eq(jstr(t, "outcome"), "fired");
	/* The condition read the start event's props: replayed from the event. */
	cJSON *steps = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "condition"), "steps");
	ck_assert_ptr_nonnull(steps);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(steps, 1), "expr"), "event.props.sku");
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(steps, 1), "value"), "B2");
	cJSON_Delete(t);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------ caps */

static const char *two_marketing_rules =
	"[{'id':'a','priority':1,'trigger':{'type':'event','event':'order'},"
	"'actions':[{'type':'send_coupon'}],'limits':{'group':'marketing'}},"
	"{'id':'b','priority':2,'trigger':{'type':'event','event':'order'},"
	"'actions':[{'type':'push_message'}],'limits':{'group':'marketing'}}]";

START_TEST(test_cap_rolling_across_rules)
{
	scrm_db *db = open_db("c.db");
	config(db, jq("%s", marketing_cfg));
	load(db, jq("%s", two_marketing_rules));
	int64_t c = customer(db, "13800138000");
	event(db, "order", c, 100); /* a, b */
	clk.now += DAY;
	event(db, "order", c, 100); /* a fires (3/3), b capped */
	ck_assert_int_eq(outbox_rows(db, NULL), 3);
	ck_assert_int_eq(traced(db, "a", "fired"), 2);
	ck_assert_int_eq(traced(db, "b", "fired"), 1);
	ck_assert_int_eq(traced(db, "b", "cap_reached"), 1);
	cJSON *t = last_trace(db, "b", c);
	ck_assert_str_eq(jstr(t, "detail.cap"), "3/3");
	ck_assert_str_eq(jstr(t, "detail.group"), "marketing");
	ck_assert_str_eq(jstr(t, "detail.window"), "rolling 7d");
	cJSON_Delete(t);
	t = last_trace(db, "a", c);
	ck_assert_str_eq(jstr(t, "detail.cap"), "3/3");
	cJSON_Delete(t);
	/* Just before the first two leave the window: still capped. */
	clk.now = T0 + 7 * DAY - 1;
	event(db, "order", c, 100);
	ck_assert_int_eq(outbox_rows(db, NULL), 3);
	/* Seven days after them: two units free. */
	clk.now = T0 + 7 * DAY;
	event(db, "order", c, 100);
	ck_assert_int_eq(outbox_rows(db, NULL), 5);
	/* Another customer has caps of its own. */
	int64_t d = customer(db, "13900139000");
	event(db, "order", d, 100);
	ck_assert_int_eq(outbox_rows(db, NULL), 7);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_cap_calendar_week_in_customer_tz)
{
	scrm_db *db = open_db("c.db");
	config(db, jq("{'groups':{'weekly':{'max':1,'per':'week'}}}"));
	load(db, jq("{'id':'w','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'push_message'}],'limits':{'group':'weekly'}}"));
	int64_t sh = customer(db, "13800138000"), tk = customer(db, "13900139000");
	tu_assert_ok(db, scrm_profile_set_json(db, tk, jq("{'tz':'Asia/Tokyo'}")));
	/* 2026-01-11 (Sunday) 14:30Z = 22:30 Shanghai, 23:30 Tokyo;
	 * 15:30Z = 23:30 Shanghai (still Sunday), 00:30 Monday in Tokyo. */
	int64_t sun = T0 + 6 * DAY + 14 * HOUR + 30 * MIN;
	clk.now = sun;
	event(db, "view", sh, 0);
	event(db, "view", tk, 0);
	clk.now = sun + HOUR;
	event(db, "view", sh, 0);
	event(db, "view", tk, 0);
	ck_assert_int_eq(traced(db, "w", "fired"), 3);
	ck_assert_int_eq(traced(db, "w", "cap_reached"), 1);
	cJSON *t = last_trace(db, "w", sh);
	ck_assert_str_eq(jstr(t, "outcome"), "cap_reached");
	ck_assert_str_eq(jstr(t, "detail.window"), "calendar week");
	ck_assert_str_eq(jstr(t, "detail.cap"), "1/1");
	cJSON_Delete(t);
	/* Shanghai's week turns at 16:00Z. */
	clk.now = T0 + 7 * DAY - 8 * HOUR;
	event(db, "view", sh, 0);
	ck_assert_int_eq(traced(db, "w", "fired"), 4);
	scrm_db_close(db);
}
END_TEST

/* Local midnights, not 24-hour steps: in London 2026-03-29 lasts 23 hours
 * (00:00Z to 23:00Z) and 2026-10-25 25 hours (2026-10-24 23:00Z to
 * 2026-10-26 00:00Z). Instants checked with Python's zoneinfo. */
START_TEST(test_cap_calendar_day_across_dst)
{
	scrm_db *db = open_db("c.db");
	config(db, jq("{'groups':{'daily':{'max':1,'per':'day','on_cap':'defer'}}}"));
	load(db, jq("{'id':'d','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'push_message'}],'limits':{'group':'daily'}}"));
	int64_t c = customer(db, "13800138000");
	tu_assert_ok(db, scrm_profile_set_json(db, c, jq("{'tz':'Europe/London'}")));
	int64_t mar29 = INT64_C(1774742400000), mar30 = INT64_C(1774825200000);
	ck_assert_int_eq(mar30 - mar29, 23 * HOUR);
	clk.now = mar29 + 30 * MIN;
	event(db, "view", c, 0);
	ck_assert_int_eq(traced(db, "d", "fired"), 1);
	clk.now = mar29 + 22 * HOUR + 30 * MIN; /* 23:30 BST, still the 29th */
	event(db, "view", c, 0);
	cJSON *t = last_trace(db, "d", c);
	ck_assert_str_eq(jstr(t, "outcome"), "cap_deferred");
	ck_assert_int_eq((int64_t)jnum(t, "detail.until"), mar30);
	cJSON_Delete(t);
	clk.now = mar29 + 23 * HOUR + 10 * MIN; /* 00:10 BST on the 30th: a new day */
	event(db, "view", c, 0);
	ck_assert_int_eq(traced(db, "d", "fired"), 2);

	int64_t oct25 = INT64_C(1792882800000), oct26 = INT64_C(1792972800000);
	ck_assert_int_eq(oct26 - oct25, 25 * HOUR);
	clk.now = oct25 + 30 * MIN; /* 00:30 BST on the 25th */
	event(db, "view", c, 0);
	ck_assert_int_eq(traced(db, "d", "fired"), 3);
	clk.now = oct26 - 30 * MIN; /* 23:30 GMT, still the 25th */
	event(db, "view", c, 0);
	t = last_trace(db, "d", c);
	ck_assert_str_eq(jstr(t, "outcome"), "cap_deferred");
	ck_assert_int_eq((int64_t)jnum(t, "detail.until"), oct26);
	cJSON_Delete(t);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_cap_defer_then_tick)
{
	scrm_db *db = open_db("c.db");
	config(db, jq("{'groups':{'marketing':{'max':1,'per':'1d','on_cap':'defer'}}}"));
	load(db, jq("{'id':'a','trigger':{'type':'event','event':'order'},"
		    "'actions':[{'type':'send_coupon','params':{'n':1}}],'limits':{'group':'marketing'}}"));
	int64_t c = customer(db, "13800138000");
	event(db, "order", c, 100);
	clk.now += HOUR;
	event(db, "order", c, 100);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	cJSON *t = last_trace(db, "a", c);
	ck_assert_str_eq(jstr(t, "outcome"), "cap_deferred");
	ck_assert_int_eq((int64_t)jnum(t, "detail.until"), T0 + DAY);
	ck_assert_str_eq(jstr(t, "detail.on_cap"), "defer");
	cJSON_Delete(t);
	tick(db, T0 + DAY - 1);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	char *sum = NULL;
	tu_assert_ok(db, scrm_rules_tick(db, T0 + DAY, &sum));
	cJSON *s = parse(sum);
	scrm_free(sum);
	ck_assert_int_eq((int)jnum(s, "deferred"), 1);
	cJSON_Delete(s);
	ck_assert_int_eq(outbox_rows(db, NULL), 2);
	t = last_trace(db, "a", c);
	ck_assert_str_eq(jstr(t, "outcome"), "fired");
	ck_assert(jnum(t, "detail.deferred") > 0);
	cJSON_Delete(t);
	/* The delivered deferral counts for the cap: a third is deferred. */
	clk.now = T0 + DAY + MIN;
	event(db, "order", c, 100);
	ck_assert_int_eq(traced(db, "a", "cap_deferred"), 2);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM rule_deferred"), 1);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------ cooldown, once */

START_TEST(test_cooldown)
{
	scrm_db *db = open_db("l.db");
	load(db, jq("{'id':'cd','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'push_message'}],'limits':{'cooldown':'1d'}}"));
	int64_t c = customer(db, "13800138000");
	event(db, "view", c, 0);
	clk.now += DAY - 1;
	event(db, "view", c, 0);
	cJSON *t = last_trace(db, "cd", c);
	ck_assert_str_eq(jstr(t, "outcome"), "cooldown");
	ck_assert_int_eq((int64_t)jnum(t, "detail.until"), T0 + DAY);
	cJSON_Delete(t);
	clk.now = T0 + DAY;
	event(db, "view", c, 0);
	ck_assert_int_eq(traced(db, "cd", "fired"), 2);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_once_across_versions)
{
	scrm_db *db = open_db("l.db");
	load(db, jq("{'id':'welcome','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'send_coupon'}],'limits':{'once':true}}"));
	int64_t c = customer(db, "13800138000");
	event(db, "view", c, 0);
	event(db, "view", c, 0);
	ck_assert_int_eq(traced(db, "welcome", "once"), 1);
	load(db, jq("{'id':'welcome','name':'Welcome','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'send_coupon'}],'limits':{'once':true}}"));
	event(db, "view", c, 0);
	ck_assert_int_eq(traced(db, "welcome", "once"), 2);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------ quiet hours */

START_TEST(test_quiet_hours_defer_to_window_end)
{
	scrm_db *db = open_db("q.db");
	config(db, jq("{'quiet_hours':{'start':'21:00','end':'09:00'}}"));
	load(db, jq("{'id':'q','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'push_message'}],'limits':{'quiet_hours':true}}"));
	int64_t c = customer(db, "13800138000");
	/* 15:00Z = 23:00 in Shanghai. */
	clk.now = T0 + 15 * HOUR;
	event(db, "view", c, 0);
	ck_assert_int_eq(outbox_rows(db, NULL), 0);
	cJSON *t = last_trace(db, "q", c);
	ck_assert_str_eq(jstr(t, "outcome"), "quiet_hours_deferred");
	int64_t until = T0 + DAY + 1 * HOUR; /* 09:00 Shanghai next day */
	ck_assert_int_eq((int64_t)jnum(t, "detail.until"), until);
	ck_assert_str_eq(jstr(t, "detail.tz"), "Asia/Shanghai");
	cJSON_Delete(t);
	tick(db, until - 1);
	ck_assert_int_eq(outbox_rows(db, NULL), 0);
	tick(db, until);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	ck_assert_int_eq(traced(db, "q", "fired"), 1);
	/* Outside the window (12:00 local): at once. */
	clk.now = T0 + DAY + 4 * HOUR;
	event(db, "view", c, 0);
	ck_assert_int_eq(outbox_rows(db, NULL), 2);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_quiet_hours_own_window_and_tz)
{
	scrm_db *db = open_db("q.db");
	load(db, jq("{'id':'q','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'push_message'}],"
		    "'limits':{'quiet_hours':{'start':'08:00','end':'10:00'}}}"));
	int64_t c = customer(db, "13800138000");
	tu_assert_ok(db, scrm_profile_set_json(db, c, jq("{'tz':'UTC'}")));
	/* T0 is 00:00 UTC: outside 08-10 for this customer. */
	event(db, "view", c, 0);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	clk.now = T0 + 9 * HOUR;
	event(db, "view", c, 0);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	cJSON *t = last_trace(db, "q", c);
	ck_assert_int_eq((int64_t)jnum(t, "detail.until"), T0 + 10 * HOUR);
	ck_assert_str_eq(jstr(t, "detail.tz"), "UTC");
	cJSON_Delete(t);
	scrm_db_close(db);
}
END_TEST

/* The window is wall-clock time: across the change to summer time in
 * London it ends at 09:00 BST (08:00Z), back in winter at 09:00 GMT. An end
 * that the clocks repeat is the occurrence still ahead. */
START_TEST(test_quiet_hours_across_dst)
{
	scrm_db *db = open_db("q.db");
	config(db, jq("{'quiet_hours':{'start':'21:00','end':'09:00'}}"));
	load(db, jq("[{'id':'q','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'push_message'}],'limits':{'quiet_hours':true}},"
		    "{'id':'q2','trigger':{'type':'event','event':'tap'},"
		    "'actions':[{'type':'push_message'}],"
		    "'limits':{'quiet_hours':{'start':'00:00','end':'01:30'}}}]"));
	int64_t c = customer(db, "13800138000");
	tu_assert_ok(db, scrm_profile_set_json(db, c, jq("{'tz':'Europe/London'}")));
	/* Saturday 2026-03-28 22:00 GMT; the clocks go forward overnight. */
	clk.now = INT64_C(1774735200000);
	event(db, "view", c, 0);
	cJSON *t = last_trace(db, "q", c);
	ck_assert_str_eq(jstr(t, "outcome"), "quiet_hours_deferred");
	int64_t until = INT64_C(1774771200000); /* 2026-03-29T08:00Z = 09:00 BST */
	ck_assert_int_eq((int64_t)jnum(t, "detail.until"), until);
	ck_assert_str_eq(jstr(t, "detail.tz"), "Europe/London");
	cJSON_Delete(t);
	tick(db, until - 1);
	ck_assert_int_eq(outbox_rows(db, NULL), 0);
	tick(db, until);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	/* 08:30Z on the 29th is 09:30 BST: outside. */
	clk.now = until + 30 * MIN;
	event(db, "view", c, 0);
	ck_assert_int_eq(outbox_rows(db, NULL), 2);
	/* Saturday 2026-10-24 23:00 BST (22:00Z); back to GMT overnight. */
	clk.now = INT64_C(1792879200000) - HOUR;
	event(db, "view", c, 0);
	t = last_trace(db, "q", c);
	ck_assert_str_eq(jstr(t, "outcome"), "quiet_hours_deferred");
	ck_assert_int_eq((int64_t)jnum(t, "detail.until"), INT64_C(1792918800000)); /* 09:00Z */
	cJSON_Delete(t);
	/* 2026-10-25 01:00-02:00 BST is repeated as 01:00-02:00 GMT. 00:15Z is
	 * 01:15 BST: the window ends at the first 01:30 (00:30Z); 01:15Z is
	 * 01:15 GMT: at the second (01:30Z). */
	clk.now = INT64_C(1792887300000); /* 00:15Z */
	event(db, "tap", c, 0);
	t = last_trace(db, "q2", c);
	ck_assert_str_eq(jstr(t, "outcome"), "quiet_hours_deferred");
	ck_assert_int_eq((int64_t)jnum(t, "detail.until"), INT64_C(1792888200000));
	cJSON_Delete(t);
	clk.now = INT64_C(1792890900000); /* 01:15Z */
	event(db, "tap", c, 0);
	t = last_trace(db, "q2", c);
	ck_assert_str_eq(jstr(t, "outcome"), "quiet_hours_deferred");
	ck_assert_int_eq((int64_t)jnum(t, "detail.until"), INT64_C(1792891800000));
	cJSON_Delete(t);
	scrm_db_close(db);
}
END_TEST

/* default_tz may have daylight saving time too; a POSIX rule such as
 * "UTC+8" (eight hours west) is refused rather than misread. */
START_TEST(test_default_tz_with_dst)
{
	scrm_db *db = open_db("q.db");
	tu_assert_rc(db, scrm_rules_config_set(db, jq("{'default_tz':'UTC+8'}")), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "default_tz must be a known time zone");
	config(db, jq("{'default_tz':'America/Los_Angeles',"
		      "'quiet_hours':{'start':'21:00','end':'09:00'}}"));
	char *out = NULL;
	tu_assert_ok(db, scrm_rules_config_json(db, &out));
	tu_assert_contains(out, "\"default_tz\":\"America/Los_Angeles\"");
	scrm_free(out);
	load(db, jq("{'id':'q','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'push_message'}],'limits':{'quiet_hours':true}}"));
	int64_t c = customer(db, "13800138000");
	/* 2026-07-01 05:00Z = 22:00 PDT on 30 June; the window ends at 09:00
	 * PDT = 16:00Z (17:00Z in winter). */
	clk.now = INT64_C(1782882000000);
	event(db, "view", c, 0);
	cJSON *t = last_trace(db, "q", c);
	ck_assert_str_eq(jstr(t, "outcome"), "quiet_hours_deferred");
	ck_assert_int_eq((int64_t)jnum(t, "detail.until"), INT64_C(1782921600000));
	ck_assert_str_eq(jstr(t, "detail.tz"), "America/Los_Angeles");
	cJSON_Delete(t);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------ consent */

START_TEST(test_consent_blocks_marketing)
{
	scrm_db *db = open_db("m.db");
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'seen'}")));
	load(db, jq("{'id':'promo','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'tag.add','tag':'seen'},"
		    "{'type':'send_coupon','consent':'marketing'}]}"));
	int64_t c = customer(db, "13800138000");
	event(db, "view", c, 0);
	ck_assert_int_eq(outbox_rows(db, NULL), 0);
	cJSON *t = last_trace(db, "promo", c);
	ck_assert_str_eq(jstr(t, "outcome"), "no_consent");
	ck_assert_str_eq(jstr(t, "detail.purpose"), "marketing");
	cJSON_Delete(t);
	int has = 1;
	tu_assert_ok(db, scrm_tag_has(db, c, "seen", &has));
	ck_assert_int_eq(has, 0); /* the whole firing stopped */
	tu_assert_ok(db, scrm_profile_consent_set(db, c, "marketing", 1, 0, "wecom"));
	event(db, "view", c, 0);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	tu_assert_ok(db, scrm_tag_has(db, c, "seen", &has));
	ck_assert_int_eq(has, 1);
	/* Withdrawn again: blocked again. Rule-level consent works alike. */
	clk.now += 1;
	tu_assert_ok(db, scrm_profile_consent_set(db, c, "marketing", 0, 0, "wecom"));
	load(db, jq("{'id':'promo2','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'push_message'}],'limits':{'consent':'marketing'}}"));
	event(db, "view", c, 0);
	ck_assert_int_eq(traced(db, "promo", "no_consent"), 2);
	ck_assert_int_eq(traced(db, "promo2", "no_consent"), 1);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------ dates */

START_TEST(test_birthday_in_customer_tz)
{
	scrm_db *db = open_db("d.db");
	int64_t tk = customer(db, "13800138000"), sh = customer(db, "13900139000");
	tu_assert_ok(db, scrm_profile_set_json(db, tk, jq("{'birthday':'1990-05-01','tz':'Asia/Tokyo'}")));
	load(db, jq("{'id':'bday','trigger':{'type':'date','attribute':'birthday','at':'10:00'},"
		    "'actions':[{'type':'send_coupon','params':{'coupon':'BDAY'}}]}"));
	/* Set after the rule: the attribute trigger schedules it too. */
	tu_assert_ok(db, scrm_profile_set_json(db, sh, jq("{'birthday':'1985-05-01'}")));
	char *sum = NULL;
	tu_assert_ok(db, scrm_rules_tick(db, T0 + MIN, &sum));
	cJSON *s = parse(sum);
	scrm_free(sum);
	ck_assert_int_eq((int)jnum(s, "scheduled"), 2);
	cJSON_Delete(s);
	int64_t may1 = INT64_C(1777593600000); /* 2026-05-01T00:00:00Z */
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM rule_date WHERE due IS NOT NULL"), 2);
	/* 10:00 Tokyo = 01:00Z; 10:00 Shanghai = 02:00Z. */
	tick(db, may1 + HOUR - 1);
	ck_assert_int_eq(outbox_rows(db, NULL), 0);
	tick(db, may1 + HOUR);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	cJSON *t = last_trace(db, "bday", tk);
	ck_assert_str_eq(jstr(t, "trigger"), "date");
	ck_assert_str_eq(jstr(t, "instance"), "date:2026-05-01");
	cJSON_Delete(t);
	tick(db, may1 + 2 * HOUR);
	ck_assert_int_eq(outbox_rows(db, NULL), 2);
	/* Next year's occurrence is scheduled; nothing fires twice. */
	tick(db, may1 + 3 * HOUR);
	ck_assert_int_eq(outbox_rows(db, NULL), 2);
	char sql[160];
	snprintf(sql, sizeof sql, "SELECT due FROM rule_date WHERE customer = %lld", (long long)tk);
	ck_assert_int_eq(tu_sql_int(db, sql), may1 + 365 * DAY + HOUR);
	/* A changed tz moves the schedule but never repeats this year's. */
	tu_assert_ok(db, scrm_profile_set_json(db, tk, jq("{'tz':'America/Bogota'}")));
	tick(db, may1 + 4 * HOUR);
	ck_assert_int_eq(outbox_rows(db, NULL), 2);
	ck_assert_int_eq(tu_sql_int(db, sql), may1 + 365 * DAY + 15 * HOUR);
	scrm_db_close(db);
}
END_TEST

static int64_t date_due(scrm_db *db, const char *rule, int64_t c)
{
	char sql[200];
	snprintf(sql, sizeof sql,
		 "SELECT d.due FROM rule_date d JOIN rule r ON r.rid = d.rid "
		 "WHERE r.id = '%s' AND d.customer = %lld",
		 rule, (long long)c);
	return tu_sql_int(db, sql);
}

/* 10:00 in New York is 14:00Z in summer (EDT) and 15:00Z in winter (EST);
 * 02:30 on the day the clocks skip it fires at 03:30 EDT, 01:30 on the day
 * it happens twice at the first (EDT). Instants checked with zoneinfo. */
START_TEST(test_date_in_new_york_summer_and_winter)
{
	scrm_db *db = open_db("d.db");
	int64_t su = customer(db, "13800138000"), wi = customer(db, "13900139000");
	tu_assert_ok(db, scrm_profile_set_json(
				 db, su, jq("{'birthday':'1990-07-04','tz':'America/New_York',"
					    "'spring':'2026-03-08','fall':'2026-11-01'}")));
	tu_assert_ok(db, scrm_profile_set_json(
				 db, wi, jq("{'birthday':'1990-12-25','tz':'America/New_York'}")));
	load(db, jq("[{'id':'bday','trigger':{'type':'date','attribute':'birthday','at':'10:00'},"
		    "'actions':[{'type':'send_coupon','params':{'coupon':'BDAY'}}]},"
		    "{'id':'spring','trigger':{'type':'date','attribute':'spring','at':'02:30',"
		    "'yearly':false},'actions':[{'type':'push_message'}]},"
		    "{'id':'fall','trigger':{'type':'date','attribute':'fall','at':'01:30',"
		    "'yearly':false},'actions':[{'type':'push_message'}]}]"));
	tick(db, T0 + MIN);
	int64_t jul4 = INT64_C(1783173600000), dec25 = INT64_C(1798210800000);
	ck_assert_int_eq(date_due(db, "bday", su), jul4);
	ck_assert_int_eq(date_due(db, "bday", wi), dec25);
	ck_assert_int_eq(date_due(db, "spring", su), INT64_C(1772955000000)); /* 07:30Z */
	ck_assert_int_eq(date_due(db, "fall", su), INT64_C(1793511000000));   /* 05:30Z */
	tick(db, INT64_C(1772955000000) - 1);
	ck_assert_int_eq(outbox_rows(db, NULL), 0);
	tick(db, INT64_C(1772955000000));
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	tick(db, jul4 - 1);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	tick(db, jul4);
	ck_assert_int_eq(outbox_rows(db, NULL), 2);
	cJSON *t = last_trace(db, "bday", su);
	ck_assert_str_eq(jstr(t, "instance"), "date:2026-07-04");
	cJSON_Delete(t);
	ck_assert_int_eq(date_due(db, "bday", su), INT64_C(1814709600000)); /* 2027-07-04 14:00Z */
	tick(db, INT64_C(1793511000000));
	ck_assert_int_eq(outbox_rows(db, NULL), 3);
	tick(db, dec25 - 1);
	ck_assert_int_eq(outbox_rows(db, NULL), 3);
	tick(db, dec25);
	ck_assert_int_eq(outbox_rows(db, NULL), 4);
	ck_assert_int_eq(date_due(db, "bday", wi), INT64_C(1829746800000)); /* 2027-12-25 15:00Z */
	scrm_db_close(db);
}
END_TEST

START_TEST(test_date_days_before_once)
{
	scrm_db *db = open_db("d.db");
	int64_t c = customer(db, "13800138000");
	tu_assert_ok(db, scrm_profile_set_json(db, c, jq("{'points_expire':'2026-01-20'}")));
	load(db, jq("{'id':'expiry','trigger':{'type':'date','attribute':'points_expire',"
		    "'days_before':3,'at':'09:30','yearly':false},"
		    "'condition':'trigger.instance == \\'date:2026-01-20\\'',"
		    "'actions':[{'type':'push_message'}]}"));
	tick(db, T0);
	/* 2026-01-17 09:30 Shanghai = 01:30Z. */
	int64_t due = T0 + 12 * DAY + HOUR + 30 * MIN;
	tick(db, due - 1);
	ck_assert_int_eq(outbox_rows(db, NULL), 0);
	tick(db, due);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM rule_date WHERE due IS NOT NULL"), 0);
	tick(db, due + 400 * DAY);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------ priority, versions */

START_TEST(test_priority_order)
{
	scrm_db *db = open_db("p.db");
	config(db, jq("{'groups':{'one':{'max':1,'per':'1d'}}}"));
	/* Loaded in the other order; priority decides. */
	load(db, jq("[{'id':'z_low','priority':50,'trigger':{'type':'event','event':'order'},"
		    "'actions':[{'type':'push_message'}],'limits':{'group':'one'}},"
		    "{'id':'a_high','priority':5,'trigger':{'type':'event','event':'order'},"
		    "'actions':[{'type':'send_coupon'}],'limits':{'group':'one'}}]"));
	int64_t c = customer(db, "13800138000");
	event(db, "order", c, 100);
	ck_assert_int_eq(traced(db, "a_high", "fired"), 1);
	ck_assert_int_eq(traced(db, "z_low", "cap_reached"), 1);
	cJSON *a = take(db, 10, 0);
	ck_assert_int_eq(cJSON_GetArraySize(a), 1);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(a, 0), "action"), "send_coupon");
	cJSON_Delete(a);
	/* Swap priorities: the other one wins. */
	load(db, jq("{'id':'z_low','priority':1,'trigger':{'type':'event','event':'order'},"
		    "'actions':[{'type':'push_message'}],'limits':{'group':'one'}}"));
	clk.now += DAY;
	event(db, "order", c, 100);
	ck_assert_int_eq(traced(db, "z_low", "fired"), 1);
	ck_assert_int_eq(traced(db, "a_high", "cap_reached"), 1);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_versioning)
{
	scrm_db *db = open_db("v.db");
	const char *v1 = "{'id':'r','trigger':{'type':'event','event':'order'},"
			 "'condition':'event.amount > 100','actions':[{'type':'send_coupon'}]}";
	char *rep = NULL;
	tu_assert_ok(db, scrm_rules_load(db, jq("%s", v1), &rep));
	cJSON *j = parse(rep);
	scrm_free(rep);
	ck_assert_int_eq((int)jnum(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "rules"), 0), "version"), 1);
	cJSON_Delete(j);
	/* The same rule with members reordered and spaced: same version. */
	tu_assert_ok(db, scrm_rules_load(db, jq("{ 'actions':[{'type':'send_coupon'}], "
						"'condition':'event.amount > 100', 'id':'r', "
						"'trigger':{'event':'order','type':'event'}, 'enabled':true }"),
					 &rep));
	j = parse(rep);
	scrm_free(rep);
	cJSON *r0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "rules"), 0);
	ck_assert_int_eq((int)jnum(r0, "version"), 1);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r0, "changed")));
	cJSON_Delete(j);
	int64_t c = customer(db, "13800138000");
	event(db, "order", c, 200);
	load(db, jq("{'id':'r','trigger':{'type':'event','event':'order'},"
		    "'condition':'event.amount > 1000','actions':[{'type':'send_coupon'}]}"));
	event(db, "order", c, 200);
	char *out = NULL;
	tu_assert_ok(db, scrm_rules_get_json(db, "r", 0, &out));
	j = parse(out);
	scrm_free(out);
	ck_assert_int_eq((int)jnum(j, "version"), 2);
	ck_assert_str_eq(jstr(j, "condition"), "event.amount > 1000");
	cJSON_Delete(j);
	tu_assert_ok(db, scrm_rules_get_json(db, "r", 1, &out));
	j = parse(out);
	scrm_free(out);
	ck_assert_int_eq((int)jnum(j, "version"), 1);
	ck_assert_int_eq((int)jnum(j, "current_version"), 2);
	ck_assert_str_eq(jstr(j, "condition"), "event.amount > 100");
	cJSON_Delete(j);
	tu_assert_rc(db, scrm_rules_get_json(db, "r", 3, &out), SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(db), "no version 3");
	/* The trace names the version that decided, and replays its condition. */
	tu_assert_ok(db, scrm_rules_trace_json(db, "r", 0, 0, 0, SCRM_RULES_TRACE_STEPS, &out));
	j = parse(out);
	scrm_free(out);
	ck_assert_int_eq(cJSON_GetArraySize(j), 2);
	ck_assert_int_eq((int)jnum(cJSON_GetArrayItem(j, 0), "version"), 2);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(j, 0), "outcome"), "condition_false");
	ck_assert_int_eq((int)jnum(cJSON_GetArrayItem(j, 1), "version"), 1);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(j, 1), "outcome"), "fired");
	cJSON *cond = cJSON_GetObjectItem(cJSON_GetArrayItem(j, 1), "condition");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cond, "value")));
	cJSON *step = cJSON_GetArrayItem(cJSON_GetObjectItem(cond, "steps"), 1);
	ck_assert_str_eq(jstr(step, "expr"), "event.amount");
	ck_assert_int_eq((int)jnum(step, "value"), 200);
	cJSON_Delete(j);
	/* Disable / enable keep the version; removal keeps the numbering. */
	tu_assert_ok(db, scrm_rules_enable(db, "r", 0));
	event(db, "order", c, 5000);
	ck_assert_int_eq(traced(db, "r", "fired"), 1);
	tu_assert_ok(db, scrm_rules_enable(db, "r", 1));
	event(db, "order", c, 5000);
	ck_assert_int_eq(traced(db, "r", "fired"), 2);
	tu_assert_ok(db, scrm_rules_remove(db, "r"));
	tu_assert_rc(db, scrm_rules_remove(db, "r"), SCRM_NOTFOUND);
	tu_assert_ok(db, scrm_rules_load(db, jq("%s", v1), &rep));
	j = parse(rep);
	scrm_free(rep);
	ck_assert_int_eq((int)jnum(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "rules"), 0), "version"), 3);
	cJSON_Delete(j);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------ conditions */

START_TEST(test_condition_inputs_and_errors)
{
	scrm_db *db = open_db("e.db");
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'vip'}")));
	load(db, jq("[{'id':'gold','trigger':{'type':'event','event':'order'},"
		    "'condition':'profile.attributes.level == \\'gold\\' && count(\\'order\\', 30d) >= 2 "
		    "&& !has_tag(\\'vip\\')',"
		    "'actions':[{'type':'tag.add','tag':'vip'},{'type':'profile.set','attributes':{'vip_since':'x'}}]},"
		    "{'id':'bad','trigger':{'type':'event','event':'order'},"
		    "'condition':'event.amount + \\'x\\' == 1','actions':[{'type':'push_message'}]},"
		    "{'id':'spend','trigger':{'type':'event','event':'order'},"
		    "'condition':'profile.figures.orders >= 2 && event.props.store == \\'SH-01\\'',"
		    "'actions':[{'type':'push_message'}]}]"));
	int64_t c = customer(db, "13800138000");
	tu_assert_ok(db, scrm_profile_set_json(db, c, jq("{'level':'gold'}")));
	event_at(db, "order", c, clk.now, 100, jq("{'store':'SH-01'}"));
	ck_assert_int_eq(traced(db, "gold", "condition_false"), 1);
	ck_assert_int_eq(traced(db, "bad", "error"), 1);
	event_at(db, "order", c, clk.now, 100, jq("{'store':'SH-01'}"));
	ck_assert_int_eq(traced(db, "gold", "fired"), 1);
	ck_assert_int_eq(traced(db, "spend", "fired"), 1);
	int has = 0;
	tu_assert_ok(db, scrm_tag_has(db, c, "vip", &has));
	ck_assert_int_eq(has, 1);
	char *v = NULL;
	tu_assert_ok(db, scrm_profile_get(db, c, "vip_since", &v));
	ck_assert_str_eq(v, "\"x\"");
	scrm_free(v);
	cJSON *t = last_trace(db, "gold", c);
	ck_assert_str_eq(jstr(t, "inputs.profile.attributes.level"), "gold");
	cJSON *calls = cJSON_GetObjectItem(cJSON_GetObjectItem(t, "inputs"), "calls");
	ck_assert_int_eq(cJSON_GetArraySize(calls), 2);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "condition"), "value")));
	cJSON_Delete(t);
	t = last_trace(db, "spend", c);
	ck_assert_int_eq((int)jnum(t, "inputs.profile.figures.orders"), 2);
	ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "inputs"), "attributes"));
	cJSON_Delete(t);
	t = last_trace(db, "bad", c);
	ck_assert_str_eq(jstr(t, "detail.code"), "SCRM_EVAL");
	tu_assert_contains(jstr(t, "detail.error"), "1:");
	cJSON_Delete(t);
	/* Profile paths are read only when the evaluation gets to them. */
	load(db, jq("{'id':'lazy','trigger':{'type':'event','event':'order'},"
		    "'condition':'event.amount > 100000 && profile.attributes.level == \\'gold\\'',"
		    "'actions':[{'type':'push_message'}]}"));
	event(db, "order", c, 100);
	t = last_trace(db, "lazy", c);
	ck_assert_str_eq(jstr(t, "outcome"), "condition_false");
	ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "inputs"), "profile"));
	cJSON_Delete(t);
	event(db, "order", c, 200000);
	t = last_trace(db, "lazy", c);
	ck_assert_str_eq(jstr(t, "outcome"), "fired");
	ck_assert_str_eq(jstr(t, "inputs.profile.attributes.level"), "gold");
	cJSON_Delete(t);
	/* The gold rule does not fire again: has_tag is now true. */
	event(db, "order", c, 100);
	ck_assert_int_eq(traced(db, "gold", "fired"), 1);
	/* condition_false tracing can be turned off. */
	config(db, jq("{'trace':{'condition_false':false}}"));
	long long before = traced(db, "gold", "condition_false");
	event(db, "order", c, 100);
	ck_assert_int_eq(traced(db, "gold", "condition_false"), before);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_max_age_skips_history)
{
	scrm_db *db = open_db("e.db");
	load(db, jq("{'id':'fresh','trigger':{'type':'event','event':'order','max_age':'1d'},"
		    "'actions':[{'type':'push_message'}]}"));
	int64_t c = customer(db, "13800138000");
	event_at(db, "order", c, T0 - 2 * DAY, 100, NULL);
	ck_assert_int_eq(outbox_rows(db, NULL), 0);
	event_at(db, "order", c, T0 - HOUR, 100, NULL);
	ck_assert_int_eq(outbox_rows(db, NULL), 1);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------ outbox */

START_TEST(test_outbox_protocol)
{
	scrm_db *db = open_db("o.db");
	config(db, jq("{'outbox':{'lease':'1m','max_attempts':3,'backoff':'10s','backoff_max':'15s'}}"));
	load(db, jq("{'id':'r','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'send_coupon','params':{'coupon':'C1'}}]}"));
	int64_t c = customer(db, "13800138000");
	event(db, "view", c, 0);
	cJSON *a = take(db, 10, 0);
	ck_assert_int_eq(cJSON_GetArraySize(a), 1);
	cJSON *x = cJSON_GetArrayItem(a, 0);
	int64_t id = (int64_t)jnum(x, "id");
	char key[64];
	snprintf(key, sizeof key, "%s", jstr(x, "key"));
	ck_assert_int_eq(strlen(key), 32);
	ck_assert_str_eq(jstr(x, "action"), "send_coupon");
	ck_assert_str_eq(jstr(x, "params.coupon"), "C1");
	ck_assert_str_eq(jstr(x, "rule"), "r");
	ck_assert_str_eq(jstr(x, "state"), "leased");
	ck_assert_int_eq((int)jnum(x, "attempt"), 1);
	ck_assert_int_eq((int64_t)jnum(x, "lease_until"), T0 + MIN);
	ck_assert_int_eq((int64_t)jnum(x, "customer"), c);
	cJSON_Delete(a);
	/* Leased: nobody else gets it. */
	a = take(db, 10, 0);
	ck_assert_int_eq(cJSON_GetArraySize(a), 0);
	cJSON_Delete(a);
	/* The lease runs out: offered again, same key. */
	clk.now = T0 + MIN;
	a = take(db, 10, 0);
	ck_assert_int_eq(cJSON_GetArraySize(a), 1);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(a, 0), "key"), key);
	ck_assert_int_eq((int)jnum(cJSON_GetArrayItem(a, 0), "attempt"), 2);
	cJSON_Delete(a);
	/* Fail: retried after backoff 10s * 2^(2-1) = 20s, capped at 15s. */
	tu_assert_ok(db, scrm_outbox_fail(db, id, "gateway timeout", 0));
	char *out = NULL;
	tu_assert_ok(db, scrm_outbox_list_json(db, "failed", 0, 0, &out));
	a = parse(out);
	scrm_free(out);
	ck_assert_int_eq(cJSON_GetArraySize(a), 1);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(a, 0), "last_error"), "gateway timeout");
	ck_assert_int_eq((int64_t)jnum(cJSON_GetArrayItem(a, 0), "next_at"), T0 + MIN + 15000);
	cJSON_Delete(a);
	clk.now = T0 + MIN + 14999;
	a = take(db, 10, 0);
	ck_assert_int_eq(cJSON_GetArraySize(a), 0);
	cJSON_Delete(a);
	clk.now = T0 + MIN + 15000;
	a = take(db, 10, 0);
	ck_assert_int_eq(cJSON_GetArraySize(a), 1);
	ck_assert_int_eq((int)jnum(cJSON_GetArrayItem(a, 0), "attempt"), 3);
	cJSON_Delete(a);
	/* Third attempt fails: max_attempts reached, dead. */
	tu_assert_ok(db, scrm_outbox_fail(db, id, "still down", 0));
	ck_assert_int_eq(outbox_rows(db, "dead"), 1);
	tu_assert_rc(db, scrm_outbox_ack(db, id), SCRM_STATE);
	tu_assert_contains(scrm_errmsg(db), "given up after 3 attempts");
	tu_assert_rc(db, scrm_outbox_fail(db, id, NULL, 0), SCRM_STATE);
	tu_assert_ok(db, scrm_outbox_retry(db, id));
	a = take(db, 10, 0);
	ck_assert_int_eq(cJSON_GetArraySize(a), 1);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(a, 0), "key"), key);
	cJSON_Delete(a);
	tu_assert_ok(db, scrm_outbox_ack(db, id));
	tu_assert_ok(db, scrm_outbox_ack(db, id)); /* again: harmless */
	ck_assert_int_eq(outbox_rows(db, "done"), 1);
	tu_assert_rc(db, scrm_outbox_retry(db, id), SCRM_STATE);
	tu_assert_rc(db, scrm_outbox_ack(db, 999), SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(db), "no outbox action 999");
	/* Permanent failure is dead at once; a lease that keeps running out
	 * dies after max_attempts takes. */
	event(db, "view", c, 0);
	event(db, "view", c, 0);
	a = take(db, 1, 0);
	int64_t id2 = (int64_t)jnum(cJSON_GetArrayItem(a, 0), "id");
	cJSON_Delete(a);
	tu_assert_ok(db, scrm_outbox_fail(db, id2, "invalid coupon", 1));
	ck_assert_int_eq(outbox_rows(db, "dead"), 1);
	for (int i = 0; i < 3; i++) {
		a = take(db, 10, 0);
		ck_assert_int_eq(cJSON_GetArraySize(a), 1);
		cJSON_Delete(a);
		clk.now += MIN;
	}
	a = take(db, 10, 0);
	ck_assert_int_eq(cJSON_GetArraySize(a), 0);
	cJSON_Delete(a);
	ck_assert_int_eq(outbox_rows(db, "dead"), 2);
	tu_assert_ok(db, scrm_outbox_list_json(db, NULL, c, 1, &out));
	a = parse(out);
	scrm_free(out);
	ck_assert_int_eq(cJSON_GetArraySize(a), 1);
	cJSON_Delete(a);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_outbox_same_key_for_same_decision)
{
	/* The key hashes rule id, version, customer, trigger instance and
	 * action index: a second action of one firing differs, a replayed
	 * decision (deferral delivered later) keeps its key. */
	scrm_db *db = open_db("o.db");
	config(db, jq("{'quiet_hours':{'start':'00:00','end':'12:00'}}"));
	load(db, jq("{'id':'r','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'a1'},{'type':'a2'}],'limits':{'quiet_hours':true}}"));
	int64_t c = customer(db, "13800138000");
	event(db, "view", c, 0);
	ck_assert_int_eq(outbox_rows(db, NULL), 0);
	tick(db, T0 + 4 * HOUR); /* 12:00 Shanghai */
	ck_assert_int_eq(outbox_rows(db, NULL), 2);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(DISTINCT ikey) FROM outbox"), 2);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_outbox_crash_redelivery)
{
	const char *path = tu_path("crash.db");
	scrm_db *db = open_db("crash.db");
	load(db, jq("{'id':'r','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'send_coupon'}]}"));
	int64_t c = customer(db, "13800138000");
	event(db, "view", c, 0);
	scrm_db_close(db);
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		scrm_db *cdb = NULL;
		if (scrm_db_open(path, NULL, &cdb) || scrm_db_set_clock(cdb, tu_clock_fn, &clk))
			_exit(2);
		char *out = NULL;
		if (scrm_outbox_take(cdb, 10, 30000, &out))
			_exit(3);
		cJSON *a = cJSON_Parse(out);
		const char *key = cJSON_GetArrayItem(a, 0)
					  ? cJSON_GetObjectItem(cJSON_GetArrayItem(a, 0), "key")->valuestring
					  : "none";
		if (write(fds[1], key, strlen(key)) < 0)
			_exit(4);
		close(fds[1]);
		/* Killed between take and ack. */
		raise(SIGKILL);
		_exit(5);
	}
	close(fds[1]);
	char key[64] = {0};
	ck_assert_int_gt(read(fds[0], key, sizeof key - 1), 0);
	close(fds[0]);
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	ck_assert_int_eq(strlen(key), 32);
	db = open_db("crash.db");
	cJSON *a = take(db, 10, 0);
	ck_assert_int_eq(cJSON_GetArraySize(a), 0); /* still leased */
	cJSON_Delete(a);
	clk.now = T0 + 30000;
	a = take(db, 10, 0);
	ck_assert_int_eq(cJSON_GetArraySize(a), 1);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(a, 0), "key"), key);
	ck_assert_int_eq((int)jnum(cJSON_GetArrayItem(a, 0), "attempt"), 2);
	tu_assert_ok(db, scrm_outbox_ack(db, (int64_t)jnum(cJSON_GetArrayItem(a, 0), "id")));
	cJSON_Delete(a);
	scrm_db_close(db);
}
END_TEST

typedef struct handler_log {
	int calls;
	int fail;
	char last[1024];
	scrm_db *db;
	int nested;
} handler_log;

static int handler(void *ud, const char *json)
{
	handler_log *h = ud;
	h->calls++;
	snprintf(h->last, sizeof h->last, "%s", json);
	if (h->nested && h->db) {
		h->nested--;
		/* Calling back into the library from the callback. */
		event(h->db, "view", 1, 0);
	}
	return h->fail ? SCRM_IO : SCRM_OK;
}

START_TEST(test_outbox_immediate_delivery)
{
	scrm_db *db = open_db("h.db");
	load(db, jq("{'id':'r','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'send_coupon'}]}"));
	int64_t c = customer(db, "13800138000");
	handler_log h = {0};
	h.db = db;
	tu_assert_ok(db, scrm_outbox_set_handler(db, handler, &h));
	event(db, "view", c, 0);
	ck_assert_int_eq(h.calls, 1);
	tu_assert_contains(h.last, "\"action\":\"send_coupon\"");
	tu_assert_contains(h.last, "\"state\":\"leased\"");
	ck_assert_int_eq(outbox_rows(db, "done"), 1);
	/* In a batch: nothing until it commits; nothing at all on rollback. */
	tu_assert_ok(db, scrm_db_begin(db));
	event(db, "view", c, 0);
	ck_assert_int_eq(h.calls, 1);
	tu_assert_ok(db, scrm_db_rollback(db));
	ck_assert_int_eq(h.calls, 1);
	tu_assert_ok(db, scrm_db_begin(db));
	event(db, "view", c, 0);
	event(db, "view", c, 0);
	tu_assert_rc(db, scrm_outbox_deliver(db, 0, NULL), SCRM_MISUSE);
	tu_assert_ok(db, scrm_db_commit(db));
	ck_assert_int_eq(h.calls, 3);
	ck_assert_int_eq(outbox_rows(db, "done"), 3);
	/* A failing callback leaves the action in the outbox to retry. */
	h.fail = 1;
	event(db, "view", c, 0);
	ck_assert_int_eq(h.calls, 4);
	ck_assert_int_eq(outbox_rows(db, "failed"), 1);
	h.fail = 0;
	int n = -1;
	tu_assert_ok(db, scrm_outbox_deliver(db, 0, &n));
	ck_assert_int_eq(n, 0); /* not due yet */
	clk.now += 2 * MIN;
	tu_assert_ok(db, scrm_outbox_deliver(db, 0, &n));
	ck_assert_int_eq(n, 1);
	/* The callback may call the library; what that produces is delivered too. */
	h.nested = 1;
	event(db, "view", c, 0);
	ck_assert_int_eq(outbox_rows(db, "done"), 6);
	tu_assert_ok(db, scrm_outbox_set_handler(db, NULL, NULL));
	event(db, "view", c, 0);
	ck_assert_int_eq(outbox_rows(db, "pending"), 1);
	tu_assert_rc(db, scrm_outbox_deliver(db, 0, NULL), SCRM_MISUSE);
	scrm_db_close(db);
}
END_TEST

/* A callback that settles its action itself (here: fails it permanently
 * with its own text); the library must leave it so and go on delivering. */
static int settling_handler(void *ud, const char *json)
{
	handler_log *h = ud;
	h->calls++;
	cJSON *j = cJSON_Parse(json);
	int64_t id = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "id"));
	cJSON_Delete(j);
	if (h->calls == 1)
		ck_assert_int_eq(scrm_outbox_fail(h->db, id, "coupon service says: no stock", 1), SCRM_OK);
	else
		ck_assert_int_eq(scrm_outbox_ack(h->db, id), SCRM_OK);
	return h->calls == 1 ? SCRM_IO : SCRM_OK;
}

START_TEST(test_outbox_handler_settles_itself)
{
	scrm_db *db = open_db("hs.db");
	load(db, jq("{'id':'r','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'a1'},{'type':'a2'},{'type':'a3'}]}"));
	int64_t c = customer(db, "13800138000");
	handler_log h = {0};
	h.db = db;
	tu_assert_ok(db, scrm_outbox_set_handler(db, settling_handler, &h));
	event(db, "view", c, 0);
	/* All three were handed over: the first one's own failure did not stop
	 * delivery, and its text is kept. */
	ck_assert_int_eq(h.calls, 3);
	ck_assert_int_eq(outbox_rows(db, "dead"), 1);
	ck_assert_int_eq(outbox_rows(db, "done"), 2);
	ck_assert_int_eq(outbox_rows(db, "leased"), 0);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM outbox WHERE state = 'dead' AND "
				       "last_error = 'coupon service says: no stock'"), 1);
	ck_assert_int_eq(tu_sql_int(db, "SELECT attempts FROM outbox WHERE state = 'dead'"), 1);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_action_keys_are_stable)
{
	/* Keys of stored actions must never change between releases: these
	 * are the values the first release gave rule 'k' v1, customer 1,
	 * event 1, action 0 and 1. */
	scrm_db *db = open_db("k.db");
	load(db, jq("{'id':'k','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'a1'},{'type':'a2'}]}"));
	int64_t c = customer(db, "13800138000");
	ck_assert_int_eq(c, 1);
	event(db, "view", c, 0);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM outbox WHERE "
				       "(action = 'a1' AND ikey = '45f2db95aa47471daa580a28c0c02c8e') OR "
				       "(action = 'a2' AND ikey = 'b47ac1ce4e735fab189b6d3f9ec200eb')"), 2);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_rule_sees_rule_tags_of_the_event)
{
	/* A rule tag that the event itself makes true is visible to has_tag()
	 * in the conditions of the rules that event triggers, as the figures
	 * are; and a rule tag reading a tag a rule action gave follows it. */
	scrm_db *db = open_db("rt.db");
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'big','expr':'profile.figures.orders >= 1'}")));
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'welcomed'}")));
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'vip','expr':'has_tag(\\'welcomed\\')'}")));
	load(db, jq("[{'id':'r','trigger':{'type':'event','event':'order'},"
		    "'condition':'has_tag(\\'big\\')','actions':[{'type':'push'}]},"
		    "{'id':'w','trigger':{'type':'event','event':'order'},"
		    "'actions':[{'type':'tag.add','tag':'welcomed'}]}]"));
	int64_t c = customer(db, "13800138000");
	event(db, "order", c, 100);
	ck_assert_int_eq(traced(db, "r", "fired"), 1);
	ck_assert_int_eq(traced(db, "r", "condition_false"), 0);
	int has = 0;
	tu_assert_ok(db, scrm_tag_has(db, c, "vip", &has));
	ck_assert_int_eq(has, 1);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------ errors */

static void load_fails(scrm_db *db, const char *json, int code, const char *msg)
{
	char *rep = (char *)&rep;
	int rc = scrm_rules_load(db, jq("%s", json), &rep);
	ck_assert_msg(rc == code, "load returned %d (%s), expected %d: %s", rc, scrm_errmsg(db), code,
		      json);
	ck_assert_ptr_null(rep);
	tu_assert_contains(scrm_errmsg(db), msg);
}

START_TEST(test_rule_errors)
{
	scrm_db *db = open_db("x.db");
	config(db, jq("%s", marketing_cfg));
	const char *ok_trig = "'trigger':{'type':'event','event':'order'}";
	const char *act = "'actions':[{'type':'push_message'}]";
	load_fails(db, "{'id':'x',\n 'trigger':}", SCRM_PARSE, "malformed JSON at line 2, column 12");
	load_fails(db, "42", SCRM_INVALID, "rule object or an array");
	load_fails(db, "{'trigger':{}}", SCRM_INVALID, "\"id\" is required");
	load_fails(db, "{'id':'Bad Id'}", SCRM_INVALID, "[a-z0-9_.-]");
	load_fails(db, jq("{'id':'x',%s,%s,'colour':1}", ok_trig, act), SCRM_INVALID,
		   "rule 'x': unknown field 'colour'");
	load_fails(db, jq("{'id':'x',%s}", act), SCRM_INVALID, "rule 'x': \"trigger\" is required");
	load_fails(db, jq("{'id':'x','trigger':{'type':'cron'},%s}", act), SCRM_INVALID,
		   "trigger.type 'cron' is unknown");
	load_fails(db, jq("{'id':'x','trigger':{'type':'event','event':'Order'},%s}", act),
		   SCRM_INVALID, "trigger.event 'Order' must be an event type");
	load_fails(db, jq("{'id':'x',%s}", ok_trig), SCRM_INVALID, "\"actions\" must be an array of 1-16");
	load_fails(db, jq("{'id':'x',%s,'actions':[{'type':'tag.ad','tag':'a'}]}", ok_trig),
		   SCRM_INVALID, "actions[0]: unknown action 'tag.ad'");
	load_fails(db, jq("{'id':'x',%s,'actions':[{'type':'ticket.open'}]}", ok_trig), SCRM_INVALID,
		   "unknown action 'ticket.open'");
	load_fails(db, jq("{'id':'x',%s,'actions':[{'type':'tag.add','tag':'nope'}]}", ok_trig),
		   SCRM_NOTFOUND, "actions[0]: tag 'nope' is not defined");
	load_fails(db, jq("{'id':'x',%s,'actions':[{'type':'push','params':[1]}]}", ok_trig),
		   SCRM_INVALID, "\"params\" must be an object");
	load_fails(db, jq("{'id':'x',%s,'actions':[{'type':'push','extra':1}]}", ok_trig),
		   SCRM_INVALID, "actions[0]: unknown field 'extra'");
	load_fails(db, jq("{'id':'x',%s,'actions':[{'type':'profile.set','attributes':{}}]}", ok_trig),
		   SCRM_INVALID, "non-empty object");
	load_fails(db, "{'id':'x','trigger':{'type':'absence','start':'cart_add','missing':'order',"
		       "'within':'72x'},'actions':[{'type':'push'}]}",
		   SCRM_INVALID, "rule 'x': trigger.within: bad duration \"72x\"");
	load_fails(db, "{'id':'x','trigger':{'type':'absence','start':'cart_add','missing':'order',"
		       "'within':'0s'},'actions':[{'type':'push'}]}",
		   SCRM_RANGE, "trigger.within: duration \"0s\" is outside");
	load_fails(db, "{'id':'x','trigger':{'type':'absence','start':'cart_add','missing':'order',"
		       "'within':72},'actions':[{'type':'push'}]}",
		   SCRM_INVALID, "must be a duration string");
	load_fails(db, "{'id':'x','trigger':{'type':'absence','start':'cart_add','missing':'order'},"
		       "'actions':[{'type':'push'}]}",
		   SCRM_INVALID, "trigger.\"within\" is required");
	load_fails(db, jq("{'id':'x',%s,%s,'limits':{'cooldown':'soon'}}", ok_trig, act), SCRM_INVALID,
		   "limits.cooldown: bad duration \"soon\"");
	load_fails(db, jq("{'id':'x',%s,%s,'condition':'event.amount >'}", ok_trig, act), SCRM_PARSE,
		   "rule 'x': condition: 1:");
	load_fails(db, jq("{'id':'x',%s,%s,'condition':'event.amount > 1 &&\\n  (('}", ok_trig, act),
		   SCRM_PARSE, "rule 'x': condition: 2:");
	load_fails(db, jq("{'id':'x',%s,%s,'condition':'foo.bar == 1'}", ok_trig, act), SCRM_INVALID,
		   "condition reads 'foo.bar'");
	load_fails(db, jq("{'id':'x',%s,%s,'condition':'profile.attributes.mailA == 1'}", ok_trig, act),
		   SCRM_INVALID, "reads 'profile.attributes.mailA', but attribute names are");
	load_fails(db, jq("{'id':'x','trigger':{'type':'date','attribute':'birthday'},%s,"
			  "'condition':'event.amount > 1'}", act),
		   SCRM_INVALID, "a date trigger has no event");
	load_fails(db, jq("{'id':'x','trigger':{'type':'date','attribute':'birthday','at':'25:00'},%s}",
			  act),
		   SCRM_INVALID, "trigger.at must be a local time");
	load_fails(db, jq("{'id':'x','trigger':{'type':'date','attribute':'birthday','days_before':400},%s}",
			  act),
		   SCRM_RANGE, "days_before = 400 is outside 0..366");
	load_fails(db, jq("{'id':'x',%s,%s,'limits':{'group':'vip'}}", ok_trig, act), SCRM_NOTFOUND,
		   "limits.group 'vip' is not defined");
	load_fails(db, jq("{'id':'x',%s,%s,'limits':{'on_cap':'defer'}}", ok_trig, act), SCRM_INVALID,
		   "on_cap needs a group");
	load_fails(db, jq("{'id':'x',%s,%s,'limits':{'quiet_hours':'yes'}}", ok_trig, act), SCRM_INVALID,
		   "quiet_hours must be true, false or");
	load_fails(db, jq("{'id':'x',%s,%s,'priority':1.5}", ok_trig, act), SCRM_INVALID,
		   "priority must be an integer");
	load_fails(db, jq("[{'id':'x',%s,%s},{'id':'x',%s,%s}]", ok_trig, act, ok_trig, act),
		   SCRM_INVALID, "id 'x' is given twice");
	/* All or nothing: a bad rule after a good one stores neither. */
	load_fails(db, jq("[{'id':'good',%s,%s},{'id':'bad',%s}]", ok_trig, act, ok_trig), SCRM_INVALID,
		   "rule 'bad'");
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM rule"), 0);
	tu_assert_rc(db, scrm_rules_load(db, NULL, NULL), SCRM_MISUSE);
	/* Configuration. */
	tu_assert_rc(db, scrm_rules_config_set(db, jq("{'default_tz':'Mars/Base'}")), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "default_tz must be a known time zone");
	tu_assert_rc(db, scrm_rules_config_set(db, jq("{'groups':{'g':{'max':0,'per':'1d'}}}")),
		     SCRM_RANGE);
	tu_assert_rc(db, scrm_rules_config_set(db, jq("{'groups':{'g':{'max':1,'per':'fortnight'}}}")),
		     SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "groups.g.per");
	tu_assert_rc(db, scrm_rules_config_set(db, jq("{'quiet_hours':{'start':'22:00','end':'22:00'}}")),
		     SCRM_INVALID);
	tu_assert_rc(db, scrm_rules_config_set(db, jq("{'outbox':{'lease':'0s'}}")), SCRM_RANGE);
	tu_assert_rc(db, scrm_rules_config_set(db, jq("{'volume':11}")), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "unknown field 'volume'");
	load(db, jq("{'id':'m',%s,%s,'limits':{'group':'marketing'}}", ok_trig, act));
	tu_assert_rc(db, scrm_rules_config_set(db, jq("{'groups':{'marketing':null}}")), SCRM_CONFLICT);
	tu_assert_contains(scrm_errmsg(db), "group 'marketing' is used by rule 'm'");
	/* Other entry points. */
	char *out = NULL;
	tu_assert_rc(db, scrm_rules_get_json(db, "nope", 0, &out), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_rules_enable(db, "nope", 1), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_rules_tick(db, -5, NULL), SCRM_RANGE);
	tu_assert_rc(db, scrm_rules_trace_json(db, "nope", 0, 0, 0, 0, &out), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_rules_trace_json(db, NULL, 0, 0, -1, 0, &out), SCRM_RANGE);
	tu_assert_rc(db, scrm_rules_trace_json(db, NULL, 0, 0, 0, 0x10, &out), SCRM_INVALID);
	tu_assert_rc(db, scrm_rules_trace_json(db, NULL, 9999, 0, 0, 0, &out), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_outbox_take(db, 0, 0, &out), SCRM_RANGE);
	tu_assert_rc(db, scrm_outbox_take(db, 1, -1, &out), SCRM_RANGE);
	tu_assert_rc(db, scrm_outbox_take(db, 1, 0, NULL), SCRM_MISUSE);
	tu_assert_rc(db, scrm_outbox_list_json(db, "lost", 0, 0, &out), SCRM_INVALID);
	tu_assert_rc(db, scrm_outbox_fail(db, 1, "\xff", 0), SCRM_INVALID);
	tu_assert_rc(db, scrm_outbox_retry(db, 7), SCRM_NOTFOUND);
	tu_assert_rc(NULL, scrm_rules_load(NULL, "{}", NULL), SCRM_MISUSE);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_readonly_handle)
{
	scrm_db *db = open_db("ro.db");
	load(db, jq("{'id':'r','trigger':{'type':'event','event':'view'},'actions':[{'type':'a'}]}"));
	scrm_db_close(db);
	db = tu_open(tu_path("ro.db"), SCRM_OPEN_READONLY);
	char *out = NULL;
	tu_assert_ok(db, scrm_rules_list_json(db, &out));
	scrm_free(out);
	tu_assert_rc(db, scrm_rules_load(db, "{}", NULL), SCRM_READONLY);
	tu_assert_rc(db, scrm_outbox_take(db, 1, 0, &out), SCRM_READONLY);
	tu_assert_rc(db, scrm_rules_tick(db, T0, NULL), SCRM_READONLY);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------ tags */

START_TEST(test_tags)
{
	scrm_db *db = open_db("t.db");
	tu_assert_ok(db, scrm_tags_group_set(db, jq("{'name':'level','exclusive':true}")));
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'gold','group':'level'}")));
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'silver','group':'level'}")));
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'高价值','description':'high value'}")));
	int64_t c = customer(db, "13800138000");
	tu_assert_ok(db, scrm_tag_add(db, c, "silver", "alice"));
	clk.now += MIN;
	tu_assert_ok(db, scrm_tag_add(db, c, "gold", "bob"));
	tu_assert_ok(db, scrm_tag_add(db, c, "gold", "bob")); /* no change */
	tu_assert_ok(db, scrm_tag_add(db, c, "高价值", "bob"));
	int has = 1;
	tu_assert_ok(db, scrm_tag_has(db, c, "silver", &has));
	ck_assert_int_eq(has, 0);
	char *out = NULL;
	tu_assert_ok(db, scrm_tags_customer_json(db, c, &out));
	cJSON *j = parse(out);
	scrm_free(out);
	ck_assert_int_eq(cJSON_GetArraySize(j), 2);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(j, 0), "tag"), "gold");
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(j, 0), "source.actor"), "bob");
	cJSON_Delete(j);
	tu_assert_ok(db, scrm_tags_history_json(db, c, 0, &out));
	j = parse(out);
	scrm_free(out);
	ck_assert_int_eq(cJSON_GetArraySize(j), 4);
	/* newest first: 高价值 add, gold add, silver removed (exclusive), silver add */
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(j, 2), "tag"), "silver");
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(j, 2), "op"), "remove");
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(j, 2), "reason"), "exclusive group");
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(j, 2), "source.actor"), "bob");
	cJSON_Delete(j);
	tu_assert_ok(db, scrm_tag_remove(db, c, "gold", "carol"));
	tu_assert_ok(db, scrm_tag_remove(db, c, "gold", "carol"));
	tu_assert_ok(db, scrm_tags_history_json(db, c, 1, &out));
	tu_assert_contains(out, "\"op\":\"remove\"");
	tu_assert_contains(out, "\"actor\":\"carol\"");
	scrm_free(out);
	tu_assert_ok(db, scrm_tags_list_json(db, &out));
	j = parse(out);
	scrm_free(out);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tags")), 3);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "groups"), 0),
						   "exclusive")));
	cJSON_Delete(j);
	/* Refusals. */
	tu_assert_rc(db, scrm_tag_add(db, c, "nope", "bob"), SCRM_NOTFOUND);
	tu_assert_contains(scrm_errmsg(db), "tag 'nope' is not defined");
	tu_assert_rc(db, scrm_tag_add(db, 999, "gold", "bob"), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_tag_add(db, c, "gold", ""), SCRM_INVALID);
	tu_assert_rc(db, scrm_tag_add(db, c, NULL, "x"), SCRM_MISUSE);
	tu_assert_rc(db, scrm_tags_define(db, jq("{'name':'x','group':'nope'}")), SCRM_NOTFOUND);
	tu_assert_rc(db, scrm_tags_define(db, jq("{'name':''}")), SCRM_INVALID);
	tu_assert_rc(db, scrm_tags_define(db, jq("{'name':'x','rule':'1'}")), SCRM_INVALID);
	tu_assert_contains(scrm_errmsg(db), "unknown field 'rule'");
	tu_assert_rc(db, scrm_tags_define(db, "{"), SCRM_PARSE);
	tu_assert_ok(db, scrm_tags_group_set(db, jq("{'name':'interest'}")));
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'tea','group':'interest'}")));
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'coffee','group':'interest'}")));
	tu_assert_ok(db, scrm_tag_add(db, c, "tea", "bob"));
	tu_assert_ok(db, scrm_tag_add(db, c, "coffee", "bob"));
	tu_assert_rc(db, scrm_tags_group_set(db, jq("{'name':'interest','exclusive':true}")),
		     SCRM_CONFLICT);
	tu_assert_rc(db, scrm_tags_define(db, jq("{'name':'tea','group':'level'}")), SCRM_CONFLICT);
	/* Erased customers hold no tags and get none. */
	tu_assert_ok(db, scrm_profile_erase(db, c, "request"));
	tu_assert_rc(db, scrm_tag_add(db, c, "gold", "bob"), SCRM_STATE);
	tu_assert_ok(db, scrm_tags_customer_json(db, c, &out));
	ck_assert_str_eq(out, "[]");
	scrm_free(out);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_tags_follow_merge_and_unmerge)
{
	scrm_db *db = open_db("t.db");
	tu_assert_ok(db, scrm_tags_group_set(db, jq("{'name':'level','exclusive':true}")));
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'gold','group':'level'}")));
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'silver','group':'level'}")));
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'tea'}")));
	int64_t a = customer(db, "13800138000"), b = customer(db, "13900139000");
	tu_assert_ok(db, scrm_tag_add(db, a, "gold", "x"));
	tu_assert_ok(db, scrm_tag_add(db, b, "silver", "x"));
	tu_assert_ok(db, scrm_tag_add(db, b, "tea", "x"));
	int64_t merge = 0;
	tu_assert_ok(db, scrm_identity_merge(db, a, b, "same person", &merge));
	int has = 0;
	tu_assert_ok(db, scrm_tag_has(db, b, "tea", &has)); /* b resolves to a */
	ck_assert_int_eq(has, 1);
	tu_assert_ok(db, scrm_tag_has(db, a, "silver", &has));
	ck_assert_int_eq(has, 0);
	tu_assert_ok(db, scrm_tag_has(db, a, "gold", &has));
	ck_assert_int_eq(has, 1);
	char *out = NULL;
	tu_assert_ok(db, scrm_tags_history_json(db, a, 0, &out));
	tu_assert_contains(out, "\"reason\":\"merge ");
	scrm_free(out);
	tu_assert_ok(db, scrm_identity_unmerge(db, merge, "mistake", NULL));
	tu_assert_ok(db, scrm_tag_has(db, b, "tea", &has));
	ck_assert_int_eq(has, 1);
	tu_assert_ok(db, scrm_tag_has(db, a, "tea", &has));
	ck_assert_int_eq(has, 0);
	tu_assert_ok(db, scrm_tag_has(db, a, "gold", &has));
	ck_assert_int_eq(has, 1);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_merge_moves_caps_and_waits)
{
	scrm_db *db = open_db("mg.db");
	config(db, jq("{'groups':{'g':{'max':1,'per':'7d'}}}"));
	load(db, jq("[{'id':'r','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'push'}],'limits':{'group':'g'}},"
		    "{'id':'cart','trigger':{'type':'absence','start':'cart_add','missing':'order',"
		    "'within':'1h'},'actions':[{'type':'push'}]}]"));
	int64_t a = customer(db, "13800138000"), b = customer(db, "13900139000");
	event(db, "view", b, 0);
	event(db, "cart_add", b, 0);
	tu_assert_ok(db, scrm_identity_merge(db, a, b, NULL, NULL));
	event(db, "view", a, 0); /* capped: b's firing counts for a now */
	ck_assert_int_eq(traced(db, "r", "cap_reached"), 1);
	clk.now += MIN;
	event(db, "order", a, 100); /* cancels b's wait, now a's */
	ck_assert_int_eq(traced(db, "cart", "cancelled_by_event"), 1);
	scrm_db_close(db);
}
END_TEST

/* An unmerge gives back the absence waits and held firings started by the
 * events it gives back: they fire for the split-off customer. */
START_TEST(test_unmerge_moves_waits_and_deferrals)
{
	scrm_db *db = open_db("um.db");
	config(db, jq("{'quiet_hours':{'start':'21:00','end':'09:00'}}"));
	load(db, jq("[{'id':'cart','trigger':{'type':'absence','start':'cart_add','missing':'order',"
		    "'within':'1h'},'actions':[{'type':'push'}]},"
		    "{'id':'q','trigger':{'type':'event','event':'view'},"
		    "'actions':[{'type':'push_message'}],'limits':{'quiet_hours':true}}]"));
	int64_t a = customer(db, "13800138000"), b = customer(db, "13900139000");
	int64_t merge = 0;
	tu_assert_ok(db, scrm_identity_merge(db, a, b, "same person", &merge));
	/* 15:00Z = 23:00 in Shanghai: the view is held until 09:00. */
	clk.now = T0 + 15 * HOUR;
	event(db, "cart_add", b, 0); /* named b: b's again after the unmerge */
	event(db, "view", b, 0);
	event(db, "cart_add", a, 0); /* a's own wait stays */
	char q[160];
	snprintf(q, sizeof q, "SELECT root FROM identity_customers WHERE id = %lld", (long long)b);
	int64_t root = tu_sql_int(db, q);
	snprintf(q, sizeof q, "SELECT count(*) FROM rule_wait WHERE customer = %lld", (long long)root);
	ck_assert_int_eq(tu_sql_int(db, q), 2);
	tu_assert_ok(db, scrm_identity_unmerge(db, merge, "mistake", NULL));
	snprintf(q, sizeof q, "SELECT count(*) FROM rule_wait WHERE customer = %lld", (long long)b);
	ck_assert_int_eq(tu_sql_int(db, q), 1);
	snprintf(q, sizeof q, "SELECT count(*) FROM rule_wait WHERE customer = %lld", (long long)a);
	ck_assert_int_eq(tu_sql_int(db, q), 1);
	snprintf(q, sizeof q, "SELECT count(*) FROM rule_deferred WHERE customer = %lld", (long long)b);
	ck_assert_int_eq(tu_sql_int(db, q), 1);
	tick(db, T0 + DAY + 1 * HOUR);
	snprintf(q, sizeof q, "SELECT count(*) FROM outbox WHERE customer = %lld", (long long)b);
	ck_assert_int_eq(tu_sql_int(db, q), 2); /* b's push and push_message */
	snprintf(q, sizeof q, "SELECT count(*) FROM outbox WHERE customer = %lld", (long long)a);
	ck_assert_int_eq(tu_sql_int(db, q), 1); /* a's push */
	scrm_db_close(db);
}
END_TEST

START_TEST(test_trace_queries_and_erasure)
{
	scrm_db *db = open_db("tr.db");
	load(db, jq("[{'id':'r1','trigger':{'type':'event','event':'view'},"
		    "'condition':'profile.attributes.name != null','actions':[{'type':'push'}]},"
		    "{'id':'r2','trigger':{'type':'event','event':'view'},'actions':[{'type':'push'}]}]"));
	int64_t a = customer(db, "13800138000"), b = customer(db, "13900139000");
	tu_assert_ok(db, scrm_profile_set_json(db, a, jq("{'name':'王小明'}")));
	event(db, "view", a, 0);
	clk.now += HOUR;
	event(db, "view", b, 0);
	char *out = NULL;
	tu_assert_ok(db, scrm_rules_trace_json(db, NULL, 0, 0, 0, 0, &out));
	cJSON *j = parse(out);
	scrm_free(out);
	ck_assert_int_eq(cJSON_GetArraySize(j), 4);
	ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "condition"));
	cJSON_Delete(j);
	tu_assert_ok(db, scrm_rules_trace_json(db, "r1", a, 0, 0, 0, &out));
	tu_assert_contains(out, "王小明");
	scrm_free(out);
	tu_assert_ok(db, scrm_rules_trace_json(db, NULL, 0, T0 + HOUR, 0, 0, &out));
	j = parse(out);
	scrm_free(out);
	ck_assert_int_eq(cJSON_GetArraySize(j), 2);
	cJSON_Delete(j);
	/* Erasure drops what conditions read, tags and pending actions. */
	load(db, jq("{'id':'r3','trigger':{'type':'event','event':'order'},'actions':[{'type':'push'}]}"));
	event(db, "order", a, 100);
	tu_assert_ok(db, scrm_profile_erase(db, a, NULL));
	tu_assert_ok(db, scrm_rules_trace_json(db, NULL, a, 0, 0, SCRM_RULES_TRACE_STEPS, &out));
	ck_assert_ptr_null(strstr(out, "王小明"));
	scrm_free(out);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM outbox WHERE state = 'dead'"), 3);
	int64_t deleted = 0;
	tu_assert_ok(db, scrm_rules_trace_prune(db, T0 + HOUR, &deleted));
	ck_assert_int_eq(deleted, 2);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_event_in_batch_and_rollback)
{
	scrm_db *db = open_db("b.db");
	load(db, jq("{'id':'r','trigger':{'type':'event','event':'view'},'actions':[{'type':'push'}]}"));
	int64_t c = customer(db, "13800138000");
	tu_assert_ok(db, scrm_db_begin(db));
	for (int i = 0; i < 10; i++)
		event(db, "view", c, 0);
	ck_assert_int_eq(outbox_rows(db, NULL), 10);
	tu_assert_ok(db, scrm_db_rollback(db));
	ck_assert_int_eq(outbox_rows(db, NULL), 0);
	ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM rule_trace"), 0);
	/* Rules loaded in another handle are seen by this one. */
	scrm_db *other = tu_open(tu_path("b.db"), 0);
	tu_assert_ok(other, scrm_rules_load(other, jq("{'id':'r2','trigger':{'type':'event','event':'view'},"
						      "'actions':[{'type':'push'}]}"), NULL));
	scrm_db_close(other);
	event(db, "view", c, 0);
	ck_assert_int_eq(outbox_rows(db, NULL), 2);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------ allocation failure */

/* What the rule engine (and the event it acts on) keeps, as text, read on
 * a connection of its own (committed state only). */
static char *dump(const char *path)
{
	static const char *const parts[] = {
		"SELECT group_concat(id || ':' || version || ':' || enabled || ':' || removed, ',') FROM rule",
		"SELECT count(*) FROM rule_version",
		"SELECT count(*) || ':' || total(at) FROM rule_fire",
		"SELECT count(*) || ':' || total(due) FROM rule_wait",
		"SELECT count(*) || ':' || total(due) || group_concat(last_instance) FROM rule_date",
		"SELECT count(*) FROM rule_date_dirty",
		"SELECT count(*) || ':' || total(due) FROM rule_deferred",
		"SELECT group_concat(id || state || attempts || ':' || next_at, ',') FROM outbox",
		"SELECT count(*) FROM rule_trace",
		"SELECT count(*) FROM customer_tag",
		"SELECT count(*) FROM tag_history",
		"SELECT count(*) FROM event",
		"SELECT group_concat(key || '=' || value, ',') FROM scrm_meta",
	};
	size_t len = 0;
	char *out = calloc(1, 1);
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		const char *t = tu_sql_file_text(path, parts[i]);
		size_t n = strlen(t);
		out = realloc(out, len + n + 2);
		memcpy(out + len, t, n);
		out[len + n] = '|';
		out[len + n + 1] = '\0';
		len += n + 1;
	}
	return out;
}

static void setup_oom(scrm_db *db)
{
	config(db, jq("{'groups':{'marketing':{'max':5,'per':'7d'}}}"));
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'buyer'}")));
	load(db, jq("[{'id':'a','trigger':{'type':'event','event':'order'},"
		    "'condition':'event.amount > 10 && profile.attributes.level == \\'gold\\'',"
		    "'actions':[{'type':'send_coupon','params':{'x':1}},{'type':'tag.add','tag':'buyer'}],"
		    "'limits':{'group':'marketing','cooldown':'1m'}},"
		    "{'id':'b','trigger':{'type':'event','event':'order'},"
		    "'condition':'profile.figures.orders > 0',"
		    "'actions':[{'type':'push'}]},"
		    "{'id':'c','trigger':{'type':'absence','start':'order','missing':'refund',"
		    "'within':'1d'},'actions':[{'type':'push'}]}]"));
}

START_TEST(test_alloc_fail_event)
{
	scrm_db *db = open_db("af.db");
	setup_oom(db);
	int64_t c = customer(db, "13800138000");
	tu_assert_ok(db, scrm_profile_set_json(db, c, jq("{'level':'gold'}")));
	char *before = dump(tu_path("af.db"));
	long nth;
	int rc = SCRM_NOMEM;
	for (nth = 1; nth < 5000; nth++) {
		char json[256];
		snprintf(json, sizeof json,
			 "{\"key\":\"oom\",\"type\":\"order\",\"channel\":\"pos\",\"at\":%lld,"
			 "\"customer\":%lld,\"amount\":100,\"currency\":\"CNY\"}",
			 (long long)T0, (long long)c);
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		rc = scrm_profile_event_add_json(db, json, NULL, NULL);
		scrm_db_test_alloc_fail(db, 0);
		if (rc == SCRM_OK)
			break;
		ck_assert_msg(rc == SCRM_NOMEM, "nth=%ld: %s: %s", nth, scrm_errstr(rc), scrm_errmsg(db));
		char *after = dump(tu_path("af.db"));
		ck_assert_msg(strcmp(before, after) == 0, "nth=%ld: changed: %s vs %s", nth, before, after);
		free(after);
	}
	ck_assert_int_eq(rc, SCRM_OK);
	ck_assert_int_gt(nth, 5);
	ck_assert_int_eq(traced(db, "a", "fired"), 1);
	ck_assert_int_eq(traced(db, "b", "fired"), 1);
	ck_assert_int_eq(outbox_rows(db, NULL), 2);
	free(before);
	scrm_db_close(db);
}
END_TEST

START_TEST(test_alloc_fail_load_and_tick)
{
	scrm_db *db = open_db("af.db");
	int64_t c = customer(db, "13800138000");
	tu_assert_ok(db, scrm_profile_set_json(db, c, jq("{'level':'gold'}")));
	config(db, jq("{'groups':{'marketing':{'max':5,'per':'7d'}}}"));
	tu_assert_ok(db, scrm_tags_define(db, jq("{'name':'buyer'}")));
	char *before = dump(tu_path("af.db"));
	long nth;
	int rc = SCRM_NOMEM;
	for (nth = 1; nth < 5000; nth++) {
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		scrm__test_alloc_fail(nth);
		char *rep = NULL;
		rc = scrm_rules_load(db, jq("[{'id':'a','trigger':{'type':'event','event':'order'},"
					    "'condition':'event.amount > 10',"
					    "'actions':[{'type':'send_coupon'},{'type':'tag.add','tag':'buyer'}],"
					    "'limits':{'group':'marketing'}},"
					    "{'id':'c','trigger':{'type':'absence','start':'order','missing':'refund',"
					    "'within':'1d'},'actions':[{'type':'push'}]}]"),
				     &rep);
		scrm_db_test_alloc_fail(db, 0);
		scrm__test_alloc_fail(0);
		if (rc == SCRM_OK) {
			ck_assert_ptr_nonnull(rep);
			scrm_free(rep);
			break;
		}
		ck_assert_msg(rc == SCRM_NOMEM, "nth=%ld: %s: %s", nth, scrm_errstr(rc), scrm_errmsg(db));
		ck_assert_ptr_null(rep);
		char *after = dump(tu_path("af.db"));
		ck_assert_msg(strcmp(before, after) == 0, "nth=%ld: load changed the database", nth);
		free(after);
	}
	ck_assert_int_eq(rc, SCRM_OK);
	free(before);
	event(db, "order", c, 100);
	before = dump(tu_path("af.db"));
	for (nth = 1; nth < 5000; nth++) {
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		char *sum = NULL;
		rc = scrm_rules_tick(db, T0 + 2 * DAY, &sum);
		scrm_db_test_alloc_fail(db, 0);
		if (rc == SCRM_OK) {
			scrm_free(sum);
			break;
		}
		ck_assert_msg(rc == SCRM_NOMEM, "nth=%ld: %s: %s", nth, scrm_errstr(rc), scrm_errmsg(db));
		char *after = dump(tu_path("af.db"));
		ck_assert_msg(strcmp(before, after) == 0, "nth=%ld: tick changed the database", nth);
		free(after);
	}
	ck_assert_int_eq(rc, SCRM_OK);
	ck_assert_int_eq(traced(db, "c", "fired"), 1);
	free(before);
	before = dump(tu_path("af.db"));
	for (nth = 1; nth < 5000; nth++) {
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		char *out = NULL;
		rc = scrm_outbox_take(db, 10, 0, &out);
		scrm_db_test_alloc_fail(db, 0);
		if (rc == SCRM_OK) {
			tu_assert_contains(out, "send_coupon");
			scrm_free(out);
			break;
		}
		ck_assert_msg(rc == SCRM_NOMEM, "nth=%ld: %s: %s", nth, scrm_errstr(rc), scrm_errmsg(db));
		char *after = dump(tu_path("af.db"));
		ck_assert_msg(strcmp(before, after) == 0, "nth=%ld: take changed the database", nth);
		free(after);
	}
	ck_assert_int_eq(rc, SCRM_OK);
	free(before);
	for (nth = 1; nth < 5000; nth++) {
		tu_assert_ok(db, scrm_db_test_alloc_fail(db, nth));
		char *out = NULL;
		rc = scrm_rules_trace_json(db, NULL, c, 0, 0, SCRM_RULES_TRACE_STEPS, &out);
		scrm_db_test_alloc_fail(db, 0);
		if (rc == SCRM_OK) {
			scrm_free(out);
			break;
		}
		ck_assert_msg(rc == SCRM_NOMEM, "nth=%ld: %s: %s", nth, scrm_errstr(rc), scrm_errmsg(db));
		ck_assert_ptr_null(out);
	}
	ck_assert_int_eq(rc, SCRM_OK);
	scrm_db_close(db);
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *rules_suite(void)
{
	Suite *s = suite_create("rules");
	TCase *tc = tcase_create("rules");
	tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_absence_fires_at_72h);
	tcase_add_test(tc, test_absence_cancelled_by_order_at_71h);
	tcase_add_test(tc, test_absence_match);
	tcase_add_test(tc, test_cap_rolling_across_rules);
	tcase_add_test(tc, test_cap_calendar_week_in_customer_tz);
	tcase_add_test(tc, test_cap_calendar_day_across_dst);
	tcase_add_test(tc, test_cap_defer_then_tick);
	tcase_add_test(tc, test_cooldown);
	tcase_add_test(tc, test_once_across_versions);
	tcase_add_test(tc, test_quiet_hours_defer_to_window_end);
	tcase_add_test(tc, test_quiet_hours_own_window_and_tz);
	tcase_add_test(tc, test_quiet_hours_across_dst);
	tcase_add_test(tc, test_default_tz_with_dst);
	tcase_add_test(tc, test_consent_blocks_marketing);
	tcase_add_test(tc, test_birthday_in_customer_tz);
	tcase_add_test(tc, test_date_in_new_york_summer_and_winter);
	tcase_add_test(tc, test_date_days_before_once);
	tcase_add_test(tc, test_priority_order);
	tcase_add_test(tc, test_versioning);
	tcase_add_test(tc, test_condition_inputs_and_errors);
	tcase_add_test(tc, test_max_age_skips_history);
	tcase_add_test(tc, test_outbox_protocol);
	tcase_add_test(tc, test_outbox_same_key_for_same_decision);
	tcase_add_test(tc, test_outbox_crash_redelivery);
	tcase_add_test(tc, test_outbox_immediate_delivery);
	tcase_add_test(tc, test_rule_errors);
	tcase_add_test(tc, test_readonly_handle);
	tcase_add_test(tc, test_tags);
	tcase_add_test(tc, test_tags_follow_merge_and_unmerge);
	tcase_add_test(tc, test_unmerge_moves_waits_and_deferrals);
	tcase_add_test(tc, test_merge_moves_caps_and_waits);
	tcase_add_test(tc, test_trace_queries_and_erasure);
	tcase_add_test(tc, test_event_in_batch_and_rollback);
	tcase_add_test(tc, test_outbox_handler_settles_itself);
	tcase_add_test(tc, test_action_keys_are_stable);
	tcase_add_test(tc, test_rule_sees_rule_tags_of_the_event);
	tcase_add_test(tc, test_alloc_fail_event);
	tcase_add_test(tc, test_alloc_fail_load_and_tick);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(rules_suite());
}
