/*
 * test_http.c - unit tests of http.c against a real libmicrohttpd daemon on
 * 127.0.0.1 (port 0), through a small blocking socket client: statuses,
 * security headers, keep-alive, problem documents, every limit at N and
 * N+1, JSON and form rules, deferred replies (100 at once, replies racing
 * the handler, replies after shutdown), X-Forwarded-For trust, slow
 * clients, /healthz, /metrics, listen refusal, TLS and shutdown.
 *
 * http.c is included so the tests also reach its static helpers.  All
 * traffic stays on 127.0.0.0/8.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/http.c"

#include <sys/time.h>

#include "testutil.h"

/* ---- a tiny blocking HTTP/1.1 client ------------------------------------ */

struct conn {
    int fd;
    char buf[1 << 16];
    size_t len;                     /* bytes read, not yet consumed */
};

struct resp {
    unsigned status;
    char head[16384];
    char *body;
    size_t blen;
};

static unsigned srv_port;           /* the shared server's port */

static struct conn *
cl_open_to(unsigned port, const char *src)
{
    struct conn *c = calloc(1, sizeof *c);
    struct sockaddr_in a;
    struct timeval tv = { 10, 0 };

    assert_non_null(c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    if (src != NULL) {
        assert_int_equal(inet_pton(AF_INET, src, &a.sin_addr), 1);
        assert_int_equal(bind(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    }
    a.sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr), 1);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    return c;
}

static struct conn *
cl_open(void)
{
    return cl_open_to(srv_port, NULL);
}

static void
cl_close(struct conn *c)
{
    close(c->fd);
    free(c);
}

/* 0 when all of p was sent. */
static int
cl_send(struct conn *c, const void *p, size_t n)
{
    const char *s = p;

    while (n > 0) {
        ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

static int
cl_sends(struct conn *c, const char *s)
{
    return cl_send(c, s, strlen(s));
}

/* Reads more into c->buf; bytes read, 0 at end, -1 on error. */
static ssize_t
cl_fill(struct conn *c)
{
    ssize_t k;

    if (c->len == sizeof c->buf)
        return -1;
    do
        k = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    while (k < 0 && errno == EINTR);
    if (k > 0)
        c->len += (size_t)k;
    return k;
}

static void
resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Value of the idx-th header called name in r (static buffer), or NULL. */
static const char *
hdr_n(const struct resp *r, const char *name, int idx)
{
    static char val[4096];
    const char *p = strstr(r->head, "\r\n");
    size_t nl = strlen(name);

    while (p != NULL && p[2] != '\0') {
        const char *line = p + 2, *end = strstr(line, "\r\n");

        if (end == NULL)
            break;
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 &&
            line[nl] == ':') {
            if (idx-- == 0) {
                const char *v = line + nl + 1;

                while (*v == ' ')
                    v++;
                snprintf(val, sizeof val, "%.*s", (int)(end - v), v);
                return val;
            }
        }
        p = end;
    }
    return NULL;
}

static const char *
hdr(const struct resp *r, const char *name)
{
    return hdr_n(r, name, 0);
}

static int
hdr_count(const struct resp *r, const char *name)
{
    int n = 0;

    while (hdr_n(r, name, n) != NULL)
        n++;
    return n;
}

static char *
find_crlf2(char *p, size_t n)
{
    size_t i;

    for (i = 0; i + 4 <= n; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return p + i;
    return NULL;
}

/* Reads one response; 0, or -1 when the connection ended first. */
static int
cl_recv(struct conn *c, struct resp *r)
{
    char *end;
    size_t hlen;
    uint64_t clen = 0;
    const char *cl;

    memset(r, 0, sizeof *r);
    for (;;) {
        if (c->len >= 4 && (end = find_crlf2(c->buf, c->len)) != NULL)
            break;
        if (cl_fill(c) <= 0)
            return -1;
    }
    hlen = (size_t)(end - c->buf) + 4;
    assert_true(hlen < sizeof r->head);
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    if (sscanf(r->head, "HTTP/1.%*d %u", &r->status) != 1)
        return -1;
    cl = hdr(r, "Content-Length");
    if (cl != NULL)
        assert_int_equal(parse_uint(cl, strlen(cl), 1u << 24, &clen), 0);
    memmove(c->buf, c->buf + hlen, c->len - hlen);
    c->len -= hlen;
    r->body = malloc((size_t)clen + 1);
    assert_non_null(r->body);
    while (r->blen < clen) {
        size_t take;

        if (c->len == 0 && cl_fill(c) <= 0) {
            resp_free(r);
            return -1;
        }
        take = c->len < clen - r->blen ? c->len : (size_t)clen - r->blen;
        memcpy(r->body + r->blen, c->buf, take);
        r->blen += take;
        memmove(c->buf, c->buf + take, c->len - take);
        c->len -= take;
    }
    r->body[r->blen] = '\0';
    return 0;
}

/* A request with an optional body and extra header lines ("A: b\r\n"). */
static char *
mkreq(const char *method, const char *target, const char *ctype,
      const char *body, size_t blen, const char *extra, size_t *outlen)
{
    size_t cap = blen + 1024 + (extra != NULL ? strlen(extra) : 0) + strlen(target);
    char *buf = malloc(cap);
    int n;

    assert_non_null(buf);
    n = snprintf(buf, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s%s",
                 method, target,
                 ctype != NULL ? "Content-Type: " : "", ctype != NULL ? ctype : "",
                 ctype != NULL ? "\r\n" : "", extra != NULL ? extra : "");
    if (body != NULL)
        n += snprintf(buf + n, cap - (size_t)n, "Content-Length: %zu\r\n", blen);
    n += snprintf(buf + n, cap - (size_t)n, "\r\n");
    if (body != NULL) {
        memcpy(buf + n, body, blen);
        n += (int)blen;
    }
    *outlen = (size_t)n;
    return buf;
}

/* One request on a fresh connection; the response in r (status 0: none). */
static void
do_req(const char *method, const char *target, const char *ctype,
       const char *body, size_t blen, const char *extra, struct resp *r)
{
    struct conn *c = cl_open();
    size_t n;
    char *req = mkreq(method, target, ctype, body, blen, extra, &n);

    (void)cl_send(c, req, n);
    free(req);
    if (cl_recv(c, r) != 0)
        r->status = 0;
    cl_close(c);
}

static void
get(const char *target, struct resp *r)
{
    do_req("GET", target, NULL, NULL, 0, NULL, r);
}

static void
post_json(const char *target, const char *body, struct resp *r)
{
    do_req("POST", target, "application/json", body, strlen(body), NULL, r);
}

static void
assert_security_headers(const struct resp *r)
{
    const char *id;
    size_t i;

    assert_non_null(hdr(r, "Content-Security-Policy"));
    assert_string_equal(hdr(r, "Content-Security-Policy"), csp);
    assert_int_equal(hdr_count(r, "Content-Security-Policy"), 1);
    assert_string_equal(hdr(r, "X-Content-Type-Options"), "nosniff");
    assert_string_equal(hdr(r, "Referrer-Policy"), "no-referrer");
    assert_string_equal(hdr(r, "X-Frame-Options"), "DENY");
    id = hdr(r, "X-Request-Id");
    assert_non_null(id);
    assert_int_equal(strlen(id), 16);
    for (i = 0; i < 16; i++)
        assert_non_null(strchr("0123456789abcdef", id[i]));
}

/* A problem document of status and type slug, with every header. */
static void
assert_problem(const struct resp *r, unsigned status, const char *slug)
{
    json_t *doc;
    json_error_t e;
    char type[128], reqid[17];

    assert_int_equal(r->status, status);
    assert_security_headers(r);
    assert_string_equal(hdr(r, "Cache-Control"), "no-store");
    assert_string_equal(hdr(r, "Content-Type"), "application/problem+json");
    snprintf(reqid, sizeof reqid, "%s", hdr(r, "X-Request-Id"));
    doc = json_loadb(r->body, r->blen, 0, &e);
    assert_non_null(doc);
    snprintf(type, sizeof type, "%s%s", PROBLEM_BASE, slug);
    assert_string_equal(json_string_value(json_object_get(doc, "type")), type);
    assert_int_equal(json_integer_value(json_object_get(doc, "status")), status);
    assert_true(json_string_length(json_object_get(doc, "title")) > 0);
    assert_true(json_is_string(json_object_get(doc, "detail")));
    assert_string_equal(json_string_value(json_object_get(doc, "request_id")), reqid);
    json_decref(doc);
}

/* r's body as JSON (decref it). */
static json_t *
body_json(const struct resp *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body, r->blen, 0, &e);

    assert_non_null(j);
    return j;
}

static double
now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void
sleep_ms(unsigned ms)
{
    struct timespec t = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

/* Waits until s has completed every request: a client reads its response
 * a moment before libmicrohttpd's completion callback counts it. */
static void
wait_quiet(struct http_server *s)
{
    int i;

    for (i = 0; i < 200; i++) {
        size_t n;

        pthread_mutex_lock(&s->mu);
        n = s->ninflight;
        pthread_mutex_unlock(&s->mu);
        if (n == 0)
            return;
        sleep_ms(5);
    }
    fail_msg("requests still in flight");
}

/* ---- the deferred-reply worker ------------------------------------------ */

#define MAX_PENDING 512

static struct {
    pthread_mutex_t mu;
    pthread_t thread;
    int run;
    struct { struct http_ctx *c; double due; long n; } p[MAX_PENDING];
    size_t np;
    _Atomic unsigned replied;       /* replies sent by the worker */
} worker = { PTHREAD_MUTEX_INITIALIZER, 0, 0, { { NULL, 0, 0 } }, 0, 0 };

static void *
worker_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct http_ctx *due[MAX_PENDING];
        long ns[MAX_PENDING];
        size_t i, nd = 0;
        double t = now_s();
        int run;

        pthread_mutex_lock(&worker.mu);
        run = worker.run;
        for (i = 0; i < worker.np;) {
            if (worker.p[i].due <= t || !run) {
                due[nd] = worker.p[i].c;
                ns[nd++] = worker.p[i].n;
                worker.p[i] = worker.p[--worker.np];
            } else
                i++;
        }
        pthread_mutex_unlock(&worker.mu);
        for (i = 0; i < nd; i++) {
            http_reply_json(due[i], 200, json_pack("{s:I,s:s}", "n", (json_int_t)ns[i],
                                                   "from", "worker"));
            atomic_fetch_add(&worker.replied, 1);
        }
        if (!run && nd == 0)
            return NULL;
        sleep_ms(2);
    }
}

/* Defers c; the worker answers {"n": n} after ms. */
static void
defer_to_worker(struct http_ctx *c, long n, long ms)
{
    http_defer(c);
    pthread_mutex_lock(&worker.mu);
    assert_true(worker.np < MAX_PENDING);
    worker.p[worker.np].c = c;
    worker.p[worker.np].due = now_s() + (double)ms / 1000.0;
    worker.p[worker.np].n = n;
    worker.np++;
    pthread_mutex_unlock(&worker.mu);
}

/* ---- test routes -------------------------------------------------------- */

static long
param_long(struct http_ctx *c, const char *name, long def)
{
    const char *v = http_param(c, name);

    return v != NULL ? strtol(v, NULL, 10) : def;
}

static void
h_sync(struct http_ctx *c, void *app)
{
    assert_ptr_equal(app, &worker);
    http_reply_json(c, 200, json_pack("{s:b,s:s}", "ok", 1, "method", http_method(c)));
}

static void
h_defer(struct http_ctx *c, void *app)
{
    json_t *j = http_json(c);
    long ms = param_long(c, "ms", 50), n = param_long(c, "n", -1);

    (void)app;
    if (j != NULL && json_is_integer(json_object_get(j, "ms")))
        ms = (long)json_integer_value(json_object_get(j, "ms"));
    defer_to_worker(c, n, ms);
}

static void
h_json(struct http_ctx *c, void *app)
{
    (void)app;
    assert_true(json_is_object(http_json(c)));
    http_reply_json(c, 200, json_pack("{s:I}", "keys", (json_int_t)json_object_size(http_json(c))));
}

static void
h_form(struct http_ctx *c, void *app)
{
    const char *a = http_param(c, "a"), *b = http_param(c, "b");

    (void)app;
    http_reply_json(c, 200, json_pack("{s:s?,s:s?}", "a", a, "b", b));
}

static void
h_raw(struct http_ctx *c, void *app)
{
    size_t n;
    const uint8_t *p = http_body(c, &n);

    (void)app;
    assert_true((p == NULL) == (n == 0));
    http_reply_json(c, 200, json_pack("{s:I}", "len", (json_int_t)n));
}

static void
h_echo(struct http_ctx *c, void *app)
{
    (void)app;
    http_reply_json(c, 200, json_pack("{s:s,s:s?,s:s?,s:s?,s:s?,s:b,s:s}",
                                      "addr", http_client_addr(c),
                                      "bearer", http_bearer(c),
                                      "sid", http_cookie(c, "sid"),
                                      "q", http_param(c, "q"),
                                      "x", http_header(c, "x-test"),
                                      "plain_loopback", http_is_plain_loopback(c),
                                      "path", http_path(c)));
}

static void
h_items(struct http_ctx *c, void *app)
{
    (void)app;
    http_reply_json(c, 200, json_pack("{s:s}", "rest", http_path_rest(c)));
}

static void *
race_thread(void *arg)
{
    http_reply_json(arg, 200, json_pack("{s:s}", "from", "thread"));
    return NULL;
}

/* The reply arrives from another thread before the handler returns. */
static void
h_race(struct http_ctx *c, void *app)
{
    pthread_t t;

    (void)app;
    http_defer(c);
    assert_int_equal(pthread_create(&t, NULL, race_thread, c), 0);
    pthread_join(t, NULL);
}

static void
h_noreply(struct http_ctx *c, void *app)
{
    (void)c;
    (void)app;
}

static void
h_twice(struct http_ctx *c, void *app)
{
    (void)app;
    http_reply_json(c, 201, json_pack("{s:i}", "first", 1));
    http_reply_json(c, 200, json_pack("{s:i}", "second", 2));
}

static void
h_headers(struct http_ctx *c, void *app)
{
    static const char text[] = "<p>hi</p>";

    (void)app;
    http_add_header(c, "Set-Cookie", "a=1; HttpOnly; Secure; SameSite=Strict");
    http_add_header(c, "Set-Cookie", "b=2");
    http_add_header(c, "Cache-Control", "max-age=60");
    http_add_header(c, "Content-Security-Policy", "default-src *");  /* dropped */
    http_add_header(c, "Bad Name", "x");                             /* dropped */
    http_add_header(c, "X-Split", "a\r\nInjected: 1");               /* dropped */
    http_reply_text(c, 200, "text/html; charset=utf-8", text, sizeof text - 1);
}

static void
h_error(struct http_ctx *c, void *app)
{
    (void)app;
    http_reply_error(c, CF_ERR_LIMIT, "The queue is full.");
}

static const struct http_route routes[] = {
    { "GET",    "/t/sync",    0, h_sync, "sync" },
    { "GET",    "/t/defer",   0, h_defer, "defer" },
    { "POST",   "/t/defer",   HTTP_JSON_BODY, h_defer, "defer_post" },
    { "POST",   "/t/json",    HTTP_JSON_BODY, h_json, "json" },
    { "POST",   "/t/login",   HTTP_PREAUTH | HTTP_JSON_BODY, h_json, "login" },
    { "POST",   "/t/form",    HTTP_PREAUTH | HTTP_FORM_BODY, h_form, "form" },
    { "POST",   "/t/raw",     0, h_raw, "raw" },
    { "POST",   "/t/rawpre",  HTTP_PREAUTH, h_raw, "rawpre" },
    { "GET",    "/t/echo",    0, h_echo, "echo" },
    { "GET",    "/t/items/*", 0, h_items, "items" },
    { "DELETE", "/t/items/*", 0, h_items, "items_delete" },
    { "GET",    "/t/items/special", 0, h_items, "items_special" },  /* shadowed */
    { "GET",    "/t/race",    0, h_race, "race" },
    { "GET",    "/t/noreply", 0, h_noreply, "noreply" },
    { "GET",    "/t/twice",   0, h_twice, "twice" },
    { "GET",    "/t/headers", 0, h_headers, "headers" },
    { "GET",    "/t/error",   0, h_error, "error" },
};

static const char *const trusted[] = { "127.0.0.1", "::1", NULL };
static int health_bad;

static enum cf_err
health(void *app)
{
    (void)app;
    return health_bad ? CF_ERR_STORE : CF_OK;
}

static struct http_opts
base_opts(void)
{
    struct http_opts o;

    memset(&o, 0, sizeof o);
    o.listen = "127.0.0.1:0";
    o.threads = 2;
    o.timeout_s = 5;
    o.trusted_proxies = trusted;
    o.routes = routes;
    o.nroutes = sizeof routes / sizeof routes[0];
    o.app = &worker;
    o.health = health;
    return o;
}

static struct http_server *srv;

static uint64_t
queue_depth(void *arg)
{
    return *(const uint64_t *)arg;
}

static uint64_t depth_value = 42;

static int
group_setup(void **state)
{
    struct http_opts o = base_opts();
    struct cf_errmsg em = { "" };

    (void)state;
    if (getenv("COFFRE_TEST_VERBOSE") == NULL)
        log_set_level(LOG_ERROR + 1);   /* quiet: errors are provoked on purpose */
    worker.run = 1;
    if (pthread_create(&worker.thread, NULL, worker_main, NULL) != 0)
        return -1;
    if (http_start(&o, &srv, &em) != CF_OK) {
        fprintf(stderr, "http_start: %s\n", em.msg);
        return -1;
    }
    srv_port = http_port(srv);
    return srv_port != 0 ? 0 : -1;
}

static int
group_teardown(void **state)
{
    (void)state;
    http_stop(srv);
    pthread_mutex_lock(&worker.mu);
    worker.run = 0;
    pthread_mutex_unlock(&worker.mu);
    pthread_join(worker.thread, NULL);
    return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void
test_sync_json(void **state)
{
    struct resp r;
    json_t *j;

    (void)state;
    get("/t/sync", &r);
    assert_int_equal(r.status, 200);
    assert_security_headers(&r);
    assert_string_equal(hdr(&r, "Cache-Control"), "no-store");
    assert_string_equal(hdr(&r, "Content-Type"), "application/json");
    assert_null(hdr(&r, "Strict-Transport-Security"));   /* plain HTTP */
    j = body_json(&r);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    json_decref(j);
    resp_free(&r);
}

static void
test_keepalive(void **state)
{
    struct conn *c = cl_open();
    struct resp r;
    int i;

    (void)state;
    /* a handler reply, a deferred reply and a rejection, all on one socket */
    for (i = 0; i < 2; i++) {
        assert_int_equal(cl_sends(c, "GET /t/sync HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        assert_int_equal(cl_recv(c, &r), 0);
        assert_int_equal(r.status, 200);
        assert_null(hdr(&r, "Connection"));
        resp_free(&r);
    }
    assert_int_equal(cl_sends(c, "GET /t/defer?ms=20&n=5 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(cl_recv(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_null(hdr(&r, "Connection"));
    resp_free(&r);
    assert_int_equal(cl_sends(c, "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(cl_recv(c, &r), 0);
    assert_problem(&r, 404, "not-found");
    assert_null(hdr(&r, "Connection"));
    resp_free(&r);
    assert_int_equal(cl_sends(c, "GET /t/sync HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(cl_recv(c, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cl_close(c);
}

static void
test_not_found(void **state)
{
    struct resp r;

    (void)state;
    get("/secret-probe-path?code=123456", &r);
    assert_problem(&r, 404, "not-found");
    /* detail never echoes input */
    assert_null(strstr(r.body, "secret-probe-path"));
    assert_null(strstr(r.body, "123456"));
    resp_free(&r);
    get("/t/items/", &r);                   /* a prefix route needs a rest */
    assert_problem(&r, 404, "not-found");
    resp_free(&r);
    get("/t/items", &r);
    assert_problem(&r, 404, "not-found");
    resp_free(&r);
    get("/t/items/abc", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"rest\":\"abc\""));
    resp_free(&r);
}

static void
test_method_not_allowed(void **state)
{
    struct resp r;

    (void)state;
    do_req("POST", "/t/sync", "application/json", "{}", 2, NULL, &r);
    assert_problem(&r, 405, "method-not-allowed");
    assert_string_equal(hdr(&r, "Allow"), "GET");
    resp_free(&r);
    do_req("PUT", "/t/defer", NULL, NULL, 0, NULL, &r);
    assert_problem(&r, 405, "method-not-allowed");
    assert_string_equal(hdr(&r, "Allow"), "GET, POST");
    resp_free(&r);
    do_req("PUT", "/t/items/x", NULL, NULL, 0, NULL, &r);
    assert_problem(&r, 405, "method-not-allowed");
    assert_string_equal(hdr(&r, "Allow"), "GET, DELETE");
    resp_free(&r);
    do_req("DELETE", "/t/items/x", NULL, NULL, 0, NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* two routes match: each method once */
    do_req("PUT", "/t/items/special", NULL, NULL, 0, NULL, &r);
    assert_problem(&r, 405, "method-not-allowed");
    assert_string_equal(hdr(&r, "Allow"), "GET, DELETE");
    resp_free(&r);
    /* the first matching route of the table wins */
    get("/t/items/special", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"rest\":\"special\""));
    resp_free(&r);
}

/* {"a":"xxx"} of exactly n bytes. */
static char *
json_of_size(size_t n)
{
    char *b = malloc(n + 1);

    assert_true(n >= 8);
    memcpy(b, "{\"a\":\"", 6);
    memset(b + 6, 'x', n - 8);
    memcpy(b + n - 2, "\"}", 3);
    return b;
}

/* Sends only the headers declaring n body bytes: a rejection must come
 * before any body. */
static void
declare_only(const char *target, const char *ctype, size_t n, struct resp *r)
{
    struct conn *c = cl_open();
    char req[512];

    snprintf(req, sizeof req, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n"
             "Content-Length: %zu\r\n\r\n", target, ctype, n);
    assert_int_equal(cl_sends(c, req), 0);
    if (cl_recv(c, r) != 0)
        r->status = 0;
    cl_close(c);
}

static void
test_body_limit_preauth(void **state)
{
    struct resp r;
    char *b;

    (void)state;
    b = json_of_size(HTTP_MAX_BODY_PREAUTH);
    post_json("/t/login", b, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    free(b);
    b = json_of_size(HTTP_MAX_BODY_PREAUTH - 1);
    post_json("/t/login", b, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    free(b);
    declare_only("/t/login", "application/json", HTTP_MAX_BODY_PREAUTH + 1, &r);
    assert_problem(&r, 413, "body-too-large");
    resp_free(&r);
    /* the same size is fine after authentication */
    b = json_of_size(HTTP_MAX_BODY_PREAUTH + 1);
    post_json("/t/json", b, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    free(b);
}

static void
test_body_limit(void **state)
{
    struct resp r;
    char *b;
    json_t *j;

    (void)state;
    b = malloc(HTTP_MAX_BODY);
    assert_non_null(b);
    memset(b, 'z', HTTP_MAX_BODY);
    do_req("POST", "/t/raw", "application/octet-stream", b, HTTP_MAX_BODY, NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "len")), HTTP_MAX_BODY);
    json_decref(j);
    resp_free(&r);
    free(b);
    declare_only("/t/raw", "application/octet-stream", HTTP_MAX_BODY + 1, &r);
    assert_problem(&r, 413, "body-too-large");
    resp_free(&r);
    declare_only("/t/raw", "application/octet-stream", (size_t)1 << 40, &r);
    assert_problem(&r, 413, "body-too-large");
    resp_free(&r);
    /* a raw PREAUTH route: N and N+1 */
    b = malloc(HTTP_MAX_BODY_PREAUTH);
    memset(b, 'z', HTTP_MAX_BODY_PREAUTH);
    do_req("POST", "/t/rawpre", "application/octet-stream", b, HTTP_MAX_BODY_PREAUTH, NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    free(b);
    declare_only("/t/rawpre", "application/octet-stream", HTTP_MAX_BODY_PREAUTH + 1, &r);
    assert_problem(&r, 413, "body-too-large");
    resp_free(&r);
    /* no body at all */
    do_req("POST", "/t/raw", NULL, NULL, 0, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"len\":0"));
    resp_free(&r);
}

/* Chunked bodies: within the limit served, over it the connection closes
 * (no response can be queued while a body arrives). */
static void
test_chunked(void **state)
{
    struct conn *c;
    struct resp r;
    char chunk[1100];
    int i;

    (void)state;
    c = cl_open();
    assert_int_equal(cl_sends(c, "POST /t/login HTTP/1.1\r\nHost: x\r\n"
                             "Content-Type: application/json\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n"
                             "5\r\n{\"a\":\r\n4\r\n\"b\"}\r\n0\r\n\r\n"), 0);
    assert_int_equal(cl_recv(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"keys\":1"));
    resp_free(&r);
    cl_close(c);

    c = cl_open();
    assert_int_equal(cl_sends(c, "POST /t/rawpre HTTP/1.1\r\nHost: x\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n"), 0);
    memset(chunk, 'q', sizeof chunk);
    for (i = 0; i < 5; i++) {           /* 5 x 1024 > HTTP_MAX_BODY_PREAUTH */
        if (cl_sends(c, "400\r\n") != 0 || cl_send(c, chunk, 1024) != 0 ||
            cl_sends(c, "\r\n") != 0)
            break;
        sleep_ms(10);
    }
    (void)cl_sends(c, "0\r\n\r\n");
    assert_int_equal(cl_recv(c, &r), -1);
    cl_close(c);
}

static void
test_content_type(void **state)
{
    struct resp r;

    (void)state;
    do_req("POST", "/t/json", "text/plain", "{}", 2, NULL, &r);
    assert_problem(&r, 415, "unsupported-media-type");
    resp_free(&r);
    do_req("POST", "/t/json", NULL, "{}", 2, NULL, &r);
    assert_problem(&r, 415, "unsupported-media-type");
    resp_free(&r);
    do_req("POST", "/t/json", "application/json; charset=latin1", "{}", 2, NULL, &r);
    assert_problem(&r, 415, "unsupported-media-type");
    resp_free(&r);
    do_req("POST", "/t/json", "application/jsonx", "{}", 2, NULL, &r);
    assert_problem(&r, 415, "unsupported-media-type");
    resp_free(&r);
    do_req("POST", "/t/json", "application/json; charset=UTF-8", "{}", 2, NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    do_req("POST", "/t/json", "Application/JSON;charset=\"utf-8\"", "{}", 2, NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    do_req("POST", "/t/form", "application/json", "a=1", 3, NULL, &r);
    assert_problem(&r, 415, "unsupported-media-type");
    resp_free(&r);
}

static void
test_json_malformed(void **state)
{
    static const char *const bad[] = {
        "", "{", "{\"a\":}", "[1,2]", "\"str\"", "42", "null",
        "{\"a\":1,\"a\":2}",                /* duplicate key */
        "{\"a\":1} {\"b\":2}",              /* trailing data */
        "{\"a\":99999999999999999999999}",  /* integer overflow */
    };
    struct resp r;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        post_json("/t/json", bad[i], &r);
        assert_problem(&r, 400, "invalid-json");
        resp_free(&r);
    }
    post_json("/t/json", "{\"a\":1,\"b\":[1,{\"c\":null}]}", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"keys\":2"));
    resp_free(&r);
}

/* {"a":{"a":...{}...}} with depth levels of objects. */
static char *
nested(unsigned depth, int arrays)
{
    char *b = malloc(depth * 6 + 8), *p = b;
    unsigned i;

    *p++ = '{';
    for (i = 1; i < depth; i++) {
        if (arrays && i > 1)
            *p++ = '[';
        else {
            memcpy(p, arrays ? "\"a\":[" : "\"a\":{", 5);
            p += 5;
        }
    }
    for (i = 1; i < depth; i++)
        *p++ = arrays ? ']' : '}';
    *p++ = '}';
    *p = '\0';
    return b;
}

static void
test_json_depth(void **state)
{
    struct resp r;
    char *b;
    int arrays;

    (void)state;
    for (arrays = 0; arrays < 2; arrays++) {
        b = nested(HTTP_JSON_MAX_DEPTH, arrays);
        post_json("/t/json", b, &r);
        assert_int_equal(r.status, 200);
        resp_free(&r);
        free(b);
        b = nested(HTTP_JSON_MAX_DEPTH - 1, arrays);
        post_json("/t/json", b, &r);
        assert_int_equal(r.status, 200);
        resp_free(&r);
        free(b);
        b = nested(HTTP_JSON_MAX_DEPTH + 1, arrays);
        post_json("/t/json", b, &r);
        assert_problem(&r, 400, "invalid-json");
        resp_free(&r);
        free(b);
    }
    /* brackets inside strings do not count */
    post_json("/t/json", "{\"a\":\"[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{{{{\\\"[[[[\"}", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(json_depth((const uint8_t *)"{\"\\\\\":[[]]}", 11, 16), 3);
}

static void
test_json_text(void **state)
{
    static const char *const bad[] = {
        "{\"a\":\"\xff\"}",                 /* not UTF-8 */
        "{\"a\":\"\xc0\xaf\"}",             /* overlong */
        "{\"a\":\"\xed\xa0\x80\"}",         /* surrogate */
        "{\"a\":\"x\\u0000y\"}",            /* NUL */
        "{\"a\":\"x\\u0007y\"}",            /* escaped control */
        "{\"a\":\"x\\ny\"}",                /* escaped newline */
        "{\"a\":\"x\\u0085y\"}",            /* C1 control */
        "{\"a\":\"x\\u007fy\"}",            /* DEL */
        "{\"a\":\"x\ty\"}",                 /* raw control */
        "{\"k\\u0001\":1}",                 /* control in a key */
        "{\"a\":[\"ok\",\"\\u001b[31m\"]}", /* nested */
        "{\"a\":\"\\ud800\"}",              /* lone surrogate escape */
    };
    struct resp r;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        post_json("/t/json", bad[i], &r);
        assert_problem(&r, 400, "invalid-json");
        resp_free(&r);
    }
    post_json("/t/json", "{\"nom\":\"Éloïse Ñúñez 😀 \\u00e9\"}", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void
test_text_ok(void **state)
{
    static const struct { const char *s; int ok; } v[] = {
        { "", 1 }, { "abc", 1 }, { "\xc3\xa9", 1 }, { "\xe2\x82\xac", 1 },
        { "\xf0\x9f\x98\x80", 1 }, { "\xf4\x8f\xbf\xbf", 1 }, { "\xc2\xa0", 1 },
        { "\xf4\x90\x80\x80", 0 }, { "\xc3", 0 }, { "\xe2\x82", 0 },
        { "\xc1\xbf", 0 }, { "\xe0\x9f\xbf", 0 }, { "\xf0\x8f\xbf\xbf", 0 },
        { "\xed\xbf\xbf", 0 }, { "\xc2\x80", 0 }, { "\xc2\x9f", 0 },
        { "\x7f", 0 }, { "\x1f", 0 }, { "a\nb", 0 }, { "\x80", 0 }, { "\xf8\x88\x80\x80\x80", 0 },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof v / sizeof v[0]; i++)
        assert_int_equal(text_ok((const unsigned char *)v[i].s, strlen(v[i].s)), v[i].ok);
    assert_int_equal(text_ok((const unsigned char *)"a\0b", 3), 0);
}

static void
test_form(void **state)
{
    static const char *const bad[] = {
        "a=%zz", "a=%4", "a=%", "a=1&a=2", "a=%00", "a=x%0Ay", "a=%C3", "=1",
        "a=%ff",
    };
    struct resp r;
    json_t *j;
    size_t i;
    char many[512];
    int n = 0;

    (void)state;
    do_req("POST", "/t/form", "application/x-www-form-urlencoded",
           "a=1&b=h%C3%A9llo+world&&c", 25, NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "a")), "1");
    assert_string_equal(json_string_value(json_object_get(j, "b")), "h\xc3\xa9llo world");
    json_decref(j);
    resp_free(&r);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        do_req("POST", "/t/form", "application/x-www-form-urlencoded",
               bad[i], strlen(bad[i]), NULL, &r);
        assert_problem(&r, 400, "invalid-form");
        resp_free(&r);
    }
    /* HTTP_MAX_PARAMS fields pass, one more does not */
    for (i = 0; i < HTTP_MAX_PARAMS; i++)
        n += snprintf(many + n, sizeof many - (size_t)n, "%sk%zu=v", i ? "&" : "", i);
    do_req("POST", "/t/form", "application/x-www-form-urlencoded", many, (size_t)n, NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    n += snprintf(many + n, sizeof many - (size_t)n, "&extra=1");
    do_req("POST", "/t/form", "application/x-www-form-urlencoded", many, (size_t)n, NULL, &r);
    assert_problem(&r, 400, "invalid-form");
    resp_free(&r);
    /* the form wins over the query */
    do_req("POST", "/t/form?a=fromquery&b=q", "application/x-www-form-urlencoded; charset=utf-8",
           "a=fromform", 10, NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "a")), "fromform");
    assert_string_equal(json_string_value(json_object_get(j, "b")), "q");
    json_decref(j);
    resp_free(&r);
}

static void
test_url(void **state)
{
    struct resp r;
    char *t;
    size_t i;
    char many[1024];
    int n;

    (void)state;
    /* HTTP_MAX_URL_BYTES passes, one more is 414 */
    t = malloc(HTTP_MAX_URL_BYTES + 2);
    memcpy(t, "/t/echo?q=", 10);
    memset(t + 10, 'u', HTTP_MAX_URL_BYTES - 10);
    t[HTTP_MAX_URL_BYTES] = '\0';
    get(t, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    t[HTTP_MAX_URL_BYTES] = 'u';
    t[HTTP_MAX_URL_BYTES + 1] = '\0';
    get(t, &r);
    assert_problem(&r, 414, "uri-too-long");
    resp_free(&r);
    free(t);
    /* escapes: decoded, but never into a control byte */
    get("/t/sy%6ec", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    get("/t/echo?q=caf%C3%A9+au+lait", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"q\":\"caf\xc3\xa9 au lait\""));
    resp_free(&r);
    get("/t/sync%00.json", &r);
    assert_problem(&r, 400, "bad-request");
    resp_free(&r);
    get("/t/echo?q=a%0d%0aSet-Cookie:x", &r);
    assert_problem(&r, 400, "bad-request");
    resp_free(&r);
    get("/t/echo?q=%zz", &r);
    assert_problem(&r, 400, "bad-request");
    resp_free(&r);
    get("/t/echo?q=%C3", &r);
    assert_problem(&r, 400, "bad-parameters");
    resp_free(&r);
    get("/t/echo?q=%c2%85", &r);            /* C1 control */
    assert_problem(&r, 400, "bad-parameters");
    resp_free(&r);
    get("/t/echo?q=1&q=2", &r);
    assert_problem(&r, 400, "bad-parameters");
    resp_free(&r);
    get("/t/it%C3ms/x", &r);                /* a path that is not UTF-8 */
    assert_problem(&r, 400, "bad-request");
    resp_free(&r);
    /* HTTP_MAX_PARAMS query parameters pass, one more does not */
    n = snprintf(many, sizeof many, "/t/echo?");
    for (i = 0; i < HTTP_MAX_PARAMS; i++)
        n += snprintf(many + n, sizeof many - (size_t)n, "%sp%zu=1", i ? "&" : "", i);
    get(many, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    snprintf(many + n, sizeof many - (size_t)n, "&one=more");
    get(many, &r);
    assert_problem(&r, 400, "bad-parameters");
    resp_free(&r);
}

static void
test_headers_too_large(void **state)
{
    struct resp r;
    char *big;
    size_t base, room;

    (void)state;
    /* the request line and headers mkreq writes, plus "X-Pad: " and CRLFs */
    base = strlen("GET /t/sync HTTP/1.1\r\nHost: 127.0.0.1\r\n") + strlen("X-Pad: \r\n") + 2;
    room = HTTP_MAX_HEADER_BYTES - base;
    big = malloc(room + 64);
    memcpy(big, "X-Pad: ", 7);
    memset(big + 7, 'p', room);
    memcpy(big + 7 + room, "\r\n", 3);
    do_req("GET", "/t/sync", NULL, NULL, 0, big, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    memcpy(big + 7 + room, "p\r\n", 4);     /* one byte more */
    do_req("GET", "/t/sync", NULL, NULL, 0, big, &r);
    assert_problem(&r, 431, "headers-too-large");
    resp_free(&r);
    free(big);
    /* far over: libmicrohttpd itself refuses (an error or a close) */
    big = malloc(200000);
    memcpy(big, "X-Pad: ", 7);
    memset(big + 7, 'p', 199000);
    memcpy(big + 7 + 199000, "\r\n", 3);
    do_req("GET", "/t/sync", NULL, NULL, 0, big, &r);
    assert_true(r.status == 0 || r.status >= 400);
    resp_free(&r);
    free(big);
}

static void
test_deferred_many(void **state)
{
    enum { N = 100 };
    struct conn *c[N];
    struct resp r;
    char req[128];
    double t0;
    int i;

    (void)state;
    t0 = now_s();
    for (i = 0; i < N; i++) {
        c[i] = cl_open();
        snprintf(req, sizeof req, "GET /t/defer?ms=300&n=%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        assert_int_equal(cl_sends(c[i], req), 0);
    }
    for (i = 0; i < N; i++) {
        char want[32];

        assert_int_equal(cl_recv(c[i], &r), 0);
        assert_int_equal(r.status, 200);
        assert_security_headers(&r);
        snprintf(want, sizeof want, "\"n\":%d,", i);
        assert_non_null(strstr(r.body, want));
        resp_free(&r);
        cl_close(c[i]);
    }
    /* 100 waits of 300 ms on 2 pool threads: they must have overlapped */
    assert_true(now_s() - t0 < 5.0);
}

static void
test_deferred_race(void **state)
{
    struct resp r;
    int i;

    (void)state;
    for (i = 0; i < 20; i++) {
        get("/t/race", &r);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, "thread"));
        resp_free(&r);
    }
    /* a deferred POST with a JSON body */
    post_json("/t/defer", "{\"ms\":10}", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void
test_reply_once(void **state)
{
    struct resp r;

    (void)state;
    get("/t/noreply", &r);
    assert_problem(&r, 500, "internal-error");
    resp_free(&r);
    get("/t/twice", &r);
    assert_int_equal(r.status, 201);
    assert_non_null(strstr(r.body, "first"));
    assert_null(strstr(r.body, "second"));
    resp_free(&r);
    get("/t/error", &r);
    assert_problem(&r, 503, "overloaded");
    assert_string_equal(hdr(&r, "Retry-After"), "1");
    assert_non_null(strstr(r.body, "The queue is full."));
    resp_free(&r);
}

static void
test_extra_headers(void **state)
{
    struct resp r;

    (void)state;
    get("/t/headers", &r);
    assert_int_equal(r.status, 200);
    assert_security_headers(&r);            /* CSP still ours, and only one */
    assert_string_equal(hdr(&r, "Content-Type"), "text/html; charset=utf-8");
    assert_int_equal(hdr_count(&r, "Set-Cookie"), 2);
    assert_string_equal(hdr_n(&r, "Set-Cookie", 0), "a=1; HttpOnly; Secure; SameSite=Strict");
    assert_string_equal(hdr_n(&r, "Set-Cookie", 1), "b=2");
    assert_string_equal(hdr(&r, "Cache-Control"), "max-age=60");
    assert_int_equal(hdr_count(&r, "Cache-Control"), 1);
    assert_null(hdr(&r, "Bad Name"));
    assert_null(hdr(&r, "X-Split"));
    assert_null(hdr(&r, "Injected"));
    assert_string_equal(r.body, "<p>hi</p>");
    resp_free(&r);
}

static void
test_request_accessors(void **state)
{
    static const struct { const char *line; const char *bearer; } b[] = {
        { "Authorization: Bearer abc.DEF-_~+/==\r\n", "abc.DEF-_~+/==" },
        { "Authorization: bearer   tok\r\n", "tok" },
        { "Authorization: Bearer a b\r\n", NULL },
        { "Authorization: Bearer =abc\r\n", NULL },
        { "Authorization: Basic dXNlcjpwdw==\r\n", NULL },
        { "Authorization: Bearer \r\n", NULL },
    };
    struct resp r;
    json_t *j;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof b / sizeof b[0]; i++) {
        do_req("GET", "/t/echo", NULL, NULL, 0, b[i].line, &r);
        assert_int_equal(r.status, 200);
        j = body_json(&r);
        if (b[i].bearer != NULL)
            assert_string_equal(json_string_value(json_object_get(j, "bearer")), b[i].bearer);
        else
            assert_true(json_is_null(json_object_get(j, "bearer")));
        json_decref(j);
        resp_free(&r);
    }
    /* header values: HTAB and obs-text pass, other control bytes do not */
    do_req("GET", "/t/echo", NULL, NULL, 0, "X-Test: a\tb \xc3\xa9t\xc3\xa9\r\n", &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "x")), "a\tb \xc3\xa9t\xc3\xa9");
    json_decref(j);
    resp_free(&r);
    do_req("GET", "/t/echo", NULL, NULL, 0, "X-Test: a\x01b\r\n", &r);
    assert_problem(&r, 400, "bad-request");
    resp_free(&r);
    do_req("GET", "/t/echo", NULL, NULL, 0, "Cookie: sid=a\x1b[0m\r\n", &r);
    assert_problem(&r, 400, "bad-request");
    resp_free(&r);
    {
        static const char nul[] = "GET /t/echo HTTP/1.1\r\nHost: x\r\nX-Test: a\0b\r\n\r\n";
        struct conn *c = cl_open();

        assert_int_equal(cl_send(c, nul, sizeof nul - 1), 0);
        /* libmicrohttpd 0.9.75 cuts the value at the NUL (docs/http.md):
         * the handler sees "a", never what follows */
        if (cl_recv(c, &r) == 0) {
            if (r.status == 200) {
                j = body_json(&r);
                assert_string_equal(json_string_value(json_object_get(j, "x")), "a");
                json_decref(j);
            } else
                assert_int_equal(r.status, 400);
            resp_free(&r);
        }
        cl_close(c);
    }
    do_req("GET", "/t/echo?q=hello", NULL, NULL, 0,
           "Cookie: other=1; sid=s3ss10n\r\nX-Test: yes\r\n", &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "sid")), "s3ss10n");
    assert_string_equal(json_string_value(json_object_get(j, "q")), "hello");
    assert_string_equal(json_string_value(json_object_get(j, "x")), "yes");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/t/echo");
    json_decref(j);
    resp_free(&r);
}

/* GET /t/echo from src with extra header lines; the reported address. */
static char *
addr_from(const char *src, const char *extra, int *plain_loopback)
{
    struct conn *c = cl_open_to(srv_port, src);
    struct resp r;
    size_t n;
    char *req = mkreq("GET", "/t/echo", NULL, NULL, 0, extra, &n), *out;
    json_t *j;

    assert_int_equal(cl_send(c, req, n), 0);
    free(req);
    assert_int_equal(cl_recv(c, &r), 0);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    out = strdup(json_string_value(json_object_get(j, "addr")));
    if (plain_loopback != NULL)
        *plain_loopback = json_is_true(json_object_get(j, "plain_loopback"));
    json_decref(j);
    resp_free(&r);
    cl_close(c);
    return out;
}

static void
check_addr(const char *src, const char *extra, const char *want)
{
    char *a = addr_from(src, extra, NULL);

    assert_string_equal(a, want);
    free(a);
}

static void
test_xff(void **state)
{
    int pl;
    char *a;

    (void)state;
    /* 127.0.0.2 is not a trusted proxy: its X-Forwarded-For is ignored */
    check_addr("127.0.0.2", "X-Forwarded-For: 203.0.113.7\r\n", "127.0.0.2");
    check_addr("127.0.0.2", NULL, "127.0.0.2");
    a = addr_from("127.0.0.2", NULL, &pl);
    assert_true(pl);
    free(a);
    /* 127.0.0.1 is: the last hop that is not a trusted proxy */
    check_addr("127.0.0.1", "X-Forwarded-For: 203.0.113.7\r\n", "203.0.113.7");
    check_addr("127.0.0.1", "X-Forwarded-For: 198.51.100.9, 203.0.113.7, 127.0.0.1\r\n",
               "203.0.113.7");
    check_addr("127.0.0.1", "X-Forwarded-For: 198.51.100.9\r\nX-Forwarded-For: 203.0.113.8\r\n",
               "203.0.113.8");
    check_addr("127.0.0.1", "X-Forwarded-For: not-an-ip, 203.0.113.7\r\n", "203.0.113.7");
    check_addr("127.0.0.1", "X-Forwarded-For: 2001:db8::1\r\n", "2001:db8::1");
    check_addr("127.0.0.1", "X-Forwarded-For: ::ffff:192.0.2.1\r\n", "192.0.2.1");
    check_addr("127.0.0.1", "X-Forwarded-For: 127.0.0.1, ::1\r\n", "127.0.0.1");
    /* invalid where it counts: the socket's address */
    check_addr("127.0.0.1", "X-Forwarded-For: 203.0.113.7, garbage\r\n", "127.0.0.1");
    check_addr("127.0.0.1", "X-Forwarded-For: 203.0.113.7:8080\r\n", "127.0.0.1");
    check_addr("127.0.0.1", "X-Forwarded-For: 203.0.113.7,\r\n", "127.0.0.1");
    check_addr("127.0.0.1", "X-Forwarded-For: 999.1.1.1\r\n", "127.0.0.1");
    check_addr("127.0.0.1", NULL, "127.0.0.1");
    a = addr_from("127.0.0.1", NULL, &pl);
    assert_false(pl);                       /* through a proxy: not a dev browser */
    free(a);
}

static void
test_slow_client(void **state)
{
    struct http_opts o = base_opts();
    struct cf_errmsg em = { "" };
    struct http_server *s;
    struct conn *slow, *fast;
    struct resp r;
    double t0, t;
    char b;
    ssize_t k;

    (void)state;
    o.timeout_s = 1;
    assert_int_equal(http_start(&o, &s, &em), CF_OK);
    slow = cl_open_to(http_port(s), NULL);
    t0 = now_s();
    assert_int_equal(cl_sends(slow, "GET /t/sync HTTP/1.1\r\nHost: x\r\nX-Half: "), 0);
    /* another client is served meanwhile */
    fast = cl_open_to(http_port(s), NULL);
    assert_int_equal(cl_sends(fast, "GET /t/sync HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(cl_recv(fast, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_true(now_s() - t0 < 0.9);
    /* the slow one is closed after about the timeout, without a response */
    do
        k = recv(slow->fd, &b, 1, 0);
    while (k < 0 && errno == EINTR);
    t = now_s() - t0;
    assert_true(k == 0 || (k < 0 && errno == ECONNRESET));
    assert_true(t >= 0.8);
    assert_true(t < 4.0);
    cl_close(slow);
    cl_close(fast);
    http_stop(s);
}

static void
test_healthz(void **state)
{
    struct resp r;

    (void)state;
    get("/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_security_headers(&r);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    resp_free(&r);
    health_bad = 1;
    get("/healthz", &r);
    assert_int_equal(r.status, 503);
    assert_security_headers(&r);
    assert_string_equal(r.body, "{\"status\":\"failing\"}");
    resp_free(&r);
    health_bad = 0;
    do_req("POST", "/healthz", NULL, NULL, 0, NULL, &r);
    assert_problem(&r, 405, "method-not-allowed");
    resp_free(&r);
}

/* The value of the exposition line starting with prefix, or -1. */
static long long
metric_value(const char *page, const char *prefix)
{
    const char *p = page;
    size_t n = strlen(prefix);

    while ((p = strstr(p, prefix)) != NULL) {
        if ((p == page || p[-1] == '\n') && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
        p += n;
    }
    return -1;
}

static void
get_metrics(struct resp *r)
{
    get("/metrics", r);
    assert_int_equal(r->status, 200);
    assert_security_headers(r);
    assert_string_equal(hdr(r, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
}

static void
test_metrics(void **state)
{
    static const char sync_ok[] = "coffre_http_requests_total{route=\"sync\",status=\"200\"}";
    struct resp r;
    long long before, after;

    (void)state;
    assert_int_equal(http_metric_gauge_fn(srv, "coffre_test_queue_depth", "Entries waiting.",
                                          queue_depth, &depth_value), CF_OK);
    assert_int_equal(http_metric_gauge_fn(srv, "coffre_test_queue_depth", NULL,
                                          queue_depth, &depth_value), CF_ERR_EXISTS);
    assert_int_equal(http_metric_gauge_fn(srv, "bad name", NULL, queue_depth, &depth_value),
                     CF_ERR_INPUT);
    assert_int_equal(http_metric_gauge_fn(srv, "coffre_x", "bad\nhelp", queue_depth, &depth_value),
                     CF_ERR_INPUT);
    http_metric_add(srv, "coffre_test_events_total", "kind=a", 2);
    http_metric_add(srv, "coffre_test_events_total", "kind=a", 1);
    http_metric_add(srv, "coffre_test_events_total", "kind=b", 5);
    http_metric_add(srv, "coffre_test_events_total", "kind=\"}x", 1);    /* refused */
    http_metric_add(srv, "coffre_test_events_total", NULL, 7);
    http_metric_add(srv, "9bad", NULL, 1);                              /* refused */
    http_metric_add(srv, "coffre_http_requests_total", NULL, 1);        /* ours: refused */
    http_metric_gauge(srv, "coffre_test_level", 9);
    http_metric_gauge(srv, "coffre_test_level", 7);
    http_metric_gauge(srv, "coffre_test_events_total", 1);              /* a counter: refused */

    get("/t/sync", &r);
    resp_free(&r);
    get("/no/such/route", &r);
    resp_free(&r);
    wait_quiet(srv);
    get_metrics(&r);
    before = metric_value(r.body, sync_ok);
    assert_true(before >= 1);
    assert_true(metric_value(r.body, "coffre_http_requests_total{route=\"unknown\",status=\"404\"}") >= 1);
    assert_non_null(strstr(r.body, "# TYPE coffre_http_requests_total counter\n"));
    assert_non_null(strstr(r.body, "# TYPE coffre_http_request_duration_seconds histogram\n"));
    assert_true(metric_value(r.body, "coffre_http_request_duration_seconds_bucket{route=\"sync\",le=\"+Inf\"}") ==
                metric_value(r.body, "coffre_http_request_duration_seconds_count{route=\"sync\"}"));
    assert_true(metric_value(r.body, "coffre_http_request_duration_seconds_bucket{route=\"sync\",le=\"10\"}") >= 1);
    assert_non_null(strstr(r.body, "# HELP coffre_test_queue_depth Entries waiting.\n"
                                   "# TYPE coffre_test_queue_depth gauge\n"
                                   "coffre_test_queue_depth 42\n"));
    assert_non_null(strstr(r.body, "# TYPE coffre_test_events_total counter\n"));
    assert_int_equal(metric_value(r.body, "coffre_test_events_total{kind=\"a\"}"), 3);
    assert_int_equal(metric_value(r.body, "coffre_test_events_total{kind=\"b\"}"), 5);
    assert_int_equal(metric_value(r.body, "coffre_test_events_total"), 7);
    assert_int_equal(metric_value(r.body, "coffre_test_level"), 7);
    assert_null(strstr(r.body, "9bad"));
    assert_null(strstr(r.body, "}x"));
    assert_int_equal(metric_value(r.body, "coffre_http_requests_total"), -1);
    /* no path or query ever becomes a label */
    assert_null(strstr(r.body, "/no/such/route"));
    resp_free(&r);

    /* the gauge is read at scrape time; counters count exactly */
    depth_value = 43;
    get("/t/sync", &r);
    resp_free(&r);
    get("/t/sync", &r);
    resp_free(&r);
    wait_quiet(srv);
    get_metrics(&r);
    after = metric_value(r.body, sync_ok);
    assert_int_equal(after, before + 2);
    assert_int_equal(metric_value(r.body, "coffre_test_queue_depth"), 43);
    resp_free(&r);
}

static void
test_listen(void **state)
{
    static const char *const bad[] = {
        "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:8a",
        "localhost:80", "[::1]80", "::1:80", "[127.0.0.1]:80", "[::1:80", ":80",
        "127.0.0.1: 80", "",
    };
    struct http_opts o = base_opts();
    struct cf_errmsg em = { "" };
    struct http_server *s = (struct http_server *)&em;
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    char spec[32];
    size_t i;
    int blocker;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.listen = bad[i];
        assert_int_equal(http_start(&o, &s, &em), CF_ERR_INPUT);
        assert_null(s);
    }
    o.listen = NULL;
    assert_int_equal(http_start(&o, &s, &em), CF_ERR_INPUT);

    /* Occupy a port on 0.0.0.0 without listening (nothing can connect):
     * the refusal must come before any bind, the insecure start must get
     * as far as the bind and fail there. */
    blocker = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(blocker >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    assert_int_equal(bind(blocker, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(blocker, (struct sockaddr *)&a, &alen), 0);
    snprintf(spec, sizeof spec, "0.0.0.0:%u", ntohs(a.sin_port));
    o.listen = spec;
    em.msg[0] = '\0';
    assert_int_equal(http_start(&o, &s, &em), CF_ERR_DENIED);
    assert_null(s);
    assert_non_null(strstr(em.msg, "refused"));
    o.listen = "0.0.0.0:0";
    assert_int_equal(http_start(&o, &s, &em), CF_ERR_DENIED);
    o.listen = "[::]:0";
    assert_int_equal(http_start(&o, &s, &em), CF_ERR_DENIED);
    o.listen = "192.0.2.1:0";
    assert_int_equal(http_start(&o, &s, &em), CF_ERR_DENIED);
    o.listen = spec;
    o.insecure_http = 1;
    assert_int_equal(http_start(&o, &s, &em), CF_ERR_IO);   /* got to bind(2) */
    assert_null(strstr(em.msg, "refused"));
    close(blocker);

    /* loopback needs no TLS; 127.0.0.2 is loopback too */
    o.insecure_http = 0;
    o.listen = "127.0.0.2:0";
    assert_int_equal(http_start(&o, &s, &em), CF_OK);
    assert_true(http_port(s) > 0);
    http_stop(s);
    o.listen = "[::1]:0";
    if (http_start(&o, &s, &em) == CF_OK) {
        assert_true(http_port(s) > 0);
        http_stop(s);
    } else
        fprintf(stderr, "note: no IPv6 loopback here (%s)\n", em.msg);
    http_stop(NULL);
}

static void
h_dummy(struct http_ctx *c, void *app)
{
    (void)app;
    http_reply_json(c, 200, NULL);
}

static void
test_bad_options(void **state)
{
    static const struct http_route dup[] = {
        { "GET", "/a", 0, h_dummy, "a" }, { "GET", "/a", 0, h_dummy, "b" },
    };
    static const struct http_route dupname[] = {
        { "GET", "/a", 0, h_dummy, "a" }, { "GET", "/b", 0, h_dummy, "a" },
    };
    static const struct http_route builtin[] = { { "GET", "/healthz", 0, h_dummy, "h" } };
    static const struct http_route badname[] = { { "GET", "/a", 0, h_dummy, "A-b" } };
    static const struct http_route badstar[] = { { "GET", "/a*", 0, h_dummy, "a" } };
    static const struct http_route nofn[] = { { "GET", "/a", 0, NULL, "a" } };
    static const struct http_route relative[] = { { "GET", "a", 0, h_dummy, "a" } };
    static const struct http_route unknown[] = { { "GET", "/a", 0, h_dummy, "unknown" } };
    static const struct { const struct http_route *r; size_t n; } sets[] = {
        { dup, 2 }, { dupname, 2 }, { builtin, 1 }, { badname, 1 }, { badstar, 1 },
        { nofn, 1 }, { relative, 1 }, { unknown, 1 }, { NULL, 1 },
    };
    static const char *const badproxy[] = { "127.0.0.1", "10.0.0.0/8", NULL };
    struct http_opts o;
    struct cf_errmsg em = { "" };
    struct http_server *s;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        o = base_opts();
        o.routes = sets[i].r;
        o.nroutes = sets[i].n;
        assert_int_equal(http_start(&o, &s, &em), CF_ERR_INPUT);
        assert_null(s);
    }
    o = base_opts();
    o.trusted_proxies = badproxy;
    assert_int_equal(http_start(&o, &s, &em), CF_ERR_INPUT);
    assert_non_null(strstr(em.msg, "10.0.0.0/8"));
    o = base_opts();
    o.tls_cert = "/nonexistent/cert.pem";
    assert_int_equal(http_start(&o, &s, &em), CF_ERR_INPUT);  /* no key */
    o.tls_key = "/nonexistent/key.pem";
    assert_int_equal(http_start(&o, &s, &em), CF_ERR_IO);
    assert_non_null(strstr(em.msg, "tls_cert"));
    assert_non_null(strstr(em.msg, "/nonexistent/cert.pem"));
    o.tls_cert = "/dev/null";
    assert_int_equal(http_start(&o, &s, &em), CF_ERR_IO);
    /* no routes but the built-ins is fine */
    o = base_opts();
    o.routes = NULL;
    o.nroutes = 0;
    assert_int_equal(http_start(&o, &s, &em), CF_OK);
    http_stop(s);
}

static void
test_helpers(void **state)
{
    static const char *const allowed[] = { "login", "password", NULL };
    static const char *const none[] = { NULL };
    json_t *j;

    (void)state;
    j = json_pack("{s:s,s:s}", "login", "a", "password", "b");
    assert_int_equal(http_json_only(j, allowed), 0);
    assert_int_equal(http_json_only(j, none), -1);
    json_object_set_new(j, "admin", json_true());
    assert_int_equal(http_json_only(j, allowed), -1);
    json_decref(j);
    j = json_object();
    assert_int_equal(http_json_only(j, none), 0);
    json_decref(j);
    j = json_array();
    assert_int_equal(http_json_only(j, allowed), -1);
    json_decref(j);
    assert_int_equal(http_json_only(NULL, allowed), -1);

    assert_int_equal(http_status_of(CF_OK), 200);
    assert_int_equal(http_status_of(CF_ERR_INPUT), 400);
    assert_int_equal(http_status_of(CF_ERR_AUTH), 401);
    assert_int_equal(http_status_of(CF_ERR_DENIED), 403);
    assert_int_equal(http_status_of(CF_ERR_NOTFOUND), 404);
    assert_int_equal(http_status_of(CF_ERR_EXISTS), 409);
    assert_int_equal(http_status_of(CF_ERR_LIMIT), 503);
    assert_int_equal(http_status_of(CF_ERR_NOMEM), 503);
    assert_int_equal(http_status_of(CF_ERR_STORE), 503);
    assert_int_equal(http_status_of(CF_ERR_CRYPTO), 500);
    assert_int_equal(http_status_of(CF_ERR_IO), 500);

    assert_true(content_type_is("application/json", "application/json"));
    assert_true(content_type_is("application/json ; charset=utf-8", "application/json"));
    assert_true(content_type_is("application/json;foo=bar;charset=UTF-8", "application/json"));
    assert_false(content_type_is("application/json;charset=utf-16", "application/json"));
    assert_false(content_type_is("application/json-seq", "application/json"));
    assert_false(content_type_is(NULL, "application/json"));
}

static void
test_body_budget(void **state)
{
    struct http_opts o = base_opts();
    struct cf_errmsg em = { "" };
    struct http_server *s;
    struct conn *hold, *c;
    struct resp r;
    char *b = json_of_size(2000), *req;
    char body[2100];
    size_t n;

    (void)state;
    o.body_budget = 3000;
    assert_int_equal(http_start(&o, &s, &em), CF_OK);
    /* a deferred request holds 2000 bytes of budget for 400 ms */
    snprintf(body, sizeof body, "{\"ms\":400,\"pad\":\"%.*s\"}", 1970, b + 6);
    hold = cl_open_to(http_port(s), NULL);
    req = mkreq("POST", "/t/defer", "application/json", body, strlen(body), NULL, &n);
    assert_int_equal(cl_send(hold, req, n), 0);
    free(req);
    sleep_ms(100);
    c = cl_open_to(http_port(s), NULL);
    req = mkreq("POST", "/t/json", "application/json", b, 2000, NULL, &n);
    assert_int_equal(cl_send(c, req, n), 0);
    assert_int_equal(cl_recv(c, &r), 0);
    assert_problem(&r, 503, "server-busy");
    assert_string_equal(hdr(&r, "Retry-After"), "1");
    resp_free(&r);
    cl_close(c);
    assert_int_equal(cl_recv(hold, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cl_close(hold);
    /* released once the held request completed: the same request passes */
    wait_quiet(s);
    assert_int_equal(atomic_load(&s->body_inuse), 0);
    c = cl_open_to(http_port(s), NULL);
    assert_int_equal(cl_send(c, req, n), 0);
    assert_int_equal(cl_recv(c, &r), 0);
    cl_close(c);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    wait_quiet(s);
    assert_int_equal(atomic_load(&s->body_inuse), 0);
    free(req);
    free(b);
    http_stop(s);
}

/* A deferred request still unanswered when the grace ends gets 503; the
 * handler's late reply, after the server is freed, is dropped safely. */
static void
test_shutdown_forced(void **state)
{
    struct http_opts o = base_opts();
    struct cf_errmsg em = { "" };
    struct http_server *s;
    struct conn *c;
    struct resp r;
    unsigned before = atomic_load(&worker.replied);
    double t0;
    int i;

    (void)state;
    o.shutdown_s = 1;
    assert_int_equal(http_start(&o, &s, &em), CF_OK);
    c = cl_open_to(http_port(s), NULL);
    assert_int_equal(cl_sends(c, "GET /t/defer?ms=1800 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    sleep_ms(100);
    t0 = now_s();
    http_stop(s);
    assert_true(now_s() - t0 >= 0.9);
    assert_true(now_s() - t0 < 3.0);
    assert_int_equal(cl_recv(c, &r), 0);
    assert_problem(&r, 503, "shutting-down");
    resp_free(&r);
    cl_close(c);
    /* the worker replies to the abandoned ctx later: must not crash */
    for (i = 0; i < 300 && atomic_load(&worker.replied) == before; i++)
        sleep_ms(10);
    assert_true(atomic_load(&worker.replied) > before);
}

struct sig_job {
    unsigned port;
    struct resp r;
    int got;
};

static void *
sig_client(void *arg)
{
    struct sig_job *j = arg;
    struct conn *c = cl_open_to(j->port, NULL);
    struct sigaction cur;
    int i;

    (void)cl_sends(c, "GET /t/defer?ms=400&n=7 HTTP/1.1\r\nHost: x\r\n\r\n");
    /* wait until http_wait has its handler in place, then signal */
    for (i = 0; i < 500; i++) {
        sigaction(SIGTERM, NULL, &cur);
        if (cur.sa_handler == on_signal)
            break;
        sleep_ms(2);
    }
    sleep_ms(100);
    kill(getpid(), SIGTERM);
    j->got = cl_recv(c, &j->r) == 0;
    cl_close(c);
    return NULL;
}

static void
test_shutdown_signal(void **state)
{
    struct http_opts o = base_opts();
    struct cf_errmsg em = { "" };
    struct http_server *s;
    struct sig_job job;
    struct sockaddr_in a;
    struct sigaction cur;
    pthread_t t;
    double t0;
    int fd;

    (void)state;
    memset(&job, 0, sizeof job);
    assert_int_equal(http_start(&o, &s, &em), CF_OK);
    job.port = http_port(s);
    t0 = now_s();
    assert_int_equal(pthread_create(&t, NULL, sig_client, &job), 0);
    http_wait(s);
    /* it drained: the deferred request (400 ms) was answered */
    assert_true(now_s() - t0 >= 0.35);
    pthread_join(t, NULL);
    assert_true(job.got);
    assert_int_equal(job.r.status, 200);
    assert_non_null(strstr(job.r.body, "\"n\":7"));
    resp_free(&job.r);
    /* the previous disposition is back */
    sigaction(SIGTERM, NULL, &cur);
    assert_true(cur.sa_handler == SIG_DFL);
    /* no longer listening */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)job.port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_not_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    close(fd);
    http_wait(s);                           /* already stopped: returns */
    http_stop(s);
}

/* New requests on a kept-alive connection during the drain get 503. */
static void
test_shutdown_keepalive(void **state)
{
    struct http_opts o = base_opts();
    struct cf_errmsg em = { "" };
    struct http_server *s;
    struct conn *c, *d;
    struct resp r;

    (void)state;
    o.shutdown_s = 2;
    assert_int_equal(http_start(&o, &s, &em), CF_OK);
    c = cl_open_to(http_port(s), NULL);
    d = cl_open_to(http_port(s), NULL);
    assert_int_equal(cl_sends(d, "GET /t/sync HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(cl_recv(d, &r), 0);
    resp_free(&r);
    assert_int_equal(cl_sends(c, "GET /t/defer?ms=500 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    sleep_ms(50);
    atomic_store(&s->stopping, 1);          /* as drain() does first */
    assert_int_equal(cl_sends(d, "GET /t/sync HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(cl_recv(d, &r), 0);
    assert_problem(&r, 503, "shutting-down");
    resp_free(&r);
    http_stop(s);
    assert_int_equal(cl_recv(c, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cl_close(c);
    cl_close(d);
}

static int
have_openssl(void)
{
    return system("openssl version >/dev/null 2>&1") == 0;
}

static void
test_tls(void **state)
{
    struct http_opts o = base_opts();
    struct cf_errmsg em = { "" };
    struct http_server *s;
    const char *dir;
    char cert[300], key[300], cmd[1400], out[4096];
    FILE *p;
    size_t n;
    struct conn *c;
    struct resp r;

    (void)state;
    if (!have_openssl()) {
        fprintf(stderr, "note: openssl not installed: TLS test skipped\n");
        skip();
    }
    dir = tu_tmpdir();
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 "
             "-keyout '%s' -out '%s' >/dev/null 2>&1", key, cert);
    assert_int_equal(system(cmd), 0);
    o.tls_cert = cert;
    o.tls_key = key;
    assert_int_equal(http_start(&o, &s, &em), CF_OK);

    /* openssl verifies the chain and the address against our certificate */
    snprintf(cmd, sizeof cmd,
             "printf 'GET /healthz HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n' | "
             "timeout 10 openssl s_client -connect 127.0.0.1:%u -CAfile '%s' -verify_ip 127.0.0.1 "
             "-verify_return_error -quiet 2>/dev/null", http_port(s), cert);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_non_null(strstr(out, "{\"status\":\"ok\"}"));
    assert_non_null(strstr(out, "Strict-Transport-Security: max-age=31536000"));
    assert_non_null(strstr(out, "X-Content-Type-Options: nosniff"));

    /* TLS 1.1 is refused */
    snprintf(cmd, sizeof cmd,
             "printf 'GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | "
             "timeout 10 openssl s_client -connect 127.0.0.1:%u -tls1_1 -quiet 2>/dev/null",
             http_port(s));
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    assert_null(strstr(out, "HTTP/1.1 200"));

    /* plain HTTP on the TLS port gets no HTTP answer */
    c = cl_open_to(http_port(s), NULL);
    (void)cl_sends(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(cl_recv(c, &r) != 0 || r.status == 0);
    cl_close(c);
    http_stop(s);

    /* a key that is not PEM */
    assert_int_equal(tu_write(key, "garbage", 7), 0);
    assert_int_equal(http_start(&o, &s, &em), CF_ERR_IO);
    assert_non_null(strstr(em.msg, "tls_key"));
    tu_rmrf(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_json),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_body_limit_preauth),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_json_malformed),
        cmocka_unit_test(test_json_depth),
        cmocka_unit_test(test_json_text),
        cmocka_unit_test(test_text_ok),
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_headers_too_large),
        cmocka_unit_test(test_deferred_many),
        cmocka_unit_test(test_deferred_race),
        cmocka_unit_test(test_reply_once),
        cmocka_unit_test(test_extra_headers),
        cmocka_unit_test(test_request_accessors),
        cmocka_unit_test(test_xff),
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_slow_client),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_body_budget),
        cmocka_unit_test(test_shutdown_forced),
        cmocka_unit_test(test_shutdown_signal),
        cmocka_unit_test(test_shutdown_keepalive),
        cmocka_unit_test(test_tls),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
