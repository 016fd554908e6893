/*
 * Internal interface of the expression language: values, the compiled node
 * array, activations, the host hook set and what the rules engine uses.
 */
#ifndef SCRM_EXPR_INT_H
#define SCRM_EXPR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core-int.h"
#include "scrm/rules.h"

#if defined(__GNUC__)
#  define SCRM_X_LIKELY(x) __builtin_expect(!!(x), 1)
#  define SCRM_X_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#  define SCRM_X_LIKELY(x) (x)
#  define SCRM_X_UNLIKELY(x) (x)
#endif

/* ------------------------------------------------------------ values */

/* Value types. MISSING and UNSET only ever sit in a slot: reading such a
 * slot gives NULL. UNSET means "nobody bound it", so a resolver may still
 * be asked; MISSING means it is known to be absent. */
enum {
	SCRM_XV_NULL = 0,
	SCRM_XV_BOOL,
	SCRM_XV_INT,
	SCRM_XV_STR,
	SCRM_XV_LIST,
	SCRM_XV_OBJ,     /* a JSON object bound to a path: present, opaque */
	SCRM_XV_MISSING,
	SCRM_XV_UNSET,
};

/* 16 bytes; passed by pointer. Strings are not NUL-terminated in general;
 * strings and lists are borrowed from the expression, the activation or
 * its scratch arena. */
typedef struct scrm_xval {
	uint8_t t;
	uint32_t n; /* string bytes or list elements */
	union {
		int64_t i; /* int; bool as 0/1 */
		const char *s;
		const struct scrm_xval *l;
	} u;
} scrm_xval;

const char *scrm__xtype_name(int t);

/* ------------------------------------------------------------- limits */

typedef struct scrm_xlimits {
	int64_t source, depth, nodes, string, cost, re_match, re_depth, re_heap;
} scrm_xlimits;

void scrm__xlimits_default(scrm_xlimits *l);

struct scrm_expr_options {
	scrm_xlimits lim;
};

/* ------------------------------------------------------ bump allocator */

typedef struct scrm_xblock {
	struct scrm_xblock *next;
	size_t cap, used;
	/* data follows, 16-byte aligned */
} scrm_xblock;

typedef struct scrm_xarena {
	scrm_xblock *head;
} scrm_xarena;

void *scrm__xarena_alloc(scrm_xarena *a, size_t n);
/* Forget everything but keep the newest (largest) block, so a steady
 * workload stops allocating after its first evaluation. */
void scrm__xarena_reset(scrm_xarena *a);
void scrm__xarena_free(scrm_xarena *a);

/* ---------------------------------------------------- the syntax tree */

/* Node kinds. The compiled expression keeps its syntax tree: nodes stored
 * children-first (post-order) in one array, the root last. `kind` is what
 * the source said; `op` is how it is executed (a fused form for hot
 * shapes such as `path == "const"`), so walkers (trace, a future SQL
 * translator) read `kind` and the children and can ignore `op`. */
enum {
	SCRM_XK_CONST = 0, /* aux: index in consts */
	SCRM_XK_PATH,      /* slot */
	SCRM_XK_HAS,       /* has(path): slot */
	SCRM_XK_LIST,      /* [k0, k1, ...] */
	SCRM_XK_NOT,
	SCRM_XK_NEG,
	SCRM_XK_AND,       /* n-ary, flattened */
	SCRM_XK_OR,        /* n-ary, flattened */
	SCRM_XK_COND,      /* k0 ? k1 : k2 */
	SCRM_XK_COALESCE,  /* k0 ?? k1 */
	SCRM_XK_EQ,
	SCRM_XK_NE,
	SCRM_XK_LT,
	SCRM_XK_LE,
	SCRM_XK_GT,
	SCRM_XK_GE,
	SCRM_XK_IN,
	SCRM_XK_ADD,
	SCRM_XK_SUB,
	SCRM_XK_MUL,
	SCRM_XK_DIV,
	SCRM_XK_MOD,
	SCRM_XK_CALL,      /* fn: SCRM_XF_*; aux: regex index for matches() */
	SCRM_XK_COUNT_
};

/* Fused execution forms: slot <op> constant. slot and aux hold the slot
 * and the constant; the children stay in place for walkers. */
