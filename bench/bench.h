/*
 * bench.h - what every benchmark program shares: a monotonic clock, whole
 * numbers parsed strictly from the command line, thousands separators for
 * the tables, and sorting of timings for medians.  Header-only (inline) so
 * each bench stays one file plus this.
 */
#ifndef COFFRE_BENCH_H
#define COFFRE_BENCH_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Unsigned decimal, whole string, within [min, max]; -1 otherwise. */
static inline int
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* "1234567" -> "1,234,567". */
static inline const char *
fmt_int(char *buf, size_t cap, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    size_t i, o = 0;

    for (i = 0; i < (size_t)n && o + 2 < cap; i++) {
        if (i > 0 && ((size_t)n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
    return buf;
}

/* qsort comparator for doubles (medians, percentiles). */
static inline int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Median, min and max of n values (the upper median for even n). */
#define BENCH_MAX_RUNS 16
struct stat3 {
    double med, min, max;
};

static inline struct stat3
stat_of(const double *v, int n)
{
    double s[BENCH_MAX_RUNS];
    struct stat3 out;

    if (n < 1 || n > BENCH_MAX_RUNS) {
        fprintf(stderr, "bench: %d runs, 1 to %d supported\n", n, BENCH_MAX_RUNS);
        exit(1);
    }
    memcpy(s, v, (size_t)n * sizeof s[0]);
    qsort(s, (size_t)n, sizeof s[0], cmp_double);
    out.min = s[0];
    out.med = s[n / 2];
    out.max = s[n - 1];
    return out;
}

/* "1,234 (1,200–1,300)": a rate's median (min–max), whole numbers. */
static inline const char *
fmt_rate(char *buf, size_t cap, struct stat3 r)
{
    char a[32], b[32], c[32];

    snprintf(buf, cap, "%s (%s–%s)", fmt_int(a, sizeof a, (uint64_t)(r.med + 0.5)),
             fmt_int(b, sizeof b, (uint64_t)(r.min + 0.5)),
             fmt_int(c, sizeof c, (uint64_t)(r.max + 0.5)));
    return buf;
}

#endif
