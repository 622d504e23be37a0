"""The Synapse compatibility window and the private members the module uses
(synapse_compat.py). The integration suite runs against both ends of the
window (scripts/test.sh); these tests check the window itself through the
installed package, and the start-up check of the private members on a fake
ModuleApi. A real Synapse outside the window refusing to load the module is
in tests/system/test_synapse_compat.py."""
import os
import tomllib
from types import SimpleNamespace

import pytest
import synapse
from synapse.module_api.errors import ConfigError

from support import REPO_ROOT
from synapse_school_policy import synapse_compat



def pyproject_pins():
    with open(os.path.join(REPO_ROOT, "pyproject.toml"), "rb") as f:
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
    return SimpleNamespace(_hs=SimpleNamespace(config=config, get_room_member_handler=lambda: None),
                           _store=SimpleNamespace(**store))


async def _rooms(*args):
    return frozenset()


EVERY_STORE_MEMBER = {name: _rooms for name in synapse_compat._STORE_MEMBERS}


def test_start_up_check_passes_when_every_private_member_is_there():
    synapse_compat.check_synapse(_api(**EVERY_STORE_MEMBER))


def test_this_synapses_store_has_every_private_member_the_module_calls():
    from synapse.storage.databases.main import DataStore

    for name in synapse_compat._STORE_MEMBERS:
        # Looked up on the class as Synapse defines it (a cached method is a
        # descriptor that only an instance may call).
        assert any(name in vars(cls) for cls in DataStore.__mro__), name


def test_this_synapses_homeserver_has_the_room_member_handler_the_reconciler_calls():
    import inspect

    from synapse.handlers.room_member import RoomMemberHandler
    from synapse.server import HomeServer

    assert callable(getattr(HomeServer, "get_room_member_handler", None))
    parameters = inspect.signature(RoomMemberHandler.update_membership).parameters
    assert {"requester", "target", "room_id", "action", "content", "ratelimit"} <= parameters.keys()


def test_start_up_check_names_each_missing_private_member():
    api = _api(**{**EVERY_STORE_MEMBER, "get_mutual_rooms_between_users": None})
    del api._hs.config.server.require_auth_for_profile_requests
    del api._hs.get_room_member_handler
    with pytest.raises(ConfigError) as raised:
        synapse_compat.check_synapse(api)
    message = str(raised.value)
    assert f"Synapse {synapse.__version__} lacks what the module needs" in message
    assert "ModuleApi._store.get_mutual_rooms_between_users" in message
    assert "homeserver config server.require_auth_for_profile_requests" in message
    assert "ModuleApi._hs.get_room_member_handler" in message
    assert "get_rooms_for_user" not in message
