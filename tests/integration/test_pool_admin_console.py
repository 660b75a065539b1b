"""The pool's admin routes for the operator console (issue #16), on the pool as a process and a real Redis: devices,
activations, a number's history, the overview, who made a change (X-Operator, the operator stream) and imports with
progress. Needs no Kafka: the pool is started on its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from grizzly_testkit.infra import ServiceProcess, free_port

ADMIN_TOKEN = "test-admin-token-0001"
API_TOKEN = "test-pool-api-token-0001"

pytestmark = pytest.mark.single_pass  # the admin views and import jobs, not how Redis and Kafka run


@dataclass
class Pool:
    env: dict[str, str]
    admin: httpx.Client
    api: httpx.Client

    def claim(self, service: str = "tg", sum: str = "0.35") -> dict[str, Any]:
        body = {"upstream": "grizzly", "country": "ru", "operator": "any", "service": service, "sum": sum,
                "currency": 643, "exclude_prefixes": [], "request_json": '{"action":"GET_NUMBER"}'}  # fmt: skip
        got: dict[str, Any] = self.api.post("/v1/claim", json=body).json()
        assert got["status"] == "SUCCESS", got
        return got

    def finish(self, activation_id: int, status: int) -> None:
        body = {"upstream": "grizzly", "activation_id": activation_id, "status": status}
        assert self.api.post("/v1/finish", json=body).json()["status"] == "SUCCESS"

    def add(self, rows: list[tuple[int, str, str]], online: bool = True) -> None:
        numbers = [{"number": n, "country": "ru", "operator": "mts", "device": d, "slot": s, "online": online}
                   for n, d, s in rows]  # fmt: skip
        reply = self.admin.post("/admin/numbers", json={"numbers": numbers})
        assert reply.status_code == 200, reply.text


@pytest.fixture
def pool(redis_url: str, tmp_path: Path) -> Iterator[Pool]:
    env = {
        "REDIS_URL": redis_url,
        "UPSTREAMS": "grizzly",
        "POOL_PORT": str(free_port()),
        "POOL_ADMIN_PORT": str(free_port()),
        "POOL_ADMIN_TOKEN": ADMIN_TOKEN,
        "POOL_API_TOKEN": API_TOKEN,
        "POOL_NUMBER_CHECK": "off",
        "POOL_SUSPECT_STREAK": "1",  # one activation without an SMS makes a SIM suspect
        "LOG_LEVEL": "INFO",
    }
    process = ServiceProcess("grizzly_pool", env, int(env["POOL_PORT"]), tmp_path / "pool.log")
    process.start()
    admin = httpx.Client(base_url=f"http://127.0.0.1:{env['POOL_ADMIN_PORT']}",
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)  # fmt: skip
    api = httpx.Client(base_url=f"http://127.0.0.1:{env['POOL_PORT']}", headers={"X-Internal-Token": API_TOKEN},
                       timeout=30)  # fmt: skip
    try:
        yield Pool(env, admin, api)
    finally:
        admin.close()
        api.close()
        process.stop()


NEW_ROUTES = ["/admin/devices", "/admin/activations", "/admin/overview", "/admin/audit", "/admin/imports",
              "/admin/imports/0123456789abcdef"]  # fmt: skip


def test_new_admin_routes_need_the_token(pool: Pool) -> None:
    for path in NEW_ROUTES:
        for headers in ({}, {"Authorization": "Bearer wrong-token-000"}):
            reply = httpx.get(f"{pool.admin.base_url}{path}", headers=headers)
            assert reply.status_code == 401, path
            assert reply.json() == {"status": "ERROR", "error": "unauthorized"}
    reply = httpx.post(f"{pool.admin.base_url}/admin/imports", content="number\n")
    assert reply.status_code == 401


BAD_QUERIES = [
    ("/admin/devices", {"count": "0"}),
    ("/admin/devices", {"count": "x"}),
    ("/admin/devices", {"offset": "-1"}),
    ("/admin/devices", {"q": "x" * 129}),
    ("/admin/activations", {"status": "sold"}),
    ("/admin/activations", {"count": "501"}),
    ("/admin/activations", {"before": "abc"}),
    ("/admin/activations", {"number": "12"}),
    ("/admin/activations", {"service": "TG!"}),
    ("/admin/activations", {"upstream": "a b"}),
    ("/admin/activations", {"country": "r" * 65}),
    ("/admin/audit", {"count": "0"}),
    ("/admin/audit", {"count": "1001"}),
    ("/admin/numbers/abc", {}),
    ("/admin/imports/not-a-job", {}),
    ("/admin/counts", {"upstream": "nobody"}),
]


def test_new_admin_routes_refuse_bad_query_params_with_400(pool: Pool) -> None:
    for path, params in BAD_QUERIES:
        reply = pool.admin.get(path, params=params)
        assert reply.status_code == 400, (path, params, reply.text)
        assert reply.json()["status"] == "ERROR" and reply.json()["error"]


def test_a_device_whose_name_holds_a_slash_can_be_changed(pool: Pool) -> None:
    pool.add([(79002000000 + i, "goip/7", f"s{i}") for i in range(2)])
    reply = pool.admin.post("/admin/devices/goip%2F7", json={"cap": 1})  # as the console quotes it
    assert reply.status_code == 200, reply.text
    assert pool.admin.get("/admin/devices", params={"q": "goip/"}).json()["devices"][0]["cap"] == 1
    assert pool.admin.get("/admin/numbers", params={"count": "1"}).json()["numbers"]  # listed by device


BAD_NUMBERS = [("/admin/activations", {"number": "²²²²²²²"}), ("/admin/numbers", {"cursor": "-1"}),
               ("/admin/numbers", {"cursor": "9" * 25}), ("/admin/sims", {"count": "٣"})]  # fmt: skip


def test_digits_from_other_scripts_and_out_of_range_cursors_are_a_400(pool: Pool) -> None:
    for path, params in BAD_NUMBERS:
        reply = pool.admin.get(path, params=params)
        assert reply.status_code == 400, (path, params, reply.text)


def test_devices_one_page_sorted_by_name_with_free_busy_offline_and_suspects(pool: Pool) -> None:
    pool.add([(79001000000 + i, "bank-b", f"s{i}") for i in range(3)])
    pool.add([(79001000010 + i, "Bank-A", f"s{i}") for i in range(5)])
    pool.add([(79001000020 + i, "gw-c", f"s{i}") for i in range(2)])
    assert pool.admin.post("/admin/devices/bank-b", json={"cap": 2}).status_code == 200
    assert pool.admin.post("/admin/devices/gw-c", json={"online": False}).status_code == 200
    offline = pool.admin.post("/admin/numbers/online", json={"online": False, "numbers": [79001000010]})
    assert offline.json()["changed"] == 1
    claimed = pool.claim()  # on Bank-A or bank-b (gw-c is offline)
    pool.finish(pool.claim()["activation_id"], 4)  # ends without an SMS: its SIM is suspect (streak 1)
    assert pool.api.post("/v1/seen", json={"devices": ["gw-c"]}).status_code == 200

    reply = pool.admin.get("/admin/devices")
    assert reply.status_code == 200
    page = reply.json()
    assert page["total"] == 3
    assert [d["device"] for d in page["devices"]] == ["Bank-A", "bank-b", "gw-c"]
    by_name = {d["device"]: d for d in page["devices"]}
    assert set(by_name["gw-c"]) == {"device", "online", "alive", "cap", "numbers", "free", "busy", "offline",
                                    "last_seen_ms", "suspects"}  # fmt: skip
    gw = by_name["gw-c"]
    assert gw["online"] is False and gw["alive"] is True and gw["cap"] is None and gw["numbers"] == 2
    assert gw["free"] == 2 and gw["busy"] == 0 and gw["offline"] == 0 and gw["suspects"] == 0
    assert abs(gw["last_seen_ms"] - time.time() * 1000) < 60_000
    assert by_name["bank-b"]["cap"] == 2 and by_name["Bank-A"]["last_seen_ms"] is None
    assert sum(d["busy"] for d in page["devices"]) == 1  # the open claim
    assert sum(d["suspects"] for d in page["devices"]) == 1
    a = by_name["Bank-A"]
    assert a["numbers"] == 5 and a["offline"] == 1 and a["free"] + a["busy"] == 4
    assert claimed["number"] != 79001000010

    filtered = pool.admin.get("/admin/devices", params={"q": "BANK", "offset": 1, "count": 1}).json()
    assert filtered["total"] == 2 and [d["device"] for d in filtered["devices"]] == ["bank-b"]
    assert pool.admin.get("/admin/devices", params={"q": "zzz"}).json() == {"total": 0, "devices": []}


def test_activations_newest_first_with_filters_and_pages(pool: Pool) -> None:
    pool.add([(79002000000 + i, f"d{i % 2}", f"s{i}") for i in range(6)])
    ids = []
    for i in range(5):
        got = pool.claim(service=("tg", "wa")[i % 2])
        ids.append(got["activation_id"])
        if i < 4:
            pool.finish(got["activation_id"], (3, 4)[i % 2])
    reply = pool.admin.get("/admin/activations")
    assert reply.status_code == 200
    listed = reply.json()
    assert [a["id"] for a in listed["activations"]] == ids[::-1] and listed["next"] is None
    newest = listed["activations"][0]
    assert set(newest) == {"id", "number", "service", "country", "operator", "upstream", "status", "created_ms",
                           "updated_ms", "sum", "currency"}  # fmt: skip
    assert newest["status"] == "open" and newest["sum"] == "0.35" and newest["currency"] == "643"
    assert newest["upstream"] == "grizzly" and newest["country"] == "ru" and newest["operator"] == "mts"
    assert newest["updated_ms"] == newest["created_ms"]
    sold = listed["activations"][-1]
    assert sold["status"] == "3" and sold["updated_ms"] >= sold["created_ms"]

    first = pool.admin.get("/admin/activations", params={"count": 2}).json()
    assert [a["id"] for a in first["activations"]] == ids[:2:-1][:2] and first["next"] == ids[3]
    second = pool.admin.get("/admin/activations", params={"count": 2, "before": first["next"]}).json()
    assert [a["id"] for a in second["activations"]] == [ids[2], ids[1]]

    def ids_of(**params: Any) -> list[int]:
        reply = pool.admin.get("/admin/activations", params=params)
        assert reply.status_code == 200, reply.text
        return [a["id"] for a in reply.json()["activations"]]

    assert ids_of(status="open") == [ids[4]]
    assert ids_of(status="3") == [ids[2], ids[0]]
    assert ids_of(service="wa") == [ids[3], ids[1]]
    assert ids_of(upstream="other") == [] and ids_of(country="kz") == []
    assert ids_of(status="4", service="wa") == [ids[3], ids[1]]
    number = newest["number"]
    by_number = [a for a in listed["activations"] if a["number"] == number]
    assert ids_of(number=str(number)) == [a["id"] for a in by_number]
    assert ids_of(number=str(number), before=str(ids[4])) == [a["id"] for a in by_number if a["id"] < ids[4]]


def test_number_history_and_per_service_counts(pool: Pool) -> None:
    pool.add([(79003000000, "d0", "s0")])
    ids = []
    for service, status in (("tg", 3), ("wa", 4), ("wa", 4), ("vk", 1), ("wa", 0)):
        got = pool.claim(service=service)
        ids.append(got["activation_id"])
        if status:
            pool.finish(got["activation_id"], status)
    info = pool.admin.get("/admin/numbers/79003000000").json()
    assert [h["activation_id"] for h in info["history"]] == ids[::-1]
    assert info["history"][0] == {"service": "wa", "activation_id": ids[4], "status": "open",
                                  "created_ms": info["history"][0]["created_ms"]}  # fmt: skip
    assert [h["status"] for h in info["history"]] == ["open", "1", "4", "4", "3"]
    assert info["per_service"] == {
        "tg": {"issued": 1, "sold": 1, "cancelled": 0, "refused": 0},
        "wa": {"issued": 3, "sold": 0, "cancelled": 2, "refused": 0},
        "vk": {"issued": 1, "sold": 0, "cancelled": 0, "refused": 1},
    }
    assert info["hist"]["b:tg"] == "3" and info["hist"]["c:wa"] == "2"
    assert pool.admin.get("/admin/numbers/79003000099").status_code == 404


def test_overview_totals_and_earnings_per_currency(pool: Pool) -> None:
    pool.add([(79004000000 + i, f"d{i % 3}", f"s{i}") for i in range(9)])
    pool.add([(79004000100, "d0", "x1")], online=False)
    pool.finish(pool.claim(sum="1.5")["activation_id"], 3)  # sold, suspect (no SMS)
    pool.claim()  # open
    reply = pool.admin.get("/admin/overview")
    assert reply.status_code == 200
    data = reply.json()
    assert data == {
        "numbers": 10, "free": 8, "busy": 1, "offline": 1, "devices": 3, "devices_dead": 0, "suspects": 1,
        "earnings": {"today": {"643": 1_500_000}, "7d": {"643": 1_500_000}},
    }  # fmt: skip


def test_changes_record_who_made_them_and_a_bad_operator_is_400(pool: Pool, redis_url: str) -> None:
    pool.add([(79005000000 + i, "d0", f"s{i}") for i in range(3)])
    reply = pool.admin.post("/admin/devices/d0", json={"cap": 2}, headers={"X-Operator": "alice@ops"})
    assert reply.status_code == 200
    for bad in ("", "a b", "x" * 65, "ünï", "a/b"):
        reply = pool.admin.post("/admin/devices/d0", json={"cap": 9}, headers={b"X-Operator": bad.encode()})
        assert reply.status_code == 400 and "X-Operator" in reply.json()["error"]
    assert pool.admin.get("/admin/devices").json()["devices"][0]["cap"] == 2  # the refused changes did nothing
    pool.admin.post("/admin/numbers/online", json={"online": False, "numbers": [79005000001]},
                    headers={"X-Operator": "bob"})  # fmt: skip
    pool.admin.post("/admin/numbers/remove", json={"numbers": [79005000002]})
    env = {**os.environ, "REDIS_URL": redis_url}
    done = subprocess.run([sys.executable, "-m", "grizzly_pool", "cap", "d0", "0"], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr

    events = pool.admin.get("/admin/audit").json()["events"]
    assert [(e["event"], e["by"]) for e in events] == [
        ("device", "cli"), ("numbers_remove", "api"), ("numbers_online", "bob"), ("device", "alice@ops"),
        ("numbers_add", "api"),
    ]  # fmt: skip
    assert events[0]["device"] == "d0" and events[0]["cap"] == 0
    assert events[3]["cap"] == 2 and "online" not in events[3]
    assert events[2]["numbers"] == [79005000001] and events[2]["online"] is False
    assert all(e["ts_ms"] > 0 for e in events)
    assert len(pool.admin.get("/admin/audit", params={"count": 2}).json()["events"]) == 2


def csv_text(count: int, start: int = 79006000000, devices: int = 4) -> str:
    lines = ["number,country,operator,device,slot"]
    lines += [f"{start + i},ru,mts,bank{i % devices},{i}" for i in range(count)]
    return "\n".join(lines) + "\n"


def wait_for_job(pool: Pool, job: str, timeout_s: float = 120) -> tuple[dict[str, Any], list[int]]:
    """The job once it ended, and rows_done as seen while polling."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reply = pool.admin.get(f"/admin/imports/{job}")
        assert reply.status_code == 200, reply.text
        data: dict[str, Any] = reply.json()
        seen.append(data["rows_done"])
        if data["state"] != "running":
            return data, seen
        time.sleep(0.05)
    raise AssertionError(f"import job {job} still running after {timeout_s} s")


