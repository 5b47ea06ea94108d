/*
 * mfa.h - second factors (DESIGN.md section 6, docs/mfa.md): TOTP (RFC 6238
 * with liboath), recovery codes, WebAuthn security keys (libfido2 +
 * libcbor), and the one policy table saying which roles must have a second
 * factor and which factors each role may use.
 *
 * Everything a thief of the store could use to pass a factor is sealed or
 * hashed: TOTP secrets and key credentials are sealed fields (kind
 * "mfa_factor"), recovery codes keyed hashes bound to their account.  This
 * module never writes the audit trail and never decides what a session may
 * reach (api.c's authenticate() does, from mfa_gate()); it never puts a
 * code, a secret or a login in an error or a log line.
 */
#ifndef COFFRE_MFA_H
#define COFFRE_MFA_H

#include <stddef.h>
#include <stdint.h>

#include "account.h"
#include "err.h"
#include "records.h"
#include "store.h"

/* Factor kinds, as bits. */
#define MFA_TOTP      0x1u
#define MFA_WEBAUTHN  0x2u
#define MFA_RECOVERY  0x4u

/* Session levels (store_session.mfa_level). */
#define MFA_LEVEL_NONE 0         /* password only */
#define MFA_LEVEL_CODE 1         /* TOTP or a recovery code */
#define MFA_LEVEL_KEY  2         /* a WebAuthn security key */

/* ---- policy ----------------------------------------------------------- */

/* Step-up: a sensitive action needs a factor passed within this (10 min,
 * flag --mfa-step-up-min). */
#define MFA_STEP_UP_DEFAULT_S (10 * 60)
#define MFA_STEP_UP_MAX_S     (24 * 3600)

struct mfa_policy {
    unsigned required;               /* bit (1u << role): must have a factor */
    unsigned allowed[ROLE_COUNT];    /* MFA_* kinds each role may use */
    int64_t step_up_s;
};

/* Defaults: teacher, staff, academie_admin, dpo and service must have a
 * second factor, students and guardians may; every role may use TOTP,
 * recovery codes and WebAuthn. */
void mfa_policy_default(struct mfa_policy *p);
/* --mfa-admin-webauthn 1: académie admins use security keys only. */
void mfa_policy_admin_webauthn(struct mfa_policy *p);
int mfa_role_required(const struct mfa_policy *p, enum account_role r);
/* Level a session of this role needs: 2 when the role may use WebAuthn
 * only, else 1. */
int mfa_level_needed(const struct mfa_policy *p, enum account_role r);

/* What an account has: active factors (MFA_TOTP, MFA_WEBAUTHN;
 * MFA_RECOVERY while unused codes are left), counts. */
struct mfa_state {
    unsigned enrolled;
    uint32_t recovery_left;
    uint32_t keys;
    int totp_pending;
};
enum cf_err mfa_state_of(struct records *r, const struct account *a,
                         struct mfa_state *out) WARN_UNUSED;

/* The factors the account has that its role may use to reach `level`. */
unsigned mfa_usable(const struct mfa_policy *p, const struct account *a,
                    const struct mfa_state *st);

enum mfa_gate {
    MFA_GATE_OK,          /* the session may go on */
    MFA_GATE_ENROLL,      /* the role requires a factor and none is usable: enroll */
    MFA_GATE_CHALLENGE,   /* a factor is enrolled, this session has not passed it */
};
/* For a session at `level`: an account with a usable factor must pass it
 * (whatever its role); one without must enroll if its role requires. */
enum mfa_gate mfa_gate(const struct mfa_policy *p, const struct account *a,
                       const struct mfa_state *st, int level);
/* The same for a sensitive action: also a factor passed at most
 * p->step_up_s ago (an account that has none and need none passes). */
enum mfa_gate mfa_gate_step_up(const struct mfa_policy *p, const struct account *a,
                               const struct mfa_state *st, int level, int64_t mfa_at,
                               int64_t now);

/* ---- TOTP (RFC 6238: HMAC-SHA-1, 30 s, 6 digits, +-1 step) ------------- */

#define MFA_TOTP_SECRET_BYTES 20     /* 160 bits (RFC 4226 section 4) */
#define MFA_TOTP_STEP_S       30
#define MFA_TOTP_DIGITS       6
#define MFA_TOTP_WINDOW       1      /* steps either side of now */
/* 32 base32 symbols in 8 groups of 4 with spaces */
#define MFA_TOTP_SECRET_TEXT  39
#define MFA_OTPAUTH_MAX       256
/* The inline SVG of an otpauth URI (QR version <= 10 at level M) */
#define MFA_QR_SVG_MAX        (96 * 1024)
/* A pending enrollment must be confirmed within this: a QR code left on a
 * screen does not stay confirmable for ever. */
