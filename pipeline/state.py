"""Per-stream state in the database: the cursor, the lease that keeps two processes apart, the run rows.

A run holds its stream with a lease row (``sync_lease``): its holder names the host, the pid and the process's
start time. Another process takes the lease over when it lapses (a holder on another host stopped renewing it)
or at once when the holder is known dead: a process of this host that is gone, or whose pid now belongs to a
process started at another time. Each page commit still renews the row and fails if another process took it
(``renew_lease``), so a run that lost its lease never commits again.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import psutil
import structlog
from sqlalchemy import Connection, Engine, delete, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from canonical.errors import LeaseHeldError, PatientSyncError
from pipeline.db import upsert_insert
from pipeline.tables import SyncLease, SyncRun, SyncState, table_of

log = structlog.get_logger(__name__)

LEASE_TTL = dt.timedelta(minutes=5)  # renewed at every page and by LeaseKeeper; a dead holder's lapses after this
START_TOLERANCE = 1.0  # seconds: a start time this close is the same process (clock adjustments move it a little)


class LeaseLostError(PatientSyncError):
    """Our lease lapsed and another process took the stream: the page in hand must not be committed."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_holder() -> str:
    """A holder id for one run: ``host:pid:start time:random``, so a reused pid is not taken for the holder."""
    started = psutil.Process(os.getpid()).create_time()
    return f"{socket.gethostname()}:{os.getpid()}:{started:.2f}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Holder:
    """What a holder id says about the process behind it.

    >>> Holder.parse("vm:29537:1796128324.41:ab12cd34")
    Holder(host='vm', pid=29537, started=1796128324.41)
    >>> Holder.parse("vm:29537:ab12cd34")  # the older format, without the start time
    Holder(host='vm', pid=29537, started=None)
    >>> Holder.parse("intruder") is None
    True
    """

    host: str
    pid: int
    started: float | None

    @classmethod
    def parse(cls, holder: str) -> Holder | None:
        parts = holder.split(":")
        try:
            if len(parts) == 4:
                return cls(parts[0], int(parts[1]), float(parts[2]))
            if len(parts) == 3:
                return cls(parts[0], int(parts[1]), None)
        except ValueError:
            pass
        return None


def holder_gone(holder: str) -> str | None:
    """Why ``holder`` is known to be dead, or None while it may be alive.

    Only a process of this host can be judged; one of another host (or an id in no known format) may be alive,
    and its lease holds until it lapses. A holder without a start time (the older format) is judged by its pid.
    """
    parsed = Holder.parse(holder)
    if parsed is None or parsed.host != socket.gethostname():
        return None
    try:
        process = psutil.Process(parsed.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return "the holder's process has exited"
        started = process.create_time()
    except psutil.NoSuchProcess:
        return "the holder's process has exited"
    except psutil.AccessDenied:  # it exists, and its start time cannot be read: it may be the holder
        return None
    if parsed.started is not None and abs(started - parsed.started) > START_TOLERANCE:
        return "the holder's pid now belongs to another process"
    return None


def load_cursor(conn: Connection, source: str, stream: str) -> dict[str, Any]:
    t = table_of(SyncState)
    value = conn.execute(select(t.c.cursor).where(t.c.source == source, t.c.stream == stream)).scalar()
    return dict(value or {})


def save_cursor(conn: Connection, source: str, stream: str, cursor: dict[str, Any], now: dt.datetime) -> None:
    t = table_of(SyncState)
    stmt = upsert_insert(conn, t).values(source=source, stream=stream, cursor=cursor, updated_at=now)
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["source", "stream"], set_={"cursor": cursor, "updated_at": now})
    )


