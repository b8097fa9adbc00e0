"""Reads that decide what to fetch: which listed ids are stored, which parents exist, each one's watermark.

Each opens its own short, read-only connection: they run in the prefetch thread while the writer's transaction
is open (on SQLite a plain BEGIN, which WAL lets read beside the writer; see ``pipeline.storage.db.reading``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from sqlalchemy import Engine, func, select

from canonical.ids import canonical_id
from canonical.model import EntityType
from pipeline.storage.db import among, reading
from pipeline.storage.tables import Observation, SourceRecord, table_of


def stored_among(engine: Engine, source: str, stream: str, keys: list[str]) -> set[str]:
    """Those of ``keys`` stored as live records of the stream."""
    t = table_of(SourceRecord)
    with reading(engine).connect() as conn:
        query = select(t.c.source_key).where(
            t.c.source == source, t.c.stream == stream, t.c.deleted_at.is_(None), among(conn, t.c.source_key, keys)
        )
        return set(conn.execute(query).scalars())


def live_keys(engine: Engine, source: str, stream: str, after: str | None, chunk: int) -> Iterator[list[str]]:
    """The stream's live record keys in key order, after ``after``, ``chunk`` at a time (keyset paging)."""
    t = table_of(SourceRecord)
    while True:
        query = select(t.c.source_key).where(t.c.source == source, t.c.stream == stream, t.c.deleted_at.is_(None))
        if after is not None:
            query = query.where(t.c.source_key > after)
        with reading(engine).connect() as conn:
            keys = list(conn.execute(query.order_by(t.c.source_key).limit(chunk)).scalars())
        if not keys:
            return
        yield keys
        after = keys[-1]


def latest_observation_dates(
    engine: Engine, source: str, today: dt.date, patient_keys: list[str]
) -> dict[str, dt.date]:
    """Each patient's watermark: the UTC date of its latest live observation, for those that have one.

    Readings dated after ``today`` (a device with a wrong clock) do not count: they would hold back every
    reading until that date.
    """
    ids = {canonical_id(source, EntityType.patient.value, key): key for key in patient_keys}
    o = table_of(Observation)
    tomorrow = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    with reading(engine).connect() as conn:
        query = (
            select(o.c.patient_id, func.max(o.c.recorded_at))
            .where(
                among(conn, o.c.patient_id, list(ids)),
                o.c.deleted_at.is_(None),
                o.c.recorded_at.is_not(None),
                o.c.recorded_at < tomorrow,
            )
            .group_by(o.c.patient_id)
        )
        rows = conn.execute(query).all()
    return {ids[patient_id]: _utc_date(latest) for patient_id, latest in rows if latest is not None}


def _utc_date(when: dt.datetime | str) -> dt.date:
    if isinstance(when, str):  # SQLite hands an aggregate back as text
        when = dt.datetime.fromisoformat(when)
    if when.tzinfo is not None:  # PostgreSQL answers in the session's time zone
        when = when.astimezone(dt.UTC)
    return when.date()
