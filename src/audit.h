/*
 * audit.h - the audit trail: one durable, hash-chained entry per access,
 * signed checkpoints with a forward-secure key, and verification
 * (DESIGN.md section 8, docs/audit.md).
 *
 * The trail lives in its own SQLite file, DIR/audit.db, so its group
 * commits never wait on record writes.  A writer thread owns the file: it
 * takes every queued entry, writes them in one transaction with their chain
 * hashes (and a checkpoint when one is due), commits with one fsync, then
 * tells every submitter.  An access is served only after that.  If the trail
 * cannot be written, every queued and later entry fails: nothing is served.
 *
 * Entries carry opaque ids, action names, field names and outcomes - never
 * a name, an INE, an e-mail or a request body.
 */
#ifndef COFFRE_AUDIT_H
#define COFFRE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct keyring;

/*
 * Limits of one entry's strings, in bytes, without the terminating NUL
 * (each array below has one more byte).  Every string is printable ASCII
 * (0x20-0x7e): ids, names and addresses need nothing else, and a trail
 * without control bytes or encodings prints and greps safely.
 */
/* "acct:" + 32 hex = 37, "cli", or "". */
#define AUDIT_ACTOR_MAX     40
/* A hex prefix of the session token's hash: 32 hex tell sessions apart. */
#define AUDIT_SESSION_MAX   64
/* IPv6 text (45) with a zone id (up to 16): 64 with room. */
#define AUDIT_ADDR_MAX      64
/* Dotted action names, e.g. "incident.freeze-unactivated". */
#define AUDIT_ACTION_MAX    64
/* Opaque ids, comma-separated: 31 record ids of 32 hex.  An access to more
 * subjects writes several entries. */
#define AUDIT_SUBJECT_MAX   1024
/* Field names, comma-separated: every field of one record kind
 * (RECORD_MAX_FIELDS names, well under 32 bytes each). */
#define AUDIT_FIELDS_MAX    256
/* "ok", "denied", "failed", "throttled", "locked". */
#define AUDIT_OUTCOME_MAX   16

/* Defaults of struct audit_opts (a 0 there means the default). */
#define AUDIT_CHECKPOINT_ENTRIES_DEFAULT 1000
#define AUDIT_CHECKPOINT_MS_DEFAULT      1000
#define AUDIT_QUEUE_DEFAULT              65536
#define AUDIT_BATCH_DEFAULT              4096
/* Maxima: a checkpoint interval bounds what an intruder could rewrite
 * unsigned and what audit_open re-checks; the queue bounds memory (at most
 * AUDIT_QUEUE_MAX entries of at most ~1.5 KiB each); a batch bounds how
 * long one transaction holds the file. */
#define AUDIT_CHECKPOINT_ENTRIES_MAX     1000000
#define AUDIT_CHECKPOINT_MS_MAX          3600000
#define AUDIT_QUEUE_MAX                  262144
#define AUDIT_BATCH_MAX                  65536

struct audit_entry {
    int64_t time_ms;                        /* ms since 1970; 0: set at submit */
    char actor[AUDIT_ACTOR_MAX + 1];        /* "acct:<32 hex>", "cli", or "" */
    char session[AUDIT_SESSION_MAX + 1];    /* hex prefix of the token hash, or "" */
    char addr[AUDIT_ADDR_MAX + 1];          /* client IP text, "" for the CLI */
    char action[AUDIT_ACTION_MAX + 1];      /* required: "login", "student.read", ... */
    char subject[AUDIT_SUBJECT_MAX + 1];    /* opaque ids, comma-separated, or "" */
    char fields[AUDIT_FIELDS_MAX + 1];      /* field names, comma-separated, or "" */
    char outcome[AUDIT_OUTCOME_MAX + 1];    /* required: "ok", "denied", "failed",
                                               "throttled", "locked" */
};

/* Every member 0 means its default; above its maximum, audit_open refuses. */
struct audit_opts {
    unsigned checkpoint_entries;   /* sign after this many new entries ... */
    unsigned checkpoint_ms;        /* ... or when the oldest unsigned entry is this old */
    unsigned queue_max;            /* entries waiting; more: CF_ERR_LIMIT */
    unsigned batch_max;            /* entries per transaction */
};

struct audit;

/*
 * Opens (creating or migrating) DIR/audit.db and starts the writer thread.
 * kr is borrowed until audit_close: the writer signs with its audit seed
 * and advances its epoch (keyring_audit_advance rewrites the keyring file),
 * so while the audit is open no other thread may call keyring_audit_* on
 * kr, and kr must be the only struct keyring of this file in the process
 * (another copy would keep an erased seed in memory).
 *
 * Refuses, with em naming why (CF_ERR_AUTH): an audit.db of another node; a
 * trail with fewer checkpoints than the keyring's epoch (checkpoints were
 * deleted); a keyring older than the trail or whose key the last checkpoint
 * did not announce; entries after the last checkpoint that do not chain.
 * When the last checkpoint was committed but the keyring not yet advanced
 * (a crash between the two), finishes the advance.
 */
enum cf_err audit_open(const char *data_dir, struct keyring *kr,
                       const struct audit_opts *o, struct audit **out,
                       struct cf_errmsg *em) WARN_UNUSED;

typedef void (*audit_done_fn)(void *arg, enum cf_err rc);

