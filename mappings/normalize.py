"""Normalizers shared by every source mapping.

One convention throughout: ``normalizer(value, field, ...)`` takes the raw JSON value and the *source* field
name, returns the canonical value (``None`` when the source left it empty) and raises
``RecordError(field, problem)`` when the value cannot be used. Messages never quote the value (quarantine
reasons are shown by ``status`` and may reach logs): the stored payload beside the reason holds it.

    >>> text("  Calle 5 ", "address")
    'Calle 5'
    >>> split_name("Juan de la Cruz Pérez")
    ('Juan', 'de la Cruz Pérez')
    >>> sex("H", "gender")
    <Sex.male: 'male'>
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import phonenumbers
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.mx import curp as stdnum_curp

from canonical.errors import RecordError
from canonical.model import MAX_ID_LENGTH, Sex
from canonical.privacy import SSN_PATTERN

__all__ = [
    "EARLIEST_BIRTH_DATE",
    "identifier",
    "integer_id",
    "joined_name",
    "require_object",
    "required",
    "address",
    "birth_date",
    "boolean",
    "coordinate",
    "curp",
    "email",
    "name",
    "number",
    "phone",
    "sex",
    "sex_from_female",
    "split_name",
    "ssn_digits",
    "text",
    "timestamp",
]

EARLIEST_BIRTH_DATE = dt.date(1800, 1, 1)  # the documented medic example was born in 1821

# A NUL or a lone surrogate cannot be stored (PostgreSQL text, UTF-8 encoding) and would fail a whole page.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def text(value: Any, field: str) -> str | None:
    """A stripped string, or None for None / empty / whitespace; numbers become their decimal text."""
    if value is None:
        return None
    if isinstance(value, str):
        s = value.strip()
    elif isinstance(value, bool):  # bool is an int: say no before the number branch turns it into "True"
        raise RecordError(field, "expected text, got a boolean")
    elif isinstance(value, int):
        try:
            s = str(value)
        except ValueError:  # more digits than Python will print
            raise RecordError(field, "number is too long") from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise RecordError(field, "expected text, got a non-finite number")
        s = str(value)
    else:
        raise RecordError(field, f"expected text, got {_kind(value)}")
    if not s:
        return None
    if "\x00" in s or (not s.isascii() and _UNSTORABLE.search(s)):
        raise RecordError(field, "contains a NUL or an unpaired surrogate character")
    return s


def name(value: Any, field: str) -> str | None:
    """Text with inner whitespace collapsed to single spaces: a person's name as it should be displayed."""
    s = text(value, field)
    return " ".join(s.split()) if s else None


_PARTICLES = frozenset({"de", "del", "la", "las", "los", "y", "da", "di", "van", "von", "san"})


def joined_name(given: str | None, family: str | None) -> str | None:
    """The full name of a source that sends the parts: "given family", or whichever part it has."""
    return " ".join(part for part in (given, family) if part) or None


def split_name(full: str) -> tuple[str | None, str | None]:
    """Split a full name into (given, family), assuming Spanish usage: two surnames come last.

    A particle (de, del, la, y, van, ...) binds to the token after it, so "de la Cruz" is one surname.
    1 unit: (unit, None); 2: (first, second); 3: (first, last two); more: (all but last two, last two).
    """
    units: list[str] = []
    pending: list[str] = []
    for token in full.split():
        pending.append(token)
        if token.casefold() not in _PARTICLES:
            units.append(" ".join(pending))
            pending = []
    if pending:  # a trailing particle has nothing to bind to: keep it as a unit of its own
        units.append(" ".join(pending))
    if not units:
        return None, None
    if len(units) == 1:
        return units[0], None
    if len(units) <= 3:
        return units[0], " ".join(units[1:])
    return " ".join(units[:-2]), " ".join(units[-2:])


_SEX = {
    **dict.fromkeys(["m", "h", "male", "man", "hombre", "masculino"], Sex.male),
    **dict.fromkeys(["f", "female", "woman", "mujer", "femenino"], Sex.female),
    **dict.fromkeys(["o", "other", "otro"], Sex.other),
}


