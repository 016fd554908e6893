/*
 * Row counts of every table (scrm_db_info_json's "tables"), for the fuzz
 * targets' "nothing changed" and "the same rows" checks. Aborts (a
 * finding) when the library cannot say. Release with cJSON_Delete().
 */
#ifndef SCRM_FUZZ_TABLES_H
#define SCRM_FUZZ_TABLES_H

#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "scrm/db.h"

static cJSON *fuzz_tables(scrm_db *db)
{
	char *info = NULL;
	cJSON *j = scrm_db_info_json(db, &info) == SCRM_OK ? cJSON_Parse(info) : NULL;
	scrm_free(info);
	cJSON *t = j ? cJSON_DetachItemFromObjectCaseSensitive(j, "tables") : NULL;
	cJSON_Delete(j);
	if (!cJSON_IsObject(t)) {
		fprintf(stderr, "fuzz: no table counts from scrm_db_info_json\n");
		abort();
	}
	return t;
}

#endif
