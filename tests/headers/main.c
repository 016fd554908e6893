/* Header test driver: calls each per-header translation unit and makes a
 * few calls through the umbrella header, so C and C++ linkage is exercised
 * against the shared library. */
#include <stdio.h>
#include <string.h>

#include <scrm.h>

#include "hdrtests.h" /* SCRM_HDRTESTS: HDR(name) for each header built */

#define HDR(name) int scrm_hdrtest_##name(void);
SCRM_HDRTESTS
#undef HDR

int main(void)
{
	int failed = 0;
#define HDR(name)                                                       \
	if (scrm_hdrtest_##name() != 1) {                               \
		fprintf(stderr, "header test %s failed\n", #name);      \
		failed++;                                               \
	}
	SCRM_HDRTESTS
#undef HDR

	if (strcmp(scrm_version(), SCRM_VERSION_STRING) != 0 ||
	    scrm_version_number() != SCRM_VERSION_NUMBER) {
		fprintf(stderr, "run-time version %s does not match the headers' %s\n",
			scrm_version(), SCRM_VERSION_STRING);
		failed++;
	}
	scrm_db *db = NULL;
	int rc = scrm_db_open(":memory:", NULL, &db);
	if (rc != SCRM_OK) {
		fprintf(stderr, "scrm_db_open: %s: %s\n", scrm_errstr(rc), scrm_errmsg(NULL));
		failed++;
	}
	scrm_db_close(db);
	return failed ? 1 : 0;
}
