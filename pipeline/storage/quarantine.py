"""The quarantine table as the operations commands read it: listed, and read back in chunks to be mapped again."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, select

from pipeline.storage.db import among
from pipeline.storage.tables import Quarantine, table_of

_q = table_of(Quarantine)


def listed(conn: Connection, source: str | None = None) -> list[dict[str, Any]]:
    """Every quarantined record (of one source) without its payload, by source, stream and key."""
    query = select(_q.c.source, _q.c.stream, _q.c.source_key, _q.c.reason, _q.c.run_id, _q.c.created_at)
    if source is not None:
        query = query.where(_q.c.source == source)
    return [dict(row) for row in conn.execute(query.order_by(_q.c.source, _q.c.stream, _q.c.source_key)).mappings()]


def payloads(conn: Connection, source: str, stream: str, after: str | None, limit: int) -> list[tuple[str, Any, str]]:
    """The next ``limit`` quarantined records of a stream after key ``after``: (key, stored payload, reason)."""
    query = select(_q.c.source_key, _q.c.payload, _q.c.reason).where(_q.c.source == source, _q.c.stream == stream)
    if after is not None:
        query = query.where(_q.c.source_key > after)
    rows = conn.execute(query.order_by(_q.c.source_key).limit(limit)).all()
    return [(key, payload, reason) for key, payload, reason in rows]


def remove(conn: Connection, source: str, stream: str, keys: list[str]) -> None:
    if keys:
        conn.execute(delete(_q).where(_q.c.source == source, _q.c.stream == stream, among(conn, _q.c.source_key, keys)))
