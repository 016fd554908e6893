/*
 * libscrm — the rule evaluator (SPEC.md §3): the compiled expression
 * language, rules with triggers and limits, the outbox of host actions, the
 * decision trace, tags (manual and rule tags) and segments.
 */
#ifndef SCRM_RULES_H
#define SCRM_RULES_H

#include "scrm/common.h"
#include "scrm/db.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @file scrm/rules.h
 *  @brief Rule evaluator: expressions (and, later, rules and the outbox).
 *
 *  An expression is compiled once into an immutable scrm_expr that any
 *  number of threads may evaluate at the same time. Each evaluating thread
 *  owns a scrm_expr_vars (the "activation"): the values bound to the field
 *  paths the expression reads. Paths are resolved to integer slots when the
 *  expression is compiled, so binding a value on the hot path is an array
 *  store. doc/expressions.md is the language reference.
 *
 *  @code
 *  scrm_expr *e; scrm_expr_vars *v; int holds;
 *  if (scrm_expr_compile("event.amount >= 10000 && profile.level == \"gold\"",
 *                        NULL, &e) != SCRM_OK)
 *          fprintf(stderr, "%s\n", scrm_errmsg(NULL)); // "1:14: expected ..."
 *  scrm_expr_vars_new(e, &v);
 *  int amount = scrm_expr_var_index(e, "event.amount");    // once
 *  int level = scrm_expr_var_index(e, "profile.level");
 *  scrm_expr_vars_set_int(v, amount, 12000);               // per evaluation
 *  scrm_expr_vars_set_str(v, level, "gold", 4);
 *  if (scrm_expr_test(e, v, &holds) == SCRM_OK && holds) { ... }
 *  scrm_expr_vars_free(v);
 *  scrm_expr_free(e);
 *  @endcode
 *
 *  Errors: functions return SCRM_OK or a result code. The message ("L:C:
 *  what went wrong", with the 1-based line and column in characters) is
 *  available from scrm_errmsg(NULL) on the calling thread and, for
 *  evaluations, also from scrm_expr_errmsg(vars) so that hosts need not
 *  rely on thread-local state. Codes used: SCRM_MISUSE (NULL or mismatched
 *  arguments), SCRM_PARSE (syntax), SCRM_LIMIT (a limit of
 *  scrm_expr_options was exceeded), SCRM_EVAL (type mismatch, division by
 *  zero, missing host function), SCRM_RANGE (integer overflow, number out
 *  of range), SCRM_INVALID (bad regular expression, time zone, UTF-8 or
 *  argument value), SCRM_NOMEM.
 */

/* ===================================================================== */
/** @name Expressions: compiling
 *  @{ */

/** A compiled expression (immutable, shareable across threads). */
typedef struct scrm_expr scrm_expr;

/** Compile options: limits (create with scrm_expr_options_new()). */
typedef struct scrm_expr_options scrm_expr_options;

/** Limits settable with scrm_expr_options_set_limit(); the defaults are in
 *  brackets. Values are never renumbered. */
#define SCRM_EXPR_LIMIT_SOURCE      1 /**< source text bytes [65536] */
#define SCRM_EXPR_LIMIT_DEPTH       2 /**< nesting depth, also of JSON bound by
                                           scrm_expr_vars_set_json() [64; at most 256] */
#define SCRM_EXPR_LIMIT_NODES       3 /**< syntax tree nodes [4096] */
#define SCRM_EXPR_LIMIT_STRING      4 /**< bytes of a string made while evaluating
                                           (`+`, lower()) [65536] */
#define SCRM_EXPR_LIMIT_COST        5 /**< cost units per evaluation, including the
                                           work of matches() [100000] */
#define SCRM_EXPR_LIMIT_REGEX_MATCH 6 /**< PCRE2 match limit of matches(): steps of
                                           one match attempt [100000] */
#define SCRM_EXPR_LIMIT_REGEX_DEPTH 7 /**< PCRE2 depth limit of matches() [5000] */
#define SCRM_EXPR_LIMIT_REGEX_HEAP  8 /**< PCRE2 heap limit of matches(), KiB [2048] */

/**
 * Create an options object holding the default limits.
 * @param out receives the object; release with scrm_expr_options_free().
 * @return SCRM_OK, SCRM_MISUSE (out is NULL) or SCRM_NOMEM.
 */
SCRM_API int scrm_expr_options_new(scrm_expr_options **out);

/** Release an options object. NULL is a no-op. */
SCRM_API void scrm_expr_options_free(scrm_expr_options *opts);

/**
 * Set one limit (SCRM_EXPR_LIMIT_*). The limits are copied into each
 * expression when it is compiled; later changes do not affect it.
 * @return SCRM_OK; SCRM_MISUSE (opts NULL); SCRM_INVALID (unknown limit);
 *   SCRM_RANGE (value below 1, or above the limit's ceiling: SOURCE,
 *   NODES and STRING at most 2^30, DEPTH at most 256).
 */
SCRM_API int scrm_expr_options_set_limit(scrm_expr_options *opts, int limit, int64_t value);

/**
 * Compile an expression.
 *
 * @param src  UTF-8 source text, NUL-terminated.
 * @param opts limits, or NULL for the defaults. Not retained.
 * @param out  receives the expression (NULL on failure); release with
 *   scrm_expr_free().
 * @return SCRM_OK; SCRM_MISUSE (src or out NULL); SCRM_PARSE (syntax, unknown
 *   function, wrong argument count: "L:C: expected X but found Y");
 *   SCRM_LIMIT (source, depth or node limit); SCRM_RANGE (integer or
 *   duration literal out of range); SCRM_INVALID (invalid UTF-8, bad
 *   regular expression, unknown time zone literal); SCRM_NOMEM. The message
 *   is in scrm_errmsg(NULL) and the position in scrm_expr_error_pos(NULL).
 */
SCRM_API int scrm_expr_compile(const char *src, const scrm_expr_options *opts, scrm_expr **out);

/** Release a compiled expression. NULL is a no-op. Every scrm_expr_vars
 *  made for it must be freed first. */
SCRM_API void scrm_expr_free(scrm_expr *expr);

/** @} */

/* ===================================================================== */
/** @name Expressions: variables (field paths)
 *  @{ */

/** Number of distinct field paths the expression reads (its slots,
 *  numbered 0 .. count-1 in order of first appearance). -1 if expr is NULL. */
SCRM_API int scrm_expr_var_count(const scrm_expr *expr);

/** Path of a slot, e.g. "profile.rfm.monetary" (owned by the expression),
 *  or NULL if the slot is out of range. */
SCRM_API const char *scrm_expr_var_name(const scrm_expr *expr, int slot);

/** Slot of a path, or -1 if the expression does not read it. */
SCRM_API int scrm_expr_var_index(const scrm_expr *expr, const char *path);

/** @} */

/* ===================================================================== */
/** @name Expressions: activations (bound values; one per thread)
 *  @{ */

/** The values bound to an expression's slots for evaluation, plus scratch
 *  space reused across evaluations. Used by one thread at a time. */
typedef struct scrm_expr_vars scrm_expr_vars;

/** Host functions and the current time for has_tag(), count(), sum(),
 *  now() and days_since(); may be shared by many activations (and threads,
 *  as long as nobody changes it while they evaluate). */
typedef struct scrm_expr_env scrm_expr_env;

/**
 * Create an activation for `expr` with every slot missing. `expr` must
 * outlive it.
 * @return SCRM_OK, SCRM_MISUSE or SCRM_NOMEM.
 */
SCRM_API int scrm_expr_vars_new(const scrm_expr *expr, scrm_expr_vars **out);

/** Release an activation. NULL is a no-op. */
SCRM_API void scrm_expr_vars_free(scrm_expr_vars *vars);

/**
 * Typed setters: bind a value to a slot. Binding replaces the slot's
 * previous value. All return SCRM_OK, or SCRM_MISUSE for a NULL vars or a
 * slot out of range (and, for _set_str, s NULL with len > 0; SCRM_RANGE
 * for len above 4 GiB).
 *
 * scrm_expr_vars_set_str() does not copy: the `len` bytes at `s` (UTF-8,
 * not necessarily NUL-terminated) are borrowed and must stay valid and
 * unchanged until every evaluation that reads the slot has returned, or
 * until the slot is bound again.
 */
SCRM_API int scrm_expr_vars_set_int(scrm_expr_vars *vars, int slot, int64_t value);
/** @copydoc scrm_expr_vars_set_int (value: 0 is false, anything else true) */
SCRM_API int scrm_expr_vars_set_bool(scrm_expr_vars *vars, int slot, int value);
/** @copydoc scrm_expr_vars_set_int */
SCRM_API int scrm_expr_vars_set_str(scrm_expr_vars *vars, int slot, const char *s, size_t len);
/** Bind null: the path is present (has() is true) and its value is null. */
SCRM_API int scrm_expr_vars_set_null(scrm_expr_vars *vars, int slot);
/** Make the path missing: its value is null and has() is false. */
SCRM_API int scrm_expr_vars_clear(scrm_expr_vars *vars, int slot);
/** Make every path missing. @return SCRM_OK or SCRM_MISUSE. */
SCRM_API int scrm_expr_vars_reset(scrm_expr_vars *vars);

/**
 * Bind the paths found in a JSON value (copied; nothing is borrowed).
 *
 * Every slot whose path is `prefix` or starts with `prefix` + "." is first
 * made missing; then the JSON value is bound at `prefix`: nested objects
 * give dotted paths (`{"props":{"sku":"A1"}}` at "event" binds
 * "event.props.sku"), arrays become lists, and a path naming an object is
 * present but holds an opaque object. With prefix NULL or "" the value must
 * be an object and every slot is reset. Members whose path the expression
 * does not read are only checked for JSON syntax. Numbers bound to a slot
 * must be integers (no fraction or exponent).
 *
 * @return SCRM_OK; SCRM_MISUSE; SCRM_PARSE (malformed JSON, "json L:C: …");
 *   SCRM_INVALID (non-integer number, invalid UTF-8, top level not an
 *   object); SCRM_RANGE (integer out of int64 range); SCRM_LIMIT (nested
 *   deeper than SCRM_EXPR_LIMIT_DEPTH); SCRM_NOMEM. On failure every slot
 *   under prefix is missing.
 */
SCRM_API int scrm_expr_vars_set_json(scrm_expr_vars *vars, const char *prefix, const char *json);

/** Use `env` (borrowed; NULL detaches) for host functions and now(). */
SCRM_API int scrm_expr_vars_set_env(scrm_expr_vars *vars, const scrm_expr_env *env);

/** @} */

/* ===================================================================== */
/** @name Expressions: host functions
 *  @{ */

/** has_tag(tag): set *has to 1 or 0. `tag` is not NUL-terminated. Return
 *  SCRM_OK, or an error code that fails the evaluation. */
typedef int (*scrm_expr_tag_fn)(void *userdata, const char *tag, size_t tag_len, int *has);

#define SCRM_EXPR_AGG_COUNT 1 /**< count(type, within): number of events */
#define SCRM_EXPR_AGG_SUM   2 /**< sum(type, within): sum of event amounts (minor units) */

/** count()/sum() over the customer's events of `type` (not NUL-terminated)
 *  whose time t satisfies from_ms <= t <= to_ms (to_ms is now, from_ms is
 *  now - within). Set *result and return SCRM_OK, or an error code. */
typedef int (*scrm_expr_events_fn)(void *userdata, int agg, const char *type, size_t type_len,
				   int64_t from_ms, int64_t to_ms, int64_t *result);

/** Create an environment without host functions and without a current
 *  time. @return SCRM_OK, SCRM_MISUSE or SCRM_NOMEM. */
SCRM_API int scrm_expr_env_new(scrm_expr_env **out);

/** Release an environment. NULL is a no-op. No activation may still use it. */
SCRM_API void scrm_expr_env_free(scrm_expr_env *env);

/** Fix the value of now() (ms since the epoch, UTC), which is also the end
 *  of count() and sum() windows and the reference of days_since(). Replaces
 *  a clock set with scrm_expr_env_set_clock(). Without a time source those
 *  functions fail with SCRM_EVAL ("now: no current time bound ...").
 *  @return SCRM_OK or SCRM_MISUSE. */
SCRM_API int scrm_expr_env_set_now(scrm_expr_env *env, int64_t now_ms);

/**
 * Take now() from a clock hook instead: `fn(userdata)` is called at most
 * once per evaluation, the first time the expression needs the time, so all
 * uses within one evaluation agree. `fn` NULL means the real-time clock.
 * To follow a database's clock hook, pass a function returning
 * scrm_db_now(db) with the handle as userdata. Replaces a time fixed with
 * scrm_expr_env_set_now(). `fn` must be safe to call from every thread
 * that evaluates with this environment.
 * @return SCRM_OK or SCRM_MISUSE (env NULL).
 */
SCRM_API int scrm_expr_env_set_clock(scrm_expr_env *env, scrm_clock_fn fn, void *userdata);

/** Host functions (either may be NULL: the expression function then fails
 *  with SCRM_EVAL "has_tag: no tag source bound" / "count: no event source
 *  bound"). `userdata` (typically the customer being evaluated) is passed to
 *  both. They may be called from every thread evaluating with this
 *  environment. @return SCRM_OK or SCRM_MISUSE. */
SCRM_API int scrm_expr_env_set_functions(scrm_expr_env *env, scrm_expr_tag_fn has_tag,
					 scrm_expr_events_fn events, void *userdata);

/** @} */

/* ===================================================================== */
/** @name Expressions: evaluating
 *  Evaluation allocates nothing on the hot path; string results (lower(),
 *  `+` on strings, list literals with variables) use scratch space kept in
 *  the activation and reused by the next evaluation.
 *  @{ */

/**
 * Evaluate a condition: *holds is 1 iff the result is exactly `true`
 * (null, false or any other value give 0).
 * @return SCRM_OK; SCRM_MISUSE (NULL argument, vars made for another
 *   expression, or vars already evaluating); SCRM_EVAL; SCRM_RANGE;
 *   SCRM_LIMIT; SCRM_NOMEM; or the code a host function returned. On error
 *   *holds is 0.
 */
SCRM_API int scrm_expr_test(const scrm_expr *expr, scrm_expr_vars *vars, int *holds);

/**
 * Evaluate and return the result as JSON text (`true`, `42`, `"abc"`,
 * `null`, `[1,"a"]`; an object bound from JSON is `{}`).
 * @param out receives the text; release with scrm_free().
 * @return as scrm_expr_test(); *out is NULL on error.
 */
SCRM_API int scrm_expr_eval_json(const scrm_expr *expr, scrm_expr_vars *vars, char **out);

/**
 * Evaluate with tracing: *out receives (also when the evaluation fails)
 * `{"ok":true,"value":V,"cost":N,"steps":[…]}` or
 * `{"ok":false,"code":17,"error":"1:5: division by zero","cost":N,"steps":[…]}`
 * where steps lists every sub-expression in pre-order as
 * `{"depth":D,"pos":"L:C","expr":"source text","value":V}`, with
 * `"missing":true` for a path that is not bound, `"error":"…"` for the
 * sub-expression that failed and `"evaluated":false` instead of "value"
 * for one skipped by short-circuit. Release with scrm_free().
 * @return the evaluation's code as scrm_expr_eval_json(); *out is NULL only
 *   for SCRM_MISUSE and SCRM_NOMEM.
 */
SCRM_API int scrm_expr_eval_trace(const scrm_expr *expr, scrm_expr_vars *vars, char **out);

/**
 * Message of the last failed evaluation with `vars` ("not an error" if the
 * last one succeeded). With vars NULL: the message of the last failed
 * scrm_expr_* call on this thread, as scrm_errmsg(NULL). Owned by the
 * library; valid until the next call with the same vars (or thread).
 */
SCRM_API const char *scrm_expr_errmsg(const scrm_expr_vars *vars);

/**
 * Position (1-based line and column, in characters) of the last error of
 * `vars`, or with vars NULL of the last failed compile or evaluation on
 * this thread.
 * @return SCRM_OK; SCRM_NOTFOUND (that error had no position; line and
 *   column are set to 0).
 */
SCRM_API int scrm_expr_error_pos(const scrm_expr_vars *vars, int *line, int *column);

/** @} */

/* ===================================================================== */
/* Rules (trigger + condition + actions + limits), the action outbox and
 * rule tags will be declared here, after the expression API they build on. */

/* ===================================================================== */
/** @name Rules: definitions
 *
 *  A rule is JSON (UTF-8), identified by `id`, versioned: loading a
 *  definition that differs from the stored one makes version + 1; loading
 *  the same definition again keeps the version (members are compared after
 *  parsing, so order and white space do not matter; `enabled` is state, not
 *  definition). Every version stays readable (scrm_rules_get_json()).
 *
 *  @code
 *  {"id":"cart_abandon",                 // 1-64 of [a-z0-9_.-], required
 *   "name":"Cart abandonment coupon",    // optional text, up to 256 bytes
 *   "priority":10,                       // lower runs first; default 100
 *   "enabled":true,                      // default true
 *   "trigger":{"type":"absence","start":"cart_add","missing":"order",
 *              "within":"72h","match":"event.props.sku == start.props.sku"},
 *   "condition":"profile.figures.orders >= 1",   // optional expression
 *   "actions":[{"type":"send_coupon","params":{"coupon":"CART10"},
 *               "consent":"marketing"},
 *              {"type":"tag.add","tag":"cart_abandoner"}],
 *   "limits":{"group":"marketing","cooldown":"7d","once":false,
 *             "quiet_hours":true,"consent":"marketing","on_cap":"defer"}}
 *  @endcode
 *
 *  Triggers (`type` chooses; unknown members are refused):
 *  - `{"type":"event","event":"order","max_age":"1d"}`: each stored event of
 *    that type (not a duplicate); `max_age` (optional) skips events whose
 *    time is older than that when they are stored (historical imports).
 *  - `{"type":"absence","start":"cart_add","missing":"order","within":"72h",
 *    "match":EXPR}`: every `start` event begins a wait that ends at its time
 *    + `within`. An event of type `missing` of the same customer whose time
 *    t satisfies start <= t <= start + within (and for which `match`, if
 *    given, holds with `event.*` the awaited event and `start.*` the start
 *    event) cancels the wait (traced `cancelled_by_event`). A wait not
 *    cancelled fires from scrm_rules_tick() once its end has passed; the
 *    condition is checked then, with `event.*` the start event.
 *  - `{"type":"date","attribute":"birthday","days_before":0,"at":"10:00",
 *    "yearly":true}`: the profile attribute ("YYYY-MM-DD") each year (or
 *    once, yearly false), `days_before` days earlier (0-366), at local time
 *    `at` (default 10:00) in the customer's time zone; fired by
 *    scrm_rules_tick(). 29 February falls on the 28th in other years.
 *
 *  Durations are strings of a number and a unit ms, s, m, h, d or w
 *  ("30m", "72h", "7d", "1h30m"), from 1 s to 3650 days.
 *
 *  The condition is an expression (doc/expressions.md) that holds only when
 *  it is exactly true. It reads `event.{id,type,channel,key,at,amount,
 *  currency,refund_of}`, `event.props.…`, `event.items` (event and absence
 *  triggers), `profile.…` (the shape of scrm_profile_json(), fetched when
 *  the evaluation first reaches such a path; `profile.attributes.NAME`
 *  fetches that attribute alone),
 *  `trigger.{kind,instance,due}`, and calls has_tag(), count(), sum(),
 *  now(), days_since() for the customer; any other path is refused when the
 *  rule is loaded. An evaluation error is traced (`error`), never fatal.
 *
 *  Actions (1-16, run in the order built-ins first):
 *  - `{"type":"tag.add","tag":T}` / `{"type":"tag.remove","tag":T}`: T must
 *    be defined (scrm_tags_define()); the change is recorded with the rule
 *    id and version as source.
 *  - `{"type":"profile.set","attributes":{…}}`: as scrm_profile_set_json().
 *  - host actions: any other name of [a-z0-9_] (no dot), with optional
 *    `params` (a JSON object, up to 64 KiB) and `consent` (a purpose). They
 *    are written to the outbox in the same transaction (see the outbox
 *    section). A name with a dot that is not a built-in is refused.
 *
 *  Limits (checked in this order once the condition holds):
 *  - `once`: fire at most once per customer (ever, over all versions);
 *  - `cooldown`: not again for the customer within this duration;
 *  - consent: every host action needs its `consent` purpose (or the rule's
 *    `limits.consent`) granted (scrm_profile_consent_set()); otherwise the
 *    whole firing is stopped (`no_consent`);
 *  - `group`: the frequency cap of that group (scrm_rules_config_set()) is
 *    counted over the firings of every rule in the group for the customer;
 *    when reached the firing is dropped (`cap_reached`) or, with `on_cap`
 *    "defer" (the rule's, else the group's), held until a unit frees up
 *    (`cap_deferred`);
 *  - `quiet_hours`: true (the configured window) or {"start","end"} "HH:MM":
 *    inside the window (customer's local time) the firing is held until the
 *    window ends (`quiet_hours_deferred`).
 *  A held firing keeps the actions decided and is delivered by
 *  scrm_rules_tick() when due: consent, cap and quiet hours are checked
 *  again then (the condition is not); it counts as pending for once and
 *  cooldown.
 *
 *  Time: a firing's time (what caps, cooldowns and the trace count) is the
 *  handle's clock when an event is stored, and `now` of scrm_rules_tick().
 *  Time zones: the customer's attribute `tz`, else the configured
 *  `default_tz`, known as for local_hour() (an unknown `tz` falls back to
 *  the default): zones with daylight saving time use the offset in force
 *  at each instant (current rules only; see doc/expressions.md).
 *  @{ */

/**
 * Load (create or replace) one rule, or an array of rules, all or nothing.
 * @param json a rule object or an array of them (up to 10000, 16 MiB).
 * @param report if not NULL, receives
 *   `{"rules":[{"id":"x","version":2,"changed":true,"enabled":true}…]}`;
 *   release with scrm_free().
 * @return SCRM_OK; SCRM_PARSE (malformed JSON, or a condition/match that
 *   does not compile: "rule 'x': condition: 1:14: expected …" with line and
 *   column); SCRM_INVALID (a missing, unknown or bad member, unknown action,
 *   bad duration, a path no rule can bind, an id given twice); SCRM_RANGE
 *   (duration or number out of range); SCRM_NOTFOUND (undefined tag or cap
 *   group); SCRM_LIMIT (sizes); SCRM_MISUSE; SCRM_READONLY; SCRM_BUSY;
 *   SCRM_NOMEM. The message names the rule and the member.
 */
SCRM_API int scrm_rules_load(scrm_db *db, const char *json, char **report);

/**
 * A rule as JSON: its canonical definition with `version` (the one asked
 * for), `current_version`, `enabled` and `removed` added.
 * @param version 0 for the current version.
 * @param out release with scrm_free().
 * @return SCRM_OK; SCRM_NOTFOUND (no such rule or version); SCRM_RANGE
 *   (negative version); SCRM_MISUSE.
 */
SCRM_API int scrm_rules_get_json(scrm_db *db, const char *id, int64_t version, char **out);

/**
 * The rules not removed, in priority order, as a JSON array of
 * `{"id","version","enabled","priority","updated_at","name","trigger","on","group"}`
 * (`trigger` is the trigger type, `on` its event type or attribute).
 * @param out release with scrm_free().
 */
SCRM_API int scrm_rules_list_json(scrm_db *db, char **out);

/**
 * Enable (nonzero) or disable a rule. Disabling keeps the rule and its
 * version; its pending absence waits and deferrals are dropped when they
 * come due, its date schedules at once. @return SCRM_OK; SCRM_NOTFOUND.
 */
SCRM_API int scrm_rules_enable(scrm_db *db, const char *id, int enabled);

/**
 * Remove a rule: it stops acting, its pending waits, schedules and
 * deferrals go; its versions, trace and outbox actions stay (loading the
 * id again continues its version numbers). @return SCRM_OK; SCRM_NOTFOUND.
 */
SCRM_API int scrm_rules_remove(scrm_db *db, const char *id);

/**
 * Set rule engine configuration from a JSON object; members not given keep
 * their values, and inside `groups` each group given replaces that group
 * (null removes it). Defaults in brackets:
 * @code
 * {"default_tz":"Asia/Shanghai",                  // ["Asia/Shanghai"]
 *  "quiet_hours":{"start":"22:00","end":"08:00"}, // [22:00-08:00]; false: none
 *  "groups":{"marketing":{"max":3,"per":"7d","on_cap":"drop"}},
 *  "outbox":{"lease":"5m","max_attempts":10,"backoff":"1m","backoff_max":"6h"},
 *  "trace":{"condition_false":true}}
 * @endcode
 * A group's `per` is a rolling duration ("7d": the firings in the last 7
 * days) or a calendar period "day", "week" (Monday to Sunday) or "month" in
 * the customer's time zone; `max` 1..1000000; `on_cap` "drop" or "defer".
 * `trace.condition_false` false stops tracing evaluations whose condition
 * was false (everything else is always traced).
 * @return SCRM_OK; SCRM_PARSE; SCRM_INVALID; SCRM_RANGE; SCRM_CONFLICT (a
 *   group still used by a rule would be removed).
 */
SCRM_API int scrm_rules_config_set(scrm_db *db, const char *json);

/** The whole configuration with defaults filled in, as JSON (release with scrm_free()). */
SCRM_API int scrm_rules_config_json(scrm_db *db, char **out);

/**
 * Run time-based work due at `now_ms` (0 = the handle's clock), in one
 * transaction: (re)schedule date rules for customers whose date attributes
 * or `tz` changed (and for every holder of the attribute after a date rule
 * is loaded or enabled), then fire, in time order (ties: rule priority, rule
 * id, customer), absence waits whose end has passed, date occurrences due
 * and deferred firings due. The library never reads the clock for this on
 * its own: call it periodically (e.g. every minute).
 * @param summary if not NULL, receives `{"now":T,"scheduled":N,"absence":N,
 *   "date":N,"deferred":N,"dropped":N}` (release with scrm_free()).
 * @return SCRM_OK; SCRM_RANGE (now outside 0..year 9999); SCRM_BUSY; SCRM_NOMEM.
 */
SCRM_API int scrm_rules_tick(scrm_db *db, int64_t now_ms, char **summary);

/** @} */

/* ===================================================================== */
/** @name Rules: the decision trace
 *
 *  Every evaluation that fired or was stopped is recorded, in the same
 *  transaction, as
 *  @code
 *  {"rule":"cart_abandon","version":2,"customer":7,"at":T,
 *   "trigger":"absence","instance":"ev:1203","event":1203,
 *   "outcome":"cap_reached",
 *   "detail":{"group":"marketing","cap":"3/3","count":3,"max":3,
 *             "window":"rolling 7d","on_cap":"drop"},
 *   "inputs":{"profile":{"figures":{"orders":2}},"calls":[["has_tag","vip",0]]},
 *   "condition":{"ok":true,"value":true,"steps":[…]}}
 *  @endcode
 *  `outcome` is one of fired, condition_false, error, once, cooldown,
 *  no_consent, cap_reached, cap_deferred, quiet_hours_deferred,
 *  cancelled_by_event. `trigger` is event, absence or date; `instance`
 *  names what triggered ("ev:<event id>", "date:2026-05-01"). `detail`
 *  holds the outcome's particulars: fired → `actions` (each host action's
 *  outbox id and idempotency key, tag changes) and `cap` ("2/3" after this
 *  firing) for grouped rules, `deferred` when it was a held firing; deferrals
 *  → `until`; no_consent → `purpose`; cooldown → `until`; error → `code` and
 *  `error`; cancelled_by_event → `by_event`, `start_at`, `due`, and the
 *  correlation's `match_inputs`. `inputs` are the values the condition
 *  read beyond what the record holds already (its time, trigger and event):
 *  the part of the profile read and the results of has_tag, count and sum
 *  (`["count","order",from,result]`) — deliberately small; with SCRM_RULES_TRACE_STEPS the
 *  condition is re-evaluated from them and `condition` shows every
 *  sub-expression's value as scrm_expr_eval_trace() does. Deferred firings
 *  delivered later are traced again without inputs. Erasing a customer
 *  drops the inputs of its trace.
 *  @{ */

/** Include `condition` (the replayed sub-expression trace). */
#define SCRM_RULES_TRACE_STEPS 0x1u

/**
 * Trace records, newest first, as a JSON array (see above). For a
 * customer: by time, then the latest recorded first; otherwise in the
 * order recorded, latest first (the same unless scrm_rules_tick() was
 * given a time earlier than one already traced). A query by rule alone
 * reads the trace from its newest end until it has `limit` records.
 * @param rule_id only this rule (NULL: any).
 * @param customer only this customer and every id merged into it (0: any).
 * @param since_ms only records at or after this time.
 * @param limit at most this many (0: all).
 * @param flags 0 or SCRM_RULES_TRACE_STEPS.
 * @param out release with scrm_free().
 * @return SCRM_OK; SCRM_NOTFOUND (unknown rule or customer); SCRM_RANGE
 *   (negative limit); SCRM_INVALID (unknown flags, bad customer id).
 */
SCRM_API int scrm_rules_trace_json(scrm_db *db, const char *rule_id, int64_t customer,
				   int64_t since_ms, int limit, unsigned int flags, char **out);

/** Delete trace records older than `before_ms`; *deleted (may be NULL) counts them. */
SCRM_API int scrm_rules_trace_prune(scrm_db *db, int64_t before_ms, int64_t *deleted);

/** @} */

/* ===================================================================== */
/** @name Rules: the outbox of host actions
 *
 *  Host actions are rows of a durable outbox, written in the transaction
 *  that decided them (with the event that triggered them, or the tick).
 *  A host takes a batch with a lease, performs each action, and acknowledges
 *  it — or fails it, to be retried with exponential backoff. An action
 *  taken but neither acknowledged nor failed before its lease ends (the
 *  host crashed) is offered again: delivery is at least once, and every
 *  action carries a stable idempotency key (`key`: 32 hex digits, a hash of
 *  rule id, version, customer, trigger instance and action index) for the
 *  host to drop repeats.
 *
 *  Action JSON (take, list, and the delivery callback):
 *  @code
 *  {"id":12,"key":"5f0c…","action":"send_coupon","params":{"coupon":"CART10"},
 *   "customer":7,"rule":"cart_abandon","version":2,
 *   "trigger":{"kind":"absence","instance":"ev:1203","event":1203},
 *   "state":"leased","attempt":1,"created_at":T,"lease_until":T,"last_error":null}
 *  @endcode
 *  States: pending (never taken), leased (taken; offered again after
 *  `lease_until`), failed (offered again at `next_at`), done, dead (given
 *  up: failed permanently, or offered `max_attempts` times). `attempt`
 *  counts the times it was taken. The retry delay after the Nth attempt is
 *  backoff · 2^(N-1), at most backoff_max (scrm_rules_config_set()).
 *  @{ */

/**
 * Take up to `max` actions that are ready (pending, failed and due, or
 * leased with the lease run out), oldest due first, and lease them for
 * `lease_ms` (0: the configured lease, default 5 minutes).
 * @param out receives a JSON array of actions (possibly empty); release
 *   with scrm_free().
 * @return SCRM_OK; SCRM_RANGE (max outside 1..1000, lease outside 0..7 days);
 *   SCRM_READONLY; SCRM_BUSY; SCRM_NOMEM.
 */
SCRM_API int scrm_outbox_take(scrm_db *db, int max, int64_t lease_ms, char **out);

/**
 * Acknowledge an action as performed (done). Acknowledging a done action
 * again is SCRM_OK. @return SCRM_OK; SCRM_NOTFOUND; SCRM_STATE (it is dead:
 * retry it first).
 */
SCRM_API int scrm_outbox_ack(scrm_db *db, int64_t id);

/**
 * Report that performing an action failed: it is offered again after the
 * backoff, or is dead when `permanent` is nonzero or it was taken
 * max_attempts times.
 * @param error text kept as `last_error` (UTF-8, up to 1024 bytes; may be NULL).
 * @return SCRM_OK; SCRM_NOTFOUND; SCRM_STATE (done or dead); SCRM_INVALID (error text).
 */
SCRM_API int scrm_outbox_fail(scrm_db *db, int64_t id, const char *error, int permanent);

/** Make a dead (or failed) action ready again at once with its attempts
 *  reset. @return SCRM_OK; SCRM_NOTFOUND; SCRM_STATE (not dead or failed). */
SCRM_API int scrm_outbox_retry(scrm_db *db, int64_t id);

/**
 * Actions as a JSON array, newest first.
 * @param state only this state ("pending", "leased", "failed", "done",
 *   "dead"; NULL: any). @param customer only this customer (and ids merged
 *   into it; 0: any). @param limit at most this many (0: all).
 * @return SCRM_OK; SCRM_INVALID (unknown state); SCRM_RANGE; SCRM_NOTFOUND (customer).
 */
SCRM_API int scrm_outbox_list_json(scrm_db *db, const char *state, int64_t customer, int limit,
				   char **out);

/** Delivery callback: perform the action (JSON as above, valid during the
 *  call) and return SCRM_OK to acknowledge it; any other value fails it
 *  (retried after the backoff; `last_error` says which value). The callback
 *  may instead settle the action itself on the same handle, e.g.
 *  scrm_outbox_fail() with its own error text or `permanent`: an action
 *  the callback acknowledged, failed or retried is left as it left it,
 *  whatever it returns. */
typedef int (*scrm_outbox_fn)(void *userdata, const char *action_json);

/**
 * Install (or with fn NULL remove) an immediate-delivery callback on this
 * handle. Right after a transaction of this handle that wrote host actions
 * commits (an event stored, a tick, or a batch — after scrm_db_commit()),
 * before that call returns, every ready action is taken, handed to `fn`
 * and acknowledged or failed, each step committed on its own. Actions
 * still go through the outbox: if the process dies before acknowledging,
 * they are offered again after the lease. `fn` may call the library on the
 * same handle (actions those calls produce are delivered by the same loop)
 * but must not close it. @return SCRM_OK; SCRM_MISUSE; SCRM_NOMEM.
 */
SCRM_API int scrm_outbox_set_handler(scrm_db *db, scrm_outbox_fn fn, void *userdata);

/**
 * Hand ready actions to the delivery callback now (retries, or actions
 * other handles wrote).
 * @param max at most this many deliveries (0: until none is ready).
 * @param delivered receives the number acknowledged (may be NULL).
 * @return SCRM_OK; SCRM_MISUSE (no callback, inside a batch, or from the
 *   callback); SCRM_RANGE; SCRM_BUSY.
 */
SCRM_API int scrm_outbox_deliver(scrm_db *db, int max, int *delivered);

/** @} */

/* ===================================================================== */
/** @name Tags
 *
 *  Tags live in groups; in an exclusive group a customer holds at most one
 *  tag (adding another removes the one held, recorded as such). Tag and
 *  group names are 1-64 bytes of UTF-8 text ("vip", "高价值"). Tags are
 *  changed by an actor (scrm_tag_add(), scrm_tag_remove()) or by rule
 *  actions; every change is recorded with its source and time.
 *
 *  A **rule tag** is defined by an expression over the profile (the paths
 *  and functions a rule condition may read, but no `event.…`):
 *  `{"name":"big_spender","expr":"profile.figures.orders >= 5"}`. The
 *  library keeps it: a customer holds it exactly when the expression is
 *  true for it. It is re-evaluated for a customer in the transaction of
 *  every event of that customer and every change of its attributes, and
 *  for everyone by scrm_tags_refresh() (which also catches what time alone
 *  changes: `days_since(…)`, the RFM scores of the last refresh). Changes
 *  are recorded with source `{"rule":"tag:NAME","version":V}`, V counting
 *  the definitions of the expression (1, 2 …). A rule tag cannot be added
 *  or removed by hand or by a rule action (SCRM_STATE).
 *
 *  Customer ids may be any id ever issued; tags belong to the canonical
 *  customer. A merge moves the absorbed side's tags to the survivor, except
 *  one of an exclusive group the survivor already holds one of (recorded as
 *  removed, reason "merge N"); an unmerge gives each side back the tags
 *  given to its ids. Erasing a customer removes its tags.
 *  @{ */

/**
 * Create or change a tag group:
 * `{"name":"level","exclusive":true,"description":"membership level"}`.
 * @return SCRM_OK; SCRM_PARSE; SCRM_INVALID; SCRM_CONFLICT (becoming
 *   exclusive while a customer holds several of its tags).
 */
SCRM_API int scrm_tags_group_set(scrm_db *db, const char *json);

/**
 * Create or change a tag: `{"name":"gold","group":"level","description":"…"}`
 * (`group` optional), or a rule tag with `"expr":"…"` (see above). Giving a
 * rule tag a new expression makes a new version and evaluates nobody: call
 * scrm_tags_refresh(). A manual tag cannot become a rule tag while
 * customers hold it, nor a rule tag manual (SCRM_CONFLICT).
 * @return SCRM_OK; SCRM_PARSE (JSON, or the expression: "tag 'NAME': L:C: …");
 *   SCRM_INVALID (also an expression that reads `event.…` or an unknown
 *   path); SCRM_NOTFOUND (no such group); SCRM_CONFLICT (moving a tag
 *   customers hold to another group; see above).
 */
SCRM_API int scrm_tags_define(scrm_db *db, const char *json);

/**
 * Groups and tags as JSON: `{"groups":[{"name","exclusive","description"}…],
 * "tags":[{"name","group","kind":"manual"|"rule","description","customers":N,
 * "expr":…,"version":V}…]}` (`expr` and `version` for rule tags only).
 */
SCRM_API int scrm_tags_list_json(scrm_db *db, char **out);

/**
 * Give a customer a tag (no change, and no history, if it holds it).
 * @param actor who does it (1-128 bytes of text), recorded as the source.
 * @return SCRM_OK; SCRM_NOTFOUND (unknown tag or customer); SCRM_STATE
 *   (erased customer); SCRM_INVALID (actor, customer id); SCRM_MISUSE.
 */
SCRM_API int scrm_tag_add(scrm_db *db, int64_t customer, const char *tag, const char *actor);

/** Take a tag from a customer (no change if it does not hold it).
 *  Results as scrm_tag_add(). */
SCRM_API int scrm_tag_remove(scrm_db *db, int64_t customer, const char *tag, const char *actor);

/** *has is 1 if the customer holds the tag, else 0 (also for an unknown tag).
 *  @return SCRM_OK; SCRM_NOTFOUND (customer); SCRM_MISUSE. */
SCRM_API int scrm_tag_has(scrm_db *db, int64_t customer, const char *tag, int *has);

/**
 * A customer's tags by name: `[{"tag":"gold","group":"level","at":T,
 * "source":{"rule":"vip_upgrade","version":3}}…]` (or `"source":{"actor":"alice"}`).
 */
SCRM_API int scrm_tags_customer_json(scrm_db *db, int64_t customer, char **out);

/**
 * A customer's tag changes (over every id merged into it), newest first:
 * `[{"id","customer","tag","op":"add"|"remove","at","source":{…},"reason"}…]`
 * (`reason`: "exclusive group" when another tag of the group replaced it,
 * "merge N" when a merge dropped it, else null). `id` is the history
 * record's id, or null for an addition made by scrm_tags_refresh() to a
 * holding the customer still has (that addition is recorded in the
 * holding itself; it gets an id when the holding is taken away). Changes
 * of the same time: those with an id first, higher ids first.
 * @param limit at most this many (0: all).
 */
SCRM_API int scrm_tags_history_json(scrm_db *db, int64_t customer, int limit, char **out);

/**
 * Re-evaluate rule tags for every canonical, unerased customer, in one
 * transaction: a customer for which the expression is now true gets the
 * tag, one for which it is not (false, null or an evaluation error) loses it.
 * @param tag one rule tag, or NULL for all of them.
 * @param summary receives (may be NULL) `{"tags":{"NAME":{"holders":N,
 *   "added":A,"removed":R,"version":V}…},"customers":C,"seconds":S}`;
 *   release with scrm_free().
 * @return SCRM_OK; SCRM_NOTFOUND (no such tag); SCRM_INVALID (a manual
 *   tag); SCRM_READONLY; SCRM_BUSY; SCRM_NOMEM.
 */
SCRM_API int scrm_tags_refresh(scrm_db *db, const char *tag, char **summary);

/** @} */

/* ===================================================================== */
/** @name Segments
 *
 *  A segment is an expression over the profile, as for rule tags: the
 *  canonical, unerased customers for which it is exactly true, in
 *  ascending id order. Nothing is stored; every call evaluates it as of
 *  now (the handle's clock) in one read transaction. An expression made of
 *  comparisons of figures, RFM scores, lifecycle, net spend and has_tag()
 *  joined by `&&`, `||`, `!` runs as one SQL query; anything else is
 *  evaluated customer by customer (slower; scrm_segment_explain_json()
 *  says which). Both give the same answer.
 *
 *  Errors as scrm_tags_define() for the expression: SCRM_PARSE,
 *  SCRM_INVALID, SCRM_LIMIT; and SCRM_BUSY, SCRM_NOMEM.
 *  @{ */

/** Number of customers in the segment. */
SCRM_API int scrm_segment_count(scrm_db *db, const char *expr, int64_t *count);

/** Called for each customer of a segment; return nonzero to stop (that
 *  value is then returned by scrm_segment_foreach()). The callback must
 *  not write through the same handle. */
typedef int (*scrm_segment_fn)(void *userdata, int64_t customer);

/** Call `fn` for each customer of the segment, ascending id. */
SCRM_API int scrm_segment_foreach(scrm_db *db, const char *expr, scrm_segment_fn fn,
				  void *userdata);

/**
 * One page of a segment: a JSON array of at most `limit` ids (1..100000)
 * greater than `after` (0: from the start), ascending. Page on with the
 * last id of a page until a page is shorter than `limit`.
 * @return SCRM_OK; SCRM_RANGE (limit); as above.
 */
SCRM_API int scrm_segment_ids_json(scrm_db *db, const char *expr, int64_t after, int limit,
				   char **out);

/**
 * How a segment is evaluated: `{"plan":"sql","sql":"SELECT …"}` or
 * `{"plan":"scan","why":"…"}` (the part that is not translated).
 */
SCRM_API int scrm_segment_explain_json(scrm_db *db, const char *expr, char **out);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* SCRM_RULES_H */
