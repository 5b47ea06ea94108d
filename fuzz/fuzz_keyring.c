/*
 * fuzz_keyring.c - keyring_load of arbitrary file contents (written to a
 * mode-0600 temporary file, as the loader demands).
 *
 * Input: mode (1 byte), position (2 bytes), then the body.
 *  mode even  the body is the whole file;
 *  mode odd   the file is "coffre-keyring 1\n" + body + a correct end line,
 *             so the line parser is reached; then the same file with one
 *             bit flipped before the end line (at position mod its length)
 *             must not load.
 *
 * Invariants:
 *  - a file that loads starts with the magic line and ends with "end
 *    <64 hex>\n" where the hex is the BLAKE2b-256 of every byte before that
 *    line (recomputed here), with nothing after it;
 *  - a loaded keyring holds at least one and at most
 *    KEYRING_MAX_COMPARTMENTS compartments, as many as the file's "kek "
 *    lines, with distinct two-byte codes in file order, each with an
 *    index key; its node id is 32 hex digits and its audit seed is held;
 *  - a file edited after its checksum was computed never loads;
 *  - on failure the output pointer is untouched and the message names
 *    the file, never a line's contents (checked: no 64-hex run).
 *
 * fuzz-max-len: 6000
 */
#include "fuzz.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "keyring.h"

#define MAGIC "coffre-keyring 1\n"

static char tmpdir[256], path[300];

static void
cleanup(void)
{
    if (path[0] != '\0')
        unlink(path);
    if (tmpdir[0] != '\0')
        rmdir(tmpdir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *base = getenv("TMPDIR");

    (void)argc;
    (void)argv;
    FZ_CHECK(sodium_init() >= 0);
    snprintf(tmpdir, sizeof tmpdir, "%s/coffre-fuzz-XXXXXX", base != NULL ? base : "/tmp");
    FZ_CHECK(mkdtemp(tmpdir) != NULL);
    snprintf(path, sizeof path, "%s/keyring", tmpdir);
    atexit(cleanup);
    return 0;
}

static void
write_file(const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t off = 0;

    FZ_CHECK(fd >= 0);
    FZ_CHECK(fchmod(fd, 0600) == 0);
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);

        FZ_CHECK(w > 0);
        off += (size_t)w;
    }
    FZ_CHECK(close(fd) == 0);
}

/* Lines of f[0..n) starting with "kek ". */
static size_t
count_kek(const uint8_t *f, size_t n)
{
    size_t i, c = 0;

    for (i = 0; i + 4 <= n; i++)
        if ((i == 0 || f[i - 1] == '\n') && memcmp(f + i, "kek ", 4) == 0)
            c++;
    return c;
}

/* 1 when s holds a run of 64 hex digits (a key, seed or sum). */
static int
has_hex64(const char *s)
{
    size_t run = 0;

    for (; *s != '\0'; s++) {
        int hex = (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') ||
                  (*s >= 'A' && *s <= 'F');

        run = hex ? run + 1 : 0;
        if (run >= 64)
            return 1;
    }
    return 0;
}

/* Loads f[0..n) and checks the invariants; 1 when it loaded. */
static int
load_checked(const uint8_t *f, size_t n)
{
    struct keyring *kr = (struct keyring *)&kr;     /* a sentinel */
    struct cf_errmsg em;
    enum cf_err rc;
    const uint8_t *end;
    uint8_t sum[32], want[32];
    size_t prefix, i, j, bin;
    const char *node;

    write_file(f, n);
    rc = keyring_load(path, &kr, &em);
    unlink(path);                   /* a crash leaves an empty directory only */
    if (rc != CF_OK) {
        FZ_CHECK(kr == (struct keyring *)&kr);
        FZ_CHECK(memchr(em.msg, '\0', sizeof em.msg) != NULL);
        FZ_CHECK(!has_hex64(em.msg));
        return 0;
    }

    /* The checksum, recomputed: "end " + 64 hex + "\n" closes the file. */
    FZ_CHECK(n >= strlen(MAGIC) + 4 + 64 + 1);
    FZ_CHECK(memcmp(f, MAGIC, strlen(MAGIC)) == 0);
    end = f + n - (4 + 64 + 1);
    FZ_CHECK(end[-1] == '\n' && memcmp(end, "end ", 4) == 0 && f[n - 1] == '\n');
    prefix = (size_t)(end - f);
    crypto_generichash(sum, sizeof sum, f, prefix, NULL, 0);
    FZ_CHECK(sodium_hex2bin(want, sizeof want, (const char *)end + 4, 64, NULL,
                            &bin, NULL) == 0 && bin == sizeof want);
    FZ_CHECK(memcmp(sum, want, sizeof sum) == 0);

    /* What it holds. */
    FZ_CHECK(keyring_count(kr) >= 1 && keyring_count(kr) <= KEYRING_MAX_COMPARTMENTS);
    FZ_CHECK(keyring_count(kr) == count_kek(f, prefix));
    for (i = 0; i < keyring_count(kr); i++) {
        const char *code = keyring_code_at(kr, i);

        FZ_CHECK(code != NULL && strlen(code) == ACADEMIE_CODE_BYTES);
        FZ_CHECK(keyring_has(kr, code) && keyring_index_key(kr, code) != NULL);
        FZ_CHECK(keyring_current_version(kr, code) == 0);
        for (j = 0; j < i; j++)
            FZ_CHECK(strcmp(code, keyring_code_at(kr, j)) != 0);
    }
    FZ_CHECK(keyring_code_at(kr, keyring_count(kr)) == NULL);
    node = keyring_node_id(kr);
    FZ_CHECK(strlen(node) == 32);
    for (i = 0; i < 32; i++)
        FZ_CHECK((node[i] >= '0' && node[i] <= '9') || (node[i] >= 'a' && node[i] <= 'f') ||
                 (node[i] >= 'A' && node[i] <= 'F'));
    FZ_CHECK(keyring_audit_seed(kr) != NULL);
    keyring_free(kr);
    return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = { data, size };
    uint8_t mode = fz_u8(&in);
    uint16_t pos = fz_u16(&in);
    size_t blen, flen, prefix;
    const uint8_t *body = fz_take(&in, SIZE_MAX, &blen);
    uint8_t sum[32], *f;
    char hex[65];

    if ((mode & 1) == 0) {
        load_checked(body, blen);
        return 0;
    }
    prefix = strlen(MAGIC) + blen;
    flen = prefix + 4 + 64 + 1;
    f = malloc(flen);
    FZ_CHECK(f != NULL);
    memcpy(f, MAGIC, strlen(MAGIC));
    if (blen > 0)
        memcpy(f + strlen(MAGIC), body, blen);
    crypto_generichash(sum, sizeof sum, f, prefix, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, sum, sizeof sum);
    memcpy(f + prefix, "end ", 4);
    memcpy(f + prefix + 4, hex, 64);
    f[flen - 1] = '\n';
    if (load_checked(f, flen)) {
        /* the same file, edited before its end line: never loads */
        f[pos % prefix] ^= (uint8_t)(1u << (mode >> 5));
        FZ_CHECK(!load_checked(f, flen));
    }
    free(f);
    return 0;
}
