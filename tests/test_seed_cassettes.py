"""The documented examples of all five vendor documents: extracted exactly, and committed as cassettes that play
back what the documents show.

The counts below were taken by reading the documents: 002 shows six JSON examples (a list, two request bodies,
three objects) and a ``204 No Content``; 003 one request body, two response bodies and three error bodies; 004
two request bodies (the required fields and the curl ``-d``), three response objects and the DELETE's string.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import vcr

from tests.cassettes.build import (
    BASES,
    Cassette,
    all_cassettes,
    all_examples,
    cassette_file,
    cassettes_of,
    render_cassette,
)
from tests.seed_documents import SEEDS, parse_examples, parse_responses, seed_text, seeds_found
from tests.seed_examples import (
    OTHER_SEEDS,
    PRESCRYPTO_SEEDS,
    SNAPSHOT,
    DocumentedExample,
    documented_examples,
    documented_responses,
    snapshot_of,
)

CASSETTES = Path(__file__).parent / "cassettes"
replay = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="none",
    match_on=["method", "scheme", "host", "port", "path", "query"],
)
CASSETTE_LIST = all_cassettes()
EMAIL = "[email\u00a0protected]"  # the documents' text, no-break space included
# The vendor documents are not part of the repository: what reads them runs where they are found (CI has them).
needs_documents = pytest.mark.skipif(
    not seeds_found(), reason=f"the vendor documents are not at {SEEDS} (set PATIENTSYNC_SEEDS to check them)"
)


def examples(seed: str) -> dict[str, DocumentedExample]:
    return {doc.name: doc for doc in documented_examples(seed)}


# Every cassette file ------------------------------------------------------------------------------------------
def test_every_cassette_file_is_what_the_seeds_render_and_none_is_stray():
    assert len({c.name for c in CASSETTE_LIST}) == len(CASSETTE_LIST) == 19 + 15
    assert {c.file for c in CASSETTE_LIST} == {p.name for p in CASSETTES.glob("*.yaml")}
    for c in CASSETTE_LIST:
        assert (CASSETTES / c.file).read_text(encoding="utf-8") == render_cassette(c), (
            f"{c.file} differs from the seed: run python -m tests.cassettes.build"
        )


def test_cassettes_of_documents_002_to_004():
    assert [
        (c.name, c.method, c.url, c.status, c.message)
        for c in CASSETTE_LIST
        if c.example.seed != "000" and c.example.seed != "001"
    ] == [
        ("002-00-get-patients-patients-200", "GET", "https://profiles.example/patients/patients/", 200, "OK"),
        ("002-02-post-patients-patients-201", "POST", "https://profiles.example/patients/patients/", 201, "Created"),
        (
            "002-03-get-patients-patients-str-unique-id-200",
            "GET",
            "https://profiles.example/patients/patients/pat123/",
            200,
            "OK",
        ),
        (
            "002-05-put-patients-patients-str-unique-id-200",
            "PUT",
            "https://profiles.example/patients/patients/pat123/",
            200,
            "OK",
        ),
        (
            "002-06-delete-patients-patients-str-unique-id-204",
            "DELETE",
            "https://profiles.example/patients/patients/pat123/",
            204,
            "No Content",
        ),
        ("003-01-get-v1-patients-id-200", "GET", "https://gauges.example/v1/patients/1049", 200, "OK"),
        ("003-01-get-v1-patients-200", "GET", "https://gauges.example/v1/patients?page=1&page_size=100", 200, "OK"),
        (
            "003-02-get-v1-patients-patient-id-gauges-200",
            "GET",
            "https://gauges.example/v1/patients/1049/gauges?start_date=2023-10-01",
            200,
            "OK",
        ),
        ("003-03-post-v1-patients-422", "POST", "https://gauges.example/v1/patients", 422, "Unprocessable Entity"),
        (
            "003-04-get-v1-patients-patient-id-gauges-404",
            "GET",
            "https://gauges.example/v1/patients/1049/gauges?start_date=2023-10-01",
            404,
            "Not Found",
        ),
        (
            "003-05-get-v1-patients-patient-id-gauges-403",
            "GET",
            "https://gauges.example/v1/patients/1049/gauges?start_date=2023-10-01",
            403,
            "Forbidden",
        ),
        ("004-02-post-api-v1-patients-200", "POST", "https://particle.example/api/v1/patients", 200, "OK"),
        (
            "004-03-get-api-v1-patients-patient-id-200",
            "GET",
            "https://particle.example/api/v1/patients/examplepatientid1",
            200,
            "OK",
        ),
        (
            "004-04-delete-api-v1-patients-patient-id-200",
            "DELETE",
            "https://particle.example/api/v1/patients/examplepatientid1",
            200,
            "OK",
        ),
        ("004-05-get-api-v1-patients-200", "GET", "https://particle.example/api/v1/patients", 200, "OK"),
    ]
    assert all(c.url.startswith(BASES[c.example.seed] + "/") for c in CASSETTE_LIST)


def test_cassette_file_finds_a_documented_response_by_its_url():
    patient = examples("003")["003-01-get-v1-patients-id-200"]
    assert cassette_file(patient, "https://gauges.example/v1/patients?page=1&page_size=100") == (
        "003-01-get-v1-patients-200.yaml"
    )
    assert cassette_file(patient, "https://gauges.example/v1/patients/1049") == "003-01-get-v1-patients-id-200.yaml"
    with pytest.raises(LookupError):
        cassette_file(patient)
    assert cassette_file(examples("004")["004-05-get-api-v1-patients-200"]) == "004-05-get-api-v1-patients-200.yaml"
    assert cassette_file(documented_responses("000")[0]) == "000-00-get-api-v2-patient-200.yaml"
    assert cassettes_of(examples("002")["002-01-post-patients-patients-request"]) == []


# The snapshot ------------------------------------------------------------------------------------------------
@needs_documents
def test_the_committed_snapshot_equals_what_the_vendor_documents_show():
    parsed = {seed: parse_responses(seed) for seed in PRESCRYPTO_SEEDS} | {
        seed: parse_examples(seed) for seed in OTHER_SEEDS
    }
    assert SNAPSHOT.read_text(encoding="utf-8") == snapshot_of(parsed), (
        "the vendor documents changed: run python -m tests.cassettes.build"
    )


# Extraction -----------------------------------------------------------------------------------------------------
def test_every_example_of_documents_002_to_004_is_found_in_order():
    assert [(d.name, d.kind, d.status, d.title, d.section) for d in all_examples()] == [
        ("002-00-get-patients-patients-200", "response", 200, "", "Get Patient List: Response Example"),
        ("002-01-post-patients-patients-request", "request", None, "", "Create a Patient: Request Example"),
        ("002-02-post-patients-patients-201", "response", 201, "", "Create a Patient: Response Example"),
        ("002-03-get-patients-patients-str-unique-id-200", "response", 200, "", "Get a Patient: Response Example"),
        (
            "002-04-put-patients-patients-str-unique-id-request",
            "request",
            None,
            "",
            "Update a Patient: Request Example",
        ),
        ("002-05-put-patients-patients-str-unique-id-200", "response", 200, "", "Update a Patient: Response Example"),
        (
            "002-06-delete-patients-patients-str-unique-id-204",
            "response",
            204,
            "No Content",
            "Delete a Patient: Response",
        ),
        ("003-00-post-v1-patients-request", "request", None, "", "Create Patient: Example Request"),
        ("003-01-get-v1-patients-id-200", "response", 200, "", "Response Format: Patient Response"),
        (
            "003-02-get-v1-patients-patient-id-gauges-200",
            "response",
            200,
            "",
            "Response Format: Patient Gauge Response",
        ),
        (
            "003-03-post-v1-patients-422",
            "response",
            422,
            "Unprocessable Entity",
            "Error Responses: 422 Unprocessable Entity",
        ),
        (
            "003-04-get-v1-patients-patient-id-gauges-404",
            "response",
            404,
            "Not Found",
            "Error Responses: 404 Not Found",
        ),
        (
            "003-05-get-v1-patients-patient-id-gauges-403",
            "response",
            403,
            "Forbidden",
            "Error Responses: 403 Forbidden",
        ),
        ("004-00-post-api-v1-patients-request", "request", None, "", "Patient Create and Update: Required Fields"),
        ("004-01-post-api-v1-patients-request", "request", None, "", "Patient Create and Update: Example Request"),
        ("004-02-post-api-v1-patients-200", "response", 200, "", "Patient Create and Update: Response Model"),
        ("004-03-get-api-v1-patients-patient-id-200", "response", 200, "", "Retrieve Posted Patient: Response Model"),
        ("004-04-delete-api-v1-patients-patient-id-200", "response", 200, "", "Delete Patient: Response Model"),
        ("004-05-get-api-v1-patients-200", "response", 200, "", "List Patients: Response Model"),
    ]
    assert [len(documented_examples(seed)) for seed in ("002", "003", "004")] == [7, 6, 6]
    assert [(d.seed, d.index, d.method, d.path) for d in documented_examples("002")][3:] == [
        ("002", 3, "GET", "patients/patients/<str:unique_id>/"),
        ("002", 4, "PUT", "patients/patients/<str:unique_id>/"),
        ("002", 5, "PUT", "patients/patients/<str:unique_id>/"),
        ("002", 6, "DELETE", "patients/patients/<str:unique_id>/"),
    ]
    assert {d.path for d in documented_examples("004")} == {"api/v1/patients", "api/v1/patients/{patient_id}"}
    with pytest.raises(ValueError):
        documented_examples("000")


@needs_documents
def test_every_json_value_of_the_documents_is_extracted():
    """A count that does not use the parsers: the JSON values each document opens (by its own layout)."""
    text = {seed: seed_text(seed) for seed in ("002", "003", "004")}
    opened = {
        "002": sum(line.startswith(("{", "[ {")) for line in text["002"].splitlines()),
        "003": sum(line.startswith("{") or " HTTP/1.1 " in line and "{" in line for line in text["003"].splitlines()),
        "004": sum(
            line in ("{", "\u201cdelete successful\u201d") or line.startswith("-d '{")
            for line in text["004"].splitlines()
        ),
    }
    assert opened == {"002": 6, "003": 6, "004": 6}
    for seed, count in opened.items():
        assert sum(d.body is not None for d in documented_examples(seed)) == count


def test_profiles_examples():
    found = examples("002")
    listed = found["002-00-get-patients-patients-200"].body
    created = found["002-02-post-patients-patients-201"].body
    detail = found["002-03-get-patients-patients-str-unique-id-200"].body
    updated = found["002-05-put-patients-patients-str-unique-id-200"].body
    assert isinstance(listed, list) and len(listed) == 1
    assert [record["unique_id"] for record in (listed[0], created, detail, updated)] == ["pat123"] * 4
    assert listed[0] == created == detail
    assert detail["patient_profile"] == {
        "unique_id": "prof123",
        "email": "user@example.com",
        "first_name": "John",
        "last_name": "Doe",
    }
    assert detail["patient_hospital"] == [{"unique_id": "hos123", "hospital_name": "General Hospital"}]
    assert detail["patient_doctor"] == [{"unique_id": "doc123", "doctor_first_name": "Dr. Smith"}]
    assert (detail["patient_latitude"], detail["last_updated"]) == ("12.345678", "2023-01-01T12:00:00Z")
    assert updated["patient_mobile_number"] == "+987654321"
    assert (updated["patient_race"], updated["patient_province"]) == ("African", "New Province")
    assert updated["patient_hospital"] == [{"unique_id": "hos789", "hospital_name": "New Hospital"}]
    assert updated["patient_doctor"] == [{"unique_id": "doc456", "doctor_first_name": "Dr. Adams"}]
    create = found["002-01-post-patients-patients-request"].body
    assert (create["hospital_ids"], create["doctor_ids"]) == (["hos123", "hos456"], ["doc123"])
    assert "unique_id" not in create and create["patient_profile"]["unique_id"] == "prof123"
    assert found["002-04-put-patients-patients-str-unique-id-request"].body == {
        "patient_mobile_number": "+987654321",
        "patient_race": "African",
        "patient_province": "New Province",
        "hospital_ids": ["hos789"],
        "doctor_ids": ["doc456"],
    }
    assert found["002-06-delete-patients-patients-str-unique-id-204"].body is None


def test_gauges_examples():
    found = examples("003")
    patient = found["003-01-get-v1-patients-id-200"].body
    assert patient == {
        "id": 1049,
        "first_name": "John",
        "last_name": "Doe",
        "date_of_birth": "2010-05-15",
        "age": 13,
        "gender": "male",
        "phone": "+1-555-123-4567",
        "email": EMAIL,
        "address": {"street": "123 Main St", "city": "Anytown", "state": "CA", "zip_code": "12345"},
        "active": True,
        "created_at": "2023-10-20T10:00:00.000Z",
        "updated_at": "2023-10-20T15:30:00.000Z",
    }
    reading = found["003-02-get-v1-patients-patient-id-gauges-200"].body
    assert (reading["id"], reading["patient_id"], reading["gauge_type"], reading["value"]) == (456, 1049, "mood", 7)
    assert (reading["scale_min"], reading["scale_max"], reading["notes"]) == (1, 10, "Feeling better today")
    assert reading["recorded_at"] == "2023-10-27T14:30:00.000Z"
    invalid = found["003-03-post-v1-patients-422"].body
    assert invalid == {
        "errors": {
            "first_name": ["can't be blank"],
            "last_name": ["can't be blank"],
            "date_of_birth": ["can't be blank", "must be a valid date"],
        }
    }
    assert found["003-04-get-v1-patients-patient-id-gauges-404"].body == {"errors": "Patient not found"}
    assert found["003-05-get-v1-patients-patient-id-gauges-403"].body == {
        "errors": "You are not authorized to access this patient"
    }
    create = found["003-00-post-v1-patients-request"].body
    assert create == {
        "patient": {
            "first_name": "John",
            "last_name": "Doe",
            "date_of_birth": "2010-05-15",
            "gender": "male",
            "phone": "+1-555-123-4567",
            "email": EMAIL,
            "address": {"street": "123 Main St", "city": "Anytown", "state": "CA", "zip_code": "12345"},
        }
    }


def test_particle_examples():
    found = examples("004")
    demographics = {
        "given_name": "Henrick",
        "family_name": "Testingson",
        "date_of_birth": "1957-03-23",
        "gender": "MALE",
        "postal_code": "12345",
        "patient_id": "examplepatientid1",
        "ssn": "123-45-6789",
        "email": EMAIL,
        "telephone": "123-456-7890",
        "address_lines": ["123 Mulberry Court"],
        "address_city": "Roxbury",
        "address_state": "MA",
    }
    detail = found["004-03-get-api-v1-patients-patient-id-200"].body
    assert (detail["ssn"], detail["address_lines"]) == ("123-45-6789", ["123 Mulberry Court"])
    assert detail == found["004-02-post-api-v1-patients-200"].body == demographics
    assert found["004-00-post-api-v1-patients-request"].body == demographics  # its " - Required" notes dropped
    assert found["004-01-post-api-v1-patients-request"].body == {**demographics, "purpose_of_use": "TREATMENT"}
    assert found["004-04-delete-api-v1-patients-patient-id-200"].body == "delete successful"
    listed = found["004-05-get-api-v1-patients-200"].body
    assert listed == {
        "continuation_token": "token",
        "patients": ["examplePatient1", "examplePatient2", "examplePatient3"],
    }


def test_prescrypto_responses_are_still_read():
    assert [len(documented_responses(seed)) for seed in ("000", "001")] == [10, 9]


# Playback -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("c", CASSETTE_LIST, ids=[c.name for c in CASSETTE_LIST])
def test_cassette_plays_back_the_documented_response(c: Cassette):
    with replay.use_cassette(c.file) as played, httpx.Client() as client:
        response = client.request(c.method, c.url)
    assert played.play_count == 1
    assert response.status_code == c.example.status == c.status
    if c.body is None:
        assert response.content == b""
        return
    assert response.headers["content-type"] == "application/json"
    assert response.json() == c.body
    doc = c.example
    if c.url.endswith(("?page=1&page_size=100", "/gauges?start_date=2023-10-01")) and c.status == 200:
        assert response.json() == [doc.body]  # the gauges lists: one documented record, as a bare list
    else:
        assert response.json() == doc.body
