/*
 * test_seal.c - unit tests of seal.c: normalisation (NFC, case folding,
 * spaces, control characters, invalid UTF-8, bounds, clean messages), the
 * sealed-value format, what the associated data binds, tampering and
 * truncation, missing keys, and blind indexes.
 *
 * seal.c is included so the tests run against exactly the file under test
 * and reach its statics (ad_encode).  The keyring is the real one, made in a
 * temporary directory by the group setup.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../src/seal.c"
#include "testutil.h"

/* ---- fixture ------------------------------------------------------------ */

struct fixture {
    char dir[256];
    char path[300];
    struct keyring *kr;
};

static struct fixture fx;

/*
 * Keyring with compartments "10", "02" and "27"; data keys versions 1 and 2
 * for "10" and "02"; "27" has a KEK (so an index key) but no data key.
 */
static int
group_setup(void **state)
{
    static const char *const codes[] = { "10", "02", "27" };
    static const char *const with_keys[] = { "10", "02" };
    uint8_t seed[KEYRING_SEED_BYTES];
    uint8_t wrapped[KEYRING_WRAPPED_BYTES];
    struct cf_errmsg em = { "" };
    size_t i;
    uint32_t v;

    if (sodium_init() < 0)
        return -1;
    snprintf(fx.dir, sizeof fx.dir, "%s", tu_tmpdir());
    snprintf(fx.path, sizeof fx.path, "%s/keyring", fx.dir);
    if (keyring_create(fx.path, codes, 3, seed, &em) != CF_OK ||
        keyring_load(fx.path, &fx.kr, &em) != CF_OK) {
        fprintf(stderr, "setup: %s\n", em.msg);
        tu_rmrf(fx.dir);
        return -1;
    }
    for (i = 0; i < 2; i++)
        for (v = 1; v <= 2; v++)
            if (keyring_data_key_new(fx.kr, with_keys[i], v, wrapped) != CF_OK) {
                keyring_free(fx.kr);
                tu_rmrf(fx.dir);
                return -1;
            }
    *state = &fx;
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    keyring_free(fx.kr);
    fx.kr = NULL;
    tu_rmrf(fx.dir);
    return 0;
}

static const uint8_t rid[SEAL_ID_BYTES] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
};

static struct seal_ad
mkad(const char *compartment, const char *kind, const uint8_t *id,
     const char *field)
{
    struct seal_ad ad;

    ad.compartment = compartment;
    ad.kind = kind;
    ad.record_id = id;
    ad.field = field;
    return ad;
}

static struct seal_ad
ad_default(void)
{
    return mkad("10", "eleve", rid, "nom");
}

/* Seals pt under a fresh random nonce; asserts success. */
static void
seal_ok(const struct seal_ad *ad, uint32_t version, const void *pt,
        size_t ptlen, uint8_t *out)
{
    uint8_t nonce[SEAL_NONCE_BYTES];

    randombytes_buf(nonce, sizeof nonce);
    assert_int_equal(seal_field(fx.kr, ad, version, nonce, pt, ptlen, out,
                                SEAL_SIZE(ptlen)), CF_OK);
}

/* ---- normalisation helpers ---------------------------------------------- */

static enum cf_err
nz(const char *field, const char *in, size_t len, enum seal_norm mode,
     size_t max, char *out, size_t cap, size_t *outlen,
     struct cf_errmsg *em)
{
    return seal_normalize(field, in, len, mode, max, out, cap, outlen, em);
}

/* Normalises s (NUL-terminated) and checks the result is exactly want. */
static void
assert_norm(const char *s, enum seal_norm mode, const char *want)
{
    char out[RECORD_FIELD_PT_MAX + 1];
    size_t n = 0;
    struct cf_errmsg em = { "" };

    assert_int_equal(nz("nom", s, strlen(s), mode, NAME_MAX_BYTES, out,
                          sizeof out, &n, &em), CF_OK);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n + 1);      /* with its NUL */
}

/*
 * An error message is one line starting with "<field>: " and holds no
 * 5-byte run of the input (so neither the value nor a trimmed part of it).
 */
static void
assert_clean_message(const struct cf_errmsg *em, const char *field,
                     const char *s, size_t n)
{
    size_t flen = strlen(field), i;
    char win[6];

    assert_true(em->msg[0] != '\0');
    assert_null(strchr(em->msg, '\n'));
    assert_int_equal(strncmp(em->msg, field, flen), 0);
    assert_int_equal(em->msg[flen], ':');
    assert_int_equal(em->msg[flen + 1], ' ');
    for (i = 0; i + 5 <= n; i++) {
        memcpy(win, s + i, 5);
        win[5] = '\0';
        if (strlen(win) < 5 || strchr(win, ' ') != NULL)
            continue;
        assert_null(strstr(em->msg, win));
    }
}

/*
 * Checks seal_normalize rejects in[0..len) with rc, writes neither out nor
 * *outlen, and gives a clean message, in the given mode.
 */
static void
assert_norm_rejects(const char *in, size_t len, enum seal_norm mode,
                    size_t max, enum cf_err rc, const char *msg)
{
    char out[RECORD_FIELD_PT_MAX + 1], pat[RECORD_FIELD_PT_MAX + 1];
    size_t n = 12345;
    struct cf_errmsg em = { "" };

    memset(pat, 0xa5, sizeof pat);
    memcpy(out, pat, sizeof out);
    assert_int_equal(nz("eleve.prenom", in, len, mode, max, out,
                          sizeof out, &n, &em), rc);
    assert_memory_equal(out, pat, sizeof out);
    assert_int_equal(n, 12345);
    assert_clean_message(&em, "eleve.prenom", in, len);
    if (msg != NULL)
        assert_string_equal(em.msg, msg);
}

/* ---- seal_normalize ------------------------------------------------------ */

/* Composed and decomposed spellings normalise to the same NFC bytes. */
static void
test_norm_nfc(void **state)
{
    (void)state;
    /* "Zoe" + U+0301 COMBINING ACUTE -> "Zoé" with U+00E9 */
    assert_norm("Zoe\xCC\x81", SEAL_NORM_TEXT, "Zo\xC3\xA9");
    assert_norm("Zo\xC3\xA9", SEAL_NORM_TEXT, "Zo\xC3\xA9");
    assert_norm("Zoe\xCC\x81", SEAL_NORM_FOLD, "zo\xC3\xA9");
    assert_norm("Zo\xC3\xA9", SEAL_NORM_FOLD, "zo\xC3\xA9");
    /* capital: E + U+0301 -> U+00C9 */
    assert_norm("E\xCC\x81lise", SEAL_NORM_TEXT, "\xC3\x89lise");
    /* c + U+0327 COMBINING CEDILLA -> U+00E7 */
    assert_norm("Fran" "c\xCC\xA7" "ois", SEAL_NORM_TEXT, "Fran\xC3\xA7ois");
    /* NFC, not NFKC: the ligature U+FB01 is kept */
    assert_norm("\xEF\xAC\x81n", SEAL_NORM_TEXT, "\xEF\xAC\x81n");
}

