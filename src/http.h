/*
 * http.h - the HTTP server: libmicrohttpd with its own thread pool and
 * epoll, one routing table, bounded requests, JSON bodies, problem
 * documents (RFC 9457), security headers, /healthz and /metrics.
 *
 * A handler gets a struct http_ctx for one request and must answer it
 * exactly once, with http_reply_json, http_reply_problem, http_reply_error
 * or http_reply_text - either before it returns, or later from any thread
 * after calling http_defer (the connection is suspended meanwhile and no
 * pool thread waits: DESIGN.md section 8).  Everything reachable from ctx
 * is a copy owned by ctx and stays valid until the reply; after the reply
 * the ctx must not be touched again.  docs/http.md tells the whole model.
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

/* ---- limits (bounds.h style: each with its reason) --------------------- */

/* Request line plus every header line, raw bytes.  Browsers send under
 * 4 KiB with cookies; nginx's large_client_header_buffers is 8 KiB. */
#define HTTP_MAX_HEADER_BYTES   8192
/* Raw path plus query string, before percent-decoding.  Our ids are short
 * and nothing travels in URLs but ids and a few flags. */
#define HTTP_MAX_URL_BYTES      2048
/* Query or form fields, each: our forms have fewer than ten. */
#define HTTP_MAX_PARAMS         32
/* Body of an HTTP_PREAUTH route (sign-in, activation): a few short fields.
 * Tighter before authentication, as Redis does. */
#define HTTP_MAX_BODY_PREAUTH   4096
/* Body of any other route: a batch of record edits fits comfortably. */
#define HTTP_MAX_BODY           (1u << 20)
/* Nesting of a JSON body (objects and arrays): jansson recurses, and our
 * documents are three levels deep. */
#define HTTP_JSON_MAX_DEPTH     16
/* libmicrohttpd's memory pool per connection: the header block (above),
 * the read buffer for body chunks and the response headers. */
#define HTTP_CONN_MEMORY_BYTES  (64u * 1024)
/* Open connections when http_opts.max_connections is 0: each costs at
 * most HTTP_CONN_MEMORY_BYTES, so 512 bound the pools to 32 MiB. */
#define HTTP_DEFAULT_MAX_CONNECTIONS 512
/* Idle seconds before a connection is closed (a client sending its headers
 * slowly, or an idle keep-alive) when http_opts.timeout_s is 0. */
#define HTTP_DEFAULT_TIMEOUT_S  15
/* Seconds in-flight requests get to finish at shutdown when
 * http_opts.shutdown_s is 0: longer than an audit group commit by far,
 * shorter than a service manager's stop timeout (systemd: 90 s). */
#define HTTP_DEFAULT_SHUTDOWN_S 10
/* Request bodies buffered at once, all connections together, when
 * http_opts.body_budget is 0: 512 connections could otherwise pin
 * 512 MiB before any handler checks a session.  Over budget: 503. */
#define HTTP_DEFAULT_BODY_BUDGET (64u << 20)
/* Extra response headers a handler may add (cookies, Location...). */
#define HTTP_MAX_EXTRA_HEADERS  8
/* Longest extra header value: a session cookie with its attributes. */
#define HTTP_MAX_HEADER_VALUE   1024
/* Application metric series (name + label): label sets stay bounded. */
#define HTTP_MAX_APP_METRICS    64
/* TLS certificate chain or key file. */
#define HTTP_TLS_PEM_MAX_BYTES  (64u * 1024)

struct http_ctx;
struct http_server;

/* Route flags. */
#define HTTP_PREAUTH   0x1u    /* before authentication: HTTP_MAX_BODY_PREAUTH */
#define HTTP_JSON_BODY 0x2u    /* body must be application/json, a JSON object (parsed for the handler) */
#define HTTP_FORM_BODY 0x4u    /* body must be application/x-www-form-urlencoded (parsed: http_param) */
#define HTTP_APP_FLAGS 0xff00u /* the application's bits (api.c: a route's auth need); http ignores them */

