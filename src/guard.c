/*
 * guard.c - the read guard (see guard.h and docs/guard.md).
 *
 * One mutex guards everything: a check is a few hash probes and list
 * moves, far below the cost of the AEAD open it protects.  Two tables of
 * trackers (principals, addresses), each a string-keyed chained hash map
 * with an LRU list.  A tracker keeps its distinct subjects as entries in
 * the order of their last read (oldest first), indexed by a hash, with the
 * weighted sums of both windows kept up to date; a cursor marks the oldest
 * entry still in the short window.  So a check costs O(1) amortised,
 * whatever the budget.  Locks and address blocks live in tables of their
 * own, which evicting a tracker never touches.
 *
 * Subjects are kept only as keyed 64-bit hashes (SipHash, key drawn at
 * open): nothing here names a person, and nothing an attacker chooses can
 * aim at one hash bucket.  Alerts are logged after the mutex is released.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "guard.h"
#include "log.h"
#include "banned.h"

/*
 * Default budgets, in weighted distinct subjects (person records: pupils,
 * guardians, staff) per window.  docs/guard.md gives the reasoning; in
 * short, each is above the heaviest real day of the role, and no larger.
 */
static const struct guard_budget default_budget[ROLE_COUNT] = {
    /*                       1 h     24 h */
    [ROLE_STUDENT]        = {    1,     1 },   /* self only */
    [ROLE_GUARDIAN]       = {   16,    16 },   /* own children, self, a slip */
    [ROLE_TEACHER]        = {  600,  1200 },   /* 8 classes x 35 + guardians */
    [ROLE_STAFF]          = { 5000, 15000 },   /* an establishment's worth */
    [ROLE_ACADEMIE_ADMIN] = {    0,     0 },   /* reads no records */
    [ROLE_DPO]            = {    0,     0 },   /* scope reports, not reads */
    [ROLE_SERVICE]        = { 5000, 15000 },   /* set per integration */
};
/* Per client address across principals: a school behind one NAT address
 * reads at most its whole population (largest ~12,300 persons). */
static const struct guard_budget default_address = { 15000, 25000 };

#define NIL (-1)
#define TRACKER_FIRST_CAP 8u

/* Rule names (guard.h). */
static const char R_BAD[] = "bad-event", R_SATURATED[] = "guard-saturated",
    R_ERROR[] = "guard-error", R_LOCKED[] = "locked-principal",
    R_BLOCKED[] = "blocked-address", R_CANARY[] = "canary";

/* Tests count allocations down to a failure (curl's torture mode). */
#ifdef GUARD_TORTURE
static long guard_torture = -1;
#define ALLOC_FAILS() (guard_torture >= 0 && guard_torture-- == 0)
#else
#define ALLOC_FAILS() 0
#endif

static void *
g_calloc(size_t n, size_t size)
{
    return ALLOC_FAILS() ? NULL : calloc(n, size);
}

static void *
g_realloc(void *p, size_t size)
{
    return ALLOC_FAILS() ? NULL : realloc(p, size);
}

/* ---- a string-keyed chained hash map (intrusive) ---------------------- */

struct node {
    struct node *hnext;
    uint64_t hash;
    char key[GUARD_ADDR_MAX + 1];      /* principal or address text */
};

struct map {
    struct node **bucket;
    size_t mask;
    size_t n, max;
};

static enum cf_err
map_init(struct map *m, size_t max)
{
    size_t nb = 16;

    while (nb < max)
        nb <<= 1;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers; one pointer's size is meant */
    m->bucket = g_calloc(nb, sizeof *m->bucket);
    if (m->bucket == NULL)
        return CF_ERR_NOMEM;
    m->mask = nb - 1;
    m->n = 0;
    m->max = max;
    return CF_OK;
}

static struct node *
map_get(const struct map *m, uint64_t h, const char *key)
{
    struct node *n;

    for (n = m->bucket[h & m->mask]; n != NULL; n = n->hnext)
        if (n->hash == h && strcmp(n->key, key) == 0)
            return n;
    return NULL;
}

static void
map_put(struct map *m, struct node *n)
{
    struct node **b = &m->bucket[n->hash & m->mask];

    n->hnext = *b;
    *b = n;
    m->n++;
}

static void
map_del(struct map *m, struct node *n)
{
    struct node **p = &m->bucket[n->hash & m->mask];

    while (*p != n)
        p = &(*p)->hnext;
    *p = n->hnext;
    m->n--;
}

/* ---- trackers ---------------------------------------------------------- */

/* One distinct subject (or probe) of a tracker. */
struct entry {
    uint64_t key;                      /* keyed hash of the subject */
    int64_t last_ms;                   /* its latest read */
    int32_t prev, next;                /* read order, oldest first */
    int32_t hnext;                     /* bucket chain; free list when free */
    uint32_t weight;
};

struct tracker {
    struct node node;                  /* first: a node is its tracker */
    struct tracker *newer, *older;     /* the table's LRU list */
    uint64_t tick;                     /* last use, to evict across tables */
    int64_t now_ms;                    /* latest time seen: never goes back */
    uint64_t w_short, w_long;          /* weighted sums of the windows */
    struct entry *e;
    int32_t *bucket;
    uint32_t cap, nbucket, hiwater, live;
    int32_t head, tail, cur, freelist; /* cur: oldest entry in the short window */
    int over;                          /* dry run: this episode already alerted */
    int pinned;                        /* in use by the current check */
};

struct tracker_table {
    struct map map;
    struct tracker *newest, *oldest;
};

struct lock {
    struct node node;
    int64_t since_ms;
    char rule[GUARD_RULE_MAX];
};

struct block {
    struct node node;
    struct block *next, *prev;         /* roughly by end: first ends first */
    int64_t until_ms;
};

struct digest {
    uint8_t len;
    uint8_t b[GUARD_DIGEST_MAX];       /* zero-padded: compared whole */
};

