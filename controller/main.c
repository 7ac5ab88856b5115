/* easyfaas-controller: the user-facing HTTP API of a pod (flags, event loop, signals). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/options.h"
#include "controller/controller.h"

static const char usage_line[] = "easyfaas-controller [OPTIONS]";
static const char description[] =
    "Serves the Lambda-compatible HTTP API of an EasyFaaS pod: stores functions and their code "
    "under the data dir, and runs invocations in containers that funclet creates.";

struct signals {
    uv_signal_t term, intr;
    struct ef_controller *ctl;
};

static struct signals sigs;

static void on_stopped(struct ef_controller *ctl)
{
    (void)ctl;
    uv_close((uv_handle_t *)&sigs.term, NULL);
    uv_close((uv_handle_t *)&sigs.intr, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (sigs.ctl->shutting_down) {
        ef_warn("received %s again while stopping; still waiting for funclet", strsignal(signum));
        return;
    }
    ef_info("received %s, stopping", strsignal(signum));
    ef_controller_stop(sigs.ctl, on_stopped);
}

static void walk_report(uv_handle_t *h, void *arg)
{
    (void)arg;
    ef_error("handle of type %s still open at exit", uv_handle_type_name(h->type));
}

int main(int argc, char **argv)
{
    char *data_dir = "/var/lib/easyfaas";
    char *listen = "127.0.0.1";
    int64_t port = 8080;
    char *funclet_socket = NULL;
    uint64_t max_request_size = 6u * 1024 * 1024;
    char *log_level = "info";

    const struct ef_option opts[] = {
        {"data-dir", EF_OPT_STRING, &data_dir, "DIR",
         "Directory for controller.db and the function code (code/zips, code/extracted).", 0, 0},
        {"listen", EF_OPT_STRING, &listen, "ADDR", "IPv4 or IPv6 address the HTTP API listens on.",
         0, 0},
        {"port", EF_OPT_INT, &port, "N", "TCP port of the HTTP API (0 picks a free one).", 0,
         65535},
        {"funclet-socket", EF_OPT_STRING, &funclet_socket, "PATH",
         "funclet's JSON-RPC socket (default: <data-dir>/run/funclet.sock).", 0, 0},
        {"max-request-size", EF_OPT_SIZE, &max_request_size, "SIZE",
         "Largest HTTP request body accepted (invocation payloads and base64 zips); larger "
         "ones get 413 RequestTooLargeException.",
         0, 0},
        {"log-level", EF_OPT_STRING, &log_level, "LEVEL", "One of debug, info, warn, error.", 0, 0},
        {0},
    };

    ef_error err = {0};
    int next = 0;
    int r = ef_options_parse(usage_line, description, opts, argc, argv, 1, &next, &err);
    if (r == 1)
        return 0;
    if (r < 0) {
        fprintf(stderr, "easyfaas-controller: %s\nTry 'easyfaas-controller --help'.\n", err.msg);
        return 2;
    }
    if (next < argc) {
        fprintf(stderr, "easyfaas-controller: unexpected argument '%s'\n", argv[next]);
        return 2;
    }
    enum ef_log_level level;
    if (ef_log_parse_level(log_level, &level) < 0) {
        fprintf(stderr, "easyfaas-controller: --log-level must be debug, info, warn or error\n");
        return 2;
    }
    if (max_request_size == 0 || max_request_size > (uint64_t)1 << 30) {
        fprintf(stderr, "easyfaas-controller: --max-request-size must be between 1 and 1G\n");
        return 2;
    }
    ef_log_init("controller", level);

    cleanup_free char *default_socket = NULL;
    if (!funclet_socket) {
        if (asprintf(&default_socket, "%s/run/funclet.sock", data_dir) < 0)
            return 1;
        funclet_socket = default_socket;
    }

    /* A client that hangs up must cost an EPIPE on that write, not the process. */
    signal(SIGPIPE, SIG_IGN);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ef_controller ctl;
    struct ef_controller_config config = {
        .data_dir = data_dir,
        .listen = listen,
        .port = (int)port,
        .funclet_socket = funclet_socket,
        .max_request_size = (size_t)max_request_size,
    };
    r = ef_controller_start(&ctl, &loop, &config, &err);
    if (r < 0) {
        ef_error("cannot start: %s", err.msg);
        uv_run(&loop, UV_RUN_DEFAULT); /* let what was opened finish closing */
        uv_loop_close(&loop);
        return 1;
    }

    sigs.ctl = &ctl;
    uv_signal_init(&loop, &sigs.term);
    uv_signal_init(&loop, &sigs.intr);
    uv_signal_start(&sigs.term, on_signal, SIGTERM);
    uv_signal_start(&sigs.intr, on_signal, SIGINT);

    uv_run(&loop, UV_RUN_DEFAULT);
    ef_controller_free(&ctl);
    r = uv_loop_close(&loop);
    if (r < 0) {
        uv_walk(&loop, walk_report, NULL);
        return 1;
    }
    return 0;
}
