/*
 * api.c - `coffre serve`: the service (the records handle pool, and the
 * wiring of pwhash, audit, guard, alerts, web and http), one call and its
 * audit entry, authentication (what a route needs), the route table and
 * serving.  The route table, just before serving, names every feature of
 * the API; its handlers are in api_signin.c, api_mfa.c, api_admin.c,
 * api_records.c and api_pages.c, which share api_int.h.
 *
 * Each request flows one way:  http -> session -> (guard, policy) ->
 * records/account -> audit -> http.  A handler parses and bounds its
 * input, authenticates, does its work on a records handle, fills in the
 * response and an audit entry, and calls finish(): the response is sent
 * only from the audit writer's callback, once the entry is durable
 * (DESIGN.md section 8).  If the entry cannot be written the client gets a
 * 503 and nothing else (fail closed).  Password hashing runs on the pwhash
 * pool; meanwhile the connection is suspended and no thread waits.
 *
 * Errors are problem documents with a stable type; no detail ever repeats a
 * login, a code, a password or any other input.  This file never opens a
 * record's fields (api_records.c does).
 */
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "account.h"
#include "alerts.h"
#include "api.h"
#include "api_int.h"
#include "audit.h"
#include "guard.h"
#include "http.h"
#include "keyring.h"
#include "log.h"
#include "mfa.h"
#include "pwhash.h"
#include "records.h"
#include "session.h"
#include "web.h"
#include "banned.h"

/* Sign-in throttling defaults (docs/signin.md gives the reasoning). */
#define THROTTLE_ACCOUNT  { 0, 1000, 15 * 60 * 1000 }   /* 1 s, 2 s, 4 s ... 15 min */
#define THROTTLE_ADDRESS  { 20, 1000, 15 * 60 * 1000 }  /* 20 free, then the same */

/* ---- the service ------------------------------------------------------ */

struct records *
acquire(struct api *api)
{
    struct records *r;

    pthread_mutex_lock(&api->rp.mu);
    while (api->rp.nfree == 0)
        pthread_cond_wait(&api->rp.cv, &api->rp.mu);
    r = api->rp.free[--api->rp.nfree];
    pthread_mutex_unlock(&api->rp.mu);
    return r;
}

void
release(struct api *api, struct records *r)
{
    pthread_mutex_lock(&api->rp.mu);
    api->rp.free[api->rp.nfree++] = r;
    pthread_cond_signal(&api->rp.cv);
    pthread_mutex_unlock(&api->rp.mu);
}

int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- one call: the response waiting for its audit entry --------------- */

static struct call *
call_new(struct http_ctx *ctx, struct api *api, const char *action)
{
    struct call *c = malloc(sizeof *c);

    if (c == NULL)
        return NULL;
    memset(c, 0, offsetof(struct call, acct));
    c->acct.row.has_code = 0;
    c->ctx = ctx;
    c->api = api;
    c->page = page_of(ctx);
    snprintf(c->ae.action, sizeof c->ae.action, "%s", action);
    snprintf(c->ae.addr, sizeof c->ae.addr, "%s", http_client_addr(ctx));
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "failed");
    return c;
}

static void
call_free(struct call *c)
{
    json_decref(c->body);
    /* Wipe what was secret (password, hashes, the session token in the
     * cookie); the rest is ids and answers, and wiping all of a call on
     * every request costs more than the request itself. */
    sodium_memzero(&c->job, sizeof c->job);
    sodium_memzero(c->new_password, sizeof c->new_password);
    sodium_memzero(c->set_cookie, sizeof c->set_cookie);
    sodium_memzero(c->acct.row.code_hash, sizeof c->acct.row.code_hash);
    if (c->text != NULL) {
        sodium_memzero(c->text, c->text_len);
        free(c->text);
    }
    free(c);
}

void
set_problem(struct call *c, unsigned status, const char *type, const char *title,
            const char *detail)
{
    c->status = status;
    c->ptype = type;
    c->ptitle = title;
    snprintf(c->pdetail, sizeof c->pdetail, "%s", detail);
}

void
set_json(struct call *c, unsigned status, json_t *body)
{
    c->status = status;
    json_decref(c->body);
    c->body = body;
}

