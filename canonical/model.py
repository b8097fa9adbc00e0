"""Canonical records: what every mapping returns, whatever the source.

A mapping turns one source record into a ``Mapped`` bundle: the entities it describes (a patient, a medic and
its hospital, a reading, ...), each with the source identifiers that go to the crosswalk, plus the links between
them. Entities refer to each other by their *source key* (``Ref``); the pipeline turns keys into canonical ids,
so mappings stay pure and know nothing of the database.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

# The longest identifier kept (record keys, crosswalk ids): within every database's index row limit. A longer
# one is a quarantine reason, never a failed page.
MAX_ID_LENGTH = 255


class Sex(StrEnum):
    male = "male"
    female = "female"
    other = "other"
    unknown = "unknown"


class EntityType(StrEnum):
    patient = "patient"
    medic = "medic"
    organization = "organization"
    observation = "observation"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PatientRecord(_Record):
    given_name: str | None = None
    family_name: str | None = None
    full_name: str | None = None
    birth_date: dt.date | None = None
    sex: Sex = Sex.unknown
    email: str | None = None
    phone: str | None = None
    address_line: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    curp: str | None = None
    ssn_last4: str | None = None
    # The SSN's keyed hash (HMAC-SHA256), for matching only: it lands in match_key, never in the patient table.
    ssn_hash: str | None = None
    title: str | None = None
    initials: str | None = None
    race: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    active: bool = True


class OrganizationRecord(_Record):
    name: str | None = None


class MedicRecord(_Record):
    full_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    birth_date: dt.date | None = None
    sex: Sex = Sex.unknown
    license_number: str | None = None
    specialty: str | None = None
    active: bool = True
    organization_key: str | None = None  # source key of the medic's organization, resolved by the pipeline


class ObservationRecord(_Record):
    patient_key: str  # source key of the patient, resolved by the pipeline
    code: str
    value: float | None = None
    scale_min: float | None = None
    scale_max: float | None = None
    recorded_at: dt.datetime | None = None
    notes: str | None = None


CanonicalRecord = PatientRecord | MedicRecord | OrganizationRecord | ObservationRecord

RECORD_TYPES: dict[EntityType, type[_Record]] = {
    EntityType.patient: PatientRecord,
    EntityType.medic: MedicRecord,
    EntityType.organization: OrganizationRecord,
    EntityType.observation: ObservationRecord,
}


class SourceId(_Record):
    """One crosswalk row: an identifier the source uses for an entity."""

    id_type: str
    id_value: str = Field(max_length=MAX_ID_LENGTH)


class Entity(_Record):
    type: EntityType
    key: str  # the source's primary identifier of this entity, unique per (source, type)
    record: CanonicalRecord
    ids: tuple[SourceId, ...]


class Link(_Record):
    """A care-team (patient_medic) or patient-hospital (patient_organization) link, by source keys."""

    patient_key: str
    other_type: EntityType  # medic or organization
    other_key: str


class Mapped(_Record):
    entities: tuple[Entity, ...]
    links: tuple[Link, ...] = ()
