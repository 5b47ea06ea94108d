/*
 * test_account.c - accounts, activation codes, the password policy,
 * throttling, sessions, incident commands and the Argon2id pool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>

#include "../../src/account.c"
#include "demo.h"
#include "session.h"
#include "testutil.h"

struct fx {
    char root[300], dir[320];
    struct records *r;
    struct pwhash_pool *pool;
    char est[RECORD_ID_HEX + 1];
    char student[2][RECORD_ID_HEX + 1];
};

static struct account acc, other;

static int
person_of(void *arg, const struct record *rec)
{
    struct fx *f = arg;

    if (f->student[0][0] == '\0')
        memcpy(f->student[0], rec->id, sizeof f->student[0]);
    else if (f->student[1][0] == '\0')
        memcpy(f->student[1], rec->id, sizeof f->student[1]);
    return 0;
}

static int
setup(void **state)
{
    static const char *const codes[] = { "10" };
    struct fx *f = calloc(1, sizeof *f);
    struct cf_errmsg em = { "" };
    struct demo_counts n;
    struct demo_opts o = { "10", 2, 10, 1, 7, 0 };
    struct pwhash_opts po = { 2, 8, 1, 8192 };     /* cheap for tests */
    struct record e;
    uint8_t seed[32];

    snprintf(f->root, sizeof f->root, "%s", tu_tmpdir());
    snprintf(f->dir, sizeof f->dir, "%s/data", f->root);
    assert_int_equal(records_init(f->dir, codes, 1, seed, &em), CF_OK);
    assert_int_equal(records_open(f->dir, NULL, &f->r, &em), CF_OK);
    assert_int_equal(demo_generate(f->r, &o, NULL, NULL, &n, &em), CF_OK);
    assert_int_equal(records_find(f->r, REC_ESTABLISHMENT, "uai", "0990000M", 0, &e, &em), CF_OK);
    memcpy(f->est, e.id, sizeof f->est);
    assert_int_equal(records_children(f->r, REC_STUDENT, 0, f->est, 2, 0, person_of, f, &em), CF_OK);
    assert_int_equal(pwhash_start(&po, &f->pool, &em), CF_OK);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    pwhash_stop(f->pool);
    records_close(f->r);
    tu_rmrf(f->root);
    free(f);
    return 0;
}

static void
provision(struct fx *f, const char *person, struct account *a, char code[ACTIVATION_CODE_TEXT + 1])
{
    struct cf_errmsg em = { "" };
    struct account_provision in = { ROLE_STUDENT, person, NULL, NULL, NULL, 0 };

    if (account_provision(f->r, &in, a, code, &em) != CF_OK)
        fail_msg("provision: %s", em.msg);
}

static void
hash_pw(struct fx *f, const char *pw, char out[PWHASH_STR_BYTES])
{
    struct pwhash_job j = { .op = PWHASH_HASH };

    snprintf(j.password, sizeof j.password, "%s", pw);
    assert_int_equal(pwhash_run(f->pool, &j), CF_OK);
    memcpy(out, j.hash, PWHASH_STR_BYTES);
}