struct guard {
    pthread_mutex_t mu;
    struct guard_opts o;
    uint8_t hkey[crypto_shorthash_KEYBYTES];
    struct tracker_table principals, addresses;
    struct map locks, blocks;
    struct block *block_first, *block_last;
    uint8_t (*canary)[GUARD_SUBJECT_BYTES];
    size_t ncanary, canary_cap;
    int canary_sorted;
    struct digest *cdigest;
    size_t ndigest, digest_cap;
    int digest_sorted;
    uint64_t tick, miss_seq, entries;
    uint64_t checks, allowed, denied, alerts, evictions;
    int saturated;
};

static void
lru_unlink(struct tracker_table *tt, struct tracker *t)
{
    if (t->newer != NULL)
        t->newer->older = t->older;
    else
        tt->newest = t->older;
    if (t->older != NULL)
        t->older->newer = t->newer;
    else
        tt->oldest = t->newer;
    t->newer = t->older = NULL;
}

static void
lru_push(struct tracker_table *tt, struct tracker *t)
{
    t->older = tt->newest;
    t->newer = NULL;
    if (tt->newest != NULL)
        tt->newest->newer = t;
    else
        tt->oldest = t;
    tt->newest = t;
}

static void
tracker_free(struct guard *g, struct tracker_table *tt, struct tracker *t)
{
    map_del(&tt->map, &t->node);
    lru_unlink(tt, t);
    g->entries -= t->cap;
    free(t->e);
    free(t->bucket);
    free(t);
}

/* The least recently used tracker of tt that the current check does not
 * hold (at most one per table is pinned). */
static struct tracker *
oldest_unpinned(struct tracker_table *tt)
{
    struct tracker *t = tt->oldest;

    while (t != NULL && t->pinned)
        t = t->newer;
    return t;
}

/* Evicts least recently used trackers, from either table, until `need`
 * more entries fit.  0 when nothing is left to evict. */
static int
make_room(struct guard *g, uint64_t need)
{
    while (g->entries + need > g->o.max_entries) {
        struct tracker *p = oldest_unpinned(&g->principals);
        struct tracker *a = oldest_unpinned(&g->addresses);

        if (p == NULL && a == NULL)
            return 0;
        if (a == NULL || (p != NULL && p->tick < a->tick))
            tracker_free(g, &g->principals, p);
        else
            tracker_free(g, &g->addresses, a);
        g->evictions++;
    }
    return 1;
}

/* The tracker of key, created if missing (evicting the table's least
 * recently used one when full); marked used.  NULL: out of memory. */
static struct tracker *
tracker_get(struct guard *g, struct tracker_table *tt, const char *key, uint64_t h)
{
    struct tracker *t = (struct tracker *)map_get(&tt->map, h, key);

    if (t != NULL) {
        lru_unlink(tt, t);
    } else {
        if (tt->map.n >= tt->map.max) {
            struct tracker *victim = oldest_unpinned(tt);

            if (victim == NULL)
                return NULL;
            tracker_free(g, tt, victim);
            g->evictions++;
        }
        t = g_calloc(1, sizeof *t);
        if (t == NULL)
            return NULL;
        t->node.hash = h;
        snprintf(t->node.key, sizeof t->node.key, "%s", key);
        t->head = t->tail = t->cur = t->freelist = NIL;
        map_put(&tt->map, &t->node);
    }
    lru_push(tt, t);
    t->tick = ++g->tick;
    return t;
}

static struct tracker *
tracker_find(struct tracker_table *tt, const char *key, uint64_t h)
{
    return (struct tracker *)map_get(&tt->map, h, key);
}

static void
entry_unlink(struct tracker *t, int32_t i)
{
    struct entry *x = &t->e[i];

    if (t->cur == i)
        t->cur = x->next;
    if (x->prev != NIL)
        t->e[x->prev].next = x->next;
    else
        t->head = x->next;
    if (x->next != NIL)
        t->e[x->next].prev = x->prev;
    else
        t->tail = x->prev;
    x->prev = x->next = NIL;
}

static void
entry_append(struct tracker *t, int32_t i)
{
    struct entry *x = &t->e[i];

    x->prev = t->tail;
    x->next = NIL;
    if (t->tail != NIL)
        t->e[t->tail].next = i;
    else
        t->head = i;
    t->tail = i;
    if (t->cur == NIL)          /* appended at now: in the short window */
        t->cur = i;
}

static void
entry_index(struct tracker *t, int32_t i)
{
    uint32_t b = (uint32_t)(t->e[i].key & (t->nbucket - 1));

    t->e[i].hnext = t->bucket[b];
    t->bucket[b] = i;
}

static void
entry_unindex(struct tracker *t, int32_t i)
{
    int32_t *p = &t->bucket[t->e[i].key & (t->nbucket - 1)];

    while (*p != i)
        p = &t->e[*p].hnext;
    *p = t->e[i].hnext;
}

static int32_t
entry_find(const struct tracker *t, uint64_t key)
{
    int32_t i;

    if (t->nbucket == 0)
        return NIL;
    for (i = t->bucket[key & (t->nbucket - 1)]; i != NIL; i = t->e[i].hnext)
        if (t->e[i].key == key)
            return i;
    return NIL;
}

/* Drops the oldest entry (it has left the long window). */
static void
entry_expire(const struct guard *g, struct tracker *t, int32_t i)
{
    struct entry *x = &t->e[i];

    /* The cursor is already past it (short <= long); kept exact anyway. */
    if (t->now_ms - x->last_ms < g->o.window_short_ms)
        t->w_short -= x->weight;
    t->w_long -= x->weight;
    entry_unindex(t, i);
    entry_unlink(t, i);
    x->hnext = t->freelist;
    t->freelist = i;
    t->live--;
}

