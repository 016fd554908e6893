/*
 * scrm — the libscrm command-line tool (in the manner of libgit2's lg2):
 * global options, the command table, and dispatch.
 *
 *   scrm [--db FILE] [--json] <command> [<args>]
 *
 * Each command group lives in its own cmd_<group>.c and exports one
 * `const struct cli_group cli_group_<group>`. A new engine adds its file to
 * meson.build and one X(<group>) line to CLI_GROUPS below; nothing else.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define CLI_GROUPS(X) \
	X(core)       \
	X(identity)   \
	X(profile)    \
	X(privacy)    \
	X(rules)      \
	X(tags)

#define X(g) extern const struct cli_group cli_group_##g;
CLI_GROUPS(X)
#undef X

static const struct cli_group *const groups[] = {
#define X(g) &cli_group_##g,
	CLI_GROUPS(X)
#undef X
};

#define NGROUPS (sizeof groups / sizeof groups[0])

static void print_overview(FILE *f)
{
	fputs("usage: scrm [--db FILE] [--json] <command> [<args>]\n\n"
	      "The libscrm command-line tool: one customer out of every channel.\n", f);
	for (size_t g = 0; g < NGROUPS; g++) {
		fprintf(f, "\n%s:\n", groups[g]->title);
		for (const struct cli_cmd *c = groups[g]->cmds; c->name; c++)
			fprintf(f, "  %-14s %s\n", c->name, c->summary);
	}
	fputs("\nglobal options (before or after the command):\n"
	      "  --db FILE      database file (default: $SCRM_DB, else ./" SCRM_DEFAULT_DB_PATH ")\n"
	      "  --json         machine-readable output\n"
	      "  --verbose, -v  show the library's log down to debug messages\n"
	      "  --help, -h     help for scrm or for a command\n"
	      "  --version      versions of the tool, the library and the schema\n"
	      "\n'scrm help <command>' or 'scrm <command> --help' describes one command.\n"
	      "Exit status: 0 success, 1 the library refused (message on stderr), 2 usage error.\n",
	      f);
}

static const struct cli_cmd *find_command(const char *name)
{
	for (size_t g = 0; g < NGROUPS; g++)
		for (const struct cli_cmd *c = groups[g]->cmds; c->name; c++)
			if (!strcmp(c->name, name))
				return c;
	return NULL;
}

/* `scrm help [COMMAND [SUBCOMMAND]]` */
static int run_help(struct cli *cli, int argc, char **argv)
{
	if (argc < 2) {
		print_overview(stdout);
		return CLI_EXIT_OK;
	}
	const struct cli_cmd *c = find_command(argv[1]);
	if (!c)
		return cli_usage_error(cli, NULL, "unknown command '%s'", argv[1]);
	if (argc > 2 && c->subs) {
		for (const struct cli_cmd *s = c->subs; s->name; s++)
			if (!strcmp(s->name, argv[2])) {
				cli_print_help(stdout, s);
				return CLI_EXIT_OK;
			}
		cli->cmdname = c->name;
		return cli_usage_error(cli, c, "unknown subcommand '%s'", argv[2]);
	}
	cli_print_help(stdout, c);
	return CLI_EXIT_OK;
}

/* Output that did not reach its file (disk full, closed pipe) is a failure. */
static int finish(struct cli *cli, int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_error(cli, "cannot write the output");
		return CLI_EXIT_ERROR;
	}
	return rc;
}

int main(int argc, char **argv)
{
	const char *env_db = getenv("SCRM_DB");
	struct cli cli = {
		.db_path = env_db && env_db[0] ? env_db : SCRM_DEFAULT_DB_PATH,
	};
	bool help = false;
	int i = 1;
	int rc = cli_leading_options(&cli, NULL, argc, argv, &i, &help);
	if (rc >= 0) /* --version printed, or a usage error */
		return finish(&cli, rc);
	if (i >= argc) {
		if (help) {
			print_overview(stdout);
			return finish(&cli, CLI_EXIT_OK);
		}
		return cli_usage_error(&cli, NULL, "no command given");
	}
	if (!strcmp(argv[i], "help"))
		return finish(&cli, run_help(&cli, argc - i, argv + i));

	const struct cli_cmd *cmd = find_command(argv[i]);
	if (!cmd)
		return cli_usage_error(&cli, NULL, "unknown command '%s'", argv[i]);
	cli.cmdname = cmd->name;
	if (help) {
		cli_print_help(stdout, cmd);
		return finish(&cli, CLI_EXIT_OK);
	}
	/* A program built against one release may run with a later one. */
	if (scrm_version_number() / 10000 != SCRM_VERSION_MAJOR)
		fprintf(stderr, "scrm: warning: built with libscrm %s, running with %s\n",
			SCRM_VERSION_STRING, scrm_version());
	rc = cmd->subs && !cmd->run ? cli_run_subcommand(&cli, cmd, argc - i, argv + i)
				    : cmd->run(&cli, cmd, argc - i, argv + i);
	return finish(&cli, rc);
}
