/*
 * api_signin.c - sign-in, activation, password change, and a session's own
 * endpoints (whoami, sign-out, the list of sessions, revoking one).
 *
 * It owns the throttles of a login and a client address (the second
 * factor's codes use them too) and hands every password to the pwhash
 * pool: the connection stays suspended meanwhile, and the answer leaves
 * from finish() like every other.  A failed sign-in or activation has one
 * answer whatever failed, so whether a login exists never shows.  It never
 * reads a person's record, and never puts a password, a code or a login in
 * a log line or a problem's detail.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "account.h"
#include "api_int.h"
#include "http.h"
#include "keyring.h"
#include "log.h"
#include "mfa.h"
#include "pwhash.h"
#include "records.h"
#include "session.h"
#include "banned.h"

/* ---- sign-in ---------------------------------------------------------- */

static void
invalid_credentials(struct call *c)
{
    /* One answer for an unknown login, a wrong password, and a locked,
     * frozen, disabled or not yet activated account. */
    set_problem(c, 401, "invalid-credentials", "Sign-in failed",
                "The login or the password is not right. Check both and try again.");
}

void
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
int64_t
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

void
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
json_t *
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
void
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
    api_session_cookie(c, token, c->api->sess.absolute_s);
    body = json_pack("{s:o, s:{s:s, s:I}}", "account", api_account_json(&c->acct), "session",
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

void
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

void
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

void
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

/* ---- sessions --------------------------------------------------------- */

static int
recovery_item(void *arg, int64_t when)
{
    json_array_append_new(arg, json_pack("{s:I}", "time", (json_int_t)when));
    return 0;
}

/* The notice of spent recovery codes, on the sessions and factors lists:
 * a code used by someone else shows here. */
json_t *
recovery_used_json(struct records *r, const struct account *a)
{
    json_t *list = json_array();

    if (mfa_recovery_used(r, a, recovery_item, list) != CF_OK)
        log_warnx("mfa: cannot list the spent recovery codes");
    return list;
}

void
do_whoami(struct call *c, struct records *r, struct session *s)
{
    json_t *body = json_pack("{s:o, s:{s:s, s:I, s:I, s:i, s:I}}", "account", api_account_json(&c->acct),
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

void
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

void h_whoami(struct http_ctx *x, void *app) { with_session(x, app, "session.read", AUTH_ANY, do_whoami); }
void h_logout(struct http_ctx *x, void *app) { with_session(x, app, "session.logout", AUTH_ANY, do_logout); }
void h_sessions(struct http_ctx *x, void *app) { with_session(x, app, "session.list", AUTH_PARTIAL, do_sessions); }
void h_session_revoke(struct http_ctx *x, void *app) { with_session(x, app, "session.revoke", AUTH_ANY, do_session_revoke); }
