/*
 * Private interface of the rule engine (rules, triggers, limits, actions,
 * the outbox, the decision trace and tags). Separate from expr-int.h: the
 * rule engine uses the expression language through its public API, and
 * from expr-int.h only the time-zone model (scrm_tz, tz.c) it shares with
 * local_hour(). Never leaves lib/rules/.
 */
#ifndef SCRM_RULES_INT_H
#define SCRM_RULES_INT_H

#include "core-int.h"
#include "expr-int.h" /* scrm_tz: one zone model (tz.c) for expressions and rules */
#include "scrm/profile.h"
#include "scrm/rules.h"

#define RU_DAY_MS INT64_C(86400000)
#define RU_MIN_MS INT64_C(60000)
#define RU_TIME_MAX INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */
#define RU_DURATION_MAX (INT64_C(3650) * RU_DAY_MS)
#define RU_ID_MAX 64             /* bytes of a rule id, group, tag, action name */
#define RU_TEXT_MAX 256          /* bytes of a rule name, description, actor */
#define RU_DEF_MAX (256 * 1024)  /* bytes of one rules JSON document per rule */
#define RU_LOAD_MAX (16 << 20)   /* bytes of a scrm_rules_load() document */
#define RU_RULES_MAX 10000       /* rules in one load */
#define RU_ACTIONS_MAX 16        /* actions of one rule */
#define RU_PARAMS_MAX 65536      /* bytes of one action's params */
#define RU_PRIORITY_MAX 1000000
#define RU_CAP_MAX 1000000

/* ------------------------------------------------------------ config */

enum { RU_CAL_NONE = 0, RU_CAL_DAY, RU_CAL_WEEK, RU_CAL_MONTH };
enum { RU_ON_CAP_DEFAULT = 0, RU_ON_CAP_DROP, RU_ON_CAP_DEFER };

typedef struct ru_group {
	char *name;
	int64_t max;
	int64_t per_ms;   /* rolling window, when calendar == RU_CAL_NONE */
	int calendar;     /* RU_CAL_*: calendar window in the customer's time zone */
	int on_cap;       /* RU_ON_CAP_DROP or _DEFER */
} ru_group;

typedef struct ru_quiet {
	bool on;
	int start_min, end_min; /* minutes of the local day; the window may wrap midnight */
} ru_quiet;

typedef struct ru_config {
	char default_tz[64];
	scrm_tz default_zone;
	ru_quiet quiet;
	ru_group *groups;
	size_t ngroups;
	int64_t lease_ms, backoff_ms, backoff_max_ms;
	int64_t max_attempts;
	bool trace_condition_false;
} ru_config;

void ru__config_clear(ru_config *c);
int ru__config_load(scrm_db *db, ru_config *c);
const ru_group *ru__group(const ru_config *c, const char *name);

/* "30s", "15m", "72h", "7d", "2w", "500ms" -> ms in [min, max]. Errors name
 * `what`. */
int ru__duration(scrm_db *db, const struct cJSON *item, const char *what, int64_t min,
		 int64_t max, int64_t *ms);
/* ms -> "7d", "90m", "1500ms". */
void ru__dur_str(int64_t ms, char *buf, size_t size);
/* "HH:MM" -> minutes of the day. */
int ru__hhmm(scrm_db *db, const struct cJSON *item, const char *what, int *min);
int ru__quiet_parse(scrm_db *db, const struct cJSON *item, const char *what, ru_quiet *q);
/* Time zone name, offset or POSIX rule -> zone (the expression language's
 * zones, tz.c). */
bool ru__tz(const char *name, size_t n, scrm_tz *z);

/* 1..max bytes of [a-z0-9_] (and '.', '-' when `punct`). */
bool ru__is_name(const char *s, size_t max, bool punct);
/* 1..max bytes of UTF-8 text without control characters. */
bool ru__is_text(const char *s, size_t max);

/* ------------------------------------------------------------ rules */

typedef enum ru_trig { RU_TRIG_EVENT = 1, RU_TRIG_ABSENCE, RU_TRIG_DATE } ru_trig;
typedef enum ru_act { RU_ACT_TAG_ADD = 1, RU_ACT_TAG_REMOVE, RU_ACT_PROFILE_SET, RU_ACT_HOST } ru_act;

