"""The results table (stdout and markdown), the JSON file, and the machine description."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import orjson

from bench.stats import Row

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def fill_ratios(rows: list[Row]) -> None:
    """ratio = ops/s of the row / ops/s of its reference row.

    `ref` is a case of the same section (matched at the same concurrency when both have one) or "section::case".
    """
    for row in rows:
        if row.ref is None or row.ref == row.case or row.ops_per_s is None:
            continue
        section, _, case = row.ref.rpartition("::")
        section = section or row.section
        for other in rows:
            same_level = other.concurrency in (row.concurrency, None) or section != row.section
            if other.section == section and other.case == case and other.ops_per_s and same_level:
                row.ratio = round(row.ops_per_s / other.ops_per_s, 3)
                break


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


HEADER = ("section", "case", "conc", "ops/s", "p50 ms", "p99 ms", "vs ref", "note")


def _cells(row: Row) -> tuple[str, ...]:
    ratio = "-" if row.ratio is None else f"{row.ratio:.3g}x {row.ref.rpartition('::')[2]}"  # type: ignore[union-attr]
    return (
        row.section,
        row.case,
        "-" if row.concurrency is None else str(row.concurrency),
        _fmt(row.ops_per_s),
        _fmt(row.p50_ms, 2),
        _fmt(row.p99_ms, 2),
        ratio,
        row.note,
    )


def text_table(rows: list[Row]) -> str:
    lines = [HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER) - 1)]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[j]) if j < len(widths) else cell for j, cell in enumerate(line)))
        if i == 0:
            out.append("  ".join("-" * w for w in widths) + "  ----")
    return "\n".join(out)


def markdown_table(rows: list[Row]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in _cells(r)) + " |" for r in rows]
    return "\n".join(out)


def write_json(rows: list[Row], meta: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{time.strftime('%Y-%m-%d')}{'-quick' if meta.get('quick') else ''}.json"
    path.write_bytes(orjson.dumps({"meta": meta, "rows": [r.to_dict() for r in rows]}, option=orjson.OPT_INDENT_2))
    return path


DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"


def update_docs(rows: list[Row], meta: dict[str, Any], path: Path = DOCS) -> bool:
    """Replace the block between the result markers of docs/benchmarks.md with this run's machine line and table."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    if START not in text or END not in text:
        return False
    mode = "quick" if meta.get("quick") else "full"
    block = (
        f"{START}\nRun of {meta['date']}: `nproc` = {meta['nproc']}, CPU {meta['cpu']}, Python {meta['python']}, "
        f"kernel {meta['kernel']}; {mode} mode, {meta['total_seconds']} s in all.\n\n{markdown_table(rows)}\n{END}"
    )
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    path.write_text(head + block + tail, encoding="utf-8")
    return True
