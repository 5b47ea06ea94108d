/*
 * test_alerts.c - the alert writer: a row and the address block in one
 * transaction, listed newest first per académie; the JSON body (the same
 * for the webhook and the API) holds the alert and nothing else; URL
 * checks; the webhook sender against a listener on 127.0.0.1, a dead
 * port, and a full queue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "../../src/alerts.c"
#include "testutil.h"

static char root[300];
static struct store *st;

static int
setup(void **state)
{
    struct cf_errmsg em = { "" };
    char path[400];

    (void)state;
    snprintf(root, sizeof root, "%s", tu_tmpdir());
    snprintf(path, sizeof path, "%s/coffre.db", root);
    assert_int_equal(store_open(path, 1, &st, &em), CF_OK);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    store_close(st);
    tu_rmrf(root);
    return 0;
}

static struct guard_alert
an_alert(const char *rule, const char *addr)
{
    struct guard_alert a;

    memset(&a, 0, sizeof a);
    snprintf(a.rule, sizeof a.rule, "%s", rule);
    snprintf(a.principal, sizeof a.principal, "00112233445566778899aabbccddeeff");
    snprintf(a.addr, sizeof a.addr, "%s", addr);
    a.count = 601;
    a.limit = 600;
    return a;
}

static int
collect(void *arg, const struct store_alert *a)
{
    struct store_alert *out = arg;
    size_t i;

    for (i = 0; out[i].id != 0; i++)
        ;
    out[i] = *a;
    return 0;
}

static int
collect_block(void *arg, const char *addr, int64_t until)
{
    char *out = arg;
    size_t n = strlen(out);

    snprintf(out + n, 256 - n, "%s=%lld;", addr, (long long)until);
    return 0;
}

static void
test_rows_blocks_and_body(void **state)
{
    struct guard_alert a = an_alert("budget-1h", "192.0.2.10"), b = an_alert("canary", "192.0.2.11");
    struct store_alert row, got[8];
    char body[ALERTS_BODY_MAX], blocks[256] = "";
    size_t n;
    json_t *o;

    (void)state;
    assert_true(alerts_is_alert(&a));
    assert_true(alerts_is_alert(&b));
    {
        struct guard_alert x = an_alert("address-24h", "x");

        assert_true(alerts_is_alert(&x));
        x = an_alert("locked-principal", "x");
        assert_false(alerts_is_alert(&x));
        x = an_alert("blocked-address", "x");
        assert_false(alerts_is_alert(&x));
        x = an_alert("guard-error", "x");
        assert_false(alerts_is_alert(&x));
    }
    /* no webhook: the row and the block only */
    assert_int_equal(alerts_record(NULL, st, &a, "10", "denied, principal locked, address blocked",
                                   1764547200123LL, 1764550800123LL, &row), CF_OK);
    assert_true(row.id > 0);
    assert_int_equal(alerts_record(NULL, st, &b, "10", "denied, principal locked", 1764547201000LL,
                                   0, &row), CF_OK);
    assert_int_equal(alerts_record(NULL, st, &a, "02", "denied, principal locked", 1764547202000LL,
                                   0, &row), CF_OK);
    memset(got, 0, sizeof got);
    assert_int_equal(store_alerts_page(st, "10", 0, 10, collect, got), CF_OK);
    assert_string_equal(got[0].rule, "canary");          /* newest first */
    assert_string_equal(got[1].rule, "budget-1h");
    assert_int_equal(got[2].id, 0);                      /* the other académie's is not there */
    assert_true(got[1].has_account);
    assert_int_equal(got[1].account[15], 0xff);
    assert_int_equal(got[1].count, 601);
    assert_int_equal(got[1].limit, 600);
    memset(got, 0, sizeof got);
    assert_int_equal(store_alerts_page(st, "10", 1, 10, collect, got), CF_OK);
    assert_string_equal(got[0].rule, "budget-1h");
    /* the block: live before its end, gone after */
    assert_int_equal(store_blocks_live(st, 1764547300000LL, collect_block, blocks), CF_OK);
    assert_string_equal(blocks, "192.0.2.10=1764550800123;");
    blocks[0] = '\0';
    assert_int_equal(store_blocks_live(st, 1764550800123LL, collect_block, blocks), CF_OK);
    assert_string_equal(blocks, "");
    /* the body: exactly the alert's fields */
    memset(got, 0, sizeof got);
    assert_int_equal(store_alerts_page(st, "10", 1, 1, collect, got), CF_OK);
    n = alerts_json(&got[0], body, sizeof body);
    assert_true(n > 0);
    o = json_loadb(body, n, 0, NULL);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 9);
    assert_string_equal(json_string_value(json_object_get(o, "time")), "2025-12-01T00:00:00.123Z");
    assert_string_equal(json_string_value(json_object_get(o, "account")),
                        "00112233445566778899aabbccddeeff");
    assert_string_equal(json_string_value(json_object_get(o, "addr")), "192.0.2.10");
    assert_int_equal(json_integer_value(json_object_get(o, "count")), 601);
    json_decref(o);
    assert_int_equal(alerts_json(&got[0], body, 20), 0);  /* does not fit: nothing */
}

