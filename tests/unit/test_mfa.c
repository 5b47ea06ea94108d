/*
 * test_mfa.c - second factors: TOTP against RFC 6238's vectors, the +-1
 * window and replays; recovery codes; the policy gate and step-up; WebAuthn
 * against recorded ceremonies (tests/fixtures/webauthn/fixtures.json, made
 * by gen.mjs with node's crypto), tampered ones refused one by one; and the
 * ceremonies through the store (single-use, expiring challenges, counters).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <time.h>

#include <jansson.h>
#include <oath.h>
#include <sodium.h>

#include "../../src/mfa.c"
#include "demo.h"
#include "testutil.h"

#define FIXTURES "tests/fixtures/webauthn/fixtures.json"

/* ---- TOTP vectors (no store) ------------------------------------------ */

/* RFC 6238 appendix B, SHA-1, secret "12345678901234567890": the vectors
 * are 8 digits; 6 digits are their last six (the same truncation, mod 10^6). */
static void
test_totp_rfc6238(void **state)
{
    static const struct { int64_t t; const char *code; } v[] = {
        { 59, "94287082" }, { 1111111109, "07081804" }, { 1111111111, "14050471" },
        { 1234567890, "89005924" }, { 2000000000, "69279037" }, { 20000000000LL, "65353130" },
    };
    const uint8_t *secret = (const uint8_t *)"12345678901234567890";
    char out[9];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        assert_int_equal(mfa_totp_at(secret, 20, (uint64_t)(v[i].t / 30), 8, out), 0);
        assert_string_equal(out, v[i].code);
        assert_int_equal(mfa_totp_at(secret, 20, (uint64_t)(v[i].t / 30), 6, out), 0);
        assert_string_equal(out, v[i].code + 2);
    }
    assert_int_not_equal(mfa_totp_at(secret, 20, 1, 5, out), 0);
    assert_int_not_equal(mfa_totp_at(secret, 20, 1, 9, out), 0);
}

/* ---- the policy (no store) -------------------------------------------- */

static void
test_policy_gate(void **state)
{
    struct mfa_policy p;
    struct account a;
    struct mfa_state none = { 0, 0, 0, 0 }, totp = { MFA_TOTP | MFA_RECOVERY, 10, 0, 0 },
                     key = { MFA_WEBAUTHN, 0, 1, 0 };
    int64_t now = 1700000000;
    int r;

    (void)state;
    memset(&a, 0, sizeof a);
    mfa_policy_default(&p);
    assert_int_equal(p.step_up_s, 600);
    for (r = 0; r < ROLE_COUNT; r++)
        assert_int_equal(mfa_role_required(&p, (enum account_role)r), r != ROLE_STUDENT && r != ROLE_GUARDIAN);
    /* a teacher: enroll, then pass it */
    a.role = ROLE_TEACHER;
    assert_int_equal(mfa_gate(&p, &a, &none, 0), MFA_GATE_ENROLL);
    assert_int_equal(mfa_gate(&p, &a, &totp, 0), MFA_GATE_CHALLENGE);
    assert_int_equal(mfa_gate(&p, &a, &totp, 1), MFA_GATE_OK);
    assert_int_equal(mfa_gate(&p, &a, &key, 2), MFA_GATE_OK);
    /* a student: nothing needed, but an enrolled factor is asked for */
    a.role = ROLE_STUDENT;
    assert_int_equal(mfa_gate(&p, &a, &none, 0), MFA_GATE_OK);
    assert_int_equal(mfa_gate(&p, &a, &totp, 0), MFA_GATE_CHALLENGE);
    /* step-up: a factor within 10 minutes */
    a.role = ROLE_ACADEMIE_ADMIN;
    assert_int_equal(mfa_gate_step_up(&p, &a, &totp, 1, now - 599, now), MFA_GATE_OK);
    assert_int_equal(mfa_gate_step_up(&p, &a, &totp, 1, now - 601, now), MFA_GATE_CHALLENGE);
    assert_int_equal(mfa_gate_step_up(&p, &a, &totp, 1, 0, now), MFA_GATE_CHALLENGE);
    assert_int_equal(mfa_gate_step_up(&p, &a, &totp, 0, now, now), MFA_GATE_CHALLENGE);
    assert_int_equal(mfa_gate_step_up(&p, &a, &none, 0, 0, now), MFA_GATE_ENROLL);
    /* admins on security keys only: TOTP no longer counts */
    mfa_policy_admin_webauthn(&p);
    assert_int_equal(mfa_level_needed(&p, ROLE_ACADEMIE_ADMIN), MFA_LEVEL_KEY);
    assert_int_equal(mfa_level_needed(&p, ROLE_TEACHER), MFA_LEVEL_CODE);
    assert_int_equal(mfa_gate(&p, &a, &totp, 1), MFA_GATE_ENROLL);
    assert_int_equal(mfa_gate(&p, &a, &key, 1), MFA_GATE_CHALLENGE);
    assert_int_equal(mfa_gate(&p, &a, &key, 2), MFA_GATE_OK);
    /* no role required: an account without factors passes even step-up */
    p.required = 0;
    assert_int_equal(mfa_gate_step_up(&p, &a, &none, 0, 0, now), MFA_GATE_OK);
}

