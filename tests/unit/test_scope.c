/*
 * test_scope.c - the scope module: address ranges, selectors and their
 * combination over a small trail written through the audit module, the
 * derived index (caught up, rebuilt, replaced trail), archives.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../src/scope.c"
#include "keyring.h"
#include "log.h"
#include "testutil.h"

#define T0 1767225600000LL              /* 2026-01-01T00:00:00Z */

struct fx {
    char dir[200];
    struct records *r;
    char est[RECORD_ID_HEX + 1], cls[RECORD_ID_HEX + 1];
    char st[3][RECORD_ID_HEX + 1];      /* students */
    char gd[RECORD_ID_HEX + 1];         /* a guardian of st[0] */
};

static void
add(struct fx *f, struct record_add *in, char *id)
{
    struct cf_errmsg em = { "" };

    assert_int_equal(records_add(f->r, in, id, &em), CF_OK);
}

static int
setup(void **state)
{
    static const char *const codes[] = { "10" };
    struct fx *f = calloc(1, sizeof *f);
    struct cf_errmsg em = { "" };
    uint8_t seed[KEYRING_SEED_BYTES];
    char lid[RECORD_ID_HEX + 1];
    int i;

    log_set_level(LOG_ERROR);
    snprintf(f->dir, sizeof f->dir, "%.150s/data", tu_tmpdir());
    assert_int_equal(records_init(f->dir, codes, 1, seed, &em), CF_OK);
    assert_int_equal(records_open(f->dir, NULL, &f->r, &em), CF_OK);
    {
        struct record_add e = { .kind = REC_ESTABLISHMENT, .compartment = "10",
                                .value = { "0999001W", "Collège A" } };
        add(f, &e, f->est);
    }
    {
        struct record_add c = { .kind = REC_CLASS, .parent = { f->est }, .value = { "6A" } };
        add(f, &c, f->cls);
    }
    for (i = 0; i < 3; i++) {
        char ine[16];
        unsigned n = 999000000u + (unsigned)i;
        struct record_add s = { .kind = REC_STUDENT, .parent = { f->est, f->cls } };

        snprintf(ine, sizeof ine, "%010u%c", n, "ABCDEFGHJKLMNPRSTUVWXYZ"[n % 23]);
        s.value[0] = ine;
        s.value[1] = "MARTIN";
        s.value[2] = "Zoé";
        s.value[3] = "2014-05-02";
        add(f, &s, f->st[i]);
    }
    {
        struct record_add g = { .kind = REC_GUARDIAN, .compartment = "10",
                                .value = { "MARTIN", "Anne", "0600000000", "anne@example.invalid" } };
        struct record_add l = { .kind = REC_GUARDIAN_LINK, .parent = { NULL, f->st[0] },
                                .value = { "mother" } };

        add(f, &g, f->gd);
        l.parent[0] = f->gd;
        add(f, &l, lid);
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    char root[200];

    records_close(f->r);
    snprintf(root, sizeof root, "%s", f->dir);
    *strrchr(root, '/') = '\0';
    tu_rmrf(root);
    free(f);
    return 0;
}

/* Appends entries through the audit module (its own keyring copy). */
static void
trail(struct fx *f, const struct audit_entry *e, size_t n)
{
    struct cf_errmsg em = { "" };
    struct keyring *kr = NULL;
    struct audit *a = NULL;
    char path[300];
    size_t i;

    snprintf(path, sizeof path, "%s/keyring", f->dir);
    assert_int_equal(keyring_load(path, &kr, &em), CF_OK);
    assert_int_equal(audit_open(f->dir, kr, NULL, &a, &em), CF_OK);
    for (i = 0; i < n; i++)
        assert_int_equal(audit_append(a, &e[i], &em), CF_OK);
    audit_close(a);
    keyring_free(kr);
}

static struct audit_entry
ent(int64_t t, const char *actor, const char *addr, const char *action, const char *subject,
    const char *fields, const char *outcome)
{
    struct audit_entry e;

    memset(&e, 0, sizeof e);
    e.time_ms = t;
    snprintf(e.actor, sizeof e.actor, "%s", actor);
    snprintf(e.session, sizeof e.session, "%s", actor[0] ? "5e55" : "");
    snprintf(e.addr, sizeof e.addr, "%s", addr);
    snprintf(e.action, sizeof e.action, "%s", action);
    snprintf(e.subject, sizeof e.subject, "%s", subject);
    snprintf(e.fields, sizeof e.fields, "%s", fields);
    snprintf(e.outcome, sizeof e.outcome, "%s", outcome);
    return e;
}

#define A1 "acct:000000000000000000000000000000a1"
#define A2 "acct:000000000000000000000000000000a2"

/* A1 reads st[0] and a class page (st[1]) from 192.0.2.7, is refused st[2];
 * A2 reads the guardian from 2001:db8::5 an hour later and is locked. */
static void
standard_trail(struct fx *f)
{
    char page[200];
    struct audit_entry e[6];

    snprintf(page, sizeof page, "%s,%s", f->cls, f->st[1]);
    e[0] = ent(T0 + 1000, A1, "192.0.2.7", "student.read", f->st[0], "family_name,given_names", "ok");
    e[1] = ent(T0 + 2000, A1, "192.0.2.7", "class.students", page, "name,family_name", "ok");
    e[2] = ent(T0 + 3000, A1, "192.0.2.7", "student.read", f->st[2], "", "denied");
    e[3] = ent(T0 + 3600000, A2, "2001:db8::5", "guardian.read", f->gd, "phone,email", "ok");
    e[4] = ent(T0 + 3601000, A2, "2001:db8::5", "student.read", f->st[2], "rule:budget-1h", "locked");
    e[5] = ent(T0 + 7200000, "cli", "", "incident.revoke-sessions", "10", "", "ok");
    trail(f, e, 6);
}

static const struct scope_person *
person(const struct scope_result *r, const char *hex)
{
    uint8_t id[16];
    size_t i;

    assert_int_equal(records_id_parse(hex, id), CF_OK);
    for (i = 0; i < r->npeople; i++)
        if (memcmp(r->people[i].id, id, 16) == 0)
            return &r->people[i];
    return NULL;
}

static uint32_t
bit_of(const char *name)
{
    size_t i;

    for (i = 0; i < scope_field_count(); i++)
        if (strcmp(scope_field_name(i), name) == 0)
            return 1u << i;
    fail_msg("no field %s", name);
    return 0;
}

static void
test_cidr(void **state)
{
    struct scope_query q;
    static const uint8_t v4lo[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 0 };

    (void)state;
    memset(&q, 0, sizeof q);
    assert_int_equal(scope_parse_cidr("203.0.113.77/24", &q), 0);
    assert_memory_equal(q.lo, v4lo, 16);
    assert_int_equal(q.hi[15], 255);
    assert_int_equal(q.hi[14], 113);
    assert_int_equal(scope_parse_cidr("203.0.113.77", &q), 0);
    assert_int_equal(q.lo[15], 77);
    assert_int_equal(q.hi[15], 77);
    assert_int_equal(scope_parse_cidr("2001:db8::/32", &q), 0);
    assert_int_equal(q.lo[3], 0xb8);
    assert_int_equal(q.hi[4], 0xff);
    assert_int_equal(q.hi[15], 0xff);
    assert_int_equal(scope_parse_cidr("0.0.0.0/0", &q), 0);
    assert_int_equal(q.lo[12], 0);
    assert_int_equal(q.hi[12], 255);
    /* bad */
    assert_int_equal(scope_parse_cidr("", &q), -1);
    assert_int_equal(scope_parse_cidr("300.1.1.1", &q), -1);
    assert_int_equal(scope_parse_cidr("10.0.0.0/33", &q), -1);
    assert_int_equal(scope_parse_cidr("10.0.0.0/", &q), -1);
    assert_int_equal(scope_parse_cidr("10.0.0.0/-1", &q), -1);
    assert_int_equal(scope_parse_cidr("::1/129", &q), -1);
    assert_int_equal(scope_parse_cidr("fe80::1%eth0", &q), -1);
    assert_int_equal(scope_parse_cidr("host.example", &q), -1);
}

static void
test_selectors(void **state)
{
    struct fx *f = *state;
    struct scope_query q;
    struct scope_result r;
    struct cf_errmsg em = { "" };
    const struct scope_person *p;

    standard_trail(f);
    /* by actor: st[0] in clear, st[1] from the page, st[2] refused only */
    memset(&q, 0, sizeof q);
    q.actor[q.nactor++] = A1;
    assert_int_equal(scope_run(f->dir, f->r, &q, NULL, NULL, &r, &em), CF_OK);
    assert_int_equal(r.entries, 3);
    assert_int_equal(r.served, 2);
    assert_int_equal(r.refused, 1);
    assert_int_equal(r.people_n[SCOPE_STUDENT], 3);
    assert_int_equal(r.clear_n, 2);
    assert_int_equal(r.other_ids, 1);                       /* the class */
    assert_non_null(p = person(&r, f->st[1]));
    /* a page's fields go to each subject of a kind that has them */
    assert_int_equal(p->fields, bit_of("family_name"));     /* "name" is the class's */
    assert_non_null(p = person(&r, f->st[2]));
    assert_int_equal(p->fields, 0);
    assert_int_equal(p->refused, 1);
    assert_string_equal(p->establishment, f->est);
    assert_int_equal(r.first_ms, T0 + 1000);
    assert_int_equal(r.last_ms, T0 + 3000);
    /* measures: the incident command after the first access */
    assert_int_equal(r.nevents, 1);
    assert_string_equal(r.events[0].action, "incident.revoke-sessions");
    scope_result_free(&r);

    /* by address (IPv6 block): A2 only, the guardian with its child's school */
    memset(&q, 0, sizeof q);
    assert_int_equal(scope_parse_cidr("2001:db8::/64", &q), 0);
    assert_int_equal(scope_run(f->dir, f->r, &q, NULL, NULL, &r, &em), CF_OK);
    assert_int_equal(r.entries, 2);
    assert_int_equal(r.people_n[SCOPE_GUARDIAN], 1);
    assert_non_null(p = person(&r, f->gd));
    assert_string_equal(p->establishment, f->est);
    assert_int_equal(r.nactors, 1);
    assert_string_equal(r.actors[0].actor, A2);
    scope_result_free(&r);

    /* combined: A1 AND the window of the first two seconds */
    memset(&q, 0, sizeof q);
    q.actor[q.nactor++] = A1;
    q.has_from = q.has_to = 1;
    q.from_ms = T0;
    q.to_ms = T0 + 2500;
    assert_int_equal(scope_run(f->dir, f->r, &q, NULL, NULL, &r, &em), CF_OK);
    assert_int_equal(r.entries, 2);
    assert_int_equal(r.refused, 0);
    scope_result_free(&r);

    /* a window alone */
    memset(&q, 0, sizeof q);
    q.has_from = 1;
    q.from_ms = T0 + 3000000;
    assert_int_equal(scope_run(f->dir, f->r, &q, NULL, NULL, &r, &em), CF_OK);
    assert_int_equal(r.entries, 3);
    scope_result_free(&r);

    /* --rule: A2's accesses up to its lockout */
    memset(&q, 0, sizeof q);
    q.rule = "budget-1h";
    assert_int_equal(scope_run(f->dir, f->r, &q, NULL, NULL, &r, &em), CF_OK);
    assert_int_equal(r.nactors, 1);
    assert_string_equal(r.actors[0].actor, A2);
    assert_int_equal(r.entries, 2);
    assert_int_equal(r.nevents, 2);                         /* the lockout, the incident */
    assert_string_equal(r.events[0].action, "guard.lockout");
    assert_string_equal(r.events[0].detail, "budget-1h");
    scope_result_free(&r);

    /* an establishment alone: the entries naming its people */
    memset(&q, 0, sizeof q);
    q.establishment = f->est;
    assert_int_equal(scope_run(f->dir, f->r, &q, NULL, NULL, &r, &em), CF_OK);
    assert_int_equal(r.people_n[SCOPE_STUDENT] + r.people_n[SCOPE_GUARDIAN], 4);
    scope_result_free(&r);

    /* another compartment filters everyone out, yet entries matched */
    memset(&q, 0, sizeof q);
    q.actor[q.nactor++] = A1;
    q.compartment = "02";
    assert_int_equal(scope_run(f->dir, f->r, &q, NULL, NULL, &r, &em), CF_OK);
    assert_int_equal(r.npeople, 0);
    scope_result_free(&r);
}

static void
test_bad_input(void **state)
{
    struct fx *f = *state;
    struct scope_query q;
    struct scope_result r;
    struct cf_errmsg em = { "" };

    standard_trail(f);
    memset(&q, 0, sizeof q);
    assert_int_equal(scope_run(f->dir, f->r, &q, NULL, NULL, &r, &em), CF_ERR_INPUT);
    q.has_from = q.has_to = 1;
    q.from_ms = T0 + 10;
    q.to_ms = T0;
    assert_int_equal(scope_run(f->dir, f->r, &q, NULL, NULL, &r, &em), CF_ERR_INPUT);
    q.from_ms = T0 + 86400000LL * 365;
    q.to_ms = q.from_ms + 1;
    assert_int_equal(scope_run(f->dir, f->r, &q, NULL, NULL, &r, &em), CF_ERR_NOTFOUND);
    memset(&q, 0, sizeof q);
    q.actor[q.nactor++] = "acct:00000000000000000000000000000bad";
    assert_int_equal(scope_run(f->dir, f->r, &q, NULL, NULL, &r, &em), CF_ERR_NOTFOUND);
    assert_non_null(strstr(em.msg, "no audit entry"));
}

static uint64_t
count_actor(struct fx *f, const char *actor)
{
    struct scope_query q;
    struct scope_result r;
    struct cf_errmsg em = { "" };
    uint64_t n;

    memset(&q, 0, sizeof q);
    q.actor[q.nactor++] = actor;
    if (scope_run(f->dir, f->r, &q, NULL, NULL, &r, &em) != CF_OK)
        return 0;
    n = r.entries;
    scope_result_free(&r);
    return n;
}

static void
test_index_derived(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    struct audit_report rep;
    struct audit_entry e[2];
    char path[300];
    uint64_t n = 0;

    standard_trail(f);
    assert_int_equal(count_actor(f, A1), 3);
    /* caught up by itself */
    e[0] = ent(T0 + 9000000, A1, "192.0.2.7", "student.read", f->st[0], "ine", "ok");
    trail(f, e, 1);
    assert_int_equal(count_actor(f, A1), 4);
    /* rebuilt from scratch: the same; verify never looks at it */
    assert_int_equal(scope_reindex(f->dir, 1, NULL, NULL, &n, &em), CF_OK);
    assert_true(n >= 7);
    assert_int_equal(count_actor(f, A1), 4);
    assert_int_equal(audit_verify(f->dir, NULL, NULL, &rep, &em), CF_OK);
    /* a damaged index file is rebuilt, not believed */
    snprintf(path, sizeof path, "%s/audit-index.db", f->dir);
    {
        FILE *w = fopen(path, "w");

        assert_non_null(w);
        fputs("not a database", w);
        fclose(w);
    }
    assert_int_equal(scope_reindex(f->dir, 0, NULL, NULL, &n, &em), CF_OK);
    assert_int_equal(count_actor(f, A1), 4);
    /* an index whose last entry no longer has that hash in the trail (a
     * trail restored or replaced) is rebuilt, not believed */
    {
        char cmd[600];

        snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"UPDATE meta SET v = '00' WHERE k = 'hash'; "
                 "DELETE FROM post\"", path);
        assert_int_equal(system(cmd), 0);
    }
    assert_int_equal(count_actor(f, A1), 4);
    (void)e[1];
}

