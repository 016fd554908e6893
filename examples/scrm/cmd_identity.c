/*
 * scrm — identity commands (include/scrm/identity.h): observe, resolve,
 * customer show/explain, merge, never-merge, unmerge and kinds.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "common.h"

/* ----------------------------------------------------------- small helpers */

static int array_size(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 0;
}

/* ------------------------------------------------------------------ observe */

struct observe_stats {
	bool report;
	long long observed, created, attached, merged, unchanged, conflicts, skipped_ids;
};

static void count_outcome(struct observe_stats *s, const char *outcome)
{
	if (!strcmp(outcome, "created"))
		s->created++;
	else if (!strcmp(outcome, "attached"))
		s->attached++;
	else if (!strcmp(outcome, "merged"))
		s->merged++;
	else if (!strcmp(outcome, "unchanged"))
		s->unchanged++;
}

/*
 * Most reports have no conflicts and no rejected values; for those a scan
 * of the compact text finds the outcome without building a tree (parsing
 * every report cost the loader a tenth of its time). A key cannot be
 * faked from inside a string value: its quotes there would be escaped.
 */
static bool count_report_fast(struct observe_stats *s, const char *report)
{
	static const char key[] = "\"outcome\":\"";
	const char *o = strstr(report, key);
	if (!o || !strstr(report, "\"conflicts\":[]") || !strstr(report, "\"rejected\":[]"))
		return false;
	o += sizeof key - 1;
	char outcome[16];
	size_t n = strcspn(o, "\"");
	if (n >= sizeof outcome || o[n] != '"')
		return false;
	memcpy(outcome, o, n);
	outcome[n] = '\0';
	count_outcome(s, outcome);
	return true;
}

static void count_report(struct observe_stats *s, const char *report)
{
	if (count_report_fast(s, report))
		return;
	cJSON *r = cJSON_Parse(report);
	count_outcome(s, cli_jstr(r, "outcome", ""));
	s->conflicts += array_size(r, "conflicts");
	s->skipped_ids += array_size(r, "rejected");
	cJSON_Delete(r);
}

static int observe_line(void *ud, scrm_db *db, const char *line, long long lineno)
{
	struct observe_stats *s = ud;
	int64_t customer;
	char *rep = NULL;
	(void)lineno;
	int rc = scrm_identity_observe_json(db, line, &customer, &rep);
	if (rc != SCRM_OK)
		return rc;
	s->observed++;
	if (rep)
		count_report(s, rep);
	if (s->report)
		printf("%s\n", rep ? rep : "{}");
	scrm_free(rep);
	return SCRM_OK;
}

static void print_summary(struct cli *cli, FILE *f, const struct observe_stats *s,
			  const struct cli_load *l)
{
	if (cli->json) {
		fprintf(f, "{\"observed\":%lld,\"created\":%lld,\"attached\":%lld,\"merged\":%lld,"
			   "\"unchanged\":%lld,\"conflicts\":%lld,\"skipped_identifiers\":%lld,",
			s->observed, s->created, s->attached, s->merged, s->unchanged, s->conflicts,
			s->skipped_ids);
		cli_load_json(f, l);
		fputs("}\n", f);
		return;
	}
	fprintf(f, "%-12s%10lld\n", "lines", l->lines);
	fprintf(f, "%-12s%10lld\n", "created", s->created);
	fprintf(f, "%-12s%10lld\n", "attached", s->attached);
	fprintf(f, "%-12s%10lld\n", "merged", s->merged);
	fprintf(f, "%-12s%10lld\n", "unchanged", s->unchanged);
	fprintf(f, "%-12s%10lld\n", "conflicts", s->conflicts);
	fprintf(f, "%-12s%10lld   (blocked or invalid values next to usable ones)\n", "skipped ids",
		s->skipped_ids);
	cli_load_rejected_line(f, l);
	fprintf(f, "%-12s%10.2f s (%.0f lines/s)\n", "time", l->seconds,
		l->seconds > 0 ? (double)l->lines / l->seconds : 0.0);
}

