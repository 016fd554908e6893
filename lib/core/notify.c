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

typedef int (*scrm_interest)(scrm_db *db, const scrm_note *note, scrm_want *want);

/* Whether each listener needs a note; in the order of `listeners`. NULL:
 * the listener needs none of the notes this is asked about (events). */
static const scrm_interest interests[] = {
	NULL,                    /* the profile engine's own events */
	scrm__rules_note_wanted, /* rules and rule tags on events */
};

_Static_assert(sizeof interests / sizeof interests[0] == sizeof listeners / sizeof listeners[0],
	       "one interest per listener");

int scrm__notify_wanted(scrm_db *db, const scrm_note *note, scrm_want *want)
{
	*want = SCRM_WANT_NONE;
	if (note->kind != SCRM_NOTE_EVENT) {
		*want = SCRM_WANT_EACH;
		return SCRM_OK;
	}
	for (size_t i = 0; i < sizeof interests / sizeof interests[0] && *want != SCRM_WANT_EACH; i++) {
		if (!interests[i])
			continue;
		scrm_want w = SCRM_WANT_NONE;
		int rc = interests[i](db, note, &w);
		if (rc)
			return rc;
		if (w > *want)
			*want = w;
	}
	return SCRM_OK;
}
