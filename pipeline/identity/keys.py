"""Blocking keys declared as data: the indexed values a patient is blocked on, so that finding its candidates
costs a few index lookups, never a scan.

Two patients are candidates when they share a key that is enough ``alone`` (every key declared here is), or
two keys; and only through keys whose block is small (the linker skips a key more than
``identity.block_bound`` patients hold). Names enter as phonetic codes of each token (``names.phonetic``), so a
typo, a swapped given and family name or a missing surname still shares some. No key is a single field shared
by many (a birth date, a postal code alone): such a block grows with the database, and with it the cost of
linking each patient; two fields together (``dob_zip``) keep a block small at any size.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.identity.names import phonetic
from pipeline.identity.profile import Profile

MAX_TOKENS = 3  # the names a key is made of: a fourth given name or surname adds keys, not candidates


@dataclass(frozen=True)
class BlockingKey:
    type: str
    meaning: str
    derive: Callable[[Profile, Sequence[str]], list[str]]  # (profile, its name codes) -> key values
    alone: bool = False  # sharing this key alone makes two patients candidates


def _street(p: Profile) -> str | None:
    """Number and the first street word's code ("523:GTML"): a moved unit or a second line still agrees."""
    if not p.number or not p.street:
        return None
    return f"{p.number}:{phonetic(p.street.split()[0])}"


def _each(codes: Sequence[str], suffix: str | None) -> list[str]:
    return [f"{code}:{suffix}" for code in codes] if suffix else []


def _one(value: str | None) -> list[str]:
    return [value] if value else []


def _born(p: Profile) -> str | None:
    return p.birth_date.isoformat() if p.birth_date else None


def _pairs_month(p: Profile, codes: Sequence[str]) -> list[str]:
    """Two names' codes and the birth month: a day mistyped, and nothing else shared but the name, still meets;
    two names keep the block as small as one name and the whole date do."""
    if not p.birth_date:
        return []
    month = p.birth_date.isoformat()[:7]
    return [f"{a}:{b}:{month}" for a, b in itertools.combinations(codes, 2)]


BLOCKING_KEYS: tuple[BlockingKey, ...] = (
    BlockingKey(
        "name_dob",
        "a name's code and the birth date: one name mistyped or missing still meets",
        lambda p, c: _each(c, _born(p)),
        alone=True,
    ),
    BlockingKey(
        "names_month",
        "two names' codes and the birth year and month: a day mistyped still meets",
        _pairs_month,
        alone=True,
    ),
    BlockingKey(
        "name_street",
        "a name's code, the street number and the street's first word: a mistyped birth date still meets",
        lambda p, c: _each(c, _street(p)),
        alone=True,
    ),
    BlockingKey(
        "name_zip",
        "a name's code and the postal code: a birth date missing still meets",
        lambda p, c: _each(c, p.postal_code),
        alone=True,
    ),
    BlockingKey(
        "dob_zip",
        "the birth date and the postal code: every name mistyped or replaced still meets",
        lambda p, c: _one(f"{_born(p)}:{p.postal_code}" if p.birth_date and p.postal_code else None),
        alone=True,
    ),
    BlockingKey(
        "dob_street",
        "the birth date, the street number and the street's first word: every name changed still meets",
        lambda p, c: _one(f"{_born(p)}:{street}" if p.birth_date and (street := _street(p)) else None),
        alone=True,
    ),
    BlockingKey(
        "street_zip",
        "the street number, the street's first word and the postal code: a name and a birth date mistyped meet",
        lambda p, c: _one(f"{street}:{p.postal_code}" if p.postal_code and (street := _street(p)) else None),
        alone=True,
    ),
    BlockingKey("email", "the e-mail address", lambda p, c: _one(p.email), alone=True),
    BlockingKey("phone", "the phone number", lambda p, c: _one(p.phone), alone=True),
    BlockingKey("curp", "the CURP", lambda p, c: _one(p.curp), alone=True),
    BlockingKey("ssn", "the SSN's keyed hash", lambda p, c: _one(p.ssn_hash), alone=True),
)
ALONE = frozenset(key.type for key in BLOCKING_KEYS if key.alone)


def name_codes(p: Profile) -> list[str]:
    """The phonetic codes of a patient's first ``MAX_TOKENS`` names (initials left out), sorted."""
    return sorted({phonetic(t) for t in p.tokens[:MAX_TOKENS] if len(t) > 1} - {""})


def match_keys(p: Profile) -> list[tuple[str, str]]:
    """(key type, key value) pairs of a patient, in the order of ``BLOCKING_KEYS``.

    >>> import datetime as dt
    >>> from pipeline.identity.profile import profile
    >>> row = {"id": "p", "given_name": "Ana", "family_name": "Ruiz", "birth_date": dt.date(1990, 5, 1)}
    >>> match_keys(profile(row, "s"))
    [('name_dob', 'AN:1990-05-01'), ('name_dob', 'RS:1990-05-01'), ('names_month', 'AN:RS:1990-05')]
    """
    codes = name_codes(p)
    return [(key.type, value) for key in BLOCKING_KEYS for value in key.derive(p, codes)]