static void print_one_report(const char *report, int64_t customer)
{
	cJSON *r = cJSON_Parse(report);
	const cJSON *e;
	char a[24], b[24], c[24];
	printf("customer %lld: %s\n", (long long)customer, cli_jstr(r, "outcome", "?"));
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "merged"))
		printf("  merged customer %s into %s (merge #%s)\n", cli_jnum(e, "absorbed", a, sizeof a),
		       cli_jnum(e, "survivor", b, sizeof b), cli_jnum(e, "merge", c, sizeof c));
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "attached"))
		printf("  attached %s %s\n", cli_jstr(e, "kind", "?"), cli_jstr(e, "value", "?"));
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "conflicts"))
		printf("  conflict %s %s (held by customer %s): %s\n", cli_jstr(e, "kind", "?"),
		       cli_jstr(e, "value", "?"), cli_jnum(e, "owner", a, sizeof a), cli_jstr(e, "reason", ""));
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "rejected"))
		printf("  skipped %s \"%s\": %s\n", cli_jstr(e, "kind", "?"), cli_jstr(e, "value", "?"),
		       cli_jstr(e, "reason", ""));
	cJSON_Delete(r);
}

static int observe_one(struct cli *cli, scrm_db *db, const char *json, bool report)
{
	int64_t customer = 0;
	char *rep = NULL;
	int rc = scrm_identity_observe_json(db, json, &customer, &rep);
	if (rc != SCRM_OK) {
		cli_lib_error(cli, db, rc);
		const char *p = json;
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '{')
			fprintf(stderr, "scrm: observe: the argument is one JSON object; "
					"use --file FILE (or -) for JSON lines\n");
		return CLI_EXIT_ERROR;
	}
	if (cli->json || report)
		printf("%s\n", rep ? rep : "{}");
	else if (rep)
		print_one_report(rep, customer);
	else
		printf("customer %lld\n", (long long)customer);
	scrm_free(rep);
	return CLI_EXIT_OK;
}

static int cmd_observe(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *file = NULL, *arg = NULL;
	bool report = false, strict = false;
	const struct cli_opt opts[] = {
		{"file", 'f', &file, NULL},
		{"report", 0, NULL, &report},
		{"strict", 0, NULL, &strict},
		{0},
	};
	int n, rc = cli_parse(cli, cmd, argc, argv, opts, &arg, 0, 1, &n);
	if (rc >= 0)
		return rc;
	if (n && file)
		return cli_usage_error(cli, cmd, "give a JSON argument or --file, not both");
	if (!n && !file) {
		if (isatty(STDIN_FILENO))
			return cli_usage_error(cli, cmd, "give a JSON observation, --file FILE, or - for standard input");
		file = "-";
	}
	if (n && !strcmp(arg, "-"))
		file = "-";

	FILE *in = NULL;
	if (file) {
		in = strcmp(file, "-") ? fopen(file, "r") : stdin;
		if (!in)
			return cli_error(cli, "cannot open '%s': %s", file, strerror(errno));
	}
	scrm_db *db = cli_open(cli, false);
	if (!db) {
		if (in && in != stdin)
			fclose(in);
		return CLI_EXIT_ERROR;
	}
	if (in) {
		struct observe_stats s = {.report = report};
		struct cli_load l = {.name = strcmp(file, "-") ? file : "<stdin>", .in = in};
		rc = cli_load_lines(cli, db, &l, observe_line, &s);
		/* With --report, stdout carries only report lines; the summary goes to stderr. */
		print_summary(cli, report ? stderr : stdout, &s, &l);
		if (rc == CLI_EXIT_OK && strict && l.rejected)
			rc = CLI_EXIT_ERROR;
		cli_load_free(&l);
		if (in != stdin)
			fclose(in);
	} else {
		rc = observe_one(cli, db, arg, report);
	}
	return cli_close(cli, db, rc);
}

/* ------------------------------------------------------------------ resolve */

