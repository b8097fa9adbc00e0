"""Writing one page: bulk upserts, one statement per table, inside the caller's transaction.

A record whose ``payload_hash`` is already stored costs one shared SELECT and nothing else. Canonical rows are
updated only where a column really differs (``ON CONFLICT ... DO UPDATE ... WHERE``), so re-mapping a record
that changed only in fields we do not keep writes no canonical row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, delete, or_, select, text, update

from canonical.ids import canonical_id
from canonical.model import Entity, EntityType, Mapped, MedicRecord, ObservationRecord
from mappings.context import MappingContext
from pipeline.kinds import StreamSpec
from pipeline.storage.db import among, upsert_insert
from pipeline.storage.tables import (
    CANONICAL,
    Crosswalk,
    PatientMedic,
    PatientOrganization,
    Quarantine,
    SourceRecord,
    table_of,
)
from pipeline.sync.prepare import Prepared, Rejected, map_record, prepare

_CHUNK = 1000  # keys per IN (...) list: far below SQLite's and PostgreSQL's parameter limits


@dataclass
class PageCounts:
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    keys: list[str] = field(default_factory=list)  # every key seen on the page, good or bad
    bad_keys: list[str] = field(default_factory=list)  # the quarantine keys of the page's bad records

    def add(self, other: PageCounts) -> None:
        self.fetched += other.fetched
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.quarantined += other.quarantined


def _upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keep: Iterable[str] = ()) -> None:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE the other columns where any of them differs."""
    if not rows:
        return
    stmt = upsert_insert(conn, table)
    key = [c.name for c in table.primary_key.columns]
    changing = [c for c in rows[0] if c not in key and c not in keep]
    compared = [c for c in changing if c not in ("updated_at", "last_seen_at", "created_at", "run_id")]
    stmt = stmt.on_conflict_do_update(
        index_elements=key,
        set_={c: stmt.excluded[c] for c in changing},
        where=or_(*(table.c[c].is_distinct_from(stmt.excluded[c]) for c in compared)),
    )
    conn.execute(stmt, list(rows))


def _stored_hashes(conn: Connection, source: str, stream: str, keys: list[str]) -> dict[str, tuple[str, bool]]:
    t = table_of(SourceRecord)
    found: dict[str, tuple[str, bool]] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        query = select(t.c.source_key, t.c.payload_hash, t.c.deleted_at).where(
            t.c.source == source, t.c.stream == stream, among(conn, t.c.source_key, chunk)
        )
        for key, digest, deleted_at in conn.execute(query).all():  # one fetchall, not a fetchone a row
            found[key] = (digest, deleted_at is not None)
    return found


def write_page(
    conn: Connection,
    source: str,
    spec: StreamSpec,
    records: Sequence[Any],
    ctx: MappingContext,
    now: dt.datetime,
    run_id: int | None,
) -> PageCounts:
    """Map and store one page of raw records; bad records go to quarantine. The caller commits."""
    counts = PageCounts(fetched=len(records))
    stream = spec.stream
    prepared: dict[str, Prepared] = {}  # the last duplicate of a key wins
    bad: list[Rejected] = []
    for raw in records:
        record = prepare(raw, spec, ctx)
        if isinstance(record, Rejected):
            bad.append(record)
        else:
            prepared[record.key] = record
    counts.keys = list(prepared)

    known = _stored_hashes(conn, source, stream.name, counts.keys)
    rows = _Rows(source, now)
    landed: list[dict[str, Any]] = []
    for key, record in prepared.items():
        previous = known.get(key)
        if previous is not None and previous == (record.digest, False):
            counts.unchanged += 1
            continue
        mapped = map_record(record, spec, ctx)
        if isinstance(mapped, Rejected):
            bad.append(mapped)
            continue
        entity_id = rows.add(mapped, spec.entity, replace_links=spec.links, stored_before=previous is not None)
        landed.append(
            {
                "entity_id": entity_id,
                "source": source,
                "stream": stream.name,
                "source_key": key,
                "payload": record.stored,
                "payload_hash": record.digest,
                "first_seen_at": now,
                "last_seen_at": now,
                "deleted_at": None,
            }
        )
        if previous is None:
            counts.inserted += 1
        else:
            counts.updated += 1

    rows.write(conn)
    _upsert(conn, table_of(SourceRecord), landed, keep=("first_seen_at",))
    if landed:
        q = table_of(Quarantine)
        keys = [row["source_key"] for row in landed]
        conn.execute(
            delete(q).where(q.c.source == source, q.c.stream == stream.name, among(conn, q.c.source_key, keys))
        )
    rows_by_key = {r.key: _quarantine_row(source, stream.name, r, run_id, now) for r in bad}  # one row a key
    _upsert(conn, table_of(Quarantine), list(rows_by_key.values()))
    counts.quarantined = len(bad)
    counts.bad_keys = list(rows_by_key)
    return counts


