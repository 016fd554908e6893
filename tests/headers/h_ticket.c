/* Header test: <scrm/ticket.h> compiles on its own, twice (include guard), as C99
 * -pedantic and as C++11, without pulling in dependency headers. */
#include <scrm/ticket.h>
#include <scrm/ticket.h>
#include "no_deps.h"

int scrm_hdrtest_ticket(void);
int scrm_hdrtest_ticket(void)
{
	return 1;
}
