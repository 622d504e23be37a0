"""The admin REST API: who may call it, body validation, roster and audit."""
from urllib.parse import quote

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
    assert school.admin_api("POST", "/roster", {"users": users}) == (200, {"upserted": 50, "groups": 0})
    assert school.admin_api("POST", "/roster", {"users": users}) == (200, {"upserted": 50, "groups": 0})
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
    # Every record says what it is; the module's actions are another kind.
    assert all(r["kind"] == "denial" and r["count"] == 1 for r in records)
    assert [r["id"] for r in school.audit(user=uid("outsider"), kind="denial")] == ids
    assert school.audit(user=uid("outsider"), kind="action") == []


@pytest.mark.parametrize("query, field", [({"limit": "0"}, "limit"), ({"since": "yesterday"}, "since"), ({"rule": "nope"}, "rule")])
def test_bad_audit_query_gets_400_naming_the_parameter(school, query, field):
    status, body = school.admin_api("GET", "/audit", query=query)
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    assert body["error"].startswith(field + ":"), body


# ---- every bad input is a 400 naming the parameter or field, never a 500 ----

def raw_request(school, method, path, data: bytes | None = None):
    """A request with the path, query and body sent exactly as given."""
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(school.server.base_url + ADMIN_API + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {school.sync.token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def assert_400(answer, field, errcode="M_INVALID_PARAM"):
    status, body = answer
    assert status == 400, (status, body)
    assert body["errcode"] == errcode, body
    assert body["error"].startswith(field + ":"), body


@pytest.mark.parametrize(
    "query, field",
    [
        ("since=99999999999999999999999", "since"),
        ("since=9223372036854775808", "since"),
        ("since=-1", "since"),
        ("since=-99999999999999999999999", "since"),
        ("since=%2B5", "since"),
        ("since=%EF%BC%91", "since"),  # a fullwidth digit one
        ("since=1_000", "since"),
        ("since=%201", "since"),
        ("since=" + "1" * 5000, "since"),
        ("since=%FF", "since"),
        ("until=99999999999999999999999", "until"),
        ("until=-5", "until"),
        ("until=soon", "until"),
        ("from=99999999999999999999999", "from"),
        ("from=-1", "from"),
        ("from=next", "from"),
        ("limit=99999999999999999999999", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("user=%40a%00%3Aschool.test", "user"),
        ("user=%00", "user"),
        ("school=gym%00nord", "school"),
        ("rule=one_way%00", "rule"),
        ("user=%40caf%FF%3Aschool.test", "user"),
        ("school=%C3", "school"),
        ("kind=denials", "kind"),
        ("kind=%00", "kind"),
    ],
)
def test_bad_audit_parameter_gets_400_naming_it(school, query, field):
    assert_400(raw_request(school, "GET", f"/audit?{query}"), field)


@pytest.mark.parametrize(
    "query",
    ["since=0&until=9223372036854775807", "from=9223372036854775807", "limit=1", "limit=1000",
     "since=&until=&from=", "user=%40nobody%3Aschool.test&school=gym-nord&rule=one_way"],
)
def test_audit_parameters_at_their_limits_are_accepted(school, query):
    status, body = raw_request(school, "GET", f"/audit?{query}")
    assert status == 200, body
    assert isinstance(body["records"], list) and "next" in body


@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE"])
@pytest.mark.parametrize(
    "path_user, message",
    [
        ("%40a%00%3Aschool.test", "contains a NUL character"),
        ("%40a%3Aschool.test%00", "contains a NUL character"),
        ("%40caf%FF%3Aschool.test", "not valid UTF-8"),
        ("%40a%0A%3Aschool.test", None),
    ],
)
def test_bad_user_id_in_the_path_gets_400(school, method, path_user, message):
    body = b'{"schools": []}' if method == "PUT" else None
    status, answer = raw_request(school, method, f"/users/{path_user}", body)
    if method == "GET" and message is None:
        # A lookup of an id that cannot be on the roster: not found.
        assert status == 404 and answer["errcode"] == "M_NOT_FOUND"
        return
    assert_400((status, answer), "user_id")
    if message:
        assert message in answer["error"]


def test_remote_user_in_the_path_is_refused_by_put_and_harmless_for_get_and_delete(school):
    user = "%40eve%3Aevil.example"
    status, body = raw_request(school, "PUT", f"/users/{user}", b'{"schools": [{"school": "gym-nord", "role": "student"}]}')
    assert_400((status, body), "user_id")
    assert "another server" in body["error"] and "school.test" in body["error"]
    assert raw_request(school, "GET", f"/users/{user}")[0] == 404
    assert raw_request(school, "DELETE", f"/users/{user}") == (200, {})


def test_user_id_of_256_bytes_is_refused_and_of_255_accepted(school):
    suffix = ":school.test"
    ok = "@" + "a" * (255 - 1 - len(suffix)) + suffix
    too_long = "@" + "a" * (256 - 1 - len(suffix)) + suffix
    assert len(ok) == 255 and len(too_long) == 256
    status, body = school.admin_api("PUT", f"/users/{too_long}", {"schools": []})
    assert_400((status, body), "user_id")
    assert "longer than 255 bytes" in body["error"]
    status, body = school.admin_api("PUT", f"/users/{ok}", {"schools": [membership("gym-nord", "student")]})
    assert status == 200 and body["user_id"] == ok
    assert school.admin_api("DELETE", f"/users/{ok}") == (200, {})


@pytest.mark.parametrize(
    "raw, field, errcode",
    [
        (b'{"schools": [{"school": "gym\\u0000nord", "role": "student"}]}', "schools[0].school", "M_INVALID_PARAM"),
        (b'{"schools": [{"school": "\\u0000", "role": "student"}]}', "schools[0].school", "M_INVALID_PARAM"),
        (b'{"schools": [{"school": "gym\\nnord", "role": "student"}]}', "schools[0].school", "M_INVALID_PARAM"),
        (b'{"schools": [{"school": "gym-nord", "role": "admin"}, {"school": "gym\\u007f", "role": "student"}]}',
         "schools[1].school", "M_INVALID_PARAM"),
        (b'{"schools": [{"school": "gym nord", "role": "student"}]}', "schools[0].school", "M_INVALID_PARAM"),
        (b'{"schools": [{"school": "gym-nord", "role": "teacher\\u0000"}]}', "schools[0].role", "M_INVALID_PARAM"),
        (b'{"schools": [{"school": "' + b"x" * 1_000_000 + b'", "role": "student"}]}', "schools[0].school",
         "M_INVALID_PARAM"),
        (b'{"schools\\u0000": []}', "body", "M_BAD_JSON"),
        (b'{"schools": [\xff]}', "body", "M_BAD_JSON"),
        (b'{"schools": ["caf\xe9"]}', "body", "M_BAD_JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "body", "M_BAD_JSON"),
        (b"", "body", "M_BAD_JSON"),
        (b"\x00", "body", "M_BAD_JSON"),
    ],
)
def test_bad_put_body_gets_400_naming_the_field(school, raw, field, errcode):
    before = school.admin_api("GET", f"/users/{uid('teacher')}")
    assert_400(raw_request(school, "PUT", f"/users/{uid('teacher')}", raw), field, errcode)
    assert school.admin_api("GET", f"/users/{uid('teacher')}") == before, "nothing changed"


def _entry(localpart_or_id, *memberships):
    user_id = localpart_or_id if localpart_or_id.startswith("@") else uid(localpart_or_id)
    return {"user_id": user_id, "schools": list(memberships) or [membership("gym-nord", "student")]}


@pytest.mark.parametrize(
    "users, field, words",
    [
        ([_entry("dup0"), _entry("dup1"), _entry("dup2"), _entry("dup0")], "users[3].user_id", "duplicate of users[0]"),
        ([_entry("rem0"), _entry("@eve:evil.example")], "users[1].user_id", "another server"),
        ([_entry("@eve:school.test.evil.example")], "users[0].user_id", "another server"),
        ([_entry("@eve:School.Test")], "users[0].user_id", "another server"),
        ([_entry("@a\u0000:school.test")], "users[0].user_id", "NUL"),
        ([_entry("@a\n:school.test")], "users[0].user_id", "control character"),
        ([_entry("@café:school.test")], "users[0].user_id", "expected a Matrix user id"),
        ([_entry("@:school.test")], "users[0].user_id", "expected a Matrix user id"),
        ([_entry("@" + "a" * 250 + ":school.test")], "users[0].user_id", "longer than 255 bytes"),
        ([_entry("ctl0", membership("gym\u0000", "student"))], "users[0].schools[0].school", "control character"),
        ([_entry("ctl1", membership("gym\r", "student"))], "users[0].schools[0].school", "control character"),
    ],
)
def test_bad_batch_gets_400_naming_the_entry_and_writes_nothing(school, users, field, words):
    status, body = school.admin_api("POST", "/roster", {"users": users})
    assert_400((status, body), field)
    assert words in body["error"], body
    for entry in users:
        answer = school.admin_api("GET", f"/users/{quote(entry['user_id'], safe='')}")
        assert answer[0] in (400, 404), answer


def test_huge_batch_with_a_late_duplicate_is_refused_whole(school):
    users = [_entry(f"huge{i}") for i in range(20_000)] + [_entry("huge17")]
    status, body = school.admin_api("POST", "/roster", {"users": users})
    assert_400((status, body), "users[20000].user_id")
    assert body["error"] == "users[20000].user_id: duplicate of users[17]"
    assert school.admin_api("GET", f"/users/{uid('huge17')}")[0] == 404


def test_legitimate_batch_with_distinct_users_still_works(school):
    users = [_entry("fine0"), _entry("fine1", membership("gs-sued", "teacher"), membership("gym-nord", "admin"))]
    assert school.admin_api("POST", "/roster", {"users": users}) == (200, {"upserted": 2, "groups": 0})
    assert school.admin_api("GET", f"/users/{uid('fine1')}")[1]["schools"] == users[1]["schools"]
