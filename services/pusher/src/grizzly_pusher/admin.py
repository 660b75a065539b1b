"""The pusher's admin routes (on PUSHER_PORT, beside /metrics): parked records. Every route needs
`Authorization: Bearer $PUSHER_ADMIN_TOKEN` (constant-time compare); a wrong or missing token gets 401 JSON, and
without PUSHER_ADMIN_TOKEN the routes answer 403. Plain HTTP codes, as the pool's admin API: 400 bad input,
401 token, 404 unknown entry, 409 an entry that cannot be re-pushed, 503 Redis unavailable.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from grizzly_common.errors import Unavailable
from grizzly_common.web import app_state, json_response
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from grizzly_pusher.parked import BadRequest, ParkedError, ParkedStore

log = logging.getLogger(__name__)
VIA = "admin-api"

Handler = Callable[[Request, ParkedStore], Awaitable[dict[str, Any]]]


def _int_param(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None


async def list_parked(request: Request, parked: ParkedStore) -> dict[str, Any]:
    entries, cursor = await parked.page(request.query_params.get("after", ""), _int_param(request, "count", 50))
    return {"total": await parked.count(), "entries": [e.summary() for e in entries], "next": cursor}


async def show_parked(request: Request, parked: ParkedStore) -> dict[str, Any]:
    return (await parked.get(request.path_params["entry_id"])).detail()


async def repush_one(request: Request, parked: ParkedStore) -> dict[str, Any]:
    return (await parked.repush(request.path_params["entry_id"], via=VIA)).as_dict()


async def repush_all(request: Request, parked: ParkedStore) -> dict[str, Any]:
    params = request.query_params
    return await parked.repush_batch(
        after=params.get("after", ""), until=params.get("until", ""), count=_int_param(request, "count", 100), via=VIA
    )


async def delete_parked(request: Request, parked: ParkedStore) -> dict[str, Any]:
    entry = await parked.delete(request.path_params["entry_id"], via=VIA)
    return {"id": entry.id, "deleted": True}


def admin_routes(admin_token: str, state_type: type[Mapping[str, Any]]) -> list[Route]:
    """The /admin routes; the app's lifespan state must hold the ParkedStore as "parked"."""
    token = ("Bearer " + admin_token).encode()

    def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not admin_token:
                return json_response({"status": "ERROR", "error": "admin API off: PUSHER_ADMIN_TOKEN is not set"}, 403)
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, token):
                return json_response({"status": "ERROR", "error": "unauthorized"}, 401)
            try:
                return json_response(await handler(request, app_state(request, state_type)["parked"]))
            except ParkedError as exc:
                return json_response({"status": "ERROR", "error": exc.error}, exc.status)
            except Exception:
                log.exception("admin %s failed", request.url.path)
                return json_response({"status": "ERROR", "error": Unavailable.error}, 503)

        return endpoint

    return [
        Route("/admin/parked", guarded(list_parked), methods=["GET"]),
        Route("/admin/parked/repush", guarded(repush_all), methods=["POST"]),
        Route("/admin/parked/{entry_id}", guarded(show_parked), methods=["GET"]),
        Route("/admin/parked/{entry_id}/repush", guarded(repush_one), methods=["POST"]),
        Route("/admin/parked/{entry_id}/delete", guarded(delete_parked), methods=["POST"]),
    ]
