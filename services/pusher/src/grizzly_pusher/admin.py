"""The pusher's admin routes (on PUSHER_PORT, beside /metrics): parked records, and the operator console's view
(stats, the retry queue, recent SMS, upstreams: activity.py). Every route needs
`Authorization: Bearer $PUSHER_ADMIN_TOKEN` (constant-time compare); a wrong or missing token gets 401 JSON, and
without PUSHER_ADMIN_TOKEN the routes answer 403. Plain HTTP codes, as the pool's admin API: 400 bad input,
401 token, 404 unknown entry, 409 an entry that cannot be re-pushed, 503 Redis unavailable.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from grizzly_common.errors import Unavailable
from grizzly_common.messages import is_digits
from grizzly_common.web import app_state, json_response
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from grizzly_pusher import activity
from grizzly_pusher.parked import BadRequest, ParkedError, ParkedStore, check_operator
from grizzly_pusher.settings import Settings

log = logging.getLogger(__name__)
VIA = "admin-api"
DEFAULT_OPERATOR = "api"

Handler = Callable[[Request, Mapping[str, Any]], Awaitable[dict[str, Any]]]


def _int_param(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name, "")
    if not value:
        return default
    if len(value) > 20 or not is_digits(value.removeprefix("-")):
        raise BadRequest(f"{name} must be an integer")
    return int(value)


def operator(request: Request) -> str:
    """Who makes a change: the X-Operator header (checked: 1-64 of [A-Za-z0-9._@-], else 400), "api" without it."""
    if "x-operator" not in request.headers:
        return DEFAULT_OPERATOR
    return check_operator(request.headers["x-operator"])


def _count(request: Request, default: int, maximum: int) -> int:
    count = _int_param(request, "count", default)
    if not 1 <= count <= maximum:
        raise BadRequest(f"count must be between 1 and {maximum}")
    return count


def masked_url(url: str) -> str:
    """A push URL as the console shows it: a password in it, and the values of its query, masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    query = "&".join(f"{name}=***" for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


async def get_stats(request: Request, state: Mapping[str, Any]) -> dict[str, Any]:
    return await activity.stats(state["redis"])


async def get_queue(request: Request, state: Mapping[str, Any]) -> dict[str, Any]:
    return await activity.queue(state["redis"], count=_count(request, 100, activity.MAX_COUNT))


async def get_sms(request: Request, state: Mapping[str, Any]) -> dict[str, Any]:
    count = _count(request, 100, activity.MAX_COUNT)
    status = request.query_params.get("status", "") or None
    if status is not None and status not in activity.STATUSES:
        raise BadRequest(f"status must be one of {', '.join(activity.STATUSES)}")
    activation = None
    if request.query_params.get("activation", ""):
        activation = _int_param(request, "activation", 0)
        if activation < 1:
            raise BadRequest("activation must be a positive integer")
    found = await activity.recent_sms(state["redis"], count=count, activation=activation, status=status)
    return {"sms": found}


async def get_upstreams(request: Request, state: Mapping[str, Any]) -> dict[str, Any]:
    settings: Settings = state["settings"]
    names = [u.name for u in settings.upstreams]
    answers = await activity.upstream_answers(state["redis"], names)
    return {
        "upstreams": [
            {
                "name": u.name,
                "push_url": masked_url(u.push_url),
                "key_masked": activity.mask_key(u.key),
                "last_answers": answers[u.name],
            }
            for u in settings.upstreams
        ]
    }


async def list_parked(request: Request, state: Mapping[str, Any]) -> dict[str, Any]:
    parked: ParkedStore = state["parked"]
    entries, cursor = await parked.page(request.query_params.get("after", ""), _int_param(request, "count", 50))
    return {"total": await parked.count(), "entries": [e.summary() for e in entries], "next": cursor}


async def show_parked(request: Request, state: Mapping[str, Any]) -> dict[str, Any]:
    parked: ParkedStore = state["parked"]
    return (await parked.get(request.path_params["entry_id"])).detail()


async def repush_one(request: Request, state: Mapping[str, Any]) -> dict[str, Any]:
    parked: ParkedStore = state["parked"]
    return (await parked.repush(request.path_params["entry_id"], via=VIA, by=operator(request))).as_dict()


async def repush_all(request: Request, state: Mapping[str, Any]) -> dict[str, Any]:
    parked: ParkedStore = state["parked"]
    params = request.query_params
    return await parked.repush_batch(
        after=params.get("after", ""), until=params.get("until", ""), count=_int_param(request, "count", 100), via=VIA,
        by=operator(request),
    )  # fmt: skip


async def delete_parked(request: Request, state: Mapping[str, Any]) -> dict[str, Any]:
    parked: ParkedStore = state["parked"]
    entry = await parked.delete(request.path_params["entry_id"], via=VIA, by=operator(request))
    return {"id": entry.id, "deleted": True}


def admin_routes(admin_token: str, state_type: type[Mapping[str, Any]]) -> list[Route]:
    """The /admin routes; the app's lifespan state must hold "parked" (the ParkedStore), "redis" and "settings"."""
    token = ("Bearer " + admin_token).encode()

    def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not admin_token:
                return json_response({"status": "ERROR", "error": "admin API off: PUSHER_ADMIN_TOKEN is not set"}, 403)
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, token):
                return json_response({"status": "ERROR", "error": "unauthorized"}, 401)
            try:
                return json_response(await handler(request, app_state(request, state_type)))
            except ParkedError as exc:
                return json_response({"status": "ERROR", "error": exc.error}, exc.status)
            except Exception:
                log.exception("admin %s failed", request.url.path)
                return json_response({"status": "ERROR", "error": Unavailable.error}, 503)

        return endpoint

    return [
        Route("/admin/stats", guarded(get_stats), methods=["GET"]),
        Route("/admin/queue", guarded(get_queue), methods=["GET"]),
        Route("/admin/sms", guarded(get_sms), methods=["GET"]),
        Route("/admin/upstreams", guarded(get_upstreams), methods=["GET"]),
        Route("/admin/parked", guarded(list_parked), methods=["GET"]),
        Route("/admin/parked/repush", guarded(repush_all), methods=["POST"]),
        Route("/admin/parked/{entry_id}", guarded(show_parked), methods=["GET"]),
        Route("/admin/parked/{entry_id}/repush", guarded(repush_one), methods=["POST"]),
        Route("/admin/parked/{entry_id}/delete", guarded(delete_parked), methods=["POST"]),
    ]
