/* The roster feed without a broker (roster_feed.c, config.c): its config
 * keys, the broker URL's sources, what happens to a message, and the
 * thread's life against a broker that is not there. The broker itself is
 * covered by tests/system/test_roster_feed.py. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "roster_feed_message.h"
#include "embedded/embedded_store.h"
#include "engine_state.h"
#include "roster_feed.h"
#include "roster_feed_api.h"
#include "tests.h"
#include "testutil.h"

#define SECRET "s3cr3t-pw"
#define URL "amqp://sync:" SECRET "@127.0.0.1:5672/school"
#define ANNA "@anna:school.example"
#define GOOD_ANNA                                                                                  \
    "{\"users\": [{\"user_id\": \"" ANNA "\", \"schools\": [{\"school\": \"gym-nord\", "           \
    "\"role\": \"teacher\"}]}]}"
#define BAD_ROLE                                                                                   \
    "{\"users\": [{\"user_id\": \"" ANNA "\", \"schools\": [{\"school\": \"gym-nord\", "           \
    "\"role\": \"janitor\"}]}]}"

/* Parses {"data_dir": "/tmp/x", "roster_feed": <feed>}. */
static int parse_feed(const char *feed, ssp_config *config, ssp_error *err)
{
    char *text = tu_format("{\"data_dir\": \"/tmp/x\", \"roster_feed\": %s}", feed);
    int rc = ssp_config_parse(text, strlen(text), config, err);

    free(text);
    return rc;
}

static void feed_config_is_off_when_absent_or_null(void)
{
    ssp_config config;
    ssp_error err = {0};
    static const char text[] = "{\"data_dir\": \"/tmp/x\"}";

    REQUIRE_OK(ssp_config_parse(text, strlen(text), &config, &err), err);
    CHECK(!config.feed_enabled);
    ssp_config_destroy(&config);
    REQUIRE_OK(parse_feed("null", &config, &err), err);
    CHECK(!config.feed_enabled);
    ssp_config_destroy(&config);
}

static void feed_config_takes_defaults(void)
{
    ssp_config config;
    ssp_error err = {0};

    REQUIRE_OK(parse_feed("{\"url\": \"" URL "\"}", &config, &err), err);
    CHECK(config.feed_enabled);
    CHECK_STR_EQ(config.feed_queue, "school-policy.roster");
    CHECK_STR_EQ(config.feed_dead_letter_queue, "school-policy.roster.dead-letter");
    CHECK_INT_EQ(config.feed_prefetch, 100);
    CHECK_INT_EQ(config.feed_retry_max_seconds, 60);
    CHECK_INT_EQ(config.feed_max_message_bytes, 64 * 1024 * 1024);
    CHECK(config.feed_declare);
    ssp_config_destroy(&config);
    REQUIRE_OK(parse_feed("{\"url_env\": \"X\", \"queue\": \"q\", \"dead_letter_queue\": \"d\", "
                          "\"prefetch\": 7, \"retry_max_seconds\": 5, \"declare_queues\": false,"
                          " \"max_message_bytes\": 1048576}",
                          &config, &err),
               err);
    CHECK_STR_EQ(config.feed_queue, "q");
    CHECK_STR_EQ(config.feed_dead_letter_queue, "d");
    CHECK_INT_EQ(config.feed_prefetch, 7);
    CHECK_INT_EQ(config.feed_max_message_bytes, 1048576);
    CHECK(!config.feed_declare);
    ssp_config_destroy(&config);
}

