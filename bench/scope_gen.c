/*
 * bench/scope_gen.c - writes N synthetic audit entries through the audit
 * module (audit_submit, group commit, signed checkpoints) into a fresh data
 * directory, and the same entries as JSON lines for grep: the data of
 * bench/scope.sh.
 *
 * The trail looks like a busy académie over a few days: 20,000 accounts
 * (actor i has one session per day), 5,000 client addresses, 2,000,000
 * people; reads of one record (fields opened) mostly, some class pages
 * (a class and 30 pupils), sign-ins, a few refusals.  Times advance by
 * 1..49 ms per entry (a deterministic xorshift), so 10M entries span about
 * three days.  No record exists in the store: scope counts the ids as not
 * people, which costs it the same lookups as real ones.
 *
 *   build/bench_scope_gen DIR N      (DIR must not exist)
 *
 * Prints on stdout: "base_ms LAST_MS" (the first and last entry times).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "audit.h"
#include "err.h"
#include "keyring.h"
#include "log.h"
#include "records.h"
#include "banned.h"

#define ENTRIES_MAX   20000000ULL
#define ACTORS        ((uint64_t)20000)
#define ADDRS         ((uint64_t)5000)
#define PEOPLE        ((uint64_t)2000000)
#define BASE_MS       1767225600000LL     /* 2026-01-01T00:00:00Z */
#define LIMIT_SLEEP_US 2000
#define LIMIT_RETRIES 100000

static atomic_uint_fast64_t done_n, bad_n;

static void
die(const char *what, const char *why)
{
    fprintf(stderr, "bench_scope_gen: %s%s%s\n", what, why ? ": " : "", why ? why : "");
    exit(1);
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint64_t
next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void
on_done(void *arg, enum cf_err rc)
{
    (void)arg;
    if (rc != CF_OK)
        atomic_fetch_add(&bad_n, 1);
    atomic_fetch_add(&done_n, 1);
}

/* Entry i at time t. */
static void
mk_entry(struct audit_entry *e, int64_t t)
{
    uint64_t r = next(), actor = r % ACTORS, kind = (r >> 20) % 100, k;
    size_t o;

    memset(e, 0, sizeof *e);
    e->time_ms = t;
    snprintf(e->actor, sizeof e->actor, "acct:%032" PRIx64, actor);
    snprintf(e->session, sizeof e->session, "%016" PRIx64 "%08" PRIx64, actor,
             (uint64_t)((t - BASE_MS) / 86400000));
    /* an actor mostly uses its own address */
    snprintf(e->addr, sizeof e->addr, "10.%u.%u.%u", (unsigned)(actor % ADDRS / 65536),
             (unsigned)(actor % ADDRS / 256 % 256), (unsigned)(actor % ADDRS % 256));
    snprintf(e->outcome, sizeof e->outcome, "%s", (r >> 40) % 20 == 0 ? "denied" : "ok");
    if (kind < 5) {
        snprintf(e->action, sizeof e->action, "login");
        return;
    }
    if (kind < 10) {
        snprintf(e->action, sizeof e->action, "class.students");
        o = (size_t)snprintf(e->subject, sizeof e->subject, "%032" PRIx64, PEOPLE + (r >> 8) % 4000);
        for (k = 0; k < 30; k++)
            o += (size_t)snprintf(e->subject + o, sizeof e->subject - o, ",%032" PRIx64,
                                  next() % PEOPLE);
        snprintf(e->fields, sizeof e->fields, "name,family_name,given_names,birth_date");
        return;
    }
    snprintf(e->action, sizeof e->action, kind < 60 ? "student.read" : "student.find");
    snprintf(e->subject, sizeof e->subject, "%032" PRIx64, (r >> 12) % PEOPLE);
    if (strcmp(e->outcome, "ok") == 0)
        snprintf(e->fields, sizeof e->fields, "ine,family_name,given_names,birth_date,address,email");
}

static void
json_line(FILE *f, const struct audit_entry *e, uint64_t seq)
{
    fprintf(f, "{\"seq\":%" PRIu64 ",\"time_ms\":%" PRId64 ",\"actor\":\"%s\",\"session\":\"%s\","
               "\"addr\":\"%s\",\"action\":\"%s\",\"subject\":\"%s\",\"fields\":\"%s\","
               "\"outcome\":\"%s\"}\n", seq, e->time_ms, e->actor, e->session, e->addr, e->action,
            e->subject, e->fields, e->outcome);
}

int
main(int argc, char **argv)
{
    static const char *const codes[] = { "10" };
    struct audit_opts o = { 100000, 1000, 262144, 65536 };
    struct cf_errmsg em = { "" };
    struct keyring *kr = NULL;
    struct audit *a = NULL;
    struct audit_entry e;
    uint8_t seed[KEYRING_SEED_BYTES];
    char path[4096];
    unsigned long long n, i;
    int64_t t = BASE_MS;
    FILE *jf;
    char *end;

    if (argc != 3)
        die("usage: bench_scope_gen DIR N", NULL);
    errno = 0;
    n = strtoull(argv[2], &end, 10);
    if (*end != '\0' || errno != 0 || n == 0 || n > ENTRIES_MAX)
        die("N: 1 to 20,000,000", NULL);
    if (sodium_init() < 0)
        die("libsodium", NULL);
    log_set_level(LOG_WARN);
    if (records_init(argv[1], codes, 1, seed, &em) != CF_OK)
        die("init", em.msg);
    sodium_memzero(seed, sizeof seed);
    snprintf(path, sizeof path, "%s/keyring", argv[1]);
    if (keyring_load(path, &kr, &em) != CF_OK || audit_open(argv[1], kr, &o, &a, &em) != CF_OK)
        die("audit", em.msg);
    snprintf(path, sizeof path, "%s/entries.jsonl", argv[1]);
    if ((jf = fopen(path, "w")) == NULL)
        die(path, strerror(errno));
    for (i = 0; i < n; i++) {
        int tries = 0;
        enum cf_err rc;

        t += 1 + (int64_t)(next() % 49);
        mk_entry(&e, t);
        while ((rc = audit_submit(a, &e, on_done, NULL)) == CF_ERR_LIMIT && tries++ < LIMIT_RETRIES)
            usleep(LIMIT_SLEEP_US);
        if (rc != CF_OK)
            die("audit_submit", cf_err_str(rc));
        json_line(jf, &e, i + 1);
        if ((i + 1) % 1000000 == 0)
            fprintf(stderr, "bench_scope_gen: %llu entries queued\n", i + 1);
    }
    audit_close(a);                 /* drains: every entry durable */
    keyring_free(kr);
    if (fclose(jf) != 0)
        die("entries.jsonl", strerror(errno));
    if (atomic_load(&bad_n) != 0 || atomic_load(&done_n) != n)
        die("some entries were not written", NULL);
    printf("%lld %lld\n", (long long)BASE_MS, (long long)t);
    return 0;
}