static void
send_now(struct call *c)
{
    if (c->set_cookie[0] != '\0')
        http_add_header(c->ctx, "Set-Cookie", c->set_cookie);
    if (c->text != NULL && c->status < 400) {
        /* scope's people file: a download, for the page and the API alike */
        http_add_header(c->ctx, "Content-Disposition", "attachment; filename=\"people-to-notify.csv\"");
        http_reply_text(c->ctx, 200, "text/csv; charset=utf-8", c->text, c->text_len);
    } else if (c->page != NULL)
        page_send(c);
    else if (c->body != NULL) {
        http_reply_json(c->ctx, c->status, c->body);
        c->body = NULL;
    } else
        http_reply_problem(c->ctx, c->status, c->ptype, c->ptitle, c->pdetail,
                           c->retry_after);
}

/* The audit writer's callback: the entry is durable (or not), answer. */
static void
audited(void *arg, enum cf_err rc)
{
    struct call *c = arg;

    if (rc != CF_OK) {
        c->set_cookie[0] = '\0';
        json_decref(c->body);
        c->body = NULL;
        set_problem(c, 503, "audit-unavailable", "Service unavailable",
                    "The access could not be recorded, so it was not served. Try again later.");
        c->retry_after = 5;
    }
    send_now(c);
    call_free(c);
}

/* Queues the audit entry; the response leaves from `audited`.  The
 * connection must already be deferred. */
void
finish(struct call *c)
{
    enum cf_err rc = audit_submit(c->api->audit, &c->ae, audited, c);

    if (rc != CF_OK)
        audited(c, rc);
}

/* Starts an async call: suspends the connection first. */
struct call *
begin(struct http_ctx *ctx, void *app, const char *action)
{
    struct call *c = call_new(ctx, app, action);

    if (c == NULL) {
        http_reply_problem(ctx, 503, "overloaded", "Service unavailable",
                           "The server is out of memory. Try again later.", 5);
        return NULL;
    }
    http_defer(ctx);
    return c;
}

void
bad_request(struct call *c, const char *detail)
{
    set_problem(c, 400, "invalid-request", "Invalid request", detail);
}

/* A string member of the body, bounded in raw bytes; NULL when absent,
 * not a string, or too long. */