/* A whole file as a C string (tu_read does not terminate it). */
static char *
read_text(const char *path)
{
    size_t len;
    unsigned char *b = tu_read(path, &len);
    char *t = b != NULL ? malloc(len + 1) : NULL;

    if (t != NULL) {
        memcpy(t, b, len);
        t[len] = '\0';
    }
    free(b);
    return t;
}

static int
count_lines(const char *path)
{
    size_t len, i;
    unsigned char *b = tu_read(path, &len);
    int n = 0;

    for (i = 0; b != NULL && i < len; i++)
        n += b[i] == '\n';
    free(b);
    return n;
}

static int
audit_ok(void *arg, const char *subjects, const char *fields)
{
    int *calls = arg;

    (void)subjects;
    (void)fields;
    (*calls)++;
    return 0;
}

static int
audit_refuse(void *arg, const char *subjects, const char *fields)
{
    (void)arg;
    (void)subjects;
    (void)fields;
    return -1;
}

static void
test_people_file(void **state)
{
    struct fx *f = *state;
    struct scope_query q;
    struct scope_result r;
    struct cf_errmsg em = { "" };
    char path[300], *text;
    uint64_t lines = 0;
    int calls = 0;

    standard_trail(f);
    memset(&q, 0, sizeof q);
    q.actor[q.nactor++] = A1;
    assert_int_equal(scope_run(f->dir, f->r, &q, NULL, NULL, &r, &em), CF_OK);
    snprintf(path, sizeof path, "%s/people.csv", f->dir);
    /* the audit refuses: no file at all */
    assert_int_not_equal(scope_write_people(path, f->r, &r, T0, audit_refuse, NULL, &lines, &em), CF_OK);
    assert_int_equal(access(path, F_OK), -1);
    /* st[0] (a minor with a guardian) -> the guardian; st[1] (a minor
     * without one) -> flagged; st[2] never decrypted -> not listed */
    assert_int_equal(scope_write_people(path, f->r, &r, T0, audit_ok, &calls, &lines, &em), CF_OK);
    assert_int_equal(lines, 2);
    assert_int_equal(count_lines(path), 3);
    assert_true(calls >= 3);
    text = read_text(path);
    assert_non_null(strstr(text, "\"guardian\""));
    assert_non_null(strstr(text, f->gd));
    assert_non_null(strstr(text, "anne@example.invalid"));
    assert_non_null(strstr(text, "\"none-on-record\""));
    assert_null(strstr(text, f->st[2]));
    assert_null(strstr(text, "Zoé"));                       /* the minor's name is not there */
    free(text);
    /* the notification */
    snprintf(path, sizeof path, "%s/note.md", f->dir);
    assert_int_equal(scope_write_notification(path, f->r, &r, "--actor " A1, "dpo@example.invalid", &em), CF_OK);
    text = read_text(path);
    assert_non_null(strstr(text, "## (a) Nature of the breach"));
    assert_non_null(strstr(text, "| **total** | **3** | **2** | **1** |"));
    assert_non_null(strstr(text, "dpo@example.invalid"));
    assert_non_null(strstr(text, "incident.revoke-sessions"));
    free(text);
    scope_result_free(&r);
}

