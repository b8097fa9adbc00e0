"""``link --train``: the model re-estimated from patients whose truth is known, and stored as a version."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from pipeline.identity.model import MatchModel
from pipeline.identity.profile import Profile, profile
from pipeline.identity.training import train_on
from sandbox.noise import noisy
from sandbox.people import generate_people


def _profiles(n: int) -> list[Profile]:
    """n people, each as three sources hold them (with the sandbox's noise)."""
    people = generate_people(n, 21)
    out = []
    for source in ("a", "b", "c"):
        for i, p in enumerate(noisy(people, source, 21)):
            row = {
                "id": f"{source}{i}",
                "given_name": p.given_names,
                "family_name": f"{p.surname1} {p.surname2}",
                "birth_date": dt.date.fromisoformat(p.birth_date),
                "email": p.email or None,
                "postal_code": p.zip_code,
                "city": p.city,
                "address_line": p.street,
            }
            out.append(profile(row, source))
    return out


@pytest.fixture
def fewer_random_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """u from 10,000 random pairs, not 100,000: enough among a few hundred patients, at a tenth of the time (two
    trainings on 100,000 pairs took 24 s)."""
    from pipeline.identity import training

    monkeypatch.setattr(training, "RANDOM_PAIRS", 10_000)


@pytest.mark.usefixtures("fewer_random_pairs")
def test_training_learns_that_one_person_agrees_and_strangers_do_not() -> None:
    trained, summary = train_on(_profiles(400), MatchModel())
    assert summary["rules"]["dob"]["pairs"] > 0 and summary["patients"] == 1200
    for comparison in ("name", "birth_date", "email", "postal_code"):
        assert trained.weight(comparison, "exact") > 5, comparison  # agreement is evidence for
        assert trained.weight(comparison, "different") < 0, comparison  # and disagreement against
    # Three records a person among 1,200: about two in a thousand pairs are one person.
    assert 1e-4 < trained.prior < 1e-2
    json_model = trained.to_json()
    stored = MatchModel.from_json(json_model, 3)
    assert stored.levels == trained.levels and stored.tf == trained.tf and stored.tf_floor == trained.tf_floor
    assert trained.tf["name"] and trained.tf["postal_code"] and trained.tf["city"]


def test_training_refuses_too_few_patients() -> None:
    with pytest.raises(ValueError, match="too few"):
        train_on(_profiles(10), MatchModel())


@pytest.mark.usefixtures("fewer_random_pairs")  # both trainings draw the same pairs: u is not what differs
def test_stewards_labels_teach_m_the_levels_they_saw_one_person_at() -> None:
    profiles = _profiles(200)
    n = len(profiles) // 3
    # Twenty people whose second record a steward accepted although its given name is another one entirely.
    labels = []
    for i in range(20):
        a, b = profiles[i], profiles[n + i]
        renamed = Profile(**{**{f: getattr(b, f) for f in b.__slots__}, "tokens": ("ZACARIAS", *b.tokens[b.given :])})
        labels.append((a, renamed, True))
    plain, _ = train_on(profiles, MatchModel())
    taught, summary = train_on(profiles, MatchModel(), labels=labels)
    assert taught.levels["name"]["given_differs"][0] > 2 * plain.levels["name"]["given_differs"][0]
    assert summary["labels"]["accepted"] == 20 and summary["labels"]["rejected"] == 0


def test_the_labels_estimate_precision_and_recall_of_the_automatic_links() -> None:
    from pipeline.identity.training import label_estimates

    born = dt.date(1990, 5, 1)

    def p(pid: str, given: str, family: str = "Ruiz Gil", **more: Any) -> Profile:
        return profile({"id": pid, "given_name": given, "family_name": family, "birth_date": born, **more}, "s")

    same = (p("a", "Ana", email="ana@x.mx"), p("b", "Ana", email="ana@x.mx"))
    twin = (p("c", "Ana", email="ana@x.mx"), p("d", "Rosa", email="ana@x.mx"))  # vetoed: never linked
    weak = (p("e", "Ana", "Ruiz", birth_date=None), p("f", "Ana", "Gil", birth_date=None))  # far below
    labels = [(*same, True), (*same, True), (*twin, True), (*same, False), (*weak, False)]
    estimates = label_estimates(MatchModel(), labels, 0.99)
    assert estimates == {"accepted": 3, "rejected": 2, "precision": 2 / 3, "recall": 2 / 3}
    assert label_estimates(MatchModel(), [], 0.99) == {
        "accepted": 0,
        "rejected": 0,
        "precision": None,
        "recall": None,
    }


def test_agreeing_on_a_rare_name_weighs_more_than_on_a_common_one() -> None:
    from pipeline.identity.compare import agreeing_values, compare

    tf = {"name": {"MARIA": 0.05, "GARCIA": 0.04, "XOCHITL": 1e-4}}
    model = MatchModel(tf=tf, tf_floor={"name": 1e-5})
    common = [profile({"id": i, "given_name": "María", "family_name": "García"}, "s") for i in "ab"]
    rare = [profile({"id": i, "given_name": "Xóchitl", "family_name": "Quetzal"}, "s") for i in "ab"]

    def name_weight(a: Profile, b: Profile, m: MatchModel) -> float:
        levels = compare(a, b)
        return m.score(levels, agreeing_values(a, b, levels))[1]["fields"]["name"]["weight"]

    untrained = MatchModel()
    assert name_weight(*common, untrained) == name_weight(*rare, untrained)  # no tables: the level's u
    # 0.05 * 0.04 of patients share María García: far likelier by chance than Xóchitl (1e-4) Quetzal (unlisted).
    assert name_weight(*common, model) < name_weight(*common, untrained) < name_weight(*rare, model)
    # At most a hundred times the level's own odds: a name's tokens are not independent of one another.
    assert name_weight(*rare, model) <= name_weight(*rare, untrained) + math.log2(100) + 0.01
