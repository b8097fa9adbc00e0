"""Runs streams: fetch a batch, write it with its cursor in one transaction, repeat.

Modes:
- ``incremental`` continues from the stream's tail checkpoint: an offset or page API fetches only appended
  records, a token or bare listing starts over once it has ended, a listing of ids fetches only new details,
  and a fan-out (gauges readings) fetches each parent's records from its watermark.
- ``sweep`` (backfill, full refresh) walks the whole stream from the start, checkpointing under
  ``cursor["sweep"]`` so a crashed sweep resumes from its last committed batch.

A walk that ran from the stream's first page to its last in one process saw the whole stream: it soft-deletes
the records it did not see and clears quarantine rows of records now good or gone (unless the listing looks
truncated). A resumed walk cannot know what the crashed process saw, so it leaves that to the next complete one.
Batches come from ``pipeline.sync.batches``, fetched one ahead in a thread while the previous one is written.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from canonical.errors import LeaseHeldError, PatientSyncError, Stopped
from connectors.client import RetryPolicy, SourceClient
from connectors.stream import FanOut
from pipeline.bind import mapping_context, open_client, stream_names, stream_spec
from pipeline.config import Config, SourceConfig
from pipeline.kinds import KINDS, StreamSpec
from pipeline.storage import lookups, state
from pipeline.sync.batches import Batch, fan_out_batches, listing_batches
from pipeline.sync.messages import database_reason, frames, public, run_error
from pipeline.sync.prefetch import Prefetched
from pipeline.sync.store import (
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
FAN_OUT_CHUNK = 100

# Called after each committed page: (source, stream, records so far, total if the source says it).
ProgressFn = Callable[[str, str, int, int | None], None]
# Called once a stream's run has ended, however it ended.
DoneFn = Callable[["RunResult"], None]


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
    done: DoneFn | None = None
    retry: RetryPolicy | None = None  # None: from each source's config
    lease_ttl: dt.timedelta = state.LEASE_TTL
    today: dt.date | None = None  # None: the real date
    prefetch: int = 1


_told_no_hash_key: set[str] = set()  # sources already warned about, so the daemon says it once


def run_sources(
    config: Config, engine: Engine, mode: str, only: list[str] | None = None, options: RunOptions | None = None
) -> list[RunResult]:
    """Run every stream of the chosen sources; a failing stream never stops the others."""
    options = options or RunOptions()
    results: list[RunResult] = []
    for name, source in config.sources.items():
        if only and name not in only:
            continue
        if KINDS[source.kind].hashes_ssns and source.ssn_key() is None and name not in _told_no_hash_key:
            _told_no_hash_key.add(name)
            log.warning("no ssn_hash_key: SSN hashes are not kept for matching, only ssn_last4", source=name)
        with open_client(name, source, options.retry, options.stop) as client:
            for stream in stream_names(source):
                if options.stop.is_set():
                    return results
                results.append(run_stream(engine, name, source, stream, mode, client, options))
    return results


def run_stream(
    engine: Engine, name: str, source: SourceConfig, stream: str, mode: str, client: Any, options: RunOptions
) -> RunResult:
    result = RunResult(name, stream, mode)
    try:
        claim = state.claim_stream(engine, name, stream, options.lease_ttl)
    except LeaseHeldError as exc:
        log.warning("stream skipped: lease held", source=name, stream=stream)
        result.status, result.error = "skipped", str(exc)  # names our own holder id: nothing a source said
        return result
    except SQLAlchemyError as exc:  # the database is unreachable or locked: this stream fails, the others try
        result.status, result.error = "failed", run_error(name, stream, exc)
        log.error("stream failed", source=name, stream=stream, error=result.error)
        return result
    try:
        result.run_id = state.start_run(engine, name, stream, mode)
        log.info("stream started", source=name, stream=stream, mode=mode, run_id=result.run_id)
        _walk(engine, name, source, stream, mode, client, options, claim.holder, result)
    except Stopped:  # asked to stop while the next batch was on its way: the cursor is at the last commit
        result.status = "interrupted"
    except (PatientSyncError, SQLAlchemyError) as exc:  # a source, the lease or the database: said in one line
        result.status, result.error = "failed", run_error(name, stream, exc)
    except Exception as exc:  # noqa: BLE001 - one stream's bug must not stop the other streams
        result.status, result.error = "failed", run_error(name, stream, exc)
        # The frames to debug by, and none of the exception's own text: it may quote a record.
        log.error("stream crashed", source=name, stream=stream, error=result.error, frames=frames(exc))
    finally:
        if result.status == "running":  # cut short by KeyboardInterrupt or SystemExit
            result.status, result.error = "interrupted", "stopped before the page in hand was committed"
        try:
            _finish(engine, result)
        except SQLAlchemyError as exc:
            log.error("the run's end could not be recorded", source=name, stream=stream, error=database_reason(exc))
        finally:
            try:
                claim.release()
            except SQLAlchemyError as exc:  # taken over once this process has exited (elsewhere: after the TTL)
                log.error("the lease could not be released", source=name, stream=stream, error=database_reason(exc))
    if options.done:
        options.done(result)
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
    client: SourceClient,
    options: RunOptions,
    holder: str,
    result: RunResult,
) -> None:
    spec = stream_spec(source, stream)
    run_id = result.run_id
    assert run_id is not None, "the run row is written before the walk"
    with engine.connect() as conn:
        cursor = state.load_cursor(conn, name, stream)
    sweeping = mode == SWEEP
    if not sweeping:
        position = {k: v for k, v in cursor.items() if k not in _KEPT}
    elif cursor.get("sweep"):  # a sweep that did not finish: continue it
        position = {k: v for k, v in cursor["sweep"].items() if k not in ("started_at", "resumed")}
        cursor = {**cursor, "sweep": {**cursor["sweep"], "resumed": True}}
    else:
        position = {}
        cursor = {**cursor, "sweep": {"started_at": state.utcnow().isoformat(), "resumed": False}}
    # A walk from the very start to the end in one process saw the whole stream, so what it did not see is
    # gone. A fan-out's incremental pass asks only for what is new, so only its sweep sees everything.
    complete = not position and (sweeping or not isinstance(spec.stream, FanOut))
    ctx = mapping_context(source, options.today or state.utcnow().date())
    seen: set[str] = set()
    still_bad: set[str] = set()
    total: int | None = None
    refused = 0
    walk_fetched = 0  # records of this reading of the listing (a shifted listing is read again)
    analyze_at = 1000  # rows inserted by this run; doubled after each refresh
    counted_at = state.utcnow()

    leaving = threading.Event()  # set as the walk ends, however it ends: queued detail requests are not sent
    batches_ahead = _batches(engine, name, source, spec, client, position, sweeping, ctx.today, leaving)
    keeper = state.LeaseKeeper(engine, name, stream, holder, options.lease_ttl)
    prefetched = Prefetched(batches_ahead, depth=options.prefetch, stop=leaving, interrupt=options.stop)
    with keeper, prefetched as batches:
        for batch in batches:
            now = state.utcnow()
            cursor = advance(cursor, batch.checkpoint, sweeping)
            with engine.begin() as conn:
                counts = write_page(conn, name, spec, batch.records, ctx, now, run_id)
                state.save_cursor(conn, name, stream, cursor, now)
                state.renew_lease(conn, name, stream, holder, now, options.lease_ttl)
                if now - counted_at >= RUN_COUNTS_EVERY:  # so status shows a long run's progress
                    state.update_run(conn, run_id, **_count_values(result, counts))
                    counted_at = now
            result.counts.add(counts)  # only once the page is committed
            if batch.restart:  # the listing is read again from its start: only that reading decides deletions
                seen.clear()
                still_bad.clear()
                walk_fetched, total = 0, None
                complete = sweeping or not isinstance(spec.stream, FanOut)
            walk_fetched += counts.fetched
            seen.update(counts.keys)
            still_bad.update(counts.bad_keys)
            if batch.listed is not None:  # listed but not fetched: whether it is still bad is not known
                seen.update(batch.listed)
                still_bad.update(set(batch.listed).difference(counts.keys))
            complete = complete and not batch.partial
            refused += batch.refused
            if result.counts.inserted >= analyze_at:
                refresh_statistics(engine)
                analyze_at *= 2
            total = batch.total if batch.total is not None else total
            if options.progress:
                options.progress(name, stream, result.counts.fetched, total)
            if options.stop.is_set():
                result.status = "interrupted"
                return

    now = state.utcnow()
    with engine.begin() as conn:
        if complete:
            result.deleted = _settle_complete_walk(conn, name, source, spec, seen, still_bad, walk_fetched, total, now)
        elif sweeping:
            log.info("deletions left to the next complete sweep", source=name, stream=stream)
        if sweeping:
            state.save_cursor(conn, name, stream, end_sweep(cursor), now)
        state.renew_lease(conn, name, stream, holder, now, options.lease_ttl)
    result.status = "succeeded"
    if refused:  # a success with a warning: kept on the run row, so status shows it
        result.error = public(
            f"{name}/{stream}: {refused} parent(s) refused with HTTP 403 although the token is good: "
            "their records were not read, and no deletion was decided"
        )


def _batches(
    engine: Engine,
    name: str,
    source: SourceConfig,
    spec: StreamSpec,
    client: SourceClient,
    position: dict[str, Any],
    sweeping: bool,
    today: dt.date,
    leaving: threading.Event,
) -> Iterator[Batch]:
    """The stream's batches from ``position``; sweeps fetch everything, incremental runs only what is new."""
    stream = spec.stream
    if isinstance(stream, FanOut):
        # Parents per batch: each batch commits with a lease renewal, and 100 requests stay well inside the lease.
        chunk = min(source.page_size, FAN_OUT_CHUNK)
        parents = lookups.live_keys(engine, name, stream.parent, position.get("after"), chunk)
        watermarks = None if sweeping else functools.partial(lookups.latest_observation_dates, engine, name, today)
        return fan_out_batches(client, stream, parents, watermarks, source.concurrency, leaving)
    base = dict(stream.params)
    start = stream.paginator.resume(base, position) if position else base
    stored = (
        None
        if sweeping or stream.details is None
        else functools.partial(lookups.stored_among, engine, name, stream.name)
    )
    return listing_batches(client, stream, start, stored, source.concurrency, leaving)


_KEPT = ("sweep",)  # what a batch's checkpoint does not replace


def advance(cursor: dict[str, Any], checkpoint: dict[str, Any], sweeping: bool) -> dict[str, Any]:
    """The cursor after a committed batch: the checkpoint replaces the old position, never merges into it.

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

    >>> end_sweep({"offset": 5, "sweep": {"offset": 90, "started_at": "t", "resumed": False}})
    {'offset': 90}
    """
    return {k: v for k, v in (cursor.get("sweep") or {}).items() if k not in ("started_at", "resumed")}


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


def _settle_complete_walk(
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
    """What a complete walk establishes, unless its listing looks truncated: records it did not see are
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
