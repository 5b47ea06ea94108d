/*
 * api_pages.c - the HTML pages (docs/pages.md) and the incident console
 * (docs/scope.md): the page table, the form posts that reach the JSON
 * handlers (origin and CSRF checked first), the rendering of an answer as
 * a page (page_send), the static files, and the breach-scope API the
 * console posts to (the summary, and the DPO's people-to-notify file).
 *
 * A page is a second face of the JSON API: the same handler, the same
 * guard, policy and audit entry, only answered in HTML.  It never opens a
 * record's fields itself (scope.c opens the people file, each opening
 * audited first) and never puts a password back into a form.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "account.h"
#include "api_int.h"
#include "audit.h"
#include "http.h"
#include "log.h"
#include "records.h"
#include "scope.h"
#include "session.h"
#include "web.h"
#include "banned.h"

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
    json_object_set_new(c->body, "account", api_account_json(&c->acct));
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

void h_scope(struct http_ctx *x, void *app) { with_session(x, app, "scope.summary", AUTH_READY, do_scope); }
void h_scope_people(struct http_ctx *x, void *app) { with_session(x, app, "scope.people", AUTH_STEP_UP, do_scope_people); }

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

const struct webpage *
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

void
p_get(struct http_ctx *ctx, void *app)
{
    page_of(ctx)->fn(ctx, app);
}

/* A form: from our own pages (Origin, Sec-Fetch-Site) with a valid token
 * for this form, this browser and this session; then the API handler. */
void
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
void
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

void
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
