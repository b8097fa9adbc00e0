"""The database tables (the database contract in the README), as SQLModel table models.

Canonical ids are uuid5 strings derived from (source, entity type, source key), so a page can be upserted
without first reading ids back. Timestamps are UTC.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Integer, MetaData, String, Table, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

JSONType = JSON().with_variant(JSONB(), "postgresql")


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index))


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(JSONType, nullable=nullable))


class Demographics(SQLModel):
    """The columns a patient holds about its person, and a person takes from its patients (the golden record,
    pipeline.identity.golden)."""

    given_name: str | None = None
    family_name: str | None = None
    full_name: str | None = None
    birth_date: dt.date | None = None
    sex: str = Field(default="unknown", max_length=16)
    email: str | None = None
    phone: str | None = None
    address_line: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    curp: str | None = Field(default=None, max_length=18)
    ssn_last4: str | None = Field(default=None, max_length=4)
    title: str | None = None
    initials: str | None = None
    race: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    active: bool = True
    # The address line's parts (pipeline.identity.profile.street_parts): street name and number apart, as
    # identity compares them; no source sends them apart.
    street: str | None = None
    street_number: str | None = None


DEMOGRAPHIC = tuple(Demographics.model_fields)


class Patient(Demographics, table=True):
    __tablename__ = "patient"
    id: str = Field(primary_key=True, max_length=36)
    created_at: dt.datetime | None = _ts(nullable=False)
    updated_at: dt.datetime | None = _ts(nullable=False)
    deleted_at: dt.datetime | None = _ts()
    source: str | None = Field(default=None)  # the source whose record this is (identity: one per source)
    person_id: str | None = Field(default=None, max_length=36, index=True)  # identity: who this patient is


class Person(Demographics, table=True):
    """The golden record of one real individual: every live patient belongs to exactly one."""

    __tablename__ = "person"
    id: str = Field(primary_key=True, max_length=36)
    created_at: dt.datetime | None = _ts(nullable=False)
    updated_at: dt.datetime | None = _ts(nullable=False)
    deleted_at: dt.datetime | None = _ts()


class LinkStatus(StrEnum):
    match = "match"  # the patient belongs to the person
    possible_match = "possible_match"  # for review
    no_match = "no_match"  # decided apart (manually, or a possible match that no longer scores)


class Origin(StrEnum):
    auto = "auto"
    manual = "manual"  # never overwritten by an automatic decision


class IdentityLink(SQLModel, table=True):
    """A decision about a patient and a person, with the score and the evidence it was taken on."""

    __tablename__ = "identity_link"
    __table_args__ = (UniqueConstraint("patient_id", "person_id", name="uq_identity_link_patient_person"),)
    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    patient_id: str = Field(max_length=36)
    person_id: str = Field(max_length=36, index=True)
    status: str = Field(max_length=16, index=True)
    origin: str = Field(max_length=8)
    score: float | None = None  # match probability; None for the patient that founded its person
    evidence: Any = _json()  # each compared field's level and weight, and the model version
    decided_at: dt.datetime | None = _ts(nullable=False)


class IdentityHistory(SQLModel, table=True):
    """Every change of a link or of a person's membership: what, from what, to what, why, when."""

    __tablename__ = "identity_history"
    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    changed_at: dt.datetime | None = _ts(nullable=False)
    patient_id: str | None = Field(default=None, max_length=36, index=True)
    person_id: str | None = Field(default=None, max_length=36, index=True)
    change: str = Field(max_length=32)  # joined, left, possible_match, no_match, person_created, ...
    before: str | None = None
    after: str | None = None
    reason: str | None = Field(default=None, sa_column=Column(Text))
    origin: str = Field(max_length=8)
    batch: str | None = Field(default=None, max_length=40, index=True)  # a bulk review decision: undone together
    operator: str | None = Field(default=None, max_length=64)  # who made a manual decision


class MatchKey(SQLModel, table=True):
    """A value a patient is blocked on (pipeline.identity.keys), written with the patient's page."""

    __tablename__ = "match_key"
    # The key leads with what blocking looks up, and it is the table's only B-tree (SQLite: WITHOUT ROWID): a
    # patient's keys are found through ``patient_keys``, not through an index by patient, which cost a second
    # random insert for each of some 17 keys a patient.
    __table_args__ = ({"sqlite_with_rowid": False},)
    key_type: str = Field(primary_key=True, max_length=16)
    key_value: str = Field(primary_key=True)
    patient_id: str = Field(primary_key=True, max_length=36)


class PatientKeys(SQLModel, table=True):
    """A patient's match keys as one row: what replacing them deletes, what its link pass blocks on, and
    where its SSN hash is read from (the ``ssn`` key)."""

    __tablename__ = "patient_keys"
    patient_id: str = Field(primary_key=True, max_length=36)
    match_keys: str = Field(sa_column=Column(Text, nullable=False))  # JSON: [[key type, key value], ...]


class IdentityPending(SQLModel, table=True):
    """Patients to link: queued with their page (or their deletion), removed once linked, so a crash in
    between leaves them queued."""

    __tablename__ = "identity_pending"
    patient_id: str = Field(primary_key=True, max_length=36)
    queued_at: dt.datetime | None = _ts(nullable=False)
    rekey: bool = False  # its match keys are to be derived again from the stored row (an upgraded database)


class IdentityModel(SQLModel, table=True):
    """A trained match model (``link --train``); the newest is used, the defaults before any."""

    __tablename__ = "identity_model"
    version: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    model: Any = _json(nullable=False)
    trained_at: dt.datetime | None = _ts(nullable=False)
    summary: str | None = Field(default=None, sa_column=Column(Text))


