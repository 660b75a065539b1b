"""SMS Gateway for Android (capcom6/android-sms-gateway) webhooks: POST /v1/android.

Register a webhook for the "sms:received" event pointing here; set the app's signing key to
INGEST_ANDROID_SECRET (unset: the endpoint refuses every request). Each request carries X-Timestamp (unix seconds) and
X-Signature = hex HMAC-SHA256(key, raw body + X-Timestamp). The receiving number is the one configured for
(deviceId, simNumber) in INGEST_ANDROID_NUMBERS / INGEST_DEVICE_NUMBERS, else the pool's /v1/resolve.
Other events (sms:sent, sms:delivered, ...) are acknowledged and ignored; system:ping marks the device seen
(the pool's device liveness, through heartbeat.py).
"""

from __future__ import annotations

import hashlib
import hmac
import time

import msgspec
from grizzly_common.web import json_response
from starlette.requests import Request
from starlette.responses import Response

from grizzly_ingest import fields
from grizzly_ingest.errors import BadInput, BadSignature, StaleTimestamp, Unauthorized
from grizzly_ingest.model import Incoming
from grizzly_ingest.webhooks.base import decode_json, publish, read_body, state_of


class AndroidEvent(msgspec.Struct, frozen=True):
    deviceId: str  # noqa: N815 - the app's field names
    event: str
    payload: msgspec.Raw = msgspec.Raw(b"{}")
    id: str = ""
    webhookId: str = ""  # noqa: N815


class SmsReceived(msgspec.Struct, frozen=True):
    message: str
    phoneNumber: str  # noqa: N815 - the SENDER
    messageId: str = ""  # noqa: N815
    simNumber: int | str | None = None  # noqa: N815 - SIM slot, null on single-SIM phones
    receivedAt: str | int | None = None  # noqa: N815


def expected_signature(secret: str, body: bytes, timestamp: str) -> str:
    return hmac.new(secret.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def verify_signature(
    secret: str, body: bytes, signature: str, timestamp: str, max_skew_s: int, now_s: float | None = None
) -> None:
    """Raises BadSignature (wrong or missing) or StaleTimestamp (replay outside the allowed skew)."""
    if not signature or not timestamp:
        raise BadSignature("missing X-Signature or X-Timestamp")
    expected = expected_signature(secret, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise BadSignature()
    try:
        sent_at = int(timestamp.strip())
    except ValueError:
        raise BadSignature("X-Timestamp must be unix seconds") from None
    now = time.time() if now_s is None else now_s
    if abs(now - sent_at) > max_skew_s:
        raise StaleTimestamp()


def ping_device(body: bytes) -> str | None:
    """The device of a system:ping event (the app's heartbeat), else None."""
    event = decode_json(body, AndroidEvent)
    if event.event != "system:ping":
        return None
    return fields.label("deviceId", event.deviceId) or None


def parse(body: bytes) -> Incoming | None:
    """The message of an sms:received event; None for every other event."""
    event = decode_json(body, AndroidEvent)
    if event.event != "sms:received":
        return None
    data = decode_json(bytes(event.payload), SmsReceived)
    device = fields.label("deviceId", event.deviceId)
    if not device:
        raise BadInput("invalid field: deviceId must not be empty")
    return Incoming(
        source="android",
        phone_from=fields.sender("payload.phoneNumber", data.phoneNumber),
        text=fields.text("payload.message", data.message),
        device=device,
        slot=fields.label("payload.simNumber", data.simNumber),
        received_at_ms=fields.timestamp("payload.receivedAt", data.receivedAt),
        source_id=fields.source_id("payload.messageId", data.messageId),
    )


async def webhook(request: Request) -> Response:
    state = state_of(request)
    settings = state.settings
    if not settings.android_secret:
        raise Unauthorized("this source is not enabled")  # INGEST_ANDROID_SECRET unset: an empty HMAC key is no key
    body = await read_body(request, settings.max_body_bytes)
    verify_signature(
        settings.android_secret,
        body,
        request.headers.get("x-signature", ""),
        request.headers.get("x-timestamp", ""),
        settings.android_max_skew_s,
    )
    message = parse(body)
    if message is None:
        device = ping_device(body)
        if device:
            state.heartbeats.seen(device)
        return json_response({"status": "SUCCESS", "ignored": True})
    accepted = await publish(state, message)
    return json_response({"status": "SUCCESS", **accepted.as_dict()})
