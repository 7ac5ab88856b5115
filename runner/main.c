/* easyfaas-runner: `prepare` (install the runner and the runtimes into a volume) and `init`
 * (PID 1 of a user container). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "runner/runner.h"

static const char usage[] =
    "Usage: easyfaas-runner COMMAND [FLAGS]\n"
    "\n"
    "The EasyFaaS runner: one binary with two jobs.\n"
    "\n"
    "Commands:\n"
    "  prepare --dest DIR [--runtimes-src DIR]\n"
    "      The init container's job: installs DIR/bin/easyfaas-runner and the bundled language\n"
    "      runtimes (DIR/python/bootstrap, ...) into the volume that user containers mount\n"
    "      read-only at /var/runtime. Idempotent; exits 0, or 1 with a message.\n"
    "  init --rpc-fd FD --uid N --gid N [--api-port PORT] [--runtime-dir DIR] [--task-dir DIR]\n"
    "      PID 1 of a user container: reaps processes, serves JSON-RPC (runtime.start, invoke)\n"
    "      on the inherited listening socket FD, starts the runtime as the unprivileged user\n"
    "      and serves it the Lambda Runtime API on 127.0.0.1:PORT (default 9001).\n"
    "\n"
    "Run `easyfaas-runner COMMAND --help` for the flags of a command.\n";

/* Programs started with a closed 0, 1 or 2 would hand that number to the next file they
 * open, and a later write to "stderr" would land in it. */
static void ensure_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        int n = open("/dev/null", O_RDWR);
        if (n >= 0 && n != fd)
            close(n);
    }
}

int main(int argc, char **argv)
{
    ensure_std_fds();
    ef_log_init("runner", EF_LOG_INFO);
    if (argc < 2) {
        fputs(usage, stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "prepare") == 0)
        return ef_runner_prepare(argc, argv, 2);
    if (strcmp(cmd, "init") == 0)
        return ef_runner_init(argc, argv, 2);
    fprintf(stderr, "easyfaas-runner: unknown command '%s'; run easyfaas-runner --help\n", cmd);
    return 1;
}
