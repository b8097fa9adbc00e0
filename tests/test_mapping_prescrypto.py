"""Prescrypto mapping: every documented example (seeds 000 and 001) -> exact canonical records, the quarantine
reasons, and a fuzz proof that nothing but RecordError ever escapes."""

from __future__ import annotations

import copy
import datetime as dt
import doctest
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canonical.errors import RecordError
from canonical.model import (
    Entity,
    EntityType,
    Mapped,
    MedicRecord,
    OrganizationRecord,
    PatientRecord,
    Sex,
    SourceId,
)
from mappings import normalize, prescrypto
from mappings.context import MappingContext
from mappings.prescrypto import to_medic, to_patient

CTX = MappingContext(today=dt.date(2026, 1, 1))

# --- seed 000: the patient objects, exactly as documented -------------------------------------------------

LISTED_GEORGE = {
    "id": 1,
    "name": "George Constanza",
    "email": "hola@prescrypto.com",
    "date_of_birth": "1990-06-01",
    "external_patient_file": "",
    "gender": "M",
    "curp": "",
    "phone": "",
    "address": "",
    "state": "",
    "zip_code": "",
    "location": "",
    "uid": "b5555-5555-5555-5555-55555555",
}
LISTED_HOMERO = {
    "id": 34,
    "name": "Homero Peréz",
    "email": "hola@prescrypto.com",
    "date_of_birth": "1990-08-10",
    "external_patient_file": "",
    "gender": "H",
    "curp": "",
    "phone": "",
    "address": "",
    "state": "",
    "zip_code": "",
    "location": "",
    "uid": "b4444-5555-5555-5555-55555555",
}
SINGULAR_GEORGE = {
    "id": 1,
    "name": "George Constanza",
    "email": "hola@prescrypto.com",
    "date_of_birth": "1990-06-01",
    "external_patient_file": "",
    "gender": "M",
    "curp": "",
    "phone": "",
    "address": "",
    "state": "",
    "zip_code": "",
    "location": "",
    "uid": "b5555-5555-5555-5555-55555555",
}
CREATED_PATIENT = {
    "id": 894,
    "name": "Algun Nombre",
    "email": "",
    "date_of_birth": "1994-06-01",
    "external_patient_file": "",
    "gender": "M",
    "curp": "",
    "phone": "",
    "address": "",
    "state": "",
    "zip_code": "",
    "location": "",
    "uid": "b5555-5555-5555-5555-55555555",
}
UPDATED_PATIENT = {
    "id": 1,
    "name": "Kosmo Kramer",
    "email": "",
    "date_of_birth": "1994-06-01",
    "external_patient_file": "",
    "gender": "M",
    "curp": "",
    "phone": "",
    "address": "",
    "state": "",
    "zip_code": "",
    "location": "",
    "uid": "b5555-5555-5555-5555-55555555",
}
PATIENT_EXAMPLES = [LISTED_GEORGE, LISTED_HOMERO, SINGULAR_GEORGE, CREATED_PATIENT, UPDATED_PATIENT]

# --- seed 001: the medic objects, exactly as documented ---------------------------------------------------

