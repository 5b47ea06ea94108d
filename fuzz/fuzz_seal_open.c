/*
 * fuzz_seal_open.c - seal_open against a real keyring (compartments 10, 01
 * and 24; data keys 10/v1, 10/v2 and 01/v1; 24 has none).
 *
 * Input: mode (1 byte, mod 3), then per mode:
 *  0 random   AD selector, record id (16), cap (2), the bytes to open;
 *  1 tamper   AD selector, record id (16), version selector, nonce (24),
 *             tamper op, position (2), plaintext: a value sealed here is
 *             altered (a bit flipped anywhere, cut short, extended, or
 *             opened under another compartment, kind, field or record id);
 *  2 round    as tamper without the op, cap (2): seal, then open.
 *
 * Invariants:
 *  - random bytes never open; an altered sealed value never opens; on
 *    every failure the result is CF_ERR_CRYPTO (or CF_ERR_INPUT for an AD
 *    the encoder refuses) and the output buffer and *ptlen are untouched;
 *  - an unaltered value opens, under its own AD only, to exactly its
 *    plaintext when cap holds it, and fails untouched when it does not;
 *  - seal_version_of is 0 exactly when the value is shorter than
 *    SEAL_OVERHEAD, not format 1 or names version 0, and such a value
 *    never opens.
 *
 * fuzz-max-len: 1200
 */
#include "fuzz.h"

#include <sodium.h>
#include <unistd.h>

#include "bounds.h"
#include "keyring.h"
#include "seal.h"

static struct keyring *kr;
static char tmpdir[256], krpath[300];

static const char *const comps[] = { "10", "01", "24", "99" };
static const char *const kinds[] = { "student", "account" };
static const char *const fields[] = { "login", "name" };

static void
cleanup(void)
{
    keyring_free(kr);
    kr = NULL;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const codes[] = { "10", "01", "24" };
    uint8_t seed[KEYRING_SEED_BYTES], wrapped[KEYRING_WRAPPED_BYTES];
    const char *base = getenv("TMPDIR");
    struct cf_errmsg em;

    (void)argc;
    (void)argv;
    FZ_CHECK(sodium_init() >= 0);
    snprintf(tmpdir, sizeof tmpdir, "%s/coffre-fuzz-XXXXXX", base != NULL ? base : "/tmp");
    FZ_CHECK(mkdtemp(tmpdir) != NULL);
    snprintf(krpath, sizeof krpath, "%s/keyring", tmpdir);
    FZ_CHECK(keyring_create(krpath, codes, 3, seed, &em) == CF_OK);
    FZ_CHECK(keyring_load(krpath, &kr, &em) == CF_OK);
    /* the keys are in memory now: leave nothing behind, even on a crash */
    unlink(krpath);
    rmdir(tmpdir);
    atexit(cleanup);
    FZ_CHECK(keyring_data_key_new(kr, "10", 1, wrapped) == CF_OK);
    FZ_CHECK(keyring_data_key_new(kr, "10", 2, wrapped) == CF_OK);
    FZ_CHECK(keyring_data_key_new(kr, "01", 1, wrapped) == CF_OK);
    sodium_memzero(seed, sizeof seed);
    return 0;
}

static void
read_ad(struct fz_in *in, struct seal_ad *ad, uint8_t id[SEAL_ID_BYTES])
{
    uint8_t sel = fz_u8(in);
    size_t got;
    const uint8_t *p = fz_take(in, SEAL_ID_BYTES, &got);

    ad->compartment = comps[sel & 3];
    ad->kind = kinds[(sel >> 2) & 1];
    ad->field = fields[(sel >> 3) & 1];
    memset(id, 0, SEAL_ID_BYTES);
    memcpy(id, p, got);
    ad->record_id = id;
}

/* Opens in[0..inlen) into a fresh cap-byte buffer; returns the result and
 * checks that a failure left the buffer and *ptlen untouched. */
static enum cf_err
open_checked(const struct seal_ad *ad, const uint8_t *in, size_t inlen,
             size_t cap, uint8_t **pt_out, size_t *ptlen)
{
    uint8_t *pt = malloc(cap > 0 ? cap : 1);    /* exactly cap */
    enum cf_err rc;
    size_t i;

    FZ_CHECK(pt != NULL);
    memset(pt, 0x5A, cap > 0 ? cap : 1);
    *ptlen = (size_t)-3;
    rc = seal_open(kr, ad, in, inlen, pt, cap, ptlen);
    if (seal_version_of(in, inlen) == 0)
        FZ_CHECK(rc == CF_ERR_CRYPTO);
    FZ_CHECK((seal_version_of(in, inlen) == 0) ==
             (inlen < SEAL_OVERHEAD || in[0] != SEAL_FORMAT_V1 ||
              (in[1] | in[2] | in[3] | in[4]) == 0));
    if (rc != CF_OK) {
        FZ_CHECK(rc == CF_ERR_CRYPTO || rc == CF_ERR_INPUT);
        FZ_CHECK(*ptlen == (size_t)-3);
        for (i = 0; i < cap; i++)
            FZ_CHECK(pt[i] == 0x5A);
        free(pt);
        *pt_out = NULL;
        return rc;
    }
    *pt_out = pt;
    return rc;
}

