/*
 * store.h - the storage interface.  Its types say nothing of the backend:
 * store_sqlite.c implements it today, a PostgreSQL backend later.
 *
 * Every record table has the same shape, so the interface stays narrow:
 *
 *     id          16 random bytes, never sequential
 *     parent[0,1] up to two foreign keys (which ones: see store_table)
 *     compartment the académie code whose keys sealed the row
 *     kv          the data-key version every field was sealed with
 *     fields      the sealed fields, opaque here
 *     idx[0,1]    up to two blind indexes (opaque digests)
 *     created, updated  seconds since the epoch
 *
 * Nothing in a row identifies a person without the keyring.
 */
#ifndef COFFRE_STORE_H
#define COFFRE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "err.h"

#define STORE_ID_BYTES  16
#define STORE_IDX_BYTES 16
#define STORE_IDX_SLOTS 2

enum store_table {                   /* parent[0]       parent[1]   idx[0]  idx[1] */
    STORE_ESTABLISHMENTS,            /* -               -           UAI*    -      */
    STORE_CLASSES,                   /* establishment   -           -       -      */
    STORE_STUDENTS,                  /* establishment   class       INE*    e-mail */
    STORE_GUARDIANS,                 /* -               -           -       e-mail */
    STORE_GUARDIAN_LINKS,            /* guardian        student     -       -      */
    STORE_STAFF,                     /* establishment   -           -       e-mail*/
    STORE_TEACHINGS,                 /* staff           class       -       -      */
    STORE_TABLE_COUNT                /* (* = unique)                               */
};

struct store_row {
    uint8_t id[STORE_ID_BYTES];
    uint8_t parent[2][STORE_ID_BYTES];
    uint8_t has_parent[2];
    char compartment[ACADEMIE_CODE_BYTES + 1];
    uint32_t kv;
    uint8_t idx[STORE_IDX_SLOTS][STORE_IDX_BYTES];
    uint8_t idx_len[STORE_IDX_SLOTS];          /* 0: no index value */
    int64_t created, updated;
    size_t fields_len;
    uint8_t fields[RECORD_FIELDS_MAX_BYTES];
};

struct store;

/*
 * Opens the store at path.  With create != 0 a missing store is created;
 * otherwise a missing one is CF_ERR_NOTFOUND.  Applies forward migrations;
 * a store written by a newer coffre is refused (CF_ERR_STORE) untouched.
 */
enum cf_err store_open(const char *path, int create, struct store **out,
                       struct cf_errmsg *em) WARN_UNUSED;
void store_close(struct store *st);              /* NULL is a no-op */

/*
 * Transactions (not nested).
 *   STORE_TX_NORMAL   the WAL's normal sync at commit
 *   STORE_TX_DURABLE  a full sync at commit (keyring-changing operations)
 *   STORE_TX_BULK     an import: a large page cache and, when the record
 *                     tables are empty, secondary indexes built once at
 *                     commit instead of row by row (DESIGN.md section 12).
 *                     A unique value repeated in the import then fails the
 *                     commit, and nothing is imported.
 * store_commit rolls back and reports on failure (em names the reason).
 */
enum store_tx { STORE_TX_NORMAL, STORE_TX_DURABLE, STORE_TX_BULK };
enum cf_err store_begin(struct store *st, enum store_tx mode) WARN_UNUSED;
enum cf_err store_commit(struct store *st, struct cf_errmsg *em) WARN_UNUSED;
void store_rollback(struct store *st);

/* Inserts a row.  CF_ERR_EXISTS when a unique index already holds its
 * value (em names the index), CF_ERR_NOTFOUND when a parent is missing. */
enum cf_err store_row_insert(struct store *st, enum store_table t,
                             const struct store_row *row,
                             struct cf_errmsg *em) WARN_UNUSED;

/* Replaces a row's fields, key version and indexes (re-seal, edit). */
enum cf_err store_row_update(struct store *st, enum store_table t,
                             const struct store_row *row) WARN_UNUSED;

enum cf_err store_row_get(struct store *st, enum store_table t,
                          const uint8_t id[STORE_ID_BYTES],
                          struct store_row *out) WARN_UNUSED;

