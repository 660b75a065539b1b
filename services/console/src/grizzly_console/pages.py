"""The pages. Each asks the admin APIs what it shows (in parallel) and renders one template; a panel whose API
failed shows why, the rest of the page still renders. Changes are POSTs (CSRF checked in app.page) that call an
admin API with X-Operator and redirect back with what happened."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from grizzly_common.messages import is_digits
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, RedirectResponse, Response

from grizzly_console.admin_api import AdminApi, AdminFailure
from grizzly_console.app import Page, bad_input
from grizzly_console.format import when

DEVICE = re.compile(r"[A-Za-z0-9_.:@/-]{1,128}")  # the pool's device names
PARKED_ID = re.compile(r"\d{1,20}-\d{1,20}")  # a Redis stream id
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
NUMBER = re.compile(r"\+?\d{5,20}")
SERVICE_FILTER = re.compile(r"[A-Za-z0-9_.-]{0,64}")
# act:{id}.status: open, released (a claim never given out), or the first FINISH_ACTIVATION status
STATUSES = {"": "any", "open": "open", "3": "3: sold", "1": "1: blocked", "4": "4: cancelled", "5": "5: refunded",
            "released": "released"}  # fmt: skip
SMS_STATUSES = ("", "pending", "retrying", "pushed", "parked")
COUNTS_ROWS = 60  # rows of a platform's counts on the overview (the busiest first)


@dataclass
class Got:
    """What one admin call gave: its answer, or the message to show instead."""

    data: Any = None
    error: str = ""
    missing: bool = False  # the API has no such route yet (an older version): the panel is left out
    status: int = 0  # the API's HTTP status when it refused (404: unknown item)

    @property
    def ok(self) -> bool:
        return not self.error


async def got(call: Awaitable[Any]) -> Got:
    try:
        return Got(await call)
    except AdminFailure as exc:
        return Got(error=exc.message, missing=exc.missing, status=exc.status)


async def _upstream_names(pusher: AdminApi) -> tuple[list[str], Got]:
    upstreams = await got(pusher.get("/admin/upstreams"))
    if upstreams.ok and isinstance(upstreams.data, dict):
        names = [str(u.get("name", "")) for u in upstreams.data.get("upstreams", []) if isinstance(u, dict)]
        return [n for n in names if n], upstreams
    return [], upstreams


def _count_rows(country_list: Any) -> list[tuple[str, str, str, int]]:
    """{"countryList": [{"country", "operatorMap": {op: {service: n}}}]} as rows, the largest counts first."""
    rows = []
    for country in country_list if isinstance(country_list, list) else []:
        operators = country.get("operatorMap", {}) if isinstance(country, dict) else {}
        for operator, services in operators.items() if isinstance(operators, dict) else []:
            for service, count in services.items() if isinstance(services, dict) else []:
                rows.append((str(country.get("country", "")), str(operator), str(service), int(count or 0)))
    rows.sort(key=lambda r: (-r[3], r))
    return rows


async def _pool_totals(pool: AdminApi) -> Got:
    """numbers, free, busy, offline, devices, devices_dead, suspects: /admin/overview, or (an older pool) the
    same figures from /admin/stats."""
    overview = await got(pool.get("/admin/overview"))
    if not overview.missing:
        return overview
    stats = await got(pool.get("/admin/stats"))
    if not stats.ok:
        return stats
    devices = stats.data.get("devices", {})
    numbers, free, busy = int(stats.data.get("numbers", 0)), int(stats.data.get("free_online", 0)), 0
    busy = int(stats.data.get("active", 0))
    return Got(
        {
            "numbers": numbers,
            "free": free,
            "busy": busy,
            "offline": max(numbers - free - busy, 0),
            "devices": len(devices),
            "devices_dead": sum(1 for d in devices.values() if not d.get("alive", True)),
            "suspects": None,
        }
    )


def _earning_totals(answer: Got) -> list[dict[str, Any]]:
    return list(answer.data.get("rows", [])) if answer.ok and isinstance(answer.data, dict) else []


async def overview(page: Page) -> Response:
    names, upstreams = await _upstream_names(page.pusher)
    count_calls = [page.pool.get("/admin/counts", {"upstream": name}) for name in names] or [
        page.pool.get("/admin/counts")
    ]
    totals, today, week, suspects, stats, parked, *counts = await asyncio.gather(
        _pool_totals(page.pool),
        got(page.pool.get("/admin/earnings", {"since": "1d", "by": ""})),
        got(page.pool.get("/admin/earnings", {"since": "7d", "by": ""})),
        got(page.pool.get("/admin/sims", {"suspect": 1, "count": 50})),
        got(page.pusher.get("/admin/stats")),
        got(page.pusher.get("/admin/parked", {"count": 1})),
        *[got(call) for call in count_calls],
    )
    platforms = []
    for name, answer in zip(names or ["(the pool's default platform)"], counts, strict=True):
        rows = _count_rows(answer.data.get("countryList")) if answer.ok else []
        platforms.append(
            {"name": name, "error": answer.error, "rows": rows[:COUNTS_ROWS], "more": max(len(rows) - COUNTS_ROWS, 0)}
        )
    return page.render(
        "overview.html",
        title="Overview",
        totals=totals,
        platforms=platforms,
        upstreams_error="" if upstreams.ok or upstreams.missing else upstreams.error,
        today=_earning_totals(today),
        week=_earning_totals(week),
        earnings_error=today.error or week.error,
        suspects=suspects,
        stats=stats,
        parked=parked,
    )


async def sms_per_minute(page: Page) -> Response:
    """The overview chart's data: SMS per minute over the last hour (pusher /admin/stats)."""
    stats = await got(page.pusher.get("/admin/stats"))
    if stats.missing:
        return JSONResponse({"note": "SMS per minute: not served by this version of the pusher's admin API yet."})
    if not stats.ok:
        return JSONResponse({"error": stats.error, "labels": [], "series": []})
    points = [p for p in stats.data.get("sms_per_minute", []) if isinstance(p, list) and len(p) == 2]
    return JSONResponse(
        {
            "type": "bar",
            "labels": [when(p[0])[11:16] for p in points],
            "series": [{"label": "SMS per minute", "data": [p[1] for p in points]}],
        }
    )


