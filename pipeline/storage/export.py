"""What the FHIR export reads: each canonical table in chunks of ``CHUNK`` rows by id (keyset pages, so memory
stays flat whatever the table's size), and per chunk the identifiers and care-team links of its rows.

The export runs these in one read transaction: every chunk sees the same snapshot of the database.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, Table, exists, func, or_, select

from pipeline.storage.db import among
from pipeline.storage.tables import (
    Crosswalk,
    Medic,
    Observation,
    Organization,
    Patient,
    PatientMedic,
    PatientOrganization,
    Person,
    table_of,
)

CHUNK = 1000
Rows = list[dict[str, Any]]

_patient = table_of(Patient)
_crosswalk = table_of(Crosswalk)


@dataclass(frozen=True)
class Listing:
    """The live rows of one table that an export takes, optionally only those changed after an instant."""

    table: Table
    entity_type: str  # in the crosswalk

    def query(self, since: dt.datetime | None) -> Select[Any]:
        t = self.table
        if t.name == "observation":  # a reading is about its patient's person
            query = select(t, _patient.c.person_id).join(_patient, _patient.c.id == t.c.patient_id)
            query = query.where(_patient.c.deleted_at.is_(None), _patient.c.person_id.is_not(None))
        else:
            query = select(t)
        query = query.where(t.c.deleted_at.is_(None))
        if since is not None:
            changed = t.c.updated_at > since
            if t.name == "person":  # a member that changed changes its person's resource
                member = _patient.c.person_id == t.c.id
                changed = or_(changed, exists().where(member, _patient.c.updated_at > since))
            query = query.where(changed)
        return query

    def count(self, conn: Connection, since: dt.datetime | None) -> int:
        return int(conn.execute(select(func.count()).select_from(self.query(since).subquery())).scalar() or 0)

    def chunks(self, conn: Connection, since: dt.datetime | None) -> Iterator[Rows]:
        after = ""
        id_ = self.table.c.id
        while True:
            query = self.query(since).where(id_ > after).order_by(id_).limit(CHUNK)
            rows = [dict(row) for row in conn.execute(query).mappings().all()]  # one fetchall, not a fetch a row
            if not rows:
                return
            yield rows
            after = rows[-1]["id"]

    def deleted_since(self, conn: Connection, since: dt.datetime) -> Iterator[str]:
        """Ids soft-deleted after ``since`` (for the manifest's ``deleted`` output), in chunks read by id."""
        t, after = self.table, ""
        while True:
            query = select(t.c.id).where(t.c.deleted_at > since, t.c.id > after).order_by(t.c.id).limit(CHUNK)
            ids = list(conn.execute(query).scalars().all())
            if not ids:
                return
            yield from ids
            after = ids[-1]


LISTINGS = {
    "Patient": Listing(table_of(Person), "patient"),
    "Practitioner": Listing(table_of(Medic), "medic"),
    "Organization": Listing(table_of(Organization), "organization"),
    "Observation": Listing(table_of(Observation), "observation"),
}


def entity_identifiers(conn: Connection, entity_type: str, ids: list[str]) -> dict[str, list[tuple[str, str, str]]]:
    """(source, id_type, id_value) of each entity, from the crosswalk, in a stable order."""
    c = _crosswalk.c
    query = (
        select(c.entity_id, c.source, c.id_type, c.id_value)
        .where(c.entity_type == entity_type, among(conn, c.entity_id, ids))
        .order_by(c.entity_id, c.source, c.id_type, c.id_value)
    )
    found: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for entity_id, source, id_type, id_value in conn.execute(query).all():
        found[entity_id].append((source, id_type, id_value))
    return found


def members(conn: Connection, person_ids: list[str]) -> dict[str, str]:
    """The live patients of the persons: patient id -> person id."""
    p = _patient.c
    query = select(p.id, p.person_id).where(among(conn, p.person_id, person_ids), p.deleted_at.is_(None))
    return {patient_id: person_id for patient_id, person_id in conn.execute(query).all()}


def care_links(conn: Connection, patient_ids: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The live medics and the live organizations each patient is linked to."""
    links: list[dict[str, list[str]]] = []
    for link, target, column in (
        (table_of(PatientMedic), table_of(Medic), "medic_id"),
        (table_of(PatientOrganization), table_of(Organization), "organization_id"),
    ):
        query = (
            select(link.c.patient_id, link.c[column])
            .join(target, (target.c.id == link.c[column]) & target.c.deleted_at.is_(None))
            .where(among(conn, link.c.patient_id, patient_ids))
        )
        found: dict[str, list[str]] = defaultdict(list)
        for patient_id, target_id in conn.execute(query).all():
            found[patient_id].append(target_id)
        links.append(found)
    return links[0], links[1]
