/*
 * test_ids.c - unit tests of ids.c: the shared test vectors, input rules
 * (trimming, case, bounds, control bytes), what the check characters catch
 * and miss, the generators, and the académie table.
 *
 * ids.c is included so the tests run against exactly the file under test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "../../src/ids.c"

/* Every character a mutation may put in an identifier. */
static const char alnum36[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
#define ALNUM36 36

static enum cf_err
ine_str(const char *s, struct ine *out, struct cf_errmsg *em)
{
    return ids_parse_ine(s, strlen(s), out, em);
}

static enum cf_err
uai_str(const char *s, struct uai *out, struct cf_errmsg *em)
{
    return ids_parse_uai(s, strlen(s), out, em);
}

/*
 * An error message is one line, starts with the field name and does not
 * contain the input (n bytes at s), as given or upper-cased.  Inputs shorter
 * than 4 bytes are not searched: "1" is in "must be 11 characters" by
 * coincidence, not by echo.
 */
static void
assert_clean_message(const struct cf_errmsg *em, const char *prefix,
                     const char *s, size_t n)
{
    char up[IDS_INPUT_MAX_BYTES + 2];
    char raw[IDS_INPUT_MAX_BYTES + 2];
    size_t i;

    assert_true(em->msg[0] != '\0');
    assert_null(strchr(em->msg, '\n'));
    assert_int_equal(strncmp(em->msg, prefix, strlen(prefix)), 0);
    if (n < 4 || n > IDS_INPUT_MAX_BYTES || memchr(s, '\0', n) != NULL)
        return;
    memcpy(raw, s, n);
    raw[n] = '\0';
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        up[i] = c;
    }
    up[n] = '\0';
    assert_null(strstr(em->msg, raw));
    assert_null(strstr(em->msg, up));
}

/* --- shared vectors (/work/shared/samples/identifiers_test_vectors.txt) --- */

static void
test_vectors_uai(void **state)
{
    static const struct { const char *s; int ok; } v[] = {
        { "0999001W", 1 }, { "0999002X", 1 }, { "0999010F", 1 },
        { "0999100D", 1 }, { "0999001A", 0 }, { "0691670R", 1 },
        { "0370884K", 1 },
        /* more real UAIs cited in DOMAIN.md 2.1 */
        { "0690016T", 1 }, { "0451526P", 1 }, { "0049951V", 1 },
        /* AAF pseudo-structure: does not check */
        { "1004001V", 0 },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct uai u;
        struct cf_errmsg em = { "" };
        enum cf_err rc = uai_str(v[i].s, &u, &em);

        if (v[i].ok) {
            assert_int_equal(rc, CF_OK);
            assert_string_equal(u.s, v[i].s);
        } else {
            assert_int_equal(rc, CF_ERR_INPUT);
            assert_string_equal(em.msg, "uai: check letter does not match");
        }
    }
}

static void
test_vectors_ine(void **state)
{
    static const struct {
        const char *s;
        int ok;
        enum ine_kind kind;
        int checked;
        const char *msg;
    } v[] = {
        { "0999000001S", 1, INE_BEA, 1, NULL },
        { "0999000002T", 1, INE_BEA, 1, NULL },
        { "0999000005W", 1, INE_BEA, 1, NULL },
        { "0999000005X", 0, INE_BEA, 0, "ine: check letter does not match" },
        /* I, O, Q are never keys, and the last character is no digit */
        { "0999000001I", 0, INE_BEA, 0, "ine: not a known INE format" },
        { "0999000001O", 0, INE_BEA, 0, "ine: not a known INE format" },
        { "0999000001Q", 0, INE_BEA, 0, "ine: not a known INE format" },
        { "99ZZ0000019", 1, INE_BASE36, 1, NULL },
        { "1A2B3C4D5E0", 1, INE_BASE36, 1, NULL },
        { "1A2B3C4D5E1", 0, INE_BEA, 0, "ine: check digit does not match" },
        { "099900001AB", 1, INE_RNIE, 0, NULL },
        { "0999A00001Z", 1, INE_APPRENTI, 0, NULL },
        { "0999A00001I", 1, INE_APPRENTI, 0, NULL },
        { "0999B00001Z", 0, INE_BEA, 0, "ine: not a known INE format" },
        { "0999-000001", 0, INE_BEA, 0,
          "ine: only letters and digits are allowed" },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct ine e;
        struct cf_errmsg em = { "" };
        enum cf_err rc = ine_str(v[i].s, &e, &em);

        if (v[i].ok) {
            assert_int_equal(rc, CF_OK);
            assert_string_equal(e.s, v[i].s);
            assert_int_equal(e.kind, v[i].kind);
            assert_int_equal(e.checked, v[i].checked);
        } else {
            assert_int_equal(rc, CF_ERR_INPUT);
            assert_string_equal(em.msg, v[i].msg);
            assert_clean_message(&em, "ine: ", v[i].s, strlen(v[i].s));
        }
    }
}

