/*
 * web.c - templates, catalogues, language choice and CSRF tokens (web.h).
 *
 * Everything here works on the files embedded from web/ at build time;
 * web_open parses and checks them once, so a missing message is a start-up
 * error, never a blank on a page.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "log.h"
#include "web.h"
#include "banned.h"

/* build/web_files.c (scripts/embed-web.sh) */
struct web_file {
    const char *name;             /* path under web/: "signin.html", "i18n/fr.txt" */
    const unsigned char *data;
    size_t len;
};
extern const struct web_file web_files[];
extern const size_t web_file_count;

#define CSRF_MAC_BYTES 16
#define CSRF_KEY_BYTES crypto_generichash_KEYBYTES

struct message {
    const char *key, *text;       /* into the catalogue's copy */
};

struct catalogue {
    char *copy;                   /* the file, NUL-split in place */
    struct message m[WEB_MAX_MESSAGES];
    size_t n;
};

struct web {
    struct catalogue cat[WEB_NLANGS];
    uint8_t *csrf_key;            /* sodium_malloc */
};

static const char *const lang_codes[WEB_NLANGS] = { "fr", "en" };

/* The first n-byte needle in [p, end), or NULL (memmem is a GNU extension). */
static const char *
find(const char *p, const char *end, const char *needle, size_t n)
{
    for (; p + n <= end; p++)
        if (memcmp(p, needle, n) == 0)
            return p;
    return NULL;
}

/* ---- output buffer, bounded ------------------------------------------- */

struct obuf {
    char *p;
    size_t n, cap;
    int full;
};

