/*
 * test_keyring.c - unit tests of keyring.c: creating (mode, no overwrite,
 * bounds), loading (round trip, permissions, every bit flip, every
 * truncation, magic, trailing data, size and compartment bounds), export to
 * a regional node, and data-key wrapping.
 *
 * keyring.c is included so the tests run against exactly the file under
 * test.  Hand-made keyring files get a correct end line from make_end() so
 * that what is tested is the check named, not the checksum.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "../../src/keyring.c"
#include "testutil.h"

static const char *const codes3[] = { "10", "02", "27" };

/* ---- per-test temporary directory ----------------------------------------- */

struct tdir {
    char dir[256];
};

static int
setup(void **state)
{
    struct tdir *t = calloc(1, sizeof *t);

    if (t == NULL || sodium_init() < 0) {
        free(t);
        return -1;
    }
    snprintf(t->dir, sizeof t->dir, "%s", tu_tmpdir());
    *state = t;
    return 0;
}

static int
teardown(void **state)
{
    struct tdir *t = *state;

    tu_rmrf(t->dir);
    free(t);
    return 0;
}

/* path of `name` in the test's directory (static buffers, 4 in rotation) */
static const char *
in_dir(void **state, const char *name)
{
    static char bufs[4][400];
    static unsigned k;
    const struct tdir *t = *state;
    char *b = bufs[k++ % 4];

    snprintf(b, sizeof bufs[0], "%s/%s", t->dir, name);
    return b;
}

/* Writes a file with mode 0600 (whatever the umask), replacing any. */
static void
write_0600(const char *path, const void *data, size_t len)
{
    (void)unlink(path);
    assert_int_equal(tu_write(path, data, len), 0);
    assert_int_equal(chmod(path, 0600), 0);
}

/* Number of entries (besides . and ..) in dir. */
static int
count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void
create_ok(const char *path, const char *const *codes, size_t n,
          uint8_t seed[KEYRING_SEED_BYTES])
{
    struct cf_errmsg em = { "" };
    enum cf_err rc = keyring_create(path, codes, n, seed, &em);

    if (rc != CF_OK)
        fprintf(stderr, "keyring_create: %s\n", em.msg);
    assert_int_equal(rc, CF_OK);
}

static struct keyring *
load_ok(const char *path)
{
    struct keyring *kr = NULL;
    struct cf_errmsg em = { "" };
    enum cf_err rc = keyring_load(path, &kr, &em);

    if (rc != CF_OK)
        fprintf(stderr, "keyring_load: %s\n", em.msg);
    assert_int_equal(rc, CF_OK);
    assert_non_null(kr);
    return kr;
}

/* Loads path expecting rc; *out stays untouched; the message names path. */
static void
load_fails(const char *path, enum cf_err rc, const char *why)
{
    struct keyring *kr = (struct keyring *)(uintptr_t)0x1;
    struct cf_errmsg em = { "" };

    assert_int_equal(keyring_load(path, &kr, &em), rc);
    assert_ptr_equal(kr, (struct keyring *)(uintptr_t)0x1);
    assert_non_null(strstr(em.msg, path));
    assert_null(strchr(em.msg, '\n'));
    if (why != NULL && strstr(em.msg, why) == NULL)
        fail_msg("message '%s' lacks '%s'", em.msg, why);
}

/* Hex of the first KEK in a keyring text (the secret a message must not
 * show); NUL-terminated 64 chars. */
static void
first_kek_hex(const char *text, char hex[65])
{
    const char *p = strstr(text, "\nkek ");

    assert_non_null(p);
    memcpy(hex, p + 8, 64);
    hex[64] = '\0';
}

/* ---- hand-made keyring texts ---------------------------------------------- */

struct text {
    char *p;
    size_t len, cap;
};

static void
t_init(struct text *t, size_t cap)
{
    t->p = malloc(cap);
    assert_non_null(t->p);
    t->len = 0;
    t->cap = cap;
    t->p[0] = '\0';
}

static void
t_add(struct text *t, const char *s)
{
    size_t n = strlen(s);

    assert_true(t->len + n < t->cap);
    memcpy(t->p + t->len, s, n + 1);
    t->len += n;
}

static void
t_hexline(struct text *t, const char *prefix, size_t nbytes, uint8_t fill)
{
    uint8_t bin[64];
    char hex[129];

    memset(bin, fill, sizeof bin);
    sodium_bin2hex(hex, sizeof hex, bin, nbytes);
    t_add(t, prefix);
    t_add(t, hex);
    t_add(t, "\n");
}

/* Appends the end line: BLAKE2b-256 of everything before it. */
static void
make_end(struct text *t)
{
    uint8_t sum[32];

    crypto_generichash(sum, sizeof sum, (const uint8_t *)t->p, t->len, NULL, 0);
    {
        char hex[65];

        sodium_bin2hex(hex, sizeof hex, sum, sizeof sum);
        t_add(t, "end ");
        t_add(t, hex);
        t_add(t, "\n");
    }
}

/* Magic, node, epoch and seed lines as keyring_create writes them. */
static void
t_header(struct text *t, int with_seed)
{
    t_add(t, "coffre-keyring 1\n");
    t_hexline(t, "node ", 16, 0x11);
    t_add(t, "audit-epoch 0\n");
    if (with_seed)
        t_hexline(t, "audit-seed ", KEYRING_SEED_BYTES, 0x22);
}

/* n kek lines with codes "00", "01", ... */
static void
t_keks(struct text *t, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char prefix[16];

        snprintf(prefix, sizeof prefix, "kek %02u ", (unsigned)(i % 100));
        t_hexline(t, prefix, KEYRING_KEY_BYTES, (uint8_t)(0x40 + i));
    }
}

