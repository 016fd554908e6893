/*
 * scrm — foundation commands: version, init (create or migrate the file)
 * and info (schema, library and rows per table).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "common.h"

static int cmd_version(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	int rc = cli_parse(cli, cmd, argc, argv, NULL, NULL, 0, 0, NULL);
	if (rc >= 0)
		return rc;
	return cli_print_version(cli);
}

static int cmd_init(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	int rc = cli_parse(cli, cmd, argc, argv, NULL, NULL, 0, 0, NULL);
	if (rc >= 0)
		return rc;

	struct stat st;
	bool existed = stat(cli->db_path, &st) == 0;
	scrm_db *db = cli_open(cli, true);
	if (!db)
		return CLI_EXIT_ERROR;

	/* The schema version the file now has, as the library reports it. */
	char *info = NULL;
	if ((rc = scrm_db_info_json(db, &info)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	cJSON *j = cJSON_Parse(info);
	const cJSON *sv = cJSON_GetObjectItemCaseSensitive(j, "schema_version");
	int version = cJSON_IsNumber(sv) ? sv->valueint : scrm_schema_version();
	cJSON_Delete(j);
	scrm_free(info);

	if (cli->json) {
		printf("{\"path\":");
		cli_json_str(stdout, scrm_db_path(db));
		printf(",\"schema_version\":%d,\"created\":%s}\n", version, existed ? "false" : "true");
	} else {
		printf("%s %s (schema version %d)\n", existed ? "opened" : "created",
		       scrm_db_path(db), version);
	}
	return cli_close(cli, db, CLI_EXIT_OK);
}

static void print_info_table(const char *json, const void *ud)
{
	(void)ud;
	cJSON *j = cJSON_Parse(json);
	if (!cJSON_IsObject(j)) {
		/* Not what db.h promises; show it rather than hide it. */
		cJSON_Delete(j);
		printf("%s\n", json);
		return;
	}
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(j, "path");
	const cJSON *sv = cJSON_GetObjectItemCaseSensitive(j, "schema_version");
	const cJSON *lv = cJSON_GetObjectItemCaseSensitive(j, "library_version");
	const cJSON *tables = cJSON_GetObjectItemCaseSensitive(j, "tables");

	printf("%-16s %s\n", "database", cJSON_IsString(path) ? path->valuestring : "?");
	if (cJSON_IsNumber(sv))
		printf("%-16s %d (this library writes %d)\n", "schema version", sv->valueint,
		       scrm_schema_version());
	printf("%-16s %s\n", "library", cJSON_IsString(lv) ? lv->valuestring : scrm_version());

	int width = 5;
	const cJSON *t;
	cJSON_ArrayForEach(t, tables) {
		int n = (int)strlen(t->string);
		if (n > width)
			width = n;
	}
	printf("\n%-*s %12s\n", width, "table", "rows");
	cJSON_ArrayForEach(t, tables)
		printf("%-*s %12.0f\n", width, t->string, cJSON_IsNumber(t) ? t->valuedouble : 0.0);
	cJSON_Delete(j);
}

static int cmd_info(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	return cli_get(cli, cmd, argc, argv, NULL, scrm_db_info_json, print_info_table);
}

static const struct cli_cmd core_cmds[] = {
	{"version", cmd_version, "version", "Print the versions of the tool, the library and the schema.",
	 NULL, NULL},
	{"init", cmd_init, "init [--db FILE]",
	 "Create the database file, or migrate an existing one to this library's schema.",
	 "Prints the path and the schema version. Other commands need an existing file.\n", NULL},
	{"info", cmd_info, "info [--json]",
	 "Show the schema version, the library version and the rows in each table.",
	 "--json prints the library's summary object unchanged.\n", NULL},
	{0},
};

const struct cli_group cli_group_core = {"database", core_cmds};
