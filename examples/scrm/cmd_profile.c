/*
 * scrm — events and profiles commands (include/scrm/profile.h): event add/list,
 * import events, profile show/get/set/unset, rfm refresh/config. Consent,
 * erase and anonymize are in cmd_privacy.c.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "common.h"

/* ----------------------------------------------------------- small helpers */

/* Digits after the decimal point of a currency's minor unit (ISO 4217). */
static int minor_digits(const char *currency)
{
	static const char zero[] = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF";
	static const char three[] = "BHD IQD JOD KWD LYD OMR TND";
	if (strlen(currency) != 3)
		return 2;
	if (strstr(zero, currency))
		return 0;
	if (strstr(three, currency))
		return 3;
	return 2;
}

/* Minor units as "258.00 CNY". (cJSON numbers are doubles: exact up to 2^53.) */
static const char *format_money(double minor, const char *currency, char *buf, size_t size)
{
	if (!(minor > -9.2e18 && minor < 9.2e18)) { /* beyond int64: only the magnitude */
		snprintf(buf, size, "%.0f (minor units) %s", minor, currency);
		return buf;
	}
	int64_t v = (int64_t)minor;
	int digits = minor_digits(currency);
	if (!digits) {
		snprintf(buf, size, "%lld %s", (long long)v, currency);
		return buf;
	}
	unsigned long long a = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	unsigned long long scale = digits == 3 ? 1000 : 100;
	snprintf(buf, size, "%s%llu.%0*llu %s", v < 0 ? "-" : "", a / scale, digits, a % scale,
		 currency);
	return buf;
}

/* "  label         " — an indented label padded to a column. */
static void label(const char *indent, const char *name, int width)
{
	fputs(indent, stdout);
	cli_pad(stdout, name, width);
}

/* ------------------------------------------------------------------- events */

static void hint_json_argument(struct cli *cli, const char *arg)
{
	const char *p = arg;
	while (isspace((unsigned char)*p))
		p++;
	if (*p != '{')
		fprintf(stderr, "scrm: %s: the argument is one JSON event; "
				"use 'scrm import events FILE' for JSON lines\n", cli->cmdname);
}

static int cmd_event_add(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *json;
	int rc = cli_parse(cli, cmd, argc, argv, NULL, &json, 1, 1, NULL);
	if (rc >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	int64_t customer = 0, event = 0;
	rc = scrm_profile_event_add_json(db, json, &customer, &event);
	if (rc != SCRM_OK && rc != SCRM_DUPLICATE) {
		cli_lib_error(cli, db, rc);
		hint_json_argument(cli, json);
		return cli_close(cli, db, CLI_EXIT_ERROR);
	}
	/* A replayed key is what idempotency is for: reported, not an error. */
	bool dup = rc == SCRM_DUPLICATE;
	if (cli->json)
		printf("{\"customer\":%lld,\"event\":%lld,\"duplicate\":%s}\n", (long long)customer,
		       (long long)event, dup ? "true" : "false");
	else if (dup)
		printf("duplicate: %s; customer %lld, nothing changed\n", scrm_errmsg(db),
		       (long long)customer);
	else
		printf("event %lld stored for customer %lld\n", (long long)event, (long long)customer);
	return cli_close(cli, db, CLI_EXIT_OK);
}

static void print_events(const char *json, const void *ud)
{
	int64_t customer = *(const int64_t *)ud;
	cJSON *events = cJSON_Parse(json);
	const cJSON *e;
	char at[40], money[48];
	printf("events of customer %lld (%d):\n", (long long)customer, cJSON_GetArraySize(events));
	cJSON_ArrayForEach(e, events) {
		const cJSON *amount = cJSON_GetObjectItemCaseSensitive(e, "amount");
		fputs("  ", stdout);
		cli_pad(stdout, cli_jtime(e, "at", at, sizeof at), 22);
		cli_pad(stdout, cli_jstr(e, "channel", "?"), 12);
		cli_pad(stdout, cli_jstr(e, "type", "?"), 10);
		if (cJSON_IsNumber(amount))
			format_money(amount->valuedouble, cli_jstr(e, "currency", ""), money, sizeof money);
		else
			snprintf(money, sizeof money, "-");
		printf("%16s  %s", money, cli_jstr(e, "key", "(erased)"));
		const char *of = cli_jstr(e, "refund_of", NULL);
		if (of)
			printf("  (refund of %s)", of);
		putchar('\n');
	}
	cJSON_Delete(events);
}

static int cmd_event_list(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *arg, *since_s = NULL, *limit_s = NULL;
	int64_t customer, since = 0, limit = 0;
	const struct cli_opt opts[] = {
		{"since", 0, &since_s, NULL},
		{"limit", 'n', &limit_s, NULL},
		{0},
	};
	int rc = cli_parse(cli, cmd, argc, argv, opts, &arg, 1, 1, NULL);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "customer id", arg, &customer)) >= 0 ||
	    (since_s && (rc = cli_parse_time(cli, cmd, "--since", since_s, &since)) >= 0) ||
	    (limit_s && (rc = cli_parse_id(cli, cmd, "--limit", limit_s, &limit)) >= 0))
		return rc;
	if (limit > 1000000000)
		return cli_usage_error(cli, cmd, "--limit %lld is too large", (long long)limit);
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	rc = scrm_profile_events_json(db, customer, since, (int)limit, &out);
	return cli_show(cli, db, rc, out, print_events, &customer);
}