/* --- input rules --- */

static void
test_trim_and_case(void **state)
{
    struct ine e;
    struct uai u;
    struct cf_errmsg em = { "" };

    (void)state;
    assert_int_equal(uai_str("   0999001w  ", &u, &em), CF_OK);
    assert_string_equal(u.s, "0999001W");
    assert_int_equal(ine_str(" 0999000001s", &e, &em), CF_OK);
    assert_string_equal(e.s, "0999000001S");
    assert_int_equal(e.kind, INE_BEA);
    assert_int_equal(ine_str("1a2b3c4d5e0 ", &e, &em), CF_OK);
    assert_string_equal(e.s, "1A2B3C4D5E0");
    assert_int_equal(e.kind, INE_BASE36);
    assert_int_equal(ine_str("  099900001ab  ", &e, &em), CF_OK);
    assert_string_equal(e.s, "099900001AB");
    assert_int_equal(e.kind, INE_RNIE);
    assert_int_equal(ine_str("0999a00001z", &e, &em), CF_OK);
    assert_string_equal(e.s, "0999A00001Z");
    assert_int_equal(e.kind, INE_APPRENTI);

    /* spaces inside are not trimmed */
    assert_int_equal(uai_str("0999 001W", &u, &em), CF_ERR_INPUT);
    assert_int_equal(ine_str("0999 000001S", &e, &em), CF_ERR_INPUT);
    /* a tab is a control byte, not a space */
    assert_int_equal(uai_str("\t0999001W", &u, &em), CF_ERR_INPUT);
    assert_string_equal(em.msg, "uai: contains a control byte");
    /* non-ASCII letters are not letters */
    assert_int_equal(ine_str("0999000001\xc3\x89", &e, &em), CF_ERR_INPUT);
    assert_int_equal(uai_str("0999001\xc3\x89", &u, &em), CF_ERR_INPUT);
}

/* len is the length: the bytes after it are never read or required. */
static void
test_not_nul_terminated(void **state)
{
    static const char buf[] = { '0', '9', '9', '9', '0', '0', '1', 'W',
                                'X', 'Y', 'Z' };
    static const char ibuf[] = { '0', '9', '9', '9', '0', '0', '0', '0',
                                 '0', '1', 'S', '7' };
    struct uai u;
    struct ine e;
    char code[ACADEMIE_CODE_BYTES + 1];
    struct cf_errmsg em = { "" };

    (void)state;
    assert_int_equal(ids_parse_uai(buf, 8, &u, &em), CF_OK);
    assert_string_equal(u.s, "0999001W");
    assert_int_equal(ids_parse_ine(ibuf, 11, &e, &em), CF_OK);
    assert_string_equal(e.s, "0999000001S");
    assert_int_equal(ids_parse_academie("70xyz", 2, code, &em), CF_OK);
    assert_string_equal(code, "70");
}

/* Builds a string of n bytes: id centred in spaces (n >= strlen(id)). */
static void
pad(char *buf, size_t n, const char *id)
{
    size_t idlen = strlen(id);
    size_t lead = (n - idlen) / 2;

    memset(buf, ' ', n);
    memcpy(buf + lead, id, idlen);
    buf[n] = '\0';
}

/* IDS_INPUT_MAX_BYTES at N-1, N, N+1, for each parser; empty and wrong
 * lengths. */
