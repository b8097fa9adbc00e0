"""Comparison levels, match keys, the model and the decision rules, table-driven on hand-made patients."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pipeline.identity import compare
from pipeline.identity.decide import Scored, decide
from pipeline.identity.golden import golden_record
from pipeline.identity.keys import match_keys
from pipeline.identity.model import MatchModel, probability
from pipeline.identity.profile import Profile, profile


def person(source: str = "a", **fields: Any) -> Profile:
    row = {"id": fields.pop("id", f"{source}-1"), **fields}
    return profile(row, source, fields.get("ssn_hash"))


DELIA = {"given_name": "Delia", "family_name": "Leiva Palacios"}


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        (DELIA, DELIA, "exact"),
        (DELIA, {"given_name": "Leiva Palacios", "family_name": "Delia"}, "exact"),  # parts swapped
        (DELIA, {"full_name": "Delia Leiva Palacios"}, "exact"),  # only a full name
        (DELIA, {"given_name": "Delia Leiva Palacios"}, "exact"),  # everything in one field
        (DELIA, {"given_name": "DELIA", "family_name": "LEIVA-PALACIOS"}, "exact"),  # case, hyphen
        (DELIA, {"given_name": "Delia", "family_name": "Leiva"}, "contained"),  # maternal surname left out
        (
            {"given_name": "María José", "family_name": "Ruiz"},
            {"given_name": "María", "family_name": "Ruiz"},
            "contained",
        ),
        (DELIA, {"given_name": "Dellia", "family_name": "Leyva Palacios"}, "similar"),  # typos
        (
            {"given_name": "José", "family_name": "Ruiz"},
            {"given_name": "Pepe", "family_name": "Ruiz"},
            "exact",
        ),  # nickname
        (DELIA, {"given_name": "Delia", "family_name": "Gómez Palacios"}, "surname_differs"),  # a changed surname
        (DELIA, {"given_name": "Delia", "family_name": "Ottens"}, "family_differs"),  # a surname replaced
        (DELIA, {"given_name": "D.", "family_name": "Leiva Palacios"}, "similar"),  # an initial
        (DELIA, {"full_name": "Palacios Leiva, Delia"}, "exact"),  # any order, one string
        (
            {"given_name": "Ana", "family_name": "de la Cruz"},
            {"full_name": "Ana Cruz"},
            "exact",
        ),  # particles
        (
            {"given_name": "John", "family_name": "van der Berg"},
            {"given_name": "J", "family_name": "Berg"},
            "similar",
        ),  # particles and an initial
        (DELIA, {"given_name": "Rosa", "family_name": "Leiva Palacios"}, "given_differs"),  # a twin sister
        (DELIA, {"family_name": "Leiva"}, "one_name"),  # one side has only one of the names
        (DELIA, {"given_name": "Ramón", "family_name": "Quintero"}, "different"),
        (DELIA, {}, None),
    ],
)
def test_name_levels(a: dict[str, str], b: dict[str, str], level: str | None) -> None:
    assert compare.name(person(**a), person(**b)) == level
    assert compare.name(person(**b), person(**a)) == level  # symmetric


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        ("1992-02-06", "1992-02-06", "exact"),
        ("1992-02-06", "1992-02-07", "close"),  # a day off
        ("1992-02-06", "1993-02-06", "close"),  # one digit off
        ("1993-02-28", "1993-03-01", "close"),  # a day off across the month: three digits differ
        ("1992-02-06", "1992-06-02", "swapped"),  # day and month
        ("1962-02-06", "1926-02-06", "transposed"),  # two adjacent digits
        ("1989-02-06", "1990-02-06", "year_off"),  # a year apart: more than one digit
        ("1992-02-06", "1985-11-30", "near"),  # mistyped beyond a digit or two
        ("1992-02-06", "1962-11-30", "different"),  # a generation apart
        ("1992-02-06", None, None),
    ],
)
def test_birth_date_levels(a: str, b: str | None, level: str | None) -> None:
    x, y = person(birth_date=dt.date.fromisoformat(a)), person(birth_date=b and dt.date.fromisoformat(b))
    assert compare.birth_date(x, y) == level


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        ("Calle Guatemala 523", "Calle Guatemala 523 Int. 4", "exact"),  # the unit is not the street
        ("Calle Guatemala 523", "523 Guatemala St", "exact"),  # number first, street word dropped
        ("Calle Guatemala 523", "Calle Guatemala 12", "street"),  # same street, another number
        ("Calle Guatemala 523", "Calle Guatemala", "street"),
        ("Calle Guatemala 523", "Avenida Juárez 523", "different"),  # same number, another street
        ("65 Jacka Crescent, Rmbe 770", "65 Jacka Crescent", "exact"),  # a second line glued on
        ("73 Bynoe Place, Rhosewyn", "73 Rhosewyn, Bynoe Place", "exact"),  # the lines in another order
        ("14 Arabana Street, Tatyara", "14 Arabana St", "exact"),  # the street word abbreviated
        ("Calle Guatemala 523", None, None),
    ],
)
def test_address_levels(a: str, b: str | None, level: str | None) -> None:
    assert compare.address(person(address_line=a), person(address_line=b)) == level


@pytest.mark.parametrize(
    ("comparison", "field", "a", "b", "level"),
    [
        (compare.email, "email", "ana@x.mx", "ANA@x.mx ", "exact"),
        (compare.email, "email", "ana@x.mx", "ana@y.com", "local"),
        (compare.email, "email", "ana@x.mx", "bea@x.mx", "different"),
        (compare.phone, "phone", "+525512345678", "+525512345678", "exact"),
        (compare.phone, "phone", "+525512345678", "+13312345678", "last7"),
        (compare.phone, "phone", "+525512345678", "+525598765432", "different"),
        (compare.curp, "curp", "LEPD920206MDFVLL09", "LEPD920206MDFVLL09", "exact"),
        (compare.curp, "curp", "LEPD920206MDFVLL09", "LEPD920206MDFVLL08", "close"),
        (compare.curp, "curp", "LEPD920206MDFVLL09", "RUAA800101HDFZNN01", "different"),
        (compare.postal_code, "postal_code", "06700", "06700", "exact"),
        (compare.postal_code, "postal_code", "06700", "06701", "close"),  # a digit mistyped
        (compare.postal_code, "postal_code", "2325", "2352", "close"),  # two digits swapped
        (compare.postal_code, "postal_code", "06700", "44100", "different"),
        (compare.city, "city", "Ciudad de México", "CIUDAD DE MEXICO", "exact"),
        (compare.city, "city", "Puebla", "Monterrey", "different"),
        (compare.ssn, "ssn_hash", "ab" * 32, "ab" * 32, "exact"),
        (compare.ssn, "ssn_hash", "ab" * 32, "cd" * 32, "different"),
        (compare.ssn_last4, "ssn_last4", "6789", "6789", "exact"),
        (compare.ssn_last4, "ssn_last4", "6789", None, None),
    ],
)
def test_identifier_levels(comparison: Any, field: str, a: str, b: str | None, level: str | None) -> None:
    assert comparison(person(**{field: a}), person(**{field: b})) == level


def test_every_level_a_comparison_names_has_a_default_weight() -> None:
    model = MatchModel()
    assert set(model.levels) == set(compare.COMPARISONS)
    for levels in model.levels.values():
        for m, u in levels.values():
            assert 0 < m < 1 and 0 < u < 1
        assert sum(m for m, _ in levels.values()) == pytest.approx(1, abs=1e-6)
        assert sum(u for _, u in levels.values()) == pytest.approx(1, abs=1e-6)


def test_agreement_raises_the_score_and_disagreement_lowers_it() -> None:
    model = MatchModel()
    base = {**DELIA, "birth_date": dt.date(1992, 2, 6)}
    same, _ = model.score(compare.compare(person(**base), person("b", **base)))
    moved, _ = model.score(
        compare.compare(person(**base, postal_code="06700"), person("b", **base, postal_code="44100"))
    )
    stranger, _ = model.score(
        compare.compare(
            person(**base), person("b", given_name="Ramón", family_name="Quintero", birth_date=dt.date(1950, 1, 1))
        )
    )
    assert stranger < 0.01 < moved < same
    assert probability(0) == 0.5 and probability(1000) == 1.0


def test_match_keys_block_typos_and_missing_parts_together() -> None:
    born = dt.date(1992, 2, 6)
    full = set(match_keys(person(**DELIA, birth_date=born)))
    typo = set(match_keys(person(given_name="Delia", family_name="Leyva", birth_date=born)))
    assert ("name_dob", "TL:1992-02-06") in full & typo  # Delia's code and the birth date: enough alone
    assert ("ssn", "h" * 64) in match_keys(person(ssn_hash="h" * 64))


def _scored(person_id: str, p: float, name: str = "exact", weight: float = 0.0, **levels: str) -> Scored:
    return Scored(person_id, f"{person_id}-member", p, {"weight": weight}, {"name": name, **levels})


@pytest.mark.parametrize(
    ("scored", "sources", "rejected", "join", "possible"),
    [
        ([_scored("X", 0.999)], {}, set(), "X", []),
        ([_scored("X", 0.9)], {}, set(), None, ["X"]),  # review band
        ([_scored("X", 0.2)], {}, set(), None, []),  # below review
        ([_scored("X", 0.999)], {"X": {"a"}}, set(), None, ["X"]),  # the person has a patient of this source
        ([_scored("X", 0.999)], {}, {"X"}, None, []),  # a manual rejection
        ([_scored("X", 0.999), _scored("Y", 0.995)], {}, set(), None, ["X", "Y"]),  # two persons: merge nothing
        ([_scored("X", 0.9999, name="given_differs")], {}, set(), None, ["X"]),  # a twin
        ([_scored("X", 0.9999, name="given_differs", curp="exact")], {}, set(), "X", []),  # an identifier agrees
        ([_scored("X", 0.9999, name="different")], {}, set(), "X", []),  # every other field outweighs the names
        ([_scored("X", 0.999), _scored("Y", 0.7)], {}, set(), "X", ["Y"]),
        ([_scored("X", 0.9999, birth_date="different")], {}, set(), None, ["X"]),  # father and son of one name
        # Another given name and another birth date: only the household agrees, no review either.
        ([_scored("X", 0.9999, name="given_differs", birth_date="different")], {}, set(), None, []),
        ([_scored("X", 0.9999, name="different", birth_date="different")], {}, set(), None, []),  # a spouse
        ([_scored("X", 0.9999, name="given_differs", birth_date="different", ssn="exact")], {}, set(), "X", []),
        ([_scored("X", 0.9999, name="given_differs", email="different")], {}, set(), None, []),  # a twin's own e-mail
        ([_scored("X", 0.9999, name="given_differs", curp="different")], {}, set(), None, []),
        ([_scored("X", 0.9999, birth_date="near")], {}, set(), "X", []),  # a date mistyped, not a generation
        ([_scored("X", 0.9999, curp="different")], {}, set(), None, []),  # another CURP: another person
        ([_scored("X", 0.9999, curp="close")], {}, set(), "X", []),  # a typo in it
        ([_scored("X", 0.9999, curp="different", ssn="exact")], {}, set(), "X", []),
        # A person 2**10 times likelier settles the others: neither a second match nor a review.
        ([_scored("X", 0.9999, weight=40), _scored("Y", 0.999, weight=20)], {}, set(), "X", []),
        ([_scored("X", 0.9999, weight=40), _scored("Y", 0.9, weight=20)], {}, set(), "X", []),
        ([_scored("X", 0.9999, weight=40), _scored("Y", 0.9, weight=35)], {}, set(), "X", ["Y"]),
        ([_scored("X", 0.9999, birth_date="close")], {}, set(), "X", []),  # a typo in the date
    ],
)
def test_decisions(
    scored: list[Scored], sources: dict[str, set[str]], rejected: set[str], join: str | None, possible: list[str]
) -> None:
    decision = decide(person("a"), {s.person_id: s for s in scored}, sources, rejected, 0.99, 0.5)
    assert (decision.join.person_id if decision.join else None) == join
    assert sorted(p.person_id for p in decision.possible) == possible


def test_a_patient_matching_its_own_person_and_another_stays_where_it_is() -> None:
    scored = {s.person_id: s for s in (_scored("X", 0.999), _scored("Y", 0.995))}
    decision = decide(person("a"), scored, {}, set(), 0.99, 0.5, current="Y")
    assert decision.join is not None and decision.join.person_id == "Y"
    assert [p.person_id for p in decision.possible] == ["X"]


def test_golden_record_prefers_the_configured_source_then_the_newest_value() -> None:
    old, new = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    patients = [
        {
            "id": "1",
            "source": "gauges",
            "updated_at": new,
            "email": "new@x.mx",
            "phone": None,
            "sex": "unknown",
            "active": False,
        },
        {
            "id": "2",
            "source": "particle",
            "updated_at": old,
            "email": "old@x.mx",
            "phone": "+5255",
            "sex": "female",
            "active": True,
        },
    ]
    fields = ("email", "phone", "sex", "active")
    assert golden_record(patients, fields, {}) == {
        "email": "new@x.mx",
        "phone": "+5255",
        "sex": "female",
        "active": True,
    }
    chosen = golden_record(patients, fields, {"email": ["particle"]})
    assert chosen["email"] == "old@x.mx"


def test_a_level_no_comparison_declares_cannot_be_returned() -> None:
    from pipeline.identity.compare import Comparison, Level

    declared = Comparison("x", "a field", (Level("exact", "equal", 0.9, 0.1),), lambda a, b: "close")
    with pytest.raises(ValueError, match="no level 'close'"):
        declared(person(), person())


def test_the_readme_lists_the_declared_comparisons_and_keys() -> None:
    from pathlib import Path

    from pipeline.identity.__main__ import markdown

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("<!-- identity-declaration")
    section = readme[readme.index("\n", start) + 1 : readme.index("<!-- /identity-declaration -->")]
    assert section == markdown(), "run `python -m pipeline.identity` and paste its output into the README"


def test_new_person_ids_are_unique_and_sort_by_the_time_they_were_made() -> None:
    import time
    import uuid

    from canonical.ids import time_ordered_id

    first = [time_ordered_id() for _ in range(1000)]
    time.sleep(0.002)
    later = time_ordered_id()
    assert len(set(first)) == 1000 and all(uuid.UUID(i).version == 7 for i in first)
    assert max(first) < later  # a later millisecond sorts after every id of an earlier one