static void
test_provision_and_codes(void **state)
{
    struct fx *f = *state;
    char code[ACTIVATION_CODE_TEXT + 1], code2[ACTIVATION_CODE_TEXT + 1], typed[32];
    time_t now = time(NULL);
    size_t i;

    provision(f, f->student[0], &acc, code);
    assert_string_equal(acc.row.state, "provisioned");
    assert_int_equal(strlen(code), ACTIVATION_CODE_TEXT);
    assert_int_equal(code[4], '-');
    assert_int_equal(code[9], '-');
    for (i = 0; i < ACTIVATION_CODE_TEXT; i++)
        if (i != 4 && i != 9)
            assert_non_null(strchr(code_alphabet, code[i]));
    assert_true(login_valid(acc.login, strlen(acc.login)));
    assert_non_null(strchr(acc.login, '.'));
    assert_true(acc.row.code_expires >= now + 30 * 86400 - 5);

    /* found by login in any case, with spaces */
    {
        char upper[ACCOUNT_LOGIN_MAX + 3];
        size_t k;

        snprintf(upper, sizeof upper, " %s ", acc.login);
        for (k = 0; upper[k]; k++)
            if (upper[k] >= 'a' && upper[k] <= 'z')
                upper[k] = (char)(upper[k] - 32);
        assert_int_equal(account_find(f->r, upper, &other), CF_OK);
        assert_string_equal(other.id, acc.id);
    }
    assert_int_equal(account_find(f->r, "nobody.here", &other), CF_ERR_NOTFOUND);

    /* the right code, typed lower-case without dashes, works */
    for (i = 0, typed[0] = '\0'; code[i]; i++)
        if (code[i] != '-') {
            size_t l = strlen(typed);
            typed[l] = (char)(code[i] >= 'A' && code[i] <= 'Z' ? code[i] + 32 : code[i]);
            typed[l + 1] = '\0';
        }
    assert_int_equal(account_check_code(f->r, &acc, code, now), CF_OK);
    assert_int_equal(account_check_code(f->r, &acc, typed, now), CF_OK);
    /* wrong, malformed, expired */
    {
        char wrong[ACTIVATION_CODE_TEXT + 1];

        memcpy(wrong, code, sizeof wrong);
        wrong[0] = wrong[0] == '2' ? '3' : '2';
        assert_int_equal(account_check_code(f->r, &acc, wrong, now), CF_ERR_AUTH);
    }
    assert_int_equal(account_check_code(f->r, &acc, "", now), CF_ERR_AUTH);
    assert_int_equal(account_check_code(f->r, &acc, "0000-0000-0000", now), CF_ERR_AUTH);
    assert_int_equal(account_check_code(f->r, &acc, code, acc.row.code_expires), CF_ERR_AUTH);
    /* another account's code does not open this one */
    provision(f, f->student[1], &other, code2);
    assert_int_equal(account_check_code(f->r, &acc, code2, now), CF_ERR_AUTH);
    assert_int_equal(account_check_code(f->r, &other, code2, now), CF_OK);
    /* one account per person */
    {
        struct cf_errmsg em = { "" };
        struct account_provision in = { ROLE_STUDENT, f->student[0], NULL, NULL, NULL, 0 };
        struct account dup;

        /* a second account gets another login, so --all checks by person */
        assert_int_equal(account_provision(f->r, &in, &dup, code2, &em), CF_OK);
        assert_string_not_equal(dup.login, acc.login);
    }
    /* admin roles need an académie and a login; the login is unique */
    {
        struct cf_errmsg em = { "" };
        struct account_provision in = { ROLE_ACADEMIE_ADMIN, NULL, "10", NULL, "Admin.Lyon", 0 };
        struct account a2;

        assert_int_equal(account_provision(f->r, &in, &a2, code2, &em), CF_OK);
        assert_string_equal(a2.login, "admin.lyon");
        assert_int_equal(account_provision(f->r, &in, &a2, code2, &em), CF_ERR_EXISTS);
        in.login = NULL;
        assert_int_equal(account_provision(f->r, &in, &a2, code2, &em), CF_ERR_INPUT);
        in.login = "bad login!";
        assert_int_equal(account_provision(f->r, &in, &a2, code2, &em), CF_ERR_INPUT);
        in.login = "admin2";
        in.academie = "05";
        assert_int_equal(account_provision(f->r, &in, &a2, code2, &em), CF_ERR_INPUT);
        in.academie = "02";     /* valid, but this keyring has no key for it */
        assert_int_equal(account_provision(f->r, &in, &a2, code2, &em), CF_ERR_CRYPTO);
        in.role = ROLE_STUDENT;
        in.person_id = NULL;
        assert_int_equal(account_provision(f->r, &in, &a2, code2, &em), CF_ERR_INPUT);
    }
}

static void
test_activation(void **state)
{
    struct fx *f = *state;
    char code[ACTIVATION_CODE_TEXT + 1], hash[PWHASH_STR_BYTES], back[PWHASH_STR_BYTES];
    struct cf_errmsg em = { "" };

    provision(f, f->student[0], &acc, code);
    assert_int_equal(account_password_hash(f->r, &acc, back), CF_ERR_NOTFOUND);
    hash_pw(f, "vélo rouge sous la pluie d'octobre", hash);
    assert_int_equal(account_activate(f->r, &acc, hash, &em), CF_OK);
    assert_int_equal(account_get(f->r, acc.id, &other), CF_OK);
    assert_string_equal(other.row.state, "active");
    assert_false(other.row.has_code);
    assert_int_equal(account_password_hash(f->r, &other, back), CF_OK);
    assert_string_equal(back, hash);
    /* the code is single use: gone after activation */
    assert_int_equal(account_check_code(f->r, &other, code, time(NULL)), CF_ERR_AUTH);
    assert_int_equal(account_activate(f->r, &other, hash, &em), CF_ERR_DENIED);
    /* the sealed hash is bound to its row: pasted into another account it
     * does not open */
    {
        char code2[ACTIVATION_CODE_TEXT + 1];

        provision(f, f->student[1], &acc, code2);
        memcpy(acc.row.fields, other.row.fields, other.row.fields_len);
        acc.row.fields_len = other.row.fields_len;
        assert_int_equal(account_password_hash(f->r, &acc, back), CF_ERR_CRYPTO);
    }
}

