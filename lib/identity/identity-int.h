/*
 * Private interface of the identity engine: the cached kind registry,
 * normalizers, and the merge primitives shared by observe and the manual
 * merge/unmerge calls.
 */
#ifndef SCRM_IDENTITY_INT_H
#define SCRM_IDENTITY_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>

#include "core-int.h"
#include "scrm/identity.h"

#define ID_VALUE_MAX 256   /* bytes of a normalized value */
#define ID_OBSERVE_MAX 64  /* identifiers in one observation */

typedef enum id_norm { NORM_TRIM, NORM_CASEFOLD, NORM_PHONE, NORM_EMAIL, NORM_PATTERN } id_norm;

typedef struct id_kind {
	int64_t id;
	char *name;
	id_norm norm;
	int priority;
	int limit;
	pcre2_code *pattern;          /* NORM_PATTERN */
	char **block;                 /* exact values, as given and normalized */
	size_t nblock;
	pcre2_code **block_re;
	size_t nblock_re;
} id_kind;

typedef struct id_state {
	id_kind *kinds;               /* sorted by (priority, name) */
	size_t nkinds;
	uint64_t fresh_in_tx;         /* write transaction in which it was checked */
	uint64_t set_in_tx;           /* write transaction that set a kind (may roll back) */
	char rev[48];                 /* scrm_meta 'identity.kinds_rev' when loaded ("" = stale) */
	pcre2_match_data *md;
	pcre2_match_context *mctx;
} id_state;

/* Registry (kind.c). id__state() loads or refreshes the cache. */
int id__state(scrm_db *db, id_state **out);
const id_kind *id__kind_by_name(const id_state *st, const char *name);
const id_kind *id__kind_by_id(const id_state *st, int64_t id);

/* Normalize `raw` into out[ID_VALUE_MAX+1]. Returns SCRM_OK, or SCRM_INVALID
 * with a reason in why[] ("blocked", "not a phone number", ...). */
int id__normalize(id_state *st, const id_kind *k, const char *raw, char *out, char *why,
		  size_t whylen);
/* Normal form of a blocklist entry into out[ID_VALUE_MAX+1], ignoring the
 * blocklists; SCRM_INVALID when the entry is no value of the kind. */
int id__normalize_block(pcre2_match_data *md, pcre2_match_context *mctx, const id_kind *k,
			const char *entry, char *out);

/* Canonical (root) id of a customer; SCRM_NOTFOUND if never issued. */
int id__root(scrm_db *db, int64_t id, int64_t *root);

/* Would merging roots a and b keep every kind within its limit and break
 * no never-merge pair? Returns SCRM_OK or SCRM_CONFLICT with a reason. */
int id__can_merge(scrm_db *db, id_state *st, int64_t a, int64_t b, char *why, size_t whylen);

/* Merge root `absorbed` into root `survivor`; logs it. */
int id__merge(scrm_db *db, int64_t survivor, int64_t absorbed, int64_t at, const char *reason,
	      int64_t *merge_id);

/* Schema step of the identity engine (schema.c). */
extern const char scrm__identity_schema_1[];
extern const char scrm__identity_schema_2[];

#endif
