/*
 * api.c - the HTTP API: the route table (at the end of the file) and every
 * handler.
 *
 * Each request flows one way:  http -> session -> (guard, policy: issue 5)
 * -> records/account -> audit -> http.  A handler parses and bounds its
 * input, authenticates, does its work on a records handle, fills in the
 * response and an audit entry, and calls finish(): the response is sent
 * only from the audit writer's callback, once the entry is durable
 * (DESIGN.md section 8).  If the entry cannot be written the client gets a
 * 503 and nothing else (fail closed).  Password hashing runs on the pwhash
 * pool; meanwhile the connection is suspended and no thread waits.
 *
 * Errors are problem documents with a stable type; no detail ever repeats a
 * login, a code, a password or any other input.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "audit.h"
#include "http.h"
#include "ids.h"
#include "guard.h"
#include "keyring.h"
#include "log.h"
#include "mfa.h"
#include "policy.h"
#include "pwhash.h"
#include "records.h"
#include "scope.h"
#include "session.h"
#include "web.h"
#include "banned.h"

/* Raw input bounds, checked before any work (STYLE.md section 7). */
#define API_LOGIN_MAX_BYTES  256
#define API_CODE_MAX_BYTES   64
#define API_SCOPE_MAX_BYTES  64

/* Sign-in throttling defaults (docs/signin.md gives the reasoning). */
#define THROTTLE_ACCOUNT  { 0, 1000, 15 * 60 * 1000 }   /* 1 s, 2 s, 4 s ... 15 min */
#define THROTTLE_ADDRESS  { 20, 1000, 15 * 60 * 1000 }  /* 20 free, then the same */

/* ---- the service ------------------------------------------------------ */

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

static struct records *
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

static void
release(struct api *api, struct records *r)
{
    pthread_mutex_lock(&api->rp.mu);
    api->rp.free[api->rp.nfree++] = r;
    pthread_cond_signal(&api->rp.cv);
    pthread_mutex_unlock(&api->rp.mu);
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- one call: the response waiting for its audit entry --------------- */

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

static const struct webpage *page_of(const struct http_ctx *ctx);
static void page_send(struct call *c);

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

static void
set_problem(struct call *c, unsigned status, const char *type, const char *title,
            const char *detail)
{
    c->status = status;
    c->ptype = type;
    c->ptitle = title;
    snprintf(c->pdetail, sizeof c->pdetail, "%s", detail);
}

static void
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
static void
finish(struct call *c)
{
    enum cf_err rc = audit_submit(c->api->audit, &c->ae, audited, c);

    if (rc != CF_OK)
        audited(c, rc);
}

/* Starts an async call: suspends the connection first. */
static struct call *
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

static void
bad_request(struct call *c, const char *detail)
{
    set_problem(c, 400, "invalid-request", "Invalid request", detail);
}

/* A string member of the body, bounded in raw bytes; NULL when absent,
 * not a string, or too long. */
static const char *
str_member(json_t *body, const char *name, size_t max)
{
    json_t *v = json_object_get(body, name);

    if (!json_is_string(v) || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return NULL;
    return json_string_value(v);
}

/* ---- authentication --------------------------------------------------- */

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
static const char *const auth_need_names[AUTH_NEED_COUNT] = {
    "none", "session", "partial", "factor", "ready", "admin", "step-up", "admin+step-up",
};
/* In a route's flags (HTTP_APP_FLAGS). */
#define NEED(n) ((unsigned)(n) << 8)

static void unavailable(struct call *c);

static void
mfa_refused(struct call *c, enum mfa_gate g, int step_up)
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
        mfa_refused(c, g, 0);
        return -1;
    }
    if (step_up && mfa_gate_step_up(&c->api->mfa, &c->acct, &st, s->row.mfa_level,
                                    s->row.mfa_at, now) != MFA_GATE_OK) {
        mfa_refused(c, MFA_GATE_CHALLENGE, 1);
        return -1;
    }
    return 0;
}

/*
 * Resolves the session of the request (cookie or bearer) to an active
 * account, then checks what the route needs (above).  On failure fills c's
 * problem and returns -1.
 */
static int
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

static void
session_cookie(struct call *c, const char *token, int64_t max_age)
{
    snprintf(c->set_cookie, sizeof c->set_cookie,
             "%s=%s; HttpOnly;%s SameSite=Strict; Path=/; Max-Age=%lld", SESSION_COOKIE,
             token, http_is_plain_loopback(c->ctx) ? "" : " Secure;", (long long)max_age);
}

static json_t *
account_json(const struct account *a)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "id", a->id, "login", a->login,
                     "role", account_role_name(a->role), "state", a->row.state,
                     "academie", a->row.compartment,
                     "password_reset_required", a->row.reset_required);
}

/* ---- sign-in ---------------------------------------------------------- */

static void
invalid_credentials(struct call *c)
{
    /* One answer for an unknown login, a wrong password, and a locked,
     * frozen, disabled or not yet activated account. */
    set_problem(c, 401, "invalid-credentials", "Sign-in failed",
                "The login or the password is not right. Check both and try again.");
}

static void
throttled(struct call *c, int64_t wait_ms)
{
    set_problem(c, 429, "too-many-attempts", "Too many attempts",
                "Too many failed attempts. Wait before trying again.");
    c->retry_after = (unsigned)((wait_ms + 999) / 1000);
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "throttled");
    {
        char label[96];

        snprintf(label, sizeof label, "action=%s", c->ae.action);
        http_metric_add(http_server_of(c->ctx), "coffre_throttled_total", label, 1);
    }
}

static void
overloaded(struct call *c)
{
    set_problem(c, 503, "overloaded", "Service busy",
                "Too many sign-ins at once. Try again in a moment.");
    c->retry_after = 1;
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "overloaded");
}

/* Waits imposed on the login and the client address; 0 when none. */
static int64_t
throttle_wait(struct records *r, struct call *c, const char *kind, const char *login)
{
    char k[40];
    int64_t a, b, now = now_ms();

    account_throttle_key(r, kind, login, c->k_login);
    snprintf(k, sizeof k, "%s-addr", kind);
    account_throttle_key(r, k, c->ae.addr, c->k_addr);
    a = account_throttle_wait(r, c->k_login, now);
    b = account_throttle_wait(r, c->k_addr, now);
    return a > b ? a : b;
}

static void
throttle_failed(struct records *r, struct call *c)
{
    int64_t now = now_ms();

    account_throttle_fail(r, c->k_login, &c->api->th_account, now);
    account_throttle_fail(r, c->k_addr, &c->api->th_address, now);
}

/* Lower-cased, trimmed login for throttle keys: the same key whatever the
 * case typed, whether or not the account exists. */
static void
login_key_text(const char *login, char *out, size_t cap)
{
    size_t i, o = 0;

    while (*login == ' ')
        login++;
    for (i = 0; login[i] != '\0' && o + 1 < cap; i++)
        out[o++] = (char)(login[i] >= 'A' && login[i] <= 'Z' ? login[i] + 32 : login[i]);
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

/*
 * Before any credential is checked: the throttles of this login and this
 * client address.  Returns a records handle to go on with, or NULL when the
 * call was answered (429, audited).
 */
static int address_blocked(struct call *c);

static struct records *
preauth(struct call *c, const char *kind, const char *login)
{
    char key[API_LOGIN_MAX_BYTES + 1];
    struct records *r;
    int64_t wait;

    c->want_token = json_is_true(json_object_get(http_json(c->ctx), "want_token"));
    if (address_blocked(c) != 0) {
        finish(c);
        return NULL;
    }
    login_key_text(login, key, sizeof key);
    r = acquire(c->api);
    wait = throttle_wait(r, c, kind, key);
    if (wait == 0)
        return r;
    release(c->api, r);
    throttled(c, wait);
    finish(c);
    return NULL;
}

/* The factors of a: "totp", "webauthn", "recovery" (those its role may use). */
static json_t *
factors_json(unsigned usable)
{
    json_t *f = json_array();

    if (usable & MFA_TOTP)
        json_array_append_new(f, json_string("totp"));
    if (usable & MFA_WEBAUTHN)
        json_array_append_new(f, json_string("webauthn"));
    if (usable & MFA_RECOVERY)
        json_array_append_new(f, json_string("recovery"));
    return f;
}

/* What a new session must do next: "none", "required" (pass the factor) or
 * "enroll" (the role needs one and the account has none). */
static void
add_mfa_status(struct call *c, struct records *r, json_t *body, const struct session *s)
{
    struct mfa_state st;
    enum mfa_gate g;

    if (mfa_state_of(r, &c->acct, &st) != CF_OK)
        memset(&st, 0, sizeof st);
    g = mfa_gate(&c->api->mfa, &c->acct, &st, s->row.mfa_level);
    json_object_set_new(body, "mfa", json_string(g == MFA_GATE_OK ? "none"
                                                 : g == MFA_GATE_CHALLENGE ? "required" : "enroll"));
    json_object_set_new(body, "factors", factors_json(mfa_usable(&c->api->mfa, &c->acct, &st)));
}

static void
signed_in(struct call *c, struct records *r)
{
    char token[SESSION_TOKEN_TEXT + 1];
    struct session s;
    json_t *body;
    char device[STORE_DEVICE_MAX + 1];

    session_device(http_header(c->ctx, "User-Agent"), device);
    if (session_create_on(r, c->acct.id, 0, &c->api->sess, device, token, &s) != CF_OK ||
        (c->carry_level > 0 &&
         session_raise_mfa(r, &s, c->carry_level, c->carry_at) != CF_OK)) {
        sodium_memzero(token, sizeof token);
        set_problem(c, 503, "store-unavailable", "Service unavailable",
                    "The session could not be created. Try again.");
        return;
    }
    session_cookie(c, token, c->api->sess.absolute_s);
    body = json_pack("{s:o, s:{s:s, s:I}}", "account", account_json(&c->acct), "session",
                     "ref", s.ref, "expires", (json_int_t)s.row.expires);
    if (c->want_token)
        json_object_set_new(body, "token", json_string(token));
    sodium_memzero(token, sizeof token);
    add_mfa_status(c, r, body, &s);
    set_json(c, 200, body);
    snprintf(c->ae.session, sizeof c->ae.session, "%s", s.ref);
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "ok");
}

/* Hands the password to the hash pool; `done` goes on from a worker.  A
 * full pool answers 503 at once (audited). */
static void
hash_async(struct call *c, enum pwhash_op op, const char *password,
           void (*done)(struct pwhash_job *, enum cf_err))
{
    c->job.op = op;
    snprintf(c->job.password, sizeof c->job.password, "%s", password);
    c->job.done = done;
    c->job.arg = c;
    if (pwhash_submit(c->api->pw, &c->job) != CF_OK) {
        sodium_memzero(c->job.password, sizeof c->job.password);
        sodium_memzero(c->new_password, sizeof c->new_password);
        overloaded(c);
        finish(c);
    }
}

static void
login_hashed(struct pwhash_job *j, enum cf_err rc)
{
    struct call *c = j->arg;
    struct records *r = acquire(c->api);
    int ok = rc == CF_OK && j->ok && c->found &&
             strcmp(c->acct.row.state, ACCOUNT_STATE_ACTIVE) == 0;

    if (ok) {
        struct cf_errmsg em = { "" };

        account_throttle_clear(r, c->k_login);
        /* Parameters changed since this hash: keep the new one. */
        if (j->new_hash[0] != '\0' &&
            account_set_password(r, &c->acct, j->new_hash, 0, &em) != CF_OK)
            log_warnx("login: could not store a rehashed password");
        sodium_memzero(j->new_hash, sizeof j->new_hash);
        signed_in(c, r);
        http_metric_add(http_server_of(c->ctx), "coffre_logins_total", "outcome=ok", 1);
    } else {
        throttle_failed(r, c);
        invalid_credentials(c);
        http_metric_add(http_server_of(c->ctx), "coffre_logins_total", "outcome=failed", 1);
    }
    release(c->api, r);
    finish(c);
}

static void
h_login(struct http_ctx *ctx, void *app)
{
    static const char *const allowed[] = { "login", "password", "want_token", NULL };
    struct call *c = begin(ctx, app, "login");
    json_t *body = http_json(ctx);
    const char *login, *password;
    struct records *r;

    if (c == NULL)
        return;
    login = str_member(body, "login", API_LOGIN_MAX_BYTES);
    password = str_member(body, "password", PASSWORD_MAX_BYTES);
    if (http_json_only(body, allowed) != 0 || login == NULL || password == NULL ||
        password[0] == '\0') {
        bad_request(c, "Send a JSON object with a login and a password (at most 128 bytes).");
        finish(c);
        return;
    }
    if ((r = preauth(c, "login", login)) == NULL)
        return;
    c->job.rehash = 1;
    c->found = account_signin_target(r, login, pwhash_dummy(c->api->pw), &c->acct, c->job.hash);
    if (c->found)
        snprintf(c->ae.actor, sizeof c->ae.actor, "acct:%s", c->acct.id);
    release(c->api, r);
    hash_async(c, PWHASH_VERIFY, password, login_hashed);
}

/* ---- activation ------------------------------------------------------- */

static void
activation_failed(struct call *c)
{
    /* One answer for an unknown login, a wrong, used or expired code, a
     * code of another account and a frozen account. */
    set_problem(c, 401, "activation-failed", "Activation failed",
                "The login or the activation code is not right, or the code is no longer "
                "valid. Check both, or ask your school for a new code.");
}

static void
activate_hashed(struct pwhash_job *j, enum cf_err rc)
{
    struct call *c = j->arg;
    struct records *r = acquire(c->api);
    struct cf_errmsg em = { "" };

    if (rc != CF_OK)
        overloaded(c);
    else if (account_activate(r, &c->acct, j->hash, &em) != CF_OK) {
        /* activated meanwhile by someone else: the code was single use */
        activation_failed(c);
    } else {
        account_throttle_clear(r, c->k_login);
        signed_in(c, r);
        http_metric_add(http_server_of(c->ctx), "coffre_activations_total", "outcome=ok", 1);
    }
    sodium_memzero(j->hash, sizeof j->hash);
    release(c->api, r);
    finish(c);
}

static void
h_activate(struct http_ctx *ctx, void *app)
{
    static const char *const allowed[] = { "login", "code", "password", "want_token", NULL };
    struct call *c = begin(ctx, app, "account.activate");
    json_t *body = http_json(ctx);
    const char *login, *code, *password;
    char why[256];
    struct records *r;
    double bits;
    int ok;

    if (c == NULL)
        return;
    login = str_member(body, "login", API_LOGIN_MAX_BYTES);
    code = str_member(body, "code", API_CODE_MAX_BYTES);
    password = str_member(body, "password", PASSWORD_MAX_BYTES);
    /* A page asks in two steps: the code first (no password), then both. */
    if (http_json_only(body, allowed) != 0 || login == NULL || code == NULL ||
        (password == NULL && c->page == NULL)) {
        bad_request(c, "Send a JSON object with a login, an activation code and a new password.");
        finish(c);
        return;
    }
    if ((r = preauth(c, "activate", login)) == NULL)
        return;
    c->found = account_find(r, login, &c->acct) == CF_OK;
    if (!c->found) {
        /* Check the code against a row that can match nothing, so that an
         * unknown login costs the same as a known one. */
        memset(&c->acct, 0, sizeof c->acct);
        snprintf(c->acct.row.compartment, sizeof c->acct.row.compartment, "%s",
                 keyring_code_at(records_keyring(r), 0));
    }
    ok = account_check_code(r, &c->acct, code, (int64_t)time(NULL)) == CF_OK && c->found;
    if (c->found)
        snprintf(c->ae.actor, sizeof c->ae.actor, "acct:%s", c->acct.id);
    if (!ok) {
        throttle_failed(r, c);
        release(c->api, r);
        activation_failed(c);
        http_metric_add(http_server_of(c->ctx), "coffre_activations_total", "outcome=failed", 1);
        finish(c);
        return;
    }
    if (password == NULL) {
        /* the page's first step: the code is right, nothing is used up */
        release(c->api, r);
        snprintf(c->ae.action, sizeof c->ae.action, "account.activate.check");
        set_json(c, 200, json_pack("{s:s, s:s, s:b}", "login", login, "code", code,
                                   "step_password", 1));
        snprintf(c->ae.outcome, sizeof c->ae.outcome, "ok");
        finish(c);
        return;
    }
    if (account_password_policy(r, &c->acct, password, c->api->min_bits, &bits, why,
                                sizeof why) != CF_OK) {
        release(c->api, r);
        set_problem(c, 422, "weak-password", "Choose another password", why);
        snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
        finish(c);
        return;
    }
    release(c->api, r);
    hash_async(c, PWHASH_HASH, password, activate_hashed);
}

/* ---- password change -------------------------------------------------- */

