/*
 * fuzz_webauthn.c - mfa.c's parsers of what a browser (or an attacker)
 * sends for a security key: the attestationObject (CBOR, libcbor), the
 * authenticator data (fixed layout) and clientDataJSON (jansson).
 *
 * Input: mode (1 byte, mod 3), then the bytes:
 *  0 attestation  an attestationObject, with a well-formed clientDataJSON
 *                 for the fixed challenge and origin;
 *  1 client data  a clientDataJSON, with a fixed "none" attestationObject;
 *  2 assertion    2 bytes of authenticator-data length, the authenticator
 *                 data, then the signature, for a fixed ES256 key.
 *
 * Invariants:
 *  - a registration that succeeds gives an ES256 (64-byte key) or EdDSA
 *    (32-byte key) credential with a 1..255-byte id, whose sealed encoding
 *    decodes to exactly itself; one that fails says why (em) and leaves
 *    a zeroed credential;
 *  - client data succeeds only if it names the fixed challenge, type and
 *    origin;
 *  - no assertion made of fuzzed bytes verifies (that would be a forgery).
 *
 * fuzz-max-len: 10000
 */
#include "fuzz.h"

#include "../src/mfa.c"

static const char rp_id[] = "localhost";
static const char origin[] = "http://localhost:8080";
static uint8_t challenge[32];
static char cdj_create[256], cdj_get[256];
static struct mfa_webauthn_opts opts;

/* a "none" attestation of a fixed ES256 credential (from the fixtures' shape) */
static uint8_t none_att[512];
static size_t none_len;

