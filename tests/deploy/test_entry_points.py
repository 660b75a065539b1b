"""Every console script of every workspace member, run as an operator would: --help and --version answer with exit 0
and no environment at all, and a bad setting is one line naming the variable, not a traceback.

The scripts are read from each pyproject's [project.scripts], so a new one is covered without touching this file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.deploy import env_scan

ROOT = env_scan.ROOT
BIN = Path(sys.executable).parent
# the scripts that read settings when started, with the port each listens on
SERVERS = {
    "grizzly-edge": "EDGE_PORT",
    "grizzly-pool": "POOL_PORT",
    "grizzly-ingest": "INGEST_PORT",
    "grizzly-pusher": "PUSHER_PORT",
    "grizzly-sim": "SIM_PORT",
    "grizzly-console": "CONSOLE_PORT",
}
SECRET = "entry-point-test-secret-0001"  # passes every placeholder check
REQUIRED = {
    "UPSTREAM_GRIZZLY_KEY": SECRET,
    "UPSTREAM_GRIZZLY_PUSH_URL": "http://127.0.0.1:9/agent/api/sms",
    "POOL_ADMIN_TOKEN": SECRET,
    "POOL_API_TOKEN": SECRET + "-pool",
    "INGEST_TOKEN": SECRET,
    "SIM_KEY": SECRET,
    "PUSHER_ADMIN_TOKEN": SECRET + "-pusher",
    "CONSOLE_OPERATORS": "admin",
    "CONSOLE_OPERATOR_ADMIN_TOKEN": SECRET + "-operator",
    "CONSOLE_SESSION_SECRET": SECRET + "-session",
}


def scripts() -> dict[str, str]:
    """script name -> distribution name, for every member of the workspace."""
    found = {}
    for pyproject in sorted([*ROOT.glob("libs/*/pyproject.toml"), *ROOT.glob("services/*/pyproject.toml")]):
        project = tomllib.loads(pyproject.read_text())["project"]
        found.update({script: project["name"] for script in project.get("scripts", {})})
    return found


def run(script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / script), *args],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


def test_every_documented_entry_point_is_a_script() -> None:
    assert set(SERVERS) | {"grizzly-ingest-file", "grizzly-conformance"} <= set(scripts())


@pytest.mark.parametrize("script", sorted(scripts()))
def test_help_answers_without_any_environment(script: str) -> None:
    done = run(script, "--help")
    assert done.returncode == 0, done.stdout + done.stderr
    assert script in done.stdout and "--version" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(("script", "distribution"), sorted(scripts().items()))
def test_version_is_the_package_version(script: str, distribution: str) -> None:
    done = run(script, "--version")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"{script} {version(distribution)}"


@pytest.mark.parametrize("script", sorted(SERVERS))
def test_missing_setting_is_one_line_naming_the_variable(script: str) -> None:
    done = run(script)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: "), done.stderr
    assert re.search(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+ is required\b", lines[0]), lines[0]


@pytest.mark.parametrize("script", sorted(SERVERS))
@pytest.mark.parametrize(
    ("variable", "value"), [("<port>", "eighty"), ("LOG_LEVEL", "chatty")], ids=["port", "log_level"]
)
def test_malformed_setting_is_one_line_naming_the_variable(script: str, variable: str, value: str) -> None:
    name = SERVERS[script] if variable == "<port>" else variable
    done = run(script, **REQUIRED, **{name: value})
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()] and done.stderr.startswith(f"{script}: {name} ")
    assert repr(value) in done.stderr and "Traceback" not in done.stderr


def test_ingest_file_names_a_malformed_variable() -> None:
    done = run("grizzly-ingest-file", INGEST_TOKEN=SECRET, INGEST_FILE_RETRIES="many")
    assert done.returncode == 64, done.stdout + done.stderr
    assert done.stderr == "grizzly-ingest-file: INGEST_FILE_RETRIES must be an integer, got 'many'\n"
