"""grizzly-pusher: consume inbound messages from Kafka and deliver PUSH_SMS / PUSH_CALL / PUSH_CALL_RECORD.
Settings come from the environment only (docs/configuration.md)."""

from __future__ import annotations

import argparse
import signal
import sys
from importlib.metadata import version
from types import FrameType

from grizzly_common.logging import configure_logging
from grizzly_common.settings import SettingsError, environ
from grizzly_common.web import serve

from grizzly_pusher.app import crashed, create_app
from grizzly_pusher.settings import Settings


def _after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    """uvicorn re-raises SIGTERM once it has shut down gracefully; by then every record is done: exit 0."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="grizzly-pusher", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('grizzly-pusher')}")
    parser.parse_args(argv)
    try:
        settings = Settings.from_env(environ())
        configure_logging("pusher", settings.log_level)
    except SettingsError as exc:
        sys.stderr.write(f"grizzly-pusher: {exc}\n")
        sys.exit(2)
    signal.signal(signal.SIGTERM, _after_graceful_shutdown)
    app = create_app(settings)
    serve(app, settings.host, settings.port, settings.log_level)
    sys.exit(1 if crashed(app) else 0)


if __name__ == "__main__":
    main()
