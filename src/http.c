/*
 * http.c - the HTTP server (http.h, docs/http.md): libmicrohttpd set-up,
 * request intake under the limits of http.h, routing, the reply-once state
 * machine with suspend/resume, security headers, problem documents,
 * X-Forwarded-For trust, /healthz, /metrics and shutdown.
 *
 * It never logs a body, a cookie, an Authorization header, a path or a
 * query string, and never echoes request data into a response.
 *
 * Threads: libmicrohttpd calls on_uri, on_request and on_completed on its
 * pool threads, always the same thread for one connection.  Replies may
 * come from any thread.  Locks: srv->mu (in-flight list), then ctx->mu
 * (reply state); srv->mmu (application metrics) alone.  Nothing takes
 * srv->mu while holding a ctx->mu.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sodium.h>

#include "http.h"
#include "log.h"
#include "banned.h"

#define PROBLEM_BASE "https://coffre.invalid/problems/"

static const char csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'";

/* TLS 1.2 and 1.3 only, AEAD ciphers with forward secrecy only. */
#define TLS_PRIORITIES "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" \
    "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:-RSA"

/* Longest /metrics page: routes x statuses x buckets stays far below. */
#define METRICS_PAGE_MAX (1u << 20)

/* ---- metrics tables ----------------------------------------------------- */

/* The statuses counted by their number; any other is counted as "other". */
static const unsigned status_codes[] = {
    200, 201, 202, 204, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404,
    405, 409, 410, 413, 414, 415, 422, 429, 431, 500, 501, 502, 503, 504,
};
#define NSTATUS (sizeof status_codes / sizeof status_codes[0] + 1)

/* Latency buckets (upper bounds), in microseconds and as printed. */
static const uint64_t bucket_us[] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000,
};
static const char *const bucket_le[] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "10",
};
#define NBUCKETS (sizeof bucket_us / sizeof bucket_us[0])

struct route_stats {
    _Atomic uint64_t status[NSTATUS];
    _Atomic uint64_t bucket[NBUCKETS + 1];   /* not cumulative; last: > 10 s */
    _Atomic uint64_t sum_us;
    _Atomic uint64_t count;
};

enum metric_kind { METRIC_COUNTER, METRIC_GAUGE, METRIC_GAUGE_FN };

struct app_metric {
    char name[64];
    char label[128];                /* rendered: key="value", or "" */
    char help[128];
    enum metric_kind kind;
    uint64_t v;                     /* under srv->mmu */
    uint64_t (*fn)(void *);
    void *arg;
};

/* ---- server and request ------------------------------------------------- */

struct ipaddr {
    int family;                     /* AF_INET or AF_INET6 */
    unsigned char a[16];
};

struct http_server {
    struct MHD_Daemon *d;
    struct http_route *routes;      /* the built-ins, then the application's */
    size_t nroutes;
    struct route_stats *stats;      /* nroutes + 1: [0] is "unknown" */
    void *app;
    enum cf_err (*health)(void *app);
    struct ipaddr *proxies;
    size_t nproxies;
    int tls, loopback;
    unsigned port, shutdown_s;
    size_t body_budget;
    _Atomic size_t body_inuse;
    uint64_t id_base;
    _Atomic uint64_t next_id;
    _Atomic uint64_t aborted;
    _Atomic int stopping;           /* new requests get 503 */
    _Atomic int forcing;            /* deferred requests get 503 at once */
    int stopped;                    /* the daemon is stopped (http_wait/http_stop) */
    int listen_fd;                  /* returned by MHD_quiesce_daemon */
    char *cert, *key;               /* PEM; key in sodium_malloc memory */

    pthread_mutex_t mu;             /* inflight, ninflight */
    pthread_cond_t idle;
    struct http_ctx *inflight;
    size_t ninflight;

    pthread_mutex_t mmu;            /* metrics, nmetrics */
    struct app_metric metrics[HTTP_MAX_APP_METRICS];
    size_t nmetrics;
    int metrics_full_logged;
};

struct kv {
    const char *k, *v;
};

/* Key/value pairs in one allocation: the array, then the strings. */
struct kvs {
    struct kv *a;
    size_t n;
};

/*
 * The reply state machine.  INTAKE: headers and body arriving.  IN_HANDLER:
 * the handler runs on the pool thread; a reply is only stored.  SUSPENDED:
 * the handler returned after http_defer with no reply; the connection is
 * suspended.  RESUMING: a reply arrived, the connection was resumed and the
 * next call of on_request queues it.  QUEUED: libmicrohttpd has it.  DONE:
 * libmicrohttpd completed the request; a late reply is dropped.
 */
enum req_state { RS_INTAKE, RS_IN_HANDLER, RS_SUSPENDED, RS_RESUMING,
                 RS_QUEUED, RS_DONE };

struct http_ctx {
    pthread_mutex_t mu;             /* refs, state, replied, deferred, forced, resp, status */
    unsigned refs;                  /* libmicrohttpd's, plus one while deferred */
    enum req_state state;
    int replied, deferred, forced;
    struct MHD_Response *resp;      /* the reply waiting to be queued */
    unsigned status;

    /* Below: written by the pool thread before the handler runs, read-only
     * afterwards, never touched by a reply path except idhex, tls, extra. */
    struct http_server *srv;        /* not used once DONE */
    struct MHD_Connection *conn;
    struct http_ctx *prev, *next;   /* srv->inflight */
    const struct http_route *route;
    size_t ri;                      /* stats index: 0 unknown, else route + 1 */
    int builtin;
    uint64_t id;
    char idhex[17];
    int tls, plain_loopback;
    struct timespec t0;
    unsigned sent;                  /* status given to libmicrohttpd */
    int early;                      /* resp holds a rejection made at intake */
    int has_body;

    char *method, *path;
    const char *rest;
    struct kvs headers, cookies, query, form;
    char addr[INET6_ADDRSTRLEN];
    uint8_t *body;
    size_t blen, bcap, blimit, reserved;
    json_t *json;

    struct { char *name, *value; } extra[HTTP_MAX_EXTRA_HEADERS];
    size_t nextra;
};

/* Tags on_uri returns as con_cls before on_request makes the ctx. */
static char uri_ok_tag, uri_bad_tag, uri_long_tag;

static void builtin_healthz(struct http_ctx *c, void *app);
static void builtin_metrics(struct http_ctx *c, void *app);

static const struct http_route builtins[] = {
    { "GET", "/healthz", 0, builtin_healthz, "healthz" },
    { "GET", "/metrics", 0, builtin_metrics, "metrics" },
};
#define NBUILTINS (sizeof builtins / sizeof builtins[0])

/* ---- small helpers ------------------------------------------------------ */

static int
is_tag(const void *p)
{
    return p == &uri_ok_tag || p == &uri_bad_tag || p == &uri_long_tag;
}

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Text a handler may trust: strict UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF) without C0 controls, DEL or C1
 * controls (U+0080-U+009F).  1 when s[0..n) is such text.
 */
static int
text_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i];
        unsigned lo = 0x80, hi = 0xbf;
        size_t need, k;

        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            if (c == 0xc2)
                lo = 0xa0;              /* U+0080-U+009F: C1 controls */
        } else if (c == 0xe0) {
            need = 2;
            lo = 0xa0;
        } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
            need = 2;
        } else if (c == 0xed) {
            need = 2;
            hi = 0x9f;                  /* no surrogates */
        } else if (c == 0xf0) {
            need = 3;
            lo = 0x90;
        } else if (c >= 0xf1 && c <= 0xf3) {
            need = 3;
        } else if (c == 0xf4) {
            need = 3;
            hi = 0x8f;
        } else
            return 0;
        if (n - i <= need)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return 0;
        i += need + 1;
    }
    return 1;
}

static int
str_ok(const char *s)
{
    return text_ok((const unsigned char *)s, strlen(s));
}

/* Parses a whole decimal number <= max; 0 on success. */
static int
parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (n == 0 || n > 20)
        return -1;
    for (i = 0; i < n; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');

        if (s[i] < '0' || s[i] > '9')
            return -1;
        /* v * 10 + d <= max, without wrapping when d > max */
        if (d > max || v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int
ip_parse(const char *s, size_t n, struct ipaddr *out)
{
    char buf[INET6_ADDRSTRLEN];

    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->a) == 1) {
        out->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, out->a) == 1) {
        out->family = AF_INET6;
        if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)out->a)) {
            memmove(out->a, out->a + 12, 4);
            memset(out->a + 4, 0, 12);
            out->family = AF_INET;
        }
        return 0;
    }
    return -1;
}

static int
ip_of_sockaddr(const struct sockaddr *sa, struct ipaddr *out)
{
    memset(out, 0, sizeof *out);
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

        out->family = AF_INET;
        memcpy(out->a, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;

        out->family = AF_INET6;
        memcpy(out->a, &in6->sin6_addr, 16);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            memmove(out->a, out->a + 12, 4);
            memset(out->a + 4, 0, 12);
            out->family = AF_INET;
        }
        return 0;
    }
    return -1;
}

static void
ip_str(const struct ipaddr *ip, char out[INET6_ADDRSTRLEN])
{
    if (inet_ntop(ip->family, ip->a, out, INET6_ADDRSTRLEN) == NULL)
        snprintf(out, INET6_ADDRSTRLEN, "unknown");
}

static int
ip_is_loopback(const struct ipaddr *ip)
{
    static const unsigned char v6lo[16] = { [15] = 1 };

    if (ip->family == AF_INET)
        return ip->a[0] == 127;
    return memcmp(ip->a, v6lo, 16) == 0;
}

