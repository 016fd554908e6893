/* Header test: <scrm/common.h> compiles on its own, twice (include guard), as C99
 * -pedantic and as C++11, without pulling in dependency headers. */
#include <scrm/common.h>
#include <scrm/common.h>
#include "no_deps.h"

int scrm_hdrtest_common(void);
int scrm_hdrtest_common(void)
{
	const char *(*errstr)(int) = scrm_errstr;
	void (*release)(void *) = scrm_free;
	return SCRM_OK == 0 && errstr != 0 && release != 0;
}
