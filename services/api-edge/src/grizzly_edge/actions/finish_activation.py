"""FINISH_ACTIVATION: close an activation (idempotent on the pool side); SUCCESS or ERROR."""

from __future__ import annotations

from grizzly_common import pool_api
from grizzly_common.messages import SUCCESS_BODY, decode_finish, error_body

from grizzly_edge.actions import Answer, Call


async def handle(call: Call) -> Answer:
    request = decode_finish(call.body)
    result = await call.batcher.finish(
        pool_api.FinishRequest(upstream=call.upstream, activation_id=request.activationId, status=request.status)
    )
    if result.status == "SUCCESS":
        return Answer("SUCCESS", SUCCESS_BODY)
    return Answer("ERROR", error_body(result.error or "finish refused"))