/* ---- with a store ----------------------------------------------------- */

struct fx {
    char root[300], dir[320];
    struct records *r;
    struct account a;
};

static int
first_student(void *arg, const struct record *rec)
{
    memcpy(arg, rec->id, RECORD_ID_HEX + 1);
    return 1;
}

static int
setup(void **state)
{
    static const char *const codes[] = { "10" };
    struct fx *f = calloc(1, sizeof *f);
    struct cf_errmsg em = { "" };
    struct demo_counts n;
    struct demo_opts o = { "10", 1, 3, 1, 7, 0 };
    struct record e;
    char person[RECORD_ID_HEX + 1], code[ACTIVATION_CODE_TEXT + 1];
    struct account_provision in = { ROLE_TEACHER, NULL, NULL, NULL, NULL, 0 };
    uint8_t seed[32];

    snprintf(f->root, sizeof f->root, "%s", tu_tmpdir());
    snprintf(f->dir, sizeof f->dir, "%s/data", f->root);
    assert_int_equal(records_init(f->dir, codes, 1, seed, &em), CF_OK);
    assert_int_equal(records_open(f->dir, NULL, &f->r, &em), CF_OK);
    assert_int_equal(demo_generate(f->r, &o, NULL, NULL, &n, &em), CF_OK);
    assert_int_equal(records_find(f->r, REC_ESTABLISHMENT, "uai", "0990000M", 0, &e, &em), CF_OK);
    assert_int_equal(records_children(f->r, REC_STUDENT, 0, e.id, 1, 0, first_student, person, &em), CF_OK);
    in.role = ROLE_STUDENT;
    in.person_id = person;
    assert_int_equal(account_provision(f->r, &in, &f->a, code, &em), CF_OK);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    records_close(f->r);
    tu_rmrf(f->root);
    free(f);
    return 0;
}

static void
session_hash(uint8_t h[STORE_TOKEN_HASH_BYTES], uint8_t fill)
{
    memset(h, fill, STORE_TOKEN_HASH_BYTES);
}

/* The raw secret of an enrollment's grouped base32 text. */
static void
secret_of(const struct mfa_totp_enrollment *e, uint8_t out[MFA_TOTP_SECRET_BYTES])
{
    char b32[64], *raw = NULL;
    size_t i, o = 0, n = 0;

    for (i = 0; e->secret[i] != '\0'; i++)
        if (e->secret[i] != ' ')
            b32[o++] = e->secret[i];
    b32[o] = '\0';
    assert_int_equal(o, 32);
    assert_int_equal(oath_base32_decode(b32, o, &raw, &n), OATH_OK);
    assert_int_equal(n, MFA_TOTP_SECRET_BYTES);
    memcpy(out, raw, n);
    free(raw);
}

static const char *
code_at(const uint8_t *secret, int64_t step)
{
    static char out[9];

    assert_int_equal(mfa_totp_at(secret, MFA_TOTP_SECRET_BYTES, (uint64_t)step, 6, out), 0);
    return out;
}

