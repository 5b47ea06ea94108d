/*
 * test_audit.c - the audit trail: chaining, checkpoints and epochs, every
 * kind of tampering (edit, delete, insert, truncate, re-sign with the
 * current keyring), crash recovery, group commit under concurrency, the
 * bounded queue, failing closed, bad entries, and keyring_audit_advance.
 *
 * Each tampering test also shows the untouched trail verifying, so a
 * verifier that refused everything would fail here too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../../src/audit.c"
#include "testutil.h"

struct fx {
    char root[256];
    char dir[300];              /* root/data: keyring and audit.db */
    char kpath[320];
    char dbpath[320];
    uint8_t seed[KEYRING_SEED_BYTES];     /* the auditor's copy */
    struct keyring *kr;
};

static int
setup(void **state)
{
    static const char *const codes[] = { "10" };
    struct fx *f = calloc(1, sizeof *f);
    struct cf_errmsg em = { "" };

    snprintf(f->root, sizeof f->root, "%s", tu_tmpdir());
    snprintf(f->dir, sizeof f->dir, "%s/data", f->root);
    snprintf(f->kpath, sizeof f->kpath, "%s/keyring", f->dir);
    snprintf(f->dbpath, sizeof f->dbpath, "%s/audit.db", f->dir);
    assert_int_equal(mkdir(f->dir, 0700), 0);
    if (keyring_create(f->kpath, codes, 1, f->seed, &em) != CF_OK ||
        keyring_load(f->kpath, &f->kr, &em) != CF_OK)
        fail_msg("keyring: %s", em.msg);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    keyring_free(f->kr);
    tu_rmrf(f->root);
    free(f);
    return 0;
}

/* The keyring as a restarted process would load it. */
static void
reload_keyring(struct fx *f)
{
    struct cf_errmsg em = { "" };

    keyring_free(f->kr);
    f->kr = NULL;
    if (keyring_load(f->kpath, &f->kr, &em) != CF_OK)
        fail_msg("keyring_load: %s", em.msg);
}

static void
mk_entry(struct audit_entry *e, unsigned i)
{
    memset(e, 0, sizeof *e);
    snprintf(e->actor, sizeof e->actor, "acct:%032x", i % 7);
    snprintf(e->session, sizeof e->session, "%016x", i % 13);
    snprintf(e->addr, sizeof e->addr, "192.0.2.%u", i % 250);
    snprintf(e->action, sizeof e->action, "student.read");
    snprintf(e->subject, sizeof e->subject, "%032x,%032x", i, i + 1);
    snprintf(e->fields, sizeof e->fields, "family_name,birth_date");
    snprintf(e->outcome, sizeof e->outcome, "ok");
}

static struct audit *
open_ok(struct fx *f, unsigned ckpt_entries, unsigned ckpt_ms, unsigned queue,
        unsigned batch)
{
    struct audit_opts o = { ckpt_entries, ckpt_ms, queue, batch };
    struct cf_errmsg em = { "" };
    struct audit *a = NULL;

    if (audit_open(f->dir, f->kr, &o, &a, &em) != CF_OK)
        fail_msg("audit_open: %s", em.msg);
    return a;
}

static void
append_range(struct audit *a, unsigned from, unsigned n)
{
    struct audit_entry e;
    struct cf_errmsg em = { "" };
    unsigned i;

    for (i = from; i < from + n; i++) {
        mk_entry(&e, i);
        if (audit_append(a, &e, &em) != CF_OK)
            fail_msg("audit_append %u: %s", i, em.msg);
    }
}

/* A closed trail of n entries, a checkpoint every ckpt (time never
 * triggers one), and the final one at close. */
static void
build(struct fx *f, unsigned n, unsigned ckpt)
{
    struct audit *a = open_ok(f, ckpt, AUDIT_CHECKPOINT_MS_MAX, 0, 0);

    append_range(a, 1, n);
    audit_close(a);
}

static void
expect_ok(struct fx *f, const uint8_t *seed, struct audit_report *rep)
{
    struct cf_errmsg em = { "" };
    enum cf_err rc = audit_verify(f->dir, NULL, seed, rep, &em);

    if (rc != CF_OK)
        fail_msg("verify: %s (%s)", cf_err_str(rc), em.msg);
    assert_string_equal(rep->why, "");
    assert_int_equal(rep->first_bad_seq, 0);
    assert_int_equal(rep->first_bad_epoch, -1);
    assert_int_equal(rep->seed_checked, seed != NULL);
}

static void
expect_bad(struct fx *f, const uint8_t *seed, uint64_t seq, int64_t epoch,
           const char *want)
{
    struct audit_report rep;
    struct cf_errmsg em = { "" };
    enum cf_err rc = audit_verify(f->dir, NULL, seed, &rep, &em);

    if (rc != CF_ERR_AUTH || strstr(rep.why, want) == NULL ||
        strstr(em.msg, want) == NULL || rep.first_bad_seq != seq ||
        rep.first_bad_epoch != epoch)
        fail_msg("verify: %s, why '%s', seq %llu, epoch %lld; wanted '%s', seq %llu, epoch %lld",
                 cf_err_str(rc), rep.why, (unsigned long long)rep.first_bad_seq,
                 (long long)rep.first_bad_epoch, want, (unsigned long long)seq,
                 (long long)epoch);
}

/* ---- direct access to audit.db, as an intruder has it ----------------- */

