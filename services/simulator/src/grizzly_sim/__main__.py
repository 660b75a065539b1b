"""grizzly-sim: a stand-in for the platform, configured from SIM_* environment variables only
(docs/conformance.md, docs/configuration.md)."""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import version

from grizzly_common.logging import configure_logging, log_fields
from grizzly_common.settings import SettingsError, environ
from grizzly_common.web import serve

from grizzly_sim.app import create_app
from grizzly_sim.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="grizzly-sim", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('grizzly-simulator')}")
    parser.parse_args(argv)
    try:
        settings = Settings.from_env(environ())
        configure_logging("grizzly-sim", settings.log_level)
    except SettingsError as exc:
        sys.stderr.write(f"grizzly-sim: {exc}\n")
        sys.exit(2)
    logging.getLogger(__name__).info(
        "simulated platform starting",
        extra=log_fields(partner_url=settings.partner_url, port=settings.port, seed=settings.seed),
    )
    serve(create_app(settings), settings.host, settings.port, settings.log_level)


if __name__ == "__main__":
    main()
