/*
 * demo.h - deterministic synthetic people for demos, tests and benchmarks.
 *
 * Names look French, identifiers are valid (UAIs and INEs in the
 * non-existent département 099), e-mails end in .invalid, and the same
 * seed always gives the same people.  Everything goes through records_add,
 * in one transaction: a failure leaves the store as it was.
 */
#ifndef COFFRE_DEMO_H
#define COFFRE_DEMO_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "records.h"

struct demo_opts {
    const char *academie;          /* compartment for everything made */
    unsigned establishments;       /* 1 .. DEMO_MAX_ESTABLISHMENTS */
    unsigned students_per;         /* 1 .. DEMO_MAX_STUDENTS_PER */
    unsigned guardians_per;        /* 0, 1 or 2 per student; 2: one or two */
    uint64_t seed;
    unsigned first_establishment;  /* numbering offset, for several runs */
};

struct demo_counts {
    uint64_t establishments, classes, students, guardians, links, staff, teachings;
};

/* Called after each record is added, with what was added (tests use it to
 * know every seeded value); may be NULL. */
typedef void (*demo_fn)(void *arg, const struct record_add *in,
                        const char *id);

enum cf_err demo_generate(struct records *r, const struct demo_opts *o,
                          demo_fn fn, void *arg, struct demo_counts *counts,
                          struct cf_errmsg *em) WARN_UNUSED;

/*
 * Canary people for an establishment: n students with ordinary-looking
 * names, INEs and birth dates, in no class and with no guardian, drawn
 * from the CSPRNG (not the seed: nobody may predict them).  ids gets their
 * ids.  The caller registers them (records_canary_register) in the same
 * transaction.
 */
#define DEMO_MAX_CANARIES 1000
enum cf_err demo_canary_people(struct records *r, const char *establishment_id,
                               unsigned n, char (*ids)[RECORD_ID_HEX + 1],
                               struct cf_errmsg *em) WARN_UNUSED;

#endif
