/*
 * store_sqlite.c - the SQLite backend of store.h.
 *
 * WAL, foreign keys on, synchronous=NORMAL (FULL for keyring-changing
 * commits), prepared statements cached per connection, schema migrations
 * counted in PRAGMA user_version.  Every value is bound, never spliced:
 * SQL text is built only from the constant table names below.  One
 * connection per struct store; a struct store is used by one thread.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"
#include "banned.h"

extern const char *const store_sqlite_migrations[];
extern const size_t store_sqlite_migration_count;

/* Page cache for bulk loads: the indexes of a million-row import stay in
 * memory until the single commit (DESIGN.md section 12). */
#define BULK_CACHE_KIB (1024 * 1024)
#define BUSY_TIMEOUT_MS 5000
#define STORE_MAX_DEFERRED 32

static const struct {
    const char *name;
    const char *idx_label[STORE_IDX_SLOTS];   /* for "already present" */
} tables[STORE_TABLE_COUNT] = {
    [STORE_ESTABLISHMENTS] = { "establishments", { "UAI", NULL } },
    [STORE_CLASSES]        = { "classes", { NULL, NULL } },
    [STORE_STUDENTS]       = { "students", { "INE", "e-mail" } },
    [STORE_GUARDIANS]      = { "guardians", { NULL, "e-mail" } },
    [STORE_GUARDIAN_LINKS] = { "guardian_links", { NULL, NULL } },
    [STORE_STAFF]          = { "staff", { NULL, "professional e-mail" } },
    [STORE_TEACHINGS]      = { "teachings", { NULL, NULL } },
};

enum stmt_kind {
    Q_INSERT, Q_UPDATE, Q_GET, Q_FIND0, Q_FIND1, Q_PARENT0, Q_PARENT1,
    Q_OLDER, Q_ALL, Q_COUNTV, Q_KIND_COUNT
};

#define COLS "id, p0, p1, compartment, kv, fields, idx0, idx1, created, updated"

static const char *const stmt_fmt[Q_KIND_COUNT] = {
    [Q_INSERT]  = "INSERT INTO %s (" COLS ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
    [Q_UPDATE]  = "UPDATE %s SET kv = ?5, fields = ?6, idx0 = ?7, idx1 = ?8, updated = ?10 WHERE id = ?1",
    [Q_GET]     = "SELECT " COLS " FROM %s WHERE id = ?1",
    [Q_FIND0]   = "SELECT " COLS " FROM %s WHERE idx0 = ?1 LIMIT 1",
    [Q_FIND1]   = "SELECT " COLS " FROM %s WHERE idx1 = ?1 LIMIT 1",
    [Q_PARENT0] = "SELECT " COLS " FROM %s WHERE p0 = ?1 ORDER BY rid LIMIT ?2 OFFSET ?3",
    [Q_PARENT1] = "SELECT " COLS " FROM %s WHERE p1 = ?1 ORDER BY rid LIMIT ?2 OFFSET ?3",
    [Q_OLDER]   = "SELECT " COLS " FROM %s WHERE compartment = ?1 AND kv < ?2 LIMIT ?3",
    [Q_ALL]     = "SELECT " COLS " FROM %s ORDER BY rid LIMIT ?1",
    [Q_COUNTV]  = "SELECT count(*) FROM %s WHERE compartment = ?1 AND kv = ?2",
};

/* Statements of the account, session and throttle operations. */
enum misc_stmt {
    M_ACC_INSERT, M_ACC_UPDATE, M_ACC_GET, M_ACC_FIND, M_ACC_PERSON, M_SES_INSERT, M_SES_GET,
    M_SES_TOUCH, M_SES_REVOKE, M_SES_OF, M_THR_GET, M_THR_PUT, M_THR_CLEAR,
    M_CAN_PUT, M_CAN_ALL,
    M_COUNT
};

struct store {
    sqlite3 *db;
    sqlite3_stmt *misc[M_COUNT];
    sqlite3_stmt *stmt[Q_KIND_COUNT][STORE_TABLE_COUNT];
    sqlite3_stmt *dk_put, *dk_all;
    sqlite3_stmt *mfa[16];                 /* second factors: see the end of the file */
    int schema;
    int durable;            /* synchronous = FULL in force */
    int bulk;               /* in a STORE_TX_BULK transaction */
    /* Indexes a bulk load dropped, to build again before commit. */
    char *deferred[STORE_MAX_DEFERRED];
    char *deferred_name[STORE_MAX_DEFERRED];
    size_t ndeferred;
};

/* ---- open, migrate, close -------------------------------------------- */

static void deferred_free(struct store *st);

static int
exec(struct store *st, const char *sql)
{
    return sqlite3_exec(st->db, sql, NULL, NULL, NULL);
}