def test_import_job_runs_in_the_background_with_progress_and_records_who(pool: Pool) -> None:
    reply = pool.admin.post("/admin/imports", content=csv_text(20_000),
                            headers={"content-type": "text/csv", "X-Operator": "carol"})  # fmt: skip
    assert reply.status_code == 202, reply.text
    job = reply.json()["job"]
    data, seen = wait_for_job(pool, job)
    assert seen == sorted(seen)  # progress only goes up
    assert {k: data[k] for k in ("job", "state", "rows_total", "rows_done", "added", "error", "bad_lines")} == {
        "job": job, "state": "done", "rows_total": 20_000, "rows_done": 20_000, "added": 20_000, "error": None,
        "bad_lines": [],
    }  # fmt: skip
    assert data["existing"] == 0 and data["by"] == "carol" and data["finished_ms"] >= data["started_ms"]
    assert pool.admin.get("/admin/overview").json()["numbers"] == 20_000
    event = pool.admin.get("/admin/audit").json()["events"][0]
    assert event["event"] == "import" and event["by"] == "carol" and event["job"] == job
    assert event["added"] == 20_000 and event["rows"] == 20_000

    again = pool.admin.post("/admin/imports", content=csv_text(10), headers={"content-type": "text/csv"})
    data, _ = wait_for_job(pool, again.json()["job"])
    assert data["state"] == "done" and data["existing"] == 10 and data["added"] == 0 and data["by"] == "api"
    listed = pool.admin.get("/admin/imports").json()["jobs"]
    assert [j["job"] for j in listed] == [again.json()["job"], job]


