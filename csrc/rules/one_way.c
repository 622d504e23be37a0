/*
 * Rule 2, one-way channels: below the moderator level nobody posts in a
 * one-way room, nor adds people to it. Redactions of one's own events and
 * the config's one_way_allowed_events stay open, but only in a shape that
 * carries nothing anyone can read.
 */
#include <string.h>

#include "rules/matrix.h"
#include "rules/one_way.h"

#define ANNOTATION_REL_TYPE "m.annotation"

/* Event types that stay open to everybody in a one-way room. */
static bool allowed_in_one_way_room(const ssp_engine *engine, const char *event_type)
{
    /* Redacting one's own earlier events stays possible; Synapse's auth
     * still stops anyone below the redact level from redacting others'. */
    if (strcmp(event_type, SSP_REDACTION_TYPE) == 0)
        return true;
    return ssp_strmap_get(&engine->config.one_way_allowed_set, event_type) != NULL;
}

static bool text_is(const char *text, size_t len, const char *want)
{
    return text != NULL && ssp_same_text(text, len, want, strlen(want));
}

/* What an open event type may carry in a one-way room: nothing anyone can
 * read. A redaction names its target and nothing else (a `reason` is text
 * to the class); a reaction is an emoji on an event. Other allow-listed
 * types are the operator's choice and pass as they are. */
static bool open_event_carries_text(const ssp_request *req)
{
    const ssp_event_shape *shape = req->shape;

    if (strcmp(req->event_type, SSP_REDACTION_TYPE) == 0) {
        /* Before room version 11 `redacts` sits outside the content, and a
         * `redacts` key inside it is the sender's free text. */
        if (shape == NULL || shape->n_content_keys > (shape->has_redacts ? 1u : 0u))
            return true;
        return shape->has_redacts && (shape->content_redacts == NULL || req->redacts == NULL ||
                                      strcmp(shape->content_redacts, req->redacts) != 0);
    }
    if (strcmp(req->event_type, SSP_REACTION_TYPE) == 0)
        return shape == NULL || shape->n_content_keys != 1 || !shape->has_relation ||
               shape->n_relation_keys != 3 ||
               !text_is(shape->rel_type, shape->rel_type_len, ANNOTATION_REL_TYPE) ||
               !shape->relation_event_id || !ssp_emoji_key(shape->key, shape->key_len);
    return false;
}

/* For a sender below the moderator level. The open types are open as
 * timeline events only: the power-levels entry that opens them applies to
 * state events of the same type too. */
static bool event_denied(const ssp_engine *engine, const ssp_request *req)
{
    if (!allowed_in_one_way_room(engine, req->event_type))
        return true;
    return req->state_key != NULL || open_event_carries_text(req);
}

bool ssp_one_way_denies_event(const ssp_engine *engine, const ssp_request *req, ssp_denial *d)
{
    if (ssp_actor_level(req) >= engine->config.moderator_level || !event_denied(engine, req))
        return false;
    ssp_deny_in_room(engine, req, SSP_RULE_ONE_WAY, d);
    if (strcmp(req->event_type, SSP_REACTION_TYPE) == 0 && req->state_key == NULL)
        d->say = SSP_SAY_REACTION;
    return true;
}

/* Below the moderator level nobody adds people to a one-way room: its
 * members are the school's to choose, and an invite's reason is text the
 * whole room reads. */
bool ssp_one_way_denies_invite(const ssp_engine *engine, const ssp_request *req, ssp_denial *d)
{
    if (ssp_actor_level(req) >= engine->config.moderator_level)
        return false;
    ssp_deny_in_room(engine, req, SSP_RULE_ONE_WAY, d);
    d->say = SSP_SAY_INVITE;
    return true;
}
