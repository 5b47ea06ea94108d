/*
 * test_stolen_store.c - DESIGN.md section 5's promise: a copy of the store
 * (and its WAL) is useless without the keyring.
 *
 * Generates more than 10,000 synthetic people with the demo generator,
 * remembers every value it seeded, then scans the raw bytes of the store
 * file and its WAL for each family name, given name, INE, e-mail, phone,
 * address and birth date (ISO and French forms): zero hits allowed.  The
 * same scanner run over a deliberately unsealed control database must find
 * what was put there, so a scanner that finds nothing cannot pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "demo.h"
#include "records.h"
#include "testutil.h"

#define MIN_NEEDLE 5            /* shorter strings match random bytes by chance */

struct needle {
    char *s;
    size_t len;
    const char *what;
};

struct needles {
    struct needle *v;
    size_t n, cap;
};

static void
add_needle(struct needles *nd, const char *s, const char *what)
{
    if (s == NULL)
        return;
    if (nd->n == nd->cap) {
        nd->cap = nd->cap ? nd->cap * 2 : 4096;
        nd->v = realloc(nd->v, nd->cap * sizeof *nd->v);
        assert_non_null(nd->v);
    }
    nd->v[nd->n].s = strdup(s);
    nd->v[nd->n].len = strlen(s);
    nd->v[nd->n].what = what;
    nd->n++;
}

static uint64_t people;

/* demo callback: remember every personal value as a person would search it */
static void
collect(void *arg, const struct record_add *in, const char *id)
{
    struct needles *nd = arg;
    size_t i;
    char fr[16];

    (void)id;
    switch (in->kind) {
    case REC_STUDENT:
        people++;
        add_needle(nd, in->value[0], "INE");
        add_needle(nd, in->value[1], "family name");
        add_needle(nd, in->value[2], "given name");
        add_needle(nd, in->value[3], "birth date");
        /* 2009-03-14 -> 14/03/2009 */
        snprintf(fr, sizeof fr, "%.2s/%.2s/%.4s", in->value[3] + 8, in->value[3] + 5, in->value[3]);
        add_needle(nd, fr, "birth date (FR)");
        add_needle(nd, in->value[4], "address");
        add_needle(nd, in->value[5], "e-mail");
        break;
    case REC_GUARDIAN:
    case REC_STAFF:
        people++;
        for (i = 0; i < 5 && in->value[i] != NULL; i++)
            add_needle(nd, in->value[i], in->kind == REC_GUARDIAN ? "guardian field" : "staff field");
        break;
    default:
        break;
    }
}

static int
cmp_needle(const void *a, const void *b)
{
    const struct needle *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);

    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

static uint32_t
h24(const unsigned char *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return (v * 2654435761u) >> 8;
}

/*
 * Counts needles found in buf.  Needles are sorted; a 2^24-bit filter on
 * their first four bytes skips almost every position at once.
 */