# -- devices -------------------------------------------------------------------------------------------------------


async def _device_rows(pool: AdminApi, q: str, offset: int, count: int) -> Got:
    """GET /admin/devices, or (an older pool) the devices of /admin/stats in the same shape."""
    answer = await got(pool.get("/admin/devices", {"q": q, "offset": offset, "count": count}))
    if not answer.missing:
        return answer
    stats = await got(pool.get("/admin/stats"))
    if not stats.ok:
        return stats
    rows = []
    for name, d in sorted(stats.data.get("devices", {}).items()):
        if q and q.lower() not in name.lower():
            continue
        rows.append(
            {
                "device": name,
                "online": d.get("online"),
                "alive": d.get("alive"),
                "cap": d.get("cap") or None,
                "numbers": d.get("numbers"),
                "free": None,
                "busy": d.get("active"),
                "offline": None,
                "last_seen_ms": d.get("seen_ms") or None,
                "suspects": None,
            }
        )
    return Got({"total": len(rows), "devices": rows[offset : offset + count]})


def _int(text: str, default: int, low: int = 0, high: int = 1_000_000) -> int:
    try:
        return min(max(int(text), low), high)
    except ValueError:
        return default


async def devices(page: Page) -> Response:
    q = page.param("q", limit=128)
    offset = _int(page.param("offset"), 0)
    count = 100
    device = page.param("device", limit=128)
    rows, sims = await asyncio.gather(
        _device_rows(page.pool, q, offset, count),
        got(page.pool.get("/admin/sims", {"device": device})) if device else _none(),
    )
    return page.render(
        "devices.html",
        title="Devices and SIMs",
        q=q,
        offset=offset,
        count=count,
        rows=rows,
        device=device,
        sims=sims,
    )


async def _none() -> Got:
    return Got()


async def set_device(page: Page) -> Response:
    """One device's online flag or its cap (0 or empty: no limit)."""
    device = page.field("device", 200)
    back = page.field("back", 300)
    back = back if back.startswith("/devices") else "/devices"
    if not DEVICE.fullmatch(device):
        return bad_input(page, "device must be 1-128 of A-Z a-z 0-9 _ . : @ / -")
    change: dict[str, Any] = {}
    if page.field("online") in ("0", "1"):
        change["online"] = page.field("online") == "1"
    if "cap" in (page.form or {}):
        cap_text = page.field("cap", 12) or "0"
        if not is_digits(cap_text) or int(cap_text) > 1_000_000:
            return bad_input(page, "cap must be a whole number from 0 (no limit) to 1000000")
        change["cap"] = int(cap_text)
    if not change:
        return bad_input(page, "nothing to change: send online (0 or 1) or cap")
    try:
        await page.pool.post(f"/admin/devices/{quote(device, safe='')}", page.operator, change)
    except AdminFailure as exc:
        page.changed("device", exc.message, device=device, **change)
        return page.redirect(back, ("error", f"{device}: {exc.message}"))
    page.changed("device", "done", device=device, **change)
    said = ", ".join(f"cap {v or 'none'}" if k == "cap" else ("online" if v else "offline") for k, v in change.items())
    return page.redirect(back, ("ok", f"{device}: {said}"))


