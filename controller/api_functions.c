/* CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions and DeleteFunction, and
 * the helpers every management handler shares. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/json_body.h"
#include "controller/base64.h"
#include "controller/code_lane.h"
#include "controller/codestore.h"
#include "controller/controller.h"
#include "controller/function_config.h"
#include "controller/lambda_errors.h"
#include "controller/pool.h"
#include "controller/request_id.h"
#include "controller/store.h"
#include "controller/validate.h"

/* One CreateFunction whose code is being stored by the code lane. */
struct create_job {
    struct ef_controller *ctl;
    ef_http_exchange *ex; /* NULL once the client went away; the function is created anyway */
    char request_id[EF_REQUEST_ID_LEN + 1];
    struct ef_function *fn;
    size_t zip_len;
    bool publish;
};

void ef_api_function_not_found(ef_http_exchange *ex, const char *name)
{
    ef_api_version_not_found(ex, name, NULL);
}

int ef_api_load_function(struct ef_controller *ctl, ef_http_exchange *ex, const char *rid,
                         const char *name, struct ef_function **ret_fn)
{
    ef_error err = {0};
    int r = ef_store_get_function(ctl->store, name, ret_fn, &err);
    if (r == -ENOENT) {
        ef_api_function_not_found(ex, name);
        return -1;
    }
    if (r < 0) {
        ef_lambda_error(ex, rid, 500, "ServiceException", "%s", err.msg);
        return -1;
    }
    return 0;
}

void ef_api_version_not_found(ef_http_exchange *ex, const char *name, const char *qualifier)
{
    cleanup_free char *arn = ef_function_qualified_arn(name, qualifier);
    ef_lambda_error(ex, NULL, 404, "ResourceNotFoundException", "Function not found: %s",
                    arn ? arn : name);
}

int ef_api_reject_qualifier(ef_http_exchange *ex, const char *operation, const char *name,
                            const char *qualifier)
{
    if (!qualifier || strcmp(qualifier, EF_VERSION_LATEST) == 0)
        return 0;
    ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException",
                    "%s does not take a qualifier ('%s:%s'): published versions are immutable; "
                    "name the function without one",
                    operation, name, qualifier);
    return -1;
}

cJSON *ef_api_body_object(ef_http_exchange *ex, const char *rid, const struct ef_http_request *req,
                          bool empty_is_object)
{
    if (req->body_len == 0 && empty_is_object)
        return cJSON_CreateObject();
    const char *why = "it is not a JSON object";
    cJSON *body = ef_json_parse_body(req->body ? req->body : "", req->body_len, false, &why);
    if (body && !cJSON_IsObject(body)) {
        cJSON_Delete(body);
        body = NULL;
    }
    if (!body)
        ef_lambda_error(ex, rid, 400, "InvalidRequestContentException",
                        "Could not parse request body into json: expected a JSON object; %s", why);
    return body;
}

cJSON *ef_api_function_configuration(const struct ef_function *fn)
{
    return ef_function_configuration_json(fn, false);
}

/* The version field of a pool key "<name>\n<version>\n<sha>\n<hash>", copied into `out`. */
static bool key_version(const char *key, char *out, size_t cap)
{
    const char *v = strchr(key, '\n');
    const char *end = v ? strchr(v + 1, '\n') : NULL;
    if (!end || (size_t)(end - v - 1) >= cap)
        return false;
    memcpy(out, v + 1, (size_t)(end - v - 1));
    out[end - v - 1] = '\0';
    return true;
}

/* Whether a container's identity still names a stored version with the same code and
 * configuration. */
static bool identity_current(struct ef_controller *ctl, const struct ef_container *c)
{
    char version[64];
    if (!key_version(c->key, version, sizeof(version)))
        return false;
    struct ef_function *fn = NULL;
    if (ef_store_get_function_version(ctl->store, c->function_name, version, &fn, NULL) < 0)
        return false;
    cleanup_free char *key = ef_pool_function_key(fn);
    ef_function_free(fn);
    return key && strcmp(key, c->key) == 0;
}

void ef_api_function_changed(struct ef_controller *ctl, const char *name)
{
    struct ef_container *next;
    for (struct ef_container *c = ctl->pool.head; c; c = next) {
        next = c->next; /* discarding unlinks (and may free) c */
        if (c->state == EF_CONTAINER_IDLE && strcmp(c->function_name, name) == 0 &&
            !identity_current(ctl, c))
            ef_pool_discard(c, "its function was updated or deleted");
    }
    ef_code_lane_collect(ctl->code_lane);
}

