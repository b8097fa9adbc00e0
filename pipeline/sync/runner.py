"""Runs streams: fetch a batch, write it with its cursor in one transaction, repeat.

Modes (``Mode``):
- ``incremental`` continues from the stream's tail checkpoint: an offset or page API fetches only appended
  records, a token or bare listing starts over once it has ended, a listing of ids fetches only new details,
  and a fan-out (gauges readings) fetches each parent's records from its watermark.
- ``sweep`` (backfill, full refresh) walks the whole stream from the start, checkpointing its own position
  (``Cursor.sweep``) so a crashed sweep resumes from its last committed batch.

A dry run (``RunOptions.dry_run``) fetches and maps as a run would, and counts what it would write; it writes
nothing at all: no lease, run row, record, cursor or link.

A walk that ran from the stream's first page to its last in one process saw the whole stream: it soft-deletes
the records it did not see and clears quarantine rows of records now good or gone (unless the listing looks
truncated). A resumed walk cannot know what the crashed process saw, so it leaves that to the next complete one.
Batches come from ``pipeline.sync.batches``, fetched one ahead in a thread while the previous one is written.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from canonical.errors import LeaseHeldError, PatientSyncError, Stopped
from connectors.client import RetryPolicy, SourceClient
from mappings.context import MappingContext
from pipeline.bind import mapping_context, open_client, stream_spec
from pipeline.config import Config, IdentityConfig, SourceConfig
from pipeline.kinds import KINDS, StreamSpec, stream_names
from pipeline.storage import cursors, leases, lookups
from pipeline.storage.db import reading, utcnow
from pipeline.storage.run_values import Mode, Status
from pipeline.sync import collector
from pipeline.sync.batches import Batch, fan_out_batches, listing_batches
from pipeline.sync.cursor import Cursor
from pipeline.sync.linking import LinkStats, link_pending
from pipeline.sync.mapper import Mapped, Mapper, PageJob
from pipeline.sync.messages import database_reason, frames, public, run_error
from pipeline.sync.prefetch import Prefetched
from pipeline.sync.prepare import PreparedPage, prepare_page
from pipeline.sync.rows import PageCounts
from pipeline.sync.settle import Walk
from pipeline.sync.sink import DatabaseSink, RehearsalSink, Sink, Target

log = structlog.get_logger(__name__)

INCREMENTAL = Mode.incremental
SWEEP = Mode.sweep

RUN_COUNTS_EVERY = dt.timedelta(seconds=5)
FAN_OUT_CHUNK = 100
# A group with fewer records to prepare and map is mapped in this process: the worker's hand-off (pickling both
# ways; its start, the first time: about a second of CPU) costs more than they do. A re-sync's group of 5,000
# holds some 70 (records whose stored form is masked: prepared again, and found unchanged).
MAPPED_HERE_BELOW = 200

# Called after each committed page: (source, stream, records so far, total if the source says it).
ProgressFn = Callable[[str, str, int, int | None], None]
# Called once a stream's run has ended, however it ended.
DoneFn = Callable[["RunResult"], None]


@dataclass
class RunResult:
    source: str
    stream: str
    mode: Mode
    status: Status = Status.running
    counts: PageCounts = field(default_factory=PageCounts)
    deleted: int = 0
    error: str | None = None
    run_id: int | None = None
    seconds: float = 0.0  # how long the run took, lease and bookkeeping included

    @property
    def ok(self) -> bool:
        """Not a failure: finished, stopped on request, or left to the process that holds its lease."""
        return self.status in (Status.succeeded, Status.interrupted, Status.skipped)


@dataclass
class RunOptions:
    stop: threading.Event = field(default_factory=threading.Event)
    progress: ProgressFn | None = None
    done: DoneFn | None = None
    retry: RetryPolicy | None = None  # None: from each source's config
    lease_ttl: dt.timedelta = leases.LEASE_TTL
    today: dt.date | None = None  # None: the real date
    prefetch: int | None = None  # batches fetched ahead; None: a commit's worth (commit_records), at most 100
    # Batches written in one transaction, with the cursor after the last: until this many records, or this many
    # seconds since the first arrived, whichever comes first (1 record: a transaction per page). A commit's
    # cost is the index pages it dirties, and a backfill's keys land all over their indexes: the more rows a
    # commit holds, the more of them share a page (100,000 patients linked, SQLite: 1,000 records a commit
    # 156 s, 2,500 105 s, 5,000 92 s at a peak of 356 MiB, 10,000 87 s at 495 MiB). A kill loses at most
    # this much work, fetched again by the next run.
    commit_records: int = 5_000
    commit_seconds: float = 5.0
    # ... or as soon as the source has kept the next batch waiting this long: what a slow or stalled source has
    # already given lands (a kill during the stall loses none of it) instead of waiting out ``commit_seconds``.
    commit_idle: float = 0.5
    # Processes that map pages while this one fetches and writes; 0 maps here; None: one for a sweep when the
    # machine has a core to spare (a worker costs a second or so to start: not worth it for a short sync).
    mapping_workers: int | None = None
    transport: httpx.BaseTransport | None = None  # None: the network; a test may hand in the sandbox's app
    dry_run: bool = False  # fetch and map, count what would be written, write nothing


_told_no_hash_key: set[str] = set()  # sources already warned about, so the daemon says it once


def run_sources(
    config: Config, engine: Engine, mode: Mode | str, only: list[str] | None = None, options: RunOptions | None = None
) -> list[RunResult]:
    """Run every stream of the chosen sources; a failing stream never stops the others."""
    options = options or RunOptions()
    mode = Mode(mode)
    workers = options.mapping_workers
    if workers is None:
        workers = 1 if mode is Mode.sweep and (os.cpu_count() or 1) >= 2 else 0
    with Mapper(workers) as mapper:
        results = _run_sources(config, engine, mode, only, options, mapper)
    if config.identity.link_during_sync and not options.stop.is_set() and not options.dry_run:
        link(engine, config.identity)  # what the streams' deletions queued, and anything an earlier run left
    return results


def link(engine: Engine, identity: IdentityConfig) -> LinkStats | None:
    """Link the queued patients (pipeline.sync.linking). A failure is logged, never raised, so it fails no
    stream: the patients stay queued for the next pass, run or ``patientsync link``."""
    try:
        return link_pending(engine, identity)
    except SQLAlchemyError as exc:
        log.error("linking failed: the patients stay queued", error=database_reason(exc))
    except Exception as exc:  # noqa: BLE001 - a linking bug must not cost the records already landed
        log.error("linking crashed: the patients stay queued", error=type(exc).__name__, frames=frames(exc))
    return None


def _run_sources(
    config: Config, engine: Engine, mode: Mode, only: list[str] | None, options: RunOptions, mapper: Mapper
) -> list[RunResult]:
    results: list[RunResult] = []
    for name, source in config.sources.items():
        if only and name not in only:
            continue
        if KINDS[source.kind].hashes_ssns and source.ssn_key() is None and name not in _told_no_hash_key:
            _told_no_hash_key.add(name)
            log.warning("no ssn_hash_key: SSN hashes are not kept for matching, only ssn_last4", source=name)
        with open_client(name, source, options.retry, options.stop, options.transport) as client:
            for stream in stream_names(source):
                if options.stop.is_set():
                    return results
                spec = stream_spec(source, stream)  # imports the stream's mapping
                collector.freeze_imports()
                identity = config.identity if config.identity.link_during_sync else None
                results.append(StreamRun(engine, name, source, spec, mode, client, options, mapper, identity).run())
    return results


@dataclass
class _Pending:
    batch: Batch
    keys: list[str]  # every key of the batches, changed or not
    cursor: Cursor  # the stream's cursor once these are written
    now: dt.datetime
    mapped: Future[Mapped]
    unchanged: int  # records whose stored hash is their own: not handed to the mapper
    live: set[str] = field(default_factory=set)  # keys stored live before (what a rehearsal needs)


class _Group:
    """Batches waiting to be written together, in the order they came.

    The first group holds at most 1,000 records and each next one twice its predecessor's, up to
    ``commit_records``: the first commit lands soon, and the worker maps a small group first rather than the
    writer waiting, idle, for a whole commit's worth to be mapped."""

    FIRST = 1000

    def __init__(self) -> None:
        self.items: list[tuple[Batch, PreparedPage]] = []
        self.records = 0
        self.since = 0.0  # when the first batch came
        self.last = 0.0  # when the latest came
        self.limit = self.FIRST

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, batch: Batch, page: PreparedPage) -> None:
        self.last = time.monotonic()
        if not self.items:
            self.since = self.last
        self.items.append((batch, page))
        self.records += page.fetched

    def full(self, options: RunOptions, waiting: bool) -> bool:
        """Whether to commit now; ``waiting``: the next batch has not come yet."""
        now = time.monotonic()
        enough = min(self.limit, options.commit_records)
        stalled = waiting and now - self.last >= options.commit_idle
        return self.records >= enough or now - self.since >= options.commit_seconds or stalled

    def clear(self) -> None:
        self.items.clear()
        self.records = 0
        self.limit = min(2 * self.limit, 1 << 30)  # beyond any commit_records: it stops doubling

    def merged(self) -> tuple[Batch, PreparedPage]:
        """The group as one batch: the last checkpoint, every key listed, the pages' records in order."""
        batches = [batch for batch, _ in self.items]
        pages = [page for _, page in self.items]
        if len(batches) == 1:
            return batches[0], pages[0]
        listed = None if all(b.listed is None for b in batches) else [k for b in batches for k in (b.listed or [])]
        totals = [b.total for b in batches if b.total is not None]
        batch = Batch(
            checkpoint=batches[-1].checkpoint,
            records=[],
            listed=listed,
            total=totals[-1] if totals else None,
            partial=any(b.partial for b in batches),
            refused=sum(b.refused for b in batches),
            restart=batches[0].restart,
        )
        good: dict[str, Any] = {}
        for page in pages:
            good.update(page.good)  # a later page's record of a key wins, as on one page
        return batch, PreparedPage(good, [r for page in pages for r in page.bad], sum(p.fetched for p in pages))


