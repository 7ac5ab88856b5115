/* Validation of funclet's RPC parameters. Every request goes through here before anything
 * touches the kernel; a failure fills `err` with a message that names the parameter and what was
 * wrong with it (the handler sends it as a -32602 error). */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
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

/* Bounds of the parts of a function identity. */
#define EF_IDENTITY_NAME_MAX    140
#define EF_IDENTITY_VERSION_MAX 32
#define EF_IDENTITY_SHA256_LEN  64
#define EF_IDENTITY_HASH_MAX    128

/* How a container reaches the network. */
enum ef_network_mode {
    EF_NETWORK_NONE,   /* its own network namespace with only loopback */
    EF_NETWORK_BRIDGE, /* its own network namespace plus a veth into funclet's bridge */
    EF_NETWORK_HOST,   /* the pod's network namespace */
};

/* "none", "bridge" or "host". */
const char *ef_network_mode_name(enum ef_network_mode mode);

/* The function a warm container serves: a container is never handed to another identity. */
struct ef_identity {
    char name[EF_IDENTITY_NAME_MAX + 1];
    char version[EF_IDENTITY_VERSION_MAX + 1];
    char code_sha256[EF_IDENTITY_SHA256_LEN + 1];
    char config_hash[EF_IDENTITY_HASH_MAX + 1];
};

/* What a function asks of a container: its code, limits and network (container.warmup,
 * container.acquire, and container.create with a code_dir). */
struct ef_warm_spec {
    char *code_dir; /* canonical (realpath) directory strictly below the code root; malloc'd */
    int64_t memory_mb;
    int64_t pids_max;
    int64_t cpu_millicores; /* 0: no CPU quota (the weight still follows memory_mb) */
    enum ef_network_mode network;
    bool has_identity;
    struct ef_identity identity;
};

/* container.create: a cold container (no code_dir), or, with a code_dir, a warm one exactly as
 * container.acquire makes it (the compatible form). */
struct ef_create_params {
    bool warm;                    /* code_dir was given: `spec` is filled */
    enum ef_network_mode network; /* cold: none or host; warm: spec.network */
    struct ef_warm_spec spec;
};

/* Checks the params of container.create against the rules of docs/rpc.md. `code_root` must be
 * canonical. On success fills *ret (free it with ef_create_params_free); on failure returns
 * -EINVAL (or -ENOMEM) and leaves *ret untouched. code_dir is resolved with realpath(3), so a
 * symlink that leads out of the code root is rejected. */
int ef_validate_create_params(const cJSON *params, const char *code_root,
                              struct ef_create_params *ret, ef_error *err);

/* Frees what ef_validate_create_params allocated. */
void ef_create_params_free(struct ef_create_params *p);

/* Checks the params of container.acquire: code_dir, memory_mb and identity required; pids_max,
 * cpu_millicores and network optional. Free *ret with ef_warm_spec_free. */
int ef_validate_acquire_params(const cJSON *params, const char *code_root, struct ef_warm_spec *ret,
                               ef_error *err);

/* Checks the params of container.warmup: "id" and what container.acquire takes. *ret_id points
 * into `params`. */
int ef_validate_warmup_params(const cJSON *params, const char *code_root, const char **ret_id,
                              struct ef_warm_spec *ret, ef_error *err);

/* Frees what the validators put into a spec. */
void ef_warm_spec_free(struct ef_warm_spec *spec);

/* Checks the params of container.reset ({"id": "c…", "release": bool?}). */
int ef_validate_reset_params(const cJSON *params, const char **ret_id, bool *ret_release,
                             ef_error *err);

/* Returns 0 when `id` has the form of a container id, else -EINVAL with a message. */
int ef_validate_container_id(const char *id, ef_error *err);

/* Checks the params of container.destroy ({"id": "c…"}); *ret_id points into `params`. */
int ef_validate_destroy_params(const cJSON *params, const char **ret_id, ef_error *err);

/* Checks that a method that takes no parameters got none: absent, null, {} or []. */
int ef_validate_no_params(const cJSON *params, const char *method, ef_error *err);
