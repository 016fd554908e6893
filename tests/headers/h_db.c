/* Header test: <scrm/db.h> compiles on its own, twice (include guard), as C99
 * -pedantic and as C++11, without pulling in dependency headers. */
#include <scrm/db.h>
#include <scrm/db.h>
#include "no_deps.h"

int scrm_hdrtest_db(void);
int scrm_hdrtest_db(void)
{
	scrm_db *db = 0;
	scrm_db_options *opts = 0;
	scrm_clock_fn clock_fn = 0;
	scrm_log_fn log_fn = 0;
	int (*open_fn)(const char *, const scrm_db_options *, scrm_db **) = scrm_db_open;
	return db == 0 && opts == 0 && clock_fn == 0 && log_fn == 0 && open_fn != 0 &&
	       (SCRM_OPEN_CREATE & SCRM_OPEN_READONLY) == 0;
}
