"""What ``patientsync status`` reports: per source and stream, the cursor, the last run, quarantine, lag and the
identifiers that more than one of the stream's records hold (counted, never shown).

Read through the DB-API driver (``pipeline.storage.plain``): this module must not import SQLAlchemy, directly or
through what it imports (tests/test_status_startup.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipeline.config import Config
from pipeline.kinds import KINDS, stream_names
from pipeline.storage import streams
from pipeline.storage.plain import Plain
from pipeline.sync.messages import public, shown_key


def stream_status(config: Config, db: Plain) -> list[dict[str, Any]]:
    """One row per configured stream. On SQLite each query reads what is committed without waiting for a
    running sync (WAL); the rows are not one snapshot, as a sync may commit between two of them."""
    now = dt.datetime.now(dt.UTC)
    rows = []
    conflicts = streams.identifier_conflicts(db)
    for name, source in config.sources.items():
        for stream in stream_names(source):
            last = streams.last_run(db, name, stream)
            last_ok = streams.last_success(db, name, stream)
            entity = KINDS[source.kind].streams[stream].entity.value
            rows.append(
                {
                    "source": name,
                    "stream": stream,
                    "cursor": shown_cursor(streams.cursor(db, name, stream)),
                    "records": streams.live_records(db, name, stream),
                    "quarantined": streams.quarantined(db, name, stream),
                    "conflicts": conflicts.get((name, entity), 0),
                    "last_run": None if last is None else _shown_run(last),
                    "last_success_at": _iso(last_ok),
                    "lag_seconds": None if last_ok is None else round((now - last_ok).total_seconds()),
                }
            )
    return rows


def shown_quarantine(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Quarantined records as ``quarantine list`` and the console show them: a key that may be an SSN or a token
    masked (``shown_key``), the reason masked again (a row written by an older version may hold what it now would
    not), the time as ISO text."""
    return [
        {
            **row,
            "source_key": shown_key(row["source_key"]),
            "reason": public(row["reason"]),
            "created_at": _iso(row["created_at"]),
        }
        for row in rows
    ]


def _shown_run(last: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": last["id"],
        "mode": last["mode"],
        "status": last["status"],
        "started_at": _iso(last["started_at"]),
        "finished_at": _iso(last["finished_at"]),
        "fetched": last["fetched"],
        "inserted": last["inserted"],
        "updated": last["updated"],
        "unchanged": last["unchanged"],
        "quarantined": last["quarantined"],
        "deleted": last["deleted"],
        # masked again: a row written by an older version may hold what it now would not
        "error": None if last["error"] is None else public(last["error"]),
    }


# Positions a source chose (a continuation token, a next link): its text, shown only by its length.
_SOURCE_TEXT = ("continuation_token", "next_url")


def shown_cursor(cursor: dict[str, Any]) -> dict[str, Any]:
    """A cursor as status shows it: offsets, pages and times as stored, an anchor (a record's key) as a listing
    shows a key (``shown_key``), a token or link by its length.

    >>> shown_cursor({"continuation_token": "after=Ana,dob=1987", "sweep": {"offset": 4, "anchor": "123-45-6789"}})
    {'continuation_token': '<18 characters>', 'sweep': {'offset': 4, 'anchor': '[redacted]'}}
    """
    return {key: _shown(key, value) for key, value in cursor.items()}


def _shown(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return shown_cursor(value)
    if not isinstance(value, str):
        return value
    if key in _SOURCE_TEXT:
        return f"<{len(value)} characters>"
    return shown_key(value) if key == "anchor" else value


def _iso(value: dt.datetime | None) -> str | None:
    value = Plain.time(value)  # SQLite's are naive: every stored time is UTC
    return value.isoformat(timespec="seconds") if value is not None else None
