/* `easyfaas-runner prepare`: the init container's job. Installs <dest>/bin/easyfaas-runner (a
 * copy of this very binary) and the bundled runtimes (<dest>/python/bootstrap, ...), every file
 * replaced atomically, world-readable, so that the unprivileged user of a container can read
 * and run them through the read-only /var/runtime mount. Running it again is harmless. */
#define _GNU_SOURCE
#include "runner/runner.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/options.h"

/* The interpreter of the Python runtime: its bootstrap's #! line. */
#define PYTHON "/usr/bin/python3"

/* Bounds on the runtimes tree, which is ours but is still read from disk. */
#define MAX_DEPTH 32
#define MAX_FILES 100000

struct copy_state {
    unsigned files;
    ef_error *err;
};

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Creates `path` (and parents) with mode 0755 and makes sure an existing one has that mode. */
static int make_dir(const char *path, ef_error *err)
{
    int r = ef_mkdir_p(path, 0755, err);
    if (r < 0)
        return r;
    struct stat st;
    if (stat(path, &st) < 0)
        return ef_error_set_errno(err, -errno, "cannot stat %s", path);
    if ((st.st_mode & 07777) != 0755 && chmod(path, 0755) < 0)
        return ef_error_set_errno(err, -errno, "cannot make %s mode 0755", path);
    return 0;
}

/* Replaces `dst` with a symlink to the same target as `src`, atomically. */
static int copy_symlink(const char *src, const char *dst, ef_error *err)
{
    char target[PATH_MAX];
    ssize_t n = readlink(src, target, sizeof(target) - 1);
    if (n < 0)
        return ef_error_set_errno(err, -errno, "cannot read the symlink %s", src);
    target[n] = '\0';
    cleanup_free char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp%ld", dst, (long)getpid()) < 0)
        return ef_error_set_errno(err, -ENOMEM, "cannot copy %s", src);
    unlink(tmp);
    if (symlink(target, tmp) < 0)
        return ef_error_set_errno(err, -errno, "cannot create the symlink %s", tmp);
    if (rename(tmp, dst) < 0) {
        int r = -errno;
        unlink(tmp);
        return ef_error_set_errno(err, r, "cannot rename %s to %s", tmp, dst);
    }
    return 0;
}

static int copy_tree(const char *src, const char *dst, int depth, struct copy_state *st)
{
    if (depth > MAX_DEPTH)
        return ef_error_set(st->err, -ELOOP, "cannot copy %s: nested more than %d levels deep", src,
                            MAX_DEPTH);
    int r = make_dir(dst, st->err);
    if (r < 0)
        return r;
    DIR *d = opendir(src);
    if (!d)
        return ef_error_set_errno(st->err, -errno, "cannot open the directory %s", src);
    struct dirent *e;
    r = 0;
    while (r == 0 && (errno = 0, e = readdir(d))) {
        /* __pycache__ is copied too: an installed tree carries the compiled runtime (see
         * compile_python), and Python checks every cached file against its source, so one that
         * does not match is ignored, never used. */
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        cleanup_free char *s = ef_path_join(src, e->d_name);
        cleanup_free char *t = ef_path_join(dst, e->d_name);
        if (!s || !t) {
            r = ef_error_set_errno(st->err, -ENOMEM, "cannot copy %s", src);
            break;
        }
        struct stat sst;
        if (lstat(s, &sst) < 0) {
            r = ef_error_set_errno(st->err, -errno, "cannot stat %s", s);
            break;
        }
        if (++st->files > MAX_FILES) {
            r = ef_error_set(st->err, -EFBIG, "cannot copy %s: more than %d files", src, MAX_FILES);
            break;
        }
        if (S_ISDIR(sst.st_mode))
            r = copy_tree(s, t, depth + 1, st);
        else if (S_ISREG(sst.st_mode))
            r = ef_copy_file_atomic(s, t, (sst.st_mode & 0111) ? 0755 : 0644, st->err);
        else if (S_ISLNK(sst.st_mode))
            r = copy_symlink(s, t, st->err);
        else
            r = ef_error_set(st->err, -EINVAL,
                             "cannot copy %s: only files, directories and symlinks belong in a "
                             "runtime",
                             s);
    }
    if (r == 0 && errno != 0)
        r = ef_error_set_errno(st->err, -errno, "cannot read the directory %s", src);
    closedir(d);
    return r;
}

/* The runtimes shipped with this binary: the source tree's when built from it, else the
 * installed share directory next to the binary. */
static char *default_runtimes_src(void)
{
#ifdef EF_RUNTIMES_SRC
    if (is_dir(EF_RUNTIMES_SRC))
        return strdup(EF_RUNTIMES_SRC);
#endif
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n < 0)
        return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    char *path = NULL;
    if (asprintf(&path, "%s/../share/easyfaas/runtimes", exe) < 0)
        return NULL;
    return path;
}

extern char **environ;

/* Compiles the Python runtime's modules in `python_dir` into its __pycache__ with the
 * interpreter the containers run, so that a runtime's start loads them instead of compiling
 * them (about 20 ms for ef_runtime.py). The cache is checked against a hash of the source, not
 * its modification time, so that it stays valid when the tree is copied. Best effort: without
 * that interpreter here (the runner-runtime image has none; its tree was compiled when it was
 * installed) or when it fails, the runtime compiles itself at each start, as it can. */
