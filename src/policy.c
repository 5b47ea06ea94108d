/*
 * policy.c - the one table of who may read what, and the relationship
 * checks behind it (see policy.h).
 *
 * A role may read a kind of record only through a rule of the table below,
 * and only the fields the rule names.  No rule, no read.  The académie
 * administrator and the DPO read no records here: exports and scope reports
 * are their own, audited, paths.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "policy.h"
#include "banned.h"

/* Relationship rows looked at per check: a guardian's children, a
 * teacher's classes.  Far above real life, and a bound on the work. */
#define POLICY_MAX_LINKS 64

struct rule {
    enum account_role role;
    enum record_kind kind;
    enum policy_relation rel;
    /* per action (enum policy_action): comma-separated field names, "*"
     * for every field, NULL for none */
    const char *fields[POLICY_ACTION_COUNT];
};

/* READ: the fields served.  WRITE: the fields it may set; with "*" it may
 * also create records of the kind (the new record must then hold the
 * relationship) and, for guardian links, delete them.  EXPORT: the fields
 * an approved bulk export may carry (docs/policy.md). */
#define ALL "*"
#define NO  NULL
static const struct rule rules[] = {
    /* role               kind               relationship                read    write   export */
    { ROLE_STUDENT,  REC_STUDENT,       REL_SELF,                  { ALL, NO, NO } },
    { ROLE_STUDENT,  REC_ESTABLISHMENT, REL_SAME_ESTABLISHMENT,    { ALL, NO, NO } },
    { ROLE_GUARDIAN, REC_GUARDIAN,      REL_SELF,                  { ALL, "phone,email,address", NO } },
    { ROLE_GUARDIAN, REC_STUDENT,       REL_GUARDIAN_OF,           { ALL, NO, NO } },
    { ROLE_TEACHER,  REC_STUDENT,       REL_TEACHES,               { "ine,family_name,given_names,email", NO, NO } },
    { ROLE_TEACHER,  REC_GUARDIAN,      REL_TEACHES_CHILD,         { "family_name,given_names,phone,email", NO, NO } },
    { ROLE_TEACHER,  REC_CLASS,         REL_TEACHES,               { ALL, NO, NO } },
    { ROLE_TEACHER,  REC_STAFF,         REL_SAME_ESTABLISHMENT,    { "family_name,given_names,email,function", NO, NO } },
    { ROLE_TEACHER,  REC_ESTABLISHMENT, REL_SAME_ESTABLISHMENT,    { ALL, NO, NO } },
    { ROLE_STAFF,    REC_STUDENT,       REL_SAME_ESTABLISHMENT,    { ALL, ALL, ALL } },
    { ROLE_STAFF,    REC_GUARDIAN,      REL_CHILD_IN_ESTABLISHMENT, { ALL, ALL, NO } },
    { ROLE_STAFF,    REC_GUARDIAN_LINK, REL_SAME_ESTABLISHMENT,    { ALL, ALL, NO } },
    { ROLE_STAFF,    REC_CLASS,         REL_SAME_ESTABLISHMENT,    { ALL, ALL, NO } },
    { ROLE_STAFF,    REC_STAFF,         REL_SAME_ESTABLISHMENT,    { ALL, NO, NO } },
    { ROLE_STAFF,    REC_TEACHING,      REL_SAME_ESTABLISHMENT,    { ALL, NO, NO } },
    { ROLE_STAFF,    REC_ESTABLISHMENT, REL_SAME_ESTABLISHMENT,    { ALL, NO, NO } },
    { ROLE_ACADEMIE_ADMIN, REC_STUDENT, REL_SAME_ACADEMIE,         { NO, NO, "ine,family_name,given_names,birth_date,email" } },
};
#undef ALL
#undef NO

#define NRULES (sizeof rules / sizeof rules[0])

static const char *const relation_names[] = {
    [REL_SELF] = "self",
    [REL_GUARDIAN_OF] = "guardian of the pupil",
    [REL_TEACHES] = "teaches the class (the pupil's, for a pupil)",
    [REL_TEACHES_CHILD] = "teaches one of the guardian's children",
    [REL_SAME_ESTABLISHMENT] = "same establishment",
    [REL_CHILD_IN_ESTABLISHMENT] = "a child of the guardian in the establishment",
    [REL_SAME_ACADEMIE] = "same académie",
};

