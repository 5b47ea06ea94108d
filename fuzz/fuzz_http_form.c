/*
 * fuzz_http_form.c - form bodies: prepare_body on an HTTP_FORM_BODY route
 * (parse_form, form_decode, params_ok), then http_param, as a handler
 * reads them.
 *
 * Input: the body (application/x-www-form-urlencoded).
 *
 * Invariants (against a reference decoder written here, which works on
 * byte strings with their lengths, never on C strings):
 *  - prepare_body accepts exactly the bodies the reference accepts: at most
 *    HTTP_MAX_PARAMS fields (empty segments between '&' skipped), every
 *    escape two hex digits inside its component, no name empty or
 *    repeated, every name and value UTF-8 text without a control byte -
 *    raw or escaped, NUL included;
 *  - an accepted body yields the reference's fields, names and values
 *    byte for byte, in order, and http_param finds each value by name;
 *  - a refused body leaves a 400 problem reply.
 *
 * Found by this target and fixed: a raw NUL byte in the body used to end
 * the field and hide what followed from the text rule ("a=b\0\1" read as
 * a=b); raw control bytes are now refused like escaped ones.  The input is
 * kept as fuzz/corpus/http_form/regress-raw-nul-in-body.
 *
 * fuzz-max-len: 4096
 */
#include "http_fake.h"
#include "../src/http.c"
#include "http_ctx.h"

static const struct http_route route = {
    "POST", "/fuzz", HTTP_FORM_BODY, NULL, "fuzz"
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    return 0;
}

struct field {
    uint8_t *k, *v;
    size_t klen, vlen;
};

static int
hexdigit(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes p[0..n) into out (n bytes); its length, or -1 for a bad escape
 * or one that decodes to a control byte.  Raw bytes are left for the text
 * rule to judge. */
static long
ref_decode(const uint8_t *p, size_t n, uint8_t *out)
{
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        if (p[i] == '%') {
            int v;

            if (n - i < 3 || hexdigit(p[i + 1]) < 0 || hexdigit(p[i + 2]) < 0)
                return -1;
            v = hexdigit(p[i + 1]) * 16 + hexdigit(p[i + 2]);
            if (v < 0x20 || v == 0x7F)
                return -1;
            out[o++] = (uint8_t)v;
            i += 2;
        } else
            out[o++] = p[i] == '+' ? ' ' : p[i];
    }
    return (long)o;
}

/* The reference verdict; fields filled (caller frees k and v) up to *n. */
static int
ref_parse(const uint8_t *b, size_t len, struct field *f, size_t *n)
{
    size_t start = 0, i, j;

    *n = 0;
    for (i = 0; i <= len; i++) {
        const uint8_t *seg, *eq;
        size_t slen, klen;
        long kd, vd;

        if (i < len && b[i] != '&')
            continue;
        seg = b + start;
        slen = i - start;
        start = i + 1;
        if (slen == 0)
            continue;
        if (*n == HTTP_MAX_PARAMS)
            return 0;
        eq = memchr(seg, '=', slen);
        klen = eq != NULL ? (size_t)(eq - seg) : slen;
        f[*n].k = malloc(klen + 1);
        f[*n].v = malloc(slen + 1);
        FZ_CHECK(f[*n].k != NULL && f[*n].v != NULL);
        kd = ref_decode(seg, klen, f[*n].k);
        vd = eq != NULL ? ref_decode(eq + 1, slen - klen - 1, f[*n].v) : 0;
        (*n)++;
        if (kd < 0 || vd < 0)
            return 0;
        f[*n - 1].klen = (size_t)kd;
        f[*n - 1].vlen = (size_t)vd;
        if (kd == 0 || !fz_text_ok(f[*n - 1].k, (size_t)kd) ||
            !fz_text_ok(f[*n - 1].v, (size_t)vd))
            return 0;
        for (j = 0; j + 1 < *n; j++)
            if (f[j].klen == (size_t)kd && memcmp(f[j].k, f[*n - 1].k, (size_t)kd) == 0)
                return 0;
    }
    return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct field f[HTTP_MAX_PARAMS];
    struct fz_conn fc;
    struct http_ctx *c;
    size_t n, i;
    int accept, rc;

    memset(&fc, 0, sizeof fc);
    accept = ref_parse(data, size, f, &n);
    c = fz_ctx_new(&route, &fc, data, size);
    rc = prepare_body(c);
    FZ_CHECK((rc == 0) == accept);
    if (rc != 0) {
        FZ_CHECK(c->early && c->replied && c->status == 400 && c->resp != NULL);
        goto out;
    }
    FZ_CHECK(c->form.n == n);
    for (i = 0; i < n; i++) {
        char *name = fz_strndup(f[i].k, f[i].klen);
        const char *v;

        FZ_CHECK(strlen(c->form.a[i].k) == f[i].klen &&
                 memcmp(c->form.a[i].k, f[i].k, f[i].klen) == 0);
        FZ_CHECK(strlen(c->form.a[i].v) == f[i].vlen &&
                 memcmp(c->form.a[i].v, f[i].v, f[i].vlen) == 0);
        v = http_param(c, name);
        FZ_CHECK(v == c->form.a[i].v);
        free(name);
    }
out:
    for (i = 0; i < n; i++) {
        free(f[i].k);
        free(f[i].v);
    }
    ctx_free(c);
    return 0;
}
