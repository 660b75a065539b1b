"""A bare HTTP server for bench/tailref.py: a uvloop protocol that answers every request (any path, /readyz too) with
the same small JSON, after busy-spinning BENCH_RAW_SPIN_US of CPU (0: none). No framework, no parsing beyond the head
and a Content-Length body: what any server's tail under the load generator is measured against.

python -m bench.rawserver   (port from BENCH_RAW_PORT)
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import cast

import uvloop

_ANSWER = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n{"status":"SUCCESS"}'
_LENGTH = b"\r\ncontent-length:"


class _Raw(asyncio.Protocol):
    def __init__(self, spin_s: float) -> None:
        self._spin_s = spin_s
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:  # every complete request, pipelined ones too
            head = self._buffer[:end].lower()
            length = 0
            if (at := head.find(_LENGTH)) >= 0:
                length = int(head[at + len(_LENGTH) :].split(b"\r\n", 1)[0])
            if len(self._buffer) < end + 4 + length:
                return
            self._buffer = self._buffer[end + 4 + length :]
            until = time.perf_counter() + self._spin_s
            while time.perf_counter() < until:
                pass
            assert self._transport is not None
            self._transport.write(_ANSWER)


async def _serve(port: int, spin_s: float) -> None:
    server = await asyncio.get_running_loop().create_server(lambda: _Raw(spin_s), "127.0.0.1", port, backlog=2048)
    await server.serve_forever()


def main() -> None:
    uvloop.run(_serve(int(os.environ["BENCH_RAW_PORT"]), float(os.environ.get("BENCH_RAW_SPIN_US", "0")) / 1e6))


if __name__ == "__main__":
    main()
