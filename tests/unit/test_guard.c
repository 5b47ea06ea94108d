/*
 * test_guard.c - the read guard: role budgets with distinct counting, the
 * N-1/N/N+1 edges, enumeration weight, sliding windows, per-address
 * budgets, canaries, lockout and unlock, dry run, bounds and eviction,
 * concurrency, allocation failures, and what an alert logs.
 *
 * Time is driven by the tests (now_ms); T0 is 2026-01-01 00:00 UTC.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#define GUARD_TORTURE 1
#include "../../src/guard.c"
#include "testutil.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (3600 * SEC)
#define T0 1767225600000LL

static const char NAT[] = "192.0.2.10";         /* a school's one address */
static const char HOME[] = "2001:db8::42";

/* Opaque record id number n of family ns. */
static void
sid(uint8_t id[GUARD_SUBJECT_BYTES], uint32_t ns, uint32_t n)
{
    memset(id, 0, GUARD_SUBJECT_BYTES);
    id[0] = 0x5e;
    memcpy(id + 4, &ns, sizeof ns);
    memcpy(id + 8, &n, sizeof n);
}

/* Account id number n, as 32 hex. */
static const char *
account_of(char buf[GUARD_PRINCIPAL_MAX + 1], unsigned n)
{
    snprintf(buf, GUARD_PRINCIPAL_MAX + 1, "%032x", n);
    return buf;
}

static struct guard *
gopen(const struct guard_opts *o)
{
    struct guard *g = NULL;
    struct cf_errmsg em = { "" };

    if (guard_open(o, &g, &em) != CF_OK)
        fail_msg("guard_open: %s", em.msg);
    return g;
}

/* A read of record (ns, n). */
static enum guard_verdict
rd(struct guard *g, const char *who, enum account_role role, const char *addr,
   uint32_t ns, uint32_t n, int64_t now, struct guard_alert *a)
{
    uint8_t id[GUARD_SUBJECT_BYTES];
    struct guard_event ev = { who, role, addr, id, NULL, 0, now };

    sid(id, ns, n);
    return guard_check(g, &ev, a);
}

/* A lookup of probe (ns, n) that found nothing; ns 0: without a digest. */
static enum guard_verdict
miss(struct guard *g, const char *who, enum account_role role, const char *addr,
     uint32_t ns, uint32_t n, int64_t now, struct guard_alert *a)
{
    uint8_t d[GUARD_SUBJECT_BYTES];
    struct guard_event ev = { who, role, addr, NULL, ns ? d : NULL, ns ? sizeof d : 0, now };

    sid(d, ns, n);
    return guard_check(g, &ev, a);
}

static uint64_t
long_count(struct guard *g, const char *who, int64_t now, uint64_t *short_w)
{
    uint64_t s, l;

    guard_principal_counts(g, who, now, &s, &l);
    if (short_w != NULL)
        *short_w = s;
    return l;
}

/* ---- options ----------------------------------------------------------- */

#define OPT_REJECT(field, value) do {                                   \
        guard_opts_default(&o);                                         \
        o.field = (value);                                              \
        em.msg[0] = '\0';                                               \
        g = (struct guard *)&o;                                         \
        assert_int_equal(guard_open(&o, &g, &em), CF_ERR_INPUT);        \
        assert_null(g);                                                 \
        assert_true(strncmp(em.msg, "guard: ", 7) == 0);                \
    } while (0)
#define OPT_ACCEPT(field, value) do {                                   \
        guard_opts_default(&o);                                         \
        o.field = (value);                                              \
        if (guard_open(&o, &g, &em) != CF_OK)                           \
            fail_msg("%s = %lld refused: %s", #field, (long long)(value), em.msg); \
        guard_close(g);                                                 \
    } while (0)

static void
test_opts(void **state)
{
    struct guard_opts o;
    struct guard *g = NULL;
    struct cf_errmsg em = { "" };
    uint64_t min_entries;
    int r;

    (void)state;
    guard_opts_default(&o);
    assert_int_equal(o.window_short_ms, HOUR);
    assert_int_equal(o.window_long_ms, 24 * HOUR);
    assert_int_equal(o.miss_weight, 5);
    assert_int_equal(o.block_ms, HOUR);
    assert_false(o.dry_run);
    for (r = 0; r < ROLE_COUNT; r++) {
        struct guard_budget b = guard_default_budget((enum account_role)r);

        assert_int_equal(o.role[r].short_max, b.short_max);
        assert_int_equal(o.role[r].long_max, b.long_max);
        assert_true(b.short_max <= b.long_max);
    }
    assert_int_equal(guard_default_budget(ROLE_COUNT).long_max, 0);
    /* the reasoning of docs/guard.md, held to */
    assert_int_equal(o.role[ROLE_STUDENT].long_max, 1);
    assert_true(o.role[ROLE_GUARDIAN].long_max >= 10 && o.role[ROLE_GUARDIAN].long_max <= 20);
    /* the teacher day (5 classes of 30, two guardians each) fits
     * even when read in one evening; a day of 8 classes of 35 fits a day */
    assert_true(o.role[ROLE_TEACHER].short_max >= 5 * 30 * 3);
    assert_true(o.role[ROLE_TEACHER].long_max >= 8 * 35 * 3);
    assert_int_equal(o.role[ROLE_ACADEMIE_ADMIN].long_max, 0);
    assert_int_equal(o.role[ROLE_DPO].long_max, 0);
    /* the largest establishment's whole population behind one NAT */
    assert_true(o.address.short_max >= 12300);

    assert_int_equal(guard_open(NULL, &g, &em), CF_OK);
    guard_close(g);
    guard_close(NULL);

    /* every bound at N-1, N, N+1 */
    OPT_REJECT(window_short_ms, GUARD_WINDOW_MIN_MS - 1);
    OPT_ACCEPT(window_short_ms, GUARD_WINDOW_MIN_MS);
    OPT_ACCEPT(window_long_ms, GUARD_WINDOW_MAX_MS);
    OPT_REJECT(window_long_ms, GUARD_WINDOW_MAX_MS + 1);
    OPT_REJECT(window_long_ms, HOUR - 1);                 /* below the short one */
    OPT_ACCEPT(window_long_ms, HOUR);
    guard_opts_default(&o);
    o.window_short_ms = o.window_long_ms = GUARD_WINDOW_MAX_MS;
    assert_int_equal(guard_open(&o, &g, &em), CF_OK);
    guard_close(g);
    o.window_short_ms = o.window_long_ms = GUARD_WINDOW_MAX_MS + 1;
    assert_int_equal(guard_open(&o, &g, &em), CF_ERR_INPUT);

    OPT_ACCEPT(role[ROLE_TEACHER].long_max, GUARD_BUDGET_MAX);
    OPT_REJECT(role[ROLE_TEACHER].long_max, GUARD_BUDGET_MAX + 1);
    OPT_REJECT(role[ROLE_TEACHER].short_max, 1201);       /* above its 24 h one */
    assert_non_null(strstr(em.msg, "teacher"));
    OPT_ACCEPT(role[ROLE_TEACHER].short_max, 1200);
    OPT_ACCEPT(address.long_max, GUARD_BUDGET_MAX);
    OPT_REJECT(address.long_max, GUARD_BUDGET_MAX + 1);
    OPT_REJECT(address.short_max, 25001);

    OPT_REJECT(miss_weight, 0);
    OPT_ACCEPT(miss_weight, 1);
    OPT_ACCEPT(miss_weight, GUARD_MISS_WEIGHT_MAX);
    OPT_REJECT(miss_weight, GUARD_MISS_WEIGHT_MAX + 1);
    OPT_REJECT(block_ms, -1);
    OPT_ACCEPT(block_ms, 0);
    OPT_ACCEPT(block_ms, GUARD_BLOCK_MS_MAX);
    OPT_REJECT(block_ms, GUARD_BLOCK_MS_MAX + 1);
    OPT_REJECT(max_principals, 0);
    OPT_ACCEPT(max_principals, 1);
    OPT_ACCEPT(max_principals, GUARD_TRACKED_MAX);
    OPT_REJECT(max_principals, GUARD_TRACKED_MAX + 1);
    OPT_REJECT(max_addresses, 0);
    OPT_ACCEPT(max_addresses, 1);
    OPT_REJECT(max_addresses, GUARD_TRACKED_MAX + 1);
    OPT_REJECT(max_locks, 0);
    OPT_ACCEPT(max_locks, 1);
    OPT_REJECT(max_locks, GUARD_LOCKS_MAX + 1);
    OPT_REJECT(max_blocks, 0);
    OPT_ACCEPT(max_blocks, 1);
    OPT_REJECT(max_blocks, GUARD_BLOCKS_MAX + 1);
    /* entries: at least the largest role budget + 1 and the address
     * budget + 1 together (one check may hold both trackers full) */
    min_entries = 15000 + 1 + 25000 + 1;
    OPT_REJECT(max_entries, (uint32_t)min_entries - 1);
    OPT_ACCEPT(max_entries, (uint32_t)min_entries);
    OPT_ACCEPT(max_entries, GUARD_ENTRIES_MAX);
    OPT_REJECT(max_entries, GUARD_ENTRIES_MAX + 1);
}

