/*
 * api.h - `coffre serve`: the HTTP API of coffre, its route table and
 * handlers, and the running service around them (records handles, the
 * Argon2id pool, the audit trail, the HTTP server).
 */
#ifndef COFFRE_API_H
#define COFFRE_API_H

#include <stdint.h>
#include <stdio.h>

#include "audit.h"
#include "err.h"
#include "guard.h"
#include "mfa.h"

struct api_opts {
    const char *data_dir;
    const char *keyring_path;            /* NULL: DIR/keyring */
    const char *listen;                  /* "127.0.0.1:8080" */
    const char *tls_cert, *tls_key;
    int insecure_http;
    const char *const *trusted_proxies;  /* NULL-terminated, may be NULL */
    unsigned http_threads;               /* 0: CPUs */
    unsigned hash_workers;               /* 0: 2 */
    unsigned hash_queue;                 /* 0: 256 */
    unsigned long long hash_t;           /* 0: 2 */
    size_t hash_m;                       /* 0: 19 MiB */
    int64_t session_idle_s;              /* 0: 30 min */
    int64_t session_absolute_s;          /* 0: 12 h */
    unsigned password_min_bits;          /* 0: 50 */
    struct audit_opts audit;
    /* Throttling (0: the defaults of docs/signin.md). */
    uint32_t addr_free_failures;
    struct guard_opts guard;             /* from guard_opts_default, then flags */
    const char *alert_webhook;           /* NULL: none (alerts.h) */
    unsigned export_max_rows;            /* 0: API_EXPORT_ROWS_DEFAULT */
    /* Second factors (docs/mfa.md). */
    int mfa_policy_set;                  /* 0: mfa_policy_default() */
    struct mfa_policy mfa;
    const char *webauthn_rp_id;          /* NULL: "localhost" */
    const char *webauthn_origins;        /* comma-separated; NULL: http://localhost:PORT and http://127.0.0.1:PORT */
    /* Called once the socket is bound, the threads started and every
     * file open, before "serving" is logged (the privilege drop and the
     * seccomp filter: sandbox.h); an error stops the server.  NULL: none. */
    enum cf_err (*started)(void *arg, struct cf_errmsg *em);
    void *started_arg;
};

/* Pupils in one approved export: the largest establishments have ~4,000;
 * a bound on the file (a few MiB) and on the time one approval takes. */
#define API_EXPORT_ROWS_DEFAULT 5000u
#define API_EXPORT_ROWS_MAX     100000u

/* The route table (http's builtins, then the API's), one JSON object a
 * line: method, path, name, flags, auth (what a caller must have passed:
 * none, session, partial, factor, ready, admin, step-up, admin+step-up;
 * docs/mfa.md).  -1 when out of memory. */
int api_routes_print(FILE *f);

/* Serves until SIGTERM or SIGINT, then drains and returns.  Takes the
 * data directory's lock: one server per data directory, and no audited
 * CLI command while it runs. */
enum cf_err api_serve(const struct api_opts *o, struct cf_errmsg *em) WARN_UNUSED;

#endif
