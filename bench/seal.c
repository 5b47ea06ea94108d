/*
 * bench/seal.c - what field sealing costs next to the bare primitives.
 *
 * Measures, in one run and side by side:
 *   - seal_field + seal_open pairs per second against a bare
 *     crypto_aead_xchacha20poly1305_ietf_encrypt + _decrypt pair (no
 *     associated data) on the same plaintext sizes;
 *   - seal_blind_index per second against a bare keyed crypto_generichash
 *     of the same value to the same length;
 *   - seal_normalize per second for an ASCII and an accented name.
 * Each case is warmed up, then timed 3 times (coffre and raw alternating);
 * the table shows the median and the min-max.  Prints a Markdown table on
 * stdout, progress on stderr.  The keyring lives in a mkdtemp directory
 * under /tmp, removed at the end.
 *
 *   build/bench_seal [--iters N] [--sizes 16,64,256]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "bounds.h"
#include "err.h"
#include "ids.h"
#include "keyring.h"
#include "seal.h"
#include "bench.h"
#include "banned.h"

#define RUNS        3
#define MAX_SIZES   8
#define ITERS_DEFAULT 300000ULL
#define ITERS_MIN   1000ULL
#define ITERS_MAX   100000000ULL
#define WARMUP_DIV  10            /* warm-up: iters / WARMUP_DIV operations */
#define NINES       1024          /* distinct INEs the blind-index loops cycle through */

static volatile uint8_t sink;     /* keeps results observable */

static void
die(const char *what)
{
    fprintf(stderr, "bench_seal: %s\n", what);
    exit(1);
}

/* Operations per second of RUNS runs: median, min, max. */
static struct stat3
rate_of(const double *secs, uint64_t ops)
{
    double r[RUNS];
    int i;

    for (i = 0; i < RUNS; i++)
        r[i] = (double)ops / secs[i];
    return stat_of(r, RUNS);
}

/* ---- the cases ---------------------------------------------------------- */

/* Nonces come from a pool refilled 4 KiB at a time, as records.c draws
 * them; both the coffre and the raw loop use it, so both pay the same. */
struct nonces {
    uint8_t buf[4096];
    size_t used;
};

static const uint8_t *
nonce_next(struct nonces *p)
{
    const uint8_t *n;

    if (p->used + SEAL_NONCE_BYTES > sizeof p->buf) {
        randombytes_buf(p->buf, sizeof p->buf);
        p->used = 0;
    }
    n = p->buf + p->used;
    p->used += SEAL_NONCE_BYTES;
    return n;
}

struct ctx {
    const struct keyring *kr;
    const uint8_t *raw_key;              /* 32 bytes, ordinary memory */
    const uint8_t *raw_idx_key;          /* 32 bytes */
    struct seal_ad ad;
    struct nonces np;
    size_t size;                         /* plaintext bytes */
    char ines[NINES][INE_BYTES + 1];
    const char *name;                    /* for normalisation */
};

typedef void (*bench_fn)(struct ctx *c, uint64_t iters);

static void
aead_coffre(struct ctx *c, uint64_t iters)
{
    uint8_t pt[RECORD_FIELD_PT_MAX], ct[SEAL_SIZE(RECORD_FIELD_PT_MAX)];
    uint8_t back[RECORD_FIELD_PT_MAX];
    size_t n;
    uint64_t i;

    memset(pt, 'a', c->size);
    for (i = 0; i < iters; i++) {
        pt[0] = (uint8_t)i;
        if (seal_field(c->kr, &c->ad, 1, nonce_next(&c->np), pt, c->size, ct,
                       sizeof ct) != CF_OK)
            die("seal_field failed");
        if (seal_open(c->kr, &c->ad, ct, SEAL_SIZE(c->size), back, sizeof back,
                      &n) != CF_OK || n != c->size || back[0] != pt[0])
            die("seal_open failed");
        sink ^= back[n - 1];
    }
}

static void
aead_raw(struct ctx *c, uint64_t iters)
{
    uint8_t pt[RECORD_FIELD_PT_MAX], ct[RECORD_FIELD_PT_MAX + SEAL_TAG_BYTES];
    uint8_t back[RECORD_FIELD_PT_MAX];
    unsigned long long clen, n;
    uint64_t i;

    memset(pt, 'a', c->size);
    for (i = 0; i < iters; i++) {
        const uint8_t *nonce = nonce_next(&c->np);

        pt[0] = (uint8_t)i;
        crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &clen, pt, c->size, NULL, 0,
                                                   NULL, nonce, c->raw_key);
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(back, &n, NULL, ct, clen,
                                                       NULL, 0, nonce, c->raw_key) != 0 ||
            n != c->size || back[0] != pt[0])
            die("raw decrypt failed");
        sink ^= back[n - 1];
    }
}

