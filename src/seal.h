/*
 * seal.h - field encryption, blind indexes and the one normalisation
 * function (DESIGN.md section 5).
 *
 * A sealed field is   format(1) | key version(4, big-endian) | nonce(24) |
 *                     XChaCha20-Poly1305-IETF ciphertext + tag(16)
 * with associated data binding (compartment, record kind, record id, field
 * name, key version): a ciphertext moved to another row, field, compartment
 * or key version does not open.  Keys come from the keyring; this module
 * never stores one.
 */
#ifndef COFFRE_SEAL_H
#define COFFRE_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct keyring;

#define SEAL_FORMAT_V1   1
#define SEAL_NONCE_BYTES 24
#define SEAL_TAG_BYTES   16
#define SEAL_HEADER_BYTES (1 + 4 + SEAL_NONCE_BYTES)
#define SEAL_OVERHEAD    (SEAL_HEADER_BYTES + SEAL_TAG_BYTES)
#define SEAL_ID_BYTES    16
#define SEAL_BIDX_MAX_BYTES 32

enum seal_norm {
    SEAL_NORM_TEXT,     /* NFC, spaces trimmed and runs collapsed */
    SEAL_NORM_FOLD,     /* TEXT, then case-folded: e-mails, logins */
    SEAL_NORM_UPPER,    /* TEXT, ASCII only, upper-cased: identifiers */
};

/*
 * Validates and normalises in[0..len) into out (NUL-terminated, *outlen
 * bytes without the NUL).  Rejects invalid UTF-8, NUL and control
 * characters, an empty result and a result longer than max bytes.  em names
 * `field` and the reason, never the value.  Writes nothing on error.
 */
enum cf_err seal_normalize(const char *field, const char *in, size_t len,
                           enum seal_norm mode, size_t max, char *out,
                           size_t cap, size_t *outlen, struct cf_errmsg *em)
    WARN_UNUSED;

/* What a ciphertext is bound to.  key_version is chosen by the sealer and
 * read from the header by the opener. */
struct seal_ad {
    const char *compartment;
    const char *kind;
    const uint8_t *record_id;       /* SEAL_ID_BYTES */
    const char *field;
};

/* Size of the sealed form of a ptlen-byte value. */
#define SEAL_SIZE(ptlen) ((ptlen) + SEAL_OVERHEAD)

/*
 * Seals pt under the compartment's data key `version` with the given nonce
 * (callers draw nonces in bulk from randombytes_buf).  out must hold
 * SEAL_SIZE(ptlen) bytes.  CF_ERR_CRYPTO if the keyring lacks that key.
 */
enum cf_err seal_field(const struct keyring *kr, const struct seal_ad *ad,
                       uint32_t version, const uint8_t nonce[SEAL_NONCE_BYTES],
                       const uint8_t *pt, size_t ptlen, uint8_t *out,
                       size_t cap) WARN_UNUSED;

/*
 * Opens a sealed field into pt (cap bytes; *ptlen set).  CF_ERR_CRYPTO when
 * the key is absent or the value was forged, moved or truncated; then pt and
 * *ptlen are left untouched.
 */
enum cf_err seal_open(const struct keyring *kr, const struct seal_ad *ad,
                      const uint8_t *in, size_t inlen, uint8_t *pt,
                      size_t cap, size_t *ptlen) WARN_UNUSED;

/* Key version named in a sealed value's header; 0 when malformed. */
uint32_t seal_version_of(const uint8_t *in, size_t inlen);

/*
 * Blind index: keyed BLAKE2b of (field, normalised value) under the
 * compartment's index key, truncated to outlen bytes (16 for unique
 * identifiers, fewer for low-entropy fields).  CF_ERR_CRYPTO without key.
 */
enum cf_err seal_blind_index(const struct keyring *kr, const char *compartment,
                             const char *field, const char *norm, size_t len,
                             uint8_t *out, size_t outlen) WARN_UNUSED;

#endif