/* ---- a real day is never stopped --------------------------------------- */

static void
test_teacher_day_allowed(void **state)
{
    struct guard *g = gopen(NULL);
    struct guard_alert a;
    char t1[33], t2[33];
    uint64_t s;
    int64_t now = 0;
    int i, rep, c, p;

    (void)state;
    account_of(t1, 1);
    account_of(t2, 2);
    /* 100 distinct pupils over a school day */
    for (i = 0; i < 100; i++) {
        assert_int_equal(rd(g, t1, ROLE_TEACHER, NAT, 1, (uint32_t)i,
                            T0 + 8 * HOUR + i * (8 * HOUR / 100), &a), GUARD_ALLOW);
        assert_string_equal(a.rule, "");
    }
    /* the same pupils re-read 10,000 times: distinct, so still 100 */
    for (i = 0; i < 10000; i++) {
        now = T0 + 16 * HOUR + i * SEC;
        assert_int_equal(rd(g, t1, ROLE_TEACHER, NAT, 1, (uint32_t)(i % 100), now, &a),
                         GUARD_ALLOW);
    }
    assert_int_equal(long_count(g, t1, now, &s), 100);
    assert_int_equal(s, 100);

    /* the day: 5 classes of 30 and both guardians of each pupil,
     * every one read 20 times between 8:00 and 18:00 */
    for (rep = 0; rep < 20; rep++)
        for (c = 0; c < 5; c++)
            for (p = 0; p < 30; p++) {
                now = T0 + 8 * HOUR + rep * 30 * MIN + c * 5 * MIN + p * SEC;
                assert_int_equal(rd(g, t2, ROLE_TEACHER, NAT, 10 + c, (uint32_t)p, now, &a),
                                 GUARD_ALLOW);
                assert_int_equal(rd(g, t2, ROLE_TEACHER, NAT, 20 + c, (uint32_t)(2 * p), now, &a),
                                 GUARD_ALLOW);
                assert_int_equal(rd(g, t2, ROLE_TEACHER, NAT, 20 + c, (uint32_t)(2 * p + 1), now, &a),
                                 GUARD_ALLOW);
            }
    assert_int_equal(long_count(g, t2, now, NULL), 450);
    /* ... and the same 450 prepared in one evening (10 minutes) */
    for (c = 0; c < 450; c++)
        assert_int_equal(rd(g, account_of(t2, 3), ROLE_TEACHER, HOME, 30, (uint32_t)c,
                            T0 + 20 * HOUR + c * SEC, &a), GUARD_ALLOW);
    assert_int_equal(guard_alerts_total(g), 0);
    guard_close(g);
}

/* ---- a scraper is stopped at exactly budget + 1 ------------------------ */

static void
test_scraper_stopped(void **state)
{
    struct guard *g = gopen(NULL);
    struct guard_alert a;
    struct guard_stats st;
    char scraper[33], t2[33], t3[33], rule[GUARD_RULE_MAX];
    uint32_t b = guard_default_budget(ROLE_TEACHER).short_max, i;
    int64_t now = T0;
    uint64_t s;

    (void)state;
    account_of(scraper, 66);
    account_of(t2, 2);
    account_of(t3, 3);
    for (i = 0; i < b - 1; i++)                              /* N-1 */
        assert_int_equal(rd(g, scraper, ROLE_TEACHER, HOME, 9, i, now + i * 100, &a), GUARD_ALLOW);
    assert_int_equal(long_count(g, scraper, now + i * 100, &s), b - 1);
    assert_int_equal(s, b - 1);
    now += i * 100;
    assert_int_equal(rd(g, scraper, ROLE_TEACHER, HOME, 9, b - 1, now, &a), GUARD_ALLOW);  /* N */
    assert_string_equal(a.rule, "");
    assert_int_equal(rd(g, scraper, ROLE_TEACHER, HOME, 9, b, now, &a), GUARD_DENY);       /* N+1 */
    assert_string_equal(a.rule, "budget-1h");
    assert_int_equal(a.count, b + 1);
    assert_int_equal(a.limit, b);
    assert_string_equal(a.principal, scraper);
    assert_string_equal(a.addr, HOME);
    assert_false(a.dry_run);
    assert_int_equal(guard_alerts_total(g), 1);

    /* it stays denied: a record it already read, a new one, later, elsewhere */
    assert_int_equal(rd(g, scraper, ROLE_TEACHER, HOME, 9, 0, now + SEC, &a), GUARD_DENY);
    assert_string_equal(a.rule, "locked-principal");
    assert_int_equal(rd(g, scraper, ROLE_TEACHER, "198.51.100.7", 9, 5000, now + 30 * HOUR, &a),
                     GUARD_DENY);
    assert_string_equal(a.rule, "locked-principal");
    assert_int_equal(guard_principal_locked(g, scraper, rule), 1);
    assert_string_equal(rule, "budget-1h");
    assert_int_equal(guard_principal_locked(g, t2, rule), 0);
    assert_string_equal(rule, "");

    /* its address is blocked for an hour, for everyone, sign-in included */
    assert_int_equal(rd(g, t3, ROLE_TEACHER, HOME, 3, 1, now + MIN, &a), GUARD_DENY);
    assert_string_equal(a.rule, "blocked-address");
    assert_int_equal(guard_address_blocked(g, HOME, now + HOUR - 1), 1);
    assert_int_equal(guard_address_blocked(g, HOME, now + HOUR), 0);
    assert_int_equal(guard_address_blocked(g, NAT, now), 0);
    assert_int_equal(rd(g, t3, ROLE_TEACHER, HOME, 3, 1, now + HOUR, &a), GUARD_ALLOW);
    assert_int_equal(rd(g, scraper, ROLE_TEACHER, HOME, 9, 0, now + HOUR, &a), GUARD_DENY);
    assert_string_equal(a.rule, "locked-principal");

    /* a legitimate second teacher at another address is still served */
    for (i = 0; i < 100; i++)
        assert_int_equal(rd(g, t2, ROLE_TEACHER, NAT, 9, i, now + i, &a), GUARD_ALLOW);
    /* denials of a locked principal or blocked address are not new alerts */
    assert_int_equal(guard_alerts_total(g), 1);
    guard_stats(g, &st);
    assert_int_equal(st.alerts, 1);
    assert_int_equal(st.locks, 1);
    assert_int_equal(st.denied, 5);
    assert_int_equal(st.checks, st.allowed + st.denied);
    guard_close(g);
}