def _quarantine_row(source: str, stream: str, record: Rejected, run_id: int | None, now: dt.datetime) -> dict[str, Any]:
    return {
        "source": source,
        "stream": stream,
        "source_key": record.key,
        "reason": record.reason,
        "payload": record.stored,
        "payload_hash": record.digest,
        "run_id": run_id,
        "created_at": now,
    }


class _Rows:
    """Canonical, crosswalk and link rows of one page, deduplicated by primary key."""

    def __init__(self, source: str, now: dt.datetime) -> None:
        self.source = source
        self.now = now
        self.canonical: dict[EntityType, dict[str, dict[str, Any]]] = {t: {} for t in EntityType}
        self.crosswalk: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        # The entities the page's records are about: their crosswalk rows become exactly the page's.
        self.described: dict[EntityType, set[str]] = {}
        self.links: dict[EntityType, dict[tuple[str, str], dict[str, Any]]] = {
            EntityType.medic: {},
            EntityType.organization: {},
        }
        self.relinked_patients: set[str] = set()

    def _id(self, entity_type: EntityType, key: str) -> str:
        return canonical_id(self.source, entity_type.value, key)

    def add(self, mapped: Mapped, primary: EntityType, replace_links: bool, stored_before: bool) -> str | None:
        """Take a mapped record's rows; return the canonical id of its entity of type ``primary``.

        Only a record ``stored_before`` can have identifiers or links its new version no longer carries: a new
        one costs no DELETE (a first backfill then runs none at all).
        """
        primary_id = None
        for entity in mapped.entities:
            entity_id = self._add_entity(entity)
            if primary_id is None and entity.type is primary:
                primary_id = entity_id
                if stored_before:
                    self.described.setdefault(primary, set()).add(entity_id)
        if replace_links and stored_before:
            self.relinked_patients.update(
                self._id(EntityType.patient, e.key) for e in mapped.entities if e.type is EntityType.patient
            )
        for link in mapped.links:
            patient_id = self._id(EntityType.patient, link.patient_key)
            other_id = self._id(link.other_type, link.other_key)
            column = "medic_id" if link.other_type is EntityType.medic else "organization_id"
            row = {"patient_id": patient_id, column: other_id, "source": self.source}
            self.links[link.other_type][(patient_id, other_id)] = row
        return primary_id

    def _add_entity(self, entity: Entity) -> str:
        entity_id = self._id(entity.type, entity.key)
        row = entity.record.model_dump()
        if isinstance(entity.record, MedicRecord):
            org_key = row.pop("organization_key")
            row["organization_id"] = self._id(EntityType.organization, org_key) if org_key else None
        elif isinstance(entity.record, ObservationRecord):
            row["patient_id"] = self._id(EntityType.patient, row.pop("patient_key"))
        row.update(id=entity_id, created_at=self.now, updated_at=self.now, deleted_at=None)
        self.canonical[entity.type][entity_id] = row
        for source_id in entity.ids:
            pk = (entity.type.value, source_id.id_type, source_id.id_value, entity_id)
            self.crosswalk[pk] = {
                "source": self.source,
                "entity_type": entity.type.value,
                "id_type": source_id.id_type,
                "id_value": source_id.id_value,
                "entity_id": entity_id,
            }
        return entity_id

    def write(self, conn: Connection) -> None:
        for entity_type, rows in self.canonical.items():
            _upsert(conn, table_of(CANONICAL[entity_type.value]), list(rows.values()), keep=("created_at",))
        self._write_crosswalk(conn)
        for table, other_type in (
            (table_of(PatientMedic), EntityType.medic),
            (table_of(PatientOrganization), EntityType.organization),
        ):
            if self.relinked_patients:
                conn.execute(
                    delete(table).where(
                        # one parameter, however many patients: a profiles listing is one page of them all
                        table.c.source == self.source,
                        among(conn, table.c.patient_id, sorted(self.relinked_patients)),
                    )
                )
            links = list(self.links[other_type].values())
            if links:
                conn.execute(upsert_insert(conn, table).on_conflict_do_nothing(), links)

    def _write_crosswalk(self, conn: Connection) -> None:
        """The page's crosswalk rows, after removing those its records' entities no longer carry.

        Only the entity a record is about (a Prescrypto patient, a profiles patient) loses identifiers. The
        entities a record merely mentions (a medic's hospital, a patient's doctors) keep theirs: other records
        mention them too, and one record that stopped mentioning them says nothing about their identifiers.
        """
        cw = table_of(Crosswalk)
        rows = list(self.crosswalk.values())
        # A row of one source and entity type as one string, so the rows to keep are one parameter: entity ids
        # have a fixed length and id types never hold the separator, so no two rows give the same string.
        sep = "\x1f"
        for entity_type, ids in self.described.items():
            carried = [
                f"{r['entity_id']}{sep}{r['id_type']}{sep}{r['id_value']}" for r in rows if r["entity_id"] in ids
            ]
            conn.execute(
                delete(cw).where(
                    cw.c.source == self.source,
                    cw.c.entity_type == entity_type.value,
                    among(conn, cw.c.entity_id, sorted(ids)),
                    ~among(conn, cw.c.entity_id + sep + cw.c.id_type + sep + cw.c.id_value, carried),
                )
            )
        if rows:
            conn.execute(upsert_insert(conn, cw).on_conflict_do_nothing(), rows)