/* Brings both windows to now: what is older leaves them (sliding). */
static void
tracker_advance(const struct guard *g, struct tracker *t, int64_t now)
{
    if (now > t->now_ms)
        t->now_ms = now;
    while (t->cur != NIL && t->now_ms - t->e[t->cur].last_ms >= g->o.window_short_ms) {
        t->w_short -= t->e[t->cur].weight;
        t->cur = t->e[t->cur].next;
    }
    while (t->head != NIL && t->now_ms - t->e[t->head].last_ms >= g->o.window_long_ms)
        entry_expire(g, t, t->head);
}

/* Grows t's entries towards limit.  CF_ERR_LIMIT when at limit already. */
static enum cf_err
tracker_grow(struct guard *g, struct tracker *t, uint32_t limit)
{
    uint32_t ncap = t->cap == 0 ? TRACKER_FIRST_CAP : t->cap * 2, nb = 1;
    struct entry *e;
    int32_t *b, i;

    if (ncap > limit)
        ncap = limit;
    if (ncap <= t->cap)
        return CF_ERR_LIMIT;
    if (!make_room(g, ncap - t->cap))
        return CF_ERR_NOMEM;
    e = g_realloc(t->e, (size_t)ncap * sizeof *e);
    if (e == NULL)
        return CF_ERR_NOMEM;
    t->e = e;
    while (nb < ncap)
        nb <<= 1;
    if (nb != t->nbucket) {
        b = g_realloc(t->bucket, (size_t)nb * sizeof *b);
        if (b == NULL)
            return CF_ERR_NOMEM;          /* t->e larger, still consistent */
        t->bucket = b;
        t->nbucket = nb;
        for (i = 0; i < (int32_t)nb; i++)
            b[i] = NIL;
        for (i = t->head; i != NIL; i = t->e[i].next)
            entry_index(t, i);
    }
    g->entries += ncap - t->cap;
    t->cap = ncap;
    return CF_OK;
}

enum touch { TOUCH_OK, TOUCH_FULL, TOUCH_NOMEM };

/*
 * Counts a read of key (weight w) at t->now_ms.  A subject already there
 * moves to the newest end and counts again only if it had left the short
 * window.  TOUCH_FULL: key is new and t already holds `limit` entries, so
 * it is not stored (its count is over budget anyway).
 */
static enum touch
tracker_touch(struct guard *g, struct tracker *t, uint64_t key, uint32_t w,
              uint32_t limit)
{
    int32_t i = entry_find(t, key);
    struct entry *x;

    if (i != NIL) {
        x = &t->e[i];
        if (t->now_ms - x->last_ms >= g->o.window_short_ms)
            t->w_short += x->weight;
        entry_unlink(t, i);
        x->last_ms = t->now_ms;
        entry_append(t, i);
        return TOUCH_OK;
    }
    if (t->live >= limit)
        return TOUCH_FULL;
    if (t->freelist != NIL) {
        i = t->freelist;
        t->freelist = t->e[i].hnext;
    } else {
        if (t->hiwater == t->cap) {
            enum cf_err rc = tracker_grow(g, t, limit);

            if (rc == CF_ERR_LIMIT)
                return TOUCH_FULL;
            if (rc != CF_OK)
                return TOUCH_NOMEM;
        }
        i = (int32_t)t->hiwater++;
    }
    x = &t->e[i];
    x->key = key;
    x->last_ms = t->now_ms;
    x->weight = w;
    entry_index(t, i);
    entry_append(t, i);
    t->live++;
    t->w_short += w;
    t->w_long += w;
    return TOUCH_OK;
}

/* ---- locks and blocks -------------------------------------------------- */

static void
block_remove(struct guard *g, struct block *b)
{
    map_del(&g->blocks, &b->node);
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        g->block_first = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    else
        g->block_last = b->prev;
    free(b);
}

static void
blocks_purge(struct guard *g, int64_t now)
{
    /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): block_remove unlinks b before freeing it; the loop rereads block_first */
    while (g->block_first != NULL && g->block_first->until_ms <= now)
        block_remove(g, g->block_first);
}

/* 1 while addr is blocked; an ended block is dropped. */
static int
block_active(struct guard *g, const char *addr, uint64_t h, int64_t now)
{
    struct block *b = (struct block *)map_get(&g->blocks, h, addr);

    if (b == NULL)
        return 0;
    if (b->until_ms > now)
        return 1;
    block_remove(g, b);
    return 0;
}

/* Blocks addr until `until`.  Returns 1 if a live block had to be dropped
 * for room (logged by the caller). */
static int
block_add(struct guard *g, const char *addr, uint64_t h, int64_t now, int64_t until)
{
    struct block *b = (struct block *)map_get(&g->blocks, h, addr);
    int dropped = 0;

    if (b != NULL) {
        block_remove(g, b);              /* re-queued at the end below */
    } else {
        blocks_purge(g, now);
        if (g->blocks.n >= g->blocks.max) {
            block_remove(g, g->block_first);
            dropped = 1;
        }
    }
    b = g_calloc(1, sizeof *b);
    if (b == NULL)
        return dropped;                  /* the principal is locked anyway */
    b->node.hash = h;
    snprintf(b->node.key, sizeof b->node.key, "%s", addr);
    b->until_ms = until;
    map_put(&g->blocks, &b->node);
    b->prev = g->block_last;
    if (g->block_last != NULL)
        g->block_last->next = b;
    else
        g->block_first = b;
    g->block_last = b;
    return dropped;
}

/* Locks principal.  A lock that cannot be kept saturates the guard: every
 * read is denied from then on, rather than a lock forgotten. */
static void
lock_add(struct guard *g, const char *principal, uint64_t h, const char *rule,
         int64_t now)
{
    struct lock *l;

    if (map_get(&g->locks, h, principal) != NULL)
        return;
    if (g->locks.n >= g->locks.max) {
        g->saturated = 1;
        return;
    }
    l = g_calloc(1, sizeof *l);
    if (l == NULL) {
        g->saturated = 1;
        return;
    }
    l->node.hash = h;
    snprintf(l->node.key, sizeof l->node.key, "%s", principal);
    snprintf(l->rule, sizeof l->rule, "%s", rule);
    l->since_ms = now;
    map_put(&g->locks, &l->node);
}