enum {
	SCRM_XOP_EQ_SC = SCRM_XK_COUNT_,
	SCRM_XOP_NE_SC,
	SCRM_XOP_LT_SI,
	SCRM_XOP_LE_SI,
	SCRM_XOP_GT_SI,
	SCRM_XOP_GE_SI,
	SCRM_XOP_IN_SC,
};

/* Built-in functions. */
enum {
	SCRM_XF_MATCHES = 0,
	SCRM_XF_CONTAINS,
	SCRM_XF_STARTS_WITH,
	SCRM_XF_ENDS_WITH,
	SCRM_XF_LOWER,
	SCRM_XF_LEN,
	SCRM_XF_NOW,
	SCRM_XF_DAYS_SINCE,
	SCRM_XF_LOCAL_HOUR,
	SCRM_XF_DAY_OF_WEEK,
	SCRM_XF_HAS_TAG,
	SCRM_XF_COUNT,
	SCRM_XF_SUM,
	SCRM_XF_COUNT_
};

typedef struct scrm_xfunc {
	const char *name;
	uint8_t id, min_args, max_args;
	bool pure;  /* depends on its arguments only: may be folded */
	uint16_t cost; /* extra cost units per call */
} scrm_xfunc;

const scrm_xfunc *scrm__xfunc_lookup(const char *name, size_t len);
const scrm_xfunc *scrm__xfunc_get(int id);

typedef struct scrm_xnode {
	uint8_t kind, op, fn;
	uint8_t cost;     /* 1, or the number of nodes a fused form stands for */
	uint16_t depth;   /* height of this subtree (while compiling) */
	uint32_t nkids;
	uint32_t first;   /* children: kids[first .. first+nkids) */
	int32_t slot;     /* PATH, HAS, fused forms */
	int32_t aux;      /* CONST / fused: constant index; CALL matches: regex */
	uint32_t pos;     /* byte offset of the operator or token (errors) */
	uint32_t start, end; /* byte span of the whole sub-expression (trace) */
} scrm_xnode;

/* Slot-name hash table entry: every path the expression reads, and every
 * proper prefix of one (slot -2) so JSON binding can skip subtrees. */
typedef struct scrm_xhent {
	uint64_t hash;
	const char *name; /* a slot name, or the start of one for a prefix */
	uint32_t len;
	int32_t slot; /* >= 0 slot, -2 prefix only, -1 empty */
} scrm_xhent;

typedef struct scrm_xregex {
	void *code;    /* pcre2_code_8 * */
	void *metered; /* the same pattern with PCRE2_AUTO_CALLOUT (expr_regex.c) */
} scrm_xregex;

/* What matches() needs per activation: match data, and a match context
 * whose callout meters the work of the metered pass (expr_regex.c). */
typedef struct scrm_xmatcher {
	void *md;       /* pcre2_match_data_8 * */
	void *mctx;     /* pcre2_match_context_8 *: the expression's limits + meter */
	int64_t work;   /* units used by the current match */
	int64_t budget; /* units it may use */
	size_t last;    /* subject offset at the previous callout */
} scrm_xmatcher;

struct scrm_expr {
	char *src;
	uint32_t src_len;
	scrm_xnode *nodes;
	uint32_t nnodes, capnodes;
	int32_t *kids;
	uint32_t nkids, capkids;
	scrm_xval *consts;
	uint32_t nconsts, capconsts;
	int32_t root;

	char **names;          /* slot -> NUL-terminated path (in pool) */
	uint32_t *name_lens;
	uint32_t nslots, capslots, max_name;
	scrm_xhent *hash;
	uint32_t hmask;

	scrm_xregex *re;
	uint32_t nre, capre;
	void *gctx;            /* pcre2_general_context_8 * (scrm__malloc) */
	void *mctx;            /* pcre2_match_context_8 * (limits) */
	void *qctx;            /* the same with the quick pass's match limit */

	scrm_xarena pool;      /* literals, names, folded constants */
	scrm_xlimits lim;
	unsigned uses;         /* SCRM_XU_* */
};

/* What an expression reads besides its paths (scrm__xuses()). */
#define SCRM_XU_NOW     0x01u /* now(), days_since(), count(), sum() */
#define SCRM_XU_HAS_TAG 0x02u
#define SCRM_XU_COUNT   0x04u
#define SCRM_XU_SUM     0x08u
#define SCRM_XU_REGEX   0x10u
#define SCRM_XU_HAS     0x20u

/* Slot of `path` (len bytes): >= 0, -2 for a proper prefix of a path, -1. */
int32_t scrm__xslot_lookup(const scrm_expr *e, const char *path, size_t len);

