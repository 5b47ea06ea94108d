/*
 * fuzz_http_uri.c - the request target and the text rule: on_uri (the raw
 * target before libmicrohttpd decodes it), then the decoded path through
 * str_ok as intake does; and text_ok on the raw input bytes.
 *
 * Input: the request target (cut at its first NUL, as libmicrohttpd hands
 * over a C string).  The whole input, NULs included, also goes to text_ok.
 *
 * Invariants:
 *  - text_ok agrees with fuzz.h's decoder (strict UTF-8 by code-point
 *    arithmetic, no C0, DEL or C1), on every byte string;
 *  - on_uri says "ok" only for a target of visible ASCII whose every '%'
 *    starts two hex digits decoding to a byte that is not a control, and
 *    then the decoded path (libmicrohttpd's own unescaping) holds no NUL
 *    and no control byte; it says "long" only past HTTP_MAX_URL_BYTES;
 *  - a target of at most HTTP_MAX_URL_BYTES visible ASCII bytes with
 *    only such escapes is never refused.
 *
 * Found by this target and fixed: on_uri tested the length only at the
 * start of each character, so an escape at byte 2046 or 2047 let a 2049- or
 * 2050-byte target through.  The input is kept as
 * fuzz/corpus/http_uri/regress-escape-past-url-limit.
 *
 * fuzz-max-len: 4200
 */
#include "http_fake.h"
#include "../src/http.c"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    return 0;
}

static int
hexdigit(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* 1 when every byte is visible ASCII and every escape is well-formed and
 * decodes to a non-control byte. */
static int
target_clean(const char *u, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        uint8_t ch = (uint8_t)u[i];
        int v;

        if (ch <= 0x20 || ch >= 0x7F)
            return 0;
        if (ch != '%')
            continue;
        if (n - i < 3 || hexdigit((uint8_t)u[i + 1]) < 0 || hexdigit((uint8_t)u[i + 2]) < 0)
            return 0;
        v = hexdigit((uint8_t)u[i + 1]) * 16 + hexdigit((uint8_t)u[i + 2]);
        if (v < 0x20 || v == 0x7F)
            return 0;
        i += 2;
    }
    return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *uri = fz_strndup(data, size);     /* cut at the first NUL */
    size_t n = strlen(uri), dlen, i;
    size_t allowed = HTTP_MAX_URL_BYTES;
    void *tag;

    FZ_CHECK(text_ok(data, size) == fz_text_ok(data, size));
    FZ_CHECK(str_ok(uri) == fz_text_ok((const uint8_t *)uri, n));

    tag = on_uri(NULL, uri, NULL);
    FZ_CHECK(tag == &uri_ok_tag || tag == &uri_bad_tag || tag == &uri_long_tag);
    if (tag == &uri_ok_tag) {
        FZ_CHECK(n <= allowed);
        FZ_CHECK(target_clean(uri, n));
        dlen = MHD_http_unescape(uri);
        FZ_CHECK(dlen <= n && strlen(uri) == dlen);
        for (i = 0; i < dlen; i++)
            FZ_CHECK((uint8_t)uri[i] >= 0x20 && uri[i] != 0x7F);
    } else if (tag == &uri_long_tag) {
        FZ_CHECK(n > HTTP_MAX_URL_BYTES);
    } else {
        FZ_CHECK(!target_clean(uri, n));
    }
    if (n <= HTTP_MAX_URL_BYTES && target_clean(uri, n))
        FZ_CHECK(tag == &uri_ok_tag);
    free(uri);
    return 0;
}