/* SEAL_NORM_FOLD lower-cases on the ASCII fast path and on the UTF-8 path;
 * SEAL_NORM_TEXT keeps case. */
static void
test_norm_fold(void **state)
{
    char a[64], b[64];
    size_t na = 0, nb = 0;
    struct cf_errmsg em = { "" };
    const char *s1 = "\xC3\x89lise.MARTIN@Example.ORG";
    const char *s2 = "\xC3\xA9lise.martin@example.org";

    (void)state;
    /* non-ASCII path */
    assert_int_equal(nz("email", s1, strlen(s1), SEAL_NORM_FOLD,
                          EMAIL_MAX_BYTES, a, sizeof a, &na, &em), CF_OK);
    assert_int_equal(nz("email", s2, strlen(s2), SEAL_NORM_FOLD,
                          EMAIL_MAX_BYTES, b, sizeof b, &nb, &em), CF_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na + 1);
    assert_string_equal(a, s2);
    /* decomposed capital E + acute folds to the same */
    assert_norm("E\xCC\x81lise.MARTIN@Example.ORG", SEAL_NORM_FOLD, s2);
    /* ASCII fast path */
    assert_norm("Elise.MARTIN@Example.ORG", SEAL_NORM_FOLD,
                "elise.martin@example.org");
    assert_norm("elise.martin@example.org", SEAL_NORM_FOLD,
                "elise.martin@example.org");
    /* both paths agree on the ASCII letters of a mixed value */
    assert_norm("MARTIN \xC3\x89lise", SEAL_NORM_FOLD, "martin \xC3\xA9lise");
    assert_norm("MARTIN Elise", SEAL_NORM_FOLD, "martin elise");
    /* full case folding: sharp s becomes "ss" */
    assert_norm("Stra\xC3\x9F" "e", SEAL_NORM_FOLD, "strasse");
    /* TEXT keeps the case, on both paths */
    assert_norm("Elise.MARTIN@Example.ORG", SEAL_NORM_TEXT,
                "Elise.MARTIN@Example.ORG");
    assert_norm(s1, SEAL_NORM_TEXT, s1);
}

/* Leading and trailing spaces and NBSPs go; inner runs become one space. */
static void
test_norm_spaces(void **state)
{
    (void)state;
    assert_norm("Jean", SEAL_NORM_TEXT, "Jean");
    assert_norm("  Jean   Pierre  ", SEAL_NORM_TEXT, "Jean Pierre");
    assert_norm(" Jean Pierre", SEAL_NORM_FOLD, "jean pierre");
    /* NBSP (U+00A0) and narrow NBSP (U+202F) count as spaces */
    assert_norm("\xC2\xA0Jean\xC2\xA0\xC2\xA0 Pierre\xC2\xA0", SEAL_NORM_TEXT,
                "Jean Pierre");
    assert_norm("\xE2\x80\xAFZo\xC3\xA9 \xE2\x80\xAF Martin\xE2\x80\xAF",
                SEAL_NORM_TEXT, "Zo\xC3\xA9 Martin");
    assert_norm("\xC2\xA0" "Zoe\xCC\x81\xC2\xA0", SEAL_NORM_FOLD, "zo\xC3\xA9");
    /* UPPER trims and collapses too */
    assert_norm("  ab12   cd ", SEAL_NORM_UPPER, "AB12 CD");
    assert_norm("\xC2\xA0" "0999001w\xC2\xA0", SEAL_NORM_UPPER, "0999001W");
}

/* NUL, C0, DEL, C1 (U+0085), line/paragraph separators and bidi controls
 * are refused in every mode. */
static void
test_norm_rejects_control(void **state)
{
    static const struct { const char *s; size_t len; } bad[] = {
        { "Martin\tDupont", 13 },
        { "Martin\nDupont", 13 },
        { "Martin\rDupont", 13 },
        { "Martin\x7f" "Dupont", 13 },
        { "Martin\0Dupont", 13 },
        { "Martin\x1b" "Dupont", 13 },
        { "Martin\xC2\x85" "Dupont", 14 },                 /* U+0085 NEL */
        { "Martin\xC2\x9F" "Dupont", 14 },                 /* U+009F */
        { "Martin\xE2\x80\xAE" "Dupont", 15 },             /* U+202E RLO */
        { "Martin\xE2\x80\xAA" "Dupont", 15 },             /* U+202A LRE */
        { "Martin\xE2\x81\xA6" "Dupont", 15 },             /* U+2066 LRI */
        { "Martin\xE2\x81\xA9" "Dupont", 15 },             /* U+2069 PDI */
        { "Martin\xE2\x80\xA8" "Dupont", 15 },             /* U+2028 LS */
        { "Martin\xE2\x80\xA9" "Dupont", 15 },             /* U+2029 PS */
        { "\xC3\xA9l\xC3\xA8ve\tDupont", 14 },             /* on UTF-8 path */
        { "Dupont\n", 7 },
    };
    static const enum seal_norm modes[] = { SEAL_NORM_TEXT, SEAL_NORM_FOLD,
                                            SEAL_NORM_UPPER };
    size_t i, m;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        for (m = 0; m < 3; m++)
            assert_norm_rejects(bad[i].s, bad[i].len, modes[m],
                                NAME_MAX_BYTES, CF_ERR_INPUT,
                                modes[m] == SEAL_NORM_UPPER ? NULL
                                : "eleve.prenom: contains a control character");
    /* the legitimate value passes */
    assert_norm("Martin Dupont", SEAL_NORM_TEXT, "Martin Dupont");
}

static void
test_norm_rejects_invalid_utf8(void **state)
{
    static const struct { const char *s; size_t len; } bad[] = {
        { "Martin\x80" "Dupont", 13 },             /* lone continuation */
        { "Martin\xBF", 7 },
        { "Martin\xC0\xAF" "Dupont", 14 },         /* overlong '/' */
        { "Martin\xE0\x80\xAF" "Dupont", 15 },     /* overlong, 3 bytes */
        { "Martin\xC3", 7 },                       /* truncated at end */
        { "Martin\xE2\x82" "Dupont", 14 },         /* truncated inside */
        { "Martin\xED\xA0\x80" "Dupont", 15 },     /* surrogate U+D800 */
        { "Martin\xED\xBF\xBF" "Dupont", 15 },     /* surrogate U+DFFF */
        { "Martin\xF4\x90\x80\x80" "Dupont", 16 }, /* > U+10FFFF */
        { "Martin\xFF" "Dupont", 13 },
        { "Martin\xFE" "Dupont", 13 },
    };
    static const enum seal_norm modes[] = { SEAL_NORM_TEXT, SEAL_NORM_FOLD,
                                            SEAL_NORM_UPPER };
    size_t i, m;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        for (m = 0; m < 3; m++)
            assert_norm_rejects(bad[i].s, bad[i].len, modes[m],
                                NAME_MAX_BYTES, CF_ERR_INPUT,
                                "eleve.prenom: not valid UTF-8 text");
    /* the valid neighbours pass */
    assert_norm("Martin\xC3\xA9" "Dupont", SEAL_NORM_TEXT,
                "Martin\xC3\xA9" "Dupont");
    assert_norm("Martin\xF4\x8F\xBF\xBD", SEAL_NORM_TEXT,   /* U+10FFFD */
                "Martin\xF4\x8F\xBF\xBD");
}

