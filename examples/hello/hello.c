/*
 * hello — the smallest libscrm program: open a database (in memory unless a
 * path is given), print the library and schema versions, close.
 *
 *   cc hello.c $(pkg-config --cflags --libs libscrm) -o hello
 *   ./hello [file.db]
 */
#include <stdio.h>

#include <scrm.h>

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : ":memory:";
	scrm_db *db = NULL;

	/* A program built against one release may run with a later one. */
	if (scrm_version_number() / 10000 != SCRM_VERSION_MAJOR)
		fprintf(stderr, "warning: built with libscrm %s, running with %s\n",
			SCRM_VERSION_STRING, scrm_version());

	int rc = scrm_db_open(path, NULL, &db);
	if (rc != SCRM_OK) {
		fprintf(stderr, "hello: cannot open %s: %s (%s)\n", path, scrm_errmsg(NULL),
			scrm_errstr(rc));
		return 1;
	}
	printf("libscrm %s\n", scrm_version());
	printf("schema version %d\n", scrm_schema_version());
	printf("database %s\n", scrm_db_path(db));
	return scrm_db_close(db) == SCRM_OK ? 0 : 1;
}