static sqlite3 *
db_of(struct fx *f)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open_v2(f->dbpath, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void
sql(struct fx *f, const char *q)
{
    sqlite3 *db = db_of(f);
    char *err = NULL;

    if (sqlite3_exec(db, q, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", q, err);
    sqlite3_close(db);
}

static long long
sql_int(struct fx *f, const char *q)
{
    sqlite3 *db = db_of(f);
    sqlite3_stmt *s;
    long long v;

    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void
copy_file(const char *from, const char *to)
{
    size_t n;
    unsigned char *b = tu_read(from, &n);

    assert_non_null(b);
    assert_int_equal(tu_write(to, b, n), 0);
    free(b);
}

static void
save_trail(struct fx *f)
{
    char p[400];

    snprintf(p, sizeof p, "%s.orig", f->dbpath);
    assert_int_not_equal(access(f->dbpath, F_OK), -1);
    copy_file(f->dbpath, p);
}

static void
restore_trail(struct fx *f)
{
    char p[400];

    snprintf(p, sizeof p, "%s-wal", f->dbpath);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->dbpath);
    unlink(p);
    snprintf(p, sizeof p, "%s.orig", f->dbpath);
    copy_file(p, f->dbpath);
}

/* Recomputes every entry's chain hash from genesis: the format is public,
 * so an intruder can always do this after an edit. */
static void
rehash_all(struct fx *f)
{
    sqlite3 *db = db_of(f);
    sqlite3_stmt *s, *u;
    struct row r;
    uint8_t h[AUDIT_HASH_BYTES], (*hs)[AUDIT_HASH_BYTES] = NULL;
    uint64_t *seqs = NULL;
    size_t n = 0, i;

    genesis_hash(keyring_node_id(f->kr), h);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT " ENTRY_COLS " FROM entries ORDER BY seq",
                                        -1, &s, NULL), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
        assert_null(row_read(s, &r));
        entry_hash(h, r.seq, r.time_ms, &r.t, h);
        hs = realloc(hs, (n + 1) * sizeof *hs);
        seqs = realloc(seqs, (n + 1) * sizeof *seqs);
        assert_non_null(hs);
        assert_non_null(seqs);
        memcpy(hs[n], h, sizeof h);
        seqs[n++] = r.seq;
    }
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(db, "UPDATE entries SET hash = ?1 WHERE seq = ?2",
                                        -1, &u, NULL), SQLITE_OK);
    for (i = 0; i < n; i++) {
        sqlite3_bind_blob(u, 1, hs[i], AUDIT_HASH_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64(u, 2, (sqlite3_int64)seqs[i]);
        assert_int_equal(sqlite3_step(u), SQLITE_DONE);
        sqlite3_reset(u);
    }
    sqlite3_finalize(u);
    sqlite3_close(db);
    free(hs);
    free(seqs);
}

#define MAX_CK 64

static size_t
read_ckpts(struct fx *f, struct ckpt *c)
{
    sqlite3 *db = db_of(f);
    sqlite3_stmt *s;
    size_t n = 0;

    assert_int_equal(sqlite3_prepare_v2(db, "SELECT " CKPT_COLS " FROM checkpoints ORDER BY epoch",
                                        -1, &s, NULL), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW && n < MAX_CK)
        assert_null(ckpt_read(s, &c[n++]));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/*
 * Re-signs checkpoints from..last as an intruder holding the current
 * keyring can: the chain hashes are recomputed, each re-signed epoch gets
 * a fresh key (its real seed was erased), and the last checkpoint
 * announces the stolen keyring's key so the keyring still matches.
 */
static void
resign_from(struct fx *f, uint64_t from, const struct keyring *stolen)
{
    struct ckpt c[MAX_CK];
    uint8_t seeds[MAX_CK][KEYRING_SEED_BYTES], sk[crypto_sign_SECRETKEYBYTES];
    uint8_t msg[CKPT_MSG_BYTES];
    size_t n = read_ckpts(f, c), e;
    sqlite3 *db;
    sqlite3_stmt *s, *u;

    assert_true(from < n);
    db = db_of(f);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT hash FROM entries WHERE seq = ?1", -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
        "UPDATE checkpoints SET hash = ?1, pk = ?2, next_pk = ?3, sig = ?4 WHERE epoch = ?5",
        -1, &u, NULL), SQLITE_OK);
    for (e = from; e < n; e++)
        randombytes_buf(seeds[e], KEYRING_SEED_BYTES);
    for (e = from; e < n; e++) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)c[e].seq);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        memcpy(c[e].hash, sqlite3_column_blob(s, 0), AUDIT_HASH_BYTES);
        sqlite3_reset(s);
        crypto_sign_seed_keypair(c[e].pk, sk, seeds[e]);
        if (e + 1 < n)
            pk_of_seed(seeds[e + 1], c[e].next_pk);
        else
            pk_of_seed(keyring_audit_seed(stolen), c[e].next_pk);
        ckpt_message(keyring_node_id(stolen), &c[e], msg);
        crypto_sign_detached(c[e].sig, NULL, msg, sizeof msg, sk);
        sqlite3_bind_blob(u, 1, c[e].hash, AUDIT_HASH_BYTES, SQLITE_STATIC);
        sqlite3_bind_blob(u, 2, c[e].pk, AUDIT_PK_BYTES, SQLITE_STATIC);
        sqlite3_bind_blob(u, 3, c[e].next_pk, AUDIT_PK_BYTES, SQLITE_STATIC);
        sqlite3_bind_blob(u, 4, c[e].sig, AUDIT_SIG_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64(u, 5, (sqlite3_int64)e);
        assert_int_equal(sqlite3_step(u), SQLITE_DONE);
        sqlite3_reset(u);
    }
    sodium_memzero(sk, sizeof sk);
    sqlite3_finalize(s);
    sqlite3_finalize(u);
    sqlite3_close(db);
}

/* ---- a trail that verifies -------------------------------------------- */

static void
test_append_verify_counts(void **state)
{
    struct fx *f = *state;
    struct audit_report rep;
    struct audit *a = open_ok(f, 10, AUDIT_CHECKPOINT_MS_MAX, 0, 0);
    struct ckpt c[MAX_CK];

    append_range(a, 1, 35);
    assert_int_equal(audit_last_seq(a), 35);
    assert_int_equal(audit_queue_depth(a), 0);
    assert_int_equal(audit_status(a), CF_OK);
    /* While open (the writer may be advancing the keyring right now). */
    expect_ok(f, NULL, &rep);
    assert_int_equal(rep.entries, 35);
    assert_int_equal(rep.checkpoints, 3);
    assert_int_equal(rep.epochs_checked, 3);
    assert_int_equal(rep.unsigned_tail, 5);
    audit_close(a);

    /* Close signed the last five. */
    assert_int_equal(keyring_audit_epoch(f->kr), 4);
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.entries, 35);
    assert_int_equal(rep.checkpoints, 4);
    assert_int_equal(rep.epochs_checked, 4);
    assert_int_equal(rep.unsigned_tail, 0);
    assert_int_equal(rep.keyring_epoch, 4);
    assert_int_equal(rep.advance_pending, 0);
    assert_int_equal(read_ckpts(f, c), 4);
    assert_int_equal(c[0].seq, 10);
    assert_int_equal(c[1].seq, 20);
    assert_int_equal(c[2].seq, 30);
    assert_int_equal(c[3].seq, 35);
    /* The file on disk agrees with the keyring in memory. */
    reload_keyring(f);
    assert_int_equal(keyring_audit_epoch(f->kr), 4);
    /* The service's alone, with its WAL. */
    {
        struct stat sb;

        assert_int_equal(stat(f->dbpath, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
    }
    /* Nothing but what was submitted: no personal data can enter. */
    assert_int_equal(sql_int(f, "SELECT count(*) FROM entries WHERE outcome = 'ok' "
                                "AND action = 'student.read'"), 35);
    audit_close(NULL);
}

static void
test_reopen_continues_chain(void **state)
{
    struct fx *f = *state;
    struct audit_report rep;
    struct cf_errmsg em = { "" };
    struct audit *a;

    build(f, 12, 10);
    assert_int_equal(keyring_audit_epoch(f->kr), 2);
    a = open_ok(f, 10, AUDIT_CHECKPOINT_MS_MAX, 0, 0);
    assert_int_equal(audit_last_seq(a), 12);
    append_range(a, 13, 5);
    assert_int_equal(audit_last_seq(a), 17);
    /* Stop without the final checkpoint, as a crash would. */
    pthread_mutex_lock(&a->mu);
    a->final_checkpoint = 0;
    pthread_mutex_unlock(&a->mu);
    audit_close(a);
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.entries, 17);
    assert_int_equal(rep.unsigned_tail, 5);
    assert_int_equal(rep.checkpoints, 2);

    /* The unsigned tail is re-checked: damaged, the daemon will not sign
     * over it ... */
    save_trail(f);
    reload_keyring(f);
    sql(f, "UPDATE entries SET addr = '203.0.113.9' WHERE seq = 15");
    assert_int_equal(audit_open(f->dir, f->kr, NULL, &a, &em), CF_ERR_AUTH);
    assert_non_null(strstr(em.msg, "entry 15: hash does not match"));
    sql(f, "DELETE FROM entries WHERE seq = 15");
    assert_int_equal(audit_open(f->dir, f->kr, NULL, &a, &em), CF_ERR_AUTH);
    assert_non_null(strstr(em.msg, "entry 15 missing"));
    restore_trail(f);
    /* ... intact, it is carried on. */
    a = open_ok(f, 10, AUDIT_CHECKPOINT_MS_MAX, 0, 0);
    assert_int_equal(a->unsigned_n, 5);
    append_range(a, 18, 6);               /* 5 + 5 reach a checkpoint at 22 */
    audit_close(a);
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.entries, 23);
    assert_int_equal(rep.checkpoints, 4);  /* 10, 12, 22, 23 */
    assert_int_equal(rep.unsigned_tail, 0);
    assert_int_equal(sql_int(f, "SELECT seq FROM checkpoints WHERE epoch = 2"), 22);
}

/* ---- tampering with entries ------------------------------------------ */

