/*
 * mfa.c - second factors (see mfa.h, docs/mfa.md).
 *
 * A factor row (store.h struct store_factor) keeps in clear only ids, its
 * kind, state, counter and timestamps; the TOTP secret, a key's name and
 * its credential (algorithm, public key, credential id) are sealed fields
 * of kind "mfa_factor", bound to the factor's id and compartment.
 * Recovery codes are keyed hashes bound to the account id, like
 * activation codes.  Codes are compared in constant time, and no code,
 * secret or login ever reaches a log line or an error message.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oath.h>
#include <qrencode.h>
#include <sodium.h>

#include "keyring.h"
#include "log.h"
#include "mfa.h"
#include "seal.h"
#include "banned.h"

/* ---- policy ----------------------------------------------------------- */

void
mfa_policy_default(struct mfa_policy *p)
{
    int i;

    memset(p, 0, sizeof *p);
    for (i = 0; i < ROLE_COUNT; i++) {
        p->allowed[i] = MFA_TOTP | MFA_WEBAUTHN | MFA_RECOVERY;
        if (account_role_is_staff((enum account_role)i))
            p->required |= 1u << i;
    }
    p->step_up_s = MFA_STEP_UP_DEFAULT_S;
}

void
mfa_policy_admin_webauthn(struct mfa_policy *p)
{
    p->allowed[ROLE_ACADEMIE_ADMIN] = MFA_WEBAUTHN;
}

int
mfa_role_required(const struct mfa_policy *p, enum account_role r)
{
    return r < ROLE_COUNT && (p->required & (1u << r)) != 0;
}

int
mfa_level_needed(const struct mfa_policy *p, enum account_role r)
{
    if (r >= ROLE_COUNT)
        return MFA_LEVEL_KEY;
    return (p->allowed[r] & (MFA_TOTP | MFA_RECOVERY)) == 0 ? MFA_LEVEL_KEY : MFA_LEVEL_CODE;
}

unsigned
mfa_usable(const struct mfa_policy *p, const struct account *a, const struct mfa_state *st)
{
    return a->role < ROLE_COUNT ? st->enrolled & p->allowed[a->role] : 0;
}

struct state_ctx {
    struct mfa_state *st;
};

static int
state_one(void *arg, const struct store_factor *f)
{
    struct mfa_state *st = arg;

    if (strcmp(f->kind, "totp") == 0) {
        if (f->active)
            st->enrolled |= MFA_TOTP;
        else
            st->totp_pending = 1;
    } else if (strcmp(f->kind, "webauthn") == 0 && f->active) {
        st->enrolled |= MFA_WEBAUTHN;
        st->keys++;
    }
    return 0;
}

enum cf_err
mfa_state_of(struct records *r, const struct account *a, struct mfa_state *out)
{
    enum cf_err rc;

    memset(out, 0, sizeof *out);
    rc = store_factors_of(records_store(r), a->row.id, MFA_FACTORS_MAX, state_one, out);
    if (rc == CF_OK)
        rc = store_recovery_info(records_store(r), a->row.id, &out->recovery_left, NULL, NULL);
    if (rc == CF_OK && out->recovery_left > 0)
        out->enrolled |= MFA_RECOVERY;
    return rc;
}

enum mfa_gate
mfa_gate(const struct mfa_policy *p, const struct account *a, const struct mfa_state *st,
         int level)
{
    unsigned usable = mfa_usable(p, a, st) & (MFA_TOTP | MFA_WEBAUTHN);

    if (usable != 0)
        return level >= mfa_level_needed(p, a->role) ? MFA_GATE_OK : MFA_GATE_CHALLENGE;
    /* No usable factor: a role that needs one must enroll, even if the
     * session passed a factor its role may no longer use. */
    if (mfa_role_required(p, a->role))
        return MFA_GATE_ENROLL;
    return MFA_GATE_OK;
}

enum mfa_gate
mfa_gate_step_up(const struct mfa_policy *p, const struct account *a,
                 const struct mfa_state *st, int level, int64_t mfa_at, int64_t now)
{
    enum mfa_gate g = mfa_gate(p, a, st, level);

    if (g != MFA_GATE_OK)
        return g;
    if ((mfa_usable(p, a, st) & (MFA_TOTP | MFA_WEBAUTHN)) == 0)
        return MFA_GATE_OK;          /* nothing to step up with, and none needed */
    if (mfa_at <= 0 || now - mfa_at > p->step_up_s || now < mfa_at - 60)
        return MFA_GATE_CHALLENGE;
    return MFA_GATE_OK;
}

