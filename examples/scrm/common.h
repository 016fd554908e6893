/*
 * scrm — the command-line tool's shared pieces: the command table types,
 * option parsing, opening the database, error reporting and output helpers.
 */
#ifndef SCRM_CLI_COMMON_H
#define SCRM_CLI_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <scrm.h>

/* Exit codes. */
#define CLI_EXIT_OK    0 /* success */
#define CLI_EXIT_ERROR 1 /* the library (or the system) refused */
#define CLI_EXIT_USAGE 2 /* the command line is wrong */

/* Global state shared by every command: the global options. */
struct cli {
	const char *db_path;  /* --db, else $SCRM_DB, else SCRM_DEFAULT_DB_PATH */
	bool json;            /* --json: machine-readable output */
	bool verbose;         /* --verbose: library log down to debug */
	const char *cmdname;  /* the command being run, for messages ("customer show") */
};

struct cli_cmd;
typedef int (*cli_run_fn)(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);

/*
 * One command. `name` is what the user types after `scrm` (or after the
 * group word for subcommands); `usage` is the synopsis without "scrm ";
 * `help` is the rest of the --help text (options, notes).
 */
struct cli_cmd {
	const char *name;
	cli_run_fn run;
	const char *usage;
	const char *summary;
	const char *help;
	const struct cli_cmd *subs; /* subcommands (ended by a zeroed entry), or NULL */
};

/* A command group: one per cmd_<group>.c file, listed in main.c. */
struct cli_group {
	const char *title;
	const struct cli_cmd *cmds; /* ended by a zeroed entry */
};

/* ------------------------------------------------------------ option parsing */

/*
 * A command's own option. Exactly one of `value` (option takes an argument)
 * or `flag` (boolean switch) is set.
 */
struct cli_opt {
	const char *name;   /* long name without "--" */
	char shortname;     /* or 0 */
	const char **value; /* receives the argument */
	bool *flag;         /* set to true when given */
};

/*
 * Parse argv[1..] of `cmd` (argv[0] is its name): the command's options,
 * the global options (--db, --json, --verbose, --help, --version) anywhere
 * (a command option of the same name takes precedence),
 * "--" ends options, "-" is a positional. Positionals go to pos[0..max-1];
 * their count to *npos (may be NULL when min == max).
 *
 * Returns -1 to go on, or an exit code to return at once: 0 after --help
 * or --version was printed, CLI_EXIT_USAGE after a usage error was printed.
 */
int cli_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
	      const struct cli_opt *opts, const char **pos, int min, int max, int *npos);

/* What cli_global_option() found at argv[*i]. */
enum cli_global {
	CLI_GLOBAL_NONE,    /* not a global option */
	CLI_GLOBAL_TAKEN,   /* applied to *cli (and *i moved past its argument) */
	CLI_GLOBAL_HELP,    /* --help / -h */
	CLI_GLOBAL_VERSION, /* --version */
	CLI_GLOBAL_NOARG,   /* --db without its argument */
};

/* Recognise a global option at argv[*i]; used by main.c and the parsers. */
enum cli_global cli_global_option(struct cli *cli, int argc, char **argv, int *i);

/*
 * The global options before a command word (`group` NULL, for main.c) or
 * before the subcommand word of `group`: from argv[*i] up to the first word
 * that is not an option, or past "--"; *i is left at that word. --help sets
 * *help. Returns -1 to go on, or an exit code: 0 after --version was
 * printed, CLI_EXIT_USAGE after a usage error was printed.
 */
int cli_leading_options(struct cli *cli, const struct cli_cmd *group, int argc, char **argv,
			int *i, bool *help);

/* Run the subcommand named by the first non-option word of argv. */
int cli_run_subcommand(struct cli *cli, const struct cli_cmd *group, int argc, char **argv);

/* Print "usage: scrm <usage>" and the help text of `cmd` to `f`. */
void cli_print_help(FILE *f, const struct cli_cmd *cmd);