static void
mode_random(struct fz_in *in)
{
    struct seal_ad ad;
    uint8_t id[SEAL_ID_BYTES], *pt;
    size_t cap, len, ptlen;
    const uint8_t *bytes;

    read_ad(in, &ad, id);
    cap = fz_u16(in) % 1100;
    bytes = fz_take(in, SIZE_MAX, &len);
    FZ_CHECK(open_checked(&ad, bytes, len, cap, &pt, &ptlen) != CF_OK);
}

/* Reads the AD, version, nonce and (op, pos) or cap, then seals the rest of
 * the input (up to RECORD_FIELD_PT_MAX bytes) under a key the keyring
 * holds; *sealed has 8 spare bytes for mode_tamper to extend it. */
static void
seal_some(struct fz_in *in, struct seal_ad *ad, uint8_t id[SEAL_ID_BYTES],
          uint8_t **sealed, size_t *slen, const uint8_t **pt, size_t *ptlen,
          int with_op, uint8_t *op, uint16_t *pos, size_t *cap)
{
    uint8_t nonce[SEAL_NONCE_BYTES];
    uint32_t version;
    uint8_t vsel;
    const uint8_t *p;
    size_t got;

    read_ad(in, ad, id);
    /* a compartment with a data key: 10 (v1 or v2) or 01 (v1) */
    vsel = fz_u8(in);
    ad->compartment = (vsel & 1) ? "01" : "10";
    version = (vsel & 1) ? 1 : 1 + ((vsel >> 1) & 1);
    memset(nonce, 0, sizeof nonce);
    p = fz_take(in, SEAL_NONCE_BYTES, &got);
    memcpy(nonce, p, got);
    if (with_op) {
        *op = fz_u8(in);
        *pos = fz_u16(in);
    } else
        *cap = fz_u16(in) % 1100;
    *pt = fz_take(in, RECORD_FIELD_PT_MAX, ptlen);
    *slen = SEAL_SIZE(*ptlen);
    *sealed = malloc(*slen + 8);
    FZ_CHECK(*sealed != NULL);
    FZ_CHECK(seal_field(kr, ad, version, nonce, *pt, *ptlen, *sealed, *slen) == CF_OK);
    FZ_CHECK(seal_version_of(*sealed, *slen) == version);
}

static void
mode_tamper(struct fz_in *in)
{
    struct seal_ad ad, other;
    uint8_t id[SEAL_ID_BYTES], id2[SEAL_ID_BYTES], *sealed, *out;
    const uint8_t *pt;
    size_t slen, ptlen, outlen, len;
    uint8_t op;
    uint16_t pos;

    seal_some(in, &ad, id, &sealed, &slen, &pt, &ptlen, 1, &op, &pos, NULL);
    other = ad;
    len = slen;
    switch (op % 8) {
    case 0:
    case 1:
    case 2:                     /* one bit flipped anywhere */
        sealed[pos % slen] ^= (uint8_t)(1u << (op >> 5));
        break;
    case 3:                     /* cut short */
        len = pos % slen;
        break;
    case 4:                     /* extended by 1..8 bytes */
        len = slen + 1 + pos % 8;
        memset(sealed + slen, (int)(op >> 3), len - slen);
        break;
    case 5:                     /* another compartment */
        other.compartment = strcmp(ad.compartment, "10") == 0 ? "01" : "10";
        break;
    case 6:                     /* another kind or field */
        if (op & 0x80)
            other.kind = strcmp(ad.kind, "student") == 0 ? "account" : "student";
        else
            other.field = strcmp(ad.field, "login") == 0 ? "name" : "login";
        break;
    default:                    /* another record */
        memcpy(id2, id, sizeof id2);
        id2[pos % SEAL_ID_BYTES] ^= (uint8_t)(1u << (op >> 5));
        other.record_id = id2;
        break;
    }
    FZ_CHECK(open_checked(&other, sealed, len, RECORD_FIELD_PT_MAX, &out, &outlen) != CF_OK);
    free(sealed);
}

static void
mode_round(struct fz_in *in)
{
    struct seal_ad ad;
    uint8_t id[SEAL_ID_BYTES], *sealed, *out;
    const uint8_t *pt;
    size_t slen, ptlen, outlen, cap;
    enum cf_err rc;

    seal_some(in, &ad, id, &sealed, &slen, &pt, &ptlen, 0, NULL, NULL, &cap);
    rc = open_checked(&ad, sealed, slen, cap, &out, &outlen);
    if (cap >= ptlen) {
        FZ_CHECK(rc == CF_OK);
        FZ_CHECK(outlen == ptlen && (ptlen == 0 || memcmp(out, pt, ptlen) == 0));
    } else
        FZ_CHECK(rc == CF_ERR_CRYPTO);
    free(out);
    free(sealed);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = { data, size };

    switch (fz_u8(&in) % 3) {
    case 0:
        mode_random(&in);
        break;
    case 1:
        mode_tamper(&in);
        break;
    default:
        mode_round(&in);
        break;
    }
    return 0;
}
