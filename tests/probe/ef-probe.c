/* ef-probe: runs inside a container as the user's code and reports what it may and may not do,
 * for tests/integration/isolation.sh (crun's tests/init.c is the model).
 *
 *   ef-probe SUBCOMMAND [ARGS...]   runs one probe and prints its findings on stdout
 *   ef-probe serve                  a Lambda Runtime API client: runs the probe named by each
 *                                   event ("SUBCOMMAND ARGS..." as plain text) in a child and
 *                                   posts its output, plus "exit=N" or "signal=N", as the result
 *
 * A failing system call is reported by its errno name ("EPERM"), so the test can assert exact
 * outcomes. Subcommands: status, ps, mount, umount PATH, ptrace PID, unshare, clone-ns, clone3,
 * setns, keyctl, bpf, personality, kernel, forkbomb, memhog MB, write FILE [MB], touch FILE [MB],
 * ls DIR, cat FILE, connect-unix PATH, find-socket, ifaces, rlimits, devices, devio,
 * exec PROGRAM [ARGS...]. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/reboot.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUTPUT_MAX   (60 * 1024)
#define FORKBOMB_MAX 100000

static const char *err_name(int e)
{
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

/* Prints "what: OK" when r >= 0, else "what: ENAME". */
static int outcome(const char *what, long r)
{
    printf("%s: %s\n", what, r >= 0 ? "OK" : err_name(errno));
    return 0;
}

static int cmd_status(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return outcome("open /proc/self/status", -1);
    static const char *const keys[] = {
        "Uid:",    "Gid:",    "Groups:",     "CapInh:",  "CapPrm:", "CapEff:",
        "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:", NULL};
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        for (size_t i = 0; keys[i]; i++) {
            if (strncmp(line, keys[i], strlen(keys[i])) == 0)
                fputs(line, stdout);
        }
    }
    fclose(f);
    return 0;
}

/* Every process visible in /proc: "PID COMM". */
static int cmd_ps(void)
{
    DIR *d = opendir("/proc");
    if (!d)
        return outcome("opendir /proc", -1);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char path[300], comm[64] = "?";
        snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
        FILE *f = fopen(path, "re");
        if (f) {
            if (fgets(comm, sizeof(comm), f))
                comm[strcspn(comm, "\n")] = '\0';
            fclose(f);
        }
        printf("%s %s\n", de->d_name, comm);
    }
    closedir(d);
    return 0;
}

static int cmd_forkbomb(void)
{
    static pid_t kids[FORKBOMB_MAX];
    int n = 0, e = 0;
    while (n < FORKBOMB_MAX) {
        pid_t p = fork();
        if (p == 0) {
            pause();
            _exit(0);
        }
        if (p < 0) {
            e = errno;
            break;
        }
        kids[n++] = p;
    }
    for (int i = 0; i < n; i++)
        kill(kids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        waitpid(kids[i], NULL, 0);
    printf("forks=%d error=%s\n", n, e ? err_name(e) : "none");
    return 0;
}

static int cmd_memhog(long mb)
{
    for (long i = 0; i < mb; i++) {
        char *p = malloc(1 << 20);
        if (!p)
            return outcome("malloc", -1);
        memset(p, 0x5a, 1 << 20);
    }
    printf("allocated %ld MB\n", mb);
    return 0;
}

static int cmd_write(const char *path, long mb)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return outcome("open", -1);
    static char buf[1 << 20];
    memset(buf, 'x', sizeof(buf));
    long written = 0;
    for (long i = 0; i < (mb > 0 ? mb : 1); i++) {
        ssize_t n = write(fd, buf, mb > 0 ? sizeof(buf) : 1);
        if (n < 0) {
            printf("written=%ld\n", written);
            close(fd);
            unlink(path);
            return outcome("write", -1);
        }
        written += n;
    }
    printf("written=%ld\n", written);
    close(fd);
    unlink(path);
    return outcome("write", 0);
}