def sex(value: Any, field: str) -> Sex:
    """Sex from a code or word; anything unrecognised is unknown, never an error (the raw payload keeps it).

    "M" is male, as Prescrypto documents it; a source where "M" means mujer needs its own table.
    """
    if not isinstance(value, str):
        return Sex.unknown
    return _SEX.get(value.strip().casefold(), Sex.unknown)


def sex_from_female(value: Any, field: str) -> Sex:
    """Sex from a ``female`` flag (Prescrypto medics): true female, false male, anything else unknown."""
    try:
        flag = boolean(value, field)
    except RecordError:
        return Sex.unknown
    if flag is None:
        return Sex.unknown
    return Sex.female if flag else Sex.male


def birth_date(value: Any, field: str, today: dt.date) -> dt.date | None:
    """An ISO ``YYYY-MM-DD`` birth date, not after ``today`` and not before 1800."""
    s = text(value, field)
    if s is None:
        return None
    # fromisoformat alone would also take "19900601" and week dates; the documents promise YYYY-MM-DD
    if not _ISO_DATE.fullmatch(s):
        raise RecordError(field, "not a YYYY-MM-DD date")
    try:
        date = dt.date.fromisoformat(s)
    except ValueError:
        raise RecordError(field, "not a valid date (no such day)") from None
    if date > today:
        raise RecordError(field, "is in the future")
    if date < EARLIEST_BIRTH_DATE:
        raise RecordError(field, f"is before {EARLIEST_BIRTH_DATE.isoformat()}")
    return date


def address(*parts: tuple[Any, str]) -> str | None:
    """Address lines, each given with its source field, joined with ", "; blank ones are left out.

    >>> address(("123 Street Name", "patient_physical_address"), ("Apt 101", "patient_address_line_1"))
    '123 Street Name, Apt 101'
    """
    kept = [line for line in (name(value, field) for value, field in parts) if line]
    return ", ".join(kept) or None


def phone(value: Any, field: str, region: str) -> str | None:
    """E.164 when the number parses and is valid for its region; otherwise the stripped text as given.

    A bad phone is never an error: a wrong number is still worth keeping for a human to read.
    """
    s = text(value, field)
    if s is None:
        return None
    try:
        number = phonenumbers.parse(s, region)
    except phonenumbers.NumberParseException:
        return s
    # E.164 has no room for an extension: keep the original rather than lose it
    if number.extension or not phonenumbers.is_valid_number(number):
        return s
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def curp(value: Any, field: str) -> str | None:
    """A CURP, upper-cased and compacted, checked for format, birth date, state and check digit."""
    s = text(value, field)
    if s is None:
        return None
    try:
        return stdnum_curp.validate(s)
    except StdnumError as exc:
        raise RecordError(field, f"not a valid CURP: {exc}") from None


def email(value: Any, field: str) -> str | None:
    """An email address, stripped and lower-cased; only the "@" is checked (deliverability is not ours).

    Text without an "@" is no address (two vendor documents show "[email protected]", an address a web page
    hid): None, like any unusable optional field; the raw value stays in ``source_record``.
    """
    s = text(value, field)
    if s is None or "@" not in s:
        return None
    return s.lower()


def number(value: Any, field: str) -> float | None:
    """A finite number from a JSON number or numeric text; None for None or "".

    >>> number(7, "value"), number(" 12.5 ", "value"), number("", "value")
    (7.0, 12.5, None)
    """
    if isinstance(value, bool):
        raise RecordError(field, "expected a number, got a boolean")
    if isinstance(value, int | float):
        result = float(value) if isinstance(value, float) or abs(value) < 2**63 else math.inf
    else:
        s = text(value, field)
        if s is None:
            return None
        try:
            result = float(s)
        except ValueError:
            raise RecordError(field, "expected a number") from None
    if not math.isfinite(result):
        raise RecordError(field, "expected a finite number")
    return result