static void
password_checked(struct pwhash_job *j, enum cf_err rc)
{
    struct call *c = j->arg;
    struct records *r;
    struct cf_errmsg em = { "" };
    uint64_t n;

    if (rc != CF_OK) {
        overloaded(c);
        finish(c);
        return;
    }
    if (j->op == PWHASH_VERIFY) {
        if (!j->ok) {
            r = acquire(c->api);
            throttle_failed(r, c);
            release(c->api, r);
            set_problem(c, 403, "invalid-credentials", "Password not changed",
                        "The current password is not right.");
            finish(c);
            return;
        }
        /* now hash the new one */
        j->op = PWHASH_HASH;
        memcpy(j->password, c->new_password, sizeof j->password);
        sodium_memzero(c->new_password, sizeof c->new_password);
        if (pwhash_submit(c->api->pw, j) != CF_OK) {
            sodium_memzero(j->password, sizeof j->password);
            overloaded(c);
            finish(c);
        }
        return;
    }
    r = acquire(c->api);
    /* The new password and the end of every session made with the old one
     * commit together, or not at all. */
    if (store_begin(records_store(r), STORE_TX_NORMAL) != CF_OK ||
        account_set_password(r, &c->acct, j->hash, 1, &em) != CF_OK ||
        store_sessions_revoke(records_store(r), c->acct.row.id, NULL, &n) != CF_OK ||
        store_commit(records_store(r), &em) != CF_OK) {
        store_rollback(records_store(r));
        set_problem(c, 503, "store-unavailable", "Service unavailable",
                    "The password could not be saved. Try again.");
    } else {
        signed_in(c, r);
        snprintf(c->ae.outcome, sizeof c->ae.outcome, "ok");
    }
    sodium_memzero(j->hash, sizeof j->hash);
    release(c->api, r);
    finish(c);
}

static void
h_password(struct http_ctx *ctx, void *app)
{
    static const char *const allowed[] = { "current", "new", "want_token", NULL };
    struct call *c = begin(ctx, app, "account.password");
    json_t *body = http_json(ctx);
    const char *cur, *new;
    struct records *r;
    struct session s;
    char why[256];
    double bits;

    if (c == NULL)
        return;
    cur = str_member(body, "current", PASSWORD_MAX_BYTES);
    new = str_member(body, "new", PASSWORD_MAX_BYTES);
    r = acquire(c->api);
    if (authenticate(c, r, AUTH_FACTOR, &s) != 0) {
        release(c->api, r);
        finish(c);
        return;
    }
    /* the new session keeps the second factor this one passed */
    c->carry_level = s.row.mfa_level;
    c->carry_at = s.row.mfa_at;
    if (http_json_only(body, allowed) != 0 || cur == NULL || new == NULL) {
        release(c->api, r);
        bad_request(c, "Send a JSON object with the current and the new password.");
        finish(c);
        return;
    }
    c->want_token = json_is_true(json_object_get(body, "want_token"));
    {
        int64_t wait = throttle_wait(r, c, "password", c->acct.id);

        if (wait > 0) {
            release(c->api, r);
            throttled(c, wait);
            finish(c);
            return;
        }
    }
    if (account_password_policy(r, &c->acct, new, c->api->min_bits, &bits, why,
                                sizeof why) != CF_OK ||
        account_password_hash(r, &c->acct, c->job.hash) != CF_OK) {
        release(c->api, r);
        set_problem(c, 422, "weak-password", "Choose another password", why);
        finish(c);
        return;
    }
    release(c->api, r);
    snprintf(c->new_password, sizeof c->new_password, "%s", new);
    hash_async(c, PWHASH_VERIFY, cur, password_checked);
}

/* ---- signed-in requests ---------------------------------------------- */

typedef void (*signed_in_fn)(struct call *c, struct records *r, struct session *s);

/* An address the guard blocked after an alert gets nothing for a while. */
static int
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
static void
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

static void
ok(struct call *c, unsigned status, json_t *body)
{
    set_json(c, status, body);
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "ok");
}

static void
unavailable(struct call *c)
{
    set_problem(c, 503, "store-unavailable", "Service unavailable",
                "The store did not answer. Try again.");
}

/* ---- sessions --------------------------------------------------------- */

static int
recovery_item(void *arg, int64_t when)
{
    json_array_append_new(arg, json_pack("{s:I}", "time", (json_int_t)when));
    return 0;
}

/* The notice of spent recovery codes, on the sessions and factors lists:
 * a code used by someone else shows here. */
static json_t *
recovery_used_json(struct records *r, const struct account *a)
{
    json_t *list = json_array();

    if (mfa_recovery_used(r, a, recovery_item, list) != CF_OK)
        log_warnx("mfa: cannot list the spent recovery codes");
    return list;
}

static void
do_whoami(struct call *c, struct records *r, struct session *s)
{
    json_t *body = json_pack("{s:o, s:{s:s, s:I, s:I, s:i, s:I}}", "account", account_json(&c->acct),
                             "session", "ref", s->ref, "created", (json_int_t)s->row.created,
                             "expires", (json_int_t)s->row.expires, "mfa_level", s->row.mfa_level,
                             "mfa_at", (json_int_t)s->row.mfa_at);

    add_mfa_status(c, r, body, s);
    ok(c, 200, body);
}

static void
do_logout(struct call *c, struct records *r, struct session *s)
{
    if (session_revoke(r, s) != CF_OK) {
        unavailable(c);
        return;
    }
    ok(c, 200, json_pack("{s:b}", "signed_out", 1));
    snprintf(c->set_cookie, sizeof c->set_cookie,
             "%s=; HttpOnly;%s SameSite=Strict; Path=/; Max-Age=0", SESSION_COOKIE,
             http_is_plain_loopback(c->ctx) ? "" : " Secure;");
}

struct session_items {
    json_t *list;
    const char *current;
};

static int
session_item(void *arg, const struct session *s)
{
    struct session_items *it = arg;
    int64_t now = (int64_t)time(NULL);

    json_array_append_new(it->list, json_pack("{s:s, s:I, s:I, s:I, s:b, s:s, s:b}", "ref", s->ref,
        "created", (json_int_t)s->row.created, "last_used", (json_int_t)s->row.last_used,
        "expires", (json_int_t)s->row.expires,
        "live", !s->row.revoked && now < s->row.expires, "device", s->row.device,
        "current", strcmp(s->ref, it->current) == 0));
    return 0;
}

static void
do_sessions(struct call *c, struct records *r, struct session *s)
{
    json_t *list = json_array();
    struct session_items it = { list, s->ref };

    if (session_list(r, c->acct.id, 100, session_item, &it) != CF_OK) {
        json_decref(list);
        unavailable(c);
        return;
    }
    ok(c, 200, json_pack("{s:o, s:s, s:o}", "sessions", list, "current", s->ref,
                         "recovery_used", recovery_used_json(r, &c->acct)));
}

static void
do_session_revoke(struct call *c, struct records *r, struct session *s)
{
    (void)s;
    if (session_revoke_ref(r, c->acct.id, http_path_rest(c->ctx)) != CF_OK) {
        set_problem(c, 404, "not-found", "No such session",
                    "None of your sessions has this reference.");
        return;
    }
    ok(c, 200, json_pack("{s:b}", "revoked", 1));
}

static void h_whoami(struct http_ctx *x, void *app) { with_session(x, app, "session.read", AUTH_ANY, do_whoami); }
static void h_logout(struct http_ctx *x, void *app) { with_session(x, app, "session.logout", AUTH_ANY, do_logout); }
static void h_sessions(struct http_ctx *x, void *app) { with_session(x, app, "session.list", AUTH_PARTIAL, do_sessions); }
static void h_session_revoke(struct http_ctx *x, void *app) { with_session(x, app, "session.revoke", AUTH_ANY, do_session_revoke); }

/* ---- second factors (docs/mfa.md) -------------------------------------
 *
 * Every handler here is reachable by a session that has not passed its
 * second factor (AUTH_PARTIAL): enrollment and challenges.  Adding a factor
 * to an account that already has one needs a fresh factor (step-up), so a
 * stolen password cannot add the thief's own.  Codes are throttled like
 * passwords, per account and per address ("totp" kind, shared by TOTP and
 * recovery codes).  Nothing is changed on any refusal, and every refusal
 * is audited.
 */

static void
mfa_failed(struct call *c, struct records *r, const char *detail)
{
    throttle_failed(r, c);
    set_problem(c, 401, "mfa-failed", "Code not accepted", detail);
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
    http_metric_add(http_server_of(c->ctx), "coffre_mfa_failures_total", NULL, 1);
}

static void
factor_not_allowed(struct call *c)
{
    set_problem(c, 403, "factor-not-allowed", "Factor not allowed",
                "Your role may not use this kind of second factor.");
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
}

static void
bad_code(struct call *c)
{
    bad_request(c, "A code is 6 digits (TOTP) or 12 letters and digits (recovery code), "
                   "without spaces or other characters.");
}

/* The code member of {code}, or NULL after answering 400. */
static const char *
code_of(struct call *c)
{
    static const char *const allowed[] = { "code", NULL };
    json_t *body = http_json(c->ctx);
    const char *code = str_member(body, "code", MFA_CODE_MAX_BYTES);

    if (http_json_only(body, allowed) != 0 || code == NULL) {
        bad_code(c);
        return NULL;
    }
    return code;
}

/* Throttle of this account's and this address's code attempts; 0 to go on. */
static int
code_throttle(struct call *c, struct records *r)
{
    int64_t wait = throttle_wait(r, c, "totp", c->acct.id);

    if (wait == 0)
        return 0;
    throttled(c, wait);
    return -1;
}

/* An account that has a usable factor adds another only with a fresh one. */
static int
adding_allowed(struct call *c, struct records *r, const struct session *s, unsigned kind)
{
    struct mfa_state st;
    int64_t now = (int64_t)time(NULL);

    if (!(c->api->mfa.allowed[c->acct.role] & kind)) {
        factor_not_allowed(c);
        return -1;
    }
    if (mfa_state_of(r, &c->acct, &st) != CF_OK) {
        unavailable(c);
        return -1;
    }
    if ((mfa_usable(&c->api->mfa, &c->acct, &st) & (MFA_TOTP | MFA_WEBAUTHN)) != 0 &&
        mfa_gate_step_up(&c->api->mfa, &c->acct, &st, s->row.mfa_level, s->row.mfa_at, now) !=
            MFA_GATE_OK) {
        mfa_refused(c, MFA_GATE_CHALLENGE, 1);
        return -1;
    }
    return 0;
}

/* The session passed a factor: raise it and answer. */
static void
factor_passed(struct call *c, struct records *r, struct session *s, int level, json_t *body)
{
    if (session_raise_mfa(r, s, level, (int64_t)time(NULL)) != CF_OK) {
        json_decref(body);
        unavailable(c);
        return;
    }
    if (!sodium_is_zero(c->k_login, sizeof c->k_login))      /* a code was throttled */
        account_throttle_clear(r, c->k_login);
    if (body == NULL)
        body = json_object();
    json_object_set_new(body, "mfa_level", json_integer(s->row.mfa_level));
    ok(c, 200, body);
}

static json_t *
codes_list(char codes[MFA_RECOVERY_COUNT][MFA_RECOVERY_TEXT + 1])
{
    json_t *list = json_array();
    size_t i;

    for (i = 0; i < MFA_RECOVERY_COUNT; i++)
        json_array_append_new(list, json_string(codes[i]));
    sodium_memzero(codes, MFA_RECOVERY_COUNT * sizeof codes[0]);
    return list;
}

static void
do_totp_enroll(struct call *c, struct records *r, struct session *s)
{
    static const char *const allowed[] = { NULL };
    struct mfa_totp_enrollment e;

    if (http_json_only(http_json(c->ctx), allowed) != 0) {
        bad_request(c, "Send an empty JSON object.");
        return;
    }
    if (adding_allowed(c, r, s, MFA_TOTP) != 0)
        return;
    if (mfa_totp_enroll(r, &c->acct, s->row.token_hash, (int64_t)time(NULL), &e) != CF_OK) {
        unavailable(c);
        return;
    }
    ok(c, 200, json_pack("{s:s, s:s, s:s, s:i, s:i}", "secret", e.secret, "otpauth_uri", e.uri,
                         "qr_svg", e.qr_svg, "digits", MFA_TOTP_DIGITS, "period", MFA_TOTP_STEP_S));
    mfa_totp_enrollment_release(&e);
}

static void
do_totp_confirm(struct call *c, struct records *r, struct session *s)
{
    char codes[MFA_RECOVERY_COUNT][MFA_RECOVERY_TEXT + 1];
    const char *code = code_of(c);
    int64_t now = (int64_t)time(NULL);
    struct cf_errmsg em = { "" };
    struct mfa_state st;
    int first;
    enum cf_err rc;

    if (code == NULL || code_throttle(c, r) != 0)
        return;
    if (mfa_state_of(r, &c->acct, &st) != CF_OK ||
        store_begin(records_store(r), STORE_TX_NORMAL) != CF_OK) {
        unavailable(c);
        return;
    }
    /* the first factor brings the recovery codes, in the same transaction */
    first = st.recovery_left == 0;
    rc = mfa_totp_confirm(r, &c->acct, s->row.token_hash, code, now);
    if (rc == CF_OK && first)
        rc = mfa_recovery_new(r, &c->acct, now, codes);
    if (rc == CF_OK)
        rc = store_commit(records_store(r), &em);
    else
        store_rollback(records_store(r));
    switch (rc) {
    case CF_OK:
        factor_passed(c, r, s, MFA_LEVEL_CODE, first ? json_pack("{s:o}", "recovery_codes",
                                                                 codes_list(codes)) : NULL);
        break;
    case CF_ERR_INPUT:
        bad_code(c);
        break;
    case CF_ERR_NOTFOUND:
        set_problem(c, 409, "no-pending-enrollment", "Nothing to confirm",
                    "No TOTP enrollment started by this session is waiting. Start one "
                    "(POST /api/v1/mfa/totp/enroll) and confirm it from the same session.");
        snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
        break;
    case CF_ERR_AUTH:
        mfa_failed(c, r, "The code is not right. Check the device's clock and try the next code.");
        break;
    default:
        unavailable(c);
        break;
    }
    sodium_memzero(codes, sizeof codes);
}

static void
do_totp_verify(struct call *c, struct records *r, struct session *s)
{
    const char *code = code_of(c);

    if (code == NULL)
        return;
    if (!(c->api->mfa.allowed[c->acct.role] & MFA_TOTP)) {
        factor_not_allowed(c);
        return;
    }
    if (code_throttle(c, r) != 0)
        return;
    switch (mfa_totp_verify(r, &c->acct, code, (int64_t)time(NULL))) {
    case CF_OK:
        factor_passed(c, r, s, MFA_LEVEL_CODE, NULL);
        break;
    case CF_ERR_INPUT:
        bad_code(c);
        break;
    case CF_ERR_NOTFOUND:
        set_problem(c, 409, "no-totp", "No TOTP", "This account has no TOTP enrolled.");
        snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
        break;
    case CF_ERR_AUTH:
        mfa_failed(c, r, "The code is not right or was already used. Wait for the next code.");
        break;
    default:
        unavailable(c);
        break;
    }
}

static void
do_recovery_verify(struct call *c, struct records *r, struct session *s)
{
    const char *code = code_of(c);
    struct mfa_state st;

    if (code == NULL)
        return;
    if (!(c->api->mfa.allowed[c->acct.role] & MFA_RECOVERY)) {
        factor_not_allowed(c);
        return;
    }
    if (code_throttle(c, r) != 0)
        return;
    snprintf(c->ae.fields, sizeof c->ae.fields, "recovery_code");
    switch (mfa_recovery_use(r, &c->acct, code, (int64_t)time(NULL))) {
    case CF_OK:
        if (mfa_state_of(r, &c->acct, &st) != CF_OK)
            st.recovery_left = 0;
        log_kv(LOG_WARN, "recovery code used", "account", c->acct.id, (const char *)NULL);
        factor_passed(c, r, s, MFA_LEVEL_CODE, json_pack("{s:i}", "recovery_left",
                                                         (int)st.recovery_left));
        break;
    case CF_ERR_INPUT:
        bad_code(c);
        break;
    case CF_ERR_AUTH:
        mfa_failed(c, r, "This recovery code is not right or was already used.");
        break;
    default:
        unavailable(c);
        break;
    }
}

static int
key_item(void *arg, const struct mfa_key_info *k)
{
    json_array_append_new(arg, json_pack("{s:s, s:s, s:I, s:I}", "id", k->id, "name", k->name,
                                         "created", (json_int_t)k->created,
                                         "last_used", (json_int_t)k->last_used));
    return 0;
}

static void
do_mfa_status(struct call *c, struct records *r, struct session *s)
{
    struct mfa_state st;
    json_t *keys = json_array(), *body;

    if (mfa_state_of(r, &c->acct, &st) != CF_OK || mfa_keys(r, &c->acct, key_item, keys) != CF_OK) {
        json_decref(keys);
        unavailable(c);
        return;
    }
    body = json_pack("{s:b, s:b, s:i, s:o, s:o, s:b, s:o, s:i, s:I}",
                     "totp", (st.enrolled & MFA_TOTP) != 0, "totp_pending", st.totp_pending,
                     "recovery_left", (int)st.recovery_left, "keys", keys,
                     "recovery_used", recovery_used_json(r, &c->acct),
                     "required", mfa_role_required(&c->api->mfa, c->acct.role),
                     "allowed", factors_json(c->api->mfa.allowed[c->acct.role]),
                     "mfa_level", s->row.mfa_level, "mfa_at", (json_int_t)s->row.mfa_at);
    add_mfa_status(c, r, body, s);
    ok(c, 200, body);
}

static void h_mfa_status(struct http_ctx *x, void *app) { with_session(x, app, "mfa.read", AUTH_PARTIAL, do_mfa_status); }
static void h_totp_enroll(struct http_ctx *x, void *app) { with_session(x, app, "mfa.totp.enroll", AUTH_PARTIAL, do_totp_enroll); }
static void h_totp_confirm(struct http_ctx *x, void *app) { with_session(x, app, "mfa.totp.confirm", AUTH_PARTIAL, do_totp_confirm); }
static void h_totp_verify(struct http_ctx *x, void *app) { with_session(x, app, "mfa.totp.verify", AUTH_PARTIAL, do_totp_verify); }
static void h_recovery_verify(struct http_ctx *x, void *app) { with_session(x, app, "mfa.recovery.use", AUTH_PARTIAL, do_recovery_verify); }