typedef struct ru_action {
	ru_act kind;
	char *name;     /* "tag.add", …, or the host action's name */
	char *tag;      /* tag actions */
	char *params;   /* host: params object as JSON; profile.set: the attributes */
	char *consent;  /* purpose that must be granted, or NULL */
} ru_action;

/* How one slot of an expression is bound. */
enum {
	RU_SRC_NONE = 0,
	RU_SRC_EV_ID, RU_SRC_EV_TYPE, RU_SRC_EV_CHANNEL, RU_SRC_EV_KEY, RU_SRC_EV_AT,
	RU_SRC_EV_AMOUNT, RU_SRC_EV_CURRENCY, RU_SRC_EV_REFUND_OF,
	RU_SRC_EV_PROPS,   /* under event.props: bound from the props JSON */
	RU_SRC_EV_ITEMS,   /* under event.items */
	RU_SRC_EV_OBJ,     /* "event" itself */
	RU_SRC_PROFILE_ATTR, /* profile.attributes.NAME… */
	RU_SRC_PROFILE,    /* anything else under profile */
	RU_SRC_TRIGGER,    /* trigger.kind / trigger.instance / trigger.due */
};

/* Which event a slot reads: the rule's event, or (absence match) the start. */
enum { RU_EVT_MAIN = 0, RU_EVT_START = 1 };

typedef struct ru_slot {
	int src;     /* RU_SRC_* */
	int which;   /* RU_EVT_* for event sources */
	char *attr;  /* RU_SRC_PROFILE_ATTR: the attribute name */
} ru_slot;

/* A compiled expression with its activation and binding plan. */
typedef struct ru_expr {
	scrm_expr *e;
	scrm_expr_vars *v;
	ru_slot *slots;
	int nslots;
	bool props[2], items[2]; /* needs event.props / event.items bound (main, start) */
	bool profile;            /* reads profile.* beyond attributes */
} ru_expr;

typedef struct ru_rule {
	int64_t rid;        /* rule.rid */
	char *id, *name;
	int64_t version;
	int64_t priority;
	bool enabled;
	char *definition;   /* canonical JSON (without "enabled") */
	ru_trig trig;
	char *type;         /* EVENT: event type; ABSENCE: start type */
	char *missing;      /* ABSENCE: the awaited type */
	int64_t within_ms;  /* ABSENCE */
	int64_t max_age_ms; /* EVENT: 0 = any age */
	char *attr;         /* DATE: attribute holding "YYYY-MM-DD" */
	bool yearly;        /* DATE */
	int64_t days_before;
	int at_min;         /* DATE: local minute of the day */
	ru_expr *cond;      /* NULL: always */
	ru_expr *match;     /* ABSENCE correlation, NULL: any */
	ru_action *actions;
	size_t nactions;
	char *group;
	int on_cap;         /* RU_ON_CAP_* (DEFAULT: the group's) */
	int64_t cooldown_ms;
	bool once;
	int quiet;          /* 0 off, 1 the configured window, 2 own window */
	ru_quiet own_quiet;
	char *consent;      /* default purpose of host actions */
} ru_rule;

void ru__rule_free(ru_rule *r);
/* Parse and validate one rule definition; compiles its expressions. */
int ru__rule_parse(scrm_db *db, const struct cJSON *j, const ru_config *cfg, ru_rule *r);
/* Compile the expressions of a rule read back from storage. */
int ru__expr_compile(scrm_db *db, const char *src, const char *rule_id, const char *what,
		     bool absence_match, ru_trig trig, ru_expr **out);
void ru__expr_free(ru_expr *x);

/* Per event type: the rules it triggers, starts or ends. */
typedef struct ru_bucket {
	char *type;
	int *ev, *start, *miss; /* indexes into rules[], priority order */
	size_t nev, nstart, nmiss;
} ru_bucket;

typedef int (*ru_deliver_fn)(void *ud, const char *action_json);

/* Engine state on the handle (SCRM_ENGINE_RULES). */
typedef struct ru_state {
	uint64_t fresh_in_tx;
	char rev[40];          /* scrm_meta rules.rev when loaded ("" = stale) */
	ru_rule *rules;        /* enabled rules, (priority, id) order */
	size_t nrules;
	ru_bucket *buckets;    /* open addressing by type */
	size_t nbuckets;       /* power of two (0 when no rules) */
	size_t ndate;          /* enabled date rules */
	ru_config cfg;
	scrm_expr_env *env;
	/* rule tags, compiled when first needed (ruletag.c) */
	struct ru_rtag *rtags;
	size_t nrtags;
	bool rtags_loaded;
	bool rtags_module; /* scrm_tagdiff registered on the connection */
	uint64_t tag_changes; /* counts tags given or taken (ru__tag_change) */
	/* outbox delivery callback (scrm_outbox_set_handler) */
	ru_deliver_fn deliver;
	void *deliver_ud;
	bool delivering;
} ru_state;

