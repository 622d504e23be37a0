"""The admin REST API: who may call it, body validation, roster and audit."""
import pytest

from harness.client import request
from support import ADMIN_API, School, base_config, membership, uid

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def school(module_synapse_factory, tmp_path_factory):
    server = module_synapse_factory(base_config(tmp_path_factory.mktemp("policy") / "store"))
    world = School(server)
    world.register("sync")
    world.register("root", admin=True)
    world.register("teacher")
    world.put_roster("teacher", membership("gym-nord", "teacher"))
    return world


def test_request_without_token_gets_401_missing_token(school):
    status, body = request(school.server.base_url, "GET", f"{ADMIN_API}/users/{uid('teacher')}")
    assert status == 401 and body["errcode"] == "M_MISSING_TOKEN"


def test_request_with_unknown_token_gets_401_unknown_token(school):
    status, body = request(school.server.base_url, "GET", f"{ADMIN_API}/users/{uid('teacher')}", token="nope")
    assert status == 401 and body["errcode"] == "M_UNKNOWN_TOKEN"


def test_ordinary_user_gets_403(school):
    status, body = school.admin_api("GET", f"/users/{uid('teacher')}", as_user=school.users["teacher"])
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"


def test_server_admin_may_call_it(school):
    status, body = school.admin_api("GET", f"/users/{uid('teacher')}", as_user=school.users["root"])
    assert status == 200
    assert body == {"user_id": uid("teacher"), "schools": [{"school": "gym-nord", "role": "teacher"}]}


def test_put_get_delete_user(school):
    user = uid("newbie")
    status, body = school.admin_api(
        "PUT", f"/users/{user}", {"schools": [membership("gym-nord", "student"), membership("gs-sued", "admin")]}
    )
    assert status == 200
    assert body == {
        "user_id": user,
        "schools": [{"school": "gym-nord", "role": "student"}, {"school": "gs-sued", "role": "admin"}],
    }
    assert school.admin_api("GET", f"/users/{user}") == (200, body)
    assert school.admin_api("DELETE", f"/users/{user}") == (200, {})
    status, body = school.admin_api("GET", f"/users/{user}")
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"


def test_put_with_empty_list_removes_user_from_every_school(school):
    user = uid("leaver")
    school.admin_api("PUT", f"/users/{user}", {"schools": [membership("gym-nord", "student")]})
    status, body = school.admin_api("PUT", f"/users/{user}", {"schools": []})
    assert status == 200 and body == {"user_id": user, "schools": []}
    assert school.admin_api("GET", f"/users/{user}")[0] == 404


@pytest.mark.parametrize(
    "body, field",
    [
        ({"schools": [{"school": "gym-nord", "role": "headmaster"}]}, "schools[0].role"),
        ({"schools": [{"role": "teacher"}]}, "schools[0].school"),
        ({"schools": "gym-nord"}, "schools"),
        ({"schools": [], "extra": 1}, "extra"),
        ({"schools": [membership("gym-nord", "student"), membership("gym-nord", "teacher")]}, "schools[1].school"),
    ],
)
def test_bad_user_body_gets_400_naming_the_field(school, body, field):
    status, response = school.admin_api("PUT", f"/users/{uid('teacher')}", body)
    assert status == 400 and response["errcode"] == "M_INVALID_PARAM"
    assert response["error"].startswith(field + ":"), response


def test_body_that_is_not_json_gets_400_bad_json(school):
    status, body = request(
        school.server.base_url, "PUT", f"{ADMIN_API}/users/{uid('teacher')}", token=school.sync.token
    )
    assert status == 400 and body["errcode"] in ("M_BAD_JSON", "M_NOT_JSON")


def test_invalid_user_id_in_path_gets_400(school):
    status, body = school.admin_api("PUT", "/users/not-a-user", {"schools": []})
    assert status == 400 and body["error"].startswith("user_id:")


def test_batch_upsert_is_idempotent(school):
    users = [
        {"user_id": uid(f"batch{i}"), "schools": [membership("gym-nord", "student")]} for i in range(50)
    ]
    assert school.admin_api("POST", "/roster", {"users": users}) == (200, {"upserted": 50})
    assert school.admin_api("POST", "/roster", {"users": users}) == (200, {"upserted": 50})
    assert school.admin_api("GET", f"/users/{uid('batch7')}")[1]["schools"] == [membership("gym-nord", "student")]


def test_batch_with_one_bad_entry_writes_nothing(school):
    users = [
        {"user_id": uid("atomic1"), "schools": [membership("gym-nord", "student")]},
        {"user_id": "broken", "schools": []},
    ]
    status, body = school.admin_api("POST", "/roster", {"users": users})
    assert status == 400 and body["error"].startswith("users[1].user_id:")
    assert school.admin_api("GET", f"/users/{uid('atomic1')}")[0] == 404


def test_unknown_endpoint_gets_404_and_wrong_method_405(school):
    assert school.admin_api("GET", "/nothing")[0] == 404
    assert school.admin_api("POST", f"/users/{uid('teacher')}", {})[0] == 405


def test_audit_filters_and_pagination(school):
    # Five denials by one user, via login attempts of a user not on the roster.
    from harness.client import login

    school.register("outsider")
    for _ in range(5):
        assert login(school.server.base_url, "outsider", "correct horse battery staple")[0] == 403
    records = school.audit(user=uid("outsider"))
    assert len(records) == 5
    assert all(r["rule"] == "not_on_roster" and r["actor"] == uid("outsider") for r in records)
    ids = [r["id"] for r in records]
    assert ids == sorted(ids, reverse=True), "newest first"
    assert all(set(r) >= {"ts", "rule", "callback", "enforced", "actor", "target", "room_id", "event_type", "school", "worker"} for r in records)

    status, page1 = school.admin_api("GET", "/audit", query={"user": uid("outsider"), "limit": 2})
    assert status == 200 and len(page1["records"]) == 2 and page1["next"]
    status, page2 = school.admin_api("GET", "/audit", query={"user": uid("outsider"), "limit": 2, "from": page1["next"]})
    status, page3 = school.admin_api("GET", "/audit", query={"user": uid("outsider"), "limit": 2, "from": page2["next"]})
    assert [r["id"] for r in page1["records"] + page2["records"] + page3["records"]] == ids
    assert page3["next"] is None

    newest = records[0]["ts"]
    assert school.audit(user=uid("outsider"), since=newest + 1) == []
    assert len(school.audit(user=uid("outsider"), until=newest + 1)) == 5
    assert school.audit(user=uid("outsider"), rule="one_way") == []
    assert school.audit(user=uid("outsider"), school="gym-nord") == []


@pytest.mark.parametrize("query, field", [({"limit": "0"}, "limit"), ({"since": "yesterday"}, "since"), ({"rule": "nope"}, "rule")])
def test_bad_audit_query_gets_400_naming_the_parameter(school, query, field):
    status, body = school.admin_api("GET", "/audit", query=query)
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    assert body["error"].startswith(field + ":"), body