static void
test_urls(void **state)
{
    static const char *const bad[] = {
        "https://alerts.example.org/", "http://192.0.2.1/hook", "http://10.0.0.1:80/",
        "ftp://127.0.0.1/", "http://user:pw@127.0.0.1/", "http://127.0.0.1:0/",
        "http://127.0.0.1:99999/", "http://127.0.0.1:80x/", "http://[::1/", "http://127.0.0.1/a b",
        "http://example.org/", "127.0.0.1:80", "http:///", NULL,
    };
    static const char *const good[] = {
        "http://127.0.0.1:9000/hook", "http://127.0.0.1", "http://[::1]:8080/a/b?c=d",
        "http://localhost:1234/", "http://127.1.2.3:80/x", NULL,
    };
    struct cf_errmsg em = { "" };
    struct alerts *w;
    size_t i;

    (void)state;
    for (i = 0; bad[i] != NULL; i++) {
        struct alerts_opts o = { bad[i], 0, 0 };

        if (alerts_open(&o, &w, &em) != CF_ERR_INPUT)
            fail_msg("accepted %s", bad[i]);
        assert_null(w);
    }
    for (i = 0; good[i] != NULL; i++) {
        struct alerts_opts o = { good[i], 0, 0 };

        if (alerts_open(&o, &w, &em) != CF_OK)
            fail_msg("refused %s: %s", good[i], em.msg);
        alerts_close(w);
    }
    {
        struct alerts_opts o = { NULL, ALERTS_QUEUE_MAX + 1, 0 };

        assert_int_equal(alerts_open(&o, &w, &em), CF_ERR_INPUT);
    }
}

/* A one-shot receiver on 127.0.0.1: accepts `n` connections, keeps the
 * last request, answers `status`. */
struct rx {
    int fd, n, status;
    unsigned short port;
    char req[2048];
};

static void *
rx_main(void *arg)
{
    struct rx *x = arg;
    int i;

    for (i = 0; i < x->n; i++) {
        int c = accept(x->fd, NULL, NULL);
        size_t got = 0;
        char resp[64];
        ssize_t k;

        if (c < 0)
            break;
        while (got < sizeof x->req - 1 && (k = recv(c, x->req + got, sizeof x->req - 1 - got, 0)) > 0) {
            got += (size_t)k;
            x->req[got] = '\0';
            if (strstr(x->req, "\r\n\r\n") != NULL && strchr(strstr(x->req, "\r\n\r\n"), '}') != NULL)
                break;
        }
        snprintf(resp, sizeof resp, "HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n", x->status);
        (void)send(c, resp, strlen(resp), MSG_NOSIGNAL);
        close(c);
    }
    return NULL;
}

static void
rx_start(struct rx *x, pthread_t *t)
{
    struct sockaddr_in sa = { 0 };
    socklen_t len = sizeof sa;

    x->fd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(x->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(x->fd, 8), 0);
    assert_int_equal(getsockname(x->fd, (struct sockaddr *)&sa, &len), 0);
    x->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(t, NULL, rx_main, x), 0);
}

static void
wait_stats(struct alerts *w, uint64_t sent, uint64_t failed)
{
    struct alerts_stats s;
    int i;

    for (i = 0; i < 500; i++) {               /* at most 5 s */
        alerts_stats(w, &s);
        if (s.sent == sent && s.failed == failed)
            return;
        usleep(10000);
    }
    fail_msg("webhook: sent %llu failed %llu, wanted %llu / %llu", (unsigned long long)s.sent,
             (unsigned long long)s.failed, (unsigned long long)sent, (unsigned long long)failed);
}

static void
test_webhook(void **state)
{
    struct guard_alert a = an_alert("canary", "192.0.2.20");
    struct cf_errmsg em = { "" };
    struct store_alert row;
    struct alerts *w;
    struct rx x = { .n = 1, .status = 204 };
    char url[64];
    pthread_t t;

    (void)state;
    rx_start(&x, &t);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook/in", x.port);
    {
        struct alerts_opts o = { url, 4, 1000 };

        assert_int_equal(alerts_open(&o, &w, &em), CF_OK);
    }
    assert_int_equal(alerts_record(w, st, &a, "10", "denied, principal locked", 1764547200000LL, 0,
                                   &row), CF_OK);
    wait_stats(w, 1, 0);
    pthread_join(t, NULL);
    close(x.fd);
    assert_non_null(strstr(x.req, "POST /hook/in HTTP/1.1\r\n"));
    assert_non_null(strstr(x.req, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(x.req, "\"rule\":\"canary\""));
    assert_non_null(strstr(x.req, "\"addr\":\"192.0.2.20\""));

    /* an error status is a failure, after both attempts */
    x = (struct rx){ .n = ALERTS_ATTEMPTS, .status = 500 };
    alerts_close(w);
    rx_start(&x, &t);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", x.port);
    {
        struct alerts_opts o = { url, 4, 1000 };

        assert_int_equal(alerts_open(&o, &w, &em), CF_OK);
    }
    assert_int_equal(alerts_record(w, st, &a, "10", "denied", 1764547200000LL, 0, &row), CF_OK);
    wait_stats(w, 0, 1);
    pthread_join(t, NULL);
    close(x.fd);
    alerts_close(w);

    /* a full queue drops (the store keeps them): a listener that never
     * accepts holds the sender in its first attempt */
    x = (struct rx){ .n = 0, .status = 204 };
    rx_start(&x, &t);
    pthread_join(t, NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", x.port);
    {
        struct alerts_opts o = { url, 2, 3000 };
        struct alerts_stats s;
        int i;

        assert_int_equal(alerts_open(&o, &w, &em), CF_OK);
        for (i = 0; i < 6; i++)
            assert_int_equal(alerts_record(w, st, &a, "10", "denied", 1764547200000LL, 0, &row),
                             CF_OK);
        alerts_stats(w, &s);
        assert_true(s.dropped >= 3);              /* 6 raised, at most 1 in flight + 2 queued */
        assert_int_equal(s.queued + s.dropped, 6);
        alerts_close(w);                          /* stops within one attempt */
    }
    close(x.fd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_blocks_and_body),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_webhook),
    };

    return cmocka_run_group_tests_name("alerts", tests, setup, teardown);
}