/* ---- canaries ---------------------------------------------------------- */

static int
cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, GUARD_SUBJECT_BYTES);
}

static int
cmp_digest(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct digest));
}

/* Sorts and removes duplicates; n updated. */
static void
sort_unique(void *base, size_t *n, size_t size, int (*cmp)(const void *, const void *))
{
    uint8_t *p = base;
    size_t i, k = 0;

    if (*n == 0)
        return;
    qsort(base, *n, size, cmp);
    for (i = 1; i < *n; i++)
        if (cmp(p + k * size, p + i * size) != 0) {
            k++;
            if (k != i)
                memcpy(p + k * size, p + i * size, size);
        }
    *n = k + 1;
}

static void
digest_make(struct digest *d, const uint8_t *b, size_t len)
{
    memset(d, 0, sizeof *d);
    d->len = (uint8_t)len;
    memcpy(d->b, b, len);
}

static int
is_canary(struct guard *g, const struct guard_event *ev)
{
    if (ev->subject != NULL && g->ncanary > 0) {
        if (!g->canary_sorted) {
            sort_unique(g->canary, &g->ncanary, GUARD_SUBJECT_BYTES, cmp_id);
            g->canary_sorted = 1;
        }
        if (bsearch(ev->subject, g->canary, g->ncanary, GUARD_SUBJECT_BYTES, cmp_id) != NULL)
            return 1;
    }
    if (ev->lookup_digest != NULL && g->ndigest > 0) {
        struct digest d;

        if (!g->digest_sorted) {
            sort_unique(g->cdigest, &g->ndigest, sizeof *g->cdigest, cmp_digest);
            g->digest_sorted = 1;
        }
        digest_make(&d, ev->lookup_digest, ev->lookup_len);
        if (bsearch(&d, g->cdigest, g->ndigest, sizeof d, cmp_digest) != NULL)
            return 1;
    }
    return 0;
}

/* Appends one element to a growable array of at most max elements. */
static enum cf_err
array_push(void **base, size_t *n, size_t *cap, size_t max, size_t size, const void *elt)
{
    if (*n == *cap) {
        size_t ncap = *cap == 0 ? 64 : *cap * 2;
        void *p;

        if (ncap > max)
            ncap = max;
        if (ncap <= *n)
            return CF_ERR_LIMIT;
        p = g_realloc(*base, ncap * size);
        if (p == NULL)
            return CF_ERR_NOMEM;
        *base = p;
        *cap = ncap;
    }
    memcpy((uint8_t *)*base + *n * size, elt, size);
    (*n)++;
    return CF_OK;
}

/*
 * Adds elt to a canary array (sorted lazily at the next check).  When it
 * is full, duplicates are squeezed out first, and an element already there
 * is no error.
 */
static enum cf_err
canary_push(void **base, size_t *n, size_t *cap, int *sorted, size_t max, size_t size,
            int (*cmp)(const void *, const void *), const void *elt)
{
    enum cf_err rc;

    if (*n == max) {
        if (!*sorted) {
            sort_unique(*base, n, size, cmp);
            *sorted = 1;
        }
        if (bsearch(elt, *base, *n, size, cmp) != NULL)
            return CF_OK;
    }
    rc = array_push(base, n, cap, max, size, elt);
    if (rc == CF_OK)
        *sorted = 0;
    return rc;
}

enum cf_err
guard_add_canary(struct guard *g, const uint8_t id[GUARD_SUBJECT_BYTES])
{
    enum cf_err rc;
    void *base;

    if (g == NULL || id == NULL)
        return CF_ERR_INPUT;
    pthread_mutex_lock(&g->mu);
    base = g->canary;
    rc = canary_push(&base, &g->ncanary, &g->canary_cap, &g->canary_sorted,
                     GUARD_CANARIES_MAX, GUARD_SUBJECT_BYTES, cmp_id, id);
    g->canary = base;
    pthread_mutex_unlock(&g->mu);
    return rc;
}

enum cf_err
guard_add_canary_digest(struct guard *g, const uint8_t *digest, size_t len)
{
    struct digest d;
    enum cf_err rc;
    void *base;

    if (g == NULL || digest == NULL || len == 0 || len > GUARD_DIGEST_MAX)
        return CF_ERR_INPUT;
    digest_make(&d, digest, len);
    pthread_mutex_lock(&g->mu);
    base = g->cdigest;
    rc = canary_push(&base, &g->ndigest, &g->digest_cap, &g->digest_sorted,
                     GUARD_CANARY_DIGESTS_MAX, sizeof d, cmp_digest, &d);
    g->cdigest = base;
    pthread_mutex_unlock(&g->mu);
    return rc;
}

/* ---- options, open, close ---------------------------------------------- */

struct guard_budget
guard_default_budget(enum account_role r)
{
    static const struct guard_budget none = { 0, 0 };

    return (unsigned)r < ROLE_COUNT ? default_budget[r] : none;
}

void
guard_opts_default(struct guard_opts *o)
{
    memset(o, 0, sizeof *o);
    o->window_short_ms = GUARD_SHORT_MS_DEFAULT;
    o->window_long_ms = GUARD_LONG_MS_DEFAULT;
    memcpy(o->role, default_budget, sizeof o->role);
    o->address = default_address;
    o->miss_weight = GUARD_MISS_WEIGHT_DEFAULT;
    o->block_ms = GUARD_BLOCK_MS_DEFAULT;
    o->max_principals = GUARD_TRACKED_DEFAULT;
    o->max_addresses = GUARD_TRACKED_DEFAULT;
    o->max_locks = GUARD_LOCKS_DEFAULT;
    o->max_blocks = GUARD_BLOCKS_DEFAULT;
    o->max_entries = GUARD_ENTRIES_DEFAULT;
    o->dry_run = 0;
}