/* ---- WebAuthn --------------------------------------------------------- */

/* A base64url member decoded into a malloc'd buffer of at most max bytes
 * (padding tolerated).  NULL when absent, malformed or too long. */
static uint8_t *
b64_member(json_t *body, const char *name, size_t max, size_t *len)
{
    const char *v = str_member(body, name, 4 * (max / 3 + 1) + 2);
    uint8_t *out;
    size_t n;

    if (v == NULL)
        return NULL;
    n = strlen(v);
    while (n > 0 && v[n - 1] == '=')
        n--;
    out = malloc(max > 0 ? max : 1);
    if (out == NULL || n == 0 ||
        sodium_base642bin(out, max, v, n, NULL, len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static char *
b64_text(const uint8_t *b, size_t n, char *out, size_t cap)
{
    return sodium_bin2base64(out, cap, b, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void
webauthn_refused(struct call *c, const struct cf_errmsg *em)
{
    char detail[300];

    snprintf(detail, sizeof detail, "The security key's answer was refused: %s.",
             em->msg[0] != '\0' ? em->msg : "it does not verify");
    set_problem(c, 400, "webauthn-invalid", "Security key not accepted", detail);
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
    http_metric_add(http_server_of(c->ctx), "coffre_mfa_failures_total", NULL, 1);
}

static int
cred_item(void *arg, const struct mfa_key_info *k)
{
    char id[2 * MFA_CRED_ID_MAX];

    json_array_append_new(arg, json_pack("{s:s, s:s}", "type", "public-key", "id",
                                         b64_text(k->cred_id, k->cred_idlen, id, sizeof id)));
    return 0;
}

static void
do_register_begin(struct call *c, struct records *r, struct session *s)
{
    static const char *const allowed[] = { NULL };
    uint8_t ch[MFA_CHALLENGE_BYTES];
    char chb[64], uid[64];
    json_t *exclude = json_array();

    if (http_json_only(http_json(c->ctx), allowed) != 0) {
        json_decref(exclude);
        bad_request(c, "Send an empty JSON object.");
        return;
    }
    if (adding_allowed(c, r, s, MFA_WEBAUTHN) != 0 ||
        mfa_keys(r, &c->acct, cred_item, exclude) != CF_OK) {
        if (c->status == 0)
            unavailable(c);
        json_decref(exclude);
        return;
    }
    if (json_array_size(exclude) >= MFA_KEYS_MAX) {
        json_decref(exclude);
        set_problem(c, 409, "too-many-keys", "Too many security keys",
                    "Remove a security key before adding another (at most 10).");
        return;
    }
    if (mfa_webauthn_challenge(r, s->row.token_hash, "register", (int64_t)time(NULL), ch) != CF_OK) {
        json_decref(exclude);
        unavailable(c);
        return;
    }
    ok(c, 200, json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s}, s:[{s:s, s:i}, {s:s, s:i}], "
                         "s:i, s:s, s:{s:s, s:s}, s:o}",
                         "challenge", b64_text(ch, sizeof ch, chb, sizeof chb),
                         "rp", "id", c->api->wa.rp_id, "name", "coffre",
                         "user", "id", b64_text(c->acct.row.id, STORE_ID_BYTES, uid, sizeof uid),
                         "name", c->acct.login, "displayName", c->acct.login,
                         "pubKeyCredParams", "type", "public-key", "alg", -7, "type", "public-key",
                         "alg", -8, "timeout", MFA_CHALLENGE_TTL_S * 1000, "attestation", "none",
                         "authenticatorSelection", "userVerification", "preferred",
                         "residentKey", "discouraged", "excludeCredentials", exclude));
    sodium_memzero(ch, sizeof ch);
}

/* The binary members of a finish request; 0, or -1 after answering 400. */
static int
webauthn_input(struct call *c, json_t *body, int registering, struct mfa_webauthn_input *in,
               uint8_t **bufs)
{
    static const char *const reg[] = { "name", "id", "rawId", "type", "clientDataJSON",
                                       "attestationObject", "transports", NULL };
    static const char *const as[] = { "id", "rawId", "type", "clientDataJSON", "authenticatorData",
                                      "signature", "userHandle", NULL };

    memset(in, 0, sizeof *in);
    if (http_json_only(body, registering ? reg : as) != 0) {
        bad_request(c, registering ? "Send name, id, clientDataJSON and attestationObject."
                                   : "Send id, clientDataJSON, authenticatorData and signature.");
        return -1;
    }
    bufs[0] = b64_member(body, "id", MFA_CRED_ID_MAX, &in->idlen);
    bufs[1] = b64_member(body, "clientDataJSON", MFA_CLIENTDATA_MAX, &in->cdjlen);
    if (registering) {
        in->name = str_member(body, "name", MFA_KEY_NAME_MAX);
        bufs[2] = b64_member(body, "attestationObject", MFA_ATTESTATION_MAX, &in->attlen);
        bufs[3] = NULL;
    } else {
        bufs[2] = b64_member(body, "authenticatorData", MFA_AUTHDATA_MAX, &in->adlen);
        bufs[3] = b64_member(body, "signature", MFA_SIGNATURE_MAX, &in->siglen);
    }
    if (bufs[0] == NULL || bufs[1] == NULL || bufs[2] == NULL || (!registering && bufs[3] == NULL) ||
        (registering && in->name == NULL)) {
        bad_request(c, "A member is missing, not base64url, or over its bound (docs/mfa.md).");
        return -1;
    }
    in->id = bufs[0];
    in->cdj = bufs[1];
    if (registering)
        in->att = bufs[2];
    else {
        in->ad = bufs[2];
        in->sig = bufs[3];
    }
    return 0;
}

static void
do_register_finish(struct call *c, struct records *r, struct session *s)
{
    char codes[MFA_RECOVERY_COUNT][MFA_RECOVERY_TEXT + 1], key_id[RECORD_ID_HEX + 1];
    uint8_t *bufs[4] = { NULL, NULL, NULL, NULL };
    int64_t now = (int64_t)time(NULL);
    struct mfa_webauthn_input in;
    struct cf_errmsg em = { "" };
    struct mfa_state st;
    enum cf_err rc;
    int first;
    size_t i;

    if (webauthn_input(c, http_json(c->ctx), 1, &in, bufs) != 0 ||
        adding_allowed(c, r, s, MFA_WEBAUTHN) != 0)
        goto out;
    if (mfa_state_of(r, &c->acct, &st) != CF_OK) {
        unavailable(c);
        goto out;
    }
    first = st.recovery_left == 0;
    /* the challenge is taken outside the transaction: spent even when
     * what follows is refused */
    rc = mfa_webauthn_register(r, &c->api->wa, &c->acct, s->row.token_hash, &in, now, key_id, &em);
    if (rc == CF_OK && first && (rc = store_begin(records_store(r), STORE_TX_NORMAL)) == CF_OK) {
        if ((rc = mfa_recovery_new(r, &c->acct, now, codes)) == CF_OK)
            rc = store_commit(records_store(r), &em);          /* rolls back on failure */
        else
            store_rollback(records_store(r));
    }
    switch (rc) {
    case CF_OK:
        snprintf(c->ae.subject, sizeof c->ae.subject, "key:%s", key_id);
        factor_passed(c, r, s, MFA_LEVEL_KEY, json_pack("{s:{s:s, s:s}}", "key", "id", key_id,
                                                        "name", in.name));
        if (first && c->body != NULL)
            json_object_set_new(c->body, "recovery_codes", codes_list(codes));
        break;
    case CF_ERR_AUTH:
    case CF_ERR_INPUT:
    case CF_ERR_LIMIT:
    case CF_ERR_EXISTS:
        webauthn_refused(c, &em);
        break;
    default:
        unavailable(c);
        break;
    }
    sodium_memzero(codes, sizeof codes);
out:
    for (i = 0; i < 4; i++)
        free(bufs[i]);
}

static void
do_assert_begin(struct call *c, struct records *r, struct session *s)
{
    static const char *const allowed[] = { NULL };
    uint8_t ch[MFA_CHALLENGE_BYTES];
    json_t *creds = json_array();
    char chb[64];

    if (http_json_only(http_json(c->ctx), allowed) != 0) {
        json_decref(creds);
        bad_request(c, "Send an empty JSON object.");
        return;
    }
    if (!(c->api->mfa.allowed[c->acct.role] & MFA_WEBAUTHN)) {
        json_decref(creds);
        factor_not_allowed(c);
        return;
    }
    if (mfa_keys(r, &c->acct, cred_item, creds) != CF_OK) {
        json_decref(creds);
        unavailable(c);
        return;
    }
    if (json_array_size(creds) == 0) {
        json_decref(creds);
        set_problem(c, 409, "no-keys", "No security key",
                    "This account has no security key registered.");
        snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
        return;
    }
    if (mfa_webauthn_challenge(r, s->row.token_hash, "assert", (int64_t)time(NULL), ch) != CF_OK) {
        json_decref(creds);
        unavailable(c);
        return;
    }
    ok(c, 200, json_pack("{s:s, s:s, s:o, s:s, s:i}", "challenge",
                         b64_text(ch, sizeof ch, chb, sizeof chb), "rpId", c->api->wa.rp_id,
                         "allowCredentials", creds, "userVerification", "preferred",
                         "timeout", MFA_CHALLENGE_TTL_S * 1000));
}

static void
do_assert_finish(struct call *c, struct records *r, struct session *s)
{
    uint8_t *bufs[4] = { NULL, NULL, NULL, NULL };
    struct mfa_webauthn_input in;
    struct cf_errmsg em = { "" };
    enum cf_err rc;
    int uv = 0;
    size_t i;

    if (webauthn_input(c, http_json(c->ctx), 0, &in, bufs) != 0)
        goto out;
    if (!(c->api->mfa.allowed[c->acct.role] & MFA_WEBAUTHN)) {
        factor_not_allowed(c);
        goto out;
    }
    rc = mfa_webauthn_assert(r, &c->api->wa, &c->acct, s->row.token_hash, &in, (int64_t)time(NULL),
                             &uv, &em);
    if (rc == CF_OK)
        factor_passed(c, r, s, MFA_LEVEL_KEY, json_pack("{s:b}", "user_verified", uv));
    else if (rc == CF_ERR_AUTH || rc == CF_ERR_INPUT || rc == CF_ERR_LIMIT)
        webauthn_refused(c, &em);
    else
        unavailable(c);
out:
    for (i = 0; i < 4; i++)
        free(bufs[i]);
}

static void
do_key_remove(struct call *c, struct records *r, struct session *s)
{
    (void)s;
    switch (mfa_key_remove(r, &c->acct, http_path_rest(c->ctx))) {
    case CF_OK:
        snprintf(c->ae.subject, sizeof c->ae.subject, "key:%.32s", http_path_rest(c->ctx));
        ok(c, 200, json_pack("{s:b}", "removed", 1));
        break;
    case CF_ERR_NOTFOUND:
        set_problem(c, 404, "not-found", "No such key", "None of your security keys has this id.");
        break;
    default:
        unavailable(c);
        break;
    }
}

static void h_register_begin(struct http_ctx *x, void *app) { with_session(x, app, "mfa.webauthn.register.begin", AUTH_PARTIAL, do_register_begin); }
static void h_register_finish(struct http_ctx *x, void *app) { with_session(x, app, "mfa.webauthn.register", AUTH_PARTIAL, do_register_finish); }
static void h_assert_begin(struct http_ctx *x, void *app) { with_session(x, app, "mfa.webauthn.assert.begin", AUTH_PARTIAL, do_assert_begin); }
static void h_assert_finish(struct http_ctx *x, void *app) { with_session(x, app, "mfa.webauthn.assert", AUTH_PARTIAL, do_assert_finish); }
static void h_key_remove(struct http_ctx *x, void *app) { with_session(x, app, "mfa.webauthn.remove", AUTH_STEP_UP, do_key_remove); }

/* ---- administration --------------------------------------------------- */

/* The admin's scope: their académie, optionally one establishment of it. */
static int
admin_scope(struct call *c, struct records *r, json_t *body, struct incident_scope *sc,
            char est[RECORD_ID_HEX + 1])
{
    const char *uai = str_member(body, "establishment", API_SCOPE_MAX_BYTES);
    struct record *e;

    sc->academie = c->acct.row.compartment;
    sc->establishment_id = NULL;
    if (json_object_get(body, "establishment") == NULL)
        return 0;
    e = malloc(sizeof *e);
    if (uai == NULL || e == NULL ||
        records_find(r, REC_ESTABLISHMENT, "uai", uai, 0, e, NULL) != CF_OK ||
        strcmp(e->compartment, c->acct.row.compartment) != 0) {
        free(e);
        set_problem(c, 404, "not-found", "No such establishment",
                    "No establishment of your académie has this UAI.");
        return -1;
    }
    memcpy(est, e->id, RECORD_ID_HEX + 1);
    free(e);
    sc->establishment_id = est;
    return 0;
}

static const struct {
    const char *name;
    enum incident what;
} incidents[] = {
    { "freeze-unactivated", INCIDENT_FREEZE_UNACTIVATED },
    { "reset-codes", INCIDENT_RESET_CODES },
    { "revoke-sessions", INCIDENT_REVOKE_SESSIONS },
    { "force-password-reset", INCIDENT_FORCE_PASSWORD_RESET },
};

/* "login<TAB>code<TAB>expiry" lines -> a JSON list; wipes the text. */
static json_t *
codes_json(char *codes)
{
    json_t *list = json_array();
    char *line = codes, *nl;

    while (*line != '\0' && (nl = strchr(line, '\n')) != NULL) {
        char login[ACCOUNT_LOGIN_MAX + 1], code[ACTIVATION_CODE_TEXT + 1];
        long long exp;

        *nl = '\0';
        /* NOLINTNEXTLINE(cert-err34-c): codes text account.c wrote itself; a line that does not scan is skipped */
        if (sscanf(line, "%64s %14s %lld", login, code, &exp) == 3)
            json_array_append_new(list, json_pack("{s:s, s:s, s:I}", "login", login,
                                                  "code", code, "expires", (json_int_t)exp));
        sodium_memzero(code, sizeof code);
        line = nl + 1;
    }
    sodium_memzero(codes, (size_t)(line - codes) + strlen(line));
    return list;
}

static void
do_incident(struct call *c, struct records *r, struct session *s)
{
    static const char *const allowed[] = { "establishment", "dry_run", NULL };
    json_t *body = http_json(c->ctx);
    struct incident_scope sc;
    struct cf_errmsg em = { "" };
    char est[RECORD_ID_HEX + 1], *codes = NULL;
    uint64_t n;
    size_t i;
    int dry;
    enum cf_err rc;

    (void)s;
    for (i = 0; i < sizeof incidents / sizeof incidents[0]; i++)
        if (strcmp(http_path_rest(c->ctx), incidents[i].name) == 0)
            break;
    if (i == sizeof incidents / sizeof incidents[0]) {
        set_problem(c, 404, "not-found", "No such incident command",
                    "Use freeze-unactivated, reset-codes, revoke-sessions or force-password-reset.");
        return;
    }
    dry = json_is_true(json_object_get(body, "dry_run"));
    snprintf(c->ae.action, sizeof c->ae.action, "incident.%s%s", incidents[i].name,
             dry ? ".count" : "");
    if (http_json_only(body, allowed) != 0) {
        bad_request(c, "Only 'establishment' (a UAI) and 'dry_run' are accepted.");
        return;
    }
    if (admin_scope(c, r, body, &sc, est) != 0)
        return;
    snprintf(c->ae.subject, sizeof c->ae.subject, "%s%s%s", sc.academie,
             sc.establishment_id ? "," : "", sc.establishment_id ? sc.establishment_id : "");
    rc = dry ? account_incident_count(r, incidents[i].what, &sc, &n)
             : account_incident_run(r, incidents[i].what, &sc, NULL, &codes, &n, &em);
    if (rc != CF_OK) {
        set_problem(c, http_status_of(rc), "incident-failed", "Nothing was changed",
                    "The command failed and was rolled back.");
        return;
    }
    ok(c, 200, json_pack("{s:s, s:b, s:I}", "incident", incidents[i].name, "dry_run", dry,
                         "count", (json_int_t)n));
    /* reset-codes: the new codes, shown once, for distribution */
    if (codes != NULL) {
        json_object_set_new(c->body, "codes", codes_json(codes));
        free(codes);
    }
}

static void
do_provision(struct call *c, struct records *r, struct session *s)
{
    static const char *const allowed[] = { "role", "person_id", "login", "code_days", NULL };
    json_t *body = http_json(c->ctx);
    json_t *days = json_object_get(body, "code_days");
    struct account_provision in = { 0 };
    struct cf_errmsg em = { "" };
    struct account *a;
    char code[ACTIVATION_CODE_TEXT + 1];
    const char *role = str_member(body, "role", 32);
    enum cf_err rc;

    (void)s;
    if (http_json_only(body, allowed) != 0 || role == NULL ||
        account_role_parse(role, &in.role) != 0 ||
        (days != NULL && (!json_is_integer(days) || json_integer_value(days) < 1 ||
                          json_integer_value(days) > ACTIVATION_MAX_DAYS))) {
        bad_request(c, "Send a role, and a person_id (or a login for administrative roles).");
        return;
    }
    in.person_id = str_member(body, "person_id", RECORD_ID_HEX);
    in.login = str_member(body, "login", ACCOUNT_LOGIN_MAX);
    in.academie = c->acct.row.compartment;
    in.code_days = days != NULL ? (unsigned)json_integer_value(days) : 0;
    a = malloc(sizeof *a);
    /* An administrator provisions in their own académie only: the person's
     * compartment is known once provisioned, so check inside a transaction
     * and roll back. */
    rc = a == NULL ? CF_ERR_NOMEM : store_begin(records_store(r), STORE_TX_NORMAL);
    if (rc == CF_OK)
        rc = account_provision(r, &in, a, code, &em);
    if (rc == CF_OK && strcmp(a->row.compartment, c->acct.row.compartment) != 0)
        rc = cf_fail(&em, CF_ERR_DENIED, "this person belongs to another académie");
    if (rc == CF_OK)
        rc = store_commit(records_store(r), &em);
    else if (a != NULL)
        store_rollback(records_store(r));
    if (rc != CF_OK) {
        set_problem(c, http_status_of(rc), "provision-failed", "Account not created",
                    em.msg[0] != '\0' ? em.msg : "The account could not be created.");
    } else {
        snprintf(c->ae.subject, sizeof c->ae.subject, "%s", a->id);
        ok(c, 201, json_pack("{s:o, s:s, s:I}", "account", account_json(a), "activation_code",
                             code, "code_expires", (json_int_t)a->row.code_expires));
    }
    sodium_memzero(code, sizeof code);
    free(a);
}

static void
h_incident(struct http_ctx *ctx, void *app)
{
    char action[AUDIT_ACTION_MAX + 1];
    size_t i;

    /* Named in the trail even when refused: "incident.<known name>". */
    snprintf(action, sizeof action, "incident");
    for (i = 0; i < sizeof incidents / sizeof incidents[0]; i++)
        if (strcmp(http_path_rest(ctx), incidents[i].name) == 0)
            snprintf(action, sizeof action, "incident.%s", incidents[i].name);
    with_session(ctx, app, action, AUTH_ADMIN_STEP_UP, do_incident);
}
static void h_provision(struct http_ctx *x, void *app) { with_session(x, app, "account.provision", AUTH_ADMIN, do_provision); }

/* An administrator unlocks an account of their académie, with a reason
 * code that the audit trail keeps. */
static void
do_unlock(struct call *c, struct records *r, struct session *s)
{
    static const char *const allowed[] = { "login", "reason", NULL };
    json_t *body = http_json(c->ctx);
    const char *login = str_member(body, "login", API_LOGIN_MAX_BYTES);
    const char *reason = str_member(body, "reason", 48);
    struct account *a;
    struct cf_errmsg em = { "" };

    (void)s;
    if (http_json_only(body, allowed) != 0 || login == NULL || reason == NULL ||
        !account_reason_valid(reason)) {
        bad_request(c, "Send a login and a reason code (a-z, 0-9, '-'), e.g. verified-with-user.");
        return;
    }
    snprintf(c->ae.fields, sizeof c->ae.fields, "reason:%s", reason);
    a = malloc(sizeof *a);
    if (a == NULL || account_find(r, login, a) != CF_OK ||
        strcmp(a->row.compartment, c->acct.row.compartment) != 0) {
        free(a);
        set_problem(c, 404, "not-found", "No such account", "No account of your académie has this login.");
        return;
    }
    snprintf(c->ae.subject, sizeof c->ae.subject, "%s", a->id);
    if (account_unlock(r, a, &em) != CF_OK) {
        free(a);
        set_problem(c, 409, "not-locked", "Not locked", "This account is not locked.");
        return;
    }
    if (guard_unlock(c->api->guard, a->id) != CF_OK)
        log_warnx("guard: could not clear an unlocked account's lock");
    ok(c, 200, json_pack("{s:s, s:s}", "login", a->login, "state", a->row.state));
    free(a);
}

static void h_unlock(struct http_ctx *x, void *app) { with_session(x, app, "account.unlock", AUTH_ADMIN, do_unlock); }

/* ---- records: the one path that serves a person's data ---------------
 *
 * Every record the API returns goes through serve_record, in this order:
 *   guard    counts the subject for this principal and address (distinct
 *            subjects in sliding windows, misses weigh more, canaries) and
 *            may lock the account at once;
 *   policy   says whether this principal may see it, and which fields;
 *   records  opens those fields only (the others are never decrypted);
 *   audit    the entry names the subjects and the fields, and the answer
 *            leaves only once it is durable (finish()).
 * No other function in this file opens a record's fields.
 */

/* Records per answer: one page of a class or an establishment's staff.
 * The audit entry names every one: the parent and 30 ids of 32 hex with
 * their commas fit AUDIT_SUBJECT_MAX (1,022 of 1,024 bytes). */
#define API_PAGE_MAX 30
_Static_assert(RECORD_ID_HEX * (API_PAGE_MAX + 1) + API_PAGE_MAX <= AUDIT_SUBJECT_MAX,
               "a page and its parent must fit one audit entry");

/* The guard said no: lock the account, end its sessions, and say so. */
static void
locked_out(struct call *c, struct records *r, const struct guard_alert *al)
{
    uint64_t n;

    if (strcmp(c->acct.row.state, ACCOUNT_STATE_LOCKED) != 0) {
        snprintf(c->acct.row.state, sizeof c->acct.row.state, "%s", ACCOUNT_STATE_LOCKED);
        snprintf(c->acct.row.locked_reason, sizeof c->acct.row.locked_reason, "guard:%s", al->rule);
        c->acct.row.updated = (int64_t)time(NULL);
        if (store_account_update(records_store(r), &c->acct.row) != CF_OK)
            log_warnx("guard: could not record the lock of an account");
    }
    if (store_sessions_revoke(records_store(r), c->acct.row.id, NULL, &n) != CF_OK)
        log_warnx("guard: could not revoke the sessions of a locked account");
    http_metric_add(http_server_of(c->ctx), "coffre_lockouts_total", NULL, 1);
    /* A new alert (not a later request of an account already locked): its
     * row and the address block, which survive a restart. */
    if (alerts_is_alert(al) && !al->dry_run) {
        struct store_alert row;
        int64_t now = now_ms();
        char label[64];

        if (alerts_record(c->api->alerts, records_store(r), al, c->acct.row.compartment,
                          c->api->block_ms > 0 ? "denied, principal locked, address blocked"
                                               : "denied, principal locked",
                          now, c->api->block_ms > 0 ? now + c->api->block_ms : 0, &row) != CF_OK)
            log_warnx("guard: could not record an alert in the store");
        snprintf(label, sizeof label, "rule=%s", al->rule);
        http_metric_add(http_server_of(c->ctx), "coffre_guard_alerts_total", label, 1);
    }
    set_problem(c, 403, "account-locked", "Account locked",
                "Unusual reading was detected; this account is locked until an "
                "administrator of your académie unlocks it.");
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "locked");
    /* The rule, for `coffre scope --rule`: nothing of this answer was
     * served, so the field names gathered so far say nothing. */
    snprintf(c->ae.fields, sizeof c->ae.fields, "rule:%s", al->rule);
}

/* Adds "name" to a comma-separated list unless it is there already (whole
 * items compared).  -1 when it does not fit: the caller must not serve what
 * the audit entry could not name. */
static int
list_add(char *list, size_t cap, const char *name)
{
    size_t n = strlen(list), k = strlen(name);
    const char *p = list;

    while ((p = strstr(p, name)) != NULL) {
        if ((p == list || p[-1] == ',') && (p[k] == ',' || p[k] == '\0'))
            return 0;
        p += k;
    }
    if (n + (n ? 1 : 0) + k >= cap)
        return -1;
    snprintf(list + n, cap - n, "%s%s", n ? "," : "", name);
    return 0;
}

/* The guard's verdict on one read (subject NULL: a lookup that found
 * nothing): 0 to go on, -1 with al filled. */
static int
guard_ask(struct call *c, const uint8_t *subject, const uint8_t *digest, size_t dlen,
          struct guard_alert *al)
{
    struct guard_event ev = { c->acct.id, c->acct.role, c->ae.addr, subject, digest, dlen,
                              now_ms() };

    return guard_check(c->api->guard, &ev, al) == GUARD_ALLOW ? 0 : -1;
}

/* The same, and a DENY locks the account out (never inside a transaction:
 * the lock must not be rolled back). */
static int
guarded(struct call *c, struct records *r, const uint8_t *subject, const uint8_t *digest,
        size_t dlen)
{
    struct guard_alert al;

    if (guard_ask(c, subject, digest, dlen, &al) == 0)
        return 0;
    locked_out(c, r, &al);
    return -1;
}

/*
 * Serves one record: guard, policy, open, and note it for the audit entry.
 * Returns its JSON, or NULL with the call's problem set (denied or locked).
 */
static json_t *
serve_record(struct call *c, struct records *r, const struct policy_principal *p,
             enum record_kind k, const char *id, int in_list)
{
    struct record *rec = malloc(sizeof *rec);
    uint8_t bin[STORE_ID_BYTES];
    const char *why;
    uint32_t mask;
    json_t *o = NULL;
    size_t i;

    if (rec == NULL) {
        unavailable(c);
        return NULL;
    }
    /* The header (ids, parents, compartment) says nothing personal. */
    if (records_id_parse(id, bin) != CF_OK || records_get_kept(r, k, id, rec, NULL) != CF_OK) {
        if (guarded(c, r, NULL, NULL, 0) == 0)
            set_problem(c, 404, "not-found", "Not found", "No such record.");
        goto out;
    }
    if (guarded(c, r, bin, NULL, 0) != 0)
        goto out;
    if (policy_check(r, p, rec, &mask, &why) != CF_OK) {
        /* In a list, an item the principal may not see is left out. */
        c->denied++;
        if (!in_list) {
            set_problem(c, 403, "forbidden", "Not allowed", "You may not read this record.");
            snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
            (void)list_add(c->ae.subject, sizeof c->ae.subject, id);
        }
        goto out;
    }
    /* the fields of the very row the header came from: one read of the store */
    if (records_open_kept(r, mask, rec, NULL) != CF_OK) {
        unavailable(c);
        goto out;
    }
    o = json_pack("{s:s, s:s}", "kind", records_kind_name(k), "id", rec->id);
    if (rec->parent[0][0] != '\0')
        json_object_set_new(o, k == REC_GUARDIAN_LINK ? "guardian_id" : "establishment_id",
                            json_string(rec->parent[0]));
    if (rec->parent[1][0] != '\0')
        json_object_set_new(o, k == REC_GUARDIAN_LINK ? "student_id" : "class_id",
                            json_string(rec->parent[1]));
    for (i = 0; i < records_field_count(k); i++)
        if (rec->present & (1u << i)) {
            json_object_set_new(o, records_field_name(k, i), json_string(rec->value[i]));
            if (list_add(c->ae.fields, sizeof c->ae.fields, records_field_name(k, i)) != 0)
                break;
        }
    /* Served only if the audit entry names it. */
    if (i < records_field_count(k) ||
        list_add(c->ae.subject, sizeof c->ae.subject, rec->id) != 0) {
        json_decref(o);
        o = NULL;
        unavailable(c);
    }
out:
    if (rec != NULL)
        sodium_memzero(rec, sizeof *rec);
    free(rec);
    return o;
}

static void
do_record(struct call *c, struct records *r, enum record_kind k)
{
    struct policy_principal p;
    json_t *o;

    policy_principal_of(&c->acct, &p);
    o = serve_record(c, r, &p, k, http_path_rest(c->ctx), 0);
    if (o != NULL)
        ok(c, 200, o);
}

/* Exact lookup through a blind index (?ine= or ?email=); a miss counts
 * as enumeration. */
static void
do_lookup(struct call *c, struct records *r, enum record_kind k, const char *field)
{
    const char *v = http_param(c->ctx, field);
    struct policy_principal p;
    struct record *rec;
    json_t *o;

    if (v == NULL || strlen(v) > API_SCOPE_MAX_BYTES) {
        bad_request(c, "Give exactly one value to look up.");
        return;
    }
    rec = malloc(sizeof *rec);
    if (rec == NULL || records_find(r, k, field, v, 0, rec, NULL) != CF_OK) {
        free(rec);
        if (guarded(c, r, NULL, NULL, 0) == 0)
            set_problem(c, 404, "not-found", "Not found", "No record matches.");
        return;
    }
    policy_principal_of(&c->acct, &p);
    o = serve_record(c, r, &p, k, rec->id, 0);
    free(rec);
    if (o != NULL)
        ok(c, 200, o);
}

struct page {
    struct call *c;
    struct records *r;
    struct policy_principal p;
    enum record_kind kind;       /* what is served */
    int follow;                  /* -1: the child itself; else serve its parent[follow] */
    json_t *items;
    int locked;
};

static int
page_item(void *arg, const struct record *child)
{
    struct page *pg = arg;
    const char *id = pg->follow < 0 ? child->id : child->parent[pg->follow];
    json_t *o = serve_record(pg->c, pg->r, &pg->p, pg->kind, id, 1);

    if (o != NULL)
        json_array_append_new(pg->items, o);
    else if (strcmp(pg->c->ae.outcome, "locked") == 0 || pg->c->status >= 500) {
        pg->locked = 1;          /* the guard stopped it, or the store failed */
        return 1;
    }
    return 0;
}

/* Pages a list may have: a class or an establishment's staff is far
 * smaller than API_PAGES_MAX pages. */
#define API_PAGES_MAX 1000

static int
count_one(void *arg, const struct record *rec)
{
    (void)rec;
    (*(size_t *)arg)++;
    return 0;
}

/* Whether a child exists past `upto` (headers only: nothing opened). */
static int
page_has_more(struct records *r, enum record_kind k, int slot, const char *pid, size_t upto)
{
    size_t n = 0;

    return records_children_page(r, k, slot, pid, upto, 1, 0, count_one, &n, NULL) == CF_OK && n > 0;
}

/*
 * The children of one parent (a class's students, an establishment's
 * classes or staff, a guardian's children), API_PAGE_MAX at most: the
 * parent goes through serve_record first, then every child; children the
 * principal may not see are left out, and a lockout stops the whole answer.
 */
static void
do_children(struct call *c, struct records *r, enum record_kind parent_kind,
            enum record_kind list_kind, int slot, enum record_kind serve_kind, int follow)
{
    struct page pg = { c, r, { 0 }, serve_kind, follow, NULL, 0 };
    const char *rest = http_path_rest(c->ctx);
    unsigned long page = 0;
    int more;
    size_t n = strcspn(rest, "/");
    char pid[RECORD_ID_HEX + 1];
    json_t *parent;

    if (n != RECORD_ID_HEX) {
        if (guarded(c, r, NULL, NULL, 0) == 0)
            set_problem(c, 404, "not-found", "Not found", "No such record.");
        return;
    }
    memcpy(pid, rest, RECORD_ID_HEX);
    pid[RECORD_ID_HEX] = '\0';
    /* ?page=N (from 0): pages of API_PAGE_MAX, "more" says if another follows */
    if (http_param(c->ctx, "page") != NULL) {
        const char *pg_s = http_param(c->ctx, "page");
        char *end;

        errno = 0;
        page = strtoul(pg_s, &end, 10);
        if (pg_s[0] < '0' || pg_s[0] > '9' || *end != '\0' || errno != 0 || page > API_PAGES_MAX) {
            bad_request(c, "page: a whole number from 0.");
            return;
        }
    }
    policy_principal_of(&c->acct, &pg.p);
    parent = serve_record(c, r, &pg.p, parent_kind, pid, 0);
    if (parent == NULL)
        return;
    pg.items = json_array();
    /* one more than a page, to know whether another page follows */
    more = page_has_more(r, list_kind, slot, pid, (page + 1) * API_PAGE_MAX);
    if (records_children_page(r, list_kind, slot, pid, page * API_PAGE_MAX, API_PAGE_MAX, 0,
                              page_item, &pg, NULL) != CF_OK && !pg.locked) {
        json_decref(parent);
        json_decref(pg.items);
        unavailable(c);
        return;
    }
    if (pg.locked) {
        json_decref(parent);
        json_decref(pg.items);
        return;
    }
    ok(c, 200, json_pack("{s:o, s:o, s:i, s:i, s:i, s:b}", "parent", parent, "items", pg.items,
                         "withheld", c->denied, "page_max", API_PAGE_MAX, "page", (int)page,
                         "more", more));
}

static void d_student(struct call *c, struct records *r, struct session *s) { (void)s; do_record(c, r, REC_STUDENT); }
static void d_guardian(struct call *c, struct records *r, struct session *s) { (void)s; do_record(c, r, REC_GUARDIAN); }
static void d_staff(struct call *c, struct records *r, struct session *s) { (void)s; do_record(c, r, REC_STAFF); }
static void d_student_find(struct call *c, struct records *r, struct session *s) { (void)s; do_lookup(c, r, REC_STUDENT, "ine"); }
static void d_staff_find(struct call *c, struct records *r, struct session *s) { (void)s; do_lookup(c, r, REC_STAFF, "email"); }
static void d_class_students(struct call *c, struct records *r, struct session *s) { (void)s; do_children(c, r, REC_CLASS, REC_STUDENT, 1, REC_STUDENT, -1); }
static void d_guardian_children(struct call *c, struct records *r, struct session *s) { (void)s; do_children(c, r, REC_GUARDIAN, REC_GUARDIAN_LINK, 0, REC_STUDENT, 1); }
static void d_est_classes(struct call *c, struct records *r, struct session *s) { (void)s; do_children(c, r, REC_ESTABLISHMENT, REC_CLASS, 0, REC_CLASS, -1); }
static void d_est_staff(struct call *c, struct records *r, struct session *s) { (void)s; do_children(c, r, REC_ESTABLISHMENT, REC_STAFF, 0, REC_STAFF, -1); }

static void h_student(struct http_ctx *x, void *app) { with_session(x, app, "student.read", AUTH_READY, d_student); }
static void h_student_find(struct http_ctx *x, void *app) { with_session(x, app, "student.find", AUTH_READY, d_student_find); }
static void h_guardian(struct http_ctx *x, void *app) { with_session(x, app, "guardian.read", AUTH_READY, d_guardian); }
static void h_staff(struct http_ctx *x, void *app) { with_session(x, app, "staff.read", AUTH_READY, d_staff); }
static void h_staff_find(struct http_ctx *x, void *app) { with_session(x, app, "staff.find", AUTH_READY, d_staff_find); }
static void h_class(struct http_ctx *x, void *app) { with_session(x, app, "class.students", AUTH_READY, d_class_students); }
static void h_guardian_children(struct http_ctx *x, void *app) { with_session(x, app, "guardian.children", AUTH_READY, d_guardian_children); }
static void h_establishment(struct http_ctx *x, void *app)
{
    const char *rest = http_path_rest(x);
    size_t n = strlen(rest);

    if (n > 6 && strcmp(rest + n - 6, "/staff") == 0)
        with_session(x, app, "establishment.staff", AUTH_READY, d_est_staff);
    else
        with_session(x, app, "establishment.classes", AUTH_READY, d_est_classes);
}

/* ---- pages (docs/pages.md) --------------------------------------------
 *
 * The HTML pages are a second face of the same handlers: a form posts to a
 * page route, which checks where it came from and its CSRF token, then
 * calls the very JSON API handler (http_json gives it the form's fields as
 * an object), so guard, policy and audit are the same.  The call then
 * answers in HTML (page_send): on success a 303 to the next page, or the
 * view of the handler's JSON answer; on failure the form again with the
 * catalogue's message for the problem type, tied to its field.
 */

struct webpage {
    const char *method, *path;      /* path: exact, or a prefix ending in '*' */
    const char *action;             /* GET: the audit action */
    const char *purpose;            /* POST: the CSRF purpose of its form */
    int pre;                        /* POST: token bound to the pre-session cookie */
    http_handler fn;                /* POST: the JSON API's handler */
    const char *view;               /* rendered on success unless next() redirects */
    const char *(*next)(struct call *c);   /* success: where to go (NULL: the view) */
    const char *(*form)(struct call *c);   /* failure: the template (NULL: "error"), or
                                              a page to go to ("/..."), told the problem */
    const char *msgs;               /* catalogue: "problem.<msgs>.<type>" before "problem.<type>" */
};

/* Every form's purpose: a page carries the tokens of all of them (csrf.X). */
static const char *const page_purposes[] = {
    "signin", "activate", "signout", "revoke", "totp_enroll", "totp_confirm", "totp_verify",
    "recovery_verify", "password", "scope", "scope_people", NULL,
};
/* The purposes bound to the pre-session cookie (forms shown before sign-in). */
static int
purpose_pre(const char *p)
{
    return strcmp(p, "signin") == 0 || strcmp(p, "activate") == 0;
}

static const char *
next_signed_in(struct call *c)
{
    const char *mfa = json_string_value(json_object_get(c->body, "mfa"));

    if (json_is_true(json_object_get(c->body, "step_password")))
        return NULL;                /* activation, step 2: the view */
    if (mfa != NULL && strcmp(mfa, "required") == 0)
        return "/mfa/challenge";
    if (mfa != NULL && strcmp(mfa, "enroll") == 0)
        return "/mfa/enroll";
    return "/account";
}

static const char *next_account(struct call *c) { (void)c; return "/account"; }
static const char *form_challenge(struct call *c) { (void)c; return "/mfa/challenge"; }
static const char *form_totp_confirm(struct call *c) { (void)c; return "mfa_totp_confirm"; }

/* TOTP confirmed: the recovery codes once (the first factor), else my account. */
static const char *
next_totp_confirmed(struct call *c)
{
    return json_object_get(c->body, "recovery_codes") != NULL ? NULL : "/account";
}
static const char *next_bye(struct call *c) { (void)c; return "/signin?bye=1"; }
static const char *form_signin(struct call *c) { (void)c; return "signin"; }
static const char *form_password(struct call *c) { (void)c; return "password"; }

static const char *
form_activate(struct call *c)
{
    /* a weak password: step 2 again; anything else: from the code */
    return c->ptype != NULL && strcmp(c->ptype, "weak-password") == 0 ? "activate_password"
                                                                       : "activate";
}

/* The pages this server shows after a language switch. */
static const char *
next_lang(struct call *c)
{
    static const char *const ok_paths[] = { "/signin", "/activate", "/account", "/account/password",
                                            "/mfa/enroll", "/mfa/challenge", NULL };
    const char *n = http_param(c->ctx, "next");
    size_t i;

    for (i = 0; n != NULL && ok_paths[i] != NULL; i++)
        if (strcmp(n, ok_paths[i]) == 0)
            return ok_paths[i];
    return "/signin";
}

static void
p_view(struct http_ctx *ctx, void *app)
{
    const struct webpage *pg = page_of(ctx);
    struct call *c = begin(ctx, app, pg->action);

    if (c == NULL)
        return;
    set_json(c, 200, json_object());
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "ok");
    finish(c);
}

static void
p_lang(struct http_ctx *ctx, void *app)
{
    struct call *c = begin(ctx, app, "page.lang");
    enum web_lang l;

    if (c == NULL)
        return;
    if (web_lang_parse(http_path_rest(ctx), &l) != 0) {
        set_problem(c, 404, "not-found", "Not found", "Languages: fr, en.");
        finish(c);
        return;
    }
    snprintf(c->set_cookie, sizeof c->set_cookie, "%s=%s;%s SameSite=Strict; Path=/; Max-Age=31536000",
             WEB_LANG_COOKIE, web_lang_code(l), http_is_plain_loopback(ctx) ? "" : " Secure;");
    set_json(c, 200, json_object());
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "ok");
    finish(c);
}

