/*
 * keyring.c - key file loading and writing, per-compartment keys, data-key
 * wrapping.
 *
 * File format (text, so an operator can see which compartments a file holds
 * without tools; the key lines are secrets):
 *
 *     coffre-keyring 1
 *     node <32 hex>
 *     audit-epoch <decimal>
 *     audit-seed <64 hex>
 *     kek <académie code> <64 hex>        (one per compartment)
 *     end <64 hex: BLAKE2b-256 of every byte before this line>
 *
 * The end line makes a truncated or edited file fail to load with a plain
 * message instead of yielding wrong keys.  Never logs or prints a key.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "bounds.h"
#include "keyring.h"
#include "banned.h"

#define KR_MAGIC "coffre-keyring 1\n"
#define KR_INDEX_KDF_ID 1
#define KR_INDEX_KDF_CTX "cfblind1"       /* crypto_kdf context: 8 bytes */
#define KR_WRAP_LABEL "coffre-datakey-v1"

struct compartment {
    char code[ACADEMIE_CODE_BYTES + 1];
    uint8_t *kek;           /* KEYRING_KEY_BYTES, sodium_malloc */
    uint8_t *index_key;     /* derived from kek */
    uint8_t *dkeys;         /* KEYRING_MAX_VERSIONS keys, on first use */
    uint8_t *present;       /* one flag per version */
    uint32_t current;
};

struct keyring {
    char path[4096];        /* the file it was loaded from */
    char node[33];
    uint64_t epoch;
    uint8_t *seed;
    int seed_dropped;       /* this copy no longer holds the audit seed */
    size_t n;
    struct compartment comp[KEYRING_MAX_COMPARTMENTS];
};

static struct keyring *
kr_alloc(void)
{
    struct keyring *kr = calloc(1, sizeof *kr);

    if (kr == NULL)
        return NULL;
    kr->seed = sodium_malloc(KEYRING_SEED_BYTES);
    if (kr->seed == NULL) {
        free(kr);
        return NULL;
    }
    return kr;
}

void
keyring_free(struct keyring *kr)
{
    size_t i;

    if (kr == NULL)
        return;
    for (i = 0; i < kr->n; i++) {
        sodium_free(kr->comp[i].kek);          /* sodium_free zeroes */
        sodium_free(kr->comp[i].index_key);
        sodium_free(kr->comp[i].dkeys);
        free(kr->comp[i].present);
    }
    sodium_free(kr->seed);
    free(kr);
}

/* Adds a compartment with the given KEK (copied) and derives its index key. */
static enum cf_err
kr_add(struct keyring *kr, const char *code, const uint8_t *kek)
{
    struct compartment *c;

    if (kr->n >= KEYRING_MAX_COMPARTMENTS)
        return CF_ERR_LIMIT;
    /* compartments are académie codes: two digits */
    if (strlen(code) != ACADEMIE_CODE_BYTES || code[0] < '0' || code[0] > '9' ||
        code[1] < '0' || code[1] > '9')
        return CF_ERR_INPUT;
    if (keyring_has(kr, code))
        return CF_ERR_EXISTS;
    c = &kr->comp[kr->n];
    memset(c, 0, sizeof *c);
    memcpy(c->code, code, ACADEMIE_CODE_BYTES + 1);
    c->kek = sodium_malloc(KEYRING_KEY_BYTES);
    c->index_key = sodium_malloc(KEYRING_KEY_BYTES);
    if (c->kek == NULL || c->index_key == NULL) {
        sodium_free(c->kek);
        sodium_free(c->index_key);
        return CF_ERR_NOMEM;
    }
    memcpy(c->kek, kek, KEYRING_KEY_BYTES);
    crypto_kdf_derive_from_key(c->index_key, KEYRING_KEY_BYTES,
                               KR_INDEX_KDF_ID, KR_INDEX_KDF_CTX, c->kek);
    kr->n++;
    return CF_OK;
}

