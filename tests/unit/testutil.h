/*
 * testutil.h - small helpers shared by the cmocka suites: temporary
 * directories (removed at the end) and whole-file reads.
 */
#ifndef COFFRE_TESTUTIL_H
#define COFFRE_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Makes a fresh directory under $TMPDIR (or /tmp); path is static. */
static inline const char *
tu_tmpdir(void)
{
    static char path[256];
    const char *base = getenv("TMPDIR");

    snprintf(path, sizeof path, "%s/coffre-test-XXXXXX", base ? base : "/tmp");
    if (mkdtemp(path) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    return path;
}

/* Removes a directory tree made by tu_tmpdir. */
static inline void
tu_rmrf(const char *path)
{
    char cmd[512];

    if (strncmp(path, "/tmp/", 5) != 0 && getenv("TMPDIR") == NULL)
        return;                         /* never outside the temp area */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
}

/* Reads a whole file; *len set; NULL if it does not exist.  Caller frees. */
static inline unsigned char *
tu_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;

    *len = 0;
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf != NULL)
        *len = (size_t)n;
    return buf;
}

/* Writes a whole file (mode from umask). 0 on success. */
static inline int
tu_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int rc;

    if (f == NULL)
        return -1;
    rc = fwrite(data, 1, len, f) == len ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

#endif
