/* Request ids: random UUIDs (version 4), as Lambda's x-amzn-RequestId. */
#pragma once

#define EF_REQUEST_ID_LEN 36

/* Writes a new UUID v4 from the CSPRNG ("9f3c…-…") and a NUL into `out`. Returns 0, or -EIO when
 * the random generator fails (then `out` holds an all-zero UUID, still well-formed). */
int ef_request_id_new(char out[EF_REQUEST_ID_LEN + 1]);
