/* Lambda's documents for stored functions (FunctionConfiguration, ARNs, LastModified) and the
 * readers the management handlers share for their JSON request bodies. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "controller/store.h"

/* The request and FunctionConfiguration member for invocations one container serves at once:
 * an extension named after the setting of Lambda Managed Instances (Lambda's own API keeps it
 * in CapacityProviderConfig); clients that do not know it never see a difference. */
#define EF_CONTAINER_CONCURRENCY_FIELD "PerExecutionEnvironmentMaxConcurrency"

/* The request and FunctionConfiguration member for where a function's containers are on the
 * network: "none" (the default), "bridge" or "host" (docs/api.md). An extension: Lambda has no
 * such member, and clients that do not send it get "none". */
#define EF_NETWORK_MODE_FIELD "NetworkMode"

/* Checks the NetworkMode of a request and sets *ret_mode. "host" gives the function the pod's
 * own network (the controller's API on loopback included), so it is refused unless the operator
 * started the controller with --allow-host-network (`allow_host`). Returns 0, or -EINVAL with a
 * message for an InvalidParameterValueException. */
/* The longest Role accepted (IAM's limit for an ARN). */
#define EF_ROLE_MAX 2048

/* Checks a Role: 1 to EF_ROLE_MAX printable ASCII characters. Lambda also requires the pattern of
 * an IAM role ARN; here nothing assumes the role (functions run as the container's user), so
 * scripts written for this API that pass any name keep working. It is stored and reported back,
 * as Lambda does. Returns 0, or -EINVAL with a Lambda-style validation message in `err`. */
int ef_validate_role(const char *role, ef_error *err);

int ef_validate_network_mode(const char *value, bool allow_host, enum ef_function_network *ret_mode,
                             ef_error *err);

/* The ARN of `name`, qualified with ":<qualifier>" unless `qualifier` is NULL. malloc'd; NULL
 * when memory runs out. */
char *ef_function_qualified_arn(const char *name, const char *qualifier);

/* The ARN a version of a function answers to: unqualified for $LATEST (as Lambda reports a
 * function addressed without a qualifier), ":<n>" for a published version. */
char *ef_function_version_arn(const struct ef_function *fn);

/* Lambda's FunctionConfiguration document for `fn` (any version). `qualify_latest` gives
 * $LATEST's FunctionArn the ":$LATEST" suffix, as ListVersionsByFunction does. NULL when
 * memory runs out. */
cJSON *ef_function_configuration_json(const struct ef_function *fn, bool qualify_latest);

/* The current time as Lambda's LastModified, "2026-11-27T06:30:00.000+0000". malloc'd. */
char *ef_format_last_modified(void);

/* Reads optional member `name` of a request body. Each returns 0 and leaves *ret alone when it is
 * absent or null, 0 and sets *ret when it has the right type, and -1 when it has another. */
int ef_json_get_string(const cJSON *obj, const char *name, const char **ret);
int ef_json_get_int(const cJSON *obj, const char *name, int64_t *ret);
int ef_json_get_bool(const cJSON *obj, const char *name, bool *ret);

/* True when member `name` is present and not null. */
bool ef_json_has(const cJSON *obj, const char *name);

/* The configuration members CreateFunction and UpdateFunctionConfiguration share. A member that
 * is absent or null leaves its string NULL or its has_* false. */
struct ef_config_request {
    const char *runtime, *handler, *description;
    const char *network; /* NetworkMode, not yet validated */
    const char *role;    /* Role, not yet validated */
    bool has_memory, has_timeout, has_concurrency, has_environment;
    int64_t memory_mb, timeout_s, concurrency;
    const cJSON *variables; /* Environment.Variables; NULL when absent or null */
};

/* Reads the shared members of a request body into *req (pointing into `body`). Returns 0, or -1
 * with the member of the wrong type in *ret_member and what it must be in *ret_type. */
int ef_config_request_read(const cJSON *body, struct ef_config_request *req,
                           const char **ret_member, const char **ret_type);
