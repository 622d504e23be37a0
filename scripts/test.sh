#!/usr/bin/env bash
# The whole test suite: C unit tests (plain, ASan+UBSan, valgrind), a short
# fuzz run, then every Python test: tests/unit (no process), tests/rules and
# tests/system (a real Synapse on a throwaway PostgreSQL). Used by `make test`
# and by .ci/run; `make check` (scripts/check.sh) is the quick subset.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(scripts/setup.sh)
export SSP_EXTRA_CFLAGS="-Werror ${SSP_EXTRA_CFLAGS:-}"

step() { echo; echo "==== $* ==== (${SECONDS}s into the run)"; }

# Builds use both cores; the tests themselves run one binary at a time.
JOBS=$(nproc 2>/dev/null || echo 2)
step "C unit tests"
make -s -j"$JOBS" -C tests/c build-test
make -s -C tests/c test
step "C unit tests under ASan+UBSan"
make -s -j"$JOBS" -C tests/c build-asan
make -s -C tests/c asan
step "C unit tests under valgrind"
make -s -C tests/c valgrind
# 5 s per target keeps CI under 20 minutes with every target run; a longer
# search is `make -C tests/c fuzz` (20 s each) or FUZZ_SECONDS=600 make test.
step "fuzz targets (${FUZZ_SECONDS:-5}s each)"
make -s -j"$JOBS" -C tests/c build-fuzz
make -s -C tests/c fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-5}"

step "build and install the module into $VENV"
scripts/install-module.sh "$VENV"

step "Python tests: unit, rules and system (the newest Synapse pin; tests/system/test_wheel.py builds and checks the wheel)"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" tests

