"""What the FHIR export reads: each canonical table in chunks of ``CHUNK`` rows by id (keyset pages, so memory
stays flat whatever the table's size), and per chunk the identifiers and care-team links of its rows.

The export runs these in one read transaction (``fenced_snapshot``): every chunk sees the same snapshot of the
database, taken at an instant when no write was open.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table, func, or_, select, text

from pipeline.storage.db import WRITE_FENCE, among, reading
from pipeline.storage.tables import (
    Crosswalk,
    IdentityHistory,
    Medic,
    Observation,
    Organization,
    Patient,
    PatientMedic,
    PatientOrganization,
    Person,
    SourceRecord,
    table_of,
)

CHUNK = 1000
Rows = list[dict[str, Any]]

_patient = table_of(Patient)
_crosswalk = table_of(Crosswalk)
_CARE = (  # a patient's care-team links: (link table, the table it points at, the link's column)
    (table_of(PatientMedic), table_of(Medic), "medic_id"),
    (table_of(PatientOrganization), table_of(Organization), "organization_id"),
)


@contextmanager
def fenced_snapshot(
    engine: Engine, waiting: Callable[[], None] | None = None
) -> Iterator[tuple[Connection, dt.datetime]]:
    """A read-only transaction and its horizon: an instant at which no write transaction was open, and from which
    the transaction sees the database as it was.

    Every row committed before the horizon is in the snapshot; every write still to come takes its
    ``write_instant`` after the horizon. So ``--since <horizon>`` finds each change exactly once, with no
    look-back (a row stamped before one export and committed after it is no longer possible). The fence is held
    only while the instant is read and the snapshot fixed: an export waits for the writes in flight to commit
    (``waiting`` is called first), and new writes wait for it no longer than that.
    """
    # The fence is read-only to SQLAlchemy: on PostgreSQL it must not take the shared lock it waits to hold alone.
    with reading(engine).connect() as fence, reading(engine).connect() as snapshot:
        if engine.dialect.name == "postgresql":
            _fence_postgres(fence, waiting)
            snapshot = snapshot.execution_options(isolation_level="REPEATABLE READ")
            snapshot.begin()
            snapshot.exec_driver_sql("SET TRANSACTION READ ONLY")
        else:
            _fence_sqlite(fence, waiting)
            snapshot.begin()
        try:
            horizon = dt.datetime.now(dt.UTC)
            # The snapshot is fixed by its first read (on both databases), while the fence still holds.
            snapshot.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        finally:
            if engine.dialect.name == "postgresql":
                fence.rollback()
            else:
                _driver(fence).execute("ROLLBACK")
        yield snapshot, horizon
        snapshot.rollback()


def _fence_postgres(fence: Connection, waiting: Callable[[], None] | None) -> None:
    if not fence.execute(text(f"SELECT pg_try_advisory_xact_lock({WRITE_FENCE})")).scalar():
        if waiting:
            waiting()
        fence.execute(text(f"SELECT pg_advisory_xact_lock({WRITE_FENCE})"))


def _fence_sqlite(fence: Connection, waiting: Callable[[], None] | None) -> None:
    """SQLite's write lock, held outside SQLAlchemy's transaction (the driver is in autocommit mode)."""
    raw = _driver(fence)
    (timeout,) = raw.execute("PRAGMA busy_timeout").fetchone()
    raw.execute("PRAGMA busy_timeout = 0")
    try:
        raw.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        if waiting:
            waiting()
        raw.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        raw.execute("BEGIN IMMEDIATE")
    finally:
        raw.execute(f"PRAGMA busy_timeout = {int(timeout)}")


def _driver(conn: Connection) -> Any:
    """The driver's own connection (sqlite3's): it is in autocommit mode, so SQLAlchemy begins nothing on it."""
    return conn.connection.driver_connection


@dataclass(frozen=True)
class Since:
    """An incremental export's instant, and what changed after it that no row's own ``updated_at`` shows,
    found once per export (``changed_since``)."""

    instant: dt.datetime
    persons: tuple[str, ...] = ()  # persons whose membership, or whose patients' records or care links, changed
    records: tuple[str, ...] = ()  # entities whose source record changed (an identifier alone, say)
    relinked: tuple[str, ...] = ()  # patients that joined or left a person: their readings have a new subject


def changed_since(conn: Connection, instant: dt.datetime) -> Since:
    """What changed after ``instant`` beyond the rows' own ``updated_at``:

    - a source record's ``last_seen_at`` is when its payload last changed, so an identifier or a care link that
      changed while no column of its row did still counts;
    - ``identity_history`` says which patients joined or left which persons;
    - a medic or hospital deleted since leaves the persons it cared for with a reference to drop.
    """
    p, r, h = _patient.c, table_of(SourceRecord).c, table_of(IdentityHistory).c
    records = select(r.entity_id).distinct().where(r.last_seen_at > instant, r.entity_id.is_not(None))
    changed_records = sorted(conn.execute(records).scalars().all())
    person_queries: list[Select[Any]] = [
        select(p.person_id).where(p.updated_at > instant),
        select(p.person_id).where(among(conn, p.id, changed_records)),
        select(h.person_id).where(h.changed_at > instant),
    ]
    for link, target, column in _CARE:
        person_queries.append(
            select(p.person_id)
            .join(link, link.c.patient_id == p.id)
            .join(target, target.c.id == link.c[column])
            .where(target.c.deleted_at > instant)
        )
    persons = {person for q in person_queries for person in conn.execute(q).scalars().all() if person}
    moved = ("joined", "left")
    relinked = select(h.patient_id).distinct().where(h.changed_at > instant, h.change.in_(moved))
    return Since(
        instant,
        tuple(sorted(persons)),
        tuple(changed_records),
        tuple(sorted(x for x in conn.execute(relinked).scalars().all() if x)),
    )


@dataclass(frozen=True)
class Listing:
    """The live rows of one table that an export takes, optionally only those changed after an instant."""

    table: Table
    entity_type: str  # in the crosswalk

    def query(self, conn: Connection, since: Since | None) -> Select[Any]:
        t = self.table
        if t.name == "observation":  # a reading is about its patient's person
            query = select(t, _patient.c.person_id).join(_patient, _patient.c.id == t.c.patient_id)
            query = query.where(_patient.c.deleted_at.is_(None), _patient.c.person_id.is_not(None))
        else:
            query = select(t)
        query = query.where(t.c.deleted_at.is_(None))
        if since is not None:
            if t.name == "person":
                column, ids = t.c.id, since.persons
            elif t.name == "observation":
                column, ids = t.c.patient_id, since.relinked
            else:
                column, ids = t.c.id, since.records
            changed = t.c.updated_at > since.instant
            query = query.where(or_(changed, among(conn, column, list(ids))) if ids else changed)
        return query

    def count(self, conn: Connection, since: Since | None) -> int:
        query = select(func.count()).select_from(self.query(conn, since).subquery())
        return int(conn.execute(query).scalar() or 0)

    def chunks(self, conn: Connection, since: Since | None) -> Iterator[Rows]:
        after = ""
        id_ = self.table.c.id
        while True:
            query = self.query(conn, since).where(id_ > after).order_by(id_).limit(CHUNK)
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
    for link, target, column in _CARE:
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
