"""Start-up validation, the embedded store across restarts and crashes, and
the config switches of rule 1 (unlisted users, report-only)."""
import pytest

from harness.client import login
from support import PASSWORD, School, assert_audited, assert_denied, base_config, membership, uid

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"schools": {"gym-nord": {"messenger": "yes"}}}, "schools.gym-nord.messenger: expected a boolean"),
        ({"schools": {"gym-nord": {"room_creation": "pupils"}}},
         "schools.gym-nord.room_creation: expected one of service_users, teachers, everyone"),
        ({"unlisted_users": "maybe"}, "unlisted_users: expected one of deny, allow"),
        ({"colour": "blue"}, "colour: unknown key"),
        ({"service_users": ["sync"]}, "service_users[0]: expected Matrix user ids"),
        ({"data_dir": None}, "data_dir: required when database is not set"),
    ],
)
def test_synapse_refuses_to_start_and_names_the_bad_key(synapse_factory, tmp_path, overrides, message):
    server = synapse_factory(base_config(tmp_path / "store", **overrides), start=False)
    exit_code, output = server.start_expect_failure()
    assert exit_code != 0
    assert message in output, output[-2000:]


@pytest.fixture
def world(synapse_factory, tmp_path):
    server = synapse_factory(base_config(tmp_path / "store"))
    world = School(server)
    world.register("sync")
    world.register("teacher")
    world.register("off")
    world.register("stranger")
    world.put_roster("teacher", membership("gym-nord", "teacher"))
    world.put_roster("off", membership("gs-sued", "student"))
    return world


def test_roster_and_audit_survive_a_restart(world):
    assert_denied(login(world.server.base_url, "off", PASSWORD), "school_not_enabled")
    before = world.audit(user=uid("off"))
    world.server.restart()
    assert world.admin_api("GET", f"/users/{uid('teacher')}")[1]["schools"] == [membership("gym-nord", "teacher")]
    assert login(world.server.base_url, "teacher", PASSWORD)[0] == 200
    assert world.audit(user=uid("off")) == before
    # New records continue the id sequence.
    assert_denied(login(world.server.base_url, "off", PASSWORD), "school_not_enabled")
    after = world.audit(user=uid("off"))
    assert after[0]["id"] > before[0]["id"] and after[1:] == before


def test_acknowledged_roster_change_and_denial_survive_sigkill(world):
    world.put_roster("stranger", membership("gym-nord", "student"))
    assert_denied(login(world.server.base_url, "off", PASSWORD), "school_not_enabled")
    world.server.kill()
    world.server.start()
    assert login(world.server.base_url, "stranger", PASSWORD)[0] == 200
    # The denial was written by the audit thread within its batch; one
    # fdatasync later it is on disk even though the process died.
    assert_audited(world, "school_not_enabled", uid("off"), callback="check_login_for_spam")


def test_unlisted_users_allow_lets_users_off_the_roster_in(world):
    assert_denied(login(world.server.base_url, "stranger", PASSWORD), "not_on_roster")
    world.server.restart(module_config=base_config(world.server_data_dir, unlisted_users="allow"))
    assert login(world.server.base_url, "stranger", PASSWORD)[0] == 200
    # A listed user of a school that has not opted in is still refused.
    assert_denied(login(world.server.base_url, "off", PASSWORD), "school_not_enabled")


def test_report_only_audits_without_denying(world):
    world.server.restart(module_config=base_config(world.server_data_dir, enforce=False))
    status, _ = login(world.server.base_url, "off", PASSWORD)
    assert status == 200
    record = assert_audited(world, "school_not_enabled", uid("off"), callback="check_login_for_spam")
    assert record["enforced"] is False


def test_per_school_enforce_overrides_global(world):
    config = base_config(world.server_data_dir)
    config["schools"]["gs-sued"]["enforce"] = False
    world.server.restart(module_config=config)
    assert login(world.server.base_url, "off", PASSWORD)[0] == 200
    assert assert_audited(world, "school_not_enabled", uid("off"))["enforced"] is False
    # Users off the roster belong to no school: the global setting applies.
    assert_denied(login(world.server.base_url, "stranger", PASSWORD), "not_on_roster")
