/*
 * keyring.h - the node's keys (DESIGN.md section 5).
 *
 * A keyring file (mode 0600, never in the store) holds one key-encryption
 * key (KEK) per compartment (an académie code) and the node's audit-signing
 * seed with its epoch.  Data keys live in the store, wrapped under their
 * compartment's KEK; the keyring unwraps and holds them.  Every key sits in
 * sodium_malloc'd memory (guard pages, mlock, no core dump) and is zeroed
 * when freed.  This is the only module that holds key bytes; others borrow
 * a pointer for one call.
 */
#ifndef COFFRE_KEYRING_H
#define COFFRE_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define KEYRING_KEY_BYTES   32
#define KEYRING_SEED_BYTES  32
/* Wrapped data key: nonce | key | tag. */
#define KEYRING_WRAPPED_BYTES (24 + KEYRING_KEY_BYTES + 16)
/* Data-key versions one compartment may accumulate through rotations. */
#define KEYRING_MAX_VERSIONS 1024

struct keyring;

/*
 * Creates a new keyring file at path holding a fresh KEK for each of the n
 * académie codes (already validated) and a fresh audit seed at epoch 0,
 * which is copied to seed_out for the auditor.  Refuses to overwrite an
 * existing file.  The file appears whole or not at all.
 */
enum cf_err keyring_create(const char *path, const char *const *codes,
                           size_t n, uint8_t seed_out[KEYRING_SEED_BYTES],
                           struct cf_errmsg *em) WARN_UNUSED;

/* Loads and checks a keyring file; *out is owned by the caller. */
enum cf_err keyring_load(const char *path, struct keyring **out,
                         struct cf_errmsg *em) WARN_UNUSED;

/* Wipes every key and frees kr; NULL is a no-op. */
void keyring_free(struct keyring *kr);

/*
 * Writes to path a keyring holding only `code`'s KEK, for a regional node:
 * it gets a new node id and its own fresh audit seed (copied to seed_out).
 * Refuses to overwrite.
 */
enum cf_err keyring_export(const struct keyring *kr, const char *code,
                           const char *path,
                           uint8_t seed_out[KEYRING_SEED_BYTES],
                           struct cf_errmsg *em) WARN_UNUSED;

/* Compartments held, in file order. */
size_t keyring_count(const struct keyring *kr);
const char *keyring_code_at(const struct keyring *kr, size_t i);
int keyring_has(const struct keyring *kr, const char *code);

/* Node id (hex, 32 chars) and the audit seed of the current epoch. */
const char *keyring_node_id(const struct keyring *kr);
uint64_t keyring_audit_epoch(const struct keyring *kr);
const uint8_t *keyring_audit_seed(const struct keyring *kr);

/*
 * Audit epochs (DESIGN.md section 8).  The next epoch's seed is a one-way
 * hash of the current one: seed(e+1) = BLAKE2b-256("coffre-audit-next-v1",
 * seed(e)).  keyring_audit_advance rewrites the keyring file atomically
 * (temporary file, fsync, rename, fsync of the directory) with epoch + 1 and
 * the next seed, then erases the old seed from memory.  On error nothing
 * changed, in memory or on disk.  Whoever steals the keyring later cannot
 * recompute an earlier seed.
 */
/* Wipes the audit seed from this copy of the keyring (its epoch stays):
 * every copy but the audit writer's drops it at once, so no process keeps
 * an old epoch's seed in memory.  keyring_audit_seed then returns NULL. */
void keyring_drop_audit_seed(struct keyring *kr);

void keyring_audit_next_seed(const uint8_t seed[KEYRING_SEED_BYTES],
                             uint8_t next[KEYRING_SEED_BYTES]);
enum cf_err keyring_audit_advance(struct keyring *kr, struct cf_errmsg *em)
    WARN_UNUSED;

/*
 * Data keys.  keyring_data_key_new draws a key for (code, version), holds
 * it, and writes its wrapped form to wrapped (KEYRING_WRAPPED_BYTES) for the
 * store.  keyring_data_key_install unwraps one read from the store: a
 * CF_ERR_CRYPTO there means the keyring does not belong to this store;
 * CF_ERR_EXISTS, that a different key is already held for that version.
 * On any error a key already held is left as it was.
 */
enum cf_err keyring_data_key_new(struct keyring *kr, const char *code,
                                 uint32_t version,
                                 uint8_t wrapped[KEYRING_WRAPPED_BYTES])
    WARN_UNUSED;
enum cf_err keyring_data_key_install(struct keyring *kr, const char *code,
                                     uint32_t version, const uint8_t *wrapped,
                                     size_t len) WARN_UNUSED;

/* Borrowed pointers, valid until keyring_free; NULL when not held. */
const uint8_t *keyring_data_key(const struct keyring *kr, const char *code,
                                uint32_t version);
const uint8_t *keyring_index_key(const struct keyring *kr, const char *code);
/* Newest data-key version held for code; 0 when none. */
uint32_t keyring_current_version(const struct keyring *kr, const char *code);

#endif
