"""Parked entries as an operator sees them: ids checked before Redis is asked, raw bytes shown safely."""

from __future__ import annotations

import pytest
from grizzly_common.settings import SettingsError
from grizzly_pusher.admin import admin_routes
from grizzly_pusher.parked import BadRequest, Parked, check_count, check_id, preview
from grizzly_pusher.settings import Settings
from starlette.applications import Starlette
from starlette.testclient import TestClient


def test_raw_bytes_are_shown_escaped_and_cut() -> None:
    assert preview(b"ok \x00\x1b[31m\xff\xfe", 100) == "ok \\x00\\x1b[31m\\xff\\xfe"
    assert preview("é😀".encode(), 100) == "é😀"
    assert preview(b"x" * 10, 4) == "xxxx..."
    assert preview("é".encode()[:1], 10) == "\\xc3"  # a cut UTF-8 sequence is escaped, never an error


@pytest.mark.parametrize("bad", ["", "abc", "1-", "-1", "1-0-0", "1 -0", "1-0\n", "9" * 21 + "-0", "../1-0"])
def test_bad_ids_are_refused_before_redis_is_asked(bad: str) -> None:
    with pytest.raises(BadRequest):
        check_id(bad)


def test_ids_and_counts_in_range_pass() -> None:
    assert check_id("1764547200000-0") == "1764547200000-0"
    assert check_count(1) == 1 and check_count(1000) == 1000
    for count in (0, 1001):
        with pytest.raises(BadRequest):
            check_count(count)


def test_an_undecodable_entry_says_it_cannot_be_repushed() -> None:
    entry = Parked.from_stream(
        "5-0", {b"raw": b"{not json", b"reason": b"undecodable", b"topic": b"t", b"offset": b"3"}
    )
    assert entry.task is None and not entry.repushable
    detail = entry.detail()
    assert detail["raw_b64"] == "e25vdCBqc29u" and "cannot be re-pushed" in detail["note"]
    assert detail["source"]["offset"] == 3 and detail["decode_error"]
    odd = Parked.from_stream("6-0", {b"raw": b"", b"partition": b"x", b"offset": b"-2", b"ts_ms": b"1e9"})
    assert (odd.source["partition"], odd.source["offset"], odd.ts_ms) == (-1, -1, 0)  # shown, never a 500


def test_admin_token_is_optional_secret_and_never_in_repr() -> None:
    env = {"UPSTREAM_GRIZZLY_KEY": "k" * 16, "POOL_API_TOKEN": "pool-api-token-0001"}
    assert Settings.from_env(env).admin_token == ""
    settings = Settings.from_env({**env, "PUSHER_ADMIN_TOKEN": "s3cret-admin-token"})
    assert settings.admin_token == "s3cret-admin-token" and "s3cret" not in repr(settings)
    with pytest.raises(SettingsError, match="PUSHER_ADMIN_TOKEN"):
        Settings.from_env({**env, "PUSHER_ADMIN_TOKEN": "changeme"})


def admin_app(token: str) -> Starlette:
    return Starlette(routes=admin_routes(token, dict))  # no lifespan: refused before any state is read


def test_admin_routes_are_off_without_a_token_and_refuse_a_wrong_one() -> None:
    with TestClient(admin_app("")) as client:
        reply = client.get("/admin/parked", headers={"Authorization": "Bearer "})
        assert reply.status_code == 403 and "PUSHER_ADMIN_TOKEN" in reply.json()["error"]
    with TestClient(admin_app("right-token-0001")) as client:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0001"}, {"Authorization": "right-token-0001"}):
            reply = client.post("/admin/parked/1-0/repush", headers=headers)
            assert (reply.status_code, reply.json()["error"]) == (401, "unauthorized")
