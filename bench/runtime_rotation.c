/* The Python runtime alone, many at a time (docs/performance.md, "Where the time goes"): what one
 * warm invocation costs the bundled runtime when N runtime processes take turns on the CPUs, as
 * they do at N connections with a container per connection, without the rest of the pod.
 *
 * This program is the Runtime API for all of them, as small as a server can be: it listens on
 * loopback, starts N copies of the bootstrap (each with AWS_LAMBDA_RUNTIME_API pointing here),
 * answers every poll with the same event and every answer with the 202 and the next event in one
 * write, as the pod's own Runtime API does, and counts the round trips for SECONDS once every
 * runtime has polled. Then it prints, per invocation, the user and system time the runtimes took
 * meanwhile (from /proc/<pid>/stat) and its own, and ends the runtimes.
 *
 *   runtime_rotation N SECONDS BOOTSTRAP TASK_ROOT HANDLER */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNTIMES 512
#define BUF_SIZE     65536

static const char EVENT[] =
    "HTTP/1.1 200 OK\r\n"
    "Lambda-Runtime-Aws-Request-Id: f00a6441-e9ae-4f0f-8f2a-b3b9c6d7ab79\r\n"
    "Lambda-Runtime-Deadline-Ms: 4102444800000\r\n"
    "Lambda-Runtime-Invoked-Function-Arn: "
    "arn:aws:lambda:us-east-1:000000000000:function:noop\r\n"
    "Lambda-Runtime-Trace-Id: Root=1-6b0a581a-2a51ccfe0cea95f064877c26;"
    "Parent=dd61d5456a9e6614;Sampled=0\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 2\r\n"
    "Date: Sat, 28 Nov 2026 04:27:06 GMT\r\n"
    "Connection: keep-alive\r\n"
    "\r\n"
    "{}";
static const char ACCEPTED[] = "HTTP/1.1 202 Accepted\r\n"
                               "Content-Type: application/json\r\n"
                               "Content-Length: 15\r\n"
                               "Date: Sat, 28 Nov 2026 04:27:06 GMT\r\n"
                               "Connection: keep-alive\r\n"
                               "\r\n"
                               "{\"status\":\"OK\"}";

struct conn {
    int fd;
    size_t have;
    char buf[BUF_SIZE];
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double usec(struct timeval tv)
{
    return (double)tv.tv_sec * 1e6 + (double)tv.tv_usec;
}

/* The user and system clock ticks of the processes, summed. */
static void ticks(const pid_t *pids, int n, unsigned long long *user, unsigned long long *sys)
{
    *user = *sys = 0;
    for (int i = 0; i < n; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pids[i]);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* Fields 14 and 15, counted after the command name's closing parenthesis (field 2). */
        char *p = strrchr(buf, ')');
        unsigned long long u, s;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &u, &s) == 2) {
            *user += u;
            *sys += s;
        }
    }
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("write");
        data += n;
        len -= (size_t)n;
    }
}

/* A poll for the next event ends what a runtime sends each time: the requests are complete once
 * the buffer ends with that GET's empty line. */
static int requests_complete(const struct conn *c)
{
    static const char next[] = "/invocation/next HTTP/1.1\r\n";
    if (c->have < 4 || memcmp(c->buf + c->have - 4, "\r\n\r\n", 4) != 0)
        return 0;
    return memmem(c->buf, c->have, next, sizeof(next) - 1) != NULL;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s N SECONDS BOOTSTRAP TASK_ROOT HANDLER\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]);
    double seconds = atof(argv[2]);
    if (n < 1 || n > MAX_RUNTIMES || seconds <= 0) {
        fprintf(stderr, "N must be 1..%d and SECONDS positive\n", MAX_RUNTIMES);
        return 2;
    }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(addr);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0 || listen(lfd, MAX_RUNTIMES) < 0)
        die("listen");
    char api[64];
    snprintf(api, sizeof(api), "127.0.0.1:%u", ntohs(addr.sin_port));

    pid_t pids[MAX_RUNTIMES];
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        if (pids[i] < 0)
            die("fork");
        if (pids[i] == 0) {
            setenv("AWS_LAMBDA_RUNTIME_API", api, 1);
            setenv("LAMBDA_TASK_ROOT", argv[4], 1);
            setenv("_HANDLER", argv[5], 1);
            setenv("AWS_LAMBDA_FUNCTION_NAME", "noop", 1);
            setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128", 1);
            setenv("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST", 1);
            if (chdir(argv[4]) < 0)
                die("chdir");
            execl(argv[3], argv[3], (char *)NULL);
            die("exec");
        }
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    static struct conn conns[MAX_RUNTIMES];
    for (int i = 0; i < n; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            die("accept");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conns[i].fd = fd;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &conns[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0)
            die("epoll_ctl");
    }

    /* Every runtime's first poll is answered with the event alone; after that, each answer and
     * poll with the 202 and the next event. Counting starts once all of them are running. */
    char reply[sizeof(ACCEPTED) + sizeof(EVENT)];
    size_t reply_len = (size_t)snprintf(reply, sizeof(reply), "%s%s", ACCEPTED, EVENT);
    long rounds = 0;
    int warm = 0;
    double t0 = 0, end = 0;
    struct rusage self0 = {0};
    unsigned long long user0 = 0, sys0 = 0;
    struct epoll_event events[64];
    for (;;) {
        int k = epoll_wait(ep, events, 64, 1000);
        if (k < 0 && errno != EINTR)
            die("epoll_wait");
        for (int j = 0; j < k; j++) {
            struct conn *c = events[j].data.ptr;
            ssize_t r = read(c->fd, c->buf + c->have, sizeof(c->buf) - c->have);
            if (r <= 0) {
                fprintf(stderr, "a runtime closed its connection\n");
                return 1;
            }
            c->have += (size_t)r;
            if (!requests_complete(c)) {
                if (c->have == sizeof(c->buf)) {
                    fprintf(stderr, "a runtime sent more than %d bytes at once\n", BUF_SIZE);
                    return 1;
                }
                continue;
            }
            int first = memcmp(c->buf, "GET ", 4) == 0;
            c->have = 0;
            if (first) {
                write_all(c->fd, EVENT, sizeof(EVENT) - 1);
                if (++warm == n) {
                    t0 = now();
                    end = t0 + seconds;
                    getrusage(RUSAGE_SELF, &self0);
                    ticks(pids, n, &user0, &sys0);
                }
                continue;
            }
            write_all(c->fd, reply, reply_len);
            if (warm == n)
                rounds++;
        }
        if (warm == n && now() >= end)
            break;
    }
    double elapsed = now() - t0;
    struct rusage self1;
    getrusage(RUSAGE_SELF, &self1);
    unsigned long long user1, sys1;
    ticks(pids, n, &user1, &sys1);
    for (int i = 0; i < n; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
    if (rounds == 0) {
        fprintf(stderr, "no invocation completed\n");
        return 1;
    }
    double tick_us = 1e6 / (double)sysconf(_SC_CLK_TCK);
    printf("%d runtimes: %.0f invocations/s; per invocation: runtimes %.1f user + %.1f system µs, "
           "this server %.1f + %.1f µs\n",
           n, (double)rounds / elapsed, (double)(user1 - user0) * tick_us / (double)rounds,
           (double)(sys1 - sys0) * tick_us / (double)rounds,
           (usec(self1.ru_utime) - usec(self0.ru_utime)) / (double)rounds,
           (usec(self1.ru_stime) - usec(self0.ru_stime)) / (double)rounds);
    return 0;
}