static int
ip_trusted(const struct http_server *s, const struct ipaddr *ip)
{
    size_t i;

    for (i = 0; i < s->nproxies; i++)
        if (s->proxies[i].family == ip->family &&
            memcmp(s->proxies[i].a, ip->a, ip->family == AF_INET ? 4 : 16) == 0)
            return 1;
    return 0;
}

static double
elapsed_s(const struct timespec *t0)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) +
           (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---- responses ---------------------------------------------------------- */

static int
header_name_ok(const char *s)
{
    size_t n = strlen(s), i;

    if (n == 0 || n > 64)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return 1;
}

static int
header_value_ok(const char *s)
{
    size_t n = strlen(s), i;

    if (n > HTTP_MAX_HEADER_VALUE)
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int
has_extra(const struct http_ctx *c, const char *name)
{
    size_t i;

    for (i = 0; i < c->nextra; i++)
        if (strcasecmp(c->extra[i].name, name) == 0)
            return 1;
    return 0;
}

/*
 * A response with every header of docs/http.md; takes body (malloc'd, or
 * NULL when len is 0).  Runs on any thread: touches only c's reply-side
 * members (idhex, tls, extra), never c->srv.  NULL when out of memory.
 */
static struct MHD_Response *
make_response(struct http_ctx *c, const char *ctype, char *body, size_t len)
{
    struct MHD_Response *r;
    int ok = 1;
    size_t i;

    if (len == 0) {
        free(body);
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (r == NULL)
            free(body);
    }
    if (r == NULL)
        return NULL;
    if (ctype != NULL)
        ok &= MHD_add_response_header(r, "Content-Type", ctype) == MHD_YES;
    ok &= MHD_add_response_header(r, "Content-Security-Policy", csp) == MHD_YES;
    ok &= MHD_add_response_header(r, "X-Content-Type-Options", "nosniff") == MHD_YES;
    ok &= MHD_add_response_header(r, "Referrer-Policy", "no-referrer") == MHD_YES;
    ok &= MHD_add_response_header(r, "X-Frame-Options", "DENY") == MHD_YES;
    if (!has_extra(c, "Cache-Control"))
        ok &= MHD_add_response_header(r, "Cache-Control", "no-store") == MHD_YES;
    ok &= MHD_add_response_header(r, "X-Request-Id", c->idhex) == MHD_YES;
    if (c->tls)
        ok &= MHD_add_response_header(r, "Strict-Transport-Security",
                                      "max-age=31536000") == MHD_YES;
    for (i = 0; i < c->nextra; i++)
        ok &= MHD_add_response_header(r, c->extra[i].name, c->extra[i].value) == MHD_YES;
    if (!ok) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

static int
slug_ok(const char *s)
{
    size_t n = strlen(s), i;

    if (n == 0 || n > 64)
        return 0;
    for (i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

static struct MHD_Response *
make_problem(struct http_ctx *c, unsigned status, const char *type,
             const char *title, const char *detail, unsigned retry_after_s)
{
    struct MHD_Response *r;
    json_t *doc;
    char *txt;

    if (type == NULL || !slug_ok(type)) {
        log_kv(LOG_ERROR, "http: bad problem type, sent internal-error",
               "request_id", c->idhex, (const char *)NULL);
        type = "internal-error";
    }
    doc = json_pack("{s:s+,s:s,s:i,s:s,s:s}", "type", PROBLEM_BASE, type,
                    "title", title != NULL ? title : "",
                    "status", (int)status,
                    "detail", detail != NULL ? detail : "",
                    "request_id", c->idhex);
    if (doc == NULL)
        return NULL;
    txt = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (txt == NULL)
        return NULL;
    r = make_response(c, "application/problem+json", txt, strlen(txt));
    if (r != NULL && retry_after_s > 0) {
        char ra[16];

        snprintf(ra, sizeof ra, "%u", retry_after_s);
        if (MHD_add_response_header(r, "Retry-After", ra) != MHD_YES) {
            MHD_destroy_response(r);
            r = NULL;
        }
    }
    return r;
}

static unsigned
clamp_status(unsigned status)
{
    return status >= 100 && status <= 599 ? status : 500;
}

/* ---- the reply state machine -------------------------------------------- */

static void
ctx_free(struct http_ctx *c)
{
    size_t i;

    if (c->resp != NULL)
        MHD_destroy_response(c->resp);
    json_decref(c->json);
    free(c->body);
    free(c->method);
    free(c->path);
    free(c->headers.a);
    free(c->cookies.a);
    free(c->query.a);
    free(c->form.a);
    for (i = 0; i < c->nextra; i++) {
        free(c->extra[i].name);
        free(c->extra[i].value);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Hands r (may be NULL: out of memory) over as c's one reply, from any
 * thread. */
static void
deliver(struct http_ctx *c, unsigned status, struct MHD_Response *r)
{
    int last = 0, dup = 0;
    char id[sizeof c->idhex];

    memcpy(id, c->idhex, sizeof id);
    pthread_mutex_lock(&c->mu);
    if (c->replied) {
        dup = 1;
    } else {
        c->replied = 1;
        switch (c->state) {
        case RS_IN_HANDLER:
            /* the pool thread queues it once the handler returns */
            c->resp = r;
            c->status = status;
            r = NULL;
            break;
        case RS_SUSPENDED:
            c->resp = r;
            c->status = status;
            r = NULL;
            c->state = RS_RESUMING;
            MHD_resume_connection(c->conn);
            break;
        default:
            /* forced 503 at shutdown, or the client is gone: dropped */
            break;
        }
    }
    if (c->deferred) {
        c->deferred = 0;
        last = --c->refs == 0;
    }
    pthread_mutex_unlock(&c->mu);
    if (r != NULL)
        MHD_destroy_response(r);
    if (dup)
        log_kv(LOG_ERROR, "http: second reply dropped", "request_id", id,
               (const char *)NULL);
    if (last)
        ctx_free(c);
}

static enum MHD_Result
queue(struct http_ctx *c, unsigned status, struct MHD_Response *r)
{
    enum MHD_Result ret;

    if (r == NULL) {
        log_kv(LOG_ERROR, "http: no response (out of memory), closing",
               "request_id", c->idhex, (const char *)NULL);
        return MHD_NO;
    }
    ret = MHD_queue_response(c->conn, status, r);
    MHD_destroy_response(r);
    if (ret == MHD_YES)
        c->sent = status;
    return ret;
}

/* Takes the stored reply to queue it (pool thread). */
static enum MHD_Result
queue_stored(struct http_ctx *c)
{
    struct MHD_Response *r;
    unsigned status;

    pthread_mutex_lock(&c->mu);
    r = c->resp;
    status = c->status;
    c->resp = NULL;
    c->state = RS_QUEUED;
    pthread_mutex_unlock(&c->mu);
    return queue(c, status, r);
}

/* After the handler returned (pool thread): queue its reply, or suspend
 * until http_defer's reply comes. */
static enum MHD_Result
after_handler(struct http_ctx *c)
{
    pthread_mutex_lock(&c->mu);
    if (!c->replied) {
        if (!c->deferred) {
            log_kv(LOG_ERROR, "http: handler returned without a reply",
                   "request_id", c->idhex, "route", c->route->name,
                   (const char *)NULL);
            c->replied = 1;
            c->status = 500;
            c->resp = make_problem(c, 500, "internal-error", "Internal error",
                                   "The server could not answer this request.", 0);
        } else if (atomic_load(&c->srv->forcing)) {
            /* shutdown grace is over: answer now, drop the late reply */
            c->forced = 1;
            c->status = 503;
            c->resp = make_problem(c, 503, "shutting-down", "Shutting down",
                                   "The server is stopping; try again shortly.", 1);
        } else {
            c->state = RS_SUSPENDED;
            MHD_suspend_connection(c->conn);
            pthread_mutex_unlock(&c->mu);
            return MHD_YES;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return queue_stored(c);
}

/* ---- request intake ----------------------------------------------------- */

struct collect {
    struct kv *a;
    char *p;
    size_t n, bytes;
    int ctl;                        /* a value holds NUL or another control byte */
};

/* RFC 9110 field values: no control bytes but HTAB (obs-text is allowed). */
static int
field_value_ok(const char *v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (((unsigned char)v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f)
            return 0;
    return 1;
}

static enum MHD_Result
count_kv(void *cls, enum MHD_ValueKind kind, const char *k, size_t klen,
         const char *v, size_t vlen)
{
    struct collect *cc = cls;

    (void)kind;
    if (k == NULL)
        klen = 0;
    if (v == NULL)
        vlen = 0;
    /* a NUL inside would hide the rest from every strlen after us */
    if ((k != NULL && strlen(k) != klen) || (v != NULL && strlen(v) != vlen) ||
        !field_value_ok(v != NULL ? v : "", vlen))
        cc->ctl = 1;
    cc->n++;
    cc->bytes += klen + vlen + 2;
    return MHD_YES;
}

static enum MHD_Result
copy_kv(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    struct collect *cc = cls;
    size_t kl = k != NULL ? strlen(k) : 0, vl = v != NULL ? strlen(v) : 0;

    (void)kind;
    memcpy(cc->p, k != NULL ? k : "", kl + 1);
    cc->a[cc->n].k = cc->p;
    cc->p += kl + 1;
    memcpy(cc->p, v != NULL ? v : "", vl + 1);
    cc->a[cc->n].v = cc->p;
    cc->p += vl + 1;
    cc->n++;
    return MHD_YES;
}

/* Copies the request's values of one kind into out; 0, -1 out of memory,
 * -2 when a value holds a control byte (the copy is made all the same). */
static int
collect(struct MHD_Connection *conn, enum MHD_ValueKind kind, struct kvs *out)
{
    struct collect cc = { NULL, NULL, 0, 0, 0 };
    size_t n;

    MHD_get_connection_values_n(conn, kind, count_kv, &cc);
    if (cc.n == 0)
        return 0;
    n = cc.n;
    cc.a = malloc(n * sizeof *cc.a + cc.bytes);
    if (cc.a == NULL)
        return -1;
    cc.p = (char *)(cc.a + n);
    cc.n = 0;
    MHD_get_connection_values(conn, kind, copy_kv, &cc);
    out->a = cc.a;
    out->n = cc.n;
    return cc.ctl ? -2 : 0;
}

static const char *
kvs_get(const struct kvs *l, const char *k, int nocase)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        if ((nocase ? strcasecmp(l->a[i].k, k) : strcmp(l->a[i].k, k)) == 0)
            return l->a[i].v;
    return NULL;
}

/* Parameters: at most HTTP_MAX_PARAMS, no repeated name, names and values
 * text_ok, names not empty.  0 when l passes. */
static int
params_ok(const struct kvs *l)
{
    size_t i, j;

    if (l->n > HTTP_MAX_PARAMS)
        return -1;
    for (i = 0; i < l->n; i++) {
        if (l->a[i].k[0] == '\0' || !str_ok(l->a[i].k) || !str_ok(l->a[i].v))
            return -1;
        for (j = 0; j < i; j++)
            if (strcmp(l->a[i].k, l->a[j].k) == 0)
                return -1;
    }
    return 0;
}

/*
 * Stores a rejection made at intake as c's reply.  Queued at once when a
 * body is on its way (libmicrohttpd then discards it and closes), else on
 * the next call so that keep-alive survives (DESIGN.md section 12).
 */
static void
reject(struct http_ctx *c, unsigned status, const char *type, const char *title,
       const char *detail)
{
    c->early = 1;
    c->replied = 1;
    c->status = status;
    c->resp = make_problem(c, status, type, title, detail,
                           status == 503 ? 1 : 0);
}

/* method is one of the comma-separated tokens of allow. */
static int
allow_has(const char *allow, const char *method)
{
    size_t n = strlen(method);
    const char *p = allow;

    while ((p = strstr(p, method)) != NULL) {
        if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return 1;
        p += n;
    }
    return 0;
}

/* Route lookup: c->route and c->rest, or a 404/405 rejection. */
static void
route_request(struct http_server *s, struct http_ctx *c)
{
    char allow[128];
    size_t i, alen = 0;

    allow[0] = '\0';
    for (i = 0; i < s->nroutes; i++) {
        const struct http_route *r = &s->routes[i];
        size_t plen = strlen(r->path);
        const char *rest;

        if (plen >= 2 && r->path[plen - 1] == '*') {
            plen--;
            if (strncmp(c->path, r->path, plen) != 0 || c->path[plen] == '\0')
                continue;
            rest = c->path + plen;
        } else {
            if (strcmp(c->path, r->path) != 0)
                continue;
            rest = c->path + plen;
        }
        if (strcmp(c->method, r->method) == 0) {
            c->route = r;
            c->rest = rest;
            c->ri = i + 1;
            c->builtin = i < NBUILTINS;
            return;
        }
        /* the path exists: collect its methods for Allow */
        if (!allow_has(allow, r->method) && alen + strlen(r->method) + 3 < sizeof allow)
            alen += (size_t)snprintf(allow + alen, sizeof allow - alen, "%s%s",
                                     alen > 0 ? ", " : "", r->method);
    }
    if (alen == 0) {
        reject(c, 404, "not-found", "Not found", "There is nothing at this address.");
        return;
    }
    /* Allow must go on the 405: add it before the response is built. */
    c->extra[0].name = strdup("Allow");
    c->extra[0].value = strdup(allow);
    if (c->extra[0].name != NULL && c->extra[0].value != NULL)
        c->nextra = 1;
    else {
        free(c->extra[0].name);
        free(c->extra[0].value);
    }
    reject(c, 405, "method-not-allowed", "Method not allowed",
           "This address does not accept this method; see the Allow header.");
}

/* The client address: the socket's, or X-Forwarded-For's last hop that is
 * not a trusted proxy when the socket's peer is a trusted proxy. */
static void
client_address(struct http_server *s, struct http_ctx *c)
{
    const union MHD_ConnectionInfo *ci;
    struct ipaddr peer, hop, client;
    size_t i, nxff = 0;
    const char *xff[16];
    int peer_trusted;

    ci = MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ip_of_sockaddr(ci->client_addr, &peer) != 0) {
        snprintf(c->addr, sizeof c->addr, "unknown");
        return;
    }
    ip_str(&peer, c->addr);
    peer_trusted = ip_trusted(s, &peer);
    c->plain_loopback = !s->tls && s->loopback && !peer_trusted;
    if (!peer_trusted)
        return;
    for (i = 0; i < c->headers.n; i++)
        if (strcasecmp(c->headers.a[i].k, "X-Forwarded-For") == 0) {
            if (nxff == sizeof xff / sizeof xff[0])
                return;                 /* absurd: keep the socket's */
            xff[nxff++] = c->headers.a[i].v;
        }
    client = peer;
    /* right to left: the last header's last element first */
    while (nxff > 0) {
        const char *v = xff[--nxff];
        size_t end = strlen(v);

        for (;;) {
            size_t start = end, a, b;

            while (start > 0 && v[start - 1] != ',')
                start--;
            a = start;
            b = end;
            while (a < b && (v[a] == ' ' || v[a] == '\t'))
                a++;
            while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
                b--;
            if (ip_parse(v + a, b - a, &hop) != 0)
                return;                 /* invalid: the socket's address */
            client = hop;
            if (!ip_trusted(s, &hop)) {
                ip_str(&client, c->addr);
                return;
            }
            if (start == 0)
                break;
            end = start - 1;
        }
    }
    ip_str(&client, c->addr);           /* every hop a trusted proxy */
}

/* Media type of Content-Type is want, and a charset, if any, is UTF-8. */
static int
content_type_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    const char *p;

    if (ct == NULL || strncasecmp(ct, want, n) != 0)
        return 0;
    p = ct + n;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0')
        return 1;
    if (*p != ';')
        return 0;
    for (;;) {
        const char *name;
        size_t nlen;

        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        name = p;
        while (*p != '\0' && *p != '=' && *p != ';')
            p++;
        nlen = (size_t)(p - name);
        if (*p == '=') {
            const char *val = ++p;
            size_t vlen;

            while (*p != '\0' && *p != ';')
                p++;
            vlen = (size_t)(p - val);
            while (vlen > 0 && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
                vlen--;
            if (nlen == 7 && strncasecmp(name, "charset", 7) == 0) {
                if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
                    val++;
                    vlen -= 2;
                }
                if (!(vlen == 5 && strncasecmp(val, "utf-8", 5) == 0))
                    return 0;
            }
        }
        if (*p == '\0')
            return 1;
    }
}

static int
reserve_body(struct http_server *s, struct http_ctx *c, size_t n)
{
    size_t cur = atomic_load(&s->body_inuse);

    do {
        if (n > s->body_budget || cur > s->body_budget - n)
            return -1;
    } while (!atomic_compare_exchange_weak(&s->body_inuse, &cur, cur + n));
    c->reserved += n;
    return 0;
}

/* Checks of http.h's limits before the body; a failure leaves a rejection. */
static void
intake(struct http_server *s, struct http_ctx *c, const char *url,
       const char *method, void *tag)
{
    const union MHD_ConnectionInfo *ci;
    const char *cl, *te;
    uint64_t len = 0;
    int hrc, crc, qrc;

    c->method = strdup(method);
    c->path = strdup(url);
    hrc = collect(c->conn, MHD_HEADER_KIND, &c->headers);
    crc = collect(c->conn, MHD_COOKIE_KIND, &c->cookies);
    qrc = collect(c->conn, MHD_GET_ARGUMENT_KIND, &c->query);
    if (c->method == NULL || c->path == NULL || hrc == -1 || crc == -1 || qrc == -1) {
        reject(c, 503, "server-busy", "Server busy", "The server is short of memory.");
        return;
    }
    cl = kvs_get(&c->headers, "Content-Length", 1);
    te = kvs_get(&c->headers, "Transfer-Encoding", 1);
    if (cl != NULL && parse_uint(cl, strlen(cl), UINT64_MAX, &len) != 0)
        len = UINT64_MAX;
    c->has_body = te != NULL || len > 0;
    client_address(s, c);

    if (atomic_load(&s->stopping)) {
        reject(c, 503, "shutting-down", "Shutting down",
               "The server is stopping; try again shortly.");
        return;
    }
    if (tag == &uri_long_tag || strlen(url) > HTTP_MAX_URL_BYTES) {
        reject(c, 414, "uri-too-long", "URI too long",
               "The address is longer than this server accepts.");
        return;
    }
    if (hrc != 0 || crc != 0) {
        reject(c, 400, "bad-request", "Bad request",
               "A request header holds a control character.");
        return;
    }
    if (tag == &uri_bad_tag || !str_ok(c->path)) {
        reject(c, 400, "bad-request", "Bad request",
               "The address holds a malformed escape or a control character.");
        return;
    }
    ci = MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (ci != NULL && ci->header_size > HTTP_MAX_HEADER_BYTES) {
        reject(c, 431, "headers-too-large", "Request headers too large",
               "The request headers are larger than this server accepts.");
        return;
    }
    if (params_ok(&c->query) != 0) {
        reject(c, 400, "bad-parameters", "Bad parameters",
               "The query has too many, repeated or malformed parameters.");
        return;
    }
    route_request(s, c);
    if (c->early)
        return;

    c->blimit = (c->route->flags & HTTP_PREAUTH) ? HTTP_MAX_BODY_PREAUTH : HTTP_MAX_BODY;
    if (len > c->blimit) {
        reject(c, 413, "body-too-large", "Request body too large",
               "The request body is larger than this address accepts.");
        return;
    }
    if ((c->route->flags & HTTP_JSON_BODY) &&
        !content_type_is(kvs_get(&c->headers, "Content-Type", 1), "application/json")) {
        reject(c, 415, "unsupported-media-type", "Unsupported media type",
               "This address takes application/json in UTF-8.");
        return;
    }
    if ((c->route->flags & HTTP_FORM_BODY) &&
        !content_type_is(kvs_get(&c->headers, "Content-Type", 1),
                         "application/x-www-form-urlencoded")) {
        reject(c, 415, "unsupported-media-type", "Unsupported media type",
               "This address takes application/x-www-form-urlencoded in UTF-8.");
        return;
    }
    if (len > 0) {
        if (reserve_body(s, c, (size_t)len) != 0) {
            reject(c, 503, "server-busy", "Server busy",
                   "The server is busy; try again shortly.");
            return;
        }
        c->body = malloc((size_t)len + 1);
        if (c->body == NULL) {
            reject(c, 503, "server-busy", "Server busy", "The server is short of memory.");
            return;
        }
        c->bcap = (size_t)len;
    }
}

/* A body chunk; MHD_NO closes the connection (a chunked body over the
 * limit: a response cannot be queued while the body is arriving). */
static enum MHD_Result
take_body(struct http_ctx *c, const char *data, size_t *size)
{
    size_t n = *size;

    if (c->early) {
        *size = 0;
        return MHD_YES;
    }
    if (n > c->blimit - c->blen) {
        log_kv(LOG_WARN, "http: body over the limit, closing", "request_id", c->idhex,
               "route", c->route->name, (const char *)NULL);
        return MHD_NO;
    }
    if (c->blen + n > c->bcap) {
        /* chunked: grow by doubling, reserving the growth */
        size_t cap = c->bcap > 0 ? c->bcap : 1024;
        uint8_t *nb;

        while (cap < c->blen + n)
            cap *= 2;
        if (cap > c->blimit)
            cap = c->blimit;
        if (reserve_body(c->srv, c, cap - c->bcap) != 0) {
            log_kv(LOG_WARN, "http: body budget exhausted, closing",
                   "request_id", c->idhex, (const char *)NULL);
            return MHD_NO;
        }
        nb = realloc(c->body, cap + 1);
        if (nb == NULL)
            return MHD_NO;
        c->body = nb;
        c->bcap = cap;
    }
    memcpy(c->body + c->blen, data, n);
    c->blen += n;
    *size = 0;
    return MHD_YES;
}

/* Deepest nesting of objects and arrays in a JSON text, strings skipped;
 * stops counting past max. */
static unsigned
json_depth(const uint8_t *p, size_t n, unsigned max)
{
    unsigned depth = 0, deepest = 0;
    int in_str = 0, esc = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        uint8_t ch = p[i];

        if (in_str) {
            if (esc)
                esc = 0;
            else if (ch == '\\')
                esc = 1;
            else if (ch == '"')
                in_str = 0;
            continue;
        }
        if (ch == '"')
            in_str = 1;
        else if (ch == '{' || ch == '[') {
            if (++depth > deepest)
                deepest = depth;
            if (deepest > max)
                return deepest;
        } else if ((ch == '}' || ch == ']') && depth > 0)
            depth--;
    }
    return deepest;
}

/* Every key and string in v is text_ok (depth already bounded). */
static int
json_text_ok(json_t *v)
{
    const char *k;
    json_t *e;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        json_object_foreach(v, k, e)
            if (!str_ok(k) || !json_text_ok(e))
                return 0;
        return 1;
    case JSON_ARRAY:
        json_array_foreach(v, i, e)
            if (!json_text_ok(e))
                return 0;
        return 1;
    case JSON_STRING:
        return text_ok((const unsigned char *)json_string_value(v), json_string_length(v));
    default:
        return 1;
    }
}

/* Decodes one form component in place ('+' is a space); its new length,
 * or -1 for a bad escape or one that decodes to a control byte. */
static long
form_decode(char *s, size_t n)
{
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        if (s[i] == '+')
            s[o++] = ' ';
        else if (s[i] == '%') {
            int hi, lo;

            if (i + 2 >= n)
                return -1;
            hi = hexval((unsigned char)s[i + 1]);
            lo = hexval((unsigned char)s[i + 2]);
            /* a decoded NUL would cut the C string short of text_ok's eyes */
            if (hi < 0 || lo < 0 || hi * 16 + lo < 0x20 || hi * 16 + lo == 0x7f)
                return -1;
            s[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return -1;          /* a raw NUL or control byte: refused like an escaped one */
        else
            s[o++] = s[i];
    }
    s[o] = '\0';
    return (long)o;
}

/* application/x-www-form-urlencoded body into c->form; 0 when it passes
 * params_ok. */
static int
parse_form(struct http_ctx *c)
{
    size_t n = 0, i, start;
    char *p;
    struct kv *a;

    for (i = 0, start = 0; i <= c->blen; i++)
        if (i == c->blen || c->body[i] == '&') {
            if (i > start)
                n++;
            start = i + 1;
        }
    if (n == 0)
        return 0;
    if (n > HTTP_MAX_PARAMS)
        return -1;
    a = malloc(n * sizeof *a + c->blen + n + 1);
    if (a == NULL)
        return -1;
    p = (char *)(a + n);
    c->form.a = a;
    c->form.n = 0;
    for (i = 0, start = 0; i <= c->blen; i++) {
        size_t len, klen, j;
        const uint8_t *seg;
        long kd, vd;

        if (i < c->blen && c->body[i] != '&')
            continue;
        seg = c->body + start;
        len = i - start;
        start = i + 1;
        if (len == 0)
            continue;
        for (klen = 0; klen < len && seg[klen] != '='; klen++)
            ;
        /* key, NUL, value, NUL: at most len + 1 bytes with the '=' gone */
        memcpy(p, seg, klen);
        kd = form_decode(p, klen);
        if (kd < 0)
            return -1;
        a[c->form.n].k = p;
        p += kd + 1;
        j = klen < len ? len - klen - 1 : 0;
        memcpy(p, seg + len - j, j);
        vd = form_decode(p, j);
        if (vd < 0)
            return -1;
        a[c->form.n].v = p;
        p += vd + 1;
        c->form.n++;
    }
    return params_ok(&c->form);
}

/* Parses the body the route asks for; a failure leaves a rejection. */
static int
prepare_body(struct http_ctx *c)
{
    json_error_t jerr;

    if (c->body != NULL)
        c->body[c->blen] = '\0';
    if (c->route->flags & HTTP_JSON_BODY) {
        if (json_depth(c->body, c->blen, HTTP_JSON_MAX_DEPTH) > HTTP_JSON_MAX_DEPTH) {
            reject(c, 400, "invalid-json", "Invalid JSON",
                   "The JSON body is nested too deeply.");
            return -1;
        }
        /* no JSON_ALLOW_NUL: "\u0000" is refused; bad UTF-8 is refused */
        c->json = json_loadb((const char *)(c->body != NULL ? c->body : (uint8_t *)""),
                             c->blen, JSON_REJECT_DUPLICATES, &jerr);
        if (c->json == NULL) {
            reject(c, 400, "invalid-json", "Invalid JSON",
                   "The body is not valid JSON in UTF-8.");
            return -1;
        }
        if (!json_is_object(c->json)) {
            reject(c, 400, "invalid-json", "Invalid JSON",
                   "The JSON body must be an object.");
            return -1;
        }
        if (!json_text_ok(c->json)) {
            reject(c, 400, "invalid-json", "Invalid JSON",
                   "The JSON body holds a control character.");
            return -1;
        }
    }
    if ((c->route->flags & HTTP_FORM_BODY) && parse_form(c) != 0) {
        reject(c, 400, "invalid-form", "Invalid form",
               "The form has too many, repeated or malformed fields.");
        return -1;
    }
    if (c->route->flags & HTTP_FORM_BODY) {
        /* the same fields as a JSON object of strings, for handlers that
         * serve both a JSON API route and an HTML form (http_json) */
        size_t i;

        c->json = json_object();
        for (i = 0; c->json != NULL && i < c->form.n; i++)
            if (json_object_set_new(c->json, c->form.a[i].k, json_string(c->form.a[i].v)) != 0) {
                json_decref(c->json);
                c->json = NULL;
            }
        if (c->json == NULL) {
            reject(c, 503, "server-busy", "Server busy", "The server is short of memory.");
            return -1;
        }
    }
    return 0;
}

/* ---- libmicrohttpd callbacks -------------------------------------------- */

/*
 * Sees the raw request target before libmicrohttpd decodes it: its length,
 * and escapes that would decode to a control byte (libmicrohttpd's decoder
 * would cut "/healthz%00x" to "/healthz") or are malformed.  The verdict
 * travels as con_cls to the first call of on_request.
 */
static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    size_t i;

    (void)cls;
    (void)conn;
    for (i = 0; uri[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)uri[i];

        if (i >= HTTP_MAX_URL_BYTES)
            return &uri_long_tag;
        if (ch <= 0x20 || ch >= 0x7f)
            return &uri_bad_tag;
        if (ch == '%') {
            int hi = hexval((unsigned char)uri[i + 1]);
            int lo = hi < 0 ? -1 : hexval((unsigned char)uri[i + 2]);
            int v = hi * 16 + lo;

            if (hi < 0 || lo < 0 || v < 0x20 || v == 0x7f)
                return &uri_bad_tag;
            if (i + 2 >= HTTP_MAX_URL_BYTES)      /* the escape's end counts too */
                return &uri_long_tag;
            i += 2;
        }
    }
    return &uri_ok_tag;
}

static void
link_inflight(struct http_server *s, struct http_ctx *c)
{
    pthread_mutex_lock(&s->mu);
    c->next = s->inflight;
    if (s->inflight != NULL)
        s->inflight->prev = c;
    s->inflight = c;
    s->ninflight++;
    pthread_mutex_unlock(&s->mu);
}

static void
unlink_inflight(struct http_server *s, struct http_ctx *c)
{
    pthread_mutex_lock(&s->mu);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->inflight = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (--s->ninflight == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

static enum MHD_Result
begin(struct http_server *s, struct MHD_Connection *conn, const char *url,
      const char *method, void **con_cls)
{
    void *tag = *con_cls;
    struct http_ctx *c;

    c = calloc(1, sizeof *c);
    if (c == NULL)
        return MHD_NO;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return MHD_NO;
    }
    c->refs = 1;
    c->state = RS_INTAKE;
    c->srv = s;
    c->conn = conn;
    c->tls = s->tls;
    c->id = s->id_base + atomic_fetch_add(&s->next_id, 1);
    snprintf(c->idhex, sizeof c->idhex, "%016" PRIx64, c->id);
    clock_gettime(CLOCK_MONOTONIC, &c->t0);
    *con_cls = c;
    link_inflight(s, c);

    intake(s, c, url, method, tag);
    if (c->early && c->has_body)
        return queue_stored(c);
    return MHD_YES;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
           const char *method, const char *version, const char *upload_data,
           size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct http_ctx *c = *con_cls;
    enum req_state st;

    (void)version;
    if (c == NULL || is_tag(c))
        return begin(s, conn, url, method, con_cls);
    if (*upload_data_size != 0)
        return take_body(c, upload_data, upload_data_size);

    pthread_mutex_lock(&c->mu);
    st = c->state;
    pthread_mutex_unlock(&c->mu);
    switch (st) {
    case RS_INTAKE:
        if (c->early || prepare_body(c) != 0)
            return queue_stored(c);
        pthread_mutex_lock(&c->mu);
        c->state = RS_IN_HANDLER;
        pthread_mutex_unlock(&c->mu);
        c->route->fn(c, c->builtin ? NULL : s->app);
        return after_handler(c);
    case RS_RESUMING:
        return queue_stored(c);
    case RS_SUSPENDED:
        return MHD_YES;                 /* not resumed yet: nothing to do */
    default:
        log_kv(LOG_ERROR, "http: unexpected call, closing", "request_id", c->idhex,
               (const char *)NULL);
        return MHD_NO;
    }
}

static size_t
status_index(unsigned status)
{
    size_t i;

    for (i = 0; i < NSTATUS - 1; i++)
        if (status_codes[i] == status)
            return i;
    return NSTATUS - 1;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_ctx *c = *con_cls;
    int last;

    (void)conn;
    (void)toe;
    if (c == NULL || is_tag(c))
        return;
    *con_cls = NULL;
    if (c->sent != 0) {
        struct route_stats *rs = &s->stats[c->ri];
        double secs = elapsed_s(&c->t0);
        uint64_t us = secs > 0 ? (uint64_t)(secs * 1e6) : 0;
        size_t b;
        char ms[32], status[8];

        for (b = 0; b < NBUCKETS && us > bucket_us[b]; b++)
            ;
        atomic_fetch_add_explicit(&rs->status[status_index(c->sent)], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&rs->bucket[b], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&rs->sum_us, us, memory_order_relaxed);
        atomic_fetch_add_explicit(&rs->count, 1, memory_order_relaxed);
        snprintf(ms, sizeof ms, "%.3f", secs * 1e3);
        snprintf(status, sizeof status, "%u", c->sent);
        log_kv(LOG_DEBUG, "http request", "request_id", c->idhex,
               "method", c->route != NULL ? c->route->method : "-",
               "route", c->route != NULL ? c->route->name : "unknown",
               "status", status, "ms", ms, (const char *)NULL);
    } else
        atomic_fetch_add_explicit(&s->aborted, 1, memory_order_relaxed);
    atomic_fetch_sub(&s->body_inuse, c->reserved);
    c->reserved = 0;
    unlink_inflight(s, c);

    pthread_mutex_lock(&c->mu);
    c->state = RS_DONE;
    last = --c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (last)
        ctx_free(c);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) PRINTF(2, 0);

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_kv(LOG_WARN, "http: libmicrohttpd", "detail", msg, (const char *)NULL);
}

/* ---- the request API ---------------------------------------------------- */

struct http_server *http_server_of(const struct http_ctx *c) { return c->srv; }
const char *http_method(const struct http_ctx *c) { return c->method; }
const char *http_path(const struct http_ctx *c) { return c->path; }
const char *http_path_rest(const struct http_ctx *c) { return c->rest != NULL ? c->rest : ""; }
const char *http_client_addr(const struct http_ctx *c) { return c->addr; }
json_t *http_json(const struct http_ctx *c) { return c->json; }
uint64_t http_request_id(const struct http_ctx *c) { return c->id; }
int http_is_plain_loopback(const struct http_ctx *c) { return c->plain_loopback; }

const char *
http_param(const struct http_ctx *c, const char *name)
{
    const char *v = kvs_get(&c->form, name, 0);

    return v != NULL ? v : kvs_get(&c->query, name, 0);
}

const char *
http_header(const struct http_ctx *c, const char *name)
{
    return kvs_get(&c->headers, name, 1);
}

const char *
http_cookie(const struct http_ctx *c, const char *name)
{
    return kvs_get(&c->cookies, name, 0);
}

const char *
http_bearer(const struct http_ctx *c)
{
    const char *v = http_header(c, "Authorization"), *t;
    size_t i;

    if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0)
        return NULL;
    t = v + 7;
    while (*t == ' ')
        t++;
    /* token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
    for (i = 0; t[i] != '\0' && t[i] != '='; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
              (t[i] >= '0' && t[i] <= '9') || strchr("-._~+/", t[i]) != NULL))
            return NULL;
    if (i == 0)
        return NULL;
    while (t[i] == '=')
        i++;
    return t[i] == '\0' ? t : NULL;
}

const uint8_t *
http_body(const struct http_ctx *c, size_t *len)
{
    *len = c->blen;
    return c->blen > 0 ? c->body : NULL;
}

int
http_json_only(const json_t *obj, const char *const *allowed)
{
    const char *k;
    json_t *v;
    size_t i;

    if (!json_is_object(obj) || allowed == NULL)
        return -1;
    json_object_foreach((json_t *)obj, k, v) {
        for (i = 0; allowed[i] != NULL; i++)
            if (strcmp(k, allowed[i]) == 0)
                break;
        if (allowed[i] == NULL)
            return -1;
    }
    return 0;
}

/* ---- answering ---------------------------------------------------------- */

void
http_add_header(struct http_ctx *c, const char *name, const char *value)
{
    static const char *const ours[] = {
        "Content-Type", "Content-Length", "Content-Security-Policy",
        "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options",
        "X-Request-Id", "Strict-Transport-Security", "Connection",
        "Transfer-Encoding", "Date", NULL,
    };
    size_t i;
    char *n, *v;

    if (name == NULL || value == NULL || !header_name_ok(name) || !header_value_ok(value)) {
        log_kv(LOG_ERROR, "http: invalid extra header dropped", "request_id", c->idhex,
               (const char *)NULL);
        return;
    }
    for (i = 0; ours[i] != NULL; i++)
        if (strcasecmp(name, ours[i]) == 0) {
            log_kv(LOG_ERROR, "http: extra header set by the server dropped",
                   "request_id", c->idhex, "header", ours[i], (const char *)NULL);
            return;
        }
    if (c->nextra == HTTP_MAX_EXTRA_HEADERS) {
        log_kv(LOG_ERROR, "http: too many extra headers, one dropped",
               "request_id", c->idhex, (const char *)NULL);
        return;
    }
    n = strdup(name);
    v = strdup(value);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        return;
    }
    c->extra[c->nextra].name = n;
    c->extra[c->nextra].value = v;
    c->nextra++;
}

void
http_reply_json(struct http_ctx *c, unsigned status, json_t *body)
{
    char *txt;

    if (body == NULL)
        body = json_object();
    txt = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (txt == NULL) {
        deliver(c, 503, make_problem(c, 503, "server-busy", "Server busy",
                                     "The server is short of memory.", 1));
        return;
    }
    status = clamp_status(status);
    deliver(c, status, make_response(c, "application/json", txt, strlen(txt)));
}

void
http_reply_problem(struct http_ctx *c, unsigned status, const char *type,
                   const char *title, const char *detail, unsigned retry_after_s)
{
    status = clamp_status(status);
    deliver(c, status, make_problem(c, status, type, title, detail, retry_after_s));
}

void
http_reply_text(struct http_ctx *c, unsigned status, const char *content_type,
                const char *body, size_t len)
{
    char *copy = NULL;

    if (len > 0) {
        copy = malloc(len);
        if (copy == NULL) {
            deliver(c, 503, make_problem(c, 503, "server-busy", "Server busy",
                                         "The server is short of memory.", 1));
            return;
        }
        memcpy(copy, body, len);
    }
    status = clamp_status(status);
    deliver(c, status, make_response(c, content_type, copy, len));
}

unsigned
http_status_of(enum cf_err rc)
{
    switch (rc) {
    case CF_OK:           return 200;
    case CF_ERR_INPUT:    return 400;
    case CF_ERR_AUTH:     return 401;
    case CF_ERR_DENIED:   return 403;
    case CF_ERR_NOTFOUND: return 404;
    case CF_ERR_EXISTS:   return 409;
    case CF_ERR_LIMIT:    return 503;   /* a queue is full (pwhash, audit): retry */
    case CF_ERR_NOMEM:    return 503;
    case CF_ERR_STORE:    return 503;
    case CF_ERR_CRYPTO:   return 500;
    case CF_ERR_IO:       return 500;
    }
    return 500;
}

void
http_reply_error(struct http_ctx *c, enum cf_err rc, const char *detail)
{
    static const struct { enum cf_err rc; const char *type, *title; unsigned retry; } t[] = {
        { CF_ERR_INPUT,    "invalid-input",  "Invalid input", 0 },
        { CF_ERR_AUTH,     "unauthorized",   "Unauthorized", 0 },
        { CF_ERR_DENIED,   "forbidden",      "Forbidden", 0 },
        { CF_ERR_NOTFOUND, "not-found",      "Not found", 0 },
        { CF_ERR_EXISTS,   "conflict",       "Conflict", 0 },
        { CF_ERR_LIMIT,    "overloaded",     "Overloaded", 1 },
        { CF_ERR_NOMEM,    "server-busy",    "Server busy", 1 },
        { CF_ERR_STORE,    "unavailable",    "Service unavailable", 5 },
        { CF_ERR_CRYPTO,   "internal-error", "Internal error", 0 },
        { CF_ERR_IO,       "internal-error", "Internal error", 0 },
    };
    size_t i;

    for (i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].rc == rc) {
            http_reply_problem(c, http_status_of(rc), t[i].type, t[i].title,
                               detail, t[i].retry);
            return;
        }
    /* CF_OK is not an error: a bug in the caller */
    http_reply_problem(c, 500, "internal-error", "Internal error", detail, 0);
}

void
http_defer(struct http_ctx *c)
{
    pthread_mutex_lock(&c->mu);
    if (c->state == RS_IN_HANDLER && !c->replied && !c->deferred) {
        c->deferred = 1;
        c->refs++;
    }
    pthread_mutex_unlock(&c->mu);
}

/* ---- built-in routes ---------------------------------------------------- */

static void
builtin_healthz(struct http_ctx *c, void *app)
{
    struct http_server *s = http_server_of(c);
    int ok = s->health == NULL || s->health(s->app) == CF_OK;

    (void)app;
    http_reply_json(c, ok ? 200 : 503,
                    json_pack("{s:s}", "status", ok ? "ok" : "failing"));
}

struct sb {
    char *p;
    size_t len, cap;
    int err;
};

static void sb_printf(struct sb *b, const char *fmt, ...) PRINTF(2, 3);

static void
sb_printf(struct sb *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->err)
        return;
    for (;;) {
        size_t room = b->cap - b->len;

        va_start(ap, fmt);
        n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->err = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        {
            size_t cap = b->cap > 0 ? b->cap * 2 : 4096;
            char *np;

            while (cap < b->len + (size_t)n + 1)
                cap *= 2;
            if (cap > METRICS_PAGE_MAX) {
                b->err = 1;
                return;
            }
            np = realloc(b->p, cap);
            if (np == NULL) {
                b->err = 1;
                return;
            }
            b->p = np;
            b->cap = cap;
        }
    }
}

static void
render_app_metrics(struct http_server *s, struct sb *b)
{
    static const char *const kind_name[] = { "counter", "gauge", "gauge" };
    struct app_metric *snap;
    size_t n, i, j;

    /* copy under the lock, call gauge functions and print outside it */
    snap = malloc(sizeof s->metrics);
    if (snap == NULL) {
        b->err = 1;
        return;
    }
    pthread_mutex_lock(&s->mmu);
    n = s->nmetrics;
    memcpy(snap, s->metrics, n * sizeof snap[0]);
    pthread_mutex_unlock(&s->mmu);
    for (i = 0; i < n; i++) {
        int first = 1;

        for (j = 0; j < i; j++)
            if (strcmp(snap[j].name, snap[i].name) == 0)
                first = 0;
        if (!first)
            continue;               /* printed with its family */
        if (snap[i].help[0] != '\0')
            sb_printf(b, "# HELP %s %s\n", snap[i].name, snap[i].help);
        sb_printf(b, "# TYPE %s %s\n", snap[i].name, kind_name[snap[i].kind]);
        for (j = i; j < n; j++) {
            uint64_t v;

            if (strcmp(snap[j].name, snap[i].name) != 0)
                continue;
            v = snap[j].kind == METRIC_GAUGE_FN ? snap[j].fn(snap[j].arg) : snap[j].v;
            if (snap[j].label[0] != '\0')
                sb_printf(b, "%s{%s} %" PRIu64 "\n", snap[j].name, snap[j].label, v);
            else
                sb_printf(b, "%s %" PRIu64 "\n", snap[j].name, v);
        }
    }
    free(snap);
}

static void
builtin_metrics(struct http_ctx *c, void *app)
{
    struct http_server *s = http_server_of(c);
    struct sb b = { NULL, 0, 0, 0 };
    const union MHD_DaemonInfo *di;
    size_t r, i;
    size_t inflight;

    (void)app;
    sb_printf(&b, "# HELP coffre_http_requests_total HTTP requests answered, by route and status.\n"
                  "# TYPE coffre_http_requests_total counter\n");
    for (r = 0; r <= s->nroutes; r++) {
        const char *name = r == 0 ? "unknown" : s->routes[r - 1].name;

        for (i = 0; i < NSTATUS; i++) {
            uint64_t v = atomic_load_explicit(&s->stats[r].status[i], memory_order_relaxed);

            if (v == 0)
                continue;
            if (i < NSTATUS - 1)
                sb_printf(&b, "coffre_http_requests_total{route=\"%s\",status=\"%u\"} %" PRIu64 "\n",
                          name, status_codes[i], v);
            else
                sb_printf(&b, "coffre_http_requests_total{route=\"%s\",status=\"other\"} %" PRIu64 "\n",
                          name, v);
        }
    }
    sb_printf(&b, "# HELP coffre_http_request_duration_seconds From request headers to response sent.\n"
                  "# TYPE coffre_http_request_duration_seconds histogram\n");
    for (r = 0; r <= s->nroutes; r++) {
        const char *name = r == 0 ? "unknown" : s->routes[r - 1].name;
        uint64_t count = atomic_load_explicit(&s->stats[r].count, memory_order_relaxed);
        uint64_t cum = 0;

        if (count == 0)
            continue;
        for (i = 0; i < NBUCKETS; i++) {
            cum += atomic_load_explicit(&s->stats[r].bucket[i], memory_order_relaxed);
            sb_printf(&b, "coffre_http_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"} %" PRIu64 "\n",
                      name, bucket_le[i], cum);
        }
        cum += atomic_load_explicit(&s->stats[r].bucket[NBUCKETS], memory_order_relaxed);
        sb_printf(&b, "coffre_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                  name, cum);
        sb_printf(&b, "coffre_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name,
                  (double)atomic_load_explicit(&s->stats[r].sum_us, memory_order_relaxed) / 1e6);
        sb_printf(&b, "coffre_http_request_duration_seconds_count{route=\"%s\"} %" PRIu64 "\n",
                  name, cum);
    }
    pthread_mutex_lock(&s->mu);
    inflight = s->ninflight;
    pthread_mutex_unlock(&s->mu);
    di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    sb_printf(&b, "# HELP coffre_http_requests_aborted_total Requests closed before a response was sent.\n"
                  "# TYPE coffre_http_requests_aborted_total counter\n"
                  "coffre_http_requests_aborted_total %" PRIu64 "\n"
                  "# HELP coffre_http_requests_in_flight Requests received and not yet completed.\n"
                  "# TYPE coffre_http_requests_in_flight gauge\n"
                  "coffre_http_requests_in_flight %zu\n"
                  "# HELP coffre_http_connections Open client connections.\n"
                  "# TYPE coffre_http_connections gauge\n"
                  "coffre_http_connections %u\n"
                  "# HELP coffre_http_body_bytes_buffered Request body bytes held in memory.\n"
                  "# TYPE coffre_http_body_bytes_buffered gauge\n"
                  "coffre_http_body_bytes_buffered %zu\n",
              atomic_load(&s->aborted), inflight,
              di != NULL ? di->num_connections : 0u, atomic_load(&s->body_inuse));
    render_app_metrics(s, &b);
    if (b.err) {
        free(b.p);
        http_reply_problem(c, 503, "server-busy", "Server busy",
                           "The metrics page could not be built.", 1);
        return;
    }
    deliver(c, 200, make_response(c, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len));
}

/* ---- application metrics ------------------------------------------------ */

static int
metric_name_ok(const char *s)
{
    size_t i;

    if (s == NULL || s[0] == '\0' || strlen(s) > 63)
        return 0;
    for (i = 0; s[i] != '\0'; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
              ch == ':' || (i > 0 && ch >= '0' && ch <= '9')))
            return 0;
    }
    return 1;
}

