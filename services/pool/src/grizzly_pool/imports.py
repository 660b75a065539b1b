"""CSV imports as background jobs with progress (POST /admin/imports, GET /admin/imports/{job}).

The same import as POST /admin/import (csv_import: the whole file is checked first, nothing is imported when a line
is bad), run in a task of this process while the operator polls the job. Job state lives in this process only: a
restart forgets the jobs (an import cut short keeps the rows it had added; importing the file again adds the rest,
rows already in the pool count as existing), and with several pool replicas a job is known only to the one that
took the POST. At most RUNNING_MAX jobs run at once and the KEPT newest are remembered.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from grizzly_pool import csv_import
from grizzly_pool.phones import PhoneCheck
from grizzly_pool.store import PoolStore

log = logging.getLogger(__name__)
RUNNING_MAX: Final = 2  # each holds a copy of its CSV in TMPDIR and feeds Redis batches
KEPT: Final = 50  # jobs remembered (running ones are never forgotten)
JOB_ID: Final = re.compile(r"^[0-9a-f]{16}$")


@dataclass
class ImportJob:
    job: str
    by: str
    state: str = "running"  # running, done, failed
    phase: str = "checking"  # checking (the whole file, before anything is added), importing, finished
    rows_total: int = 0  # known once the file is checked
    rows_done: int = 0
    added: int = 0
    existing: int = 0
    conflicts: list[int] = field(default_factory=list)
    conflicts_total: int = 0
    error: str | None = None
    bad_lines: list[str] = field(default_factory=list)
    error_count: int = 0
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    finished_ms: int | None = None

    def view(self) -> dict[str, Any]:
        return {
            "job": self.job, "state": self.state, "phase": self.phase, "rows_total": self.rows_total,
            "rows_done": self.rows_done, "added": self.added, "existing": self.existing,
            "conflicts": self.conflicts, "conflicts_total": self.conflicts_total, "error": self.error,
            "bad_lines": self.bad_lines, "error_count": self.error_count, "by": self.by,
            "started_ms": self.started_ms, "finished_ms": self.finished_ms,
        }  # fmt: skip


class TooManyImports(Exception):
    pass


class ImportJobs:
    """The jobs of this process, newest last."""

    def __init__(self, running_max: int = RUNNING_MAX, kept: int = KEPT) -> None:
        self.running_max = running_max
        self.kept = kept
        self._jobs: dict[str, ImportJob] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def check_room(self) -> None:
        if len(self._tasks) >= self.running_max:
            raise TooManyImports(f"{len(self._tasks)} imports are running: wait for one to end")

    def get(self, job: str) -> ImportJob | None:
        return self._jobs.get(job)

    def newest(self) -> list[ImportJob]:
        return list(reversed(self._jobs.values()))

    def start(self, store: PoolStore, folder: Path, path: Path, size: int, phones: PhoneCheck | None, by: str) -> str:
        """Run the import of `path` (in `folder`, removed when the job ends) as a job; its id."""
        self.check_room()
        job = ImportJob(secrets.token_hex(8), by)
        self._jobs[job.job] = job
        self._tasks[job.job] = asyncio.create_task(self._run(job, store, folder, path, size, phones))
        finished = [name for name in self._jobs if name not in self._tasks]
        for name in finished[: max(0, len(self._jobs) - self.kept)]:
            del self._jobs[name]
        return job.job

    async def close(self) -> None:
        """Stop the running jobs (the process is going down)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(
        self, job: ImportJob, store: PoolStore, folder: Path, path: Path, size: int, phones: PhoneCheck | None
    ) -> None:
        state = "failed"
        try:
            state = await self._import(job, store, path, size, phones)
        except asyncio.CancelledError:
            job.error = "stopped: the pool process was stopped"
            raise
        finally:
            # the job ends once its copy of the CSV is gone and it no longer counts as running
            self._tasks.pop(job.job, None)
            shutil.rmtree(folder, ignore_errors=True)
            job.phase, job.finished_ms, job.state = "finished", int(time.time() * 1000), state

    async def _import(self, job: ImportJob, store: PoolStore, path: Path, size: int, phones: PhoneCheck | None) -> str:
        """The import; its final state (done, failed)."""
        try:
            job.rows_total = await asyncio.to_thread(csv_import.validate, csv_import.lines_of(path), size, phones)
        except csv_import.CsvError as exc:
            job.error = f"nothing imported: {exc}"
            job.bad_lines, job.error_count = list(exc.errors), exc.total
            return "failed"
        except UnicodeDecodeError:
            job.error = "nothing imported: CSV must be UTF-8"
            return "failed"
        except OSError as exc:
            log.warning("csv import job %s: cannot check the file in TMPDIR: %s", job.job, exc)
            job.error = f"nothing imported: no room in the pool's TMPDIR ({exc.strerror})"
            return "failed"
        job.phase = "importing"

        def progress(done: int) -> None:
            job.rows_done += done

        try:
            report = await csv_import.import_rows(store, csv_import.parse(csv_import.lines_of(path)), progress=progress)
        except Exception as exc:  # Redis went away: the rows added so far stay (as with the CLI)
            log.exception("csv import job %s failed after %d rows", job.job, job.rows_done)
            job.error = f"stopped after {job.rows_done} rows: {type(exc).__name__}"
            await self._record(job, store)
            return "failed"
        job.added, job.existing = report.added, report.existing
        job.conflicts, job.conflicts_total = report.conflicts, report.conflicts_total
        log.info("csv import job", extra={"fields": {"job": job.job, "rows": job.rows_total, "added": job.added}})
        await self._record(job, store)
        return "done"

    @staticmethod
    async def _record(job: ImportJob, store: PoolStore) -> None:
        try:
            await store.record_change(job.by, "import", job=job.job, rows=job.rows_total, added=job.added,
                                      existing=job.existing, conflicts=job.conflicts_total,
                                      **({"error": job.error} if job.error else {}))  # fmt: skip
        except Exception:
            log.exception("csv import job %s: could not record it in the operator stream", job.job)
