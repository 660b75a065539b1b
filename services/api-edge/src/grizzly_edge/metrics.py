"""Prometheus metrics of api-edge (default registry, served on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUEST_SECONDS = Histogram(
    "edge_request_seconds",
    "Time to answer one partner request, by action",
    ["action"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
RESULTS = Counter("edge_results_total", "Partner answers by action and status", ["action", "status"])
COUNTS_REPORTED = Gauge(
    "edge_counts_reported", "Sum of the counts in the last GET_SERVICES answer, per service", ["upstream", "service"]
)
NUMBERS_ISSUED = Counter("edge_numbers_issued_total", "GET_NUMBER answers with a number", ["upstream", "service"])
CLAIM_RELEASES = Counter(
    "edge_claims_released_total", "GET_NUMBER claims released at the pool because the platform did not get them"
)
SETTLE_BACKLOG = Gauge("edge_settle_backlog", "Claim confirmations and releases not yet accepted by the pool")