/* ---- sealed factor fields --------------------------------------------- */

enum { FF_SECRET, FF_NAME, FF_CRED, FF_COUNT };
static const char *const factor_fields[FF_COUNT] = { "secret", "name", "credential" };

static struct records_blob
factor_blob(const struct store_factor *f)
{
    struct records_blob b = { "mfa_factor", f->compartment, f->id, f->kv, factor_fields,
                              FF_COUNT };
    return b;
}

/* Seals values (the fields in `present`) into f. */
static enum cf_err
factor_seal(struct records *r, struct store_factor *f, char (*v)[RECORD_FIELD_PT_MAX + 1],
            uint32_t present)
{
    size_t len[FF_COUNT] = { 0 };
    struct records_blob b;
    int i;

    for (i = 0; i < FF_COUNT; i++)
        if (present & (1u << i))
            len[i] = strlen(v[i]);
    f->kv = keyring_current_version(records_keyring(r), f->compartment);
    b = factor_blob(f);
    return records_blob_seal(r, &b, v, len, present, f->fields, sizeof f->fields,
                             &f->fields_len);
}

static enum cf_err
factor_open(struct records *r, const struct store_factor *f, uint32_t mask,
            char (*v)[RECORD_FIELD_PT_MAX + 1])
{
    struct records_blob b = factor_blob(f);
    uint32_t present;
    enum cf_err rc = records_blob_open(r, &b, f->fields, f->fields_len, mask, v, &present);

    if (rc == CF_OK && (present & mask) != mask)
        rc = CF_ERR_STORE;
    return rc;
}

static void
factor_new(const struct account *a, const char *kind, int64_t now, struct store_factor *f)
{
    memset(f, 0, sizeof *f);
    randombytes_buf(f->id, sizeof f->id);
    memcpy(f->account, a->row.id, STORE_ID_BYTES);
    snprintf(f->kind, sizeof f->kind, "%s", kind);
    snprintf(f->compartment, sizeof f->compartment, "%s", a->row.compartment);
    f->created = now;
}

/* Visits the account's factors of one kind into a caller's callback. */
struct kind_ctx {
    const char *kind;
    int active;                         /* -1: either */
    int (*fn)(void *arg, const struct store_factor *f);
    void *arg;
};

static int
kind_one(void *arg, const struct store_factor *f)
{
    struct kind_ctx *k = arg;

    if (strcmp(f->kind, k->kind) != 0 || (k->active >= 0 && f->active != k->active))
        return 0;
    return k->fn(k->arg, f);
}

static enum cf_err
factors_each(struct records *r, const struct account *a, const char *kind, int active,
             int (*fn)(void *, const struct store_factor *), void *arg)
{
    struct kind_ctx k = { kind, active, fn, arg };

    return store_factors_of(records_store(r), a->row.id, MFA_FACTORS_MAX, kind_one, &k);
}

static int
copy_first(void *arg, const struct store_factor *f)
{
    memcpy(arg, f, sizeof *f);
    return 1;
}

/* ---- TOTP ------------------------------------------------------------- */

static pthread_once_t oath_once = PTHREAD_ONCE_INIT;

static void
oath_start(void)
{
    if (oath_init() != OATH_OK)
        log_warnx("mfa: liboath did not initialise");
}

int
mfa_totp_at(const uint8_t *secret, size_t len, uint64_t counter, unsigned digits, char out[9])
{
    pthread_once(&oath_once, oath_start);
    if (digits < 6 || digits > 8 || counter > (uint64_t)INT64_MAX / MFA_TOTP_STEP_S)
        return -1;
    return oath_totp_generate((const char *)secret, len,
                              (time_t)(counter * MFA_TOTP_STEP_S), MFA_TOTP_STEP_S, 0,
                              digits, out) == OATH_OK ? 0 : -1;
}

/* Exactly MFA_TOTP_DIGITS ASCII digits: no letters, no spaces. */
static int
code_wellformed(const char *code)
{
    size_t i;

    for (i = 0; code[i] != '\0'; i++)
        if (i >= MFA_TOTP_DIGITS || code[i] < '0' || code[i] > '9')
            return 0;
    return i == MFA_TOTP_DIGITS;
}

