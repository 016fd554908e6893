/*
 * libscrm — identity merging: one customer out of every channel's
 * identifiers (kinds, normalizers, observe, resolve, merge log, unmerge).
 */
#ifndef SCRM_IDENTITY_H
#define SCRM_IDENTITY_H

#include "scrm/common.h"
#include "scrm/db.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @file scrm/identity.h
 *  @brief Identity resolution (SPEC.md §1).
 *
 *  An identifier is a (kind, value) pair. An observation is the set of
 *  identifiers seen together at one time on one channel; observing it
 *  returns the customer they resolve to, creating, attaching to or merging
 *  customers as SPEC.md "Resolving one observation" defines. Customer ids
 *  are positive int64; an id absorbed by a merge stays valid forever and
 *  resolves to its survivor through scrm_identity_canonical().
 *
 *  JSON shapes (all text is UTF-8):
 *
 *  Kind definition (scrm_identity_kind_set):
 *  @code
 *  {"name":"phone", "normalizer":"phone", "priority":20, "limit":3,
 *   "blocklist":["00000000000"], "block_patterns":["^\\+?0+$"],
 *   "pattern":"^M(\\d{8})$"}
 *  @endcode
 *  `normalizer` is one of "phone", "email", "trim", "casefold" or "pattern";
 *  with "pattern", `pattern` (PCRE2) must match the trimmed value and its
 *  first capture group (or the whole match) is the stored value. Blocklist
 *  entries are compared after normalization, each entry also in its own
 *  normal form (so "13800138000" blocks "+86 138 0013 8000" as a phone);
 *  block_patterns are PCRE2 and are tested against the normalized value.
 *  Patterns may not use `\C`. `limit` 0 means unlimited.
 *  `name` is 1–64 characters of [a-z0-9_].
 *
 *  Observation (scrm_identity_observe_json):
 *  @code
 *  {"channel":"tmall", "at":1767225600000,
 *   "ids":{"tmall_buyer_nick":"小明", "phone":["138 0013 8000", "+86 139..."]}}
 *  @endcode
 *  `at` is milliseconds since the epoch (or an RFC 3339 string); it defaults
 *  to the handle's clock. Unknown top-level fields are refused.
 *
 *  Observation report (the optional `report` output):
 *  @code
 *  {"customer":7, "observation":41, "outcome":"merged",
 *   "attached":[{"kind":"phone","value":"+8613800138000"}],
 *   "merged":[{"merge":3,"survivor":7,"absorbed":9}],
 *   "conflicts":[{"kind":"wechat_unionid","value":"o2","owner":12,"reason":"…"}],
 *   "rejected":[{"kind":"phone","value":"null","reason":"blocked"}]}
 *  @endcode
 *  outcome is "created", "attached", "merged" or "unchanged" (the most
 *  significant thing that happened; "merged" wins over "attached").
 */

/** @name Kinds
 *  @{ */

/**
 * Create or replace an identifier kind from its JSON definition. Replacing
 * changes how future values are normalized and limited; stored identifiers
 * are kept as they are.
 * @return SCRM_OK; SCRM_PARSE (malformed JSON, with position); SCRM_INVALID
 *   (unknown field, bad name, unknown normalizer, bad regex, negative limit).
 */
SCRM_API int scrm_identity_kind_set(scrm_db *db, const char *json);

/** Definition of one kind as JSON (release with scrm_free()). SCRM_NOTFOUND if unknown. */
SCRM_API int scrm_identity_kind_get(scrm_db *db, const char *name, char **out);

/** All kinds as a JSON array ordered by (priority, name) (release with scrm_free()). */
SCRM_API int scrm_identity_kinds_json(scrm_db *db, char **out);

/**
 * Normalize a value as `kind` would store it, without storing anything.
 * @param out receives the normalized value (release with scrm_free()).
 * @return SCRM_OK; SCRM_NOTFOUND (unknown kind); SCRM_INVALID (not a valid
 *   value of the kind, or blocked — the message says which).
 */
SCRM_API int scrm_identity_normalize(scrm_db *db, const char *kind, const char *value, char **out);
/** @} */

/** @name Observe and resolve
 *  @{ */

/**
 * Observe identifiers seen together (typed hot path for POS/ERP callers).
 *
 * @param channel  source channel name (e.g. "pos", "wecom"); not NULL.
 * @param at_ms    observation time, ms since the epoch; 0 = the handle's clock.
 * @param kinds, values  `n` parallel arrays of kind names and raw values.
 * @param customer receives the canonical customer id.
 * @param report   if not NULL, receives the observation report JSON
 *                 (release with scrm_free()).
 * @return SCRM_OK; SCRM_NOTFOUND (unknown kind); SCRM_INVALID (no usable
 *   identifier after normalization and blocklists — nothing is stored; the
 *   message lists why each was rejected); SCRM_MISUSE; SCRM_BUSY; SCRM_NOMEM.
 *   Invalid or blocked values next to usable ones are reported, not errors.
 */