static const struct cli_cmd event_subs[] = {
	{"add", cmd_event_add, "event add JSON", "Record one event (order, refund, view, ...).",
	 "  JSON   one event, e.g.\n"
	 "         '{\"key\":\"T0042\",\"type\":\"order\",\"channel\":\"pos\",\"at\":\"2026-11-22T10:00:00+08:00\",\n"
	 "           \"ids\":{\"phone\":\"13800138000\"},\"amount\":12900,\"currency\":\"CNY\"}'\n"
	 "key, type, channel and at are required; the customer is \"customer\":ID or \"ids\"\n"
	 "(observed on the way in). Amounts are minor units (12900 = 129.00 CNY). A refund\n"
	 "names its order: \"type\":\"refund\",\"refund_of\":\"T0042\". Optional: items (array),\n"
	 "props (object). A key already recorded on the channel is reported as a duplicate\n"
	 "and changes nothing (exit status 0). --json prints {\"customer\",\"event\",\"duplicate\"}.\n",
	 NULL},
	{"list", cmd_event_list, "event list ID [--since T] [--limit N]",
	 "A customer's events, newest first.",
	 "  --since T      only events at or after T (ms since the epoch, or 2026-01-01[T08:00:00+08:00])\n"
	 "  --limit N, -n  at most N events\n", NULL},
	{0},
};

/* ------------------------------------------------------------------- import */

#define IMPORT_KEEP_DUPLICATES 1000 /* duplicate line numbers kept for the summary */

struct import_stats {
	long long stored, duplicate;
	long long *dup_lines; /* the first IMPORT_KEEP_DUPLICATES */
	size_t ndup;
};

static int event_line(void *ud, scrm_db *db, const char *line, long long lineno)
{
	struct import_stats *s = ud;
	int rc = scrm_profile_event_add_json(db, line, NULL, NULL);
	if (rc == SCRM_OK) {
		s->stored++;
	} else if (rc == SCRM_DUPLICATE) {
		s->duplicate++;
		if (!s->dup_lines)
			s->dup_lines = calloc(IMPORT_KEEP_DUPLICATES, sizeof *s->dup_lines);
		if (s->dup_lines && s->ndup < IMPORT_KEEP_DUPLICATES)
			s->dup_lines[s->ndup++] = lineno;
		rc = SCRM_OK;
	}
	return rc;
}