static void
test_archive(void **state)
{
    struct fx *f = *state;
    struct audit_archive_info info, check;
    struct audit_report rep;
    struct cf_errmsg em = { "" };
    struct audit_entry e[1];
    char out[300], out2[300];

    standard_trail(f);
    /* a later checkpoint: an archive never takes the trail's last one */
    e[0] = ent(0, "cli", "", "keys.list", "", "", "ok");
    trail(f, e, 1);
    snprintf(out, sizeof out, "%s/old.arc", f->dir);
    /* nothing before 2025 */
    assert_int_equal(audit_archive_write(f->dir, T0 - 86400000LL * 365, out, &info, &em),
                     CF_ERR_NOTFOUND);
    assert_int_equal(access(out, F_OK), -1);
    assert_int_equal(audit_archive_write(f->dir, T0 + 86400000LL, out, &info, &em), CF_OK);
    assert_true(info.to_seq >= info.from_seq);
    /* never overwritten */
    assert_int_equal(audit_archive_write(f->dir, T0 + 86400000LL, out, &check, &em), CF_ERR_EXISTS);
    /* step 2: the trail names the file; step 3: the entries leave */
    e[0] = ent(0, "cli", "", "audit.archive", "", "", "ok");
    snprintf(e[0].fields, sizeof e[0].fields, "blake2b:%s", info.digest);
    trail(f, e, 1);
    assert_int_equal(audit_archive_commit(f->dir, &info, &em), CF_OK);
    assert_int_equal(audit_verify(f->dir, NULL, NULL, &rep, &em), CF_OK);
    assert_int_equal(rep.archived, info.to_seq);
    assert_int_equal(audit_verify_archive(f->dir, out, NULL, 0, &check, &em), CF_OK);
    assert_int_equal(check.to_seq, info.to_seq);
    /* scope still reads the live part */
    assert_int_equal(count_actor(f, "cli") > 0, 1);
    /* a second archive takes the first one's audit.archive entry */
    e[0] = ent(0, A1, "192.0.2.7", "student.read", f->st[0], "ine", "ok");
    trail(f, e, 1);
    snprintf(out2, sizeof out2, "%s/old2.arc", f->dir);
    assert_int_equal(audit_archive_write(f->dir, INT64_MAX / 2, out2, &check, &em), CF_OK);
    {
        const char *others[1] = { out2 };

        e[0] = ent(0, "cli", "", "audit.archive", "", "", "ok");
        snprintf(e[0].fields, sizeof e[0].fields, "blake2b:%s", check.digest);
        trail(f, e, 1);
        assert_int_equal(audit_archive_commit(f->dir, &check, &em), CF_OK);
        assert_int_equal(audit_verify(f->dir, NULL, NULL, &rep, &em), CF_OK);
        assert_int_equal(audit_verify_archive(f->dir, out, others, 1, &info, &em), CF_OK);
        others[0] = out;
        assert_int_equal(audit_verify_archive(f->dir, out2, others, 1, &info, &em), CF_OK);
    }
    /* an edited archive is caught */
    {
        char cmd[800];

        snprintf(cmd, sizeof cmd, "chmod u+w '%s' && sqlite3 '%s' \"UPDATE entries SET subject = '' WHERE seq = 2\"",
                 out, out);
        assert_int_equal(system(cmd), 0);
    }
    assert_int_equal(audit_verify_archive(f->dir, out, NULL, 0, &check, &em), CF_ERR_AUTH);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr),
        cmocka_unit_test_setup_teardown(test_selectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_derived, setup, teardown),
        cmocka_unit_test_setup_teardown(test_people_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_archive, setup, teardown),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