static enum cf_err
budget_check(const struct guard_budget *b, const char *what, struct cf_errmsg *em)
{
    if (b->long_max > GUARD_BUDGET_MAX)
        return cf_fail(em, CF_ERR_INPUT, "guard: budget of %s: %u over the limit of %u",
                       what, (unsigned)b->long_max, (unsigned)GUARD_BUDGET_MAX);
    if (b->short_max > b->long_max)
        return cf_fail(em, CF_ERR_INPUT,
                       "guard: budget of %s: short window (%u) above long window (%u)",
                       what, (unsigned)b->short_max, (unsigned)b->long_max);
    return CF_OK;
}

static enum cf_err
opts_check(const struct guard_opts *o, struct cf_errmsg *em)
{
    uint64_t biggest = 0;
    enum cf_err rc;
    int r;

    if (o->window_short_ms < GUARD_WINDOW_MIN_MS || o->window_short_ms > GUARD_WINDOW_MAX_MS)
        return cf_fail(em, CF_ERR_INPUT, "guard: short window must be 1 s to 7 days");
    if (o->window_long_ms < o->window_short_ms || o->window_long_ms > GUARD_WINDOW_MAX_MS)
        return cf_fail(em, CF_ERR_INPUT,
                       "guard: long window must be from the short window to 7 days");
    for (r = 0; r < ROLE_COUNT; r++) {
        if ((rc = budget_check(&o->role[r], account_role_name((enum account_role)r), em)) != CF_OK)
            return rc;
        if (o->role[r].long_max > biggest)
            biggest = o->role[r].long_max;
    }
    if ((rc = budget_check(&o->address, "an address", em)) != CF_OK)
        return rc;
    if (o->miss_weight < 1 || o->miss_weight > GUARD_MISS_WEIGHT_MAX)
        return cf_fail(em, CF_ERR_INPUT, "guard: miss weight must be 1 to %u",
                       (unsigned)GUARD_MISS_WEIGHT_MAX);
    if (o->block_ms < 0 || o->block_ms > GUARD_BLOCK_MS_MAX)
        return cf_fail(em, CF_ERR_INPUT, "guard: address block must be 0 to 7 days");
    if (o->max_principals < 1 || o->max_principals > GUARD_TRACKED_MAX ||
        o->max_addresses < 1 || o->max_addresses > GUARD_TRACKED_MAX)
        return cf_fail(em, CF_ERR_INPUT, "guard: principals and addresses tracked must be 1 to %u",
                       (unsigned)GUARD_TRACKED_MAX);
    if (o->max_locks < 1 || o->max_locks > GUARD_LOCKS_MAX)
        return cf_fail(em, CF_ERR_INPUT, "guard: locks must be 1 to %u", (unsigned)GUARD_LOCKS_MAX);
    if (o->max_blocks < 1 || o->max_blocks > GUARD_BLOCKS_MAX)
        return cf_fail(em, CF_ERR_INPUT, "guard: blocks must be 1 to %u", (unsigned)GUARD_BLOCKS_MAX);
    /* One check may hold a principal and an address tracker at full size. */
    if (o->max_entries > GUARD_ENTRIES_MAX ||
        o->max_entries < biggest + 1 + o->address.long_max + 1)
        return cf_fail(em, CF_ERR_INPUT,
                       "guard: entries must be %llu (largest budgets + 2) to %u",
                       (unsigned long long)biggest + 2 + o->address.long_max,
                       (unsigned)GUARD_ENTRIES_MAX);
    return CF_OK;
}

enum cf_err
guard_open(const struct guard_opts *o, struct guard **out, struct cf_errmsg *em)
{
    struct guard_opts def;
    struct guard *g;
    enum cf_err rc;

    *out = NULL;
    if (o == NULL) {
        guard_opts_default(&def);
        o = &def;
    }
    if ((rc = opts_check(o, em)) != CF_OK)
        return rc;
    if (sodium_init() < 0)
        return cf_fail(em, CF_ERR_CRYPTO, "guard: libsodium did not start");
    g = g_calloc(1, sizeof *g);
    if (g == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "guard: out of memory");
    if (pthread_mutex_init(&g->mu, NULL) != 0) {
        free(g);
        return cf_fail(em, CF_ERR_NOMEM, "guard: cannot make a mutex");
    }
    g->o = *o;
    g->o.dry_run = o->dry_run != 0;
    randombytes_buf(g->hkey, sizeof g->hkey);
    if (map_init(&g->principals.map, o->max_principals) != CF_OK ||
        map_init(&g->addresses.map, o->max_addresses) != CF_OK ||
        map_init(&g->locks, o->max_locks) != CF_OK ||
        map_init(&g->blocks, o->max_blocks) != CF_OK) {
        guard_close(g);
        return cf_fail(em, CF_ERR_NOMEM, "guard: out of memory");
    }
    *out = g;
    return CF_OK;
}

static void
map_free_nodes(struct map *m)
{
    size_t i;

    if (m->bucket == NULL)
        return;
    for (i = 0; i <= m->mask; i++)
        while (m->bucket[i] != NULL) {
            struct node *n = m->bucket[i];

            m->bucket[i] = n->hnext;
            free(n);
        }
    free(m->bucket);
    m->bucket = NULL;
}

void
guard_close(struct guard *g)
{
    if (g == NULL)
        return;
    while (g->principals.oldest != NULL)
        tracker_free(g, &g->principals, g->principals.oldest);
    while (g->addresses.oldest != NULL)
        tracker_free(g, &g->addresses, g->addresses.oldest);
    free(g->principals.map.bucket);
    free(g->addresses.map.bucket);
    map_free_nodes(&g->locks);
    map_free_nodes(&g->blocks);
    free(g->canary);
    free(g->cdigest);
    pthread_mutex_destroy(&g->mu);
    sodium_memzero(g->hkey, sizeof g->hkey);
    free(g);
}

/* ---- the decision ------------------------------------------------------ */

