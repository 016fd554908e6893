/* Header test: <scrm/identity.h> compiles on its own, twice (include guard), as C99
 * -pedantic and as C++11, without pulling in dependency headers. */
#include <scrm/identity.h>
#include <scrm/identity.h>
#include "no_deps.h"

int scrm_hdrtest_identity(void);
int scrm_hdrtest_identity(void)
{
	return 1;
}