/* The state, loaded or refreshed (rules and config). */
int ru__state(scrm_db *db, ru_state **out);
/* The state without refreshing rules (for handler registration). */
int ru__state_raw(scrm_db *db, ru_state **out);
const ru_bucket *ru__bucket(const ru_state *s, const char *type);
/* Bump the stored revision so every handle reloads. */
int ru__bump_rev(scrm_db *db);
void ru__invalidate(scrm_db *db);

/* ------------------------------------------------------------ evaluation */

/* An event as rules see it. */
typedef struct ru_ev {
	int64_t id;
	const char *type, *channel, *key;
	int64_t at;
	bool has_amount;
	int64_t amount;
	const char *currency;
	const char *refund_of;
	const char *props, *items; /* JSON text or NULL */
} ru_ev;

/* A stored event read back by id (owns its strings). */
typedef struct ru_ev_row {
	ru_ev ev;
	char *buf[7];
} ru_ev_row;
int ru__event_read(scrm_db *db, int64_t id, ru_ev_row *row, bool *found);
void ru__event_row_free(ru_ev_row *row);

/* Evaluation context of one customer at one time: lazily loaded inputs
 * shared by the rules evaluated for it, and what they read. */
typedef struct ru_attr_cache {
	char *name;
	char *json; /* NULL: unset */
} ru_attr_cache;

typedef struct ru_ctx {
	scrm_db *db;
	ru_state *st;
	int64_t customer;      /* canonical */
	int64_t now;           /* decision time */
	const ru_ev *ev;       /* the event (or the start event of an absence) */
	const ru_ev *start;    /* absence match: the start event */
	const char *trig_kind; /* "event", "absence", "date", "deferred" */
	const char *instance;
	int64_t due;
	char *profile;         /* full profile JSON, loaded on demand */
	struct cJSON *profile_j;
	bool profile_loaded;
	ru_attr_cache *attrs;
	size_t nattrs, capattrs;
	struct {
		char purpose[RU_ID_MAX + 1];
		int granted;
	} consent[4];            /* consent read for this customer */
	int nconsent;
	bool tz_loaded;
	scrm_tz tz;
	char tz_name[64];
	/* decisions traced, written by ru__trace_flush() */
	struct ru_trace_row *trace;
	size_t ntrace, captrace;
	/* recorded while evaluating: host calls and bound profile values */
	scrm_buf calls;
	int ncalls;
	int err;               /* a host callback's infrastructure error */
} ru_ctx;

void ru__ctx_init(ru_ctx *c, scrm_db *db, ru_state *st, int64_t customer, int64_t now);
void ru__ctx_clear(ru_ctx *c);
/* One attribute's value as JSON text (NULL when unset), cached. */
int ru__ctx_attr(ru_ctx *c, const char *name, const char **json);
/* The customer's time zone (attribute `tz`, else the default), cached:
 * offsets depend on the instant (scrm__tz_offset, scrm__tz_utc). */
int ru__ctx_tz(ru_ctx *c, const scrm_tz **z);

/* Evaluate a condition. *holds 1/0; *evalerr set (and *holds 0) when the
 * expression failed (type mismatch…): a traced outcome, not a failure.
 * `inputs` receives the JSON the trace keeps to replay the evaluation. */
int ru__eval(ru_ctx *c, ru_expr *x, int *holds, int *evalerr, scrm_buf *inputs);

/* Re-run a recorded condition evaluation for the trace: the row's time,
 * trigger and event, plus the recorded inputs. */
typedef struct ru_replay_row {
	int64_t now, event;
	const char *kind, *instance;
} ru_replay_row;
int ru__replay(scrm_db *db, const char *src, const char *inputs, const ru_replay_row *row,
	       scrm_buf *out);

/* ------------------------------------------------------------ deciding */

/* What triggered a decision. */
typedef struct ru_fire_in {
	const ru_rule *r;
	const char *kind;     /* "event", "absence", "date" */
	const char *instance; /* "ev:123", "date:2026-05-01", … */
	int64_t event_id;     /* 0: none */
	bool deferred;        /* delivering an earlier deferral */
	int64_t deferred_id;
	const char *actions;  /* deferred: the actions decided then (JSON) */
	int64_t version;      /* deferred: the version that decided */
} ru_fire_in;

