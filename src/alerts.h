/*
 * alerts.h - what happens to an alert once the guard raised it and denied
 * (DESIGN.md section 7): a row in the store's alerts table, written in the
 * request that tripped it together with the address block it caused, and,
 * optionally, a JSON POST to a webhook.
 *
 * The webhook is sent from one background thread with a bounded queue and
 * a timeout per attempt, never on the request path: a slow or dead
 * receiver costs the request nothing; a full queue drops the alert from
 * the webhook (it is in the store and in the log anyway) and counts it.
 * The body is the alert: time, rule, account id, address, counts, action.
 * Never a subject, a field or anything about a person.
 *
 * The client is a minimal HTTP/1.1 POST over plain TCP, for a webhook on
 * a loopback address (a local relay, an agent, a test receiver): TLS would
 * need a TLS client library this build does not link (docs/guard.md says
 * why), so https:// is refused at start rather than sent in clear.
 */
#ifndef COFFRE_ALERTS_H
#define COFFRE_ALERTS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "guard.h"
#include "store.h"

/* A URL: "http://127.0.0.1:9000/hook" fits in far less; a bound on what
 * is parsed. */
#define ALERTS_URL_MAX           512
/* Alerts waiting for the webhook: an alert is one per locked account or
 * blocked address, so a thousand waiting means the receiver is down; the
 * store keeps them all regardless. */
#define ALERTS_QUEUE_DEFAULT     1024u
#define ALERTS_QUEUE_MAX         65536u
/* Per attempt: connect, send, read the status line. */
#define ALERTS_TIMEOUT_MS_DEFAULT 2000u
#define ALERTS_TIMEOUT_MS_MAX     60000u
/* Attempts per alert (1 s apart): a receiver restarting is not a loss. */
#define ALERTS_ATTEMPTS          2
/* The JSON body of one alert. */
#define ALERTS_BODY_MAX          1024

struct alerts_opts {
    const char *webhook_url;       /* NULL: no webhook */
    unsigned queue_max;            /* 0: default */
    unsigned timeout_ms;           /* 0: default */
};

struct alerts;

/* Checks the URL (http:// with a loopback host, a port, a path; no user
 * info) and starts the sender when there is one.  CF_ERR_INPUT (em says
 * why) for another URL or an option out of bounds. */
enum cf_err alerts_open(const struct alerts_opts *o, struct alerts **out,
                        struct cf_errmsg *em) WARN_UNUSED;
/* The URL check of alerts_open alone, so that `serve` can refuse a bad
 * --alert-webhook as a usage error before anything else. */
enum cf_err alerts_check_url(const char *url, struct cf_errmsg *em) WARN_UNUSED;
/* Stops the sender after the attempt in progress; alerts still queued are
 * dropped from the webhook (counted, logged).  NULL is a no-op. */
void alerts_close(struct alerts *w);

/* 1 for the rules that are alerts (canary, budget-*, address-*). */
int alerts_is_alert(const struct guard_alert *a);

/*
 * One alert the guard denied on: the row (and, with block_until_ms > 0,
 * the address block) in one transaction on st - which must not be in one
 * already - then the webhook queued.  compartment: the actor's académie.
 * The row is out.id on return.  CF_ERR_STORE when it could not be written
 * (the caller logs; the lock itself is elsewhere).
 */
enum cf_err alerts_record(struct alerts *w, struct store *st, const struct guard_alert *a,
                          const char *compartment, const char *action, int64_t time_ms,
                          int64_t block_until_ms, struct store_alert *out) WARN_UNUSED;

/* The JSON body of an alert row (the webhook's, and GET /api/v1/alerts'
 * items): returns its length, or 0 if it does not fit cap. */
size_t alerts_json(const struct store_alert *a, char *buf, size_t cap);

struct alerts_stats {
    uint64_t queued, sent, failed, dropped;
};
void alerts_stats(struct alerts *w, struct alerts_stats *out);

#endif
