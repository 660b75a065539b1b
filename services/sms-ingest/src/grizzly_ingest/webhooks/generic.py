"""The generic JSON webhook: POST /v1/sms and POST /v1/call, Authorization: Bearer INGEST_TOKEN.

{"number": 447700900123, "from": "Telegram", "text": "...", "received_at": "2025-01-01T10:00:00Z" | 1735725600000,
 "device": "...", "slot": "...",            (instead of number: resolved to the SIM's number)
 "id": "...",                               (the source's own message id, optional)
 "encoding": "text" | "ucs2" | "base64",    (ucs2 = hex of UTF-16BE, as modems report it)
 "part": {"ref": 17, "total": 3, "seq": 2}} (one part of a concatenated SMS)
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

import msgspec
from grizzly_common.events import MAX_RECORDING_B64, MAX_TEXT_CHARS
from grizzly_common.web import json_response
from starlette.requests import Request
from starlette.responses import Response

from grizzly_ingest import fields
from grizzly_ingest.errors import BadInput
from grizzly_ingest.model import Incoming, Part
from grizzly_ingest.text import decode_text
from grizzly_ingest.webhooks.base import (
    check_token,
    decode_json,
    publish,
    read_body,
    state_of,
    supplied_token,
)

MAX_PARTS = 255  # a concatenated SMS has at most 255 parts (8-bit count in the UDH)


class PartIn(msgspec.Struct, frozen=True):
    ref: str | int
    total: int
    seq: int


class SmsIn(msgspec.Struct, frozen=True):
    phone_from: str = msgspec.field(name="from")
    text: str
    number: int | str | None = None
    received_at: int | float | str | None = None
    device: str | None = None
    slot: str | int | None = None
    id: str | int | None = None
    encoding: str = "text"
    part: PartIn | None = None


class CallIn(msgspec.Struct, frozen=True):
    phone_from: str = msgspec.field(name="from")
    kind: Literal["call", "call_record"] = "call"
    number: int | str | None = None
    text: str = ""
    recording_b64: str = ""
    recording_type: str = ""
    received_at: int | float | str | None = None
    device: str | None = None
    slot: str | int | None = None
    id: str | int | None = None


def _number_and_device(
    number: int | str | None, device: str | None, slot: str | int | None
) -> tuple[int | None, str, str]:
    device_text = fields.label("device", device)
    slot_text = fields.label("slot", slot)
    if number is None or number == "":
        if not device_text:
            raise BadInput("give either number or device (and slot)")
        return None, device_text, slot_text
    return fields.number("number", number), device_text, slot_text


def parse_sms(body: bytes) -> Incoming:
    data = decode_json(body, SmsIn)
    number, device, slot = _number_and_device(data.number, data.device, data.slot)
    try:
        text = decode_text(data.text, data.encoding.strip().lower())
    except ValueError as exc:
        raise BadInput(f"invalid field: text: {exc}") from None
    part = None
    if data.part is not None:
        p = data.part
        if not 1 <= p.total <= MAX_PARTS or not 1 <= p.seq <= p.total:
            raise BadInput(f"invalid field: part needs 1 <= seq <= total <= {MAX_PARTS}")
        part = Part(ref=fields.label("part.ref", p.ref), total=p.total, seq=p.seq)
        # each part's share of the whole: the joined text stays within the bound
        text = fields.text("text", text, MAX_TEXT_CHARS // p.total)
    return Incoming(
        source="generic",
        phone_from=fields.sender("from", data.phone_from),
        text=fields.text("text", text),
        number=number,
        device=device,
        slot=slot,
        received_at_ms=fields.timestamp("received_at", data.received_at),
        source_id=fields.source_id("id", data.id),
        part=part,
    )


def parse_call(body: bytes) -> Incoming:
    data = decode_json(body, CallIn)
    number, device, slot = _number_and_device(data.number, data.device, data.slot)
    if data.recording_b64:
        if data.kind != "call_record":
            raise BadInput("invalid field: recording_b64 is only for kind call_record")
        if len(data.recording_b64) > MAX_RECORDING_B64:
            raise BadInput(f"invalid field: recording_b64 longer than {MAX_RECORDING_B64} characters")
        try:
            base64.b64decode(data.recording_b64, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput("invalid field: recording_b64 is not valid base64") from None
    if data.kind == "call_record" and not data.text and not data.recording_b64:
        raise BadInput("a call_record needs text (transcript) or recording_b64")
    return Incoming(
        source="generic",
        kind=data.kind,
        phone_from=fields.sender("from", data.phone_from),
        text=fields.text("text", data.text),
        number=number,
        device=device,
        slot=slot,
        received_at_ms=fields.timestamp("received_at", data.received_at),
        source_id=fields.source_id("id", data.id),
        recording_b64=data.recording_b64,
        recording_type=fields.label("recording_type", data.recording_type)
        or ("audio/wav" if data.recording_b64 else ""),
    )


async def sms(request: Request) -> Response:
    state = state_of(request)
    check_token(supplied_token(request), state.settings.token)
    message = parse_sms(await read_body(request, state.settings.max_body_bytes))
    accepted = await publish(state, message)
    return json_response({"status": "SUCCESS", **accepted.as_dict()})


async def call(request: Request) -> Response:
    state = state_of(request)
    check_token(supplied_token(request), state.settings.token)
    message = parse_call(await read_body(request, state.settings.max_body_bytes))
    accepted = await publish(state, message)
    return json_response({"status": "SUCCESS", **accepted.as_dict()})