# -- numbers, activations ------------------------------------------------------------------------------------------


async def numbers(page: Page) -> Response:
    number = page.param("number", limit=32).lstrip("+")
    cursor = _int(page.param("cursor"), 0, 0, 2**62)
    if number and not NUMBER.fullmatch(number):
        return bad_input(page, "a number is 5-20 digits")
    found = await got(page.pool.get(f"/admin/numbers/{number}")) if number else Got()
    listing = await got(page.pool.get("/admin/numbers", {"cursor": cursor, "count": 50})) if not number else Got()
    history = found.data.get("history") if found.ok and isinstance(found.data, dict) else None
    return page.render(
        "numbers.html",
        title="Numbers",
        number=number,
        found=found,
        history_rows=history if isinstance(history, list) else None,
        history_map=history if isinstance(history, dict) else None,
        listing=listing,
        cursor=cursor,
        statuses=STATUSES,
    )


async def activations(page: Page) -> Response:
    wanted = page.param("id", limit=24)
    if wanted:
        if not is_digits(wanted):
            return bad_input(page, "an activation id is a whole number")
        return RedirectResponse(f"/activations/{wanted}", status_code=303)
    filters = {
        "status": page.param("status", limit=16),
        "upstream": page.param("upstream", limit=32),
        "service": page.param("service", limit=64),
        "number": page.param("number", limit=24).lstrip("+"),
        "country": page.param("country", limit=16),
    }
    before = page.param("before", limit=24)
    if filters["status"] not in STATUSES:
        return bad_input(page, f"status must be one of {', '.join(s for s in STATUSES if s)}")
    if filters["number"] and not NUMBER.fullmatch(filters["number"]):
        return bad_input(page, "a number is 5-20 digits")
    if before and not is_digits(before):
        return bad_input(page, "before must be an activation id")
    params: dict[str, str | int] = {k: v for k, v in filters.items() if v}
    if before:
        params["before"] = before
    params["count"] = 50
    listing = await got(page.pool.get("/admin/activations", params))
    next_link = ""
    if listing.ok and listing.data.get("next"):
        next_link = "?" + urlencode({**{k: v for k, v in filters.items() if v}, "before": listing.data["next"]})
    return page.render(
        "activations.html", title="Activations", filters=filters, statuses=STATUSES, listing=listing,
        next_link=next_link,
    )  # fmt: skip


async def activation(page: Page) -> Response:
    activation_id = page.request.path_params["activation_id"]
    if not is_digits(str(activation_id)) or len(str(activation_id)) > 20:
        return bad_input(page, "an activation id is a whole number")
    shown = await got(page.pool.get(f"/admin/activations/{activation_id}"))
    return page.render("activation.html", title=f"Activation {activation_id}", activation_id=activation_id,
                       shown=shown)  # fmt: skip


# -- SMS, queue, parked ----------------------------------------------------------------------------------------------


async def sms(page: Page) -> Response:
    status = page.param("status", limit=16)
    activation_filter = page.param("activation", limit=24)
    if status not in SMS_STATUSES:
        return bad_input(page, f"status must be one of {', '.join(s for s in SMS_STATUSES if s)}")
    if activation_filter and not is_digits(activation_filter):
        return bad_input(page, "activation must be an activation id")
    params: dict[str, str | int] = {"count": 100}
    if status:
        params["status"] = status
    if activation_filter:
        params["activation"] = activation_filter
    matched, unmatched = await asyncio.gather(
        got(page.pusher.get("/admin/sms", params)), got(page.pool.get("/admin/unmatched", {"count": 50}))
    )
    return page.render(
        "sms.html", title="SMS log", status=status, statuses=SMS_STATUSES, activation=activation_filter,
        matched=matched, unmatched=unmatched,
    )  # fmt: skip


