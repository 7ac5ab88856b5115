/* Durations on the command line: "250ms", "90s", "15m", "6h", "14d", or a plain number of
 * seconds. */
#pragma once

#include <stdint.h>

#include "common/error.h"

/* Parses `text` into milliseconds. Accepts a decimal integer followed by one of the units ms,
 * s, m, h, d (none means seconds). -EINVAL for anything else, or a value above 10 years. */
int ef_parse_duration_ms(const char *text, uint64_t *ret_ms, ef_error *err);
