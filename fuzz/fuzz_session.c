/*
 * fuzz_session.c - the session token format check (session.c's
 * token_wellformed), the gate every cookie or bearer value passes before
 * it is hashed and looked up.
 *
 * Input: the token text (cut at its first NUL, as it arrives from a
 * header); its first 32 bytes, when there are 32, also as a raw token.
 *
 * Invariants:
 *  - a token is well formed exactly when it is SESSION_TOKEN_TEXT
 *    characters of the base64url alphabet (reference: strspn);
 *  - a malformed token, or none, is refused by session_lookup with
 *    CF_ERR_AUTH before the store is touched (it is given none here);
 *  - every token session_create can issue (32 random bytes, base64url
 *    without padding) is well formed and decodes back to those bytes.
 *
 * fuzz-max-len: 128
 */
#include "fuzz.h"

#include "../src/session.c"

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FZ_CHECK(sodium_init() >= 0);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct session_opts opts = { 0, 0 };
    struct session out;
    char *t = fz_strndup(data, size);
    size_t n = strlen(t);
    int want = n == SESSION_TOKEN_TEXT && strspn(t, b64url) == n;

    FZ_CHECK(token_wellformed(t) == want);
    if (!want)
        FZ_CHECK(session_lookup(NULL, t, &opts, 0, &out) == CF_ERR_AUTH);
    FZ_CHECK(session_lookup(NULL, NULL, &opts, 0, &out) == CF_ERR_AUTH);
    free(t);

    if (size >= SESSION_TOKEN_BYTES) {
        char tok[SESSION_TOKEN_TEXT + 1];
        uint8_t back[SESSION_TOKEN_BYTES];
        size_t blen;

        sodium_bin2base64(tok, sizeof tok, data, SESSION_TOKEN_BYTES,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        FZ_CHECK(strlen(tok) == SESSION_TOKEN_TEXT);
        FZ_CHECK(token_wellformed(tok));
        FZ_CHECK(sodium_base642bin(back, sizeof back, tok, strlen(tok), NULL,
                                   &blen, NULL,
                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
        FZ_CHECK(blen == SESSION_TOKEN_BYTES && memcmp(back, data, blen) == 0);
    }
    return 0;
}