static int
user_version(struct store *st)
{
    sqlite3_stmt *s;
    int v = -1;

    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

static enum cf_err
migrate(struct store *st, const char *path, struct cf_errmsg *em)
{
    int v = user_version(st);
    char sql[64];

    if (v < 0)
        return cf_fail(em, CF_ERR_STORE, "store '%s': not a coffre store (%s)",
                       path, sqlite3_errmsg(st->db));
    if ((size_t)v > store_sqlite_migration_count)
        return cf_fail(em, CF_ERR_STORE,
                       "store '%s': schema version %d is newer than this coffre knows (%zu); upgrade coffre",
                       path, v, store_sqlite_migration_count);
    for (; (size_t)v < store_sqlite_migration_count; v++) {
        /* Each step and its version number commit together. */
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        if (exec(st, "BEGIN IMMEDIATE") != SQLITE_OK ||
            exec(st, store_sqlite_migrations[v]) != SQLITE_OK ||
            exec(st, sql) != SQLITE_OK ||
            exec(st, "COMMIT") != SQLITE_OK) {
            enum cf_err rc = cf_fail(em, CF_ERR_STORE,
                    "store '%s': migration %d failed: %s", path, v + 1,
                    sqlite3_errmsg(st->db));
            exec(st, "ROLLBACK");
            return rc;
        }
    }
    st->schema = v;
    return CF_OK;
}

enum cf_err
store_open(const char *path, int create, struct store **out,
           struct cf_errmsg *em)
{
    struct store *st;
    enum cf_err rc;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;

    if (!create && access(path, F_OK) != 0)
        return cf_fail(em, CF_ERR_NOTFOUND,
                       "store '%s' not found: is --data right? ('coffre init' creates it)", path);
    if (create)
        flags |= SQLITE_OPEN_CREATE;
    st = sqlite3_malloc(sizeof *st);
    if (st == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "store: out of memory");
    memset(st, 0, sizeof *st);
    if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
        rc = cf_fail(em, CF_ERR_STORE, "store '%s': cannot open: %s", path,
                     st->db ? sqlite3_errmsg(st->db) : "out of memory");
        store_close(st);
        return rc;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    if (exec(st, "PRAGMA journal_mode = WAL") != SQLITE_OK ||
        exec(st, "PRAGMA foreign_keys = ON") != SQLITE_OK ||
        exec(st, "PRAGMA synchronous = NORMAL") != SQLITE_OK ||
        exec(st, "PRAGMA secure_delete = ON") != SQLITE_OK ||
        exec(st, "PRAGMA trusted_schema = OFF") != SQLITE_OK) {
        rc = cf_fail(em, CF_ERR_STORE, "store '%s': %s", path, sqlite3_errmsg(st->db));
        store_close(st);
        return rc;
    }
    if ((rc = migrate(st, path, em)) != CF_OK) {
        store_close(st);
        return rc;
    }
    *out = st;
    return CF_OK;
}

void
store_close(struct store *st)
{
    int q, t;

    if (st == NULL)
        return;
    for (q = 0; q < Q_KIND_COUNT; q++)
        for (t = 0; t < STORE_TABLE_COUNT; t++)
            sqlite3_finalize(st->stmt[q][t]);
    for (q = 0; q < M_COUNT; q++)
        sqlite3_finalize(st->misc[q]);
    for (q = 0; q < (int)(sizeof st->mfa / sizeof st->mfa[0]); q++)
        sqlite3_finalize(st->mfa[q]);
    sqlite3_finalize(st->dk_put);
    sqlite3_finalize(st->dk_all);
    deferred_free(st);
    sqlite3_close(st->db);
    sqlite3_free(st);
}

int
store_schema_version(struct store *st)
{
    return st->schema;
}

int
store_schema_latest(void)
{
    return (int)store_sqlite_migration_count;
}

/* ---- transactions ----------------------------------------------------- */

/* SQLite refuses to change the sync level inside a transaction, so a
 * durable transaction sets it before BEGIN and restores it after. */
static void
sync_level(struct store *st, int durable)
{
    if (st->durable != durable)
        exec(st, durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    st->durable = durable;
}

static void
deferred_free(struct store *st)
{
    size_t i;

    for (i = 0; i < st->ndeferred; i++)
        sqlite3_free(st->deferred[i]);
    st->ndeferred = 0;
}

static int
tables_empty(struct store *st)
{
    sqlite3_stmt *s;
    int empty = 0;

    if (sqlite3_prepare_v2(st->db,
            "SELECT NOT EXISTS (SELECT 1 FROM students) AND NOT EXISTS (SELECT 1 FROM guardians) "
            "AND NOT EXISTS (SELECT 1 FROM staff)", -1, &s, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(s) == SQLITE_ROW)
        empty = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return empty;
}

/*
 * Drops the secondary indexes of the record tables, remembering their SQL.
 * The `<table>_id` indexes stay: foreign keys need them row by row.
 */
static int
defer_indexes(struct store *st)
{
    sqlite3_stmt *s;
    char drop[128];
    size_t i;
    int rc = 0;

    if (sqlite3_prepare_v2(st->db,
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('establishments','classes','students','guardians','guardian_links','staff','teachings') "
            "AND name NOT LIKE '%\\_id' ESCAPE '\\' ORDER BY name", -1, &s, NULL) != SQLITE_OK)
        return -1;
    while (sqlite3_step(s) == SQLITE_ROW && st->ndeferred < STORE_MAX_DEFERRED) {
        st->deferred_name[st->ndeferred] =
            sqlite3_mprintf("%s", (const char *)sqlite3_column_text(s, 0));
        st->deferred[st->ndeferred] =
            sqlite3_mprintf("%s", (const char *)sqlite3_column_text(s, 1));
        st->ndeferred++;
    }
    sqlite3_finalize(s);
    for (i = 0; i < st->ndeferred && rc == 0; i++) {
        if (st->deferred[i] == NULL || st->deferred_name[i] == NULL)
            return -1;
        snprintf(drop, sizeof drop, "DROP INDEX \"%s\"", st->deferred_name[i]);
        rc = exec(st, drop) == SQLITE_OK ? 0 : -1;
    }
    for (i = 0; i < st->ndeferred; i++)
        sqlite3_free(st->deferred_name[i]);
    return rc;
}

enum cf_err
store_begin(struct store *st, enum store_tx mode)
{
    char sql[64];

    sync_level(st, mode == STORE_TX_DURABLE);
    if (exec(st, "BEGIN IMMEDIATE") != SQLITE_OK)
        return CF_ERR_STORE;
    st->bulk = mode == STORE_TX_BULK;
    if (st->bulk) {
        snprintf(sql, sizeof sql, "PRAGMA cache_size = -%d", BULK_CACHE_KIB);
        exec(st, sql);
        if (tables_empty(st) && defer_indexes(st) != 0) {
            store_rollback(st);
            return CF_ERR_STORE;
        }
    }
    return CF_OK;
}

/* Builds the indexes dropped by defer_indexes, inside the transaction. */
static enum cf_err
rebuild_indexes(struct store *st, struct cf_errmsg *em)
{
    size_t i;

    for (i = 0; i < st->ndeferred; i++) {
        if (exec(st, st->deferred[i]) == SQLITE_OK)
            continue;
        if (sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_UNIQUE)
            return cf_fail(em, CF_ERR_EXISTS,
                           "import: a unique value (%s) appears twice; nothing was imported",
                           strstr(st->deferred[i], "idx0") ? "INE or UAI"
                           : strstr(st->deferred[i], "idx1") ? "e-mail" : "link");
        return cf_fail(em, CF_ERR_STORE, "import: cannot build an index: %s",
                       sqlite3_errmsg(st->db));
    }
    return CF_OK;
}

static void
end_tx(struct store *st)
{
    /* Give the bulk page cache back, or a daemon that ran an import would
     * keep a gigabyte it no longer uses. */
    if (st->bulk) {
        exec(st, "PRAGMA cache_size = -2000");
        sqlite3_db_release_memory(st->db);
    }
    st->bulk = 0;
    deferred_free(st);
    sync_level(st, 0);
}

enum cf_err
store_commit(struct store *st, struct cf_errmsg *em)
{
    enum cf_err rc = rebuild_indexes(st, em);

    if (rc == CF_OK && exec(st, "COMMIT") != SQLITE_OK)
        rc = cf_fail(em, CF_ERR_STORE, "store: commit failed: %s", sqlite3_errmsg(st->db));
    if (rc != CF_OK && !sqlite3_get_autocommit(st->db))
        exec(st, "ROLLBACK");
    end_tx(st);
    return rc;
}

void
store_rollback(struct store *st)
{
    /* The rollback also brings back any index a bulk load dropped. */
    if (!sqlite3_get_autocommit(st->db))
        exec(st, "ROLLBACK");
    end_tx(st);
}

/* ---- rows ------------------------------------------------------------- */

/* Puts the (constant) table name where the template says %s. */
static void
build_sql(char *out, size_t cap, const char *tmpl, const char *table)
{
    const char *mark = strstr(tmpl, "%s");

    snprintf(out, cap, "%.*s%s%s", (int)(mark - tmpl), tmpl, table, mark + 2);
}

static sqlite3_stmt *
stmt(struct store *st, enum stmt_kind q, enum store_table t)
{
    char sql[256];

    if (st->stmt[q][t] == NULL) {
        build_sql(sql, sizeof sql, stmt_fmt[q], tables[t].name);
        if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                               &st->stmt[q][t], NULL) != SQLITE_OK)
            return NULL;
    }
    sqlite3_reset(st->stmt[q][t]);
    sqlite3_clear_bindings(st->stmt[q][t]);
    return st->stmt[q][t];
}

static void
bind_blob_or_null(sqlite3_stmt *s, int i, const uint8_t *p, size_t n, int has)
{
    if (has)
        sqlite3_bind_blob(s, i, p, (int)n, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static void
bind_row(sqlite3_stmt *s, const struct store_row *r)
{
    sqlite3_bind_blob(s, 1, r->id, STORE_ID_BYTES, SQLITE_STATIC);
    bind_blob_or_null(s, 2, r->parent[0], STORE_ID_BYTES, r->has_parent[0]);
    bind_blob_or_null(s, 3, r->parent[1], STORE_ID_BYTES, r->has_parent[1]);
    sqlite3_bind_text(s, 4, r->compartment, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, r->kv);
    sqlite3_bind_blob(s, 6, r->fields, (int)r->fields_len, SQLITE_STATIC);
    bind_blob_or_null(s, 7, r->idx[0], r->idx_len[0], r->idx_len[0] > 0);
    bind_blob_or_null(s, 8, r->idx[1], r->idx_len[1], r->idx_len[1] > 0);
    sqlite3_bind_int64(s, 9, r->created);
    sqlite3_bind_int64(s, 10, r->updated);
}

/* Copies a blob column into a fixed buffer; -1 if it does not fit. */
static int
col_blob(sqlite3_stmt *s, int i, uint8_t *dst, size_t cap, size_t *len)
{
    int n = sqlite3_column_bytes(s, i);
    const void *p = sqlite3_column_blob(s, i);

    if (n < 0 || (size_t)n > cap)
        return -1;
    if (n > 0)
        memcpy(dst, p, (size_t)n);
    *len = (size_t)n;
    return 0;
}

static enum cf_err
read_row(sqlite3_stmt *s, struct store_row *r)
{
    size_t n;
    int i;
    const unsigned char *comp;

    if (col_blob(s, 0, r->id, STORE_ID_BYTES, &n) != 0 || n != STORE_ID_BYTES)
        return CF_ERR_STORE;
    for (i = 0; i < 2; i++) {
        if (col_blob(s, 1 + i, r->parent[i], STORE_ID_BYTES, &n) != 0 ||
            (n != 0 && n != STORE_ID_BYTES))
            return CF_ERR_STORE;
        r->has_parent[i] = n == STORE_ID_BYTES;
    }
    comp = sqlite3_column_text(s, 3);
    if (comp == NULL || strlen((const char *)comp) != ACADEMIE_CODE_BYTES)
        return CF_ERR_STORE;
    memcpy(r->compartment, comp, ACADEMIE_CODE_BYTES + 1);
    r->kv = (uint32_t)sqlite3_column_int64(s, 4);
    if (col_blob(s, 5, r->fields, sizeof r->fields, &r->fields_len) != 0)
        return CF_ERR_STORE;
    for (i = 0; i < STORE_IDX_SLOTS; i++) {
        if (col_blob(s, 6 + i, r->idx[i], STORE_IDX_BYTES, &n) != 0)
            return CF_ERR_STORE;
        r->idx_len[i] = (uint8_t)n;
    }
    r->created = sqlite3_column_int64(s, 8);
    r->updated = sqlite3_column_int64(s, 9);
    return CF_OK;
}

static enum cf_err
constraint_error(struct store *st, enum store_table t, struct cf_errmsg *em)
{
    int xrc = sqlite3_extended_errcode(st->db);
    const char *msg = sqlite3_errmsg(st->db);
    int i;

    if (xrc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return cf_fail(em, CF_ERR_NOTFOUND, "%s: a referenced record does not exist",
                       tables[t].name);
    if (xrc == SQLITE_CONSTRAINT_UNIQUE || xrc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        for (i = 0; i < STORE_IDX_SLOTS; i++) {
            char col[32];

            snprintf(col, sizeof col, ".idx%d", i);
            if (tables[t].idx_label[i] != NULL && strstr(msg, col) != NULL)
                return cf_fail(em, CF_ERR_EXISTS, "%s: this %s is already present",
                               tables[t].name, tables[t].idx_label[i]);
        }
        return cf_fail(em, CF_ERR_EXISTS, "%s: record already present", tables[t].name);
    }
    return cf_fail(em, CF_ERR_STORE, "%s: %s", tables[t].name, msg);
}

enum cf_err
store_row_insert(struct store *st, enum store_table t,
                 const struct store_row *row, struct cf_errmsg *em)
{
    sqlite3_stmt *s = stmt(st, Q_INSERT, t);
    enum cf_err rc = CF_OK;

    if (s == NULL)
        return cf_fail(em, CF_ERR_STORE, "%s: %s", tables[t].name, sqlite3_errmsg(st->db));
    bind_row(s, row);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = constraint_error(st, t, em);
    sqlite3_reset(s);
    return rc;
}

enum cf_err
store_row_update(struct store *st, enum store_table t,
                 const struct store_row *row)
{
    sqlite3_stmt *s = stmt(st, Q_UPDATE, t);
    enum cf_err rc = CF_OK;

    if (s == NULL)
        return CF_ERR_STORE;
    bind_row(s, row);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = constraint_error(st, t, NULL);
    else if (sqlite3_changes(st->db) != 1)
        rc = CF_ERR_NOTFOUND;
    sqlite3_reset(s);
    return rc;
}

/* Steps a bound SELECT once: its row read into out, CF_ERR_NOTFOUND for
 * none.  One place for every single-row read. */
typedef enum cf_err (*row_reader)(sqlite3_stmt *s, void *out);

static enum cf_err
step_one(sqlite3_stmt *s, row_reader read, void *out)
{
    enum cf_err rc;

    switch (sqlite3_step(s)) {
    case SQLITE_ROW:  rc = read(s, out); break;
    case SQLITE_DONE: rc = CF_ERR_NOTFOUND; break;
    default:          rc = CF_ERR_STORE; break;
    }
    sqlite3_reset(s);
    return rc;
}

static enum cf_err
read_row_any(sqlite3_stmt *s, void *out)
{
    return read_row(s, out);
}

static enum cf_err
select_one(sqlite3_stmt *s, struct store_row *out)
{
    return step_one(s, read_row_any, out);
}

enum cf_err
store_row_get(struct store *st, enum store_table t,
              const uint8_t id[STORE_ID_BYTES], struct store_row *out)
{
    sqlite3_stmt *s = stmt(st, Q_GET, t);

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, id, STORE_ID_BYTES, SQLITE_STATIC);
    return select_one(s, out);
}

enum cf_err
store_row_find(struct store *st, enum store_table t, int slot,
               const uint8_t *digests, size_t len, size_t n,
               struct store_row *out)
{
    size_t i;
    enum cf_err rc = CF_ERR_NOTFOUND;

    if (slot < 0 || slot >= STORE_IDX_SLOTS)
        return CF_ERR_INPUT;
    for (i = 0; i < n && rc == CF_ERR_NOTFOUND; i++) {
        sqlite3_stmt *s = stmt(st, slot == 0 ? Q_FIND0 : Q_FIND1, t);

        if (s == NULL)
            return CF_ERR_STORE;
        sqlite3_bind_blob(s, 1, digests + i * len, (int)len, SQLITE_STATIC);
        rc = select_one(s, out);
    }
    return rc;
}

/* Runs a bound multi-row SELECT, calling fn per row. */
static enum cf_err
select_each(sqlite3_stmt *s, store_row_fn fn, void *arg)
{
    struct store_row row;
    enum cf_err rc = CF_OK;
    int step;

    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if ((rc = read_row(s, &row)) != CF_OK)
            break;
        if (fn(arg, &row) != 0)
            break;
    }
    if (rc == CF_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = CF_ERR_STORE;
    sqlite3_reset(s);
    return rc;
}

enum cf_err
store_rows_by_parent(struct store *st, enum store_table t, int slot,
                     const uint8_t parent_id[STORE_ID_BYTES], size_t offset,
                     size_t limit, store_row_fn fn, void *arg)
{
    sqlite3_stmt *s;

    if (slot < 0 || slot > 1)
        return CF_ERR_INPUT;
    s = stmt(st, slot == 0 ? Q_PARENT0 : Q_PARENT1, t);
    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, parent_id, STORE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)offset);
    return select_each(s, fn, arg);
}

enum cf_err
store_rows_older(struct store *st, enum store_table t, const char *compartment,
                 uint32_t kv, size_t limit, store_row_fn fn, void *arg)
{
    sqlite3_stmt *s = stmt(st, Q_OLDER, t);

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_text(s, 1, compartment, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, kv);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)limit);
    return select_each(s, fn, arg);
}

