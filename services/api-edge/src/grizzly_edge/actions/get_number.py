"""GET_NUMBER: claim one free number from the pool. NO_NUMBERS is a result, not an error."""

from __future__ import annotations

import orjson
from grizzly_common import pool_api
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
from grizzly_edge.metrics import NUMBERS_ISSUED


def audit_json(body: bytes) -> str:
    """The platform's request as received, minus its key: what the audit trail keeps."""
    request = orjson.loads(body)
    request.pop("key", None)
    return orjson.dumps(request).decode()


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
    )
    result = await call.pool.call("/v1/claim", claim, pool_api.ClaimResult)
    if result.status == "SUCCESS":
        NUMBERS_ISSUED.labels(call.upstream, claim.service).inc()
        return Answer(
            "SUCCESS", get_number_success(result.number, result.activation_id, result.flashcall, result.voice)
        )
    if result.status == "NO_NUMBERS":
        return Answer("NO_NUMBERS", NO_NUMBERS_BODY)
    return Answer("ERROR", error_body(result.error or "number request refused"))
