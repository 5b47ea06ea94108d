/*
 * main.c - the coffre command line: parse a subcommand and its options,
 * call one module, print the result.  Exit codes: 0 ok, 1 failure,
 * 2 usage (unknown option, missing or invalid value).
 *
 * To find a command, start at the `commands` table at the end of the file.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>

#include "bounds.h"
#include "config.h"
#include "account.h"
#include "alerts.h"
#include "api.h"
#include "audit.h"
#include "demo.h"
#include "guard.h"
#include "http.h"
#include "ids.h"
#include "keyring.h"
#include "log.h"
#include "mfa.h"
#include "policy.h"
#include "records.h"
#include "sandbox.h"
#include "scope.h"
#include "banned.h"

#define EXIT_USAGE 2
/* Options one command may have (serve has the most); checked at start-up
 * for every command, so a longer table fails loudly, not out of bounds. */
#define MAX_OPTS 48
#define MAX_REPEAT KEYRING_MAX_COMPARTMENTS

/* ---- option parsing --------------------------------------------------- */

struct opt {
    const char *name;         /* without the leading "--" */
    int repeat;               /* may be given several times */
};

struct cmd_args;

struct cmd {
    const char *name;         /* "student add" */
    const char *usage;        /* the rest of the synopsis */
    const char *help;         /* one paragraph */
    const struct opt *opts;
    int positional;           /* positional arguments expected */
    int (*run)(struct cmd_args *a);
};

struct cmd_args {
    const struct cmd *cmd;
    const char *val[MAX_OPTS];
    const char *rep[MAX_REPEAT];
    size_t nrep;
    const char *pos[2];
    int npos;
};

static int usage_error(const struct cmd *c, const char *fmt, ...) PRINTF(2, 3);

static int
usage_error(const struct cmd *c, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "coffre %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: coffre %s %s\n", c->name, c->usage);
    return EXIT_USAGE;
}

static void
print_help(const struct cmd *c)
{
    printf("usage: coffre %s %s\n\n%s\n", c->name, c->usage, c->help);
}

static int
opt_index(const struct cmd *c, const char *name, size_t len)
{
    int i;

    for (i = 0; c->opts != NULL && c->opts[i].name != NULL; i++)
        if (strlen(c->opts[i].name) == len && strncmp(c->opts[i].name, name, len) == 0)
            return i;
    return -1;
}

/* Returns 0, or an exit code (help printed: -1 means exit 0). */
static int
parse_args(const struct cmd *c, int argc, char **argv, struct cmd_args *a)
{
    int i;

    memset(a, 0, sizeof *a);
    a->cmd = c;
    for (i = 0; i < argc; i++) {
        const char *arg = argv[i], *eq, *value;
        int k;

        if (strlen(arg) > CLI_ARG_MAX_BYTES)
            return usage_error(c, "an argument is longer than %d bytes", CLI_ARG_MAX_BYTES);
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_help(c);
            return -1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (a->npos >= c->positional)
                return usage_error(c, "unexpected argument '%s'", arg);
            a->pos[a->npos++] = arg;
            continue;
        }
        eq = strchr(arg, '=');
        k = opt_index(c, arg + 2, eq ? (size_t)(eq - arg - 2) : strlen(arg + 2));
        if (k < 0)
            return usage_error(c, "unknown option '%s'", arg);
        if (eq != NULL)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else
            return usage_error(c, "option '%s' needs a value", arg);
        if (c->opts[k].repeat) {
            if (a->nrep >= MAX_REPEAT)
                return usage_error(c, "option '%s' given too many times", arg);
            a->rep[a->nrep++] = value;
        } else if (a->val[k] != NULL)
            return usage_error(c, "option '%s' given twice", arg);
        a->val[k] = value;
    }
    if (a->npos < c->positional)
        return usage_error(c, "missing argument");
    return 0;
}

static const char *
opt(const struct cmd_args *a, const char *name)
{
    int k = opt_index(a->cmd, name, strlen(name));

    return k < 0 ? NULL : a->val[k];
}

/* A required option, or a usage error printed (returns NULL). */
static const char *
need(const struct cmd_args *a, const char *name)
{
    const char *v = opt(a, name);

    if (v == NULL)
        usage_error(a->cmd, "--%s is required", name);
    return v;
}

/* Parses a whole decimal number in [min, max], like OpenBSD's strtonum. */
static int parse_num_of(const struct cmd_args *a, const char *name, const char *v,
                        unsigned long long min, unsigned long long max,
                        unsigned long long dflt, unsigned long long *out);

static int
parse_num(const struct cmd_args *a, const char *name, unsigned long long min,
          unsigned long long max, unsigned long long dflt,
          unsigned long long *out)
{
    return parse_num_of(a, name, opt(a, name), min, max, dflt, out);
}

/* The same for a flag that may come from the environment (config.h). */
static int
parse_num_env(const struct cmd_args *a, const char *name, unsigned long long min,
              unsigned long long max, unsigned long long dflt, unsigned long long *out)
{
    return parse_num_of(a, name, config_pick_flag(opt(a, name), name), min, max, dflt, out);
}

static int
parse_num_of(const struct cmd_args *a, const char *name, const char *v,
             unsigned long long min, unsigned long long max,
             unsigned long long dflt, unsigned long long *out)
{
    char *end;
    unsigned long long n;

    if (v == NULL) {
        *out = dflt;
        return 0;
    }
    errno = 0;
    n = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n < min || n > max) {
        fprintf(stderr, "coffre %s: --%s: must be a whole number from %llu to %llu\n",
                a->cmd->name, name, min, max);
        return EXIT_USAGE;
    }
    *out = n;
    return 0;
}

/* ---- results ---------------------------------------------------------- */

static int
fail(const struct cmd_args *a, enum cf_err rc, const struct cf_errmsg *em)
{
    fprintf(stderr, "coffre %s: %s\n", a->cmd->name,
            em->msg[0] != '\0' ? em->msg : cf_err_str(rc));
    return rc == CF_ERR_INPUT || rc == CF_ERR_LIMIT ? EXIT_USAGE : EXIT_FAILURE;
}

/*
 * The CLI writes the audit trail too: every command that opens the store
 * takes the data directory's lock (one writer of the trail at a time; a
 * running server holds it) and opens the trail with its own copy of the
 * keyring.  Entries are durable before anything is printed.
 */
static struct {
    int lockfd;
    struct keyring *kr;
    struct audit *audit;
} cli = { -1, NULL, NULL };

static void
cli_audit_close(void)
{
    audit_close(cli.audit);
    keyring_free(cli.kr);
    if (cli.lockfd >= 0)
        close(cli.lockfd);
    cli.audit = NULL;
    cli.kr = NULL;
    cli.lockfd = -1;
}

static enum cf_err
cli_audit_open(const char *data, const char *kr_path, struct cf_errmsg *em)
{
    char path[4096];
    enum cf_err rc;

    if ((rc = records_lock_dir(data, &cli.lockfd, em)) != CF_OK)
        return rc;
    if (kr_path == NULL) {
        snprintf(path, sizeof path, "%s/keyring", data);
        kr_path = path;
    }
    if ((rc = keyring_load(kr_path, &cli.kr, em)) == CF_OK)
        rc = audit_open(data, cli.kr, NULL, &cli.audit, em);
    if (rc != CF_OK)
        cli_audit_close();
    return rc;
}

/* Appends the command's entry; when it cannot be made durable, nothing may
 * be shown (fail closed): returns an exit code then. */
static int
cli_audit(const struct cmd_args *a, const char *action, const char *subject,
          const char *fields, const char *outcome)
{
    struct audit_entry e;
    struct cf_errmsg em = { "" };

    memset(&e, 0, sizeof e);
    snprintf(e.actor, sizeof e.actor, "cli");
    snprintf(e.action, sizeof e.action, "%s", action);
    snprintf(e.subject, sizeof e.subject, "%s", subject != NULL ? subject : "");
    snprintf(e.fields, sizeof e.fields, "%s", fields != NULL ? fields : "");
    snprintf(e.outcome, sizeof e.outcome, "%s", outcome);
    if (cli.audit != NULL && audit_append(cli.audit, &e, &em) == CF_OK)
        return 0;
    fprintf(stderr, "coffre %s: the audit trail could not record this (%s); nothing was shown\n",
            a->cmd->name, em.msg[0] != '\0' ? em.msg : "not open");
    return EXIT_FAILURE;
}

static int
open_records(const struct cmd_args *a, struct records **r, struct cf_errmsg *em)
{
    const char *data = config_pick(opt(a, "data"), CONFIG_ENV_DATA);
    const char *kr = config_pick(opt(a, "keyring"), CONFIG_ENV_KEYRING);
    enum cf_err rc;

    if (data == NULL) {
        usage_error(a->cmd, "--data DIR (or %s) is required", CONFIG_ENV_DATA);
        return EXIT_USAGE;
    }
    rc = records_open(data, kr, r, em);
    if (rc == CF_OK) {
        rc = cli_audit_open(data, kr, em);
        if (rc != CF_OK) {
            records_close(*r);
            *r = NULL;
        }
    }
    return rc == CF_OK ? 0 : fail(a, rc, em);
}

static void
close_records(struct records *r)
{
    records_close(r);
    cli_audit_close();
}

/* "family_name,given_names,..." of the fields a record had opened. */
static void
fields_of(const struct record *rec, char *out, size_t cap)
{
    size_t i, o = 0;

    out[0] = '\0';
    for (i = 0; i < records_field_count(rec->kind); i++) {
        if (!(rec->present & (1u << i)))
            continue;
        o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "%s%s", o ? "," : "",
                              records_field_name(rec->kind, i));
        if (o >= cap)
            break;
    }
}

static void
print_record(const struct record *rec)
{
    json_t *o = json_object();
    size_t i;
    char *s;

    json_object_set_new(o, "kind", json_string(records_kind_name(rec->kind)));
    json_object_set_new(o, "id", json_string(rec->id));
    json_object_set_new(o, "academie", json_string(rec->compartment));
    if (rec->parent[0][0] != '\0')
        json_object_set_new(o, rec->kind == REC_GUARDIAN_LINK ? "guardian_id" : "establishment_id",
                            json_string(rec->parent[0]));
    if (rec->parent[1][0] != '\0')
        json_object_set_new(o, rec->kind == REC_GUARDIAN_LINK ? "student_id" : "class_id",
                            json_string(rec->parent[1]));
    for (i = 0; i < records_field_count(rec->kind); i++)
        if (rec->present & (1u << i))
            json_object_set_new(o, records_field_name(rec->kind, i), json_string(rec->value[i]));
    s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII * 0);
    if (s != NULL)
        puts(s);
    free(s);
    json_decref(o);
}

/* ---- commands --------------------------------------------------------- */

static void
print_seed(const char *label, const uint8_t seed[KEYRING_SEED_BYTES])
{
    char hex[2 * KEYRING_SEED_BYTES + 1];

    sodium_bin2hex(hex, sizeof hex, seed, KEYRING_SEED_BYTES);
    printf("%s\n"
           "  initial audit seed (epoch 0): %s\n"
           "  Give this seed to your auditor now and keep it off this host: with it,\n"
           "  audit verification proves that no earlier epoch of the audit trail was\n"
           "  re-signed.  It is not shown again.\n", label, hex);
    sodium_memzero(hex, sizeof hex);
}

static int
cmd_init(struct cmd_args *a)
{
    const char *data = config_pick(opt(a, "data"), CONFIG_ENV_DATA);
    char codes[MAX_REPEAT][ACADEMIE_CODE_BYTES + 1];
    const char *list[MAX_REPEAT];
    uint8_t seed[KEYRING_SEED_BYTES];
    struct cf_errmsg em = { "" };
    enum cf_err rc;
    size_t i;
    int x;

    if (data == NULL)
        return usage_error(a->cmd, "--data DIR (or %s) is required", CONFIG_ENV_DATA);
    if (a->nrep == 0)
        return usage_error(a->cmd, "at least one --academie CODE is required (see '%s')",
                           "coffre academies");
    for (i = 0; i < a->nrep; i++) {
        if (ids_parse_academie(a->rep[i], strlen(a->rep[i]), codes[i], &em) != CF_OK)
            return fail(a, CF_ERR_INPUT, &em);
        list[i] = codes[i];
    }
    rc = records_init(data, list, a->nrep, seed, &em);
    if (rc != CF_OK)
        return fail(a, rc, &em);
    /* The trail starts with the node's creation. */
    if ((rc = cli_audit_open(data, NULL, &em)) != CF_OK)
        return fail(a, rc, &em);
    x = cli_audit(a, "node.init", "", "", "ok");
    cli_audit_close();
    if (x != 0)
        return x;
    printf("coffre: initialised '%s' with %zu compartment%s:", data, a->nrep,
           a->nrep > 1 ? "s" : "");
    for (i = 0; i < a->nrep; i++)
        printf(" %s (%s)", list[i], ids_academie_name(list[i]));
    printf("\n");
    print_seed("  keyring: keyring (mode 0600; back it up apart from the store)", seed);
    sodium_memzero(seed, sizeof seed);
    return 0;
}

