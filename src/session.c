/*
 * session.c - sessions (see session.h).  Tokens are compared by hash
 * lookup only; a token never reaches the store, a log or an error.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "session.h"
#include "banned.h"

#define IDLE_DEFAULT_S     (30 * 60)
#define ABSOLUTE_DEFAULT_S (12 * 3600)
#define TOUCH_EVERY_S      60

static void
token_hash(const char *token, uint8_t out[STORE_TOKEN_HASH_BYTES])
{
    crypto_generichash(out, STORE_TOKEN_HASH_BYTES, (const uint8_t *)token,
                       strlen(token), NULL, 0);
}

static void
fill(struct session *s)
{
    char hex[2 * STORE_TOKEN_HASH_BYTES + 1];

    records_id_format(s->row.account, s->account_id);
    sodium_bin2hex(hex, sizeof hex, s->row.token_hash, STORE_TOKEN_HASH_BYTES);
    memcpy(s->ref, hex, SESSION_REF_HEX);
    s->ref[SESSION_REF_HEX] = '\0';
}

enum cf_err
session_create(struct records *r, const char *account_id, int mfa_level,
               const struct session_opts *o, char token[SESSION_TOKEN_TEXT + 1],
               struct session *out)
{
    return session_create_on(r, account_id, mfa_level, o, "", token, out);
}

void
session_device(const char *ua, char out[STORE_DEVICE_MAX + 1])
{
    /* first match wins: Edge and Opera say "Chrome", Chrome says "Safari" */
    static const char *const browsers[][2] = {
        { "Edg/", "Edge" }, { "OPR/", "Opera" }, { "Firefox/", "Firefox" },
        { "Chrome/", "Chrome" }, { "Chromium/", "Chromium" }, { "Safari/", "Safari" },
        { "curl/", "curl" }, { "node", "Node.js" },
    };
    static const char *const systems[][2] = {
        { "iPhone", "iPhone" }, { "iPad", "iPad" }, { "Android", "Android" },
        { "Windows", "Windows" }, { "Mac OS X", "macOS" }, { "CrOS", "ChromeOS" },
        { "Linux", "Linux" },
    };
    const char *b = NULL, *os = NULL;
    size_t i;

    out[0] = '\0';
    if (ua == NULL || strlen(ua) > 1024)
        return;
    for (i = 0; b == NULL && i < sizeof browsers / sizeof browsers[0]; i++)
        if (strstr(ua, browsers[i][0]) != NULL)
            b = browsers[i][1];
    for (i = 0; os == NULL && i < sizeof systems / sizeof systems[0]; i++)
        if (strstr(ua, systems[i][0]) != NULL)
            os = systems[i][1];
    if (b != NULL && os != NULL)
        snprintf(out, STORE_DEVICE_MAX + 1, "%s, %s", b, os);
    else if (b != NULL || os != NULL)
        snprintf(out, STORE_DEVICE_MAX + 1, "%s", b != NULL ? b : os);
}

