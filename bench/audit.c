/*
 * bench/audit.c - durable audit entries per second with group commit, next
 * to one fsynced SQLite commit per entry, and audit_verify's speed.
 *
 * Measures, in one run:
 *   - raw: a bare SQLite table of the same columns (WAL, synchronous=FULL),
 *     one INSERT per transaction, so one fsync per entry;
 *   - audit_submit from 1, 8 and 64 threads: each thread queues its share
 *     with a done callback and does not wait; the time runs until the last
 *     callback said "durable" (group commit, checkpoints and keyring
 *     advances included, default options);
 *   - audit_append from 1, 8 and 64 threads: each thread waits for its
 *     entry to be durable before the next, as a request handler would;
 *   - audit_verify over the whole trail these runs wrote, without and with
 *     the auditor's seed.
 * Raw and coffre alternate within each of 3 runs after a warm-up; the table
 * shows the median and the min-max.  Markdown on stdout, progress on
 * stderr.  Everything lives in a mkdtemp directory under /tmp, removed at
 * the end.  Every loop has a fixed count.
 *
 *   build/bench_audit [--entries N] [--quick]
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "audit.h"
#include "err.h"
#include "keyring.h"
#include "log.h"
#include "bench.h"
#include "banned.h"

#define RUNS            3
#define ENTRIES_DEFAULT 50000ULL     /* audit_submit entries per timed run */
#define ENTRIES_QUICK   10000ULL
#define ENTRIES_MIN     1000ULL
#define ENTRIES_MAX     10000000ULL
#define RAW_COMMITS     2000         /* raw: fsynced commits per timed run */
#define CLOSED_TOTAL    3000         /* audit_append: entries per run, at least */
#define CLOSED_MIN_EACH 250          /* ... and per thread */
#define LIMIT_RETRIES   1000000      /* a full queue: back off at most this often */
#define NTHREADS        3

static const unsigned threads[NTHREADS] = { 1, 8, 64 };

static void
die(const char *what)
{
    fprintf(stderr, "bench_audit: %s\n", what);
    exit(1);
}

/* Per second over RUNS runs of `ops` each. */
static struct stat3
rate_of(const double *secs, const uint64_t *ops)
{
    double r[RUNS];
    int i;

    for (i = 0; i < RUNS; i++)
        r[i] = (double)ops[i] / secs[i];
    return stat_of(r, RUNS);
}

/* A realistic entry: a teacher's account reading one student's fields. */
static void
mk_entry(struct audit_entry *e, uint64_t i)
{
    memset(e, 0, sizeof *e);
    snprintf(e->actor, sizeof e->actor, "acct:%032llx", (unsigned long long)(i % 97));
    snprintf(e->session, sizeof e->session, "%016llx", (unsigned long long)(i % 389));
    snprintf(e->addr, sizeof e->addr, "198.51.100.%u", (unsigned)(i % 250));
    snprintf(e->action, sizeof e->action, "student.read");
    snprintf(e->subject, sizeof e->subject, "%032llx", (unsigned long long)i);
    snprintf(e->fields, sizeof e->fields, "family_name,given_names,birth_date");
    snprintf(e->outcome, sizeof e->outcome, "ok");
}

/* ---- coffre: submitters --------------------------------------------------- */