/* ---- export keys: the requester's side of a bulk export ---------------- */

/* The most a sealed export file may be read from: far above
 * API_EXPORT_ROWS_MAX pupils of full records, in base64. */
#define EXPORT_FILE_MAX (256u << 20)

static int
cmd_export_keygen(struct cmd_args *a)
{
    const char *out = need(a, "out");
    unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
    char b64[sodium_base64_ENCODED_LEN(crypto_box_SECRETKEYBYTES, sodium_base64_VARIANT_ORIGINAL)];
    FILE *f;
    int fd, rc = EXIT_FAILURE;

    if (out == NULL)
        return EXIT_USAGE;
    if (sodium_init() < 0)
        return EXIT_FAILURE;
    fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "coffre %s: '%s': cannot create: %s\n", a->cmd->name, out, strerror(errno));
        if (fd >= 0)
            close(fd);
        return EXIT_FAILURE;
    }
    crypto_box_keypair(pk, sk);
    sodium_bin2base64(b64, sizeof b64, sk, sizeof sk, sodium_base64_VARIANT_ORIGINAL);
    if (fprintf(f, "%s\n", b64) > 0 && fflush(f) == 0 && fsync(fd) == 0)
        rc = 0;
    fclose(f);
    sodium_memzero(sk, sizeof sk);
    sodium_memzero(b64, sizeof b64);
    if (rc != 0) {
        fprintf(stderr, "coffre %s: '%s': cannot write\n", a->cmd->name, out);
        return rc;
    }
    sodium_bin2base64(b64, sizeof b64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
    printf("%s\n", b64);
    return 0;
}