/* Creates FILE (with MB megabytes when given) and leaves it there: write removes its file, this
 * one is for what must not survive a reset. */
static int cmd_touch(const char *path, long mb)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return outcome("open", -1);
    static char buf[1 << 20];
    memset(buf, 'x', sizeof(buf));
    ssize_t n = 0;
    for (long i = 0; i < (mb > 0 ? mb : 1) && n >= 0; i++)
        n = write(fd, buf, mb > 0 ? sizeof(buf) : 2);
    close(fd);
    return outcome("touch", n > 0 ? 0 : -1);
}

static int cmd_ls(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return outcome("opendir", -1);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            printf("%s\n", de->d_name);
            n++;
        }
    }
    closedir(d);
    printf("entries=%d\n", n);
    return 0;
}

static int cmd_cat(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return outcome("open", -1);
    char buf[4096];
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0 && total < OUTPUT_MAX / 2) {
        fwrite(buf, 1, (size_t)n, stdout);
        total += n;
    }
    close(fd);
    if (n < 0)
        return outcome("read", -1);
    printf("\nbytes=%ld\n", total);
    return 0;
}

static int cmd_connect_unix(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return outcome("socket", -1);
    int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
    outcome("connect", r);
    close(fd);
    return 0;
}

/* Every Unix socket reachable in the file system (below /, /proc and /sys skipped). */
static void find_sockets(const char *dir, int depth, int *found)
{
    if (depth > 12)
        return;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", strcmp(dir, "/") ? dir : "", de->d_name);
        if (depth == 0 && (!strcmp(de->d_name, "proc") || !strcmp(de->d_name, "sys")))
            continue;
        struct stat st;
        if (lstat(path, &st) < 0)
            continue;
        if (S_ISSOCK(st.st_mode)) {
            printf("socket %s\n", path);
            (*found)++;
        } else if (S_ISDIR(st.st_mode)) {
            find_sockets(path, depth + 1, found);
        }
    }
    closedir(d);
}

static int cmd_ifaces(void)
{
    FILE *f = fopen("/proc/net/dev", "re");
    if (!f)
        return outcome("open /proc/net/dev", -1);
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *name = line;
        while (*name == ' ')
            name++;
        printf("iface %s\n", name);
    }
    fclose(f);
    return 0;
}

static int cmd_rlimits(void)
{
    static const struct {
        int res;
        const char *name;
    } lims[] = {{RLIMIT_NOFILE, "nofile"},
                {RLIMIT_NPROC, "nproc"},
                {RLIMIT_RTPRIO, "rtprio"},
                {RLIMIT_NICE, "nice"}};
    for (size_t i = 0; i < sizeof(lims) / sizeof(lims[0]); i++) {
        struct rlimit rl;
        getrlimit(lims[i].res, &rl);
        if (rl.rlim_cur == RLIM_INFINITY)
            printf("%s=unlimited\n", lims[i].name);
        else
            printf("%s=%llu/%llu\n", lims[i].name, (unsigned long long)rl.rlim_cur,
                   (unsigned long long)rl.rlim_max);
    }
    return 0;
}

/* Calls into the kernel itself that no function may make. Every call is given arguments the
 * kernel would refuse even from a process allowed to make it (a bad reboot magic, unknown flags,
 * paths and fds that do not exist), so that a probe that gets through does no harm. swapon's
 * unknown flags are refused with EINVAL before the kernel checks CAP_SYS_ADMIN: EPERM for it can
 * only come from the seccomp filter. */
