"""The hardened homeserver.yaml block of `synapse-school-policy doctor` on a
real Synapse: with it the strict start-up self-check is clean; one refusing
setting stops start-up naming the key; one warning setting only warns; and
the doctor adds the announcement room to exclude_rooms_from_presence."""
import subprocess
import sys

import pytest
import synapse
import yaml

from harness.client import wait_for
from support import School, base_config, membership

pytestmark = pytest.mark.integration

BLOCK_HEADER = "# Hardened homeserver.yaml settings"
PRESENCE_WARNING = (
    "homeserver.yaml weakens the school rules: presence.enabled: should be false: presence and "
    "status messages reach everyone who shares a room with the user (in the announcement room "
    "the whole school), and GET /rooms/{id}/initialSync shows them whatever "
    "exclude_rooms_from_presence says"
)


def run_doctor(path):
    return subprocess.run(
        [sys.executable, "-m", "synapse_school_policy.cli", "doctor", str(path)],
        capture_output=True, text=True, timeout=60,
    )


def block_of(doctor_output: str) -> dict:
    """The hardened block the doctor printed, read as YAML."""
    assert BLOCK_HEADER in doctor_output, doctor_output
    return yaml.safe_load(doctor_output[doctor_output.index(BLOCK_HEADER):])


def hardened_block(tmp_path, module_config) -> dict:
    """The block the doctor prints for a homeserver.yaml that configures
    only the module (so every other setting is at Synapse's default)."""
    path = tmp_path / "homeserver.yaml"
    path.write_text(yaml.safe_dump({
        "server_name": "school.test",
        "modules": [{"module": "synapse_school_policy.SchoolPolicy", "config": module_config}],
    }))
    result = run_doctor(path)
    assert result.returncode == 1, result.stdout + result.stderr  # Synapse's defaults: refused
    return block_of(result.stdout)


def self_check_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "synapse_school_policy: homeserver.yaml" in line]


def test_doctors_block_passes_the_strict_self_check_of_a_real_synapse_clean(synapse_factory, tmp_path):
    config = base_config(tmp_path / "store", strict_homeserver_config=True)
    block = hardened_block(tmp_path, config)

    server = synapse_factory(config, extra_config=block)

    lines = self_check_lines(server.log_text())
    assert len(lines) == 1 and lines[0].endswith("homeserver.yaml self-check: clean"), lines
    # The file the server runs with (the harness's settings with the block
    # merged) is clean for the doctor too, and it prints no block.
    result = run_doctor(server.config_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"{server.config_path}: no problems found\n"


@pytest.mark.parametrize(
    "change, key",
    [
        ({"auto_join_rooms": ["#lobby:school.test"]}, "auto_join_rooms"),
        # Refused while other servers may ask; the block's [] would close federation.
        ({"allow_profile_lookup_over_federation": True, "federation_domain_whitelist": ["other.example"]},
         "allow_profile_lookup_over_federation"),
    ],
)
def test_one_refusing_setting_stops_start_up_naming_the_key(synapse_factory, tmp_path, change, key):
    config = base_config(tmp_path / "store", strict_homeserver_config=True)
    block = hardened_block(tmp_path, config)

    server = synapse_factory(config, start=False, extra_config={**block, **change})
    exit_code, output = server.start_expect_failure()

    assert exit_code != 0
    assert f"homeserver.yaml undermines the school rules: {key}: must be " in output, output[-3000:]
    assert "set strict_homeserver_config: false to only warn" in output
    assert "weakens the school rules" not in output  # nothing else is wrong


@pytest.mark.skipif(
    tuple(int(part) for part in synapse.__version__.split(".")[:2]) < (1, 157),
    reason="exclude_rooms_from_presence came with Synapse 1.157",
)
def test_presence_only_warns_and_the_doctor_excludes_the_announcement_room(synapse_factory, tmp_path):
    config = base_config(tmp_path / "store", strict_homeserver_config=True)
    config["schools"]["gym-nord"]["announcement_room"] = True
    presence_on = {**hardened_block(tmp_path, config), "presence": {"enabled": True}}

    # A warning does not stop Synapse: it starts, and says why.
    server = synapse_factory(config, extra_config=presence_on)
    (line,) = self_check_lines(server.log_text())
    assert " - WARNING - " in line and line.endswith(PRESENCE_WARNING), line

    # Once the reconciler has made the announcement room, the next start
    # names it as missing from exclude_rooms_from_presence.
    world = School(server)
    world.register("sync")
    world.register("pupil1")
    world.put_roster("pupil1", membership("gym-nord", "student"))
    room_id = wait_for(
        lambda: world.admin_api("GET", "/status")[1]["schools"]["gym-nord"]["announcement_room"],
        timeout=90, what="the announcement room",
    )
    log_so_far = len(server.log_text())
    server.restart()
    (line,) = self_check_lines(server.log_text()[log_so_far:])
    assert f'exclude_rooms_from_presence: should be a list of every announcement room (missing: ["{room_id}"])' in line

    # The doctor, on the file the server runs with, lists the room in its block.
    result = run_doctor(server.config_path)
    assert result.returncode == 0, result.stdout + result.stderr  # warnings only
    assert block_of(result.stdout)["exclude_rooms_from_presence"] == [room_id]
    server.extra_config = {**presence_on, "exclude_rooms_from_presence": [room_id]}
    log_so_far = len(server.log_text())
    server.restart()
    (line,) = self_check_lines(server.log_text()[log_so_far:])
    assert line.endswith(PRESENCE_WARNING), line
