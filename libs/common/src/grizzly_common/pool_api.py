"""Messages of the pool service's internal HTTP API (used by api-edge and the pusher), JSON over keep-alive HTTP.

Paths: POST /v1/services, /v1/claim, /v1/settle, /v1/finish, /v1/lookup, /v1/lookup_many, /v1/resolve, /v1/seen.
Answers are always HTTP 200 with one of these structs; transport failures are the caller's to map to Unavailable.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec


class ServicesRequest(msgspec.Struct, frozen=True):
    upstream: str


class ServicesResult(msgspec.Struct, frozen=True):
    countryList: list[dict[str, Any]]  # noqa: N815 - rendered as-is into the protocol answer


ClaimId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern="^[A-Za-z0-9_-]+$")]
SETTLE_MAX = 10_000  # ids per list in one /v1/settle


class ClaimRequest(msgspec.Struct, frozen=True):
    """A claim with api-edge's claim id (for /v1/settle) and its deadline (ms since the epoch): past the deadline
    the edge has answered the platform without this claim, so the pool refuses it. Empty / 0: an untracked claim."""

    upstream: str
    country: str
    operator: str
    service: str
    sum: str  # decimal as text: never a float in storage
    currency: int | None
    exclude_prefixes: list[str]
    request_json: str  # the platform's request without its key, kept for the audit trail
    claim_id: Annotated[str, msgspec.Meta(max_length=64, pattern="^[A-Za-z0-9_-]*$")] = ""
    deadline_ms: int = 0


class SettleRequest(msgspec.Struct, frozen=True):
    """What became of api-edge's claims: confirm (the platform got the activation) or release (it did not)."""

    confirm: Annotated[list[int], msgspec.Meta(max_length=SETTLE_MAX)] = []  # activation ids given to the platform
    release: Annotated[list[ClaimId], msgspec.Meta(max_length=SETTLE_MAX)] = []  # claim ids it was not given


class SettleResult(msgspec.Struct, frozen=True):
    status: str  # "SUCCESS" | "ERROR" (retry the same request: settling is idempotent)
    released: int = 0
    error: str = ""


class ClaimResult(msgspec.Struct, frozen=True):
    status: str  # "SUCCESS" | "NO_NUMBERS" | "ERROR"
    number: int = 0
    activation_id: int = 0
    flashcall: bool = False
    voice: bool = False
    error: str = ""


class FinishRequest(msgspec.Struct, frozen=True):
    upstream: str
    activation_id: int
    status: int


class FinishResult(msgspec.Struct, frozen=True):
    status: str  # "SUCCESS" | "ERROR"
    error: str = ""


class LookupRequest(msgspec.Struct, frozen=True):
    number: int


class LookupResult(msgspec.Struct, frozen=True):
    """The open activation of a number, if any."""

    found: bool
    activation_id: int = 0
    upstream: str = ""
    service: str = ""
    created_ms: int = 0  # when the activation was opened (ms since the epoch); 0 = not known (an older pool)


class ResolveRequest(msgspec.Struct, frozen=True):
    """Which number sits in this device's SIM slot (sources such as GoIP or Android report the slot, not the number)."""

    device: str
    slot: str


class ResolveResult(msgspec.Struct, frozen=True):
    found: bool
    number: int = 0


LOOKUP_MANY_MAX = 1000  # numbers per POST /v1/lookup_many


class LookupManyRequest(msgspec.Struct, frozen=True):
    """POST /v1/lookup_many: the open activations of many numbers in one round trip (the pusher, per Kafka batch)."""

    numbers: Annotated[list[int], msgspec.Meta(max_length=LOOKUP_MANY_MAX)]


class LookupManyResult(msgspec.Struct, frozen=True):
    results: list[LookupResult]  # one per requested number, in request order


SEEN_MAX = 1000  # devices per POST /v1/seen
DeviceName = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]*$")]


class SeenRequest(msgspec.Struct, frozen=True):
    """POST /v1/seen: these devices sent a heartbeat just now (GoIP keepalive, Android SMS Gateway's system:ping,
    Ejoin's port status). A device the pool had marked dead (not seen for POOL_DEVICE_TIMEOUT_S) counts again."""

    devices: Annotated[list[DeviceName], msgspec.Meta(min_length=1, max_length=SEEN_MAX)]


class SeenResult(msgspec.Struct, frozen=True):
    status: str  # "SUCCESS" | "ERROR"
    known: int = 0  # how many of the devices hold numbers (the others are ignored)
    revived: int = 0  # how many of those had been marked dead and now count again
    error: str = ""
