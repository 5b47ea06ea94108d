/*
 * api_int.h - internal to the api files, included by them only (api.c,
 * api_signin.c, api_mfa.c, api_admin.c, api_records.c, api_pages.c); the
 * rest of coffre sees `coffre serve` through api.h alone.
 *
 * It owns what those files share: the running service (struct api), one
 * call waiting for its audit entry (struct call), what a route needs
 * (enum auth_need), the input bounds they all check, and the declarations
 * of the helpers and handlers one file defines and another calls (the route
 * table in api.c names every handler).  It never holds a definition of a
 * function, and nothing here is an interface for other modules.
 */
#ifndef COFFRE_API_INT_H
#define COFFRE_API_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "account.h"
#include "audit.h"
#include "http.h"
#include "mfa.h"
#include "pwhash.h"
#include "records.h"
#include "session.h"

/* Raw input bounds, checked before any work (STYLE.md section 7). */
#define API_LOGIN_MAX_BYTES  256
#define API_CODE_MAX_BYTES   64
#define API_SCOPE_MAX_BYTES  64

/* Pages a list may have (records' lists, alerts): a class or an
 * establishment's staff is far smaller than API_PAGES_MAX pages. */
#define API_PAGES_MAX 1000

/* ---- the service (api.c) ------------------------------------------------ */

/* Records handles: one per thread that may use one at a time (HTTP pool
 * threads and hash workers), so SQLite connections are never shared. */
struct rpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct records **free;
    size_t nfree, n;
};

struct api {
    struct rpool rp;
    struct pwhash_pool *pw;
    struct audit *audit;
    struct keyring *audit_kr;
    struct http_server *http;
    struct session_opts sess;
    struct throttle_policy th_account, th_address;
    unsigned min_bits;
    struct guard *guard;
    struct mfa_policy mfa;
    struct mfa_webauthn_opts wa;
    char wa_origins[MFA_ORIGINS_MAX][160];
    struct web *web;
    struct alerts *alerts;           /* alert rows and the webhook */
    int64_t block_ms;                /* the guard's address block */
    unsigned export_max_rows;
    const char *data_dir;           /* for scope: DIR/audit.db, DIR/audit-index.db */
    pthread_mutex_t scope_mu;       /* one scope at a time catches the index up */
};

/* A records handle of the pool, waiting for one if none is free; give it
 * back with release() on the same call path. */
struct records *acquire(struct api *api);
void release(struct api *api, struct records *r);
/* Wall-clock milliseconds (guard windows, throttles). */
int64_t now_ms(void);

/* ---- one call: the response waiting for its audit entry (api.c) ---------- */

struct webpage;

struct call {
    struct http_ctx *ctx;
    struct api *api;
    const struct webpage *page;            /* an HTML form or page: answered in HTML */
    struct audit_entry ae;
    /* the response */
    unsigned status;
    json_t *body;                          /* owned; NULL for a problem */
    const char *ptype, *ptitle;
    char pdetail[320];
    unsigned retry_after;
    char set_cookie[160];
    /* sign-in and activation, across the hash pool */
    struct pwhash_job job;
    int found;
    uint8_t k_login[THROTTLE_KEY_BYTES], k_addr[THROTTLE_KEY_BYTES];
    int want_token;
    int denied;                                    /* records the policy withheld */
    int carry_level;                               /* password change: the factor passed */
    int64_t carry_at;
    char new_password[PASSWORD_MAX_BYTES + 1];     /* until hashed */
    char *text;                                    /* a file answer (scope's CSV): owned, wiped */
    size_t text_len;
    /* last: the largest, and always filled before it is read (by
     * authenticate or an account lookup), so call_new leaves it alone */
    struct account acct;
};

/* Starts an async call (the connection suspended); NULL when answered 503. */
struct call *begin(struct http_ctx *ctx, void *app, const char *action);
/* Queues the audit entry; the response leaves once it is durable. */
void finish(struct call *c);
void set_problem(struct call *c, unsigned status, const char *type, const char *title,
                 const char *detail);
void set_json(struct call *c, unsigned status, json_t *body);
void ok(struct call *c, unsigned status, json_t *body);
void bad_request(struct call *c, const char *detail);
void unavailable(struct call *c);
/* A string member of the body, bounded in raw bytes; NULL when absent,
 * not a string, or too long. */
const char *str_member(json_t *body, const char *name, size_t max);

/* ---- authentication and signed-in requests (api.c) ------------------------ */

/*
 * What a route needs (also in the route table's flags, for `coffre routes`
 * and the test that walks every route):
 *   AUTH_NONE      nothing: before sign-in (login, activation)
 *   AUTH_ANY       a session of an active account (whoami, sign-out)
 *   AUTH_PARTIAL   the same, named for what a session that has not passed
 *                  its second factor may reach: enrollment, challenges, its
 *                  own sessions
 *   AUTH_FACTOR    the second factor passed if the account needs one
 *                  (password change: a reset is allowed)
 *   AUTH_READY     the second factor, and no password reset pending: every
 *                  records endpoint
 *   AUTH_ADMIN     AUTH_READY and an académie administrator
 *   AUTH_STEP_UP   AUTH_READY and a second factor passed within
 *                  --mfa-step-up-min (sensitive actions)
 *   AUTH_ADMIN_STEP_UP  both
 */