static void
test_password_policy(void **state)
{
    struct fx *f = *state;
    char code[ACTIVATION_CODE_TEXT + 1], why[256], own[256], family[64];
    struct record p;
    struct cf_errmsg em = { "" };
    double bits;
    static const char *const weak[] = {
        "passw0rd", "azertyuiop", "123456789012", "motdepasse2024", "Soleil2012!",
    };
    size_t i;

    provision(f, f->student[0], &acc, code);
    for (i = 0; i < sizeof weak / sizeof weak[0]; i++) {
        why[0] = '\0';
        assert_int_equal(account_password_policy(f->r, &acc, weak[i], 50, &bits, why, sizeof why),
                         CF_ERR_INPUT);
        assert_true(bits < 50);
        assert_non_null(strstr(why, "too easy"));
        assert_null(strstr(why, weak[i]));
    }
    /* the account's own login and names count for nothing */
    snprintf(own, sizeof own, "%s%s", acc.login, acc.login);
    assert_int_equal(account_password_policy(f->r, &acc, own, 50, &bits, why, sizeof why),
                     CF_ERR_INPUT);
    assert_int_equal(records_get(f->r, REC_STUDENT, f->student[0], RECORD_ALL_FIELDS, &p, &em), CF_OK);
    ids_ascii_slug(p.value[1], family, sizeof family);
    snprintf(own, sizeof own, "%s%s2012", family, family);
    assert_int_equal(account_password_policy(f->r, &acc, own, 50, &bits, why, sizeof why),
                     CF_ERR_INPUT);
    /* the same length of unrelated words passes */
    assert_int_equal(account_password_policy(f->r, &acc, "girafe tambour nuage citron", 50,
                                             &bits, why, sizeof why), CF_OK);
    assert_true(bits >= 50);
    /* bounds: 7 and 129 bytes refused, control characters refused */
    assert_int_equal(account_password_policy(f->r, &acc, "Xk9#qL2", 0, &bits, why, sizeof why),
                     CF_ERR_INPUT);
    assert_non_null(strstr(why, "8 to 128"));
    {
        char longpw[PASSWORD_MAX_BYTES + 2];

        memset(longpw, 'q', sizeof longpw - 1);
        longpw[sizeof longpw - 1] = '\0';
        assert_int_equal(account_password_policy(f->r, &acc, longpw, 0, &bits, why, sizeof why),
                         CF_ERR_INPUT);
        longpw[PASSWORD_MAX_BYTES] = '\0';
        assert_int_equal(account_password_policy(f->r, &acc, longpw, 0, &bits, why, sizeof why),
                         CF_OK);
    }
    assert_int_equal(account_password_policy(f->r, &acc, "girafe\ttambour nuage", 0, &bits, why,
                                             sizeof why), CF_ERR_INPUT);
}

