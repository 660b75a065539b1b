"""A small fake of the platform's push endpoint, run inside the test process.

It records every push it receives and answers SUCCESS, or ERROR / a timeout / a 500 while told to fail.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.integration.infra import free_port


@dataclass
class Push:
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    answered_success: bool


@dataclass
class FakeGrizzly:
    key: str
    port: int = field(default_factory=free_port)
    mode: str = "ok"  # ok | error | timeout | http500 | garbage
    timeout_s: float = 8.0  # how long "timeout" mode sleeps before answering
    pushes: list[Push] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/agent/api/sms"

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
                return None

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"_unparsable": raw.decode(errors="replace")}
                mode = fake.mode
                ok = mode == "ok" and body.get("key") == fake.key
                with fake.lock:
                    fake.pushes.append(Push(body, dict(self.headers.items()), time.time(), ok))
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

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def successes(self) -> list[Push]:
        with self.lock:
            return [p for p in self.pushes if p.answered_success]

    def wait_for(self, predicate: Any, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return bool(predicate(self))
