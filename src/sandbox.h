/*
 * sandbox.h - what `coffre serve` gives up once it is running
 * (docs/hardening.md): root (a verified drop to --user), and every system
 * call a network server holding open files does not need (a seccomp
 * allow-list, libseccomp).  The process-wide basics (umask 077, no core
 * dumps, not dumpable) are set by main() for every command.
 *
 * Order in `serve`: sandbox_user_lookup and sandbox_check_root while
 * parsing flags; then, once the socket is bound, the threads started and
 * every file open, sandbox_drop and finally sandbox_seccomp.
 */
#ifndef COFFRE_SANDBOX_H
#define COFFRE_SANDBOX_H

#include <sys/types.h>

#include "err.h"

enum sandbox_mode {
    SANDBOX_KILL = 0,   /* default: a forbidden call kills the process (SIGSYS) */
    SANDBOX_LOG,        /* a forbidden call is logged and fails with ENOSYS */
    SANDBOX_OFF,        /* no filter (diagnosis only) */
};

/* "kill", "log", "off" -> mode; -1 for anything else. */
int sandbox_mode_parse(const char *s, enum sandbox_mode *out);
const char *sandbox_mode_name(enum sandbox_mode m);

/* A user to become: looked up while /etc/passwd can still be read. */
#define SANDBOX_USER_MAX 32     /* useradd's limit on Debian */
struct sandbox_user {
    uid_t uid;
    gid_t gid;
    char name[SANDBOX_USER_MAX + 1];
};

/* Looks up NAME (CF_ERR_INPUT: unknown, too long, or uid 0). */
enum cf_err sandbox_user_lookup(const char *name, struct sandbox_user *u,
                                struct cf_errmsg *em) WARN_UNUSED;

/*
 * Decides whether a drop is needed.  Running as root without a user:
 * CF_ERR_DENIED.  Running as root with one: *drop = 1.  Not root with
 * no user, or with a user that is already the current one: *drop = 0.
 * Not root with another user: CF_ERR_DENIED (only root can switch).
 */
enum cf_err sandbox_check_root(const struct sandbox_user *u, int *drop,
                               struct cf_errmsg *em) WARN_UNUSED;

/* PATH exists and belongs to u (the server rewrites files in it after
 * the drop, so it must own them), and so does each entry of it when it
 * is a directory and entries is set: CF_ERR_DENIED otherwise. */
enum cf_err sandbox_check_owner(const char *path, int entries, const struct sandbox_user *u,
                                struct cf_errmsg *em) WARN_UNUSED;

/* Creates PATH (0600) if missing and gives it to u: for a file opened
 * before the drop that a later start as u must open too (serve.lock). */
enum cf_err sandbox_give(const char *path, const struct sandbox_user *u,
                         struct cf_errmsg *em) WARN_UNUSED;

/*
 * setgroups(1, {gid}), setgid, setuid, then verifies: real, effective
 * and saved ids are u's, the only supplementary group is u's, and
 * setuid(0) / setgid(0) fail.  Any failure is CF_ERR_DENIED and the
 * caller must exit.  Runs in a threaded process: glibc applies each
 * call to every thread.
 */
enum cf_err sandbox_drop(const struct sandbox_user *u, struct cf_errmsg *em) WARN_UNUSED;

/*
 * Sets no_new_privs and installs the allow-list on every thread of the
 * process (SCMP_FLTATR_CTL_TSYNC).  SANDBOX_OFF: logs that it is off
 * and does nothing.  After it, no exec, no fork, no ptrace, no mount,
 * no new executable memory, no setuid.
 */
enum cf_err sandbox_seccomp(enum sandbox_mode m, struct cf_errmsg *em) WARN_UNUSED;

/*
 * `coffre sandbox-selftest`: installs the same filter (a thread already
 * running), checks that allowed calls work, then makes the forbidden
 * CALL (ptrace, execve, mount, setuid, fork, wx-mmap, packet-socket)
 * from that thread.  kill: the process dies of SIGSYS; log: the call
 * fails with ENOSYS and a log line names it (returns 0); off: it runs.
 * Returns an exit code.
 */
int sandbox_selftest(enum sandbox_mode m, const char *call);

/* The allow-list's system call names, NULL-terminated (docs, tests). */
const char *const *sandbox_allowed(void);

#endif
