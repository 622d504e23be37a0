/*
 * libFuzzer target: the homeserver.yaml self-check's settings parser
 * (selfcheck.c). Any input either fails with a code and a message or yields
 * a JSON list of findings, and nothing leaks.
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
    json_object_seed(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssp_error err = {0};
    char *findings = NULL;
    json_t *parsed;

    if (ssp_homeserver_check((const char *)data, size, &findings, &err) != 0) {
        REQUIRE(findings == NULL);
        REQUIRE(err.code != SSP_OK && err.message[0] != '\0');
        return 0;
    }
    parsed = json_loads(findings, 0, NULL);
    REQUIRE(json_is_array(parsed) && json_array_size(parsed) <= 5);
    json_decref(parsed);
    free(findings);
    return 0;
}