static void
test_edit_any_entry_column(void **state)
{
    static const char *const edits[] = {
        "UPDATE entries SET time_ms = time_ms + 1 WHERE seq = 23",
        "UPDATE entries SET actor = 'cli' WHERE seq = 23",
        "UPDATE entries SET session = session || 'x' WHERE seq = 23",
        "UPDATE entries SET addr = '198.51.100.7' WHERE seq = 23",
        "UPDATE entries SET action = 'login' WHERE seq = 23",
        "UPDATE entries SET subject = replace(subject, '7', '8') WHERE seq = 23",
        "UPDATE entries SET fields = 'family_name' WHERE seq = 23",
        "UPDATE entries SET outcome = 'denied' WHERE seq = 23",
        "UPDATE entries SET hash = randomblob(32) WHERE seq = 23",
    };
    struct fx *f = *state;
    struct audit_report rep;
    size_t i;

    build(f, 55, 10);
    save_trail(f);
    for (i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        sql(f, edits[i]);
        expect_bad(f, NULL, 23, -1, "entry 23: hash does not match");
        expect_bad(f, f->seed, 23, -1, "entry 23: hash does not match");
        restore_trail(f);
        expect_ok(f, f->seed, &rep);
        assert_int_equal(rep.entries, 55);
    }
    /* A hash of the wrong size is named too. */
    sql(f, "UPDATE entries SET hash = x'00' WHERE seq = 23");
    expect_bad(f, NULL, 23, -1, "entry after 22: hash malformed");
}

/* Edit, then recompute every chain hash: the chain is consistent again,
 * but the checkpoint covering the entry signed the old hash. */
static void
test_edit_and_rehash_caught_by_checkpoint(void **state)
{
    struct fx *f = *state;

    build(f, 55, 10);
    sql(f, "UPDATE entries SET subject = '00000000000000000000000000000000' WHERE seq = 23");
    rehash_all(f);
    expect_bad(f, NULL, 21, 2, "checkpoint 2: hash does not match entry 30");
}

static void
test_delete_entry(void **state)
{
    struct fx *f = *state;
    struct audit_report rep;

    build(f, 55, 10);
    save_trail(f);
    sql(f, "DELETE FROM entries WHERE seq = 23");
    expect_bad(f, NULL, 23, -1, "entry 23 missing (sequence jumps from 22 to 24)");
    restore_trail(f);
    sql(f, "DELETE FROM entries WHERE seq = 1");
    expect_bad(f, NULL, 1, -1, "entry 1 missing (sequence jumps from 0 to 2)");
    restore_trail(f);
    /* Deleted, renumbered and rehashed: the checkpoints still differ. */
    sql(f, "DELETE FROM entries WHERE seq = 23;"
           "UPDATE entries SET seq = seq + 1000000 WHERE seq > 23;"
           "UPDATE entries SET seq = seq - 1000001 WHERE seq > 1000000;");
    rehash_all(f);
    expect_bad(f, NULL, 21, 2, "checkpoint 2: hash does not match entry 30");
    restore_trail(f);
    expect_ok(f, f->seed, &rep);
}

static void
test_insert_entry(void **state)
{
    struct fx *f = *state;
    struct audit_report rep;

    build(f, 55, 10);
    save_trail(f);
    /* In the middle, the others moved up by one. */
    sql(f, "UPDATE entries SET seq = seq + 1000000 WHERE seq >= 23;"
           "UPDATE entries SET seq = seq - 999999 WHERE seq > 1000000;"
           "INSERT INTO entries VALUES (23, 1700000000000, 'cli', '', '', 'student.read',"
           " 'ffffffffffffffffffffffffffffffff', 'address', 'ok', randomblob(32));");
    expect_bad(f, NULL, 23, -1, "entry 23: hash does not match");
    /* With every hash recomputed, checkpoint 2 no longer matches. */
    rehash_all(f);
    expect_bad(f, NULL, 21, 2, "checkpoint 2: hash does not match entry 30");
    restore_trail(f);
    /* At the end, after the last checkpoint. */
    sql(f, "INSERT INTO entries VALUES (56, 1700000000000, 'cli', '', '', 'student.read',"
           " '', '', 'ok', randomblob(32));");
    expect_bad(f, NULL, 56, -1, "entry 56: hash does not match");
    restore_trail(f);
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.entries, 55);
}

static void
test_truncate_entries(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    struct audit *a = NULL;

    build(f, 55, 10);
    sql(f, "DELETE FROM entries WHERE seq > 50");
    expect_bad(f, NULL, 51, 5,
               "trail truncated: checkpoint 5 covers entry 55 but the trail ends at entry 50");
    /* The daemon refuses to carry on from it. */
    assert_int_equal(audit_open(f->dir, f->kr, NULL, &a, &em), CF_ERR_AUTH);
    assert_null(a);
    assert_non_null(strstr(em.msg, "truncated"));
}

/* ---- tampering with checkpoints ---------------------------------------- */

static void
test_edit_checkpoint(void **state)
{
    static const struct {
        const char *sql;
        const char *want;
    } edits[] = {
        { "UPDATE checkpoints SET sig = randomblob(64) WHERE epoch = 3", "checkpoint 3: signature invalid" },
        { "UPDATE checkpoints SET time_ms = time_ms + 1 WHERE epoch = 3", "checkpoint 3: signature invalid" },
        { "UPDATE checkpoints SET next_pk = randomblob(32) WHERE epoch = 3", "checkpoint 3: signature invalid" },
        { "UPDATE checkpoints SET hash = randomblob(32) WHERE epoch = 3", "checkpoint 3: hash does not match entry 40" },
        { "UPDATE checkpoints SET seq = 39 WHERE epoch = 3", "checkpoint 3: hash does not match entry 39" },
        { "UPDATE checkpoints SET pk = randomblob(32) WHERE epoch = 3",
          "checkpoint 3: public key is not the one checkpoint 2 announced" },
        { "UPDATE checkpoints SET epoch = 100 WHERE epoch = 3", "checkpoint 3 missing (epochs jump from 2 to 4)" },
        { "DELETE FROM checkpoints WHERE epoch = 3", "checkpoint 3 missing (epochs jump from 2 to 4)" },
        { "UPDATE checkpoints SET sig = x'00' WHERE epoch = 3", "wrong size" },
    };
    struct fx *f = *state;
    struct audit_report rep;
    size_t i;

    build(f, 55, 10);
    save_trail(f);
    for (i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        sql(f, edits[i].sql);
        expect_bad(f, NULL, 31, 3, edits[i].want);
        restore_trail(f);
    }
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.epochs_checked, 6);
}

static void
test_truncate_checkpoints(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    struct audit_report rep;
    struct audit *a = NULL;

    build(f, 55, 10);
    assert_int_equal(keyring_audit_epoch(f->kr), 6);
    save_trail(f);
    sql(f, "DELETE FROM checkpoints WHERE epoch >= 4");
    expect_bad(f, NULL, 41, 4,
               "trail truncated: keyring at epoch 6 but 4 checkpoints (checkpoints 4 to 5 missing)");
    assert_int_equal(audit_open(f->dir, f->kr, NULL, &a, &em), CF_ERR_AUTH);
    assert_non_null(strstr(em.msg, "trail truncated: keyring at epoch 6 but 4 checkpoints"));
    restore_trail(f);
    sql(f, "DELETE FROM checkpoints");
    expect_bad(f, NULL, 1, 0, "trail truncated: keyring at epoch 6 but 0 checkpoints");
    /* Entries and checkpoints cut together still leave the keyring's epoch. */
    restore_trail(f);
    sql(f, "DELETE FROM checkpoints WHERE epoch = 5; DELETE FROM entries WHERE seq > 50");
    expect_bad(f, NULL, 51, 5, "trail truncated: keyring at epoch 6 but 5 checkpoints");
    restore_trail(f);
    expect_ok(f, NULL, &rep);
    /* The untouched trail opens and continues. */
    a = open_ok(f, 10, AUDIT_CHECKPOINT_MS_MAX, 0, 0);
    assert_int_equal(audit_last_seq(a), 55);
    audit_close(a);
}