int ef_api_decode_zip(ef_http_exchange *ex, const char *rid, const char *b64,
                      unsigned char **ret_zip, size_t *ret_len)
{
    size_t b64_len = strlen(b64);
    /* Every 4 characters of base64 hold 3 bytes; refuse before allocating for a hopeless one. */
    if (b64_len / 4 * 3 > (size_t)EF_CODE_MAX_ZIPPED + 3) {
        ef_lambda_error(ex, rid, 413, "RequestTooLargeException",
                        "Zipped code must be smaller than %u bytes (about %zu given)",
                        EF_CODE_MAX_ZIPPED, b64_len / 4 * 3);
        return -1;
    }
    unsigned char *zip = NULL;
    size_t len = 0;
    int r = ef_base64_decode(b64, b64_len, &zip, &len);
    if (r == -ENOMEM) {
        ef_lambda_error(ex, rid, 500, "ServiceException", "out of memory");
        return -1;
    }
    if (r < 0 || len == 0) {
        free(zip);
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException",
                        "ZipFile is not valid base64 of a zip file");
        return -1;
    }
    if (len > EF_CODE_MAX_ZIPPED) {
        free(zip);
        ef_lambda_error(ex, rid, 413, "RequestTooLargeException",
                        "Zipped code must be smaller than %u bytes (%zu given)", EF_CODE_MAX_ZIPPED,
                        len);
        return -1;
    }
    *ret_zip = zip;
    *ret_len = len;
    return 0;
}

static void create_job_free(struct create_job *job)
{
    ef_function_free(job->fn);
    free(job);
}

static void on_create_aborted(ef_http_exchange *ex, void *user)
{
    (void)ex;
    struct create_job *job = user;
    job->ex = NULL;
}

static void on_create_uploaded(struct ef_controller *ctl, int r, const ef_error *upload_err,
                               const char *hex, void *user)
{
    struct create_job *job = user;
    struct ef_function *fn = job->fn;
    struct ef_function *published = NULL;
    ef_http_exchange *ex = job->ex;
    ef_error err = {0};

    if (r < 0) {
        err = *upload_err;
    } else {
        fn->code_sha256_hex = strdup(hex);
        fn->code_size = (int64_t)job->zip_len;
        fn->last_modified = ef_format_last_modified();
        if (!fn->code_sha256_hex || !fn->last_modified || ef_function_compute_config_hash(fn) < 0)
            r = ef_error_set(&err, -ENOMEM, "out of memory");
        else
            r = ef_store_insert_function(ctl->store, fn, &err);
        if (r == 0 && job->publish)
            r = ef_store_publish_version(ctl->store, fn->name, NULL, NULL, fn->last_modified,
                                         &published, NULL, &err);
    }

    if (r == 0)
        ef_info("function %s created (runtime %s, code %s, %lld bytes)%s", fn->name, fn->runtime,
                fn->code_sha256_hex, (long long)fn->code_size,
                published ? ", published as version 1" : "");
    else if (r != -EINVAL && r != -EEXIST)
        ef_error("cannot create function %s: %s", fn->name, err.msg);
    if (r < 0)
        ef_code_lane_collect(ctl->code_lane); /* the zip may be referenced by nothing now */

    if (ex) {
        if (r == -EINVAL)
            ef_lambda_error(ex, job->request_id, 400, "InvalidParameterValueException", "%s",
                            err.msg);
        else if (r == -EEXIST)
            ef_lambda_error(ex, job->request_id, 409, "ResourceConflictException", "%s", err.msg);
        else if (r < 0)
            ef_lambda_error(ex, job->request_id, 500, "ServiceException", "%s", err.msg);
        else
            ef_lambda_respond_json(ex, 201, job->request_id,
                                   ef_api_function_configuration(published ? published : fn));
    }
    ef_function_free(published);
    create_job_free(job);
}