/* ---- create ---------------------------------------------------------------- */

/* Mode 0600 even with umask 0, only the keyring left in the directory, and
 * the file holds each compartment and the seed given back. */
static void
test_create_mode_and_contents(void **state)
{
    const char *path = in_dir(state, "keyring");
    const struct tdir *t = *state;
    uint8_t seed[KEYRING_SEED_BYTES], zero[KEYRING_SEED_BYTES] = { 0 };
    char seedline[11 + 2 * KEYRING_SEED_BYTES + 2];
    char hex[2 * KEYRING_SEED_BYTES + 1];
    struct stat sb;
    unsigned char *buf;
    size_t len;
    mode_t old = umask(0);

    create_ok(path, codes3, 3, seed);
    umask(old);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(count_entries(t->dir), 1);     /* no temporary left */
    assert_true(memcmp(seed, zero, sizeof seed) != 0);

    buf = tu_read(path, &len);
    assert_non_null(buf);
    buf[len] = '\0';
    assert_int_equal(strncmp((char *)buf, "coffre-keyring 1\nnode ", 22), 0);
    assert_non_null(strstr((char *)buf, "\naudit-epoch 0\n"));
    assert_non_null(strstr((char *)buf, "\nkek 10 "));
    assert_non_null(strstr((char *)buf, "\nkek 02 "));
    assert_non_null(strstr((char *)buf, "\nkek 27 "));
    assert_true(strstr((char *)buf, "\nkek 10 ") < strstr((char *)buf, "\nkek 02 "));
    assert_non_null(strstr((char *)buf, "\nend "));
    assert_int_equal(buf[len - 1], '\n');
    sodium_bin2hex(hex, sizeof hex, seed, sizeof seed);
    snprintf(seedline, sizeof seedline, "audit-seed %s\n", hex);
    assert_non_null(strstr((char *)buf, seedline));
    free(buf);
}

/* An existing file is never replaced; seed_out is not written then. */
static void
test_create_refuses_overwrite(void **state)
{
    const char *path = in_dir(state, "keyring");
    const char *other = in_dir(state, "notes.txt");
    const struct tdir *t = *state;
    uint8_t seed[KEYRING_SEED_BYTES], pat[KEYRING_SEED_BYTES];
    unsigned char *before, *after;
    size_t lb, la;
    struct cf_errmsg em = { "" };

    create_ok(path, codes3, 2, seed);
    before = tu_read(path, &lb);
    assert_non_null(before);
    memset(pat, 0xa5, sizeof pat);
    memcpy(seed, pat, sizeof seed);
    assert_int_equal(keyring_create(path, codes3, 3, seed, &em), CF_ERR_EXISTS);
    assert_non_null(strstr(em.msg, path));
    assert_memory_equal(seed, pat, sizeof seed);
    after = tu_read(path, &la);
    assert_non_null(after);
    assert_int_equal(la, lb);
    assert_memory_equal(after, before, lb);
    free(after);
    free(before);

    /* nor any other file */
    assert_int_equal(tu_write(other, "hello\n", 6), 0);
    assert_int_equal(keyring_create(other, codes3, 1, seed, &em), CF_ERR_EXISTS);
    after = tu_read(other, &la);
    assert_int_equal(la, 6);
    assert_memory_equal(after, "hello\n", 6);
    free(after);
    assert_int_equal(count_entries(t->dir), 2);
}

static void
test_create_rejects_duplicate(void **state)
{
    static const char *const dup[] = { "10", "02", "10" };
    const char *path = in_dir(state, "keyring");
    uint8_t seed[KEYRING_SEED_BYTES];
    struct cf_errmsg em = { "" };
    struct stat sb;

    assert_int_equal(keyring_create(path, dup, 3, seed, &em), CF_ERR_INPUT);
    assert_non_null(strstr(em.msg, "'10'"));
    assert_int_equal(stat(path, &sb), -1);
    assert_int_equal(keyring_create(path, dup, 2, seed, &em), CF_OK);
}

static void
test_create_rejects_zero(void **state)
{
    const char *path = in_dir(state, "keyring");
    const struct tdir *t = *state;
    uint8_t seed[KEYRING_SEED_BYTES];
    struct cf_errmsg em = { "" };

    assert_int_equal(keyring_create(path, codes3, 0, seed, &em), CF_ERR_INPUT);
    assert_true(em.msg[0] != '\0');
    assert_int_equal(count_entries(t->dir), 0);
    assert_int_equal(keyring_create(path, codes3, 1, seed, &em), CF_OK);
}

/* KEYRING_MAX_COMPARTMENTS at N-1, N (both load back whole) and N+1. */
static void
test_create_compartment_bound(void **state)
{
    char codes[KEYRING_MAX_COMPARTMENTS + 1][3];
    const char *ptrs[KEYRING_MAX_COMPARTMENTS + 1];
    uint8_t seed[KEYRING_SEED_BYTES];
    struct cf_errmsg em = { "" };
    struct keyring *kr;
    struct stat sb;
    size_t i, n;

    for (i = 0; i <= KEYRING_MAX_COMPARTMENTS; i++) {
        snprintf(codes[i], sizeof codes[i], "%02zu", i);
        ptrs[i] = codes[i];
    }
    for (n = KEYRING_MAX_COMPARTMENTS - 1; n <= KEYRING_MAX_COMPARTMENTS; n++) {
        char name[32];
        const char *path;

        snprintf(name, sizeof name, "kr%zu", n);
        path = in_dir(state, name);
        create_ok(path, ptrs, n, seed);
        kr = load_ok(path);
        assert_int_equal(keyring_count(kr), n);
        assert_string_equal(keyring_code_at(kr, n - 1), codes[n - 1]);
        assert_null(keyring_code_at(kr, n));
        keyring_free(kr);
    }
    assert_int_equal(keyring_create(in_dir(state, "kr65"), ptrs,
                                    KEYRING_MAX_COMPARTMENTS + 1, seed, &em),
                     CF_ERR_LIMIT);
    assert_int_equal(stat(in_dir(state, "kr65"), &sb), -1);
}