static void
put(struct obuf *o, const char *s, size_t n)
{
    if (o->full)
        return;
    if (o->n + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        char *p;

        while (cap < o->n + n + 1)
            cap *= 2;
        if (cap > WEB_MAX_OUTPUT + 1) {
            o->full = 1;
            return;
        }
        p = realloc(o->p, cap);
        if (p == NULL) {
            o->full = 1;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}

static void
put_escaped(struct obuf *o, const char *s)
{
    size_t i, start = 0;

    for (i = 0; s[i] != '\0'; i++) {
        const char *rep = NULL;

        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        if (rep != NULL) {
            put(o, s + start, i - start);
            put(o, rep, strlen(rep));
            start = i + 1;
        }
    }
    put(o, s + start, i - start);
}

/* ---- catalogues -------------------------------------------------------- */

static int
cmp_message(const void *a, const void *b)
{
    return strcmp(((const struct message *)a)->key, ((const struct message *)b)->key);
}

static int
key_ok(const char *k, size_t n)
{
    size_t i;

    if (n == 0 || n > WEB_MAX_KEY)
        return 0;
    for (i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') ||
              k[i] == '.' || k[i] == '-' || k[i] == '_'))
            return 0;
    return 1;
}

/* "key = text" lines; '#' starts a comment line; blank lines skipped. */
static enum cf_err
catalogue_parse(struct catalogue *c, const struct web_file *f, struct cf_errmsg *em)
{
    char *line, *next;
    unsigned lineno = 0;
    size_t i;

    c->copy = malloc(f->len + 1);
    if (c->copy == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "out of memory");
    memcpy(c->copy, f->data, f->len);
    c->copy[f->len] = '\0';
    for (line = c->copy; line != NULL && *line != '\0'; line = next) {
        char *eq, *k, *v, *end;

        lineno++;
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        while (*line == ' ')
            line++;
        if (*line == '\0' || *line == '#')
            continue;
        eq = strchr(line, '=');
        if (eq == NULL)
            return cf_fail(em, CF_ERR_INPUT, "web/%s:%u: no '='", f->name, lineno);
        k = line;
        end = eq;
        while (end > k && end[-1] == ' ')
            end--;
        *end = '\0';
        v = eq + 1;
        while (*v == ' ')
            v++;
        if (!key_ok(k, strlen(k)) || strlen(v) > WEB_MAX_TEXT)
            return cf_fail(em, CF_ERR_INPUT, "web/%s:%u: bad key or text too long",
                           f->name, lineno);
        if (c->n == WEB_MAX_MESSAGES)
            return cf_fail(em, CF_ERR_LIMIT, "web/%s: more than %d messages", f->name,
                           WEB_MAX_MESSAGES);
        c->m[c->n].key = k;
        c->m[c->n].text = v;
        c->n++;
    }
    qsort(c->m, c->n, sizeof c->m[0], cmp_message);
    for (i = 1; i < c->n; i++)
        if (strcmp(c->m[i - 1].key, c->m[i].key) == 0)
            return cf_fail(em, CF_ERR_INPUT, "web/%s: '%s' twice", f->name, c->m[i].key);
    return CF_OK;
}

static const char *
lookup(const struct catalogue *c, const char *key)
{
    struct message k = { key, NULL };
    const struct message *m = bsearch(&k, c->m, c->n, sizeof c->m[0], cmp_message);

    return m != NULL ? m->text : NULL;
}

const char *
web_text(const struct web *w, enum web_lang l, const char *key)
{
    const char *t = lookup(&w->cat[l], key);

    return t != NULL ? t : key;
}

int
web_has_text(const struct web *w, const char *key)
{
    return lookup(&w->cat[WEB_FR], key) != NULL;
}

/* ---- files ------------------------------------------------------------- */

static const struct web_file *
file_named(const char *name)
{
    size_t i;

    for (i = 0; i < web_file_count; i++)
        if (strcmp(web_files[i].name, name) == 0)
            return &web_files[i];
    return NULL;
}

static const struct web_file *
template_named(const char *name)
{
    char path[96];

    if (strlen(name) > 64 || strchr(name, '/') != NULL)
        return NULL;
    snprintf(path, sizeof path, "%s.html", name);
    return file_named(path);
}

const char *
web_static(const struct web *w, const char *name, size_t *len, const char **content_type)
{
    static const struct { const char *name, *type; } statics[] = {
        { "app.css", "text/css; charset=utf-8" },
        { "app.js", "text/javascript; charset=utf-8" },
    };
    const struct web_file *f;
    size_t i;

    (void)w;
    for (i = 0; i < sizeof statics / sizeof statics[0]; i++)
        if (strcmp(name, statics[i].name) == 0 && (f = file_named(name)) != NULL) {
            *len = f->len;
            *content_type = statics[i].type;
            return (const char *)f->data;
        }
    return NULL;
}

/* ---- templates --------------------------------------------------------- */

struct scope {
    json_t *v[WEB_MAX_DEPTH + 2];
    size_t n;
};

/* a.b.c in the innermost scope that has a; "." is the scope itself */
static json_t *
resolve(const struct scope *sc, const char *name, size_t nlen)
{
    char part[WEB_MAX_KEY + 1];
    size_t i, a, b;
    json_t *v = NULL;

    if (nlen == 1 && name[0] == '.')
        return sc->n > 0 ? sc->v[sc->n - 1] : NULL;
    b = 0;
    while (b < nlen && name[b] != '.')
        b++;
    if (b == 0 || b > WEB_MAX_KEY)
        return NULL;
    memcpy(part, name, b);
    part[b] = '\0';
    for (i = sc->n; i > 0 && v == NULL; i--)
        v = json_object_get(sc->v[i - 1], part);
    while (v != NULL && b < nlen) {
        a = b + 1;
        b = a;
        while (b < nlen && name[b] != '.')
            b++;
        if (b == a || b - a > WEB_MAX_KEY)
            return NULL;
        memcpy(part, name + a, b - a);
        part[b - a] = '\0';
        v = json_object_get(v, part);
    }
    return v;
}

static int
truthy(json_t *v)
{
    if (v == NULL || json_is_null(v) || json_is_false(v))
        return 0;
    if (json_is_string(v))
        return json_string_length(v) > 0;
    if (json_is_integer(v))
        return json_integer_value(v) != 0;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    return 1;
}

static void
put_value(struct obuf *o, json_t *v)
{
    char num[32];

    if (json_is_string(v))
        put_escaped(o, json_string_value(v));
    else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        put(o, num, strlen(num));
    }
}