enum cf_err
store_rows_all(struct store *st, enum store_table t, size_t limit,
               store_row_fn fn, void *arg)
{
    sqlite3_stmt *s = stmt(st, Q_ALL, t);

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)limit);
    return select_each(s, fn, arg);
}

enum cf_err
store_count_version(struct store *st, enum store_table t,
                    const char *compartment, uint32_t kv, uint64_t *count)
{
    sqlite3_stmt *s = stmt(st, Q_COUNTV, t);
    enum cf_err rc = CF_ERR_STORE;

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_text(s, 1, compartment, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, kv);
    if (sqlite3_step(s) == SQLITE_ROW) {
        *count = (uint64_t)sqlite3_column_int64(s, 0);
        rc = CF_OK;
    }
    sqlite3_reset(s);
    return rc;
}

/* ---- data keys -------------------------------------------------------- */

enum cf_err
store_datakey_put(struct store *st, const char *compartment, uint32_t version,
                  const uint8_t *wrapped, size_t len)
{
    enum cf_err rc = CF_OK;

    if (st->dk_put == NULL &&
        sqlite3_prepare_v2(st->db,
            "INSERT INTO data_keys (compartment, version, wrapped, created) VALUES (?1, ?2, ?3, ?4)",
            -1, &st->dk_put, NULL) != SQLITE_OK)
        return CF_ERR_STORE;
    sqlite3_bind_text(st->dk_put, 1, compartment, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st->dk_put, 2, version);
    sqlite3_bind_blob(st->dk_put, 3, wrapped, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st->dk_put, 4, (sqlite3_int64)time(NULL));
    if (sqlite3_step(st->dk_put) != SQLITE_DONE)
        rc = sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_PRIMARYKEY
                 ? CF_ERR_EXISTS : CF_ERR_STORE;
    sqlite3_reset(st->dk_put);
    return rc;
}