static void
test_norm_rejects_empty(void **state)
{
    static const char *const empty[] = {
        "", " ", "     ", "\xC2\xA0", " \xC2\xA0 \xE2\x80\xAF ",
    };
    static const enum seal_norm modes[] = { SEAL_NORM_TEXT, SEAL_NORM_FOLD,
                                            SEAL_NORM_UPPER };
    size_t i, m;

    (void)state;
    for (i = 0; i < sizeof empty / sizeof empty[0]; i++)
        for (m = 0; m < 3; m++)
            assert_norm_rejects(empty[i], strlen(empty[i]), modes[m],
                                NAME_MAX_BYTES, CF_ERR_INPUT,
                                "eleve.prenom: is empty");
    assert_norm(" x ", SEAL_NORM_TEXT, "x");
}

/* UPPER accepts ASCII only and upper-cases it. */
static void
test_norm_upper(void **state)
{
    static const char *const bad[] = {
        "0999001\xC3\x89",          /* É */
        "0999001\xC3\xA9",          /* é */
        "Zoe\xCC\x81",              /* composes to é */
        "\xEF\xBC\xA1" "BCDE",      /* fullwidth A */
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_norm_rejects(bad[i], strlen(bad[i]), SEAL_NORM_UPPER,
                            NAME_MAX_BYTES, CF_ERR_INPUT,
                            "eleve.prenom: must be plain letters and digits");
    assert_norm("0999001w", SEAL_NORM_UPPER, "0999001W");
    assert_norm("abcxyz-09", SEAL_NORM_UPPER, "ABCXYZ-09");
    /* the same non-ASCII values pass in TEXT mode */
    assert_norm("0999001\xC3\xA9", SEAL_NORM_TEXT, "0999001\xC3\xA9");
}

/* Every text bound of bounds.h at N-1, N and N+1 bytes, each mode. */
static void
test_norm_max_bounds(void **state)
{
    static const size_t bounds[] = {
        NAME_MAX_BYTES, ADDRESS_MAX_BYTES, EMAIL_MAX_BYTES, PHONE_MAX_BYTES,
        LABEL_MAX_BYTES, ESTABLISHMENT_NAME_MAX_BYTES, RECORD_FIELD_PT_MAX,
    };
    static const enum seal_norm modes[] = { SEAL_NORM_TEXT, SEAL_NORM_FOLD,
                                            SEAL_NORM_UPPER };
    char in[RECORD_FIELD_PT_MAX + 2];
    char out[RECORD_FIELD_PT_MAX + 1];
    char want[64];
    size_t b, m, n, got;
    struct cf_errmsg em = { "" };

    (void)state;
    for (b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
        size_t max = bounds[b];

        for (m = 0; m < 3; m++) {
            for (n = max - 1; n <= max + 1; n++) {
                memset(in, 'a', n);
                in[n] = '\0';
                if (n <= max) {
                    got = 0;
                    assert_int_equal(nz("f", in, n, modes[m], max, out,
                                          sizeof out, &got, &em), CF_OK);
                    assert_int_equal(got, n);
                    assert_int_equal(out[0],
                                     modes[m] == SEAL_NORM_UPPER ? 'A' : 'a');
                } else {
                    snprintf(want, sizeof want,
                             "eleve.prenom: longer than %zu bytes", max);
                    assert_norm_rejects(in, n, modes[m], max, CF_ERR_LIMIT,
                                        want);
                }
            }
        }
    }
}

/* The bound is on the normalised result; composed characters count by
 * their UTF-8 bytes. */
static void
test_norm_max_non_ascii(void **state)
{
    char in[1024], out[RECORD_FIELD_PT_MAX + 1];
    size_t i, n = 0, len;
    struct cf_errmsg em = { "" };

    (void)state;
    /* 128 'é' = 256 bytes: N */
    for (i = 0, len = 0; i < 128; i++, len += 2)
        memcpy(in + len, "\xC3\xA9", 2);
    assert_int_equal(nz("nom", in, len, SEAL_NORM_TEXT, 256, out,
                          sizeof out, &n, &em), CF_OK);
    assert_int_equal(n, 256);
    /* 127 'é' + 'a' = 255: N-1 */
    in[254] = 'a';
    assert_int_equal(nz("nom", in, 255, SEAL_NORM_TEXT, 256, out,
                          sizeof out, &n, &em), CF_OK);
    assert_int_equal(n, 255);
    /* 128 'é' + 'a' = 257: N+1 */
    memcpy(in + 254, "\xC3\xA9" "a", 3);
    assert_norm_rejects(in, 257, SEAL_NORM_TEXT, 256, CF_ERR_LIMIT,
                        "eleve.prenom: longer than 256 bytes");
    /* 128 decomposed 'e' + U+0301: 384 raw bytes, 256 once composed */
    for (i = 0, len = 0; i < 128; i++, len += 3)
        memcpy(in + len, "e\xCC\x81", 3);
    assert_int_equal(nz("nom", in, len, SEAL_NORM_FOLD, 256, out,
                          sizeof out, &n, &em), CF_OK);
    assert_int_equal(n, 256);
    assert_memory_equal(out, "\xC3\xA9\xC3\xA9", 4);
    memcpy(in + len, "e\xCC\x81", 3);
    assert_norm_rejects(in, len + 3, SEAL_NORM_FOLD, 256, CF_ERR_LIMIT,
                        "eleve.prenom: longer than 256 bytes");
}

/* Raw input is bounded before any work: max * 4 + 64 bytes, and never more
 * than RECORD_FIELD_PT_MAX; trailing spaces count towards it. */
static void
test_norm_raw_bound(void **state)
{
    char in[RECORD_FIELD_PT_MAX + 2], out[RECORD_FIELD_PT_MAX + 1];
    size_t n = 0;
    struct cf_errmsg em = { "" };
    size_t raw;

    (void)state;
    raw = 16 * 4 + 64;
    memset(in, ' ', sizeof in);
    in[0] = 'a';
    assert_int_equal(nz("f", in, raw - 1, SEAL_NORM_TEXT, 16, out,
                          sizeof out, &n, &em), CF_OK);
    assert_int_equal(nz("f", in, raw, SEAL_NORM_TEXT, 16, out, sizeof out,
                          &n, &em), CF_OK);
    assert_int_equal(n, 1);
    assert_string_equal(out, "a");
    assert_norm_rejects(in, raw + 1, SEAL_NORM_TEXT, 16, CF_ERR_LIMIT,
                        "eleve.prenom: longer than 16 bytes");

    raw = RECORD_FIELD_PT_MAX;
    assert_int_equal(nz("f", in, raw - 1, SEAL_NORM_TEXT, RECORD_FIELD_PT_MAX,
                          out, sizeof out, &n, &em), CF_OK);
    assert_int_equal(nz("f", in, raw, SEAL_NORM_TEXT, RECORD_FIELD_PT_MAX,
                          out, sizeof out, &n, &em), CF_OK);
    assert_int_equal(n, 1);
    assert_norm_rejects(in, raw + 1, SEAL_NORM_TEXT, RECORD_FIELD_PT_MAX,
                        CF_ERR_LIMIT, "eleve.prenom: longer than 1024 bytes");
}

/* Case folding may grow text past the work buffer: refused, no overflow. */
static void
test_norm_fold_growth(void **state)
{
    char in[RECORD_FIELD_PT_MAX + 1], out[RECORD_FIELD_PT_MAX + 1];
    size_t i, n = 0;
    struct cf_errmsg em = { "" };

    (void)state;
    /* U+00DF (2 bytes) folds to "ss" (2 bytes): 1024 -> 1024 */
    for (i = 0; i < RECORD_FIELD_PT_MAX; i += 2)
        memcpy(in + i, "\xC3\x9F", 2);
    assert_int_equal(nz("f", in, RECORD_FIELD_PT_MAX, SEAL_NORM_FOLD,
                          RECORD_FIELD_PT_MAX, out, sizeof out, &n, &em), CF_OK);
    assert_int_equal(n, RECORD_FIELD_PT_MAX);
    assert_memory_equal(out, "ssss", 4);
    /* U+0149 (2 bytes) folds to U+02BC U+006E (3 bytes): 1024 -> 1536 */
    for (i = 0; i < RECORD_FIELD_PT_MAX; i += 2)
        memcpy(in + i, "\xC5\x89", 2);
    assert_norm_rejects(in, RECORD_FIELD_PT_MAX, SEAL_NORM_FOLD,
                        RECORD_FIELD_PT_MAX, CF_ERR_LIMIT,
                        "eleve.prenom: longer than 1024 bytes");
    /* unfolded, the same value fits */
    assert_int_equal(nz("f", in, RECORD_FIELD_PT_MAX, SEAL_NORM_TEXT,
                          RECORD_FIELD_PT_MAX, out, sizeof out, &n, &em), CF_OK);
}

/* out must hold the result and its NUL: cap = n + 1 fits, cap = n does not,
 * and nothing is written then. */
static void
test_norm_cap(void **state)
{
    char out[16], pat[16];
    size_t n = 99;
    struct cf_errmsg em = { "" };

    (void)state;
    memset(pat, 0xa5, sizeof pat);
    memcpy(out, pat, sizeof out);
    assert_int_equal(nz("nom", "  Martin ", 9, SEAL_NORM_TEXT, 256, out, 6,
                          &n, &em), CF_ERR_LIMIT);
    assert_memory_equal(out, pat, sizeof out);
    assert_int_equal(n, 99);
    assert_clean_message(&em, "nom", "Martin", 6);
    assert_int_equal(nz("nom", "  Martin ", 9, SEAL_NORM_TEXT, 256, out, 7,
                          &n, &em), CF_OK);
    assert_int_equal(n, 6);
    assert_string_equal(out, "Martin");
    assert_int_equal((unsigned char)out[7], 0xa5);  /* nothing past the NUL */
    /* len is the length: bytes after it are not read */
    assert_int_equal(nz("nom", "MartinXYZ", 6, SEAL_NORM_TEXT, 256, out,
                          sizeof out, &n, &em), CF_OK);
    assert_string_equal(out, "Martin");
    /* a NULL em is allowed */
    assert_int_equal(nz("nom", "", 0, SEAL_NORM_TEXT, 256, out, sizeof out,
                          &n, NULL), CF_ERR_INPUT);
}

/* ---- seal_field / seal_open ---------------------------------------------- */

/* Round trip at 0, 1, 255, RECORD_FIELD_PT_MAX-1 and RECORD_FIELD_PT_MAX
 * bytes; RECORD_FIELD_PT_MAX+1 refused; the header layout. */
static void
test_seal_roundtrip_and_format(void **state)
{
    static const size_t lens[] = { 0, 1, 255, RECORD_FIELD_PT_MAX - 1,
                                   RECORD_FIELD_PT_MAX };
    uint8_t pt[RECORD_FIELD_PT_MAX + 1], back[RECORD_FIELD_PT_MAX + 1];
    uint8_t out[SEAL_SIZE(RECORD_FIELD_PT_MAX + 1)], pat[sizeof out];
    uint8_t nonce[SEAL_NONCE_BYTES];
    struct seal_ad ad = ad_default();
    size_t i, n;
    uint32_t v;

    (void)state;
    randombytes_buf(pt, sizeof pt);
    for (v = 1; v <= 2; v++) {
        for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            size_t len = lens[i];

            randombytes_buf(nonce, sizeof nonce);
            assert_int_equal(seal_field(fx.kr, &ad, v, nonce, pt, len, out,
                                        SEAL_SIZE(len)), CF_OK);
            assert_int_equal(out[0], SEAL_FORMAT_V1);
            assert_int_equal(out[1], 0);
            assert_int_equal(out[2], 0);
            assert_int_equal(out[3], 0);
            assert_int_equal(out[4], v);
            assert_memory_equal(out + 5, nonce, SEAL_NONCE_BYTES);
            assert_int_equal(seal_version_of(out, SEAL_SIZE(len)), v);
            if (len >= 16)      /* it is not the plaintext */
                assert_true(memcmp(out + SEAL_HEADER_BYTES, pt, len) != 0);
            n = 777;
            memset(back, 0, sizeof back);
            assert_int_equal(seal_open(fx.kr, &ad, out, SEAL_SIZE(len), back,
                                       len, &n), CF_OK);
            assert_int_equal(n, len);
            if (len > 0)
                assert_memory_equal(back, pt, len);
        }
    }
    /* empty plaintext: 45 bytes, opens to length 0 */
    assert_int_equal(SEAL_SIZE(0), SEAL_OVERHEAD);
    seal_ok(&ad, 1, pt, 0, out);
    n = 777;
    assert_int_equal(seal_open(fx.kr, &ad, out, SEAL_OVERHEAD, back, 0, &n),
                     CF_OK);
    assert_int_equal(n, 0);

    /* RECORD_FIELD_PT_MAX + 1: refused, out untouched */
    memset(pat, 0x5a, sizeof pat);
    memcpy(out, pat, sizeof out);
    assert_int_equal(seal_field(fx.kr, &ad, 1, nonce, pt,
                                RECORD_FIELD_PT_MAX + 1, out, sizeof out),
                     CF_ERR_LIMIT);
    assert_memory_equal(out, pat, sizeof out);
    /* cap one short: refused, out untouched */
    assert_int_equal(seal_field(fx.kr, &ad, 1, nonce, pt, 10, out,
                                SEAL_SIZE(10) - 1), CF_ERR_LIMIT);
    assert_memory_equal(out, pat, sizeof out);
}

