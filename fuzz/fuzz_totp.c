/*
 * fuzz_totp.c - mfa.c's reading of a TOTP code as typed (code_wellformed)
 * and the verify path behind it (mfa_totp_verify, mfa_totp_confirm), with
 * a real store: a temp data dir, one account with an active TOTP whose
 * secret the target knows.
 *
 * Input: mode (1 byte), 2 bytes of time offset (seconds after a fixed
 * start), 1 byte choosing the factor's last accepted step (now's step
 * -3..+3), then the code text (cut at its first NUL, as it arrives in a
 * JSON string).  Mode bit 0: the code is replaced by the right code of
 * step now + (mode >> 1) % 5 - 2, computed by the reference, then altered
 * by (mode >> 4) % 4: 0 kept, 1 the input text appended, 2 one byte of it
 * replaced by an input byte, 3 cut to an input length; so success stays
 * reachable.
 *
 * Invariants:
 *  - a code is well-formed exactly when it is 6 ASCII digits (reference
 *    written here), and a malformed one is CF_ERR_INPUT for verify and
 *    confirm, with the store unchanged;
 *  - verify succeeds exactly when the code equals the TOTP of a step in
 *    now-1..now+1 later than the last accepted one, by a reference TOTP
 *    (SHA-1, HMAC and RFC 4226 truncation written here, checked against
 *    RFC 6238's vector at start-up, independent of liboath); then the
 *    factor's step becomes the earliest such step and last_used now, and
 *    nothing else of any factor row changes; otherwise CF_ERR_AUTH and no
 *    row changes at all;
 *  - confirm with no pending enrollment for the session is CF_ERR_NOTFOUND
 *    (well-formed) and changes nothing.
 *
 * fuzz-max-len: 96
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <unistd.h>

#include "fuzz.h"

#include "../src/mfa.c"

/* ---- reference TOTP: SHA-1 (FIPS 180-4), HMAC (RFC 2104), RFC 4226 ---- */

static uint32_t
rol(uint32_t x, int n)
{
    return x << n | x >> (32 - n);
}