enum cf_err
store_datakeys(struct store *st, store_datakey_fn fn, void *arg)
{
    enum cf_err rc = CF_OK;
    int step;

    if (st->dk_all == NULL &&
        sqlite3_prepare_v2(st->db,
            "SELECT compartment, version, wrapped FROM data_keys ORDER BY compartment, version",
            -1, &st->dk_all, NULL) != SQLITE_OK)
        return CF_ERR_STORE;
    while ((step = sqlite3_step(st->dk_all)) == SQLITE_ROW) {
        const char *c = (const char *)sqlite3_column_text(st->dk_all, 0);
        int64_t v = sqlite3_column_int64(st->dk_all, 1);
        const uint8_t *w = sqlite3_column_blob(st->dk_all, 2);
        int n = sqlite3_column_bytes(st->dk_all, 2);

        if (c == NULL || v <= 0 || v > UINT32_MAX || n < 0) {
            rc = CF_ERR_STORE;
            break;
        }
        if (fn(arg, c, (uint32_t)v, w, (size_t)n) != 0)
            break;
    }
    if (rc == CF_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = CF_ERR_STORE;
    sqlite3_reset(st->dk_all);
    return rc;
}

/* ---- accounts --------------------------------------------------------- */

/* A cached statement, reset and unbound. */
static sqlite3_stmt *
misc(struct store *st, enum misc_stmt m, const char *sql)
{
    if (st->misc[m] == NULL &&
        sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                           &st->misc[m], NULL) != SQLITE_OK)
        return NULL;
    sqlite3_reset(st->misc[m]);
    sqlite3_clear_bindings(st->misc[m]);
    return st->misc[m];
}

#define ACC_COLS "id, role, state, compartment, establishment_id, person_id, login_idx, kv, " \
                 "fields, code_hash, code_expires, reset_required, locked_reason, created, updated"

