/*
 * Typed reads of the config's JSON values: each copies or converts one
 * value and, when it is not what the key wants, fails with an error that
 * names the key's full path (the operator reads it in Synapse's start-up
 * failure). Used by config.c's key handlers.
 *
 * Ownership: strings and lists are new allocations, given to *out on
 * success (freeing what *out held); on failure *out is unchanged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_values.h"
#include "util.h"

int ssp_expect_bool(json_t *value, const char *path, bool *out, ssp_error *err)
{
    if (!json_is_boolean(value))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a boolean", path);
    *out = json_is_true(value);
    return 0;
}

int ssp_expect_int(json_t *value, const char *path, int64_t min, int64_t max, int64_t *out,
                      ssp_error *err)
{
    json_int_t v;

    if (!json_is_integer(value))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected an integer", path);
    v = json_integer_value(value);
    if (v < min || v > max)
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected an integer from %lld to %lld", path,
                        (long long)min, (long long)max);
    *out = (int64_t)v;
    return 0;
}

/* Copies a non-empty string; `null_ok` lets JSON null mean "unset". */
int ssp_expect_string(json_t *value, const char *path, bool null_ok, char **out,
                         ssp_error *err)
{
    char *copy;

    if (null_ok && json_is_null(value)) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(value) || json_string_length(value) == 0)
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a non-empty string%s", path,
                        null_ok ? " or null" : "");
    if (strlen(json_string_value(value)) != json_string_length(value))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: must not contain NUL characters", path);
    copy = ssp_strdup(json_string_value(value));
    if (copy == NULL)
        return ssp_fail_nomem(err);
    free(*out);
    *out = copy;
    return 0;
}

void ssp_free_string_list(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

int ssp_expect_string_list(json_t *value, const char *path, bool (*valid)(const char *),
                              const char *what, char ***out, size_t *n_out, ssp_error *err)
{
    size_t n, i;
    char **items;
    char item_path[SSP_CONFIG_PATH_MAX];

    if (!json_is_array(value))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a list of %s", path, what);
    n = json_array_size(value);
    items = calloc(n ? n : 1, sizeof *items);
    if (items == NULL)
        return ssp_fail_nomem(err);
    for (i = 0; i < n; i++) {
        json_t *item = json_array_get(value, i);

        snprintf(item_path, sizeof item_path, "%s[%zu]", path, i);
        if (ssp_expect_string(item, item_path, false, &items[i], err) != 0)
            goto fail;
        if (valid != NULL && !valid(items[i])) {
            ssp_fail(err, SSP_ERR_INPUT, "%s: expected %s, got \"%s\"", item_path, what, items[i]);
            goto fail;
        }
    }
    ssp_free_string_list(*out, *n_out);
    *out = items;
    *n_out = n;
    return 0;
fail:
    ssp_free_string_list(items, n);
    return -1;
}

int ssp_expect_choice(json_t *value, const char *path, const char *const *choices,
                         const char *choice_list, int *out, ssp_error *err)
{
    if (json_is_string(value)) {
        for (int i = 0; choices[i] != NULL; i++) {
            if (strcmp(json_string_value(value), choices[i]) == 0) {
                *out = i;
                return 0;
            }
        }
    }
    return ssp_fail(err, SSP_ERR_INPUT, "%s: expected one of %s", path, choice_list);
}
