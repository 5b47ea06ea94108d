/*
 * alerts.c - alert rows, address blocks kept across restarts, and the
 * webhook sender (see alerts.h).
 *
 * The sender is one thread and a ring of copied rows under one mutex.
 * Its HTTP client is the least that POSTs one JSON body: a non-blocking
 * connect to the address resolved at start (numeric or "localhost", so no
 * DNS later), the request, and the status line, each step under what is
 * left of the attempt's timeout (poll).  2xx is success; anything else,
 * or the timeout, is a failure: logged (the rule and why, no body),
 * counted, retried once a second later.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <jansson.h>
#include <sodium.h>

#include "alerts.h"
#include "log.h"
#include "banned.h"

struct alerts {
    /* the webhook: resolved once */
    int has_hook;
    struct sockaddr_storage sa;
    socklen_t salen;
    char hosthdr[96];
    char path[ALERTS_URL_MAX + 1];
    unsigned timeout_ms;
    /* the queue */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started, stop;
    struct store_alert *ring;
    size_t cap, head, n;
    struct alerts_stats st;
};

int
alerts_is_alert(const struct guard_alert *a)
{
    return strcmp(a->rule, "canary") == 0 || strncmp(a->rule, "budget-", 7) == 0 ||
           strncmp(a->rule, "address-", 8) == 0;
}

/* ---- the body ---------------------------------------------------------- */

size_t
alerts_json(const struct store_alert *a, char *buf, size_t cap)
{
    char when[32], acct[STORE_ID_BYTES * 2 + 1] = "";
    time_t t = (time_t)(a->time_ms / 1000);
    struct tm tm;
    json_t *o;
    size_t n;

    if (gmtime_r(&t, &tm) == NULL)
        return 0;
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(a->time_ms % 1000));
    if (a->has_account)
        sodium_bin2hex(acct, sizeof acct, a->account, STORE_ID_BYTES);
    o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "id", (json_int_t)a->id,
                  "time", when, "academie", a->compartment, "rule", a->rule, "account", acct,
                  "addr", a->addr, "count", (json_int_t)a->count, "limit", (json_int_t)a->limit,
                  "action", a->action);
    if (o == NULL)
        return 0;
    n = json_dumpb(o, buf, cap, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return n <= cap ? n : 0;
}

/* ---- the client -------------------------------------------------------- */

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline; 0 when ready. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = { fd, events, 0 };
    int64_t left = deadline - mono_ms();
    int rc;

    if (left <= 0)
        return -1;
    do
        rc = poll(&p, 1, (int)left);
    while (rc < 0 && errno == EINTR && (left = deadline - mono_ms()) > 0);
    return rc == 1 && (p.revents & (events | POLLHUP)) ? 0 : -1;
}

