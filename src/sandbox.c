/*
 * sandbox.c - the privilege drop and the seccomp allow-list of `coffre
 * serve` (sandbox.h; the list and the reason for each entry are in
 * docs/hardening.md).
 */
#define _GNU_SOURCE             /* getresuid, REG_RAX, si_syscall */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"
#include "banned.h"

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41   /* glibc >= 2.38 names its stacks with it */
#endif

/* An AddressSanitizer build: its runtime (LeakSanitizer's exit-time
 * scan) needs a few more calls.  Never a production build. */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_SANITIZED 1
#endif
#endif
#ifndef SANDBOX_SANITIZED
#define SANDBOX_SANITIZED 0
#endif

/* Files checked in the data directory before a drop; a real one has 8. */
#define SANDBOX_DIR_ENTRIES_MAX 4096

int
sandbox_mode_parse(const char *s, enum sandbox_mode *out)
{
    if (s == NULL)
        return -1;
    if (strcmp(s, "kill") == 0)
        *out = SANDBOX_KILL;
    else if (strcmp(s, "log") == 0)
        *out = SANDBOX_LOG;
    else if (strcmp(s, "off") == 0)
        *out = SANDBOX_OFF;
    else
        return -1;
    return 0;
}

const char *
sandbox_mode_name(enum sandbox_mode m)
{
    switch (m) {
    case SANDBOX_KILL: return "kill";
    case SANDBOX_LOG: return "log";
    case SANDBOX_OFF: return "off";
    }
    return "?";
}

/* ---- the user ----------------------------------------------------------- */

enum cf_err
sandbox_user_lookup(const char *name, struct sandbox_user *u, struct cf_errmsg *em)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    size_t n = name != NULL ? strlen(name) : 0;
    int err;

    if (n == 0 || n > SANDBOX_USER_MAX)
        return cf_fail(em, CF_ERR_INPUT, "--user: a user name of 1 to %d bytes",
                       SANDBOX_USER_MAX);
    err = getpwnam_r(name, &pw, buf, sizeof buf, &res);
    if (err != 0 || res == NULL)
        return cf_fail(em, CF_ERR_INPUT, "--user '%s': no such user", name);
    if (pw.pw_uid == 0 || pw.pw_gid == 0)
        return cf_fail(em, CF_ERR_INPUT, "--user '%s': uid or gid 0 is root; name an "
                       "unprivileged user", name);
    u->uid = pw.pw_uid;
    u->gid = pw.pw_gid;
    memcpy(u->name, name, n + 1);
    return CF_OK;
}

enum cf_err
sandbox_check_root(const struct sandbox_user *u, int *drop, struct cf_errmsg *em)
{
    *drop = 0;
    if (geteuid() == 0 || getuid() == 0) {
        if (u == NULL)
            return cf_fail(em, CF_ERR_DENIED, "refusing to serve as root: give --user NAME "
                           "(the data directory's owner) or start as that user");
        *drop = 1;
        return CF_OK;
    }
    if (u != NULL && (u->uid != getuid() || u->gid != getgid()))
        return cf_fail(em, CF_ERR_DENIED, "--user '%s': only root can switch users; "
                       "start as that user instead", u->name);
    return CF_OK;
}

static enum cf_err
owned(const char *path, const struct stat *sb, const struct sandbox_user *u,
      struct cf_errmsg *em)
{
    if (sb->st_uid != u->uid)
        return cf_fail(em, CF_ERR_DENIED, "'%s' belongs to uid %u, not to '%s' (uid %u), "
                       "who must be able to rewrite it once root is dropped (chown -R %s '%s')",
                       path, (unsigned)sb->st_uid, u->name, (unsigned)u->uid, u->name, path);
    return CF_OK;
}

enum cf_err
sandbox_check_owner(const char *path, int entries, const struct sandbox_user *u,
                    struct cf_errmsg *em)
{
    struct stat sb;
    struct dirent *de;
    enum cf_err rc;
    DIR *d;
    size_t n = 0;

