/*
 * scrm — option parsing, opening the database, error reporting, JSON and
 * time output, and the progress line, shared by every command.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "common.h"

#define CLI_MAX_FILE (256L * 1024 * 1024)

/* ------------------------------------------------------------ option parsing */

enum cli_global cli_global_option(struct cli *cli, int argc, char **argv, int *i)
{
	const char *a = argv[*i];

	if (!strcmp(a, "--json")) {
		cli->json = true;
		return CLI_GLOBAL_TAKEN;
	}
	if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
		cli->verbose = true;
		return CLI_GLOBAL_TAKEN;
	}
	if (!strcmp(a, "--help") || !strcmp(a, "-h"))
		return CLI_GLOBAL_HELP;
	if (!strcmp(a, "--version"))
		return CLI_GLOBAL_VERSION;
	if (!strncmp(a, "--db=", 5)) {
		cli->db_path = a + 5;
		return CLI_GLOBAL_TAKEN;
	}
	if (!strcmp(a, "--db")) {
		if (*i + 1 >= argc)
			return CLI_GLOBAL_NOARG;
		cli->db_path = argv[++*i];
		return CLI_GLOBAL_TAKEN;
	}
	return CLI_GLOBAL_NONE;
}

static const struct cli_opt *find_opt(const struct cli_opt *opts, const char *a, const char **inl)
{
	*inl = NULL;
	if (!opts)
		return NULL;
	for (const struct cli_opt *o = opts; o->name; o++) {
		if (a[1] != '-') {
			if (o->shortname && a[1] == o->shortname && a[2] == '\0')
				return o;
			continue;
		}
		size_t n = strlen(o->name);
		if (strncmp(a + 2, o->name, n))
			continue;
		if (a[2 + n] == '\0')
			return o;
		if (a[2 + n] == '=') {
			*inl = a + 3 + n;
			return o;
		}
	}
	return NULL;
}

int cli_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
	      const struct cli_opt *opts, const char **pos, int min, int max, int *npos)
{
	/* The first problem is reported after the loop so that --help anywhere wins. */
	char err[256] = "";
	bool help = false, version = false, dashdash = false;
	int n = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!dashdash && a[0] == '-' && a[1] != '\0') {
			if (!strcmp(a, "--")) {
				dashdash = true;
				continue;
			}
			/* A command's own option wins over a global one of the same
			 * name ("rules show ID --version N"). */
			const char *inl;
			const struct cli_opt *o = find_opt(opts, a, &inl);
			if (!o) {
				switch (cli_global_option(cli, argc, argv, &i)) {
				case CLI_GLOBAL_TAKEN:
					continue;
				case CLI_GLOBAL_HELP:
					help = true;
					continue;
				case CLI_GLOBAL_VERSION:
					version = true;
					continue;
				case CLI_GLOBAL_NOARG:
					if (!err[0])
						snprintf(err, sizeof err, "option '%s' needs an argument", a);
					continue;
				case CLI_GLOBAL_NONE:
					break;
				}
				if (!err[0])
					snprintf(err, sizeof err, "unknown option '%s'", a);
				continue;
			}
			if (o->flag) {
				if (inl && !err[0])
					snprintf(err, sizeof err, "option '--%s' takes no argument", o->name);
				*o->flag = true;
			} else if (inl) {
				*o->value = inl;
			} else if (i + 1 < argc) {
				*o->value = argv[++i];
			} else if (!err[0]) {
				snprintf(err, sizeof err, "option '%s' needs an argument", a);
			}
			continue;
		}
		if (n >= max) {
			if (!err[0])
				snprintf(err, sizeof err, "unexpected argument '%s'", a);
			continue;
		}
		pos[n++] = a;
	}
	if (help) {
		cli_print_help(stdout, cmd);
		return CLI_EXIT_OK;
	}
	if (version)
		return cli_print_version(cli);
	if (err[0])
		return cli_usage_error(cli, cmd, "%s", err);
	if (n < min)
		return cli_usage_error(cli, cmd, "missing argument%s (expected %s%d, got %d)",
				       min - n > 1 ? "s" : "", max > min ? "at least " : "", min, n);
	if (npos)
		*npos = n;
	return -1;
}

