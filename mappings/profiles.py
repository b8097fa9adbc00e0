"""Profiles API patients -> canonical records (vendor document 002).

The documented examples the tests use are in tests/examples/documented.json.

A patient is keyed by ``unique_id``; the nested ``patient_profile.unique_id`` is crosswalked as
``profile_unique_id``. Each ``patient_doctor`` entry is a medic and each ``patient_hospital`` entry an
organization, both keyed by their ``unique_id`` and linked to the patient; the record's links replace the
patient's stored ones, so a link that leaves the source leaves the link tables.

    >>> from datetime import date
    >>> doctor = {"unique_id": "d1", "doctor_first_name": "Dr. Ana Ruiz"}
    >>> mapped = to_patient({"unique_id": "p1", "patient_doctor": [doctor]}, MappingContext(today=date(2026, 1, 1)))
    >>> [(e.type.value, e.key) for e in mapped.entities], mapped.entities[1].record.full_name
    ([('patient', 'p1'), ('medic', 'd1')], 'Ana Ruiz')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from canonical.errors import RecordError
from canonical.model import (
    Entity,
    EntityType,
    Link,
    Mapped,
    MedicRecord,
    OrganizationRecord,
    PatientRecord,
    SourceId,
)
from mappings import normalize as n
from mappings.context import MappingContext

__all__ = ["to_patient"]

# "Dr. Smith": the document puts the honorific in the first-name field; the canonical name goes without it.
_HONORIFIC = re.compile(r"^(?:dr|dra|doctor|doctora|prof|mr|mrs|ms)\.?\s+", re.IGNORECASE)


def to_patient(raw: Mapping[str, Any], ctx: MappingContext) -> Mapped:
    """One profiles patient -> the patient, then its doctors and hospitals, with the links to them."""
    n.require_object(raw)
    key = n.required(n.identifier(raw.get("unique_id"), "unique_id"), "unique_id")
    ids = [SourceId(id_type="unique_id", id_value=key)]
    profile = raw.get("patient_profile")
    if profile is not None:
        if not isinstance(profile, Mapping):
            raise RecordError("patient_profile", "expected an object")
        profile_id = n.identifier(profile.get("unique_id"), "patient_profile.unique_id")
        if profile_id is not None:
            ids.append(SourceId(id_type="profile_unique_id", id_value=profile_id))
    given = n.name(raw.get("patient_first_name"), "patient_first_name")
    family = n.name(raw.get("patient_last_name"), "patient_last_name")
    record = PatientRecord(
        given_name=given,
        family_name=family,
        full_name=n.joined_name(given, family),
        birth_date=n.birth_date(raw.get("patient_date_of_birth"), "patient_date_of_birth", ctx.today),
        sex=n.sex(raw.get("patient_gender"), "patient_gender"),
        email=n.email(raw.get("patient_email_address"), "patient_email_address"),
        phone=n.phone(raw.get("patient_mobile_number"), "patient_mobile_number", ctx.phone_region),
        address_line=n.address(
            (raw.get("patient_physical_address"), "patient_physical_address"),
            (raw.get("patient_address_line_1"), "patient_address_line_1"),
        ),
        city=n.text(raw.get("patient_town"), "patient_town"),
        # The province is the state-level division; the region is the fallback when it is empty.
        state=n.text(raw.get("patient_province"), "patient_province")
        or n.text(raw.get("patient_region"), "patient_region"),
        postal_code=n.text(raw.get("patient_postal_code"), "patient_postal_code"),
        country=n.text(raw.get("patient_country"), "patient_country"),
        title=n.text(raw.get("patient_title"), "patient_title"),
        initials=n.text(raw.get("patient_initials"), "patient_initials"),
        race=n.text(raw.get("patient_race"), "patient_race"),
        latitude=n.coordinate(raw.get("patient_latitude"), "patient_latitude", 90),
        longitude=n.coordinate(raw.get("patient_longitude"), "patient_longitude", 180),
    )
    patient = Entity(type=EntityType.patient, key=key, record=record, ids=tuple(ids))
    doctors = [_doctor(item, i) for i, item in enumerate(_entries(raw, "patient_doctor"))]
    hospitals = [_hospital(item, i) for i, item in enumerate(_entries(raw, "patient_hospital"))]
    others = [*doctors, *hospitals]
    links = tuple(Link(patient_key=key, other_type=other.type, other_key=other.key) for other in others)
    return Mapped(entities=(patient, *others), links=links)


def _entries(raw: Mapping[str, Any], field: str) -> list[Mapping[str, Any]]:
    items = raw.get(field)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        raise RecordError(field, "expected a list of objects")
    return items


def _doctor(item: Mapping[str, Any], i: int) -> Entity:
    key = n.required(
        n.identifier(item.get("unique_id"), f"patient_doctor[{i}].unique_id"), f"patient_doctor[{i}].unique_id"
    )
    shown = n.name(item.get("doctor_first_name"), f"patient_doctor[{i}].doctor_first_name")
    full_name = _HONORIFIC.sub("", shown) or None if shown else None
    # One field, and the document's example holds only a surname: the parts stay unknown rather than guessed.
    record = MedicRecord(full_name=full_name, given_name=None, family_name=None, organization_key=None)
    return Entity(type=EntityType.medic, key=key, record=record, ids=(SourceId(id_type="unique_id", id_value=key),))


def _hospital(item: Mapping[str, Any], i: int) -> Entity:
    field = f"patient_hospital[{i}].unique_id"
    key = n.required(n.identifier(item.get("unique_id"), field), field)
    record = OrganizationRecord(name=n.name(item.get("hospital_name"), f"patient_hospital[{i}].hospital_name"))
    return Entity(
        type=EntityType.organization, key=key, record=record, ids=(SourceId(id_type="unique_id", id_value=key),)
    )
