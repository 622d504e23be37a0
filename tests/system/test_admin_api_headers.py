"""`X-Content-Type-Options: nosniff` on every answer of the admin API and of
the audit page, through a real Synapse: success and every error the API
gives (400, the two 401s, 403, 404, both 405s, 500 and 503), and the
page's files, its redirect, its 404 and Twisted's 405.

The module runs on the PostgreSQL store (a database of its own on the
session's cluster) so that the 500 (the database refuses a statement) and
the 503 (the database cannot be reached) are the real ones."""
import json
import time
import urllib.error
import urllib.request

import pytest

from support import ADMIN_API, School, base_config, membership, uid

pytestmark = pytest.mark.integration

PAGE = "/_synapse/client/school_policy/audit"


def answer(server, method, path, token=None, body=None):
    """(status, headers) of one request; no redirect is followed."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(server.base_url + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=30) as resp:
            resp.read()
            return resp.status, resp.headers
    except urllib.error.HTTPError as e:
        e.read()
        return e.code, e.headers


def assert_nosniff(status, headers, expected_status):
    assert status == expected_status, (status, dict(headers))
    assert headers.get_all("X-Content-Type-Options") == ["nosniff"], dict(headers)


@pytest.fixture(scope="module")
def school(module_synapse_factory, postgres, tmp_path_factory):
    name = f"school_policy_headers_{time.monotonic_ns()}"
    postgres.create_database(name)
    config = base_config(tmp_path_factory.mktemp("policy") / "store", database=postgres.dsn(name))
    world = School(module_synapse_factory(config))
    world.register("sync")
    world.register("teacher")
    world.put_roster("teacher", membership("gym-nord", "teacher"))
    world.module_database = name
    return world


CASES = {
    # id: (method, path, who, body, status)
    "200-get-user": ("GET", f"/users/{uid('teacher')}", "sync", None, 200),
    "200-audit": ("GET", "/audit?limit=1", "sync", None, 200),
    "400-bad-body": ("PUT", f"/users/{uid('teacher')}", "sync", {"schools": "gym-nord"}, 400),
    "400-bad-json": ("POST", "/roster", "sync", b"{not json", 400),
    "400-bad-parameter": ("GET", "/audit?limit=0", "sync", None, 400),
    "401-missing-token": ("GET", "/status", None, None, 401),
    "401-unknown-token": ("GET", "/status", "nope", None, 401),
    "403-not-allowed": ("GET", f"/users/{uid('teacher')}", "teacher", None, 403),
    "404-not-on-roster": ("GET", f"/users/{uid('nobody')}", "sync", None, 404),
    "404-no-such-endpoint": ("GET", "/nothing", "sync", None, 404),
    "405-wrong-method-for-the-path": ("POST", "/status", "sync", {}, 405),
    "405-method-without-handler": ("PATCH", "/status", "sync", {}, 405),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_every_admin_api_answer_carries_nosniff(school, case):
    method, path, who, body, expected = case
    token = {"sync": school.sync.token, "teacher": school.users["teacher"].token,
             None: None}.get(who, who)
    assert_nosniff(*answer(school.server, method, ADMIN_API + path, token, body), expected)


def test_the_500_of_a_refused_statement_carries_nosniff(school, postgres):
    conn = postgres.connect(school.module_database)
    try:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE school_policy.audit RENAME TO audit_away")
        try:
            status, headers = answer(school.server, "GET", ADMIN_API + "/audit?limit=1", school.sync.token)
        finally:
            with conn.cursor() as cur:
                cur.execute("ALTER TABLE school_policy.audit_away RENAME TO audit")
    finally:
        conn.close()
    assert_nosniff(status, headers, 500)


def test_the_503_of_an_unreachable_database_carries_nosniff(school, postgres):
    """The module's database refuses connections and its sessions are ended:
    the store cannot be reached (Synapse's own database is another one)."""
    name = school.module_database
    admin = postgres.connect()
    try:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            status, headers = answer(school.server, "GET", ADMIN_API + "/audit?limit=1", school.sync.token)
        finally:
            with admin.cursor() as cur:
                cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        admin.close()
    assert_nosniff(status, headers, 503)
    deadline = time.monotonic() + 30
    while answer(school.server, "GET", ADMIN_API + "/audit?limit=1", school.sync.token)[0] != 200:
        assert time.monotonic() < deadline, "the store never came back"
        time.sleep(0.2)


PAGE_CASES = {
    "200-index": ("GET", PAGE + "/", 200),
    "200-script": ("GET", PAGE + "/app.js", 200),
    "200-head": ("HEAD", PAGE + "/app.css", 200),
    "301-to-the-slash": ("GET", PAGE, 301),
    "404-no-such-file": ("GET", PAGE + "/nothing.html", 404),
    "405-post": ("POST", PAGE + "/", 405),
}


@pytest.mark.parametrize("case", PAGE_CASES.values(), ids=PAGE_CASES.keys())
def test_every_audit_page_answer_carries_nosniff(school, case):
    method, path, expected = case
    status, headers = answer(school.server, method, path, body=b"" if method == "POST" else None)
    assert_nosniff(status, headers, expected)
    assert headers.get("Content-Security-Policy", "").startswith("default-src 'none'"), dict(headers)
