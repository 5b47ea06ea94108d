/*
 * records.c - the record kinds, their fields, and sealing/opening them.
 *
 * One table (kinds[] below) says, for every kind, which store table holds
 * it, which parents it has and, per field: how it is normalised and
 * validated, its size limit, whether it is required and which blind index
 * (if any) it feeds.  Every code path below is driven by that table, so a
 * reviewer checks the table once instead of a function per kind.
 *
 * The fields blob of a row is a sequence of
 *     field index (1 byte) | length (2 bytes, big-endian) | sealed value
 * with one sealed value per present field (seal.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "ids.h"
#include "keyring.h"
#include "records.h"
#include "seal.h"
#include "store.h"
#include "banned.h"

enum field_type { F_TEXT, F_EMAIL, F_DATE, F_PHONE, F_INE, F_UAI };

struct field_def {
    const char *name;
    enum field_type type;
    size_t max;             /* bytes after normalisation */
    int required;
    int idx_slot;           /* -1: not indexed */
    size_t idx_bytes;       /* blind-index truncation */
};

struct kind_def {
    const char *name;
    enum store_table table;
    int parents;                        /* how many parents it needs */
    enum record_kind parent_kind[2];
    int parent_required[2];
    size_t nfields;
    struct field_def f[RECORD_MAX_FIELDS];
};

/* Unique identifiers keep the full 128 bits; e-mails too (they identify). */
#define BIDX_FULL 16

static const struct kind_def kinds[REC_KIND_COUNT] = {
    [REC_ESTABLISHMENT] = { "establishment", STORE_ESTABLISHMENTS, 0,
        { 0, 0 }, { 0, 0 }, 2, {
        { "uai",  F_UAI,  UAI_BYTES, 1, 0, BIDX_FULL },
        { "name", F_TEXT, ESTABLISHMENT_NAME_MAX_BYTES, 1, -1, 0 } } },
    [REC_CLASS] = { "class", STORE_CLASSES, 1,
        { REC_ESTABLISHMENT, 0 }, { 1, 0 }, 1, {
        { "name", F_TEXT, LABEL_MAX_BYTES, 1, -1, 0 } } },
    [REC_STUDENT] = { "student", STORE_STUDENTS, 2,
        { REC_ESTABLISHMENT, REC_CLASS }, { 1, 0 }, 6, {
        { "ine",         F_INE,   INE_BYTES, 1, 0, BIDX_FULL },
        { "family_name", F_TEXT,  NAME_MAX_BYTES, 1, -1, 0 },
        { "given_names", F_TEXT,  NAME_MAX_BYTES, 1, -1, 0 },
        { "birth_date",  F_DATE,  DATE_BYTES, 1, -1, 0 },
        { "address",     F_TEXT,  ADDRESS_MAX_BYTES, 0, -1, 0 },
        { "email",       F_EMAIL, EMAIL_MAX_BYTES, 0, 1, BIDX_FULL } } },
    [REC_GUARDIAN] = { "guardian", STORE_GUARDIANS, 0,
        { 0, 0 }, { 0, 0 }, 5, {
        { "family_name", F_TEXT,  NAME_MAX_BYTES, 1, -1, 0 },
        { "given_names", F_TEXT,  NAME_MAX_BYTES, 1, -1, 0 },
        { "phone",       F_PHONE, PHONE_MAX_BYTES, 0, -1, 0 },
        { "email",       F_EMAIL, EMAIL_MAX_BYTES, 0, 1, BIDX_FULL },
        { "address",     F_TEXT,  ADDRESS_MAX_BYTES, 0, -1, 0 } } },
    [REC_GUARDIAN_LINK] = { "guardian_link", STORE_GUARDIAN_LINKS, 2,
        { REC_GUARDIAN, REC_STUDENT }, { 1, 1 }, 1, {
        { "relationship", F_TEXT, LABEL_MAX_BYTES, 1, -1, 0 } } },
    [REC_STAFF] = { "staff", STORE_STAFF, 1,
        { REC_ESTABLISHMENT, 0 }, { 1, 0 }, 4, {
        { "family_name", F_TEXT,  NAME_MAX_BYTES, 1, -1, 0 },
        { "given_names", F_TEXT,  NAME_MAX_BYTES, 1, -1, 0 },
        { "email",       F_EMAIL, EMAIL_MAX_BYTES, 1, 1, BIDX_FULL },
        { "function",    F_TEXT,  LABEL_MAX_BYTES, 0, -1, 0 } } },
    [REC_TEACHING] = { "teaching", STORE_TEACHINGS, 2,
        { REC_STAFF, REC_CLASS }, { 1, 1 }, 1, {
        { "subject",     F_TEXT,  LABEL_MAX_BYTES, 0, -1, 0 } } },
};

/* A few recently seen rows' compartments and first parents, so bulk loads
 * do not re-read the same establishment a million times. */
#define PCACHE_SLOTS 256
struct pcache_entry {
    uint8_t id[STORE_ID_BYTES];
    enum record_kind kind;
    char compartment[ACADEMIE_CODE_BYTES + 1];
    uint8_t parent0[STORE_ID_BYTES];
    int valid;
};

/* Ids and nonces are drawn from a pool refilled 4 KiB at a time: one
 * getrandom(2) per ~50 rows instead of two per row.  They are public
 * values (stored in clear next to the ciphertext), only required to be
 * unpredictable and unique, which the CSPRNG output still is. */
#define RAND_POOL_BYTES 4096

struct records {
    struct store *st;
    uint8_t rand_pool[RAND_POOL_BYTES];
    size_t rand_used;
    struct keyring *kr;
    struct pcache_entry pcache[PCACHE_SLOTS];
    /* Scratch space, here rather than on the stack or in statics: one
     * struct records is used by one thread at a time. */
    struct store_row row;                  /* the row being written or read */
    struct store_row prow;                 /* a parent being looked up */
    struct store_row kept;                 /* records_get_kept's row */
    enum record_kind kept_kind;
    struct record rec;
    char norm[RECORD_MAX_FIELDS][RECORD_FIELD_PT_MAX + 1];
};

const char *
records_kind_name(enum record_kind k)
{
    return k < REC_KIND_COUNT ? kinds[k].name : "?";
}

size_t
records_field_count(enum record_kind k)
{
    return k < REC_KIND_COUNT ? kinds[k].nfields : 0;
}

const char *
records_field_name(enum record_kind k, size_t i)
{
    return k < REC_KIND_COUNT && i < kinds[k].nfields ? kinds[k].f[i].name : NULL;
}

int
records_field_index(enum record_kind k, const char *name)
{
    size_t i;

    for (i = 0; i < records_field_count(k); i++)
        if (strcmp(kinds[k].f[i].name, name) == 0)
            return (int)i;
    return -1;
}

const struct keyring *
records_keyring(const struct records *r)
{
    return r->kr;
}