struct job {
    struct audit *a;
    unsigned nthreads;
    uint64_t each;
    int wait_each;                     /* audit_append instead of audit_submit */
    pthread_barrier_t go;
    atomic_uint_fast64_t done, bad;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

struct worker {
    struct job *j;
    unsigned id;
};

static void
job_done(void *arg, enum cf_err rc)
{
    struct job *j = arg;
    uint64_t n;

    if (rc != CF_OK)
        atomic_fetch_add(&j->bad, 1);
    n = atomic_fetch_add(&j->done, 1) + 1;
    if (n == j->each * j->nthreads) {
        pthread_mutex_lock(&j->mu);
        pthread_cond_signal(&j->cv);
        pthread_mutex_unlock(&j->mu);
    }
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct job *j = w->j;
    struct audit_entry e;
    struct cf_errmsg em = { "" };
    uint64_t i, retries = 0;
    enum cf_err rc;

    pthread_barrier_wait(&j->go);
    for (i = 0; i < j->each; i++) {
        mk_entry(&e, (uint64_t)w->id * j->each + i);
        if (j->wait_each) {
            if (audit_append(j->a, &e, &em) != CF_OK)
                atomic_fetch_add(&j->bad, 1);
            continue;
        }
        /* A full queue is the server's 503: here, back off and retry. */
        while ((rc = audit_submit(j->a, &e, job_done, j)) == CF_ERR_LIMIT &&
               retries++ < LIMIT_RETRIES)
            usleep(50);
        if (rc != CF_OK) {
            atomic_fetch_add(&j->bad, 1);
            job_done(j, CF_OK);           /* keep the count whole */
        }
    }
    return NULL;
}

/* Seconds from the start signal to the last entry made durable. */
static double
run_job(const char *dir, struct keyring *kr, unsigned nthreads, uint64_t each,
        int wait_each)
{
    static struct worker w[64];
    static pthread_t th[64];
    struct job j;
    struct cf_errmsg em = { "" };
    double t0, t;
    unsigned i;

    memset(&j, 0, sizeof j);
    j.nthreads = nthreads;
    j.each = each;
    j.wait_each = wait_each;
    atomic_init(&j.done, 0);
    atomic_init(&j.bad, 0);
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    pthread_barrier_init(&j.go, NULL, nthreads + 1);
    if (audit_open(dir, kr, NULL, &j.a, &em) != CF_OK) {
        fprintf(stderr, "bench_audit: %s\n", em.msg);
        exit(1);
    }
    for (i = 0; i < nthreads; i++) {
        w[i].j = &j;
        w[i].id = i;
        if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0)
            die("cannot start a thread");
    }
    pthread_barrier_wait(&j.go);
    t0 = now();
    if (wait_each) {
        for (i = 0; i < nthreads; i++)
            pthread_join(th[i], NULL);
    } else {
        pthread_mutex_lock(&j.mu);
        while (atomic_load(&j.done) < each * nthreads)
            pthread_cond_wait(&j.cv, &j.mu);
        pthread_mutex_unlock(&j.mu);
    }
    t = now() - t0;
    if (!wait_each)
        for (i = 0; i < nthreads; i++)
            pthread_join(th[i], NULL);
    audit_close(j.a);                  /* the final checkpoint is not timed */
    if (atomic_load(&j.bad) != 0)
        die("an entry was not made durable");
    pthread_barrier_destroy(&j.go);
    pthread_cond_destroy(&j.cv);
    pthread_mutex_destroy(&j.mu);
    return t;
}

/* ---- raw: one fsynced commit per entry ----------------------------------- */

static sqlite3 *
raw_open(const char *path)
{
    sqlite3 *db = NULL;

    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                     "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY,"
                     " time_ms INTEGER, actor TEXT, session TEXT, addr TEXT, action TEXT,"
                     " subject TEXT, fields TEXT, outcome TEXT, hash BLOB)",
                     NULL, NULL, NULL) != SQLITE_OK)
        die("raw: cannot open the database");
    return db;
}

static double
raw_run(sqlite3 *db, unsigned n)
{
    sqlite3_stmt *s;
    struct audit_entry e;
    uint8_t hash[32];
    double t0;
    unsigned i;

    if (sqlite3_prepare_v2(db, "INSERT INTO entries (time_ms, actor, session, addr, action,"
                           " subject, fields, outcome, hash) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                           -1, &s, NULL) != SQLITE_OK)
        die("raw: cannot prepare");
    t0 = now();
    for (i = 0; i < n; i++) {
        mk_entry(&e, i);
        randombytes_buf(hash, sizeof hash);
        sqlite3_bind_int64(s, 1, (sqlite3_int64)time(NULL) * 1000);
        sqlite3_bind_text(s, 2, e.actor, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, e.session, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, e.addr, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 5, e.action, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 6, e.subject, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 7, e.fields, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 8, e.outcome, -1, SQLITE_STATIC);
        sqlite3_bind_blob(s, 9, hash, sizeof hash, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE)       /* autocommit: one fsync */
            die("raw: insert failed");
        sqlite3_reset(s);
    }
    t0 = now() - t0;
    sqlite3_finalize(s);
    return t0;
}

/* ---- set-up --------------------------------------------------------------- */

static void
remove_dir(const char *dir)
{
    char p[512];
    DIR *d = opendir(dir);
    struct dirent *de;

    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            if (unlink(p) != 0)
                fprintf(stderr, "bench_audit: warning: could not remove %s\n", p);
        }
        closedir(d);
    }
    if (rmdir(dir) != 0)
        fprintf(stderr, "bench_audit: warning: could not remove %s\n", dir);
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: bench_audit [--entries N] [--quick]\n"
            "  --entries N  audit_submit entries per timed run (default %llu, %llu..%llu)\n"
            "  --quick      %llu entries per run\n",
            ENTRIES_DEFAULT, ENTRIES_MIN, ENTRIES_MAX, ENTRIES_QUICK);
    exit(2);
}