_Static_assert(GUARD_ADDR_MAX >= GUARD_PRINCIPAL_MAX && GUARD_ADDR_MAX >= GUARD_DIGEST_MAX &&
               GUARD_ADDR_MAX >= GUARD_SUBJECT_BYTES && GUARD_ADDR_MAX < 256,
               "hash_bytes holds the longest key");

/* Keyed 64-bit hash of tag || len || b (len <= GUARD_ADDR_MAX). */
static uint64_t
hash_bytes(const struct guard *g, uint8_t tag, const uint8_t *b, size_t len)
{
    uint8_t buf[2 + GUARD_ADDR_MAX], out[crypto_shorthash_BYTES];
    uint64_t h;

    buf[0] = tag;                      /* subjects, probes, strings apart */
    buf[1] = (uint8_t)len;
    memcpy(buf + 2, b, len);
    crypto_shorthash(out, buf, 2 + len, g->hkey);
    memcpy(&h, out, sizeof h);
    return h;
}

/* 1 if s is 1..max printable ASCII characters (no space). */
static int
text_ok(const char *s, size_t max, size_t *len)
{
    size_t i, n;

    if (s == NULL)
        return 0;
    n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    *len = n;
    return 1;
}

static int
event_ok(const struct guard_event *ev, size_t *plen, size_t *alen)
{
    if (!text_ok(ev->principal, GUARD_PRINCIPAL_MAX, plen) ||
        !text_ok(ev->addr, GUARD_ADDR_MAX, alen))
        return 0;
    if ((unsigned)ev->role >= ROLE_COUNT)
        return 0;
    if (ev->now_ms < 0 || ev->now_ms > GUARD_NOW_MAX_MS)
        return 0;
    if (ev->lookup_digest != NULL && (ev->lookup_len == 0 || ev->lookup_len > GUARD_DIGEST_MAX))
        return 0;
    return 1;
}

/* What one check computed outside the mutex, and what it did inside. */
struct check {
    const struct guard_event *ev;
    uint64_t hp, ha;                   /* hashes of principal and address */
    uint64_t key;                      /* the subject's or probe's hash */
    int unique_miss;                   /* a miss without digest: new key */
    uint32_t weight;
    struct tracker *pt, *at;
    struct guard_alert raised[3];      /* to log after unlocking */
    int nraised;
    int saturated_now, block_dropped;
};

static void
alert_set(struct guard_alert *a, const struct check *c, const char *rule,
          uint64_t count, uint64_t limit, int dry_run)
{
    memset(a, 0, sizeof *a);
    snprintf(a->rule, sizeof a->rule, "%s", rule);
    snprintf(a->principal, sizeof a->principal, "%s", c->ev->principal);
    snprintf(a->addr, sizeof a->addr, "%s", c->ev->addr);
    a->count = count;
    a->limit = limit;
    a->dry_run = dry_run;
}

/* The rule a tracker breaks after a touch (extra: a new subject it could
 * not store), or NULL. */
static const char *
over_budget(const struct tracker *t, const struct guard_budget *b, uint32_t extra,
            int is_addr, uint64_t *count, uint64_t *limit)
{
    uint64_t s = t->w_short + extra, l = t->w_long + extra;

    if (s > b->short_max) {
        *count = s;
        *limit = b->short_max;
        return is_addr ? "address-1h" : "budget-1h";
    }
    if (l > b->long_max) {
        *count = l;
        *limit = b->long_max;
        return is_addr ? "address-24h" : "budget-24h";
    }
    return NULL;
}

/* An alert in enforce mode: lock the principal, block the address, and
 * forget their counts (a locked principal reads nothing; after the block
 * an address starts again from zero). */
static void
enforce(struct guard *g, struct check *c, const char *rule)
{
    const struct guard_event *ev = c->ev;
    struct tracker *t;

    lock_add(g, ev->principal, c->hp, rule, ev->now_ms);
    if (g->saturated)
        c->saturated_now = 1;
    t = c->pt != NULL ? c->pt : tracker_find(&g->principals, ev->principal, c->hp);
    if (t != NULL)
        tracker_free(g, &g->principals, t);
    c->pt = NULL;
    if (g->o.block_ms > 0) {
        c->block_dropped = block_add(g, ev->addr, c->ha, ev->now_ms, ev->now_ms + g->o.block_ms);
        t = c->at != NULL ? c->at : tracker_find(&g->addresses, ev->addr, c->ha);
        if (t != NULL)
            tracker_free(g, &g->addresses, t);
        c->at = NULL;
    }
}

/*
 * Counts the read in tracker t against budget b.  Returns GUARD_DENY when
 * enforcing an alert (or out of memory), GUARD_ALLOW otherwise; a dry-run
 * alert is recorded in c and in *a.
 */
static enum guard_verdict
count_in(struct guard *g, struct check *c, struct tracker *t, const struct guard_budget *b,
         int is_addr, struct guard_alert *a)
{
    uint64_t count = 0, limit = 0;
    uint32_t extra = 0;
    const char *rule;

    tracker_advance(g, t, c->ev->now_ms);
    switch (tracker_touch(g, t, c->key, c->weight, b->long_max + 1)) {
    case TOUCH_OK:
        break;
    case TOUCH_FULL:
        extra = c->weight;
        break;
    case TOUCH_NOMEM:
        alert_set(a, c, R_ERROR, 0, 0, 0);
        return GUARD_DENY;
    }
    rule = over_budget(t, b, extra, is_addr, &count, &limit);
    if (rule == NULL) {
        t->over = 0;
        return GUARD_ALLOW;
    }
    if (a->rule[0] == '\0')
        alert_set(a, c, rule, count, limit, g->o.dry_run);
    if (!g->o.dry_run) {
        c->raised[c->nraised++] = *a;
        g->alerts++;
        enforce(g, c, rule);
        return GUARD_DENY;
    }
    if (!t->over) {                     /* once per episode */
        t->over = 1;
        alert_set(&c->raised[c->nraised++], c, rule, count, limit, 1);
        g->alerts++;
    }
    return GUARD_ALLOW;
}

