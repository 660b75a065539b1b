"""The partner protocol's messages, decoded strictly and once at the edge.

Numeric fields must be JSON numbers: msgspec rejects "123" where an int is expected and rejects true/false
where a number is expected, which is exactly the platform's type test. Unknown extra fields are ignored:
the platform may add fields at any time.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any, Final, TypeVar

import msgspec
import orjson

from grizzly_common.errors import BadRequest

ULONG_MAX: Final = 9_223_372_036_854_775_807
FINISH_STATUSES: Final = frozenset({1, 3, 4, 5})
# 1: do not offer this number for this service again; 3: sold; 4: cancelled; 5: refunded

# Bounds of GET_NUMBER's fields (the pool's grizzly_common.pool_api refuses the same): codes end up in Redis key
# names and metric labels, so no NUL, |, space or other separator; `cur` promises 2 decimals, 4 are accepted.
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
MAX_SUM: Final = 10**12
SUM_DECIMALS: Final = 4
MAX_CURRENCY: Final = 999  # ISO 4217 numeric codes have 3 digits
MAX_EXCLUDED: Final = 1000  # exceptionPhoneSet entries
MAX_PREFIX_DIGITS: Final = 15  # E.164


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
    except RecursionError:  # msgspec recurses per nesting level, even through fields it skips
        raise BadRequest("body is not valid JSON (nested too deeply)") from None
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
    for name, value in (("country", request.country), ("operator", request.operator), ("service", request.service)):
        if not _CODE.fullmatch(str(value).strip()):
            raise BadRequest(f"invalid field: {name} must be 1-32 letters, digits, '_', '-' or '.'")
    if not math.isfinite(request.sum) or not 0 <= request.sum < MAX_SUM:
        raise BadRequest(f"invalid field: sum must be a finite number >= 0 and < {MAX_SUM}")
    exponent = as_decimal(request.sum).as_tuple().exponent
    if not isinstance(exponent, int) or exponent < -SUM_DECIMALS:
        raise BadRequest(f"invalid field: sum has more than {SUM_DECIMALS} decimals")
    if request.currency is not None and not 0 <= request.currency <= MAX_CURRENCY:
        raise BadRequest("invalid field: currency must be an ISO 4217 numeric code (0..999)")
    if len(request.exceptionPhoneSet) > MAX_EXCLUDED:
        raise BadRequest(f"invalid field: exceptionPhoneSet has more than {MAX_EXCLUDED} entries")
    if request.sum == 0 and math.copysign(1.0, request.sum) < 0:  # -0.0 would be stored as "-0.0"
        request = msgspec.structs.replace(request, sum=0)
    if request.operator != request.operator.strip() or request.service != request.service.strip():
        request = msgspec.structs.replace(request, operator=request.operator.strip(), service=request.service.strip())
    return request


def decode_finish(body: bytes) -> FinishActivationRequest:
    request = _decode(body, FinishActivationRequest)
    if not 0 <= request.activationId <= ULONG_MAX:
        raise BadRequest("invalid field: activationId out of range")
    if request.status not in FINISH_STATUSES:
        raise BadRequest(f"invalid field: status must be one of 1, 3, 4, 5, got {request.status}")
    return request


def is_digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and other scripts' digits."""
    return text.isascii() and text.isdigit()


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
        if not is_digits(digits) or len(digits) > MAX_PREFIX_DIGITS:
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
