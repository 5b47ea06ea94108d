/*
 * test_sandbox.c - unit tests of sandbox.c that need no privileges and do
 * not install a filter in the test process: mode names, the user lookup
 * and its bounds, the root decision, the ownership check, and the
 * allow-list itself (every name a real call here, none of the calls it
 * exists to forbid).  The filter, the drop and SIGSYS are tested end to
 * end in tests/e2e/sandbox.test.mjs.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "../../src/sandbox.c"

static void
test_modes(void **state)
{
    enum sandbox_mode m = SANDBOX_OFF;
    const char *names[] = { "kill", "log", "off" };
    size_t i;

    (void)state;
    for (i = 0; i < 3; i++) {
        assert_int_equal(sandbox_mode_parse(names[i], &m), 0);
        assert_string_equal(sandbox_mode_name(m), names[i]);
    }
    m = SANDBOX_LOG;
    assert_int_equal(sandbox_mode_parse("KILL", &m), -1);
    assert_int_equal(sandbox_mode_parse("", &m), -1);
    assert_int_equal(sandbox_mode_parse("kill ", &m), -1);
    assert_int_equal(sandbox_mode_parse(NULL, &m), -1);
    assert_int_equal(m, SANDBOX_LOG);           /* untouched on error */
}

static void
test_user_lookup(void **state)
{
    struct sandbox_user u;
    struct cf_errmsg em = { "" };
    char longname[SANDBOX_USER_MAX + 2];

    (void)state;
    assert_int_equal(sandbox_user_lookup("root", &u, &em), CF_ERR_INPUT);
    assert_non_null(strstr(em.msg, "root"));
    assert_int_equal(sandbox_user_lookup("", &u, &em), CF_ERR_INPUT);
    assert_int_equal(sandbox_user_lookup(NULL, &u, &em), CF_ERR_INPUT);
    assert_int_equal(sandbox_user_lookup("no-such-user-coffre", &u, &em), CF_ERR_INPUT);
    assert_non_null(strstr(em.msg, "no such user"));
    /* SANDBOX_USER_MAX bytes is looked up (and absent), one more refused */
    memset(longname, 'x', sizeof longname);
    longname[SANDBOX_USER_MAX] = '\0';
    assert_int_equal(sandbox_user_lookup(longname, &u, &em), CF_ERR_INPUT);
    assert_non_null(strstr(em.msg, "no such user"));
    longname[SANDBOX_USER_MAX] = 'x';
    longname[SANDBOX_USER_MAX + 1] = '\0';
    assert_int_equal(sandbox_user_lookup(longname, &u, &em), CF_ERR_INPUT);
    assert_non_null(strstr(em.msg, "1 to 32 bytes"));
    if (getpwnam("nobody") != NULL) {
        assert_int_equal(sandbox_user_lookup("nobody", &u, &em), CF_OK);
        assert_string_equal(u.name, "nobody");
        assert_true(u.uid != 0 && u.gid != 0);
    }
}

static void
test_check_root(void **state)
{
    struct sandbox_user self = { getuid(), getgid(), "self" }, other = self;
    struct cf_errmsg em = { "" };
    int drop = -1;

    (void)state;
    other.uid += 1;
    if (geteuid() == 0) {
        assert_int_equal(sandbox_check_root(NULL, &drop, &em), CF_ERR_DENIED);
        assert_non_null(strstr(em.msg, "refusing to serve as root"));
        assert_int_equal(sandbox_check_root(&other, &drop, &em), CF_OK);
        assert_int_equal(drop, 1);
    } else {
        assert_int_equal(sandbox_check_root(NULL, &drop, &em), CF_OK);
        assert_int_equal(drop, 0);
        assert_int_equal(sandbox_check_root(&self, &drop, &em), CF_OK);
        assert_int_equal(drop, 0);
        assert_int_equal(sandbox_check_root(&other, &drop, &em), CF_ERR_DENIED);
    }
}

static void
test_check_owner(void **state)
{
    char dir[] = "/tmp/coffre-test-sandbox-XXXXXX", file[64];
    struct sandbox_user me = { geteuid(), getegid(), "me" }, other = me;
    struct cf_errmsg em = { "" };
    FILE *f;

    (void)state;
    other.uid += 1;
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/coffre.db", dir);
    f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(sandbox_check_owner(dir, 1, &me, &em), CF_OK);
    assert_int_equal(sandbox_check_owner(dir, 1, &other, &em), CF_ERR_DENIED);
    assert_non_null(strstr(em.msg, "chown -R"));
    assert_int_equal(sandbox_check_owner("/nonexistent/coffre", 1, &me, &em), CF_ERR_IO);
    if (geteuid() == 0) {       /* a file inside that is not the user's */
        assert_int_equal(chown(file, me.uid + 1, me.gid), 0);
        assert_int_equal(sandbox_check_owner(dir, 0, &me, &em), CF_OK);
        assert_int_equal(sandbox_check_owner(dir, 1, &me, &em), CF_ERR_DENIED);
        assert_non_null(strstr(em.msg, "coffre.db"));
    }
    unlink(file);
    rmdir(dir);
}

static void
test_allow_list(void **state)
{
    static const char *const never[] = {
        "execve", "execveat", "fork", "vfork", "ptrace", "process_vm_readv", "mount",
        "umount2", "chroot", "pivot_root", "setuid", "setgid", "setgroups", "setresuid",
        "kill", "bind", "listen", "chown", "fchown", "mkdir", "mknod", "bpf",
        "perf_event_open", "init_module", "kexec_load", "unshare", "setns", "seccomp",
        "personality", "io_uring_setup", "userfaultfd", "keyctl", "clone", "clone3",
        "mmap", "mprotect", "socket", "ioctl", "prctl", "tgkill", NULL
    };
    const char *const *a = sandbox_allowed(), *const *n;
    size_t count = 0;

    (void)state;
    for (; *a != NULL; a++, count++) {
        for (n = never; *n != NULL; n++)
            assert_string_not_equal(*a, *n);    /* conditional ones are rules, not here */
#if defined(__x86_64__)
        assert_true(seccomp_syscall_resolve_name(*a) >= 0);
#endif
    }
    assert_true(count > 80 && count < 140);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_user_lookup),
        cmocka_unit_test(test_check_root),
        cmocka_unit_test(test_check_owner),
        cmocka_unit_test(test_allow_list),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
