"""Import jobs (grizzly_pool.imports) on a real Redis: how many run at once, how many are remembered."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from grizzly_common.redis_client import make_redis
from grizzly_pool.imports import ImportJobs, TooManyImports
from grizzly_pool.store import PoolStore


def _file(rows: int, start: int) -> tuple[Path, Path, int]:
    folder = Path(tempfile.mkdtemp(prefix="grizzly-test-import-"))
    text = "number,country,operator,device,slot\n" + "".join(
        f"{start + i},ru,mts,d1,{start + i}\n" for i in range(rows)
    )
    path = folder / "import.csv"
    path.write_text(text)
    return folder, path, len(text)


def test_jobs_run_one_at_a_time_when_asked_and_only_the_newest_are_kept(redis_url: str) -> None:
    async def main() -> None:
        client = make_redis(redis_url)
        try:
            store = PoolStore(client)
            jobs = ImportJobs(running_max=1, kept=2)
            ids = []
            for n in range(3):
                folder, path, size = _file(50, 79007000000 + 100 * n)
                ids.append(jobs.start(store, folder, path, size, None, "tester"))
                with pytest.raises(TooManyImports):
                    jobs.check_room()
                while (job := jobs.get(ids[-1])) is not None and job.state == "running":
                    await asyncio.sleep(0.01)
                assert job is not None and job.state == "done" and job.added == 50
                assert not folder.exists()  # the copy of the CSV goes with the job
            assert [job.job for job in jobs.newest()] == ids[:0:-1]
            assert jobs.get(ids[0]) is None
            await jobs.close()
        finally:
            await client.aclose()

    asyncio.run(main())
