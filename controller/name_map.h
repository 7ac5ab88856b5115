/* A map from function names to per-function state (the scheduler's queues, the metrics' series):
 * a chained hash table that grows as names are added. Keys are copied; values are the caller's
 * and are never freed by the map. */
#pragma once

#include <stddef.h>

struct ef_name_entry {
    struct ef_name_entry *next; /* in its bucket */
    void *value;
    char name[]; /* the key */
};

struct ef_name_map {
    struct ef_name_entry **buckets;
    size_t n_buckets; /* 0 until the first put */
    size_t count;
};

/* Initialises an empty map (no allocation until the first put). */
void ef_name_map_init(struct ef_name_map *map);

/* Frees the map's entries (not the values). The map is empty and usable afterwards. */
void ef_name_map_clear(struct ef_name_map *map);

/* The value stored under `name`, or NULL. */
void *ef_name_map_get(const struct ef_name_map *map, const char *name);

/* Stores `value` (not NULL) under `name`, replacing any value there. Returns 0 or -ENOMEM. */
int ef_name_map_put(struct ef_name_map *map, const char *name, void *value);

/* Removes `name` and returns its value (NULL when it was not there). */
void *ef_name_map_remove(struct ef_name_map *map, const char *name);

/* Iterates: pass *pos = NULL and *bucket = 0 first; returns the next entry or NULL at the end.
 * The map must not change during an iteration, except by removing the entry just returned. */
struct ef_name_entry *ef_name_map_next(const struct ef_name_map *map, size_t *bucket,
                                       struct ef_name_entry **pos);
