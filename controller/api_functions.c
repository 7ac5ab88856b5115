/* CreateFunction and GetFunction. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <uv.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/base64.h"
#include "controller/codestore.h"
#include "controller/controller.h"
#include "controller/invoke.h"
#include "controller/lambda_errors.h"
#include "controller/request_id.h"
#include "controller/store.h"
#include "controller/validate.h"

/* One CreateFunction whose code is being stored on a worker thread. */
struct create_job {
    uv_work_t work;
    struct ef_controller *ctl;
    ef_http_exchange *ex; /* NULL once the client went away; the function is created anyway */
    char request_id[EF_REQUEST_ID_LEN + 1];
    struct ef_function *fn;
    unsigned char *zip;
    size_t zip_len;
    /* Filled by the worker. */
    int result;
    ef_error err;
    char hex[EF_SHA256_HEX_LEN + 1];
    unsigned char digest[EF_SHA256_LEN];
};

void ef_api_function_not_found(ef_http_exchange *ex, const char *name)
{
    cleanup_free char *arn = ef_function_arn(name);
    ef_lambda_error(ex, NULL, 404, "ResourceNotFoundException", "Function not found: %s",
                    arn ? arn : name);
}

cJSON *ef_api_function_configuration(const struct ef_function *fn)
{
    cleanup_cjson cJSON *c = cJSON_CreateObject();
    cleanup_free char *arn = ef_function_arn(fn->name);
    cleanup_free char *sha_b64 = NULL;
    unsigned char digest[EF_SHA256_LEN];

    /* Lambda's CodeSha256 is the base64 of the digest; the store keeps it in hex. */
    for (size_t i = 0; i < EF_SHA256_LEN; i++) {
        unsigned v = 0;
        if (sscanf(fn->code_sha256_hex + 2 * i, "%2x", &v) != 1)
            return NULL;
        digest[i] = (unsigned char)v;
    }
    sha_b64 = ef_base64_encode(digest, sizeof(digest));

    cJSON *vars = cJSON_Parse(fn->environment);
    cJSON *env = cJSON_CreateObject();
    if (!c || !arn || !sha_b64 || !vars || !env) {
        cJSON_Delete(vars);
        cJSON_Delete(env);
        return NULL;
    }
    cJSON_AddItemToObject(env, "Variables", vars);
    cJSON_AddItemToObject(c, "Environment", env);
    if (!cJSON_AddStringToObject(c, "FunctionName", fn->name) ||
        !cJSON_AddStringToObject(c, "FunctionArn", arn) ||
        !cJSON_AddStringToObject(c, "Runtime", fn->runtime) ||
        !cJSON_AddStringToObject(c, "Role", "arn:aws:iam::000000000000:role/easyfaas") ||
        !cJSON_AddStringToObject(c, "Handler", fn->handler) ||
        !cJSON_AddNumberToObject(c, "CodeSize", (double)fn->code_size) ||
        !cJSON_AddStringToObject(c, "Description", fn->description) ||
        !cJSON_AddNumberToObject(c, "Timeout", (double)fn->timeout_s) ||
        !cJSON_AddNumberToObject(c, "MemorySize", (double)fn->memory_mb) ||
        !cJSON_AddStringToObject(c, "LastModified", fn->last_modified) ||
        !cJSON_AddStringToObject(c, "CodeSha256", sha_b64) ||
        !cJSON_AddStringToObject(c, "Version", "$LATEST") ||
        !cJSON_AddStringToObject(c, "State", "Active") ||
        !cJSON_AddStringToObject(c, "LastUpdateStatus", "Successful") ||
        !cJSON_AddStringToObject(c, "PackageType", "Zip"))
        return NULL;
    return steal_pointer(&c);
}