/* "ABCD EFGH ..." from a raw secret */
static enum cf_err
secret_text(const uint8_t secret[MFA_TOTP_SECRET_BYTES], char plain[33],
            char grouped[MFA_TOTP_SECRET_TEXT + 1])
{
    char *b32 = NULL;
    size_t n = 0, i, o = 0;

    if (oath_base32_encode((const char *)secret, MFA_TOTP_SECRET_BYTES, &b32, &n) != OATH_OK ||
        n != 32) {
        free(b32);
        return CF_ERR_CRYPTO;
    }
    memcpy(plain, b32, 32);
    plain[32] = '\0';
    for (i = 0; i < 32; i++) {
        if (i > 0 && i % 4 == 0)
            grouped[o++] = ' ';
        grouped[o++] = b32[i];
    }
    grouped[o] = '\0';
    sodium_memzero(b32, n);
    free(b32);
    return CF_OK;
}

static enum cf_err
secret_raw(const char *b32, uint8_t out[MFA_TOTP_SECRET_BYTES])
{
    char *raw = NULL;
    size_t n = 0;
    enum cf_err rc = CF_ERR_STORE;

    if (oath_base32_decode(b32, strlen(b32), &raw, &n) == OATH_OK && n == MFA_TOTP_SECRET_BYTES) {
        memcpy(out, raw, n);
        rc = CF_OK;
    }
    if (raw != NULL)
        sodium_memzero(raw, n);
    free(raw);
    return rc;
}

/* Inline SVG of a QR code: one path of horizontal runs, 4 modules of
 * quiet zone. */
static char *
qr_svg(const char *text)
{
    QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    char *svg = NULL;
    size_t pos = 0;
    int x, y, w, ok = 1;

    if (q == NULL)
        return NULL;
    w = q->width;
    svg = malloc(MFA_QR_SVG_MAX);
    if (svg == NULL || w <= 0 || w > 177)
        goto fail;
#define SVG_ADD(...) do { \
        int k_ = snprintf(svg + pos, MFA_QR_SVG_MAX - pos, __VA_ARGS__); \
        if (k_ < 0 || (size_t)k_ >= MFA_QR_SVG_MAX - pos) { ok = 0; goto done; } \
        pos += (size_t)k_; } while (0)
    SVG_ADD("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" "
            "height=\"%d\" shape-rendering=\"crispEdges\" role=\"img\" "
            "aria-label=\"QR code of the TOTP secret\"><rect width=\"100%%\" height=\"100%%\" "
            "fill=\"#fff\"/><path fill=\"#000\" d=\"", w + 8, w + 8, 4 * (w + 8), 4 * (w + 8));
    for (y = 0; y < w; y++)
        for (x = 0; x < w; x++) {
            int run = 0;

            while (x + run < w && (q->data[y * w + x + run] & 1))
                run++;
            if (run == 0)
                continue;
            SVG_ADD("M%d %dh%dv1h-%dz", x + 4, y + 4, run, run);
            x += run;
        }
    SVG_ADD("\"/></svg>");
#undef SVG_ADD
done:
    if (ok) {
        QRcode_free(q);
        return svg;
    }
fail:
    free(svg);
    QRcode_free(q);
    return NULL;
}

void
mfa_totp_enrollment_release(struct mfa_totp_enrollment *e)
{
    sodium_memzero(e->secret, sizeof e->secret);
    sodium_memzero(e->uri, sizeof e->uri);
    if (e->qr_svg != NULL) {
        sodium_memzero(e->qr_svg, strlen(e->qr_svg));
        free(e->qr_svg);
        e->qr_svg = NULL;
    }
}

enum cf_err
mfa_totp_enroll(struct records *r, const struct account *a,
                const uint8_t session[STORE_TOKEN_HASH_BYTES], int64_t now,
                struct mfa_totp_enrollment *out)
{
    uint8_t secret[MFA_TOTP_SECRET_BYTES];
    char (*v)[RECORD_FIELD_PT_MAX + 1] = NULL;
    struct store_factor *f = NULL;
    char plain[33];
    enum cf_err rc = CF_ERR_NOMEM;
    int n;