static void print_import_summary(struct cli *cli, const struct import_stats *s,
				 const struct cli_load *l)
{
	if (cli->json) {
		printf("{\"stored\":%lld,\"duplicate\":%lld,\"duplicate_lines\":[", s->stored,
		       s->duplicate);
		for (size_t i = 0; i < s->ndup; i++)
			printf("%s%lld", i ? "," : "", s->dup_lines[i]);
		fputs("],", stdout);
		cli_load_json(stdout, l);
		fputs("}\n", stdout);
		return;
	}
	printf("%-12s%10lld\n", "lines", l->lines);
	printf("%-12s%10lld\n", "stored", s->stored);
	printf("%-12s%10lld", "duplicate", s->duplicate);
	for (size_t i = 0; i < s->ndup && i < 20; i++)
		printf("%s%lld", i ? ", " : "   (lines ", s->dup_lines[i]);
	if (s->ndup)
		fputs(s->duplicate > 20 ? ", ...)" : ")", stdout);
	putchar('\n');
	cli_load_rejected_line(stdout, l);
	printf("%-12s%10.2f s (%.0f lines/s)\n", "time", l->seconds,
	       l->seconds > 0 ? (double)l->lines / l->seconds : 0.0);
}

static int cmd_import_events(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *file;
	bool strict = false;
	const struct cli_opt opts[] = {{"strict", 0, NULL, &strict}, {0}};
	int rc = cli_parse(cli, cmd, argc, argv, opts, &file, 1, 1, NULL);
	if (rc >= 0)
		return rc;
	bool is_stdin = !strcmp(file, "-");
	FILE *in = is_stdin ? stdin : fopen(file, "r");
	if (!in)
		return cli_error(cli, "cannot open '%s': %s", file, strerror(errno));
	scrm_db *db = cli_open(cli, false);
	if (!db) {
		if (!is_stdin)
			fclose(in);
		return CLI_EXIT_ERROR;
	}
	struct import_stats s = {0};
	struct cli_load l = {.name = is_stdin ? "<stdin>" : file, .in = in};
	rc = cli_load_lines(cli, db, &l, event_line, &s);
	/* After a stop the counts include the rolled-back batch; the loader has
	 * said which lines are stored. */
	if (!l.stopped_at)
		print_import_summary(cli, &s, &l);
	if (rc == CLI_EXIT_OK && strict && l.rejected)
		rc = CLI_EXIT_ERROR;
	free(s.dup_lines);
	cli_load_free(&l);
	if (!is_stdin)
		fclose(in);
	return cli_close(cli, db, rc);
}

static const struct cli_cmd import_subs[] = {
	{"events", cmd_import_events, "import events FILE [--strict]",
	 "Record events from JSON lines (FILE, or - for standard input).",
	 "  --strict   exit 1 if any line was rejected\n"
	 "One event per line, as 'scrm event add' takes it; blank lines are skipped.\n"
	 "Lines are stored in batches of 10000. A key already recorded on its channel is\n"
	 "counted as a duplicate and stored once; a line the library refuses is counted as\n"
	 "rejected (with its number and reason on stderr) and loading goes on. A summary\n"
	 "of stored / duplicate / rejected lines follows (as JSON with --json). On a\n"
	 "terminal a progress line shows the rate.\n", NULL},
	{0},
};

/* ------------------------------------------------------------------ profile */

static void print_figures(const cJSON *fig)
{
	const cJSON *e;
	char a[40], b[40], n[24], money[48];
	printf("figures:\n");
	label("  ", "events", 14);
	printf("%s", cli_jnum(fig, "events", n, sizeof n));
	if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(fig, "first_seen")))
		printf("  (first %s, last %s)", cli_jtime(fig, "first_seen", a, sizeof a),
		       cli_jtime(fig, "last_seen", b, sizeof b));
	putchar('\n');
	label("  ", "orders", 14);
	printf("%s", cli_jnum(fig, "orders", n, sizeof n));
	if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(fig, "first_order")))
		printf("  (first %s, last %s)", cli_jtime(fig, "first_order", a, sizeof a),
		       cli_jtime(fig, "last_order", b, sizeof b));
	putchar('\n');
	label("  ", "refunds", 14);
	printf("%s\n", cli_jnum(fig, "refunds", n, sizeof n));
	static const char *const money_keys[][2] = {{"net_spend", "net spend"},
						    {"avg_order_value", "avg order"}};
	for (size_t k = 0; k < 2; k++) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(fig, money_keys[k][0]);
		label("  ", money_keys[k][1], 14);
		int i = 0;
		cJSON_ArrayForEach(e, m)
			printf("%s%s", i++ ? ", " : "",
			       format_money(e->valuedouble, e->string, money, sizeof money));
		printf("%s\n", i ? "" : "-");
	}
	const cJSON *by = cJSON_GetObjectItemCaseSensitive(fig, "last_seen_by_channel");
	printf("  last seen by channel (%d):\n", cJSON_GetArraySize(by));
	cJSON_ArrayForEach(e, by) {
		label("    ", e->string, 12);
		printf("%s\n", cli_format_time((int64_t)e->valuedouble, a, sizeof a));
	}
}

