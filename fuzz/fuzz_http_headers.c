/*
 * fuzz_http_headers.c - what http.c makes of request headers, cookies and
 * query arguments once libmicrohttpd has split them: collect (copies, NUL
 * and control-byte detection), http_header, http_cookie (the session
 * cookie), http_bearer (Authorization), content_type_is, parse_uint
 * (Content-Length) and params_ok (query).
 *
 * Input: a request description in http_fake.h's format ("Hname:value"
 * lines, C for cookies, G for query arguments).  libmicrohttpd's own
 * Cookie-header splitting runs only inside a daemon and is not reached.
 *
 * Invariants (each against a reference written here):
 *  - collect copies every value of its kind, in order, each cut at its
 *    first NUL, and reports -2 exactly when a name or value holds a NUL
 *    or a value holds a control byte other than HTAB;
 *  - http_header / http_cookie return the first value whose name matches
 *    (case-insensitively / exactly), or NULL;
 *  - http_bearer returns, from the first Authorization header only, the
 *    token68 after "Bearer " and any spaces, pointing into that header,
 *    and NULL for anything else;
 *  - content_type_is accepts exactly the media type (any case) with only
 *    parameters whose charset, if named, is UTF-8 (quoted or not);
 *  - parse_uint accepts 1-20 digits whose value is <= max, compared as
 *    decimal strings here, and leaves *out alone otherwise (for the maxima
 *    http.c uses - UINT64_MAX, 65535 - the body limits, and one taken
 *    from the input);
 *  - params_ok accepts at most HTTP_MAX_PARAMS query arguments with
 *    non-empty, unique names and text names and values.
 *
 * Found by this target and fixed: parse_uint's overflow guard wrapped when
 * a digit was above max (any digits accepted for max < 9).  The input is
 * kept as fuzz/corpus/http_headers/regress-parse-uint-max-below-9.
 *
 * fuzz-max-len: 4096
 */
#include "http_fake.h"
#include "../src/http.c"
#include "http_ctx.h"
#include "session.h"                /* SESSION_COOKIE */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    return 0;
}

/* collect's verdict for one kind, and its copies. */
static void
check_collect(struct fz_conn *fc, enum MHD_ValueKind kind, int rc,
              const struct kvs *l)
{
    size_t i, n = 0, j;
    int ctl = 0;

    for (i = 0; i < fc->n; i++) {
        const struct fz_kv *e = &fc->kv[i];

        if (e->kind != kind)
            continue;
        if (memchr(e->k, '\0', e->klen) != NULL ||
            (e->v != NULL && memchr(e->v, '\0', e->vlen) != NULL))
            ctl = 1;
        for (j = 0; e->v != NULL && j < e->vlen; j++)
            if (((uint8_t)e->v[j] < 0x20 && e->v[j] != '\t') || e->v[j] == 0x7F)
                ctl = 1;
        FZ_CHECK(n < l->n);
        FZ_CHECK(strcmp(l->a[n].k, e->k) == 0);
        FZ_CHECK(strcmp(l->a[n].v, e->v != NULL ? e->v : "") == 0);
        n++;
    }
    FZ_CHECK(l->n == n);
    FZ_CHECK(rc == (ctl ? -2 : 0));
}

static const char *
ref_find(const struct kvs *l, const char *name, int nocase)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        if ((nocase ? strcasecmp(l->a[i].k, name) : strcmp(l->a[i].k, name)) == 0)
            return l->a[i].v;
    return NULL;
}