static void
test_throttle(void **state)
{
    struct fx *f = *state;
    struct throttle_policy p = { 0, 1000, 15 * 60 * 1000 };
    uint8_t k[THROTTLE_KEY_BYTES], k2[THROTTLE_KEY_BYTES];
    int64_t now = 1000000000, w;
    int i;

    account_throttle_key(f->r, "login", "zoe.martin", k);
    account_throttle_key(f->r, "login", "zoe.martin2", k2);
    assert_memory_not_equal(k, k2, sizeof k);
    assert_int_equal(account_throttle_wait(f->r, k, now), 0);
    /* exponential from 1 s */
    assert_int_equal(account_throttle_fail(f->r, k, &p, now), 1000);
    assert_int_equal(account_throttle_wait(f->r, k, now), 1000);
    assert_int_equal(account_throttle_wait(f->r, k, now + 1000), 0);
    assert_int_equal(account_throttle_fail(f->r, k, &p, now + 1000), 2000);
    assert_int_equal(account_throttle_fail(f->r, k, &p, now + 3000), 4000);
    /* capped at 15 minutes, never more */
    for (i = 0; i < 60; i++)
        w = account_throttle_fail(f->r, k, &p, now + 7000);
    assert_int_equal(w, 15 * 60 * 1000);
    assert_int_equal(account_throttle_wait(f->r, k, now + 7000), 15 * 60 * 1000);
    /* never permanent: after the wait and a quiet spell, counting restarts */
    assert_int_equal(account_throttle_wait(f->r, k, now + 7000 + 15 * 60 * 1000), 0);
    assert_int_equal(account_throttle_fail(f->r, k, &p, now + 7000 + 31 * 60 * 1000), 1000);
    /* the other key is untouched; clear resets */
    assert_int_equal(account_throttle_wait(f->r, k2, now), 0);
    account_throttle_clear(f->r, k);
    assert_int_equal(account_throttle_wait(f->r, k, now + 7000 + 31 * 60 * 1000), 0);
    /* free failures */
    p.free = 3;
    for (i = 0; i < 3; i++)
        assert_int_equal(account_throttle_fail(f->r, k2, &p, now), 0);
    assert_int_equal(account_throttle_fail(f->r, k2, &p, now), 1000);
}

static void
test_sessions(void **state)
{
    struct fx *f = *state;
    struct session_opts o = { 600, 3600 };
    struct session s, s2;
    char code[ACTIVATION_CODE_TEXT + 1], tok[SESSION_TOKEN_TEXT + 1], tok2[SESSION_TOKEN_TEXT + 1];
    int64_t now = (int64_t)time(NULL);

    provision(f, f->student[0], &acc, code);
    assert_int_equal(session_create(f->r, acc.id, 1, &o, tok, &s), CF_OK);
    assert_int_equal(strlen(tok), SESSION_TOKEN_TEXT);
    assert_int_equal(session_lookup(f->r, tok, &o, now, &s2), CF_OK);
    assert_string_equal(s2.account_id, acc.id);
    assert_int_equal(s2.row.mfa_level, 1);
    /* malformed or unknown tokens */
    assert_int_equal(session_lookup(f->r, "", &o, now, &s2), CF_ERR_AUTH);
    assert_int_equal(session_lookup(f->r, NULL, &o, now, &s2), CF_ERR_AUTH);
    memcpy(tok2, tok, sizeof tok2);
    tok2[0] = tok2[0] == 'A' ? 'B' : 'A';
    assert_int_equal(session_lookup(f->r, tok2, &o, now, &s2), CF_ERR_AUTH);
    tok2[5] = '=';
    assert_int_equal(session_lookup(f->r, tok2, &o, now, &s2), CF_ERR_AUTH);
    /* idle and absolute expiry */
    assert_int_equal(session_lookup(f->r, tok, &o, now + 599, &s2), CF_OK);
    assert_int_equal(session_lookup(f->r, tok, &o, now + 599 + 600, &s2), CF_ERR_AUTH);
    assert_int_equal(session_lookup(f->r, tok, &o, now + 1100, &s2), CF_OK);   /* touched at 599 */
    assert_int_equal(session_lookup(f->r, tok, &o, now + 3600, &s2), CF_ERR_AUTH);
    /* the token is not stored: only its hash */
    {
        sqlite3 *db;
        sqlite3_stmt *st;
        char path[400];

        snprintf(path, sizeof path, "%s/coffre.db", f->dir);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sessions WHERE "
                         "instr(token_hash, ?1) > 0", -1, &st, NULL), SQLITE_OK);
        sqlite3_bind_blob(st, 1, tok, (int)strlen(tok), SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    /* list and revoke by ref; revoke */
    assert_int_equal(session_create(f->r, acc.id, 0, &o, tok2, &s2), CF_OK);
    assert_int_equal(session_revoke_ref(f->r, acc.id, s2.ref), CF_OK);
    assert_int_equal(session_lookup(f->r, tok2, &o, now, &s2), CF_ERR_AUTH);
    assert_int_equal(session_revoke_ref(f->r, acc.id, "0000000000000000"), CF_ERR_NOTFOUND);
    assert_int_equal(session_revoke_ref(f->r, other.id[0] ? other.id : acc.id, "xyz"), CF_ERR_INPUT);
    assert_int_equal(session_lookup(f->r, tok, &o, now, &s2), CF_OK);
    assert_int_equal(session_revoke(f->r, &s2), CF_OK);
    assert_int_equal(session_lookup(f->r, tok, &o, now, &s2), CF_ERR_AUTH);
}