static void print_rfm(const cJSON *rfm, const char *currency)
{
	char at[40], money[48], n[24];
	label("", "rfm", 16);
	if (!cJSON_IsObject(rfm)) {
		printf("not computed (run 'scrm rfm refresh')\n");
		return;
	}
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(rfm, "r");
	if (!cJSON_IsNumber(r)) {
		printf("no order in the window (as of %s)\n",
		       cli_jtime(rfm, "refreshed_at", at, sizeof at));
		return;
	}
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(rfm, "monetary");
	char f[24], ms[24];
	printf("R %d  F %s  M %s  (as of %s)\n", r->valueint, cli_jnum(rfm, "f", f, sizeof f),
	       cli_jnum(rfm, "m", ms, sizeof ms), cli_jtime(rfm, "refreshed_at", at, sizeof at));
	label("", "", 16);
	printf("%s day(s) since the last order; %s order(s), ",
	       cli_jnum(rfm, "recency_days", n, sizeof n), cli_jnum(rfm, "frequency", f, sizeof f));
	printf("%s in the window\n",
	       format_money(cJSON_IsNumber(m) ? m->valuedouble : 0, currency, money, sizeof money));
}

void cli_print_consent(const cJSON *consent)
{
	const cJSON *e;
	char at[40];
	printf("consent (%d):\n", cJSON_GetArraySize(consent));
	cJSON_ArrayForEach(e, consent) {
		label("  ", e->string, 14);
		printf("%s  %s", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "granted"))
				       ? "granted  "
				       : "withdrawn",
		       cli_jtime(e, "at", at, sizeof at));
		const char *src = cli_jstr(e, "source", NULL);
		if (src)
			printf("  (%s)", src);
		putchar('\n');
	}
}

static void print_profile(int64_t asked, const cJSON *p, const char *currency)
{
	const cJSON *e;
	char id[24];
	const char *canon = cli_jnum(p, "customer", id, sizeof id);
	bool erased = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "erased"));
	printf("customer %s%s\n", canon, erased ? " (erased)" : "");
	if (strtoll(canon, NULL, 10) != asked)
		printf("(customer %lld was merged into %s)\n", (long long)asked, canon);
	label("", "lifecycle", 16);
	printf("%s (as of now)\n", cli_jstr(p, "lifecycle", "-"));
	print_rfm(cJSON_GetObjectItemCaseSensitive(p, "rfm"), currency);
	print_figures(cJSON_GetObjectItemCaseSensitive(p, "figures"));

	const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(p, "attributes");
	printf("attributes (%d):\n", cJSON_GetArraySize(attrs));
	cJSON_ArrayForEach(e, attrs) {
		label("  ", e->string, 14);
		cli_print_value(stdout, e);
		putchar('\n');
	}
	cli_print_consent(cJSON_GetObjectItemCaseSensitive(p, "consent"));
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(p, "identifiers");
	printf("identifiers (%d):\n", cJSON_GetArraySize(ids));
	cJSON_ArrayForEach(e, ids) {
		label("  ", cli_jstr(e, "kind", "?"), 24);
		printf("%s\n", cli_jstr(e, "value", "?"));
	}
}

