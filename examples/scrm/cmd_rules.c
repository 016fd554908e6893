/*
 * scrm — rule engine commands (include/scrm/rules.h): expr eval, rules
 * load/list/show/enable/disable/remove/config, tick, the decision trace and
 * the outbox of host actions. Tags and segments are in cmd_tags.c.
 */
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "common.h"

#define RULES_MAX_LIMIT 1000000000LL

/* Parse an optional --limit N (positive) into *out; 0 when not given. */
static int parse_limit(struct cli *cli, const struct cli_cmd *cmd, const char *s, int *out)
{
	int64_t v = 0;
	int rc;
	*out = 0;
	if (!s)
		return -1;
	if ((rc = cli_parse_id(cli, cmd, "--limit", s, &v)) >= 0)
		return rc;
	if (v > RULES_MAX_LIMIT)
		return cli_usage_error(cli, cmd, "--limit %lld is too large", (long long)v);
	*out = (int)v;
	return -1;
}

/*
 * The steps of an expression trace ({"ok","value","steps":[…]}), one line per
 * sub-expression, indented by depth: "1:1   a && b   = true".
 */
static void print_steps(const cJSON *trace, const char *indent)
{
	const cJSON *s;
	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(trace, "steps")) {
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(s, "depth");
		int depth = cJSON_IsNumber(d) ? d->valueint : 0;
		fputs(indent, stdout);
		cli_pad(stdout, cli_jstr(s, "pos", "?"), 7);
		for (int i = 0; i < depth && i < 32; i++)
			fputs("  ", stdout);
		fputs(cli_jstr(s, "expr", "?"), stdout);
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(s, "error");
		if (cJSON_IsString(err))
			printf("   ! %s", err->valuestring);
		else if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(s, "evaluated")))
			fputs("   (not evaluated)", stdout);
		else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "missing")))
			fputs("   = null (missing)", stdout);
		else {
			char *v = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(s, "value"));
			printf("   = %s", v ? v : "?");
			cJSON_free(v);
		}
		putchar('\n');
	}
}

/* ------------------------------------------------------------------ expr eval */

/* The source line of a compile error with a caret under its column, on stderr. */
static void show_error_position(const char *src)
{
	int line, col;
	if (scrm_expr_error_pos(NULL, &line, &col) != SCRM_OK || line < 1 || col < 1)
		return;
	const char *p = src;
	for (int l = 1; l < line && p; l++)
		if ((p = strchr(p, '\n')))
			p++;
	if (!p)
		return;
	size_t len = strcspn(p, "\n");
	/* `col` counts characters: find the byte offset of that character. */
	size_t off = 0;
	for (int c = 1; c < col && off < len; c++)
		for (off++; off < len && ((unsigned char)p[off] & 0xC0) == 0x80; off++)
			;
	fprintf(stderr, "  %.*s\n  %*s^\n", (int)len, p, cli_text_width(p, off), "");
}

