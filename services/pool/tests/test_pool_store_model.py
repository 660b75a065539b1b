"""Random operation sequences (hypothesis stateful) against a small pure-Python model of the pool: after every
operation the incrementally maintained count terms must equal a brute-force count over all numbers (split and
`any`, with module caps on some devices), the claim indexes must hold exactly the groups that can give a number, and
every claim must succeed exactly when the brute force says something fits (with a tiny walk budget, so claims also
resume across runs)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from grizzly_common.redis_client import make_redis
from grizzly_pool.store import ANY, UNLIMITED, ClaimRefused, NumberRow, PoolStore
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

pytestmark = pytest.mark.single_pass  # the scripts' logic against a model, not how Redis runs

SERVICES = ("tg", "wa")
SPLIT = frozenset({"ru"})
CANCEL_LIMIT = 2
T = TypeVar("T")
UNIVERSE = {  # number -> (country, operator, device)
    79000000001: ("ru", "mts", "d1"),
    79000000002: ("ru", "mts", "d1"),
    79100000001: ("ru", "bee", "d1"),
    79000000003: ("ru", "mts", "d2"),
    79000000004: ("ru", "mts", "d2"),
    79100000002: ("ru", "bee", "d2"),
    77000000001: ("kz", "kcell", "d3"),
    77000000002: ("kz", "kcell", "d3"),
    77700000001: ("kz", "beeline", "d2"),
    79000000005: ("ru", "mts", "d4"),
    79100000003: ("ru", "bee", "d4"),
    79100000004: ("ru", "bee", "d4"),
    77000000003: ("kz", "kcell", "d4"),
}
NUMBERS = sorted(UNIVERSE)
DEVICES = ("d1", "d2", "d3", "d4")
PREFIXES: tuple[list[str], ...] = ([], [], [], ["7900"], ["79000000001"], ["77"], ["791", "770000"], ["7"])
REQUESTS = [("ru", ANY), ("ru", "mts"), ("ru", "bee"), ("kz", ANY), ("kz", "kcell"), ("kz", "beeline")]


@dataclass
class Model:
    present: dict[int, bool] = field(default_factory=dict)  # number -> online
    busy: dict[int, int] = field(default_factory=dict)  # number -> activation id
    dev_online: dict[str, bool] = field(default_factory=dict)
    dev_cap: dict[str, int] = field(default_factory=dict)
    dead: set[str] = field(default_factory=set)  # silent past the timeout: counted as offline
    heard: set[str] = field(default_factory=set)  # sent a heartbeat since the last sweep
    blocked: set[tuple[int, str]] = field(default_factory=set)
    cancels: dict[tuple[int, str], int] = field(default_factory=dict)
    open: dict[int, tuple[int, str]] = field(default_factory=dict)  # activation -> (number, service)
    closed: dict[int, int] = field(default_factory=dict)  # activation -> first status

    def known(self, device: str) -> bool:
        return any(UNIVERSE[n][2] == device for n in self.present)

    def capleft(self, device: str) -> int:
        if not self.dev_online.get(device, True) or device in self.dead:
            return 0
        cap = self.dev_cap.get(device, 0)
        active = sum(1 for n in self.busy if UNIVERSE[n][2] == device)
        return UNLIMITED if cap <= 0 else max(0, cap - active)

    def fits(self, number: int, service: str, prefixes: list[str]) -> bool:
        return (
            self.present.get(number, False)
            and number not in self.busy
            and (number, service) not in self.blocked
            and not any(str(number).startswith(p) for p in prefixes)
        )

    def count(self, country: str, operator: str, service: str, prefixes: list[str] = []) -> int:  # noqa: B006
        """Brute force over every number: what claim can give for this request (and what counts must say)."""
        per_device: dict[str, int] = {}
        for number, (c, o, d) in UNIVERSE.items():
            if c == country and operator in (ANY, o) and self.fits(number, service, prefixes):
                per_device[d] = per_device.get(d, 0) + 1
        return sum(min(free, self.capleft(d)) for d, free in per_device.items())

    def table(self, split: frozenset[str] = SPLIT) -> dict[str, dict[str, dict[str, int]]]:
        out: dict[str, dict[str, dict[str, int]]] = {}
        groups = {(c, o, d) for n, (c, o, d) in UNIVERSE.items() if n in self.present}
        for country, operator, _ in sorted(groups):
            reported = operator if country in split else ANY
            out.setdefault(country, {})[reported] = {s: self.count(country, reported, s) for s in SERVICES}
        return out


class PoolMachine(RuleBasedStateMachine):
    redis_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.redis = make_redis(self.redis_url, max_connections=4)
        self.store = PoolStore(
            self.redis, f"hy{uuid.uuid4().hex[:8]}:", cancel_limit=CANCEL_LIMIT, sample_size=2, claim_budget=4
        )
        self.model = Model()
        self.ids = itertools.count(1)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def members(self, key: str) -> set[str]:
        async def read() -> set[str]:
            return {bytes(m).decode() for m in await self.redis.smembers(key)}  # type: ignore[arg-type]

        return self.run(read())

    def teardown(self) -> None:
        self.run(self.redis.aclose())
        self.loop.close()

    def _device_emptied(self, device: str) -> None:
        if not any(UNIVERSE[n][2] == device for n in self.model.present):
            self.model.dev_online.pop(device, None)
            self.model.dev_cap.pop(device, None)
            self.model.dead.discard(device)

    @initialize()
    def stock(self) -> None:
        self.add(NUMBERS, True)

    @rule(numbers=st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=4, unique=True), online=st.booleans())
    def add(self, numbers: list[int], online: bool) -> None:
        rows = [NumberRow.checked(n, *UNIVERSE[n][:2], UNIVERSE[n][2], str(n), online) for n in numbers]
        report = self.run(self.store.add_numbers(rows, batch=2))
        assert report.added == sum(1 for n in numbers if n not in self.model.present)
        for n in numbers:
            self.model.present.setdefault(n, online)

    @rule(number=st.sampled_from(NUMBERS))
    def remove(self, number: int) -> None:
        report = self.run(self.store.remove_numbers([number]))
        if number in self.model.busy:
            assert report.busy == [number]
        elif number in self.model.present:
            assert report.removed == 1
            del self.model.present[number]
            self._device_emptied(UNIVERSE[number][2])
        else:
            assert report.missing == 1

    @rule(number=st.sampled_from(NUMBERS), online=st.booleans())
    def set_online(self, number: int, online: bool) -> None:
        self.run(self.store.set_online([number], online))
        if number in self.model.present:
            self.model.present[number] = online

    @rule(device=st.sampled_from(DEVICES), online=st.booleans())
    def set_device_online(self, device: str, online: bool) -> None:
        if self.run(self.store.set_device(device, online=online)):
            self.model.dev_online[device] = online

    @rule(device=st.sampled_from(DEVICES), cap=st.integers(0, 3))
    def set_cap(self, device: str, cap: int) -> None:
        if self.run(self.store.set_device(device, cap=cap)):
            self.model.dev_cap[device] = cap

    @rule(devices=st.lists(st.sampled_from(DEVICES), min_size=1, max_size=3, unique=True))
    def heartbeat(self, devices: list[str]) -> None:
        known, revived = self.run(self.store.seen(devices))
        assert known == sum(1 for d in devices if self.model.known(d))
        assert set(revived) == {d for d in devices if d in self.model.dead}
        for device in devices:
            if self.model.known(device):
                self.model.dead.discard(device)
                self.model.heard.add(device)

    @rule()
    def sweep_silent_devices(self) -> None:
        """timeout 0: every device heard from since the last sweep is silent now"""
        dead = self.run(self.store.sweep_dead(0.0, limit=len(DEVICES)))
        assert set(dead) == {d for d in self.model.heard if self.model.known(d)}
        self.model.dead |= set(dead)
        self.model.heard.clear()

    @rule(request=st.sampled_from(REQUESTS), service=st.sampled_from(SERVICES), prefixes=st.sampled_from(PREFIXES))
    def claim(self, request: tuple[str, str], service: str, prefixes: list[str]) -> None:
        country, operator = request
        expected = self.model.count(country, operator, service, prefixes)
        got = self.run(
            self.store.claim(upstream="grizzly", country=country, operator=operator, service=service, sum="1",
                             currency=None, exclude_prefixes=prefixes, request_json="{}")
        )  # fmt: skip
        assert (got is not None) == (expected > 0), (request, service, prefixes, expected)
        if got is not None:
            assert self.model.fits(got.number, service, prefixes)
            assert UNIVERSE[got.number][0] == country and operator in (ANY, UNIVERSE[got.number][1])
            assert self.model.capleft(UNIVERSE[got.number][2]) > 0
            self.model.busy[got.number] = got.activation_id
            self.model.open[got.activation_id] = (got.number, service)

    @rule(request=st.sampled_from(REQUESTS), service=st.sampled_from(SERVICES), early=st.booleans())
    def claim_and_release(self, request: tuple[str, str], service: str, early: bool) -> None:
        """api-edge gives up on a claim: released before it runs (refused) or after (undone); the model is
        unchanged either way."""
        country, operator = request
        expected = self.model.count(country, operator, service, [])
        claim_id = uuid.uuid4().hex
        if early:
            assert self.run(self.store.release_claims([claim_id])) == 0
        try:
            got = self.run(
                self.store.claim(upstream="grizzly", country=country, operator=operator, service=service, sum="1",
                                 currency=None, exclude_prefixes=[], request_json="{}", claim_id=claim_id,
                                 deadline_ms=int(time.time() * 1000) + 60_000)
            )  # fmt: skip
        except ClaimRefused:
            assert early
            return
        assert not early and (got is not None) == (expected > 0)
        assert self.run(self.store.release_claims([claim_id])) == (got is not None)

    @rule(data=st.data(), status=st.sampled_from([1, 3, 4, 4, 4, 5]))
    def finish(self, data: st.DataObject, status: int) -> None:
        if not self.model.open:
            return
        self._finish(data.draw(st.sampled_from(sorted(self.model.open))), status)

    @rule(request=st.sampled_from(REQUESTS), service=st.sampled_from(SERVICES), status=st.sampled_from([4, 4, 1, 3]))
    def claim_and_finish(self, request: tuple[str, str], service: str, status: int) -> None:
        before = set(self.model.open)
        self.claim(request, service, [])
        for activation in set(self.model.open) - before:
            self._finish(activation, status)

    def _finish(self, activation: int, status: int) -> None:
        done = self.run(self.store.finish(upstream="grizzly", activation_id=activation, status=status))
        assert done.outcome == "finished"
        number, service = self.model.open.pop(activation)
        del self.model.busy[number]
        self.model.closed[activation] = status
        if status in (1, 3):
            self.model.blocked.add((number, service))
        elif status == 4:
            self.model.cancels[(number, service)] = self.model.cancels.get((number, service), 0) + 1
            if self.model.cancels[(number, service)] >= CANCEL_LIMIT:
                self.model.blocked.add((number, service))
        self._device_emptied(UNIVERSE[number][2])

    @rule(data=st.data(), status=st.sampled_from([1, 3, 4, 5]), upstream=st.sampled_from(["grizzly", "other"]))
    def finish_again(self, data: st.DataObject, status: int, upstream: str) -> None:
        if not self.model.closed:
            return
        activation = data.draw(st.sampled_from(sorted(self.model.closed)))
        done = self.run(self.store.finish(upstream=upstream, activation_id=activation, status=status))
        if upstream == "other":
            assert done.outcome == "unknown"
        else:
            assert (done.outcome, done.first_status) == ("repeat", self.model.closed[activation])

    @rule()
    def migrate(self) -> None:
        """What a version without the count terms left (no terms, rows, per-device groups, totals, indexes) is
        rebuilt from the inventory."""

        k = self.store.keys
        derived = [k.fixed(name) for name in ("co", "totals", "layout")]
        for country, operator, device in UNIVERSE.values():
            derived += [k.cs(country, operator), k.ca(country), k.dg(device), k.cg(country), k.og(country, operator)]

        async def wipe() -> None:
            await self.redis.delete(*derived)

        self.run(wipe())
        assert self.run(self.store.migrate())

    @invariant()
    def counts_equal_brute_force(self) -> None:
        snapshot = self.run(self.store.snapshot(SERVICES))
        for split in (SPLIT, frozenset(), frozenset({"ru", "kz"})):
            assert snapshot.table(split) == self.model.table(split), split

    @invariant()
    def free_total_is_the_free_numbers(self) -> None:
        stats = self.run(self.store.stats())
        assert stats["free_online"] == sum(1 for n, on in self.model.present.items() if on and n not in self.model.busy)
        assert stats["active"] == len(self.model.busy)

    @invariant()
    def claim_indexes_hold_exactly_the_groups_that_can_give_a_number(self) -> None:
        free: dict[str, set[str]] = {}
        for number, (country, operator, device) in UNIVERSE.items():
            if self.model.present.get(number) and number not in self.model.busy and self.model.capleft(device) > 0:
                group = f"{country}|{operator}|{device}"
                free.setdefault(f"cg:{country}", set()).add(group)
                free.setdefault(f"og:{country}|{operator}", set()).add(group)
        for country, operator in {(c, o) for c, o, _ in UNIVERSE.values()}:
            for index in (f"cg:{country}", f"og:{country}|{operator}"):
                members = self.members(self.store.prefix + index)
                assert members == free.get(index, set()), index


def test_counters_match_a_brute_force_model_after_every_operation(redis_url: str) -> None:
    PoolMachine.redis_url = redis_url
    runner = PoolMachine.TestCase
    runner.settings = settings(
        max_examples=100, stateful_step_count=50, deadline=None, suppress_health_check=list(HealthCheck)
    )
    runner().runTest()
