/*
 * The one allocator of libscrm. Every allocation passes here so that tests
 * can make the Nth one fail (per handle, or per thread without a handle).
 */
#include <stdlib.h>
#include <string.h>

#include "core-int.h"
#include "db-int.h"

static _Thread_local long tls_fail_countdown;

void scrm__test_alloc_fail(long nth)
{
	tls_fail_countdown = nth > 0 ? nth : 0;
}

/* True when this allocation must fail by the test hook. */
static bool injected_failure(scrm_db *db)
{
	long *countdown = db ? &db->alloc_fail_countdown : &tls_fail_countdown;
	if (*countdown <= 0)
		return false;
	if (--*countdown == 0)
		return true;
	return false;
}

void *scrm__malloc(scrm_db *db, size_t n)
{
	if (injected_failure(db))
		return NULL;
	return malloc(n ? n : 1);
}

void *scrm__calloc(scrm_db *db, size_t count, size_t size)
{
	if (injected_failure(db))
		return NULL;
	return calloc(count ? count : 1, size ? size : 1);
}

void *scrm__realloc(scrm_db *db, void *p, size_t n)
{
	if (injected_failure(db))
		return NULL;
	return realloc(p, n ? n : 1);
}

char *scrm__strndup(scrm_db *db, const char *s, size_t n)
{
	char *d = scrm__malloc(db, n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

char *scrm__strdup(scrm_db *db, const char *s)
{
	return scrm__strndup(db, s, strlen(s));
}

void scrm__free(void *p)
{
	free(p);
}

SCRM_API void scrm_free(void *p)
{
	free(p);
}
