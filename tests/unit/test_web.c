/*
 * test_web.c - unit tests of web.c: every value HTML-escaped, sections,
 * raw names, catalogues complete in both languages, the language choice,
 * CSRF tokens (forged, foreign, expired, future, of another form) and the
 * origin check.
 *
 * web.c is included so the tests can reach its statics (the renderer on
 * a template given as text).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../src/web.c"

static struct web *W;

static int
setup(void **state)
{
    struct cf_errmsg em = { "" };

    (void)state;
    if (sodium_init() < 0 || web_open(&W, &em) != CF_OK) {
        fprintf(stderr, "web_open: %s\n", em.msg);
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    web_free(W);
    return 0;
}

/* Renders template text t over the JSON text d; NULL when malformed. */
static char *
render_text(const char *t, const char *d)
{
    struct renderer r = { W, WEB_EN, { NULL, 0, 0, 0 }, 0 };
    struct scope sc = { { NULL }, 0 };
    json_t *data = d != NULL ? json_loads(d, 0, NULL) : NULL;

    if (data != NULL)
        sc.v[sc.n++] = data;
    render(&r, t, t + strlen(t), &sc, 0);
    json_decref(data);
    if (r.bad || r.out.full) {
        free(r.out.p);
        return NULL;
    }
    return r.out.p != NULL ? r.out.p : strdup("");
}