/* "key=value" into key="value"; 0 on success. */
static int
metric_label(const char *label, char out[128])
{
    const char *eq;
    size_t klen, i;

    out[0] = '\0';
    if (label == NULL)
        return 0;
    eq = strchr(label, '=');
    if (eq == NULL || eq == label || strlen(label) > 100)
        return -1;
    klen = (size_t)(eq - label);
    for (i = 0; i < klen; i++) {
        char ch = label[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
              (i > 0 && ch >= '0' && ch <= '9')))
            return -1;
    }
    for (i = 1; eq[i] != '\0'; i++) {
        char ch = eq[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || strchr("_.:-", ch) != NULL))
            return -1;
    }
    snprintf(out, 128, "%.*s=\"%s\"", (int)klen, label, eq + 1);
    return 0;
}

/* The series (name, label) of kind, created if new; NULL when refused.
 * Called with s->mmu held. */
static struct app_metric *
metric_find(struct http_server *s, const char *name, const char *label,
            enum metric_kind kind)
{
    char lab[128];
    size_t i;

    if (!metric_name_ok(name) || metric_label(label, lab) != 0 ||
        strncmp(name, "coffre_http_", 12) == 0) {
        log_kv(LOG_ERROR, "http: metric refused: bad name or label",
               "name", metric_name_ok(name) ? name : "", (const char *)NULL);
        return NULL;
    }
    for (i = 0; i < s->nmetrics; i++) {
        struct app_metric *m = &s->metrics[i];

        if (strcmp(m->name, name) != 0)
            continue;
        if ((m->kind == METRIC_COUNTER) != (kind == METRIC_COUNTER)) {
            log_kv(LOG_ERROR, "http: metric refused: counter and gauge share a name",
                   "name", name, (const char *)NULL);
            return NULL;
        }
        if (strcmp(m->label, lab) == 0)
            return m;
    }
    if (s->nmetrics == HTTP_MAX_APP_METRICS) {
        if (!s->metrics_full_logged)
            log_kv(LOG_ERROR, "http: too many metric series, new ones dropped",
                   "name", name, (const char *)NULL);
        s->metrics_full_logged = 1;
        return NULL;
    }
    s->metrics[s->nmetrics].kind = kind;
    snprintf(s->metrics[s->nmetrics].name, sizeof s->metrics[0].name, "%s", name);
    memcpy(s->metrics[s->nmetrics].label, lab, sizeof lab);
    return &s->metrics[s->nmetrics++];
}

