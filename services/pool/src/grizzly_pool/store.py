"""The Redis-backed number pool: typed wrappers around the Lua scripts, and the counting rule.

Key names and what each key holds: grizzly_pool.keys (the one key builder, for Python and Lua).

Counting rule (exact at the moment of the answer):
  capleft(d) = 0 if device d is offline, else cap(d) - active(d) (unbounded when cap is 0)
  avail(c,o,d,s) = free(c,o,d) - bf(c,o,d,s)
  split country:  count(c,o,s)   = sum over d of min(avail(c,o,d,s), capleft(d))
  `any` country:  count(c,any,s) = sum over d of min(sum over o of avail(c,o,d,s), capleft(d))
Every script that changes a device keeps each row's sum up to date as count terms (lua/pool.lua), so a count is
read in O(rows x services), never per device or number. claim.lua applies the same constraints one number at a
time, so N claims after a count C yield min(N, C) numbers; it answers at once when the row's count is 0, finds
candidate groups in the claim indexes (a random sample first), and walks in runs of bounded cost.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final, NotRequired, TypedDict, Unpack, cast

import hiredis
import orjson
import redis.asyncio as aioredis
from grizzly_common import audit
from grizzly_common.coalesce import Coalescer
from grizzly_common.messages import is_digits
from grizzly_common.pool_api import LookupResult, ResolveResult
from grizzly_common.redis_client import NEXT_ID_FUNCTION, load_lua
from redis.exceptions import NoScriptError, ResponseError

from grizzly_pool import metrics
from grizzly_pool.keys import LUA as KEYS_LUA
from grizzly_pool.keys import PoolKeys

UNLIMITED: Final = 1 << 62
ANY: Final = "any"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.:@/-]{0,63}$")
_SLOT = re.compile(r"^[A-Za-z0-9_.:/-]{1,32}$")
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$")
GROUP_SAMPLE: Final = 8  # candidate groups claim.lua samples before it walks the whole index
# Redis calls one claim.lua run may spend looking before the store runs it again (300 took up to 1.07 ms at 1M)
CLAIM_BUDGET: Final = 200
# items per script run, so that no run holds Redis for more than about half a millisecond (bench: scale section)
RELEASE_BATCH: Final = 4  # claims released (each frees its number and rewrites its device's count terms)
SCRIPT_BATCH: Final = 16  # numbers removed, set online or offline, SMS reported
ADD_BATCH: Final = 8  # rows added (with half the banks capped 16 reached 1.01 ms at p99, 12 a max of 1.03 ms)
ADD_PIPELINE: Final = 16  # add_numbers runs sent in one round trip (the import's Python cost was per run)
NUMBERS_PER_DEVICE: Final = 64  # a guess for paging the inventory by devices (SIM banks hold 32-512)
MIGRATE_PAGE: Final = 64  # groups per run of the upgrade migration
DEVICE_BATCH: Final = 2  # devices heard from or swept (a device coming back or going is recounted whole)
KEPT_CONNECTIONS: Final = 8  # Redis connections the round trips of pipelined calls keep (api-edge: 8 batches at once)
PIPELINED: Final = frozenset({"claim", "finish"})  # scripts whose concurrent calls go to Redis in one pipeline
_HOLE: Final = f"hole-{uuid.uuid4().hex}"  # stands for a value only the Lua script knows (never in a request)


ScriptCall = tuple[str, Sequence[str], Sequence[str | int | bytes]]  # script name, keys, args
SIM_FIELDS: Final = ("issued", "sold", "refused", "cancelled", "refunded", "sms", "last_sms_ms", "streak")
EARN_METRICS: Final = ("issued", "sold", "refused", "cancelled", "refunded", "amount")  # amount in millionths


HISTORY_MAX: Final = 50  # activations GET /admin/numbers/{number} shows (and counts per service)
HISTORY_WALK_MAX: Final = 1000  # the most act: hashes one history walk reads (a number filter may skip many)
ACT_PAGE: Final = 256  # activation ids read per pipelined round trip when listing
ACT_SCAN_MAX: Final = 8192  # activation ids one listing call reads at most (then it answers where to go on)
ACT_GAP: Final = 4096  # this many missing ids in a row end a listing (everything below expired)
# act:{id} fields of an activation row; prev (the number's previous activation) last
ACT_FIELDS: Final = ("number", "service", "country", "operator", "upstream", "status", "created_ms", "finished_ms",
                     "sum", "currency", "prev")  # fmt: skip
_STATUS_METRIC: Final = {"3": "sold", "4": "cancelled", "1": "refused"}


def _activation_row(activation_id: int, values: Sequence[bytes | str | None]) -> dict[str, Any] | None:
    """An activation as the admin API lists it, from HMGET ACT_FIELDS (None when it does not exist)."""
    number, service, country, operator, upstream, status, created, finished, amount, currency, _ = values
    if number is None or status is None:
        return None
    created_ms = int(created or 0)
    return {
        "id": activation_id, "number": int(number), "service": _text(service or b""),
        "country": _text(country or b""), "operator": _text(operator or b""), "upstream": _text(upstream or b""),
        "status": _text(status), "created_ms": created_ms, "updated_ms": int(finished or 0) or created_ms,
        "sum": _text(amount or b""), "currency": _text(currency) if currency else None,
    }  # fmt: skip


class InventoryError(ValueError):
    """A value that cannot go into the inventory; the message says which and why."""


def check_number(value: str | int) -> int:
    text = str(value).strip().lstrip("+")
    if not is_digits(text) or not 6 <= len(text) <= 15 or text[0] == "0":
        raise InventoryError(f"number {str(value)[:32]!r} must be 6-15 digits with the country code, no leading 0")
    return int(text)


def check_name(what: str, value: str) -> str:
    text = value.strip().lower()
    if not _NAME.match(text):
        raise InventoryError(f"{what} {value[:64]!r} must be 1-64 of a-z 0-9 _ . : @ / -")
    return text


def check_device(value: str) -> str:
    text = value.strip()
    if not _DEVICE.match(text):
        raise InventoryError(f"device {value[:64]!r} must be 1-128 of A-Z a-z 0-9 _ . : @ / -")
    return text


def check_slot(value: str) -> str:
    text = value.strip()
    if not _SLOT.match(text):
        raise InventoryError(f"slot {value[:64]!r} must be 1-32 of A-Z a-z 0-9 _ . : / -")
    return text


@dataclass(frozen=True)
class NumberRow:
    number: int
    country: str
    operator: str
    device: str
    slot: str
    online: bool = True
    flashcall: bool = False
    voice: bool = False

    @classmethod
    def checked(
        cls,
        number: str | int,
        country: str,
        operator: str,
        device: str,
        slot: str,
        online: bool = True,
        flashcall: bool = False,
        voice: bool = False,
    ) -> NumberRow:
        operator_name = check_name("operator", operator)
        if operator_name == ANY:
            raise InventoryError("operator 'any' is reserved: give the SIM's real operator")
        return cls(
            check_number(number),
            check_name("country", country),
            operator_name,
            check_device(device),
            check_slot(slot),
            online,
            flashcall,
            voice,
        )


@dataclass
class AddReport:
    added: int = 0
    existing: int = 0
    conflicts: list[int] = field(default_factory=list)  # (device, slot) already held by another number


@dataclass
class RemoveReport:
    removed: int = 0
    missing: int = 0
    busy: list[int] = field(default_factory=list)  # in an open activation: not removed


@dataclass(frozen=True)
class Claimed:
    number: int
    activation_id: int
    flashcall: bool
    voice: bool


class ClaimRequestFields(TypedDict):
    """What a claim asks for (PoolStore.claim's keyword arguments)."""

    upstream: str
    country: str
    operator: str
    service: str
    sum: str  # decimal as text
    currency: int | None
    exclude_prefixes: Sequence[str]
    request_json: str  # the platform's request without its key (the audit trail)
    claim_id: NotRequired[str]  # api-edge's claim id ("" = an untracked claim)
    deadline_ms: NotRequired[int]  # when api-edge stops waiting (0 = none)


class ClaimRefused(Exception):
    """The claim's id was released already (api-edge gave up on it) or its deadline has passed."""


@dataclass(frozen=True)
class Finished:
    outcome: str  # "unknown" | "finished" | "repeat" | "released" (never given to the platform: nothing changes)
    first_status: int = 0  # for a repeat: the status that closed the activation
    country: str = ""  # when the earnings changed: the activation's country and currency ("" = none)
    currency: str = ""
    earned_micros: int = 0  # what this finish added to the earnings (a refund of a sold activation: negative)


@dataclass(frozen=True)
class Snapshot:
    """Every row's counts at one instant (counts.lua), by the counting rule in the module doc."""

    services: tuple[str, ...]
    split: dict[tuple[str, str], tuple[int, ...]]  # (country, operator) -> count per service
    any: dict[str, tuple[int, ...]]  # country -> count per service, all operators together

    def table(self, split_countries: frozenset[str] | set[str]) -> dict[str, dict[str, dict[str, int]]]:
        """country -> operator (or "any") -> service -> count: a country is split by operator or `any`, never both."""
        zero = (0,) * len(self.services)
        table: dict[str, dict[str, dict[str, int]]] = {}
        for country, operator in sorted(self.split):
            if country in split_countries:
                row, counts = operator, self.split[(country, operator)]
            else:
                row, counts = ANY, self.any.get(country, zero)
            table.setdefault(country, {})[row] = dict(zip(self.services, counts, strict=True))
        return table


def _counts(terms: Sequence[int]) -> tuple[int, ...]:
    """count(service) = T - D(service) (lua/pool.lua); terms = T, then D per service"""
    return tuple(max(0, int(terms[0]) - int(d)) for d in terms[1:])


def amount_text(micros: int) -> str:
    """millionths as a plain decimal string ("0.35", "-12", "0")"""
    text = format(Decimal(micros).scaleb(-6).normalize(), "f")
    return "0" if text in ("-0", "0") else text


def summarize_earnings(rows: Sequence[dict[str, Any]], by: Sequence[str]) -> list[dict[str, Any]]:
    """store.earnings() rows summed over everything but `by` (a subset of day, upstream, service, country); the
    currency is always kept apart. Adds `amount` as text and `sell_through` (sold / issued)."""
    sums: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        key = (*(row[name] for name in by), row["currency"])
        total = sums.setdefault(
            key, {**{name: row[name] for name in by}, "currency": row["currency"], **dict.fromkeys(EARN_METRICS, 0)}
        )
        for metric in EARN_METRICS:
            total[metric] += row[metric]
    out = []
    for key in sorted(sums):
        total = sums[key]
        total["sell_through"] = round(total["sold"] / total["issued"], 4) if total["issued"] > 0 else 0.0
        total["amount"] = amount_text(total["amount"])
        out.append(total)
    return out


EARN_DIMENSIONS: Final = ("day", "upstream", "service", "country")
MAX_EARN_DAYS: Final = 800


def earning_days(since: str) -> list[str]:
    """ "7d" (or "7") -> the last 7 UTC days, oldest first, today included."""
    text = since.strip().lower().removesuffix("d")
    if not is_digits(text) or not 1 <= int(text) <= MAX_EARN_DAYS:
        raise ValueError(f"since must be 1d-{MAX_EARN_DAYS}d")
    today = time.time()
    return [time.strftime("%Y-%m-%d", time.gmtime(today - 86400 * back)) for back in range(int(text) - 1, -1, -1)]


def earning_dimensions(by: str) -> list[str]:
    names = [name.strip() for name in by.split(",") if name.strip()]
    unknown = [name for name in names if name not in EARN_DIMENSIONS]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"by must name some of {', '.join(EARN_DIMENSIONS)}, each once")
    return names


