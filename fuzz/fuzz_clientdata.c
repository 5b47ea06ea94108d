/*
 * fuzz_clientdata.c - mfa.c's check of clientDataJSON (check_client_data),
 * called directly, for both ceremonies (fuzz_webauthn reaches it through
 * registration only, with a weaker check): the type, the challenge, the
 * origin and crossOrigin.
 *
 * Input: mode (1 byte: bit 0 "webauthn.get" rather than
 * "webauthn.create", bit 1 two accepted origins rather than one), then the
 * clientDataJSON bytes.  The challenge is fixed (32 bytes).
 *
 * Invariants:
 *  - empty or over MFA_CLIENTDATA_MAX bytes: CF_ERR_LIMIT;
 *  - otherwise it succeeds exactly when the reference accepts: the bytes
 *    are a JSON object (jansson, duplicates refused), whose "type" is a
 *    string of exactly the ceremony's type, "challenge" a string that a
 *    strict base64url decoder written here (no padding, no stray
 *    characters, unused bits zero) decodes to exactly the challenge,
 *    "origin" a string equal byte for byte (lengths compared) to one of
 *    the accepted origins, and "crossOrigin" absent or false;
 *  - on success the hash is the SHA-256 of the bytes; on failure it is
 *    untouched and the message says why.
 *
 * fuzz-max-len: 2100
 */
#include "fuzz.h"

#include "../src/mfa.c"

static uint8_t challenge[32];
static char challenge_b64[64];
static const char *const origins[] = { "http://localhost:8080", "https://coffre.example" };

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FZ_CHECK(sodium_init() >= 0);
    memset(challenge, 0x5a, sizeof challenge);
    challenge[31] = 0xa5;
    sodium_bin2base64(challenge_b64, sizeof challenge_b64, challenge, sizeof challenge,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}

/* strict base64url without padding: 0 and *n on success */
static int
ref_b64url(const char *s, size_t len, uint8_t *out, size_t cap, size_t *n)
{
    uint32_t acc = 0;
    size_t i;
    int bits = 0;

    *n = 0;
    if (len % 4 == 1)
        return -1;
    for (i = 0; i < len; i++) {
        int v;
        char c = s[i];

        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '-')
            v = 62;
        else if (c == '_')
            v = 63;
        else
            return -1;
        acc = (acc << 6 | (uint32_t)v) & 0xffffu;
        bits += 6;
        if (bits >= 8) {
            if (*n == cap)
                return -1;
            out[(*n)++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    return (acc & ((1u << bits) - 1u)) == 0 ? 0 : -1;
}

static int
str_is(json_t *v, const char *want)
{
    return json_is_string(v) && json_string_length(v) == strlen(want) &&
           memcmp(json_string_value(v), want, strlen(want)) == 0;
}

static int
reference(const uint8_t *cdj, size_t len, const char *type, size_t norigins)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)cdj, len, JSON_REJECT_DUPLICATES, &jerr), *ch, *cross, *origin;
    uint8_t got[80];
    size_t n, i;
    int ok = 0;

    if (!json_is_object(doc))
        goto out;
    ch = json_object_get(doc, "challenge");
    origin = json_object_get(doc, "origin");
    cross = json_object_get(doc, "crossOrigin");
    if (!str_is(json_object_get(doc, "type"), type) || !json_is_string(ch) ||
        ref_b64url(json_string_value(ch), json_string_length(ch), got, sizeof got, &n) != 0 ||
        n != sizeof challenge || memcmp(got, challenge, n) != 0)
        goto out;
    for (i = 0; i < norigins; i++)
        if (str_is(origin, origins[i]))
            break;
    ok = i < norigins && (cross == NULL || json_is_false(cross));
out:
    json_decref(doc);
    return ok;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mfa_webauthn_opts o;
    struct cf_errmsg em = { "" };
    uint8_t hash[crypto_hash_sha256_BYTES], want[crypto_hash_sha256_BYTES], untouched[sizeof hash];
    const char *type;
    enum cf_err rc;
    int mode;

    if (size == 0)
        return 0;
    mode = data[0];
    data++;
    size--;
    type = mode & 1 ? "webauthn.get" : "webauthn.create";
    memset(&o, 0, sizeof o);
    o.rp_id = "localhost";
    o.origins[0] = origins[0];
    o.origins[1] = origins[1];
    o.norigins = mode & 2 ? 2 : 1;
    memset(hash, 0xee, sizeof hash);
    memcpy(untouched, hash, sizeof hash);
    rc = check_client_data(&o, type, challenge, sizeof challenge, data, size, hash, &em);
    if (size == 0 || size > MFA_CLIENTDATA_MAX) {
        FZ_CHECK(rc == CF_ERR_LIMIT);
    } else {
        FZ_CHECK((rc == CF_OK) == reference(data, size, type, o.norigins));
    }
    if (rc == CF_OK) {
        crypto_hash_sha256(want, data, size);
        FZ_CHECK(memcmp(hash, want, sizeof hash) == 0);
    } else {
        FZ_CHECK(memcmp(hash, untouched, sizeof hash) == 0);
        FZ_CHECK(em.msg[0] != '\0');
    }
    return 0;
}
