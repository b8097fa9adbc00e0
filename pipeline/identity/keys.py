"""Match keys: the indexed values a patient is blocked on, so that finding its candidates costs a few index
lookups, never a scan. Two patients are candidates when they share a key (and that key's block is small)."""

from __future__ import annotations

from pipeline.identity.names import phonetic
from pipeline.identity.profile import Profile


def match_keys(p: Profile) -> list[tuple[str, str]]:
    """(key type, key value) pairs of a patient: exact identifiers, the birth date, each name token's phonetic
    code with the birth year and with the postal code (typos, swapped parts and a missing surname still share
    one), the postal code.

    >>> import datetime as dt
    >>> from pipeline.identity.profile import profile
    >>> row = {"id": "p", "given_name": "Ana", "family_name": "Ruiz", "birth_date": dt.date(1990, 5, 1)}
    >>> match_keys(profile(row, "s"))
    [('dob', '1990-05-01'), ('name_year', 'AN:1990'), ('name_year', 'RS:1990')]
    """
    keys: list[tuple[str, str]] = []
    codes = sorted({phonetic(t) for t in p.tokens} - {""})
    if p.birth_date is not None:
        keys.append(("dob", p.birth_date.isoformat()))
        year = str(p.birth_date.year)
        keys.extend(("name_year", f"{code}:{year}") for code in codes)
    if p.postal_code:  # a birth date missing or mistyped: the same name in the same postal code still meets
        keys.extend(("name_zip", f"{code}:{p.postal_code}") for code in codes)
    for key_type, value in (
        ("postal_code", p.postal_code),
        ("email", p.email),
        ("phone", p.phone),
        ("curp", p.curp),
        ("ssn", p.ssn_hash),
    ):
        if value:
            keys.append((key_type, value))
    return keys