#define MFA_ENROLL_TTL_S      (15 * 60)
/* A code as typed: exactly 6 ASCII digits (no letters, no spaces). */
#define MFA_CODE_MAX_BYTES    32

/* The TOTP of one time step (counter = floor(t / 30)), digits 6..8, for
 * the test vectors; 0 on success. */
int mfa_totp_at(const uint8_t *secret, size_t len, uint64_t counter, unsigned digits,
                char out[9]);

struct mfa_totp_enrollment {
    char secret[MFA_TOTP_SECRET_TEXT + 1];   /* base32, grouped by 4 */
    char uri[MFA_OTPAUTH_MAX];               /* otpauth://totp/... */
    char *qr_svg;                            /* malloc'd SVG text */
};
/* Wipes and frees what an enrollment holds. */
void mfa_totp_enrollment_release(struct mfa_totp_enrollment *e);

/* Starts a TOTP enrollment bound to the session (token hash): a new
 * secret, sealed, pending until mfa_totp_confirm; replaces an earlier
 * pending one.  The caller shows out once and releases it. */
enum cf_err mfa_totp_enroll(struct records *r, const struct account *a,
                            const uint8_t session[STORE_TOKEN_HASH_BYTES], int64_t now,
                            struct mfa_totp_enrollment *out) WARN_UNUSED;
/*
 * Confirms the pending enrollment with one valid code: the TOTP becomes
 * active (replacing an earlier one).  CF_ERR_INPUT: not 6 digits;
 * CF_ERR_NOTFOUND: no enrollment pending for this session (another
 * session's is never confirmed); CF_ERR_AUTH: wrong code.  Nothing changes
 * on error.
 */
enum cf_err mfa_totp_confirm(struct records *r, const struct account *a,
                             const uint8_t session[STORE_TOKEN_HASH_BYTES],
                             const char *code, int64_t now) WARN_UNUSED;
/* Checks a code against the active TOTP: each time step is accepted once
 * only.  CF_ERR_INPUT malformed, CF_ERR_NOTFOUND none enrolled,
 * CF_ERR_AUTH wrong or replayed. */
enum cf_err mfa_totp_verify(struct records *r, const struct account *a, const char *code,
                            int64_t now) WARN_UNUSED;

/*
 * An operator's reset for a person who lost every factor (coffre account
 * mfa-reset): every factor, pending enrollment and recovery code of the
 * account deleted and its sessions revoked, in one transaction.  The role's
 * policy then asks for a new enrollment at the next sign-in.
 */
enum cf_err mfa_reset(struct records *r, const struct account *a,
                      struct cf_errmsg *em) WARN_UNUSED;

/* ---- recovery codes --------------------------------------------------- */

#define MFA_RECOVERY_COUNT 10
/* 12 symbols of the activation-code alphabet = 60 bits, XXXX-XXXX-XXXX */
#define MFA_RECOVERY_SYMBOLS 12
#define MFA_RECOVERY_TEXT    14

/* A new set of codes for the account (replacing any), shown once by the
 * caller; only keyed hashes are kept. */
enum cf_err mfa_recovery_new(struct records *r, const struct account *a, int64_t now,
                             char codes[MFA_RECOVERY_COUNT][MFA_RECOVERY_TEXT + 1]) WARN_UNUSED;
/* Spends one: CF_ERR_INPUT malformed, CF_ERR_AUTH unknown or used. */
enum cf_err mfa_recovery_use(struct records *r, const struct account *a, const char *code,
                             int64_t now) WARN_UNUSED;
/* When codes were spent (fn per time, oldest first). */
enum cf_err mfa_recovery_used(struct records *r, const struct account *a,
                              store_recovery_fn fn, void *arg) WARN_UNUSED;

/* ---- WebAuthn --------------------------------------------------------- */

/* Bounds, checked before any parsing. */
#define MFA_CHALLENGE_BYTES      32
#define MFA_CHALLENGE_TTL_S      300          /* a ceremony takes seconds */
#define MFA_CLIENTDATA_MAX       2048         /* browsers send ~200-400 bytes */
#define MFA_ATTESTATION_MAX      8192         /* packed + a small x5c chain */
#define MFA_AUTHDATA_MAX         1024         /* 37 bytes + credential + extensions */
#define MFA_SIGNATURE_MAX        256          /* ECDSA DER <= 72, Ed25519 64 */
#define MFA_CRED_ID_MAX          255          /* CTAP2: credential ids are <= 255 bytes in practice */
#define MFA_KEY_NAME_MAX         64
#define MFA_KEYS_MAX             10           /* keys per account */
#define MFA_FACTORS_MAX          (MFA_KEYS_MAX + 4)
#define MFA_ORIGINS_MAX          8
#define MFA_RP_ID_MAX            253          /* a DNS name */

