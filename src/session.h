/*
 * session.h - sign-in sessions (DESIGN.md section 6).
 *
 * A session token is 256 random bits, given to the client once (cookie or
 * bearer) and stored only as its BLAKE2b hash.  Sessions expire after an
 * idle time and at an absolute time, and are revoked by sign-out, by a
 * password change and by incident commands.  Each session keeps the
 * second-factor level it passed and when (mfa_level, mfa_at: docs/mfa.md).
 */
#ifndef COFFRE_SESSION_H
#define COFFRE_SESSION_H

#include <stdint.h>

#include "err.h"
#include "records.h"
#include "store.h"

#define SESSION_TOKEN_BYTES 32
/* base64url without padding */
#define SESSION_TOKEN_TEXT 43
#define SESSION_COOKIE "coffre_session"
/* Hex prefix of the token hash named in the audit trail and session lists:
 * enough to tell sessions apart, useless to take one over. */
#define SESSION_REF_HEX 16

struct session_opts {
    int64_t idle_s;          /* 0: 30 minutes */
    int64_t absolute_s;      /* 0: 12 hours */
};

struct session {
    struct store_session row;
    char account_id[RECORD_ID_HEX + 1];
    char ref[SESSION_REF_HEX + 1];
};

/* Creates a session; token gets the secret (shown once to the client). */
enum cf_err session_create(struct records *r, const char *account_id,
                           int mfa_level, const struct session_opts *o,
                           char token[SESSION_TOKEN_TEXT + 1],
                           struct session *out) WARN_UNUSED;

/* The same, recording the device label the session was opened from
 * (session_device makes one from a User-Agent). */
enum cf_err session_create_on(struct records *r, const char *account_id,
                              int mfa_level, const struct session_opts *o,
                              const char *device,
                              char token[SESSION_TOKEN_TEXT + 1],
                              struct session *out) WARN_UNUSED;
/* A coarse label of a User-Agent: "Firefox, Linux", "Safari, iPhone",
 * "curl", "" when unknown.  Never the header itself (a fingerprint). */
void session_device(const char *user_agent, char out[STORE_DEVICE_MAX + 1]);

/* CF_OK for a live session (last use refreshed at most once a minute);
 * CF_ERR_AUTH for a malformed, unknown, revoked or expired token alike. */
enum cf_err session_lookup(struct records *r, const char *token,
                           const struct session_opts *o, int64_t now,
                           struct session *out) WARN_UNUSED;

enum cf_err session_revoke(struct records *r, const struct session *s) WARN_UNUSED;

/* The session passed a second factor of `level` (1: TOTP or recovery code,
 * 2: WebAuthn) at `now`: mfa_at = now, mfa_level = the higher of the two.
 * Updates the store and s->row. */
enum cf_err session_raise_mfa(struct records *r, struct session *s, int level,
                              int64_t now) WARN_UNUSED;

/* Revokes one of the account's own sessions by its ref. */
enum cf_err session_revoke_ref(struct records *r, const char *account_id,
                               const char *ref) WARN_UNUSED;

typedef int (*session_fn)(void *arg, const struct session *s);
/* The account's sessions, newest use first, at most limit. */
enum cf_err session_list(struct records *r, const char *account_id,
                         size_t limit, session_fn fn, void *arg) WARN_UNUSED;

#endif
