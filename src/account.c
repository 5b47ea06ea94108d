/*
 * account.c - accounts (see account.h).
 *
 * An account row keeps in clear only its id, role, state, compartment,
 * establishment and person ids, key version, timestamps and flags.  The
 * login and the password hash are sealed fields ("account" kind, fields
 * "login" and "password"); the login is found through a blind index; the
 * activation code is kept as a keyed hash (32 bytes) only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <zxcvbn.h>

#include "account.h"
#include "ids.h"
#include "keyring.h"
#include "log.h"
#include "seal.h"
#include "banned.h"

static const char *const role_names[ROLE_COUNT] = {
    [ROLE_STUDENT] = "student", [ROLE_GUARDIAN] = "guardian",
    [ROLE_TEACHER] = "teacher", [ROLE_STAFF] = "staff",
    [ROLE_ACADEMIE_ADMIN] = "academie_admin", [ROLE_DPO] = "dpo",
    [ROLE_SERVICE] = "service",
};

/* The sealed fields of an account row. */
enum { AF_LOGIN, AF_PASSWORD, AF_COUNT };
static const char *const account_fields[AF_COUNT] = { "login", "password" };

/* Symbols of activation codes: no 0/O, no 1/I, so a code read aloud or
 * copied from paper is not ambiguous. */
static const char code_alphabet[] = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

const char *
account_role_name(enum account_role r)
{
    return r < ROLE_COUNT ? role_names[r] : "?";
}

int
account_role_parse(const char *s, enum account_role *out)
{
    int i;

    for (i = 0; i < ROLE_COUNT; i++)
        if (strcmp(s, role_names[i]) == 0) {
            *out = (enum account_role)i;
            return 0;
        }
    return -1;
}

int
account_role_is_staff(enum account_role r)
{
    return r == ROLE_TEACHER || r == ROLE_STAFF || r == ROLE_ACADEMIE_ADMIN ||
           r == ROLE_DPO || r == ROLE_SERVICE;
}

/* ---- login names ------------------------------------------------------ */