static enum guard_verdict
decide(struct guard *g, struct check *c, struct guard_alert *a)
{
    const struct guard_event *ev = c->ev;
    struct lock *l;

    if (g->saturated) {
        alert_set(a, c, R_SATURATED, 0, 0, 0);
        return GUARD_DENY;
    }
    l = (struct lock *)map_get(&g->locks, c->hp, ev->principal);
    if (l != NULL) {
        alert_set(a, c, R_LOCKED, 0, 0, 0);
        return GUARD_DENY;
    }
    if (block_active(g, ev->addr, c->ha, ev->now_ms)) {
        alert_set(a, c, R_BLOCKED, 0, 0, 0);
        return GUARD_DENY;
    }
    if (is_canary(g, ev)) {
        alert_set(a, c, R_CANARY, 1, 0, g->o.dry_run);
        c->raised[c->nraised++] = *a;
        g->alerts++;
        if (!g->o.dry_run) {
            enforce(g, c, R_CANARY);
            return GUARD_DENY;
        }
    }
    if (c->unique_miss) {              /* a probe we cannot name: always new */
        c->key = hash_bytes(g, 3, (const uint8_t *)&g->miss_seq, sizeof g->miss_seq);
        g->miss_seq++;
    }

    c->pt = tracker_get(g, &g->principals, ev->principal, c->hp);
    if (c->pt == NULL) {
        alert_set(a, c, R_ERROR, 0, 0, 0);
        return GUARD_DENY;
    }
    c->pt->pinned = 1;
    if (count_in(g, c, c->pt, &g->o.role[ev->role], 0, a) == GUARD_DENY)
        return GUARD_DENY;

    c->at = tracker_get(g, &g->addresses, ev->addr, c->ha);
    if (c->at == NULL) {
        alert_set(a, c, R_ERROR, 0, 0, 0);
        return GUARD_DENY;
    }
    c->at->pinned = 1;
    return count_in(g, c, c->at, &g->o.address, 1, a);
}

static void
alert_log(const struct guard_alert *a, int block)
{
    char count[24], limit[24];

    snprintf(count, sizeof count, "%llu", (unsigned long long)a->count);
    snprintf(limit, sizeof limit, "%llu", (unsigned long long)a->limit);
    log_kv(LOG_WARN, "guard: alert", "rule", a->rule, "principal", a->principal,
           "addr", a->addr, "count", count, "limit", limit,
           "action", a->dry_run ? "none (dry run)"
                                : block ? "denied, principal locked, address blocked"
                                        : "denied, principal locked",
           (const char *)NULL);
}

enum guard_verdict
guard_check(struct guard *g, const struct guard_event *ev, struct guard_alert *alert)
{
    struct guard_alert a;
    struct check c;
    enum guard_verdict v;
    size_t plen = 0, alen = 0;
    int i;

    memset(&a, 0, sizeof a);
    if (g == NULL || ev == NULL || !event_ok(ev, &plen, &alen)) {
        snprintf(a.rule, sizeof a.rule, "%s", R_BAD);
        v = GUARD_DENY;
        if (g != NULL) {
            pthread_mutex_lock(&g->mu);
            g->checks++;
            if (g->o.dry_run)
                v = GUARD_ALLOW;
            if (v == GUARD_ALLOW)
                g->allowed++;
            else
                g->denied++;
            pthread_mutex_unlock(&g->mu);
        }
        if (alert != NULL)
            *alert = a;
        return v;
    }
    memset(&c, 0, sizeof c);
    c.ev = ev;
    c.hp = hash_bytes(g, 1, (const uint8_t *)ev->principal, plen);
    c.ha = hash_bytes(g, 2, (const uint8_t *)ev->addr, alen);
    if (ev->subject != NULL) {
        c.key = hash_bytes(g, 4, ev->subject, GUARD_SUBJECT_BYTES);
        c.weight = 1;
    } else {
        if (ev->lookup_digest != NULL)
            c.key = hash_bytes(g, 5, ev->lookup_digest, ev->lookup_len);
        else
            c.unique_miss = 1;
        c.weight = g->o.miss_weight;
    }

    pthread_mutex_lock(&g->mu);
    g->checks++;
    v = decide(g, &c, &a);
    if (c.pt != NULL)
        c.pt->pinned = 0;
    if (c.at != NULL)
        c.at->pinned = 0;
    if (g->o.dry_run)
        v = GUARD_ALLOW;                /* reported in a, never enforced */
    if (v == GUARD_ALLOW)
        g->allowed++;
    else
        g->denied++;
    pthread_mutex_unlock(&g->mu);

    for (i = 0; i < c.nraised; i++)
        alert_log(&c.raised[i], g->o.block_ms > 0);
    if (c.saturated_now) {
        char max[24];

        snprintf(max, sizeof max, "%u", (unsigned)g->o.max_locks);
        log_kv(LOG_ERROR, "guard: a lock could not be kept (table full or out of memory), "
               "every read is denied until restart", "max_locks", max, (const char *)NULL);
    }
    if (c.block_dropped)
        log_kv(LOG_WARN, "guard: block table full, the block ending first was lifted",
               (const char *)NULL);
    if (alert != NULL)
        *alert = a;
    return v;
}

/* ---- the other entry points -------------------------------------------- */

int
guard_address_blocked(struct guard *g, const char *addr, int64_t now_ms)
{
    size_t len;
    uint64_t h;
    int blocked;

    if (g == NULL || !text_ok(addr, GUARD_ADDR_MAX, &len))
        return 1;
    h = hash_bytes(g, 2, (const uint8_t *)addr, len);
    pthread_mutex_lock(&g->mu);
    blocked = block_active(g, addr, h, now_ms);
    pthread_mutex_unlock(&g->mu);
    return blocked;
}

