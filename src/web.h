/*
 * web.h - the HTML side of coffre: templates, message catalogues, the
 * language of a request, and CSRF tokens (docs/pages.md).
 *
 * The files of web/ (templates *.html, app.css, app.js, i18n/<lang>.txt)
 * are embedded in the binary at build time (scripts/embed-web.sh) and
 * parsed once by web_open, which refuses a template naming a message that
 * a catalogue lacks, or catalogues that do not hold the same keys.
 *
 * Templates are a small Mustache subset over a JSON value (the very answer
 * of the JSON API handler, so a page shows what the API would):
 *   {{a.b}}         the value at that path, HTML-escaped (strings, numbers)
 *   {{t:key}}       the catalogue text of the request's language, escaped
 *   {{tk:a.b}}      the catalogue text whose key is the string at a.b
 *   {{time:a.b}}    unix seconds as "2026-12-01 08:30 UTC"
 *   {{&name}}       raw HTML: only the names of WEB_RAW_NAMES (markup that
 *                   coffre itself made: the page body, the TOTP QR code)
 *   {{#a}}..{{/a}}  repeated for each item of an array (item in scope),
 *                   once for an object (in scope), true, a non-empty
 *                   string or a non-zero number
 *   {{^a}}..{{/a}}  once when a is absent, false, empty, zero or []
 * Every other byte is copied.  Nothing else is interpreted: no script, no
 * expression.  Section depth and output size are bounded (below).
 *
 * CSRF tokens: "<unix seconds>.<base64url BLAKE2b-128>" keyed by a random
 * key made at start (tokens end with the process), over the purpose of
 * the form and a binding secret of the browser (its session cookie, or
 * before sign-in a random pre-session cookie).  A token of another form,
 * another browser, another session or older than WEB_CSRF_MAX_AGE_S does
 * not verify.
 */
#ifndef COFFRE_WEB_H
#define COFFRE_WEB_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"

/* Rendered page, layout included: the largest (my account with 100
 * sessions) is under 64 KiB. */
#define WEB_MAX_OUTPUT        (256u * 1024)
/* Nested sections in a template: ours go three deep. */
#define WEB_MAX_DEPTH         8
/* Messages per catalogue, and the longest key and text. */
#define WEB_MAX_MESSAGES      512
#define WEB_MAX_KEY           64
#define WEB_MAX_TEXT          512
/* Templates and static files embedded. */
#define WEB_MAX_FILES         64
/* A CSRF token lives as long as the longest session (12 h by default). */
#define WEB_CSRF_MAX_AGE_S    (12 * 3600)
/* "<10 digits>.<22 base64url>", with room. */
#define WEB_CSRF_TOKEN_MAX    48
/* The pre-session cookie: 128 random bits in base64url. */
#define WEB_PRE_COOKIE        "coffre_pre"
#define WEB_PRE_TEXT          22
/* The language cookie ("fr" or "en"). */
#define WEB_LANG_COOKIE       "coffre_lang"
/* Raw-HTML names allowed in {{&...}}. */
#define WEB_RAW_NAMES         { "body", "qr_svg", NULL }

enum web_lang { WEB_FR = 0, WEB_EN = 1 };
#define WEB_NLANGS 2

struct web;

/* Parses the embedded files; CF_ERR_INPUT with em naming the file and
 * line when a template or catalogue is malformed or incomplete. */
enum cf_err web_open(struct web **out, struct cf_errmsg *em) WARN_UNUSED;
void web_free(struct web *w);    /* NULL is a no-op; wipes the CSRF key */

/* "fr" / "en"; web_lang_parse: -1 for anything else. */
const char *web_lang_code(enum web_lang l);
int web_lang_parse(const char *s, enum web_lang *out);
/* The language of a request: the cookie value if valid, else the first
 * of fr/en in Accept-Language (by q, then order), else French. */
enum web_lang web_lang_choose(const char *cookie, const char *accept_language);

/* Catalogue text; the key itself when missing (web_open makes that a
 * start-up error for every key a template names). */
const char *web_text(const struct web *w, enum web_lang l, const char *key);
/* Whether the key exists (for problem types without a message). */
int web_has_text(const struct web *w, const char *key);

/* Renders template `name` (without ".html") over data; *out is malloc'd,
 * NUL-terminated, *len its length.  CF_ERR_NOTFOUND for an unknown
 * template, CF_ERR_LIMIT past WEB_MAX_OUTPUT. */
enum cf_err web_render(const struct web *w, enum web_lang l, const char *name,
                       json_t *data, char **out, size_t *len) WARN_UNUSED;

/* A static file ("app.css", "app.js"): its bytes and media type; NULL
 * when there is none of that name. */
const char *web_static(const struct web *w, const char *name, size_t *len,
                       const char **content_type);

/* CSRF: token for (purpose, binding) at time now; check: 0 when token is
 * one that web_csrf_token made for the same purpose and binding, at most
 * WEB_CSRF_MAX_AGE_S ago (and not in the future); -1 otherwise.  An empty
 * or NULL binding never verifies. */
void web_csrf_token(const struct web *w, const char *purpose, const char *binding,
                    int64_t now, char out[WEB_CSRF_TOKEN_MAX + 1]);
int web_csrf_check(const struct web *w, const char *purpose, const char *binding,
                   const char *token, int64_t now);

/* A fresh pre-session value (base64url of 128 random bits). */
void web_pre_value(char out[WEB_PRE_TEXT + 1]);

/* Whether a browser request comes from our own pages: Origin, when sent,
 * must be http(s)://<Host>; Sec-Fetch-Site, when sent, must be
 * "same-origin".  0 when it passes (also when neither header is sent: a
 * non-browser client, left to the token), -1 otherwise. */
int web_same_origin(const char *origin, const char *sec_fetch_site, const char *host);

#endif
