/* The function store: SQLite on disk (<data>/controller.db).
 *
 * Tables: `functions` holds each function's $LATEST (its mutable code and configuration, its
 * reserved concurrency and the number of the last version published); `function_versions`
 * holds the published versions, immutable snapshots of code and configuration numbered 1, 2, …
 * per function (a number is never reused, even after its version was deleted). The schema is
 * versioned with `PRAGMA user_version`; ef_store_open() migrates an older database in one
 * transaction and keeps its rows.
 *
 * Durability: the database runs in WAL mode with synchronous=FULL, so every committed
 * transaction's WAL frames are fsync'ed before the commit returns. A change the API has
 * acknowledged therefore survives a crash of the process and of the machine. (NORMAL would
 * only survive a process crash: WAL+NORMAL may lose the last commits on power loss.) Management
 * calls are rare next to invocations, so the extra fsync costs nothing that matters.
 *
 * Every function here runs on the loop thread; none is safe to call from a worker. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct ef_store ef_store;

/* Where a function's containers are on the network (funclet's `network` of container.acquire,
 * docs/rpc.md "Network modes"). The values are stored by name; none is the default. */
enum ef_function_network {
    EF_FN_NETWORK_NONE = 0, /* its own network namespace with only loopback */
    EF_FN_NETWORK_BRIDGE,   /* that namespace plus eth0 on funclet's bridge */
    EF_FN_NETWORK_HOST,     /* the pod's own network: only for trusted functions */
};

/* The version name of a function's mutable head. */
#define EF_VERSION_LATEST "$LATEST"
/* The Role reported for a function created without one (and for those stored before Role was). */
#define EF_DEFAULT_ROLE "arn:aws:iam::000000000000:role/easyfaas"

/* One function version's metadata, as stored. Every string is owned by the struct. */
struct ef_function {
    char *name;
    char *version; /* "$LATEST" or "1", "2", …; NULL means "$LATEST" (see ef_function_version) */
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
    /* Invocations one container of this version serves at once (1–64; default 1).
     * PerExecutionEnvironmentMaxConcurrency in the API; the runtime sees it as
     * AWS_LAMBDA_MAX_CONCURRENCY. */
    int64_t container_concurrency;
    /* NetworkMode in the API; part of the config hash when not none. */
    enum ef_function_network network;
    /* The execution role ARN the caller gave (Role), reported back as Lambda does; nothing
     * here assumes it. NULL stands for EF_DEFAULT_ROLE. Not part of the config hash. */
    char *role;
    /* The function's reserved concurrency (shared by all its versions); false: none set. */
    bool has_reserved_concurrency;
    int64_t reserved_concurrency;
};

/* Opens (creating if needed) the database at `path`, migrating its schema to the current one. */
int ef_store_open(const char *path, ef_store **ret_store, ef_error *err);

/* Closes the database; NULL is fine. */
void ef_store_close(ef_store *store);

/* Inserts a new function ($LATEST) in one transaction. -EEXIST when the name is taken. */
int ef_store_insert_function(ef_store *store, const struct ef_function *fn, ef_error *err);

/* Looks a function's $LATEST up by name. -ENOENT when there is none; *ret_fn is freed with
 * ef_function_free(). */
int ef_store_get_function(ef_store *store, const char *name, struct ef_function **ret_fn,
                          ef_error *err);

/* Looks up `qualifier` of a function: NULL or "$LATEST" for the head, or a version number
 * ("1", "2", …). -ENOENT when the function or that version does not exist, which includes
 * qualifiers that are no version number (alias names: this store has no aliases). */
int ef_store_get_function_version(ef_store *store, const char *name, const char *qualifier,
                                  struct ef_function **ret_fn, ef_error *err);

/* Replaces the code and configuration of a function's $LATEST with those of `fn` (looked up by
 * fn->name; version, concurrency and the version counter are kept). -ENOENT when it does not
 * exist. */
int ef_store_update_function(ef_store *store, const struct ef_function *fn, ef_error *err);

/* Deletes a function with all its versions and its concurrency setting, in one transaction.
 * -ENOENT when it does not exist. */
int ef_store_delete_function(ef_store *store, const char *name, ef_error *err);

/* Deletes one published version. -ENOENT when the function or the version does not exist. */
int ef_store_delete_version(ef_store *store, const char *name, int64_t version, ef_error *err);

/* Publishes $LATEST as a new version, in one transaction: the next number, the code and
 * configuration of $LATEST, `description` (NULL: $LATEST's own) and the current time. When the
 * newest published version already has $LATEST's code and configuration, nothing is published
 * and that version is returned, as Lambda does; *ret_created says which happened (may be NULL).
 * With `expected_sha256_hex` (may be NULL) the code of $LATEST must be that one, else -ESTALE.
 * -ENOENT when the function does not exist. */
int ef_store_publish_version(ef_store *store, const char *name, const char *description,
                             const char *expected_sha256_hex, const char *last_modified,
                             struct ef_function **ret_fn, bool *ret_created, ef_error *err);

/* Sets a function's reserved concurrency; `has_value` false removes it. -ENOENT when the function
 * does not exist. */
int ef_store_set_concurrency(ef_store *store, const char *name, bool has_value, int64_t value,
                             ef_error *err);

/* The sum of the reserved concurrency of every function except `except_name` (may be NULL). */
int ef_store_reserved_concurrency_total(ef_store *store, const char *except_name,
                                        int64_t *ret_total, ef_error *err);

/* A page of a listing, in (name, version) order with $LATEST before version 1. */
struct ef_function_page {
    struct ef_function **items;
    size_t n;
    bool more; /* another page follows the last item */
};

/* Lists function versions after the position (`after_name`, `after_version`) — both NULL/0 to
 * start at the beginning; after_version 0 is $LATEST. `name` (may be NULL) restricts the list to
 * one function; `all_versions` false lists $LATEST only. At most `max_items` items. */
int ef_store_list(ef_store *store, const char *name, bool all_versions, const char *after_name,
                  int64_t after_version, size_t max_items, struct ef_function_page *ret_page,
                  ef_error *err);

/* Frees the items of a page (not the page struct itself). */
void ef_function_page_free(struct ef_function_page *page);

/* Calls `cb` with the code sha256 (hex) of every code zip a function or a version refers to,
 * each once. A negative return from `cb` stops the walk and is returned. */
int ef_store_for_each_code(ef_store *store, int (*cb)(const char *hex, void *user), void *user,
                           ef_error *err);

/* Frees a function record and its strings; NULL is fine. */
void ef_function_free(struct ef_function *fn);

/* "$LATEST" when fn->version is NULL, else fn->version. */
const char *ef_function_version(const struct ef_function *fn);

/* Turns a version string into its number: 0 for NULL or "$LATEST", N for a decimal number
 * 1 … 2^53; -1 for anything else (an alias name, or a number out of range). */
int64_t ef_version_number(const char *version);

/* The API and store name of a network mode: "none", "bridge" or "host". */
const char *ef_function_network_name(enum ef_function_network mode);

/* Reads a network mode's name into *ret_mode. -EINVAL (and *ret_mode untouched) for any other
 * string, NULL included. */
int ef_function_network_parse(const char *name, enum ef_function_network *ret_mode);

/* Computes fn->config_hash from the settings a running container depends on (runtime, handler,
 * memory, timeout, environment, per-container concurrency, network mode), so that a container
 * started for one configuration is never reused for another. Returns 0 or -ENOMEM. */
int ef_function_compute_config_hash(struct ef_function *fn);
