"""GoIP / Ejoin-style gateways pushing received SMS as JSON: POST /v1/goip/{device} with INGEST_GOIP_TOKEN as a Bearer
token or as the password of Basic auth (a URL http://gw:<token>@host/v1/goip/<device>); never in the query string.

{"type": "recv-sms", "sms_num": 1,
 "sms": [[dr_flag, "port", timestamp, "sender", "recipient", "<base64 content>"], ...]}

dr_flag 1 is a delivery report (skipped). The content is base64 of the text, either the bare body or header
lines (Sender:, Receiver:, SMSC:, SCTS:, Slot:) then a blank line then the body. An empty recipient is resolved
from (device, port). A "port-status" push marks the device seen (the pool's device liveness, through heartbeat.py);
other types ("keepalive", ...) are acknowledged and ignored.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from typing import Any

import msgspec
from grizzly_common.web import json_response
from starlette.requests import Request
from starlette.responses import Response

from grizzly_ingest import fields
from grizzly_ingest.errors import BadInput
from grizzly_ingest.model import Incoming
from grizzly_ingest.text import decode_base64_text, normalise_number
from grizzly_ingest.webhooks.base import (
    check_token,
    decode_json,
    publish,
    read_body,
    state_of,
    supplied_token,
)

MAX_ROWS = 1000  # far more than a gateway's backlog, few enough to publish within one request deadline
_HEADER = re.compile(r"^(Sender|Receiver|SMSC|SCTS|Slot)\s*:\s*(.*)$", re.IGNORECASE)


class GoipPush(msgspec.Struct, frozen=True):
    type: str
    sms: list[list[Any]] = []
    sms_num: int | None = None


@dataclass(frozen=True)
class Content:
    body: str
    headers: dict[str, str]


def parse_content(text: str) -> Content:
    """Header lines then a blank line then the body, or just the body."""
    lines = text.split("\n")
    headers: dict[str, str] = {}
    index = 0
    while index < len(lines):
        match = _HEADER.match(lines[index].rstrip("\r"))
        if not match:
            break
        headers[match.group(1).lower()] = match.group(2).strip()
        index += 1
    if not headers:
        return Content(text, {})
    if index < len(lines) and lines[index].strip() == "":
        index += 1
    return Content("\n".join(lines[index:]), headers)


def _receiver_number(value: str) -> int | None:
    """A recipient field or Receiver: header ("+447700900123", or '"1.01" 447700900123'): its number, if any."""
    for token in reversed(value.replace('"', " ").split()):
        try:
            return normalise_number(token)
        except ValueError:
            continue
    return None


def is_port_status(body: bytes) -> bool:
    return decode_json(body, GoipPush).type == "port-status"


def parse(device: str, body: bytes) -> tuple[list[Incoming], int]:
    """The SMS of one push (delivery reports skipped) and how many rows were skipped."""
    push = decode_json(body, GoipPush)
    if push.type != "recv-sms":
        return [], 0
    if len(push.sms) > MAX_ROWS:
        raise BadInput(f"invalid field: sms has more than {MAX_ROWS} rows")
    messages: list[Incoming] = []
    skipped = 0
    for index, row in enumerate(push.sms):
        where = f"sms[{index}]"
        if len(row) < 6:
            raise BadInput(f"invalid field: {where} needs [dr_flag, port, ts, sender, recipient, content]")
        dr_flag, port, ts, sender, recipient, content = row[:6]
        if isinstance(dr_flag, bool) or not isinstance(dr_flag, int | str):
            raise BadInput(f"invalid field: {where}[0] dr_flag must be 0 or 1")
        if str(dr_flag).strip() == "1":
            skipped += 1
            continue
        if not isinstance(port, str | int) or isinstance(port, bool):
            raise BadInput(f"invalid field: {where}[1] port must be a string")
        if not isinstance(sender, str) or not isinstance(recipient, str) or not isinstance(content, str):
            raise BadInput(f"invalid field: {where} sender, recipient and content must be strings")
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int | float | str)):
            raise BadInput(f"invalid field: {where}[2] timestamp must be a number")
        received = fields.timestamp(f"{where}[2]", ts)
        try:
            parsed = parse_content(decode_base64_text(content))
        except ValueError as exc:
            raise BadInput(f"invalid field: {where}[5]: {exc}") from None
        slot = fields.label(f"{where}[1]", parsed.headers.get("slot", "").strip('"') or port)
        receiver = fields.label(f"{where}[5] Receiver", parsed.headers.get("receiver", ""))
        number = _receiver_number(fields.label(f"{where}[4]", recipient)) or _receiver_number(receiver)
        phone_from = sender if sender.strip() else parsed.headers.get("sender", "")
        messages.append(
            Incoming(
                source="goip",
                phone_from=fields.sender(f"{where}[3]", phone_from),
                text=fields.text(f"{where}[5]", parsed.body),
                number=number,
                device=device,
                slot=slot,
                received_at_ms=received,
            )
        )
    return messages, skipped


async def webhook(request: Request) -> Response:
    state = state_of(request)
    settings = state.settings
    check_token(supplied_token(request, allow_basic=True), settings.goip_token)
    device = fields.label("device", request.path_params["device"])
    if not device:
        raise BadInput("device missing from the path")
    body = await read_body(request, settings.max_body_bytes)
    messages, skipped = parse(device, body)
    if not messages and not skipped and is_port_status(body):
        state.heartbeats.seen(device)
    # resolve everything first: an unknown slot refuses the whole push before anything is published
    resolved = [
        m if m.number is not None else replace(m, number=await state.resolver.resolve(m.device, m.slot))
        for m in messages
    ]
    # concurrently: their fingerprint lookups share Redis round trips and their records share Kafka batches
    results = await asyncio.gather(*(publish(state, m) for m in resolved), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    accepted = [r for r in results if not isinstance(r, BaseException)]
    if not messages and not skipped:
        return json_response({"status": "SUCCESS", "ignored": True})
    return json_response({"status": "SUCCESS", "accepted": [a.as_dict() for a in accepted], "skipped": skipped})
