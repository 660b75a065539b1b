"""Prometheus metrics of the pusher (default registry, served on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PUSH_ATTEMPTS = Counter("pusher_push_attempts_total", "PUSH_* requests sent", ["upstream", "kind"])
PUSH_RESULTS = Counter(
    "pusher_push_results_total",
    "Answers to PUSH_* requests by result (success, error, garbage, http_error, timeout, network)",
    ["upstream", "result"],
)
PUSH_SUCCESSES = Counter("pusher_push_successes_total", "Pushes the platform answered SUCCESS", ["upstream"])
RETRIES_SCHEDULED = Counter("pusher_retries_scheduled_total", "Pushes scheduled for a later attempt", ["upstream"])
ALREADY_DELIVERED = Counter(
    "pusher_already_delivered_total", "Records skipped because the ledger says they were delivered", ["upstream"]
)
OWNED_ELSEWHERE = Counter(
    "pusher_owned_elsewhere_total",
    "Records read again (after a crash or a rebalance) whose push already had an owner: left to it",
)
OWNERSHIP_LOST = Counter(
    "pusher_ownership_lost_total",
    "Attempts whose hold ran out before their outcome was recorded (another pusher took the push over), by stage",
    ["stage"],
)
RETRY_QUEUE_DEPTH = Gauge("pusher_retry_queue_depth", "Tasks in the durable retry schedule (all pushers)")
UNMATCHED = Counter("pusher_unmatched_total", "Messages for numbers with no open activation (kept, not pushed)")
PARKED = Counter(
    "pusher_parked_total",
    "Records parked, never retried (undecodable, unpushable content, max_retry_age), by reason",
    ["reason"],
)
PUSH_LATENCY = Histogram(
    "pusher_push_latency_seconds",
    "Duration of one PUSH_* HTTP request",
    ["upstream"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
END_TO_END_LAG = Histogram(
    "pusher_end_to_end_lag_seconds",
    "From the SMS reaching the hardware (received_at) to the platform answering SUCCESS",
    ["upstream"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400),
)
CONSUMER_LAG = Gauge("pusher_kafka_consumer_lag", "Kafka highwater minus position", ["topic", "partition"])
SIM_REPORTS_FAILED = Counter(
    "pusher_sim_reports_failed_total", "Batches of SMS the pool could not be told about (SIM health only)"
)
ACTIVITY_WRITE_FAILURES = Counter(
    "pusher_activity_write_failures_total",
    "Writes of the console's view (recent SMS log, per-minute counters, last answers, parked index) that failed:"
    " dropped, delivery is not concerned",
)
ACTIVITY_DROPPED = Counter(
    "pusher_activity_dropped_total", "Entries of the console's view dropped before a write (buffer full)"
)