    if (lstat(path, &sb) != 0)
        return cf_fail(em, CF_ERR_IO, "'%s': %s", path, strerror(errno));
    if ((rc = owned(path, &sb, u, em)) != CF_OK || !S_ISDIR(sb.st_mode) || !entries)
        return rc;
    d = opendir(path);
    if (d == NULL)
        return cf_fail(em, CF_ERR_IO, "'%s': cannot list: %s", path, strerror(errno));
    while ((de = readdir(d)) != NULL && n++ < SANDBOX_DIR_ENTRIES_MAX) {
        char p[4096];

        /* serve.lock is opened as root, before the drop (sandbox_give) */
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            strcmp(de->d_name, "serve.lock") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        if (lstat(p, &sb) != 0) {
            rc = cf_fail(em, CF_ERR_IO, "'%s': %s", p, strerror(errno));
            break;
        }
        if ((rc = owned(p, &sb, u, em)) != CF_OK)
            break;
    }
    closedir(d);
    if (rc == CF_OK && n > SANDBOX_DIR_ENTRIES_MAX)
        rc = cf_fail(em, CF_ERR_LIMIT, "'%s': more than %d entries; not a data directory",
                     path, SANDBOX_DIR_ENTRIES_MAX);
    return rc;
}

enum cf_err
sandbox_give(const char *path, const struct sandbox_user *u, struct cf_errmsg *em)
{
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    enum cf_err rc = CF_OK;

    if (fd < 0)
        return cf_fail(em, CF_ERR_IO, "'%s': cannot open: %s", path, strerror(errno));
    if (fchown(fd, u->uid, u->gid) != 0)
        rc = cf_fail(em, CF_ERR_IO, "'%s': cannot give it to '%s': %s", path, u->name,
                     strerror(errno));
    close(fd);
    return rc;
}

enum cf_err
sandbox_drop(const struct sandbox_user *u, struct cf_errmsg *em)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg, groups[2];
    int n;

    if (setgroups(1, &u->gid) != 0 || setgid(u->gid) != 0 || setuid(u->uid) != 0)
        return cf_fail(em, CF_ERR_DENIED, "cannot become '%s': %s", u->name, strerror(errno));
    /* Verify, do not trust: every id, the group list, and no way back. */
    if (getresuid(&ru, &eu, &su) != 0 || ru != u->uid || eu != u->uid || su != u->uid ||
        getresgid(&rg, &eg, &sg) != 0 || rg != u->gid || eg != u->gid || sg != u->gid)
        return cf_fail(em, CF_ERR_DENIED, "became '%s' only in part", u->name);
    n = getgroups(2, groups);
    if (n != 1 || groups[0] != u->gid)
        return cf_fail(em, CF_ERR_DENIED, "'%s': supplementary groups remain", u->name);
    if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0)
        return cf_fail(em, CF_ERR_DENIED, "'%s': root could be regained", u->name);
    /* A change of ids resets it to the system default: set it again. */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    return CF_OK;
}

/* ---- the allow-list ----------------------------------------------------- */

/* Allowed whatever their arguments (the reasons: docs/hardening.md). */
static const char *const allowed[] = {
    /* memory (mmap and mprotect: below, never W+X) */
    "brk", "munmap", "mremap", "madvise", "mlock", "munlock",
    /* threads, locks, signals (clone: below, threads only) */
    "futex", "set_robust_list", "rseq", "sched_yield", "sched_getaffinity", "gettid",
    "getpid", "rt_sigprocmask", "rt_sigreturn", "rt_sigaction", "restart_syscall",
    "exit", "exit_group",
    /* time */
    "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
    /* files: the data directory's, the log, web/ templates, /proc/self */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "lseek", "open", "openat", "close", "fstat", "newfstatat", "stat", "lstat", "statx",
    "fsync", "fdatasync", "ftruncate", "fallocate", "rename", "renameat", "renameat2",
    "unlink", "unlinkat", "fcntl", "flock", "access", "faccessat", "faccessat2",
    "getcwd", "readlink", "readlinkat", "getdents64", "fchmod", "umask",
    /* network: the listening socket's connections, outbound clients (an
     * alert webhook, DNS); socket and socketpair: below, by family */
    "accept", "accept4", "connect", "shutdown", "sendto", "recvfrom", "sendmsg",
    "recvmsg", "sendmmsg", "recvmmsg", "setsockopt", "getsockopt", "getsockname",
    "getpeername", "poll", "ppoll", "select", "pselect6", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd2", "pipe", "pipe2",
    /* the rest */
    "getrandom", "uname", "getuid", "geteuid", "getgid", "getegid", "getresuid",
    "getresgid", "getgroups", "sysinfo", "getrusage", "prlimit64", "getpriority",
    NULL
};

#if SANDBOX_SANITIZED
/* LeakSanitizer stops the world at exit: a tracer process (clone without
 * CLONE_THREAD), ptrace on each thread, waitpid, a private stack. */
static const char *const sanitizer_extra[] = {
    "ptrace", "wait4", "waitid", "sigaltstack", "kill", "tgkill", "getppid", "getdents",
    NULL
};
#endif

const char *const *
sandbox_allowed(void)
{
    return allowed;
}

