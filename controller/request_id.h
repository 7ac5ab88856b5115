/* Request ids: random UUIDs (version 4), as Lambda's x-amzn-RequestId. */
#pragma once

#define EF_REQUEST_ID_LEN 36

/* Writes a new UUID v4 from the CSPRNG ("9f3c…-…") and a NUL into `out`. Returns 0, or -EIO when
 * the random generators fail (then `out` holds an id made of the time and a counter: unique,
 * well-formed, but predictable). */
int ef_request_id_new(char out[EF_REQUEST_ID_LEN + 1]);
