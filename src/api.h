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
    /* Second factors (docs/mfa.md). */
    int mfa_policy_set;                  /* 0: mfa_policy_default() */
    struct mfa_policy mfa;
    const char *webauthn_rp_id;          /* NULL: "localhost" */
    const char *webauthn_origins;        /* comma-separated; NULL: http://localhost:PORT and http://127.0.0.1:PORT */
};

/* The route table, one JSON object a line: method, pattern, name, flags,
 * auth (what a caller must have passed: none, session, partial, factor,
 * ready, admin, step-up, admin+step-up; docs/mfa.md). */
void api_routes_print(FILE *f);

/* Serves until SIGTERM or SIGINT, then drains and returns.  Takes the
 * data directory's lock: one server per data directory, and no audited
 * CLI command while it runs. */
enum cf_err api_serve(const struct api_opts *o, struct cf_errmsg *em) WARN_UNUSED;

#endif
