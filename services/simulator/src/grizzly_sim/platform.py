"""The simulated platform's request side: polls counts, takes numbers, (optionally) sends SMS, finishes activations.

Everything the partner does wrong goes to `Findings` as a violation (what the platform would fine or fail you for)
or a warning (suspicious, not a breach). Randomness comes from one seeded generator, so a run can be repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter as Tally
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from grizzly_common.logging import log_fields
from prometheus_client import Counter, Gauge, Histogram

from grizzly_sim import checks
from grizzly_sim.partner import PartnerClient, Reply
from grizzly_sim.pushes import Findings, PushLedger
from grizzly_sim.settings import Settings

log = logging.getLogger(__name__)

REQUESTS = Counter("sim_requests_total", "Requests the simulator sent to the partner", ["action", "result"])
LATENCY = Histogram(
    "sim_request_seconds",
    "Partner answer time per action",
    ["action"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0),
)
OPEN = Gauge("sim_open_activations", "Activations the simulator holds open")
UNKNOWN_ACTIVATION_BASE = 9_000_000_000_000_000_000  # above any id a partner hands out in practice


@dataclass
class Activation:
    activation_id: int
    number: int
    country: str
    operator: str
    service: str
    issued_at: float
    sms_text: str = ""  # the SMS we injected for it, if any


@dataclass
class Simulator:
    settings: Settings
    client: PartnerClient
    ledger: PushLedger
    findings: Findings
    rng: random.Random = field(default_factory=random.Random)
    open: dict[int, Activation] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    requests: dict[str, Tally[str]] = field(default_factory=dict)
    latency_max: dict[str, float] = field(default_factory=dict)
    issued: int = 0
    distinct_numbers: set[int] = field(default_factory=set)
    retired: set[tuple[int, str]] = field(default_factory=set)  # (number, service) finished with 3 or 1
    finishes: Tally[int] = field(default_factory=Tally)
    repeat_finishes: int = 0
    unknown_probes: int = 0
    polls: int = 0
    sms_injected: int = 0
    sms_delivered: int = 0
    started_at: float = field(default_factory=time.time)

    async def run(self) -> None:
        """Poll forever (until cancelled), then let nothing dangle."""
        try:
            while True:
                try:
                    await self.poll()
                except Exception:  # a bug here must not stop the simulated platform
                    log.exception("poll failed")
                await asyncio.sleep(self.rng.uniform(self.settings.poll_min_s, self.settings.poll_max_s))
        finally:
            for task in list(self.tasks):
                task.cancel()
            for task in list(self.tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self.settings.exit_finish_status and self.open:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.finish_open(self.settings.exit_finish_status), 10.0)

    async def finish_open(self, status: int) -> None:
        """On shutdown: a platform does not leave activations open forever (SIM_EXIT_FINISH_STATUS, 0 = leave)."""
        await asyncio.gather(*(self._finish(act, status, repeat=False) for act in list(self.open.values())))

    def _record(self, action: str, reply: Reply) -> None:
        result = reply.status or ("NO_ANSWER" if reply.http_status == 0 else f"HTTP_{reply.http_status}")
        self.requests.setdefault(action, Tally())[str(result)] += 1
        REQUESTS.labels(action, str(result)).inc()
        LATENCY.labels(action).observe(reply.elapsed_s)
        self.latency_max[action] = max(self.latency_max.get(action, 0.0), reply.elapsed_s)
        problems = checks.envelope_problems(reply.http_status, reply.body) if not reply.failure else [reply.failure]
        if problems:
            self.findings.violation("bad_answer", f"{action}: " + "; ".join(problems), action=action)

    async def poll(self) -> None:
        self.polls += 1
        reply = await self.client.get_services()
        self._record("GET_SERVICES", reply)
        if reply.status != "SUCCESS":
            return
        problems = checks.get_services_problems(reply.body)
        if problems:
            self.findings.violation("get_services_types", "; ".join(problems[:5]))
        counts = checks.counts(reply.body)
        countries = checks.country_values(reply.body)
        if self.rng.random() < self.settings.unknown_finish_p:
            await self._probe_unknown_finish()
        positive = [(key, count) for key, count in counts.items() if count > 0]
        self.rng.shuffle(positive)
        claimed_this_poll = 0
        for (country, operator, service), count in positive:
            if self.rng.random() >= self.settings.take_p:
                continue
            for _ in range(min(count, self.settings.take_max)):
                if len(self.open) >= self.settings.max_open:
                    return
                got = await self._take(countries.get(country, country), operator, service, count, claimed_this_poll)
                if not got:
                    break
                claimed_this_poll += 1

    def _exclusions(self) -> list[str | int]:
        """Prefixes of numbers seen so far, of several lengths, as strings and as numbers (both occur in practice)."""
        seen = list(self.distinct_numbers)
        if not seen:
            return [str(self.rng.randrange(10_000, 99_999))]
        prefixes: list[str | int] = []
        for number in self.rng.sample(seen, min(3, len(seen))):
            digits = str(number)
            cut = self.rng.randrange(max(2, len(digits) - 4), len(digits) + 1)
            prefixes.append(digits[:cut] if self.rng.random() < 0.5 else int(digits[:cut]))
        return prefixes

    async def _take(self, country: str | int, operator: str, service: str, count: int, claimed: int) -> bool:
        exclude = self._exclusions() if self.rng.random() < self.settings.exclude_p else None
        reply = await self.client.get_number(country, operator, service, round(self.rng.uniform(0.1, 2.0), 2), exclude)
        self._record("GET_NUMBER", reply)
        context = {"country": str(country), "operator": operator, "service": service}
        if reply.status == "NO_NUMBERS":
            if self.settings.count_check and exclude is None and claimed < count:
                self.findings.violation(
                    "count_overreport",
                    f"GET_SERVICES reported {count} for {country}/{operator}/{service}, GET_NUMBER said NO_NUMBERS "
                    f"after {claimed} claim(s) in this poll",
                    **context,
                )
            return False
        if reply.status != "SUCCESS":
            return False
        problems = checks.get_number_problems(reply.body)
        if problems:
            self.findings.violation("get_number_types", "; ".join(problems), **context)
            return False
        number, activation_id = reply.body["number"], reply.body["activationId"]
        for problem in checks.number_problems(number, str(country), self.settings.dial_codes):
            self.findings.violation("number_format", problem, number=number, **context)
        if reply.elapsed_s > self.settings.get_number_limit_s:
            self.findings.violation(
                "slow_get_number", f"GET_NUMBER took {reply.elapsed_s:.2f}s (limit {self.settings.get_number_limit_s}s)"
            )
        if exclude is not None and (prefix := checks.matching_prefix(number, exclude)) is not None:
            self.findings.violation(
                "excluded_prefix", f"number {number} starts with excluded prefix {prefix}", **context
            )
        if any(act.number == number for act in self.open.values()):
            self.findings.violation("duplicate_number", f"number {number} issued while still in an open activation")
        if (number, service) in self.retired:
            self.findings.violation(
                "reoffered_after_finish", f"number {number} issued for {service} after FINISH 3 or 1 for it", **context
            )
        if activation_id in self.open:
            self.findings.violation("duplicate_activation_id", f"activationId {activation_id} issued twice")
        activation = Activation(activation_id, number, str(country), operator, service, time.monotonic())
        self.open[activation_id] = activation
        OPEN.set(len(self.open))
        self.issued += 1
        self.distinct_numbers.add(number)
        self.ledger.open_numbers.add(number)
        self.ledger.finished_numbers.discard(number)
        task = asyncio.create_task(self._lifecycle(activation))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _lifecycle(self, activation: Activation) -> None:
        hold_until = activation.issued_at + self.rng.uniform(self.settings.hold_min_s, self.settings.hold_max_s)
        if self.settings.ingest_url:
            await self._sms_round_trip(activation)
        await asyncio.sleep(max(0.0, hold_until - time.monotonic()))
        statuses, weights = zip(*self.settings.finish_weights, strict=True)
        status = self.rng.choices(statuses, weights)[0]
        await self._finish(activation, status, repeat=False)
        if self.rng.random() < self.settings.repeat_finish_p:
            await asyncio.sleep(self.rng.uniform(0.05, 0.5))
            self.repeat_finishes += 1
            await self._finish(activation, status, repeat=True)

    async def _finish(self, activation: Activation, status: int, repeat: bool) -> None:
        reply: Reply | None = None
        for attempt in range(5):  # the platform resends a finish it got no answer to
            reply = await self.client.finish(activation.activation_id, status)
            self._record("FINISH_ACTIVATION", reply)
            if reply.http_status != 0:
                break
            await asyncio.sleep(min(1.0 * (attempt + 1), 3.0))
        if not repeat:
            self.open.pop(activation.activation_id, None)
            OPEN.set(len(self.open))
            if not any(act.number == activation.number for act in self.open.values()):
                self.ledger.open_numbers.discard(activation.number)
                self.ledger.finished_numbers.add(activation.number)
            self.finishes[status] += 1
        assert reply is not None
        if reply.status == "SUCCESS" and status in (1, 3):
            self.retired.add((activation.number, activation.service))
        if reply.status != "SUCCESS":
            kind = "finish_not_idempotent" if repeat else "finish_failed"
            self.findings.violation(
                kind,
                f"FINISH_ACTIVATION {activation.activation_id} status {status}"
                f"{' (repeat)' if repeat else ''}: {reply.describe()}",
            )

    async def _probe_unknown_finish(self) -> None:
        self.unknown_probes += 1
        activation_id = UNKNOWN_ACTIVATION_BASE + self.rng.randrange(10**17)
        reply = await self.client.finish(activation_id, 3)
        self._record("FINISH_ACTIVATION", reply)
        if reply.status != "ERROR":
            self.findings.violation(
                "finish_unknown_not_error", f"FINISH_ACTIVATION for unknown id {activation_id}: {reply.describe()}"
            )

    async def _sms_round_trip(self, activation: Activation) -> None:
        """Send an SMS to the number through the partner's ingestion and wait for its PUSH_SMS."""
        code = self.rng.randrange(100_000, 999_999)
        text = f"Your code: {code} (grizzly-sim activation {activation.activation_id})"
        payload = {"number": activation.number, "from": "GrizzlySim", "text": text}
        headers = {"Authorization": f"Bearer {self.settings.ingest_token}"}
        try:
            async with self.client.session.post(self.settings.ingest_url, json=payload, headers=headers) as response:
                accepted = 200 <= response.status < 300
                detail = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            accepted, detail = False, type(exc).__name__
        if not accepted:
            self.findings.warning(
                "ingest_rejected", f"ingestion did not accept the SMS for {activation.number}: {detail}"
            )
            return
        self.sms_injected += 1
        activation.sms_text = text

        def delivered() -> bool:
            return any(p.answered == "SUCCESS" and p.text == text for p in self.ledger.for_phone(activation.number))

        if await self.ledger.wait_for(delivered, self.settings.sms_deadline_s):
            self.sms_delivered += 1
        else:
            self.findings.violation(
                "sms_lost",
                f"SMS for {activation.number} (activation {activation.activation_id}) not pushed with SUCCESS "
                f"within {self.settings.sms_deadline_s}s",
            )
        log.debug("sms round trip", extra=log_fields(activation_id=activation.activation_id))

    def report(self) -> dict[str, Any]:
        return {
            "partner_url": self.client.url,
            "uptime_s": round(time.time() - self.started_at, 1),
            "polls": self.polls,
            "requests": {action: dict(tally) for action, tally in self.requests.items()},
            "latency_max_s": {action: round(value, 4) for action, value in self.latency_max.items()},
            "numbers_issued": self.issued,
            "distinct_numbers": len(self.distinct_numbers),
            "open_activations": len(self.open),
            "finishes": {str(status): n for status, n in sorted(self.finishes.items())},
            "repeat_finishes": self.repeat_finishes,
            "unknown_finish_probes": self.unknown_probes,
            "sms_injected": self.sms_injected,
            "sms_delivered": self.sms_delivered,
            "pushes": self.ledger.summary(),
            "violation_count": self.findings.violation_count,
            "finding_totals": dict(self.findings.totals),
            "violations": list(self.findings.violations),
            "warnings": list(self.findings.warnings),
        }
