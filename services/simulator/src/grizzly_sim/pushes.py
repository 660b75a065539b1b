"""The platform's push endpoint (POST /agent/api/sms): checks every PUSH_SMS / PUSH_CALL / PUSH_CALL_RECORD.

Framework-free: `PushLedger.handle(raw, headers)` returns (HTTP status, reply bytes); the simulator mounts it on
Starlette, the conformance kit on aiohttp.web. Findings (violations: the platform would fine or fail you; warnings:
worth a look, not a protocol breach) go to one `Findings` shared with the request side.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import orjson
from prometheus_client import Counter

from grizzly_sim.checks import push_problems

MAX_PUSH_BYTES = 8 * 1024 * 1024  # decompressed; a call record may carry audio

PUSHES = Counter("sim_pushes_total", "Pushes received by the simulated platform endpoint", ["action", "answer"])
FINDINGS = Counter("sim_findings_total", "Protocol violations and warnings found", ["severity", "kind"])

SUCCESS = b'{"status":"SUCCESS"}'


def _error(text: str) -> bytes:
    return orjson.dumps({"status": "ERROR", "error": text})


@dataclass
class Findings:
    """What the simulated platform holds against the partner. Bounded lists; counters keep the totals."""

    limit: int = 1000
    violations: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    warnings: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    totals: dict[str, int] = field(default_factory=dict)

    def violation(self, kind: str, detail: str, **context: Any) -> None:
        self._add(self.violations, "violation", kind, detail, context)

    def warning(self, kind: str, detail: str, **context: Any) -> None:
        self._add(self.warnings, "warning", kind, detail, context)

    def _add(self, target: deque[dict[str, Any]], severity: str, kind: str, detail: str, ctx: dict[str, Any]) -> None:
        target.append({"ts": round(time.time(), 3), "kind": kind, "detail": detail, **ctx})
        name = f"{severity}:{kind}"
        self.totals[name] = self.totals.get(name, 0) + 1
        FINDINGS.labels(severity, kind).inc()

    @property
    def violation_count(self) -> int:
        return sum(n for name, n in self.totals.items() if name.startswith("violation:"))


@dataclass
class Push:
    """One push as received."""

    action: str
    message_id: int | None  # smsId / callId
    phone: int | None
    phone_from: str
    text: str
    at: float  # monotonic
    answered: str  # SUCCESS | ERROR | HTTP500
    gzip: bool
    user_agent: str


@dataclass
class PushLedger:
    key: str = field(repr=False)
    findings: Findings = field(default_factory=Findings)
    fail_until: float = 0.0  # monotonic: every push before then is answered as a failure
    fail_mode: str = "error"  # error: {"status":"ERROR"}; http500: HTTP 500
    fail_first_for: set[int] = field(default_factory=set)  # phones whose next push is failed once
    open_numbers: set[int] = field(default_factory=set)
    finished_numbers: set[int] = field(default_factory=set)
    received: list[Push] = field(default_factory=list)  # every push (bounded by max_kept)
    max_kept: int = 100_000
    delivered: dict[tuple[str, int], Push] = field(default_factory=dict)  # (action, id) answered SUCCESS
    last_attempt: dict[tuple[str, int], float] = field(default_factory=dict)
    retry_intervals: list[float] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic

    def fail_for(self, seconds: float, mode: str | None = None) -> None:
        self.fail_until = self.clock() + max(0.0, seconds)
        if mode is not None:
            self.fail_mode = mode

    @property
    def failing(self) -> bool:
        return self.clock() < self.fail_until

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def handle(self, raw: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """One POST to the push endpoint: check it, decide the answer, remember what was answered."""
        lower = {k.lower(): v for k, v in headers.items()}
        self._count("received")
        user_agent = lower.get("user-agent", "")
        if not user_agent.strip():
            self.findings.violation("push_no_user_agent", "push without a User-Agent header")
        compressed = "gzip" in lower.get("content-encoding", "").lower()
        if compressed:
            try:
                raw = _gunzip(raw)
            except (OSError, EOFError, zlib.error, ValueError) as exc:
                self.findings.violation("push_bad_gzip", f"Content-Encoding: gzip but the body does not inflate: {exc}")
                return 200, _error("bad gzip body")
        content_type = lower.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            fields = _multipart(raw, content_type)
            return self._call_record(fields, compressed, user_agent)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.findings.violation("push_not_json", f"push body is not JSON: {raw[:80]!r}")
            return 200, _error("body is not JSON")
        problems = push_problems(body, self.key)
        if problems:
            action = body.get("action") if isinstance(body, dict) else None
            kind = "push_wrong_key" if problems == ["wrong or missing key"] else "push_bad_fields"
            self.findings.violation(kind, "; ".join(problems), action=str(action))
            PUSHES.labels(str(action)[:20], "ERROR").inc()
            return 200, _error("wrong key" if kind == "push_wrong_key" else "; ".join(problems))
        action = body["action"]
        message_id = body["smsId"] if action == "PUSH_SMS" else body["callId"]
        push = Push(
            action=action,
            message_id=message_id,
            phone=body["phone"],
            phone_from=body["phoneFrom"],
            text=str(body.get("text", "")),
            at=self.clock(),
            answered="",
            gzip=compressed,
            user_agent=user_agent,
        )
        return self._settle(push)

    def _call_record(self, fields: dict[str, str], compressed: bool, user_agent: str) -> tuple[int, bytes]:
        problems = []
        if fields.get("key") != self.key:
            problems.append("wrong or missing key")
        if fields.get("action") != "PUSH_CALL_RECORD":
            problems.append(f"multipart push with action {fields.get('action')!r}")
        for name in ("callId", "phone"):
            if not fields.get(name, "").isdigit():
                problems.append(f"{name} must be digits, got {fields.get(name)!r}")
        if "phoneFrom" not in fields:
            problems.append("phoneFrom missing")
        if not fields.get("text") and "file" not in fields:
            problems.append("neither text nor file")
        if problems:
            self.findings.violation("push_bad_fields", "; ".join(problems), action="PUSH_CALL_RECORD")
            PUSHES.labels("PUSH_CALL_RECORD", "ERROR").inc()
            return 200, _error("; ".join(problems))
        push = Push(
            action="PUSH_CALL_RECORD",
            message_id=int(fields["callId"]),
            phone=int(fields["phone"]),
            phone_from=fields["phoneFrom"],
            text=fields.get("text", ""),
            at=self.clock(),
            answered="",
            gzip=compressed,
            user_agent=user_agent,
        )
        return self._settle(push)

    def _settle(self, push: Push) -> tuple[int, bytes]:
        assert push.message_id is not None and push.phone is not None
        ident = (push.action, push.message_id)
        previous_attempt = self.last_attempt.get(ident)
        if previous_attempt is not None and ident not in self.delivered:
            self.retry_intervals.append(push.at - previous_attempt)
            self._count("retries")
        self.last_attempt[ident] = push.at
        if ident in self.delivered:
            first = self.delivered[ident]
            self.findings.violation(
                "push_duplicate_after_success",
                f"{push.action} id {push.message_id} pushed again after SUCCESS "
                f"({push.at - first.at:.1f}s after the first SUCCESS)",
                message_id=push.message_id,
                phone=push.phone,
            )
            self._count("duplicates_after_success")
            push.answered = "SUCCESS"
            self._keep(push)
            PUSHES.labels(push.action, "DUPLICATE").inc()
            return 200, SUCCESS
        if push.phone not in self.open_numbers:
            if push.phone in self.finished_numbers:
                self.findings.warning("push_after_finish", f"push for {push.phone} after its activation was finished")
            else:
                self.findings.warning("push_unknown_number", f"push for {push.phone}, a number not issued to us")
        if self.failing or push.phone in self.fail_first_for:
            self.fail_first_for.discard(push.phone)
            push.answered = "HTTP500" if self.fail_mode == "http500" else "ERROR"
            self._keep(push)
            self._count("failed_by_us")
            PUSHES.labels(push.action, push.answered).inc()
            if push.answered == "HTTP500":
                return 500, b"simulated outage"
            return 200, _error("simulated failure, retry later")
        push.answered = "SUCCESS"
        self.delivered[ident] = push
        self._keep(push)
        self._count("succeeded")
        PUSHES.labels(push.action, "SUCCESS").inc()
        return 200, SUCCESS

    def _keep(self, push: Push) -> None:
        if len(self.received) < self.max_kept:
            self.received.append(push)

    def for_phone(self, phone: int) -> list[Push]:
        return [p for p in self.received if p.phone == phone]

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        deadline = self.clock() + timeout_s
        while self.clock() < deadline:
            if predicate():
                return True
            await asyncio.sleep(0.05)
        return predicate()

    def summary(self) -> dict[str, Any]:
        intervals = self.retry_intervals
        return {
            **{name: self.counters.get(name, 0) for name in ("received", "succeeded", "failed_by_us", "retries")},
            "duplicates_after_success": self.counters.get("duplicates_after_success", 0),
            "distinct_delivered": len(self.delivered),
            "retry_interval_s": (
                {"min": round(min(intervals), 2), "max": round(max(intervals), 2)} if intervals else None
            ),
            "failing_for_s": round(max(0.0, self.fail_until - self.clock()), 1),
        }


def _gunzip(raw: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = inflater.decompress(raw, MAX_PUSH_BYTES + 1)
    if len(data) > MAX_PUSH_BYTES:
        raise ValueError("inflated body too large")
    if not inflater.eof:
        raise EOFError("truncated gzip stream")
    return data


def _multipart(raw: bytes, content_type: str) -> dict[str, str]:
    """multipart/form-data -> {name: text}; a file part is kept as its size only."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    fields: dict[str, str] = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        decoded = part.get_payload(decode=True)
        payload = decoded if isinstance(decoded, bytes) else b""
        if part.get_filename() is not None or name == "file":
            fields["file"] = str(len(payload))
        else:
            fields[name] = payload.decode(errors="replace")
    return fields
