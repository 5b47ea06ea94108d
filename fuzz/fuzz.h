/*
 * fuzz.h - what every fuzz target shares: the libFuzzer entry points, an
 * invariant check that survives NDEBUG, a reader that cuts one fuzz input
 * into fields, and a strict UTF-8 decoder written independently of the
 * ones under test (http.c's text_ok, utf8proc) so the targets can compare
 * against it.
 *
 * A target built with clang -fsanitize=fuzzer gets its main() from
 * libFuzzer; built with gcc, it gets fuzz/replay.c's, which feeds it the
 * saved corpus (fuzz/README.md).  Nothing here allocates or keeps state.
 */
#ifndef COFFRE_FUZZ_H
#define COFFRE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libFuzzer's entry points: every target defines both. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant: on violation, say which and abort, with or without NDEBUG
 * (libFuzzer and the replay driver both treat the abort as a failure). */
#define FZ_CHECK(cond)                                                      \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                       \
            abort();                                                        \
        }                                                                   \
    } while (0)

/* Cuts a fuzz input into fields: reads past the end yield zeros and empty
 * slices, so every input is a valid (if short) set of fields. */
struct fz_in {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t
fz_u8(struct fz_in *in)
{
    uint8_t v;

    if (in->n == 0)
        return 0;
    v = in->p[0];
    in->p++;
    in->n--;
    return v;
}

static inline uint16_t
fz_u16(struct fz_in *in)
{
    uint16_t hi = fz_u8(in);

    return (uint16_t)(hi << 8 | fz_u8(in));
}

/* Up to want bytes (fewer at the end of the input); *got set. */
static inline const uint8_t *
fz_take(struct fz_in *in, size_t want, size_t *got)
{
    const uint8_t *p = in->p;

    if (want > in->n)
        want = in->n;
    in->p += want;
    in->n -= want;
    *got = want;
    return p;
}

/* A NUL-terminated heap copy of p[0..n); the caller frees. */
static inline char *
fz_strndup(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);

    if (s == NULL)
        abort();
    if (n > 0)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/*
 * Decodes one UTF-8 sequence at s[0..n) by arithmetic on the code point
 * (RFC 3629: shortest form only, no surrogates, nothing above U+10FFFF).
 * Returns its length and sets *cp, or 0 when the bytes are not UTF-8.
 */
static inline size_t
fz_utf8_next(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint32_t c, min;
    size_t len, i;

    if (n == 0)
        return 0;
    c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        c &= 0x1F;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        c &= 0x0F;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        c &= 0x07;
        min = 0x10000;
    } else
        return 0;
    if (n < len)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

/* C0 controls, DEL and C1 controls (U+0080-U+009F). */
static inline int
fz_is_cc(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

/* 1 when s[0..n) is UTF-8 without C0, DEL or C1 controls: the text rule
 * http.h promises for every parameter, path and JSON string. */
static inline int
fz_text_ok(const uint8_t *s, size_t n)
{
    size_t i = 0, k;
    uint32_t cp;

    while (i < n) {
        k = fz_utf8_next(s + i, n - i, &cp);
        if (k == 0 || fz_is_cc(cp))
            return 0;
        i += k;
    }
    return 1;
}

#endif
