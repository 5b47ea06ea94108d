/*
 * test_policy.c - the role x kind matrix, generated from the policy table:
 * for every role and every kind of record, a subject related to the
 * principal as the rule requires is allowed with exactly the rule's fields,
 * an unrelated one is denied, and a pair without a rule is denied - for
 * each action (read, write, export) of the table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/policy.c"
#include "testutil.h"

enum { E1, E2, C1, C2, C3, S1, S2, S3, G1, G2, G3, L1, L3, T1, O1, O2, TT1, TT2, X1, SX, NIDS };
static char id[NIDS][RECORD_ID_HEX + 1];
static enum record_kind kind_of[NIDS];
static struct records *r;
static char root[300];

static void
add(int who, enum record_kind k, const char *p0, const char *p1, const char *comp,
    const char *const *values)
{
    struct cf_errmsg em = { "" };
    struct record_add in = { .kind = k, .compartment = comp, .parent = { p0, p1 } };
    size_t i;

    for (i = 0; i < records_field_count(k) && values[i] != NULL; i++)
        in.value[i] = values[i];
    if (records_add(r, &in, id[who], &em) != CF_OK)
        fail_msg("add: %s", em.msg);
    kind_of[who] = k;
}

static int
setup(void **state)
{
    static const char *const codes[] = { "10", "02" };
    struct cf_errmsg em = { "" };
    uint8_t seed[32];
    char dir[320];

    (void)state;
    snprintf(root, sizeof root, "%s", tu_tmpdir());
    snprintf(dir, sizeof dir, "%s/data", root);
    assert_int_equal(records_init(dir, codes, 2, seed, &em), CF_OK);
    assert_int_equal(records_open(dir, NULL, &r, &em), CF_OK);
    add(E1, REC_ESTABLISHMENT, NULL, NULL, "10", (const char *const[]){ "0999001W", "Collège Un", NULL });
    add(E2, REC_ESTABLISHMENT, NULL, NULL, "10", (const char *const[]){ "0999002X", "Collège Deux", NULL });
    add(X1, REC_ESTABLISHMENT, NULL, NULL, "02", (const char *const[]){ "0999010F", "Lycée Ailleurs", NULL });
    add(C1, REC_CLASS, id[E1], NULL, NULL, (const char *const[]){ "6A", NULL });
    add(C2, REC_CLASS, id[E1], NULL, NULL, (const char *const[]){ "6B", NULL });
    add(C3, REC_CLASS, id[E2], NULL, NULL, (const char *const[]){ "5A", NULL });
    add(S1, REC_STUDENT, id[E1], id[C1], NULL,
        (const char *const[]){ "0999000001S", "UN", "Élève", "2013-01-01", "1 rue A, 99001 X", "un@e.invalid", NULL });
    add(S2, REC_STUDENT, id[E1], id[C2], NULL,
        (const char *const[]){ "0999000002T", "DEUX", "Élève", "2013-01-02", NULL, NULL, NULL });
    add(S3, REC_STUDENT, id[E2], id[C3], NULL,
        (const char *const[]){ "0999000005W", "TROIS", "Élève", "2013-01-03", NULL, NULL, NULL });
    add(SX, REC_STUDENT, id[X1], NULL, NULL,
        (const char *const[]){ "0999000007Y", "AILLEURS", "Élève", "2013-01-07", NULL, NULL, NULL });
    add(G1, REC_GUARDIAN, NULL, NULL, "10", (const char *const[]){ "UN", "Parent", "0601020304", NULL });
    add(G2, REC_GUARDIAN, NULL, NULL, "10", (const char *const[]){ "DEUX", "Parent", NULL });
    add(G3, REC_GUARDIAN, NULL, NULL, "10", (const char *const[]){ "TROIS", "Parent", NULL });
    add(L1, REC_GUARDIAN_LINK, id[G1], id[S1], NULL, (const char *const[]){ "mère", NULL });
    add(L3, REC_GUARDIAN_LINK, id[G3], id[S3], NULL, (const char *const[]){ "père", NULL });
    {
        char gl2[RECORD_ID_HEX + 1];
        struct record_add in = { .kind = REC_GUARDIAN_LINK, .parent = { id[G2], id[S2] },
                                 .value = { "mère" } };
        assert_int_equal(records_add(r, &in, gl2, &em), CF_OK);
    }
    add(T1, REC_STAFF, id[E1], NULL, NULL,
        (const char *const[]){ "PROF", "Un", "prof.un@ac.invalid", "professeur", NULL });
    add(O1, REC_STAFF, id[E1], NULL, NULL,
        (const char *const[]){ "SECR", "Un", "secr.un@ac.invalid", "secrétariat", NULL });
    add(O2, REC_STAFF, id[E2], NULL, NULL,
        (const char *const[]){ "SECR", "Deux", "secr.deux@ac.invalid", "secrétariat", NULL });
    add(TT1, REC_TEACHING, id[T1], id[C1], NULL, (const char *const[]){ "mathématiques", NULL });
    {
        /* a teacher of E2 teaching C3, for the staff rule's unrelated case */
        char t2[RECORD_ID_HEX + 1];
        struct record_add in = { .kind = REC_STAFF, .parent = { id[E2] },
                                 .value = { "PROF", "Deux", "prof.deux@ac.invalid", "professeure" } };
        assert_int_equal(records_add(r, &in, t2, &em), CF_OK);
        add(TT2, REC_TEACHING, t2, id[C3], NULL, (const char *const[]){ "lettres", NULL });
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    records_close(r);
    tu_rmrf(root);
    return 0;
}

