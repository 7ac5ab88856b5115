/* UpdateFunctionCode and UpdateFunctionConfiguration: both change $LATEST only; published
 * versions are immutable. Warm containers of the old identity finish what they run and are then
 * never reused (their key no longer matches), idle ones are discarded at once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/code_lane.h"
#include "controller/controller.h"
#include "controller/function_config.h"
#include "controller/lambda_errors.h"
#include "controller/request_id.h"
#include "controller/store.h"
#include "controller/validate.h"

struct code_job {
    struct ef_controller *ctl;
    ef_http_exchange *ex; /* NULL once the client went away; the update happens anyway */
    char request_id[EF_REQUEST_ID_LEN + 1];
    char *name;
    size_t zip_len;
    bool publish;
};

static void update_in_progress(ef_http_exchange *ex, const char *rid, const char *name)
{
    cleanup_free char *arn = ef_function_qualified_arn(name, NULL);
    ef_lambda_error(ex, rid, 409, "ResourceConflictException",
                    "The operation cannot be performed at this time. An update is in progress "
                    "for resource: %s",
                    arn ? arn : name);
}

/* Reads $LATEST for an update; answers 404/500, or 409 while another update of its code is
 * being stored, and returns NULL then. */
static struct ef_function *load_for_update(struct ef_controller *ctl, ef_http_exchange *ex,
                                           const char *rid, const char *name)
{
    struct ef_function *fn = NULL;
    if (ef_api_load_function(ctl, ex, rid, name, &fn) < 0)
        return NULL;
    if (ef_code_lane_busy(ctl->code_lane, name)) {
        ef_function_free(fn);
        update_in_progress(ex, rid, name);
        return NULL;
    }
    return fn;
}

/* Parses the body as a JSON object; answers 400 and returns NULL otherwise. */
static cJSON *parse_body(ef_http_exchange *ex, const char *rid, const struct ef_http_request *req)
{
    return ef_api_body_object(ex, rid, req, false);
}

static void code_job_free(struct code_job *job)
{
    free(job->name);
    free(job);
}

static void on_code_aborted(ef_http_exchange *ex, void *user)
{
    (void)ex;
    struct code_job *job = user;
    job->ex = NULL;
}

static void on_code_uploaded(struct ef_controller *ctl, int r, const ef_error *upload_err,
                             const char *hex, void *user)
{
    struct code_job *job = user;
    struct ef_function *fn = NULL, *published = NULL;
    ef_error err = {0};

    if (r < 0)
        err = *upload_err;
    else
        r = ef_store_get_function(ctl->store, job->name, &fn, &err);
    if (r == 0) {
        free(fn->code_sha256_hex);
        free(fn->last_modified);
        fn->code_sha256_hex = strdup(hex);
        fn->code_size = (int64_t)job->zip_len;
        fn->last_modified = ef_format_last_modified();
        if (!fn->code_sha256_hex || !fn->last_modified)
            r = ef_error_set(&err, -ENOMEM, "out of memory");
        else
            r = ef_store_update_function(ctl->store, fn, &err);
        if (r == 0 && job->publish)
            r = ef_store_publish_version(ctl->store, fn->name, NULL, NULL, fn->last_modified,
                                         &published, NULL, &err);
    }
    if (r == 0)
        ef_info("code of function %s updated to %s (%zu bytes)%s%s", job->name, hex, job->zip_len,
                published ? ", published as version " : "", published ? published->version : "");
    else if (r != -EINVAL && r != -ENOENT)
        ef_error("cannot update the code of function %s: %s", job->name, err.msg);
    /* Whatever happened, the old code (or the new, refused one) may be referenced by nothing. */
    ef_api_function_changed(ctl, job->name);

    ef_http_exchange *ex = job->ex;
    if (ex) {
        if (r == -EINVAL)
            ef_lambda_error(ex, job->request_id, 400, "InvalidParameterValueException", "%s",
                            err.msg);
        else if (r == -ENOENT)
            ef_api_function_not_found(ex, job->name);
        else if (r < 0)
            ef_lambda_error(ex, job->request_id, 500, "ServiceException", "%s", err.msg);
        else
            ef_lambda_respond_json(ex, 200, job->request_id,
                                   ef_api_function_configuration(published ? published : fn));
    }
    ef_function_free(fn);
    ef_function_free(published);
    code_job_free(job);
}

void ef_api_update_function_code(struct ef_controller *ctl, ef_http_exchange *ex,
                                 const struct ef_http_request *req, const char *name,
                                 const char *qualifier)
{
    char rid[EF_REQUEST_ID_LEN + 1];
    ef_request_id_new(rid);
    if (ef_api_reject_qualifier(ex, "UpdateFunctionCode", name, qualifier) < 0)
        return;
    cleanup_cjson cJSON *body = parse_body(ex, rid, req);
    if (!body)
        return;
    const char *zip_b64 = NULL;
    bool publish = false, dry_run = false;
    if (ef_json_get_string(body, "ZipFile", &zip_b64) < 0)
        EF_API_BAD_TYPE("ZipFile", "base64 of a zip file");
    if (ef_json_get_bool(body, "Publish", &publish) < 0)
        EF_API_BAD_TYPE("Publish", "a boolean");
    if (ef_json_get_bool(body, "DryRun", &dry_run) < 0)
        EF_API_BAD_TYPE("DryRun", "a boolean");
    if (!zip_b64) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException",
                        "ZipFile (base64 of a zip) is required; S3 and image packages are not "
                        "supported");
        return;
    }

    struct ef_function *fn = load_for_update(ctl, ex, rid, name);
    if (!fn)
        return;
    ef_error err = {0};
    int r = 0;

    unsigned char *zip = NULL;
    size_t zip_len = 0;
    if (ef_api_decode_zip(ex, rid, zip_b64, &zip, &zip_len) < 0) {
        ef_function_free(fn);
        return;
    }
    if (dry_run) {
        /* The request is valid; nothing is stored. */
        free(zip);
        ef_lambda_respond_json(ex, 200, rid, ef_api_function_configuration(fn));
        ef_function_free(fn);
        return;
    }
    ef_function_free(fn);

    struct code_job *job = calloc(1, sizeof(*job));
    if (!job || !(job->name = strdup(name))) {
        free(job);
        free(zip);
        ef_lambda_error(ex, rid, 500, "ServiceException", "out of memory");
        return;
    }
    job->ctl = ctl;
    job->zip_len = zip_len;
    job->publish = publish;
    memcpy(job->request_id, rid, sizeof(rid));
    job->ex = ex;
    ef_http_exchange_on_abort(ex, on_code_aborted, job);
    r = ef_code_lane_upload(ctl->code_lane, name, zip, zip_len, on_code_uploaded, job, &err);
    if (r < 0) {
        code_job_free(job);
        ef_lambda_error(ex, rid, 500, "ServiceException", "%s", err.msg);
    }
}

