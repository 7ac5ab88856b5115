/* The seccomp profile: its lists against Docker's default deny list, then the compiled filter on
 * the real kernel, installed in a child (with no_new_privs, so no root is needed) that reports
 * the errno of each probe back to the test. */
#include <errno.h>
#include <linux/keyctl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "funclet/seccomp.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static bool listed(const char *const *list, const char *name)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], name) == 0)
            return true;
    return false;
}

/* Everything Docker's default profile refuses a container without CAP_SYS_ADMIN (and the other
 * capabilities a function does not have) is refused here too. */
static void test_lists_cover_docker(void **state)
{
    (void)state;
    static const char *const docker_denied[] = {"mount",
                                                "umount2",
                                                "pivot_root",
                                                "swapon",
                                                "swapoff",
                                                "reboot",
                                                "kexec_load",
                                                "kexec_file_load",
                                                "init_module",
                                                "finit_module",
                                                "delete_module",
                                                "bpf",
                                                "perf_event_open",
                                                "keyctl",
                                                "add_key",
                                                "request_key",
                                                "unshare",
                                                "setns",
                                                "ptrace",
                                                "process_vm_readv",
                                                "process_vm_writev",
                                                "open_by_handle_at",
                                                "name_to_handle_at",
                                                "userfaultfd",
                                                "acct",
                                                "quotactl",
                                                "lookup_dcookie",
                                                "syslog",
                                                "settimeofday",
                                                "clock_settime",
                                                "adjtimex",
                                                "clock_adjtime",
                                                "stime",
                                                "iopl",
                                                "ioperm",
                                                "kcmp",
                                                "mbind",
                                                "set_mempolicy",
                                                "move_pages",
                                                "fanotify_init",
                                                "nfsservctl",
                                                "uselib",
                                                "vm86",
                                                "create_module",
                                                "get_kernel_syms",
                                                "query_module",
                                                "_sysctl",
                                                "fsopen",
                                                "fsmount",
                                                "fsconfig",
                                                "move_mount",
                                                "open_tree",
                                                "fspick",
                                                "mount_setattr",
                                                "pidfd_getfd",
                                                "io_uring_setup",
                                                "io_uring_enter",
                                                "io_uring_register",
                                                "chroot",
                                                "sethostname",
                                                "setdomainname",
                                                "vhangup",
                                                NULL};
    for (size_t i = 0; docker_denied[i]; i++) {
        if (!listed(ef_seccomp_denied, docker_denied[i]))
            fail_msg("%s is not denied", docker_denied[i]);
    }
    /* Conditional ones are in neither list, and no name is in both. */
    static const char *const conditional[] = {"clone",  "clone3",     "personality",
                                              "socket", "modify_ldt", NULL};
    for (size_t i = 0; conditional[i]; i++) {
        assert_false(listed(ef_seccomp_allowed, conditional[i]));
        assert_false(listed(ef_seccomp_denied, conditional[i]));
    }
    for (size_t i = 0; ef_seccomp_allowed[i]; i++) {
        if (listed(ef_seccomp_denied, ef_seccomp_allowed[i]))
            fail_msg("%s is both allowed and denied", ef_seccomp_allowed[i]);
    }
}

/* What the child found: one errno (0 = the call succeeded) per probe. */
enum probe {
    P_MOUNT,
    P_UNSHARE_USER,
    P_UNSHARE_NET,
    P_SETNS,
    P_KEYCTL,
    P_BPF,
    P_PTRACE,
    P_CLONE_NEWUSER,
    P_CLONE_NEWNS,
    P_CLONE3,
    P_FORK,
    P_THREAD,
    P_EXEC,
    P_PERSONALITY_QUERY,
    P_PERSONALITY_BSD,
    P_SOCKET_INET,
    P_SOCKET_VSOCK,
    P_IO_URING,
    P_MODIFY_LDT,
    P_COUNT
};

static int result(long r)
{
    return r < 0 ? errno : 0;
}

static void *thread_main(void *arg)
{
    return arg;
}

