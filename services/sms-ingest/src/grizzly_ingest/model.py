"""What every source adapter produces: one incoming SMS or call, before it gets its smsId."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["sms", "call", "call_record"]


@dataclass(frozen=True)
class Part:
    """One part of a concatenated SMS (UDH reference, total parts, 1-based sequence number)."""

    ref: str
    total: int
    seq: int


@dataclass(frozen=True)
class Incoming:
    source: str  # generic | android | goip | modem
    phone_from: str
    text: str
    kind: Kind = "sms"
    number: int | None = None  # receiving number; None -> resolved from (device, slot)
    device: str = ""
    slot: str = ""
    received_at_ms: int | None = None  # as the source reported it (None: the source has no clock)
    source_id: str = ""  # the source's own message id, when it has one (part of the fingerprint)
    part: Part | None = None
    recording_b64: str = ""
    recording_type: str = ""


@dataclass(frozen=True)
class Accepted:
    sms_id: int
    duplicate: bool = False  # Kafka had already acknowledged this message: not published again
    pending: bool = False  # a part stored until the rest of its message arrives (or the timeout)

    def as_dict(self) -> dict[str, object]:
        return {"smsId": self.sms_id, "duplicate": self.duplicate, "pending": self.pending}