void ef_api_create_function(struct ef_controller *ctl, ef_http_exchange *ex,
                            const struct ef_http_request *req)
{
    char rid[EF_REQUEST_ID_LEN + 1];
    ef_request_id_new(rid);

    cleanup_cjson cJSON *body = ef_api_body_object(ex, rid, req, false);
    if (!body)
        return;

    struct ef_config_request conf;
    const char *member = NULL, *type = NULL;
    if (ef_config_request_read(body, &conf, &member, &type) < 0) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException", "%s must be %s", member,
                        type);
        return;
    }
    const char *name = NULL, *zip_b64 = NULL, *package_type = NULL;
    const char *runtime = conf.runtime, *handler = conf.handler, *description = conf.description;
    const cJSON *vars = conf.variables;
    int64_t memory = conf.has_memory ? conf.memory_mb : EF_MEMORY_DEFAULT_MB;
    int64_t timeout = conf.has_timeout ? conf.timeout_s : EF_TIMEOUT_DEFAULT_S;
    int64_t concurrency = conf.has_concurrency ? conf.concurrency : 1;
    enum ef_function_network network = EF_FN_NETWORK_NONE;
    bool publish = false;
    if (ef_json_get_string(body, "FunctionName", &name) < 0)
        EF_API_BAD_TYPE("FunctionName", "a string");
    if (ef_json_get_string(body, "PackageType", &package_type) < 0)
        EF_API_BAD_TYPE("PackageType", "a string");
    if (ef_json_get_bool(body, "Publish", &publish) < 0)
        EF_API_BAD_TYPE("Publish", "a boolean");
    if (package_type && strcmp(package_type, "Zip") != 0) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException",
                        "PackageType %.32s is not supported; only Zip packages are", package_type);
        return;
    }

    const cJSON *code = cJSON_GetObjectItemCaseSensitive(body, "Code");
    if (!cJSON_IsObject(code))
        EF_API_BAD_TYPE("Code", "an object with ZipFile (base64 of a zip)");
    if (ef_json_get_string(code, "ZipFile", &zip_b64) < 0 || !zip_b64) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException",
                        "Code.ZipFile (base64 of a zip) is required; S3 and image packages are "
                        "not supported");
        return;
    }

    /* Custom runtimes run /var/task/bootstrap whatever the handler says. */
    if (!handler && ef_runtime_is_custom(runtime))
        handler = "bootstrap";

    ef_error err = {0};
    if (ef_validate_function_name(name, &err) < 0 || ef_validate_runtime(runtime, &err) < 0 ||
        ef_validate_handler(runtime, handler, &err) < 0 || ef_validate_memory(memory, &err) < 0 ||
        ef_validate_timeout(timeout, &err) < 0 || ef_validate_environment(vars, &err) < 0 ||
        ef_validate_description(description, &err) < 0 ||
        ef_validate_container_concurrency(concurrency, &err) < 0 ||
        ef_validate_network_mode(conf.network ? conf.network : "none", ctl->allow_host_network,
                                 &network, &err) < 0 ||
        (conf.role && ef_validate_role(conf.role, &err) < 0)) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException", "%s", err.msg);
        return;
    }

    /* Answer a taken name before decoding and storing megabytes of code; the INSERT still
     * settles races between two concurrent creates. */
    struct ef_function *existing = NULL;
    int r = ef_store_get_function(ctl->store, name, &existing, &err);
    ef_function_free(existing);
    if (r == 0 || (r == -ENOENT && ef_code_lane_busy(ctl->code_lane, name))) {
        ef_lambda_error(ex, rid, 409, "ResourceConflictException", "Function already exist: %s",
                        name);
        return;
    }
    if (r != -ENOENT) {
        ef_lambda_error(ex, rid, 500, "ServiceException", "%s", err.msg);
        return;
    }

    unsigned char *zip = NULL;
    size_t zip_len = 0;
    if (ef_api_decode_zip(ex, rid, zip_b64, &zip, &zip_len) < 0)
        return;

    struct create_job *job = calloc(1, sizeof(*job));
    if (!job || !(job->fn = calloc(1, sizeof(*job->fn)))) {
        free(job);
        free(zip);
        ef_lambda_error(ex, rid, 500, "ServiceException", "out of memory");
        return;
    }
    job->ctl = ctl;
    job->zip_len = zip_len;
    job->publish = publish;
    memcpy(job->request_id, rid, sizeof(rid));
    struct ef_function *fn = job->fn;
    fn->name = strdup(name);
    fn->runtime = strdup(runtime);
    fn->handler = strdup(handler);
    fn->memory_mb = memory;
    fn->timeout_s = timeout;
    fn->container_concurrency = concurrency;
    fn->network = network;
    fn->description = strdup(description ? description : "");
    /* "Variables": null is no variables, as an absent member is. */
    fn->environment = vars && !cJSON_IsNull(vars) ? cJSON_PrintUnformatted(vars) : strdup("{}");
    fn->role = strdup(conf.role ? conf.role : EF_DEFAULT_ROLE);
    if (!fn->name || !fn->runtime || !fn->handler || !fn->description || !fn->environment ||
        !fn->role) {
        free(zip);
        create_job_free(job);
        ef_lambda_error(ex, rid, 500, "ServiceException", "out of memory");
        return;
    }

    job->ex = ex;
    ef_http_exchange_on_abort(ex, on_create_aborted, job);
    r = ef_code_lane_upload(ctl->code_lane, name, zip, zip_len, on_create_uploaded, job, &err);
    if (r < 0) {
        create_job_free(job);
        ef_lambda_error(ex, rid, 500, "ServiceException", "%s", err.msg);
    }
}

