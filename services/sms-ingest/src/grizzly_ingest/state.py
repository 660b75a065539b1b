"""What the lifespan hands to every request: State (read with grizzly_common.web.app_state), holding the Ingest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

from grizzly_ingest.heartbeat import Heartbeats
from grizzly_ingest.publisher import Publisher
from grizzly_ingest.resolver import Resolver
from grizzly_ingest.settings import Settings


@dataclass(frozen=True)
class Ingest:
    settings: Settings
    publisher: Publisher
    resolver: Resolver
    heartbeats: Heartbeats = field(
        default_factory=lambda: Heartbeats(None, 1.0)
    )  # devices seen, for the pool (inert without a pool)


class State(TypedDict):
    ingest: Ingest
