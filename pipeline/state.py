"""Per-stream state in the database: the cursor, the lease that keeps two processes apart, the run rows."""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import uuid
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, delete, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from canonical.errors import LeaseHeldError, PatientSyncError
from pipeline.db import upsert_insert
from pipeline.tables import SyncLease, SyncRun, SyncState, table_of

log = structlog.get_logger(__name__)

LEASE_TTL = dt.timedelta(minutes=5)  # renewed at every page and by LeaseKeeper; a dead holder's lapses after this


class LeaseLostError(PatientSyncError):
    """Our lease lapsed and another process took the stream: the page in hand must not be committed."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
    """Take the stream's lease, or raise ``LeaseHeldError`` while another live holder has it."""
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
        current = conn.execute(select(t.c.holder).where(t.c.source == source, t.c.stream == stream)).scalar()
    if current != holder:
        raise LeaseHeldError(source, stream, str(current))


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
    """Record a run; earlier runs of the stream still marked running died without finishing."""
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
