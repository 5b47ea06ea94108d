/*
 * fuzz_account.c - account.c's normalisation of what a person types:
 * activation codes (code_normalize) and logins (login_normalize).
 *
 * Input: the text (cut at its first NUL, as it arrives in a JSON string).
 *
 * Invariants:
 *  - code_normalize succeeds exactly when the text, without '-' and ' '
 *    and upper-cased, is ACTIVATION_CODE_SYMBOLS symbols of the code
 *    alphabet (reference written here); the result is those symbols,
 *    never more than ACTIVATION_CODE_SYMBOLS + 1 bytes written, and both
 *    it and its "xxxx-xxxx-xxxx" lower-case spelling normalise to itself;
 *  - login_normalize succeeds exactly when seal_normalize (FOLD, at most
 *    ACCOUNT_LOGIN_MAX bytes) succeeds and gives ACCOUNT_LOGIN_MIN to
 *    ACCOUNT_LOGIN_MAX bytes of [a-z0-9._-]; the result is that, written
 *    within ACCOUNT_LOGIN_MAX + 1 bytes, and normalises to itself.
 *
 * fuzz-max-len: 512
 */
#include "fuzz.h"

#include "../src/account.c"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FZ_CHECK(sodium_init() >= 0);
    return 0;
}

static void
check_code(const char *in)
{
    char want[ACTIVATION_CODE_SYMBOLS + 1], again[ACTIVATION_CODE_SYMBOLS + 1];
    char text[ACTIVATION_CODE_TEXT + 1];
    char *raw = malloc(ACTIVATION_CODE_SYMBOLS + 1);    /* exactly: ASan */
    size_t n = 0, i, o;
    int ok = 1;

    FZ_CHECK(raw != NULL);
    for (i = 0; in[i] != '\0'; i++) {
        char c = in[i];

        if (c == '-' || c == ' ')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (n == ACTIVATION_CODE_SYMBOLS || memchr(code_alphabet, c, sizeof code_alphabet - 1) == NULL) {
            ok = 0;
            break;
        }
        want[n++] = c;
    }
    ok = ok && n == ACTIVATION_CODE_SYMBOLS;
    FZ_CHECK((code_normalize(in, raw) == 0) == ok);
    if (ok) {
        want[n] = '\0';
        FZ_CHECK(strcmp(raw, want) == 0);
        FZ_CHECK(code_normalize(raw, again) == 0 && strcmp(again, raw) == 0);
        for (i = 0, o = 0; i < ACTIVATION_CODE_SYMBOLS; i++) {
            if (i > 0 && i % 4 == 0)
                text[o++] = '-';
            text[o++] = (char)(raw[i] >= 'A' && raw[i] <= 'Z' ? raw[i] - 'A' + 'a' : raw[i]);
        }
        text[o] = '\0';
        FZ_CHECK(o == ACTIVATION_CODE_TEXT);
        FZ_CHECK(code_normalize(text, again) == 0 && strcmp(again, raw) == 0);
    }
    free(raw);
}

static void
check_login(const char *in)
{
    char tmp[RECORD_FIELD_PT_MAX + 1], again[ACCOUNT_LOGIN_MAX + 1];
    char *out = malloc(ACCOUNT_LOGIN_MAX + 1);          /* exactly: ASan */
    size_t len = 0, tlen = 0, alen, i;
    int ok;

    FZ_CHECK(out != NULL);
    ok = seal_normalize("login", in, strlen(in), SEAL_NORM_FOLD, ACCOUNT_LOGIN_MAX,
                        tmp, sizeof tmp, &tlen, NULL) == CF_OK &&
         tlen >= ACCOUNT_LOGIN_MIN && tlen <= ACCOUNT_LOGIN_MAX;
    for (i = 0; ok && i < tlen; i++)
        ok = (tmp[i] >= 'a' && tmp[i] <= 'z') || (tmp[i] >= '0' && tmp[i] <= '9') ||
             tmp[i] == '.' || tmp[i] == '-' || tmp[i] == '_';
    FZ_CHECK((login_normalize(in, out, &len) == 0) == ok);
    if (ok) {
        FZ_CHECK(len == tlen && strlen(out) == len && strcmp(out, tmp) == 0);
        FZ_CHECK(login_normalize(out, again, &alen) == 0);
        FZ_CHECK(alen == len && strcmp(again, out) == 0);
    }
    free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fz_strndup(data, size);

    check_code(in);
    check_login(in);
    free(in);
    return 0;
}