LISTED_BLACKWELL = {
    "id": 1,
    "name": "Elizabeth Blackwell",
    "email": "hola@prescrypto.com",
    "hospital": 7,
    "date_of_birth": "1821-02-03",
    "cedula_prof": "123123123",
    "specialty_no": "123123123",
    "specialty": "Medico Cirujano",
    "alma_mater": "Geneva College",
    "female": True,
    "is_active": True,
    "specialty_verified": False,
    "campaign": "",
    "is_admin_membership": True,
}
LISTED_MONTOYA = {
    "id": 11,
    "name": "Matilde Montoya",
    "email": "test@prescrypto.com",
    "hospital": 7,
    "date_of_birth": "1957-03-14",
    "cedula_prof": "123123123",
    "specialty_no": "123123123",
    "specialty": "Medico Cirujano",
    "alma_mater": " Escuela Nacional de Medicina",
    "female": False,
    "is_active": True,
    "specialty_verified": False,
    "campaign": "",
    "is_admin_membership": False,
}
DETAIL_BLACKWELL = {
    "id": 1,
    "name": "Elizabeth Blackwell",
    "email": "hola@prescrypto.com",
    "hospital": 7,
    "date_of_birth": "1821-02-03",
    "cedula_prof": "123123123",
    "specialty_no": "123123123",
    "specialty": "Medico Cirujano",
    "alma_mater": "Geneva College",
    "female": True,
    "is_active": True,
    "specialty_verified": False,
    "campaign": "",
    "is_admin_membership": True,
}
CREATED_MEDIC = {  # the vendor's own dummy token and password hash: the mapping must drop them
    "id": 1,
    "token": "eaeaeaeaeae123eaeaedummyToken",
    "name": "Algun Nombre",
    "password": "pbkdf2_sha256$150000$X1Very36lhLongZ9GnBAStringnI5KWOnrnVQ=",
    "email": "name@domain.com",
    "hospital": None,
    "date_of_birth": "1992-09-22",
    "cedula_prof": "123456789",
    "specialty_no": "",
    "specialty": "Medicina General",
    "alma_mater": "Universidad Nacional Autónoma de México",
    "female": False,
    "is_active": True,
    "specialty_verified": False,
    "campaign": "PalabraClaveAsociadaAUnaCampaña",
    "is_admin_membership": None,
}
UPDATED_MEDIC = {
    "id": 1,
    "name": "Daniel Hale Williams",
    "email": "hola@prescrypto.com",
    "hospital": 1,
    "date_of_birth": "1956-01-18",
    "cedula_prof": "123456789",
    "specialty_no": "",
    "specialty": "Medicina General",
    "alma_mater": "Chicago Medical College",
    "female": False,
    "is_active": True,
    "specialty_verified": False,
    "campaign": "",
    "is_admin_membership": None,
}
MEDIC_EXAMPLES = [LISTED_BLACKWELL, LISTED_MONTOYA, DETAIL_BLACKWELL, CREATED_MEDIC, UPDATED_MEDIC]


def _ids(*pairs: tuple[str, str]) -> tuple[SourceId, ...]:
    return tuple(SourceId(id_type=t, id_value=v) for t, v in pairs)


def _patient(key: str, record: PatientRecord, *ids: tuple[str, str]) -> Mapped:
    return Mapped(entities=(Entity(type=EntityType.patient, key=key, record=record, ids=_ids(*ids)),))


def _hospital(key: str) -> Entity:
    record = OrganizationRecord(name=None)
    return Entity(type=EntityType.organization, key=key, record=record, ids=_ids(("id", key)))


def _medic(key: str, record: MedicRecord) -> Entity:
    return Entity(type=EntityType.medic, key=key, record=record, ids=_ids(("id", key)))


GEORGE = _patient(
    "b5555-5555-5555-5555-55555555",
    PatientRecord(
        given_name="George",
        family_name="Constanza",
        full_name="George Constanza",
        birth_date=dt.date(1990, 6, 1),
        sex=Sex.male,
        email="hola@prescrypto.com",
        active=True,
    ),
    ("id", "1"),
    ("uid", "b5555-5555-5555-5555-55555555"),
)


PATIENT_CASES = [
    pytest.param(LISTED_GEORGE, GEORGE, id="listed-george"),
    pytest.param(
        LISTED_HOMERO,
        _patient(
            "b4444-5555-5555-5555-55555555",
            PatientRecord(
                given_name="Homero",
                family_name="Peréz",
                full_name="Homero Peréz",
                birth_date=dt.date(1990, 8, 10),
                sex=Sex.male,
                email="hola@prescrypto.com",
                active=True,
            ),
            ("id", "34"),
            ("uid", "b4444-5555-5555-5555-55555555"),
        ),
        id="listed-homero",
    ),
    pytest.param(SINGULAR_GEORGE, GEORGE, id="singular-george"),
    pytest.param(
        CREATED_PATIENT,
        _patient(
            "b5555-5555-5555-5555-55555555",
            PatientRecord(
                given_name="Algun",
                family_name="Nombre",
                full_name="Algun Nombre",
                birth_date=dt.date(1994, 6, 1),
                sex=Sex.male,
                active=True,
            ),
            ("id", "894"),
            ("uid", "b5555-5555-5555-5555-55555555"),
        ),
        id="created",
    ),
    pytest.param(
        UPDATED_PATIENT,
        _patient(
            "b5555-5555-5555-5555-55555555",
            PatientRecord(
                given_name="Kosmo",
                family_name="Kramer",
                full_name="Kosmo Kramer",
                birth_date=dt.date(1994, 6, 1),
                sex=Sex.male,
                active=True,
            ),
            ("id", "1"),
            ("uid", "b5555-5555-5555-5555-55555555"),
        ),
        id="updated",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), PATIENT_CASES)
