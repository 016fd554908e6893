/*
 * scrm — the JSON-lines loader every import command shares: batches of
 * lines per transaction, bad lines counted and skipped, a progress line,
 * and a clean stop (whole batches kept) on errors that end the run; and the
 * definitions commands share (one JSON definition, or an array all or none).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "common.h"

#define LOAD_SHOW_REJECTS 100  /* rejected lines described on stderr */
#define LOAD_KEEP_REJECTS 1000 /* rejected lines kept for the summary */

/* Codes after which going on with the next line is pointless. */
static bool is_fatal(int rc)
{
	switch (rc) {
	case SCRM_ERROR:
	case SCRM_MISUSE:
	case SCRM_BUSY:
	case SCRM_NOMEM:
	case SCRM_IO:
	case SCRM_CORRUPT:
	case SCRM_SCHEMA:
	case SCRM_READONLY:
		return true;
	default:
		return false;
	}
}

static void keep_reject(struct cli *cli, struct cli_load *l, long long line, int code,
			const char *msg)
{
	l->rejected++;
	if (l->rejected <= LOAD_SHOW_REJECTS)
		fprintf(stderr, "scrm: %s: %s:%lld: %s (%s)\n", cli->cmdname, l->name, line, msg,
			scrm_errstr(code));
	else if (l->rejected == LOAD_SHOW_REJECTS + 1)
		fprintf(stderr, "scrm: %s: further rejected lines are only counted\n", cli->cmdname);
	if (l->nrejects >= LOAD_KEEP_REJECTS)
		return;
	if (!l->rejects && !(l->rejects = calloc(LOAD_KEEP_REJECTS, sizeof *l->rejects)))
		return;
	struct cli_reject *r = &l->rejects[l->nrejects];
	if (!(r->msg = strdup(msg)))
		return;
	r->line = line;
	r->code = code;
	l->nrejects++;
}

