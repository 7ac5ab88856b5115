/* Test harness for the controller's unit tests: runs a real controller (HTTP server, store,
 * code store, funclet client) on its own libuv loop in a background thread, on port 0 in a
 * temporary data dir, and talks to it with a small blocking HTTP/1.1 client. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>
#include <uv.h>

#include "controller/controller.h"

struct harness {
    uv_loop_t loop;
    struct ef_controller ctl;
    uv_thread_t thread;
    uv_async_t wake;
    uv_mutex_t lock;
    uv_cond_t done;
    void (*call_fn)(struct harness *h, void *arg); /* pending harness_on_loop() call */
    void *call_arg;
    bool call_done;
    /* Runs on the loop thread once the controller has stopped, to close test-side handles. */
    void (*on_stopped)(struct harness *h);
    void *user;
    char dir[64];
    char funclet_socket[128];
    int port;
    /* Optional controller settings (zero: the defaults). */
    const char *auth_keys_path;
    const char *metrics_token_path;
    size_t max_code_request_size;
    bool allow_host_network;
    struct ef_async_config async;
    const struct ef_sched_config *sched; /* NULL: the defaults */
};

/* Creates a data dir (unless h->dir is already set, to restart on the same one), starts the
 * controller with `max_request_size` (0: 6 MiB) and funclet expected at h->funclet_socket
 * (default <dir>/funclet.sock), and starts the loop thread. `on_loop` (may be NULL) runs first,
 * before the controller starts, to set up test peers on the loop. */
void harness_start(struct harness *h, size_t max_request_size, void (*on_loop)(struct harness *h));

/* Runs `fn` on the loop thread and waits for it to return. */
void harness_on_loop(struct harness *h, void (*fn)(struct harness *h, void *arg), void *arg);

/* Stops the controller as SIGTERM would, joins the loop thread and asserts that the loop closes
 * with no handle left. Keeps the data dir when `keep_dir` (for a restart). */
void harness_stop(struct harness *h, bool keep_dir);

struct http_response {
    int status;
    char *head; /* status line and headers */
    char *body;
    size_t body_len;
};

/* Sends one request (Connection: close) and reads the whole response. `headers` is extra
 * header lines, each ending in "\r\n" (may be NULL). Returns 0 or a negative errno. */
int http_request(int port, const char *method, const char *path, const char *headers,
                 const char *body, size_t body_len, struct http_response *ret);

/* A response header's value (malloc'd), or NULL. Case-insensitive. */
char *http_header(const struct http_response *r, const char *name);

void http_response_free(struct http_response *r);

/* POSTs CreateFunction `body` and asserts 201 (`name` is for the failure message). */
void harness_create_function(struct harness *h, const char *name, const char *body);

/* GET /v1/invocations/{rid} (asserting 200), parsed. */
cJSON *event_status(struct harness *h, const char *rid);

/* A member of a JSON object: the string (NULL when it is not one), or the number (asserted). */
const char *json_str(const cJSON *doc, const char *key);
double json_num(const cJSON *doc, const char *key);

/* Asserts a Lambda-style error and frees the response: `status`, x-amzn-ErrorType `type`, an
 * x-amzn-RequestId, and a JSON body with Type ("User" below 500, else "Service") and a message
 * containing `needle` (NULL: any). */
void expect_lambda_error(struct http_response *r, int status, const char *type, const char *needle);

/* Builds an in-memory zip with one file `name` holding `content`, mode 0755 when `exec`, and a
 * fixed modification time: the same arguments always make the same bytes. */
void *make_zip1(const char *name, const char *content, bool exec, size_t *ret_len);

/* A CreateFunction body for `name` with the given runtime, handler and timeout, and a zip of
 * one small file. malloc'd. */
char *create_body(const char *name, const char *runtime, const char *handler, int timeout_s);