def today() -> str:
    """Today's date (UTC), as earnings keys name their day."""
    return time.strftime("%Y-%m-%d", time.gmtime())


def _micros(amount: str) -> int:
    """A decimal sum as an integer number of millionths (earnings never add floats)."""
    try:
        value = Decimal(amount)
    except InvalidOperation:
        return 0
    if not value.is_finite() or abs(value) > 10**12:
        return 0
    return int((value * 1_000_000).to_integral_value())


def _chunks(values: Iterable[int], size: int) -> Iterator[list[int]]:
    chunk: list[int] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _flag(value: bytes | str | None) -> bool:
    return value in (b"1", "1")


def _text(value: bytes | str) -> str:
    """A Redis reply as text (this client does not decode replies; redis-py's types allow both)."""
    return value.decode() if isinstance(value, bytes) else value


def _as_exception(error: BaseException) -> Exception:
    return error if isinstance(error, Exception) else RuntimeError(f"claim interrupted: {type(error).__name__}")


def _event_parts(event: str, **fields: Any) -> list[bytes]:
    """An audit event exactly as grizzly_common.audit.record writes it, cut where a field is _HOLE: a Lua script
    joins the parts around the values it decides (the number, the first status) and appends the event itself."""
    text = orjson.dumps({"ts_ms": int(time.time() * 1000), "event": event, **fields}, default=str)
    return text.split(orjson.dumps(_HOLE))


