"""Runs streams: fetch a page, write it with its cursor in one transaction, repeat.

Modes:
- ``incremental`` continues from the stream's tail checkpoint (an offset API: only appended records).
- ``sweep`` (backfill, full refresh) walks the whole stream from the start, checkpointing under
  ``cursor["sweep"]`` so a crashed sweep resumes from its last committed page. A sweep that ran from its first
  page to its last in one process soft-deletes the records it did not see; a resumed one cannot know what the
  crashed process saw, so it leaves deletions to the next complete sweep.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from canonical.errors import LeaseHeldError, PatientSyncError, SourceError
from connectors.client import RetryPolicy
from connectors.stream import read_pages
from mappings.context import MappingContext
from pipeline import state
from pipeline.config import Config, SourceConfig
from pipeline.prefetch import Prefetched
from pipeline.sources import open_client, phone_region, stream_names, stream_spec
from pipeline.store import (
    PageCounts,
    clear_quarantine,
    missing_records,
    refresh_statistics,
    soft_delete,
    write_page,
)

log = structlog.get_logger(__name__)

INCREMENTAL = "incremental"
SWEEP = "sweep"

RUN_COUNTS_EVERY = dt.timedelta(seconds=5)

# Called after each committed page: (source, stream, records so far, total if the source says it).
ProgressFn = Callable[[str, str, int, int | None], None]


@dataclass
class RunResult:
    source: str
    stream: str
    mode: str
    status: str = "running"  # succeeded | failed | interrupted | skipped
    counts: PageCounts = field(default_factory=PageCounts)
    deleted: int = 0
    error: str | None = None
    run_id: int | None = None

    @property
    def ok(self) -> bool:
        """Not a failure: finished, stopped on request, or left to the process that holds its lease."""
        return self.status in ("succeeded", "interrupted", "skipped")


@dataclass
class RunOptions:
    stop: threading.Event = field(default_factory=threading.Event)
    progress: ProgressFn | None = None
    retry: RetryPolicy | None = None  # None: from each source's config
    lease_ttl: dt.timedelta = state.LEASE_TTL
    today: dt.date | None = None  # None: the real date
    prefetch: int = 1


def run_sources(
    config: Config, engine: Engine, mode: str, only: list[str] | None = None, options: RunOptions | None = None
) -> list[RunResult]:
    """Run every stream of the chosen sources; a failing stream never stops the others."""
    options = options or RunOptions()
    results: list[RunResult] = []
    for name, source in config.sources.items():
        if only and name not in only:
            continue
        with open_client(name, source, options.retry) as client:
            for stream in stream_names(source):
                if options.stop.is_set():
                    return results
                results.append(run_stream(engine, name, source, stream, mode, client, options))
    return results


def run_stream(
    engine: Engine, name: str, source: SourceConfig, stream: str, mode: str, client: Any, options: RunOptions
) -> RunResult:
    result = RunResult(name, stream, mode)
    holder = state.new_holder()
    try:
        state.acquire_lease(engine, name, stream, holder, options.lease_ttl)
    except LeaseHeldError as exc:
        log.warning("stream skipped: lease held", source=name, stream=stream)
        result.status, result.error = "skipped", str(exc)
        return result
    except SQLAlchemyError as exc:  # the database is unreachable or locked: this stream fails, the others try
        result.status, result.error = "failed", f"{name}/{stream}: database: {_reason(exc)}"
        log.error("stream failed", source=name, stream=stream, error=result.error)
        return result
    try:
        result.run_id = state.start_run(engine, name, stream, mode)
        log.info("stream started", source=name, stream=stream, mode=mode, run_id=result.run_id)
        _walk(engine, name, source, stream, mode, client, options, holder, result)
    except (SourceError, state.LeaseLostError) as exc:
        result.status, result.error = "failed", str(exc)
    except PatientSyncError as exc:
        result.status, result.error = "failed", f"{name}/{stream}: {exc}"
    except Exception as exc:  # noqa: BLE001 - one stream's bug must not stop the other streams
        log.exception("stream crashed", source=name, stream=stream)
        result.status, result.error = "failed", f"{name}/{stream}: {type(exc).__name__}: {exc}"
    finally:
        if result.status == "running":  # cut short by KeyboardInterrupt or SystemExit
            result.status, result.error = "interrupted", "stopped before the page in hand was committed"
        try:
            _finish(engine, result)
        except SQLAlchemyError as exc:
            log.error("the run's end could not be recorded", source=name, stream=stream, error=_reason(exc))
        finally:
            try:
                state.release_lease(engine, name, stream, holder)
            except SQLAlchemyError as exc:  # it lapses by itself after the lease TTL
                log.error("the lease could not be released", source=name, stream=stream, error=_reason(exc))
    log_fn = log.info if result.ok else log.error
    log_fn(
        "stream finished",
        source=name,
        stream=stream,
        mode=mode,
        status=result.status,
        error=result.error,
        fetched=result.counts.fetched,
        inserted=result.counts.inserted,
        updated=result.counts.updated,
        unchanged=result.counts.unchanged,
        quarantined=result.counts.quarantined,
        deleted=result.deleted,
    )
    return result


def _walk(
    engine: Engine,
    name: str,
    source: SourceConfig,
    stream: str,
    mode: str,
    client: Any,
    options: RunOptions,
    holder: str,
    result: RunResult,
) -> None:
    spec = stream_spec(source, stream)
    run_id = result.run_id
    assert run_id is not None, "the run row is written before the walk"
    paginator, base = spec.stream.paginator, dict(spec.stream.params)
    with engine.connect() as conn:
        cursor = state.load_cursor(conn, name, stream)
    sweeping = mode == SWEEP
    if not sweeping:
        start = paginator.resume(base, {k: v for k, v in cursor.items() if k not in _KEPT})
    elif cursor.get("sweep"):  # a sweep that did not finish: continue it
        start = paginator.resume(base, cursor["sweep"])
        cursor = {**cursor, "sweep": {**cursor["sweep"], "resumed": True}}
    else:
        start = base
        cursor = {**cursor, "sweep": {"started_at": state.utcnow().isoformat(), "resumed": False}}
    ctx = MappingContext(today=options.today or dt.date.today(), phone_region=phone_region(source))
    seen: set[str] = set()
    still_bad: set[str] = set()
    total: int | None = None
    analyze_at = 1000  # rows inserted by this run; doubled after each refresh
    counted_at = state.utcnow()

    with Prefetched(read_pages(client, spec.stream, start), depth=options.prefetch) as pages:
        for params, page in pages:
            now = state.utcnow()
            cursor = advance(cursor, paginator.checkpoint(params, page), sweeping)
            with engine.begin() as conn:
                counts = write_page(conn, name, spec, page.records, ctx, now, run_id)
                state.save_cursor(conn, name, stream, cursor, now)
                state.renew_lease(conn, name, stream, holder, now, options.lease_ttl)
                if now - counted_at >= RUN_COUNTS_EVERY:  # so status shows a long run's progress
                    state.update_run(conn, run_id, **_count_values(result, counts))
                    counted_at = now
            result.counts.add(counts)  # only once the page is committed
            seen.update(counts.keys)
            still_bad.update(counts.bad_keys)
            if result.counts.inserted >= analyze_at:
                refresh_statistics(engine)
                analyze_at *= 2
            total = page.total if page.total is not None else total
            if options.progress:
                options.progress(name, stream, result.counts.fetched, total)
            if options.stop.is_set():
                result.status = "interrupted"
                return

    if sweeping:
        now = state.utcnow()
        with engine.begin() as conn:
            if cursor["sweep"]["resumed"]:
                log.info("deletions left to the next complete sweep", source=name, stream=stream)
            else:
                result.deleted = _settle_sweep(
                    conn, name, source, spec, seen, still_bad, result.counts.fetched, total, now
                )
            state.save_cursor(conn, name, stream, end_sweep(cursor), now)
            state.renew_lease(conn, name, stream, holder, now, options.lease_ttl)
    result.status = "succeeded"


_KEPT = ("sweep", "watermark")  # what a page's checkpoint does not replace


def advance(cursor: dict[str, Any], checkpoint: dict[str, Any], sweeping: bool) -> dict[str, Any]:
    """The cursor after a committed page: the checkpoint replaces the old position, never merges into it.

    An empty checkpoint (a token listing that ended) must forget the old token, so the next run lists from
    the start. During a sweep the position goes under ``sweep`` and the incremental tail is left alone.

    >>> advance({"continuation_token": "t2"}, {}, sweeping=False)
    {}
    >>> advance({"offset": 40}, {"offset": 10}, sweeping=True)
    {'offset': 40, 'sweep': {'offset': 10}}
    """
    if sweeping:
        sweep = {k: v for k, v in (cursor.get("sweep") or {}).items() if k in ("started_at", "resumed")}
        return {**cursor, "sweep": {**sweep, **checkpoint}}
    return {**{k: v for k, v in cursor.items() if k in _KEPT}, **checkpoint}


def end_sweep(cursor: dict[str, Any]) -> dict[str, Any]:
    """After a complete sweep its last position becomes the incremental tail.

    >>> end_sweep({"offset": 5, "watermark": {"a": 1}, "sweep": {"offset": 90, "started_at": "t", "resumed": False}})
    {'watermark': {'a': 1}, 'offset': 90}
    """
    sweep = {k: v for k, v in (cursor.get("sweep") or {}).items() if k not in ("started_at", "resumed")}
    return {**{k: v for k, v in cursor.items() if k == "watermark"}, **sweep}


def _count_values(result: RunResult, pending: PageCounts | None = None) -> dict[str, int]:
    c = PageCounts()
    c.add(result.counts)
    if pending is not None:
        c.add(pending)
    return {
        "fetched": c.fetched,
        "inserted": c.inserted,
        "updated": c.updated,
        "unchanged": c.unchanged,
        "quarantined": c.quarantined,
        "deleted": result.deleted,
    }


def _settle_sweep(
    conn: Any,
    name: str,
    source: SourceConfig,
    spec: Any,
    seen: set[str],
    still_bad: set[str],
    fetched: int,
    total: int | None,
    now: dt.datetime,
) -> int:
    """What a complete sweep establishes, unless its listing looks truncated: records it did not see are
    soft-deleted, and quarantine rows of records no longer bad (fixed, reverted or gone) are cleared.

    A source that answers one page short or empty (an outage, a bug) would otherwise make the sweep look
    complete and delete everything after it; then nothing is settled and the next sweep decides.
    """
    gone, live = missing_records(conn, name, spec, seen)
    withheld = None
    if not seen and (live or gone):
        withheld = "the sweep saw no records"
    elif total is not None and fetched < total:
        withheld = f"the source counts {total} records but the sweep received {fetched}"
    elif len(gone) > source.max_delete_fraction * live:
        withheld = f"{len(gone)} of {live} records would go, more than max_delete_fraction {source.max_delete_fraction}"
    if withheld:
        log.warning(
            "deletions withheld: the listing looks truncated", source=name, stream=spec.stream.name, reason=withheld
        )
        return 0
    if gone:
        soft_delete(conn, name, spec, gone, now)
    clear_quarantine(conn, name, spec.stream.name, still_bad)
    return len(gone)


def _reason(exc: SQLAlchemyError) -> str:
    """The driver's own first line (e.g. "database is locked"), without the statement."""
    orig = getattr(exc, "orig", None)
    return (str(orig) if orig is not None else type(exc).__name__).splitlines()[0][:200]


def _finish(engine: Engine, result: RunResult) -> None:
    if result.run_id is None:
        return
    with engine.begin() as conn:
        state.update_run(
            conn,
            result.run_id,
            status=result.status,
            finished_at=state.utcnow(),
            error=result.error,
            **_count_values(result),
        )