/* Reads at most max bytes of a file ("-": stdin); NULL on error. */
static char *
slurp(const char *path, size_t max, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int bad;

    if (f == NULL)
        return NULL;
    for (;;) {
        size_t k;

        if (n == cap) {
            char *nb;

            if (cap >= max + 1)
                break;
            cap = cap ? cap * 2 : 4096;
            if (cap > max + 1)
                cap = max + 1;
            if ((nb = realloc(buf, cap + 1)) == NULL)
                break;
            buf = nb;
        }
        k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0)
            break;
    }
    bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (buf == NULL || n > max || bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int
cmd_export_open(struct cmd_args *a)
{
    const char *skpath = need(a, "secret-key"), *in = opt(a, "in") ? opt(a, "in") : "-";
    unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
    char *skb64, *text, *b64;
    unsigned char *box = NULL, *plain = NULL;
    size_t sklen = 0, len = 0, blen = 0, n;
    json_t *doc;
    int rc = EXIT_FAILURE;

    if (skpath == NULL)
        return EXIT_USAGE;
    if (sodium_init() < 0)
        return EXIT_FAILURE;
    skb64 = slurp(skpath, 256, &n);
    if (skb64 == NULL || sodium_base642bin(sk, sizeof sk, skb64, n, " \r\n", &sklen, NULL,
                                           sodium_base64_VARIANT_ORIGINAL) != 0 ||
        sklen != sizeof sk) {
        fprintf(stderr, "coffre %s: '%s': not a secret key made by 'coffre export keygen'\n",
                a->cmd->name, skpath);
        free(skb64);
        return EXIT_USAGE;
    }
    sodium_memzero(skb64, n);
    free(skb64);
    crypto_scalarmult_base(pk, sk);
    text = slurp(in, EXPORT_FILE_MAX, &len);
    if (text == NULL) {
        fprintf(stderr, "coffre %s: '%s': cannot read (or larger than %u bytes)\n", a->cmd->name,
                in, EXPORT_FILE_MAX);
        goto out;
    }
    /* the answer of GET /api/v1/exports/ID/file, or its "sealed" alone */
    doc = json_loadb(text, len, 0, NULL);
    b64 = doc != NULL && json_is_string(json_object_get(doc, "sealed"))
              ? (char *)json_string_value(json_object_get(doc, "sealed")) : text;
    blen = strlen(b64);
    box = malloc(blen + 1);
    if (box == NULL || sodium_base642bin(box, blen, b64, blen, " \r\n", &n, NULL,
                                         sodium_base64_VARIANT_ORIGINAL) != 0 ||
        n < crypto_box_SEALBYTES) {
        fprintf(stderr, "coffre %s: '%s': not a sealed export\n", a->cmd->name, in);
        json_decref(doc);
        goto out;
    }
    json_decref(doc);
    plain = malloc(n - crypto_box_SEALBYTES + 1);
    if (plain == NULL || crypto_box_seal_open(plain, box, n, pk, sk) != 0) {
        fprintf(stderr, "coffre %s: the export does not open with this key: it was sealed "
                "to another, or damaged\n", a->cmd->name);
        goto out;
    }
    fwrite(plain, 1, n - crypto_box_SEALBYTES, stdout);
    printf("\n");
    sodium_memzero(plain, n - crypto_box_SEALBYTES);
    rc = 0;
out:
    sodium_memzero(sk, sizeof sk);
    free(text);
    free(box);
    free(plain);
    return rc;
}

static int
cmd_policy_show(struct cmd_args *a)
{
    (void)a;
    policy_print(stdout);
    return 0;
}

static int
cmd_academies(struct cmd_args *a)
{
    size_t i;

    (void)a;
    for (i = 0; i < ids_academie_count(); i++)
        printf("%s  %s\n", ids_academie_code_at(i), ids_academie_name(ids_academie_code_at(i)));
    return 0;
}

static int
cmd_keys_export(struct cmd_args *a)
{
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    char code[ACADEMIE_CODE_BYTES + 1];
    uint8_t seed[KEYRING_SEED_BYTES];
    const char *comp, *out;
    enum cf_err rc;
    int x;

    if ((comp = need(a, "compartment")) == NULL || (out = need(a, "out")) == NULL)
        return EXIT_USAGE;
    if (ids_parse_academie(comp, strlen(comp), code, &em) != CF_OK)
        return fail(a, CF_ERR_INPUT, &em);
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    rc = keyring_export(records_keyring(r), code, out, seed, &em);
    x = cli_audit(a, "keys.export", code, "", rc == CF_OK ? "ok" : "failed");
    close_records(r);
    if (rc != CF_OK)
        return fail(a, rc, &em);
    if (x != 0) {
        unlink(out);        /* not recorded: not given out */
        return x;
    }
    printf("coffre: wrote '%s' holding compartment %s (%s) only, for a new node\n",
           out, code, ids_academie_name(code));
    print_seed("  the new node has its own audit key:", seed);
    sodium_memzero(seed, sizeof seed);
    return 0;
}

static int
cmd_keys_rotate(struct cmd_args *a)
{
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    char code[ACADEMIE_CODE_BYTES + 1];
    unsigned long long batch, no_reseal = 0;
    uint32_t version;
    size_t done, total = 0;
    const char *comp;
    enum cf_err rc;
    int x;

    if ((comp = need(a, "compartment")) == NULL)
        return EXIT_USAGE;
    if ((x = parse_num(a, "batch", 1, RESEAL_BATCH_MAX, RESEAL_BATCH_DEFAULT, &batch)) != 0 ||
        (x = parse_num(a, "reseal", 0, 1, 1, &no_reseal)) != 0)
        return x;
    if (ids_parse_academie(comp, strlen(comp), code, &em) != CF_OK)
        return fail(a, CF_ERR_INPUT, &em);
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    rc = records_rotate(r, code, &version, &em);
    if (rc == CF_OK)
        printf("coffre: compartment %s now seals with data key v%u\n", code, version);
    /* Batches: each its own transaction, so readers and writers interleave
     * and an interruption only leaves rows on the old key, still readable. */
    while (rc == CF_OK && no_reseal == 1) {
        rc = records_reseal(r, code, (size_t)batch, &done, &em);
        total += done;
        if (rc != CF_OK || done == 0)
            break;
    }
    x = cli_audit(a, "keys.rotate", code, "", rc == CF_OK ? "ok" : "failed");
    close_records(r);
    if (x != 0 && rc == CF_OK)
        return x;
    if (rc != CF_OK)
        return fail(a, rc, &em);
    if (no_reseal == 1)
        printf("coffre: re-sealed %zu rows to v%u\n", total, version);
    return 0;
}

static int
cmd_keys_list(struct cmd_args *a)
{
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    const struct keyring *kr;
    size_t i;
    uint32_t v;
    uint64_t n;
    int x;

    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    kr = records_keyring(r);
    if ((x = cli_audit(a, "keys.list", "", "", "ok")) != 0) {
        close_records(r);
        return x;
    }
    printf("node %s, audit epoch %llu\n", keyring_node_id(kr),
           (unsigned long long)keyring_audit_epoch(kr));
    for (i = 0; i < keyring_count(kr); i++) {
        const char *code = keyring_code_at(kr, i);

        printf("compartment %s (%s): current data key v%u\n", code,
               ids_academie_name(code), keyring_current_version(kr, code));
        for (v = 1; v <= keyring_current_version(kr, code); v++) {
            if (records_count_version(r, code, v, &n) != CF_OK) {
                close_records(r);
                fprintf(stderr, "coffre %s: cannot count rows\n", a->cmd->name);
                return EXIT_FAILURE;
            }
            printf("  v%u: %llu rows\n", v, (unsigned long long)n);
        }
    }
    close_records(r);
    return 0;
}

/* Resolves --establishment UAI to an establishment id. */
static int
establishment_id(const struct cmd_args *a, struct records *r,
                 char id[RECORD_ID_HEX + 1], struct cf_errmsg *em)
{
    struct record *rec;
    const char *uai = need(a, "establishment");
    enum cf_err rc;

    if (uai == NULL)
        return EXIT_USAGE;
    rec = malloc(sizeof *rec);
    if (rec == NULL)
        return fail(a, CF_ERR_NOMEM, em);
    rc = records_find(r, REC_ESTABLISHMENT, "uai", uai, 0, rec, em);
    if (rc == CF_OK)
        memcpy(id, rec->id, RECORD_ID_HEX + 1);
    free(rec);
    return rc == CF_OK ? 0 : fail(a, rc, em);
}

struct class_match {
    const char *name;
    char id[RECORD_ID_HEX + 1];
};

static int
match_class(void *arg, const struct record *rec)
{
    struct class_match *m = arg;

    if (strcmp(rec->value[0], m->name) != 0)
        return 0;
    memcpy(m->id, rec->id, sizeof m->id);
    return 1;
}

/* The class named cm->name in the establishment: its id in cm->id. */
static enum cf_err
find_class(struct records *r, const char *est, struct class_match *cm, struct cf_errmsg *em)
{
    enum cf_err rc = records_children(r, REC_CLASS, 0, est, 1000, RECORD_ALL_FIELDS,
                                      match_class, cm, em);

    if (rc == CF_OK && cm->id[0] == '\0')
        rc = cf_fail(em, CF_ERR_NOTFOUND, "no class with this name in the establishment");
    return rc;
}

/* The command's option values, in the order of the kind's fields
 * (option names are the field names with '-' for '_'). */
static int
fields_from_opts(const struct cmd_args *a, enum record_kind k,
                 struct record_add *in)
{
    size_t i;
    char name[64];

    for (i = 0; i < records_field_count(k); i++) {
        const char *f = records_field_name(k, i);
        size_t j;

        for (j = 0; f[j] != '\0' && j + 1 < sizeof name; j++)
            name[j] = f[j] == '_' ? '-' : f[j];
        name[j] = '\0';
        in->value[i] = opt(a, name);
    }
    return 0;
}

static int
add_and_print(struct cmd_args *a, struct records *r, struct record_add *in,
              struct cf_errmsg *em)
{
    char id[RECORD_ID_HEX + 1], action[64];
    enum cf_err rc = records_add(r, in, id, em);
    int x;

    snprintf(action, sizeof action, "%s.add", records_kind_name(in->kind));
    x = cli_audit(a, action, rc == CF_OK ? id : "", "", rc == CF_OK ? "ok" : "failed");
    close_records(r);
    if (rc != CF_OK)
        return fail(a, rc, em);
    if (x != 0)
        return x;
    printf("%s\n", id);
    return 0;
}

static int
cmd_add(struct cmd_args *a, enum record_kind k)
{
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    struct record_add in = { .kind = k };
    char est[RECORD_ID_HEX + 1];
    struct class_match cm = { NULL, "" };
    int x;

    fields_from_opts(a, k, &in);
    if (k == REC_ESTABLISHMENT && (in.compartment = need(a, "academie")) == NULL)
        return EXIT_USAGE;
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    if (k == REC_CLASS || k == REC_STUDENT || k == REC_STAFF) {
        if ((x = establishment_id(a, r, est, &em)) != 0) {
            close_records(r);
            return x;
        }
        in.parent[0] = est;
    }
    if (k == REC_STUDENT && (cm.name = opt(a, "class")) != NULL) {
        enum cf_err rc = find_class(r, est, &cm, &em);

        if (rc != CF_OK) {
            close_records(r);
            return fail(a, rc, &em);
        }
        in.parent[1] = cm.id;
    }
    return add_and_print(a, r, &in, &em);
}

/* A teacher (staff, by professional e-mail) teaches a class of the
 * establishment: the relationship the policy needs. */
static int
cmd_class_assign(struct cmd_args *a)
{
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    struct record_add in = { .kind = REC_TEACHING };
    struct class_match cm = { NULL, "" };
    struct record *staff;
    char est[RECORD_ID_HEX + 1], sid[RECORD_ID_HEX + 1];
    const char *email;
    enum cf_err rc;
    int x;

    if ((cm.name = need(a, "class")) == NULL || (email = need(a, "staff-email")) == NULL)
        return EXIT_USAGE;
    in.value[0] = opt(a, "subject");
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    if ((x = establishment_id(a, r, est, &em)) != 0) {
        close_records(r);
        return x;
    }
    staff = malloc(sizeof *staff);
    rc = staff == NULL ? CF_ERR_NOMEM : records_find(r, REC_STAFF, "email", email, 0, staff, &em);
    if (rc == CF_OK)
        rc = find_class(r, est, &cm, &em);
    if (rc == CF_OK) {
        memcpy(sid, staff->id, sizeof sid);
        in.parent[0] = sid;
        in.parent[1] = cm.id;
    }
    free(staff);
    if (rc != CF_OK) {
        close_records(r);
        return fail(a, rc, &em);
    }
    return add_and_print(a, r, &in, &em);
}

/* Canary people for an establishment, and the sealed list that names them,
 * in one transaction. */
static int
cmd_canary_add(struct cmd_args *a)
{
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    char est[RECORD_ID_HEX + 1], (*ids)[RECORD_ID_HEX + 1] = NULL;
    struct record *e = NULL;
    unsigned long long n;
    enum cf_err rc;
    int x;

    if ((x = parse_num(a, "count", 1, DEMO_MAX_CANARIES, 10, &n)) != 0)
        return x;
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    if ((x = establishment_id(a, r, est, &em)) != 0) {
        close_records(r);
        return x;
    }
    ids = calloc(n, sizeof *ids);
    e = malloc(sizeof *e);
    rc = ids == NULL || e == NULL ? CF_ERR_NOMEM : records_get(r, REC_ESTABLISHMENT, est, 0, e, &em);
    if (rc == CF_OK)
        rc = records_begin(r, 0);
    if (rc == CF_OK) {
        rc = demo_canary_people(r, est, (unsigned)n, ids, &em);
        if (rc == CF_OK)
            rc = records_canary_register(r, e->compartment, ids, (size_t)n, &em);
        if (rc == CF_OK)
            rc = records_commit(r, &em);
        else
            records_rollback(r);
    }
    x = cli_audit(a, "canary.add", est, "", rc == CF_OK ? "ok" : "failed");
    free(ids);
    free(e);
    close_records(r);
    if (rc != CF_OK)
        return fail(a, rc, &em);
    if (x == 0)
        printf("coffre: %llu canary pupils added; any read of one locks the reader at once\n", n);
    return x;
}

static int cmd_establishment_add(struct cmd_args *a) { return cmd_add(a, REC_ESTABLISHMENT); }
static int cmd_class_add(struct cmd_args *a) { return cmd_add(a, REC_CLASS); }
static int cmd_student_add(struct cmd_args *a) { return cmd_add(a, REC_STUDENT); }
static int cmd_staff_add(struct cmd_args *a) { return cmd_add(a, REC_STAFF); }

static int
cmd_guardian_add(struct cmd_args *a)
{
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    struct record_add in = { .kind = REC_GUARDIAN };
    struct record *student;
    char gid[RECORD_ID_HEX + 1];
    const char *sid, *rel;
    enum cf_err rc;
    int x;

    if ((sid = need(a, "student")) == NULL || (rel = need(a, "relationship")) == NULL)
        return EXIT_USAGE;
    fields_from_opts(a, REC_GUARDIAN, &in);
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    student = malloc(sizeof *student);
    if (student == NULL) {
        close_records(r);
        return fail(a, CF_ERR_NOMEM, &em);
    }
    /* The guardian joins the student's compartment; both rows in one
     * transaction. */
    rc = records_get(r, REC_STUDENT, sid, 0, student, &em);
    if (rc == CF_OK) {
        in.compartment = student->compartment;
        rc = records_begin(r, 0);
    }
    if (rc == CF_OK)
        rc = records_add(r, &in, gid, &em);
    if (rc == CF_OK) {
        struct record_add link = { .kind = REC_GUARDIAN_LINK, .parent = { gid, sid },
                                   .value = { rel } };
        char lid[RECORD_ID_HEX + 1];

        rc = records_add(r, &link, lid, &em);
    }
    if (rc == CF_OK)
        rc = records_commit(r, &em);
    else
        records_rollback(r);
    free(student);
    x = cli_audit(a, "guardian.add", rc == CF_OK ? gid : "", "", rc == CF_OK ? "ok" : "failed");
    close_records(r);
    if (rc != CF_OK)
        return fail(a, rc, &em);
    if (x != 0)
        return x;
    printf("%s\n", gid);
    return 0;
}

static int
get_or_find(struct cmd_args *a, enum record_kind k, const char *field)
{
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    struct record *rec;
    const char *v = NULL;
    enum cf_err rc;
    int x;

    if (field != NULL && (v = need(a, field)) == NULL)
        return EXIT_USAGE;
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    rec = malloc(sizeof *rec);
    if (rec == NULL)
        rc = CF_ERR_NOMEM;
    else if (field == NULL)
        rc = records_get(r, k, a->pos[0], RECORD_ALL_FIELDS, rec, &em);
    else
        rc = records_find(r, k, field, v, RECORD_ALL_FIELDS, rec, &em);
    if (rec != NULL) {
        char action[64], fields[AUDIT_FIELDS_MAX + 1];

        snprintf(action, sizeof action, "%s.%s", records_kind_name(k),
                 field == NULL ? "read" : "find");
        if (rc == CF_OK)
            fields_of(rec, fields, sizeof fields);
        x = cli_audit(a, action, rc == CF_OK ? rec->id : "", rc == CF_OK ? fields : "",
                      rc == CF_OK ? "ok" : "failed");
        if (rc == CF_OK && x == 0)
            print_record(rec);
        sodium_memzero(rec, sizeof *rec);
    }
    free(rec);
    close_records(r);
    if (x != 0 && rc == CF_OK)
        return x;
    return rc == CF_OK ? 0 : fail(a, rc, &em);
}

static int cmd_student_get(struct cmd_args *a) { return get_or_find(a, REC_STUDENT, NULL); }
static int cmd_student_find(struct cmd_args *a) { return get_or_find(a, REC_STUDENT, "ine"); }
static int cmd_staff_get(struct cmd_args *a) { return get_or_find(a, REC_STAFF, NULL); }
static int cmd_staff_find(struct cmd_args *a) { return get_or_find(a, REC_STAFF, "email"); }
static int cmd_guardian_get(struct cmd_args *a) { return get_or_find(a, REC_GUARDIAN, NULL); }

static int
print_establishment(void *arg, const struct record *rec)
{
    (void)arg;
    printf("%s  %s  %s  %s\n", rec->value[0], rec->compartment, rec->id, rec->value[1]);
    return 0;
}

static int
cmd_establishment_list(struct cmd_args *a)
{
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    unsigned long long limit;
    enum cf_err rc;
    int x;

    if ((x = parse_num(a, "limit", 1, 1000000, 1000, &limit)) != 0)
        return x;
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    /* Establishments are public, but the listing is an access like any. */
    if ((x = cli_audit(a, "establishment.list", "", "uai,name", "ok")) != 0) {
        close_records(r);
        return x;
    }
    printf("UAI       ac  id                                name\n");
    rc = records_establishments(r, (size_t)limit, print_establishment, NULL, &em);
    close_records(r);
    return rc == CF_OK ? 0 : fail(a, rc, &em);
}

static int
cmd_demo_data(struct cmd_args *a)
{
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    struct demo_counts n;
    struct demo_opts o;
    char code[ACADEMIE_CODE_BYTES + 1];
    unsigned long long est, per, seed, gper, first;
    const char *ac = opt(a, "academie");
    enum cf_err rc;
    int x;

    if ((x = parse_num(a, "establishments", 1, DEMO_MAX_ESTABLISHMENTS, 3, &est)) != 0 ||
        (x = parse_num(a, "students-per", 1, DEMO_MAX_STUDENTS_PER, 100, &per)) != 0 ||
        (x = parse_num(a, "seed", 0, UINT64_MAX, CONFIG_DEFAULT_SEED, &seed)) != 0 ||
        (x = parse_num(a, "guardians-per", 0, 2, 2, &gper)) != 0 ||
        (x = parse_num(a, "first-establishment", 0, 9999, 0, &first)) != 0)
        return x;
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    if (ac == NULL)
        ac = keyring_code_at(records_keyring(r), 0);
    if (ids_parse_academie(ac, strlen(ac), code, &em) != CF_OK) {
        close_records(r);
        return fail(a, CF_ERR_INPUT, &em);
    }
    o = (struct demo_opts){ code, (unsigned)est, (unsigned)per, (unsigned)gper, seed,
                            (unsigned)first };
    if (first + est > 10000) {
        close_records(r);
        return usage_error(a->cmd, "--first-establishment + --establishments must stay under 10000");
    }
    rc = demo_generate(r, &o, NULL, NULL, &n, &em);
    x = cli_audit(a, "demo.import", "", "", rc == CF_OK ? "ok" : "failed");
    close_records(r);
    if (rc != CF_OK)
        return fail(a, rc, &em);
    if (x != 0)
        return x;
    printf("coffre: demo data in compartment %s: %llu establishments, %llu classes, "
           "%llu students, %llu guardians (%llu links), %llu staff\n", code,
           (unsigned long long)n.establishments, (unsigned long long)n.classes,
           (unsigned long long)n.students, (unsigned long long)n.guardians,
           (unsigned long long)n.links, (unsigned long long)n.staff);
    return 0;
}

/* ---- accounts and incidents ------------------------------------------- */

static void
print_account(const struct account *a)
{
    json_t *o = json_object();
    char hex[RECORD_ID_HEX + 1];
    char *s;

    json_object_set_new(o, "id", json_string(a->id));
    json_object_set_new(o, "login", json_string(a->login));
    json_object_set_new(o, "role", json_string(account_role_name(a->role)));
    json_object_set_new(o, "state", json_string(a->row.state));
    json_object_set_new(o, "academie", json_string(a->row.compartment));
    if (a->row.has_establishment) {
        records_id_format(a->row.establishment, hex);
        json_object_set_new(o, "establishment_id", json_string(hex));
    }
    if (a->row.has_person) {
        records_id_format(a->row.person, hex);
        json_object_set_new(o, "person_id", json_string(hex));
    }
    json_object_set_new(o, "activation_code_pending", json_boolean(a->row.has_code));
    if (a->row.has_code)
        json_object_set_new(o, "activation_code_expires", json_integer(a->row.code_expires));
    json_object_set_new(o, "password_reset_required", json_boolean(a->row.reset_required));
    s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s != NULL)
        puts(s);
    free(s);
    json_decref(o);
}

