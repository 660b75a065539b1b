"""Template filters: times, ages, amounts, rates. Each takes whatever an admin API sent (maybe null, maybe text)
and never raises: a value it cannot read is shown as it is (escaped by the template)."""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from jinja2 import Environment


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def when(value: Any) -> str:
    """Epoch milliseconds as UTC "2026-12-01 02:30:05"; null or 0 as "never"."""
    ms = _number(value)
    if ms is None or ms <= 0:
        return "never" if value in (None, 0, "0", "") else str(value)
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))
    except (OverflowError, OSError, ValueError):
        return str(value)


def ago(value: Any, now_ms: float | None = None) -> str:
    """Epoch milliseconds as "12 s ago" / "in 3 s"."""
    ms = _number(value)
    if ms is None or ms <= 0:
        return "never"
    now = time.time() * 1000 if now_ms is None else now_ms
    delta = (now - ms) / 1000
    future = delta < 0
    delta = abs(delta)
    if delta < 120:
        text = f"{delta:.0f} s"
    elif delta < 7200:
        text = f"{delta / 60:.0f} min"
    elif delta < 172800:
        text = f"{delta / 3600:.0f} h"
    else:
        text = f"{delta / 86400:.0f} d"
    return f"in {text}" if future else f"{text} ago"


def millionths(value: Any) -> str:
    """An amount in millionths (an int) as a plain decimal: 1250000 -> "1.25"."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return "" if value is None else str(value)
    try:
        text = format(Decimal(int(value)).scaleb(-6).normalize(), "f")
    except (ValueError, InvalidOperation):
        return str(value)
    return "0" if text in ("-0", "0") else text


def percent(value: Any) -> str:
    """0..1 as "98.5 %"; null as "n/a" (nothing to measure yet)."""
    number = _number(value)
    return "n/a" if number is None else f"{number * 100:.1f} %"


def plain(value: Any) -> str:
    """A field of an audit event as text: null as "-", nested values as compact JSON (escaped by the template)."""
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def yesno(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else ("" if value is None else str(value))


def register(env: Environment) -> None:
    env.filters.update(when=when, ago=ago, millionths=millionths, percent=percent, yesno=yesno, plain=plain)
