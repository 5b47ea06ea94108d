/*
 * records.h - establishments, classes, students, guardians (and their links
 * to students), staff: validating, normalising, sealing and opening their
 * fields.
 *
 * A record is a kind, an opaque id, up to two parents and named fields.
 * Every field is sealed on its own (so a field mask can leave the others
 * closed); ids are random; lookups by INE, UAI or e-mail go through blind
 * indexes.  The kinds and their fields are one table in records.c.
 * This module never decides who may read what (policy does) and never
 * writes the audit trail (audit does); it opens only the fields asked for.
 */
#ifndef COFFRE_RECORDS_H
#define COFFRE_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "err.h"

#define RECORD_ID_HEX 32

enum record_kind {
    REC_ESTABLISHMENT,     /* parents: -                     fields: uai, name */
    REC_CLASS,             /* parents: establishment         fields: name */
    REC_STUDENT,           /* parents: establishment, class  fields: ine, family_name,
                                given_names, birth_date, address, email */
    REC_GUARDIAN,          /* parents: -                     fields: family_name,
                                given_names, phone, email, address */
    REC_GUARDIAN_LINK,     /* parents: guardian, student     fields: relationship */
    REC_STAFF,             /* parents: establishment         fields: family_name,
                                given_names, email, function */
    REC_TEACHING,          /* parents: staff, class          fields: subject */
    REC_KIND_COUNT
};

#define RECORD_ALL_FIELDS 0xffffffffu

/* What to add: values indexed like records_field_name(kind, i); NULL for an
 * absent optional field.  compartment is needed only for establishments and
 * guardians; the other kinds take their parent's. */
struct record_add {
    enum record_kind kind;
    const char *compartment;
    const char *parent[2];                 /* hex ids or NULL */
    const char *value[RECORD_MAX_FIELDS];
};

/* A record as read: only the fields in `present` were opened. */
struct record {
    enum record_kind kind;
    char id[RECORD_ID_HEX + 1];
    char parent[2][RECORD_ID_HEX + 1];     /* "" when none */
    char compartment[ACADEMIE_CODE_BYTES + 1];
    uint32_t kv;
    uint32_t present;                      /* bit i: value[i] opened */
    char value[RECORD_MAX_FIELDS][RECORD_FIELD_PT_MAX + 1];
};

struct records;
struct keyring;
struct store;

/* The kinds' schema. */
const char *records_kind_name(enum record_kind k);
size_t records_field_count(enum record_kind k);
const char *records_field_name(enum record_kind k, size_t i);
int records_field_index(enum record_kind k, const char *name);  /* -1 */

/*
 * Opens the store in data_dir with the keyring at keyring_path (NULL:
 * data_dir/keyring) and unwraps the data keys of every compartment the
 * keyring holds.  A keyring that does not open this store's keys, a missing
 * or newer store: CF_ERR_* with em naming the file and why.
 */
enum cf_err records_open(const char *data_dir, const char *keyring_path,
                         struct records **out, struct cf_errmsg *em)
    WARN_UNUSED;
void records_close(struct records *r);       /* NULL is a no-op */

/*
 * Takes the data directory's writer lock (DIR/serve.lock, flock): held by
 * `coffre serve` for its lifetime and by each audited CLI command, so that
 * one process at a time writes the audit trail and advances its epochs.
 * CF_ERR_DENIED when another process holds it.  *fd is the lock: close it
 * to release.
 */
enum cf_err records_lock_dir(const char *data_dir, int *fd,
                             struct cf_errmsg *em) WARN_UNUSED;

/* Creates data_dir, its keyring and its store, with data key version 1 per
 * académie.  Refuses an existing keyring.  seed_out gets the initial audit
 * seed for the auditor. */
enum cf_err records_init(const char *data_dir, const char *const *codes,
                         size_t n, uint8_t seed_out[32],
                         struct cf_errmsg *em) WARN_UNUSED;

const struct keyring *records_keyring(const struct records *r);
/* The open store, for modules that keep their own tables in it (accounts,
 * sessions); used by the thread that owns r. */
struct store *records_store(struct records *r);

/*
 * Sealed-fields blobs, for rows this module does not own (accounts): the
 * same format and associated data as records' own fields.
 */
struct records_blob {
    const char *kind;
    const char *compartment;
    const uint8_t *id;                  /* 16 bytes */
    uint32_t kv;                        /* sealing: the version to use */
    const char *const *names;           /* field names, by index */
    size_t nfields;
};
enum cf_err records_blob_seal(struct records *r, const struct records_blob *b,
                              char (*values)[RECORD_FIELD_PT_MAX + 1],
                              const size_t *len, uint32_t present,
                              uint8_t *out, size_t cap, size_t *outlen)
    WARN_UNUSED;
/* Opens the fields in mask; a value is left untouched when not opened. */
enum cf_err records_blob_open(struct records *r, const struct records_blob *b,
                              const uint8_t *blob, size_t bloblen,
                              uint32_t mask,
                              char (*values)[RECORD_FIELD_PT_MAX + 1],
                              uint32_t *present) WARN_UNUSED;

/* Transactions around multi-row changes; an import is one transaction.
 * bulk != 0: an import (store.h, STORE_TX_BULK): into an empty store,
 * unique values are checked at commit, which then fails as a whole. */
enum cf_err records_begin(struct records *r, int bulk) WARN_UNUSED;
enum cf_err records_commit(struct records *r, struct cf_errmsg *em) WARN_UNUSED;
void records_rollback(struct records *r);

