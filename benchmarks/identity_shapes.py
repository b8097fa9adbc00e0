"""Labelled people rendered the way each vendor shapes a patient, for the identity benchmark.

Each side loses what its vendor's format loses (the vendor documents, summarised in the README's Sources):

- ``prescrypto``: one ``name`` string and one ``address`` string (number, street and unit glued together),
  ``state`` and ``zip_code``; no city in ``location``, no SSN;
- ``gauges``: first and last name, an ``address`` object whose ``street`` holds number, street and unit; no SSN;
- ``profiles``: first and last name with the initials, the street and the unit on two lines, town, region and
  postal code; no SSN;
- ``particle``: given and family name, ``address_lines`` (street, then unit), city, state, postal code, and the
  SSN where the labelled record has one.

Pure: a labelled record in, the vendor's JSON object out.

    >>> r = Labelled("e1", "ana maria", "de la cruz", "1990-05-01", "12", "main st", "unit 4", "city", "vic", "3000")
    >>> prescrypto(r, 7)["name"], prescrypto(r, 7)["address"]
    ('ana maria de la cruz', '12 main st, unit 4')
    >>> particle(r, 7)["address_lines"]
    ['12 main st', 'unit 4']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KINDS = ("prescrypto", "profiles", "gauges", "particle")
# Every pair of kinds the benchmark links: one side's records against the other's.
PAIRS = (
    ("prescrypto", "particle"),
    ("prescrypto", "gauges"),
    ("prescrypto", "profiles"),
    ("profiles", "particle"),
    ("gauges", "particle"),
)


@dataclass(frozen=True)
class Labelled:
    entity: str  # the true individual
    given: str | None
    family: str | None
    birth_date: str | None  # ISO, or None
    number: str | None = None
    street: str | None = None
    unit: str | None = None  # a second address line
    city: str | None = None
    state: str | None = None
    postcode: str | None = None
    ssn: str | None = None  # nine digits


def _join(*parts: str | None, sep: str = " ") -> str:
    return sep.join(p for p in parts if p)


def _street(r: Labelled) -> str:
    return _join(r.number, r.street)


def prescrypto(r: Labelled, key: int) -> dict[str, Any]:
    return {
        "id": key,
        "uid": f"u{key:08d}",
        "name": _join(r.given, r.family),
        "email": "",
        "date_of_birth": r.birth_date,
        "external_patient_file": "",
        "gender": "",
        "curp": "",
        "phone": "",
        "address": _join(_street(r), r.unit, sep=", "),
        "state": r.state or "",
        "zip_code": r.postcode or "",
        "location": "",
    }


def gauges(r: Labelled, key: int) -> dict[str, Any]:
    return {
        "id": key,
        "first_name": r.given,
        "last_name": r.family,
        "date_of_birth": r.birth_date,
        "address": {
            "street": _join(_street(r), r.unit, sep=", "),
            "city": r.city,
            "state": r.state,
            "zip_code": r.postcode,
        },
        "active": True,
    }


def profiles(r: Labelled, key: int) -> dict[str, Any]:
    initials = "".join(token[0].upper() for token in (r.given or "").split())
    return {
        "unique_id": f"pat{key:08d}",
        "patient_first_name": r.given,
        "patient_initials": initials,
        "patient_last_name": r.family,
        "patient_date_of_birth": r.birth_date,
        "patient_physical_address": _street(r),
        "patient_address_line_1": r.unit or "",
        "patient_town": r.city,
        "patient_region": r.state,
        "patient_postal_code": r.postcode,
        "patient_hospital": [],
        "patient_doctor": [],
    }


def particle(r: Labelled, key: int) -> dict[str, Any]:
    record: dict[str, Any] = {
        "patient_id": f"p{key:08d}",
        "given_name": r.given,
        "family_name": r.family,
        "date_of_birth": r.birth_date,
        "postal_code": r.postcode,
        "address_lines": [line for line in (_street(r), r.unit) if line],
        "address_city": r.city,
        "address_state": r.state,
    }
    if r.ssn:
        record["ssn"] = r.ssn
    return record


RENDER: dict[str, Callable[[Labelled, int], dict[str, Any]]] = {
    "prescrypto": prescrypto,
    "gauges": gauges,
    "profiles": profiles,
    "particle": particle,
}
# The key each kind's truth is looked up by: its record's primary identifier, as the crosswalk holds it.
KEY_TYPE = {"prescrypto": "id", "profiles": "unique_id", "gauges": "id", "particle": "patient_id"}


def primary_id(kind: str, record: dict[str, Any]) -> str:
    return str(record["patient_id"] if kind == "particle" else record["unique_id" if kind == "profiles" else "id"])
