"""What the lifespan hands to every request."""

from __future__ import annotations

from dataclasses import dataclass

from grizzly_ingest.publisher import Publisher
from grizzly_ingest.resolver import Resolver
from grizzly_ingest.settings import Settings


@dataclass(frozen=True)
class State:
    settings: Settings
    publisher: Publisher
    resolver: Resolver