static void
d_account(struct call *c, struct records *r, struct session *s)
{
    char key[48];
    json_t *st;

    do_mfa_status(c, r, s);
    if ((st = c->body) == NULL)
        return;
    c->body = NULL;
    do_sessions(c, r, s);
    if (c->body == NULL) {
        json_decref(st);
        return;
    }
    json_object_set_new(c->body, "mfa_status", st);
    snprintf(key, sizeof key, "role.%s", account_role_name(c->acct.role));
    json_object_set_new(c->body, "account", account_json(&c->acct));
    json_object_set_new(c->body, "role_key", json_string(key));
}

static void p_account(struct http_ctx *x, void *app) { with_session(x, app, "page.account", AUTH_READY, d_account); }
static void p_password(struct http_ctx *x, void *app) { with_session(x, app, "page.password", AUTH_FACTOR, do_whoami); }

/* Whether a JSON array of strings holds s. */
static int
has_str(json_t *list, const char *s)
{
    size_t i;

    for (i = 0; i < json_array_size(list); i++)
        if (json_is_string(json_array_get(list, i)) &&
            strcmp(json_string_value(json_array_get(list, i)), s) == 0)
            return 1;
    return 0;
}

/* Enrollment and challenge pages: GET mfa's answer, with what the
 * templates test (has_X: enrolled and usable; allow_X: the role may). */