# The oldest Synapse of the compatibility window (pyproject.toml's
# "synapse-oldest" extra): the tests of what depends on Synapse's callbacks,
# their signatures and the private members in synapse_compat.py. The full
# suite runs on the newest pin above.
# Restarts, the CLI and the doctor do not depend on the Synapse release and
# stay on the newest pin only (this keeps the run near two minutes). So do
# the rule files' tests of every door (initial state, join rules, history,
# redactions, reactions, room versions, tokens of every kind): on Synapse
# 1.140, whose rooms are version 10, eight of them fail for Synapse's own
# reasons (docs/development.md).
OLDEST_TESTS=(
  # Rule 1: login, tokens, frozen rooms
  tests/rules/test_opt_in_and_roster.py::test_pupil_of_opted_in_school_can_log_in
  tests/rules/test_opt_in_and_roster.py::test_user_of_school_not_opted_in_cannot_log_in
  tests/rules/test_opt_in_and_roster.py::test_user_in_two_schools_logs_in_when_one_has_opted_in
  tests/rules/test_opt_in_and_roster.py::test_user_not_on_roster_cannot_log_in
  tests/rules/test_opt_in_and_roster.py::test_server_admin_and_service_user_log_in_without_roster_entry
  tests/rules/test_opt_in_and_roster.py::test_user_not_on_roster_cannot_use_an_old_token
  tests/rules/test_opt_in_and_roster.py::test_token_issued_before_school_was_switched_off_stops_working
  tests/rules/test_opt_in_and_roster.py::test_removed_from_roster_means_not_on_roster
  tests/rules/test_opt_in_and_roster.py::test_managed_room_of_school_not_opted_in_is_frozen
  tests/rules/test_opt_in_and_roster.py::test_room_moved_to_school_not_opted_in_freezes_members
  tests/rules/test_opt_in_and_roster.py::test_policy_event_without_school_freezes_the_room
  tests/rules/test_opt_in_and_roster.py::test_unmanaged_room_is_not_frozen
  tests/rules/test_opt_in_and_roster.py::test_pupil_of_opted_in_school_acts_normally
  # Rule 2: posting in a one-way course
  tests/rules/test_one_way.py::test_teacher_posts_in_one_way_course
  tests/rules/test_one_way.py::test_pupil_cannot_post_any_content_event
  tests/rules/test_one_way.py::test_pupil_cannot_reply_in_a_thread_or_edit
  tests/rules/test_one_way.py::test_pupil_cannot_add_a_widget
  tests/rules/test_one_way.py::test_one_way_room_created_with_policy_gets_matching_power_levels
  tests/rules/test_one_way.py::test_allow_listed_reaction_goes_through
  tests/rules/test_one_way.py::test_teacher_opens_and_closes_two_way_and_power_levels_follow
  tests/rules/test_one_way.py::test_pupil_can_redact_own_earlier_message_after_room_closed
  tests/rules/test_one_way.py::test_sync_normal_path_creates_room_then_policy_and_levels_follow
  tests/rules/test_one_way.py::test_teachers_room_is_always_two_way
  # After the fact: Synapse's state delta stream (private store calls) and redactions
  tests/rules/test_one_way.py::test_pupil_cannot_write_into_a_one_way_room_through_membership_text
  # Rule 2's locks, and the policy event that would make a room shared (rule 3)
  tests/rules/test_locks.py::test_pupil_cannot_raise_own_power_level
  tests/rules/test_locks.py::test_nobody_but_service_users_lowers_events_default_in_one_way_room
  tests/rules/test_locks.py::test_teacher_cannot_promote_a_pupil
  tests/rules/test_locks.py::test_pupil_cannot_flip_or_delete_the_policy_event
  tests/rules/test_locks.py::test_teacher_cannot_change_school_kind_or_add_keys
  tests/rules/test_locks.py::test_pupil_cannot_create_a_room_carrying_the_policy_event
  tests/rules/test_locks.py::test_pupil_cannot_mark_an_unmanaged_room_as_managed
  tests/rules/test_locks.py::test_pupil_cannot_upgrade_the_course_away_from_its_policy
  tests/rules/test_locks.py::test_pupil_cannot_edit_their_way_into_a_managed_room_with_the_policy_event
  # Rule 3: direct chats, invites, joins, the user directory
  tests/rules/test_visibility.py::test_pupil_can_open_a_direct_chat_with_their_teacher
  tests/rules/test_visibility.py::test_pupil_cannot_open_a_direct_chat_with_a_pupil_of_another_school
  tests/rules/test_visibility.py::test_pupil_cannot_invite_a_pupil_of_another_school
  tests/rules/test_visibility.py::test_a_direct_chat_does_not_make_its_members_reachable_and_leaving_the_course_ends_it
  tests/rules/test_visibility.py::test_nobody_joins_a_school_room_without_an_invite
  tests/rules/test_visibility.py::test_pupil_invited_to_another_schools_room_cannot_join_it
  tests/rules/test_visibility.py::test_user_directory_shows_only_people_in_shared_rooms
  # Rule 3: who creates group rooms; the closed doors
  tests/rules/test_room_creation_and_closed_doors.py::test_pupil_cannot_create_a_group_room_but_a_teacher_can
  tests/rules/test_room_creation_and_closed_doors.py::test_room_cannot_be_created_with_an_open_door
  tests/rules/test_room_creation_and_closed_doors.py::test_new_rooms_have_guest_access_closed
  tests/rules/test_room_creation_and_closed_doors.py::test_room_cannot_be_made_public_later
  tests/rules/test_room_creation_and_closed_doors.py::test_room_cannot_be_published_in_the_room_directory
  tests/rules/test_room_creation_and_closed_doors.py::test_room_alias_cannot_be_created
  tests/rules/test_room_creation_and_closed_doors.py::test_email_invite_is_refused
  tests/rules/test_room_creation_and_closed_doors.py::test_planted_third_party_invite_is_refused
  # The compatibility window
  tests/unit/test_synapse_compat.py
  tests/system/test_synapse_compat.py
  # Rules 4-6: the special rooms and the reconciler
  tests/rules/test_special_rooms.py::test_teachers_room_holds_exactly_the_staff_and_no_announcement_room_exists
  tests/rules/test_special_rooms.py::test_pupils_do_not_reach_pupils_they_share_no_course_with_while_announcements_are_off
  tests/rules/test_special_rooms.py::test_killed_in_the_middle_of_a_reconciliation_it_completes_without_duplicates
  # Group rooms: the reconciler's membership changes through Synapse's private handler
  "tests/system/test_group_rooms.py::test_a_course_gets_its_room_with_the_policy_event_members_and_moderators[embedded]"
  "tests/system/test_group_rooms.py::test_removal_a_pupil_who_left_is_kicked_and_a_lost_moderator_lowered[embedded]"
  "tests/system/test_group_rooms.py::test_cross_school_team_member_joins_and_messages_a_pupil_of_the_owning_school[embedded]"
  # A flood of denials: the module's 429 is Synapse's own LimitExceededError
  "tests/system/test_denial_flood.py::test_a_flood_grows_the_audit_by_the_documented_bound_and_counts_every_denial"
  # The start-up self-check
  "tests/rules/test_self_check.py::test_strict_self_check_refuses_to_start_and_names_the_setting[user_directory-value0]"
  tests/rules/test_self_check.py::test_non_strict_self_check_only_warns
)
OLDEST_VENV=$(SSP_SYNAPSE_EXTRA=synapse-oldest scripts/setup.sh)
step "build and install the module into $OLDEST_VENV"
scripts/install-module.sh "$OLDEST_VENV"
step "integration tests against the oldest supported Synapse"
"$OLDEST_VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" "${OLDEST_TESTS[@]}"
