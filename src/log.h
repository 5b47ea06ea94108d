/*
 * log.h - the daemon's log: one JSON object per line on stderr (DESIGN.md
 * section 9).  Messages are lower case, no final full stop; fields carry
 * request ids, rule names and counts - never a secret, never a personal
 * datum, never a request body.  Thread-safe: each line is one write(2).
 */
#ifndef COFFRE_LOG_H
#define COFFRE_LOG_H

#include "err.h"

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Lines below min are dropped (default LOG_INFO). */
void log_set_level(enum log_level min);

/*
 * Logs msg with extra key/value string pairs, NULL-terminated:
 *     log_kv(LOG_INFO, "audit checkpoint", "epoch", "12", "seq", "4096", NULL);
 * Keys and values are JSON-escaped; control characters become \uXXXX.
 */
void log_kv(enum log_level lvl, const char *msg, ...);

void log_info(const char *fmt, ...) PRINTF(1, 2);
void log_warnx(const char *fmt, ...) PRINTF(1, 2);
void log_error(const char *fmt, ...) PRINTF(1, 2);

#endif
