"""Prometheus metrics of api-edge (default registry, served on /metrics)."""

from __future__ import annotations

import functools

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
POOL_BATCH_SIZE = Histogram(
    "edge_pool_batch_items",
    "Claims and finishes per /v1/batch call to the pool (grows with the load)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
SETTLE_BACKLOG = Gauge("edge_settle_backlog", "Claim confirmations and releases not yet accepted by the pool")


# labels() takes a lock and builds a key on every call: the hot path looks each child up once. Label values are
# bounded: actions are the dispatch table's (or "invalid"), statuses three, services those the pool
# issued numbers for (Prometheus keeps every child anyway).
@functools.cache
def request_seconds(action: str) -> Histogram:
    return REQUEST_SECONDS.labels(action)


@functools.cache
def results(action: str, status: str) -> Counter:
    return RESULTS.labels(action, status)


@functools.cache
def numbers_issued(upstream: str, service: str) -> Counter:
    return NUMBERS_ISSUED.labels(upstream, service)