static int cmd_kernel(void)
{
    outcome("kexec_load", syscall(SYS_kexec_load, 0UL, 0UL, NULL, ~0UL));
    outcome("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, ~0UL));
    outcome("init_module", syscall(SYS_init_module, NULL, 0UL, ""));
    outcome("finit_module", syscall(SYS_finit_module, -1, "", 0));
    outcome("delete_module", syscall(SYS_delete_module, "ef_probe_none", O_NONBLOCK));
    outcome("reboot", syscall(SYS_reboot, 0, 0, LINUX_REBOOT_CMD_CAD_OFF, NULL));
    outcome("swapon", syscall(SYS_swapon, "/ef-probe-none", ~0));
    outcome("swapoff", syscall(SYS_swapoff, "/ef-probe-none"));
    return outcome("pivot_root", syscall(SYS_pivot_root, "/ef-probe-none", "/ef-probe-none"));
}

/* Everything below DIR, depth first and without following symbolic links, one line each:
 * "PATH c MAJOR:MINOR" (character device), "PATH b MAJOR:MINOR" (block device),
 * "PATH l TARGET", "PATH d", "PATH f" or "PATH ?" for anything else. */
static void list_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        printf("%s opendir: %s\n", dir, err_name(errno));
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(path, &st) < 0) {
            printf("%s lstat: %s\n", path, err_name(errno));
            continue;
        }
        if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
            printf("%s %c %u:%u\n", path, S_ISCHR(st.st_mode) ? 'c' : 'b', major(st.st_rdev),
                   minor(st.st_rdev));
        } else if (S_ISLNK(st.st_mode)) {
            char target[4096];
            ssize_t n = readlink(path, target, sizeof(target) - 1);
            target[n > 0 ? n : 0] = '\0';
            printf("%s l %s\n", path, target);
        } else if (S_ISDIR(st.st_mode)) {
            printf("%s d\n", path);
            list_tree(path);
        } else {
            printf("%s %c\n", path, S_ISREG(st.st_mode) ? 'f' : '?');
        }
    }
    closedir(d);
}

/* Reads up to LEN bytes of PATH: "NAME: OK n=N", plus " zero" when they are all zero. */
static void read_device(const char *name, const char *path, size_t len)
{
    unsigned char buf[64] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        outcome(name, -1);
        return;
    }
    ssize_t n = read(fd, buf, len < sizeof(buf) ? len : sizeof(buf));
    int e = errno;
    close(fd);
    if (n < 0) {
        errno = e;
        outcome(name, -1);
        return;
    }
    bool zero = n > 0;
    for (ssize_t i = 0; i < n; i++)
        zero = zero && buf[i] == 0;
    printf("%s: OK n=%zd%s\n", name, n, zero ? " zero" : "");
}

/* Writes one byte to PATH. */
static void write_device(const char *name, const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        outcome(name, -1);
        return;
    }
    ssize_t n = write(fd, "x", 1);
    int e = errno;
    close(fd);
    errno = e;
    outcome(name, n == 1 ? 0 : -1);
}

/* Whether the device nodes of /dev work as the kernel's devices do (a bind mount of the host's
 * node, not a copy that could be anything), and that none can be added. */