static int
login_valid(const char *s, size_t n)
{
    size_t i;

    if (n < ACCOUNT_LOGIN_MIN || n > ACCOUNT_LOGIN_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* Normalises a login as typed (case, spaces) into out; -1 if invalid. */
static int
login_normalize(const char *in, char out[ACCOUNT_LOGIN_MAX + 1], size_t *len)
{
    char tmp[RECORD_FIELD_PT_MAX + 1];

    if (seal_normalize("login", in, strlen(in), SEAL_NORM_FOLD, ACCOUNT_LOGIN_MAX,
                       tmp, sizeof tmp, len, NULL) != CF_OK ||
        !login_valid(tmp, *len))
        return -1;
    memcpy(out, tmp, *len + 1);
    return 0;
}

/* One login digest per compartment of the keyring, for lookups. */
static size_t
login_digests(struct records *r, const char *norm, size_t len,
              uint8_t d[KEYRING_MAX_COMPARTMENTS][STORE_IDX_BYTES])
{
    const struct keyring *kr = records_keyring(r);
    size_t i, n = 0;

    for (i = 0; i < keyring_count(kr); i++)
        if (seal_blind_index(kr, keyring_code_at(kr, i), "login", norm, len,
                             d[n], STORE_IDX_BYTES) == CF_OK)
            n++;
    return n;
}

/* ---- decoding rows ---------------------------------------------------- */

static struct records_blob
blob_of(const struct store_account *row)
{
    struct records_blob b = { "account", row->compartment, row->id, row->kv,
                              account_fields, AF_COUNT };
    return b;
}

static enum cf_err
decode(struct records *r, const struct store_account *row, struct account *out)
{
    char (*v)[RECORD_FIELD_PT_MAX + 1];
    struct records_blob b = blob_of(row);
    uint32_t present;
    enum cf_err rc;

    v = calloc(AF_COUNT, sizeof *v);
    if (v == NULL)
        return CF_ERR_NOMEM;
    rc = records_blob_open(r, &b, row->fields, row->fields_len, 1u << AF_LOGIN, v, &present);
    if (rc == CF_OK && !(present & (1u << AF_LOGIN)))
        rc = CF_ERR_STORE;
    if (rc == CF_OK && account_role_parse(row->role, &out->role) != 0)
        rc = CF_ERR_STORE;
    if (rc == CF_OK) {
        if (&out->row != row)
            out->row = *row;
        records_id_format(row->id, out->id);
        snprintf(out->login, sizeof out->login, "%s", v[AF_LOGIN]);
    }
    free(v);
    return rc;
}

enum cf_err
account_find(struct records *r, const char *login, struct account *out)
{
    uint8_t d[KEYRING_MAX_COMPARTMENTS][STORE_IDX_BYTES];
    char norm[ACCOUNT_LOGIN_MAX + 1];
    size_t len, n;
    enum cf_err rc;

    if (login_normalize(login, norm, &len) != 0)
        return CF_ERR_NOTFOUND;
    n = login_digests(r, norm, len, d);
    rc = store_account_find(records_store(r), &d[0][0], STORE_IDX_BYTES, n, &out->row);
    return rc == CF_OK ? decode(r, &out->row, out) : rc;
}

enum cf_err
account_get(struct records *r, const char *id, struct account *out)
{
    uint8_t bin[STORE_ID_BYTES];
    enum cf_err rc;

    if (records_id_parse(id, bin) != CF_OK)
        return CF_ERR_INPUT;
    rc = store_account_get(records_store(r), bin, &out->row);
    return rc == CF_OK ? decode(r, &out->row, out) : rc;
}

/* Re-seals login (+ password when given) into the row under the current
 * data key. */
static enum cf_err
seal_account(struct records *r, struct account *a, const char *hash)
{
    char (*v)[RECORD_FIELD_PT_MAX + 1];
    size_t len[AF_COUNT] = { 0, 0 };
    uint32_t present = 1u << AF_LOGIN;
    struct records_blob b;
    enum cf_err rc;

    v = calloc(AF_COUNT, sizeof *v);
    if (v == NULL)
        return CF_ERR_NOMEM;
    a->row.kv = keyring_current_version(records_keyring(r), a->row.compartment);
    b = blob_of(&a->row);
    len[AF_LOGIN] = strlen(a->login);
    memcpy(v[AF_LOGIN], a->login, len[AF_LOGIN] + 1);
    if (hash != NULL) {
        len[AF_PASSWORD] = strlen(hash);
        if (len[AF_PASSWORD] >= RECORD_FIELD_PT_MAX) {
            free(v);
            return CF_ERR_INPUT;
        }
        memcpy(v[AF_PASSWORD], hash, len[AF_PASSWORD] + 1);
        present |= 1u << AF_PASSWORD;
    }
    rc = records_blob_seal(r, &b, v, len, present, a->row.fields,
                           sizeof a->row.fields, &a->row.fields_len);
    sodium_memzero(v, AF_COUNT * sizeof *v);
    free(v);
    return rc;
}

/* ---- activation codes ------------------------------------------------- */

static void
code_new(char text[ACTIVATION_CODE_TEXT + 1], char raw[ACTIVATION_CODE_SYMBOLS + 1])
{
    size_t i, o = 0;

    for (i = 0; i < ACTIVATION_CODE_SYMBOLS; i++) {
        char c = code_alphabet[randombytes_uniform(sizeof code_alphabet - 1)];

        raw[i] = c;
        if (i > 0 && i % 4 == 0)
            text[o++] = '-';
        text[o++] = c;
    }
    raw[ACTIVATION_CODE_SYMBOLS] = '\0';
    text[o] = '\0';
}

/* A code as typed -> its 12 symbols; -1 if it cannot be one. */
static int
code_normalize(const char *in, char raw[ACTIVATION_CODE_SYMBOLS + 1])
{
    size_t o = 0;

    for (; *in != '\0'; in++) {
        char c = *in;

        if (c == '-' || c == ' ')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 32);
        if (o == ACTIVATION_CODE_SYMBOLS || strchr(code_alphabet, c) == NULL || c == '\0')
            return -1;
        raw[o++] = c;
    }
    raw[o] = '\0';
    return o == ACTIVATION_CODE_SYMBOLS ? 0 : -1;
}

/* Keyed hash of a code, bound to the account: a code of another account
 * never matches, even if both codes were equal. */
static enum cf_err
code_hash(struct records *r, const struct store_account *row, const char *raw,
          uint8_t out[STORE_CODE_HASH_BYTES])
{
    char msg[RECORD_ID_HEX + ACTIVATION_CODE_SYMBOLS + 2];
    char id[RECORD_ID_HEX + 1];
    enum cf_err rc;

    records_id_format(row->id, id);
    snprintf(msg, sizeof msg, "%s:%s", id, raw);
    rc = seal_blind_index(records_keyring(r), row->compartment, "activation_code",
                          msg, strlen(msg), out, STORE_CODE_HASH_BYTES);
    sodium_memzero(msg, sizeof msg);
    return rc;
}

static enum cf_err
set_new_code(struct records *r, struct store_account *row, unsigned days,
             char text[ACTIVATION_CODE_TEXT + 1])
{
    char raw[ACTIVATION_CODE_SYMBOLS + 1];
    enum cf_err rc;

    code_new(text, raw);
    rc = code_hash(r, row, raw, row->code_hash);
    sodium_memzero(raw, sizeof raw);
    row->has_code = rc == CF_OK;
    row->code_expires = (int64_t)time(NULL) + (int64_t)days * 86400;
    return rc;
}

enum cf_err
account_check_code(struct records *r, const struct account *a, const char *code,
                   int64_t now)
{
    char raw[ACTIVATION_CODE_SYMBOLS + 1];
    uint8_t h[STORE_CODE_HASH_BYTES];
    int ok;

    if (code_normalize(code, raw) != 0)
        return CF_ERR_AUTH;
    if (code_hash(r, &a->row, raw, h) != CF_OK) {
        sodium_memzero(raw, sizeof raw);
        return CF_ERR_AUTH;
    }
    sodium_memzero(raw, sizeof raw);
    /* Compare first, decide after: the same work on every path. */
    ok = sodium_memcmp(h, a->row.code_hash, sizeof h) == 0;
    ok = ok && a->row.has_code && now < a->row.code_expires &&
         strcmp(a->row.state, ACCOUNT_STATE_PROVISIONED) == 0;
    return ok ? CF_OK : CF_ERR_AUTH;
}

/* ---- provisioning ----------------------------------------------------- */

static enum record_kind
person_kind(enum account_role role)
{
    switch (role) {
    case ROLE_STUDENT:  return REC_STUDENT;
    case ROLE_GUARDIAN: return REC_GUARDIAN;
    case ROLE_TEACHER:
    case ROLE_STAFF:    return REC_STAFF;
    default:            return REC_KIND_COUNT;
    }
}

/* "given.family" from the person's names, in ASCII. */
static void
derive_login(const struct record *p, char out[ACCOUNT_LOGIN_MAX + 1])
{
    char given[ACCOUNT_LOGIN_MAX], family[ACCOUNT_LOGIN_MAX];
    int gi = records_field_index(p->kind, "given_names");
    int fi = records_field_index(p->kind, "family_name");
    char *sp;

    ids_ascii_slug(p->value[gi], given, sizeof given);
    sp = strchr(p->value[gi], ' ');
    if (sp != NULL) {
        /* first given name only */
        char first[ACCOUNT_LOGIN_MAX];
        size_t n = (size_t)(sp - p->value[gi]);

        snprintf(first, sizeof first, "%.*s", (int)n, p->value[gi]);
        ids_ascii_slug(first, given, sizeof given);
    }
    ids_ascii_slug(p->value[fi], family, sizeof family);
    snprintf(out, ACCOUNT_LOGIN_MAX + 1, "%.24s.%.24s", given, family);
}

enum cf_err
account_provision(struct records *r, const struct account_provision *in,
                  struct account *out, char code[ACTIVATION_CODE_TEXT + 1],
                  struct cf_errmsg *em)
{
    enum record_kind pk = person_kind(in->role);
    struct record *person = NULL;
    struct store_account *row = &out->row;
    char base[ACCOUNT_LOGIN_MAX + 1], norm[ACCOUNT_LOGIN_MAX + 1];
    uint8_t d[KEYRING_MAX_COMPARTMENTS][STORE_IDX_BYTES];
    unsigned days = in->code_days ? in->code_days : ACTIVATION_DEFAULT_DAYS;
    size_t len, n;
    enum cf_err rc;
    int attempt;

    if (in->role >= ROLE_COUNT)
        return cf_fail(em, CF_ERR_INPUT, "role: unknown");
    if (days > ACTIVATION_MAX_DAYS)
        return cf_fail(em, CF_ERR_INPUT, "code expiry: at most %d days", ACTIVATION_MAX_DAYS);
    memset(out, 0, sizeof *out);
    snprintf(row->role, sizeof row->role, "%s", role_names[in->role]);
    snprintf(row->state, sizeof row->state, "%s", ACCOUNT_STATE_PROVISIONED);
    out->role = in->role;
    if (pk != REC_KIND_COUNT) {
        if (in->person_id == NULL)
            return cf_fail(em, CF_ERR_INPUT, "a %s account needs --person (a %s id)",
                           role_names[in->role], records_kind_name(pk));
        person = malloc(sizeof *person);
        if (person == NULL)
            return cf_fail(em, CF_ERR_NOMEM, "out of memory");
        rc = records_get(r, pk, in->person_id,
                         1u << records_field_index(pk, "given_names") |
                         1u << records_field_index(pk, "family_name"), person, em);
        if (rc != CF_OK) {
            free(person);
            return rc;
        }
        snprintf(row->compartment, sizeof row->compartment, "%s", person->compartment);
        if (records_id_parse(person->id, row->person) == CF_OK)
            row->has_person = 1;
        if (person->parent[0][0] != '\0' && pk != REC_GUARDIAN &&
            records_id_parse(person->parent[0], row->establishment) == CF_OK)
            row->has_establishment = 1;
        derive_login(person, base);
        sodium_memzero(person, sizeof *person);
        free(person);
    } else {
        if (in->academie == NULL)
            return cf_fail(em, CF_ERR_INPUT, "a %s account needs --academie", role_names[in->role]);
        if (ids_parse_academie(in->academie, strlen(in->academie), row->compartment, em) != CF_OK)
            return CF_ERR_INPUT;
        if (in->login == NULL)
            return cf_fail(em, CF_ERR_INPUT, "a %s account needs --login", role_names[in->role]);
        if (in->establishment_id != NULL) {
            if (records_id_parse(in->establishment_id, row->establishment) != CF_OK)
                return cf_fail(em, CF_ERR_INPUT, "establishment id must be %d hex digits", RECORD_ID_HEX);
            row->has_establishment = 1;
        }
        base[0] = '\0';
    }
    if (!keyring_has(records_keyring(r), row->compartment))
        return cf_fail(em, CF_ERR_CRYPTO, "this keyring holds no key for compartment %s",
                       row->compartment);
    if (in->login != NULL) {
        if (login_normalize(in->login, base, &len) != 0)
            return cf_fail(em, CF_ERR_INPUT,
                           "login: %d to %d characters among a-z 0-9 . - _",
                           ACCOUNT_LOGIN_MIN, ACCOUNT_LOGIN_MAX);
    } else if (!login_valid(base, strlen(base)))
        snprintf(base, sizeof base, "user");
    /* A derived login takes the first free of base, base2, base3... */
    for (attempt = 1; attempt <= 1000; attempt++) {
        struct store_account probe;

        if (attempt == 1)
            snprintf(norm, sizeof norm, "%s", base);
        else if (in->login != NULL)
            return cf_fail(em, CF_ERR_EXISTS, "login: already taken");
        else
            snprintf(norm, sizeof norm, "%.56s%d", base, attempt);
        len = strlen(norm);
        n = login_digests(r, norm, len, d);
        rc = store_account_find(records_store(r), &d[0][0], STORE_IDX_BYTES, n, &probe);
        if (rc == CF_ERR_NOTFOUND)
            break;
        if (rc != CF_OK)
            return cf_fail(em, rc, "accounts: cannot read the store");
    }
    if (attempt > 1000)
        return cf_fail(em, CF_ERR_EXISTS, "login: no free variant");
    snprintf(out->login, sizeof out->login, "%s", norm);
    if (seal_blind_index(records_keyring(r), row->compartment, "login", norm, len,
                         row->login_idx, STORE_IDX_BYTES) != CF_OK)
        return cf_fail(em, CF_ERR_CRYPTO, "compartment %s: no index key", row->compartment);
    randombytes_buf(row->id, sizeof row->id);
    records_id_format(row->id, out->id);
    row->created = row->updated = (int64_t)time(NULL);
    if ((rc = set_new_code(r, row, days, code)) != CF_OK ||
        (rc = seal_account(r, out, NULL)) != CF_OK)
        return cf_fail(em, rc, "account: cannot seal: %s", cf_err_str(rc));
    return store_account_insert(records_store(r), row, em);
}

/* ---- passwords -------------------------------------------------------- */

/* User words for zxcvbn: the login and its parts, the person's names,
 * e-mail local part, identifiers and birth date pieces. */
#define USER_WORDS_MAX 24

static size_t
add_word(char words[USER_WORDS_MAX][RECORD_FIELD_PT_MAX + 1], size_t n, const char *w,
         size_t len)
{
    if (n >= USER_WORDS_MAX || len < 3 || len > RECORD_FIELD_PT_MAX)
        return n;
    memcpy(words[n], w, len);
    words[n][len] = '\0';
    return n + 1;
}

/* Splits s on separators and adds each part and the whole. */
static size_t
add_words(char words[USER_WORDS_MAX][RECORD_FIELD_PT_MAX + 1], size_t n, const char *s)
{
    const char *p = s, *start = s;

    n = add_word(words, n, s, strlen(s));
    for (;; p++) {
        if (*p == '\0' || strchr(" .-_@/'", *p) != NULL) {
            n = add_word(words, n, start, (size_t)(p - start));
            if (*p == '\0')
                break;
            start = p + 1;
        }
    }
    return n;
}

enum cf_err
account_password_policy(struct records *r, const struct account *a,
                        const char *password, unsigned min_bits, double *bits,
                        char *why, size_t cap)
{
    char (*words)[RECORD_FIELD_PT_MAX + 1];
    const char *dict[USER_WORDS_MAX + 1];
    struct record *person = NULL;
    enum record_kind pk = person_kind(a->role);
    size_t n = 0, i, len = strlen(password);
    char norm[PASSWORD_MAX_BYTES * 4 + 1];
    size_t nlen;
    double e;

    if (len < PASSWORD_MIN_BYTES || len > PASSWORD_MAX_BYTES) {
        snprintf(why, cap, "a password is %d to %d characters long", PASSWORD_MIN_BYTES,
                 PASSWORD_MAX_BYTES);
        return CF_ERR_INPUT;
    }
    if (seal_normalize("password", password, len, SEAL_NORM_TEXT, PASSWORD_MAX_BYTES * 4,
                       norm, sizeof norm, &nlen, NULL) != CF_OK) {
        snprintf(why, cap, "a password is text without control characters");
        return CF_ERR_INPUT;
    }
    sodium_memzero(norm, sizeof norm);
    words = calloc(USER_WORDS_MAX, sizeof *words);
    if (words == NULL)
        return CF_ERR_NOMEM;
    n = add_words(words, n, a->login);
    if (pk != REC_KIND_COUNT && a->row.has_person) {
        char pid[RECORD_ID_HEX + 1];

        person = malloc(sizeof *person);
        records_id_format(a->row.person, pid);
        if (person != NULL &&
            records_get(r, pk, pid, RECORD_ALL_FIELDS, person, NULL) == CF_OK) {
            for (i = 0; i < records_field_count(pk); i++)
                if ((person->present & (1u << i)) &&
                    strcmp(records_field_name(pk, i), "address") != 0)
                    n = add_words(words, n, person->value[i]);
        }
    }
    for (i = 0; i < n; i++)
        dict[i] = words[i];
    dict[n] = NULL;
    e = ZxcvbnMatch(password, dict, NULL);
    if (person != NULL) {
        sodium_memzero(person, sizeof *person);
        free(person);
    }
    sodium_memzero(words, USER_WORDS_MAX * sizeof *words);
    free(words);
    *bits = e;
    if (e < (double)min_bits) {
        snprintf(why, cap,
                 "this password is too easy to guess (about %.0f bits of %u needed): "
                 "make it longer, for example several unrelated words, and leave out "
                 "your name, login and dates", e, min_bits);
        return CF_ERR_INPUT;
    }
    return CF_OK;
}

enum cf_err
account_password_hash(struct records *r, const struct account *a,
                      char out[PWHASH_STR_BYTES])
{
    char (*v)[RECORD_FIELD_PT_MAX + 1];
    struct records_blob b = blob_of(&a->row);
    uint32_t present = 0;
    enum cf_err rc;

    v = calloc(AF_COUNT, sizeof *v);
    if (v == NULL)
        return CF_ERR_NOMEM;
    rc = records_blob_open(r, &b, a->row.fields, a->row.fields_len, 1u << AF_PASSWORD,
                           v, &present);
    if (rc == CF_OK && !(present & (1u << AF_PASSWORD)))
        rc = CF_ERR_NOTFOUND;
    if (rc == CF_OK && strlen(v[AF_PASSWORD]) >= PWHASH_STR_BYTES)
        rc = CF_ERR_STORE;
    if (rc == CF_OK)
        memcpy(out, v[AF_PASSWORD], strlen(v[AF_PASSWORD]) + 1);
    sodium_memzero(v, AF_COUNT * sizeof *v);
    free(v);
    return rc;
}

int
account_signin_target(struct records *r, const char *login, const char *dummy,
                      struct account *out, char hash[PWHASH_STR_BYTES])
{
    int found = account_find(r, login, out) == CF_OK;

    if (!found || account_password_hash(r, out, hash) != CF_OK)
        memcpy(hash, dummy, PWHASH_STR_BYTES);
    return found;
}

static enum cf_err
save_with_password(struct records *r, struct account *a, const char *hash,
                   struct cf_errmsg *em)
{
    enum cf_err rc;

    a->row.updated = (int64_t)time(NULL);
    if ((rc = seal_account(r, a, hash)) != CF_OK)
        return cf_fail(em, rc, "account: cannot seal: %s", cf_err_str(rc));
    if ((rc = store_account_update(records_store(r), &a->row)) != CF_OK)
        return cf_fail(em, rc, "account: cannot save: %s", cf_err_str(rc));
    return CF_OK;
}

enum cf_err
account_activate(struct records *r, struct account *a, const char *hash,
                 struct cf_errmsg *em)
{
    if (strcmp(a->row.state, ACCOUNT_STATE_PROVISIONED) != 0)
        return cf_fail(em, CF_ERR_DENIED, "account: not awaiting activation");
    snprintf(a->row.state, sizeof a->row.state, "%s", ACCOUNT_STATE_ACTIVE);
    a->row.has_code = 0;
    sodium_memzero(a->row.code_hash, sizeof a->row.code_hash);
    a->row.code_expires = 0;
    return save_with_password(r, a, hash, em);
}

enum cf_err
account_set_password(struct records *r, struct account *a, const char *hash,
                     int clear_reset, struct cf_errmsg *em)
{
    if (clear_reset)
        a->row.reset_required = 0;
    return save_with_password(r, a, hash, em);
}

enum cf_err
account_unlock(struct records *r, struct account *a, struct cf_errmsg *em)
{
    if (strcmp(a->row.state, ACCOUNT_STATE_LOCKED) != 0)
        return cf_fail(em, CF_ERR_DENIED, "account: not locked");
    snprintf(a->row.state, sizeof a->row.state, "%s", ACCOUNT_STATE_ACTIVE);
    a->row.locked_reason[0] = '\0';
    a->row.updated = (int64_t)time(NULL);
    if (store_account_update(records_store(r), &a->row) != CF_OK)
        return cf_fail(em, CF_ERR_STORE, "account: cannot save");
    return CF_OK;
}

int
account_reason_valid(const char *reason)
{
    size_t i, n = strlen(reason);

    if (n < 3 || n > 48)
        return 0;
    for (i = 0; i < n; i++)
        if (!((reason[i] >= 'a' && reason[i] <= 'z') || (reason[i] >= '0' && reason[i] <= '9') ||
              reason[i] == '-'))
            return 0;
    return 1;
}

/* ---- throttling ------------------------------------------------------- */

void
account_throttle_key(struct records *r, const char *kind, const char *value,
                     uint8_t key[THROTTLE_KEY_BYTES])
{
    const struct keyring *kr = records_keyring(r);
    char msg[512];

    /* Keyed with the first compartment's index key: the table says
     * nothing about which logins or addresses were tried. */
    snprintf(msg, sizeof msg, "%s:%s", kind, value);
    if (seal_blind_index(kr, keyring_code_at(kr, 0), "throttle", msg, strlen(msg), key,
                         THROTTLE_KEY_BYTES) != CF_OK)
        memset(key, 0, THROTTLE_KEY_BYTES);
    sodium_memzero(msg, sizeof msg);
}

int64_t
account_throttle_wait(struct records *r, const uint8_t key[THROTTLE_KEY_BYTES],
                      int64_t now_ms)
{
    struct store_throttle t;

    if (store_throttle_get(records_store(r), key, THROTTLE_KEY_BYTES, &t) != CF_OK)
        return 0;
    return t.until_ms > now_ms ? t.until_ms - now_ms : 0;
}

int64_t
account_throttle_fail(struct records *r, const uint8_t key[THROTTLE_KEY_BYTES],
                      const struct throttle_policy *p, int64_t now_ms)
{
    struct store_throttle t;
    int64_t wait = 0;

    if (store_throttle_get(records_store(r), key, THROTTLE_KEY_BYTES, &t) != CF_OK)
        t.failures = 0;
    /* A long quiet spell starts the count over: never a permanent lock. */
    if (t.failures > 0 && now_ms - t.updated_ms > p->cap_ms &&
        now_ms > t.until_ms + p->cap_ms)
        t.failures = 0;
    if (t.failures < UINT32_MAX)
        t.failures++;
    if (t.failures > p->free) {
        uint32_t k = t.failures - p->free - 1;

        wait = k >= 40 ? p->cap_ms : p->base_ms << k;
        if (wait > p->cap_ms || wait <= 0)
            wait = p->cap_ms;
    }
    t.until_ms = now_ms + wait;
    t.updated_ms = now_ms;
    /* A failure that cannot be counted is answered as if throttled to the
     * cap: fail closed, never open. */
    if (store_throttle_put(records_store(r), key, THROTTLE_KEY_BYTES, &t) != CF_OK) {
        log_warnx("throttle: cannot record a failure; answering with the longest wait");
        return p->cap_ms;
    }
    return wait;
}

void
account_throttle_clear(struct records *r, const uint8_t key[THROTTLE_KEY_BYTES])
{
    if (store_throttle_clear(records_store(r), key, THROTTLE_KEY_BYTES) != CF_OK)
        log_warnx("throttle: cannot clear a counter");
}

/* ---- codes files -----------------------------------------------------
 * New activation codes go to a file of the operator's for distribution:
 * created 0600 under a temporary name, renamed into place only once the
 * transaction that made the codes has committed.
 */
struct codes_file {
    char path[4096], tmp[4200];
    FILE *f;
    char *mem;              /* in-memory codes (the admin API), or NULL */
    size_t memlen;
    int in_memory;
};

/* The codes in memory instead of a file: for an API answer. */
static enum cf_err
codes_open_mem(struct codes_file *c, struct cf_errmsg *em)
{
    c->in_memory = 1;
    c->f = open_memstream(&c->mem, &c->memlen);
    return c->f != NULL ? CF_OK : cf_fail(em, CF_ERR_NOMEM, "out of memory");
}

static enum cf_err
codes_open(struct codes_file *c, const char *path, struct cf_errmsg *em)
{
    int fd;

    if (access(path, F_OK) == 0)
        return cf_fail(em, CF_ERR_EXISTS, "'%s' already exists; refusing to overwrite", path);
    snprintf(c->path, sizeof c->path, "%s", path);
    snprintf(c->tmp, sizeof c->tmp, "%s.tmp-%d", path, (int)getpid());
    fd = open(c->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || (c->f = fdopen(fd, "w")) == NULL) {
        if (fd >= 0)
            close(fd);
        return cf_fail(em, CF_ERR_IO, "'%s': cannot create: %s", path, strerror(errno));
    }
    return CF_OK;
}

static enum cf_err
codes_write(struct codes_file *c, const struct account *a, const char *code)
{
    return fprintf(c->f, "%s\t%s\t%lld\n", a->login, code,
                   (long long)a->row.code_expires) < 0 ? CF_ERR_IO : CF_OK;
}

static enum cf_err
codes_sync(struct codes_file *c)
{
    if (c->in_memory)
        return fflush(c->f) == 0 ? CF_OK : CF_ERR_NOMEM;
    return fflush(c->f) == 0 && fsync(fileno(c->f)) == 0 ? CF_OK : CF_ERR_IO;
}

/* Closes; renames into place when committed, removes otherwise. */
static enum cf_err
codes_close(struct codes_file *c, enum cf_err rc, struct cf_errmsg *em)
{
    if (c->f == NULL)
        return rc;
    fclose(c->f);
    c->f = NULL;
    if (c->in_memory) {
        if (rc != CF_OK && c->mem != NULL) {
            sodium_memzero(c->mem, c->memlen);
            free(c->mem);
            c->mem = NULL;
        }
        return rc;
    }
    if (rc == CF_OK && rename(c->tmp, c->path) != 0)
        rc = cf_fail(em, CF_ERR_IO, "'%s': cannot write: %s (the codes were made; reset them again)",
                     c->path, strerror(errno));
    if (rc != CF_OK)
        unlink(c->tmp);
    return rc;
}

/* ---- provisioning in bulk --------------------------------------------- */

struct people {
    char (*ids)[RECORD_ID_HEX + 1];
    size_t n, cap;
};

static int
people_add(struct people *p, const char *id)
{
    size_t i;

    for (i = 0; i < p->n; i++)          /* guardians of siblings: once */
        if (strcmp(p->ids[i], id) == 0)
            return 0;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        void *q = realloc(p->ids, cap * sizeof *p->ids);

        if (q == NULL)
            return 1;
        p->ids = q;
        p->cap = cap;
    }
    memcpy(p->ids[p->n++], id, RECORD_ID_HEX + 1);
    return 0;
}

