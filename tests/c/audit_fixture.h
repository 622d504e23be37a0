/*
 * What the audit tests share (audit_fixture.c): an engine with the test
 * world's schools, denials of each kind queued through the rules, queries
 * and the ids they answer.
 */
#ifndef SSP_TEST_AUDIT_FIXTURE_H
#define SSP_TEST_AUDIT_FIXTURE_H

#include <stdbool.h>

#include "ssp_private.h"
#include "testutil.h"

#define ANNA "@anna:school.example" /* gym-nord (enabled) */
#define BEN "@ben:school.example"   /* gym-sued (disabled) */
#define DORA "@dora:school.example" /* rs-ost (disabled, report-only) */
#define ZOE "@zoe:school.example"   /* not on the roster */
#define REMOTE "@rita:remote.example"


bool audit_fx_setup(tu_fixture *fx);
void audit_fx_deny_login(tu_fixture *fx, const char *actor);
void audit_fx_deny_invite(tu_fixture *fx, const char *actor, const char *target);
void audit_fx_deny_event(tu_fixture *fx, const char *actor, const char *school);
ssp_audit_filter audit_fx_filter_all(void);
json_t *audit_fx_query(tu_fixture *fx, const ssp_audit_filter *f);
char *audit_fx_ids_of(json_t *result);
char *audit_fx_query_ids(tu_fixture *fx, const ssp_audit_filter *f);

#define CHECK_IDS(fx, f, expected)                                                                 \
    do {                                                                                           \
        char *check_ids_ = audit_fx_query_ids((fx), (f));                                         \
        CHECK_STR_EQ(check_ids_, (expected));                                                      \
        free(check_ids_);                                                                          \
    } while (0)

#endif