/* Loads a function version for a Get* call; answers 404/500 itself and returns NULL. */
static struct ef_function *load_version(struct ef_controller *ctl, ef_http_exchange *ex,
                                        const char *name, const char *qualifier)
{
    struct ef_function *fn = NULL;
    ef_error err = {0};
    int r = ef_store_get_function_version(ctl->store, name, qualifier, &fn, &err);
    if (r == -ENOENT) {
        /* An unqualified name or $LATEST names the function itself. */
        bool latest = !qualifier || strcmp(qualifier, EF_VERSION_LATEST) == 0;
        ef_api_version_not_found(ex, name, latest ? NULL : qualifier);
        return NULL;
    }
    if (r < 0) {
        ef_lambda_error(ex, NULL, 500, "ServiceException", "%s", err.msg);
        return NULL;
    }
    return fn;
}

void ef_api_get_function(struct ef_controller *ctl, ef_http_exchange *ex, const char *name,
                         const char *qualifier)
{
    struct ef_function *fn = load_version(ctl, ex, name, qualifier);
    if (!fn)
        return;
    cJSON *doc = cJSON_CreateObject();
    cJSON *config = ef_api_function_configuration(fn);
    cJSON *code = cJSON_CreateObject();
    cJSON *concurrency = NULL;
    if (fn->has_reserved_concurrency) {
        concurrency = cJSON_CreateObject();
        if (concurrency)
            cJSON_AddNumberToObject(concurrency, "ReservedConcurrentExecutions",
                                    (double)fn->reserved_concurrency);
    }
    bool ok = doc && config && code && (!fn->has_reserved_concurrency || concurrency);
    ef_function_free(fn);
    if (!ok) {
        cJSON_Delete(doc);
        cJSON_Delete(config);
        cJSON_Delete(code);
        cJSON_Delete(concurrency);
        ef_lambda_error(ex, NULL, 500, "ServiceException", "out of memory");
        return;
    }
    /* Lambda gives a presigned S3 URL here; the code stays inside the pod, so there is none. */
    cJSON_AddStringToObject(code, "RepositoryType", "S3");
    cJSON_AddStringToObject(code, "Location", "");
    cJSON_AddItemToObject(doc, "Configuration", config);
    cJSON_AddItemToObject(doc, "Code", code);
    if (concurrency)
        cJSON_AddItemToObject(doc, "Concurrency", concurrency);
    ef_lambda_respond_json(ex, 200, NULL, doc);
}

void ef_api_get_function_configuration(struct ef_controller *ctl, ef_http_exchange *ex,
                                       const char *name, const char *qualifier)
{
    struct ef_function *fn = load_version(ctl, ex, name, qualifier);
    if (!fn)
        return;
    cJSON *config = ef_api_function_configuration(fn);
    ef_function_free(fn);
    ef_lambda_respond_json(ex, 200, NULL, config);
}

int ef_api_parse_marker(ef_http_exchange *ex, const char *marker, char **ret_name,
                        int64_t *ret_version)
{
    cleanup_free char *name = NULL;
    cleanup_free char *qualifier = NULL;
    int64_t v = 0;
    if (ef_parse_function_ref(marker, &name, &qualifier, NULL) < 0 ||
        (v = ef_version_number(qualifier)) < 0) {
        ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException",
                        "Marker '%.100s' is not valid: pass the NextMarker of the previous page",
                        marker);
        return -1;
    }
    *ret_name = steal_pointer(&name);
    *ret_version = v;
    return 0;
}

