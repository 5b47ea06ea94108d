/*
 * pbkdf2_raw.c - Glewlwyd's hashing bound for bench/compare: raw
 * PBKDF2-HMAC-SHA256 derivations per second on N threads for S seconds,
 * with nettle's pbkdf2_hmac_sha256 (the function Glewlwyd's database user
 * module calls for SQLite), a 16-byte salt and a 32-byte output, as it
 * does.  Prints "verifies_per_s <float>", like bench_pwhash_raw.
 *
 *   bench_pbkdf2_raw THREADS SECONDS ITERATIONS
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nettle/pbkdf2.h>

#define MAX_THREADS 64

static const char password[] = "girafe tambour nuage citron";
static const uint8_t salt[16] = "0123456789abcdef";
static uint8_t expect[32];
static unsigned iterations;
static double deadline;
static unsigned long counts[MAX_THREADS];

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *
run(void *arg)
{
    unsigned long *n = arg;
    uint8_t out[32];

    while (now() < deadline) {
        pbkdf2_hmac_sha256(sizeof password - 1, (const uint8_t *)password, iterations,
                           sizeof salt, salt, sizeof out, out);
        if (memcmp(out, expect, sizeof out) == 0)     /* as a verify compares */
            (*n)++;
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    pthread_t th[MAX_THREADS];
    int threads, i;
    double secs, t0;
    unsigned long total = 0;

    if (argc != 4)
        return 2;
    threads = (int)strtol(argv[1], NULL, 10);
    secs = strtod(argv[2], NULL);
    iterations = (unsigned)strtoul(argv[3], NULL, 10);
    if (threads < 1 || threads > MAX_THREADS || secs <= 0 || secs > 600 ||
        iterations < 1 || iterations > 10000000)
        return 2;
    pbkdf2_hmac_sha256(sizeof password - 1, (const uint8_t *)password, iterations,
                       sizeof salt, salt, sizeof expect, expect);
    t0 = now();
    deadline = t0 + secs;
    for (i = 0; i < threads; i++)
        if (pthread_create(&th[i], NULL, run, &counts[i]) != 0)
            return 1;
    for (i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += counts[i];
    }
    printf("verifies_per_s %.1f\n", (double)total / (now() - t0));
    return 0;
}