static int cmd_expr_eval(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *src, *bind = NULL, *now_s = NULL;
	bool trace = false;
	int64_t now = 0;
	const struct cli_opt opts[] = {
		{"bind", 'b', &bind, NULL},
		{"now", 0, &now_s, NULL},
		{"trace", 't', NULL, &trace},
		{0},
	};
	int rc = cli_parse(cli, cmd, argc, argv, opts, &src, 1, 1, NULL);
	if (rc >= 0 || (now_s && (rc = cli_parse_time(cli, cmd, "--now", now_s, &now)) >= 0))
		return rc;

	scrm_expr *e = NULL;
	scrm_expr_vars *v = NULL;
	scrm_expr_env *env = NULL;
	char *out = NULL;
	if ((rc = scrm_expr_compile(src, NULL, &e)) != SCRM_OK) {
		cli_lib_error(cli, NULL, rc);
		show_error_position(src);
		return CLI_EXIT_ERROR;
	}
	int status = CLI_EXIT_ERROR;
	if ((rc = scrm_expr_vars_new(e, &v)) != SCRM_OK || (rc = scrm_expr_env_new(&env)) != SCRM_OK ||
	    (rc = now_s ? scrm_expr_env_set_now(env, now) : scrm_expr_env_set_clock(env, NULL, NULL)) !=
		    SCRM_OK ||
	    (rc = scrm_expr_vars_set_env(v, env)) != SCRM_OK) {
		cli_lib_error(cli, NULL, rc);
		goto done;
	}
	if (bind && (rc = scrm_expr_vars_set_json(v, NULL, bind)) != SCRM_OK) {
		fprintf(stderr, "scrm: %s: --bind: %s (%s)\n", cli->cmdname, scrm_errmsg(NULL),
			scrm_errstr(rc));
		goto done;
	}
	if (trace) {
		rc = scrm_expr_eval_trace(e, v, &out);
		if (!out) {
			cli_lib_error(cli, NULL, rc);
			goto done;
		}
		if (cli->json) {
			printf("%s\n", out);
		} else {
			cJSON *t = cJSON_Parse(out);
			print_steps(t, "");
			const cJSON *cost = cJSON_GetObjectItemCaseSensitive(t, "cost");
			if (rc == SCRM_OK) {
				fputs("result: ", stdout);
				char *val = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(t, "value"));
				printf("%s", val ? val : "?");
				cJSON_free(val);
				printf("   (cost %d)\n", cJSON_IsNumber(cost) ? cost->valueint : 0);
			}
			cJSON_Delete(t);
		}
	} else {
		rc = scrm_expr_eval_json(e, v, &out);
		if (rc == SCRM_OK)
			printf("%s\n", out);
	}
	if (rc != SCRM_OK) {
		fprintf(stderr, "scrm: %s: %s (%s)\n", cli->cmdname, scrm_expr_errmsg(v),
			scrm_errstr(rc));
		goto done;
	}
	status = CLI_EXIT_OK;
done:
	scrm_free(out);
	scrm_expr_vars_free(v);
	scrm_expr_env_free(env);
	scrm_expr_free(e);
	return status;
}

static const struct cli_cmd expr_subs[] = {
	{"eval", cmd_expr_eval, "expr eval EXPR [--bind JSON] [--now T] [--trace]",
	 "Compile and evaluate an expression; print the result as JSON.",
	 "  --bind JSON, -b JSON   values of the field paths, as one object:\n"
	 "                         '{\"event\":{\"amount\":12900},\"profile\":{\"level\":\"gold\"}}'\n"
	 "  --now T                the time of now() (ms since the epoch, or\n"
	 "                         2026-01-01[T08:00:00+08:00]); default: the clock\n"
	 "  --trace, -t            show every sub-expression's value\n"
	 "No database is used, so has_tag(), count() and sum() fail. A compile error is\n"
	 "reported with its line:column and exit status 1. The language: doc/expressions.md.\n"
	 "Example: scrm expr eval 'event.amount >= 10000' --bind '{\"event\":{\"amount\":12900}}'\n",
	 NULL},
	{0},
};

/* --------------------------------------------------------------------- rules */

static void print_load_report(const char *json, const void *ud)
{
	(void)ud;
	cJSON *r = cJSON_Parse(json);
	const cJSON *e;
	char v[24];
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "rules")) {
		bool changed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "changed"));
		bool enabled = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "enabled"));
		printf("rule %s: version %s, %s%s\n", cli_jstr(e, "id", "?"),
		       cli_jnum(e, "version", v, sizeof v), changed ? "loaded" : "unchanged",
		       enabled ? "" : " (disabled)");
	}
	cJSON_Delete(r);
}

static int cmd_rules_load(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *file;
	int rc = cli_parse(cli, cmd, argc, argv, NULL, &file, 1, 1, NULL);
	if (rc >= 0)
		return rc;
	char *text = cli_read_file(cli, file);
	if (!text)
		return CLI_EXIT_ERROR;
	scrm_db *db = cli_open(cli, false);
	if (!db) {
		free(text);
		return CLI_EXIT_ERROR;
	}
	char *report = NULL;
	rc = scrm_rules_load(db, text, &report);
	free(text);
	if (rc != SCRM_OK) {
		cli_lib_error(cli, db, rc);
		fprintf(stderr, "scrm: %s: no rule was changed\n", cli->cmdname);
		return cli_close(cli, db, CLI_EXIT_ERROR);
	}
	return cli_show(cli, db, rc, report, print_load_report, NULL);
}

static void print_rules_list(const char *json, const void *ud)
{
	(void)ud;
	cJSON *arr = cJSON_Parse(json);
	const cJSON *e;
	char n[24], at[40];
	printf("%-24s %4s %-8s %5s  %-8s %-14s %-12s %s\n", "rule", "ver", "state", "prio",
	       "trigger", "on", "group", "updated");
	cJSON_ArrayForEach(e, arr) {
		cli_pad(stdout, cli_jstr(e, "id", "?"), 25);
		printf("%4s ", cli_jnum(e, "version", n, sizeof n));
		printf("%-8s ", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "enabled")) ? "enabled"
											  : "disabled");
		printf("%5s  ", cli_jnum(e, "priority", n, sizeof n));
		cli_pad(stdout, cli_jstr(e, "trigger", "-"), 9);
		cli_pad(stdout, cli_jstr(e, "on", "-"), 15);
		cli_pad(stdout, cli_jstr(e, "group", "-"), 13);
		fputs(cli_jtime(e, "updated_at", at, sizeof at), stdout);
		const char *name = cli_jstr(e, "name", NULL);
		if (name)
			printf("  %s", name);
		putchar('\n');
	}
	printf("(%d rule%s)\n", cJSON_GetArraySize(arr), cJSON_GetArraySize(arr) == 1 ? "" : "s");
	cJSON_Delete(arr);
}

static int cmd_rules_list(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return cli_get(cli, cmd, argc, argv, NULL, scrm_rules_list_json, print_rules_list);
}

static int cmd_rules_show(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *id, *version_s = NULL;
	int64_t version = 0;
	const struct cli_opt opts[] = {{"version", 0, &version_s, NULL}, {0}};
	int rc = cli_parse(cli, cmd, argc, argv, opts, &id, 1, 1, NULL);
	if (rc >= 0 || (version_s && (rc = cli_parse_id(cli, cmd, "--version", version_s, &version)) >= 0))
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	rc = scrm_rules_get_json(db, id, version, &out);
	return cli_show(cli, db, rc, out, NULL, NULL);
}