    memset(out, 0, sizeof *out);
    randombytes_buf(secret, sizeof secret);
    if ((rc = secret_text(secret, plain, out->secret)) != CF_OK)
        goto out;
    rc = CF_ERR_NOMEM;
    v = calloc(FF_COUNT, sizeof *v);
    f = malloc(sizeof *f);
    if (v == NULL || f == NULL)
        goto out;
    /* The label names the account for the user's app; logins are
     * [a-z0-9._-], nothing to escape. */
    n = snprintf(out->uri, sizeof out->uri,
                 "otpauth://totp/coffre:%s?secret=%s&issuer=coffre&algorithm=SHA1&digits=%d&period=%d",
                 a->login, plain, MFA_TOTP_DIGITS, MFA_TOTP_STEP_S);
    if (n < 0 || (size_t)n >= sizeof out->uri) {
        rc = CF_ERR_LIMIT;
        goto out;
    }
    out->qr_svg = qr_svg(out->uri);
    if (out->qr_svg == NULL)
        goto out;
    factor_new(a, "totp", now, f);
    memcpy(f->session, session, STORE_TOKEN_HASH_BYTES);
    f->has_session = 1;
    snprintf(v[FF_SECRET], sizeof v[FF_SECRET], "%s", plain);
    if ((rc = factor_seal(r, f, v, 1u << FF_SECRET)) != CF_OK)
        goto out;
    /* one pending enrollment per account: the newest */
    rc = store_factor_delete(records_store(r), a->row.id, NULL, "totp", 0);
    if (rc == CF_OK)
        rc = store_factor_put(records_store(r), f);
out:
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(plain, sizeof plain);
    if (v != NULL)
        sodium_memzero(v, FF_COUNT * sizeof *v);
    free(v);
    free(f);
    if (rc != CF_OK)
        mfa_totp_enrollment_release(out);
    return rc;
}

/*
 * The step in now-1..now+1 whose code matches and that is later than
 * `last` (each step once only), or -1.  Every candidate is computed and
 * compared, so the work does not depend on which one matches.
 */
static int64_t
totp_match(struct records *r, const struct store_factor *f, const char *code, int64_t now)
{
    char (*v)[RECORD_FIELD_PT_MAX + 1] = calloc(FF_COUNT, sizeof *v);
    uint8_t secret[MFA_TOTP_SECRET_BYTES];
    int64_t step = now / MFA_TOTP_STEP_S, found = -1, d;
    char want[9];

    if (v == NULL)
        return -1;
    if (factor_open(r, f, 1u << FF_SECRET, v) != CF_OK || secret_raw(v[FF_SECRET], secret) != CF_OK) {
        log_warnx("mfa: a TOTP secret does not open");
        goto out;
    }
    for (d = -MFA_TOTP_WINDOW; d <= MFA_TOTP_WINDOW; d++) {
        int64_t s = step + d;
        int same;

        if (s < 0 || mfa_totp_at(secret, sizeof secret, (uint64_t)s, MFA_TOTP_DIGITS, want) != 0)
            continue;
        same = sodium_memcmp(want, code, MFA_TOTP_DIGITS) == 0;
        if (same && s > f->counter && found < 0)
            found = s;
    }
out:
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(want, sizeof want);
    sodium_memzero(v, FF_COUNT * sizeof *v);
    free(v);
    return found;
}

struct pending_ctx {
    const uint8_t *session;
    struct store_factor *f;
    int found;
};

static int
pending_of_session(void *arg, const struct store_factor *f)
{
    struct pending_ctx *p = arg;

    if (!f->has_session || sodium_memcmp(f->session, p->session, STORE_TOKEN_HASH_BYTES) != 0)
        return 0;
    memcpy(p->f, f, sizeof *f);
    p->found = 1;
    return 1;
}

enum cf_err
mfa_totp_confirm(struct records *r, const struct account *a,
                 const uint8_t session[STORE_TOKEN_HASH_BYTES], const char *code, int64_t now)
{
    struct store_factor *f = malloc(sizeof *f);
    struct pending_ctx p = { session, f, 0 };
    enum cf_err rc;
    int64_t step;

    if (f == NULL)
        return CF_ERR_NOMEM;
    if (!code_wellformed(code)) {
        rc = CF_ERR_INPUT;
        goto out;
    }
    if ((rc = factors_each(r, a, "totp", 0, pending_of_session, &p)) != CF_OK)
        goto out;
    if (!p.found) {
        rc = CF_ERR_NOTFOUND;
        goto out;
    }
    step = totp_match(r, f, code, now);
    if (step < 0) {
        rc = CF_ERR_AUTH;
        goto out;
    }
    /* The new TOTP replaces the old one; the confirming step is spent. */
    if ((rc = store_factor_delete(records_store(r), a->row.id, NULL, "totp", 1)) == CF_OK)
        rc = store_factor_activate(records_store(r), f->id, step, now);
out:
    free(f);
    return rc;
}

