"""What the daemon's metrics read from the database at each scrape: cheap aggregates, one query each."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, func, select, text

from pipeline.storage.run_values import Status
from pipeline.storage.tables import Person, Quarantine, SyncRun, table_of


def answers(conn: Connection) -> None:
    """Raise unless the database answers a trivial query."""
    conn.execute(text("SELECT 1")).scalar()


def last_successes(conn: Connection) -> dict[tuple[str, str], dt.datetime]:
    """(source, stream) -> when its last successful run finished."""
    runs = table_of(SyncRun)
    query = (
        select(runs.c.source, runs.c.stream, func.max(runs.c.finished_at))
        .where(runs.c.status == Status.succeeded)
        .group_by(runs.c.source, runs.c.stream)
    )
    return {(source, stream): at for source, stream, at in conn.execute(query) if at is not None}


def quarantined(conn: Connection) -> dict[tuple[str, str], int]:
    q = table_of(Quarantine)
    query = select(q.c.source, q.c.stream, func.count()).group_by(q.c.source, q.c.stream)
    return {(source, stream): n for source, stream, n in conn.execute(query)}


def live_persons(conn: Connection) -> int:
    person = table_of(Person)
    return int(conn.execute(select(func.count()).where(person.c.deleted_at.is_(None))).scalar() or 0)


def open_reviews(conn: Connection) -> int:
    """Possible matches waiting for a decision, as the identity_review view lists them."""
    return int(conn.execute(text("SELECT count(*) FROM identity_review")).scalar() or 0)
