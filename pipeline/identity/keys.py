"""Match keys: the indexed values a patient is blocked on, so that finding its candidates costs a few index
lookups, never a scan. Two patients are candidates when they share a key (and that key's block is small)."""

from __future__ import annotations

from pipeline.identity.names import phonetic
from pipeline.identity.profile import Profile

MAX_TOKENS = 4  # the names a key is made of: a fifth given name or surname adds keys, not candidates


def match_keys(p: Profile) -> list[tuple[str, str]]:
    """(key type, key value) pairs of a patient: exact identifiers, the birth date, each two name tokens'
    phonetic codes with the birth year, each one's with the postal code (typos, swapped parts and a missing
    surname still share some), the postal code.

    >>> import datetime as dt
    >>> from pipeline.identity.profile import profile
    >>> row = {"id": "p", "given_name": "Ana", "family_name": "Ruiz", "birth_date": dt.date(1990, 5, 1)}
    >>> match_keys(profile(row, "s"))
    [('dob', '1990-05-01'), ('name_year', 'AN+RS:1990')]
    """
    keys: list[tuple[str, str]] = []
    codes = sorted({phonetic(t) for t in p.tokens[:MAX_TOKENS]} - {""})
    if p.birth_date is not None:
        keys.append(("dob", p.birth_date.isoformat()))
        year = str(p.birth_date.year)
        # Two names' codes together: one common name's code in a year is a block of hundreds, a pair is not.
        pairs = [f"{a}+{b}" for i, a in enumerate(codes) for b in codes[i + 1 :]] or codes
        keys.extend(("name_year", f"{pair}:{year}") for pair in pairs)
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
