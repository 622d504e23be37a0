/* The string hash map (strmap.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

static void strmap_empty_map_finds_nothing(void)
{
    ssp_strmap map;

    ssp_strmap_init(&map);
    CHECK(ssp_strmap_get(&map, "a") == NULL);
    CHECK(ssp_strmap_getn(&map, "a", 1) == NULL);
    CHECK(ssp_strmap_remove(&map, "a") == NULL);
    CHECK_INT_EQ(map.count, 0);
    ssp_strmap_destroy(&map);
    ssp_strmap_destroy(&map); /* destroy leaves an empty map behind */
}

static void strmap_put_then_get_returns_the_value(void)
{
    ssp_strmap map;
    int a = 1, b = 2;
    void *previous = &a;

    ssp_strmap_init(&map);
    REQUIRE_INT_EQ(ssp_strmap_put(&map, "alpha", &a, &previous), 0);
    CHECK(previous == NULL);
    REQUIRE_INT_EQ(ssp_strmap_put(&map, "beta", &b, NULL), 0);
    CHECK(ssp_strmap_get(&map, "alpha") == &a);
    CHECK(ssp_strmap_get(&map, "beta") == &b);
    CHECK(ssp_strmap_get(&map, "gamma") == NULL);
    CHECK(ssp_strmap_get(&map, "alph") == NULL);
    CHECK(ssp_strmap_get(&map, "alphaa") == NULL);
    CHECK(ssp_strmap_get(&map, "") == NULL);
    CHECK_INT_EQ(map.count, 2);
    ssp_strmap_destroy(&map);
}

static void strmap_put_existing_key_replaces_and_returns_the_previous_value(void)
{
    ssp_strmap map;
    int a = 1, b = 2;
    void *previous = NULL;
    char key2[] = "key";

    ssp_strmap_init(&map);
    REQUIRE_INT_EQ(ssp_strmap_put(&map, "key", &a, NULL), 0);
    REQUIRE_INT_EQ(ssp_strmap_put(&map, key2, &b, &previous), 0);
    CHECK(previous == &a);
    CHECK(ssp_strmap_get(&map, "key") == &b);
    CHECK_INT_EQ(map.count, 1);
    ssp_strmap_destroy(&map);
}

static void strmap_remove_returns_the_value_and_forgets_the_key(void)
{
    ssp_strmap map;
    int a = 1, b = 2;

    ssp_strmap_init(&map);
    REQUIRE_INT_EQ(ssp_strmap_put(&map, "a", &a, NULL), 0);
    REQUIRE_INT_EQ(ssp_strmap_put(&map, "b", &b, NULL), 0);
    CHECK(ssp_strmap_remove(&map, "a") == &a);
    CHECK(ssp_strmap_get(&map, "a") == NULL);
    CHECK(ssp_strmap_remove(&map, "a") == NULL);
    CHECK(ssp_strmap_get(&map, "b") == &b);
    CHECK_INT_EQ(map.count, 1);
    REQUIRE_INT_EQ(ssp_strmap_put(&map, "a", &b, NULL), 0);
    CHECK(ssp_strmap_get(&map, "a") == &b);
    CHECK_INT_EQ(map.count, 2);
    ssp_strmap_destroy(&map);
}

static void strmap_getn_matches_keys_that_are_not_nul_terminated(void)
{
    ssp_strmap map;
    int a = 1, b = 2;
    /* exact-size heap buffers, so a read past len is caught by the sanitizers */
    char *buf = malloc(8);

    REQUIRE(buf != NULL);
    memcpy(buf, "gym-nord", 8);
    ssp_strmap_init(&map);
    REQUIRE_INT_EQ(ssp_strmap_put(&map, "gym", &a, NULL), 0);
    REQUIRE_INT_EQ(ssp_strmap_put(&map, "gym-nord", &b, NULL), 0);
    CHECK(ssp_strmap_getn(&map, buf, 3) == &a);
    CHECK(ssp_strmap_getn(&map, buf, 8) == &b);
    CHECK(ssp_strmap_getn(&map, buf, 4) == NULL);
    CHECK(ssp_strmap_getn(&map, buf, 0) == NULL);
    CHECK(ssp_strmap_getn(&map, buf + 4, 4) == NULL);
    free(buf);
    ssp_strmap_destroy(&map);
}

static void strmap_getn_does_not_match_a_key_with_an_embedded_nul(void)
{
    ssp_strmap map;
    int a = 1;

    ssp_strmap_init(&map);
    REQUIRE_INT_EQ(ssp_strmap_put(&map, "gym", &a, NULL), 0);
    CHECK(ssp_strmap_getn(&map, "gym\0x", 5) == NULL);
    CHECK(ssp_strmap_getn(&map, "gym\0", 4) == NULL);
    ssp_strmap_destroy(&map);
}