static int
collect_person(void *arg, const struct record *rec)
{
    return people_add(arg, rec->id);
}

static int
collect_guardian(void *arg, const struct record *link)
{
    return people_add(arg, link->parent[0]);
}

struct student_walk {
    struct records *r;
    struct people *out;
    enum cf_err rc;
};

static int
guardians_of(void *arg, const struct record *student)
{
    struct student_walk *w = arg;

    w->rc = records_children(w->r, REC_GUARDIAN_LINK, 1, student->id, 16, 0,
                             collect_guardian, w->out, NULL);
    return w->rc != CF_OK;
}

/* Establishments hold at most a few thousand people. */
#define PROVISION_ALL_MAX 100000

enum cf_err
account_provision_all(struct records *r, enum account_role role,
                      const char *establishment_id, unsigned code_days,
                      const char *codes_path, uint64_t *n, struct cf_errmsg *em)
{
    struct people p = { NULL, 0, 0 };
    struct codes_file cf = { "", "", NULL, NULL, 0, 0 };
    struct account *a;
    char code[ACTIVATION_CODE_TEXT + 1];
    enum cf_err rc;
    size_t i;

    *n = 0;
    if (person_kind(role) == REC_KIND_COUNT)
        return cf_fail(em, CF_ERR_INPUT, "--all: only for students, guardians, teachers and staff");
    a = malloc(sizeof *a);
    if (a == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "out of memory");
    if (role == ROLE_STUDENT)
        rc = records_children(r, REC_STUDENT, 0, establishment_id, PROVISION_ALL_MAX, 0,
                              collect_person, &p, em);
    else if (role == ROLE_GUARDIAN) {
        struct student_walk w = { r, &p, CF_OK };

        rc = records_children(r, REC_STUDENT, 0, establishment_id, PROVISION_ALL_MAX, 0,
                              guardians_of, &w, em);
        if (rc == CF_OK)
            rc = w.rc;
    } else
        rc = records_children(r, REC_STAFF, 0, establishment_id, PROVISION_ALL_MAX, 0,
                              collect_person, &p, em);
    if (rc == CF_OK)
        rc = codes_open(&cf, codes_path, em);
    if (rc == CF_OK && (rc = store_begin(records_store(r), STORE_TX_NORMAL)) != CF_OK)
        rc = cf_fail(em, rc, "store: cannot begin a transaction");
    for (i = 0; rc == CF_OK && i < p.n; i++) {
        struct account_provision in = { role, p.ids[i], NULL, NULL, NULL, code_days };
        uint8_t person[STORE_ID_BYTES];

        if (records_id_parse(p.ids[i], person) != CF_OK)
            continue;
        rc = store_account_by_person(records_store(r), person, &a->row);
        if (rc == CF_OK)
            continue;                   /* has an account already */
        if (rc != CF_ERR_NOTFOUND)
            break;
        rc = account_provision(r, &in, a, code, em);
        if (rc == CF_OK)
            rc = codes_write(&cf, a, code);
        if (rc == CF_OK)
            (*n)++;
        sodium_memzero(code, sizeof code);
    }
    if (cf.f != NULL && rc == CF_OK)
        rc = codes_sync(&cf);
    if (rc == CF_OK)
        rc = store_commit(records_store(r), em);
    else if (cf.f != NULL) {
        store_rollback(records_store(r));
        if (em != NULL && em->msg[0] == '\0')
            cf_fail(em, rc, "provisioning failed: %s; nothing was changed", cf_err_str(rc));
    }
    rc = codes_close(&cf, rc, em);
    if (rc != CF_OK)
        *n = 0;
    free(p.ids);
    sodium_memzero(a, sizeof *a);
    free(a);
    return rc;
}

