/*
 * account.h - accounts: provisioning, the lifecycle of DESIGN.md section 6,
 * activation codes, the password policy, sealed password hashes, sign-in
 * throttling and the incident commands.
 *
 * States:  provisioned -> active -> locked -> disabled, and frozen for a
 * provisioned account blocked by an incident.  A provisioned account can do
 * nothing but activate.  Password hashing itself runs on the pwhash pool;
 * this module stores, seals and checks.  It never writes the audit trail
 * (callers do) and never puts a login, code or password in an error.
 */
#ifndef COFFRE_ACCOUNT_H
#define COFFRE_ACCOUNT_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "pwhash.h"
#include "records.h"
#include "store.h"

enum account_role {
    ROLE_STUDENT, ROLE_GUARDIAN, ROLE_TEACHER, ROLE_STAFF,
    ROLE_ACADEMIE_ADMIN, ROLE_DPO, ROLE_SERVICE, ROLE_COUNT
};

/* Logins: lower-case ASCII letters, digits, '.', '-', '_'. */
#define ACCOUNT_LOGIN_MIN 3
#define ACCOUNT_LOGIN_MAX 64
/* Activation codes: 12 symbols of a 32-symbol alphabet without 0/O/1/I
 * = 60 bits (CNIL: >= 50 bits when attempts are throttled), shown as
 * XXXX-XXXX-XXXX for reading aloud. */
#define ACTIVATION_CODE_SYMBOLS 12
#define ACTIVATION_CODE_TEXT    14
#define ACTIVATION_DEFAULT_DAYS 30
#define ACTIVATION_MAX_DAYS     366
/* CNIL 2022-100: 50 bits of entropy when guessing is throttled. */
#define PASSWORD_MIN_BITS_DEFAULT 50

#define ACCOUNT_STATE_PROVISIONED "provisioned"
#define ACCOUNT_STATE_ACTIVE      "active"
#define ACCOUNT_STATE_LOCKED      "locked"
#define ACCOUNT_STATE_DISABLED    "disabled"
#define ACCOUNT_STATE_FROZEN      "frozen"

struct account {
    struct store_account row;               /* as stored */
    char id[RECORD_ID_HEX + 1];
    char login[ACCOUNT_LOGIN_MAX + 1];
    enum account_role role;
};

const char *account_role_name(enum account_role r);
int account_role_parse(const char *s, enum account_role *out);   /* 0 ok */
/* Roles that must have a second factor (issue 4 enforces it). */
int account_role_is_staff(enum account_role r);

struct account_provision {
    enum account_role role;
    const char *person_id;        /* student, guardian or staff record (hex) */
    const char *academie;         /* roles without a person */
    const char *establishment_id; /* optional for roles without a person */
    const char *login;            /* NULL: derived from the person's names */
    unsigned code_days;           /* 0: ACTIVATION_DEFAULT_DAYS */
};

/* Creates a provisioned account and its activation code (shown once: the
 * caller prints or sends it; only a keyed hash is kept). */
enum cf_err account_provision(struct records *r, const struct account_provision *in,
                              struct account *out,
                              char code[ACTIVATION_CODE_TEXT + 1],
                              struct cf_errmsg *em) WARN_UNUSED;

/*
 * Provisions an account for every person of the role in the establishment
 * who has none yet (students of the establishment, their guardians, its
 * staff for teacher/staff), in one transaction, and writes "login<TAB>code
 * <TAB>expiry" lines to codes_path (mode 0600, never overwritten), which
 * appears only if the transaction commits.
 */
enum cf_err account_provision_all(struct records *r, enum account_role role,
                                  const char *establishment_id, unsigned code_days,
                                  const char *codes_path, uint64_t *n,
                                  struct cf_errmsg *em) WARN_UNUSED;

/* By login (any case, spaces trimmed) or by id.  CF_ERR_NOTFOUND. */
enum cf_err account_find(struct records *r, const char *login,
                         struct account *out) WARN_UNUSED;
enum cf_err account_get(struct records *r, const char *id,
                        struct account *out) WARN_UNUSED;

/* CF_OK only for a provisioned account, an unexpired code, the right code
 * (constant-time); CF_ERR_AUTH for every other case alike. */
enum cf_err account_check_code(struct records *r, const struct account *a,
                               const char *code, int64_t now) WARN_UNUSED;