static void feed_config_errors_name_the_key_path(void)
{
    static const struct {
        const char *feed;
        const char *message;
    } cases[] = {
        {"{}", "roster_feed: give exactly one of url, url_file, url_env"},
        {"{\"url\": \"" URL "\", \"url_env\": \"X\"}", "roster_feed: give exactly one of"},
        {"{\"url\": \"http://" SECRET "@h/\"}", "roster_feed.url: expected an amqp://"},
        {"{\"url\": \"amqps://u:" SECRET "@h/\"}", "roster_feed.url: amqps:// (TLS) is not"},
        {"{\"url\": 5}", "roster_feed.url: expected a non-empty string"},
        {"{\"url_file\": \"\"}", "roster_feed.url_file: expected a non-empty string"},
        {"{\"url\": \"" URL "\", \"prefetch\": 0}",
         "roster_feed.prefetch: expected an integer from 1 to 65535"},
        {"{\"url\": \"" URL "\", \"queue\": \"amq.x\"}", "roster_feed.queue: names starting"},
        {"{\"url\": \"" URL "\", \"queue\": \"q\", \"dead_letter_queue\": \"q\"}",
         "roster_feed.dead_letter_queue: must differ from queue"},
        {"{\"url\": \"" URL "\", \"exchange\": \"x\"}", "roster_feed.exchange: unknown key"},
        {"{\"url\": \"" URL "\", \"declare_queues\": 1}",
         "roster_feed.declare_queues: expected a boolean"},
        {"{\"url\": \"" URL "\", \"max_message_bytes\": 1023}",
         "roster_feed.max_message_bytes: expected an integer from 1024 to 536870912"},
        {"{\"url\": \"" URL "\", \"max_message_bytes\": \"64M\"}",
         "roster_feed.max_message_bytes: expected an integer"},
        {"[]", "roster_feed: expected a mapping"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ssp_config config;
        ssp_error err = {0};

        CHECK_INT_EQ(parse_feed(cases[i].feed, &config, &err), -1);
        CHECK_INT_EQ(err.code, SSP_ERR_INPUT);
        CHECK(strncmp(err.message, cases[i].message, strlen(cases[i].message)) == 0);
        if (strncmp(err.message, cases[i].message, strlen(cases[i].message)) != 0)
            CHECK_STR_EQ(err.message, cases[i].message);
        /* The password never appears in an error. */
        CHECK(strstr(err.message, SECRET) == NULL);
    }
}

static void feed_url_comes_from_a_file_or_the_environment(void)
{
    char *dir = tu_tempdir();
    char *file = tu_path(dir, "amqp-url");
    char *feed = tu_format("{\"url_file\": \"%s\"}", file);
    ssp_config config;
    ssp_error err = {0};
    char *url = NULL;

    REQUIRE_OK(parse_feed(feed, &config, &err), err);
    /* a file that is not there yet fails at start, naming the key */
    CHECK_INT_EQ(ssp_feed_resolve_url(&config, &url, &err), -1);
    CHECK_CONTAINS(err.message, "roster_feed.url_file: cannot read");
    CHECK(url == NULL);
    REQUIRE(tu_write_file(file, "  " URL "\n", false) == 0);
    CHECK_OK(ssp_feed_resolve_url(&config, &url, &err), err);
    CHECK_STR_EQ(url, URL);
    free(url);
    url = NULL;
    REQUIRE(tu_write_file(file, "not a url\n", false) == 0);
    CHECK_INT_EQ(ssp_feed_resolve_url(&config, &url, &err), -1);
    CHECK_CONTAINS(err.message, "roster_feed.url_file: expected an amqp://");
    ssp_config_destroy(&config);

    REQUIRE_OK(parse_feed("{\"url_env\": \"SSP_TEST_FEED_URL\"}", &config, &err), err);
    unsetenv("SSP_TEST_FEED_URL");
    CHECK_INT_EQ(ssp_feed_resolve_url(&config, &url, &err), -1);
    CHECK_STR_EQ(err.message, "roster_feed.url_env: the environment variable SSP_TEST_FEED_URL "
                              "is not set or empty");
    setenv("SSP_TEST_FEED_URL", URL, 1);
    CHECK_OK(ssp_feed_resolve_url(&config, &url, &err), err);
    CHECK_STR_EQ(url, URL);
    free(url);
    url = NULL;
    setenv("SSP_TEST_FEED_URL", "amqp://u:" SECRET "@host:notaport/", 1);
    CHECK_INT_EQ(ssp_feed_resolve_url(&config, &url, &err), -1);
    CHECK_CONTAINS(err.message, "roster_feed.url_env: expected an amqp://");
    CHECK(strstr(err.message, SECRET) == NULL);
    unsetenv("SSP_TEST_FEED_URL");
    ssp_config_destroy(&config);
    free(feed);
    free(file);
    tu_rmtree(dir);
    free(dir);
}

static void feed_message_is_applied_durably_through_the_roster_path(void)
{
    tu_fixture fx;
    size_t upserted = 0;
    char *entry = NULL;

    if (!tu_setup(&fx, NULL))
        return;
    CHECK_INT_EQ(ssp_feed_apply(fx.engine, GOOD_ANNA, strlen(GOOD_ANNA), &upserted, &fx.err),
                 SSP_FEED_APPLIED);
    CHECK_INT_EQ(upserted, 1);
    /* a replay (the crash between apply and ack) changes nothing */
    CHECK_INT_EQ(ssp_feed_apply(fx.engine, GOOD_ANNA, strlen(GOOD_ANNA), &upserted, &fx.err),
                 SSP_FEED_APPLIED);
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 1);
    /* durable when apply returns: a fresh engine on the same store has it */
    REQUIRE(tu_reopen(&fx));
    REQUIRE_OK(ssp_roster_get(fx.engine, ANNA, &entry, &fx.err), fx.err);
    CHECK(tu_json_equal_text(
        entry, "{\"user_id\": \"" ANNA "\", \"schools\": [{\"school\": \"gym-nord\", \"role\": "
               "\"teacher\"}]}"));
    free(entry);
    tu_teardown(&fx);
}

