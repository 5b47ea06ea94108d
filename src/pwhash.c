/*
 * pwhash.c - the Argon2id worker pool (see pwhash.h).
 *
 * A fixed ring of job pointers guarded by one mutex; workers sleep on a
 * condition variable.  Never logs or copies a password outside the job.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pwhash.h"
#include "banned.h"

#define PWHASH_MAX_WORKERS 64
#define PWHASH_MAX_QUEUE   65536

struct pwhash_pool {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    struct pwhash_job **ring;
    size_t cap, head, count;
    int stopping;
    unsigned nworkers;
    pthread_t workers[PWHASH_MAX_WORKERS];
    unsigned long long opslimit;
    size_t memlimit;
    char dummy[PWHASH_STR_BYTES];
};

static void
run_job(struct pwhash_pool *p, struct pwhash_job *j)
{
    enum cf_err rc = CF_OK;
    size_t len = strnlen(j->password, sizeof j->password);

    if (j->op == PWHASH_HASH) {
        if (crypto_pwhash_str(j->hash, j->password, len, p->opslimit, p->memlimit) != 0)
            rc = CF_ERR_NOMEM;
    } else {
        j->ok = crypto_pwhash_str_verify(j->hash, j->password, len) == 0;
        j->needs_rehash = j->ok &&
            crypto_pwhash_str_needs_rehash(j->hash, p->opslimit, p->memlimit) != 0;
        j->new_hash[0] = '\0';
        /* Rehash while the password is still here; this worker counts in
         * the memory bound either way. */
        if (j->rehash && j->needs_rehash &&
            crypto_pwhash_str(j->new_hash, j->password, len, p->opslimit, p->memlimit) != 0)
            j->new_hash[0] = '\0';
    }
    sodium_memzero(j->password, sizeof j->password);
    if (j->done != NULL)
        j->done(j, rc);
}

static void *
worker(void *arg)
{
    struct pwhash_pool *p = arg;
    struct pwhash_job *j;

    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->count == 0 && !p->stopping)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->count == 0 && p->stopping) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        j = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
        pthread_mutex_unlock(&p->mu);
        run_job(p, j);
    }
}

enum cf_err
pwhash_start(const struct pwhash_opts *o, struct pwhash_pool **out,
             struct cf_errmsg *em)
{
    struct pwhash_pool *p;
    uint8_t rnd[32];
    unsigned i;

    p = calloc(1, sizeof *p);
    if (p == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "pwhash: out of memory");
    p->nworkers = o->workers ? o->workers : 2;
    p->cap = o->queue_max ? o->queue_max : 256;
    p->opslimit = o->opslimit ? o->opslimit : 2;
    p->memlimit = o->memlimit ? o->memlimit : 19u << 20;
    if (p->nworkers > PWHASH_MAX_WORKERS || p->cap > PWHASH_MAX_QUEUE ||
        p->opslimit < crypto_pwhash_OPSLIMIT_MIN || p->memlimit < crypto_pwhash_MEMLIMIT_MIN) {
        free(p);
        return cf_fail(em, CF_ERR_INPUT, "pwhash: workers 1..%d, queue 1..%d, t >= 1, memory >= 8 KiB",
                       PWHASH_MAX_WORKERS, PWHASH_MAX_QUEUE);
    }
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers; one pointer's size is meant */
    p->ring = calloc(p->cap, sizeof *p->ring);
    if (p->ring == NULL) {
        free(p);
        return cf_fail(em, CF_ERR_NOMEM, "pwhash: out of memory");
    }
    /* The dummy hash: of random bytes nobody knows, with our parameters. */
    randombytes_buf(rnd, sizeof rnd);
    if (crypto_pwhash_str(p->dummy, (const char *)rnd, sizeof rnd, p->opslimit, p->memlimit) != 0) {
        size_t mem = p->memlimit;

        free(p->ring);
        free(p);
        return cf_fail(em, CF_ERR_NOMEM, "pwhash: cannot hash (memory limit %zu bytes)", mem);
    }
    sodium_memzero(rnd, sizeof rnd);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (i = 0; i < p->nworkers; i++) {
        if (pthread_create(&p->workers[i], NULL, worker, p) != 0) {
            p->nworkers = i;
            pwhash_stop(p);
            return cf_fail(em, CF_ERR_NOMEM, "pwhash: cannot start worker threads");
        }
    }
    *out = p;
    return CF_OK;
}

void
pwhash_stop(struct pwhash_pool *p)
{
    unsigned i;

    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (i = 0; i < p->nworkers; i++)
        pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->ring);
    free(p);
}

enum cf_err
pwhash_submit(struct pwhash_pool *p, struct pwhash_job *j)
{
    enum cf_err rc = CF_OK;
    size_t len = strnlen(j->password, sizeof j->password);

    if (len == 0 || len > PASSWORD_MAX_BYTES)
        return CF_ERR_INPUT;
    pthread_mutex_lock(&p->mu);
    if (p->stopping || p->count == p->cap)
        rc = CF_ERR_LIMIT;
    else {
        p->ring[(p->head + p->count) % p->cap] = j;
        p->count++;
        pthread_cond_signal(&p->wake);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    enum cf_err rc;
    void (*user_done)(struct pwhash_job *j, enum cf_err rc);
    void *user_arg;
};

static void
wake_waiter(struct pwhash_job *j, enum cf_err rc)
{
    struct waiter *w = j->arg;

    pthread_mutex_lock(&w->mu);
    w->done = 1;
    w->rc = rc;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

enum cf_err
pwhash_run(struct pwhash_pool *p, struct pwhash_job *j)
{
    struct waiter w = { .done = 0, .rc = CF_OK };
    enum cf_err rc;

    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.user_done = j->done;
    w.user_arg = j->arg;
    j->done = wake_waiter;
    j->arg = &w;
    rc = pwhash_submit(p, j);
    if (rc == CF_OK) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = w.rc;
    }
    j->done = w.user_done;
    j->arg = w.user_arg;
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return rc;
}

const char *
pwhash_dummy(const struct pwhash_pool *p)
{
    return p->dummy;
}

size_t
pwhash_queue_depth(struct pwhash_pool *p)
{
    size_t n;

    pthread_mutex_lock(&p->mu);
    n = p->count;
    pthread_mutex_unlock(&p->mu);
    return n;
}

unsigned
pwhash_workers(const struct pwhash_pool *p)
{
    return p->nworkers;
}

size_t
pwhash_memory_bound(const struct pwhash_pool *p)
{
    return (size_t)p->nworkers * p->memlimit;
}
