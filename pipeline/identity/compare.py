"""Identity declared as data: every field comparison once, with its ordered levels and what each weighs.

A comparison (as in Splink's ``comparison_library``) is an ordered list of levels, the strongest agreement
first and ``different`` last; each level carries its meaning, its default m (the share of one person's record
pairs at that level) and u (the share of pairs of two different people), and whether it is a veto: evidence of
two people who share a household (twins, siblings, a father and son of one name), which keeps a pair from an
automatic link unless an identifier agrees, or apart: two different people, not even a possible match. A
comparison returns one of its own labels, or None when either
side lacks the field (a missing field is no evidence either way); a label it does not declare is an error, so a
level without a weight cannot exist.

The model (``model``), training (``training``), the decisions (``decide``), ``review list`` and the README's
list of levels all read ``COMPARISONS``. Pure and table-tested (tests/test_identity_compare.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from rapidfuzz.distance import OSA, JaroWinkler
from rapidfuzz.fuzz import ratio, token_set_ratio

from pipeline.identity.profile import Profile

NAME_SIMILAR = 0.88  # Jaro-Winkler at or above: one name token spelt two ways ("Gonzales", "Gonzalez")
# Tokens this long one edit apart (a letter changed, dropped, doubled or two swapped) after the same first letter are
# one name too: Jaro-Winkler scores an edit near the start low ("Jiminez", "Jeminez": 0.86). Not shorter ones, nor
# another first letter: twins' names are often one edit apart there ("Dana" and "Dina", "Mason" and "Jason").
ONE_EDIT_LENGTH = 5
# A surname from four letters ("Loya", "Loea"): twins and siblings share their surnames, so a surname one edit off
# beside agreeing given names is a typo, never a second person's name.
SURNAME_EDIT_LENGTH = 4
CITY_SIMILAR = 0.92
GENERATION = 15  # years: birth dates this far apart are a parent's and a child's, not one date mistyped
STREET_SIMILAR = 85.0  # rapidfuzz token-set ratio: street words in any order, a unit or locality on one side only


@dataclass(frozen=True)
class Level:
    label: str
    meaning: str
    m: float
    u: float
    veto: bool = False  # twin or household evidence: never an automatic link unless an identifier agrees
    tf: bool = False  # its u is the agreeing value's frequency, where a trained model knows it (Splink's tf)
    apart: bool = False  # two people: not even a possible match, unless an identifier agrees


@dataclass(frozen=True)
class Comparison:
    name: str
    meaning: str
    levels: tuple[Level, ...]  # strongest first, ``different`` last
    function: Callable[[Profile, Profile], str | None] = field(repr=False)
    identifier: bool = False  # its exact agreement is an identifier agreeing: it lifts every veto
    # Comparisons of one group disagree together (a move changes the address, the postal code and the city at
    # once): where several disagree, only the strongest disagreement counts (``model.MatchModel.score``).
    group: str | None = None
    # The values two records agree on at a ``tf`` level: their frequencies multiplied are that pair's u.
    agreeing: Callable[[Profile, Profile], tuple[str, ...]] | None = field(default=None, repr=False)
    labels: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", frozenset(level.label for level in self.levels))

    def __call__(self, a: Profile, b: Profile) -> str | None:
        label = self.function(a, b)
        if label is not None and label not in self.labels:
            raise ValueError(f"comparison {self.name} has no level {label!r}")
        return label

    def level(self, label: str) -> Level:
        return next(level for level in self.levels if level.label == label)


def _levels(*agreeing: Level, different: str = "nothing above") -> tuple[Level, ...]:
    """The agreeing levels as given, and ``different`` taking what is left of m and of u (its meaning may start
    with "veto: " or "apart: ", which sets that flag)."""
    m_left = 1 - sum(level.m for level in agreeing)
    u_left = 1 - sum(level.u for level in agreeing)
    flag, _, meaning = different.partition(": ") if different.startswith(("veto: ", "apart: ")) else ("", "", different)
    last = Level("different", meaning, m_left, u_left, veto=flag == "veto", apart=flag == "apart")
    return (*agreeing, last)


def _agree(x: str, y: str, edit_from: int = ONE_EDIT_LENGTH) -> bool:
    """Two name tokens that are one name: equal, spelt two ways, or an initial and a name it begins; one edit apart
    from ``edit_from`` letters on, after the same first letter."""
    if x == y:
        return True
    if len(x) == 1 or len(y) == 1:
        return x[0] == y[0]
    if JaroWinkler.similarity(x, y) >= NAME_SIMILAR:
        return True
    return min(len(x), len(y)) >= edit_from and x[0] == y[0] and OSA.distance(x, y, score_cutoff=1) <= 1


def _unmatched(these: Sequence[str], those: Sequence[str], exact: bool, edit_from: int = ONE_EDIT_LENGTH) -> list[str]:
    """The tokens of ``these`` left over once each is paired with a distinct equal (or agreeing) one of ``those``."""
    left = list(those)
    missing = []
    for token in these:
        found = next(
            (i for i, other in enumerate(left) if (token == other if exact else _agree(token, other, edit_from))),
            None,
        )
        if found is None:
            missing.append(token)
        else:
            del left[found]
    return missing


def _split(p: Profile) -> tuple[tuple[str, ...], tuple[str, ...]]:
    # Given names first in every source; a source that did not tell the parts apart has one given name.
    given = p.given or 1
    return p.tokens[:given], p.tokens[given:]


def _within(xs: Sequence[str], ys: Sequence[str], edit_from: int = ONE_EDIT_LENGTH) -> bool:
    """Every token of the shorter of the two agrees with a distinct token of the other."""
    short, long = (xs, ys) if len(xs) <= len(ys) else (ys, xs)
    return not _unmatched(short, long, exact=False, edit_from=edit_from)


def _name(a: Profile, b: Profile) -> str | None:
    if not a.tokens or not b.tokens:
        return None
    short, long = (a.tokens, b.tokens) if len(a.tokens) <= len(b.tokens) else (b.tokens, a.tokens)
    if sorted(short) == sorted(long):
        return "exact"
    if len(short) >= 2 and not _unmatched(short, long, exact=True):
        return "contained"
    if len(short) >= 2 and not _unmatched(short, long, exact=False):
        return "similar"
    if len(short) == 1 and not _unmatched(short, long, exact=False):
        return "one_name"
    (given_a, family_a), (given_b, family_b) = _split(a), _split(b)
    if (
        given_a
        and given_b
        and family_a
        and family_b
        and _within(given_a, given_b)
        and _within(family_a, family_b, edit_from=SURNAME_EDIT_LENGTH)
    ):
        return "similar"
    given_agree = len(_unmatched(given_a, given_b, exact=False)) < len(given_a)
    family_shared = len(_unmatched(family_a, family_b, exact=False)) < len(family_a)
    if given_agree and family_shared:
        return "surname_differs"
    if given_agree and family_a and family_b:
        return "family_differs"
    if family_shared:
        return "given_differs"
    return "different"


NAME = Comparison(
    "name",
    "Name tokens, whatever the source's split: folded to ASCII capitals, particles dropped, nicknames resolved",
    _levels(
        Level("exact", "the same tokens in any order (given and family swapped included)", 0.55, 1e-5, tf=True),
        Level(
            "contained",
            "one side's tokens all among the other's: a second given name or surname left out",
            0.24,
            1e-5,
            tf=True,
        ),
        Level(
            "similar",
            "each token of one side spelt alike (or an initial) among the other's; a surname one edit off from four "
            "letters",
            0.12,
            1e-4,
        ),
        Level("one_name", "one side has a single name, which the other has", 0.01, 2e-3),
        # u: two people's records agree on given names and a surname while another surname differs about once in
        # 10,000 pairs (measured on random cross-source pairs: the sandbox's narrow name pool 1e-4, FEBRL 2 none
        # in 400,000): the maternal surname a source dropped or replaced, beside the rest of the name.
        Level("surname_differs", "the given names and one surname agree, another surname differs", 0.04, 1e-4),
        Level("family_differs", "the given names agree, no surname does: a surname replaced", 0.015, 4e-3),
        Level(
            "given_differs", "a surname agrees, the given names differ outright: twins, siblings", 0.01, 2e-3, veto=True
        ),
        different="no token in common",
    ),
    _name,
    agreeing=lambda a, b: min(a.tokens, b.tokens, key=len),
)


def _digits_transposed(x: str, y: str) -> bool:
    """Two adjacent characters swapped, the rest equal ("1962" and "1926")."""
    diff = [i for i, (c, d) in enumerate(zip(x, y, strict=True)) if c != d]
    return len(diff) == 2 and diff[1] == diff[0] + 1 and x[diff[0]] == y[diff[1]] and x[diff[1]] == y[diff[0]]


def _birth_date(a: Profile, b: Profile) -> str | None:
    x, y = a.birth_date, b.birth_date
    if x is None or y is None:
        return None
    if x == y:
        return "exact"
    if abs((x - y).days) == 1:
        return "day_off"
    ix, iy = x.isoformat(), y.isoformat()
    if sum(c != d for c, d in zip(ix, iy, strict=True)) == 1:
        return "close"
    if _digits_transposed(ix, iy):
        return "transposed"
    if x.year == y.year and x.month == y.day and x.day == y.month:
        return "swapped"
    if (x.month, x.day) == (y.month, y.day) and abs(x.year - y.year) == 1:
        return "year_off"
    return "near" if abs(x.year - y.year) < GENERATION else "different"


BIRTH_DATE = Comparison(
    "birth_date",
    "The birth date",
    _levels(
        Level("exact", "the same date", 0.93, 5e-5),
        # u: two dates of people born over some 80 years are a day apart about 2 times in 29,000, one digit
        # apart about 25 times (a year's tens or units, a month's or a day's digit).
        Level("day_off", "a day apart", 0.02, 7e-5),
        Level("close", "one digit mistyped", 0.01, 9e-4),
        Level("transposed", "two adjacent digits swapped (1962 and 1926)", 0.01, 1e-5),
        Level("swapped", "day and month swapped", 0.005, 2e-5),
        Level("year_off", "the same day and month a year apart", 0.01, 5e-5),
        Level("near", f"another date less than {GENERATION} years apart: a date mistyped beyond the above", 0.007, 0.4),
        different=f"veto: {GENERATION} years apart or more: a parent and child of one name",
    ),
    _birth_date,
)


def _street_agrees(x: str, y: str) -> bool:
    """The same street: its words in any order, a locality on one side only, or its letters alike once spaces are
    set aside ("Lance Hill", "Lancehill"; "Edith Hall", "Edit Hhall")."""
    return (
        x == y
        or token_set_ratio(x, y) >= STREET_SIMILAR
        or ratio(x.replace(" ", ""), y.replace(" ", "")) >= STREET_SIMILAR
    )


def _address(a: Profile, b: Profile) -> str | None:
    if not a.street or not b.street:
        return None
    if not _street_agrees(a.street, b.street):
        return "different"
    if a.number and b.number and a.number == b.number:
        return "exact"
    return "street"


ADDRESS = Comparison(
    "address",
    "The street and its number, parsed from the address line (the unit and words such as Calle or St apart, glued on "
    "or not)",
    _levels(
        Level(
            "exact",
            "the same number on the same street (its words in any order or run together, a unit on one side)",
            0.45,
            1e-5,
        ),
        Level("street", "the same street, another or no number", 0.1, 1e-3),
        different="another street",
    ),
    _address,
    group="residence",
)


def _postal_code(a: Profile, b: Profile) -> str | None:
    x, y = a.postal_code, b.postal_code
    if not x or not y:
        return None
    if x == y:
        return "exact"
    if len(x) == len(y) and (sum(c != d for c, d in zip(x, y, strict=True)) == 1 or _digits_transposed(x, y)):
        return "close"
    return "different"


POSTAL_CODE = Comparison(
    "postal_code",
    "The postal code",
    _levels(
        Level("exact", "the same code", 0.5, 1e-3, tf=True),
        Level("close", "one digit mistyped, or two adjacent digits swapped", 0.05, 8e-3),
        different="another code",
    ),
    _postal_code,
    agreeing=lambda a, b: (a.postal_code,) if a.postal_code else (),
    group="residence",
)


def _city(a: Profile, b: Profile) -> str | None:
    if not a.city or not b.city:
        return None
    return "exact" if a.city == b.city or JaroWinkler.similarity(a.city, b.city) >= CITY_SIMILAR else "different"


CITY = Comparison(
    "city",
    "The city or town",
    _levels(Level("exact", "the same city, spelt alike", 0.5, 0.02, tf=True), different="another city"),
    _city,
    agreeing=lambda a, b: (a.city,) if a.city else (),
    group="residence",
)


def _email(a: Profile, b: Profile) -> str | None:
    if not a.email or not b.email:
        return None
    if a.email == b.email:
        return "exact"
    return "local" if a.email.partition("@")[0] == b.email.partition("@")[0] else "different"


EMAIL = Comparison(
    "email",
    "The e-mail address, case aside",
    _levels(
        Level("exact", "the same address", 0.85, 1e-5),
        Level("local", "the same mailbox name at another provider", 0.05, 1e-4),
        different="another address",
    ),
    _email,
)


def _phone(a: Profile, b: Profile) -> str | None:
    if not a.phone or not b.phone:
        return None
    if a.phone == b.phone:
        return "exact"
    return "last7" if a.phone[-7:] == b.phone[-7:] else "different"


PHONE = Comparison(
    "phone",
    "The phone number, E.164 where it parsed",
    _levels(
        Level("exact", "the same number", 0.5, 1e-6),
        Level("last7", "the same subscriber number under another area or country code", 0.05, 1e-5),
        different="another number",
    ),
    _phone,
)


def _curp(a: Profile, b: Profile) -> str | None:
    if not a.curp or not b.curp:
        return None
    if a.curp == b.curp:
        return "exact"
    close = len(a.curp) == len(b.curp) and sum(c != d for c, d in zip(a.curp, b.curp, strict=True)) == 1
    return "close" if close else "different"


CURP = Comparison(
    "curp",
    "The CURP (Mexico's population registry key)",
    _levels(
        Level("exact", "the same key", 0.96, 1e-7),
        Level("close", "one character off: a typo", 0.02, 1e-6),
        different="apart: another key (two characters or more): another person",
    ),
    _curp,
    identifier=True,
)


def _equal(x: str | None, y: str | None) -> str | None:
    if not x or not y:
        return None
    return "exact" if x == y else "different"


SSN = Comparison(
    "ssn",
    "The SSN, compared as its keyed hash (the SSN itself is never stored)",
    _levels(Level("exact", "the same SSN", 0.97, 1e-8), different="another SSN"),
    lambda a, b: _equal(a.ssn_hash, b.ssn_hash),
    identifier=True,
)
SSN_LAST4 = Comparison(
    "ssn_last4",
    "The SSN's last four digits, where a source keeps no more",
    _levels(Level("exact", "the same four digits", 0.97, 1e-4), different="other digits"),
    lambda a, b: _equal(a.ssn_last4, b.ssn_last4),
)

COMPARISONS: dict[str, Comparison] = {
    c.name: c for c in (NAME, BIRTH_DATE, ADDRESS, POSTAL_CODE, CITY, EMAIL, PHONE, CURP, SSN, SSN_LAST4)
}
# Each comparison's function by its name, for callers that want one field's level (tests, review screens).
name, birth_date, address, postal_code, city = NAME, BIRTH_DATE, ADDRESS, POSTAL_CODE, CITY
email, phone, curp, ssn, ssn_last4 = EMAIL, PHONE, CURP, SSN, SSN_LAST4


GROUP = {c.name: c.group for c in COMPARISONS.values() if c.group}
TF_LEVELS = {c.name: frozenset(level.label for level in c.levels if level.tf) for c in COMPARISONS.values()}


def compare(a: Profile, b: Profile) -> dict[str, str | None]:
    """The level of every comparison (None: not comparable)."""
    return {c.name: c(a, b) for c in COMPARISONS.values()}


def agreeing_values(a: Profile, b: Profile, levels: Mapping[str, str | None]) -> dict[str, tuple[str, ...]]:
    """For each comparison at a ``tf`` level, the values the two records agree on (a name's tokens, a code)."""
    found = {}
    for name, level in levels.items():
        comparison = COMPARISONS[name]
        if level in TF_LEVELS[name] and comparison.agreeing is not None:
            found[name] = comparison.agreeing(a, b)
    return found