/* One attempt: NULL on a 2xx answer, else why it failed (static text). */
static const char *
post_once(const struct alerts *w, const char *body, size_t len)
{
    char head[ALERTS_URL_MAX + 256], resp[64];
    int64_t deadline = mono_ms() + w->timeout_ms;
    const char *why = NULL;
    size_t off = 0, hlen, got = 0;
    int fd, err = 0, status;
    socklen_t elen = sizeof err;

    fd = socket(w->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return "socket";
    if (connect(fd, (const struct sockaddr *)&w->sa, w->salen) != 0 && errno != EINPROGRESS) {
        why = "connect refused";
        goto out;
    }
    if (wait_fd(fd, POLLOUT, deadline) != 0) {
        why = "connect timed out";
        goto out;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
        why = "connect refused";
        goto out;
    }
    hlen = (size_t)snprintf(head, sizeof head,
                            "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: coffre\r\n"
                            "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                            "Connection: close\r\n\r\n", w->path, w->hosthdr, len);
    if (hlen >= sizeof head) {
        why = "request too long";
        goto out;
    }
    /* head, then body */
    while (off < hlen + len) {
        const char *p = off < hlen ? head + off : body + (off - hlen);
        size_t n = off < hlen ? hlen - off : hlen + len - off;
        ssize_t k;

        if (wait_fd(fd, POLLOUT, deadline) != 0) {
            why = "send timed out";
            goto out;
        }
        k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (k <= 0) {
            why = "send failed";
            goto out;
        }
        off += (size_t)k;
    }
    /* the status line: "HTTP/1.1 204 ..." */
    while (got < 12) {
        ssize_t k;

        if (wait_fd(fd, POLLIN, deadline) != 0) {
            why = "no answer in time";
            goto out;
        }
        k = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (k <= 0) {
            why = "connection closed without an answer";
            goto out;
        }
        got += (size_t)k;
    }
    resp[got] = '\0';
    if (strncmp(resp, "HTTP/1.", 7) != 0 || sscanf(resp + 8, " %3d", &status) != 1)  // NOLINT(cert-err34-c): 3 digits, checked as a status after
        why = "not an HTTP answer";
    else if (status < 200 || status > 299)
        why = "answered with an error status";
out:
    close(fd);
    return why;
}

/* ---- the sender -------------------------------------------------------- */

static void *
sender(void *arg)
{
    struct alerts *w = arg;
    struct store_alert a;
    char body[ALERTS_BODY_MAX];

    pthread_mutex_lock(&w->mu);
    for (;;) {
        size_t len;
        int attempt;
        const char *why = "body too large";

        while (w->n == 0 && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop)
            break;
        a = w->ring[w->head];
        w->head = (w->head + 1) % w->cap;
        w->n--;
        pthread_mutex_unlock(&w->mu);

        len = alerts_json(&a, body, sizeof body);
        for (attempt = 0; len > 0 && attempt < ALERTS_ATTEMPTS; attempt++) {
            if (attempt > 0) {
                struct timespec ts;
                int stop;

                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_mutex_lock(&w->mu);
                if (!w->stop)
                    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
                stop = w->stop;
                pthread_mutex_unlock(&w->mu);
                if (stop)
                    break;
            }
            if ((why = post_once(w, body, len)) == NULL)
                break;
        }
        pthread_mutex_lock(&w->mu);
        if (why == NULL)
            w->st.sent++;
        else {
            w->st.failed++;
            pthread_mutex_unlock(&w->mu);
            log_kv(LOG_WARN, "alerts: webhook failed", "rule", a.rule, "why", why,
                   (const char *)NULL);
            pthread_mutex_lock(&w->mu);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int
is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

        return IN6_IS_ADDR_LOOPBACK(a6) ||
               (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
    }
    return 0;
}

/* 0 for a port 1..65535 (digits only, checked by the caller). */
static int
atoi_port_ok(const char *port)
{
    unsigned long v = strtoul(port, NULL, 10);

    return v >= 1 && v <= 65535 ? 0 : -1;
}

/* "http://HOST[:PORT][/PATH]" with HOST a loopback address or localhost. */
static enum cf_err
parse_url(struct alerts *w, const char *url, struct cf_errmsg *em)
{
    char host[64], port[8] = "80";
    const char *p, *end;
    struct addrinfo hints, *res = NULL;
    size_t n, i;
    int gai;

    if (strlen(url) > ALERTS_URL_MAX)
        return cf_fail(em, CF_ERR_INPUT, "--alert-webhook: longer than %d bytes", ALERTS_URL_MAX);
    for (i = 0; url[i] != '\0'; i++)
        if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f)
            return cf_fail(em, CF_ERR_INPUT, "--alert-webhook: spaces or control bytes in the URL");
    if (strncmp(url, "https://", 8) == 0)
        return cf_fail(em, CF_ERR_INPUT, "--alert-webhook: https:// needs a TLS client this "
                       "build does not have; relay through a loopback http:// listener "
                       "(docs/guard.md)");
    if (strncmp(url, "http://", 7) != 0)
        return cf_fail(em, CF_ERR_INPUT, "--alert-webhook: an http:// URL on a loopback address");
    p = url + 7;
    if (*p == '[') {
        end = strchr(p, ']');
        if (end == NULL)
            return cf_fail(em, CF_ERR_INPUT, "--alert-webhook: unclosed [ in the host");
        n = (size_t)(end - p - 1);
        if (n == 0 || n >= sizeof host)
            return cf_fail(em, CF_ERR_INPUT, "--alert-webhook: bad host");
        memcpy(host, p + 1, n);
        host[n] = '\0';
        end++;
    } else {
        n = strcspn(p, ":/?#@");
        if (p[n] == '@')
            return cf_fail(em, CF_ERR_INPUT, "--alert-webhook: no user name or password in the URL");
        if (n == 0 || n >= sizeof host)
            return cf_fail(em, CF_ERR_INPUT, "--alert-webhook: bad host");
        memcpy(host, p, n);
        host[n] = '\0';
        end = p + n;
    }
    if (*end == ':') {
        n = strspn(end + 1, "0123456789");
        if (n == 0 || n > 5 || (end[1 + n] != '\0' && end[1 + n] != '/'))
            return cf_fail(em, CF_ERR_INPUT, "--alert-webhook: bad port");
        memcpy(port, end + 1, n);
        port[n] = '\0';
        end += 1 + n;
    }
    if (*end != '\0' && *end != '/')
        return cf_fail(em, CF_ERR_INPUT, "--alert-webhook: expected a path after the host");
    snprintf(w->path, sizeof w->path, "%s", *end == '/' ? end : "/");
    snprintf(w->hosthdr, sizeof w->hosthdr, "%s%s%s:%s", strchr(host, ':') ? "[" : "", host,
             strchr(host, ':') ? "]" : "", port);
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (strcmp(host, "localhost") == 0 ? 0 : AI_NUMERICHOST);
    if ((gai = getaddrinfo(host, port, &hints, &res)) != 0 || res == NULL)
        return cf_fail(em, CF_ERR_INPUT, "--alert-webhook: the host must be a loopback "
                       "address or localhost (%s)", gai_strerror(gai));
    if (!is_loopback(res->ai_addr) || res->ai_addrlen > sizeof w->sa ||
        atoi_port_ok(port) != 0) {
        freeaddrinfo(res);
        return cf_fail(em, CF_ERR_INPUT, "--alert-webhook: the host must be a loopback "
                       "address (127.0.0.0/8, ::1) or localhost: alerts never leave the "
                       "machine in clear");
    }
    memcpy(&w->sa, res->ai_addr, res->ai_addrlen);
    w->salen = res->ai_addrlen;
    freeaddrinfo(res);
    return CF_OK;
}

/* ---- lifecycle ----------------------------------------------------------- */

enum cf_err
alerts_check_url(const char *url, struct cf_errmsg *em)
{
    struct alerts *w = calloc(1, sizeof *w);
    enum cf_err rc;

    if (w == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "out of memory");
    rc = parse_url(w, url, em);
    free(w);
    return rc;
}

enum cf_err
alerts_open(const struct alerts_opts *o, struct alerts **out, struct cf_errmsg *em)
{
    struct alerts *w = calloc(1, sizeof *w);
    enum cf_err rc;

    *out = NULL;
    if (w == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->cap = o->queue_max ? o->queue_max : ALERTS_QUEUE_DEFAULT;
    w->timeout_ms = o->timeout_ms ? o->timeout_ms : ALERTS_TIMEOUT_MS_DEFAULT;
    if (w->cap > ALERTS_QUEUE_MAX || w->timeout_ms > ALERTS_TIMEOUT_MS_MAX) {
        rc = cf_fail(em, CF_ERR_INPUT, "alerts: queue at most %u, timeout at most %u ms",
                     ALERTS_QUEUE_MAX, ALERTS_TIMEOUT_MS_MAX);
        goto fail;
    }
    if (o->webhook_url != NULL) {
        if ((rc = parse_url(w, o->webhook_url, em)) != CF_OK)
            goto fail;
        w->ring = calloc(w->cap, sizeof *w->ring);
        if (w->ring == NULL) {
            rc = cf_fail(em, CF_ERR_NOMEM, "out of memory");
            goto fail;
        }
        w->has_hook = 1;
        if (pthread_create(&w->thread, NULL, sender, w) != 0) {
            rc = cf_fail(em, CF_ERR_NOMEM, "alerts: cannot start the webhook thread");
            goto fail;
        }
        w->started = 1;
    }
    *out = w;
    return CF_OK;
fail:
    alerts_close(w);
    return rc;
}

void
alerts_close(struct alerts *w)
{
    size_t left;

    if (w == NULL)
        return;
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    left = w->n;
    if (left > 0) {
        char n[24];

        snprintf(n, sizeof n, "%zu", left);
        log_kv(LOG_WARN, "alerts: stopping, alerts not sent to the webhook (they are in the store)",
               "count", n, (const char *)NULL);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->ring);
    free(w);
}

void
alerts_stats(struct alerts *w, struct alerts_stats *out)
{
    memset(out, 0, sizeof *out);
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    *out = w->st;
    pthread_mutex_unlock(&w->mu);
}

/* ---- one alert ----------------------------------------------------------- */

static void
enqueue(struct alerts *w, const struct store_alert *a)
{
    int dropped = 0;

    pthread_mutex_lock(&w->mu);
    if (w->n == w->cap) {
        w->st.dropped++;
        dropped = 1;
    } else {
        w->ring[(w->head + w->n) % w->cap] = *a;
        w->n++;
        w->st.queued++;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    if (dropped)
        log_kv(LOG_WARN, "alerts: webhook queue full, alert not sent (it is in the store)",
               "rule", a->rule, (const char *)NULL);
}

enum cf_err
alerts_record(struct alerts *w, struct store *st, const struct guard_alert *a,
              const char *compartment, const char *action, int64_t time_ms,
              int64_t block_until_ms, struct store_alert *out)
{
    struct cf_errmsg em = { "" };
    enum cf_err rc;

    memset(out, 0, sizeof *out);
    out->time_ms = time_ms;
    snprintf(out->compartment, sizeof out->compartment, "%s", compartment);
    snprintf(out->rule, sizeof out->rule, "%s", a->rule);
    out->has_account = strlen(a->principal) == STORE_ID_BYTES * 2 &&
                       sodium_hex2bin(out->account, STORE_ID_BYTES, a->principal,
                                      STORE_ID_BYTES * 2, NULL, NULL, NULL) == 0;
    snprintf(out->addr, sizeof out->addr, "%s", a->addr);
    out->count = a->count;
    out->limit = a->limit;
    snprintf(out->action, sizeof out->action, "%s", action);
    if ((rc = store_begin(st, STORE_TX_NORMAL)) != CF_OK)
        return rc;
    if ((rc = store_alert_insert(st, out)) == CF_OK && block_until_ms > 0)
        rc = store_block_put(st, a->addr, block_until_ms);
    if (rc == CF_OK)
        rc = store_commit(st, &em);
    else
        store_rollback(st);
    if (rc == CF_OK && w != NULL && w->has_hook)
        enqueue(w, out);
    return rc;
}