/* enable, disable, remove: one rule id, one library call, one line of output. */
static int rule_state(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv, int what)
{
	static const char *const done[] = {"disabled", "enabled", "removed"};
	const char *id;
	int rc = cli_parse(cli, cmd, argc, argv, NULL, &id, 1, 1, NULL);
	if (rc >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	rc = what == 2 ? scrm_rules_remove(db, id) : scrm_rules_enable(db, id, what);
	if (rc != SCRM_OK)
		return cli_fail(cli, db, rc);
	if (cli->json) {
		printf("{\"rule\":");
		cli_json_str(stdout, id);
		if (what == 2)
			puts(",\"removed\":true}");
		else
			printf(",\"enabled\":%s}\n", what ? "true" : "false");
	} else {
		printf("rule %s %s\n", id, done[what]);
	}
	return cli_close(cli, db, CLI_EXIT_OK);
}

static int cmd_rules_disable(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return rule_state(cli, cmd, argc, argv, 0);
}

static int cmd_rules_enable(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return rule_state(cli, cmd, argc, argv, 1);
}

static int cmd_rules_remove(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return rule_state(cli, cmd, argc, argv, 2);
}

static int cmd_rules_config(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return cli_get(cli, cmd, argc, argv, scrm_rules_config_set, scrm_rules_config_json, NULL);
}

static const struct cli_cmd rules_subs[] = {
	{"load", cmd_rules_load, "rules load FILE|-", "Load a rule or an array of rules, all or nothing.",
	 "FILE holds one rule object or an array of them (- is standard input), e.g.\n"
	 "  {\"id\":\"big_order\",\"trigger\":{\"type\":\"event\",\"event\":\"order\"},\n"
	 "   \"condition\":\"event.amount >= 100000\",\n"
	 "   \"actions\":[{\"type\":\"send_coupon\",\"params\":{\"coupon\":\"THANKS50\"},\"consent\":\"marketing\"}]}\n"
	 "A changed definition makes a new version; the same one again keeps it. Prints\n"
	 "each rule's version (the library's report with --json). The rule JSON:\n"
	 "doc/rules.md.\n", NULL},
	{"list", cmd_rules_list, "rules list", "The rules, in priority order.", NULL, NULL},
	{"show", cmd_rules_show, "rules show ID [--version N]",
	 "A rule's definition (the current version, or version N).", NULL, NULL},
	{"disable", cmd_rules_disable, "rules disable ID",
	 "Stop a rule acting (its definition and version stay).", NULL, NULL},
	{"enable", cmd_rules_enable, "rules enable ID", "Let a disabled rule act again.", NULL, NULL},
	{"remove", cmd_rules_remove, "rules remove ID",
	 "Remove a rule (its versions, trace and outbox actions stay).", NULL, NULL},
	{"config", cmd_rules_config, "rules config [JSON]",
	 "Show, or change, caps, quiet hours, time zone, outbox and trace settings.",
	 "Members not given keep their values, e.g.\n"
	 "  scrm rules config '{\"groups\":{\"marketing\":{\"max\":3,\"per\":\"7d\"}}}'\n"
	 "  scrm rules config '{\"quiet_hours\":false,\"outbox\":{\"max_attempts\":5}}'\n", NULL},
	{0},
};

/* ---------------------------------------------------------------------- tick */

static void print_tick(const char *json, const void *ud)
{
	static const char *const keys[][2] = {
		{"scheduled", "date schedules made"}, {"absence", "absence waits fired"},
		{"date", "date occurrences fired"},   {"deferred", "held firings delivered"},
		{"dropped", "held firings dropped"},
	};
	cJSON *s = cJSON_Parse(json);
	char n[24], at[40];
	(void)ud;
	printf("%-12s%s\n", "tick at", cli_jtime(s, "now", at, sizeof at));
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		printf("%-12s%10s   %s\n", keys[i][0], cli_jnum(s, keys[i][0], n, sizeof n),
		       keys[i][1]);
	cJSON_Delete(s);
}

static int cmd_tick(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return cli_run_at(cli, cmd, argc, argv, scrm_rules_tick, print_tick);
}

/* --------------------------------------------------------------------- trace */

static void print_trace(const char *json, const void *ud)
{
	bool steps = *(const bool *)ud;
	cJSON *arr = cJSON_Parse(json);
	const cJSON *e;
	char at[40], n[24], c[24];
	cJSON_ArrayForEach(e, arr) {
		printf("%s  %s v%s  customer %s  ", cli_jtime(e, "at", at, sizeof at),
		       cli_jstr(e, "rule", "?"), cli_jnum(e, "version", n, sizeof n),
		       cli_jnum(e, "customer", c, sizeof c));
		printf("%s %s  %s\n", cli_jstr(e, "trigger", "?"), cli_jstr(e, "instance", "-"),
		       cli_jstr(e, "outcome", "?"));
		static const char *const parts[] = {"detail", "inputs"};
		for (size_t i = 0; i < 2; i++) {
			const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, parts[i]);
			if (!p || cJSON_IsNull(p) || (cJSON_IsObject(p) && !p->child))
				continue;
			printf("    %-8s", parts[i]);
			cli_print_value(stdout, p);
			putchar('\n');
		}
		const cJSON *cond = cJSON_GetObjectItemCaseSensitive(e, "condition");
		if (steps && cJSON_IsObject(cond)) {
			printf("    condition:\n");
			print_steps(cond, "      ");
		}
	}
	printf("(%d record%s)\n", cJSON_GetArraySize(arr), cJSON_GetArraySize(arr) == 1 ? "" : "s");
	cJSON_Delete(arr);
}