static void
put_time(struct obuf *o, json_t *v)
{
    char buf[40];
    struct tm tm;
    time_t t;

    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return;
    t = (time_t)json_integer_value(v);
    if (gmtime_r(&t, &tm) == NULL)
        return;
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
    put(o, buf, strlen(buf));
}

static int
raw_allowed(const char *name, size_t n)
{
    static const char *const raw[] = WEB_RAW_NAMES;
    size_t i;

    for (i = 0; raw[i] != NULL; i++)
        if (strlen(raw[i]) == n && memcmp(raw[i], name, n) == 0)
            return 1;
    return 0;
}

/* Where "{{/name}}" closes a section opened before p; NULL when it does
 * not. */
static const char *
section_end(const char *p, const char *end, const char *name, size_t n)
{
    char close[WEB_MAX_KEY + 8];
    size_t cl;

    if (n > WEB_MAX_KEY)
        return NULL;
    cl = (size_t)snprintf(close, sizeof close, "{{/%.*s}}", (int)n, name);
    return find(p, end, close, cl);
}

struct renderer {
    const struct web *w;
    enum web_lang lang;
    struct obuf out;
    int bad;                      /* malformed template */
};

static void render(struct renderer *r, const char *p, const char *end, struct scope *sc,
                   unsigned depth);

static void
render_tag(struct renderer *r, const char *tag, size_t n, const char **p, const char *end,
           struct scope *sc, unsigned depth)
{
    if (n > 2 && tag[0] == 't' && tag[1] == ':') {
        char key[WEB_MAX_KEY + 1];

        if (n - 2 > WEB_MAX_KEY) {
            r->bad = 1;
            return;
        }
        memcpy(key, tag + 2, n - 2);
        key[n - 2] = '\0';
        put_escaped(&r->out, web_text(r->w, r->lang, key));
    } else if (n > 3 && memcmp(tag, "tk:", 3) == 0) {
        json_t *v = resolve(sc, tag + 3, n - 3);

        if (json_is_string(v))
            put_escaped(&r->out, web_text(r->w, r->lang, json_string_value(v)));
    } else if (n > 5 && memcmp(tag, "time:", 5) == 0) {
        put_time(&r->out, resolve(sc, tag + 5, n - 5));
    } else if (tag[0] == '&') {
        json_t *v = resolve(sc, tag + 1, n - 1);

        if (!raw_allowed(tag + 1, n - 1))
            r->bad = 1;
        else if (json_is_string(v))
            put(&r->out, json_string_value(v), json_string_length(v));
    } else if (tag[0] == '#' || tag[0] == '^') {
        const char *close = section_end(*p, end, tag + 1, n - 1);
        json_t *v = resolve(sc, tag + 1, n - 1);
        size_t i;

        if (close == NULL || depth >= WEB_MAX_DEPTH) {
            r->bad = 1;
            return;
        }
        if (tag[0] == '^') {
            if (!truthy(v))
                render(r, *p, close, sc, depth + 1);
        } else if (json_is_array(v)) {
            for (i = 0; i < json_array_size(v); i++) {
                sc->v[sc->n++] = json_array_get(v, i);
                render(r, *p, close, sc, depth + 1);
                sc->n--;
            }
        } else if (json_is_object(v)) {
            sc->v[sc->n++] = v;
            render(r, *p, close, sc, depth + 1);
            sc->n--;
        } else if (truthy(v))
            render(r, *p, close, sc, depth + 1);
        *p = close + n + 4;       /* past "{{/name}}": 2 + 1 + (n - 1) + 2 */
    } else if (tag[0] == '/') {
        r->bad = 1;               /* a close without its open */
    } else
        put_value(&r->out, resolve(sc, tag, n));
}

