"""The audit page and its access rules: school admins read their own
school, data-protection officers (audit.readers) read every school and
change nothing, everyone else is refused, every read is recorded.

API-level tests run against a real Synapse with the module on the
PostgreSQL store; browser tests drive Debian's chromium with Playwright
against the same server."""
from __future__ import annotations

import csv
import io
import os
import shutil
import time
import urllib.request
import uuid

import pytest

from harness.client import request
from support import ADMIN_API, PASSWORD, REPO_ROOT, School, assert_denied, base_config, membership, uid

pytestmark = pytest.mark.integration

PAGE = "/_synapse/client/school_policy/audit/"
XSS_TYPE = "<img src=x onerror=alert(document.domain)>"
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = REPO_ROOT / "docs" / "img" / "audit-page.png"


@pytest.fixture(scope="module")
def world(module_synapse_factory, tmp_path_factory, postgres):
    name = f"ssp_page_{uuid.uuid4().hex[:8]}"
    db = postgres.create_database(name)
    conninfo = f"host={db['host']} port={db['port']} user={db['user']} dbname={db['dbname']}"
    config = base_config(
        tmp_path_factory.mktemp("policy") / "store",
        database=conninfo,
        audit={"readers": ["@dpo:school.test"]},
        schools={"gym-nord": {"messenger": True}, "gs-sued": {"messenger": True},
                 "rs-ost": {"messenger": False}},
    )
    w = School(module_synapse_factory(config))
    w.register("sync")
    w.register("root", admin=True)
    for name, school, role in [
        ("dpo", None, None),
        ("admin_nord", "gym-nord", "admin"), ("admin_sued", "gs-sued", "admin"),
        ("teacher", "gym-nord", "teacher"), ("pupil", "gym-nord", "student"),
        ("pupil_sued", "gs-sued", "student"), ("carla", "rs-ost", "student"),
    ]:
        w.register(name)
        if school:
            w.put_roster(name, membership(school, role))
    # The DPO is on no roster: readers sign in and read without one
    # (docs/sign-in.md).
    # Denials in two schools: pupils post in their one-way courses, one of
    # them with an event type chosen to attack the page.
    nord = w.managed_room("gym-nord", invite=["pupil"])
    sued = w.managed_room("gs-sued", invite=["pupil_sued"])
    assert w.users["pupil"].join(nord)[0] == 200
    assert w.users["pupil_sued"].join(sued)[0] == 200
    assert_denied(w.users["pupil"].send(nord, "m.room.message", {"msgtype": "m.text", "body": "x"}), "one_way")
    assert_denied(w.users["pupil"].send(nord, XSS_TYPE, {"body": "x"}), "one_way")
    for _ in range(3):
        assert_denied(w.users["pupil_sued"].send(sued, "m.room.message", {"msgtype": "m.text", "body": "x"}), "one_way")
    assert_denied(w.users["pupil"].create_room(preset="public_chat"), "public_room_forbidden")
    w.rooms = {"gym-nord": nord, "gs-sued": sued}
    return w


def get(world, who, path, **query):
    return world.admin_api("GET", path, query={k: v for k, v in query.items() if v is not None},
                           as_user=world.users[who])


# ---- scoping through the API ----

def test_school_admin_reads_only_their_schools_records(world):
    status, body = get(world, "admin_nord", "/audit", limit=1000)
    assert status == 200, body
    schools = {r["school"] for r in body["records"]}
    assert schools == {"gym-nord"}
    assert any(r["event_type"] == XSS_TYPE for r in body["records"])


def test_school_admin_asking_for_another_school_gets_403(world):
    status, body = get(world, "admin_nord", "/audit", school="gs-sued")
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    status, body = get(world, "admin_nord", "/audit/chart", school="gs-sued",
                       since=1, until=3_600_000, bucket=3_600_000)
    assert status == 403


def test_school_admin_filter_by_rule_stays_in_their_school(world):
    status, body = get(world, "admin_sued", "/audit", rule="one_way")
    assert status == 200
    assert len(body["records"]) == 3
    assert {(r["school"], r["rule"]) for r in body["records"]} == {("gs-sued", "one_way")}


def test_school_admin_sees_only_their_schools_status(world):
    status, body = get(world, "admin_nord", "/status")
    assert status == 200 and list(body["schools"]) == ["gym-nord"]
    assert set(body["schools"]["gym-nord"]) == {"messenger", "teachers_room", "announcement_room",
                                               "pending", "last_error", "groups"}
    assert set(body["schools"]["gym-nord"]["groups"]) == {"count", "rooms_pending"}


