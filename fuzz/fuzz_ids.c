/*
 * fuzz_ids.c - ids_parse_ine, ids_parse_uai, ids_parse_academie and
 * ids_ascii_slug on arbitrary bytes (every parser runs on every input).
 *
 * Invariants:
 *  - what parses is the input trimmed of ASCII spaces and upper-cased, has
 *    the shape of its kind, passes its check character (recomputed here),
 *    and parses again to the same value, kind and flag;
 *  - input over IDS_INPUT_MAX_BYTES or holding a control byte never parses;
 *  - on error the output is untouched and the message is one of the
 *    parser's fixed messages (collected at start-up from probe inputs), so
 *    it cannot carry input bytes;
 *  - ids_ascii_slug writes at most cap bytes, NUL-terminated, lower-case
 *    ASCII without spaces or apostrophes.
 *
 * fuzz-max-len: 128
 */
#include "fuzz.h"

#include "ids.h"

static const char a23[] = "ABCDEFGHJKLMNPRSTUVWXYZ";

/* Every error message a parser produced for the probes below. */
#define MAX_MSGS 32
struct msgset {
    char msg[MAX_MSGS][CF_ERRMSG_MAX];
    size_t n;
};

static struct msgset ine_msgs, uai_msgs, aca_msgs;

static void
msgset_add(struct msgset *m, const struct cf_errmsg *em)
{
    size_t i;

    for (i = 0; i < m->n; i++)
        if (strcmp(m->msg[i], em->msg) == 0)
            return;
    FZ_CHECK(m->n < MAX_MSGS);
    memcpy(m->msg[m->n++], em->msg, CF_ERRMSG_MAX);
}

static int
msgset_has(const struct msgset *m, const struct cf_errmsg *em)
{
    size_t i;

    if (memchr(em->msg, '\0', sizeof em->msg) == NULL)
        return 0;
    for (i = 0; i < m->n; i++)
        if (strcmp(m->msg[i], em->msg) == 0)
            return 1;
    return 0;
}

/* One probe per error path of ids.c, so that any message met while fuzzing
 * must be one of these fixed texts. */
static void
collect_messages(void)
{
    static const char *const ine_probes[] = {
        "\x01", "ABC", "1234567890!", "0000000000B", "ABCDEFGHIJK",
        "12345678901", "ABCDEFGHIJ0", "ABCDEFGHIJ1", "ABCDEFGHIJ2",
        "ABCDEFGHIJ3", "ABCDEFGHIJ4", "ABCDEFGHIJ5", "ABCDEFGHIJ6",
        "ABCDEFGHIJ7", "ABCDEFGHIJ8", "ABCDEFGHIJ9",
    };
    static const char *const uai_probes[] = {
        "\x01", "ABC", "ABCDEFGH", "0000000B",
    };
    static const char *const aca_probes[] = { "\x01", "1", "AB", "99" };
    char big[IDS_INPUT_MAX_BYTES + 1];
    struct cf_errmsg em;
    struct ine ine;
    struct uai uai;
    char aca[ACADEMIE_CODE_BYTES + 1];
    size_t i;

    memset(big, '1', sizeof big);
    if (ids_parse_ine(big, sizeof big, &ine, &em) != CF_OK)
        msgset_add(&ine_msgs, &em);
    if (ids_parse_uai(big, sizeof big, &uai, &em) != CF_OK)
        msgset_add(&uai_msgs, &em);
    if (ids_parse_academie(big, sizeof big, aca, &em) != CF_OK)
        msgset_add(&aca_msgs, &em);
    for (i = 0; i < sizeof ine_probes / sizeof ine_probes[0]; i++)
        if (ids_parse_ine(ine_probes[i], strlen(ine_probes[i]), &ine, &em) != CF_OK)
            msgset_add(&ine_msgs, &em);
    for (i = 0; i < sizeof uai_probes / sizeof uai_probes[0]; i++)
        if (ids_parse_uai(uai_probes[i], strlen(uai_probes[i]), &uai, &em) != CF_OK)
            msgset_add(&uai_msgs, &em);
    for (i = 0; i < sizeof aca_probes / sizeof aca_probes[0]; i++)
        if (ids_parse_academie(aca_probes[i], strlen(aca_probes[i]), aca, &em) != CF_OK)
            msgset_add(&aca_msgs, &em);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    collect_messages();
    return 0;
}

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

    for (i = 0; i < n; i++)
        if (!is_digit(p[i]))
            return 0;
    return 1;
}