static void
test_bounds(void **state)
{
    char buf[IDS_INPUT_MAX_BYTES + 2];
    char code[ACADEMIE_CODE_BYTES + 1];
    struct ine e;
    struct uai u;
    struct cf_errmsg em = { "" };
    size_t n;

    (void)state;
    for (n = IDS_INPUT_MAX_BYTES - 1; n <= IDS_INPUT_MAX_BYTES + 1; n++) {
        enum cf_err want = n <= IDS_INPUT_MAX_BYTES ? CF_OK : CF_ERR_INPUT;

        pad(buf, n, "0999000001S");
        assert_int_equal(ids_parse_ine(buf, n, &e, &em), want);
        pad(buf, n, "0999001W");
        assert_int_equal(ids_parse_uai(buf, n, &u, &em), want);
        pad(buf, n, "01");
        assert_int_equal(ids_parse_academie(buf, n, code, &em), want);
    }
    assert_string_equal(em.msg, "académie: longer than 64 bytes");
    pad(buf, IDS_INPUT_MAX_BYTES + 1, "0999000001S");
    assert_int_equal(ids_parse_ine(buf, IDS_INPUT_MAX_BYTES + 1, &e, &em),
                     CF_ERR_INPUT);
    assert_string_equal(em.msg, "ine: longer than 64 bytes");

    /* empty, NULL, all spaces */
    assert_int_equal(ids_parse_ine("", 0, &e, &em), CF_ERR_INPUT);
    assert_string_equal(em.msg, "ine: must be 11 characters");
    assert_int_equal(ids_parse_ine(NULL, 0, &e, &em), CF_ERR_INPUT);
    assert_int_equal(ids_parse_ine(NULL, 11, &e, &em), CF_ERR_INPUT);
    assert_int_equal(ids_parse_uai("", 0, &u, &em), CF_ERR_INPUT);
    assert_string_equal(em.msg, "uai: must be 8 characters");
    assert_int_equal(ids_parse_uai(NULL, 8, &u, &em), CF_ERR_INPUT);
    assert_int_equal(ids_parse_academie("", 0, code, &em), CF_ERR_INPUT);
    assert_int_equal(ids_parse_academie(NULL, 2, code, &em), CF_ERR_INPUT);
    assert_int_equal(ine_str("           ", &e, &em), CF_ERR_INPUT);
    assert_int_equal(uai_str("        ", &u, &em), CF_ERR_INPUT);

    /* one character short and one too many */
    assert_int_equal(ine_str("0999000001", &e, &em), CF_ERR_INPUT);
    assert_string_equal(em.msg, "ine: must be 11 characters");
    assert_int_equal(ine_str("0999000001SS", &e, &em), CF_ERR_INPUT);
    assert_string_equal(em.msg, "ine: must be 11 characters");
    assert_int_equal(uai_str("099901W", &u, &em), CF_ERR_INPUT);
    assert_int_equal(uai_str("0999001WW", &u, &em), CF_ERR_INPUT);
    assert_string_equal(em.msg, "uai: must be 8 characters");

    /* NULL out and NULL em are refused or tolerated, never dereferenced */
    assert_int_equal(ine_str("0999000001S", NULL, &em), CF_ERR_INPUT);
    assert_int_equal(uai_str("0999001W", NULL, NULL), CF_ERR_INPUT);
    assert_int_equal(ids_parse_academie("01", 2, NULL, NULL), CF_ERR_INPUT);
    assert_int_equal(ine_str("bad", &e, NULL), CF_ERR_INPUT);
    assert_int_equal(ine_str("0999000001S", &e, NULL), CF_OK);
}

/* Every control byte, at the start, in the middle, at the end, and among
 * the surrounding spaces, is refused by every parser. */
static void
test_control_bytes(void **state)
{
    static const size_t at[] = { 0, 1, 5, 10, 11, 12 };
    char buf[16];
    char code[ACADEMIE_CODE_BYTES + 1];
    struct ine e;
    struct uai u;
    struct cf_errmsg em;
    unsigned c;
    size_t i;

    (void)state;
    for (c = 0; c < 0x80; c++) {
        if (c >= 0x20 && c != 0x7f)
            continue;
        for (i = 0; i < sizeof at / sizeof at[0]; i++) {
            /* " 0999000001S " with byte c replacing position at[i] */
            memcpy(buf, " 0999000001S ", 13);
            buf[at[i]] = (char)c;
            memset(&em, 0, sizeof em);
            assert_int_equal(ids_parse_ine(buf, 13, &e, &em), CF_ERR_INPUT);
            assert_string_equal(em.msg, "ine: contains a control byte");

            memcpy(buf, " 0999001W ", 10);
            buf[at[i] % 10] = (char)c;
            assert_int_equal(ids_parse_uai(buf, 10, &u, &em), CF_ERR_INPUT);
            assert_string_equal(em.msg, "uai: contains a control byte");

            memcpy(buf, " 01 ", 4);
            buf[at[i] % 4] = (char)c;
            assert_int_equal(ids_parse_academie(buf, 4, code, &em),
                             CF_ERR_INPUT);
            assert_string_equal(em.msg,
                                "académie: contains a control byte");
        }
    }
    /* a NUL right after a valid value, inside len, is refused too */
    assert_int_equal(ids_parse_uai("0999001W\0", 9, &u, &em), CF_ERR_INPUT);
    /* bytes >= 0x80 are not control bytes but are never valid */
    for (c = 0x80; c <= 0xff; c++) {
        memcpy(buf, "0999000001S", 11);
        buf[10] = (char)c;
        assert_int_equal(ids_parse_ine(buf, 11, &e, &em), CF_ERR_INPUT);
        memcpy(buf, "0999001W", 8);
        buf[3] = (char)c;
        assert_int_equal(ids_parse_uai(buf, 8, &u, &em), CF_ERR_INPUT);
    }
}

