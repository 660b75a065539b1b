"""Every logger of every service goes through the one JSON formatter, so secrets are redacted on all of them: each
service's modules are imported in a fresh interpreter, logging configured as its entry point does (uvicorn's config
included), then a record carrying secrets is logged through every logger that exists."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

SECRET = "s3cr3t-Value-0123456789"
SERVICES = {
    "api-edge": ("grizzly_edge.app", "grizzly_edge.__main__"),
    "pool": ("grizzly_pool.app", "grizzly_pool.admin", "grizzly_pool.__main__"),
    "sms-ingest": ("grizzly_ingest.app", "grizzly_ingest.__main__"),
    "pusher": ("grizzly_pusher.app", "grizzly_pusher.__main__"),
    "simulator": ("grizzly_sim.app", "grizzly_sim.__main__"),
}

PROBE = """
import importlib, logging, sys
for module in sys.argv[2:]:
    importlib.import_module(module)
from grizzly_common.logging import configure_logging, log_fields
from grizzly_common.web import server_config
configure_logging(sys.argv[1], "DEBUG")
server_config(object(), "127.0.0.1", 1, "info")  # what serve() configures before it runs
secret = "{secret}"
names = ["", *sorted(logging.Logger.manager.loggerDict)]
for name in names:
    logger = logging.getLogger(name)
    if isinstance(logger, logging.PlaceHolder):
        continue
    logger.disabled = False
    logger.setLevel(logging.DEBUG)
    try:
        raise ValueError("Authorization: Bearer " + secret)
    except ValueError:
        logger.error(
            "probe %s key=%s Bearer %s redis://:%s@redis/0", name or "root", secret, secret, secret, exc_info=True,
            extra=log_fields(token=secret, error="Authorization: Bearer " + secret, request={{"key": secret}}),
        )
"""


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_no_secret_reaches_the_output_of_any_logger(service: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(secret=SECRET), service, *SERVICES[service]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout and SECRET not in done.stderr
    lines = [orjson.loads(line) for line in done.stdout.splitlines()]
    probed = {line["msg"].split()[1] for line in lines if line["msg"].startswith("probe ")}
    assert {"root", "uvicorn.error", "grizzly_common.web"} <= probed
    assert any(name.startswith(("grizzly_edge", "grizzly_pool", "grizzly_ingest", "grizzly_pusher", "grizzly_sim"))
               for name in probed)  # fmt: skip
    assert all(line["service"] == service for line in lines)
    assert done.stderr == ""  # nothing printed past the formatter