static void feed_bad_message_is_rejected_with_the_post_roster_error(void)
{
    tu_fixture fx;
    ssp_error api_err = {0};
    size_t upserted = 0;

    if (!tu_setup(&fx, NULL))
        return;
    CHECK_INT_EQ(ssp_feed_apply(fx.engine, BAD_ROLE, strlen(BAD_ROLE), &upserted, &fx.err),
                 SSP_FEED_REJECTED);
    CHECK_STR_EQ(ssp_feed_error_kind(&fx.err), "invalid_input");
    CHECK_INT_EQ(ssp_roster_upsert_batch(fx.engine, BAD_ROLE, strlen(BAD_ROLE), &upserted,
                                         &api_err),
                 -1);
    /* one parser, one validator: the same message as POST /roster */
    CHECK_STR_EQ(fx.err.message, api_err.message);
    CHECK_CONTAINS(fx.err.message, "users[0].schools[0].role");
    CHECK_INT_EQ(ssp_feed_apply(fx.engine, "{\"users\": [", 11, &upserted, &fx.err),
                 SSP_FEED_REJECTED);
    CHECK_STR_EQ(ssp_feed_error_kind(&fx.err), "invalid_json");
    CHECK_CONTAINS(fx.err.message, "body: invalid JSON at line 1");
    /* an empty body: a reason a person can act on, not "line -1, column -1" */
    CHECK_INT_EQ(ssp_feed_apply(fx.engine, "", 0, &upserted, &fx.err), SSP_FEED_REJECTED);
    CHECK_STR_EQ(fx.err.message, "body: the message is empty; expected a POST /roster body (a "
                                 "JSON object with a users list)");
    CHECK_STR_EQ(ssp_feed_error_kind(&fx.err), "invalid_json");
    CHECK_INT_EQ(ssp_feed_apply(fx.engine, "x", (size_t)SSP_FEED_DEFAULT_MESSAGE_BYTES + 1,
                                &upserted, &fx.err),
                 SSP_FEED_REJECTED);
    CHECK_CONTAINS(fx.err.message, "more than roster_feed.max_message_bytes (67108864)");
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 0);
    tu_teardown(&fx);
}

