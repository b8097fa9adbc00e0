"""Profiles, gauges and Particle mappings: every documented example (seeds 002-004) -> exact canonical records,
quarantine reasons naming the field, the SSN kept out of storage, and a fuzz proof that nothing but RecordError
ever escapes."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import doctest
import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canonical.errors import RecordError
from canonical.model import (
    Entity,
    EntityType,
    Link,
    Mapped,
    MedicRecord,
    ObservationRecord,
    OrganizationRecord,
    PatientRecord,
    Sex,
    SourceId,
)
from canonical.privacy import REDACTED
from mappings import gauges, particle, profiles
from mappings.context import MappingContext
from pipeline.sync.redaction import redact
from tests.seed_examples import documented_examples
from tests.test_mapping_prescrypto import JSON_VALUES

US = MappingContext(today=dt.date(2026, 1, 1), phone_region="US", ssn_key=b"documented-example-key")


def _documented(seed: str, section: str) -> Any:
    (body,) = [d.body for d in documented_examples(seed) if d.kind == "response" and d.section.startswith(section)]
    return body


PROFILE_LISTED = _documented("002", "Get Patient List")[0]
PROFILE_CREATED = _documented("002", "Create a Patient")
PROFILE_DETAIL = _documented("002", "Get a Patient")
PROFILE_UPDATED = _documented("002", "Update a Patient")
GAUGES_PATIENT = _documented("003", "Response Format: Patient Response")
GAUGES_READING = _documented("003", "Response Format: Patient Gauge Response")
PARTICLE_DETAIL = _documented("004", "Retrieve Posted Patient")
PARTICLE_CREATED = _documented("004", "Patient Create and Update")


def _ids(**ids: str) -> tuple[SourceId, ...]:
    return tuple(SourceId(id_type=k, id_value=v) for k, v in ids.items())


def _profiles_expected(mobile: str, race: str, province: str, hospital: tuple[str, str], doctor: tuple[str, str]):
    patient = PatientRecord(
        given_name="John",
        family_name="Doe",
        full_name="John Doe",
        birth_date=dt.date(1980, 1, 1),
        sex=Sex.male,
        email="patient@example.com",
        phone=mobile,  # "+1 23456789" is no valid number: kept as the source wrote it
        address_line="123 Street Name, Apt 101",
        city="Sample Town",
        state=province,
        postal_code="12345",
        country="Sample Country",
        title="Mr.",
        initials="J",
        race=race,
        latitude=12.345678,
        longitude=-12.345678,
    )
    return Mapped(
        entities=(
            Entity(
                type=EntityType.patient,
                key="pat123",
                record=patient,
                ids=_ids(unique_id="pat123", profile_unique_id="prof123"),
            ),
            Entity(
                type=EntityType.medic,
                key=doctor[0],
                record=MedicRecord(full_name=doctor[1]),
                ids=_ids(unique_id=doctor[0]),
            ),
            Entity(
                type=EntityType.organization,
                key=hospital[0],
                record=OrganizationRecord(name=hospital[1]),
                ids=_ids(unique_id=hospital[0]),
            ),
        ),
        links=(
            Link(patient_key="pat123", other_type=EntityType.medic, other_key=doctor[0]),
            Link(patient_key="pat123", other_type=EntityType.organization, other_key=hospital[0]),
        ),
    )


PROFILE_JOHN = _profiles_expected(
    "+123456789", "Caucasian", "Sample Province", ("hos123", "General Hospital"), ("doc123", "Smith")
)
PROFILE_JOHN_UPDATED = _profiles_expected(
    "+987654321", "African", "New Province", ("hos789", "New Hospital"), ("doc456", "Adams")
)

GAUGES_JOHN = Mapped(
    entities=(
        Entity(
            type=EntityType.patient,
            key="1049",
            record=PatientRecord(
                given_name="John",
                family_name="Doe",
                full_name="John Doe",
                birth_date=dt.date(2010, 5, 15),
                sex=Sex.male,
                email=None,  # the document prints "[email protected]": no address
                phone="+1-555-123-4567",  # 555 is no assigned area code: kept as written
                address_line="123 Main St",
                city="Anytown",
                state="CA",
                postal_code="12345",
                active=True,
            ),
            ids=_ids(id="1049"),
        ),
    )
)

GAUGES_MOOD = Mapped(
    entities=(
        Entity(
            type=EntityType.observation,
            key="456",
            record=ObservationRecord(
                patient_key="1049",
                code="mood",
                value=7.0,
                scale_min=1.0,
                scale_max=10.0,
                recorded_at=dt.datetime(2023, 10, 27, 14, 30, tzinfo=dt.UTC),
                notes="Feeling better today",
            ),
            ids=_ids(id="456"),
        ),
    )
)

PARTICLE_HENRICK = Mapped(
    entities=(
        Entity(
            type=EntityType.patient,
            key="examplepatientid1",
            record=PatientRecord(
                given_name="Henrick",
                family_name="Testingson",
                full_name="Henrick Testingson",
                birth_date=dt.date(1957, 3, 23),
                sex=Sex.male,
                email=None,
                phone="123-456-7890",  # area code 123 does not exist: kept as written
                address_line="123 Mulberry Court",
                city="Roxbury",
                state="MA",
                postal_code="12345",
                ssn_last4="6789",
                # HMAC-SHA256 of "123456789" under b"documented-example-key" (US.ssn_key), worked out by hand
                ssn_hash=hmac.new(b"documented-example-key", b"123456789", hashlib.sha256).hexdigest(),
            ),
            ids=_ids(patient_id="examplepatientid1"),
        ),
    )
)


@pytest.mark.parametrize(
    ("mapping", "raw", "expected"),
    [
        pytest.param(profiles.to_patient, PROFILE_LISTED, PROFILE_JOHN, id="profiles-listed"),
        pytest.param(profiles.to_patient, PROFILE_CREATED, PROFILE_JOHN, id="profiles-created"),
        pytest.param(profiles.to_patient, PROFILE_DETAIL, PROFILE_JOHN, id="profiles-detail"),
        pytest.param(profiles.to_patient, PROFILE_UPDATED, PROFILE_JOHN_UPDATED, id="profiles-updated"),
        pytest.param(gauges.to_patient, GAUGES_PATIENT, GAUGES_JOHN, id="gauges-patient"),
        pytest.param(gauges.to_gauge, GAUGES_READING, GAUGES_MOOD, id="gauges-reading"),
        pytest.param(particle.to_patient, PARTICLE_DETAIL, PARTICLE_HENRICK, id="particle-detail"),
        pytest.param(particle.to_patient, PARTICLE_CREATED, PARTICLE_HENRICK, id="particle-created"),
    ],
)
def test_documented_examples(mapping: Any, raw: dict[str, Any], expected: Mapped) -> None:
    assert mapping(raw, US) == expected


def test_particle_ssn_is_scrubbed_to_a_keyed_hash_and_last_four() -> None:
    stored = particle.scrub(PARTICLE_DETAIL, US)
    assert "ssn" not in stored and "123-45-6789" not in repr(stored) and "123456789" not in repr(stored)
    assert stored["ssn_last4"] == "6789"
    assert stored["ssn_hmac"] == particle.ssn_hmac("123456789", b"documented-example-key")
    assert stored["ssn_hmac"] != particle.ssn_hmac("123456789", b"another-key-entirely")
    # The same SSN written either way hashes the same, so records match across spellings.
    assert particle.scrub({**PARTICLE_DETAIL, "ssn": "123456789"}, US) == stored
    without_key = particle.scrub(PARTICLE_DETAIL, MappingContext(today=US.today))
    assert "ssn_hmac" not in without_key and without_key["ssn_last4"] == "6789"
    assert PARTICLE_DETAIL["ssn"] == "123-45-6789"  # the input is untouched


@pytest.mark.parametrize(
    "lines, address_line",
    [(["1 Main St", "Apt 2"], "1 Main St, Apt 2"), ("1 Main St", "1 Main St"), (None, None), ([], None)],
)
def test_particle_address_lines_are_a_list_a_single_string_or_absent(lines: Any, address_line: str | None) -> None:
    record = particle.to_patient({**PARTICLE_DETAIL, "address_lines": lines}, US).entities[0].record
    assert record.address_line == address_line  # type: ignore[union-attr]


def test_profile_links_follow_the_record() -> None:
    raw = {
        **PROFILE_LISTED,
        "patient_doctor": [],
        "patient_hospital": [
            {"unique_id": "hos1", "hospital_name": "Uno"},
            {"unique_id": "hos2", "hospital_name": None},
        ],
    }
    mapped = profiles.to_patient(raw, US)
    assert [(link.other_type, link.other_key) for link in mapped.links] == [
        (EntityType.organization, "hos1"),
        (EntityType.organization, "hos2"),
    ]
    assert mapped.entities[2].record == OrganizationRecord(name=None)


@pytest.mark.parametrize(
    ("shown", "full_name"),
    [("Dr. Smith", "Smith"), ("dra  Ana Ruiz", "Ana Ruiz"), ("Smith", "Smith"), ("Dr.", "Dr."), ("", None)],
)
def test_doctor_names_lose_the_honorific(shown: str, full_name: str | None) -> None:
    raw = {**PROFILE_LISTED, "patient_doctor": [{"unique_id": "d", "doctor_first_name": shown}]}
    doctor = profiles.to_patient(raw, US).entities[1].record
    assert isinstance(doctor, MedicRecord) and doctor.full_name == full_name


@pytest.mark.parametrize(
    ("mapping", "base", "changes", "field", "problem"),
    [
        (profiles.to_patient, PROFILE_LISTED, {"unique_id": ""}, "unique_id", "is missing or empty"),
        (
            profiles.to_patient,
            PROFILE_LISTED,
            {"patient_latitude": "91"},
            "patient_latitude",
            "outside -90..90 degrees",
        ),
        (profiles.to_patient, PROFILE_LISTED, {"patient_longitude": "east"}, "patient_longitude", "expected a number"),
        (
            profiles.to_patient,
            PROFILE_LISTED,
            {"patient_date_of_birth": "1980-02-30"},
            "patient_date_of_birth",
            "not a valid date (no such day)",
        ),
        (
            profiles.to_patient,
            PROFILE_LISTED,
            {"patient_doctor": [{"doctor_first_name": "Dr. X"}]},
            "patient_doctor[0].unique_id",
            "is missing or empty",
        ),
        (
            profiles.to_patient,
            PROFILE_LISTED,
            {"patient_hospital": "hos123"},
            "patient_hospital",
            "expected a list of objects",
        ),
        (
            profiles.to_patient,
            PROFILE_LISTED,
            {"patient_profile": ["prof123"]},
            "patient_profile",
            "expected an object",
        ),
        (gauges.to_patient, GAUGES_PATIENT, {"id": "10x"}, "id", "expected an integer id"),
        (gauges.to_patient, GAUGES_PATIENT, {"address": "123 Main St"}, "address", "expected an object"),
        (
            gauges.to_patient,
            GAUGES_PATIENT,
            {"date_of_birth": "2999-01-01"},
            "date_of_birth",
            "is in the future",
        ),
        (gauges.to_gauge, GAUGES_READING, {"value": 11}, "value", "is outside the scale 1..10"),
        (gauges.to_gauge, GAUGES_READING, {"value": True}, "value", "expected a number, got a boolean"),
        (gauges.to_gauge, GAUGES_READING, {"scale_min": 20}, "scale_min", "is above scale_max"),
        (gauges.to_gauge, GAUGES_READING, {"patient_id": None}, "patient_id", "is missing or empty"),
        (gauges.to_gauge, GAUGES_READING, {"gauge_type": " "}, "gauge_type", "is missing or empty"),
        (
            gauges.to_gauge,
            GAUGES_READING,
            {"recorded_at": "yesterday"},
            "recorded_at",
            "not an ISO 8601 date-time",
        ),
        (particle.to_patient, PARTICLE_DETAIL, {"patient_id": None}, "patient_id", "is missing or empty"),
        (
            particle.to_patient,
            PARTICLE_DETAIL,
            {"ssn": "123-45-678"},
            "ssn",
            "not a social security number (expected nine digits: three, two and four, or run together)",
        ),
        (
            particle.to_patient,
            PARTICLE_DETAIL,
            {"address_lines": {"0": "x"}},
            "address_lines",
            "expected a list of lines",
        ),
    ],
)
def test_quarantine_reasons_name_the_field(mapping: Any, base: dict, changes: dict, field: str, problem: str) -> None:
    with pytest.raises(RecordError) as caught:
        mapping({**base, **changes}, US)
    assert (caught.value.field, caught.value.problem) == (field, problem)


def test_reasons_never_quote_an_ssn_or_a_name() -> None:
    with pytest.raises(RecordError) as caught:
        particle.to_patient({**PARTICLE_DETAIL, "ssn": "123-45-67890"}, US)
    assert "67890" not in str(caught.value)
    with pytest.raises(RecordError) as caught:
        profiles.to_patient({**PROFILE_LISTED, "patient_first_name": {"name": "John"}}, US)
    assert "John" not in str(caught.value)


def test_gauge_types_beyond_the_documented_ones_are_kept() -> None:
    reading = (
        gauges.to_gauge({**GAUGES_READING, "gauge_type": "blood_glucose", "scale_max": None}, US).entities[0].record
    )
    assert isinstance(reading, ObservationRecord) and (reading.code, reading.scale_max) == ("blood_glucose", None)


def test_recorded_at_with_an_offset_is_stored_in_utc() -> None:
    reading = gauges.to_gauge({**GAUGES_READING, "recorded_at": "2023-10-27T23:30:00-05:00"}, US).entities[0].record
    assert isinstance(reading, ObservationRecord)
    assert reading.recorded_at == dt.datetime(2023, 10, 28, 4, 30, tzinfo=dt.UTC)


def test_mappings_do_not_mutate_their_input() -> None:
    for mapping, raw in [
        (profiles.to_patient, PROFILE_LISTED),
        (gauges.to_patient, GAUGES_PATIENT),
        (gauges.to_gauge, GAUGES_READING),
        (particle.to_patient, PARTICLE_DETAIL),
        (particle.scrub, PARTICLE_DETAIL),
    ]:
        before = copy.deepcopy(raw)
        mapping(raw, US)
        assert raw == before


def test_docstring_examples() -> None:
    for module in (profiles, gauges, particle):
        assert doctest.testmod(module).failed == 0


_MAPPINGS = [profiles.to_patient, gauges.to_patient, gauges.to_gauge, particle.to_patient]
_EXAMPLES = [PROFILE_LISTED, PROFILE_UPDATED, GAUGES_PATIENT, GAUGES_READING, PARTICLE_DETAIL]


def _maps_or_record_error(raw: Any) -> None:
    for mapping in _MAPPINGS:
        try:
            mapped = mapping(raw, US)
        except RecordError as exc:
            assert exc.field
            continue
        assert all(entity.key for entity in mapped.entities)
    stored = particle.scrub(raw, US)
    if isinstance(stored, dict) and "ssn" in stored:  # an SSN it cannot read: the record is refused, and the
        with pytest.raises(RecordError):  # value never stored
            particle.to_patient(raw, US)
        assert redact(stored).payload["ssn"] == REDACTED


@settings(max_examples=300, deadline=None)
@given(
    raw=st.builds(
        lambda example, changes, drop: {k: v for k, v in {**example, **changes}.items() if k not in drop},
        st.sampled_from(_EXAMPLES),
        st.dictionaries(
            st.sampled_from(sorted({k for e in _EXAMPLES for k in e})), JSON_VALUES, min_size=1, max_size=3
        ),
        st.sets(st.sampled_from(sorted({k for e in _EXAMPLES for k in e})), max_size=2),
    )
)
def test_fuzz_documented_example_fields(raw: dict[str, Any]) -> None:
    _maps_or_record_error(raw)


@settings(max_examples=200, deadline=None)
@given(raw=JSON_VALUES)
def test_fuzz_any_json_value(raw: Any) -> None:
    _maps_or_record_error(raw)


@pytest.mark.parametrize(
    ("kind", "stream", "raw"),
    [
        # its documented phone, +123456789, is SSN-shaped: stored masked (test_quarantine_retry covers it)
        ("profiles", "patients", {**PROFILE_DETAIL, "patient_mobile_number": "+52 55 1234 5678"}),
        ("gauges", "patients", GAUGES_PATIENT),
        ("gauges", "gauges", GAUGES_READING),
        ("particle", "patients", PARTICLE_DETAIL),
        ("particle", "patients", {**PARTICLE_DETAIL, "ssn": "123-45-6789"}),
        ("particle", "patients", {**PARTICLE_DETAIL, "ssn": "12-34"}),  # refused, stored and mapped again
    ],
)
def test_a_stored_payload_maps_as_the_record_it_came_from(kind, stream, raw):
    """`quarantine retry` maps what was stored. Where the stored form still shows all a sync judged
    (``judged_again``), the same canonical records must come out, but for SSN evidence, which a stored form
    never gives; an unreadable SSN is stored redacted, so that record is not judged again."""
    from pipeline.kinds import KINDS
    from pipeline.sync.prepare import Prepared, prepare, stored_digests
    from pipeline.sync.retry import judged_again

    spec = KINDS[kind].streams[stream]
    prepared = prepare(raw, spec, US)
    assert isinstance(prepared, Prepared)
    stored = dataclasses.replace(US, stored=True)
    again = prepare(prepared.stored, spec, stored)  # what retry does first: a stored form stays as it is
    assert isinstance(again, Prepared) and again.stored == prepared.stored
    assert prepared.digest in stored_digests(again.stored)  # what `quarantine retry` finds stale by
    assert "ssn" not in prepared.stored or prepared.stored["ssn"] == "[redacted]"
    if raw.get("ssn") == "12-34":
        assert not judged_again(again.key, again.stored, "ssn: not a social security number", spec.stream.key)
        return
    assert judged_again(again.key, again.stored, "record: the mapping failed (ValueError)", spec.stream.key)
    expected = spec.mapping(raw, US)
    without_ssn = [
        e.model_copy(update={"record": e.record.model_copy(update={"ssn_last4": None, "ssn_hash": None})})
        if isinstance(e.record, PatientRecord)
        else e
        for e in expected.entities
    ]
    assert spec.mapping(again.raw, stored) == expected.model_copy(update={"entities": tuple(without_ssn)})


def test_ssn_evidence_a_source_sends_under_our_names_is_never_taken():
    """Only scrub writes ssn_last4 and ssn_hmac: a source's own fields of those names could forge a match."""
    without = {k: v for k, v in PARTICLE_DETAIL.items() if k != "ssn"}
    forged = {**without, "ssn_last4": "4321", "ssn_hmac": "ab" * 32}
    assert particle.to_patient(forged, US).entities[0].record.ssn_last4 is None
    assert particle.to_patient(forged, US).entities[0].record.ssn_hash is None
    stored = particle.scrub(forged, US)
    assert "ssn_last4" not in stored and "ssn_hmac" not in stored