struct store *
records_store(struct records *r)
{
    return r->st;
}

/* ---- ids -------------------------------------------------------------- */

static void
rand_take(struct records *r, void *out, size_t n)
{
    if (n > RAND_POOL_BYTES) {
        randombytes_buf(out, n);
        return;
    }
    if (r->rand_used == 0 || r->rand_used + n > RAND_POOL_BYTES) {
        randombytes_buf(r->rand_pool, RAND_POOL_BYTES);
        r->rand_used = 0;
    }
    memcpy(out, r->rand_pool + r->rand_used, n);
    /* Never hand the same bytes out twice. */
    sodium_memzero(r->rand_pool + r->rand_used, n);
    r->rand_used += n;
}

enum cf_err
records_id_parse(const char *hex, uint8_t out[16])
{
    size_t got, i;

    if (hex == NULL || strlen(hex) != RECORD_ID_HEX)
        return CF_ERR_INPUT;
    for (i = 0; i < RECORD_ID_HEX; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return CF_ERR_INPUT;
    if (sodium_hex2bin(out, 16, hex, RECORD_ID_HEX, NULL, &got, NULL) != 0 || got != 16)
        return CF_ERR_INPUT;
    return CF_OK;
}

void
records_id_format(const uint8_t id[16], char out[RECORD_ID_HEX + 1])
{
    sodium_bin2hex(out, RECORD_ID_HEX + 1, id, 16);
}

/* ---- field validation ------------------------------------------------- */

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int
days_in_month(int y, int m)
{
    static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

/* YYYY-MM-DD or DD/MM/YYYY (as AAF and SIECLE write it) -> YYYY-MM-DD. */
static int
norm_date(const char *s, size_t n, char *out)
{
    int y, m, d;

    if (n != 10)
        return -1;
    if (s[4] == '-' && s[7] == '-' && is_digit(s[0]) && is_digit(s[1]) &&
        is_digit(s[2]) && is_digit(s[3]) && is_digit(s[5]) && is_digit(s[6]) &&
        is_digit(s[8]) && is_digit(s[9])) {
        y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
        m = (s[5] - '0') * 10 + (s[6] - '0');
        d = (s[8] - '0') * 10 + (s[9] - '0');
    } else if (s[2] == '/' && s[5] == '/' && is_digit(s[0]) && is_digit(s[1]) &&
               is_digit(s[3]) && is_digit(s[4]) && is_digit(s[6]) &&
               is_digit(s[7]) && is_digit(s[8]) && is_digit(s[9])) {
        d = (s[0] - '0') * 10 + (s[1] - '0');
        m = (s[3] - '0') * 10 + (s[4] - '0');
        y = (s[6] - '0') * 1000 + (s[7] - '0') * 100 + (s[8] - '0') * 10 + (s[9] - '0');
    } else
        return -1;
    if (y < BIRTH_YEAR_MIN || y > BIRTH_YEAR_MAX || m < 1 || m > 12 ||
        d < 1 || d > days_in_month(y, m))
        return -1;
    snprintf(out, DATE_BYTES + 1, "%04d-%02d-%02d", y, m, d);
    return 0;
}

/* Digits with an optional leading '+'; spaces, dots and dashes dropped. */
static int
norm_phone(char *s, size_t *n)
{
    size_t i, o = 0, digits = 0;

    for (i = 0; i < *n; i++) {
        if (s[i] == '+' && o == 0)
            s[o++] = '+';
        else if (is_digit(s[i])) {
            s[o++] = s[i];
            digits++;
        } else if (s[i] != ' ' && s[i] != '.' && s[i] != '-')
            return -1;
    }
    if (digits < 6 || digits > 15)
        return -1;
    s[o] = '\0';
    *n = o;
    return 0;
}

/* A deliberately plain check: one '@', non-empty local part of at most 64
 * bytes, a domain with a dot, no spaces, quotes or angle brackets. */
static int
check_email(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    size_t i;

    if (at == NULL || at == s || (size_t)(at - s) > 64 ||
        memchr(at + 1, '@', n - (size_t)(at - s) - 1) != NULL)
        return -1;
    if (memchr(at + 1, '.', n - (size_t)(at - s) - 1) == NULL || s[n - 1] == '.' ||
        at[1] == '.')
        return -1;
    for (i = 0; i < n; i++)
        if (s[i] == ' ' || s[i] == '"' || s[i] == '<' || s[i] == '>' ||
            s[i] == ',' || s[i] == ';' || s[i] == '\\')
            return -1;
    return 0;
}

/* Normalises and validates one value into out (cap bytes). */
static enum cf_err
field_normalize(const struct field_def *fd, const char *v, char *out,
                size_t cap, size_t *outlen, struct cf_errmsg *em)
{
    enum seal_norm mode = SEAL_NORM_TEXT;
    size_t max = fd->max, n;
    enum cf_err rc;

    if (fd->type == F_EMAIL)
        mode = SEAL_NORM_FOLD;
    if (fd->type == F_INE || fd->type == F_UAI)
        mode = SEAL_NORM_UPPER;
    if (fd->type == F_DATE || fd->type == F_PHONE || fd->type == F_INE || fd->type == F_UAI)
        max = 64;           /* room for the accepted input forms */
    rc = seal_normalize(fd->name, v, strlen(v), mode, max, out, cap, &n, em);
    if (rc != CF_OK)
        return rc;
    switch (fd->type) {
    case F_TEXT:
        break;
    case F_EMAIL:
        if (check_email(out, n) != 0)
            return cf_fail(em, CF_ERR_INPUT, "%s: not an e-mail address", fd->name);
        break;
    case F_DATE: {
        char iso[DATE_BYTES + 1];

        if (norm_date(out, n, iso) != 0)
            return cf_fail(em, CF_ERR_INPUT,
                           "%s: not a date between %d and %d (YYYY-MM-DD or DD/MM/YYYY)",
                           fd->name, BIRTH_YEAR_MIN, BIRTH_YEAR_MAX);
        memcpy(out, iso, sizeof iso);
        n = DATE_BYTES;
        break;
    }
    case F_PHONE:
        if (norm_phone(out, &n) != 0)
            return cf_fail(em, CF_ERR_INPUT, "%s: not a phone number (6 to 15 digits)", fd->name);
        break;
    case F_INE: {
        struct ine ine;

        if ((rc = ids_parse_ine(out, n, &ine, em)) != CF_OK)
            return rc;
        n = strlen(ine.s);
        memcpy(out, ine.s, n + 1);
        break;
    }
    case F_UAI: {
        struct uai uai;

        if ((rc = ids_parse_uai(out, n, &uai, em)) != CF_OK)
            return rc;
        n = strlen(uai.s);
        memcpy(out, uai.s, n + 1);
        break;
    }
    }
    *outlen = n;
    return CF_OK;
}

/* ---- open and init ---------------------------------------------------- */

static void
path_join(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

struct install_ctx {
    struct keyring *kr;
    const char *keyring_path;
    struct cf_errmsg *em;
    enum cf_err rc;
};

static int
install_key(void *arg, const char *code, uint32_t version,
            const uint8_t *wrapped, size_t len)
{
    struct install_ctx *c = arg;
    enum cf_err rc;

    if (!keyring_has(c->kr, code))
        return 0;          /* another compartment: this node may not read it */
    rc = keyring_data_key_install(c->kr, code, version, wrapped, len);
    if (rc != CF_OK) {
        c->rc = cf_fail(c->em, CF_ERR_CRYPTO,
                        "keyring '%s' does not open compartment %s's data key v%u: "
                        "it belongs to another store", c->keyring_path, code, version);
        return 1;
    }
    return 0;
}

/* Gives every compartment of the keyring a data key version 1 if the
 * store has none for it yet (a fresh store, or a newly exported keyring). */
static enum cf_err
ensure_data_keys(struct records *r, struct cf_errmsg *em)
{
    uint8_t wrapped[KEYRING_WRAPPED_BYTES];
    size_t i;
    enum cf_err rc;
    int began = 0;

    for (i = 0; i < keyring_count(r->kr); i++) {
        const char *code = keyring_code_at(r->kr, i);

        if (keyring_current_version(r->kr, code) != 0)
            continue;
        if (!began) {
            if (store_begin(r->st, STORE_TX_DURABLE) != CF_OK)
                return cf_fail(em, CF_ERR_STORE, "store: cannot begin a transaction");
            began = 1;
        }
        if ((rc = keyring_data_key_new(r->kr, code, 1, wrapped)) != CF_OK ||
            (rc = store_datakey_put(r->st, code, 1, wrapped, sizeof wrapped)) != CF_OK) {
            store_rollback(r->st);
            return cf_fail(em, rc, "compartment %s: cannot create its data key: %s",
                           code, cf_err_str(rc));
        }
    }
    if (began && (rc = store_commit(r->st, em)) != CF_OK)
        return rc;
    return CF_OK;
}

static enum cf_err
open_with(const char *data_dir, const char *keyring_path, int create,
          struct records **out, struct cf_errmsg *em)
{
    char store_path[4096], kr_path[4096];
    struct records *r;
    struct install_ctx ictx;
    enum cf_err rc;

    if (sodium_init() < 0)
        return cf_fail(em, CF_ERR_CRYPTO, "libsodium failed to initialise");
    path_join(store_path, sizeof store_path, data_dir, "coffre.db");
    if (keyring_path == NULL) {
        path_join(kr_path, sizeof kr_path, data_dir, "keyring");
        keyring_path = kr_path;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "out of memory");
    if ((rc = keyring_load(keyring_path, &r->kr, em)) != CF_OK)
        goto fail;
    /* Records never sign: only the audit writer's copy keeps the seed. */
    keyring_drop_audit_seed(r->kr);
    if ((rc = store_open(store_path, create, &r->st, em)) != CF_OK)
        goto fail;
    ictx = (struct install_ctx){ r->kr, keyring_path, em, CF_OK };
    if ((rc = store_datakeys(r->st, install_key, &ictx)) != CF_OK) {
        rc = cf_fail(em, rc, "store '%s': cannot read data keys", store_path);
        goto fail;
    }
    if ((rc = ictx.rc) != CF_OK)
        goto fail;
    if ((rc = ensure_data_keys(r, em)) != CF_OK)
        goto fail;
    *out = r;
    return CF_OK;
fail:
    records_close(r);
    return rc;
}

enum cf_err
records_open(const char *data_dir, const char *keyring_path,
             struct records **out, struct cf_errmsg *em)
{
    struct stat sb;

    if (stat(data_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cf_fail(em, CF_ERR_NOTFOUND,
                       "data directory '%s' not found ('coffre init --data DIR' creates it)",
                       data_dir);
    return open_with(data_dir, keyring_path, 0, out, em);
}

enum cf_err
records_init(const char *data_dir, const char *const *codes, size_t n,
             uint8_t seed_out[32], struct cf_errmsg *em)
{
    char kr_path[4096], store_path[4096];
    struct records *r = NULL;
    enum cf_err rc;

    if (sodium_init() < 0)
        return cf_fail(em, CF_ERR_CRYPTO, "libsodium failed to initialise");
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST)
        return cf_fail(em, CF_ERR_IO, "data directory '%s': cannot create: %s",
                       data_dir, strerror(errno));
    path_join(kr_path, sizeof kr_path, data_dir, "keyring");
    path_join(store_path, sizeof store_path, data_dir, "coffre.db");
    if (access(store_path, F_OK) == 0)
        return cf_fail(em, CF_ERR_EXISTS,
                       "store '%s' already exists; refusing to initialise over it", store_path);
    if ((rc = keyring_create(kr_path, codes, n, seed_out, em)) != CF_OK)
        return rc;
    rc = open_with(data_dir, kr_path, 1, &r, em);
    records_close(r);
    if (rc != CF_OK) {
        /* Leave nothing half-made: the next init must be able to start over. */
        unlink(kr_path);
        unlink(store_path);
        sodium_memzero(seed_out, 32);
    }
    return rc;
}

enum cf_err
records_lock_dir(const char *data_dir, int *fd, struct cf_errmsg *em)
{
    char path[4096];

    snprintf(path, sizeof path, "%s/serve.lock", data_dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0)
        return cf_fail(em, errno == ENOENT ? CF_ERR_NOTFOUND : CF_ERR_IO,
                       "'%s': cannot open: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        close(*fd);
        *fd = -1;
        return cf_fail(em, CF_ERR_DENIED,
                       "a coffre server (or another command) is using '%s': use its "
                       "admin API, or stop it first", data_dir);
    }
    return CF_OK;
}

void
records_close(struct records *r)
{
    if (r == NULL)
        return;
    store_close(r->st);
    keyring_free(r->kr);
    sodium_memzero(&r->rec, sizeof r->rec);
    sodium_memzero(r->norm, sizeof r->norm);
    free(r);
}

/* ---- transactions ----------------------------------------------------- */

enum cf_err
records_begin(struct records *r, int bulk)
{
    return store_begin(r->st, bulk ? STORE_TX_BULK : STORE_TX_NORMAL);
}

enum cf_err
records_commit(struct records *r, struct cf_errmsg *em)
{
    enum cf_err rc = store_commit(r->st, em);

    if (rc != CF_OK)
        memset(r->pcache, 0, sizeof r->pcache);
    return rc;
}

void
records_rollback(struct records *r)
{
    store_rollback(r->st);
    /* Rows cached during the transaction may no longer exist. */
    memset(r->pcache, 0, sizeof r->pcache);
}

/* ---- parent lookups --------------------------------------------------- */

static struct pcache_entry *
pcache_slot(struct records *r, const uint8_t id[STORE_ID_BYTES])
{
    return &r->pcache[id[0] ^ id[7]];
}

static void
pcache_put(struct records *r, enum record_kind k, const struct store_row *row)
{
    struct pcache_entry *e = pcache_slot(r, row->id);

    memcpy(e->id, row->id, STORE_ID_BYTES);
    e->kind = k;
    memcpy(e->compartment, row->compartment, sizeof e->compartment);
    if (row->has_parent[0])
        memcpy(e->parent0, row->parent[0], STORE_ID_BYTES);
    else
        memset(e->parent0, 0, STORE_ID_BYTES);
    e->valid = 1;
}

/* Looks up a parent's compartment and own first parent. */
static enum cf_err
parent_info(struct records *r, enum record_kind k,
            const uint8_t id[STORE_ID_BYTES], struct pcache_entry *out)
{
    struct pcache_entry *e = pcache_slot(r, id);
    enum cf_err rc;

    if (e->valid && e->kind == k && memcmp(e->id, id, STORE_ID_BYTES) == 0) {
        *out = *e;
        return CF_OK;
    }
    rc = store_row_get(r->st, kinds[k].table, id, &r->prow);
    if (rc != CF_OK)
        return rc;
    pcache_put(r, k, &r->prow);
    *out = *e;
    return CF_OK;
}

/* ---- sealing ---------------------------------------------------------- */

/* The field names of a kind, as an array for the blob functions. */
static void
kind_names(enum record_kind k, const char *names[RECORD_MAX_FIELDS])
{
    size_t i;

    for (i = 0; i < kinds[k].nfields; i++)
        names[i] = kinds[k].f[i].name;
}

enum cf_err
records_blob_seal(struct records *r, const struct records_blob *b,
                  char (*values)[RECORD_FIELD_PT_MAX + 1], const size_t *len,
                  uint32_t present, uint8_t *out, size_t cap, size_t *outlen)
{
    uint8_t nonces[RECORD_MAX_FIELDS][SEAL_NONCE_BYTES];
    struct seal_ad ad = { b->compartment, b->kind, b->id, NULL };
    size_t i, pos = 0;
    enum cf_err rc;

    if (b->nfields > RECORD_MAX_FIELDS)
        return CF_ERR_LIMIT;
    rand_take(r, nonces, b->nfields * SEAL_NONCE_BYTES);
    for (i = 0; i < b->nfields; i++) {
        size_t sz;

        if (!(present & (1u << i)))
            continue;
        sz = SEAL_SIZE(len[i]);
        if (pos + 3 + sz > cap)
            return CF_ERR_LIMIT;
        out[pos] = (uint8_t)i;
        out[pos + 1] = (uint8_t)(sz >> 8);
        out[pos + 2] = (uint8_t)sz;
        ad.field = b->names[i];
        rc = seal_field(r->kr, &ad, b->kv, nonces[i], (const uint8_t *)values[i],
                        len[i], out + pos + 3, cap - pos - 3);
        if (rc != CF_OK)
            return rc;
        pos += 3 + sz;
    }
    sodium_memzero(nonces, sizeof nonces);
    *outlen = pos;
    return CF_OK;
}

enum cf_err
records_blob_open(struct records *r, const struct records_blob *b,
                  const uint8_t *blob, size_t bloblen, uint32_t mask,
                  char (*values)[RECORD_FIELD_PT_MAX + 1], uint32_t *present)
{
    struct seal_ad ad = { b->compartment, b->kind, b->id, NULL };
    size_t pos = 0, n;
    enum cf_err rc;

    *present = 0;
    while (pos < bloblen) {
        unsigned i;
        size_t sz;

        if (bloblen - pos < 3)
            return CF_ERR_STORE;
        i = blob[pos];
        sz = (size_t)blob[pos + 1] << 8 | blob[pos + 2];
        if (i >= b->nfields || sz > bloblen - pos - 3)
            return CF_ERR_STORE;
        if (mask & (1u << i)) {
            ad.field = b->names[i];
            rc = seal_open(r->kr, &ad, blob + pos + 3, sz, (uint8_t *)values[i],
                           RECORD_FIELD_PT_MAX, &n);
            if (rc != CF_OK)
                return rc;
            values[i][n] = '\0';
            *present |= 1u << i;
        }
        pos += 3 + sz;
    }
    return CF_OK;
}

/* Seals the normalised values into row->fields under row->kv. */
static enum cf_err
seal_values(struct records *r, enum record_kind k, struct store_row *row,
            char (*norm)[RECORD_FIELD_PT_MAX + 1], const size_t *len,
            uint32_t present)
{
    const char *names[RECORD_MAX_FIELDS];
    struct records_blob b = { kinds[k].name, row->compartment, row->id, row->kv,
                              names, kinds[k].nfields };

    kind_names(k, names);
    return records_blob_seal(r, &b, norm, len, present, row->fields,
                             sizeof row->fields, &row->fields_len);
}

/* Opens the fields of row selected by mask into out. */
static enum cf_err
open_values(struct records *r, enum record_kind k, const struct store_row *row,
            uint32_t mask, struct record *out)
{
    const char *names[RECORD_MAX_FIELDS];
    struct records_blob b = { kinds[k].name, row->compartment, row->id, row->kv,
                              names, kinds[k].nfields };

    kind_names(k, names);
    return records_blob_open(r, &b, row->fields, row->fields_len, mask,
                             out->value, &out->present);
}

static void
fill_header(enum record_kind k, const struct store_row *row, struct record *out)
{
    int i;

    out->kind = k;
    records_id_format(row->id, out->id);
    for (i = 0; i < 2; i++) {
        if (row->has_parent[i])
            records_id_format(row->parent[i], out->parent[i]);
        else
            out->parent[i][0] = '\0';
    }
    memcpy(out->compartment, row->compartment, sizeof out->compartment);
    out->kv = row->kv;
}

/* The error a missing key turns into, named plainly. */
static enum cf_err
crypto_error(struct records *r, const char *compartment, struct cf_errmsg *em)
{
    if (!keyring_has(r->kr, compartment))
        return cf_fail(em, CF_ERR_CRYPTO,
                       "this keyring holds no key for compartment %s (%s): "
                       "the record belongs to another académie",
                       compartment, ids_academie_name(compartment) ? ids_academie_name(compartment) : "unknown");
    return cf_fail(em, CF_ERR_CRYPTO,
                   "a sealed field of compartment %s does not open: moved, damaged or forged",
                   compartment);
}

/* ---- add -------------------------------------------------------------- */

static enum cf_err
resolve_parents(struct records *r, const struct record_add *in,
                struct store_row *row, struct cf_errmsg *em)
{
    const struct kind_def *kd = &kinds[in->kind];
    struct pcache_entry p[2];
    int i;
    enum cf_err rc;

    for (i = 0; i < 2; i++) {
        row->has_parent[i] = 0;
        if (i >= kd->parents || in->parent[i] == NULL) {
            if (i < kd->parents && kd->parent_required[i])
                return cf_fail(em, CF_ERR_INPUT, "%s: a %s is required", kd->name,
                               kinds[kd->parent_kind[i]].name);
            continue;
        }
        if (records_id_parse(in->parent[i], row->parent[i]) != CF_OK)
            return cf_fail(em, CF_ERR_INPUT, "%s: %s id must be %d hex digits",
                           kd->name, kinds[kd->parent_kind[i]].name, RECORD_ID_HEX);
        rc = parent_info(r, kd->parent_kind[i], row->parent[i], &p[i]);
        if (rc == CF_ERR_NOTFOUND)
            return cf_fail(em, rc, "%s: no such %s", kd->name, kinds[kd->parent_kind[i]].name);
        if (rc != CF_OK)
            return cf_fail(em, rc, "%s: cannot read its %s", kd->name, kinds[kd->parent_kind[i]].name);
        row->has_parent[i] = 1;
    }
    if (kd->parents == 0) {
        char code[ACADEMIE_CODE_BYTES + 1];

        if (in->compartment == NULL)
            return cf_fail(em, CF_ERR_INPUT, "%s: an académie is required", kd->name);
        if (ids_parse_academie(in->compartment, strlen(in->compartment), code, em) != CF_OK)
            return CF_ERR_INPUT;
        memcpy(row->compartment, code, sizeof code);
    } else
        memcpy(row->compartment, p[0].compartment, sizeof row->compartment);
    /* A student's class must be in the student's establishment, a link's
     * guardian and student in one compartment. */
    if (row->has_parent[1]) {
        if (in->kind == REC_STUDENT &&
            memcmp(p[1].parent0, row->parent[0], STORE_ID_BYTES) != 0)
            return cf_fail(em, CF_ERR_INPUT, "student: the class belongs to another establishment");
        if (in->kind == REC_TEACHING &&
            memcmp(p[1].parent0, p[0].parent0, STORE_ID_BYTES) != 0)
            return cf_fail(em, CF_ERR_INPUT, "teaching: the class belongs to another establishment");
        if (strcmp(p[1].compartment, row->compartment) != 0)
            return cf_fail(em, CF_ERR_INPUT, "%s: parents in different compartments", kd->name);
    }
    if (!keyring_has(r->kr, row->compartment))
        return crypto_error(r, row->compartment, em);
    return CF_OK;
}

enum cf_err
records_add(struct records *r, const struct record_add *in,
            char id_out[RECORD_ID_HEX + 1], struct cf_errmsg *em)
{
    char (*norm)[RECORD_FIELD_PT_MAX + 1] = r->norm;
    size_t len[RECORD_MAX_FIELDS];
    const struct kind_def *kd;
    struct store_row *row = &r->row;
    uint32_t present = 0;
    size_t i;
    enum cf_err rc;

    if (in->kind >= REC_KIND_COUNT)
        return cf_fail(em, CF_ERR_INPUT, "unknown record kind");
    kd = &kinds[in->kind];
    memset(row->idx_len, 0, sizeof row->idx_len);
    for (i = 0; i < kd->nfields; i++) {
        if (in->value[i] == NULL) {
            if (kd->f[i].required)
                return cf_fail(em, CF_ERR_INPUT, "%s: %s is required", kd->name, kd->f[i].name);
            continue;
        }
        rc = field_normalize(&kd->f[i], in->value[i], norm[i], sizeof norm[i], &len[i], em);
        if (rc != CF_OK)
            return rc;
        present |= 1u << i;
    }
    if ((rc = resolve_parents(r, in, row, em)) != CF_OK)
        return rc;
    for (i = 0; i < kd->nfields; i++) {
        int slot = kd->f[i].idx_slot;

        if (slot < 0 || !(present & (1u << i)))
            continue;
        /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): norm[i] and len[i] are set for every bit of present */
        rc = seal_blind_index(r->kr, row->compartment, kd->f[i].name, norm[i],
                              len[i], row->idx[slot], kd->f[i].idx_bytes);
        if (rc != CF_OK)
            return crypto_error(r, row->compartment, em);
        row->idx_len[slot] = (uint8_t)kd->f[i].idx_bytes;
    }
    rand_take(r, row->id, sizeof row->id);
    row->kv = keyring_current_version(r->kr, row->compartment);
    row->created = row->updated = (int64_t)time(NULL);
    rc = seal_values(r, in->kind, row, norm, len, present);
    sodium_memzero(r->norm, sizeof r->norm);
    if (rc == CF_ERR_CRYPTO)
        return crypto_error(r, row->compartment, em);
    if (rc != CF_OK)
        return cf_fail(em, rc, "%s: %s", kd->name, cf_err_str(rc));
    if ((rc = store_row_insert(r->st, kd->table, row, em)) != CF_OK)
        return rc;
    pcache_put(r, in->kind, row);
    records_id_format(row->id, id_out);
    return CF_OK;
}

/* ---- change ----------------------------------------------------------- */

enum cf_err
records_update(struct records *r, const struct record_edit *in, struct cf_errmsg *em)
{
    char (*norm)[RECORD_FIELD_PT_MAX + 1] = r->norm;
    size_t len[RECORD_MAX_FIELDS] = { 0 };
    const struct kind_def *kd;
    struct store_row *row = &r->row;
    struct record *old = &r->rec;
    uint8_t bin[STORE_ID_BYTES];
    uint32_t present, all;
    size_t i;
    enum cf_err rc;

    if (in->kind >= REC_KIND_COUNT)
        return cf_fail(em, CF_ERR_INPUT, "unknown record kind");
    kd = &kinds[in->kind];
    all = (1u << kd->nfields) - 1;
    if ((in->set | in->clear) & ~all || (in->set & in->clear))
        return cf_fail(em, CF_ERR_INPUT, "%s: no such field", kd->name);
    if (in->set_parent1 && in->kind != REC_STUDENT)
        return cf_fail(em, CF_ERR_INPUT, "%s: only a pupil changes class", kd->name);
    for (i = 0; i < kd->nfields; i++)
        if ((in->clear & (1u << i)) && kd->f[i].required)
            return cf_fail(em, CF_ERR_INPUT, "%s: %s is required", kd->name, kd->f[i].name);
    /* the new values first: bad input is refused before anything is read */
    for (i = 0; i < kd->nfields; i++) {
        if (!(in->set & (1u << i)))
            continue;
        if (in->value[i] == NULL)
            return cf_fail(em, CF_ERR_INPUT, "%s: %s has no value", kd->name, kd->f[i].name);
        rc = field_normalize(&kd->f[i], in->value[i], norm[i], sizeof norm[i], &len[i], em);
        if (rc != CF_OK)
            goto out;
    }
    if (records_id_parse(in->id, bin) != CF_OK) {
        rc = cf_fail(em, CF_ERR_NOTFOUND, "no such %s", kd->name);
        goto out;
    }
    rc = store_row_get(r->st, kd->table, bin, row);
    if (rc != CF_OK) {
        rc = cf_fail(em, rc, rc == CF_ERR_NOTFOUND ? "no such %s" : "%s: cannot read the store",
                     kd->name);
        goto out;
    }
    /* the values kept: opened to be sealed again under the current key */
    rc = open_values(r, in->kind, row, all & ~in->set & ~in->clear, old);
    if (rc != CF_OK) {
        rc = rc == CF_ERR_CRYPTO ? crypto_error(r, row->compartment, em)
                                 : cf_fail(em, rc, "%s: stored record is malformed", kd->name);
        goto out;
    }
    present = (old->present & ~in->set & ~in->clear) | in->set;
    for (i = 0; i < kd->nfields; i++)
        if ((old->present & (1u << i)) && !(in->set & (1u << i)) && !(in->clear & (1u << i))) {
            len[i] = strlen(old->value[i]);
            memcpy(norm[i], old->value[i], len[i] + 1);
        }
    for (i = 0; i < kd->nfields; i++) {
        int slot = kd->f[i].idx_slot;

        if (slot < 0)
            continue;
        if (!(present & (1u << i)))
            row->idx_len[slot] = 0;
        else if (in->set & (1u << i)) {
            rc = seal_blind_index(r->kr, row->compartment, kd->f[i].name, norm[i], len[i],
                                  row->idx[slot], kd->f[i].idx_bytes);
            if (rc != CF_OK) {
                rc = crypto_error(r, row->compartment, em);
                goto out;
            }
            row->idx_len[slot] = (uint8_t)kd->f[i].idx_bytes;
        }
    }
    if (in->set_parent1) {
        struct pcache_entry p;

        row->has_parent[1] = 0;
        if (in->parent1 != NULL) {
            if (records_id_parse(in->parent1, row->parent[1]) != CF_OK) {
                rc = cf_fail(em, CF_ERR_NOTFOUND, "%s: no such class", kd->name);
                goto out;
            }
            rc = parent_info(r, REC_CLASS, row->parent[1], &p);
            if (rc != CF_OK) {
                rc = cf_fail(em, rc, rc == CF_ERR_NOTFOUND ? "%s: no such class"
                                                           : "%s: cannot read its class", kd->name);
                goto out;
            }
            if (memcmp(p.parent0, row->parent[0], STORE_ID_BYTES) != 0) {
                rc = cf_fail(em, CF_ERR_INPUT, "student: the class belongs to another establishment");
                goto out;
            }
            row->has_parent[1] = 1;
        }
    }
    row->kv = keyring_current_version(r->kr, row->compartment);
    row->updated = (int64_t)time(NULL);
    rc = seal_values(r, in->kind, row, norm, len, present);
    if (rc == CF_ERR_CRYPTO)
        rc = crypto_error(r, row->compartment, em);
    else if (rc != CF_OK)
        rc = cf_fail(em, rc, "%s: %s", kd->name, cf_err_str(rc));
    else if ((rc = store_row_update(r->st, kd->table, row)) == CF_ERR_EXISTS)
        rc = cf_fail(em, rc, "%s: this value is already held by another record", kd->name);
    else if (rc != CF_OK)
        rc = cf_fail(em, rc, "%s: cannot write the store", kd->name);
    else
        pcache_put(r, in->kind, row);
out:
    sodium_memzero(r->norm, sizeof r->norm);
    sodium_memzero(old, sizeof *old);
    return rc;
}

enum cf_err
records_delete(struct records *r, enum record_kind k, const char *id, struct cf_errmsg *em)
{
    uint8_t bin[STORE_ID_BYTES];
    enum cf_err rc;

    if (k != REC_GUARDIAN_LINK)
        return cf_fail(em, CF_ERR_INPUT, "only guardian links are deleted");
    if (records_id_parse(id, bin) != CF_OK)
        return cf_fail(em, CF_ERR_NOTFOUND, "no such %s", kinds[k].name);
    rc = store_row_delete(r->st, kinds[k].table, bin);
    if (rc == CF_ERR_NOTFOUND)
        return cf_fail(em, rc, "no such %s", kinds[k].name);
    if (rc != CF_OK)
        return cf_fail(em, rc, "%s: cannot write the store", kinds[k].name);
    return CF_OK;
}

/* ---- read ------------------------------------------------------------- */

static enum cf_err
deliver(struct records *r, enum record_kind k, const struct store_row *row,
        uint32_t mask, struct record *out, struct cf_errmsg *em)
{
    enum cf_err rc;

    fill_header(k, row, out);
    rc = open_values(r, k, row, mask, out);
    if (rc == CF_ERR_CRYPTO)
        return crypto_error(r, row->compartment, em);
    if (rc != CF_OK)
        return cf_fail(em, rc, "%s: stored record is malformed", kinds[k].name);
    return CF_OK;
}

enum cf_err
records_get(struct records *r, enum record_kind k, const char *id,
            uint32_t mask, struct record *out, struct cf_errmsg *em)
{
    uint8_t bin[STORE_ID_BYTES];
    enum cf_err rc;

    if (k >= REC_KIND_COUNT)
        return cf_fail(em, CF_ERR_INPUT, "unknown record kind");
    if (records_id_parse(id, bin) != CF_OK)
        return cf_fail(em, CF_ERR_INPUT, "%s id must be %d hex digits", kinds[k].name, RECORD_ID_HEX);
    rc = store_row_get(r->st, kinds[k].table, bin, &r->row);
    if (rc == CF_ERR_NOTFOUND)
        return cf_fail(em, rc, "no such %s", kinds[k].name);
    if (rc != CF_OK)
        return cf_fail(em, rc, "%s: cannot read the store", kinds[k].name);
    return deliver(r, k, &r->row, mask, out, em);
}

enum cf_err
records_get_kept(struct records *r, enum record_kind k, const char *id, struct record *out,
                 struct cf_errmsg *em)
{
    uint8_t bin[STORE_ID_BYTES];
    enum cf_err rc;

    r->kept_kind = REC_KIND_COUNT;
    if (k >= REC_KIND_COUNT)
        return cf_fail(em, CF_ERR_INPUT, "unknown record kind");
    if (records_id_parse(id, bin) != CF_OK)
        return cf_fail(em, CF_ERR_INPUT, "%s id must be %d hex digits", kinds[k].name, RECORD_ID_HEX);
    rc = store_row_get(r->st, kinds[k].table, bin, &r->kept);
    if (rc == CF_ERR_NOTFOUND)
        return cf_fail(em, rc, "no such %s", kinds[k].name);
    if (rc != CF_OK)
        return cf_fail(em, rc, "%s: cannot read the store", kinds[k].name);
    r->kept_kind = k;
    return deliver(r, k, &r->kept, 0, out, em);
}

enum cf_err
records_open_kept(struct records *r, uint32_t mask, struct record *out, struct cf_errmsg *em)
{
    char id[RECORD_ID_HEX + 1];

    if (r->kept_kind != out->kind)
        return cf_fail(em, CF_ERR_INPUT, "no record kept");
    records_id_format(r->kept.id, id);
    if (strcmp(id, out->id) != 0)
        return cf_fail(em, CF_ERR_INPUT, "another record was kept since");
    return deliver(r, out->kind, &r->kept, mask, out, em);
}

enum cf_err
records_find(struct records *r, enum record_kind k, const char *field,
             const char *value, uint32_t mask, struct record *out,
             struct cf_errmsg *em)
{
    uint8_t digests[KEYRING_MAX_COMPARTMENTS][BIDX_FULL];
    char norm[RECORD_FIELD_PT_MAX + 1];
    const struct field_def *fd;
    size_t len, i, n = 0;
    int fi;
    enum cf_err rc;

    if (k >= REC_KIND_COUNT)
        return cf_fail(em, CF_ERR_INPUT, "unknown record kind");
    fi = records_field_index(k, field);
    if (fi < 0 || kinds[k].f[fi].idx_slot < 0)
        return cf_fail(em, CF_ERR_INPUT, "%s: cannot be looked up by %s", kinds[k].name, field);
    fd = &kinds[k].f[fi];
    if ((rc = field_normalize(fd, value, norm, sizeof norm, &len, em)) != CF_OK)
        return rc;
    /* The same value has a different digest in each compartment. */
    for (i = 0; i < keyring_count(r->kr) && n < KEYRING_MAX_COMPARTMENTS; i++)
        /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): norm[i] and len[i] are set for every bit of present */
        if (seal_blind_index(r->kr, keyring_code_at(r->kr, i), fd->name, norm, len,
                             digests[n], fd->idx_bytes) == CF_OK)
            n++;
    sodium_memzero(norm, sizeof norm);
    rc = store_row_find(r->st, kinds[k].table, fd->idx_slot, &digests[0][0],
                        fd->idx_bytes, n, &r->row);
    if (rc == CF_ERR_NOTFOUND)
        return cf_fail(em, rc, "no %s with this %s", kinds[k].name, field);
    if (rc != CF_OK)
        return cf_fail(em, rc, "%s: cannot read the store", kinds[k].name);
    return deliver(r, k, &r->row, mask, out, em);
}

struct visit_ctx {
    struct records *r;
    enum record_kind k;
    uint32_t mask;
    records_fn fn;
    void *arg;
    struct cf_errmsg *em;
    enum cf_err rc;
    struct record rec;
};

static int
visit_row(void *arg, const struct store_row *row)
{
    struct visit_ctx *c = arg;

    c->rc = deliver(c->r, c->k, row, c->mask, &c->rec, c->em);
    if (c->rc != CF_OK)
        return 1;
    return c->fn(c->arg, &c->rec);
}

enum cf_err
records_children(struct records *r, enum record_kind k, int slot,
                 const char *parent_id, size_t limit, uint32_t mask,
                 records_fn fn, void *arg, struct cf_errmsg *em)
{
    return records_children_page(r, k, slot, parent_id, 0, limit, mask, fn, arg, em);
}

enum cf_err
records_children_page(struct records *r, enum record_kind k, int slot,
                      const char *parent_id, size_t offset, size_t limit,
                      uint32_t mask, records_fn fn, void *arg, struct cf_errmsg *em)
{
    uint8_t bin[STORE_ID_BYTES];
    struct visit_ctx *c;
    enum cf_err rc;

    if (k >= REC_KIND_COUNT || slot < 0 || slot >= kinds[k].parents)
        return cf_fail(em, CF_ERR_INPUT, "%s has no such parent", records_kind_name(k));
    if (records_id_parse(parent_id, bin) != CF_OK)
        return cf_fail(em, CF_ERR_INPUT, "%s id must be %d hex digits",
                       kinds[kinds[k].parent_kind[slot]].name, RECORD_ID_HEX);
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "out of memory");
    *c = (struct visit_ctx){ .r = r, .k = k, .mask = mask, .fn = fn, .arg = arg, .em = em };
    rc = store_rows_by_parent(r->st, kinds[k].table, slot, bin, offset, limit, visit_row, c);
    if (rc == CF_OK)
        rc = c->rc;
    else
        rc = cf_fail(em, rc, "%s: cannot read the store", kinds[k].name);
    sodium_memzero(&c->rec, sizeof c->rec);
    free(c);
    return rc;
}

enum cf_err
records_establishments(struct records *r, size_t limit, records_fn fn,
                       void *arg, struct cf_errmsg *em)
{
    struct visit_ctx *c;
    enum cf_err rc;

    c = calloc(1, sizeof *c);
    if (c == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "out of memory");
    *c = (struct visit_ctx){ .r = r, .k = REC_ESTABLISHMENT, .mask = RECORD_ALL_FIELDS,
                             .fn = fn, .arg = arg, .em = em };
    rc = store_rows_all(r->st, STORE_ESTABLISHMENTS, limit, visit_row, c);
    if (rc == CF_OK)
        rc = c->rc;
    else
        rc = cf_fail(em, rc, "establishments: cannot read the store");
    free(c);
    return rc;
}

/* ---- rotation --------------------------------------------------------- */

enum cf_err
records_rotate(struct records *r, const char *compartment, uint32_t *version,
               struct cf_errmsg *em)
{
    uint8_t wrapped[KEYRING_WRAPPED_BYTES];
    uint32_t v;
    enum cf_err rc;

    if (!keyring_has(r->kr, compartment))
        return crypto_error(r, compartment, em);
    v = keyring_current_version(r->kr, compartment) + 1;
    if (v > KEYRING_MAX_VERSIONS)
        return cf_fail(em, CF_ERR_LIMIT, "compartment %s: at most %d key versions",
                       compartment, KEYRING_MAX_VERSIONS);
    if (store_begin(r->st, STORE_TX_DURABLE) != CF_OK)
        return cf_fail(em, CF_ERR_STORE, "store: cannot begin a transaction");
    rc = keyring_data_key_new(r->kr, compartment, v, wrapped);
    if (rc == CF_OK)
        rc = store_datakey_put(r->st, compartment, v, wrapped, sizeof wrapped);
    if (rc != CF_OK) {
        store_rollback(r->st);
        return cf_fail(em, rc, "compartment %s: cannot add key version %u: %s",
                       compartment, v, cf_err_str(rc));
    }
    if ((rc = store_commit(r->st, em)) != CF_OK)
        return rc;
    *version = v;
    return CF_OK;
}

struct batch {
    struct store_row *rows;
    size_t n, cap;
};

static int
collect_row(void *arg, const struct store_row *row)
{
    struct batch *b = arg;

    if (b->n >= b->cap)
        return 1;
    b->rows[b->n++] = *row;
    return 0;
}

/* Opens every field of row and seals it again under version kv. */
static enum cf_err
reseal_row(struct records *r, enum record_kind k, struct store_row *row,
           uint32_t kv)
{
    struct record *rec = &r->rec;
    size_t len[RECORD_MAX_FIELDS], i;
    enum cf_err rc;

    rc = open_values(r, k, row, RECORD_ALL_FIELDS, rec);
    for (i = 0; rc == CF_OK && i < kinds[k].nfields; i++)
        if (rec->present & (1u << i))
            len[i] = strlen(rec->value[i]);
    if (rc == CF_OK) {
        row->kv = kv;
        row->updated = (int64_t)time(NULL);
        rc = seal_values(r, k, row, rec->value, len, rec->present);
    }
    sodium_memzero(rec, sizeof *rec);
    return rc;
}

enum cf_err
records_reseal(struct records *r, const char *compartment, size_t batch,
               size_t *done, struct cf_errmsg *em)
{
    struct batch b = { 0 };
    uint32_t kv = keyring_current_version(r->kr, compartment);
    enum cf_err rc = CF_OK;
    int k;
    size_t i;

    *done = 0;
    if (kv == 0)
        return crypto_error(r, compartment, em);
    if (batch == 0 || batch > RESEAL_BATCH_MAX)
        return cf_fail(em, CF_ERR_INPUT, "batch: must be 1 to %d", RESEAL_BATCH_MAX);
    b.rows = malloc(batch * sizeof *b.rows);
    if (b.rows == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "out of memory");
    b.cap = batch;
    if (store_begin(r->st, STORE_TX_NORMAL) != CF_OK) {
        free(b.rows);
        return cf_fail(em, CF_ERR_STORE, "store: cannot begin a transaction");
    }
    for (k = 0; k < REC_KIND_COUNT && rc == CF_OK && b.n < batch; k++) {
        size_t first = b.n;

        rc = store_rows_older(r->st, kinds[k].table, compartment, kv, batch - b.n,
                              collect_row, &b);
        for (i = first; rc == CF_OK && i < b.n; i++) {
            rc = reseal_row(r, (enum record_kind)k, &b.rows[i], kv);
            if (rc == CF_OK)
                rc = store_row_update(r->st, kinds[k].table, &b.rows[i]);
        }
    }
    if (rc == CF_OK)
        rc = store_commit(r->st, em);
    else
        store_rollback(r->st);
    *done = rc == CF_OK ? b.n : 0;
    sodium_memzero(b.rows, batch * sizeof *b.rows);
    free(b.rows);
    if (rc == CF_ERR_CRYPTO)
        return crypto_error(r, compartment, em);
    if (rc != CF_OK)
        return cf_fail(em, rc, "re-seal of compartment %s failed: %s", compartment, cf_err_str(rc));
    return CF_OK;
}

enum cf_err
records_count_version(struct records *r, const char *compartment, uint32_t kv,
                      uint64_t *count)
{
    uint64_t total = 0, n;
    int k;
    enum cf_err rc;

    for (k = 0; k < REC_KIND_COUNT; k++) {
        if ((rc = store_count_version(r->st, kinds[k].table, compartment, kv, &n)) != CF_OK)
            return rc;
        total += n;
    }
    *count = total;
    return CF_OK;
}

/* ---- canaries --------------------------------------------------------- */

/* One sealed field holds up to this many ids (hex and commas within
 * RECORD_FIELD_PT_MAX). */
#define CANARY_IDS_PER_ROW 31

static const char *const canary_fields[] = { "ids" };

enum cf_err
records_canary_register(struct records *r, const char *compartment,
                        char (*ids)[RECORD_ID_HEX + 1], size_t n, struct cf_errmsg *em)
{
    char (*v)[RECORD_FIELD_PT_MAX + 1];
    uint8_t rowid[STORE_ID_BYTES];
    struct records_blob b = { "canary_set", compartment, rowid, 0, canary_fields, 1 };
    size_t i, k, len[1];
    enum cf_err rc = CF_OK;

    if (!keyring_has(r->kr, compartment))
        return crypto_error(r, compartment, em);
    v = calloc(1, sizeof *v);
    if (v == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "out of memory");
    for (i = 0; i < n && rc == CF_OK; i += CANARY_IDS_PER_ROW) {
        size_t o = 0;

        for (k = i; k < n && k < i + CANARY_IDS_PER_ROW; k++)
            o += (size_t)snprintf(v[0] + o, sizeof v[0] - o, "%s%s", o ? "," : "", ids[k]);
        len[0] = o;
        rand_take(r, rowid, sizeof rowid);
        b.kv = keyring_current_version(r->kr, compartment);
        rc = records_blob_seal(r, &b, v, len, 1u, r->row.fields, sizeof r->row.fields,
                               &r->row.fields_len);
        if (rc == CF_OK)
            rc = store_canary_put(r->st, rowid, compartment, b.kv, r->row.fields,
                                  r->row.fields_len);
    }
    free(v);
    if (rc != CF_OK)
        return cf_fail(em, rc, "canaries: cannot record the list: %s", cf_err_str(rc));
    return CF_OK;
}

struct canary_ctx {
    struct records *r;
    records_canary_fn fn;
    void *arg;
    enum cf_err rc;
};

static int
open_canaries(void *arg, const uint8_t id[STORE_ID_BYTES], const char *compartment,
              uint32_t kv, const uint8_t *fields, size_t len)
{
    struct canary_ctx *c = arg;
    struct records_blob b = { "canary_set", compartment, id, kv, canary_fields, 1 };
    char (*v)[RECORD_FIELD_PT_MAX + 1];
    uint32_t present = 0;
    uint8_t bin[STORE_ID_BYTES];
    char *p, *comma;

    if (!keyring_has(c->r->kr, compartment))
        return 0;                 /* another académie's canaries: not ours to check */
    v = calloc(1, sizeof *v);
    if (v == NULL) {
        c->rc = CF_ERR_NOMEM;
        return 1;
    }
    c->rc = records_blob_open(c->r, &b, fields, len, 1u, v, &present);
    for (p = v[0]; c->rc == CF_OK && present && *p != '\0'; p = comma + 1) {
        comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        if (records_id_parse(p, bin) == CF_OK && c->fn(c->arg, bin) != 0)
            break;
        if (comma == NULL)
            break;
    }
    free(v);
    return c->rc != CF_OK;
}

enum cf_err
records_canaries(struct records *r, records_canary_fn fn, void *arg)
{
    struct canary_ctx c = { r, fn, arg, CF_OK };
    enum cf_err rc = store_canaries(r->st, open_canaries, &c);

    return rc != CF_OK ? rc : c.rc;
}
