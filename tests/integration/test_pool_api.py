"""The pool service over HTTP, as a real process on real Redis: internal API, admin API, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from grizzly_testkit.infra import ServiceProcess

pytestmark = pytest.mark.single_pass  # the pool's HTTP API over a real Redis, not how Redis runs

Start = Callable[..., ServiceProcess]


def internal(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['POOL_PORT']}"


def token(env: dict[str, str]) -> dict[str, str]:
    """What every caller of the internal API sends."""
    return {"X-Internal-Token": env["POOL_API_TOKEN"]}


def admin(env: dict[str, str]) -> tuple[str, dict[str, str]]:
    return f"http://127.0.0.1:{env['POOL_ADMIN_PORT']}", {"Authorization": f"Bearer {env['POOL_ADMIN_TOKEN']}"}


def csv_text(count: int, devices: int = 1, start: int = 79000000000, operator: str = "mts") -> str:
    lines = ["number,country,operator,device,slot,flashcall"]
    lines += [f"{start + i},ru,{operator},dev{i % devices},{i},{int(i == 0)}" for i in range(count)]
    return "\n".join(lines) + "\n"


def import_csv(env: dict[str, str], text: str) -> httpx.Response:
    url, headers = admin(env)
    return httpx.post(f"{url}/admin/import", content=text, headers={**headers, "content-type": "text/csv"}, timeout=60)


def services(env: dict[str, str], upstream: str = "grizzly") -> list[dict[str, Any]]:
    reply = httpx.post(f"{internal(env)}/v1/services", json={"upstream": upstream}, headers=token(env), timeout=10)
    assert reply.status_code == 200
    return reply.json()["countryList"]  # type: ignore[no-any-return]


def claim_body(service: str = "tg", operator: str = "any", country: str = "ru", **extra: Any) -> dict[str, Any]:
    return {"upstream": "grizzly", "country": country, "operator": operator, "service": service, "sum": "0.35",
            "currency": 643, "exclude_prefixes": [], "request_json": '{"action":"GET_NUMBER"}', **extra}  # fmt: skip


def test_pool_concurrent_claims_give_exactly_the_reported_count(
    start_service: Start, stack_env: dict[str, str]
) -> None:
    start_service("pool")
    assert import_csv(stack_env, csv_text(150, devices=3)).json()["added"] == 150
    url, headers = admin(stack_env)
    assert httpx.post(f"{url}/admin/devices/dev0", json={"cap": 20}, headers=headers).status_code == 200
    assert httpx.post(f"{url}/admin/devices/dev1", json={"online": False}, headers=headers).status_code == 200
    reported = services(stack_env)
    assert reported == [{"country": "ru", "operatorMap": {"any": {s: 70 for s in
                        ("tg", "wa", "vk", "ok", "go", "fb", "ig", "ds", "dr", "ot")}}}]  # fmt: skip

    async def burst() -> list[dict[str, Any]]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(
            base_url=internal(stack_env), limits=limits, headers=token(stack_env), timeout=30
        ) as client:
            replies = await asyncio.gather(*(client.post("/v1/claim", json=claim_body()) for _ in range(200)))
        return [r.json() for r in replies]

    results = asyncio.run(burst())
    won = [r for r in results if r["status"] == "SUCCESS"]
    assert len(won) == 70 == len({r["number"] for r in won}) == len({r["activation_id"] for r in won})
    assert all(r["status"] == "NO_NUMBERS" for r in results if r["status"] != "SUCCESS")
    assert services(stack_env)[0]["operatorMap"]["any"]["tg"] == 0
    metrics = httpx.get(f"{internal(stack_env)}/metrics").text
    assert 'pool_claims_total{result="SUCCESS"} 70.0' in metrics


def test_pool_finish_is_idempotent_and_unknown_activation_is_error(
    start_service: Start, stack_env: dict[str, str]
) -> None:
    start_service("pool")
    import_csv(stack_env, csv_text(1))
    base = internal(stack_env)
    http = httpx.Client(headers=token(stack_env), timeout=10)
    before_ms = int(time.time() * 1000)
    got = http.post(f"{base}/v1/claim", json=claim_body()).json()
    assert got["status"] == "SUCCESS" and got["number"] == 79000000000 and got["flashcall"] is True
    lookup = http.post(f"{base}/v1/lookup", json={"number": 79000000000}).json()
    created = lookup.pop("created_ms")  # when it was opened: the pusher never gives it an SMS from before
    assert before_ms - 1000 <= created <= int(time.time() * 1000) + 1000
    assert lookup == {"found": True, "activation_id": got["activation_id"], "upstream": "grizzly", "service": "tg"}
    lookup["created_ms"] = created
    missing = {"found": False, "activation_id": 0, "upstream": "", "service": "", "created_ms": 0}
    many = http.post(f"{base}/v1/lookup_many", json={"numbers": [79000000000, 79000000099, 79000000000]}).json()
    assert many == {"results": [lookup, missing, lookup]}
    assert http.post(f"{base}/v1/lookup_many", json={"numbers": [1] * 1001}).status_code == 400
    assert http.post(f"{base}/v1/resolve", json={"device": "dev0", "slot": "0"}).json() == {
        "found": True, "number": 79000000000}  # fmt: skip
    assert http.post(f"{base}/v1/claim", json=claim_body()).json()["status"] == "NO_NUMBERS"
    finish = {"upstream": "grizzly", "activation_id": got["activation_id"], "status": 3}
    for _ in range(2):
        reply = http.post(f"{base}/v1/finish", json=finish)
        assert reply.status_code == 200 and reply.json() == {"status": "SUCCESS", "error": ""}
    foreign = http.post(f"{base}/v1/finish", json={**finish, "upstream": "other"}).json()
    assert foreign == {"status": "ERROR", "error": "bad request: unknown upstream"}  # not one of UPSTREAMS
    unknown = http.post(f"{base}/v1/finish", json={**finish, "activation_id": 42}).json()
    assert unknown == {"status": "ERROR", "error": "unknown activationId"}
    assert http.post(f"{base}/v1/lookup", json={"number": 79000000000}).json() == missing
    # sold for tg: not offered for tg again, still for wa
    assert services(stack_env)[0]["operatorMap"]["any"]["tg"] == 0
    assert services(stack_env)[0]["operatorMap"]["any"]["wa"] == 1
    url, headers = admin(stack_env)
    trail = httpx.get(f"{url}/admin/activations/{got['activation_id']}", headers=headers).json()
    assert [e["event"] for e in trail["events"]] == ["issued", "finish", "finish_repeat"]
    assert trail["activation"]["sum"] == "0.35" and trail["activation"]["request"] == '{"action":"GET_NUMBER"}'
    http.close()


def test_pool_country_alias_and_operator_split(start_service: Start, stack_env: dict[str, str]) -> None:
    start_service("pool", POOL_COUNTRY_MAP_GRIZZLY="ru:0", POOL_SPLIT_COUNTRIES="ru", POOL_SERVICES="tg,wa")
    import_csv(stack_env, csv_text(2))
    import_csv(stack_env, csv_text(3, start=79100000000, operator="beeline").replace("dev0", "devb"))
    assert services(stack_env) == [
        {"country": "0", "operatorMap": {"beeline": {"tg": 3, "wa": 3}, "mts": {"tg": 2, "wa": 2}}}
    ]
    got = httpx.post(
        f"{internal(stack_env)}/v1/claim", json=claim_body(country="0", operator="beeline"), headers=token(stack_env)
    ).json()
    assert got["status"] == "SUCCESS" and got["number"] >= 79100000000
    excluded = claim_body(country="0", operator="any", exclude_prefixes=["7910", "790000000"])
    refused = httpx.post(f"{internal(stack_env)}/v1/claim", json=excluded, headers=token(stack_env))
    assert refused.json()["status"] == "NO_NUMBERS"


def test_pool_admin_wrong_token_is_401_json(start_service: Start, stack_env: dict[str, str]) -> None:
    start_service("pool")
    url, _ = admin(stack_env)
    for headers in ({}, {"Authorization": "Bearer wrong-token-0000"}):
        reply = httpx.get(f"{url}/admin/stats", headers=headers)
        assert reply.status_code == 401
        assert reply.json() == {"status": "ERROR", "error": "unauthorized"}


def test_pool_admin_bad_csv_row_imports_nothing_and_names_the_line(
    start_service: Start, stack_env: dict[str, str]
) -> None:
    start_service("pool")
    text = csv_text(10).replace("79000000007,", "7900x000007,")
    reply = import_csv(stack_env, text)
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("nothing imported: line 9: number '7900x000007'")
    url, headers = admin(stack_env)
    assert httpx.get(f"{url}/admin/stats", headers=headers).json()["numbers"] == 0
    duplicate = import_csv(stack_env, csv_text(3) + "79000000001,ru,mts,dev9,1,0\n")
    assert duplicate.status_code == 400 and "line 5: number 79000000001 appears twice" in duplicate.json()["error"]


def mixed_csv(count: int) -> tuple[str, list[int]]:
    """`count` rows, every 7th with a bad number, most 11th ones repeating an earlier number; the bad line numbers."""
    lines = ["number,country,operator,device,slot,flashcall"]
    bad = []
    for i in range(count):
        number = f"{79000000000 + i}"
        if i % 7 == 6:
            number = number.replace("0", "x", 1)
        elif i % 11 == 10 and (i - 5) % 7 != 6:  # the repeated row itself is good
            number = f"{79000000000 + i - 5}"
        lines.append(f"{number},ru,mts,bank{i // 256},{i % 256},0")
        if number != f"{79000000000 + i}":
            bad.append(len(lines))
    return "\n".join(lines) + "\n", bad


def test_pool_admin_csv_with_bad_rows_mixed_in_lists_them_and_imports_nothing(
    start_service: Start, stack_env: dict[str, str]
) -> None:
    start_service("pool")
    text, bad = mixed_csv(2000)
    reply = import_csv(stack_env, text)
    assert reply.status_code == 400
    body = reply.json()
    assert body["error_count"] == len(bad) and len(body["errors"]) == 100
    assert [int(e.split(":")[0].removeprefix("line ")) for e in body["errors"]] == bad[:100]
    assert body["errors"][0] == "line 8: number '79x00000006' must be 6-15 digits with the country code, no leading 0"
    assert body["errors"][1] == "line 12: number 79000000005 appears twice in the file (first on line 7)"
    assert body["error"] == f"nothing imported: {body['errors'][0]} (and {len(bad) - 1} more errors)"
    url, headers = admin(stack_env)
    assert httpx.get(f"{url}/admin/stats", headers=headers).json()["numbers"] == 0


def test_pool_admin_import_streams_a_chunked_body(start_service: Start, stack_env: dict[str, str]) -> None:
    start_service("pool")
    text = csv_text(5000, devices=20)
    url, headers = admin(stack_env)
    chunks = (text[i : i + 4096].encode() for i in range(0, len(text), 4096))  # no content-length: chunked
    reply = httpx.post(f"{url}/admin/import", content=chunks, headers={**headers, "content-type": "text/csv"},
                       timeout=60)  # fmt: skip
    assert (reply.status_code, reply.json()["added"]) == (200, 5000)


def test_pool_admin_imports_20k_rows_and_reports_existing(start_service: Start, stack_env: dict[str, str]) -> None:
    start_service("pool")
    text = csv_text(20_000, devices=40)
    reply = import_csv(stack_env, text)
    assert reply.json() == {"status": "SUCCESS", "rows": 20_000, "added": 20_000, "existing": 0, "conflicts": [],
                            "conflicts_total": 0}  # fmt: skip
    assert services(stack_env)[0]["operatorMap"]["any"]["tg"] == 20_000
    again = import_csv(stack_env, csv_text(20_001, devices=40)).json()
    assert (again["added"], again["existing"]) == (1, 20_000)


def test_pool_cli_imports_csv_and_shows_stats(stack_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "numbers.csv"
    path.write_text(csv_text(500, devices=5))
    env = {**os.environ, "REDIS_URL": stack_env["REDIS_URL"]}

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "grizzly_pool", *args], env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "added 500" in cli("import", str(path))
    cli("cap", "dev0", "10")
    cli("offline", "--device", "dev1")
    cli("offline", "79000000002")
    stats = cli("stats")
    # 5 devices x 100: dev0 capped at 10, dev1 offline, one dev2 SIM offline -> 10 + 0 + 99 + 100 + 100
    assert '"numbers": 500' in stats and '"tg": 309' in stats


def test_pool_cli_import_lists_bad_lines_and_imports_nothing(stack_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "numbers.csv"
    text, bad = mixed_csv(1000)
    path.write_text(text)
    env = {**os.environ, "REDIS_URL": stack_env["REDIS_URL"], "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "grizzly_pool", "import", str(path)], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert f"nothing imported: {len(bad)} errors in numbers.csv" in done.stderr
    assert "line 8: number '79x00000006' must be 6-15 digits" in done.stderr
    assert f"... and {len(bad) - 100} more (only the first 100 are shown)" in done.stderr
    assert "added" not in done.stdout


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_pool_health_routes(start_service: Start, stack_env: dict[str, str], path: str) -> None:
    start_service("pool")
    assert httpx.get(internal(stack_env) + path).json()["status"] == "ok"


def test_pool_internal_api_needs_the_token_and_caps_bodies(start_service: Start, stack_env: dict[str, str]) -> None:
    start_service("pool", POOL_MAX_BODY_BYTES="4096", POOL_API_NEXT_TOKEN="test-next-pool-token-0001")
    import_csv(stack_env, csv_text(1))
    url = f"{internal(stack_env)}/v1/claim"
    for accepted in (stack_env["POOL_API_TOKEN"], "test-next-pool-token-0001"):  # a changeover: both work
        services_call = httpx.post(f"{internal(stack_env)}/v1/services", json={"upstream": "grizzly"},
                                   headers={"X-Internal-Token": accepted})  # fmt: skip
        assert services_call.status_code == 200
    for headers in ({}, {"X-Internal-Token": "wrong-token-0000"}, {"X-Internal-Token": ""}):
        assert httpx.post(url, json=claim_body(), headers=headers).status_code == 401
    finish = {"upstream": "grizzly", "activation_id": 1, "status": 1}
    assert httpx.post(f"{internal(stack_env)}/v1/finish", json=finish).status_code == 401
    big = {**claim_body(), "request_json": "x" * 5000}
    assert httpx.post(url, json=big, headers=token(stack_env)).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"upstream": "grizzly", "request_json": "'
        for _ in range(10):
            yield b"x" * 1000

    assert httpx.post(url, content=chunks(), headers=token(stack_env)).status_code == 413
    assert services(stack_env)[0]["operatorMap"]["any"]["tg"] == 1  # nothing refused took the number
    assert httpx.post(url, json=claim_body(), headers=token(stack_env)).json()["status"] == "SUCCESS"


@pytest.mark.parametrize(
    "change",
    [
        {"service": "t|g"},
        {"service": "tg\u0000"},
        {"operator": "any any"},
        {"country": ""},
        {"currency": 2**64 - 1},
        {"sum": "0.123456"},
        {"sum": "1e5"},
        {"exclude_prefixes": ["79x"]},
        {"upstream": "smshub"},  # not in UPSTREAMS
        {"request_json": "x" * (1 << 20 | 1)},
    ],
)
def test_pool_refuses_names_and_amounts_outside_the_bounds(
    start_service: Start, stack_env: dict[str, str], change: dict[str, Any]
) -> None:
    start_service("pool", POOL_MAX_BODY_BYTES=str(4 << 20))
    import_csv(stack_env, csv_text(1))
    reply = httpx.post(f"{internal(stack_env)}/v1/claim", json=claim_body(**change), headers=token(stack_env))
    assert reply.status_code == 200 and reply.json()["status"] == "ERROR", reply.text
    finish = {"upstream": "grizzly", "activation_id": 1, "status": 2}
    assert (
        httpx.post(f"{internal(stack_env)}/v1/finish", json=finish, headers=token(stack_env)).json()["status"]
        == "ERROR"
    )
    assert services(stack_env)[0]["operatorMap"]["any"]["tg"] == 1


def test_device_silent_past_the_timeout_is_not_counted_until_its_next_heartbeat(
    start_service: Start, stack_env: dict[str, str]
) -> None:
    start_service("pool", POOL_DEVICE_TIMEOUT_S="1")
    assert import_csv(stack_env, csv_text(6, devices=2)).json()["added"] == 6

    def tg() -> int:
        return int(services(stack_env)[0]["operatorMap"]["any"]["tg"])

    def seen(*devices: str) -> dict[str, Any]:
        url = f"{internal(stack_env)}/v1/seen"
        answer: dict[str, Any] = httpx.post(url, json={"devices": list(devices)}, headers=token(stack_env)).json()
        return answer

    assert seen("dev0", "gw-unknown") == {"status": "SUCCESS", "known": 1, "revived": 0, "error": ""}
    assert tg() == 6
    deadline = time.monotonic() + 10
    while tg() != 3 and time.monotonic() < deadline:  # dev0 fell silent; dev1 never sent one: never swept
        time.sleep(0.1)
    assert tg() == 3
    got = httpx.post(f"{internal(stack_env)}/v1/claim", json=claim_body(), headers=token(stack_env)).json()
    assert got["status"] == "SUCCESS" and (got["number"] - 79000000000) % 2 == 1  # only dev1's numbers
    url, headers = admin(stack_env)
    dev0 = httpx.get(f"{url}/admin/stats", headers=headers).json()["devices"]["dev0"]
    assert dev0["alive"] is False and dev0["seen_ms"] > 0 and dev0["online"] is True
    assert seen("dev0") == {"status": "SUCCESS", "known": 1, "revived": 1, "error": ""}
    assert tg() == 5  # dev0 back, one of dev1's numbers busy
    assert 'pool_device_liveness_total{event="dead"} 1.0' in httpx.get(f"{internal(stack_env)}/metrics").text
    bad = httpx.post(
        f"{internal(stack_env)}/v1/seen", json={"devices": ["bad\u0000name"]}, headers=token(stack_env)
    ).json()
    assert bad["status"] == "ERROR" and bad["error"].startswith("bad request")


def test_pool_cli_sims_and_earnings(start_service: Start, stack_env: dict[str, str]) -> None:
    start_service("pool", POOL_SUSPECT_STREAK="2")
    assert import_csv(stack_env, csv_text(1)).json()["added"] == 1
    for service, status in (("tg", 4), ("wa", 4), ("vk", 3)):
        got = httpx.post(
            f"{internal(stack_env)}/v1/claim", json=claim_body(service=service), headers=token(stack_env)
        ).json()
        finish = {"upstream": "grizzly", "activation_id": got["activation_id"], "status": status}
        assert (
            httpx.post(f"{internal(stack_env)}/v1/finish", json=finish, headers=token(stack_env)).json()["status"]
            == "SUCCESS"
        )
    env = {**os.environ, "REDIS_URL": stack_env["REDIS_URL"], "COLUMNS": "200"}

    def cli(*args: str) -> Any:
        done = subprocess.run([sys.executable, "-m", "grizzly_pool", *args], env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if "--json" in args else done.stdout

    [sim] = cli("sims", "--suspect", "--json")
    assert (sim["number"], sim["issued"], sim["cancelled"], sim["sold"], sim["streak"]) == (79000000000, 3, 2, 1, 3)
    assert cli("sims", "--device", "dev9", "--json") == []
    assert "79000000000" in cli("sims", "--device", "dev0")
    earned = cli("earnings", "--since", "2d", "--by", "service", "--json")
    assert [(r["service"], r["currency"], r["issued"], r["sold"], r["amount"]) for r in earned["rows"]] == [
        ("tg", "643", 1, 0, "0"), ("vk", "643", 1, 1, "0.35"), ("wa", "643", 1, 0, "0"),
    ]  # fmt: skip
    assert "sell-through" in cli("earnings")
    done = subprocess.run([sys.executable, "-m", "grizzly_pool", "earnings", "--by", "planet"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "by must name some of" in done.stderr
    url, headers = admin(stack_env)
    reply = httpx.get(f"{url}/admin/earnings", params={"since": "0d"}, headers=headers)
    assert reply.status_code == 400 and reply.json()["error"] == "since must be 1d-800d"


def test_numbers_are_checked_against_the_phone_number_plan_and_the_rows_country(
    start_service: Start, stack_env: dict[str, str], tmp_path: Path
) -> None:
    start_service("pool", POOL_NUMBER_CHECK="strict", POOL_NUMBER_REGIONS="16:GB")
    url, headers = admin(stack_env)
    good = {"number": 79001234567, "country": "ru", "operator": "mts", "device": "d1", "slot": "1"}
    rows = [
        good,
        {**good, "number": 74951234567, "slot": "2"},  # a Moscow landline
        {**good, "number": 447400123456, "slot": "3"},  # a UK mobile in a Russian row
        {**good, "number": 447700900123, "country": "16", "slot": "4"},  # a drama number: not a valid number
        {**good, "number": 77011234567, "slot": "5"},  # +7, but Kazakhstan's
    ]
    reply = httpx.post(f"{url}/admin/numbers", json={"numbers": rows}, headers=headers)
    assert reply.status_code == 400
    assert reply.json()["errors"] == [
        "numbers[1]: number 74951234567 is not a mobile number (fixed_line)",
        "numbers[2]: number 447400123456 has calling code +44, but country ru is RU (+7)",
        "numbers[3]: number 447700900123 is not a valid phone number (+44 7700900123)",
        "numbers[4]: number 77011234567 is a number of KZ, but country ru is RU",
    ]
    assert httpx.get(f"{url}/admin/stats", headers=headers).json()["numbers"] == 0  # nothing added
    text = "number,country,operator,device,slot\n79001234567,ru,mts,d1,1\n447400123456,16,ee,d1,2\n"
    text += "447400123457,ru,ee,d1,3\n"
    reply = import_csv(stack_env, text)
    assert reply.status_code == 400 and reply.json()["errors"] == [
        "line 4: number 447400123457 has calling code +44, but country ru is RU (+7)"
    ]
    assert import_csv(stack_env, text.rsplit("447400123457", 1)[0]).json()["added"] == 2
    env = {**os.environ, "REDIS_URL": stack_env["REDIS_URL"], "POOL_NUMBER_CHECK": "strict"}
    done = subprocess.run([sys.executable, "-m", "grizzly_pool", "add", "74951234567", "ru", "mts", "d1", "9"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0 and "is not a mobile number" in done.stderr


def test_pool_batch_answers_each_claim_and_finish_in_order_behind_the_token(
    start_service: Start, stack_env: dict[str, str]
) -> None:
    start_service("pool", POOL_MAX_BODY_BYTES="8192")
    import_csv(stack_env, csv_text(2))
    url = f"{internal(stack_env)}/v1/batch"
    claims = {"claims": [claim_body(), {**claim_body(), "upstream": "smshub"}, claim_body(), claim_body()]}
    reply = httpx.post(url, json=claims, headers=token(stack_env))
    assert reply.status_code == 200
    answers = reply.json()
    statuses = [c["status"] for c in answers["claims"]]  # which concurrent claim wins a number is not fixed
    assert statuses[1] == "ERROR" and sorted(statuses) == ["ERROR", "NO_NUMBERS", "SUCCESS", "SUCCESS"]
    assert answers["finishes"] == []
    first, second = (c["activation_id"] for c in answers["claims"] if c["status"] == "SUCCESS")
    finishes = [{"upstream": "grizzly", "activation_id": i, "status": 4} for i in (second, 42, first, first)]
    reply = httpx.post(url, json={"finishes": finishes}, headers=token(stack_env))
    assert reply.json()["finishes"] == [
        {"status": "SUCCESS", "error": ""},
        {"status": "ERROR", "error": "unknown activationId"},
        {"status": "SUCCESS", "error": ""},
        {"status": "SUCCESS", "error": ""},
    ]
    assert reply.json()["claims"] == []
    again = httpx.post(url, json={"claims": [claim_body(service="wa")]}, headers=token(stack_env)).json()
    assert again["claims"][0]["status"] == "SUCCESS"  # the finishes freed the numbers
    # what every internal call gets: the token, the body cap, a bad body refused before any claim runs
    assert httpx.post(url, json=claims).status_code == 401
    assert httpx.post(url, json=claims, headers={"X-Internal-Token": "wrong-token-0000"}).status_code == 401
    big = {"claims": [{**claim_body(), "request_json": "x" * 9000}]}
    assert httpx.post(url, json=big, headers=token(stack_env)).status_code == 413
    bad = httpx.post(url, content=b'{"claims": [{"upstream": 1}]}', headers=token(stack_env))
    assert bad.status_code == 400 and bad.json()["status"] == "ERROR"
    assert httpx.get(url, headers=token(stack_env)).status_code == 405
    assert services(stack_env)[0]["operatorMap"]["any"]["tg"] == 1  # the first number, finished with 4
    metrics = httpx.get(f"{internal(stack_env)}/metrics").text
    assert 'pool_claims_total{result="SUCCESS"} 3.0' in metrics
    assert 'pool_finishes_total{outcome="unknown",status="4"} 1.0' in metrics