static struct compartment *
kr_find(const struct keyring *kr, const char *code)
{
    size_t i;

    if (kr == NULL || code == NULL)
        return NULL;
    for (i = 0; i < kr->n; i++)
        if (strcmp(kr->comp[i].code, code) == 0)
            return (struct compartment *)&kr->comp[i];
    return NULL;
}

int
keyring_has(const struct keyring *kr, const char *code)
{
    return kr_find(kr, code) != NULL;
}

size_t
keyring_count(const struct keyring *kr)
{
    return kr->n;
}

const char *
keyring_code_at(const struct keyring *kr, size_t i)
{
    return i < kr->n ? kr->comp[i].code : NULL;
}

const char *
keyring_node_id(const struct keyring *kr)
{
    return kr->node;
}

uint64_t
keyring_audit_epoch(const struct keyring *kr)
{
    return kr->epoch;
}

const uint8_t *
keyring_audit_seed(const struct keyring *kr)
{
    return kr->seed_dropped ? NULL : kr->seed;
}

void
keyring_drop_audit_seed(struct keyring *kr)
{
    sodium_memzero(kr->seed, KEYRING_SEED_BYTES);
    kr->seed_dropped = 1;
}

/* ---- writing ---------------------------------------------------------- */

/* Appends to a bounded buffer; returns -1 when it would overflow. */
static int
buf_add(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
    if (*len + n >= cap)
        return -1;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
    return 0;
}

static int
buf_hexline(char *buf, size_t cap, size_t *len, const char *prefix,
            const uint8_t *bin, size_t binlen)
{
    char hex[2 * 64 + 1];

    if (binlen > 64)
        return -1;
    sodium_bin2hex(hex, sizeof hex, bin, binlen);
    if (buf_add(buf, cap, len, prefix, strlen(prefix)) != 0 ||
        buf_add(buf, cap, len, hex, 2 * binlen) != 0 ||
        buf_add(buf, cap, len, "\n", 1) != 0) {
        sodium_memzero(hex, sizeof hex);
        return -1;
    }
    sodium_memzero(hex, sizeof hex);
    return 0;
}

/* Serialises the given compartments of kr (all when only == NULL). */
static int
kr_format(const struct keyring *kr, const char *only, char *buf, size_t cap,
          size_t *len)
{
    char line[64];
    uint8_t sum[32];
    size_t i;

    *len = 0;
    if (buf_add(buf, cap, len, KR_MAGIC, strlen(KR_MAGIC)) != 0)
        return -1;
    snprintf(line, sizeof line, "node %s\naudit-epoch %" PRIu64 "\n",
             kr->node, kr->epoch);
    if (buf_add(buf, cap, len, line, strlen(line)) != 0 ||
        buf_hexline(buf, cap, len, "audit-seed ", kr->seed, KEYRING_SEED_BYTES) != 0)
        return -1;
    for (i = 0; i < kr->n; i++) {
        if (only != NULL && strcmp(only, kr->comp[i].code) != 0)
            continue;
        snprintf(line, sizeof line, "kek %s ", kr->comp[i].code);
        if (buf_hexline(buf, cap, len, line, kr->comp[i].kek, KEYRING_KEY_BYTES) != 0)
            return -1;
    }
    crypto_generichash(sum, sizeof sum, (const uint8_t *)buf, *len, NULL, 0);
    return buf_hexline(buf, cap, len, "end ", sum, sizeof sum);
}