/* ---- load ------------------------------------------------------------------ */

static void
test_load_roundtrip(void **state)
{
    const char *path = in_dir(state, "keyring");
    const char *path2 = in_dir(state, "other");
    uint8_t seed[KEYRING_SEED_BYTES], seed2[KEYRING_SEED_BYTES];
    struct keyring *kr, *again, *other;
    const char *node;
    size_t i;

    create_ok(path, codes3, 3, seed);
    kr = load_ok(path);
    assert_int_equal(keyring_count(kr), 3);
    for (i = 0; i < 3; i++)
        assert_string_equal(keyring_code_at(kr, i), codes3[i]);
    assert_null(keyring_code_at(kr, 3));
    assert_null(keyring_code_at(kr, (size_t)-1));
    assert_true(keyring_has(kr, "10"));
    assert_true(keyring_has(kr, "02"));
    assert_true(keyring_has(kr, "27"));
    assert_false(keyring_has(kr, "99"));
    assert_false(keyring_has(kr, "1"));
    assert_false(keyring_has(kr, NULL));
    node = keyring_node_id(kr);
    assert_int_equal(strlen(node), 32);
    for (i = 0; i < 32; i++)
        assert_non_null(strchr("0123456789abcdef", node[i]));
    assert_int_equal(keyring_audit_epoch(kr), 0);
    assert_memory_equal(keyring_audit_seed(kr), seed, KEYRING_SEED_BYTES);
    /* no data key yet; index keys are there */
    assert_null(keyring_data_key(kr, "10", 1));
    assert_int_equal(keyring_current_version(kr, "10"), 0);
    assert_non_null(keyring_index_key(kr, "10"));
    assert_null(keyring_index_key(kr, "99"));
    assert_true(memcmp(keyring_index_key(kr, "10"), keyring_index_key(kr, "02"),
                       KEYRING_KEY_BYTES) != 0);

    /* a second load is the same keyring */
    again = load_ok(path);
    assert_string_equal(keyring_node_id(again), node);
    assert_memory_equal(keyring_audit_seed(again), seed, KEYRING_SEED_BYTES);
    assert_memory_equal(keyring_index_key(again, "02"),
                        keyring_index_key(kr, "02"), KEYRING_KEY_BYTES);
    /* another create is another keyring */
    create_ok(path2, codes3, 3, seed2);
    other = load_ok(path2);
    assert_string_not_equal(keyring_node_id(other), node);
    assert_true(memcmp(seed, seed2, sizeof seed) != 0);
    assert_true(memcmp(keyring_index_key(other, "10"),
                       keyring_index_key(kr, "10"), KEYRING_KEY_BYTES) != 0);
    keyring_free(other);
    keyring_free(again);
    keyring_free(kr);
}

/* A keyring readable or writable by group or others is refused. */
static void
test_load_refuses_loose_mode(void **state)
{
    static const mode_t bad[] = { 0640, 0604, 0620, 0602, 0610, 0601, 0644,
                                  0666 };
    const char *path = in_dir(state, "keyring");
    uint8_t seed[KEYRING_SEED_BYTES];
    struct keyring *kr;
    char hex[65];
    unsigned char *buf;
    size_t i, len;
    struct cf_errmsg em = { "" };

    create_ok(path, codes3, 2, seed);
    buf = tu_read(path, &len);
    assert_non_null(buf);
    buf[len] = '\0';
    first_kek_hex((char *)buf, hex);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(path, bad[i]), 0);
        load_fails(path, CF_ERR_DENIED, "chmod 600");
        assert_int_equal(keyring_load(path, &kr, &em), CF_ERR_DENIED);
        assert_null(strstr(em.msg, hex));
    }
    assert_int_equal(chmod(path, 0400), 0);
    keyring_free(load_ok(path));
    assert_int_equal(chmod(path, 0600), 0);
    keyring_free(load_ok(path));
    free(buf);
}

static void
test_load_missing_file(void **state)
{
    const char *path = in_dir(state, "no-such-keyring");
    const struct tdir *t = *state;

    load_fails(path, CF_ERR_NOTFOUND, "cannot open");
    /* a directory is not a keyring */
    load_fails(t->dir, CF_ERR_IO, "not a regular file");
}

/*
 * Every bit of every byte flipped: the load fails, with one exception that
 * changes nothing: hex digits are read case-insensitively, so flipping bit
 * 0x20 of a letter a-f in the end line's digest gives the same digest.
 * Those loads must then yield exactly the original keyring.
 */
