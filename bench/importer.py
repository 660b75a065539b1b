"""Stand-in bulk importer (used only while the pool CLI has no import command): streams a CSV of
number,country,operator,device,slot into grizzly_pool.store.PoolStore.add_numbers, in batches.

python -m bench.importer FILE   (REDIS_URL, POOL_KEY_PREFIX from the environment)
"""

from __future__ import annotations

import csv
import os
import sys

from grizzly_common.redis_client import make_redis

from bench import aio


async def _import(path: str) -> int:
    from grizzly_pool.store import NumberRow, PoolStore

    redis = make_redis(os.environ["REDIS_URL"], max_connections=4)
    try:
        store = PoolStore(redis, os.environ.get("POOL_KEY_PREFIX", "gp:"))
        with open(path, newline="") as source:
            reader = csv.DictReader(source)
            report = await store.add_numbers(
                NumberRow.checked(r["number"], r["country"], r["operator"], r["device"], r["slot"]) for r in reader
            )
        return report.added
    finally:
        await redis.aclose()


def main() -> None:
    added = aio.run(_import(sys.argv[1]))
    sys.stdout.write(f"added {added}\n")


if __name__ == "__main__":
    main()