def acquire_lease(engine: Engine, source: str, stream: str, holder: str, ttl: dt.timedelta = LEASE_TTL) -> None:
    """Take the stream's lease, or raise ``LeaseHeldError`` while another live holder has it.

    A lapsed lease is taken, and so is one whose holder is known dead (``holder_gone``).
    """
    t = table_of(SyncLease)
    now = utcnow()
    with engine.begin() as conn:
        stmt = upsert_insert(conn, t).values(source=source, stream=stream, holder=holder, expires_at=now + ttl)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["source", "stream"],
                set_={"holder": holder, "expires_at": now + ttl},
                where=or_(t.c.expires_at < now, t.c.holder == holder),
            )
        )
        current = str(_lease_holder(conn, source, stream))
        if current == holder:
            return
        reason = holder_gone(current)
        if reason is None:
            raise LeaseHeldError(source, stream, current)
        taken = conn.execute(  # only from the holder judged dead: of two processes taking it over, one wins
            update(t)
            .where(t.c.source == source, t.c.stream == stream, t.c.holder == current)
            .values(holder=holder, expires_at=now + ttl)
        )
        if taken.rowcount != 1:
            raise LeaseHeldError(source, stream, str(_lease_holder(conn, source, stream)))
    log.warning("lease taken over", source=source, stream=stream, previous=current, reason=reason)


def _lease_holder(conn: Connection, source: str, stream: str) -> str | None:
    t = table_of(SyncLease)
    holder = conn.execute(select(t.c.holder).where(t.c.source == source, t.c.stream == stream)).scalar()
    return None if holder is None else str(holder)


def renew_lease(
    conn: Connection, source: str, stream: str, holder: str, now: dt.datetime, ttl: dt.timedelta = LEASE_TTL
) -> None:
    """Inside a page's transaction: extend our lease, or fail the page if we no longer hold it."""
    t = table_of(SyncLease)
    result = conn.execute(
        update(t).where(t.c.source == source, t.c.stream == stream, t.c.holder == holder).values(expires_at=now + ttl)
    )
    if result.rowcount != 1:
        raise LeaseLostError(f"{source}/{stream}: the lease lapsed and another process took the stream")


def release_lease(engine: Engine, source: str, stream: str, holder: str) -> None:
    t = table_of(SyncLease)
    with engine.begin() as conn:
        conn.execute(delete(t).where(t.c.source == source, t.c.stream == stream, t.c.holder == holder))


def start_run(engine: Engine, source: str, stream: str, mode: str) -> int:
    """Record a run; earlier runs of the stream still marked running died without finishing.

    Called only while the stream's lease is held, and every live holder records its run's end before it lets
    the lease go: so a run still marked running belongs to a holder that died (or lost its lease and fails).
    """
    t = table_of(SyncRun)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            update(t)
            .where(t.c.source == source, t.c.stream == stream, t.c.status == "running")
            .values(status="abandoned", finished_at=now)
        )
        result = conn.execute(
            t.insert().values(source=source, stream=stream, mode=mode, started_at=now, status="running")
        )
        key = result.inserted_primary_key
        if key is None:
            raise RuntimeError("the database returned no id for the new sync_run row")
        return int(key[0])


def update_run(conn: Connection, run_id: int, **values: Any) -> None:
    t = table_of(SyncRun)
    conn.execute(update(t).where(t.c.id == run_id).values(**values))


class LeaseKeeper:
    """Renews a held lease every third of its TTL from a thread of its own, while one batch takes long (slow
    per-record requests, a low rate limit, long retries): the lease then lapses only when the process dies.

    Commits still renew and fence the lease themselves; once a renewal finds the lease gone, the keeper stops
    and the next commit fails with ``LeaseLostError``.
    """

    def __init__(self, engine: Engine, source: str, stream: str, holder: str, ttl: dt.timedelta = LEASE_TTL) -> None:
        self._args = (engine, source, stream, holder, ttl)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{source}-{stream}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        engine, source, stream, holder, ttl = self._args
        while not self._done.wait(ttl.total_seconds() / 3):
            try:
                with engine.begin() as conn:
                    renew_lease(conn, source, stream, holder, utcnow(), ttl)
            except LeaseLostError:
                return
            except SQLAlchemyError as exc:  # the next tick, or the next commit, tries again
                log.warning("lease renewal failed", source=source, stream=stream, error=type(exc).__name__)
