/*
 * ids.c - parsing and check characters of INE, UAI and académie codes
 * (DOMAIN.md section 2), plus the académie table.
 *
 * Owns the only copy of the check algorithms and of the académie list.
 * Never allocates, never mutates a global, never writes its output on error
 * and never puts the input into an error message: an INE designates a child.
 */
#include <stddef.h>
#include <string.h>

#include "ids.h"
#include "banned.h"

/* The 23 check letters: A..Z without I, O and Q. */
static const char a23[] = "ABCDEFGHJKLMNPRSTUVWXYZ";

struct academie {
    char code[ACADEMIE_CODE_BYTES + 1];
    const char *name;
};

/* STS/BCN codes, ordered by code (ids_academie_code_at relies on it). */
static const struct academie academies[] = {
    { "01", "Paris" },
    { "02", "Aix-Marseille" },
    { "03", "Besançon" },
    { "04", "Bordeaux" },
    /* 05 Caen merged into 70 Normandie (2020). */
    { "06", "Clermont-Ferrand" },
    { "07", "Dijon" },
    { "08", "Grenoble" },
    { "09", "Lille" },
    { "10", "Lyon" },
    { "11", "Montpellier" },
    { "12", "Nancy-Metz" },
    { "13", "Poitiers" },
    { "14", "Rennes" },
    { "15", "Strasbourg" },
    { "16", "Toulouse" },
    { "17", "Nantes" },
    { "18", "Orléans-Tours" },
    { "19", "Reims" },
    { "20", "Amiens" },
    /* 21 Rouen merged into 70 Normandie (2020). */
    { "22", "Limoges" },
    { "23", "Nice" },
    { "24", "Créteil" },
    { "25", "Versailles" },
    { "27", "Corse" },
    { "28", "La Réunion" },
    { "31", "Martinique" },
    { "32", "Guadeloupe" },
    { "33", "Guyane" },
    /*
     * 40-44 are INFERRED, not taken from a source (DOMAIN.md 2.3): they must
     * be checked against the BCN table N_ACADEMIE before production use.
     */
    { "40", "Nouvelle-Calédonie" },
    { "41", "Polynésie française" },
    { "42", "Wallis-et-Futuna" },
    { "43", "Mayotte" },
    { "44", "Saint-Pierre-et-Miquelon" },
    { "70", "Normandie" },
};

#define ACADEMIE_COUNT (sizeof academies / sizeof academies[0])

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int
is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

static int
all_digits(const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): callers pass a buffer filled up to the length they check */
        if (!is_digit(p[i]))
            return 0;
    }
    return 1;
}

/* Value of a digit or upper-case letter in base 36; c is one of those. */
static unsigned
base36_value(char c)
{
    if (is_digit(c))
        return (unsigned)(c - '0');
    return (unsigned)(c - 'A') + 10;
}

/* n digits at p as a number; n <= 19 so it fits 64 bits. */
static unsigned long long
digits_value(const char *p, size_t n)
{
    unsigned long long v = 0;
    size_t i;

    for (i = 0; i < n; i++)
        v = v * 10 + (unsigned long long)(p[i] - '0');
    return v;
}

/* Writes n as exactly width decimal digits at p (n < 10^width). */
static void
put_digits(char *p, size_t width, unsigned long long n)
{
    while (width > 0) {
        width--;
        p[width] = (char)('0' + n % 10);
        n /= 10;
    }
}

/*
 * The input rules shared by every identifier: bound the raw length, refuse
 * NUL and control bytes, trim surrounding spaces, require exactly want
 * characters (shape says which, for the message) and upper-case them into
 * buf, which holds want + 1 bytes.
 */
static enum cf_err
ids_clean(const char *s, size_t len, const char *field, size_t want,
          const char *shape, char *buf, struct cf_errmsg *em)
{
    size_t start, end, i;

    if (s == NULL)
        len = 0;
    if (len > IDS_INPUT_MAX_BYTES)
        return cf_fail(em, CF_ERR_INPUT, "%s: longer than %d bytes", field,
                       IDS_INPUT_MAX_BYTES);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f)
            return cf_fail(em, CF_ERR_INPUT, "%s: contains a control byte",
                           field);
    }
    start = 0;
    while (start < len && s[start] == ' ')
        start++;
    end = len;
    while (end > start && s[end - 1] == ' ')
        end--;
    if (end - start != want)
        return cf_fail(em, CF_ERR_INPUT, "%s: must be %s", field, shape);
    for (i = 0; i < want; i++) {
        char c = s[start + i];

        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        buf[i] = c;
    }
    buf[want] = '\0';
    return CF_OK;
}

enum cf_err
ids_parse_ine(const char *s, size_t len, struct ine *out, struct cf_errmsg *em)
{
    char t[INE_BYTES + 1];
    enum ine_kind kind;
    int checked = 0;
    enum cf_err rc;
    size_t i;

    if (out == NULL)
        return cf_fail(em, CF_ERR_INPUT, "ine: no output given");
    rc = ids_clean(s, len, "ine", INE_BYTES, "11 characters", t, em);
    if (rc != CF_OK)
        return rc;
    for (i = 0; i < INE_BYTES; i++) {
        if (!is_digit(t[i]) && !is_upper(t[i]))
            return cf_fail(em, CF_ERR_INPUT,
                           "ine: only letters and digits are allowed");
    }

    if (all_digits(t, 10) && is_upper(t[10]) && t[10] != 'I' &&
        t[10] != 'O' && t[10] != 'Q') {
        /* 10 digits exceed 2^31: digits_value works in 64 bits. */
        if (t[10] != a23[digits_value(t, 10) % 23])
            return cf_fail(em, CF_ERR_INPUT,
                           "ine: check letter does not match");
        kind = INE_BEA;
        checked = 1;
    } else if (all_digits(t, 9) && is_upper(t[9]) && is_upper(t[10])) {
        /* RNIE: the key algorithm is not public (DOMAIN.md 2.2). */
        kind = INE_RNIE;
    } else if (all_digits(t, 4) && t[4] == 'A' && all_digits(t + 5, 5) &&
               is_upper(t[10])) {
        kind = INE_APPRENTI;
    } else if (is_digit(t[10])) {
        /* esup-transferts CheckNNE36, weights as implemented there. */
        unsigned sum = 0;

        for (i = 0; i < 9; i++)
            sum += base36_value(t[i]) * 6;
        sum += base36_value(t[9]);
        if ((unsigned)(t[10] - '0') != sum % 10)
            return cf_fail(em, CF_ERR_INPUT,
                           "ine: check digit does not match");
        kind = INE_BASE36;
        checked = 1;
    } else {
        return cf_fail(em, CF_ERR_INPUT, "ine: not a known INE format");
    }

    memcpy(out->s, t, sizeof out->s);
    out->kind = kind;
    out->checked = checked;
    return CF_OK;
}