def coordinate(value: Any, field: str, limit: float) -> float | None:
    """A latitude (limit 90) or longitude (limit 180) in degrees; the sources send them as text.

    >>> coordinate("-12.345678", "patient_longitude", 180)
    -12.345678
    """
    degrees = number(value, field)
    if degrees is not None and not -limit <= degrees <= limit:
        raise RecordError(field, f"outside -{limit:g}..{limit:g} degrees")  # a home's position: not quoted
    return degrees


def timestamp(value: Any, field: str) -> dt.datetime | None:
    """An ISO 8601 date-time in UTC; one without an offset is taken as UTC.

    >>> timestamp("2023-10-27T14:30:00.000Z", "recorded_at")
    datetime.datetime(2023, 10, 27, 14, 30, tzinfo=datetime.timezone.utc)
    """
    s = text(value, field)
    if s is None:
        return None
    if not _ISO_DATE.match(s) or len(s) < 16:
        raise RecordError(field, "not an ISO 8601 date-time")
    try:
        when = dt.datetime.fromisoformat(s)
    except ValueError:
        raise RecordError(field, "not a valid date-time") from None
    if when.tzinfo is None:
        return when.replace(tzinfo=dt.UTC)
    try:
        return when.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first instant a datetime can hold
        raise RecordError(field, "is outside the years 1 to 9999 in UTC") from None


NOT_AN_SSN = "not a social security number (expected nine digits: three, two and four, or run together)"


def ssn_digits(value: Any, field: str) -> str | None:
    """A US SSN as its nine digits, written in any common form ("123-45-6789", "123 45 6789", "123456789",
    fullwidth digits); the message never repeats the value.

    >>> ssn_digits("123-45-6789", "ssn"), ssn_digits("123 45 6789", "ssn")
    ('123456789', '123456789')
    """
    s = text(value, field)
    if s is None:
        return None
    s = unicodedata.normalize("NFKC", s)
    if SSN_PATTERN.fullmatch(s) is None or not s.isascii():
        raise RecordError(field, NOT_AN_SSN)
    return "".join(c for c in s if c.isdigit())


_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def boolean(value: Any, field: str) -> bool | None:
    """A JSON boolean, 0/1, or a true/false/yes/no/1/0 string; None or "" is None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        s = value.strip().casefold()
        if not s:
            return None
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise RecordError(field, "expected a boolean, got an unrecognised string")
    raise RecordError(field, f"expected a boolean, got {_kind(value)}")


def require_object(raw: Any) -> None:
    if not isinstance(raw, Mapping):
        raise RecordError("record", f"expected a JSON object, got {type(raw).__name__}")


def required(value: str | None, field: str) -> str:
    if value is None:
        raise RecordError(field, "is missing or empty")
    return value


def identifier(value: Any, field: str) -> str | None:
    """An identifier as text: at most ``MAX_ID_LENGTH`` characters, so every database can index it."""
    s = text(value, field)
    if s is not None and len(s) > MAX_ID_LENGTH:
        raise RecordError(field, f"is longer than {MAX_ID_LENGTH} characters")
    return s


def integer_id(value: Any, field: str) -> str | None:
    """An integer id (a JSON number or a string of digits) as canonical decimal text, or None.

    7, "7" and "007" are one id, so the crosswalk cannot split one entity in two.
    """
    if isinstance(value, bool | float):  # JSON true or 7.0 is not an id, however Python reads it
        raise RecordError(field, "expected an integer id")
    s = text(value, field)
    if s is None:
        return None
    if not (s.isascii() and s.isdigit()):
        raise RecordError(field, "expected an integer id")
    digits = s.lstrip("0") or "0"
    if len(digits) > MAX_ID_LENGTH:
        raise RecordError(field, f"is longer than {MAX_ID_LENGTH} characters")
    return digits  # not int(s): Python refuses to convert more than 4300 digits


def _kind(value: Any) -> str:
    """A JSON-ish name for a value's type, for error messages that must not quote the value."""
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )
