"""Kafka topics and the records on them. Values are msgspec structs with a version field, encoded as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from grizzly_common.errors import DecodeError


@dataclass(frozen=True)
class Topics:
    """Topic names; KAFKA_TOPIC_PREFIX lets several stacks (or tests) share one broker."""

    prefix: str = ""

    @property
    def inbound(self) -> str:  # every SMS / call from the hardware, keyed by receiving number
        return self.prefix + "inbound-messages"


# The bounds of every field a record may carry. sms-ingest checks its input against them (and answers 400); the
# pusher decodes with them, so a record that slipped past (written to the topic by anything else) is parked, never
# retried. Every bound fits a JSON number, an orjson int and a Redis key.
MIN_NUMBER = 10**6  # numbers carry their country code: at least 7 digits
MAX_NUMBER = 10**15 - 1  # E.164: at most 15 digits
MAX_ID = 2**63 - 1
MAX_TIME_MS = 4_102_444_800_000  # 2100-01-01: a later timestamp is a broken clock or a hostile value
MAX_TEXT_CHARS = 255 * 160  # a concatenated SMS has at most 255 parts
MAX_SENDER_CHARS = 64
MAX_LABEL_CHARS = 128  # device, slot, MIME type
MAX_RECORDING_B64 = 16 * 1024 * 1024
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"  # a sender or label is one line of printable text

Number = Annotated[int, msgspec.Meta(ge=MIN_NUMBER, le=MAX_NUMBER)]
Id = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
TimeMs = Annotated[int, msgspec.Meta(ge=0, le=MAX_TIME_MS)]
Sender = Annotated[str, msgspec.Meta(max_length=MAX_SENDER_CHARS, pattern=NO_CONTROL)]
Label = Annotated[str, msgspec.Meta(max_length=MAX_LABEL_CHARS, pattern=NO_CONTROL)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)]
Name = Annotated[str, msgspec.Meta(max_length=32, pattern=r"^[A-Za-z0-9_-]*$")]  # source, upstream


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One incoming SMS (or call) on one of our numbers, as sms-ingest accepted it."""

    v: int = 1
    kind: Literal["sms", "call", "call_record"] = "sms"  # -> PUSH_SMS, PUSH_CALL, PUSH_CALL_RECORD
    sms_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]  # stable id assigned at ingestion; the push's smsId
    number: Number  # receiving number, digits with country code
    phone_from: Sender  # sender, may be alphanumeric ("Telegram")
    text: Text = ""  # full text (multipart already reassembled); a call record's transcript
    received_at_ms: TimeMs  # when the hardware received it (or ingestion time if the source has none)
    ingested_at_ms: TimeMs
    source: Name  # which adapter accepted it (generic, android, goip, modem)
    device: Label = ""  # gateway/device the SIM sits in, when the source says
    slot: Label = ""  # SIM slot / port on that device, when the source says
    parts: Annotated[int, msgspec.Meta(ge=1, le=255)] = 1  # how many SMS parts were reassembled into this text
    # call_record only: the audio file, base64 (bounded by the ingest body limit), and its MIME type
    recording_b64: Annotated[str, msgspec.Meta(max_length=MAX_RECORDING_B64)] = ""
    recording_type: Label = ""


class PushTask(msgspec.Struct, frozen=True, kw_only=True):
    """A push that must be attempted again, no earlier than not_before_ms."""

    v: int = 1
    message: InboundMessage
    upstream: Name
    activation_id: Id
    attempt: Annotated[int, msgspec.Meta(ge=0, le=10**6)]  # attempts made so far
    not_before_ms: TimeMs


_inbound_decoder = msgspec.json.Decoder(InboundMessage)
_task_decoder = msgspec.json.Decoder(PushTask)
_encoder = msgspec.json.Encoder()


def encode(record: InboundMessage | PushTask) -> bytes:
    return _encoder.encode(record)


def decode_inbound(value: bytes | None) -> InboundMessage:
    try:
        return _inbound_decoder.decode(value or b"")
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise DecodeError(str(exc)) from exc


def check_inbound(message: InboundMessage) -> None:
    """Raise DecodeError if the message breaks a bound above: what a producer checks before publishing."""
    decode_inbound(encode(message))


def decode_task(value: bytes | None) -> PushTask:
    try:
        return _task_decoder.decode(value or b"")
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise DecodeError(str(exc)) from exc


def number_key(number: int) -> bytes:
    """Records are keyed by number so one number's messages stay in order on one partition."""
    return str(number).encode()
