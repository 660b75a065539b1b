"""Normalising what the sources send: phone numbers, timestamps, and text in the encodings modems use."""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from datetime import UTC, datetime

from grizzly_common.events import MAX_NUMBER, MIN_NUMBER

_NUMBER_NOISE = re.compile(r"[\s\-().]")
_MIN_DIGITS = len(str(MIN_NUMBER))
_MAX_DIGITS = len(str(MAX_NUMBER))  # E.164


def normalise_number(value: int | str) -> int:
    """447700900123, "447700900123", "+44 7700 900123" -> 447700900123. Raises ValueError with the reason."""
    if isinstance(value, bool):
        raise ValueError("number must be digits, not a boolean")
    if isinstance(value, int):
        if not 0 < value <= MAX_NUMBER:  # before str(): that of a huge int is slow, or raises
            raise ValueError(f"number must be {_MIN_DIGITS}-{_MAX_DIGITS} digits with country code")
        digits = str(value)
    else:
        digits = _NUMBER_NOISE.sub("", value.strip())
        if digits.startswith("+"):
            digits = digits[1:]
        elif digits.startswith("00"):
            digits = digits[2:]
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(f"number must be digits with country code, got {str(value)[:32]!r}")
    if digits.startswith("0") or not _MIN_DIGITS <= len(digits) <= _MAX_DIGITS:
        raise ValueError(
            f"number must be {_MIN_DIGITS}-{_MAX_DIGITS} digits with country code and no leading 0, got {digits[:32]!r}"
        )
    return int(digits)


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_timestamp_ms(value: int | float | str | None) -> int | None:
    """ISO-8601 (naive = UTC), epoch ms, or epoch seconds (values below 10^11) -> epoch ms. None if absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("timestamp must be ISO-8601 or epoch milliseconds")
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            if len(text) > 16:  # beyond year 2100 in ms; int() of a long string is slow
                raise ValueError("timestamp out of range")
            return parse_timestamp_ms(int(text))
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return int(parsed.timestamp() * 1000)
        except (ValueError, OverflowError):
            raise ValueError(f"timestamp {text[:40]!r} is not ISO-8601 or epoch milliseconds") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("timestamp must be a finite number")
    if value < 0:
        raise ValueError("timestamp must not be negative")
    if value >= 10**16:  # beyond year 2100 in ms (and int() of 1e300 is a 300-digit number)
        raise ValueError("timestamp out of range")
    return int(value * 1000) if value < 100_000_000_000 else int(value)


def decode_ucs2_hex(text: str) -> str:
    """A UCS-2 / UTF-16BE body as hex ("041F04400438") -> "При". Surrogate pairs (emoji) are kept."""
    compact = "".join(text.split())
    try:
        raw = binascii.unhexlify(compact)
    except (binascii.Error, ValueError):
        raise ValueError("text is not valid hex") from None
    if len(raw) % 2:
        raise ValueError("UCS-2 hex must have a multiple of 4 hex digits")
    return raw.decode("utf-16-be", errors="replace")


def decode_bytes(raw: bytes) -> str:
    """Text bytes of unknown charset: UTF-8 when valid, else a BOM'd UTF-16, else Latin-1 (never fails)."""
    if raw.startswith((b"\xfe\xff", b"\xff\xfe")):
        return raw.decode("utf-16", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decode_base64_text(text: str) -> str:
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("text is not valid base64") from None
    return decode_bytes(raw)


def decode_text(text: str, encoding: str) -> str:
    """The generic endpoint's "encoding" flag: text (as is), ucs2 (hex of UTF-16BE), base64 (of UTF-8 bytes)."""
    if encoding in ("", "text", "utf8", "utf-8"):
        return text
    if encoding in ("ucs2", "ucs-2", "ucs2-hex", "utf16-hex"):
        return decode_ucs2_hex(text)
    if encoding in ("base64", "b64"):
        return decode_base64_text(text)
    raise ValueError(f"unknown encoding {encoding[:20]!r} (text, ucs2, base64)")