/* On error *out keeps every byte it had. */
static void
test_out_untouched(void **state)
{
    static const char *bad_ine[] = { "0999000005X", "1A2B3C4D5E1", "",
                                     "0999000001I", "0999000001S1" };
    static const char *bad_uai[] = { "0999001A", "0999001", "A999001W" };
    struct ine e, e0;
    struct uai u, u0;
    char code[ACADEMIE_CODE_BYTES + 1], code0[ACADEMIE_CODE_BYTES + 1];
    struct cf_errmsg em;
    size_t i;

    (void)state;
    memset(&e0, 0xa5, sizeof e0);
    memset(&u0, 0xa5, sizeof u0);
    memset(code0, 0xa5, sizeof code0);
    for (i = 0; i < sizeof bad_ine / sizeof bad_ine[0]; i++) {
        e = e0;
        assert_int_equal(ine_str(bad_ine[i], &e, &em), CF_ERR_INPUT);
        assert_memory_equal(&e, &e0, sizeof e);
    }
    for (i = 0; i < sizeof bad_uai / sizeof bad_uai[0]; i++) {
        u = u0;
        assert_int_equal(uai_str(bad_uai[i], &u, &em), CF_ERR_INPUT);
        assert_memory_equal(&u, &u0, sizeof u);
    }
    memcpy(code, code0, sizeof code);
    assert_int_equal(ids_parse_academie("05", 2, code, &em), CF_ERR_INPUT);
    assert_memory_equal(code, code0, sizeof code);
}

/* --- what the check characters catch --- */

/*
 * UAI: a digit changed by d at weight 10^k moves n by d*10^k; 23 is prime
 * and divides neither d (1..9) nor 10^k, so n mod 23 changes.  A changed
 * letter is either another A23 letter (wrong key), I/O/Q (never a key) or
 * a digit (wrong shape).  So all 8 * 35 mutations must be rejected.
 */
static void
test_uai_every_mutation_rejected(void **state)
{
    static const char *valid[] = { "0999001W", "0999002X", "0999010F",
                                   "0999100D", "0691670R", "0370884K" };
    size_t v, pos, k, tried;

    (void)state;
    for (v = 0; v < sizeof valid / sizeof valid[0]; v++) {
        tried = 0;
        for (pos = 0; pos < UAI_BYTES; pos++) {
            for (k = 0; k < ALNUM36; k++) {
                char m[UAI_BYTES + 1];
                struct uai u;
                struct cf_errmsg em = { "" };

                memcpy(m, valid[v], sizeof m);
                if (m[pos] == alnum36[k])
                    continue;
                m[pos] = alnum36[k];
                tried++;
                assert_int_equal(uai_str(m, &u, &em), CF_ERR_INPUT);
                assert_clean_message(&em, "uai: ", m, UAI_BYTES);
            }
        }
        assert_int_equal(tried, UAI_BYTES * (ALNUM36 - 1));
    }
}

/*
 * INE-BEA: by the argument above, no mutation yields another valid INE-BEA.
 * But the dispatch rules give some mutants another meaning, and those
 * parse as other kinds; the loop proves there are exactly these:
 *   - position 9 set to any of the 26 letters: 9 digits + 2 letters, an
 *     RNIE, which has no known check (26 mutants);
 *   - position 4 set to 'A': the apprentissage shape, no check (1 mutant);
 *   - position 10 set to a digit: 11 alphanumerics ending in a digit, a
 *     base-36 INE; its check digit is fixed by positions 0..9, so exactly
 *     one of the 10 digits passes (1 mutant).
 * A typo in an INE-BEA can therefore be accepted as another kind: callers
 * that know which kind to expect must compare ine.kind.
 */
