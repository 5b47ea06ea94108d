/*
 * guard.h - the read guard (DESIGN.md sections 1 B/C/E, 2 and 7): read
 * budgets per principal and per client address, enumeration weighting,
 * canary records, lockout.  docs/guard.md gives the rules, the defaults
 * with their reasoning, and what the store part will add.
 *
 * The records API calls guard_check once per person record it is about to
 * open (and once per lookup that found nothing), before anything is
 * decrypted, and stops at the first DENY.  The guard counts, per principal
 * and per client address, the DISTINCT subjects read in two sliding
 * windows (default 1 h and 24 h) and compares them with a budget: the
 * principal's role's, or the address budget.  Re-reading a subject does
 * not count again; a lookup that misses weighs `miss_weight`; a canary is
 * an attack at its first touch.  Over budget or on a canary: DENY, the
 * principal stays locked until guard_unlock, and the address is blocked
 * for block_ms.  Everything is in memory, bounded, and decided inline under
 * one mutex.  Time comes from the caller (now_ms, milliseconds), so tests
 * drive it; for one principal or address time never goes back (a late
 * event counts at the latest time seen).
 *
 * Never stored or logged: anything about a person.  Principals and
 * subjects are opaque ids; subjects are kept only as keyed 64-bit hashes.
 * Thread-safe: every function may be called from any thread.
 */
#ifndef COFFRE_GUARD_H
#define COFFRE_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "account.h"
#include "err.h"

/* ---- bounds, each with its reason ------------------------------------- */

/* A principal is an account id: 16 bytes as 32 hex (RECORD_ID_HEX). */
#define GUARD_PRINCIPAL_MAX 32
/* Client address text, as in the audit trail (AUDIT_ADDR_MAX); IPv6 text
 * is at most 45 characters, 64 leaves room for a zone or a prefix form. */
#define GUARD_ADDR_MAX      64
/* A subject is a record id (STORE_ID_BYTES). */
#define GUARD_SUBJECT_BYTES 16
/* A blind-index digest: ours are 16 bytes (STORE_IDX_BYTES); 32 allows a
 * full BLAKE2b-256 should a field ever use one. */
#define GUARD_DIGEST_MAX    32
/* Rule names ("locked-principal" is the longest). */
#define GUARD_RULE_MAX      32
/* Event times: 0 to the end of year 9999 in ms, so that a time plus a
 * window or a block never overflows. */
#define GUARD_NOW_MAX_MS    253402300799999LL

/* Windows: at least a second (shorter is a rate limit, not a budget), at
 * most a week (entries live as long as the long window: memory). */
#define GUARD_WINDOW_MIN_MS 1000LL
#define GUARD_WINDOW_MAX_MS (7LL * 24 * 3600 * 1000)
#define GUARD_SHORT_MS_DEFAULT (3600LL * 1000)
#define GUARD_LONG_MS_DEFAULT  (24LL * 3600 * 1000)

/* A budget is at most 100,000 distinct subjects per window: more than the
 * whole population of the largest establishment several times over; a
 * bigger read is a bulk export, which has its own path (issue 5 item 4).
 * It also bounds one tracker's memory: budget + 1 entries of 32 bytes. */
#define GUARD_BUDGET_MAX    100000u
/* A miss weighs 1..1000 distinct reads (default 5). */
#define GUARD_MISS_WEIGHT_DEFAULT 5u
#define GUARD_MISS_WEIGHT_MAX     1000u
/* Address block after an alert: 0 (never) to a week; default 1 h. */
#define GUARD_BLOCK_MS_DEFAULT (3600LL * 1000)
#define GUARD_BLOCK_MS_MAX     (7LL * 24 * 3600 * 1000)

/* Principals and addresses tracked at once (least recently used evicted
 * beyond): an académie's active users on a busy day fit in 64 Ki; each
 * costs ~200 bytes plus its entries. */
#define GUARD_TRACKED_DEFAULT 65536u
#define GUARD_TRACKED_MAX     (1u << 22)
/* Locked principals and blocked addresses remembered at once.  Locks are
 * never evicted: a full lock table makes the guard deny every read
 * ("guard-saturated") until restart rather than forget a lock.  Blocks are
 * temporary anyway: a full block table drops the one that ends first. */
