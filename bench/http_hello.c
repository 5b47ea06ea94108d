/*
 * bench/http_hello.c - what http.c costs next to a bare libmicrohttpd.
 *
 * Three servers on 127.0.0.1, each with the same libmicrohttpd flags
 * (internal thread pool of --threads, epoll, suspend/resume):
 *   - bare:     a minimal access handler queueing a 17-byte JSON body on the
 *               second call (DESIGN.md section 12), Content-Type only;
 *   - sync:     http.c, a route replying http_reply_json({"hello":"world"})
 *               (routing, request snapshot, security headers, metrics);
 *   - deferred: http.c, a route calling http_defer and handing the ctx to a
 *               replier thread that answers at once (suspend + resume).
 * Clients: --conns keep-alive connections, one blocking thread each, each
 * sending --requests / --conns requests one after the other.  Each server is
 * warmed up, then timed 3 times, the three alternating run by run; the
 * table shows requests per second, median (min-max).  Prints a Markdown
 * table on stdout, progress on stderr.  Clients and servers share the
 * machine: the figures are a floor, the ratios what matter.
 *
 *   make build/bench_http_hello && build/bench_http_hello [--requests N]
 *       [--conns C] [--threads T]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "http.h"
#include "log.h"
#include "bench.h"
#include "banned.h"

#define RUNS          3
#define MAX_CONNS     256
#define REQUESTS_DEF  200000UL
#define CONNS_DEF     16U

static const char hello[] = "{\"hello\":\"world\"}";

static void
die(const char *what)
{
    fprintf(stderr, "bench_http_hello: %s\n", what);
    exit(1);
}

static unsigned long
arg_num(const char *s, unsigned long min, unsigned long max, const char *what)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s || v < min || v > max) {
        fprintf(stderr, "bench_http_hello: %s must be %lu..%lu\n", what, min, max);
        exit(2);
    }
    return v;
}

/* ---- the bare server ----------------------------------------------------- */

static enum MHD_Result
bare_handler(void *cls, struct MHD_Connection *conn, const char *url,
             const char *method, const char *version, const char *upload,
             size_t *upload_size, void **con_cls)
{
    static int marker;
    struct MHD_Response *r;
    enum MHD_Result ret;

    (void)cls; (void)url; (void)method; (void)version; (void)upload;
    if (*con_cls == NULL) {
        *con_cls = &marker;             /* queue on the second call */
        return MHD_YES;
    }
    *upload_size = 0;
    r = MHD_create_response_from_buffer(sizeof hello - 1, (void *)hello,
                                        MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    ret = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- the coffre routes ---------------------------------------------------- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct http_ctx **q;
    size_t n, cap;
    int stop;
} replier = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0, 0 };

static void
h_sync(struct http_ctx *c, void *app)
{
    (void)app;
    http_reply_json(c, 200, json_pack("{s:s}", "hello", "world"));
}

static void
h_deferred(struct http_ctx *c, void *app)
{
    (void)app;
    http_defer(c);
    pthread_mutex_lock(&replier.mu);
    if (replier.n == replier.cap)
        die("replier queue full");
    replier.q[replier.n++] = c;
    pthread_cond_signal(&replier.cv);
    pthread_mutex_unlock(&replier.mu);
}

static void *
replier_main(void *arg)
{
    struct http_ctx *batch[MAX_CONNS];

    (void)arg;
    for (;;) {
        size_t n, i;

        pthread_mutex_lock(&replier.mu);
        while (replier.n == 0 && !replier.stop)
            pthread_cond_wait(&replier.cv, &replier.mu);
        if (replier.n == 0 && replier.stop) {
            pthread_mutex_unlock(&replier.mu);
            return NULL;
        }
        n = replier.n < MAX_CONNS ? replier.n : MAX_CONNS;
        memcpy(batch, replier.q + replier.n - n, n * sizeof batch[0]);
        replier.n -= n;
        pthread_mutex_unlock(&replier.mu);
        for (i = 0; i < n; i++)
            http_reply_json(batch[i], 200, json_pack("{s:s}", "hello", "world"));
    }
}

static const struct http_route routes[] = {
    { "GET", "/hello", 0, h_sync, "hello" },
    { "GET", "/deferred", 0, h_deferred, "deferred" },
};

/* ---- the clients ----------------------------------------------------------- */

struct client {
    pthread_t t;
    unsigned port;
    const char *path;
    unsigned long n;
    int failed;
};

static int
read_response(int fd, char *buf, size_t cap)
{
    size_t len = 0, need = 0;
    char *end = NULL, *cl;

    for (;;) {
        ssize_t k = recv(fd, buf + len, cap - len - 1, 0);

        if (k <= 0)
            return -1;
        len += (size_t)k;
        buf[len] = '\0';
        if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            if (strncmp(buf, "HTTP/1.1 200", 12) != 0)
                return -1;
            cl = strstr(buf, "Content-Length: ");
            if (cl == NULL || cl > end)
                return -1;
            need = (size_t)(end - buf) + 4 + strtoul(cl + 16, NULL, 10);
        }
        if (end != NULL && len >= need)
            return len == need ? 0 : -1;   /* no pipelining: nothing extra */
        if (len + 1 >= cap)
            return -1;
    }
}

