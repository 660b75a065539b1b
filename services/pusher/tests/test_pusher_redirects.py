"""A push carries the protocol key in its body: a redirect is an answer to retry, never a hop to follow."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiohttp
from aiohttp import web
from grizzly_common.settings import Upstream
from grizzly_pusher.delivery import Pusher


def test_a_redirect_is_not_followed_and_counts_as_a_failed_push() -> None:
    async def run() -> tuple[str, int | None, list[str]]:
        seen: list[str] = []

        async def push(request: web.Request) -> web.Response:
            seen.append(request.path)
            raise web.HTTPTemporaryRedirect("/elsewhere")  # 307: a client that follows it re-sends the body

        async def elsewhere(request: web.Request) -> web.Response:
            seen.append(request.path)
            return web.json_response({"status": "SUCCESS"})

        app = web.Application()
        app.router.add_post("/push", push)
        app.router.add_post("/elsewhere", elsewhere)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        upstream = Upstream("grizzly", "k" * 12, f"http://127.0.0.1:{port}/push", "ua", False, 5.0)
        try:
            async with aiohttp.ClientSession() as session:
                result = await Pusher.send(SimpleNamespace(session=session), upstream, "sms", b"{}", {})  # type: ignore[arg-type]
        finally:
            await runner.cleanup()
        return result.result, result.http_status, seen

    result, status, seen = asyncio.run(run())
    assert (result, status, seen) == ("http_error", 307, ["/push"])