def test_documented_patients(raw: dict[str, Any], expected: Mapped) -> None:
    assert to_patient(raw, CTX) == expected


def test_patient_with_every_field_filled() -> None:
    raw = {
        **LISTED_GEORGE,
        "name": "  Juan  de la Cruz   Pérez ",
        "email": " Juan@Example.MX ",
        "external_patient_file": " EXP-0042 ",
        "gender": "F",
        "curp": "boxw310820hnerxn09",
        "phone": "(55) 1234-5678",
        "address": "Av. Reforma 222",
        "state": "CDMX",
        "zip_code": "06600",
        "location": "Ciudad de México",
    }
    assert to_patient(raw, CTX) == _patient(
        "b5555-5555-5555-5555-55555555",
        PatientRecord(
            given_name="Juan",
            family_name="de la Cruz Pérez",
            full_name="Juan de la Cruz Pérez",
            birth_date=dt.date(1990, 6, 1),
            sex=Sex.female,
            email="juan@example.mx",
            phone="+525512345678",
            address_line="Av. Reforma 222",
            city="Ciudad de México",
            state="CDMX",
            postal_code="06600",
            curp="BOXW310820HNERXN09",
            active=True,
        ),
        ("id", "1"),
        ("uid", "b5555-5555-5555-5555-55555555"),
        ("external_patient_file", "EXP-0042"),
    )


BLACKWELL = Mapped(
    entities=(
        _hospital("7"),
        _medic(
            "1",
            MedicRecord(
                full_name="Elizabeth Blackwell",
                given_name="Elizabeth",
                family_name="Blackwell",
                email="hola@prescrypto.com",
                birth_date=dt.date(1821, 2, 3),
                sex=Sex.female,
                license_number="123123123",
                specialty="Medico Cirujano",
                active=True,
                organization_key="7",
            ),
        ),
    )
)


MEDIC_CASES = [
    pytest.param(LISTED_BLACKWELL, BLACKWELL, id="listed-blackwell"),
    pytest.param(
        LISTED_MONTOYA,
        Mapped(
            entities=(
                _hospital("7"),
                _medic(
                    "11",
                    MedicRecord(
                        full_name="Matilde Montoya",
                        given_name="Matilde",
                        family_name="Montoya",
                        email="test@prescrypto.com",
                        birth_date=dt.date(1957, 3, 14),
                        sex=Sex.male,  # the document says "female": false; the flag wins
                        license_number="123123123",
                        specialty="Medico Cirujano",
                        active=True,
                        organization_key="7",
                    ),
                ),
            )
        ),
        id="listed-montoya",
    ),
    pytest.param(DETAIL_BLACKWELL, BLACKWELL, id="detail-blackwell"),
    pytest.param(
        CREATED_MEDIC,
        Mapped(
            entities=(
                _medic(
                    "1",
                    MedicRecord(
                        full_name="Algun Nombre",
                        given_name="Algun",
                        family_name="Nombre",
                        email="name@domain.com",
                        birth_date=dt.date(1992, 9, 22),
                        sex=Sex.male,
                        license_number="123456789",
                        specialty="Medicina General",
                        active=True,
                    ),
                ),
            )
        ),
        id="created",
    ),
    pytest.param(
        UPDATED_MEDIC,
        Mapped(
            entities=(
                _hospital("1"),
                _medic(
                    "1",
                    MedicRecord(
                        full_name="Daniel Hale Williams",
                        given_name="Daniel",
                        family_name="Hale Williams",
                        email="hola@prescrypto.com",
                        birth_date=dt.date(1956, 1, 18),
                        sex=Sex.male,
                        license_number="123456789",
                        specialty="Medicina General",
                        active=True,
                        organization_key="1",
                    ),
                ),
            )
        ),
        id="updated",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), MEDIC_CASES)
