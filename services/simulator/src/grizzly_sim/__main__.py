"""grizzly-sim: a stand-in for the platform, configured from SIM_* environment variables only
(docs/conformance.md, docs/configuration.md)."""

from __future__ import annotations

import logging

from grizzly_common.entry import parse_args, settings_or_exit
from grizzly_common.logging import log_fields
from grizzly_common.web import serve

from grizzly_sim.app import create_app
from grizzly_sim.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parse_args("grizzly-sim", "grizzly-simulator", __doc__, argv)
    settings = settings_or_exit("grizzly-sim", "grizzly-sim", Settings.from_env)
    logging.getLogger(__name__).info(
        "simulated platform starting",
        extra=log_fields(partner_url=settings.partner_url, port=settings.port, seed=settings.seed),
    )
    serve(create_app(settings), settings.host, settings.port, settings.log_level)


if __name__ == "__main__":
    main()
