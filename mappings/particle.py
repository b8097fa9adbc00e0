"""Particle patients -> canonical records (vendor document 004), and the SSN kept out of storage.

The documented examples the tests use are in tests/examples/documented.json.

A patient is keyed by ``patient_id``. The SSN never reaches a canonical table or a log: the patient keeps
``ssn_last4``, and the stored payload (``scrub``) holds a keyed hash (HMAC-SHA256, key from config) for matching
the same person across sources, plus the last four digits.

    >>> from datetime import date
    >>> ctx = MappingContext(today=date(2026, 1, 1), phone_region="US", ssn_key=b"k" * 32)
    >>> scrubbed = scrub({"patient_id": "p1", "ssn": "123-45-6789"}, ctx)
    >>> sorted(scrubbed), scrubbed["ssn_last4"]
    (['patient_id', 'ssn_hmac', 'ssn_last4'], '6789')
    >>> to_patient({"patient_id": "p1", "ssn": "123-45-6789"}, ctx).entities[0].record.ssn_last4
    '6789'
    >>> from dataclasses import replace
    >>> stored = replace(ctx, stored=True)  # quarantine retry maps the stored form: no SSN evidence from it
    >>> to_patient(scrubbed, stored).entities[0].record.ssn_last4 is None
    True
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from canonical.errors import RecordError
from canonical.model import Entity, EntityType, Mapped, PatientRecord, SourceId
from mappings import normalize as n
from mappings.context import MappingContext

__all__ = ["scrub", "ssn_hmac", "to_patient"]


def to_patient(raw: Mapping[str, Any], ctx: MappingContext) -> Mapped:
    n.require_object(raw)
    key = n.required(n.identifier(raw.get("patient_id"), "patient_id"), "patient_id")
    lines = raw.get("address_lines")
    if lines is None:
        lines = []
    elif isinstance(lines, str):
        lines = [lines]
    elif not isinstance(lines, list):
        raise RecordError("address_lines", "expected a list of lines")
    given = n.name(raw.get("given_name"), "given_name")
    family = n.name(raw.get("family_name"), "family_name")
    if ctx.stored:  # a stored form's SSN evidence may be an older version's, stored as a source sent it
        last4, hashed = None, None
    else:
        ssn = n.ssn_digits(raw.get("ssn"), "ssn")
        last4, hashed = (ssn[-4:], ssn_hmac(ssn, ctx.ssn_key) if ctx.ssn_key else None) if ssn else (None, None)
    record = PatientRecord(
        given_name=given,
        family_name=family,
        full_name=n.joined_name(given, family),
        birth_date=n.birth_date(raw.get("date_of_birth"), "date_of_birth", ctx.today),
        sex=n.sex(raw.get("gender"), "gender"),
        email=n.email(raw.get("email"), "email"),
        phone=n.phone(raw.get("telephone"), "telephone", ctx.phone_region),
        address_line=n.address(*((line, f"address_lines[{i}]") for i, line in enumerate(lines))),
        city=n.text(raw.get("address_city"), "address_city"),
        state=n.text(raw.get("address_state"), "address_state"),
        postal_code=n.text(raw.get("postal_code"), "postal_code"),
        ssn_last4=last4,
        ssn_hash=hashed,
    )
    patient = Entity(
        type=EntityType.patient, key=key, record=record, ids=(SourceId(id_type="patient_id", id_value=key),)
    )
    return Mapped(entities=(patient,))


def ssn_hmac(digits: str, key: bytes) -> str:
    return hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()


_DERIVED = ("ssn_hmac", "ssn_last4")  # written by scrub only: a source's own fields of these names are dropped


def scrub(raw: Any, ctx: MappingContext) -> Any:
    """The record as it may be stored: ``ssn`` replaced by ``ssn_hmac`` (when a key is configured) and
    ``ssn_last4``. An SSN that cannot be read stays (to be redacted): the mapping quarantines the record, and so
    does mapping the stored form again. Fields of those names that the source sent are dropped: only ours are
    ever taken for SSN evidence."""
    if ctx.stored or not isinstance(raw, Mapping) or ("ssn" not in raw and not any(k in raw for k in _DERIVED)):
        return raw  # a stored form is scrubbed already: its ssn_last4 and ssn_hmac are ours
    kept = {k: v for k, v in raw.items() if k not in _DERIVED}
    if "ssn" not in kept:
        return kept
    try:
        digits = n.ssn_digits(kept["ssn"], "ssn")
    except RecordError:
        return kept
    del kept["ssn"]
    if digits:
        if ctx.ssn_key is not None:
            kept["ssn_hmac"] = ssn_hmac(digits, ctx.ssn_key)
        kept["ssn_last4"] = digits[-4:]
    return kept