int cli_leading_options(struct cli *cli, const struct cli_cmd *group, int argc, char **argv,
			int *i, bool *help)
{
	for (; *i < argc; ++*i) {
		const char *a = argv[*i];
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (!strcmp(a, "--")) {
			++*i;
			break;
		}
		switch (cli_global_option(cli, argc, argv, i)) {
		case CLI_GLOBAL_TAKEN:
			continue;
		case CLI_GLOBAL_HELP:
			*help = true;
			continue;
		case CLI_GLOBAL_VERSION:
			return cli_print_version(cli);
		case CLI_GLOBAL_NOARG:
			return cli_usage_error(cli, group, "option '%s' needs an argument", a);
		case CLI_GLOBAL_NONE:
			return cli_usage_error(cli, group, "unknown option '%s'%s", a,
					       group ? " (options go after the subcommand)" : "");
		}
	}
	return -1;
}

int cli_run_subcommand(struct cli *cli, const struct cli_cmd *group, int argc, char **argv)
{
	bool help = false;
	int i = 1;
	int rc = cli_leading_options(cli, group, argc, argv, &i, &help);
	if (rc >= 0)
		return rc;
	if (i >= argc) {
		if (help) {
			cli_print_help(stdout, group);
			return CLI_EXIT_OK;
		}
		return cli_usage_error(cli, group, "missing subcommand");
	}
	for (const struct cli_cmd *s = group->subs; s->name; s++) {
		if (strcmp(s->name, argv[i]))
			continue;
		static char name[128];
		snprintf(name, sizeof name, "%s %s", group->name, s->name);
		cli->cmdname = name;
		if (help) {
			cli_print_help(stdout, s);
			return CLI_EXIT_OK;
		}
		return s->run(cli, s, argc - i, argv + i);
	}
	return cli_usage_error(cli, group, "unknown subcommand '%s'", argv[i]);
}

void cli_print_help(FILE *f, const struct cli_cmd *cmd)
{
	fprintf(f, "usage: scrm %s\n", cmd->usage);
	if (cmd->summary)
		fprintf(f, "\n%s\n", cmd->summary);
	if (cmd->subs) {
		fputs("\nsubcommands:\n", f);
		for (const struct cli_cmd *s = cmd->subs; s->name; s++)
			fprintf(f, "  %-34s %s\n", s->usage, s->summary);
	}
	if (cmd->help)
		fprintf(f, "\n%s", cmd->help);
	fputs("\nglobal options: --db FILE (default $SCRM_DB or ./" SCRM_DEFAULT_DB_PATH
	      "), --json, --verbose, --help, --version\n", f);
}

int cli_usage_error(struct cli *cli, const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	fputs("scrm: ", stderr);
	if (cli->cmdname)
		fprintf(stderr, "%s: ", cli->cmdname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (cmd) {
		fprintf(stderr, "usage: scrm %s\n", cmd->usage);
		fprintf(stderr, "Try 'scrm %s --help' for more.\n", cli->cmdname ? cli->cmdname : cmd->name);
	} else {
		fputs("usage: scrm [--db FILE] [--json] <command> [<args>]\n"
		      "Try 'scrm --help' for the list of commands.\n", stderr);
	}
	return CLI_EXIT_USAGE;
}

int cli_print_version(struct cli *cli)
{
	if (cli->json) {
		printf("{\"tool\":");
		cli_json_str(stdout, SCRM_VERSION_STRING);
		printf(",\"library\":");
		cli_json_str(stdout, scrm_version());
		printf(",\"schema_version\":%d}\n", scrm_schema_version());
	} else {
		printf("scrm %s\n", SCRM_VERSION_STRING);
		printf("libscrm %s\n", scrm_version());
		printf("schema version %d\n", scrm_schema_version());
	}
	return CLI_EXIT_OK;
}

int cli_parse_id(struct cli *cli, const struct cli_cmd *cmd, const char *what, const char *s,
		 int64_t *out)
{
	char *end;
	errno = 0;
	long long v = (s[0] >= '0' && s[0] <= '9') ? strtoll(s, &end, 10) : 0;
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno || v <= 0)
		return cli_usage_error(cli, cmd, "%s must be a positive integer, not '%s'", what, s);
	*out = (int64_t)v;
	return -1;
}

/* Up to `n` digits at *p as a number (at least `min` of them); moves *p past them. */
static bool take_digits(const char **p, int min, int n, int *out)
{
	int v = 0, i = 0;
	for (; i < n && (*p)[i] >= '0' && (*p)[i] <= '9'; i++)
		v = v * 10 + ((*p)[i] - '0');
	if (i < min)
		return false;
	*p += i;
	*out = v;
	return true;
}

