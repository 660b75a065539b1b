"""One module per protocol action: parse the body, call the pool, build the answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from grizzly_common.pool_client import PoolClient

from grizzly_edge.batching import PoolBatcher
from grizzly_edge.claims import ClaimSettler


@dataclass(frozen=True)
class Call:
    """One authenticated request, ready for its action handler."""

    upstream: str  # name of the upstream whose key matched
    body: bytes  # decompressed JSON body (contains the key: never log or store it as is)
    pool: PoolClient
    claims: ClaimSettler  # GET_NUMBER confirms or releases each claim through it
    batcher: PoolBatcher  # claims and finishes go to the pool through it, coalesced with concurrent ones
    disconnected: Callable[[], Awaitable[bool]]  # the platform has hung up (it will not see the answer)


@dataclass(frozen=True)
class Answer:
    status: str  # SUCCESS | NO_NUMBERS | ERROR (for metrics and logs)
    body: bytes
