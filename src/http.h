/*
 * http.h - the HTTP server: libmicrohttpd with its own thread pool and
 * epoll, one routing table, bounded requests, JSON bodies, problem
 * documents (RFC 9457), security headers, /healthz and /metrics.
 *
 * A handler gets a struct http_ctx for one request and must answer it
 * exactly once, with http_reply_json, http_reply_problem or
 * http_reply_text - either before it returns, or later from any thread
 * after calling http_defer (the connection is suspended meanwhile and no
 * pool thread waits: DESIGN.md section 8).  Everything reachable from ctx
 * stays valid until the reply.
 *
 * This module never opens a record, never checks a password and never
 * writes the audit trail: handlers do, through their modules.
 */
#ifndef COFFRE_HTTP_H
#define COFFRE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"

struct http_ctx;
struct http_server;

/* Route flags. */
#define HTTP_PREAUTH   0x1u    /* before authentication: tighter body limit */
#define HTTP_JSON_BODY 0x2u    /* body must be application/json (parsed for the handler) */
#define HTTP_FORM_BODY 0x4u    /* body must be application/x-www-form-urlencoded */

typedef void (*http_handler)(struct http_ctx *ctx, void *app);

struct http_route {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* exact path, or a prefix ending in '/' + '*' ("/api/v1/students/*") */
    unsigned flags;
    http_handler fn;
    const char *name;          /* metrics label: "login", "student_get" */
};

struct http_opts {
    const char *listen;                 /* "127.0.0.1:8080", "[::1]:8443" */
    unsigned threads;                   /* pool size; 0: number of CPUs */
    unsigned max_connections;           /* 0: default (bounds.h) */
    unsigned timeout_s;                 /* idle connection timeout (slowloris); 0: default */
    const char *tls_cert, *tls_key;     /* PEM files, both or neither */
    int insecure_http;                  /* allow plain HTTP on a non-loopback address */
    const char *const *trusted_proxies; /* NULL-terminated IP list; X-Forwarded-For trusted only from these */
    const struct http_route *routes;
    size_t nroutes;
    void *app;                          /* passed to every handler */
};

/* Starts serving.  Refuses plain HTTP on a non-loopback address unless
 * insecure_http (em says why).  Returns once listening. */
enum cf_err http_start(const struct http_opts *o, struct http_server **out,
                       struct cf_errmsg *em) WARN_UNUSED;

/* Blocks until SIGTERM or SIGINT (installed by http_start's caller via
 * http_wait), then stops accepting, lets in-flight requests finish (bounded
 * by the timeout), and returns. */
void http_wait(struct http_server *s);
void http_stop(struct http_server *s);           /* NULL is a no-op */

/* ---- the request ------------------------------------------------------ */

const char *http_method(const struct http_ctx *c);
const char *http_path(const struct http_ctx *c);
/* The part of the path after the route's prefix ("" when exact). */
const char *http_path_rest(const struct http_ctx *c);
/* Query or form parameter (decoded), NULL when absent. */
const char *http_param(const struct http_ctx *c, const char *name);
const char *http_header(const struct http_ctx *c, const char *name);
/* Cookie value by name, NULL when absent. */
const char *http_cookie(const struct http_ctx *c, const char *name);
/* The token of "Authorization: Bearer <token>", NULL when absent. */
const char *http_bearer(const struct http_ctx *c);
/* Client address: the socket's, or the last untrusted hop of
 * X-Forwarded-For when the socket's is a trusted proxy. */
const char *http_client_addr(const struct http_ctx *c);
/* Parsed JSON body (HTTP_JSON_BODY routes), borrowed. */
json_t *http_json(const struct http_ctx *c);
const uint8_t *http_body(const struct http_ctx *c, size_t *len);
uint64_t http_request_id(const struct http_ctx *c);
/* The connection is plain HTTP on loopback (cookies then omit Secure). */
int http_is_plain_loopback(const struct http_ctx *c);

/* ---- answering -------------------------------------------------------- */

/* Extra response headers, added to the next reply (bounded: 8). */
void http_add_header(struct http_ctx *c, const char *name, const char *value);

/* Takes ownership of body (may be NULL for an empty object). */
void http_reply_json(struct http_ctx *c, unsigned status, json_t *body);
/* RFC 9457 problem document: type is a stable slug ("invalid-credentials")
 * made into "https://coffre.invalid/problems/<slug>"; detail is shown to the
 * user and must never echo input; retry_after_s > 0 adds Retry-After. */
void http_reply_problem(struct http_ctx *c, unsigned status, const char *type,
                        const char *title, const char *detail,
                        unsigned retry_after_s);
void http_reply_text(struct http_ctx *c, unsigned status,
                     const char *content_type, const char *body, size_t len);

/* The status for a cf_err, in one place (STYLE.md section 4). */
unsigned http_status_of(enum cf_err rc);

/* Suspends the connection until a reply arrives from another thread. */
void http_defer(struct http_ctx *c);

/* ---- metrics ---------------------------------------------------------- */

/* Counters and gauges shown on /metrics beside the server's own (requests
 * by route and status, latency histogram). Thread-safe. */
void http_metric_add(struct http_server *s, const char *name,
                     const char *label, uint64_t n);
void http_metric_gauge(struct http_server *s, const char *name, uint64_t v);

#endif