void
http_metric_add(struct http_server *s, const char *name, const char *label, uint64_t n)
{
    struct app_metric *m;

    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mmu);
    m = metric_find(s, name, label, METRIC_COUNTER);
    if (m != NULL)
        m->v += n;
    pthread_mutex_unlock(&s->mmu);
}

void
http_metric_gauge(struct http_server *s, const char *name, uint64_t v)
{
    struct app_metric *m;

    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mmu);
    m = metric_find(s, name, NULL, METRIC_GAUGE);
    if (m != NULL && m->kind == METRIC_GAUGE)
        m->v = v;
    pthread_mutex_unlock(&s->mmu);
}

enum cf_err
http_metric_gauge_fn(struct http_server *s, const char *name, const char *help,
                     uint64_t (*fn)(void *), void *arg)
{
    struct app_metric *m;
    size_t i;

    if (s == NULL || fn == NULL)
        return CF_ERR_INPUT;
    if (help != NULL) {
        if (strlen(help) >= sizeof m->help)
            return CF_ERR_INPUT;
        for (i = 0; help[i] != '\0'; i++)
            if (help[i] < 0x20 || help[i] > 0x7e || help[i] == '\\')
                return CF_ERR_INPUT;
    }
    pthread_mutex_lock(&s->mmu);
    for (i = 0; i < s->nmetrics; i++)
        if (strcmp(s->metrics[i].name, name) == 0) {
            pthread_mutex_unlock(&s->mmu);
            return CF_ERR_EXISTS;
        }
    m = metric_find(s, name, NULL, METRIC_GAUGE_FN);
    if (m != NULL) {
        m->fn = fn;
        m->arg = arg;
        snprintf(m->help, sizeof m->help, "%s", help != NULL ? help : "");
    }
    pthread_mutex_unlock(&s->mmu);
    return m != NULL ? CF_OK : CF_ERR_INPUT;
}