def test_import_job_with_bad_lines_fails_and_imports_nothing(pool: Pool) -> None:
    text = csv_text(500).replace("79006000007,ru,mts", "7900600000x,ru,mts").replace("bank1,9\n", "bank1,5\n")
    reply = pool.admin.post("/admin/imports", content=text, headers={"content-type": "text/csv"})
    assert reply.status_code == 202
    data, _ = wait_for_job(pool, reply.json()["job"])
    assert data["state"] == "failed" and data["error"].startswith("nothing imported: line 9:")
    assert len(data["bad_lines"]) == data["error_count"] == 2
    assert data["bad_lines"][0].startswith("line 9:") and data["rows_done"] == data["added"] == 0
    assert pool.admin.get("/admin/overview").json()["numbers"] == 0
    assert pool.admin.get("/admin/audit").json()["events"] == []  # nothing changed, nothing recorded

    reply = pool.admin.post("/admin/imports", content=b"\xff\xfe", headers={"content-type": "text/csv"})
    data, _ = wait_for_job(pool, reply.json()["job"])
    assert data["state"] == "failed" and "UTF-8" in data["error"]
    bad_operator = pool.admin.post("/admin/imports", content=csv_text(1), headers={"X-Operator": "no spaces"})
    assert bad_operator.status_code == 400
    assert pool.admin.get("/admin/imports/0123456789abcdef").status_code == 404