SCRM_API int scrm_identity_observe(scrm_db *db, const char *channel, int64_t at_ms,
				   const char *const *kinds, const char *const *values, size_t n,
				   int64_t *customer, char **report);

/** Observe from JSON (see the file comment). Same results as scrm_identity_observe(). */
SCRM_API int scrm_identity_observe_json(scrm_db *db, const char *json, int64_t *customer,
					char **report);

/**
 * Canonical customer holding identifier (kind, value); the value is
 * normalized first. @return SCRM_OK, SCRM_NOTFOUND (unknown kind or value),
 * SCRM_INVALID (value invalid or blocked).
 */
SCRM_API int scrm_identity_resolve(scrm_db *db, const char *kind, const char *value,
				   int64_t *customer);

/** Survivor of any customer id ever issued (itself when not merged). SCRM_NOTFOUND otherwise. */
SCRM_API int scrm_identity_canonical(scrm_db *db, int64_t id, int64_t *survivor);

/**
 * Identifiers of a customer (of its survivor, if merged) as a JSON array of
 * `{"kind","value","channel","observation","at"}` ordered by (priority, kind, value).
 */
SCRM_API int scrm_identity_list_json(scrm_db *db, int64_t customer, char **out);
/** @} */

/** @name Merge, never-merge, unmerge, explain
 *  @{ */

/**
 * Manually merge two customers; the survivor is the older (smaller) canonical id.
 * @param reason free text kept in the merge log (may be NULL).
 * @param merge_id receives the merge log id (may be NULL).
 * @return SCRM_OK; SCRM_NOTFOUND; SCRM_INVALID (both are already one customer);
 *   SCRM_CONFLICT (a kind limit would break or the pair is marked never-merge).
 */
SCRM_API int scrm_identity_merge(scrm_db *db, int64_t a, int64_t b, const char *reason,
				 int64_t *merge_id);

/**
 * Record that two customers must never be merged (automatic or manual).
 * @return SCRM_OK; SCRM_NOTFOUND; SCRM_INVALID (same customer); SCRM_EXISTS (already recorded).
 */
SCRM_API int scrm_identity_never_merge(scrm_db *db, int64_t a, int64_t b, const char *reason);

/**
 * Undo one logged merge. The absorbed customer lives again; every identifier
 * returns to the side whose observations brought it; identifiers attached
 * after the merge follow the identifier their observation was resolved
 * through. The pair is then marked never-merge (so the next observation
 * records a conflict instead of merging them again), and the unmerge is logged.
 * @param unmerge_id receives the log id of the unmerge (may be NULL).
 * @return SCRM_OK; SCRM_NOTFOUND (no such merge); SCRM_STATE (already undone,
 *   or the absorbed side was itself merged on through a later merge that must
 *   be undone first).
 */
SCRM_API int scrm_identity_unmerge(scrm_db *db, int64_t merge_id, const char *reason,
				   int64_t *unmerge_id);

/**
 * Merge/unmerge history touching a customer (and the customers it absorbed)
 * as a JSON array of `{"id","op","survivor","absorbed","observation","at","reason","undone_by"}`.
 */
SCRM_API int scrm_identity_history_json(scrm_db *db, int64_t customer, char **out);

/**
 * Identity graph of a customer as JSON: `{"customer","canonical","absorbed":[…],
 * "identifiers":[…], "observations":[…], "history":[…], "conflicts":[…]}`.
 */
SCRM_API int scrm_identity_explain_json(scrm_db *db, int64_t customer, char **out);

/** The same graph as Graphviz DOT text (release with scrm_free()). */
SCRM_API int scrm_identity_explain_dot(scrm_db *db, int64_t customer, char **out);
/** @} */

/** @name Erasure (personal information protection)
 *  @{ */

/**
 * Erase the identity data of customers (what scrm_profile_erase() and
 * anonymization use): each customer and every customer merged into it lose
 * their identifiers, the identifier values recorded with their observations
 * and conflicts, and the free-text reasons of their merge-log and
 * never-merge entries. Ids, times and the merge structure stay: the ids
 * remain valid for scrm_identity_canonical(), but no identifier resolves
 * to them any more, a later observation of the same values creates a new
 * customer, and they can no longer be merged (SCRM_STATE). Customers
 * already erased are skipped. All or nothing.
 * @param customers, n  the customers (any id of each).
 * @param erased receives how many canonical customers were newly erased (may be NULL).
 * @return SCRM_OK; SCRM_NOTFOUND (an id was never issued; nothing erased); SCRM_MISUSE.
 */
SCRM_API int scrm_identity_erase(scrm_db *db, const int64_t *customers, size_t n,
				 int64_t *erased);

/**
 * When a customer (its canonical survivor) was erased: *erased_at is the
 * time in ms, or 0 when it was not. @return SCRM_OK; SCRM_NOTFOUND.
 */
SCRM_API int scrm_identity_erased(scrm_db *db, int64_t customer, int64_t *erased_at);
/** @} */

#ifdef __cplusplus
}
#endif

#endif /* SCRM_IDENTITY_H */