static void
bind_account(sqlite3_stmt *s, const struct store_account *a)
{
    sqlite3_bind_blob(s, 1, a->id, STORE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, a->role, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, a->state, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, a->compartment, -1, SQLITE_STATIC);
    bind_blob_or_null(s, 5, a->establishment, STORE_ID_BYTES, a->has_establishment);
    bind_blob_or_null(s, 6, a->person, STORE_ID_BYTES, a->has_person);
    sqlite3_bind_blob(s, 7, a->login_idx, STORE_IDX_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(s, 8, a->kv);
    sqlite3_bind_blob(s, 9, a->fields, (int)a->fields_len, SQLITE_STATIC);
    bind_blob_or_null(s, 10, a->code_hash, STORE_CODE_HASH_BYTES, a->has_code);
    sqlite3_bind_int64(s, 11, a->code_expires);
    sqlite3_bind_int(s, 12, a->reset_required);
    if (a->locked_reason[0] != '\0')
        sqlite3_bind_text(s, 13, a->locked_reason, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 13);
    sqlite3_bind_int64(s, 14, a->created);
    sqlite3_bind_int64(s, 15, a->updated);
}

static int
col_text(sqlite3_stmt *s, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    size_t n;

    if (t == NULL) {
        dst[0] = '\0';
        return 0;
    }
    n = strlen((const char *)t);
    if (n >= cap)
        return -1;
    memcpy(dst, t, n + 1);
    return 0;
}

static enum cf_err
read_account(sqlite3_stmt *s, struct store_account *a)
{
    size_t n;

    memset(a, 0, offsetof(struct store_account, fields));
    if (col_blob(s, 0, a->id, STORE_ID_BYTES, &n) != 0 || n != STORE_ID_BYTES ||
        col_text(s, 1, a->role, sizeof a->role) != 0 ||
        col_text(s, 2, a->state, sizeof a->state) != 0 ||
        col_text(s, 3, a->compartment, sizeof a->compartment) != 0 ||
        col_blob(s, 4, a->establishment, STORE_ID_BYTES, &n) != 0)
        return CF_ERR_STORE;
    a->has_establishment = n == STORE_ID_BYTES;
    if (col_blob(s, 5, a->person, STORE_ID_BYTES, &n) != 0)
        return CF_ERR_STORE;
    a->has_person = n == STORE_ID_BYTES;
    if (col_blob(s, 6, a->login_idx, STORE_IDX_BYTES, &n) != 0 || n != STORE_IDX_BYTES)
        return CF_ERR_STORE;
    a->kv = (uint32_t)sqlite3_column_int64(s, 7);
    if (col_blob(s, 8, a->fields, sizeof a->fields, &a->fields_len) != 0 ||
        col_blob(s, 9, a->code_hash, STORE_CODE_HASH_BYTES, &n) != 0)
        return CF_ERR_STORE;
    a->has_code = n == STORE_CODE_HASH_BYTES;
    a->code_expires = sqlite3_column_int64(s, 10);
    a->reset_required = sqlite3_column_int(s, 11);
    if (col_text(s, 12, a->locked_reason, sizeof a->locked_reason) != 0)
        return CF_ERR_STORE;
    a->created = sqlite3_column_int64(s, 13);
    a->updated = sqlite3_column_int64(s, 14);
    return CF_OK;
}

static enum cf_err
read_account_any(sqlite3_stmt *s, void *out)
{
    return read_account(s, out);
}

static enum cf_err
account_one(sqlite3_stmt *s, struct store_account *out)
{
    return step_one(s, read_account_any, out);
}

enum cf_err
store_account_insert(struct store *st, const struct store_account *a,
                     struct cf_errmsg *em)
{
    sqlite3_stmt *s = misc(st, M_ACC_INSERT, "INSERT INTO accounts (" ACC_COLS ") VALUES "
                           "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)");
    enum cf_err rc = CF_OK;

    if (s == NULL)
        return cf_fail(em, CF_ERR_STORE, "accounts: %s", sqlite3_errmsg(st->db));
    bind_account(s, a);
    if (sqlite3_step(s) != SQLITE_DONE) {
        int x = sqlite3_extended_errcode(st->db);

        if (x == SQLITE_CONSTRAINT_UNIQUE)
            rc = cf_fail(em, CF_ERR_EXISTS, "accounts: this login is already taken");
        else if (x == SQLITE_CONSTRAINT_FOREIGNKEY)
            rc = cf_fail(em, CF_ERR_NOTFOUND, "accounts: no such establishment");
        else
            rc = cf_fail(em, CF_ERR_STORE, "accounts: %s", sqlite3_errmsg(st->db));
    }
    sqlite3_reset(s);
    return rc;
}

enum cf_err
store_account_update(struct store *st, const struct store_account *a)
{
    sqlite3_stmt *s = misc(st, M_ACC_UPDATE, "UPDATE accounts SET role = ?2, state = ?3, "
        "compartment = ?4, establishment_id = ?5, person_id = ?6, login_idx = ?7, kv = ?8, "
        "fields = ?9, code_hash = ?10, code_expires = ?11, reset_required = ?12, "
        "locked_reason = ?13, updated = ?15 WHERE id = ?1");
    enum cf_err rc = CF_OK;

    if (s == NULL)
        return CF_ERR_STORE;
    bind_account(s, a);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = CF_ERR_STORE;
    else if (sqlite3_changes(st->db) != 1)
        rc = CF_ERR_NOTFOUND;
    sqlite3_reset(s);
    return rc;
}

enum cf_err
store_account_get(struct store *st, const uint8_t id[STORE_ID_BYTES],
                  struct store_account *out)
{
    sqlite3_stmt *s = misc(st, M_ACC_GET, "SELECT " ACC_COLS " FROM accounts WHERE id = ?1");

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, id, STORE_ID_BYTES, SQLITE_STATIC);
    return account_one(s, out);
}

enum cf_err
store_account_find(struct store *st, const uint8_t *digests, size_t len,
                   size_t n, struct store_account *out)
{
    enum cf_err rc = CF_ERR_NOTFOUND;
    size_t i;

    for (i = 0; i < n && rc == CF_ERR_NOTFOUND; i++) {
        sqlite3_stmt *s = misc(st, M_ACC_FIND,
                               "SELECT " ACC_COLS " FROM accounts WHERE login_idx = ?1");
        if (s == NULL)
            return CF_ERR_STORE;
        sqlite3_bind_blob(s, 1, digests + i * len, (int)len, SQLITE_STATIC);
        rc = account_one(s, out);
    }
    return rc;
}

enum cf_err
store_account_by_person(struct store *st, const uint8_t person[STORE_ID_BYTES],
                        struct store_account *out)
{
    sqlite3_stmt *s = misc(st, M_ACC_PERSON,
                           "SELECT " ACC_COLS " FROM accounts WHERE person_id = ?1 LIMIT 1");

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, person, STORE_ID_BYTES, SQLITE_STATIC);
    return account_one(s, out);
}

/* The WHERE clause shared by scoped account statements: ?1 state, ?2
 * compartment, ?3 establishment, each NULL for "any". */
#define SCOPE_WHERE "(?1 IS NULL OR state = ?1) AND (?2 IS NULL OR compartment = ?2) " \
                    "AND (?3 IS NULL OR establishment_id = ?3)"

static void
bind_scope(sqlite3_stmt *s, const struct store_account_scope *sc)
{
    if (sc->state != NULL)
        sqlite3_bind_text(s, 1, sc->state, -1, SQLITE_STATIC);
    if (sc->compartment != NULL)
        sqlite3_bind_text(s, 2, sc->compartment, -1, SQLITE_STATIC);
    if (sc->establishment != NULL)
        sqlite3_bind_blob(s, 3, sc->establishment, STORE_ID_BYTES, SQLITE_STATIC);
}

enum cf_err
store_accounts_each(struct store *st, const struct store_account_scope *scope,
                    store_account_fn fn, void *arg)
{
    sqlite3_stmt *s;
    struct store_account *a;
    enum cf_err rc = CF_OK;
    int step;

    if (sqlite3_prepare_v2(st->db, "SELECT " ACC_COLS " FROM accounts WHERE " SCOPE_WHERE
                           " ORDER BY rid", -1, &s, NULL) != SQLITE_OK)
        return CF_ERR_STORE;
    a = sqlite3_malloc(sizeof *a);
    if (a == NULL) {
        sqlite3_finalize(s);
        return CF_ERR_NOMEM;
    }
    bind_scope(s, scope);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if ((rc = read_account(s, a)) != CF_OK || fn(arg, a) != 0)
            break;
    }
    if (rc == CF_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = CF_ERR_STORE;
    sqlite3_finalize(s);
    sqlite3_free(a);
    return rc;
}

