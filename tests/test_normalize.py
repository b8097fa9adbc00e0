"""Table-driven tests of the shared normalizers: each row is (input, expected) or (input, field named)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from canonical.errors import RecordError
from canonical.model import Sex
from mappings import normalize as n

TODAY = dt.date(2026, 1, 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   \t\n", None),
        ("  Calle 5  ", "Calle 5"),
        ("a  b", "a  b"),  # text keeps inner whitespace; name() collapses it
        (12345, "12345"),
        (0, "0"),
        (1.5, "1.5"),
        ("Peréz", "Peréz"),
    ],
)
def test_text(value: Any, expected: str | None) -> None:
    assert n.text(value, "address") == expected


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        [],
        ["a"],
        {},
        {"a": 1},
        float("nan"),
        float("inf"),
        "a\x00b",
        "a\ud800b",
        pytest.param(10**5000, id="5001-digit-int"),
    ],
)
def test_text_rejects_what_cannot_be_stored(value: Any) -> None:
    with pytest.raises(RecordError) as info:
        n.text(value, "address")
    assert info.value.field == "address"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("  ", None), ("  Juan \t García\n López ", "Juan García López"), ("Ana", "Ana")],
)
def test_name_collapses_whitespace(value: Any, expected: str | None) -> None:
    assert n.name(value, "name") == expected


@pytest.mark.parametrize(
    ("full", "expected"),
    [
        ("", (None, None)),
        ("Cher", ("Cher", None)),
        ("George Constanza", ("George", "Constanza")),
        ("Homero Peréz", ("Homero", "Peréz")),
        ("Juan García López", ("Juan", "García López")),
        ("María José García López", ("María José", "García López")),
        ("Juan de la Cruz Pérez", ("Juan", "de la Cruz Pérez")),
        ("Ana del Valle", ("Ana", "del Valle")),
        ("  Ana   del  Valle ", ("Ana", "del Valle")),
        ("María del Carmen López García", ("María del Carmen", "López García")),
        ("José Ortega y Gasset", ("José", "Ortega y Gasset")),
        ("Juan De La Cruz", ("Juan", "De La Cruz")),  # particles match in any case, keep their case
        ("Ludwig van Beethoven", ("Ludwig", "van Beethoven")),
        ("Daniel Hale Williams", ("Daniel", "Hale Williams")),  # Spanish rule: a middle name reads as surname
        ("Pedro de", ("Pedro", "de")),  # a trailing particle stays a unit of its own
        ("GEORGE constanza", ("GEORGE", "constanza")),
    ],
)
def test_split_name(full: str, expected: tuple[str | None, str | None]) -> None:
    assert n.split_name(full) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("M", Sex.male),
        ("H", Sex.male),
        ("m", Sex.male),
        ("male", Sex.male),
        ("Male", Sex.male),
        ("MALE", Sex.male),
        ("hombre", Sex.male),
        (" Masculino ", Sex.male),
        ("F", Sex.female),
        ("female", Sex.female),
        ("Mujer", Sex.female),
        ("femenino", Sex.female),
        ("O", Sex.other),
        ("other", Sex.other),
        ("otro", Sex.other),
        (None, Sex.unknown),
        ("", Sex.unknown),
        ("X", Sex.unknown),
        ("no binario", Sex.unknown),
        (1, Sex.unknown),
        (["M"], Sex.unknown),
        ({"a": "M"}, Sex.unknown),
        (True, Sex.unknown),
    ],
)
def test_sex(value: Any, expected: Sex) -> None:
    assert n.sex(value, "gender") is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, Sex.female),
        (False, Sex.male),
        (None, Sex.unknown),
        ("true", Sex.female),
        ("false", Sex.male),
        ("", Sex.unknown),
        ("maybe", Sex.unknown),
        ([True], Sex.unknown),
        (7, Sex.unknown),
    ],
)
def test_sex_from_female(value: Any, expected: Sex) -> None:
    assert n.sex_from_female(value, "female") is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("1990-06-01", dt.date(1990, 6, 1)),
        (" 1990-06-01 ", dt.date(1990, 6, 1)),
        ("1821-02-03", dt.date(1821, 2, 3)),
        ("1800-01-01", dt.date(1800, 1, 1)),
        ("2026-01-01", TODAY),
        ("2024-02-29", dt.date(2024, 2, 29)),
    ],
)
def test_birth_date(value: Any, expected: dt.date | None) -> None:
    assert n.birth_date(value, "date_of_birth", TODAY) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("1990-13-45", "not a valid date (no such day)"),
        ("2023-02-29", "not a valid date (no such day)"),
        ("2026-01-02", "is in the future"),
        ("1799-12-31", "is before 1800-01-01"),
        ("19900601", "not a YYYY-MM-DD date"),
        ("1990-06-01T00:00:00", "not a YYYY-MM-DD date"),
        ("01/06/1990", "not a YYYY-MM-DD date"),
        ("١٩٩٠-٠٦-٠١", "not a YYYY-MM-DD date"),  # Arabic-Indic digits are digits, not ISO
        (1990, "not a YYYY-MM-DD date"),
        (["1990-06-01"], "expected text, got a list"),
        (True, "expected text, got a boolean"),
    ],
)
def test_birth_date_errors(value: Any, problem: str) -> None:
    with pytest.raises(RecordError) as info:
        n.birth_date(value, "date_of_birth", TODAY)
    assert (info.value.field, info.value.problem) == ("date_of_birth", problem)


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        (None, "MX", None),
        ("", "MX", None),
        ("55 1234 5678", "MX", "+525512345678"),
        ("(55) 1234-5678", "MX", "+525512345678"),
        ("+52 55 1234 5678", "MX", "+525512345678"),
        ("+1 202 555 0100", "MX", "+12025550100"),
        ("202-555-0100", "US", "+12025550100"),
        (5512345678, "MX", "+525512345678"),
        ("1234", "MX", "1234"),  # too short to be a number: kept as given
        (" no tengo ", "MX", "no tengo"),
        ("55 1234 5678 ext. 12", "MX", "55 1234 5678 ext. 12"),  # E.164 would drop the extension
        ("55 1234 5678", "ZZ", "55 1234 5678"),  # unknown region and no country code
        ("+" + "9" * 300, "MX", "+" + "9" * 300),
    ],
)
def test_phone(value: Any, region: str, expected: str | None) -> None:
    assert n.phone(value, "phone", region) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("BOXW310820HNERXN09", "BOXW310820HNERXN09"),
        (" boxw310820hnerxn09 ", "BOXW310820HNERXN09"),
        ("BOXW-310820-HNERXN09", "BOXW310820HNERXN09"),
    ],
)
def test_curp(value: Any, expected: str | None) -> None:
    assert n.curp(value, "curp") == expected


_BAD_PART = "not a valid CURP: One of the parts of the number are invalid or unknown."


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("BOXW310820HNERXN08", "not a valid CURP: The number's checksum or check digit is invalid."),
        ("BOXW310820HNERXN0", "not a valid CURP: The number has an invalid length."),
        ("BOXW3108201NERXN09", "not a valid CURP: The number has an invalid format."),
        ("BOXW311320HNERXN09", _BAD_PART),  # month 13
        ("BOXW310820HZZRXN09", _BAD_PART),  # no such state
        (123, "not a valid CURP: The number has an invalid length."),
        ({"curp": "BOXW310820HNERXN09"}, "expected text, got an object"),
    ],
)
def test_curp_errors(value: Any, problem: str) -> None:
    with pytest.raises(RecordError) as info:
        n.curp(value, "curp")
    assert (info.value.field, info.value.problem) == ("curp", problem)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  Hola@Prescrypto.COM ", "hola@prescrypto.com"),
        ("a@b", "a@b"),
        ("hola.prescrypto.com", None),
        ("[email protected]", None),  # as two vendor documents print it
    ],
)
def test_email(value: Any, expected: str | None) -> None:
    assert n.email(value, "email") == expected


@pytest.mark.parametrize("value", [True, ["a@b"], {"email": "a@b"}])
def test_email_errors(value: Any) -> None:
    with pytest.raises(RecordError) as info:
        n.email(value, "email")
    assert info.value.field == "email"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("true", True),
        (" False ", False),
        ("yes", True),
        ("no", False),
        ("1", True),
        ("0", False),
    ],
)
def test_boolean(value: Any, expected: bool | None) -> None:
    assert n.boolean(value, "is_active") is expected


@pytest.mark.parametrize("value", ["maybe", 2, -1, 1.0, [], {}])
def test_boolean_errors(value: Any) -> None:
    with pytest.raises(RecordError) as info:
        n.boolean(value, "is_active")
    assert info.value.field == "is_active"