static void
d_mfa_page(struct call *c, struct records *r, struct session *s)
{
    json_t *b;

    do_mfa_status(c, r, s);
    if ((b = c->body) == NULL)
        return;
    json_object_set_new(b, "has_totp", json_boolean(has_str(json_object_get(b, "factors"), "totp")));
    json_object_set_new(b, "has_webauthn", json_boolean(has_str(json_object_get(b, "factors"), "webauthn")));
    json_object_set_new(b, "has_recovery", json_boolean(has_str(json_object_get(b, "factors"), "recovery")));
    json_object_set_new(b, "allow_totp", json_boolean(has_str(json_object_get(b, "allowed"), "totp")));
    json_object_set_new(b, "allow_webauthn", json_boolean(has_str(json_object_get(b, "allowed"), "webauthn")));
}

static void p_mfa_enroll(struct http_ctx *x, void *app) { with_session(x, app, "page.mfa.enroll", AUTH_PARTIAL, d_mfa_page); }
static void p_mfa_challenge(struct http_ctx *x, void *app) { with_session(x, app, "page.mfa.challenge", AUTH_PARTIAL, d_mfa_page); }


/* ---- breach scope: the incident console's side (docs/scope.md) -------
 *
 * POST /api/v1/scope: the summary (an académie admin or a DPO, their own
 * académie's people only); POST /api/v1/scope/people: the people to notify
 * as CSV (a DPO with a fresh second factor: step-up), each record opened
 * only after its own audit entry is durable.  The console's forms post the
 * same fields to the same handlers.
 */

/* A CSV answer is held in memory: beyond this, use the CLI. */
#define API_SCOPE_CSV_MAX (32u * 1024 * 1024)

struct scope_in {
    struct scope_query q;
    char actor[AUDIT_ACTOR_MAX + 1];
    char est[RECORD_ID_HEX + 1];
    json_t *echo;                  /* the selectors given, for the page's next form */
};

/* A selector: a string member, "" (an empty form field) being absent. */
static const char *
sel(json_t *body, const char *name)
{
    const char *v = str_member(body, name, API_SCOPE_MAX_BYTES);

    return v != NULL && v[0] != '\0' ? v : NULL;
}

static int
scope_word(const char *s, size_t max)
{
    size_t n = strlen(s);

    return n > 0 && n <= max && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_") == n;
}

/* The body's selectors into in->q; -1 with the problem set. */
static int
scope_in_parse(struct call *c, struct records *r, struct scope_in *in)
{
    static const char *const allowed[] = { "actor", "session", "address", "from", "to",
                                           "establishment", "account_state", "rule", NULL };
    static const char *const states[] = { ACCOUNT_STATE_PROVISIONED, ACCOUNT_STATE_ACTIVE,
        ACCOUNT_STATE_LOCKED, ACCOUNT_STATE_DISABLED, ACCOUNT_STATE_FROZEN, NULL };
    json_t *body = http_json(c->ctx);
    const char *v;
    size_t i;

    memset(in, 0, sizeof *in);
    if (http_json_only(body, allowed) != 0) {
        bad_request(c, "Selectors: actor, session, address, from, to, establishment, account_state, rule.");
        return -1;
    }
    in->echo = json_object();
    for (i = 0; allowed[i] != NULL; i++)
        json_object_set_new(in->echo, allowed[i], json_string((v = sel(body, allowed[i])) ? v : ""));
    /* an administrator's or a DPO's académie only */
    in->q.compartment = c->acct.row.compartment;
    if ((v = sel(body, "actor")) != NULL) {
        struct account *a = malloc(sizeof *a);
        int found = a != NULL && (account_find(r, v, a) == CF_OK ||
                                  account_get(r, strncmp(v, "acct:", 5) == 0 ? v + 5 : v, a) == CF_OK);

        if (found)
            snprintf(in->actor, sizeof in->actor, "acct:%s", a->id);
        free(a);
        if (!found) {
            set_problem(c, 404, "no-such-account", "No such account", "No account has this login or id.");
            return -1;
        }
        in->q.actor[in->q.nactor++] = in->actor;
    }
    if ((v = sel(body, "session")) != NULL) {
        if (!scope_word(v, AUDIT_SESSION_MAX)) {
            bad_request(c, "session: the hex reference the trail shows.");
            return -1;
        }
        in->q.session = v;
    }
    if ((v = sel(body, "address")) != NULL && scope_parse_cidr(v, &in->q) != 0) {
        bad_request(c, "address: an IP address or a CIDR block, e.g. 203.0.113.0/24.");
        return -1;
    }
    if ((v = sel(body, "from")) != NULL) {
        if (scope_parse_time(v, 0, &in->q.from_ms) != 0) {
            bad_request(c, "from: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]Z (UTC).");
            return -1;
        }
        in->q.has_from = 1;
    }
    if ((v = sel(body, "to")) != NULL) {
        if (scope_parse_time(v, 1, &in->q.to_ms) != 0) {
            bad_request(c, "to: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]Z (UTC).");
            return -1;
        }
        in->q.has_to = 1;
    }
    if ((v = sel(body, "establishment")) != NULL) {
        struct record *e = malloc(sizeof *e);
        int found = e != NULL && records_find(r, REC_ESTABLISHMENT, "uai", v, 0, e, NULL) == CF_OK &&
                    strcmp(e->compartment, c->acct.row.compartment) == 0;

        if (found)
            memcpy(in->est, e->id, sizeof in->est);
        free(e);
        if (!found) {
            set_problem(c, 404, "not-found", "No such establishment",
                        "No establishment of your académie has this UAI.");
            return -1;
        }
        in->q.establishment = in->est;
    }
    if ((v = sel(body, "account_state")) != NULL) {
        for (i = 0; states[i] != NULL && strcmp(states[i], v) != 0; i++)
            ;
        if (states[i] == NULL) {
            bad_request(c, "account_state: provisioned, active, locked, disabled or frozen.");
            return -1;
        }
        in->q.account_state = states[i];
    }
    if ((v = sel(body, "rule")) != NULL) {
        if (!scope_word(v, 32)) {
            bad_request(c, "rule: a guard rule such as budget-1h.");
            return -1;
        }
        in->q.rule = v;
    }
    if (in->q.nactor == 0 && !in->q.session && !in->q.has_cidr && !in->q.has_from && !in->q.has_to &&
        !in->q.establishment && !in->q.account_state && !in->q.rule) {
        bad_request(c, "Give at least one selector.");
        return -1;
    }
    if (in->q.has_from && in->q.has_to && in->q.from_ms > in->q.to_ms) {
        bad_request(c, "from is after to: the window is empty.");
        return -1;
    }
    return 0;
}

/* Runs the query; -1 with the problem set. */
static int
scope_exec(struct call *c, struct records *r, struct scope_in *in, struct scope_result *res)
{
    struct cf_errmsg em = { "" };
    enum cf_err rc;

    pthread_mutex_lock(&c->api->scope_mu);
    rc = scope_run(c->api->data_dir, r, &in->q, NULL, NULL, res, &em);
    pthread_mutex_unlock(&c->api->scope_mu);
    if (rc == CF_ERR_NOTFOUND) {
        set_problem(c, 404, "no-entries", "Nothing matches", "No audit entry matches these selectors.");
        return -1;
    }
    if (rc == CF_ERR_INPUT || rc == CF_ERR_LIMIT) {
        bad_request(c, "The scope is too wide or incomplete: narrow it (a window, an establishment).");
        return -1;
    }
    if (rc != CF_OK) {
        log_warnx("scope: %s", em.msg);
        unavailable(c);
        return -1;
    }
    return 0;
}

static int
scope_allowed(struct call *c, int dpo_only)
{
    if (c->acct.role == ROLE_DPO || (!dpo_only && c->acct.role == ROLE_ACADEMIE_ADMIN))
        return 1;
    set_problem(c, 403, "forbidden", "Not allowed",
                dpo_only ? "The people to notify are for the data protection officer."
                         : "Breach scope is for académie administrators and the DPO.");
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
    return 0;
}

static void
do_scope(struct call *c, struct records *r, struct session *s)
{
    struct scope_in in;
    struct scope_result res;
    json_t *o;

    (void)s;
    if (!scope_allowed(c, 0))
        return;
    if (scope_in_parse(c, r, &in) != 0 || scope_exec(c, r, &in, &res) != 0) {
        json_decref(in.echo);
        return;
    }
    o = scope_json(r, &res);
    scope_result_free(&res);
    if (o == NULL) {
        json_decref(in.echo);
        unavailable(c);
        return;
    }
    json_object_set_new(o, "selectors", in.echo);
    json_object_set_new(o, "is_dpo", json_boolean(c->acct.role == ROLE_DPO));
    json_object_set_new(o, "result", json_true());
    ok(c, 200, o);
}

/* Before each opening for the people file: an entry of its own, durable
 * (the handler thread waits: a DPO's rare request, not a reader's). */
static int
scope_people_audit(void *arg, const char *subjects, const char *fields)
{
    struct call *c = arg;
    struct audit_entry e = c->ae;
    struct cf_errmsg em = { "" };

    snprintf(e.action, sizeof e.action, "scope.people");
    snprintf(e.subject, sizeof e.subject, "%s", subjects);
    snprintf(e.fields, sizeof e.fields, "%s", fields);
    snprintf(e.outcome, sizeof e.outcome, "ok");
    e.time_ms = 0;
    return audit_append(c->api->audit, &e, &em) == CF_OK ? 0 : -1;
}

