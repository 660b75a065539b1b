"""The partner protocol's messages, decoded strictly and once at the edge.

Numeric fields must be JSON numbers: msgspec rejects "123" where an int is expected and rejects true/false
where a number is expected, which is exactly the platform's type test. Unknown extra fields are ignored:
the platform may add fields at any time.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, Final, TypeVar

import msgspec
import orjson

from grizzly_common.errors import BadRequest

ULONG_MAX: Final = 9_223_372_036_854_775_807
FINISH_STATUSES: Final = frozenset({1, 3, 4, 5})
# 1: do not offer this number for this service again; 3: sold; 4: cancelled; 5: refunded


class Envelope(msgspec.Struct, frozen=True):
    """What every inbound request has: the action selects the handler, the key authenticates."""

    action: str
    key: str


class GetNumberRequest(msgspec.Struct, frozen=True):
    country: str | int
    operator: str
    service: str
    sum: int | float
    currency: int | None = None  # ISO-4217 numeric (SMSHUB: 643, 840); not seen for Grizzly
    exceptionPhoneSet: list[str | int] = []  # noqa: N815 - protocol field name
    canGetAnotherSms: bool | int | str | None = None  # noqa: N815 - meaning unknown; stored for audit


class FinishActivationRequest(msgspec.Struct, frozen=True):
    activationId: int  # noqa: N815
    status: int


T = TypeVar("T")


def _decode(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if text.startswith("Expected `object`") and " - at `$" not in text:
            raise BadRequest(f"body must be a JSON object ({text[9:]})") from None
        raise BadRequest(f"invalid field: {text}") from None
    except msgspec.DecodeError:
        raise BadRequest("body is not valid JSON") from None


def decode_envelope(body: bytes) -> Envelope:
    if not body:
        raise BadRequest("empty body")
    return _decode(body, Envelope)


def decode_get_number(body: bytes) -> GetNumberRequest:
    request = _decode(body, GetNumberRequest)
    if not request.service or not request.operator or request.country == "":
        raise BadRequest("country, operator and service must not be empty")
    if not math.isfinite(request.sum) or request.sum < 0:
        raise BadRequest("invalid field: sum must be a finite number >= 0")
    return request


def decode_finish(body: bytes) -> FinishActivationRequest:
    request = _decode(body, FinishActivationRequest)
    if not 0 <= request.activationId <= ULONG_MAX:
        raise BadRequest("invalid field: activationId out of range")
    if request.status not in FINISH_STATUSES:
        raise BadRequest(f"invalid field: status must be one of 1, 3, 4, 5, got {request.status}")
    return request


def country_code(country: str | int) -> str:
    """Countries are compared as strings: the platform may send 0 or "0" or "russia"."""
    return str(country).strip().lower()


def normalize_prefixes(entries: list[str | int]) -> list[str]:
    """exceptionPhoneSet entries are prefixes of the international number, as strings or numbers."""
    prefixes = []
    for entry in entries:
        if isinstance(entry, bool):
            raise BadRequest("invalid field: exceptionPhoneSet entries must be digits")
        digits = str(entry).strip().lstrip("+")
        if not (digits.isascii() and digits.isdigit()):
            raise BadRequest(f"invalid field: exceptionPhoneSet entry {str(entry)[:32]!r} is not digits")
        prefixes.append(digits)
    return prefixes


def as_decimal(value: int | float) -> Decimal:
    """`cur` fields: via str so 0.35 stays 0.35 and does not become 0.34999999999999997779..."""
    return Decimal(str(value))


def error_body(error: str) -> bytes:
    return orjson.dumps({"status": "ERROR", "error": error})


SUCCESS_BODY: Final = orjson.dumps({"status": "SUCCESS"})
NO_NUMBERS_BODY: Final = orjson.dumps({"status": "NO_NUMBERS"})


def get_number_success(number: int, activation_id: int, flashcall: bool, voice: bool) -> bytes:
    return orjson.dumps(
        {"status": "SUCCESS", "number": number, "activationId": activation_id, "flashcall": flashcall, "voice": voice}
    )


def get_services_success(country_list: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"status": "SUCCESS", "countryList": country_list})


def push_sms_body(key: str, sms_id: int, phone: int, phone_from: str, text: str) -> bytes:
    return orjson.dumps(
        {"action": "PUSH_SMS", "key": key, "smsId": sms_id, "phone": phone, "phoneFrom": phone_from, "text": text}
    )


def push_call_body(key: str, call_id: int, phone: int, phone_from: str) -> bytes:
    return orjson.dumps({"action": "PUSH_CALL", "key": key, "callId": call_id, "phone": phone, "phoneFrom": phone_from})


class PushReply(msgspec.Struct, frozen=True):
    status: str
    error: str | None = None


def push_succeeded(body: bytes) -> bool:
    """Only {"status":"SUCCESS"} counts; any other answer (or garbage) means retry."""
    try:
        return msgspec.json.decode(body, type=PushReply).status == "SUCCESS"
    except (msgspec.ValidationError, msgspec.DecodeError):
        return False