static void
render(struct renderer *r, const char *p, const char *end, struct scope *sc, unsigned depth)
{
    while (p < end && !r->bad && !r->out.full) {
        const char *o = find(p, end, "{{", 2), *c;

        if (o == NULL) {
            put(&r->out, p, (size_t)(end - p));
            return;
        }
        put(&r->out, p, (size_t)(o - p));
        c = find(o + 2, end, "}}", 2);
        if (c == NULL || c == o + 2 || c - o - 2 > WEB_MAX_KEY + 8) {
            r->bad = 1;
            return;
        }
        p = c + 2;
        render_tag(r, o + 2, (size_t)(c - o - 2), &p, end, sc, depth);
    }
}

enum cf_err
web_render(const struct web *w, enum web_lang l, const char *name, json_t *data,
           char **out, size_t *len)
{
    const struct web_file *f = template_named(name);
    struct renderer r = { w, l, { NULL, 0, 0, 0 }, 0 };
    struct scope sc = { { NULL }, 0 };

    *out = NULL;
    *len = 0;
    if (f == NULL)
        return CF_ERR_NOTFOUND;
    if (data != NULL)
        sc.v[sc.n++] = data;
    render(&r, (const char *)f->data, (const char *)f->data + f->len, &sc, 0);
    if (r.bad || r.out.full) {
        free(r.out.p);
        return r.bad ? CF_ERR_INPUT : CF_ERR_LIMIT;
    }
    if (r.out.p == NULL) {
        r.out.p = strdup("");
        if (r.out.p == NULL)
            return CF_ERR_NOMEM;
    }
    *out = r.out.p;
    *len = r.out.n;
    /* the buffer is the caller's now (*out) */
    // cppcheck-suppress memleak
    return CF_OK;
}

/* Every {{t:key}} of every template exists in every catalogue, and the
 * template renders (sections closed, raw names allowed). */
static enum cf_err
check_templates(const struct web *w, struct cf_errmsg *em)
{
    size_t i, l;

    for (i = 0; i < web_file_count; i++) {
        const struct web_file *f = &web_files[i];
        const char *p = (const char *)f->data, *end = p + f->len, *o;
        size_t n = strlen(f->name);
        char name[96], *out;
        size_t len;
        enum cf_err rc;

        if (n < 6 || strcmp(f->name + n - 5, ".html") != 0 || strchr(f->name, '/') != NULL)
            continue;
        while ((o = find(p, end, "{{t:", 4)) != NULL) {
            const char *c = find(o, end, "}}", 2);
            char key[WEB_MAX_KEY + 1];

            if (c == NULL || c - o - 4 > WEB_MAX_KEY)
                return cf_fail(em, CF_ERR_INPUT, "web/%s: unclosed tag", f->name);
            memcpy(key, o + 4, (size_t)(c - o - 4));
            key[c - o - 4] = '\0';
            for (l = 0; l < WEB_NLANGS; l++)
                if (lookup(&w->cat[l], key) == NULL)
                    return cf_fail(em, CF_ERR_INPUT, "web/%s: '%s' missing from i18n/%s.txt",
                                   f->name, key, lang_codes[l]);
            p = c + 2;
        }
        snprintf(name, sizeof name, "%.*s", (int)(n - 5), f->name);
        if ((rc = web_render(w, WEB_FR, name, NULL, &out, &len)) != CF_OK)
            return cf_fail(em, rc == CF_ERR_INPUT ? CF_ERR_INPUT : rc,
                           "web/%s: malformed template (unclosed section or raw name)", f->name);
        free(out);
    }
    return CF_OK;
}