static void
do_scope_people(struct call *c, struct records *r, struct session *s)
{
    struct scope_in in;
    struct scope_result res;
    struct cf_errmsg em = { "" };
    char path[4096];
    uint64_t lines = 0;
    enum cf_err rc;
    FILE *f;
    long n;
    int fd;

    (void)s;
    if (!scope_allowed(c, 1))
        return;
    if (scope_in_parse(c, r, &in) != 0 || scope_exec(c, r, &in, &res) != 0) {
        json_decref(in.echo);
        return;
    }
    json_decref(in.echo);
    /* a private file of the data directory, read back, removed */
    snprintf(path, sizeof path, "%s/scope-people-XXXXXX", c->api->data_dir);
    if ((fd = mkstemp(path)) < 0) {
        scope_result_free(&res);
        unavailable(c);
        return;
    }
    close(fd);
    rc = scope_write_people(path, r, &res, (int64_t)time(NULL) * 1000, scope_people_audit, c,
                            &lines, &em);
    scope_result_free(&res);
    f = rc == CF_OK ? fopen(path, "rb") : NULL;
    if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        (size_t)n <= API_SCOPE_CSV_MAX && fseek(f, 0, SEEK_SET) == 0 &&
        (c->text = malloc((size_t)n + 1)) != NULL) {
        c->text_len = fread(c->text, 1, (size_t)n, f);
        if (c->text_len != (size_t)n) {
            sodium_memzero(c->text, (size_t)n);
            free(c->text);
            c->text = NULL;
        }
    }
    if (f != NULL)
        fclose(f);
    unlink(path);
    if (c->text == NULL) {
        if (rc != CF_OK)
            log_warnx("scope: %s", em.msg);
        set_problem(c, rc == CF_OK ? 413 : 503, rc == CF_OK ? "too-large" : "store-unavailable",
                    "Not available here", rc == CF_OK
                        ? "The list is too long for the console: use coffre scope --people."
                        : "The list could not be written. Try again.");
        return;
    }
    snprintf(c->ae.fields, sizeof c->ae.fields, "lines:%llu", (unsigned long long)lines);
    c->status = 200;
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "ok");
}

static void h_scope(struct http_ctx *x, void *app) { with_session(x, app, "scope.summary", AUTH_READY, do_scope); }
static void h_scope_people(struct http_ctx *x, void *app) { with_session(x, app, "scope.people", AUTH_STEP_UP, do_scope_people); }

/* The console's empty form. */
static void
d_console(struct call *c, struct records *r, struct session *s)
{
    (void)r;
    (void)s;
    if (!scope_allowed(c, 0))
        return;
    ok(c, 200, json_pack("{s:b, s:{s:s}}", "is_dpo", c->acct.role == ROLE_DPO, "selectors", "actor", ""));
}

static void p_console(struct http_ctx *x, void *app) { with_session(x, app, "page.console", AUTH_READY, d_console); }
static const char *form_console(struct call *c) { (void)c; return "console"; }

static void p_post(struct http_ctx *ctx, void *app);

static const struct webpage pages[] = {
    { "GET",  "/",          "page.root",     NULL, 0, p_view,    NULL,      next_account, NULL, NULL },
    { "GET",  "/signin",    "page.signin",   NULL, 0, p_view,    "signin",  NULL, NULL, NULL },
    { "POST", "/signin",    NULL, "signin",        1, h_login,   NULL,      next_signed_in, form_signin, NULL },
    { "GET",  "/activate",  "page.activate", NULL, 0, p_view,    "activate", NULL, NULL, NULL },
    { "POST", "/activate",  NULL, "activate",      1, h_activate, "activate_password",
      next_signed_in, form_activate, NULL },
    { "GET",  "/account",   "page.account",  NULL, 0, p_account, "account", NULL, NULL, NULL },
    { "POST", "/signout",   NULL, "signout",       0, h_logout,  NULL,      next_bye, NULL, NULL },
    { "POST", "/account/sessions/*", NULL, "revoke", 0, h_session_revoke, NULL, next_account, NULL, NULL },
    { "GET",  "/lang/*",    "page.lang",     NULL, 0, p_lang,    NULL,      next_lang, NULL, NULL },
    { "GET",  "/account/password", "page.password", NULL, 0, p_password, "password", NULL, NULL, NULL },
    { "POST", "/account/password", NULL, "password", 0, h_password, NULL, next_account, form_password, NULL },
    /* second factors (docs/mfa.md) */
    { "GET",  "/mfa/enroll", "page.mfa.enroll", NULL, 0, p_mfa_enroll, "mfa_enroll", NULL, NULL, NULL },
    { "POST", "/mfa/totp/enroll", NULL, "totp_enroll", 0, h_totp_enroll, "mfa_totp", NULL, NULL, NULL },
    { "POST", "/mfa/totp/confirm", NULL, "totp_confirm", 0, h_totp_confirm, "mfa_recovery",
      next_totp_confirmed, form_totp_confirm, "code" },
    { "GET",  "/mfa/challenge", "page.mfa.challenge", NULL, 0, p_mfa_challenge, "mfa_challenge", NULL, NULL, NULL },
    { "POST", "/mfa/totp/verify", NULL, "totp_verify", 0, h_totp_verify, NULL, next_account,
      form_challenge, "code" },
    { "POST", "/mfa/recovery/verify", NULL, "recovery_verify", 0, h_recovery_verify, NULL,
      next_account, form_challenge, "code" },
    /* the incident console (docs/scope.md) */
    { "GET",  "/console",   "page.console",  NULL, 0, p_console, "console", NULL, NULL, NULL },
    { "POST", "/console",   NULL, "scope",         0, h_scope,   "console", NULL, form_console, NULL },
    { "POST", "/console/people", NULL, "scope_people", 0, h_scope_people, "console", NULL,
      form_console, NULL },
};

static const struct webpage *
page_of(const struct http_ctx *ctx)
{
    const char *path = http_path(ctx), *method = http_method(ctx);
    size_t i;

    if (strncmp(path, "/api/", 5) == 0)
        return NULL;
    for (i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        size_t n = strlen(pages[i].path);

        if (strcmp(pages[i].method, method) != 0)
            continue;
        if (pages[i].path[n - 1] == '*' ? strncmp(path, pages[i].path, n - 1) == 0
                                        : strcmp(path, pages[i].path) == 0)
            return &pages[i];
    }
    return NULL;
}

static void
p_get(struct http_ctx *ctx, void *app)
{
    page_of(ctx)->fn(ctx, app);
}

/* A form: from our own pages (Origin, Sec-Fetch-Site) with a valid token
 * for this form, this browser and this session; then the API handler. */
static void
p_post(struct http_ctx *ctx, void *app)
{
    struct api *api = app;
    const struct webpage *pg = page_of(ctx);
    const char *binding = http_cookie(ctx, pg->pre ? WEB_PRE_COOKIE : SESSION_COOKIE);
    struct call *c;

    if (web_same_origin(http_header(ctx, "Origin"), http_header(ctx, "Sec-Fetch-Site"),
                        http_header(ctx, "Host")) == 0 &&
        web_csrf_check(api->web, pg->purpose, binding, http_param(ctx, "csrf"),
                       (int64_t)time(NULL)) == 0) {
        json_object_del(http_json(ctx), "csrf");
        pg->fn(ctx, app);
        return;
    }
    if ((c = begin(ctx, app, "page.csrf")) == NULL)
        return;
    set_problem(c, 403, "csrf-failed", "Form refused",
                "This form did not come from this site's own page, or it has expired. "
                "Reload the page and try again.");
    snprintf(c->ae.fields, sizeof c->ae.fields, "form:%s", pg->purpose);
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
    http_metric_add(http_server_of(ctx), "coffre_csrf_refused_total", NULL, 1);
    finish(c);
}

/* Static files: nothing personal, so neither session nor audit. */
static void
p_static(struct http_ctx *ctx, void *app)
{
    struct api *api = app;
    const char *type, *data;
    size_t len;

    data = web_static(api->web, http_path_rest(ctx), &len, &type);
    if (data == NULL) {
        http_reply_problem(ctx, 404, "not-found", "Not found", "There is nothing at this address.", 0);
        return;
    }
    http_add_header(ctx, "Cache-Control", "max-age=300");
    http_reply_text(ctx, 200, type, data, len);
}

/* Problem types whose message belongs to one field; the others to the form. */
static const struct {
    const char *type, *field;
} problem_fields[] = {
    { "weak-password", "password" },
    { "invalid-code", "code" },
};

static void
page_redirect(struct call *c, const char *to)
{
    http_add_header(c->ctx, "Location", to);
    http_reply_text(c->ctx, 303, "text/plain; charset=utf-8", "", 0);
}

/* What every page gets: its language, the CSRF tokens of its forms, the
 * path (for the language switch) and the query's flags. */
static void
page_common(struct call *c, enum web_lang lang, json_t *data)
{
    const char *pre = http_cookie(c->ctx, WEB_PRE_COOKIE);
    const char *ses = http_cookie(c->ctx, SESSION_COOKIE);
    char fresh[WEB_PRE_TEXT + 1], tok[WEB_CSRF_TOKEN_MAX + 1];
    json_t *csrf = json_object();
    int64_t now = (int64_t)time(NULL);
    size_t i;

    if (pre == NULL || strlen(pre) != WEB_PRE_TEXT) {
        char cookie[128];

        web_pre_value(fresh);
        pre = fresh;
        snprintf(cookie, sizeof cookie, "%s=%s; HttpOnly;%s SameSite=Strict; Path=/",
                 WEB_PRE_COOKIE, fresh, http_is_plain_loopback(c->ctx) ? "" : " Secure;");
        http_add_header(c->ctx, "Set-Cookie", cookie);
    }
    for (i = 0; page_purposes[i] != NULL; i++) {
        const char *b = purpose_pre(page_purposes[i]) ? pre : ses;

        if (b == NULL)
            continue;
        web_csrf_token(c->api->web, page_purposes[i], b, now, tok);
        json_object_set_new(csrf, page_purposes[i], json_string(tok));
    }
    json_object_set_new(data, "csrf", csrf);
    json_object_set_new(data, "lang", json_string(web_lang_code(lang)));
    json_object_set_new(data, "path", json_string(http_path(c->ctx)));
    if (http_param(c->ctx, "bye") != NULL)
        json_object_set_new(data, "bye", json_true());
    /* ?problem=TYPE after a redirect: only a type with a message shows */
    if (json_object_get(data, "error") == NULL && http_param(c->ctx, "problem") != NULL &&
        strlen(http_param(c->ctx, "problem")) < 64) {
        char key[96];

        snprintf(key, sizeof key, "problem.%s", http_param(c->ctx, "problem"));
        if (web_has_text(c->api->web, key))
            json_object_set_new(data, "error", json_string(web_text(c->api->web, lang, key)));
    }
}

static void
page_send(struct call *c)
{
    struct http_ctx *x = c->ctx;
    enum web_lang lang = web_lang_choose(http_cookie(x, WEB_LANG_COOKIE),
                                         http_header(x, "Accept-Language"));
    const char *tmpl = NULL, *to = NULL;
    unsigned status = c->status;
    json_t *data = json_object(), *layout;
    char *body = NULL, *html = NULL, key[96], problem_to[128];
    size_t blen, hlen;

    if (status < 400) {
        to = c->page->next != NULL ? c->page->next(c) : NULL;
        tmpl = c->page->view;
        status = 200;
        if (json_is_object(c->body))
            json_object_update(data, c->body);
    } else {
        const char *field = "form", *msg;
        size_t i;

        if (c->ptype == NULL)
            c->ptype = "default";
        if (strcmp(c->ptype, "unauthenticated") == 0)
            to = "/signin";
        else if (strcmp(c->ptype, "mfa-required") == 0)
            to = "/mfa/enroll";
        else if (strcmp(c->ptype, "mfa-challenge-required") == 0)
            to = "/mfa/challenge";
        else if (strcmp(c->ptype, "password-reset-required") == 0)
            to = "/account/password";
        tmpl = c->page->form != NULL ? c->page->form(c) : "error";
        if (to == NULL && tmpl[0] == '/') {
            /* a page of its own tells the problem (after the redirect) */
            snprintf(problem_to, sizeof problem_to, "%s?problem=%s", tmpl, c->ptype);
            to = problem_to;
        }
        snprintf(key, sizeof key, "problem.%s.%s", c->page->msgs ? c->page->msgs : "", c->ptype);
        if (c->page->msgs == NULL || !web_has_text(c->api->web, key))
            snprintf(key, sizeof key, "problem.%s", c->ptype);
        if (!web_has_text(c->api->web, key))
            snprintf(key, sizeof key, "problem.default");
        msg = web_text(c->api->web, lang, key);
        for (i = 0; i < sizeof problem_fields / sizeof problem_fields[0]; i++)
            if (strcmp(c->ptype, problem_fields[i].type) == 0)
                field = problem_fields[i].field;
        json_object_set_new(data, "error", json_string(msg));
        json_object_set_new(data, "err", json_pack("{s:s}", field, msg));
        if (c->retry_after > 0)
            json_object_set_new(data, "retry_after", json_integer(c->retry_after));
        /* the form's own values back, never a password */
        if (http_param(x, "login") != NULL)
            json_object_set_new(data, "login", json_string(http_param(x, "login")));
        if (strcmp(tmpl, "activate_password") == 0 && http_param(x, "code") != NULL)
            json_object_set_new(data, "code", json_string(http_param(x, "code")));
        /* the console's selectors (ids, addresses, dates: nothing personal) */
        if (strcmp(tmpl, "console") == 0) {
            static const char *const names[] = { "actor", "address", "from", "to", "establishment",
                                                 "account_state", "rule", NULL };
            json_t *sel = json_object();
            size_t k;

            for (k = 0; names[k] != NULL; k++)
                if (http_param(x, names[k]) != NULL)
                    json_object_set_new(sel, names[k], json_string(http_param(x, names[k])));
            json_object_set_new(data, "selectors", sel);
        }
    }
    if (to != NULL || tmpl == NULL) {
        json_decref(data);
        page_redirect(c, to != NULL ? to : "/account");
        return;
    }
    page_common(c, lang, data);
    snprintf(key, sizeof key, "title.%s", tmpl);
    if (web_render(c->api->web, lang, tmpl, data, &body, &blen) != CF_OK ||
        (layout = json_pack("{s:s, s:s, s:s, s:b, s:b}", "body", body, "title",
                            web_text(c->api->web, lang, key), "lang", web_lang_code(lang),
                            "is_fr", lang == WEB_FR, "is_en", lang == WEB_EN)) == NULL) {
        free(body);
        json_decref(data);
        http_reply_problem(x, 500, "internal-error", "Internal error",
                           "The page could not be made.", 0);
        return;
    }
    json_object_set(layout, "path", json_object_get(data, "path"));
    json_decref(data);
    if (web_render(c->api->web, lang, "layout", layout, &html, &hlen) != CF_OK) {
        json_decref(layout);
        free(body);
        http_reply_problem(x, 500, "internal-error", "Internal error",
                           "The page could not be made.", 0);
        return;
    }
    json_decref(layout);
    free(body);
    http_add_header(x, "Content-Language", web_lang_code(lang));
    http_add_header(x, "Vary", "Accept-Language, Cookie");
    http_reply_text(x, status, "text/html; charset=utf-8", html, hlen);
    sodium_memzero(html, hlen);
    free(html);
}

/* ---- records: writes --------------------------------------------------
 *
 * School staff (and a guardian, for their own contact details) change
 * records through the same gates as a read: the guard counts every record
 * a write touches (a write is a touch of its subject; an unknown id is a
 * miss), the policy's write fields say who may change what (POLICY_WRITE),
 * and the audit entry names the subjects and the field names - never a
 * value - before the answer leaves.  Each write is one transaction; a new
 * record is checked by the policy inside it and rolled back if refused.
 * Answers name ids and fields only: reading a record is serve_record's.
 */

/* References a write may carry, by JSON name. */
enum wref { W_ESTABLISHMENT, W_CLASS, W_GUARDIAN, W_STUDENT, W_REF_COUNT };
static const char *const wref_names[W_REF_COUNT] = {
    "establishment_id", "class_id", "guardian_id", "student_id",
};
static const enum record_kind wref_kinds[W_REF_COUNT] = {
    REC_ESTABLISHMENT, REC_CLASS, REC_GUARDIAN, REC_STUDENT,
};
#define WREF(x) (1u << (x))
/* "relationship": a new guardian's link to the pupil */
#define WREF_RELATIONSHIP (1u << W_REF_COUNT)

struct wreq {
    struct record_edit ed;             /* kind, set / clear, values */
    const char *ref[W_REF_COUNT];      /* hex ids, NULL when absent */
    unsigned given;                    /* WREF bits present (a null class_id too) */
    const char *relationship;
};

static int
write_input_error(struct call *c, const char *detail)
{
    bad_request(c, detail);
    return -1;
}

/*
 * Reads a write's body: the kind's field names (a string sets, null clears
 * an optional field on a change), the references in `refs` (hex ids; a
 * null class_id takes a pupil out of its class) and, with
 * WREF_RELATIONSHIP, "relationship".  Anything else, a value that is not a
 * string, too long or with a NUL byte: 400 naming the rule, never the
 * input.
 */
