/*
 * err.h - the one closed set of results every coffre function returns.
 *
 * Functions return enum cf_err; details go to the log or to an error
 * string the caller passes in, never into the code itself.  The mapping to
 * HTTP statuses and CLI exit codes lives in one place each (http.c, main.c).
 */
#ifndef COFFRE_ERR_H
#define COFFRE_ERR_H

#include <stddef.h>

enum cf_err {
    CF_OK = 0,
    CF_ERR_NOMEM,       /* allocation failed */
    CF_ERR_INPUT,       /* caller-supplied value invalid */
    CF_ERR_AUTH,        /* credential or MAC did not verify */
    CF_ERR_DENIED,      /* not allowed */
    CF_ERR_NOTFOUND,    /* no such thing */
    CF_ERR_EXISTS,      /* a unique value already present */
    CF_ERR_LIMIT,       /* a bound in bounds.h exceeded */
    CF_ERR_STORE,       /* the store failed or is incompatible */
    CF_ERR_CRYPTO,      /* a key is missing or a ciphertext does not open */
    CF_ERR_IO,          /* a file could not be read or written */
};

/* Static, lower-case description of rc; never NULL. */
const char *cf_err_str(enum cf_err rc);

/*
 * Error detail the callee fills for a human: one line naming the field or
 * file and why.  Never holds a secret or a personal datum.
 */
#define CF_ERRMSG_MAX 256
struct cf_errmsg {
    char msg[CF_ERRMSG_MAX];
};

#if defined(__GNUC__)
#define WARN_UNUSED __attribute__((warn_unused_result))
#define PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define WARN_UNUSED
#define PRINTF(a, b)
#endif

/* Formats into em (if non-NULL) and returns rc, so callers can
 * `return cf_fail(em, CF_ERR_INPUT, "ine: bad check letter")`. */
enum cf_err cf_fail(struct cf_errmsg *em, enum cf_err rc, const char *fmt, ...)
    PRINTF(3, 4);

#endif
