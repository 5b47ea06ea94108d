/*
 * test_records.c - records: validation, sealing, blind-index lookups,
 * field masks, compartments, key rotation, and bad input changing nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <sys/stat.h>

/* Every call records.c makes to seal_open is counted: a masked field must
 * never be decrypted. */
#include "seal.h"
static int seal_opens;
enum cf_err counted_seal_open(const struct keyring *kr, const struct seal_ad *ad,
                              const uint8_t *in, size_t inlen, uint8_t *pt, size_t cap,
                              size_t *ptlen);
#define seal_open counted_seal_open
#include "../../src/records.c"
#undef seal_open
#include "testutil.h"

enum cf_err
counted_seal_open(const struct keyring *kr, const struct seal_ad *ad, const uint8_t *in,
                  size_t inlen, uint8_t *pt, size_t cap, size_t *ptlen)
{
    seal_opens++;
    return seal_open(kr, ad, in, inlen, pt, cap, ptlen);
}

struct fx {
    char dir[300];
    struct records *r;
    char est[RECORD_ID_HEX + 1];       /* 0999001W, académie 10 */
    char est2[RECORD_ID_HEX + 1];      /* 0999002X, académie 02 */
    char cls[RECORD_ID_HEX + 1];
};

static struct record rec;              /* large: keep off the stack */

static char *
path_in(const struct fx *f, const char *name)
{
    static char p[512];

    snprintf(p, sizeof p, "%s/%s", f->dir, name);
    return p;
}

static void
add_ok(struct records *r, const struct record_add *in, char *id)
{
    struct cf_errmsg em = { "" };
    enum cf_err rc = records_add(r, in, id, &em);

    if (rc != CF_OK)
        fail_msg("records_add: %s", em.msg);
}

static int
setup(void **state)
{
    static const char *const codes[] = { "10", "02" };
    struct fx *f = calloc(1, sizeof *f);
    struct cf_errmsg em = { "" };
    uint8_t seed[32];

    snprintf(f->dir, sizeof f->dir, "%s/data", tu_tmpdir());
    assert_int_equal(records_init(f->dir, codes, 2, seed, &em), CF_OK);
    assert_int_equal(records_open(f->dir, NULL, &f->r, &em), CF_OK);
    add_ok(f->r, &(struct record_add){ .kind = REC_ESTABLISHMENT, .compartment = "10",
                                       .value = { "0999001W", "Collège Test" } }, f->est);
    add_ok(f->r, &(struct record_add){ .kind = REC_ESTABLISHMENT, .compartment = "02",
                                       .value = { "0999002X", "Lycée Test" } }, f->est2);
    add_ok(f->r, &(struct record_add){ .kind = REC_CLASS, .parent = { f->est, NULL },
                                       .value = { "6A" } }, f->cls);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    char parent[300];

    records_close(f->r);
    snprintf(parent, sizeof parent, "%s", f->dir);
    *strrchr(parent, '/') = '\0';
    tu_rmrf(parent);
    free(f);
    return 0;
}

static void
add_student(struct fx *f, const char *est, const char *ine, const char *family,
            const char *given, char *id)
{
    struct record_add in = { .kind = REC_STUDENT, .parent = { est, NULL },
                             .value = { ine, family, given, "14/03/2012",
                                        "3 rue des Lilas, 99001 Testville", NULL } };
    add_ok(f->r, &in, id);
}

