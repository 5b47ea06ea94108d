/*
 * log.c - JSON-lines logging to stderr (see log.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "banned.h"

#define LOG_LINE_MAX 4096

static enum log_level min_level = LOG_INFO;

void
log_set_level(enum log_level min)
{
    min_level = min;
}

static const char *
level_name(enum log_level l)
{
    switch (l) {
    case LOG_DEBUG: return "debug";
    case LOG_INFO:  return "info";
    case LOG_WARN:  return "warn";
    case LOG_ERROR: return "error";
    }
    return "info";
}

/* Appends s JSON-escaped; stops quietly at the end of the buffer. */
static void
put_escaped(char *buf, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    for (; *s != '\0' && *len + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            buf[(*len)++] = '\\';
            buf[(*len)++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            buf[(*len)++] = '\\';
            buf[(*len)++] = 'u';
            buf[(*len)++] = '0';
            buf[(*len)++] = '0';
            buf[(*len)++] = hex[c >> 4];
            buf[(*len)++] = hex[c & 15];
        } else
            buf[(*len)++] = (char)c;
    }
}

static void
put_raw(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);

    if (*len + n < cap) {
        memcpy(buf + *len, s, n);
        *len += n;
    }
}

static void
emit(enum log_level lvl, const char *msg, va_list kv)
{
    char buf[LOG_LINE_MAX], ts[32];
    struct timespec now;
    struct tm tm;
    size_t len = 0;
    const char *k, *v;

    if (lvl < min_level)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    put_raw(buf, sizeof buf - 2, &len, "{\"time\":\"");
    put_raw(buf, sizeof buf - 2, &len, ts);
    put_raw(buf, sizeof buf - 2, &len, "Z\",\"level\":\"");
    put_raw(buf, sizeof buf - 2, &len, level_name(lvl));
    put_raw(buf, sizeof buf - 2, &len, "\",\"msg\":\"");
    put_escaped(buf, sizeof buf - 2, &len, msg);
    put_raw(buf, sizeof buf - 2, &len, "\"");
    while ((k = va_arg(kv, const char *)) != NULL) {
        v = va_arg(kv, const char *);
        put_raw(buf, sizeof buf - 2, &len, ",\"");
        put_escaped(buf, sizeof buf - 2, &len, k);
        put_raw(buf, sizeof buf - 2, &len, "\":\"");
        put_escaped(buf, sizeof buf - 2, &len, v != NULL ? v : "");
        put_raw(buf, sizeof buf - 2, &len, "\"");
    }
    buf[len++] = '}';
    buf[len++] = '\n';
    (void)!write(STDERR_FILENO, buf, len);
}

void
log_kv(enum log_level lvl, const char *msg, ...)
{
    va_list ap;

    va_start(ap, msg);
    emit(lvl, msg, ap);
    va_end(ap);
}

static void
log_vfmt(enum log_level lvl, const char *fmt, va_list ap)
{
    char msg[1024];

    vsnprintf(msg, sizeof msg, fmt, ap);
    log_kv(lvl, msg, (const char *)NULL);
}

void
log_info(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vfmt(LOG_INFO, fmt, ap);
    va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vfmt(LOG_WARN, fmt, ap);
    va_end(ap);
}

void
log_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vfmt(LOG_ERROR, fmt, ap);
    va_end(ap);
}