/* ---- start -------------------------------------------------------------- */

/* "1.2.3.4:80" or "[::1]:80" into ss; numeric only. */
static enum cf_err
parse_listen(const char *spec, struct sockaddr_storage *ss, struct ipaddr *ip,
             unsigned *port, struct cf_errmsg *em)
{
    const char *host, *colon;
    size_t hlen;
    uint64_t p;

    if (spec == NULL || strlen(spec) > 64)
        return cf_fail(em, CF_ERR_INPUT, "http: listen address missing or too long");
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');

        if (close == NULL || close[1] != ':')
            return cf_fail(em, CF_ERR_INPUT, "http: listen '%s': want [ipv6]:port", spec);
        host = spec + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
        if (memchr(host, ':', hlen) == NULL)
            return cf_fail(em, CF_ERR_INPUT, "http: listen '%s': not an IPv6 address", spec);
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL)
            return cf_fail(em, CF_ERR_INPUT, "http: listen '%s': want address:port", spec);
        host = spec;
        hlen = (size_t)(colon - spec);
        if (memchr(host, ':', hlen) != NULL)
            return cf_fail(em, CF_ERR_INPUT, "http: listen '%s': IPv6 goes in brackets", spec);
    }
    if (parse_uint(colon + 1, strlen(colon + 1), 65535, &p) != 0)
        return cf_fail(em, CF_ERR_INPUT, "http: listen '%s': port must be 0-65535", spec);
    if (ip_parse(host, hlen, ip) != 0 ||
        (spec[0] == '[') != (ip->family == AF_INET6))
        return cf_fail(em, CF_ERR_INPUT, "http: listen '%s': not a numeric IP address", spec);
    memset(ss, 0, sizeof *ss);
    if (ip->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)(void *)ss;

        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)p);
        memcpy(&in->sin_addr, ip->a, 4);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)ss;

        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
        memcpy(&in6->sin6_addr, ip->a, 16);
    }
    *port = (unsigned)p;
    return CF_OK;
}