/*
 * Queues a copy of e.  On CF_OK, done(arg, rc) is called exactly once, from
 * the writer thread, after the batch holding e was committed and fsynced
 * (rc CF_OK: serve the access) or could not be (CF_ERR_STORE: do not).  On
 * any other return done is never called:
 *   CF_ERR_INPUT  e, done or a string of e invalid (not NUL-terminated within
 *                 its array, a byte outside 0x20-0x7e, action or outcome
 *                 empty, time_ms < 0);
 *   CF_ERR_LIMIT  queue_max entries already wait (answer 503);
 *   CF_ERR_STORE  the trail has failed or is closing: nothing may be served;
 *   CF_ERR_NOMEM  the copy could not be allocated.
 * Never waits for the disk.  done runs on the writer thread with no audit
 * lock held: it must be quick, may call audit_submit, and must not call
 * audit_append or audit_close.
 */
enum cf_err audit_submit(struct audit *a, const struct audit_entry *e,
                         audit_done_fn done, void *arg) WARN_UNUSED;

/* Submits e and waits until it is durable: for the CLI and tests.  Same
 * results as audit_submit, with em filled on error.  Never call it from a
 * done callback (the writer would wait for itself). */
enum cf_err audit_append(struct audit *a, const struct audit_entry *e,
                         struct cf_errmsg *em) WARN_UNUSED;

/* Entries queued, not yet taken by the writer. */
size_t audit_queue_depth(struct audit *a);
/* Sequence number of the last durable entry (0: none). */
uint64_t audit_last_seq(struct audit *a);
/* CF_OK while entries can be written; CF_ERR_STORE once the trail failed
 * (for /healthz: a failed trail serves nothing until restarted). */
enum cf_err audit_status(struct audit *a);

/*
 * Stops accepting entries (audit_submit returns CF_ERR_STORE), writes every
 * queued one and calls its done, signs a final checkpoint covering every
 * entry and advances the keyring's epoch, stops the writer, closes the file
 * and frees a.  After a failure it signs nothing, but every done has still
 * been called when it returns.  Submitters must have stopped first.  NULL
 * is a no-op.
 */
void audit_close(struct audit *a);

struct audit_report {
    uint64_t entries;           /* entry rows read */
    uint64_t checkpoints;       /* checkpoint rows read */
    uint64_t epochs_checked;    /* checkpoints whose signature verified */
    uint64_t unsigned_tail;     /* entries after the last checkpoint (not a failure) */
    uint64_t keyring_epoch;     /* the keyring's audit epoch */
    uint64_t advance_pending;   /* 1: the last checkpoint is signed but the
                                   keyring not yet advanced (audit_open finishes it) */
    int seed_checked;           /* keys were checked against the auditor's seed */
    uint64_t archived;          /* entries 1..archived moved to archive files
                                   (audit archive): checked by audit_verify_archive */
    uint64_t first_bad_seq;     /* first entry not proven intact; 0: none */
    int64_t first_bad_epoch;    /* first bad checkpoint (numbered by epoch); -1: none */
    char why[256];              /* "" or the first fault, e.g. "entry 42: hash does not match" */
};

/*
 * Checks the whole trail of data_dir against the keyring at keyring_path
 * (NULL: DIR/keyring): every entry's chain hash and consecutive sequence,
 * every checkpoint's hash, signature and key chain (checkpoint e's public
 * key is the one checkpoint e-1 announced), that the checkpoints number
 * exactly the keyring's epoch and that the last announced key is the
 * keyring's own.  With initial_seed (KEYRING_SEED_BYTES, the auditor's copy
 * from init; may be NULL) also that every epoch's key derives from it, which
 * no one holding a later keyring can fake.  Reads one snapshot, so it may
 * run while the daemon writes.
 *
 * CF_OK: intact, rep filled.  CF_ERR_AUTH: tampered; rep->why, em,
 * first_bad_seq and first_bad_epoch name the first fault.  Other codes: the
 * keyring or the file could not be read (em says why).
 */
enum cf_err audit_verify(const char *data_dir, const char *keyring_path,
                         const uint8_t *initial_seed,
                         struct audit_report *rep,
                         struct cf_errmsg *em) WARN_UNUSED;

/*
 * Retention (docs/audit.md, "Archiving").  An archive moves the oldest
 * entries out of the live trail into a file that audit_verify_archive can
 * still check; the live trail then starts at a base (the archived end, a
 * signed checkpoint) that audit_verify follows.  Three steps, so that the
 * trail names the file before anything leaves it:
 *   1. audit_archive_write: entries up to the last checkpoint before
 *      before_ms (never the trail's last checkpoint) go to `out` (checked
 *      as written, mode 0400, never overwritten); info says which and the
 *      file's BLAKE2b-256 digest;
 *   2. the caller appends an entry, action "audit.archive", fields
 *      "blake2b:<digest>", and waits until it is durable;
 *   3. audit_archive_commit removes them from the live trail and records
 *      the base, in one transaction.
 * The caller holds the data directory's lock (no server running).
 */
struct audit_archive_info {
    uint64_t from_seq, to_seq;      /* entries archived, inclusive */
    uint64_t entries, checkpoints;  /* in the file; checkpoints stay live too */
    char digest[65];                /* BLAKE2b-256 of the file, hex */
};

enum cf_err audit_archive_write(const char *data_dir, int64_t before_ms, const char *out,
                                struct audit_archive_info *info,
                                struct cf_errmsg *em) WARN_UNUSED;
enum cf_err audit_archive_commit(const char *data_dir, const struct audit_archive_info *info,
                                 struct cf_errmsg *em) WARN_UNUSED;
/* Checks an archive file against the live trail: its entries chain from
 * the signed hash before them to the signed hash at their end, its
 * checkpoints verify, and the trail (or one of the `others` archive files,
 * once a later archive took that entry) has the audit.archive entry naming
 * its digest.  CF_ERR_AUTH with em naming the fault. */
enum cf_err audit_verify_archive(const char *data_dir, const char *archive,
                                 const char *const *others, size_t nothers,
                                 struct audit_archive_info *info,
                                 struct cf_errmsg *em) WARN_UNUSED;

#endif
