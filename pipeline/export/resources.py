"""FHIR R4 resources from canonical rows: pure functions, one per resource type (README: FHIR export).

Rows are the mappings ``pipeline.storage.export`` reads. Empty values are left out rather than written empty:
FHIR forbids empty strings and empty arrays. No SSN, hash or ``ssn_last4`` is ever read into a resource.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

GAUGE_SYSTEM = "urn:patientsync:gauge-type"  # the gauges API's gauge_type values, as codes (README)
# The gauge types the gauges document names, with their displays; another type is exported with its code alone.
GAUGE_DISPLAY = {
    "mood": "Mood rating scale",
    "anxiety": "Anxiety level scale",
    "energy": "Energy level scale",
    "sleep_quality": "Sleep quality scale",
    "pain": "Pain level scale",
    "medication_adherence": "Medication adherence scale",
    "social_interaction": "Social interaction scale",
}
_SURVEY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "survey",
            "display": "Survey",
        }
    ]
}
_SCORE_UNIT = {"unit": "score", "system": "http://unitsofmeasure.org", "code": "{score}"}
_GENDERS = frozenset({"male", "female", "other", "unknown"})


@dataclass(frozen=True)
class Systems:
    """Identifier systems: ``urn:patientsync:<source>:<id_type>`` unless configuration names a URI."""

    configured: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # source -> id_type -> URI
    license: str = "urn:patientsync:license"

    _known: dict[tuple[str, str], str] = field(default_factory=dict, compare=False, repr=False)

    def of(self, source: str, id_type: str) -> str:
        system = self._known.get((source, id_type))
        if system is None:
            system = self.configured.get(source, {}).get(id_type) or f"urn:patientsync:{source}:{id_type}"
            self._known[(source, id_type)] = system
        return system


def identifiers(ids: Iterable[tuple[str, str, str]], systems: Systems) -> list[dict[str, str]]:
    """FHIR identifiers of (source, id_type, id_value) crosswalk rows; never one that names an SSN."""
    out, seen = [], set()
    for source, id_type, value in ids:
        value = value.strip()
        if value and "ssn" not in id_type.lower() and (source, id_type, value) not in seen:
            seen.add((source, id_type, value))  # two patients of one person may carry the same id
            out.append({"system": systems.of(source, id_type), "value": value})
    return out


def patient(
    person: Mapping[str, Any],
    ids: list[dict[str, str]],
    practitioners: Iterable[str] = (),
    organizations: Iterable[str] = (),
) -> dict[str, Any]:
    """A person's ``Patient``: its id the person id; its care team as ``generalPractitioner``."""
    resource: dict[str, Any] = {"resourceType": "Patient", "id": person["id"], **_meta(person)}
    if ids:
        resource["identifier"] = ids
    resource["active"] = bool(person["active"])
    _put(resource, "name", _name(person))
    _put(resource, "telecom", _telecom(person.get("phone"), person.get("email")))
    resource["gender"] = _gender(person.get("sex"))
    _put(resource, "birthDate", _date(person.get("birth_date")))
    _put(resource, "address", _address(person))
    care = [{"reference": f"Practitioner/{m}"} for m in practitioners]
    care += [{"reference": f"Organization/{o}"} for o in organizations]
    _put(resource, "generalPractitioner", care)
    return resource


def practitioner(medic: Mapping[str, Any], ids: list[dict[str, str]], systems: Systems) -> dict[str, Any]:
    """A medic's ``Practitioner``: the licence (cédula) is an identifier, the specialty a qualification."""
    resource: dict[str, Any] = {"resourceType": "Practitioner", "id": medic["id"], **_meta(medic)}
    license_number = (medic.get("license_number") or "").strip()
    if license_number:
        ids = [*ids, {"system": systems.license, "value": license_number}]
    if ids:
        resource["identifier"] = ids
    resource["active"] = bool(medic["active"])
    _put(resource, "name", _name(medic))
    _put(resource, "telecom", _telecom(None, medic.get("email")))
    resource["gender"] = _gender(medic.get("sex"))
    _put(resource, "birthDate", _date(medic.get("birth_date")))
    specialty = (medic.get("specialty") or "").strip()
    if specialty:
        resource["qualification"] = [{"code": {"text": specialty}}]
    return resource