/* ---- the keyring against the trail ------------------------------------ */

/* Replaces the keyring file's audit seed with `seed`, checksum and all, as
 * an intruder editing the file would. */
static void
keyring_set_seed(struct fx *f, const uint8_t seed[KEYRING_SEED_BYTES])
{
    size_t n;
    unsigned char *b = tu_read(f->kpath, &n);
    char *line, *end, hex[65];
    uint8_t sum[32];

    assert_non_null(b);
    b = realloc(b, n + 1);
    b[n] = '\0';
    line = strstr((char *)b, "audit-seed ");
    assert_non_null(line);
    sodium_bin2hex(hex, sizeof hex, seed, KEYRING_SEED_BYTES);
    memcpy(line + 11, hex, 64);
    end = strstr((char *)b, "\nend ");
    assert_non_null(end);
    crypto_generichash(sum, sizeof sum, b, (size_t)(end + 1 - (char *)b), NULL, 0);
    sodium_bin2hex(hex, sizeof hex, sum, sizeof sum);
    memcpy(end + 5, hex, 64);
    assert_int_equal(tu_write(f->kpath, b, n), 0);
    assert_int_equal(chmod(f->kpath, 0600), 0);
    free(b);
}

static void
test_keyring_mismatch(void **state)
{
    static const char *const codes[] = { "10" };
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    struct audit_report rep;
    struct audit *a = NULL;
    struct keyring *other = NULL;
    char old[400], otherpath[400];
    uint8_t seed2[KEYRING_SEED_BYTES];

    build(f, 22, 10);                        /* epochs 0..2 */
    snprintf(old, sizeof old, "%s/keyring-epoch3", f->root);
    copy_file(f->kpath, old);
    assert_int_equal(chmod(old, 0600), 0);
    a = open_ok(f, 10, AUDIT_CHECKPOINT_MS_MAX, 0, 0);
    append_range(a, 23, 25);                 /* epochs 3..5 */
    audit_close(a);
    assert_int_equal(keyring_audit_epoch(f->kr), 6);

    /* An older copy of the keyring put back: its seed could re-sign. */
    snprintf(otherpath, sizeof otherpath, "%s/keyring-now", f->root);
    copy_file(f->kpath, otherpath);
    copy_file(old, f->kpath);
    expect_bad(f, NULL, 0, 4, "keyring at epoch 3 but 6 checkpoints: the keyring is older than the trail");
    reload_keyring(f);
    assert_int_equal(audit_open(f->dir, f->kr, NULL, &a, &em), CF_ERR_AUTH);
    assert_non_null(strstr(em.msg, "older than the trail"));
    copy_file(otherpath, f->kpath);
    reload_keyring(f);
    expect_ok(f, f->seed, &rep);

    /* The seed edited in place (same node, same epoch). */
    randombytes_buf(seed2, sizeof seed2);
    keyring_set_seed(f, seed2);
    expect_bad(f, NULL, 0, -1, "keyring: its audit key is not the one checkpoint 5 announced");
    reload_keyring(f);
    assert_int_equal(audit_open(f->dir, f->kr, NULL, &a, &em), CF_ERR_AUTH);
    assert_non_null(strstr(em.msg, "not the one checkpoint 5 announced"));
    copy_file(otherpath, f->kpath);
    reload_keyring(f);

    /* Another node's keyring. */
    snprintf(otherpath, sizeof otherpath, "%s/other-keyring", f->root);
    assert_int_equal(keyring_create(otherpath, codes, 1, seed2, &em), CF_OK);
    assert_int_equal(keyring_load(otherpath, &other, &em), CF_OK);
    assert_int_equal(audit_open(f->dir, other, NULL, &a, &em), CF_ERR_AUTH);
    assert_non_null(strstr(em.msg, "belongs to node"));
    assert_int_equal(audit_verify(f->dir, otherpath, NULL, &rep, &em), CF_ERR_AUTH);
    assert_non_null(strstr(rep.why, "belongs to node"));
    keyring_free(other);

    /* A wrong auditor's seed. */
    expect_bad(f, seed2, 1, 0, "checkpoint 0: public key is not derived from the auditor's seed");
    expect_ok(f, f->seed, &rep);
}

/*
 * The forward-integrity promise.  An intruder copies the keyring at epoch
 * 6 and rewrites entry 23 (epoch 2).  Seeds 0..5 were erased, so every
 * checkpoint from 2 on needs a new key.
 */
static void
test_attacker_with_current_keyring(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    struct audit_report rep;
    struct keyring *stolen = NULL;
    char spath[400];

    build(f, 55, 10);
    assert_int_equal(keyring_audit_epoch(f->kr), 6);
    snprintf(spath, sizeof spath, "%s/stolen-keyring", f->root);
    copy_file(f->kpath, spath);
    assert_int_equal(chmod(spath, 0600), 0);
    assert_int_equal(keyring_load(spath, &stolen, &em), CF_OK);
    save_trail(f);
    expect_ok(f, f->seed, &rep);            /* untouched: verifies with the seed */
    assert_int_equal(rep.epochs_checked, 6);

    /* Re-signing only what changed breaks the key chain at checkpoint 2,
     * seed or no seed. */
    sql(f, "UPDATE entries SET outcome = 'denied' WHERE seq = 23");
    rehash_all(f);
    resign_from(f, 2, stolen);
    expect_bad(f, NULL, 21, 2, "checkpoint 2: public key is not the one checkpoint 1 announced");
    expect_bad(f, f->seed, 21, 2, "checkpoint 2: public key is not the one checkpoint 1 announced");

    /* Re-signing everything from checkpoint 0 with fresh keys, ending on
     * the stolen keyring's key: consistent, so verify without the seed is
     * fooled (docs/audit.md says so) ... */
    resign_from(f, 0, stolen);
    assert_int_equal(audit_verify(f->dir, NULL, NULL, &rep, &em), CF_OK);
    assert_int_equal(rep.epochs_checked, 6);
    /* ... but the auditor's seed names checkpoint 0. */
    expect_bad(f, f->seed, 1, 0, "checkpoint 0: public key is not derived from the auditor's seed");
    /* The stolen keyring's own key is still the real one for epoch 6. */
    assert_int_equal(keyring_audit_epoch(stolen), 6);

    restore_trail(f);
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.entries, 55);
    keyring_free(stolen);
}

/* ---- crashes -------------------------------------------------------- */

static void
test_crash_between_checkpoint_and_advance(void **state)
{
    struct fx *f = *state;
    struct audit_report rep;
    struct audit *a = open_ok(f, 10, AUDIT_CHECKPOINT_MS_MAX, 0, 0);
    struct ckpt ck;
    char why[256];

    append_range(a, 1, 7);
    /* Stop the writer without its final round, then do the first half of
     * a checkpoint by hand: committed, keyring not advanced. */
    pthread_mutex_lock(&a->mu);
    a->final_checkpoint = 0;
    pthread_mutex_unlock(&a->mu);
    writer_stop(a);
    assert_int_equal(write_batch(a, NULL, &ck, why, sizeof why), CF_OK);
    assert_int_equal(ck.epoch, 0);
    assert_int_equal(ck.seq, 7);
    audit_free(a);                           /* the "crash" */

    reload_keyring(f);
    assert_int_equal(keyring_audit_epoch(f->kr), 0);
    expect_ok(f, f->seed, &rep);             /* intact, advance pending */
    assert_int_equal(rep.advance_pending, 1);
    assert_int_equal(rep.checkpoints, 1);
    assert_int_equal(rep.keyring_epoch, 0);

    a = open_ok(f, 10, AUDIT_CHECKPOINT_MS_MAX, 0, 0);   /* finishes the advance */
    assert_int_equal(keyring_audit_epoch(f->kr), 1);
    append_range(a, 8, 3);                   /* 10: checkpoint 1 */
    audit_close(a);
    reload_keyring(f);
    assert_int_equal(keyring_audit_epoch(f->kr), 2);
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.entries, 10);
    assert_int_equal(rep.checkpoints, 2);
    assert_int_equal(rep.advance_pending, 0);
}

