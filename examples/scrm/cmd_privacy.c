/*
 * scrm — privacy commands (include/scrm/profile.h): consent per purpose,
 * erase a customer, anonymize inactive customers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "common.h"

#define DAY_MS 86400000LL

/* ------------------------------------------------------------------ privacy */

static int consent_show(struct cli *cli, scrm_db *db, int64_t customer, const char *purpose)
{
	int rc;
	if (purpose) {
		int granted = 0;
		if ((rc = scrm_profile_consent_get(db, customer, purpose, &granted)) != SCRM_OK)
			return cli_fail(cli, db, rc);
		if (cli->json) {
			printf("{\"customer\":%lld,\"purpose\":", (long long)customer);
			cli_json_str(stdout, purpose);
			printf(",\"granted\":%s}\n", granted ? "true" : "false");
		} else {
			printf("%s: %s\n", purpose, granted ? "granted" : "not granted");
		}
		return cli_close(cli, db, CLI_EXIT_OK);
	}
	char *out = NULL;
	if ((rc = scrm_profile_json(db, customer, 0, &out)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	cJSON *p = cJSON_Parse(out);
	const cJSON *consent = cJSON_GetObjectItemCaseSensitive(p, "consent");
	if (cli->json) {
		char *c = cJSON_PrintUnformatted(consent);
		printf("%s\n", c ? c : "{}");
		cJSON_free(c);
	} else {
		cli_print_consent(consent);
	}
	cJSON_Delete(p);
	scrm_free(out);
	return cli_close(cli, db, CLI_EXIT_OK);
}

static int cmd_consent(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *pos[3], *source = NULL, *at_s = NULL;
	int64_t customer, at = 0;
	const struct cli_opt opts[] = {
		{"source", 's', &source, NULL},
		{"at", 0, &at_s, NULL},
		{0},
	};
	int n, rc = cli_parse(cli, cmd, argc, argv, opts, pos, 1, 3, &n);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "customer id", pos[0], &customer)) >= 0 ||
	    (at_s && (rc = cli_parse_time(cli, cmd, "--at", at_s, &at)) >= 0))
		return rc;
	if (n < 3 && (source || at_s))
		return cli_usage_error(cli, cmd, "--source and --at go with grant or withdraw");
	int granted = 0;
	if (n == 3) {
		if (!strcmp(pos[2], "grant"))
			granted = 1;
		else if (strcmp(pos[2], "withdraw"))
			return cli_usage_error(cli, cmd, "expected grant or withdraw, not '%s'", pos[2]);
		if (at_s && at == 0)
			return cli_usage_error(cli, cmd, "--at must be after the epoch");
	}
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	if (n < 3)
		return consent_show(cli, db, customer, n == 2 ? pos[1] : NULL);
	if ((rc = scrm_profile_consent_set(db, customer, pos[1], granted, at, source)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	if (cli->json) {
		printf("{\"customer\":%lld,\"purpose\":", (long long)customer);
		cli_json_str(stdout, pos[1]);
		printf(",\"granted\":%s}\n", granted ? "true" : "false");
	} else {
		printf("customer %lld: %s consent %s", (long long)customer, pos[1],
		       granted ? "granted" : "withdrawn");
		if (source)
			printf(" (source %s)", source);
		putchar('\n');
	}
	return cli_close(cli, db, CLI_EXIT_OK);
}

static int cmd_erase(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *arg, *reason = NULL;
	int64_t customer;
	const struct cli_opt opts[] = {{"reason", 'r', &reason, NULL}, {0}};
	int rc = cli_parse(cli, cmd, argc, argv, opts, &arg, 1, 1, NULL);
	if (rc >= 0 || (rc = cli_parse_id(cli, cmd, "customer id", arg, &customer)) >= 0)
		return rc;
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	if ((rc = scrm_profile_erase(db, customer, reason)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	if (cli->json)
		printf("{\"erased\":%lld}\n", (long long)customer);
	else
		printf("erased customer %lld: identifiers, attributes, consent and event details "
		       "deleted; totals kept\n", (long long)customer);
	return cli_close(cli, db, CLI_EXIT_OK);
}

static int cmd_anonymize(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
	const char *days_s = NULL, *now_s = NULL;
	int64_t days, now = 0, count = 0;
	const struct cli_opt opts[] = {
		{"inactive-days", 0, &days_s, NULL},
		{"now", 0, &now_s, NULL},
		{0},
	};
	int rc = cli_parse(cli, cmd, argc, argv, opts, NULL, 0, 0, NULL);
	if (rc >= 0)
		return rc;
	if (!days_s)
		return cli_usage_error(cli, cmd, "--inactive-days N is required");
	if ((rc = cli_parse_id(cli, cmd, "--inactive-days", days_s, &days)) >= 0 ||
	    (now_s && (rc = cli_parse_time(cli, cmd, "--now", now_s, &now)) >= 0))
		return rc;
	if (now_s && now == 0)
		return cli_usage_error(cli, cmd, "--now must be after the epoch");
	scrm_db *db = cli_open(cli, false);
	if (!db)
		return CLI_EXIT_ERROR;
	if ((rc = scrm_profile_anonymize_inactive(db, days, now, &count)) != SCRM_OK)
		return cli_fail(cli, db, rc);
	if (!now)
		now = scrm_db_now(db);
	int64_t cutoff = now - days * DAY_MS;
	if (cli->json) {
		printf("{\"erased\":%lld,\"inactive_days\":%lld,\"cutoff\":%lld}\n", (long long)count,
		       (long long)days, (long long)cutoff);
	} else {
		char at[40];
		printf("erased %lld customer%s with no event since %s\n", (long long)count,
		       count == 1 ? "" : "s", cli_format_time(cutoff, at, sizeof at));
	}
	return cli_close(cli, db, CLI_EXIT_OK);
}

/* ------------------------------------------------------------------- table */

static const struct cli_cmd privacy_cmds[] = {
	{"consent", cmd_consent, "consent ID [PURPOSE [grant|withdraw]] [--source S] [--at T]",
	 "Show consent, or record it being granted or withdrawn.",
	 "  ID                  all purposes of the customer, with time and source\n"
	 "  ID PURPOSE          whether PURPOSE (marketing, ...) is granted now\n"
	 "  ID PURPOSE grant    record consent; withdraw records its withdrawal\n"
	 "  --source S, -s S    where it was given (wecom, pos, ...)\n"
	 "  --at T              when (ms since the epoch or 2026-01-01T08:00:00+08:00); default now\n",
	 NULL},
	{"erase", cmd_erase, "erase ID [--reason TEXT]",
	 "Erase a customer's personal data for good (totals are kept).",
	 "Deletes identifiers, attributes, consent and event keys, items and properties of\n"
	 "the customer and of the customers merged into it; events keep type, channel,\n"
	 "time and amount so totals stay right. No identifier resolves to it afterwards.\n"
	 "There is no undo.\n", NULL},
	{"anonymize", cmd_anonymize, "anonymize --inactive-days N [--now T]",
	 "Erase every customer with no event in the last N days.",
	 "  --inactive-days N   customers with no event at or after now - N days, and none\n"
	 "                      created since, are erased as by 'scrm erase' (1-36500)\n"
	 "  --now T             as of T (ms since the epoch, or 2026-01-01[T08:00:00+08:00])\n"
	 "There is no undo.\n", NULL},
	{0},
};

const struct cli_group cli_group_privacy = {"privacy", privacy_cmds};
