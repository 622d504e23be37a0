/*
 * libFuzzer target: the module config parser (config.c).
 *
 * Feeds the input to ssp_config_check and ssp_config_parse and checks what
 * must hold for any input: an error has a code and a message, a parsed
 * config satisfies the validation rules, and nothing leaks (LeakSanitizer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ssp_private.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1); /* a fixed hash seed: runs are reproducible */
    return 0;
}

static void check_error(const ssp_error *err)
{
    size_t len = strnlen(err->message, sizeof err->message);

    REQUIRE(len > 0 && len < sizeof err->message);
    REQUIRE(err->code == SSP_ERR_INPUT || err->code == SSP_ERR_NOMEM);
}

static void check_config(const ssp_config *c)
{
    REQUIRE(c->policy_event_type != NULL && c->policy_event_type[0] != '\0');
    REQUIRE(strncmp(c->policy_event_type, "m.", 2) != 0);
    REQUIRE(c->data_dir != NULL || c->database != NULL);
    REQUIRE(c->audit_retention_days >= 0 && c->audit_retention_days <= 36500);
    for (size_t i = 0; i < c->n_service_users; i++) {
        REQUIRE(ssp_user_id_valid(c->service_users[i]));
        REQUIRE(ssp_strmap_get(&c->service_user_set, c->service_users[i]) != NULL);
    }
    for (size_t i = 0; i < c->n_one_way_allowed_events; i++)
        REQUIRE(c->one_way_allowed_events[i][0] != '\0');
    for (size_t i = 0; i < c->n_schools; i++) {
        const char *id = c->schools[i].id;
        size_t len = strlen(id);

        REQUIRE(len > 0 && len <= SSP_SCHOOL_ID_MAX);
        REQUIRE(ssp_config_school(c, id, len) == &c->schools[i]);
        REQUIRE(c->schools[i].room_creation <= SSP_CREATE_EVERYONE);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssp_error err;
    ssp_config config;
    int checked, parsed;

    memset(&err, 0, sizeof err);
    checked = ssp_config_check((const char *)data, size, &err);
    REQUIRE(checked == 0 || checked == -1);
    if (checked != 0)
        check_error(&err);

    memset(&err, 0, sizeof err);
    parsed = ssp_config_parse((const char *)data, size, &config, &err);
    REQUIRE(parsed == checked);
    if (parsed == 0) {
        check_config(&config);
        ssp_config_destroy(&config);
    } else {
        check_error(&err);
    }
    return 0;
}