#define GUARD_LOCKS_DEFAULT   65536u
#define GUARD_BLOCKS_DEFAULT  65536u
#define GUARD_LOCKS_MAX       (1u << 22)
#define GUARD_BLOCKS_MAX      (1u << 22)
/* Distinct-subject entries held by all trackers together (32 bytes each
 * plus at most 8 of hash buckets): the default is ~160 MiB at most,
 * reached only if every tracked principal and address reads near its
 * budget; beyond, least recently used trackers are evicted.  Must hold the
 * largest principal budget + 1 and the address budget + 1 at once. */
#define GUARD_ENTRIES_DEFAULT (1u << 22)
#define GUARD_ENTRIES_MAX     (1u << 26)
/* Canaries: a few per establishment; digests are one per canary per
 * looked-up field (INE, e-mail) per compartment. */
#define GUARD_CANARIES_MAX        65536u
#define GUARD_CANARY_DIGESTS_MAX  262144u

/* ---- options ----------------------------------------------------------- */

/* Weighted distinct subjects allowed in each window; 0 allows none. */
struct guard_budget {
    uint32_t short_max;            /* in the short window (default 1 h) */
    uint32_t long_max;             /* in the long window (default 24 h) */
};

struct guard_opts {
    int64_t window_short_ms;
    int64_t window_long_ms;        /* >= window_short_ms */
    struct guard_budget role[ROLE_COUNT];   /* by enum account_role */
    struct guard_budget address;   /* per client address, across principals */
    uint32_t miss_weight;          /* weight of a lookup that found nothing */
    int64_t block_ms;              /* address block after an alert; 0: none */
    uint32_t max_principals;       /* tracked at once */
    uint32_t max_addresses;
    uint32_t max_locks;
    uint32_t max_blocks;
    uint32_t max_entries;          /* distinct-subject entries, all trackers */
    int dry_run;                   /* never deny: alert and count only */
};

/* Fills o with the defaults (the table in guard.c and docs/guard.md).
 * Budgets of 0 are meaningful, so start from this and change fields. */
void guard_opts_default(struct guard_opts *o);

/* The default budget of a role (the same table). */
struct guard_budget guard_default_budget(enum account_role r);

/* ---- lifecycle --------------------------------------------------------- */

struct guard;

/* o NULL: the defaults.  CF_ERR_INPUT (em names the option) when a value
 * is out of its bound, a short-window budget exceeds its long one, or
 * max_entries cannot hold the largest budgets; CF_ERR_NOMEM; CF_ERR_CRYPTO
 * when libsodium cannot start. */
enum cf_err guard_open(const struct guard_opts *o, struct guard **out,
                       struct cf_errmsg *em) WARN_UNUSED;
void guard_close(struct guard *g);          /* NULL is a no-op */

/* ---- canaries ---------------------------------------------------------- */

/* Registers a canary record id (16 bytes).  Any read of it is an attack.
 * CF_ERR_LIMIT beyond GUARD_CANARIES_MAX; adding one twice is harmless. */
enum cf_err guard_add_canary(struct guard *g,
                             const uint8_t id[GUARD_SUBJECT_BYTES]) WARN_UNUSED;
/* Registers a canary's lookup digest (the blind index of its INE or
 * e-mail, 1..GUARD_DIGEST_MAX bytes).  Any lookup of it, found or not, is
 * an attack.  CF_ERR_INPUT for a bad length, CF_ERR_LIMIT when full. */
enum cf_err guard_add_canary_digest(struct guard *g, const uint8_t *digest,
                                    size_t len) WARN_UNUSED;

/* ---- the decision ------------------------------------------------------ */

/* DENY: refuse the request, revoke the session, lock the account in the
 * store, and remember the alert (the caller does these; the guard already
 * locked the principal and blocked the address in memory). */
enum guard_verdict { GUARD_ALLOW, GUARD_DENY };

struct guard_event {
    const char *principal;         /* account id (hex), 1..32 printable */
    enum account_role role;
    const char *addr;              /* client address text, 1..64 printable */
    const uint8_t *subject;        /* 16-byte record id about to be read;
                                      NULL: a lookup that found nothing */
    const uint8_t *lookup_digest;  /* blind-index digest looked up, or NULL.
                                      On a miss it also names the probe, so
                                      the same probe repeated counts once;
                                      a miss without one always counts. */
    size_t lookup_len;             /* 1..GUARD_DIGEST_MAX when digest set */
    int64_t now_ms;                /* 0..GUARD_NOW_MAX_MS */
};