/* trace customer ID | trace rule RULE_ID: `by_rule` says which. */
static int trace_run(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv, bool by_rule)
{
	const char *arg, *limit_s = NULL, *since_s = NULL;
	bool steps = false;
	int64_t customer = 0, since = 0;
	int limit;
	const struct cli_opt opts[] = {
		{"limit", 'n', &limit_s, NULL},
		{"since", 0, &since_s, NULL},
		{"steps", 0, NULL, &steps},
		{0},
	};
	int rc = cli_parse(cli, cmd, argc, argv, opts, &arg, 1, 1, NULL);
	if (rc >= 0 || (!by_rule && (rc = cli_parse_id(cli, cmd, "customer id", arg, &customer)) >= 0) ||
	    (rc = parse_limit(cli, cmd, limit_s, &limit)) >= 0 ||
	    (since_s && (rc = cli_parse_time(cli, cmd, "--since", since_s, &since)) >= 0))
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	rc = scrm_rules_trace_json(db, by_rule ? arg : NULL, customer, since, limit,
				   steps ? SCRM_RULES_TRACE_STEPS : 0, &out);
	return cli_show(cli, db, rc, out, print_trace, &steps);
}

static int cmd_trace_customer(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return trace_run(cli, cmd, argc, argv, false);
}

static int cmd_trace_rule(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return trace_run(cli, cmd, argc, argv, true);
}

#define TRACE_OPTIONS                                                                        \
	"  --limit N, -n N   at most N records (default: all)\n"                                \
	"  --since T         only records at or after T (ms, or 2026-01-01[T08:00:00+08:00])\n" \
	"  --steps           re-evaluate each condition and show every sub-expression's value\n" \
	"Newest first. Outcomes: fired, condition_false, error, once, cooldown, no_consent,\n"  \
	"cap_reached, cap_deferred, quiet_hours_deferred, cancelled_by_event.\n"

static const struct cli_cmd trace_subs[] = {
	{"customer", cmd_trace_customer, "trace customer ID [--limit N] [--steps]",
	 "Why rules did or did not act for a customer (and ids merged into it).", TRACE_OPTIONS,
	 NULL},
	{"rule", cmd_trace_rule, "trace rule RULE_ID [--limit N] [--steps]",
	 "The decisions of one rule, for every customer.", TRACE_OPTIONS, NULL},
	{0},
};

/* -------------------------------------------------------------------- outbox */

static void print_actions(const char *json, const void *ud)
{
	(void)ud;
	cJSON *arr = cJSON_Parse(json);
	const cJSON *e;
	char id[24], c[24], v[24], a[24], at[40];
	cJSON_ArrayForEach(e, arr) {
		printf("#%s  ", cli_jnum(e, "id", id, sizeof id));
		cli_pad(stdout, cli_jstr(e, "action", "?"), 16);
		cli_pad(stdout, cli_jstr(e, "state", "?"), 8);
		printf("customer %s  rule %s v%s  attempt %s\n", cli_jnum(e, "customer", c, sizeof c),
		       cli_jstr(e, "rule", "?"), cli_jnum(e, "version", v, sizeof v),
		       cli_jnum(e, "attempt", a, sizeof a));
		const cJSON *params = cJSON_GetObjectItemCaseSensitive(e, "params");
		printf("    key %s  created %s", cli_jstr(e, "key", "?"),
		       cli_jtime(e, "created_at", at, sizeof at));
		if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "lease_until")))
			printf("  lease until %s", cli_jtime(e, "lease_until", at, sizeof at));
		putchar('\n');
		if (params && !cJSON_IsNull(params)) {
			fputs("    params ", stdout);
			cli_print_value(stdout, params);
			putchar('\n');
		}
		const char *err = cli_jstr(e, "last_error", NULL);
		if (err)
			printf("    last error: %s\n", err);
	}
	printf("(%d action%s)\n", cJSON_GetArraySize(arr), cJSON_GetArraySize(arr) == 1 ? "" : "s");
	cJSON_Delete(arr);
}

