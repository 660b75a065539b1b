"""The admin API (POOL_ADMIN_PORT): inventory, devices, stats, audit. Every route needs
`Authorization: Bearer $POOL_ADMIN_TOKEN` (constant-time compare); a wrong or missing token gets 401 JSON.

Admin answers use plain HTTP codes (this is an operator API, not the platform protocol): 400 bad input with a
message, 401 token, 404 unknown item, 503 Redis unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import msgspec
from grizzly_common import audit
from grizzly_common.errors import Unavailable
from grizzly_common.messages import is_digits
from grizzly_common.web import app_state, json_response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from grizzly_pool import csv_import
from grizzly_pool.app import State, pool_lifespan, render_country_list
from grizzly_pool.imports import JOB_ID, ImportJobs, TooManyImports
from grizzly_pool.phones import PhoneCheck, phone_check
from grizzly_pool.settings import Settings
from grizzly_pool.store import (
    HISTORY_WALK_MAX,
    InventoryError,
    NumberRow,
    check_device,
    check_name,
    check_number,
    earning_days,
    earning_dimensions,
    summarize_earnings,
)

log = logging.getLogger(__name__)
MAX_IMPORT_BYTES = 256 * 1024 * 1024  # bigger files: use the CLI, which needs no copy of the file
STATUSES = frozenset({"open", "released", "1", "3", "4", "5"})  # act:{id}.status: open, first finish, released

Handler = Callable[[Request, State], Awaitable[Response]]


class AdminError(Exception):
    def __init__(self, status_code: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status_code = status_code
        self.error = error
        self.extra = extra  # more fields of the answer (the bad lines of a CSV)


class NumberIn(msgspec.Struct, frozen=True):
    number: str | int
    country: str
    operator: str
    device: str
    slot: str | int
    online: bool = True
    flashcall: bool = False
    voice: bool = False


class AddBody(msgspec.Struct, frozen=True):
    numbers: list[NumberIn]


class NumbersBody(msgspec.Struct, frozen=True):
    numbers: list[str | int]


class OnlineBody(msgspec.Struct, frozen=True):
    online: bool
    numbers: list[str | int] = []
    device: str = ""


class DeviceBody(msgspec.Struct, frozen=True):
    online: bool | None = None
    cap: int | None = None


def _json(request_body: bytes, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(request_body, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise AdminError(400, f"bad request: {exc}") from None


def _numbers(values: list[str | int]) -> list[int]:
    try:
        return [check_number(v) for v in values]
    except InventoryError as exc:
        raise AdminError(400, str(exc)) from None


def _int_param(request: Request, name: str, default: int) -> int:
    """An integer query parameter: ASCII digits, at most 19 (a Redis cursor or an id fits in 64 bits)."""
    value = request.query_params.get(name)
    if value is None:
        return default
    if not is_digits(value.removeprefix("-")) or len(value) > 19:
        raise AdminError(400, f"{name} must be an integer")
    return int(value)


def _bounded(request: Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high], else 400 (the new routes refuse instead of clamping)."""
    value = _int_param(request, name, default)
    if not low <= value <= high:
        raise AdminError(400, f"{name} must be {low}-{high}")
    return value


def operator(request: Request) -> str:
    """Who makes a change: X-Operator (1-64 of A-Z a-z 0-9 . _ @ -), "api" without it. Checked before the change."""
    by = request.headers.get("x-operator")
    if by is None:
        return "api"
    if not audit.is_operator_name(by):
        raise AdminError(400, "X-Operator must be 1-64 of A-Z a-z 0-9 . _ @ -")
    return by


def _name_param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return check_name(name, value)
    except InventoryError as exc:
        raise AdminError(400, str(exc)) from None


async def stats(request: Request, state: State) -> Response:
    return json_response(await state["store"].stats())


async def counts(request: Request, state: State) -> Response:
    settings = state["settings"]
    upstream = request.query_params.get("upstream", settings.upstreams[0])
    if upstream not in settings.upstreams:  # counts as that platform sees them: only a platform we serve
        raise AdminError(400, f"unknown upstream {upstream[:64]!r} (UPSTREAMS: {', '.join(settings.upstreams)})")
    snapshot = await state["store"].snapshot(settings.services)
    table = snapshot.table(settings.split_countries)
    return json_response({"countryList": render_country_list(table, settings.country_maps.get(upstream, {}))})


async def sims(request: Request, state: State) -> Response:
    """SIM health: ?suspect=1, ?device=D, ?cursor=&count= (one page; next cursor 0 = done)."""
    device = request.query_params.get("device")
    if device is not None:
        try:
            device = check_device(device)
        except InventoryError as exc:
            raise AdminError(400, str(exc)) from None
    suspect = request.query_params.get("suspect", "") in ("1", "true", "yes")
    cursor = _bounded(request, "cursor", 0, 0, 2**63 - 1)
    count = min(max(_int_param(request, "count", 200), 1), 10_000)
    next_cursor, rows = await state["store"].sims(suspect=suspect, device=device, cursor=cursor, count=count)
    return json_response({"cursor": next_cursor, "sims": rows})


