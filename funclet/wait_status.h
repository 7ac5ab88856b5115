/* Describing how a process ended. */
#pragma once

#include <stddef.h>

/* Formats a waitpid() status the way docs/rpc.md shows it: "exit status N", or "signal: " and
 * the signal's description in lower case ("signal: killed", "signal: segmentation fault"). */
void ef_wait_status_string(int status, char *buf, size_t len);