static int
has_bytes(const uint8_t *hay, size_t n, const void *needle, size_t k)
{
    size_t i;

    for (i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return 1;
    return 0;
}

static int
grab(void *arg, const struct store_factor *f)
{
    memcpy(arg, f, sizeof *f);
    return 1;
}

static void
test_totp_enroll_verify(void **state)
{
    struct fx *f = *state;
    uint8_t sa[STORE_TOKEN_HASH_BYTES], sb[STORE_TOKEN_HASH_BYTES], secret[MFA_TOTP_SECRET_BYTES];
    int64_t now = 1800000000, t = now / 30, t3;
    struct mfa_totp_enrollment e;
    struct mfa_state st;
    struct store_factor *row = malloc(sizeof *row);
    char wrong[16];

    session_hash(sa, 0xa1);
    session_hash(sb, 0xb2);
    assert_int_equal(mfa_totp_verify(f->r, &f->a, "123456", now), CF_ERR_NOTFOUND);
    assert_int_equal(mfa_totp_enroll(f->r, &f->a, sa, now, &e), CF_OK);
    assert_non_null(strstr(e.uri, "otpauth://totp/coffre:"));
    assert_int_equal(strncmp(e.qr_svg, "<svg ", 5), 0);
    assert_non_null(strstr(e.qr_svg, "</svg>"));
    secret_of(&e, secret);
    /* pending: not a factor yet; sealed: neither the bytes nor the text in the row */
    assert_int_equal(mfa_state_of(f->r, &f->a, &st), CF_OK);
    assert_int_equal(st.enrolled, 0);
    assert_int_equal(st.totp_pending, 1);
    assert_int_equal(store_factors_of(records_store(f->r), f->a.row.id, 10, grab, row), CF_OK);
    assert_false(has_bytes(row->fields, row->fields_len, secret, sizeof secret));
    assert_false(has_bytes(row->fields, row->fields_len, e.secret, 4));
    mfa_totp_enrollment_release(&e);

    /* malformed codes: letters, spaces, lengths */
    assert_int_equal(mfa_totp_confirm(f->r, &f->a, sa, "12a456", now), CF_ERR_INPUT);
    assert_int_equal(mfa_totp_confirm(f->r, &f->a, sa, "123 456", now), CF_ERR_INPUT);
    assert_int_equal(mfa_totp_confirm(f->r, &f->a, sa, "12345", now), CF_ERR_INPUT);
    assert_int_equal(mfa_totp_confirm(f->r, &f->a, sa, "1234567", now), CF_ERR_INPUT);
    assert_int_equal(mfa_totp_confirm(f->r, &f->a, sa, "", now), CF_ERR_INPUT);
    /* another session's enrollment is not confirmed, even with the right code */
    assert_int_equal(mfa_totp_confirm(f->r, &f->a, sb, code_at(secret, t), now), CF_ERR_NOTFOUND);
    snprintf(wrong, sizeof wrong, "%06ld", (strtol(code_at(secret, t), NULL, 10) + 1) % 1000000);
    assert_int_equal(mfa_totp_confirm(f->r, &f->a, sa, wrong, now), CF_ERR_AUTH);
    assert_int_equal(mfa_totp_confirm(f->r, &f->a, sa, code_at(secret, t), now), CF_OK);
    assert_int_equal(mfa_state_of(f->r, &f->a, &st), CF_OK);
    assert_int_equal(st.enrolled, MFA_TOTP);
    assert_int_equal(st.totp_pending, 0);

    /* the confirming step is spent; so is every step before it */
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t), now), CF_ERR_AUTH);
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t - 1), now), CF_ERR_AUTH);
    /* +2 is outside the window, +1 inside; then +1 again is a replay */
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t + 2), now), CF_ERR_AUTH);
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t + 1), now), CF_OK);
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t + 1), now), CF_ERR_AUTH);
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t + 1), now + 30), CF_ERR_AUTH);
    /* later: -1 and +1 accepted (once), -2 and +2 refused */
    t3 = t + 100;
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t3 - 2), t3 * 30 + 15), CF_ERR_AUTH);
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t3 + 2), t3 * 30 + 15), CF_ERR_AUTH);
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t3 - 1), t3 * 30 + 15), CF_OK);
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t3 - 1), t3 * 30 + 15), CF_ERR_AUTH);
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t3), t3 * 30 + 15), CF_OK);
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t3 + 1), t3 * 30 + 15), CF_OK);
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t3 + 1), t3 * 30 + 15), CF_ERR_AUTH);
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t3), t3 * 30 + 15), CF_ERR_AUTH);

    /* a new enrollment leaves the active TOTP in force until confirmed */
    assert_int_equal(mfa_totp_enroll(f->r, &f->a, sa, now, &e), CF_OK);
    mfa_totp_enrollment_release(&e);
    assert_int_equal(mfa_state_of(f->r, &f->a, &st), CF_OK);
    assert_int_equal(st.enrolled, MFA_TOTP);
    assert_int_equal(st.totp_pending, 1);
    assert_int_equal(mfa_totp_verify(f->r, &f->a, code_at(secret, t3 + 200), (t3 + 200) * 30), CF_OK);
    /* a pending enrollment expires: 15 minutes to confirm it */
    {
        uint8_t s2[MFA_TOTP_SECRET_BYTES];
        int64_t later = now + 10000;

        assert_int_equal(mfa_totp_enroll(f->r, &f->a, sa, later, &e), CF_OK);
        secret_of(&e, s2);
        mfa_totp_enrollment_release(&e);
        later += MFA_ENROLL_TTL_S + 1;
        assert_int_equal(mfa_totp_confirm(f->r, &f->a, sa, code_at(s2, later / 30), later), CF_ERR_NOTFOUND);
        later -= 2;
        assert_int_equal(mfa_totp_confirm(f->r, &f->a, sa, code_at(s2, later / 30), later), CF_OK);
    }
    /* an operator's reset: nothing left, nothing pending */
    {
        struct cf_errmsg em = { "" };
        char codes[MFA_RECOVERY_COUNT][MFA_RECOVERY_TEXT + 1];

        assert_int_equal(mfa_recovery_new(f->r, &f->a, now, codes), CF_OK);
        assert_int_equal(mfa_totp_enroll(f->r, &f->a, sb, now, &e), CF_OK);
        mfa_totp_enrollment_release(&e);
        assert_int_equal(mfa_reset(f->r, &f->a, &em), CF_OK);
        assert_int_equal(mfa_state_of(f->r, &f->a, &st), CF_OK);
        assert_int_equal(st.enrolled, 0);
        assert_int_equal(st.recovery_left, 0);
        assert_int_equal(st.totp_pending, 0);
        assert_int_equal(mfa_recovery_use(f->r, &f->a, codes[0], now), CF_ERR_AUTH);
    }
    free(row);
}

