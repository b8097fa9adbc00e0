"""The run rows (``sync_run``): one a stream run, with its counts, status and error."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, update

from pipeline.storage.db import utcnow
from pipeline.storage.run_values import Status
from pipeline.storage.tables import SyncRun, table_of


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
            .where(t.c.source == source, t.c.stream == stream, t.c.status == Status.running)
            .values(status=Status.abandoned, finished_at=now)
        )
        result = conn.execute(
            t.insert().values(source=source, stream=stream, mode=mode, started_at=now, status=Status.running)
        )
        key = result.inserted_primary_key
        if key is None:
            raise RuntimeError("the database returned no id for the new sync_run row")
        return int(key[0])


def update_run(conn: Connection, run_id: int, **values: Any) -> None:
    t = table_of(SyncRun)
    conn.execute(update(t).where(t.c.id == run_id).values(**values))
