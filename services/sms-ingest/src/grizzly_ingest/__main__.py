"""grizzly-ingest: the SMS webhooks (modem banks, Android gateways, generic JSON) that hand SMS to Kafka.
Settings come from the environment only (docs/configuration.md): read them, configure logging, serve the webhooks."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version

from grizzly_common.logging import configure_logging
from grizzly_common.settings import SettingsError, environ
from grizzly_common.web import serve

from grizzly_ingest.app import create_app
from grizzly_ingest.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grizzly-ingest", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('grizzly-sms-ingest')}")
    parser.parse_args(argv)
    try:
        settings = Settings.from_env(environ())
        configure_logging("sms-ingest", settings.log_level)
    except SettingsError as exc:
        sys.stderr.write(f"grizzly-ingest: {exc}\n")
        return 2
    serve(create_app(settings), settings.host, settings.port, settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
