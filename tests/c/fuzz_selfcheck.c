/*
 * libFuzzer target: the homeserver.yaml self-check's settings parser
 * (selfcheck.c). Any input either fails with a code and a message or yields
 * the findings (each with a setting, a verdict and a problem) and the
 * hardened block, and nothing leaks.
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
    char *result = NULL;
    json_t *parsed, *findings, *finding;
    size_t i;

    if (ssp_homeserver_check((const char *)data, size, &result, &err) != 0) {
        REQUIRE(result == NULL);
        REQUIRE(err.code != SSP_OK && err.message[0] != '\0');
        return 0;
    }
    parsed = json_loads(result, 0, NULL);
    findings = json_object_get(parsed, "findings");
    REQUIRE(json_is_array(findings) && json_array_size(findings) <= 32);
    json_array_foreach(findings, i, finding) {
        REQUIRE(json_is_string(json_object_get(finding, "setting")) &&
                json_is_string(json_object_get(finding, "verdict")) &&
                json_is_string(json_object_get(finding, "problem")));
    }
    REQUIRE(json_is_string(json_object_get(parsed, "hardened_block")));
    json_decref(parsed);
    free(result);
    return 0;
}
