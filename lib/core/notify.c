/* Cross-engine notifications: a fixed, ordered list of listeners that keep
 * derived state in step with identity changes, in the same transaction. */
#include "core-int.h"

typedef int (*scrm_listener)(scrm_db *db, const scrm_note *note);

/* Listed in dependency order. An engine that is not built yet has no entry. */
static const scrm_listener listeners[] = {
	scrm__profile_on_note, /* events and figures follow merges and unmerges */
	scrm__rules_on_note,   /* rules act on stored events; rule state follows merges */
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
