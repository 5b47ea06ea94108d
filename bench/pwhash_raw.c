/*
 * pwhash_raw.c - the hashing bound for bench/login.sh: raw
 * crypto_pwhash_str_verify calls per second on N threads for S seconds, at
 * the given Argon2id cost.  Prints "verifies_per_s <float>".
 *
 *   bench_pwhash_raw THREADS SECONDS T MEM_KIB
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

static char hash[crypto_pwhash_STRBYTES];
static double deadline;
static unsigned long counts[64];

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
run(void *arg)
{
    unsigned long *n = arg;

    while (now() < deadline)
        if (crypto_pwhash_str_verify(hash, "girafe tambour nuage citron", 27) == 0)
            (*n)++;
    return NULL;
}

int
main(int argc, char **argv)
{
    pthread_t th[64];
    int threads, i;
    double secs, t0;
    unsigned long long t;
    size_t m;
    unsigned long total = 0;

    if (argc != 5 || sodium_init() < 0)
        return 2;
    threads = (int)strtol(argv[1], NULL, 10);
    secs = strtod(argv[2], NULL);
    t = strtoull(argv[3], NULL, 10);
    m = (size_t)strtoull(argv[4], NULL, 10) * 1024;
    if (threads < 1 || threads > 64 || secs <= 0 || secs > 600)
        return 2;
    if (crypto_pwhash_str(hash, "girafe tambour nuage citron", 27, t, m) != 0)
        return 1;
    t0 = now();
    deadline = t0 + secs;
    for (i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, run, &counts[i]);
    for (i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += counts[i];
    }
    printf("verifies_per_s %.1f\n", total / (now() - t0));
    return 0;
}
