#include "controller/name_map.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 16

/* FNV-1a: short names, no adversary who gains anything from collisions beyond a slower list. */
static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

void ef_name_map_init(struct ef_name_map *map)
{
    map->buckets = NULL;
    map->n_buckets = 0;
    map->count = 0;
}

void ef_name_map_clear(struct ef_name_map *map)
{
    for (size_t i = 0; i < map->n_buckets; i++) {
        struct ef_name_entry *e = map->buckets[i];
        while (e) {
            struct ef_name_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(map->buckets);
    ef_name_map_init(map);
}

static struct ef_name_entry **slot(const struct ef_name_map *map, const char *name)
{
    return &map->buckets[hash_name(name) & (map->n_buckets - 1)];
}

void *ef_name_map_get(const struct ef_name_map *map, const char *name)
{
    if (map->n_buckets == 0)
        return NULL;
    for (struct ef_name_entry *e = *slot(map, name); e; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e->value;
    return NULL;
}

/* Doubles the table (a power of two, so a mask picks the bucket) once it is as full as it has
 * buckets; a failed allocation only keeps the chains longer. */
static void maybe_grow(struct ef_name_map *map)
{
    if (map->n_buckets && map->count < map->n_buckets)
        return;
    size_t n = map->n_buckets ? map->n_buckets * 2 : INITIAL_BUCKETS;
    struct ef_name_entry **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < map->n_buckets; i++) {
        struct ef_name_entry *e = map->buckets[i];
        while (e) {
            struct ef_name_entry *next = e->next;
            struct ef_name_entry **dst = &b[hash_name(e->name) & (n - 1)];
            e->next = *dst;
            *dst = e;
            e = next;
        }
    }
    free(map->buckets);
    map->buckets = b;
    map->n_buckets = n;
}

int ef_name_map_put(struct ef_name_map *map, const char *name, void *value)
{
    maybe_grow(map);
    if (map->n_buckets == 0)
        return -ENOMEM;
    struct ef_name_entry **head = slot(map, name);
    for (struct ef_name_entry *e = *head; e; e = e->next) {
        if (strcmp(e->name, name) == 0) {
            e->value = value;
            return 0;
        }
    }
    size_t len = strlen(name);
    struct ef_name_entry *e = malloc(sizeof(*e) + len + 1);
    if (!e)
        return -ENOMEM;
    memcpy(e->name, name, len + 1);
    e->value = value;
    e->next = *head;
    *head = e;
    map->count++;
    return 0;
}

void *ef_name_map_remove(struct ef_name_map *map, const char *name)
{
    if (map->n_buckets == 0)
        return NULL;
    for (struct ef_name_entry **pp = slot(map, name); *pp; pp = &(*pp)->next) {
        struct ef_name_entry *e = *pp;
        if (strcmp(e->name, name) == 0) {
            void *value = e->value;
            *pp = e->next;
            free(e);
            map->count--;
            return value;
        }
    }
    return NULL;
}

struct ef_name_entry *ef_name_map_next(const struct ef_name_map *map, size_t *bucket,
                                       struct ef_name_entry **pos)
{
    /* *pos is the entry to return next, saved before the caller may remove the current one. */
    struct ef_name_entry *e = *pos;
    while (!e && *bucket < map->n_buckets)
        e = map->buckets[(*bucket)++];
    if (!e)
        return NULL;
    *pos = e->next;
    return e;
}