static void
expect(const char *t, const char *d, const char *want)
{
    char *got = render_text(t, d);

    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void
test_escaping(void **state)
{
    (void)state;
    expect("<p>{{a}}</p>", "{\"a\": \"<script>alert('x')</script> & \\\"q\\\"\"}",
           "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;</p>");
    expect("<input value=\"{{a.b}}\">", "{\"a\": {\"b\": \"\\\"><img src=x onerror=1>\"}}",
           "<input value=\"&quot;&gt;&lt;img src=x onerror=1&gt;\">");
    expect("{{n}} {{missing}}.", "{\"n\": 42}", "42 .");
    /* a value is never interpreted again: braces in data stay braces */
    expect("{{a}}", "{\"a\": \"{{t:field.login}}\"}", "{{t:field.login}}");
    /* raw only for the allowed names, and only from our own markup */
    expect("{{&body}}", "{\"body\": \"<b>x</b>\"}", "<b>x</b>");
    assert_null(render_text("{{&login}}", "{\"login\": \"<b>x</b>\"}"));
}

static void
test_sections(void **state)
{
    (void)state;
    expect("{{#l}}[{{v}}]{{/l}}", "{\"l\": [{\"v\": 1}, {\"v\": \"<\"}]}", "[1][&lt;]");
    expect("{{#l}}x{{/l}}{{^l}}none{{/l}}", "{\"l\": []}", "none");
    expect("{{#o}}{{a}}-{{b}}{{/o}}", "{\"o\": {\"a\": 1}, \"b\": 2}", "1-2");
    expect("{{#t}}y{{/t}}{{#f}}n{{/f}}{{^f}}!{{/f}}", "{\"t\": true, \"f\": false}", "y!");
    expect("{{#s}}y{{/s}}{{^e}}empty{{/e}}", "{\"s\": \"a\", \"e\": \"\"}", "yempty");
    expect("{{time:t}}", "{\"t\": 1796112000}", "2026-12-01 08:00 UTC");
    expect("{{tk:k}}", "{\"k\": \"role.student\"}", "Student");
    expect("{{t:field.login}}", NULL, "Login");
    /* malformed: unclosed, stray close, empty or endless tag */
    assert_null(render_text("{{#a}}x", "{}"));
    assert_null(render_text("x{{/a}}", "{}"));
    assert_null(render_text("{{}}", "{}"));
    assert_null(render_text("{{a", "{}"));
}

static void
test_depth_and_size(void **state)
{
    char t[512];
    char *big;
    size_t i, n = 0;

    (void)state;
    for (i = 0; i < WEB_MAX_DEPTH + 1; i++)
        n += (size_t)snprintf(t + n, sizeof t - n, "{{#a}}");
    for (i = 0; i < WEB_MAX_DEPTH + 1; i++)
        n += (size_t)snprintf(t + n, sizeof t - n, "{{/a}}");
    assert_null(render_text(t, "{\"a\": true}"));
    /* output past WEB_MAX_OUTPUT: refused, not cut */
    big = malloc(WEB_MAX_OUTPUT + 16);
    assert_non_null(big);
    memset(big, 'x', WEB_MAX_OUTPUT + 8);
    big[WEB_MAX_OUTPUT + 8] = '\0';
    assert_null(render_text(big, NULL));
    free(big);
}

static void
test_catalogues(void **state)
{
    static const char *const roles[] = { "student", "guardian", "teacher", "staff",
                                         "academie_admin", "dpo", "service" };
    char key[96], *out;
    size_t i, len;
    json_t *d;

    (void)state;
    assert_string_equal(web_text(W, WEB_FR, "signin.submit"), "Se connecter");
    assert_string_equal(web_text(W, WEB_EN, "signin.submit"), "Sign in");
    assert_string_equal(web_text(W, WEB_EN, "no.such.key"), "no.such.key");
    for (i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        snprintf(key, sizeof key, "role.%s", roles[i]);
        assert_true(web_has_text(W, key));
    }
    /* every page renders in both languages, with its title */
    d = json_pack("{s:s}", "login", "\"><script>x</script>");
    for (i = 0; i < web_file_count; i++) {
        const char *n = web_files[i].name;
        size_t nl = strlen(n);
        char name[64];

        if (nl < 6 || strcmp(n + nl - 5, ".html") != 0 || strcmp(n, "layout.html") == 0)
            continue;
        snprintf(name, sizeof name, "%.*s", (int)(nl - 5), n);
        snprintf(key, sizeof key, "title.%s", name);
        assert_true(web_has_text(W, key));
        assert_int_equal(web_render(W, WEB_FR, name, d, &out, &len), CF_OK);
        assert_null(strstr(out, "<script>x"));
        free(out);
        assert_int_equal(web_render(W, WEB_EN, name, d, &out, &len), CF_OK);
        free(out);
    }
    json_decref(d);
    assert_int_equal(web_render(W, WEB_FR, "../keyring", NULL, &out, &len), CF_ERR_NOTFOUND);
    assert_int_equal(web_render(W, WEB_FR, "nothing", NULL, &out, &len), CF_ERR_NOTFOUND);
}

static void
test_lang(void **state)
{
    (void)state;
    assert_int_equal(web_lang_choose(NULL, NULL), WEB_FR);
    assert_int_equal(web_lang_choose(NULL, ""), WEB_FR);
    assert_int_equal(web_lang_choose(NULL, "en"), WEB_EN);
    assert_int_equal(web_lang_choose(NULL, "en-GB,en;q=0.9"), WEB_EN);
    assert_int_equal(web_lang_choose(NULL, "fr-FR,fr;q=0.9,en;q=0.8"), WEB_FR);
    assert_int_equal(web_lang_choose(NULL, "de, en;q=0.5, fr;q=0.4"), WEB_EN);
    assert_int_equal(web_lang_choose(NULL, "en;q=0.5, fr"), WEB_FR);
    assert_int_equal(web_lang_choose(NULL, "en;q=0"), WEB_FR);
    assert_int_equal(web_lang_choose(NULL, "es, it"), WEB_FR);
    assert_int_equal(web_lang_choose(NULL, "english"), WEB_FR);
    assert_int_equal(web_lang_choose("en", "fr"), WEB_EN);
    assert_int_equal(web_lang_choose("xx", "en"), WEB_EN);
    assert_int_equal(web_lang_choose("fr", "en"), WEB_FR);
}

static void
test_csrf(void **state)
{
    char tok[WEB_CSRF_TOKEN_MAX + 1], forged[WEB_CSRF_TOKEN_MAX + 8];
    int64_t now = 1796112000;

    (void)state;
    web_csrf_token(W, "signin", "browser-a", now, tok);
    assert_int_equal(web_csrf_check(W, "signin", "browser-a", tok, now), 0);
    assert_int_equal(web_csrf_check(W, "signin", "browser-a", tok, now + WEB_CSRF_MAX_AGE_S), 0);
    /* another browser, another form, too old, from the future */
    assert_int_equal(web_csrf_check(W, "signin", "browser-b", tok, now), -1);
    assert_int_equal(web_csrf_check(W, "signout", "browser-a", tok, now), -1);
    assert_int_equal(web_csrf_check(W, "signin", "browser-a", tok, now + WEB_CSRF_MAX_AGE_S + 1), -1);
    assert_int_equal(web_csrf_check(W, "signin", "browser-a", tok, now - 3600), -1);
    /* no binding, no token, malformed */
    assert_int_equal(web_csrf_check(W, "signin", "", tok, now), -1);
    assert_int_equal(web_csrf_check(W, "signin", NULL, tok, now), -1);
    assert_int_equal(web_csrf_check(W, "signin", "browser-a", NULL, now), -1);
    assert_int_equal(web_csrf_check(W, "signin", "browser-a", "", now), -1);
    assert_int_equal(web_csrf_check(W, "signin", "browser-a", ".abc", now), -1);
    assert_int_equal(web_csrf_check(W, "signin", "browser-a", "12x.abc", now), -1);
    /* the time changed, the MAC kept: refused */
    snprintf(forged, sizeof forged, "%lld%s", (long long)now - 1, strchr(tok, '.'));
    assert_int_equal(web_csrf_check(W, "signin", "browser-a", forged, now), -1);
    /* one bit of the MAC flipped */
    snprintf(forged, sizeof forged, "%s", tok);
    forged[strlen(forged) - 2] = forged[strlen(forged) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(web_csrf_check(W, "signin", "browser-a", forged, now), -1);
    /* a trailing byte */
    snprintf(forged, sizeof forged, "%sA", tok);
    assert_int_equal(web_csrf_check(W, "signin", "browser-a", forged, now), -1);
}

static void
test_origin(void **state)
{
    (void)state;
    assert_int_equal(web_same_origin(NULL, NULL, "localhost:8080"), 0);
    assert_int_equal(web_same_origin("http://localhost:8080", "same-origin", "localhost:8080"), 0);
    assert_int_equal(web_same_origin("https://coffre.example", NULL, "coffre.example"), 0);
    assert_int_equal(web_same_origin("http://localhost:9", NULL, "localhost:8080"), -1);
    assert_int_equal(web_same_origin("http://localhost:8080.evil", NULL, "localhost:8080"), -1);
    assert_int_equal(web_same_origin("null", NULL, "localhost:8080"), -1);
    assert_int_equal(web_same_origin("http://localhost:8080", NULL, NULL), -1);
    assert_int_equal(web_same_origin(NULL, "same-site", "localhost:8080"), -1);
    assert_int_equal(web_same_origin(NULL, "cross-site", "localhost:8080"), -1);
    assert_int_equal(web_same_origin(NULL, "none", "localhost:8080"), -1);
}

static void
test_static(void **state)
{
    const char *type, *p;
    size_t len;

    (void)state;
    p = web_static(W, "app.js", &len, &type);
    assert_non_null(p);
    assert_true(len > 100);
    assert_non_null(strstr(type, "javascript"));
    assert_null(web_static(W, "i18n/fr.txt", &len, &type));
    assert_null(web_static(W, "signin.html", &len, &type));
    assert_null(web_static(W, "../app.js", &len, &type));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_depth_and_size),
        cmocka_unit_test(test_catalogues),
        cmocka_unit_test(test_lang),
        cmocka_unit_test(test_csrf),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_static),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
