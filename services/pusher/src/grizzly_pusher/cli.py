"""`grizzly-pusher parked ...`: list, show, re-push and delete parked records.

Like the pool's CLI, it talks to Redis directly (REDIS_URL), through the same ParkedStore and Lua script as the
pusher's admin API (/admin/parked), so it needs no admin token; a re-push is handed to the retry schedule and the
running pushers deliver it. Every action is logged (JSON lines on stderr) and recorded in the activation's audit
trail when the entry names one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer
from grizzly_common.logging import JsonFormatter
from grizzly_common.redis_client import make_redis
from grizzly_common.settings import SettingsError, audit_retention_s, env_str, environ
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from grizzly_pusher.parked import BadRequest, ParkedError, ParkedStore

VIA = "cli"  # also who made the change (X-Operator's value for the admin API): the CLI has no operator name
T = TypeVar("T")

app = typer.Typer(help="grizzly-pusher tools (without a command the service runs: grizzly-pusher)")
parked_app = typer.Typer(help="Records the pusher parked (pusher:parked): list, show, re-push after a fix, delete.")
app.add_typer(parked_app, name="parked")
console = Console()
err = Console(stderr=True)

RedisOpt = Annotated[str | None, typer.Option("--redis-url", help="default: $REDIS_URL")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output")]


@dataclass(frozen=True)
class CliSettings:
    redis_url: str
    audit_retention_s: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CliSettings:
        return cls(
            redis_url=env_str(env, "REDIS_URL", "redis://127.0.0.1:6379/0"),
            audit_retention_s=audit_retention_s(env),
        )


def _settings(redis_url: str | None) -> CliSettings:
    env = dict(environ())
    if redis_url:
        env["REDIS_URL"] = redis_url
    try:
        return CliSettings.from_env(env)
    except SettingsError as exc:
        err.print(str(exc), style="red", markup=False)
        raise typer.Exit(2) from None


def _log_to_stderr() -> None:
    """Operator actions are logged like the service's (JSON lines), on stderr so that --json output stays clean."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("pusher-cli"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _run(redis_url: str | None, body: Callable[[ParkedStore], Awaitable[T]]) -> T:
    settings = _settings(redis_url)
    _log_to_stderr()

    async def main() -> T:
        redis = make_redis(settings.redis_url, max_connections=2)
        try:
            return await body(ParkedStore(redis, audit_retention_s=settings.audit_retention_s))
        finally:
            await redis.aclose()  # make_redis: the client owns its pool and closes it

    try:
        return asyncio.run(main())
    except ParkedError as exc:
        err.print(exc.error, style="red", markup=False, highlight=False)
        raise typer.Exit(2 if isinstance(exc, BadRequest) else 1) from None


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def _cell(value: Any) -> Text:
    return Text("" if value is None else str(value))  # Text: never read as rich markup


@parked_app.command("list")
def list_parked(
    after: Annotated[str, typer.Option("--after", help="the last id of the previous page")] = "",
    count: Annotated[int, typer.Option("--count", min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
    redis_url: RedisOpt = None,
) -> None:
    """Parked entries, oldest first, a page at a time (--after the previous page's last id)."""

    async def body(store: ParkedStore) -> dict[str, Any]:
        entries, cursor = await store.page(after, count)
        return {"total": await store.count(), "entries": [e.summary() for e in entries], "next": cursor}

    page = _run(redis_url, body)
    if as_json:
        _print_json(page)
        return
    # ids are what an operator copies: never wrapped
    table = Table(Column("id", no_wrap=True), Column("reason", no_wrap=True), "smsId", "kind", "number", "upstream",
                  "re-push", "error")  # fmt: skip
    for e in page["entries"]:
        table.add_row(*(_cell(e.get(k)) for k in ("id", "reason", "sms_id", "kind", "number", "upstream")),
                      _cell("yes" if e["repushable"] else "no: undecodable"), _cell(e["error"][:80]))  # fmt: skip
    console.print(table)
    console.print(f"{len(page['entries'])} of {page['total']} parked", highlight=False)
    if page["next"]:
        console.print(f"next page: --after {page['next']}", highlight=False)


@parked_app.command()
def show(entry_id: str, as_json: JsonOpt = False, redis_url: RedisOpt = None) -> None:
    """One entry: its reason, error, origin, and raw value (escaped text and exact base64)."""

    async def body(store: ParkedStore) -> dict[str, Any]:
        return (await store.get(entry_id)).detail()

    detail = _run(redis_url, body)
    if as_json:
        _print_json(detail)
        return
    table = Table("field", "value", show_header=False)
    for key, value in detail.items():
        if key != "raw_b64":
            table.add_row(_cell(key), _cell(json.dumps(value) if isinstance(value, dict) else value))
    console.print(table)


@parked_app.command()
def repush(
    entry_id: Annotated[str | None, typer.Argument(help="the parked id (or --all)")] = None,
    everything: Annotated[bool, typer.Option("--all", help="every re-pushable entry, in batches")] = False,
    batch: Annotated[int, typer.Option("--batch", min=1, max=1000)] = 100,
    as_json: JsonOpt = False,
    redis_url: RedisOpt = None,
) -> None:
    """Hand parked pushes back to the retry schedule (same smsId; never after a SUCCESS). Run it after the fix."""
    if everything == (entry_id is not None):
        err.print("give a parked id or --all", style="red")
        raise typer.Exit(2)
    if entry_id is not None:
        chosen = entry_id
        result = _run(redis_url, lambda store: store.repush(chosen, via=VIA, by=VIA)).as_dict()
        if as_json:
            _print_json(result)
        else:
            console.print(f"{result['id']}: smsId {result['sms_id']} {result['outcome']}", highlight=False)
        return

    async def body(store: ParkedStore) -> dict[str, Any]:
        total: dict[str, Any] = {"scheduled": 0, "already_delivered": 0, "gone": 0, "skipped": []}
        after, until = "", ""
        while True:
            report = await store.repush_batch(after=after, until=until, count=batch, via=VIA, by=VIA)
            for key in ("scheduled", "already_delivered", "gone"):
                total[key] += report[key]
            total["skipped"] += report["skipped"]
            after, until = report["next"], report["until"]
            if not after:
                return total

    total = _run(redis_url, body)
    if as_json:
        _print_json(total)
        return
    console.print(
        f"scheduled {total['scheduled']}, already delivered {total['already_delivered']}, "
        f"gone meanwhile {total['gone']}, skipped (undecodable, still parked) {len(total['skipped'])}",
        highlight=False,
    )


@parked_app.command()
def delete(entry_id: str, as_json: JsonOpt = False, redis_url: RedisOpt = None) -> None:
    """Remove one entry once handled (the only way out for an undecodable one)."""

    async def body(store: ParkedStore) -> dict[str, Any]:
        entry = await store.delete(entry_id, via=VIA, by=VIA)
        return {"id": entry.id, "deleted": True}

    result = _run(redis_url, body)
    if as_json:
        _print_json(result)
    else:
        console.print(f"{result['id']} deleted", highlight=False)