/*
 * Password policy: 8..128 bytes of text, and at least min_bits of
 * estimated entropy (zxcvbn) with the account's own login, names,
 * identifiers and e-mail as user words.  On refusal `why` says, in plain
 * words, what to change (never repeating the password).
 */
enum cf_err account_password_policy(struct records *r, const struct account *a,
                                    const char *password, unsigned min_bits,
                                    double *bits, char *why, size_t cap)
    WARN_UNUSED;

/*
 * What a sign-in verifies against: the account's hash, or `dummy` (the
 * pool's) when the login is unknown or has no password yet, so that every
 * sign-in costs exactly one Argon2id verification and timing tells nothing.
 * Returns 1 when the login names an account (out filled), 0 otherwise.
 */
int account_signin_target(struct records *r, const char *login, const char *dummy,
                          struct account *out, char hash[PWHASH_STR_BYTES]);

/* Opens the sealed password hash; CF_ERR_NOTFOUND before activation. */
enum cf_err account_password_hash(struct records *r, const struct account *a,
                                  char out[PWHASH_STR_BYTES]) WARN_UNUSED;

/* Activation: state active, the hash sealed, the code gone. */
enum cf_err account_activate(struct records *r, struct account *a,
                             const char *hash, struct cf_errmsg *em) WARN_UNUSED;
/* A new hash: a password change (clear_reset != 0 clears reset_required)
 * or a rehash at sign-in with new parameters (clear_reset == 0). */
enum cf_err account_set_password(struct records *r, struct account *a,
                                 const char *hash, int clear_reset,
                                 struct cf_errmsg *em) WARN_UNUSED;

/* locked -> active, the lock's rule forgotten.  CF_ERR_DENIED when the
 * account is not locked. */
enum cf_err account_unlock(struct records *r, struct account *a,
                           struct cf_errmsg *em) WARN_UNUSED;

/* An unlock reason: a short slug (a-z, 0-9, '-', 3 to 48 bytes), so that
 * the audit trail can keep it and never a personal datum. */
int account_reason_valid(const char *reason);

/* ---- throttling --------------------------------------------------------
 * Failures are counted per opaque key (a keyed hash of what is throttled),
 * for known and unknown logins alike.  The wait after the n-th failure past
 * `free` is base * 2^(n-free-1), capped; it is never permanent, and the
 * count starts over after `cap` of quiet.
 */
struct throttle_policy {
    uint32_t free;               /* failures without any wait */
    int64_t base_ms;
    int64_t cap_ms;
};

#define THROTTLE_KEY_BYTES 16
void account_throttle_key(struct records *r, const char *kind, const char *value,
                          uint8_t key[THROTTLE_KEY_BYTES]);
/* Milliseconds to wait before the next attempt (0: go ahead). */
int64_t account_throttle_wait(struct records *r, const uint8_t key[THROTTLE_KEY_BYTES],
                              int64_t now_ms);
/* Counts a failure; returns the wait it imposes. */
int64_t account_throttle_fail(struct records *r, const uint8_t key[THROTTLE_KEY_BYTES],
                              const struct throttle_policy *p, int64_t now_ms);
void account_throttle_clear(struct records *r, const uint8_t key[THROTTLE_KEY_BYTES]);

/* ---- incident commands ------------------------------------------------ */

enum incident {
    INCIDENT_FREEZE_UNACTIVATED,  /* provisioned -> frozen */
    INCIDENT_RESET_CODES,         /* new codes for every provisioned account */
    INCIDENT_REVOKE_SESSIONS,     /* every live session */
    INCIDENT_FORCE_PASSWORD_RESET /* active accounts must set a new password */
};

struct incident_scope {
    const char *academie;         /* NULL: all */
    const char *establishment_id; /* NULL: all */
};

const char *account_incident_name(enum incident i);
/* Counts the accounts (or sessions) the command would touch. */
enum cf_err account_incident_count(struct records *r, enum incident i,
                                   const struct incident_scope *sc, uint64_t *n)
    WARN_UNUSED;
/* Runs it in one transaction.  RESET_CODES writes "login<TAB>code<TAB>
 * expiry" lines to codes_path (mode 0600, never overwritten), which
 * appears only if the transaction commits; or, with codes_path NULL, to
 * *codes_text (malloc'd, NUL-terminated; the caller wipes and frees it). */
enum cf_err account_incident_run(struct records *r, enum incident i,
                                 const struct incident_scope *sc,
                                 const char *codes_path, char **codes_text,
                                 uint64_t *n, struct cf_errmsg *em) WARN_UNUSED;

#endif