static int
count_sessions(void *arg, const struct session *x)
{
    (void)x;
    (*(int *)arg)++;
    return 0;
}

static void
test_incidents(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    struct incident_scope all = { NULL, NULL }, other_est = { NULL, "00000000000000000000000000000000" };
    struct session_opts o = { 0, 0 };
    struct session s;
    char code[ACTIVATION_CODE_TEXT + 1], code2[ACTIVATION_CODE_TEXT + 1];
    char tok[SESSION_TOKEN_TEXT + 1], hash[PWHASH_STR_BYTES], path[400];
    uint64_t n;
    int live = 0;

    provision(f, f->student[0], &acc, code);         /* stays provisioned */
    provision(f, f->student[1], &other, code2);
    hash_pw(f, "girafe tambour nuage citron", hash);
    assert_int_equal(account_activate(f->r, &other, hash, &em), CF_OK);
    assert_int_equal(session_create(f->r, other.id, 0, &o, tok, &s), CF_OK);

    /* counts, scoped */
    assert_int_equal(account_incident_count(f->r, INCIDENT_FREEZE_UNACTIVATED, &all, &n), CF_OK);
    assert_int_equal(n, 1);
    assert_int_equal(account_incident_count(f->r, INCIDENT_FREEZE_UNACTIVATED, &other_est, &n), CF_OK);
    assert_int_equal(n, 0);

    /* reset-codes: old code fails, the new one (from the 0600 file) works */
    snprintf(path, sizeof path, "%s/codes.tsv", f->root);
    assert_int_equal(account_incident_run(f->r, INCIDENT_RESET_CODES, &all, path, NULL, &n, &em), CF_OK);
    assert_int_equal(n, 1);
    {
        struct stat sb;
        size_t len;
        char *txt = (char *)tu_read(path, &len), login[80], newcode[32];
        long long exp;

        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
        assert_non_null(txt);
        txt[len] = '\0';
        assert_int_equal(sscanf(txt, "%79s %31s %lld", login, newcode, &exp), 3);
        assert_string_equal(login, acc.login);
        free(txt);
        assert_int_equal(account_get(f->r, acc.id, &acc), CF_OK);
        assert_int_equal(account_check_code(f->r, &acc, code, time(NULL)), CF_ERR_AUTH);
        assert_int_equal(account_check_code(f->r, &acc, newcode, time(NULL)), CF_OK);
    }
    /* the same in memory (the admin API's answer): yet another code */
    {
        char *text = NULL, login[80], newcode[32];
        long long exp;

        assert_int_equal(account_incident_run(f->r, INCIDENT_RESET_CODES, &all, NULL, &text, &n, &em),
                         CF_OK);
        assert_int_equal(n, 1);
        assert_non_null(text);
        assert_int_equal(sscanf(text, "%79s %31s %lld", login, newcode, &exp), 3);
        assert_string_equal(login, acc.login);
        free(text);
        assert_int_equal(account_get(f->r, acc.id, &acc), CF_OK);
        assert_int_equal(account_check_code(f->r, &acc, newcode, time(NULL)), CF_OK);
        /* and the file's code is dead now: rewrite the file with this one
         * for the freeze check below */
        unlink(path);
        {
            char line[160];
            snprintf(line, sizeof line, "%s\t%s\t%lld\n", login, newcode, exp);
            assert_int_equal(tu_write(path, line, strlen(line)), 0);
        }
    }
    /* never overwrites; a missing --out is refused */
    assert_int_equal(account_incident_run(f->r, INCIDENT_RESET_CODES, &all, path, NULL, &n, &em), CF_ERR_EXISTS);
    assert_int_equal(account_incident_run(f->r, INCIDENT_RESET_CODES, &all, NULL, NULL, &n, &em), CF_ERR_INPUT);
    /* an unwritable path changes nothing */
    assert_int_equal(account_incident_run(f->r, INCIDENT_RESET_CODES, &all, "/nonexistent/dir/x",
                                          NULL, &n, &em), CF_ERR_IO);

    /* freeze-unactivated: the provisioned account cannot activate */
    assert_int_equal(account_incident_run(f->r, INCIDENT_FREEZE_UNACTIVATED, &all, NULL, NULL, &n, &em), CF_OK);
    assert_int_equal(n, 1);
    assert_int_equal(account_get(f->r, acc.id, &acc), CF_OK);
    assert_string_equal(acc.row.state, "frozen");
    {
        size_t len;
        char *txt = (char *)tu_read(path, &len), login[80], newcode[32];

        txt[len] = '\0';
        assert_int_equal(sscanf(txt, "%79s %31s", login, newcode), 2);
        free(txt);
        assert_int_equal(account_check_code(f->r, &acc, newcode, time(NULL)), CF_ERR_AUTH);
    }
    assert_int_equal(account_activate(f->r, &acc, hash, &em), CF_ERR_DENIED);

    /* revoke-sessions, force-password-reset */
    assert_int_equal(session_lookup(f->r, tok, &o, time(NULL), &s), CF_OK);
    assert_int_equal(account_incident_run(f->r, INCIDENT_REVOKE_SESSIONS, &all, NULL, NULL, &n, &em), CF_OK);
    assert_int_equal(n, 1);
    assert_int_equal(session_lookup(f->r, tok, &o, time(NULL), &s), CF_ERR_AUTH);
    assert_int_equal(session_create(f->r, other.id, 0, &o, tok, &s), CF_OK);
    assert_int_equal(account_incident_run(f->r, INCIDENT_FORCE_PASSWORD_RESET, &all, NULL, NULL, &n, &em), CF_OK);
    assert_int_equal(n, 1);
    assert_int_equal(account_get(f->r, other.id, &other), CF_OK);
    assert_int_equal(other.row.reset_required, 1);
    assert_int_equal(session_lookup(f->r, tok, &o, time(NULL), &s), CF_ERR_AUTH);
    assert_int_equal(session_list(f->r, other.id, 10, count_sessions, &live), CF_OK);
    assert_int_equal(live, 2);          /* listed, both revoked */
    assert_int_equal(account_set_password(f->r, &other, hash, 0, &em), CF_OK);
    assert_int_equal(other.row.reset_required, 1);
    assert_int_equal(account_set_password(f->r, &other, hash, 1, &em), CF_OK);
    assert_int_equal(other.row.reset_required, 0);
}