def test_dpo_reads_every_school_and_cannot_change_anything(world):
    status, body = get(world, "dpo", "/audit", limit=1000)
    assert status == 200
    assert {"gym-nord", "gs-sued"} <= {r["school"] for r in body["records"]}
    status, body = get(world, "dpo", "/status")
    assert status == 200 and set(body["schools"]) == {"gym-nord", "gs-sued", "rs-ost"}
    dpo = world.users["dpo"]
    assert world.admin_api("PUT", f"/users/{uid('pupil')}", {"schools": []}, as_user=dpo)[0] == 403
    assert world.admin_api("POST", "/roster", {"users": []}, as_user=dpo)[0] == 403
    assert world.admin_api("DELETE", f"/users/{uid('pupil')}", as_user=dpo)[0] == 403
    assert get(world, "dpo", f"/users/{uid('pupil')}")[0] == 403
    # and the roster is unchanged
    assert world.admin_api("GET", f"/users/{uid('pupil')}")[1]["schools"] == [membership("gym-nord", "student")]


def test_me_names_each_readers_access(world):
    assert get(world, "admin_nord", "/me")[1] == {
        "user_id": uid("admin_nord"), "access": "school_admin", "schools": ["gym-nord"], "may_write": False}
    assert get(world, "dpo", "/me")[1]["access"] == "reader"
    assert get(world, "root", "/me")[1] == {"user_id": uid("root"), "access": "operator", "schools": None,
                                            "may_write": True}


@pytest.mark.parametrize("path", ["/audit", "/audit/chart", "/audit/reads", "/status", "/rules", "/me"])
def test_pupil_and_teacher_get_403_on_every_read_endpoint(world, path):
    for who in ("pupil", "teacher"):
        status, body = get(world, who, path)
        assert status == 403 and body["errcode"] == "M_FORBIDDEN", (who, body)


def test_reads_are_recorded_and_visible_to_the_same_readers(world):
    since = int(time.time() * 1000) - 1000
    assert get(world, "admin_nord", "/audit", rule="public_room_forbidden")[0] == 200
    status, body = get(world, "dpo", "/audit/reads", since=since)
    assert status == 200
    mine = [r for r in body["records"] if r["reader"] == uid("admin_nord") and r["op"] == "audit"]
    assert mine and mine[0]["query"] == {"rule": "public_room_forbidden", "limit": 100}
    assert mine[0]["access"] == "school_admin" and mine[0]["schools"] == ["gym-nord"]
    assert set(mine[0]) == {"id", "ts", "reader", "access", "op", "query", "schools", "worker"}
    # a school admin sees the reads of their school, not another school's
    nord = get(world, "admin_nord", "/audit/reads", since=since)[1]["records"]
    assert any(r["reader"] == uid("admin_nord") for r in nord)
    sued = get(world, "admin_sued", "/audit/reads", since=since)[1]["records"]
    assert all(r["schools"] == ["gs-sued"] for r in sued)
    assert not any(r["reader"] == uid("admin_nord") for r in sued)
    # a refused read is not a read
    get(world, "admin_nord", "/audit", school="gs-sued")
    after = get(world, "dpo", "/audit/reads", since=since)[1]["records"]
    assert not any(r["query"].get("school") == "gs-sued" and r["reader"] == uid("admin_nord") for r in after)


def test_chart_counts_denials_per_rule_on_the_server(world):
    now = int(time.time() * 1000)
    status, body = get(world, "admin_sued", "/audit/chart", since=now - 86_400_000, until=now + 60_000,
                       bucket=3_600_000)
    assert status == 200, body
    totals = {}
    for start, rule, n in body["rows"]:
        assert now - 86_400_000 <= start < now + 60_000
        totals[rule] = totals.get(rule, 0) + n
    assert totals == {"one_way": 3}


@pytest.mark.parametrize("query, field", [
    ({"since": 1, "until": 2}, "since, until, bucket"),
    ({"since": 1, "until": 10**12, "bucket": 60000}, "bucket"),
    ({"since": 5, "until": 1, "bucket": 60000}, "until"),
    ({"since": 1, "until": 10**7, "bucket": 1}, "bucket"),
    ({"since": 1, "until": 10**7, "bucket": 60000, "rule": "nope"}, "rule"),
])
def test_bad_chart_query_gets_400_naming_the_parameter(world, query, field):
    status, body = get(world, "dpo", "/audit/chart", **query)
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM", body
    assert body["error"].startswith(field), body