/* ---- log mode: SIGSYS names the call and makes it fail with ENOSYS ---- */

#define SANDBOX_NAMES 512       /* past the highest x86_64 / aarch64 number */
static const char *sys_names[SANDBOX_NAMES];

static size_t
put(char *buf, size_t cap, size_t len, const char *s)
{
    while (*s != '\0' && len + 1 < cap)
        buf[len++] = *s++;
    return len;
}

static void
on_sigsys(int sig, siginfo_t *si, void *ucv)
{
    char line[256], num[16];
    int saved = errno, nr = si->si_syscall, i = (int)sizeof num - 1;
    unsigned v = nr < 0 ? 0u : (unsigned)nr;
    size_t len = 0;

    (void)sig;
    num[i] = '\0';
    do {
        num[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 && i > 0);
    len = put(line, sizeof line, len, "{\"level\":\"error\",\"msg\":\"seccomp: forbidden "
              "system call (log mode: it failed with ENOSYS)\",\"syscall\":\"");
    len = put(line, sizeof line, len,
              nr >= 0 && nr < SANDBOX_NAMES && sys_names[nr] != NULL ? sys_names[nr] : "?");
    len = put(line, sizeof line, len, "\",\"nr\":\"");
    len = put(line, sizeof line, len, num + i);
    len = put(line, sizeof line, len, "\"}\n");
    (void)!write(STDERR_FILENO, line, len);
#if defined(__x86_64__)
    ((ucontext_t *)ucv)->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
#elif defined(__aarch64__)
    ((ucontext_t *)ucv)->uc_mcontext.regs[0] = (unsigned long long)-ENOSYS;
#else
    (void)ucv;
#endif
    errno = saved;
}

#if defined(__x86_64__) || defined(__aarch64__)
#define SANDBOX_CAN_TRAP 1
#else
#define SANDBOX_CAN_TRAP 0      /* log mode: the kernel's SECCOMP_RET_LOG */
#endif

static enum cf_err
trap_sigsys(struct cf_errmsg *em)
{
    struct sigaction sa;
    int nr;

    for (nr = 0; nr < SANDBOX_NAMES; nr++)
        sys_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) != 0)
        return cf_fail(em, CF_ERR_IO, "seccomp: cannot catch SIGSYS: %s", strerror(errno));
    return CF_OK;
}

/* seccomp_rule_add for a name this architecture may not have. */
static int
rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
     const struct scmp_arg_cmp *cmp)
{
    int nr = seccomp_syscall_resolve_name(name);

    if (nr == __NR_SCMP_ERROR || nr < 0)
        return 0;               /* not a call here: nothing to allow */
    return seccomp_rule_add_array(ctx, action, nr, n, cmp);
}

/* libseccomp's SCMP_An() leave datum_b out: clang's -Wextra objects */
static struct scmp_arg_cmp
arg(unsigned n, enum scmp_compare op, uint64_t a, uint64_t b)
{
    struct scmp_arg_cmp c;

    c.arg = n;
    c.op = op;
    c.datum_a = a;
    c.datum_b = b;
    return c;
}

static int
allow_if(scmp_filter_ctx ctx, const char *name, struct scmp_arg_cmp c)
{
    return rule(ctx, SCMP_ACT_ALLOW, name, 1, &c);
}