struct mfa_webauthn_opts {
    const char *rp_id;                        /* "localhost" */
    const char *origins[MFA_ORIGINS_MAX];     /* allowed exactly */
    size_t norigins;
};

/* A verified credential, as kept (sealed) per key. */
struct mfa_cred {
    int alg;                                  /* COSE: -7 ES256, -8 EdDSA */
    uint8_t pk[64];                           /* ES256 x||y, EdDSA 32 bytes */
    size_t pklen;
    uint8_t id[MFA_CRED_ID_MAX];
    size_t idlen;
    uint32_t counter;
    int uv;                                   /* user verified at registration */
};

/*
 * Pure checks of a registration (navigator.credentials.create) against the
 * challenge: clientDataJSON type "webauthn.create", challenge and origin;
 * attestationObject fmt "none" or "packed" (self or x5c), rpIdHash,
 * user-present, attested credential ES256 or EdDSA.  em says what failed.
 */
enum cf_err mfa_webauthn_check_registration(const struct mfa_webauthn_opts *o,
                                            const uint8_t *challenge, size_t chlen,
                                            const uint8_t *cdj, size_t cdjlen,
                                            const uint8_t *att, size_t attlen,
                                            struct mfa_cred *out,
                                            struct cf_errmsg *em) WARN_UNUSED;
/*
 * Pure checks of an assertion (navigator.credentials.get) for a known
 * credential: type "webauthn.get", challenge, origin, rpIdHash, UP set,
 * signature over authenticatorData || SHA-256(clientDataJSON), and the
 * signature counter increasing when either is non-zero.  *counter and *uv
 * get what the authenticator said.
 */
enum cf_err mfa_webauthn_check_assertion(const struct mfa_webauthn_opts *o,
                                         const uint8_t *challenge, size_t chlen,
                                         const struct mfa_cred *cred,
                                         const uint8_t *cdj, size_t cdjlen,
                                         const uint8_t *ad, size_t adlen,
                                         const uint8_t *sig, size_t siglen,
                                         uint32_t *counter, int *uv,
                                         struct cf_errmsg *em) WARN_UNUSED;

/* purpose: "register" or "assert".  A new random challenge for this
 * session, replacing the previous one of that purpose. */
enum cf_err mfa_webauthn_challenge(struct records *r,
                                   const uint8_t session[STORE_TOKEN_HASH_BYTES],
                                   const char *purpose, int64_t now,
                                   uint8_t challenge[MFA_CHALLENGE_BYTES]) WARN_UNUSED;

/* Raw inputs of register/finish and assert/finish (base64url decoded by
 * the caller, each within its bound). */
struct mfa_webauthn_input {
    const char *name;                         /* register: the key's name */
    const uint8_t *id; size_t idlen;          /* credential id */
    const uint8_t *cdj; size_t cdjlen;        /* clientDataJSON */
    const uint8_t *att; size_t attlen;        /* register: attestationObject */
    const uint8_t *ad; size_t adlen;          /* assert: authenticatorData */
    const uint8_t *sig; size_t siglen;        /* assert: signature */
};

/* Takes the session's "register" challenge (single use, expiring),
 * verifies and stores the key.  key_id gets its id (hex). */
enum cf_err mfa_webauthn_register(struct records *r, const struct mfa_webauthn_opts *o,
                                  const struct account *a,
                                  const uint8_t session[STORE_TOKEN_HASH_BYTES],
                                  const struct mfa_webauthn_input *in, int64_t now,
                                  char key_id[RECORD_ID_HEX + 1],
                                  struct cf_errmsg *em) WARN_UNUSED;
/* Takes the session's "assert" challenge, verifies against the account's
 * key with this credential id, advances its counter.  *uv: user verified. */
enum cf_err mfa_webauthn_assert(struct records *r, const struct mfa_webauthn_opts *o,
                                const struct account *a,
                                const uint8_t session[STORE_TOKEN_HASH_BYTES],
                                const struct mfa_webauthn_input *in, int64_t now, int *uv,
                                struct cf_errmsg *em) WARN_UNUSED;

struct mfa_key_info {
    char id[RECORD_ID_HEX + 1];
    char name[MFA_KEY_NAME_MAX + 1];
    uint8_t cred_id[MFA_CRED_ID_MAX];
    size_t cred_idlen;
    int64_t created, last_used;
};
typedef int (*mfa_key_fn)(void *arg, const struct mfa_key_info *k);
/* The account's security keys, oldest first. */
enum cf_err mfa_keys(struct records *r, const struct account *a, mfa_key_fn fn,
                     void *arg) WARN_UNUSED;
/* Removes one (CF_ERR_NOTFOUND: not this account's). */
enum cf_err mfa_key_remove(struct records *r, const struct account *a,
                           const char *key_id) WARN_UNUSED;

#endif
