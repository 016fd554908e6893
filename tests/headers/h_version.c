/* Header test: <scrm/version.h> compiles on its own, twice (include guard), as C99
 * -pedantic and as C++11, without pulling in dependency headers. */
#include <scrm/version.h>
#include <scrm/version.h>
#include "no_deps.h"

int scrm_hdrtest_version(void);
int scrm_hdrtest_version(void)
{
	return SCRM_VERSION_NUMBER == SCRM_VERSION_MAJOR * 10000 + SCRM_VERSION_MINOR * 100 +
				      SCRM_VERSION_PATCH &&
	       sizeof SCRM_VERSION_STRING > 1;
}