async def queue(page: Page) -> Response:
    after = page.param("after", limit=48)
    if after and not PARKED_ID.fullmatch(after):
        return bad_input(page, "after must be a parked entry id")
    params: dict[str, str | int] = {"count": 100}
    if after:
        params["after"] = after
    retries, parked = await asyncio.gather(
        got(page.pusher.get("/admin/queue", {"count": 100})), got(page.pusher.get("/admin/parked", params))
    )
    return page.render("queue.html", title="Push queue and parked SMS", retries=retries, parked=parked, after=after)


async def parked_action(page: Page) -> Response:
    entry_id = page.field("id", 48)
    action = page.request.path_params["action"]
    if action not in ("repush", "delete"):
        return page.render("error.html", 404, title="Not found", message="There is no such page.")
    if not PARKED_ID.fullmatch(entry_id):
        return bad_input(page, "id must be a parked entry id")
    try:
        answer = await page.pusher.post(f"/admin/parked/{entry_id}/{action}", page.operator)
    except AdminFailure as exc:
        page.changed(f"parked_{action}", exc.message, parked_id=entry_id)
        return page.redirect("/queue", ("error", f"{action} {entry_id}: {exc.message}"))
    page.changed(f"parked_{action}", "done", parked_id=entry_id)
    if action == "repush":
        outcome = answer.get("outcome", "") if isinstance(answer, dict) else ""
        text = {"scheduled": "re-pushed (due now)", "already_delivered": "was delivered already: nothing re-pushed"}
        return page.redirect("/queue", ("ok", f"{entry_id}: {text.get(outcome, outcome)}"))
    return page.redirect("/queue", ("ok", f"{entry_id}: deleted"))


async def repush_all(page: Page) -> Response:
    """Every parked entry, in the pusher's bounded batches (at most 50 of them per click)."""
    after, until, done, skipped = "", "", 0, 0
    try:
        for _ in range(50):
            params: dict[str, str | int] = {"count": 200}
            if after:
                params["after"] = after
            if until:
                params["until"] = until
            answer = await page.pusher.post("/admin/parked/repush", page.operator, params=params)
            done += int(answer.get("scheduled", 0)) + int(answer.get("already_delivered", 0))
            skipped += len(answer.get("skipped", []))
            after, until = answer.get("next") or "", answer.get("until") or until
            if not after:
                break
    except AdminFailure as exc:
        page.changed("parked_repush_all", exc.message, repushed=done)
        return page.redirect("/queue", ("error", f"re-push all stopped after {done}: {exc.message}"))
    page.changed("parked_repush_all", "done", repushed=done, skipped=skipped)
    return page.redirect("/queue", ("ok", f"re-push all: {done} re-pushed, {skipped} left (cannot be re-pushed)"))


# -- earnings, upstreams, audit ------------------------------------------------------------------------------------


async def earnings(page: Page) -> Response:
    since = page.param("since", "7d", limit=8)
    if not re.fullmatch(r"\d{1,3}d?", since):
        return bad_input(page, "since is a number of days, e.g. 7d")
    table = await got(page.pool.get("/admin/earnings", {"since": since, "by": "upstream,service,country"}))
    return page.render("earnings.html", title="Earnings", since=since, table=table)


async def earnings_chart(page: Page) -> Response:
    since = page.param("since", "7d", limit=8)
    if not re.fullmatch(r"\d{1,3}d?", since):
        return JSONResponse({"error": "since is a number of days", "labels": [], "series": []}, 400)
    answer = await got(page.pool.get("/admin/earnings", {"since": since, "by": "day"}))
    if not answer.ok:
        return JSONResponse({"error": answer.error, "labels": [], "series": []})
    rows = answer.data.get("rows", [])
    days = _days(str(answer.data.get("since", "")), str(answer.data.get("until", ""))) or sorted(
        {str(r.get("day", "")) for r in rows}
    )
    currencies = sorted({str(r.get("currency", "")) for r in rows})
    amounts = {(str(r.get("day")), str(r.get("currency"))): float(r.get("amount") or 0) for r in rows}
    return JSONResponse(
        {
            "type": "bar",
            "labels": days,
            "series": [{"label": c, "data": [amounts.get((d, c), 0.0) for d in days]} for c in currencies],
        }
    )


def _days(since: str, until: str) -> list[str]:
    """Every day from since to until (YYYY-MM-DD), so a day without sales is a gap in the chart, not missing."""
    try:
        first, last = date.fromisoformat(since), date.fromisoformat(until)
    except ValueError:
        return []
    count = (last - first).days + 1
    return [(first + timedelta(days=n)).isoformat() for n in range(count)] if 0 < count <= 800 else []


