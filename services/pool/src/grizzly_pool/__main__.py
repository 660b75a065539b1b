"""grizzly-pool: without arguments (or `serve`) runs the internal API and the admin API in one process."""

from __future__ import annotations

import asyncio
import contextlib

import uvicorn
from grizzly_common.entry import settings_or_exit
from grizzly_common.web import freeze_imports, server_config

from grizzly_pool.admin import create_admin_app
from grizzly_pool.app import create_app, migrate_at_start
from grizzly_pool.settings import Settings


async def _serve_both(settings: Settings) -> None:
    def server(app: object, host: str, port: int) -> uvicorn.Server:
        config = server_config(app, host, port, settings.log_level)
        config.loop = "none"  # uvloop already runs (serve())
        return uvicorn.Server(config)

    await migrate_at_start(settings)
    internal = server(create_app(settings), settings.host, settings.port)
    admin = server(create_admin_app(settings), settings.admin_host, settings.admin_port)
    freeze_imports()
    tasks = [asyncio.create_task(internal.serve()), asyncio.create_task(admin.serve())]
    # when one server stops (signal, failed bind), stop the other too
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    internal.should_exit = admin.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


def serve() -> None:
    settings = settings_or_exit("grizzly-pool", "pool", Settings.from_env)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        asyncio.run(_serve_both(settings))
        return
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve_both(settings))


def main() -> None:
    from grizzly_pool.cli import app

    app(prog_name="grizzly-pool")


if __name__ == "__main__":
    main()