static int child_probe(int fd, const struct ef_seccomp_filter *f)
{
    int res[P_COUNT];
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || ef_seccomp_filter_install(f) < 0)
        return 100;
    res[P_MOUNT] = result(mount("none", "/tmp", "tmpfs", 0, NULL));
    res[P_UNSHARE_USER] = result(unshare(CLONE_NEWUSER));
    res[P_UNSHARE_NET] = result(unshare(CLONE_NEWNET));
    res[P_SETNS] = result(setns(0, 0));
    res[P_KEYCTL] = result(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
    res[P_BPF] = result(syscall(SYS_bpf, 0, NULL, 0));
    res[P_PTRACE] = result(ptrace(PTRACE_TRACEME, 0, NULL, NULL));
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0)
        _exit(0);
    res[P_CLONE_NEWUSER] = result(pid);
    pid = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0)
        _exit(0);
    res[P_CLONE_NEWNS] = result(pid);
    char args[88] = {0};
    pid = syscall(SYS_clone3, args, sizeof(args));
    if (pid == 0)
        _exit(0);
    res[P_CLONE3] = result(pid);
    pid = fork();
    if (pid == 0)
        _exit(7);
    int status = 0;
    res[P_FORK] =
        pid < 0 ? errno
        : (waitpid((pid_t)pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 7)
            ? 0
            : EIO;
    pthread_t t;
    void *ret = NULL;
    int pr = pthread_create(&t, NULL, thread_main, &res);
    res[P_THREAD] = pr ? pr : (pthread_join(t, &ret) == 0 && ret == &res ? 0 : EIO);
    pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "exit 3", (char *)NULL);
        _exit(1);
    }
    res[P_EXEC] =
        pid < 0 ? errno
        : (waitpid((pid_t)pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 3)
            ? 0
            : EIO;
    res[P_PERSONALITY_QUERY] = result(personality(0xffffffff));
    res[P_PERSONALITY_BSD] = result(personality(0x0006));
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    res[P_SOCKET_INET] = result(s);
    if (s >= 0)
        close(s);
    res[P_SOCKET_VSOCK] = result(socket(AF_VSOCK, SOCK_STREAM, 0));
    char params[120] = {0};
    res[P_IO_URING] = result(syscall(__NR_io_uring_setup, 1, params));
#ifdef SYS_modify_ldt
    char ldt[16];
    res[P_MODIFY_LDT] = result(syscall(SYS_modify_ldt, 0, ldt, sizeof(ldt)));
#else
    res[P_MODIFY_LDT] = ENOSYS;
#endif
    return write(fd, res, sizeof(res)) == (ssize_t)sizeof(res) ? 0 : 101;
}

static void test_filter_on_the_kernel(void **state)
{
    (void)state;
    struct ef_seccomp_filter f = {0};
    ef_error e;
    assert_int_equal(ef_seccomp_filter_build(&f, &e), 0);
    assert_true(f.count > 10 && f.count <= 4096);

    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        _exit(child_probe(p[1], &f));
    }
    close(p[1]);
    int res[P_COUNT];
    assert_int_equal(read(p[0], res, sizeof(res)), sizeof(res));
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ef_seccomp_filter_free(&f);
    assert_null(f.insns);

    assert_int_equal(res[P_MOUNT], EPERM);
    assert_int_equal(res[P_UNSHARE_USER], EPERM);
    assert_int_equal(res[P_UNSHARE_NET], EPERM);
    assert_int_equal(res[P_SETNS], EPERM);
    assert_int_equal(res[P_KEYCTL], EPERM);
    assert_int_equal(res[P_BPF], EPERM);
    assert_int_equal(res[P_PTRACE], EPERM);
    assert_int_equal(res[P_CLONE_NEWUSER], EPERM);
    assert_int_equal(res[P_CLONE_NEWNS], EPERM);
    assert_int_equal(res[P_CLONE3], ENOSYS);
    assert_int_equal(res[P_FORK], 0);
    assert_int_equal(res[P_THREAD], 0);
    assert_int_equal(res[P_EXEC], 0);
    assert_int_equal(res[P_PERSONALITY_QUERY], 0);
    assert_int_not_equal(res[P_PERSONALITY_BSD], 0);
    assert_int_equal(res[P_SOCKET_INET], 0);
    assert_int_equal(res[P_SOCKET_VSOCK], EPERM);
    assert_int_equal(res[P_IO_URING], EPERM);
    assert_int_equal(res[P_MODIFY_LDT], ENOSYS);
}

#if defined(__x86_64__)
/* An x32 system call (another ABI through the same entry) kills the process, as libseccomp
 * treats every architecture the filter was not built for. */
static void test_foreign_abi_is_killed(void **state)
{
    (void)state;
    struct ef_seccomp_filter f = {0};
    ef_error e;
    assert_int_equal(ef_seccomp_filter_build(&f, &e), 0);
    pid_t pid = fork();
    if (pid == 0) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || ef_seccomp_filter_install(&f) < 0)
            _exit(100);
        syscall(0x40000000 | 39 /* x32 getpid */);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSYS);
    ef_seccomp_filter_free(&f);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists_cover_docker),
        cmocka_unit_test(test_filter_on_the_kernel),
#if defined(__x86_64__)
        cmocka_unit_test(test_foreign_abi_is_killed),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
