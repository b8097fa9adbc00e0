"""The daemon: each source's incremental sync and full refresh on their cron schedules (APScheduler).

A stream never runs twice at once: each (source, mode) job has one instance at most, the two modes of a source
take turns on a per-source lock, and across processes the database lease decides. SIGINT/SIGTERM set the
stop event: running streams finish the page in hand, checkpoint and return, then the daemon exits.
"""

from __future__ import annotations

import threading

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from pipeline.app.signals import graceful_stop
from pipeline.config import Config
from pipeline.storage.tables import Mode
from pipeline.sync.runner import RunOptions, run_sources

log = structlog.get_logger(__name__)


def run_daemon(config: Config, engine: Engine, options: RunOptions, run_now: bool = True) -> None:
    stop = options.stop
    locks = {name: threading.Lock() for name in config.sources}

    def job(name: str, mode: Mode) -> None:
        with locks[name]:
            if not stop.is_set():
                run_sources(config, engine, mode, [name], options)

    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"max_instances": 1, "coalesce": True})
    for name, source in config.sources.items():
        for mode, cron in ((Mode.incremental, source.schedule), (Mode.sweep, source.full_refresh)):
            if cron:
                scheduler.add_job(
                    job,
                    CronTrigger.from_crontab(cron, timezone="UTC"),
                    args=(name, mode),
                    id=f"{name}:{mode}",
                    name=f"{name} {mode}",
                    misfire_grace_time=300,
                )
        if run_now and source.schedule:
            scheduler.add_job(job, args=(name, Mode.incremental), id=f"{name}:start", name=f"{name} first sync")

    with graceful_stop(stop):
        scheduler.start()
        log.info("daemon started", jobs=[job.name for job in scheduler.get_jobs()])
        try:
            stop.wait()
        finally:
            scheduler.shutdown(wait=True)
            log.info("daemon stopped")
