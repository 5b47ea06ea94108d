/*
 * api_mfa.c - the second-factor endpoints (docs/mfa.md): the state of an
 * account's factors, TOTP enrollment, confirmation and verification,
 * recovery codes, and WebAuthn registration, assertion and key removal.
 *
 * Which role needs or may use which factor, and the ceremonies themselves,
 * are mfa.c's; this file bounds the input, throttles codes like passwords,
 * asks for a fresh factor before another is added, raises the session's
 * level once a factor passed, and audits every outcome.  It never changes
 * anything on a refusal, never logs a code, and never reads a person's
 * record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "account.h"
#include "api_int.h"
#include "http.h"
#include "log.h"
#include "mfa.h"
#include "records.h"
#include "session.h"
#include "banned.h"

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
        api_mfa_refused(c, MFA_GATE_CHALLENGE, 1);
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

void
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

void h_mfa_status(struct http_ctx *x, void *app) { with_session(x, app, "mfa.read", AUTH_PARTIAL, do_mfa_status); }
void h_totp_enroll(struct http_ctx *x, void *app) { with_session(x, app, "mfa.totp.enroll", AUTH_PARTIAL, do_totp_enroll); }
void h_totp_confirm(struct http_ctx *x, void *app) { with_session(x, app, "mfa.totp.confirm", AUTH_PARTIAL, do_totp_confirm); }
void h_totp_verify(struct http_ctx *x, void *app) { with_session(x, app, "mfa.totp.verify", AUTH_PARTIAL, do_totp_verify); }
void h_recovery_verify(struct http_ctx *x, void *app) { with_session(x, app, "mfa.recovery.use", AUTH_PARTIAL, do_recovery_verify); }

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

void h_register_begin(struct http_ctx *x, void *app) { with_session(x, app, "mfa.webauthn.register.begin", AUTH_PARTIAL, do_register_begin); }
void h_register_finish(struct http_ctx *x, void *app) { with_session(x, app, "mfa.webauthn.register", AUTH_PARTIAL, do_register_finish); }
void h_assert_begin(struct http_ctx *x, void *app) { with_session(x, app, "mfa.webauthn.assert.begin", AUTH_PARTIAL, do_assert_begin); }
void h_assert_finish(struct http_ctx *x, void *app) { with_session(x, app, "mfa.webauthn.assert", AUTH_PARTIAL, do_assert_finish); }
void h_key_remove(struct http_ctx *x, void *app) { with_session(x, app, "mfa.webauthn.remove", AUTH_STEP_UP, do_key_remove); }
