"""grizzly-console: the operator console (web pages over the pool's and the pusher's admin APIs).
Settings come from the environment only (docs/configuration.md)."""

from __future__ import annotations

from grizzly_common.entry import parse_args, settings_or_exit
from grizzly_common.web import serve

from grizzly_console.app import create_app
from grizzly_console.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parse_args("grizzly-console", "grizzly-console", __doc__, argv)
    settings = settings_or_exit("grizzly-console", "console", Settings.from_env)
    serve(
        create_app(settings),
        settings.host,
        settings.port,
        settings.log_level,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


if __name__ == "__main__":
    main()
