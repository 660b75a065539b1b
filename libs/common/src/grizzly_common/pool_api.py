"""Messages of the pool service's internal HTTP API (used by api-edge and the pusher), JSON over keep-alive HTTP.

Paths: POST /v1/services, /v1/claim, /v1/settle, /v1/finish, /v1/batch, /v1/lookup, /v1/lookup_many, /v1/resolve,
/v1/seen, /v1/sms. Answers are always HTTP 200 with one of these structs; transport failures are the caller's to map
to Unavailable.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

# What may reach Redis key names and metric labels. api-edge checks the platform's values against the same bounds
# (grizzly_common.messages) and answers the ERROR envelope; the pool refuses anything else at decoding.
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z"  # a service, operator or country code
Code = Annotated[str, msgspec.Meta(pattern=CODE_PATTERN)]
Upstream = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+\Z")]
Sum = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,12}(\.[0-9]{1,4})?\Z")]  # decimal text, at most 4 places
Currency = Annotated[int, msgspec.Meta(ge=0, le=999)]  # ISO 4217 numeric
Prefix = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,15}\Z")]
MAX_PREFIXES = 1000  # exceptionPhoneSet entries per claim
MAX_REQUEST_JSON = 1 << 20  # the audit copy of the platform's request
Label = Annotated[str, msgspec.Meta(max_length=128, pattern=r"^[^\x00-\x1f\x7f]*\Z")]  # device, SIM slot


class ServicesRequest(msgspec.Struct, frozen=True):
    upstream: Upstream


class ServicesResult(msgspec.Struct, frozen=True):
    countryList: list[dict[str, Any]]  # noqa: N815 - rendered as-is into the protocol answer


ClaimId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+\Z")]
SETTLE_MAX = 10_000  # ids per list in one /v1/settle


class ClaimRequest(msgspec.Struct, frozen=True):
    """A claim with api-edge's claim id (for /v1/settle) and its deadline (ms since the epoch): past the deadline
    the edge has answered the platform without this claim, so the pool refuses it. Empty / 0: an untracked claim."""

    upstream: Upstream
    country: Code
    operator: Code
    service: Code
    sum: Sum  # decimal as text: never a float in storage
    currency: Currency | None
    exclude_prefixes: Annotated[list[Prefix], msgspec.Meta(max_length=MAX_PREFIXES)]
    # the platform's request without its key, kept for the audit trail
    request_json: Annotated[str, msgspec.Meta(max_length=MAX_REQUEST_JSON)]
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
    upstream: Upstream
    activation_id: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    status: Annotated[int, msgspec.Meta(ge=1, le=5)]  # the pool answers ERROR to 2 (FINISH statuses: 1, 3, 4, 5)


class FinishResult(msgspec.Struct, frozen=True):
    status: str  # "SUCCESS" | "ERROR"
    error: str = ""


BATCH_MAX = 1000  # claims, and finishes, per POST /v1/batch


class BatchRequest(msgspec.Struct, frozen=True):
    """POST /v1/batch: many claims and finishes in one call (api-edge coalesces its concurrent GET_NUMBER and
    FINISH_ACTIVATION requests). Each is checked, run (its own atomic script) and answered as by /v1/claim or
    /v1/finish."""

    claims: Annotated[list[ClaimRequest], msgspec.Meta(max_length=BATCH_MAX)] = []
    finishes: Annotated[list[FinishRequest], msgspec.Meta(max_length=BATCH_MAX)] = []


class BatchResult(msgspec.Struct, frozen=True):
    claims: list[ClaimResult]  # one per claim, in request order
    finishes: list[FinishResult]  # one per finish, in request order


class LookupRequest(msgspec.Struct, frozen=True):
    number: Annotated[int, msgspec.Meta(ge=0, le=10**15)]


class LookupResult(msgspec.Struct, frozen=True):
    """The open activation of a number, if any."""

    found: bool
    activation_id: int = 0
    upstream: str = ""
    service: str = ""
    created_ms: int = 0  # when the activation was opened (ms since the epoch); 0 = not known (an older pool)


class ResolveRequest(msgspec.Struct, frozen=True):
    """Which number sits in this device's SIM slot (sources such as GoIP or Android report the slot, not the number)."""

    device: Label
    slot: Label


class ResolveResult(msgspec.Struct, frozen=True):
    found: bool
    number: int = 0


LOOKUP_MANY_MAX = 1000  # numbers per POST /v1/lookup_many


class LookupManyRequest(msgspec.Struct, frozen=True):
    """POST /v1/lookup_many: the open activations of many numbers in one round trip (the pusher, per Kafka batch)."""

    numbers: Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=10**15)]], msgspec.Meta(max_length=LOOKUP_MANY_MAX)]


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


class SmsSeen(msgspec.Struct, frozen=True, array_like=True):
    number: int
    received_ms: int  # when sms-ingest received it


class SmsSeenRequest(msgspec.Struct, frozen=True):
    """POST /v1/sms: SMS the pusher read for these numbers (one entry per SMS), for SIM health: the SIM's SMS count
    and last SMS, and the open activation got an SMS (its streak of activations without one ends)."""

    sms: Annotated[list[SmsSeen], msgspec.Meta(min_length=1, max_length=LOOKUP_MANY_MAX)]


class SmsSeenResult(msgspec.Struct, frozen=True):
    status: str  # "SUCCESS" | "ERROR"
    matched: int = 0  # SMS that reached an open activation
    error: str = ""