/* ------------------------------------------------- the rules engine's view */

/* Pre-order walk from the root; `enter` is called for each node with its
 * depth (root 0). A non-zero return stops the walk and is returned. */
typedef int (*scrm_xvisit_fn)(void *ud, const scrm_expr *e, int32_t node, int depth);
int scrm__xwalk(const scrm_expr *e, scrm_xvisit_fn enter, void *ud);
static inline const scrm_xnode *scrm__xnode(const scrm_expr *e, int32_t i) { return &e->nodes[i]; }
static inline int32_t scrm__xkid(const scrm_expr *e, const scrm_xnode *n, uint32_t k)
{
	return e->kids[n->first + k];
}
static inline const char *scrm__xsource(const scrm_expr *e) { return e->src; }
static inline unsigned scrm__xuses(const scrm_expr *e) { return e->uses; }

/* Host hooks. Public scrm_expr_env wraps one; the rules engine builds its
 * own and passes it to scrm__xeval() directly. `resolve` is asked for a
 * slot nobody bound (UNSET) the first time an evaluation reads it, e.g. to
 * fetch profile.* lazily: it binds the slot with the scrm_expr_vars_set_*
 * calls (or leaves it, meaning missing). It should only bind slots that
 * are still unset: values replaced while an evaluation runs stay alive
 * until the evaluation ends, but the expression may have read them. */
typedef int (*scrm_xresolve_fn)(void *ud, scrm_expr_vars *vars, int slot, const char *path);

typedef struct scrm_xhooks {
	bool has_now;              /* `now` is the current time... */
	int64_t now;
	bool has_clock;            /* ...or ask `clock` (NULL: real time) */
	scrm_clock_fn clock;
	void *clock_ud;
	scrm_expr_tag_fn tag_fn;
	scrm_expr_events_fn events_fn;
	void *ud;
	scrm_xresolve_fn resolve;
	void *resolve_ud;
} scrm_xhooks;

struct scrm_expr_env {
	scrm_xhooks h;
};

/* ------------------------------------------------------- activations */

/* A value a slot owns (bound from JSON): one block holding the value's
 * strings and lists. Blocks replaced during an evaluation wait on the
 * activation's graveyard until it ends. */
typedef struct scrm_xowned {
	struct scrm_xowned *next;
	/* data follows, 16-byte aligned */
} scrm_xowned;

typedef struct scrm_xslot {
	scrm_xval v;
	scrm_xowned *owned;
} scrm_xslot;

#define SCRM_X_ERRMSG 256

struct scrm_expr_vars {
	const scrm_expr *expr;
	scrm_xslot *slots;
	const scrm_xhooks *hooks;  /* the env's, or NULL */
	scrm_xarena scratch;
	scrm_xmatcher *rx;         /* when the expression has regexes */
	scrm_xowned *graveyard;
	bool busy;                 /* an evaluation is running */
	int errcode;
	int err_line, err_col;
	char errmsg[SCRM_X_ERRMSG];
};

void scrm__xslot_release(scrm_expr_vars *v, scrm_xslot *s);

/* ------------------------------------------------------- evaluation */

struct scrm_xtrace;

typedef struct scrm_xctx {
	const scrm_expr *e;
	const scrm_xnode *nodes;
	const int32_t *kids;
	const scrm_xval *consts;
	scrm_expr_vars *v;         /* NULL while folding constants */
	const scrm_xhooks *h;      /* may be NULL */
	scrm_xarena *scratch;
	scrm_xmatcher *rx;         /* matches() state, NULL without regexes */
	int64_t cost, budget;
	bool now_read;             /* now() is read once per evaluation */
	int64_t now;
	struct scrm_xtrace *tr;
	int err_node;              /* node that failed, -1 */
	char *msg;                 /* SCRM_X_ERRMSG bytes: "L:C: ..." */
} scrm_xctx;

int scrm__xeval(scrm_xctx *c, int32_t node, scrm_xval *out);

/* Evaluate `e` with `v` (and hooks: NULL means the activation's env),
 * optionally tracing. The result is valid until the next evaluation with
 * `v`. Records the error on `v` and on this thread. */
int scrm__xrun(const scrm_expr *e, scrm_expr_vars *v, const scrm_xhooks *h,
	       struct scrm_xtrace *tr, scrm_xval *out);

