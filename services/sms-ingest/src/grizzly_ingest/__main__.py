"""grizzly-ingest: read the settings, configure logging, serve the webhooks."""

from __future__ import annotations

import sys

from grizzly_common.logging import configure_logging
from grizzly_common.settings import SettingsError, environ
from grizzly_common.web import serve

from grizzly_ingest.app import create_app
from grizzly_ingest.settings import Settings


def main() -> int:
    try:
        settings = Settings.from_env(environ())
    except SettingsError as exc:
        sys.stderr.write(f"grizzly-ingest: {exc}\n")
        return 2
    configure_logging("sms-ingest", settings.log_level)
    serve(create_app(settings), settings.host, settings.port, settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
