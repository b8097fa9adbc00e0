"""What ``patientsync demo`` shows of a database: rows per table, how many people the patients are, the
crosswalk's identifier kinds, and a few of the latest rows of a table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select
from sqlmodel import SQLModel

from pipeline.storage.tables import (
    CANONICAL,
    Crosswalk,
    IdentityLink,
    LinkStatus,
    Patient,
    PatientMedic,
    PatientOrganization,
    Person,
    Quarantine,
    SourceRecord,
    table_of,
)

SHOWN: list[type[SQLModel]] = [
    *CANONICAL.values(),
    PatientMedic,
    PatientOrganization,
    Crosswalk,
    SourceRecord,
    Quarantine,
    Person,
    IdentityLink,
]


def row_counts(conn: Connection) -> list[tuple[str, int]]:
    """(table, rows) for each table a user would look at first."""
    found = []
    for model in SHOWN:
        t = table_of(model)
        found.append((t.name, int(conn.execute(select(func.count()).select_from(t)).scalar() or 0)))
    return found


def people(conn: Connection) -> tuple[int, int, int]:
    """Live patients, the live persons they resolve to, and the possible matches waiting for review."""
    p, person, links = table_of(Patient), table_of(Person), table_of(IdentityLink)
    patients = conn.execute(select(func.count()).where(p.c.deleted_at.is_(None))).scalar()
    persons = conn.execute(select(func.count()).where(person.c.deleted_at.is_(None))).scalar()
    review = conn.execute(select(func.count()).where(links.c.status == LinkStatus.possible_match)).scalar()
    return int(patients or 0), int(persons or 0), int(review or 0)


def identifier_kinds(conn: Connection) -> list[tuple[str, str, str, int]]:
    """(source, entity type, id type, rows) of the crosswalk."""
    cw = table_of(Crosswalk)
    keys = (cw.c.source, cw.c.entity_type, cw.c.id_type)
    query = select(*keys, func.count()).group_by(*keys).order_by(*keys)
    return [(source, entity_type, id_type, int(n)) for source, entity_type, id_type, n in conn.execute(query)]


def latest(conn: Connection, table: str, columns: Sequence[str], n: int = 5) -> list[tuple[Any, ...]]:
    """The ``columns`` of the ``n`` rows of ``table`` written last."""
    t = table_of(CANONICAL[table])
    query = select(*(t.c[c] for c in columns)).order_by(t.c.updated_at.desc(), t.c.id).limit(n)
    return [tuple(row) for row in conn.execute(query)]
