/*
 * policy.h - who may read what (DESIGN.md section 7): roles,
 * relationships and field masks, in one table (policy.c).
 *
 * Every read names its subject; the policy answers yes or no and which
 * fields, before anything is decrypted: the caller opens only the fields of
 * the mask (records_get's mask), so masked fields are never decrypted.  It
 * looks at the subject's header (ids, parents, compartment: no personal
 * data) and at relationship rows (guardian links, teachings).
 */
#ifndef COFFRE_POLICY_H
#define COFFRE_POLICY_H

#include <stdint.h>
#include <stdio.h>

#include "account.h"
#include "err.h"
#include "records.h"

/* Who is asking: from the authenticated account. */
struct policy_principal {
    enum account_role role;
    char compartment[ACADEMIE_CODE_BYTES + 1];
    char person[RECORD_ID_HEX + 1];          /* "" for administrative roles */
    char establishment[RECORD_ID_HEX + 1];   /* "" when none */
};

/* The relationship a rule requires between the principal and the subject. */
enum policy_relation {
    REL_SELF,                 /* the subject is the principal's own record */
    REL_GUARDIAN_OF,          /* a guardian link: principal -> student */
    REL_TEACHES,              /* the subject (student, class) is in a class the principal teaches */
    REL_TEACHES_CHILD,        /* the subject (guardian) has a child in such a class */
    REL_SAME_ESTABLISHMENT,   /* the subject belongs to the principal's establishment */
    REL_CHILD_IN_ESTABLISHMENT, /* the subject (guardian) has a child in it */
    REL_SAME_ACADEMIE         /* the subject is of the principal's académie */
};

/* What the principal means to do with the subject: each rule of the table
 * names its fields per action. */
enum policy_action { POLICY_READ, POLICY_WRITE, POLICY_EXPORT, POLICY_ACTION_COUNT };

void policy_principal_of(const struct account *a, struct policy_principal *out);

/*
 * May p read the record whose header (kind, id, parents, compartment: as
 * records_get returns with mask 0) is subject?  CF_OK with *mask set to the
 * fields it may see; CF_ERR_DENIED otherwise (*mask 0, *why a static
 * reason for the log: never personal data).  Reads relationship rows
 * through r.
 */
enum cf_err policy_check(struct records *r, const struct policy_principal *p,
                         const struct record *subject, uint32_t *mask,
                         const char **why) WARN_UNUSED;

/* The same for an action: POLICY_WRITE's mask is the fields p may set
 * (checked on the record before a change, and on a new record inside the
 * transaction that creates it, rolled back when denied); POLICY_EXPORT's
 * the fields an approved export carries. */
enum cf_err policy_check_for(struct records *r, const struct policy_principal *p,
                             const struct record *subject, enum policy_action act,
                             uint32_t *mask, const char **why) WARN_UNUSED;

/* The table as Markdown (role, resource, relationship, fields): the docs
 * print it, and the matrix test walks it. */
void policy_print(FILE *out);

/* The rule for (role, kind): relation and field mask; -1 when none. */
int policy_rule(enum account_role role, enum record_kind kind,
                enum policy_relation *rel, uint32_t *mask);
/* The rule for (role, kind, action); -1 when none. */
int policy_rule_for(enum account_role role, enum record_kind kind, enum policy_action act,
                    enum policy_relation *rel, uint32_t *mask);
/* 1 when role may create records of kind (its write fields are "all"). */
int policy_may_create(enum account_role role, enum record_kind kind);

#endif