#define MANY 5000

typedef struct each_ctx {
    int calls;
    int stop_after;
    unsigned char seen[MANY];
} each_ctx;

static int count_entry(const char *key, void *value, void *ctx_ptr)
{
    each_ctx *ctx = ctx_ptr;

    (void)key;
    (void)value;
    ctx->calls++;
    return ctx->stop_after > 0 && ctx->calls >= ctx->stop_after;
}

static int mark_entry(const char *key, void *value, void *ctx_ptr)
{
    each_ctx *ctx = ctx_ptr;
    long index = strtol(key + 1, NULL, 10);

    (void)value;
    ctx->calls++;
    if (index >= 0 && index < MANY)
        ctx->seen[index]++;
    return 0;
}

static void strmap_many_inserts_and_removes_keep_every_entry_reachable(void)
{
    static char keys[MANY][16];
    static int values[MANY];
    static each_ctx ctx;
    ssp_strmap map;
    size_t live = 0;

    ssp_strmap_init(&map);
    for (int i = 0; i < MANY; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        values[i] = i;
        REQUIRE_INT_EQ(ssp_strmap_put(&map, keys[i], &values[i], NULL), 0);
    }
    CHECK_INT_EQ(map.count, MANY);
    CHECK(map.capacity * 3 >= (size_t)MANY * 4);
    CHECK((map.capacity & (map.capacity - 1)) == 0);
    /* remove every odd key, leaving tombstones between the even ones */
    for (int i = 1; i < MANY; i += 2)
        CHECK(ssp_strmap_remove(&map, keys[i]) == &values[i]);
    CHECK_INT_EQ(map.count, MANY / 2);
    for (int i = 0; i < MANY; i++) {
        void *want = i % 2 == 0 ? &values[i] : NULL;

        if (ssp_strmap_get(&map, keys[i]) != want) {
            CHECK_FAIL("key %s: wrong lookup after removals", keys[i]);
            break;
        }
    }
    /* put them back: found again, and the even ones are not duplicated */
    for (int i = 0; i < MANY; i++)
        REQUIRE_INT_EQ(ssp_strmap_put(&map, keys[i], &values[i], NULL), 0);
    CHECK_INT_EQ(map.count, MANY);
    memset(&ctx, 0, sizeof ctx);
    ssp_strmap_each(&map, mark_entry, &ctx);
    CHECK_INT_EQ(ctx.calls, MANY);
    for (int i = 0; i < MANY; i++) {
        if (ctx.seen[i] != 1) {
            CHECK_FAIL("key %s seen %d times by ssp_strmap_each", keys[i], ctx.seen[i]);
            break;
        }
    }
    for (int i = 0; i < MANY; i++)
        live += ssp_strmap_get(&map, keys[i]) == &values[i];
    CHECK_INT_EQ(live, MANY);
    ssp_strmap_destroy(&map);
}

static void strmap_churn_of_inserts_and_removes_does_not_grow_the_table(void)
{
    /* Tombstones count towards the load; once they fill the table it must be
     * rebuilt at the same size instead of growing or looping forever. */
    static char keys[64][16];
    ssp_strmap map;
    int value = 7;
    size_t max_capacity = 0;

    ssp_strmap_init(&map);
    for (int i = 0; i < 64; i++)
        snprintf(keys[i], sizeof keys[i], "user%d", i);
    for (int round = 0; round < 20000; round++) {
        const char *key = keys[round % 64];

        REQUIRE_INT_EQ(ssp_strmap_put(&map, key, &value, NULL), 0);
        if (round % 3 != 0)
            CHECK(ssp_strmap_remove(&map, key) == &value);
        if (map.capacity > max_capacity)
            max_capacity = map.capacity;
        if (map.used > map.capacity * 3 / 4) {
            CHECK_FAIL("round %d: %zu of %zu slots used", round, map.used, map.capacity);
            break;
        }
    }
    CHECK(max_capacity <= 256);
    CHECK(map.count <= 64);
    for (int i = 0; i < 64; i++) {
        void *got = ssp_strmap_get(&map, keys[i]);

        CHECK(got == NULL || got == &value);
    }
    ssp_strmap_destroy(&map);
}