async def earnings(request: Request, state: State) -> Response:
    """?since=7d (days, today included), ?by=upstream,service,country,day (default: upstream,service,country)."""
    try:
        days = earning_days(request.query_params.get("since", "7d"))
        by = earning_dimensions(request.query_params.get("by", "upstream,service,country"))
    except ValueError as exc:
        raise AdminError(400, str(exc)) from None
    rows = await state["store"].earnings(days)
    return json_response({"since": days[0], "until": days[-1], "by": by, "rows": summarize_earnings(rows, by)})


async def list_numbers(request: Request, state: State) -> Response:
    cursor = _bounded(request, "cursor", 0, 0, 2**63 - 1)
    count = min(max(_int_param(request, "count", 100), 1), 10_000)
    next_cursor, rows = await state["store"].list_numbers(cursor, count)
    return json_response({"cursor": next_cursor, "numbers": rows})


async def show_number(request: Request, state: State) -> Response:
    info = await state["store"].number_info(_numbers([request.path_params["number"]])[0])
    if info is None:
        raise AdminError(404, "unknown number")
    return json_response(info)


async def add_numbers(request: Request, state: State) -> Response:
    by = operator(request)
    body: AddBody = _json(await request.body(), AddBody)
    phones = state_phones(state)
    rows, errors = [], []
    for index, n in enumerate(body.numbers):
        try:
            row = NumberRow.checked(n.number, n.country, n.operator, n.device, str(n.slot), n.online, n.flashcall,
                                    n.voice)  # fmt: skip
            if phones is not None:
                phones.check(row.number, row.country)
            rows.append(row)
        except InventoryError as exc:
            errors.append(f"numbers[{index}]: {exc}")
    if errors:  # one bad row: nothing added, every bad row named
        return json_response(
            {"status": "ERROR", "error": f"nothing added: {errors[0]}", "errors": errors[: csv_import.MAX_ERRORS],
             "error_count": len(errors)},
            400,
        )  # fmt: skip
    report = await state["store"].add_numbers(rows)
    await state["store"].record_change(by, "numbers_add", rows=len(rows), added=report.added,
                                       existing=report.existing, conflicts=len(report.conflicts))  # fmt: skip
    return json_response({"status": "SUCCESS", **asdict(report)})


def state_phones(state: State) -> PhoneCheck | None:
    settings = state["settings"]
    return phone_check(settings.number_check, settings.number_regions)


async def remove_numbers(request: Request, state: State) -> Response:
    by = operator(request)
    body: NumbersBody = _json(await request.body(), NumbersBody)
    numbers = _numbers(body.numbers)
    report = await state["store"].remove_numbers(numbers)
    await state["store"].record_change(by, "numbers_remove", numbers=numbers[:100], count=len(numbers),
                                       removed=report.removed, busy=len(report.busy))  # fmt: skip
    return json_response({"status": "SUCCESS", **asdict(report)})


async def set_online(request: Request, state: State) -> Response:
    by = operator(request)
    body: OnlineBody = _json(await request.body(), OnlineBody)
    store = state["store"]
    if body.device:
        if not await store.set_device(body.device, online=body.online):
            raise AdminError(404, "unknown device")
        await store.record_change(by, "device", device=body.device, online=body.online)
        return json_response({"status": "SUCCESS"})
    numbers = _numbers(body.numbers)
    changed, missing = await store.set_online(numbers, body.online)
    await store.record_change(by, "numbers_online", online=body.online, numbers=numbers[:100], count=len(numbers),
                              changed=changed)  # fmt: skip
    return json_response({"status": "SUCCESS", "changed": changed, "missing": missing})


async def set_device(request: Request, state: State) -> Response:
    by = operator(request)
    body: DeviceBody = _json(await request.body(), DeviceBody)
    device = request.path_params["device"]
    try:
        found = await state["store"].set_device(device, online=body.online, cap=body.cap)
    except InventoryError as exc:
        raise AdminError(400, str(exc)) from None
    if not found:
        raise AdminError(404, "unknown device")
    changed = {name: value for name, value in (("online", body.online), ("cap", body.cap)) if value is not None}
    await state["store"].record_change(by, "device", device=device, **changed)
    return json_response({"status": "SUCCESS"})


