"""A fast fake of the platform's push endpoint, run as its own process (python -m bench.fake_push).

It answers {"status":"SUCCESS"} to every POST and, when the SMS text is "bench <send time in ns>", records the
end-to-end latency. GET /stats returns the counts and percentiles, POST /reset clears them.
Port from BENCH_FAKE_PORT.
"""

from __future__ import annotations

import os
import time

import orjson
from grizzly_common.web import health_routes, json_response, serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.stats import percentile

_SUCCESS = b'{"status":"SUCCESS"}'


def create_app() -> Starlette:
    state: dict[str, object] = {}

    def reset() -> None:
        state.update(latencies=[], sms_ids=set(), pushes=0, duplicates=0, first_ns=0, last_ns=0)

    reset()

    async def push(request: Request) -> Response:
        now = time.time_ns()
        raw = await request.body()
        try:
            body = orjson.loads(raw)
            text = str(body.get("text", ""))
            sms_id = body.get("smsId")
        except orjson.JSONDecodeError:
            return json_response(b'{"status":"ERROR","error":"bad json"}')
        state["pushes"] = int(state["pushes"]) + 1  # type: ignore[call-overload]
        ids: set[object] = state["sms_ids"]  # type: ignore[assignment]
        if sms_id in ids:
            state["duplicates"] = int(state["duplicates"]) + 1  # type: ignore[call-overload]
        ids.add(sms_id)
        if text.startswith("bench "):
            sent_ns = int(text.split()[1])
            state["latencies"].append((now - sent_ns) / 1e9)  # type: ignore[attr-defined]
            if not state["first_ns"]:
                state["first_ns"] = now
            state["last_ns"] = now
        return json_response(_SUCCESS)

    async def stats(request: Request) -> Response:
        values = sorted(state["latencies"])  # type: ignore[call-overload]
        return json_response(
            {
                "pushes": state["pushes"],
                "unique": len(state["sms_ids"]),  # type: ignore[arg-type]
                "duplicates": state["duplicates"],
                "timed": len(values),
                "first_ns": state["first_ns"],
                "last_ns": state["last_ns"],
                "p50_ms": round(percentile(values, 50) * 1000, 3),
                "p99_ms": round(percentile(values, 99) * 1000, 3),
                "max_ms": round((values[-1] if values else 0.0) * 1000, 3),
            }
        )

    async def do_reset(request: Request) -> Response:
        reset()
        return json_response(_SUCCESS)

    return Starlette(
        routes=[
            Route("/agent/api/sms", push, methods=["POST"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/reset", do_reset, methods=["POST"]),
            *health_routes({}),
        ]
    )


def main() -> None:
    serve(create_app(), "127.0.0.1", int(os.environ["BENCH_FAKE_PORT"]))


if __name__ == "__main__":
    main()