enum cf_err
ids_parse_uai(const char *s, size_t len, struct uai *out, struct cf_errmsg *em)
{
    char t[UAI_BYTES + 1];
    enum cf_err rc;

    if (out == NULL)
        return cf_fail(em, CF_ERR_INPUT, "uai: no output given");
    rc = ids_clean(s, len, "uai", UAI_BYTES, "8 characters", t, em);
    if (rc != CF_OK)
        return rc;
    if (!all_digits(t, 7) || !is_upper(t[7]))
        return cf_fail(em, CF_ERR_INPUT, "uai: must be 7 digits and a letter");
    if (t[7] != a23[digits_value(t, 7) % 23])
        return cf_fail(em, CF_ERR_INPUT, "uai: check letter does not match");
    memcpy(out->s, t, sizeof out->s);
    return CF_OK;
}

enum cf_err
ids_parse_academie(const char *s, size_t len, char out[ACADEMIE_CODE_BYTES + 1],
                   struct cf_errmsg *em)
{
    char t[ACADEMIE_CODE_BYTES + 1];
    enum cf_err rc;

    if (out == NULL)
        return cf_fail(em, CF_ERR_INPUT, "académie: no output given");
    rc = ids_clean(s, len, "académie", ACADEMIE_CODE_BYTES, "2 digits", t, em);
    if (rc != CF_OK)
        return rc;
    if (!all_digits(t, ACADEMIE_CODE_BYTES))
        return cf_fail(em, CF_ERR_INPUT, "académie: must be 2 digits");
    if (ids_academie_name(t) == NULL)
        return cf_fail(em, CF_ERR_INPUT,
                       "académie: unknown code (see 'coffre academies')");
    memcpy(out, t, sizeof t);
    return CF_OK;
}

const char *
ids_academie_name(const char *code)
{
    size_t i;

    if (code == NULL)
        return NULL;
    for (i = 0; i < ACADEMIE_COUNT; i++) {
        if (strcmp(academies[i].code, code) == 0)
            return academies[i].name;
    }
    return NULL;
}

size_t
ids_academie_count(void)
{
    return ACADEMIE_COUNT;
}

const char *
ids_academie_code_at(size_t i)
{
    if (i >= ACADEMIE_COUNT)
        return NULL;
    return academies[i].code;
}

enum cf_err
ids_make_uai(unsigned long n, struct uai *out)
{
    if (out == NULL || n > 9999999UL)
        return CF_ERR_INPUT;
    put_digits(out->s, 7, n);
    out->s[7] = a23[n % 23];
    out->s[UAI_BYTES] = '\0';
    return CF_OK;
}

enum cf_err
ids_make_ine_bea(unsigned long long n, struct ine *out)
{
    if (out == NULL || n > 9999999999ULL)
        return CF_ERR_INPUT;
    put_digits(out->s, 10, n);
    out->s[10] = a23[n % 23];
    out->s[INE_BYTES] = '\0';
    out->kind = INE_BEA;
    out->checked = 1;
    return CF_OK;
}

void
ids_ascii_slug(const char *in, char *out, size_t cap)
{
    static const struct { const char *utf8; char ascii; } map[] = {
        { "é", 'e' }, { "è", 'e' }, { "ê", 'e' }, { "ë", 'e' }, { "É", 'e' },
        { "È", 'e' }, { "Ê", 'e' }, { "Ë", 'e' }, { "à", 'a' }, { "â", 'a' },
        { "À", 'a' }, { "Â", 'a' }, { "ï", 'i' }, { "î", 'i' }, { "Î", 'i' },
        { "Ï", 'i' }, { "ô", 'o' }, { "Ô", 'o' }, { "ö", 'o' }, { "ç", 'c' },
        { "Ç", 'c' }, { "ù", 'u' }, { "û", 'u' }, { "ü", 'u' }, { "Ù", 'u' },
        { "Û", 'u' }, { "Ü", 'u' }, { "ÿ", 'y' },
    };
    size_t o = 0, i;

    while (*in != '\0' && o + 1 < cap) {
        unsigned char c = (unsigned char)*in;

        if (c < 0x80) {
            if (c != ' ' && c != '\'')
                out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            in++;
            continue;
        }
        for (i = 0; i < sizeof map / sizeof map[0]; i++)
            if (strncmp(in, map[i].utf8, 2) == 0)
                break;
        if (i < sizeof map / sizeof map[0])
            out[o++] = map[i].ascii;
        /* Skip the whole sequence: its lead byte, then continuation bytes. */
        in++;
        while (((unsigned char)*in & 0xC0) == 0x80)
            in++;
    }
    out[o] = '\0';
}
