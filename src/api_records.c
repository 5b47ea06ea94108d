/*
 * api_records.c - every API path to a person's record: the reads (one
 * record, an exact lookup, the children of a class, an establishment or a
 * guardian), the writes (create, change, link, unlink) and the two-person
 * bulk export.
 *
 * The invariant, to check in this file alone: no path serves a record
 * without the guard, the policy and the audit entry, and nothing is
 * decrypted before guard and policy said yes.  Each path meets it so:
 *   reads    serve_record() is the one function that opens a record's
 *            fields for an answer: guard (guarded), policy (policy_check),
 *            open only the fields the policy's mask allows, then name the
 *            subject and fields in the audit entry or serve nothing.
 *            do_record, do_lookup and do_children call it for every record
 *            they answer with; a lookup that finds nothing is shown to the
 *            guard as a miss.
 *   writes   read headers only (no field opened); touch() shows every
 *            existing record a write names to the guard and to the audit
 *            entry, and the policy's write fields (POLICY_WRITE) decide
 *            before anything changes; a new record is shown to the guard
 *            and the policy inside its transaction, rolled back if
 *            refused.  Answers name ids and field names, never a value.
 *   exports  no guard budget (an export is larger than any by design):
 *            instead a second, different account approves with a fresh
 *            second factor, each pupil is read through the requester's
 *            POLICY_EXPORT mask, one audit entry per batch names every
 *            pupil and field, and the file is sealed to the requester's key.
 * Every answer leaves from finish() (api.c), once its audit entry is
 * durable.  No other api file opens a record's fields, with one exception
 * kept apart: the DPO's people-to-notify file (api_pages.c,
 * do_scope_people), opened by scope.c after an audit entry of its own is
 * durable, for the DPO with a fresh second factor, not counted by the
 * guard (the console's summary opens nothing personal: counts, and an
 * establishment's UAI).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "account.h"
#include "alerts.h"
#include "api_int.h"
#include "audit.h"
#include "guard.h"
#include "http.h"
#include "log.h"
#include "mfa.h"
#include "policy.h"
#include "records.h"
#include "session.h"
#include "banned.h"

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

void h_student(struct http_ctx *x, void *app) { with_session(x, app, "student.read", AUTH_READY, d_student); }
void h_student_find(struct http_ctx *x, void *app) { with_session(x, app, "student.find", AUTH_READY, d_student_find); }
void h_guardian(struct http_ctx *x, void *app) { with_session(x, app, "guardian.read", AUTH_READY, d_guardian); }
void h_staff(struct http_ctx *x, void *app) { with_session(x, app, "staff.read", AUTH_READY, d_staff); }
void h_staff_find(struct http_ctx *x, void *app) { with_session(x, app, "staff.find", AUTH_READY, d_staff_find); }
void h_class(struct http_ctx *x, void *app) { with_session(x, app, "class.students", AUTH_READY, d_class_students); }
void h_guardian_children(struct http_ctx *x, void *app) { with_session(x, app, "guardian.children", AUTH_READY, d_guardian_children); }
void h_establishment(struct http_ctx *x, void *app)
{
    const char *rest = http_path_rest(x);
    size_t n = strlen(rest);

    if (n > 6 && strcmp(rest + n - 6, "/staff") == 0)
        with_session(x, app, "establishment.staff", AUTH_READY, d_est_staff);
    else
        with_session(x, app, "establishment.classes", AUTH_READY, d_est_classes);
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
    if (records_commit(r, &em) != CF_OK) {
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

void h_student_add(struct http_ctx *x, void *app) { with_session(x, app, "student.create", AUTH_READY, w_student_add); }
void h_student_set(struct http_ctx *x, void *app) { with_session(x, app, "student.update", AUTH_READY, w_student_set); }
void h_guardian_add(struct http_ctx *x, void *app) { with_session(x, app, "guardian.create", AUTH_READY, w_guardian_add); }
void h_guardian_set(struct http_ctx *x, void *app) { with_session(x, app, "guardian.update", AUTH_READY, w_guardian_set); }
void h_link_add(struct http_ctx *x, void *app) { with_session(x, app, "guardian_link.create", AUTH_READY, w_link_add); }
void h_link_del(struct http_ctx *x, void *app) { with_session(x, app, "guardian_link.delete", AUTH_READY, w_link_del); }
void h_class_add(struct http_ctx *x, void *app) { with_session(x, app, "class.create", AUTH_READY, w_class_add); }
void h_class_set(struct http_ctx *x, void *app) { with_session(x, app, "class.update", AUTH_READY, w_class_set); }

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
        api_mfa_refused(c, MFA_GATE_CHALLENGE, 1);
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

void h_export_request(struct http_ctx *x, void *app) { with_session(x, app, "export.request", AUTH_READY, do_export_request); }
void h_export_approve(struct http_ctx *x, void *app) { with_session(x, app, "export.approve", AUTH_STEP_UP, do_export_approve); }
void h_export_file(struct http_ctx *x, void *app) { with_session(x, app, "export.download", AUTH_READY, do_export_file); }