static void
test_load_detects_every_bit_flip(void **state)
{
    const char *path = in_dir(state, "keyring");
    const char *mut = in_dir(state, "mutant");
    uint8_t seed[KEYRING_SEED_BYTES];
    unsigned char *orig, *m;
    size_t len, pos, endhex, letters = 0, benign = 0;
    struct keyring *ref, *kr;
    char hex[65];
    unsigned bit;

    create_ok(path, codes3, 3, seed);
    ref = load_ok(path);
    orig = tu_read(path, &len);
    assert_non_null(orig);
    orig[len] = '\0';
    first_kek_hex((char *)orig, hex);
    endhex = (size_t)((unsigned char *)strstr((char *)orig, "\nend ") - orig) + 5;
    assert_int_equal(endhex + 64 + 1, len);
    for (pos = endhex; pos < endhex + 64; pos++)
        letters += orig[pos] >= 'a' && orig[pos] <= 'f';
    m = malloc(len);
    assert_non_null(m);

    /* the unmodified copy loads: what fails below fails for its content */
    write_0600(mut, orig, len);
    keyring_free(load_ok(mut));

    for (pos = 0; pos < len; pos++) {
        for (bit = 0; bit < 8; bit++) {
            struct cf_errmsg em = { "" };
            enum cf_err rc;

            memcpy(m, orig, len);
            m[pos] ^= (unsigned char)(1u << bit);
            write_0600(mut, m, len);
            kr = NULL;
            rc = keyring_load(mut, &kr, &em);
            if (rc == CF_OK) {
                /* only the harmless case flip in the digest */
                assert_int_equal(1u << bit, 0x20);
                assert_true(pos >= endhex && pos < endhex + 64);
                assert_true(orig[pos] >= 'a' && orig[pos] <= 'f');
                assert_string_equal(keyring_node_id(kr), keyring_node_id(ref));
                assert_memory_equal(keyring_audit_seed(kr),
                                    keyring_audit_seed(ref), KEYRING_SEED_BYTES);
                assert_int_equal(keyring_count(kr), 3);
                assert_memory_equal(keyring_index_key(kr, "27"),
                                    keyring_index_key(ref, "27"),
                                    KEYRING_KEY_BYTES);
                keyring_free(kr);
                benign++;
                continue;
            }
            if (rc != CF_ERR_INPUT)
                fail_msg("byte %zu bit %u: %s (%s)", pos, bit, cf_err_str(rc),
                         em.msg);
            assert_null(kr);
            assert_non_null(strstr(em.msg, mut));
            assert_null(strstr(em.msg, hex));
        }
    }
    assert_int_equal(benign, letters);
    free(m);
    free(orig);
    keyring_free(ref);
}

/* Every proper prefix of a keyring file fails to load. */
static void
test_load_detects_every_truncation(void **state)
{
    const char *path = in_dir(state, "keyring");
    const char *mut = in_dir(state, "cut");
    uint8_t seed[KEYRING_SEED_BYTES];
    unsigned char *orig;
    size_t len, n;

    create_ok(path, codes3, 2, seed);
    orig = tu_read(path, &len);
    assert_non_null(orig);
    for (n = 0; n < len; n++) {
        write_0600(mut, orig, n);
        load_fails(mut, CF_ERR_INPUT, NULL);
    }
    write_0600(mut, orig, len);
    keyring_free(load_ok(mut));
    free(orig);
}

static void
test_load_wrong_magic(void **state)
{
    static const char *const magics[] = {
        "coffre-keyring 2\n", "coffre-keyring 1 \n", "Coffre-keyring 1\n",
        "coffre-keyring 10\n", "coffre-keyring\n", "",
    };
    const char *path = in_dir(state, "keyring");
    size_t i;
    struct text t;

    for (i = 0; i < sizeof magics / sizeof magics[0]; i++) {
        t_init(&t, 4096);
        t_add(&t, magics[i]);
        t_hexline(&t, "node ", 16, 0x11);
        t_add(&t, "audit-epoch 0\n");
        t_hexline(&t, "audit-seed ", KEYRING_SEED_BYTES, 0x22);
        t_keks(&t, 1);
        make_end(&t);
        write_0600(path, t.p, t.len);
        load_fails(path, CF_ERR_INPUT, "not a coffre keyring");
        free(t.p);
    }
    /* the same text with the right magic loads */
    t_init(&t, 4096);
    t_header(&t, 1);
    t_keks(&t, 1);
    make_end(&t);
    write_0600(path, t.p, t.len);
    keyring_free(load_ok(path));
    free(t.p);
}

static void
test_load_data_after_end(void **state)
{
    static const char *const tails[] = { "\n", "x", " ", "end \n", "\0" };
    const char *path = in_dir(state, "keyring");
    const char *mut = in_dir(state, "mutant");
    uint8_t seed[KEYRING_SEED_BYTES];
    unsigned char *orig, *m;
    size_t len, i;

    create_ok(path, codes3, 2, seed);
    orig = tu_read(path, &len);
    assert_non_null(orig);
    m = malloc(2 * len);
    assert_non_null(m);
    for (i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        size_t tl = tails[i][0] == '\0' ? 1 : strlen(tails[i]);

        memcpy(m, orig, len);
        memcpy(m + len, tails[i], tl);
        write_0600(mut, m, len + tl);
        load_fails(mut, CF_ERR_INPUT, "data after the end line");
    }
    /* the whole file twice */
    memcpy(m, orig, len);
    memcpy(m + len, orig, len);
    write_0600(mut, m, 2 * len);
    load_fails(mut, CF_ERR_INPUT, "data after the end line");
    free(m);
    free(orig);
}

/* Hand-made files: the layout keyring_create writes loads; kek lines at
 * KEYRING_MAX_COMPARTMENTS - 1, N load, N+1 is refused. */
static void
test_load_compartment_bound(void **state)
{
    const char *path = in_dir(state, "keyring");
    struct keyring *kr;
    struct text t;
    size_t n;

    for (n = KEYRING_MAX_COMPARTMENTS - 1; n <= KEYRING_MAX_COMPARTMENTS + 1;
         n++) {
        t_init(&t, KEYRING_FILE_MAX_BYTES);
        t_header(&t, 1);
        t_keks(&t, n);
        make_end(&t);
        write_0600(path, t.p, t.len);
        if (n <= KEYRING_MAX_COMPARTMENTS) {
            kr = load_ok(path);
            assert_int_equal(keyring_count(kr), n);
            assert_string_equal(keyring_node_id(kr),
                                "11111111111111111111111111111111");
            keyring_free(kr);
        } else {
            load_fails(path, CF_ERR_INPUT, "too many compartments");
        }
        free(t.p);
    }
}

