/*
 * scope.h - breach scope: whose data was read, which fields, by whom, from
 * the audit trail (DESIGN.md section 8, docs/scope.md).
 *
 * Two parts:
 *   - the index: DIR/audit-index.db, derived from DIR/audit.db and nothing
 *     else (postings actor/session/subject/action -> entry, address ->
 *     entry, time -> entry).  audit_verify never reads it; it is caught up
 *     before every query and rebuilt from scratch by scope_reindex (or when
 *     it no longer matches the trail);
 *   - the query: selectors -> the matching entries -> the people they name
 *     (students, guardians, staff, resolved through records), what was
 *     served in clear and what was refused, and the incident measures and
 *     lockouts the trail records.
 *
 * Nothing here opens a sealed field except scope_write_people, and only
 * after its caller's audit callback made the opening durable.
 */
#ifndef COFFRE_SCOPE_H
#define COFFRE_SCOPE_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "audit.h"
#include "err.h"
#include "records.h"

struct records;

/* Accounts one query may name with --actor (a handful: one incident). */
#define SCOPE_ACTORS_MAX   16
/* Distinct subjects one scope may gather: ~80 bytes each, 4M = 320 MiB.
 * Beyond, narrow the scope (a window, an establishment). */
#define SCOPE_SUBJECTS_MAX (4u * 1024 * 1024)
/* Entries one scope may read: a bound on time, not on memory alone. */
#define SCOPE_ENTRIES_MAX  (64ull * 1024 * 1024)
/* Actors (accounts) a scope reports on, and incident measures listed. */
#define SCOPE_LIST_MAX     4096
/* How far back an alert's accesses are taken: the guard's long window. */
#define SCOPE_RULE_WINDOW_MS (24LL * 3600 * 1000)
/* Guardians listed for one minor in the people file. */
#define SCOPE_GUARDIANS_MAX 8

struct scope_query {
    const char *actor[SCOPE_ACTORS_MAX];   /* "acct:<32 hex>" or "cli" */
    size_t nactor;
    const char *session;                   /* hex prefix as in the trail, or NULL */
    int has_cidr;
    uint8_t lo[16], hi[16];                /* address range (IPv4 mapped to ::ffff:0:0/96) */
    int has_from, has_to;
    int64_t from_ms, to_ms;                /* inclusive */
    const char *compartment;               /* académie code, or NULL */
    const char *establishment;             /* establishment record id (hex), or NULL */
    const char *account_state;             /* e.g. "provisioned", or NULL */
    const char *rule;                      /* a guard rule, e.g. "budget-1h", or NULL */
};

/* Parses "A.B.C.D[/N]" or an IPv6 "X:...[/N]" into q's range.  0 or -1. */
int scope_parse_cidr(const char *text, struct scope_query *q);

/* Progress for long runs: what, done, total.  May be NULL. */
typedef void (*scope_progress_fn)(void *arg, const char *what, uint64_t done,
                                  uint64_t total);

/* Catches DIR/audit-index.db up with DIR/audit.db (rebuild != 0: from
 * scratch).  *indexed gets the entries now indexed (may be NULL). */
enum cf_err scope_reindex(const char *data_dir, int rebuild, scope_progress_fn pf,
                          void *parg, uint64_t *indexed, struct cf_errmsg *em) WARN_UNUSED;

enum scope_category { SCOPE_STUDENT, SCOPE_GUARDIAN, SCOPE_STAFF, SCOPE_CATEGORIES };

struct scope_person {
    uint8_t id[16];
    enum scope_category cat;
    char establishment[RECORD_ID_HEX + 1];   /* "" if none (a guardian: a child's) */
    char compartment[8];
    uint32_t fields;                         /* bits into scope_field_name() */
    uint32_t served;                         /* entries that served this person */
    uint32_t refused;                        /* refused reads naming them */
    int64_t first_ms, last_ms;
};

struct scope_actor {
    char actor[AUDIT_ACTOR_MAX + 1];
    char state[24];                          /* the account's state now, "" if unknown */
    uint64_t entries, served;
};

struct scope_event {                         /* a measure or a lockout */
    int64_t time_ms;
    char action[AUDIT_ACTION_MAX + 1];
    char actor[AUDIT_ACTOR_MAX + 1];
    char detail[AUDIT_FIELDS_MAX + 1];       /* incident scope, or the rule */
};

struct scope_result {
    char node[40];
    uint64_t entries;            /* entries matched */
    uint64_t served, refused;    /* of which served (outcome ok) / refused reads */
    int64_t first_ms, last_ms;   /* of the matched entries; 0 if none */
    uint64_t people_n[SCOPE_CATEGORIES];
    uint64_t clear_n;            /* people with at least one field served */
    uint64_t other_ids;          /* ids that are not people: classes, establishments,
                                    links, or records no longer in the store */
    struct scope_person *people; /* sorted by category then id */
    size_t npeople;
    struct scope_actor *actors;
    size_t nactors;
    struct scope_event *events;  /* incident commands and lockouts, by time */
    size_t nevents;
    double seconds;              /* query time, index catch-up excluded */
};

/*
 * Runs q over the trail of data_dir (the index caught up first), resolving
 * subjects through r.  CF_ERR_INPUT: no selector, or a contradictory one
 * (from after to); CF_ERR_NOTFOUND: no entry matches (em says so); CF_OK:
 * res filled (scope_result_free it).
 */
enum cf_err scope_run(const char *data_dir, struct records *r, const struct scope_query *q,
                      scope_progress_fn pf, void *parg, struct scope_result *res,
                      struct cf_errmsg *em) WARN_UNUSED;
void scope_result_free(struct scope_result *res);

const char *scope_category_name(enum scope_category c);
/* Field names any kind has, numbered for scope_person.fields. */
size_t scope_field_count(void);
const char *scope_field_name(size_t i);

/* The summary on f: Markdown text, or JSON (with every person's id). */
void scope_print(FILE *f, struct records *r, const struct scope_result *res, int json);

/* The same summary as a JSON object (the console's answer); NULL: out of memory. */
json_t *scope_json(struct records *r, const struct scope_result *res);

/* "YYYY-MM-DD[THH:MM[:SS[.mmm]]][Z]" (UTC) -> ms since 1970; a bare date
 * with end_of_day means its last millisecond.  0, or -1 when malformed. */
int scope_parse_time(const char *s, int end_of_day, int64_t *out);

/* Draft of the controller's notification (GDPR Art. 33(3)), written to a
 * temporary file then renamed to path.  selectors: how the scope was asked. */
enum cf_err scope_write_notification(const char *path, struct records *r,
                                     const struct scope_result *res, const char *selectors,
                                     const char *dpo_contact, struct cf_errmsg *em) WARN_UNUSED;

/*
 * Called before fields are opened for the people file: subjects (ids,
 * comma-separated, at most 31) and the field names about to be opened.
 * Must make an audit entry durable; non-zero stops everything (the file is
 * not written).
 */
typedef int (*scope_audit_fn)(void *arg, const char *subjects, const char *fields);

/* One CSV line per person to notify (a minor: one per guardian on record),
 * with the channel; temporary file, renamed to path at the end. */
enum cf_err scope_write_people(const char *path, struct records *r,
                               const struct scope_result *res, int64_t today_ms,
                               scope_audit_fn audit, void *aarg, uint64_t *lines,
                               struct cf_errmsg *em) WARN_UNUSED;

#endif