/* ---- enumeration: misses weigh more ----------------------------------- */

static void
test_enumeration(void **state)
{
    struct guard_opts o;
    struct guard *g = gopen(NULL);
    struct guard_alert a;
    char p1[33], p2[33];
    uint32_t b = guard_default_budget(ROLE_TEACHER).short_max, i, n = b / 5;

    (void)state;
    account_of(p1, 1);
    account_of(p2, 2);
    /* a probe of an INE or e-mail that does not exist weighs 5 */
    for (i = 0; i < n - 1; i++)
        assert_int_equal(miss(g, p1, ROLE_TEACHER, HOME, 40, i, T0 + i, &a), GUARD_ALLOW);
    assert_int_equal(long_count(g, p1, T0 + i, NULL), 5 * (n - 1));
    /* the same probe repeated (a typo retyped) counts once */
    for (i = 0; i < 1000; i++)
        assert_int_equal(miss(g, p1, ROLE_TEACHER, HOME, 40, 0, T0 + MIN + i, &a), GUARD_ALLOW);
    assert_int_equal(long_count(g, p1, T0 + 2 * MIN, NULL), 5 * (n - 1));
    /* found records weigh 1: up to the budget exactly */
    for (i = 0; i < 5; i++)
        assert_int_equal(rd(g, p1, ROLE_TEACHER, HOME, 41, i, T0 + 2 * MIN, &a), GUARD_ALLOW);
    assert_int_equal(long_count(g, p1, T0 + 2 * MIN, NULL), b);
    assert_int_equal(miss(g, p1, ROLE_TEACHER, HOME, 40, n, T0 + 3 * MIN, &a), GUARD_DENY);
    assert_string_equal(a.rule, "budget-1h");
    assert_int_equal(a.count, b + 5);
    assert_int_equal(a.limit, b);

    /* misses without a digest cannot be told apart: each one counts */
    for (i = 0; i < n; i++)
        assert_int_equal(miss(g, p2, ROLE_TEACHER, NAT, 0, 0, T0 + i, &a), GUARD_ALLOW);
    assert_int_equal(miss(g, p2, ROLE_TEACHER, NAT, 0, 0, T0 + i, &a), GUARD_DENY);
    assert_string_equal(a.rule, "budget-1h");
    assert_int_equal(a.count, 5 * (n + 1));
    guard_close(g);

    /* the weight is configurable: at 50, twelve probes use a teacher's hour */
    guard_opts_default(&o);
    o.miss_weight = 50;
    g = gopen(&o);
    for (i = 0; i < b / 50; i++)
        assert_int_equal(miss(g, p1, ROLE_TEACHER, HOME, 42, i, T0, &a), GUARD_ALLOW);
    assert_int_equal(miss(g, p1, ROLE_TEACHER, HOME, 42, i, T0, &a), GUARD_DENY);
    assert_int_equal(a.count, b + 50);
    guard_close(g);
}

/* ---- sliding windows --------------------------------------------------- */

static void
test_windows_slide(void **state)
{
    struct guard *g = gopen(NULL);
    struct guard_alert a;
    static const char ZA[] = "198.51.100.20";
    char p[33], x[33], y[33], z[33], q[33];
    struct guard_budget b = guard_default_budget(ROLE_TEACHER);
    uint32_t per_hour = b.long_max / 24, h, k, i;
    uint64_t s;

    (void)state;
    account_of(p, 1);
    account_of(x, 2);
    account_of(y, 3);
    account_of(z, 4);
    account_of(q, 5);
    /* 50 new records an hour for 26 hours: 1,300 in all, more than the
     * day's budget, yet never more than 1,200 in any 24 hours */
    assert_int_equal(per_hour * 24, b.long_max);
    for (h = 0; h < 26; h++)
        for (k = 0; k < per_hour; k++) {
            if (rd(g, p, ROLE_TEACHER, NAT, 50, h * per_hour + k, T0 + h * HOUR + k * SEC, &a)
                != GUARD_ALLOW)
                fail_msg("hour %u read %u denied: %s %llu/%llu", h, k, a.rule,
                         (unsigned long long)a.count, (unsigned long long)a.limit);
        }
    assert_int_equal(long_count(g, p, T0 + 25 * HOUR + per_hour * SEC, &s), b.long_max);
    assert_int_equal(s, per_hour);

    /* a burst: the budget in one hour, then one more just inside it */
    for (i = 0; i < b.short_max; i++)
        assert_int_equal(rd(g, x, ROLE_TEACHER, HOME, 51, i, T0, &a), GUARD_ALLOW);
    assert_int_equal(rd(g, x, ROLE_TEACHER, HOME, 51, i, T0 + HOUR - 1, &a), GUARD_DENY);
    assert_string_equal(a.rule, "budget-1h");

    /* the same at exactly one hour: the first reads have left the window */
    for (i = 0; i < b.short_max; i++)
        assert_int_equal(rd(g, y, ROLE_TEACHER, NAT, 52, i, T0, &a), GUARD_ALLOW);
    assert_int_equal(rd(g, y, ROLE_TEACHER, NAT, 52, i, T0 + HOUR, &a), GUARD_ALLOW);
    assert_int_equal(long_count(g, y, T0 + HOUR, &s), b.short_max + 1);
    assert_int_equal(s, 1);
    /* re-reading an old one brings it back into the hour, not the day */
    assert_int_equal(rd(g, y, ROLE_TEACHER, NAT, 52, 0, T0 + HOUR, &a), GUARD_ALLOW);
    assert_int_equal(long_count(g, y, T0 + HOUR, &s), b.short_max + 1);
    assert_int_equal(s, 2);

    /* the long window: two hours' budgets fill the day ... */
    for (i = 0; i < b.short_max; i++)
        assert_int_equal(rd(g, q, ROLE_TEACHER, "198.51.100.21", 53, i, T0, &a), GUARD_ALLOW);
    for (i = 0; i < b.short_max; i++)
        assert_int_equal(rd(g, q, ROLE_TEACHER, "198.51.100.21", 54, i, T0 + HOUR, &a),
                         GUARD_ALLOW);
    assert_int_equal(long_count(g, q, T0 + HOUR, &s), b.long_max);
    assert_int_equal(s, b.short_max);
    /* ... so one more, two hours later, is one too many for the day */
    assert_int_equal(rd(g, q, ROLE_TEACHER, "198.51.100.21", 55, 0, T0 + 3 * HOUR, &a),
                     GUARD_DENY);
    assert_string_equal(a.rule, "budget-24h");
    assert_int_equal(a.count, b.long_max + 1);
    assert_int_equal(a.limit, b.long_max);

    /* and once 24 hours have passed, the day starts again */
    for (i = 0; i < b.short_max; i++)
        assert_int_equal(rd(g, z, ROLE_TEACHER, ZA, 57, i, T0, &a), GUARD_ALLOW);
    for (i = 0; i < b.short_max; i++)
        assert_int_equal(rd(g, z, ROLE_TEACHER, ZA, 58, i, T0 + 2 * HOUR, &a), GUARD_ALLOW);
    assert_int_equal(rd(g, z, ROLE_TEACHER, ZA, 59, 0, T0 + 24 * HOUR, &a), GUARD_ALLOW);
    assert_int_equal(long_count(g, z, T0 + 24 * HOUR, NULL), b.short_max + 1);
    /* time never goes back for a principal: a late event counts as now */
    assert_int_equal(rd(g, z, ROLE_TEACHER, ZA, 59, 1, T0, &a), GUARD_ALLOW);
    assert_int_equal(long_count(g, z, T0, &s), b.short_max + 2);
    assert_int_equal(s, 2);
    guard_close(g);
}