/* Validates, seals and inserts; id_out gets the new id.  Nothing is written
 * on error; em names the field and why, never its value. */
enum cf_err records_add(struct records *r, const struct record_add *in,
                        char id_out[RECORD_ID_HEX + 1],
                        struct cf_errmsg *em) WARN_UNUSED;

/*
 * Changes a record: the fields whose bit is in `set` take value[i]
 * (validated and normalised as records_add does), those in `clear` are
 * removed (optional fields only), the others keep their values; every
 * field is then sealed again under the current data key, blind indexes
 * follow.  With set_parent1 a pupil's class becomes parent1 (NULL: none;
 * the class must be of the pupil's establishment).  Nothing is written on
 * error; em names the field and why, never its value.  CF_ERR_NOTFOUND:
 * no such record (or no such class); CF_ERR_EXISTS: a unique value (INE,
 * e-mail) already held by another record.
 */
struct record_edit {
    enum record_kind kind;
    const char *id;
    uint32_t set, clear;
    const char *value[RECORD_MAX_FIELDS];
    int set_parent1;
    const char *parent1;
};
enum cf_err records_update(struct records *r, const struct record_edit *in,
                           struct cf_errmsg *em) WARN_UNUSED;

/* Deletes a guardian link (the only kind removed through the API; people
 * and classes are kept: other rows and the audit trail name them).
 * CF_ERR_INPUT for another kind, CF_ERR_NOTFOUND when absent. */
enum cf_err records_delete(struct records *r, enum record_kind k, const char *id,
                           struct cf_errmsg *em) WARN_UNUSED;

/* Reads one record, opening only the fields whose bit is set in mask. */
enum cf_err records_get(struct records *r, enum record_kind k,
                        const char *id, uint32_t mask, struct record *out,
                        struct cf_errmsg *em) WARN_UNUSED;

/*
 * The same in two steps over one read of the store: records_get_kept reads
 * the header (like records_get with mask 0) and keeps the row;
 * records_open_kept then opens the fields in mask from that very row, in
 * place of a second read, even when other records were read in between
 * (the policy's relationship lookups).  out must be the record
 * records_get_kept filled; CF_ERR_INPUT if another row was kept since.
 */
enum cf_err records_get_kept(struct records *r, enum record_kind k, const char *id,
                             struct record *out, struct cf_errmsg *em) WARN_UNUSED;
enum cf_err records_open_kept(struct records *r, uint32_t mask, struct record *out,
                              struct cf_errmsg *em) WARN_UNUSED;

/* Exact lookup through a blind index (field "ine", "uai" or "email", as the
 * kind has), in every compartment this keyring holds. */
enum cf_err records_find(struct records *r, enum record_kind k,
                         const char *field, const char *value, uint32_t mask,
                         struct record *out, struct cf_errmsg *em)
    WARN_UNUSED;

/* Children of a record: rows of kind k whose parent[slot] is parent_id, at
 * most limit, each opened with mask.  fn returns non-zero to stop. */
typedef int (*records_fn)(void *arg, const struct record *rec);
/* The same, a page at a time: skips the first `offset` children. */
enum cf_err records_children_page(struct records *r, enum record_kind k, int slot,
                                  const char *parent_id, size_t offset, size_t limit,
                                  uint32_t mask, records_fn fn, void *arg,
                                  struct cf_errmsg *em) WARN_UNUSED;
enum cf_err records_children(struct records *r, enum record_kind k, int slot,
                             const char *parent_id, size_t limit,
                             uint32_t mask, records_fn fn, void *arg,
                             struct cf_errmsg *em) WARN_UNUSED;

/* Every establishment (public data: UAI, name, académie), at most limit. */
enum cf_err records_establishments(struct records *r, size_t limit,
                                   records_fn fn, void *arg,
                                   struct cf_errmsg *em) WARN_UNUSED;

/*
 * Key rotation.  records_rotate adds data-key version current+1 for the
 * compartment (durably) and returns it; new writes use it at once.
 * records_reseal re-seals up to batch rows still on older versions, in one
 * transaction, and sets *done to how many; call it until *done is 0.
 * Reads work throughout: old versions stay held.
 */
enum cf_err records_rotate(struct records *r, const char *compartment,
                           uint32_t *version, struct cf_errmsg *em)
    WARN_UNUSED;
enum cf_err records_reseal(struct records *r, const char *compartment,
                           size_t batch, size_t *done, struct cf_errmsg *em)
    WARN_UNUSED;
/* Rows of the compartment on data-key version kv, all kinds together. */
enum cf_err records_count_version(struct records *r, const char *compartment,
                                  uint32_t kv, uint64_t *count) WARN_UNUSED;

/*
 * Canary records (DESIGN.md section 7): the ids of people who belong to no
 * class and no guardian, kept as a sealed list (so a stolen store does not
 * say which people are canaries).  records_canary_register adds n ids of
 * one compartment; records_canaries visits every id of the compartments
 * this keyring holds.
 */
enum cf_err records_canary_register(struct records *r, const char *compartment,
                                    char (*ids)[RECORD_ID_HEX + 1], size_t n,
                                    struct cf_errmsg *em) WARN_UNUSED;
typedef int (*records_canary_fn)(void *arg, const uint8_t id[16]);
enum cf_err records_canaries(struct records *r, records_canary_fn fn, void *arg)
    WARN_UNUSED;

/* Id conversions (hex, lower-case). */
enum cf_err records_id_parse(const char *hex, uint8_t out[16]) WARN_UNUSED;
void records_id_format(const uint8_t id[16], char out[RECORD_ID_HEX + 1]);

#endif