static void
child_done(void *arg, enum cf_err rc)
{
    (void)arg;
    (void)rc;
}

/* Entries in audit.db, or -1 while it cannot be read (being created by
 * another process): never fails the test, so the caller can kill first. */
static long long
count_entries(struct fx *f)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    long long n = -1;

    if (sqlite3_open_v2(f->dbpath, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_busy_timeout(db, 1000) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM entries", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/* Waits (at most 10 s) until audit.db holds more than n entries. */
static int
wait_for_entries(struct fx *f, long long n)
{
    int i;

    for (i = 0; i < 1000; i++) {
        if (count_entries(f) > n)
            return 1;
        usleep(10000);
    }
    return 0;
}

/* A real kill -9 at arbitrary moments of a busy trail (checkpoints every
 * 5 entries, so keyring rewrites are often in flight). */
static void
test_kill9_anywhere(void **state)
{
    static const unsigned extra_ms[] = { 0, 13, 37, 71 };
    struct fx *f = *state;
    struct audit_report rep;
    struct audit *a;
    long long before = 0;
    size_t r;

    for (r = 0; r < sizeof extra_ms / sizeof extra_ms[0]; r++) {
        pid_t pid;
        int status, wrote;

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            struct keyring *kr = NULL;
            struct audit_opts o = { 5, 20, 1024, 64 };
            struct audit_entry e;
            struct audit *ca = NULL;
            unsigned i;

            /* Never outlive the test, whatever happens to it. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            alarm(30);
            log_set_level(LOG_ERROR);
            if (keyring_load(f->kpath, &kr, NULL) != CF_OK ||
                audit_open(f->dir, kr, &o, &ca, NULL) != CF_OK)
                _exit(3);
            for (i = 0; i < 10000000; i++) {
                mk_entry(&e, i);
                if (audit_submit(ca, &e, child_done, NULL) == CF_ERR_LIMIT)
                    usleep(100);
            }
            _exit(4);                        /* never reached in time */
        }
        /* Once it writes, let it run a little, then pull the plug. */
        wrote = wait_for_entries(f, before);
        usleep(extra_ms[r] * 1000);
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(wrote);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

        reload_keyring(f);
        expect_ok(f, f->seed, &rep);
        assert_true((long long)rep.entries > before);
        a = open_ok(f, 5, 20, 0, 0);
        append_range(a, 0, 1);
        audit_close(a);
        expect_ok(f, f->seed, &rep);
        assert_int_equal(rep.advance_pending, 0);
        assert_int_equal(rep.unsigned_tail, 0);
        assert_int_equal(rep.checkpoints, rep.keyring_epoch);
        before = (long long)rep.entries;
    }
}

/* ---- group commit ---------------------------------------------------- */

#define CONC_THREADS 8
#define CONC_EACH    2000

static struct {
    struct audit *a;
    _Atomic int calls[CONC_THREADS * CONC_EACH];
    _Atomic int not_ok;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} conc = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void
conc_done(void *arg, enum cf_err rc)
{
    size_t i = (size_t)(uintptr_t)arg;

    atomic_fetch_add(&conc.calls[i], 1);
    if (rc != CF_OK)
        atomic_fetch_add(&conc.not_ok, 1);
    pthread_mutex_lock(&conc.mu);
    if (++conc.done == CONC_THREADS * CONC_EACH)
        pthread_cond_signal(&conc.cv);
    pthread_mutex_unlock(&conc.mu);
}

static void *
conc_thread(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg, i;
    struct audit_entry e;

    for (i = 0; i < CONC_EACH; i++) {
        unsigned idx = t * CONC_EACH + i;

        mk_entry(&e, idx);
        if (audit_submit(conc.a, &e, conc_done, (void *)(uintptr_t)idx) != CF_OK)
            return (void *)1;
    }
    return NULL;
}

static void
test_concurrent_submit(void **state)
{
    struct fx *f = *state;
    struct audit_report rep;
    pthread_t th[CONC_THREADS];
    void *ret;
    size_t i;

    /* Default sizes; no time-based checkpoint, so that under any load they
     * all fall on multiples of 1000. */
    conc.a = open_ok(f, 0, AUDIT_CHECKPOINT_MS_MAX, 0, 0);
    for (i = 0; i < CONC_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, conc_thread, (void *)(uintptr_t)i), 0);
    for (i = 0; i < CONC_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], &ret), 0);
        assert_null(ret);
    }
    pthread_mutex_lock(&conc.mu);
    while (conc.done < CONC_THREADS * CONC_EACH)
        pthread_cond_wait(&conc.cv, &conc.mu);
    pthread_mutex_unlock(&conc.mu);
    for (i = 0; i < CONC_THREADS * CONC_EACH; i++)
        if (atomic_load(&conc.calls[i]) != 1)
            fail_msg("entry %zu: done called %d times", i, atomic_load(&conc.calls[i]));
    assert_int_equal(atomic_load(&conc.not_ok), 0);
    assert_int_equal(audit_last_seq(conc.a), CONC_THREADS * CONC_EACH);
    audit_close(conc.a);
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.entries, CONC_THREADS * CONC_EACH);
    assert_true(rep.checkpoints >= CONC_THREADS * CONC_EACH / AUDIT_CHECKPOINT_ENTRIES_DEFAULT);
    assert_int_equal(rep.checkpoints, rep.keyring_epoch);
    assert_int_equal(rep.unsigned_tail, 0);
    /* Every entry once: none lost, none doubled. */
    assert_int_equal(sql_int(f, "SELECT count(DISTINCT subject) FROM entries"),
                     CONC_THREADS * CONC_EACH);
    /* Group commit: far fewer checkpoints than entries, and all of them
     * exactly every 1000 entries except the last. */
    assert_int_equal(sql_int(f, "SELECT count(*) FROM checkpoints WHERE seq % 1000 != 0"), 0);
}

/* A done callback that holds the writer until the test opens the gate. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, open, calls, ok, store;
};

static void
gate_hold(void *arg, enum cf_err rc)
{
    struct gate *g = arg;

    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    g->calls++;
    g->ok += rc == CF_OK;
    g->store += rc == CF_ERR_STORE;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void
gate_count(void *arg, enum cf_err rc)
{
    struct gate *g = arg;

    pthread_mutex_lock(&g->mu);
    g->calls++;
    g->ok += rc == CF_OK;
    g->store += rc == CF_ERR_STORE;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void
gate_wait(struct gate *g, int calls)
{
    pthread_mutex_lock(&g->mu);
    while (g->calls < calls)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void
test_queue_full(void **state)
{
    struct fx *f = *state;
    struct gate hold = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0 };
    struct gate cnt = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0 };
    struct audit_report rep;
    struct audit_entry e;
    struct cf_errmsg em = { "" };
    struct audit *a = open_ok(f, 0, 0, 4, 1);
    int i;

    mk_entry(&e, 0);
    assert_int_equal(audit_submit(a, &e, gate_hold, &hold), CF_OK);
    pthread_mutex_lock(&hold.mu);
    while (!hold.entered)
        pthread_cond_wait(&hold.cv, &hold.mu);
    pthread_mutex_unlock(&hold.mu);
    /* The writer is busy: four wait, the fifth is refused. */
    for (i = 1; i <= 4; i++) {
        mk_entry(&e, (unsigned)i);
        assert_int_equal(audit_submit(a, &e, gate_count, &cnt), CF_OK);
    }
    assert_int_equal(audit_queue_depth(a), 4);
    assert_int_equal(audit_submit(a, &e, gate_count, &cnt), CF_ERR_LIMIT);
    assert_int_equal(audit_append(a, &e, &em), CF_ERR_LIMIT);
    assert_non_null(strstr(em.msg, "already wait"));
    assert_int_equal(audit_queue_depth(a), 4);

    pthread_mutex_lock(&hold.mu);
    hold.open = 1;
    pthread_cond_broadcast(&hold.cv);
    pthread_mutex_unlock(&hold.mu);
    gate_wait(&cnt, 4);
    assert_int_equal(cnt.ok, 4);
    assert_int_equal(hold.ok, 1);
    append_range(a, 5, 1);                   /* room again */
    assert_int_equal(audit_last_seq(a), 6);
    audit_close(a);
    assert_int_equal(cnt.calls, 4);          /* each exactly once */
    assert_int_equal(hold.calls, 1);
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.entries, 6);
}