static int
parse_write(struct call *c, enum record_kind k, int create, unsigned refs, struct wreq *w)
{
    json_t *body = http_json(c->ctx), *v;
    const char *key;
    char detail[256];

    memset(w, 0, sizeof *w);
    w->ed.kind = k;
    json_object_foreach(body, key, v) {
        int fi = records_field_index(k, key), ri;

        if (fi >= 0) {
            if (json_is_null(v) && !create) {
                w->ed.clear |= 1u << fi;
                continue;
            }
            if (!json_is_string(v) || json_string_length(v) > RECORD_FIELD_PT_MAX ||
                strlen(json_string_value(v)) != json_string_length(v)) {
                snprintf(detail, sizeof detail, "%s: a text of at most %d bytes%s.",
                         records_field_name(k, (size_t)fi), RECORD_FIELD_PT_MAX,
                         create ? "" : " (null removes an optional field)");
                return write_input_error(c, detail);
            }
            w->ed.set |= 1u << fi;
            w->ed.value[fi] = json_string_value(v);
            continue;
        }
        for (ri = 0; ri < W_REF_COUNT; ri++)
            if ((refs & WREF(ri)) && strcmp(key, wref_names[ri]) == 0)
                break;
        if (ri < W_REF_COUNT) {
            if (json_is_null(v) && ri == W_CLASS && !create) {
                w->given |= WREF(ri);
                continue;
            }
            if (!json_is_string(v) || json_string_length(v) != RECORD_ID_HEX) {
                snprintf(detail, sizeof detail, "%s: an id of %d hex digits.", wref_names[ri],
                         RECORD_ID_HEX);
                return write_input_error(c, detail);
            }
            w->given |= WREF(ri);
            w->ref[ri] = json_string_value(v);
            continue;
        }
        if ((refs & WREF_RELATIONSHIP) && strcmp(key, "relationship") == 0) {
            if (!json_is_string(v) || json_string_length(v) > LABEL_MAX_BYTES ||
                strlen(json_string_value(v)) != json_string_length(v))
                return write_input_error(c, "relationship: a short text (mère, père, tuteur...).");
            w->relationship = json_string_value(v);
            continue;
        }
        {
            size_t i, n;

            n = (size_t)snprintf(detail, sizeof detail, "A %s has no such field; send only:",
                                 records_kind_name(k));
            for (i = 0; i < records_field_count(k) && n < sizeof detail; i++)
                n += (size_t)snprintf(detail + n, sizeof detail - n, " %s",
                                      records_field_name(k, i));
            for (i = 0; i < W_REF_COUNT && n < sizeof detail; i++)
                if (refs & WREF(i))
                    n += (size_t)snprintf(detail + n, sizeof detail - n, " %s", wref_names[i]);
            if ((refs & WREF_RELATIONSHIP) && n < sizeof detail)
                snprintf(detail + n, sizeof detail - n, " relationship");
        }
        return write_input_error(c, detail);
    }
    return 0;
}

/* A write touches an existing record: its header only, counted by the
 * guard like a read (an unknown or malformed id is a miss: 404).  0 with
 * rec filled; -1 with the problem set. */
static int
touch(struct call *c, struct records *r, enum record_kind k, const char *id, struct record *rec)
{
    uint8_t bin[STORE_ID_BYTES];

    if (id == NULL || records_id_parse(id, bin) != CF_OK ||
        records_get(r, k, id, 0, rec, NULL) != CF_OK) {
        if (guarded(c, r, NULL, NULL, 0) == 0) {
            char detail[96];

            snprintf(detail, sizeof detail, "No such %s.", records_kind_name(k));
            set_problem(c, 404, "not-found", "Not found", detail);
        }
        return -1;
    }
    if (guarded(c, r, bin, NULL, 0) != 0)
        return -1;
    if (list_add(c->ae.subject, sizeof c->ae.subject, rec->id) != 0) {
        unavailable(c);
        return -1;
    }
    return 0;
}

static void
write_denied(struct call *c, const char *detail)
{
    c->denied++;
    set_problem(c, 403, "forbidden", "Not allowed", detail);
    snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
}

/* What records said about bad input, as a 4xx (a value too long is bad
 * input here, not a full queue). */
static void
write_failed(struct call *c, enum cf_err rc, const struct cf_errmsg *em)
{
    switch (rc) {
    case CF_ERR_INPUT:
    case CF_ERR_LIMIT:
        set_problem(c, 400, "invalid-record", "Invalid record", em->msg);
        break;
    case CF_ERR_NOTFOUND:
        set_problem(c, 404, "not-found", "Not found", em->msg);
        break;
    case CF_ERR_EXISTS:
        set_problem(c, 409, "conflict", "Already present", em->msg);
        break;
    default:
        unavailable(c);
    }
}

/* The field names a write sends, for its audit entry (refused or not) and
 * its answer: names only (at most 9 short names: they fit the entry). */
static json_t *
changed_fields(struct call *c, enum record_kind k, uint32_t bits, const char *extra)
{
    json_t *list = json_array();
    size_t i;

    for (i = 0; i < records_field_count(k); i++)
        if (bits & (1u << i)) {
            (void)list_add(c->ae.fields, sizeof c->ae.fields, records_field_name(k, i));
            json_array_append_new(list, json_string(records_field_name(k, i)));
        }
    if (extra != NULL) {
        (void)list_add(c->ae.fields, sizeof c->ae.fields, extra);
        json_array_append_new(list, json_string(extra));
    }
    return list;
}

static const char *const write_refs_detail[REC_KIND_COUNT] = {
    [REC_STUDENT] = "class_id",
};

/* PATCH /api/v1/<kind>/ID: some fields (and a pupil's class). */
static void
do_update(struct call *c, struct records *r, enum record_kind k)
{
    struct record *rec = malloc(sizeof *rec);
    struct policy_principal p;
    struct cf_errmsg em = { "" };
    struct wreq w;
    const char *why;
    uint32_t wmask;
    json_t *changes = NULL;
    enum cf_err rc;

    if (rec == NULL) {
        unavailable(c);
        return;
    }
    if (parse_write(c, k, 0, k == REC_STUDENT ? WREF(W_CLASS) : 0, &w) != 0)
        goto out;
    if (w.ed.set == 0 && w.ed.clear == 0 && w.given == 0) {
        bad_request(c, "Nothing to change: send the fields to set (null removes an optional one).");
        goto out;
    }
    changes = changed_fields(c, k, w.ed.set | w.ed.clear, w.given ? write_refs_detail[k] : NULL);
    if (touch(c, r, k, http_path_rest(c->ctx), rec) != 0)
        goto out;
    policy_principal_of(&c->acct, &p);
    if (policy_check_for(r, &p, rec, POLICY_WRITE, &wmask, &why) != CF_OK) {
        write_denied(c, "You may not change this record.");
        goto out;
    }
    if (((w.ed.set | w.ed.clear) & ~wmask) != 0 ||
        (w.given != 0 && !policy_may_create(p.role, k))) {
        write_denied(c, "You may not change some of these fields.");
        goto out;
    }
    w.ed.id = rec->id;
    if (w.given & WREF(W_CLASS)) {
        w.ed.set_parent1 = 1;
        w.ed.parent1 = w.ref[W_CLASS];
        /* the class is touched too: an unknown one is a miss */
        if (w.ref[W_CLASS] != NULL) {
            struct record *cls = malloc(sizeof *cls);
            int bad = cls == NULL || touch(c, r, REC_CLASS, w.ref[W_CLASS], cls) != 0;

            free(cls);
            if (bad) {
                if (c->status == 0)
                    unavailable(c);
                goto out;
            }
        }
    }
    if (records_begin(r, 0) != CF_OK) {
        unavailable(c);
        goto out;
    }
    if ((rc = records_update(r, &w.ed, &em)) == CF_OK)
        rc = records_commit(r, &em);
    else
        records_rollback(r);
    if (rc != CF_OK) {
        write_failed(c, rc, &em);
        goto out;
    }
    ok(c, 200, json_pack("{s:s, s:s, s:O}", "kind", records_kind_name(k), "id", rec->id,
                         "changed", changes));
out:
    json_decref(changes);
    free(rec);
}

/* POST /api/v1/<kinds>: a new record in the principal's establishment. */
static void
do_create(struct call *c, struct records *r, enum record_kind k)
{
    static const unsigned refs[REC_KIND_COUNT] = {
        [REC_STUDENT] = WREF(W_ESTABLISHMENT) | WREF(W_CLASS),
        [REC_CLASS] = WREF(W_ESTABLISHMENT),
        [REC_GUARDIAN] = WREF(W_STUDENT) | WREF_RELATIONSHIP,
        [REC_GUARDIAN_LINK] = WREF(W_GUARDIAN) | WREF(W_STUDENT),
    };
    struct record *rec = malloc(sizeof *rec), *ref = malloc(sizeof *ref);
    struct policy_principal p;
    struct cf_errmsg em = { "" };
    struct record_add in;
    struct wreq w;
    char id[RECORD_ID_HEX + 1], link[RECORD_ID_HEX + 1] = "";
    uint8_t bin[STORE_ID_BYTES];
    const char *why;
    uint32_t wmask;
    json_t *fields = NULL;
    enum cf_err rc;
    int i, in_tx = 0;

    if (rec == NULL || ref == NULL) {
        unavailable(c);
        goto out;
    }
    if (parse_write(c, k, 1, refs[k], &w) != 0)
        goto out;
    fields = changed_fields(c, k, w.ed.set, w.relationship ? "relationship" : NULL);
    policy_principal_of(&c->acct, &p);
    if ((k == REC_STUDENT || k == REC_CLASS) && w.ref[W_ESTABLISHMENT] == NULL) {
        if (p.establishment[0] == '\0') {
            bad_request(c, "establishment_id: required (your account belongs to no establishment).");
            goto out;
        }
        w.ref[W_ESTABLISHMENT] = p.establishment;
    }
    if ((k == REC_GUARDIAN && (w.ref[W_STUDENT] == NULL || w.relationship == NULL)) ||
        (k == REC_GUARDIAN_LINK && (w.ref[W_STUDENT] == NULL || w.ref[W_GUARDIAN] == NULL))) {
        bad_request(c, k == REC_GUARDIAN
                           ? "A new guardian comes with student_id and relationship (its link)."
                           : "Send guardian_id, student_id and relationship.");
        goto out;
    }
    /* every record referred to is touched (guard-counted; unknown: 404) */
    memset(&in, 0, sizeof in);
    in.kind = k;
    for (i = 0; i < W_REF_COUNT; i++) {
        if (w.ref[i] == NULL)
            continue;
        if (touch(c, r, wref_kinds[i], w.ref[i], ref) != 0)
            goto out;
    }
    if (!policy_may_create(p.role, k)) {
        write_denied(c, "You may not create this kind of record.");
        goto out;
    }
    for (i = 0; i < (int)records_field_count(k); i++)
        in.value[i] = w.ed.value[i];
    switch (k) {
    case REC_STUDENT:
        in.parent[0] = w.ref[W_ESTABLISHMENT];
        in.parent[1] = w.ref[W_CLASS];
        break;
    case REC_CLASS:
        in.parent[0] = w.ref[W_ESTABLISHMENT];
        break;
    case REC_GUARDIAN:
        /* the guardian joins the pupil's académie */
        if (records_get(r, REC_STUDENT, w.ref[W_STUDENT], 0, ref, NULL) != CF_OK) {
            unavailable(c);
            goto out;
        }
        in.compartment = ref->compartment;
        break;
    case REC_GUARDIAN_LINK:
        in.parent[0] = w.ref[W_GUARDIAN];
        in.parent[1] = w.ref[W_STUDENT];
        break;
    default:
        break;
    }
    if (records_begin(r, 0) != CF_OK) {
        unavailable(c);
        goto out;
    }
    in_tx = 1;
    rc = records_add(r, &in, id, &em);
    if (rc == CF_OK && k == REC_GUARDIAN) {
        struct record_add l = { .kind = REC_GUARDIAN_LINK, .parent = { id, w.ref[W_STUDENT] },
                                .value = { w.relationship } };

        rc = records_add(r, &l, link, &em);
    }
    if (rc != CF_OK) {
        write_failed(c, rc, &em);
        goto out;
    }
    /* the new record: a touch for the guard, then the policy on it */
    if (records_id_parse(id, bin) != CF_OK || records_get(r, k, id, 0, rec, NULL) != CF_OK) {
        unavailable(c);
        goto out;
    }
    {
        struct guard_alert al;

        if (guard_ask(c, bin, NULL, 0, &al) != 0) {
            records_rollback(r);
            in_tx = 0;
            locked_out(c, r, &al);
            goto out;
        }
    }
    if (policy_check_for(r, &p, rec, POLICY_WRITE, &wmask, &why) != CF_OK ||
        (w.ed.set & ~wmask) != 0) {
        write_denied(c, "You may create records in your own establishment only.");
        goto out;
    }
    in_tx = 0;
    if ((rc = records_commit(r, &em)) != CF_OK) {
        unavailable(c);
        goto out;
    }
    if (list_add(c->ae.subject, sizeof c->ae.subject, id) != 0 ||
        (link[0] != '\0' && list_add(c->ae.subject, sizeof c->ae.subject, link) != 0)) {
        unavailable(c);        /* cannot happen: a few ids */
        goto out;
    }
    ok(c, 201, json_pack("{s:s, s:s, s:O}", "kind", records_kind_name(k), "id", id, "fields",
                         fields));
    if (link[0] != '\0')
        json_object_set_new(c->body, "link_id", json_string(link));
out:
    if (in_tx)
        records_rollback(r);
    json_decref(fields);
    if (rec != NULL)
        sodium_memzero(rec, sizeof *rec);
    free(rec);
    free(ref);
}

/* DELETE /api/v1/guardian-links/ID. */
static void
do_unlink(struct call *c, struct records *r)
{
    struct record *rec = malloc(sizeof *rec);
    struct policy_principal p;
    struct cf_errmsg em = { "" };
    const char *why;
    uint32_t wmask;
    enum cf_err rc;

    if (rec == NULL) {
        unavailable(c);
        return;
    }
    if (touch(c, r, REC_GUARDIAN_LINK, http_path_rest(c->ctx), rec) != 0)
        goto out;
    policy_principal_of(&c->acct, &p);
    if (policy_check_for(r, &p, rec, POLICY_WRITE, &wmask, &why) != CF_OK ||
        !policy_may_create(p.role, REC_GUARDIAN_LINK)) {
        write_denied(c, "You may not remove this link.");
        goto out;
    }
    if (records_begin(r, 0) != CF_OK) {
        unavailable(c);
        goto out;
    }
    if ((rc = records_delete(r, REC_GUARDIAN_LINK, rec->id, &em)) == CF_OK)
        rc = records_commit(r, &em);
    else
        records_rollback(r);
    if (rc != CF_OK) {
        write_failed(c, rc, &em);
        goto out;
    }
    ok(c, 200, json_pack("{s:s, s:s, s:b}", "kind", "guardian_link", "id", rec->id, "deleted", 1));
out:
    free(rec);
}

static void w_student_add(struct call *c, struct records *r, struct session *s) { (void)s; do_create(c, r, REC_STUDENT); }
static void w_student_set(struct call *c, struct records *r, struct session *s) { (void)s; do_update(c, r, REC_STUDENT); }
static void w_guardian_add(struct call *c, struct records *r, struct session *s) { (void)s; do_create(c, r, REC_GUARDIAN); }
static void w_guardian_set(struct call *c, struct records *r, struct session *s) { (void)s; do_update(c, r, REC_GUARDIAN); }
static void w_link_add(struct call *c, struct records *r, struct session *s) { (void)s; do_create(c, r, REC_GUARDIAN_LINK); }
static void w_link_del(struct call *c, struct records *r, struct session *s) { (void)s; do_unlink(c, r); }
static void w_class_add(struct call *c, struct records *r, struct session *s) { (void)s; do_create(c, r, REC_CLASS); }
static void w_class_set(struct call *c, struct records *r, struct session *s) { (void)s; do_update(c, r, REC_CLASS); }

static void h_student_add(struct http_ctx *x, void *app) { with_session(x, app, "student.create", AUTH_READY, w_student_add); }
static void h_student_set(struct http_ctx *x, void *app) { with_session(x, app, "student.update", AUTH_READY, w_student_set); }
static void h_guardian_add(struct http_ctx *x, void *app) { with_session(x, app, "guardian.create", AUTH_READY, w_guardian_add); }
static void h_guardian_set(struct http_ctx *x, void *app) { with_session(x, app, "guardian.update", AUTH_READY, w_guardian_set); }
static void h_link_add(struct http_ctx *x, void *app) { with_session(x, app, "guardian_link.create", AUTH_READY, w_link_add); }
static void h_link_del(struct http_ctx *x, void *app) { with_session(x, app, "guardian_link.delete", AUTH_READY, w_link_del); }
static void h_class_add(struct http_ctx *x, void *app) { with_session(x, app, "class.create", AUTH_READY, w_class_add); }
static void h_class_set(struct http_ctx *x, void *app) { with_session(x, app, "class.update", AUTH_READY, w_class_set); }

/* ---- bulk exports: the one way to read more than a class --------------
 *
 * POST /api/v1/exports: school staff or an académie administrator ask for
 * the pupils of one establishment or one class, with a reason code and
 * their own X25519 public key: a pending request, audited.
 * POST /api/v1/exports/ID/approve: a second, different account holding
 * the DPO or académie-admin role, with a second factor passed in the last
 * --mfa-step-up-min minutes (whatever --mfa-required-roles says), approves:
 * the file is produced at once, at most export_max_rows pupils, each read
 * through the policy (POLICY_EXPORT, the requester's fields), each batch
 * named in one audit entry, sealed (crypto_box_seal) to the requester's
 * key.  GET /api/v1/exports/ID/file: the requester, once.
 */

/* Pupils named per audit entry: as a page of a list (the ids and commas
 * of API_PAGE_MAX fit AUDIT_SUBJECT_MAX). */
#define API_EXPORT_BATCH API_PAGE_MAX
/* The base64 public key: 32 bytes are 44 characters. */
#define API_KEY_B64_MAX  64

/* A fresh random id, and its hex. */
static void
rand_id_hex(char hex[RECORD_ID_HEX + 1], uint8_t bin[STORE_ID_BYTES])
{
    randombytes_buf(bin, STORE_ID_BYTES);
    records_id_format(bin, hex);
}

