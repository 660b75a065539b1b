"""GET_NUMBER: claim one free number from the pool. NO_NUMBERS is a result, not an error.

One claim per request, sent to the pool together with the concurrent ones (grizzly_edge.batching). Its claim
carries a fresh claim id and a deadline; a number the platform gets is confirmed, any other outcome of a sent claim
(timeout, pool error, a failure here, the platform already gone) releases the claim id, both in the background
(grizzly_edge.claims), so a number claimed for an answer the platform never saw goes back.
"""

from __future__ import annotations

import logging
import os

import orjson
from grizzly_common import pool_api
from grizzly_common.errors import BadRequest, Unavailable
from grizzly_common.logging import log_fields
from grizzly_common.messages import (
    NO_NUMBERS_BODY,
    as_decimal,
    country_code,
    decode_get_number,
    error_body,
    get_number_success,
    normalize_prefixes,
)

from grizzly_edge.actions import Answer, Call
from grizzly_edge.claims import deadline_ms
from grizzly_edge.metrics import numbers_issued

log = logging.getLogger(__name__)


def audit_json(body: bytes) -> str:
    """The platform's request as received, minus its key: what the audit trail keeps."""
    try:
        request = orjson.loads(body)
        request.pop("key", None)
        return orjson.dumps(request).decode()
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):  # nested past orjson's limits, which msgspec's exceed
        raise BadRequest("body is not valid JSON (nested too deeply)") from None


async def handle(call: Call) -> Answer:
    request = decode_get_number(call.body)
    claim = pool_api.ClaimRequest(
        upstream=call.upstream,
        country=country_code(request.country),
        operator=request.operator,
        service=request.service,
        sum=str(as_decimal(request.sum)),
        currency=request.currency,
        exclude_prefixes=normalize_prefixes(request.exceptionPhoneSet),
        request_json=audit_json(call.body),
        claim_id=os.urandom(16).hex(),  # as random as uuid4, without building a UUID
        deadline_ms=deadline_ms(call.pool.timeout_s),
    )
    try:
        result = await call.batcher.claim(claim)
        if result.status == "SUCCESS":
            answer = Answer(
                "SUCCESS", get_number_success(result.number, result.activation_id, result.flashcall, result.voice)
            )
            if await call.disconnected():  # it gave up first (its own timeout): nobody will read this number
                log.info("platform hung up before the number", extra=log_fields(activation_id=result.activation_id))
                raise Unavailable()
            call.claims.confirm(result.activation_id)
            numbers_issued(call.upstream, claim.service).inc()
            return answer
    except BaseException:  # a timeout, a lost answer, this task cancelled: the pool may have claimed all the same
        call.claims.release(claim.claim_id)
        raise
    if result.status == "NO_NUMBERS":
        return Answer("NO_NUMBERS", NO_NUMBERS_BODY)
    call.claims.release(claim.claim_id)  # an ERROR can come after the claim (e.g. Redis answered too late)
    return Answer("ERROR", error_body(result.error or "number request refused"))