enum auth_need {
    AUTH_NONE, AUTH_ANY, AUTH_PARTIAL, AUTH_FACTOR, AUTH_READY, AUTH_ADMIN, AUTH_STEP_UP,
    AUTH_ADMIN_STEP_UP, AUTH_NEED_COUNT
};

typedef void (*signed_in_fn)(struct call *c, struct records *r, struct session *s);

/* 0 to go on; -1 with the call's problem set. */
int authenticate(struct call *c, struct records *r, enum auth_need need, struct session *s);
/* An address the guard blocked after an alert: -1 with the problem set. */
int address_blocked(struct call *c);
/* The shape of every signed-in request: begin, authenticate for `need`,
 * fn on a records handle, finish. */
void with_session(struct http_ctx *ctx, void *app, const char *action, enum auth_need need,
                  signed_in_fn fn);
/* The second factor is missing (enroll), not passed, or not fresh (step_up). */
void api_mfa_refused(struct call *c, enum mfa_gate g, int step_up);
void api_session_cookie(struct call *c, const char *token, int64_t max_age);
json_t *api_account_json(const struct account *a);

/* ---- sign-in, activation, password change, sessions (api_signin.c) ------- */

/* Throttles (login and address), shared with the second-factor codes. */
int64_t throttle_wait(struct records *r, struct call *c, const char *kind, const char *login);
void throttle_failed(struct records *r, struct call *c);
void throttled(struct call *c, int64_t wait_ms);
json_t *factors_json(unsigned usable);
void add_mfa_status(struct call *c, struct records *r, json_t *body, const struct session *s);
json_t *recovery_used_json(struct records *r, const struct account *a);
void do_whoami(struct call *c, struct records *r, struct session *s);
void do_sessions(struct call *c, struct records *r, struct session *s);
/* Handlers (http_handler) of the route table in api.c, by file. */
void h_login(struct http_ctx *ctx, void *app);
void h_activate(struct http_ctx *ctx, void *app);
void h_password(struct http_ctx *ctx, void *app);
void h_whoami(struct http_ctx *x, void *app);
void h_logout(struct http_ctx *x, void *app);
void h_sessions(struct http_ctx *x, void *app);
void h_session_revoke(struct http_ctx *x, void *app);

/* ---- second factors and WebAuthn (api_mfa.c) ------------------------------ */

void do_mfa_status(struct call *c, struct records *r, struct session *s);
void h_mfa_status(struct http_ctx *x, void *app);
void h_totp_enroll(struct http_ctx *x, void *app);
void h_totp_confirm(struct http_ctx *x, void *app);
void h_totp_verify(struct http_ctx *x, void *app);
void h_recovery_verify(struct http_ctx *x, void *app);
void h_register_begin(struct http_ctx *x, void *app);
void h_register_finish(struct http_ctx *x, void *app);
void h_assert_begin(struct http_ctx *x, void *app);
void h_assert_finish(struct http_ctx *x, void *app);
void h_key_remove(struct http_ctx *x, void *app);

/* ---- administration and alerts (api_admin.c) ------------------------------ */

void h_incident(struct http_ctx *ctx, void *app);
void h_provision(struct http_ctx *x, void *app);
void h_unlock(struct http_ctx *x, void *app);
void h_alerts(struct http_ctx *x, void *app);

/* ---- records: reads, writes, bulk exports (api_records.c) ----------------- */

void h_student(struct http_ctx *x, void *app);
void h_student_find(struct http_ctx *x, void *app);
void h_guardian(struct http_ctx *x, void *app);
void h_staff(struct http_ctx *x, void *app);
void h_staff_find(struct http_ctx *x, void *app);
void h_class(struct http_ctx *x, void *app);
void h_guardian_children(struct http_ctx *x, void *app);
void h_establishment(struct http_ctx *x, void *app);
void h_student_add(struct http_ctx *x, void *app);
void h_student_set(struct http_ctx *x, void *app);
void h_guardian_add(struct http_ctx *x, void *app);
void h_guardian_set(struct http_ctx *x, void *app);
void h_link_add(struct http_ctx *x, void *app);
void h_link_del(struct http_ctx *x, void *app);
void h_class_add(struct http_ctx *x, void *app);
void h_class_set(struct http_ctx *x, void *app);
void h_export_request(struct http_ctx *x, void *app);
void h_export_approve(struct http_ctx *x, void *app);
void h_export_file(struct http_ctx *x, void *app);

/* ---- pages and the incident console (api_pages.c) ------------------------- */

/* The page of a request (NULL: the JSON API), and its HTML answer. */
const struct webpage *page_of(const struct http_ctx *ctx);
void page_send(struct call *c);
void h_scope(struct http_ctx *x, void *app);
void h_scope_people(struct http_ctx *x, void *app);
void p_get(struct http_ctx *ctx, void *app);
void p_post(struct http_ctx *ctx, void *app);
void p_static(struct http_ctx *ctx, void *app);

#endif