/* ---- incidents -------------------------------------------------------- */

const char *
account_incident_name(enum incident i)
{
    switch (i) {
    case INCIDENT_FREEZE_UNACTIVATED:   return "freeze-unactivated";
    case INCIDENT_RESET_CODES:          return "reset-codes";
    case INCIDENT_REVOKE_SESSIONS:      return "revoke-sessions";
    case INCIDENT_FORCE_PASSWORD_RESET: return "force-password-reset";
    }
    return "?";
}

static enum cf_err
make_scope(const struct incident_scope *sc, const char *state,
           struct store_account_scope *out, uint8_t est[STORE_ID_BYTES])
{
    out->state = state;
    out->compartment = sc->academie;
    out->establishment = NULL;
    if (sc->establishment_id != NULL) {
        if (records_id_parse(sc->establishment_id, est) != CF_OK)
            return CF_ERR_INPUT;
        out->establishment = est;
    }
    return CF_OK;
}

static const char *
incident_state(enum incident i)
{
    switch (i) {
    case INCIDENT_FREEZE_UNACTIVATED:
    case INCIDENT_RESET_CODES:          return ACCOUNT_STATE_PROVISIONED;
    case INCIDENT_FORCE_PASSWORD_RESET: return ACCOUNT_STATE_ACTIVE;
    case INCIDENT_REVOKE_SESSIONS:      return NULL;
    }
    return NULL;
}

