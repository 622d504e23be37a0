"""Rule 3's homeserver.yaml self-check at start-up: strict, Synapse refuses
to start and names the setting; otherwise it only warns. The same check as
the `doctor` command is in tests/unit/test_self_check.py."""
import pytest

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