/* ---- per address, across principals ----------------------------------- */

static void
test_address_budget(void **state)
{
    struct guard *g = gopen(NULL);
    struct guard_alert a;
    struct guard_budget ab = guard_default_budget(ROLE_TEACHER);
    char who[33], rule[GUARD_RULE_MAX];
    uint32_t k, i, n, served = 0, limit = 15000, locked_one = 0;
    uint64_t s, l;
    enum guard_verdict v;

    (void)state;
    /* 50 stolen teacher accounts from one address, each under its own
     * budget (301 < 600), together over the address's */
    assert_true(301 < ab.short_max);
    for (k = 0; k < 50; k++)
        for (i = 0; i < 301; i++) {
            n = k * 301 + i;
            v = rd(g, account_of(who, 100 + k), ROLE_TEACHER, HOME, 60, n, T0 + n * 200, &a);
            if (n < limit) {
                if (v != GUARD_ALLOW)
                    fail_msg("read %u denied: %s", n, a.rule);
                served++;
            } else if (n == limit) {
                assert_int_equal(v, GUARD_DENY);
                assert_string_equal(a.rule, "address-1h");
                assert_int_equal(a.count, limit + 1);
                assert_int_equal(a.limit, limit);
                locked_one = 100 + k;
            } else {
                assert_int_equal(v, GUARD_DENY);
                assert_true(strcmp(a.rule, "blocked-address") == 0 ||
                            strcmp(a.rule, "locked-principal") == 0);
            }
        }
    assert_int_equal(served, limit);
    assert_int_equal(guard_alerts_total(g), 1);
    assert_int_equal(guard_principal_locked(g, account_of(who, locked_one), rule), 1);
    assert_string_equal(rule, "address-1h");
    /* the others are stopped by the block, not locked */
    assert_int_equal(guard_principal_locked(g, account_of(who, 100), NULL), 0);
    assert_int_equal(guard_address_blocked(g, HOME, T0 + 20 * MIN), 1);
    guard_close(g);

    /* a 990-pupil collège (33 classes of 30) behind one NAT address on a
     * full day: every pupil reads self five times, 60 teachers each read 5
     * classes and both guardians of each pupil, twice */
    g = gopen(NULL);
    for (i = 0; i < 990; i++)
        for (k = 0; k < 5; k++)
            assert_int_equal(rd(g, account_of(who, 1000 + i), ROLE_STUDENT, NAT, 70, i,
                                T0 + 8 * HOUR + k * HOUR + i * 3 * SEC, &a), GUARD_ALLOW);
    for (k = 0; k < 60; k++) {
        int64_t at = T0 + 8 * HOUR + k * 8 * MIN;
        uint32_t c, p, pupil, rep;

        for (rep = 0; rep < 2; rep++)
            for (c = 0; c < 5; c++)
                for (p = 0; p < 30; p++) {
                    pupil = ((k * 5 + c) % 33) * 30 + p;
                    assert_int_equal(rd(g, account_of(who, 5000 + k), ROLE_TEACHER, NAT, 70, pupil,
                                        at + rep * 4 * HOUR, &a), GUARD_ALLOW);
                    assert_int_equal(rd(g, account_of(who, 5000 + k), ROLE_TEACHER, NAT, 71, 2 * pupil,
                                        at + rep * 4 * HOUR, &a), GUARD_ALLOW);
                    assert_int_equal(rd(g, account_of(who, 5000 + k), ROLE_TEACHER, NAT, 71, 2 * pupil + 1,
                                        at + rep * 4 * HOUR, &a), GUARD_ALLOW);
                }
    }
    guard_address_counts(g, NAT, T0 + 21 * HOUR, &s, &l);
    assert_int_equal(l, 990 * 3);                /* pupils and guardians */
    assert_true(s <= l);
    assert_int_equal(guard_alerts_total(g), 0);
    guard_close(g);
}

/* ---- canaries ---------------------------------------------------------- */

static void
test_canary(void **state)
{
    struct guard *g = gopen(NULL);
    struct guard_alert a;
    uint8_t canary[GUARD_SUBJECT_BYTES], digest[GUARD_DIGEST_MAX + 1], other[GUARD_SUBJECT_BYTES];
    struct guard_event ev;
    char who[33];
    uint32_t i;

    (void)state;
    sid(canary, 80, 1);
    memset(digest, 0xd1, sizeof digest);
    assert_int_equal(guard_add_canary(g, canary), CF_OK);
    assert_int_equal(guard_add_canary(g, canary), CF_OK);            /* twice: harmless */
    assert_int_equal(guard_add_canary_digest(g, digest, 16), CF_OK);
    assert_int_equal(guard_add_canary_digest(g, digest, 0), CF_ERR_INPUT);
    assert_int_equal(guard_add_canary_digest(g, digest, GUARD_DIGEST_MAX), CF_OK);
    assert_int_equal(guard_add_canary_digest(g, digest, GUARD_DIGEST_MAX + 1), CF_ERR_INPUT);
    assert_int_equal(guard_add_canary_digest(g, NULL, 16), CF_ERR_INPUT);
    assert_int_equal(guard_add_canary(g, NULL), CF_ERR_INPUT);

    /* the same read of another record is served ... */
    assert_int_equal(rd(g, account_of(who, 1), ROLE_STAFF, NAT, 80, 2, T0, &a), GUARD_ALLOW);
    /* ... the canary is an attack at the first touch, far within budget */
    assert_int_equal(rd(g, account_of(who, 2), ROLE_STAFF, HOME, 80, 1, T0, &a), GUARD_DENY);
    assert_string_equal(a.rule, "canary");
    assert_int_equal(a.count, 1);
    assert_int_equal(a.limit, 0);
    assert_int_equal(guard_principal_locked(g, who, NULL), 1);
    assert_int_equal(guard_address_blocked(g, HOME, T0), 1);
    assert_int_equal(rd(g, who, ROLE_STAFF, "203.0.113.9", 80, 2, T0, &a), GUARD_DENY);
    assert_string_equal(a.rule, "locked-principal");

    /* a lookup of a canary's INE or e-mail digest that found nothing ... */
    memset(&ev, 0, sizeof ev);
    ev.principal = account_of(who, 3);
    ev.role = ROLE_TEACHER;
    ev.addr = "203.0.113.3";
    ev.lookup_digest = digest;
    ev.lookup_len = 16;
    ev.now_ms = T0;
    assert_int_equal(guard_check(g, &ev, &a), GUARD_DENY);
    assert_string_equal(a.rule, "canary");
    /* ... or that found a record: the digest alone is enough */
    ev.principal = account_of(who, 4);
    ev.addr = "203.0.113.4";
    sid(other, 80, 3);
    ev.subject = other;
    assert_int_equal(guard_check(g, &ev, &a), GUARD_DENY);
    assert_string_equal(a.rule, "canary");
    /* a digest of another length is another digest */
    ev.principal = account_of(who, 5);
    ev.addr = "203.0.113.5";
    ev.lookup_len = 15;
    assert_int_equal(guard_check(g, &ev, &a), GUARD_ALLOW);
    /* the same lookup of an ordinary value is served */
    digest[0] = 0x11;
    ev.lookup_len = 16;
    ev.subject = NULL;
    assert_int_equal(guard_check(g, &ev, &a), GUARD_ALLOW);
    assert_string_equal(a.rule, "");
    assert_int_equal(guard_alerts_total(g), 3);

    /* the canary table is bounded; a canary already there is no error */
    for (i = 0; i < GUARD_CANARIES_MAX - 1; i++) {
        sid(other, 81, i);
        assert_int_equal(guard_add_canary(g, other), CF_OK);
    }
    sid(other, 81, i);
    assert_int_equal(guard_add_canary(g, other), CF_ERR_LIMIT);
    assert_int_equal(guard_add_canary(g, canary), CF_OK);
    sid(other, 81, 777);
    assert_int_equal(rd(g, account_of(who, 6), ROLE_STAFF, "203.0.113.6", 81, 777, T0, &a), GUARD_DENY);
    assert_string_equal(a.rule, "canary");
    assert_int_equal(rd(g, account_of(who, 7), ROLE_STAFF, "203.0.113.7", 82, 777, T0, &a), GUARD_ALLOW);
    guard_close(g);
}