const char *
str_member(json_t *body, const char *name, size_t max)
{
    json_t *v = json_object_get(body, name);

    if (!json_is_string(v) || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return NULL;
    return json_string_value(v);
}

/* ---- authentication --------------------------------------------------- */

/* What a route needs is enum auth_need (api_int.h); `coffre routes` shows
 * it by these names. */
static const char *const auth_need_names[AUTH_NEED_COUNT] = {
    "none", "session", "partial", "factor", "ready", "admin", "step-up", "admin+step-up",
};
/* In a route's flags (HTTP_APP_FLAGS). */
#define NEED(n) ((unsigned)(n) << 8)

void
api_mfa_refused(struct call *c, enum mfa_gate g, int step_up)
{
    if (g == MFA_GATE_ENROLL)
        set_problem(c, 403, "mfa-required", "Second factor required",
                    "Your role needs a second factor. Enroll one first "
                    "(POST /api/v1/mfa/totp/enroll or /api/v1/mfa/webauthn/register/begin).");
    else if (step_up)
        set_problem(c, 403, "step-up-required", "Confirm it is you",
                    "This action needs a second factor passed in the last minutes. "
                    "Pass it again (POST /api/v1/mfa/totp/verify or /api/v1/mfa/webauthn/assert/begin).");
    else
        set_problem(c, 403, "mfa-challenge-required", "Second factor needed",
                    "Pass your second factor first (POST /api/v1/mfa/totp/verify, "
                    "/api/v1/mfa/webauthn/assert/begin or /api/v1/mfa/recovery/verify).");
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
}

/* The second-factor gate of authenticate(); 0 to go on. */
static int
mfa_check(struct call *c, struct records *r, enum auth_need need, const struct session *s)
{
    int step_up = need == AUTH_STEP_UP || need == AUTH_ADMIN_STEP_UP;
    int64_t now = (int64_t)time(NULL);
    struct mfa_state st;
    enum mfa_gate g;

    /* A session that passed enough needs no look at the factors. */
    if (!step_up && s->row.mfa_level >= mfa_level_needed(&c->api->mfa, c->acct.role))
        return 0;
    if (mfa_state_of(r, &c->acct, &st) != CF_OK) {
        unavailable(c);
        return -1;
    }
    g = mfa_gate(&c->api->mfa, &c->acct, &st, s->row.mfa_level);
    if (g != MFA_GATE_OK) {
        api_mfa_refused(c, g, 0);
        return -1;
    }
    if (step_up && mfa_gate_step_up(&c->api->mfa, &c->acct, &st, s->row.mfa_level,
                                    s->row.mfa_at, now) != MFA_GATE_OK) {
        api_mfa_refused(c, MFA_GATE_CHALLENGE, 1);
        return -1;
    }
    return 0;
}

/*
 * Resolves the session of the request (cookie or bearer) to an active
 * account, then checks what the route needs (above).  On failure fills c's
 * problem and returns -1.
 */
int
authenticate(struct call *c, struct records *r, enum auth_need need,
             struct session *s)
{
    const char *tok = http_bearer(c->ctx);

    if (tok == NULL) {
        tok = http_cookie(c->ctx, SESSION_COOKIE);
        /* A browser sends the cookie along with a form another origin of
         * the same site posts (SameSite does not stop that): a change made
         * with the cookie must come from our own origin (docs/pages.md). */
        if (tok != NULL && strcmp(http_method(c->ctx), "GET") != 0 &&
            web_same_origin(http_header(c->ctx, "Origin"), http_header(c->ctx, "Sec-Fetch-Site"),
                            http_header(c->ctx, "Host")) != 0) {
            set_problem(c, 403, "csrf-failed", "Refused",
                        "This request came from another site's page. Nothing was changed.");
            snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
            snprintf(c->ae.fields, sizeof c->ae.fields, "reason:origin");
            return -1;
        }
    }
    if (session_lookup(r, tok, &c->api->sess, (int64_t)time(NULL), s) != CF_OK ||
        account_get(r, s->account_id, &c->acct) != CF_OK ||
        strcmp(c->acct.row.state, ACCOUNT_STATE_ACTIVE) != 0) {
        set_problem(c, 401, "unauthenticated", "Sign-in required",
                    "Your session has ended or is not valid. Please sign in again.");
        snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
        return -1;
    }
    snprintf(c->ae.actor, sizeof c->ae.actor, "acct:%s", c->acct.id);
    snprintf(c->ae.session, sizeof c->ae.session, "%s", s->ref);
    if (need <= AUTH_PARTIAL)
        return 0;
    /* the second factor before anything else: a phished password alone
     * reaches nothing past this line */
    if (mfa_check(c, r, need, s) != 0)
        return -1;
    if (need != AUTH_FACTOR && c->acct.row.reset_required) {
        set_problem(c, 403, "password-reset-required", "New password required",
                    "Set a new password before going on (POST /api/v1/password).");
        snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
        return -1;
    }
    if ((need == AUTH_ADMIN || need == AUTH_ADMIN_STEP_UP) &&
        c->acct.role != ROLE_ACADEMIE_ADMIN) {
        set_problem(c, 403, "forbidden", "Not allowed",
                    "This action is reserved to académie administrators.");
        snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
        return -1;
    }
    return 0;
}

void
api_session_cookie(struct call *c, const char *token, int64_t max_age)
{
    snprintf(c->set_cookie, sizeof c->set_cookie,
             "%s=%s; HttpOnly;%s SameSite=Strict; Path=/; Max-Age=%lld", SESSION_COOKIE,
             token, http_is_plain_loopback(c->ctx) ? "" : " Secure;", (long long)max_age);
}

json_t *
api_account_json(const struct account *a)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "id", a->id, "login", a->login,
                     "role", account_role_name(a->role), "state", a->row.state,
                     "academie", a->row.compartment,
                     "password_reset_required", a->row.reset_required);
}

/* ---- signed-in requests ---------------------------------------------- */

/* An address the guard blocked after an alert gets nothing for a while. */
int
address_blocked(struct call *c)
{
    if (!guard_address_blocked(c->api->guard, c->ae.addr, now_ms()))
        return 0;
    set_problem(c, 403, "address-blocked", "Blocked",
                "Requests from this address are blocked for a while after unusual activity.");
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "blocked");
    return -1;
}

/*
 * The shape of every signed-in request, in order: suspend the connection,
 * authenticate (session -> active account, and what the route needs), do
 * the work on a records handle, then the audit entry, and only then the
 * answer (from `audited`).  A refusal at any step is audited too.
 */