/* Fail the evaluation at node `n` with "L:C: <fmt>". */
int scrm__xfail(scrm_xctx *c, const scrm_xnode *n, int code, const char *fmt, ...)
	SCRM_PRINTF(4, 5);
int scrm__xover_budget(scrm_xctx *c, const scrm_xnode *n);
/* Charge extra cost units (list scans, long strings, regexes, host calls). */
static inline int scrm__xcharge(scrm_xctx *c, const scrm_xnode *n, int64_t units)
{
	c->cost += units;
	return SCRM_X_UNLIKELY(c->cost > c->budget) ? scrm__xover_budget(c, n) : SCRM_OK;
}
int scrm__xtype_error(scrm_xctx *c, const scrm_xnode *n, const char *what, const scrm_xval *a,
		      const scrm_xval *b);

/* Equality as `==` defines it: *eq set; error (SCRM_EVAL) for objects. */
int scrm__xequal(scrm_xctx *c, const scrm_xnode *n, const scrm_xval *a, const scrm_xval *b,
		 bool *eq);

/* Call a built-in function on evaluated arguments. */
int scrm__xcall(scrm_xctx *c, const scrm_xnode *n, const scrm_xval *args, scrm_xval *out);

/* ------------------------------------------------------------ time zones (tz.c) */

/* A transition date: 'M' month mon, week 1..5 (5: the last), weekday 0
 * (Sunday)..6; 'J' day 1..365 not counting 29 February; 'N' day 0..365
 * counting it. At `time` seconds after local midnight (-167h..167h) in the
 * local time in force before the transition. */
typedef struct scrm_tzrule {
	uint8_t kind, mon, week, wday;
	int16_t yday;
	int32_t time;
} scrm_tzrule;

/* A zone: one offset, or standard and daylight offsets with the rules
 * that start (`on`) and end (`off`) daylight time each year. Offsets in
 * seconds east of UTC. A plain value: no allocation, copy freely. */
typedef struct scrm_tz {
	int32_t std, dst;
	bool has_dst;
	scrm_tzrule on, off;
} scrm_tz;

/* Longest POSIX TZ string accepted as a zone (names fit rule-engine
 * buffers of 64 bytes). */
#define SCRM_TZ_POSIX_MAX 63

/* "Z", "+08:00"/"+0800"/"+08" (at most ±18:00), a name of the built-in
 * table ("Asia/Shanghai", "Europe/London": current rules only) or a POSIX
 * TZ string with daylight rules ("EST5EDT,M3.2.0,M11.1.0"). */
bool scrm__tz_parse(const char *s, size_t n, scrm_tz *z);
void scrm__tz_fixed(scrm_tz *z, int32_t secs);
/* Offset (ms east of UTC) in force at the UTC instant t (ms). */
int64_t scrm__tz_offset(const scrm_tz *z, int64_t t);
/* The UTC instant of a local wall time (ms since the epoch as if the local
 * time were UTC). A wall time the clocks skip (02:30 when they go from
 * 02:00 to 03:00) is read with the offset before the jump, so it lands
 * the jump's length later (03:30); a wall time that occurs twice (the
 * clocks went back) is the earlier instant, or the later with `later`.
 * |local| must stay below 2^62. */
int64_t scrm__tz_utc(const scrm_tz *z, int64_t local, bool later);
/* Self-check for the tests: the name table is sorted and every rule parses. */
bool scrm__tz_table_sorted(void);

/* Regular expressions (pcre2 lives in expr_regex.c only). */
int scrm__xregex_setup(scrm_expr *e);  /* contexts; SCRM_NOMEM */
/* Compile `pat`; on a bad pattern returns SCRM_INVALID with the PCRE2
 * message and offset in msg. */
int scrm__xregex_compile(scrm_expr *e, const char *pat, size_t n, int32_t *index, char *msg,
			 size_t msgcap);
void scrm__xregex_free_all(scrm_expr *e);
scrm_xmatcher *scrm__xmatcher_new(const scrm_expr *e);
void scrm__xmatcher_free(scrm_xmatcher *rx);
/* matches(s, re): node n's regex against string s. */
int scrm__xmatches(scrm_xctx *c, const scrm_xnode *n, const scrm_xval *s, scrm_xval *o);

/* Offsets to positions: 1-based line, column in characters. */
void scrm__xlinecol(const char *src, uint32_t off, int *line, int *col);

