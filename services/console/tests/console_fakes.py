"""Fake admin APIs (the pool's and the pusher's, as the console contract describes them) and a console app in front
of them: the console's own rules (login, sessions, CSRF, pages, error messages) tested without a stack."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

POOL_TOKEN = "test-pool-admin-token"
PUSHER_TOKEN = "test-pusher-admin-token"
ADMIN_TOKEN = "test-operator-admin-token"
ALICE_TOKEN = "test-operator-alice-token"

ENV = {
    "CONSOLE_OPERATORS": "admin,alice",
    "CONSOLE_OPERATOR_ADMIN_TOKEN": ADMIN_TOKEN,
    "CONSOLE_OPERATOR_ALICE_TOKEN": ALICE_TOKEN,
    "CONSOLE_SESSION_SECRET": "test-session-secret-0123456789",
    "POOL_ADMIN_TOKEN": POOL_TOKEN,
    "PUSHER_ADMIN_TOKEN": PUSHER_TOKEN,
    "CONSOLE_COOKIE_SECURE": "false",
}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeAdmin:
    """One admin API: canned answers per path (a callable may compute one), every request recorded."""

    token: str
    answers: dict[str, Any] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    down: bool = False  # every request fails to connect

    def app(self) -> Starlette:
        async def any_route(request: Request) -> Response:
            body = await request.body()
            self.seen.append(
                Seen(request.method, request.url.path, dict(request.query_params), dict(request.headers), body)
            )
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return _json({"status": "ERROR", "error": "unauthorized"}, 401)
            key = f"{request.method} {request.url.path}"
            for pattern, answer in self.answers.items():
                if re.fullmatch(pattern, key):
                    if callable(answer) and not isinstance(answer, Response):
                        answer = answer(request, body)
                    if isinstance(answer, Response):
                        return answer
                    return _json(answer)
            return Response("Not Found", 404, media_type="text/plain")  # the framework's own: no such route

        return Starlette(routes=[Route("/{path:path}", any_route, methods=["GET", "POST"])])

    def transport(self) -> httpx.AsyncBaseTransport:
        fake = self

        class Transport(httpx.AsyncBaseTransport):
            def __init__(self) -> None:
                self.inner = httpx.ASGITransport(app=fake.app())

            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                if fake.down:
                    raise httpx.ConnectError("connection refused", request=request)
                return await self.inner.handle_async_request(request)

        return Transport()

    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]


def now_ms() -> int:
    return int(time.time() * 1000)


def pool_answers() -> dict[str, Any]:
    """The pool admin API as the contract describes it."""
    return {
        "GET /admin/overview": {
            "numbers": 3, "free": 1, "busy": 1, "offline": 1, "devices": 2, "devices_dead": 0, "suspects": 1,
            "earnings": {"today": {"RUB": 12_500_000}, "7d": {"RUB": 40_000_000}},
        },
        "GET /admin/stats": {
            "numbers": 3, "free_online": 1, "active": 1,
            "devices": {"goip-1": {"online": True, "alive": True, "seen_ms": now_ms(), "cap": 0, "active": 1,
                                   "numbers": 2}},
        },
        "GET /admin/counts": {"countryList": [{"country": "0", "operatorMap": {"any": {"tg": 1, "wa": 1}}}]},
        "GET /admin/earnings": lambda request, body: {
            "since": "2026-11-25", "until": "2026-12-01", "by": [],
            "rows": (
                [{"day": "2026-12-01", "currency": "RUB", "amount": "12.5", "sold": 2}]
                if request.query_params.get("by") == "day"
                else [{"upstream": "grizzly", "service": "tg", "country": "0", "currency": "RUB", "issued": 4,
                       "sold": 2, "refused": 0, "cancelled": 1, "refunded": 0, "amount": "12.5",
                       "sell_through": 0.5}]
            ),
        },
        "GET /admin/sims": {"cursor": 0, "sims": [
            {"number": 447700900001, "device": "goip-1", "slot": "1", "online": True, "busy": False, "suspect": True,
             "issued": 5, "sold": 0, "refused": 0, "cancelled": 5, "refunded": 0, "sms": 0, "last_sms_ms": 0,
             "streak": 5},
        ]},
        "GET /admin/devices": {"total": 2, "devices": [
            {"device": "goip-1", "online": True, "alive": True, "cap": None, "numbers": 2, "free": 1, "busy": 1,
             "offline": 0, "last_seen_ms": now_ms(), "suspects": 1},
            {"device": "goip-2", "online": False, "alive": False, "cap": 3, "numbers": 1, "free": 0, "busy": 0,
             "offline": 1, "last_seen_ms": None, "suspects": 0},
        ]},
        "POST /admin/devices/.+": {"status": "SUCCESS"},
        "GET /admin/numbers": {"cursor": 0, "numbers": [
            {"number": 447700900001, "country": "0", "operator": "any", "device": "goip-1", "slot": "1",
             "online": "1"},
        ]},
        "GET /admin/numbers/447700900001": {
            "number": 447700900001, "country": "0", "operator": "any", "device": "goip-1", "slot": "1",
            "online": "1", "history": [{"service": "tg", "activation_id": 77, "status": "finished",
                                        "created_ms": now_ms()}],
            "per_service": {"tg": {"issued": 1, "sold": 1, "cancelled": 0, "refused": 0}},
        },
        "GET /admin/numbers/\\d+": _json({"status": "ERROR", "error": "unknown number"}, 404),
        "GET /admin/activations": {"activations": [
            {"id": 77, "number": 447700900001, "service": "tg", "country": "0", "operator": "any",
             "upstream": "grizzly", "status": "finished", "created_ms": now_ms(), "updated_ms": now_ms(),
             "sum": "12.5", "currency": "RUB"},
        ], "next": None},
        "GET /admin/activations/77": {
            "activation": {"id": "77", "number": "447700900001", "service": "tg", "status": "finished"},
            "events": [{"ts_ms": now_ms(), "event": "issued"}, {"ts_ms": now_ms(), "event": "sms", "sms_id": 5}],
        },
        "GET /admin/unmatched": {"unmatched": [
            {"ts_ms": now_ms(), "event": "unmatched", "number": 447700900002, "text": "hello", "sms_id": 9},
        ]},
        "GET /admin/audit": {"events": [
            {"ts_ms": now_ms(), "event": "device_set", "by": "alice", "device": "goip-1", "cap": 3},
        ]},
        "POST /admin/imports": _json({"job": "job-1"}, 202),
        "GET /admin/imports": {"jobs": [{"job": "job-0", "state": "done", "rows_total": 2, "added": 2, "existing": 0,
                                         "error_count": 0, "by": "alice", "started_ms": now_ms()}]},
        "GET /admin/imports/job-1": {"job": "job-1", "state": "running", "rows_total": 4, "rows_done": 1,
                                     "added": 0, "error": None, "bad_lines": []},
    }  # fmt: skip


def pusher_answers() -> dict[str, Any]:
    return {
        "GET /admin/stats": {
            "sms_per_minute": [[now_ms() - 120_000, 3], [now_ms() - 60_000, 5]],
            "pushes_1h": {"ok": 8, "failed": 1}, "success_rate_1h": 0.889, "retry_queue": 2, "parked": 1,
            "in_flight": 0,
        },
        "GET /admin/queue": {"total": 1, "entries": [
            {"sms_id": 6, "activation_id": 78, "upstream": "grizzly", "attempts": 2, "next_attempt_ms": now_ms(),
             "first_seen_ms": now_ms(), "last_error": "HTTP 500"},
        ]},
        "GET /admin/sms": {"sms": [
            {"sms_id": 5, "activation_id": 77, "number": 447700900001, "upstream": "grizzly", "text": "code 1234",
             "received_ms": now_ms(), "status": "pushed", "attempts": 1,
             "last_answer": {"result": "success", "http_status": 200, "error": None, "at_ms": now_ms()}},
        ]},
        "GET /admin/upstreams": {"upstreams": [
            {"name": "grizzly", "push_url": "http://127.0.0.1:9/push", "key_masked": "te…01",
             "last_answers": [{"at_ms": now_ms(), "sms_id": 5, "http_status": 200, "answer": "SUCCESS", "ok": True}]},
        ]},
        "GET /admin/parked": {"total": 1, "next": None, "entries": [
            {"id": "1700000000000-0", "reason": "max_retry_age", "error": "HTTP 500", "ts_ms": now_ms(),
             "source": {"task_id": "grizzly:6"}, "repushable": True, "raw_size": 10, "raw_preview": "...",
             "sms_id": 6, "kind": "sms", "number": 447700900001, "upstream": "grizzly", "activation_id": 78},
        ]},
        "POST /admin/parked/[0-9-]+/repush": lambda request, body: {
            "id": request.url.path.split("/")[3], "outcome": "scheduled", "sms_id": 6, "task_id": "grizzly:6"},
        "POST /admin/parked/[0-9-]+/delete": lambda request, body: {
            "id": request.url.path.split("/")[3], "deleted": True},
        "POST /admin/parked/repush": {"scheduled": 1, "already_delivered": 0, "gone": 0, "skipped": [],
                                      "until": "1700000000000-0", "next": None},
    }  # fmt: skip