/* For each role: who it is, and per kind a related and an unrelated subject
 * (-1: the role has no person of that kind / no such case). */
struct casedef {
    enum account_role role;
    int person;            /* index in id[], -1 for none */
    int establishment;     /* index, -1 for none */
    int related[REC_KIND_COUNT], unrelated[REC_KIND_COUNT];
};

#define NONE -1
static const struct casedef cases[] = {
    { ROLE_STUDENT, S1, E1,
      { [REC_ESTABLISHMENT] = E1, [REC_CLASS] = C1, [REC_STUDENT] = S1, [REC_GUARDIAN] = G1,
        [REC_GUARDIAN_LINK] = L1, [REC_STAFF] = O1, [REC_TEACHING] = TT1 },
      { [REC_ESTABLISHMENT] = E2, [REC_CLASS] = C3, [REC_STUDENT] = S2, [REC_GUARDIAN] = G2,
        [REC_GUARDIAN_LINK] = L3, [REC_STAFF] = O2, [REC_TEACHING] = TT2 } },
    { ROLE_GUARDIAN, G1, NONE,
      { [REC_ESTABLISHMENT] = E1, [REC_CLASS] = C1, [REC_STUDENT] = S1, [REC_GUARDIAN] = G1,
        [REC_GUARDIAN_LINK] = L1, [REC_STAFF] = O1, [REC_TEACHING] = TT1 },
      { [REC_ESTABLISHMENT] = E2, [REC_CLASS] = C3, [REC_STUDENT] = S2, [REC_GUARDIAN] = G2,
        [REC_GUARDIAN_LINK] = L3, [REC_STAFF] = O2, [REC_TEACHING] = TT2 } },
    { ROLE_TEACHER, T1, E1,
      { [REC_ESTABLISHMENT] = E1, [REC_CLASS] = C1, [REC_STUDENT] = S1, [REC_GUARDIAN] = G1,
        [REC_GUARDIAN_LINK] = L1, [REC_STAFF] = O1, [REC_TEACHING] = TT1 },
      { [REC_ESTABLISHMENT] = E2, [REC_CLASS] = C2, [REC_STUDENT] = S2, [REC_GUARDIAN] = G2,
        [REC_GUARDIAN_LINK] = L3, [REC_STAFF] = O2, [REC_TEACHING] = TT2 } },
    { ROLE_STAFF, O1, E1,
      { [REC_ESTABLISHMENT] = E1, [REC_CLASS] = C1, [REC_STUDENT] = S1, [REC_GUARDIAN] = G1,
        [REC_GUARDIAN_LINK] = L1, [REC_STAFF] = T1, [REC_TEACHING] = TT1 },
      { [REC_ESTABLISHMENT] = E2, [REC_CLASS] = C3, [REC_STUDENT] = S3, [REC_GUARDIAN] = G3,
        [REC_GUARDIAN_LINK] = L3, [REC_STAFF] = O2, [REC_TEACHING] = TT2 } },
    { ROLE_ACADEMIE_ADMIN, NONE, NONE,
      { [REC_ESTABLISHMENT] = E1, [REC_CLASS] = C1, [REC_STUDENT] = S1, [REC_GUARDIAN] = G1,
        [REC_GUARDIAN_LINK] = L1, [REC_STAFF] = O1, [REC_TEACHING] = TT1 },
      { [REC_ESTABLISHMENT] = E2, [REC_CLASS] = C3, [REC_STUDENT] = SX, [REC_GUARDIAN] = G3,
        [REC_GUARDIAN_LINK] = L3, [REC_STAFF] = O2, [REC_TEACHING] = TT2 } },
    { ROLE_DPO, NONE, NONE,
      { [REC_ESTABLISHMENT] = E1, [REC_CLASS] = C1, [REC_STUDENT] = S1, [REC_GUARDIAN] = G1,
        [REC_GUARDIAN_LINK] = L1, [REC_STAFF] = O1, [REC_TEACHING] = TT1 },
      { [REC_ESTABLISHMENT] = E2, [REC_CLASS] = C3, [REC_STUDENT] = S3, [REC_GUARDIAN] = G3,
        [REC_GUARDIAN_LINK] = L3, [REC_STAFF] = O2, [REC_TEACHING] = TT2 } },
};