void
with_session(struct http_ctx *ctx, void *app, const char *action, enum auth_need need,
             signed_in_fn fn)
{
    struct call *c = begin(ctx, app, action);
    struct records *r;
    struct session s;

    if (c == NULL)
        return;
    r = acquire(c->api);
    if (address_blocked(c) == 0 && authenticate(c, r, need, &s) == 0)
        fn(c, r, &s);
    release(c->api, r);
    finish(c);
}

void
ok(struct call *c, unsigned status, json_t *body)
{
    set_json(c, status, body);
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "ok");
}

void
unavailable(struct call *c)
{
    set_problem(c, 503, "store-unavailable", "Service unavailable",
                "The store did not answer. Try again.");
}

/* ---- the route table -------------------------------------------------- */

static const struct http_route routes[] = {
    { "POST",   "/api/v1/login",          HTTP_PREAUTH | HTTP_JSON_BODY | NEED(AUTH_NONE), h_login,    "login" },
    { "POST",   "/api/v1/activate",       HTTP_PREAUTH | HTTP_JSON_BODY | NEED(AUTH_NONE), h_activate, "activate" },
    { "POST",   "/api/v1/password",       HTTP_PREAUTH | HTTP_JSON_BODY | NEED(AUTH_FACTOR), h_password, "password" },
    { "GET",    "/api/v1/session",        NEED(AUTH_ANY),                h_whoami,   "session" },
    { "POST",   "/api/v1/logout",         NEED(AUTH_ANY),                h_logout,   "logout" },
    { "GET",    "/api/v1/sessions",       NEED(AUTH_PARTIAL),            h_sessions, "sessions" },
    { "DELETE", "/api/v1/sessions/*",     NEED(AUTH_ANY),          h_session_revoke, "session_revoke" },
    { "POST",   "/api/v1/accounts",       HTTP_JSON_BODY | NEED(AUTH_ADMIN), h_provision, "provision" },
    { "POST",   "/api/v1/accounts/unlock", HTTP_JSON_BODY | NEED(AUTH_ADMIN), h_unlock,  "unlock" },
    { "POST",   "/api/v1/incidents/*",    HTTP_JSON_BODY | NEED(AUTH_ADMIN_STEP_UP), h_incident, "incident" },
    /* records: every one through serve_record (guard, policy, open, audit) */
    { "GET",    "/api/v1/students",       NEED(AUTH_READY),           h_student_find, "student_find" },
    { "GET",    "/api/v1/students/*",     NEED(AUTH_READY),              h_student,  "student" },
    { "GET",    "/api/v1/guardians/*",    NEED(AUTH_READY),              h_guardian, "guardian" },
    { "GET",    "/api/v1/children/*",     NEED(AUTH_READY),     h_guardian_children, "children" },
    { "GET",    "/api/v1/staff",          NEED(AUTH_READY),             h_staff_find, "staff_find" },
    { "GET",    "/api/v1/staff/*",        NEED(AUTH_READY),              h_staff,    "staff" },
    { "GET",    "/api/v1/classes/*",      NEED(AUTH_READY),              h_class,    "class" },
    { "GET",    "/api/v1/establishments/*", NEED(AUTH_READY),       h_establishment, "establishment" },
    /* second factors (docs/mfa.md): reachable before the factor is passed */
    { "GET",    "/api/v1/mfa",            NEED(AUTH_PARTIAL),            h_mfa_status, "mfa" },
    { "POST",   "/api/v1/mfa/totp/enroll", HTTP_JSON_BODY | NEED(AUTH_PARTIAL), h_totp_enroll, "mfa_totp_enroll" },
    { "POST",   "/api/v1/mfa/totp/confirm", HTTP_JSON_BODY | NEED(AUTH_PARTIAL), h_totp_confirm, "mfa_totp_confirm" },
    { "POST",   "/api/v1/mfa/totp/verify", HTTP_JSON_BODY | NEED(AUTH_PARTIAL), h_totp_verify, "mfa_totp_verify" },
    { "POST",   "/api/v1/mfa/recovery/verify", HTTP_JSON_BODY | NEED(AUTH_PARTIAL), h_recovery_verify, "mfa_recovery_verify" },
    { "POST",   "/api/v1/mfa/webauthn/register/begin", HTTP_JSON_BODY | NEED(AUTH_PARTIAL), h_register_begin, "mfa_webauthn_register_begin" },
    { "POST",   "/api/v1/mfa/webauthn/register/finish", HTTP_JSON_BODY | NEED(AUTH_PARTIAL), h_register_finish, "mfa_webauthn_register" },
    { "POST",   "/api/v1/mfa/webauthn/assert/begin", HTTP_JSON_BODY | NEED(AUTH_PARTIAL), h_assert_begin, "mfa_webauthn_assert_begin" },
    { "POST",   "/api/v1/mfa/webauthn/assert/finish", HTTP_JSON_BODY | NEED(AUTH_PARTIAL), h_assert_finish, "mfa_webauthn_assert" },
    { "DELETE", "/api/v1/mfa/webauthn/*", NEED(AUTH_STEP_UP),       h_key_remove, "mfa_webauthn_remove" },
    /* pages (docs/pages.md): forms reach the handlers above through p_post */
    { "GET",    "/",                      NEED(AUTH_NONE),               p_get,      "page_root" },
    { "GET",    "/signin",                NEED(AUTH_NONE),               p_get,      "page_signin" },
    { "POST",   "/signin",                HTTP_PREAUTH | HTTP_FORM_BODY | NEED(AUTH_NONE), p_post, "form_signin" },
    { "GET",    "/activate",              NEED(AUTH_NONE),               p_get,      "page_activate" },
    { "POST",   "/activate",              HTTP_PREAUTH | HTTP_FORM_BODY | NEED(AUTH_NONE), p_post, "form_activate" },
    { "GET",    "/account",               NEED(AUTH_READY),              p_get,      "page_account" },
    { "POST",   "/signout",               HTTP_FORM_BODY | NEED(AUTH_ANY), p_post,   "form_signout" },
    { "POST",   "/account/sessions/*",    HTTP_FORM_BODY | NEED(AUTH_ANY), p_post,   "form_revoke" },
    { "GET",    "/lang/*",                NEED(AUTH_NONE),               p_get,      "page_lang" },
    { "GET",    "/static/*",              NEED(AUTH_NONE),               p_static,   "static" },
    { "GET",    "/account/password",      NEED(AUTH_FACTOR),             p_get,      "page_password" },
    { "POST",   "/account/password",      HTTP_PREAUTH | HTTP_FORM_BODY | NEED(AUTH_FACTOR), p_post, "form_password" },
    { "GET",    "/mfa/enroll",            NEED(AUTH_PARTIAL),            p_get,      "mfa_page_enroll" },
    { "POST",   "/mfa/totp/enroll",       HTTP_FORM_BODY | NEED(AUTH_PARTIAL), p_post, "mfa_form_totp_enroll" },
    { "POST",   "/mfa/totp/confirm",      HTTP_FORM_BODY | NEED(AUTH_PARTIAL), p_post, "mfa_form_totp_confirm" },
    { "GET",    "/mfa/challenge",         NEED(AUTH_PARTIAL),            p_get,      "mfa_page_challenge" },
    { "POST",   "/mfa/totp/verify",       HTTP_FORM_BODY | NEED(AUTH_PARTIAL), p_post, "mfa_form_totp_verify" },
    { "POST",   "/mfa/recovery/verify",   HTTP_FORM_BODY | NEED(AUTH_PARTIAL), p_post, "mfa_form_recovery_verify" },
    /* record writes: guard, policy (write fields), one transaction, audit */
    { "POST",   "/api/v1/students",       HTTP_JSON_BODY | NEED(AUTH_READY), h_student_add, "student_add" },
    { "PATCH",  "/api/v1/students/*",     HTTP_JSON_BODY | NEED(AUTH_READY), h_student_set, "student_set" },
    { "POST",   "/api/v1/guardians",      HTTP_JSON_BODY | NEED(AUTH_READY), h_guardian_add, "guardian_add" },
    { "PATCH",  "/api/v1/guardians/*",    HTTP_JSON_BODY | NEED(AUTH_READY), h_guardian_set, "guardian_set" },
    { "POST",   "/api/v1/guardian-links", HTTP_JSON_BODY | NEED(AUTH_READY), h_link_add, "link_add" },
    { "DELETE", "/api/v1/guardian-links/*", NEED(AUTH_READY),            h_link_del, "link_del" },
    { "POST",   "/api/v1/classes",        HTTP_JSON_BODY | NEED(AUTH_READY), h_class_add, "class_add" },
    { "PATCH",  "/api/v1/classes/*",      HTTP_JSON_BODY | NEED(AUTH_READY), h_class_set, "class_set" },
    { "GET",    "/api/v1/alerts",         NEED(AUTH_READY),                h_alerts, "alerts" },
    { "POST",   "/api/v1/exports",        HTTP_JSON_BODY | NEED(AUTH_READY), h_export_request, "export_request" },
    { "POST",   "/api/v1/exports/*",      HTTP_JSON_BODY | NEED(AUTH_STEP_UP), h_export_approve, "export_approve" },
    { "GET",    "/api/v1/exports/*",      NEED(AUTH_READY),           h_export_file, "export_file" },
    /* breach scope (docs/scope.md): the JSON side and the console */
    { "POST",   "/api/v1/scope",          HTTP_JSON_BODY | NEED(AUTH_READY), h_scope, "scope" },
    { "POST",   "/api/v1/scope/people",   HTTP_JSON_BODY | NEED(AUTH_STEP_UP), h_scope_people, "scope_people" },
    { "GET",    "/console",               NEED(AUTH_READY),              p_get,      "page_console" },
    { "POST",   "/console",               HTTP_FORM_BODY | NEED(AUTH_READY), p_post, "form_scope" },
    { "POST",   "/console/people",        HTTP_FORM_BODY | NEED(AUTH_STEP_UP), p_post, "form_scope_people" },
};