static void *
client_main(void *arg)
{
    struct client *cl = arg;
    struct sockaddr_in a;
    char req[128], buf[4096];
    size_t rlen;
    unsigned long i;
    int fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)cl->port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        cl->failed = 1;
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    rlen = (size_t)snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                            cl->path);
    for (i = 0; i < cl->n; i++)
        if (send(fd, req, rlen, MSG_NOSIGNAL) != (ssize_t)rlen ||
            read_response(fd, buf, sizeof buf) != 0) {
            cl->failed = 1;
            break;
        }
    close(fd);
    return NULL;
}

/* Requests per second over conns connections. */
static double
load(unsigned port, const char *path, unsigned long total, unsigned conns)
{
    struct client cl[MAX_CONNS];
    double t0, t;
    unsigned i;

    for (i = 0; i < conns; i++) {
        cl[i].port = port;
        cl[i].path = path;
        cl[i].n = total / conns;
        cl[i].failed = 0;
    }
    t0 = now();
    for (i = 0; i < conns; i++)
        if (pthread_create(&cl[i].t, NULL, client_main, &cl[i]) != 0)
            die("pthread_create");
    for (i = 0; i < conns; i++)
        pthread_join(cl[i].t, NULL);
    t = now() - t0;
    for (i = 0; i < conns; i++)
        if (cl[i].failed)
            die("a request failed");
    return (double)(total / conns * conns) / t;
}

int
main(int argc, char **argv)
{
    unsigned long total = REQUESTS_DEF;
    unsigned conns = CONNS_DEF, threads = 2;
    struct http_server *srv = NULL;
    struct MHD_Daemon *bare;
    struct http_opts o;
    struct cf_errmsg em = { "" };
    const union MHD_DaemonInfo *di;
    pthread_t rep;
    double rate[3][RUNS];
    static const char *const names[3] = {
        "bare libmicrohttpd hello (Content-Type only)",
        "http.c sync reply (routing, snapshot, 7 headers, metrics)",
        "http.c deferred reply (http_defer, reply from another thread)",
    };
    unsigned bport, cport;
    int i, k;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--requests") == 0 && i + 1 < argc)
            total = arg_num(argv[++i], 1000, 100000000, "--requests");
        else if (strcmp(argv[i], "--conns") == 0 && i + 1 < argc)
            conns = (unsigned)arg_num(argv[++i], 1, MAX_CONNS, "--conns");
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = (unsigned)arg_num(argv[++i], 1, 64, "--threads");
        else {
            fprintf(stderr, "usage: bench_http_hello [--requests N] [--conns C] [--threads T]\n");
            return 2;
        }
    }
    log_set_level(LOG_WARN);
    replier.cap = MAX_CONNS * 4;
    replier.q = calloc(replier.cap, sizeof *replier.q);
    if (replier.q == NULL || pthread_create(&rep, NULL, replier_main, NULL) != 0)
        die("replier");

    bare = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                            MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC, 0, NULL, NULL,
                            bare_handler, NULL,
                            MHD_OPTION_THREAD_POOL_SIZE, threads,
                            MHD_OPTION_CONNECTION_LIMIT, 1024U,
                            MHD_OPTION_END);
    if (bare == NULL)
        die("cannot start the bare daemon");
    di = MHD_get_daemon_info(bare, MHD_DAEMON_INFO_BIND_PORT);
    bport = di->port;
    memset(&o, 0, sizeof o);
    o.listen = "127.0.0.1:0";
    o.threads = threads;
    o.max_connections = 1024;
    o.routes = routes;
    o.nroutes = sizeof routes / sizeof routes[0];
    if (http_start(&o, &srv, &em) != CF_OK)
        die(em.msg);
    cport = http_port(srv);

    fprintf(stderr, "warm-up\n");
    load(bport, "/hello", total / 10, conns);
    load(cport, "/hello", total / 10, conns);
    load(cport, "/deferred", total / 10, conns);
    for (k = 0; k < RUNS; k++) {
        fprintf(stderr, "run %d/%d\n", k + 1, RUNS);
        rate[0][k] = load(bport, "/hello", total, conns);
        rate[1][k] = load(cport, "/hello", total, conns);
        rate[2][k] = load(cport, "/deferred", total, conns);
    }
    http_stop(srv);
    MHD_stop_daemon(bare);
    pthread_mutex_lock(&replier.mu);
    replier.stop = 1;
    pthread_cond_signal(&replier.cv);
    pthread_mutex_unlock(&replier.mu);
    pthread_join(rep, NULL);
    free(replier.q);

    printf("| keep-alive GET, %lu requests over %u connections, pool of %u (3 runs) "
           "| requests/s: median (min–max) | vs bare |\n|---|---:|---:|\n",
           total / conns * conns, conns, threads);
    for (i = 0; i < 3; i++) {
        char cell[128];
        struct stat3 r = stat_of(rate[i], RUNS), base = stat_of(rate[0], RUNS);

        printf("| %s | %s | %.2f |\n", names[i], fmt_rate(cell, sizeof cell, r), r.med / base.med);
    }
    return 0;
}