static bool take_char(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

/* "YYYY-MM-DD[(T| )HH:MM[:SS[.fff]][Z|±HH:MM]]" as ms since the epoch. */
static bool parse_datetime(const char *s, int64_t *out)
{
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, oh = 0, om = 0, sign = 0;
	if (!take_digits(&p, 4, 4, &y) || !take_char(&p, '-') || !take_digits(&p, 2, 2, &mo) ||
	    !take_char(&p, '-') || !take_digits(&p, 2, 2, &d))
		return false;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!take_digits(&p, 2, 2, &h) || !take_char(&p, ':') || !take_digits(&p, 2, 2, &mi))
			return false;
		if (take_char(&p, ':')) {
			if (!take_digits(&p, 2, 2, &sec))
				return false;
			if (take_char(&p, '.')) {
				int digits = 0;
				for (; *p >= '0' && *p <= '9'; p++, digits++)
					if (digits < 3)
						ms = ms * 10 + (*p - '0');
				if (!digits)
					return false;
				for (; digits < 3; digits++)
					ms *= 10;
			}
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			sign = *p++ == '-' ? -1 : 1;
			if (!take_digits(&p, 2, 2, &oh) || !take_char(&p, ':') ||
			    !take_digits(&p, 2, 2, &om) || oh > 23 || om > 59)
				return false;
		}
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60)
		return false;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
		return false;
	/* Days from the civil date (Howard Hinnant's algorithm), no time zone involved. */
	int yy = mo <= 2 ? y - 1 : y;
	int64_t era = (yy >= 0 ? yy : yy - 399) / 400, yoe = yy - era * 400;
	int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
	int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - sign * (oh * 3600 + om * 60);
	*out = secs * 1000 + ms;
	return true;
}

int cli_parse_time(struct cli *cli, const struct cli_cmd *cmd, const char *what, const char *s,
		   int64_t *out)
{
	if (s[0] >= '0' && s[0] <= '9' && strspn(s, "0123456789") == strlen(s) && strlen(s) < 16) {
		*out = (int64_t)strtoll(s, NULL, 10);
		return -1;
	}
	if (parse_datetime(s, out))
		return -1;
	return cli_usage_error(cli, cmd,
			       "%s must be milliseconds since the epoch or a date and time such as "
			       "2026-01-01 or 2026-01-01T08:00:00+08:00, not '%s'",
			       what, s);
}

int cli_parse_duration(struct cli *cli, const struct cli_cmd *cmd, const char *what,
		       const char *s, int64_t *out)
{
	static const struct { const char *unit; int64_t ms; } units[] = {
		{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
		{"w", 604800000},
	};
	const char *p = s;
	int64_t total = 0;
	bool plain = strspn(s, "0123456789") == strlen(s);
	while (*s && *p) {
		if (*p < '0' || *p > '9')
			goto bad;
		int64_t n = 0;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (n > (INT64_MAX - 9) / 10)
				goto bad;
			n = n * 10 + (*p - '0');
		}
		int64_t scale = 0;
		size_t len = 0;
		if (plain) {
			scale = 1;
		} else {
			for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
				size_t ul = strlen(units[u].unit);
				/* "m" must not take the "m" of "ms" */
				if (!strncmp(p, units[u].unit, ul) && ul > len) {
					scale = units[u].ms;
					len = ul;
				}
			}
		}
		if (!scale || n > (INT64_MAX - total) / scale)
			goto bad;
		total += n * scale;
		p += len;
	}
	if (!*s)
		goto bad;
	*out = total;
	return -1;
bad:
	return cli_usage_error(cli, cmd,
			       "%s must be milliseconds or a duration such as 30s, 5m or 1h30m, not '%s'",
			       what, s);
}

/* -------------------------------------------------------------- the database */

static void log_to_stderr(void *ud, int level, const char *msg)
{
	static const char *const names[] = {"", "error", "warning", "info", "debug"};
	(void)ud;
	fprintf(stderr, "scrm: %s: %s\n", level >= 1 && level <= 4 ? names[level] : "log", msg);
}

scrm_db *cli_open(struct cli *cli, bool create)
{
	scrm_db_options *opts = NULL;
	scrm_db *db = NULL;
	int rc = scrm_db_options_new(&opts);
	if (rc == SCRM_OK)
		rc = scrm_db_options_set_flags(opts, create ? SCRM_OPEN_CREATE : 0);
	if (rc == SCRM_OK)
		rc = scrm_db_options_set_log(opts, log_to_stderr, NULL,
					     cli->verbose ? SCRM_LOG_DEBUG : SCRM_LOG_WARN);
	if (rc == SCRM_OK)
		rc = scrm_db_open(cli->db_path, opts, &db);
	scrm_db_options_free(opts);
	if (rc != SCRM_OK) {
		cli_lib_error(cli, NULL, rc);
		if (rc == SCRM_NOTFOUND && !create)
			fprintf(stderr, "scrm: run 'scrm init' to create it, or name another file with --db FILE\n");
		return NULL;
	}
	return db;
}