def organization(org: Mapping[str, Any], ids: list[dict[str, str]]) -> dict[str, Any]:
    """A hospital's ``Organization`` (a Prescrypto hospital has an id and no name)."""
    resource: dict[str, Any] = {"resourceType": "Organization", "id": org["id"], **_meta(org)}
    if ids:
        resource["identifier"] = ids
    resource["active"] = True
    _put(resource, "name", (org.get("name") or "").strip())
    return resource


def observation(reading: Mapping[str, Any], person_id: str, ids: list[dict[str, str]]) -> dict[str, Any]:
    """A gauge reading's ``Observation`` about the person's ``Patient``: a score on the gauge's scale."""
    code = " ".join(reading["code"].split()) or "unknown"  # a FHIR code has single spaces only
    coding = {"system": GAUGE_SYSTEM, "code": code}
    if code in GAUGE_DISPLAY:
        coding["display"] = GAUGE_DISPLAY[code]
    resource: dict[str, Any] = {"resourceType": "Observation", "id": reading["id"], **_meta(reading)}
    if ids:
        resource["identifier"] = ids
    resource["status"] = "final"
    resource["category"] = [_SURVEY]
    resource["code"] = {"coding": [coding], "text": code}
    resource["subject"] = {"reference": f"Patient/{person_id}"}
    _put(resource, "effectiveDateTime", _instant(reading.get("recorded_at")))
    if reading.get("value") is not None:
        resource["valueQuantity"] = {"value": _number(reading["value"]), **_SCORE_UNIT}
    scale = {
        bound: {"value": _number(reading[column]), **_SCORE_UNIT}
        for bound, column in (("low", "scale_min"), ("high", "scale_max"))
        if reading.get(column) is not None
    }
    if scale:
        resource["referenceRange"] = [scale]
    notes = (reading.get("notes") or "").strip()
    if notes:
        resource["note"] = [{"text": notes}]
    return resource


def deletion(resource_type: str, resource_id: str) -> dict[str, Any]:
    """The Bulk Data form of a deleted resource: a transaction Bundle with one DELETE entry."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": f"{resource_type}/{resource_id}"}}],
    }


def _put(resource: dict[str, Any], key: str, value: Any) -> None:
    if value:
        resource[key] = value


def _meta(row: Mapping[str, Any]) -> dict[str, Any]:
    updated = _instant(row.get("updated_at"))
    return {"meta": {"lastUpdated": updated}} if updated else {}


def _name(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    name: dict[str, Any] = {}
    _put(name, "text", (row.get("full_name") or "").strip())
    _put(name, "family", (row.get("family_name") or "").strip())
    _put(name, "given", (row.get("given_name") or "").split())
    return [name] if name else []


def _telecom(phone: str | None, email: str | None) -> list[dict[str, str]]:
    found = [("phone", (phone or "").strip()), ("email", (email or "").strip())]
    return [{"system": system, "value": value} for system, value in found if value]


def _address(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    address: dict[str, Any] = {}
    _put(address, "line", [line for line in [(row.get("address_line") or "").strip()] if line])
    for key, column in (("city", "city"), ("state", "state"), ("postalCode", "postal_code"), ("country", "country")):
        _put(address, key, (row.get(column) or "").strip())
    return [address] if address else []


def _gender(sex: str | None) -> str:
    return sex if sex in _GENDERS else "unknown"


def _date(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, dt.date) else str(value)[:10]


def _instant(value: Any) -> str | None:
    """An ISO instant with its offset; a naive value (SQLite returns them) is UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.isoformat() + "+00:00" if value.tzinfo is None else value.isoformat()


def _number(value: float) -> int | float:
    """A whole number as an integer (7, not 7.0) while a float holds it exactly; beyond that, the float."""
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value