static unsigned long long
number(const char *p, size_t n)
{
    unsigned long long v = 0;
    size_t i;

    for (i = 0; i < n; i++)
        v = v * 10 + (unsigned long long)(p[i] - '0');
    return v;
}

/* The canonical form every parser must produce: trimmed of ASCII spaces,
 * a-z upper-cased.  0 when the input cannot parse at all (too long, a
 * control byte), else its length. */
static size_t
expect_canonical(const uint8_t *d, size_t n, char *out, size_t cap)
{
    size_t a = 0, b = n, i;

    if (n > IDS_INPUT_MAX_BYTES)
        return 0;
    for (i = 0; i < n; i++)
        if (d[i] < 0x20 || d[i] == 0x7F)
            return 0;
    while (a < b && d[a] == ' ')
        a++;
    while (b > a && d[b - 1] == ' ')
        b--;
    if (b - a + 1 > cap)
        return 0;
    for (i = a; i < b; i++)
        out[i - a] = (char)(d[i] >= 'a' && d[i] <= 'z' ? d[i] - 'a' + 'A' : d[i]);
    out[b - a] = '\0';
    return b - a;
}

static void
check_ine(const uint8_t *d, size_t n)
{
    struct ine ine, again, untouched;
    struct cf_errmsg em;
    char canon[IDS_INPUT_MAX_BYTES + 1];
    size_t clen, i;
    char padded[INE_BYTES + 3];

    memset(&ine, 0xA5, sizeof ine);
    untouched = ine;
    if (ids_parse_ine((const char *)d, n, &ine, &em) != CF_OK) {
        FZ_CHECK(memcmp(&ine, &untouched, sizeof ine) == 0);
        FZ_CHECK(msgset_has(&ine_msgs, &em));
        return;
    }
    clen = expect_canonical(d, n, canon, sizeof canon);
    FZ_CHECK(clen == INE_BYTES);
    FZ_CHECK(strlen(ine.s) == INE_BYTES && strcmp(ine.s, canon) == 0);
    for (i = 0; i < INE_BYTES; i++)
        FZ_CHECK(is_digit(ine.s[i]) || is_upper(ine.s[i]));
    switch (ine.kind) {
    case INE_BEA:
        FZ_CHECK(ine.checked == 1);
        FZ_CHECK(all_digits(ine.s, 10));
        FZ_CHECK(ine.s[10] == a23[number(ine.s, 10) % 23]);
        FZ_CHECK(ids_make_ine_bea(number(ine.s, 10), &again) == CF_OK);
        FZ_CHECK(strcmp(again.s, ine.s) == 0);
        break;
    case INE_RNIE:
        FZ_CHECK(ine.checked == 0);
        FZ_CHECK(all_digits(ine.s, 9) && is_upper(ine.s[9]) && is_upper(ine.s[10]));
        break;
    case INE_APPRENTI:
        FZ_CHECK(ine.checked == 0);
        FZ_CHECK(all_digits(ine.s, 4) && ine.s[4] == 'A' &&
                 all_digits(ine.s + 5, 5) && is_upper(ine.s[10]));
        break;
    case INE_BASE36: {
        unsigned sum = 0;

        FZ_CHECK(ine.checked == 1);
        FZ_CHECK(is_digit(ine.s[10]));
        for (i = 0; i < 9; i++)
            sum += (unsigned)(is_digit(ine.s[i]) ? ine.s[i] - '0' : ine.s[i] - 'A' + 10) * 6;
        sum += (unsigned)(is_digit(ine.s[9]) ? ine.s[9] - '0' : ine.s[9] - 'A' + 10);
        FZ_CHECK((unsigned)(ine.s[10] - '0') == sum % 10);
        break;
    }
    default:
        FZ_CHECK(!"unknown INE kind");
    }
    /* The canonical form, and a padded lower-case spelling of it, parse
     * to the same value. */
    FZ_CHECK(ids_parse_ine(ine.s, INE_BYTES, &again, NULL) == CF_OK);
    FZ_CHECK(strcmp(again.s, ine.s) == 0 && again.kind == ine.kind &&
             again.checked == ine.checked);
    padded[0] = ' ';
    for (i = 0; i < INE_BYTES; i++)
        padded[i + 1] = (char)(is_upper(ine.s[i]) ? ine.s[i] - 'A' + 'a' : ine.s[i]);
    padded[INE_BYTES + 1] = ' ';
    padded[INE_BYTES + 2] = '\0';
    FZ_CHECK(ids_parse_ine(padded, INE_BYTES + 2, &again, NULL) == CF_OK);
    FZ_CHECK(strcmp(again.s, ine.s) == 0 && again.kind == ine.kind);
}

