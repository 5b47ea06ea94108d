/*
 * seal.c - field encryption, blind indexes, normalisation.
 *
 * Owns the sealed-value format and the associated-data encoding.  Never
 * stores a key (it borrows them from the keyring for one call) and never
 * puts a value into an error message.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <utf8proc.h>

#include "bounds.h"
#include "keyring.h"
#include "seal.h"
#include "banned.h"

/* Associated data: a fixed label, then each part length-prefixed so that no
 * two different tuples encode alike. */
#define AD_LABEL "coffre-field-v1"
#define AD_MAX (sizeof AD_LABEL + 3 * 256 + SEAL_ID_BYTES + 4)

static void
put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t
get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int
ad_part(uint8_t *buf, size_t *pos, const char *s)
{
    size_t n = strlen(s);

    if (n > 255)
        return -1;
    buf[(*pos)++] = (uint8_t)n;
    memcpy(buf + *pos, s, n);
    *pos += n;
    return 0;
}

static int
ad_encode(const struct seal_ad *ad, uint32_t version, uint8_t *buf,
          size_t *len)
{
    size_t pos = 0;

    memcpy(buf, AD_LABEL, sizeof AD_LABEL);        /* with its NUL */
    pos = sizeof AD_LABEL;
    if (ad_part(buf, &pos, ad->compartment) != 0 ||
        ad_part(buf, &pos, ad->kind) != 0)
        return -1;
    memcpy(buf + pos, ad->record_id, SEAL_ID_BYTES);
    pos += SEAL_ID_BYTES;
    if (ad_part(buf, &pos, ad->field) != 0)
        return -1;
    put_be32(buf + pos, version);
    pos += 4;
    *len = pos;
    return 0;
}

enum cf_err
seal_field(const struct keyring *kr, const struct seal_ad *ad,
           uint32_t version, const uint8_t nonce[SEAL_NONCE_BYTES],
           const uint8_t *pt, size_t ptlen, uint8_t *out, size_t cap)
{
    uint8_t adbuf[AD_MAX];
    size_t adlen;
    const uint8_t *key;

    if (cap < SEAL_SIZE(ptlen) || ptlen > RECORD_FIELD_PT_MAX)
        return CF_ERR_LIMIT;
    key = keyring_data_key(kr, ad->compartment, version);
    if (key == NULL)
        return CF_ERR_CRYPTO;
    if (ad_encode(ad, version, adbuf, &adlen) != 0)
        return CF_ERR_INPUT;
    out[0] = SEAL_FORMAT_V1;
    put_be32(out + 1, version);
    memcpy(out + 5, nonce, SEAL_NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + SEAL_HEADER_BYTES, NULL,
                                               pt, ptlen, adbuf, adlen, NULL,
                                               nonce, key);
    return CF_OK;
}

uint32_t
seal_version_of(const uint8_t *in, size_t inlen)
{
    if (inlen < SEAL_OVERHEAD || in[0] != SEAL_FORMAT_V1)
        return 0;
    return get_be32(in + 1);
}

enum cf_err
seal_open(const struct keyring *kr, const struct seal_ad *ad,
          const uint8_t *in, size_t inlen, uint8_t *pt, size_t cap,
          size_t *ptlen)
{
    uint8_t adbuf[AD_MAX];
    size_t adlen;
    uint8_t scratch[RECORD_FIELD_PT_MAX];
    uint32_t version;
    const uint8_t *key;
    unsigned long long n;

    /* Lengths and format are checked before any key is touched. */
    version = seal_version_of(in, inlen);
    if (version == 0 || cap < inlen - SEAL_OVERHEAD)
        return CF_ERR_CRYPTO;
    key = keyring_data_key(kr, ad->compartment, version);
    if (key == NULL)
        return CF_ERR_CRYPTO;
    if (ad_encode(ad, version, adbuf, &adlen) != 0)
        return CF_ERR_INPUT;
    /* libsodium zeroes its output when the tag fails; decrypt into
     * scratch so the caller's buffer is left as it was on every failure. */
    if (inlen - SEAL_OVERHEAD > RECORD_FIELD_PT_MAX)
        return CF_ERR_CRYPTO;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(scratch, &n, NULL,
            in + SEAL_HEADER_BYTES, inlen - SEAL_HEADER_BYTES, adbuf, adlen,
            in + 5, key) != 0)
        return CF_ERR_CRYPTO;
    memcpy(pt, scratch, (size_t)n);
    sodium_memzero(scratch, (size_t)n);
    *ptlen = (size_t)n;
    return CF_OK;
}

