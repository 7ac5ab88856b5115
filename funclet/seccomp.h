/* The seccomp filter of every container: Docker's default profile for a container without
 * CAP_SYS_ADMIN, made a little stricter (see seccomp_profile.c for the lists and why).
 *
 * The filter is compiled once, when funclet starts, with libseccomp into a classic BPF program;
 * the sandbox child installs that program with one seccomp(2) call right before it execs the
 * runner, so the runner, the runtime and the user's code all run under it, and creating a
 * container costs no filter compilation. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* Syscalls not in the profile fail with this errno (as on a kernel too old to have them, so
 * that programs fall back: glibc retries clone3 as clone). */
#define EF_SECCOMP_DEFAULT_ERRNO 38 /* ENOSYS */

/* The clone(2) flags that create namespaces; clone with any of them fails with EPERM. */
#define EF_SECCOMP_CLONE_NS_FLAGS 0x7E020000UL

/* A compiled filter. */
struct ef_seccomp_filter {
    void *insns;  /* struct sock_filter[] */
    size_t count; /* instructions */
};

/* The syscalls allowed without condition, denied with EPERM, and left to the default (ENOSYS);
 * NULL-terminated name lists. Names the build's architecture does not have are skipped. */
extern const char *const ef_seccomp_allowed[];
extern const char *const ef_seccomp_denied[];

/* Compiles the profile for the native architecture. Free with ef_seccomp_filter_free. */
int ef_seccomp_filter_build(struct ef_seccomp_filter *ret, ef_error *err);

/* Frees the program; the filter is empty afterwards. */
void ef_seccomp_filter_free(struct ef_seccomp_filter *f);

/* Installs the program on the calling thread (seccomp(SECCOMP_SET_MODE_FILTER)). Needs
 * CAP_SYS_ADMIN or no_new_privs. Async-signal-safe: no allocation. Returns 0 or -errno. */
int ef_seccomp_filter_install(const struct ef_seccomp_filter *f);
