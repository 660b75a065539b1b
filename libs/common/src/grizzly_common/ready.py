"""Wait until Kafka or Redis answers for real.

python -m grizzly_common.ready kafka 127.0.0.1:19092 [--timeout 60]
python -m grizzly_common.ready redis redis://127.0.0.1:16379/0 [--timeout 60]
python -m grizzly_common.ready http http://127.0.0.1:8080/readyz [--timeout 60]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.request

from grizzly_common.kafka_client import wait_kafka
from grizzly_common.redis_client import make_redis


async def wait_redis(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        client = make_redis(url, max_connections=1, timeout_s=1.0)
        try:
            if await client.ping():
                return
        except Exception as exc:  # noqa: BLE001
            last = exc
        finally:
            await client.aclose()
        await asyncio.sleep(0.2)
    raise TimeoutError(f"Redis at {url} not ready after {timeout_s}s: {last!r}")


def wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except Exception as exc:  # noqa: BLE001
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout_s}s: {last!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["kafka", "redis", "http"])
    parser.add_argument("address")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    try:
        if args.what == "kafka":
            asyncio.run(wait_kafka(args.address, args.timeout))
        elif args.what == "redis":
            asyncio.run(wait_redis(args.address, args.timeout))
        else:
            wait_http(args.address, args.timeout)
    except TimeoutError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