/*
 * KEYRING_FILE_MAX_BYTES at N-1, N and N+1.  Header lines may appear once
 * and there are at most KEYRING_MAX_COMPARTMENTS kek lines, so no valid
 * keyring comes near the limit: files of N-1 and N bytes are read whole and
 * then refused for their content (CF_ERR_INPUT), N+1 bytes for the size.
 */
static void
test_load_file_size_bound(void **state)
{
    const char *path = in_dir(state, "keyring");
    static const size_t sizes[] = { KEYRING_FILE_MAX_BYTES - 1,
                                    KEYRING_FILE_MAX_BYTES,
                                    KEYRING_FILE_MAX_BYTES + 1 };
    static const char magic[] = "coffre-keyring 1\n";
    size_t i, size;
    char *buf;

    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size = sizes[i];
        buf = malloc(size);
        assert_non_null(buf);
        memcpy(buf, magic, sizeof magic - 1);
        memset(buf + sizeof magic - 1, 'x', size - sizeof magic);
        buf[size - 1] = '\n';
        write_0600(path, buf, size);
        if (size <= KEYRING_FILE_MAX_BYTES)
            load_fails(path, CF_ERR_INPUT, "unknown line");
        else
            load_fails(path, CF_ERR_LIMIT, "larger than");
        free(buf);
    }
}

/*
 * Every line the format lists is required: a file whose checksum is right
 * but which lacks the audit seed, the node id or any kek line does not load
 * (it would otherwise yield a seed nobody wrote).
 */
static void
test_load_requires_every_line(void **state)
{
    const char *path = in_dir(state, "keyring");
    struct text t;

    /* no node line */
    t_init(&t, 4096);
    t_add(&t, "coffre-keyring 1\naudit-epoch 0\n");
    t_hexline(&t, "audit-seed ", KEYRING_SEED_BYTES, 0x22);
    t_keks(&t, 1);
    make_end(&t);
    write_0600(path, t.p, t.len);
    load_fails(path, CF_ERR_INPUT, NULL);
    free(t.p);
    /* no kek line */
    t_init(&t, 4096);
    t_header(&t, 1);
    make_end(&t);
    write_0600(path, t.p, t.len);
    load_fails(path, CF_ERR_INPUT, NULL);
    free(t.p);
    /* the complete file loads */
    t_init(&t, 4096);
    t_header(&t, 1);
    t_keks(&t, 1);
    make_end(&t);
    write_0600(path, t.p, t.len);
    keyring_free(load_ok(path));
    free(t.p);
    /* no audit-seed line */
    t_init(&t, 4096);
    t_header(&t, 0);
    t_keks(&t, 1);
    make_end(&t);
    write_0600(path, t.p, t.len);
    load_fails(path, CF_ERR_INPUT, NULL);
    free(t.p);
}

/* ---- export ---------------------------------------------------------------- */