static int
count_used(void *arg, int64_t when)
{
    (*(int *)arg)++;
    assert_true(when > 0);
    return 0;
}

static void
test_recovery(void **state)
{
    struct fx *f = *state;
    char codes[MFA_RECOVERY_COUNT][MFA_RECOVERY_TEXT + 1], lower[MFA_RECOVERY_TEXT + 1], raw[16];
    struct mfa_state st;
    int used = 0;
    size_t i, j, o = 0;

    assert_int_equal(mfa_recovery_new(f->r, &f->a, 1000, codes), CF_OK);
    for (i = 0; i < MFA_RECOVERY_COUNT; i++) {
        assert_int_equal(strlen(codes[i]), MFA_RECOVERY_TEXT);
        assert_int_equal(codes[i][4], '-');
        for (j = 0; j < i; j++)
            assert_string_not_equal(codes[i], codes[j]);
    }
    assert_int_equal(mfa_state_of(f->r, &f->a, &st), CF_OK);
    assert_int_equal(st.recovery_left, 10);
    assert_true(st.enrolled & MFA_RECOVERY);
    /* case and dashes do not matter; spaces and other symbols are malformed */
    for (i = 0; codes[0][i] != '\0'; i++) {
        lower[i] = (char)(codes[0][i] >= 'A' && codes[0][i] <= 'Z' ? codes[0][i] + 32 : codes[0][i]);
        if (codes[0][i] != '-')
            raw[o++] = codes[0][i];
    }
    lower[i] = '\0';
    raw[o] = '\0';
    assert_int_equal(mfa_recovery_use(f->r, &f->a, "ABCD EFGH JKLM", 2000), CF_ERR_INPUT);
    assert_int_equal(mfa_recovery_use(f->r, &f->a, "ABCD-EFGH-JKL0", 2000), CF_ERR_INPUT);
    assert_int_equal(mfa_recovery_use(f->r, &f->a, "ABCD-EFGH-JKLMN", 2000), CF_ERR_INPUT);
    assert_int_equal(mfa_recovery_use(f->r, &f->a, "ABCD-EFGH-JKLM", 2000), CF_ERR_AUTH);
    assert_int_equal(mfa_recovery_use(f->r, &f->a, lower, 2000), CF_OK);
    assert_int_equal(mfa_recovery_use(f->r, &f->a, codes[0], 2001), CF_ERR_AUTH);
    assert_int_equal(mfa_recovery_use(f->r, &f->a, raw, 2002), CF_ERR_AUTH);
    assert_int_equal(mfa_recovery_use(f->r, &f->a, codes[9], 2003), CF_OK);
    assert_int_equal(mfa_state_of(f->r, &f->a, &st), CF_OK);
    assert_int_equal(st.recovery_left, 8);
    assert_int_equal(mfa_recovery_used(f->r, &f->a, count_used, &used), CF_OK);
    assert_int_equal(used, 2);
    /* a new set replaces the old one entirely */
    memcpy(raw, codes[1], sizeof codes[1]);
    assert_int_equal(mfa_recovery_new(f->r, &f->a, 3000, codes), CF_OK);
    assert_int_equal(mfa_recovery_use(f->r, &f->a, raw, 3001), CF_ERR_AUTH);
    assert_int_equal(mfa_recovery_use(f->r, &f->a, codes[1], 3002), CF_OK);
}

/* ---- WebAuthn fixtures -------------------------------------------------- */

static json_t *
fixtures(void)
{
    json_error_t err;
    json_t *j = json_load_file(FIXTURES, 0, &err);

    if (j == NULL)
        fail_msg("%s: %s (run the tests from the repository root)", FIXTURES, err.text);
    return j;
}