/* First row whose idx[slot] equals one of the n digests (each len bytes):
 * one digest per compartment the caller holds keys for. */
enum cf_err store_row_find(struct store *st, enum store_table t, int slot,
                           const uint8_t *digests, size_t len, size_t n,
                           struct store_row *out) WARN_UNUSED;

/* Visits rows; the callback returns non-zero to stop early.  The row is
 * valid during the call only. */
typedef int (*store_row_fn)(void *arg, const struct store_row *row);

/* Rows whose parent[slot] is parent_id, in insertion order, skipping the
 * first `offset`, at most limit of them. */
enum cf_err store_rows_by_parent(struct store *st, enum store_table t,
                                 int slot, const uint8_t parent_id[STORE_ID_BYTES],
                                 size_t offset, size_t limit, store_row_fn fn,
                                 void *arg) WARN_UNUSED;
/* Rows of a compartment sealed with a key older than kv, at most limit. */
enum cf_err store_rows_older(struct store *st, enum store_table t,
                             const char *compartment, uint32_t kv,
                             size_t limit, store_row_fn fn, void *arg)
    WARN_UNUSED;
/* Every row of t, at most limit (establishments: there are few). */
enum cf_err store_rows_all(struct store *st, enum store_table t, size_t limit,
                           store_row_fn fn, void *arg) WARN_UNUSED;

/* Rows of table t in compartment c sealed with version kv. */
enum cf_err store_count_version(struct store *st, enum store_table t,
                                const char *compartment, uint32_t kv,
                                uint64_t *count) WARN_UNUSED;

/* Wrapped data keys. */
enum cf_err store_datakey_put(struct store *st, const char *compartment,
                              uint32_t version, const uint8_t *wrapped,
                              size_t len) WARN_UNUSED;
typedef int (*store_datakey_fn)(void *arg, const char *compartment,
                                uint32_t version, const uint8_t *wrapped,
                                size_t len);
enum cf_err store_datakeys(struct store *st, store_datakey_fn fn, void *arg)
    WARN_UNUSED;

/* ---- accounts, sessions, throttling ---------------------------------- */

#define STORE_ROLE_MAX   16
#define STORE_STATE_MAX  16
#define STORE_REASON_MAX 64
#define STORE_CODE_HASH_BYTES 32
#define STORE_TOKEN_HASH_BYTES 32
#define STORE_ACCOUNT_FIELDS_MAX 1024

struct store_account {
    uint8_t id[STORE_ID_BYTES];
    char role[STORE_ROLE_MAX + 1];
    char state[STORE_STATE_MAX + 1];
    char compartment[ACADEMIE_CODE_BYTES + 1];
    uint8_t establishment[STORE_ID_BYTES];
    uint8_t person[STORE_ID_BYTES];
    uint8_t has_establishment, has_person, has_code;
    uint8_t login_idx[STORE_IDX_BYTES];
    uint32_t kv;
    uint8_t code_hash[STORE_CODE_HASH_BYTES];
    int64_t code_expires;                   /* seconds */
    int reset_required;
    char locked_reason[STORE_REASON_MAX + 1];
    int64_t created, updated;
    size_t fields_len;
    uint8_t fields[STORE_ACCOUNT_FIELDS_MAX];
};

/* CF_ERR_EXISTS when the login is taken. */
enum cf_err store_account_insert(struct store *st, const struct store_account *a,
                                 struct cf_errmsg *em) WARN_UNUSED;
/* Rewrites every mutable column of the account with this id. */
enum cf_err store_account_update(struct store *st,
                                 const struct store_account *a) WARN_UNUSED;
enum cf_err store_account_get(struct store *st, const uint8_t id[STORE_ID_BYTES],
                              struct store_account *out) WARN_UNUSED;
/* By login blind index: one digest per compartment (as store_row_find). */
enum cf_err store_account_find(struct store *st, const uint8_t *digests,
                               size_t len, size_t n,
                               struct store_account *out) WARN_UNUSED;

