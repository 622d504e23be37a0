"""The Synapse compatibility window and the private members the module uses
(synapse_compat.py). The integration suite runs against both ends of the
window (scripts/test.sh); these tests check the window itself and the
start-up refusal, through the installed package and a real Synapse."""
import os
import sys
import tomllib
from types import SimpleNamespace

import pytest
import synapse
from synapse.module_api.errors import ConfigError

from synapse_school_policy import synapse_compat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pyproject_pins():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    return tuple(extras[name][0].split("==")[1] for name in ("synapse-oldest", "synapse"))


def test_the_window_comes_from_pyproject_through_the_installed_metadata():
    assert synapse_compat.supported_window() == pyproject_pins()


def test_this_synapse_is_inside_the_window():
    oldest, newest = synapse_compat.supported_window()
    synapse_compat.check_version(synapse.__version__, oldest, newest)
    assert synapse.__version__ in (oldest, newest), "the test venvs run the two pins"


@pytest.mark.parametrize("version", ["1.140.0", "1.150.3", "1.163.2", "1.163.9"])
def test_releases_from_the_oldest_to_the_newest_minor_load(version):
    synapse_compat.check_version(version, "1.140.0", "1.163.2")


@pytest.mark.parametrize("version", ["1.139.9", "1.139.0rc1", "1.164.0", "1.164.0rc1", "2.0.0", "0.99.0"])
def test_releases_outside_the_window_are_refused_with_both_versions_named(version):
    with pytest.raises(ConfigError) as raised:
        synapse_compat.check_version(version, "1.140.0", "1.163.2")
    message = str(raised.value)
    assert "supports Synapse 1.140.0 to 1.163.x" in message
    assert f"this is Synapse {version}" in message


def _api(**store):
    config = SimpleNamespace(
        userdirectory=SimpleNamespace(user_directory_search_all_users=False),
        server=SimpleNamespace(limit_profile_requests_to_users_who_share_rooms=True,
                               require_auth_for_profile_requests=True),
        registration=SimpleNamespace(allow_guest_access=False, enable_registration=False,
                                     registration_requires_token=False),
    )
    return SimpleNamespace(_hs=SimpleNamespace(config=config), _store=SimpleNamespace(**store))


async def _rooms(*args):
    return frozenset()


def test_start_up_check_passes_when_every_private_member_is_there():
    synapse_compat.check_synapse(_api(get_mutual_rooms_between_users=_rooms, get_rooms_for_user=_rooms))


def test_start_up_check_names_each_missing_private_member():
    api = _api(get_rooms_for_user=_rooms)
    del api._hs.config.server.require_auth_for_profile_requests
    with pytest.raises(ConfigError) as raised:
        synapse_compat.check_synapse(api)
    message = str(raised.value)
    assert f"Synapse {synapse.__version__} lacks what the module needs" in message
    assert "ModuleApi._store.get_mutual_rooms_between_users" in message
    assert "homeserver config server.require_auth_for_profile_requests" in message
    assert "get_rooms_for_user" not in message


@pytest.mark.integration
def test_synapse_outside_the_window_refuses_to_load_the_module(synapse_factory, tmp_path):
    """A real Synapse that reports a version below the window (a
    sitecustomize sets synapse.__version__ before the homeserver starts)
    stops at start-up with the module's message."""
    oldest, newest = synapse_compat.supported_window()
    major, minor, _ = (int(p) for p in oldest.split("."))
    too_old = f"{major}.{minor - 1}.0"
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import synapse\nsynapse.__version__ = {too_old!r}\n")
    pythonpath = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    server = synapse_factory(
        {"service_users": ["@sync:school.test"], "schools": {"gym-nord": {"messenger": True}},
         "data_dir": str(tmp_path / "store")},
        start=False, env={"PYTHONPATH": pythonpath}, python=sys.executable,
    )
    code, text = server.start_expect_failure()
    assert code != 0
    assert f"supports {synapse_compat.window_text(oldest, newest)}; this is Synapse {too_old}" in text
