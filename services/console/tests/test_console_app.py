"""The console over HTTP (TestClient, lifespan running) in front of fake admin APIs: login, sessions, CSRF, the
operator's name on every change, every page rendered, and admin API failures shown on the page, never a 500."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator

import pytest
from console_fakes import ADMIN_TOKEN, ALICE_TOKEN, FakeAdmin
from starlette.testclient import TestClient


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def log_in(client: TestClient, token: str = ADMIN_TOKEN, next_page: str = "/devices") -> str:
    """Log in through the form; the session's CSRF token (from the page the login lands on)."""
    form = client.get("/login")
    reply = client.post("/login", data={"token": token, "csrf": csrf_of(form.text), "next": next_page})
    assert reply.status_code == 200, reply.text  # followed the redirect
    return csrf_of(reply.text)


# -- login and sessions -------------------------------------------------------------------------------------------


def test_pages_need_a_login_and_send_the_visitor_to_the_login_form(client: TestClient, pool: FakeAdmin) -> None:
    reply = client.get("/devices?q=x", follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"] == "/login?next=%2Fdevices%3Fq%3Dx"
    assert client.get("/data/sms-per-minute", follow_redirects=False).status_code == 303
    polled = client.get("/", headers={"HX-Request": "true"}, follow_redirects=False)
    assert polled.status_code == 204 and polled.headers["hx-redirect"] == "/login"
    assert pool.seen == []  # nothing asked of an admin API for a visitor


def test_wrong_token_is_refused_and_never_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    form = client.get("/login")
    with caplog.at_level(logging.INFO):
        reply = client.post("/login", data={"token": "not-a-token-at-all", "csrf": csrf_of(form.text)})
    assert reply.status_code == 401 and "Wrong token." in reply.text
    assert client.get("/", follow_redirects=False).status_code == 303  # still not logged in
    assert "not-a-token-at-all" not in caplog.text and "login failed" in caplog.text


def test_each_operator_logs_in_with_their_own_token_and_is_named_on_the_page(client: TestClient) -> None:
    log_in(client, ALICE_TOKEN)
    page = client.get("/")
    assert page.status_code == 200 and '<span class="who">alice</span>' in page.text
    assert ALICE_TOKEN not in page.text and ADMIN_TOKEN not in page.text


def test_login_goes_back_only_to_a_console_page(client: TestClient) -> None:
    form = client.get("/login")
    reply = client.post(
        "/login",
        data={"token": ADMIN_TOKEN, "csrf": csrf_of(form.text), "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/"


def test_session_cookie_is_httponly_samesite_strict_and_secure_when_configured(
    make_client: Callable[..., TestClient],
) -> None:
    plain = make_client()
    cookie = plain.get("/login").headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    secure = make_client(CONSOLE_COOKIE_SECURE="true")
    cookie = secure.get("/login").headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "; secure" in cookie


def test_login_without_the_forms_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    reply = client.post("/login", data={"token": ADMIN_TOKEN})
    assert reply.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_attempts_are_rate_limited_per_source(client: TestClient) -> None:
    for _ in range(8):  # good logins (operators behind the same proxy) use up nothing
        client.cookies.clear()
        log_in(client)
    client.cookies.clear()
    for _ in range(8):  # nor do forms without the CSRF token
        assert client.post("/login", data={"token": "no-csrf-flood"}).status_code == 403
    csrf = csrf_of(client.get("/login").text)
    codes = [client.post("/login", data={"token": f"guess-{i:04d}", "csrf": csrf}).status_code for i in range(6)]
    assert codes == [401] * 5 + [429]
    # the right token is refused too until the bucket refills: a guesser cannot tell
    assert client.post("/login", data={"token": ADMIN_TOKEN, "csrf": csrf}).status_code == 429


def test_session_ends_after_the_ttl_however_busy(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    log_in(client)
    assert client.get("/", follow_redirects=False).status_code == 200
    later = time.time() + 43200 + 5
    monkeypatch.setattr(time, "time", lambda: later)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_changed_operator_token_ends_that_operators_sessions(make_client: Callable[..., TestClient]) -> None:
    first = make_client()
    log_in(first)
    cookie = first.cookies.get("grizzly_console")
    assert cookie
    rotated = make_client(CONSOLE_OPERATOR_ADMIN_TOKEN="test-operator-admin-token-NEW")
    rotated.cookies.set("grizzly_console", cookie)
    assert rotated.get("/", follow_redirects=False).status_code == 303


def test_a_forged_cookie_is_no_session(client: TestClient) -> None:
    client.cookies.set("grizzly_console", "eyJvcCI6ICJhZG1pbiJ9.forged.signature")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_logout_ends_the_session(client: TestClient) -> None:
    csrf = log_in(client)
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


# -- CSRF and who made a change ------------------------------------------------------------------------------------


def test_a_change_without_the_csrf_token_is_refused_and_never_reaches_the_pool(
    client: TestClient, pool: FakeAdmin
) -> None:
    csrf = log_in(client)
    missing = client.post("/devices/set", data={"device": "goip-1", "cap": "3"})
    wrong = client.post("/devices/set", data={"device": "goip-1", "cap": "3", "csrf": csrf[::-1]})
    assert missing.status_code == 403 and wrong.status_code == 403 and "CSRF" in missing.text
    assert pool.posts() == []


def test_a_change_with_the_csrf_header_is_accepted_as_htmx_sends_it(client: TestClient, pool: FakeAdmin) -> None:
    csrf = log_in(client)
    reply = client.post(
        "/devices/set", data={"device": "goip-1", "online": "0"}, headers={"X-CSRF-Token": csrf},
        follow_redirects=False,
    )  # fmt: skip
    assert reply.status_code == 303
    [post] = pool.posts()
    assert post.path == "/admin/devices/goip-1" and post.body == b'{"online":false}'


def test_a_cap_change_goes_to_the_pool_with_the_operators_name(client: TestClient, pool: FakeAdmin) -> None:
    csrf = log_in(client, ALICE_TOKEN)
    reply = client.post("/devices/set", data={"device": "goip-1", "cap": "3", "csrf": csrf, "back": "/devices?q=go"})
    assert reply.status_code == 200 and "goip-1: cap 3" in reply.text
    assert str(reply.url).endswith("/devices?q=go")
    [post] = pool.posts()
    assert (post.path, post.body, post.headers["x-operator"]) == ("/admin/devices/goip-1", b'{"cap":3}', "alice")
    assert post.headers["authorization"] == "Bearer test-pool-admin-token"


@pytest.mark.parametrize(
    ("form", "why"),
    [
        ({"device": "goip-1", "cap": "-1"}, "cap must be a whole number"),
        ({"device": "goip-1", "cap": "lots"}, "cap must be a whole number"),
        ({"device": "<b>", "cap": "1"}, "device must be"),
        ({"device": "goip-1"}, "nothing to change"),
    ],
)
def test_bad_form_input_is_a_400_page_and_nothing_is_sent(
    client: TestClient, pool: FakeAdmin, form: dict[str, str], why: str
) -> None:
    csrf = log_in(client)
    reply = client.post("/devices/set", data={**form, "csrf": csrf})
    assert reply.status_code == 400 and why in reply.text
    assert pool.posts() == []


def test_parked_repush_and_delete_go_to_the_pusher_with_the_operators_name(
    client: TestClient, pusher: FakeAdmin
) -> None:
    csrf = log_in(client)
    repushed = client.post("/parked/repush", data={"id": "1700000000000-0", "csrf": csrf})
    assert repushed.status_code == 200 and "1700000000000-0: re-pushed" in repushed.text
    deleted = client.post("/parked/delete", data={"id": "1700000000000-0", "csrf": csrf})
    assert "1700000000000-0: deleted" in deleted.text
    all_ = client.post("/parked/repush-all", data={"csrf": csrf})
    assert "re-push all: 1 re-pushed" in all_.text
    paths = [(p.path, p.headers["x-operator"]) for p in pusher.posts()]
    assert paths == [
        ("/admin/parked/1700000000000-0/repush", "admin"),
        ("/admin/parked/1700000000000-0/delete", "admin"),
        ("/admin/parked/repush", "admin"),
    ]
    assert client.post("/parked/explode", data={"id": "1-0", "csrf": csrf}).status_code == 404
    assert client.post("/parked/repush", data={"id": "../../x", "csrf": csrf}).status_code == 400


def test_csv_import_streams_the_file_to_the_pool_and_shows_the_jobs_progress(
    client: TestClient, pool: FakeAdmin
) -> None:
    csrf = log_in(client)
    csv = b"number,country,operator,device,slot\n447700900009,0,any,goip-1,9\n"
    reply = client.post("/import", data={"csrf": csrf}, files={"file": ("farm.csv", csv, "text/csv")})
    assert reply.status_code == 200 and str(reply.url).endswith("/import/job-1")
    assert 'id="import-progress" max="100" value="25"' in reply.text and 'hx-trigger="every 1s"' in reply.text
    [post] = pool.posts()
    assert post.path == "/admin/imports" and post.body == csv and post.headers["x-operator"] == "admin"


def test_csv_import_on_a_pool_without_jobs_imports_at_once(client: TestClient, pool: FakeAdmin) -> None:
    del pool.answers["POST /admin/imports"]
    pool.answers["POST /admin/import"] = {"status": "SUCCESS", "rows": 1, "added": 1, "existing": 0}
    csrf = log_in(client)
    reply = client.post("/import", data={"csrf": csrf}, files={"file": ("farm.csv", b"number\n", "text/csv")})
    assert "farm.csv: 1 rows, 1 added" in reply.text
    assert [p.path for p in pool.posts()] == ["/admin/imports", "/admin/import"]


# -- pages ---------------------------------------------------------------------------------------------------------

PAGES = {
    "/": ["447700900001", "88.9 %", "tg"],
    "/devices": ["goip-1", "goip-2", "Set cap"],
    "/devices?device=goip-1": ["SIMs of goip-1", "447700900001"],
    "/numbers": ["447700900001"],
    "/numbers?number=447700900001": ["History", "tg", "/activations/77"],
    "/numbers?number=447700900999": ["is not in the pool"],
    "/activations": ["/activations/77", "finished"],
    "/activations/77": ["Audit trail", "issued"],
    "/sms": ["code 1234", "pushed", "hello"],
    "/queue": ["HTTP 500", "1700000000000-0", "Re-push"],
    "/earnings": ["12.5", "50.0 %"],
    "/upstreams": ["te…01", "http://127.0.0.1:9/push", "SUCCESS"],
    "/audit": ["device_set", "alice"],
    "/import": ["CSV file", "job-0", "alice"],
    "/import/job-1": ["running", "1 of 4 rows"],
}


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_renders_what_the_admin_apis_answer(client: TestClient, path: str) -> None:
    log_in(client)
    reply = client.get(path)
    assert reply.status_code == 200, reply.text
    for text in PAGES[path]:
        assert text in reply.text, text
    assert "error" not in re.findall(r'class="(error)"', reply.text)


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_says_what_failed_when_the_admin_apis_are_down(
    client: TestClient, pool: FakeAdmin, pusher: FakeAdmin, path: str
) -> None:
    log_in(client)
    pool.down = pusher.down = True
    reply = client.get(path)
    assert reply.status_code == 200, reply.text
    assert "admin API:" in reply.text and "not reachable" in reply.text


def test_an_admin_api_error_is_shown_with_its_own_message(client: TestClient, pool: FakeAdmin) -> None:
    from console_fakes import _json

    pool.answers = {"GET /admin/devices": _json({"status": "ERROR", "error": "Redis unavailable"}, 503)}
    log_in(client)
    reply = client.get("/devices")
    assert reply.status_code == 200 and "pool admin API: Redis unavailable (HTTP 503)" in reply.text


def test_a_refused_console_token_says_so_without_the_token(client: TestClient, pool: FakeAdmin) -> None:
    pool.token = "another-token-entirely"
    log_in(client)
    reply = client.get("/devices")
    assert "the console&#39;s admin token was refused (401)" in reply.text
    assert "test-pool-admin-token" not in reply.text


def test_older_apis_without_the_new_routes_still_show_the_page(
    client: TestClient, pool: FakeAdmin, pusher: FakeAdmin
) -> None:
    for path in ("GET /admin/overview", "GET /admin/devices"):
        del pool.answers[path]
    for path in ("GET /admin/stats", "GET /admin/upstreams", "GET /admin/queue"):
        del pusher.answers[path]
    log_in(client)
    overview = client.get("/")
    assert overview.status_code == 200 and 'data-k="numbers">3<' in overview.text
    assert 'data-k="parked">1<' in overview.text and "error" not in re.findall(r'class="(error)"', overview.text)
    devices = client.get("/devices")
    assert 'data-device="goip-1"' in devices.text  # from /admin/stats
    queue = client.get("/queue")
    assert "not served by this version" in queue.text and "1700000000000-0" in queue.text


def test_every_value_from_an_admin_api_is_html_escaped(client: TestClient, pool: FakeAdmin) -> None:
    hostile = '<script>alert("x")</script>'
    pool.answers["GET /admin/devices"] = {"total": 1, "devices": [
        {"device": hostile, "online": True, "alive": True, "cap": None, "numbers": 1, "free": 1, "busy": 0,
         "offline": 0, "last_seen_ms": None, "suspects": 0},
    ]}  # fmt: skip
    log_in(client)
    reply = client.get("/devices")
    assert hostile not in reply.text and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in reply.text


def test_charts_get_their_data_as_json(client: TestClient) -> None:
    log_in(client)
    sms = client.get("/data/sms-per-minute").json()
    assert sms["series"][0]["data"] == [3, 5] and len(sms["labels"]) == 2
    earnings = client.get("/data/earnings?since=7d").json()
    assert earnings["labels"] == ["2026-11-25", "2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30",
                                  "2026-12-01"]  # fmt: skip
    assert earnings["series"] == [{"label": "RUB", "data": [0.0] * 6 + [12.5]}]


def test_security_headers_on_pages_and_static_files(client: TestClient) -> None:
    page = client.get("/login")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    htmx = client.get("/static/vendor/htmx-2.0.11.min.js")
    assert htmx.status_code == 200 and "content-security-policy" in htmx.headers
    assert client.get("/static/vendor/chart-4.6.1.umd.min.js").status_code == 200


def test_unknown_pages_are_a_404_page(client: TestClient) -> None:
    log_in(client)
    assert client.get("/nowhere").status_code == 404


def test_readyz_checks_both_admin_apis_and_healthz_needs_nothing(client: TestClient, pusher: FakeAdmin) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    pusher.down = True
    reply = client.get("/readyz")
    assert reply.status_code == 503 and "pusher admin API" in reply.json()["checks"]["pusher"]


def test_every_change_is_logged_with_the_operator_and_no_secret(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    csrf = log_in(client, ALICE_TOKEN)
    with caplog.at_level(logging.INFO, logger="grizzly_console"):
        client.post("/devices/set", data={"device": "goip-1", "cap": "2", "csrf": csrf})
    [line] = [r for r in caplog.records if r.getMessage() == "console change"]
    fields = line.__dict__["fields"]
    assert (fields["operator"], fields["action"], fields["device"], fields["cap"]) == ("alice", "device", "goip-1", 2)
    assert ALICE_TOKEN not in caplog.text and "test-pool-admin-token" not in caplog.text and csrf not in caplog.text


def test_an_answer_the_console_cannot_read_is_a_502_page_not_a_500(
    client: TestClient, pool: FakeAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    pool.answers["GET /admin/earnings"] = {"rows": 5}  # not a list
    log_in(client)
    with caplog.at_level(logging.ERROR):
        reply = client.get("/")
    assert reply.status_code == 502 and "could not read" in reply.text
    assert "console page failed" in caplog.text


def test_an_upload_without_the_csrf_token_is_refused_and_never_reaches_the_pool(
    client: TestClient, pool: FakeAdmin
) -> None:
    log_in(client)
    reply = client.post("/import", files={"file": ("farm.csv", b"number\n", "text/csv")})
    assert reply.status_code == 403 and pool.posts() == []


def test_a_body_over_the_limit_is_refused_with_413(
    make_client: Callable[..., TestClient], pool: FakeAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    from grizzly_console import app

    monkeypatch.setattr(app, "MAX_FORM_BYTES", 1024)
    client = make_client()
    csrf = log_in(client)
    reply = client.post("/import", data={"csrf": csrf}, files={"file": ("farm.csv", b"x" * 4096, "text/csv")})
    assert reply.status_code == 413 and "grizzly-pool import" in reply.text
    assert pool.posts() == []


def test_a_chunked_body_over_the_limit_is_refused_with_413_too(
    make_client: Callable[..., TestClient], pool: FakeAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    from grizzly_console import app

    monkeypatch.setattr(app, "MAX_FORM_BYTES", 1024)
    client = make_client()
    csrf = log_in(client)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield f"csrf={csrf}&device=goip-1&cap=".encode()
        yield b"1" * 4096

    reply = client.post("/devices/set", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 413 and pool.posts() == []
