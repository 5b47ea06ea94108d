/*
 * audit.c - the audit trail (audit.h; formats and threat model in
 * docs/audit.md).
 *
 * Owns DIR/audit.db and one writer thread.  The file has three tables:
 * meta (the node id), entries (one row per access and its chain hash) and
 * checkpoints (one per audit epoch, signed).  What is hashed and signed:
 *
 *   genesis = BLAKE2b-256("coffre-audit-genesis-v1" || node id (32 hex))
 *   hash_k  = BLAKE2b-256("coffre-audit-entry-v1" || hash_{k-1} || u64be(k)
 *                         || u64be(time_ms) || for actor, session, addr,
 *                         action, subject, fields, outcome in that order:
 *                         u32be(length) || bytes)
 *   checkpoint e = Ed25519 signature, key crypto_sign_seed_keypair(seed_e),
 *             over "coffre-audit-checkpoint-v1" || node id || u64be(e)
 *                  || u64be(seq) || hash_seq || pk_e || pk_{e+1} || u64be(time_ms)
 *
 * A checkpoint is committed, then the keyring advances to seed_{e+1} and
 * erases seed_e: the number of checkpoints equals the keyring's epoch at
 * rest, and exceeds it by one only between the two steps.
 *
 * Threads: audit_submit may run on any thread; it copies the entry and
 * queues it under mu.  The writer thread alone uses the database and the
 * keyring once audit_open has started it, and calls every done callback
 * without holding mu.  Nothing here logs an entry's content.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "audit.h"
#include "keyring.h"
#include "log.h"
#include "banned.h"

#define AUDIT_DB_FILE        "audit.db"
#define AUDIT_HASH_BYTES     32
#define AUDIT_PK_BYTES       32            /* crypto_sign_PUBLICKEYBYTES */
#define AUDIT_SIG_BYTES      64            /* crypto_sign_BYTES */
#define AUDIT_NODE_HEX       32
#define AUDIT_PATH_MAX       4096
/* Another connection (audit verify, a backup) may hold the file briefly. */
#define AUDIT_BUSY_TIMEOUT_MS 5000
/* audit_verify re-reads the keyring and the file this many times when the
 * writer advances the epoch in between, then gives up. */
#define AUDIT_VERIFY_TRIES   5

#define LABEL_GENESIS "coffre-audit-genesis-v1"
#define LABEL_ENTRY   "coffre-audit-entry-v1"
#define LABEL_CKPT    "coffre-audit-checkpoint-v1"

#define CKPT_MSG_BYTES (sizeof LABEL_CKPT - 1 + AUDIT_NODE_HEX + 8 + 8 + \
                        AUDIT_HASH_BYTES + 2 * AUDIT_PK_BYTES + 8)

/* ---- entries: the strings, their limits, their hash ------------------- */

enum { S_ACTOR, S_SESSION, S_ADDR, S_ACTION, S_SUBJECT, S_FIELDS, S_OUTCOME,
       S_COUNT };

/* In column and hashing order; each name is also its column's. */
static const struct {
    const char *name;
    size_t off;                 /* in struct audit_entry */
    size_t max;                 /* bytes without the NUL */
    int required;
} strs[S_COUNT] = {
    [S_ACTOR]   = { "actor",   offsetof(struct audit_entry, actor),   AUDIT_ACTOR_MAX, 0 },
    [S_SESSION] = { "session", offsetof(struct audit_entry, session), AUDIT_SESSION_MAX, 0 },
    [S_ADDR]    = { "addr",    offsetof(struct audit_entry, addr),    AUDIT_ADDR_MAX, 0 },
    [S_ACTION]  = { "action",  offsetof(struct audit_entry, action),  AUDIT_ACTION_MAX, 1 },
    [S_SUBJECT] = { "subject", offsetof(struct audit_entry, subject), AUDIT_SUBJECT_MAX, 0 },
    [S_FIELDS]  = { "fields",  offsetof(struct audit_entry, fields),  AUDIT_FIELDS_MAX, 0 },
    [S_OUTCOME] = { "outcome", offsetof(struct audit_entry, outcome), AUDIT_OUTCOME_MAX, 1 },
};

/* An entry's strings as (pointer, length), wherever they live. */
struct text {
    const char *p[S_COUNT];
    size_t n[S_COUNT];
};

static void
put_u64(uint8_t *p, uint64_t v)
{
    int i;

    for (i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void
put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void
genesis_hash(const char *node, uint8_t out[AUDIT_HASH_BYTES])
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, AUDIT_HASH_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)LABEL_GENESIS, sizeof LABEL_GENESIS - 1);
    crypto_generichash_update(&st, (const uint8_t *)node, strlen(node));
    crypto_generichash_final(&st, out, AUDIT_HASH_BYTES);
}

/* out may be prev: it is written only at the end. */
static void
entry_hash(const uint8_t prev[AUDIT_HASH_BYTES], uint64_t seq, int64_t time_ms,
           const struct text *t, uint8_t out[AUDIT_HASH_BYTES])
{
    crypto_generichash_state st;
    uint8_t num[16], len[4];
    int i;

    crypto_generichash_init(&st, NULL, 0, AUDIT_HASH_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)LABEL_ENTRY, sizeof LABEL_ENTRY - 1);
    crypto_generichash_update(&st, prev, AUDIT_HASH_BYTES);
    put_u64(num, seq);
    put_u64(num + 8, (uint64_t)time_ms);
    crypto_generichash_update(&st, num, sizeof num);
    for (i = 0; i < S_COUNT; i++) {
        /* Lengths come from bounded entries or SQLite text (< 2^31). */
        put_u32(len, (uint32_t)t->n[i]);
        crypto_generichash_update(&st, len, sizeof len);
        crypto_generichash_update(&st, (const uint8_t *)t->p[i], t->n[i]);
    }
    crypto_generichash_final(&st, out, AUDIT_HASH_BYTES);
}

static enum cf_err
entry_check(const struct audit_entry *e, struct cf_errmsg *em)
{
    size_t i, j, n;

    if (e == NULL)
        return cf_fail(em, CF_ERR_INPUT, "audit: no entry");
    if (e->time_ms < 0)
        return cf_fail(em, CF_ERR_INPUT, "audit: time before 1970");
    for (i = 0; i < S_COUNT; i++) {
        const char *s = (const char *)e + strs[i].off;

        n = strnlen(s, strs[i].max + 1);
        if (n > strs[i].max)
            return cf_fail(em, CF_ERR_INPUT, "audit: %s longer than %zu bytes",
                           strs[i].name, strs[i].max);
        if (n == 0 && strs[i].required)
            return cf_fail(em, CF_ERR_INPUT, "audit: %s is required", strs[i].name);
        for (j = 0; j < n; j++)
            if ((unsigned char)s[j] < 0x20 || (unsigned char)s[j] > 0x7e)
                return cf_fail(em, CF_ERR_INPUT,
                               "audit: %s: byte %zu is not printable ASCII",
                               strs[i].name, j + 1);
    }
    return CF_OK;
}

/* ---- checkpoints ------------------------------------------------------ */

struct ckpt {
    uint64_t epoch;
    uint64_t seq;
    int64_t time_ms;
    uint8_t hash[AUDIT_HASH_BYTES];
    uint8_t pk[AUDIT_PK_BYTES];
    uint8_t next_pk[AUDIT_PK_BYTES];
    uint8_t sig[AUDIT_SIG_BYTES];
};

static void
ckpt_message(const char *node, const struct ckpt *c, uint8_t msg[CKPT_MSG_BYTES])
{
    size_t n = 0;

    memcpy(msg, LABEL_CKPT, sizeof LABEL_CKPT - 1);
    n += sizeof LABEL_CKPT - 1;
    memcpy(msg + n, node, AUDIT_NODE_HEX);
    n += AUDIT_NODE_HEX;
    put_u64(msg + n, c->epoch);
    n += 8;
    put_u64(msg + n, c->seq);
    n += 8;
    memcpy(msg + n, c->hash, AUDIT_HASH_BYTES);
    n += AUDIT_HASH_BYTES;
    memcpy(msg + n, c->pk, AUDIT_PK_BYTES);
    n += AUDIT_PK_BYTES;
    memcpy(msg + n, c->next_pk, AUDIT_PK_BYTES);
    n += AUDIT_PK_BYTES;
    put_u64(msg + n, (uint64_t)c->time_ms);
}

static void
pk_of_seed(const uint8_t seed[KEYRING_SEED_BYTES], uint8_t pk[AUDIT_PK_BYTES])
{
    uint8_t sk[crypto_sign_SECRETKEYBYTES];

    crypto_sign_seed_keypair(pk, sk, seed);
    sodium_memzero(sk, sizeof sk);
}

/* Fills c->epoch, pk, next_pk and sig from the keyring's current seed;
 * c->seq, hash and time_ms are set by the caller. */
static void
ckpt_sign(const struct keyring *kr, const char *node, struct ckpt *c)
{
    uint8_t sk[crypto_sign_SECRETKEYBYTES], next[KEYRING_SEED_BYTES];
    uint8_t msg[CKPT_MSG_BYTES];
    const uint8_t *seed = keyring_audit_seed(kr);

    c->epoch = keyring_audit_epoch(kr);
    crypto_sign_seed_keypair(c->pk, sk, seed);
    keyring_audit_next_seed(seed, next);
    pk_of_seed(next, c->next_pk);
    sodium_memzero(next, sizeof next);
    ckpt_message(node, c, msg);
    crypto_sign_detached(c->sig, NULL, msg, sizeof msg, sk);
    sodium_memzero(sk, sizeof sk);
}

static int
ckpt_sig_ok(const char *node, const struct ckpt *c)
{
    uint8_t msg[CKPT_MSG_BYTES];

    ckpt_message(node, c, msg);
    return crypto_sign_verify_detached(c->sig, msg, sizeof msg, c->pk) == 0;
}

/* ---- reading rows (open and verify) ----------------------------------- */

/* Every entry SELECT returns these columns, in this order. */
#define ENTRY_COLS "seq, time_ms, actor, session, addr, action, subject, fields, outcome, hash"
#define CKPT_COLS  "epoch, seq, hash, pk, next_pk, time_ms, sig"

struct row {
    uint64_t seq;
    int64_t time_ms;
    struct text t;
    const uint8_t *hash;
};

static int
col_int(sqlite3_stmt *s, int i, int64_t min, int64_t *out)
{
    if (sqlite3_column_type(s, i) != SQLITE_INTEGER)
        return -1;
    *out = sqlite3_column_int64(s, i);
    return *out < min ? -1 : 0;
}

static int
col_blob(sqlite3_stmt *s, int i, uint8_t *dst, size_t len)
{
    if (sqlite3_column_type(s, i) != SQLITE_BLOB ||
        sqlite3_column_bytes(s, i) != (int)len)
        return -1;
    memcpy(dst, sqlite3_column_blob(s, i), len);
    return 0;
}