int cli_close(struct cli *cli, scrm_db *db, int rc)
{
	int crc = scrm_db_close(db);
	if (crc != SCRM_OK) {
		cli_error(cli, "closing '%s' failed (%s)", cli->db_path, scrm_errstr(crc));
		return CLI_EXIT_ERROR;
	}
	return rc;
}

int cli_fail(struct cli *cli, scrm_db *db, int rc)
{
	cli_lib_error(cli, db, rc);
	return cli_close(cli, db, CLI_EXIT_ERROR);
}

int cli_show(struct cli *cli, scrm_db *db, int rc, char *out, cli_show_fn show, const void *ud)
{
	if (rc != SCRM_OK) {
		scrm_free(out);
		return cli_fail(cli, db, rc);
	}
	if (cli->json || !show)
		cli_print_json(cli, out);
	else
		show(out, ud);
	scrm_free(out);
	return cli_close(cli, db, CLI_EXIT_OK);
}

int cli_get(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
	    int (*set)(scrm_db *db, const char *json), int (*get)(scrm_db *db, char **out),
	    cli_show_fn show)
{
	const char *json = NULL;
	int n, rc = cli_parse(cli, cmd, argc, argv, NULL, &json, 0, set ? 1 : 0, &n);
	if (rc >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	if (!n || (rc = set(db, json)) == SCRM_OK)
		rc = get(db, &out);
	return cli_show(cli, db, rc, out, show, NULL);
}

int cli_run_at(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
	       int (*run)(scrm_db *db, int64_t now, char **out), cli_show_fn show)
{
	const char *now_s = NULL;
	int64_t now = 0;
	const struct cli_opt opts[] = {{"now", 0, &now_s, NULL}, {0}};
	int rc = cli_parse(cli, cmd, argc, argv, opts, NULL, 0, 0, NULL);
	if (rc >= 0 || (now_s && (rc = cli_parse_time(cli, cmd, "--now", now_s, &now)) >= 0))
		return rc;
	if (now_s && now == 0)
		return cli_usage_error(cli, cmd, "--now must be after the epoch");
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	char *out = NULL;
	rc = run(db, now, &out);
	return cli_show(cli, db, rc, out, show, NULL);
}

/* -------------------------------------------------------------------- errors */

int cli_lib_error(struct cli *cli, scrm_db *db, int rc)
{
	fprintf(stderr, "scrm: %s: %s (%s)\n", cli->cmdname ? cli->cmdname : "error",
		scrm_errmsg(db), scrm_errstr(rc));
	return CLI_EXIT_ERROR;
}

int cli_error(struct cli *cli, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "scrm: %s: ", cli->cmdname ? cli->cmdname : "error");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_EXIT_ERROR;
}

/* --------------------------------------------------------------------- output */

void cli_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

static void indent(FILE *f, int depth)
{
	fputc('\n', f);
	for (int i = 0; i < depth; i++)
		fputs("  ", f);
}

/*
 * Re-indent compact JSON text token by token. Working on the text (not on a
 * parsed tree) keeps every number exactly as the library wrote it: cJSON
 * holds numbers as doubles, which would round 64-bit ids.
 */