static int
is_hex_id(const char *s)
{
    uint8_t bin[STORE_ID_BYTES];

    return s != NULL && strlen(s) == RECORD_ID_HEX && records_id_parse(s, bin) == CF_OK;
}

static void
do_export_request(struct call *c, struct records *r, struct session *s)
{
    static const char *const allowed[] = { "reason", "scope", "recipient_public_key", NULL };
    json_t *body = http_json(c->ctx), *scope = json_object_get(body, "scope");
    const char *reason = str_member(body, "reason", STORE_EXPORT_REASON_MAX);
    const char *key = str_member(body, "recipient_public_key", API_KEY_B64_MAX);
    const char *kind = NULL, *sid = NULL;
    struct policy_principal p;
    struct store_export x;
    struct record *rec = NULL;
    enum policy_relation rel;
    uint32_t mask;
    size_t klen = 0;
    char id[RECORD_ID_HEX + 1];

    (void)s;
    memset(&x, 0, sizeof x);
    if (http_json_only(body, allowed) != 0 || reason == NULL || !account_reason_valid(reason) ||
        key == NULL) {
        bad_request(c, "Send reason (a code: a-z, 0-9, '-'), scope and recipient_public_key.");
        return;
    }
    if (json_is_object(scope) && json_object_size(scope) == 1) {
        if (json_object_get(scope, "establishment") != NULL)
            kind = "establishment";
        else if (json_object_get(scope, "class") != NULL)
            kind = "class";
        if (kind != NULL)
            sid = json_string_value(json_object_get(scope, kind));
    }
    if (kind == NULL || !is_hex_id(sid)) {
        bad_request(c, "scope: {\"establishment\": ID} or {\"class\": ID}; nothing larger than "
                       "one establishment is exported.");
        return;
    }
    if (sodium_base642bin(x.recipient_key, sizeof x.recipient_key, key, strlen(key), NULL, &klen,
                          NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        klen != STORE_EXPORT_KEY_BYTES) {
        bad_request(c, "recipient_public_key: your X25519 public key, 32 bytes in base64 "
                       "(coffre export keygen makes one).");
        return;
    }
    snprintf(c->ae.fields, sizeof c->ae.fields, "reason:%s", reason);
    policy_principal_of(&c->acct, &p);
    if (policy_rule_for(p.role, REC_STUDENT, POLICY_EXPORT, &rel, &mask) != 0) {
        write_denied(c, "Exports are asked for by school staff or an académie administrator.");
        return;
    }
    rec = malloc(sizeof *rec);
    if (rec == NULL ||
        records_get(r, kind[0] == 'e' ? REC_ESTABLISHMENT : REC_CLASS, sid, 0, rec, NULL) != CF_OK) {
        free(rec);
        set_problem(c, 404, "not-found", "Not found", "No such establishment or class.");
        return;
    }
    (void)list_add(c->ae.subject, sizeof c->ae.subject, rec->id);
    /* within the requester's reach: its académie; for anyone but an
     * académie administrator, its own establishment (none: nothing) */
    if (strcmp(rec->compartment, p.compartment) != 0 ||
        (p.role != ROLE_ACADEMIE_ADMIN &&
         (p.establishment[0] == '\0' ||
          strcmp(kind[0] == 'e' ? rec->id : rec->parent[0], p.establishment) != 0))) {
        free(rec);
        write_denied(c, "You may export your own establishment only.");
        return;
    }
    rand_id_hex(id, x.id);
    memcpy(x.compartment, p.compartment, sizeof x.compartment);
    if (records_id_parse(c->acct.id, x.requester) != CF_OK ||
        records_id_parse(rec->id, x.scope_id) != CF_OK) {
        free(rec);
        unavailable(c);
        return;
    }
    free(rec);
    snprintf(x.scope_kind, sizeof x.scope_kind, "%s", kind);
    snprintf(x.reason, sizeof x.reason, "%s", reason);
    snprintf(x.state, sizeof x.state, "pending");
    x.created = (int64_t)time(NULL);
    if (store_export_insert(records_store(r), &x) != CF_OK) {
        unavailable(c);
        return;
    }
    (void)list_add(c->ae.subject, sizeof c->ae.subject, id);
    ok(c, 201, json_pack("{s:s, s:s, s:{s:s}, s:s}", "id", id, "state", "pending", "scope", kind,
                         sid, "reason", reason));
}

/* The export of the path "ID/approve" or "ID/file"; -1 with a 404 set. */
static int
export_of(struct call *c, struct records *r, const char *suffix, struct store_export *x,
          char id[RECORD_ID_HEX + 1])
{
    const char *rest = http_path_rest(c->ctx);
    size_t n = strlen(rest);

    if (n != RECORD_ID_HEX + strlen(suffix) || strcmp(rest + RECORD_ID_HEX, suffix) != 0)
        goto none;
    memcpy(id, rest, RECORD_ID_HEX);
    id[RECORD_ID_HEX] = '\0';
    if (records_id_parse(id, x->id) != CF_OK ||
        store_export_get(records_store(r), x->id, x) != CF_OK ||
        strcmp(x->compartment, c->acct.row.compartment) != 0)
        goto none;
    (void)list_add(c->ae.subject, sizeof c->ae.subject, id);
    return 0;
none:
    set_problem(c, 404, "not-found", "Not found", "No such export.");
    return -1;
}

static int
collect_id(void *arg, const struct record *rec)
{
    json_t *ids = arg;

    json_array_append_new(ids, json_string(rec->id));
    return 0;
}

/* A batch audit entry's end: nothing waits on it; the approval's own entry,
 * queued after it, is durable only after it (one writer, in order). */
static void
batch_audited(void *arg, enum cf_err rc)
{
    (void)arg;
    if (rc != CF_OK)
        log_warnx("export: a batch audit entry could not be written");
}

/*
 * The rows of an approved export, as the requester's policy shows them:
 * every pupil of the scope read with the export mask, one audit entry per
 * batch naming every pupil and field.  Returns the JSON document, or NULL
 * with the problem set.
 */
static json_t *
export_rows(struct call *c, struct records *r, const char *xid, const struct store_export *x,
            const struct policy_principal *req, size_t *nrows)
{
    char scope[RECORD_ID_HEX + 1], reqid[RECORD_ID_HEX + 1];
    json_t *ids = json_array(), *rows = json_array(), *doc = NULL;
    struct record *rec = malloc(sizeof *rec);
    struct audit_entry *ae = malloc(sizeof *ae);
    size_t i, n, batch = 0, withheld = 0;

    records_id_format(x->scope_id, scope);
    records_id_format(x->requester, reqid);
    if (rec == NULL || ae == NULL || ids == NULL || rows == NULL ||
        records_children(r, REC_STUDENT, x->scope_kind[0] == 'e' ? 0 : 1, scope,
                         c->api->export_max_rows + 1, 0, collect_id, ids, NULL) != CF_OK) {
        unavailable(c);
        goto out;
    }
    n = json_array_size(ids);
    if (n > c->api->export_max_rows) {
        set_problem(c, 422, "export-too-large", "Export too large",
                    "The scope holds more pupils than one export may (--export-max-rows); "
                    "ask for one class at a time.");
        snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
        goto out;
    }
    memset(ae, 0, sizeof *ae);
    for (i = 0; i < n; i++) {
        const char *sid = json_string_value(json_array_get(ids, i));
        const char *why;
        uint32_t mask;
        size_t f;
        json_t *o;

        if (records_get(r, REC_STUDENT, sid, 0, rec, NULL) != CF_OK ||
            policy_check_for(r, req, rec, POLICY_EXPORT, &mask, &why) != CF_OK) {
            withheld++;
            continue;
        }
        if (records_get(r, REC_STUDENT, sid, mask, rec, NULL) != CF_OK) {
            unavailable(c);
            goto out;
        }
        if (batch == 0) {
            memset(ae, 0, sizeof *ae);
            snprintf(ae->actor, sizeof ae->actor, "acct:%s", reqid);
            snprintf(ae->session, sizeof ae->session, "%s", c->ae.session);
            snprintf(ae->addr, sizeof ae->addr, "%s", c->ae.addr);
            snprintf(ae->action, sizeof ae->action, "export.read");
            snprintf(ae->outcome, sizeof ae->outcome, "ok");
        }
        o = json_pack("{s:s, s:s}", "id", rec->id, "establishment_id", rec->parent[0]);
        if (rec->parent[1][0] != '\0')
            json_object_set_new(o, "class_id", json_string(rec->parent[1]));
        for (f = 0; f < records_field_count(REC_STUDENT); f++)
            if (rec->present & (1u << f)) {
                json_object_set_new(o, records_field_name(REC_STUDENT, f), json_string(rec->value[f]));
                (void)list_add(ae->fields, sizeof ae->fields, records_field_name(REC_STUDENT, f));
            }
        sodium_memzero(rec, sizeof *rec);
        json_array_append_new(rows, o);
        /* served only if the audit entry names it */
        if (list_add(ae->subject, sizeof ae->subject, sid) != 0) {
            unavailable(c);
            goto out;
        }
        if (++batch == API_EXPORT_BATCH || i + 1 == n) {
            if (audit_submit(c->api->audit, ae, batch_audited, NULL) != CF_OK) {
                unavailable(c);
                goto out;
            }
            batch = 0;
        }
    }
    if (batch > 0 && audit_submit(c->api->audit, ae, batch_audited, NULL) != CF_OK) {
        unavailable(c);
        goto out;
    }
    doc = json_pack("{s:s, s:s, s:s, s:I, s:I, s:o}", "export", xid, "scope",
                    x->scope_kind, "scope_id", scope, "created", (json_int_t)x->created,
                    "withheld", (json_int_t)withheld, "rows", rows);
    rows = NULL;
    *nrows = n - withheld;
out:
    json_decref(ids);
    json_decref(rows);
    if (rec != NULL)
        sodium_memzero(rec, sizeof *rec);
    free(rec);
    free(ae);
    return doc;
}

static void
do_export_approve(struct call *c, struct records *r, struct session *s)
{
    struct store_export x;
    struct policy_principal req;
    struct account *ra = NULL;
    char id[RECORD_ID_HEX + 1], reqid[RECORD_ID_HEX + 1];
    json_t *doc = NULL;
    char *text = NULL;
    uint8_t *sealed = NULL;
    size_t nrows = 0, tlen;
    int64_t now = (int64_t)time(NULL);

    if (c->acct.role != ROLE_DPO && c->acct.role != ROLE_ACADEMIE_ADMIN) {
        write_denied(c, "Exports are approved by the DPO or an académie administrator.");
        return;
    }
    /* a fresh second factor, whatever the roles that must have one */
    if (s->row.mfa_level < 1 || now - s->row.mfa_at > c->api->mfa.step_up_s) {
        mfa_refused(c, MFA_GATE_CHALLENGE, 1);
        return;
    }
    if (export_of(c, r, "/approve", &x, id) != 0)
        return;
    records_id_format(x.requester, reqid);
    if (strcmp(reqid, c->acct.id) == 0) {
        write_denied(c, "The account that asked for an export cannot approve it: a second person must.");
        return;
    }
    if (strcmp(x.state, "pending") != 0) {
        set_problem(c, 409, "not-pending", "Already decided", "This export was approved already.");
        return;
    }
    ra = malloc(sizeof *ra);
    if (ra == NULL || account_get(r, reqid, ra) != CF_OK ||
        strcmp(ra->row.state, ACCOUNT_STATE_ACTIVE) != 0) {
        free(ra);
        write_denied(c, "The account that asked for this export is no longer active.");
        return;
    }
    policy_principal_of(ra, &req);
    free(ra);
    if ((doc = export_rows(c, r, id, &x, &req, &nrows)) == NULL)
        return;
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    tlen = text != NULL ? strlen(text) : 0;
    sealed = text != NULL ? malloc(tlen + crypto_box_SEALBYTES) : NULL;
    if (sealed == NULL || crypto_box_seal(sealed, (const unsigned char *)text, tlen,
                                          x.recipient_key) != 0) {
        unavailable(c);
        goto out;
    }
    snprintf(x.state, sizeof x.state, "ready");
    if (records_id_parse(c->acct.id, x.approver) != CF_OK) {
        unavailable(c);
        goto out;
    }
    x.has_approver = 1;
    x.rows = nrows;
    x.decided = now;
    if (store_export_update(records_store(r), &x, "pending", sealed,
                            tlen + crypto_box_SEALBYTES) != CF_OK) {
        set_problem(c, 409, "not-pending", "Already decided", "This export was approved already.");
        goto out;
    }
    snprintf(c->ae.fields, sizeof c->ae.fields, "rows:%zu", nrows);
    ok(c, 200, json_pack("{s:s, s:s, s:I}", "id", id, "state", "ready", "rows", (json_int_t)nrows));
out:
    if (text != NULL) {
        sodium_memzero(text, tlen);
        free(text);
    }
    free(sealed);
}

static void
do_export_file(struct call *c, struct records *r, struct session *s)
{
    struct store_export x;
    char id[RECORD_ID_HEX + 1], reqid[RECORD_ID_HEX + 1];
    uint8_t *file = NULL;
    char *b64 = NULL;
    size_t len = 0, blen;

    (void)s;
    if (export_of(c, r, "/file", &x, id) != 0)
        return;
    records_id_format(x.requester, reqid);
    if (strcmp(reqid, c->acct.id) != 0) {
        write_denied(c, "Only the account that asked for an export downloads it.");
        return;
    }
    if (strcmp(x.state, "ready") != 0) {
        set_problem(c, strcmp(x.state, "pending") == 0 ? 409 : 410,
                    strcmp(x.state, "pending") == 0 ? "not-approved" : "gone",
                    strcmp(x.state, "pending") == 0 ? "Not approved yet" : "Already downloaded",
                    strcmp(x.state, "pending") == 0
                        ? "A second person must approve this export first."
                        : "An export is downloaded once; ask for a new one.");
        return;
    }
    if (store_export_file(records_store(r), x.id, &file, &len) != CF_OK) {
        unavailable(c);
        return;
    }
    blen = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    b64 = malloc(blen);
    /* once: the file goes with this answer */
    snprintf(x.state, sizeof x.state, "downloaded");
    x.downloaded = (int64_t)time(NULL);
    if (b64 == NULL || store_export_update(records_store(r), &x, "ready", NULL, 0) != CF_OK) {
        set_problem(c, 410, "gone", "Already downloaded", "An export is downloaded once.");
        goto out;
    }
    sodium_bin2base64(b64, blen, file, len, sodium_base64_VARIANT_ORIGINAL);
    snprintf(c->ae.fields, sizeof c->ae.fields, "rows:%llu", (unsigned long long)x.rows);
    ok(c, 200, json_pack("{s:s, s:I, s:s, s:s}", "id", id, "rows", (json_int_t)x.rows,
                         "sealed", b64, "format", "crypto_box_seal(JSON), base64"));
out:
    free(b64);
    free(file);
}

static void h_export_request(struct http_ctx *x, void *app) { with_session(x, app, "export.request", AUTH_READY, do_export_request); }
static void h_export_approve(struct http_ctx *x, void *app) { with_session(x, app, "export.approve", AUTH_STEP_UP, do_export_approve); }
static void h_export_file(struct http_ctx *x, void *app) { with_session(x, app, "export.download", AUTH_READY, do_export_file); }

/* ---- alerts: what the guard denied on --------------------------------- */

#define API_ALERTS_PAGE 50

static int
alert_item(void *arg, const struct store_alert *a)
{
    char buf[ALERTS_BODY_MAX];
    size_t n = alerts_json(a, buf, sizeof buf);
    json_t *o = n > 0 ? json_loadb(buf, n, 0, NULL) : NULL;

    if (o != NULL)
        json_array_append_new(arg, o);
    return 0;
}

/* GET /api/v1/alerts[?page=N]: the académie's alerts, newest first, for
 * its administrators and its DPO. */
static void
do_alerts(struct call *c, struct records *r, struct session *s)
{
    const char *pg = http_param(c->ctx, "page");
    unsigned long page = 0;
    json_t *items;
    int more;

    (void)s;
    if (c->acct.role != ROLE_ACADEMIE_ADMIN && c->acct.role != ROLE_DPO) {
        set_problem(c, 403, "forbidden", "Not allowed",
                    "Alerts are shown to académie administrators and the DPO.");
        snprintf(c->ae.outcome, sizeof c->ae.outcome, "denied");
        return;
    }
    if (pg != NULL) {
        char *end;

        errno = 0;
        page = strtoul(pg, &end, 10);
        if (pg[0] < '0' || pg[0] > '9' || *end != '\0' || errno != 0 || page > API_PAGES_MAX) {
            bad_request(c, "page: a whole number from 0.");
            return;
        }
    }
    items = json_array();
    if (store_alerts_page(records_store(r), c->acct.row.compartment, page * API_ALERTS_PAGE,
                          API_ALERTS_PAGE + 1, alert_item, items) != CF_OK) {
        json_decref(items);
        unavailable(c);
        return;
    }
    more = json_array_size(items) > API_ALERTS_PAGE;
    if (more)
        json_array_remove(items, API_ALERTS_PAGE);
    snprintf(c->ae.subject, sizeof c->ae.subject, "%s", c->acct.row.compartment);
    ok(c, 200, json_pack("{s:o, s:i, s:i, s:b}", "items", items, "page", (int)page,
                         "page_max", API_ALERTS_PAGE, "more", more));
}

static void h_alerts(struct http_ctx *x, void *app) { with_session(x, app, "alert.list", AUTH_READY, do_alerts); }

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