static int
cmd_account_provision(struct cmd_args *a)
{
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    struct account_provision in = { 0 };
    struct account *acct;
    char code[ACTIVATION_CODE_TEXT + 1], est[RECORD_ID_HEX + 1];
    const char *role = need(a, "role");
    unsigned long long days, all;
    enum cf_err rc;
    int x;

    if (role == NULL)
        return EXIT_USAGE;
    if (account_role_parse(role, &in.role) != 0)
        return usage_error(a->cmd, "--role: one of student, guardian, teacher, staff, "
                           "academie_admin, dpo, service");
    if ((x = parse_num(a, "code-days", 1, ACTIVATION_MAX_DAYS, ACTIVATION_DEFAULT_DAYS, &days)) != 0 ||
        (x = parse_num(a, "all", 0, 1, 0, &all)) != 0)
        return x;
    in.code_days = (unsigned)days;
    in.person_id = opt(a, "person");
    in.academie = opt(a, "academie");
    in.login = opt(a, "login");
    if (all && opt(a, "out") == NULL)
        return usage_error(a->cmd, "--all 1 needs --out FILE for the codes");
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    if (opt(a, "establishment") != NULL || all) {
        if ((x = establishment_id(a, r, est, &em)) != 0) {
            close_records(r);
            return x;
        }
        in.establishment_id = est;
    }
    if (all) {
        uint64_t n;

        rc = account_provision_all(r, in.role, est, in.code_days, opt(a, "out"), &n, &em);
        x = cli_audit(a, "account.provision-all", est, "", rc == CF_OK ? "ok" : "failed");
        close_records(r);
        if (rc != CF_OK)
            return fail(a, rc, &em);
        if (x != 0)
            return x;
        printf("coffre: provisioned %llu %s accounts; their codes are in '%s' (mode 0600)\n",
               (unsigned long long)n, role, opt(a, "out"));
        return 0;
    }
    acct = malloc(sizeof *acct);
    if (acct == NULL) {
        close_records(r);
        return fail(a, CF_ERR_NOMEM, &em);
    }
    rc = account_provision(r, &in, acct, code, &em);
    x = cli_audit(a, "account.provision", rc == CF_OK ? acct->id : "", "",
                  rc == CF_OK ? "ok" : "failed");
    close_records(r);
    if (rc == CF_OK && x != 0) {
        free(acct);
        return x;
    }
    if (rc == CF_OK)
        printf("id %s\nlogin %s\nactivation code %s (shown once; valid %llu days)\n",
               acct->id, acct->login, code, days);
    sodium_memzero(code, sizeof code);
    free(acct);
    return rc == CF_OK ? 0 : fail(a, rc, &em);
}

static int
cmd_account_show(struct cmd_args *a)
{
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    struct account *acct;
    const char *login = need(a, "login");
    enum cf_err rc;
    int x;

    if (login == NULL)
        return EXIT_USAGE;
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    acct = malloc(sizeof *acct);
    rc = acct == NULL ? CF_ERR_NOMEM : account_find(r, login, acct);
    x = cli_audit(a, "account.read", rc == CF_OK ? acct->id : "", "login",
                  rc == CF_OK ? "ok" : "failed");
    if (rc == CF_OK && x == 0)
        print_account(acct);
    free(acct);
    close_records(r);
    if (rc == CF_ERR_NOTFOUND)
        snprintf(em.msg, sizeof em.msg, "no account with this login");
    if (rc == CF_OK)
        return x;
    return fail(a, rc, &em);
}

/* An account change for one --login with a --reason code the audit trail
 * keeps (unlock, second-factor reset): find, change, audit, say so. */
static int
account_with_reason(struct cmd_args *a, const char *action, const char *example,
                    enum cf_err (*change)(struct records *, struct account *, struct cf_errmsg *),
                    const char *done)
{
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    struct account *acct;
    const char *login = need(a, "login"), *reason;
    char fields[64];
    enum cf_err rc;
    int x;

    if (login == NULL || (reason = need(a, "reason")) == NULL)
        return EXIT_USAGE;
    if (!account_reason_valid(reason))
        return usage_error(a->cmd, "--reason: a short code such as %s (a-z, 0-9, '-'; never a name)",
                           example);
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    acct = malloc(sizeof *acct);
    rc = acct == NULL ? CF_ERR_NOMEM : account_find(r, login, acct);
    if (rc == CF_ERR_NOTFOUND)
        cf_fail(&em, rc, "no account with this login");
    if (rc == CF_OK)
        rc = change(r, acct, &em);
    snprintf(fields, sizeof fields, "reason:%s", reason);
    x = cli_audit(a, action, rc == CF_OK ? acct->id : "", fields, rc == CF_OK ? "ok" : "failed");
    free(acct);
    close_records(r);
    if (rc != CF_OK)
        return fail(a, rc, &em);
    if (x == 0)
        printf("coffre: %s\n", done);
    return x;
}

static int
cmd_account_unlock(struct cmd_args *a)
{
    return account_with_reason(a, "account.unlock", "verified-with-user", account_unlock,
                               "account unlocked");
}

/* Removes every second factor of an account whose owner lost them (after
 * checking who they are). */
static enum cf_err
reset_factors(struct records *r, struct account *acct, struct cf_errmsg *em)
{
    return mfa_reset(r, acct, em);
}

static int
cmd_account_mfa_reset(struct cmd_args *a)
{
    return account_with_reason(a, "account.mfa_reset", "verified-in-person", reset_factors,
                               "second factors removed, sessions ended; the next sign-in enrolls anew");
}

static int
run_incident(struct cmd_args *a, enum incident what)
{
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    struct incident_scope sc = { NULL, NULL };
    char code[ACADEMIE_CODE_BYTES + 1], est[RECORD_ID_HEX + 1];
    unsigned long long dry;
    uint64_t n;
    enum cf_err rc;
    int x;

    if ((x = parse_num(a, "dry-run", 0, 1, 0, &dry)) != 0)
        return x;
    if (opt(a, "academie") != NULL && opt(a, "establishment") != NULL)
        return usage_error(a->cmd, "give --academie or --establishment, not both");
    if (opt(a, "academie") != NULL) {
        if (ids_parse_academie(opt(a, "academie"), strlen(opt(a, "academie")), code, &em) != CF_OK)
            return fail(a, CF_ERR_INPUT, &em);
        sc.academie = code;
    }
    if (what == INCIDENT_RESET_CODES && !dry && opt(a, "out") == NULL)
        return usage_error(a->cmd, "--out FILE is required: the new codes go there (mode 0600)");
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    if (opt(a, "establishment") != NULL) {
        if ((x = establishment_id(a, r, est, &em)) != 0) {
            close_records(r);
            return x;
        }
        sc.establishment_id = est;
    }
    if (dry)
        rc = account_incident_count(r, what, &sc, &n);
    else
        rc = account_incident_run(r, what, &sc, opt(a, "out"), NULL, &n, &em);
    {
        char action[AUDIT_ACTION_MAX + 1], subject[64];

        snprintf(action, sizeof action, "incident.%s%s", account_incident_name(what),
                 dry ? ".count" : "");
        snprintf(subject, sizeof subject, "%s%s%s", sc.academie ? sc.academie : "",
                 sc.establishment_id ? "," : "", sc.establishment_id ? sc.establishment_id : "");
        x = cli_audit(a, action, subject, "", rc == CF_OK ? "ok" : "failed");
    }
    close_records(r);
    if (rc != CF_OK)
        return fail(a, rc, &em);
    if (x != 0)
        return x;
    printf("coffre: %s%s: %llu %s\n", account_incident_name(what), dry ? " (dry run)" : "",
           (unsigned long long)n,
           what == INCIDENT_REVOKE_SESSIONS ? "sessions" : "accounts");
    return 0;
}

static int cmd_incident_freeze(struct cmd_args *a) { return run_incident(a, INCIDENT_FREEZE_UNACTIVATED); }
static int cmd_incident_reset(struct cmd_args *a) { return run_incident(a, INCIDENT_RESET_CODES); }
static int cmd_incident_revoke(struct cmd_args *a) { return run_incident(a, INCIDENT_REVOKE_SESSIONS); }
static int cmd_incident_force(struct cmd_args *a) { return run_incident(a, INCIDENT_FORCE_PASSWORD_RESET); }

/* ---- serve ------------------------------------------------------------ */

/* "SHORT/LONG" -> a budget; -1 when malformed. */
static int
parse_budget(const char *s, struct guard_budget *b)
{
    unsigned long long x, y;
    char *end;

    errno = 0;
    x = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '/' || errno != 0)
        return -1;
    s = end + 1;
    y = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || x > y || y > GUARD_BUDGET_MAX)
        return -1;
    b->short_max = (uint32_t)x;
    b->long_max = (uint32_t)y;
    return 0;
}

/*
 * --guard-budgets ROLE=SHORT/LONG,... (reads of distinct people per 1 h /
 * 24 h), --guard-address-budget SHORT/LONG, --guard-miss-weight N,
 * --guard-block-s N (0: no address blocks).  Defaults: docs/guard.md.
 */
static int
parse_guard(const struct cmd_args *a, struct guard_opts *g)
{
    const char *list = config_pick_flag(opt(a, "guard-budgets"), "guard-budgets");
    const char *ab = config_pick_flag(opt(a, "guard-address-budget"), "guard-address-budget");
    unsigned long long w, block, ws, wl;
    int x;

    if ((x = parse_num_env(a, "guard-miss-weight", 1, GUARD_MISS_WEIGHT_MAX,
                           GUARD_MISS_WEIGHT_DEFAULT, &w)) != 0 ||
        (x = parse_num_env(a, "guard-block-s", 0, (unsigned long long)(GUARD_BLOCK_MS_MAX / 1000),
                           (unsigned long long)(GUARD_BLOCK_MS_DEFAULT / 1000), &block)) != 0 ||
        (x = parse_num_env(a, "guard-window-short-s", GUARD_WINDOW_MIN_MS / 1000,
                           GUARD_WINDOW_MAX_MS / 1000, GUARD_SHORT_MS_DEFAULT / 1000, &ws)) != 0 ||
        (x = parse_num_env(a, "guard-window-long-s", GUARD_WINDOW_MIN_MS / 1000,
                           GUARD_WINDOW_MAX_MS / 1000, GUARD_LONG_MS_DEFAULT / 1000, &wl)) != 0)
        return x;
    if (wl < ws)
        return usage_error(a->cmd, "--guard-window-long-s must be at least --guard-window-short-s");
    g->miss_weight = (uint32_t)w;
    g->block_ms = (int64_t)block * 1000;
    g->window_short_ms = (int64_t)ws * 1000;
    g->window_long_ms = (int64_t)wl * 1000;
    if (ab != NULL && parse_budget(ab, &g->address) != 0)
        return usage_error(a->cmd, "--guard-address-budget: SHORT/LONG, e.g. 15000/25000");
    while (list != NULL && *list != '\0') {
        char item[64], *eq;
        size_t n = strcspn(list, ",");
        enum account_role role;

        if (n >= sizeof item)
            return usage_error(a->cmd, "--guard-budgets: an item is too long");
        memcpy(item, list, n);
        item[n] = '\0';
        eq = strchr(item, '=');
        if (eq == NULL)
            return usage_error(a->cmd, "--guard-budgets: ROLE=SHORT/LONG,... e.g. teacher=600/1200");
        *eq = '\0';
        if (account_role_parse(item, &role) != 0 || parse_budget(eq + 1, &g->role[role]) != 0)
            return usage_error(a->cmd, "--guard-budgets: ROLE=SHORT/LONG,... e.g. teacher=600/1200");
        list += n;
        if (*list == ',')
            list++;
    }
    return 0;
}

/*
 * Second factors (docs/mfa.md): --mfa-required-roles ROLE,... | none
 * (default: teacher,staff,academie_admin,dpo,service), --mfa-admin-webauthn
 * 0|1, --mfa-step-up-min N (10), --webauthn-rp-id HOST, --webauthn-origin
 * URL[,URL...].
 */
static int
parse_mfa(const struct cmd_args *a, struct api_opts *o)
{
    const char *list = opt(a, "mfa-required-roles");
    unsigned long long wa, step;
    int x;

    if ((x = parse_num(a, "mfa-admin-webauthn", 0, 1, 0, &wa)) != 0 ||
        (x = parse_num(a, "mfa-step-up-min", 1, MFA_STEP_UP_MAX_S / 60,
                       MFA_STEP_UP_DEFAULT_S / 60, &step)) != 0)
        return x;
    mfa_policy_default(&o->mfa);
    o->mfa_policy_set = 1;
    if (wa)
        mfa_policy_admin_webauthn(&o->mfa);
    o->mfa.step_up_s = (int64_t)step * 60;
    if (list != NULL) {
        o->mfa.required = 0;
        if (strcmp(list, "none") == 0)
            list = "";
    }
    while (list != NULL && *list != '\0') {
        char item[32];
        size_t n = strcspn(list, ",");
        enum account_role role;

        if (n >= sizeof item)
            return usage_error(a->cmd, "--mfa-required-roles: ROLE,... or none");
        memcpy(item, list, n);
        item[n] = '\0';
        if (account_role_parse(item, &role) != 0)
            return usage_error(a->cmd, "--mfa-required-roles: ROLE,... or none (roles: student, "
                               "guardian, teacher, staff, academie_admin, dpo, service)");
        o->mfa.required |= 1u << role;
        list += n;
        if (*list == ',')
            list++;
    }
    o->webauthn_rp_id = opt(a, "webauthn-rp-id");
    o->webauthn_origins = opt(a, "webauthn-origin");
    return 0;
}

/* --user and --seccomp (sandbox.h): decided before serving, applied by
 * api_serve once the socket is bound and every file open. */