def test_documented_medics(raw: dict[str, Any], expected: Mapped) -> None:
    assert to_medic(raw, CTX) == expected


def test_created_medic_secrets_do_not_reach_canonical_records() -> None:
    dumped = to_medic(CREATED_MEDIC, CTX).model_dump_json()
    assert "dummyToken" not in dumped
    assert "pbkdf2" not in dumped


@pytest.mark.parametrize(
    ("changes", "expected_sex", "expected_active"),
    [
        ({"female": None}, Sex.unknown, True),
        ({"is_active": False}, Sex.female, False),
        ({"is_active": None}, Sex.female, True),
    ],
)
def test_medic_flags(changes: dict[str, Any], expected_sex: Sex, expected_active: bool) -> None:
    record = to_medic({**LISTED_BLACKWELL, **changes}, CTX).entities[-1].record
    assert isinstance(record, MedicRecord)
    assert (record.sex, record.active) == (expected_sex, expected_active)


def test_medic_without_flags_or_hospital_keys() -> None:
    raw = {k: v for k, v in LISTED_BLACKWELL.items() if k not in {"female", "is_active", "hospital"}}
    (medic,) = to_medic(raw, CTX).entities
    assert isinstance(medic.record, MedicRecord)
    assert (medic.record.sex, medic.record.active, medic.record.organization_key) == (Sex.unknown, True, None)


@pytest.mark.parametrize(("value", "expected"), [(7, "7"), ("7", "7"), (" 007 ", "7"), (0, "0")])
def test_ids_have_one_spelling(value: Any, expected: str) -> None:
    assert to_patient({**LISTED_GEORGE, "id": value}, CTX).entities[0].ids[0].id_value == expected
    assert to_medic({**LISTED_BLACKWELL, "hospital": value}, CTX).entities[0].key == expected


# --- quarantine: every failure is a RecordError naming the source field ----------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"date_of_birth": "1990-13-45"}, "date_of_birth", "not a valid date (no such day)"),
        ({"date_of_birth": "2030-01-01"}, "date_of_birth", "is in the future"),
        ({"date_of_birth": "01/06/1990"}, "date_of_birth", "not a YYYY-MM-DD date"),
        (
            {"curp": "BOXW310820HNERXN08"},
            "curp",
            "not a valid CURP: The number's checksum or check digit is invalid.",
        ),
        ({"curp": "NOT-A-CURP"}, "curp", "not a valid CURP: The number has an invalid length."),
        ({"uid": ""}, "uid", "is missing or empty"),
        ({"uid": None}, "uid", "is missing or empty"),
        ({"uid": "   "}, "uid", "is missing or empty"),
        ({"uid": ["b5555"]}, "uid", "expected text, got a list"),
        ({"id": None}, "id", "is missing or empty"),
        ({"id": "1a"}, "id", "expected an integer id"),
        ({"id": -1}, "id", "expected an integer id"),
        ({"id": 1.0}, "id", "expected an integer id"),
        ({"id": True}, "id", "expected an integer id"),
        ({"name": {"given": "George"}}, "name", "expected text, got an object"),
        ({"address": ["Calle 5"]}, "address", "expected text, got a list"),
    ],
)
def test_patient_quarantine_reasons(changes: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(RecordError) as info:
        to_patient({**LISTED_GEORGE, **changes}, CTX)
    assert (info.value.field, info.value.problem) == (field, problem)


def test_patient_missing_uid_key() -> None:
    raw = {k: v for k, v in LISTED_GEORGE.items() if k != "uid"}
    with pytest.raises(RecordError) as info:
        to_patient(raw, CTX)
    assert info.value.field == "uid"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"date_of_birth": "1821-02-30"}, "date_of_birth"),
        ({"date_of_birth": "1799-12-31"}, "date_of_birth"),
        ({"id": ""}, "id"),
        ({"hospital": "Hospital Ángeles"}, "hospital"),
        ({"hospital": 7.5}, "hospital"),
        ({"is_active": "sometimes"}, "is_active"),
        ({"cedula_prof": [123123123]}, "cedula_prof"),
    ],
)
def test_medic_quarantine_reasons(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordError) as info:
        to_medic({**LISTED_BLACKWELL, **changes}, CTX)
    assert info.value.field == field


