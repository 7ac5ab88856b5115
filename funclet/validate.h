/* Validation of funclet's RPC parameters. Every request goes through here before anything
 * touches the kernel; a failure fills `err` with a message that names the parameter and what was
 * wrong with it (the handler sends it as a -32602 error). */
#pragma once

#include <cjson/cJSON.h>
#include <stdint.h>

#include "common/error.h"

#define EF_MEMORY_MB_MIN      64
#define EF_MEMORY_MB_MAX      10240
#define EF_PIDS_MAX_MIN       16
#define EF_PIDS_MAX_MAX       65536
#define EF_PIDS_MAX_DEFAULT   1024
#define EF_CPU_MILLICORES_MIN 10
#define EF_CPU_MILLICORES_MAX 64000

/* A container id: "c" followed by 12 lowercase hex digits. */
#define EF_CONTAINER_ID_LEN 13

struct ef_create_params {
    char *code_dir; /* canonical (realpath) directory strictly below the code root; malloc'd */
    int64_t memory_mb;
    int64_t pids_max;
    int64_t cpu_millicores; /* 0: no CPU quota (the weight still follows memory_mb) */
};

/* Checks the params of container.create against the rules of docs/rpc.md. `code_root` must be
 * canonical. On success fills *ret (free it with ef_create_params_free); on failure returns
 * -EINVAL (or -ENOMEM) and leaves *ret untouched. code_dir is resolved with realpath(3), so a
 * symlink that leads out of the code root is rejected. */
int ef_validate_create_params(const cJSON *params, const char *code_root,
                              struct ef_create_params *ret, ef_error *err);

/* Frees what ef_validate_create_params allocated. */
void ef_create_params_free(struct ef_create_params *p);

/* Returns 0 when `id` has the form of a container id, else -EINVAL with a message. */
int ef_validate_container_id(const char *id, ef_error *err);

/* Checks the params of container.destroy ({"id": "c…"}); *ret_id points into `params`. */
int ef_validate_destroy_params(const cJSON *params, const char **ret_id, ef_error *err);

/* Checks that a method that takes no parameters got none: absent, null, {} or []. */
int ef_validate_no_params(const cJSON *params, const char *method, ef_error *err);