static const char *
ref_bearer(const struct kvs *headers)
{
    static const char t68[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";
    const char *v = ref_find(headers, "authorization", 1), *t;
    size_t n;

    if (v == NULL || strlen(v) < 7 || strncasecmp(v, "bearer ", 7) != 0)
        return NULL;
    t = v + 7 + strspn(v + 7, " ");
    n = strspn(t, t68);
    if (n == 0)
        return NULL;
    n += strspn(t + n, "=");
    return t[n] == '\0' ? t : NULL;
}

/* ct names media type want with only acceptable parameters. */
static int
ref_content_type(const char *ct, const char *want)
{
    size_t wl = strlen(want);
    const char *p, *semi;

    if (ct == NULL || strlen(ct) < wl || strncasecmp(ct, want, wl) != 0)
        return 0;
    p = ct + wl + strspn(ct + wl, " \t");
    if (*p == '\0')
        return 1;
    if (*p != ';')
        return 0;
    for (p++; ; p = semi + 1) {
        const char *eq, *name, *val;
        size_t seglen, nlen, vlen;

        semi = strchr(p, ';');
        seglen = semi != NULL ? (size_t)(semi - p) : strlen(p);
        name = p + strspn(p, " \t");
        if ((size_t)(name - p) > seglen)
            name = p + seglen;
        eq = memchr(name, '=', seglen - (size_t)(name - p));
        if (eq != NULL) {
            nlen = (size_t)(eq - name);
            val = eq + 1;
            vlen = seglen - (size_t)(val - p);
            while (vlen > 0 && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
                vlen--;
            if (nlen == 7 && strncasecmp(name, "charset", 7) == 0) {
                if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
                    val++;
                    vlen -= 2;
                }
                if (vlen != 5 || strncasecmp(val, "utf-8", 5) != 0)
                    return 0;
            }
        }
        if (semi == NULL)
            return 1;
    }
}

/* parse_uint's verdict, by comparing decimal strings. */
static void
check_uint(const char *s, uint64_t max)
{
    char maxs[24];
    const char *d;
    size_t n = strlen(s), i, dl;
    uint64_t out = 0xFEEDFACEu;
    int want = n >= 1 && n <= 20, rc;

    for (i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            want = 0;
    if (want) {
        snprintf(maxs, sizeof maxs, "%" PRIu64, max);
        d = s + strspn(s, "0");
        dl = strlen(d);
        want = dl < strlen(maxs) || (dl == strlen(maxs) && strcmp(d, maxs) <= 0);
    }
    rc = parse_uint(s, n, max, &out);
    FZ_CHECK((rc == 0) == want);
    if (rc != 0) {
        FZ_CHECK(out == 0xFEEDFACEu);
        return;
    }
    snprintf(maxs, sizeof maxs, "%" PRIu64, out);
    d = s + strspn(s, "0");
    FZ_CHECK(strcmp(maxs, *d == '\0' ? "0" : d) == 0 && out <= max);
}

static void
check_uint_max(const char *s, uint64_t max)
{
    check_uint(s, max);
}

static int
ref_params_ok(const struct kvs *l)
{
    size_t i, j;

    if (l->n > HTTP_MAX_PARAMS)
        return -1;
    for (i = 0; i < l->n; i++) {
        const char *k = l->a[i].k, *v = l->a[i].v;

        if (*k == '\0' || !fz_text_ok((const uint8_t *)k, strlen(k)) ||
            !fz_text_ok((const uint8_t *)v, strlen(v)))
            return -1;
        for (j = i + 1; j < l->n; j++)
            if (strcmp(k, l->a[j].k) == 0)
                return -1;
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {
        "Authorization", "Content-Type", "Content-Length", "X-Forwarded-For", "Host",
    };
    struct fz_conn fc;
    struct http_ctx *c;
    const char *ct, *cl, *b;
    size_t i;
    int hrc, crc, qrc;

    memset(&fc, 0, sizeof fc);
    fz_conn_parse(&fc, data, size);
    c = fz_ctx_new(NULL, &fc, NULL, 0);
    hrc = collect(c->conn, MHD_HEADER_KIND, &c->headers);
    crc = collect(c->conn, MHD_COOKIE_KIND, &c->cookies);
    qrc = collect(c->conn, MHD_GET_ARGUMENT_KIND, &c->query);
    check_collect(&fc, MHD_HEADER_KIND, hrc, &c->headers);
    check_collect(&fc, MHD_COOKIE_KIND, crc, &c->cookies);
    check_collect(&fc, MHD_GET_ARGUMENT_KIND, qrc, &c->query);

    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        FZ_CHECK(http_header(c, names[i]) == ref_find(&c->headers, names[i], 1));
    if (c->headers.n > 0)
        FZ_CHECK(http_header(c, c->headers.a[0].k) == c->headers.a[0].v);
    FZ_CHECK(http_cookie(c, SESSION_COOKIE) == ref_find(&c->cookies, SESSION_COOKIE, 0));
    if (c->cookies.n > 0)
        FZ_CHECK(http_cookie(c, c->cookies.a[0].k) == c->cookies.a[0].v);

    b = http_bearer(c);
    FZ_CHECK(b == ref_bearer(&c->headers));
    if (b != NULL) {
        const char *auth = http_header(c, "Authorization");

        FZ_CHECK(b > auth && b < auth + strlen(auth) && strlen(b) > 0);
    }

    ct = http_header(c, "Content-Type");
    FZ_CHECK(content_type_is(ct, "application/json") ==
             ref_content_type(ct, "application/json"));
    FZ_CHECK(content_type_is(ct, "application/x-www-form-urlencoded") ==
             ref_content_type(ct, "application/x-www-form-urlencoded"));

    cl = http_header(c, "Content-Length");
    if (cl != NULL) {
        check_uint(cl, UINT64_MAX);
        check_uint(cl, 65535);
        check_uint(cl, HTTP_MAX_BODY);
        check_uint(cl, HTTP_MAX_BODY_PREAUTH);
        check_uint_max(cl, 0);
    }
    /* a maximum from the input: each header's value against its name's
     * length times 977 */
    for (i = 0; i < c->headers.n; i++)
        check_uint_max(c->headers.a[i].v, (uint64_t)strlen(c->headers.a[i].k) * 977);

    FZ_CHECK(params_ok(&c->query) == ref_params_ok(&c->query));

    ctx_free(c);
    fz_conn_release(&fc);
    return 0;
}
