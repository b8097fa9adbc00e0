"""The lease that keeps two processes off one stream.

A run holds its stream with a lease row (``sync_lease``): its holder names the host, the pid and the process's
start time. Another process takes the lease over when it lapses (a holder on another host stopped renewing it)
or at once when the holder is known dead: a process of this host that is gone, or whose pid now belongs to a
process started at another time. On PostgreSQL a run also keeps a session-level advisory lock on a connection
of its own, which the server drops with the connection when the process dies; so there a lease row without
its lock behind it is stale, whatever host wrote it. Each page commit still renews the row and fails if another
process took it (``renew_lease``), so a run that lost its lease never commits again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import threading
import uuid
from dataclasses import dataclass

import psutil
import structlog
from sqlalchemy import Connection, Engine, delete, func, or_, select, text, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from canonical.errors import LeaseHeldError, LeaseLostError
from pipeline.storage.db import upsert_insert, utcnow
from pipeline.storage.tables import SyncLease, table_of

log = structlog.get_logger(__name__)

LEASE_TTL = dt.timedelta(minutes=5)  # renewed at every page and by LeaseKeeper; a dead holder's lapses after this
START_TOLERANCE = 1.0  # seconds: a start time this close is the same process (clock adjustments move it a little)
LOCK_WAIT = dt.timedelta(seconds=10)  # for the advisory lock of a holder known dead, once its session is ended


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


def held(conn: Connection) -> dict[tuple[str, str], tuple[str, dt.datetime]]:
    """(source, stream) -> the lease row's holder and expiry: held, or left by a process that died."""
    t = table_of(SyncLease)
    return {(s, st): (holder, expires) for s, st, holder, expires in conn.execute(select(t)).all()}


def acquire_lease(
    engine: Engine, source: str, stream: str, holder: str, ttl: dt.timedelta = LEASE_TTL, *, locked: bool = False
) -> None:
    """Take the stream's lease, or raise ``LeaseHeldError`` while another live holder has it.

    A lapsed lease is taken, and so is one whose holder is known dead (``holder_gone``). ``locked`` says that
    we hold the stream's advisory lock (``claim_stream`` on PostgreSQL), which every live holder keeps for its
    whole run: then any other holder is stale.
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
        reason = "no session holds the stream's advisory lock" if locked else holder_gone(current)
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


def lock_key(source: str, stream: str) -> int:
    """The stream's PostgreSQL advisory lock key: 64 bits (signed, as ``bigint``) from the source and stream.

    >>> lock_key("rx", "patients") == lock_key("rx", "patients") != lock_key("rx", "medics")
    True
    """
    digest = hashlib.blake2b(f"patientsync lease\0{source}\0{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass
class Claim:
    """A stream held for one run: its lease row, and on PostgreSQL the advisory lock's connection."""

    engine: Engine
    source: str
    stream: str
    holder: str
    lock: Connection | None = None

    def release(self) -> None:
        """Give the stream up: the lease row, then the advisory lock with its connection, however the run ended."""
        try:
            release_lease(self.engine, self.source, self.stream, self.holder)
        finally:
            if self.lock is not None:
                _unlock(self.lock, self.source, self.stream)


def claim_stream(engine: Engine, source: str, stream: str, ttl: dt.timedelta = LEASE_TTL) -> Claim:
    """Hold the stream for a run, or raise ``LeaseHeldError`` while a live process runs it."""
    holder = new_holder()
    lock = _lock_stream(engine, source, stream, holder) if engine.dialect.name == "postgresql" else None
    try:
        acquire_lease(engine, source, stream, holder, ttl, locked=lock is not None)
    except BaseException:
        if lock is not None:
            _unlock(lock, source, stream)
        raise
    return Claim(engine, source, stream, holder, lock)


def _lock_stream(engine: Engine, source: str, stream: str, holder: str) -> Connection:
    """The stream's session-level advisory lock, on a connection kept open for the run.

    The session is named after its holder (``application_name``), so another process can tell whose session
    has the lock, and asks the server for TCP keepalives, so the server ends it soon after its host vanishes.
    While the lock is held elsewhere the stream is skipped, unless that session's holder is known dead.
    """
    key = lock_key(source, stream)
    conn = engine.connect()
    locked = False
    try:
        # Session-wide, so they last the run; rolled back with the transaction if the lock is not had.
        for name, value in {"application_name": holder[:_NAME_MAX], **_KEEPALIVES}.items():
            conn.execute(select(func.set_config(name, value, False)))
        locked = bool(conn.execute(select(func.pg_try_advisory_lock(key))).scalar())
        if not locked:
            _take_from_dead_holder(conn, source, stream, key)
            locked = True
        conn.commit()  # the lock outlives the transaction: the connection waits idle, not inside one
    except BaseException:
        if locked:
            conn.invalidate()  # closed for good, so the lock goes with it
        conn.close()
        raise
    return conn


_NAME_MAX = 63  # PostgreSQL keeps this many bytes of an application_name
_KEEPALIVES = {"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3"}


def _take_from_dead_holder(conn: Connection, source: str, stream: str, key: int) -> None:
    """Wait for the advisory lock of a session whose holder is known dead, after asking the server to end that
    session (it may still be closing, or linger after a crash); raise ``LeaseHeldError`` if its holder may be
    alive, or if the lock is still held after ``LOCK_WAIT`` (a live process took it meanwhile)."""
    session = _lock_session(conn, key)
    if session is not None:
        pid, name = session
        if holder_gone(name) is None:
            raise LeaseHeldError(source, stream, name or _lease_holder(conn, source, stream) or "unknown")
        try:
            with conn.begin_nested():
                conn.execute(select(func.pg_terminate_backend(pid)))
            log.warning("session of a dead lease holder ended", source=source, stream=stream, previous=name)
        except SQLAlchemyError as exc:  # not allowed: its session ends by itself (keepalives)
            log.warning(
                "session of a dead lease holder left to end", source=source, stream=stream, error=type(exc).__name__
            )
    conn.execute(text(f"SET LOCAL lock_timeout = {int(LOCK_WAIT.total_seconds() * 1000)}"))
    try:
        conn.execute(select(func.pg_advisory_lock(key)))
    except OperationalError as exc:
        conn.rollback()
        session = _lock_session(conn, key)
        raise LeaseHeldError(source, stream, session[1] if session else "unknown") from exc


def _lock_session(conn: Connection, key: int) -> tuple[int, str] | None:
    """The backend pid and the name ("" if none) of the session that has the advisory lock ``key``, if any.

    A ``bigint`` key shows in ``pg_locks`` as its high and low 32 bits (``classid``, ``objid``)."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    row = conn.execute(
        text(
            "SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid = CAST(:high AS oid) AND l.objid = CAST(:low AS oid) "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"high": unsigned >> 32, "low": unsigned & 0xFFFF_FFFF},
    ).first()
    return None if row is None else (int(row[0]), str(row[1] or ""))


def _unlock(conn: Connection, source: str, stream: str) -> None:
    try:
        conn.execute(select(func.pg_advisory_unlock(lock_key(source, stream))))
        for name in ("application_name", *_KEEPALIVES):
            conn.execute(text(f"RESET {name}"))
        conn.commit()
    except SQLAlchemyError as exc:  # the lock dies with the connection, which must then not go back to the pool
        log.warning(
            "advisory lock not released: closing its connection", source=source, stream=stream, error=type(exc).__name__
        )
        conn.invalidate()
    finally:
        conn.close()


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