static int cmd_profile_show(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *arg;
	bool unmasked = false;
	int64_t customer;
	const struct cli_opt opts[] = {{"unmasked", 0, NULL, &unmasked}, {0}};
	int rc = cli_parse(cli, cmd, argc, argv, opts, &arg, 1, 1, NULL);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "customer id", arg, &customer)) >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL, *config = NULL;
	rc = scrm_profile_json(db, customer, unmasked ? SCRM_PROFILE_UNMASKED : 0, &out);
	if (rc == SCRM_OK && !cli->json)
		rc = scrm_profile_config_json(db, &config); /* the currency of RFM monetary */
	if (rc != SCRM_OK) {
		scrm_free(out);
		return cli_fail(cli, db, rc);
	}
	if (cli->json) {
		printf("%s\n", out);
	} else {
		cJSON *p = cJSON_Parse(out), *c = cJSON_Parse(config);
		print_profile(customer, p, cli_jstr(c, "currency", "CNY"));
		cJSON_Delete(p);
		cJSON_Delete(c);
	}
	scrm_free(out);
	scrm_free(config);
	return cli_close(cli, db, CLI_EXIT_OK);
}

/* A string as it is, any other value as the library wrote it. */
static void print_attribute(const char *json, const void *ud)
{
	cJSON *v = cJSON_Parse(json);
	(void)ud;
	if (cJSON_IsString(v))
		printf("%s\n", v->valuestring);
	else
		printf("%s\n", json); /* exact: numbers keep every digit */
	cJSON_Delete(v);
}

static int cmd_profile_get(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *pos[2];
	int64_t customer;
	int rc = cli_parse(cli, cmd, argc, argv, NULL, pos, 2, 2, NULL);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "customer id", pos[0], &customer)) >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	rc = scrm_profile_get(db, customer, pos[1], &out);
	return cli_show(cli, db, rc, out, print_attribute, NULL);
}

/* "name" of "name=value" (or of a bare name) into buf. */
static const char *attr_name(const char *arg, char *buf, size_t size)
{
	size_t n = strcspn(arg, "=");
	snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), arg);
	return buf;
}

/* Whether s is a number as JSON writes it (cJSON also takes 01234, +1 and 1.). */
static bool strict_json_number(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		s += strspn(s, "0123456789");
	else
		return false;
	if (*s == '.') {
		size_t n = strspn(++s, "0123456789");
		if (!n)
			return false;
		s += n;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		size_t n = strspn(s, "0123456789");
		if (!n)
			return false;
		s += n;
	}
	while (isspace((unsigned char)*s))
		s++;
	return *s == '\0';
}

/*
 * NAME=VALUE arguments as one JSON object: VALUE as JSON when it is valid
 * JSON (copied as written, so numbers keep every digit), else as a string;
 * an empty VALUE is null, which unsets. Returns malloc'ed text, or NULL
 * after a usage error (*rc set).
 */
static char *attributes_json(struct cli *cli, const struct cli_cmd *cmd, int n,
			     const char *const *args, int *rc)
{
	char *text = NULL;
	size_t len = 0;
	char a[80], b[80];
	for (int i = 0; i < n; i++) {
		const char *eq = strchr(args[i], '=');
		if (!eq || eq == args[i]) {
			*rc = cli_usage_error(cli, cmd, "expected NAME=VALUE, not '%s'", args[i]);
			return NULL;
		}
		for (int j = 0; j < i; j++)
			if (!strcmp(attr_name(args[i], a, sizeof a), attr_name(args[j], b, sizeof b))) {
				*rc = cli_usage_error(cli, cmd, "attribute '%s' is given twice", a);
				return NULL;
			}
	}
	FILE *f = open_memstream(&text, &len);
	if (!f) {
		*rc = cli_error(cli, "out of memory");
		return NULL;
	}
	fputc('{', f);
	for (int i = 0; i < n; i++) {
		const char *eq = strchr(args[i], '=');
		const char *value = eq + 1;
		char *name = strndup(args[i], (size_t)(eq - args[i]));
		if (i)
			fputc(',', f);
		cli_json_str(f, name ? name : "");
		fputc(':', f);
		free(name);
		cJSON *parsed = *value ? cJSON_ParseWithOpts(value, NULL, 1) : NULL;
		if (cJSON_IsNumber(parsed) && !strict_json_number(value)) {
			cJSON_Delete(parsed); /* 01234 is a zip code, not a number */
			parsed = NULL;
		}
		if (!*value)
			fputs("null", f);
		else if (parsed)
			fputs(value, f);
		else
			cli_json_str(f, value);
		cJSON_Delete(parsed);
	}
	fputc('}', f);
	if (fclose(f) != 0) {
		free(text);
		*rc = cli_error(cli, "out of memory");
		return NULL;
	}
	return text;
}

