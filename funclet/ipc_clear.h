/* The IPC objects a function leaves in its container: System V shared memory, message queues
 * and semaphore sets, and POSIX message queues, live in the container's IPC namespace until they
 * are removed or the namespace ends. A container is reset and pooled for any function's next
 * runtime (container.c), and its IPC namespace lives as long as its runner: without this, the
 * next function could read what the previous one left there, or find its keys taken. */
#pragma once

#include <sys/types.h>

#include "common/error.h"

/* Removes every IPC object of the IPC namespace of process `pid` (the container's runner),
 * from a short-lived child that joins that namespace (and a private mount namespace, to see its
 * POSIX queues). Returns the number of objects removed, or a negative errno with `err`. */
int ef_ipc_clear(pid_t pid, ef_error *err);
