/*
 * http_ctx.h - a request context as http.c's intake leaves it, for the
 * HTTP targets.  Include after "../src/http.c" (it needs struct http_ctx).
 * fz_ctx_new copies the body; free the result with http.c's ctx_free.
 */
#ifndef COFFRE_FUZZ_HTTP_CTX_H
#define COFFRE_FUZZ_HTTP_CTX_H

static inline struct http_ctx *
fz_ctx_new(const struct http_route *route, struct fz_conn *fc,
           const uint8_t *body, size_t n)
{
    struct http_ctx *c = calloc(1, sizeof *c);

    FZ_CHECK(c != NULL);
    FZ_CHECK(pthread_mutex_init(&c->mu, NULL) == 0);
    c->refs = 1;
    c->state = RS_INTAKE;
    c->route = route;
    c->conn = (struct MHD_Connection *)(void *)fc;
    memcpy(c->idhex, "00000000000000f0", sizeof c->idhex);
    if (n > 0) {
        /* as intake sizes it from Content-Length: the body plus a NUL */
        c->body = malloc(n + 1);
        FZ_CHECK(c->body != NULL);
        memcpy(c->body, body, n);
        c->blen = c->bcap = n;
    }
    c->blimit = HTTP_MAX_BODY;
    return c;
}

#endif
