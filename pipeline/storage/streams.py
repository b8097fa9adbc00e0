"""What is stored about each stream, as ``status`` and the console show it: its cursor, live and quarantined
records, last run and last success, and the identifiers more than one of its records hold. Read through the
DB-API driver (``pipeline.storage.plain``), so ``status`` starts without SQLAlchemy."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipeline.storage.plain import Plain
from pipeline.storage.run_values import COUNTS, Status

RUN_COLUMNS = ("id", "mode", "status", "started_at", "finished_at", *COUNTS, "error")


def cursor(db: Plain, source: str, stream: str) -> dict[str, Any]:
    value = db.value("SELECT cursor FROM sync_state WHERE source = ? AND stream = ?", source, stream)
    return dict(db.json(value) or {})


def live_records(db: Plain, source: str, stream: str) -> int:
    query = "SELECT count(*) FROM source_record WHERE source = ? AND stream = ? AND deleted_at IS NULL"
    return int(db.value(query, source, stream) or 0)


def quarantined(db: Plain, source: str, stream: str) -> int:
    return int(db.value("SELECT count(*) FROM quarantine WHERE source = ? AND stream = ?", source, stream) or 0)


def last_run(db: Plain, source: str, stream: str) -> dict[str, Any] | None:
    query = f"SELECT {', '.join(RUN_COLUMNS)} FROM sync_run WHERE source = ? AND stream = ? ORDER BY id DESC LIMIT 1"
    found = db.rows(query, source, stream)
    if not found:
        return None
    run = dict(zip(RUN_COLUMNS, found[0], strict=True))
    return run | {"started_at": db.time(run["started_at"]), "finished_at": db.time(run["finished_at"])}


def last_success(db: Plain, source: str, stream: str) -> dt.datetime | None:
    """When the stream's last successful run finished."""
    query = "SELECT max(finished_at) FROM sync_run WHERE source = ? AND stream = ? AND status = ?"
    return db.time(db.value(query, source, stream, Status.succeeded.value))


def identifier_conflicts(db: Plain) -> dict[tuple[str, str], int]:
    """(source, entity type) -> how many identifiers more than one live entity holds (crosswalk_conflict)."""
    query = "SELECT source, entity_type, count(*) FROM crosswalk_conflict GROUP BY source, entity_type"
    return {(source, entity_type): int(n) for source, entity_type, n in db.rows(query)}
