"""grizzly-conformance: run the platform's published protocol test list (protocol.md section 11) against a partner URL.

    grizzly-conformance --url http://127.0.0.1:8080/ --key KEY [--json report.json]
        [--push-listen 127.0.0.1:8090 --sms-ingest-url http://127.0.0.1:8083/v1/sms --ingest-token TOKEN]
        [--finish-status 5] [--destructive]

Every item ends PASS, FAIL, WARN (worth a look, not a failure) or SKIP (could not be run; never counted as a pass).
Exit code 1 when any item FAILs, 0 otherwise. Every activation the run opens is finished before it exits
(--finish-status, default 5: see docs/conformance.md for what each status does to the operator's pool).
--destructive also checks that a number finished with status 3 or 1 is never offered again for that service: it
retires two numbers for one service each, for good.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from rich.console import Console
from rich.table import Table

from grizzly_sim import checks
from grizzly_sim.partner import PartnerClient, Reply
from grizzly_sim.platform import UNKNOWN_ACTIVATION_BASE
from grizzly_sim.pushes import Findings, PushLedger

PASS, FAIL, WARN, SKIP = "PASS", "FAIL", "WARN", "SKIP"
Target = tuple[str, str, str]  # (country, operator, service) as reported by GET_SERVICES


@dataclass
class Item:
    id: str
    title: str
    result: str = SKIP
    detail: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Options:
    url: str
    key: str = field(repr=False)
    json_path: Path | None = None
    push_listen: tuple[str, int] | None = None
    ingest_url: str = ""
    ingest_token: str = field(default="", repr=False)
    finish_status: int = 5
    destructive: bool = False  # run the retire.* items, which block two numbers for one service for good
    extra: int = 5  # count accuracy fires count + extra concurrent GET_NUMBER
    max_count: int = 50  # count accuracy drains one (country, operator, service): never one bigger than this
    target: Target | None = None
    dial_codes: dict[str, str] = field(default_factory=lambda: dict(checks.KNOWN_DIAL_CODES))
    issue_limit_s: float = 3.0
    push_wait_s: float = 30.0
    retry_wait_s: float = 30.0
    dup_window_s: float = 12.0
    huge_body_bytes: int = 2 * 1024 * 1024
    concurrency: tuple[int, ...] = (30, 200)
    timeout_s: float = 15.0


@dataclass
class Opened:
    activation_id: int
    number: int
    target: Target
    finished: bool = False


class Run:
    """One conformance run: the items, in order, and every activation it opened (to finish them all)."""

    def __init__(self, options: Options, client: PartnerClient, ledger: PushLedger | None) -> None:
        self.o = options
        self.client = client
        self.ledger = ledger
        self.items: list[Item] = []
        self.opened: dict[int, Opened] = {}
        self.countries: dict[str, str | int] = {}
        self.issue_times: list[float] = []
        self.rng = random.Random()

    # ---- helpers -------------------------------------------------------------------------------------------------

    async def item(self, item_id: str, title: str, body: Callable[[Item], Awaitable[None]]) -> Item:
        item = Item(item_id, title)
        started = time.perf_counter()
        try:
            await body(item)
        except Exception as exc:  # noqa: BLE001 - one broken item must not stop the run
            item.result, item.detail = FAIL, f"the check itself failed: {type(exc).__name__}: {exc}"
        item.seconds = round(time.perf_counter() - started, 2)
        self.items.append(item)
        return item

    async def counts(self) -> tuple[Reply, dict[Target, int]]:
        reply = await self.client.get_services()
        self.countries.update(checks.country_values(reply.body))
        return reply, checks.counts(reply.body)

    def pick(self, counts: dict[Target, int], smallest: bool = False, at_most: int | None = None) -> Target | None:
        candidates = [(c, t) for t, c in counts.items() if c > 0 and (at_most is None or c <= at_most)]
        if self.o.target is not None:
            candidates = [(c, t) for c, t in candidates if t == self.o.target]
        if not candidates:
            return None
        candidates.sort(key=lambda ct: (ct[0], ct[1]), reverse=not smallest)
        return candidates[0][1]

    async def get_number(self, target: Target, exclude: list[Any] | None = None, timed: bool = False) -> Reply:
        country, operator, service = target
        reply = await self.client.get_number(self.countries.get(country, country), operator, service, 1.0, exclude)
        if reply.status == "SUCCESS" and not checks.get_number_problems(reply.body):
            activation_id, number = reply.body["activationId"], reply.body["number"]
            self.opened.setdefault(activation_id, Opened(activation_id, number, target))
            if self.ledger is not None:
                self.ledger.open_numbers.add(number)
            if timed:
                self.issue_times.append(reply.elapsed_s)
        return reply

    async def finish(self, activation_id: int, status: int | None = None) -> Reply:
        reply = await self.client.finish(activation_id, self.o.finish_status if status is None else status)
        opened = self.opened.get(activation_id)
        if opened is not None and reply.status == "SUCCESS":
            opened.finished = True
            if self.ledger is not None:
                self.ledger.open_numbers.discard(opened.number)
        return reply

    async def finish_all(self) -> list[str]:
        problems = []
        for opened in list(self.opened.values()):
            if not opened.finished:
                reply = await self.finish(opened.activation_id)
                if reply.status != "SUCCESS":
                    problems.append(f"{opened.activation_id}: {reply.describe()[:120]}")
        return problems

    # ---- the run -------------------------------------------------------------------------------------------------

    async def run(self) -> list[Item]:
        try:
            services = await self.item(
                "services.types", "GET_SERVICES answers SUCCESS with typed counts", self.t_services
            )
            if services.result == FAIL:
                return self.items
            await self.bad_input()
            await self.item("finish.unknown", "FINISH_ACTIVATION of an unknown activation -> ERROR", self.t_unknown)
            await self.item(
                "get_number.types", "GET_NUMBER: number/activationId JSON numbers, number has the country code",
                self.t_number_types,
            )  # fmt: skip
            await self.item(
                "finish.idempotent", "a repeated FINISH_ACTIVATION answers SUCCESS again", self.t_idempotent
            )
            await self.item(
                "services.count_accuracy", "N = count + extra concurrent GET_NUMBER give exactly count numbers",
                self.t_count_accuracy,
            )  # fmt: skip
            await self.item(
                "exclusion.prefix", "exceptionPhoneSet prefixes (strings and numbers) are never issued",
                self.t_exclusion,
            )  # fmt: skip
            for n in self.o.concurrency:
                await self.item(
                    f"concurrency.{n}", f"{n} parallel identical GET_NUMBER: no duplicate numbers",
                    functools.partial(self.t_concurrency, n=n),
                )  # fmt: skip
            await self.pushes()
            await self.retire()
            await self.item(
                "get_number.latency", f"a number is issued within {self.o.issue_limit_s:g} s", self.t_latency
            )
        finally:
            await self.item("cleanup", "every activation opened by this run is finished", self.t_cleanup)
        return self.items

    async def t_services(self, item: Item) -> None:
        reply, counts = await self.counts()
        problems = checks.envelope_problems(reply.http_status, reply.body) if not reply.failure else [reply.failure]
        problems += [] if problems else checks.get_services_problems(reply.body)
        if problems:
            item.result, item.detail = FAIL, "; ".join(problems[:5])
            return
        positive = sum(1 for c in counts.values() if c > 0)
        item.result = PASS if positive else WARN
        item.detail = f"{len(counts)} (country, operator, service) entries, {positive} with numbers available"
        if not positive:
            item.detail += ": add numbers to the pool, or most items below are skipped"

    async def bad_input(self) -> None:
        async def probe(item: Item, reply: Reply) -> None:
            problems = (
                checks.error_envelope_problems(reply.http_status, reply.body) if not reply.failure else [reply.failure]
            )
            item.result = FAIL if problems else PASS
            item.detail = "; ".join(problems) if problems else f"ERROR: {reply.body.get('error')!r}"

        async def wrong_key(item: Item) -> None:
            wrong = "wrong-" + self.o.key[::-1]
            before, counts_before = await self.counts()
            target = self.pick(counts_before)
            replies = [await self.client.action("GET_SERVICES", key=wrong)]
            if target is not None:
                country, operator, service = target
                replies.append(
                    await self.client.action(
                        "GET_NUMBER", key=wrong, country=self.countries.get(country, country), operator=operator,
                        service=service, sum=1.0,
                    )
                )  # fmt: skip
            problems = []
            for reply in replies:
                problems += (
                    checks.error_envelope_problems(reply.http_status, reply.body)
                    if not reply.failure
                    else [reply.failure]
                )
                ok = reply.status == "SUCCESS" and isinstance(reply.body, dict) and "activationId" in reply.body
                if ok and target is not None:  # only GET_NUMBER, sent when there is a target, opens one
                    self.opened.setdefault(
                        reply.body["activationId"], Opened(reply.body["activationId"], reply.body["number"], target)
                    )
            _, counts_after = await self.counts()
            if target is not None and counts_after.get(target) != counts_before.get(target):
                problems.append(
                    f"count of {'/'.join(target)} changed from {counts_before.get(target)} to "
                    f"{counts_after.get(target)} after a wrong-key GET_NUMBER"
                )
            item.result = FAIL if problems else PASS
            item.detail = "; ".join(problems) if problems else "GET_SERVICES and GET_NUMBER refused, counts unchanged"

        async def string_numeric(item: Item) -> None:
            _, counts = await self.counts()
            target = self.pick(counts)
            problems = []
            if target is not None:
                country, operator, service = target
                reply = await self.client.action(
                    "GET_NUMBER", country=self.countries.get(country, country), operator=operator, service=service,
                    sum="1.00",
                )  # fmt: skip
                if reply.status == "SUCCESS" and isinstance(reply.body, dict) and "activationId" in reply.body:
                    self.opened.setdefault(
                        reply.body["activationId"], Opened(reply.body["activationId"], reply.body["number"], target)
                    )
                problems += [f'GET_NUMBER sum "1.00": {p}' for p in _error_problems(reply)]
            issued = await self.get_number(target) if target is not None else None
            if issued is not None and issued.status == "SUCCESS" and isinstance(issued.body, dict):
                activation_id = issued.body["activationId"]
                reply = await self.client.action("FINISH_ACTIVATION", activationId=str(activation_id), status=3)
                problems += [f'FINISH activationId "{activation_id}": {p}' for p in _error_problems(reply)]
                reply = await self.client.action("FINISH_ACTIVATION", activationId=activation_id, status="3")
                problems += [f'FINISH status "3": {p}' for p in _error_problems(reply)]
                await self.finish(int(activation_id))
            else:
                reply = await self.client.action(
                    "FINISH_ACTIVATION", activationId=str(UNKNOWN_ACTIVATION_BASE + 1), status=3
                )
                problems += [f"FINISH activationId as a string: {p}" for p in _error_problems(reply)]
                item.detail = "(no number available: probed with an unknown activation only) "
            item.result = FAIL if problems else PASS
            item.detail += "; ".join(problems) if problems else "numeric fields sent as strings are refused"

        async def simple(item: Item, data: bytes | None, method: str = "POST") -> None:
            await probe(item, await self.client.raw(data, method))

        probes: list[tuple[str, str, Callable[[Item], Awaitable[None]]]] = [
            ("bad.wrong_key", "wrong key -> ERROR, nothing changes", wrong_key),
            ("bad.numeric_as_string", "a numeric field sent as a string -> ERROR", string_numeric),
            (
                "bad.unknown_action", "unknown action -> ERROR",
                lambda i: simple(i, orjson.dumps({"action": "GET_NOTHING_CONFORMANCE", "key": self.o.key})),
            ),
            ("bad.malformed_json", "malformed JSON -> ERROR", lambda i: simple(i, b'{"action": "GET_SERVICES", ')),
            ("bad.empty_body", "empty body -> ERROR", lambda i: simple(i, b"")),
            ("bad.not_an_object", "a JSON array instead of an object -> ERROR", lambda i: simple(i, b"[1, 2, 3]")),
            (
                "bad.huge_body", f"a {self.o.huge_body_bytes // 1024} KiB body -> ERROR (not a dropped connection)",
                lambda i: simple(
                    i, b'{"action":"GET_SERVICES","key":' + orjson.dumps(self.o.key) + b',"pad":"'
                    + b"x" * self.o.huge_body_bytes + b'"}'
                ),
            ),
            ("bad.get_request", "a GET request -> HTTP 200 ERROR", lambda i: simple(i, None, "GET")),
        ]  # fmt: skip
        for item_id, title, body in probes:
            await self.item(item_id, title, body)

    async def t_unknown(self, item: Item) -> None:
        activation_id = UNKNOWN_ACTIVATION_BASE + self.rng.randrange(10**17)
        problems = _error_problems(await self.client.finish(activation_id, self.o.finish_status))
        item.result = FAIL if problems else PASS
        item.detail = "; ".join(problems) if problems else f"activationId {activation_id} -> ERROR"

    async def t_number_types(self, item: Item) -> None:
        _, counts = await self.counts()
        target = self.pick(counts)
        if target is None:
            item.detail = "no (country, operator, service) with numbers available"
            return
        reply = await self.get_number(target, timed=True)
        if reply.status != "SUCCESS":
            item.result, item.detail = FAIL, f"{'/'.join(target)} reported {counts[target]}: {reply.describe()[:200]}"
            return
        problems = checks.get_number_problems(reply.body)
        if not problems:
            problems = checks.number_problems(reply.body["number"], target[0], self.o.dial_codes)
        item.result = FAIL if problems else PASS
        code = self.o.dial_codes.get(target[0].lower())
        item.detail = "; ".join(problems) if problems else (
            f"number {reply.body['number']} activationId {reply.body['activationId']}"
            + (f" (country {target[0]} = +{code})" if code else f" (dial code of country {target[0]!r} unknown: "
               "only the length was checked; pass --country-code)")
        )  # fmt: skip

    async def t_idempotent(self, item: Item) -> None:
        opened = [o for o in self.opened.values() if not o.finished]
        if not opened:
            _, counts = await self.counts()
            target = self.pick(counts)
            if target is None:
                item.detail = "no number available to open an activation"
                return
            await self.get_number(target, timed=True)
            opened = [o for o in self.opened.values() if not o.finished]
            if not opened:
                item.result, item.detail = FAIL, "GET_NUMBER did not issue a number although the count was positive"
                return
        activation = opened[0]
        replies = [await self.finish(activation.activation_id) for _ in range(3)]
        problems = [f"finish #{n + 1}: {r.describe()[:150]}" for n, r in enumerate(replies) if r.status != "SUCCESS"]
        item.result = FAIL if problems else PASS
        item.detail = "; ".join(problems) if problems else (
            f"activation {activation.activation_id} finished 3 times with status {self.o.finish_status}: "
            "SUCCESS each time"
        )  # fmt: skip

    async def t_count_accuracy(self, item: Item) -> None:
        _, counts = await self.counts()
        target = self.pick(counts, smallest=True, at_most=self.o.max_count)
        if target is None:
            item.detail = f"no (country, operator, service) with a count between 1 and {self.o.max_count}"
            return
        count = counts[target]
        n = count + self.o.extra
        replies = await asyncio.gather(*(self.get_number(target) for _ in range(n)))
        numbers = [r.body["number"] for r in replies if r.status == "SUCCESS" and isinstance(r.body, dict)]
        others = [r.describe()[:100] for r in replies if r.status not in ("SUCCESS", "NO_NUMBERS")]
        problems = []
        if len(numbers) != len(set(numbers)):
            problems.append(f"duplicate numbers issued: {len(numbers) - len(set(numbers))}")
        if len(set(numbers)) != min(n, count):
            problems.append(f"{len(set(numbers))} distinct numbers for a reported count of {count} ({n} requests)")
        if others:
            problems.append(f"{len(others)} answers neither SUCCESS nor NO_NUMBERS, e.g. {others[0]}")
        _, after = await self.counts()
        if after.get(target, 0) != 0:
            problems.append(f"with every number of {'/'.join(target)} busy, GET_SERVICES still reports {after[target]}")
        await self.finish_all()
        item.result = FAIL if problems else PASS
        item.detail = "; ".join(problems) if problems else (
            f"{'/'.join(target)}: count {count}, {n} concurrent requests -> {len(numbers)} distinct numbers, "
            f"{n - len(numbers)} NO_NUMBERS"
        )  # fmt: skip

    async def t_exclusion(self, item: Item) -> None:
        _, counts = await self.counts()
        target = self.pick(counts)
        if target is None:
            item.detail = "no (country, operator, service) with numbers available"
            return
        seen = sorted({o.number for o in self.opened.values() if o.target[:2] == target[:2]})
        if not seen:
            reply = await self.get_number(target, timed=True)
            if reply.status != "SUCCESS":
                item.result, item.detail = FAIL, f"no number issued for {'/'.join(target)}: {reply.describe()[:150]}"
                return
            seen = [reply.body["number"]]
        await self.finish_all()
        sample = seen[:10]
        digits = [str(n) for n in sample]
        rounds: list[tuple[str, list[str | int]]] = [
            ("whole numbers as strings", list(digits)),
            ("whole numbers as JSON numbers", list(sample)),
            ("prefixes 1-3 digits shorter, strings", [d[: len(d) - 1 - i % 3] for i, d in enumerate(digits)]),
            ("prefixes 2-4 digits shorter, numbers", [int(d[: len(d) - 2 - i % 3]) for i, d in enumerate(digits)]),
            ("mixed lengths and types", [d[: len(d) // 2 + 2] if i % 2 else int(d[:-5]) for i, d in enumerate(digits)]),
        ]
        problems, tallies = [], []
        for name, prefixes in rounds:
            issued = 0
            for _ in range(min(counts[target], 10)):
                reply = await self.get_number(target, exclude=prefixes, timed=True)
                if reply.status != "SUCCESS" or checks.get_number_problems(reply.body):
                    if reply.status not in ("NO_NUMBERS", "SUCCESS"):
                        problems.append(f"{name}: {reply.describe()[:120]}")
                    break
                issued += 1
                if (prefix := checks.matching_prefix(reply.body["number"], prefixes)) is not None:
                    problems.append(f"{name}: number {reply.body['number']} starts with excluded {prefix}")
            tallies.append(f"{name}: {issued} issued")
            await self.finish_all()
        item.result = FAIL if problems else PASS
        item.detail = (
            "; ".join(problems) if problems else f"{'/'.join(target)} excluding {sample}: " + ", ".join(tallies)
        )

    async def t_concurrency(self, item: Item, n: int) -> None:
        _, counts = await self.counts()
        target = self.pick(counts)
        if target is None:
            item.detail = "no (country, operator, service) with numbers available"
            return
        replies = await asyncio.gather(*(self.get_number(target) for _ in range(n)))
        ok = [r.body for r in replies if r.status == "SUCCESS" and isinstance(r.body, dict)]
        numbers = [b.get("number") for b in ok]
        ids = [b.get("activationId") for b in ok]
        failed = [r.describe()[:100] for r in replies if r.http_status != 200]
        errors = [r.describe()[:100] for r in replies if r.http_status == 200 and r.status == "ERROR"]
        await self.finish_all()
        problems = []
        if len(numbers) != len(set(numbers)):
            problems.append(f"{len(numbers) - len(set(numbers))} duplicate number(s) among {len(numbers)} issued")
        if len(ids) != len(set(ids)):
            problems.append(f"{len(ids) - len(set(ids))} duplicate activationId(s)")
        if len(numbers) > counts[target]:
            problems.append(f"{len(numbers)} numbers issued for a reported count of {counts[target]}")
        if failed:
            problems.append(f"{len(failed)} requests without an HTTP 200 answer, e.g. {failed[0]}")
        summary = f"{'/'.join(target)} (count {counts[target]}): {len(numbers)} distinct numbers, " + (
            f"{sum(1 for r in replies if r.status == 'NO_NUMBERS')} NO_NUMBERS"
        )
        if problems:
            item.result, item.detail = FAIL, "; ".join(problems)
        elif errors:
            item.result, item.detail = WARN, f"{summary}; {len(errors)} ERROR answers, e.g. {errors[0]}"
        else:
            item.result, item.detail = PASS, summary

    async def pushes(self) -> None:
        ids = [
            ("push.types", "PUSH_SMS: smsId/phone JSON numbers, key, User-Agent; the issued number as phone"),
            ("push.retry", "a push answered with ERROR is retried with the same smsId"),
            ("push.no_resend_after_success", "no push is sent again after SUCCESS"),
        ]
        if self.ledger is None or not self.o.ingest_url:
            missing = "--push-listen" if self.ledger is None else "--sms-ingest-url and --ingest-token"
            for item_id, title in ids:
                self.items.append(Item(item_id, title, SKIP, f"needs {missing}"))
            return
        ledger = self.ledger
        _, counts = await self.counts()
        target = self.pick(counts)
        reply = await self.get_number(target, timed=True) if target is not None else None
        if reply is None or reply.status != "SUCCESS":
            for item_id, title in ids:
                self.items.append(Item(item_id, title, SKIP, "no number could be issued to receive an SMS"))
            return
        number = reply.body["number"]
        tag = self.rng.randrange(10**8)

        async def inject(text: str) -> str:
            payload = {"number": number, "from": "Conformance", "text": text}
            headers = {"Authorization": f"Bearer {self.o.ingest_token}"}
            async with self.client.session.post(self.o.ingest_url, json=payload, headers=headers) as response:
                if not 200 <= response.status < 300:
                    return f"ingestion answered HTTP {response.status}: {(await response.read())[:120]!r}"
            return ""

        def pushes_of(text: str) -> list[Any]:
            return [p for p in ledger.for_phone(number) if p.text == text]

        async def types(item: Item) -> None:
            text = f"conformance {tag} first: code 1234"
            started = time.monotonic()
            if error := await inject(text):
                item.result, item.detail = FAIL, error
                return
            if not await ledger.wait_for(
                lambda: any(p.answered == "SUCCESS" for p in pushes_of(text)), self.o.push_wait_s
            ):
                item.result, item.detail = FAIL, f"no PUSH_SMS for {number} within {self.o.push_wait_s:g} s"
                return
            push = pushes_of(text)[0]
            push_violations = [v for v in ledger.findings.violations if v["kind"].startswith("push_")]
            problems = [f"{v['kind']}: {v['detail']}" for v in push_violations]
            if push.phone != number or push.action != "PUSH_SMS":
                problems.append(f"{push.action} phone {push.phone}, expected PUSH_SMS for {number}")
            item.result = FAIL if problems else PASS
            item.detail = "; ".join(problems) if problems else (
                f"smsId {push.message_id} phone {push.phone} from {push.phone_from!r}, pushed "
                f"{push.at - started:.1f} s after ingestion{' (gzip)' if push.gzip else ''}"
            )  # fmt: skip

        async def retry(item: Item) -> None:
            text = f"conformance {tag} second: code 5678"
            ledger.fail_first_for.add(number)
            if error := await inject(text):
                item.result, item.detail = FAIL, error
                return
            delivered = await ledger.wait_for(
                lambda: any(p.answered == "SUCCESS" for p in pushes_of(text)), self.o.push_wait_s + self.o.retry_wait_s
            )
            attempts = pushes_of(text)
            ledger.fail_first_for.discard(number)
            if not attempts:
                item.result, item.detail = FAIL, f"no PUSH_SMS for {number} within {self.o.push_wait_s:g} s"
            elif not delivered:
                item.result = FAIL
                item.detail = f"answered ERROR once; no retry within {self.o.retry_wait_s:g} s"
            elif len({p.message_id for p in attempts}) != 1:
                item.result = FAIL
                item.detail = f"the retry carried another smsId: {[p.message_id for p in attempts]}"
            else:
                item.result = PASS
                item.detail = f"retried {attempts[-1].at - attempts[0].at:.1f} s after the ERROR, same smsId"

        async def no_resend(item: Item) -> None:
            await asyncio.sleep(self.o.dup_window_s)
            dups = [v for v in ledger.findings.violations if v["kind"] == "push_duplicate_after_success"]
            item.result = FAIL if dups else PASS
            item.detail = "; ".join(v["detail"] for v in dups[:3]) if dups else (
                f"watched {self.o.dup_window_s:g} s after the last SUCCESS: no push sent twice"
            )  # fmt: skip

        await self.item(*ids[0], types)
        await self.item(*ids[1], retry)
        await self.item(*ids[2], no_resend)
        await self.finish_all()

    async def retire(self) -> None:
        ids = [
            ("retire.sold", 3, "FINISH 3 (sold): that number is never offered for that service again"),
            ("retire.do_not_offer", 1, "FINISH 1 (do not offer): that number is never offered for that service again"),
        ]
        for item_id, status, title in ids:
            if not self.o.destructive:
                self.items.append(Item(item_id, title, SKIP, "needs --destructive (blocks a number for one service)"))
            else:
                await self.item(item_id, title, functools.partial(self.t_retire, status=status))

    async def t_retire(self, item: Item, status: int) -> None:
        """Retire one number for one service, drain that service: the number must not come back; meanwhile a
        sibling service of the same country and operator must still get it, or the check proves nothing."""
        _, before = await self.counts()
        siblings = {
            t: [s for s in before if s[:2] == t[:2] and s != t and before[s] > 0] for t, c in before.items() if c > 0
        }
        target = self.pick({t: c for t, c in before.items() if siblings.get(t)}, smallest=True)
        if target is None:
            item.detail = "no (country, operator) offering two services with numbers available"
            return
        sibling = max(siblings[target], key=lambda s: before[s])
        name = "/".join(target)
        reply = await self.get_number(target, timed=True)
        if reply.status != "SUCCESS" or checks.get_number_problems(reply.body):
            item.result, item.detail = FAIL, f"{name} reported {before[target]}: {reply.describe()[:150]}"
            return
        number = reply.body["number"]
        finished = await self.finish(reply.body["activationId"], status)
        if finished.status != "SUCCESS":
            item.result, item.detail = FAIL, f"FINISH_ACTIVATION status {status}: {finished.describe()[:150]}"
            return
        problems = []
        _, after = await self.counts()
        if after.get(target) != before[target] - 1:
            problems.append(
                f"GET_SERVICES reports {after.get(target)} for {name} after FINISH {status}, "
                f"expected {before[target] - 1} (was {before[target]})"
            )
        # hold every number still offered for the service, each one a chance to hand the retired number back
        last: Reply | None = None
        asked = 0
        for _ in range(min(after.get(target, 0), self.o.max_count) + self.o.extra):
            last = await self.get_number(target)
            asked += 1
            if last.status != "SUCCESS" or checks.get_number_problems(last.body):
                break
            if last.body["number"] == number:
                problems.append(f"{number} offered again for {name} after FINISH {status} (GET_NUMBER #{asked})")
                break
        drained = last is not None and last.status == "NO_NUMBERS"
        if last is not None and last.status not in ("SUCCESS", "NO_NUMBERS"):
            problems.append(f"GET_NUMBER for {name}: {last.describe()[:120]}")
        if drained:
            _, held = await self.counts()
            if held.get(target, 0) != 0:
                problems.append(f"with {name} drained, GET_SERVICES still reports {held[target]}")
        # the sibling service: with the target's numbers held the retired one is usually the only free one left
        still_offered = not drained and after.get(sibling) == before[sibling]
        if drained:
            for _ in range(min(after.get(sibling, 0), self.o.max_count) + 1):
                other = await self.get_number(sibling)
                if other.status != "SUCCESS" or checks.get_number_problems(other.body):
                    break
                if other.body["number"] == number:
                    still_offered = True
                    break
        await self.finish_all()
        if problems:
            item.result, item.detail = FAIL, "; ".join(problems)
        elif not still_offered:
            item.result = WARN
            item.detail = (
                f"{number} is no longer offered for {'/'.join(sibling)} either: nothing the platform fines, but the "
                f"number is lost to every service and the check proves little"
            )
        else:
            item.result = PASS
            item.detail = (
                f"{number} finished with {status} on {name}: {asked} GET_NUMBER"
                f"{' until NO_NUMBERS' if drained else ''} never returned it, count {before[target]} -> "
                f"{after.get(target)}; still issued for {'/'.join(sibling)}"
            )

    async def t_latency(self, item: Item) -> None:
        if not self.issue_times:
            item.detail = "no number was issued"
            return
        worst = max(self.issue_times)
        item.result = FAIL if worst > self.o.issue_limit_s else PASS
        item.detail = f"{len(self.issue_times)} sequential GET_NUMBER: slowest {worst * 1000:.0f} ms"

    async def t_cleanup(self, item: Item) -> None:
        problems = await self.finish_all()
        item.result = FAIL if problems else PASS
        item.detail = "; ".join(problems[:3]) if problems else (
            f"{len(self.opened)} activation(s) opened, all finished with status {self.o.finish_status}"
        )  # fmt: skip


def _error_problems(reply: Reply) -> list[str]:
    return [reply.failure] if reply.failure else checks.error_envelope_problems(reply.http_status, reply.body)


# ---- push listener, report, command line ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def push_listener(host: str, port: int, ledger: PushLedger) -> Any:
    """The platform's push endpoint on host:port (any path, POST), answering through the ledger."""

    async def handle(request: web.Request) -> web.Response:
        status, body = ledger.handle(await request.read(), request.headers)
        return web.Response(body=body, status=status, content_type="application/json")

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield
    finally:
        await runner.cleanup()


