"""Comparison levels, match keys, the model and the decision rules, table-driven on hand-made patients."""

from __future__ import annotations

import datetime as dt
import math
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
        (
            {"given_name": "Emilio", "family_name": "Jiminez"},
            {"given_name": "Emilio", "family_name": "Jeminez Ramos"},
            "similar",
        ),  # one edit near the start, where Jaro-Winkler scores low (0.86)
        (
            {"given_name": "Mason", "family_name": "Ruiz"},
            {"given_name": "Jason", "family_name": "Ruiz"},
            "given_differs",
        ),  # one edit, but another first letter: twins' names often differ so
        (
            {"given_name": "Dana", "family_name": "Ruiz"},
            {"given_name": "Dina", "family_name": "Ruiz"},
            "given_differs",
        ),  # one edit in a short name: two names
        (
            {"given_name": "Mariano", "family_name": "Loya Guajardo"},
            {"given_name": "Mariano", "family_name": "Loea-Guajardo"},
            "similar",
        ),  # one edit in a short surname: a typo (twins share surnames)
        (
            {"given_name": "Mariano", "family_name": "Loya"},
            {"given_name": "Mariano", "family_name": "Loea Guajardo"},
            "similar",
        ),  # ... with the maternal surname on one side only
        (
            {"given_name": "Dana", "family_name": "Loya"},
            {"given_name": "Dina", "family_name": "Loea"},
            "different",
        ),  # the given names stay strict: nothing agrees
        (
            {"given_name": "Mariano", "family_name": "Paz"},
            {"given_name": "Mariano", "family_name": "Pas"},
            "family_differs",
        ),  # three letters: too short to call one edit a typo
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
        ("1992-02-06", "1992-02-07", "day_off"),
        ("1992-02-06", "1993-02-06", "close"),  # one digit off
        ("1993-02-28", "1993-03-01", "day_off"),  # across the month: three digits differ
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
        ("15 Goodwinstreet", "15 Goodwin Street", "exact"),  # the street word glued on
        ("Callejuárez 12", "Calle Juárez 12", "exact"),
        ("19 Lance Hill, Kittani", "19 Lancehill Kittani", "exact"),  # a space lost
        ("4 Chillagoe, Edith Hall", "4 Chillagoestreet, Edit Hhall", "exact"),  # a space moved
        ("9 Broadway", "9 Broad Street", "different"),  # WAY is the street's own name, not a word glued on
        ("12 Harcourt Road", "12 Har Court", "different"),  # nor COURT: Harcourt is no Har Court
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


# Two records of one person as a Prescrypto (one name string, a Mexican address) and a Particle (a US address and
# phone) patient, with nothing they share but the name and the birth date; the default model's decision.
_BORN = dt.date(1954, 10, 7)
_MX = {"address_line": "Calle Guanajuato 750", "postal_code": "80482", "city": "Culiacán", "phone": "+526671234567"}
_US = {"address_line": "6760 Broadway", "postal_code": "61174", "city": "Rockford", "phone": "+18155550123"}


@pytest.mark.parametrize(
    ("name_a", "name_b", "linked"),
    [
        ("Aida Venegas García", ("Aida", "Venegas García"), True),
        ("Aida Venegas García", ("Aida", "Venegas"), True),  # the maternal surname left out
        ("Aida Venegas García", ("Aida", "Venegas Gómez"), True),  # the maternal surname replaced
        ("Aida Venegas García", ("Rosa", "Venegas García"), False),  # a twin: review
        ("Aida Venegas García", ("Aida", "Ortiz Luna"), False),  # every surname replaced: review
    ],
)
def test_the_default_model_links_a_replaced_maternal_surname_beside_the_birth_date(
    name_a: str, name_b: tuple[str, str], linked: bool
) -> None:
    a = person("prescrypto", full_name=name_a, birth_date=_BORN, **_MX)
    b = person("particle", given_name=name_b[0], family_name=name_b[1], birth_date=_BORN, **_US)
    p, evidence, levels = MatchModel().score_pair(a, b)
    decision = decide(b, {"X": Scored("X", a.patient_id, p, evidence, levels)}, {}, set(), 0.99, 0.5)
    assert (decision.join is not None) is linked, (levels, evidence["weight"])
    assert linked or [possible.person_id for possible in decision.possible] == ["X"]