/* One route as a JSON line; builtins (need 0) print as "none". */
static int
route_print(FILE *f, const struct http_route *rt)
{
    unsigned need = (rt->flags & HTTP_APP_FLAGS) >> 8;
    json_t *flags = json_array(), *o;
    char *line;

    if (rt->flags & HTTP_PREAUTH)
        json_array_append_new(flags, json_string("preauth"));
    if (rt->flags & HTTP_JSON_BODY)
        json_array_append_new(flags, json_string("json_body"));
    if (rt->flags & HTTP_FORM_BODY)
        json_array_append_new(flags, json_string("form_body"));
    o = json_pack("{s:s, s:s, s:s, s:o, s:s}", "method", rt->method, "path", rt->path,
                  "name", rt->name, "flags", flags,
                  "auth", need < AUTH_NEED_COUNT ? auth_need_names[need] : "?");
    line = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (line == NULL)
        return -1;
    fprintf(f, "%s\n", line);
    free(line);
    return 0;
}

int
api_routes_print(FILE *f)
{
    const struct http_route *b;
    size_t i, n;

    b = http_builtin_routes(&n);
    for (i = 0; i < n; i++)
        if (route_print(f, &b[i]) != 0)
            return -1;
    for (i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (route_print(f, &routes[i]) != 0)
            return -1;
    return 0;
}

/* ---- serving ---------------------------------------------------------- */

static uint64_t
audit_depth(void *arg)
{
    return audit_queue_depth(arg);
}

/* /healthz: a trail that cannot be written serves nothing (fail closed),
 * and says so to the load balancer. */
static enum cf_err
healthy(void *app)
{
    struct api *api = app;

    return audit_status(api->audit);
}

static int
load_canary(void *arg, const uint8_t id[16])
{
    return guard_add_canary(arg, id) != CF_OK;
}

/* Address blocks kept in the store, back into the guard. */
static int
load_block(void *arg, const char *addr, int64_t until_ms)
{
    if (guard_block_address(arg, addr, now_ms(), until_ms) != CF_OK)
        log_warnx("guard: a stored address block is malformed; skipped");
    return 0;
}

static uint64_t
webhook_stat(struct api *api, int which)
{
    struct alerts_stats st;

    alerts_stats(api->alerts, &st);
    return which == 0 ? st.sent : which == 1 ? st.failed : st.dropped;
}
static uint64_t webhook_sent(void *arg) { return webhook_stat(arg, 0); }
static uint64_t webhook_failed(void *arg) { return webhook_stat(arg, 1); }
static uint64_t webhook_dropped(void *arg) { return webhook_stat(arg, 2); }

static void
api_free(struct api *api)
{
    size_t i;

    pwhash_stop(api->pw);
    audit_close(api->audit);
    guard_close(api->guard);
    web_free(api->web);
    alerts_close(api->alerts);
    keyring_free(api->audit_kr);
    for (i = 0; i < api->rp.nfree; i++)
        /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): nfree > 0 only once free was allocated */
        records_close(api->rp.free[i]);
    free(api->rp.free);
    pthread_mutex_destroy(&api->rp.mu);
    pthread_cond_destroy(&api->rp.cv);
}

