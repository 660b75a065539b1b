"""`grizzly-pool`: run the service (default) or manage the inventory.

The management commands talk to Redis directly (REDIS_URL and POOL_KEY_PREFIX, like the service), through the same
PoolStore and Lua scripts as the service, so they need no admin token and stream big CSV files from disk.
The admin HTTP API offers the same operations remotely (README.md).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from grizzly_common import audit
from grizzly_common.redis_client import make_redis
from grizzly_common.settings import SettingsError, environ
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from grizzly_pool import csv_import
from grizzly_pool.app import make_store, render_country_list
from grizzly_pool.phones import phone_check
from grizzly_pool.settings import Settings
from grizzly_pool.store import (
    InventoryError,
    NumberRow,
    PoolStore,
    check_device,
    check_number,
    earning_days,
    earning_dimensions,
    summarize_earnings,
)

app = typer.Typer(help="grizzly-partner number pool: service and inventory tools", no_args_is_help=False)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")
CLI = "cli"  # who made a change, in the operator stream (the admin API records X-Operator, default "api")

RedisOpt = Annotated[str | None, typer.Option("--redis-url", help="default: $REDIS_URL")]
PrefixOpt = Annotated[str | None, typer.Option("--prefix", help="key prefix, default: $POOL_KEY_PREFIX or gp:")]


def _settings(redis_url: str | None = None, prefix: str | None = None) -> Settings:
    env = dict(environ())
    if redis_url:
        env["REDIS_URL"] = redis_url
    if prefix is not None:
        env["POOL_KEY_PREFIX"] = prefix
    try:
        return Settings.from_env(env, require_token=False)
    except SettingsError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _run(settings: Settings, body: Callable[[PoolStore], Awaitable[T]]) -> T:
    async def main() -> T:
        redis = make_redis(settings.redis_url, max_connections=4, password=settings.redis_password)
        try:
            return await body(make_store(settings, redis))
        finally:
            await redis.aclose()  # make_redis: the client owns its pool and closes it

    try:
        return asyncio.run(main())
    except InventoryError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def _version(value: bool) -> None:
    if value:
        console.print(f"grizzly-pool {version('grizzly-pool')}", highlight=False)
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def default(
    ctx: typer.Context,
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Without a command: run the service (same as `grizzly-pool serve`)."""
    if ctx.invoked_subcommand is None:
        serve()


@app.command()
def serve() -> None:
    """Run the internal API (POOL_PORT) and the admin API (POOL_ADMIN_PORT)."""
    from grizzly_pool.__main__ import serve as run_service

    run_service()


@app.command("import")
def import_csv(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    batch: Annotated[int, typer.Option(min=1, max=20_000)] = 2000,
    redis_url: RedisOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """Import a CSV (header number,country,operator,device,slot[,online,flashcall,voice]).

    The whole file is checked first: on bad lines nothing is imported and each is shown with its line number
    (the first 100; the rest are counted). Numbers already in the pool are left as they are and counted as existing.
    The file is streamed twice (check, import): memory stays the same whatever its size.
    """
    settings = _settings(redis_url, prefix)
    try:
        phones = phone_check(settings.number_check, settings.number_regions)
        total = csv_import.validate(csv_import.lines_of(path), size_hint=path.stat().st_size, phones=phones)
    except csv_import.CsvError as exc:
        err.print(f"[red]nothing imported: {exc.total} error{'s' * (exc.total > 1)} in {escape(path.name)}[/red]",
                  highlight=False)  # fmt: skip
        for message in exc.errors:
            err.print(message, highlight=False, markup=False)
        if exc.left_out:
            err.print(f"... and {exc.left_out} more (only the first {len(exc.errors)} are shown)", highlight=False)
        raise typer.Exit(1) from None
    except UnicodeDecodeError as exc:
        err.print(f"[red]nothing imported: {escape(path.name)} is not UTF-8 ({exc.reason} at byte {exc.start})[/red]")
        raise typer.Exit(1) from None

    async def body(store: PoolStore) -> csv_import.ImportReport:
        columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn())  # fmt: skip
        with Progress(*columns, console=err) as progress:
            task = progress.add_task("import", total=total)
            rows = csv_import.parse(csv_import.lines_of(path))
            report = await csv_import.import_rows(
                store, rows, batch=batch, progress=lambda done: progress.advance(task, done)
            )
        await store.record_change(CLI, "import", rows=total, added=report.added, existing=report.existing,
                                  conflicts=report.conflicts_total, file=path.name)  # fmt: skip
        return report

    try:
        report = _run(settings, body)
    except csv_import.CsvError as exc:  # the file changed after it was checked
        err.print(f"[red]stopped: {escape(str(exc))}; the rows before it were imported[/red]", highlight=False)
        raise typer.Exit(1) from None
    console.print(
        f"rows {total}: added {report.added}, already in the pool {report.existing}, "
        f"slot taken {report.conflicts_total}"
    )
    if report.conflicts:
        more = report.conflicts_total - len(report.conflicts)
        console.print("slot taken by another number (not imported): " + " ".join(map(str, report.conflicts))
                      + (f" ... and {more} more" if more else ""))  # fmt: skip