static char *format_last_modified(void)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    char *s = NULL;
    if (asprintf(&s, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld+0000", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000)) < 0)
        return NULL;
    return s;
}

static void create_job_free(struct create_job *job)
{
    ef_function_free(job->fn);
    free(job->zip);
    free(job);
}

static void on_create_aborted(ef_http_exchange *ex, void *user)
{
    (void)ex;
    struct create_job *job = user;
    job->ex = NULL;
}

static void create_work(uv_work_t *w)
{
    struct create_job *job = (struct create_job *)w;
    job->result = ef_codestore_put(job->ctl->code_root, job->zip, job->zip_len,
                                   &ef_zip_default_limits, job->hex, job->digest, &job->err);
}

static void create_after_work(uv_work_t *w, int status)
{
    struct create_job *job = (struct create_job *)w;
    struct ef_function *fn = job->fn;
    ef_http_exchange *ex = job->ex;
    ef_error err = {0};
    int r;

    if (status < 0) {
        r = ef_error_set(&err, -ECANCELED, "storing the code was cancelled: %s",
                         uv_strerror(status));
    } else if (job->result < 0) {
        r = job->result;
        err = job->err;
    } else {
        fn->code_sha256_hex = strdup(job->hex);
        fn->code_size = (int64_t)job->zip_len;
        fn->last_modified = format_last_modified();
        if (!fn->code_sha256_hex || !fn->last_modified || ef_function_compute_config_hash(fn) < 0)
            r = ef_error_set(&err, -ENOMEM, "out of memory");
        else
            r = ef_store_insert_function(job->ctl->store, fn, &err);
    }

    if (r == 0)
        ef_info("function %s created (runtime %s, code %s, %lld bytes)", fn->name, fn->runtime,
                fn->code_sha256_hex, (long long)fn->code_size);
    else if (r != -EINVAL && r != -EEXIST)
        ef_error("cannot create function %s: %s", fn->name, err.msg);

    if (ex) {
        if (r == -EINVAL)
            ef_lambda_error(ex, job->request_id, 400, "InvalidParameterValueException", "%s",
                            err.msg);
        else if (r == -EEXIST)
            ef_lambda_error(ex, job->request_id, 409, "ResourceConflictException", "%s", err.msg);
        else if (r < 0)
            ef_lambda_error(ex, job->request_id, 500, "ServiceException", "%s", err.msg);
        else
            ef_lambda_respond_json(ex, 201, job->request_id, ef_api_function_configuration(fn));
    }
    create_job_free(job);
}

/* Reads an optional string member; -1 when present with another type. */
static int get_string(const cJSON *obj, const char *name, const char **ret)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *ret = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v))
        return -1;
    *ret = v->valuestring;
    return 0;
}

/* Reads an optional integer member into *ret (left alone when absent); -1 when present and not
 * an integer. */
static int get_int(const cJSON *obj, const char *name, int64_t *ret)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble)
        return -1;
    *ret = (int64_t)v->valuedouble;
    return 0;
}