async def import_csv(request: Request, state: State) -> Response:
    """text/csv body, streamed to a temporary file (memory stays the same whatever its size): validated as a whole
    first (nothing is imported when a line is bad; the answer lists the bad lines), then added in batches."""
    by = operator(request)
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_IMPORT_BYTES:
        raise AdminError(413, f"CSV larger than {MAX_IMPORT_BYTES} bytes: use the CLI (grizzly-pool import)")
    with tempfile.TemporaryDirectory(prefix="grizzly-import-") as folder:
        path = Path(folder, "import.csv")
        try:
            size = await _spool(request, path)
            rows = await asyncio.to_thread(csv_import.validate, csv_import.lines_of(path), size, state_phones(state))
        except csv_import.CsvError as exc:
            raise AdminError(400, f"nothing imported: {exc}", errors=list(exc.errors), error_count=exc.total) from None
        except UnicodeDecodeError:
            raise AdminError(400, "CSV must be UTF-8") from None
        except OSError as exc:
            log.warning("csv import: cannot keep the file in TMPDIR: %s", exc)
            raise AdminError(507, f"cannot keep the CSV in the pool's TMPDIR ({exc.strerror}): use the CLI") from exc
        report = await csv_import.import_rows(state["store"], csv_import.parse(csv_import.lines_of(path)))
    log.info("csv import", extra={"fields": {"rows": rows, "added": report.added, "existing": report.existing}})
    await state["store"].record_change(by, "import", rows=rows, added=report.added, existing=report.existing,
                                       conflicts=report.conflicts_total)  # fmt: skip
    return json_response({"status": "SUCCESS", "rows": rows, **asdict(report)})


async def _spool(request: Request, path: Path) -> int:
    """The request body into `path` as it arrives; its size. Refused past MAX_IMPORT_BYTES (chunked bodies too)."""
    received = 0
    with path.open("wb") as out:
        async for chunk in request.stream():
            received += len(chunk)
            if received > MAX_IMPORT_BYTES:
                raise AdminError(413, f"CSV larger than {MAX_IMPORT_BYTES} bytes: use the CLI (grizzly-pool import)")
            out.write(chunk)
    return received


async def show_activation(request: Request, state: State) -> Response:
    activation_id = _int_param_path(request, "activation_id")
    info = await state["store"].activation(activation_id)
    events = await audit.read(state["redis"], activation_id)
    if not info and not events:
        raise AdminError(404, "unknown activationId")
    return json_response({"activation": info, "events": events})


async def unmatched(request: Request, state: State) -> Response:
    count = min(max(_int_param(request, "count", 100), 1), 10_000)
    items = await audit.read_unmatched(state["redis"], count=count)
    return json_response({"unmatched": items})


async def devices(request: Request, state: State) -> Response:
    """?q= (part of the name, any case), ?offset=0&count=100: one page of devices sorted by name. Only the names of
    every device are read (one SSCAN pass, about 4,000 for a million numbers); the page's devices are read whole."""
    q = request.query_params.get("q", "")
    if len(q) > 128:
        raise AdminError(400, "q must be at most 128 characters")
    offset = _bounded(request, "offset", 0, 0, 10_000_000)
    count = _bounded(request, "count", 100, 1, 1000)
    names = await state["store"].device_names()
    if q:
        needle = q.lower()
        names = [name for name in names if needle in name.lower()]
    rows = await state["store"].devices(names[offset : offset + count])
    return json_response({"total": len(names), "devices": rows})


async def list_activations(request: Request, state: State) -> Response:
    """Newest first: ?status=open|released|1|3|4|5, ?upstream=, ?service=, ?country=, ?number=, ?before=<id>,
    ?count=50 (1-500). `next` is the id to pass as `before` for the next page (also when a page came back short
    because the walk reached its bound), null at the end."""
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise AdminError(400, f"status must be one of {', '.join(sorted(STATUSES))}")
    upstream, service, country = (_name_param(request, n) for n in ("upstream", "service", "country"))
    number = _numbers([request.query_params["number"]])[0] if request.query_params.get("number") else None
    before = _bounded(request, "before", 0, 0, 1 << 53) if request.query_params.get("before") else None
    count = _bounded(request, "count", 50, 1, 500)
    wanted = {"status": status, "upstream": upstream, "service": service, "country": country}
    wanted = {name: value for name, value in wanted.items() if value is not None}

    def keep(row: dict[str, Any]) -> bool:
        return all(row[name] == value for name, value in wanted.items())

    store = state["store"]
    if number is not None:  # the number's own chain, not a walk over every activation
        chain = await store.number_activations(number, limit=HISTORY_WALK_MAX, before=before)
        rows = [row for row in chain if keep(row)]
        more = len(rows) > count
        rows = rows[:count]
        return json_response({"activations": rows, "next": rows[-1]["id"] if more else None})
    rows, next_id = await store.activations(before=before, count=count, keep=keep)
    return json_response({"activations": rows, "next": next_id})


async def overview(request: Request, state: State) -> Response:
    return json_response(await state["store"].overview())


