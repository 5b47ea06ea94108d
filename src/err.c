/*
 * err.c - names of the result codes and the error-detail helper.
 */
#include <stdarg.h>
#include <stdio.h>

#include "err.h"
#include "banned.h"

const char *
cf_err_str(enum cf_err rc)
{
    switch (rc) {
    case CF_OK:           return "ok";
    case CF_ERR_NOMEM:    return "out of memory";
    case CF_ERR_INPUT:    return "invalid input";
    case CF_ERR_AUTH:     return "authentication failed";
    case CF_ERR_DENIED:   return "denied";
    case CF_ERR_NOTFOUND: return "not found";
    case CF_ERR_EXISTS:   return "already exists";
    case CF_ERR_LIMIT:    return "limit exceeded";
    case CF_ERR_STORE:    return "store error";
    case CF_ERR_CRYPTO:   return "cryptographic failure";
    case CF_ERR_IO:       return "i/o error";
    }
    return "unknown error";
}

enum cf_err
cf_fail(struct cf_errmsg *em, enum cf_err rc, const char *fmt, ...)
{
    va_list ap;

    if (em == NULL)
        return rc;
    va_start(ap, fmt);
    vsnprintf(em->msg, sizeof em->msg, fmt, ap);
    va_end(ap);
    return rc;
}
