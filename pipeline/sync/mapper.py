"""Where pages are mapped: in this process, or in a worker process while this one fetches and writes.

Mapping is the costliest step of a backfill (phone numbers, CURPs, the canonical models); a worker process
lets it run on a core of its own. The worker rebuilds the stream's spec from the kind registry (a spec holds
closures that do not pickle), and hands back plain rows.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import psutil

from mappings.context import MappingContext
from pipeline.kinds import KINDS
from pipeline.storage.load import PageRows
from pipeline.sync import collector
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
        collector.freeze_imports()  # a worker process's first page: its mapping is imported now
        return map_page(self.page, self.stored, spec, self.ctx, self.source, self.now, self.run_id)


def _run(job: PageJob) -> Mapped:
    return job.run()


def _leave_stopping_to_the_runner(runner: int) -> None:
    """A worker ignores Ctrl-C and SIGTERM: a terminal's Ctrl-C reaches the whole process group, as a service
    manager's SIGTERM reaches every process of the service, and a worker they ended would print a traceback and
    break the pool while the runner finishes the page in hand. The runner shuts the pool down as it stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_without, args=(psutil.Process(runner),), name="runner", daemon=True).start()


def _exit_without(runner: psutil.Process) -> None:
    """Exit once the runner is gone (killed, say): a worker holds both ends of its result pipe, so one whose
    runner died mid-page would wait to send its rows for good, and keep the fork server waiting with it."""
    while True:
        time.sleep(_RUNNER_CHECK_SECONDS)
        try:
            if not runner.is_running() or runner.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
    os._exit(1)


_RUNNER_CHECK_SECONDS = 1.0


class Mapper:
    """Maps pages; ``workers`` 0 maps in this process, as each page is submitted. A worker process starts with the
    first page submitted to it (a fork server and its imports: about a second of CPU), so a run that maps little
    in a worker (a re-sync of unchanged records, runner.MAPPED_HERE_BELOW) never pays for it."""

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None  # made by the first submit: even an idle one starts a process

    @property
    def in_process(self) -> bool:
        return self.workers == 0

    def submit(self, job: PageJob) -> Future[Mapped]:
        if self.workers > 0:
            if self.pool is None:
                # forkserver: a worker forked from this process would inherit its threads' locks mid-use.
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["pipeline.sync.mapper"])
                self.pool = ProcessPoolExecutor(
                    self.workers, context, initializer=_leave_stopping_to_the_runner, initargs=(os.getpid(),)
                )
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
