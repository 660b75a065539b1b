"""The checks every field a source sends must pass before anything is stored or published.

The bounds are those of grizzly_common.events (the pusher decodes with them), so what passes here also passes
check_inbound. Each check raises BadInput naming the field, answered 400.

Timestamps from a source must lie between 2000-01-01 and one day ahead of our clock: earlier or later values
are a broken clock or a hostile value, and a record carrying them would mislead everything downstream.
"""

from __future__ import annotations

import re

from grizzly_common.events import (
    MAX_LABEL_CHARS,
    MAX_SENDER_CHARS,
    MAX_TEXT_CHARS,
    MAX_TIME_MS,
    NO_CONTROL,
)
from grizzly_common.messages import is_digits

from grizzly_ingest.errors import BadInput
from grizzly_ingest.metrics import CLOCK_IGNORED
from grizzly_ingest.text import normalise_number, now_ms, parse_timestamp_ms

MIN_TIME_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_AHEAD_MS = 86_400_000  # a source clock may run a day ahead of ours (time zones set wrong), not more

_printable = re.compile(NO_CONTROL)


def _bad(field: str, why: str) -> BadInput:
    return BadInput(f"invalid field: {field}: {why}")


def one_line(field: str, value: str, limit: int) -> str:
    """Stripped, at most `limit` characters, no control characters (a sender, device, slot, id, MIME type)."""
    value = value.strip()
    if len(value) > limit:
        raise _bad(field, f"longer than {limit} characters")
    if not _printable.match(value):
        raise _bad(field, "must not contain control characters")
    return value


def label(field: str, value: str | int | None) -> str:
    """A device, slot or other name: "" when absent; ints (slot 1) become their digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        raise _bad(field, "must be a string")
    if isinstance(value, int):
        if abs(value) >= 10 ** (MAX_LABEL_CHARS - 1):  # str() of a huge int is slow, or raises
            raise _bad(field, f"longer than {MAX_LABEL_CHARS} characters")
        value = str(value)
    return one_line(field, value, MAX_LABEL_CHARS)


def source_id(field: str, value: str | int | None) -> str:
    return label(field, value)


def sender(field: str, value: str) -> str:
    """ "+447781234567" -> "447781234567"; alphanumeric senders ("Telegram") stay as they are. Never empty."""
    value = one_line(field, value, MAX_SENDER_CHARS + 1)  # +1: the "+" of a numeric sender is dropped
    if value.startswith("+") and is_digits(value[1:]):
        value = value[1:]
    if not value:
        raise _bad(field, "must not be empty")
    if len(value) > MAX_SENDER_CHARS:
        raise _bad(field, f"longer than {MAX_SENDER_CHARS} characters")
    return value


def text(field: str, value: str, limit: int = MAX_TEXT_CHARS) -> str:
    if len(value) > limit:
        raise _bad(field, f"longer than {limit} characters")
    return value


def number(field: str, value: int | str) -> int:
    """Digits with country code, within MIN_NUMBER..MAX_NUMBER (normalise_number counts the digits)."""
    try:
        return normalise_number(value)
    except ValueError as exc:
        raise _bad(field, str(exc)) from None


def timestamp(field: str, value: int | float | str | None, now: int | None = None) -> int | None:
    """Epoch ms within [2000-01-01, now + 1 day]; None when the source gave none, or when its clock is plainly wrong
    (an unset modem clock says 1980 or 2000): the SMS is kept and stamped with the time it reached us. Only a value
    no clock can give (not finite, negative, after 2100, unparsable) is refused."""
    try:
        result = parse_timestamp_ms(value)
    except ValueError as exc:
        raise _bad(field, str(exc)) from None
    if result is None:
        return None
    if not 0 <= result <= MAX_TIME_MS:
        raise _bad(field, "outside 1970 .. 2100")
    if not MIN_TIME_MS <= result <= (now_ms() if now is None else now) + MAX_AHEAD_MS:
        CLOCK_IGNORED.inc()
        return None
    return result