static void
test_ine_bea_every_mutation_rejected_as_bea(void **state)
{
    static const char *valid[] = { "0999000001S", "0999000002T",
                                   "0999000005W" };
    size_t v, pos, k;

    (void)state;
    for (v = 0; v < sizeof valid / sizeof valid[0]; v++) {
        size_t rnie = 0, appr = 0, b36 = 0, tried = 0;

        for (pos = 0; pos < INE_BYTES; pos++) {
            for (k = 0; k < ALNUM36; k++) {
                char m[INE_BYTES + 1];
                struct ine e;
                struct cf_errmsg em = { "" };
                char c = alnum36[k];

                memcpy(m, valid[v], sizeof m);
                if (m[pos] == c)
                    continue;
                m[pos] = c;
                tried++;
                if (ine_str(m, &e, &em) != CF_OK) {
                    assert_clean_message(&em, "ine: ", m, INE_BYTES);
                    continue;
                }
                assert_int_not_equal(e.kind, INE_BEA);
                if (pos == 9 && is_upper(c)) {
                    assert_int_equal(e.kind, INE_RNIE);
                    rnie++;
                } else if (pos == 4 && c == 'A') {
                    assert_int_equal(e.kind, INE_APPRENTI);
                    appr++;
                } else {
                    assert_int_equal(pos, 10);
                    assert_true(is_digit(c));
                    assert_int_equal(e.kind, INE_BASE36);
                    b36++;
                }
            }
        }
        assert_int_equal(tried, INE_BYTES * (ALNUM36 - 1));
        assert_int_equal(rnie, 26);
        assert_int_equal(appr, 1);
        assert_int_equal(b36, 1);
    }
}

/* Number of values x in 0..35 with x = r (mod m), for 0 <= r < m. */
static size_t
class_size(unsigned r, unsigned m)
{
    return (35 - r) / m + 1;
}

/*
 * INE base 36: t = 6 * (v0 + ... + v8) + v9, key = t mod 10.
 *   - position i < 9 changed by d = v' - v moves t by 6d; 6d = 0 (mod 10)
 *     iff d = 0 (mod 5).  So the mutants that slip through are the other
 *     values of v's class mod 5 in 0..35: class_size(v % 5, 5) - 1.
 *   - position 9 changed by d moves t by d: missed iff d = 0 (mod 10):
 *     class_size(v % 10, 10) - 1.
 *   - position 10: another digit is another key; a letter makes the last
 *     character a non-digit, and these vectors have a letter in 0..3 or
 *     5..8 (checked below) so no other kind matches either: all caught.
 * Mutants of positions 0..9 still end in a digit, so they stay base 36.
 * For 99ZZ0000019 this gives 385 - 64 = 321 caught; for 1A2B3C4D5E0,
 * 385 - 59 = 326.
 */
static void
test_ine_base36_mutations_caught(void **state)
{
    static const char *valid[] = { "99ZZ0000019", "1A2B3C4D5E0" };
    size_t v, pos, k;

    (void)state;
    for (v = 0; v < sizeof valid / sizeof valid[0]; v++) {
        const char *s = valid[v];
        size_t caught = 0, missed = 0, expect_missed = 0;
        int letter_outside = 0;

        for (pos = 0; pos < 9; pos++) {
            if (pos != 4 && is_upper(s[pos]))
                letter_outside = 1;
        }
        assert_true(letter_outside);
        for (pos = 0; pos < 9; pos++)
            expect_missed += class_size(base36_value(s[pos]) % 5, 5) - 1;
        expect_missed += class_size(base36_value(s[9]) % 10, 10) - 1;

        for (pos = 0; pos < INE_BYTES; pos++) {
            for (k = 0; k < ALNUM36; k++) {
                char m[INE_BYTES + 1];
                struct ine e;
                struct cf_errmsg em = { "" };

                memcpy(m, s, sizeof m);
                if (m[pos] == alnum36[k])
                    continue;
                m[pos] = alnum36[k];
                if (ine_str(m, &e, &em) == CF_OK) {
                    assert_int_equal(e.kind, INE_BASE36);
                    assert_true(pos < 10);
                    missed++;
                } else {
                    assert_clean_message(&em, "ine: ", m, INE_BYTES);
                    caught++;
                }
            }
        }
        assert_int_equal(caught + missed, INE_BYTES * (ALNUM36 - 1));
        assert_int_equal(missed, expect_missed);
    }
}