/* ---- dry run ----------------------------------------------------------- */

static void
test_dry_run(void **state)
{
    struct guard_opts o;
    struct guard *g;
    struct guard_alert a;
    struct guard_stats st;
    struct guard_event bad = { "bad principal", ROLE_TEACHER, NAT, NULL, NULL, 0, T0 };
    struct tracker *t;
    uint8_t cid[GUARD_SUBJECT_BYTES];
    char p[33];
    uint32_t b = guard_default_budget(ROLE_TEACHER).short_max, i;
    uint64_t l0;

    (void)state;
    guard_opts_default(&o);
    o.dry_run = 1;
    g = gopen(&o);
    account_of(p, 1);
    for (i = 0; i < b + 100; i++) {
        assert_int_equal(rd(g, p, ROLE_TEACHER, HOME, 90, i, T0 + i, &a), GUARD_ALLOW);
        if (i < b) {
            assert_string_equal(a.rule, "");
        } else {
            assert_string_equal(a.rule, "budget-1h");
            assert_true(a.dry_run);
            assert_int_equal(a.count, i + 1);
            assert_int_equal(a.limit, b);
        }
    }
    /* one alert for the episode, nothing locked or blocked */
    assert_int_equal(guard_alerts_total(g), 1);
    assert_int_equal(guard_principal_locked(g, p, NULL), 0);
    assert_int_equal(guard_address_blocked(g, HOME, T0), 0);
    /* a canary alerts every time, and is still not enforced */
    sid(cid, 91, 1);
    assert_int_equal(guard_add_canary(g, cid), CF_OK);
    assert_int_equal(rd(g, p, ROLE_TEACHER, HOME, 91, 1, T0 + MIN, &a), GUARD_ALLOW);
    assert_string_equal(a.rule, "canary");
    assert_true(a.dry_run);
    assert_int_equal(guard_alerts_total(g), 2);

    /* two hours on, the hour is back within budget: the episode ends ... */
    l0 = long_count(g, p, T0 + 2 * HOUR, NULL);
    assert_int_equal(l0, b + 101);
    assert_int_equal(rd(g, p, ROLE_TEACHER, HOME, 92, 0, T0 + 2 * HOUR, &a), GUARD_ALLOW);
    assert_string_equal(a.rule, "");
    /* ... and the next breach (the day's budget now) is a new alert */
    for (i = 1; l0 + i < 1200; i++)
        assert_int_equal(rd(g, p, ROLE_TEACHER, HOME, 92, i, T0 + 2 * HOUR + i, &a), GUARD_ALLOW);
    assert_string_equal(a.rule, "");
    assert_int_equal(rd(g, p, ROLE_TEACHER, HOME, 92, i, T0 + 2 * HOUR + i, &a), GUARD_ALLOW);
    assert_string_equal(a.rule, "budget-24h");
    assert_int_equal(a.count, 1201);
    assert_int_equal(guard_alerts_total(g), 3);
    /* memory stays bounded: at most the day's budget + 1 subjects kept */
    for (i = 0; i < 2000; i++)
        assert_int_equal(rd(g, p, ROLE_TEACHER, HOME, 93, i, T0 + 3 * HOUR, &a), GUARD_ALLOW);
    assert_int_equal(a.count, 1202);
    t = tracker_find(&g->principals, p, hash_bytes(g, 1, (const uint8_t *)p, strlen(p)));
    assert_non_null(t);
    assert_int_equal(t->live, 1201);
    assert_true(t->cap <= 1201);
    assert_int_equal(guard_alerts_total(g), 3);
    /* even a malformed event is only reported */
    assert_int_equal(guard_check(g, &bad, &a), GUARD_ALLOW);
    assert_string_equal(a.rule, "bad-event");
    guard_stats(g, &st);
    assert_int_equal(st.denied, 0);
    assert_true(st.dry_run);
    assert_int_equal(st.locks, 0);
    guard_close(g);
}

/* ---- unlock ------------------------------------------------------------ */

