"""CSV import: every bad line reported (bounded), duplicates found across buckets, rows streamed to Redis in batches."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Iterator

import pytest
from grizzly_common.redis_client import make_redis
from grizzly_pool import csv_import
from grizzly_pool.store import AddReport, NumberRow, PoolStore

HEADER = "number,country,operator,device,slot,flashcall\n"


def good_line(i: int) -> str:
    return f"{79000000000 + i},ru,mts,bank{i // 256},{i % 256},0\n"


def test_every_bad_line_is_counted_and_the_first_ones_kept_in_line_order() -> None:
    lines = [HEADER]
    bad: list[int] = []  # line numbers (the header is line 1)
    for i in range(1000):
        if i % 7 == 3:
            lines.append(good_line(i).replace(",mts,", ",any,"))
            bad.append(len(lines))
        elif i % 7 == 5:
            lines.append(good_line(i).replace(",0\n", ",maybe\n"))
            bad.append(len(lines))
        else:
            lines.append(good_line(i))
    with pytest.raises(csv_import.CsvError) as caught:
        csv_import.validate(lines)
    error = caught.value
    assert error.total == len(bad) > csv_import.MAX_ERRORS
    assert len(error.errors) == csv_import.MAX_ERRORS
    assert error.left_out == len(bad) - csv_import.MAX_ERRORS
    assert [int(e.split(":")[0].removeprefix("line ")) for e in error.errors] == bad[: csv_import.MAX_ERRORS]
    assert error.errors[0] == "line 5: operator 'any' is reserved: give the SIM's real operator"
    assert error.errors[1] == "line 7: flashcall must be 1/0, true/false or yes/no, got 'maybe'"
    assert str(error) == f"{error.errors[0]} (and {len(bad) - 1} more errors)"


@pytest.mark.parametrize("size_hint", [0, 1, 50 * csv_import.BUCKET_BYTES])  # 64 files, in memory, 50 files
def test_numbers_and_slots_twice_in_the_file_are_found_in_any_bucket(size_hint: int) -> None:
    lines = [HEADER, *(good_line(i) for i in range(5000))]
    lines.append(good_line(17))  # line 5002: number and slot of line 19 again
    lines.append("79100000000,ru,mts,bank3,160,1\n")  # line 5003: slot of line 930
    lines.append("79100000001,ru,mts,bank3,9,true\n")  # line 5004: slot of line 779
    with pytest.raises(csv_import.CsvError) as caught:
        csv_import.validate(lines, size_hint=size_hint)
    assert caught.value.errors == (
        "line 5002: number 79000000017 appears twice in the file (first on line 19)",
        "line 5002: device bank0 slot 17 appears twice in the file (first on line 19)",
        "line 5003: device bank3 slot 160 appears twice in the file (first on line 930)",
        "line 5004: device bank3 slot 9 appears twice in the file (first on line 779)",
    )


def test_good_file_gives_its_row_count_and_skips_blank_lines() -> None:
    lines = [HEADER, good_line(0), "\n", ",,,,,\n", good_line(1)]
    assert csv_import.validate(lines) == 2
    assert [row.number for row in csv_import.parse(lines)] == [79000000000, 79000000001]


def test_rows_are_read_one_at_a_time() -> None:
    endless = itertools.chain([HEADER], (good_line(i) for i in itertools.count()))
    rows = csv_import.read_rows(endless)
    assert next(rows) == (2, NumberRow(79000000000, "ru", "mts", "bank0", "0"))
    assert next(rows)[0] == 3


def test_import_sends_batches_while_the_input_is_still_being_read(redis_url: str) -> None:
    total, batch, in_flight = 20_000, 500, 2
    produced = 0
    seen_at_calls: list[int] = []  # rows read from the input when each add_numbers call started

    def source() -> Iterator[NumberRow]:
        nonlocal produced
        for i in range(total):
            produced += 1
            yield NumberRow.checked(79000000000 + i, "ru", "mts", f"bank{i // 256}", str(i % 256))

    async def main() -> csv_import.ImportReport:
        client = make_redis(redis_url)
        try:
            store = PoolStore(client, "gp:")
            add_numbers = store.add_numbers

            async def recording(rows: Iterable[NumberRow], batch: int = 1000) -> AddReport:
                seen_at_calls.append(produced)
                return await add_numbers(rows, batch)

            store.add_numbers = recording  # type: ignore[method-assign]
            return await csv_import.import_rows(store, source(), batch=batch, in_flight=in_flight)
        finally:
            await client.aclose()

    report = asyncio.run(main())
    assert (report.added, report.existing, report.conflicts_total) == (total, 0, 0)
    assert len(seen_at_calls) == total // batch
    assert seen_at_calls[0] == batch  # the first batch went out before the second was read
    for calls_before, seen in enumerate(seen_at_calls):
        # never more rows read than the batches sent so far plus the current one
        assert seen == (calls_before + 1) * batch


def test_import_counts_every_taken_slot_and_keeps_the_first_ones(redis_url: str) -> None:
    first = [HEADER, *(good_line(i) for i in range(300))]
    taken = [HEADER, *(good_line(i).replace("790000", "791000", 1) for i in range(300))]  # same slots, new numbers

    async def main() -> tuple[csv_import.ImportReport, csv_import.ImportReport]:
        client = make_redis(redis_url)
        try:
            store = PoolStore(client, "gp:")
            return (
                await csv_import.import_rows(store, csv_import.parse(first), batch=64),
                await csv_import.import_rows(store, csv_import.parse(taken), batch=64),
            )
        finally:
            await client.aclose()

    added, refused = asyncio.run(main())
    assert (added.added, added.conflicts_total) == (300, 0)
    assert (refused.added, refused.existing, refused.conflicts_total) == (0, 0, 300)
    assert len(refused.conflicts) == csv_import.MAX_CONFLICTS
    assert set(refused.conflicts) <= {79100000000 + i for i in range(300)}