static void
test_provision_all(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    char path[400], path2[400];
    uint64_t n, n2;

    snprintf(path, sizeof path, "%s/students.tsv", f->root);
    snprintf(path2, sizeof path2, "%s/again.tsv", f->root);
    assert_int_equal(account_provision_all(f->r, ROLE_STUDENT, f->est, 0, path, &n, &em), CF_OK);
    assert_int_equal(n, 10);
    /* a second run provisions nobody twice */
    assert_int_equal(account_provision_all(f->r, ROLE_STUDENT, f->est, 0, path2, &n2, &em), CF_OK);
    assert_int_equal(n2, 0);
    assert_int_equal(account_provision_all(f->r, ROLE_GUARDIAN, f->est, 0, path2, &n2, &em),
                     CF_ERR_EXISTS);
    unlink(path2);
    assert_int_equal(account_provision_all(f->r, ROLE_GUARDIAN, f->est, 0, path2, &n2, &em), CF_OK);
    assert_int_equal(n2, 10);           /* guardians_per = 1 */
    assert_int_equal(account_provision_all(f->r, ROLE_DPO, f->est, 0, path2, &n2, &em), CF_ERR_INPUT);
}

static void
test_pwhash_pool(void **state)
{
    struct fx *f = *state;
    struct pwhash_job j = { .op = PWHASH_HASH };
    struct pwhash_opts po = { 1, 1, 2, 16384 };
    struct pwhash_pool *p2;
    struct cf_errmsg em = { "" };
    char hash[PWHASH_STR_BYTES];

    hash_pw(f, "un mot de passe", hash);
    memset(&j, 0, sizeof j);
    j.op = PWHASH_VERIFY;
    memcpy(j.hash, hash, sizeof hash);
    snprintf(j.password, sizeof j.password, "un mot de passe");
    assert_int_equal(pwhash_run(f->pool, &j), CF_OK);
    assert_true(j.ok);
    assert_false(j.needs_rehash);
    /* the password is wiped once done */
    assert_int_equal(j.password[0], '\0');
    snprintf(j.password, sizeof j.password, "un autre");
    assert_int_equal(pwhash_run(f->pool, &j), CF_OK);
    assert_false(j.ok);
    /* the dummy hash verifies nothing */
    memcpy(j.hash, pwhash_dummy(f->pool), PWHASH_STR_BYTES);
    snprintf(j.password, sizeof j.password, "un mot de passe");
    assert_int_equal(pwhash_run(f->pool, &j), CF_OK);
    assert_false(j.ok);
    /* other parameters: verified, and flagged for rehash */
    assert_int_equal(pwhash_start(&po, &p2, &em), CF_OK);
    memcpy(j.hash, hash, sizeof hash);
    snprintf(j.password, sizeof j.password, "un mot de passe");
    assert_int_equal(pwhash_run(p2, &j), CF_OK);
    assert_true(j.ok);
    assert_true(j.needs_rehash);
    assert_int_equal(pwhash_memory_bound(p2), 16384);
    pwhash_stop(p2);
    /* empty and over-long passwords are refused before queueing */
    j.password[0] = '\0';
    assert_int_equal(pwhash_submit(f->pool, &j), CF_ERR_INPUT);
    /* bad options */
    po.workers = 65;
    assert_int_equal(pwhash_start(&po, &p2, &em), CF_ERR_INPUT);
}