enum cf_err
seal_blind_index(const struct keyring *kr, const char *compartment,
                 const char *field, const char *norm, size_t len,
                 uint8_t *out, size_t outlen)
{
    crypto_generichash_state st;
    const uint8_t *key;
    const uint8_t sep = 0;

    if (outlen < 8 || outlen > SEAL_BIDX_MAX_BYTES)
        return CF_ERR_INPUT;
    key = keyring_index_key(kr, compartment);
    if (key == NULL)
        return CF_ERR_CRYPTO;
    crypto_generichash_init(&st, key, KEYRING_KEY_BYTES, outlen);
    crypto_generichash_update(&st, (const uint8_t *)field, strlen(field));
    crypto_generichash_update(&st, &sep, 1);
    crypto_generichash_update(&st, (const uint8_t *)norm, len);
    crypto_generichash_final(&st, out, outlen);
    sodium_memzero(&st, sizeof st);
    return CF_OK;
}

/* ---- normalisation ---------------------------------------------------- */

static int
is_space_cp(utf8proc_int32_t c)
{
    return c == ' ' || c == 0xA0 || c == 0x202F;   /* space, NBSP, NNBSP */
}

static int
is_control_cp(utf8proc_int32_t c)
{
    return c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 ||
           c == 0x2029 || (c >= 0x202A && c <= 0x202E) ||
           (c >= 0x2066 && c <= 0x2069);           /* bidi overrides */
}

/*
 * Copies src (valid UTF-8, already NFC) to out, dropping leading and
 * trailing spaces and collapsing inner runs to one ASCII space; refuses
 * control characters.  Returns the length, or -1.
 */
static ssize_t
squeeze(const uint8_t *src, size_t len, enum seal_norm mode, char *out,
        size_t cap)
{
    size_t i = 0, o = 0;
    int pending = 0;

    while (i < len) {
        utf8proc_int32_t c;
        utf8proc_ssize_t n = utf8proc_iterate(src + i, (utf8proc_ssize_t)(len - i), &c);

        if (n <= 0 || is_control_cp(c))
            return -1;
        if (is_space_cp(c)) {
            pending = o > 0;
            i += (size_t)n;
            continue;
        }
        if (mode == SEAL_NORM_UPPER) {
            if (c >= 0x80)
                return -1;
            if (c >= 'a' && c <= 'z')
                c -= 'a' - 'A';
        }
        if (o + (pending ? 1 : 0) + (size_t)n >= cap)
            return -2;
        if (pending)
            out[o++] = ' ';
        pending = 0;
        if (mode == SEAL_NORM_UPPER)
            out[o++] = (char)c;
        else {
            memcpy(out + o, src + i, (size_t)n);
            o += (size_t)n;
        }
        i += (size_t)n;
    }
    out[o] = '\0';
    return (ssize_t)o;
}

enum cf_err
seal_normalize(const char *field, const char *in, size_t len,
               enum seal_norm mode, size_t max, char *out, size_t cap,
               size_t *outlen, struct cf_errmsg *em)
{
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t mlen;
    const uint8_t *src = (const uint8_t *)in;
    size_t srclen = len, i;
    int ascii = 1;
    ssize_t n;
    char tmp[RECORD_FIELD_PT_MAX + 1];

    /* Bound the raw input before doing any work on it. */
    if (len > max * 4 + 64 || len > RECORD_FIELD_PT_MAX)
        return cf_fail(em, CF_ERR_LIMIT, "%s: longer than %zu bytes", field, max);
    for (i = 0; i < len; i++) {
        if (src[i] >= 0x80)
            ascii = 0;
        else if (src[i] < 0x20 || src[i] == 0x7F)
            return cf_fail(em, CF_ERR_INPUT, "%s: contains a control character", field);
    }
    if (!ascii) {
        int opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_REJECTNA;

        if (mode == SEAL_NORM_FOLD)
            opts |= UTF8PROC_CASEFOLD;
        mlen = utf8proc_map(src, (utf8proc_ssize_t)len, &mapped, opts);
        if (mlen < 0)
            return cf_fail(em, CF_ERR_INPUT, "%s: not valid UTF-8 text", field);
        src = mapped;
        srclen = (size_t)mlen;
    }
    n = squeeze(src, srclen, mode, tmp, sizeof tmp);
    free(mapped);
    if (n == -1)
        return cf_fail(em, CF_ERR_INPUT, "%s: %s", field,
                       mode == SEAL_NORM_UPPER ? "must be plain letters and digits"
                                               : "contains a control character");
    if (n == -2 || (size_t)n > max)
        return cf_fail(em, CF_ERR_LIMIT, "%s: longer than %zu bytes", field, max);
    if (n == 0)
        return cf_fail(em, CF_ERR_INPUT, "%s: is empty", field);
    if ((size_t)n >= cap)
        return cf_fail(em, CF_ERR_LIMIT, "%s: longer than %zu bytes", field, cap - 1);
    if (ascii && mode == SEAL_NORM_FOLD) {
        for (i = 0; i < (size_t)n; i++)
            if (tmp[i] >= 'A' && tmp[i] <= 'Z')
                tmp[i] = (char)(tmp[i] + ('a' - 'A'));
    }
    memcpy(out, tmp, (size_t)n + 1);
    *outlen = (size_t)n;
    return CF_OK;
}
