/*
 * bench: decide_bench -- calls ssp_decide (or, for the after-* cases,
 * ssp_after_event) N times on one fixed request against a large roster.
 * Built and run by bench/callgrind_decide.sh:
 *
 *   decide_bench [--iterations N] [--users N] [--case message|need-room|login|token|denied|
 *                 group-message|group-join|after-message|after-join|after-remote]
 *
 * Without valgrind it prints the native ns per decision (noisy: 2 cores).
 * Under `valgrind --tool=callgrind --instr-atstart=no --toggle-collect=ssp_decide`
 * only the loop is instrumented (CALLGRIND_START/STOP_INSTRUMENTATION) and
 * only ssp_decide and what it calls is counted, so total Ir / iterations is
 * the instructions per decision: deterministic for a given build.
 *
 * The roster is loaded through ssp_roster_upsert_batch into a temporary
 * data_dir, which is removed afterwards. Plain C11 + jansson + pthreads; no
 * Python.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ssp.h"

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif
#ifndef HAVE_CALLGRIND
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#define RUNNING_ON_VALGRIND 0
#endif

#define SERVER "school.test"

static void die(const char *what, const ssp_error *err)
{
    fprintf(stderr, "decide_bench: %s: %s\n", what, err ? err->message : strerror(errno));
    exit(1);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static const char *school_of(long i)
{
    return i % 10 == 9 ? "gs-sued" : "gym-nord";
}

/* {"users": [{"user_id": "@u0:school.test", "schools": [{"school": ..., "role": ...}]}, ...]} */
static char *roster_body(long users, size_t *len)
{
    size_t cap = 128 + (size_t)users * 128, used = 0;
    char *buf = malloc(cap);

    if (buf == NULL)
        die("malloc", NULL);
    used += (size_t)snprintf(buf + used, cap - used, "{\"users\": [");
    for (long i = 0; i < users; i++) {
        used += (size_t)snprintf(buf + used, cap - used,
                                 "%s{\"user_id\": \"@u%ld:" SERVER "\", \"schools\": [{\"school\": \"%s\", "
                                 "\"role\": \"%s\"}]}",
                                 i ? ", " : "", i, school_of(i), i % 50 == 0 ? "teacher" : "student");
        if (used >= cap - 1)
            die("roster buffer too small", NULL);
    }
    used += (size_t)snprintf(buf + used, cap - used, "]}");
    *len = used;
    return buf;
}

/* Two groups listing `actor` among 25 members: "team-nord" (gym-nord, a
 * two-way team) and "course-west" (rs-west, a course). */