static void
bidx_coffre(struct ctx *c, uint64_t iters)
{
    uint8_t out[16];
    uint64_t i;

    for (i = 0; i < iters; i++) {
        const char *v = c->ines[i % NINES];

        if (seal_blind_index(c->kr, "10", "ine", v, INE_BYTES, out, sizeof out) != CF_OK)
            die("seal_blind_index failed");
        sink ^= out[0];
    }
}

static void
bidx_raw(struct ctx *c, uint64_t iters)
{
    uint8_t out[16];
    uint64_t i;

    for (i = 0; i < iters; i++) {
        const char *v = c->ines[i % NINES];

        crypto_generichash(out, sizeof out, (const uint8_t *)v, INE_BYTES,
                           c->raw_idx_key, KEYRING_KEY_BYTES);
        sink ^= out[0];
    }
}

static void
normalize_coffre(struct ctx *c, uint64_t iters)
{
    char out[RECORD_FIELD_PT_MAX + 1];
    struct cf_errmsg em;
    size_t len = strlen(c->name), n;
    uint64_t i;

    for (i = 0; i < iters; i++) {
        if (seal_normalize("family_name", c->name, len, SEAL_NORM_TEXT,
                           NAME_MAX_BYTES, out, sizeof out, &n, &em) != CF_OK)
            die("seal_normalize failed");
        sink ^= (uint8_t)out[n - 1];
    }
}

/* Times `coffre` and (if non-NULL) `raw` RUNS times each, alternating,
 * after one warm-up of each. */
static void
measure(struct ctx *c, bench_fn coffre, bench_fn raw, uint64_t iters,
        double *t_coffre, double *t_raw)
{
    double t0;
    int run;

    coffre(c, iters / WARMUP_DIV);
    if (raw != NULL)
        raw(c, iters / WARMUP_DIV);
    for (run = 0; run < RUNS; run++) {
        t0 = now();
        coffre(c, iters);
        t_coffre[run] = now() - t0;
        if (raw != NULL) {
            t0 = now();
            raw(c, iters);
            t_raw[run] = now() - t0;
        }
    }
}

static void
row(const char *op, const char *bytes, uint64_t iters, const double *tc,
    const double *tr)
{
    char a[128], b[128];
    struct stat3 rc = rate_of(tc, iters);

    if (tr != NULL) {
        struct stat3 rr = rate_of(tr, iters);

        printf("| %s | %s | %s | %s | %.2f |\n", op, bytes, fmt_rate(a, sizeof a, rc),
               fmt_rate(b, sizeof b, rr), rc.med / rr.med);
    } else
        printf("| %s | %s | %s | — | — |\n", op, bytes, fmt_rate(a, sizeof a, rc));
    fflush(stdout);
}

/* ---- set-up ------------------------------------------------------------- */

static void
usage(void)
{
    fprintf(stderr,
            "usage: bench_seal [--iters N] [--sizes S1,S2,...]\n"
            "  --iters N   operations per timed run (default %llu, %llu..%llu)\n"
            "  --sizes L   field sizes in bytes for seal+open (default 16,64,256;\n"
            "              at most %d, each 1..%d)\n",
            ITERS_DEFAULT, ITERS_MIN, ITERS_MAX, MAX_SIZES, RECORD_FIELD_PT_MAX);
    exit(2);
}

static size_t
parse_sizes(const char *s, size_t *sizes)
{
    char one[16];
    size_t n = 0, k;
    uint64_t v;

    while (*s != '\0') {
        for (k = 0; s[k] != '\0' && s[k] != ','; k++)
            if (k + 1 >= sizeof one)
                usage();
        memcpy(one, s, k);
        one[k] = '\0';
        if (n >= MAX_SIZES || parse_u64(one, 1, RECORD_FIELD_PT_MAX, &v) != 0)
            usage();
        sizes[n++] = (size_t)v;
        s += k + (s[k] == ',');
    }
    if (n == 0)
        usage();
    return n;
}