static void
principal(const struct casedef *cd, struct policy_principal *p)
{
    memset(p, 0, sizeof *p);
    p->role = cd->role;
    snprintf(p->compartment, sizeof p->compartment, "10");
    if (cd->person != NONE)
        memcpy(p->person, id[cd->person], sizeof p->person);
    if (cd->establishment != NONE)
        memcpy(p->establishment, id[cd->establishment], sizeof p->establishment);
}

static void
check_for(const struct policy_principal *p, int who, enum record_kind k, enum policy_action act,
          int want_allowed, uint32_t want_mask, const char *label)
{
    struct record *subject = malloc(sizeof *subject);
    struct cf_errmsg em = { "" };
    const char *why = "";
    uint32_t mask = 0xdead;
    enum cf_err rc;

    assert_non_null(subject);
    assert_int_equal(records_get(r, kind_of[who], id[who], 0, subject, &em), CF_OK);
    assert_int_equal(subject->present, 0);           /* the header only */
    rc = act == POLICY_READ ? policy_check(r, p, subject, &mask, &why)
                            : policy_check_for(r, p, subject, act, &mask, &why);
    if ((rc == CF_OK) != want_allowed)
        fail_msg("%s: %s, action %d on a %s: %s (%s)", label, account_role_name(p->role),
                 (int)act, records_kind_name(k), rc == CF_OK ? "allowed" : "denied", why);
    assert_int_equal(mask, want_allowed ? want_mask : 0);
    free(subject);
}

static void
check(const struct policy_principal *p, int who, enum record_kind k, int want_allowed,
      uint32_t want_mask, const char *label)
{
    check_for(p, who, k, POLICY_READ, want_allowed, want_mask, label);
}

static void
test_matrix_from_the_table(void **state)
{
    size_t c;
    int k, a, cells = 0, allowed[POLICY_ACTION_COUNT] = { 0 };

    (void)state;
    for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct policy_principal p;

        principal(&cases[c], &p);
        for (a = 0; a < POLICY_ACTION_COUNT; a++)
            for (k = 0; k < REC_KIND_COUNT; k++) {
                enum policy_relation rel;
                uint32_t mask;
                int has = policy_rule_for(cases[c].role, (enum record_kind)k,
                                          (enum policy_action)a, &rel, &mask) == 0;

                check_for(&p, cases[c].related[k], (enum record_kind)k, (enum policy_action)a,
                          has, has ? mask : 0, "related");
                check_for(&p, cases[c].unrelated[k], (enum record_kind)k, (enum policy_action)a,
                          0, 0, "unrelated");
                cells += 2;
                allowed[a] += has;
            }
    }
    /* the table is not empty, and not everything is allowed */
    assert_true(allowed[POLICY_READ] >= 10);
    assert_true(allowed[POLICY_WRITE] >= 5);
    assert_true(allowed[POLICY_EXPORT] >= 2);
    assert_true(cells > 2 * (allowed[0] + allowed[1] + allowed[2]));
}

