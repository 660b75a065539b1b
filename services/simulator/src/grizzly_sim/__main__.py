"""grizzly-sim: a stand-in for the platform, configured from SIM_* environment variables only."""

from __future__ import annotations

import logging
import sys

from grizzly_common.logging import configure_logging, log_fields
from grizzly_common.settings import SettingsError, environ
from grizzly_common.web import serve

from grizzly_sim.app import create_app
from grizzly_sim.settings import Settings


def main() -> None:
    try:
        settings = Settings.from_env(environ())
    except SettingsError as exc:
        sys.stderr.write(f"grizzly-sim: {exc}\n")
        sys.exit(2)
    configure_logging("grizzly-sim", settings.log_level)
    logging.getLogger(__name__).info(
        "simulated platform starting",
        extra=log_fields(partner_url=settings.partner_url, port=settings.port, seed=settings.seed),
    )
    serve(create_app(settings), settings.host, settings.port, settings.log_level)


if __name__ == "__main__":
    main()
