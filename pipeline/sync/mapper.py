"""Where pages are mapped: in this process, or in a worker process while this one fetches and writes.

Mapping is the costliest step of a backfill (phone numbers, CURPs, the canonical models); a worker process
lets it run on a core of its own. The worker rebuilds the stream's spec from the kind registry (a spec holds
closures that do not pickle), and hands back plain rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from mappings.context import MappingContext
from pipeline.kinds import KINDS
from pipeline.storage.load import PageRows
from pipeline.sync.prepare import PreparedPage
from pipeline.sync.rows import PageCounts, Stored, map_page

Mapped = tuple[PageRows, PageCounts]


@dataclass(frozen=True)
class PageJob:
    """One page to map, in plain values that pickle: a spec holds closures that do not, so the job names its
    kind and stream and the mapping is found again in the kind registry, here or in the worker."""

    kind: str
    stream: str
    page: PreparedPage
    stored: Stored
    ctx: MappingContext
    source: str
    now: dt.datetime
    run_id: int | None

    def run(self) -> Mapped:
        spec = KINDS[self.kind].streams[self.stream].imported()
        return map_page(self.page, self.stored, spec, self.ctx, self.source, self.now, self.run_id)


def _run(job: PageJob) -> Mapped:
    return job.run()


def _ready() -> None:
    """Nothing: submitted to start the worker process."""


class Mapper:
    """Maps pages; ``workers`` 0 maps in this process, as each page is submitted."""

    def __init__(self, workers: int = 0) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self._starting: threading.Thread | None = None
        if workers > 0:
            # forkserver: a worker forked from this process would inherit its threads' locks mid-use.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["pipeline.sync.mapper"])
            self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)

    @property
    def in_process(self) -> bool:
        return self.pool is None

    def start(self) -> threading.Thread | None:
        """Start the worker process now, in a thread of its own; its launch (a fork server and its imports)
        took 0.6 s in which the first submit held the main thread. Later calls do nothing."""
        if self.pool is None or self._starting is not None:
            return None
        pool = self.pool

        def launch() -> None:
            with contextlib.suppress(RuntimeError):  # the pool was shut down first: nothing to start
                pool.submit(_ready)

        self._starting = threading.Thread(target=launch, name="mapper-start", daemon=True)
        self._starting.start()
        return self._starting

    def submit(self, job: PageJob) -> Future[Mapped]:
        if self.pool is not None:
            return self.pool.submit(_run, job)
        done: Future[Mapped] = Future()
        try:
            done.set_result(job.run())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the result
            done.set_exception(exc)
        return done

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Mapper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