struct bin {
    uint8_t b[16384];
    size_t n;
};

static void
b64(json_t *o, const char *name, struct bin *out)
{
    const char *s = json_string_value(json_object_get(o, name));

    assert_non_null(s);
    assert_int_equal(sodium_base642bin(out->b, sizeof out->b, s, strlen(s), NULL, &out->n, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
}

static struct mfa_webauthn_opts
rp(json_t *fx)
{
    struct mfa_webauthn_opts o = { "localhost", { NULL }, 1 };

    o.origins[0] = json_string_value(json_object_get(fx, "origin"));
    return o;
}

static enum cf_err
check_reg(const struct mfa_webauthn_opts *o, json_t *reg, struct mfa_cred *cred, struct cf_errmsg *em)
{
    static struct bin ch, cdj, att;

    b64(reg, "challenge", &ch);
    b64(reg, "clientDataJSON", &cdj);
    b64(reg, "attestationObject", &att);
    return mfa_webauthn_check_registration(o, ch.b, ch.n, cdj.b, cdj.n, att.b, att.n, cred, em);
}

static void
test_webauthn_fixtures(void **state)
{
    json_t *fx = fixtures(), *c;
    struct mfa_webauthn_opts o = rp(fx);
    size_t i, k, nref = 0;

    (void)state;
    json_array_foreach(json_object_get(fx, "credentials"), i, c) {
        const char *alg = json_string_value(json_object_get(c, "alg"));
        struct cf_errmsg em = { "" };
        struct mfa_cred cred, other;
        json_t *x;

        assert_int_equal(check_reg(&o, json_object_get(c, "registration"), &cred, &em), CF_OK);
        assert_int_equal(cred.alg, strcmp(alg, "es256") == 0 ? -7 : -8);
        assert_int_equal(cred.pklen, strcmp(alg, "es256") == 0 ? 64 : 32);
        assert_int_equal(cred.idlen, 32);
        assert_int_equal(cred.uv, 1);
        /* the relying party must be right: another RP id refuses the same bytes */
        {
            struct mfa_webauthn_opts evil = o;

            evil.rp_id = "evil.invalid";
            assert_int_not_equal(check_reg(&evil, json_object_get(c, "registration"), &other, &em), CF_OK);
        }
        json_array_foreach(json_object_get(c, "registrations"), k, x) {
            int want = strcmp(json_string_value(json_object_get(x, "expect")), "ok") == 0;
            enum cf_err rc;

            em.msg[0] = '\0';
            rc = check_reg(&o, x, &other, &em);
            if ((rc == CF_OK) != want)
                fail_msg("%s registration '%s': got %s (%s)", alg,
                         json_string_value(json_object_get(x, "name")), cf_err_str(rc), em.msg);
            if (!want) {
                assert_true(em.msg[0] != '\0');       /* a clear reason */
                nref++;
            }
            if (getenv("MFA_VERBOSE") != NULL)
                fprintf(stderr, "%s registration '%s': %s\n", alg,
                        json_string_value(json_object_get(x, "name")), want ? "ok" : em.msg);
        }
        json_array_foreach(json_object_get(c, "assertions"), k, x) {
            int want = strcmp(json_string_value(json_object_get(x, "expect")), "ok") == 0;
            static struct bin ch, cdj, ad, sig;
            uint32_t counter = 0;
            int uv = 0;
            enum cf_err rc;

            b64(x, "challenge", &ch);
            b64(x, "clientDataJSON", &cdj);
            b64(x, "authenticatorData", &ad);
            b64(x, "signature", &sig);
            cred.counter = (uint32_t)json_integer_value(json_object_get(x, "stored_counter"));
            em.msg[0] = '\0';
            rc = mfa_webauthn_check_assertion(&o, ch.b, ch.n, &cred, cdj.b, cdj.n, ad.b, ad.n,
                                              sig.b, sig.n, &counter, &uv, &em);
            if ((rc == CF_OK) != want)
                fail_msg("%s assertion '%s': got %s (%s)", alg,
                         json_string_value(json_object_get(x, "name")), cf_err_str(rc), em.msg);
            if (want)
                assert_int_equal(uv, 1);
            else {
                assert_true(em.msg[0] != '\0');
                nref++;
            }
            if (getenv("MFA_VERBOSE") != NULL)
                fprintf(stderr, "%s assertion '%s': %s\n", alg,
                        json_string_value(json_object_get(x, "name")), want ? "ok" : em.msg);
        }
    }
    assert_true(nref >= 2 * 20);
    json_decref(fx);
}

/* Containers whose headers claim more than the bytes present are refused
 * before libcbor allocates them (libcbor 0.8 would allocate the claim). */
static void
test_cbor_bounds(void **state)
{
    static const uint8_t huge_map[] = { 0xbb, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00 };
    static const uint8_t huge_array[] = { 0xa1, 0x63, 'f', 'm', 't', 0x9a, 0x7f, 0xff, 0xff, 0xff };
    static const uint8_t indefinite[] = { 0xbf, 0x63, 'f', 'm', 't', 0x64, 'n', 'o', 'n', 'e', 0xff };
    static const uint8_t huge_bytes[] = { 0xa1, 0x63, 'f', 'm', 't', 0x5a, 0x7f, 0xff, 0xff, 0xff };
    uint8_t deep[40];
    const struct { const uint8_t *b; size_t n; } bad[] = {
        { huge_map, sizeof huge_map }, { huge_array, sizeof huge_array },
        { indefinite, sizeof indefinite }, { huge_bytes, sizeof huge_bytes }, { deep, sizeof deep },
    };
    size_t i, used;

    (void)state;
    memset(deep, 0x81, sizeof deep);              /* [[[[...]]]] past MFA_CBOR_DEPTH */
    deep[sizeof deep - 1] = 0x00;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_not_equal(cbor_walk(bad[i].b, bad[i].n, &used), 0);
    /* a complete item: its own length, whatever follows */
    assert_int_equal(cbor_walk(indefinite + 1, sizeof indefinite - 2, &used), 0);
    assert_int_equal(used, 4);
    assert_int_equal(cbor_walk(deep + sizeof deep - 10, 10, &used), 0);
    assert_int_equal(used, 10);
}

/* An assertion's extensions (flag ED) claiming more than is there are
 * refused before libfido2 gives them to libcbor (fuzz/corpus/webauthn/
 * regress-assertion-ext-huge-map); complete ones, or none, pass. */
static void
test_webauthn_assertion_extensions(void **state)
{
    struct mfa_webauthn_opts o = { "localhost", { "http://localhost:8080" }, 1 };
    static const uint8_t huge_map[] = { 0xba, 0x20, 0x00, 0x00, 0x00, 0x01 };
    uint8_t ad[37 + sizeof huge_map];
    struct cf_errmsg em = { "" };
    struct authdata d;

    (void)state;
    crypto_hash_sha256(ad, (const uint8_t *)"localhost", 9);
    ad[32] = AD_UP | AD_ED;
    memset(ad + 33, 0, 4);
    memcpy(ad + 37, huge_map, sizeof huge_map);
    assert_int_equal(check_assertion_authdata(&o, ad, sizeof ad, &d, &em), CF_ERR_INPUT);
    assert_non_null(strstr(em.msg, "extensions"));
    /* the attack: an ED flag with nothing after it, or trailing bytes */
    assert_int_equal(check_assertion_authdata(&o, ad, 37, &d, &em), CF_ERR_INPUT);
    ad[37] = 0xa0;                                  /* {} */
    ad[38] = 0x00;
    assert_int_equal(check_assertion_authdata(&o, ad, 39, &d, &em), CF_ERR_INPUT);
    /* legitimate: a complete empty map, or no extensions at all */
    assert_int_equal(check_assertion_authdata(&o, ad, 38, &d, &em), CF_OK);
    ad[32] = AD_UP;
    assert_int_equal(check_assertion_authdata(&o, ad, 37, &d, &em), CF_OK);
}

/* Each WebAuthn bound at N-1 (or N) accepted by its check, N+1 refused
 * as over the limit. */
static void
test_webauthn_bounds(void **state)
{
    struct mfa_webauthn_opts o = { "localhost", { "http://localhost:8080" }, 1 };
    uint8_t ch[32], h[32], *buf = malloc(MFA_ATTESTATION_MAX + 2);
    char b64[64], name[MFA_KEY_NAME_MAX + 2], kept[MFA_KEY_NAME_MAX + 1];
    struct cf_errmsg em = { "" };
    struct authdata d;
    struct mfa_cred cred;
    int n;

    (void)state;
    memset(ch, 7, sizeof ch);
    sodium_bin2base64(b64, sizeof b64, ch, sizeof ch, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    /* clientDataJSON: a valid one padded with spaces to N and N+1 bytes */
    n = snprintf((char *)buf, MFA_ATTESTATION_MAX,
                 "{\"type\":\"webauthn.get\",\"challenge\":\"%s\",\"origin\":\"http://localhost:8080\"}", b64);
    memset(buf + n, ' ', MFA_CLIENTDATA_MAX + 1 - (size_t)n);
    assert_int_equal(check_client_data(&o, "webauthn.get", ch, sizeof ch, buf, MFA_CLIENTDATA_MAX, h, &em), CF_OK);
    assert_int_equal(check_client_data(&o, "webauthn.get", ch, sizeof ch, buf, MFA_CLIENTDATA_MAX + 1, h, &em),
                     CF_ERR_LIMIT);
    assert_int_equal(check_client_data(&o, "webauthn.get", ch, sizeof ch, buf, 0, h, &em), CF_ERR_LIMIT);
    /* authenticator data: 37 .. MFA_AUTHDATA_MAX */
    memset(buf, 0, MFA_AUTHDATA_MAX + 1);
    crypto_hash_sha256(buf, (const uint8_t *)"localhost", 9);
    buf[32] = 0x01;
    assert_int_equal(check_authdata(&o, buf, 36, &d, &em), CF_ERR_LIMIT);
    assert_int_equal(check_authdata(&o, buf, 37, &d, &em), CF_OK);
    assert_int_equal(check_authdata(&o, buf, MFA_AUTHDATA_MAX, &d, &em), CF_OK);
    assert_int_equal(check_authdata(&o, buf, MFA_AUTHDATA_MAX + 1, &d, &em), CF_ERR_LIMIT);
    /* attestationObject: over MFA_ATTESTATION_MAX refused before parsing;
     * at the bound it is parsed (and refused as CBOR garbage, not as too big) */
    n = snprintf((char *)buf, MFA_ATTESTATION_MAX,
                 "{\"type\":\"webauthn.create\",\"challenge\":\"%s\",\"origin\":\"http://localhost:8080\"}", b64);
    {
        uint8_t *att = calloc(1, MFA_ATTESTATION_MAX + 1);

        assert_int_equal(mfa_webauthn_check_registration(&o, ch, sizeof ch, buf, (size_t)n, att,
                                                         MFA_ATTESTATION_MAX + 1, &cred, &em), CF_ERR_LIMIT);
        assert_int_equal(mfa_webauthn_check_registration(&o, ch, sizeof ch, buf, (size_t)n, att,
                                                         MFA_ATTESTATION_MAX, &cred, &em), CF_ERR_INPUT);
        free(att);
    }
    /* key names: 1 .. MFA_KEY_NAME_MAX bytes of text */
    memset(name, 'k', sizeof name);
    name[MFA_KEY_NAME_MAX] = '\0';
    assert_int_equal(name_check(name, kept, &em), CF_OK);
    name[MFA_KEY_NAME_MAX] = 'k';
    name[MFA_KEY_NAME_MAX + 1] = '\0';
    assert_int_equal(name_check(name, kept, &em), CF_ERR_INPUT);
    assert_int_equal(name_check("", kept, &em), CF_ERR_INPUT);
    assert_int_equal(name_check("a\tb", kept, &em), CF_ERR_INPUT);
    free(buf);
}

/* The ceremonies through the store, with the fixture's challenges put in
 * place of random ones (what begin would have drawn). */
static void
test_webauthn_store(void **state)
{
    struct fx *f = *state;
    json_t *fx = fixtures(), *c = json_array_get(json_object_get(fx, "credentials"), 0), *x;
    struct mfa_webauthn_opts o = rp(fx);
    uint8_t sa[STORE_TOKEN_HASH_BYTES], sb[STORE_TOKEN_HASH_BYTES];
    static struct bin ch, id, cdj, att, ad, sig;
    struct mfa_webauthn_input in = { 0 };
    struct cf_errmsg em = { "" };
    char key_id[RECORD_ID_HEX + 1];
    struct mfa_state st;
    int64_t now = 1800000000;
    int uv = 0;
    size_t k;

    session_hash(sa, 0x11);
    session_hash(sb, 0x22);
    x = json_object_get(c, "registration");
    b64(x, "challenge", &ch);
    b64(x, "id", &id);
    b64(x, "clientDataJSON", &cdj);
    b64(x, "attestationObject", &att);
    in.name = "Clé bleue";
    in.id = id.b; in.idlen = id.n;
    in.cdj = cdj.b; in.cdjlen = cdj.n;
    in.att = att.b; in.attlen = att.n;
    /* no challenge asked: refused */
    assert_int_equal(mfa_webauthn_register(f->r, &o, &f->a, sa, &in, now, key_id, &em), CF_ERR_AUTH);
    /* another session's challenge: refused */
    assert_int_equal(store_challenge_put(records_store(f->r), sb, "register", ch.b, ch.n, now + 300), CF_OK);
    assert_int_equal(mfa_webauthn_register(f->r, &o, &f->a, sa, &in, now, key_id, &em), CF_ERR_AUTH);
    /* expired: refused, and gone */
    assert_int_equal(store_challenge_put(records_store(f->r), sa, "register", ch.b, ch.n, now - 1), CF_OK);
    assert_int_equal(mfa_webauthn_register(f->r, &o, &f->a, sa, &in, now, key_id, &em), CF_ERR_AUTH);
    assert_non_null(strstr(em.msg, "expired"));
    /* a bad name: refused, the challenge spent all the same */
    assert_int_equal(store_challenge_put(records_store(f->r), sa, "register", ch.b, ch.n, now + 300), CF_OK);
    in.name = "";
    assert_int_equal(mfa_webauthn_register(f->r, &o, &f->a, sa, &in, now, key_id, &em), CF_ERR_INPUT);
    in.name = "Clé bleue";
    assert_int_equal(mfa_webauthn_register(f->r, &o, &f->a, sa, &in, now, key_id, &em), CF_ERR_AUTH);
    /* the right one */
    assert_int_equal(store_challenge_put(records_store(f->r), sa, "register", ch.b, ch.n, now + 300), CF_OK);
    assert_int_equal(mfa_webauthn_register(f->r, &o, &f->a, sa, &in, now, key_id, &em), CF_OK);
    assert_int_equal(mfa_state_of(f->r, &f->a, &st), CF_OK);
    assert_int_equal(st.enrolled, MFA_WEBAUTHN);
    assert_int_equal(st.keys, 1);
    /* the same key twice: refused */
    assert_int_equal(store_challenge_put(records_store(f->r), sa, "register", ch.b, ch.n, now + 300), CF_OK);
    assert_int_equal(mfa_webauthn_register(f->r, &o, &f->a, sa, &in, now, key_id, &em), CF_ERR_EXISTS);

    /* assertions: counter 1, then 2; replaying either is refused */
    for (k = 0; k < 2; k++) {
        x = json_array_get(json_object_get(c, "assertions"), k);
        b64(x, "challenge", &ch);
        b64(x, "clientDataJSON", &cdj);
        b64(x, "authenticatorData", &ad);
        b64(x, "signature", &sig);
        in.cdj = cdj.b; in.cdjlen = cdj.n;
        in.ad = ad.b; in.adlen = ad.n;
        in.sig = sig.b; in.siglen = sig.n;
        assert_int_equal(mfa_webauthn_assert(f->r, &o, &f->a, sa, &in, now, &uv, &em), CF_ERR_AUTH);
        assert_int_equal(store_challenge_put(records_store(f->r), sa, "assert", ch.b, ch.n, now + 300), CF_OK);
        assert_int_equal(mfa_webauthn_assert(f->r, &o, &f->a, sa, &in, now, &uv, &em), CF_OK);
        assert_int_equal(uv, 1);
        /* the challenge was single use */
        assert_int_equal(mfa_webauthn_assert(f->r, &o, &f->a, sa, &in, now, &uv, &em), CF_ERR_AUTH);
        /* with the challenge back, the counter refuses the replay */
        assert_int_equal(store_challenge_put(records_store(f->r), sa, "assert", ch.b, ch.n, now + 300), CF_OK);
        assert_int_equal(mfa_webauthn_assert(f->r, &o, &f->a, sa, &in, now, &uv, &em), CF_ERR_AUTH);
        assert_non_null(strstr(em.msg, "counter"));
    }
    /* another credential id: not this account's key */
    id.b[0] ^= 1;
    assert_int_equal(store_challenge_put(records_store(f->r), sa, "assert", ch.b, ch.n, now + 300), CF_OK);
    assert_int_equal(mfa_webauthn_assert(f->r, &o, &f->a, sa, &in, now, &uv, &em), CF_ERR_AUTH);
    /* removed: gone; an unknown id is not found */
    assert_int_equal(mfa_key_remove(f->r, &f->a, "00000000000000000000000000000000"), CF_ERR_NOTFOUND);
    assert_int_equal(mfa_key_remove(f->r, &f->a, key_id), CF_OK);
    assert_int_equal(mfa_state_of(f->r, &f->a, &st), CF_OK);
    assert_int_equal(st.keys, 0);
    json_decref(fx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_totp_rfc6238),
        cmocka_unit_test(test_policy_gate),
        cmocka_unit_test_setup_teardown(test_totp_enroll_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
        cmocka_unit_test(test_webauthn_fixtures),
        cmocka_unit_test(test_cbor_bounds),
        cmocka_unit_test(test_webauthn_assertion_extensions),
        cmocka_unit_test(test_webauthn_bounds),
        cmocka_unit_test_setup_teardown(test_webauthn_store, setup, teardown),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