#define BAD_TYPE(field, type)                                                                      \
    do {                                                                                           \
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException", "%s must be " type,        \
                        field);                                                                    \
        return;                                                                                    \
    } while (0)

void ef_api_create_function(struct ef_controller *ctl, ef_http_exchange *ex,
                            const struct ef_http_request *req)
{
    char rid[EF_REQUEST_ID_LEN + 1];
    ef_request_id_new(rid);

    cleanup_cjson cJSON *body = cJSON_ParseWithLength(req->body, req->body_len);
    if (!cJSON_IsObject(body)) {
        ef_lambda_error(ex, rid, 400, "InvalidRequestContentException",
                        "Could not parse request body into json: expected a JSON object");
        return;
    }

    const char *name, *runtime, *handler, *description, *zip_b64;
    int64_t memory = EF_MEMORY_DEFAULT_MB, timeout = EF_TIMEOUT_DEFAULT_S;
    if (get_string(body, "FunctionName", &name) < 0)
        BAD_TYPE("FunctionName", "a string");
    if (get_string(body, "Runtime", &runtime) < 0)
        BAD_TYPE("Runtime", "a string");
    if (get_string(body, "Handler", &handler) < 0)
        BAD_TYPE("Handler", "a string");
    if (get_string(body, "Description", &description) < 0)
        BAD_TYPE("Description", "a string");
    if (get_int(body, "MemorySize", &memory) < 0)
        BAD_TYPE("MemorySize", "an integer");
    if (get_int(body, "Timeout", &timeout) < 0)
        BAD_TYPE("Timeout", "an integer");

    const cJSON *env = cJSON_GetObjectItemCaseSensitive(body, "Environment");
    const cJSON *vars = NULL;
    if (env && !cJSON_IsNull(env)) {
        if (!cJSON_IsObject(env))
            BAD_TYPE("Environment", "an object");
        vars = cJSON_GetObjectItemCaseSensitive(env, "Variables");
    }

    const cJSON *code = cJSON_GetObjectItemCaseSensitive(body, "Code");
    if (!cJSON_IsObject(code))
        BAD_TYPE("Code", "an object with ZipFile (base64 of a zip)");
    if (get_string(code, "ZipFile", &zip_b64) < 0 || !zip_b64) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException",
                        "Code.ZipFile (base64 of a zip) is required; S3 and image packages are "
                        "not supported");
        return;
    }

    /* Custom runtimes run /var/task/bootstrap whatever the handler says. */
    if (!handler && runtime && !ef_runtime_is_python(runtime))
        handler = "bootstrap";

    ef_error err = {0};
    if (ef_validate_function_name(name, &err) < 0 || ef_validate_runtime(runtime, &err) < 0 ||
        ef_validate_handler(runtime, handler, &err) < 0 || ef_validate_memory(memory, &err) < 0 ||
        ef_validate_timeout(timeout, &err) < 0 || ef_validate_environment(vars, &err) < 0 ||
        ef_validate_description(description, &err) < 0) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException", "%s", err.msg);
        return;
    }

    /* Answer a taken name before decoding and storing megabytes of code; the INSERT still
     * settles races between two concurrent creates. */
    struct ef_function *existing = NULL;
    int r = ef_store_get_function(ctl->store, name, &existing, &err);
    ef_function_free(existing);
    if (r == 0) {
        ef_lambda_error(ex, rid, 409, "ResourceConflictException", "Function already exist: %s",
                        name);
        return;
    }
    if (r != -ENOENT) {
        ef_lambda_error(ex, rid, 500, "ServiceException", "%s", err.msg);
        return;
    }

    struct create_job *job = calloc(1, sizeof(*job));
    if (!job || !(job->fn = calloc(1, sizeof(*job->fn)))) {
        free(job);
        ef_lambda_error(ex, rid, 500, "ServiceException", "out of memory");
        return;
    }
    job->ctl = ctl;
    memcpy(job->request_id, rid, sizeof(rid));
    struct ef_function *fn = job->fn;
    fn->name = strdup(name);
    fn->runtime = strdup(runtime);
    fn->handler = strdup(handler);
    fn->memory_mb = memory;
    fn->timeout_s = timeout;
    fn->description = strdup(description ? description : "");
    fn->environment = vars ? cJSON_PrintUnformatted(vars) : strdup("{}");
    if (!fn->name || !fn->runtime || !fn->handler || !fn->description || !fn->environment) {
        create_job_free(job);
        ef_lambda_error(ex, rid, 500, "ServiceException", "out of memory");
        return;
    }

    r = ef_base64_decode(zip_b64, strlen(zip_b64), &job->zip, &job->zip_len);
    if (r < 0 || job->zip_len == 0) {
        create_job_free(job);
        if (r == -ENOMEM)
            ef_lambda_error(ex, rid, 500, "ServiceException", "out of memory");
        else
            ef_lambda_error(ex, rid, 400, "InvalidParameterValueException",
                            "Code.ZipFile is not valid base64");
        return;
    }

    /* Hashing, extracting and fsyncing a zip of up to 250 MB unzipped would stall every other
     * request, so it runs on libuv's thread pool. */
    job->ex = ex;
    ef_http_exchange_on_abort(ex, on_create_aborted, job);
    r = uv_queue_work(ctl->loop, &job->work, create_work, create_after_work);
    if (r < 0) {
        create_job_free(job);
        ef_lambda_error(ex, rid, 500, "ServiceException", "cannot queue work: %s", uv_strerror(r));
    }
}

void ef_api_get_function(struct ef_controller *ctl, ef_http_exchange *ex, const char *name)
{
    struct ef_function *fn = NULL;
    ef_error err = {0};
    int r = ef_store_get_function(ctl->store, name, &fn, &err);
    if (r == -ENOENT) {
        ef_api_function_not_found(ex, name);
        return;
    }
    if (r < 0) {
        ef_lambda_error(ex, NULL, 500, "ServiceException", "%s", err.msg);
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON *config = ef_api_function_configuration(fn);
    cJSON *code = cJSON_CreateObject();
    ef_function_free(fn);
    if (!doc || !config || !code) {
        cJSON_Delete(doc);
        cJSON_Delete(config);
        cJSON_Delete(code);
        ef_lambda_error(ex, NULL, 500, "ServiceException", "out of memory");
        return;
    }
    cJSON_AddStringToObject(code, "RepositoryType", "S3");
    cJSON_AddStringToObject(code, "Location", "");
    cJSON_AddItemToObject(doc, "Configuration", config);
    cJSON_AddItemToObject(doc, "Code", code);
    ef_lambda_respond_json(ex, 200, NULL, doc);
}