/* Every sign-in costs one verification: an unknown login, or one without a
 * password yet, is verified against the pool's dummy hash. */
static void
test_signin_target_uses_dummy(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    char code[ACTIVATION_CODE_TEXT + 1], hash[PWHASH_STR_BYTES], target[PWHASH_STR_BYTES];
    struct pwhash_job j;

    assert_int_equal(account_signin_target(f->r, "nobody.here", pwhash_dummy(f->pool), &other,
                                           target), 0);
    assert_string_equal(target, pwhash_dummy(f->pool));
    provision(f, f->student[0], &acc, code);
    assert_int_equal(account_signin_target(f->r, acc.login, pwhash_dummy(f->pool), &other,
                                           target), 1);
    assert_string_equal(target, pwhash_dummy(f->pool));      /* not activated yet */
    hash_pw(f, "girafe tambour nuage citron", hash);
    assert_int_equal(account_activate(f->r, &acc, hash, &em), CF_OK);
    assert_int_equal(account_signin_target(f->r, acc.login, pwhash_dummy(f->pool), &other,
                                           target), 1);
    assert_string_equal(target, hash);
    assert_string_not_equal(target, pwhash_dummy(f->pool));
    /* and the dummy really is verified: a full Argon2id run that fails */
    memset(&j, 0, sizeof j);
    j.op = PWHASH_VERIFY;
    assert_int_equal(account_signin_target(f->r, "nobody.here", pwhash_dummy(f->pool), &other,
                                           j.hash), 0);
    snprintf(j.password, sizeof j.password, "girafe tambour nuage citron");
    assert_int_equal(pwhash_run(f->pool, &j), CF_OK);
    assert_false(j.ok);
}

/* A full queue answers CF_ERR_LIMIT at once. */
static void
slow_done(struct pwhash_job *j, enum cf_err rc)
{
    (void)j;
    (void)rc;
}

static void
test_pwhash_queue_full(void **state)
{
    struct pwhash_opts po = { 1, 2, 3, 64u << 20 };   /* slow: 64 MiB each */
    struct pwhash_pool *p;
    struct cf_errmsg em = { "" };
    static struct pwhash_job jobs[8];
    int i, limited = 0, queued = 0;

    (void)state;
    assert_int_equal(pwhash_start(&po, &p, &em), CF_OK);
    for (i = 0; i < 8; i++) {
        jobs[i].op = PWHASH_HASH;
        jobs[i].done = slow_done;
        snprintf(jobs[i].password, sizeof jobs[i].password, "mot de passe %d", i);
        switch (pwhash_submit(p, &jobs[i])) {
        case CF_OK:        queued++; break;
        case CF_ERR_LIMIT: limited++; break;
        default:           fail();
        }
    }
    /* one running + two queued at most; the rest refused */
    assert_true(queued <= 3);
    assert_true(limited >= 5);
    assert_true(pwhash_queue_depth(p) <= 2);
    pwhash_stop(p);                     /* runs what was queued */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_provision_and_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incidents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provision_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pwhash_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signin_target_uses_dummy, setup, teardown),
        cmocka_unit_test(test_pwhash_queue_full),
    };

    return cmocka_run_group_tests_name("account", tests, NULL, NULL);
}
