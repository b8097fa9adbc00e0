"""The steward's reads: the review queue a page at a time, filtered in the database, and the history of a person
and its patients. Every function runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, or_, select

from pipeline.storage.db import among
from pipeline.storage.tables import IdentityHistory, IdentityLink, Patient, table_of

_patient, _link, _history = table_of(Patient), table_of(IdentityLink), table_of(IdentityHistory)


def _open(source: str | None, low: float, high: float) -> list[Any]:
    where = [
        _link.c.status == "possible_match",
        _patient.c.deleted_at.is_(None),
        _link.c.score >= low,
        _link.c.score <= high,
    ]
    if source:
        where.append(_patient.c.source == source)
    return where


def queue_page(
    conn: Connection, source: str | None, low: float, high: float, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of the open possible matches of live patients, highest score first (the link row, the patient's
    source and its person now as ``patient_person``), and how many the filter holds in all."""
    where = _open(source, low, high)
    joined = _link.join(_patient, _patient.c.id == _link.c.patient_id)
    query = (
        select(_link, _patient.c.source, _patient.c.person_id.label("patient_person"))
        .select_from(joined)
        .where(*where)
        .order_by(_link.c.score.desc(), _link.c.id)
        .offset(offset)
        .limit(limit)
    )
    rows = [dict(row) for row in conn.execute(query).mappings().all()]
    total = conn.execute(select(func.count()).select_from(joined).where(*where)).scalar_one()
    return rows, int(total)


def queue_sources(conn: Connection) -> list[str]:
    """The sources of the patients that wait for review (the queue's source filter)."""
    query = (
        select(_patient.c.source)
        .distinct()
        .select_from(_link.join(_patient, _patient.c.id == _link.c.patient_id))
        .where(*_open(None, 0.0, 1.0))
        .order_by(_patient.c.source)
    )
    return [source for source in conn.execute(query).scalars() if source]


def history(conn: Connection, person_id: str, patient_ids: Sequence[str], limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` history rows of the person or of any of these patients, newest first."""
    query = (
        select(_history)
        .where(or_(_history.c.person_id == person_id, among(conn, _history.c.patient_id, list(patient_ids))))
        .order_by(_history.c.changed_at.desc(), _history.c.id.desc())
        .limit(limit)
    )
    return [dict(row) for row in conn.execute(query).mappings().all()]
