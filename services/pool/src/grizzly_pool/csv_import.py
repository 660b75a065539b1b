"""CSV inventory files: validate everything first (errors name the line), then import in batches.

Header (required, any order): number,country,operator,device,slot; optional online,flashcall,voice
(1/0, true/false, yes/no; empty = default: online true, flashcall false, voice false). Extra columns are ignored.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from grizzly_pool.store import InventoryError, NumberRow

REQUIRED = ("number", "country", "operator", "device", "slot")
FLAGS = {"online": True, "flashcall": False, "voice": False}
_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


class CsvError(ValueError):
    """A CSV file that cannot be imported; nothing was imported. The message starts with the line number."""


def _flag(line: int, name: str, value: str | None) -> bool:
    text = (value or "").strip().lower()
    if text == "":
        return FLAGS[name]
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CsvError(f"line {line}: {name} must be 1/0, true/false or yes/no, got {text[:16]!r}")


def parse(lines: Iterable[str]) -> Iterator[NumberRow]:
    """Rows of a CSV text, checked; raises CsvError at the first bad line."""
    for _line, row in parse_numbered(lines):
        yield row


def parse_numbered(lines: Iterable[str]) -> Iterator[tuple[int, NumberRow]]:
    """(line number, row) of a CSV text, checked; raises CsvError at the first bad line."""
    reader = csv.reader(lines)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise CsvError("line 1: empty file (expected a header: number,country,operator,device,slot)") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CsvError(f"line 1: header lacks {', '.join(missing)} (required: {','.join(REQUIRED)})")
    index = {name: header.index(name) for name in (*REQUIRED, *FLAGS) if name in header}
    for fields in reader:
        line = reader.line_num
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) < len(header):
            raise CsvError(f"line {line}: expected {len(header)} columns, got {len(fields)}")
        number, country, operator, device, slot = (fields[index[name]] for name in REQUIRED)
        online, flashcall, voice = (_flag(line, name, fields[index[name]] if name in index else None) for name in FLAGS)
        try:
            yield line, NumberRow.checked(number, country, operator, device, slot, online, flashcall, voice)
        except InventoryError as exc:
            raise CsvError(f"line {line}: {exc}") from None


def validate(lines: Iterable[str]) -> int:
    """Check a whole file (also duplicate numbers and device slots inside it); returns the row count."""
    numbers: set[int] = set()
    slots: set[tuple[str, str]] = set()
    count = 0
    for line, row in parse_numbered(lines):
        count += 1
        if row.number in numbers:
            raise CsvError(f"line {line}: number {row.number} appears twice in the file")
        if (row.device, row.slot) in slots:
            raise CsvError(f"line {line}: device {row.device} slot {row.slot} appears twice in the file")
        numbers.add(row.number)
        slots.add((row.device, row.slot))
    return count