/* Reads a PEM file (at most HTTP_TLS_PEM_MAX_BYTES) NUL-terminated into
 * sodium_malloc memory when secret, else malloc. */
static enum cf_err
read_pem(const char *path, const char *what, int secret, char **out,
         struct cf_errmsg *em)
{
    struct stat st;
    char *buf;
    size_t got = 0;
    ssize_t n;
    int fd;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return cf_fail(em, CF_ERR_IO, "http: cannot read %s '%s': %s", what, path,
                       strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_size > (off_t)HTTP_TLS_PEM_MAX_BYTES) {
        close(fd);
        return cf_fail(em, CF_ERR_IO, "http: %s '%s' is not a file of 1 to %u bytes",
                       what, path, HTTP_TLS_PEM_MAX_BYTES);
    }
    buf = secret ? sodium_malloc((size_t)st.st_size + 1) : malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return cf_fail(em, CF_ERR_NOMEM, "http: out of memory reading %s", what);
    }
    while (got < (size_t)st.st_size) {
        n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    if (got != (size_t)st.st_size || strstr(buf, "-----BEGIN ") == NULL) {
        if (secret)
            sodium_free(buf);
        else
            free(buf);
        return cf_fail(em, CF_ERR_IO, "http: %s '%s' is not PEM", what, path);
    }
    *out = buf;
    return CF_OK;
}