static int cmd_resolve(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *pos[2];
	int rc = cli_parse(cli, cmd, argc, argv, NULL, pos, 2, 2, NULL);
	if (rc >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	int64_t customer;
	rc = scrm_identity_resolve(db, pos[0], pos[1], &customer);
	if (rc != SCRM_OK)
		return cli_fail(cli, db, rc);
	if (cli->json) {
		printf("{\"kind\":");
		cli_json_str(stdout, pos[0]);
		printf(",\"value\":");
		cli_json_str(stdout, pos[1]);
		printf(",\"customer\":%lld}\n", (long long)customer);
	} else {
		printf("%lld\n", (long long)customer);
	}
	return cli_close(cli, db, CLI_EXIT_OK);
}

/* ----------------------------------------------------------------- customer */

static void print_identifiers(const cJSON *ids)
{
	const cJSON *e;
	char at[40], obs[24];
	printf("identifiers (%d):\n", cJSON_GetArraySize(ids));
	cJSON_ArrayForEach(e, ids) {
		fputs("  ", stdout);
		cli_pad(stdout, cli_jstr(e, "kind", "?"), 24);
		cli_pad(stdout, cli_jstr(e, "value", "?"), 28);
		cli_pad(stdout, cli_jstr(e, "channel", "-"), 12);
		printf("%s  obs %s\n", cli_jtime(e, "at", at, sizeof at),
		       cli_jnum(e, "observation", obs, sizeof obs));
	}
}

static void print_history(const cJSON *hist)
{
	const cJSON *e;
	char id[24], sv[24], ab[24], at[40], obs[24], undone[24];
	printf("history (%d):\n", cJSON_GetArraySize(hist));
	cJSON_ArrayForEach(e, hist) {
		const char *op = cli_jstr(e, "op", "?");
		printf("  #%-5s %-8s customer %s %s %s  %s", cli_jnum(e, "id", id, sizeof id), op,
		       cli_jnum(e, "absorbed", ab, sizeof ab),
		       strcmp(op, "unmerge") ? "into" : "split from",
		       cli_jnum(e, "survivor", sv, sizeof sv), cli_jtime(e, "at", at, sizeof at));
		if (strcmp(cli_jnum(e, "observation", obs, sizeof obs), "-"))
			printf("  obs %s", obs);
		const char *reason = cli_jstr(e, "reason", NULL);
		if (reason && *reason)
			printf("  \"%s\"", reason);
		if (strcmp(cli_jnum(e, "undone_by", undone, sizeof undone), "-"))
			printf("  (undone by #%s)", undone);
		putchar('\n');
	}
}

static int cmd_customer_show(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *arg;
	int64_t id, canon;
	int rc = cli_parse(cli, cmd, argc, argv, NULL, &arg, 1, 1, NULL);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "customer id", arg, &id)) >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *ids = NULL, *hist = NULL;
	if ((rc = scrm_identity_canonical(db, id, &canon)) != SCRM_OK ||
	    (rc = scrm_identity_list_json(db, id, &ids)) != SCRM_OK ||
	    (rc = scrm_identity_history_json(db, id, &hist)) != SCRM_OK) {
		scrm_free(ids);
		return cli_fail(cli, db, rc);
	}
	if (cli->json) {
		printf("{\"customer\":%lld,\"canonical\":%lld,\"identifiers\":%s,\"history\":%s}\n",
		       (long long)id, (long long)canon, ids, hist);
	} else {
		cJSON *ji = cJSON_Parse(ids), *jh = cJSON_Parse(hist);
		printf("customer %lld\n", (long long)canon);
		if (canon != id)
			printf("(customer %lld was merged into %lld)\n", (long long)id, (long long)canon);
		print_identifiers(ji);
		print_history(jh);
		cJSON_Delete(ji);
		cJSON_Delete(jh);
	}
	scrm_free(ids);
	scrm_free(hist);
	return cli_close(cli, db, CLI_EXIT_OK);
}

static int cmd_customer_explain(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *arg;
	bool dot = false;
	int64_t id;
	const struct cli_opt opts[] = {{"dot", 0, NULL, &dot}, {0}};
	int rc = cli_parse(cli, cmd, argc, argv, opts, &arg, 1, 1, NULL);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "customer id", arg, &id)) >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	rc = dot ? scrm_identity_explain_dot(db, id, &out) : scrm_identity_explain_json(db, id, &out);
	if (rc != SCRM_OK)
		return cli_fail(cli, db, rc);
	if (dot) {
		size_t n = strlen(out);
		fputs(out, stdout);
		if (n == 0 || out[n - 1] != '\n')
			putchar('\n');
	} else {
		cli_print_json(cli, out);
	}
	scrm_free(out);
	return cli_close(cli, db, CLI_EXIT_OK);
}

static const struct cli_cmd customer_subs[] = {
	{"show", cmd_customer_show, "customer show ID", "Identifiers and merge history of a customer.",
	 "A merged-away id shows its survivor. --json prints\n"
	 "{\"customer\",\"canonical\",\"identifiers\":[…],\"history\":[…]}.\n", NULL},
	{"explain", cmd_customer_explain, "customer explain ID [--dot]",
	 "The identity graph of a customer as JSON, or as Graphviz DOT.",
	 "  --dot   print Graphviz DOT (render with: dot -Tsvg > graph.svg)\n"
	 "Without --json the JSON is indented for reading.\n", NULL},
	{0},
};

/* -------------------------------------------------- merge, never-merge, unmerge */