static int
add_rules(scmp_filter_ctx ctx)
{
    const uint64_t wx = PROT_WRITE | PROT_EXEC;
    const char *const *p;
    int r = 0;

    for (p = allowed; *p != NULL && r == 0; p++)
        r = rule(ctx, SCMP_ACT_ALLOW, *p, 0, NULL);
#if SANDBOX_SANITIZED
    for (p = sanitizer_extra; *p != NULL && r == 0; p++)
        r = rule(ctx, SCMP_ACT_ALLOW, *p, 0, NULL);
    if (r == 0)
        r = rule(ctx, SCMP_ACT_ALLOW, "clone", 0, NULL);
    if (r == 0)
        r = rule(ctx, SCMP_ACT_ALLOW, "prctl", 0, NULL);
#else
    /* threads only: no fork, so nothing to exec either */
    if (r == 0)
        r = allow_if(ctx, "clone", arg(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    /* naming a thread or a mapping; nothing that changes the process */
    if (r == 0)
        r = allow_if(ctx, "prctl", arg(0, SCMP_CMP_EQ, PR_SET_NAME, 0));
    if (r == 0)
        r = allow_if(ctx, "prctl", arg(0, SCMP_CMP_EQ, PR_GET_NAME, 0));
    if (r == 0)
        r = allow_if(ctx, "prctl", arg(0, SCMP_CMP_EQ, PR_SET_VMA, 0));
    /* a signal to our own threads only (abort, raise) */
    if (r == 0)
        r = allow_if(ctx, "tgkill", arg(0, SCMP_CMP_EQ, (uint64_t)getpid(), 0));
#endif
    /* clone3 passes its flags in memory a filter cannot read: ENOSYS
     * makes glibc fall back to clone, which is checked above */
    if (r == 0)
        r = rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);
    /* memory is writable or executable, never both, and nothing already
     * mapped becomes executable (what MemoryDenyWriteExecute= does) */
    if (r == 0)
        r = allow_if(ctx, "mmap", arg(2, SCMP_CMP_MASKED_EQ, wx, 0));
    if (r == 0)
        r = allow_if(ctx, "mmap", arg(2, SCMP_CMP_MASKED_EQ, wx, PROT_WRITE));
    if (r == 0)
        r = allow_if(ctx, "mmap", arg(2, SCMP_CMP_MASKED_EQ, wx, PROT_EXEC));
    if (r == 0)
        r = allow_if(ctx, "mprotect", arg(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    /* sockets: IP and local ones, and the routing table getaddrinfo reads */
    if (r == 0)
        r = allow_if(ctx, "socket", arg(0, SCMP_CMP_EQ, AF_INET, 0));
    if (r == 0)
        r = allow_if(ctx, "socket", arg(0, SCMP_CMP_EQ, AF_INET6, 0));
    if (r == 0)
        r = allow_if(ctx, "socket", arg(0, SCMP_CMP_EQ, AF_UNIX, 0));
    if (r == 0) {
        struct scmp_arg_cmp nl[2] = { arg(0, SCMP_CMP_EQ, AF_NETLINK, 0),
                                      arg(2, SCMP_CMP_EQ, NETLINK_ROUTE, 0) };

        r = rule(ctx, SCMP_ACT_ALLOW, "socket", 2, nl);
    }
    if (r == 0)
        r = allow_if(ctx, "socketpair", arg(0, SCMP_CMP_EQ, AF_UNIX, 0));
    /* ioctl: bytes waiting, non-blocking, "is it a terminal" (stdio) */
    if (r == 0)
        r = allow_if(ctx, "ioctl", arg(1, SCMP_CMP_EQ, FIONREAD, 0));
    if (r == 0)
        r = allow_if(ctx, "ioctl", arg(1, SCMP_CMP_EQ, FIONBIO, 0));
    if (r == 0)
        r = allow_if(ctx, "ioctl", arg(1, SCMP_CMP_EQ, TCGETS, 0));
    return r;
}

enum cf_err
sandbox_seccomp(enum sandbox_mode m, struct cf_errmsg *em)
{
    uint32_t deny = SCMP_ACT_KILL_PROCESS;
    scmp_filter_ctx ctx;
    enum cf_err rc = CF_OK;
    int r;

    if (m == SANDBOX_OFF) {
        log_kv(LOG_WARN, "seccomp: off (--seccomp off): every system call is allowed",
               (const char *)NULL);
        return CF_OK;
    }
    if (m == SANDBOX_LOG) {
        if (SANDBOX_CAN_TRAP) {
            if ((rc = trap_sigsys(em)) != CF_OK)
                return rc;
            deny = SCMP_ACT_TRAP;
        } else
            deny = SCMP_ACT_LOG;
    }
    ctx = seccomp_init(deny);
    if (ctx == NULL)
        return cf_fail(em, CF_ERR_NOMEM, "seccomp: cannot start a filter");
    /* a call through another ABI (x32, i386) kills the whole process */
    if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) != 0 ||
        (r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1)) != 0 ||
        (r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) != 0 ||
        /* a binary tree of syscall numbers, not a chain of ~130 tests:
         * every call of every thread pays for the filter */
        (r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)) != 0 ||
        (r = add_rules(ctx)) != 0) {
        rc = cf_fail(em, CF_ERR_IO, "seccomp: cannot build the filter: %s", strerror(-r));
        goto out;
    }
    if ((r = seccomp_load(ctx)) != 0) {
        rc = cf_fail(em, CF_ERR_IO, "seccomp: cannot install the filter: %s", strerror(-r));
        goto out;
    }
    log_kv(LOG_INFO, "seccomp: allow-list installed", "mode", sandbox_mode_name(m),
           "sanitized", SANDBOX_SANITIZED ? "yes" : "no", (const char *)NULL);
out:
    seccomp_release(ctx);
    return rc;
}

/* ---- `coffre sandbox-selftest` ------------------------------------------ */