static size_t
scan(const struct needles *nd, const unsigned char *buf, size_t len,
     const char *label, int verbose)
{
    static uint8_t filter[(1u << 24) / 8];
    size_t i, hits = 0;

    memset(filter, 0, sizeof filter);
    for (i = 0; i < nd->n; i++) {
        uint32_t h = h24((const unsigned char *)nd->v[i].s);
        filter[h >> 3] |= (uint8_t)(1u << (h & 7));
    }
    for (i = 0; i + MIN_NEEDLE <= len; i++) {
        uint32_t h = h24(buf + i);
        size_t lo = 0, hi = nd->n;

        if (!(filter[h >> 3] & (1u << (h & 7))))
            continue;
        /* first needle whose 4-byte prefix is >= buf[i..i+4) */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (memcmp(nd->v[mid].s, buf + i, 4) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (; lo < nd->n && memcmp(nd->v[lo].s, buf + i, 4) == 0; lo++) {
            if (nd->v[lo].len <= len - i && memcmp(nd->v[lo].s, buf + i, nd->v[lo].len) == 0) {
                if (verbose && hits < 5)
                    fprintf(stderr, "  %s: found a %s at offset %zu\n", label, nd->v[lo].what, i);
                hits++;
            }
        }
    }
    return hits;
}

static size_t
scan_file(const struct needles *nd, const char *path, int *existed)
{
    size_t len, hits;
    unsigned char *buf = tu_read(path, &len);

    *existed = buf != NULL;
    if (buf == NULL)
        return 0;
    hits = scan(nd, buf, len, path, 1);
    fprintf(stderr, "  scanned %s: %zu bytes, %zu hits\n", path, len, hits);
    free(buf);
    return hits;
}

static void
test_stolen_store_reveals_nothing(void **state)
{
    static const char *const codes[] = { "10" };
    struct needles nd = { 0 };
    struct cf_errmsg em = { "" };
    struct records *r = NULL;
    struct demo_counts counts;
    struct demo_opts o = { "10", 5, 1200, 2, 20260901, 0 };
    char dir[300], db[400], wal[400], control[400];
    uint8_t seed[32];
    size_t i, w;
    int existed;

    (void)state;
    snprintf(dir, sizeof dir, "%s/data", tu_tmpdir());
    assert_int_equal(records_init(dir, codes, 1, seed, &em), CF_OK);
    assert_int_equal(records_open(dir, NULL, &r, &em), CF_OK);
    people = 0;
    if (demo_generate(r, &o, collect, &nd, &counts, &em) != CF_OK)
        fail_msg("demo: %s", em.msg);
    fprintf(stderr, "  seeded %llu people, %zu values\n", (unsigned long long)people, nd.n);
    assert_true(people >= 10000);

    /* Unique needles, each long enough to make chance matches negligible. */
    qsort(nd.v, nd.n, sizeof *nd.v, cmp_needle);
    for (i = 0, w = 0; i < nd.n; i++) {
        assert_true(nd.v[i].len >= MIN_NEEDLE);
        if (w > 0 && cmp_needle(&nd.v[w - 1], &nd.v[i]) == 0) {
            free(nd.v[i].s);
            continue;
        }
        nd.v[w++] = nd.v[i];
    }
    nd.n = w;

    /* While open: the WAL holds the freshly committed pages. */
    snprintf(db, sizeof db, "%s/coffre.db", dir);
    snprintf(wal, sizeof wal, "%s/coffre.db-wal", dir);
    assert_int_equal(scan_file(&nd, db, &existed), 0);
    assert_true(existed);
    assert_int_equal(scan_file(&nd, wal, &existed), 0);
    assert_true(existed);
    /* Stopped: what a thief copies from the disk. */
    records_close(r);
    assert_int_equal(scan_file(&nd, db, &existed), 0);
    assert_int_equal(scan_file(&nd, wal, &existed), 0);

    /* Control: the same values in a plain SQLite file are all found. */
    {
        sqlite3 *c;
        sqlite3_stmt *s;
        size_t found;

        snprintf(control, sizeof control, "%s/control.db", dir);
        assert_int_equal(sqlite3_open(control, &c), SQLITE_OK);
        assert_int_equal(sqlite3_exec(c, "CREATE TABLE people (v TEXT); BEGIN", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(c, "INSERT INTO people VALUES (?1)", -1, &s, NULL), SQLITE_OK);
        for (i = 0; i < nd.n; i += 50) {
            sqlite3_bind_text(s, 1, nd.v[i].s, (int)nd.v[i].len, SQLITE_STATIC);
            assert_int_equal(sqlite3_step(s), SQLITE_DONE);
            sqlite3_reset(s);
        }
        sqlite3_finalize(s);
        assert_int_equal(sqlite3_exec(c, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(c);
        found = scan_file(&nd, control, &existed);
        assert_true(found >= (nd.n + 49) / 50);
    }

    for (i = 0; i < nd.n; i++)
        free(nd.v[i].s);
    free(nd.v);
    *strrchr(dir, '/') = '\0';
    tu_rmrf(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stolen_store_reveals_nothing),
    };

    return cmocka_run_group_tests_name("stolen_store", tests, NULL, NULL);
}
