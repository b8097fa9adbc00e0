"""Prescrypto patients and medics -> canonical records (vendor documents 000 and 001).

The documented examples the tests use are in tests/examples/documented.json.

A patient is keyed by ``uid`` (the detail route uses it) and also crosswalked by ``id`` and, when the
integrator filled it in, ``external_patient_file``. A medic is keyed by ``id``; its ``hospital`` id becomes an
organization entity of its own, which comes first so the pipeline can resolve the medic's reference to it.

    >>> from datetime import date
    >>> ctx = MappingContext(today=date(2026, 1, 1))
    >>> mapped = to_patient({"id": 7, "uid": "b5", "name": "Juan  García López"}, ctx)
    >>> mapped.entities[0].record.family_name, [(i.id_type, i.id_value) for i in mapped.entities[0].ids]
    ('García López', [('id', '7'), ('uid', 'b5')])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canonical.model import (
    Entity,
    EntityType,
    Mapped,
    MedicRecord,
    OrganizationRecord,
    PatientRecord,
    SourceId,
)
from mappings import normalize as n
from mappings.context import MappingContext

__all__ = ["to_medic", "to_patient"]


def to_patient(raw: Mapping[str, Any], ctx: MappingContext) -> Mapped:
    """One Prescrypto patient object -> a patient entity keyed by ``uid``."""
    n.require_object(raw)
    uid = n.required(n.identifier(raw.get("uid"), "uid"), "uid")
    ids = [
        SourceId(id_type="id", id_value=n.required(n.integer_id(raw.get("id"), "id"), "id")),
        SourceId(id_type="uid", id_value=uid),
    ]
    external = n.identifier(raw.get("external_patient_file"), "external_patient_file")
    if external is not None:
        ids.append(SourceId(id_type="external_patient_file", id_value=external))
    full_name = n.name(raw.get("name"), "name")
    given, family = n.split_name(full_name) if full_name else (None, None)
    record = PatientRecord(
        given_name=given,
        family_name=family,
        full_name=full_name,
        birth_date=n.birth_date(raw.get("date_of_birth"), "date_of_birth", ctx.today),
        sex=n.sex(raw.get("gender"), "gender"),
        email=n.email(raw.get("email"), "email"),
        phone=n.phone(raw.get("phone"), "phone", ctx.phone_region),
        address_line=n.text(raw.get("address"), "address"),
        city=n.text(raw.get("location"), "location"),
        state=n.text(raw.get("state"), "state"),
        postal_code=n.text(raw.get("zip_code"), "zip_code"),
        country=None,  # Prescrypto has no country field; guessing Mexico from the CURP would be a guess
        curp=n.curp(raw.get("curp"), "curp"),
        ssn_last4=None,
    )
    return Mapped(entities=(Entity(type=EntityType.patient, key=uid, record=record, ids=tuple(ids)),))


def to_medic(raw: Mapping[str, Any], ctx: MappingContext) -> Mapped:
    """One Prescrypto medic object -> its hospital (when it has one), then the medic keyed by ``id``."""
    n.require_object(raw)
    key = n.required(n.integer_id(raw.get("id"), "id"), "id")
    hospital = n.integer_id(raw.get("hospital"), "hospital")
    full_name = n.name(raw.get("name"), "name")
    given, family = n.split_name(full_name) if full_name else (None, None)
    active = n.boolean(raw.get("is_active"), "is_active")
    record = MedicRecord(
        full_name=full_name,
        given_name=given,
        family_name=family,
        email=n.email(raw.get("email"), "email"),
        birth_date=n.birth_date(raw.get("date_of_birth"), "date_of_birth", ctx.today),
        sex=n.sex_from_female(raw.get("female"), "female"),
        license_number=n.text(raw.get("cedula_prof"), "cedula_prof"),
        specialty=n.text(raw.get("specialty"), "specialty"),
        active=True if active is None else active,  # the document calls accounts active unless deactivated
        organization_key=hospital,
    )
    medic = Entity(type=EntityType.medic, key=key, record=record, ids=(SourceId(id_type="id", id_value=key),))
    if hospital is None:
        return Mapped(entities=(medic,))
    organization = Entity(
        type=EntityType.organization,
        key=hospital,
        record=OrganizationRecord(name=None),  # the medic object carries only the hospital's id
        ids=(SourceId(id_type="id", id_value=hospital),),
    )
    return Mapped(entities=(organization, medic))