int ef_api_page_size(ef_http_exchange *ex, const struct ef_http_request *req, size_t *ret)
{
    cleanup_free char *text = ef_http_query_param(req->query, "MaxItems");
    int64_t v = EF_LIST_PAGE_MAX;
    ef_error err = {0};
    if (text && ef_parse_max_items(text, &v, &err) < 0) {
        ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException", "%s", err.msg);
        return -1;
    }
    *ret = v > EF_LIST_PAGE_MAX ? EF_LIST_PAGE_MAX : (size_t)v;
    return 0;
}

void ef_api_respond_page(ef_http_exchange *ex, struct ef_function_page *page, const char *key,
                         bool qualify_latest, bool marker_with_version)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = doc ? cJSON_AddArrayToObject(doc, key) : NULL;
    bool ok = arr != NULL;
    for (size_t i = 0; ok && i < page->n; i++) {
        cJSON *c = ef_function_configuration_json(page->items[i], qualify_latest);
        ok = c && cJSON_AddItemToArray(arr, c);
    }
    if (ok && page->more && page->n > 0) {
        const struct ef_function *last = page->items[page->n - 1];
        cleanup_free char *marker = NULL;
        if (marker_with_version)
            ok = asprintf(&marker, "%s:%s", last->name, ef_function_version(last)) >= 0;
        else
            marker = strdup(last->name);
        ok = ok && marker && cJSON_AddStringToObject(doc, "NextMarker", marker);
    }
    ef_function_page_free(page);
    if (!ok) {
        cJSON_Delete(doc);
        ef_lambda_error(ex, NULL, 500, "ServiceException", "out of memory");
        return;
    }
    ef_lambda_respond_json(ex, 200, NULL, doc);
}

void ef_api_list_functions(struct ef_controller *ctl, ef_http_exchange *ex,
                           const struct ef_http_request *req)
{
    size_t max = 0;
    if (ef_api_page_size(ex, req, &max) < 0)
        return;
    cleanup_free char *which = ef_http_query_param(req->query, "FunctionVersion");
    if (which && strcmp(which, "ALL") != 0) {
        ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException",
                        "1 validation error detected: Value '%.40s' at 'functionVersion' failed "
                        "to satisfy constraint: Member must satisfy enum value set: [ALL]",
                        which);
        return;
    }
    bool all = which != NULL;
    cleanup_free char *marker = ef_http_query_param(req->query, "Marker");
    cleanup_free char *after = NULL;
    int64_t after_version = 0;
    if (marker && *marker && ef_api_parse_marker(ex, marker, &after, &after_version) < 0)
        return;

    struct ef_function_page page = {0};
    ef_error err = {0};
    if (ef_store_list(ctl->store, NULL, all, after, after_version, max, &page, &err) < 0) {
        ef_lambda_error(ex, NULL, 500, "ServiceException", "%s", err.msg);
        return;
    }
    ef_api_respond_page(ex, &page, "Functions", all, all);
}

void ef_api_delete_function(struct ef_controller *ctl, ef_http_exchange *ex, const char *name,
                            const char *qualifier)
{
    ef_error err = {0};
    int r;
    int64_t version = ef_version_number(qualifier);
    if (qualifier && version == 0) {
        ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException",
                        "$LATEST version cannot be deleted without deleting the function.");
        return;
    }
    if (qualifier && version < 0) {
        ef_api_version_not_found(ex, name, qualifier); /* an alias: there are none */
        return;
    }
    if (qualifier)
        r = ef_store_delete_version(ctl->store, name, version, &err);
    else
        r = ef_store_delete_function(ctl->store, name, &err);
    if (r == -ENOENT) {
        ef_api_version_not_found(ex, name, qualifier);
        return;
    }
    if (r < 0) {
        ef_lambda_error(ex, NULL, 500, "ServiceException", "%s", err.msg);
        return;
    }
    if (qualifier)
        ef_info("version %s of function %s deleted", qualifier, name);
    else
        ef_info("function %s deleted", name);
    ef_api_function_changed(ctl, name);
    char rid[EF_REQUEST_ID_LEN + 1];
    ef_request_id_new(rid);
    struct ef_http_header headers[] = {{"x-amzn-RequestId", rid}};
    ef_http_respond(ex, 204, headers, EF_ARRAY_SIZE(headers), NULL, "", 0);
}
