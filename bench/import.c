/*
 * bench/import.c - a sealed bulk import through the records API next to a
 * naive SQLite load of the same rows, and INE lookups.
 *
 * Each run, side by side:
 *   coffre  records_init (académie "10") + records_open, then demo_generate
 *           with N/1000 establishments of 1000 students, one guardian each:
 *           students, guardians, guardian links, classes and staff, every
 *           field validated, normalised and sealed, in one transaction.
 *           Timed: demo_generate (begin, every records_add, commit); the
 *           commit's share is the time after demo_generate's last per-row
 *           callback.
 *   naive   sqlite3 directly (WAL, synchronous=NORMAL, default cache): one
 *           table per record kind with the same row count as coffre wrote,
 *           each row a random 16-byte key under a UNIQUE index created
 *           beforehand and a blob as large as coffre's average row payload
 *           in that table (sealed fields + parent ids + blind indexes +
 *           compartment, measured on coffre's store), 1,000 rows per
 *           transaction.  Timed: first BEGIN to last COMMIT.
 * Then, on the last run's stores (warmed by one untimed pass):
 *           records_find(REC_STUDENT, "ine") opening every field, for
 *           existing INEs (INE-BEA 999000000 + serial, serial < N, as the
 *           demo generator makes them) and absent ones; the naive side
 *           selects a row by its key.
 * Medians of the runs with min-max.  Markdown table on stdout, progress on
 * stderr.  Everything lives in a mkdtemp directory under /tmp, removed at
 * the end.
 *
 *   build/bench_import [--students N | --quick] [--runs R]
 *                      [--lookups K] [--misses M] [--keep]
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "bounds.h"
#include "demo.h"
#include "err.h"
#include "ids.h"
#include "records.h"
#include "bench.h"
#include "banned.h"

#define STUDENTS_DEFAULT 1000000ULL
#define STUDENTS_QUICK   100000ULL
#define STUDENTS_PER     1000ULL
#define RUNS_DEFAULT     3ULL
#define RUNS_MAX         5
#define LOOKUPS_DEFAULT  100000ULL
#define MISSES_DEFAULT   10000ULL
#define LOOKUPS_MAX      10000000ULL
#define NAIVE_TXN_ROWS   1000
#define PAYLOAD_POOL     (1u << 20)      /* random bytes the naive blobs are cut from */
#define KEY_BYTES        16
#define DEMO_SEED        20240901ULL
/* Absent INEs: serials drawn from [N, N + ABSENT_SPAN). */
#define ABSENT_SPAN      10000000U

static volatile uint8_t sink;

/* The store's record tables, in the order the naive load fills them. */
static const char *const tables[] = {
    "establishments", "classes", "staff", "students", "guardians", "guardian_links",
};
#define T_STUDENTS 3
#define NTABLES (sizeof tables / sizeof tables[0])

static void
die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_import: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static struct stat3
rate_of(const double *secs, int n, uint64_t ops)
{
    double r[RUNS_MAX];
    int i;

    for (i = 0; i < n; i++)
        r[i] = (double)ops / secs[i];
    return stat_of(r, n);
}

static const char *
fmt_secs(char *buf, size_t cap, struct stat3 s)
{
    snprintf(buf, cap, "%.2f (%.2f–%.2f)", s.med, s.min, s.max);
    return buf;
}

/* ---- files -------------------------------------------------------------- */