static void
sha1(const uint8_t *m, size_t len, uint8_t out[20])
{
    uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };
    uint8_t blk[64];
    uint64_t bits = (uint64_t)len * 8;
    size_t off = 0, i;
    int done = 0, padded = 0;

    while (!done) {
        size_t take = len - off >= 64 ? 64 : len - off;
        uint32_t w[80], a, b, c, d, e, f, k, t;

        memset(blk, 0, sizeof blk);
        memcpy(blk, m + off, take);
        off += take;
        if (take < 64) {
            if (!padded)
                blk[take] = 0x80;
            padded = 1;
            if (take < 56) {
                for (i = 0; i < 8; i++)
                    blk[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
                done = 1;
            }
        }
        for (i = 0; i < 16; i++)
            w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 |
                   (uint32_t)blk[4 * i + 2] << 8 | blk[4 * i + 3];
        for (i = 16; i < 80; i++)
            w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (i = 0; i < 80; i++) {
            if (i < 20)
                f = (b & c) | (~b & d), k = 0x5A827999;
            else if (i < 40)
                f = b ^ c ^ d, k = 0x6ED9EBA1;
            else if (i < 60)
                f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
            else
                f = b ^ c ^ d, k = 0xCA62C1D6;
            t = rol(a, 5) + f + e + k + w[i];
            e = d, d = c, c = rol(b, 30), b = a, a = t;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    }
    for (i = 0; i < 20; i++)
        out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* HMAC-SHA-1 of an 8-byte message with a key of at most 64 bytes. */
static void
hmac_sha1(const uint8_t *key, size_t klen, const uint8_t msg[8], uint8_t out[20])
{
    uint8_t in[64 + 20], pad[64];
    size_t i;

    FZ_CHECK(klen <= 64);
    memset(pad, 0, sizeof pad);
    memcpy(pad, key, klen);
    for (i = 0; i < 64; i++)
        in[i] = pad[i] ^ 0x36;
    memcpy(in + 64, msg, 8);
    sha1(in, 64 + 8, out);
    for (i = 0; i < 64; i++)
        in[i] = pad[i] ^ 0x5c;
    memcpy(in + 64, out, 20);
    sha1(in, 64 + 20, out);
}

/* The code of `step`, `digits` digits, NUL-terminated. */
static void
ref_totp(const uint8_t *key, size_t klen, uint64_t step, unsigned digits, char out[9])
{
    uint8_t msg[8], mac[20];
    uint32_t bin, mod = 1;
    unsigned i, o;

    for (i = 0; i < 8; i++)
        msg[i] = (uint8_t)(step >> (56 - 8 * i));
    hmac_sha1(key, klen, msg, mac);
    o = mac[19] & 0x0f;
    bin = (uint32_t)(mac[o] & 0x7f) << 24 | (uint32_t)mac[o + 1] << 16 | (uint32_t)mac[o + 2] << 8 | mac[o + 3];
    for (i = 0; i < digits; i++)
        mod *= 10;
    bin %= mod;
    for (i = digits; i-- > 0;) {
        out[i] = (char)('0' + bin % 10);
        bin /= 10;
    }
    out[digits] = '\0';
}

static int
ref_wellformed(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return i == 6;
}

/* ---- the store ---------------------------------------------------------- */

#define T0 INT64_C(1800000000)          /* the enrollment; inputs come after */
#define LAST_USED INT64_C(1700000000)   /* set on every factor row before each input */

static char root[256];
static struct records *rec;
static struct account fz_acct;
static uint8_t secret[MFA_TOTP_SECRET_BYTES];
static const uint8_t no_session[STORE_TOKEN_HASH_BYTES] = { 0x77 };

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void
cleanup(void)
{
    records_close(rec);
    if (root[0] != '\0')
        nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* base32 (RFC 4648, grouped by spaces) of the enrollment, decoded here */
static void
secret_from_text(const char *text)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    uint32_t acc = 0;
    size_t i, n = 0;
    int bits = 0;

    for (i = 0; text[i] != '\0'; i++) {
        const char *p;

        if (text[i] == ' ')
            continue;
        p = strchr(alpha, text[i]);
        FZ_CHECK(p != NULL && *p != '\0');
        acc = acc << 5 | (uint32_t)(p - alpha);
        bits += 5;
        if (bits >= 8) {
            FZ_CHECK(n < sizeof secret);
            secret[n++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    FZ_CHECK(n == sizeof secret);
}

#define ROWS_MAX 4

struct rows {
    struct store_factor f[ROWS_MAX];
    size_t n;
};

static int
grab_row(void *arg, const struct store_factor *f)
{
    struct rows *r = arg;

    FZ_CHECK(r->n < ROWS_MAX);
    memcpy(&r->f[r->n++], f, sizeof *f);
    return 0;
}

static void
rows_of(struct rows *r)
{
    memset(r, 0, sizeof *r);
    FZ_CHECK(store_factors_of(records_store(rec), fz_acct.row.id, ROWS_MAX, grab_row, r) == CF_OK);
    FZ_CHECK(r->n == 1 && r->f[0].active && strcmp(r->f[0].kind, "totp") == 0);
}

/* Field by field (a struct's padding is not data). */
static int
rows_equal(const struct rows *a, const struct rows *b)
{
    size_t i;

    if (a->n != b->n)
        return 0;
    for (i = 0; i < a->n; i++) {
        const struct store_factor *x = &a->f[i], *y = &b->f[i];

        if (memcmp(x->id, y->id, sizeof x->id) != 0 || memcmp(x->account, y->account, sizeof x->account) != 0 ||
            strcmp(x->kind, y->kind) != 0 || x->active != y->active || x->has_session != y->has_session ||
            (x->has_session && memcmp(x->session, y->session, sizeof x->session) != 0) ||
            strcmp(x->compartment, y->compartment) != 0 || x->kv != y->kv || x->counter != y->counter ||
            x->created != y->created || x->last_used != y->last_used || x->fields_len != y->fields_len ||
            memcmp(x->fields, y->fields, x->fields_len) != 0)
            return 0;
    }
    return 1;
}

/* The reference verdict: the earliest step in now-1..now+1 after `last`
 * whose code is `code`, or -1 (also for a malformed code). */
static int64_t
ref_match(const char *code, int64_t step, int64_t last)
{
    char right[9];
    int64_t s;

    if (!ref_wellformed(code))
        return -1;
    for (s = step - 1; s <= step + 1; s++) {
        ref_totp(secret, sizeof secret, (uint64_t)s, 6, right);
        if (s > last && strcmp(code, right) == 0)
            return s;
    }
    return -1;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const codes[] = { "10" };
    struct account_provision in = { ROLE_ACADEMIE_ADMIN, NULL, "10", NULL, "fuzz.totp", 0 };
    struct cf_errmsg em = { "" };
    struct mfa_totp_enrollment e;
    const char *tmp = getenv("TMPDIR");
    char dir[300], code[ACTIVATION_CODE_TEXT + 1], want[9], got[9];
    uint8_t seed[32], session[STORE_TOKEN_HASH_BYTES];

    (void)argc;
    (void)argv;
    FZ_CHECK(sodium_init() >= 0);
    /* the reference against RFC 6238 appendix B (SHA-1, T = 59 and 1111111109) */
    ref_totp((const uint8_t *)"12345678901234567890", 20, 59 / 30, 8, want);
    FZ_CHECK(strcmp(want, "94287082") == 0);
    ref_totp((const uint8_t *)"12345678901234567890", 20, 1111111109 / 30, 8, want);
    FZ_CHECK(strcmp(want, "07081804") == 0);
    FZ_CHECK(mfa_totp_at((const uint8_t *)"12345678901234567890", 20, 1111111109 / 30, 6, got) == 0);
    FZ_CHECK(strcmp(got, "081804") == 0);

    snprintf(root, sizeof root, "%s/coffre-fuzz-totp-XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    FZ_CHECK(mkdtemp(root) != NULL);
    atexit(cleanup);
    snprintf(dir, sizeof dir, "%s/data", root);
    FZ_CHECK(records_init(dir, codes, 1, seed, &em) == CF_OK);
    FZ_CHECK(records_open(dir, NULL, &rec, &em) == CF_OK);
    FZ_CHECK(account_provision(rec, &in, &fz_acct, code, &em) == CF_OK);
    memset(session, 0x5a, sizeof session);
    FZ_CHECK(mfa_totp_enroll(rec, &fz_acct, session, T0, &e) == CF_OK);
    secret_from_text(e.secret);
    mfa_totp_enrollment_release(&e);
    ref_totp(secret, sizeof secret, (uint64_t)(T0 / MFA_TOTP_STEP_S), 6, want);
    FZ_CHECK(mfa_totp_confirm(rec, &fz_acct, session, want, T0) == CF_OK);
    return 0;
}

/* The factor's step and last_used as the input says, whatever an earlier
 * input did (the replay driver forks, libFuzzer does not). */
static void
set_state(int64_t counter)
{
    struct rows r;

    rows_of(&r);
    FZ_CHECK(store_factor_advance(records_store(rec), r.f[0].id, r.f[0].counter, counter, LAST_USED) == CF_OK);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = { data, size };
    struct rows before, after;
    uint8_t mode = fz_u8(&in);
    int64_t now = T0 + 60 + fz_u16(&in), step = now / MFA_TOTP_STEP_S;
    int64_t counter = step - 3 + fz_u8(&in) % 7, match;
    size_t n = 0, tlen;
    const uint8_t *text = fz_take(&in, in.n, &tlen);
    char *code = malloc(tlen + 16), right[9];
    enum cf_err rc;
    int ok;

    FZ_CHECK(code != NULL);
    /* the text cut at its first NUL */
    while (n < tlen && text[n] != 0)
        n++;
    memcpy(code, text, n);
    code[n] = '\0';
    if (mode & 1) {
        int alter = (mode >> 4) % 4;

        ref_totp(secret, sizeof secret, (uint64_t)(step + (mode >> 1) % 5 - 2), 6, right);
        if (alter == 0 || n == 0) {
            memcpy(code, right, 7);
        } else if (alter == 1) {
            memmove(code + 6, code, n + 1);
            memcpy(code, right, 6);
        } else if (alter == 2) {
            memcpy(code, right, 7);
            code[text[0] % 6] = (char)text[n - 1];
        } else {
            memcpy(code, right, 7);
            code[text[0] % 7] = '\0';
        }
    }

    set_state(counter);
    rows_of(&before);
    FZ_CHECK(before.f[0].counter == counter && before.f[0].last_used == LAST_USED);

    /* confirm: no pending enrollment for this session */
    rc = mfa_totp_confirm(rec, &fz_acct, no_session, code, now);
    FZ_CHECK(rc == (ref_wellformed(code) ? CF_ERR_NOTFOUND : CF_ERR_INPUT));
    FZ_CHECK(code_wellformed(code) == ref_wellformed(code));
    rows_of(&after);
    FZ_CHECK(rows_equal(&before, &after));

    /* verify */
    ok = ref_wellformed(code);
    match = ref_match(code, step, counter);
    rc = mfa_totp_verify(rec, &fz_acct, code, now);
    rows_of(&after);
    if (!ok) {
        FZ_CHECK(rc == CF_ERR_INPUT);
    } else if (match < 0) {
        FZ_CHECK(rc == CF_ERR_AUTH);
    } else {
        FZ_CHECK(rc == CF_OK);
        FZ_CHECK(after.f[0].counter == match && after.f[0].last_used == now);
        /* nothing else of the row: put the two back and compare all */
        after.f[0].counter = counter;
        after.f[0].last_used = LAST_USED;
        /* the same code again is a replay (unless it is also a later
         * step's code, one chance in a million) */
        FZ_CHECK((mfa_totp_verify(rec, &fz_acct, code, now) == CF_OK) == (ref_match(code, step, match) >= 0));
    }
    FZ_CHECK(rows_equal(&before, &after));
    free(code);
    return 0;
}
