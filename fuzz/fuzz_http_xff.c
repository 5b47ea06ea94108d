/*
 * fuzz_http_xff.c - the choice of client address (client_address: the
 * socket's peer, or X-Forwarded-For's last hop that is not a trusted proxy
 * when the peer is one), with ip_parse, ip_trusted and ip_str.
 *
 * Input: flags (1 byte: bit 0 TLS, bit 1 loopback listener), proxy count
 * (1 byte, mod 5), then lines: the peer address (text; unparsable means
 * libmicrohttpd gave none), one line per trusted proxy, then request
 * values in http_fake.h's format ("HX-Forwarded-For:10.0.0.1, ::1").
 *
 * Invariants (against a reference walk written here over every
 * X-Forwarded-For element, last header's last element first):
 *  - the address is the peer's when the peer is not a trusted proxy, when
 *    more than 16 X-Forwarded-For headers came, or when an element met
 *    before the first untrusted one does not parse; otherwise it is that
 *    first untrusted element, or the leftmost element when all are trusted;
 *  - so an untrusted peer can never choose its address, and the address
 *    is "unknown" or one that inet_pton reads back;
 *  - plain_loopback is set exactly for a plain-HTTP loopback listener and
 *    an untrusted peer.
 *
 * fuzz-max-len: 2048
 */
#include "http_fake.h"
#include "../src/http.c"
#include "http_ctx.h"

#define MAX_PROXIES 4

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    return 0;
}

/* The text of line i of p[0..n) (NUL-terminated copy) and where the next
 * begins. */
static char *
next_line(const uint8_t *p, size_t n, size_t *pos)
{
    const uint8_t *nl;
    size_t end;
    char *s;

    if (*pos > n)
        return fz_strndup(p, 0);
    nl = memchr(p + *pos, '\n', n - *pos);
    end = nl != NULL ? (size_t)(nl - p) : n;
    s = fz_strndup(p + *pos, end - *pos);
    *pos = end + 1;
    return s;
}

/* Reference address parse: IPv4, or IPv6 with v4-mapped folded to IPv4;
 * 0 on success. */
static int
ref_ip(const char *s, size_t n, struct ipaddr *out)
{
    char buf[64];
    unsigned char a6[16];
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

    if (n == 0 || n >= INET6_ADDRSTRLEN)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->a) == 1) {
        out->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, a6) != 1)
        return -1;
    if (memcmp(a6, mapped, 12) == 0) {
        out->family = AF_INET;
        memcpy(out->a, a6 + 12, 4);
    } else {
        out->family = AF_INET6;
        memcpy(out->a, a6, 16);
    }
    return 0;
}

static int
ref_trusted(const struct ipaddr *p, size_t np, const struct ipaddr *ip)
{
    size_t i;

    for (i = 0; i < np; i++)
        if (p[i].family == ip->family &&
            memcmp(p[i].a, ip->a, ip->family == AF_INET ? 4 : 16) == 0)
            return 1;
    return 0;
}

static void
ref_str(const struct ipaddr *ip, char out[INET6_ADDRSTRLEN])
{
    FZ_CHECK(inet_ntop(ip->family, ip->a, out, INET6_ADDRSTRLEN) != NULL);
}

