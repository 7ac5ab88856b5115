/* PublishVersion and ListVersionsByFunction. A version is an immutable snapshot of $LATEST's
 * code and configuration, numbered 1, 2, … per function (see store.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/base64.h"
#include "controller/code_lane.h"
#include "controller/codestore.h"
#include "controller/controller.h"
#include "controller/function_config.h"
#include "controller/lambda_errors.h"
#include "controller/request_id.h"
#include "controller/store.h"
#include "controller/validate.h"

/* Turns Lambda's CodeSha256 (base64 of the digest) into the store's hex; false when it is not
 * the base64 of 32 bytes. */
static bool sha256_b64_to_hex(const char *b64, char hex[EF_SHA256_HEX_LEN + 1])
{
    unsigned char *digest = NULL;
    size_t len = 0;
    if (ef_base64_decode(b64, strlen(b64), &digest, &len) < 0 || len != EF_SHA256_LEN) {
        free(digest);
        return false;
    }
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < EF_SHA256_LEN; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[EF_SHA256_HEX_LEN] = '\0';
    free(digest);
    return true;
}

void ef_api_publish_version(struct ef_controller *ctl, ef_http_exchange *ex,
                            const struct ef_http_request *req, const char *name,
                            const char *qualifier)
{
    char rid[EF_REQUEST_ID_LEN + 1];
    ef_request_id_new(rid);
    if (ef_api_reject_qualifier(ex, "PublishVersion", name, qualifier) < 0)
        return;
    /* Every member is optional, and some clients send no body at all. */
    cleanup_cjson cJSON *body = ef_api_body_object(ex, rid, req, true);
    if (!body)
        return;
    const char *sha_b64 = NULL, *description = NULL;
    ef_error err = {0};
    if (ef_json_get_string(body, "CodeSha256", &sha_b64) < 0 ||
        ef_json_get_string(body, "Description", &description) < 0) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException",
                        "CodeSha256 and Description must be strings");
        return;
    }
    if (ef_validate_description(description, &err) < 0) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException", "%s", err.msg);
        return;
    }
    char expected[EF_SHA256_HEX_LEN + 1];
    if (sha_b64 && !sha256_b64_to_hex(sha_b64, expected)) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException",
                        "CodeSha256 '%.64s' is not the base64 of a SHA-256 digest", sha_b64);
        return;
    }
    if (ef_code_lane_busy(ctl->code_lane, name)) {
        cleanup_free char *arn = ef_function_qualified_arn(name, NULL);
        ef_lambda_error(ex, rid, 409, "ResourceConflictException",
                        "The operation cannot be performed at this time. An update is in "
                        "progress for resource: %s",
                        arn ? arn : name);
        return;
    }

    cleanup_free char *now = ef_format_last_modified();
    struct ef_function *fn = NULL;
    bool created = false;
    int r = now ? ef_store_publish_version(ctl->store, name, description, sha_b64 ? expected : NULL,
                                           now, &fn, &created, &err)
                : ef_error_set(&err, -ENOMEM, "out of memory");
    if (r == -ENOENT) {
        ef_api_function_not_found(ex, name);
        return;
    }
    if (r == -ESTALE) {
        ef_lambda_error(ex, rid, 412, "PreconditionFailedException",
                        "CodeSHA256 (%s) is different from current CodeSHA256 in $LATEST. Please "
                        "try again with the current CodeSHA256.",
                        sha_b64);
        return;
    }
    if (r < 0) {
        ef_lambda_error(ex, rid, 500, "ServiceException", "%s", err.msg);
        return;
    }
    if (created)
        ef_info("function %s published as version %s (code %s)", name, fn->version,
                fn->code_sha256_hex);
    ef_lambda_respond_json(ex, 201, rid, ef_api_function_configuration(fn));
    ef_function_free(fn);
}

void ef_api_list_versions(struct ef_controller *ctl, ef_http_exchange *ex,
                          const struct ef_http_request *req, const char *name,
                          const char *qualifier)
{
    if (ef_api_reject_qualifier(ex, "ListVersionsByFunction", name, qualifier) < 0)
        return;
    size_t max = 0;
    if (ef_api_page_size(ex, req, &max) < 0)
        return;
    cleanup_free char *marker = ef_http_query_param(req->query, "Marker");
    cleanup_free char *after = NULL;
    int64_t after_version = 0;
    if (marker && *marker) {
        if (ef_api_parse_marker(ex, marker, &after, &after_version) < 0)
            return;
        if (strcmp(after, name) != 0) {
            ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException",
                            "Marker '%.100s' belongs to another function", marker);
            return;
        }
    }

    struct ef_function *fn = NULL;
    ef_error err = {0};
    int r = ef_store_get_function(ctl->store, name, &fn, &err);
    ef_function_free(fn);
    if (r == -ENOENT) {
        ef_api_function_not_found(ex, name);
        return;
    }
    struct ef_function_page page = {0};
    if (r == 0)
        r = ef_store_list(ctl->store, name, true, after, after_version, max, &page, &err);
    if (r < 0) {
        ef_lambda_error(ex, NULL, 500, "ServiceException", "%s", err.msg);
        return;
    }
    ef_api_respond_page(ex, &page, "Versions", true, true);
}