int cli_load_lines(struct cli *cli, scrm_db *db, struct cli_load *l, cli_line_fn fn, void *ud)
{
	struct cli_progress prog;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long long lineno = 0;
	int in_batch = 0, rc;

	if (l->batch <= 0)
		l->batch = CLI_LOAD_BATCH;
	if ((rc = scrm_db_begin(db)) != SCRM_OK)
		return cli_lib_error(cli, db, rc);
	cli_progress_start(&prog);
	while ((len = getline(&line, &cap, l->in)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		bool has_nul = (size_t)len != strlen(line);
		const char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0' && !has_nul)
			continue; /* blank lines are not data */
		l->lines++;

		rc = has_nul ? SCRM_INVALID : fn(ud, db, line, lineno);
		if (rc != SCRM_OK) {
			const char *msg = has_nul ? "the line contains a NUL byte" : scrm_errmsg(db);
			cli_progress_end(&prog);
			if (is_fatal(rc)) {
				fprintf(stderr, "scrm: %s: %s:%lld: %s (%s)\n", cli->cmdname, l->name,
					lineno, msg, scrm_errstr(rc));
				l->stopped_at = lineno;
				break;
			}
			keep_reject(cli, l, lineno, rc, msg);
		}
		if (++in_batch == l->batch) {
			if ((rc = scrm_db_commit(db)) != SCRM_OK || (rc = scrm_db_begin(db)) != SCRM_OK) {
				cli_progress_end(&prog);
				cli_lib_error(cli, db, rc);
				l->stopped_at = lineno;
				break;
			}
			l->committed = lineno;
			in_batch = 0;
		}
		if ((l->lines & 1023) == 0)
			cli_progress_update(&prog, l->lines);
	}
	cli_progress_end(&prog);
	if (!l->stopped_at && ferror(l->in)) {
		cli_error(cli, "cannot read '%s' after line %lld", l->name, lineno);
		l->stopped_at = lineno + 1;
	}
	free(line);

	int exit_code = CLI_EXIT_OK;
	if (l->stopped_at) {
		/* Keep whole batches only, so that a rerun from line committed+1 is clean. */
		if (scrm_db_batch_depth(db) > 0)
			scrm_db_rollback(db);
		fprintf(stderr, "scrm: %s: stopped at line %lld; lines 1-%lld are stored\n",
			cli->cmdname, l->stopped_at, l->committed);
		exit_code = CLI_EXIT_ERROR;
	} else if ((rc = scrm_db_commit(db)) != SCRM_OK) {
		cli_lib_error(cli, db, rc);
		fprintf(stderr, "scrm: %s: lines 1-%lld are stored\n", cli->cmdname, l->committed);
		exit_code = CLI_EXIT_ERROR;
	} else {
		l->committed = lineno;
	}
	l->seconds = cli_seconds() - prog.start;
	return exit_code;
}

void cli_load_json(FILE *f, const struct cli_load *l)
{
	fprintf(f, "\"lines\":%lld,\"rejected\":%lld,\"rejects\":[", l->lines, l->rejected);
	for (size_t i = 0; i < l->nrejects; i++) {
		fprintf(f, "%s{\"line\":%lld,\"error\":", i ? "," : "", l->rejects[i].line);
		cli_json_str(f, scrm_errstr(l->rejects[i].code));
		fputs(",\"message\":", f);
		cli_json_str(f, l->rejects[i].msg);
		fputc('}', f);
	}
	fprintf(f, "],\"seconds\":%.3f", l->seconds);
	if (l->stopped_at)
		fprintf(f, ",\"stopped_at_line\":%lld", l->stopped_at);
}

void cli_load_rejected_line(FILE *f, const struct cli_load *l)
{
	fprintf(f, "%-12s%10lld", "rejected", l->rejected);
	for (size_t i = 0; i < l->nrejects && i < 20; i++)
		fprintf(f, "%s%lld", i ? ", " : "   (lines ", l->rejects[i].line);
	if (l->nrejects)
		fputs(l->rejected > 20 ? ", ...)" : ")", f);
	fputc('\n', f);
}

void cli_load_free(struct cli_load *l)
{
	for (size_t i = 0; i < l->nrejects; i++)
		free(l->rejects[i].msg);
	free(l->rejects);
	l->rejects = NULL;
	l->nrejects = 0;
}

/* ------------------------------------------------------- JSON definitions */

/* Apply one definition; `what` names it in messages ("tag 2 of the array"). */
static int define_one(struct cli *cli, scrm_db *db, int (*apply)(scrm_db *db, const char *json),
		      const char *json, const char *what)
{
	int rc = apply(db, json);
	if (rc != SCRM_OK && what)
		fprintf(stderr, "scrm: %s: %s: %s (%s)\n", cli->cmdname, what, scrm_errmsg(db),
			scrm_errstr(rc));
	else if (rc != SCRM_OK)
		cli_lib_error(cli, db, rc);
	return rc;
}

int cli_define(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv, const char *noun,
	       int (*apply)(scrm_db *db, const char *json),
	       void (*report)(struct cli *cli, const cJSON *parsed, int count))
{
	const char *file = NULL, *arg = NULL;
	const struct cli_opt opts[] = {{"file", 'f', &file, NULL}, {0}};
	int n, rc = cli_parse(cli, cmd, argc, argv, opts, &arg, 0, 1, &n);
	if (rc >= 0)
		return rc;
	if (!!n == !!file)
		return cli_usage_error(cli, cmd, "give one JSON definition or --file FILE");
	char *text = file ? cli_read_file(cli, file) : NULL;
	if (file && !text)
		return CLI_EXIT_ERROR;
	const char *json = text ? text : arg;
	scrm_db *db = cli_open(cli, false);
	if (!db) {
		free(text);
		return CLI_EXIT_ERROR;
	}
	/* An array applies every definition in it, all or none. */
	cJSON *parsed = cJSON_Parse(json);
	int count = 0;
	if (cJSON_IsArray(parsed)) {
		const cJSON *e;
		char what[160];
		if ((rc = scrm_db_begin(db)) != SCRM_OK)
			cli_lib_error(cli, db, rc);
		cJSON_ArrayForEach(e, parsed) {
			if (rc != SCRM_OK)
				break;
			char *one = cJSON_PrintUnformatted(e);
			snprintf(what, sizeof what, "%s %d of the array (\"%.100s\")", noun, count + 1,
				 cli_jstr(e, "name", "?"));
			rc = one ? define_one(cli, db, apply, one, what) : SCRM_NOMEM;
			if (!one)
				cli_error(cli, "out of memory");
			cJSON_free(one);
			count++;
		}
		if (rc == SCRM_OK && (rc = scrm_db_commit(db)) != SCRM_OK)
			cli_lib_error(cli, db, rc);
		if (rc != SCRM_OK && scrm_db_batch_depth(db) > 0) {
			scrm_db_rollback(db);
			fprintf(stderr, "scrm: %s: no %s was changed\n", cli->cmdname, noun);
		}
	} else {
		/* The text unchanged, so that parse errors point into it. */
		rc = define_one(cli, db, apply, json, NULL);
		count = 1;
	}
	if (rc == SCRM_OK)
		report(cli, parsed, count);
	cJSON_Delete(parsed);
	free(text);
	return cli_close(cli, db, rc == SCRM_OK ? CLI_EXIT_OK : CLI_EXIT_ERROR);
}
