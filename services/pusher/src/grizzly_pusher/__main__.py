"""grizzly-pusher: consume inbound messages from Kafka and deliver PUSH_SMS / PUSH_CALL / PUSH_CALL_RECORD.
Settings come from the environment only (docs/configuration.md).
`grizzly-pusher parked --help`: list, show, re-push and delete parked records."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from grizzly_common.entry import parse_args, settings_or_exit
from grizzly_common.web import serve

from grizzly_pusher.app import crashed, create_app
from grizzly_pusher.settings import Settings


def _after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    """uvicorn re-raises SIGTERM once it has shut down gracefully; by then every record is done: exit 0."""


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["parked"]:
        from grizzly_pusher.cli import app as tools

        tools(args=args, prog_name="grizzly-pusher")
        return
    parse_args("grizzly-pusher", "grizzly-pusher", __doc__, argv)
    settings = settings_or_exit("grizzly-pusher", "pusher", Settings.from_env)
    signal.signal(signal.SIGTERM, _after_graceful_shutdown)
    app = create_app(settings)
    serve(app, settings.host, settings.port, settings.log_level)
    sys.exit(1 if crashed(app) else 0)


if __name__ == "__main__":
    main()
