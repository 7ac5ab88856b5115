#include "funclet/seccomp.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

/* The largest program the kernel accepts (BPF_MAXINSNS). */
#define MAX_INSNS 4096

/* The personas Docker allows: the default, and the 32-bit / uname-2.6 variants programs ask for
 * (0xffffffff only queries). */
static const unsigned long allowed_personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};

/* The clone flag namespace bits, one rule each, since a rule cannot test "any of". */
static const unsigned long clone_ns_bits[] = {
    0x00020000 /* NEWNS */,  0x02000000 /* NEWCGROUP */, 0x04000000 /* NEWUTS */,
    0x08000000 /* NEWIPC */, 0x10000000 /* NEWUSER */,   0x20000000 /* NEWPID */,
    0x40000000 /* NEWNET */,
};

/* On s390 the flags are clone's second argument. */
#if defined(__s390__) || defined(__s390x__)
#define CLONE_FLAGS_ARG 1
#else
#define CLONE_FLAGS_ARG 0
#endif

/* Adds an unconditional rule for each name the architecture knows. */
static int add_names(scmp_filter_ctx ctx, const char *const *names, uint32_t action, ef_error *err)
{
    for (size_t i = 0; names[i]; i++) {
        int nr = seccomp_syscall_resolve_name(names[i]);
        if (nr == __NR_SCMP_ERROR)
            continue;
        int r = seccomp_rule_add(ctx, action, nr, 0);
        /* A negative number is a syscall of another architecture (chown32 on x86_64), which
         * libseccomp cannot place in this filter. */
        if (r < 0 && nr >= 0)
            return ef_error_set_errno(err, r, "seccomp rule for %s", names[i]);
    }
    return 0;
}

static int add_conditional(scmp_filter_ctx ctx, ef_error *err)
{
    int r = 0;
    /* clone: allowed without namespace flags (fork, threads), EPERM with any. */
    r = seccomp_rule_add(
        ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
        SCMP_CMP(CLONE_FLAGS_ARG, SCMP_CMP_MASKED_EQ, EF_SECCOMP_CLONE_NS_FLAGS, 0));
    for (size_t i = 0; r == 0 && i < EF_ARRAY_SIZE(clone_ns_bits); i++)
        r = seccomp_rule_add(
            ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
            SCMP_CMP(CLONE_FLAGS_ARG, SCMP_CMP_MASKED_EQ, clone_ns_bits[i], clone_ns_bits[i]));
    if (r < 0)
        return ef_error_set_errno(err, r, "seccomp rules for clone");
    /* clone3 passes its flags in memory, out of a filter's reach; it is left to the default
     * action, ENOSYS, which makes glibc fall back to clone. (libseccomp refuses a rule whose
     * action is the default one.) */
    for (size_t i = 0; r == 0 && i < EF_ARRAY_SIZE(allowed_personas); i++)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                             SCMP_A0(SCMP_CMP_EQ, allowed_personas[i]));
    if (r < 0)
        return ef_error_set_errno(err, r, "seccomp rules for personality");
    /* vsock reaches the hypervisor, outside any network namespace. */
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_NE, AF_VSOCK));
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                             SCMP_A0(SCMP_CMP_EQ, AF_VSOCK));
    if (r < 0)
        return ef_error_set_errno(err, r, "seccomp rules for socket");
    return 0;
}

int ef_seccomp_filter_build(struct ef_seccomp_filter *ret, ef_error *err)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EF_SECCOMP_DEFAULT_ERRNO));
    if (!ctx)
        return ef_error_set(err, -ENOMEM, "cannot initialise libseccomp");
    int r = 0;
    /* A binary tree of syscall numbers: a few comparisons per call instead of hundreds. */
    if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) < 0)
        seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 1);
    r = add_names(ctx, ef_seccomp_allowed, SCMP_ACT_ALLOW, err);
    if (r == 0)
        r = add_names(ctx, ef_seccomp_denied, SCMP_ACT_ERRNO(EPERM), err);
    if (r == 0)
        r = add_conditional(ctx, err);
    if (r < 0) {
        seccomp_release(ctx);
        return r;
    }

    /* libseccomp 2.5 exports only to an fd; a memfd keeps the program off the file system. */
    cleanup_close int fd = memfd_create("ef-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        seccomp_release(ctx);
        return ef_error_set_errno(err, -errno, "memfd_create");
    }
    r = seccomp_export_bpf(ctx, fd);
    seccomp_release(ctx);
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot compile the seccomp filter");
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
        size / (off_t)sizeof(struct sock_filter) > MAX_INSNS)
        return ef_error_set(err, -EINVAL, "the compiled seccomp filter has an invalid size (%lld)",
                            (long long)size);
    struct sock_filter *insns = malloc((size_t)size);
    if (!insns)
        return ef_error_set(err, -ENOMEM, "out of memory");
    if (pread(fd, insns, (size_t)size, 0) != (ssize_t)size) {
        free(insns);
        return ef_error_set_errno(err, -EIO, "cannot read the compiled seccomp filter");
    }
    ret->insns = insns;
    ret->count = (size_t)size / sizeof(struct sock_filter);
    return 0;
}

void ef_seccomp_filter_free(struct ef_seccomp_filter *f)
{
    free(f->insns);
    f->insns = NULL;
    f->count = 0;
}

int ef_seccomp_filter_install(const struct ef_seccomp_filter *f)
{
    struct sock_fprog prog = {.len = (unsigned short)f->count, .filter = f->insns};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        return -errno;
    return 0;
}
