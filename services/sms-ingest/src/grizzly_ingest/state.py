"""What the lifespan hands to every request: State (read with grizzly_common.web.app_state), holding the Ingest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from grizzly_ingest.publisher import Publisher
from grizzly_ingest.resolver import Resolver
from grizzly_ingest.settings import Settings


@dataclass(frozen=True)
class Ingest:
    settings: Settings
    publisher: Publisher
    resolver: Resolver


class State(TypedDict):
    ingest: Ingest