@pytest.mark.parametrize("raw", [None, [], [LISTED_GEORGE], "George", 1, True])
@pytest.mark.parametrize("mapping", [to_patient, to_medic])
def test_non_object_is_a_record_error(mapping: Any, raw: Any) -> None:
    with pytest.raises(RecordError) as info:
        mapping(raw, CTX)
    assert info.value.field == "record"


def test_mappings_do_not_mutate_their_input() -> None:
    for mapping, examples in ((to_patient, PATIENT_EXAMPLES), (to_medic, MEDIC_EXAMPLES)):
        for raw in examples:
            before = copy.deepcopy(raw)
            mapping(raw, CTX)
            assert raw == before


def test_docstring_examples() -> None:
    for module in (normalize, prescrypto):
        assert doctest.testmod(module).failed == 0


# --- fuzz: any JSON object maps or raises RecordError, nothing else -------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(exclude_categories=()))  # with NULs and lone surrogates: json.loads makes them
    | st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
    | st.from_regex(r"\A[A-Z]{4}[0-9]{6}[HMX][A-Z]{5}[0-9A-Z][0-9]\Z")
    | st.from_regex(r"\A\+?[0-9 ()-]{1,20}\Z")
)
# st.recursive alone draws mostly containers; half the draws stay scalar, the values a field really holds
JSON_VALUES = _SCALARS | st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=8,
)
_FIELDS = sorted({*LISTED_GEORGE, *CREATED_MEDIC, "", "ID", "uid "})


def _maps_or_record_error(mapping: Any, raw: Any) -> None:
    try:
        mapped = mapping(raw, CTX)
    except RecordError as exc:
        assert exc.field
        return
    assert isinstance(mapped, Mapped)
    assert all(entity.key for entity in mapped.entities)


@settings(max_examples=300, deadline=None)
@given(raw=st.dictionaries(st.text(), JSON_VALUES) | st.dictionaries(st.sampled_from(_FIELDS), JSON_VALUES))
def test_fuzz_any_object(raw: dict[str, Any]) -> None:
    _maps_or_record_error(to_patient, raw)
    _maps_or_record_error(to_medic, raw)


def _edits(examples: list[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A documented example with a few of its fields replaced by arbitrary JSON values, or removed."""
    fields = st.sampled_from(sorted({k for example in examples for k in example}))
    return st.builds(
        lambda example, changes, drop: {k: v for k, v in {**example, **changes}.items() if k not in drop},
        st.sampled_from(examples),
        st.dictionaries(fields, JSON_VALUES, min_size=1, max_size=3),
        st.sets(fields, max_size=2),
    )


@settings(max_examples=300, deadline=None)
@given(raw=_edits(PATIENT_EXAMPLES))
def test_fuzz_patient_example_fields(raw: dict[str, Any]) -> None:
    _maps_or_record_error(to_patient, raw)


@settings(max_examples=300, deadline=None)
@given(raw=_edits(MEDIC_EXAMPLES))
def test_fuzz_medic_example_fields(raw: dict[str, Any]) -> None:
    _maps_or_record_error(to_medic, raw)


@settings(max_examples=300, deadline=None)
@given(raw=JSON_VALUES)
def test_fuzz_any_json_value(raw: Any) -> None:
    _maps_or_record_error(to_patient, raw)
    _maps_or_record_error(to_medic, raw)
