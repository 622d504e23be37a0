/* The storage layer's own parts: the audit queue's writers' side shared by
 * both stores (audit_queue.c), the roster index's load functions the stores use
 * (roster_index.c), and the router's choice of backend (store.c). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "embedded/embedded_store.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

static void submit(ssp_audit_queue *log, const char *actor)
{
    REQUIRE(ssp_audit_submit(log, SSP_RULE_NOT_ON_ROSTER, SSP_CB_CHECK_LOGIN_FOR_SPAM, true,
                             actor, NULL, NULL, NULL, NULL) > 0);
}

static void audit_queue_take_put_back_and_mark_written_keep_order_and_ids(void)
{
    ssp_audit_queue log;
    ssp_audit_batch batch;
    ssp_error err = {0};

    REQUIRE_OK(ssp_audit_open(&log, "main", "the test", 41, -1, &err), err);
    CHECK(!ssp_audit_take(&log, 0, &batch));
    CHECK(!ssp_audit_wait_queued(&log, 0)); /* empty: times out at once */
    submit(&log, "@a:x");
    submit(&log, "@b:x");
    submit(&log, "@c:x");
    CHECK(ssp_audit_wait_queued(&log, -1));
    /* a batch of at most 2: ids continue after the store's last id */
    REQUIRE(ssp_audit_take(&log, 2, &batch));
    CHECK_INT_EQ(batch.count, 2);
    CHECK_INT_EQ(batch.first->id, 42);
    CHECK_INT_EQ(batch.last->id, 43);
    CHECK(batch.last->next == NULL);
    /* a failed write: back to the front, counted, nothing written */
    ssp_audit_put_back(&log, &batch);
    CHECK(batch.first == NULL && batch.count == 0);
    CHECK_INT_EQ(log.stats.write_errors, 1);
    CHECK_INT_EQ(log.last_written_id, 41);
    /* group commit: everything queued in one batch, in order */
    REQUIRE(ssp_audit_take(&log, 0, &batch));
    CHECK_INT_EQ(batch.count, 3);
    CHECK_STR_EQ(batch.first->actor, "@a:x");
    CHECK_STR_EQ(batch.first->next->actor, "@b:x");
    CHECK_STR_EQ(batch.last->actor, "@c:x");
    CHECK(ssp_audit_is_empty(&log));
    ssp_audit_mark_written(&log, &batch);
    CHECK_INT_EQ(log.last_written_id, 44);
    CHECK_INT_EQ(log.stats.written, 3);
    CHECK_INT_EQ(log.stats.queue_depth, 0);
    /* stopping: the writer's wait ends once the queue is empty */
    submit(&log, "@d:x");
    ssp_audit_stop(&log);
    CHECK(ssp_audit_pause(&log, 1000)); /* returns at once when stopping */
    CHECK(ssp_audit_wait_queued(&log, -1)); /* still one to write */
    REQUIRE(ssp_audit_take(&log, 0, &batch));
    ssp_audit_mark_written(&log, &batch);
    CHECK(!ssp_audit_wait_queued(&log, -1));
    ssp_audit_close(&log);
}

static ssp_roster_user *entry(const char *user_id, const char *school)
{
    const char *schools[1] = {school};
    ssp_role roles[1] = {SSP_ROLE_STUDENT};

    return ssp_roster_user_new(user_id, schools, roles, 1);
}

static void roster_index_replace_and_apply_loaded(void)
{
    ssp_roster roster;
    ssp_strmap map, loaded;
    ssp_error err = {0};
    ssp_roster_user *u;
    const char *changed[2] = {"@anna:x", "@ben:x"};

    REQUIRE_OK(ssp_roster_init(&roster, &err), err);
    ssp_strmap_init(&map);
    u = entry("@anna:x", "gym");
    REQUIRE(u != NULL && ssp_strmap_put(&map, u->user_id, u, NULL) == 0);
    u = entry("@ben:x", "gym");
    REQUIRE(u != NULL && ssp_strmap_put(&map, u->user_id, u, NULL) == 0);
    ssp_roster_replace(&roster, &map);
    CHECK_INT_EQ(roster.users.count, 2);
    CHECK_INT_EQ(map.count, 0); /* taken over */
    /* anna changes school, ben is absent from the loaded rows: he leaves */
    ssp_strmap_init(&loaded);
    u = entry("@anna:x", "rs");
    REQUIRE(u != NULL && ssp_strmap_put(&loaded, u->user_id, u, NULL) == 0);
    REQUIRE_OK(ssp_roster_apply_loaded(&roster, changed, 2, &loaded, &err), err);
    CHECK_INT_EQ(loaded.count, 0);
    CHECK_INT_EQ(roster.users.count, 1);
    u = ssp_strmap_get(&roster.users, "@anna:x");
    REQUIRE(u != NULL);
    CHECK_STR_EQ(u->memberships[0].school, "rs");
    ssp_roster_map_free(&loaded);
    ssp_roster_map_free(&map);
    ssp_roster_destroy(&roster);
}

static void router_opens_the_embedded_store_without_database(void)
{
    tu_fixture fx;
    ssp_store_status st;

    if (!tu_setup(&fx, NULL))
        return;
    REQUIRE(fx.engine->store != NULL);
    CHECK(fx.engine->store->ops == &ssp_embedded_store_ops);
    CHECK(!ssp_store_commits_roster_later(fx.engine->store));
    ssp_store_get_status(fx.engine, &st);
    CHECK(!st.postgres);
    CHECK(st.connected);
    tu_teardown(&fx);
}

void run_store_layer_tests(void)
{
    RUN(audit_queue_take_put_back_and_mark_written_keep_order_and_ids);
    RUN(roster_index_replace_and_apply_loaded);
    RUN(router_opens_the_embedded_store_without_database);
}
