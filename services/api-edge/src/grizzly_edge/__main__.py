"""grizzly-edge: settings, logging, then uvicorn."""

from __future__ import annotations

from grizzly_common.logging import configure_logging
from grizzly_common.settings import environ
from grizzly_common.web import serve

from grizzly_edge.app import create_app
from grizzly_edge.settings import Settings


def main() -> None:
    settings = Settings.from_env(environ())
    configure_logging("api-edge", settings.log_level)
    serve(create_app(settings), settings.host, settings.port, settings.log_level)


if __name__ == "__main__":
    main()