struct serve_sandbox {
    struct sandbox_user user;
    int drop;
    enum sandbox_mode mode;
};

static enum cf_err
serve_started(void *arg, struct cf_errmsg *em)
{
    const struct serve_sandbox *sb = arg;
    enum cf_err rc;

    if (sb->drop) {
        if ((rc = sandbox_drop(&sb->user, em)) != CF_OK)
            return rc;
        log_kv(LOG_INFO, "privileges dropped", "user", sb->user.name, (const char *)NULL);
    }
    return sandbox_seccomp(sb->mode, em);
}

/* Root with --user: the data directory, the keyring and its directory
 * (rewritten at each checkpoint) must be the user's; serve.lock is. */
static int
serve_sandbox_setup(const struct cmd_args *a, const struct api_opts *o, struct serve_sandbox *sb)
{
    struct cf_errmsg em = { "" };
    const char *user = opt(a, "user");
    char path[4096], *slash;
    enum cf_err rc;

    if (sandbox_mode_parse(opt(a, "seccomp") != NULL ? opt(a, "seccomp") : "kill", &sb->mode) != 0)
        return usage_error(a->cmd, "--seccomp: kill (the default), log or off");
    if (user != NULL && (rc = sandbox_user_lookup(user, &sb->user, &em)) != CF_OK)
        return fail(a, rc, &em);
    if ((rc = sandbox_check_root(user != NULL ? &sb->user : NULL, &sb->drop, &em)) != CF_OK)
        return fail(a, rc, &em);
    if (!sb->drop)
        return 0;
    if ((rc = sandbox_check_owner(o->data_dir, 1, &sb->user, &em)) != CF_OK)
        return fail(a, rc, &em);
    if (o->keyring_path != NULL) {
        snprintf(path, sizeof path, "%s", o->keyring_path);
        slash = strrchr(path, '/');
        if (slash != NULL)
            *(slash == path ? slash + 1 : slash) = '\0';
        if ((rc = sandbox_check_owner(o->keyring_path, 0, &sb->user, &em)) != CF_OK ||
            (rc = sandbox_check_owner(slash != NULL ? path : ".", 0, &sb->user, &em)) != CF_OK)
            return fail(a, rc, &em);
    }
    snprintf(path, sizeof path, "%s/serve.lock", o->data_dir);
    if ((rc = sandbox_give(path, &sb->user, &em)) != CF_OK)
        return fail(a, rc, &em);
    return 0;
}

/* A checkpoint rewrites the keyring (the epoch advances) with two fsyncs:
 * under load the time bound (1 s) sets the pace, not a count of entries. */
#define SERVE_CHECKPOINT_ENTRIES 100000

static int
cmd_serve(struct cmd_args *a)
{
    struct api_opts o = { 0 };
    struct cf_errmsg em = { "" };
    struct serve_sandbox sb;
    const char *proxies[MAX_REPEAT + 1];
    unsigned long long threads, workers, queue, t, m_kib, idle, absolute, bits, insecure;
    unsigned long long ck_entries, ck_ms, dry, export_rows;
    enum cf_err rc;
    size_t i;
    int x;

    if ((x = parse_num(a, "threads", 0, 256, 0, &threads)) != 0 ||
        (x = parse_num(a, "hash-workers", 1, 64, 2, &workers)) != 0 ||
        (x = parse_num(a, "hash-queue", 1, 65536, 256, &queue)) != 0 ||
        (x = parse_num(a, "hash-t", 1, 100, 2, &t)) != 0 ||
        (x = parse_num(a, "hash-m-kib", 8, 4u << 20, 19 * 1024, &m_kib)) != 0 ||
        (x = parse_num(a, "session-idle", 60, 7 * 86400, 30 * 60, &idle)) != 0 ||
        (x = parse_num(a, "session-absolute", 60, 30 * 86400, 12 * 3600, &absolute)) != 0 ||
        (x = parse_num(a, "password-min-bits", 1, 256, PASSWORD_MIN_BITS_DEFAULT, &bits)) != 0 ||
        (x = parse_num(a, "insecure-http", 0, 1, 0, &insecure)) != 0 ||
        (x = parse_num(a, "audit-checkpoint-entries", 1, AUDIT_CHECKPOINT_ENTRIES_MAX,
                       SERVE_CHECKPOINT_ENTRIES, &ck_entries)) != 0 ||
        (x = parse_num(a, "audit-checkpoint-ms", 10, AUDIT_CHECKPOINT_MS_MAX,
                       AUDIT_CHECKPOINT_MS_DEFAULT, &ck_ms)) != 0 ||
        (x = parse_num_env(a, "guard-dry-run", 0, 1, 0, &dry)) != 0 ||
        (x = parse_num_env(a, "export-max-rows", 1, API_EXPORT_ROWS_MAX, API_EXPORT_ROWS_DEFAULT,
                           &export_rows)) != 0)
        return x;
    o.alert_webhook = config_pick_flag(opt(a, "alert-webhook"), "alert-webhook");
    o.export_max_rows = (unsigned)export_rows;
    guard_opts_default(&o.guard);
    o.guard.dry_run = (int)dry;
    if ((x = parse_guard(a, &o.guard)) != 0)
        return x;
    o.data_dir = config_pick(opt(a, "data"), CONFIG_ENV_DATA);
    if (o.data_dir == NULL)
        return usage_error(a->cmd, "--data DIR (or %s) is required", CONFIG_ENV_DATA);
    o.keyring_path = config_pick(opt(a, "keyring"), CONFIG_ENV_KEYRING);
    o.listen = opt(a, "listen") ? opt(a, "listen") : "127.0.0.1:8080";
    o.tls_cert = opt(a, "tls-cert");
    o.tls_key = opt(a, "tls-key");
    if ((o.tls_cert == NULL) != (o.tls_key == NULL))
        return usage_error(a->cmd, "--tls-cert and --tls-key go together");
    o.insecure_http = (int)insecure;
    for (i = 0; i < a->nrep; i++)
        proxies[i] = a->rep[i];
    proxies[a->nrep] = NULL;
    o.trusted_proxies = proxies;
    o.http_threads = (unsigned)threads;
    o.hash_workers = (unsigned)workers;
    o.hash_queue = (unsigned)queue;
    o.hash_t = t;
    o.hash_m = (size_t)m_kib * 1024;
    o.session_idle_s = (int64_t)idle;
    o.session_absolute_s = (int64_t)absolute;
    o.password_min_bits = (unsigned)bits;
    o.audit.checkpoint_entries = (unsigned)ck_entries;
    o.audit.checkpoint_ms = (unsigned)ck_ms;
    if ((x = parse_mfa(a, &o)) != 0)
        return x;
    if (o.alert_webhook != NULL && (rc = alerts_check_url(o.alert_webhook, &em)) != CF_OK)
        return fail(a, rc, &em);
    memset(&sb, 0, sizeof sb);
    if ((x = serve_sandbox_setup(a, &o, &sb)) != 0)
        return x;
    o.started = serve_started;
    o.started_arg = &sb;
    rc = api_serve(&o, &em);
    return rc == CF_OK ? 0 : fail(a, rc, &em);
}

/* ---- routes, sandbox-selftest ------------------------------------------ */

static int
cmd_routes(struct cmd_args *a)
{
    (void)a;
    return api_routes_print(stdout) != 0 ? EXIT_FAILURE : 0;
}

static int
cmd_sandbox_selftest(struct cmd_args *a)
{
    enum sandbox_mode m;

    if (sandbox_mode_parse(opt(a, "seccomp") != NULL ? opt(a, "seccomp") : "kill", &m) != 0)
        return usage_error(a->cmd, "--seccomp: kill (the default), log or off");
    return sandbox_selftest(m, opt(a, "call") != NULL ? opt(a, "call") : "ptrace");
}

/* ---- audit ------------------------------------------------------------ */