enum cf_err
store_accounts_set_state(struct store *st, const struct store_account_scope *scope,
                         const char *to, uint64_t *n)
{
    sqlite3_stmt *s;
    enum cf_err rc = CF_OK;

    if (sqlite3_prepare_v2(st->db, "UPDATE accounts SET state = ?4, updated = ?5 WHERE "
                           SCOPE_WHERE, -1, &s, NULL) != SQLITE_OK)
        return CF_ERR_STORE;
    bind_scope(s, scope);
    sqlite3_bind_text(s, 4, to, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)time(NULL));
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = CF_ERR_STORE;
    else
        *n = (uint64_t)sqlite3_changes(st->db);
    sqlite3_finalize(s);
    return rc;
}

/* ---- sessions --------------------------------------------------------- */

static enum cf_err
step_done(struct store *st, sqlite3_stmt *s, int want_change)
{
    enum cf_err rc = CF_OK;

    if (sqlite3_step(s) != SQLITE_DONE)
        rc = CF_ERR_STORE;
    else if (want_change && sqlite3_changes(st->db) == 0)
        rc = CF_ERR_NOTFOUND;
    sqlite3_reset(s);
    return rc;
}

enum cf_err
store_session_insert(struct store *st, const struct store_session *x)
{
    sqlite3_stmt *s = misc(st, M_SES_INSERT, "INSERT INTO sessions (token_hash, account_id, "
        "created, last_used, expires, mfa_level, revoked, mfa_at, device) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)");

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, x->token_hash, STORE_TOKEN_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, x->account, STORE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, x->created);
    sqlite3_bind_int64(s, 4, x->last_used);
    sqlite3_bind_int64(s, 5, x->expires);
    sqlite3_bind_int(s, 6, x->mfa_level);
    sqlite3_bind_int(s, 7, x->revoked);
    sqlite3_bind_int64(s, 8, x->mfa_at);
    sqlite3_bind_text(s, 9, x->device, -1, SQLITE_STATIC);
    return step_done(st, s, 0);
}

static enum cf_err
read_session(sqlite3_stmt *s, struct store_session *x)
{
    size_t n;

    if (col_blob(s, 0, x->token_hash, STORE_TOKEN_HASH_BYTES, &n) != 0 ||
        n != STORE_TOKEN_HASH_BYTES ||
        col_blob(s, 1, x->account, STORE_ID_BYTES, &n) != 0 || n != STORE_ID_BYTES)
        return CF_ERR_STORE;
    x->created = sqlite3_column_int64(s, 2);
    x->last_used = sqlite3_column_int64(s, 3);
    x->expires = sqlite3_column_int64(s, 4);
    x->mfa_level = sqlite3_column_int(s, 5);
    x->revoked = sqlite3_column_int(s, 6);
    x->mfa_at = sqlite3_column_int64(s, 7);
    {
        const unsigned char *d = sqlite3_column_text(s, 8);

        snprintf(x->device, sizeof x->device, "%s", d != NULL ? (const char *)d : "");
    }
    return CF_OK;
}

static enum cf_err
read_session_any(sqlite3_stmt *s, void *out)
{
    return read_session(s, out);
}

#define SES_COLS "token_hash, account_id, created, last_used, expires, mfa_level, revoked, mfa_at, device"

enum cf_err
store_session_get(struct store *st, const uint8_t hash[STORE_TOKEN_HASH_BYTES],
                  struct store_session *out)
{
    sqlite3_stmt *s = misc(st, M_SES_GET, "SELECT " SES_COLS " FROM sessions WHERE token_hash = ?1");

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, hash, STORE_TOKEN_HASH_BYTES, SQLITE_STATIC);
    return step_one(s, read_session_any, out);
}

enum cf_err
store_session_touch(struct store *st, const uint8_t hash[STORE_TOKEN_HASH_BYTES],
                    int64_t now)
{
    sqlite3_stmt *s = misc(st, M_SES_TOUCH, "UPDATE sessions SET last_used = ?2 WHERE token_hash = ?1");

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, hash, STORE_TOKEN_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now);
    return step_done(st, s, 1);
}

enum cf_err
store_session_revoke(struct store *st, const uint8_t hash[STORE_TOKEN_HASH_BYTES])
{
    sqlite3_stmt *s = misc(st, M_SES_REVOKE, "UPDATE sessions SET revoked = 1 WHERE token_hash = ?1");

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, hash, STORE_TOKEN_HASH_BYTES, SQLITE_STATIC);
    return step_done(st, s, 1);
}

enum cf_err
store_sessions_revoke(struct store *st, const uint8_t *account,
                      const struct store_account_scope *scope, uint64_t *n)
{
    static const struct store_account_scope any = { NULL, NULL, NULL };
    sqlite3_stmt *s;
    enum cf_err rc = CF_OK;

    if (sqlite3_prepare_v2(st->db, "UPDATE sessions SET revoked = 1 WHERE revoked = 0 AND "
            "account_id IN (SELECT id FROM accounts WHERE " SCOPE_WHERE
            " AND (?4 IS NULL OR id = ?4))", -1, &s, NULL) != SQLITE_OK)
        return CF_ERR_STORE;
    bind_scope(s, scope != NULL ? scope : &any);
    if (account != NULL)
        sqlite3_bind_blob(s, 4, account, STORE_ID_BYTES, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = CF_ERR_STORE;
    else
        *n = (uint64_t)sqlite3_changes(st->db);
    sqlite3_finalize(s);
    return rc;
}

enum cf_err
store_sessions_of(struct store *st, const uint8_t account[STORE_ID_BYTES],
                  size_t limit, store_session_fn fn, void *arg)
{
    sqlite3_stmt *s = misc(st, M_SES_OF, "SELECT " SES_COLS " FROM sessions WHERE "
                           "account_id = ?1 ORDER BY last_used DESC LIMIT ?2");
    struct store_session x;
    enum cf_err rc = CF_OK;
    int step;

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, account, STORE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        if ((rc = read_session(s, &x)) != CF_OK || fn(arg, &x) != 0)
            break;
    if (rc == CF_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = CF_ERR_STORE;
    sqlite3_reset(s);
    return rc;
}

/* ---- throttle --------------------------------------------------------- */

enum cf_err
store_throttle_get(struct store *st, const uint8_t *key, size_t len,
                   struct store_throttle *out)
{
    sqlite3_stmt *s = misc(st, M_THR_GET, "SELECT failures, until, updated FROM throttle WHERE key = ?1");
    enum cf_err rc;

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, key, (int)len, SQLITE_STATIC);
    switch (sqlite3_step(s)) {
    case SQLITE_ROW:
        out->failures = (uint32_t)sqlite3_column_int64(s, 0);
        out->until_ms = sqlite3_column_int64(s, 1);
        out->updated_ms = sqlite3_column_int64(s, 2);
        rc = CF_OK;
        break;
    case SQLITE_DONE:
        out->failures = 0;
        out->until_ms = 0;
        out->updated_ms = 0;
        rc = CF_ERR_NOTFOUND;
        break;
    default:
        rc = CF_ERR_STORE;
        break;
    }
    sqlite3_reset(s);
    return rc;
}

enum cf_err
store_throttle_put(struct store *st, const uint8_t *key, size_t len,
                   const struct store_throttle *t)
{
    sqlite3_stmt *s = misc(st, M_THR_PUT, "INSERT INTO throttle (key, failures, until, updated) "
        "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(key) DO UPDATE SET failures = ?2, until = ?3, updated = ?4");

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, key, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, t->failures);
    sqlite3_bind_int64(s, 3, t->until_ms);
    sqlite3_bind_int64(s, 4, t->updated_ms);
    return step_done(st, s, 0);
}