/* Distinct nonces give distinct ciphertexts; the nonce alone decides. */
static void
test_seal_nonces(void **state)
{
    static const char pt[] = "Dupont";
    uint8_t a[SEAL_SIZE(6)], b[SEAL_SIZE(6)];
    uint8_t n1[SEAL_NONCE_BYTES], n2[SEAL_NONCE_BYTES];
    uint8_t back[6];
    struct seal_ad ad = ad_default();
    size_t n;

    (void)state;
    memset(n1, 1, sizeof n1);
    memset(n2, 1, sizeof n2);
    n2[SEAL_NONCE_BYTES - 1] = 2;
    assert_int_equal(seal_field(fx.kr, &ad, 1, n1, (const uint8_t *)pt, 6, a,
                                sizeof a), CF_OK);
    assert_int_equal(seal_field(fx.kr, &ad, 1, n2, (const uint8_t *)pt, 6, b,
                                sizeof b), CF_OK);
    assert_true(memcmp(a, b, sizeof a) != 0);
    /* not only the nonce field: the ciphertext and tag differ too */
    assert_true(memcmp(a + SEAL_HEADER_BYTES, b + SEAL_HEADER_BYTES,
                       sizeof a - SEAL_HEADER_BYTES) != 0);
    assert_int_equal(seal_open(fx.kr, &ad, a, sizeof a, back, 6, &n), CF_OK);
    assert_memory_equal(back, pt, 6);
    assert_int_equal(seal_open(fx.kr, &ad, b, sizeof b, back, 6, &n), CF_OK);
    assert_memory_equal(back, pt, 6);
    /* the same nonce gives the same bytes: callers must never reuse one */
    assert_int_equal(seal_field(fx.kr, &ad, 1, n1, (const uint8_t *)pt, 6, b,
                                sizeof b), CF_OK);
    assert_memory_equal(a, b, sizeof a);
    /* and another version's key gives other bytes under the same nonce */
    assert_int_equal(seal_field(fx.kr, &ad, 2, n1, (const uint8_t *)pt, 6, b,
                                sizeof b), CF_OK);
    assert_true(memcmp(a + SEAL_HEADER_BYTES, b + SEAL_HEADER_BYTES,
                       sizeof a - SEAL_HEADER_BYTES) != 0);
}