def test_residence_fields_that_disagree_together_count_once() -> None:
    """A move changes the address, the postal code and the city at once: the strongest of those disagreements
    counts, not their sum; agreements all count."""
    model = MatchModel()
    levels = {"name": "exact", "birth_date": "exact", "address": "different", "postal_code": "different"}
    _, evidence = model.score({**levels, "city": "different"})
    fields = evidence["fields"]
    counted = [f for f in ("address", "postal_code", "city") if fields[f]["weight"] != 0]
    assert len(counted) == 1
    strongest = min(model.weight(f, "different") for f in ("address", "postal_code", "city"))
    assert fields[counted[0]]["weight"] == round(strongest, 2)
    prior = math.log2(model.prior / (1 - model.prior))
    names_and_date = prior + model.weight("name", "exact") + model.weight("birth_date", "exact")
    assert evidence["weight"] == pytest.approx(names_and_date + strongest, abs=0.01)
    _, and_phone = model.score({**levels, "city": "different", "phone": "different"})  # the phone is no group's
    assert and_phone["weight"] == pytest.approx(evidence["weight"] + model.weight("phone", "different"), abs=0.01)
    _, agreeing = model.score({**levels, "address": "exact", "postal_code": "exact"})
    both = model.weight("address", "exact") + model.weight("postal_code", "exact")
    assert agreeing["weight"] == pytest.approx(names_and_date + both, abs=0.01)


@pytest.mark.parametrize(
    ("levels", "same_source", "expected"),
    [
        ({"name": "exact", "birth_date": "exact"}, True, False),  # a source's duplicate registration
        ({"name": "exact", "birth_date": "exact", "ssn": "different"}, True, True),  # its own patients' SSNs
        ({"name": "exact", "birth_date": "exact", "ssn": "different"}, False, False),  # a typo between sources
        ({"name": "given_differs", "birth_date": "exact"}, True, True),  # twins one registrar kept apart
        ({"name": "given_differs", "birth_date": "exact"}, False, False),  # for review
        ({"name": "exact", "birth_date": "exact", "address": "different", "postal_code": "different"}, True, True),
        ({"name": "exact", "birth_date": "exact", "address": "different", "postal_code": "different"}, False, False),
        ({"name": "exact", "birth_date": "exact", "address": "different", "phone": "exact"}, True, False),
        ({"name": "exact", "birth_date": "exact", "address": "different"}, True, False),  # one compared: not enough
        ({"name": "given_differs", "birth_date": "exact", "ssn": "exact"}, True, False),  # an identifier agrees
    ],
)
def test_two_records_of_one_source_are_apart(levels: dict[str, str], same_source: bool, expected: bool) -> None:
    from pipeline.identity.decide import apart

    assert apart(levels, same_source=same_source) is expected


def test_a_person_with_a_member_the_patient_is_apart_from_is_no_candidate() -> None:
    """A namesake matches a person's record from a source without the field that sets the two apart (no CURP);
    its record of the source that has one disagrees: the person is left out, not offered for review."""
    from pipeline.identity.decide import best_per_person

    born = dt.date(1956, 7, 23)
    name = {"given_name": "Carmen", "family_name": "Martínez Mora", "birth_date": born}
    namesake = person("rx", id="n", **name, curp="MAMC560723MQRRRR01")
    own = person("rx", id="o", **name, curp="MAMC560723MPLRRR68")
    elsewhere = person("particle", id="e", **name)
    assert set(best_per_person(namesake, [(elsewhere, "X")], MatchModel())) == {"X"}
    assert best_per_person(namesake, [(elsewhere, "X"), (own, "X")], MatchModel()) == {}


def test_match_keys_block_typos_and_missing_parts_together() -> None:
    born = dt.date(1992, 2, 6)
    full = set(match_keys(person(**DELIA, birth_date=born)))
    typo = set(match_keys(person(given_name="Delia", family_name="Leyva", birth_date=born)))
    assert ("name_dob", "TL:1992-02-06") in full & typo  # Delia's code and the birth date: enough alone
    day_off = set(match_keys(person(**DELIA, birth_date=dt.date(1992, 2, 7))))
    assert {t for t, _ in full & day_off} == {"names_month"}  # two names and the month
    home = {"address_line": "Calle Guatemala 523", "postal_code": "06700"}
    renamed = set(match_keys(person(given_name="Delia", family_name="Ottens", birth_date=born, **home)))
    assert {t for t, _ in set(match_keys(person(**DELIA, birth_date=born, **home))) & renamed} >= {
        "dob_street",
        "street_zip",
    }
    glued = set(match_keys(person(**DELIA, birth_date=dt.date(1990, 1, 1), address_line="Calleguatemala 523")))
    assert "name_street" in {t for t, _ in set(match_keys(person(**DELIA, **home))) & glued}  # "Calle" glued on
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
