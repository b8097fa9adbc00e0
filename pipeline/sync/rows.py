"""A page's records mapped into table rows: pure, so it runs outside the write transaction (on SQLite that
transaction holds the database's one write lock).

Each record is made storable first (``prepare.finish``; the runner hands over only those whose digest as fetched
is not the stored one). A record whose stored ``payload_hash`` equals its own is unchanged and costs nothing more
(a Particle record holding an SSN, whose stored form never shows it); a changed or new one is mapped
(``prepare.map_record``) into canonical, crosswalk, link, ``source_record`` rows; a bad one into a quarantine row.
Rows are deduplicated by primary key: the last record of a page wins.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from canonical.ids import canonical_id
from canonical.model import Entity, EntityType, Mapped, MedicRecord, ObservationRecord, PatientRecord
from mappings.context import MappingContext
from pipeline.identity.keys import match_keys
from pipeline.identity.profile import profile, street_parts
from pipeline.kinds import StreamSpec
from pipeline.storage.load import PageRows, key_rows
from pipeline.sync.prepare import PreparedPage, Rejected, finish, map_record

Stored = dict[str, tuple[str, bool]]  # key -> (payload_hash, soft-deleted), as storage.load.stored_hashes reads


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


def map_page(
    page: PreparedPage,
    stored: Stored,
    spec: StreamSpec,
    ctx: MappingContext,
    source: str,
    now: dt.datetime,
    run_id: int | None,
) -> tuple[PageRows, PageCounts]:
    """The rows one page writes, and its counts."""
    stream = spec.stream.name
    counts = PageCounts(fetched=page.fetched, keys=list(page.good))
    rows = _Rows(source, now)
    bad = list(page.bad)
    records: list[dict[str, Any]] = []
    for key, fetched in page.good.items():
        record = finish(fetched, spec, ctx)
        if isinstance(record, Rejected):
            bad.append(record)
            continue
        previous = stored.get(key)
        if previous is not None and previous == (record.digest, False):
            counts.unchanged += 1
            continue
        mapped = map_record(record, spec, ctx)
        if isinstance(mapped, Rejected):
            bad.append(mapped)
            continue
        entity_id = rows.add(mapped, spec.entity, replace_links=spec.links, stored_before=previous is not None)
        records.append(
            {
                "entity_id": entity_id,
                "source": source,
                "stream": stream,
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
    quarantine = {r.key: _quarantine_row(source, stream, r, run_id, now) for r in bad}  # one row a key
    counts.quarantined = len(bad)
    counts.bad_keys = list(quarantine)
    return rows.page(stream, records, list(quarantine.values())), counts


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
        self.match_keys: dict[str, list[tuple[str, str]]] = {}  # patient id -> its keys (pipeline.identity)

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
        elif isinstance(entity.record, PatientRecord):
            row["source"] = self.source
            row["street"], row["street_number"] = street_parts(row["address_line"])
            ssn_hash = row.pop("ssn_hash")
            self.match_keys[entity_id] = match_keys(profile({**row, "id": entity_id}, self.source, ssn_hash))
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

    def page(self, stream: str, records: list[dict[str, Any]], quarantine: list[dict[str, Any]]) -> PageRows:
        match_keys, patient_keys = key_rows(self.match_keys)
        return PageRows(
            source=self.source,
            stream=stream,
            canonical={t.value: list(rows.values()) for t, rows in self.canonical.items() if rows},
            crosswalk=list(self.crosswalk.values()),
            described={t.value: sorted(ids) for t, ids in self.described.items()},
            links={
                "patient_medic": list(self.links[EntityType.medic].values()),
                "patient_organization": list(self.links[EntityType.organization].values()),
            },
            relinked_patients=sorted(self.relinked_patients),
            match_keys=match_keys,
            patient_keys=patient_keys,
            patients=sorted(self.match_keys),
            records=records,
            quarantine=quarantine,
        )
