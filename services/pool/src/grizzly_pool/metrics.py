"""Prometheus metrics of the pool (default registry, served on /metrics of the internal port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CLAIMS = Counter("pool_claims_total", "GET_NUMBER claims by result", ["result"])
FINISHES = Counter("pool_finishes_total", "FINISH_ACTIVATION calls by status and outcome", ["status", "outcome"])
RELEASES = Counter(
    "pool_claims_released_total",
    "Activations released because the platform was never told (by: edge = api-edge released the claim, "
    "unconfirmed = api-edge neither confirmed nor released it within POOL_CLAIM_HOLD_S)",
    ["by"],
)
CONFIRMS = Counter(
    "pool_claim_confirms_total",
    "Claims api-edge confirmed (held: yes; no = finished, or released because the confirmation came too late)",
    ["held"],
)
COUNTS_REPORTED = Gauge("pool_counts_reported", "Sum of the counts last reported per service", ["service"])
SCRIPT_SECONDS = Histogram(
    "pool_script_seconds",
    "Latency of the pool's Lua scripts",
    ["script"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
DEVICE_LIVENESS = Counter(
    "pool_device_liveness_total",
    "Devices marked dead (silent for POOL_DEVICE_TIMEOUT_S) or revived by a heartbeat",
    ["event"],
)
EARNED = Counter(
    "pool_earned_total",
    "Sums of sold activations (status 3), in their currency (never add different currencies)",
    ["upstream", "country", "currency"],
)
REFUNDED = Counter(
    "pool_refunded_total",
    "Sums of sold activations refunded later (status 5 after 3), in their currency",
    ["upstream", "country", "currency"],
)
