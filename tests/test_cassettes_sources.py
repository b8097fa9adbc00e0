"""Every documented response of the profiles, gauges and Particle documents (seeds 002-004), replayed from
vcrpy cassettes through the real client, the connector's reader (listing, fan-out or detail fetch) and the
mapping, to the exact canonical values of tests.test_mapping_sources; error bodies to the right error."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest
import vcr

from canonical.errors import AuthError, FetchError
from connectors import gauges, particle, profiles
from connectors.client import RetryPolicy, SourceClient, error_message
from connectors.fetch import fetch_all
from connectors.stream import read_pages
from mappings import gauges as gauges_mapping
from mappings import particle as particle_mapping
from mappings import profiles as profiles_mapping
from pipeline.sync.batches import fan_out_batches
from tests.cassettes.build import BASES, Cassette, all_cassettes
from tests.test_mapping_sources import (
    GAUGES_JOHN,
    GAUGES_MOOD,
    PARTICLE_HENRICK,
    PROFILE_JOHN,
    PROFILE_JOHN_UPDATED,
    US,
)

CASSETTES = {c.name: c for c in all_cassettes() if c.example.seed in ("002", "003", "004")}
replay = vcr.VCR(
    cassette_library_dir=str(Path(__file__).parent / "cassettes"),
    record_mode="none",
    match_on=["method", "scheme", "host", "port", "path", "query"],
)


def client(seed: str, name: str = "src") -> SourceClient:
    return SourceClient(name, BASES[seed], {"Authorization": "not-a-real-token"}, retry=RetryPolicy(attempts=1))


def plain(c: Cassette) -> httpx.Response:
    """A write the product never makes (it only reads sources): the documented body is what matters."""
    with httpx.Client() as http:
        return http.request(c.method, c.url)


def profiles_listing(c: Cassette) -> list[Any]:
    with client("002") as source:
        params, page = next(read_pages(source, profiles.PATIENTS, dict(profiles.PATIENTS.params)))
        assert profiles.PATIENTS.paginator.next(params, page) is None  # a bare list is the whole listing
    return [profiles_mapping.to_patient(record, US) for record in page.records]


def detail(seed: str, mapping: Any) -> Any:
    def fetch(c: Cassette) -> list[Any]:
        with client(seed) as source:
            return [mapping(source.get_json(c.url, None, "patients"), US)]

    return fetch


def written(mapping: Any) -> Any:
    def fetch(c: Cassette) -> list[Any]:
        response = plain(c)
        assert response.status_code == c.status
        return [mapping(response.json(), US)]

    return fetch


def gauges_listing(c: Cassette) -> list[Any]:
    stream = gauges.PATIENTS
    with client("003") as source:
        params, page = next(read_pages(source, stream, dict(stream.params)))
        assert stream.paginator.next(params, page) is None  # one record on a page of 100: the last page
    return [gauges_mapping.to_patient(record, US) for record in page.records]


def gauges_readings(c: Cassette) -> list[Any]:
    """Patient 1049's latest stored reading is of 2023-10-02: with the one-day margin the fan-out asks for
    start_date=2023-10-01, as the document does."""
    with client("003") as source:
        batches = list(
            fan_out_batches(source, gauges.GAUGES, [["1049"]], lambda keys: {"1049": dt.date(2023, 10, 2)}, 4)
        )
    assert [b.checkpoint for b in batches] == [{"after": "1049"}, {}]
    return [gauges_mapping.to_gauge(record, US) for record in batches[0].records]


def particle_listing(c: Cassette) -> list[Any]:
    stream = particle.PATIENTS
    with client("004") as source:
        params, page = next(read_pages(source, stream, dict(stream.params)))
    assert stream.paginator.next(params, page) == {"continuation_token": "token"}
    assert stream.paginator.checkpoint(params, page) == {"continuation_token": "token"}
    return page.records


def particle_detail(c: Cassette) -> list[Any]:
    with client("004") as source:
        (body,) = fetch_all(source, [("/api/v1/patients/examplepatientid1", None)], "patients", 8)
    return [particle_mapping.to_patient(body, US)]


def raw_body(c: Cassette) -> list[Any]:
    response = plain(c)
    assert response.status_code == c.status
    return [response.json() if response.content else None]


SUCCESSES: dict[str, tuple[Any, list[Any]]] = {
    "002-00-get-patients-patients-200": (profiles_listing, [PROFILE_JOHN]),
    "002-02-post-patients-patients-201": (written(profiles_mapping.to_patient), [PROFILE_JOHN]),
    "002-03-get-patients-patients-str-unique-id-200": (detail("002", profiles_mapping.to_patient), [PROFILE_JOHN]),
    "002-05-put-patients-patients-str-unique-id-200": (written(profiles_mapping.to_patient), [PROFILE_JOHN_UPDATED]),
    "002-06-delete-patients-patients-str-unique-id-204": (raw_body, [None]),
    "003-01-get-v1-patients-200": (gauges_listing, [GAUGES_JOHN]),
    "003-01-get-v1-patients-id-200": (detail("003", gauges_mapping.to_patient), [GAUGES_JOHN]),
    "003-02-get-v1-patients-patient-id-gauges-200": (gauges_readings, [GAUGES_MOOD]),
    "004-02-post-api-v1-patients-200": (written(particle_mapping.to_patient), [PARTICLE_HENRICK]),
    "004-03-get-api-v1-patients-patient-id-200": (particle_detail, [PARTICLE_HENRICK]),
    "004-04-delete-api-v1-patients-patient-id-200": (raw_body, ["delete successful"]),
    "004-05-get-api-v1-patients-200": (particle_listing, ["examplePatient1", "examplePatient2", "examplePatient3"]),
}
ERRORS = {
    "003-03-post-v1-patients-422": "first_name: can't be blank; last_name: can't be blank; "
    "date_of_birth: can't be blank, must be a valid date",
    "003-04-get-v1-patients-patient-id-gauges-404": "Patient not found",
    "003-05-get-v1-patients-patient-id-gauges-403": "You are not authorized to access this patient",
}


def test_every_documented_response_has_an_expectation():
    assert set(CASSETTES) == set(SUCCESSES) | set(ERRORS)


@pytest.mark.parametrize("name", sorted(SUCCESSES))
def test_documented_success_maps_exactly(name: str):
    fetch, expected = SUCCESSES[name]
    with replay.use_cassette(CASSETTES[name].file):
        assert fetch(CASSETTES[name]) == expected


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_documented_error_is_reported(name: str):
    c = CASSETTES[name]
    with replay.use_cassette(c.file):
        if c.method != "GET":
            response = plain(c)
            assert (response.status_code, error_message(response)) == (c.status, ERRORS[name])
            return
        with client("003", "gauges") as source, pytest.raises((AuthError, FetchError)) as caught:
            source.get_json(c.url, None, "gauges")
    if c.status == 403:
        assert isinstance(caught.value, AuthError)
        assert str(caught.value) == f"gauges/gauges: HTTP 403: the source refused the credentials ({ERRORS[name]})"
    else:
        assert isinstance(caught.value, FetchError) and caught.value.status == c.status
        assert str(caught.value) == f"gauges/gauges: HTTP {c.status}: {ERRORS[name]}"


def test_a_patient_gone_before_its_readings_are_fetched_is_skipped():
    with replay.use_cassette(CASSETTES["003-04-get-v1-patients-patient-id-gauges-404"].file), client("003") as source:
        batches = list(
            fan_out_batches(source, gauges.GAUGES, [["1049"]], lambda keys: {"1049": dt.date(2023, 10, 2)}, 1)
        )
    assert [(b.checkpoint, b.records, b.partial) for b in batches] == [({"after": "1049"}, [], True), ({}, [], False)]
