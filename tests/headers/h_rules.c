/* Header test: <scrm/rules.h> compiles on its own, twice (include guard), as C99
 * -pedantic and as C++11, without pulling in dependency headers. */
#include <scrm/rules.h>
#include <scrm/rules.h>
#include "no_deps.h"

int scrm_hdrtest_rules(void);
int scrm_hdrtest_rules(void)
{
	return 1;
}