static bool unsets(const char *arg)
{
	const char *v = strchr(arg, '=') + 1;
	return !*v || !strcmp(v, "null");
}

/* What `profile set` did: the names set, then the names unset. */
static void print_set_report(struct cli *cli, int64_t customer, int n, const char *const *args)
{
	static const char *const what[] = {"set", "unset"};
	char name[80];
	int shown = 0;
	if (cli->json)
		printf("{\"customer\":%lld", (long long)customer);
	else
		printf("customer %lld:", (long long)customer);
	for (int pass = 0; pass < 2; pass++) {
		int k = 0;
		if (cli->json)
			printf(",\"%s\":[", what[pass]);
		for (int i = 0; i < n; i++) {
			if (unsets(args[i]) != (pass == 1))
				continue;
			attr_name(args[i], name, sizeof name);
			if (cli->json) {
				fputs(k++ ? "," : "", stdout);
				cli_json_str(stdout, name);
			} else if (k++) {
				printf(", %s", name);
			} else {
				printf("%s %s %s", shown++ ? ";" : "", what[pass], name);
			}
		}
		if (cli->json)
			putchar(']');
	}
	puts(cli->json ? "}" : "");
}

#define MAX_ATTR_ARGS 256

static int cmd_profile_set(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *pos[1 + MAX_ATTR_ARGS];
	int64_t customer;
	int n, rc = cli_parse(cli, cmd, argc, argv, NULL, pos, 2, 1 + MAX_ATTR_ARGS, &n);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "customer id", pos[0], &customer)) >= 0)
		return rc;
	char *json = attributes_json(cli, cmd, n - 1, pos + 1, &rc);
	if (!json)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db) {
		free(json);
		return CLI_EXIT_ERROR;
	}
	rc = scrm_profile_set_json(db, customer, json);
	free(json);
	if (rc != SCRM_OK)
		return cli_fail(cli, db, rc);
	print_set_report(cli, customer, n - 1, pos + 1);
	return cli_close(cli, db, CLI_EXIT_OK);
}

