"""FHIR resources from canonical rows (pipeline.export.resources): exact shapes, R4B-valid, nothing empty, no SSN."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.export import resources
from pipeline.export.resources import Systems
from pipeline.export.validate import problems

UTC = dt.UTC
# The gauges document's reading (id 456 of patient 1049), as the observation table holds it.
READING = {
    "id": "obs-1",
    "patient_id": "pat-1",
    "code": "mood",
    "value": 7.0,
    "scale_min": 1.0,
    "scale_max": 10.0,
    "recorded_at": dt.datetime(2023, 10, 27, 14, 30),  # SQLite hands back naive UTC
    "notes": "Feeling better today",
    "updated_at": dt.datetime(2023, 10, 28, 8, 0, tzinfo=UTC),
}
SCORE = {"unit": "score", "system": "http://unitsofmeasure.org", "code": "{score}"}
PERSON = {
    "id": "11111111-2222-3333-4444-555555555555",
    "given_name": "Ana María",
    "family_name": "Salcido Cortez",
    "full_name": "Ana María Salcido Cortez",
    "birth_date": dt.date(1992, 2, 6),
    "sex": "female",
    "email": "ana@example.com",
    "phone": "+525512345678",
    "address_line": "Av. Juárez 12",
    "city": "Toluca",
    "state": "México",
    "postal_code": "50000",
    "country": "MX",
    "curp": "SACA920206MMCLRN09",
    "ssn_last4": "6789",
    "active": True,
    "updated_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
}


def test_a_documented_reading_is_a_final_score_observation_about_its_person() -> None:
    ids = resources.identifiers([("gauges", "id", "456")], Systems())
    assert resources.observation(READING, "person-9", ids) == {
        "resourceType": "Observation",
        "id": "obs-1",
        "meta": {"lastUpdated": "2023-10-28T08:00:00+00:00"},
        "identifier": [{"system": "urn:patientsync:gauges:id", "value": "456"}],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                        "display": "Survey",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": "urn:patientsync:gauge-type", "code": "mood", "display": "Mood rating scale"}],
            "text": "mood",
        },
        "subject": {"reference": "Patient/person-9"},
        "effectiveDateTime": "2023-10-27T14:30:00+00:00",
        "valueQuantity": {"value": 7, **SCORE},
        "referenceRange": [{"low": {"value": 1, **SCORE}, "high": {"value": 10, **SCORE}}],
        "note": [{"text": "Feeling better today"}],
    }


def test_a_person_is_a_patient_with_every_identifier_and_its_care_team_and_no_ssn() -> None:
    ids = resources.identifiers(
        [("rx", "uid", "8a11"), ("pa", "patient_id", "pt-1"), ("pa", "ssn_hmac", "abc"), ("pf", "unique_id", " ")],
        Systems({"rx": {"uid": "https://prescrypto.example/uid"}}),
    )
    resource = resources.patient(PERSON, ids, ["medic-1"], ["org-1"])
    assert resource == {
        "resourceType": "Patient",
        "id": PERSON["id"],
        "meta": {"lastUpdated": "2026-01-02T03:04:05+00:00"},
        "identifier": [
            {"system": "https://prescrypto.example/uid", "value": "8a11"},
            {"system": "urn:patientsync:pa:patient_id", "value": "pt-1"},
        ],
        "active": True,
        "name": [{"text": "Ana María Salcido Cortez", "family": "Salcido Cortez", "given": ["Ana", "María"]}],
        "telecom": [{"system": "phone", "value": "+525512345678"}, {"system": "email", "value": "ana@example.com"}],
        "gender": "female",
        "birthDate": "1992-02-06",
        "address": [
            {"line": ["Av. Juárez 12"], "city": "Toluca", "state": "México", "postalCode": "50000", "country": "MX"}
        ],
        "generalPractitioner": [{"reference": "Practitioner/medic-1"}, {"reference": "Organization/org-1"}],
    }
    assert "6789" not in repr(resource) and "abc" not in repr(resource)


def test_a_person_with_only_an_id_has_no_empty_element() -> None:
    bare = {"id": "p", "active": False, "sex": "unknown", "full_name": " ", "given_name": None}
    assert resources.patient(bare, []) == {"resourceType": "Patient", "id": "p", "active": False, "gender": "unknown"}


def test_a_medic_is_a_practitioner_with_its_licence_and_a_hospital_an_organization() -> None:
    medic = {"id": "m", "full_name": "Serrato", "family_name": "Serrato", "active": True, "sex": "male"}
    medic |= {"license_number": "1013350", "specialty": "Urología", "email": None, "birth_date": None}
    ids = resources.identifiers([("rx", "id", "5")], Systems())
    assert resources.practitioner(medic, ids, Systems(license="https://cedulas.example")) == {
        "resourceType": "Practitioner",
        "id": "m",
        "identifier": [
            {"system": "urn:patientsync:rx:id", "value": "5"},
            {"system": "https://cedulas.example", "value": "1013350"},
        ],
        "active": True,
        "name": [{"text": "Serrato", "family": "Serrato"}],
        "gender": "male",
        "qualification": [{"code": {"text": "Urología"}}],
    }
    nameless = resources.organization({"id": "o", "name": None}, ids)
    assert nameless == {"resourceType": "Organization", "id": "o", "identifier": ids, "active": True}


def test_a_deletion_is_a_transaction_bundle_with_one_delete() -> None:
    assert resources.deletion("Patient", "p") == {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": "Patient/p"}}],
    }


@pytest.mark.parametrize(
    "resource",
    [
        resources.observation(READING, "p", []),
        resources.observation({**READING, "value": 7.5, "notes": None, "scale_min": None}, "p", []),
        resources.patient(PERSON, [{"system": "urn:patientsync:rx:uid", "value": "1"}], ["m"], ["o"]),
        resources.practitioner({"id": "m", "active": True, "license_number": "1"}, [], Systems()),
        resources.organization({"id": "o", "name": "Hospital"}, []),
        resources.deletion("Observation", "x"),
    ],
    ids=["observation", "observation-fraction", "patient", "practitioner", "organization", "deletion"],
)
def test_each_resource_validates_against_the_r4b_models(resource: dict[str, Any]) -> None:
    assert problems(resource) == []


def test_values_beyond_what_a_float_holds_exactly_stay_floats_and_codes_have_single_spaces() -> None:
    huge = resources.observation({**READING, "value": 1e20, "scale_max": 2.0**60, "code": " sleep   quality "}, "p", [])
    assert huge["valueQuantity"]["value"] == 1e20 and isinstance(huge["valueQuantity"]["value"], float)
    assert huge["code"]["coding"][0]["code"] == "sleep quality"
    assert orjson.dumps(huge) and problems(huge) == []
    assert resources.observation({**READING, "value": 7.0}, "p", [])["valueQuantity"]["value"] == 7


def test_the_validator_names_the_field_and_never_the_value() -> None:
    found = problems({"resourceType": "Patient", "id": "p", "birthDate": "1992-13-45", "identifier": [{"value": ""}]})
    assert found and all("1992-13-45" not in p for p in found)
    assert any(p.startswith("birthDate:") for p in found) and any(p.startswith("identifier.0.value:") for p in found)


_text = st.one_of(st.none(), st.text(max_size=12))


@settings(max_examples=60, deadline=None)
@given(
    row=st.fixed_dictionaries(
        {
            "given_name": _text,
            "family_name": _text,
            "full_name": _text,
            "email": _text,
            "phone": _text,
            "address_line": _text,
            "city": _text,
            "postal_code": _text,
            "sex": st.sampled_from(["male", "female", "other", "unknown", "x"]),
            "birth_date": st.one_of(st.none(), st.dates(dt.date(1900, 1, 1), dt.date(2030, 1, 1))),
        }
    ),
    value=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
)
def test_any_stored_values_make_valid_resources(row: dict[str, Any], value: float | None) -> None:
    # Stored text is whatever a source sent: every row must still make a valid resource, with empty values
    # left out rather than written empty.
    person = resources.patient({"id": "p", "active": True, **row}, [])
    assert problems(person) == []
    reading = resources.observation({**READING, "value": value, "notes": row["city"]}, "p", [])
    assert problems(reading) == [] and orjson.dumps(reading)
