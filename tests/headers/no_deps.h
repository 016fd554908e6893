/* Shared by the header tests: a public header must not drag in the
 * headers of libscrm's dependencies (they stay out of the ABI). */
#if defined(SQLITE_VERSION) || defined(_SQLITE3_H_)
#error "a public libscrm header includes sqlite3.h"
#endif
#if defined(cJSON__h)
#error "a public libscrm header includes cJSON.h"
#endif
#if defined(PCRE2_MAJOR)
#error "a public libscrm header includes pcre2.h"
#endif
#if defined(XXH_VERSION_MAJOR)
#error "a public libscrm header includes xxhash.h"
#endif
