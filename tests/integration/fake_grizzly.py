"""Small fakes run inside the test process: the platform's push endpoint, and (for pusher tests) the pool lookup.

FakeGrizzly records every push it receives (JSON, gzip or multipart) and answers SUCCESS, or ERROR / a timeout /
a 500 / garbage while told to fail (for ever with `mode`, for a while with `fail_for`, per number with
`fail_phones`). `success_counts()` / `duplicates()` report which ids were answered SUCCESS more than once.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from grizzly_testkit.infra import free_port


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the pusher opens up to PUSHER_CONCURRENCY connections at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a timed-out push, a killed pusher) is part of the tests, not an error."""


def parse_multipart(content_type: str, raw: bytes) -> dict[str, Any]:
    """multipart/form-data -> {name: text} plus "file" -> {"filename", "content_type", "data"}."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            fields[str(name)] = {"filename": filename, "content_type": part.get_content_type(), "data": data}
        else:
            fields[str(name)] = data.decode()
    return fields


@dataclass
class Push:
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    answered_success: bool
    raw_size: int = 0  # bytes on the wire (before gunzip)

    @property
    def id(self) -> Any:
        """smsId or callId (multipart fields arrive as text: digits become an int)."""
        value = self.body.get("smsId", self.body.get("callId"))
        return int(value) if isinstance(value, str) and value.isdigit() else value


@dataclass
class FakeGrizzly:
    key: str
    port: int = field(default_factory=free_port)
    mode: str = "ok"  # ok | error | timeout | http500 | garbage
    timeout_s: float = 8.0  # how long "timeout" mode sleeps before answering
    delay_s: float = 0.0  # every request waits this long before it is answered
    fail_mode: str = "error"  # the mode used while fail_for() is active
    fail_until: float = 0.0  # time.monotonic() until which every request fails with fail_mode
    fail_phones: set[int] = field(default_factory=set)  # pushes for these numbers always get ERROR
    pushes: list[Push] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/agent/api/sms"

    def fail_for(self, seconds: float, mode: str = "error") -> None:
        self.fail_mode = mode
        self.fail_until = time.monotonic() + seconds

    def current_mode(self) -> str:
        return self.fail_mode if time.monotonic() < self.fail_until else self.mode

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                size = len(raw)
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                content_type = self.headers.get("Content-Type", "")
                body: dict[str, Any]
                try:
                    if content_type.startswith("multipart/form-data"):
                        body = parse_multipart(content_type, raw)
                    else:
                        body = json.loads(raw)
                except ValueError:
                    body = {"_unparsable": raw.decode(errors="replace")}
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                mode = fake.current_mode()
                if mode == "ok" and body.get("phone") in fake.fail_phones:
                    mode = "error"
                ok = mode == "ok" and body.get("key") == fake.key
                with fake.lock:
                    fake.pushes.append(Push(body, dict(self.headers.items()), time.time(), ok, size))
                if mode == "timeout":
                    time.sleep(fake.timeout_s)
                if mode == "http500":
                    reply, status = b"oops", 500
                elif mode == "garbage":
                    reply, status = b"<html>maintenance</html>", 200
                elif ok:
                    reply, status = b'{"status":"SUCCESS"}', 200
                else:
                    reply, status = b'{"status":"ERROR","error":"try later"}', 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the client gave up (timeout mode)

        self.server = _Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def successes(self) -> list[Push]:
        with self.lock:
            return [p for p in self.pushes if p.answered_success]

    def success_counts(self) -> Counter[Any]:
        """id (smsId or callId) -> how many times it was answered SUCCESS."""
        return Counter(p.id for p in self.successes())

    def delivered_ids(self) -> set[Any]:
        return set(self.success_counts())

    def duplicates(self) -> dict[Any, int]:
        """Ids pushed again after a SUCCESS (the platform's test fails on each of these)."""
        return {sms_id: n for sms_id, n in self.success_counts().items() if n > 1}

    def pushes_for(self, sms_id: Any) -> list[Push]:
        with self.lock:
            return [p for p in self.pushes if p.id == sms_id]

    def wait_for(self, predicate: Any, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return bool(predicate(self))


@dataclass
class FakePool:
    """The pool's POST /v1/lookup and /v1/lookup_many (pool_api) and GET /healthz, from a dict; POST /v1/seen is
    recorded, /v1/resolve finds nothing.

    Only for pusher tests that must not depend on the pool service; Kafka and Redis are always real.
    """

    port: int = field(default_factory=free_port)
    activations: dict[int, tuple[int, str, int]] = field(default_factory=dict)  # number -> (id, upstream, created)
    down: bool = False  # answer 503 to everything
    lookups: int = 0
    seen: list[list[str]] = field(default_factory=list)  # the devices of each POST /v1/seen (heartbeats)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self, number: int, activation_id: int, upstream: str = "grizzly", created_ms: int = 0) -> None:
        self.activations[number] = (activation_id, upstream, created_ms)

    def lookup(self, number: int) -> dict[str, Any]:
        found = self.activations.get(number)
        if found is None:
            return {"found": False}
        return {"found": True, "activation_id": found[0], "upstream": found[1], "service": "tg", "created_ms": found[2]}

    def start(self) -> None:
        pool = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply(503 if pool.down else 200, {"status": "ok"})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if pool.down:
                    self._reply(503, {"status": "unavailable"})
                    return
                if self.path == "/v1/seen":
                    devices = json.loads(raw)["devices"]
                    pool.seen.append(devices)
                    self._reply(200, {"status": "SUCCESS", "known": len(devices), "revived": 0})
                    return
                if self.path == "/v1/resolve":
                    self._reply(200, {"found": False})
                    return
                pool.lookups += 1
                if self.path == "/v1/lookup_many":
                    numbers = json.loads(raw)["numbers"]
                    self._reply(200, {"results": [pool.lookup(number) for number in numbers]})
                    return
                self._reply(200, pool.lookup(json.loads(raw)["number"]))

        self.server = _Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def inbound(sms_id: int, number: int, *, text: str = "", kind: str = "sms", age_s: float = 0.0, **extra: Any) -> Any:
    """An InboundMessage as sms-ingest would publish it (for tests that produce records themselves)."""
    from grizzly_common.events import InboundMessage

    now = int((time.time() - age_s) * 1000)
    return InboundMessage(
        kind=kind,  # type: ignore[arg-type]
        sms_id=sms_id,
        number=number,
        phone_from=extra.pop("phone_from", "Telegram"),
        text=text or f"Telegram code: {sms_id % 100000:05d}",
        received_at_ms=now,
        ingested_at_ms=now,
        source="generic",
        **extra,
    )


def produce_inbound(
    bootstrap: str,
    topic: str,
    messages: list[Any],
    raw: tuple[bytes, ...] = (),
    partitions: int = 4,
    raw_key: bytes = b"garbage",
) -> None:
    """Publish raw values (keyed raw_key), then InboundMessages (keyed by number) to `topic`, creating it first."""
    import asyncio

    from grizzly_common.events import encode, number_key
    from grizzly_common.kafka_client import ensure_topics, make_producer

    async def run() -> None:
        await ensure_topics(bootstrap, [topic], partitions=partitions)
        producer = make_producer(bootstrap, "pusher-test")
        await producer.start()
        try:
            for value in raw:
                await producer.send(topic, value, key=raw_key)
            for message in messages:
                await producer.send(topic, encode(message), key=number_key(message.number))
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(run())
