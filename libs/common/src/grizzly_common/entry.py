"""How every service's entry point starts: --help and --version, then settings and logging, or one clear line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from importlib.metadata import version
from typing import Protocol, TypeVar

from grizzly_common.logging import configure_logging
from grizzly_common.settings import SettingsError, environ


class _HasLogLevel(Protocol):
    @property
    def log_level(self) -> str: ...


S = TypeVar("S", bound=_HasLogLevel)


def parse_args(prog: str, package: str, doc: str | None, argv: list[str] | None = None) -> None:
    """--help (the module's docstring) and --version (the package's metadata); settings come from the environment."""
    parser = argparse.ArgumentParser(prog=prog, description=doc)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version(package)}")
    parser.parse_args(argv)


def settings_or_exit(prog: str, service: str, from_env: Callable[[Mapping[str, str]], S]) -> S:
    """The settings, with logging configured; a bad setting is one line naming the variable, then exit 2."""
    try:
        settings = from_env(environ())
        configure_logging(service, settings.log_level)
    except SettingsError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        sys.exit(2)
    return settings