static void
test_unlock(void **state)
{
    struct guard *g = gopen(NULL);
    struct guard_alert a;
    char p[33];
    uint32_t i;

    (void)state;
    account_of(p, 1);
    assert_int_equal(rd(g, p, ROLE_STUDENT, HOME, 1, 1, T0, &a), GUARD_ALLOW);
    assert_int_equal(rd(g, p, ROLE_STUDENT, HOME, 1, 2, T0, &a), GUARD_DENY);
    assert_string_equal(a.rule, "budget-1h");
    assert_int_equal(rd(g, p, ROLE_STUDENT, NAT, 1, 1, T0 + 2 * HOUR, &a), GUARD_DENY);
    assert_string_equal(a.rule, "locked-principal");

    assert_int_equal(guard_unlock(g, p), CF_OK);
    assert_int_equal(guard_principal_locked(g, p, NULL), 0);
    /* back, from zero: its own record again, from another address */
    assert_int_equal(rd(g, p, ROLE_STUDENT, NAT, 1, 1, T0 + 2 * HOUR, &a), GUARD_ALLOW);
    assert_int_equal(long_count(g, p, T0 + 2 * HOUR, NULL), 1);
    /* the address block is separate: it lasts, or is lifted on its own */
    assert_int_equal(rd(g, p, ROLE_STUDENT, HOME, 1, 1, T0 + MIN, &a), GUARD_DENY);
    assert_string_equal(a.rule, "blocked-address");
    assert_int_equal(guard_unblock_address(g, HOME), CF_OK);
    assert_int_equal(guard_unblock_address(g, HOME), CF_ERR_NOTFOUND);
    assert_int_equal(rd(g, p, ROLE_STUDENT, HOME, 1, 1, T0 + 2 * HOUR, &a), GUARD_ALLOW);
    /* an operator's block (or one restored from the store) */
    assert_int_equal(guard_block_address(g, NAT, T0, T0 + 10 * MIN), CF_OK);
    assert_int_equal(guard_block_address(g, NAT, T0, T0 + 5 * MIN), CF_OK);   /* keeps the later */
    assert_int_equal(guard_address_blocked(g, NAT, T0 + 10 * MIN - 1), 1);
    assert_int_equal(guard_address_blocked(g, NAT, T0 + 10 * MIN), 0);
    assert_int_equal(guard_block_address(g, NAT, T0, T0), CF_ERR_INPUT);
    assert_int_equal(guard_block_address(g, "bad addr", T0, T0 + 1), CF_ERR_INPUT);
    assert_int_equal(guard_block_address(g, NAT, -1, T0), CF_ERR_INPUT);
    assert_int_equal(guard_block_address(g, NAT, T0, GUARD_NOW_MAX_MS + 1), CF_ERR_INPUT);
    /* unlocking what is not locked says so */
    assert_int_equal(guard_unlock(g, p), CF_ERR_NOTFOUND);
    assert_int_equal(guard_unlock(g, ""), CF_ERR_INPUT);
    assert_int_equal(guard_unblock_address(g, NULL), CF_ERR_INPUT);
    /* the budget still holds after an unlock */
    assert_int_equal(rd(g, p, ROLE_STUDENT, HOME, 1, 3, T0 + 2 * HOUR, &a), GUARD_DENY);
    assert_string_equal(a.rule, "budget-1h");
    assert_int_equal(guard_alerts_total(g), 2);

    /* roles without record reads are locked at the first one */
    for (i = 0; i < 2; i++) {
        enum account_role r = i == 0 ? ROLE_ACADEMIE_ADMIN : ROLE_DPO;
        char addr[32];

        snprintf(addr, sizeof addr, "198.51.100.1%u", i);
        assert_int_equal(rd(g, account_of(p, 10 + i), r, addr, 1, 1, T0, &a), GUARD_DENY);
        assert_string_equal(a.rule, "budget-1h");
        assert_int_equal(a.count, 1);
        assert_int_equal(a.limit, 0);
    }
    /* a guardian: a handful */
    for (i = 0; i < 16; i++)
        assert_int_equal(rd(g, account_of(p, 20), ROLE_GUARDIAN, "198.51.100.2", 2, i, T0, &a),
                         GUARD_ALLOW);
    assert_int_equal(rd(g, p, ROLE_GUARDIAN, "198.51.100.2", 2, i, T0, &a), GUARD_DENY);
    assert_string_equal(a.rule, "budget-1h");
    assert_int_equal(a.count, 17);
    guard_close(g);
}

/* ---- bounds and eviction ---------------------------------------------- */

static void
test_bad_events(void **state)
{
    struct guard *g = gopen(NULL);
    struct guard_alert a;
    uint8_t id[GUARD_SUBJECT_BYTES], d[GUARD_DIGEST_MAX + 1];
    char p32[33], p33[34], a64[65], a65[66];
    struct guard_event ev;
    struct guard_stats st;

    (void)state;
    memset(p32, 'a', 32);
    p32[32] = '\0';
    memset(p33, 'a', 33);
    p33[33] = '\0';
    memset(a64, '1', 64);
    a64[64] = '\0';
    memset(a65, '1', 65);
    a65[65] = '\0';
    sid(id, 1, 1);
    memset(d, 7, sizeof d);
#define EV(P, R, A, S, D, L, T) do {                                 \
        ev.principal = (P); ev.role = (R); ev.addr = (A);              \
        ev.subject = (S); ev.lookup_digest = (D); ev.lookup_len = (L); \
        ev.now_ms = (T);                                               \
    } while (0)
#define BAD() do {                                                     \
        assert_int_equal(guard_check(g, &ev, &a), GUARD_DENY);         \
        assert_string_equal(a.rule, "bad-event");                      \
    } while (0)
#define GOOD() do {                                                    \
        assert_int_equal(guard_check(g, &ev, &a), GUARD_ALLOW);        \
        assert_string_equal(a.rule, "");                               \
    } while (0)
    EV(p32, ROLE_STAFF, a64, id, NULL, 0, T0);
    GOOD();
    EV(p33, ROLE_STAFF, NAT, id, NULL, 0, T0);
    BAD();
    EV(p32, ROLE_STAFF, a65, id, NULL, 0, T0);
    BAD();
    EV("", ROLE_STAFF, NAT, id, NULL, 0, T0);
    BAD();
    EV(NULL, ROLE_STAFF, NAT, id, NULL, 0, T0);
    BAD();
    EV(p32, ROLE_STAFF, NULL, id, NULL, 0, T0);
    BAD();
    EV("ab\ncd", ROLE_STAFF, NAT, id, NULL, 0, T0);
    BAD();
    EV(p32, ROLE_STAFF, "10.0.0.1 ", id, NULL, 0, T0);
    BAD();
    EV(p32, ROLE_COUNT, NAT, id, NULL, 0, T0);
    BAD();
    EV(p32, ROLE_STAFF, NAT, id, NULL, 0, -1);
    BAD();
    EV(p32, ROLE_STAFF, NAT, id, NULL, 0, 0);
    GOOD();
    EV(p32, ROLE_STAFF, NAT, id, NULL, 0, GUARD_NOW_MAX_MS);
    GOOD();
    EV(p32, ROLE_STAFF, NAT, id, NULL, 0, GUARD_NOW_MAX_MS + 1);
    BAD();
    EV(p32, ROLE_STAFF, NAT, id, d, 0, T0);
    BAD();
    EV(p32, ROLE_STAFF, NAT, id, d, 1, GUARD_NOW_MAX_MS);
    GOOD();
    EV(p32, ROLE_STAFF, NAT, id, d, GUARD_DIGEST_MAX, GUARD_NOW_MAX_MS);
    GOOD();
    EV(p32, ROLE_STAFF, NAT, id, d, GUARD_DIGEST_MAX + 1, T0);
    BAD();
    assert_int_equal(guard_check(g, NULL, &a), GUARD_DENY);
    assert_int_equal(guard_check(NULL, &ev, NULL), GUARD_DENY);
    /* a malformed event is a caller's bug: denied, nobody locked */
    assert_int_equal(guard_alerts_total(g), 0);
    guard_stats(g, &st);
    assert_int_equal(st.locks, 0);
    assert_int_equal(st.denied, 13);          /* and the NULL event */
    assert_int_equal(guard_address_blocked(g, "", T0), 1);     /* fail closed */
    assert_int_equal(guard_principal_locked(g, p33, NULL), 1);
    guard_close(g);
#undef EV
#undef BAD
#undef GOOD
}

