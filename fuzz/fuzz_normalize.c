/*
 * fuzz_normalize.c - seal_normalize, the one normalisation function, in
 * every mode with every bound.
 *
 * Input: mode (1 byte, mod 3), max (2 bytes, mod 1100), cap (2 bytes,
 * mod 1100, plus 1), then the text.
 *
 * Invariants:
 *  - on success the output is NUL-terminated at *outlen, 0 < *outlen <=
 *    max, *outlen < cap; it is strict UTF-8 holding no control character
 *    (C0, DEL, C1, U+2028/9, bidi embeddings and isolates), no NBSP or
 *    NNBSP, no leading, trailing or doubled space; it is NFC (and
 *    case-folded in FOLD mode, plain ASCII upper-case in UPPER mode), and
 *    normalising it again gives the same bytes; nothing past the NUL is
 *    written;
 *  - raw input over RECORD_FIELD_PT_MAX or max * 4 + 64 bytes, or holding
 *    a control byte, never normalises;
 *  - on error nothing is written (out, *outlen) and the message is one of
 *    the function's fixed messages for that field, max and cap (collected
 *    from probe inputs), so it carries no input bytes.
 *
 * fuzz-max-len: 1200
 */
#include "fuzz.h"

#include <utf8proc.h>

#include "bounds.h"
#include "seal.h"

#define FIELD "field"
#define MAX_MSGS 16

struct msgset {
    char msg[MAX_MSGS][CF_ERRMSG_MAX];
    size_t n;
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void
probe(struct msgset *m, const char *in, size_t len, enum seal_norm mode,
      size_t max, size_t cap)
{
    char out[RECORD_FIELD_PT_MAX + 2];
    struct cf_errmsg em;
    size_t outlen, i;

    if (cap > sizeof out)
        cap = sizeof out;
    if (seal_normalize(FIELD, in, len, mode, max, out, cap, &outlen, &em) == CF_OK)
        return;
    for (i = 0; i < m->n; i++)
        if (strcmp(m->msg[i], em.msg) == 0)
            return;
    FZ_CHECK(m->n < MAX_MSGS);
    memcpy(m->msg[m->n++], em.msg, CF_ERRMSG_MAX);
}

/* The messages seal_normalize gives for this mode, max and cap: one probe
 * per error path of seal.c. */
static void
messages_for(struct msgset *m, enum seal_norm mode, size_t max, size_t cap)
{
    static char big[RECORD_FIELD_PT_MAX + 2];

    memset(big, 'a', sizeof big);
    m->n = 0;
    probe(m, big, sizeof big, mode, max, cap);              /* raw too long */
    probe(m, "a\x01", 2, mode, max, cap);                   /* control byte */
    probe(m, "\xff", 1, mode, max, cap);                    /* not UTF-8 */
    probe(m, "\xc3\xa9", 2, mode, max, cap);                /* UPPER: not ASCII */
    probe(m, "a\xe2\x80\xa8", 4, mode, max, cap);           /* U+2028 */
    probe(m, " ", 1, mode, max, cap);                       /* empty */
    if (max < RECORD_FIELD_PT_MAX)
        probe(m, big, max + 1, mode, max, cap);             /* result > max */
    if (cap <= RECORD_FIELD_PT_MAX)                         /* result >= cap */
        probe(m, big, cap, mode, RECORD_FIELD_PT_MAX, cap);
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

static int
is_control_cp(uint32_t c)
{
    return fz_is_cc(c) || c == 0x2028 || c == 0x2029 ||
           (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
}

/* utf8proc_map of s with opts equals s itself. */
static int
map_stable(const char *s, size_t n, int opts)
{
    utf8proc_uint8_t *m = NULL;
    utf8proc_ssize_t mlen;
    int same;

    mlen = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &m, opts);
    same = mlen >= 0 && (size_t)mlen == n && memcmp(m, s, n) == 0;
    free(m);
    return same;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = { data, size };
    enum seal_norm mode = (enum seal_norm)(fz_u8(&in) % 3);
    size_t max = fz_u16(&in) % 1100;
    size_t cap = fz_u16(&in) % 1100 + 1;
    size_t len, outlen = (size_t)-7, again_len, i, k;
    const uint8_t *text = fz_take(&in, SIZE_MAX, &len);
    char *out = malloc(cap);                /* exactly cap: ASan sees overruns */
    char *again = malloc(cap);
    struct cf_errmsg em;
    struct msgset msgs;
    enum cf_err rc;
    int rawctl = 0;
    uint32_t cp;

    FZ_CHECK(out != NULL && again != NULL);
    memset(out, 0xA5, cap);
    for (i = 0; i < len; i++)
        if (text[i] < 0x20 || text[i] == 0x7F)
            rawctl = 1;
    rc = seal_normalize(FIELD, (const char *)text, len, mode, max, out, cap,
                        &outlen, &em);
    if (rc != CF_OK) {
        FZ_CHECK(rc == CF_ERR_INPUT || rc == CF_ERR_LIMIT);
        FZ_CHECK(outlen == (size_t)-7);
        for (i = 0; i < cap; i++)
            FZ_CHECK((uint8_t)out[i] == 0xA5);
        messages_for(&msgs, mode, max, cap);
        if (!msgset_has(&msgs, &em)) {
            fprintf(stderr, "unexpected message: %.*s\n", CF_ERRMSG_MAX, em.msg);
            FZ_CHECK(!"error message outside the fixed set");
        }
        goto done;
    }

    /* What may never normalise. */
    FZ_CHECK(len <= RECORD_FIELD_PT_MAX && len <= max * 4 + 64);
    FZ_CHECK(!rawctl);

    /* Bounds and termination; nothing written past the NUL. */
    FZ_CHECK(outlen > 0 && outlen <= max && outlen < cap);
    FZ_CHECK(out[outlen] == '\0' && strlen(out) == outlen);
    for (i = outlen + 1; i < cap; i++)
        FZ_CHECK((uint8_t)out[i] == 0xA5);

    /* Text: strict UTF-8, no controls, spaces squeezed. */
    FZ_CHECK(out[0] != ' ' && out[outlen - 1] != ' ');
    for (i = 0; i < outlen; i += k) {
        k = fz_utf8_next((const uint8_t *)out + i, outlen - i, &cp);
        FZ_CHECK(k > 0);
        FZ_CHECK(!is_control_cp(cp));
        FZ_CHECK(cp != 0xA0 && cp != 0x202F);
        FZ_CHECK(!(cp == ' ' && out[i + 1] == ' '));
        if (mode == SEAL_NORM_UPPER)
            FZ_CHECK(cp < 0x80 && !(cp >= 'a' && cp <= 'z'));
    }

    /* NFC, and case-folded in FOLD mode. */
    FZ_CHECK(map_stable(out, outlen, UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (mode == SEAL_NORM_FOLD)
        FZ_CHECK(map_stable(out, outlen, UTF8PROC_STABLE | UTF8PROC_COMPOSE |
                                         UTF8PROC_CASEFOLD));

    /* Idempotent. */
    rc = seal_normalize(FIELD, out, outlen, mode, max, again, cap, &again_len, NULL);
    FZ_CHECK(rc == CF_OK);
    FZ_CHECK(again_len == outlen && memcmp(again, out, outlen + 1) == 0);
done:
    free(out);
    free(again);
    return 0;
}
