/* Strict JSON for request bodies; see json_body.h. */
#include "controller/json_body.h"

#include <string.h>

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Whether the (valid) JSON text has a `\u0000` escape inside a string. */
static bool has_nul_escape(const char *s, size_t len)
{
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            if (s[i] == '"')
                in_string = true;
            continue;
        }
        if (s[i] == '"') {
            in_string = false;
        } else if (s[i] == '\\') {
            if (i + 5 < len && s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0)
                return true;
            i++; /* the escaped character */
        }
    }
    return false;
}

cJSON *ef_json_parse_body(const char *text, size_t len, bool allow_nul_strings,
                          const char **ret_why)
{
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!doc) {
        *ret_why = "it is not valid JSON";
        return NULL;
    }
    for (const char *p = end; p < text + len; p++) {
        if (!is_json_space(*p)) {
            cJSON_Delete(doc);
            *ret_why = "something follows the JSON value";
            return NULL;
        }
    }
    if (!allow_nul_strings && has_nul_escape(text, len)) {
        cJSON_Delete(doc);
        *ret_why = "a string holds a NUL character (\\u0000)";
        return NULL;
    }
    return doc;
}