@app.command()
def add(
    number: str,
    country: str,
    operator: str,
    device: str,
    slot: str,
    offline: Annotated[bool, typer.Option("--offline")] = False,
    flashcall: Annotated[bool, typer.Option("--flashcall")] = False,
    voice: Annotated[bool, typer.Option("--voice")] = False,
    redis_url: RedisOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """Add one number."""
    settings = _settings(redis_url, prefix)

    async def body(store: PoolStore) -> Any:
        row = NumberRow.checked(number, country, operator, device, slot, not offline, flashcall, voice)
        phones = phone_check(settings.number_check, settings.number_regions)
        if phones is not None:
            phones.check(row.number, row.country)
        report = await store.add_numbers([row])
        await store.record_change(CLI, "numbers_add", rows=1, added=report.added, existing=report.existing,
                                  conflicts=len(report.conflicts))  # fmt: skip
        return report

    report = _run(settings, body)
    console.print(f"added {report.added}, already in the pool {report.existing}, slot taken {len(report.conflicts)}")


@app.command()
def remove(numbers: list[str], redis_url: RedisOpt = None, prefix: PrefixOpt = None) -> None:
    """Remove numbers (not while in an open activation; the per-service history is kept)."""
    settings = _settings(redis_url, prefix)

    async def body(store: PoolStore) -> Any:
        checked = [check_number(n) for n in numbers]
        report = await store.remove_numbers(checked)
        await store.record_change(CLI, "numbers_remove", numbers=checked[:100], count=len(checked),
                                  removed=report.removed, busy=len(report.busy))  # fmt: skip
        return report

    report = _run(settings, body)
    console.print(f"removed {report.removed}, unknown {report.missing}, busy (kept) {report.busy}")


async def _set_device(store: PoolStore, device: str, **change: Any) -> bool:
    """set_device, recorded in the operator stream when the device exists."""
    found = await store.set_device(device, **change)
    if found:
        await store.record_change(CLI, "device", device=device, **change)
    return found


def _online(numbers: list[str], device: str | None, online: bool, redis_url: str | None, prefix: str | None) -> None:
    settings = _settings(redis_url, prefix)
    if device:
        if not _run(settings, lambda store: _set_device(store, device, online=online)):
            err.print(f"[red]unknown device {device}[/red]")
            raise typer.Exit(1)
        console.print(f"device {device} {'online' if online else 'offline'}")
        return
    if not numbers:
        err.print("[red]give numbers or --device[/red]")
        raise typer.Exit(2)

    async def body(store: PoolStore) -> tuple[int, int]:
        checked = [check_number(n) for n in numbers]
        changed, missing = await store.set_online(checked, online)
        await store.record_change(CLI, "numbers_online", online=online, numbers=checked[:100], count=len(checked),
                                  changed=changed)  # fmt: skip
        return changed, missing

    changed, missing = _run(settings, body)
    console.print(f"changed {changed}, unknown {missing}")


@app.command()
def online(
    numbers: Annotated[list[str] | None, typer.Argument()] = None,
    device: Annotated[str | None, typer.Option("--device")] = None,
    redis_url: RedisOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """Mark numbers (or a whole --device) online."""
    _online(numbers or [], device, True, redis_url, prefix)


@app.command()
def offline(
    numbers: Annotated[list[str] | None, typer.Argument()] = None,
    device: Annotated[str | None, typer.Option("--device")] = None,
    redis_url: RedisOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """Mark numbers (or a whole --device) offline: they are no longer counted nor issued."""
    _online(numbers or [], device, False, redis_url, prefix)


@app.command()
def cap(
    device: str,
    modules: Annotated[int, typer.Argument(min=0, help="simultaneously active modules; 0 = no limit")],
    redis_url: RedisOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """Set a device's cap on simultaneously active modules."""
    settings = _settings(redis_url, prefix)
    if not _run(settings, lambda store: _set_device(store, device, cap=modules)):
        err.print(f"[red]unknown device {device}[/red]")
        raise typer.Exit(1)
    console.print(f"device {device}: cap {modules}")


@app.command("list")
def list_numbers(
    limit: Annotated[int, typer.Option(min=1)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    redis_url: RedisOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """List numbers (up to --limit)."""
    settings = _settings(redis_url, prefix)

    async def body(store: PoolStore) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = 0
        while True:
            cursor, rows = await store.list_numbers(cursor, min(limit, 1000))
            out.extend(rows)
            if cursor == 0 or len(out) >= limit:
                return sorted(out, key=lambda r: r["number"])[:limit]

    rows = _run(settings, body)
    if as_json:
        _print_json(rows)
        return
    table = Table("number", "country", "operator", "device", "slot", "online", "activation")
    for r in rows:
        table.add_row(str(r["number"]), r.get("country", ""), r.get("operator", ""), r.get("device", ""),
                      r.get("slot", ""), r.get("online", ""), r.get("act", ""))  # fmt: skip
    console.print(table)


@app.command()
def show(number: str, redis_url: RedisOpt = None, prefix: PrefixOpt = None) -> None:
    """One number: fields and per-service history."""
    settings = _settings(redis_url, prefix)
    info = _run(settings, lambda store: store.number_info(check_number(number)))
    if info is None:
        err.print("[red]unknown number[/red]")
        raise typer.Exit(1)
    _print_json(info)


@app.command()
def stats(redis_url: RedisOpt = None, prefix: PrefixOpt = None) -> None:
    """Totals, devices, and the counts as GET_SERVICES would report them now."""
    settings = _settings(redis_url, prefix)

    async def body(store: PoolStore) -> dict[str, Any]:
        data = await store.stats()
        table = (await store.snapshot(settings.services)).table(settings.split_countries)
        data["counts"] = render_country_list(table, {})
        return data

    _print_json(_run(settings, body))


@app.command("audit")
def audit_trail(activation_id: int, redis_url: RedisOpt = None, prefix: PrefixOpt = None) -> None:
    """The activation and its audit events."""
    settings = _settings(redis_url, prefix)

    async def body(store: PoolStore) -> dict[str, Any]:
        events = await audit.read(store.redis, activation_id)
        return {"activation": await store.activation(activation_id), "events": events}

    data = _run(settings, body)
    if not data["activation"] and not data["events"]:
        err.print("[red]unknown activationId[/red]")
        raise typer.Exit(1)
    _print_json(data)


@app.command()
def unmatched(
    count: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    redis_url: RedisOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """The newest SMS/calls that arrived for a number without an open activation."""
    settings = _settings(redis_url, prefix)
    _print_json(_run(settings, lambda store: audit.read_unmatched(store.redis, count=count)))


@app.command()
def sims(
    suspect: Annotated[
        bool, typer.Option("--suspect", help="only SIMs whose streak reached POOL_SUSPECT_STREAK")
    ] = False,
    device: Annotated[str | None, typer.Option("--device", help="only this device's SIMs")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000)] = 200,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    redis_url: RedisOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """SIM health: activations issued, sold, refused, cancelled, refunded, SMS, last SMS, and the streak of
    activations that ended without an SMS."""
    settings = _settings(redis_url, prefix)
    name = check_device(device) if device is not None else None

    async def body(store: PoolStore) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        cursor = 0
        while len(rows) < limit:
            cursor, page = await store.sims(suspect=suspect, device=name, cursor=cursor, count=500)
            rows += page
            if cursor == 0:
                break
        return sorted(rows, key=lambda r: (r["device"], r["number"]))[:limit]

    rows = _run(settings, body)
    if as_json:
        _print_json(rows)
        return
    table = Table("number", "device", "slot", "online", "issued", "sold", "refused", "cancelled", "refunded", "sms",
                  "last SMS (UTC)", "streak", "suspect")  # fmt: skip
    for r in rows:
        last = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["last_sms_ms"] / 1000)) if r["last_sms_ms"] else "-"
        table.add_row(
            str(r["number"]), r["device"], r["slot"], "yes" if r["online"] else "no",
            *(str(r[f]) for f in ("issued", "sold", "refused", "cancelled", "refunded", "sms")),
            last, str(r["streak"]), "yes" if r["suspect"] else "",
        )  # fmt: skip
    console.print(table)


@app.command()
def earnings(
    since: Annotated[str, typer.Option(help="the last N days, today included (e.g. 7d)")] = "7d",
    by: Annotated[str, typer.Option(help="some of day,upstream,service,country")] = "upstream,service,country",
    as_json: Annotated[bool, typer.Option("--json")] = False,
    redis_url: RedisOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """Earnings (sold minus refunded, per currency, never mixed), issued/sold/cancelled counts, sell-through."""
    settings = _settings(redis_url, prefix)
    try:
        days = earning_days(since)
        dimensions = earning_dimensions(by)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    rows = summarize_earnings(_run(settings, lambda store: store.earnings(days)), dimensions)
    if as_json:
        _print_json({"since": days[0], "until": days[-1], "by": dimensions, "rows": rows})
        return
    table = Table(*dimensions, "currency", "issued", "sold", "refused", "cancelled", "refunded", "sell-through",
                  "earned", title=f"{days[0]} .. {days[-1]} (UTC)")  # fmt: skip
    for r in rows:
        table.add_row(
            *(str(r[d]) for d in dimensions), r["currency"],
            *(str(r[f]) for f in ("issued", "sold", "refused", "cancelled", "refunded")),
            f"{r['sell_through'] * 100:.1f} %", r["amount"],
        )  # fmt: skip
    console.print(table)
