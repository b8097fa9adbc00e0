"""Gauges API patients and readings -> canonical records (vendor document 003).

The documented examples the tests use are in tests/examples/documented.json.

A patient is keyed by its integer ``id``. A reading (gauge) is an observation keyed by its own ``id`` and
tied to its patient by ``patient_id``; every gauge type is kept as its code, documented or not.

    >>> from datetime import date
    >>> ctx = MappingContext(today=date(2026, 1, 1), phone_region="US")
    >>> to_gauge({"id": 456, "patient_id": 1049, "gauge_type": "mood", "value": 7}, ctx).entities[0].record.value
    7.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canonical.errors import RecordError
from canonical.model import Entity, EntityType, Mapped, ObservationRecord, PatientRecord, SourceId
from mappings import normalize as n
from mappings.context import MappingContext

__all__ = ["to_gauge", "to_patient"]


def to_patient(raw: Mapping[str, Any], ctx: MappingContext) -> Mapped:
    n.require_object(raw)
    key = n.required(n.integer_id(raw.get("id"), "id"), "id")
    address = raw.get("address")
    if address is None:
        address = {}
    elif not isinstance(address, Mapping):
        raise RecordError("address", "expected an object")
    given = n.name(raw.get("first_name"), "first_name")
    family = n.name(raw.get("last_name"), "last_name")
    active = n.boolean(raw.get("active"), "active")
    record = PatientRecord(
        given_name=given,
        family_name=family,
        full_name=n.joined_name(given, family),
        birth_date=n.birth_date(raw.get("date_of_birth"), "date_of_birth", ctx.today),
        sex=n.sex(raw.get("gender"), "gender"),
        email=n.email(raw.get("email"), "email"),
        phone=n.phone(raw.get("phone"), "phone", ctx.phone_region),
        address_line=n.address((address.get("street"), "address.street")),
        city=n.text(address.get("city"), "address.city"),
        state=n.text(address.get("state"), "address.state"),
        postal_code=n.text(address.get("zip_code"), "address.zip_code"),
        active=True if active is None else active,
    )
    return Mapped(
        entities=(Entity(type=EntityType.patient, key=key, record=record, ids=(SourceId(id_type="id", id_value=key),)),)
    )


def to_gauge(raw: Mapping[str, Any], ctx: MappingContext) -> Mapped:
    """One reading -> an observation of the patient named by its ``patient_id``."""
    n.require_object(raw)
    key = n.required(n.integer_id(raw.get("id"), "id"), "id")
    value = n.number(raw.get("value"), "value")
    low = n.number(raw.get("scale_min"), "scale_min")
    high = n.number(raw.get("scale_max"), "scale_max")
    if low is not None and high is not None and low > high:
        raise RecordError("scale_min", "is above scale_max")
    if value is not None and ((low is not None and value < low) or (high is not None and value > high)):
        raise RecordError("value", f"is outside the scale {_bound(low)}..{_bound(high)}")
    record = ObservationRecord(
        patient_key=n.required(n.integer_id(raw.get("patient_id"), "patient_id"), "patient_id"),
        code=n.required(n.text(raw.get("gauge_type"), "gauge_type"), "gauge_type"),
        value=value,
        scale_min=low,
        scale_max=high,
        recorded_at=n.timestamp(raw.get("recorded_at"), "recorded_at"),
        notes=n.text(raw.get("notes"), "notes"),
    )
    entity = Entity(type=EntityType.observation, key=key, record=record, ids=(SourceId(id_type="id", id_value=key),))
    return Mapped(entities=(entity,))


def _bound(limit: float | None) -> str:
    return "?" if limit is None else f"{limit:g}"