/* The account of a person, if any. */
enum cf_err store_account_by_person(struct store *st,
                                    const uint8_t person[STORE_ID_BYTES],
                                    struct store_account *out) WARN_UNUSED;

/* Which accounts an incident command touches: state (NULL: any),
 * compartment (NULL: any), establishment (NULL: any). */
struct store_account_scope {
    const char *state;
    const char *compartment;
    const uint8_t *establishment;
};
typedef int (*store_account_fn)(void *arg, const struct store_account *a);
enum cf_err store_accounts_each(struct store *st,
                                const struct store_account_scope *scope,
                                store_account_fn fn, void *arg) WARN_UNUSED;
/* Sets state to `to` for every account in scope; *n gets how many. */
enum cf_err store_accounts_set_state(struct store *st,
                                     const struct store_account_scope *scope,
                                     const char *to, uint64_t *n) WARN_UNUSED;

/* A session's device label: browser and system names from a fixed list. */
#define STORE_DEVICE_MAX 48

struct store_session {
    uint8_t token_hash[STORE_TOKEN_HASH_BYTES];
    uint8_t account[STORE_ID_BYTES];
    int64_t created, last_used, expires;     /* seconds */
    int mfa_level;
    int revoked;
    int64_t mfa_at;                          /* last second factor passed; 0: never */
    char device[STORE_DEVICE_MAX + 1];       /* "Firefox, Linux"; "" unknown */
};

enum cf_err store_session_insert(struct store *st,
                                 const struct store_session *s) WARN_UNUSED;
enum cf_err store_session_get(struct store *st,
                              const uint8_t hash[STORE_TOKEN_HASH_BYTES],
                              struct store_session *out) WARN_UNUSED;
enum cf_err store_session_touch(struct store *st,
                                const uint8_t hash[STORE_TOKEN_HASH_BYTES],
                                int64_t now) WARN_UNUSED;
enum cf_err store_session_revoke(struct store *st,
                                 const uint8_t hash[STORE_TOKEN_HASH_BYTES])
    WARN_UNUSED;
/* Revokes every live session of the accounts in scope (account != NULL:
 * that account only); *n gets how many. */
enum cf_err store_sessions_revoke(struct store *st, const uint8_t *account,
                                  const struct store_account_scope *scope,
                                  uint64_t *n) WARN_UNUSED;
typedef int (*store_session_fn)(void *arg, const struct store_session *s);
enum cf_err store_sessions_of(struct store *st,
                              const uint8_t account[STORE_ID_BYTES],
                              size_t limit, store_session_fn fn, void *arg)
    WARN_UNUSED;

/* Throttle counters, keyed by an opaque digest. */
struct store_throttle {
    uint32_t failures;
    int64_t until_ms;        /* no attempt before this time */
    int64_t updated_ms;      /* last failure */
};
enum cf_err store_throttle_get(struct store *st, const uint8_t *key, size_t len,
                               struct store_throttle *out) WARN_UNUSED;
enum cf_err store_throttle_put(struct store *st, const uint8_t *key, size_t len,
                               const struct store_throttle *t) WARN_UNUSED;
enum cf_err store_throttle_clear(struct store *st, const uint8_t *key,
                                 size_t len) WARN_UNUSED;

/* Sealed canary lists (opaque here): one row per batch. */
enum cf_err store_canary_put(struct store *st, const uint8_t id[STORE_ID_BYTES],
                             const char *compartment, uint32_t kv,
                             const uint8_t *fields, size_t len) WARN_UNUSED;
typedef int (*store_canary_fn)(void *arg, const uint8_t id[STORE_ID_BYTES],
                               const char *compartment, uint32_t kv,
                               const uint8_t *fields, size_t len);
enum cf_err store_canaries(struct store *st, store_canary_fn fn, void *arg) WARN_UNUSED;

/* ---- second factors (src/mfa.c, docs/mfa.md) -------------------------- */

/* The session's second-factor level and when it was last passed. */
enum cf_err store_session_set_mfa(struct store *st,
                                  const uint8_t hash[STORE_TOKEN_HASH_BYTES],
                                  int level, int64_t at) WARN_UNUSED;