static int
count_one(void *arg, const struct store_account *a)
{
    (void)a;
    (*(uint64_t *)arg)++;
    return 0;
}

enum cf_err
account_incident_count(struct records *r, enum incident i,
                       const struct incident_scope *sc, uint64_t *n)
{
    struct store_account_scope scope;
    uint8_t est[STORE_ID_BYTES];

    *n = 0;
    if (make_scope(sc, incident_state(i), &scope, est) != CF_OK)
        return CF_ERR_INPUT;
    return store_accounts_each(records_store(r), &scope, count_one, n);
}

/* Applies RESET_CODES or FORCE_PASSWORD_RESET to one account.  Collected
 * first, then updated: a statement is not updated while it is read. */
struct idlist {
    uint8_t (*ids)[STORE_ID_BYTES];
    size_t n, cap;
};

static int
collect_id(void *arg, const struct store_account *a)
{
    struct idlist *l = arg;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        void *p = realloc(l->ids, cap * sizeof *l->ids);

        if (p == NULL)
            return 1;
        l->ids = p;
        l->cap = cap;
    }
    memcpy(l->ids[l->n++], a->id, STORE_ID_BYTES);
    return 0;
}

static enum cf_err
per_account(struct records *r, enum incident i, const uint8_t id[STORE_ID_BYTES],
            struct codes_file *cf)
{
    struct account *a = malloc(sizeof *a);
    char code[ACTIVATION_CODE_TEXT + 1], hex[RECORD_ID_HEX + 1];
    enum cf_err rc;
    uint64_t revoked;