enum cf_err
web_open(struct web **out, struct cf_errmsg *em)
{
    struct web *w = calloc(1, sizeof *w);
    enum cf_err rc = CF_OK;
    size_t l, i;

    *out = NULL;
    if (w == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "out of memory");
    if (web_file_count > WEB_MAX_FILES) {
        rc = cf_fail(em, CF_ERR_LIMIT, "web: more than %d files", WEB_MAX_FILES);
        goto out;
    }
    for (l = 0; l < WEB_NLANGS && rc == CF_OK; l++) {
        char path[32];
        const struct web_file *f;

        snprintf(path, sizeof path, "i18n/%s.txt", lang_codes[l]);
        f = file_named(path);
        rc = f == NULL ? cf_fail(em, CF_ERR_INPUT, "web/%s: missing", path)
                       : catalogue_parse(&w->cat[l], f, em);
    }
    if (rc != CF_OK)
        goto out;
    /* the same keys in every language */
    for (l = 1; l < WEB_NLANGS && rc == CF_OK; l++) {
        if (w->cat[l].n != w->cat[0].n)
            rc = cf_fail(em, CF_ERR_INPUT, "web/i18n: %s has %zu messages, %s %zu",
                         lang_codes[0], w->cat[0].n, lang_codes[l], w->cat[l].n);
        for (i = 0; rc == CF_OK && i < w->cat[0].n; i++)
            if (strcmp(w->cat[0].m[i].key, w->cat[l].m[i].key) != 0)
                rc = cf_fail(em, CF_ERR_INPUT, "web/i18n: '%s' is not in both catalogues",
                             w->cat[0].m[i].key);
    }
    if (rc == CF_OK)
        rc = check_templates(w, em);
    if (rc != CF_OK)
        goto out;
    w->csrf_key = sodium_malloc(CSRF_KEY_BYTES);
    if (w->csrf_key == NULL) {
        rc = cf_fail(em, CF_ERR_NOMEM, "out of memory");
        goto out;
    }
    randombytes_buf(w->csrf_key, CSRF_KEY_BYTES);
out:
    if (rc != CF_OK) {
        web_free(w);
        w = NULL;
    }
    *out = w;
    return rc;
}

void
web_free(struct web *w)
{
    size_t l;

    if (w == NULL)
        return;
    for (l = 0; l < WEB_NLANGS; l++)
        free(w->cat[l].copy);
    if (w->csrf_key != NULL)
        sodium_free(w->csrf_key);
    free(w);
}

/* ---- language ---------------------------------------------------------- */

const char *
web_lang_code(enum web_lang l)
{
    return lang_codes[l];
}

int
web_lang_parse(const char *s, enum web_lang *out)
{
    size_t l;

    for (l = 0; s != NULL && l < WEB_NLANGS; l++)
        if (strcmp(s, lang_codes[l]) == 0) {
            *out = (enum web_lang)l;
            return 0;
        }
    return -1;
}

/* q of one Accept-Language item ("en-GB;q=0.8"), in thousandths. */
static int
item_q(const char *p, size_t n)
{
    const char *q = NULL;
    size_t i;
    int v = 0, digits = 0;

    for (i = 0; i + 2 < n; i++)
        if (p[i] == ';' ) {
            size_t j = i + 1;

            while (j < n && p[j] == ' ')
                j++;
            if (j + 1 < n && (p[j] == 'q' || p[j] == 'Q') && p[j + 1] == '=') {
                q = p + j + 2;
                break;
            }
        }
    if (q == NULL)
        return 1000;
    if (q < p + n && *q == '1')
        return 1000;
    if (q >= p + n || *q != '0')
        return 0;
    q++;
    if (q < p + n && *q == '.')
        for (q++; q < p + n && *q >= '0' && *q <= '9' && digits < 3; q++, digits++)
            v = v * 10 + (*q - '0');
    while (digits++ < 3)
        v *= 10;
    return v;
}