async def upstreams(page: Page) -> Response:
    answer = await got(page.pusher.get("/admin/upstreams"))
    return page.render("upstreams.html", title="Upstreams", answer=answer)


async def audit_page(page: Page) -> Response:
    answer = await got(page.pool.get("/admin/audit", {"count": 200}))
    events = answer.data.get("events", []) if answer.ok else []
    shown = []
    for event in events if isinstance(events, list) else []:
        if isinstance(event, dict):
            rest = {k: v for k, v in event.items() if k not in ("ts_ms", "event", "by")}
            shown.append({"ts_ms": event.get("ts_ms"), "event": event.get("event"), "by": event.get("by"),
                          "rest": rest})  # fmt: skip
    return page.render("audit.html", title="Operator audit", answer=answer, events=shown)


# -- CSV import ----------------------------------------------------------------------------------------------------


async def import_form(page: Page) -> Response:
    recent = await got(page.pool.get("/admin/imports"))
    return page.render("import.html", title="Import numbers", recent=recent)


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(1 << 16):
        yield chunk


async def import_upload(page: Page) -> Response:
    upload = page.form.get("file") if page.form is not None else None
    if not isinstance(upload, UploadFile) or not upload.filename:
        return bad_input(page, "choose a CSV file to import")
    try:
        answer = await page.pool.post("/admin/imports", page.operator, content=_chunks(upload), content_type="text/csv")
    except AdminFailure as exc:
        if not exc.missing:
            page.changed("import", exc.message, file=upload.filename[:100])
            return page.redirect("/import", ("error", f"{upload.filename}: {exc.message}"))
        return await _import_at_once(page, upload)  # an older pool: one request, no progress
    job = str(answer.get("job", "")) if isinstance(answer, dict) else ""
    page.changed("import", "started", file=upload.filename[:100], job=job[:64])
    if not JOB_ID.fullmatch(job):
        return page.redirect("/import", ("error", "pool admin API: the import started but gave no job id"))
    return page.redirect(f"/import/{job}", ("ok", f"{upload.filename}: import started"))


async def _import_at_once(page: Page, upload: UploadFile) -> Response:
    await upload.seek(0)
    try:
        answer = await page.pool.post("/admin/import", page.operator, content=_chunks(upload), content_type="text/csv")
    except AdminFailure as exc:
        return page.redirect("/import", ("error", f"{upload.filename}: {exc.message}"))
    return page.redirect(
        "/import",
        ("ok", f"{upload.filename}: {answer.get('rows', 0)} rows, {answer.get('added', 0)} added, "
               f"{answer.get('existing', 0)} already there"),
    )  # fmt: skip


async def import_job(page: Page) -> Response:
    job = page.request.path_params["job"]
    if not JOB_ID.fullmatch(job):
        return bad_input(page, "not an import job id")
    answer = await got(page.pool.get(f"/admin/imports/{job}"))
    progress = 0
    if answer.ok:
        total, done = int(answer.data.get("rows_total") or 0), int(answer.data.get("rows_done") or 0)
        progress = 100 if answer.data.get("state") == "done" else (min(100, done * 100 // total) if total else 0)
    return page.render("import_job.html", title="Import", job=job, answer=answer, progress=progress)


Handler = Callable[[Page], Awaitable[Response]]

ROUTES: list[tuple[str, Handler, list[str]]] = [
    ("/", overview, ["GET"]),
    ("/data/sms-per-minute", sms_per_minute, ["GET"]),
    ("/devices", devices, ["GET"]),
    ("/devices/set", set_device, ["POST"]),
    ("/numbers", numbers, ["GET"]),
    ("/activations", activations, ["GET"]),
    ("/activations/{activation_id}", activation, ["GET"]),
    ("/sms", sms, ["GET"]),
    ("/queue", queue, ["GET"]),
    ("/parked/repush-all", repush_all, ["POST"]),
    ("/parked/{action:str}", parked_action, ["POST"]),
    ("/earnings", earnings, ["GET"]),
    ("/data/earnings", earnings_chart, ["GET"]),
    ("/upstreams", upstreams, ["GET"]),
    ("/audit", audit_page, ["GET"]),
    ("/import", import_form, ["GET"]),
    ("/import", import_upload, ["POST"]),
    ("/import/{job}", import_job, ["GET"]),
]
