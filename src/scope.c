/*
 * scope.c - breach scope over the audit trail (scope.h, docs/scope.md).
 *
 * The index, DIR/audit-index.db, is derived from DIR/audit.db alone:
 *
 *   names (id, s)       one row per distinct key text:
 *                         "a:<actor>"  "s:<session>"  "i:<subject id>"
 *                         "x:incident" (any incident.* command)
 *                         "x:account.activate"  "r:<guard rule>" (lockouts)
 *   post  (k, seq)      entry seq carries key k
 *   addrs (ip, seq)     the client address as 16 bytes (IPv4 mapped)
 *   times (t, seq)      the entry's time
 *   meta                node, last indexed seq and its chain hash, state
 *
 * It is never a source of truth: every answer re-reads the entries it
 * names from audit.db, and audit_verify ignores the file.  If the file was
 * being built when the process stopped, or its last entry no longer has
 * the same chain hash in audit.db (the trail was replaced), it is rebuilt.
 * A large catch-up drops the indexes, appends, and builds them again once
 * (sorting beats inserting into a random-key B-tree, DESIGN.md section 12);
 * the file needs no journal: a crash means a rebuild.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "account.h"
#include "records.h"
#include "scope.h"
#include "store.h"
#include "banned.h"

#define IDX_FILE       "audit-index.db"
#define AUD_FILE       "audit.db"
#define IDX_VERSION    "1"
#define IDX_PATH_MAX   4096
#define IDX_BUSY_MS    5000
/* Entries per transaction while indexing (the file has no journal; this
 * bounds the dirty pages held). */
#define IDX_BATCH      50000
/* A catch-up of more entries than this rebuilds the indexes afterwards. */
#define IDX_BULK       200000
/* Progress every this many entries. */
#define PROGRESS_EVERY 65536
/* Name map for bulk indexing: open addressing, grows at half full. */
#define NAMES_MAX      (16u * 1024 * 1024)

static const char idx_tables[] =
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) STRICT;"
    "CREATE TABLE IF NOT EXISTS names (id INTEGER PRIMARY KEY, s TEXT NOT NULL) STRICT;"
    "CREATE UNIQUE INDEX IF NOT EXISTS names_s ON names(s);"
    "CREATE TABLE IF NOT EXISTS post (k INTEGER NOT NULL, seq INTEGER NOT NULL,"
    "  PRIMARY KEY (k, seq)) STRICT, WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS addrs (ip BLOB NOT NULL, seq INTEGER NOT NULL,"
    "  PRIMARY KEY (ip, seq)) STRICT, WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS times (t INTEGER NOT NULL, seq INTEGER NOT NULL,"
    "  PRIMARY KEY (t, seq)) STRICT, WITHOUT ROWID;";
/* A bulk catch-up appends to unindexed staging tables, then moves them in
 * key order (an append to each B-tree, not a random insert per row). */
static const char idx_stage[] =
    "DROP INDEX IF EXISTS names_s;"
    "CREATE TABLE IF NOT EXISTS stage_post (k INTEGER NOT NULL, seq INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS stage_addrs (ip BLOB NOT NULL, seq INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS stage_times (t INTEGER NOT NULL, seq INTEGER NOT NULL);";
static const char idx_merge[] =
    "INSERT OR IGNORE INTO post SELECT k, seq FROM stage_post ORDER BY k, seq; DROP TABLE stage_post;"
    "INSERT OR IGNORE INTO addrs SELECT ip, seq FROM stage_addrs ORDER BY ip, seq; DROP TABLE stage_addrs;"
    "INSERT OR IGNORE INTO times SELECT t, seq FROM stage_times ORDER BY t, seq; DROP TABLE stage_times;"
    "CREATE UNIQUE INDEX IF NOT EXISTS names_s ON names(s);";

/* ---- small helpers ------------------------------------------------------ */

static int
exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static enum cf_err
db_fail(struct cf_errmsg *em, sqlite3 *db, const char *what)
{
    return cf_fail(em, CF_ERR_STORE, "scope: %s: %s", what, sqlite3_errmsg(db));
}

static enum cf_err
open_db(const char *dir, const char *file, int create, sqlite3 **out, struct cf_errmsg *em)
{
    char path[IDX_PATH_MAX];
    sqlite3 *db = NULL;
    int n = snprintf(path, sizeof path, "%s/%s", dir, file);

    *out = NULL;
    if (n < 0 || (size_t)n >= sizeof path)
        return cf_fail(em, CF_ERR_INPUT, "scope: data directory path too long");
    if (!create && access(path, F_OK) != 0)
        return cf_fail(em, CF_ERR_NOTFOUND, "scope: '%s': no audit trail here", path);
    /* Read-write even to read: two read-only openers of one WAL file can
     * fail with "database is locked" (DESIGN.md section 12). */
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                        (create ? SQLITE_OPEN_CREATE : 0), NULL) != SQLITE_OK) {
        enum cf_err rc = cf_fail(em, CF_ERR_STORE, "scope: '%s': %s", path,
                                 db != NULL ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, IDX_BUSY_MS);
    if (exec(db, "PRAGMA trusted_schema = OFF") != SQLITE_OK) {
        enum cf_err rc = db_fail(em, db, path);

        sqlite3_close(db);
        return rc;
    }
    /* created 0600: main() sets umask 077 for every command, and the
     * serving process may not chmod (seccomp) */
    *out = db;
    return CF_OK;
}

static int
meta_get(sqlite3 *db, const char *k, char *out, size_t cap)
{
    sqlite3_stmt *s;
    int rc = -1;

    out[0] = '\0';
    if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = ?1", -1, &s, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_TEXT) {
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(s, 0));
        rc = 0;
    }
    sqlite3_finalize(s);
    return rc;
}

static int
meta_set(sqlite3 *db, const char *k, const char *v)
{
    sqlite3_stmt *s;
    int rc;

    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta (k, v) VALUES (?1, ?2)", -1, &s,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, v, -1, SQLITE_STATIC);
    rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(s);
    return rc;
}

static unsigned
hexval(char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'a' + 10);
}

static int
is_hex32(const char *p, size_t n)
{
    size_t i;

    if (n != RECORD_ID_HEX)
        return 0;
    for (i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return 0;
    return 1;
}

/* The address as 16 bytes (IPv4 as ::ffff:a.b.c.d); -1 if not an address. */
static int
ip_key(const char *text, uint8_t out[16])
{
    char buf[AUDIT_ADDR_MAX + 1];
    struct in_addr v4;
    size_t n = strcspn(text, "%");

    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, text, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, &v4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &v4, 4);
        return 0;
    }
    return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
}

int
scope_parse_cidr(const char *text, struct scope_query *q)
{
    char buf[AUDIT_ADDR_MAX + 1];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    unsigned long bits;
    int v4, i;
    char *end;

    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, text, n);
    buf[n] = '\0';
    v4 = strchr(buf, ':') == NULL;
    if (ip_key(buf, q->lo) != 0 || strchr(buf, '%') != NULL)
        return -1;
    bits = v4 ? 32 : 128;
    if (slash != NULL) {
        errno = 0;
        bits = strtoul(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || errno != 0 ||
            bits > (v4 ? 32UL : 128UL))
            return -1;
    }
    if (v4)
        bits += 96;
    for (i = 0; i < 16; i++) {
        unsigned keep = bits >= 8UL * (unsigned long)(i + 1) ? 8
                        : bits <= 8UL * (unsigned long)i ? 0 : (unsigned)(bits - 8 * (unsigned long)i);
        uint8_t mask = (uint8_t)(keep == 8 ? 0xff : (0xff00u >> keep) & 0xff);

        q->lo[i] &= mask;
        q->hi[i] = (uint8_t)(q->lo[i] | (uint8_t)~mask);
    }
    q->has_cidr = 1;
    return 0;
}

/* ---- name map (bulk indexing) ------------------------------------------ */

struct name_slot {
    char *s;
    int64_t id;
};

struct names {
    struct name_slot *slot;
    size_t cap, n;
};

static uint64_t
str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static void
names_free(struct names *m)
{
    size_t i;

    for (i = 0; m->slot != NULL && i < m->cap; i++)
        free(m->slot[i].s);
    free(m->slot);
    memset(m, 0, sizeof *m);
}

static int names_put(struct names *m, const char *s, int64_t id);

static int
names_grow(struct names *m)
{
    struct names big = { NULL, m->cap ? m->cap * 2 : 1024, 0 };
    size_t i;

    if (big.cap > 2 * (size_t)NAMES_MAX)
        return -1;
    big.slot = calloc(big.cap, sizeof *big.slot);
    if (big.slot == NULL)
        return -1;
    for (i = 0; i < m->cap; i++)
        if (m->slot[i].s != NULL) {
            size_t j = str_hash(m->slot[i].s) & (big.cap - 1);

            while (big.slot[j].s != NULL)
                j = (j + 1) & (big.cap - 1);
            big.slot[j] = m->slot[i];
            big.n++;
        }
    free(m->slot);
    *m = big;
    return 0;
}

/* The id of s, or 0 when absent. */
static int64_t
names_get(const struct names *m, const char *s)
{
    size_t j;

    if (m->cap == 0)
        return 0;
    for (j = str_hash(s) & (m->cap - 1); m->slot[j].s != NULL; j = (j + 1) & (m->cap - 1))
        if (strcmp(m->slot[j].s, s) == 0)
            return m->slot[j].id;
    return 0;
}

static int
names_put(struct names *m, const char *s, int64_t id)
{
    size_t j;

    if ((m->n + 1) * 2 > m->cap && names_grow(m) != 0)
        return -1;
    j = str_hash(s) & (m->cap - 1);
    while (m->slot[j].s != NULL)
        j = (j + 1) & (m->cap - 1);
    m->slot[j].s = strdup(s);
    if (m->slot[j].s == NULL)
        return -1;
    m->slot[j].id = id;
    m->n++;
    return 0;
}

/* ---- indexing ----------------------------------------------------------- */

struct indexer {
    sqlite3 *ix;
    sqlite3_stmt *name_find, *name_add, *post, *addr, *time;
    struct names map;          /* bulk: every name in memory */
    int bulk;
    int64_t next_id;
};

static void
indexer_done(struct indexer *w)
{
    sqlite3_finalize(w->name_find);
    sqlite3_finalize(w->name_add);
    sqlite3_finalize(w->post);
    sqlite3_finalize(w->addr);
    sqlite3_finalize(w->time);
    names_free(&w->map);
}

