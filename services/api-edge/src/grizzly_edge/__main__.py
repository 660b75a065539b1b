"""grizzly-edge: the partner URL the platform POSTs to. Settings come from the environment only (docs/configuration.md);
this reads them, configures logging, then runs uvicorn."""

from __future__ import annotations

from grizzly_common.entry import parse_args, settings_or_exit
from grizzly_common.web import serve

from grizzly_edge.app import create_app
from grizzly_edge.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parse_args("grizzly-edge", "grizzly-api-edge", __doc__, argv)
    settings = settings_or_exit("grizzly-edge", "api-edge", Settings.from_env)
    serve(
        create_app(settings),
        settings.host,
        settings.port,
        settings.log_level,
        also=(settings.ops_host, settings.ops_port) if settings.ops_port else None,
        ssl_certfile=settings.tls_certfile,
        ssl_keyfile=settings.tls_keyfile,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


if __name__ == "__main__":
    main()