static int parse_pair(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
		      const char **reason, int64_t *a, int64_t *b)
{
	const char *pos[2];
	const struct cli_opt opts[] = {{"reason", 'r', reason, NULL}, {0}};
	int rc = cli_parse(cli, cmd, argc, argv, opts, pos, 2, 2, NULL);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "customer id", pos[0], a)) >= 0 ||
	    (rc = cli_parse_id(cli, cmd, "customer id", pos[1], b)) >= 0)
		return rc;
	return -1;
}

static int cmd_merge(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *reason = NULL;
	int64_t a, b, merge_id = 0, survivor = 0;
	int rc = parse_pair(cli, cmd, argc, argv, &reason, &a, &b);
	if (rc >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	int64_t ca = a, cb = b;
	scrm_identity_canonical(db, a, &ca);
	scrm_identity_canonical(db, b, &cb);
	if ((rc = scrm_identity_merge(db, a, b, reason, &merge_id)) != SCRM_OK ||
	    (rc = scrm_identity_canonical(db, a, &survivor)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	long long absorbed = (long long)(survivor == ca ? cb : ca);
	if (cli->json)
		printf("{\"merge\":%lld,\"survivor\":%lld,\"absorbed\":%lld}\n", (long long)merge_id,
		       (long long)survivor, absorbed);
	else
		printf("merged customer %lld into %lld (merge #%lld)\n", absorbed, (long long)survivor,
		       (long long)merge_id);
	return cli_close(cli, db, CLI_EXIT_OK);
}

static int cmd_never_merge(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *reason = NULL;
	int64_t a, b;
	int rc = parse_pair(cli, cmd, argc, argv, &reason, &a, &b);
	if (rc >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	if ((rc = scrm_identity_never_merge(db, a, b, reason)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	if (cli->json)
		printf("{\"never_merge\":[%lld,%lld]}\n", (long long)a, (long long)b);
	else
		printf("customers %lld and %lld will never be merged\n", (long long)a, (long long)b);
	return cli_close(cli, db, CLI_EXIT_OK);
}

static int cmd_unmerge(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *arg, *reason = NULL;
	int64_t merge_id, unmerge_id = 0;
	const struct cli_opt opts[] = {{"reason", 'r', &reason, NULL}, {0}};
	int rc = cli_parse(cli, cmd, argc, argv, opts, &arg, 1, 1, NULL);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "merge id", arg, &merge_id)) >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	if ((rc = scrm_identity_unmerge(db, merge_id, reason, &unmerge_id)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	if (cli->json)
		printf("{\"merge\":%lld,\"unmerge\":%lld}\n", (long long)merge_id, (long long)unmerge_id);
	else
		printf("undid merge #%lld (logged as #%lld)\n", (long long)merge_id, (long long)unmerge_id);
	return cli_close(cli, db, CLI_EXIT_OK);
}

/* -------------------------------------------------------------------- kinds */

/* "14 values, ^0+$": the blocklist by its size, the patterns as written. */
static void blocked_summary(const cJSON *kind, char *buf, size_t size)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(kind, "blocklist");
	const cJSON *e;
	int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
	size_t len = 0;
	buf[0] = '\0';
	if (n)
		len = (size_t)snprintf(buf, size, "%d value%s", n, n == 1 ? "" : "s");
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(kind, "block_patterns")) {
		if (!cJSON_IsString(e) || len >= size)
			continue;
		int w = snprintf(buf + len, size - len, "%s%s", len ? ", " : "", e->valuestring);
		len = w < 0 ? size : len + (size_t)w;
	}
}

static void print_kinds(const char *json, const void *ud)
{
	cJSON *arr = cJSON_Parse(json);
	const cJSON *k;
	char prio[24], limit[24], block[160];
	(void)ud;
	printf("%-24s %-10s %8s %6s  %s\n", "kind", "normalizer", "priority", "limit", "blocked");
	cJSON_ArrayForEach(k, arr) {
		blocked_summary(k, block, sizeof block);
		printf("%-24s %-10s %8s %6s  %s\n", cli_jstr(k, "name", "?"), cli_jstr(k, "normalizer", "?"),
		       cli_jnum(k, "priority", prio, sizeof prio), cli_jnum(k, "limit", limit, sizeof limit),
		       block);
	}
	cJSON_Delete(arr);
}

static int cmd_kinds_list(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return cli_get(cli, cmd, argc, argv, NULL, scrm_identity_kinds_json, print_kinds);
}

static int cmd_kinds_show(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *name;
	int rc = cli_parse(cli, cmd, argc, argv, NULL, &name, 1, 1, NULL);
	if (rc >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	rc = scrm_identity_kind_get(db, name, &out);
	return cli_show(cli, db, rc, out, NULL, NULL);
}

static void print_kinds_set(struct cli *cli, const cJSON *parsed, int count)
{
	const cJSON *e;
	if (cli->json) {
		printf("{\"kinds_set\":%d}\n", count);
	} else if (cJSON_IsArray(parsed)) {
		cJSON_ArrayForEach(e, parsed)
			printf("kind %s set\n", cli_jstr(e, "name", "?"));
	} else {
		printf("kind %s set\n", cli_jstr(parsed, "name", "?"));
	}
}

static int cmd_kinds_set(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return cli_define(cli, cmd, argc, argv, "kind", scrm_identity_kind_set, print_kinds_set);
}

static int cmd_kinds_normalize(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *pos[2];
	int rc = cli_parse(cli, cmd, argc, argv, NULL, pos, 2, 2, NULL);
	if (rc >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	if ((rc = scrm_identity_normalize(db, pos[0], pos[1], &out)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	if (cli->json) {
		printf("{\"kind\":");
		cli_json_str(stdout, pos[0]);
		printf(",\"value\":");
		cli_json_str(stdout, pos[1]);
		printf(",\"normalized\":");
		cli_json_str(stdout, out);
		printf("}\n");
	} else {
		printf("%s\n", out);
	}
	scrm_free(out);
	return cli_close(cli, db, CLI_EXIT_OK);
}

static const struct cli_cmd kinds_subs[] = {
	{"list", cmd_kinds_list, "kinds list", "Identifier kinds ordered by priority.", NULL, NULL},
	{"show", cmd_kinds_show, "kinds show KIND", "The JSON definition of one kind.", NULL, NULL},
	{"set", cmd_kinds_set, "kinds set JSON | --file FILE",
	 "Create or replace kinds from a JSON definition (or an array of them).",
	 "  --file FILE, -f FILE   read the definition from FILE (- for standard input)\n"
	 "An array is applied all or nothing. Example:\n"
	 "  scrm kinds set '{\"name\":\"member_card\",\"normalizer\":\"pattern\",\"priority\":15,\n"
	 "                   \"limit\":2,\"pattern\":\"^M(\\\\d{8})$\"}'\n", NULL},
	{"normalize", cmd_kinds_normalize, "kinds normalize KIND VALUE",
	 "Show how a value would be stored, without storing anything.", NULL, NULL},
	{0},
};

/* ------------------------------------------------------------------- table */

static const struct cli_cmd identity_cmds[] = {
	{"observe", cmd_observe, "observe [JSON | --file FILE | -] [--report] [--strict]",
	 "Observe identifiers seen together: one JSON observation, or JSON lines.",
	 "  JSON             one observation, e.g.\n"
	 "                   '{\"channel\":\"pos\",\"ids\":{\"member_card\":\"M00012345\",\"phone\":\"13800138000\"}}'\n"
	 "  --file FILE, -f  read one observation per line from FILE; - (or a pipe) is standard input\n"
	 "  --report         print each observation's report as a JSON line\n"
	 "  --strict         exit 1 if any line was rejected\n"
	 "Lines are stored in batches of 10000; a line the library refuses is counted as\n"
	 "rejected (with its number and reason on stderr) and loading goes on. A summary\n"
	 "follows (as JSON with --json); with --report it goes to stderr.\n", NULL},
	{"resolve", cmd_resolve, "resolve KIND VALUE",
	 "Print the customer holding an identifier (exit 1 when none).", NULL, NULL},
	{"customer", NULL, "customer <show|explain> ID", "Show or explain one customer.", NULL,
	 customer_subs},
	{"merge", cmd_merge, "merge A B [--reason TEXT]",
	 "Merge two customers; the older (smaller) id survives.", NULL, NULL},
	{"never-merge", cmd_never_merge, "never-merge A B [--reason TEXT]",
	 "Record that two customers must never be merged.", NULL, NULL},
	{"unmerge", cmd_unmerge, "unmerge MERGE_ID [--reason TEXT]",
	 "Undo one logged merge (see 'customer show' for merge ids).", NULL, NULL},
	{"kinds", NULL, "kinds <list|show|set|normalize> ...", "Identifier kinds and normalizers.",
	 NULL, kinds_subs},
	{0},
};

const struct cli_group cli_group_identity = {"identity", identity_cmds};
