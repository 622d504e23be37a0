/*
 * Typed reads of the config's JSON values (config_values.c): errors name
 * the key's full path.
 */
#ifndef SSP_CONFIG_VALUES_H
#define SSP_CONFIG_VALUES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The longest key path an error names. */
#define SSP_CONFIG_PATH_MAX 384

int ssp_expect_bool(json_t *value, const char *path, bool *out, ssp_error *err);
/* An integer from min to max. */
int ssp_expect_int(json_t *value, const char *path, int64_t min, int64_t max, int64_t *out,
                   ssp_error *err);
/* A non-empty string without NUL, copied; null_ok lets JSON null mean "unset" (*out NULL). */
int ssp_expect_string(json_t *value, const char *path, bool null_ok, char **out, ssp_error *err);
/* A list of such strings, each passing `valid` (NULL: any), `what` naming them in errors. */
int ssp_expect_string_list(json_t *value, const char *path, bool (*valid)(const char *),
                           const char *what, char ***out, size_t *n_out, ssp_error *err);
void ssp_free_string_list(char **items, size_t n);
/* One of choices (NULL-terminated): *out is its index; choice_list spells them for the error. */
int ssp_expect_choice(json_t *value, const char *path, const char *const *choices,
                      const char *choice_list, int *out, ssp_error *err);

#endif