static void
test_masks_and_compartments(void **state)
{
    struct policy_principal p;
    enum policy_relation rel;
    uint32_t mask;
    int addr = records_field_index(REC_STUDENT, "address");
    int birth = records_field_index(REC_STUDENT, "birth_date");

    (void)state;
    /* a teacher never sees a pupil's home address or birth date */
    assert_int_equal(policy_rule(ROLE_TEACHER, REC_STUDENT, &rel, &mask), 0);
    assert_false(mask & (1u << addr));
    assert_false(mask & (1u << birth));
    assert_true(mask & (1u << records_field_index(REC_STUDENT, "family_name")));
    /* administrators and the DPO read no record, and write none; the DPO
     * exports none either (it approves, it does not request) */
    for (int k = 0; k < REC_KIND_COUNT; k++) {
        assert_int_equal(policy_rule(ROLE_ACADEMIE_ADMIN, (enum record_kind)k, &rel, &mask), -1);
        assert_int_equal(policy_rule(ROLE_DPO, (enum record_kind)k, &rel, &mask), -1);
        assert_int_equal(policy_rule_for(ROLE_ACADEMIE_ADMIN, (enum record_kind)k, POLICY_WRITE,
                                         &rel, &mask), -1);
        assert_int_equal(policy_rule_for(ROLE_DPO, (enum record_kind)k, POLICY_EXPORT, &rel,
                                         &mask), -1);
    }
    /* only staff writes records, within its establishment; a guardian
     * updates only its own contact details and creates nothing; teachers
     * and pupils write nothing */
    assert_true(policy_may_create(ROLE_STAFF, REC_STUDENT));
    assert_true(policy_may_create(ROLE_STAFF, REC_GUARDIAN));
    assert_true(policy_may_create(ROLE_STAFF, REC_GUARDIAN_LINK));
    assert_true(policy_may_create(ROLE_STAFF, REC_CLASS));
    assert_false(policy_may_create(ROLE_STAFF, REC_STAFF));
    assert_false(policy_may_create(ROLE_STAFF, REC_ESTABLISHMENT));
    assert_false(policy_may_create(ROLE_GUARDIAN, REC_GUARDIAN));
    assert_int_equal(policy_rule_for(ROLE_GUARDIAN, REC_GUARDIAN, POLICY_WRITE, &rel, &mask), 0);
    assert_int_equal(mask, (1u << records_field_index(REC_GUARDIAN, "phone")) |
                           (1u << records_field_index(REC_GUARDIAN, "email")) |
                           (1u << records_field_index(REC_GUARDIAN, "address")));
    for (int k = 0; k < REC_KIND_COUNT; k++)
        for (int a = POLICY_WRITE; a < POLICY_ACTION_COUNT; a++) {
            assert_int_equal(policy_rule_for(ROLE_TEACHER, (enum record_kind)k,
                                             (enum policy_action)a, &rel, &mask), -1);
            assert_int_equal(policy_rule_for(ROLE_STUDENT, (enum record_kind)k,
                                             (enum policy_action)a, &rel, &mask), -1);
        }
    /* an académie admin's export leaves the home address out */
    assert_int_equal(policy_rule_for(ROLE_ACADEMIE_ADMIN, REC_STUDENT, POLICY_EXPORT, &rel, &mask), 0);
    assert_false(mask & (1u << addr));
    /* another académie's establishment: denied even to its "staff" */
    principal(&cases[3], &p);
    memcpy(p.establishment, id[X1], sizeof p.establishment);
    check(&p, X1, REC_ESTABLISHMENT, 0, 0, "other compartment");
    /* the printed table names every rule */
    {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        policy_print(f);
        fclose(f);
        assert_non_null(strstr(buf, "| teacher | student | teaches the class (the pupil's, for a pupil) | ine,family_name,given_names,email | - | - |"));
        assert_non_null(strstr(buf, "| staff | student | same establishment | all | all | all |"));
        free(buf);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix_from_the_table),
        cmocka_unit_test(test_masks_and_compartments),
    };

    return cmocka_run_group_tests_name("policy", tests, setup, teardown);
}