    if (a == NULL)
        return CF_ERR_NOMEM;
    records_id_format(id, hex);
    rc = account_get(r, hex, a);
    if (rc == CF_OK && i == INCIDENT_RESET_CODES) {
        rc = set_new_code(r, &a->row, ACTIVATION_DEFAULT_DAYS, code);
        if (rc == CF_OK)
            rc = codes_write(cf, a, code);
        sodium_memzero(code, sizeof code);
    } else if (rc == CF_OK) {
        a->row.reset_required = 1;
        rc = store_sessions_revoke(records_store(r), a->row.id, NULL, &revoked);
    }
    if (rc == CF_OK) {
        a->row.updated = (int64_t)time(NULL);
        rc = store_account_update(records_store(r), &a->row);
    }
    sodium_memzero(a, sizeof *a);
    free(a);
    return rc;
}

enum cf_err
account_incident_run(struct records *r, enum incident i,
                     const struct incident_scope *sc, const char *codes_path,
                     char **codes_text, uint64_t *n, struct cf_errmsg *em)
{
    struct store_account_scope scope;
    uint8_t est[STORE_ID_BYTES];
    struct idlist l = { NULL, 0, 0 };
    struct codes_file cf = { "", "", NULL, NULL, 0, 0 };
    enum cf_err rc;
    size_t k;

    *n = 0;
    if (make_scope(sc, incident_state(i), &scope, est) != CF_OK)
        return cf_fail(em, CF_ERR_INPUT, "establishment id must be %d hex digits", RECORD_ID_HEX);
    if (codes_text != NULL)
        *codes_text = NULL;
    if (i == INCIDENT_RESET_CODES) {
        if (codes_path != NULL)
            rc = codes_open(&cf, codes_path, em);
        else if (codes_text != NULL)
            rc = codes_open_mem(&cf, em);
        else
            return cf_fail(em, CF_ERR_INPUT, "reset-codes needs --out FILE for the new codes");
        if (rc != CF_OK)
            return rc;
    }
    if ((rc = store_begin(records_store(r), STORE_TX_NORMAL)) != CF_OK) {
        rc = cf_fail(em, rc, "store: cannot begin a transaction");
        return codes_close(&cf, rc, em);
    }
    switch (i) {
    case INCIDENT_FREEZE_UNACTIVATED:
        rc = store_accounts_set_state(records_store(r), &scope, ACCOUNT_STATE_FROZEN, n);
        break;
    case INCIDENT_REVOKE_SESSIONS:
        rc = store_sessions_revoke(records_store(r), NULL, &scope, n);
        break;
    case INCIDENT_RESET_CODES:
    case INCIDENT_FORCE_PASSWORD_RESET:
        rc = store_accounts_each(records_store(r), &scope, collect_id, &l);
        for (k = 0; rc == CF_OK && k < l.n; k++)
            rc = per_account(r, i, l.ids[k], &cf);
        *n = rc == CF_OK ? l.n : 0;
        break;
    }
    free(l.ids);
    if (rc == CF_OK && cf.f != NULL)
        rc = codes_sync(&cf);
    if (rc == CF_OK)
        rc = store_commit(records_store(r), em);
    else {
        store_rollback(records_store(r));
        rc = cf_fail(em, rc, "%s: %s; nothing was changed", account_incident_name(i),
                     cf_err_str(rc));
    }
    rc = codes_close(&cf, rc, em);
    if (rc != CF_OK)
        *n = 0;
    else if (codes_text != NULL)
        *codes_text = cf.mem;
    return rc;
}