/* Called on a pool thread once the whole request is in and passed the
 * checks above; must reply once (now, or later after http_defer). */
typedef void (*http_handler)(struct http_ctx *ctx, void *app);

/* The first route of the table (built-ins first) matching method and path
 * wins: put exact paths before the prefix routes they overlap. */
struct http_route {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* exact path, or a prefix: "/api/v1/students/" then '*' */
    unsigned flags;
    http_handler fn;
    const char *name;          /* metrics label, [a-z0-9_]{1,63}: "login", "student_get" */
};

struct http_opts {
    const char *listen;                 /* "127.0.0.1:8080", "[::1]:8443"; numeric only; port 0: any */
    unsigned threads;                   /* pool size; 0: number of CPUs */
    unsigned max_connections;           /* 0: HTTP_DEFAULT_MAX_CONNECTIONS */
    unsigned max_per_ip;                /* connections per client socket address; 0: no limit */
    unsigned timeout_s;                 /* idle connection timeout (slowloris); 0: default */
    unsigned shutdown_s;                /* grace for in-flight requests at stop; 0: default */
    size_t body_budget;                 /* bytes of bodies buffered at once; 0: default */
    const char *tls_cert, *tls_key;     /* PEM files, both or neither */
    int insecure_http;                  /* allow plain HTTP on a non-loopback address */
    const char *const *trusted_proxies; /* NULL-terminated IP list; X-Forwarded-For trusted only from these */
    const struct http_route *routes;    /* must outlive the server */
    size_t nroutes;
    void *app;                          /* passed to every handler */
    /* /healthz answers 200 while this returns CF_OK (NULL: always), 503
     * otherwise (e.g. audit_status failed).  Called on a pool thread. */
    enum cf_err (*health)(void *app);
};

/* Validates the options, binds and starts serving; returns once listening.
 * Refuses plain HTTP on a non-loopback address unless insecure_http, before
 * binding (CF_ERR_DENIED); bad options are CF_ERR_INPUT, unreadable TLS
 * files or a failed bind CF_ERR_IO.  em says which and why. */
enum cf_err http_start(const struct http_opts *o, struct http_server **out,
                       struct cf_errmsg *em) WARN_UNUSED;

/* The bound TCP port (useful with port 0). */
unsigned http_port(const struct http_server *s);

/* Installs handlers for SIGTERM and SIGINT (a self-pipe: the handler writes
 * one byte, so it works whichever thread takes the signal), blocks until
 * one arrives, restores the previous handlers (a second signal then acts
 * as before, e.g. kills at once), stops accepting, lets in-flight requests
 * finish (up to shutdown_s; then the still-deferred ones get 503) and stops
 * the daemon.  Call http_stop afterwards to free. */
void http_wait(struct http_server *s);
/* Drains and stops as http_wait does after its signal (if not done yet),
 * then frees the server.  NULL is a no-op. */
void http_stop(struct http_server *s);

/* ---- the request ------------------------------------------------------ */

struct http_server *http_server_of(const struct http_ctx *c);
const char *http_method(const struct http_ctx *c);
/* Percent-decoded path, without the query string. */
const char *http_path(const struct http_ctx *c);
/* The part of the path after the route's prefix ("" when exact). */
const char *http_path_rest(const struct http_ctx *c);
/* Form (HTTP_FORM_BODY) then query parameter, decoded; NULL when absent.
 * Values are valid UTF-8 without control characters; a repeated name
 * was refused with 400. */
const char *http_param(const struct http_ctx *c, const char *name);
/* First request header of that name (case-insensitive), NULL when absent. */
const char *http_header(const struct http_ctx *c, const char *name);
/* Cookie value by name, NULL when absent. */
const char *http_cookie(const struct http_ctx *c, const char *name);
/* The token of "Authorization: Bearer <token>", NULL when absent or not
 * a token68. */