enum cf_err
mfa_totp_verify(struct records *r, const struct account *a, const char *code, int64_t now)
{
    struct store_factor *f = malloc(sizeof *f);
    enum cf_err rc;
    int64_t step;

    if (f == NULL)
        return CF_ERR_NOMEM;
    f->id[0] = 0;
    if (!code_wellformed(code)) {
        rc = CF_ERR_INPUT;
        goto out;
    }
    f->kind[0] = '\0';
    if ((rc = factors_each(r, a, "totp", 1, copy_first, f)) != CF_OK)
        goto out;
    if (strcmp(f->kind, "totp") != 0) {
        rc = CF_ERR_NOTFOUND;
        goto out;
    }
    step = totp_match(r, f, code, now);
    /* compare-and-set: of two requests with one code, one wins */
    rc = step < 0 ? CF_ERR_AUTH : store_factor_advance(records_store(r), f->id, f->counter, step, now);
out:
    free(f);
    return rc;
}

/* ---- recovery codes --------------------------------------------------- */

/* The activation codes' alphabet: no 0/O, no 1/I. */
static const char recovery_alphabet[] = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

static enum cf_err
recovery_hash(struct records *r, const struct account *a, const char *raw,
              uint8_t out[STORE_CODE_HASH_BYTES])
{
    char msg[RECORD_ID_HEX + MFA_RECOVERY_SYMBOLS + 2];
    enum cf_err rc;

    snprintf(msg, sizeof msg, "%s:%s", a->id, raw);
    rc = seal_blind_index(records_keyring(r), a->row.compartment, "recovery_code", msg,
                          strlen(msg), out, STORE_CODE_HASH_BYTES);
    sodium_memzero(msg, sizeof msg);
    return rc;
}

enum cf_err
mfa_recovery_new(struct records *r, const struct account *a, int64_t now,
                 char codes[MFA_RECOVERY_COUNT][MFA_RECOVERY_TEXT + 1])
{
    uint8_t h[MFA_RECOVERY_COUNT][STORE_CODE_HASH_BYTES];
    char raw[MFA_RECOVERY_SYMBOLS + 1];
    enum cf_err rc = CF_OK;
    size_t i, j, o;

    for (i = 0; i < MFA_RECOVERY_COUNT && rc == CF_OK; i++) {
        for (j = 0, o = 0; j < MFA_RECOVERY_SYMBOLS; j++) {
            char c = recovery_alphabet[randombytes_uniform(sizeof recovery_alphabet - 1)];

            raw[j] = c;
            if (j > 0 && j % 4 == 0)
                codes[i][o++] = '-';
            codes[i][o++] = c;
        }
        raw[MFA_RECOVERY_SYMBOLS] = '\0';
        codes[i][o] = '\0';
        rc = recovery_hash(r, a, raw, h[i]);
    }
    sodium_memzero(raw, sizeof raw);
    if (rc == CF_OK)
        rc = store_recovery_set(records_store(r), a->row.id,
                                (const uint8_t (*)[STORE_CODE_HASH_BYTES])h, MFA_RECOVERY_COUNT, now);
    if (rc != CF_OK)
        sodium_memzero(codes, MFA_RECOVERY_COUNT * sizeof codes[0]);
    sodium_memzero(h, sizeof h);
    return rc;
}

/* As typed -> 12 symbols: case and dashes do not matter, anything else
 * (spaces included) makes it malformed. */
static int
recovery_normalize(const char *in, char raw[MFA_RECOVERY_SYMBOLS + 1])
{
    size_t o = 0;

    for (; *in != '\0'; in++) {
        char c = *in;

        if (c == '-')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 32);
        if (o == MFA_RECOVERY_SYMBOLS || strchr(recovery_alphabet, c) == NULL)
            return -1;
        raw[o++] = c;
    }
    raw[o] = '\0';
    return o == MFA_RECOVERY_SYMBOLS ? 0 : -1;
}

enum cf_err
mfa_recovery_use(struct records *r, const struct account *a, const char *code, int64_t now)
{
    char raw[MFA_RECOVERY_SYMBOLS + 1];
    uint8_t h[STORE_CODE_HASH_BYTES];
    enum cf_err rc;

    if (recovery_normalize(code, raw) != 0)
        return CF_ERR_INPUT;
    rc = recovery_hash(r, a, raw, h);
    sodium_memzero(raw, sizeof raw);
    if (rc == CF_OK)
        rc = store_recovery_use(records_store(r), a->row.id, h, now);
    sodium_memzero(h, sizeof h);
    return rc;
}

enum cf_err
mfa_recovery_used(struct records *r, const struct account *a, store_recovery_fn fn, void *arg)
{
    uint32_t left;

    return store_recovery_info(records_store(r), a->row.id, &left, fn, arg);
}