struct selftest {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go;
    const char *call;
    long ret;
    int err;
};

/* The forbidden call, with arguments that do no harm when it is allowed
 * (--seccomp off): a pid that does not exist, a path that does not. */
static long
forbidden(const char *call)
{
    char *const none[] = { NULL };
    long r = -1;

    errno = 0;
    if (strcmp(call, "ptrace") == 0)
        r = syscall(SYS_ptrace, 3 /* PTRACE_PEEKUSER */, 0, 0, 0);
    else if (strcmp(call, "execve") == 0)
        r = syscall(SYS_execve, "/nonexistent/coffre-selftest", none, none);
    else if (strcmp(call, "mount") == 0)
        r = syscall(SYS_mount, NULL, NULL, NULL, 0, NULL);
    else if (strcmp(call, "setuid") == 0)
        r = syscall(SYS_setuid, getuid());
    else if (strcmp(call, "fork") == 0) {
        r = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (r == 0)
            _exit(0);
        if (r > 0)
            (void)waitpid((pid_t)r, NULL, 0);
    } else if (strcmp(call, "wx-mmap") == 0) {
        void *p = mmap(NULL, 4096, PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        r = p == MAP_FAILED ? -1 : 0;
        if (p != MAP_FAILED)
            munmap(p, 4096);
    } else if (strcmp(call, "packet-socket") == 0) {
        r = socket(17 /* AF_PACKET */, SOCK_RAW, 0);
        if (r >= 0)
            close((int)r);
    }
    return r;
}

static void *
selftest_thread(void *arg)
{
    struct selftest *st = arg;

    pthread_mutex_lock(&st->mu);
    while (!st->go)
        pthread_cond_wait(&st->cv, &st->mu);
    pthread_mutex_unlock(&st->mu);
    st->ret = forbidden(st->call);
    st->err = errno;
    return NULL;
}

static void *
noop_thread(void *arg)
{
    return arg;
}

/* What the server needs must still work under the filter. */
static int
allowed_calls_work(char *status, size_t cap)
{
    unsigned char b[16];
    pthread_t t;
    FILE *f;
    int s;

    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        return -1;
    if ((s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    close(s);
    if (pthread_create(&t, NULL, noop_thread, NULL) != 0 || pthread_join(t, NULL) != 0)
        return -1;
    f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    status[0] = '\0';
    while (fgets(status, (int)cap, f) != NULL && strncmp(status, "Seccomp:", 8) != 0)
        status[0] = '\0';
    fclose(f);
    status[strcspn(status, "\n")] = '\0';
    return 0;
}

static const char *const selftest_calls[] = {
    "ptrace", "execve", "mount", "setuid", "fork", "wx-mmap", "packet-socket", NULL
};

int
sandbox_selftest(enum sandbox_mode m, const char *call)
{
    struct selftest st = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, call, 0, 0 };
    struct cf_errmsg em = { "" };
    const char *const *c;
    char status[128];
    pthread_t t;

    for (c = selftest_calls; *c != NULL && strcmp(*c, call) != 0; c++)
        ;
    if (*c == NULL) {
        fprintf(stderr, "sandbox-selftest: --call: one of ptrace, execve, mount, setuid, "
                "fork, wx-mmap, packet-socket\n");
        return 2;
    }
    /* a thread started before the filter, as the server's are */
    if (pthread_create(&t, NULL, selftest_thread, &st) != 0) {
        fprintf(stderr, "sandbox-selftest: cannot start a thread\n");
        return 1;
    }
    if (sandbox_seccomp(m, &em) != CF_OK) {
        fprintf(stderr, "sandbox-selftest: %s\n", em.msg);
        return 1;
    }
    if (allowed_calls_work(status, sizeof status) != 0) {
        fprintf(stderr, "sandbox-selftest: an allowed call failed: %s\n", strerror(errno));
        return 1;
    }
    printf("filter installed, mode %s (%s); allowed calls work: thread, file, socket, "
           "getrandom\n", sandbox_mode_name(m), status);
    fflush(stdout);
    pthread_mutex_lock(&st.mu);
    st.go = 1;
    pthread_cond_signal(&st.cv);
    pthread_mutex_unlock(&st.mu);
    pthread_join(t, NULL);
    printf("forbidden call '%s' from a thread started before the filter: returned %ld (%s)\n",
           call, st.ret, st.ret < 0 ? strerror(st.err) : "no error");
    if (m == SANDBOX_LOG)
        return st.ret < 0 && st.err == ENOSYS ? 0 : 1;
    /* kill never gets here; off: the call ran */
    return m == SANDBOX_OFF ? 0 : 1;
}