static void put_groups(ssp_engine *engine, const char *actor)
{
    char body[9216], members[4096];
    size_t used = 0, upserted = 0, applied = 0;
    ssp_error err;

    used += (size_t)snprintf(members, sizeof members, "{\"user_id\": \"%s\", \"role\": \"member\"}", actor);
    for (int i = 1; i < 25; i++)
        used += (size_t)snprintf(members + used, sizeof members - used,
                                 ", {\"user_id\": \"@u%d:" SERVER "\", \"role\": \"%s\"}", i * 7,
                                 i == 1 ? "moderator" : "member");
    snprintf(body, sizeof body,
             "{\"groups\": [{\"group\": \"team-nord\", \"school\": \"gym-nord\", \"kind\": \"team\", "
             "\"name\": \"Robotik\", \"two_way\": true, \"members\": [%s]}, {\"group\": \"course-west\", "
             "\"school\": \"rs-west\", \"kind\": \"course\", \"name\": \"Chor\", \"members\": [%s]}]}",
             members, members);
    if (ssp_roster_upsert_groups(engine, body, strlen(body), &upserted, &applied, &err) != 0)
        die("ssp_roster_upsert_groups", &err);
    if (applied != 2)
        die("the groups were not applied", NULL);
}

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long iterations = 100000, users = 100000;
    const char *which = "message";
    char data_dir[] = "/tmp/ssp-bench-decide-XXXXXX";
    char config[512], actor[64], denied_actor[64];
    ssp_error err;
    ssp_engine *engine;
    ssp_decision decision;
    size_t body_len, upserted = 0;
    char *body;
    double t0, t1, load_ms;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--iterations") == 0)
            iterations = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--users") == 0)
            users = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--case") == 0)
            which = argv[i + 1];
        else {
            fprintf(stderr, "usage: %s [--iterations N] [--users N] [--case CASE]\n", argv[0]);
            return 2;
        }
    }
    if (iterations < 1 || iterations > 100000000 || users < 100 || users > 10000000) {
        fprintf(stderr, "decide_bench: --iterations 1..1e8, --users 100..1e7\n");
        return 2;
    }

    json_object_seed(1); /* deterministic instead of ssp_global_init()'s random seed */
    if (mkdtemp(data_dir) == NULL)
        die("mkdtemp", NULL);
    snprintf(config, sizeof config,
             "{\"service_users\": [\"@sync:" SERVER "\"], \"data_dir\": \"%s\", "
             "\"schools\": {\"gym-nord\": {\"messenger\": true}, \"gs-sued\": {\"messenger\": false},"
             " \"rs-west\": {\"messenger\": true}}}",
             data_dir);
    engine = ssp_engine_new(config, strlen(config), SERVER, "bench", &err);
    if (engine == NULL)
        die("ssp_engine_new", &err);
    if (ssp_engine_open(engine, &err) != 0)
        die("ssp_engine_open", &err);
    body = roster_body(users, &body_len);
    t0 = now_ns();
    if (ssp_roster_upsert_batch(engine, body, body_len, &upserted, &err) != 0)
        die("ssp_roster_upsert_batch", &err);
    load_ms = (now_ns() - t0) / 1e6;
    free(body);

    /* A pupil somewhere in the middle of the roster, in a school that has opted in. */
    snprintf(actor, sizeof actor, "@u%ld:" SERVER, (users / 2) / 10 * 10 + 3);
    snprintf(denied_actor, sizeof denied_actor, "@u%ld:" SERVER, (users / 2) / 10 * 10 + 9);

    /* A managed two-way course room of gym-nord that the sync created, as the
     * binding extracts it. */
    ssp_room_policy room = {
        .sender = "@sync:" SERVER, .creator = "@sync:" SERVER,
        .empty = false, .n_keys = 3,
        .school = "gym-nord", .school_len = 8,
        .kind_name = "course", .kind_len = 6, .kind = SSP_KIND_COURSE,
        .two_way = true,
    };
    ssp_power_levels levels = {
        .users_default = 0, .events_default = 0, .state_default = 50,
        .actor_listed = false, .actor_level = 0, .full = false,
    };
    ssp_room_create create = {.sender = "@sync:" SERVER, .room_version = "12", .room_version_len = 2};
    ssp_request req = {
        .callback = SSP_CB_CHECK_EVENT_FOR_SPAM,
        .actor = actor,
        .room_id = "!course:" SERVER,
        .event_type = "m.room.message",
        .room_managed = SSP_FACT_YES,
        .room = &room,
        .room_power_levels = &levels,
        .room_create = &create,
        .actor_is_admin = SSP_FACT_UNKNOWN,
    };
    ssp_verdict expected = SSP_VERDICT_ALLOW;
    /* The group cases: a two-way team of gym-nord and a course of rs-west,
     * each listing the pupil among 25 members, in the roster's group index. */
    ssp_room_policy team = room;
    /* The after-the-fact cases: a state change as the adapter hands it over
     * with every fact read, in which there is nothing to do. */
    ssp_room_policy course = room;
    ssp_content_key join_keys[2] = {
        {.key = "membership", .key_len = 10, .value = {.kind = SSP_VALUE_STRING, .text = "join", .len = 4}},
        {.key = "displayname", .key_len = 11, .value = {.kind = SSP_VALUE_STRING, .text = "Paula", .len = 5}},
    };
    ssp_room_create pupils_room = {.sender = actor, .room_version = "10", .room_version_len = 2};
    ssp_event_seen seen = {
        .sender = actor, .is_state = false,
        .type_read = true, .type = "m.room.member", .state_key = actor,
        .event_read = true, .event_id = "$join", .room_id = "!course:" SERVER, .stream_ordering = 7,
        .keys = join_keys, .n_keys = 2, .membership = join_keys[0].value,
        .room_read = true, .policy = &course, .power_levels = &levels, .create = &create,
        .is_current = true,
        .profile_known = true, .profile_displayname = join_keys[1].value,
        .profile_avatar_url = {.kind = SSP_VALUE_NULL},
        .sender_admin = SSP_FACT_UNKNOWN,
    };
    ssp_after_action action;
    bool after = strncmp(which, "after-", 6) == 0;

    course.two_way = false;
    if (strcmp(which, "after-message") == 0) {
        /* a local user's message: decided on two facts */
        memset(&seen, 0, sizeof seen);
        seen.sender = actor;
    } else if (strcmp(which, "after-join") == 0) {
        seen.is_state = true; /* a pupil's join in a one-way course, under their global name */
    } else if (strcmp(which, "after-remote") == 0) {
        /* a remote member's message in an unmanaged room made here, its doors closed */
        seen.sender = "@stranger:remote.example";
        seen.type = "m.room.message";
        seen.state_key = NULL;
        seen.policy = NULL;
        seen.create = &pupils_room;
        seen.join_rules = (ssp_state_seen){.open = false, .sender = actor, .event_id = "$rules"};
        seen.history = (ssp_state_seen){.open = false, .sender = actor, .event_id = "$history"};
    } else if (after) {
        fprintf(stderr, "decide_bench: unknown --case %s\n", which);
        return 2;
    }
    if (after) {
        ssp_after_event(engine, &seen, &action);
        if (action.kind != SSP_AFTER_NOTHING) {
            fprintf(stderr, "decide_bench: case %s: action %d, expected nothing\n", which, (int)action.kind);
            return 1;
        }
        CALLGRIND_START_INSTRUMENTATION;
        t0 = now_ns();
        for (long i = 0; i < iterations; i++)
            ssp_after_event(engine, &seen, &action);
        t1 = now_ns() - t0;
        CALLGRIND_STOP_INSTRUMENTATION;
        printf("case=%s users=%zu iterations=%ld action=%d under_valgrind=%d roster_load_ms=%.0f "
               "ns_per_decision=%.1f\n",
               which, ssp_roster_size(engine), iterations, (int)action.kind, (int)RUNNING_ON_VALGRIND,
               load_ms, t1 / (double)iterations);
        ssp_engine_free(engine);
        nftw(data_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
        return 0;
    }

    if (strcmp(which, "need-room") == 0) {
        req.room_managed = SSP_FACT_UNKNOWN; /* the first call for every event */
        req.room = NULL;
        req.room_power_levels = NULL;
        expected = SSP_VERDICT_NEED_ROOM;
    } else if (strcmp(which, "login") == 0) {
        req = (ssp_request){.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM, .actor = actor,
                            .actor_is_admin = SSP_FACT_UNKNOWN};
    } else if (strcmp(which, "token") == 0) {
        /* is_user_expired: asked on every authenticated request */
        req = (ssp_request){.callback = SSP_CB_IS_USER_EXPIRED, .actor = actor,
                            .actor_is_admin = SSP_FACT_UNKNOWN};
    } else if (strcmp(which, "denied") == 0) {
        req.actor = denied_actor; /* school not enabled; asks whether they are an admin first */
        req.room_managed = SSP_FACT_UNKNOWN;
        req.room = NULL;
        req.room_power_levels = NULL;
        expected = SSP_VERDICT_NEED_ADMIN;
    } else if (strcmp(which, "group-message") == 0 || strcmp(which, "group-join") == 0) {
        bool join = strcmp(which, "group-join") == 0;

        put_groups(engine, actor);
        team.n_keys = 4;
        team.group = join ? "course-west" : "team-nord";
        team.group_len = strlen(team.group);
        if (join) {
            /* the cross-school join: a gym-nord pupil the rs-west course lists */
            team.school = "rs-west";
            team.school_len = 7;
            team.kind_name = "course";
            team.two_way = false;
            req.callback = SSP_CB_USER_MAY_JOIN_ROOM;
            req.event_type = NULL;
            req.is_invited = SSP_FACT_YES;
        }
        req.room = &team;
    } else if (strcmp(which, "message") != 0) {
        fprintf(stderr, "decide_bench: unknown --case %s\n", which);
        return 2;
    }

    ssp_decide(engine, &req, &decision);
    if (decision.verdict != expected) {
        fprintf(stderr, "decide_bench: case %s: verdict %d, expected %d\n", which, (int)decision.verdict,
                (int)expected);
        return 1;
    }

    CALLGRIND_START_INSTRUMENTATION;
    t0 = now_ns();
    for (long i = 0; i < iterations; i++)
        ssp_decide(engine, &req, &decision);
    t1 = now_ns() - t0;
    CALLGRIND_STOP_INSTRUMENTATION;

    printf("case=%s users=%zu iterations=%ld verdict=%d under_valgrind=%d roster_load_ms=%.0f "
           "ns_per_decision=%.1f\n",
           which, ssp_roster_size(engine), iterations, (int)decision.verdict, (int)RUNNING_ON_VALGRIND,
           load_ms, t1 / (double)iterations);
    ssp_engine_free(engine);
    nftw(data_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}