/*
 * INE-RNIE is checked by format only: every digit changed for another digit
 * and every letter for another letter still passes (a typo is NOT caught).
 * Mutants that break the format are refused, except where the dispatch
 * gives them another, checked, meaning: a digit at position 9 makes a
 * 10-digit INE-BEA (at most one of ten consecutive n matches the key
 * letter) and a digit at position 10 a base-36 INE (exactly one digit is
 * the key).
 */
static void
test_ine_rnie_format_only(void **state)
{
    static const char *s = "099900001AB";
    static const char *junk = "-._ /+\xc3";
    size_t pos, k, passed = 0, bea = 0, b36 = 0;
    struct ine e;
    struct cf_errmsg em;

    (void)state;
    for (pos = 0; pos < INE_BYTES; pos++) {
        for (k = 0; k < ALNUM36; k++) {
            char m[INE_BYTES + 1];
            char c = alnum36[k];
            enum cf_err rc;

            memcpy(m, s, sizeof m);
            if (m[pos] == c)
                continue;
            m[pos] = c;
            rc = ine_str(m, &e, &em);
            if (is_digit(s[pos]) == is_digit(c)) {
                /* same class: the format still holds */
                assert_int_equal(rc, CF_OK);
                assert_int_equal(e.kind, INE_RNIE);
                assert_int_equal(e.checked, 0);
                passed++;
            } else if (pos < 9) {
                /* a letter among the 9 digits */
                assert_int_equal(rc, CF_ERR_INPUT);
                assert_clean_message(&em, "ine: ", m, INE_BYTES);
            } else if (rc == CF_OK) {
                assert_int_equal(e.checked, 1);
                if (pos == 9) {
                    assert_int_equal(e.kind, INE_BEA);
                    bea++;
                } else {
                    assert_int_equal(e.kind, INE_BASE36);
                    b36++;
                }
            }
        }
        for (k = 0; junk[k] != '\0'; k++) {
            char m[INE_BYTES + 1];

            memcpy(m, s, sizeof m);
            m[pos] = junk[k];
            memset(&em, 0, sizeof em);
            assert_int_equal(ine_str(m, &e, &em), CF_ERR_INPUT);
            assert_clean_message(&em, "ine: ", m, INE_BYTES);
        }
    }
    /* 9 digits * 9 other digits + 2 letters * 25 other letters */
    assert_int_equal(passed, 9 * 9 + 2 * 25);
    assert_true(bea <= 1);
    assert_int_equal(b36, 1);
    /* dropped or added characters */
    assert_int_equal(ine_str("099900001A", &e, &em), CF_ERR_INPUT);
    assert_int_equal(ine_str("099900001ABC", &e, &em), CF_ERR_INPUT);
    assert_int_equal(ine_str("09990001AB", &e, &em), CF_ERR_INPUT);
}

/* --- generators --- */

static void
test_make_uai_roundtrip(void **state)
{
    struct uai u, p;
    struct cf_errmsg em;
    unsigned long n;
    size_t count = 0;

    (void)state;
    assert_int_equal(ids_make_uai(999001, &u), CF_OK);
    assert_string_equal(u.s, "0999001W");
    assert_int_equal(ids_make_uai(691670, &u), CF_OK);
    assert_string_equal(u.s, "0691670R");
    assert_int_equal(ids_make_uai(0, &u), CF_OK);
    assert_string_equal(u.s, "0000000A");
    assert_int_equal(ids_make_uai(9999999, &u), CF_OK);
    assert_int_equal(uai_str(u.s, &p, &em), CF_OK);

    memset(&u, 0x5a, sizeof u);
    p = u;
    assert_int_equal(ids_make_uai(10000000, &u), CF_ERR_INPUT);
    assert_int_equal(ids_make_uai(ULONG_MAX, &u), CF_ERR_INPUT);
    assert_memory_equal(&u, &p, sizeof u);
    assert_int_equal(ids_make_uai(1, NULL), CF_ERR_INPUT);

    /* 7919 is prime: the steps walk through every residue mod 23 */
    for (n = 0; n <= 9999999; n += 7919) {
        char buf[IDS_INPUT_MAX_BYTES];

        assert_int_equal(ids_make_uai(n, &u), CF_OK);
        assert_int_equal(strlen(u.s), UAI_BYTES);
        assert_int_equal(uai_str(u.s, &p, &em), CF_OK);
        assert_string_equal(p.s, u.s);
        /* the number is the 7 digits */
        assert_int_equal(digits_value(u.s, 7), n);
        /* lower-case and padded also round-trip */
        snprintf(buf, sizeof buf, " %.7s%c ", u.s, u.s[7] - 'A' + 'a');
        assert_int_equal(uai_str(buf, &p, &em), CF_OK);
        assert_string_equal(p.s, u.s);
        count++;
    }
    assert_true(count > 1000);
}

