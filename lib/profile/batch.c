/*
 * Batches of events (scrm_profile_events_add): the order they are applied
 * in, and a faster way to store the events that nothing needs to see one
 * at a time.
 *
 * An event named by customer id, not a refund, that no other engine needs
 * to be told about one at a time (no rule on its type: see
 * scrm__notify_wanted) is "plain". Runs of up to CHUNK plain events are
 * stored by one INSERT of many rows, and their figures are summed here and
 * written by one statement per customer (pf__figures_add_rows). When an
 * engine wants to know the customers whose events changed (rule tags), it
 * is told once per customer of the run (SCRM_NOTE_EVENTS), after the run,
 * and a run then holds at most one event per customer: told after each of
 * them, it would have seen the same customers in the same states. The result
 * is the same as storing them one by one in the same order (ids, which of
 * two same-key events is kept, every figure; tests/unit checks it table
 * by table): SQLite gives a new row the largest rowid plus one,
 * so the events of a run take consecutive ids in the order of the VALUES
 * list. Any other event is stored alone by pf__event_add(), after the
 * run before it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile-int.h"

#define CHUNK 64

/* A VALUES list of 64, 16, 4 or 1 copies of a row `x`, "(?,?,...)". */
#define ROWS1(x) x
#define ROWS4(x) x "," x "," x "," x
#define ROWS16(x) ROWS4(x) "," ROWS4(x) "," ROWS4(x) "," ROWS4(x)
#define ROWS64(x) ROWS16(x) "," ROWS16(x) "," ROWS16(x) "," ROWS16(x)

/* For n > 0 rows to go, the widest statement that fits: its index in
 * {64, 16, 4, 1} and, in *k, its number of rows. */
static int rows_width(size_t n, size_t *k)
{
	int w = n >= 64 ? 0 : n >= 16 ? 1 : n >= 4 ? 2 : 3;
	*k = (size_t)1 << (6 - 2 * w);
	return w;
}

typedef struct batch_ref {
	int64_t customer;
	size_t i; /* index in the caller's array */
} batch_ref;

