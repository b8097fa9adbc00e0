"""The daemon: each source's incremental sync and full refresh on their cron schedules (APScheduler).

A stream never runs twice at once: each (source, mode) job has one instance at most, the two modes of a source
take turns on a per-source lock, and across processes the database lease decides. SIGINT/SIGTERM set the
stop event: running streams finish the page in hand, checkpoint and return, then the daemon exits. Each job's
next run time is logged as it is scheduled and after each run; with a metrics port, ``pipeline.app.metrics``
serves what the runs did.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from contextlib import AbstractContextManager
from typing import Any

import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from pipeline.app.metrics import Metrics, MetricsServer
from pipeline.app.signals import graceful_stop
from pipeline.config import Config
from pipeline.kinds import stream_names
from pipeline.storage.run_values import Mode
from pipeline.sync.runner import DoneFn, RunOptions, RunResult, run_sources

log = structlog.get_logger(__name__)


def run_daemon(
    config: Config,
    engine: Engine,
    options: RunOptions,
    run_now: bool = True,
    metrics_port: int | None = None,
    console: AbstractContextManager[Any] | None = None,
) -> None:
    """Run until the stop event is set; ``metrics_port`` also serves ``pipeline.app.metrics`` (``ServeError`` if
    the port cannot be had: raised before any job runs); ``console`` (the steward's console) is served for as
    long as the jobs run."""
    stop = options.stop
    locks = {name: threading.Lock() for name in config.sources}

    def job(name: str, mode: Mode) -> None:
        with locks[name]:
            if not stop.is_set():
                run_sources(config, engine, mode, [name], options)

    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"max_instances": 1, "coalesce": True})
    triggers: dict[str, tuple[str, CronTrigger]] = {}  # job id -> its name and trigger, for the next-run lines
    for name, source in config.sources.items():
        for mode, cron in ((Mode.incremental, source.schedule), (Mode.sweep, source.full_refresh)):
            if cron:
                trigger = CronTrigger.from_crontab(cron, timezone="UTC")
                job_id, job_name = f"{name}:{mode}", f"{name} {mode}"
                triggers[job_id] = (job_name, trigger)
                scheduler.add_job(job, trigger, args=(name, mode), id=job_id, name=job_name, misfire_grace_time=300)
        if run_now and source.schedule:
            scheduler.add_job(job, args=(name, Mode.incremental), id=f"{name}:start", name=f"{name} first sync")

    def log_next_run(job_id: str) -> None:
        # From the trigger, not the scheduler: after a run this is called in the job's thread, and
        # scheduler.get_job would wait for the lock a shutdown holds while it waits for this very thread.
        if job_id in triggers:  # a one-off job (the first sync) has no next run
            job_name, trigger = triggers[job_id]
            at = trigger.get_next_fire_time(None, dt.datetime.now(dt.UTC))
            if at is not None:
                log.info("next run", job=job_name, at=at.isoformat())

    scheduler.add_listener(
        lambda event: log_next_run(event.job_id), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
    )
    server: Any = contextlib.nullcontext()
    if metrics_port is not None:
        metrics = Metrics(engine, [(name, stream) for name, s in config.sources.items() for stream in stream_names(s)])
        options.done = _also(options.done, metrics.record)
        server = MetricsServer(metrics, engine, lambda: scheduler.running, metrics_port)
    with graceful_stop(stop), server, console or contextlib.nullcontext():
        scheduler.start()
        log.info("daemon started", jobs=[scheduled.name for scheduled in scheduler.get_jobs()])
        for job_id in triggers:
            log_next_run(job_id)
        try:
            stop.wait()
        finally:
            scheduler.shutdown(wait=True)
            log.info("daemon stopped")


def _also(first: DoneFn | None, then: DoneFn) -> DoneFn:
    """A run-end callback that calls ``first`` (if any) and then ``then``."""

    def both(result: RunResult) -> None:
        if first is not None:
            first(result)
        then(result)

    return both