static int cmd_profile_unset(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *pos[1 + MAX_ATTR_ARGS];
	int64_t customer;
	int n, rc = cli_parse(cli, cmd, argc, argv, NULL, pos, 2, 1 + MAX_ATTR_ARGS, &n);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "customer id", pos[0], &customer)) >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	/* All or nothing: one unknown name leaves every attribute in place. */
	if ((rc = scrm_db_begin(db)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	for (int i = 1; i < n && rc == SCRM_OK; i++)
		rc = scrm_profile_unset(db, customer, pos[i]);
	if (rc == SCRM_OK)
		rc = scrm_db_commit(db);
	if (rc != SCRM_OK) {
		cli_lib_error(cli, db, rc);
		if (scrm_db_batch_depth(db) > 0)
			scrm_db_rollback(db);
		if (n > 2)
			fprintf(stderr, "scrm: %s: no attribute was changed\n", cli->cmdname);
		return cli_close(cli, db, CLI_EXIT_ERROR);
	}
	if (cli->json) {
		printf("{\"customer\":%lld,\"unset\":[", (long long)customer);
		for (int i = 1; i < n; i++) {
			fputs(i > 1 ? "," : "", stdout);
			cli_json_str(stdout, pos[i]);
		}
		puts("]}");
	} else {
		printf("customer %lld: unset", (long long)customer);
		for (int i = 1; i < n; i++)
			printf("%s%s", i > 1 ? ", " : " ", pos[i]);
		putchar('\n');
	}
	return cli_close(cli, db, CLI_EXIT_OK);
}

static const struct cli_cmd profile_subs[] = {
	{"show", cmd_profile_show, "profile show ID [--unmasked]",
	 "Attributes, figures, RFM, lifecycle, consent and identifiers.",
	 "  --unmasked   identifiers in clear text (default: masked, 138****8000)\n"
	 "Amounts are shown in major units (258.00 CNY); --json prints the library's\n"
	 "profile JSON unchanged (amounts in minor units, times in ms since the epoch).\n", NULL},
	{"get", cmd_profile_get, "profile get ID NAME", "Print one attribute (exit 1 when unset).",
	 "Strings are printed as they are, other values as JSON; --json prints JSON always.\n",
	 NULL},
	{"set", cmd_profile_set, "profile set ID NAME=VALUE...",
	 "Set (or unset) host attributes, all or nothing.",
	 "VALUE is taken as JSON when it is valid JSON (30, true, [\"a\",\"b\"], {\"k\":1}, \"30\"),\n"
	 "else as a string (gold, 1990-05-01, 王小明). NAME= (empty) or NAME=null unsets NAME;\n"
	 "to store the text null write NAME='\"null\"'. Names are 1-64 of [a-z0-9_.].\n"
	 "birthday must be YYYY-MM-DD, tz an IANA zone name. Example:\n"
	 "  scrm profile set 7 name=王小明 birthday=1990-05-01 tz=Asia/Shanghai vip=true note=\n",
	 NULL},
	{"unset", cmd_profile_unset, "profile unset ID NAME...",
	 "Remove attributes, all or nothing (exit 1 if one was not set).", NULL, NULL},
	{0},
};

/* ---------------------------------------------------------------------- rfm */

static void print_refresh(const char *json, const void *ud)
{
	(void)ud;
	cJSON *s = cJSON_Parse(json);
	const cJSON *lc = cJSON_GetObjectItemCaseSensitive(s, "lifecycle");
	const cJSON *sec = cJSON_GetObjectItemCaseSensitive(s, "seconds");
	char n[24], at[40];
	printf("%-12s%10s\n", "customers", cli_jnum(s, "customers", n, sizeof n));
	printf("%-12s%10s   (with an order in the window)\n", "scored",
	       cli_jnum(s, "scored", n, sizeof n));
	static const char *const stages[] = {"new", "active", "at_risk", "dormant", "lost"};
	for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++)
		printf("%-12s%10s\n", stages[i], cli_jnum(lc, stages[i], n, sizeof n));
	printf("%-12s%s\n", "as of", cli_jtime(s, "refreshed_at", at, sizeof at));
	printf("%-12s%10.2f s\n", "time", cJSON_IsNumber(sec) ? sec->valuedouble : 0.0);
	cJSON_Delete(s);
}

static int cmd_rfm_refresh(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return cli_run_at(cli, cmd, argc, argv, scrm_profile_rfm_refresh, print_refresh);
}

static int cmd_rfm_config(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return cli_get(cli, cmd, argc, argv, scrm_profile_config_set, scrm_profile_config_json, NULL);
}

static const struct cli_cmd rfm_subs[] = {
	{"refresh", cmd_rfm_refresh, "rfm refresh [--now T]",
	 "Recompute RFM scores and lifecycle stages for every customer.",
	 "  --now T   as of T (ms since the epoch, or 2026-01-01[T08:00:00+08:00]);\n"
	 "            default: now\n"
	 "Scores 1-5 over the customers with an order in the window (rfm config).\n", NULL},
	{"config", cmd_rfm_config, "rfm config [JSON]",
	 "Show, or change, the RFM window, currency and lifecycle thresholds.",
	 "Members not given keep their values, e.g.\n"
	 "  scrm rfm config '{\"rfm_window_days\":180,\"lifecycle\":{\"new_days\":14}}'\n"
	 "Thresholds (days) must increase: new < active < at_risk < dormant; later is lost.\n",
	 NULL},
	{0},
};

/* ------------------------------------------------------------------- table */

static const struct cli_cmd profile_cmds[] = {
	{"event", NULL, "event <add|list> ...", "Record one event; list a customer's events.", NULL,
	 event_subs},
	{"import", NULL, "import events FILE", "Record events from JSON lines.", NULL, import_subs},
	{"profile", NULL, "profile <show|get|set|unset> ID ...",
	 "Show a customer's profile; get, set or unset attributes.", NULL, profile_subs},
	{"rfm", NULL, "rfm <refresh|config> ...", "Recompute RFM scores and lifecycle stages.", NULL,
	 rfm_subs},
	{0},
};

const struct cli_group cli_group_profile = {"events and profiles", profile_cmds};
