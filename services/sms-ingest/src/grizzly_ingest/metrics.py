"""Prometheus metrics of sms-ingest (default registry; /metrics is routed by grizzly_common.web.health_routes)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ACCEPTED = Counter("ingest_accepted_total", "Messages accepted (published or stored as a part)", ["source", "kind"])
DUPLICATES = Counter("ingest_duplicates_total", "Messages dropped because Kafka already had them", ["source"])
REJECTED = Counter("ingest_rejected_total", "Requests answered with an error", ["source", "reason"])
MULTIPART_PENDING = Gauge("ingest_multipart_pending", "Multipart messages waiting for missing parts")
MULTIPART_TIMEOUTS = Counter("ingest_multipart_timeouts_total", "Multipart messages published incomplete")
CLOCK_IGNORED = Counter(
    "ingest_clock_ignored_total", "Timestamps before 2000 or over a day ahead (a wrong device clock): ingest time used"
)
PRODUCER_RENEWALS = Counter("ingest_producer_renewals_total", "Kafka producers replaced after a fatal error")
PUBLISH_SECONDS = Histogram(
    "ingest_publish_seconds",
    "Time from send to the Kafka acknowledgement",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HEARTBEATS = Counter(
    "ingest_heartbeats_total", "Device heartbeats: queued for the pool, dropped (queue full) or invalid", ["result"]
)
HEARTBEAT_FLUSHES = Counter("ingest_heartbeat_flushes_total", "POST /v1/seen calls to the pool", ["result"])
GOIP_DATAGRAMS = Counter(
    "ingest_goip_datagrams_total",
    "GoIP SMS-server datagrams by outcome (keepalive, receive, duplicate, event, malformed, unauthorized, ...)",
    ["result"],
)
GOIP_PENDING = Gauge("ingest_goip_pending", "GoIP datagrams being handled (bounded by INGEST_GOIP_MAX_PENDING)")