static void
server_free(struct http_server *s)
{
    if (s == NULL)
        return;
    if (s->key != NULL)
        sodium_free(s->key);            /* wipes it */
    free(s->cert);
    free(s->routes);
    free(s->stats);
    free(s->proxies);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mmu);
    free(s);
}

static enum cf_err
check_routes(const struct http_opts *o, struct cf_errmsg *em)
{
    size_t i, j, k;

    if (o->nroutes > 0 && o->routes == NULL)
        return cf_fail(em, CF_ERR_INPUT, "http: routes missing");
    for (i = 0; i < o->nroutes; i++) {
        const struct http_route *r = &o->routes[i];

        if (r->method == NULL || r->method[0] == '\0' || r->path == NULL ||
            r->path[0] != '/' || r->fn == NULL || r->name == NULL || r->name[0] == '\0')
            return cf_fail(em, CF_ERR_INPUT, "http: route %zu incomplete", i);
        if (strchr(r->path, '*') != NULL &&
            (strlen(r->path) < 2 || strchr(r->path, '*') != r->path + strlen(r->path) - 1 ||
             r->path[strlen(r->path) - 2] != '/'))
            return cf_fail(em, CF_ERR_INPUT, "http: route '%s': '*' only after a final '/'",
                           r->name);
        for (k = 0; r->name[k] != '\0'; k++)
            if (!((r->name[k] >= 'a' && r->name[k] <= 'z') ||
                  (r->name[k] >= '0' && r->name[k] <= '9') || r->name[k] == '_') || k >= 63)
                return cf_fail(em, CF_ERR_INPUT, "http: route %zu: name must be [a-z0-9_]{1,63}", i);
        if (strcmp(r->name, "unknown") == 0)
            return cf_fail(em, CF_ERR_INPUT, "http: route name 'unknown' is reserved");
        for (j = 0; j < NBUILTINS; j++)
            if (strcmp(r->path, builtins[j].path) == 0 || strcmp(r->name, builtins[j].name) == 0)
                return cf_fail(em, CF_ERR_INPUT, "http: route '%s' is built in", r->name);
        for (j = 0; j < i; j++)
            if ((strcmp(r->path, o->routes[j].path) == 0 &&
                 strcmp(r->method, o->routes[j].method) == 0) ||
                strcmp(r->name, o->routes[j].name) == 0)
                return cf_fail(em, CF_ERR_INPUT, "http: route '%s' defined twice", r->name);
    }
    return CF_OK;
}