# A view (created by migration 0004) over crosswalk and patient: every identifier of every live person.
person_identifier = Table(
    "person_identifier",
    MetaData(),
    Column("person_id", String),
    Column("source", String),
    Column("id_type", String),
    Column("id_value", String),
)


class Organization(SQLModel, table=True):
    __tablename__ = "organization"
    id: str = Field(primary_key=True, max_length=36)
    name: str | None = None
    created_at: dt.datetime | None = _ts(nullable=False)
    updated_at: dt.datetime | None = _ts(nullable=False)
    deleted_at: dt.datetime | None = _ts()


class Medic(SQLModel, table=True):
    __tablename__ = "medic"
    id: str = Field(primary_key=True, max_length=36)
    full_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    birth_date: dt.date | None = None
    sex: str = Field(default="unknown", max_length=16)
    license_number: str | None = None
    specialty: str | None = None
    active: bool = True
    # No foreign key: a medic may arrive before its hospital is known, and analysts join on it anyway.
    organization_id: str | None = Field(default=None, max_length=36, index=True)
    created_at: dt.datetime | None = _ts(nullable=False)
    updated_at: dt.datetime | None = _ts(nullable=False)
    deleted_at: dt.datetime | None = _ts()


class Observation(SQLModel, table=True):
    __tablename__ = "observation"
    id: str = Field(primary_key=True, max_length=36)
    patient_id: str = Field(max_length=36, index=True)
    code: str
    value: float | None = None
    scale_min: float | None = None
    scale_max: float | None = None
    recorded_at: dt.datetime | None = _ts(index=True)
    notes: str | None = None
    created_at: dt.datetime | None = _ts(nullable=False)
    updated_at: dt.datetime | None = _ts(nullable=False)
    deleted_at: dt.datetime | None = _ts()


class PatientMedic(SQLModel, table=True):
    __tablename__ = "patient_medic"
    patient_id: str = Field(primary_key=True, max_length=36)
    medic_id: str = Field(primary_key=True, max_length=36, index=True)
    source: str = Field(primary_key=True)


class PatientOrganization(SQLModel, table=True):
    __tablename__ = "patient_organization"
    patient_id: str = Field(primary_key=True, max_length=36)
    organization_id: str = Field(primary_key=True, max_length=36, index=True)
    source: str = Field(primary_key=True)


class Crosswalk(SQLModel, table=True):
    __tablename__ = "crosswalk"
    __table_args__ = (Index("ix_crosswalk_entity", "entity_type", "entity_id"),)
    # The primary key is the unique key the README documents: one row per identifier a source uses for an
    # entity, so an identifier two records share (the same external_patient_file) stays on both; see
    # crosswalk_conflict.
    # Its index, led by (source, entity_type, id_type, id_value), serves the lookups by identifier.
    source: str = Field(primary_key=True)
    entity_type: str = Field(primary_key=True, max_length=16)
    id_type: str = Field(primary_key=True)
    id_value: str = Field(primary_key=True)
    entity_id: str = Field(primary_key=True, max_length=36)


# A view (created by migration 0003), not a table: on a MetaData of its own, so no schema comparison or
# create_all ever treats it as a table to build.
crosswalk_conflict = Table(
    "crosswalk_conflict",
    MetaData(),
    Column("source", String),
    Column("entity_type", String),
    Column("id_type", String),
    Column("id_value", String),
    Column("entities", Integer),  # how many live entities hold the identifier
    Column("entity_ids", Text),  # their ids, comma-separated
)


class SourceRecord(SQLModel, table=True):
    __tablename__ = "source_record"
    source: str = Field(primary_key=True)
    stream: str = Field(primary_key=True)
    source_key: str = Field(primary_key=True)
    entity_id: str | None = Field(default=None, max_length=36)  # the canonical row this record landed on
    payload: Any = _json(nullable=False)
    payload_hash: str = Field(max_length=64)
    first_seen_at: dt.datetime | None = _ts(nullable=False)
    last_seen_at: dt.datetime | None = _ts(nullable=False)
    deleted_at: dt.datetime | None = _ts()


class Quarantine(SQLModel, table=True):
    __tablename__ = "quarantine"
    # One row per bad record: a record quarantined again replaces its row; one that later lands removes it.
    source: str = Field(primary_key=True)
    stream: str = Field(primary_key=True)
    source_key: str = Field(primary_key=True)  # "sha256:<hash>" when the record has no key at all
    reason: str = Field(sa_column=Column(Text, nullable=False))
    payload: Any = _json()
    payload_hash: str = Field(max_length=64)
    run_id: int | None = None
    created_at: dt.datetime | None = _ts(nullable=False)


class SyncState(SQLModel, table=True):
    __tablename__ = "sync_state"
    source: str = Field(primary_key=True)
    stream: str = Field(primary_key=True)
    cursor: Any = _json(nullable=False)
    updated_at: dt.datetime | None = _ts(nullable=False)


class SyncRun(SQLModel, table=True):
    __tablename__ = "sync_run"
    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    source: str = Field(index=True)
    stream: str
    mode: str = Field(max_length=16)
    started_at: dt.datetime | None = _ts(nullable=False)
    finished_at: dt.datetime | None = _ts()
    status: str = Field(max_length=16)
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    deleted: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text))


class SyncLease(SQLModel, table=True):
    __tablename__ = "sync_lease"
    source: str = Field(primary_key=True)
    stream: str = Field(primary_key=True)
    holder: str = Field(sa_column=Column(String(200), nullable=False))
    expires_at: dt.datetime | None = _ts(nullable=False)


CANONICAL: dict[str, type[SQLModel]] = {
    "patient": Patient,
    "medic": Medic,
    "organization": Organization,
    "observation": Observation,
}


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a table model (SQLModel does not declare ``__table__`` to type checkers)."""
    return model.__table__  # type: ignore[attr-defined, no-any-return]