/* ---- failing closed --------------------------------------------------- */

/* A VFS over the default one whose fsync can be made to fail: the disk
 * going bad under the trail.  A failing sync can also be held, so entries
 * queue behind the failing batch. */
struct shim_file {
    sqlite3_file base;
    sqlite3_file *real;
};

static struct {
    sqlite3_vfs vfs;
    sqlite3_vfs *real;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int armed, hold, in_sync;
} shim = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

#define REAL(f) (((struct shim_file *)(f))->real)

static int
shim_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int
shim_read(sqlite3_file *f, void *b, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), b, n, off);
}
static int
shim_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xWrite(REAL(f), b, n, off);
}
static int
shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int
shim_sync(sqlite3_file *f, int flags)
{
    pthread_mutex_lock(&shim.mu);
    if (shim.armed) {
        shim.in_sync = 1;
        pthread_cond_broadcast(&shim.cv);
        while (shim.hold)
            pthread_cond_wait(&shim.cv, &shim.mu);
        pthread_mutex_unlock(&shim.mu);
        return SQLITE_IOERR_FSYNC;
    }
    pthread_mutex_unlock(&shim.mu);
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int
shim_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int
shim_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int
shim_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int
shim_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int
shim_fcntl(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int
shim_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int
shim_devchar(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int
shim_shm_map(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, pp);
}
static int
shim_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void
shim_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int
shim_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int
shim_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}
static int
shim_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods shim_io = {
    3, shim_close, shim_read, shim_write, shim_truncate, shim_sync, shim_size,
    shim_lock, shim_unlock, shim_reserved, shim_fcntl, shim_sector, shim_devchar,
    shim_shm_map, shim_shm_lock, shim_shm_barrier, shim_shm_unmap, shim_fetch,
    shim_unfetch,
};

static int
shim_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags,
          int *out_flags)
{
    struct shim_file *p = (struct shim_file *)f;
    int rc;

    (void)vfs;
    p->real = (sqlite3_file *)&p[1];
    rc = shim.real->xOpen(shim.real, name, p->real, flags, out_flags);
    p->base.pMethods = p->real->pMethods != NULL ? &shim_io : NULL;
    return rc;
}

static void
shim_register(void)
{
    shim.real = sqlite3_vfs_find(NULL);
    shim.vfs = *shim.real;
    shim.vfs.zName = "coffre-test-shim";
    shim.vfs.szOsFile = (int)sizeof(struct shim_file) + shim.real->szOsFile;
    shim.vfs.xOpen = shim_open;
    shim.vfs.pNext = NULL;
    assert_int_equal(sqlite3_vfs_register(&shim.vfs, 1), SQLITE_OK);
}

static void
test_fail_closed_when_fsync_fails(void **state)
{
    struct fx *f = *state;
    struct gate cnt = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0 };
    struct audit_report rep;
    struct audit_entry e;
    struct cf_errmsg em = { "" };
    struct audit *a;
    int i;

    shim_register();
    a = open_ok(f, 0, AUDIT_CHECKPOINT_MS_MAX, 0, 0);
    append_range(a, 1, 3);
    pthread_mutex_lock(&shim.mu);
    shim.armed = shim.hold = 1;
    pthread_mutex_unlock(&shim.mu);
    mk_entry(&e, 4);
    assert_int_equal(audit_submit(a, &e, gate_count, &cnt), CF_OK);
    /* The writer is inside the failing fsync: queue two more behind it. */
    pthread_mutex_lock(&shim.mu);
    while (!shim.in_sync)
        pthread_cond_wait(&shim.cv, &shim.mu);
    pthread_mutex_unlock(&shim.mu);
    for (i = 5; i <= 6; i++) {
        mk_entry(&e, (unsigned)i);
        assert_int_equal(audit_submit(a, &e, gate_count, &cnt), CF_OK);
    }
    pthread_mutex_lock(&shim.mu);
    shim.hold = 0;
    pthread_cond_broadcast(&shim.cv);
    pthread_mutex_unlock(&shim.mu);
    gate_wait(&cnt, 3);
    assert_int_equal(cnt.store, 3);          /* the batch and the queue */
    assert_int_equal(cnt.ok, 0);
    /* Closed for good, even once the disk is back. */
    pthread_mutex_lock(&shim.mu);
    shim.armed = 0;
    pthread_mutex_unlock(&shim.mu);
    assert_int_equal(audit_status(a), CF_ERR_STORE);
    assert_int_equal(audit_submit(a, &e, gate_count, &cnt), CF_ERR_STORE);
    assert_int_equal(audit_append(a, &e, &em), CF_ERR_STORE);
    assert_non_null(strstr(em.msg, "nothing may be served"));
    assert_int_equal(audit_last_seq(a), 3);
    audit_close(a);
    assert_int_equal(cnt.calls, 3);
    sqlite3_vfs_unregister(&shim.vfs);

    /* A restart carries on from the last durable entry. */
    reload_keyring(f);
    a = open_ok(f, 0, 0, 0, 0);
    assert_int_equal(audit_last_seq(a), 3);
    append_range(a, 7, 2);
    audit_close(a);
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.entries, 5);
}

static void
test_fail_closed_when_insert_fails(void **state)
{
    struct fx *f = *state;
    struct audit_report rep;
    struct audit_entry e;
    struct cf_errmsg em = { "" };
    struct audit *a = open_ok(f, 0, AUDIT_CHECKPOINT_MS_MAX, 0, 0);

    append_range(a, 1, 2);
    sql(f, "CREATE TRIGGER no_more BEFORE INSERT ON entries BEGIN SELECT RAISE(ABORT, 'disk gone'); END;");
    mk_entry(&e, 3);
    assert_int_equal(audit_append(a, &e, &em), CF_ERR_STORE);
    sql(f, "DROP TRIGGER no_more");
    assert_int_equal(audit_append(a, &e, &em), CF_ERR_STORE);
    assert_int_equal(audit_status(a), CF_ERR_STORE);
    audit_close(a);                          /* signs nothing after a failure */
    reload_keyring(f);
    assert_int_equal(keyring_audit_epoch(f->kr), 0);
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.entries, 2);
    assert_int_equal(rep.unsigned_tail, 2);
}

/* ---- bad input -------------------------------------------------------- */