static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void
fsync_dir_of(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    int fd;

    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/*
 * Writes buf to path, mode 0600, whole or not at all, never replacing an
 * existing file: write a temporary, fsync, then link(2), which fails with
 * EEXIST instead of overwriting.
 */
static enum cf_err
write_new_file(const char *path, const char *buf, size_t len,
               struct cf_errmsg *em)
{
    char tmp[4096];
    int fd, rc;

    if (snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof tmp)
        return cf_fail(em, CF_ERR_INPUT, "keyring '%s': path too long", path);
    if (access(path, F_OK) == 0)
        return cf_fail(em, CF_ERR_EXISTS, "keyring '%s' already exists; refusing to overwrite", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return cf_fail(em, CF_ERR_IO, "keyring '%s': cannot create: %s", path, strerror(errno));
    if (write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
        rc = errno;
        close(fd);
        unlink(tmp);
        return cf_fail(em, CF_ERR_IO, "keyring '%s': cannot write: %s", path, strerror(rc));
    }
    close(fd);
    if (link(tmp, path) != 0) {
        rc = errno;
        unlink(tmp);
        if (rc == EEXIST)
            return cf_fail(em, CF_ERR_EXISTS, "keyring '%s' already exists; refusing to overwrite", path);
        return cf_fail(em, CF_ERR_IO, "keyring '%s': cannot create: %s", path, strerror(rc));
    }
    unlink(tmp);
    fsync_dir_of(path);
    return CF_OK;
}

static enum cf_err
kr_write(const struct keyring *kr, const char *only, const char *path,
         struct cf_errmsg *em)
{
    char *buf;
    size_t len;
    enum cf_err rc;

    buf = sodium_malloc(KEYRING_FILE_MAX_BYTES);
    if (buf == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "keyring: out of memory");
    if (kr_format(kr, only, buf, KEYRING_FILE_MAX_BYTES, &len) != 0)
        rc = cf_fail(em, CF_ERR_LIMIT, "keyring '%s': too many compartments", path);
    else
        rc = write_new_file(path, buf, len, em);
    sodium_free(buf);
    return rc;
}

static void
new_node_id(char node[33])
{
    uint8_t id[16];

    randombytes_buf(id, sizeof id);
    sodium_bin2hex(node, 33, id, sizeof id);
}

enum cf_err
keyring_create(const char *path, const char *const *codes, size_t n,
               uint8_t seed_out[KEYRING_SEED_BYTES], struct cf_errmsg *em)
{
    struct keyring *kr;
    uint8_t *kek;
    enum cf_err rc = CF_OK;
    size_t i;

    if (n == 0)
        return cf_fail(em, CF_ERR_INPUT, "keyring: at least one --academie is required");
    if (n > KEYRING_MAX_COMPARTMENTS)
        return cf_fail(em, CF_ERR_LIMIT, "keyring: at most %d compartments", KEYRING_MAX_COMPARTMENTS);
    kr = kr_alloc();
    kek = sodium_malloc(KEYRING_KEY_BYTES);
    if (kr == NULL || kek == NULL) {
        keyring_free(kr);
        sodium_free(kek);
        return cf_fail(em, CF_ERR_NOMEM, "keyring: out of memory");
    }
    new_node_id(kr->node);
    randombytes_buf(kr->seed, KEYRING_SEED_BYTES);
    for (i = 0; i < n && rc == CF_OK; i++) {
        randombytes_buf(kek, KEYRING_KEY_BYTES);
        rc = kr_add(kr, codes[i], kek);
        if (rc == CF_ERR_EXISTS)
            rc = cf_fail(em, CF_ERR_INPUT, "académie '%s' given twice", codes[i]);
        else if (rc == CF_ERR_INPUT)
            rc = cf_fail(em, rc, "académie code '%s' must be %d digits", codes[i], ACADEMIE_CODE_BYTES);
        else if (rc != CF_OK)
            rc = cf_fail(em, rc, "keyring: %s", cf_err_str(rc));
    }
    sodium_free(kek);
    if (rc == CF_OK)
        rc = kr_write(kr, NULL, path, em);
    if (rc == CF_OK)
        memcpy(seed_out, kr->seed, KEYRING_SEED_BYTES);
    keyring_free(kr);
    return rc;
}

enum cf_err
keyring_export(const struct keyring *kr, const char *code, const char *path,
               uint8_t seed_out[KEYRING_SEED_BYTES], struct cf_errmsg *em)
{
    struct keyring *out;
    const struct compartment *c = kr_find(kr, code);
    enum cf_err rc;

    if (c == NULL)
        return cf_fail(em, CF_ERR_NOTFOUND, "keyring holds no compartment '%s'", code);
    out = kr_alloc();
    if (out == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "keyring: out of memory");
    new_node_id(out->node);
    randombytes_buf(out->seed, KEYRING_SEED_BYTES);
    rc = kr_add(out, c->code, c->kek);
    if (rc == CF_OK)
        rc = kr_write(out, NULL, path, em);
    else
        rc = cf_fail(em, rc, "keyring: %s", cf_err_str(rc));
    if (rc == CF_OK)
        memcpy(seed_out, out->seed, KEYRING_SEED_BYTES);
    keyring_free(out);
    return rc;
}

/* ---- loading ---------------------------------------------------------- */

static enum cf_err
read_file(const char *path, char *buf, size_t cap, size_t *len,
          struct cf_errmsg *em)
{
    struct stat sb;
    int fd;
    ssize_t r;
    size_t n = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cf_fail(em, errno == ENOENT ? CF_ERR_NOTFOUND : CF_ERR_IO,
                       "keyring '%s': cannot open: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return cf_fail(em, CF_ERR_IO, "keyring '%s': not a regular file", path);
    }
    if ((sb.st_mode & 077) != 0) {
        close(fd);
        return cf_fail(em, CF_ERR_DENIED,
                       "keyring '%s': readable by others (mode %03o); chmod 600 it",
                       path, (unsigned)(sb.st_mode & 0777));
    }
    /* Read one byte more than allowed, to tell "exactly at the limit" from
     * "over it"; buf has room for the limit plus a terminating NUL. */
    while (n < cap) {
        r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            close(fd);
            return cf_fail(em, CF_ERR_IO, "keyring '%s': cannot read: %s", path, strerror(errno));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > KEYRING_FILE_MAX_BYTES)
        return cf_fail(em, CF_ERR_LIMIT, "keyring '%s': larger than %d bytes", path, KEYRING_FILE_MAX_BYTES);
    buf[n] = '\0';
    *len = n;
    return CF_OK;
}

static int
hex_exact(const char *hex, size_t hexlen, uint8_t *bin, size_t binlen)
{
    size_t got;

    if (hexlen != 2 * binlen)
        return -1;
    if (sodium_hex2bin(bin, binlen, hex, hexlen, NULL, &got, NULL) != 0 ||
        got != binlen)
        return -1;
    return 0;
}

/* Parses one line (without its newline) into kr.  Returns an error text. */
/* Header lines seen, each required exactly once. */
#define SEEN_NODE  1
#define SEEN_EPOCH 2
#define SEEN_SEED  4
#define SEEN_ALL   7

static const char *
parse_line(struct keyring *kr, const char *line, size_t len, uint8_t *scratch,
           int *seen)
{
    char code[ACADEMIE_CODE_BYTES + 1];
    uint8_t node[16];
    int which = 0;

    if (len > 5 && memcmp(line, "node ", 5) == 0)
        which = SEEN_NODE;
    else if (len > 12 && memcmp(line, "audit-epoch ", 12) == 0)
        which = SEEN_EPOCH;
    else if (len > 11 && memcmp(line, "audit-seed ", 11) == 0)
        which = SEEN_SEED;
    if (which != 0) {
        if (*seen & which)
            return "line repeated";
        *seen |= which;
    }
    if (which == SEEN_NODE) {
        if (hex_exact(line + 5, len - 5, node, sizeof node) != 0)
            return "bad node id";
        memcpy(kr->node, line + 5, 32);
        kr->node[32] = '\0';
        return NULL;
    }
    if (which == SEEN_EPOCH) {
        char *end;
        char num[24];

        if (len - 12 >= sizeof num)
            return "bad audit epoch";
        memcpy(num, line + 12, len - 12);
        num[len - 12] = '\0';
        errno = 0;
        kr->epoch = strtoull(num, &end, 10);
        if (errno != 0 || *end != '\0' || num[0] < '0' || num[0] > '9')
            return "bad audit epoch";
        return NULL;
    }
    if (which == SEEN_SEED)
        return hex_exact(line + 11, len - 11, kr->seed, KEYRING_SEED_BYTES) != 0
                   ? "bad audit seed" : NULL;
    if (len == 4 + ACADEMIE_CODE_BYTES + 1 + 2 * KEYRING_KEY_BYTES &&
        memcmp(line, "kek ", 4) == 0 && line[4 + ACADEMIE_CODE_BYTES] == ' ') {
        memcpy(code, line + 4, ACADEMIE_CODE_BYTES);
        code[ACADEMIE_CODE_BYTES] = '\0';
        if (hex_exact(line + 7, 2 * KEYRING_KEY_BYTES, scratch, KEYRING_KEY_BYTES) != 0)
            return "bad key";
        switch (kr_add(kr, code, scratch)) {
        case CF_OK:        return NULL;
        case CF_ERR_LIMIT: return "too many compartments";
        case CF_ERR_NOMEM: return "out of memory";
        case CF_ERR_EXISTS: return "compartment given twice";
        default:           return "malformed compartment";
        }
    }
    return "unknown line";
}

enum cf_err
keyring_load(const char *path, struct keyring **out, struct cf_errmsg *em)
{
    struct keyring *kr = NULL;
    char *buf;
    uint8_t *scratch;
    uint8_t sum[32], want[32];
    size_t len = 0, pos, lineno = 0;
    enum cf_err rc = CF_OK;
    int ended = 0, seen = 0;

    buf = sodium_malloc(KEYRING_FILE_MAX_BYTES + 2);
    scratch = sodium_malloc(KEYRING_KEY_BYTES);
    if (buf == NULL || scratch == NULL) {
        rc = cf_fail(em, CF_ERR_NOMEM, "keyring: out of memory");
        goto out;
    }
    if ((rc = read_file(path, buf, KEYRING_FILE_MAX_BYTES + 1, &len, em)) != CF_OK)
        goto out;
    if (len < strlen(KR_MAGIC) || memcmp(buf, KR_MAGIC, strlen(KR_MAGIC)) != 0) {
        rc = cf_fail(em, CF_ERR_INPUT, "keyring '%s': not a coffre keyring (or a newer format)", path);
        goto out;
    }
    if ((kr = kr_alloc()) == NULL) {
        rc = cf_fail(em, CF_ERR_NOMEM, "keyring: out of memory");
        goto out;
    }
    pos = strlen(KR_MAGIC);
    lineno = 1;
    while (pos < len && rc == CF_OK) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        size_t llen;
        const char *why;

        lineno++;
        if (nl == NULL) {
            rc = cf_fail(em, CF_ERR_INPUT, "keyring '%s': incomplete (line %zu cut short)", path, lineno);
            break;
        }
        llen = (size_t)(nl - (buf + pos));
        if (llen > 4 && memcmp(buf + pos, "end ", 4) == 0) {
            crypto_generichash(sum, sizeof sum, (const uint8_t *)buf, pos, NULL, 0);
            if (hex_exact(buf + pos + 4, llen - 4, want, sizeof want) != 0 ||
                sodium_memcmp(sum, want, sizeof sum) != 0)
                rc = cf_fail(em, CF_ERR_INPUT, "keyring '%s': checksum mismatch (edited or damaged)", path);
            else if (nl + 1 != buf + len)
                rc = cf_fail(em, CF_ERR_INPUT, "keyring '%s': data after the end line", path);
            ended = 1;
            break;
        }
        why = parse_line(kr, buf + pos, llen, scratch, &seen);
        if (why != NULL)
            rc = cf_fail(em, CF_ERR_INPUT, "keyring '%s': line %zu: %s", path, lineno, why);
        pos += llen + 1;
    }
    if (rc == CF_OK && !ended)
        rc = cf_fail(em, CF_ERR_INPUT, "keyring '%s': incomplete (no end line)", path);
    if (rc == CF_OK && seen != SEEN_ALL)
        rc = cf_fail(em, CF_ERR_INPUT, "keyring '%s': a node, audit-epoch or audit-seed line is missing", path);
    if (rc == CF_OK && kr->n == 0)
        rc = cf_fail(em, CF_ERR_INPUT, "keyring '%s': no compartment", path);
out:
    sodium_free(buf);
    sodium_free(scratch);
    if (rc != CF_OK) {
        keyring_free(kr);
        return rc;
    }
    snprintf(kr->path, sizeof kr->path, "%s", path);
    *out = kr;
    return CF_OK;
}

/* ---- audit epochs ----------------------------------------------------- */

#define KR_AUDIT_NEXT_LABEL "coffre-audit-next-v1"

void
keyring_audit_next_seed(const uint8_t seed[KEYRING_SEED_BYTES],
                        uint8_t next[KEYRING_SEED_BYTES])
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, KEYRING_SEED_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)KR_AUDIT_NEXT_LABEL,
                              strlen(KR_AUDIT_NEXT_LABEL));
    crypto_generichash_update(&st, seed, KEYRING_SEED_BYTES);
    crypto_generichash_final(&st, next, KEYRING_SEED_BYTES);
    sodium_memzero(&st, sizeof st);
}