const char *http_bearer(const struct http_ctx *c);
/* Client address (numeric): the socket's, or the last address of
 * X-Forwarded-For that is not a trusted proxy when the socket's is one. */
const char *http_client_addr(const struct http_ctx *c);
/* Parsed JSON body (HTTP_JSON_BODY routes: always an object; on
 * HTTP_FORM_BODY routes an object of the form's fields as strings),
 * borrowed; the handler may remove members. */
json_t *http_json(const struct http_ctx *c);
/* Raw body bytes (any route); *len set; NULL when empty. */
const uint8_t *http_body(const struct http_ctx *c, size_t *len);
uint64_t http_request_id(const struct http_ctx *c);
/* Plain HTTP on a loopback listener, not through a trusted proxy: a
 * developer's browser (cookies then omit Secure). */
int http_is_plain_loopback(const struct http_ctx *c);

/* 0 when obj is a JSON object whose keys are all in allowed (a
 * NULL-terminated list); -1 otherwise.  Handlers reject unknown fields. */
int http_json_only(const json_t *obj, const char *const *allowed);

/* ---- answering -------------------------------------------------------- */

/* Extra response header for the reply (at most HTTP_MAX_EXTRA_HEADERS;
 * Set-Cookie may repeat).  Copied.  A name that is not a token, a value
 * with control bytes or longer than HTTP_MAX_HEADER_VALUE, or one of the
 * headers this module sets (security headers, Content-Type, X-Request-Id;
 * Cache-Control may be overridden) is dropped and logged. */
void http_add_header(struct http_ctx *c, const char *name, const char *value);

/* Takes ownership of body (NULL sends {}). */
void http_reply_json(struct http_ctx *c, unsigned status, json_t *body);
/* RFC 9457 problem document: type is a stable slug ([a-z0-9-]+,
 * "invalid-credentials") made into "https://coffre.invalid/problems/<slug>";
 * detail is shown to the user and must never echo input; retry_after_s > 0
 * adds Retry-After. */
void http_reply_problem(struct http_ctx *c, unsigned status, const char *type,
                        const char *title, const char *detail,
                        unsigned retry_after_s);
/* The problem document for a cf_err (status: http_status_of). */
void http_reply_error(struct http_ctx *c, enum cf_err rc, const char *detail);
/* Copies body. */
void http_reply_text(struct http_ctx *c, unsigned status,
                     const char *content_type, const char *body, size_t len);

/* The status for a cf_err, in one place (STYLE.md section 4). */
unsigned http_status_of(enum cf_err rc);

/* Suspends the connection until a reply arrives from any thread.  Call it
 * in the handler, before handing ctx to another thread.  The ctx then lives
 * until that reply even if the server stops first (the client then got a
 * 503 and the late reply is dropped): a deferred ctx must always be
 * answered. */
void http_defer(struct http_ctx *c);

/* ---- metrics ---------------------------------------------------------- */

/* Counters and gauges shown on /metrics beside the server's own.
 * name: [a-zA-Z_:][a-zA-Z0-9_:]*, at most 63 bytes; label: NULL or
 * "key=value" (key [a-zA-Z_][a-zA-Z0-9_]*, value [A-Za-z0-9_.:-]*) - never
 * built from request data.  A series is created on first use; beyond
 * HTTP_MAX_APP_METRICS, or on a bad name, the call is dropped and logged.
 * Thread-safe; valid until http_stop. */
void http_metric_add(struct http_server *s, const char *name,
                     const char *label, uint64_t n);
void http_metric_gauge(struct http_server *s, const char *name, uint64_t v);
/* A gauge read at scrape time: fn(arg) is called on a pool thread for each
 * /metrics request, must be thread-safe and quick (no disk, no lock held
 * for long).  help: printable ASCII, may be NULL. */
enum cf_err http_metric_gauge_fn(struct http_server *s, const char *name,
                                 const char *help, uint64_t (*fn)(void *),
                                 void *arg) WARN_UNUSED;

#endif