static int cmd_outbox_take(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *max_s = NULL, *lease_s = NULL;
	int64_t max = 10, lease = 0;
	const struct cli_opt opts[] = {
		{"max", 'n', &max_s, NULL},
		{"lease", 0, &lease_s, NULL},
		{0},
	};
	int rc = cli_parse(cli, cmd, argc, argv, opts, NULL, 0, 0, NULL);
	if (rc >= 0 || (max_s && (rc = cli_parse_id(cli, cmd, "--max", max_s, &max)) >= 0) ||
	    (lease_s && (rc = cli_parse_duration(cli, cmd, "--lease", lease_s, &lease)) >= 0))
		return rc;
	if (max > 1000)
		return cli_usage_error(cli, cmd, "--max must be at most 1000");
	if (lease_s && lease == 0)
		return cli_usage_error(cli, cmd, "--lease must be longer than 0");
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	rc = scrm_outbox_take(db, (int)max, lease, &out);
	return cli_show(cli, db, rc, out, print_actions, NULL);
}

#define MAX_ACK_IDS 1000

static int cmd_outbox_ack(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *pos[MAX_ACK_IDS];
	int64_t ids[MAX_ACK_IDS];
	int n, rc = cli_parse(cli, cmd, argc, argv, NULL, pos, 1, MAX_ACK_IDS, &n);
	if (rc >= 0)
		return rc;
	for (int i = 0; i < n; i++)
		if ((rc = cli_parse_id(cli, cmd, "action id", pos[i], &ids[i])) >= 0)
			return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	/* All or nothing: an unknown id acknowledges none. */
	if ((rc = scrm_db_begin(db)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	int i;
	for (i = 0; i < n && rc == SCRM_OK; i++)
		rc = scrm_outbox_ack(db, ids[i]);
	if (rc == SCRM_OK)
		rc = scrm_db_commit(db);
	if (rc != SCRM_OK) {
		fprintf(stderr, "scrm: %s: action %lld: %s (%s)\n", cli->cmdname, (long long)ids[i - 1],
			scrm_errmsg(db), scrm_errstr(rc));
		if (scrm_db_batch_depth(db) > 0)
			scrm_db_rollback(db);
		if (n > 1)
			fprintf(stderr, "scrm: %s: no action was acknowledged\n", cli->cmdname);
		return cli_close(cli, db, CLI_EXIT_ERROR);
	}
	if (cli->json) {
		fputs("{\"acknowledged\":[", stdout);
		for (i = 0; i < n; i++)
			printf("%s%lld", i ? "," : "", (long long)ids[i]);
		puts("]}");
	} else {
		for (i = 0; i < n; i++)
			printf("action %lld acknowledged (done)\n", (long long)ids[i]);
	}
	return cli_close(cli, db, CLI_EXIT_OK);
}

static int cmd_outbox_fail(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *arg, *error = NULL;
	bool permanent = false;
	int64_t id;
	const struct cli_opt opts[] = {
		{"error", 'e', &error, NULL},
		{"permanent", 0, NULL, &permanent},
		{0},
	};
	int rc = cli_parse(cli, cmd, argc, argv, opts, &arg, 1, 1, NULL);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "action id", arg, &id)) >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	if ((rc = scrm_outbox_fail(db, id, error, permanent)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	if (cli->json)
		printf("{\"id\":%lld,\"failed\":true,\"permanent\":%s}\n", (long long)id,
		       permanent ? "true" : "false");
	else
		printf("action %lld %s\n", (long long)id,
		       permanent ? "failed for good (dead; 'scrm outbox retry' revives it)"
				 : "failed (offered again after the backoff)");
	return cli_close(cli, db, CLI_EXIT_OK);
}

static int cmd_outbox_retry(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *arg;
	int64_t id;
	int rc = cli_parse(cli, cmd, argc, argv, NULL, &arg, 1, 1, NULL);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "action id", arg, &id)) >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	if ((rc = scrm_outbox_retry(db, id)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	if (cli->json)
		printf("{\"id\":%lld,\"retried\":true}\n", (long long)id);
	else
		printf("action %lld is ready again (attempts reset)\n", (long long)id);
	return cli_close(cli, db, CLI_EXIT_OK);
}

static int cmd_outbox_list(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *state = NULL, *customer_s = NULL, *limit_s = NULL;
	int64_t customer = 0;
	int limit;
	const struct cli_opt opts[] = {
		{"state", 's', &state, NULL},
		{"customer", 'c', &customer_s, NULL},
		{"limit", 'n', &limit_s, NULL},
		{0},
	};
	int rc = cli_parse(cli, cmd, argc, argv, opts, NULL, 0, 0, NULL);
	if (rc >= 0 ||
	    (customer_s && (rc = cli_parse_id(cli, cmd, "--customer", customer_s, &customer)) >= 0) ||
	    (rc = parse_limit(cli, cmd, limit_s, &limit)) >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	rc = scrm_outbox_list_json(db, state, customer, limit, &out);
	return cli_show(cli, db, rc, out, print_actions, NULL);
}

static const struct cli_cmd outbox_subs[] = {
	{"take", cmd_outbox_take, "outbox take [--max N] [--lease DUR]",
	 "Lease the actions that are ready, for the host to perform.",
	 "  --max N, -n N   at most N actions (1-1000; default 10)\n"
	 "  --lease DUR     how long they are leased (30s, 5m, 1h; default: rules config)\n"
	 "Each action carries a stable idempotency key. Acknowledge each one performed\n"
	 "with 'scrm outbox ack ID', or 'scrm outbox fail ID'; one neither acknowledged\n"
	 "nor failed is offered again when its lease runs out.\n", NULL},
	{"ack", cmd_outbox_ack, "outbox ack ID...", "Acknowledge actions as performed, all or none.",
	 NULL, NULL},
	{"fail", cmd_outbox_fail, "outbox fail ID [--error TEXT] [--permanent]",
	 "Report an action that could not be performed.",
	 "  --error TEXT, -e TEXT   kept as the action's last error\n"
	 "  --permanent             give up on it (dead) instead of retrying after the backoff\n",
	 NULL},
	{"retry", cmd_outbox_retry, "outbox retry ID",
	 "Make a dead or failed action ready again at once.", NULL, NULL},
	{"list", cmd_outbox_list, "outbox list [--state S] [--customer ID] [--limit N]",
	 "The outbox, newest first.",
	 "  --state S, -s S         pending, leased, failed, done or dead\n"
	 "  --customer ID, -c ID    one customer's actions (and ids merged into it)\n"
	 "  --limit N, -n N         at most N actions\n", NULL},
	{0},
};

/* ---------------------------------------------------------------------- table */

static const struct cli_cmd rules_cmds[] = {
	{"expr", NULL, "expr eval EXPR [--bind JSON] [--now T] [--trace]",
	 "Evaluate an expression of the rule language (no database).", NULL, expr_subs},
	{"rules", NULL, "rules <load|list|show|disable|enable|remove|config> ...",
	 "Load, inspect and switch rules; rule engine configuration.", NULL, rules_subs},
	{"tick", cmd_tick, "tick [--now T]",
	 "Fire what time makes due: absence waits, date rules, held firings.",
	 "  --now T   as of T (ms since the epoch, or 2026-01-01[T08:00:00+08:00]);\n"
	 "            default: now\n"
	 "Run it periodically (every minute is plenty); it prints what it fired.\n", NULL},
	{"trace", NULL, "trace <customer|rule> ID [--limit N] [--steps]",
	 "The decision trace: why a rule fired, or did not.", NULL, trace_subs},
	{"outbox", NULL, "outbox <take|ack|fail|retry|list> ...",
	 "Host actions decided by rules: take, acknowledge, fail, retry, list.", NULL, outbox_subs},
	{0},
};

const struct cli_group cli_group_rules = {"rules and the outbox", rules_cmds};