/* Writes buf over path: temporary file, fsync, rename(2), fsync dir. */
static enum cf_err
replace_file(const char *path, const char *buf, size_t len,
             struct cf_errmsg *em)
{
    char tmp[4200];
    int fd, err;

    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return cf_fail(em, CF_ERR_IO, "keyring '%s': cannot write: %s", path, strerror(errno));
    if (write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
        err = errno;
        close(fd);
        unlink(tmp);
        return cf_fail(em, CF_ERR_IO, "keyring '%s': cannot write: %s", path, strerror(err));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        return cf_fail(em, CF_ERR_IO, "keyring '%s': cannot replace: %s", path, strerror(err));
    }
    fsync_dir_of(path);
    return CF_OK;
}

enum cf_err
keyring_audit_advance(struct keyring *kr, struct cf_errmsg *em)
{
    uint8_t *next, *old;
    char *buf;
    size_t len;
    enum cf_err rc;

    if (kr->path[0] == '\0' || kr->seed_dropped)
        return cf_fail(em, CF_ERR_INPUT, "keyring: not the audit writer's copy");
    next = sodium_malloc(KEYRING_SEED_BYTES);
    buf = sodium_malloc(KEYRING_FILE_MAX_BYTES);
    if (next == NULL || buf == NULL) {
        sodium_free(next);
        sodium_free(buf);
        return cf_fail(em, CF_ERR_NOMEM, "keyring: out of memory");
    }
    keyring_audit_next_seed(kr->seed, next);
    /* Format the file as it will be, with the next epoch, then swap. */
    old = kr->seed;
    kr->seed = next;
    kr->epoch++;
    if (kr_format(kr, NULL, buf, KEYRING_FILE_MAX_BYTES, &len) != 0)
        rc = cf_fail(em, CF_ERR_LIMIT, "keyring '%s': too large", kr->path);
    else
        rc = replace_file(kr->path, buf, len, em);
    if (rc != CF_OK) {
        kr->seed = old;
        kr->epoch--;
        sodium_free(next);
    } else
        sodium_free(old);                /* zeroes the old seed */
    sodium_free(buf);
    return rc;
}