static void feed_store_failure_is_retried_not_rejected(void)
{
    ssp_embedded_store *emb;
    tu_fixture fx;
    size_t upserted = 0;
    int ro;

    if (!tu_setup(&fx, NULL))
        return;
    /* the reconcile state's and the journal's files now refuse writes, like a disk gone bad */
    ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(ro >= 0);
    emb = (ssp_embedded_store *)fx.engine->store;
    REQUIRE(dup2(ro, emb->reconcile.file.fd) >= 0);
    REQUIRE(dup2(ro, emb->journal.fd) >= 0);
    close(ro);
    CHECK_INT_EQ(ssp_feed_apply(fx.engine, GOOD_ANNA, strlen(GOOD_ANNA), &upserted, &fx.err),
                 SSP_FEED_RETRY);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_IO);
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 0);
    tu_teardown(&fx);
}

static void feed_start_needs_config_and_an_open_store(void)
{
    char *dir = tu_tempdir();
    char *config = tu_config(dir, "\"roster_feed\": {\"url_env\": \"SSP_TEST_FEED_UNSET\"}");
    char *plain = tu_config(dir, NULL);
    ssp_error err = {0};
    ssp_engine *engine = ssp_engine_new(plain, strlen(plain), TU_SERVER, TU_WORKER, &err);
    char *status = NULL;

    REQUIRE(engine != NULL);
    REQUIRE_OK(ssp_roster_feed_status(engine, &status, &err), err);
    CHECK_STR_EQ(status, "null");
    free(status);
    CHECK_INT_EQ(ssp_roster_feed_start(engine, &err), -1);
    CHECK_STR_EQ(err.message, "roster_feed: not configured");
    ssp_engine_free(engine);

    engine = ssp_engine_new(config, strlen(config), TU_SERVER, TU_WORKER, &err);
    REQUIRE(engine != NULL);
    CHECK_INT_EQ(ssp_roster_feed_start(engine, &err), -1);
    CHECK_STR_EQ(err.message, "the store is not open");
    REQUIRE_OK(ssp_engine_open(engine, &err), err);
    unsetenv("SSP_TEST_FEED_UNSET");
    CHECK_INT_EQ(ssp_roster_feed_start(engine, &err), -1);
    CHECK_INT_EQ(err.code, SSP_ERR_INPUT);
    CHECK_CONTAINS(err.message, "roster_feed.url_env: the environment variable");
    REQUIRE_OK(ssp_roster_feed_status(engine, &status, &err), err);
    CHECK_CONTAINS(status, "\"state\":\"not_running_here\"");
    free(status);
    ssp_engine_free(engine);
    free(config);
    free(plain);
    tu_rmtree(dir);
    free(dir);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void feed_thread_backs_off_from_an_absent_broker_and_stops_promptly(void)
{
    tu_fixture fx;
    char *status = NULL;
    int64_t deadline, t0;
    bool seen = false;

    /* Port 1 on loopback: nothing listens, connect is refused at once. */
    if (!tu_setup(&fx, "\"roster_feed\": {\"url\": \"amqp://u:" SECRET "@127.0.0.1:1/\"}"))
        return;
    REQUIRE_OK(ssp_roster_feed_start(fx.engine, &fx.err), fx.err);
    CHECK_INT_EQ(ssp_roster_feed_start(fx.engine, &fx.err), -1);
    CHECK_STR_EQ(fx.err.message, "roster_feed: already started");
    deadline = mono_ms() + 10000;
    while (!seen && mono_ms() < deadline) {
        REQUIRE_OK(ssp_roster_feed_status(fx.engine, &status, &fx.err), fx.err);
        seen = strstr(status, "\"state\":\"disconnected\"") != NULL;
        if (!seen) {
            free(status);
            status = NULL;
            usleep(20000);
        }
    }
    CHECK(seen);
    CHECK_CONTAINS(status, "\"connected\":false");
    CHECK_CONTAINS(status, "\"last_error\":\"connect: ");
    CHECK_CONTAINS(status, "\"broker\":\"127.0.0.1:1/\"");
    CHECK(strstr(status, SECRET) == NULL);
    free(status);
    /* ssp_engine_free stops the thread in its backoff sleep at once */
    t0 = mono_ms();
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    CHECK(mono_ms() - t0 < 3000);
    tu_teardown(&fx);
}

/* A header table as rabbitmq-c encodes it: the 130,880-byte header of a
 * poisoned message and the module's own four headers cannot go in one
 * 131,072-byte frame; the size says so before anything is published. */
static void feed_properties_size_counts_what_rabbitmq_c_encodes(void)
{
    static char big[130880];
    amqp_table_entry_t entries[2];
    amqp_basic_properties_t props;
    amqp_pool_t pool;
    amqp_basic_properties_t copy;

    memset(big, 'h', sizeof big);
    entries[0].key = amqp_cstring_bytes("x-bulk");
    entries[0].value.kind = AMQP_FIELD_KIND_BYTES;
    entries[0].value.value.bytes = (amqp_bytes_t){sizeof big, big};
    entries[1].key = amqp_cstring_bytes("n");
    entries[1].value.kind = AMQP_FIELD_KIND_I64;
    entries[1].value.value.i64 = 5;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
    props.headers = (amqp_table_t){2, entries};
    props.message_id = amqp_cstring_bytes("m-1");
    /* table: 4; x-bulk: 1 + 6 + 1 + 4 + 130880; n: 1 + 1 + 1 + 8 */
    CHECK_INT_EQ(ssp_amqp_table_size(&props.headers), 4 + 12 + 130880 + 11);
    CHECK(ssp_amqp_props_size(&props) > 131072 - 20 - 512);
    /* a copy owns its strings, and has the same size and fingerprint */
    init_amqp_pool(&pool, 4096);
    REQUIRE_INT_EQ(ssp_amqp_props_copy(&pool, &props, &copy), 0);
    CHECK(copy.headers.entries != entries);
    CHECK(copy.message_id.bytes != props.message_id.bytes);
    CHECK_INT_EQ(ssp_amqp_props_size(&copy), ssp_amqp_props_size(&props));
    CHECK(ssp_amqp_fingerprint(&copy, 3, "abc", 3) == ssp_amqp_fingerprint(&props, 3, "abc", 3));
    CHECK(ssp_amqp_fingerprint(&copy, 3, "abd", 3) != ssp_amqp_fingerprint(&props, 3, "abc", 3));
    empty_amqp_pool(&pool);
}

/* A message whose dead letter failed is trimmed when it comes again, then
 * rejected: never the same failure in a loop. */
static void feed_a_dead_letter_that_failed_escalates_to_trimmed_then_rejected(void)
{
    ssp_poison_list list;

    memset(&list, 0, sizeof list);
    CHECK_INT_EQ(ssp_poison_level(&list, 42), 0);
    ssp_poison_note(&list, 42);
    CHECK_INT_EQ(ssp_poison_level(&list, 42), 1);
    ssp_poison_note(&list, 42);
    CHECK_INT_EQ(ssp_poison_level(&list, 42), 2);
    CHECK_INT_EQ(ssp_poison_level(&list, 43), 0);
    ssp_poison_forget(&list, 42);
    CHECK_INT_EQ(ssp_poison_level(&list, 42), 0);
    /* the oldest goes when the list is full */
    for (uint64_t i = 100; i < 100 + SSP_POISON_SLOTS + 1; i++)
        ssp_poison_note(&list, i);
    CHECK_INT_EQ(ssp_poison_level(&list, 100), 0);
    CHECK_INT_EQ(ssp_poison_level(&list, 100 + SSP_POISON_SLOTS), 1);
}

void run_roster_feed_tests(void)
{
    RUN(feed_properties_size_counts_what_rabbitmq_c_encodes);
    RUN(feed_a_dead_letter_that_failed_escalates_to_trimmed_then_rejected);
    RUN(feed_config_is_off_when_absent_or_null);
    RUN(feed_config_takes_defaults);
    RUN(feed_config_errors_name_the_key_path);
    RUN(feed_url_comes_from_a_file_or_the_environment);
    RUN(feed_message_is_applied_durably_through_the_roster_path);
    RUN(feed_bad_message_is_rejected_with_the_post_roster_error);
    RUN(feed_store_failure_is_retried_not_rejected);
    RUN(feed_start_needs_config_and_an_open_store);
    RUN(feed_thread_backs_off_from_an_absent_broker_and_stops_promptly);
}
