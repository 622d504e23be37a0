/* A string-keyed hash map for the roster and config lookups. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

/* A slot is empty (key NULL), live, or deleted (key == TOMBSTONE). */
struct ssp_strmap_slot {
    const char *key;
    void *value;
    uint64_t hash;
};

static const char TOMBSTONE[1];

#define FNV_PRIME 1099511628211ULL
#define FNV_STEP(h, ch) (((h) ^ (unsigned char)(ch)) * FNV_PRIME)

/* FNV-1a, four bytes per round: the same hash with fewer loop
 * instructions (every lookup of a decision hashes a user id). The hash
 * places entries, so it decides the order ssp_strmap_each visits them in;
 * it is kept as it was. */
uint64_t ssp_strmap_hash(const char *key, size_t len)
{
    const unsigned char *p = (const unsigned char *)key;
    uint64_t h = 1469598103934665603ULL;
    size_t i = 0;

    for (; i + 4 <= len; i += 4)
        h = FNV_STEP(FNV_STEP(FNV_STEP(FNV_STEP(h, p[i]), p[i + 1]), p[i + 2]), p[i + 3]);
    for (; i < len; i++)
        h = FNV_STEP(h, p[i]);
    return h;
}

void ssp_strmap_init(ssp_strmap *map)
{
    memset(map, 0, sizeof *map);
}

void ssp_strmap_destroy(ssp_strmap *map)
{
    free(map->slots);
    ssp_strmap_init(map);
}

static struct ssp_strmap_slot *find_slot(const ssp_strmap *map, const char *key, size_t len,
                                         uint64_t hash)
{
    size_t mask, i;

    if (map->capacity == 0)
        return NULL;
    mask = map->capacity - 1;
    for (i = hash & mask;; i = (i + 1) & mask) {
        struct ssp_strmap_slot *slot = &map->slots[i];

        if (slot->key == NULL)
            return NULL;
        if (slot->key != TOMBSTONE && slot->hash == hash && strncmp(slot->key, key, len) == 0 &&
            slot->key[len] == '\0')
            return slot;
    }
}

void *ssp_strmap_getn(const ssp_strmap *map, const char *key, size_t len)
{
    struct ssp_strmap_slot *slot = find_slot(map, key, len, ssp_strmap_hash(key, len));

    return slot ? slot->value : NULL;
}

void *ssp_strmap_get_hashed(const ssp_strmap *map, const char *key, size_t len, uint64_t hash)
{
    struct ssp_strmap_slot *slot = find_slot(map, key, len, hash);

    return slot ? slot->value : NULL;
}

void *ssp_strmap_get(const ssp_strmap *map, const char *key)
{
    return ssp_strmap_getn(map, key, strlen(key));
}

static void insert_fresh(struct ssp_strmap_slot *slots, size_t capacity,
                         const struct ssp_strmap_slot *entry)
{
    size_t mask = capacity - 1, i;

    for (i = entry->hash & mask; slots[i].key != NULL; i = (i + 1) & mask)
        ;
    slots[i] = *entry;
}

static int rehash(ssp_strmap *map, size_t room_for)
{
    size_t capacity = map->capacity ? map->capacity : 8;
    struct ssp_strmap_slot *slots;

    /* Rehash into a table at most half full; rehashing also drops tombstones,
     * so a table full of them is rebuilt at the same size. */
    while (capacity < (map->count + room_for) * 2)
        capacity *= 2;
    slots = calloc(capacity, sizeof *slots);
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < map->capacity; i++) {
        if (map->slots[i].key != NULL && map->slots[i].key != TOMBSTONE)
            insert_fresh(slots, capacity, &map->slots[i]);
    }
    free(map->slots);
    map->slots = slots;
    map->capacity = capacity;
    map->used = map->count;
    return 0;
}

int ssp_strmap_put(ssp_strmap *map, const char *key, void *value, void **previous)
{
    size_t len = strlen(key);
    uint64_t hash = ssp_strmap_hash(key, len);
    struct ssp_strmap_slot *slot = find_slot(map, key, len, hash);
    struct ssp_strmap_slot entry = {key, value, hash};

    if (previous != NULL)
        *previous = NULL;
    if (slot != NULL) {
        if (previous != NULL)
            *previous = slot->value;
        slot->key = key;
        slot->value = value;
        return 0;
    }
    /* Keep the load (live + tombstones) under 3/4 so probes stay short. */
    if ((map->used + 1) * 4 > map->capacity * 3 && rehash(map, 1) != 0)
        return -1;
    insert_fresh(map->slots, map->capacity, &entry);
    map->count++;
    map->used++;
    return 0;
}

int ssp_strmap_reserve(ssp_strmap *map, size_t n)
{
    if ((map->used + n) * 4 <= map->capacity * 3)
        return 0;
    return rehash(map, n);
}

void *ssp_strmap_remove(ssp_strmap *map, const char *key)
{
    size_t len = strlen(key);
    struct ssp_strmap_slot *slot = find_slot(map, key, len, ssp_strmap_hash(key, len));
    void *value;

    if (slot == NULL)
        return NULL;
    value = slot->value;
    slot->key = TOMBSTONE;
    slot->value = NULL;
    map->count--;
    return value;
}

int ssp_strmap_each(const ssp_strmap *map, int (*fn)(const char *key, void *value, void *ctx),
                    void *ctx)
{
    for (size_t i = 0; i < map->capacity; i++) {
        const struct ssp_strmap_slot *slot = &map->slots[i];
        int rc;

        if (slot->key == NULL || slot->key == TOMBSTONE)
            continue;
        rc = fn(slot->key, slot->value, ctx);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int ssp_strmap_free_value(const char *key, void *value, void *ctx)
{
    (void)key;
    (void)ctx;
    free(value);
    return 0;
}
