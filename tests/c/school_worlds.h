/*
 * The school worlds the decision tests run in (school_worlds.c): each a
 * config, a roster and the helpers that ask the engine about it.
 *
 * - the roster world: schools that have opted in or not, enforcing or
 *   report-only, and users in one, several or none of them (rule 1);
 * - the course world: a one-way course of gym-nord that the sync created,
 *   and the people in it (the other rules);
 * - the staff world: a school's teachers' room and who may be in it
 *   (rules 4 and 5).
 */
#ifndef SSP_TEST_SCHOOL_WORLDS_H
#define SSP_TEST_SCHOOL_WORLDS_H

#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "ssp_private.h"
#include "testutil.h"

#define REMOTE "@rita:remote.example"
#define ROOM "!room:school.example"

/* The audit records queued so far. */
uint64_t queued(tu_fixture *fx);

/* ---- the roster world ---- */

#define BOT "@bot:school.example"
#define ANNA "@anna:school.example" /* gym-nord (enabled) */
#define BEN "@ben:school.example"   /* gym-sued (disabled, enforcing) */
#define CARL "@carl:school.example" /* gym-sued and gym-nord */
#define DORA "@dora:school.example" /* rs-ost (disabled, report-only) */
#define EMIL "@emil:school.example" /* rs-ost, then gym-sued */
#define FINN "@finn:school.example" /* a school the config does not list */
#define ZOE "@zoe:school.example"   /* not on the roster */
#define SCHOOLS                                                                                    \
    "\"service_users\": [\"@bot:school.example\"], \"schools\": {"                                 \
    "\"gym-nord\": {\"messenger\": true}, \"gym-sued\": {\"messenger\": false},"                   \
    " \"rs-ost\": {\"messenger\": false, \"enforce\": false}}"

/* A fixture on the roster world's config (with `extra` members) and roster. */
bool roster_world_setup(tu_fixture *fx, const char *extra);
/* One request; `room` may be NULL. Managed rooms are created on this
 * server by the service user. */
void decide(tu_fixture *fx, ssp_callback cb, const char *actor, const char *target,
            const char *room_id, ssp_fact managed, const ssp_room_policy *room, ssp_fact admin,
            ssp_decision *out);
void login(tu_fixture *fx, const char *actor, ssp_fact admin, ssp_decision *out);
/* A course's policy of `school` (NULL: none), sent by the service user. */
ssp_room_policy policy_of(const char *school);
/* A school id of `n` copies of "é" (two bytes each), NUL-terminated; caller frees. */
char *long_multibyte_school(size_t n);

#define CHECK_ALLOW(d)                                                                             \
    do {                                                                                           \
        if ((d).verdict != SSP_VERDICT_ALLOW)                                                      \
            CHECK_FAIL("verdict %d (rule %s), expected ALLOW", (int)(d).verdict,                   \
                       ssp_rule_id((d).rule));                                                     \
    } while (0)

static inline bool is_rule1(ssp_rule rule)
{
    return rule == SSP_RULE_NOT_ON_ROSTER || rule == SSP_RULE_SCHOOL_NOT_ENABLED ||
           rule == SSP_RULE_ROOM_SCHOOL_NOT_ENABLED;
}

/* Rule 1 lets the request through: it is not denied under a rule-1 rule id
 * and no rule-1 fact (admin, room) is still asked for. Later rules may
 * still deny it or ask for facts of their own, which these tests leave to
 * the tests of those rules; pass SSP_FACT_NO for the admin question so that
 * a NEED_ADMIN cannot hide which rule was about to deny. */
#define CHECK_RULE1_ALLOWS(d)                                                                      \
    do {                                                                                           \
        if ((d).verdict == SSP_VERDICT_DENY ? is_rule1((d).rule)                                   \
                                            : ((d).verdict == SSP_VERDICT_NEED_ADMIN ||            \
                                               (d).verdict == SSP_VERDICT_NEED_ROOM))              \
            CHECK_FAIL("verdict %d (rule %s), expected rule 1 to let it through",                 \
                       (int)(d).verdict, ssp_rule_id((d).rule));                                   \
    } while (0)

#define CHECK_DENY(d, rule_, enforced_, school_)                                                   \
    do {                                                                                           \
        if ((d).verdict != SSP_VERDICT_DENY || (d).rule != (rule_) ||                              \
            (d).enforced != (enforced_) || strcmp((d).school, (school_)) != 0 ||                   \
            (d).message == NULL)                                                                   \
            CHECK_FAIL("verdict %d rule %s enforced %d school \"%s\", expected DENY %s %d \"%s\"",  \
                       (int)(d).verdict, ssp_rule_id((d).rule), (int)(d).enforced, (d).school,     \
                       ssp_rule_id(rule_), (int)(enforced_), (school_));                           \
    } while (0)

/* ---- the course world ---- */

#define SYNC "@sync:school.example"
#define TEACHER "@tom:school.example" /* gym-nord teacher */
#define PUPIL "@pia:school.example"   /* gym-nord student */
#define PUPIL2 "@paul:school.example" /* gym-nord student */
#define LEAVER "@lea:school.example"  /* gym-sued student (disabled school) */
#define STRANGER "@zoe:school.example" /* not on the roster */

/* A fixture on the course world's config and roster. */
bool course_world_setup(tu_fixture *fx);
/* A course of gym-nord that the sync created, one-way. */
ssp_room_policy course(void);
/* The create event of a room the sync created (room version 12). */
extern const ssp_room_create SYNC_CREATE;
/* A request in a room whose facts are all known (no NEED_* but the ones a
 * test leaves unknown on purpose). */
ssp_request in_room(ssp_callback cb, const char *actor, const ssp_room_policy *policy,
                    const ssp_room_create *create);
ssp_decision decide_request(tu_fixture *fx, const ssp_request *req);

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            CHECK_FAIL(__VA_ARGS__);                                                               \
    } while (0)
#define CHECK_VERDICT(d, v)                                                                        \
    do {                                                                                           \
        ssp_decision check_d_ = (d);                                                               \
        CHECK_MSG(check_d_.verdict == (v), "verdict %d (rule %s), expected %d",                    \
                  (int)check_d_.verdict, ssp_rule_id(check_d_.rule), (int)(v));                     \
    } while (0)
#define CHECK_RULE(d, r)                                                                           \
    do {                                                                                           \
        ssp_decision check_d_ = (d);                                                               \
        CHECK_MSG(check_d_.verdict == SSP_VERDICT_DENY && check_d_.rule == (r),                    \
                  "verdict %d rule %s, expected %s", (int)check_d_.verdict,                        \
                  ssp_rule_id(check_d_.rule), ssp_rule_id(r));                                     \
    } while (0)

/* ---- the staff world ---- */

#define OWNER "@school-policy:school.example"
#define ADMIN "@ada:school.example"   /* admin at gym-nord */
#define OTHER "@olaf:school.example"  /* teacher at rs-ost only */
#define TEACHERS_ROOM "!teachers:school.example"

/* A fixture on the staff world's config (with `extra` members) and roster. */
bool staff_world_setup(tu_fixture *fx, const char *extra);
/* The teachers' room of gym-nord, as the reconciler makes it. */
ssp_room_policy teachers_room(void);
/* One request in the teachers' room of gym-nord, invited and sharing it. */
void in_teachers_room(tu_fixture *fx, ssp_callback cb, const char *actor, const char *target,
                      ssp_decision *out);

#endif
