/*
 * scrm — tags and segments commands (include/scrm/rules.h): tag groups,
 * manual and rule tags, a customer's tags and their history, and segments
 * (count, export, explain) over the profile.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "common.h"

#define SEGMENT_PAGE 10000 /* ids per scrm_segment_ids_json() page */

/* ---------------------------------------------------------------------- tags */

static void print_defined(const cJSON *t)
{
	const char *expr = cli_jstr(t, "expr", NULL);
	const char *group = cli_jstr(t, "group", NULL);
	printf("tag %s defined", cli_jstr(t, "name", "?"));
	if (group)
		printf(" in group %s", group);
	if (expr)
		printf(" (rule tag: %s; run 'scrm tags refresh' to apply it to everyone)", expr);
	putchar('\n');
}

static void print_tags_defined(struct cli *cli, const cJSON *parsed, int count)
{
	const cJSON *e;
	if (cli->json) {
		printf("{\"tags_defined\":%d}\n", count);
	} else if (cJSON_IsArray(parsed)) {
		cJSON_ArrayForEach(e, parsed)
			print_defined(e);
	} else {
		print_defined(parsed);
	}
}

static int cmd_tags_define(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return cli_define(cli, cmd, argc, argv, "tag", scrm_tags_define, print_tags_defined);
}

static int cmd_tags_group(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *json;
	int rc = cli_parse(cli, cmd, argc, argv, NULL, &json, 1, 1, NULL);
	if (rc >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	if ((rc = scrm_tags_group_set(db, json)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	cJSON *g = cJSON_Parse(json);
	const char *name = cli_jstr(g, "name", "?");
	if (cli->json) {
		fputs("{\"group\":", stdout);
		cli_json_str(stdout, name);
		puts("}");
	} else {
		printf("tag group %s set%s\n", name,
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "exclusive")) ? " (exclusive)"
										: "");
	}
	cJSON_Delete(g);
	return cli_close(cli, db, CLI_EXIT_OK);
}

static void print_tags_list(const char *json, const void *ud)
{
	(void)ud;
	cJSON *j = cJSON_Parse(json);
	const cJSON *e;
	char n[24];
	const cJSON *groups = cJSON_GetObjectItemCaseSensitive(j, "groups");
	printf("groups (%d):\n", cJSON_GetArraySize(groups));
	cJSON_ArrayForEach(e, groups) {
		fputs("  ", stdout);
		cli_pad(stdout, cli_jstr(e, "name", "?"), 20);
		cli_pad(stdout,
			cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "exclusive")) ? "exclusive" : "",
			10);
		puts(cli_jstr(e, "description", ""));
	}
	const cJSON *tags = cJSON_GetObjectItemCaseSensitive(j, "tags");
	printf("tags (%d):\n", cJSON_GetArraySize(tags));
	cJSON_ArrayForEach(e, tags) {
		fputs("  ", stdout);
		cli_pad(stdout, cli_jstr(e, "name", "?"), 20);
		cli_pad(stdout, cli_jstr(e, "group", "-"), 14);
		cli_pad(stdout, cli_jstr(e, "kind", "?"), 7);
		cli_jnum(e, "customers", n, sizeof n);
		printf("%8s customer%s", n, strcmp(n, "1") ? "s" : "");
		const char *expr = cli_jstr(e, "expr", NULL);
		if (expr)
			printf("  v%s %s", cli_jnum(e, "version", n, sizeof n), expr);
		const char *desc = cli_jstr(e, "description", NULL);
		if (desc && *desc)
			printf("  (%s)", desc);
		putchar('\n');
	}
	cJSON_Delete(j);
}

static int cmd_tags_list(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return cli_get(cli, cmd, argc, argv, NULL, scrm_tags_list_json, print_tags_list);
}

static void print_refresh(const char *json, const void *ud)
{
	cJSON *s = cJSON_Parse(json);
	const cJSON *e;
	char h[24], a[24], r[24], v[24];
	(void)ud;
	printf("%-20s %4s %10s %8s %8s\n", "rule tag", "ver", "holders", "added", "removed");
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(s, "tags")) {
		cli_pad(stdout, e->string, 21);
		printf("%4s %10s %8s %8s\n", cli_jnum(e, "version", v, sizeof v),
		       cli_jnum(e, "holders", h, sizeof h), cli_jnum(e, "added", a, sizeof a),
		       cli_jnum(e, "removed", r, sizeof r));
	}
	const cJSON *sec = cJSON_GetObjectItemCaseSensitive(s, "seconds");
	printf("%s customers evaluated in %.2f s\n", cli_jnum(s, "customers", h, sizeof h),
	       cJSON_IsNumber(sec) ? sec->valuedouble : 0.0);
	cJSON_Delete(s);
}

