/*
 * fuzz_http_json.c - the JSON body checks of http.c (prepare_body on an
 * HTTP_JSON_BODY route: json_depth, json_loadb, the object rule,
 * json_text_ok), exactly as every JSON handler receives its body, then
 * http_json_only.
 *
 * Input: the body.
 *
 * Invariants (against a reference verdict computed here: jansson with the
 * same flags, then the depth of the parsed tree, the object rule and the
 * strict text rule of fuzz.h on every key and string, with its length):
 *  - prepare_body accepts exactly the bodies the reference accepts;
 *  - an accepted body is an object nested at most HTTP_JSON_MAX_DEPTH deep
 *    whose keys and strings are UTF-8 text without controls; its value
 *    equals the reference's; serialised again it is accepted again, equal;
 *  - a refused body leaves a 400 problem reply and the handler never runs;
 *  - http_json_only agrees with a key-by-key reference.
 *
 * fuzz-max-len: 8192
 */
#include "http_fake.h"
#include "../src/http.c"
#include "http_ctx.h"

static const struct http_route route = {
    "POST", "/fuzz", HTTP_JSON_BODY, NULL, "fuzz"
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    return 0;
}

/* Nesting depth of v: scalars 0, an object or array one more than its
 * deepest member. */
static unsigned
tree_depth(json_t *v)
{
    unsigned d = 0, x;
    const char *k;
    json_t *e;
    size_t i;

    if (json_is_object(v)) {
        json_object_foreach(v, k, e) {
            x = tree_depth(e);
            if (x > d)
                d = x;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, e) {
            x = tree_depth(e);
            if (x > d)
                d = x;
        }
        return d + 1;
    }
    return 0;
}

/* Every key and string of v is text by fuzz.h's rule (lengths, not NULs). */
static int
tree_text_ok(json_t *v)
{
    const char *k;
    json_t *e;
    size_t i;

    if (json_is_object(v)) {
        json_object_foreach(v, k, e)
            if (!fz_text_ok((const uint8_t *)k, strlen(k)) || !tree_text_ok(e))
                return 0;
        return 1;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, e)
            if (!tree_text_ok(e))
                return 0;
        return 1;
    }
    if (json_is_string(v))
        return fz_text_ok((const uint8_t *)json_string_value(v), json_string_length(v));
    return 1;
}

static void
check_only(json_t *obj)
{
    static const char *const allowed[] = { "login", "password", "code", NULL };
    const char *k;
    json_t *e;
    int want = 0;
    size_t i;

    json_object_foreach(obj, k, e) {
        for (i = 0; allowed[i] != NULL && strcmp(k, allowed[i]) != 0; i++)
            ;
        if (allowed[i] == NULL)
            want = -1;
    }
    FZ_CHECK(http_json_only(obj, allowed) == want);
    FZ_CHECK(http_json_only(obj, NULL) == -1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_conn fc;
    struct http_ctx *c, *c2;
    json_error_t jerr;
    json_t *ref;
    int accept, rc;
    char *txt;

    memset(&fc, 0, sizeof fc);
    ref = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    accept = ref != NULL && json_is_object(ref) &&
             tree_depth(ref) <= HTTP_JSON_MAX_DEPTH && tree_text_ok(ref);

    c = fz_ctx_new(&route, &fc, data, size);
    rc = prepare_body(c);
    FZ_CHECK((rc == 0) == accept);
    if (rc != 0) {
        FZ_CHECK(c->early && c->replied && c->status == 400 && c->resp != NULL);
        goto out;
    }
    FZ_CHECK(!c->early && !c->replied && c->resp == NULL);
    FZ_CHECK(http_json(c) != NULL && json_is_object(http_json(c)));
    FZ_CHECK(tree_depth(http_json(c)) <= HTTP_JSON_MAX_DEPTH);
    FZ_CHECK(tree_text_ok(http_json(c)));
    FZ_CHECK(json_equal(http_json(c), ref));
    check_only(http_json(c));

    /* What was accepted, written out again, is accepted again. */
    txt = json_dumps(http_json(c), JSON_COMPACT);
    FZ_CHECK(txt != NULL);
    c2 = fz_ctx_new(&route, &fc, (const uint8_t *)txt, strlen(txt));
    FZ_CHECK(prepare_body(c2) == 0);
    FZ_CHECK(json_equal(http_json(c2), http_json(c)));
    ctx_free(c2);
    free(txt);
out:
    ctx_free(c);
    json_decref(ref);
    return 0;
}