static int
step_reset(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);

    sqlite3_reset(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

/* The id of key text s, created if new; 0 on error. */
static int64_t
name_id(struct indexer *w, const char *s)
{
    int64_t id = 0;

    if (w->bulk) {
        if ((id = names_get(&w->map, s)) != 0)
            return id;
    } else {
        sqlite3_bind_text(w->name_find, 1, s, -1, SQLITE_STATIC);
        if (sqlite3_step(w->name_find) == SQLITE_ROW)
            id = sqlite3_column_int64(w->name_find, 0);
        sqlite3_reset(w->name_find);
        if (id != 0)
            return id;
    }
    id = w->next_id++;
    sqlite3_bind_int64(w->name_add, 1, id);
    sqlite3_bind_text(w->name_add, 2, s, -1, SQLITE_STATIC);
    if (step_reset(w->name_add) != 0)
        return 0;
    if (w->bulk && names_put(&w->map, s, id) != 0)
        return 0;
    return id;
}

static int
post_key(struct indexer *w, const char *prefix, const char *v, size_t n, int64_t seq)
{
    char key[AUDIT_SUBJECT_MAX + 8];
    int64_t id;

    snprintf(key, sizeof key, "%s%.*s", prefix, (int)n, v);
    if ((id = name_id(w, key)) == 0)
        return -1;
    sqlite3_bind_int64(w->post, 1, id);
    sqlite3_bind_int64(w->post, 2, seq);
    return step_reset(w->post);
}

/* One entry's postings.  cols: actor, session, addr, action, subject,
 * fields, outcome. */
static int
index_entry(struct indexer *w, int64_t seq, int64_t t, const char *const *col)
{
    const char *p;
    uint8_t ip[16];

    if (col[0][0] != '\0' && post_key(w, "a:", col[0], strlen(col[0]), seq) != 0)
        return -1;
    if (col[1][0] != '\0' && post_key(w, "s:", col[1], strlen(col[1]), seq) != 0)
        return -1;
    if (strncmp(col[3], "incident.", 9) == 0 && post_key(w, "x:", "incident", 8, seq) != 0)
        return -1;
    if (strcmp(col[3], "account.activate") == 0 &&
        post_key(w, "x:", col[3], strlen(col[3]), seq) != 0)
        return -1;
    if (strncmp(col[5], "rule:", 5) == 0 &&
        post_key(w, "r:", col[5] + 5, strcspn(col[5] + 5, ","), seq) != 0)
        return -1;
    for (p = col[4]; *p != '\0';) {
        size_t n = strcspn(p, ",");

        if (is_hex32(p, n) && post_key(w, "i:", p, n, seq) != 0)
            return -1;
        p += n;
        if (*p == ',')
            p++;
    }
    if (ip_key(col[2], ip) == 0) {
        sqlite3_bind_blob(w->addr, 1, ip, 16, SQLITE_STATIC);
        sqlite3_bind_int64(w->addr, 2, seq);
        if (step_reset(w->addr) != 0)
            return -1;
    }
    sqlite3_bind_int64(w->time, 1, t);
    sqlite3_bind_int64(w->time, 2, seq);
    return step_reset(w->time);
}

static enum cf_err
indexer_prepare(struct indexer *w, struct cf_errmsg *em)
{
    sqlite3_stmt **dst[] = { &w->name_find, &w->name_add, &w->post, &w->addr, &w->time };
    const char *sql[] = {
        "SELECT id FROM names WHERE s = ?1",
        "INSERT INTO names (id, s) VALUES (?1, ?2)",
        w->bulk ? "INSERT INTO stage_post (k, seq) VALUES (?1, ?2)"
                : "INSERT OR IGNORE INTO post (k, seq) VALUES (?1, ?2)",
        w->bulk ? "INSERT INTO stage_addrs (ip, seq) VALUES (?1, ?2)"
                : "INSERT OR IGNORE INTO addrs (ip, seq) VALUES (?1, ?2)",
        w->bulk ? "INSERT INTO stage_times (t, seq) VALUES (?1, ?2)"
                : "INSERT OR IGNORE INTO times (t, seq) VALUES (?1, ?2)",
    };
    sqlite3_stmt *s;
    size_t i;

    for (i = 0; i < sizeof dst / sizeof dst[0]; i++)
        if (sqlite3_prepare_v2(w->ix, sql[i], -1, dst[i], NULL) != SQLITE_OK)
            return db_fail(em, w->ix, "index");
    if (sqlite3_prepare_v2(w->ix, "SELECT coalesce(max(id), 0) + 1 FROM names", -1, &s, NULL) != SQLITE_OK)
        return db_fail(em, w->ix, "index");
    if (sqlite3_step(s) == SQLITE_ROW)
        w->next_id = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    if (!w->bulk)
        return CF_OK;
    if (sqlite3_prepare_v2(w->ix, "SELECT id, s FROM names", -1, &s, NULL) != SQLITE_OK)
        return db_fail(em, w->ix, "index");
    while (sqlite3_step(s) == SQLITE_ROW)
        if (names_put(&w->map, (const char *)sqlite3_column_text(s, 1),
                      sqlite3_column_int64(s, 0)) != 0) {
            sqlite3_finalize(s);
            return cf_fail(em, CF_ERR_NOMEM, "scope: out of memory for the index's names");
        }
    sqlite3_finalize(s);
    return CF_OK;
}

static enum cf_err
idx_open(const char *dir, sqlite3 **ix, struct cf_errmsg *em)
{
    enum cf_err rc = open_db(dir, IDX_FILE, 1, ix, em);

    if (rc != CF_OK)
        return rc;
    /* Derived data: no journal, no fsync; an interrupted build is redone. */
    if (exec(*ix, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
                  "PRAGMA cache_size = -131072; PRAGMA temp_store = FILE") != SQLITE_OK ||
        exec(*ix, idx_tables) != SQLITE_OK) {
        rc = db_fail(em, *ix, "index");
        sqlite3_close(*ix);
        *ix = NULL;
    }
    return rc;
}

static void
idx_unlink(const char *dir)
{
    char path[IDX_PATH_MAX];

    snprintf(path, sizeof path, "%s/%s", dir, IDX_FILE);
    unlink(path);
    snprintf(path, sizeof path, "%s/%s-journal", dir, IDX_FILE);
    unlink(path);
}

/* The chain hash of entry seq in hex; "" if no such entry. */
static void
entry_hash_hex(sqlite3 *au, int64_t seq, char out[65])
{
    sqlite3_stmt *s;

    out[0] = '\0';
    if (sqlite3_prepare_v2(au, "SELECT hash FROM entries WHERE seq = ?1", -1, &s, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(s, 1, seq);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_bytes(s, 0) == 32)
        sodium_bin2hex(out, 65, sqlite3_column_blob(s, 0), 32);
    sqlite3_finalize(s);
}

static int64_t
one_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s;
    int64_t v = -1;

    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* Whether the index's state still describes audit.db's trail. */
static int
idx_matches(sqlite3 *ix, sqlite3 *au, const char *node, int64_t *seq)
{
    char v[80], h[65];

    *seq = 0;
    if (meta_get(ix, "version", v, sizeof v) != 0)
        return one_int(ix, "SELECT count(*) FROM names") == 0;   /* new and empty */
    if (strcmp(v, IDX_VERSION) != 0 || meta_get(ix, "state", v, sizeof v) != 0 ||
        strcmp(v, "ready") != 0 || meta_get(ix, "node", v, sizeof v) != 0 ||
        strcmp(v, node) != 0 || meta_get(ix, "seq", v, sizeof v) != 0)
        return 0;
    *seq = strtoll(v, NULL, 10);
    if (*seq == 0)
        return 1;
    if (meta_get(ix, "hash", v, sizeof v) != 0)
        return 0;
    entry_hash_hex(au, *seq, h);
    if (h[0] == '\0')              /* archived since: it is below the trail's base */
        return one_int(au, "SELECT coalesce(min(seq), 0) FROM entries") > *seq;
    return strcmp(h, v) == 0;
}

static enum cf_err
catch_up(const char *dir, sqlite3 *ix, sqlite3 *au, int64_t from, int64_t to, int bulk,
         scope_progress_fn pf, void *parg, struct cf_errmsg *em)
{
    struct indexer w;
    sqlite3_stmt *s = NULL;
    enum cf_err rc = CF_OK;
    uint64_t done = 0, total = (uint64_t)(to - from);
    int64_t last = from;
    char hash[65], num[24];
    int step;

    (void)dir;
    memset(&w, 0, sizeof w);
    w.ix = ix;
    w.bulk = bulk;
    if (meta_set(ix, "state", "building") != 0 || (bulk && exec(ix, idx_stage) != SQLITE_OK)) {
        rc = db_fail(em, ix, "index");
        goto out;
    }
    if ((rc = indexer_prepare(&w, em)) != CF_OK)
        goto out;
    if (sqlite3_prepare_v2(au, "SELECT seq, time_ms, actor, session, addr, action, subject, "
                           "fields, outcome FROM entries WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = db_fail(em, au, "audit trail");
        goto out;
    }
    sqlite3_bind_int64(s, 1, from);
    sqlite3_bind_int64(s, 2, to);
    if (exec(ix, "BEGIN") != SQLITE_OK) {
        rc = db_fail(em, ix, "index");
        goto out;
    }
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *col[7];
        int i;

        for (i = 0; i < 7; i++) {
            col[i] = (const char *)sqlite3_column_text(s, 2 + i);
            if (col[i] == NULL)
                col[i] = "";
        }
        last = sqlite3_column_int64(s, 0);
        if (index_entry(&w, last, sqlite3_column_int64(s, 1), col) != 0) {
            rc = db_fail(em, ix, "indexing");
            goto out;
        }
        if (++done % IDX_BATCH == 0 &&
            (exec(ix, "COMMIT") != SQLITE_OK || exec(ix, "BEGIN") != SQLITE_OK)) {
            rc = db_fail(em, ix, "index");
            goto out;
        }
        if (pf != NULL && done % PROGRESS_EVERY == 0)
            pf(parg, "indexing the audit trail", done, total);
    }
    if (step != SQLITE_DONE) {
        rc = db_fail(em, au, "reading the audit trail");
        goto out;
    }
    if (exec(ix, "COMMIT") != SQLITE_OK) {
        rc = db_fail(em, ix, "index");
        goto out;
    }
    if (bulk) {
        if (pf != NULL)
            pf(parg, "sorting the index", done, total);
        if (exec(ix, idx_merge) != SQLITE_OK) {
            rc = db_fail(em, ix, "building the index");
            goto out;
        }
    }
    entry_hash_hex(au, last, hash);
    snprintf(num, sizeof num, "%" PRId64, last);
    if (meta_set(ix, "seq", num) != 0 || meta_set(ix, "hash", hash) != 0 ||
        meta_set(ix, "version", IDX_VERSION) != 0 || meta_set(ix, "state", "ready") != 0)
        rc = db_fail(em, ix, "index");
out:
    if (rc != CF_OK && !sqlite3_get_autocommit(ix))
        exec(ix, "COMMIT");
    sqlite3_finalize(s);
    indexer_done(&w);
    return rc;
}

/* Opens both files with the index caught up; the caller closes them. */
static enum cf_err
idx_ready(const char *dir, int rebuild, scope_progress_fn pf, void *parg, sqlite3 **ixo,
          sqlite3 **auo, uint64_t *indexed, struct cf_errmsg *em)
{
    sqlite3 *ix = NULL, *au = NULL;
    char node[80];
    int64_t seq = 0, max;
    enum cf_err rc;

    if ((rc = open_db(dir, AUD_FILE, 0, &au, em)) != CF_OK)
        return rc;
    if (meta_get(au, "node", node, sizeof node) != 0) {
        rc = cf_fail(em, CF_ERR_STORE, "scope: audit.db holds no node id (not a trail)");
        goto out;
    }
    if (rebuild)
        idx_unlink(dir);
    /* derived: an index that does not open is rebuilt */
    if (idx_open(dir, &ix, em) != CF_OK) {
        idx_unlink(dir);
        if ((rc = idx_open(dir, &ix, em)) != CF_OK)
            goto out;
    }
    if (!idx_matches(ix, au, node, &seq)) {
        sqlite3_close(ix);
        ix = NULL;
        idx_unlink(dir);
        if ((rc = idx_open(dir, &ix, em)) != CF_OK)
            goto out;
        seq = 0;
    }
    if (meta_set(ix, "node", node) != 0) {
        rc = db_fail(em, ix, "index");
        goto out;
    }
    max = one_int(au, "SELECT coalesce(max(seq), 0) FROM entries");
    if (max > seq)
        rc = catch_up(dir, ix, au, seq, max, seq == 0 || max - seq > IDX_BULK, pf, parg, em);
    else if (seq == 0 && (meta_set(ix, "version", IDX_VERSION) != 0 ||
                          meta_set(ix, "seq", "0") != 0 || meta_set(ix, "state", "ready") != 0))
        rc = db_fail(em, ix, "index");
    if (rc == CF_OK && indexed != NULL)
        *indexed = (uint64_t)(max > seq ? max : seq);
out:
    if (rc != CF_OK) {
        sqlite3_close(ix);
        sqlite3_close(au);
        return rc;
    }
    *ixo = ix;
    *auo = au;
    return CF_OK;
}

enum cf_err
scope_reindex(const char *data_dir, int rebuild, scope_progress_fn pf, void *parg,
              uint64_t *indexed, struct cf_errmsg *em)
{
    sqlite3 *ix = NULL, *au = NULL;
    enum cf_err rc = idx_ready(data_dir, rebuild, pf, parg, &ix, &au, indexed, em);

    sqlite3_close(ix);
    sqlite3_close(au);
    return rc;
}

/* ---- sets of entries ---------------------------------------------------- */

struct seqs {
    int64_t *v;
    size_t n, cap;
};

static int
seqs_add(struct seqs *s, int64_t x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        int64_t *v;

        if (cap > SCOPE_ENTRIES_MAX)
            return -1;
        v = realloc(s->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static void
seqs_sort(struct seqs *s)
{
    size_t i, o = 0;

    if (s->n == 0)
        return;                 /* s->v may be NULL: qsort must not see it */
    qsort(s->v, s->n, sizeof *s->v, cmp_i64);
    for (i = 0; i < s->n; i++)
        if (o == 0 || s->v[o - 1] != s->v[i])
            s->v[o++] = s->v[i];
    s->n = o;
}

/* a = a AND b (both sorted). */
static void
seqs_and(struct seqs *a, const struct seqs *b)
{
    size_t i = 0, j = 0, o = 0;

    while (i < a->n && j < b->n) {
        if (a->v[i] < b->v[j])
            i++;
        else if (a->v[i] > b->v[j])
            j++;
        else {
            a->v[o++] = a->v[i];
            i++;
            j++;
        }
    }
    a->n = o;
}

/* Appends the postings of key text (e.g. "a:acct:...") to out. */
static int
postings(sqlite3 *ix, const char *key, struct seqs *out)
{
    sqlite3_stmt *s;
    int step, rc = 0;

    if (sqlite3_prepare_v2(ix, "SELECT p.seq FROM names n JOIN post p ON p.k = n.id "
                           "WHERE n.s = ?1", -1, &s, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        if (seqs_add(out, sqlite3_column_int64(s, 0)) != 0) {
            rc = -1;
            break;
        }
    if (step != SQLITE_DONE && step != SQLITE_ROW)
        rc = -1;
    sqlite3_finalize(s);
    return rc;
}

/* ---- the query ------------------------------------------------------------ */

/* Field names across kinds, numbered once. */
static const char *field_names[32];
static size_t nfield_names;

static void
fields_init(void)
{
    int k;
    size_t i, j;

    if (nfield_names > 0)
        return;
    for (k = 0; k < REC_KIND_COUNT; k++)
        for (i = 0; i < records_field_count((enum record_kind)k); i++) {
            const char *f = records_field_name((enum record_kind)k, i);

            for (j = 0; j < nfield_names && strcmp(field_names[j], f) != 0; j++)
                ;
            if (j == nfield_names && nfield_names < 32)
                field_names[nfield_names++] = f;
        }
}

size_t scope_field_count(void) { fields_init(); return nfield_names; }
const char *scope_field_name(size_t i) { fields_init(); return i < nfield_names ? field_names[i] : ""; }

const char *
scope_category_name(enum scope_category c)
{
    static const char *const n[] = { "student", "guardian", "staff" };

    return (unsigned)c < SCOPE_CATEGORIES ? n[c] : "?";
}

static uint32_t
fields_bits(const char *list)
{
    uint32_t bits = 0;
    size_t i;

    while (*list != '\0') {
        size_t n = strcspn(list, ",");

        for (i = 0; i < nfield_names; i++)
            if (strlen(field_names[i]) == n && strncmp(field_names[i], list, n) == 0)
                bits |= 1u << i;
        list += n;
        if (*list == ',')
            list++;
    }
    return bits;
}

static uint32_t
kind_bits(enum record_kind k)
{
    uint32_t bits = 0;
    size_t i, j;

    for (i = 0; i < records_field_count(k); i++)
        for (j = 0; j < nfield_names; j++)
            if (strcmp(field_names[j], records_field_name(k, i)) == 0)
                bits |= 1u << j;
    return bits;
}

/* Subjects seen, by 16-byte id. */
struct subj {
    uint8_t id[16];
    int used;
    uint32_t fields, served, refused;
    int64_t first, last;
};

struct subjects {
    struct subj *s;
    size_t cap, n;
};

static uint64_t
id_hash(const uint8_t id[16])
{
    uint64_t a, b;

    /* both halves: ids need not be random (a trail of another tool's) */
    memcpy(&a, id, sizeof a);
    memcpy(&b, id + 8, sizeof b);
    a ^= b * 0xC2B2AE3D27D4EB4FULL;
    /* splitmix64's finaliser: every bit reaches the low ones */
    a ^= a >> 30;
    a *= 0xBF58476D1CE4E5B9ULL;
    a ^= a >> 27;
    a *= 0x94D049BB133111EBULL;
    return a ^ (a >> 31);
}

static struct subj *
subj_get(struct subjects *m, const uint8_t id[16])
{
    size_t j;

    if ((m->n + 1) * 2 > m->cap) {
        struct subjects big = { NULL, m->cap ? m->cap * 2 : 4096, 0 };
        size_t i;

        if (m->n >= SCOPE_SUBJECTS_MAX)
            return NULL;
        big.s = calloc(big.cap, sizeof *big.s);
        if (big.s == NULL)
            return NULL;
        for (i = 0; i < m->cap; i++)
            if (m->s[i].used) {
                for (j = id_hash(m->s[i].id) & (big.cap - 1); big.s[j].used;
                     j = (j + 1) & (big.cap - 1))
                    ;
                big.s[j] = m->s[i];
                big.n++;
            }
        free(m->s);
        *m = big;
    }
    for (j = id_hash(id) & (m->cap - 1); m->s[j].used; j = (j + 1) & (m->cap - 1))
        if (memcmp(m->s[j].id, id, 16) == 0)
            return &m->s[j];
    m->s[j].used = 1;
    memcpy(m->s[j].id, id, 16);
    m->n++;
    return &m->s[j];
}

/* Per-actor time windows (--rule, --account-state): an entry of such a
 * query counts only inside its actor's window. */
struct window {
    char actor[AUDIT_ACTOR_MAX + 1];
    int64_t from, to;
};

struct windows {
    struct window *w;
    size_t n, cap;
    int active;
    struct names map;          /* actor -> index + 1, once built */
};

static int
windows_add(struct windows *ws, const char *actor, int64_t from, int64_t to)
{
    int64_t k = names_get(&ws->map, actor);

    if (k != 0) {
        struct window *w = &ws->w[k - 1];

        if (from < w->from)
            w->from = from;
        if (to > w->to)
            w->to = to;
        return 0;
    }
    if (ws->n == ws->cap) {
        size_t cap = ws->cap ? ws->cap * 2 : 64;
        struct window *v;

        if (cap > SCOPE_SUBJECTS_MAX)
            return -1;
        v = realloc(ws->w, cap * sizeof *v);
        if (v == NULL)
            return -1;
        ws->w = v;
        ws->cap = cap;
    }
    snprintf(ws->w[ws->n].actor, sizeof ws->w[ws->n].actor, "%s", actor);
    ws->w[ws->n].from = from;
    ws->w[ws->n].to = to;
    ws->n++;
    return names_put(&ws->map, actor, (int64_t)ws->n);
}

static const struct window *
windows_find(const struct windows *ws, const char *actor)
{
    int64_t k = names_get(&ws->map, actor);

    return k != 0 ? &ws->w[k - 1] : NULL;
}

struct run {
    const struct scope_query *q;
    struct records *r;
    sqlite3 *ix, *au;
    sqlite3_stmt *get;         /* one entry by seq */
    struct scope_result *res;
    struct subjects subj;
    struct windows win;
    struct names actor_map;    /* actor -> index in res->actors + 1 */
    struct cf_errmsg *em;
};

/* An entry as read. */
struct ent {
    int64_t seq, t;
    const char *actor, *action, *subject, *fields, *outcome;
};

static int
get_entry(struct run *x, int64_t seq, struct ent *e)
{
    sqlite3_stmt *s = x->get;
    int i;

    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, seq);
    if (sqlite3_step(s) != SQLITE_ROW)
        return -1;
    e->seq = seq;
    e->t = sqlite3_column_int64(s, 0);
    for (i = 0; i < 5; i++) {
        const char *v = (const char *)sqlite3_column_text(s, 1 + i);
        const char **dst[] = { &e->actor, &e->action, &e->subject, &e->fields, &e->outcome };

        *dst[i] = v != NULL ? v : "";
    }
    return 0;
}

/* Accounts whose lifecycle put them in q->account_state during the window:
 * for "provisioned", from creation until activation (its audit entry),
 * freezing (the account's last update) or now; for other states, accounts
 * in that state now. */
struct state_walk {
    struct run *x;
    int64_t from, to;
    int fail;
};

static int
state_account(void *arg, const struct store_account *a)
{
    struct state_walk *sw = arg;
    struct run *x = sw->x;
    char hex[RECORD_ID_HEX + 1], actor[AUDIT_ACTOR_MAX + 1], key[64];
    int64_t start = a->created * 1000, end = INT64_MAX;

    records_id_format(a->id, hex);
    snprintf(actor, sizeof actor, "acct:%s", hex);
    if (strcmp(x->q->account_state, ACCOUNT_STATE_PROVISIONED) != 0) {
        if (strcmp(a->state, x->q->account_state) != 0)
            return 0;
        start = INT64_MIN;
    } else if (strcmp(a->state, ACCOUNT_STATE_PROVISIONED) != 0) {
        /* the first successful activation ends the provisioned state */
        struct seqs act = { NULL, 0, 0 }, mine = { NULL, 0, 0 };
        struct ent e;
        size_t i;

        snprintf(key, sizeof key, "a:%s", actor);
        if (postings(x->ix, "x:account.activate", &act) != 0 || postings(x->ix, key, &mine) != 0) {
            free(act.v);
            free(mine.v);
            sw->fail = 1;
            return 1;
        }
        seqs_sort(&act);
        seqs_sort(&mine);
        seqs_and(&act, &mine);
        end = a->updated * 1000;               /* frozen without activating */
        for (i = 0; i < act.n; i++)
            if (get_entry(x, act.v[i], &e) == 0 && strcmp(e.outcome, "ok") == 0) {
                end = e.t;
                break;
            }
        free(act.v);
        free(mine.v);
    }
    if (start > sw->to || end < sw->from)
        return 0;
    if (windows_add(&x->win, actor, sw->from, sw->to) != 0) {
        sw->fail = 1;
        return 1;
    }
    return 0;
}

static enum cf_err
select_state(struct run *x, struct seqs *out)
{
    struct store_account_scope sc = { NULL, NULL, NULL };
    struct state_walk sw = { x, x->q->has_from ? x->q->from_ms : INT64_MIN,
                             x->q->has_to ? x->q->to_ms : INT64_MAX, 0 };
    char key[64];
    size_t i;

    x->win.active = 1;
    if (store_accounts_each(records_store(x->r), &sc, state_account, &sw) != CF_OK || sw.fail)
        return cf_fail(x->em, CF_ERR_STORE, "scope: cannot read the accounts");
    for (i = 0; i < x->win.n; i++) {
        snprintf(key, sizeof key, "a:%s", x->win.w[i].actor);
        if (postings(x->ix, key, out) != 0)
            return cf_fail(x->em, CF_ERR_NOMEM, "scope: too many entries; narrow the scope");
    }
    return CF_OK;
}

/* --rule: every lockout under the rule (in the window, if any) selects its
 * actor's entries from SCOPE_RULE_WINDOW_MS before it up to it. */
static enum cf_err
select_rule(struct run *x, struct seqs *out)
{
    struct seqs al = { NULL, 0, 0 };
    char key[AUDIT_FIELDS_MAX + 8];
    struct ent e;
    size_t i;
    enum cf_err rc = CF_OK;

    x->win.active = 1;
    snprintf(key, sizeof key, "r:%s", x->q->rule);
    if (postings(x->ix, key, &al) != 0) {
        free(al.v);
        return cf_fail(x->em, CF_ERR_NOMEM, "scope: out of memory");
    }
    for (i = 0; i < al.n && rc == CF_OK; i++) {
        if (get_entry(x, al.v[i], &e) != 0 || e.actor[0] == '\0')
            continue;
        if ((x->q->has_from && e.t < x->q->from_ms) || (x->q->has_to && e.t > x->q->to_ms))
            continue;
        if (windows_add(&x->win, e.actor, e.t - SCOPE_RULE_WINDOW_MS, e.t) != 0)
            rc = cf_fail(x->em, CF_ERR_LIMIT, "scope: too many alerts; narrow the window");
    }
    free(al.v);
    for (i = 0; i < x->win.n && rc == CF_OK; i++) {
        snprintf(key, sizeof key, "a:%s", x->win.w[i].actor);
        if (postings(x->ix, key, out) != 0)
            rc = cf_fail(x->em, CF_ERR_NOMEM, "scope: too many entries; narrow the scope");
    }
    return rc;
}

struct people_walk {
    sqlite3 *ix;
    struct records *r;
    struct seqs *out;
    int fail;
};

static int
walk_post_id(struct people_walk *pw, const char *id)
{
    char key[40];

    snprintf(key, sizeof key, "i:%s", id);
    if (postings(pw->ix, key, pw->out) != 0) {
        pw->fail = 1;
        return 1;
    }
    return 0;
}

static int
walk_guardian(void *arg, const struct record *link)
{
    return walk_post_id(arg, link->parent[0]);
}

static int
walk_student(void *arg, const struct record *rec)
{
    struct people_walk *pw = arg;

    if (walk_post_id(pw, rec->id) != 0)
        return 1;
    if (records_children(pw->r, REC_GUARDIAN_LINK, 1, rec->id, SCOPE_GUARDIANS_MAX, 0,
                         walk_guardian, pw, NULL) != CF_OK)
        pw->fail = 1;
    return pw->fail;
}

static int
walk_staff(void *arg, const struct record *rec)
{
    return walk_post_id(arg, rec->id);
}

/* Entries naming a person of the establishment (students, their guardians,
 * staff). */
static int
walk_establishment(void *arg, const struct record *est)
{
    struct people_walk *pw = arg;

    if (records_children(pw->r, REC_STUDENT, 0, est->id, 1000000, 0, walk_student, pw,
                         NULL) != CF_OK ||
        records_children(pw->r, REC_STAFF, 0, est->id, 1000000, 0, walk_staff, pw,
                         NULL) != CF_OK)
        pw->fail = 1;
    return pw->fail;
}

struct comp_walk {
    struct people_walk *pw;
    const char *code;
};

static int
walk_comp(void *arg, const struct record *est)
{
    struct comp_walk *cw = arg;

    if (strcmp(est->compartment, cw->code) != 0)
        return 0;
    return walk_establishment(cw->pw, est);
}

static enum cf_err
select_place(struct run *x, struct seqs *out)
{
    struct people_walk pw = { x->ix, x->r, out, 0 };
    struct comp_walk cw = { &pw, x->q->compartment };
    struct record *est = malloc(sizeof *est);
    enum cf_err rc = CF_OK;

    if (est == NULL)
        return cf_fail(x->em, CF_ERR_NOMEM, "scope: out of memory");
    if (x->q->establishment != NULL) {
        if (records_get(x->r, REC_ESTABLISHMENT, x->q->establishment, 0, est, NULL) != CF_OK)
            rc = cf_fail(x->em, CF_ERR_NOTFOUND, "scope: no such establishment");
        else
            (void)walk_establishment(&pw, est);
    } else if (records_establishments(x->r, 1000000, walk_comp, &cw, NULL) != CF_OK)
        pw.fail = 1;
    free(est);
    if (rc == CF_OK && pw.fail)
        rc = cf_fail(x->em, CF_ERR_STORE, "scope: cannot list the establishment's people");
    return rc;
}

static enum cf_err
select_range(struct run *x, struct seqs *out, int addr)
{
    sqlite3_stmt *s;
    int step;

    if (sqlite3_prepare_v2(x->ix, addr ? "SELECT seq FROM addrs WHERE ip BETWEEN ?1 AND ?2"
                                       : "SELECT seq FROM times WHERE t BETWEEN ?1 AND ?2",
                           -1, &s, NULL) != SQLITE_OK)
        return db_fail(x->em, x->ix, "index");
    if (addr) {
        sqlite3_bind_blob(s, 1, x->q->lo, 16, SQLITE_STATIC);
        sqlite3_bind_blob(s, 2, x->q->hi, 16, SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(s, 1, x->q->has_from ? x->q->from_ms : INT64_MIN);
        sqlite3_bind_int64(s, 2, x->q->has_to ? x->q->to_ms : INT64_MAX);
    }
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        if (seqs_add(out, sqlite3_column_int64(s, 0)) != 0) {
            sqlite3_finalize(s);
            return cf_fail(x->em, CF_ERR_LIMIT, "scope: more than %llu entries; narrow the scope",
                           (unsigned long long)SCOPE_ENTRIES_MAX);
        }
    sqlite3_finalize(s);
    return step == SQLITE_DONE ? CF_OK : db_fail(x->em, x->ix, "index");
}

/* Intersects *acc with the next selector's set (first: takes it). */
static void
combine(struct seqs *acc, int *have, struct seqs *next)
{
    seqs_sort(next);
    if (!*have) {
        free(acc->v);
        *acc = *next;
        *have = 1;
    } else {
        seqs_and(acc, next);
        free(next->v);
    }
    memset(next, 0, sizeof *next);
}

static enum cf_err
select_entries(struct run *x, struct seqs *acc)
{
    const struct scope_query *q = x->q;
    struct seqs s = { NULL, 0, 0 };
    char key[AUDIT_SESSION_MAX + 8];
    enum cf_err rc = CF_OK;
    int have = 0;
    size_t i;

    if (q->nactor > 0) {
        for (i = 0; i < q->nactor && rc == CF_OK; i++) {
            snprintf(key, sizeof key, "a:%s", q->actor[i]);
            if (postings(x->ix, key, &s) != 0)
                rc = cf_fail(x->em, CF_ERR_NOMEM, "scope: too many entries; narrow the scope");
        }
        combine(acc, &have, &s);
    }
    if (rc == CF_OK && q->session != NULL) {
        snprintf(key, sizeof key, "s:%s", q->session);
        if (postings(x->ix, key, &s) != 0)
            rc = cf_fail(x->em, CF_ERR_NOMEM, "scope: too many entries; narrow the scope");
        combine(acc, &have, &s);
    }
    if (rc == CF_OK && q->has_cidr) {
        rc = select_range(x, &s, 1);
        combine(acc, &have, &s);
    }
    if (rc == CF_OK && q->account_state != NULL) {
        rc = select_state(x, &s);
        combine(acc, &have, &s);
    }
    if (rc == CF_OK && q->rule != NULL) {
        struct windows keep = x->win;

        /* --account-state and --rule together: each keeps its windows */
        memset(&x->win, 0, sizeof x->win);
        rc = select_rule(x, &s);
        if (keep.n > 0) {
            size_t j, o = 0;

            for (j = 0; j < x->win.n; j++)
                if (windows_find(&keep, x->win.w[j].actor) != NULL)
                    x->win.w[o++] = x->win.w[j];
            x->win.n = o;
            names_free(&x->win.map);
            for (j = 0; j < o; j++)
                if (names_put(&x->win.map, x->win.w[j].actor, (int64_t)j + 1) != 0)
                    rc = cf_fail(x->em, CF_ERR_NOMEM, "scope: out of memory");
        }
        free(keep.w);
        names_free(&keep.map);
        combine(acc, &have, &s);
    }
    /* A window selects through the time index; a place alone selects the
     * entries naming its people; with other selectors (a window included)
     * a place only filters the people found. */
    if (rc == CF_OK && !have && (q->has_from || q->has_to)) {
        rc = select_range(x, &s, 0);
        combine(acc, &have, &s);
    }
    if (rc == CF_OK && !have && (q->establishment != NULL || q->compartment != NULL)) {
        rc = select_place(x, &s);
        combine(acc, &have, &s);
    }
    free(s.v);
    if (rc == CF_OK && !have)
        rc = cf_fail(x->em, CF_ERR_INPUT, "scope: give at least one selector (--actor, --session, "
                     "--address, --from/--to, --compartment, --establishment, --account-state, --rule)");
    return rc;
}

static int
actor_note(struct run *x, const struct ent *e)
{
    struct scope_result *res = x->res;
    int64_t k;
    size_t i;

    if (e->actor[0] == '\0')
        return 0;
    if ((k = names_get(&x->actor_map, e->actor)) != 0)
        i = (size_t)(k - 1);
    else {
        if (res->nactors >= SCOPE_LIST_MAX)
            return 0;                       /* the summary lists the first ones */
        i = res->nactors;
        if (names_put(&x->actor_map, e->actor, (int64_t)i + 1) != 0)
            return -1;
        snprintf(res->actors[i].actor, sizeof res->actors[i].actor, "%s", e->actor);
        res->nactors++;
    }
    res->actors[i].entries++;
    if (strcmp(e->outcome, "ok") == 0 && e->subject[0] != '\0')
        res->actors[i].served++;
    return 0;
}

static enum cf_err
take_entry(struct run *x, const struct ent *e)
{
    struct scope_result *res = x->res;
    const struct window *w;
    int ok = strcmp(e->outcome, "ok") == 0;
    uint32_t bits;
    const char *p;

    if ((x->q->has_from && e->t < x->q->from_ms) || (x->q->has_to && e->t > x->q->to_ms))
        return CF_OK;
    if (x->win.active) {
        if ((w = windows_find(&x->win, e->actor)) == NULL || e->t < w->from || e->t > w->to)
            return CF_OK;
    }
    res->entries++;
    if (res->first_ms == 0 || e->t < res->first_ms)
        res->first_ms = e->t;
    if (e->t > res->last_ms)
        res->last_ms = e->t;
    if (actor_note(x, e) != 0)
        return cf_fail(x->em, CF_ERR_NOMEM, "scope: out of memory");
    if (e->subject[0] == '\0')
        return CF_OK;
    if (ok)
        res->served++;
    else
        res->refused++;
    bits = ok ? fields_bits(e->fields) : 0;
    for (p = e->subject; *p != '\0';) {
        size_t n = strcspn(p, ",");
        uint8_t id[16];
        struct subj *s;

        if (is_hex32(p, n)) {
            size_t k;

            /* is_hex32 checked the digits: lower-case hex only */
            for (k = 0; k < 16; k++)
                id[k] = (uint8_t)(hexval(p[2 * k]) << 4 | hexval(p[2 * k + 1]));
            if ((s = subj_get(&x->subj, id)) == NULL)
                return cf_fail(x->em, CF_ERR_LIMIT,
                               "scope: more than %u people; narrow the scope (a window, an establishment)",
                               SCOPE_SUBJECTS_MAX);
            if (ok) {
                s->served++;
                s->fields |= bits;
            } else
                s->refused++;
            if (s->first == 0 || e->t < s->first)
                s->first = e->t;
            if (e->t > s->last)
                s->last = e->t;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return CF_OK;
}

static int
cmp_person(const void *a, const void *b)
{
    const struct scope_person *x = a, *y = b;

    if (x->cat != y->cat)
        return x->cat < y->cat ? -1 : 1;
    return memcmp(x->id, y->id, 16);
}

/* Which person an id is, and where: students and staff by their
 * establishment, guardians by their first child's. */
static int
resolve(struct run *x, const struct subj *s, struct record *rec, struct scope_person *out)
{
    static const enum record_kind kinds[] = { REC_STUDENT, REC_GUARDIAN, REC_STAFF };
    static const enum scope_category cats[] = { SCOPE_STUDENT, SCOPE_GUARDIAN, SCOPE_STAFF };
    char hex[RECORD_ID_HEX + 1];
    size_t i;

    records_id_format(s->id, hex);
    for (i = 0; i < 3; i++)
        if (records_get(x->r, kinds[i], hex, 0, rec, NULL) == CF_OK)
            break;
    if (i == 3)
        return 1;                           /* a class, an establishment, a link, or gone */
    memset(out, 0, sizeof *out);
    memcpy(out->id, s->id, 16);
    out->cat = cats[i];
    snprintf(out->compartment, sizeof out->compartment, "%s", rec->compartment);
    out->fields = s->fields & kind_bits(kinds[i]);
    out->served = s->served;
    out->refused = s->refused;
    out->first_ms = s->first;
    out->last_ms = s->last;
    if (kinds[i] != REC_GUARDIAN)
        snprintf(out->establishment, sizeof out->establishment, "%s", rec->parent[0]);
    return 0;
}

struct first_child {
    struct records *r;
    char est[RECORD_ID_HEX + 1];
};

static int
child_est(void *arg, const struct record *link)
{
    struct first_child *fc = arg;
    struct record *st = malloc(sizeof *st);

    if (st != NULL && records_get(fc->r, REC_STUDENT, link->parent[1], 0, st, NULL) == CF_OK)
        snprintf(fc->est, sizeof fc->est, "%s", st->parent[0]);
    free(st);
    return 1;
}

static enum cf_err
gather_people(struct run *x, scope_progress_fn pf, void *parg)
{
    struct scope_result *res = x->res;
    struct record *rec = malloc(sizeof *rec);
    size_t i, done = 0;
    int inside;

    if (rec == NULL)
        return cf_fail(x->em, CF_ERR_NOMEM, "scope: out of memory");
    res->people = calloc(x->subj.n ? x->subj.n : 1, sizeof *res->people);
    if (res->people == NULL) {
        free(rec);
        return cf_fail(x->em, CF_ERR_NOMEM, "scope: out of memory");
    }
    /* one transaction for every lookup: one lock, not one per read (nothing
     * is written; rolled back below) */
    inside = records_begin(x->r, 0) == CF_OK;
    for (i = 0; i < x->subj.cap; i++) {
        struct scope_person *p = &res->people[res->npeople];
        int k;

        if (!x->subj.s[i].used)
            continue;
        if (pf != NULL && ++done % PROGRESS_EVERY == 0)
            pf(parg, "resolving people", done, x->subj.n);
        k = resolve(x, &x->subj.s[i], rec, p);
        if (k == 1) {
            res->other_ids++;
            continue;
        }
        if (p->cat == SCOPE_GUARDIAN) {
            struct first_child fc = { x->r, "" };
            char hex[RECORD_ID_HEX + 1];

            records_id_format(p->id, hex);
            if (records_children(x->r, REC_GUARDIAN_LINK, 0, hex, 1, 0, child_est, &fc, NULL) != CF_OK)
                fc.est[0] = '\0';
            snprintf(p->establishment, sizeof p->establishment, "%s", fc.est);
        }
        if (x->q->compartment != NULL && strcmp(p->compartment, x->q->compartment) != 0)
            continue;
        if (x->q->establishment != NULL && strcmp(p->establishment, x->q->establishment) != 0)
            continue;
        res->people_n[p->cat]++;
        if (p->served > 0 && p->fields != 0)
            res->clear_n++;
        res->npeople++;
    }
    if (inside)
        records_rollback(x->r);
    free(rec);
    qsort(res->people, res->npeople, sizeof *res->people, cmp_person);
    return CF_OK;
}

static int
cmp_event(const void *a, const void *b)
{
    const struct scope_event *x = a, *y = b;

    return (x->time_ms > y->time_ms) - (x->time_ms < y->time_ms);
}

/* Incident commands from the scope's first access on, and the lockouts of
 * its actors: what was done about it, as the trail says. */
static enum cf_err
gather_events(struct run *x)
{
    struct scope_result *res = x->res;
    struct seqs s = { NULL, 0, 0 };
    struct ent e;
    size_t i, j;
    int64_t since = x->q->has_from ? x->q->from_ms : res->first_ms;

    if (postings(x->ix, "x:incident", &s) != 0)
        goto nomem;
    /* lockouts: every rule posting, filtered to the scope's actors below */
    {
        sqlite3_stmt *st;

        if (sqlite3_prepare_v2(x->ix, "SELECT p.seq FROM names n JOIN post p ON p.k = n.id "
                               "WHERE n.s >= 'r:' AND n.s < 'r;'", -1, &st, NULL) != SQLITE_OK)
            goto nomem;
        while (sqlite3_step(st) == SQLITE_ROW)
            if (seqs_add(&s, sqlite3_column_int64(st, 0)) != 0) {
                sqlite3_finalize(st);
                goto nomem;
            }
        sqlite3_finalize(st);
    }
    seqs_sort(&s);
    res->events = calloc(SCOPE_LIST_MAX, sizeof *res->events);
    if (res->events == NULL)
        goto nomem;
    for (i = 0; i < s.n && res->nevents < SCOPE_LIST_MAX; i++) {
        struct scope_event *ev = &res->events[res->nevents];
        int lock;

        if (get_entry(x, s.v[i], &e) != 0 || e.t < since)
            continue;
        lock = strncmp(e.fields, "rule:", 5) == 0;
        if (lock) {
            for (j = 0; j < res->nactors && strcmp(res->actors[j].actor, e.actor) != 0; j++)
                ;
            if (j == res->nactors)
                continue;
        } else if (strcmp(e.outcome, "ok") != 0 || strstr(e.action, ".count") != NULL)
            continue;
        ev->time_ms = e.t;
        snprintf(ev->action, sizeof ev->action, "%s", lock ? "guard.lockout" : e.action);
        snprintf(ev->actor, sizeof ev->actor, "%s", e.actor);
        snprintf(ev->detail, sizeof ev->detail, "%s", lock ? e.fields + 5 : e.subject);
        res->nevents++;
    }
    qsort(res->events, res->nevents, sizeof *res->events, cmp_event);
    free(s.v);
    return CF_OK;
nomem:
    free(s.v);
    return cf_fail(x->em, CF_ERR_NOMEM, "scope: out of memory");
}

static void
actor_states(struct run *x)
{
    struct scope_result *res = x->res;
    struct account *a = malloc(sizeof *a);
    size_t i;

    for (i = 0; a != NULL && i < res->nactors; i++)
        if (strncmp(res->actors[i].actor, "acct:", 5) == 0 &&
            account_get(x->r, res->actors[i].actor + 5, a) == CF_OK)
            snprintf(res->actors[i].state, sizeof res->actors[i].state, "%s", a->row.state);
    free(a);
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum cf_err
scope_run(const char *data_dir, struct records *r, const struct scope_query *q,
          scope_progress_fn pf, void *parg, struct scope_result *res, struct cf_errmsg *em)
{
    struct run x;
    struct seqs set = { NULL, 0, 0 };
    enum cf_err rc;
    size_t i;
    double t0;

    memset(res, 0, sizeof *res);
    memset(&x, 0, sizeof x);
    fields_init();
    if (q->has_from && q->has_to && q->from_ms > q->to_ms)
        return cf_fail(em, CF_ERR_INPUT, "scope: --from is after --to");
    x.q = q;
    x.r = r;
    x.res = res;
    x.em = em;
    if ((rc = idx_ready(data_dir, 0, pf, parg, &x.ix, &x.au, NULL, em)) != CF_OK)
        return rc;
    t0 = now_s();
    meta_get(x.au, "node", res->node, sizeof res->node);
    res->actors = calloc(SCOPE_LIST_MAX, sizeof *res->actors);
    if (res->actors == NULL) {
        rc = cf_fail(em, CF_ERR_NOMEM, "scope: out of memory");
        goto out;
    }
    if (sqlite3_prepare_v2(x.au, "SELECT time_ms, actor, action, subject, fields, outcome "
                           "FROM entries WHERE seq = ?1", -1, &x.get, NULL) != SQLITE_OK) {
        rc = db_fail(em, x.au, "audit trail");
        goto out;
    }
    /* one read snapshot of the trail for the whole query */
    if (exec(x.au, "BEGIN") != SQLITE_OK) {
        rc = db_fail(em, x.au, "audit trail");
        goto out;
    }
    if ((rc = select_entries(&x, &set)) != CF_OK)
        goto out;
    for (i = 0; i < set.n; i++) {
        struct ent e;

        if (pf != NULL && i > 0 && i % PROGRESS_EVERY == 0)
            pf(parg, "reading entries", i, set.n);
        if (get_entry(&x, set.v[i], &e) != 0)
            continue;                       /* archived since it was indexed */
        if ((rc = take_entry(&x, &e)) != CF_OK)
            goto out;
    }
    if (res->entries == 0) {
        rc = cf_fail(em, CF_ERR_NOTFOUND, "scope: no audit entry matches these selectors");
        goto out;
    }
    if ((rc = gather_people(&x, pf, parg)) != CF_OK || (rc = gather_events(&x)) != CF_OK)
        goto out;
    actor_states(&x);
    res->seconds = now_s() - t0;
out:
    if (x.au != NULL && !sqlite3_get_autocommit(x.au))
        exec(x.au, "COMMIT");
    sqlite3_finalize(x.get);
    sqlite3_close(x.ix);
    sqlite3_close(x.au);
    free(set.v);
    free(x.subj.s);
    free(x.win.w);
    names_free(&x.actor_map);
    names_free(&x.win.map);
    if (rc != CF_OK)
        scope_result_free(res);
    return rc;
}

void
scope_result_free(struct scope_result *res)
{
    free(res->people);
    free(res->actors);
    free(res->events);
    res->people = NULL;
    res->actors = NULL;
    res->events = NULL;
    res->npeople = res->nactors = res->nevents = 0;
}

/* ---- reporting ------------------------------------------------------------ */

static void
iso_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || gmtime_r(&t, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        memcpy(out, "-", 2);
}

struct est_agg {
    char id[RECORD_ID_HEX + 1];
    char uai[UAI_BYTES + 1];
    uint64_t n[SCOPE_CATEGORIES];
};

struct aggs {
    struct est_agg *est;
    size_t nest;
    uint64_t other_est;                  /* people past SCOPE_LIST_MAX establishments */
    uint64_t field[32];                  /* people served each field */
    uint64_t clear[SCOPE_CATEGORIES];
};

static void
aggs_free(struct aggs *g)
{
    free(g->est);
}

/* Counts by establishment (with its UAI, public data) and by field. */
static int
aggs_build(struct records *r, const struct scope_result *res, struct aggs *g)
{
    struct record *rec = malloc(sizeof *rec);
    int uai = records_field_index(REC_ESTABLISHMENT, "uai");
    size_t i, j, f;

    memset(g, 0, sizeof *g);
    g->est = calloc(SCOPE_LIST_MAX, sizeof *g->est);
    if (g->est == NULL || rec == NULL) {
        free(rec);
        free(g->est);
        g->est = NULL;
        return -1;
    }
    for (i = 0; i < res->npeople; i++) {
        const struct scope_person *p = &res->people[i];

        for (f = 0; f < nfield_names; f++)
            if (p->served > 0 && (p->fields & (1u << f)))
                g->field[f]++;
        if (p->served > 0 && p->fields != 0)
            g->clear[p->cat]++;
        for (j = 0; j < g->nest && strcmp(g->est[j].id, p->establishment) != 0; j++)
            ;
        if (j == g->nest) {
            if (g->nest == SCOPE_LIST_MAX) {
                g->other_est++;
                continue;
            }
            snprintf(g->est[j].id, sizeof g->est[j].id, "%s", p->establishment);
            snprintf(g->est[j].uai, sizeof g->est[j].uai, "-");
            if (p->establishment[0] != '\0' && uai >= 0 &&
                records_get(r, REC_ESTABLISHMENT, p->establishment, 1u << uai, rec, NULL) == CF_OK)
                snprintf(g->est[j].uai, sizeof g->est[j].uai, "%s", rec->value[uai]);
            g->nest++;
        }
        g->est[j].n[p->cat]++;
    }
    free(rec);
    return 0;
}

static uint64_t
people_total(const struct scope_result *res)
{
    return res->people_n[0] + res->people_n[1] + res->people_n[2];
}

static void
fields_text(uint32_t bits, char *out, size_t cap)
{
    size_t i, o = 0;

    out[0] = '\0';
    for (i = 0; i < nfield_names; i++)
        if (bits & (1u << i)) {
            int n = snprintf(out + o, o < cap ? cap - o : 0, "%s%s", o ? "," : "", field_names[i]);

            if (n < 0 || o + (size_t)n >= cap)
                break;
            o += (size_t)n;
        }
}

static void
print_text(FILE *f, const struct scope_result *res, const struct aggs *g)
{
    char a[32], b[32];
    size_t i;
    static const char *const plural[] = { "students", "guardians", "staff" };

    iso_time(res->first_ms, a);
    iso_time(res->last_ms, b);
    fprintf(f, "# Breach scope (node %s)\n\n", res->node);
    fprintf(f, "- entries matched: %" PRIu64 " (%" PRIu64 " served records, %" PRIu64
            " reads refused)\n", res->entries, res->served, res->refused);
    fprintf(f, "- first access: %s; last access: %s\n", a, b);
    fprintf(f, "- people exposed: %" PRIu64 " (%" PRIu64 " students, %" PRIu64 " guardians, %"
            PRIu64 " staff)\n", people_total(res), res->people_n[0], res->people_n[1],
            res->people_n[2]);
    fprintf(f, "- served in clear: %" PRIu64 "; never decrypted for anyone: %" PRIu64
            " (GDPR Art. 34(3)(a))\n", res->clear_n, people_total(res) - res->clear_n);
    fprintf(f, "- other ids named (classes, establishments, links, or no longer in the store): %"
            PRIu64 "\n", res->other_ids);
    fprintf(f, "- query: %.1f ms (index caught up before)\n\n", res->seconds * 1000);
    fprintf(f, "## By category\n\n| category | people | served in clear | never decrypted |\n"
               "|---|---:|---:|---:|\n");
    for (i = 0; i < SCOPE_CATEGORIES; i++)
        fprintf(f, "| %s | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " |\n", plural[i],
                res->people_n[i], g->clear[i], res->people_n[i] - g->clear[i]);
    fprintf(f, "\n## By establishment\n\n| UAI | establishment id | students | guardians | staff |\n"
               "|---|---|---:|---:|---:|\n");
    for (i = 0; i < g->nest; i++)
        fprintf(f, "| %s | %s | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " |\n", g->est[i].uai,
                g->est[i].id[0] ? g->est[i].id : "-", g->est[i].n[0], g->est[i].n[1],
                g->est[i].n[2]);
    fprintf(f, "\n## By field (people whose field was served in clear)\n\n| field | people |\n"
               "|---|---:|\n");
    for (i = 0; i < nfield_names; i++)
        if (g->field[i] > 0)
            fprintf(f, "| %s | %" PRIu64 " |\n", field_names[i], g->field[i]);
    fprintf(f, "\n## Actors\n\n| actor | state now | entries | served |\n|---|---|---:|---:|\n");
    for (i = 0; i < res->nactors; i++)
        fprintf(f, "| %s | %s | %" PRIu64 " | %" PRIu64 " |\n", res->actors[i].actor,
                res->actors[i].state[0] ? res->actors[i].state : "-", res->actors[i].entries,
                res->actors[i].served);
    fprintf(f, "\n## Measures and lockouts in the trail\n\n");
    if (res->nevents == 0)
        fprintf(f, "none recorded\n");
    for (i = 0; i < res->nevents; i++) {
        iso_time(res->events[i].time_ms, a);
        fprintf(f, "- %s %s by %s: %s\n", a, res->events[i].action,
                res->events[i].actor[0] ? res->events[i].actor : "-",
                res->events[i].detail[0] ? res->events[i].detail : "all");
    }
}

static json_t *
build_json(const struct scope_result *res, const struct aggs *g)
{
    json_t *o = json_object(), *cat = json_object(), *est = json_array(), *fld = json_object();
    json_t *act = json_array(), *ppl = json_array(), *ev = json_array(), *fll = json_array();
    char hex[RECORD_ID_HEX + 1], fl[AUDIT_FIELDS_MAX + 1], t[32];
    size_t i;

    json_object_set_new(o, "node", json_string(res->node));
    json_object_set_new(o, "entries", json_integer((json_int_t)res->entries));
    json_object_set_new(o, "served", json_integer((json_int_t)res->served));
    json_object_set_new(o, "refused", json_integer((json_int_t)res->refused));
    iso_time(res->first_ms, t);
    json_object_set_new(o, "first_access", json_string(t));
    iso_time(res->last_ms, t);
    json_object_set_new(o, "last_access", json_string(t));
    json_object_set_new(o, "people", json_integer((json_int_t)people_total(res)));
    json_object_set_new(o, "served_in_clear", json_integer((json_int_t)res->clear_n));
    json_object_set_new(o, "never_decrypted",
                        json_integer((json_int_t)(people_total(res) - res->clear_n)));
    json_object_set_new(o, "other_ids", json_integer((json_int_t)res->other_ids));
    json_object_set_new(o, "query_ms", json_real(res->seconds * 1000));
    for (i = 0; i < SCOPE_CATEGORIES; i++)
        json_object_set_new(cat, scope_category_name((enum scope_category)i),
                            json_pack("{s:I, s:I}", "people", (json_int_t)res->people_n[i],
                                      "served_in_clear", (json_int_t)g->clear[i]));
    json_object_set_new(o, "by_category", cat);
    for (i = 0; i < g->nest; i++)
        json_array_append_new(est, json_pack("{s:s, s:s, s:I, s:I, s:I}", "uai", g->est[i].uai,
                                             "id", g->est[i].id, "students", (json_int_t)g->est[i].n[0],
                                             "guardians", (json_int_t)g->est[i].n[1],
                                             "staff", (json_int_t)g->est[i].n[2]));
    json_object_set_new(o, "by_establishment", est);
    for (i = 0; i < nfield_names; i++)
        if (g->field[i] > 0) {
            json_object_set_new(fld, field_names[i], json_integer((json_int_t)g->field[i]));
            json_array_append_new(fll, json_pack("{s:s, s:I}", "field", field_names[i],
                                                 "people", (json_int_t)g->field[i]));
        }
    json_object_set_new(o, "by_field", fld);
    json_object_set_new(o, "fields_list", fll);
    for (i = 0; i < res->nactors; i++)
        json_array_append_new(act, json_pack("{s:s, s:s, s:I, s:I}", "actor", res->actors[i].actor,
                                             "state", res->actors[i].state,
                                             "entries", (json_int_t)res->actors[i].entries,
                                             "served", (json_int_t)res->actors[i].served));
    json_object_set_new(o, "actors", act);
    for (i = 0; i < res->npeople; i++) {
        const struct scope_person *p = &res->people[i];

        records_id_format(p->id, hex);
        fields_text(p->fields, fl, sizeof fl);
        json_array_append_new(ppl, json_pack("{s:s, s:s, s:s, s:s, s:b, s:i, s:i}", "id", hex,
                                             "category", scope_category_name(p->cat),
                                             "establishment", p->establishment, "fields", fl,
                                             "served_in_clear", p->served > 0 && p->fields != 0,
                                             "served", (int)p->served, "refused", (int)p->refused));
    }
    json_object_set_new(o, "people_list", ppl);
    for (i = 0; i < res->nevents; i++) {
        iso_time(res->events[i].time_ms, t);
        json_array_append_new(ev, json_pack("{s:s, s:s, s:s, s:s}", "time", t, "action",
                                            res->events[i].action, "actor", res->events[i].actor,
                                            "detail", res->events[i].detail));
    }
    json_object_set_new(o, "measures", ev);
    return o;
}

static void
print_json(FILE *f, const struct scope_result *res, const struct aggs *g)
{
    json_t *o = build_json(res, g);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (s != NULL)
        fprintf(f, "%s\n", s);
    free(s);
    json_decref(o);
}

json_t *
scope_json(struct records *r, const struct scope_result *res)
{
    struct aggs g;
    json_t *o;

    fields_init();
    if (aggs_build(r, res, &g) != 0)
        return NULL;
    o = build_json(res, &g);
    aggs_free(&g);
    return o;
}

int
scope_parse_time(const char *s, int end_of_day, int64_t *out)
{
    struct tm tm;
    int y, mo, d, h = 0, mi = 0, se = 0, ms = 0, n = 0, len = (int)strlen(s);
    time_t t;

    memset(&tm, 0, sizeof tm);
    if (len > 32 || sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)  // NOLINT(cert-err34-c): fixed-width digits, range-checked after
        return -1;
    if (len > 10) {
        int m2 = 0;

        if (s[10] != 'T' && s[10] != ' ')
            return -1;
        if (sscanf(s + 11, "%2d:%2d%n", &h, &mi, &m2) != 2 || m2 != 5)  // NOLINT(cert-err34-c): fixed-width digits, range-checked after
            return -1;
        n = 16;
        if (s[n] == ':') {
            if (sscanf(s + n + 1, "%2d%n", &se, &m2) != 1 || m2 != 2)  // NOLINT(cert-err34-c): fixed-width digits, range-checked after
                return -1;
            n += 3;
            /* milliseconds, as JavaScript's toISOString() writes them */
            if (s[n] == '.') {
                int k;

                for (k = 1; k <= 3 && s[n + k] >= '0' && s[n + k] <= '9'; k++)
                    ms = ms * 10 + (s[n + k] - '0');
                if (k != 4)
                    return -1;
                n += 4;
            }
        }
        if (s[n] == 'Z')
            n++;
        if (n != len)
            return -1;
    }
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        se > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = (int64_t)t * 1000 + ms + (len == 10 && end_of_day ? 86400 * 1000 - 1 : 0) +
           (len > 10 && len <= 20 && end_of_day ? 999 : 0);
    return 0;
}

void
scope_print(FILE *f, struct records *r, const struct scope_result *res, int json)
{
    struct aggs g;

    fields_init();
    if (aggs_build(r, res, &g) != 0) {
        fprintf(stderr, "scope: out of memory\n");
        return;
    }
    if (json)
        print_json(f, res, &g);
    else
        print_text(f, res, &g);
    aggs_free(&g);
}

/* A file that appears whole or not at all: written to path.tmp-PID (mode
 * 0600), fsynced, renamed. */
struct outfile {
    char tmp[IDX_PATH_MAX];
    const char *path;
    FILE *f;
};

static enum cf_err
out_open(struct outfile *o, const char *path, struct cf_errmsg *em)
{
    int n = snprintf(o->tmp, sizeof o->tmp, "%s.tmp-%ld", path, (long)getpid());
    int fd;

    o->path = path;
    o->f = NULL;
    if (n < 0 || (size_t)n >= sizeof o->tmp)
        return cf_fail(em, CF_ERR_INPUT, "scope: path too long");
    fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || (o->f = fdopen(fd, "w")) == NULL) {
        if (fd >= 0)
            close(fd);
        return cf_fail(em, CF_ERR_IO, "scope: '%s': cannot create: %s", o->tmp, strerror(errno));
    }
    return CF_OK;
}

static enum cf_err
out_close(struct outfile *o, int keep, struct cf_errmsg *em)
{
    int bad = 0;

    if (o->f == NULL)
        return CF_OK;
    if (keep && (fflush(o->f) != 0 || ferror(o->f) || fsync(fileno(o->f)) != 0))
        bad = 1;
    if (fclose(o->f) != 0)
        bad = 1;
    o->f = NULL;
    if (!keep || bad || rename(o->tmp, o->path) != 0) {
        unlink(o->tmp);
        if (keep)
            return cf_fail(em, CF_ERR_IO, "scope: '%s': cannot write: %s", o->path, strerror(errno));
    }
    return CF_OK;
}

enum cf_err
scope_write_notification(const char *path, struct records *r, const struct scope_result *res,
                         const char *selectors, const char *dpo_contact, struct cf_errmsg *em)
{
    struct outfile o = { "", NULL, NULL };
    struct aggs g;
    char a[32], b[32], now[32];
    enum cf_err rc;
    size_t i;
    FILE *f;
    uint64_t total = people_total(res);

    fields_init();
    if ((rc = out_open(&o, path, em)) != CF_OK)
        return rc;
    if (aggs_build(r, res, &g) != 0) {
        (void)out_close(&o, 0, em);
        return cf_fail(em, CF_ERR_NOMEM, "scope: out of memory");
    }
    f = o.f;
    iso_time(res->first_ms, a);
    iso_time(res->last_ms, b);
    iso_time((int64_t)time(NULL) * 1000, now);
    fprintf(f, "# Personal data breach notification (GDPR Art. 33) - DRAFT\n\n");
    fprintf(f, "Drafted %s by `coffre scope` from the audit trail of node %s.\n"
               "Scope asked: `%s`.  Every figure below comes from the trail; the DPO checks\n"
               "and completes this draft before it is sent to the CNIL.\n\n", now, res->node,
            selectors);
    fprintf(f, "## (a) Nature of the breach\n\n");
    fprintf(f, "Unauthorised reading of personal data through the service: %" PRIu64
               " accesses recorded between %s and %s by %zu account%s; %" PRIu64
               " records were served, %" PRIu64 " further reads were refused.\n\n",
            res->entries, a, b, res->nactors, res->nactors == 1 ? "" : "s", res->served,
            res->refused);
    fprintf(f, "### Categories and approximate number of data subjects concerned\n\n");
    fprintf(f, "| category | people | served in clear | never decrypted |\n|---|---:|---:|---:|\n");
    fprintf(f, "| students (mostly minors) | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " |\n",
            res->people_n[0], g.clear[0], res->people_n[0] - g.clear[0]);
    fprintf(f, "| guardians | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " |\n", res->people_n[1],
            g.clear[1], res->people_n[1] - g.clear[1]);
    fprintf(f, "| staff | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " |\n", res->people_n[2],
            g.clear[2], res->people_n[2] - g.clear[2]);
    fprintf(f, "| **total** | **%" PRIu64 "** | **%" PRIu64 "** | **%" PRIu64 "** |\n\n", total,
            res->clear_n, total - res->clear_n);
    fprintf(f, "Establishments concerned: %zu", g.nest);
    for (i = 0; i < g.nest && i < 50; i++)
        fprintf(f, "%s%s (%" PRIu64 ")", i ? ", " : ": ", g.est[i].uai,
                g.est[i].n[0] + g.est[i].n[1] + g.est[i].n[2]);
    fprintf(f, "%s.\n\n", g.nest > 50 ? ", ..." : "");
    fprintf(f, "### Categories and approximate number of personal data records concerned\n\n");
    fprintf(f, "%" PRIu64 " records served in clear.  Fields served, with the number of people:\n\n",
            res->served);
    fprintf(f, "| field | people |\n|---|---:|\n");
    for (i = 0; i < nfield_names; i++)
        if (g.field[i] > 0)
            fprintf(f, "| %s | %" PRIu64 " |\n", field_names[i], g.field[i]);
    fprintf(f, "\nFields are sealed at rest (XChaCha20-Poly1305, keys per académie): only what\n"
               "was served above was decrypted.  The %" PRIu64 " people marked \"never decrypted\"\n"
               "were named in refused reads only; their data stayed unintelligible to the\n"
               "attacker (Art. 34(3)(a)).\n\n", total - res->clear_n);
    fprintf(f, "## (b) Data protection officer\n\n%s\n\n",
            dpo_contact != NULL && dpo_contact[0] != '\0'
                ? dpo_contact : "_(not configured: set COFFRE_DPO_CONTACT or --dpo-contact)_");
    fprintf(f, "## (c) Likely consequences of the breach\n\n"
               "_To be written by the DPO: identity theft, phishing of families, harassment of\n"
               "pupils or staff, depending on the fields above._\n\n");
    fprintf(f, "## (d) Measures taken or proposed\n\n");
    if (res->nevents == 0)
        fprintf(f, "- none recorded in the audit trail yet\n");
    for (i = 0; i < res->nevents; i++) {
        iso_time(res->events[i].time_ms, a);
        if (strcmp(res->events[i].action, "guard.lockout") == 0)
            fprintf(f, "- %s: the guard locked account %s automatically (rule %s) and ended its sessions\n",
                    a, res->events[i].actor, res->events[i].detail);
        else
            fprintf(f, "- %s: `%s` (scope: %s) by %s\n", a, res->events[i].action,
                    res->events[i].detail[0] ? res->events[i].detail : "every account",
                    res->events[i].actor);
    }
    fprintf(f, "\n_Proposed measures, to be completed by the DPO._\n\n");
    fprintf(f, "## Communication to the data subjects (Art. 34)\n\n"
               "%" PRIu64 " people had data served in clear and are to be informed in clear and\n"
               "plain language; for minors, their guardians on record.  The list is produced by\n"
               "`coffre scope ... --people FILE.csv` (DPO, audited).\n", res->clear_n);
    aggs_free(&g);
    return out_close(&o, 1, em);
}

/* ---- the people to notify ------------------------------------------------- */

static void
csv_field(FILE *f, const char *v, int last)
{
    /* Quoted always; a leading = + - @ is defused for spreadsheets. */
    fputc('"', f);
    if (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@' || v[0] == '\t' || v[0] == '\r')
        fputc('\'', f);
    for (; *v != '\0'; v++) {
        if (*v == '"')
            fputc('"', f);
        fputc(*v, f);
    }
    fputc('"', f);
    fputc(last ? '\n' : ',', f);
}

static uint32_t
mask_of(enum record_kind k, const char *const *names)
{
    uint32_t m = 0;
    int i;

    for (; *names != NULL; names++)
        if ((i = records_field_index(k, *names)) >= 0)
            m |= 1u << i;
    return m;
}

static const char *
val(const struct record *rec, const char *name)
{
    int i = records_field_index(rec->kind, name);

    return i >= 0 && (rec->present & (1u << i)) ? rec->value[i] : "";
}

/* Age in whole years on the day of today_ms; -1 if the date is unreadable. */
static int
age_of(const char *birth, int64_t today_ms)
{
    time_t t = (time_t)(today_ms / 1000);
    struct tm tm;
    int y, m, d, age;

    if (sscanf(birth, "%4d-%2d-%2d", &y, &m, &d) != 3 || gmtime_r(&t, &tm) == NULL)  // NOLINT(cert-err34-c): fixed-width digits, range-checked after
        return -1;
    age = tm.tm_year + 1900 - y;
    if (tm.tm_mon + 1 < m || (tm.tm_mon + 1 == m && tm.tm_mday < d))
        age--;
    return age;
}

struct links {
    char id[SCOPE_GUARDIANS_MAX][RECORD_ID_HEX + 1];
    size_t n;
};

static int
link_guardian(void *arg, const struct record *link)
{
    struct links *l = arg;

    if (l->n < SCOPE_GUARDIANS_MAX)
        snprintf(l->id[l->n++], sizeof l->id[0], "%s", link->parent[0]);
    return 0;
}

static void
contact_line(FILE *f, const char *pid, const char *cat, const char *uai, const char *how,
             const struct record *to, const char *rid, const char *exposed, int clear)
{
    csv_field(f, pid, 0);
    csv_field(f, cat, 0);
    csv_field(f, uai, 0);
    csv_field(f, how, 0);
    csv_field(f, rid, 0);
    csv_field(f, to ? val(to, "family_name") : "", 0);
    csv_field(f, to ? val(to, "given_names") : "", 0);
    csv_field(f, to ? val(to, "email") : "", 0);
    csv_field(f, to ? val(to, "phone") : "", 0);
    csv_field(f, to ? val(to, "address") : "", 0);
    csv_field(f, exposed, 0);
    csv_field(f, clear ? "yes" : "no", 1);
}

static void
names_csv(enum record_kind k, uint32_t mask, char *out, size_t cap)
{
    size_t i, o = 0;

    out[0] = '\0';
    for (i = 0; i < records_field_count(k); i++)
        if (mask & (1u << i)) {
            int n = snprintf(out + o, o < cap ? cap - o : 0, "%s%s", o ? "," : "",
                             records_field_name(k, i));

            if (n < 0 || o + (size_t)n >= cap)
                break;
            o += (size_t)n;
        }
}

/* Opens rec's mask fields after the audit entry naming them is durable. */
static enum cf_err
open_audited(struct records *r, enum record_kind k, const char *id, uint32_t mask,
             struct record *rec, scope_audit_fn audit, void *aarg, struct cf_errmsg *em)
{
    char fl[AUDIT_FIELDS_MAX + 1];

    names_csv(k, mask, fl, sizeof fl);
    if (audit(aarg, id, fl) != 0)
        return cf_fail(em, CF_ERR_STORE, "scope: the audit trail could not record the opening; "
                       "nothing was written");
    return records_get(r, k, id, mask, rec, em);
}

enum cf_err
scope_write_people(const char *path, struct records *r, const struct scope_result *res,
                   int64_t today_ms, scope_audit_fn audit, void *aarg, uint64_t *lines,
                   struct cf_errmsg *em)
{
    static const char *const student_birth[] = { "birth_date", NULL };
    static const char *const self_student[] = { "family_name", "given_names", "email", "address", NULL };
    static const char *const self_guardian[] = { "family_name", "given_names", "email", "phone",
                                                 "address", NULL };
    static const char *const self_staff[] = { "family_name", "given_names", "email", NULL };
    struct record *rec = calloc(1, sizeof *rec), *to = calloc(1, sizeof *to), *est = calloc(1, sizeof *est);
    struct outfile o = { "", NULL, NULL };
    int uai_i = records_field_index(REC_ESTABLISHMENT, "uai");
    enum cf_err rc = CF_OK;
    size_t i, j;

    fields_init();
    *lines = 0;
    if (rec == NULL || to == NULL || est == NULL) {
        rc = cf_fail(em, CF_ERR_NOMEM, "scope: out of memory");
        goto out;
    }
    if ((rc = out_open(&o, path, em)) != CF_OK)
        goto out;
    fprintf(o.f, "person_id,category,establishment_uai,notify,recipient_id,family_name,"
                 "given_names,email,phone,address,exposed_fields,served_in_clear\n");
    for (i = 0; i < res->npeople && rc == CF_OK; i++) {
        const struct scope_person *p = &res->people[i];
        char hex[RECORD_ID_HEX + 1], exposed[AUDIT_FIELDS_MAX + 1], uai[UAI_BYTES + 1] = "";
        const char *cat = scope_category_name(p->cat);

        /* Art. 34(3)(a): only people whose data was served in clear */
        if (!(p->served > 0 && p->fields != 0))
            continue;
        records_id_format(p->id, hex);
        fields_text(p->fields, exposed, sizeof exposed);
        if (p->establishment[0] != '\0' && uai_i >= 0 &&
            records_get(r, REC_ESTABLISHMENT, p->establishment, 1u << uai_i, est, NULL) == CF_OK)
            snprintf(uai, sizeof uai, "%s", est->value[uai_i]);
        if (p->cat == SCOPE_STUDENT) {
            struct links l = { .n = 0 };
            int age;

            if ((rc = open_audited(r, REC_STUDENT, hex, mask_of(REC_STUDENT, student_birth), rec,
                                   audit, aarg, em)) != CF_OK)
                break;
            age = age_of(val(rec, "birth_date"), today_ms);
            sodium_memzero(rec, sizeof *rec);
            if (age >= 0 && age < 18) {
                /* a minor: the notice goes to the guardians on record */
                if (records_children(r, REC_GUARDIAN_LINK, 1, hex, SCOPE_GUARDIANS_MAX, 0,
                                     link_guardian, &l, em) != CF_OK) {
                    rc = CF_ERR_STORE;
                    break;
                }
                if (l.n == 0)
                    contact_line(o.f, hex, cat, uai, "none-on-record", NULL, "", exposed, 1);
                for (j = 0; j < l.n && rc == CF_OK; j++) {
                    rc = open_audited(r, REC_GUARDIAN, l.id[j], mask_of(REC_GUARDIAN, self_guardian),
                                      to, audit, aarg, em);
                    if (rc == CF_OK)
                        contact_line(o.f, hex, cat, uai, "guardian", to, l.id[j], exposed, 1);
                    sodium_memzero(to, sizeof *to);
                    (*lines)++;
                }
                if (l.n == 0)
                    (*lines)++;
                continue;
            }
            rc = open_audited(r, REC_STUDENT, hex, mask_of(REC_STUDENT, self_student), to, audit,
                              aarg, em);
        } else if (p->cat == SCOPE_GUARDIAN)
            rc = open_audited(r, REC_GUARDIAN, hex, mask_of(REC_GUARDIAN, self_guardian), to,
                              audit, aarg, em);
        else
            rc = open_audited(r, REC_STAFF, hex, mask_of(REC_STAFF, self_staff), to, audit,
                              aarg, em);
        if (rc == CF_OK) {
            contact_line(o.f, hex, cat, uai, "self", to, hex, exposed, 1);
            (*lines)++;
        }
        sodium_memzero(to, sizeof *to);
    }
out:
    if (o.f != NULL) {
        enum cf_err c = out_close(&o, rc == CF_OK, em);

        if (rc == CF_OK)
            rc = c;
    }
    if (rec != NULL)
        sodium_memzero(rec, sizeof *rec);
    if (to != NULL)
        sodium_memzero(to, sizeof *to);
    free(rec);
    free(to);
    free(est);
    return rc;
}
