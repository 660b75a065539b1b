"""Kafka topics and the records on them. Values are msgspec structs with a version field, encoded as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from grizzly_common.errors import DecodeError


@dataclass(frozen=True)
class Topics:
    """Topic names; KAFKA_TOPIC_PREFIX lets several stacks (or tests) share one broker."""

    prefix: str = ""

    @property
    def inbound(self) -> str:  # every SMS / call from the hardware, keyed by receiving number
        return self.prefix + "inbound-messages"

    @property
    def retry(self) -> str:  # pushes that failed, re-attempted after the retry delay, keyed by number
        return self.prefix + "push-retry"

    @property
    def parked(self) -> str:  # records that could not be decoded: kept for an operator, never retried
        return self.prefix + "parked-records"


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One incoming SMS (or call) on one of our numbers, as sms-ingest accepted it."""

    v: int = 1
    kind: Literal["sms", "call", "call_record"] = "sms"  # -> PUSH_SMS, PUSH_CALL, PUSH_CALL_RECORD
    sms_id: int  # stable numeric id assigned at ingestion; the smsId / callId of the push
    number: int  # receiving number, digits with country code
    phone_from: str  # sender, may be alphanumeric ("Telegram")
    text: str = ""  # full text (multipart already reassembled); a call record's transcript
    received_at_ms: int  # when the hardware received it (or ingestion time if the source has none)
    ingested_at_ms: int
    source: str  # which adapter accepted it (generic, android, goip, modem)
    device: str = ""  # gateway/device the SIM sits in, when the source says
    slot: str = ""  # SIM slot / port on that device, when the source says
    parts: int = 1  # how many SMS parts were reassembled into this text
    recording_b64: str = ""  # call_record only: the audio file, base64 (bounded by the ingest body limit)
    recording_type: str = ""  # call_record only: MIME type of the audio, e.g. audio/wav


class PushTask(msgspec.Struct, frozen=True, kw_only=True):
    """A push that must be attempted again, no earlier than not_before_ms."""

    v: int = 1
    message: InboundMessage
    upstream: str
    activation_id: int
    attempt: int  # attempts made so far
    not_before_ms: int


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


def decode_task(value: bytes | None) -> PushTask:
    try:
        return _task_decoder.decode(value or b"")
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise DecodeError(str(exc)) from exc


def number_key(number: int) -> bytes:
    """Records are keyed by number so one number's messages stay in order on one partition."""
    return str(number).encode()
