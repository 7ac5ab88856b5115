/* easyfaas-controller: the user-facing HTTP API of a pod (flags, event loop, signals). */
#include <errno.h>
#include <sched.h>
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
#include "common/sched_policy.h"
#include "controller/controller.h"
#include "controller/duration.h" /* async flags */
#include "controller/function_logs.h"

/* The largest body either request size flag allows. */
#define MAX_REQUEST_SIZE (1 << 30)

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
    uint64_t max_code_request_size = EF_DEFAULT_MAX_CODE_REQUEST_SIZE;
    char *auth_keys = NULL;
    char *metrics_token = NULL;
    bool allow_host_network = false;
    char *log_level = "info";
    uint64_t log_max_size = EF_FUNCTION_LOGS_DEFAULT_SIZE;
    int64_t log_files = EF_FUNCTION_LOGS_DEFAULT_FILES;
    /* async: Event invocations (docs/async.md). */
    int64_t async_concurrency = EF_ASYNC_DEFAULT_CONCURRENCY;
    int64_t async_max_retries = EF_ASYNC_DEFAULT_MAX_ATTEMPTS - 1;
    int64_t async_max_throttle_retries = 0;
    char *async_retry_delay = "60s";
    char *async_max_age = "6h";
    char *async_ordering = "oldest-first";
    char *async_retention = "24h";
    char *async_dl_retention = "14d";
    int64_t async_max_queued = EF_ASYNC_DEFAULT_MAX_QUEUED;
    char *async_interrupted = "dead-letter";
    /* scheduler (docs/scheduler.md) */
    int64_t queue_depth = EF_SCHED_DEFAULT_QUEUE_DEPTH;
    char *queue_wait = "10s";
    int64_t max_concurrency = EF_SCHED_DEFAULT_MAX_CONCURRENCY;
    char *idle_timeout = "60s";
    char *health_interval = "10s";
    char *cooldown = "reset";
    char *sched_policy = "batch";
    char *runtime_handover = "on";

    const struct ef_option opts[] = {
        {"data-dir", EF_OPT_STRING, &data_dir, "DIR",
         "Directory for controller.db and the function code (code/zips, code/extracted).", 0, 0},
        {"listen", EF_OPT_STRING, &listen, "ADDR",
         "IPv4 or IPv6 address the HTTP API listens on. Anyone who can reach it can create "
         "functions and run code: beyond loopback (0.0.0.0, ::, a routable address) give "
         "--auth-keys too; the controller warns at start when it is not given.",
         0, 0},
        {"port", EF_OPT_INT, &port, "N", "TCP port of the HTTP API (0 picks a free one).", 0,
         65535},
        {"funclet-socket", EF_OPT_STRING, &funclet_socket, "PATH",
         "funclet's JSON-RPC socket (default: <data-dir>/run/funclet.sock). A funclet serves "
         "one controller: a second one on the same socket would take over the first one's "
         "containers, so the controller locks <PATH>.controller.lock and refuses to start when "
         "another one holds it (the lock is skipped when that directory cannot be written).",
         0, 0},
        {"max-request-size", EF_OPT_SIZE, &max_request_size, "SIZE",
         "Largest invocation payload accepted; larger ones get 413 RequestTooLargeException.", 1,
         MAX_REQUEST_SIZE},
        {"max-code-request-size", EF_OPT_SIZE, &max_code_request_size, "SIZE",
         "Largest body of CreateFunction and UpdateFunctionCode, which carry the zip in base64 "
         "(4/3 of its size), at least --max-request-size; other management requests may have "
         "1 MiB.",
         1, MAX_REQUEST_SIZE},
        {"auth-keys", EF_OPT_STRING, &auth_keys, "FILE",
         "Require AWS SigV4-signed requests, by the keys in FILE (lines 'ACCESS_KEY_ID SECRET', "
         "mode 0600); without it signatures are not checked.",
         0, 0},
        {"metrics-token", EF_OPT_STRING, &metrics_token, "FILE",
         "Require 'Authorization: Bearer <token>' (or, with --auth-keys, a SigV4 signature) "
         "for GET /metrics; FILE (mode 0600) holds the token, 16 to 4096 printable characters "
         "without spaces, on its first line that is neither blank nor a # comment. Without it "
         "/metrics is open, as /healthz is.",
         0, 0},
        {"allow-host-network", EF_OPT_BOOL, &allow_host_network, NULL,
         "Accept functions with NetworkMode host. Their code runs in the pod's own network: it "
         "reaches everything the pod can (this API on loopback, every service listening in the "
         "pod's network namespace, the networks the pod is on) and can listen on its ports. Only "
         "for trusted functions; "
         "without this flag such functions are refused, and stored ones are not started.",
         0, 0},
        {"sched-policy", EF_OPT_STRING, &sched_policy, "POLICY",
         "CPU scheduling policy of the controller. batch: it does not preempt the running "
         "process when it wakes up (the pod's processes hand each invocation on with one context "
         "switch instead of two; same CPU share); other: the kernel's default, which does.",
         0, 0},
        {"runtime-handover", EF_OPT_STRING, &runtime_handover, "on|off",
         "on: once a container that serves one invocation at a time has answered its first "
         "invocation, its runner hands the runtime's Runtime API connection over, and the "
         "controller serves the runtime's later invocations itself (one process fewer on each "
         "warm invocation; docs/handover.md). off: every invocation goes through the runner.",
         0, 0},
        {"log-level", EF_OPT_STRING, &log_level, "LEVEL", "One of debug, info, warn, error.", 0, 0},
        {"log-max-size", EF_OPT_SIZE, &log_max_size, "SIZE",
         "Size at which a function's log file (<data-dir>/logs/<name>.log) is rotated.",
         EF_FUNCTION_LOGS_MIN_SIZE, EF_FUNCTION_LOGS_MAX_SIZE},
        {"log-files", EF_OPT_INT, &log_files, "N",
         "Log files kept per function, the current one included.", 1, EF_FUNCTION_LOGS_MAX_FILES},
        /* async */
        {"async-concurrency", EF_OPT_INT, &async_concurrency, "N",
         "Event invocations delivered at once.", 1, EF_ASYNC_MAX_CONCURRENCY},
        {"async-max-retries", EF_OPT_INT, &async_max_retries, "N",
         "Retries of an Event invocation after a function error or timeout.", 0,
         EF_ASYNC_DEFAULT_MAX_ATTEMPTS - 1},
        {"async-max-throttle-retries", EF_OPT_INT, &async_max_throttle_retries, "N",
         "Retries of an Event invocation that was throttled (429) or refused (5xx) before it "
         "ran; beyond them it is dead-lettered. 0, the default, retries until --async-max-age, "
         "as Lambda does.",
         0, EF_ASYNC_MAX_REFUSALS},
        {"async-retry-delay", EF_OPT_STRING, &async_retry_delay, "DURATION",
         "Wait before the first retry after a function error, 1ms to 1h; each further retry "
         "waits twice as long (e.g. 1s, 60s).",
         0, 0},
        {"async-max-age", EF_OPT_STRING, &async_max_age, "DURATION",
         "Events older than this, 1s to 6h, are not attempted again but dead-lettered.", 0, 0},
        {"async-ordering", EF_OPT_STRING, &async_ordering, "ORDER",
         "oldest-first: any due event, several of a function at once; per-function: one event "
         "of a function at a time, in the order accepted.",
         0, 0},
        {"async-retention", EF_OPT_STRING, &async_retention, "DURATION",
         "How long a succeeded event's status stays readable, 1s to 366d.", 0, 0},
        {"async-dead-letter-retention", EF_OPT_STRING, &async_dl_retention, "DURATION",
         "How long dead letters are kept, 1s to 366d.", 0, 0},
        {"async-max-queued", EF_OPT_INT, &async_max_queued, "N",
         "Unfinished Event invocations held at most; more get 429.", 1, 100000000},
        {"async-interrupted", EF_OPT_STRING, &async_interrupted, "MODE",
         "What becomes of an Event invocation whose delivery was cut off by a crash or a stop, "
         "and may or may not have run: dead-letter (the default: it is never run again, so "
         "every event runs at most once per attempt, and the interrupted one waits in the dead "
         "letters to be replayed) or retry (it is delivered again, its interrupted attempt "
         "counted: at least once, as Lambda does; handlers must be idempotent).",
         0, 0},
        /* scheduler */
        {"queue-depth", EF_OPT_INT, &queue_depth, "N",
         "Invocations of one function that may wait for a concurrency slot or a container "
         "(0: throttle at once with 429).",
         0, EF_SCHED_MAX_QUEUE_DEPTH},
        {"queue-wait", EF_OPT_STRING, &queue_wait, "DURATION",
         "Longest wait in a function's queue before 429, 1ms to 15m (e.g. 500ms, 10s).", 0, 0},
        {"max-concurrency", EF_OPT_INT, &max_concurrency, "N",
         "Invocations in flight on this node at most (Lambda's account limit); more wait.", 1,
         EF_SCHED_MAX_CONCURRENCY},
        {"idle-timeout", EF_OPT_STRING, &idle_timeout, "DURATION",
         "Idle warm containers unused this long, 1s to 24h, are cooled down (keep-alive).", 0, 0},
        {"health-interval", EF_OPT_STRING, &health_interval, "DURATION",
         "Time between health checks of idle runners and of funclet's container list, 1s to "
         "1h.",
         0, 0},
        {"cooldown", EF_OPT_STRING, &cooldown, "HOW",
         "reset: funclet resets cooled-down containers (every process but the runner killed, "
         "code unmounted, /tmp emptied, base limits) and keeps them as spares for any function "
         "while its cold pool is short; destroy: they are destroyed.",
         0, 0},
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
    /* The table checks each size against its range; this is the rule between the two. */
    if (max_code_request_size < max_request_size) {
        fprintf(stderr, "easyfaas-controller: --max-code-request-size must be at least "
                        "--max-request-size\n");
        return 2;
    }
    /* async: durations and the ordering. */
    struct ef_async_config async = {
        .concurrency = (unsigned)async_concurrency,
        .max_attempts = (unsigned)async_max_retries + 1,
        .max_refusals = (unsigned)async_max_throttle_retries,
        .max_queued = (uint64_t)async_max_queued,
    };
    const struct {
        const char *flag, *text;
        uint64_t *target, min, max;
        const char *range; /* as the help text says it */
    } durations[] = {
        {"async-retry-delay", async_retry_delay, &async.retry_delay_ms, 1, 3600 * 1000,
         "1ms and 1h"},
        {"async-max-age", async_max_age, &async.max_age_ms, 1000, EF_ASYNC_DEFAULT_MAX_AGE,
         "1s and 6h"},
        {"async-retention", async_retention, &async.retention_ms, 1000, 366 * 24 * 3600 * 1000ULL,
         "1s and 366d"},
        {"async-dead-letter-retention", async_dl_retention, &async.dead_letter_retention_ms, 1000,
         366 * 24 * 3600 * 1000ULL, "1s and 366d"},
    };
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        ef_error_clear(&err);
        if (ef_parse_duration_ms(durations[i].text, durations[i].target, &err) < 0) {
            fprintf(stderr, "easyfaas-controller: --%s: %s\n", durations[i].flag, err.msg);
            return 2;
        }
        if (*durations[i].target < durations[i].min || *durations[i].target > durations[i].max) {
            fprintf(stderr, "easyfaas-controller: --%s must be between %s, not '%s'\n",
                    durations[i].flag, durations[i].range, durations[i].text);
            return 2;
        }
    }
    if (strcmp(async_ordering, "oldest-first") == 0) {
        async.ordering = EF_ASYNC_OLDEST_FIRST;
    } else if (strcmp(async_ordering, "per-function") == 0) {
        async.ordering = EF_ASYNC_PER_FUNCTION;
    } else {
        fprintf(stderr, "easyfaas-controller: --async-ordering must be oldest-first or "
                        "per-function\n");
        return 2;
    }
    if (strcmp(async_interrupted, "dead-letter") == 0) {
        async.interrupted = EF_ASYNC_INTERRUPTED_DEAD_LETTER;
    } else if (strcmp(async_interrupted, "retry") == 0) {
        async.interrupted = EF_ASYNC_INTERRUPTED_RETRY;
    } else {
        fprintf(stderr, "easyfaas-controller: --async-interrupted must be dead-letter or retry\n");
        return 2;
    }
    /* scheduler: limits, durations and the cool-down. */
    struct ef_sched_config sched;
    ef_error_clear(&err);
    if (ef_sched_config_parse(&sched, queue_depth, max_concurrency, queue_wait, idle_timeout,
                              health_interval, cooldown, &err) < 0) {
        fprintf(stderr, "easyfaas-controller: %s\n", err.msg);
        return 2;
    }
    bool handover = strcmp(runtime_handover, "on") == 0;
    if (!handover && strcmp(runtime_handover, "off") != 0) {
        fprintf(stderr, "easyfaas-controller: --runtime-handover must be on or off, not '%s'\n",
                runtime_handover);
        return 2;
    }
    int policy;
    if (ef_sched_policy_parse(sched_policy, "--sched-policy", &policy, &err) < 0) {
        fprintf(stderr, "easyfaas-controller: %s\n", err.msg);
        return 2;
    }
    ef_log_init("controller", level);
    /* Before the loop starts libuv's pool threads, which inherit it. */
    int policy_before = ef_sched_policy_current();
    r = ef_sched_policy_apply(policy, &err);
    if (r < 0) {
        ef_error("%s", err.msg);
        return 1;
    }
    if (r == 1)
        ef_warn("started under SCHED_IDLE without CAP_SYS_NICE: the controller keeps that policy "
                "instead of --sched-policy %s",
                ef_sched_policy_name(policy));
    else if (policy_before != SCHED_OTHER && policy_before != SCHED_BATCH)
        ef_warn("started under the scheduling policy %s: --sched-policy %s replaces it",
                ef_sched_policy_name(policy_before), ef_sched_policy_name(policy));

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
        .max_code_request_size = (size_t)max_code_request_size,
        .auth_keys_path = auth_keys,
        .metrics_token_path = metrics_token,
        .allow_host_network = allow_host_network,
        .runtime_handover = handover,
        .log_max_size = log_max_size,
        .log_files = (unsigned)log_files,
        .async = async,
        .sched = &sched, /* scheduler */
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