static int cmd_tags_refresh(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *tag = NULL;
	int n, rc = cli_parse(cli, cmd, argc, argv, NULL, &tag, 0, 1, &n);
	if (rc >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	rc = scrm_tags_refresh(db, n ? tag : NULL, &out);
	return cli_show(cli, db, rc, out, print_refresh, NULL);
}

/* "actor alice", "rule vip_upgrade v3" from a tag source object. */
static void print_source(const cJSON *src)
{
	char v[24];
	const char *actor = cli_jstr(src, "actor", NULL);
	const char *rule = cli_jstr(src, "rule", NULL);
	if (actor)
		printf("actor %s", actor);
	else if (rule)
		printf("rule %s v%s", rule, cli_jnum(src, "version", v, sizeof v));
	else
		cli_print_value(stdout, src);
}

static void print_customer_tags(const char *json, const void *ud)
{
	int64_t customer = *(const int64_t *)ud;
	cJSON *arr = cJSON_Parse(json);
	const cJSON *e;
	char at[40];
	printf("tags of customer %lld (%d):\n", (long long)customer, cJSON_GetArraySize(arr));
	cJSON_ArrayForEach(e, arr) {
		fputs("  ", stdout);
		cli_pad(stdout, cli_jstr(e, "tag", "?"), 20);
		cli_pad(stdout, cli_jstr(e, "group", "-"), 14);
		cli_pad(stdout, cli_jtime(e, "at", at, sizeof at), 22);
		print_source(cJSON_GetObjectItemCaseSensitive(e, "source"));
		putchar('\n');
	}
	cJSON_Delete(arr);
}

static int cmd_tags_show(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *arg;
	int64_t customer;
	int rc = cli_parse(cli, cmd, argc, argv, NULL, &arg, 1, 1, NULL);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "customer id", arg, &customer)) >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	rc = scrm_tags_customer_json(db, customer, &out);
	return cli_show(cli, db, rc, out, print_customer_tags, &customer);
}

static void print_tag_history(const char *json, const void *ud)
{
	int64_t customer = *(const int64_t *)ud;
	cJSON *arr = cJSON_Parse(json);
	const cJSON *e;
	char at[40], c[24];
	printf("tag changes of customer %lld (%d):\n", (long long)customer, cJSON_GetArraySize(arr));
	cJSON_ArrayForEach(e, arr) {
		fputs("  ", stdout);
		cli_pad(stdout, cli_jtime(e, "at", at, sizeof at), 22);
		cli_pad(stdout, cli_jstr(e, "op", "?"), 7);
		cli_pad(stdout, cli_jstr(e, "tag", "?"), 20);
		print_source(cJSON_GetObjectItemCaseSensitive(e, "source"));
		const char *reason = cli_jstr(e, "reason", NULL);
		if (reason)
			printf("  (%s)", reason);
		cli_jnum(e, "customer", c, sizeof c);
		if (strtoll(c, NULL, 10) != customer)
			printf("  [as customer %s]", c);
		putchar('\n');
	}
	cJSON_Delete(arr);
}

static int cmd_tags_history(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *arg, *limit_s = NULL;
	int64_t customer, limit = 0;
	const struct cli_opt opts[] = {{"limit", 'n', &limit_s, NULL}, {0}};
	int rc = cli_parse(cli, cmd, argc, argv, opts, &arg, 1, 1, NULL);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "customer id", arg, &customer)) >= 0 ||
	    (limit_s && (rc = cli_parse_id(cli, cmd, "--limit", limit_s, &limit)) >= 0))
		return rc;
	if (limit > 1000000000)
		return cli_usage_error(cli, cmd, "--limit %lld is too large", (long long)limit);
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	rc = scrm_tags_history_json(db, customer, (int)limit, &out);
	return cli_show(cli, db, rc, out, print_tag_history, &customer);
}

