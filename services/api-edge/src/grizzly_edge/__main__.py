"""grizzly-edge: the partner URL the platform POSTs to. Settings come from the environment only (docs/configuration.md);
this reads them, configures logging, then runs uvicorn."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version

from grizzly_common.logging import configure_logging
from grizzly_common.settings import SettingsError, environ
from grizzly_common.web import serve

from grizzly_edge.app import create_app
from grizzly_edge.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="grizzly-edge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('grizzly-api-edge')}")
    parser.parse_args(argv)
    try:
        settings = Settings.from_env(environ())
        configure_logging("api-edge", settings.log_level)
    except SettingsError as exc:
        sys.stderr.write(f"grizzly-edge: {exc}\n")
        sys.exit(2)
    serve(create_app(settings), settings.host, settings.port, settings.log_level)


if __name__ == "__main__":
    main()
