/*
 * Activations (scrm_expr_vars: values bound to slots, scratch space) and
 * environments (scrm_expr_env: host functions and the current time).
 */
#include <string.h>

#include "expr-int.h"

SCRM_API int scrm_expr_vars_new(const scrm_expr *e, scrm_expr_vars **out)
{
	if (!out)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_expr_vars_new: out is NULL");
	*out = NULL;
	if (!e)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_expr_vars_new: expr is NULL");
	scrm_expr_vars *v = scrm__calloc(NULL, 1, sizeof *v);
	if (!v)
		return scrm__error(NULL, SCRM_NOMEM, "out of memory");
	v->expr = e;
	v->slots = scrm__calloc(NULL, e->nslots ? e->nslots : 1, sizeof *v->slots);
	if (!v->slots)
		goto nomem;
	for (uint32_t s = 0; s < e->nslots; s++)
		v->slots[s].v.t = SCRM_XV_UNSET;
	if (e->nre && !(v->rx = scrm__xmatcher_new(e)))
		goto nomem;
	*out = v;
	return SCRM_OK;
nomem:
	scrm_expr_vars_free(v);
	return scrm__error(NULL, SCRM_NOMEM, "out of memory");
}

void scrm__xslot_release(scrm_expr_vars *v, scrm_xslot *s)
{
	if (!s->owned)
		return;
	if (v->busy) { /* an evaluation may hold pointers into it */
		s->owned->next = v->graveyard;
		v->graveyard = s->owned;
	} else {
		scrm__free(s->owned);
	}
	s->owned = NULL;
}

SCRM_API void scrm_expr_vars_free(scrm_expr_vars *v)
{
	if (!v)
		return;
	if (v->slots)
		for (uint32_t s = 0; s < v->expr->nslots; s++)
			scrm__free(v->slots[s].owned);
	while (v->graveyard) {
		scrm_xowned *next = v->graveyard->next;
		scrm__free(v->graveyard);
		v->graveyard = next;
	}
	scrm__free(v->slots);
	scrm__xmatcher_free(v->rx);
	scrm__xarena_free(&v->scratch);
	scrm__free(v);
}

static int bad_slot(const scrm_expr_vars *v, int slot)
{
	if (!v)
		return scrm__error(NULL, SCRM_MISUSE, "expression variables are NULL");
	return scrm__error(NULL, SCRM_MISUSE, "slot %d out of range (the expression has %u)", slot,
			   v->expr->nslots);
}

/* The setters are on the hot path: one range check, one store. */
#define SLOT_OR_FAIL(v, slot)                                                        \
	if (SCRM_X_UNLIKELY(!(v) || (unsigned)(slot) >= (v)->expr->nslots))          \
		return bad_slot(v, slot);                                            \
	scrm_xslot *s = &(v)->slots[slot];                                           \
	if (SCRM_X_UNLIKELY(s->owned != NULL))                                       \
		scrm__xslot_release(v, s)

SCRM_API int scrm_expr_vars_set_int(scrm_expr_vars *v, int slot, int64_t value)
{
	SLOT_OR_FAIL(v, slot);
	s->v.t = SCRM_XV_INT;
	s->v.u.i = value;
	return SCRM_OK;
}

SCRM_API int scrm_expr_vars_set_bool(scrm_expr_vars *v, int slot, int value)
{
	SLOT_OR_FAIL(v, slot);
	s->v.t = SCRM_XV_BOOL;
	s->v.u.i = value != 0;
	return SCRM_OK;
}

SCRM_API int scrm_expr_vars_set_str(scrm_expr_vars *v, int slot, const char *str, size_t len)
{
	if (SCRM_X_UNLIKELY((!str && len) || len > UINT32_MAX)) {
		if (!str)
			return scrm__error(NULL, SCRM_MISUSE, "scrm_expr_vars_set_str: s is NULL");
		return scrm__error(NULL, SCRM_RANGE, "string of %zu bytes is too long", len);
	}
	SLOT_OR_FAIL(v, slot);
	s->v.t = SCRM_XV_STR;
	s->v.n = (uint32_t)len;
	s->v.u.s = str ? str : "";
	return SCRM_OK;
}

SCRM_API int scrm_expr_vars_set_null(scrm_expr_vars *v, int slot)
{
	SLOT_OR_FAIL(v, slot);
	s->v.t = SCRM_XV_NULL;
	return SCRM_OK;
}

SCRM_API int scrm_expr_vars_clear(scrm_expr_vars *v, int slot)
{
	SLOT_OR_FAIL(v, slot);
	s->v.t = SCRM_XV_MISSING;
	return SCRM_OK;
}

SCRM_API int scrm_expr_vars_reset(scrm_expr_vars *v)
{
	if (!v)
		return bad_slot(v, 0);
	for (uint32_t i = 0; i < v->expr->nslots; i++) {
		scrm__xslot_release(v, &v->slots[i]);
		v->slots[i].v.t = SCRM_XV_UNSET;
	}
	return SCRM_OK;
}

SCRM_API int scrm_expr_vars_set_json(scrm_expr_vars *v, const char *prefix, const char *json)
{
	if (!v || !json)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_expr_vars_set_json: NULL argument");
	return scrm__xjson_bind(v, prefix ? prefix : "", json);
}

SCRM_API int scrm_expr_vars_set_env(scrm_expr_vars *v, const scrm_expr_env *env)
{
	if (!v)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_expr_vars_set_env: vars is NULL");
	v->hooks = env ? &env->h : NULL;
	return SCRM_OK;
}

SCRM_API int scrm_expr_env_new(scrm_expr_env **out)
{
	if (!out)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_expr_env_new: out is NULL");
	*out = scrm__calloc(NULL, 1, sizeof **out);
	if (!*out)
		return scrm__error(NULL, SCRM_NOMEM, "out of memory");
	return SCRM_OK;
}

SCRM_API void scrm_expr_env_free(scrm_expr_env *env)
{
	scrm__free(env);
}

SCRM_API int scrm_expr_env_set_now(scrm_expr_env *env, int64_t now_ms)
{
	if (!env)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_expr_env_set_now: env is NULL");
	env->h.has_now = true;
	env->h.now = now_ms;
	env->h.has_clock = false;
	return SCRM_OK;
}

SCRM_API int scrm_expr_env_set_clock(scrm_expr_env *env, scrm_clock_fn fn, void *userdata)
{
	if (!env)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_expr_env_set_clock: env is NULL");
	env->h.has_now = false;
	env->h.has_clock = true;
	env->h.clock = fn;
	env->h.clock_ud = userdata;
	return SCRM_OK;
}

SCRM_API int scrm_expr_env_set_functions(scrm_expr_env *env, scrm_expr_tag_fn has_tag,
					 scrm_expr_events_fn events, void *userdata)
{
	if (!env)
		return scrm__error(NULL, SCRM_MISUSE, "scrm_expr_env_set_functions: env is NULL");
	env->h.tag_fn = has_tag;
	env->h.events_fn = events;
	env->h.ud = userdata;
	return SCRM_OK;
}
