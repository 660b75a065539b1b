"""Protocol errors. Each carries the text sent in {"status":"ERROR","error":...}; one handler renders them all.

NO_NUMBERS is a result, not an error, and is not here.
"""

from __future__ import annotations


class PartnerError(Exception):
    """Base of every error answered with the ERROR envelope (always HTTP 200)."""

    error: str = "internal error"
    retriable: bool = False  # True when the same request may succeed later (a dependency was down)

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.error)
        if detail is not None:
            self.error = detail


class BadRequest(PartnerError):
    error = "bad request"


class WrongKey(PartnerError):
    error = "wrong key"


class UnknownAction(PartnerError):
    error = "unknown action"


class UnknownActivation(PartnerError):
    error = "unknown activationId"


class BodyTooLarge(PartnerError):
    error = "request body too large"


class Unavailable(PartnerError):
    """A dependency (pool, Redis, Kafka) did not answer in time."""

    error = "temporarily unavailable, retry"
    retriable = True


class DecodeError(Exception):
    """A Kafka record that cannot be decoded: park it, never retry it (it will not decode next time either)."""
