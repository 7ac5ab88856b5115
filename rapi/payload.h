/* How a body the runtime posted (a response or an error document) travels in the answer to
 * `invoke` (docs/rpc.md): as JSON text in "payload" when it is text that JSON carries without
 * growing much, else byte-exact as base64 in "payload_b64". */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* True when `data` travels as "payload": well-formed UTF-8 with no byte below 0x20 other than
 * tab, newline and carriage return (so no NUL either). */
bool ef_payload_is_text(const char *data, size_t len);

/* Encodes `len` bytes as standard base64 (RFC 4648, padded, no line breaks). Returns a malloc'd
 * NUL-terminated string, or NULL when memory runs out. */
char *ef_payload_base64(const void *data, size_t len);

/* Adds the body to `answer`: "payload" (a JSON string) when ef_payload_is_text(), else
 * "payload_b64" (its base64), never both. `data` must have a NUL at data[len]. A body may be
 * 6 MiB and the runner lives in the function's memory limit, so the item refers to the text
 * instead of copying it: to `data`, or to *ret_b64, a malloc'd base64 string (else NULL). Both
 * must outlive the answer's sending; the caller frees *ret_b64. Returns false when memory runs
 * out. */
bool ef_payload_add(cJSON *answer, const char *data, size_t len, char **ret_b64);
