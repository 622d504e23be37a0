/*
 * String hash map (strmap.c). Open addressing with linear probing. Keys and
 * values are borrowed: the map owns only its slot array. Values are never
 * NULL.
 */
#ifndef SSP_STRMAP_H
#define SSP_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct ssp_strmap {
    struct ssp_strmap_slot *slots;
    size_t capacity; /* power of two, or 0 */
    size_t count;    /* live entries */
    size_t used;     /* live + deleted slots */
} ssp_strmap;

void ssp_strmap_init(ssp_strmap *map);
void ssp_strmap_destroy(ssp_strmap *map);
void *ssp_strmap_get(const ssp_strmap *map, const char *key);
void *ssp_strmap_getn(const ssp_strmap *map, const char *key, size_t len);
/* The hash every map uses for a key of len bytes. A caller that looks one
 * key up in several maps hashes it once and passes the hash to
 * ssp_strmap_get_hashed, which equals ssp_strmap_getn(map, key, len). */
uint64_t ssp_strmap_hash(const char *key, size_t len);
void *ssp_strmap_get_hashed(const ssp_strmap *map, const char *key, size_t len, uint64_t hash);
/* Inserts or replaces. *previous receives the replaced value or NULL.
 * Returns -1 only when growing the table fails (map unchanged). */
int ssp_strmap_put(ssp_strmap *map, const char *key, void *value, void **previous);
void *ssp_strmap_remove(ssp_strmap *map, const char *key);
/* Grows the map so that n more entries fit without an allocation. */
int ssp_strmap_reserve(ssp_strmap *map, size_t n);
/* An ssp_strmap_each callback that free()s each value: for maps that own
 * their values. */
int ssp_strmap_free_value(const char *key, void *value, void *ctx);
/* Calls fn for every entry; stops early when fn returns non-zero. */
int ssp_strmap_each(const ssp_strmap *map, int (*fn)(const char *key, void *value, void *ctx),
                    void *ctx);

#endif
