/*
 * replay.c - main() for a fuzz target built without libFuzzer (gcc, the
 * project's CFLAGS): feeds every saved corpus file to
 * LLVMFuzzerTestOneInput, so `make test` keeps each input that once found
 * a bug (or reached new code) passing.  Never mutates an input, never
 * writes a file.
 *
 *     fuzz_ids DIR|FILE...
 *
 * Each input runs in a forked child, so one failing input (an invariant's
 * abort, a crash, a hang past FZ_REPLAY_TIMEOUT_S) is reported by name and
 * the others still run.  The target's LLVMFuzzerInitialize runs once, in
 * the parent, before the first fork.  Prints one summary line,
 * "<target>: N inputs replayed, F failures", and exits 1 when F > 0.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"

/* An input that takes longer is a hang: the slowest target needs
 * milliseconds per input. */
#define FZ_REPLAY_TIMEOUT_S 10
/* libFuzzer's saved inputs are bounded by each target's -max_len; this
 * only stops a stray huge file from being read whole. */
#define FZ_REPLAY_MAX_BYTES (1u << 20)

static const char *prog = "replay";

/* Reads path whole into an exactly sized buffer (so an over-read past the
 * input is past the allocation); NULL on error.  The caller frees. */
static uint8_t *
read_input(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat sb;
    uint8_t *buf;

    *len = 0;
    if (f == NULL)
        return NULL;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < 0 ||
        (unsigned long long)sb.st_size > FZ_REPLAY_MAX_BYTES) {
        fclose(f);
        return NULL;
    }
    buf = malloc(sb.st_size > 0 ? (size_t)sb.st_size : 1);
    if (buf == NULL ||
        fread(buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = (size_t)sb.st_size;
    return buf;
}

/* Runs one input in a child; 0 when it returned normally. */
static int
replay_one(const char *path)
{
    uint8_t *buf;
    size_t len;
    pid_t pid;
    int status;

    buf = read_input(path, &len);
    if (buf == NULL) {
        fprintf(stderr, "%s: FAIL %s: cannot read: %s\n", prog, path,
                errno != 0 ? strerror(errno) : "too large");
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: FAIL %s: fork: %s\n", prog, path, strerror(errno));
        free(buf);
        return -1;
    }
    if (pid == 0) {
        alarm(FZ_REPLAY_TIMEOUT_S);
        LLVMFuzzerTestOneInput(buf, len);
        fflush(NULL);
        _exit(0);               /* no atexit handlers: they are the parent's */
    }
    free(buf);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "%s: FAIL %s: waitpid: %s\n", prog, path, strerror(errno));
            return -1;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "%s: FAIL %s: killed by signal %d%s\n", prog, path,
                WTERMSIG(status), WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    else
        fprintf(stderr, "%s: FAIL %s: exit status %d\n", prog, path,
                WEXITSTATUS(status));
    return -1;
}

static int
skip_name(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

int
main(int argc, char **argv)
{
    size_t done = 0, failed = 0;
    const char *slash;
    int i, j, n;

    slash = strrchr(argv[0], '/');
    prog = slash != NULL ? slash + 1 : argv[0];
    LLVMFuzzerInitialize(&argc, &argv);
    for (i = 1; i < argc; i++) {
        struct dirent **names;
        struct stat sb;

        if (stat(argv[i], &sb) != 0) {
            /* a target without a corpus yet replays nothing */
            if (errno == ENOENT)
                continue;
            fprintf(stderr, "%s: FAIL %s: %s\n", prog, argv[i], strerror(errno));
            failed++;
            continue;
        }
        if (!S_ISDIR(sb.st_mode)) {
            done++;
            failed += replay_one(argv[i]) != 0;
            continue;
        }
        n = scandir(argv[i], &names, skip_name, alphasort);
        if (n < 0) {
            fprintf(stderr, "%s: FAIL %s: %s\n", prog, argv[i], strerror(errno));
            failed++;
            continue;
        }
        for (j = 0; j < n; j++) {
            char path[4096];

            if (snprintf(path, sizeof path, "%s/%s", argv[i], names[j]->d_name)
                    < (int)sizeof path &&
                stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
                done++;
                failed += replay_one(path) != 0;
            }
            free(names[j]);
        }
        free(names);
    }
    printf("%s: %zu inputs replayed, %zu failures\n", prog, done, failed);
    return failed == 0 ? 0 : 1;
}