/* Replaces a malloc'd string field; false when memory runs out. */
static bool set_field(char **field, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return false;
    free(*field);
    *field = copy;
    return true;
}

void ef_api_update_function_configuration(struct ef_controller *ctl, ef_http_exchange *ex,
                                          const struct ef_http_request *req, const char *name,
                                          const char *qualifier)
{
    char rid[EF_REQUEST_ID_LEN + 1];
    ef_request_id_new(rid);
    if (ef_api_reject_qualifier(ex, "UpdateFunctionConfiguration", name, qualifier) < 0)
        return;
    cleanup_cjson cJSON *body = parse_body(ex, rid, req);
    if (!body)
        return;

    struct ef_config_request conf;
    const char *member = NULL, *type = NULL;
    if (ef_config_request_read(body, &conf, &member, &type) < 0) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException", "%s must be %s", member,
                        type);
        return;
    }
    const char *runtime = conf.runtime, *handler = conf.handler, *description = conf.description;
    const cJSON *vars = conf.variables;
    bool has_memory = conf.has_memory, has_timeout = conf.has_timeout,
         has_concurrency = conf.has_concurrency, has_env = conf.has_environment;
    int64_t memory = conf.memory_mb, timeout = conf.timeout_s, concurrency = conf.concurrency;
    enum ef_function_network network = EF_FN_NETWORK_NONE;

    ef_error err = {0};
    if ((runtime && ef_validate_runtime(runtime, &err) < 0) ||
        (has_memory && ef_validate_memory(memory, &err) < 0) ||
        (has_timeout && ef_validate_timeout(timeout, &err) < 0) ||
        (has_concurrency && ef_validate_container_concurrency(concurrency, &err) < 0) ||
        (conf.network &&
         ef_validate_network_mode(conf.network, ctl->allow_host_network, &network, &err) < 0) ||
        (has_env && ef_validate_environment(vars, &err) < 0) ||
        (conf.role && ef_validate_role(conf.role, &err) < 0) ||
        ef_validate_description(description, &err) < 0) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException", "%s", err.msg);
        return;
    }

    struct ef_function *fn = load_for_update(ctl, ex, rid, name);
    if (!fn)
        return;
    int r = 0;

    /* The handler is checked against the runtime the function ends up with. */
    const char *final_runtime = runtime ? runtime : fn->runtime;
    const char *final_handler = handler ? handler : fn->handler;
    if (ef_validate_handler(final_runtime, final_handler, &err) < 0) {
        ef_function_free(fn);
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException", "%s", err.msg);
        return;
    }
    cleanup_free char *env_text = NULL;
    /* "Variables": null is no variables, as an absent member is. */
    if (has_env &&
        !(env_text = vars && !cJSON_IsNull(vars) ? cJSON_PrintUnformatted(vars) : strdup("{}")))
        r = -ENOMEM;
    if (r == 0 && ((runtime && !set_field(&fn->runtime, runtime)) ||
                   (handler && !set_field(&fn->handler, handler)) ||
                   (description && !set_field(&fn->description, description)) ||
                   (env_text && !set_field(&fn->environment, env_text)) ||
                   (conf.role && !set_field(&fn->role, conf.role))))
        r = -ENOMEM;
    if (has_memory)
        fn->memory_mb = memory;
    if (has_timeout)
        fn->timeout_s = timeout;
    if (has_concurrency)
        fn->container_concurrency = concurrency;
    if (conf.network)
        fn->network = network;
    char *now = ef_format_last_modified();
    if (r == 0 && (!now || ef_function_compute_config_hash(fn) < 0))
        r = -ENOMEM;
    if (now) {
        free(fn->last_modified);
        fn->last_modified = now;
    }
    if (r == 0)
        r = ef_store_update_function(ctl->store, fn, &err);
    else
        ef_error_set(&err, r, "out of memory");
    if (r == -ENOENT) {
        ef_function_free(fn);
        ef_api_function_not_found(ex, name);
        return;
    }
    if (r < 0) {
        ef_function_free(fn);
        ef_lambda_error(ex, rid, 500, "ServiceException", "%s", err.msg);
        return;
    }
    ef_info("configuration of function %s updated (runtime %s, handler %s, %lld MB, %lld s, "
            "network %s)",
            name, fn->runtime, fn->handler, (long long)fn->memory_mb, (long long)fn->timeout_s,
            ef_function_network_name(fn->network));
    ef_api_function_changed(ctl, name);
    ef_lambda_respond_json(ex, 200, rid, ef_api_function_configuration(fn));
    ef_function_free(fn);
}