async def operator_audit(request: Request, state: State) -> Response:
    """The operator stream (audit:ops, every service's changes), newest first: ?count=100 (1-1000)."""
    count = _bounded(request, "count", 100, 1, 1000)
    events = await audit.read_operator(state["redis"], prefix=state["store"].audit_prefix, count=count)
    return json_response({"events": events})


async def start_import(request: Request, state: State, jobs: ImportJobs) -> Response:
    """POST /admin/imports: the CSV body is kept in TMPDIR as for POST /admin/import, then checked and imported by a
    job of this process; 202 {"job": id} at once."""
    by = operator(request)
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_IMPORT_BYTES:
        raise AdminError(413, f"CSV larger than {MAX_IMPORT_BYTES} bytes: use the CLI (grizzly-pool import)")
    try:
        jobs.check_room()
    except TooManyImports as exc:
        raise AdminError(429, str(exc)) from None
    folder: Path | None = None
    try:
        folder = Path(tempfile.mkdtemp(prefix="grizzly-import-"))
        path = Path(folder, "import.csv")
        size = await _spool(request, path)
        job = jobs.start(state["store"], folder, path, size, state_phones(state), by)
    except BaseException as exc:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, OSError):
            log.warning("csv import: cannot keep the file in TMPDIR: %s", exc)
            raise AdminError(507, f"cannot keep the CSV in the pool's TMPDIR ({exc.strerror}): use the CLI") from exc
        if isinstance(exc, TooManyImports):
            raise AdminError(429, str(exc)) from None
        raise
    return json_response({"job": job}, 202)


async def show_import(request: Request, state: State, jobs: ImportJobs) -> Response:
    job_id = request.path_params["job"]
    if not JOB_ID.match(job_id):
        raise AdminError(400, "job must be 16 hex digits")
    job = jobs.get(job_id)
    if job is None:
        raise AdminError(404, "unknown job (jobs live in the pool process that took them, until it restarts)")
    return json_response(job.view())


async def list_imports(request: Request, state: State, jobs: ImportJobs) -> Response:
    return json_response({"jobs": [job.view() for job in jobs.newest()]})


def _int_param_path(request: Request, name: str) -> int:
    try:
        return int(request.path_params[name])
    except ValueError:
        raise AdminError(400, f"{name} must be an integer") from None


def create_admin_app(settings: Settings) -> Starlette:
    token = ("Bearer " + settings.admin_token).encode()
    jobs = ImportJobs()

    def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, token):
                return json_response({"status": "ERROR", "error": "unauthorized"}, 401)
            try:
                return await handler(request, app_state(request, State))
            except AdminError as exc:
                return json_response({"status": "ERROR", "error": exc.error, **exc.extra}, exc.status_code)
            except Exception:
                log.exception("admin %s failed", request.url.path)
                return json_response({"status": "ERROR", "error": Unavailable.error}, 503)

        return endpoint

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with pool_lifespan(settings) as state:
            try:
                yield state
            finally:
                await jobs.close()  # before Redis closes: a job still running is stopped (state "failed")

    routes = [
        Route("/admin/stats", guarded(stats), methods=["GET"]),
        Route("/admin/overview", guarded(overview), methods=["GET"]),
        Route("/admin/devices", guarded(devices), methods=["GET"]),
        Route("/admin/activations", guarded(list_activations), methods=["GET"]),
        Route("/admin/audit", guarded(operator_audit), methods=["GET"]),
        Route("/admin/sims", guarded(sims), methods=["GET"]),
        Route("/admin/earnings", guarded(earnings), methods=["GET"]),
        Route("/admin/counts", guarded(counts), methods=["GET"]),
        Route("/admin/numbers", guarded(list_numbers), methods=["GET"]),
        Route("/admin/numbers", guarded(add_numbers), methods=["POST"]),
        Route("/admin/numbers/remove", guarded(remove_numbers), methods=["POST"]),
        Route("/admin/numbers/online", guarded(set_online), methods=["POST"]),
        Route("/admin/numbers/{number}", guarded(show_number), methods=["GET"]),
        Route("/admin/devices/{device:path}", guarded(set_device), methods=["POST"]),  # names may hold "/"
        Route("/admin/import", guarded(import_csv), methods=["POST"]),
        Route("/admin/imports", guarded(functools.partial(start_import, jobs=jobs)), methods=["POST"]),
        Route("/admin/imports", guarded(functools.partial(list_imports, jobs=jobs)), methods=["GET"]),
        Route("/admin/imports/{job}", guarded(functools.partial(show_import, jobs=jobs)), methods=["GET"]),
        Route("/admin/activations/{activation_id}", guarded(show_activation), methods=["GET"]),
        Route("/admin/unmatched", guarded(unmatched), methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
