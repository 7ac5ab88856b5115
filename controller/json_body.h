/* Request bodies read as JSON the way Lambda reads them: exactly one JSON value, with nothing but
 * whitespace after it (cJSON alone stops at the end of the first value and ignores the rest), and,
 * for the management API, no string holding a NUL character (`\u0000`): cJSON turns strings into
 * C strings, so such a name or environment value would silently end at the NUL. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* Parses `text`; NULL with *ret_why set when it is not one JSON value, has something after it,
 * or (unless `allow_nul_strings`) holds a string with a NUL in it. */
cJSON *ef_json_parse_body(const char *text, size_t len, bool allow_nul_strings,
                          const char **ret_why);