enum cf_err
http_start(const struct http_opts *o, struct http_server **out, struct cf_errmsg *em)
{
    struct sockaddr_storage ss;
    struct ipaddr lip;
    struct http_server *s = NULL;
    struct MHD_OptionItem ops[16];
    const union MHD_DaemonInfo *di;
    unsigned port = 0, flags, threads, nops = 0;
    enum cf_err rc;
    size_t i;
    char portstr[8];

    if (out != NULL)
        *out = NULL;
    if (o == NULL || out == NULL)
        return cf_fail(em, CF_ERR_INPUT, "http: no options");
    if ((rc = parse_listen(o->listen, &ss, &lip, &port, em)) != CF_OK)
        return rc;
    if ((o->tls_cert == NULL) != (o->tls_key == NULL))
        return cf_fail(em, CF_ERR_INPUT, "http: tls_cert and tls_key go together");
    if (o->tls_cert == NULL && !o->insecure_http && !ip_is_loopback(&lip))
        return cf_fail(em, CF_ERR_DENIED,
                       "http: plain HTTP on non-loopback '%s' refused: give a TLS "
                       "certificate and key, or allow insecure HTTP behind a "
                       "TLS-terminating proxy", o->listen);
    if ((rc = check_routes(o, em)) != CF_OK)
        return rc;
    if (sodium_init() < 0)
        return cf_fail(em, CF_ERR_CRYPTO, "http: libsodium failed to start");

    s = calloc(1, sizeof *s);
    if (s == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "http: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->idle, NULL);
    pthread_mutex_init(&s->mmu, NULL);
    s->listen_fd = -1;
    s->app = o->app;
    s->health = o->health;
    s->tls = o->tls_cert != NULL;
    s->loopback = ip_is_loopback(&lip);
    s->shutdown_s = o->shutdown_s > 0 ? o->shutdown_s : HTTP_DEFAULT_SHUTDOWN_S;
    s->body_budget = o->body_budget > 0 ? o->body_budget : HTTP_DEFAULT_BODY_BUDGET;
    s->nroutes = NBUILTINS + o->nroutes;
    s->routes = calloc(s->nroutes, sizeof *s->routes);
    s->stats = calloc(s->nroutes + 1, sizeof *s->stats);
    if (s->routes == NULL || s->stats == NULL) {
        rc = cf_fail(em, CF_ERR_NOMEM, "http: out of memory");
        goto fail;
    }
    memcpy(s->routes, builtins, sizeof builtins);
    if (o->nroutes > 0)
        memcpy(s->routes + NBUILTINS, o->routes, o->nroutes * sizeof *o->routes);
    for (i = 0; o->trusted_proxies != NULL && o->trusted_proxies[i] != NULL; i++)
        ;
    if (i > 0) {
        s->proxies = calloc(i, sizeof *s->proxies);
        if (s->proxies == NULL) {
            rc = cf_fail(em, CF_ERR_NOMEM, "http: out of memory");
            goto fail;
        }
        for (s->nproxies = 0; s->nproxies < i; s->nproxies++) {
            const char *p = o->trusted_proxies[s->nproxies];

            if (ip_parse(p, strlen(p), &s->proxies[s->nproxies]) != 0) {
                rc = cf_fail(em, CF_ERR_INPUT, "http: trusted proxy '%.64s' is not a numeric IP address", p);
                goto fail;
            }
        }
    }
    if (getrandom(&s->id_base, sizeof s->id_base, 0) != (ssize_t)sizeof s->id_base) {
        rc = cf_fail(em, CF_ERR_IO, "http: no randomness for request ids");
        goto fail;
    }
    s->id_base &= ~(uint64_t)0xffffffffu;   /* the low half counts requests */
    if (s->tls) {
        if ((rc = read_pem(o->tls_cert, "tls_cert", 0, &s->cert, em)) != CF_OK ||
            (rc = read_pem(o->tls_key, "tls_key", 1, &s->key, em)) != CF_OK)
            goto fail;
    }

    threads = o->threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        threads = n > 0 && n < 256 ? (unsigned)n : 1;
    }
    flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (lip.family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (s->tls)
        flags |= MHD_USE_TLS;
#define OPT(opt, val, ptr) do { ops[nops].option = (opt); ops[nops].value = (intptr_t)(val); \
                                ops[nops].ptr_value = (ptr); nops++; } while (0)
    OPT(MHD_OPTION_SOCK_ADDR, 0, &ss);
    OPT(MHD_OPTION_CONNECTION_LIMIT,
        o->max_connections > 0 ? o->max_connections : HTTP_DEFAULT_MAX_CONNECTIONS, NULL);
    OPT(MHD_OPTION_CONNECTION_TIMEOUT,
        o->timeout_s > 0 ? o->timeout_s : HTTP_DEFAULT_TIMEOUT_S, NULL);
    OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY_BYTES, NULL);
    OPT(MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL);
    if (threads > 1)
        OPT(MHD_OPTION_THREAD_POOL_SIZE, threads, NULL);
    if (o->max_per_ip > 0)
        OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_per_ip, NULL);
    if (s->tls) {
        OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert);
        OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, s->key);
        OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES);
    }
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT

    errno = 0;
    s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
                            MHD_OPTION_ARRAY, ops,
                            MHD_OPTION_END);
    if (s->d == NULL) {
        rc = cf_fail(em, CF_ERR_IO, "http: cannot serve on '%s'%s%s", o->listen,
                     errno != 0 ? ": " : " (see the log)", errno != 0 ? strerror(errno) : "");
        goto fail;
    }
    di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di != NULL ? di->port : port;
    snprintf(portstr, sizeof portstr, "%u", s->port);
    log_kv(LOG_INFO, "http: listening", "listen", o->listen, "port", portstr,
           "tls", s->tls ? "on" : "off", (const char *)NULL);
    *out = s;
    return CF_OK;
fail:
    server_free(s);
    return rc;
}

unsigned
http_port(const struct http_server *s)
{
    return s != NULL ? s->port : 0;
}

/* ---- shutdown ----------------------------------------------------------- */

/* Waits until no request is in flight or secs pass; 1 when idle. */
static int
wait_idle(struct http_server *s, unsigned secs)
{
    struct timespec until;
    int idle;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)secs;
    pthread_mutex_lock(&s->mu);
    while (s->ninflight > 0)
        if (pthread_cond_timedwait(&s->idle, &s->mu, &until) == ETIMEDOUT)
            break;
    idle = s->ninflight == 0;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

/* Stops accepting, lets in-flight requests finish within shutdown_s, then
 * answers the still-deferred ones 503 and stops the daemon. */
static void
drain(struct http_server *s)
{
    struct http_ctx **held = NULL;
    size_t n = 0, i;
    char count[24];

    if (s->stopped)
        return;
    atomic_store(&s->stopping, 1);
    s->listen_fd = MHD_quiesce_daemon(s->d);
    if (!wait_idle(s, s->shutdown_s)) {
        atomic_store(&s->forcing, 1);
        /* hold a reference on each so none is freed while we look */
        pthread_mutex_lock(&s->mu);
        held = calloc(s->ninflight > 0 ? s->ninflight : 1, sizeof *held);
        if (held != NULL) {
            struct http_ctx *c;

            for (c = s->inflight; c != NULL; c = c->next) {
                pthread_mutex_lock(&c->mu);
                c->refs++;
                pthread_mutex_unlock(&c->mu);
                held[n++] = c;
            }
        }
        pthread_mutex_unlock(&s->mu);
        snprintf(count, sizeof count, "%zu", n);
        log_kv(LOG_WARN, "http: shutdown grace over, answering deferred requests 503",
               "in_flight", count, (const char *)NULL);
        for (i = 0; i < n; i++) {
            struct http_ctx *c = held[i];
            int last;

            pthread_mutex_lock(&c->mu);
            if (c->state == RS_SUSPENDED) {
                c->forced = 1;
                c->status = 503;
                c->resp = make_problem(c, 503, "shutting-down", "Shutting down",
                                       "The server is stopping; try again shortly.", 1);
                c->state = RS_RESUMING;
                MHD_resume_connection(c->conn);
            }
            last = --c->refs == 0;
            pthread_mutex_unlock(&c->mu);
            if (last)
                ctx_free(c);
        }
        free(held);
        /* let the resumed connections send their 503 */
        wait_idle(s, 1);
    }
    MHD_stop_daemon(s->d);
    s->d = NULL;
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
    s->stopped = 1;
    log_kv(LOG_INFO, "http: stopped", (const char *)NULL);
}

void
http_stop(struct http_server *s)
{
    if (s == NULL)
        return;
    drain(s);
    server_free(s);
}

static volatile sig_atomic_t wake_fd = -1;

static void
on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;

    if (wake_fd >= 0)
        (void)!write(wake_fd, &b, 1);
    errno = saved;
}

void
http_wait(struct http_server *s)
{
    struct sigaction sa, old_term, old_int;
    int fds[2];
    unsigned char b = 0;
    ssize_t n;

    if (s == NULL || s->stopped)
        return;
    if (pipe(fds) != 0) {
        log_kv(LOG_ERROR, "http: no self-pipe, stopping now", (const char *)NULL);
        drain(s);
        return;
    }
    for (n = 0; n < 2; n++) {
        fcntl(fds[n], F_SETFD, FD_CLOEXEC);
        fcntl(fds[n], F_SETFL, O_NONBLOCK);
    }
    wake_fd = fds[1];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);
    /* The caller may have blocked these from start-up on, so that one
     * arriving before now waits for this handler instead of killing the
     * process: take them now. */
    {
        sigset_t set;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    }
    for (;;) {
        struct pollfd p = { fds[0], POLLIN, 0 };

        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            break;
        n = read(fds[0], &b, 1);
        if (n == 1)
            break;
    }
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    wake_fd = -1;
    close(fds[0]);
    close(fds[1]);
    log_kv(LOG_INFO, "http: signal received, draining",
           "signal", b == SIGTERM ? "SIGTERM" : b == SIGINT ? "SIGINT" : "other",
           (const char *)NULL);
    drain(s);
}