static void
test_make_ine_bea_roundtrip(void **state)
{
    struct ine e, p;
    struct cf_errmsg em;
    unsigned long long n;
    size_t count = 0;

    (void)state;
    assert_int_equal(ids_make_ine_bea(999000001ULL, &e), CF_OK);
    assert_string_equal(e.s, "0999000001S");
    assert_int_equal(e.kind, INE_BEA);
    assert_int_equal(e.checked, 1);
    assert_int_equal(ids_make_ine_bea(999000005ULL, &e), CF_OK);
    assert_string_equal(e.s, "0999000005W");
    /* above 2^32: the check needs 64 bits */
    assert_int_equal(ids_make_ine_bea(9999999999ULL, &e), CF_OK);
    assert_int_equal(ine_str(e.s, &p, &em), CF_OK);
    assert_int_equal(p.kind, INE_BEA);
    assert_int_equal(e.s[10], a23[9999999999ULL % 23]);

    memset(&e, 0x5a, sizeof e);
    p = e;
    assert_int_equal(ids_make_ine_bea(10000000000ULL, &e), CF_ERR_INPUT);
    assert_int_equal(ids_make_ine_bea(ULLONG_MAX, &e), CF_ERR_INPUT);
    assert_memory_equal(&e, &p, sizeof e);
    assert_int_equal(ids_make_ine_bea(1, NULL), CF_ERR_INPUT);

    for (n = 0; n <= 9999999999ULL; n += 1000003ULL) {
        assert_int_equal(ids_make_ine_bea(n, &e), CF_OK);
        assert_int_equal(strlen(e.s), INE_BYTES);
        assert_int_equal(ine_str(e.s, &p, &em), CF_OK);
        assert_string_equal(p.s, e.s);
        assert_int_equal(p.kind, INE_BEA);
        assert_int_equal(p.checked, 1);
        assert_true(digits_value(e.s, 10) == n);
        count++;
    }
    assert_true(count > 9000);
}

/*
 * Random bytes (mostly identifier-like) through every parser: what parses
 * is canonical and parses again the same; what fails says so in one line
 * without the input.
 */
