/* The runner's Runtime API on literal inputs: URL routing, normalisation of posted errors and
 * the shape of generated trace ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "rapi/runtime_api.h"

static void expect_route(const char *method, const char *path, enum ef_rapi_route want,
                         const char *want_id)
{
    const char *id = NULL;
    size_t len = 0;
    enum ef_rapi_route got = ef_runtime_api_route(method, path, &id, &len);
    assert_int_equal(got, want);
    if (want_id) {
        assert_non_null(id);
        assert_int_equal(len, strlen(want_id));
        assert_memory_equal(id, want_id, len);
    }
}

static void test_known_routes(void **state)
{
    (void)state;
    expect_route("GET", "/2018-06-01/runtime/invocation/next", EF_RAPI_NEXT, NULL);
    expect_route("POST", "/2018-06-01/runtime/invocation/8476a536-e9f4-11e8/response",
                 EF_RAPI_RESPONSE, "8476a536-e9f4-11e8");
    expect_route("POST", "/2018-06-01/runtime/invocation/abc/error", EF_RAPI_ERROR, "abc");
    expect_route("POST", "/2018-06-01/runtime/init/error", EF_RAPI_INIT_ERROR, NULL);
    /* An id that looks like a keyword is still an id. */
    expect_route("POST", "/2018-06-01/runtime/invocation/next/response", EF_RAPI_RESPONSE, "next");
}

static void test_wrong_method_is_not_found(void **state)
{
    (void)state;
    expect_route("POST", "/2018-06-01/runtime/invocation/next", EF_RAPI_NOT_FOUND, NULL);
    expect_route("GET", "/2018-06-01/runtime/invocation/abc/response", EF_RAPI_NOT_FOUND, NULL);
    expect_route("PUT", "/2018-06-01/runtime/invocation/abc/error", EF_RAPI_NOT_FOUND, NULL);
    expect_route("GET", "/2018-06-01/runtime/init/error", EF_RAPI_NOT_FOUND, NULL);
}

static void test_malformed_paths(void **state)
{
    (void)state;
    const char *paths[] = {
        "/",
        "",
        "/2018-06-01/runtime/",
        "/2018-06-01/runtime/invocation/",
        "/2018-06-01/runtime/invocation//response",
        "/2018-06-01/runtime/invocation/abc",
        "/2018-06-01/runtime/invocation/abc/",
        "/2018-06-01/runtime/invocation/abc/responses",
        "/2018-06-01/runtime/invocation/abc/response/",
        "/2018-06-01/runtime/invocation/a/b/response",
        "/2018-06-01/runtime/invocation/next/",
        "/2018-06-01/runtime/init/error/",
        "/2018-06-02/runtime/invocation/next",
        "/2018-06-01/runtime/invocation/nextx",
        "//2018-06-01/runtime/invocation/next",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        const char *id = NULL;
        size_t len = 0;
        assert_int_equal(ef_runtime_api_route("POST", paths[i], &id, &len), EF_RAPI_NOT_FOUND);
        assert_int_equal(ef_runtime_api_route("GET", paths[i], &id, &len), EF_RAPI_NOT_FOUND);
    }
}

static void test_error_doc_object_kept(void **state)
{
    (void)state;
    const char *body = "{\"errorMessage\":\"boom\",\"errorType\":\"ValueError\",\"stackTrace\":[]}";
    char *doc = NULL, *type = NULL;
    assert_int_equal(ef_runtime_error_doc(body, strlen(body), NULL, &doc, &type), 0);
    assert_string_equal(doc, body);
    assert_string_equal(type, "ValueError");
    free(doc);
    free(type);

    /* The header wins over the body. */
    assert_int_equal(ef_runtime_error_doc(body, strlen(body), "Custom.Type", &doc, &type), 0);
    assert_string_equal(type, "Custom.Type");
    assert_string_equal(doc, body);
    free(doc);
    free(type);
    /* A type with a line break in it stays on one line (it goes into the REPORT line). */
    const char *forged =
        "{\"errorType\":\"X\\r\\nREPORT RequestId: forged\",\"errorMessage\":\"m\"}";
    assert_int_equal(ef_runtime_error_doc(forged, strlen(forged), NULL, &doc, &type), 0);
    assert_string_equal(type, "X  REPORT RequestId: forged");
    free(doc);
    free(type);
}

static void test_error_doc_wraps_non_objects(void **state)
{
    (void)state;
    char *doc = NULL, *type = NULL;
    const char *body = "plain text failure";
    assert_int_equal(ef_runtime_error_doc(body, strlen(body), "", &doc, &type), 0);
    assert_string_equal(type, "Unhandled");
    cJSON *j = cJSON_Parse(doc);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "errorMessage")->valuestring, body);
    assert_string_equal(cJSON_GetObjectItem(j, "errorType")->valuestring, "Unhandled");
    cJSON_Delete(j);
    free(doc);
    free(type);

    /* Empty body, a JSON array, and bytes that are not UTF-8: still a valid document. */
    const char *bodies[] = {"", "[1,2]", "bad \xff\xfe bytes"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(
            ef_runtime_error_doc(bodies[i], strlen(bodies[i]), "Runtime.X", &doc, &type), 0);
        assert_string_equal(type, "Runtime.X");
        j = cJSON_Parse(doc);
        assert_non_null(j);
        assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "errorMessage")));
        cJSON_Delete(j);
        free(doc);
        free(type);
    }
}

static void test_error_type_is_bounded(void **state)
{
    (void)state;
    char longtype[1000];
    memset(longtype, 'T', sizeof(longtype) - 1);
    longtype[sizeof(longtype) - 1] = '\0';
    char *doc = NULL, *type = NULL;
    assert_int_equal(ef_runtime_error_doc("{}", 2, longtype, &doc, &type), 0);
    assert_true(strlen(type) <= 128);
    free(doc);
    free(type);
}

static void test_trace_id_shape(void **state)
{
    (void)state;
    char a[96], b[96];
    ef_make_trace_id(a, sizeof(a));
    ef_make_trace_id(b, sizeof(b));
    /* Root=1-XXXXXXXX-YYYYYYYYYYYYYYYYYYYYYYYY;Parent=ZZZZZZZZZZZZZZZZ;Sampled=0 */
    assert_int_equal(strlen(a), strlen("Root=1-") + 8 + 1 + 24 + strlen(";Parent=") + 16 +
                                    strlen(";Sampled=0"));
    assert_memory_equal(a, "Root=1-", 7);
    assert_non_null(strstr(a, ";Parent="));
    assert_non_null(strstr(a, ";Sampled=0"));
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_routes),
        cmocka_unit_test(test_wrong_method_is_not_found),
        cmocka_unit_test(test_malformed_paths),
        cmocka_unit_test(test_error_doc_object_kept),
        cmocka_unit_test(test_error_doc_wraps_non_objects),
        cmocka_unit_test(test_error_type_is_bounded),
        cmocka_unit_test(test_trace_id_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
