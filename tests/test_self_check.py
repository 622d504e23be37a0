"""The homeserver.yaml self-check: at start-up (strict or warning) and as
the `doctor` command."""
import subprocess
import sys

import pytest
import yaml

from support import base_config

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "setting, value",
    [
        ("user_directory", {"search_all_users": True}),
        ("limit_profile_requests_to_users_who_share_rooms", False),
        ("require_auth_for_profile_requests", False),
        ("allow_guest_access", True),
        ("enable_registration", True),
    ],
)
def test_strict_self_check_refuses_to_start_and_names_the_setting(synapse_factory, tmp_path, setting, value):
    extra = {setting: value}
    if setting == "enable_registration":
        extra["enable_registration_without_verification"] = True
    if setting == "require_auth_for_profile_requests":
        extra["limit_profile_requests_to_users_who_share_rooms"] = False  # Synapse requires both together
    server = synapse_factory(base_config(tmp_path / "store"), start=False, extra_config=extra)
    exit_code, output = server.start_expect_failure()
    name = "user_directory.search_all_users" if setting == "user_directory" else setting
    assert exit_code != 0
    assert f"{name}: must be" in output, output[-2000:]


def test_non_strict_self_check_only_warns(synapse_factory, tmp_path):
    server = synapse_factory(
        base_config(tmp_path / "store", strict_homeserver_config=False),
        extra_config={"user_directory": {"search_all_users": True}},
    )
    assert "user_directory.search_all_users: must be false" in server.log_text()


def run_doctor(path):
    return subprocess.run(
        [sys.executable, "-m", "synapse_school_policy.cli", "doctor", str(path)],
        capture_output=True, text=True, timeout=60,
    )


def test_doctor_finds_nothing_in_a_good_config(tmp_path):
    path = tmp_path / "homeserver.yaml"
    path.write_text(yaml.safe_dump({
        "limit_profile_requests_to_users_who_share_rooms": True,
        "require_auth_for_profile_requests": True,
        "allow_profile_lookup_over_federation": False,
        "modules": [{"module": "synapse_school_policy.SchoolPolicy", "config": base_config(tmp_path / "store")}],
    }))
    result = run_doctor(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems found" in result.stdout


def test_doctor_names_every_problem(tmp_path):
    config = base_config(tmp_path / "store")
    config["schools"]["gym-nord"]["messenger"] = "yes"
    path = tmp_path / "homeserver.yaml"
    path.write_text(yaml.safe_dump({
        "user_directory": {"search_all_users": True},
        "enable_registration": True,
        "modules": [{"module": "synapse_school_policy.SchoolPolicy", "config": config}],
    }))
    result = run_doctor(path)
    assert result.returncode == 1
    for expected in (
        "user_directory.search_all_users: must be false",
        "limit_profile_requests_to_users_who_share_rooms: must be true",
        "require_auth_for_profile_requests: must be true",
        "enable_registration: must be false",
        "schools.gym-nord.messenger: expected a boolean",
    ):
        assert expected in result.stdout, result.stdout
