/* Header test: <scrm/settle.h> compiles on its own, twice (include guard), as C99
 * -pedantic and as C++11, without pulling in dependency headers. */
#include <scrm/settle.h>
#include <scrm/settle.h>
#include "no_deps.h"

int scrm_hdrtest_settle(void);
int scrm_hdrtest_settle(void)
{
	return 1;
}
