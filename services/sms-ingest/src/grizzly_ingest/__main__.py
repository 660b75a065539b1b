"""grizzly-ingest: the SMS webhooks (modem banks, Android gateways, generic JSON) that hand SMS to Kafka.
Settings come from the environment only (docs/configuration.md): read them, configure logging, serve the webhooks."""

from __future__ import annotations

import sys

from grizzly_common.entry import parse_args, settings_or_exit
from grizzly_common.web import serve

from grizzly_ingest.app import create_app
from grizzly_ingest.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parse_args("grizzly-ingest", "grizzly-sms-ingest", __doc__, argv)
    settings = settings_or_exit("grizzly-ingest", "sms-ingest", Settings.from_env)
    serve(create_app(settings), settings.host, settings.port, settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