/* Reads an entry row; NULL, or what is wrong with it.  The pointers in r
 * are SQLite's, valid until the next step. */
static const char *
row_read(sqlite3_stmt *s, struct row *r)
{
    int64_t v;
    int i;

    if (col_int(s, 0, 1, &v) != 0)
        return "sequence number malformed";
    r->seq = (uint64_t)v;
    if (col_int(s, 1, 0, &r->time_ms) != 0)
        return "time malformed";
    for (i = 0; i < S_COUNT; i++) {
        if (sqlite3_column_type(s, 2 + i) != SQLITE_TEXT)
            return "a text column is not text";
        /* text first, then bytes: SQLite's documented order */
        r->t.p[i] = (const char *)sqlite3_column_text(s, 2 + i);
        r->t.n[i] = (size_t)sqlite3_column_bytes(s, 2 + i);
        if (r->t.p[i] == NULL || r->t.n[i] > strs[i].max)
            return "a text column is longer than its limit";
    }
    if (sqlite3_column_type(s, 9) != SQLITE_BLOB ||
        sqlite3_column_bytes(s, 9) != AUDIT_HASH_BYTES)
        return "hash malformed";
    r->hash = sqlite3_column_blob(s, 9);
    return NULL;
}

static const char *
ckpt_read(sqlite3_stmt *s, struct ckpt *c)
{
    int64_t v;

    if (col_int(s, 0, 0, &v) != 0)
        return "epoch malformed";
    c->epoch = (uint64_t)v;
    if (col_int(s, 1, 1, &v) != 0)
        return "sequence number malformed";
    c->seq = (uint64_t)v;
    if (col_int(s, 5, 0, &c->time_ms) != 0)
        return "time malformed";
    if (col_blob(s, 2, c->hash, sizeof c->hash) != 0 ||
        col_blob(s, 3, c->pk, sizeof c->pk) != 0 ||
        col_blob(s, 4, c->next_pk, sizeof c->next_pk) != 0 ||
        col_blob(s, 6, c->sig, sizeof c->sig) != 0)
        return "a hash, key or signature has the wrong size";
    return NULL;
}

/* ---- the database ----------------------------------------------------- */

/* Schema steps; PRAGMA user_version counts those applied.  STRICT: a value
 * of another type cannot be stored, so what verify hashes is what was
 * written. */
static const char *const migrations[] = {
    "CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) STRICT;"
    "CREATE TABLE entries ("
    "  seq INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL,"
    "  actor TEXT NOT NULL, session TEXT NOT NULL, addr TEXT NOT NULL,"
    "  action TEXT NOT NULL, subject TEXT NOT NULL, fields TEXT NOT NULL,"
    "  outcome TEXT NOT NULL, hash BLOB NOT NULL) STRICT;"
    "CREATE TABLE checkpoints ("
    "  epoch INTEGER PRIMARY KEY, seq INTEGER NOT NULL, hash BLOB NOT NULL,"
    "  pk BLOB NOT NULL, next_pk BLOB NOT NULL, time_ms INTEGER NOT NULL,"
    "  sig BLOB NOT NULL) STRICT;",
};
#define AUDIT_SCHEMA ((int)(sizeof migrations / sizeof migrations[0]))

