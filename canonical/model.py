"""Canonical records: what every mapping returns, whatever the source.

A mapping turns one source record into a ``Mapped`` bundle: the entities it describes (a patient, a medic and
its hospital, a reading, ...), each with the source identifiers that go to the crosswalk, plus the links between
them. Entities refer to each other by their *source key* (``Ref``); the pipeline turns keys into canonical ids,
so mappings stay pure and know nothing of the database.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


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


Text = Annotated[str | None, Field(default=None)]


class PatientRecord(_Record):
    given_name: Text
    family_name: Text
    full_name: Text
    birth_date: dt.date | None = None
    sex: Sex = Sex.unknown
    email: Text
    phone: Text
    address_line: Text
    city: Text
    state: Text
    postal_code: Text
    country: Text
    curp: Text
    ssn_last4: Text
    active: bool = True


class OrganizationRecord(_Record):
    name: Text


class MedicRecord(_Record):
    full_name: Text
    given_name: Text
    family_name: Text
    email: Text
    birth_date: dt.date | None = None
    sex: Sex = Sex.unknown
    license_number: Text
    specialty: Text
    active: bool = True
    organization_key: Text  # source key of the medic's organization, resolved by the pipeline


class ObservationRecord(_Record):
    patient_key: str  # source key of the patient, resolved by the pipeline
    code: str
    value: float | None = None
    scale_min: float | None = None
    scale_max: float | None = None
    recorded_at: dt.datetime | None = None
    notes: Text


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
    id_value: str


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