int
main(int argc, char **argv)
{
    static struct ctx c;
    size_t sizes[MAX_SIZES] = { 16, 64, 256 }, nsizes = 3, i;
    uint64_t iters = ITERS_DEFAULT;
    char dir[] = "/tmp/coffre-bench-seal.XXXXXX", krpath[sizeof dir + 16];
    uint8_t seed[KEYRING_SEED_BYTES], wrapped[KEYRING_WRAPPED_BYTES];
    uint8_t raw_key[KEYRING_KEY_BYTES], raw_idx_key[KEYRING_KEY_BYTES];
    uint8_t record_id[SEAL_ID_BYTES];
    const char *codes[] = { "10" };
    struct keyring *kr = NULL;
    struct cf_errmsg em = { "" };
    double tc[RUNS], tr[RUNS];
    char label[32], ib[32];
    int a;

    for (a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--iters") == 0 && a + 1 < argc) {
            if (parse_u64(argv[++a], ITERS_MIN, ITERS_MAX, &iters) != 0)
                usage();
        } else if (strcmp(argv[a], "--sizes") == 0 && a + 1 < argc)
            nsizes = parse_sizes(argv[++a], sizes);
        else
            usage();
    }
    if (sodium_init() < 0)
        die("libsodium failed to initialise");

    if (mkdtemp(dir) == NULL)
        die("cannot create a temporary directory under /tmp");
    snprintf(krpath, sizeof krpath, "%s/keyring", dir);
    if (keyring_create(krpath, codes, 1, seed, &em) != CF_OK ||
        keyring_load(krpath, &kr, &em) != CF_OK) {
        fprintf(stderr, "bench_seal: keyring: %s\n", em.msg);
        unlink(krpath);
        rmdir(dir);
        return 1;
    }
    sodium_memzero(seed, sizeof seed);
    /* The keyring file is no longer needed: keys are in memory. */
    if (unlink(krpath) != 0 || rmdir(dir) != 0)
        fprintf(stderr, "bench_seal: warning: could not remove %s\n", dir);
    if (keyring_data_key_new(kr, "10", 1, wrapped) != CF_OK)
        die("keyring_data_key_new failed");

    randombytes_buf(raw_key, sizeof raw_key);
    randombytes_buf(raw_idx_key, sizeof raw_idx_key);
    randombytes_buf(record_id, sizeof record_id);
    c.kr = kr;
    c.raw_key = raw_key;
    c.raw_idx_key = raw_idx_key;
    c.ad = (struct seal_ad){ "10", "student", record_id, "family_name" };
    c.np.used = sizeof c.np.buf;
    for (i = 0; i < NINES; i++) {
        struct ine ine;

        if (ids_make_ine_bea(999000000ULL + i * 977, &ine) != CF_OK)
            die("ids_make_ine_bea failed");
        memcpy(c.ines[i], ine.s, sizeof c.ines[i]);
    }

    fprintf(stderr, "bench_seal: %s operations per run, %d runs per case, "
            "libsodium %s\n", fmt_int(ib, sizeof ib, iters), RUNS,
            sodium_version_string());
    printf("| operation (%s per run, %d runs) | bytes | coffre, per s: median (min–max) "
           "| raw libsodium, per s: median (min–max) | coffre/raw |\n",
           fmt_int(ib, sizeof ib, iters), RUNS);
    printf("|---|---:|---:|---:|---:|\n");

    for (i = 0; i < nsizes; i++) {
        fprintf(stderr, "bench_seal: seal+open, %zu bytes\n", sizes[i]);
        c.size = sizes[i];
        measure(&c, aead_coffre, aead_raw, iters, tc, tr);
        snprintf(label, sizeof label, "%zu", sizes[i]);
        row("seal_field + seal_open (raw: XChaCha20-Poly1305 encrypt + decrypt)",
            label, iters, tc, tr);
    }

    fprintf(stderr, "bench_seal: blind index\n");
    measure(&c, bidx_coffre, bidx_raw, iters, tc, tr);
    snprintf(label, sizeof label, "%d → 16", INE_BYTES);
    row("seal_blind_index of an INE (raw: keyed crypto_generichash)", label,
        iters, tc, tr);

    fprintf(stderr, "bench_seal: normalisation\n");
    c.name = "Jean-Baptiste MARTIN";
    measure(&c, normalize_coffre, NULL, iters, tc, NULL);
    snprintf(label, sizeof label, "%zu", strlen(c.name));
    row("seal_normalize, ASCII name \"Jean-Baptiste MARTIN\"", label, iters, tc, NULL);
    c.name = "Héloïse LEFÈVRE-GUÉRIN";
    measure(&c, normalize_coffre, NULL, iters, tc, NULL);
    snprintf(label, sizeof label, "%zu", strlen(c.name));
    row("seal_normalize, accented name \"Héloïse LEFÈVRE-GUÉRIN\"", label, iters, tc, NULL);

    sodium_memzero(raw_key, sizeof raw_key);
    sodium_memzero(raw_idx_key, sizeof raw_idx_key);
    keyring_free(kr);
    return 0;
}
