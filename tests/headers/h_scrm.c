/* Header test: <scrm.h> compiles on its own, twice (include guard), as C99
 * -pedantic and as C++11, without pulling in dependency headers. */
#include <scrm.h>
#include <scrm.h>
#include "no_deps.h"

int scrm_hdrtest_scrm(void);
int scrm_hdrtest_scrm(void)
{
	return 1;
}