/* The relying party: --webauthn-rp-id and the origins allowed exactly
 * (default: this server on localhost and 127.0.0.1). */
static enum cf_err
webauthn_setup(struct api *api, const struct api_opts *o, unsigned port, struct cf_errmsg *em)
{
    const char *list = o->webauthn_origins;
    size_t n = 0;

    api->wa.rp_id = o->webauthn_rp_id != NULL ? o->webauthn_rp_id : "localhost";
    if (strlen(api->wa.rp_id) == 0 || strlen(api->wa.rp_id) > MFA_RP_ID_MAX)
        return cf_fail(em, CF_ERR_INPUT, "--webauthn-rp-id: a host name");
    if (list == NULL) {
        snprintf(api->wa_origins[0], sizeof api->wa_origins[0], "http://localhost:%u", port);
        snprintf(api->wa_origins[1], sizeof api->wa_origins[1], "http://127.0.0.1:%u", port);
        n = 2;
    }
    while (list != NULL && *list != '\0') {
        size_t k = strcspn(list, ",");

        if (n == MFA_ORIGINS_MAX || k == 0 || k >= sizeof api->wa_origins[0])
            return cf_fail(em, CF_ERR_INPUT, "--webauthn-origin: at most %d origins, each "
                           "like https://ent.example.fr", MFA_ORIGINS_MAX);
        memcpy(api->wa_origins[n], list, k);
        api->wa_origins[n][k] = '\0';
        if (strncmp(api->wa_origins[n], "https://", 8) != 0 &&
            strncmp(api->wa_origins[n], "http://", 7) != 0)
            return cf_fail(em, CF_ERR_INPUT, "--webauthn-origin: an origin, like https://ent.example.fr");
        n++;
        list += k;
        if (*list == ',')
            list++;
    }
    for (api->wa.norigins = 0; api->wa.norigins < n; api->wa.norigins++)
        api->wa.origins[api->wa.norigins] = api->wa_origins[api->wa.norigins];
    return CF_OK;
}