static void
test_random_inputs(void **state)
{
    static const char pool[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "abcdefghijklmnopqrstuvwxyz   A";
    uint32_t x = 0x2545f491u;
    size_t iter, i, ok = 0;

    (void)state;
    for (iter = 0; iter < 200000; iter++) {
        char buf[IDS_INPUT_MAX_BYTES + 8];
        size_t len;
        struct ine e, e2;
        struct uai u, u2;
        char code[ACADEMIE_CODE_BYTES + 1];
        struct cf_errmsg em;

        x = x * 1664525u + 1013904223u;
        len = (x >> 24) % 16;
        if ((x & 0xff) == 0)
            len = (x >> 8) % sizeof buf;
        for (i = 0; i < len; i++) {
            x = x * 1664525u + 1013904223u;
            if (((x >> 8) & 0x3f) == 0)
                buf[i] = (char)(x >> 16);
            else
                buf[i] = pool[(x >> 16) % (sizeof pool - 1)];
        }

        memset(&em, 0, sizeof em);
        if (ids_parse_ine(buf, len, &e, &em) == CF_OK) {
            ok++;
            assert_int_equal(strlen(e.s), INE_BYTES);
            assert_int_equal(ine_str(e.s, &e2, &em), CF_OK);
            assert_memory_equal(&e, &e2, sizeof e);
            assert_int_equal(e.checked,
                             e.kind == INE_BEA || e.kind == INE_BASE36);
        } else {
            assert_clean_message(&em, "ine: ", buf, len);
        }
        memset(&em, 0, sizeof em);
        if (ids_parse_uai(buf, len, &u, &em) == CF_OK) {
            assert_int_equal(strlen(u.s), UAI_BYTES);
            assert_int_equal(uai_str(u.s, &u2, &em), CF_OK);
            assert_string_equal(u.s, u2.s);
        } else {
            assert_clean_message(&em, "uai: ", buf, len);
        }
        memset(&em, 0, sizeof em);
        if (ids_parse_academie(buf, len, code, &em) == CF_OK)
            assert_non_null(ids_academie_name(code));
        else
            assert_clean_message(&em, "académie: ", buf, len);
    }
    /* the pool makes some inputs parse: the OK branch was exercised */
    assert_true(ok > 0);
}

/* --- académies --- */

static void
test_academie(void **state)
{
    static const char *bad[] = { "00", "05", "21", "1", "100", "ab", "26",
                                 "99", "0 1", "+1", "-1", "1a" };
    char code[ACADEMIE_CODE_BYTES + 1];
    struct cf_errmsg em = { "" };
    size_t i, n;

    (void)state;
    assert_int_equal(ids_parse_academie("01", 2, code, &em), CF_OK);
    assert_string_equal(code, "01");
    assert_int_equal(ids_parse_academie("  70 ", 5, code, &em), CF_OK);
    assert_string_equal(code, "70");
    assert_int_equal(ids_parse_academie("44", 2, code, &em), CF_OK);

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&em, 0, sizeof em);
        assert_int_equal(ids_parse_academie(bad[i], strlen(bad[i]), code,
                                            &em), CF_ERR_INPUT);
        assert_clean_message(&em, "académie: ", bad[i], strlen(bad[i]));
    }
    assert_int_equal(ids_parse_academie("05", 2, code, &em), CF_ERR_INPUT);
    assert_string_equal(em.msg,
                        "académie: unknown code (see 'coffre academies')");
    assert_int_equal(ids_parse_academie("ab", 2, code, &em), CF_ERR_INPUT);
    assert_string_equal(em.msg, "académie: must be 2 digits");
    assert_int_equal(ids_parse_academie("100", 3, code, &em), CF_ERR_INPUT);
    assert_string_equal(em.msg, "académie: must be 2 digits");

    assert_string_equal(ids_academie_name("01"), "Paris");
    assert_string_equal(ids_academie_name("02"), "Aix-Marseille");
    assert_string_equal(ids_academie_name("03"), "Besançon");
    assert_string_equal(ids_academie_name("18"), "Orléans-Tours");
    assert_string_equal(ids_academie_name("24"), "Créteil");
    assert_string_equal(ids_academie_name("28"), "La Réunion");
    assert_string_equal(ids_academie_name("70"), "Normandie");
    assert_null(ids_academie_name("05"));
    assert_null(ids_academie_name("21"));
    assert_null(ids_academie_name("1"));
    assert_null(ids_academie_name(""));
    assert_null(ids_academie_name(NULL));

    /* iteration: count entries, strictly increasing codes, each parses */
    for (n = 0; ids_academie_code_at(n) != NULL; n++) {
        const char *c = ids_academie_code_at(n);

        assert_int_equal(strlen(c), ACADEMIE_CODE_BYTES);
        assert_non_null(ids_academie_name(c));
        assert_true(ids_academie_name(c)[0] != '\0');
        assert_int_equal(ids_parse_academie(c, 2, code, &em), CF_OK);
        assert_string_equal(code, c);
        if (n > 0)
            assert_true(strcmp(ids_academie_code_at(n - 1), c) < 0);
    }
    assert_int_equal(n, ids_academie_count());
    /* 29 sourced (DOMAIN.md 2.3) + 5 inferred overseas */
    assert_int_equal(n, 29 + 5);
    assert_true(n < KEYRING_MAX_COMPARTMENTS);
    assert_null(ids_academie_code_at(ids_academie_count()));
    assert_null(ids_academie_code_at((size_t)-1));

    /* every other two-digit code is refused */
    for (i = 0; i < 100; i++) {
        char c[3];

        c[0] = (char)('0' + i / 10);
        c[1] = (char)('0' + i % 10);
        c[2] = '\0';
        assert_int_equal(ids_parse_academie(c, 2, code, &em) == CF_OK,
                         ids_academie_name(c) != NULL);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_uai),
        cmocka_unit_test(test_vectors_ine),
        cmocka_unit_test(test_trim_and_case),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_control_bytes),
        cmocka_unit_test(test_out_untouched),
        cmocka_unit_test(test_uai_every_mutation_rejected),
        cmocka_unit_test(test_ine_bea_every_mutation_rejected_as_bea),
        cmocka_unit_test(test_ine_base36_mutations_caught),
        cmocka_unit_test(test_ine_rnie_format_only),
        cmocka_unit_test(test_make_uai_roundtrip),
        cmocka_unit_test(test_make_ine_bea_roundtrip),
        cmocka_unit_test(test_random_inputs),
        cmocka_unit_test(test_academie),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
