"""A patient as the comparisons read it: its name tokens, birth date, address parts and identifiers, each
normalized once, built from a stored ``patient`` row and the patient's SSN hash (if any)."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.identity.names import fold, given_count, name_tokens

# "Calle Guatemala 523 Int. 4", "523 Guatemala St Apt 4": the unit after Int./Apt is no part of the street.
_UNIT = re.compile(r"\b(INT|INTERIOR|APT|APARTMENT|DEPTO|DEPARTAMENTO|UNIT|UNT|STE|SUITE|NUM|NO|FLAT)\b.*$")
# Words that say what kind of street it is, in Mexican and English usage: a source keeps or drops them at will.
_STREET_WORDS = frozenset(
    {
        *("CALLE", "AV", "AVENIDA", "CALZ", "CALZADA", "BLVD", "BOULEVARD", "PRIVADA", "PRIV", "CERRADA", "CDA"),
        *("ANDADOR", "CAMINO", "CARRETERA", "CARR", "ST", "STREET", "AVE", "AVENUE", "RD", "ROAD", "DR", "DRIVE"),
        *("PL", "PLACE", "CRES", "CRESCENT", "CT", "COURT", "LN", "LANE", "WAY", "PDE", "PARADE", "CCT"),
        *("CIRCUIT", "CL", "CLOSE", "TCE", "TERRACE", "HWY", "HIGHWAY"),
    }
)


# Street words a typist glues to the name ("Goodwinstreet", "Callejuarez"): long enough that no street's own
# name ends (or starts) with one by chance, as "Broadway" ends with WAY and "Harcourt" with COURT; a callejón
# or callejuela (an alley) is a street word of its own, not CALLE glued to a name.
_GLUED_AFTER = re.compile(r"(?<=[A-Z]{3})(STREET|DRIVE|CRESCENT|PLACE|AVENUE|TERRACE|CIRCUIT|PARADE|HIGHWAY)$")
_GLUED_BEFORE = re.compile(r"^(CALLE(?!JON|JUELA)|AVENIDA|CALZADA|PRIVADA|CERRADA)(?=[A-Z]{3})")


@dataclass(frozen=True, slots=True)
class Profile:
    patient_id: str
    source: str
    tokens: tuple[str, ...]  # name tokens, given names first (names.name_tokens)
    given: int  # how many leading tokens are given names; 0 when the source did not say
    birth_date: dt.date | None
    street: str | None  # folded street name, without number, unit or words such as "Calle"
    number: str | None  # the street number
    postal_code: str | None
    city: str | None
    email: str | None
    phone: str | None  # E.164 where the source's number parsed
    curp: str | None
    ssn_hash: str | None
    ssn_last4: str | None


@functools.lru_cache(maxsize=4096)  # a line is parsed twice in a row (its row, then its profile), not again later
def street_parts(address_line: str | None) -> tuple[str | None, str | None]:
    """(street, number) of an address line, in either order ("Calle X 523", "523 X St"); a second line glued
    on after a comma stays in the street's words (the comparison reads them as a set).

    A regular expression rather than a trained parser: ``usaddress`` knows US lines only, and the sources' lines
    are Mexican ("Calle Guatemala 523 Int. 4"), US and Australian; what identity needs of a line is its number
    and its words, which this finds in all three.

    >>> street_parts("Calle Guatemala 523 Int. 4"), street_parts("523 Guatemala St, Apt 4")
    (('GUATEMALA', '523'), ('GUATEMALA', '523'))
    >>> street_parts("65 Jacka Crescent, Kyeema"), street_parts("Calle 5 de Mayo 120")
    (('JACKA KYEEMA', '65'), ('5 DE MAYO', '120'))
    >>> street_parts("15 Goodwinstreet"), street_parts("Callejuarez 12"), street_parts("9 Broadway")
    (('GOODWIN', '15'), ('JUAREZ', '12'), ('BROADWAY', '9'))
    >>> street_parts("Callejón Sur Zavala 1667")
    ('CALLEJON SUR ZAVALA', '1667')
    """
    if not address_line:
        return None, None
    tokens = _UNIT.sub("", fold(address_line, digits=True)).split()
    # A number first is the US and Australian order; otherwise the number is the last one ("Calle 5 de Mayo
    # 120": a street may be named by a number).
    digits = [i for i, t in enumerate(tokens) if t.isdigit()]
    at = None if not digits else digits[0] if digits[0] == 0 else digits[-1]
    number = None if at is None else tokens[at]
    words = [_unglued(t) for i, t in enumerate(tokens) if i != at and t not in _STREET_WORDS]
    return (" ".join(words) or None), number


def _unglued(token: str) -> str:
    if len(token) < 8:  # a street word of five letters or more glued to three: most tokens are shorter
        return token
    return _GLUED_BEFORE.sub("", _GLUED_AFTER.sub("", token))


def profile(row: Mapping[str, Any], source: str, ssn_hash: str | None = None) -> Profile:
    """The comparable view of a ``patient`` row (a mapping of its columns)."""
    given, family, full = row.get("given_name"), row.get("family_name"), row.get("full_name")
    # Parsed again rather than read from ``patient.street``: a row stored before a better parser keeps its old
    # parts there, and the comparison must read every row alike.
    street, number = street_parts(row.get("address_line"))
    birth = row.get("birth_date")
    if isinstance(birth, str):
        birth = dt.date.fromisoformat(birth)
    return Profile(
        patient_id=row["id"],
        source=source,
        tokens=name_tokens(given, family, full),
        given=given_count(given, family, full),
        birth_date=birth,
        street=street,
        number=number,
        postal_code=_clean(row.get("postal_code")),
        city=fold(row["city"]) or None if row.get("city") else None,
        email=_clean(row.get("email"), lower=True),
        phone=_clean(row.get("phone")),
        curp=_clean(row.get("curp")),
        ssn_hash=ssn_hash,
        ssn_last4=_clean(row.get("ssn_last4")),
    )


def _clean(value: Any, lower: bool = False) -> str | None:
    if not value:
        return None
    text = str(value).strip()
    return (text.lower() if lower else text.upper()) or None