static int cmp_ref(const void *a, const void *b)
{
	const batch_ref *x = a, *y = b;
	if (x->customer != y->customer)
		return x->customer < y->customer ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

typedef struct batch {
	scrm_db *db;
	const scrm_event *evs;
	int *results;
	int64_t *customers, *event_ids;
	size_t *refused;
	pf_refusal_fn on_refusal;
	void *ud;
	bool json_checked; /* PF_BATCH_JSON_CHECKED */
	/* Where the batch failed: the event, and the size of its run (0: the
	 * event alone). */
	size_t failed_at, failed_run;
	/* The run of plain events waiting to be stored. */
	size_t n;
	size_t idx[CHUNK];   /* index in evs */
	int64_t root[CHUNK]; /* canonical customer */
	bool tell[CHUNK];    /* its customer is noted after the run (SCRM_WANT_CUSTOMER) */
	bool telling;        /* some event of the run is */
	int res[CHUNK];      /* once stored: SCRM_OK or SCRM_DUPLICATE */
	int64_t cust[CHUNK], id[CHUNK];
} batch;

static void put(batch *b, size_t i, int r, int64_t c, int64_t e)
{
	if (b->results)
		b->results[i] = r;
	if (b->customers)
		b->customers[i] = c;
	if (b->event_ids)
		b->event_ids[i] = e;
}

/* One event alone; a refusal is noted and the batch goes on. */
static int one(batch *b, size_t i)
{
	scrm_db *db = b->db;
	int64_t c = 0, e = 0;
	int r = pf__event_add(db, &b->evs[i], b->json_checked, &c, &e);
	if (r != SCRM_OK && r != SCRM_DUPLICATE) {
		c = e = 0;
		if (!pf__content_refusal(r) || scrm__tx_doomed(db)) {
			b->failed_at = i;
			b->failed_run = 0;
			return r;
		}
		++*b->refused;
		int rc = b->on_refusal ? b->on_refusal(b->ud, i, scrm_errmsg(db)) : SCRM_OK;
		if (rc) {
			b->failed_at = i;
			b->failed_run = 0;
			return rc;
		}
	}
	put(b, i, r, c, e);
	return SCRM_OK;
}

/* Is evs[i] plain? *root: its canonical customer then; *tell: whether
 * the customer is to be noted after the run. A refusal of its content is
 * not an error here: the event goes alone and is refused there. */
static int plain(batch *b, size_t i, bool *is, int64_t *root, bool *tell)
{
	scrm_db *db = b->db;
	const scrm_event *ev = &b->evs[i];
	*is = false;
	if (ev->version != SCRM_EVENT_VERSION || ev->customer <= 0 || ev->n_ids || !ev->type ||
	    !ev->key || !ev->channel || strcmp(ev->type, "refund") == 0)
		return SCRM_OK;
	bool hashed;
	scrm_want want;
	const scrm_note probe = {SCRM_NOTE_EVENT, 0, ev->customer, 0, ev};
	int rc = pf__erased_keys(db, &hashed);
	if (rc || hashed || (rc = scrm__notify_wanted(db, &probe, &want)) || want == SCRM_WANT_EACH)
		return rc;
	*tell = want == SCRM_WANT_CUSTOMER;
	if ((rc = pf__event_validate(db, ev, b->json_checked)) ||
	    (rc = pf__live_customer(db, ev->customer, root)))
		return pf__content_refusal(rc) ? SCRM_OK : rc;
	*is = true;
	return SCRM_OK;
}

/* ------------------------------------------------------------ a run */

/* OR IGNORE: the one constraint a plain event can break is the unique
 * (channel, key), which makes it a duplicate as ON CONFLICT DO NOTHING
 * would; and unlike an upsert, it cannot abort part way, so SQLite keeps
 * no statement journal for it (see figures.c). */
#define EV_ROW "(?,?,?,?,?,?,?,?,?,?)"
#define EV_COLS 10
#define EV_SQL(rows)                                                                          \
	"INSERT OR IGNORE INTO event(customer, channel, ikey, type, at, amount, currency, "     \
	"named, items, props) VALUES " rows(EV_ROW)

static int max_event_id(scrm_db *db, int64_t *max)
{
	sqlite3_stmt *st = scrm__stmt(db, "SELECT max(id) FROM event");
	if (!st)
		return scrm_errcode(db);
	int s = sqlite3_step(st);
	*max = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return s == SQLITE_ROW ? SCRM_OK : scrm__sqlerr(db, s, "reading the last event id");
}

/* The events a run stored, in id order, matched against the run: what is
 * not among them was a duplicate. */
static int read_back(batch *b, int64_t after)
{
	scrm_db *db = b->db;
	sqlite3_stmt *st = scrm__stmt(db, "SELECT id, channel, ikey FROM event WHERE id > ?1 ORDER BY id");
	if (!st)
		return scrm_errcode(db);
	sqlite3_bind_int64(st, 1, after);
	size_t j = 0;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *ch = (const char *)sqlite3_column_text(st, 1);
		const char *key = (const char *)sqlite3_column_text(st, 2);
		for (; j < b->n; j++) {
			const scrm_event *ev = &b->evs[b->idx[j]];
			if (ch && key && strcmp(ev->channel, ch) == 0 && strcmp(ev->key, key) == 0)
				break;
			b->id[j] = 0;
		}
		if (j == b->n)
			break;
		b->id[j++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	if (s != SQLITE_ROW && s != SQLITE_DONE)
		return scrm__sqlerr(db, s, "reading the stored events back");
	if (s == SQLITE_ROW)
		return scrm__error(db, SCRM_ERROR, "a stored event is not one of the batch");
	for (; j < b->n; j++)
		b->id[j] = 0;
	return SCRM_OK;
}

/* Store the run's events after the largest id `last`. */
static int run_insert(batch *b, int64_t last)
{
	static const char *const sql[] = {EV_SQL(ROWS64), EV_SQL(ROWS16), EV_SQL(ROWS4),
					  EV_SQL(ROWS1)};
	scrm_db *db = b->db;
	sqlite3 *sq = scrm__sqlite(db);
	int rc;
	int64_t stored = 0;
	for (size_t done = 0, k; done < b->n; done += k) {
		sqlite3_stmt *st = scrm__stmt(db, sql[rows_width(b->n - done, &k)]);
		if (!st)
			return scrm_errcode(db);
		for (size_t j = 0; j < k; j++) {
			const scrm_event *ev = &b->evs[b->idx[done + j]];
			int p = (int)j * EV_COLS;
			sqlite3_bind_int64(st, p + 1, b->root[done + j]);
			sqlite3_bind_text(st, p + 2, ev->channel, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, p + 3, ev->key, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, p + 4, ev->type, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, p + 5, ev->at_ms);
			if (ev->has_amount) {
				sqlite3_bind_int64(st, p + 6, ev->amount);
				sqlite3_bind_text(st, p + 7, ev->currency, -1, SQLITE_STATIC);
			}
			sqlite3_bind_int64(st, p + 8, ev->customer);
			if (ev->items_json)
				sqlite3_bind_text(st, p + 9, ev->items_json, -1, SQLITE_STATIC);
			if (ev->props_json)
				sqlite3_bind_text(st, p + 10, ev->props_json, -1, SQLITE_STATIC);
		}
		if ((rc = scrm__step_done(db, st, "recording events")))
			return rc;
		stored += sqlite3_changes(sq);
	}
	if (stored == (int64_t)b->n && sqlite3_last_insert_rowid(sq) == last + stored) {
		for (size_t j = 0; j < b->n; j++)
			b->id[j] = last + 1 + (int64_t)j;
	} else if ((rc = read_back(b, last))) {
		return rc;
	}
	for (size_t j = 0; j < b->n && !rc; j++) {
		b->res[j] = SCRM_OK;
		b->cust[j] = b->root[j];
		if (b->id[j])
			continue;
		rc = pf__event_find_duplicate(db, &b->evs[b->idx[j]], &b->cust[j], &b->id[j]);
		if (rc == SCRM_OK)
			rc = scrm__error(db, SCRM_ERROR, "event key conflict without a stored event");
		else if (rc == SCRM_DUPLICATE) {
			b->res[j] = SCRM_DUPLICATE;
			rc = SCRM_OK;
		}
	}
	return rc;
}

/* The figures of the events the run stored, summed per customer (and
 * currency). */
_Static_assert(CHUNK * PF_AMOUNT_MAX < INT64_MAX, "the sums of a run fit in int64");

static void sums(const batch *b, pf_figrow *fig, size_t *nfig, pf_moneyrow *money, size_t *nmoney)
{
	size_t nf = 0, nm = 0;
	for (size_t j = 0; j < b->n; j++) {
		if (b->res[j] != SCRM_OK)
			continue;
		const scrm_event *ev = &b->evs[b->idx[j]];
		int64_t c = b->root[j], at = ev->at_ms;
		/* Events of one customer are next to each other when sorted. */
		size_t f = nf;
		while (f > 0 && fig[f - 1].customer != c)
			f--;
		if (f == 0) {
			fig[nf] = (pf_figrow){.customer = c, .first_seen = at, .last_seen = at};
			f = ++nf;
		}
		pf_figrow *r = &fig[f - 1];
		r->events++;
		r->first_seen = at < r->first_seen ? at : r->first_seen;
		r->last_seen = at > r->last_seen ? at : r->last_seen;
		if (strcmp(ev->type, "order") != 0)
			continue;
		r->first_order = r->orders == 0 || at < r->first_order ? at : r->first_order;
		r->last_order = r->orders == 0 || at > r->last_order ? at : r->last_order;
		r->orders++;
		size_t m = nm;
		while (m > 0 && (money[m - 1].customer != c || strcmp(money[m - 1].currency, ev->currency)))
			m--;
		if (m == 0) {
			money[nm] = (pf_moneyrow){.customer = c, .currency = ev->currency};
			m = ++nm;
		}
		money[m - 1].orders++;
		money[m - 1].spend += ev->amount;
	}
	*nfig = nf;
	*nmoney = nm;
}

/* Store the waiting run. Nothing can refuse one of its events now but a
 * money sum over int64 (SCRM_RANGE), which fails the batch as it does
 * when the event goes alone (that dooms the caller's batch: a failure
 * after writing); any failure fails the batch, whose savepoint undoes
 * what the run wrote. */
static int flush(batch *b)
{
	size_t n = b->n;
	if (n == 0)
		return SCRM_OK;
	scrm_db *db = b->db;
	pf_figrow fig[CHUNK];
	pf_moneyrow money[CHUNK];
	size_t nf, nm;
	int64_t last;
	int rc = max_event_id(db, &last);
	if (!rc && last > INT64_MAX - CHUNK) {
		/* SQLite picks ids at random past the largest: not in order. */
		b->n = 0;
		b->telling = false;
		for (size_t j = 0; j < n && !rc; j++)
			rc = one(b, b->idx[j]); /* noted as it is stored */
		return rc;
	}
	if (!rc)
		rc = run_insert(b, last);
	if (!rc) {
		sums(b, fig, &nf, money, &nm);
		if (!(rc = pf__figures_add_rows(db, fig, nf)))
			rc = pf__money_add_rows(db, money, nm);
	}
	/* The customers whose events were stored (not duplicates), each once:
	 * add_batch cut the run before a second event of one of them. */
	for (size_t j = 0; j < n && !rc && b->telling; j++) {
		if (!b->tell[j] || b->res[j] != SCRM_OK)
			continue;
		const scrm_note note = {SCRM_NOTE_EVENTS, 0, b->root[j], 0, NULL};
		rc = scrm__notify(db, &note);
	}
	b->n = 0;
	b->telling = false;
	if (rc) {
		b->failed_at = b->idx[0];
		b->failed_run = n;
		return rc;
	}
	for (size_t j = 0; j < n; j++)
		put(b, b->idx[j], b->res[j], b->cust[j], b->id[j]);
	return SCRM_OK;
}

/* ------------------------------------------------------------ the batch */

/* Has the run an event of customer root? In customer order, that is the
 * last one. */
static bool in_run(const batch *b, int64_t root)
{
	for (size_t j = b->n; j-- > 0;)
		if (b->root[j] == root)
			return true;
	return false;
}

static int add_batch(batch *b, size_t n, unsigned flags)
{
	scrm_db *db = b->db;
	const scrm_event *evs = b->evs;
	/* In customer order when every event names its customer by id: the
	 * event_customer index, the figures, the money and the customer row
	 * of neighbouring ids share pages, which are then visited once in key
	 * order rather than at random. */
	bool sort = !(flags & SCRM_EVENTS_INPUT_ORDER) && n > 1;
	for (size_t i = 0; i < n && sort; i++)
		sort = evs[i].version == SCRM_EVENT_VERSION && evs[i].n_ids == 0 && evs[i].customer > 0;
	batch_ref *order = NULL;
	if (sort) {
		if (n > SIZE_MAX / sizeof *order || !(order = scrm__malloc(db, n * sizeof *order))) {
			b->failed_at = SIZE_MAX;
			return scrm__error(db, SCRM_NOMEM, "out of memory ordering %zu events", n);
		}
		for (size_t i = 0; i < n; i++)
			order[i] = (batch_ref){evs[i].customer, i};
		qsort(order, n, sizeof *order, cmp_ref);
	}
	int rc = SCRM_OK;
	for (size_t k = 0; k < n && !rc; k++) {
		size_t i = order ? order[k].i : k;
		bool is, tell = false;
		int64_t root = 0;
		if ((rc = plain(b, i, &is, &root, &tell))) {
			b->failed_at = i;
			b->failed_run = 0;
			break;
		}
		if (is && (tell || b->telling) && in_run(b, root) && (rc = flush(b)))
			break;
		if (is) {
			b->idx[b->n] = i;
			b->tell[b->n] = tell;
			b->telling |= tell;
			b->root[b->n++] = root;
			if (b->n == CHUNK)
				rc = flush(b);
		} else if (!(rc = flush(b))) {
			rc = one(b, i);
		}
	}
	if (!rc)
		rc = flush(b);
	scrm__free(order);
	if (!rc)
		scrm__clear_error(db);
	return rc;
}

int pf__events_batch(scrm_db *db, const scrm_event *evs, size_t n, unsigned flags, int *results,
		     int64_t *customers, int64_t *event_ids, size_t *refused, pf_refusal_fn on_refusal,
		     void *ud, size_t *failed_at, size_t *failed_run)
{
	*refused = 0;
	batch *b = scrm__malloc(db, sizeof *b);
	if (!b) {
		*failed_at = SIZE_MAX;
		*failed_run = 0;
		return scrm__error(db, SCRM_NOMEM, "out of memory");
	}
	memset(b, 0, sizeof *b);
	b->db = db;
	b->evs = evs;
	b->results = results;
	b->customers = customers;
	b->event_ids = event_ids;
	b->refused = refused;
	b->on_refusal = on_refusal;
	b->ud = ud;
	b->json_checked = (flags & PF_BATCH_JSON_CHECKED) != 0;
	int rc = add_batch(b, n, flags & ~PF_BATCH_JSON_CHECKED);
	*failed_at = b->failed_at;
	*failed_run = b->failed_run;
	scrm__free(b);
	return rc;
}

static int keep_refusal(void *ud, size_t i, const char *msg)
{
	return pf__refusal_add(ud, i, msg);
}

SCRM_API int scrm_profile_events_add(scrm_db *db, const scrm_event *events, size_t n,
				     unsigned flags, int *results, int64_t *customers,
				     int64_t *event_ids, size_t *refused)
{
	int rc = scrm__enter_write(db);
	if (rc)
		return rc;
	size_t nref = 0;
	if (refused)
		*refused = 0;
	pf__refusals_clear(db);
	if (!events && n) {
		rc = scrm__error(db, SCRM_MISUSE, "scrm_profile_events_add: events is NULL");
	} else if (flags & ~SCRM_EVENTS_INPUT_ORDER) {
		rc = scrm__error(db, SCRM_MISUSE, "scrm_profile_events_add: unknown flags 0x%x",
				 flags & ~SCRM_EVENTS_INPUT_ORDER);
	} else if (!(rc = scrm__tx_begin(db))) {
		size_t at = 0, run = 0;
		rc = pf__events_batch(db, events, n, flags, results, customers, event_ids, &nref,
				      keep_refusal, db, &at, &run);
		if (rc && at != SIZE_MAX) {
			char keep[256];
			snprintf(keep, sizeof keep, "%s", scrm_errmsg(db));
			if (run)
				scrm__error(db, rc, "batch failed at event %zu (one of %zu stored together): %s",
					    at, run, keep);
			else
				scrm__error(db, rc, "batch failed at event %zu: %s", at, keep);
		}
		rc = scrm__tx_end(db, rc);
	}
	if (rc) {
		pf__refusals_clear(db);
		for (size_t i = 0; i < n; i++) {
			if (results)
				results[i] = rc;
			if (customers)
				customers[i] = 0;
			if (event_ids)
				event_ids[i] = 0;
		}
		return rc;
	}
	if (refused)
		*refused = nref;
	return SCRM_OK;
}