static void compile_python(const char *python_dir)
{
    if (access(PYTHON, X_OK) < 0) {
        ef_info("no %s here: the Python runtime is used as installed", PYTHON);
        return;
    }
    char *const argv[] = {PYTHON,
                          "-sS",
                          "-m",
                          "compileall",
                          "-q",
                          "-f",
                          "-l",
                          "--invalidation-mode",
                          "checked-hash",
                          (char *)python_dir,
                          NULL};
    pid_t pid;
    int r = posix_spawn(&pid, PYTHON, NULL, NULL, argv, environ);
    if (r != 0) {
        ef_warn("cannot run %s to compile the Python runtime: %s", PYTHON, strerror(r));
        return;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            ef_warn("cannot wait for %s: %s", PYTHON, strerror(errno));
            return;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        ef_warn("compiling the Python runtime in %s failed; it compiles itself at each start",
                python_dir);
}

static const char prepare_usage[] = "easyfaas-runner prepare --dest DIR [--runtimes-src DIR]";
static const char prepare_description[] =
    "Installs the runner and the bundled language runtimes into DIR, the volume that user "
    "containers mount read-only at /var/runtime: DIR/bin/easyfaas-runner (a copy of this "
    "binary) and each runtime's files (DIR/python/bootstrap, ...). Every file is replaced "
    "atomically (temporary file + rename) and is world-readable, directories are mode 0755, so "
    "the unprivileged user of a container can use them. Files already in DIR that are not part "
    "of the runtimes are left alone; running prepare again is harmless. The runtimes are taken "
    "from --runtimes-src, by default the source tree this binary was built from if it exists, "
    "else <directory of the binary>/../share/easyfaas/runtimes. The Python runtime is then "
    "compiled (DIR/python/__pycache__) with " PYTHON " where there is one, so that its "
    "interpreters do not compile it at every start. Exits 0 on success, 1 with a message on "
    "error.";

int ef_runner_prepare(int argc, char **argv, int start)
{
    const char *dest = NULL, *runtimes_src = NULL;
    const struct ef_option opts[] = {
        {"dest", EF_OPT_STRING, &dest, "DIR", "Where to install (created if missing; required).", 0,
         0},
        {"runtimes-src", EF_OPT_STRING, &runtimes_src, "DIR",
         "The bundled runtimes to install (default: see above).", 0, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    ef_error err = {0};
    int next = argc;
    int r =
        ef_options_parse(prepare_usage, prepare_description, opts, argc, argv, start, &next, &err);
    if (r == 1)
        return 0;
    if (r < 0) {
        fprintf(stderr, "easyfaas-runner prepare: %s\n", err.msg);
        return 1;
    }
    if (next < argc) {
        fprintf(stderr, "easyfaas-runner prepare: unexpected argument '%s'; see --help\n",
                argv[next]);
        return 1;
    }
    if (!dest || !*dest) {
        fprintf(stderr, "easyfaas-runner prepare: --dest DIR is required; see --help\n");
        return 1;
    }

    cleanup_free char *src_default = NULL;
    if (!runtimes_src) {
        src_default = default_runtimes_src();
        runtimes_src = src_default;
    }
    if (!runtimes_src || !is_dir(runtimes_src)) {
        fprintf(stderr,
                "easyfaas-runner prepare: no bundled runtimes at %s; pass --runtimes-src DIR\n",
                runtimes_src ? runtimes_src : "(unknown)");
        return 1;
    }

    /* Modes must not depend on the caller's umask. */
    umask(022);
    r = make_dir(dest, &err);
    cleanup_free char *dest_real = r == 0 ? realpath(dest, NULL) : NULL;
    cleanup_free char *src_real = realpath(runtimes_src, NULL);
    if (r == 0 && (!dest_real || !src_real))
        r = ef_error_set_errno(&err, -errno, "cannot resolve %s or %s", dest, runtimes_src);
    if (r == 0 && (ef_path_is_below(dest_real, src_real) || ef_path_is_below(src_real, dest_real)))
        r = ef_error_set(&err, -EINVAL,
                         "--dest %s and --runtimes-src %s must not contain each other", dest_real,
                         src_real);

    cleanup_free char *bin = r == 0 ? ef_path_join(dest_real, "bin") : NULL;
    cleanup_free char *exe = r == 0 ? ef_path_join(dest_real, "bin/easyfaas-runner") : NULL;
    if (r == 0 && (!bin || !exe))
        r = ef_error_set_errno(&err, -ENOMEM, "cannot install into %s", dest);
    if (r == 0)
        r = make_dir(bin, &err);
    if (r == 0)
        r = ef_copy_file_atomic("/proc/self/exe", exe, 0755, &err);

    struct copy_state st = {.files = 0, .err = &err};
    if (r == 0)
        r = copy_tree(src_real, dest_real, 0, &st);
    if (r < 0) {
        fprintf(stderr, "easyfaas-runner prepare: %s\n", err.msg);
        return 1;
    }
    cleanup_free char *python_dir = ef_path_join(dest_real, "python");
    if (python_dir && is_dir(python_dir))
        compile_python(python_dir);
    printf("installed %s and %u runtime entries from %s into %s\n", exe, st.files, src_real,
           dest_real);
    return 0;
}