/* Condition, once, cooldown, consent, cap, quiet hours, then fire; traces
 * the outcome. */
int ru__decide(ru_ctx *c, const ru_fire_in *in);
/* Limits and firing of a deferral that came due. */
int ru__decide_deferred(ru_ctx *c, const ru_fire_in *in);

/* limits.c */
typedef struct ru_cap {
	int64_t count, max;
	int64_t release; /* when the next unit frees up */
} ru_cap;
int ru__check_once_cooldown(ru_ctx *c, const ru_rule *r, const char **outcome, int64_t *until);
/* Every action's consent purpose (its own, else for host actions the
 * rule's `limits.consent`; r NULL: actions stored with a deferral, which
 * carry their effective purpose) must be granted; *purpose names the
 * first that is not. */
int ru__check_consent(ru_ctx *c, const ru_rule *r, const ru_action *acts, size_t n,
		      const char **purpose);
int ru__check_cap(ru_ctx *c, const ru_rule *r, const ru_group *g, ru_cap *cap);
int ru__check_quiet(ru_ctx *c, const ru_rule *r, int64_t *until);
/* Start of the calendar period holding `t` and of the next one: local
 * midnights in zone z (a day may be 23 or 25 hours long). */
void ru__calendar(int unit, int64_t t, const scrm_tz *z, int64_t *start, int64_t *next);
/* Civil date of a day number. */
void ru__civil(int64_t days, int64_t *y, unsigned *m, unsigned *d);

/* action.c */
int ru__fire(ru_ctx *c, const ru_fire_in *in, const ru_action *acts, size_t n, scrm_buf *detail);
int ru__defer(ru_ctx *c, const ru_fire_in *in, int64_t until, const char *reason);
/* Stable idempotency key (32 hex digits + NUL). */
void ru__action_key(const char *rule_id, int64_t version, int64_t customer, const char *instance,
		    size_t index, char out[33]);
/* Actions of a rule as the JSON stored with a deferral (each with its
 * effective consent purpose). */
int ru__actions_json(const ru_rule *r, scrm_buf *b);

/* trace.c: ru__trace records a decision in the context; ru__trace_flush
 * writes the context's decisions (before it is cleared, in the same
 * transaction). `outcome` must be a string literal. */
int ru__trace(ru_ctx *c, const ru_rule *r, int64_t version, const char *kind,
	      const char *instance, int64_t event_id, const char *outcome, const char *detail,
	      const char *inputs);
int ru__trace_flush(ru_ctx *c);
void ru__trace_drop(ru_ctx *c);

/* tags.c: add/remove on behalf of a rule or an actor (canonical customer). */
int ru__tag_change(scrm_db *db, int64_t customer, const char *tag, bool add, int64_t at,
		   const char *rule_id, int64_t version, const char *actor, bool *changed);
/* A change the caller has checked: tag (by id) exists, is in no exclusive
 * group, and the customer does not hold it (add) or the caller does not
 * care whether it does (remove). Rule tags (ruletag.c) use it. */
int ru__tag_set_known(scrm_db *db, int64_t customer, int64_t tag, bool add, int64_t at,
		      const char *rule_id, int64_t version);
int ru__tag_has(scrm_db *db, int64_t customer, const char *tag, size_t n, int *has);
int ru__tag_held(scrm_db *db, int64_t customer, int64_t tag, bool *held); /* tag by id */
int ru__tag_exists(scrm_db *db, const char *tag, bool *exists);
int ru__tags_merge(scrm_db *db, int64_t survivor, int64_t absorbed, int64_t log_id, int64_t now);
int ru__tags_unmerge(scrm_db *db, int64_t old_root, int64_t new_root);

/* trigger.c */
int ru__date_next(const ru_rule *r, const char *date, const scrm_tz *z, int64_t after,
		  bool inclusive, int64_t *due, char instance[32]);

/* outbox.c: ask for the delivery callback after commit. */
void ru__outbox_wrote(scrm_db *db, ru_state *s);

/* Canonical id (scrm_identity_canonical), and that it is not erased. */
int ru__canonical(scrm_db *db, int64_t id, int64_t *root);
int ru__live_customer(scrm_db *db, int64_t id, int64_t *root);