/* Thread's last error position (compile or eval; 0/0 = none). */
void scrm__xset_tls_pos(int line, int col);

/* ------------------------------------------------------------- JSON */

/* Append a value as JSON; strings with invalid UTF-8 get U+FFFD. */
void scrm__xjson_value(scrm_buf *b, const scrm_xval *v);
void scrm__xjson_str(scrm_buf *b, const char *s, size_t n);
int scrm__xjson_bind(scrm_expr_vars *v, const char *prefix, const char *json);

/* ------------------------------------------------------------ trace */

typedef struct scrm_xtstep {
	uint8_t state; /* 0 not evaluated, 1 value, 2 failed */
	scrm_xval v;
} scrm_xtstep;

typedef struct scrm_xtrace {
	scrm_xtstep *steps; /* one per node */
	int64_t cost;       /* set by scrm__xrun */
	int32_t err_node;
} scrm_xtrace;

void scrm__xtrace_record(scrm_xctx *c, int32_t node, int rc, const scrm_xval *v);
int scrm__xtrace_run(const scrm_expr *e, scrm_expr_vars *v, const scrm_xhooks *h, char **out);

/* --------------------------------------------------------- compiling */

/* Lexer tokens. */
enum {
	SCRM_XT_END = 0, SCRM_XT_INT, SCRM_XT_STR, SCRM_XT_IDENT,
	SCRM_XT_TRUE, SCRM_XT_FALSE, SCRM_XT_NULL, SCRM_XT_IN,
	SCRM_XT_LPAREN, SCRM_XT_RPAREN, SCRM_XT_LBRACK, SCRM_XT_RBRACK,
	SCRM_XT_COMMA, SCRM_XT_DOT, SCRM_XT_QUEST, SCRM_XT_COLON, SCRM_XT_QQ,
	SCRM_XT_EQ, SCRM_XT_NE, SCRM_XT_LT, SCRM_XT_LE, SCRM_XT_GT, SCRM_XT_GE,
	SCRM_XT_AND, SCRM_XT_OR, SCRM_XT_NOT,
	SCRM_XT_PLUS, SCRM_XT_MINUS, SCRM_XT_STAR, SCRM_XT_SLASH, SCRM_XT_PERCENT,
};

typedef struct scrm_xtok {
	int type;
	uint32_t start, end;  /* byte span in the source */
	uint64_t mag;         /* INT: magnitude, at most 2^63 (only negation makes that fit) */
	bool dur;             /* INT written as a duration */
	const char *s;        /* STR: decoded bytes (NUL-terminated, in the pool) */
	uint32_t n;
} scrm_xtok;

typedef struct scrm_xcomp {
	scrm_expr *e;
	const char *src;
	uint32_t len;
	uint32_t lexpos;      /* next byte to lex */
	scrm_xtok tok;        /* current token */
	uint32_t prev_end;    /* end of the last consumed token */
	int depth;            /* parser nesting */
	int32_t *stack;       /* children being collected */
	uint32_t nstack, capstack;
	scrm_xmatcher *rx;    /* for folding matches() */
	int code;
	uint32_t errpos;
	char msg[SCRM_X_ERRMSG];
} scrm_xcomp;

/* Record a compile error at byte offset `pos` (message without position). */
int scrm__xcomp_error(scrm_xcomp *cp, int code, uint32_t pos, const char *fmt, ...)
	SCRM_PRINTF(4, 5);
/* Lex the next token into cp->tok. */
int scrm__xlex_next(scrm_xcomp *cp);
/* Check the whole source is UTF-8; error with position. */
int scrm__xlex_check_utf8(scrm_xcomp *cp);
/* Short description of the current token for "found ..." messages. */
void scrm__xtok_describe(const scrm_xcomp *cp, char *buf, size_t cap);
/* Parse the source into e's node array; sets e->root. */
int scrm__xparse(scrm_xcomp *cp);
/* Intern a path; returns its slot or -1 (SCRM_NOMEM). */
int32_t scrm__xslot_intern(scrm_xcomp *cp, const char *path, size_t len);
/* Append a constant; index or -1. */
int32_t scrm__xconst_add(scrm_xcomp *cp, const scrm_xval *v);

/* UTF-8: length of the valid sequence at s (1..4), or 0 if invalid. */
int scrm__xutf8_seq(const unsigned char *s, size_t n, uint32_t *cp);

#endif /* SCRM_EXPR_INT_H */
