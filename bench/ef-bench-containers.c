/* ef-bench-containers: times container operations for bench/containers.sh.
 *
 *   ef-bench-containers rpc SOCKET RUNS NETWORK CODE_DIR FUNCLET_PID
 *       RUNS cycles of container.create (cold, NETWORK "none" or "host") -> container.warmup
 *       (CODE_DIR, 128 MB) -> container.reset -> container.destroy on funclet's socket, one
 *       request at a time on one connection (steps "create/NETWORK", "warmup/NETWORK", ...),
 *       and "cpu/cycle/NETWORK": the CPU time (user + system) funclet and the containers it
 *       reaped used per cycle, from /proc/FUNCLET_PID/stat.
 *   ef-bench-containers exec RUNS NAME PROGRAM [ARGS...]
 *       fork + execvp + waitpid of PROGRAM, RUNS times (step NAME; it must exit 0), and
 *       "cpu/NAME": the CPU time of the children per run (getrusage).
 *
 * Wall-clock latencies depend on what else the machine runs; the CPU times do much less.
 *
 * Prints one line per measurement, "<step> <ms>", so that the script can interleave rounds of
 * every tool and compute percentiles over all of them. Standalone (no project library), so that
 * the script builds it with `cc` alone; funclet's framing is a 4-byte big-endian length before
 * each JSON message (docs/rpc.md). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void report(const char *step, double ms)
{
    printf("%s %.3f\n", step, ms);
}

/* utime + stime + cutime + cstime of a process, in ms. */
static double proc_cpu_ms(const char *pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%s/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long long v[4] = {0};
    /* After "pid (comm)": state is field 3; utime..cstime are fields 14..17. */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
                     &v[0], &v[1], &v[2], &v[3]) != 4)
        return 0;
    return (double)(v[0] + v[1] + v[2] + v[3]) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static double children_cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "ef-bench-containers: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

static int full_write(int fd, const void *buf, size_t len)
{
    const char *p = buf;
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

static int full_read(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One call; returns the response text (static buffer) or exits on an error response. */
static const char *call(int fd, int id, const char *method, const char *params)
{
    static char buf[1 << 16];
    int len = snprintf(buf + 4, sizeof(buf) - 4,
                       "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"%s\",\"params\":%s}", id,
                       method, params);
    uint32_t be = htobe32((uint32_t)len);
    memcpy(buf, &be, 4);
    if (full_write(fd, buf, (size_t)len + 4) < 0)
        die("cannot send %s", method);
    if (full_read(fd, &be, 4) < 0)
        die("no answer to %s", method);
    uint32_t n = be32toh(be);
    if (n >= sizeof(buf))
        die("answer to %s is too large", method);
    if (full_read(fd, buf, n) < 0)
        die("truncated answer to %s", method);
    buf[n] = '\0';
    if (strstr(buf, "\"error\""))
        die("%s", buf);
    return buf;
}

static int bench_rpc(const char *sock, int runs, const char *network, const char *code_dir,
                     const char *funclet_pid)
{
    double cpu0 = proc_cpu_ms(funclet_pid);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        die("cannot connect to %s", sock);
    char params[4096], step[64];
    int id = 0;
    const char *warm_net = strcmp(network, "host") == 0 ? "host" : "none";
    static const char *const names[] = {"create", "warmup", "reset", "destroy"};
    for (int r = 0; r < runs; r++) {
        snprintf(params, sizeof(params), "{\"network\":\"%s\"}", network);
        double t[5];
        t[0] = now_ms();
        const char *res = call(fd, ++id, "container.create", params);
        t[1] = now_ms();
        const char *p = strstr(res, "\"id\":\"");
        if (!p)
            die("no id in %s", res);
        char cid[32];
        snprintf(cid, sizeof(cid), "%.13s", p + 6);
        snprintf(params, sizeof(params),
                 "{\"id\":\"%s\",\"code_dir\":\"%s\",\"memory_mb\":128,\"network\":\"%s\","
                 "\"identity\":{\"name\":\"bench\",\"version\":\"1\",\"code_sha256\":"
                 "\"%064d\",\"config_hash\":\"x\"}}",
                 cid, code_dir, warm_net, 0);
        call(fd, ++id, "container.warmup", params);
        t[2] = now_ms();
        snprintf(params, sizeof(params), "{\"id\":\"%s\"}", cid);
        call(fd, ++id, "container.reset", params);
        t[3] = now_ms();
        call(fd, ++id, "container.destroy", params);
        t[4] = now_ms();
        for (int i = 0; i < 4; i++) {
            snprintf(step, sizeof(step), "%s/%s", names[i], network);
            report(step, t[i + 1] - t[i]);
        }
    }
    snprintf(step, sizeof(step), "cpu/cycle/%s", network);
    report(step, (proc_cpu_ms(funclet_pid) - cpu0) / runs);
    close(fd);
    return 0;
}

static int bench_exec(int runs, const char *name, char **argv)
{
    double cpu0 = children_cpu_ms();
    for (int r = 0; r < runs; r++) {
        double t0 = now_ms();
        pid_t pid = fork();
        if (pid == 0) {
            execvp(argv[0], argv);
            _exit(127);
        }
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) != pid)
            die("cannot run %s", argv[0]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            die("%s failed", argv[0]);
        report(name, now_ms() - t0);
    }
    char step[128];
    snprintf(step, sizeof(step), "cpu/%s", name);
    report(step, (children_cpu_ms() - cpu0) / runs);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "rpc") == 0)
        return bench_rpc(argv[2], atoi(argv[3]), argv[4], argv[5], argv[6]);
    if (argc >= 5 && strcmp(argv[1], "exec") == 0)
        return bench_exec(atoi(argv[2]), argv[3], argv + 4);
    fprintf(stderr, "usage: ef-bench-containers rpc SOCKET RUNS none|host CODE_DIR FUNCLET_PID\n"
                    "       ef-bench-containers exec RUNS NAME PROGRAM [ARGS...]\n");
    return 2;
}
