"""CSV inventory files: validate everything first (errors name the line), then import in batches.

Header (required, any order): number,country,operator,device,slot; optional online,flashcall,voice
(1/0, true/false, yes/no; empty = default: online true, flashcall false, voice false). Extra columns are ignored.

Memory does not grow with the file: rows are read one at a time, twice (validate, then import). Numbers and
(device, slot) pairs seen twice in the file are found through bucket files on disk (a bucket holds about
BUCKET_BYTES of the CSV and is checked on its own), and reports keep the first MAX_ERRORS errors, counting the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import heapq
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import TextIO

from grizzly_pool.phones import PhoneCheck
from grizzly_pool.store import AddReport, InventoryError, NumberRow, PoolStore, check_number, check_slot

REQUIRED = ("number", "country", "operator", "device", "slot")
FLAGS = {"online": True, "flashcall": False, "voice": False}
_FLAG_TEXT = {
    **dict.fromkeys(("1", "true", "yes", "y", "on"), True),
    **dict.fromkeys(("0", "false", "no", "n", "off"), False),
}
MAX_ERRORS = 100  # errors kept with their line numbers; the others are only counted
MAX_CONFLICTS = 100  # numbers kept of those whose slot was taken; the others are only counted
BUCKET_BYTES = 1 << 20  # CSV bytes per duplicate-check bucket: the most one bucket holds in memory
MAX_BUCKETS = 256  # open files while validating; bigger files get bigger buckets
_PROBE_NUMBER = 100000  # a valid number, so NumberRow.checked judges only the other fields


class CsvError(ValueError):
    """A CSV file that cannot be imported; nothing was imported.

    errors: the first MAX_ERRORS problems in line order, each starting with its line number; total: all of them.
    """

    def __init__(self, errors: Iterable[str], total: int = 0) -> None:
        self.errors = tuple(errors)
        self.total = max(total, len(self.errors))
        more = self.total - 1
        super().__init__(self.errors[0] + (f" (and {more} more error{'s' * (more > 1)})" if more else ""))

    @property
    def left_out(self) -> int:
        """Errors counted but not kept."""
        return self.total - len(self.errors)


class _Errors:
    """The first `keep` errors by line number, whatever order they are found in, and how many there were."""

    def __init__(self, keep: int = MAX_ERRORS) -> None:
        self.keep = keep
        self.total = 0
        self._heap: list[tuple[int, int, str]] = []  # (-line, -rank, message): the latest line on top

    def add(self, line: int, message: str, rank: int = 0) -> None:
        """rank orders the errors of one line (buckets find them in no fixed order)."""
        self.total += 1
        item = (-line, -rank, f"line {line}: {message}")
        if len(self._heap) < self.keep:
            heapq.heappush(self._heap, item)
        elif item > self._heap[0]:
            heapq.heapreplace(self._heap, item)

    def error(self) -> CsvError | None:
        if not self.total:
            return None
        return CsvError([message for _, _, message in sorted(self._heap, reverse=True)], self.total)


def _flag(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text == "":
        return FLAGS[name]
    try:
        return _FLAG_TEXT[text]
    except KeyError:
        raise InventoryError(f"{name} must be 1/0, true/false or yes/no, got {text[:16]!r}") from None


def _flags(columns: list[tuple[str, int]], fields: list[str]) -> tuple[bool, bool, bool]:
    values = dict(FLAGS)
    for name, index in columns:
        values[name] = _flag(name, fields[index])
    return values["online"], values["flashcall"], values["voice"]


# Devices, operators and slots repeat from row to row: each distinct value is checked once (bounded caches).
@lru_cache(maxsize=8192)
def _place(country: str, operator: str, device: str) -> tuple[str, str, str]:
    row = NumberRow.checked(_PROBE_NUMBER, country, operator, device, "0")
    return row.country, row.operator, row.device


_slot = lru_cache(maxsize=4096)(check_slot)


def read_rows(lines: Iterable[str], phones: PhoneCheck | None = None) -> Iterator[tuple[int, NumberRow | str]]:
    """(line number, row) for each data line, or (line number, what is wrong with it); blank lines are skipped.
    With `phones`, each number is also checked against the phone-number plan and the row's country.

    Raises CsvError only for the header, which decides how every other line reads.
    """
    reader = csv.reader(lines)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise CsvError(["line 1: empty file (expected a header: number,country,operator,device,slot)"]) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CsvError([f"line 1: header lacks {', '.join(missing)} (required: {','.join(REQUIRED)})"])
    width = len(header)
    required = itemgetter(*(header.index(name) for name in REQUIRED))
    flags = [(name, header.index(name)) for name in FLAGS if name in header]
    defaults = tuple(FLAGS.values())
    for fields in reader:
        if not fields or (not fields[0].strip() and all(not f.strip() for f in fields)):
            continue
        line = reader.line_num
        if len(fields) < width:
            yield line, f"expected {width} columns, got {len(fields)}"
            continue
        number, country, operator, device, slot = required(fields)
        try:
            online, flashcall, voice = _flags(flags, fields) if flags else defaults
            country, operator, device = _place(country, operator, device)
            checked = check_number(number)
            if phones is not None:
                phones.check(checked, country)
            yield line, NumberRow(checked, country, operator, device, _slot(slot), online, flashcall, voice)
        except InventoryError as exc:
            yield line, str(exc)


def parse_numbered(lines: Iterable[str]) -> Iterator[tuple[int, NumberRow]]:
    """(line number, row) of a CSV text, checked; raises CsvError at the first bad line."""
    for line, row in read_rows(lines):
        if isinstance(row, str):
            raise CsvError([f"line {line}: {row}"])
        yield line, row


def parse(lines: Iterable[str]) -> Iterator[NumberRow]:
    """Rows of a CSV text, checked; raises CsvError at the first bad line."""
    for _line, row in parse_numbered(lines):
        yield row


def validate(lines: Iterable[str], size_hint: int = 0, phones: PhoneCheck | None = None) -> int:
    """Check a whole file (also numbers and device slots twice in it, and with `phones` each number against the
    phone-number plan); returns the row count. The import that follows reads the file again without `phones`.

    Raises CsvError naming every bad line (the first MAX_ERRORS of them). size_hint: the file's size in bytes, which
    sets the number of buckets so that each stays near BUCKET_BYTES of the file; a file within one bucket is checked
    in memory, without temporary files.
    """
    errors = _Errors()
    buckets = max(1, min(MAX_BUCKETS, -(-size_hint // BUCKET_BYTES) if size_hint > 0 else 64))
    with contextlib.ExitStack() as stack:
        if buckets == 1:
            files: list[TextIO] = [io.StringIO()]
        else:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="grizzly-csv-"))
            files = [stack.enter_context(Path(folder, str(i)).open("w+", encoding="utf-8", newline="\n"))
                     for i in range(buckets)]  # fmt: skip
        count = _split(read_rows(lines, phones), files, errors)
        for bucket in files:
            bucket.seek(0)
            _duplicates(bucket, errors)
            bucket.truncate(0)
    failed = errors.error()
    if failed is not None:
        raise failed
    return count


def _split(rows: Iterable[tuple[int, NumberRow | str]], files: list[TextIO], errors: _Errors) -> int:
    """Count the good rows, note the bad ones, and write each key with its line to its bucket: "n<number> <line>" and
    "s<device> <slot> <line>" (neither name holds a space), so that repeats of a key land in the same bucket."""
    count = 0
    buckets = len(files)
    for line, row in rows:
        if isinstance(row, str):
            errors.add(line, row)
            continue
        count += 1
        files[row.number % buckets].write(f"n{row.number} {line}\n")
        key = f"s{row.device} {row.slot}"
        files[hash(key) % buckets].write(f"{key} {line}\n")
    return count


def _duplicates(records: Iterable[str], errors: _Errors) -> None:
    first: dict[str, str] = {}  # key -> its first line (as text: most keys are never seen again)
    for record in records:
        key, _, line = record.rpartition(" ")
        seen = first.setdefault(key, line)
        if seen != line:  # a key is written once per line
            number = key[0] == "n"
            what = f"number {key[1:]}" if number else "device {} slot {}".format(*key[1:].split(" "))
            errors.add(int(line), f"{what} appears twice in the file (first on line {int(seen)})", 1 if number else 2)


@dataclass
class ImportReport:
    added: int = 0
    existing: int = 0
    conflicts: list[int] = field(default_factory=list)  # the first MAX_CONFLICTS numbers whose slot was taken
    conflicts_total: int = 0

    def add(self, part: AddReport) -> None:
        self.added += part.added
        self.existing += part.existing
        self.conflicts_total += len(part.conflicts)
        self.conflicts += part.conflicts[: MAX_CONFLICTS - len(self.conflicts)]


def _chunks(rows: Iterable[NumberRow], size: int) -> Iterator[list[NumberRow]]:
    chunk: list[NumberRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def import_rows(
    store: PoolStore,
    rows: Iterable[NumberRow],
    *,
    batch: int = 1000,
    in_flight: int = 2,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Feed rows to PoolStore.add_numbers, a batch per call, reading only as far as the calls in flight need.

    With two calls in flight Redis runs one batch while this process reads the next. The file was checked for
    duplicates first, so batches do not depend on each other and may finish in any order.
    """
    report = ImportReport()
    pending: set[asyncio.Task[tuple[int, AddReport]]] = set()

    async def send(chunk: list[NumberRow]) -> tuple[int, AddReport]:
        return len(chunk), await store.add_numbers(chunk, batch=len(chunk))

    async def settle(return_when: str) -> None:
        nonlocal pending
        done, pending = await asyncio.wait(pending, return_when=return_when)
        for task in done:
            size, part = task.result()
            report.add(part)
            if progress is not None:
                progress(size)

    try:
        for chunk in _chunks(rows, batch):
            if len(pending) >= in_flight:
                await settle(asyncio.FIRST_COMPLETED)
            pending.add(asyncio.create_task(send(chunk)))
            await asyncio.sleep(0)  # the call goes out before this process reads the next batch
        if pending:
            await settle(asyncio.ALL_COMPLETED)
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return report


def open_text(path: Path) -> TextIO:
    """A CSV file as the importer reads it (UTF-8, an optional BOM)."""
    return path.open(encoding="utf-8-sig", newline="")


def lines_of(path: Path) -> Iterator[str]:
    with open_text(path) as handle:
        yield from handle