static void
test_bounds_eviction(void **state)
{
    struct guard_opts o;
    struct guard *g;
    struct guard_alert a;
    struct guard_stats st;
    uint8_t canary[GUARD_SUBJECT_BYTES];
    char who[33], addr[32], rule[GUARD_RULE_MAX];
    uint32_t i, k;
    int r;

    (void)state;
    /* more principals and addresses than the tables hold */
    guard_opts_default(&o);
    o.max_principals = 4;
    o.max_addresses = 4;
    g = gopen(&o);
    sid(canary, 99, 1);
    assert_int_equal(guard_add_canary(g, canary), CF_OK);
    assert_int_equal(rd(g, account_of(who, 1), ROLE_TEACHER, "10.0.0.1", 99, 1, T0, &a), GUARD_DENY);
    for (i = 0; i < 40; i++) {
        snprintf(addr, sizeof addr, "10.1.0.%u", i);
        assert_int_equal(rd(g, account_of(who, 100 + i), ROLE_TEACHER, addr, 98, i, T0 + i, &a),
                         GUARD_ALLOW);
        guard_stats(g, &st);
        assert_true(st.principals <= 4);
        assert_true(st.addresses <= 4);
    }
    assert_true(st.evictions >= 2 * (40 - 4));
    /* evicting never unlocks */
    assert_int_equal(rd(g, account_of(who, 1), ROLE_TEACHER, "10.2.0.1", 98, 1, T0 + HOUR, &a), GUARD_DENY);
    assert_string_equal(a.rule, "locked-principal");
    guard_close(g);

    /* all entries together: trackers are evicted, never over the bound */
    guard_opts_default(&o);
    for (r = 0; r < ROLE_COUNT; r++) {
        o.role[r].short_max = 10;
        o.role[r].long_max = 20;
    }
    o.address.short_max = 50;
    o.address.long_max = 100;
    o.max_entries = 21 + 101;
    g = gopen(&o);
    for (k = 0; k < 100; k++)
        for (i = 0; i < 10; i++) {
            snprintf(addr, sizeof addr, "10.3.%u.1", k);
            assert_int_equal(rd(g, account_of(who, 200 + k), ROLE_TEACHER, addr, 97, k * 10 + i,
                                T0 + k, &a), GUARD_ALLOW);
            guard_stats(g, &st);
            assert_true(st.entries <= o.max_entries);
        }
    assert_true(st.evictions > 0);
    /* a tracker holds at most its budget + 1 entries; past that the
     * principal is locked and its entries freed */
    account_of(who, 300);
    for (i = 0; i < 20; i++)
        assert_int_equal(rd(g, who, ROLE_TEACHER, NAT, 96, i, T0 + i * 10 * MIN, &a), GUARD_ALLOW);
    {
        struct tracker *t = tracker_find(&g->principals, who,
                                         hash_bytes(g, 1, (const uint8_t *)who, strlen(who)));

        assert_non_null(t);
        assert_int_equal(t->live, 20);
        assert_true(t->cap <= 21);
    }
    assert_int_equal(rd(g, who, ROLE_TEACHER, NAT, 96, i, T0 + i * 10 * MIN, &a), GUARD_DENY);
    assert_string_equal(a.rule, "budget-24h");
    assert_int_equal(a.count, 21);
    assert_null(tracker_find(&g->principals, who,
                             hash_bytes(g, 1, (const uint8_t *)who, strlen(who))));
    guard_close(g);

    /* a full lock table: every read is denied rather than a lock forgotten */
    guard_opts_default(&o);
    o.max_locks = 2;
    g = gopen(&o);
    assert_int_equal(guard_add_canary(g, canary), CF_OK);
    for (i = 0; i < 2; i++) {
        snprintf(addr, sizeof addr, "10.4.0.%u", i);
        assert_int_equal(rd(g, account_of(who, 400 + i), ROLE_STAFF, addr, 99, 1, T0, &a), GUARD_DENY);
        assert_string_equal(a.rule, "canary");
    }
    assert_int_equal(rd(g, account_of(who, 500), ROLE_STAFF, NAT, 95, 1, T0, &a), GUARD_ALLOW);
    assert_int_equal(rd(g, account_of(who, 402), ROLE_STAFF, "10.4.0.2", 99, 1, T0, &a), GUARD_DENY);
    assert_string_equal(a.rule, "canary");
    guard_stats(g, &st);
    assert_true(st.saturated);
    assert_int_equal(rd(g, account_of(who, 500), ROLE_STAFF, NAT, 95, 1, T0, &a), GUARD_DENY);
    assert_string_equal(a.rule, "guard-saturated");
    assert_int_equal(guard_principal_locked(g, account_of(who, 402), rule), 1);
    assert_string_equal(rule, "guard-saturated");
    /* an unlock frees a slot but cannot bring back the lost lock */
    assert_int_equal(guard_unlock(g, account_of(who, 400)), CF_OK);
    assert_int_equal(rd(g, account_of(who, 402), ROLE_STAFF, NAT, 95, 1, T0, &a), GUARD_DENY);
    assert_string_equal(a.rule, "guard-saturated");
    guard_close(g);

    /* a full block table lifts the block that ends first */
    guard_opts_default(&o);
    o.max_blocks = 2;
    g = gopen(&o);
    assert_int_equal(guard_add_canary(g, canary), CF_OK);
    for (i = 0; i < 3; i++) {
        snprintf(addr, sizeof addr, "10.5.0.%u", i);
        assert_int_equal(rd(g, account_of(who, 600 + i), ROLE_STAFF, addr, 99, 1, T0 + i, &a), GUARD_DENY);
    }
    assert_int_equal(guard_address_blocked(g, "10.5.0.0", T0 + 3), 0);
    assert_int_equal(guard_address_blocked(g, "10.5.0.1", T0 + 3), 1);
    assert_int_equal(guard_address_blocked(g, "10.5.0.2", T0 + 3), 1);
    guard_stats(g, &st);
    assert_int_equal(st.blocks, 2);
    assert_int_equal(st.locks, 3);
    guard_close(g);

    /* block_ms 0: the principal is locked, the address is not blocked */
    guard_opts_default(&o);
    o.block_ms = 0;
    g = gopen(&o);
    assert_int_equal(guard_add_canary(g, canary), CF_OK);
    assert_int_equal(rd(g, account_of(who, 700), ROLE_STAFF, NAT, 99, 1, T0, &a), GUARD_DENY);
    assert_int_equal(guard_address_blocked(g, NAT, T0), 0);
    assert_int_equal(rd(g, account_of(who, 701), ROLE_STAFF, NAT, 94, 1, T0, &a), GUARD_ALLOW);
    guard_close(g);
}

/* ---- concurrency ------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 10000

struct worker {
    pthread_t th;
    struct guard *g;
    uint32_t id;
    int mode;
    uint32_t allowed, denied;
};

static void *
worker_run(void *arg)
{
    struct worker *w = arg;
    char who[33];
    char addr[32];
    uint32_t i, n = 0;

    snprintf(addr, sizeof addr, "10.9.0.%u", w->id);
    for (i = 0; i < PER_THREAD; i++) {
        enum guard_verdict v;

        switch (w->mode) {
        case 0:             /* one principal: 1,250 records each, read 8 times */
            v = rd(w->g, "5e45f1ce00000000000000000000000a", ROLE_SERVICE, NAT, 100,
                   w->id * 1250 + i % 1250, T0 + i, NULL);
            break;
        case 1:             /* one principal: every read a new record */
            v = rd(w->g, "5e45f1ce00000000000000000000000b", ROLE_SERVICE, NAT, 101,
                   w->id * PER_THREAD + i, T0 + i, NULL);
            break;
        default:            /* a principal and an address each */
            v = rd(w->g, account_of(who, 900 + w->id), ROLE_SERVICE, addr, 102 + w->id,
                   i % 1000, T0 + i, NULL);
            break;
        }
        n += v == GUARD_ALLOW;
    }
    w->allowed = n;
    w->denied = PER_THREAD - n;
    return NULL;
}

