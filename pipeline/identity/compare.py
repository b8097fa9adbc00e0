"""Field comparisons: each names the level at which two patients agree on one field, or None when either
lacks it (a missing field is no evidence either way). Levels run from the strongest agreement to ``different``.

Pure and table-tested (tests/test_identity_compare.py); ``model`` turns levels into evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rapidfuzz.distance import JaroWinkler

from pipeline.identity.profile import Profile

NAME_SIMILAR = 0.88  # Jaro-Winkler at or above: one name token spelt two ways ("Gonzales", "Gonzalez")
STREET_SIMILAR = 0.92


def _similar(a: str, b: str, threshold: float = NAME_SIMILAR) -> bool:
    return a == b or JaroWinkler.similarity(a, b) >= threshold


def _unmatched(these: Sequence[str], those: Sequence[str], exact: bool) -> list[str]:
    """The tokens of ``these`` left over once each is paired with a distinct equal (or similar) one of ``those``."""
    left = list(those)
    missing = []
    for token in these:
        found = next((i for i, other in enumerate(left) if (token == other if exact else _similar(token, other))), None)
        if found is None:
            missing.append(token)
        else:
            del left[found]
    return missing


def _split(p: Profile) -> tuple[tuple[str, ...], tuple[str, ...]]:
    # Given names first in every source; a source that did not tell the parts apart has one given name.
    given = p.given or 1
    return p.tokens[:given], p.tokens[given:]


def name(a: Profile, b: Profile) -> str | None:
    """exact, contained, similar, one_name, surname_differs, given_differs, different: on tokens, never on the
    split."""
    if not a.tokens or not b.tokens:
        return None
    short, long = (a.tokens, b.tokens) if len(a.tokens) <= len(b.tokens) else (b.tokens, a.tokens)
    if sorted(short) == sorted(long):
        return "exact"  # given and family swapped included
    if len(short) >= 2 and not _unmatched(short, long, exact=True):
        return "contained"  # a second given name or the maternal surname left out, a name in the other field
    if len(short) >= 2 and not _unmatched(short, long, exact=False):
        return "similar"
    if len(short) == 1 and not _unmatched(short, long, exact=False):
        return "one_name"  # one side has a single name, which the other has
    (given_a, family_a), (given_b, family_b) = _split(a), _split(b)
    given_agree = len(_unmatched(given_a, given_b, exact=False)) < len(given_a) or not given_a
    family_shared = len(_unmatched(family_a, family_b, exact=False)) < len(family_a)
    if given_agree and family_shared:
        return "surname_differs"  # one surname changed (marriage), or a typo beyond similarity
    if family_shared:
        return "given_differs"  # a surname in common, another given name: twins, siblings, a household
    return "different"


def birth_date(a: Profile, b: Profile) -> str | None:
    """exact, close (a day or one digit off), swapped (day and month), different."""
    x, y = a.birth_date, b.birth_date
    if x is None or y is None:
        return None
    if x == y:
        return "exact"
    if abs((x - y).days) == 1 or sum(c != d for c, d in zip(x.isoformat(), y.isoformat(), strict=True)) == 1:
        return "close"
    if x.year == y.year and x.month == y.day and x.day == y.month:
        return "swapped"
    return "different"


def address(a: Profile, b: Profile) -> str | None:
    """exact (street and number), street (the same street, another or no number), different."""
    if not a.street or not b.street:
        return None
    if not _similar(a.street, b.street, STREET_SIMILAR):
        return "different"
    if a.number and b.number and a.number == b.number:
        return "exact"
    return "street"


def _equal(x: str | None, y: str | None) -> str | None:
    if not x or not y:
        return None
    return "exact" if x == y else "different"


def postal_code(a: Profile, b: Profile) -> str | None:
    return _equal(a.postal_code, b.postal_code)


def city(a: Profile, b: Profile) -> str | None:
    if not a.city or not b.city:
        return None
    return "exact" if _similar(a.city, b.city, STREET_SIMILAR) else "different"


def email(a: Profile, b: Profile) -> str | None:
    """exact, local (the same mailbox name at another provider), different."""
    if not a.email or not b.email:
        return None
    if a.email == b.email:
        return "exact"
    return "local" if a.email.partition("@")[0] == b.email.partition("@")[0] else "different"


def phone(a: Profile, b: Profile) -> str | None:
    """exact, last7 (the same subscriber number under another area or country code), different."""
    if not a.phone or not b.phone:
        return None
    if a.phone == b.phone:
        return "exact"
    return "last7" if a.phone[-7:] == b.phone[-7:] else "different"


def curp(a: Profile, b: Profile) -> str | None:
    """exact, close (one character off: a typo), different."""
    if not a.curp or not b.curp:
        return None
    if a.curp == b.curp:
        return "exact"
    close = len(a.curp) == len(b.curp) and sum(c != d for c, d in zip(a.curp, b.curp, strict=True)) == 1
    return "close" if close else "different"


def ssn(a: Profile, b: Profile) -> str | None:
    return _equal(a.ssn_hash, b.ssn_hash)


def ssn_last4(a: Profile, b: Profile) -> str | None:
    return _equal(a.ssn_last4, b.ssn_last4)


COMPARISONS: dict[str, Callable[[Profile, Profile], str | None]] = {
    "name": name,
    "birth_date": birth_date,
    "address": address,
    "postal_code": postal_code,
    "city": city,
    "email": email,
    "phone": phone,
    "curp": curp,
    "ssn": ssn,
    "ssn_last4": ssn_last4,
}


def compare(a: Profile, b: Profile) -> dict[str, str | None]:
    """The level of every comparison (None: not comparable)."""
    return {field: comparison(a, b) for field, comparison in COMPARISONS.items()}