static void
check_uai(const uint8_t *d, size_t n)
{
    struct uai uai, again, untouched;
    struct cf_errmsg em;
    char canon[IDS_INPUT_MAX_BYTES + 1];

    memset(&uai, 0xA5, sizeof uai);
    untouched = uai;
    if (ids_parse_uai((const char *)d, n, &uai, &em) != CF_OK) {
        FZ_CHECK(memcmp(&uai, &untouched, sizeof uai) == 0);
        FZ_CHECK(msgset_has(&uai_msgs, &em));
        return;
    }
    FZ_CHECK(expect_canonical(d, n, canon, sizeof canon) == UAI_BYTES);
    FZ_CHECK(strlen(uai.s) == UAI_BYTES && strcmp(uai.s, canon) == 0);
    FZ_CHECK(all_digits(uai.s, 7) && uai.s[7] == a23[number(uai.s, 7) % 23]);
    FZ_CHECK(ids_make_uai((unsigned long)number(uai.s, 7), &again) == CF_OK);
    FZ_CHECK(strcmp(again.s, uai.s) == 0);
    FZ_CHECK(ids_parse_uai(uai.s, UAI_BYTES, &again, NULL) == CF_OK);
    FZ_CHECK(strcmp(again.s, uai.s) == 0);
}

static void
check_academie(const uint8_t *d, size_t n)
{
    char aca[ACADEMIE_CODE_BYTES + 1], untouched[ACADEMIE_CODE_BYTES + 1];
    char again[ACADEMIE_CODE_BYTES + 1], canon[IDS_INPUT_MAX_BYTES + 1];
    struct cf_errmsg em;
    size_t i, found = 0;

    memset(aca, 0xA5, sizeof aca);
    memcpy(untouched, aca, sizeof aca);
    if (ids_parse_academie((const char *)d, n, aca, &em) != CF_OK) {
        FZ_CHECK(memcmp(aca, untouched, sizeof aca) == 0);
        FZ_CHECK(msgset_has(&aca_msgs, &em));
        return;
    }
    FZ_CHECK(expect_canonical(d, n, canon, sizeof canon) == ACADEMIE_CODE_BYTES);
    FZ_CHECK(strlen(aca) == ACADEMIE_CODE_BYTES && strcmp(aca, canon) == 0);
    FZ_CHECK(all_digits(aca, ACADEMIE_CODE_BYTES));
    FZ_CHECK(ids_academie_name(aca) != NULL);
    for (i = 0; i < ids_academie_count(); i++)
        found += strcmp(ids_academie_code_at(i), aca) == 0;
    FZ_CHECK(found == 1);
    FZ_CHECK(ids_parse_academie(aca, ACADEMIE_CODE_BYTES, again, NULL) == CF_OK);
    FZ_CHECK(strcmp(again, aca) == 0);
}

static void
check_slug(const uint8_t *d, size_t n)
{
    char *in = fz_strndup(d, n);
    size_t cap = n % 70 + 1, len, i;
    char *out = malloc(cap);            /* exactly cap: ASan sees any overrun */

    FZ_CHECK(out != NULL);
    ids_ascii_slug(in, out, cap);
    len = strnlen(out, cap);
    FZ_CHECK(len < cap);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];

        FZ_CHECK(c < 0x80 && !(c >= 'A' && c <= 'Z') && c != ' ' && c != '\'');
    }
    free(out);
    free(in);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_ine(data, size);
    check_uai(data, size);
    check_academie(data, size);
    check_slug(data, size);
    return 0;
}
