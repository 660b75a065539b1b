"""Latency percentiles and the result rows every section returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 when empty)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def summarize(latencies_s: list[float], elapsed_s: float, errors: int = 0, **extra: Any) -> dict[str, Any]:
    values = sorted(latencies_s)
    return {
        "ops": len(values),
        "errors": errors,
        "elapsed_s": round(elapsed_s, 3),
        "ops_per_s": round(len(values) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "p50_ms": round(percentile(values, 50) * 1000, 3),
        "p99_ms": round(percentile(values, 99) * 1000, 3),
        "max_ms": round((values[-1] if values else 0.0) * 1000, 3),
        **extra,
    }


@dataclass
class Row:
    """One measured case. `ref` names the row (same section) this one is compared with."""

    section: str
    case: str
    concurrency: int | None = None
    ops_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    ref: str | None = None  # case name of the reference row in the same section (same concurrency)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    ratio: float | None = None  # ops_per_s / reference ops_per_s, filled by the report

    @classmethod
    def from_summary(cls, section: str, case: str, summary: dict[str, Any], **kwargs: Any) -> Row:
        extra = {k: v for k, v in summary.items() if k not in ("ops_per_s", "p50_ms", "p99_ms")}
        return cls(
            section,
            case,
            ops_per_s=summary["ops_per_s"],
            p50_ms=summary["p50_ms"],
            p99_ms=summary["p99_ms"],
            extra=extra,
            **kwargs,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