/* tag add / tag remove */
static int tag_change(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv, bool add)
{
	const char *pos[2], *actor = NULL;
	int64_t customer;
	const struct cli_opt opts[] = {{"actor", 'a', &actor, NULL}, {0}};
	int rc = cli_parse(cli, cmd, argc, argv, opts, pos, 2, 2, NULL);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "customer id", pos[0], &customer)) >= 0)
		return rc;
	if (!actor) {
		const char *user = getenv("USER");
		actor = user && *user ? user : "scrm";
	}
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	rc = add ? scrm_tag_add(db, customer, pos[1], actor)
		 : scrm_tag_remove(db, customer, pos[1], actor);
	if (rc != SCRM_OK)
		return cli_fail(cli, db, rc);
	int has = 0;
	if ((rc = scrm_tag_has(db, customer, pos[1], &has)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	if (cli->json) {
		printf("{\"customer\":%lld,\"tag\":", (long long)customer);
		cli_json_str(stdout, pos[1]);
		printf(",\"has\":%s}\n", has ? "true" : "false");
	} else {
		printf("customer %lld %s tag %s (by %s)\n", (long long)customer,
		       has ? "holds" : "does not hold", pos[1], actor);
	}
	return cli_close(cli, db, CLI_EXIT_OK);
}

static int cmd_tag_add(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return tag_change(cli, cmd, argc, argv, true);
}

static int cmd_tag_remove(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return tag_change(cli, cmd, argc, argv, false);
}

static const struct cli_cmd tags_subs[] = {
	{"define", cmd_tags_define, "tags define JSON | --file FILE",
	 "Create or change a tag, or a rule tag kept by an expression.",
	 "  --file FILE, -f FILE   read the definition (or an array of them) from FILE\n"
	 "Examples:\n"
	 "  scrm tags define '{\"name\":\"gold\",\"group\":\"level\"}'\n"
	 "  scrm tags define '{\"name\":\"big_spender\",\"expr\":\"profile.figures.orders >= 5\"}'\n"
	 "A rule tag is held exactly while its expression over the profile is true; a new\n"
	 "expression applies to everyone after 'scrm tags refresh'.\n", NULL},
	{"group", cmd_tags_group, "tags group JSON", "Create or change a tag group.",
	 "  scrm tags group '{\"name\":\"level\",\"exclusive\":true,\"description\":\"membership\"}'\n"
	 "In an exclusive group a customer holds at most one tag.\n", NULL},
	{"list", cmd_tags_list, "tags list", "Tag groups and tags, with their holders.", NULL, NULL},
	{"refresh", cmd_tags_refresh, "tags refresh [TAG]",
	 "Re-evaluate rule tags (one, or all) for every customer.", NULL, NULL},
	{"show", cmd_tags_show, "tags show ID", "The tags a customer holds, with source and time.",
	 NULL, NULL},
	{"history", cmd_tags_history, "tags history ID [--limit N]",
	 "A customer's tag changes, newest first.", "  --limit N, -n N   at most N changes\n", NULL},
	{0},
};

#define TAG_OPTIONS \
	"  --actor A, -a A   who does it, recorded as the source (default: $USER)\n"

static const struct cli_cmd tag_subs[] = {
	{"add", cmd_tag_add, "tag add ID TAG [--actor A]", "Give a customer a tag.", TAG_OPTIONS,
	 NULL},
	{"remove", cmd_tag_remove, "tag remove ID TAG [--actor A]", "Take a tag from a customer.",
	 TAG_OPTIONS, NULL},
	{0},
};

/* ------------------------------------------------------------------ segments */

static int cmd_segment_count(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *expr;
	int rc = cli_parse(cli, cmd, argc, argv, NULL, &expr, 1, 1, NULL);
	if (rc >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	int64_t count = 0;
	if ((rc = scrm_segment_count(db, expr, &count)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	if (cli->json)
		printf("{\"count\":%lld}\n", (long long)count);
	else
		printf("%lld\n", (long long)count);
	return cli_close(cli, db, CLI_EXIT_OK);
}

/*
 * Write the ids of one page ("[3,7,12]") to `f`, counting them and keeping
 * the last. The text is read directly so that 64-bit ids stay exact.
 */
static int write_page(FILE *f, const char *page, bool json, long long *count, int64_t *last)
{
	int n = 0;
	for (const char *p = page; *p;) {
		if (*p < '0' || *p > '9') {
			p++;
			continue;
		}
		char *end;
		long long id = strtoll(p, &end, 10);
		if (json)
			fprintf(f, "%s%lld", *count ? "," : "", id);
		else
			fprintf(f, "%lld\n", id);
		++*count;
		*last = (int64_t)id;
		n++;
		p = end;
	}
	return n;
}

static int cmd_segment_export(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *expr, *out_path = NULL;
	const struct cli_opt opts[] = {{"out", 'o', &out_path, NULL}, {0}};
	int rc = cli_parse(cli, cmd, argc, argv, opts, &expr, 1, 1, NULL);
	if (rc >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	/* Check the expression before creating the file. */
	int64_t total = 0;
	if ((rc = scrm_segment_count(db, expr, &total)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	FILE *f = stdout;
	if (out_path && strcmp(out_path, "-") && !(f = fopen(out_path, "w"))) {
		cli_error(cli, "cannot create '%s': %s", out_path, strerror(errno));
		return cli_close(cli, db, CLI_EXIT_ERROR);
	}
	struct cli_progress prog;
	cli_progress_start(&prog);
	prog.unit = "ids";
	long long count = 0;
	int64_t after = 0;
	if (cli->json)
		fputc('[', f);
	for (;;) {
		char *page = NULL;
		if ((rc = scrm_segment_ids_json(db, expr, after, SEGMENT_PAGE, &page)) != SCRM_OK)
			break;
		int n = write_page(f, page, cli->json, &count, &after);
		scrm_free(page);
		cli_progress_update(&prog, count);
		if (n < SEGMENT_PAGE)
			break;
	}
	cli_progress_end(&prog);
	if (cli->json && rc == SCRM_OK)
		fputs("]\n", f);
	int status = CLI_EXIT_OK;
	if (rc != SCRM_OK)
		status = cli_lib_error(cli, db, rc);
	if (f != stdout && fclose(f) != 0) {
		status = cli_error(cli, "cannot write '%s': %s", out_path, strerror(errno));
	} else if (f != stdout && status == CLI_EXIT_OK) {
		/* The ids went to the file; say how many on standard error. */
		fprintf(stderr, "scrm: %s: %lld customer%s written to %s\n", cli->cmdname, count,
			count == 1 ? "" : "s", out_path);
	}
	return cli_close(cli, db, status);
}

static void print_plan(const char *json, const void *ud)
{
	cJSON *j = cJSON_Parse(json);
	const char *plan = cli_jstr(j, "plan", "?");
	(void)ud;
	printf("plan  %s%s\n", plan,
	       !strcmp(plan, "sql") ? " (one SQL query)" : " (customer by customer)");
	const char *sql = cli_jstr(j, "sql", NULL), *why = cli_jstr(j, "why", NULL);
	if (sql)
		printf("sql   %s\n", sql);
	if (why)
		printf("why   %s\n", why);
	cJSON_Delete(j);
}

static int cmd_segment_explain(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *expr;
	int rc = cli_parse(cli, cmd, argc, argv, NULL, &expr, 1, 1, NULL);
	if (rc >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	rc = scrm_segment_explain_json(db, expr, &out);
	return cli_show(cli, db, rc, out, print_plan, NULL);
}

#define SEGMENT_NOTE \
	"EXPR is an expression over the profile, e.g.\n" \
	"  'profile.figures.orders >= 2 && has_tag(\"big_spender\")'\n"

static const struct cli_cmd segment_subs[] = {
	{"count", cmd_segment_count, "segment count EXPR",
	 "How many customers the expression holds for.", SEGMENT_NOTE, NULL},
	{"export", cmd_segment_export, "segment export EXPR [--out FILE]",
	 "The ids of the segment, ascending: one per line (a JSON array with --json).",
	 "  --out FILE, -o FILE   write them to FILE (the count goes to standard error)\n"
	 SEGMENT_NOTE "On a terminal a progress line shows the rate.\n", NULL},
	{"explain", cmd_segment_explain, "segment explain EXPR",
	 "Whether the segment runs as one SQL query or customer by customer.", SEGMENT_NOTE, NULL},
	{0},
};

/* ---------------------------------------------------------------------- table */

static const struct cli_cmd tags_cmds[] = {
	{"tags", NULL, "tags <define|group|list|refresh|show|history> ...",
	 "Define tags and rule tags; a customer's tags and their history.", NULL, tags_subs},
	{"tag", NULL, "tag <add|remove> ID TAG [--actor A]", "Give or take a customer's tag.", NULL,
	 tag_subs},
	{"segment", NULL, "segment <count|export|explain> EXPR",
	 "Customers for whom an expression over the profile holds.", NULL, segment_subs},
	{0},
};

const struct cli_group cli_group_tags = {"tags and segments", tags_cmds};