static void
test_bad_entries_rejected(void **state)
{
    static const char *const bad[] = { "a\x01" "b", "a\nb", "a\x7f", "\x80", "Zo\xC3\xA9", "\t" };
    struct fx *f = *state;
    struct audit *a = open_ok(f, 0, 0, 0, 0);
    struct audit_report rep;
    struct audit_entry e, x;
    struct cf_errmsg em = { "" };
    uint64_t ok = 0;
    size_t i, j;

    mk_entry(&e, 1);
    for (i = 0; i < S_COUNT; i++) {
        char *s = (char *)&x + strs[i].off;

        for (j = 0; j < sizeof bad / sizeof bad[0]; j++) {
            x = e;
            snprintf(s, strs[i].max + 1, "%s", bad[j]);
            assert_int_equal(audit_submit(a, &x, child_done, NULL), CF_ERR_INPUT);
            assert_int_equal(audit_append(a, &x, &em), CF_ERR_INPUT);
            assert_non_null(strstr(em.msg, strs[i].name));
        }
        /* N - 1 and N bytes fit; N + 1 (no NUL in the array) does not. */
        x = e;
        memset(s, 'a', strs[i].max - 1);
        s[strs[i].max - 1] = '\0';
        assert_int_equal(audit_append(a, &x, &em), CF_OK);
        memset(s, 'a', strs[i].max);
        s[strs[i].max] = '\0';
        assert_int_equal(audit_append(a, &x, &em), CF_OK);
        ok += 2;
        memset(s, 'a', strs[i].max + 1);
        assert_int_equal(audit_submit(a, &x, child_done, NULL), CF_ERR_INPUT);
        assert_int_equal(audit_append(a, &x, &em), CF_ERR_INPUT);
        assert_non_null(strstr(em.msg, "longer than"));
        /* Empty: only action and outcome are required. */
        x = e;
        s[0] = '\0';
        if (strs[i].required) {
            assert_int_equal(audit_append(a, &x, &em), CF_ERR_INPUT);
            assert_non_null(strstr(em.msg, "required"));
        } else {
            assert_int_equal(audit_append(a, &x, &em), CF_OK);
            ok++;
        }
    }
    x = e;
    x.time_ms = -1;
    assert_int_equal(audit_append(a, &x, &em), CF_ERR_INPUT);
    x.time_ms = 1234;                        /* given: kept as is */
    assert_int_equal(audit_append(a, &x, &em), CF_OK);
    ok++;
    assert_int_equal(audit_append(a, NULL, &em), CF_ERR_INPUT);
    assert_int_equal(audit_submit(a, &e, NULL, NULL), CF_ERR_INPUT);
    assert_int_equal(audit_submit(a, NULL, child_done, NULL), CF_ERR_INPUT);
    assert_int_equal(audit_last_seq(a), ok);  /* the rejected changed nothing */
    audit_close(a);
    assert_int_equal(sql_int(f, "SELECT time_ms FROM entries ORDER BY seq DESC LIMIT 1"), 1234);
    assert_int_equal(sql_int(f, "SELECT min(time_ms) FROM entries WHERE seq = 1") > 1600000000000LL, 1);
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.entries, ok);
}

static void
test_open_errors(void **state)
{
    struct fx *f = *state;
    struct audit_opts o = { AUDIT_CHECKPOINT_ENTRIES_MAX + 1, 0, 0, 0 };
    struct cf_errmsg em = { "" };
    struct audit *a = NULL;

    assert_int_equal(audit_open(f->dir, f->kr, &o, &a, &em), CF_ERR_INPUT);
    o = (struct audit_opts){ 0, AUDIT_CHECKPOINT_MS_MAX + 1, 0, 0 };
    assert_int_equal(audit_open(f->dir, f->kr, &o, &a, &em), CF_ERR_INPUT);
    o = (struct audit_opts){ 0, 0, AUDIT_QUEUE_MAX + 1, 0 };
    assert_int_equal(audit_open(f->dir, f->kr, &o, &a, &em), CF_ERR_INPUT);
    assert_non_null(strstr(em.msg, "queue_max"));
    o = (struct audit_opts){ 0, 0, 0, AUDIT_BATCH_MAX + 1 };
    assert_int_equal(audit_open(f->dir, f->kr, &o, &a, &em), CF_ERR_INPUT);
    /* At the maxima it opens. */
    o = (struct audit_opts){ AUDIT_CHECKPOINT_ENTRIES_MAX, AUDIT_CHECKPOINT_MS_MAX,
                             AUDIT_QUEUE_MAX, AUDIT_BATCH_MAX };
    assert_int_equal(audit_open(f->dir, f->kr, &o, &a, &em), CF_OK);
    audit_close(a);
    a = NULL;
    assert_int_equal(audit_open(NULL, f->kr, NULL, &a, &em), CF_ERR_INPUT);
    assert_int_equal(audit_open("/nonexistent-coffre-dir", f->kr, NULL, &a, &em), CF_ERR_STORE);
    assert_null(a);
    /* A file of a newer schema is left alone. */
    sql(f, "PRAGMA user_version = 99");
    assert_int_equal(audit_open(f->dir, f->kr, NULL, &a, &em), CF_ERR_STORE);
    assert_non_null(strstr(em.msg, "newer"));
}

/* ---- checkpoint timing and the witness --------------------------------- */

static void
test_time_checkpoint(void **state)
{
    struct fx *f = *state;
    struct audit_report rep;
    struct audit *a = open_ok(f, 1000, 50, 0, 0);
    int i;

    append_range(a, 1, 1);
    for (i = 0; i < 150 && sql_int(f, "SELECT count(*) FROM checkpoints") < 1; i++)
        usleep(20000);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM checkpoints"), 1);
    /* Nothing new: nothing more signed. */
    usleep(200000);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM checkpoints"), 1);
    append_range(a, 2, 2);
    for (i = 0; i < 150 && sql_int(f, "SELECT count(*) FROM checkpoints") < 2; i++)
        usleep(20000);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM checkpoints"), 2);
    audit_close(a);                          /* nothing unsigned: no third */
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.checkpoints, 2);
    assert_int_equal(rep.keyring_epoch, 2);
    assert_int_equal(rep.unsigned_tail, 0);
}

/* Value of "key":"..." in a JSON log line (no escapes in hex and numbers). */
static int
log_field(const char *line, const char *key, char *out, size_t cap)
{
    char pat[64];
    const char *p, *q;

    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    p = strstr(line, pat);
    if (p == NULL)
        return -1;
    p += strlen(pat);
    q = strchr(p, '"');
    if (q == NULL || (size_t)(q - p) >= cap)
        return -1;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return 0;
}

static void
test_witness_log_line(void **state)
{
    struct fx *f = *state;
    struct ckpt c, db[MAX_CK];
    char logpath[400], v[200];
    unsigned char *buf;
    char *line;
    size_t n, got;
    int saved, fd;
    struct audit *a;

    snprintf(logpath, sizeof logpath, "%s/stderr.log", f->root);
    fflush(stderr);
    saved = dup(2);
    fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    log_set_level(LOG_INFO);
    a = open_ok(f, 4, AUDIT_CHECKPOINT_MS_MAX, 0, 0);
    append_range(a, 1, 4);
    audit_close(a);
    log_set_level(LOG_WARN);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    assert_int_equal(read_ckpts(f, db), 1);
    buf = tu_read(logpath, &n);
    assert_non_null(buf);
    buf = realloc(buf, n + 1);
    buf[n] = '\0';
    line = strstr((char *)buf, "\"msg\":\"audit checkpoint\"");
    assert_non_null(line);
    /* The line alone proves the checkpoint: rebuild and check it. */
    memset(&c, 0, sizeof c);
    assert_int_equal(log_field(line, "epoch", v, sizeof v), 0);
    assert_string_equal(v, "0");
    assert_int_equal(log_field(line, "seq", v, sizeof v), 0);
    c.seq = strtoull(v, NULL, 10);
    assert_int_equal(log_field(line, "time_ms", v, sizeof v), 0);
    c.time_ms = strtoll(v, NULL, 10);
    assert_int_equal(log_field(line, "hash", v, sizeof v), 0);
    assert_int_equal(sodium_hex2bin(c.hash, 32, v, strlen(v), NULL, &got, NULL), 0);
    assert_int_equal(log_field(line, "pk", v, sizeof v), 0);
    assert_int_equal(sodium_hex2bin(c.pk, 32, v, strlen(v), NULL, &got, NULL), 0);
    assert_int_equal(log_field(line, "next_pk", v, sizeof v), 0);
    assert_int_equal(sodium_hex2bin(c.next_pk, 32, v, strlen(v), NULL, &got, NULL), 0);
    assert_int_equal(log_field(line, "sig", v, sizeof v), 0);
    assert_int_equal(sodium_hex2bin(c.sig, 64, v, strlen(v), NULL, &got, NULL), 0);
    assert_int_equal(log_field(line, "node", v, sizeof v), 0);
    assert_string_equal(v, keyring_node_id(f->kr));
    assert_true(ckpt_sig_ok(v, &c));
    assert_memory_equal(c.sig, db[0].sig, AUDIT_SIG_BYTES);
    assert_int_equal(c.seq, 4);
    /* and the auditor's seed gives its key */
    {
        uint8_t pk[AUDIT_PK_BYTES];

        pk_of_seed(f->seed, pk);
        assert_memory_equal(pk, c.pk, sizeof pk);
    }
    /* Nothing of the entries themselves is logged. */
    assert_null(strstr((char *)buf, "student.read"));
    assert_null(strstr((char *)buf, "192.0.2."));
    free(buf);
}

