"""Where a stream run's batches go, chosen once per run: a ``DatabaseSink`` writes each commit's rows, cursor,
links and lease renewal in one transaction; a ``RehearsalSink`` serves ``--dry-run``, writing nothing and
remembering what it would have written, so that later batches and the walk's end see it as stored. The runner
asks the sink and never whether the run is dry."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from pipeline.config import IdentityConfig
from pipeline.identity.model import MatchModel
from pipeline.storage import cursors, leases, load, runs
from pipeline.storage.db import reading, utcnow
from pipeline.storage.run_values import Mode
from pipeline.sync.linking import LinkStats, current_model, link_in
from pipeline.sync.messages import database_reason, frames
from pipeline.sync.rows import PageRows
from pipeline.sync.settle import Walk, withheld

log = structlog.get_logger(__name__)

RUN_COUNTS_EVERY = dt.timedelta(seconds=5)
REFRESH_FROM = 1000  # records inserted by a run into an empty stream before its first statistics refresh
Counts = Callable[[], dict[str, int]]  # the run's counts so far, as the run row holds them


@dataclass(frozen=True)
class Target:
    """The stream a sink writes: its source, name, entity table and deletion guard."""

    source: str
    stream: str
    entity: str
    max_delete_fraction: float
    lease_ttl: dt.timedelta


class Released(Protocol):
    def release(self) -> None: ...


class Sink(Protocol):
    linked: LinkStats
    finished: str  # the log line's event once the run has ended

    def claim(self) -> Released:
        """Hold the stream for the run (``LeaseHeldError`` while another process runs it)."""

    def begin(self, mode: Mode) -> int | None:
        """The run row's id."""

    def keeper(self) -> contextlib.AbstractContextManager[Any]:
        """Keeps the lease alive while a batch takes long."""

    def stored(self, keys: list[str]) -> tuple[dict[str, tuple[str, bool]], set[str]]:
        """The stored (payload hash, deleted) of these keys, and which of them were live before the run."""

    def write(self, rows: PageRows, cursor: dict[str, Any], now: dt.datetime, counts: Counts, live: set[str]) -> None:
        """One commit: the rows, the cursor after them, the page's links, the lease renewed; ``counts``, the run's
        counts with this commit's, are written now and then so that ``status`` shows a long run's progress.
        ``live``: the keys of the rows stored live before (``stored``)."""

    def end_walk(self, walk: Walk, swept: dict[str, Any] | None) -> int:
        """Settle a complete walk (deletions, quarantine) and a sweep's cursor; returns the records deleted."""

    def finish(self, run_id: int | None, values: dict[str, Any]) -> None:
        """The run row's end."""


class DatabaseSink:
    def __init__(self, engine: Engine, target: Target, identity: IdentityConfig | None) -> None:
        self.engine, self.target = engine, target
        self.identity = identity  # link the patients of each commit as it lands; None: leave them queued
        self.model: MatchModel | None = None
        self.linked = LinkStats()
        self.finished = "stream finished"
        self.holder = ""
        self.run_id: int | None = None
        self.analyze_at = 0  # rows inserted by this run at the next refresh (begin); doubled after each
        self.counted_at = utcnow()

    def claim(self) -> Released:
        claim = leases.claim_stream(self.engine, self.target.source, self.target.stream, self.target.lease_ttl)
        self.holder = claim.holder
        return _Logged(claim, self.target)

    def begin(self, mode: Mode) -> int | None:
        # A run refreshes the planner's statistics only while it has inserted as many records as its stream held:
        # a first backfill (a new stream's too) at 1,000, 2,000, 4,000, ...; a daily run of a large stream never.
        t = self.target
        self.analyze_at = max(REFRESH_FROM, load.stream_records(self.engine, t.source, t.stream))
        self.run_id = runs.start_run(self.engine, self.target.source, self.target.stream, mode)
        return self.run_id

    def keeper(self) -> contextlib.AbstractContextManager[Any]:
        t = self.target
        return leases.LeaseKeeper(self.engine, t.source, t.stream, self.holder, t.lease_ttl)

    def stored(self, keys: list[str]) -> tuple[dict[str, tuple[str, bool]], set[str]]:
        with reading(self.engine).connect() as conn:  # this stream's rows are written by this run only
            return load.stored_hashes(conn, self.target.source, self.target.stream, keys), set()

    def write(self, rows: PageRows, cursor: dict[str, Any], now: dt.datetime, counts: Counts, live: set[str]) -> None:
        t = self.target
        if self.identity is not None and self.model is None:
            # Once a run, before its first commit (SQLite: no second connection inside a write): a model
            # trained meanwhile serves the next run.
            self.model = current_model(self.engine)
        with self.engine.begin() as conn:
            load.write(conn, rows)
            if self.identity is not None and rows.patients:
                self._link(conn, rows.patients, rows.match_keys)
            cursors.save_cursor(conn, t.source, t.stream, cursor, now)
            leases.renew_lease(conn, t.source, t.stream, self.holder, now, t.lease_ttl)
            if self.run_id is not None and now - self.counted_at >= RUN_COUNTS_EVERY:
                runs.update_run(conn, self.run_id, **counts())
                self.counted_at = now
        if counts()["inserted"] >= self.analyze_at:
            load.refresh_statistics(self.engine, identity=self.identity is not None)
            self.analyze_at *= 2

    def _link(self, conn: Connection, patients: list[str], keys: list[tuple[str, str, str]]) -> None:
        """Link the page's patients in its own transaction (pipeline.sync.linking.link_in). A failure is logged,
        never raised: the page lands, its patients stay queued for the run's last link pass or the next."""
        assert self.identity is not None and self.model is not None
        try:
            self.linked.add(link_in(conn, self.identity, self.model, patients, keys))
        except SQLAlchemyError as exc:
            log.error("linking failed: the patients stay queued", error=database_reason(exc))
        except Exception as exc:  # noqa: BLE001 - a linking bug must not cost the page's records
            log.error("linking crashed: the patients stay queued", error=type(exc).__name__, frames=frames(exc))

    def end_walk(self, walk: Walk, swept: dict[str, Any] | None) -> int:
        t, now, deleted = self.target, utcnow(), 0
        with self.engine.begin() as conn:
            if walk.complete:
                gone = _deletions(conn, t, walk, 0)
                if gone is not None:
                    if gone:
                        load.soft_delete(conn, t.source, t.stream, t.entity, gone)
                    load.clear_quarantine(conn, t.source, t.stream, walk.still_bad)
                    deleted = len(gone)
            elif swept is not None:
                log.info("deletions left to the next complete sweep", source=t.source, stream=t.stream)
            if swept is not None:
                cursors.save_cursor(conn, t.source, t.stream, swept, now)
            leases.renew_lease(conn, t.source, t.stream, self.holder, now, t.lease_ttl)
        return deleted

    def finish(self, run_id: int | None, values: dict[str, Any]) -> None:
        if run_id is None:
            return
        try:
            with self.engine.begin() as conn:
                runs.update_run(conn, run_id, finished_at=utcnow(), **values)
        except SQLAlchemyError as exc:
            t = self.target
            log.error(
                "the run's end could not be recorded", source=t.source, stream=t.stream, error=database_reason(exc)
            )


