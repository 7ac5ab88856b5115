/* The function store: SQLite on disk (<data>/controller.db).
 *
 * Durability: the database runs in WAL mode with synchronous=FULL, so every committed
 * transaction's WAL frames are fsync'ed before the commit returns. A function the API has
 * acknowledged (201) therefore survives a crash of the process and of the machine. (NORMAL would
 * only survive a process crash: WAL+NORMAL may lose the last commits on power loss.) Creating a
 * function is rare next to invoking it, so the extra fsync costs nothing that matters. */
#pragma once

#include <stdint.h>

#include "common/error.h"

typedef struct ef_store ef_store;

/* One function's metadata, as stored. Every string is owned by the struct. */
struct ef_function {
    char *name;
    char *runtime;
    char *handler;
    int64_t memory_mb;
    int64_t timeout_s;
    char *environment;     /* JSON object text of Environment.Variables, "{}" when none */
    char *description;     /* "" when none */
    char *code_sha256_hex; /* 64 lower-case hex digits, names code/zips/<hex>.zip */
    int64_t code_size;     /* bytes of the zip */
    char *last_modified;   /* "2026-11-27T06:30:00.000+0000" */
    char *config_hash;     /* sha256 hex of what a warm container depends on, see below */
};

/* Opens (creating if needed) the database at `path` and its schema. */
int ef_store_open(const char *path, ef_store **ret_store, ef_error *err);

/* Closes the database; NULL is fine. */
void ef_store_close(ef_store *store);

/* Inserts a new function in one transaction. -EEXIST when the name is taken. */
int ef_store_insert_function(ef_store *store, const struct ef_function *fn, ef_error *err);

/* Looks a function up by name. -ENOENT when there is none; *ret_fn is freed with
 * ef_function_free(). */
int ef_store_get_function(ef_store *store, const char *name, struct ef_function **ret_fn,
                          ef_error *err);

/* Frees a function record and its strings; NULL is fine. */
void ef_function_free(struct ef_function *fn);

/* Computes fn->config_hash from the settings a running container depends on (runtime, handler,
 * memory, timeout, environment), so that a container started for one configuration is never
 * reused for another. Returns 0 or -ENOMEM. */
int ef_function_compute_config_hash(struct ef_function *fn);
