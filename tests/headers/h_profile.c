/* Header test: <scrm/profile.h> compiles on its own, twice (include guard), as C99
 * -pedantic and as C++11, without pulling in dependency headers. */
#include <scrm/profile.h>
#include <scrm/profile.h>
#include "no_deps.h"

int scrm_hdrtest_profile(void);
int scrm_hdrtest_profile(void)
{
	return 1;
}
