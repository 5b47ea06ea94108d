/*
 * pwhash.h - Argon2id hashing and verification on a bounded worker pool
 * (DESIGN.md section 5).
 *
 * At most `workers` hashes run at once, so memory can never exceed
 * workers x memlimit; at most `queue_max` jobs wait, beyond which a submit
 * fails with CF_ERR_LIMIT and the caller answers 503 with Retry-After.  A
 * login flood queues or is refused; it never exhausts memory.
 */
#ifndef COFFRE_PWHASH_H
#define COFFRE_PWHASH_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "err.h"

/* Passwords: measured in raw bytes before anything else.  64 bytes of
 * UTF-8 leave room for long passphrases; longer ones buy nothing. */
#define PASSWORD_MIN_BYTES 8
#define PASSWORD_MAX_BYTES 128
#define PWHASH_STR_BYTES crypto_pwhash_STRBYTES

struct pwhash_opts {
    unsigned workers;              /* 0: 2 */
    unsigned queue_max;            /* 0: 256 */
    unsigned long long opslimit;   /* 0: 2 (t=2, OWASP's minimum) */
    size_t memlimit;               /* 0: 19 MiB */
};

enum pwhash_op { PWHASH_HASH, PWHASH_VERIFY };

/* A job: owned by the caller from submit to done, which is called exactly
 * once, from a worker thread.  The password is wiped before done. */
struct pwhash_job {
    enum pwhash_op op;
    char password[PASSWORD_MAX_BYTES + 1];
    char hash[PWHASH_STR_BYTES];   /* VERIFY: in; HASH: out */
    int ok;                        /* VERIFY: the password matched */
    int needs_rehash;              /* VERIFY: hash made with other parameters */
    int rehash;                    /* VERIFY, set by the caller: when it matched
                                      and needs_rehash, also hash it anew ... */
    char new_hash[PWHASH_STR_BYTES];   /* ... here ("" when not done) */
    void (*done)(struct pwhash_job *j, enum cf_err rc);
    void *arg;
};

struct pwhash_pool;

enum cf_err pwhash_start(const struct pwhash_opts *o, struct pwhash_pool **out,
                         struct cf_errmsg *em) WARN_UNUSED;
/* Stops after the queued jobs are done.  NULL is a no-op. */
void pwhash_stop(struct pwhash_pool *p);

/* Queues j.  CF_ERR_LIMIT when the queue is full, CF_ERR_INPUT when the
 * password is empty or too long (j untouched, done not called). */
enum cf_err pwhash_submit(struct pwhash_pool *p, struct pwhash_job *j)
    WARN_UNUSED;
/* Runs j on the pool and waits (CLI, tests); j->done may be NULL. */
enum cf_err pwhash_run(struct pwhash_pool *p, struct pwhash_job *j) WARN_UNUSED;

/* A hash of a random password with the pool's parameters: verified
 * against when the account is unknown, so that costs the same. */
const char *pwhash_dummy(const struct pwhash_pool *p);

size_t pwhash_queue_depth(struct pwhash_pool *p);
unsigned pwhash_workers(const struct pwhash_pool *p);
/* Upper bound of the memory Argon2id may hold at once (workers x memlimit). */
size_t pwhash_memory_bound(const struct pwhash_pool *p);

#endif