class StreamRun:
    """One run of one stream: lease, run row, then batches written with their cursor, then what a complete walk
    settles. ``run`` never raises for the stream's own failures: they are the result's status and error."""

    def __init__(
        self,
        engine: Engine,
        source_name: str,
        source: SourceConfig,
        spec: StreamSpec,
        mode: Mode,
        client: SourceClient,
        options: RunOptions,
        mapper: Mapper | None = None,
        identity: IdentityConfig | None = None,
    ) -> None:
        self.engine = engine
        self.name = source_name
        self.source = source
        self.spec = spec
        self.stream = spec.stream.name
        self.mode = mode
        self.client = client
        self.options = options
        self.result = RunResult(source_name, self.stream, mode)
        target = Target(source_name, self.stream, spec.entity.value, source.max_delete_fraction, options.lease_ttl)
        # identity: link the patients of each commit as it lands; None leaves them queued.
        self.sink: Sink = RehearsalSink(engine, target) if options.dry_run else DatabaseSink(engine, target, identity)
        # The walk's state, set as it starts (_walk).
        self.cursor = Cursor()
        self.walk = Walk(complete=False)
        self.ctx = MappingContext(today=dt.date.today())
        self.group = _Group()
        self.pending: _Pending | None = None  # handed to the mapper, not written yet
        # A stream that makes a request per record (Particle details, gauges readings) is bound by the source's
        # latency, and maps little while it waits: the worker's start and the pickling cost it more than they buy.
        per_record = spec.stream.details is not None or spec.stream.parent is not None
        self.mapper = mapper if mapper is not None and not per_record else Mapper()
        self.started = time.monotonic()

    def run(self) -> RunResult:
        name, stream, result = self.name, self.stream, self.result
        try:
            claim = self.sink.claim()
        except LeaseHeldError as exc:
            log.warning("stream skipped: lease held", source=name, stream=stream)
            result.status, result.error = Status.skipped, str(exc)  # names our own holder id: nothing a source said
            return self._done()
        except SQLAlchemyError as exc:  # the database is unreachable or locked: this stream fails, the others try
            result.status, result.error = Status.failed, run_error(name, stream, exc)
            log.error("stream failed", source=name, stream=stream, error=result.error)
            return self._done()
        try:
            self._attempt()
        finally:
            if result.status is Status.running:  # cut short by KeyboardInterrupt or SystemExit
                result.status, result.error = Status.interrupted, "stopped before the page in hand was committed"
            try:
                self.sink.finish(
                    result.run_id, {"status": result.status, "error": result.error, **_count_values(result)}
                )
            finally:
                claim.release()
        return self._done()

    def _attempt(self) -> None:
        """Record the run and walk the stream: its own failures become the result's status and error."""
        name, stream, result = self.name, self.stream, self.result
        try:
            result.run_id = self.sink.begin(self.mode)
            log.info("stream started", source=name, stream=stream, mode=self.mode, run_id=result.run_id)
            self._walk()
        except Stopped:  # asked to stop while the next batch was on its way: the cursor is at the last commit
            result.status = Status.interrupted
        except (PatientSyncError, SQLAlchemyError) as exc:  # a source, the lease or the database: said in one line
            result.status, result.error = Status.failed, run_error(name, stream, exc)
        except Exception as exc:  # noqa: BLE001 - one stream's bug must not stop the other streams
            result.status, result.error = Status.failed, run_error(name, stream, exc)
            # The frames to debug by, and none of the exception's own text: it may quote a record.
            log.error("stream crashed", source=name, stream=stream, error=result.error, frames=frames(exc))

    def _done(self) -> RunResult:
        result = self.result
        result.seconds = time.monotonic() - self.started
        self.sink.linked.log()
        if self.options.done:
            self.options.done(result)
        (log.info if result.ok else log.error)(
            self.sink.finished,
            source=self.name,
            stream=self.stream,
            mode=self.mode,
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

    def _walk(self) -> None:
        engine, name, stream, options, result = self.engine, self.name, self.stream, self.options, self.result
        with reading(engine).connect() as conn:  # no write lock: a dry run must not wait for another writer
            stored = Cursor.from_json(cursors.load_cursor(conn, name, stream))
        self.cursor, position = stored.start(self.mode, utcnow())
        self.walk = Walk(complete=not position and self._walks_everything())
        self.ctx = mapping_context(self.source, options.today or utcnow().date())

        leaving = threading.Event()  # set as the walk ends, however it ends: queued detail requests are not sent
        # Fetched, keyed and digested in the prefetch thread, up to a commit's worth ahead: the next group is
        # fetched while this one is written, and prepared and mapped (in the worker) while the one before is.
        ahead = (
            (batch, prepare_page(batch.records, self.spec, self.ctx))
            for batch in self._batches(position, self.ctx.today, leaving)
        )
        keeper = self.sink.keeper()
        depth = options.prefetch or max(1, min(100, options.commit_records // max(1, self.source.page_size)))
        prefetched = Prefetched(ahead, depth=depth, stop=leaving, interrupt=options.stop)
        group = self.group
        with keeper, prefetched:
            for item in self._kept(prefetched.polled(0.1)):
                if item is not None:
                    batch, page = item
                    if batch.restart and group:  # a restart starts a group of its own: it forgets the walk
                        self._flush()
                    group.add(batch, page)
                if group and (group.full(options, waiting=item is None) or options.stop.is_set()):
                    self._flush(drain=options.stop.is_set())
                elif item is None and self.pending is not None and self.pending.mapped.done():
                    # Mapped while we waited for a slow source: write it. Not while batches keep coming: the
                    # group in hand would outlive its seconds meanwhile and go to the mapper small, and the
                    # next write would wait for it.
                    self._write_pending()
                if options.stop.is_set():
                    result.status = Status.interrupted
                    return
            self._flush(drain=True)

        # What a complete walk establishes; a sweep's position becomes the tail.
        swept = self.cursor.swept().to_json() if self.mode is Mode.sweep else None
        result.deleted = self.sink.end_walk(self.walk, swept)
        result.status = Status.succeeded
        if self.walk.refused:  # a success with a warning: kept on the run row, so status shows it
            result.error = public(
                f"{name}/{stream}: {self.walk.refused} parent(s) refused with HTTP 403 although the token is good: "
                "their records were not read, and no deletion was decided"
            )

    def _kept(self, items: Iterator[Any]) -> Iterator[Any]:
        """``items``; if fetching them fails (a source error, a stop during a retry wait), the batches that
        arrived before are committed first, as they would have been one by one."""
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except BaseException:
                self._flush(drain=True)
                raise
            yield item

    def _flush(self, drain: bool = False) -> None:
        """Hand the waiting batches to the mapper, and write those handed over before, whose rows are ready by
        now: with a mapping worker, one group is mapped while the previous one is written. ``drain`` (the walk
        ends, stops or fails), or mapping in this process, writes everything at once."""
        if self.group:
            batch, page = self.group.merged()
            self.group.clear()
            if self.pending is not None and not page.good.keys().isdisjoint(self.pending.keys):
                self._write_pending()  # their stored hashes must be read after the earlier version is written
            run_id = self.result.run_id
            now = utcnow()
            stored, live = self.sink.stored(list(page.good))
            before = self.pending.cursor if self.pending is not None else self.cursor
            after = before.advanced(batch.checkpoint, self.mode)
            # Only what may have changed goes to the mapper: a re-sync of unchanged records hands it nothing. A
            # record whose digest as fetched is not the stored one is prepared there and compared again.
            changed = {k: r for k, r in page.good.items() if stored.get(k) != (r.digest, False)}
            work = PreparedPage(changed, page.bad, page.fetched)
            mapper = self.mapper if len(changed) >= MAPPED_HERE_BELOW else Mapper()
            stored = {k: stored[k] for k in changed if k in stored}  # all the mapping reads of them
            job = PageJob(self.source.kind, self.stream, work, stored, self.ctx, self.name, now, run_id)
            mapped = mapper.submit(job)
            if self.pending is not None:
                self._write_pending()
            self.pending = _Pending(batch, list(page.good), after, now, mapped, len(page.good) - len(changed), live)
        if self.pending is not None and (drain or self.mapper.in_process):
            self._write_pending()

    def _write_pending(self) -> None:
        """Write the batches handed to the mapper, with the cursor after them, in one transaction."""
        result, pending, self.pending = self.result, self.pending, None
        assert pending is not None
        rows, counts = pending.mapped.result()
        counts.keys, counts.unchanged = pending.keys, counts.unchanged + pending.unchanged
        self.sink.write(
            rows, pending.cursor.to_json(), pending.now, lambda: _count_values(result, counts), pending.live
        )
        self.cursor = pending.cursor  # only once committed, like the counts
        result.counts.add(counts)
        if pending.batch.restart:
            self.walk.restart(self._walks_everything())
        self.walk.take(pending.batch, counts)
        if self.options.progress:
            self.options.progress(self.name, self.stream, result.counts.fetched, self.walk.total)

    def _walks_everything(self) -> bool:
        """Whether a walk from the very start sees the whole stream: a fan-out's incremental pass asks only
        for what is new, so only its sweep sees everything."""
        return self.mode is Mode.sweep or self.spec.stream.parent is None

    def _batches(self, position: dict[str, Any], today: dt.date, leaving: threading.Event) -> Iterator[Batch]:
        """The stream's batches from ``position``; sweeps fetch everything, incremental runs only what is new."""
        engine, name, source, stream = self.engine, self.name, self.source, self.spec.stream
        sweeping = self.mode is Mode.sweep
        if stream.parent is not None:
            # Parents per batch: each batch commits with a lease renewal; 100 requests stay well inside the lease.
            chunk = min(source.page_size, FAN_OUT_CHUNK)
            parents = lookups.live_keys(engine, name, stream.parent.stream, position.get("after"), chunk)
            watermarks = None if sweeping else functools.partial(lookups.latest_observation_dates, engine, name, today)
            return fan_out_batches(self.client, stream, parents, watermarks, source.concurrency, leaving)
        base = dict(stream.params)
        start = stream.paginator.resume(base, position) if position else base
        stored = (
            None
            if sweeping or stream.details is None
            else functools.partial(lookups.stored_among, engine, name, stream.name)
        )
        return listing_batches(self.client, stream, start, stored, source.concurrency, leaving)


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
