"""The homeserver.yaml self-check as the `doctor` command, on a config file
(no Synapse runs). At start-up it is tested in tests/rules/test_self_check.py."""
import subprocess
import sys

import yaml

from support import base_config


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