/* seal_open needs cap >= plaintext length; else CF_ERR_CRYPTO. */
static void
test_open_cap(void **state)
{
    static const char pt[] = "Martin";
    uint8_t out[SEAL_SIZE(6)], back[8];
    struct seal_ad ad = ad_default();
    size_t n = 0;

    (void)state;
    seal_ok(&ad, 1, pt, 6, out);
    memset(back, 0xa5, sizeof back);
    assert_int_equal(seal_open(fx.kr, &ad, out, sizeof out, back, 5, &n),
                     CF_ERR_CRYPTO);
    assert_int_equal(seal_open(fx.kr, &ad, out, sizeof out, back, 6, &n),
                     CF_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(back, pt, 6);
    assert_int_equal(back[6], 0xa5);
}

/* A ciphertext moved to another compartment, kind, record, field does not
 * open; the legitimate open does. */
static void
test_ad_binding(void **state)
{
    static const char pt[] = "Zo\xC3\xA9";
    uint8_t out[SEAL_SIZE(4)], back[8];
    uint8_t id[SEAL_ID_BYTES];
    struct seal_ad ad = ad_default(), bad;
    size_t n, bit;

    (void)state;
    seal_ok(&ad, 1, pt, 4, out);
    assert_int_equal(seal_open(fx.kr, &ad, out, sizeof out, back, sizeof back,
                               &n), CF_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(back, pt, 4);

    /* compartment "02" holds a version-1 key too: wrong key and AD */
    bad = ad;
    bad.compartment = "02";
    assert_int_equal(seal_open(fx.kr, &bad, out, sizeof out, back, sizeof back,
                               &n), CF_ERR_CRYPTO);
    /* kind */
    bad = ad;
    bad.kind = "responsable";
    assert_int_equal(seal_open(fx.kr, &bad, out, sizeof out, back, sizeof back,
                               &n), CF_ERR_CRYPTO);
    bad.kind = "Eleve";
    assert_int_equal(seal_open(fx.kr, &bad, out, sizeof out, back, sizeof back,
                               &n), CF_ERR_CRYPTO);
    bad.kind = "";
    assert_int_equal(seal_open(fx.kr, &bad, out, sizeof out, back, sizeof back,
                               &n), CF_ERR_CRYPTO);
    /* every one-bit change of the record id */
    for (bit = 0; bit < 8 * SEAL_ID_BYTES; bit++) {
        memcpy(id, rid, sizeof id);
        id[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        bad = ad;
        bad.record_id = id;
        assert_int_equal(seal_open(fx.kr, &bad, out, sizeof out, back,
                                   sizeof back, &n), CF_ERR_CRYPTO);
    }
    /* field */
    bad = ad;
    bad.field = "prenom";
    assert_int_equal(seal_open(fx.kr, &bad, out, sizeof out, back, sizeof back,
                               &n), CF_ERR_CRYPTO);
    bad.field = "Nom";
    assert_int_equal(seal_open(fx.kr, &bad, out, sizeof out, back, sizeof back,
                               &n), CF_ERR_CRYPTO);
    bad.field = "nom ";
    assert_int_equal(seal_open(fx.kr, &bad, out, sizeof out, back, sizeof back,
                               &n), CF_ERR_CRYPTO);
    /* the original still opens */
    assert_int_equal(seal_open(fx.kr, &ad, out, sizeof out, back, sizeof back,
                               &n), CF_OK);
}

/* Parts are length-prefixed: shifting a byte from kind to field, or from
 * compartment to kind, is another tuple. */
static void
test_ad_unambiguous(void **state)
{
    uint8_t a[AD_MAX], b[AD_MAX];
    size_t la = 0, lb = 0;
    struct seal_ad x = mkad("10", "ab", rid, "c");
    struct seal_ad y = mkad("10", "a", rid, "bc");
    uint8_t out[SEAL_SIZE(3)], back[3];
    size_t n;

    (void)state;
    assert_int_equal(ad_encode(&x, 1, a, &la), 0);
    assert_int_equal(ad_encode(&y, 1, b, &lb), 0);
    assert_int_equal(la, lb);
    assert_true(memcmp(a, b, la) != 0);
    /* version is in the AD */
    assert_int_equal(ad_encode(&x, 2, b, &lb), 0);
    assert_int_equal(la, lb);
    assert_true(memcmp(a, b, la) != 0);

    seal_ok(&x, 1, "abc", 3, out);
    assert_int_equal(seal_open(fx.kr, &y, out, sizeof out, back, 3, &n),
                     CF_ERR_CRYPTO);
    assert_int_equal(seal_open(fx.kr, &x, out, sizeof out, back, 3, &n), CF_OK);
}

/* The key version in the header is bound by the AD: rewriting it (even to a
 * version whose key is held) does not open. */
static void
test_ad_version_in_header(void **state)
{
    static const char pt[] = "Martin";
    uint8_t out[SEAL_SIZE(6)], m[SEAL_SIZE(6)], back[8];
    struct seal_ad ad = ad_default();
    size_t n;

    (void)state;
    seal_ok(&ad, 1, pt, 6, out);
    memcpy(m, out, sizeof m);
    m[4] = 2;
    assert_int_equal(seal_version_of(m, sizeof m), 2);
    assert_int_equal(seal_open(fx.kr, &ad, m, sizeof m, back, sizeof back, &n),
                     CF_ERR_CRYPTO);
    m[4] = 3;                               /* no such key */
    assert_int_equal(seal_open(fx.kr, &ad, m, sizeof m, back, sizeof back, &n),
                     CF_ERR_CRYPTO);
    m[4] = 0;                               /* version 0: malformed */
    assert_int_equal(seal_version_of(m, sizeof m), 0);
    assert_int_equal(seal_open(fx.kr, &ad, m, sizeof m, back, sizeof back, &n),
                     CF_ERR_CRYPTO);
    memcpy(m, out, sizeof m);
    m[0] = 2;                               /* unknown format */
    assert_int_equal(seal_version_of(m, sizeof m), 0);
    assert_int_equal(seal_open(fx.kr, &ad, m, sizeof m, back, sizeof back, &n),
                     CF_ERR_CRYPTO);

    seal_ok(&ad, 2, pt, 6, out);
    memcpy(m, out, sizeof m);
    m[4] = 1;
    assert_int_equal(seal_open(fx.kr, &ad, m, sizeof m, back, sizeof back, &n),
                     CF_ERR_CRYPTO);
    assert_int_equal(seal_open(fx.kr, &ad, out, sizeof out, back, sizeof back,
                               &n), CF_OK);
}

/*
 * The version is bound by the AD itself, not only by the key choice: a
 * ciphertext made with version 1's key but AD naming version 2 does not
 * open as version 1; made with AD naming version 1, it does (and equals
 * seal_field's output, so the construction here is the real one).
 */
static void
test_ad_binds_version(void **state)
{
    static const uint8_t pt[] = "Martin";
    uint8_t adbuf[AD_MAX], out[SEAL_SIZE(6)], ref[SEAL_SIZE(6)], back[6];
    uint8_t nonce[SEAL_NONCE_BYTES];
    const uint8_t *k1 = keyring_data_key(fx.kr, "10", 1);
    struct seal_ad ad = ad_default();
    size_t adlen, n;

    (void)state;
    assert_non_null(k1);
    randombytes_buf(nonce, sizeof nonce);
    out[0] = SEAL_FORMAT_V1;
    put_be32(out + 1, 1);
    memcpy(out + 5, nonce, sizeof nonce);

    assert_int_equal(ad_encode(&ad, 1, adbuf, &adlen), 0);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + SEAL_HEADER_BYTES, NULL,
            pt, 6, adbuf, adlen, NULL, nonce, k1);
    assert_int_equal(seal_field(fx.kr, &ad, 1, nonce, pt, 6, ref, sizeof ref),
                     CF_OK);
    assert_memory_equal(out, ref, sizeof out);
    assert_int_equal(seal_open(fx.kr, &ad, out, sizeof out, back, 6, &n), CF_OK);

    assert_int_equal(ad_encode(&ad, 2, adbuf, &adlen), 0);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + SEAL_HEADER_BYTES, NULL,
            pt, 6, adbuf, adlen, NULL, nonce, k1);
    assert_int_equal(seal_open(fx.kr, &ad, out, sizeof out, back, 6, &n),
                     CF_ERR_CRYPTO);
}

/* AD parts are at most 255 bytes: 254 and 255 seal and open, 256 is
 * refused before anything is written. */
static void
test_ad_part_length(void **state)
{
    char kind[258];
    uint8_t out[SEAL_SIZE(3)], pat[SEAL_SIZE(3)], back[3];
    uint8_t nonce[SEAL_NONCE_BYTES] = { 0 };
    struct seal_ad ad = ad_default();
    size_t len, n;

    (void)state;
    for (len = 254; len <= 256; len++) {
        memset(kind, 'k', len);
        kind[len] = '\0';
        ad.kind = kind;
        ad.field = "nom";
        memset(out, 0xa5, sizeof out);
        memcpy(pat, out, sizeof pat);
        if (len <= 255) {
            assert_int_equal(seal_field(fx.kr, &ad, 1, nonce,
                                        (const uint8_t *)"abc", 3, out,
                                        sizeof out), CF_OK);
            assert_int_equal(seal_open(fx.kr, &ad, out, sizeof out, back, 3,
                                       &n), CF_OK);
        } else {
            assert_int_equal(seal_field(fx.kr, &ad, 1, nonce,
                                        (const uint8_t *)"abc", 3, out,
                                        sizeof out), CF_ERR_INPUT);
            assert_memory_equal(out, pat, sizeof out);
        }
        /* same for the field name */
        ad.kind = "eleve";
        ad.field = kind;
        assert_int_equal(seal_field(fx.kr, &ad, 1, nonce,
                                    (const uint8_t *)"abc", 3, out, sizeof out),
                         len <= 255 ? CF_OK : CF_ERR_INPUT);
    }
}

/* Every byte of a sealed value, changed to each of the 255 other values,
 * makes it fail to open. */
static void
test_open_rejects_every_byte_change(void **state)
{
    static const char pt[] = "Martin Dupont 16";
    uint8_t out[SEAL_SIZE(16)], m[SEAL_SIZE(16)], back[32];
    struct seal_ad ad = ad_default();
    size_t pos, n, tried = 0;
    unsigned x;

    (void)state;
    seal_ok(&ad, 1, pt, 16, out);
    for (pos = 0; pos < sizeof out; pos++) {
        for (x = 1; x < 256; x++) {
            memcpy(m, out, sizeof m);
            m[pos] ^= (uint8_t)x;
            assert_int_equal(seal_open(fx.kr, &ad, m, sizeof m, back,
                                       sizeof back, &n), CF_ERR_CRYPTO);
            tried++;
        }
    }
    assert_int_equal(tried, sizeof out * 255);
    assert_int_equal(seal_open(fx.kr, &ad, out, sizeof out, back, sizeof back,
                               &n), CF_OK);
    assert_memory_equal(back, pt, 16);
}

/* Every truncation, and an extension, fails to open. */
static void
test_open_rejects_every_truncation(void **state)
{
    static const char pt[] = "Martin Dupont 16";
    uint8_t out[SEAL_SIZE(16) + 1], back[32];
    struct seal_ad ad = ad_default();
    size_t len, n;

    (void)state;
    seal_ok(&ad, 2, pt, 16, out);
    for (len = 0; len < SEAL_SIZE(16); len++)
        assert_int_equal(seal_open(fx.kr, &ad, out, len, back, sizeof back,
                                   &n), CF_ERR_CRYPTO);
    for (len = 1; len < SEAL_SIZE(16); len++)   /* dropping a prefix */
        assert_int_equal(seal_open(fx.kr, &ad, out + len, SEAL_SIZE(16) - len,
                                   back, sizeof back, &n), CF_ERR_CRYPTO);
    out[SEAL_SIZE(16)] = 0;
    assert_int_equal(seal_open(fx.kr, &ad, out, SEAL_SIZE(16) + 1, back,
                               sizeof back, &n), CF_ERR_CRYPTO);
    assert_int_equal(seal_open(fx.kr, &ad, out, SEAL_SIZE(16), back,
                               sizeof back, &n), CF_OK);
}

/*
 * seal.h: on CF_ERR_CRYPTO "pt is left untouched".  Checked for a missing
 * key, a malformed header, a forged tag, a moved value and a truncation.
 */
static void
test_open_failure_leaves_output_untouched(void **state)
{
    static const char pt[] = "Martin Dupont 16";
    uint8_t out[SEAL_SIZE(16)], m[SEAL_SIZE(16)];
    uint8_t back[64], pat[64];
    struct seal_ad ad = ad_default(), bad;
    size_t n;

    (void)state;
    memset(pat, 0xa5, sizeof pat);
    seal_ok(&ad, 1, pt, 16, out);

    /* missing key (version 3) */
    memcpy(m, out, sizeof m);
    m[4] = 3;
    memcpy(back, pat, sizeof back);
    n = 4242;
    assert_int_equal(seal_open(fx.kr, &ad, m, sizeof m, back, sizeof back, &n),
                     CF_ERR_CRYPTO);
    assert_memory_equal(back, pat, sizeof back);
    assert_int_equal(n, 4242);
    /* malformed header */
    m[0] = 7;
    assert_int_equal(seal_open(fx.kr, &ad, m, sizeof m, back, sizeof back, &n),
                     CF_ERR_CRYPTO);
    assert_memory_equal(back, pat, sizeof back);
    /* moved to another field */
    bad = ad;
    bad.field = "prenom";
    assert_int_equal(seal_open(fx.kr, &bad, out, sizeof out, back, sizeof back,
                               &n), CF_ERR_CRYPTO);
    assert_int_equal(n, 4242);
    assert_memory_equal(back, pat, sizeof back);
    /* forged tag */
    memcpy(m, out, sizeof m);
    m[sizeof m - 1] ^= 1;
    assert_int_equal(seal_open(fx.kr, &ad, m, sizeof m, back, sizeof back, &n),
                     CF_ERR_CRYPTO);
    assert_memory_equal(back, pat, sizeof back);
    /* truncated by one byte */
    assert_int_equal(seal_open(fx.kr, &ad, out, sizeof out - 1, back,
                               sizeof back, &n), CF_ERR_CRYPTO);
    assert_memory_equal(back, pat, sizeof back);
    assert_int_equal(n, 4242);
}

/* No key for the compartment or the version: CF_ERR_CRYPTO, nothing
 * written. */
static void
test_missing_key(void **state)
{
    static const char pt[] = "Martin";
    uint8_t out[SEAL_SIZE(6)], pat[SEAL_SIZE(6)], back[8];
    uint8_t nonce[SEAL_NONCE_BYTES] = { 0 };
    struct seal_ad ad = ad_default(), bad;
    static const uint32_t versions[] = { 0, 3, KEYRING_MAX_VERSIONS,
                                         KEYRING_MAX_VERSIONS + 1, UINT32_MAX };
    size_t i, n;

    (void)state;
    memset(pat, 0xa5, sizeof pat);
    /* compartment not in the keyring */
    bad = ad;
    bad.compartment = "99";
    memcpy(out, pat, sizeof out);
    assert_int_equal(seal_field(fx.kr, &bad, 1, nonce, (const uint8_t *)pt, 6,
                                out, sizeof out), CF_ERR_CRYPTO);
    assert_memory_equal(out, pat, sizeof out);
    /* compartment held but without data keys */
    bad.compartment = "27";
    assert_int_equal(seal_field(fx.kr, &bad, 1, nonce, (const uint8_t *)pt, 6,
                                out, sizeof out), CF_ERR_CRYPTO);
    assert_memory_equal(out, pat, sizeof out);
    /* versions not installed */
    for (i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        assert_int_equal(seal_field(fx.kr, &ad, versions[i], nonce,
                                    (const uint8_t *)pt, 6, out, sizeof out),
                         CF_ERR_CRYPTO);
        assert_memory_equal(out, pat, sizeof out);
    }
    /* opening: a value sealed under "10" read as "99" or "27" */
    seal_ok(&ad, 1, pt, 6, out);
    bad.compartment = "99";
    assert_int_equal(seal_open(fx.kr, &bad, out, sizeof out, back, sizeof back,
                               &n), CF_ERR_CRYPTO);
    bad.compartment = "27";
    assert_int_equal(seal_open(fx.kr, &bad, out, sizeof out, back, sizeof back,
                               &n), CF_ERR_CRYPTO);
    /* a header naming a version not installed (large, too) */
    put_be32(out + 1, KEYRING_MAX_VERSIONS + 1);
    assert_int_equal(seal_open(fx.kr, &ad, out, sizeof out, back, sizeof back,
                               &n), CF_ERR_CRYPTO);
    put_be32(out + 1, UINT32_MAX);
    assert_int_equal(seal_open(fx.kr, &ad, out, sizeof out, back, sizeof back,
                               &n), CF_ERR_CRYPTO);
    /* the legitimate seal works */
    assert_int_equal(seal_field(fx.kr, &ad, 2, nonce, (const uint8_t *)pt, 6,
                                out, sizeof out), CF_OK);
}

static void
test_version_of(void **state)
{
    uint8_t v[SEAL_OVERHEAD + 1] = { 0 };

    (void)state;
    v[0] = SEAL_FORMAT_V1;
    put_be32(v + 1, 0x01020304);
    assert_int_equal(seal_version_of(v, SEAL_OVERHEAD), 0x01020304);
    assert_int_equal(seal_version_of(v, SEAL_OVERHEAD + 1), 0x01020304);
    assert_int_equal(seal_version_of(v, SEAL_OVERHEAD - 1), 0);
    assert_int_equal(seal_version_of(v, 5), 0);
    assert_int_equal(seal_version_of(v, 0), 0);
    v[0] = 0;
    assert_int_equal(seal_version_of(v, SEAL_OVERHEAD), 0);
    v[0] = 2;
    assert_int_equal(seal_version_of(v, SEAL_OVERHEAD), 0);
}

/* ---- seal_blind_index ----------------------------------------------------- */

static void
bidx(const char *comp, const char *field, const char *val, uint8_t *out,
     size_t outlen)
{
    assert_int_equal(seal_blind_index(fx.kr, comp, field, val, strlen(val),
                                      out, outlen), CF_OK);
}

/* Deterministic, and exactly keyed BLAKE2b(field || 0 || value) under the
 * compartment's index key. */
static void
test_bidx_deterministic(void **state)
{
    uint8_t a[16], b[16], ref[16];
    const uint8_t *k = keyring_index_key(fx.kr, "10");
    crypto_generichash_state st;
    const uint8_t zero = 0;

    (void)state;
    assert_non_null(k);
    bidx("10", "ine", "0999000001S", a, 16);
    bidx("10", "ine", "0999000001S", b, 16);
    assert_memory_equal(a, b, 16);
    crypto_generichash_init(&st, k, KEYRING_KEY_BYTES, 16);
    crypto_generichash_update(&st, (const uint8_t *)"ine", 3);
    crypto_generichash_update(&st, &zero, 1);
    crypto_generichash_update(&st, (const uint8_t *)"0999000001S", 11);
    crypto_generichash_final(&st, ref, 16);
    assert_memory_equal(a, ref, 16);
    /* len is the length: later bytes are not hashed */
    assert_int_equal(seal_blind_index(fx.kr, "10", "ine", "0999000001SXYZ", 11,
                                      b, 16), CF_OK);
    assert_memory_equal(a, b, 16);
}

static void
test_bidx_separates(void **state)
{
    uint8_t a[16], b[16];

    (void)state;
    bidx("10", "nom", "martin", a, 16);
    bidx("02", "nom", "martin", b, 16);         /* compartment */
    assert_true(memcmp(a, b, 16) != 0);
    bidx("27", "nom", "martin", b, 16);         /* held, no data key: ok */
    assert_true(memcmp(a, b, 16) != 0);
    bidx("10", "prenom", "martin", b, 16);      /* field */
    assert_true(memcmp(a, b, 16) != 0);
    bidx("10", "nom", "martine", b, 16);        /* value */
    assert_true(memcmp(a, b, 16) != 0);
    bidx("10", "nom", "Martin", b, 16);         /* case matters: normalise */
    assert_true(memcmp(a, b, 16) != 0);
    /* field/value boundary */
    bidx("10", "ab", "c", a, 16);
    bidx("10", "a", "bc", b, 16);
    assert_true(memcmp(a, b, 16) != 0);
    /* empty value is hashed too, and differs from none */
    bidx("10", "nom", "", a, 16);
    bidx("10", "nom", " ", b, 16);
    assert_true(memcmp(a, b, 16) != 0);
}

/* BLAKE2b's output length is a parameter: an 8-byte index is NOT a prefix
 * of the 16-byte one.  Bounds 8 and SEAL_BIDX_MAX_BYTES, each at N-1, N,
 * N+1; nothing written on refusal. */
static void
test_bidx_lengths(void **state)
{
    uint8_t b8[8], b16[16], b32[SEAL_BIDX_MAX_BYTES + 1], pat[sizeof b32];
    size_t len;

    (void)state;
    bidx("10", "ine", "0999000001S", b8, 8);
    bidx("10", "ine", "0999000001S", b16, 16);
    bidx("10", "ine", "0999000001S", b32, 32);
    assert_true(memcmp(b8, b16, 8) != 0);
    assert_true(memcmp(b16, b32, 16) != 0);

    memset(pat, 0xa5, sizeof pat);
    for (len = 0; len <= SEAL_BIDX_MAX_BYTES + 1; len++) {
        int ok = len >= 8 && len <= SEAL_BIDX_MAX_BYTES;

        memcpy(b32, pat, sizeof b32);
        assert_int_equal(seal_blind_index(fx.kr, "10", "ine", "0999000001S",
                                          11, b32, len),
                         ok ? CF_OK : CF_ERR_INPUT);
        /* never beyond len */
        assert_memory_equal(b32 + len, pat + len, sizeof b32 - len);
        if (!ok)
            assert_memory_equal(b32, pat, sizeof b32);
    }
    assert_int_equal(seal_blind_index(fx.kr, "10", "ine", "x", 1, b32,
                                      SIZE_MAX), CF_ERR_INPUT);
}

static void
test_bidx_missing_key(void **state)
{
    uint8_t out[16], pat[16];

    (void)state;
    memset(pat, 0xa5, sizeof pat);
    memcpy(out, pat, sizeof out);
    assert_int_equal(seal_blind_index(fx.kr, "99", "nom", "martin", 6, out, 16),
                     CF_ERR_CRYPTO);
    assert_memory_equal(out, pat, sizeof out);
    assert_int_equal(seal_blind_index(fx.kr, "1", "nom", "martin", 6, out, 16),
                     CF_ERR_CRYPTO);
    assert_int_equal(seal_blind_index(fx.kr, "100", "nom", "martin", 6, out,
                                      16), CF_ERR_CRYPTO);
    assert_memory_equal(out, pat, sizeof out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norm_nfc),
        cmocka_unit_test(test_norm_fold),
        cmocka_unit_test(test_norm_spaces),
        cmocka_unit_test(test_norm_rejects_control),
        cmocka_unit_test(test_norm_rejects_invalid_utf8),
        cmocka_unit_test(test_norm_rejects_empty),
        cmocka_unit_test(test_norm_upper),
        cmocka_unit_test(test_norm_max_bounds),
        cmocka_unit_test(test_norm_max_non_ascii),
        cmocka_unit_test(test_norm_raw_bound),
        cmocka_unit_test(test_norm_fold_growth),
        cmocka_unit_test(test_norm_cap),
        cmocka_unit_test(test_seal_roundtrip_and_format),
        cmocka_unit_test(test_seal_nonces),
        cmocka_unit_test(test_open_cap),
        cmocka_unit_test(test_ad_binding),
        cmocka_unit_test(test_ad_unambiguous),
        cmocka_unit_test(test_ad_version_in_header),
        cmocka_unit_test(test_ad_binds_version),
        cmocka_unit_test(test_ad_part_length),
        cmocka_unit_test(test_open_rejects_every_byte_change),
        cmocka_unit_test(test_open_rejects_every_truncation),
        cmocka_unit_test(test_open_failure_leaves_output_untouched),
        cmocka_unit_test(test_missing_key),
        cmocka_unit_test(test_version_of),
        cmocka_unit_test(test_bidx_deterministic),
        cmocka_unit_test(test_bidx_separates),
        cmocka_unit_test(test_bidx_lengths),
        cmocka_unit_test(test_bidx_missing_key),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