/* Total rows of every kind, straight from SQLite. */
static long
row_count(struct fx *f)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    long n = 0;

    assert_int_equal(sqlite3_open(path_in(f, "coffre.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
        "SELECT (SELECT count(*) FROM establishments) + (SELECT count(*) FROM classes) + "
        "(SELECT count(*) FROM students) + (SELECT count(*) FROM guardians) + "
        "(SELECT count(*) FROM guardian_links) + (SELECT count(*) FROM staff)", -1, &s, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static void
test_add_get_find(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    char id[RECORD_ID_HEX + 1];
    int fam = records_field_index(REC_STUDENT, "family_name");
    int date = records_field_index(REC_STUDENT, "birth_date");

    add_student(f, f->est, "0999000001s", "  MARTIN  ", "Zoe\xCC\x81  Anne", id);
    assert_int_equal(records_get(f->r, REC_STUDENT, id, RECORD_ALL_FIELDS, &rec, &em), CF_OK);
    assert_string_equal(rec.value[0], "0999000001S");           /* upper-cased */
    assert_string_equal(rec.value[fam], "MARTIN");              /* trimmed */
    assert_string_equal(rec.value[2], "Zo\xC3\xA9 Anne");       /* NFC, spaces collapsed */
    assert_string_equal(rec.value[date], "2012-03-14");         /* DD/MM/YYYY -> ISO */
    assert_string_equal(rec.compartment, "10");
    assert_string_equal(rec.parent[0], f->est);
    assert_false(rec.present & (1u << records_field_index(REC_STUDENT, "email")));

    /* Lookup through the blind index, whatever the case or spacing typed. */
    assert_int_equal(records_find(f->r, REC_STUDENT, "ine", " 0999000001s ", RECORD_ALL_FIELDS,
                                  &rec, &em), CF_OK);
    assert_string_equal(rec.id, id);
    assert_int_equal(records_find(f->r, REC_STUDENT, "ine", "0999000002T", RECORD_ALL_FIELDS,
                                  &rec, &em), CF_ERR_NOTFOUND);
    /* Only indexed fields can be looked up. */
    assert_int_equal(records_find(f->r, REC_STUDENT, "family_name", "MARTIN", RECORD_ALL_FIELDS,
                                  &rec, &em), CF_ERR_INPUT);
}

static void
test_combining_accent_finds_same_record(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    char id[RECORD_ID_HEX + 1];
    struct record_add in = { .kind = REC_STAFF, .parent = { f->est, NULL },
        .value = { "DUPONT", "Zoé", "Zo\xC3\xA9.Dupont@AC-Demo.invalid", "professeure" } };

    add_ok(f->r, &in, id);
    /* typed with a combining accent and other case */
    assert_int_equal(records_find(f->r, REC_STAFF, "email", "zoe\xCC\x81.dupont@ac-demo.INVALID",
                                  RECORD_ALL_FIELDS, &rec, &em), CF_OK);
    assert_string_equal(rec.id, id);
    assert_string_equal(rec.value[2], "zo\xC3\xA9.dupont@ac-demo.invalid");
}

static void
test_field_mask_opens_only_asked(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    char id[RECORD_ID_HEX + 1];
    uint32_t mask = 1u << records_field_index(REC_STUDENT, "family_name");

    add_student(f, f->est, "0999000005W", "PETIT", "Louise", id);
    memset(&rec, 'X', sizeof rec);
    seal_opens = 0;
    assert_int_equal(records_get(f->r, REC_STUDENT, id, mask, &rec, &em), CF_OK);
    assert_int_equal(rec.present, mask);
    /* one field asked, one decryption: the five others stayed sealed */
    assert_int_equal(seal_opens, 1);
    seal_opens = 0;
    assert_int_equal(records_get(f->r, REC_STUDENT, id, 0, &rec, &em), CF_OK);
    assert_int_equal(seal_opens, 0);
    assert_int_equal(records_get(f->r, REC_STUDENT, id, RECORD_ALL_FIELDS, &rec, &em), CF_OK);
    assert_int_equal(seal_opens, 5);        /* ine, names, birth date, address (no e-mail) */
    memset(&rec, 'X', sizeof rec);
    assert_int_equal(records_get(f->r, REC_STUDENT, id, mask, &rec, &em), CF_OK);
    assert_string_equal(rec.value[1], "PETIT");
    /* Fields outside the mask were never written into the output. */
    assert_int_equal(rec.value[records_field_index(REC_STUDENT, "given_names")][0], 'X');
    assert_int_equal(rec.value[records_field_index(REC_STUDENT, "birth_date")][0], 'X');
    /* the same in two steps over one read: the header opens nothing, the
     * kept row opens the mask only, even after other reads in between */
    {
        static struct record other;
        char id2[RECORD_ID_HEX + 1];

        add_student(f, f->est, "0999000006X", "GRAND", "Paul", id2);
        seal_opens = 0;
        memset(&rec, 'X', sizeof rec);
        assert_int_equal(records_get_kept(f->r, REC_STUDENT, id, &rec, &em), CF_OK);
        assert_int_equal(rec.present, 0);
        assert_int_equal(seal_opens, 0);
        assert_int_equal(records_get(f->r, REC_STUDENT, id2, RECORD_ALL_FIELDS, &other, &em), CF_OK);
        seal_opens = 0;
        assert_int_equal(records_open_kept(f->r, mask, &rec, &em), CF_OK);
        assert_int_equal(seal_opens, 1);
        assert_int_equal(rec.present, mask);
        assert_string_equal(rec.value[1], "PETIT");
        assert_int_equal(rec.value[records_field_index(REC_STUDENT, "given_names")][0], 'X');
        /* another record kept since: refused, nothing opened */
        assert_int_equal(records_get_kept(f->r, REC_STUDENT, id2, &other, &em), CF_OK);
        seal_opens = 0;
        assert_int_equal(records_open_kept(f->r, mask, &rec, &em), CF_ERR_INPUT);
        assert_int_equal(seal_opens, 0);
        assert_int_equal(records_get_kept(f->r, REC_STUDENT, "00000000000000000000000000000000",
                                          &other, &em), CF_ERR_NOTFOUND);
        assert_int_equal(records_open_kept(f->r, mask, &other, &em), CF_ERR_INPUT);
    }
}

static void
test_bad_input_changes_nothing(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em;
    char id[RECORD_ID_HEX + 1], longname[NAME_MAX_BYTES + 2], okname[NAME_MAX_BYTES + 1];
    long before = row_count(f);
    static const struct { const char *ine, *family, *date, *email; enum cf_err want; const char *in_msg; } cases[] = {
        { "0999000001A", "MARTIN", "2012-03-14", NULL, CF_ERR_INPUT, "ine" },  /* check letter */
        { "123", "MARTIN", "2012-03-14", NULL, CF_ERR_INPUT, "ine" },
        { "0999000003U", "", "2012-03-14", NULL, CF_ERR_INPUT, "family_name" },
        { "0999000003U", "   ", "2012-03-14", NULL, CF_ERR_INPUT, "family_name" },
        { "0999000003U", "MAR\xFFTIN", "2012-03-14", NULL, CF_ERR_INPUT, "family_name" },
        { "0999000003U", "MAR\nTIN", "2012-03-14", NULL, CF_ERR_INPUT, "family_name" },
        { "0999000003U", "MARTIN", "2012-02-30", NULL, CF_ERR_INPUT, "birth_date" },
        { "0999000003U", "MARTIN", "1899-12-31", NULL, CF_ERR_INPUT, "birth_date" },
        { "0999000003U", "MARTIN", "14-03-2012", NULL, CF_ERR_INPUT, "birth_date" },
        { "0999000003U", "MARTIN", "2012-03-14", "not-an-email", CF_ERR_INPUT, "email" },
        { "0999000003U", "MARTIN", "2012-03-14", "a@b@c.fr", CF_ERR_INPUT, "email" },
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct record_add in = { .kind = REC_STUDENT, .parent = { f->est, NULL },
            .value = { cases[i].ine, cases[i].family, "Louise", cases[i].date, NULL, cases[i].email } };

        memset(&em, 0, sizeof em);
        assert_int_equal(records_add(f->r, &in, id, &em), cases[i].want);
        assert_non_null(strstr(em.msg, cases[i].in_msg));
        /* the message never carries the value */
        if (strlen(cases[i].family) > 3)
            assert_null(strstr(em.msg, cases[i].family));
        assert_null(strstr(em.msg, cases[i].ine));
    }

    /* NAME_MAX_BYTES: N accepted, N+1 refused with CF_ERR_LIMIT. */
    memset(okname, 'A', NAME_MAX_BYTES);
    okname[NAME_MAX_BYTES] = '\0';
    memset(longname, 'A', NAME_MAX_BYTES + 1);
    longname[NAME_MAX_BYTES + 1] = '\0';
    {
        struct record_add in = { .kind = REC_STUDENT, .parent = { f->est, NULL },
            .value = { "0999000003U", longname, "Louise", "2012-03-14", NULL, NULL } };
        assert_int_equal(records_add(f->r, &in, id, &em), CF_ERR_LIMIT);
        assert_int_equal(row_count(f), before);
        in.value[1] = okname;
        assert_int_equal(records_add(f->r, &in, id, &em), CF_OK);
        okname[NAME_MAX_BYTES - 1] = '\0';
        in.value[0] = "0999000004V";
        in.value[1] = okname;
        assert_int_equal(records_add(f->r, &in, id, &em), CF_OK);
        before += 2;
    }

    /* Wrong parents: unknown establishment, malformed id, class of another
     * establishment, missing required parent, unknown académie. */
    {
        char other_cls[RECORD_ID_HEX + 1];
        struct record_add in = { .kind = REC_STUDENT, .parent = { "00000000000000000000000000000000", NULL },
            .value = { "0999000006X", "MARTIN", "Louise", "2012-03-14", NULL, NULL } };

        assert_int_equal(records_add(f->r, &in, id, &em), CF_ERR_NOTFOUND);
        in.parent[0] = "xyz";
        assert_int_equal(records_add(f->r, &in, id, &em), CF_ERR_INPUT);
        in.parent[0] = NULL;
        assert_int_equal(records_add(f->r, &in, id, &em), CF_ERR_INPUT);
        add_ok(f->r, &(struct record_add){ .kind = REC_CLASS, .parent = { f->est2, NULL },
                                           .value = { "2nde1" } }, other_cls);
        before++;
        in.parent[0] = f->est;
        in.parent[1] = other_cls;
        assert_int_equal(records_add(f->r, &in, id, &em), CF_ERR_INPUT);
        assert_non_null(strstr(em.msg, "another establishment"));
        assert_int_equal(records_add(f->r, &(struct record_add){ .kind = REC_ESTABLISHMENT,
            .compartment = "05", .value = { "0999010F", "X" } }, id, &em), CF_ERR_INPUT);
    }
    /* A duplicate INE is refused by its unique index, and names it. */
    add_student(f, f->est, "0999000007Y", "MARTIN", "Louise", id);
    before++;
    {
        struct record_add in = { .kind = REC_STUDENT, .parent = { f->est, NULL },
            .value = { "0999000007Y", "AUTRE", "Louise", "2012-03-14", NULL, NULL } };
        assert_int_equal(records_add(f->r, &in, id, &em), CF_ERR_EXISTS);
        assert_non_null(strstr(em.msg, "INE"));
    }
    assert_int_equal(row_count(f), before);
}

static void
test_transaction_rolls_back(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    char id[RECORD_ID_HEX + 1];
    long before = row_count(f);

    assert_int_equal(records_begin(f->r, 0), CF_OK);
    add_student(f, f->est, "0999000008Z", "ROBERT", "Jules", id);
    add_student(f, f->est, "0999000009A", "ROBERT", "Lucie", id);
    records_rollback(f->r);
    assert_int_equal(row_count(f), before);
    assert_int_equal(records_find(f->r, REC_STUDENT, "ine", "0999000008Z", 0, &rec, &em),
                     CF_ERR_NOTFOUND);
}

/* Rewrites one row's fields blob with another row's, in SQLite directly. */
static void
copy_fields(struct fx *f, const char *table, const char *from_id, const char *to_id)
{
    sqlite3 *db;
    char sql[256];

    assert_int_equal(sqlite3_open(path_in(f, "coffre.db"), &db), SQLITE_OK);
    snprintf(sql, sizeof sql,
             "UPDATE %s SET fields = (SELECT fields FROM %s WHERE id = x'%s') WHERE id = x'%s'",
             table, table, from_id, to_id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_changes(db), 1);
    sqlite3_close(db);
}

static void
test_sealed_field_moved_does_not_open(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    char a[RECORD_ID_HEX + 1], b[RECORD_ID_HEX + 1];
    size_t fam = (size_t)records_field_index(REC_STUDENT, "family_name");
    size_t giv = (size_t)records_field_index(REC_STUDENT, "given_names");

    add_student(f, f->est, "0999000010B", "BERNARD", "Arthur", a);
    add_student(f, f->est, "0999000011C", "THOMAS", "Agathe", b);
    /* Both open before the tampering: the test can tell. */
    assert_int_equal(records_get(f->r, REC_STUDENT, b, RECORD_ALL_FIELDS, &rec, &em), CF_OK);

    /* Another record's sealed fields pasted into b: nothing of it opens. */
    copy_fields(f, "students", a, b);
    assert_int_equal(records_get(f->r, REC_STUDENT, b, 1u << fam, &rec, &em), CF_ERR_CRYPTO);
    assert_non_null(strstr(em.msg, "does not open"));
    assert_int_equal(records_get(f->r, REC_STUDENT, a, RECORD_ALL_FIELDS, &rec, &em), CF_OK);

    /* One field's sealed value relabelled as another field of the same
     * record: swap the field-index bytes of family_name and given_names. */
    {
        struct store_row row;
        size_t pos = 0;

        assert_int_equal(records_id_parse(a, row.id), CF_OK);
        assert_int_equal(store_row_get(f->r->st, STORE_STUDENTS, row.id, &row), CF_OK);
        while (pos < row.fields_len) {
            size_t sz = (size_t)row.fields[pos + 1] << 8 | row.fields[pos + 2];

            if (row.fields[pos] == fam)
                row.fields[pos] = (uint8_t)giv;
            else if (row.fields[pos] == giv)
                row.fields[pos] = (uint8_t)fam;
            pos += 3 + sz;
        }
        assert_int_equal(store_row_update(f->r->st, STORE_STUDENTS, &row), CF_OK);
        assert_int_equal(records_get(f->r, REC_STUDENT, a, 1u << fam, &rec, &em), CF_ERR_CRYPTO);
        assert_int_equal(records_get(f->r, REC_STUDENT, a, 1u << giv, &rec, &em), CF_ERR_CRYPTO);
        /* fields not moved still open */
        assert_int_equal(records_get(f->r, REC_STUDENT, a, 1u, &rec, &em), CF_OK);
        assert_string_equal(rec.value[0], "0999000010B");
    }
}

static void
test_exported_keyring_opens_only_its_compartment(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    struct records *r2 = NULL;
    char a[RECORD_ID_HEX + 1], b[RECORD_ID_HEX + 1], out[512];
    uint8_t seed[32];

    add_student(f, f->est, "0999000012D", "MOREAU", "Victor", a);
    add_student(f, f->est2, "0999000013E", "LAURENT", "Manon", b);
    snprintf(out, sizeof out, "%s", path_in(f, "keyring-10"));
    assert_int_equal(keyring_export(records_keyring(f->r), "10", out, seed, &em), CF_OK);

    assert_int_equal(records_open(f->dir, out, &r2, &em), CF_OK);
    assert_int_equal(records_get(r2, REC_STUDENT, a, RECORD_ALL_FIELDS, &rec, &em), CF_OK);
    assert_string_equal(rec.value[1], "MOREAU");
    memset(&em, 0, sizeof em);
    assert_int_equal(records_get(r2, REC_STUDENT, b, RECORD_ALL_FIELDS, &rec, &em), CF_ERR_CRYPTO);
    assert_non_null(strstr(em.msg, "holds no key for compartment 02"));
    /* B's INE is not even findable: its digest needs 02's index key. */
    assert_int_equal(records_find(r2, REC_STUDENT, "ine", "0999000013E", 0, &rec, &em),
                     CF_ERR_NOTFOUND);
    /* ... and the same read succeeds with the full keyring. */
    assert_int_equal(records_get(f->r, REC_STUDENT, b, RECORD_ALL_FIELDS, &rec, &em), CF_OK);
    assert_string_equal(rec.value[1], "LAURENT");
    /* Writing into 02 is refused too. */
    {
        char id[RECORD_ID_HEX + 1];
        struct record_add in = { .kind = REC_STUDENT, .parent = { f->est2, NULL },
            .value = { "0999000014F", "X", "Y", "2012-01-01", NULL, NULL } };
        assert_int_equal(records_add(r2, &in, id, &em), CF_ERR_CRYPTO);
    }
    records_close(r2);
}

static void
test_foreign_keyring_refused(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    struct records *r2 = NULL;
    char other[512], kr2[600];
    static const char *const codes[] = { "10" };
    uint8_t seed[32];

    /* A keyring from another init has a KEK of its own for "10". */
    snprintf(other, sizeof other, "%s", path_in(f, "other"));
    assert_int_equal(records_init(other, codes, 1, seed, &em), CF_OK);
    snprintf(kr2, sizeof kr2, "%s/keyring", other);
    assert_int_equal(records_open(f->dir, kr2, &r2, &em), CF_ERR_CRYPTO);
    assert_null(r2);
    assert_non_null(strstr(em.msg, "belongs to another store"));
    assert_non_null(strstr(em.msg, kr2));
}

static void
test_open_errors(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    struct records *r2 = NULL;
    sqlite3 *db;

    assert_int_equal(records_open("/nonexistent/coffre", NULL, &r2, &em), CF_ERR_NOTFOUND);
    assert_non_null(strstr(em.msg, "/nonexistent/coffre"));

    /* A store from a newer coffre is refused, and left untouched. */
    assert_int_equal(sqlite3_open(path_in(f, "coffre.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    memset(&em, 0, sizeof em);
    assert_int_equal(records_open(f->dir, NULL, &r2, &em), CF_ERR_STORE);
    assert_non_null(strstr(em.msg, "newer"));
    assert_int_equal(sqlite3_open(path_in(f, "coffre.db"), &db), SQLITE_OK);
    {
        sqlite3_stmt *s;
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(s, 0), 99);
        sqlite3_finalize(s);
    }
    {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", store_schema_latest());
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    sqlite3_close(db);
    assert_int_equal(records_open(f->dir, NULL, &r2, &em), CF_OK);
    records_close(r2);

    /* init refuses to run over an existing store. */
    {
        static const char *const codes[] = { "10" };
        uint8_t seed[32];
        assert_int_equal(records_init(f->dir, codes, 1, seed, &em), CF_ERR_EXISTS);
    }
}

struct ver_count { uint32_t kv; size_t n; };

static void
test_rotation(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    char ids[30][RECORD_ID_HEX + 1], ine_new[RECORD_ID_HEX + 1];
    struct ine ine;
    uint32_t v;
    uint64_t n1, n2;
    size_t done, total = 0, i;

    for (i = 0; i < 30; i++) {
        assert_int_equal(ids_make_ine_bea(999100000ULL + i, &ine), CF_OK);
        add_student(f, f->est, ine.s, "ROTATION", "Élise", ids[i]);
    }
    assert_int_equal(records_count_version(f->r, "10", 1, &n1), CF_OK);
    assert_true(n1 >= 30);
    assert_int_equal(records_rotate(f->r, "10", &v, &em), CF_OK);
    assert_int_equal(v, 2);
    /* New writes use v2 at once; old rows still open with v1. */
    assert_int_equal(ids_make_ine_bea(999100100ULL, &ine), CF_OK);
    add_student(f, f->est, ine.s, "NOUVEAU", "Jules", ine_new);
    assert_int_equal(records_get(f->r, REC_STUDENT, ine_new, RECORD_ALL_FIELDS, &rec, &em), CF_OK);
    assert_int_equal(rec.kv, 2);
    assert_int_equal(records_get(f->r, REC_STUDENT, ids[0], RECORD_ALL_FIELDS, &rec, &em), CF_OK);
    assert_int_equal(rec.kv, 1);

    /* Re-seal in small batches; reads between batches keep working. */
    for (;;) {
        assert_int_equal(records_reseal(f->r, "10", 7, &done, &em), CF_OK);
        assert_true(done <= 7);
        total += done;
        for (i = 0; i < 30; i++) {
            assert_int_equal(records_get(f->r, REC_STUDENT, ids[i], RECORD_ALL_FIELDS, &rec, &em),
                             CF_OK);
            assert_string_equal(rec.value[1], "ROTATION");
            assert_string_equal(rec.value[2], "\xC3\x89lise");
        }
        if (done == 0)
            break;
    }
    assert_int_equal(total, n1);
    assert_int_equal(records_count_version(f->r, "10", 1, &n1), CF_OK);
    assert_int_equal(n1, 0);
    assert_int_equal(records_count_version(f->r, "10", 2, &n2), CF_OK);
    assert_true(n2 >= 31);
    /* Compartment 02 was not touched. */
    assert_int_equal(records_count_version(f->r, "02", 1, &n1), CF_OK);
    assert_true(n1 >= 1);
    /* After re-open (keys reloaded from the store) everything still opens. */
    records_close(f->r);
    assert_int_equal(records_open(f->dir, NULL, &f->r, &em), CF_OK);
    assert_int_equal(records_get(f->r, REC_STUDENT, ids[29], RECORD_ALL_FIELDS, &rec, &em), CF_OK);
    assert_int_equal(rec.kv, 2);
    assert_int_equal(records_find(f->r, REC_STUDENT, "ine", "0999100029", 0, &rec, &em),
                     CF_ERR_INPUT);     /* 10 digits only: no check letter */
    /* Bad batch sizes. */
    assert_int_equal(records_reseal(f->r, "10", 0, &done, &em), CF_ERR_INPUT);
    assert_int_equal(records_reseal(f->r, "10", RESEAL_BATCH_MAX + 1, &done, &em), CF_ERR_INPUT);
    assert_int_equal(records_reseal(f->r, "10", RESEAL_BATCH_MAX, &done, &em), CF_OK);
    assert_int_equal(done, 0);
}

/* Into an empty store a bulk import defers its unique indexes: a value
 * repeated inside the import fails the commit, nothing stays, and every
 * index is back. */
static void
test_bulk_duplicate_fails_whole_import(void **state)
{
    static const char *const codes[] = { "10" };
    struct cf_errmsg em = { "" };
    struct records *r = NULL;
    char dir[280], est[RECORD_ID_HEX + 1], id[RECORD_ID_HEX + 1];
    uint8_t seed[32];
    struct fx f2;
    sqlite3 *db;
    sqlite3_stmt *s;
    int indexes_before, indexes_after;

    (void)state;
    snprintf(dir, sizeof dir, "%s/data", tu_tmpdir());
    assert_int_equal(records_init(dir, codes, 1, seed, &em), CF_OK);
    assert_int_equal(records_open(dir, NULL, &r, &em), CF_OK);
    snprintf(f2.dir, sizeof f2.dir, "%s", dir);
    add_ok(r, &(struct record_add){ .kind = REC_ESTABLISHMENT, .compartment = "10",
                                    .value = { "0999001W", "Collège" } }, est);
    assert_int_equal(sqlite3_open(path_in(&f2, "coffre.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index'",
                                        -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    indexes_before = sqlite3_column_int(s, 0);
    sqlite3_reset(s);

    assert_int_equal(records_begin(r, 1), CF_OK);
    add_ok(r, &(struct record_add){ .kind = REC_STUDENT, .parent = { est, NULL },
        .value = { "0999000001S", "UN", "A", "2012-01-01", NULL, NULL } }, id);
    /* accepted for now: the unique index is not there during the load */
    add_ok(r, &(struct record_add){ .kind = REC_STUDENT, .parent = { est, NULL },
        .value = { "0999000001s", "DEUX", "B", "2012-01-01", NULL, NULL } }, id);
    memset(&em, 0, sizeof em);
    assert_int_equal(records_commit(r, &em), CF_ERR_EXISTS);
    assert_non_null(strstr(em.msg, "nothing was imported"));
    assert_int_equal(records_find(r, REC_STUDENT, "ine", "0999000001S", 0, &rec, &em), CF_ERR_NOTFOUND);

    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    indexes_after = sqlite3_column_int(s, 0);
    assert_int_equal(indexes_after, indexes_before);
    sqlite3_finalize(s);
    sqlite3_close(db);

    /* The same import without the repeat goes through, indexes built. */
    assert_int_equal(records_begin(r, 1), CF_OK);
    add_ok(r, &(struct record_add){ .kind = REC_STUDENT, .parent = { est, NULL },
        .value = { "0999000001S", "UN", "A", "2012-01-01", NULL, NULL } }, id);
    assert_int_equal(records_commit(r, &em), CF_OK);
    assert_int_equal(records_find(r, REC_STUDENT, "ine", "0999000001S", 0, &rec, &em), CF_OK);
    /* Now the store is not empty: a repeat is refused on the spot. */
    assert_int_equal(records_begin(r, 1), CF_OK);
    assert_int_equal(records_add(r, &(struct record_add){ .kind = REC_STUDENT, .parent = { est, NULL },
        .value = { "0999000001S", "DEUX", "B", "2012-01-01", NULL, NULL } }, id, &em), CF_ERR_EXISTS);
    records_rollback(r);
    records_close(r);
    *strrchr(dir, '/') = '\0';
    tu_rmrf(dir);
}

struct kids { int n; char last[RECORD_ID_HEX + 1]; };

static int
count_kid(void *arg, const struct record *r)
{
    struct kids *k = arg;

    k->n++;
    memcpy(k->last, r->parent[1], sizeof k->last);
    return 0;
}

static void
test_guardian_links(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    char s1[RECORD_ID_HEX + 1], s2[RECORD_ID_HEX + 1], g[RECORD_ID_HEX + 1], l[RECORD_ID_HEX + 1];
    struct kids k = { 0, "" };

    add_student(f, f->est, "0999000015G", "DURAND", "Sacha", s1);
    add_student(f, f->est2, "0999000016H", "DURAND", "Inès", s2);
    add_ok(f->r, &(struct record_add){ .kind = REC_GUARDIAN, .compartment = "10",
        .value = { "DURAND", "Karine", "06 12 34 56 78", "karine.durand@parent.demo.invalid", NULL } }, g);
    assert_int_equal(records_get(f->r, REC_GUARDIAN, g, RECORD_ALL_FIELDS, &rec, &em), CF_OK);
    assert_string_equal(rec.value[2], "0612345678");
    add_ok(f->r, &(struct record_add){ .kind = REC_GUARDIAN_LINK, .parent = { g, s1 },
                                       .value = { "mère" } }, l);
    /* A guardian of compartment 10 cannot be linked to a student of 02. */
    assert_int_equal(records_add(f->r, &(struct record_add){ .kind = REC_GUARDIAN_LINK,
        .parent = { g, s2 }, .value = { "mère" } }, l, &em), CF_ERR_INPUT);
    assert_int_equal(records_children(f->r, REC_GUARDIAN_LINK, 0, g, 10, RECORD_ALL_FIELDS,
                                      count_kid, &k, &em), CF_OK);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.last, s1);
    /* Linking twice is refused by the unique pair. */
    assert_int_equal(records_add(f->r, &(struct record_add){ .kind = REC_GUARDIAN_LINK,
        .parent = { g, s1 }, .value = { "mère" } }, l, &em), CF_ERR_EXISTS);
}

/* records_update: fields set, cleared and kept; blind indexes follow; a
 * pupil changes class within its establishment only; bad input and a
 * taken INE change nothing; links are deleted, nothing else is. */
static void
test_update_and_delete(void **state)
{
    struct fx *f = *state;
    struct cf_errmsg em = { "" };
    char s1[RECORD_ID_HEX + 1], s2[RECORD_ID_HEX + 1], c2[RECORD_ID_HEX + 1],
         cx[RECORD_ID_HEX + 1], g[RECORD_ID_HEX + 1], l[RECORD_ID_HEX + 1];
    int email = records_field_index(REC_STUDENT, "email");
    int addr = records_field_index(REC_STUDENT, "address");
    int ine = records_field_index(REC_STUDENT, "ine");
    struct record_edit ed;
    long rows;

    add_student(f, f->est, "0999000015G", "DURAND", "Sacha", s1);
    add_student(f, f->est, "0999000016H", "MARTIN", "Léo", s2);
    add_ok(f->r, &(struct record_add){ .kind = REC_CLASS, .parent = { f->est, NULL },
                                       .value = { "6B" } }, c2);
    add_ok(f->r, &(struct record_add){ .kind = REC_CLASS, .parent = { f->est2, NULL },
                                       .value = { "2A" } }, cx);
    /* set an e-mail, clear the address, move to 6B */
    memset(&ed, 0, sizeof ed);
    ed.kind = REC_STUDENT;
    ed.id = s1;
    ed.set = 1u << email;
    ed.value[email] = "Sacha.Durand@E.invalid";
    ed.clear = 1u << addr;
    ed.set_parent1 = 1;
    ed.parent1 = c2;
    assert_int_equal(records_update(f->r, &ed, &em), CF_OK);
    assert_int_equal(records_get(f->r, REC_STUDENT, s1, RECORD_ALL_FIELDS, &rec, &em), CF_OK);
    assert_string_equal(rec.value[email], "sacha.durand@e.invalid");
    assert_false(rec.present & (1u << addr));
    assert_string_equal(rec.value[records_field_index(REC_STUDENT, "family_name")], "DURAND");
    assert_string_equal(rec.parent[1], c2);
    /* the new e-mail is found through its blind index; the INE still is */
    assert_int_equal(records_find(f->r, REC_STUDENT, "email", "sacha.durand@e.invalid", 0, &rec, &em), CF_OK);
    assert_string_equal(rec.id, s1);
    assert_int_equal(records_find(f->r, REC_STUDENT, "ine", "0999000015G", 0, &rec, &em), CF_OK);
    /* out of the class */
    memset(&ed, 0, sizeof ed);
    ed.kind = REC_STUDENT;
    ed.id = s1;
    ed.set_parent1 = 1;
    assert_int_equal(records_update(f->r, &ed, &em), CF_OK);
    assert_int_equal(records_get(f->r, REC_STUDENT, s1, 0, &rec, &em), CF_OK);
    assert_string_equal(rec.parent[1], "");
    /* refused, nothing changed: another establishment's class, a bad INE
     * check letter, a taken INE, a required field cleared, an unknown id */
    rows = row_count(f);
    ed.parent1 = cx;
    assert_int_equal(records_update(f->r, &ed, &em), CF_ERR_INPUT);
    assert_non_null(strstr(em.msg, "another establishment"));
    memset(&ed, 0, sizeof ed);
    ed.kind = REC_STUDENT;
    ed.id = s1;
    ed.set = 1u << ine;
    ed.value[ine] = "0999000015H";
    assert_int_equal(records_update(f->r, &ed, &em), CF_ERR_INPUT);
    assert_null(strstr(em.msg, "0999000015H"));
    ed.value[ine] = "0999000016H";
    assert_int_equal(records_update(f->r, &ed, &em), CF_ERR_EXISTS);
    ed.set = 0;
    ed.clear = 1u << ine;
    assert_int_equal(records_update(f->r, &ed, &em), CF_ERR_INPUT);
    ed.clear = 0;
    ed.set = 1u << email;
    ed.value[email] = "x@e.invalid";
    ed.id = "00000000000000000000000000000000";
    assert_int_equal(records_update(f->r, &ed, &em), CF_ERR_NOTFOUND);
    ed.kind = REC_CLASS;
    ed.id = f->cls;
    ed.set_parent1 = 1;
    assert_int_equal(records_update(f->r, &ed, &em), CF_ERR_INPUT);
    assert_int_equal(row_count(f), rows);
    assert_int_equal(records_get(f->r, REC_STUDENT, s1, RECORD_ALL_FIELDS, &rec, &em), CF_OK);
    assert_string_equal(rec.value[ine], "0999000015G");
    assert_string_equal(rec.value[email], "sacha.durand@e.invalid");
    /* a class renamed */
    memset(&ed, 0, sizeof ed);
    ed.kind = REC_CLASS;
    ed.id = c2;
    ed.set = 1;
    ed.value[0] = "6B bis";
    assert_int_equal(records_update(f->r, &ed, &em), CF_OK);
    assert_int_equal(records_get(f->r, REC_CLASS, c2, RECORD_ALL_FIELDS, &rec, &em), CF_OK);
    assert_string_equal(rec.value[0], "6B bis");
    /* links are deleted; nothing else is */
    add_ok(f->r, &(struct record_add){ .kind = REC_GUARDIAN, .compartment = "10",
        .value = { "DURAND", "Karine", NULL, NULL, NULL } }, g);
    add_ok(f->r, &(struct record_add){ .kind = REC_GUARDIAN_LINK, .parent = { g, s1 },
                                       .value = { "mère" } }, l);
    assert_int_equal(records_delete(f->r, REC_STUDENT, s1, &em), CF_ERR_INPUT);
    assert_int_equal(records_delete(f->r, REC_GUARDIAN_LINK, l, &em), CF_OK);
    assert_int_equal(records_delete(f->r, REC_GUARDIAN_LINK, l, &em), CF_ERR_NOTFOUND);
    assert_int_equal(records_get(f->r, REC_GUARDIAN_LINK, l, 0, &rec, &em), CF_ERR_NOTFOUND);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_get_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_combining_accent_finds_same_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_field_mask_opens_only_asked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transaction_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_field_moved_does_not_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exported_keyring_opens_only_its_compartment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_keyring_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guardian_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_and_delete, setup, teardown),
        cmocka_unit_test(test_bulk_duplicate_fails_whole_import),
    };

    return cmocka_run_group_tests_name("records", tests, NULL, NULL);
}