static int cmd_devio(void)
{
    read_device("read-zero", "/dev/zero", 32);
    read_device("read-urandom", "/dev/urandom", 32);
    read_device("read-random", "/dev/random", 32);
    read_device("read-full", "/dev/full", 32);
    read_device("read-null", "/dev/null", 1);
    write_device("write-null", "/dev/null");
    write_device("write-full", "/dev/full");
    outcome("mknod", mknod("/tmp/ef-probe-null", S_IFCHR | 0666, makedev(1, 3)));
    unlink("/tmp/ef-probe-null");
    return outcome("create-in-dev",
                   open("/dev/ef-probe", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
}

static int cmd_exec(char **argv)
{
    fflush(stdout);
    execv(argv[0], argv);
    return outcome("execv", -1);
}

static int run(int argc, char **argv)
{
    if (argc < 1)
        return 2;
    const char *c = argv[0];
    const char *a1 = argc > 1 ? argv[1] : "";
    if (!strcmp(c, "status"))
        return cmd_status();
    if (!strcmp(c, "ps"))
        return cmd_ps();
    if (!strcmp(c, "mount")) {
        mkdir("/tmp/ef-probe-mnt", 0700);
        outcome("mount", mount("tmpfs", "/tmp/ef-probe-mnt", "tmpfs", 0, NULL));
        rmdir("/tmp/ef-probe-mnt");
        return 0;
    }
    if (!strcmp(c, "umount"))
        return outcome("umount", umount2(a1, MNT_DETACH));
    if (!strcmp(c, "ptrace"))
        return outcome("ptrace", ptrace(PTRACE_ATTACH, atoi(a1), NULL, NULL));
    if (!strcmp(c, "unshare")) {
        outcome("unshare-user", unshare(CLONE_NEWUSER));
        outcome("unshare-mount", unshare(CLONE_NEWNS));
        return outcome("unshare-net", unshare(CLONE_NEWNET));
    }
    if (!strcmp(c, "clone-ns")) {
        long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
        if (r == 0)
            _exit(0);
        if (r > 0)
            waitpid((pid_t)r, NULL, 0);
        return outcome("clone-newuser", r);
    }
    if (!strcmp(c, "clone3")) {
        char args[88] = {0};
        long r = syscall(SYS_clone3, args, sizeof(args));
        if (r == 0)
            _exit(0);
        return outcome("clone3", r);
    }
    if (!strcmp(c, "setns")) {
        int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return outcome("open", -1);
        return outcome("setns", setns(fd, CLONE_NEWNET));
    }
    if (!strcmp(c, "keyctl")) {
        outcome("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
        return outcome("add_key",
                       syscall(SYS_add_key, "user", "ef-probe", "x", 1, KEY_SPEC_SESSION_KEYRING));
    }
    if (!strcmp(c, "bpf")) {
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.map_type = BPF_MAP_TYPE_ARRAY;
        attr.key_size = 4;
        attr.value_size = 4;
        attr.max_entries = 1;
        return outcome("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr)));
    }
    if (!strcmp(c, "personality")) {
        outcome("personality-query", personality(0xffffffff));
        return outcome("personality-bsd", personality(0x0006 /* PER_BSD */));
    }
    if (!strcmp(c, "kernel"))
        return cmd_kernel();
    if (!strcmp(c, "devices")) {
        list_tree("/dev");
        return 0;
    }
    if (!strcmp(c, "devio"))
        return cmd_devio();
    if (!strcmp(c, "forkbomb"))
        return cmd_forkbomb();
    if (!strcmp(c, "memhog"))
        return cmd_memhog(atol(a1));
    if (!strcmp(c, "write"))
        return cmd_write(a1, argc > 2 ? atol(argv[2]) : 0);
    if (!strcmp(c, "touch"))
        return cmd_touch(a1, argc > 2 ? atol(argv[2]) : 0);
    if (!strcmp(c, "ls"))
        return cmd_ls(a1);
    if (!strcmp(c, "cat"))
        return cmd_cat(a1);
    if (!strcmp(c, "connect-unix"))
        return cmd_connect_unix(a1);
    if (!strcmp(c, "find-socket")) {
        int found = 0;
        find_sockets("/", 0, &found);
        printf("sockets=%d\n", found);
        return 0;
    }
    if (!strcmp(c, "ifaces"))
        return cmd_ifaces();
    if (!strcmp(c, "realtime")) {
        errno = 0;
        int nice_now = getpriority(PRIO_PROCESS, 0);
        printf("nice=%d policy=%d\n", nice_now, sched_getscheduler(0));
        const struct sched_param param = {.sched_priority = 1};
        outcome("sched-fifo", sched_setscheduler(0, SCHED_FIFO, &param));
        outcome("sched-rr", sched_setscheduler(0, SCHED_RR, &param));
        return outcome("nice-minus-1", setpriority(PRIO_PROCESS, 0, -1));
    }
    if (!strcmp(c, "rlimits"))
        return cmd_rlimits();
    if (!strcmp(c, "exec") && argc > 1)
        return cmd_exec(argv + 1);
    printf("unknown subcommand '%s'\n", c);
    return 2;
}

/* ---- serve: a minimal Runtime API client (one HTTP/1.1 request per connection) ---- */

static int api_connect(void)
{
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api)
        return -1;
    char host[64];
    snprintf(host, sizeof(host), "%s", api);
    char *colon = strrchr(host, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Sends one request and reads the whole response into a malloc'd buffer; *ret_body points at
 * the body within it. */
static char *http(const char *method, const char *path, const char *body, size_t body_len,
                  char **ret_body, size_t *ret_body_len)
{
    int fd = api_connect();
    if (fd < 0)
        return NULL;
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: runtime\r\nContent-Length: %zu\r\n"
                     "Content-Type: text/plain\r\nConnection: close\r\n\r\n",
                     method, path, body_len);
    if (write_all(fd, head, (size_t)n) < 0 || (body_len && write_all(fd, body, body_len) < 0)) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t want = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
            if (len >= (size_t)(end + 4 - buf) + want)
                break;
        }
    }
    close(fd);
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (!end) {
        free(buf);
        return NULL;
    }
    *ret_body = end + 4;
    *ret_body_len = len - (size_t)(end + 4 - buf);
    return buf;
}

/* Runs one event in a child, its stdout and stderr captured, and returns the output. */
static char *run_event(char *event, size_t *ret_len)
{
    char *argv[64];
    int argc = 0;
    for (char *save = NULL, *tok = strtok_r(event, " \t\r\n", &save); tok && argc < 63;
         tok = strtok_r(NULL, " \t\r\n", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return NULL;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        int rc = run(argc, argv);
        fflush(stdout);
        _exit(rc == 0 ? 0 : 1);
    }
    close(p[1]);
    char *out = malloc(OUTPUT_MAX + 64);
    size_t len = 0;
    ssize_t n;
    char sink[4096];
    while ((n = read(p[0], len < OUTPUT_MAX ? out + len : sink,
                     len < OUTPUT_MAX ? OUTPUT_MAX - len : sizeof(sink))) > 0)
        if (len < OUTPUT_MAX)
            len += (size_t)n;
    close(p[0]);
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    if (pid < 0)
        len += (size_t)snprintf(out + len, 64, "fork: %s\n", err_name(errno));
    else if (WIFSIGNALED(status))
        len += (size_t)snprintf(out + len, 64, "signal=%d\n", WTERMSIG(status));
    else
        len += (size_t)snprintf(out + len, 64, "exit=%d\n", WEXITSTATUS(status));
    *ret_len = len;
    return out;
}

static int serve(void)
{
    for (;;) {
        char *body;
        size_t body_len;
        char *resp = http("GET", "/2018-06-01/runtime/invocation/next", NULL, 0, &body, &body_len);
        if (!resp) {
            fprintf(stderr, "ef-probe: cannot reach the Runtime API\n");
            return 1;
        }
        char *idh = strcasestr(resp, "\r\nLambda-Runtime-Aws-Request-Id:");
        char id[128] = "";
        if (idh) {
            idh += strlen("\r\nLambda-Runtime-Aws-Request-Id:");
            while (*idh == ' ')
                idh++;
            size_t n = strcspn(idh, "\r\n");
            snprintf(id, sizeof(id), "%.*s", (int)(n < sizeof(id) - 1 ? n : sizeof(id) - 1), idh);
        }
        char *event = strndup(body, body_len);
        free(resp);
        size_t out_len = 0;
        char *out = run_event(event, &out_len);
        free(event);
        char path[256];
        snprintf(path, sizeof(path), "/2018-06-01/runtime/invocation/%s/response", id);
        char *ack =
            http("POST", path, out ? out : "probe failed", out ? out_len : 12, &body, &body_len);
        free(out);
        free(ack);
    }
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "serve"))
        return serve();
    if (argc < 2) {
        fprintf(stderr, "usage: ef-probe SUBCOMMAND [ARGS...] | ef-probe serve\n");
        return 2;
    }
    return run(argc - 1, argv + 1);
}