class PoolStore:
    """All pool state changes go through these methods (and the Lua scripts behind them)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str = "gp:",
        *,
        cancel_limit: int = 4,
        sample_size: int = 16,
        audit_prefix: str = "",
        retention_s: int = audit.DEFAULT_RETENTION_S,  # the service passes AUDIT_RETENTION_DAYS (Settings)
        hold_s: float = 300.0,  # an api-edge claim not confirmed within this is released (POOL_CLAIM_HOLD_S)
        claim_budget: int = CLAIM_BUDGET,
        suspect_streak: int = 5,  # activations in a row ending without an SMS that make a SIM suspect
        suspect_offline: bool = False,  # take a SIM offline when it becomes suspect
        earnings_days: int = 800,  # how long a day's earnings are kept
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.cancel_limit = cancel_limit
        self.sample_size = sample_size
        self.audit_prefix = audit_prefix
        self.retention_s = retention_s
        self.hold_ms = max(1, round(hold_s * 1000))
        self.claim_budget = claim_budget
        self.suspect_streak = suspect_streak
        self.suspect_offline = suspect_offline
        self.earnings_ttl_s = earnings_days * 86400
        self._earn_days: set[str] = set()  # days whose earnings key has its TTL (set once per process)
        self.keys = PoolKeys(prefix)
        self._audit_key_prefix = audit.activation_key(0, audit_prefix)[:-1]  # + the activation id
        # every script that changes a free set gets the key functions and the free-set rules of pool.lua
        pool = (KEYS_LUA, load_lua("grizzly_pool", "lua/pool.lua"))
        preludes = {"claim": (NEXT_ID_FUNCTION, *pool), "counts": (KEYS_LUA,)}
        names = ("add_numbers", "remove_numbers", "set_online", "set_device", "claim", "finish", "release", "counts",
                 "migrate", "seen", "sms")  # fmt: skip
        self._scripts = {
            name: redis.register_script(load_lua("grizzly_pool", f"lua/{name}.lua", *preludes.get(name, pool)))
            for name in names
        }
        self._timers = {name: metrics.SCRIPT_SECONDS.labels(name) for name in self._scripts}
        # the hot path's scripts: concurrent calls share one Redis round trip (see _run_pipeline)
        self._pipelined: Coalescer[ScriptCall, Any] = Coalescer(self._run_pipeline, max_batch=256, parallel=2)
        # redis-py's BlockingConnectionPool is not first-come first-served: a waiter that is woken up but loses the
        # connection to a newer task goes back to the end of the queue, so with more callers than connections some
        # wait for seconds (and time out). This FIFO gate lets at most as many calls through as there are
        # connections, so the pool itself never has to queue anyone (asyncio.Semaphore serves waiters in order).
        connections = min(getattr(redis.connection_pool, "max_connections", 1 << 16), 1 << 16)
        # _pipeline keeps a few connections between its round trips (taking one from redis-py's pool and giving it
        # back cost more than a small batch's own work); they count as in use, so the gate lets fewer calls through
        self._keep = KEPT_CONNECTIONS if connections >= 4 * KEPT_CONNECTIONS else 0
        self._kept: list[Any] = []
        self._gate = asyncio.Semaphore(connections - self._keep)

    async def earn_key(self, day: str) -> str:
        """The earnings key of a day (UTC), with its TTL set once per process."""
        name = self.keys.earn(day)
        if day not in self._earn_days:
            async with self._gate:
                await self.redis.hsetnx(name, "_", "1")  # EXPIRE needs the key to exist
                await self.redis.expire(name, self.earnings_ttl_s)
            self._earn_days.add(day)
        return name

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[str | int | bytes]) -> Any:
        started = time.perf_counter()
        try:
            if name in PIPELINED:
                result = await self._pipelined((name, keys, args))
                if isinstance(result, Exception):
                    raise result
                return result
            async with self._gate:
                return await self._scripts[name](keys=list(keys), args=list(args))
        finally:
            self._timers[name].observe(time.perf_counter() - started)

    async def migrate(self, wait_s: float = 120.0) -> bool:
        """Build the count terms, dg:, co, totals and claim indexes from the inventory once, for a pool written by a
        version without them (migrate.lua; True when this process did it). Runs in pages at start, before the pool
        serves; another pool process starting at the same time waits for it."""
        k = self.keys
        if await self.redis.get(k.fixed("layout")) == b"2":
            # a set of every number, kept by versions before (about 60 B a number; the inventory is paged by device
            # now): UNLINK frees it off Redis's main thread
            await self.redis.unlink(k.fixed("numbers"))
            return False
        if not await self.redis.set(k.fixed("migrating"), "1", nx=True, px=round(wait_s * 1000)):
            deadline = time.monotonic() + wait_s
            while await self.redis.get(k.fixed("layout")) != b"2":
                if time.monotonic() > deadline:
                    raise TimeoutError("another pool process has been migrating the counts for too long")
                await asyncio.sleep(0.2)
            return False
        await self.redis.unlink(k.fixed("co"), k.fixed("totals"))
        for mode in ("reset", "groups"):
            async for page in self._hscan_pages(k.fixed("groups")):
                items = list(page.items())
                for start in range(0, len(items), MIGRATE_PAGE):  # HSCAN's count is a hint, not a bound
                    chunk = items[start : start + MIGRATE_PAGE]
                    args = [g for g, _ in chunk] if mode == "reset" else [v for pair in chunk for v in pair]
                    await self._run("migrate", [], [self.prefix, mode, *args])
        cursor = 0
        while True:
            cursor, devices = await self.redis.sscan(k.fixed("devices"), cursor, count=DEVICE_BATCH)
            # SSCAN's count is a hint (a page held 6 devices): each run still takes DEVICE_BATCH at most
            for start in range(0, len(devices), DEVICE_BATCH):
                await self._run("migrate", [], [self.prefix, "devices", *devices[start : start + DEVICE_BATCH]])
            if cursor == 0:
                break
        await self.redis.unlink(k.fixed("numbers"))
        await self.redis.set(k.fixed("layout"), "2")
        await self.redis.delete(k.fixed("migrating"))
        return True

    async def _hscan_pages(self, name: str) -> AsyncIterator[dict[bytes | str, bytes | str]]:
        cursor = 0
        while True:
            cursor, page = await self.redis.hscan(name, cursor, count=MIGRATE_PAGE)
            if page:
                yield cast(dict[bytes | str, bytes | str], page)
            if cursor == 0:
                return

    async def _run_pipeline(self, calls: list[ScriptCall]) -> list[Any]:
        """Many script calls in one round trip (a non-transactional pipeline of EVALSHAs): each script is still one
        atomic run, only the network trip is shared. Each call gets its own reply or error; a call answered NOSCRIPT
        did not run, so it is sent again once the script is loaded (e.g. after SCRIPT FLUSH or a Redis restart)."""
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            commands = []
            for i in todo:
                name, keys, args = calls[i]
                commands.append(("EVALSHA", self._scripts[name].sha, len(keys), *keys, *args))
            async with self._gate:
                answers = await self._pipeline(commands)
            missing = []
            for i, answer in zip(todo, answers, strict=True):
                if attempt == 0 and isinstance(answer, NoScriptError):
                    missing.append(i)
                else:
                    replies[i] = answer
            if not missing:
                break
            for name in sorted({calls[i][0] for i in missing}):
                await self.redis.script_load(self._scripts[name].script)
            todo = missing
        return replies

    async def _pipeline(self, commands: list[tuple[str | int | bytes, ...]]) -> list[Any]:
        """Commands in one round trip on one connection, each reply (or error) in order. Packed by hiredis: redis-py's
        own packer, in Python, took a third of the pool's CPU on the hot path. Never retried on a broken connection
        (redis-py's pipeline is): a claim may have run, so every caller gets the error and its claim is released."""
        pool = self.redis.connection_pool
        if self._kept:
            connection = self._kept.pop()
        else:
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        try:
            if connection.is_connected and await connection.can_read():
                # an idle connection has nothing to read unless Redis closed it (a restart, CLIENT KILL, a timeout):
                # it reconnects (send_packed_command) instead of failing this batch (redis-py's own check is off while
                # it listens for maintenance notifications); a connection reset is only seen when sending
                await connection.disconnect()
            # hiredis's stub types the argument as a 1-tuple; it takes a command of any length
            packed = b"".join(hiredis.pack_command(command) for command in commands)  # type: ignore[arg-type]
            # one deadline for all the replies, not a timer per reply (redis-py's per-read timeout was a tenth of the
            # pool's CPU on the hot path); longer for a long pipeline (a script run may take up to about 1 ms)
            deadline_s = (connection.socket_timeout or 5.0) + len(commands) * 0.001
            async with asyncio.timeout(deadline_s):
                await connection.send_packed_command(packed)
                answers: list[Any] = []
                for _ in commands:
                    try:
                        answers.append(await connection.read_response(timeout=math.inf))
                    except ResponseError as exc:  # this command's error; the connection is still in step
                        answers.append(exc)
        except BaseException:
            try:
                await connection.disconnect(nowait=True)  # replies may be left unread: never reuse it
            finally:
                await pool.release(connection)
            raise
        if len(self._kept) < self._keep:
            self._kept.append(connection)
        else:
            await pool.release(connection)
        return answers

    # inventory -------------------------------------------------------------------------------------------------
    async def add_numbers(self, rows: Iterable[NumberRow], batch: int = ADD_BATCH) -> AddReport:
        """Add numbers in runs of add_numbers.lua of at most ADD_BATCH rows (so no run holds Redis long), up to
        ADD_PIPELINE runs sent in one round trip (each still atomic on its own); existing numbers are left
        untouched, so a run that failed can simply be sent again."""
        report = AddReport()
        keys = [self.keys.fixed("groups"), self.keys.fixed("devices")]
        size = min(batch, ADD_BATCH)
        calls: list[ScriptCall] = []
        chunk: list[str | int] = [self.prefix]

        async def flush() -> None:
            replies = await self._run_pipeline(calls)
            calls.clear()
            for result in replies:
                if isinstance(result, Exception):
                    raise result
                report.added += int(result[0])
                report.existing += int(result[1])
                report.conflicts.extend(int(n) for n in result[2:])

        for row in rows:
            chunk.extend(
                (row.number, row.country, row.operator, row.device, row.slot,
                 int(row.online), int(row.flashcall), int(row.voice))
            )  # fmt: skip
            if len(chunk) == 1 + 8 * size:
                calls.append(("add_numbers", keys, chunk))
                chunk = [self.prefix]
                if len(calls) == ADD_PIPELINE:
                    await flush()
        if len(chunk) > 1:
            calls.append(("add_numbers", keys, chunk))
        if calls:
            await flush()
        return report

    async def remove_numbers(self, numbers: Iterable[int]) -> RemoveReport:
        k = self.keys
        keys = [k.fixed("groups"), k.fixed("devices")]
        report = RemoveReport()
        for chunk in _chunks(numbers, SCRIPT_BATCH):
            result = await self._run("remove_numbers", keys, [self.prefix, *chunk])
            report.removed += int(result[0])
            report.missing += int(result[1])
            report.busy.extend(int(n) for n in result[2:])
        return report

    async def set_online(self, numbers: Iterable[int], online: bool) -> tuple[int, int]:
        """(changed, missing)"""
        changed = missing = 0
        for chunk in _chunks(numbers, SCRIPT_BATCH):
            result = await self._run("set_online", [], [self.prefix, int(online), *chunk])
            changed += int(result[0])
            missing += int(result[1])
        return changed, missing

    async def set_device(self, device: str, *, online: bool | None = None, cap: int | None = None) -> bool:
        """Device-wide online flag and module cap (0 = no limit). False when the device holds no number."""
        if cap is not None and cap < 0:
            raise InventoryError("cap must be >= 0 (0 = no limit)")
        args = [self.prefix, device, "" if online is None else int(online), "" if cap is None else cap]
        return bool(await self._run("set_device", [self.keys.fixed("devices")], args))

    async def seen(self, devices: Sequence[str]) -> tuple[int, list[str]]:
        """These devices sent a heartbeat now: (how many hold numbers, the ones that were dead and count again)."""
        known, revived = 0, []
        keys = [self.keys.fixed("devices"), self.keys.fixed("seen")]
        for start in range(0, len(devices), DEVICE_BATCH):
            result = await self._run("seen", keys, [self.prefix, "seen", *devices[start : start + DEVICE_BATCH]])
            known += int(result[0])
            revived += [_text(d) for d in result[1:]]
        return known, revived

    async def sweep_dead(self, timeout_s: float, limit: int = DEVICE_BATCH) -> list[str]:
        """Mark dead (no room, so neither counted nor claimed) up to `limit` devices silent for timeout_s."""
        keys = [self.keys.fixed("devices"), self.keys.fixed("seen")]
        result = await self._run("seen", keys, [self.prefix, "sweep", round(timeout_s * 1000), limit])
        return [_text(d) for d in result]

    # counts ----------------------------------------------------------------------------------------------------
    async def snapshot(self, services: Sequence[str]) -> Snapshot:
        raw = await self._run("counts", [self.keys.fixed("co")], [self.prefix, *services])
        cut = raw.index(b"")
        split = {(_text(row[0]), _text(row[1])): _counts(row[2:]) for row in raw[:cut]}
        any_rows = {_text(row[0]): _counts(row[1:]) for row in raw[cut + 1 :]}
        return Snapshot(tuple(services), split, any_rows)

    # activations -----------------------------------------------------------------------------------------------
    async def claim(self, **request: Unpack[ClaimRequestFields]) -> Claimed | None:
        """One atomic check-and-claim (claim.lua, which also appends the "issued" audit event); None when nothing
        fits (NO_NUMBERS). With a claim_id (api-edge) the claim is refused (ClaimRefused) once that id was released
        or past deadline_ms, and is held until confirm(), finish() or a release."""
        day = today()
        call = self.claim_call(request, earn_key=await self.earn_key(day), day=day)
        return await self._claim_walk(call, await self._run(*call))

    def claim_call(self, request: ClaimRequestFields, *, earn_key: str, day: str) -> ScriptCall:
        """claim.lua's first run of a claim (see claim()); earn_key: earn_key(day), awaited once by the caller."""
        upstream, country, operator = request["upstream"], request["country"], request["operator"]
        service, sum, currency = request["service"], request["sum"], request["currency"]
        exclude_prefixes, request_json = request["exclude_prefixes"], request["request_json"]
        claim_id, deadline_ms = request.get("claim_id", ""), request.get("deadline_ms", 0)
        k = self.keys
        if operator == ANY:
            index, terms = k.cg(country), k.ca(country)
        else:
            index, terms = k.og(country, operator), k.cs(country, operator)
        head, tail = _event_parts(
            "issued", upstream=upstream, number=_HOLE, country=country, operator=operator, service=service,
            sum=sum, currency=currency, request=request_json,
        )  # fmt: skip
        args: list[str | int | bytes] = [
            self.prefix, service, upstream, sum, "" if currency is None else currency, request_json,
            int(time.time() * 1000), self.sample_size, GROUP_SAMPLE,
            self._audit_key_prefix, head, tail, claim_id, deadline_ms, self.hold_ms,
            len(exclude_prefixes), *exclude_prefixes, random.getrandbits(31), self.claim_budget, _micros(sum),
            day, "", "", "0",  # the walk: a first run
        ]  # fmt: skip
        keys = (k.fixed("actid"), index, terms, k.fixed("held"), k.claim(claim_id), earn_key)
        return ("claim", keys, args)

    @staticmethod
    def _claim_outcome(call: ScriptCall, result: Any) -> Claimed | None | list[Any]:
        """What a claim.lua run answered: the claim, None (nothing fits), or where the next run resumes (a run that
        spent its budget). Raises ClaimRefused."""
        if not result:
            return None
        if len(result) == 1:
            raise ClaimRefused(str(call[2][12]))  # the claim id (claim_call's arguments)
        if result[0] == b"more":
            return list(result[1:])
        return Claimed(int(result[0]), int(result[1]), _flag(result[2]), _flag(result[3]))

    async def _claim_walk(self, call: ScriptCall, result: Any) -> Claimed | None:
        """Each claim.lua run is atomic and bounded: runs follow one another until a number is claimed or nothing
        fits."""
        _, keys, first = call
        while isinstance(outcome := self._claim_outcome(call, result), list):
            result = await self._run("claim", keys, [*first[:-3], *outcome])
        return outcome

    async def confirm(self, activation_ids: Sequence[int]) -> int:
        """api-edge gave these activations to the platform: no longer held. Returns how many were still held (the
        others were finished or, if the confirmation came later than the hold, released)."""
        if not activation_ids:
            return 0
        async with self._gate:
            return int(await self.redis.zrem(self.keys.fixed("held"), *activation_ids))

    async def release_claims(self, claim_ids: Sequence[str]) -> int:
        """api-edge did not answer the platform with these claims: end their activations and free the numbers
        (idempotent; a claim id released before its claim ran makes that claim refused). Returns how many
        activations were released."""
        released = 0
        for start in range(0, len(claim_ids), RELEASE_BATCH):
            released += await self._release("claims", "edge", 0, claim_ids[start : start + RELEASE_BATCH])
        return released

    async def release_due(self, limit: int = RELEASE_BATCH) -> int:
        """Release up to `limit` held claims whose hold has run out (api-edge never confirmed nor released them)."""
        return await self._release("due", "unconfirmed", limit, ())

    async def _release(self, mode: str, reason: str, limit: int, claim_ids: Sequence[str]) -> int:
        head, tail = _event_parts("released", reason=reason, number=_HOLE)
        args: list[str | int | bytes] = [
            self.prefix, mode, self.retention_s, 2 * self.hold_ms, self._audit_key_prefix, limit, head, tail,
            *claim_ids,
        ]  # fmt: skip
        return int(await self._run("release", [self.keys.fixed("held")], args))

    async def finish(self, *, upstream: str, activation_id: int, status: int) -> Finished:
        """First status wins (finish.lua, which also appends the "finish" / "finish_repeat" audit event)."""
        call = self.finish_call(upstream, activation_id, status, await self.earn_key(today()))
        return self.finished(await self._run(*call))

    def finish_call(self, upstream: str, activation_id: int, status: int, earn_key: str) -> ScriptCall:
        """finish.lua's run (see finish()); earn_key: earn_key(today), awaited once by the caller."""
        args: list[str | int | bytes] = [
            self.prefix, upstream, status, self.cancel_limit, int(time.time() * 1000), activation_id,
            self._audit_key_prefix + str(activation_id), self.retention_s,
            *_event_parts(_HOLE, upstream=upstream, status=status, first=_HOLE),  # event name and first: Lua's
            self.suspect_streak, int(self.suspect_offline),
            *_event_parts("sim_suspect", number=_HOLE, streak=self.suspect_streak, offline=_HOLE),
        ]  # fmt: skip
        keys = (self.keys.act(activation_id), self.keys.fixed("held"), earn_key, self.keys.fixed("suspects"))
        return ("finish", keys, args)

    @staticmethod
    def finished(result: Any) -> Finished:
        """finish.lua's answer."""
        outcome = result[0].decode()
        if outcome in ("unknown", "released"):
            return Finished(outcome)
        if len(result) == 2:
            return Finished(outcome, int(result[1]))
        return Finished(outcome, int(result[1]), _text(result[2]), _text(result[3]), int(result[4]))

    async def run_batch(
        self, claims: Sequence[ScriptCall], finishes: Sequence[ScriptCall]
    ) -> tuple[list[Claimed | None | Exception], list[Finished | Exception]]:
        """Prepared claims and finishes (claim_call, finish_call) in one Redis round trip, each still its own atomic
        script with its own outcome (an exception of its own, or the pipeline's for all). api-edge's batches arrive
        coalesced already: no per-item task, future or second coalescing here (they were most of the pool's CPU)."""
        started = time.perf_counter()
        try:
            replies: list[Any] = await self._run_pipeline([*claims, *finishes])
        except Exception as exc:  # noqa: BLE001 - a broken connection: every item of the batch gets it
            replies = [exc] * (len(claims) + len(finishes))
        finally:
            elapsed = time.perf_counter() - started
            for name, count in (("claim", len(claims)), ("finish", len(finishes))):
                for _ in range(count):
                    self._timers[name].observe(elapsed)
        claimed: list[Claimed | None | Exception] = []
        walks: dict[int, Awaitable[Claimed | None]] = {}  # claims whose first run spent its budget: walked on
        for i, (call, reply) in enumerate(zip(claims, replies, strict=False)):
            try:
                outcome = reply if isinstance(reply, Exception) else self._claim_outcome(call, reply)
            except Exception as exc:  # noqa: BLE001 - ClaimRefused, or an answer it cannot read: this claim's own
                outcome = exc
            if isinstance(outcome, list):
                walks[i] = self._claim_walk(call, reply)
                outcome = None
            claimed.append(outcome)
        if walks:
            for i, walked in zip(walks, await asyncio.gather(*walks.values(), return_exceptions=True), strict=True):
                claimed[i] = walked if not isinstance(walked, BaseException) else _as_exception(walked)
        finished: list[Finished | Exception] = []
        for reply in replies[len(claims) :]:
            if isinstance(reply, Exception):
                finished.append(reply)
            else:
                try:
                    finished.append(self.finished(reply))
                except Exception as exc:  # noqa: BLE001 - an answer it cannot read: this finish's error
                    finished.append(exc)
        return claimed, finished

    async def activation(self, activation_id: int) -> dict[str, str]:
        raw = await self.redis.hgetall(self.keys.act(activation_id))
        # *_key: key names an older claim.lua stored in the hash (finish and release no longer read them)
        return {_text(k): _text(v) for k, v in raw.items() if not _text(k).endswith("_key")}

    async def lookup(self, number: int) -> LookupResult:
        async with self._gate:
            act = await self.redis.hget(self.keys.num(number), "act")
        if not act:
            return LookupResult(found=False)
        async with self._gate:
            upstream, service, created = await self.redis.hmget(
                self.keys.act(_text(act)), ["upstream", "service", "created_ms"]
            )
        if upstream is None:
            return LookupResult(found=False)
        return LookupResult(
            found=True,
            activation_id=int(act),
            upstream=_text(upstream),
            service=_text(service or b""),
            created_ms=int(created or 0),
        )

    async def lookup_many(self, numbers: Sequence[int]) -> list[LookupResult]:
        """lookup() of many numbers in two pipelined round trips (the pusher asks once per Kafka batch)."""
        if not numbers:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for number in numbers:
                pipe.hget(self.keys.num(number), "act")
            async with self._gate:
                acts: list[bytes | None] = await pipe.execute()
        results = [LookupResult(found=False)] * len(numbers)
        wanted = [(i, act.decode()) for i, act in enumerate(acts) if act]
        if not wanted:
            return results
        async with self.redis.pipeline(transaction=False) as pipe:
            for _, act in wanted:
                pipe.hmget(self.keys.act(act), ["upstream", "service", "created_ms"])
            async with self._gate:
                fields: list[list[bytes | None]] = await pipe.execute()
        for (i, act), (upstream, service, created) in zip(wanted, fields, strict=True):
            if upstream is not None:
                results[i] = LookupResult(
                    found=True,
                    activation_id=int(act),
                    upstream=upstream.decode(),
                    service=(service or b"").decode(),
                    created_ms=int(created or 0),
                )
        return results

    async def sms_seen(self, sms: Sequence[tuple[int, int]], slack_ms: int = 2000) -> int:
        """SMS the pusher read ((number, received_ms) each), for SIM health; how many reached an open activation."""
        matched = 0
        for start in range(0, len(sms), SCRIPT_BATCH):
            pairs = [v for entry in sms[start : start + SCRIPT_BATCH] for v in entry]
            matched += int(await self._run("sms", [self.keys.fixed("suspects")], [self.prefix, slack_ms, *pairs]))
        return matched

    async def sims(
        self, *, suspect: bool = False, device: str | None = None, cursor: int = 0, count: int = 200
    ) -> tuple[int, list[dict[str, Any]]]:
        """One page of SIM health rows (next cursor 0 = done): the suspects, one device's SIMs, or every number."""
        k = self.keys
        if device is not None:
            numbers = sorted(int(n) for n in await self.redis.hvals(k.slots(device)))
            next_cursor = 0
        elif suspect:
            next_cursor, page = await self.redis.sscan(k.fixed("suspects"), cursor, count=count)
            numbers = sorted(int(n) for n in page)
        else:
            next_cursor, numbers = await self._numbers_page(cursor, count)
        async with self.redis.pipeline(transaction=False) as pipe:
            for number in numbers:
                pipe.hgetall(k.sh(number))
                pipe.hmget(k.num(number), ["device", "slot", "online", "act"])
                pipe.sismember(k.fixed("suspects"), str(number))
            raw = await pipe.execute()
        rows = []
        for i, number in enumerate(numbers):
            health, (dev, slot, online, act), is_suspect = raw[3 * i : 3 * i + 3]
            if dev is None or (suspect and not is_suspect):
                continue
            fields = {_text(f): int(v) for f, v in health.items()}
            rows.append({
                "number": number, "device": _text(dev), "slot": _text(slot or b""), "online": online == b"1",
                "busy": bool(act), "suspect": bool(is_suspect),
                **{name: fields.get(name, 0) for name in SIM_FIELDS},
            })  # fmt: skip
        return int(next_cursor), rows

    async def earnings(self, days: Sequence[str]) -> list[dict[str, Any]]:
        """Per day, upstream, service, country and currency: issued, sold, refused, cancelled, refunded and the
        amount (sold minus refunded, as a decimal string in the activation's currency)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(self.keys.earn(day))
            raw = await pipe.execute()
        rows: dict[tuple[str, ...], dict[str, Any]] = {}
        for day, fields in zip(days, raw, strict=True):
            for name, value in fields.items():
                parts = _text(name).split("|")
                if len(parts) != 5 or parts[4] not in EARN_METRICS:
                    continue
                upstream, service, country, currency, metric = parts
                row = rows.setdefault(
                    (day, upstream, service, country, currency),
                    {"day": day, "upstream": upstream, "service": service, "country": country, "currency": currency,
                     **dict.fromkeys(EARN_METRICS, 0)},
                )  # fmt: skip
                row[metric] += int(value)
        return [rows[key] for key in sorted(rows)]

    async def resolve(self, device: str, slot: str) -> ResolveResult:
        async with self._gate:
            number = await self.redis.hget(self.keys.slots(device), slot)
        return ResolveResult(found=True, number=int(number)) if number else ResolveResult(found=False)

    # reading ---------------------------------------------------------------------------------------------------
    async def number_info(self, number: int, history: int = HISTORY_MAX) -> dict[str, Any] | None:
        """The number's fields, `hist` (per-service blocks, cancels, refunds: hist:{number}), `history` (its
        newest activations still kept, at most `history`) and `per_service` (issued, sold, cancelled, refused
        counted over that history)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.keys.num(number))
            pipe.hgetall(self.keys.hist(number))
            info, hist = await pipe.execute()
        if not info:
            return None
        out: dict[str, Any] = {k.decode(): v.decode() for k, v in info.items()}
        out["number"] = number
        out["hist"] = {k.decode(): v.decode() for k, v in hist.items()}
        rows = await self.number_activations(number, limit=history, newest=out.get("act") or out.get("last_act"))
        out["history"] = [
            {"service": r["service"], "activation_id": r["id"], "status": r["status"], "created_ms": r["created_ms"]}
            for r in rows
        ]
        per_service: dict[str, dict[str, int]] = {}
        for r in rows:
            counts = per_service.setdefault(r["service"], {"issued": 0, "sold": 0, "cancelled": 0, "refused": 0})
            counts["issued"] += r["status"] != "released"  # a released claim was never given to the platform
            metric = _STATUS_METRIC.get(r["status"])
            if metric:
                counts[metric] += 1
        out["per_service"] = per_service
        return out

    async def number_activations(
        self, number: int, *, limit: int = HISTORY_MAX, newest: str | None = None, before: int | None = None
    ) -> list[dict[str, Any]]:
        """The number's activations, newest first, along the chain claim.lua keeps (act:{id}.prev = the number's
        previous activation): one HMGET per activation, at most `limit`; the chain ends at the first activation that
        has expired (AUDIT_RETENTION_DAYS). `before`: only ids below it."""
        if newest is None:
            async with self._gate:
                act, last = await self.redis.hmget(self.keys.num(number), ["act", "last_act"])
            newest = _text(act or last or b"")
        rows: list[dict[str, Any]] = []
        current = newest
        for _ in range(HISTORY_WALK_MAX):  # a chain can only go down, but never trust stored data to end
            if not current or not is_digits(current) or len(rows) >= limit:
                break
            async with self._gate:
                values = await self.redis.hmget(self.keys.act(current), ACT_FIELDS)
            row = _activation_row(int(current), values)
            if row is None or row["number"] != number:
                break
            if before is None or row["id"] < before:
                rows.append(row)
            nxt = _text(values[-1] or b"")
            if is_digits(nxt) and int(nxt) >= int(current):
                break
            current = nxt
        return rows

    async def activations(
        self,
        *,
        before: int | None,
        count: int,
        keep: Callable[[dict[str, Any]], bool],
        scan_max: int = ACT_SCAN_MAX,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Activations newest first, walking ids downward from `before` (ids are sequential: actid) in pipelined
        pages of ACT_PAGE, at most `scan_max` ids per call, skipping ids that expired; (rows kept by `keep`, at most
        `count`; the id to pass as `before` next, or None at the end). The end is ACT_GAP ids in a row that do not
        exist (below them everything expired, or the counter was re-seeded after a wipe)."""
        if before is None:
            async with self._gate:
                top = await self.redis.get(self.keys.fixed("actid"))
            if top is None:
                return [], None
            before = int(top) + 1
        # a call reads at least ACT_GAP ids, so a call that finds nothing ends the listing: following `next` always
        # ends, even from inside a gap a former call stopped in
        scan_max = max(scan_max, ACT_GAP)
        rows: list[dict[str, Any]] = []
        missing = scanned = 0
        current = before - 1
        while current > 0 and scanned < scan_max:
            ids = list(range(current, max(0, current - ACT_PAGE), -1))
            async with self.redis.pipeline(transaction=False) as pipe:
                for activation_id in ids:
                    pipe.hmget(self.keys.act(activation_id), ACT_FIELDS)
                async with self._gate:
                    pages = await pipe.execute()
            scanned += len(ids)
            for activation_id, values in zip(ids, pages, strict=True):
                row = _activation_row(activation_id, values)
                if row is None:
                    missing += 1
                    if missing >= ACT_GAP:
                        return rows, None
                    continue
                missing = 0
                if keep(row):
                    rows.append(row)
                    if len(rows) >= count:
                        return rows, activation_id
            current = ids[-1] - 1
        return rows, (current + 1 if current > 0 else None)

    async def device_names(self) -> list[str]:
        """Every device name (the devices set, SSCAN in pages: about 4,000 names for a million numbers, never a
        read of the numbers), sorted."""
        names: list[str] = []
        cursor = 0
        while True:
            async with self._gate:
                cursor, page = await self.redis.sscan(self.keys.fixed("devices"), cursor, count=500)
            names += [_text(d) for d in page]
            if cursor == 0:
                return sorted(set(names))

    async def devices(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """One row per device (a page of names, in order): flags and counters from dev:{device}, free = the sizes of
        the free sets of its groups (dg:{device}, 1-4 groups), busy = its open activations, offline = the rest
        (SIMs taken offline and idle); suspects = its SIMs in the suspects set (only read when there are any)."""
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            for device in names:
                pipe.hmget(k.dev(device), ["online", "cap", "active", "numbers", "alive", "seen_ms"])
                pipe.smembers(k.dg(device))
            pipe.scard(k.fixed("suspects"))
            async with self._gate:
                raw = await pipe.execute()
        any_suspects = int(raw[-1]) > 0
        groups = [[_text(g) for g in raw[2 * i + 1]] for i in range(len(names))]
        async with self.redis.pipeline(transaction=False) as pipe:
            for device, device_groups in zip(names, groups, strict=True):
                for group in device_groups:
                    pipe.scard(k.free(group))
                if any_suspects:
                    pipe.hvals(k.slots(device))
            async with self._gate:
                sizes = await pipe.execute()
        answers = iter(sizes)
        frees, held_numbers = [], []
        for device_groups in groups:
            frees.append(sum(int(next(answers)) for _ in device_groups))
            held_numbers.append(list(next(answers)) if any_suspects else [])
        suspects = [0] * len(names)
        asked = [i for i, numbers in enumerate(held_numbers) if numbers]
        if asked:
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in asked:
                    pipe.smismember(k.fixed("suspects"), held_numbers[i])
                async with self._gate:
                    hits = await pipe.execute()
            for i, found in zip(asked, hits, strict=True):
                suspects[i] = sum(1 for hit in found if hit)
        out = []
        for i, device in enumerate(names):
            online, cap, active, held, alive, seen = raw[2 * i]
            numbers, busy, free = int(held or 0), int(active or 0), frees[i]
            out.append({
                "device": device, "online": online in (None, b"1"), "alive": alive != b"0",
                "cap": int(cap) if cap and int(cap) > 0 else None, "numbers": numbers, "free": free, "busy": busy,
                "offline": max(0, numbers - free - busy), "last_seen_ms": int(seen) if seen else None,
                "suspects": suspects[i],
            })  # fmt: skip
        return out

    async def overview(self) -> dict[str, Any]:
        """Totals from the counters, plus busy and dead devices from one paged pass over the devices' hashes (no
        number is read); earnings per currency in millionths, today and the last 7 days (today included)."""
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hvals(k.fixed("co"))  # numbers per (country, operator): a handful of fields
            pipe.hget(k.fixed("totals"), "free")
            pipe.scard(k.fixed("devices"))
            pipe.scard(k.fixed("suspects"))
            async with self._gate:
                per_row, free, devices, suspects = await pipe.execute()
        numbers = sum(int(n) for n in per_row)
        busy = dead = 0
        cursor = 0
        while True:
            async with self._gate:
                cursor, page = await self.redis.sscan(k.fixed("devices"), cursor, count=500)
            async with self.redis.pipeline(transaction=False) as pipe:
                for device in page:
                    pipe.hmget(k.dev(_text(device)), ["active", "alive"])
                async with self._gate:
                    rows = await pipe.execute()
            for active, alive in rows:
                busy += int(active or 0)
                dead += alive == b"0"
            if cursor == 0:
                break
        days = earning_days("7d")
        week: dict[str, int] = {}
        today: dict[str, int] = {}
        for row in await self.earnings(days):
            week[row["currency"]] = week.get(row["currency"], 0) + row["amount"]
            if row["day"] == days[-1]:
                today[row["currency"]] = today.get(row["currency"], 0) + row["amount"]
        free_n = int(free or 0)
        return {
            "numbers": int(numbers), "free": free_n, "busy": busy, "offline": max(0, int(numbers) - free_n - busy),
            "devices": int(devices), "devices_dead": dead, "suspects": int(suspects),
            "earnings": {"today": today, "7d": week},
        }  # fmt: skip

    async def record_change(self, by: str, action: str, **fields: Any) -> None:
        """An operator's change (admin API, CLI) in the shared operator stream (audit:ops), with who made it. The
        change is made by then: a failure here is logged with who and what, not answered as the change failing."""
        async with self._gate:
            await audit.record_operator_or_log(
                self.redis, by, action, prefix=self.audit_prefix, source="pool", **fields
            )

    async def _numbers_page(self, cursor: int, count: int) -> tuple[int, list[int]]:
        """One page of the inventory, whole devices at a time: the devices in name order from `cursor` (an offset)
        until the page holds `count` numbers (plus the rest of the last device); next cursor 0 = done. There is no
        set of every number (it would cost about 60 B per number), and no SSCAN of the devices: SSCAN's count is a
        hint that a small set ignores, handing back every device at once."""
        names = await self.device_names()
        numbers: list[int] = []
        position = cursor
        step = max(1, count // NUMBERS_PER_DEVICE)
        while position < len(names) and len(numbers) < count:
            devices = names[position : position + step]
            async with self.redis.pipeline(transaction=False) as pipe:
                for device in devices:
                    pipe.hvals(self.keys.slots(device))
                async with self._gate:
                    slots = await pipe.execute()
            for held in slots:
                position += 1
                numbers += (int(n) for n in held)
                if len(numbers) >= count:
                    break
        return (position if position < len(names) else 0), sorted(numbers)

    async def list_numbers(self, cursor: int = 0, count: int = 100) -> tuple[int, list[dict[str, Any]]]:
        """One page of the inventory (whole devices, about `count` numbers) with each number's fields; next cursor 0
        means done."""
        next_cursor, numbers = await self._numbers_page(cursor, count)
        async with self.redis.pipeline(transaction=False) as pipe:
            for number in numbers:
                pipe.hgetall(self.keys.num(number))
            rows = await pipe.execute()
        out = []
        for number, row in zip(numbers, rows, strict=True):
            if row:
                out.append({"number": number, **{k.decode(): v.decode() for k, v in row.items()}})
        return next_cursor, out

    async def stats(self) -> dict[str, Any]:
        """Totals from the counters (no scan of the numbers); one page of devices at a time, so Redis is never
        held for the whole farm."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hvals(self.keys.fixed("co"))  # numbers per (country, operator): a handful of fields
            pipe.hget(self.keys.fixed("totals"), "free")
            per_row, free = await pipe.execute()
        numbers = sum(int(n) for n in per_row)
        device_rows: dict[str, dict[str, Any]] = {}
        cursor = 0
        while True:
            cursor, page = await self.redis.sscan(self.keys.fixed("devices"), cursor, count=200)
            devices = sorted(_text(d) for d in page)
            async with self.redis.pipeline(transaction=False) as pipe:
                for device in devices:
                    pipe.hmget(self.keys.dev(device), ["online", "cap", "active", "numbers", "alive", "seen_ms"])
                rows = await pipe.execute()
            for device, (online, cap, active, held, alive, seen) in zip(devices, rows, strict=True):
                device_rows[device] = {
                    "online": online in (None, b"1"),
                    "alive": alive != b"0",  # False: silent past POOL_DEVICE_TIMEOUT_S (counts as offline)
                    "seen_ms": int(seen or 0),  # last heartbeat; 0 = the device has no heartbeat source
                    "cap": int(cap or 0),
                    "active": int(active or 0),
                    "numbers": int(held or 0),
                }
            if cursor == 0:
                break
        return {
            "numbers": int(numbers),
            "free_online": int(free or 0),
            "active": sum(d["active"] for d in device_rows.values()),
            "devices": dict(sorted(device_rows.items())),
        }
