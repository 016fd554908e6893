/* Cross-engine notifications: a fixed, ordered list of listeners that keep
 * derived state in step with identity changes, in the same transaction. */
#include "core-int.h"

typedef int (*scrm_listener)(scrm_db *db, const scrm_note *note);

/* Listed in dependency order. An engine that is not built yet has no entry. */
static const scrm_listener listeners[] = {
	NULL, /* placeholder: keeps the array non-empty until an engine listens */
};

int scrm__notify(scrm_db *db, const scrm_note *note)
{
	for (size_t i = 0; i < sizeof listeners / sizeof listeners[0]; i++) {
		if (!listeners[i])
			continue;
		int rc = listeners[i](db, note);
		if (rc)
			return rc;
	}
	return SCRM_OK;
}