static void strmap_matches_a_reference_model_under_random_operations(void)
{
    enum { N_KEYS = 300, ROUNDS = 50000 };
    static char keys[N_KEYS][16];
    static int values[N_KEYS];
    static bool present[N_KEYS];
    ssp_strmap map;
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    size_t expected_count = 0;

    ssp_strmap_init(&map);
    memset(present, 0, sizeof present);
    for (int i = 0; i < N_KEYS; i++) {
        snprintf(keys[i], sizeof keys[i], "@u%d:x", i);
        values[i] = i;
    }
    for (int round = 0; round < ROUNDS; round++) {
        int k, op;
        void *got;

        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        k = (int)(rng % N_KEYS);
        op = (int)((rng >> 32) % 3);
        if (op == 0) {
            REQUIRE_INT_EQ(ssp_strmap_put(&map, keys[k], &values[k], NULL), 0);
            expected_count += !present[k];
            present[k] = true;
        } else if (op == 1) {
            got = ssp_strmap_remove(&map, keys[k]);
            if (got != (present[k] ? &values[k] : NULL)) {
                CHECK_FAIL("round %d: remove(%s) disagrees with the model", round, keys[k]);
                break;
            }
            expected_count -= present[k];
            present[k] = false;
        } else {
            got = ssp_strmap_get(&map, keys[k]);
            if (got != (present[k] ? &values[k] : NULL)) {
                CHECK_FAIL("round %d: get(%s) disagrees with the model", round, keys[k]);
                break;
            }
        }
        if (map.count != expected_count) {
            CHECK_FAIL("round %d: count %zu, model %zu", round, map.count, expected_count);
            break;
        }
    }
    ssp_strmap_destroy(&map);
}

static void strmap_each_stops_when_the_callback_returns_non_zero(void)
{
    ssp_strmap map;
    each_ctx ctx;
    static char keys[10][8];

    ssp_strmap_init(&map);
    for (int i = 0; i < 10; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        REQUIRE_INT_EQ(ssp_strmap_put(&map, keys[i], keys[i], NULL), 0);
    }
    memset(&ctx, 0, sizeof ctx);
    ctx.stop_after = 3;
    CHECK_INT_EQ(ssp_strmap_each(&map, count_entry, &ctx), 1);
    CHECK_INT_EQ(ctx.calls, 3);
    memset(&ctx, 0, sizeof ctx);
    CHECK_INT_EQ(ssp_strmap_each(&map, count_entry, &ctx), 0);
    CHECK_INT_EQ(ctx.calls, 10);
    ssp_strmap_destroy(&map);
}

static void strmap_get_hashed_finds_what_getn_finds(void)
{
    ssp_strmap map;
    int a = 1, b = 2;
    static const char text[] = "alphabet";

    ssp_strmap_init(&map);
    CHECK(ssp_strmap_get_hashed(&map, "alpha", 5, ssp_strmap_hash("alpha", 5)) == NULL);
    REQUIRE_INT_EQ(ssp_strmap_put(&map, "alpha", &a, NULL), 0);
    REQUIRE_INT_EQ(ssp_strmap_put(&map, "beta", &b, NULL), 0);
    CHECK(ssp_strmap_get_hashed(&map, "alpha", 5, ssp_strmap_hash("alpha", 5)) == &a);
    CHECK(ssp_strmap_get_hashed(&map, "beta", 4, ssp_strmap_hash("beta", 4)) == &b);
    /* a prefix of a longer text, as getn takes it */
    CHECK(ssp_strmap_get_hashed(&map, text, 5, ssp_strmap_hash(text, 5)) == &a);
    CHECK(ssp_strmap_get_hashed(&map, text, 8, ssp_strmap_hash(text, 8)) == NULL);
    CHECK(ssp_strmap_hash("alpha", 5) != ssp_strmap_hash("beta", 4));
    ssp_strmap_destroy(&map);
}

void run_strmap_tests(void)
{
    RUN(strmap_get_hashed_finds_what_getn_finds);
    RUN(strmap_empty_map_finds_nothing);
    RUN(strmap_put_then_get_returns_the_value);
    RUN(strmap_put_existing_key_replaces_and_returns_the_previous_value);
    RUN(strmap_remove_returns_the_value_and_forgets_the_key);
    RUN(strmap_getn_matches_keys_that_are_not_nul_terminated);
    RUN(strmap_getn_does_not_match_a_key_with_an_embedded_nul);
    RUN(strmap_many_inserts_and_removes_keep_every_entry_reachable);
    RUN(strmap_churn_of_inserts_and_removes_does_not_grow_the_table);
    RUN(strmap_matches_a_reference_model_under_random_operations);
    RUN(strmap_each_stops_when_the_callback_returns_non_zero);
}
