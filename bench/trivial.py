"""The framework limit: a trivial Starlette JSON endpoint served exactly like the services (grizzly_common.web.serve).

python -m bench.trivial   (port from BENCH_TRIVIAL_PORT)
"""

from __future__ import annotations

import os

from grizzly_common.web import health_routes, json_response, serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_BODY = b'{"status":"SUCCESS"}'


def create_app() -> Starlette:
    async def endpoint(request: Request) -> Response:
        await request.body()  # read the body like the edge does, answer a constant JSON
        return json_response(_BODY)

    return Starlette(routes=[Route("/", endpoint, methods=["POST"]), *health_routes({})])


def main() -> None:
    serve(create_app(), "127.0.0.1", int(os.environ["BENCH_TRIVIAL_PORT"]))


if __name__ == "__main__":
    main()