#define STORE_FACTOR_KIND_MAX 16
#define STORE_FACTOR_FIELDS_MAX 1024

struct store_factor {
    uint8_t id[STORE_ID_BYTES];
    uint8_t account[STORE_ID_BYTES];
    char kind[STORE_FACTOR_KIND_MAX + 1];     /* "totp", "webauthn" */
    int active;                               /* 0: pending confirmation */
    uint8_t session[STORE_TOKEN_HASH_BYTES];  /* pending: the session that asked */
    uint8_t has_session;
    char compartment[ACADEMIE_CODE_BYTES + 1];
    uint32_t kv;
    int64_t counter;                          /* TOTP: last step; WebAuthn: sign count */
    int64_t created, last_used;
    size_t fields_len;
    uint8_t fields[STORE_FACTOR_FIELDS_MAX];  /* sealed, opaque here */
};

/* Inserts, or replaces the row with the same id. */
enum cf_err store_factor_put(struct store *st, const struct store_factor *f) WARN_UNUSED;
typedef int (*store_factor_fn)(void *arg, const struct store_factor *f);
/* The account's factors (pending ones too), oldest first, at most limit. */
enum cf_err store_factors_of(struct store *st, const uint8_t account[STORE_ID_BYTES],
                             size_t limit, store_factor_fn fn, void *arg) WARN_UNUSED;
/* Deletes one factor of the account (CF_ERR_NOTFOUND: none such), or with
 * id NULL every factor of that kind, active or pending (active < 0: both). */
enum cf_err store_factor_delete(struct store *st, const uint8_t account[STORE_ID_BYTES],
                                const uint8_t *id, const char *kind, int active) WARN_UNUSED;
/* Compare-and-set of the counter: succeeds only if it still holds `old`
 * (CF_ERR_AUTH otherwise: a concurrent use won), so a TOTP step or a
 * signature counter value is accepted at most once. */
enum cf_err store_factor_advance(struct store *st, const uint8_t id[STORE_ID_BYTES],
                                 int64_t old, int64_t counter, int64_t now) WARN_UNUSED;
/* Makes a pending factor active. */
enum cf_err store_factor_activate(struct store *st, const uint8_t id[STORE_ID_BYTES],
                                  int64_t counter, int64_t now) WARN_UNUSED;

/* Recovery codes: replaces the account's set with n keyed hashes. */
enum cf_err store_recovery_set(struct store *st, const uint8_t account[STORE_ID_BYTES],
                               const uint8_t (*hashes)[STORE_CODE_HASH_BYTES], size_t n,
                               int64_t now) WARN_UNUSED;
/* Spends one unused code: CF_ERR_AUTH when no unused code has this hash. */
enum cf_err store_recovery_use(struct store *st, const uint8_t account[STORE_ID_BYTES],
                               const uint8_t hash[STORE_CODE_HASH_BYTES],
                               int64_t now) WARN_UNUSED;
/* How many are left; fn (may be NULL) visits the time of each one spent. */
typedef int (*store_recovery_fn)(void *arg, int64_t used);
enum cf_err store_recovery_info(struct store *st, const uint8_t account[STORE_ID_BYTES],
                                uint32_t *left, store_recovery_fn fn, void *arg) WARN_UNUSED;

/* WebAuthn challenges, one per session and purpose ("register", "assert"). */
#define STORE_CHALLENGE_MAX 64
enum cf_err store_challenge_put(struct store *st, const uint8_t session[STORE_TOKEN_HASH_BYTES],
                                const char *purpose, const uint8_t *challenge, size_t len,
                                int64_t expires) WARN_UNUSED;
/* Takes (reads and deletes) it: a challenge answers once. */
enum cf_err store_challenge_take(struct store *st, const uint8_t session[STORE_TOKEN_HASH_BYTES],
                                 const char *purpose, uint8_t out[STORE_CHALLENGE_MAX],
                                 size_t *len, int64_t *expires) WARN_UNUSED;

/* Schema version of the open store, and the newest this build knows. */
int store_schema_version(struct store *st);
int store_schema_latest(void);

#endif
