"""Where each stream's walk stands (``sync_state``): the cursor its next run starts from, saved in the same
transaction as the rows it covers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, delete, select

from pipeline.storage.db import upsert_insert
from pipeline.storage.tables import SyncState, table_of


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


def stored_cursors(conn: Connection, source: str | None = None) -> list[dict[str, Any]]:
    """Every stored cursor (of one source), as rows of source, stream, cursor and updated_at."""
    t = table_of(SyncState)
    query = select(t.c.source, t.c.stream, t.c.cursor, t.c.updated_at).order_by(t.c.source, t.c.stream)
    if source is not None:
        query = query.where(t.c.source == source)
    return [dict(row) for row in conn.execute(query).mappings()]


def delete_cursors(conn: Connection, source: str, streams: list[str]) -> None:
    t = table_of(SyncState)
    conn.execute(delete(t).where(t.c.source == source, t.c.stream.in_(streams)))