static uint64_t
file_size(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* Size of a SQLite database with its -wal and -shm files. */
static uint64_t
db_size(const char *path)
{
    char p[4096];
    uint64_t n = file_size(path);

    snprintf(p, sizeof p, "%s-wal", path);
    n += file_size(p);
    snprintf(p, sizeof p, "%s-shm", path);
    return n + file_size(p);
}

/* Removes path: a file, or a directory holding files and directories of
 * files (what this program makes: two levels at most).  Refuses anything
 * outside /tmp. */
static void
rm_tree(const char *path, int depth)
{
    struct stat sb;
    DIR *d;
    struct dirent *e;
    char p[4096];

    if (strncmp(path, "/tmp/", 5) != 0 || lstat(path, &sb) != 0)
        return;
    if (!S_ISDIR(sb.st_mode)) {
        if (unlink(path) != 0)
            fprintf(stderr, "bench_import: warning: cannot remove %s\n", path);
        return;
    }
    if (depth > 2 || (d = opendir(path)) == NULL) {
        fprintf(stderr, "bench_import: warning: cannot remove %s\n", path);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        rm_tree(p, depth + 1);
    }
    closedir(d);
    if (rmdir(path) != 0)
        fprintf(stderr, "bench_import: warning: cannot remove %s\n", path);
}

/* ---- sqlite helpers ----------------------------------------------------- */

static void
xexec(sqlite3 *db, const char *sql)
{
    char *err = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        die(sql, err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
}

static sqlite3_stmt *
xprepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;

    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        die(sql, sqlite3_errmsg(db));
    return s;
}

static sqlite3 *
xopen(const char *path, int flags)
{
    sqlite3 *db = NULL;

    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK)
        die("sqlite3_open_v2", db ? sqlite3_errmsg(db) : path);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* Random bytes taken from a pool refilled 4 KiB at a time. */
struct pool {
    uint8_t buf[4096];
    size_t used;
};

static const uint8_t *
pool_take(struct pool *p, size_t n)
{
    const uint8_t *out;

    if (p->used + n > sizeof p->buf) {
        randombytes_buf(p->buf, sizeof p->buf);
        p->used = 0;
    }
    out = p->buf + p->used;
    p->used += n;
    return out;
}

/* ---- the two loads ------------------------------------------------------ */

struct shape {                      /* what coffre wrote, per table */
    uint64_t rows[NTABLES];
    size_t payload[NTABLES];        /* average bytes per row besides the id */
    double fields[NTABLES];         /* average sealed-fields blob */
    uint64_t total;
};

struct cfg {
    uint64_t students, lookups, misses;
    int runs, keep;
    char top[64];
};

static uint64_t
counts_total(const struct demo_counts *n)
{
    return n->establishments + n->classes + n->students + n->guardians + n->links + n->staff;
}

/* demo_generate calls this after each record it adds: the time of the
 * last call splits the import into adding rows and committing. */
static void
on_record(void *arg, const struct record_add *in, const char *id)
{
    (void)in;
    (void)id;
    *(double *)arg = now();
}

/* One coffre import into top/coffre-<run>; returns seconds, and in *commit
 * the part after the last row was added (the commit). */
static double
coffre_load(const struct cfg *cfg, int run, struct demo_counts *counts,
            uint64_t *bytes, double *commit)
{
    char dir[128], db[160];
    const char *codes[] = { "10" };
    uint8_t seed[32];
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    struct demo_opts o = {
        .academie = "10",
        .establishments = (unsigned)(cfg->students / STUDENTS_PER),
        .students_per = (unsigned)STUDENTS_PER,
        .guardians_per = 1,
        .seed = DEMO_SEED,
        .first_establishment = 0,
    };
    double t0, t, last = 0;

    snprintf(dir, sizeof dir, "%s/coffre-%d", cfg->top, run);
    snprintf(db, sizeof db, "%s/coffre.db", dir);
    if (records_init(dir, codes, 1, seed, &em) != CF_OK)
        die("records_init", em.msg);
    sodium_memzero(seed, sizeof seed);
    if (records_open(dir, NULL, &r, &em) != CF_OK)
        die("records_open", em.msg);
    t0 = now();
    if (demo_generate(r, &o, on_record, &last, counts, &em) != CF_OK)
        die("demo_generate", em.msg);
    t = now();
    *commit = t - last;
    t -= t0;
    records_close(r);
    *bytes = db_size(db);
    return t;
}

/* Row counts and average payloads of coffre's store, for the naive load. */
static void
measure_shape(const struct cfg *cfg, int run, struct shape *sh)
{
    char path[160], sql[512], a[32];
    sqlite3 *db;
    size_t t;

    snprintf(path, sizeof path, "%s/coffre-%d/coffre.db", cfg->top, run);
    db = xopen(path, SQLITE_OPEN_READWRITE);     /* WAL: a reader needs -shm */
    sh->total = 0;
    for (t = 0; t < NTABLES; t++) {
        sqlite3_stmt *s;

        snprintf(sql, sizeof sql,
                 "SELECT count(*), coalesce(avg(length(fields) + length(compartment)"
                 " + coalesce(length(p0), 0) + coalesce(length(p1), 0)"
                 " + coalesce(length(idx0), 0) + coalesce(length(idx1), 0)), 0),"
                 " coalesce(avg(length(fields)), 0) FROM %s", tables[t]);
        s = xprepare(db, sql);
        if (sqlite3_step(s) != SQLITE_ROW)
            die("measuring coffre's rows", sqlite3_errmsg(db));
        sh->rows[t] = (uint64_t)sqlite3_column_int64(s, 0);
        sh->payload[t] = (size_t)(sqlite3_column_double(s, 1) + 0.5);
        sh->fields[t] = sqlite3_column_double(s, 2);
        sh->total += sh->rows[t];
        sqlite3_finalize(s);
        fprintf(stderr, "bench_import:   %-15s %10s rows, %4zu B payload per row "
                "(sealed fields %.0f B)\n", tables[t], fmt_int(a, sizeof a, sh->rows[t]),
                sh->payload[t], sh->fields[t]);
    }
    sqlite3_close(db);
}

/* The naive load into top/naive-<run>.db; returns seconds. */
static double
naive_load(const struct cfg *cfg, int run, const struct shape *sh,
           const uint8_t *payload_pool, uint64_t *bytes)
{
    static struct pool keys;
    char path[128], sql[256];
    sqlite3 *db;
    sqlite3_stmt *ins[NTABLES];
    uint64_t i, off = 0, intx = 0;
    size_t t;
    double t0, secs;

    snprintf(path, sizeof path, "%s/naive-%d.db", cfg->top, run);
    db = xopen(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    xexec(db, "PRAGMA journal_mode = WAL");
    xexec(db, "PRAGMA synchronous = NORMAL");
    for (t = 0; t < NTABLES; t++) {
        snprintf(sql, sizeof sql, "CREATE TABLE t_%s (k BLOB NOT NULL, v BLOB NOT NULL)",
                 tables[t]);
        xexec(db, sql);
        snprintf(sql, sizeof sql, "CREATE UNIQUE INDEX t_%s_k ON t_%s(k)", tables[t],
                 tables[t]);
        xexec(db, sql);
        snprintf(sql, sizeof sql, "INSERT INTO t_%s (k, v) VALUES (?1, ?2)", tables[t]);
        ins[t] = xprepare(db, sql);
    }
    keys.used = sizeof keys.buf;

    t0 = now();
    for (t = 0; t < NTABLES; t++) {
        size_t plen = sh->payload[t];

        if (plen > PAYLOAD_POOL / 2)
            die("naive load", "payload larger than the random pool");
        for (i = 0; i < sh->rows[t]; i++) {
            if (intx == 0)
                xexec(db, "BEGIN");
            off = (off + 4099) % (PAYLOAD_POOL - plen);
            sqlite3_bind_blob(ins[t], 1, pool_take(&keys, KEY_BYTES), KEY_BYTES,
                              SQLITE_STATIC);
            sqlite3_bind_blob(ins[t], 2, payload_pool + off, (int)plen, SQLITE_STATIC);
            if (sqlite3_step(ins[t]) != SQLITE_DONE)
                die("naive insert", sqlite3_errmsg(db));
            sqlite3_reset(ins[t]);
            if (++intx == NAIVE_TXN_ROWS) {
                xexec(db, "COMMIT");
                intx = 0;
            }
        }
    }
    if (intx != 0)
        xexec(db, "COMMIT");
    secs = now() - t0;

    for (t = 0; t < NTABLES; t++)
        sqlite3_finalize(ins[t]);
    if (sqlite3_close(db) != SQLITE_OK)
        die("naive close", path);
    *bytes = db_size(path);
    return secs;
}

/* ---- lookups ------------------------------------------------------------ */

struct ines {
    char (*v)[INE_BYTES + 1];
    uint64_t n;
};

static void
make_ines(struct ines *l, uint64_t n, uint64_t base, uint32_t span)
{
    uint64_t i;

    l->v = malloc(n * sizeof *l->v);
    if (l->v == NULL)
        die("out of memory", NULL);
    l->n = n;
    for (i = 0; i < n; i++) {
        struct ine ine;

        if (ids_make_ine_bea(999000000ULL + base + randombytes_uniform(span), &ine) != CF_OK)
            die("ids_make_ine_bea", "serial out of range");
        memcpy(l->v[i], ine.s, sizeof l->v[i]);
    }
}

/* records_find for every INE in l; present says what to expect. */
static double
coffre_lookups(struct records *r, const struct ines *l, int present)
{
    static struct record rec;
    struct cf_errmsg em;
    uint64_t i;
    double t0 = now();

    for (i = 0; i < l->n; i++) {
        enum cf_err rc = records_find(r, REC_STUDENT, "ine", l->v[i], RECORD_ALL_FIELDS,
                                      &rec, &em);

        if (present) {
            if (rc != CF_OK)
                die("records_find of a present INE", em.msg);
            if (strcmp(rec.value[0], l->v[i]) != 0)
                die("records_find", "returned another student");
            sink ^= (uint8_t)rec.value[1][0];
        } else if (rc != CF_ERR_NOTFOUND)
            die("records_find of an absent INE", rc == CF_OK ? "found" : em.msg);
    }
    return now() - t0;
}

struct keys {
    uint8_t (*v)[KEY_BYTES];
    uint64_t n;
};

/* SELECT by key for every key in l; present says what to expect. */
static double
naive_lookups(sqlite3 *db, sqlite3_stmt *s, const struct keys *l, int present)
{
    uint64_t i;
    double t0 = now();

    for (i = 0; i < l->n; i++) {
        int step;

        sqlite3_bind_blob(s, 1, l->v[i], KEY_BYTES, SQLITE_STATIC);
        step = sqlite3_step(s);
        if (present) {
            const uint8_t *v;

            if (step != SQLITE_ROW)
                die("naive lookup of a present key", sqlite3_errmsg(db));
            v = sqlite3_column_blob(s, 0);
            sink ^= v[sqlite3_column_bytes(s, 0) - 1];
        } else if (step != SQLITE_DONE)
            die("naive lookup of an absent key", step == SQLITE_ROW ? "found" : sqlite3_errmsg(db));
        sqlite3_reset(s);
    }
    return now() - t0;
}

/* Keys of random existing rows of t_students, and random absent keys. */
static void
naive_keys(sqlite3 *db, uint64_t nrows, struct keys *hit, uint64_t nhit,
           struct keys *miss, uint64_t nmiss)
{
    sqlite3_stmt *s = xprepare(db, "SELECT k FROM t_students WHERE rowid = ?1");
    uint64_t i;

    hit->v = malloc(nhit * sizeof *hit->v);
    miss->v = malloc(nmiss * sizeof *miss->v);
    if (hit->v == NULL || miss->v == NULL)
        die("out of memory", NULL);
    hit->n = nhit;
    miss->n = nmiss;
    for (i = 0; i < nhit; i++) {
        sqlite3_bind_int64(s, 1, 1 + (sqlite3_int64)randombytes_uniform((uint32_t)nrows));
        if (sqlite3_step(s) != SQLITE_ROW || sqlite3_column_bytes(s, 0) != KEY_BYTES)
            die("reading naive keys", sqlite3_errmsg(db));
        memcpy(hit->v[i], sqlite3_column_blob(s, 0), KEY_BYTES);
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    randombytes_buf(miss->v, nmiss * sizeof *miss->v);
}

/* ---- main --------------------------------------------------------------- */

static void
usage(void)
{
    fprintf(stderr,
            "usage: bench_import [--students N | --quick] [--runs R] [--lookups K]\n"
            "                    [--misses M] [--keep]\n"
            "  --students N  students to import, a multiple of %llu, %llu..%llu\n"
            "                (default %llu)\n"
            "  --quick       --students %llu\n"
            "  --runs R      import runs, 1..%d (default %llu); lookups are timed 3 times\n"
            "  --lookups K   INE lookups of present students (default %llu)\n"
            "  --misses M    INE lookups of absent students (default %llu)\n"
            "  --keep        leave the temporary directory in place\n",
            STUDENTS_PER, STUDENTS_PER, (unsigned long long)DEMO_MAX_ESTABLISHMENTS * STUDENTS_PER,
            STUDENTS_DEFAULT, STUDENTS_QUICK, RUNS_MAX, RUNS_DEFAULT, LOOKUPS_DEFAULT,
            MISSES_DEFAULT);
    exit(2);
}

#define LOOKUP_RUNS 3

int
main(int argc, char **argv)
{
    static struct cfg cfg;
    static struct shape sh;
    struct demo_counts counts[RUNS_MAX];
    double tc[RUNS_MAX], tn[RUNS_MAX], tcommit[RUNS_MAX];
    double lc_hit[LOOKUP_RUNS], lc_miss[LOOKUP_RUNS], ln_hit[LOOKUP_RUNS], ln_miss[LOOKUP_RUNS];
    uint64_t size_c = 0, size_n = 0, v;
    uint8_t *payload_pool;
    struct ines hit, miss;
    struct keys nhit, nmiss;
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    sqlite3 *db;
    sqlite3_stmt *sel;
    char path[160], a[96], b[96], c[96];
    struct stat3 sc, sn, rc3, rn3;
    int i, run;

    cfg.students = STUDENTS_DEFAULT;
    cfg.runs = (int)RUNS_DEFAULT;
    cfg.lookups = LOOKUPS_DEFAULT;
    cfg.misses = MISSES_DEFAULT;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--students") == 0 && i + 1 < argc) {
            if (parse_u64(argv[++i], STUDENTS_PER,
                          (uint64_t)DEMO_MAX_ESTABLISHMENTS * STUDENTS_PER, &cfg.students) != 0 ||
                cfg.students % STUDENTS_PER != 0)
                usage();
        } else if (strcmp(argv[i], "--quick") == 0)
            cfg.students = STUDENTS_QUICK;
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            if (parse_u64(argv[++i], 1, RUNS_MAX, &v) != 0)
                usage();
            cfg.runs = (int)v;
        } else if (strcmp(argv[i], "--lookups") == 0 && i + 1 < argc) {
            if (parse_u64(argv[++i], 1, LOOKUPS_MAX, &cfg.lookups) != 0)
                usage();
        } else if (strcmp(argv[i], "--misses") == 0 && i + 1 < argc) {
            if (parse_u64(argv[++i], 1, LOOKUPS_MAX, &cfg.misses) != 0)
                usage();
        } else if (strcmp(argv[i], "--keep") == 0)
            cfg.keep = 1;
        else
            usage();
    }
    if (sodium_init() < 0)
        die("libsodium failed to initialise", NULL);
    snprintf(cfg.top, sizeof cfg.top, "/tmp/coffre-bench-import.XXXXXX");
    if (mkdtemp(cfg.top) == NULL)
        die("cannot create a temporary directory under /tmp", strerror(errno));
    payload_pool = malloc(PAYLOAD_POOL);
    if (payload_pool == NULL)
        die("out of memory", NULL);
    randombytes_buf(payload_pool, PAYLOAD_POOL);
    fprintf(stderr, "bench_import: %s students, %d run(s), in %s (SQLite %s)\n",
            fmt_int(a, sizeof a, cfg.students), cfg.runs, cfg.top, sqlite3_libversion());

    for (run = 0; run < cfg.runs; run++) {
        fprintf(stderr, "bench_import: run %d/%d: coffre import...\n", run + 1, cfg.runs);
        tc[run] = coffre_load(&cfg, run, &counts[run], &size_c, &tcommit[run]);
        fprintf(stderr, "bench_import:   %.2f s (commit %.2f s), %s rows, store %.1f MiB\n",
                tc[run], tcommit[run], fmt_int(a, sizeof a, counts_total(&counts[run])),
                (double)size_c / 1048576.0);
        if (run == 0)
            measure_shape(&cfg, run, &sh);
        if (counts_total(&counts[run]) != sh.total)
            die("row counts differ between demo_counts and the store", NULL);
        fprintf(stderr, "bench_import: run %d/%d: naive load...\n", run + 1, cfg.runs);
        tn[run] = naive_load(&cfg, run, &sh, payload_pool, &size_n);
        fprintf(stderr, "bench_import:   %.2f s, database %.1f MiB\n", tn[run],
                (double)size_n / 1048576.0);
        if (run + 1 < cfg.runs) {           /* keep the last run's stores for lookups */
            snprintf(path, sizeof path, "%s/coffre-%d", cfg.top, run);
            rm_tree(path, 1);
            snprintf(path, sizeof path, "%s/naive-%d.db", cfg.top, run);
            rm_tree(path, 1);
        }
    }

    /* Lookups on the last run's stores: warm-up pass, then 3 timed runs
     * of each kind, coffre and naive alternating. */
    fprintf(stderr, "bench_import: lookups: %s present, %s absent\n",
            fmt_int(a, sizeof a, cfg.lookups), fmt_int(b, sizeof b, cfg.misses));
    make_ines(&hit, cfg.lookups, 0, (uint32_t)cfg.students);
    make_ines(&miss, cfg.misses, cfg.students, ABSENT_SPAN);
    snprintf(path, sizeof path, "%s/coffre-%d", cfg.top, cfg.runs - 1);
    if (records_open(path, NULL, &r, &em) != CF_OK)
        die("records_open", em.msg);
    snprintf(path, sizeof path, "%s/naive-%d.db", cfg.top, cfg.runs - 1);
    db = xopen(path, SQLITE_OPEN_READWRITE);
    xexec(db, "PRAGMA journal_mode = WAL");
    sel = xprepare(db, "SELECT v FROM t_students WHERE k = ?1");
    naive_keys(db, sh.rows[T_STUDENTS], &nhit, cfg.lookups, &nmiss, cfg.misses);
    coffre_lookups(r, &hit, 1);
    coffre_lookups(r, &miss, 0);
    naive_lookups(db, sel, &nhit, 1);
    naive_lookups(db, sel, &nmiss, 0);
    for (run = 0; run < LOOKUP_RUNS; run++) {
        lc_hit[run] = coffre_lookups(r, &hit, 1);
        ln_hit[run] = naive_lookups(db, sel, &nhit, 1);
        lc_miss[run] = coffre_lookups(r, &miss, 0);
        ln_miss[run] = naive_lookups(db, sel, &nmiss, 0);
    }
    records_close(r);
    sqlite3_finalize(sel);
    sqlite3_close(db);

    /* The table. */
    printf("| %s students (%d import run%s, lookups: 3 runs) | coffre | naive SQLite | coffre/naive |\n",
           fmt_int(a, sizeof a, cfg.students), cfg.runs, cfg.runs > 1 ? "s" : "");
    printf("|---|---:|---:|---:|\n");
    printf("| rows written (all kinds) | %s | %s | |\n", fmt_int(a, sizeof a, counts_total(&counts[0])),
           fmt_int(b, sizeof b, sh.total));
    sc = stat_of(tc, cfg.runs);
    sn = stat_of(tn, cfg.runs);
    printf("| load time, s: median (min–max) | %s | %s | %.2f |\n", fmt_secs(a, sizeof a, sc),
           fmt_secs(b, sizeof b, sn), sc.med / sn.med);
    printf("| of which the commit (index builds, checkpoint), s | %s | — | |\n",
           fmt_secs(a, sizeof a, stat_of(tcommit, cfg.runs)));
    rc3 = rate_of(tc, cfg.runs, counts_total(&counts[0]));
    rn3 = rate_of(tn, cfg.runs, sh.total);
    printf("| rows/s: median (min–max) | %s | %s | %.2f |\n", fmt_rate(a, sizeof a, rc3),
           fmt_rate(b, sizeof b, rn3), rc3.med / rn3.med);
    printf("| students/s: median (min–max) | %s | — | |\n",
           fmt_rate(a, sizeof a, rate_of(tc, cfg.runs, counts[0].students)));
    printf("| database size, MiB | %.1f | %.1f | %.2f |\n", (double)size_c / 1048576.0,
           (double)size_n / 1048576.0, (double)size_c / (double)size_n);
    rc3 = rate_of(lc_hit, LOOKUP_RUNS, cfg.lookups);
    rn3 = rate_of(ln_hit, LOOKUP_RUNS, cfg.lookups);
    snprintf(c, sizeof c, "%s", fmt_int(path, sizeof path, cfg.lookups));
    printf("| INE lookups/s, %s present (naive: select by key) | %s | %s | %.2f |\n", c,
           fmt_rate(a, sizeof a, rc3), fmt_rate(b, sizeof b, rn3), rc3.med / rn3.med);
    rc3 = rate_of(lc_miss, LOOKUP_RUNS, cfg.misses);
    rn3 = rate_of(ln_miss, LOOKUP_RUNS, cfg.misses);
    snprintf(c, sizeof c, "%s", fmt_int(path, sizeof path, cfg.misses));
    printf("| INE lookups/s, %s absent (naive: select by key) | %s | %s | %.2f |\n", c,
           fmt_rate(a, sizeof a, rc3), fmt_rate(b, sizeof b, rn3), rc3.med / rn3.med);
    fflush(stdout);

    free(hit.v);
    free(miss.v);
    free(nhit.v);
    free(nmiss.v);
    free(payload_pool);
    if (cfg.keep)
        fprintf(stderr, "bench_import: kept %s\n", cfg.top);
    else
        rm_tree(cfg.top, 0);
    return 0;
}