enum cf_err
api_serve(const struct api_opts *o, struct cf_errmsg *em)
{
    static const struct throttle_policy th_acct = THROTTLE_ACCOUNT, th_addr = THROTTLE_ADDRESS;
    struct pwhash_opts po = { o->hash_workers, o->hash_queue, o->hash_t, o->hash_m };
    struct http_opts ho = { 0 };
    struct api api;
    char krpath[4096];
    enum cf_err rc = CF_OK;
    size_t i;
    int lockfd;

    /* SIGTERM before http_wait is ready must not kill the process: block
     * it from here on (every thread started below inherits the mask);
     * http_wait takes it when it is ready to drain. */
    {
        sigset_t set;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    }
    memset(&api, 0, sizeof api);
    pthread_mutex_init(&api.rp.mu, NULL);
    pthread_cond_init(&api.rp.cv, NULL);
    api.sess.idle_s = o->session_idle_s ? o->session_idle_s : 30 * 60;
    api.sess.absolute_s = o->session_absolute_s ? o->session_absolute_s : 12 * 3600;
    api.th_account = th_acct;
    api.th_address = th_addr;
    if (o->addr_free_failures)
        api.th_address.free = o->addr_free_failures;
    api.min_bits = o->password_min_bits ? o->password_min_bits : PASSWORD_MIN_BITS_DEFAULT;
    api.data_dir = o->data_dir;
    pthread_mutex_init(&api.scope_mu, NULL);
    if (o->mfa_policy_set)
        api.mfa = o->mfa;
    else
        mfa_policy_default(&api.mfa);
    if ((rc = records_lock_dir(o->data_dir, &lockfd, em)) != CF_OK)
        return rc;

    /* The audit gets its own keyring: it advances the audit epoch. */
    if (o->keyring_path != NULL)
        snprintf(krpath, sizeof krpath, "%s", o->keyring_path);
    else
        snprintf(krpath, sizeof krpath, "%s/keyring", o->data_dir);
    {
        struct alerts_opts ao = { o->alert_webhook, 0, 0 };

        if ((rc = guard_open(&o->guard, &api.guard, em)) != CF_OK ||
            (rc = alerts_open(&ao, &api.alerts, em)) != CF_OK)
            goto out;
        api.block_ms = o->guard.block_ms;
        api.export_max_rows = o->export_max_rows ? o->export_max_rows : API_EXPORT_ROWS_DEFAULT;
    }
    if ((rc = web_open(&api.web, em)) != CF_OK)
        goto out;
    if ((rc = keyring_load(krpath, &api.audit_kr, em)) != CF_OK ||
        (rc = audit_open(o->data_dir, api.audit_kr, &o->audit, &api.audit, em)) != CF_OK ||
        (rc = pwhash_start(&po, &api.pw, em)) != CF_OK)
        goto out;
    ho.listen = o->listen;
    ho.threads = o->http_threads;
    ho.tls_cert = o->tls_cert;
    ho.tls_key = o->tls_key;
    ho.insecure_http = o->insecure_http;
    ho.trusted_proxies = o->trusted_proxies;
    ho.routes = routes;
    ho.nroutes = sizeof routes / sizeof routes[0];
    ho.app = &api;
    ho.health = healthy;
    /* One records handle per thread that may hold one. */
    api.rp.n = (ho.threads ? ho.threads : (size_t)sysconf(_SC_NPROCESSORS_ONLN)) +
               pwhash_workers(api.pw) + 1;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers; one pointer's size is meant */
    api.rp.free = calloc(api.rp.n, sizeof *api.rp.free);
    if (api.rp.free == NULL) {
        rc = cf_fail(em, CF_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < api.rp.n && rc == CF_OK; i++)
        if ((rc = records_open(o->data_dir, o->keyring_path, &api.rp.free[i], em)) == CF_OK)
            api.rp.nfree++;
    if (rc != CF_OK)
        goto out;
    /* The canaries of our compartments, from their sealed lists. */
    if ((rc = records_canaries(api.rp.free[0], load_canary, api.guard)) != CF_OK) {
        rc = cf_fail(em, rc, "canaries: cannot load the list");
        goto out;
    }
    /* Address blocks still running, from before the restart (locks are
     * account states: sign-in refuses a locked account anyway). */
    if ((rc = store_blocks_live(records_store(api.rp.free[0]), now_ms(), load_block,
                                api.guard)) != CF_OK) {
        rc = cf_fail(em, rc, "guard: cannot load the address blocks");
        goto out;
    }
    if ((rc = http_start(&ho, &api.http, em)) != CF_OK)
        goto out;
    if (http_metric_gauge_fn(api.http, "coffre_alert_webhook_sent", "Alerts the webhook accepted",
                             webhook_sent, &api) != CF_OK ||
        http_metric_gauge_fn(api.http, "coffre_alert_webhook_failed",
                             "Alerts the webhook did not take after every attempt",
                             webhook_failed, &api) != CF_OK ||
        http_metric_gauge_fn(api.http, "coffre_alert_webhook_dropped",
                             "Alerts not sent: the webhook queue was full", webhook_dropped,
                             &api) != CF_OK)
        log_warnx("metrics: cannot register the webhook gauges");
    if ((rc = webauthn_setup(&api, o, http_port(api.http), em)) != CF_OK)
        goto out;
    if (o->started != NULL && (rc = o->started(o->started_arg, em)) != CF_OK) {
        http_stop(api.http);
        goto out;
    }
    if (http_metric_gauge_fn(api.http, "coffre_audit_queue_depth",
                             "Audit entries waiting for the writer", audit_depth, api.audit) != CF_OK)
        log_warnx("metrics: cannot register the audit queue gauge");
    {
        char port[16];

        snprintf(port, sizeof port, "%u", http_port(api.http));
        log_kv(LOG_INFO, "serving", "listen", o->listen, "port", port, "data", o->data_dir,
               (const char *)NULL);
    }
    http_wait(api.http);
    http_stop(api.http);
    log_kv(LOG_INFO, "stopped", (const char *)NULL);
out:
    api_free(&api);
    close(lockfd);
    return rc;
}