def test_rules_come_in_german_and_english_with_the_clients_message(world):
    status, body = get(world, "admin_nord", "/rules")
    assert status == 200
    rules = {r["id"]: r for r in body["rules"]}
    assert len(rules) == 18
    assert rules["group_closed"]["name"]["de"] and rules["group_archived"]["message"]["en"]
    assert rules["one_way"]["message"]["en"] == "Only teachers can post in this channel."
    assert rules["one_way"]["name"]["de"] == "Einweg-Kanal"
    assert all(r["name"]["en"] and r["name"]["de"] and r["message"]["de"] for r in rules.values())


def test_page_is_served_with_a_strict_content_security_policy(world):
    with urllib.request.urlopen(world.server.base_url + PAGE, timeout=30) as resp:
        html = resp.read().decode()
        csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    assert "frame-ancestors 'none'" in csp
    # no inline script: every script element loads a file of the page
    assert html.count("<script") == html.count('<script src="app.js"') == 1
    web = REPO_ROOT / "python" / "synapse_school_policy" / "web"
    # the code, without its comments (which name what it never does)
    js = "\n".join(line for line in (web / "app.js").read_text().splitlines()
                   if not line.strip().startswith("//"))
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "localStorage",
                      "sessionStorage", "document.cookie", "eval("):
        assert forbidden not in js, forbidden
    status, _ = request(world.server.base_url, "GET", PAGE + "nope.js")
    assert status == 404


# ---- in a real browser ----

@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def sign_in(browser, world, who, tmp_path=None):
    context = browser.new_context(accept_downloads=True, locale="en-GB",
                                  viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    # Requests to anywhere but the homeserver would be a leak.
    page.foreign = []
    page.on("request", lambda r: None if r.url.startswith(world.server.base_url) or r.url.startswith("blob:")
            else page.foreign.append(r.url))
    page.goto(world.server.base_url + PAGE)
    page.fill("#username", who)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    return context, page


def test_school_admin_signs_in_sees_own_denials_filters_and_exports(browser, world, tmp_path):
    context, page = sign_in(browser, world, "admin_nord")
    try:
        page.wait_for_selector("#audit-table tbody tr[data-rule]", timeout=30000)
        rows = page.locator("#audit-table tbody tr")
        schools = {rows.nth(i).locator("td").nth(2).text_content() for i in range(rows.count())}
        assert schools == {"gym-nord"}
        assert page.locator("#status-table tbody tr").count() == 1
        page.wait_for_selector("#chart svg rect", timeout=30000)
        # filter by rule
        page.select_option("#f-rule", "public_room_forbidden")
        page.click("#filter-form button[type=submit]")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#audit-table tbody tr')].every(r => r.dataset.rule === 'public_room_forbidden')",
            timeout=30000)
        assert page.locator("#audit-table tbody tr").count() == 1
        # CSV export of the filtered view
        with page.expect_download(timeout=30000) as download_info:
            page.click("#export")
        path = tmp_path / "audit.csv"
        download_info.value.save_as(path)
        records = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
        assert [(r["rule"], r["school"], r["actor"]) for r in records] == [
            ("public_room_forbidden", "gym-nord", uid("pupil"))]
        # all rules again for the screenshot; German names
        page.select_option("#f-rule", "")
        page.click("#filter-form button[type=submit]")
        page.wait_for_function("() => document.querySelectorAll('#audit-table tbody tr').length > 1", timeout=30000)
        page.select_option("#lang", "de")
        page.locator("#audit-table td", has_text="Einweg-Kanal").first.wait_for(timeout=30000)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shot = tmp_path / "audit-page.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10000
        if os.environ.get("SSP_UPDATE_SCREENSHOT"):
            shutil.copy(shot, SCREENSHOT)
        assert page.foreign == []
        # the token is in no storage and not in the URL
        assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
        assert "token" not in page.url.lower()
    finally:
        context.close()


def test_pupil_signs_in_and_is_refused(browser, world):
    context, page = sign_in(browser, world, "pupil")
    try:
        page.wait_for_selector("#refused-view:not([hidden])", timeout=30000)
        assert "may read" in page.text_content("#refused-reason")
        assert page.is_hidden("#audit-view")
        assert page.locator("#audit-table tbody tr").count() == 0
    finally:
        context.close()


def test_attacker_chosen_event_type_renders_as_text(browser, world):
    context, page = sign_in(browser, world, "admin_nord")
    try:
        cell = page.locator("#audit-table tbody td", has_text="onerror")
        cell.first.wait_for(timeout=30000)
        assert cell.first.text_content() == XSS_TYPE
        assert page.locator("#audit-table img").count() == 0
        page.wait_for_timeout(500)  # give a handler a chance to fire: it must not
        assert page.dialogs == []
    finally:
        context.close()