/* Print a usage error: "scrm: <cmd>: <problem>", the usage line and a hint. Returns 2. */
int cli_usage_error(struct cli *cli, const struct cli_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Print the versions of the tool, the library and the schema. */
int cli_print_version(struct cli *cli);

/* Parse a positive int64 id ("customer id", "merge id"); usage error otherwise. */
int cli_parse_id(struct cli *cli, const struct cli_cmd *cmd, const char *what, const char *s,
		 int64_t *out);

/*
 * Parse a point in time for an option (--now, --since, --at): milliseconds
 * since the epoch ("1767225600000"), a date ("2026-01-01", midnight UTC), or
 * a date and time "2026-01-01T08:00[:00[.000]]" (or with a space for the T)
 * followed by "Z", "+08:00" or nothing (UTC). Usage error otherwise.
 */
int cli_parse_time(struct cli *cli, const struct cli_cmd *cmd, const char *what, const char *s,
		   int64_t *out);

/*
 * Parse a duration for an option (--lease): milliseconds ("90000") or
 * numbers with units ms, s, m, h, d, w ("30s", "5m", "1h30m"), as the rule
 * engine writes them. Usage error otherwise.
 */
int cli_parse_duration(struct cli *cli, const struct cli_cmd *cmd, const char *what,
		       const char *s, int64_t *out);

/* -------------------------------------------------------------- the database */

/*
 * Open cli->db_path. `create`: create the file if missing (only `init`
 * does; other commands want an existing database). On failure prints the
 * error and returns NULL.
 */
scrm_db *cli_open(struct cli *cli, bool create);

/* Close the handle, reporting a failure. Returns `rc` or CLI_EXIT_ERROR. */
int cli_close(struct cli *cli, scrm_db *db, int rc);

/* Report the library's refusal (cli_lib_error) and close the database. Returns CLI_EXIT_ERROR. */
int cli_fail(struct cli *cli, scrm_db *db, int rc);

/* Shows the library's JSON for reading (without --json); `ud` as given to cli_show(). */
typedef void (*cli_show_fn)(const char *json, const void *ud);

/*
 * The end of a command that asked the library for JSON text `out`: when rc
 * is not SCRM_OK, cli_fail(); else `out` as it came with --json, else
 * through `show` (cli_print_json() when NULL). Frees `out` and closes the
 * database. Returns the exit code.
 */
int cli_show(struct cli *cli, scrm_db *db, int rc, char *out, cli_show_fn show, const void *ud);

/*
 * A command that shows what `get` returns (cli_show()). Without `set` it
 * takes no argument ("tags list"); with `set`, an optional JSON argument
 * applied first ("rules config [JSON]").
 */
int cli_get(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
	    int (*set)(scrm_db *db, const char *json), int (*get)(scrm_db *db, char **out),
	    cli_show_fn show);

/*
 * A "[--now T]" command: open the database, `run` as of T (0, the clock,
 * without --now) and show the summary it returns.
 */
int cli_run_at(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
	       int (*run)(scrm_db *db, int64_t now, char **out), cli_show_fn show);

/* -------------------------------------------------------------------- errors */

/* Print "scrm: <cmd>: <scrm_errmsg(db)> (<scrm_errstr(rc)>)". Returns CLI_EXIT_ERROR. */
int cli_lib_error(struct cli *cli, scrm_db *db, int rc);

/* Print "scrm: <cmd>: <message>". Returns CLI_EXIT_ERROR. */
int cli_error(struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --------------------------------------------------------------------- output */

/* Write `s` as a JSON string literal (with quotes). */
void cli_json_str(FILE *f, const char *s);

/*
 * Print library JSON: with cli->json as it came (one line, exact), else
 * indented for reading. Always ends with a newline.
 */
void cli_print_json(struct cli *cli, const char *json);

/*
 * Print `s` left-aligned in `width` terminal columns (at least one space
 * follows). Counts CJK and other wide characters as two columns, so that
 * tables with Chinese nicknames stay aligned.
 */
void cli_pad(FILE *f, const char *s, int width);

/* Terminal columns of the first `len` bytes of UTF-8 text `s` (wide characters count two). */
int cli_text_width(const char *s, size_t len);

/* Format ms since the epoch as "2026-01-01 08:00:00Z" (UTC) into buf. */
const char *cli_format_time(int64_t ms, char *buf, size_t size);

/* ------------------------------------------------ reading the library's JSON */

/* forward declaration: common.h does not include cJSON.h for everyone */
struct cJSON;

/* A string member, or `dflt` when absent or not a string. */
const char *cli_jstr(const struct cJSON *obj, const char *key, const char *dflt);

/* An integer member as text ("-" when absent or null). */
const char *cli_jnum(const struct cJSON *obj, const char *key, char *buf, size_t size);

/* A time member: ms since the epoch shown in UTC ("-" when absent or null). */
const char *cli_jtime(const struct cJSON *obj, const char *key, char *buf, size_t size);

/* A JSON value for display: strings as they are, anything else as compact JSON. */
void cli_print_value(FILE *f, const struct cJSON *v);
/* The consent object of a profile, as `scrm profile show` and `scrm consent` print it. */
void cli_print_consent(const struct cJSON *consent);

/* Read a whole file ("-" = standard input) into a NUL-terminated buffer (free()). */
char *cli_read_file(struct cli *cli, const char *path);

/* ------------------------------------------------------- loading JSON lines */

#define CLI_LOAD_BATCH 10000 /* lines per transaction */

struct cli_reject {
	long long line;
	int code;
	char *msg;
};

/* One load: set name, in (and batch, 0 = CLI_LOAD_BATCH); the rest is the outcome. */
struct cli_load {
	const char *name;   /* file name for messages ("<stdin>") */
	FILE *in;
	int batch;
	long long lines;    /* non-blank lines read */
	long long rejected; /* lines the callback refused (not fatal) */
	long long committed;  /* lines 1..committed are stored */
	long long stopped_at; /* line at which a fatal error stopped the load, or 0 */
	struct cli_reject *rejects; /* the first 1000 rejected lines */
	size_t nrejects;
	double seconds;
};

/* Handle one line: an SCRM_* code, with the message in scrm_errmsg(db). */
typedef int (*cli_line_fn)(void *ud, scrm_db *db, const char *line, long long lineno);

/*
 * Feed every non-blank line of l->in to fn, l->batch lines per transaction.
 * A refused line (bad input: SCRM_INVALID, SCRM_PARSE, …) is reported on
 * stderr and counted, and loading goes on — each library call is atomic, so
 * it does not spoil its batch. An error of the database itself (busy, I/O,
 * corrupt…) stops the load, rolls back the open batch and says which lines
 * are stored. Returns CLI_EXIT_OK or CLI_EXIT_ERROR (already reported).
 */
int cli_load_lines(struct cli *cli, scrm_db *db, struct cli_load *l, cli_line_fn fn, void *ud);

/* The members "lines", "rejected", "rejects", "seconds", "stopped_at_line" of a JSON summary. */
void cli_load_json(FILE *f, const struct cli_load *l);

/*
 * A "define JSON | --file FILE" command: one definition, or an array of
 * them applied in one transaction, all or none, each with `apply`. `noun`
 * names one in messages ("tag 2 of the array", "no tag was changed"). On
 * success `report` prints the outcome: `parsed` is the definition as parsed
 * (or NULL), `count` how many were applied.
 */
int cli_define(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv, const char *noun,
	       int (*apply)(scrm_db *db, const char *json),
	       void (*report)(struct cli *cli, const struct cJSON *parsed, int count));

/* The "rejected  N   (lines 3, 7)" line of a human summary. */
void cli_load_rejected_line(FILE *f, const struct cli_load *l);

void cli_load_free(struct cli_load *l);

/* ------------------------------------------------------------------ progress */

/* A rate line on stderr, shown only when stderr is a terminal. */
struct cli_progress {
	bool enabled;
	const char *unit; /* what is counted: "lines" unless changed after cli_progress_start() */
	double start;   /* seconds */
	double last;    /* last redraw */
	double every;   /* seconds between redraws: 0.2, or $SCRM_PROGRESS_INTERVAL */
	bool drawn;
};

void cli_progress_start(struct cli_progress *p);
void cli_progress_update(struct cli_progress *p, long long lines);
void cli_progress_end(struct cli_progress *p);
double cli_seconds(void);

#endif /* SCRM_CLI_COMMON_H */