class RehearsalSink:
    """A dry run: no lease (it writes nothing another run could collide with), no run row, no record, cursor or
    link; what it would have written is remembered for the batches after it and the walk's end."""

    def __init__(self, engine: Engine, target: Target) -> None:
        self.engine, self.target = engine, target
        self.linked = LinkStats()
        self.finished = "stream rehearsed (dry run: nothing written)"
        self.rehearsed: dict[str, str] = {}  # key -> the payload hash a run would have written
        self.would_be_live = 0  # records that would be live and are not now (new, or back after a deletion)

    def claim(self) -> Released:
        return _Nothing()

    def begin(self, mode: Mode) -> int | None:
        return None

    def keeper(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def stored(self, keys: list[str]) -> tuple[dict[str, tuple[str, bool]], set[str]]:
        with reading(self.engine).connect() as conn:  # no write lock: a dry run must not wait for another writer
            stored = load.stored_hashes(conn, self.target.source, self.target.stream, keys)
        live = {k for k, (_, deleted) in stored.items() if not deleted}
        stored.update({k: (self.rehearsed[k], False) for k in keys if k in self.rehearsed})  # as if written
        return stored, live

    def write(self, rows: PageRows, cursor: dict[str, Any], now: dt.datetime, counts: Counts, live: set[str]) -> None:
        for row in rows.records:
            key = row["source_key"]
            if key not in live and key not in self.rehearsed:
                self.would_be_live += 1
            self.rehearsed[key] = row["payload_hash"]

    def end_walk(self, walk: Walk, swept: dict[str, Any] | None) -> int:
        if not walk.complete:
            return 0
        with reading(self.engine).connect() as conn:
            gone = _deletions(conn, self.target, walk, self.would_be_live)
        return len(gone or {})

    def finish(self, run_id: int | None, values: dict[str, Any]) -> None:
        return None


def _deletions(conn: Connection, target: Target, walk: Walk, more_live: int) -> dict[str, str] | None:
    """The stored records a complete walk did not see; None when its listing looks truncated."""
    gone, live = load.missing_records(conn, target.source, target.stream, walk.seen)
    reason = withheld(walk, len(gone), live + more_live, target.max_delete_fraction)
    if reason:
        log.warning(
            "deletions withheld: the listing looks truncated", source=target.source, stream=target.stream, reason=reason
        )
        return None
    return gone


class _Logged:
    """A claim whose release, should the database fail it, is logged: the lease lapses after its TTL."""

    def __init__(self, claim: leases.Claim, target: Target) -> None:
        self.claim, self.target = claim, target

    def release(self) -> None:
        try:
            self.claim.release()
        except SQLAlchemyError as exc:  # taken over once this process has exited (elsewhere: after the TTL)
            t = self.target
            log.error("the lease could not be released", source=t.source, stream=t.stream, error=database_reason(exc))


class _Nothing:
    def release(self) -> None:
        return None
