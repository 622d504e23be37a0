/* The reconcile state's input checks and result texts, shared by reconcile.c and
 * both stores' reconcile state (reconcile_common.h). */
#include <stdio.h>
#include <string.h>

#include "group.h"
#include "ids.h"
#include "reconcile_common.h"
#include "util.h"

static const char *const ROOM_KINDS[] = {"teachers", "announcement", NULL};

bool ssp_reconcile_text_ok(const char *s, size_t max)
{
    size_t len;

    if (s == NULL)
        return false;
    len = strlen(s);
    return len <= max && ssp_utf8_valid(s, len);
}

/* "group:" + a valid group id. */
static bool is_group_subject(const char *s)
{
    size_t prefix = strlen(SSP_RECONCILE_GROUP_PREFIX);
    ssp_error ignored;

    return s != NULL && strncmp(s, SSP_RECONCILE_GROUP_PREFIX, prefix) == 0 &&
           ssp_check_group_id("", s + prefix, strlen(s + prefix), &ignored) == 0;
}

int ssp_reconcile_check_key(const char *school, const char *user_id, ssp_error *err)
{
    if (school == NULL || school[0] == '\0' || !ssp_reconcile_text_ok(school, SSP_SCHOOL_ID_MAX))
        return ssp_fail(err, SSP_ERR_INPUT, "school: expected a school id of 1 to %d characters",
                        SSP_SCHOOL_ID_MAX);
    if (user_id == NULL ||
        (user_id[0] != '\0' && !ssp_user_id_valid(user_id) && !is_group_subject(user_id)))
        return ssp_fail(err, SSP_ERR_INPUT,
                        "user_id: expected a Matrix user id (@user:server), \"group:\" and a "
                        "group id, or \"\" for the school itself; got %s",
                        user_id ? user_id : "null");
    return 0;
}

int ssp_reconcile_check_kind(const char *kind, ssp_error *err)
{
    for (int k = 0; kind != NULL && ROOM_KINDS[k] != NULL; k++) {
        if (strcmp(kind, ROOM_KINDS[k]) == 0)
            return 0;
    }
    if (is_group_subject(kind))
        return 0;
    return ssp_fail(err, SSP_ERR_INPUT,
                    "kind: expected \"teachers\", \"announcement\" or \"group:\" and a group id, "
                    "got %s",
                    kind ? kind : "null");
}

void ssp_reconcile_applied_text(const ssp_school *school, char *buf, size_t size)
{
    snprintf(buf, size, "{\"messenger\":%s,\"teachers_room\":%s,\"announcement_room\":%s}",
             school->messenger ? "true" : "false", school->teachers_room ? "true" : "false",
             school->announcement_room ? "true" : "false");
}

json_t *ssp_reconcile_due_item(const char *school, const char *user_id, int64_t generation,
                               int64_t attempts)
{
    return json_pack("{s:s, s:s, s:I, s:I}", "school", school, "user_id", user_id, "generation",
                     (json_int_t)generation, "attempts", (json_int_t)attempts);
}

int ssp_reconcile_status_text(const ssp_config *config, const ssp_school_reconcile *per_school,
                              char **status_json, ssp_error *err)
{
    json_t *schools = json_object(), *result = NULL;

    *status_json = NULL;
    if (schools == NULL)
        return ssp_fail_nomem(err);
    for (size_t i = 0; i < config->n_schools; i++) {
        const ssp_school_reconcile *r = &per_school[i];
        json_t *entry = json_pack("{s:b, s:s?, s:s?, s:I, s:s?}", "messenger",
                                  config->schools[i].messenger, "teachers_room", r->teachers_room,
                                  "announcement_room", r->announcement_room, "pending",
                                  (json_int_t)r->pending, "last_error", r->last_error);

        /* json_object_set_new steals entry, also on failure */
        if (entry == NULL || json_object_set_new(schools, config->schools[i].id, entry) != 0) {
            json_decref(schools);
            return ssp_fail_nomem(err);
        }
    }
    result = json_pack("{s:o}", "schools", schools); /* steals schools */
    *status_json = result ? ssp_json_dumps_checked(result) : NULL;
    json_decref(result);
    return *status_json ? 0 : ssp_fail_nomem(err);
}