/* ---- data keys -------------------------------------------------------- */

static void
wrap_ad(const char *code, uint32_t version, uint8_t ad[32], size_t *len)
{
    size_t n = strlen(KR_WRAP_LABEL);

    memcpy(ad, KR_WRAP_LABEL, n);
    memcpy(ad + n, code, ACADEMIE_CODE_BYTES);
    n += ACADEMIE_CODE_BYTES;
    ad[n++] = (uint8_t)(version >> 24);
    ad[n++] = (uint8_t)(version >> 16);
    ad[n++] = (uint8_t)(version >> 8);
    ad[n++] = (uint8_t)version;
    *len = n;
}

static uint8_t *
slot_for(struct compartment *c, uint32_t version)
{
    if (version == 0 || version > KEYRING_MAX_VERSIONS)
        return NULL;
    if (c->dkeys == NULL) {
        c->dkeys = sodium_malloc((size_t)KEYRING_MAX_VERSIONS * KEYRING_KEY_BYTES);
        c->present = calloc(KEYRING_MAX_VERSIONS, 1);
        if (c->dkeys == NULL || c->present == NULL) {
            sodium_free(c->dkeys);
            free(c->present);
            c->dkeys = NULL;
            c->present = NULL;
            return NULL;
        }
    }
    return c->dkeys + (size_t)(version - 1) * KEYRING_KEY_BYTES;
}