/* segment.c: an expression over the profile, for the population. Plans
 * run as one SQL query when the expression translates, else customer by
 * customer. */
typedef struct ru_seg ru_seg;
/* `who` prefixes errors ("segment", "tag 'vip'"). */
int ru__seg_compile(scrm_db *db, const char *src, const char *who, ru_seg **out);
void ru__seg_free(ru_seg *g);
bool ru__seg_is_sql(const ru_seg *g);
/* fn for each customer > after (ascending), at most limit (0: all); a
 * non-zero return of fn stops the run and is returned. */
int ru__seg_run(scrm_db *db, ru_seg *g, int64_t now, int64_t after, int64_t limit,
		int (*fn)(void *ud, int64_t customer), void *ud);
int ru__seg_count(scrm_db *db, ru_seg *g, int64_t now, int64_t *count);
/* Does the (canonical, live) customer belong? */
int ru__seg_test(scrm_db *db, ru_seg *g, int64_t customer, int64_t now, int *holds);
int ru__seg_explain(scrm_db *db, ru_seg *g, scrm_buf *b);
/* One query over the population giving, per customer (ascending id),
 * whether each of n SQL plans holds: columns id, h0 … h(n-1). The caller
 * steps and finalizes it. */
int ru__seg_multi(scrm_db *db, ru_seg *const *gs, size_t n, int64_t now, sqlite3_stmt **out);
/* The segment's ids into temp.scrm_seg_ids(customer), emptied first. */
int ru__seg_fill(scrm_db *db, ru_seg *g, int64_t now, int64_t *n);

/* ruletag.c: tags defined by an expression. */
/* tag_define with "expr": store the definition (a new version when the
 * expression changed). */
int ru__ruletag_define(scrm_db *db, const char *name, const char *expr, int64_t gid,
		       const char *description);
/* Is `tag_id` a rule tag? */
int ru__ruletag_is(scrm_db *db, const char *name, bool *is);
/* Re-evaluate every rule tag for one canonical customer (events and
 * attribute changes). */
void ru__ruletags_clear(ru_state *s);
int ru__ruletags_customer(scrm_db *db, int64_t customer, int64_t now);

/* Whether any rule tag is defined (loading them if need be). */
int ru__ruletags_any(scrm_db *db, ru_state *s, bool *any);

/* Name of a result code ("SCRM_INVALID"). */
const char *ru__code_name(int code);

/* Schema step (schema.c). */
extern const char scrm__rules_schema_1[];
extern const char scrm__rules_schema_2[];
extern const char scrm__rules_schema_3[];

/* ruletag.c: a rule tag, compiled. */
typedef struct ru_rtag {
	int64_t id;
	char *name;
	char source[80]; /* "tag:NAME" */
	int64_t version;
	ru_seg *g;
} ru_rtag;

/* tagdiff.c: the differences a rule-tag refresh found, and scrm_tagdiff,
 * the table-valued function that reads them (see ruletag.c). */
typedef struct ru_change {
	int64_t customer;
	uint32_t tag; /* index into the tags being refreshed */
	bool add;
} ru_change;

typedef struct ru_changes {
	scrm_db *db;
	ru_rtag *const *ts; /* the tags being refreshed */
	size_t nts;
	ru_change *v;
	size_t n, cap;
	size_t *adds; /* indexes into v of the additions, in key order (tag id, customer) */
	size_t nadds;
} ru_changes;

/* Appends a change (SCRM_NOMEM when it cannot). */
int ru__changes_push(ru_changes *c, int64_t customer, uint32_t tag, bool add);

/* scrm_tagdiff(src, mode): src is a `changes` bound with
 * sqlite3_bind_pointer(…, RU_TAGDIFF_POINTER, NULL); the rows are
 * (customer, tag id, op, rule, version). Mode RU_TAGDIFF_ALL: every change
 * in array order; RU_TAGDIFF_ADDS (1): the additions in (tag id, customer)
 * order; RU_TAGDIFF_REMOVES (2): the removals. */
enum { RU_TAGDIFF_ALL, RU_TAGDIFF_ADDS, RU_TAGDIFF_REMOVES };
#define RU_TAGDIFF_POINTER "scrm_tagdiff"
/* Registers scrm_tagdiff on the connection, once (s->rtags_module). */
int ru__tagdiff_register(scrm_db *db, ru_state *s);

#endif /* SCRM_RULES_INT_H */