static void
test_verify_without_trail(void **state)
{
    struct fx *f = *state;
    struct audit_report rep;
    struct cf_errmsg em = { "" };
    uint8_t wrong[KEYRING_SEED_BYTES];
    char p[400];

    expect_ok(f, f->seed, &rep);             /* nothing written yet */
    assert_int_equal(rep.entries, 0);
    randombytes_buf(wrong, sizeof wrong);
    expect_bad(f, wrong, 0, -1, "does not derive from the auditor's seed");
    build(f, 3, 10);
    unlink(f->dbpath);
    snprintf(p, sizeof p, "%s-wal", f->dbpath);
    unlink(p);
    expect_bad(f, NULL, 1, 0, "trail missing: keyring at epoch 1 but no audit.db");
    assert_int_equal(audit_verify(f->dir, "/nonexistent/keyring", NULL, &rep, &em), CF_ERR_NOTFOUND);
}

/* ---- keyring_audit_advance itself -------------------------------------- */

static void
test_keyring_audit_advance(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    struct keyring *again = NULL;
    struct stat before, after;
    uint8_t seed0[KEYRING_SEED_BYTES], seed1[KEYRING_SEED_BYTES];
    char hex0[65], hex1[65], tmp[400];
    unsigned char *file, *file2;
    size_t n, n2;
    DIR *d;
    struct dirent *de;

    memcpy(seed0, keyring_audit_seed(f->kr), sizeof seed0);
    assert_memory_equal(seed0, f->seed, sizeof seed0);
    assert_int_equal(stat(f->kpath, &before), 0);
    assert_int_equal(keyring_audit_advance(f->kr, &em), CF_OK);
    assert_int_equal(keyring_audit_epoch(f->kr), 1);
    keyring_audit_next_seed(seed0, seed1);
    assert_memory_equal(keyring_audit_seed(f->kr), seed1, sizeof seed1);
    assert_memory_not_equal(seed1, seed0, sizeof seed0);

    /* Replaced by rename: a new inode, still 0600, no temporary left. */
    assert_int_equal(stat(f->kpath, &after), 0);
    assert_int_not_equal(before.st_ino, after.st_ino);
    assert_int_equal(after.st_mode & 0777, 0600);
    d = opendir(f->dir);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        assert_null(strstr(de->d_name, ".tmp-"));
    closedir(d);
    /* The old seed is gone from the file, the new one is there. */
    file = tu_read(f->kpath, &n);
    assert_non_null(file);
    file = realloc(file, n + 1);
    file[n] = '\0';
    sodium_bin2hex(hex0, sizeof hex0, seed0, sizeof seed0);
    sodium_bin2hex(hex1, sizeof hex1, seed1, sizeof seed1);
    assert_null(strstr((char *)file, hex0));
    assert_non_null(strstr((char *)file, hex1));
    assert_non_null(strstr((char *)file, "\naudit-epoch 1\n"));
    assert_int_equal(keyring_load(f->kpath, &again, &em), CF_OK);
    assert_int_equal(keyring_audit_epoch(again), 1);
    assert_memory_equal(keyring_audit_seed(again), seed1, sizeof seed1);
    keyring_free(again);

    /* When the file cannot be replaced, nothing changes anywhere. */
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", f->kpath, (int)getpid());
    assert_int_equal(mkdir(tmp, 0700), 0);   /* root ignores modes, not this */
    assert_int_equal(keyring_audit_advance(f->kr, &em), CF_ERR_IO);
    assert_int_equal(keyring_audit_epoch(f->kr), 1);
    assert_memory_equal(keyring_audit_seed(f->kr), seed1, sizeof seed1);
    file2 = tu_read(f->kpath, &n2);
    assert_non_null(file2);
    assert_int_equal(n2, n);
    assert_memory_equal(file2, file, n);
    assert_int_equal(rmdir(tmp), 0);
    free(file);
    free(file2);

    /* Advanced with no checkpoint to show for it: the trail refuses it. */
    {
        struct audit *a = NULL;

        assert_int_equal(audit_open(f->dir, f->kr, NULL, &a, &em), CF_ERR_AUTH);
        assert_non_null(strstr(em.msg, "keyring at epoch 1 but 0 checkpoints"));
    }
}

/* The checkpoint is committed but the keyring cannot be rewritten: its
 * entries are durable (done CF_OK), everything after is refused, and a
 * restart finishes the advance. */
static void
test_fail_closed_when_keyring_cannot_advance(void **state)
{
    struct fx *f = *state;
    struct audit_report rep;
    struct audit_entry e;
    struct cf_errmsg em = { "" };
    struct audit *a = open_ok(f, 3, AUDIT_CHECKPOINT_MS_MAX, 0, 0);
    char tmp[400];
    int i;

    append_range(a, 1, 2);
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", f->kpath, (int)getpid());
    assert_int_equal(mkdir(tmp, 0700), 0);
    append_range(a, 3, 1);                   /* durable, then the advance fails */
    mk_entry(&e, 4);
    for (i = 0; i < 200 && audit_status(a) == CF_OK; i++)
        usleep(10000);
    assert_int_equal(audit_status(a), CF_ERR_STORE);
    assert_int_equal(audit_append(a, &e, &em), CF_ERR_STORE);
    audit_close(a);
    assert_int_equal(rmdir(tmp), 0);
    reload_keyring(f);
    assert_int_equal(keyring_audit_epoch(f->kr), 0);
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.advance_pending, 1);
    a = open_ok(f, 3, AUDIT_CHECKPOINT_MS_MAX, 0, 0);
    assert_int_equal(keyring_audit_epoch(f->kr), 1);
    assert_int_equal(audit_last_seq(a), 3);
    append_range(a, 4, 1);
    audit_close(a);
    expect_ok(f, f->seed, &rep);
    assert_int_equal(rep.entries, 4);
    assert_int_equal(rep.checkpoints, 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_verify_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_continues_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edit_any_entry_column, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edit_and_rehash_caught_by_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edit_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyring_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attacker_with_current_keyring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_between_checkpoint_and_advance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_anywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_submit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_closed_when_fsync_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_closed_when_insert_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_closed_when_keyring_cannot_advance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_entries_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_witness_log_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_without_trail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyring_audit_advance, setup, teardown),
    };

    if (sodium_init() < 0)
        return 1;
    /* Checkpoint lines are the witness; here they would only be noise. */
    log_set_level(LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