enum cf_err
store_throttle_clear(struct store *st, const uint8_t *key, size_t len)
{
    sqlite3_stmt *s = misc(st, M_THR_CLEAR, "DELETE FROM throttle WHERE key = ?1");

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, key, (int)len, SQLITE_STATIC);
    return step_done(st, s, 0);
}

/* ---- canaries --------------------------------------------------------- */

enum cf_err
store_canary_put(struct store *st, const uint8_t id[STORE_ID_BYTES], const char *compartment,
                 uint32_t kv, const uint8_t *fields, size_t len)
{
    sqlite3_stmt *s = misc(st, M_CAN_PUT, "INSERT INTO canary_sets (id, compartment, kv, fields, "
                           "created) VALUES (?1, ?2, ?3, ?4, ?5)");

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, id, STORE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, compartment, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, kv);
    sqlite3_bind_blob(s, 4, fields, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)time(NULL));
    return step_done(st, s, 0);
}

enum cf_err
store_canaries(struct store *st, store_canary_fn fn, void *arg)
{
    sqlite3_stmt *s = misc(st, M_CAN_ALL, "SELECT id, compartment, kv, fields FROM canary_sets ORDER BY rid");
    enum cf_err rc = CF_OK;
    int step;

    if (s == NULL)
        return CF_ERR_STORE;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const uint8_t *id = sqlite3_column_blob(s, 0);
        const char *comp = (const char *)sqlite3_column_text(s, 1);

        if (id == NULL || sqlite3_column_bytes(s, 0) != STORE_ID_BYTES || comp == NULL) {
            rc = CF_ERR_STORE;
            break;
        }
        if (fn(arg, id, comp, (uint32_t)sqlite3_column_int64(s, 2), sqlite3_column_blob(s, 3),
               (size_t)sqlite3_column_bytes(s, 3)) != 0)
            break;
    }
    if (rc == CF_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = CF_ERR_STORE;
    sqlite3_reset(s);
    return rc;
}

/* ---- second factors --------------------------------------------------- */

enum mfa_stmt {
    F_SES_MFA, F_PUT, F_OF, F_DEL_ONE, F_DEL_KIND, F_ADVANCE, F_ACTIVATE, F_REC_DEL, F_REC_ADD,
    F_REC_USE, F_REC_INFO, F_CH_PUT, F_CH_TAKE, F_COUNT
};
_Static_assert(F_COUNT <= sizeof ((struct store *)0)->mfa / sizeof(sqlite3_stmt *),
               "struct store: room for every second-factor statement");

static sqlite3_stmt *
mfa_stmt(struct store *st, enum mfa_stmt m, const char *sql)
{
    if (st->mfa[m] == NULL &&
        sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->mfa[m], NULL) !=
            SQLITE_OK)
        return NULL;
    sqlite3_reset(st->mfa[m]);
    sqlite3_clear_bindings(st->mfa[m]);
    return st->mfa[m];
}

enum cf_err
store_session_set_mfa(struct store *st, const uint8_t hash[STORE_TOKEN_HASH_BYTES], int level,
                      int64_t at)
{
    sqlite3_stmt *s = mfa_stmt(st, F_SES_MFA,
                               "UPDATE sessions SET mfa_level = ?2, mfa_at = ?3 WHERE token_hash = ?1");

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, hash, STORE_TOKEN_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, level);
    sqlite3_bind_int64(s, 3, at);
    return step_done(st, s, 1);
}

#define FAC_COLS "id, account_id, kind, active, session_hash, compartment, kv, fields, counter, " \
                 "created, last_used"

enum cf_err
store_factor_put(struct store *st, const struct store_factor *f)
{
    sqlite3_stmt *s = mfa_stmt(st, F_PUT, "INSERT INTO mfa_factors (" FAC_COLS ") VALUES "
        "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11) ON CONFLICT(id) DO UPDATE SET active = ?4, "
        "session_hash = ?5, kv = ?7, fields = ?8, counter = ?9, last_used = ?11");

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, f->id, STORE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, f->account, STORE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, f->kind, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 4, f->active);
    if (f->has_session)
        sqlite3_bind_blob(s, 5, f->session, STORE_TOKEN_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, f->compartment, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, f->kv);
    sqlite3_bind_blob(s, 8, f->fields, (int)f->fields_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 9, f->counter);
    sqlite3_bind_int64(s, 10, f->created);
    sqlite3_bind_int64(s, 11, f->last_used);
    return step_done(st, s, 0);
}

static enum cf_err
read_factor(sqlite3_stmt *s, struct store_factor *f)
{
    const char *kind = (const char *)sqlite3_column_text(s, 2);
    const char *comp = (const char *)sqlite3_column_text(s, 5);
    size_t n;

    memset(f, 0, offsetof(struct store_factor, fields));
    if (col_blob(s, 0, f->id, STORE_ID_BYTES, &n) != 0 || n != STORE_ID_BYTES ||
        col_blob(s, 1, f->account, STORE_ID_BYTES, &n) != 0 || n != STORE_ID_BYTES ||
        kind == NULL || strlen(kind) > STORE_FACTOR_KIND_MAX || comp == NULL ||
        strlen(comp) > ACADEMIE_CODE_BYTES ||
        col_blob(s, 4, f->session, STORE_TOKEN_HASH_BYTES, &n) != 0 ||
        (n != 0 && n != STORE_TOKEN_HASH_BYTES) ||
        col_blob(s, 7, f->fields, sizeof f->fields, &f->fields_len) != 0)
        return CF_ERR_STORE;
    f->has_session = n == STORE_TOKEN_HASH_BYTES;
    snprintf(f->kind, sizeof f->kind, "%s", kind);
    snprintf(f->compartment, sizeof f->compartment, "%s", comp);
    f->active = sqlite3_column_int(s, 3);
    f->kv = (uint32_t)sqlite3_column_int64(s, 6);
    f->counter = sqlite3_column_int64(s, 8);
    f->created = sqlite3_column_int64(s, 9);
    f->last_used = sqlite3_column_int64(s, 10);
    return CF_OK;
}

