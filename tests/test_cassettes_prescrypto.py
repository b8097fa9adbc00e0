"""Every documented Prescrypto response (seeds 000 and 001), replayed through vcrpy cassettes.

Success bodies go through the real client, body parser and mapping and must land on the exact canonical
values the mapping tests spell out; error bodies must raise the right error with the documented message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import vcr

from canonical.errors import AuthError, FetchError
from connectors import prescrypto
from connectors.client import RetryPolicy, SourceClient, error_message
from connectors.stream import read_pages
from mappings.prescrypto import to_medic, to_patient
from tests.cassettes.build import BASE, all_documented, render, request_url
from tests.seed_examples import DocumentedResponse
from tests.test_mapping_prescrypto import CTX, MEDIC_CASES, PATIENT_CASES

CASSETTES = Path(__file__).parent / "cassettes"
EXPECTED = {
    to_patient: {case.id: case.values[1] for case in PATIENT_CASES},
    to_medic: {case.id: case.values[1] for case in MEDIC_CASES},
}
replay = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="none",
    match_on=["method", "scheme", "host", "port", "path", "query"],
    filter_headers=["authorization"],
)

# The documented successes, by cassette, and the mapping cases they must equal.
SUCCESSES: dict[str, tuple[Any, list[str]]] = {
    "000-00-get-api-v2-patient-200": (to_patient, ["listed-george", "listed-homero"]),
    "000-02-get-api-v2-patient-patient-uid-200": (to_patient, ["singular-george"]),
    "000-04-post-api-v2-patient-201": (to_patient, ["created"]),
    "000-07-patch-api-v2-patient-patient-id-202": (to_patient, ["updated"]),
    "001-00-get-api-v2-medics-200": (to_medic, ["listed-blackwell", "listed-montoya"]),
    "001-02-get-api-v2-medics-medic-id-200": (to_medic, ["detail-blackwell"]),
    "001-04-post-api-v2-medics-201": (to_medic, ["created"]),
    "001-07-patch-api-v2-medics-medic-id-202": (to_medic, ["updated"]),
}
# The documented errors and the message each must surface.
ERRORS = {
    "000-01-get-api-v2-patient-401": "Invalid Token",
    "000-03-get-api-v2-patient-patient-uid-401": "Invalid Token",
    "000-05-post-api-v2-patient-400": "field_name: This field is required.",
    "000-06-post-api-v2-patient-401": "Invalid Token",
    "000-08-patch-api-v2-patient-patient-id-400": "field_name: This field is required",
    "000-09-patch-api-v2-patient-patient-id-401": "Invalid Token",
    "001-01-get-api-v2-medics-401": "Invalid Token",
    "001-03-get-api-v2-medics-medic-id-404": "Not found",
    "001-05-post-api-v2-medics-400": "You do not have sufficient permissions to assign this hospital",  # no id
    "001-06-post-api-v2-medics-400": "",  # a bare list that echoes the submitted email: never repeated
    "001-08-patch-api-v2-medics-medic-id-404": "Not found",
}
DOCS = {doc.name: doc for doc in all_documented()}
LIST_STREAMS = {"000-00-get-api-v2-patient-200": prescrypto.PATIENTS, "001-00-get-api-v2-medics-200": prescrypto.MEDICS}


def client() -> SourceClient:
    return SourceClient(
        "prescrypto",
        BASE,
        {prescrypto.AUTH_HEADER: f"{prescrypto.AUTH_SCHEME} not-a-real-token"},
        retry=RetryPolicy(attempts=1),
    )


def test_every_documented_response_has_a_cassette_and_an_expectation():
    assert set(DOCS) == set(SUCCESSES) | set(ERRORS)
    assert len(DOCS) == 19
    for name, doc in DOCS.items():
        assert (CASSETTES / f"{name}.yaml").read_text(encoding="utf-8") == render(doc), (
            f"{name}.yaml differs from the seed: run python -m tests.cassettes.build"
        )


def fetch(doc: DocumentedResponse) -> list[dict[str, Any]]:
    """The documented body, through the connector path the product uses for it."""
    url = request_url(doc)
    if doc.name in LIST_STREAMS:
        stream = LIST_STREAMS[doc.name]
        with client() as c:
            params, page = next(read_pages(c, stream, dict(stream.params)))
        return page.records
    if doc.method == "GET":
        with client() as c:
            return [c.get_json(url, None, "detail")]
    with httpx.Client() as plain:  # the product never writes to a source; the body is what matters
        response = plain.request(doc.method, url)
    assert response.status_code == doc.status
    return [response.json()]


@pytest.mark.parametrize("name", sorted(SUCCESSES))
def test_documented_success_maps_exactly(name: str):
    doc = DOCS[name]
    mapping, cases = SUCCESSES[name]
    with replay.use_cassette(f"{name}.yaml"):
        records = fetch(doc)
    assert [mapping(record, CTX) for record in records] == [EXPECTED[mapping][case] for case in cases]


def test_documented_medic_envelope_reports_count_and_next():
    with replay.use_cassette("001-00-get-api-v2-medics-200.yaml"), client() as c:
        params, page = next(read_pages(c, prescrypto.MEDICS, dict(prescrypto.MEDICS.params)))
    assert (page.total, page.has_more) == (2, True)
    # The next page starts at the last medic seen (id 11), so that a listing that shifted shows it.
    assert prescrypto.MEDICS.paginator.next(params, page) == {"limit": 100, "offset": 1, "__anchor__": "11"}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_documented_error_is_reported(name: str):
    doc = DOCS[name]
    with replay.use_cassette(f"{name}.yaml"):
        if doc.method != "GET":
            with httpx.Client() as plain:
                response = plain.request(doc.method, request_url(doc))
            assert response.status_code == doc.status
            assert error_message(response) == ERRORS[name]
            return
        with client() as c, pytest.raises((AuthError, FetchError)) as caught:
            c.get_json(request_url(doc), None, "patients")
    if doc.status == 401:
        assert isinstance(caught.value, AuthError)
        assert str(caught.value) == "prescrypto/patients: HTTP 401: the source refused the credentials (Invalid Token)"
    else:
        assert str(caught.value) == f"prescrypto/patients: HTTP {doc.status}: {ERRORS[name]}"