/* ---- security keys: storage ------------------------------------------- */

/* The sealed "credential" field: hex of alg | pklen | pk | idlen | id | uv. */
static void __attribute__((unused))
cred_encode(const struct mfa_cred *c, char out[RECORD_FIELD_PT_MAX + 1])
{
    uint8_t raw[4 + sizeof c->pk + MFA_CRED_ID_MAX];
    size_t n = 0;

    raw[n++] = (uint8_t)(c->alg == -8 ? 8 : 7);
    raw[n++] = (uint8_t)c->pklen;
    memcpy(raw + n, c->pk, c->pklen);
    n += c->pklen;
    raw[n++] = (uint8_t)c->idlen;
    memcpy(raw + n, c->id, c->idlen);
    n += c->idlen;
    raw[n++] = (uint8_t)(c->uv != 0);
    sodium_bin2hex(out, RECORD_FIELD_PT_MAX + 1, raw, n);
}

static int
cred_decode(const char *hex, struct mfa_cred *c)
{
    uint8_t raw[4 + sizeof c->pk + MFA_CRED_ID_MAX];
    size_t n, p = 0;

    memset(c, 0, sizeof *c);
    if (sodium_hex2bin(raw, sizeof raw, hex, strlen(hex), NULL, &n, NULL) != 0 || n < 4)
        return -1;
    c->alg = raw[p++] == 8 ? -8 : -7;
    c->pklen = raw[p++];
    if (c->pklen > sizeof c->pk || p + c->pklen + 2 > n)
        return -1;
    memcpy(c->pk, raw + p, c->pklen);
    p += c->pklen;
    c->idlen = raw[p++];
    if (c->idlen > MFA_CRED_ID_MAX || p + c->idlen + 1 != n)
        return -1;
    memcpy(c->id, raw + p, c->idlen);
    p += c->idlen;
    c->uv = raw[p];
    return 0;
}

struct keys_ctx {
    struct records *r;
    mfa_key_fn fn;
    void *arg;
    enum cf_err rc;
};

static int
key_one(void *arg, const struct store_factor *f)
{
    struct keys_ctx *k = arg;
    char (*v)[RECORD_FIELD_PT_MAX + 1] = calloc(FF_COUNT, sizeof *v);
    struct mfa_key_info info;
    struct mfa_cred cred;
    int stop = 0;

    if (v == NULL) {
        k->rc = CF_ERR_NOMEM;
        return 1;
    }
    if (factor_open(k->r, f, (1u << FF_NAME) | (1u << FF_CRED), v) != CF_OK ||
        cred_decode(v[FF_CRED], &cred) != 0) {
        k->rc = CF_ERR_STORE;
        stop = 1;
    } else {
        memset(&info, 0, sizeof info);
        records_id_format(f->id, info.id);
        snprintf(info.name, sizeof info.name, "%s", v[FF_NAME]);
        memcpy(info.cred_id, cred.id, cred.idlen);
        info.cred_idlen = cred.idlen;
        info.created = f->created;
        info.last_used = f->last_used;
        stop = k->fn(k->arg, &info);
    }
    free(v);
    return stop;
}

enum cf_err
mfa_keys(struct records *r, const struct account *a, mfa_key_fn fn, void *arg)
{
    struct keys_ctx k = { r, fn, arg, CF_OK };
    enum cf_err rc = factors_each(r, a, "webauthn", 1, key_one, &k);

    return rc != CF_OK ? rc : k.rc;
}

struct id_match {
    const uint8_t *id;
    int found;
};

static int
id_one(void *arg, const struct store_factor *f)
{
    struct id_match *m = arg;

    if (sodium_memcmp(f->id, m->id, STORE_ID_BYTES) == 0)
        m->found = 1;
    return m->found;
}

enum cf_err
mfa_key_remove(struct records *r, const struct account *a, const char *key_id)
{
    uint8_t id[STORE_ID_BYTES];
    struct id_match m = { id, 0 };
    enum cf_err rc;

    if (records_id_parse(key_id, id) != CF_OK)
        return CF_ERR_NOTFOUND;
    /* a security key of this account only, never its TOTP */
    if ((rc = factors_each(r, a, "webauthn", -1, id_one, &m)) != CF_OK)
        return rc;
    if (!m.found)
        return CF_ERR_NOTFOUND;
    return store_factor_delete(records_store(r), a->row.id, id, NULL, -1);
}