static void
run_workers(struct guard *g, int mode, uint32_t *allowed)
{
    struct worker w[THREADS];
    uint32_t i;

    *allowed = 0;
    for (i = 0; i < THREADS; i++) {
        w[i].g = g;
        w[i].id = i;
        w[i].mode = mode;
        assert_int_equal(pthread_create(&w[i].th, NULL, worker_run, &w[i]), 0);
    }
    for (i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(w[i].th, NULL), 0);
        *allowed += w[i].allowed;
    }
}

static void
test_concurrency(void **state)
{
    struct guard_opts o;
    struct guard *g;
    struct guard_stats st;
    uint32_t allowed, i;
    uint64_t s, l;
    char who[33], addr[32];

    (void)state;
    guard_opts_default(&o);
    o.role[ROLE_SERVICE].short_max = o.role[ROLE_SERVICE].long_max = 20000;
    o.address.short_max = o.address.long_max = 20000;
    g = gopen(&o);
    /* shared principal and address: no lost update, exactly 10,000 */
    run_workers(g, 0, &allowed);
    assert_int_equal(allowed, THREADS * PER_THREAD);
    guard_principal_counts(g, "5e45f1ce00000000000000000000000a", T0 + PER_THREAD, &s, &l);
    assert_int_equal(s, THREADS * 1250);
    assert_int_equal(l, THREADS * 1250);
    guard_address_counts(g, NAT, T0 + PER_THREAD, &s, &l);
    assert_int_equal(l, THREADS * 1250);
    guard_stats(g, &st);
    assert_int_equal(st.checks, THREADS * PER_THREAD);
    assert_int_equal(st.allowed, THREADS * PER_THREAD);

    /* separate principals and addresses: 1,000 each, all served */
    run_workers(g, 2, &allowed);
    assert_int_equal(allowed, THREADS * PER_THREAD);
    for (i = 0; i < THREADS; i++) {
        snprintf(addr, sizeof addr, "10.9.0.%u", i);
        guard_principal_counts(g, account_of(who, 900 + i), T0 + PER_THREAD, &s, &l);
        assert_int_equal(l, 1000);
        guard_address_counts(g, addr, T0 + PER_THREAD, &s, &l);
        assert_int_equal(l, 1000);
    }
    guard_close(g);

    /* crossing the budget from 8 threads at once: exactly the budget is
     * served, one alert, then the lock holds */
    o.role[ROLE_SERVICE].short_max = o.role[ROLE_SERVICE].long_max = 5000;
    g = gopen(&o);
    run_workers(g, 1, &allowed);
    assert_int_equal(allowed, 5000);
    assert_int_equal(guard_alerts_total(g), 1);
    assert_int_equal(guard_principal_locked(g, "5e45f1ce00000000000000000000000b", NULL), 1);
    guard_stats(g, &st);
    assert_int_equal(st.denied, THREADS * PER_THREAD - 5000);
    guard_close(g);
}

/* ---- allocation failures ----------------------------------------------- */

static void
test_alloc_failures(void **state)
{
    struct guard_opts o;
    struct guard *g;
    struct guard_alert a;
    struct cf_errmsg em = { "" };
    uint8_t canary[GUARD_SUBJECT_BYTES];
    char who[33];
    long k;
    int r, failed_some = 0, canary_ok;
    uint32_t i;
    enum guard_verdict v;

    (void)state;
    guard_opts_default(&o);
    for (r = 0; r < ROLE_COUNT; r++) {
        o.role[r].short_max = 40;
        o.role[r].long_max = 80;
    }
    o.address.short_max = o.address.long_max = 100;
    sid(canary, 120, 1);
    for (k = 0; k < 1000; k++) {
        guard_torture = k;
        g = NULL;
        if (guard_open(&o, &g, &em) != CF_OK) {
            assert_null(g);
            failed_some = 1;
            continue;
        }
        canary_ok = guard_add_canary(g, canary) == CF_OK;
        for (i = 0; i < 60; i++) {
            v = rd(g, account_of(who, i % 3), ROLE_TEACHER, i % 2 ? NAT : HOME, 121, i, T0 + i, &a);
            /* out of memory fails closed, never as a false alert */
            if (v == GUARD_DENY)
                assert_true(strcmp(a.rule, "guard-error") == 0 ||
                            strcmp(a.rule, "guard-saturated") == 0);
        }
        v = rd(g, account_of(who, 7), ROLE_TEACHER, "10.10.0.1", 120, 1, T0, &a);
        if (canary_ok) {
            assert_int_equal(v, GUARD_DENY);
            assert_int_equal(rd(g, account_of(who, 7), ROLE_TEACHER, "10.10.0.2", 121, 1, T0, &a),
                             GUARD_DENY);
        }
        guard_close(g);
        if (guard_torture >= 0)          /* every allocation succeeded */
            break;
    }
    guard_torture = -1;
    assert_true(failed_some);
    assert_true(k > 10 && k < 1000);
}

/* ---- the alert's log line --------------------------------------------- */

static void
test_alert_log(void **state)
{
    struct guard *g = gopen(NULL);
    struct guard_alert a;
    const char *dir = tu_tmpdir();
    char path[400], p[33], root[300];
    unsigned char *text;
    size_t len, lines = 0;
    int fd, saved;
    uint32_t i, b = guard_default_budget(ROLE_TEACHER).short_max;
    const char *s;

    (void)state;
    snprintf(root, sizeof root, "%s", dir);
    snprintf(path, sizeof path, "%s/stderr", root);
    account_of(p, 0xabc);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    saved = dup(STDERR_FILENO);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
    for (i = 0; i <= b + 10; i++)
        rd(g, p, ROLE_TEACHER, HOME, 0x77, 0x1000 + i, T0 + i, &a);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);

    text = tu_read(path, &len);
    assert_non_null(text);
    text[len] = '\0';
    for (s = (const char *)text; (s = strstr(s, "guard: alert")) != NULL; s++)
        lines++;
    assert_int_equal(lines, 1);                     /* one line per alert */
    assert_non_null(strstr((char *)text, "\"rule\":\"budget-1h\""));
    assert_non_null(strstr((char *)text, "\"principal\":\"00000000000000000000000000000abc\""));
    assert_non_null(strstr((char *)text, "\"addr\":\"2001:db8::42\""));
    assert_non_null(strstr((char *)text, "\"count\":\"601\""));
    assert_non_null(strstr((char *)text, "\"limit\":\"600\""));
    assert_non_null(strstr((char *)text, "\"level\":\"warn\""));
    /* no subject id, in any spelling */
    assert_null(strstr((char *)text, "5e000000"));
    assert_null(strstr((char *)text, "subject"));
    free(text);
    guard_close(g);
    tu_rmrf(root);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opts),
        cmocka_unit_test(test_teacher_day_allowed),
        cmocka_unit_test(test_scraper_stopped),
        cmocka_unit_test(test_enumeration),
        cmocka_unit_test(test_windows_slide),
        cmocka_unit_test(test_address_budget),
        cmocka_unit_test(test_canary),
        cmocka_unit_test(test_dry_run),
        cmocka_unit_test(test_unlock),
        cmocka_unit_test(test_bad_events),
        cmocka_unit_test(test_bounds_eviction),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_alert_log),
    };

    return cmocka_run_group_tests_name("guard", tests, NULL, NULL);
}
