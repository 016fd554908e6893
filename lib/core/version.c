/* Run-time version of the library (compare with the compile-time macros). */
#include "core-int.h"

SCRM_API const char *scrm_version(void)
{
	return SCRM_VERSION_STRING;
}

SCRM_API int scrm_version_number(void)
{
	return SCRM_VERSION_NUMBER;
}
