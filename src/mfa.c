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

#include <cbor.h>
#include <fido.h>
#include <fido/eddsa.h>
#include <fido/es256.h>
#include <jansson.h>
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
    if (!p.found || now - f->created > MFA_ENROLL_TTL_S) {
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

enum cf_err
mfa_reset(struct records *r, const struct account *a, struct cf_errmsg *em)
{
    struct store *st = records_store(r);
    uint64_t n;
    enum cf_err rc;

    if ((rc = store_begin(st, STORE_TX_NORMAL)) != CF_OK)
        return cf_fail(em, rc, "store: cannot begin");
    if ((rc = store_factor_delete(st, a->row.id, NULL, "totp", -1)) == CF_OK &&
        (rc = store_factor_delete(st, a->row.id, NULL, "webauthn", -1)) == CF_OK &&
        (rc = store_recovery_set(st, a->row.id, NULL, 0, 0)) == CF_OK &&
        (rc = store_sessions_revoke(st, a->row.id, NULL, &n)) == CF_OK)
        return store_commit(st, em);
    store_rollback(st);
    return cf_fail(em, rc, "store: the second factors could not be removed; nothing changed");
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
static void
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

/* ---- WebAuthn: checks of the ceremonies --------------------------------
 *
 * Every size is checked before any parser sees the bytes.  clientDataJSON
 * is parsed by jansson (strict, duplicates refused), the attestationObject
 * by libcbor (one item, nothing after it), authenticatorData by hand (a
 * fixed layout), signatures verified by libfido2.
 */

#define AD_UP 0x01u
#define AD_UV 0x04u
#define AD_AT 0x40u
#define AD_ED 0x80u
#define COSE_ALG_ES256 (-7)
#define COSE_ALG_EDDSA (-8)

static enum cf_err
check_client_data(const struct mfa_webauthn_opts *o, const char *type, const uint8_t *challenge,
                  size_t chlen, const uint8_t *cdj, size_t cdjlen,
                  uint8_t hash[crypto_hash_sha256_BYTES], struct cf_errmsg *em)
{
    uint8_t got[STORE_CHALLENGE_MAX];
    const char *t, *ch, *origin;
    json_t *doc, *cross;
    json_error_t jerr;
    enum cf_err rc = CF_ERR_INPUT;
    size_t n, i;

    if (cdjlen == 0 || cdjlen > MFA_CLIENTDATA_MAX)
        return cf_fail(em, CF_ERR_LIMIT, "clientDataJSON: empty or over %d bytes", MFA_CLIENTDATA_MAX);
    doc = json_loadb((const char *)cdj, cdjlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        rc = cf_fail(em, CF_ERR_INPUT, "clientDataJSON: not a JSON object");
        goto out;
    }
    t = json_string_value(json_object_get(doc, "type"));
    ch = json_string_value(json_object_get(doc, "challenge"));
    origin = json_string_value(json_object_get(doc, "origin"));
    cross = json_object_get(doc, "crossOrigin");
    if (t == NULL || strcmp(t, type) != 0) {
        rc = cf_fail(em, CF_ERR_INPUT, "clientDataJSON: not a %s response", type);
        goto out;
    }
    if (ch == NULL || strlen(ch) > 2 * STORE_CHALLENGE_MAX ||
        sodium_base642bin(got, sizeof got, ch, strlen(ch), NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n != chlen || sodium_memcmp(got, challenge, chlen) != 0) {
        rc = cf_fail(em, CF_ERR_AUTH, "clientDataJSON: answers another challenge");
        goto out;
    }
    for (i = 0; origin != NULL && i < o->norigins; i++)
        if (strcmp(origin, o->origins[i]) == 0)
            break;
    if (origin == NULL || i == o->norigins) {
        rc = cf_fail(em, CF_ERR_AUTH, "clientDataJSON: an origin this server does not accept");
        goto out;
    }
    if (cross != NULL && !json_is_false(cross)) {
        rc = cf_fail(em, CF_ERR_AUTH, "clientDataJSON: a cross-origin response");
        goto out;
    }
    crypto_hash_sha256(hash, cdj, cdjlen);
    rc = CF_OK;
out:
    json_decref(doc);
    return rc;
}

struct authdata {
    uint8_t flags;
    uint32_t count;
    const uint8_t *rest;            /* after the 37 fixed bytes */
    size_t restlen;
};

static enum cf_err
check_authdata(const struct mfa_webauthn_opts *o, const uint8_t *ad, size_t adlen,
               struct authdata *out, struct cf_errmsg *em)
{
    uint8_t want[crypto_hash_sha256_BYTES];

    if (adlen < 37 || adlen > MFA_AUTHDATA_MAX)
        return cf_fail(em, CF_ERR_LIMIT, "authenticator data: 37 to %d bytes", MFA_AUTHDATA_MAX);
    crypto_hash_sha256(want, (const uint8_t *)o->rp_id, strlen(o->rp_id));
    if (sodium_memcmp(want, ad, sizeof want) != 0)
        return cf_fail(em, CF_ERR_AUTH, "authenticator data: made for another relying party");
    out->flags = ad[32];
    out->count = (uint32_t)ad[33] << 24 | (uint32_t)ad[34] << 16 | (uint32_t)ad[35] << 8 | ad[36];
    out->rest = ad + 37;
    out->restlen = adlen - 37;
    if (!(out->flags & AD_UP))
        return cf_fail(em, CF_ERR_AUTH, "authenticator data: user presence not asserted");
    return CF_OK;
}

/*
 * CBOR well-formedness before libcbor sees the bytes: libcbor 0.8
 * allocates a container of the size its header declares before reading
 * any element, so a 9-byte header could ask for gigabytes (found by
 * fuzz_webauthn).  This walk checks that the first item is complete within
 * len: every length and count backed by bytes actually present, only
 * definite lengths, nesting at most MFA_CBOR_DEPTH.  cbor_load then
 * allocates only for what is there.  *used: the bytes of that item.
 */
#define MFA_CBOR_DEPTH 16

static int
cbor_walk(const uint8_t *b, size_t len, size_t *used)
{
    uint64_t need[MFA_CBOR_DEPTH + 1];
    size_t pos = 0;
    int top = 0;

    need[0] = 1;
    while (top >= 0) {
        unsigned major, ai;
        uint64_t arg = 0;
        size_t k, nb;

        if (need[top] == 0) {
            top--;
            continue;
        }
        need[top]--;
        if (pos >= len)
            return -1;
        major = b[pos] >> 5;
        ai = b[pos] & 31u;
        pos++;
        if (ai < 24)
            arg = ai;
        else if (ai <= 27) {
            nb = (size_t)1 << (ai - 24);
            if (len - pos < nb)
                return -1;
            for (k = 0; k < nb; k++)
                arg = arg << 8 | b[pos + k];
            pos += nb;
        } else
            return -1;                     /* reserved, or indefinite length */
        switch (major) {
        case 2: case 3:
            if (arg > len - pos)
                return -1;
            pos += (size_t)arg;
            break;
        case 4: case 5: case 6:
            if (major == 6)
                arg = 1;                   /* a tag wraps one item */
            else if (major == 5 && arg > (len - pos) / 2)
                return -1;
            else if (major == 5)
                arg *= 2;
            if (arg > len - pos || top == MFA_CBOR_DEPTH)
                return -1;
            need[++top] = arg;
            break;
        default:
            break;                         /* integers, simple values, floats */
        }
    }
    *used = pos;
    return 0;
}

/*
 * The extensions (flag ED) that end the authenticator data: libfido2
 * hands them to cbor_load, so they too must be one complete item filling
 * the rest (an assertion whose extensions declared a 2^29-pair map made
 * libcbor 0.8 ask for 12 GB: found by fuzz_webauthn's long run).
 */
static int
ext_complete(const uint8_t *b, size_t len)
{
    size_t used = 0;

    return cbor_walk(b, len, &used) == 0 && used == len;
}

/* An assertion's authenticator data: check_authdata, and its extensions
 * complete before libfido2 parses them. */
static enum cf_err
check_assertion_authdata(const struct mfa_webauthn_opts *o, const uint8_t *ad, size_t adlen,
                         struct authdata *out, struct cf_errmsg *em)
{
    enum cf_err rc;

    memset(out, 0, sizeof *out);
    rc = check_authdata(o, ad, adlen, out, em);
    if (rc == CF_OK && (out->flags & AD_ED) && !ext_complete(out->rest, out->restlen))
        rc = cf_fail(em, CF_ERR_INPUT, "authenticator data: malformed extensions");
    return rc;
}

static const cbor_item_t *
map_get(const cbor_item_t *map, const char *key)
{
    struct cbor_pair *p = cbor_map_handle(map);
    size_t i, n = cbor_map_size(map), k = strlen(key);

    for (i = 0; i < n; i++)
        if (cbor_isa_string(p[i].key) && cbor_string_is_definite(p[i].key) &&
            cbor_string_length(p[i].key) == k && memcmp(cbor_string_handle(p[i].key), key, k) == 0)
            return p[i].value;
    return NULL;
}

static const cbor_item_t *
map_get_int(const cbor_item_t *map, int key)
{
    struct cbor_pair *p = cbor_map_handle(map);
    size_t i, n = cbor_map_size(map);

    for (i = 0; i < n; i++) {
        const cbor_item_t *k = p[i].key;

        if (key >= 0 && cbor_isa_uint(k) && cbor_get_int(k) == (uint64_t)key)
            return p[i].value;
        if (key < 0 && cbor_isa_negint(k) && cbor_get_int(k) == (uint64_t)(-1 - key))
            return p[i].value;
    }
    return NULL;
}

static int
is_bytes(const cbor_item_t *v)
{
    return v != NULL && cbor_isa_bytestring(v) && cbor_bytestring_is_definite(v);
}

/* A COSE algorithm value (-7, -8); 0 when not one we take. */
static int
cose_alg(const cbor_item_t *v)
{
    if (v == NULL || !cbor_isa_negint(v))
        return 0;
    switch (cbor_get_int(v)) {
    case 6: return COSE_ALG_ES256;
    case 7: return COSE_ALG_EDDSA;
    default: return 0;
    }
}

/* The attested credential data: credential id and the COSE key's alg. */
static enum cf_err
attested_cred(const struct authdata *d, const uint8_t **id, size_t *idlen, int *alg,
              struct cf_errmsg *em)
{
    struct cbor_load_result res;
    cbor_item_t *key;
    size_t n, used = 0;

    if (!(d->flags & AD_AT) || d->restlen < 18)
        return cf_fail(em, CF_ERR_INPUT, "authenticator data: no attested credential");
    n = (size_t)d->rest[16] << 8 | d->rest[17];
    if (n == 0 || n > MFA_CRED_ID_MAX || d->restlen < 18 + n + 1)
        return cf_fail(em, CF_ERR_INPUT, "authenticator data: credential id of %zu bytes", n);
    *id = d->rest + 18;
    *idlen = n;
    if (cbor_walk(d->rest + 18 + n, d->restlen - 18 - n, &used) != 0 ||
        (!(d->flags & AD_ED) && used != d->restlen - 18 - n))
        return cf_fail(em, CF_ERR_INPUT, "authenticator data: malformed credential public key");
    key = cbor_load(d->rest + 18 + n, used, &res);
    if (key == NULL || res.error.code != CBOR_ERR_NONE || !cbor_isa_map(key) ||
        !cbor_map_is_definite(key) ||
        (!(d->flags & AD_ED) && res.read != d->restlen - 18 - n)) {
        if (key != NULL)
            cbor_decref(&key);
        return cf_fail(em, CF_ERR_INPUT, "authenticator data: malformed credential public key");
    }
    *alg = cose_alg(map_get_int(key, 3));
    cbor_decref(&key);
    if ((d->flags & AD_ED) && !ext_complete(d->rest + 18 + n + used, d->restlen - 18 - n - used))
        return cf_fail(em, CF_ERR_INPUT, "authenticator data: malformed extensions");
    if (*alg == 0)
        return cf_fail(em, CF_ERR_INPUT, "credential public key: ES256 or EdDSA only");
    return CF_OK;
}

enum cf_err
mfa_webauthn_check_registration(const struct mfa_webauthn_opts *o, const uint8_t *challenge,
                                size_t chlen, const uint8_t *cdj, size_t cdjlen,
                                const uint8_t *att, size_t attlen, struct mfa_cred *out,
                                struct cf_errmsg *em)
{
    uint8_t hash[crypto_hash_sha256_BYTES];
    struct cbor_load_result res;
    cbor_item_t *root = NULL;
    const cbor_item_t *fmt, *stmt, *adv, *sig = NULL, *x5c = NULL;
    const uint8_t *ad, *id = NULL;
    struct authdata d = { 0 };
    fido_cred_t *cred = NULL;
    size_t adlen, idlen = 0, n = 0;
    int alg = 0, packed, r;
    enum cf_err rc;

    memset(out, 0, sizeof *out);
    if ((rc = check_client_data(o, "webauthn.create", challenge, chlen, cdj, cdjlen, hash, em)) != CF_OK)
        return rc;
    if (attlen == 0 || attlen > MFA_ATTESTATION_MAX)
        return cf_fail(em, CF_ERR_LIMIT, "attestationObject: empty or over %d bytes", MFA_ATTESTATION_MAX);
    if (cbor_walk(att, attlen, &n) != 0 || n != attlen) {
        rc = cf_fail(em, CF_ERR_INPUT, "attestationObject: not one complete CBOR item");
        goto out;
    }
    root = cbor_load(att, attlen, &res);
    if (root == NULL || res.error.code != CBOR_ERR_NONE || res.read != attlen ||
        !cbor_isa_map(root) || !cbor_map_is_definite(root)) {
        rc = cf_fail(em, CF_ERR_INPUT, "attestationObject: not one CBOR map");
        goto out;
    }
    fmt = map_get(root, "fmt");
    stmt = map_get(root, "attStmt");
    adv = map_get(root, "authData");
    if (fmt == NULL || !cbor_isa_string(fmt) || !cbor_string_is_definite(fmt) || stmt == NULL ||
        !cbor_isa_map(stmt) || !cbor_map_is_definite(stmt) || !is_bytes(adv)) {
        rc = cf_fail(em, CF_ERR_INPUT, "attestationObject: fmt, attStmt and authData expected");
        goto out;
    }
    packed = cbor_string_length(fmt) == 6 && memcmp(cbor_string_handle(fmt), "packed", 6) == 0;
    if (!packed && !(cbor_string_length(fmt) == 4 && memcmp(cbor_string_handle(fmt), "none", 4) == 0)) {
        rc = cf_fail(em, CF_ERR_INPUT, "attestationObject: format 'none' or 'packed' only");
        goto out;
    }
    ad = cbor_bytestring_handle(adv);
    adlen = cbor_bytestring_length(adv);
    if ((rc = check_authdata(o, ad, adlen, &d, em)) != CF_OK ||
        (rc = attested_cred(&d, &id, &idlen, &alg, em)) != CF_OK)
        goto out;
    if (packed) {
        sig = map_get(stmt, "sig");
        x5c = map_get(stmt, "x5c");
        if (!is_bytes(sig) || cbor_bytestring_length(sig) > MFA_SIGNATURE_MAX ||
            (x5c == NULL && cose_alg(map_get(stmt, "alg")) != alg) ||
            (x5c != NULL && (!cbor_isa_array(x5c) || !cbor_array_is_definite(x5c) ||
                             cbor_array_size(x5c) < 1 || !is_bytes(cbor_array_handle(x5c)[0])))) {
            rc = cf_fail(em, CF_ERR_INPUT, "attStmt: a packed statement needs alg and sig (and x5c)");
            goto out;
        }
    } else if (cbor_map_size(stmt) != 0) {
        rc = cf_fail(em, CF_ERR_INPUT, "attStmt: must be empty for 'none'");
        goto out;
    }
    rc = CF_ERR_NOMEM;
    if ((cred = fido_cred_new()) == NULL)
        goto out;
    if (fido_cred_set_type(cred, alg == COSE_ALG_ES256 ? COSE_ES256 : COSE_EDDSA) != FIDO_OK ||
        fido_cred_set_rp(cred, o->rp_id, NULL) != FIDO_OK ||
        fido_cred_set_clientdata_hash(cred, hash, sizeof hash) != FIDO_OK ||
        fido_cred_set_authdata_raw(cred, ad, adlen) != FIDO_OK) {
        rc = cf_fail(em, CF_ERR_INPUT, "authenticator data: not a credential libfido2 accepts");
        goto out;
    }
    if (packed) {
        r = fido_cred_set_fmt(cred, "packed");
        if (r == FIDO_OK)
            r = fido_cred_set_sig(cred, cbor_bytestring_handle(sig), cbor_bytestring_length(sig));
        if (r == FIDO_OK && x5c != NULL)
            r = fido_cred_set_x509(cred, cbor_bytestring_handle(cbor_array_handle(x5c)[0]),
                                   cbor_bytestring_length(cbor_array_handle(x5c)[0]));
        if (r == FIDO_OK)
            r = x5c != NULL ? fido_cred_verify(cred) : fido_cred_verify_self(cred);
        if (r != FIDO_OK) {
            rc = cf_fail(em, CF_ERR_AUTH, "attestation: the signature does not verify");
            goto out;
        }
    }
    if (fido_cred_pubkey_len(cred) > sizeof out->pk || fido_cred_pubkey_len(cred) == 0 ||
        fido_cred_id_len(cred) != idlen || id == NULL ||
        memcmp(fido_cred_id_ptr(cred), id, idlen) != 0) {
        rc = cf_fail(em, CF_ERR_INPUT, "credential: unexpected public key or id");
        goto out;
    }
    out->alg = alg;
    out->pklen = fido_cred_pubkey_len(cred);
    memcpy(out->pk, fido_cred_pubkey_ptr(cred), out->pklen);
    out->idlen = idlen;
    memcpy(out->id, id, idlen);
    out->counter = d.count;
    out->uv = (d.flags & AD_UV) != 0;
    rc = CF_OK;
out:
    fido_cred_free(&cred);
    if (root != NULL)
        cbor_decref(&root);
    return rc;
}

enum cf_err
mfa_webauthn_check_assertion(const struct mfa_webauthn_opts *o, const uint8_t *challenge,
                             size_t chlen, const struct mfa_cred *cred, const uint8_t *cdj,
                             size_t cdjlen, const uint8_t *ad, size_t adlen, const uint8_t *sig,
                             size_t siglen, uint32_t *counter, int *uv, struct cf_errmsg *em)
{
    uint8_t hash[crypto_hash_sha256_BYTES];
    fido_assert_t *as = NULL;
    es256_pk_t *es = NULL;
    eddsa_pk_t *ed = NULL;
    struct authdata d = { 0 };
    enum cf_err rc;
    int r;

    if ((rc = check_client_data(o, "webauthn.get", challenge, chlen, cdj, cdjlen, hash, em)) != CF_OK ||
        (rc = check_assertion_authdata(o, ad, adlen, &d, em)) != CF_OK)
        return rc;
    if (siglen == 0 || siglen > MFA_SIGNATURE_MAX)
        return cf_fail(em, CF_ERR_LIMIT, "signature: 1 to %d bytes", MFA_SIGNATURE_MAX);
    rc = CF_ERR_NOMEM;
    if ((as = fido_assert_new()) == NULL)
        goto out;
    r = fido_assert_set_rp(as, o->rp_id);
    if (r == FIDO_OK)
        r = fido_assert_set_clientdata_hash(as, hash, sizeof hash);
    if (r == FIDO_OK)
        r = fido_assert_set_count(as, 1);
    if (r == FIDO_OK)
        r = fido_assert_set_authdata_raw(as, 0, ad, adlen);
    if (r == FIDO_OK)
        r = fido_assert_set_sig(as, 0, sig, siglen);
    if (r == FIDO_OK)
        r = fido_assert_set_up(as, FIDO_OPT_TRUE);
    if (r != FIDO_OK) {
        rc = cf_fail(em, CF_ERR_INPUT, "assertion: malformed authenticator data or signature");
        goto out;
    }
    if (cred->alg == COSE_ALG_ES256) {
        if ((es = es256_pk_new()) == NULL || es256_pk_from_ptr(es, cred->pk, cred->pklen) != FIDO_OK)
            goto badkey;
        r = fido_assert_verify(as, 0, COSE_ES256, es);
    } else {
        if ((ed = eddsa_pk_new()) == NULL || eddsa_pk_from_ptr(ed, cred->pk, cred->pklen) != FIDO_OK)
            goto badkey;
        r = fido_assert_verify(as, 0, COSE_EDDSA, ed);
    }
    if (r != FIDO_OK) {
        rc = cf_fail(em, CF_ERR_AUTH, "assertion: the signature does not verify");
        goto out;
    }
    /* A counter that does not grow is a cloned key (WebAuthn 6.1.1);
     * keys that keep none report 0 every time. */
    if ((d.count != 0 || cred->counter != 0) && d.count <= cred->counter) {
        rc = cf_fail(em, CF_ERR_AUTH, "assertion: the signature counter did not increase");
        goto out;
    }
    *counter = d.count;
    *uv = (d.flags & AD_UV) != 0;
    rc = CF_OK;
    goto out;
badkey:
    rc = cf_fail(em, CF_ERR_STORE, "credential: the stored public key does not load");
out:
    es256_pk_free(&es);
    eddsa_pk_free(&ed);
    fido_assert_free(&as);
    return rc;
}

/* ---- WebAuthn: ceremonies against the store --------------------------- */

enum cf_err
mfa_webauthn_challenge(struct records *r, const uint8_t session[STORE_TOKEN_HASH_BYTES],
                       const char *purpose, int64_t now, uint8_t challenge[MFA_CHALLENGE_BYTES])
{
    randombytes_buf(challenge, MFA_CHALLENGE_BYTES);
    return store_challenge_put(records_store(r), session, purpose, challenge, MFA_CHALLENGE_BYTES,
                               now + MFA_CHALLENGE_TTL_S);
}

/* Takes the session's challenge: gone whatever happens next. */
static enum cf_err
take_challenge(struct records *r, const uint8_t session[STORE_TOKEN_HASH_BYTES],
               const char *purpose, int64_t now, uint8_t ch[STORE_CHALLENGE_MAX], size_t *len,
               struct cf_errmsg *em)
{
    int64_t expires;
    enum cf_err rc = store_challenge_take(records_store(r), session, purpose, ch, len, &expires);

    if (rc == CF_ERR_NOTFOUND)
        return cf_fail(em, CF_ERR_AUTH, "no challenge is waiting for this session (used, or never asked)");
    if (rc != CF_OK)
        return rc;
    if (now >= expires)
        return cf_fail(em, CF_ERR_AUTH, "the challenge expired; ask for a new one");
    return CF_OK;
}

struct cred_find {
    struct records *r;
    const uint8_t *id;
    size_t idlen;
    struct store_factor *f;
    struct mfa_cred *cred;
    int found, count;
    enum cf_err rc;
};

static int
cred_one(void *arg, const struct store_factor *f)
{
    struct cred_find *k = arg;
    char (*v)[RECORD_FIELD_PT_MAX + 1] = calloc(FF_COUNT, sizeof *v);
    struct mfa_cred c;

    k->count++;
    if (v == NULL) {
        k->rc = CF_ERR_NOMEM;
        return 1;
    }
    if (factor_open(k->r, f, 1u << FF_CRED, v) != CF_OK || cred_decode(v[FF_CRED], &c) != 0) {
        free(v);
        k->rc = CF_ERR_STORE;
        return 1;
    }
    free(v);
    if (c.idlen == k->idlen && k->idlen > 0 && sodium_memcmp(c.id, k->id, k->idlen) == 0) {
        if (k->f != NULL)
            memcpy(k->f, f, sizeof *f);
        if (k->cred != NULL)
            *k->cred = c;
        k->found = 1;
        return 1;
    }
    return 0;
}

static enum cf_err
name_check(const char *name, char out[MFA_KEY_NAME_MAX + 1], struct cf_errmsg *em)
{
    char tmp[RECORD_FIELD_PT_MAX + 1];
    size_t n;

    if (name == NULL || strlen(name) > MFA_KEY_NAME_MAX ||
        seal_normalize("name", name, strlen(name), SEAL_NORM_TEXT, MFA_KEY_NAME_MAX, tmp,
                       sizeof tmp, &n, NULL) != CF_OK)
        return cf_fail(em, CF_ERR_INPUT, "name: 1 to %d characters of text", MFA_KEY_NAME_MAX);
    memcpy(out, tmp, n + 1);
    return CF_OK;
}

enum cf_err
mfa_webauthn_register(struct records *r, const struct mfa_webauthn_opts *o,
                      const struct account *a, const uint8_t session[STORE_TOKEN_HASH_BYTES],
                      const struct mfa_webauthn_input *in, int64_t now,
                      char key_id[RECORD_ID_HEX + 1], struct cf_errmsg *em)
{
    uint8_t ch[STORE_CHALLENGE_MAX];
    char name[MFA_KEY_NAME_MAX + 1];
    char (*v)[RECORD_FIELD_PT_MAX + 1] = NULL;
    struct store_factor *f = NULL;
    struct mfa_cred cred;
    struct cred_find k;
    size_t chlen;
    enum cf_err rc;

    /* the challenge first: whatever is wrong below, it cannot be replayed */
    if ((rc = take_challenge(r, session, "register", now, ch, &chlen, em)) != CF_OK ||
        (rc = name_check(in->name, name, em)) != CF_OK ||
        (rc = mfa_webauthn_check_registration(o, ch, chlen, in->cdj, in->cdjlen, in->att,
                                              in->attlen, &cred, em)) != CF_OK)
        return rc;
    if (in->idlen != cred.idlen || memcmp(in->id, cred.id, cred.idlen) != 0)
        return cf_fail(em, CF_ERR_INPUT, "id: not the credential of the attestation");
    memset(&k, 0, sizeof k);
    k.r = r;
    k.id = cred.id;
    k.idlen = cred.idlen;
    if ((rc = factors_each(r, a, "webauthn", -1, cred_one, &k)) != CF_OK || (rc = k.rc) != CF_OK)
        return rc;
    if (k.found)
        return cf_fail(em, CF_ERR_EXISTS, "this security key is already registered");
    if (k.count >= MFA_KEYS_MAX)
        return cf_fail(em, CF_ERR_LIMIT, "at most %d security keys per account", MFA_KEYS_MAX);
    rc = CF_ERR_NOMEM;
    v = calloc(FF_COUNT, sizeof *v);
    f = malloc(sizeof *f);
    if (v == NULL || f == NULL)
        goto out;
    factor_new(a, "webauthn", now, f);
    f->active = 1;
    f->counter = cred.counter;
    snprintf(v[FF_NAME], sizeof v[FF_NAME], "%s", name);
    cred_encode(&cred, v[FF_CRED]);
    if ((rc = factor_seal(r, f, v, (1u << FF_NAME) | (1u << FF_CRED))) == CF_OK &&
        (rc = store_factor_put(records_store(r), f)) == CF_OK)
        records_id_format(f->id, key_id);
out:
    free(v);
    free(f);
    return rc;
}

enum cf_err
mfa_webauthn_assert(struct records *r, const struct mfa_webauthn_opts *o,
                    const struct account *a, const uint8_t session[STORE_TOKEN_HASH_BYTES],
                    const struct mfa_webauthn_input *in, int64_t now, int *uv,
                    struct cf_errmsg *em)
{
    uint8_t ch[STORE_CHALLENGE_MAX];
    struct store_factor *f = malloc(sizeof *f);
    struct mfa_cred cred;
    struct cred_find k;
    uint32_t counter = 0;
    size_t chlen;
    enum cf_err rc;

    if (f == NULL)
        return CF_ERR_NOMEM;
    if ((rc = take_challenge(r, session, "assert", now, ch, &chlen, em)) != CF_OK)
        goto out;
    memset(&k, 0, sizeof k);
    k.r = r;
    k.id = in->id;
    k.idlen = in->idlen;
    k.f = f;
    k.cred = &cred;
    if ((rc = factors_each(r, a, "webauthn", 1, cred_one, &k)) != CF_OK || (rc = k.rc) != CF_OK)
        goto out;
    if (!k.found) {
        rc = cf_fail(em, CF_ERR_AUTH, "not a security key of this account");
        goto out;
    }
    cred.counter = (uint32_t)f->counter;
    if ((rc = mfa_webauthn_check_assertion(o, ch, chlen, &cred, in->cdj, in->cdjlen, in->ad,
                                           in->adlen, in->sig, in->siglen, &counter, uv, em)) != CF_OK)
        goto out;
    /* compare-and-set: two racing assertions with one counter, one wins */
    rc = store_factor_advance(records_store(r), f->id, f->counter, counter, now);
    if (rc == CF_ERR_AUTH)
        cf_fail(em, rc, "assertion: the signature counter did not increase");
out:
    free(f);
    return rc;
}