int
guard_principal_locked(struct guard *g, const char *principal, char rule[GUARD_RULE_MAX])
{
    struct lock *l;
    size_t len;
    uint64_t h;
    int locked = 0;

    if (rule != NULL)
        rule[0] = '\0';
    if (g == NULL || !text_ok(principal, GUARD_PRINCIPAL_MAX, &len))
        return 1;
    h = hash_bytes(g, 1, (const uint8_t *)principal, len);
    pthread_mutex_lock(&g->mu);
    l = (struct lock *)map_get(&g->locks, h, principal);
    if (l != NULL) {
        locked = 1;
        if (rule != NULL)
            snprintf(rule, GUARD_RULE_MAX, "%s", l->rule);
    } else if (g->saturated) {
        locked = 1;
        if (rule != NULL)
            snprintf(rule, GUARD_RULE_MAX, "%s", R_SATURATED);
    }
    pthread_mutex_unlock(&g->mu);
    return locked;
}

enum cf_err
guard_unlock(struct guard *g, const char *principal)
{
    struct lock *l;
    struct tracker *t;
    size_t len;
    uint64_t h;

    if (g == NULL || !text_ok(principal, GUARD_PRINCIPAL_MAX, &len))
        return CF_ERR_INPUT;
    h = hash_bytes(g, 1, (const uint8_t *)principal, len);
    pthread_mutex_lock(&g->mu);
    l = (struct lock *)map_get(&g->locks, h, principal);
    if (l != NULL) {
        map_del(&g->locks, &l->node);
        free(l);
        /* starts again from zero: its tracker went with the lock, and
         * none is made while locked; dropped here all the same */
        t = tracker_find(&g->principals, principal, h);
        if (t != NULL)
            tracker_free(g, &g->principals, t);
    }
    pthread_mutex_unlock(&g->mu);
    if (l != NULL)
        log_kv(LOG_INFO, "guard: principal unlocked", "principal", principal, (const char *)NULL);
    return l != NULL ? CF_OK : CF_ERR_NOTFOUND;
}

enum cf_err
guard_unblock_address(struct guard *g, const char *addr)
{
    struct block *b;
    size_t len;
    uint64_t h;

    if (g == NULL || !text_ok(addr, GUARD_ADDR_MAX, &len))
        return CF_ERR_INPUT;
    h = hash_bytes(g, 2, (const uint8_t *)addr, len);
    pthread_mutex_lock(&g->mu);
    b = (struct block *)map_get(&g->blocks, h, addr);
    if (b != NULL)
        block_remove(g, b);
    pthread_mutex_unlock(&g->mu);
    return b != NULL ? CF_OK : CF_ERR_NOTFOUND;
}

enum cf_err
guard_block_address(struct guard *g, const char *addr, int64_t now_ms, int64_t until_ms)
{
    struct block *b;
    size_t len;
    uint64_t h;
    int dropped;

    if (g == NULL || !text_ok(addr, GUARD_ADDR_MAX, &len) || now_ms < 0 ||
        now_ms > GUARD_NOW_MAX_MS || until_ms <= now_ms || until_ms > GUARD_NOW_MAX_MS)
        return CF_ERR_INPUT;
    h = hash_bytes(g, 2, (const uint8_t *)addr, len);
    pthread_mutex_lock(&g->mu);
    b = (struct block *)map_get(&g->blocks, h, addr);
    dropped = 0;
    if (b == NULL || b->until_ms < until_ms)   /* a longer block stays */
        dropped = block_add(g, addr, h, now_ms, until_ms);
    pthread_mutex_unlock(&g->mu);
    if (dropped)
        log_kv(LOG_WARN, "guard: block table full, the block ending first was lifted",
               (const char *)NULL);
    return CF_OK;
}

static void
counts_of(struct guard *g, struct tracker_table *tt, uint8_t tag, size_t max,
          const char *key, int64_t now_ms, uint64_t *short_w, uint64_t *long_w)
{
    struct tracker *t;
    size_t len;
    uint64_t h;

    *short_w = *long_w = 0;
    if (g == NULL || !text_ok(key, max, &len) || now_ms < 0 || now_ms > GUARD_NOW_MAX_MS)
        return;
    h = hash_bytes(g, tag, (const uint8_t *)key, len);
    pthread_mutex_lock(&g->mu);
    t = tracker_find(tt, key, h);
    if (t != NULL) {
        tracker_advance(g, t, now_ms);
        *short_w = t->w_short;
        *long_w = t->w_long;
    }
    pthread_mutex_unlock(&g->mu);
}

void
guard_principal_counts(struct guard *g, const char *principal, int64_t now_ms,
                       uint64_t *short_w, uint64_t *long_w)
{
    counts_of(g, g != NULL ? &g->principals : NULL, 1, GUARD_PRINCIPAL_MAX, principal,
              now_ms, short_w, long_w);
}

void
guard_address_counts(struct guard *g, const char *addr, int64_t now_ms,
                     uint64_t *short_w, uint64_t *long_w)
{
    counts_of(g, g != NULL ? &g->addresses : NULL, 2, GUARD_ADDR_MAX, addr,
              now_ms, short_w, long_w);
}

void
guard_stats(struct guard *g, struct guard_stats *out)
{
    memset(out, 0, sizeof *out);
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    out->checks = g->checks;
    out->allowed = g->allowed;
    out->denied = g->denied;
    out->alerts = g->alerts;
    out->evictions = g->evictions;
    out->principals = g->principals.map.n;
    out->addresses = g->addresses.map.n;
    out->locks = g->locks.n;
    out->blocks = g->blocks.n;
    out->entries = g->entries;
    out->saturated = g->saturated;
    out->dry_run = g->o.dry_run;
    pthread_mutex_unlock(&g->mu);
}

uint64_t
guard_alerts_total(struct guard *g)
{
    uint64_t n;

    if (g == NULL)
        return 0;
    pthread_mutex_lock(&g->mu);
    n = g->alerts;
    pthread_mutex_unlock(&g->mu);
    return n;
}