static size_t
put(uint8_t *b, size_t o, const void *p, size_t n)
{
    memcpy(b + o, p, n);
    return o + n;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    uint8_t ad[200], h[32];
    char b64[64];
    size_t n = 0, o = 0;
    static const uint8_t cose_head[] = { 0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20 };
    static const uint8_t y_head[] = { 0x22, 0x58, 0x20 };

    (void)argc;
    (void)argv;
    FZ_CHECK(sodium_init() >= 0);
    memset(challenge, 0x5a, sizeof challenge);
    sodium_bin2base64(b64, sizeof b64, challenge, sizeof challenge, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(cdj_create, sizeof cdj_create, "{\"type\":\"webauthn.create\",\"challenge\":\"%s\",\"origin\":\"%s\"}", b64, origin);
    snprintf(cdj_get, sizeof cdj_get, "{\"type\":\"webauthn.get\",\"challenge\":\"%s\",\"origin\":\"%s\"}", b64, origin);
    opts.rp_id = rp_id;
    opts.origins[0] = origin;
    opts.norigins = 1;
    /* authData: rpIdHash, UP|AT, counter 0, aaguid 0, id of 16 bytes, a
     * COSE key whose point is the P-256 generator (valid, and no one's) */
    crypto_hash_sha256(h, (const uint8_t *)rp_id, strlen(rp_id));
    n = put(ad, n, h, 32);
    ad[n++] = 0x41;
    memset(ad + n, 0, 4 + 16);
    n += 20;
    ad[n++] = 0;
    ad[n++] = 16;
    memset(ad + n, 0x42, 16);
    n += 16;
    {
        static const uint8_t gx[32] = { 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5,
                                        0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0,
                                        0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96 };
        static const uint8_t gy[32] = { 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a,
                                        0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce,
                                        0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5 };

        n = put(ad, n, cose_head, sizeof cose_head);
        n = put(ad, n, gx, 32);
        n = put(ad, n, y_head, sizeof y_head);
        n = put(ad, n, gy, 32);
    }
    /* {"fmt": "none", "attStmt": {}, "authData": h'..'} */
    o = put(none_att, o, "\xa3\x63""fmt\x64none\x67""attStmt\xa0\x68""authData\x58", 29);
    none_att[o++] = (uint8_t)n;
    o = put(none_att, o, ad, n);
    none_len = o;
    /* self-test: the fixed pair registers, so mode 1 can reach success */
    {
        struct mfa_cred c;
        struct cf_errmsg em = { "" };

        FZ_CHECK(mfa_webauthn_check_registration(&opts, challenge, sizeof challenge,
                                                 (const uint8_t *)cdj_create, strlen(cdj_create),
                                                 none_att, none_len, &c, &em) == CF_OK);
        FZ_CHECK(c.idlen == 16 && c.pklen == 64);
    }
    return 0;
}

/* 1 when the client data, read as JSON (escapes decoded: "http:\/\/..." is
 * the same origin), names exactly this type and the fixed origin. */
static int
names(const uint8_t *cdj, size_t n, const char *type)
{
    json_t *doc = json_loadb((const char *)cdj, n, JSON_REJECT_DUPLICATES, NULL);
    const char *t = json_string_value(json_object_get(doc, "type"));
    const char *o = json_string_value(json_object_get(doc, "origin"));
    int ok = t != NULL && o != NULL && strcmp(t, type) == 0 && strcmp(o, origin) == 0;

    json_decref(doc);
    return ok;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cf_errmsg em = { "" };
    struct mfa_cred cred, back;
    char enc[RECORD_FIELD_PT_MAX + 1];
    enum cf_err rc;
    int mode;

    if (size == 0)
        return 0;
    mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0 || mode == 1) {
        const uint8_t *cdj = mode == 0 ? (const uint8_t *)cdj_create : data;
        size_t cdjlen = mode == 0 ? strlen(cdj_create) : size;

        rc = mfa_webauthn_check_registration(&opts, challenge, sizeof challenge, cdj, cdjlen,
                                             mode == 0 ? data : none_att, mode == 0 ? size : none_len,
                                             &cred, &em);
        if (rc == CF_OK) {
            FZ_CHECK((cred.alg == -7 && cred.pklen == 64) || (cred.alg == -8 && cred.pklen == 32));
            FZ_CHECK(cred.idlen >= 1 && cred.idlen <= MFA_CRED_ID_MAX);
            cred_encode(&cred, enc);
            FZ_CHECK(cred_decode(enc, &back) == 0);
            FZ_CHECK(back.alg == cred.alg && back.pklen == cred.pklen && back.idlen == cred.idlen &&
                     back.uv == cred.uv && memcmp(back.pk, cred.pk, cred.pklen) == 0 &&
                     memcmp(back.id, cred.id, cred.idlen) == 0);
            if (mode == 1)
                FZ_CHECK(names(cdj, cdjlen, "webauthn.create"));
        } else {
            static const struct mfa_cred zero;

            FZ_CHECK(em.msg[0] != '\0' || rc == CF_ERR_NOMEM);
            FZ_CHECK(memcmp(&cred, &zero, sizeof cred) == 0);
        }
        return 0;
    }
    {
        size_t adlen = size >= 2 ? ((size_t)data[0] << 8 | data[1]) : 0;
        uint32_t counter = 0;
        int uv = 0;

        if (size < 2 || adlen > size - 2)
            return 0;
        memset(&cred, 0, sizeof cred);
        cred.alg = -7;
        cred.pklen = 64;
        memcpy(cred.pk, none_att + none_len - 32 - 3 - 32, 32);      /* the generator's x */
        memcpy(cred.pk + 32, none_att + none_len - 32, 32);           /* and y */
        rc = mfa_webauthn_check_assertion(&opts, challenge, sizeof challenge, &cred,
                                          (const uint8_t *)cdj_get, strlen(cdj_get), data + 2, adlen,
                                          data + 2 + adlen, size - 2 - adlen, &counter, &uv, &em);
        FZ_CHECK(rc != CF_OK);
        FZ_CHECK(em.msg[0] != '\0' || rc == CF_ERR_NOMEM);
    }
    return 0;
}
