/*
 * http_fake.h - a stand-in libmicrohttpd connection for the HTTP targets,
 * so http.c's intake code runs on fuzz input without a daemon or socket.
 *
 * Include it before "../src/http.c": it renames the three libmicrohttpd
 * calls through which http.c reads a request (header, cookie and query
 * values; the client address; the header size) to the fakes below, which
 * serve them from a struct fz_conn.  Everything else http.c calls is the
 * real library.  Owns nothing beyond the fz_conn the caller passes.
 *
 * fz_conn_parse reads a request description, one value per line:
 *     <kind><key>:<value>     kind H header, C cookie, G query argument
 *     <kind><key>             (no ':') a value libmicrohttpd gives as NULL
 * Bytes other than '\n' pass through, NUL and control bytes included, with
 * their lengths: libmicrohttpd's *_n iterator reports lengths too, and a
 * decoded cookie or query value may hold a NUL.
 */
#ifndef COFFRE_FUZZ_HTTP_FAKE_H
#define COFFRE_FUZZ_HTTP_FAKE_H

#define MHD_get_connection_values   fz_mhd_get_connection_values
#define MHD_get_connection_values_n fz_mhd_get_connection_values_n
#define MHD_get_connection_info     fz_mhd_get_connection_info

#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>

#include <microhttpd.h>

#include "fuzz.h"

/* More values than http.c accepts in any list (HTTP_MAX_PARAMS, 16
 * X-Forwarded-For headers), so its limits are reached. */
#define FZ_MAX_KV 64

struct fz_kv {
    enum MHD_ValueKind kind;
    char *k, *v;                    /* NUL-terminated copies; v may be NULL */
    size_t klen, vlen;
};

struct fz_conn {
    struct fz_kv kv[FZ_MAX_KV];
    size_t n;
    struct sockaddr_storage peer;
    int has_peer;
    size_t header_size;
    union MHD_ConnectionInfo info;
};

static inline struct fz_conn *
fz_conn_of(struct MHD_Connection *c)
{
    return (struct fz_conn *)(void *)c;
}

int
fz_mhd_get_connection_values_n(struct MHD_Connection *connection,
                               enum MHD_ValueKind kind,
                               MHD_KeyValueIteratorN iterator,
                               void *iterator_cls)
{
    struct fz_conn *fc = fz_conn_of(connection);
    size_t i;
    int n = 0;

    for (i = 0; i < fc->n; i++) {
        const struct fz_kv *e = &fc->kv[i];

        if ((e->kind & kind) == 0)
            continue;
        n++;
        if (iterator != NULL &&
            iterator(iterator_cls, e->kind, e->k, e->klen, e->v, e->vlen) != MHD_YES)
            break;
    }
    return n;
}

int
fz_mhd_get_connection_values(struct MHD_Connection *connection,
                             enum MHD_ValueKind kind,
                             MHD_KeyValueIterator iterator, void *iterator_cls)
{
    struct fz_conn *fc = fz_conn_of(connection);
    size_t i;
    int n = 0;

    for (i = 0; i < fc->n; i++) {
        const struct fz_kv *e = &fc->kv[i];

        if ((e->kind & kind) == 0)
            continue;
        n++;
        if (iterator != NULL && iterator(iterator_cls, e->kind, e->k, e->v) != MHD_YES)
            break;
    }
    return n;
}

const union MHD_ConnectionInfo *
fz_mhd_get_connection_info(struct MHD_Connection *connection,
                           enum MHD_ConnectionInfoType info_type, ...)
{
    struct fz_conn *fc = fz_conn_of(connection);

    switch (info_type) {
    case MHD_CONNECTION_INFO_CLIENT_ADDRESS:
        if (!fc->has_peer)
            return NULL;
        fc->info.client_addr = (struct sockaddr *)(void *)&fc->peer;
        return &fc->info;
    case MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE:
        fc->info.header_size = fc->header_size;
        return &fc->info;
    default:
        return NULL;
    }
}

/* Reads the description in p[0..n) into fc (at most FZ_MAX_KV values;
 * lines of an unknown kind are skipped).  Release with fz_conn_release. */
static inline void
fz_conn_parse(struct fz_conn *fc, const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n && fc->n < FZ_MAX_KV) {
        const uint8_t *nl = memchr(p + i, '\n', n - i);
        size_t end = nl != NULL ? (size_t)(nl - p) : n, colon;
        struct fz_kv *e = &fc->kv[fc->n];
        enum MHD_ValueKind kind;

        if (end > i) {
            switch (p[i]) {
            case 'H': kind = MHD_HEADER_KIND; break;
            case 'C': kind = MHD_COOKIE_KIND; break;
            case 'G': kind = MHD_GET_ARGUMENT_KIND; break;
            default: kind = (enum MHD_ValueKind)0; break;
            }
            if (kind != 0) {
                for (colon = i + 1; colon < end && p[colon] != ':'; colon++)
                    ;
                e->kind = kind;
                e->klen = colon - (i + 1);
                e->k = fz_strndup(p + i + 1, e->klen);
                if (colon < end) {
                    e->vlen = end - colon - 1;
                    e->v = fz_strndup(p + colon + 1, e->vlen);
                } else {
                    e->vlen = 0;
                    e->v = NULL;
                }
                fc->n++;
            }
        }
        i = end + 1;
    }
}

static inline void
fz_conn_release(struct fz_conn *fc)
{
    size_t i;

    for (i = 0; i < fc->n; i++) {
        free(fc->kv[i].k);
        free(fc->kv[i].v);
    }
    fc->n = 0;
}

#endif