enum cf_err
store_factors_of(struct store *st, const uint8_t account[STORE_ID_BYTES], size_t limit,
                 store_factor_fn fn, void *arg)
{
    sqlite3_stmt *s = mfa_stmt(st, F_OF, "SELECT " FAC_COLS " FROM mfa_factors WHERE "
                               "account_id = ?1 ORDER BY rid LIMIT ?2");
    struct store_factor *f;
    enum cf_err rc = CF_OK;
    int step;

    if (s == NULL)
        return CF_ERR_STORE;
    f = malloc(sizeof *f);
    if (f == NULL)
        return CF_ERR_NOMEM;
    sqlite3_bind_blob(s, 1, account, STORE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        if ((rc = read_factor(s, f)) != CF_OK || fn(arg, f) != 0)
            break;
    if (rc == CF_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = CF_ERR_STORE;
    sqlite3_reset(s);
    free(f);
    return rc;
}

enum cf_err
store_factor_delete(struct store *st, const uint8_t account[STORE_ID_BYTES], const uint8_t *id,
                    const char *kind, int active)
{
    sqlite3_stmt *s;

    if (id != NULL) {
        s = mfa_stmt(st, F_DEL_ONE, "DELETE FROM mfa_factors WHERE account_id = ?1 AND id = ?2");
        if (s == NULL)
            return CF_ERR_STORE;
        sqlite3_bind_blob(s, 1, account, STORE_ID_BYTES, SQLITE_STATIC);
        sqlite3_bind_blob(s, 2, id, STORE_ID_BYTES, SQLITE_STATIC);
        return step_done(st, s, 1);
    }
    s = mfa_stmt(st, F_DEL_KIND, "DELETE FROM mfa_factors WHERE account_id = ?1 AND kind = ?2 "
                 "AND (?3 < 0 OR active = ?3)");
    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, account, STORE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, active);
    return step_done(st, s, 0);
}

enum cf_err
store_factor_advance(struct store *st, const uint8_t id[STORE_ID_BYTES], int64_t old,
                     int64_t counter, int64_t now)
{
    sqlite3_stmt *s = mfa_stmt(st, F_ADVANCE, "UPDATE mfa_factors SET counter = ?3, "
                               "last_used = ?4 WHERE id = ?1 AND active = 1 AND counter = ?2");
    enum cf_err rc;

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, id, STORE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, old);
    sqlite3_bind_int64(s, 3, counter);
    sqlite3_bind_int64(s, 4, now);
    rc = step_done(st, s, 1);
    return rc == CF_ERR_NOTFOUND ? CF_ERR_AUTH : rc;
}

enum cf_err
store_factor_activate(struct store *st, const uint8_t id[STORE_ID_BYTES], int64_t counter,
                      int64_t now)
{
    sqlite3_stmt *s = mfa_stmt(st, F_ACTIVATE, "UPDATE mfa_factors SET active = 1, "
        "session_hash = NULL, counter = ?2, last_used = ?3 WHERE id = ?1 AND active = 0");

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, id, STORE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, counter);
    sqlite3_bind_int64(s, 3, now);
    return step_done(st, s, 1);
}

enum cf_err
store_recovery_set(struct store *st, const uint8_t account[STORE_ID_BYTES],
                   const uint8_t (*hashes)[STORE_CODE_HASH_BYTES], size_t n, int64_t now)
{
    sqlite3_stmt *s = mfa_stmt(st, F_REC_DEL, "DELETE FROM mfa_recovery WHERE account_id = ?1");
    enum cf_err rc;
    size_t i;

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, account, STORE_ID_BYTES, SQLITE_STATIC);
    if ((rc = step_done(st, s, 0)) != CF_OK)
        return rc;
    for (i = 0; i < n; i++) {
        s = mfa_stmt(st, F_REC_ADD, "INSERT INTO mfa_recovery (account_id, code_hash, used, "
                     "created) VALUES (?1, ?2, 0, ?3)");
        if (s == NULL)
            return CF_ERR_STORE;
        sqlite3_bind_blob(s, 1, account, STORE_ID_BYTES, SQLITE_STATIC);
        sqlite3_bind_blob(s, 2, hashes[i], STORE_CODE_HASH_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, now);
        if ((rc = step_done(st, s, 0)) != CF_OK)
            return rc;
    }
    return CF_OK;
}

enum cf_err
store_recovery_use(struct store *st, const uint8_t account[STORE_ID_BYTES],
                   const uint8_t hash[STORE_CODE_HASH_BYTES], int64_t now)
{
    sqlite3_stmt *s = mfa_stmt(st, F_REC_USE, "UPDATE mfa_recovery SET used = ?3 WHERE "
                               "account_id = ?1 AND code_hash = ?2 AND used = 0");
    enum cf_err rc;

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, account, STORE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, hash, STORE_CODE_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now > 0 ? now : 1);
    rc = step_done(st, s, 1);
    return rc == CF_ERR_NOTFOUND ? CF_ERR_AUTH : rc;
}

enum cf_err
store_recovery_info(struct store *st, const uint8_t account[STORE_ID_BYTES], uint32_t *left,
                    store_recovery_fn fn, void *arg)
{
    sqlite3_stmt *s = mfa_stmt(st, F_REC_INFO, "SELECT used FROM mfa_recovery WHERE "
                               "account_id = ?1 ORDER BY used");
    enum cf_err rc = CF_OK;
    int step, stop = 0;

    if (s == NULL)
        return CF_ERR_STORE;
    *left = 0;
    sqlite3_bind_blob(s, 1, account, STORE_ID_BYTES, SQLITE_STATIC);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t used = sqlite3_column_int64(s, 0);

        if (used == 0)
            (*left)++;
        else if (fn != NULL && !stop)
            stop = fn(arg, used);
    }
    if (step != SQLITE_DONE)
        rc = CF_ERR_STORE;
    sqlite3_reset(s);
    return rc;
}

enum cf_err
store_challenge_put(struct store *st, const uint8_t session[STORE_TOKEN_HASH_BYTES],
                    const char *purpose, const uint8_t *challenge, size_t len, int64_t expires)
{
    sqlite3_stmt *s = mfa_stmt(st, F_CH_PUT, "INSERT INTO mfa_challenges (session_hash, purpose, "
        "challenge, expires) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(session_hash, purpose) DO "
        "UPDATE SET challenge = ?3, expires = ?4");

    if (s == NULL || len > STORE_CHALLENGE_MAX)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, session, STORE_TOKEN_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, purpose, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 3, challenge, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, expires);
    return step_done(st, s, 0);
}

enum cf_err
store_challenge_take(struct store *st, const uint8_t session[STORE_TOKEN_HASH_BYTES],
                     const char *purpose, uint8_t out[STORE_CHALLENGE_MAX], size_t *len,
                     int64_t *expires)
{
    sqlite3_stmt *s = mfa_stmt(st, F_CH_TAKE, "DELETE FROM mfa_challenges WHERE "
        "session_hash = ?1 AND purpose = ?2 RETURNING challenge, expires");
    enum cf_err rc;

    if (s == NULL)
        return CF_ERR_STORE;
    sqlite3_bind_blob(s, 1, session, STORE_TOKEN_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, purpose, -1, SQLITE_STATIC);
    switch (sqlite3_step(s)) {
    case SQLITE_ROW:
        rc = col_blob(s, 0, out, STORE_CHALLENGE_MAX, len) == 0 ? CF_OK : CF_ERR_STORE;
        *expires = sqlite3_column_int64(s, 1);
        /* RETURNING: the delete is done once the statement has run out */
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = CF_ERR_STORE;
        break;
    case SQLITE_DONE:
        rc = CF_ERR_NOTFOUND;
        break;
    default:
        rc = CF_ERR_STORE;
        break;
    }
    sqlite3_reset(s);
    return rc;
}