/* "a,b,c" -> bits of the kind's fields; "*" -> all. */
static uint32_t
mask_of(enum record_kind k, const char *fields)
{
    uint32_t m = 0;
    const char *p = fields;

    if (strcmp(fields, "*") == 0)
        return (1u << records_field_count(k)) - 1;
    while (*p != '\0') {
        char name[64];
        size_t n = strcspn(p, ",");
        int i;

        if (n < sizeof name) {
            memcpy(name, p, n);
            name[n] = '\0';
            i = records_field_index(k, name);
            if (i >= 0)
                m |= 1u << i;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return m;
}

int
policy_rule_for(enum account_role role, enum record_kind kind, enum policy_action act,
                enum policy_relation *rel, uint32_t *mask)
{
    size_t i;

    if ((unsigned)act >= POLICY_ACTION_COUNT)
        return -1;
    for (i = 0; i < NRULES; i++)
        if (rules[i].role == role && rules[i].kind == kind && rules[i].fields[act] != NULL) {
            *rel = rules[i].rel;
            *mask = mask_of(kind, rules[i].fields[act]);
            return 0;
        }
    return -1;
}

int
policy_rule(enum account_role role, enum record_kind kind, enum policy_relation *rel,
            uint32_t *mask)
{
    return policy_rule_for(role, kind, POLICY_READ, rel, mask);
}

int
policy_may_create(enum account_role role, enum record_kind kind)
{
    size_t i;

    for (i = 0; i < NRULES; i++)
        if (rules[i].role == role && rules[i].kind == kind &&
            rules[i].fields[POLICY_WRITE] != NULL && strcmp(rules[i].fields[POLICY_WRITE], "*") == 0)
            return 1;
    return 0;
}

void
policy_principal_of(const struct account *a, struct policy_principal *out)
{
    memset(out, 0, sizeof *out);
    out->role = a->role;
    memcpy(out->compartment, a->row.compartment, sizeof out->compartment);
    if (a->row.has_person)
        records_id_format(a->row.person, out->person);
    if (a->row.has_establishment)
        records_id_format(a->row.establishment, out->establishment);
}

/* ---- relationships ---------------------------------------------------- */

struct idset {
    char id[POLICY_MAX_LINKS][RECORD_ID_HEX + 1];
    size_t n;
    int slot;                  /* which parent of the visited rows to keep */
};

static int
keep_parent(void *arg, const struct record *rec)
{
    struct idset *s = arg;

    if (s->n < POLICY_MAX_LINKS && rec->parent[s->slot][0] != '\0')
        memcpy(s->id[s->n++], rec->parent[s->slot], RECORD_ID_HEX + 1);
    return s->n == POLICY_MAX_LINKS;
}

static int
in_set(const struct idset *s, const char *id)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        if (strcmp(s->id[i], id) == 0)
            return 1;
    return 0;
}

/* Rows of kind k whose parent[from] is id, keeping their parent[keep]. */
static int
related(struct records *r, enum record_kind k, int from, const char *id, int keep,
        struct idset *out)
{
    out->n = 0;
    out->slot = keep;
    return records_children(r, k, from, id, POLICY_MAX_LINKS, 0, keep_parent, out, NULL) ==
           CF_OK ? 0 : -1;
}

/* The establishment a subject belongs to: itself, or its first parent
 * (class, student, staff), or, for links and teachings, their parent's. */
static int
establishment_of(struct records *r, const struct record *subject, char out[RECORD_ID_HEX + 1])
{
    struct record *parent;
    int ok;

    switch (subject->kind) {
    case REC_ESTABLISHMENT:
        memcpy(out, subject->id, RECORD_ID_HEX + 1);
        return 0;
    case REC_CLASS:
    case REC_STUDENT:
    case REC_STAFF:
        memcpy(out, subject->parent[0], RECORD_ID_HEX + 1);
        return out[0] != '\0' ? 0 : -1;
    case REC_GUARDIAN_LINK:
    case REC_TEACHING:
        parent = malloc(sizeof *parent);
        ok = parent != NULL &&
             records_get(r, subject->kind == REC_TEACHING ? REC_STAFF : REC_STUDENT,
                         subject->parent[subject->kind == REC_TEACHING ? 0 : 1], 0, parent,
                         NULL) == CF_OK;
        if (ok)
            memcpy(out, parent->parent[0], RECORD_ID_HEX + 1);
        free(parent);
        return ok ? 0 : -1;
    default:
        return -1;
    }
}

/* The classes of the pupils linked to a guardian. */
static int
children_classes(struct records *r, const char *guardian, struct idset *classes,
                 struct idset *establishments)
{
    struct idset *kids = malloc(sizeof *kids);
    struct record *s = malloc(sizeof *s);
    size_t i;
    int rc = -1;

    classes->n = establishments->n = 0;
    if (kids == NULL || s == NULL || related(r, REC_GUARDIAN_LINK, 0, guardian, 1, kids) != 0)
        goto out;
    for (i = 0; i < kids->n; i++) {
        if (records_get(r, REC_STUDENT, kids->id[i], 0, s, NULL) != CF_OK)
            continue;
        if (s->parent[1][0] != '\0' && classes->n < POLICY_MAX_LINKS)
            memcpy(classes->id[classes->n++], s->parent[1], RECORD_ID_HEX + 1);
        if (establishments->n < POLICY_MAX_LINKS)
            memcpy(establishments->id[establishments->n++], s->parent[0], RECORD_ID_HEX + 1);
    }
    rc = 0;
out:
    free(kids);
    free(s);
    return rc;
}

static int
holds(struct records *r, const struct policy_principal *p, enum policy_relation rel,
      const struct record *subject)
{
    struct idset *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    char est[RECORD_ID_HEX + 1];
    int yes = 0;

    if (a == NULL || b == NULL)
        goto out;
    switch (rel) {
    case REL_SELF:
        yes = p->person[0] != '\0' && strcmp(p->person, subject->id) == 0;
        break;
    case REL_GUARDIAN_OF:
        yes = p->person[0] != '\0' && related(r, REC_GUARDIAN_LINK, 0, p->person, 1, a) == 0 &&
              in_set(a, subject->id);
        break;
    case REL_TEACHES:
        if (p->person[0] == '\0' || related(r, REC_TEACHING, 0, p->person, 1, a) != 0)
            break;
        yes = in_set(a, subject->kind == REC_CLASS ? subject->id : subject->parent[1]);
        break;
    case REL_TEACHES_CHILD: {
        struct idset *ests = malloc(sizeof *ests);
        size_t i;

        if (ests != NULL && p->person[0] != '\0' &&
            related(r, REC_TEACHING, 0, p->person, 1, a) == 0 &&
            children_classes(r, subject->id, b, ests) == 0)
            for (i = 0; i < b->n && !yes; i++)
                yes = in_set(a, b->id[i]);
        free(ests);
        break;
    }
    case REL_SAME_ESTABLISHMENT:
        yes = p->establishment[0] != '\0' && establishment_of(r, subject, est) == 0 &&
              strcmp(est, p->establishment) == 0;
        break;
    case REL_CHILD_IN_ESTABLISHMENT:
        yes = p->establishment[0] != '\0' && children_classes(r, subject->id, a, b) == 0 &&
              in_set(b, p->establishment);
        break;
    case REL_SAME_ACADEMIE:
        yes = 1;                 /* the compartment was compared before */
        break;
    }
out:
    free(a);
    free(b);
    return yes;
}

enum cf_err
policy_check_for(struct records *r, const struct policy_principal *p,
                 const struct record *subject, enum policy_action act, uint32_t *mask,
                 const char **why)
{
    enum policy_relation rel;
    uint32_t m;

    *mask = 0;
    if (strcmp(p->compartment, subject->compartment) != 0) {
        *why = "another académie";
        return CF_ERR_DENIED;
    }
    if (policy_rule_for(p->role, subject->kind, act, &rel, &m) != 0) {
        *why = "no rule for this role, kind and action";
        return CF_ERR_DENIED;
    }
    if (!holds(r, p, rel, subject)) {
        *why = relation_names[rel];
        return CF_ERR_DENIED;
    }
    *mask = m;
    *why = "allowed";
    return CF_OK;
}

enum cf_err
policy_check(struct records *r, const struct policy_principal *p,
             const struct record *subject, uint32_t *mask, const char **why)
{
    return policy_check_for(r, p, subject, POLICY_READ, mask, why);
}

static const char *
fields_text(const char *f)
{
    return f == NULL ? "-" : strcmp(f, "*") == 0 ? "all" : f;
}

void
policy_print(FILE *out)
{
    size_t i;

    fprintf(out, "| role | record | when | read | write | export |\n|---|---|---|---|---|---|\n");
    for (i = 0; i < NRULES; i++)
        fprintf(out, "| %s | %s | %s | %s | %s | %s |\n", account_role_name(rules[i].role),
                records_kind_name(rules[i].kind), relation_names[rules[i].rel],
                fields_text(rules[i].fields[POLICY_READ]),
                fields_text(rules[i].fields[POLICY_WRITE]),
                fields_text(rules[i].fields[POLICY_EXPORT]));
    fprintf(out, "\nAny pair or action not in the table: refused (\"-\": none).  "
                 "write \"all\" also allows creating records of the kind (the new record "
                 "must hold the relationship) and deleting guardian links.  export: the "
                 "fields of an approved bulk export (a second account approves it with a "
                 "fresh second factor).  Administrators (academie_admin), the DPO and "
                 "services read no record here: exports and scope reports are their own "
                 "audited paths.\n");
}
