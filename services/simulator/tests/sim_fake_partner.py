"""A small in-memory partner (aiohttp, in the test's event loop) that follows the protocol, with switchable bugs.

It exists to prove the conformance kit and the simulator: a correct partner must pass every item, and each bug
must make the matching item fail. Not a model of the real services.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

KEY = "fake-partner-key-0001"
INGEST_TOKEN = "fake-ingest-token-0001"
BUGS = frozenset(
    {
        "duplicates",  # GET_NUMBER may hand out a number that is already in an open activation
        "string_number",  # number as a JSON string
        "ignore_exclusions",  # exceptionPhoneSet ignored
        "overreport",  # GET_SERVICES reports 3 more than available
        "finish_once",  # a repeated FINISH_ACTIVATION answers ERROR
        "http_errors",  # bad input answered with HTTP 400 / 405
        "lenient_types",  # numeric fields sent as strings are accepted
        "push_twice",  # an SMS is pushed again after SUCCESS
        "no_retry",  # a failed push is not retried
        "reoffer_retired",  # FINISH 3 or 1 does not stop the number being offered again for that service
        "retire_everywhere",  # FINISH 3 or 1 stops the number being offered for every service
    }
)


@dataclass
class FakePartner:
    numbers: list[int]
    country: str = "ru"
    operator: str = "any"
    services: tuple[str, ...] = ("tg", "wa")
    bugs: frozenset[str] = frozenset()
    push_url: str = ""
    port: int = 0
    busy: dict[int, int] = field(default_factory=dict)  # activationId -> number
    service_of: dict[int, str] = field(default_factory=dict)  # activationId -> service
    retired: set[tuple[int, str]] = field(default_factory=set)  # (number, service) finished with 3 or 1
    finished: dict[int, int] = field(default_factory=dict)  # activationId -> status
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1_700_000_000_000))
    sms_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(900_000))
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/GrizzlySMS.php"

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/sms"

    def free(self, service: str | None = None) -> list[int]:
        """Numbers in no open activation; with a service, only those that may still be offered for it."""
        return [
            n
            for n in self.numbers
            if n not in self.busy.values() and (service is None or not self.is_retired(n, service))
        ]

    def is_retired(self, number: int, service: str) -> bool:
        if "reoffer_retired" in self.bugs:
            return False
        if "retire_everywhere" in self.bugs:
            return any(n == number for n, _ in self.retired)
        return (number, service) in self.retired

    async def partner(self, request: web.Request) -> web.Response:
        def reply(body: dict[str, Any], status: int = 200) -> web.Response:
            return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")

        def error(text: str, http_status: int = 400) -> web.Response:
            return reply({"status": "ERROR", "error": text}, http_status if "http_errors" in self.bugs else 200)

        if request.method != "POST":
            return error("POST only", 405)
        raw = await request.read()
        if len(raw) > 64 * 1024:
            return error("body too large", 413)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return error("bad json")
        if not isinstance(body, dict):
            return error("not an object")
        if body.get("key") != KEY:
            return error("wrong key", 401)
        action = body.get("action")
        if action == "GET_SERVICES":
            extra = 3 if "overreport" in self.bugs else 0
            services = {s: len(self.free(s)) + extra for s in self.services}
            return reply(
                {
                    "status": "SUCCESS",
                    "countryList": [{"country": self.country, "operatorMap": {self.operator: services}}],
                }
            )
        if action == "GET_NUMBER":
            if not isinstance(body.get("sum"), int | float) and "lenient_types" not in self.bugs:
                return error("sum must be a number")
            exclude = [str(p) for p in body.get("exceptionPhoneSet") or []]
            if "ignore_exclusions" in self.bugs:
                exclude = []
            async with self.lock:
                await asyncio.sleep(0.001)  # let concurrent requests interleave like a real server's I/O
                service = str(body.get("service"))
                pool = self.numbers if "duplicates" in self.bugs else self.free(service)
                fitting = [n for n in pool if not any(str(n).startswith(p) for p in exclude)]
                if not fitting:
                    return reply({"status": "NO_NUMBERS"})
                number = fitting[0]
                activation_id = next(self.ids)
                self.busy[activation_id] = number
                self.service_of[activation_id] = service
            shown: Any = str(number) if "string_number" in self.bugs else number
            return reply(
                {
                    "status": "SUCCESS",
                    "number": shown,
                    "activationId": activation_id,
                    "flashcall": False,
                    "voice": False,
                }
            )
        if action == "FINISH_ACTIVATION":
            finish_id, status = body.get("activationId"), body.get("status")
            if "lenient_types" in self.bugs:
                with contextlib.suppress(TypeError, ValueError):
                    finish_id, status = int(finish_id), int(status)  # type: ignore[arg-type]
            if not isinstance(finish_id, int) or status not in (1, 3, 4, 5):
                return error("activationId and status must be numbers")
            if finish_id in self.finished:
                return error("already finished") if "finish_once" in self.bugs else reply({"status": "SUCCESS"})
            if finish_id not in self.busy:
                return error("unknown activationId")
            number = self.busy.pop(finish_id)
            self.finished[finish_id] = status
            if status in (1, 3):
                self.retired.add((number, self.service_of[finish_id]))
            return reply({"status": "SUCCESS"})
        return error("unknown action")

    async def ingest(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {INGEST_TOKEN}":
            return web.json_response({"status": "ERROR", "error": "token"}, status=401)
        body = await request.json()
        task = asyncio.create_task(self.push(next(self.sms_ids), int(body["number"]), body["from"], body["text"]))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return web.json_response({"status": "SUCCESS"})

    async def push(self, sms_id: int, phone: int, sender: str, text: str) -> None:
        body = orjson.dumps(
            {"action": "PUSH_SMS", "key": KEY, "smsId": sms_id, "phone": phone, "phoneFrom": sender, "text": text}
        )
        headers = {"User-Agent": "fake-partner", "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as session:
            for _ in range(60):
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.post(self.push_url, data=body, headers=headers) as response:
                        answer = await response.read()
                    if answer == b'{"status":"SUCCESS"}':
                        if "push_twice" in self.bugs:
                            await asyncio.sleep(0.5)
                            async with session.post(self.push_url, data=body, headers=headers) as response:
                                await response.read()
                        return
                if "no_retry" in self.bugs:
                    return
                await asyncio.sleep(0.5)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakePartner]:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/GrizzlySMS.php", self.partner)
        app.router.add_post("/v1/sms", self.ingest)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        self.port = runner.addresses[0][1]
        try:
            yield self
        finally:
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await runner.cleanup()