def refresh_statistics(engine: Engine) -> None:
    """Let PostgreSQL's planner see how much ``source_record`` and ``crosswalk`` grew during a bulk load.

    Without statistics it guesses that one row matches (source, stream) and scans every stored record of
    the stream to look up a page's hashes, which grows slower with every page of a first backfill.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("ANALYZE source_record, crosswalk"))
            conn.commit()


def missing_records(conn: Connection, source: str, spec: StreamSpec, seen: set[str]) -> tuple[dict[str, str], int]:
    """Records stored as live that a complete sweep did not see (key -> canonical id), and how many are live."""
    t = table_of(SourceRecord)
    live = conn.execute(
        select(t.c.source_key, t.c.entity_id).where(
            t.c.source == source, t.c.stream == spec.stream.name, t.c.deleted_at.is_(None)
        )
    ).all()
    return {key: entity_id for key, entity_id in live if key not in seen}, len(live)


def clear_quarantine(conn: Connection, source: str, stream: str, still_bad: set[str]) -> int:
    """Remove the quarantine rows of records a complete sweep found good again, or no longer found at all."""
    q = table_of(Quarantine)
    stored = conn.execute(select(q.c.source_key).where(q.c.source == source, q.c.stream == stream)).scalars()
    cleared = sorted(set(stored) - still_bad)
    for start in range(0, len(cleared), _CHUNK):
        chunk = cleared[start : start + _CHUNK]
        conn.execute(delete(q).where(q.c.source == source, q.c.stream == stream, q.c.source_key.in_(chunk)))
    return len(cleared)


def soft_delete(conn: Connection, source: str, spec: StreamSpec, gone: dict[str, str], now: dt.datetime) -> None:
    """Mark the records, and the canonical rows they landed on, as deleted; nothing is dropped."""
    t = table_of(SourceRecord)
    entity = table_of(CANONICAL[spec.entity.value])
    keys = sorted(gone)
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        conn.execute(
            update(t)
            .where(and_(t.c.source == source, t.c.stream == spec.stream.name, t.c.source_key.in_(chunk)))
            .values(deleted_at=now)
        )
        ids = [gone[key] for key in chunk if gone[key]]
        # A canonical row another live record still lands on (the same id spelt "007" before and "7" now) stays.
        still_landed = select(t.c.entity_id).where(
            t.c.source == source, t.c.deleted_at.is_(None), t.c.entity_id.is_not(None)
        )
        conn.execute(
            update(entity)
            .where(entity.c.id.in_(ids), entity.c.id.not_in(still_landed.where(t.c.entity_id.in_(ids))))
            .values(deleted_at=now, updated_at=now)
        )