static void
row(const char *what, unsigned nthreads, const double *secs, const uint64_t *ops,
    const struct stat3 *raw)
{
    char a[128];
    struct stat3 r = rate_of(secs, ops);

    if (raw != NULL)
        printf("| %s | %u | %s | %.1f× |\n", what, nthreads, fmt_rate(a, sizeof a, r),
               r.med / raw->med);
    else
        printf("| %s | %u | %s | — |\n", what, nthreads, fmt_rate(a, sizeof a, r));
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    static double t_async[NTHREADS][RUNS], t_closed[NTHREADS][RUNS];
    static uint64_t n_async[NTHREADS][RUNS], n_closed[NTHREADS][RUNS];
    double t_raw[RUNS], t_v[RUNS], t_vs[RUNS], t0;
    uint64_t n_raw[RUNS], n_v[RUNS], n_vs[RUNS], entries = ENTRIES_DEFAULT;
    char dir[] = "/tmp/coffre-bench-audit.XXXXXX", krpath[64], rawpath[64], ib[32], ic[32];
    uint8_t seed[KEYRING_SEED_BYTES];
    const char *codes[] = { "10" };
    struct keyring *kr = NULL;
    struct cf_errmsg em = { "" };
    struct audit_report rep;
    struct stat3 raw;
    sqlite3 *rdb;
    int a, run, k;

    for (a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--entries") == 0 && a + 1 < argc) {
            if (parse_u64(argv[++a], ENTRIES_MIN, ENTRIES_MAX, &entries) != 0)
                usage();
        } else if (strcmp(argv[a], "--quick") == 0)
            entries = ENTRIES_QUICK;
        else
            usage();
    }
    if (sodium_init() < 0)
        die("libsodium failed to initialise");
    log_set_level(LOG_WARN);                  /* no checkpoint lines */
    if (mkdtemp(dir) == NULL)
        die("cannot create a temporary directory under /tmp");
    snprintf(krpath, sizeof krpath, "%s/keyring", dir);
    snprintf(rawpath, sizeof rawpath, "%s/raw.db", dir);
    if (keyring_create(krpath, codes, 1, seed, &em) != CF_OK ||
        keyring_load(krpath, &kr, &em) != CF_OK) {
        fprintf(stderr, "bench_audit: keyring: %s\n", em.msg);
        remove_dir(dir);
        return 1;
    }
    rdb = raw_open(rawpath);

    fprintf(stderr, "bench_audit: %s entries per audit_submit run, %d runs, SQLite %s, in %s\n",
            fmt_int(ib, sizeof ib, entries), RUNS, sqlite3_libversion(), dir);
    fprintf(stderr, "bench_audit: warm-up\n");
    (void)raw_run(rdb, RAW_COMMITS / 10);
    (void)run_job(dir, kr, 8, 250, 0);
    for (run = 0; run < RUNS; run++) {
        fprintf(stderr, "bench_audit: run %d/%d\n", run + 1, RUNS);
        n_raw[run] = RAW_COMMITS;
        t_raw[run] = raw_run(rdb, RAW_COMMITS);
        for (k = 0; k < NTHREADS; k++) {
            uint64_t each = (entries + threads[k] - 1) / threads[k];

            n_async[k][run] = each * threads[k];
            t_async[k][run] = run_job(dir, kr, threads[k], each, 0);
        }
        for (k = 0; k < NTHREADS; k++) {
            uint64_t each = (CLOSED_TOTAL + threads[k] - 1) / threads[k];

            if (each < CLOSED_MIN_EACH)
                each = CLOSED_MIN_EACH;
            n_closed[k][run] = each * threads[k];
            t_closed[k][run] = run_job(dir, kr, threads[k], each, 1);
        }
    }
    sqlite3_close(rdb);

    fprintf(stderr, "bench_audit: verify\n");
    for (run = 0; run < RUNS; run++) {
        t0 = now();
        if (audit_verify(dir, NULL, NULL, &rep, &em) != CF_OK)
            die(em.msg);
        t_v[run] = now() - t0;
        n_v[run] = rep.entries;
        t0 = now();
        if (audit_verify(dir, NULL, seed, &rep, &em) != CF_OK)
            die(em.msg);
        t_vs[run] = now() - t0;
        n_vs[run] = rep.entries;
    }
    sodium_memzero(seed, sizeof seed);
    fprintf(stderr, "bench_audit: trail of %s entries, %s checkpoints\n",
            fmt_int(ib, sizeof ib, rep.entries),
            fmt_int(ic, sizeof ic, rep.checkpoints));

    raw = rate_of(t_raw, n_raw);
    printf("| durable audit entries (%d runs) | threads | entries/s: median (min–max) | vs raw |\n",
           RUNS);
    printf("|---|---:|---:|---:|\n");
    row("raw SQLite: one fsynced commit per entry (WAL, synchronous=FULL)", 1, t_raw, n_raw, &raw);
    for (k = 0; k < NTHREADS; k++)
        row("coffre `audit_submit`: queue and go on, done callback when durable",
            threads[k], t_async[k], n_async[k], &raw);
    for (k = 0; k < NTHREADS; k++)
        row("coffre `audit_append`: each thread waits until its entry is durable",
            threads[k], t_closed[k], n_closed[k], &raw);
    row("`audit_verify` of the whole trail, without the seed", 1, t_v, n_v, NULL);
    row("`audit_verify` of the whole trail, with the auditor's seed", 1, t_vs, n_vs, NULL);

    keyring_free(kr);
    remove_dir(dir);
    return 0;
}