enum cf_err
session_create_on(struct records *r, const char *account_id, int mfa_level,
                  const struct session_opts *o, const char *device,
                  char token[SESSION_TOKEN_TEXT + 1], struct session *out)
{
    uint8_t raw[SESSION_TOKEN_BYTES];
    int64_t now = (int64_t)time(NULL);
    enum cf_err rc;

    memset(out, 0, sizeof *out);
    if (records_id_parse(account_id, out->row.account) != CF_OK)
        return CF_ERR_INPUT;
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(token, SESSION_TOKEN_TEXT + 1, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    token_hash(token, out->row.token_hash);
    out->row.created = out->row.last_used = now;
    out->row.expires = now + (o->absolute_s ? o->absolute_s : ABSOLUTE_DEFAULT_S);
    out->row.mfa_level = mfa_level;
    snprintf(out->row.device, sizeof out->row.device, "%s", device != NULL ? device : "");
    rc = store_session_insert(records_store(r), &out->row);
    if (rc != CF_OK) {
        sodium_memzero(token, SESSION_TOKEN_TEXT + 1);
        return rc;
    }
    fill(out);
    return CF_OK;
}

static int
token_wellformed(const char *t)
{
    size_t i, n = strlen(t);

    if (n != SESSION_TOKEN_TEXT)
        return 0;
    for (i = 0; i < n; i++) {
        char c = t[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

enum cf_err
session_lookup(struct records *r, const char *token, const struct session_opts *o,
               int64_t now, struct session *out)
{
    int64_t idle = o->idle_s ? o->idle_s : IDLE_DEFAULT_S;
    uint8_t h[STORE_TOKEN_HASH_BYTES];
    enum cf_err rc;

    if (token == NULL || !token_wellformed(token))
        return CF_ERR_AUTH;
    token_hash(token, h);
    rc = store_session_get(records_store(r), h, &out->row);
    if (rc == CF_ERR_NOTFOUND)
        return CF_ERR_AUTH;
    if (rc != CF_OK)
        return rc;
    if (out->row.revoked || now >= out->row.expires || now - out->row.last_used >= idle)
        return CF_ERR_AUTH;
    if (now - out->row.last_used >= TOUCH_EVERY_S) {
        if (store_session_touch(records_store(r), h, now) != CF_OK)
            return CF_ERR_STORE;
        out->row.last_used = now;
    }
    fill(out);
    return CF_OK;
}

enum cf_err
session_revoke(struct records *r, const struct session *s)
{
    return store_session_revoke(records_store(r), s->row.token_hash);
}

enum cf_err
session_raise_mfa(struct records *r, struct session *s, int level, int64_t now)
{
    int to = level > s->row.mfa_level ? level : s->row.mfa_level;
    enum cf_err rc = store_session_set_mfa(records_store(r), s->row.token_hash, to, now);

    if (rc == CF_OK) {
        s->row.mfa_level = to;
        s->row.mfa_at = now;
    }
    return rc;
}

struct ref_match {
    const char *ref;
    uint8_t hash[STORE_TOKEN_HASH_BYTES];
    int found;
};

static int
match_ref(void *arg, const struct store_session *x)
{
    struct ref_match *m = arg;
    char hex[2 * STORE_TOKEN_HASH_BYTES + 1];

    sodium_bin2hex(hex, sizeof hex, x->token_hash, STORE_TOKEN_HASH_BYTES);
    if (strncmp(hex, m->ref, SESSION_REF_HEX) != 0)
        return 0;
    memcpy(m->hash, x->token_hash, sizeof m->hash);
    m->found = 1;
    return 1;
}

#define SESSION_LIST_MAX 1000

enum cf_err
session_revoke_ref(struct records *r, const char *account_id, const char *ref)
{
    uint8_t acct[STORE_ID_BYTES];
    struct ref_match m = { ref, { 0 }, 0 };
    enum cf_err rc;

    if (records_id_parse(account_id, acct) != CF_OK || strlen(ref) != SESSION_REF_HEX)
        return CF_ERR_INPUT;
    rc = store_sessions_of(records_store(r), acct, SESSION_LIST_MAX, match_ref, &m);
    if (rc != CF_OK)
        return rc;
    if (!m.found)
        return CF_ERR_NOTFOUND;
    return store_session_revoke(records_store(r), m.hash);
}

struct list_ctx {
    session_fn fn;
    void *arg;
};

static int
list_one(void *arg, const struct store_session *x)
{
    struct list_ctx *c = arg;
    struct session s;

    s.row = *x;
    fill(&s);
    return c->fn(c->arg, &s);
}

enum cf_err
session_list(struct records *r, const char *account_id, size_t limit,
             session_fn fn, void *arg)
{
    uint8_t acct[STORE_ID_BYTES];
    struct list_ctx c = { fn, arg };

    if (records_id_parse(account_id, acct) != CF_OK)
        return CF_ERR_INPUT;
    if (limit > SESSION_LIST_MAX)
        limit = SESSION_LIST_MAX;
    return store_sessions_of(records_store(r), acct, limit, list_one, &c);
}