static void
mark_present(struct compartment *c, uint32_t version)
{
    c->present[version - 1] = 1;
    if (version > c->current)
        c->current = version;
}

enum cf_err
keyring_data_key_new(struct keyring *kr, const char *code, uint32_t version,
                     uint8_t wrapped[KEYRING_WRAPPED_BYTES])
{
    struct compartment *c = kr_find(kr, code);
    uint8_t ad[32];
    size_t adlen;
    uint8_t *slot;

    if (c == NULL)
        return CF_ERR_CRYPTO;
    if (version == 0 || version > KEYRING_MAX_VERSIONS)
        return CF_ERR_LIMIT;
    slot = slot_for(c, version);
    if (slot == NULL)
        return CF_ERR_NOMEM;
    if (c->present[version - 1])
        return CF_ERR_EXISTS;
    randombytes_buf(slot, KEYRING_KEY_BYTES);
    wrap_ad(code, version, ad, &adlen);
    randombytes_buf(wrapped, 24);
    crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped + 24, NULL, slot,
            KEYRING_KEY_BYTES, ad, adlen, NULL, wrapped, c->kek);
    mark_present(c, version);
    return CF_OK;
}

enum cf_err
keyring_data_key_install(struct keyring *kr, const char *code,
                         uint32_t version, const uint8_t *wrapped, size_t len)
{
    struct compartment *c = kr_find(kr, code);
    uint8_t ad[32], key[KEYRING_KEY_BYTES];
    size_t adlen;
    uint8_t *slot;

    if (c == NULL)
        return CF_ERR_NOTFOUND;
    if (len != KEYRING_WRAPPED_BYTES)
        return CF_ERR_CRYPTO;
    slot = slot_for(c, version);
    if (slot == NULL)
        return version == 0 || version > KEYRING_MAX_VERSIONS ? CF_ERR_LIMIT : CF_ERR_NOMEM;
    wrap_ad(code, version, ad, &adlen);
    /* Unwrap into scratch: a failed or conflicting install must leave a key
     * already held exactly as it was. */
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(key, NULL, NULL,
            wrapped + 24, len - 24, ad, adlen, wrapped, c->kek) != 0) {
        sodium_memzero(key, sizeof key);
        return CF_ERR_CRYPTO;
    }
    if (c->present[version - 1] &&
        sodium_memcmp(slot, key, KEYRING_KEY_BYTES) != 0) {
        sodium_memzero(key, sizeof key);
        return CF_ERR_EXISTS;
    }
    memcpy(slot, key, KEYRING_KEY_BYTES);
    sodium_memzero(key, sizeof key);
    mark_present(c, version);
    return CF_OK;
}

const uint8_t *
keyring_data_key(const struct keyring *kr, const char *code, uint32_t version)
{
    const struct compartment *c = kr_find(kr, code);

    if (c == NULL || c->present == NULL || version == 0 ||
        version > KEYRING_MAX_VERSIONS || !c->present[version - 1])
        return NULL;
    return c->dkeys + (size_t)(version - 1) * KEYRING_KEY_BYTES;
}

const uint8_t *
keyring_index_key(const struct keyring *kr, const char *code)
{
    const struct compartment *c = kr_find(kr, code);

    return c == NULL ? NULL : c->index_key;
}

uint32_t
keyring_current_version(const struct keyring *kr, const char *code)
{
    const struct compartment *c = kr_find(kr, code);

    return c == NULL ? 0 : c->current;
}
