/*
 * api_admin.c - what an académie administrator does through the API:
 * provisioning accounts (with their activation codes), unlocking an account
 * the guard locked, the incident commands (freeze the unactivated, reset
 * codes, revoke sessions, force password resets), and the list of the
 * guard's alerts (administrators and the DPO).
 *
 * Every action is confined to the caller's own académie (optionally one
 * establishment of it) and audited; the account work is account.c's.  It
 * never opens a person's record: an establishment is found by its UAI,
 * header only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "account.h"
#include "alerts.h"
#include "api_int.h"
#include "audit.h"
#include "guard.h"
#include "http.h"
#include "log.h"
#include "records.h"
#include "session.h"
#include "banned.h"

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
        ok(c, 201, json_pack("{s:o, s:s, s:I}", "account", api_account_json(a), "activation_code",
                             code, "code_expires", (json_int_t)a->row.code_expires));
    }
    sodium_memzero(code, sizeof code);
    free(a);
}

void
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
void h_provision(struct http_ctx *x, void *app) { with_session(x, app, "account.provision", AUTH_ADMIN, do_provision); }

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

void h_unlock(struct http_ctx *x, void *app) { with_session(x, app, "account.unlock", AUTH_ADMIN, do_unlock); }

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

void h_alerts(struct http_ctx *x, void *app) { with_session(x, app, "alert.list", AUTH_READY, do_alerts); }
