/* Header test: <scrm/expr.h> compiles on its own, twice (include guard), as C99
 * -pedantic and as C++11, without pulling in dependency headers. */
#include <scrm/expr.h>
#include <scrm/expr.h>
#include "no_deps.h"

int scrm_hdrtest_expr(void);
int scrm_hdrtest_expr(void)
{
	return 1;
}