/* Reads the auditor's initial seed: 64 hex digits, whitespace around. */
static int
read_seed(const char *path, uint8_t seed[KEYRING_SEED_BYTES], struct cf_errmsg *em)
{
    char buf[256];
    size_t n, got;
    FILE *f = fopen(path, "r");
    char *p;

    if (f == NULL) {
        cf_fail(em, CF_ERR_IO, "'%s': cannot open: %s", path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = buf;
    while (*p == ' ' || *p == '\n' || *p == '\t')
        p++;
    n = strcspn(p, " \t\r\n");
    if (n != 2 * KEYRING_SEED_BYTES ||
        sodium_hex2bin(seed, KEYRING_SEED_BYTES, p, n, NULL, &got, NULL) != 0 ||
        got != KEYRING_SEED_BYTES) {
        sodium_memzero(buf, sizeof buf);
        cf_fail(em, CF_ERR_INPUT, "'%s': not a seed (64 hex digits, as printed by init)", path);
        return -1;
    }
    sodium_memzero(buf, sizeof buf);
    return 0;
}

static int parse_when(const char *s, int end_of_day, int64_t *out);

/* --archive FILE...: each checked against the live trail. */
static int
verify_archives(struct cmd_args *a, const char *data)
{
    struct audit_archive_info info;
    struct cf_errmsg em = { "" };
    const char *others[MAX_REPEAT];
    size_t i, j, k;
    int bad = 0;

    for (i = 0; i < a->nrep; i++) {
        for (j = k = 0; j < a->nrep; j++)
            if (j != i)
                others[k++] = a->rep[j];
        if (audit_verify_archive(data, a->rep[i], others, k, &info, &em) != CF_OK) {
            printf("TAMPERED: %s\n", em.msg);
            bad = 1;
            continue;
        }
        printf("archive '%s' intact: entries %llu to %llu, %llu checkpoints, digest %s\n",
               a->rep[i], (unsigned long long)info.from_seq, (unsigned long long)info.to_seq,
               (unsigned long long)info.checkpoints, info.digest);
    }
    return bad ? EXIT_FAILURE : 0;
}

static int
cmd_audit_archive(struct cmd_args *a)
{
    const char *data = config_pick(opt(a, "data"), CONFIG_ENV_DATA);
    const char *before = opt(a, "before"), *out = opt(a, "out");
    struct audit_archive_info info;
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    char subject[64], fields[AUDIT_FIELDS_MAX + 1];
    int64_t before_ms;
    enum cf_err rc;
    int x;

    if (data == NULL)
        return usage_error(a->cmd, "--data DIR (or %s) is required", CONFIG_ENV_DATA);
    if (before == NULL || out == NULL)
        return usage_error(a->cmd, "--before DATE and --out FILE are required");
    if (parse_when(before, 0, &before_ms) != 0)
        return usage_error(a->cmd, "--before: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]Z (UTC)");
    if (access(out, F_OK) == 0)
        return usage_error(a->cmd, "--out '%s' exists: an archive is never overwritten", out);
    /* the lock: no server, no other command writes the trail meanwhile */
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    rc = audit_archive_write(data, before_ms, out, &info, &em);
    if (rc != CF_OK) {
        (void)cli_audit(a, "audit.archive", "", "", "failed");  /* it says so itself */
        close_records(r);
        return fail(a, rc, &em);
    }
    /* the trail names the file before anything leaves it */
    snprintf(subject, sizeof subject, "seq:%llu-%llu", (unsigned long long)info.from_seq,
             (unsigned long long)info.to_seq);
    snprintf(fields, sizeof fields, "blake2b:%s", info.digest);
    if ((x = cli_audit(a, "audit.archive", subject, fields, "ok")) != 0) {
        close_records(r);
        unlink(out);
        return x;
    }
    rc = audit_archive_commit(data, &info, &em);
    close_records(r);
    if (rc != CF_OK)
        return fail(a, rc, &em);
    printf("coffre: archived entries %llu to %llu (%llu entries, %llu checkpoints) to '%s' (mode 0400)\n"
           "  digest %s; 'coffre audit verify --archive %s' checks it\n",
           (unsigned long long)info.from_seq, (unsigned long long)info.to_seq,
           (unsigned long long)info.entries, (unsigned long long)info.checkpoints, out, info.digest,
           out);
    return 0;
}

static int
cmd_audit_verify(struct cmd_args *a)
{
    const char *data = config_pick(opt(a, "data"), CONFIG_ENV_DATA);
    const char *kr = config_pick(opt(a, "keyring"), CONFIG_ENV_KEYRING);
    const char *seedfile = opt(a, "initial-seed");
    uint8_t seed[KEYRING_SEED_BYTES];
    struct audit_report rep;
    struct cf_errmsg em = { "" };
    enum cf_err rc;

    if (data == NULL)
        return usage_error(a->cmd, "--data DIR (or %s) is required", CONFIG_ENV_DATA);
    if (seedfile != NULL && read_seed(seedfile, seed, &em) != 0)
        return fail(a, CF_ERR_INPUT, &em);
    memset(&rep, 0, sizeof rep);
    rc = audit_verify(data, kr, seedfile != NULL ? seed : NULL, &rep, &em);
    sodium_memzero(seed, sizeof seed);
    if (rc == CF_ERR_AUTH) {
        printf("TAMPERED: %s\n", rep.why[0] != '\0' ? rep.why : em.msg);
        if (rep.first_bad_seq != 0)
            printf("  first entry not proven intact: %llu\n", (unsigned long long)rep.first_bad_seq);
        if (rep.first_bad_epoch >= 0)
            printf("  first bad checkpoint: epoch %lld\n", (long long)rep.first_bad_epoch);
        return EXIT_FAILURE;
    }
    if (rc != CF_OK)
        return fail(a, rc, &em);
    printf("audit trail intact: %llu entries, %llu checkpoints (%llu signatures verified), "
           "keyring at epoch %llu\n", (unsigned long long)rep.entries,
           (unsigned long long)rep.checkpoints, (unsigned long long)rep.epochs_checked,
           (unsigned long long)rep.keyring_epoch);
    if (rep.unsigned_tail > 0)
        printf("  %llu entries after the last checkpoint: chained, not yet signed\n",
               (unsigned long long)rep.unsigned_tail);
    printf("  epoch keys %s\n", rep.seed_checked
           ? "checked against the auditor's initial seed"
           : "not checked against an initial seed (give --initial-seed FILE)");
    if (rep.archived > 0 && a->nrep == 0)
        printf("  entries 1 to %llu archived: not checked here (give --archive FILE...)\n",
               (unsigned long long)rep.archived);
    return verify_archives(a, data);
}

/* ---- scope ------------------------------------------------------------ */

/* "YYYY-MM-DD[THH:MM[:SS[.mmm]]][Z]" (UTC) -> ms; a bare date as --to means the
 * end of that day.  -1 when malformed. */
static int
parse_when(const char *s, int end_of_day, int64_t *out)
{
    return scope_parse_time(s, end_of_day, out);
}

struct progress {
    int tty;
    int shown;
    time_t start;
};

static void
show_progress(void *arg, const char *what, uint64_t done, uint64_t total)
{
    struct progress *p = arg;

    if (!p->tty || time(NULL) - p->start < 1)
        return;
    fprintf(stderr, "\rcoffre: %s: %llu of %llu (%llu%%)   ", what, (unsigned long long)done,
            (unsigned long long)total, total ? (unsigned long long)(done * 100 / total) : 100ULL);
    p->shown = 1;
}

static void
end_progress(struct progress *p)
{
    if (p->shown)
        fprintf(stderr, "\r%60s\r", "");
    p->shown = 0;
}

/* The DPO's account, for entries about opening the people's fields. */
struct dpo_audit {
    const struct cmd_args *a;
    char actor[AUDIT_ACTOR_MAX + 1];
};

static int
dpo_audit(void *arg, const char *subjects, const char *fields)
{
    struct dpo_audit *d = arg;
    struct audit_entry e;
    struct cf_errmsg em = { "" };

    memset(&e, 0, sizeof e);
    snprintf(e.actor, sizeof e.actor, "%s", d->actor);
    snprintf(e.action, sizeof e.action, "scope.people");
    snprintf(e.subject, sizeof e.subject, "%s", subjects);
    snprintf(e.fields, sizeof e.fields, "%s", fields);
    snprintf(e.outcome, sizeof e.outcome, "ok");
    if (cli.audit != NULL && audit_append(cli.audit, &e, &em) == CF_OK)
        return 0;
    fprintf(stderr, "coffre %s: the audit trail could not record this (%s)\n", d->a->cmd->name,
            em.msg);
    return -1;
}

/* --actor: "cli", "acct:<id>", an account id or a login; the trail's form
 * in out.  Exit code on failure. */
static int
scope_actor(const struct cmd_args *a, struct records *r, const char *v,
            char out[AUDIT_ACTOR_MAX + 1])
{
    struct account *acct;
    enum cf_err rc;

    if (strcmp(v, "cli") == 0) {
        snprintf(out, AUDIT_ACTOR_MAX + 1, "cli");
        return 0;
    }
    if (strncmp(v, "acct:", 5) == 0)
        v += 5;
    acct = malloc(sizeof *acct);
    if (acct == NULL) {
        fprintf(stderr, "coffre %s: out of memory\n", a->cmd->name);
        return EXIT_FAILURE;
    }
    rc = account_get(r, v, acct);
    if (rc != CF_OK)
        rc = account_find(r, v, acct);
    if (rc == CF_OK)
        snprintf(out, AUDIT_ACTOR_MAX + 1, "acct:%s", acct->id);
    free(acct);
    /* An account id the store no longer has still has its trail. */
    if (rc != CF_OK && strlen(v) == RECORD_ID_HEX && strspn(v, "0123456789abcdef") == RECORD_ID_HEX) {
        snprintf(out, AUDIT_ACTOR_MAX + 1, "acct:%s", v);
        rc = CF_OK;
    }
    if (rc != CF_OK) {
        fprintf(stderr, "coffre %s: --actor: no account with this login or id\n", a->cmd->name);
        return EXIT_FAILURE;
    }
    return 0;
}

static int
valid_word(const char *s, size_t max)
{
    size_t i, n = strlen(s);

    if (n == 0 || n > max)
        return 0;
    for (i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
              s[i] == '_'))
            return 0;
    return 1;
}

static int
cmd_scope(struct cmd_args *a)
{
    static const char *const states[] = { ACCOUNT_STATE_PROVISIONED, ACCOUNT_STATE_ACTIVE,
        ACCOUNT_STATE_LOCKED, ACCOUNT_STATE_DISABLED, ACCOUNT_STATE_FROZEN, NULL };
    const char *data = config_pick(opt(a, "data"), CONFIG_ENV_DATA);
    const char *people = opt(a, "people"), *note = opt(a, "notification"), *fmt = opt(a, "format");
    const char *dpo = opt(a, "dpo");
    char actors[SCOPE_ACTORS_MAX][AUDIT_ACTOR_MAX + 1], code[ACADEMIE_CODE_BYTES + 1];
    char est[RECORD_ID_HEX + 1], selectors[1024];
    struct scope_query q;
    struct scope_result res;
    struct progress pg = { isatty(STDERR_FILENO), 0, time(NULL) };
    struct dpo_audit da = { a, "cli" };
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    enum cf_err rc;
    size_t i, o = 0;
    int x, json = 0;

    memset(&q, 0, sizeof q);
    if (data == NULL)
        return usage_error(a->cmd, "--data DIR (or %s) is required", CONFIG_ENV_DATA);
    if (fmt != NULL && strcmp(fmt, "json") != 0 && strcmp(fmt, "text") != 0)
        return usage_error(a->cmd, "--format: text or json");
    json = fmt != NULL && strcmp(fmt, "json") == 0;
    if (opt(a, "from") != NULL) {
        if (parse_when(opt(a, "from"), 0, &q.from_ms) != 0)
            return usage_error(a->cmd, "--from: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]Z (UTC)");
        q.has_from = 1;
    }
    if (opt(a, "to") != NULL) {
        if (parse_when(opt(a, "to"), 1, &q.to_ms) != 0)
            return usage_error(a->cmd, "--to: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]Z (UTC)");
        q.has_to = 1;
    }
    if (q.has_from && q.has_to && q.from_ms > q.to_ms)
        return usage_error(a->cmd, "--from is after --to: the window is empty");
    if (opt(a, "address") != NULL && scope_parse_cidr(opt(a, "address"), &q) != 0)
        return usage_error(a->cmd, "--address: an IP address or a CIDR block, e.g. 203.0.113.0/24");
    if ((q.session = opt(a, "session")) != NULL && !valid_word(q.session, AUDIT_SESSION_MAX))
        return usage_error(a->cmd, "--session: the session reference as the trail shows it (hex)");
    if ((q.rule = opt(a, "rule")) != NULL && !valid_word(q.rule, 32))
        return usage_error(a->cmd, "--rule: a guard rule such as budget-1h, budget-24h, canary, address-1h");
    if ((q.account_state = opt(a, "account-state")) != NULL) {
        for (i = 0; states[i] != NULL && strcmp(states[i], q.account_state) != 0; i++)
            ;
        if (states[i] == NULL)
            return usage_error(a->cmd, "--account-state: provisioned, active, locked, disabled or frozen");
    }
    if (opt(a, "compartment") != NULL) {
        if (ids_parse_academie(opt(a, "compartment"), strlen(opt(a, "compartment")), code, &em) != CF_OK)
            return fail(a, CF_ERR_INPUT, &em);
        q.compartment = code;
    }
    if (a->nrep > SCOPE_ACTORS_MAX)
        return usage_error(a->cmd, "at most %d --actor", SCOPE_ACTORS_MAX);
    if (a->nrep == 0 && q.session == NULL && !q.has_cidr && !q.has_from && !q.has_to &&
        q.compartment == NULL && opt(a, "establishment") == NULL && q.account_state == NULL &&
        q.rule == NULL)
        return usage_error(a->cmd, "give at least one selector (--actor, --session, --address, "
                           "--from/--to, --compartment, --establishment, --account-state, --rule)");
    if (people != NULL && (dpo == NULL || opt(a, "totp") == NULL))
        return usage_error(a->cmd, "--people opens names and contacts: give --dpo LOGIN (an active "
                           "DPO account) and --totp CODE (its current code)");
    if (people == NULL && (dpo != NULL || opt(a, "totp") != NULL))
        return usage_error(a->cmd, "--dpo and --totp go with --people");
    if ((people != NULL && note != NULL && strcmp(people, note) == 0))
        return usage_error(a->cmd, "--people and --notification must be different files");
    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    for (i = 0; i < a->nrep; i++) {
        if ((x = scope_actor(a, r, a->rep[i], actors[i])) != 0) {
            close_records(r);
            return x;
        }
        q.actor[q.nactor++] = actors[i];
    }
    if (opt(a, "establishment") != NULL) {
        if ((x = establishment_id(a, r, est, &em)) != 0) {
            close_records(r);
            return x;
        }
        q.establishment = est;
    }
    if (dpo != NULL) {
        struct account *acct = malloc(sizeof *acct);

        const char *why = "--dpo: not an active DPO account";

        rc = acct == NULL ? CF_ERR_NOMEM : account_find(r, dpo, acct);
        if (rc == CF_OK && (acct->role != ROLE_DPO ||
                            strcmp(acct->row.state, ACCOUNT_STATE_ACTIVE) != 0))
            rc = CF_ERR_DENIED;
        /* a fresh second factor: a current TOTP code, each accepted once */
        if (rc == CF_OK && (rc = mfa_totp_verify(r, acct, opt(a, "totp"), (int64_t)time(NULL))) != CF_OK)
            why = rc == CF_ERR_NOTFOUND ? "--totp: this DPO account has no TOTP enrolled"
                                        : "--totp: wrong, expired or already used code";
        if (rc == CF_OK)
            snprintf(da.actor, sizeof da.actor, "acct:%s", acct->id);
        if (rc != CF_OK) {
            (void)cli_audit(a, "scope.people", "", "", "denied");  /* it says so itself */
            free(acct);
            close_records(r);
            fprintf(stderr, "coffre %s: %s\n", a->cmd->name, why);
            return EXIT_FAILURE;
        }
        free(acct);
    }
    /* how the scope was asked, for the notification (ids only) */
    selectors[0] = '\0';
    for (i = 0; i < q.nactor; i++)
        o += (size_t)snprintf(selectors + o, o < sizeof selectors ? sizeof selectors - o : 0,
                              " --actor %s", q.actor[i]);
    {
        const char *names[] = { "session", "address", "from", "to", "compartment", "establishment",
                                "account-state", "rule", NULL };

        for (i = 0; names[i] != NULL; i++)
            if (opt(a, names[i]) != NULL && o < sizeof selectors)
                o += (size_t)snprintf(selectors + o, sizeof selectors - o, " --%s %s", names[i],
                                      opt(a, names[i]));
    }
    rc = scope_run(data, r, &q, show_progress, &pg, &res, &em);
    end_progress(&pg);
    x = cli_audit(a, "scope.summary", "", "", rc == CF_OK ? "ok" : "failed");
    if (rc != CF_OK || x != 0) {
        close_records(r);
        return rc != CF_OK ? fail(a, rc, &em) : x;
    }
    if (note != NULL)
        rc = scope_write_notification(note, r, &res, selectors[0] ? selectors + 1 : "",
                                      config_pick(opt(a, "dpo-contact"), CONFIG_ENV_DPO_CONTACT), &em);
    if (rc == CF_OK && people != NULL) {
        uint64_t lines = 0;

        rc = scope_write_people(people, r, &res, (int64_t)time(NULL) * 1000, dpo_audit, &da,
                                &lines, &em);
        if (rc == CF_OK)
            fprintf(stderr, "coffre: %llu people to notify in '%s' (mode 0600)\n",
                    (unsigned long long)lines, people);
    }
    if (rc == CF_OK)
        scope_print(stdout, r, &res, json);
    scope_result_free(&res);
    close_records(r);
    return rc == CF_OK ? 0 : fail(a, rc, &em);
}

static int
cmd_audit_reindex(struct cmd_args *a)
{
    const char *data = config_pick(opt(a, "data"), CONFIG_ENV_DATA);
    struct progress pg = { isatty(STDERR_FILENO), 0, time(NULL) };
    struct records *r = NULL;
    struct cf_errmsg em = { "" };
    uint64_t n = 0;
    enum cf_err rc;
    int x;

    if ((x = open_records(a, &r, &em)) != 0)
        return x;
    rc = scope_reindex(data, 1, show_progress, &pg, &n, &em);
    end_progress(&pg);
    x = cli_audit(a, "audit.reindex", "", "", rc == CF_OK ? "ok" : "failed");
    close_records(r);
    if (rc != CF_OK)
        return fail(a, rc, &em);
    if (x == 0)
        printf("coffre: audit index rebuilt: %llu entries\n", (unsigned long long)n);
    return x;
}

/* ---- the table -------------------------------------------------------- */

#define DATA_OPTS { "data", 0 }, { "keyring", 0 }
#define DATA_USAGE "--data DIR [--keyring FILE]"
#define DATA_HELP \
    "  --data DIR       data directory (or $COFFRE_DATA)\n" \
    "  --keyring FILE   keyring to use instead of DIR/keyring (or $COFFRE_KEYRING)"

static const struct opt o_init[] = { { "data", 0 }, { "academie", 1 }, { NULL, 0 } };
static const struct opt o_data[] = { DATA_OPTS, { NULL, 0 } };
static const struct opt o_export_keygen[] = { { "out", 0 }, { NULL, 0 } };
static const struct opt o_export_open[] = { { "secret-key", 0 }, { "in", 0 }, { NULL, 0 } };
static const struct opt o_export[] = { DATA_OPTS, { "compartment", 0 }, { "out", 0 }, { NULL, 0 } };
static const struct opt o_rotate[] = { DATA_OPTS, { "compartment", 0 }, { "batch", 0 },
                                       { "reseal", 0 }, { NULL, 0 } };
static const struct opt o_est_add[] = { DATA_OPTS, { "uai", 0 }, { "name", 0 },
                                        { "academie", 0 }, { NULL, 0 } };
static const struct opt o_est_list[] = { DATA_OPTS, { "limit", 0 }, { NULL, 0 } };
static const struct opt o_canary[] = { DATA_OPTS, { "establishment", 0 }, { "count", 0 }, { NULL, 0 } };
static const struct opt o_class_assign[] = { DATA_OPTS, { "establishment", 0 }, { "class", 0 },
    { "staff-email", 0 }, { "subject", 0 }, { NULL, 0 } };
static const struct opt o_class_add[] = { DATA_OPTS, { "establishment", 0 }, { "name", 0 },
                                          { NULL, 0 } };
static const struct opt o_student_add[] = { DATA_OPTS, { "establishment", 0 }, { "class", 0 },
    { "ine", 0 }, { "family-name", 0 }, { "given-names", 0 }, { "birth-date", 0 },
    { "address", 0 }, { "email", 0 }, { NULL, 0 } };
static const struct opt o_find_ine[] = { DATA_OPTS, { "ine", 0 }, { NULL, 0 } };
static const struct opt o_find_email[] = { DATA_OPTS, { "email", 0 }, { NULL, 0 } };
static const struct opt o_staff_add[] = { DATA_OPTS, { "establishment", 0 },
    { "family-name", 0 }, { "given-names", 0 }, { "email", 0 }, { "function", 0 }, { NULL, 0 } };
static const struct opt o_guardian_add[] = { DATA_OPTS, { "student", 0 }, { "relationship", 0 },
    { "family-name", 0 }, { "given-names", 0 }, { "phone", 0 }, { "email", 0 },
    { "address", 0 }, { NULL, 0 } };
static const struct opt o_demo[] = { DATA_OPTS, { "establishments", 0 }, { "students-per", 0 },
    { "seed", 0 }, { "academie", 0 }, { "guardians-per", 0 }, { "first-establishment", 0 },
    { NULL, 0 } };

static const struct opt o_verify[] = { DATA_OPTS, { "initial-seed", 0 }, { "archive", 1 }, { NULL, 0 } };
static const struct opt o_archive[] = { DATA_OPTS, { "before", 0 }, { "out", 0 }, { NULL, 0 } };
static const struct opt o_scope[] = { DATA_OPTS, { "actor", 1 }, { "session", 0 }, { "address", 0 },
    { "from", 0 }, { "to", 0 }, { "compartment", 0 }, { "establishment", 0 },
    { "account-state", 0 }, { "rule", 0 }, { "people", 0 }, { "notification", 0 }, { "dpo", 0 },
    { "dpo-contact", 0 }, { "format", 0 }, { "totp", 0 }, { NULL, 0 } };
static const struct opt o_serve[] = { DATA_OPTS, { "listen", 0 }, { "tls-cert", 0 },
    { "tls-key", 0 }, { "insecure-http", 0 }, { "trusted-proxy", 1 }, { "threads", 0 },
    { "hash-workers", 0 }, { "hash-queue", 0 }, { "hash-t", 0 }, { "hash-m-kib", 0 },
    { "session-idle", 0 }, { "session-absolute", 0 }, { "password-min-bits", 0 },
    { "audit-checkpoint-entries", 0 }, { "audit-checkpoint-ms", 0 }, { "guard-dry-run", 0 },
    { "guard-budgets", 0 }, { "guard-address-budget", 0 }, { "guard-miss-weight", 0 },
    { "guard-block-s", 0 }, { "mfa-required-roles", 0 }, { "mfa-admin-webauthn", 0 },
    { "mfa-step-up-min", 0 }, { "webauthn-rp-id", 0 }, { "webauthn-origin", 0 },
    { "guard-window-short-s", 0 }, { "guard-window-long-s", 0 },
    { "alert-webhook", 0 }, { "export-max-rows", 0 },
    { "user", 0 }, { "seccomp", 0 }, { NULL, 0 } };
static const struct opt o_selftest[] = { { "seccomp", 0 }, { "call", 0 }, { NULL, 0 } };
static const struct opt o_provision[] = { DATA_OPTS, { "role", 0 }, { "person", 0 },
    { "establishment", 0 }, { "academie", 0 }, { "login", 0 }, { "code-days", 0 }, { "all", 0 },
    { "out", 0 }, { NULL, 0 } };
static const struct opt o_account_show[] = { DATA_OPTS, { "login", 0 }, { NULL, 0 } };
static const struct opt o_account_unlock[] = { DATA_OPTS, { "login", 0 }, { "reason", 0 }, { NULL, 0 } };
static const struct opt o_incident[] = { DATA_OPTS, { "academie", 0 }, { "establishment", 0 },
    { "out", 0 }, { "dry-run", 0 }, { NULL, 0 } };

#define INCIDENT_USAGE DATA_USAGE " [--academie CODE | --establishment UAI] [--dry-run 1]"
#define INCIDENT_HELP \
    "Scope: every account, or an académie's, or an establishment's.  --dry-run 1\n" \
    "counts what would change.  One transaction: all or nothing.\n" DATA_HELP

static const struct cmd commands[] = {
    { "init", "--data DIR --academie CODE [--academie CODE...]",
      "Creates DIR (mode 0700), its keyring (one key-encryption key per académie,\n"
      "mode 0600) and its store.  Prints the initial audit seed once.  Refuses to\n"
      "touch an existing keyring or store.  'coffre academies' lists the codes.",
      o_init, 0, cmd_init },
    { "serve", DATA_USAGE " [--listen ADDR:PORT] [--tls-cert PEM --tls-key PEM]\n"
      "       [--insecure-http 1] [--trusted-proxy IP]... [--threads N] [--hash-workers N]\n"
      "       [--hash-queue N] [--hash-t N] [--hash-m-kib N] [--session-idle S]\n"
      "       [--session-absolute S] [--password-min-bits N] [--audit-checkpoint-entries N]\n"
      "       [--audit-checkpoint-ms MS] [--guard-dry-run 1] [--guard-budgets ROLE=S/L,...]\n"
      "       [--guard-address-budget S/L] [--guard-miss-weight N] [--guard-block-s N]\n"
      "       [--mfa-required-roles ROLE,...|none] [--mfa-admin-webauthn 1] [--mfa-step-up-min N]\n"
      "       [--webauthn-rp-id HOST] [--webauthn-origin URL[,URL...]]\n"
      "       [--guard-window-short-s S] [--guard-window-long-s S] [--alert-webhook URL]\n"
      "       [--export-max-rows N] [--user NAME] [--seccomp kill|log|off]",
      "Serves the HTTP API (default 127.0.0.1:8080) until SIGTERM, then finishes the\n"
      "requests in flight, writes the audit trail's final checkpoint and exits 0.\n"
      "Plain HTTP is refused on a non-loopback address unless --insecure-http 1.\n"
      "X-Forwarded-For is believed only from --trusted-proxy addresses.  Argon2id:\n"
      "--hash-workers at a time (memory bound: workers x --hash-m-kib), --hash-queue\n"
      "waiting, beyond which sign-ins get 503.  Defaults: t=2, 19 MiB, 2 workers,\n"
      "queue 256; sessions idle 30 min, absolute 12 h; passwords >= 50 bits.  The\n"
      "audit trail signs a checkpoint (and advances its epoch) every 1 s or 100,000\n"
      "entries, whichever comes first.  The guard's budgets (distinct people read per\n"
      "1 h / 24 h), miss weight and address block time default to docs/guard.md's;\n"
      "each --guard-* flag may come from COFFRE_GUARD_* instead (--guard-block-s:\n"
      "COFFRE_GUARD_BLOCK_S).  --alert-webhook: each alert POSTed as JSON to an\n"
      "http:// URL on a loopback address (COFFRE_ALERT_WEBHOOK).  --export-max-rows:\n"
      "the most pupils one approved export may hold (default 5,000).\n"
      "Second factors (docs/mfa.md): required for teacher, staff, academie_admin, dpo\n"
      "and service; step-up within 10 min for incident commands and export approvals;\n"
      "WebAuthn relying party 'localhost' with this server's loopback origins unless given.\n"
      "Refuses to run as root unless --user NAME (the data directory's owner): it\n"
      "becomes NAME once the socket is bound and the files open.  Then a seccomp\n"
      "allow-list is installed: a forbidden system call kills the process (SIGSYS),\n"
      "or with --seccomp log is logged and fails; --seccomp off: no filter\n"
      "(diagnosis).  docs/hardening.md.\n" DATA_HELP,
      o_serve, 0, cmd_serve },
    { "routes", "", "Prints the HTTP route table, one JSON object a line: method, pattern,\n"
      "name, flags and what a caller must have passed (auth: none, session, partial,\n"
      "factor, ready, admin, step-up, admin+step-up; docs/mfa.md).", NULL, 0, cmd_routes },
    { "sandbox-selftest", "[--seccomp kill|log|off] [--call NAME]",
      "Installs serve's seccomp filter with a thread already running, checks that\n"
      "allowed calls work, then makes one forbidden call from that thread: ptrace\n"
      "(default), execve, mount, setuid, fork, wx-mmap or packet-socket.  kill: the\n"
      "process dies of SIGSYS; log: the call fails with ENOSYS and a log line on\n"
      "stderr names it (exit 0).  For tests and for checking a new kernel or libc.",
      o_selftest, 0, cmd_sandbox_selftest },
    { "audit verify", DATA_USAGE " [--initial-seed FILE] [--archive FILE]...",
      "Checks the whole audit trail: every entry's hash chain, every signed\n"
      "checkpoint, the chain of epoch keys, and that no checkpoint is missing.  With\n"
      "the auditor's initial seed (FILE: the 64 hex digits init printed) also that\n"
      "every epoch key derives from it, which no one holding a later keyring can fake.\n"
      "Names the first bad entry or checkpoint; exit 1 when tampered.  Safe while the\n"
      "server runs.  --archive FILE (repeatable): also the archives 'audit archive'\n"
      "wrote, each against the live trail's checkpoints.\n" DATA_HELP,
      o_verify, 0, cmd_audit_verify },
    { "export keygen", "--out FILE",
      "Makes an X25519 key pair for receiving bulk exports: writes the secret key to\n"
      "FILE (new, mode 0600; keep it off the server) and prints the public key, in\n"
      "base64, to give as recipient_public_key in POST /api/v1/exports.",
      o_export_keygen, 0, cmd_export_keygen },
    { "export open", "--secret-key FILE [--in FILE]",
      "Opens an export downloaded from GET /api/v1/exports/ID/file (the JSON answer,\n"
      "or its 'sealed' value; --in, default stdin) with the secret key of 'coffre\n"
      "export keygen', and prints the JSON document.",
      o_export_open, 0, cmd_export_open },
    { "scope", DATA_USAGE " [--actor ACCOUNT]... [--session REF] [--address CIDR]\n"
      "       [--from WHEN] [--to WHEN] [--compartment CODE] [--establishment UAI]\n"
      "       [--account-state STATE] [--rule RULE] [--format text|json]\n"
      "       [--notification FILE.md] [--people FILE.csv --dpo LOGIN --totp CODE]\n"
      "       [--dpo-contact TEXT]",
      "Whose data was read, which fields, by whom: the accesses matching every\n"
      "selector given (at least one), the people they served (students, guardians,\n"
      "staff; by establishment and field; in clear or never decrypted), reads refused,\n"
      "first and last access, and the measures the trail records.  ACCOUNT: a login,\n"
      "an account id, or cli.  WHEN: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]Z (UTC).\n"
      "STATE: provisioned (accounts provisioned, not yet activated, at some time in\n"
      "the window), active, locked, disabled, frozen (now).  RULE: accesses that led to\n"
      "a guard lockout (budget-1h, budget-24h, address-1h, address-24h, canary).\n"
      "--notification writes a draft of the Art. 33 notification; --people writes one\n"
      "line per person to notify (a minor's guardians), opening names and contacts:\n"
      "it needs an active DPO account and its current TOTP code (each code works\n"
      "once), and each opening is audited.  Files appear\n"
      "whole or not at all.  Exit 1 when no entry matches.\n" DATA_HELP,
      o_scope, 0, cmd_scope },
    { "audit archive", DATA_USAGE " --before WHEN --out FILE",
      "Moves the entries before WHEN (up to the last signed checkpoint before it;\n"
      "the trail's last checkpoint always stays) to FILE, checked as written, mode\n"
      "0400, never overwritten; the live trail records the file's digest, then\n"
      "drops them and shrinks.  'audit verify --archive FILE' still checks them.\n" DATA_HELP,
      o_archive, 0, cmd_audit_archive },
    { "audit reindex", DATA_USAGE,
      "Rebuilds DIR/audit-index.db, the derived index scope reads, from the audit\n"
      "trail (scope also catches it up by itself).  audit verify never reads it.\n" DATA_HELP,
      o_data, 0, cmd_audit_reindex },
    { "policy show", "", "Prints the policy table: which role may read which kind of record,\n"
      "under which relationship, and which fields (Markdown).", NULL, 0, cmd_policy_show },
    { "academies", "", "Lists the académie codes coffre accepts, with their names.",
      NULL, 0, cmd_academies },
    { "keys export", DATA_USAGE " --compartment CODE --out FILE",
      "Writes to FILE (mode 0600, never overwritten) a keyring holding only the\n"
      "compartment CODE's key, for a regional node: it can open that académie's\n"
      "records and no other.  The new node gets its own audit seed, printed once.\n" DATA_HELP,
      o_export, 0, cmd_keys_export },
    { "keys rotate", DATA_USAGE " --compartment CODE [--batch N] [--reseal 0|1]",
      "Adds a data-key version for CODE; new writes use it at once.  Then re-seals\n"
      "every row still on an older version, N rows per transaction (default 1000),\n"
      "unless --reseal 0.  Reads work throughout; run it again to resume.\n" DATA_HELP,
      o_rotate, 0, cmd_keys_rotate },
    { "keys list", DATA_USAGE,
      "Shows the compartments this keyring holds, their data-key versions and how\n"
      "many rows each version seals.\n" DATA_HELP,
      o_data, 0, cmd_keys_list },
    { "establishment add", DATA_USAGE " --uai UAI --name NAME --academie CODE",
      "Adds an establishment.  The UAI's check letter is verified.\n" DATA_HELP,
      o_est_add, 0, cmd_establishment_add },
    { "establishment list", DATA_USAGE " [--limit N]",
      "Lists establishments (public data): UAI, académie, id, name.\n" DATA_HELP,
      o_est_list, 0, cmd_establishment_list },
    { "class add", DATA_USAGE " --establishment UAI --name NAME",
      "Adds a class (division) to an establishment.\n" DATA_HELP,
      o_class_add, 0, cmd_class_add },
    { "canary add", DATA_USAGE " --establishment UAI [--count N]",
      "Adds N (default 10) canary pupils to the establishment: they look like any\n"
      "other but belong to no class and no guardian, so no legitimate reader ever\n"
      "asks for one; the guard locks whoever reads one, at the first read.  Which\n"
      "pupils are canaries is kept sealed.\n" DATA_HELP,
      o_canary, 0, cmd_canary_add },
    { "class assign", DATA_USAGE " --establishment UAI --class NAME --staff-email ADDR [--subject TEXT]",
      "Records that a staff member teaches a class: a teacher reads the pupils of\n"
      "the classes they teach, and no others.\n" DATA_HELP,
      o_class_assign, 0, cmd_class_assign },
    { "student add", DATA_USAGE " --establishment UAI --ine INE --family-name NAME\n"
      "       --given-names NAMES --birth-date YYYY-MM-DD [--class NAME] [--address TEXT] [--email ADDR]",
      "Adds a student; every field is sealed, the INE and e-mail are indexed\n"
      "blindly.  Prints the new id.\n" DATA_HELP,
      o_student_add, 0, cmd_student_add },
    { "student get", DATA_USAGE " ID", "Prints one student as JSON.\n" DATA_HELP,
      o_data, 1, cmd_student_get },
    { "student find", DATA_USAGE " --ine INE",
      "Finds a student by exact INE (through the blind index).\n" DATA_HELP,
      o_find_ine, 0, cmd_student_find },
    { "guardian add", DATA_USAGE " --student ID --relationship TEXT --family-name NAME\n"
      "       --given-names NAMES [--phone N] [--email ADDR] [--address TEXT]",
      "Adds a guardian linked to a student, in one transaction.\n" DATA_HELP,
      o_guardian_add, 0, cmd_guardian_add },
    { "guardian get", DATA_USAGE " ID", "Prints one guardian as JSON.\n" DATA_HELP,
      o_data, 1, cmd_guardian_get },
    { "staff add", DATA_USAGE " --establishment UAI --family-name NAME --given-names NAMES\n"
      "       --email ADDR [--function TEXT]",
      "Adds a staff member; the professional e-mail is unique.\n" DATA_HELP,
      o_staff_add, 0, cmd_staff_add },
    { "staff get", DATA_USAGE " ID", "Prints one staff member as JSON.\n" DATA_HELP,
      o_data, 1, cmd_staff_get },
    { "staff find", DATA_USAGE " --email ADDR",
      "Finds a staff member by exact professional e-mail.\n" DATA_HELP,
      o_find_email, 0, cmd_staff_find },
    { "account provision", DATA_USAGE " --role ROLE [--person ID | --establishment UAI --all 1 --out FILE]\n"
      "       [--academie CODE] [--login LOGIN] [--code-days N]",
      "Creates a provisioned account and prints its single-use activation code once\n"
      "(valid --code-days, default 30).  Roles: student, guardian, teacher, staff (give\n"
      "--person, the record id; the login is derived from the names), academie_admin,\n"
      "dpo, service (give --academie and --login).  With --establishment UAI --all 1,\n"
      "provisions every student (guardian, staff) of the establishment without an\n"
      "account, in one transaction, and writes 'login<TAB>code<TAB>expiry' lines to\n"
      "--out FILE (mode 0600, never overwritten).\n" DATA_HELP,
      o_provision, 0, cmd_account_provision },
    { "account show", DATA_USAGE " --login LOGIN",
      "Shows an account's role, state and pending code (never the code itself).\n" DATA_HELP,
      o_account_show, 0, cmd_account_show },
    { "account unlock", DATA_USAGE " --login LOGIN --reason CODE",
      "Unlocks an account the guard locked.  CODE says why, as a short code kept in\n"
      "the audit trail (e.g. verified-with-user, false-positive): a-z, 0-9, '-'.\n" DATA_HELP,
      o_account_unlock, 0, cmd_account_unlock },
    { "account mfa-reset", DATA_USAGE " --login LOGIN --reason CODE",
      "Removes every second factor of the account (TOTP, security keys, recovery\n"
      "codes) and ends its sessions, for a person who lost them: check who they are\n"
      "first.  The reason code (e.g. verified-in-person) goes to the audit trail.\n"
      "Staff roles must then enroll again before anything else.\n" DATA_HELP,
      o_account_unlock, 0, cmd_account_mfa_reset },
    { "incident freeze-unactivated", INCIDENT_USAGE,
      "Freezes every provisioned, never-activated account in scope: their codes\n"
      "stop working.\n" INCIDENT_HELP, o_incident, 0, cmd_incident_freeze },
    { "incident reset-codes", INCIDENT_USAGE " --out FILE",
      "Replaces the activation code of every provisioned account in scope; old\n"
      "codes stop working, the new ones go to FILE (mode 0600) for distribution.\n"
      INCIDENT_HELP, o_incident, 0, cmd_incident_reset },
    { "incident revoke-sessions", INCIDENT_USAGE,
      "Revokes every live session of the accounts in scope.\n" INCIDENT_HELP,
      o_incident, 0, cmd_incident_revoke },
    { "incident force-password-reset", INCIDENT_USAGE,
      "Makes every active account in scope set a new password at next sign-in, and\n"
      "revokes their sessions.\n" INCIDENT_HELP, o_incident, 0, cmd_incident_force },
    { "demo-data", DATA_USAGE " [--establishments N] [--students-per N] [--seed S]\n"
      "       [--academie CODE] [--guardians-per 0|1|2] [--first-establishment N]",
      "Generates deterministic synthetic establishments, classes, staff, students\n"
      "and guardians (département 099, e-mails in .invalid), in one transaction.\n"
      "Defaults: 3 establishments, 100 students each, seed 42, the keyring's first\n"
      "académie.\n" DATA_HELP,
      o_demo, 0, cmd_demo_data },
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void
print_overview(FILE *f)
{
    size_t i;

    fprintf(f, "usage: coffre COMMAND [options]   ('coffre COMMAND --help' for each)\n\n");
    for (i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %s\n", commands[i].name);
}

/* Matches "keys rotate" against argv[0..1]; returns words consumed. */
static int
match_cmd(const struct cmd *c, int argc, char **argv)
{
    const char *sp = strchr(c->name, ' ');

    if (sp == NULL)
        return strcmp(c->name, argv[0]) == 0 ? 1 : 0;
    if (argc < 2 || strlen(argv[0]) != (size_t)(sp - c->name) ||
        strncmp(c->name, argv[0], (size_t)(sp - c->name)) != 0 ||
        strcmp(sp + 1, argv[1]) != 0)
        return 0;
    return 2;
}

static void
harden_process(void)
{
    struct rlimit no_core = { 0, 0 };

    /* Keys must never land in a core dump or be readable via ptrace. */
    (void)setrlimit(RLIMIT_CORE, &no_core);
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    umask(077);
}

int
main(int argc, char **argv)
{
    struct cmd_args a;
    size_t i;
    int used, rc;

    harden_process();
    /* A client that hangs up must not kill the server. */
    signal(SIGPIPE, SIG_IGN);
    /* The CLI talks to a person: only warnings and errors on stderr.  The
     * daemon (serve) logs everything, one JSON object per line. */
    if (argc < 2 || strcmp(argv[1], "serve") != 0)
        log_set_level(LOG_WARN);
    if (sodium_init() < 0) {
        fprintf(stderr, "coffre: libsodium failed to initialise\n");
        return EXIT_FAILURE;
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        print_overview(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("coffre 0.1\n");
        return 0;
    }
    for (i = 0; i < NCOMMANDS; i++) {
        size_t n = 0;

        while (commands[i].opts != NULL && commands[i].opts[n].name != NULL)
            n++;
        if (n > MAX_OPTS) {
            fprintf(stderr, "coffre: internal error: '%s' has more than %d options\n",
                    commands[i].name, MAX_OPTS);
            return EXIT_FAILURE;
        }
        used = match_cmd(&commands[i], argc - 1, argv + 1);
        if (used == 0)
            continue;
        rc = parse_args(&commands[i], argc - 1 - used, argv + 1 + used, &a);
        if (rc == -1)
            return 0;
        if (rc != 0)
            return rc;
        return commands[i].run(&a);
    }
    fprintf(stderr, "coffre: unknown command '%s'\n", argv[1]);
    print_overview(stderr);
    return EXIT_USAGE;
}