/* The address the reference picks; peer_ok 0 means "unknown". */
static void
ref_client(const struct kvs *h, const struct ipaddr *proxies, size_t np,
           int peer_ok, const struct ipaddr *peer, char out[INET6_ADDRSTRLEN])
{
    const char **elem;
    size_t *elen, ne = 0, nx = 0, total = 1, i;
    struct ipaddr hop, client;

    if (!peer_ok) {
        snprintf(out, INET6_ADDRSTRLEN, "unknown");
        return;
    }
    ref_str(peer, out);
    if (!ref_trusted(proxies, np, peer))
        return;
    for (i = 0; i < h->n; i++)
        if (strcasecmp(h->a[i].k, "x-forwarded-for") == 0)
            nx++;
    if (nx > 16)
        return;
    for (i = 0; i < h->n; i++)
        total += strlen(h->a[i].v) + 1;
    elem = malloc(total * sizeof *elem);
    elen = malloc(total * sizeof *elen);
    FZ_CHECK(elem != NULL && elen != NULL);
    /* every element, left to right across the headers in order */
    for (i = 0; i < h->n; i++) {
        const char *v = h->a[i].v, *comma;

        if (strcasecmp(h->a[i].k, "x-forwarded-for") != 0)
            continue;
        for (;;) {
            comma = strchr(v, ',');
            FZ_CHECK(ne < total);
            elem[ne] = v;
            elen[ne++] = comma != NULL ? (size_t)(comma - v) : strlen(v);
            if (comma == NULL)
                break;
            v = comma + 1;
        }
    }
    client = *peer;
    while (ne > 0) {
        const char *e = elem[--ne];
        size_t n = elen[ne];

        while (n > 0 && (*e == ' ' || *e == '\t')) {
            e++;
            n--;
        }
        while (n > 0 && (e[n - 1] == ' ' || e[n - 1] == '\t'))
            n--;
        if (ref_ip(e, n, &hop) != 0) {
            client = *peer;
            break;
        }
        client = hop;
        if (!ref_trusted(proxies, np, &hop))
            break;
    }
    ref_str(&client, out);
    free(elem);
    free(elen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = { data, size };
    uint8_t flags = fz_u8(&in);
    size_t nprox = fz_u8(&in) % (MAX_PROXIES + 1), np = 0, pos = 0, i, rest;
    struct ipaddr proxies[MAX_PROXIES], peer;
    char want[INET6_ADDRSTRLEN], *line;
    const uint8_t *text = fz_take(&in, SIZE_MAX, &rest);
    static struct http_server srv;      /* large: metrics tables */
    struct fz_conn fc;
    struct http_ctx *c;
    int peer_ok;
    unsigned char probe[16];

    memset(&fc, 0, sizeof fc);
    memset(&srv, 0, sizeof srv);
    /* the peer as the socket gives it: an IPv4-mapped IPv6 address stays
     * IPv6 here, for ip_of_sockaddr to fold */
    line = next_line(text, rest, &pos);
    peer_ok = ref_ip(line, strlen(line), &peer) == 0;
    if (peer_ok) {
        struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&fc.peer;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&fc.peer;

        if (inet_pton(AF_INET, line, &sin->sin_addr) == 1)
            sin->sin_family = AF_INET;
        else {
            FZ_CHECK(inet_pton(AF_INET6, line, &sin6->sin6_addr) == 1);
            sin6->sin6_family = AF_INET6;
        }
        fc.has_peer = 1;
    }
    free(line);
    for (i = 0; i < nprox; i++) {
        struct ipaddr ref;
        int ok;

        line = next_line(text, rest, &pos);
        ok = ip_parse(line, strlen(line), &proxies[np]) == 0;
        FZ_CHECK(ok == (ref_ip(line, strlen(line), &ref) == 0));
        if (ok) {
            FZ_CHECK(memcmp(&ref, &proxies[np], sizeof ref) == 0);
            np++;
        }
        free(line);
    }
    if (pos < rest)
        fz_conn_parse(&fc, text + pos, rest - pos);

    srv.proxies = proxies;
    srv.nproxies = np;
    srv.tls = flags & 1;
    srv.loopback = (flags >> 1) & 1;
    c = fz_ctx_new(NULL, &fc, NULL, 0);
    (void)collect(c->conn, MHD_HEADER_KIND, &c->headers);
    client_address(&srv, c);

    ref_client(&c->headers, proxies, np, peer_ok, &peer, want);
    if (strcmp(c->addr, want) != 0) {
        fprintf(stderr, "client_address chose '%s', reference '%s'\n", c->addr, want);
        FZ_CHECK(!"client address differs from the reference");
    }
    FZ_CHECK(strcmp(c->addr, "unknown") == 0 || inet_pton(AF_INET, c->addr, probe) == 1 ||
             inet_pton(AF_INET6, c->addr, probe) == 1);
    if (peer_ok)
        FZ_CHECK(c->plain_loopback ==
                 (!srv.tls && srv.loopback && !ref_trusted(proxies, np, &peer)));
    else
        FZ_CHECK(c->plain_loopback == 0);

    ctx_free(c);
    fz_conn_release(&fc);
    return 0;
}