/* Filled on every DENY and on every breach in dry-run (rule[0] == '\0'
 * otherwise).  No personal data: the rule, the actor, the counts. */
struct guard_alert {
    char rule[GUARD_RULE_MAX];     /* see below */
    char principal[GUARD_PRINCIPAL_MAX + 1];
    char addr[GUARD_ADDR_MAX + 1];
    uint64_t count;                /* weighted distinct subjects ... */
    uint64_t limit;                /* ... over this budget (0/0 otherwise) */
    int dry_run;                   /* 1: reported, not enforced */
};

/*
 * Rules, in the order they are tried:
 *   "bad-event"         the event breaks its contract (a caller bug): DENY,
 *                       nothing locked
 *   "guard-saturated"   a lock could not be kept (table full, out of
 *                       memory): every read is denied until restart
 *   "locked-principal"  locked by an earlier alert, until guard_unlock
 *   "blocked-address"   blocked by an earlier alert, for block_ms
 *   "canary"            a canary id read or canary digest looked up
 *   "guard-error"       out of memory while counting: DENY, nothing locked
 *   "budget-1h" "budget-24h"    the principal's role budget, short / long
 *   "address-1h" "address-24h"  the address budget, short / long
 *                       (the names are those of the default windows)
 * "canary" and the four budget rules are alerts: logged once as a JSON
 * line (rule, principal, address, counts), counted in
 * guard_alerts_total, and (unless dry_run) the principal is locked and the
 * address blocked.  Dry run never denies, whatever the rule: `alert` is
 * still filled on each breaching check, an over-budget tracker alerts once
 * per episode (until it falls back within budget), every canary touch
 * alerts, and nothing is locked or blocked.  alert may be NULL.
 * g or ev NULL: DENY.
 */
enum guard_verdict guard_check(struct guard *g, const struct guard_event *ev,
                               struct guard_alert *alert);

/* For the sign-in path: 1 while addr is blocked (also for a malformed
 * address: fail closed), 0 otherwise. */
int guard_address_blocked(struct guard *g, const char *addr, int64_t now_ms);
/* 1 while principal is locked (rule, if non-NULL, gets the rule that
 * locked it), 0 otherwise; 1 as well while the guard is saturated. */
int guard_principal_locked(struct guard *g, const char *principal,
                           char rule[GUARD_RULE_MAX]);

/* After an académie admin unlocked the account with a reason: the
 * principal starts again from zero.  CF_ERR_NOTFOUND if it was not locked.
 * Does not lift a saturation (a lock may have been lost). */
enum cf_err guard_unlock(struct guard *g, const char *principal);
/* Lifts an address block early.  CF_ERR_NOTFOUND if none. */
enum cf_err guard_unblock_address(struct guard *g, const char *addr);
/* Blocks addr until until_ms (an operator's action, or a block restored
 * from the store at start-up); a later end replaces an earlier one.
 * CF_ERR_INPUT for a malformed address or time. */
enum cf_err guard_block_address(struct guard *g, const char *addr, int64_t now_ms,
                                int64_t until_ms);

/* ---- inspection (metrics, incident console, tests) -------------------- */

/* Weighted distinct subjects of a principal / an address in the two
 * windows at now_ms (0/0 when not tracked). */
void guard_principal_counts(struct guard *g, const char *principal, int64_t now_ms,
                            uint64_t *short_w, uint64_t *long_w);
void guard_address_counts(struct guard *g, const char *addr, int64_t now_ms,
                          uint64_t *short_w, uint64_t *long_w);

struct guard_stats {
    uint64_t checks, allowed, denied;   /* guard_check calls and verdicts */
    uint64_t alerts;                    /* = guard_alerts_total */
    uint64_t evictions;                 /* trackers dropped for room */
    uint64_t principals, addresses;     /* tracked now */
    uint64_t locks, blocks;             /* held now (ended blocks drop
                                           out at their next use) */
    uint64_t entries;                   /* distinct-subject slots allocated */
    int saturated;
    int dry_run;
};
void guard_stats(struct guard *g, struct guard_stats *out);
uint64_t guard_alerts_total(struct guard *g);

#endif