static int
exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static enum cf_err
db_open(const char *path, int create, sqlite3 **out, struct cf_errmsg *em)
{
    sqlite3 *db = NULL;
    enum cf_err rc;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;

    /* Read-write even to verify: two read-only openers of one WAL file
     * can fail with "database is locked" (DESIGN.md section 12). */
    if (create)
        flags |= SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        rc = cf_fail(em, CF_ERR_STORE, "audit '%s': cannot open: %s", path,
                     db != NULL ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, AUDIT_BUSY_TIMEOUT_MS);
    if (exec(db, "PRAGMA trusted_schema = OFF") != SQLITE_OK) {
        rc = cf_fail(em, CF_ERR_STORE, "audit '%s': %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return CF_OK;
}

static int
user_version(sqlite3 *db)
{
    sqlite3_stmt *s;
    int v = -1;

    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

static enum cf_err
migrate(sqlite3 *db, const char *path, struct cf_errmsg *em)
{
    int v = user_version(db);
    char sql[64];

    if (v < 0)
        return cf_fail(em, CF_ERR_STORE, "audit '%s': not an audit trail (%s)",
                       path, sqlite3_errmsg(db));
    if (v > AUDIT_SCHEMA)
        return cf_fail(em, CF_ERR_STORE,
                       "audit '%s': schema version %d is newer than this coffre knows (%d); upgrade coffre",
                       path, v, AUDIT_SCHEMA);
    for (; v < AUDIT_SCHEMA; v++) {
        /* Each step and its version number commit together. */
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        if (exec(db, "BEGIN IMMEDIATE") != SQLITE_OK ||
            exec(db, migrations[v]) != SQLITE_OK ||
            exec(db, sql) != SQLITE_OK ||
            exec(db, "COMMIT") != SQLITE_OK) {
            enum cf_err rc = cf_fail(em, CF_ERR_STORE,
                    "audit '%s': migration %d failed: %s", path, v + 1,
                    sqlite3_errmsg(db));
            exec(db, "ROLLBACK");
            return rc;
        }
    }
    return CF_OK;
}

/* The node id recorded in meta, copied to out (33 bytes); -1 if absent. */
static int
meta_node(sqlite3 *db, char out[AUDIT_NODE_HEX + 1])
{
    sqlite3_stmt *s;
    int rc = -1;

    if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = 'node'", -1, &s, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_TEXT) {
        snprintf(out, AUDIT_NODE_HEX + 1, "%s", (const char *)sqlite3_column_text(s, 0));
        rc = 0;
    }
    sqlite3_finalize(s);
    return rc;
}

/* meta's value of k, copied to out; -1 if absent. */
static int
meta_get(sqlite3 *db, const char *k, char *out, size_t cap)
{
    sqlite3_stmt *s;
    int rc = -1;

    if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = ?1", -1, &s, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_TEXT &&
        (size_t)sqlite3_column_bytes(s, 0) < cap) {
        memcpy(out, sqlite3_column_text(s, 0), (size_t)sqlite3_column_bytes(s, 0) + 1);
        rc = 0;
    }
    sqlite3_finalize(s);
    return rc;
}

/* ---- the open trail --------------------------------------------------- */

/* One queued entry: its strings follow the struct. */
struct item {
    struct item *next;
    audit_done_fn done;
    void *arg;
    int64_t time_ms;
    struct text t;
    char buf[];
};

struct audit {
    /* Set by audit_open, then read-only. */
    char node[AUDIT_NODE_HEX + 1];
    char path[AUDIT_PATH_MAX];
    struct audit_opts o;
    struct keyring *kr;             /* borrowed; the writer's alone */
    sqlite3 *db;                    /* the writer's alone while it runs */
    sqlite3_stmt *begin, *commit, *rollback, *ins_entry, *ins_ckpt;
    pthread_t writer;
    int writer_started;
    int sync_init;                  /* mu and wake initialised */

    /* Guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t wake;            /* the writer waits on it */
    struct item *head, *tail;
    size_t depth;
    uint64_t durable_seq;
    int stopping;
    int failed;
    int final_checkpoint;           /* audit_close signs one; tests clear it */

    /* The writer's own (audit_open's before the writer starts). */
    uint64_t seq;                   /* last entry written */
    uint8_t hash[AUDIT_HASH_BYTES]; /* its chain hash */
    uint64_t unsigned_n;            /* entries after the last checkpoint */
    struct timespec deadline;       /* CLOCK_MONOTONIC: sign by then */
};

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
deadline_in(struct timespec *t, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static int
reached(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec ||
           (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* The writer's: entries wait unsigned and their time or number is up. */
static int
ckpt_due(const struct audit *a)
{
    return a->unsigned_n > 0 &&
           (a->unsigned_n >= a->o.checkpoint_entries || reached(&a->deadline));
}

static int
pick(unsigned v, unsigned def, unsigned max, unsigned *out)
{
    if (v > max)
        return -1;
    *out = v != 0 ? v : def;
    return 0;
}

static enum cf_err
opts_resolve(const struct audit_opts *in, struct audit_opts *o,
             struct cf_errmsg *em)
{
    struct audit_opts zero = { 0, 0, 0, 0 };

    if (in == NULL)
        in = &zero;
    if (pick(in->checkpoint_entries, AUDIT_CHECKPOINT_ENTRIES_DEFAULT,
             AUDIT_CHECKPOINT_ENTRIES_MAX, &o->checkpoint_entries) != 0)
        return cf_fail(em, CF_ERR_INPUT, "audit: checkpoint_entries above %d",
                       AUDIT_CHECKPOINT_ENTRIES_MAX);
    if (pick(in->checkpoint_ms, AUDIT_CHECKPOINT_MS_DEFAULT,
             AUDIT_CHECKPOINT_MS_MAX, &o->checkpoint_ms) != 0)
        return cf_fail(em, CF_ERR_INPUT, "audit: checkpoint_ms above %d",
                       AUDIT_CHECKPOINT_MS_MAX);
    if (pick(in->queue_max, AUDIT_QUEUE_DEFAULT, AUDIT_QUEUE_MAX, &o->queue_max) != 0)
        return cf_fail(em, CF_ERR_INPUT, "audit: queue_max above %d", AUDIT_QUEUE_MAX);
    if (pick(in->batch_max, AUDIT_BATCH_DEFAULT, AUDIT_BATCH_MAX, &o->batch_max) != 0)
        return cf_fail(em, CF_ERR_INPUT, "audit: batch_max above %d", AUDIT_BATCH_MAX);
    return CF_OK;
}

static enum cf_err
prepare_all(struct audit *a, struct cf_errmsg *em)
{
    sqlite3_stmt **dst[] = { &a->begin, &a->commit, &a->rollback, &a->ins_entry,
                             &a->ins_ckpt };
    const char *sql[] = {
        "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK",
        "INSERT INTO entries (" ENTRY_COLS ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
        "INSERT INTO checkpoints (" CKPT_COLS ") VALUES (?1,?2,?3,?4,?5,?6,?7)",
    };
    size_t i;

    for (i = 0; i < sizeof dst / sizeof dst[0]; i++)
        if (sqlite3_prepare_v3(a->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               dst[i], NULL) != SQLITE_OK)
            return cf_fail(em, CF_ERR_STORE, "audit '%s': %s", a->path,
                           sqlite3_errmsg(a->db));
    return CF_OK;
}

/* WAL: a commit appends and fsyncs once.  FULL: that fsync happens at
 * every commit, so a done(CF_OK) survives a power cut. */
static enum cf_err
durable_mode(struct audit *a, struct cf_errmsg *em)
{
    sqlite3_stmt *s;
    int ok;

    if (sqlite3_prepare_v2(a->db, "PRAGMA journal_mode = WAL", -1, &s, NULL) != SQLITE_OK)
        return cf_fail(em, CF_ERR_STORE, "audit '%s': %s", a->path, sqlite3_errmsg(a->db));
    ok = sqlite3_step(s) == SQLITE_ROW &&
         sqlite3_stricmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
    sqlite3_finalize(s);
    if (!ok || exec(a->db, "PRAGMA synchronous = FULL") != SQLITE_OK)
        return cf_fail(em, CF_ERR_STORE, "audit '%s': cannot enable WAL with synchronous=FULL: %s",
                       a->path, sqlite3_errmsg(a->db));
    return CF_OK;
}

/* Records this keyring's node in a new file, refuses another node's file. */
static enum cf_err
node_check(struct audit *a, struct cf_errmsg *em)
{
    sqlite3_stmt *s;
    char node[AUDIT_NODE_HEX + 1] = "";
    int step;

    if (sqlite3_prepare_v2(a->db, "INSERT OR IGNORE INTO meta (k, v) VALUES ('node', ?1)",
                           -1, &s, NULL) != SQLITE_OK)
        return cf_fail(em, CF_ERR_STORE, "audit '%s': %s", a->path, sqlite3_errmsg(a->db));
    sqlite3_bind_text(s, 1, a->node, -1, SQLITE_STATIC);
    step = sqlite3_step(s);
    sqlite3_finalize(s);
    if (step != SQLITE_DONE)
        return cf_fail(em, CF_ERR_STORE, "audit '%s': %s", a->path, sqlite3_errmsg(a->db));
    if (meta_node(a->db, node) != 0 || strcmp(node, a->node) != 0)
        return cf_fail(em, CF_ERR_AUTH,
                       "audit '%s' belongs to node %.32s, not to this keyring's node %s",
                       a->path, node, a->node);
    return CF_OK;
}

/*
 * Re-checks the entries after the last checkpoint (the only ones no
 * signature covers yet) and takes the chain's end from them, so the writer
 * never signs over a damaged tail.
 */
static enum cf_err
check_tail(struct audit *a, const struct ckpt *last, struct cf_errmsg *em)
{
    sqlite3_stmt *s;
    struct row r;
    const char *why;
    uint8_t h[AUDIT_HASH_BYTES];
    uint64_t n = 0;
    enum cf_err rc = CF_OK;
    int step = SQLITE_DONE, first = last != NULL;

    genesis_hash(a->node, h);
    a->seq = 0;
    if (sqlite3_prepare_v2(a->db, "SELECT " ENTRY_COLS " FROM entries WHERE seq >= ?1 ORDER BY seq",
                           -1, &s, NULL) != SQLITE_OK)
        return cf_fail(em, CF_ERR_STORE, "audit '%s': %s", a->path, sqlite3_errmsg(a->db));
    sqlite3_bind_int64(s, 1, last != NULL ? (sqlite3_int64)last->seq : 1);
    while (rc == CF_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
        why = row_read(s, &r);
        if (why != NULL) {
            rc = cf_fail(em, CF_ERR_AUTH, "audit '%s': entry after %" PRIu64 ": %s; run 'coffre audit verify'",
                         a->path, a->seq, why);
        } else if (first) {
            if (r.seq != last->seq || memcmp(r.hash, last->hash, sizeof h) != 0)
                rc = cf_fail(em, CF_ERR_AUTH,
                             "audit '%s': entry %" PRIu64 ", signed by checkpoint %" PRIu64
                             ", is missing or changed; run 'coffre audit verify'",
                             a->path, last->seq, last->epoch);
            memcpy(h, r.hash, sizeof h);
            a->seq = r.seq;
            first = 0;
        } else if (r.seq != a->seq + 1) {
            rc = cf_fail(em, CF_ERR_AUTH,
                         "audit '%s': entry %" PRIu64 " missing; run 'coffre audit verify'",
                         a->path, a->seq + 1);
        } else {
            entry_hash(h, r.seq, r.time_ms, &r.t, h);
            if (memcmp(h, r.hash, sizeof h) != 0)
                rc = cf_fail(em, CF_ERR_AUTH,
                             "audit '%s': entry %" PRIu64 ": hash does not match; run 'coffre audit verify'",
                             a->path, r.seq);
            a->seq = r.seq;
            n++;
        }
    }
    if (rc == CF_OK && step != SQLITE_DONE)
        rc = cf_fail(em, CF_ERR_STORE, "audit '%s': %s", a->path, sqlite3_errmsg(a->db));
    sqlite3_finalize(s);
    if (rc == CF_OK && first)
        rc = cf_fail(em, CF_ERR_AUTH,
                     "audit '%s': trail truncated: entry %" PRIu64 ", signed by checkpoint %"
                     PRIu64 ", is missing; run 'coffre audit verify'",
                     a->path, last->seq, last->epoch);
    if (rc != CF_OK)
        return rc;
    memcpy(a->hash, h, sizeof h);
    a->unsigned_n = n;
    a->durable_seq = a->seq;
    if (n > 0)
        deadline_in(&a->deadline, a->o.checkpoint_ms);
    return CF_OK;
}

/*
 * Squares the trail with the keyring: checkpoints must number the
 * keyring's epoch, or one more when a crash came between committing a
 * checkpoint and advancing the keyring (finished here).
 */
static enum cf_err
load_state(struct audit *a, struct cf_errmsg *em)
{
    sqlite3_stmt *s;
    struct ckpt last;
    const char *why = NULL;
    uint8_t kpk[AUDIT_PK_BYTES];
    uint64_t E = keyring_audit_epoch(a->kr), C = 0;
    int have = 0, step;
    enum cf_err rc;

    /* Epochs are the rowid: this reads one row, however long the trail. */
    if (sqlite3_prepare_v2(a->db, "SELECT " CKPT_COLS " FROM checkpoints ORDER BY epoch DESC LIMIT 1",
                           -1, &s, NULL) != SQLITE_OK)
        return cf_fail(em, CF_ERR_STORE, "audit '%s': %s", a->path, sqlite3_errmsg(a->db));
    step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        why = ckpt_read(s, &last);
        have = 1;
    }
    sqlite3_finalize(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return cf_fail(em, CF_ERR_STORE, "audit '%s': %s", a->path, sqlite3_errmsg(a->db));
    if (why != NULL)
        return cf_fail(em, CF_ERR_AUTH, "audit '%s': last checkpoint: %s; run 'coffre audit verify'",
                       a->path, why);
    if (have)
        C = last.epoch + 1;
    if (C < E)
        return cf_fail(em, CF_ERR_AUTH,
                       "audit '%s': trail truncated: keyring at epoch %" PRIu64 " but %" PRIu64
                       " checkpoints; run 'coffre audit verify'", a->path, E, C);
    if (C > E + 1)
        return cf_fail(em, CF_ERR_AUTH,
                       "audit '%s': keyring at epoch %" PRIu64 " but %" PRIu64
                       " checkpoints: the keyring is older than the trail (restored from a copy?)",
                       a->path, E, C);
    pk_of_seed(keyring_audit_seed(a->kr), kpk);
    if (C == E + 1) {
        if (memcmp(last.pk, kpk, sizeof kpk) != 0)
            return cf_fail(em, CF_ERR_AUTH,
                           "audit '%s': checkpoint %" PRIu64 " was not signed with this keyring's key",
                           a->path, last.epoch);
        if ((rc = keyring_audit_advance(a->kr, em)) != CF_OK)
            return rc;
        log_warnx("audit: finished advancing to epoch %" PRIu64
                  " (a stop came between signing checkpoint %" PRIu64 " and advancing)",
                  C, last.epoch);
    } else if (have && memcmp(last.next_pk, kpk, sizeof kpk) != 0)
        return cf_fail(em, CF_ERR_AUTH,
                       "audit '%s': the keyring's audit key is not the one checkpoint %" PRIu64
                       " announced (keyring replaced or rolled back)", a->path, last.epoch);
    return check_tail(a, have ? &last : NULL, em);
}

/* ---- the writer ------------------------------------------------------- */

static int
run(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);

    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int
insert_entry(struct audit *a, uint64_t seq, const struct item *it,
             const uint8_t hash[AUDIT_HASH_BYTES])
{
    sqlite3_stmt *s = a->ins_entry;
    int i;

    sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
    sqlite3_bind_int64(s, 2, it->time_ms);
    for (i = 0; i < S_COUNT; i++)
        sqlite3_bind_text(s, 3 + i, it->t.p[i], (int)it->t.n[i], SQLITE_STATIC);
    sqlite3_bind_blob(s, 10, hash, AUDIT_HASH_BYTES, SQLITE_STATIC);
    return run(s);
}

static int
insert_ckpt(struct audit *a, const struct ckpt *c)
{
    sqlite3_stmt *s = a->ins_ckpt;

    sqlite3_bind_int64(s, 1, (sqlite3_int64)c->epoch);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)c->seq);
    sqlite3_bind_blob(s, 3, c->hash, AUDIT_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, c->pk, AUDIT_PK_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, c->next_pk, AUDIT_PK_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, c->time_ms);
    sqlite3_bind_blob(s, 7, c->sig, AUDIT_SIG_BYTES, SQLITE_STATIC);
    return run(s);
}

/*
 * Writes the batch and, with ck != NULL, a checkpoint covering it, in one
 * transaction committed with one fsync (synchronous=FULL).  On success the
 * chain's end moves; on failure the transaction is rolled back, nothing
 * moves, and why holds SQLite's message.
 */
static enum cf_err
write_batch(struct audit *a, const struct item *batch, struct ckpt *ck,
            char *why, size_t whylen)
{
    const struct item *it;
    uint8_t h[AUDIT_HASH_BYTES];
    uint64_t seq = a->seq, n = 0;
    enum cf_err rc = CF_ERR_STORE;

    memcpy(h, a->hash, sizeof h);
    if (run(a->begin) != 0)
        goto out;
    for (it = batch; it != NULL; it = it->next) {
        seq++;
        entry_hash(h, seq, it->time_ms, &it->t, h);
        if (insert_entry(a, seq, it, h) != 0)
            goto out;
        n++;
    }
    if (ck != NULL) {
        ck->seq = seq;
        ck->time_ms = now_ms();
        memcpy(ck->hash, h, sizeof h);
        ckpt_sign(a->kr, a->node, ck);
        if (insert_ckpt(a, ck) != 0)
            goto out;
    }
    if (run(a->commit) != 0)
        goto out;
    rc = CF_OK;
    a->seq = seq;
    memcpy(a->hash, h, sizeof h);
    if (ck != NULL)
        a->unsigned_n = 0;
    else if (n > 0) {
        if (a->unsigned_n == 0)
            deadline_in(&a->deadline, a->o.checkpoint_ms);
        a->unsigned_n += n;
    }
out:
    if (rc != CF_OK) {
        snprintf(why, whylen, "%s", sqlite3_errmsg(a->db));
        if (!sqlite3_get_autocommit(a->db))
            (void)run(a->rollback);
    }
    return rc;
}

/* Calls every done in list order with rc and frees the items. */
static void
finish(struct item *list, enum cf_err rc)
{
    struct item *next;

    for (; list != NULL; list = next) {
        next = list->next;
        list->done(list->arg, rc);
        free(list);
    }
}

/* Fail closed: this batch, everything queued and every later submit get
 * CF_ERR_STORE; the writer stops. */
static void
fail_closed(struct audit *a, struct item *batch, const char *what, const char *why)
{
    struct item *rest;

    log_kv(LOG_ERROR, "audit trail failed: nothing more is served", "file", a->path,
           "what", what, "why", why, (const char *)NULL);
    pthread_mutex_lock(&a->mu);
    a->failed = 1;
    rest = a->head;
    a->head = a->tail = NULL;
    a->depth = 0;
    pthread_mutex_unlock(&a->mu);
    finish(batch, CF_ERR_STORE);
    finish(rest, CF_ERR_STORE);
}

/* The external witness: one log line per checkpoint, enough to check its
 * signature without the file. */
static void
ckpt_log(const struct audit *a, const struct ckpt *c)
{
    char epoch[24], seq[24], t[24];
    char hash[2 * AUDIT_HASH_BYTES + 1], pk[2 * AUDIT_PK_BYTES + 1];
    char npk[2 * AUDIT_PK_BYTES + 1], sig[2 * AUDIT_SIG_BYTES + 1];

    snprintf(epoch, sizeof epoch, "%" PRIu64, c->epoch);
    snprintf(seq, sizeof seq, "%" PRIu64, c->seq);
    snprintf(t, sizeof t, "%" PRId64, c->time_ms);
    sodium_bin2hex(hash, sizeof hash, c->hash, sizeof c->hash);
    sodium_bin2hex(pk, sizeof pk, c->pk, sizeof c->pk);
    sodium_bin2hex(npk, sizeof npk, c->next_pk, sizeof c->next_pk);
    sodium_bin2hex(sig, sizeof sig, c->sig, sizeof c->sig);
    log_kv(LOG_INFO, "audit checkpoint", "node", a->node, "epoch", epoch, "seq", seq,
           "time_ms", t, "hash", hash, "pk", pk, "next_pk", npk, "sig", sig,
           (const char *)NULL);
}

/* Detaches up to batch_max queued entries, and never more than fit before
 * the next checkpoint, so checkpoints fall every checkpoint_entries. */
static struct item *
take_batch(struct audit *a, uint64_t *count)
{
    struct item *first = a->head, *last = NULL, *it = a->head;
    uint64_t limit = a->o.batch_max, room, n = 0;

    room = a->unsigned_n < a->o.checkpoint_entries
               ? a->o.checkpoint_entries - a->unsigned_n : 0;
    if (room < limit)
        limit = room;
    while (it != NULL && n < limit) {
        last = it;
        it = it->next;
        n++;
    }
    *count = n;
    if (n == 0)
        return NULL;
    last->next = NULL;
    a->head = it;
    if (it == NULL)
        a->tail = NULL;
    a->depth -= (size_t)n;
    return first;
}

/* One round: commit, tell the submitters, then publish the checkpoint and
 * advance the keyring (which erases the seed just used). */
static void
writer_round(struct audit *a, struct item *batch, int with_ckpt)
{
    struct ckpt ck;
    struct cf_errmsg em = { "" };
    char why[CF_ERRMSG_MAX];

    if (write_batch(a, batch, with_ckpt ? &ck : NULL, why, sizeof why) != CF_OK) {
        fail_closed(a, batch, "commit failed", why);
        return;
    }
    pthread_mutex_lock(&a->mu);
    a->durable_seq = a->seq;
    pthread_mutex_unlock(&a->mu);
    finish(batch, CF_OK);
    if (!with_ckpt)
        return;
    ckpt_log(a, &ck);
    if (keyring_audit_advance(a->kr, &em) != CF_OK)
        fail_closed(a, NULL, "cannot advance the keyring's audit epoch", em.msg);
}

static void *
writer_main(void *arg)
{
    struct audit *a = arg;
    struct item *batch;
    uint64_t n, after;
    int last, with_ckpt;

    pthread_mutex_lock(&a->mu);
    while (!a->failed) {
        if (a->head == NULL && !a->stopping && !ckpt_due(a)) {
            if (a->unsigned_n > 0)
                (void)pthread_cond_timedwait(&a->wake, &a->mu, &a->deadline);
            else
                (void)pthread_cond_wait(&a->wake, &a->mu);
            continue;
        }
        batch = take_batch(a, &n);
        /* Closing and nothing left behind this batch: sign it all now. */
        last = a->stopping && a->head == NULL;
        after = a->unsigned_n + n;
        with_ckpt = after > 0 &&
                    (after >= a->o.checkpoint_entries ||
                     (a->unsigned_n > 0 && reached(&a->deadline)) ||
                     (last && a->final_checkpoint));
        pthread_mutex_unlock(&a->mu);
        if (n > 0 || with_ckpt)
            writer_round(a, batch, with_ckpt);
        pthread_mutex_lock(&a->mu);
        if (last)
            break;
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static enum cf_err
writer_start(struct audit *a, struct cf_errmsg *em)
{
    sigset_t all, old;
    int err;

    /* Signals are the main thread's business. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&a->writer, NULL, writer_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0)
        return cf_fail(em, CF_ERR_NOMEM, "audit: cannot start the writer thread: %s",
                       strerror(err));
    a->writer_started = 1;
    return CF_OK;
}

/* Lets the writer drain the queue (and sign, unless final_checkpoint was
 * cleared), then joins it. */
static void
writer_stop(struct audit *a)
{
    if (!a->writer_started)
        return;
    pthread_mutex_lock(&a->mu);
    a->stopping = 1;
    pthread_cond_broadcast(&a->wake);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->writer, NULL);
    a->writer_started = 0;
}

static void
audit_free(struct audit *a)
{
    if (a == NULL)
        return;
    sqlite3_finalize(a->begin);
    sqlite3_finalize(a->commit);
    sqlite3_finalize(a->rollback);
    sqlite3_finalize(a->ins_entry);
    sqlite3_finalize(a->ins_ckpt);
    sqlite3_close(a->db);
    if (a->sync_init) {
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->wake);
    }
    free(a);
}

static enum cf_err
sync_init(struct audit *a, struct cf_errmsg *em)
{
    pthread_condattr_t ca;
    int err;

    if (pthread_condattr_init(&ca) != 0)
        return cf_fail(em, CF_ERR_NOMEM, "audit: out of memory");
    /* Checkpoint deadlines must not move with the wall clock. */
    err = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (err == 0)
        err = pthread_cond_init(&a->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (err != 0)
        return cf_fail(em, CF_ERR_NOMEM, "audit: cannot create a condition: %s", strerror(err));
    if ((err = pthread_mutex_init(&a->mu, NULL)) != 0) {
        pthread_cond_destroy(&a->wake);
        return cf_fail(em, CF_ERR_NOMEM, "audit: cannot create a mutex: %s", strerror(err));
    }
    a->sync_init = 1;
    return CF_OK;
}

enum cf_err
audit_open(const char *data_dir, struct keyring *kr, const struct audit_opts *o,
           struct audit **out, struct cf_errmsg *em)
{
    struct audit *a = NULL;
    enum cf_err rc;
    int n, fresh;

    if (data_dir == NULL || kr == NULL || out == NULL)
        return cf_fail(em, CF_ERR_INPUT, "audit: missing argument");
    *out = NULL;
    a = calloc(1, sizeof *a);
    if (a == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "audit: out of memory");
    a->kr = kr;
    a->final_checkpoint = 1;
    if ((rc = opts_resolve(o, &a->o, em)) != CF_OK)
        goto out;
    n = snprintf(a->path, sizeof a->path, "%s/%s", data_dir, AUDIT_DB_FILE);
    if (n < 0 || (size_t)n >= sizeof a->path) {
        rc = cf_fail(em, CF_ERR_INPUT, "audit: data directory path too long");
        goto out;
    }
    if (strlen(keyring_node_id(kr)) != AUDIT_NODE_HEX) {
        rc = cf_fail(em, CF_ERR_INPUT, "audit: keyring has no node id");
        goto out;
    }
    memcpy(a->node, keyring_node_id(kr), AUDIT_NODE_HEX + 1);
    fresh = access(a->path, F_OK) != 0;
    if ((rc = sync_init(a, em)) != CF_OK ||
        (rc = db_open(a->path, 1, &a->db, em)) != CF_OK)
        goto out;
    /* Addresses and account ids are pseudonymous personal data: the file
     * is the service's alone (SQLite gives its -wal and -shm the same
     * mode).  Set before anything is written. */
    if (fresh && chmod(a->path, 0600) != 0) {
        rc = cf_fail(em, CF_ERR_IO, "audit '%s': cannot make it private: %s", a->path,
                     strerror(errno));
        goto out;
    }
    if ((rc = durable_mode(a, em)) != CF_OK ||
        (rc = migrate(a->db, a->path, em)) != CF_OK ||
        (rc = node_check(a, em)) != CF_OK ||
        (rc = prepare_all(a, em)) != CF_OK ||
        (rc = load_state(a, em)) != CF_OK ||
        (rc = writer_start(a, em)) != CF_OK)
        goto out;
out:
    if (rc != CF_OK) {
        audit_free(a);
        return rc;
    }
    *out = a;
    return CF_OK;
}

void
audit_close(struct audit *a)
{
    if (a == NULL)
        return;
    writer_stop(a);
    audit_free(a);
}

/* ---- submitting ------------------------------------------------------- */

static struct item *
item_new(const struct audit_entry *e, audit_done_fn done, void *arg)
{
    struct item *it;
    const char *src[S_COUNT];
    size_t len[S_COUNT], total = 0, off = 0;
    int i;

    for (i = 0; i < S_COUNT; i++) {
        src[i] = (const char *)e + strs[i].off;
        len[i] = strlen(src[i]);             /* bounded: entry_check passed */
        total += len[i] + 1;
    }
    it = malloc(sizeof *it + total);
    if (it == NULL)
        return NULL;
    it->next = NULL;
    it->done = done;
    it->arg = arg;
    it->time_ms = e->time_ms;
    for (i = 0; i < S_COUNT; i++) {
        memcpy(it->buf + off, src[i], len[i] + 1);
        it->t.p[i] = it->buf + off;
        it->t.n[i] = len[i];
        off += len[i] + 1;
    }
    return it;
}

enum cf_err
audit_submit(struct audit *a, const struct audit_entry *e, audit_done_fn done,
             void *arg)
{
    struct item *it;
    enum cf_err rc;

    if (a == NULL || done == NULL)
        return CF_ERR_INPUT;
    if ((rc = entry_check(e, NULL)) != CF_OK)
        return rc;
    it = item_new(e, done, arg);            /* outside the lock */
    if (it == NULL)
        return CF_ERR_NOMEM;
    pthread_mutex_lock(&a->mu);
    if (a->failed || a->stopping)
        rc = CF_ERR_STORE;
    else if (a->depth >= a->o.queue_max)
        rc = CF_ERR_LIMIT;
    else {
        /* Under the lock, so times follow the order of the trail. */
        if (it->time_ms == 0)
            it->time_ms = now_ms();
        if (a->tail != NULL)
            a->tail->next = it;
        else
            a->head = it;
        a->tail = it;
        /* The writer waits only on an empty queue. */
        if (a->depth++ == 0)
            pthread_cond_signal(&a->wake);
    }
    pthread_mutex_unlock(&a->mu);
    if (rc != CF_OK)
        free(it);
    return rc;
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    enum cf_err rc;
};

static void
waiter_done(void *arg, enum cf_err rc)
{
    struct waiter *w = arg;

    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

enum cf_err
audit_append(struct audit *a, const struct audit_entry *e, struct cf_errmsg *em)
{
    struct waiter w;
    enum cf_err rc;

    if (a == NULL)
        return cf_fail(em, CF_ERR_INPUT, "audit: not open");
    if ((rc = entry_check(e, em)) != CF_OK)
        return rc;
    w.done = 0;
    w.rc = CF_ERR_STORE;
    if (pthread_mutex_init(&w.mu, NULL) != 0)
        return cf_fail(em, CF_ERR_NOMEM, "audit: out of memory");
    if (pthread_cond_init(&w.cv, NULL) != 0) {
        pthread_mutex_destroy(&w.mu);
        return cf_fail(em, CF_ERR_NOMEM, "audit: out of memory");
    }
    rc = audit_submit(a, e, waiter_done, &w);
    if (rc == CF_OK) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        rc = w.rc;
        pthread_mutex_unlock(&w.mu);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    if (rc == CF_ERR_LIMIT)
        return cf_fail(em, rc, "audit: %u entries already wait; try again", a->o.queue_max);
    if (rc == CF_ERR_STORE)
        return cf_fail(em, rc, "audit '%s': the trail cannot be written; nothing may be served",
                       a->path);
    if (rc != CF_OK)
        return cf_fail(em, rc, "audit: %s", cf_err_str(rc));
    return CF_OK;
}

size_t
audit_queue_depth(struct audit *a)
{
    size_t n;

    pthread_mutex_lock(&a->mu);
    n = a->depth;
    pthread_mutex_unlock(&a->mu);
    return n;
}

uint64_t
audit_last_seq(struct audit *a)
{
    uint64_t n;

    pthread_mutex_lock(&a->mu);
    n = a->durable_seq;
    pthread_mutex_unlock(&a->mu);
    return n;
}

enum cf_err
audit_status(struct audit *a)
{
    enum cf_err rc;

    pthread_mutex_lock(&a->mu);
    rc = a->failed ? CF_ERR_STORE : CF_OK;
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* ---- verifying -------------------------------------------------------- */

struct verifier {
    struct audit_report *rep;
    struct cf_errmsg *em;
    char node[AUDIT_NODE_HEX + 1];
    uint64_t kr_epoch;
    uint8_t kr_pk[AUDIT_PK_BYTES];      /* key of the keyring's current seed */
    uint8_t *aseed;                     /* auditor's chain: seed of the next
                                           checkpoint's epoch; NULL: no seed */
    uint8_t apk[AUDIT_PK_BYTES];        /* its public key */
    uint64_t seq;                       /* last entry checked */
    uint8_t hash[AUDIT_HASH_BYTES];     /* its chain hash */
    int have_ck;
    struct ckpt ck;                     /* last checkpoint checked */
};

/* Records the first fault and returns CF_ERR_AUTH. */
static enum cf_err vfail(struct verifier *v, uint64_t seq, int64_t epoch,
                         const char *fmt, ...) PRINTF(4, 5);

static enum cf_err
vfail(struct verifier *v, uint64_t seq, int64_t epoch, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(v->rep->why, sizeof v->rep->why, fmt, ap);
    va_end(ap);
    v->rep->first_bad_seq = seq;
    v->rep->first_bad_epoch = epoch;
    return cf_fail(v->em, CF_ERR_AUTH, "audit: %s", v->rep->why);
}

/* First entry no checkpoint vouches for once the next checkpoint is bad. */
static uint64_t
after_ck(const struct verifier *v)
{
    return (v->have_ck ? v->ck.seq : 0) + 1;
}

/* Called with a checkpoint just read: its place in the sequence. */
static enum cf_err
check_ckpt_order(struct verifier *v, const struct ckpt *c)
{
    uint64_t want = v->have_ck ? v->ck.epoch + 1 : 0;

    if (c->epoch != want)
        return v->have_ck
            ? vfail(v, after_ck(v), (int64_t)want,
                    "checkpoint %" PRIu64 " missing (epochs jump from %" PRIu64 " to %" PRIu64 ")",
                    want, v->ck.epoch, c->epoch)
            : vfail(v, 1, 0, "checkpoint 0 missing (the first is checkpoint %" PRIu64 ")",
                    c->epoch);
    if (v->have_ck && c->seq <= v->ck.seq)
        return vfail(v, after_ck(v), (int64_t)c->epoch,
                     "checkpoint %" PRIu64 ": covers entry %" PRIu64
                     ", not after checkpoint %" PRIu64 "'s entry %" PRIu64,
                     c->epoch, c->seq, v->ck.epoch, v->ck.seq);
    return CF_OK;
}

/* Called when the walk reaches c->seq: v->hash is the chain there. */
static enum cf_err
check_ckpt_at(struct verifier *v, const struct ckpt *c, int hash_known)
{
    uint8_t nseed[KEYRING_SEED_BYTES], npk[AUDIT_PK_BYTES];
    int64_t e = (int64_t)c->epoch;
    enum cf_err rc = CF_OK;

    if (hash_known && memcmp(c->hash, v->hash, sizeof v->hash) != 0)
        return vfail(v, after_ck(v), e, "checkpoint %" PRIu64 ": hash does not match entry %" PRIu64,
                     c->epoch, c->seq);
    if (v->have_ck && memcmp(c->pk, v->ck.next_pk, sizeof c->pk) != 0)
        return vfail(v, after_ck(v), e,
                     "checkpoint %" PRIu64 ": public key is not the one checkpoint %" PRIu64 " announced",
                     c->epoch, v->ck.epoch);
    if (c->epoch == v->kr_epoch && memcmp(c->pk, v->kr_pk, sizeof c->pk) != 0)
        return vfail(v, after_ck(v), e,
                     "checkpoint %" PRIu64 ": public key is not the keyring's", c->epoch);
    if (v->aseed != NULL) {
        keyring_audit_next_seed(v->aseed, nseed);
        pk_of_seed(nseed, npk);
        if (memcmp(c->pk, v->apk, sizeof c->pk) != 0)
            rc = vfail(v, after_ck(v), e,
                       "checkpoint %" PRIu64 ": public key is not derived from the auditor's seed",
                       c->epoch);
        else if (memcmp(c->next_pk, npk, sizeof npk) != 0)
            rc = vfail(v, after_ck(v), e,
                       "checkpoint %" PRIu64 ": next public key is not derived from the auditor's seed",
                       c->epoch);
        memcpy(v->aseed, nseed, sizeof nseed);
        memcpy(v->apk, npk, sizeof npk);
        sodium_memzero(nseed, sizeof nseed);
        if (rc != CF_OK)
            return rc;
    }
    if (!ckpt_sig_ok(v->node, c))
        return vfail(v, after_ck(v), e, "checkpoint %" PRIu64 ": signature invalid", c->epoch);
    v->rep->epochs_checked++;
    v->ck = *c;
    v->have_ck = 1;
    return CF_OK;
}

static enum cf_err
check_ckpt(struct verifier *v, const struct ckpt *c)
{
    return check_ckpt_at(v, c, 1);
}

/* Steps the checkpoint statement: *has = 0 at the end. */
static enum cf_err
next_ckpt(struct verifier *v, sqlite3_stmt *s, struct ckpt *c, int *has)
{
    const char *why;
    int step = sqlite3_step(s);

    *has = 0;
    if (step == SQLITE_DONE)
        return CF_OK;
    if (step != SQLITE_ROW)
        return cf_fail(v->em, CF_ERR_STORE, "audit: cannot read checkpoints: %s",
                       sqlite3_errmsg(sqlite3_db_handle(s)));
    v->rep->checkpoints++;
    if ((why = ckpt_read(s, c)) != NULL)
        return vfail(v, after_ck(v), (int64_t)(v->have_ck ? v->ck.epoch + 1 : 0),
                     "checkpoint after %s: %s", v->have_ck ? "the last good one" : "none", why);
    *has = 1;
    return check_ckpt_order(v, c);
}

/* The archive base: the last archived entry and its chain hash, from
 * meta (audit archive); leaves seq and hash alone without one.  -1 when
 * malformed. */
static int
base_read(sqlite3 *db, uint64_t *seq, uint8_t hash[AUDIT_HASH_BYTES])
{
    char v[2 * AUDIT_HASH_BYTES + 1], *end;
    size_t got;
    unsigned long long n;

    if (meta_get(db, "base_seq", v, sizeof v) != 0)
        return 0;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (*end != '\0' || errno != 0 || n == 0 || meta_get(db, "base_hash", v, sizeof v) != 0 ||
        sodium_hex2bin(hash, AUDIT_HASH_BYTES, v, strlen(v), NULL, &got, NULL) != 0 ||
        got != AUDIT_HASH_BYTES)
        return -1;
    *seq = n;
    return 0;
}

/* Walks entries and checkpoints together, in one read snapshot. */
static enum cf_err
walk(struct verifier *v, sqlite3 *db)
{
    sqlite3_stmt *es = NULL, *cs = NULL;
    struct ckpt c;
    struct row r;
    const char *why;
    uint8_t h[AUDIT_HASH_BYTES];
    enum cf_err rc;
    int has, step, base_ok = 0;

    genesis_hash(v->node, v->hash);
    if (sqlite3_prepare_v2(db, "SELECT " ENTRY_COLS " FROM entries ORDER BY seq", -1, &es, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT " CKPT_COLS " FROM checkpoints ORDER BY epoch", -1, &cs, NULL) != SQLITE_OK) {
        rc = cf_fail(v->em, CF_ERR_STORE, "audit: %s", sqlite3_errmsg(db));
        goto out;
    }
    if ((rc = next_ckpt(v, cs, &c, &has)) != CF_OK)
        goto out;
    /* Archived entries (audit archive): the live trail starts after the
     * base, a signed checkpoint; the checkpoints before it keep their
     * signatures and key chain, their entries are in the archive files. */
    if (base_read(db, &v->seq, v->hash) != 0) {
        rc = vfail(v, 1, -1, "archive base in meta malformed");
        goto out;
    }
    v->rep->archived = v->seq;
    while (has && v->seq > 0 && c.seq <= v->seq) {
        int at_base = c.seq == v->seq;

        if ((rc = check_ckpt_at(v, &c, at_base)) != CF_OK)
            goto out;
        if (at_base)
            base_ok = 1;
        if ((rc = next_ckpt(v, cs, &c, &has)) != CF_OK)
            goto out;
    }
    if (v->seq > 0 && !base_ok) {
        rc = vfail(v, v->seq + 1, -1, "archive base: entry %" PRIu64 " is not where a checkpoint is",
                   v->seq);
        goto out;
    }
    while ((step = sqlite3_step(es)) == SQLITE_ROW) {
        if ((why = row_read(es, &r)) != NULL) {
            rc = vfail(v, v->seq + 1, -1, "entry after %" PRIu64 ": %s", v->seq, why);
            goto out;
        }
        v->rep->entries++;
        if (r.seq != v->seq + 1) {
            rc = vfail(v, v->seq + 1, -1,
                       "entry %" PRIu64 " missing (sequence jumps from %" PRIu64 " to %" PRIu64 ")",
                       v->seq + 1, v->seq, r.seq);
            goto out;
        }
        entry_hash(v->hash, r.seq, r.time_ms, &r.t, h);
        if (memcmp(h, r.hash, sizeof h) != 0) {
            rc = vfail(v, r.seq, -1, "entry %" PRIu64 ": hash does not match", r.seq);
            goto out;
        }
        memcpy(v->hash, h, sizeof h);
        v->seq = r.seq;
        if (has && c.seq == r.seq) {
            if ((rc = check_ckpt(v, &c)) != CF_OK ||
                (rc = next_ckpt(v, cs, &c, &has)) != CF_OK)
                goto out;
        }
    }
    if (step != SQLITE_DONE) {
        rc = cf_fail(v->em, CF_ERR_STORE, "audit: cannot read entries: %s", sqlite3_errmsg(db));
        goto out;
    }
    if (has) {
        rc = vfail(v, v->seq + 1, (int64_t)c.epoch,
                   "trail truncated: checkpoint %" PRIu64 " covers entry %" PRIu64
                   " but the trail ends at entry %" PRIu64, c.epoch, c.seq, v->seq);
        goto out;
    }
    rc = CF_OK;
out:
    sqlite3_finalize(es);
    sqlite3_finalize(cs);
    return rc;
}

/* The checkpoints against the keyring's epoch and key, after the walk. */
static enum cf_err
check_keyring(struct verifier *v)
{
    uint64_t C = v->have_ck ? v->ck.epoch + 1 : 0, E = v->kr_epoch;

    if (C < E)
        return vfail(v, after_ck(v), (int64_t)C,
                     "trail truncated: keyring at epoch %" PRIu64 " but %" PRIu64
                     " checkpoints (checkpoints %" PRIu64 " to %" PRIu64 " missing)",
                     E, C, C, E - 1);
    if (C > E + 1)
        return vfail(v, 0, (int64_t)E + 1,
                     "keyring at epoch %" PRIu64 " but %" PRIu64
                     " checkpoints: the keyring is older than the trail (restored from a copy?)",
                     E, C);
    if (C == E + 1) {
        /* Signed, keyring not yet advanced: audit_open finishes it. */
        v->rep->advance_pending = 1;
        return CF_OK;
    }
    if (v->have_ck && memcmp(v->ck.next_pk, v->kr_pk, sizeof v->kr_pk) != 0)
        return vfail(v, 0, -1,
                     "keyring: its audit key is not the one checkpoint %" PRIu64
                     " announced (keyring replaced or rolled back)", v->ck.epoch);
    if (v->aseed != NULL && memcmp(v->apk, v->kr_pk, sizeof v->kr_pk) != 0)
        return vfail(v, 0, -1,
                     "keyring: its audit seed at epoch %" PRIu64
                     " does not derive from the auditor's seed (wrong seed, or keyring replaced)", E);
    return CF_OK;
}

/* Loads the keyring and takes the file's read snapshot so that both show
 * the same epoch (the writer may advance in between: then retry). */
static enum cf_err
snapshot(struct verifier *v, const char *kpath, sqlite3 *db)
{
    struct keyring *k1 = NULL, *k2 = NULL;
    enum cf_err rc = CF_OK;
    int tries;

    for (tries = 0; tries < AUDIT_VERIFY_TRIES; tries++) {
        if ((rc = keyring_load(kpath, &k1, v->em)) != CF_OK)
            return rc;
        if (exec(db, "BEGIN") != SQLITE_OK ||
            meta_node(db, v->node) != 0) {      /* the first read starts the snapshot */
            keyring_free(k1);
            if (!sqlite3_get_autocommit(db))
                exec(db, "COMMIT");
            return vfail(v, 0, -1, "audit.db holds no node id (not a trail, or edited)");
        }
        if ((rc = keyring_load(kpath, &k2, v->em)) != CF_OK) {
            keyring_free(k1);
            return rc;
        }
        if (keyring_audit_epoch(k1) == keyring_audit_epoch(k2))
            break;
        keyring_free(k1);
        keyring_free(k2);
        k1 = k2 = NULL;
        exec(db, "COMMIT");
    }
    if (k2 == NULL)
        return cf_fail(v->em, CF_ERR_STORE, "audit: the trail advanced %d times while being read; try again",
                       AUDIT_VERIFY_TRIES);
    if (strcmp(v->node, keyring_node_id(k2)) != 0)
        rc = vfail(v, 0, -1, "audit.db belongs to node %s, not to the keyring's node %s",
                   v->node, keyring_node_id(k2));
    v->kr_epoch = keyring_audit_epoch(k2);
    pk_of_seed(keyring_audit_seed(k2), v->kr_pk);
    keyring_free(k1);
    keyring_free(k2);
    return rc;
}

enum cf_err
audit_verify(const char *data_dir, const char *keyring_path,
             const uint8_t *initial_seed, struct audit_report *rep,
             struct cf_errmsg *em)
{
    char kpath[AUDIT_PATH_MAX], dpath[AUDIT_PATH_MAX];
    struct verifier v;
    struct keyring *kr = NULL;
    sqlite3 *db = NULL;
    enum cf_err rc;
    int n, v1;

    if (data_dir == NULL || rep == NULL)
        return cf_fail(em, CF_ERR_INPUT, "audit: missing argument");
    memset(rep, 0, sizeof *rep);
    rep->first_bad_epoch = -1;
    rep->seed_checked = initial_seed != NULL;
    memset(&v, 0, sizeof v);
    v.rep = rep;
    v.em = em;
    n = snprintf(dpath, sizeof dpath, "%s/%s", data_dir, AUDIT_DB_FILE);
    if (n < 0 || (size_t)n >= sizeof dpath)
        return cf_fail(em, CF_ERR_INPUT, "audit: data directory path too long");
    if (keyring_path == NULL)
        n = snprintf(kpath, sizeof kpath, "%s/keyring", data_dir);
    else
        n = snprintf(kpath, sizeof kpath, "%s", keyring_path);
    if (n < 0 || (size_t)n >= sizeof kpath)
        return cf_fail(em, CF_ERR_INPUT, "audit: keyring path too long");
    if (initial_seed != NULL) {
        v.aseed = sodium_malloc(KEYRING_SEED_BYTES);
        if (v.aseed == NULL)
            return cf_fail(em, CF_ERR_NOMEM, "audit: out of memory");
        memcpy(v.aseed, initial_seed, KEYRING_SEED_BYTES);
        pk_of_seed(v.aseed, v.apk);
    }
    if (access(dpath, F_OK) != 0) {
        /* Nothing written yet is fine; after a checkpoint it is deletion. */
        if ((rc = keyring_load(kpath, &kr, em)) != CF_OK)
            goto out;
        memcpy(v.node, keyring_node_id(kr), AUDIT_NODE_HEX + 1);
        v.kr_epoch = rep->keyring_epoch = keyring_audit_epoch(kr);
        pk_of_seed(keyring_audit_seed(kr), v.kr_pk);
        if (v.kr_epoch > 0)
            rc = vfail(&v, 1, 0, "trail missing: keyring at epoch %" PRIu64 " but no %s",
                       v.kr_epoch, AUDIT_DB_FILE);
        else
            rc = check_keyring(&v);
        goto out;
    }
    if ((rc = db_open(dpath, 0, &db, em)) != CF_OK)
        goto out;
    v1 = user_version(db);
    if (v1 < 0) {
        /* e.g. a read-only file system without the -wal and -shm files */
        rc = cf_fail(em, CF_ERR_STORE, "audit '%s': cannot read: %s", dpath, sqlite3_errmsg(db));
        goto out;
    }
    if (v1 != AUDIT_SCHEMA) {
        rc = cf_fail(em, CF_ERR_STORE, "audit '%s': schema version %d, this coffre reads %d",
                     dpath, v1, AUDIT_SCHEMA);
        goto out;
    }
    if ((rc = snapshot(&v, kpath, db)) != CF_OK)
        goto out;
    rep->keyring_epoch = v.kr_epoch;
    if ((rc = walk(&v, db)) != CF_OK)
        goto out;
    rep->unsigned_tail = v.seq - (v.have_ck ? v.ck.seq : 0);
    rc = check_keyring(&v);
out:
    if (db != NULL && !sqlite3_get_autocommit(db))
        exec(db, "COMMIT");
    sqlite3_close(db);
    keyring_free(kr);
    sodium_free(v.aseed);                   /* NULL is fine; zeroes */
    return rc;
}

/* ---- archiving -------------------------------------------------------- */

/*
 * An archive file is an SQLite file with the trail's own tables, holding
 * entries (from-1, to] and the checkpoints that cover them, and a meta
 * table: format, node, from_seq, to_seq, prev_hash (the chain hash of entry
 * from-1, the genesis for the first archive) and hash (entry to's, which
 * the live trail's checkpoint at `to` signs).  It is checked entry by entry
 * before it replaces anything, created mode 0400 and never overwritten.
 */
#define ARCHIVE_FORMAT "coffre-audit-archive-v1"

static void
hex_of(const uint8_t *b, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, b, n);
}

static int
meta_put(sqlite3 *db, const char *schema, const char *k, const char *v)
{
    char sql[96];
    sqlite3_stmt *s;
    int rc;

    snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO %s.meta (k, v) VALUES (?1, ?2)", schema);
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, v, -1, SQLITE_STATIC);
    rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(s);
    return rc;
}

/* BLAKE2b-256 of a whole file, in hex. */
static enum cf_err
file_digest(const char *path, char out[2 * AUDIT_HASH_BYTES + 1], struct cf_errmsg *em)
{
    crypto_generichash_state st;
    uint8_t buf[65536], h[AUDIT_HASH_BYTES];
    FILE *f = fopen(path, "rb");
    size_t n;

    if (f == NULL)
        return cf_fail(em, CF_ERR_IO, "audit archive '%s': cannot open: %s", path, strerror(errno));
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        crypto_generichash_update(&st, buf, n);
    if (ferror(f)) {
        fclose(f);
        return cf_fail(em, CF_ERR_IO, "audit archive '%s': cannot read", path);
    }
    fclose(f);
    crypto_generichash_final(&st, h, sizeof h);
    hex_of(h, sizeof h, out);
    return CF_OK;
}

/* Walks an archive's entries from prev_hash: they must chain, number
 * from..to without a gap and end on `hash`; each of its checkpoints must
 * sign the chain where it stands. */
static enum cf_err
archive_walk(sqlite3 *db, const char *schema, const char *node, uint64_t from, uint64_t to,
             const uint8_t prev[AUDIT_HASH_BYTES], const uint8_t last[AUDIT_HASH_BYTES],
             uint64_t *nckpt, struct cf_errmsg *em)
{
    sqlite3_stmt *es = NULL, *cs = NULL;
    char sql[160];
    uint8_t h[AUDIT_HASH_BYTES];
    uint64_t seq = from - 1;
    struct ckpt c, prevc;
    struct row r;
    enum cf_err rc = CF_ERR_AUTH;
    int has, step, have_prev = 0;
    const char *why;

    *nckpt = 0;
    memcpy(h, prev, sizeof h);
    snprintf(sql, sizeof sql, "SELECT " ENTRY_COLS " FROM %s.entries ORDER BY seq", schema);
    if (sqlite3_prepare_v2(db, sql, -1, &es, NULL) != SQLITE_OK)
        goto store;
    snprintf(sql, sizeof sql, "SELECT " CKPT_COLS " FROM %s.checkpoints ORDER BY epoch", schema);
    if (sqlite3_prepare_v2(db, sql, -1, &cs, NULL) != SQLITE_OK)
        goto store;
    has = sqlite3_step(cs) == SQLITE_ROW;
    if (has && (why = ckpt_read(cs, &c)) != NULL) {
        cf_fail(em, rc, "audit archive: checkpoint: %s", why);
        goto out;
    }
    while ((step = sqlite3_step(es)) == SQLITE_ROW) {
        if ((why = row_read(es, &r)) != NULL) {
            cf_fail(em, rc, "audit archive: entry after %" PRIu64 ": %s", seq, why);
            goto out;
        }
        if (r.seq != seq + 1) {
            cf_fail(em, rc, "audit archive: entry %" PRIu64 " missing", seq + 1);
            goto out;
        }
        entry_hash(h, r.seq, r.time_ms, &r.t, h);
        if (memcmp(h, r.hash, sizeof h) != 0) {
            cf_fail(em, rc, "audit archive: entry %" PRIu64 ": hash does not match", r.seq);
            goto out;
        }
        seq = r.seq;
        if (has && c.seq == seq) {
            if (memcmp(c.hash, h, sizeof h) != 0 || !ckpt_sig_ok(node, &c) ||
                (have_prev && (c.epoch != prevc.epoch + 1 ||
                               memcmp(c.pk, prevc.next_pk, sizeof c.pk) != 0))) {
                cf_fail(em, rc, "audit archive: checkpoint %" PRIu64 " does not verify", c.epoch);
                goto out;
            }
            prevc = c;
            have_prev = 1;
            (*nckpt)++;
            has = sqlite3_step(cs) == SQLITE_ROW;
            if (has && (why = ckpt_read(cs, &c)) != NULL) {
                cf_fail(em, rc, "audit archive: checkpoint: %s", why);
                goto out;
            }
        }
    }
    if (step != SQLITE_DONE)
        goto store;
    if (seq != to || memcmp(h, last, sizeof h) != 0 || has) {
        cf_fail(em, rc, "audit archive: entries end at %" PRIu64 ", not at %" PRIu64
                " with the signed hash", seq, to);
        goto out;
    }
    rc = CF_OK;
    goto out;
store:
    rc = cf_fail(em, CF_ERR_STORE, "audit archive: %s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(es);
    sqlite3_finalize(cs);
    return rc;
}

/* The live checkpoint covering exactly entry seq, if any: 0 found. */
static int
ckpt_at(sqlite3 *db, uint64_t seq, struct ckpt *c)
{
    sqlite3_stmt *s;
    int rc = -1;

    if (sqlite3_prepare_v2(db, "SELECT " CKPT_COLS " FROM checkpoints WHERE seq = ?1", -1, &s,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
    if (sqlite3_step(s) == SQLITE_ROW && ckpt_read(s, c) == NULL)
        rc = 0;
    sqlite3_finalize(s);
    return rc;
}

static enum cf_err
live_open(const char *data_dir, sqlite3 **db, char node[AUDIT_NODE_HEX + 1], struct cf_errmsg *em)
{
    char path[AUDIT_PATH_MAX];
    enum cf_err rc;
    int n = snprintf(path, sizeof path, "%s/%s", data_dir, AUDIT_DB_FILE);

    if (n < 0 || (size_t)n >= sizeof path)
        return cf_fail(em, CF_ERR_INPUT, "audit: data directory path too long");
    if (access(path, F_OK) != 0)
        return cf_fail(em, CF_ERR_NOTFOUND, "audit '%s': no trail", path);
    if ((rc = db_open(path, 0, db, em)) != CF_OK)
        return rc;
    if (user_version(*db) != AUDIT_SCHEMA || meta_node(*db, node) != 0) {
        sqlite3_close(*db);
        *db = NULL;
        return cf_fail(em, CF_ERR_STORE, "audit '%s': not a trail this coffre reads", path);
    }
    return CF_OK;
}

enum cf_err
audit_archive_write(const char *data_dir, int64_t before_ms, const char *out,
                    struct audit_archive_info *info, struct cf_errmsg *em)
{
    char node[AUDIT_NODE_HEX + 1], tmp[AUDIT_PATH_MAX], hx[2 * AUDIT_HASH_BYTES + 1], num[24];
    uint8_t prev[AUDIT_HASH_BYTES];
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    struct ckpt cut;
    uint64_t base = 0, nck;
    enum cf_err rc;
    int attached = 0, n;

    memset(info, 0, sizeof *info);
    if (access(out, F_OK) == 0)
        return cf_fail(em, CF_ERR_EXISTS, "audit archive '%s' exists: never overwritten", out);
    n = snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp)
        return cf_fail(em, CF_ERR_INPUT, "audit archive: path too long");
    if ((rc = live_open(data_dir, &db, node, em)) != CF_OK)
        return rc;
    genesis_hash(node, prev);
    if (base_read(db, &base, prev) != 0) {
        rc = cf_fail(em, CF_ERR_AUTH, "audit: archive base malformed; run 'coffre audit verify'");
        goto out;
    }
    /* The cut: the last checkpoint before the date, not the trail's last
     * checkpoint (audit_open re-reads the trail from that one's entry). */
    if (sqlite3_prepare_v2(db, "SELECT " CKPT_COLS " FROM checkpoints c WHERE c.seq > ?1"
                           " AND c.epoch < (SELECT max(epoch) FROM checkpoints)"
                           " AND (SELECT time_ms FROM entries e WHERE e.seq = c.seq) < ?2"
                           " ORDER BY epoch DESC LIMIT 1", -1, &s, NULL) != SQLITE_OK) {
        rc = cf_fail(em, CF_ERR_STORE, "audit: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_int64(s, 1, (sqlite3_int64)base);
    sqlite3_bind_int64(s, 2, before_ms);
    if (sqlite3_step(s) != SQLITE_ROW || ckpt_read(s, &cut) != NULL) {
        rc = cf_fail(em, CF_ERR_NOTFOUND, "audit archive: nothing to archive before this date "
                     "(an archive ends at a signed checkpoint before it, and the last one stays)");
        goto out;
    }
    sqlite3_finalize(s);
    s = NULL;
    {
        /* created here (the connection does not create files): empty is
         * an empty database to SQLite */
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

        if (fd < 0) {
            rc = cf_fail(em, CF_ERR_IO, "audit archive '%s': cannot create: %s", tmp, strerror(errno));
            goto out;
        }
        close(fd);
    }
    if (sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS ar", -1, &s, NULL) != SQLITE_OK) {
        rc = cf_fail(em, CF_ERR_STORE, "audit: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(s, 1, tmp, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE) {
        rc = cf_fail(em, CF_ERR_IO, "audit archive '%s': cannot create: %s", tmp, sqlite3_errmsg(db));
        goto out;
    }
    attached = 1;
    sqlite3_finalize(s);
    s = NULL;
    snprintf(num, sizeof num, "%" PRIu64, base);
    /* One read snapshot of the live trail; the archive's tables copied. */
    if (exec(db, "PRAGMA ar.journal_mode = DELETE") != SQLITE_OK ||
        exec(db, "BEGIN IMMEDIATE") != SQLITE_OK ||
        exec(db, "CREATE TABLE ar.meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) STRICT;"
                 "CREATE TABLE ar.entries ("
                 "  seq INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL,"
                 "  actor TEXT NOT NULL, session TEXT NOT NULL, addr TEXT NOT NULL,"
                 "  action TEXT NOT NULL, subject TEXT NOT NULL, fields TEXT NOT NULL,"
                 "  outcome TEXT NOT NULL, hash BLOB NOT NULL) STRICT;"
                 "CREATE TABLE ar.checkpoints ("
                 "  epoch INTEGER PRIMARY KEY, seq INTEGER NOT NULL, hash BLOB NOT NULL,"
                 "  pk BLOB NOT NULL, next_pk BLOB NOT NULL, time_ms INTEGER NOT NULL,"
                 "  sig BLOB NOT NULL) STRICT;") != SQLITE_OK) {
        rc = cf_fail(em, CF_ERR_STORE, "audit archive: %s", sqlite3_errmsg(db));
        goto out;
    }
    if (sqlite3_prepare_v2(db, "INSERT INTO ar.entries SELECT * FROM main.entries WHERE seq > ?1 "
                           "AND seq <= ?2 ORDER BY seq", -1, &s, NULL) != SQLITE_OK)
        goto sqlfail;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)base);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)cut.seq);
    if (sqlite3_step(s) != SQLITE_DONE)
        goto sqlfail;
    info->entries = (uint64_t)sqlite3_changes(db);
    sqlite3_finalize(s);
    if (sqlite3_prepare_v2(db, "INSERT INTO ar.checkpoints SELECT * FROM main.checkpoints "
                           "WHERE seq > ?1 AND seq <= ?2", -1, &s, NULL) != SQLITE_OK)
        goto sqlfail;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)base);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)cut.seq);
    if (sqlite3_step(s) != SQLITE_DONE)
        goto sqlfail;
    sqlite3_finalize(s);
    s = NULL;
    info->from_seq = base + 1;
    info->to_seq = cut.seq;
    snprintf(num, sizeof num, "%" PRIu64, info->from_seq);
    if (meta_put(db, "ar", "format", ARCHIVE_FORMAT) != 0 || meta_put(db, "ar", "node", node) != 0 ||
        meta_put(db, "ar", "from_seq", num) != 0)
        goto sqlfail;
    snprintf(num, sizeof num, "%" PRIu64, info->to_seq);
    hex_of(prev, sizeof prev, hx);
    if (meta_put(db, "ar", "to_seq", num) != 0 || meta_put(db, "ar", "prev_hash", hx) != 0)
        goto sqlfail;
    hex_of(cut.hash, sizeof cut.hash, hx);
    if (meta_put(db, "ar", "hash", hx) != 0 || exec(db, "COMMIT") != SQLITE_OK)
        goto sqlfail;
    /* Checked as written, before anything depends on it. */
    if ((rc = archive_walk(db, "ar", node, info->from_seq, info->to_seq, prev, cut.hash, &nck,
                           em)) != CF_OK)
        goto out;
    info->checkpoints = nck;
    if (exec(db, "DETACH DATABASE ar") != SQLITE_OK)
        goto sqlfail;
    attached = 0;
    {
        int fd = open(tmp, O_RDONLY | O_CLOEXEC);

        if (fd < 0 || fsync(fd) != 0 || fchmod(fd, 0400) != 0) {
            if (fd >= 0)
                close(fd);
            rc = cf_fail(em, CF_ERR_IO, "audit archive '%s': cannot sync: %s", tmp, strerror(errno));
            goto out;
        }
        close(fd);
    }
    if ((rc = file_digest(tmp, info->digest, em)) != CF_OK)
        goto out;
    /* link, not rename: an existing file is never replaced */
    if (link(tmp, out) != 0) {
        rc = cf_fail(em, CF_ERR_IO, "audit archive '%s': %s", out, strerror(errno));
        goto out;
    }
    rc = CF_OK;
    goto out;
sqlfail:
    rc = cf_fail(em, CF_ERR_STORE, "audit archive: %s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(s);
    if (db != NULL && !sqlite3_get_autocommit(db))
        exec(db, "ROLLBACK");
    if (attached)
        exec(db, "DETACH DATABASE ar");
    sqlite3_close(db);
    unlink(tmp);
    return rc;
}

enum cf_err
audit_archive_commit(const char *data_dir, const struct audit_archive_info *info,
                     struct cf_errmsg *em)
{
    char node[AUDIT_NODE_HEX + 1], num[24], hx[2 * AUDIT_HASH_BYTES + 1];
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    struct ckpt c;
    enum cf_err rc;

    if ((rc = live_open(data_dir, &db, node, em)) != CF_OK)
        return rc;
    if (ckpt_at(db, info->to_seq, &c) != 0) {
        rc = cf_fail(em, CF_ERR_STORE, "audit archive: no checkpoint at entry %" PRIu64, info->to_seq);
        goto out;
    }
    snprintf(num, sizeof num, "%" PRIu64, info->to_seq);
    hex_of(c.hash, sizeof c.hash, hx);
    /* The base and the deletion commit together. */
    if (exec(db, "BEGIN IMMEDIATE") != SQLITE_OK ||
        sqlite3_prepare_v2(db, "DELETE FROM entries WHERE seq <= ?1", -1, &s, NULL) != SQLITE_OK)
        goto sqlfail;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)info->to_seq);
    if (sqlite3_step(s) != SQLITE_DONE || meta_put(db, "main", "base_seq", num) != 0 ||
        meta_put(db, "main", "base_hash", hx) != 0 || exec(db, "COMMIT") != SQLITE_OK)
        goto sqlfail;
    sqlite3_finalize(s);
    s = NULL;
    /* The file shrinks only when rewritten; a failure here loses nothing. */
    if (exec(db, "VACUUM") != SQLITE_OK)
        log_warnx("audit archive: VACUUM failed (%s); the trail keeps its size until the next one",
                  sqlite3_errmsg(db));
    rc = CF_OK;
    goto out;
sqlfail:
    rc = cf_fail(em, CF_ERR_STORE, "audit archive: %s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(s);
    if (db != NULL && !sqlite3_get_autocommit(db))
        exec(db, "ROLLBACK");
    sqlite3_close(db);
    return rc;
}

enum cf_err
audit_verify_archive(const char *data_dir, const char *archive, const char *const *others,
                     size_t nothers, struct audit_archive_info *info, struct cf_errmsg *em)
{
    char node[AUDIT_NODE_HEX + 1], fields[AUDIT_FIELDS_MAX + 1];
    uint8_t prev[AUDIT_HASH_BYTES];
    struct ckpt end, before;
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    size_t got, i;
    enum cf_err rc;
    int found, step;

    memset(info, 0, sizeof *info);
    if (access(archive, R_OK) != 0)
        return cf_fail(em, CF_ERR_IO, "audit archive '%s': cannot read: %s", archive, strerror(errno));
    if ((rc = file_digest(archive, info->digest, em)) != CF_OK ||
        (rc = live_open(data_dir, &db, node, em)) != CF_OK)
        return rc;
    if (sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS ar", -1, &s, NULL) != SQLITE_OK)
        goto sqlfail;
    sqlite3_bind_text(s, 1, archive, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        goto sqlfail;
    sqlite3_finalize(s);
    s = NULL;
    rc = CF_ERR_AUTH;
    {
        sqlite3_stmt *m;
        const char *keys[] = { "format", "node", "from_seq", "to_seq", "prev_hash", "hash" };
        char val[6][80];
        size_t k;

        if (sqlite3_prepare_v2(db, "SELECT v FROM ar.meta WHERE k = ?1", -1, &m, NULL) != SQLITE_OK)
            goto sqlfail;
        for (k = 0; k < 6; k++) {
            val[k][0] = '\0';
            sqlite3_bind_text(m, 1, keys[k], -1, SQLITE_STATIC);
            if (sqlite3_step(m) == SQLITE_ROW && sqlite3_column_bytes(m, 0) < 80)
                snprintf(val[k], sizeof val[k], "%s", (const char *)sqlite3_column_text(m, 0));
            sqlite3_reset(m);
        }
        sqlite3_finalize(m);
        if (strcmp(val[0], ARCHIVE_FORMAT) != 0) {
            cf_fail(em, rc, "audit archive '%s': not an archive of this format", archive);
            goto out;
        }
        if (strcmp(val[1], node) != 0) {
            cf_fail(em, rc, "audit archive '%s': of node %.32s, not this trail's %s", archive, val[1], node);
            goto out;
        }
        info->from_seq = strtoull(val[2], NULL, 10);
        info->to_seq = strtoull(val[3], NULL, 10);
        if (info->from_seq == 0 || info->to_seq < info->from_seq ||
            sodium_hex2bin(prev, sizeof prev, val[4], strlen(val[4]), NULL, &got, NULL) != 0 ||
            got != sizeof prev) {
            cf_fail(em, rc, "audit archive '%s': meta malformed", archive);
            goto out;
        }
    }
    /* Its ends are pinned by the live trail's checkpoints: the one at `to`
     * signs its last hash, the one at from-1 (or the genesis) its start. */
    if (ckpt_at(db, info->to_seq, &end) != 0) {
        cf_fail(em, rc, "audit archive '%s': the live trail has no checkpoint at entry %" PRIu64,
                archive, info->to_seq);
        goto out;
    }
    if (info->from_seq == 1) {
        uint8_t g[AUDIT_HASH_BYTES];

        genesis_hash(node, g);
        found = memcmp(g, prev, sizeof g) == 0;
    } else
        found = ckpt_at(db, info->from_seq - 1, &before) == 0 &&
                memcmp(before.hash, prev, sizeof prev) == 0;
    if (!found) {
        cf_fail(em, rc, "audit archive '%s': its first entry does not follow a signed checkpoint",
                archive);
        goto out;
    }
    if (!ckpt_sig_ok(node, &end)) {
        cf_fail(em, rc, "audit archive '%s': checkpoint %" PRIu64 " signature invalid", archive,
                end.epoch);
        goto out;
    }
    if ((rc = archive_walk(db, "ar", node, info->from_seq, info->to_seq, prev, end.hash,
                           &info->checkpoints, em)) != CF_OK)
        goto out;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM ar.entries", -1, &s, NULL) != SQLITE_OK)
        goto sqlfail;
    if (sqlite3_step(s) == SQLITE_ROW)
        info->entries = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    s = NULL;
    /* The live trail recorded this very file when it was made. */
    snprintf(fields, sizeof fields, "blake2b:%s", info->digest);
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM main.entries WHERE action = 'audit.archive' "
                           "AND fields = ?1 AND outcome = 'ok'", -1, &s, NULL) != SQLITE_OK)
        goto sqlfail;
    sqlite3_bind_text(s, 1, fields, -1, SQLITE_STATIC);
    found = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0;
    sqlite3_finalize(s);
    s = NULL;
    /* ... or a later archive holds that entry now */
    for (i = 0; !found && i < nothers; i++) {
        if (sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS other", -1, &s, NULL) != SQLITE_OK)
            goto sqlfail;
        sqlite3_bind_text(s, 1, others[i], -1, SQLITE_STATIC);
        step = sqlite3_step(s);
        sqlite3_finalize(s);
        s = NULL;
        if (step != SQLITE_DONE)
            continue;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM other.entries WHERE action = 'audit.archive' "
                               "AND fields = ?1 AND outcome = 'ok'", -1, &s, NULL) == SQLITE_OK) {
            sqlite3_bind_text(s, 1, fields, -1, SQLITE_STATIC);
            found = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0;
        }
        sqlite3_finalize(s);
        s = NULL;
        exec(db, "DETACH DATABASE other");
    }
    if (!found) {
        rc = cf_fail(em, CF_ERR_AUTH, "audit archive '%s': the live trail has no audit.archive entry "
                     "for this file (digest %s)", archive, info->digest);
        goto out;
    }
    rc = CF_OK;
    goto out;
sqlfail:
    rc = cf_fail(em, CF_ERR_STORE, "audit archive '%s': %s", archive, sqlite3_errmsg(db));
out:
    sqlite3_finalize(s);
    exec(db, "DETACH DATABASE ar");
    sqlite3_close(db);
    return rc;
}
