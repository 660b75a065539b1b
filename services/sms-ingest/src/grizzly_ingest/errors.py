"""Errors answered to a source. These webhooks are not the partner protocol: HTTP status codes are meaningful
here (every source retries on a non-2xx answer), so each error carries its status, its text and a metrics reason.
"""

from __future__ import annotations

import grizzly_common.errors


class IngestError(Exception):
    status: int = 400
    error: str = "bad request"
    reason: str = "bad_request"  # label of ingest_rejected_total

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.error)
        if detail is not None:
            self.error = detail


class BadInput(IngestError):
    status = 400
    error = "bad request"
    reason = "bad_input"


class BadJson(IngestError):
    status = 400
    error = "body is not valid JSON"
    reason = "bad_json"


class Unauthorized(IngestError):
    status = 401
    error = "missing or wrong token"
    reason = "unauthorized"


class BadSignature(IngestError):
    status = 401
    error = "bad or missing signature"
    reason = "bad_signature"


class StaleTimestamp(IngestError):
    status = 401
    error = "X-Timestamp outside the allowed clock skew"
    reason = "stale_timestamp"


class TooLarge(IngestError):
    status = 413
    error = "request body too large"
    reason = "too_large"


class UnknownDevice(IngestError):
    """No number is known for this device and slot: the source keeps the message and retries."""

    status = 422
    error = "no number known for this device/slot"
    reason = "unknown_device"


class Unavailable(IngestError):
    """Kafka or Redis (or the pool) did not answer: the source must retry; nothing was acknowledged."""

    status = 503
    error = grizzly_common.errors.Unavailable.error
    reason = "unavailable"


class NoLeader(Unavailable):
    """The Kafka partition of this number has no known leader: answered at once, nothing was queued."""

    error = "message queue has no leader for this number's partition, retry"
    reason = "no_leader"


class DeadlineExceeded(Unavailable):
    """No answer within INGEST_REQUEST_DEADLINE_S: a send still in flight is kept, and the retry waits for it."""

    error = "not done within the request deadline, retry"
    reason = "deadline"


class InFlightElsewhere(Unavailable):
    """Another ingest instance is publishing this very message: the retry comes back once it is acknowledged."""

    error = "this message is being published by another instance, retry"
    reason = "in_flight"