enum web_lang
web_lang_choose(const char *cookie, const char *accept)
{
    enum web_lang l, best = WEB_FR;
    int best_q = 0;
    const char *p = accept;
    unsigned items = 0;

    if (web_lang_parse(cookie, &l) == 0)
        return l;
    /* at most 32 items: more is no browser */
    while (p != NULL && *p != '\0' && items++ < 32) {
        size_t n = strcspn(p, ","), t;
        int q;

        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        t = strcspn(p, ";-, ");
        if (t > n)
            t = n;
        q = item_q(p, n);
        for (l = 0; l < WEB_NLANGS; l++)
            if (t == 2 && strncasecmp(p, lang_codes[l], 2) == 0 && q > best_q) {
                best = l;
                best_q = q;
            }
        p += n;
        if (*p == ',')
            p++;
    }
    return best;
}

/* ---- CSRF -------------------------------------------------------------- */

static void
csrf_mac(const struct web *w, const char *purpose, const char *binding, long long ts,
         uint8_t mac[CSRF_MAC_BYTES])
{
    crypto_generichash_state st;
    char tsb[24];

    snprintf(tsb, sizeof tsb, "%lld", ts);
    crypto_generichash_init(&st, w->csrf_key, CSRF_KEY_BYTES, CSRF_MAC_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)"coffre-csrf-v1", 15);
    crypto_generichash_update(&st, (const unsigned char *)purpose, strlen(purpose) + 1);
    crypto_generichash_update(&st, (const unsigned char *)binding, strlen(binding) + 1);
    crypto_generichash_update(&st, (const unsigned char *)tsb, strlen(tsb));
    crypto_generichash_final(&st, mac, CSRF_MAC_BYTES);
    sodium_memzero(&st, sizeof st);
}

void
web_csrf_token(const struct web *w, const char *purpose, const char *binding, int64_t now,
               char out[WEB_CSRF_TOKEN_MAX + 1])
{
    uint8_t mac[CSRF_MAC_BYTES];
    int n;

    csrf_mac(w, purpose, binding != NULL ? binding : "", (long long)now, mac);
    n = snprintf(out, WEB_CSRF_TOKEN_MAX + 1, "%lld.", (long long)now);
    sodium_bin2base64(out + n, (size_t)(WEB_CSRF_TOKEN_MAX + 1 - n), mac, sizeof mac,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int
web_csrf_check(const struct web *w, const char *purpose, const char *binding,
               const char *token, int64_t now)
{
    uint8_t mac[CSRF_MAC_BYTES], got[CSRF_MAC_BYTES];
    const char *dot;
    long long ts = 0;
    size_t i, glen = 0;
    int rc;

    if (binding == NULL || binding[0] == '\0' || token == NULL ||
        strlen(token) > WEB_CSRF_TOKEN_MAX || (dot = strchr(token, '.')) == NULL ||
        dot == token || dot - token > 12)
        return -1;
    for (i = 0; token + i < dot; i++) {
        if (token[i] < '0' || token[i] > '9')
            return -1;
        ts = ts * 10 + (token[i] - '0');
    }
    if (ts > (long long)now + 60 || (long long)now - ts > WEB_CSRF_MAX_AGE_S)
        return -1;
    if (sodium_base642bin(got, sizeof got, dot + 1, strlen(dot + 1), NULL, &glen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        glen != sizeof got)
        return -1;
    csrf_mac(w, purpose, binding, ts, mac);
    rc = sodium_memcmp(mac, got, sizeof mac) == 0 ? 0 : -1;
    sodium_memzero(mac, sizeof mac);
    return rc;
}

void
web_pre_value(char out[WEB_PRE_TEXT + 1])
{
    uint8_t raw[16];

    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(out, WEB_PRE_TEXT + 1, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

int
web_same_origin(const char *origin, const char *sfs, const char *host)
{
    if (sfs != NULL && strcmp(sfs, "same-origin") != 0)
        return -1;
    if (origin == NULL)
        return 0;
    if (host == NULL || host[0] == '\0')
        return -1;
    if (strncmp(origin, "https://", 8) == 0)
        origin += 8;
    else if (strncmp(origin, "http://", 7) == 0)
        origin += 7;
    else
        return -1;                /* "null" included */
    return strcasecmp(origin, host) == 0 ? 0 : -1;
}