static void print_indented(FILE *f, const char *s)
{
	int depth = 0;
	bool in_str = false;

	for (const char *p = s; *p; p++) {
		char c = *p;
		if (in_str) {
			fputc(c, f);
			if (c == '\\' && p[1])
				fputc(*++p, f);
			else if (c == '"')
				in_str = false;
			continue;
		}
		switch (c) {
		case '"':
			in_str = true;
			fputc(c, f);
			break;
		case '{':
		case '[': {
			const char *q = p + 1;
			while (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r')
				q++;
			if (*q == (c == '{' ? '}' : ']')) { /* empty container stays on one line */
				fputc(c, f);
				fputc(*q, f);
				p = q;
				break;
			}
			fputc(c, f);
			indent(f, ++depth);
			break;
		}
		case '}':
		case ']':
			indent(f, depth > 0 ? --depth : 0);
			fputc(c, f);
			break;
		case ',':
			fputc(c, f);
			indent(f, depth);
			break;
		case ':':
			fputs(": ", f);
			break;
		case ' ':
		case '\n':
		case '\t':
		case '\r':
			break;
		default:
			fputc(c, f);
		}
	}
	fputc('\n', f);
}

void cli_print_json(struct cli *cli, const char *json)
{
	if (cli->json)
		printf("%s\n", json);
	else
		print_indented(stdout, json);
}

/* Terminal columns of one code point: 2 for East Asian wide ranges, else 1. */
static int cp_width(unsigned cp)
{
	return (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) ||
			       (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
			       (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
			       (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1FAFF) ||
			       (cp >= 0x20000 && cp <= 0x3FFFD)
		       ? 2
		       : 1;
}

int cli_text_width(const char *s, size_t len)
{
	int cols = 0;
	const unsigned char *end = (const unsigned char *)s + len;
	for (const unsigned char *p = (const unsigned char *)s; p < end && *p;) {
		unsigned cp = *p;
		int extra = cp >= 0xF0 ? 3 : cp >= 0xE0 ? 2 : cp >= 0xC0 ? 1 : 0;
		if (extra)
			cp &= 0x3Fu >> extra;
		p++;
		for (; extra > 0 && p < end && (*p & 0xC0) == 0x80; extra--)
			cp = (cp << 6) | (*p++ & 0x3Fu);
		cols += cp_width(cp);
	}
	return cols;
}

void cli_pad(FILE *f, const char *s, int width)
{
	int cols = cli_text_width(s, strlen(s));
	fputs(s, f);
	do
		fputc(' ', f);
	while (++cols < width);
}

const char *cli_format_time(int64_t ms, char *buf, size_t size)
{
	int64_t secs = ms / 1000 - (ms % 1000 < 0);
	time_t t = (time_t)secs;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%SZ", &tm))
		snprintf(buf, size, "%lld ms", (long long)ms);
	return buf;
}

const char *cli_jstr(const cJSON *obj, const char *key, const char *dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) ? v->valuestring : dflt;
}

const char *cli_jnum(const cJSON *obj, const char *key, char *buf, size_t size)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (cJSON_IsNumber(v))
		snprintf(buf, size, "%.0f", v->valuedouble);
	else if (cJSON_IsString(v))
		snprintf(buf, size, "%s", v->valuestring);
	else
		snprintf(buf, size, "-");
	return buf;
}

const char *cli_jtime(const cJSON *obj, const char *key, char *buf, size_t size)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (cJSON_IsNumber(v))
		return cli_format_time((int64_t)v->valuedouble, buf, size);
	return cli_jnum(obj, key, buf, size);
}

void cli_print_value(FILE *f, const cJSON *v)
{
	if (cJSON_IsString(v)) {
		fputs(v->valuestring, f);
		return;
	}
	char *s = cJSON_PrintUnformatted(v);
	fputs(s ? s : "?", f);
	cJSON_free(s);
}

char *cli_read_file(struct cli *cli, const char *path)
{
	bool is_stdin = !strcmp(path, "-");
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	if (!f) {
		cli_error(cli, "cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (len + 1 >= cap) {
			char *nb = cap < (size_t)CLI_MAX_FILE ? realloc(buf, cap * 2) : NULL;
			if (!nb) {
				cli_error(cli, "'%s' is too large (limit %ld MiB)", path, CLI_MAX_FILE >> 20);
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		size_t n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	if (buf && ferror(f)) {
		cli_error(cli, "cannot read '%s': %s", path, strerror(errno));
		free(buf);
		buf = NULL;
	}
	if (!is_stdin)
		fclose(f);
	if (!buf)
		return NULL;
	buf[len] = '\0';
	if (strlen(buf) != len) {
		cli_error(cli, "'%s' contains a NUL byte at offset %zu", path, strlen(buf));
		free(buf);
		return NULL;
	}
	return buf;
}

/* ------------------------------------------------------------------ progress */

double cli_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_progress_start(struct cli_progress *p)
{
	p->enabled = isatty(STDERR_FILENO);
	p->unit = "lines";
	p->start = p->last = cli_seconds();
	p->drawn = false;
	/* Tests set it to 0 to see a line however fast the machine is. */
	const char *e = getenv("SCRM_PROGRESS_INTERVAL");
	char *end;
	double v = e ? strtod(e, &end) : 0;
	p->every = e && end != e && *end == '\0' && v >= 0 && v <= 60 ? v : 0.2;
}

void cli_progress_update(struct cli_progress *p, long long lines)
{
	if (!p->enabled)
		return;
	double now = cli_seconds();
	if (now - p->last < p->every)
		return;
	p->last = now;
	double rate = now > p->start ? (double)lines / (now - p->start) : 0;
	fprintf(stderr, "\r%10lld %s %8.0f/s", lines, p->unit, rate);
	fflush(stderr);
	p->drawn = true;
}

void cli_progress_end(struct cli_progress *p)
{
	if (p->drawn)
		fputs("\r\033[K", stderr);
	p->drawn = false;
}