async def run(options: Options) -> dict[str, Any]:
    started = time.time()
    ledger = PushLedger(key=options.key, findings=Findings()) if options.push_listen else None
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(PartnerClient(options.url, options.key, options.timeout_s))
        if options.push_listen and ledger is not None:
            await stack.enter_async_context(push_listener(*options.push_listen, ledger))
        items = await Run(options, client, ledger).run()
    tally = {r: sum(1 for i in items if i.result == r) for r in (PASS, FAIL, WARN, SKIP)}
    return {
        "url": options.url,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "passed": tally[FAIL] == 0,
        "summary": tally,
        "finish_status": options.finish_status,
        "items": [asdict(i) for i in items],
    }


def print_report(report: dict[str, Any], console: Console) -> None:
    styles = {PASS: "green", FAIL: "bold red", WARN: "yellow", SKIP: "dim"}
    table = Table(title=f"Protocol conformance: {report['url']}", show_lines=False)
    table.add_column("item")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for item in report["items"]:
        table.add_row(item["id"], f"[{styles[item['result']]}]{item['result']}[/]", item["detail"])
    console.print(table)
    s = report["summary"]
    verdict = "[green]PASSED[/]" if report["passed"] else "[bold red]FAILED[/]"
    console.print(
        f"{verdict}: {s[PASS]} passed, {s[FAIL]} failed, {s[WARN]} warnings, {s[SKIP]} skipped in {report['seconds']} s"
    )


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, e.g. 127.0.0.1:8090")
    return host or "127.0.0.1", int(port)


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="grizzly-conformance", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('grizzly-simulator')}")
    parser.add_argument("--url", required=True, help="the partner URL the platform POSTs to")
    parser.add_argument("--key", required=True, help="the protocol key (never printed)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    parser.add_argument("--push-listen", type=_listen, help="HOST:PORT to receive PUSH_SMS on (any path)")
    parser.add_argument("--sms-ingest-url", default="", help="the partner's SMS ingestion URL, e.g. .../v1/sms")
    parser.add_argument("--ingest-token", default="", help="Bearer token of the SMS ingestion")
    parser.add_argument(
        "--finish-status",
        type=int,
        choices=(1, 3, 4, 5),
        default=5,
        help="status used to finish every activation the run opens (default 5, see the docs)",
    )
    parser.add_argument(
        "--destructive",
        action="store_true",
        help="also check FINISH 3 and 1: retires two numbers for one service each, for good",
    )
    parser.add_argument("--extra", type=int, default=5, help="count accuracy fires count + EXTRA requests")
    parser.add_argument(
        "--max-count",
        type=int,
        default=50,
        help="count accuracy only drains a (country, operator, service) with at most this count",
    )
    parser.add_argument("--target", help="COUNTRY/OPERATOR/SERVICE to run every number test on")
    parser.add_argument(
        "--country-code",
        action="append",
        default=[],
        metavar="COUNTRY=DIGITS",
        help="dial code of a country value, e.g. 0=7 or ru=7 (repeatable)",
    )
    parser.add_argument("--issue-limit-s", type=float, default=3.0)
    parser.add_argument("--push-wait-s", type=float, default=30.0, help="how long to wait for a push")
    parser.add_argument("--retry-wait-s", type=float, default=30.0, help="how long to wait for a retried push")
    parser.add_argument("--dup-window-s", type=float, default=12.0, help="how long to watch for duplicate pushes")
    parser.add_argument("--concurrency", default="30,200", help="parallel GET_NUMBER bursts (comma list)")
    parser.add_argument("--timeout-s", type=float, default=15.0, help="per request")
    args = parser.parse_args(argv)  # fmt: skip
    target = None
    if args.target:
        parts = args.target.split("/")
        if len(parts) != 3:
            parser.error("--target must be COUNTRY/OPERATOR/SERVICE")
        target = (parts[0], parts[1], parts[2])
    if bool(args.sms_ingest_url) != bool(args.ingest_token):
        parser.error("--sms-ingest-url and --ingest-token go together")
    try:
        dial_codes = checks.parse_dial_codes(args.country_code)
        concurrency = tuple(int(n) for n in args.concurrency.split(",") if n.strip())
    except ValueError as exc:
        parser.error(str(exc))
    return Options(
        url=args.url, key=args.key, json_path=args.json, push_listen=args.push_listen, ingest_url=args.sms_ingest_url,
        ingest_token=args.ingest_token, finish_status=args.finish_status, destructive=args.destructive,
        extra=args.extra, max_count=args.max_count,
        target=target, dial_codes=dial_codes, issue_limit_s=args.issue_limit_s, push_wait_s=args.push_wait_s,
        retry_wait_s=args.retry_wait_s, dup_window_s=args.dup_window_s, concurrency=concurrency,
        timeout_s=args.timeout_s,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    report = asyncio.run(run(options))
    if options.json_path is not None:
        options.json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print_report(report, Console())
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()