static void
test_export_single_compartment(void **state)
{
    const char *path = in_dir(state, "keyring");
    const char *out = in_dir(state, "regional");
    uint8_t seed[KEYRING_SEED_BYTES], seed2[KEYRING_SEED_BYTES];
    uint8_t wrapped[KEYRING_WRAPPED_BYTES];
    struct keyring *kr, *ex;
    struct cf_errmsg em = { "" };
    struct stat sb;

    create_ok(path, codes3, 3, seed);
    kr = load_ok(path);
    assert_int_equal(keyring_export(kr, "02", out, seed2, &em), CF_OK);
    assert_int_equal(stat(out, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    ex = load_ok(out);
    assert_int_equal(keyring_count(ex), 1);
    assert_string_equal(keyring_code_at(ex, 0), "02");
    assert_true(keyring_has(ex, "02"));
    assert_false(keyring_has(ex, "10"));
    assert_false(keyring_has(ex, "27"));
    assert_null(keyring_index_key(ex, "10"));
    /* a node of its own */
    assert_int_equal(strlen(keyring_node_id(ex)), 32);
    assert_string_not_equal(keyring_node_id(ex), keyring_node_id(kr));
    assert_true(memcmp(seed2, seed, sizeof seed) != 0);
    assert_memory_equal(keyring_audit_seed(ex), seed2, KEYRING_SEED_BYTES);
    assert_int_equal(keyring_audit_epoch(ex), 0);
    /* the same KEK: same index key, and data keys unwrap */
    assert_memory_equal(keyring_index_key(ex, "02"), keyring_index_key(kr, "02"),
                        KEYRING_KEY_BYTES);
    assert_int_equal(keyring_data_key_new(kr, "02", 1, wrapped), CF_OK);
    assert_int_equal(keyring_data_key_install(ex, "02", 1, wrapped,
                                              sizeof wrapped), CF_OK);
    assert_memory_equal(keyring_data_key(ex, "02", 1),
                        keyring_data_key(kr, "02", 1), KEYRING_KEY_BYTES);
    /* the source is unchanged */
    assert_int_equal(keyring_count(kr), 3);
    keyring_free(ex);
    keyring_free(kr);
}

static void
test_export_refuses_overwrite(void **state)
{
    const char *path = in_dir(state, "keyring");
    const char *out = in_dir(state, "regional");
    uint8_t seed[KEYRING_SEED_BYTES], seed2[KEYRING_SEED_BYTES];
    uint8_t pat[KEYRING_SEED_BYTES];
    unsigned char *before, *after, *src;
    size_t lb, la, ls;
    struct keyring *kr;
    struct cf_errmsg em = { "" };

    create_ok(path, codes3, 3, seed);
    kr = load_ok(path);
    assert_int_equal(keyring_export(kr, "10", out, seed2, &em), CF_OK);
    before = tu_read(out, &lb);
    src = tu_read(path, &ls);
    memset(pat, 0xa5, sizeof pat);
    memcpy(seed2, pat, sizeof pat);
    assert_int_equal(keyring_export(kr, "02", out, seed2, &em), CF_ERR_EXISTS);
    assert_non_null(strstr(em.msg, out));
    assert_memory_equal(seed2, pat, sizeof pat);
    after = tu_read(out, &la);
    assert_int_equal(la, lb);
    assert_memory_equal(after, before, lb);
    free(after);
    /* nor over the source keyring */
    assert_int_equal(keyring_export(kr, "10", path, seed2, &em), CF_ERR_EXISTS);
    after = tu_read(path, &la);
    assert_int_equal(la, ls);
    assert_memory_equal(after, src, ls);
    free(after);
    free(src);
    free(before);
    keyring_free(kr);
}

static void
test_export_unknown_compartment(void **state)
{
    const char *path = in_dir(state, "keyring");
    const char *out = in_dir(state, "regional");
    uint8_t seed[KEYRING_SEED_BYTES], pat[KEYRING_SEED_BYTES];
    struct keyring *kr;
    struct cf_errmsg em = { "" };
    struct stat sb;

    create_ok(path, codes3, 2, seed);           /* "10", "02" */
    kr = load_ok(path);
    memset(pat, 0xa5, sizeof pat);
    memcpy(seed, pat, sizeof pat);
    assert_int_equal(keyring_export(kr, "27", out, seed, &em), CF_ERR_NOTFOUND);
    assert_non_null(strstr(em.msg, "'27'"));
    assert_int_equal(keyring_export(kr, "1", out, seed, &em), CF_ERR_NOTFOUND);
    assert_int_equal(keyring_export(kr, "100", out, seed, &em),
                     CF_ERR_NOTFOUND);
    assert_memory_equal(seed, pat, sizeof pat);
    assert_int_equal(stat(out, &sb), -1);
    assert_int_equal(keyring_export(kr, "10", out, seed, &em), CF_OK);
    keyring_free(kr);
}

/* ---- data keys --------------------------------------------------------------- */

/* Wrapped by one instance, unwrapped by another load of the same file: the
 * same key bytes. */
static void
test_data_key_install_same_file(void **state)
{
    const char *path = in_dir(state, "keyring");
    uint8_t seed[KEYRING_SEED_BYTES], wrapped[KEYRING_WRAPPED_BYTES];
    uint8_t zero[KEYRING_KEY_BYTES] = { 0 };
    struct keyring *a, *b;

    create_ok(path, codes3, 3, seed);
    a = load_ok(path);
    b = load_ok(path);
    assert_int_equal(keyring_data_key_new(a, "10", 1, wrapped), CF_OK);
    assert_non_null(keyring_data_key(a, "10", 1));
    assert_true(memcmp(keyring_data_key(a, "10", 1), zero, sizeof zero) != 0);
    /* the wrapped form does not show the key */
    assert_true(memcmp(wrapped + 24, keyring_data_key(a, "10", 1),
                       KEYRING_KEY_BYTES) != 0);
    assert_null(keyring_data_key(b, "10", 1));
    assert_int_equal(keyring_data_key_install(b, "10", 1, wrapped,
                                              sizeof wrapped), CF_OK);
    assert_non_null(keyring_data_key(b, "10", 1));
    assert_memory_equal(keyring_data_key(a, "10", 1),
                        keyring_data_key(b, "10", 1), KEYRING_KEY_BYTES);
    assert_int_equal(keyring_current_version(b, "10"), 1);
    assert_null(keyring_data_key(b, "10", 2));
    assert_null(keyring_data_key(b, "02", 1));
    /* a second key for another version is another key */
    assert_int_equal(keyring_data_key_new(a, "10", 2, wrapped), CF_OK);
    assert_true(memcmp(keyring_data_key(a, "10", 1),
                       keyring_data_key(a, "10", 2), KEYRING_KEY_BYTES) != 0);
    keyring_free(b);
    keyring_free(a);
}

/* A keyring created separately (another KEK for the same code) cannot
 * unwrap. */
static void
test_data_key_install_foreign(void **state)
{
    const char *p1 = in_dir(state, "keyring");
    const char *p2 = in_dir(state, "foreign");
    uint8_t seed[KEYRING_SEED_BYTES], wrapped[KEYRING_WRAPPED_BYTES];
    struct keyring *a, *f;

    create_ok(p1, codes3, 3, seed);
    create_ok(p2, codes3, 3, seed);
    a = load_ok(p1);
    f = load_ok(p2);
    assert_int_equal(keyring_data_key_new(a, "10", 1, wrapped), CF_OK);
    assert_int_equal(keyring_data_key_install(f, "10", 1, wrapped,
                                              sizeof wrapped), CF_ERR_CRYPTO);
    assert_null(keyring_data_key(f, "10", 1));
    assert_int_equal(keyring_current_version(f, "10"), 0);
    keyring_free(f);
    keyring_free(a);
}

/* Wrapped bytes are bound to their version and compartment, every byte is
 * authenticated, and the length must be exact. */
static void
test_data_key_wrapped_bound(void **state)
{
    const char *path = in_dir(state, "keyring");
    uint8_t seed[KEYRING_SEED_BYTES], wrapped[KEYRING_WRAPPED_BYTES + 1];
    uint8_t m[KEYRING_WRAPPED_BYTES];
    struct keyring *a, *b;
    size_t pos;
    unsigned bit;

    create_ok(path, codes3, 3, seed);
    a = load_ok(path);
    b = load_ok(path);
    assert_int_equal(keyring_data_key_new(a, "10", 1, wrapped), CF_OK);
    /* version 1 installed as version 2 */
    assert_int_equal(keyring_data_key_install(b, "10", 2, wrapped,
                                              KEYRING_WRAPPED_BYTES),
                     CF_ERR_CRYPTO);
    assert_null(keyring_data_key(b, "10", 2));
    assert_int_equal(keyring_current_version(b, "10"), 0);
    /* compartment "10" installed as "02" */
    assert_int_equal(keyring_data_key_install(b, "02", 1, wrapped,
                                              KEYRING_WRAPPED_BYTES),
                     CF_ERR_CRYPTO);
    assert_null(keyring_data_key(b, "02", 1));
    /* wrong lengths */
    wrapped[KEYRING_WRAPPED_BYTES] = 0;
    assert_int_equal(keyring_data_key_install(b, "10", 1, wrapped,
                                              KEYRING_WRAPPED_BYTES - 1),
                     CF_ERR_CRYPTO);
    assert_int_equal(keyring_data_key_install(b, "10", 1, wrapped,
                                              KEYRING_WRAPPED_BYTES + 1),
                     CF_ERR_CRYPTO);
    assert_int_equal(keyring_data_key_install(b, "10", 1, wrapped, 0),
                     CF_ERR_CRYPTO);
    assert_null(keyring_data_key(b, "10", 1));
    /* every bit */
    for (pos = 0; pos < KEYRING_WRAPPED_BYTES; pos++) {
        for (bit = 0; bit < 8; bit++) {
            memcpy(m, wrapped, sizeof m);
            m[pos] ^= (uint8_t)(1u << bit);
            assert_int_equal(keyring_data_key_install(b, "10", 1, m, sizeof m),
                             CF_ERR_CRYPTO);
        }
    }
    assert_null(keyring_data_key(b, "10", 1));
    /* unknown compartment */
    assert_int_equal(keyring_data_key_install(b, "99", 1, wrapped,
                                              KEYRING_WRAPPED_BYTES),
                     CF_ERR_NOTFOUND);
    /* and the right one installs */
    assert_int_equal(keyring_data_key_install(b, "10", 1, wrapped,
                                              KEYRING_WRAPPED_BYTES), CF_OK);
    assert_memory_equal(keyring_data_key(a, "10", 1),
                        keyring_data_key(b, "10", 1), KEYRING_KEY_BYTES);
    keyring_free(b);
    keyring_free(a);
}

/* A failed install (wrong keyring, forged bytes) leaves a key already held
 * for that version as it was. */
static void
test_data_key_failed_install_keeps_key(void **state)
{
    const char *p1 = in_dir(state, "keyring");
    const char *p2 = in_dir(state, "foreign");
    uint8_t seed[KEYRING_SEED_BYTES], wrapped[KEYRING_WRAPPED_BYTES];
    uint8_t foreign[KEYRING_WRAPPED_BYTES], held[KEYRING_KEY_BYTES];
    struct keyring *a, *f;

    create_ok(p1, codes3, 1, seed);
    create_ok(p2, codes3, 1, seed);
    a = load_ok(p1);
    f = load_ok(p2);
    assert_int_equal(keyring_data_key_new(a, "10", 1, wrapped), CF_OK);
    memcpy(held, keyring_data_key(a, "10", 1), sizeof held);
    assert_int_equal(keyring_data_key_new(f, "10", 1, foreign), CF_OK);
    assert_int_equal(keyring_data_key_install(a, "10", 1, foreign,
                                              sizeof foreign), CF_ERR_CRYPTO);
    assert_non_null(keyring_data_key(a, "10", 1));
    assert_memory_equal(keyring_data_key(a, "10", 1), held, sizeof held);
    /* A different, validly wrapped key for a version already held is
     * refused too; the same key again is accepted (a reload). */
    assert_int_equal(keyring_data_key_new(a, "10", 2, foreign), CF_OK);
    {
        struct keyring *b = load_ok(p1);
        uint8_t other[KEYRING_WRAPPED_BYTES];

        assert_int_equal(keyring_data_key_new(b, "10", 1, other), CF_OK);
        assert_int_equal(keyring_data_key_install(a, "10", 1, other, sizeof other),
                         CF_ERR_EXISTS);
        assert_memory_equal(keyring_data_key(a, "10", 1), held, sizeof held);
        assert_int_equal(keyring_data_key_install(a, "10", 1, wrapped, sizeof wrapped),
                         CF_OK);
        assert_memory_equal(keyring_data_key(a, "10", 1), held, sizeof held);
        keyring_free(b);
    }
    keyring_free(f);
    keyring_free(a);
}

/* keyring_data_key_new refuses a version already held and keeps it. */
static void
test_data_key_new_refuses_existing(void **state)
{
    const char *path = in_dir(state, "keyring");
    uint8_t seed[KEYRING_SEED_BYTES], w1[KEYRING_WRAPPED_BYTES];
    uint8_t w2[KEYRING_WRAPPED_BYTES], held[KEYRING_KEY_BYTES];
    struct keyring *a;

    create_ok(path, codes3, 3, seed);
    a = load_ok(path);
    assert_int_equal(keyring_data_key_new(a, "10", 1, w1), CF_OK);
    memcpy(held, keyring_data_key(a, "10", 1), sizeof held);
    memcpy(w2, w1, sizeof w2);
    assert_int_equal(keyring_data_key_new(a, "10", 1, w2), CF_ERR_EXISTS);
    assert_memory_equal(keyring_data_key(a, "10", 1), held, sizeof held);
    assert_memory_equal(w2, w1, sizeof w2);
    /* unknown compartment */
    assert_int_equal(keyring_data_key_new(a, "99", 1, w2), CF_ERR_CRYPTO);
    assert_int_equal(keyring_data_key_new(a, NULL, 1, w2), CF_ERR_CRYPTO);
    keyring_free(a);
}

static void
test_data_key_current_version(void **state)
{
    const char *path = in_dir(state, "keyring");
    uint8_t seed[KEYRING_SEED_BYTES], w[KEYRING_WRAPPED_BYTES];
    uint8_t w2[KEYRING_WRAPPED_BYTES];
    struct keyring *a, *b;

    create_ok(path, codes3, 3, seed);
    a = load_ok(path);
    b = load_ok(path);
    assert_int_equal(keyring_current_version(a, "10"), 0);
    assert_int_equal(keyring_data_key_new(a, "10", 3, w), CF_OK);
    assert_int_equal(keyring_current_version(a, "10"), 3);
    assert_int_equal(keyring_data_key_new(a, "10", 1, w), CF_OK);
    assert_int_equal(keyring_current_version(a, "10"), 3);
    assert_int_equal(keyring_data_key_new(a, "10", 5, w), CF_OK);
    assert_int_equal(keyring_current_version(a, "10"), 5);
    assert_int_equal(keyring_data_key_new(b, "10", 2, w2), CF_OK);
    assert_int_equal(keyring_data_key_install(a, "10", 2, w2, sizeof w2), CF_OK);
    assert_int_equal(keyring_current_version(a, "10"), 5);
    assert_int_equal(keyring_data_key_new(b, "10", 9, w2), CF_OK);
    assert_int_equal(keyring_data_key_install(a, "10", 9, w2, sizeof w2), CF_OK);
    assert_int_equal(keyring_current_version(a, "10"), 9);
    /* per compartment */
    assert_int_equal(keyring_current_version(a, "02"), 0);
    assert_int_equal(keyring_current_version(a, "99"), 0);
    assert_null(keyring_data_key(a, "10", 4));
    keyring_free(b);
    keyring_free(a);
}

/* KEYRING_MAX_VERSIONS at N-1, N, N+1; version 0 is never a version. */
static void
test_data_key_version_bounds(void **state)
{
    const char *path = in_dir(state, "keyring");
    uint8_t seed[KEYRING_SEED_BYTES], w[KEYRING_WRAPPED_BYTES];
    uint8_t pat[KEYRING_WRAPPED_BYTES];
    struct keyring *a, *b;
    uint32_t v;

    create_ok(path, codes3, 3, seed);
    a = load_ok(path);
    b = load_ok(path);
    memset(pat, 0xa5, sizeof pat);
    for (v = KEYRING_MAX_VERSIONS - 1; v <= KEYRING_MAX_VERSIONS + 1; v++) {
        memcpy(w, pat, sizeof w);
        if (v <= KEYRING_MAX_VERSIONS) {
            assert_int_equal(keyring_data_key_new(a, "10", v, w), CF_OK);
            assert_int_equal(keyring_current_version(a, "10"), v);
            assert_int_equal(keyring_data_key_install(b, "10", v, w, sizeof w),
                             CF_OK);
            assert_memory_equal(keyring_data_key(a, "10", v),
                                keyring_data_key(b, "10", v), KEYRING_KEY_BYTES);
        } else {
            assert_int_equal(keyring_data_key_new(a, "10", v, w), CF_ERR_LIMIT);
            assert_memory_equal(w, pat, sizeof w);
            assert_int_equal(keyring_data_key_install(b, "10", v, w, sizeof w),
                             CF_ERR_LIMIT);
            assert_null(keyring_data_key(a, "10", v));
        }
    }
    assert_int_equal(keyring_current_version(a, "10"), KEYRING_MAX_VERSIONS);
    /* version 0, and the largest value */
    memcpy(w, pat, sizeof w);
    assert_int_equal(keyring_data_key_new(a, "02", 0, w), CF_ERR_LIMIT);
    assert_memory_equal(w, pat, sizeof w);
    assert_int_equal(keyring_data_key_install(a, "02", 0, w, sizeof w),
                     CF_ERR_LIMIT);
    assert_int_equal(keyring_data_key_new(a, "02", UINT32_MAX, w), CF_ERR_LIMIT);
    assert_null(keyring_data_key(a, "02", 0));
    assert_null(keyring_data_key(a, "10", 0));
    assert_null(keyring_data_key(a, "10", UINT32_MAX));
    assert_int_equal(keyring_current_version(a, "02"), 0);
    keyring_free(b);
    keyring_free(a);
}

static void
test_free_null(void **state)
{
    (void)state;
    keyring_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_mode_and_contents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_refuses_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_rejects_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_rejects_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_compartment_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_loose_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_detects_every_bit_flip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_detects_every_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_wrong_magic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_data_after_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_compartment_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_size_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_requires_every_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_single_compartment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_refuses_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_unknown_compartment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_key_install_same_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_key_install_foreign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_key_wrapped_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_key_failed_install_keeps_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_key_new_refuses_existing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_key_current_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_key_version_bounds, setup, teardown),
        cmocka_unit_test(test_free_null),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
