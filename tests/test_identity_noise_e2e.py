"""The sandbox's noisy people (sandbox.noise) through the four APIs and the real sync: every record lands, no
person holds two real people (twins, household members and namesakes included), and most true pairs link."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

from sandbox import gauges, particle, prescrypto
from sandbox.app import people_of
from sandbox.noise import hard_negatives, noisy
from sandbox.people import generate_people
from tests.support import count, engine_for, make_config, rows, run
from tests.test_identity_e2e import _sources

PEOPLE, SEED = 150, 11


def _truth() -> dict[tuple[str, str], int]:
    """(source name as the tests configure it, primary id) -> the index of the real person."""
    people = people_of(PEOPLE, SEED, noise=True)
    keys = {
        "rx": [str(r["id"]) for r in prescrypto.patient_records(noisy(people, "prescrypto", SEED), SEED)],
        "pf": [f"pat{i:06d}" for i in range(1, len(people) + 1)],
        "ga": [str(r["id"]) for r in gauges.patient_records(noisy(people, "gauges", SEED), SEED)],
        "pa": [str(r["patient_id"]) for r in particle.patient_records(noisy(people, "particle", SEED), SEED)],
    }
    return {(source, key): i for source, listed in keys.items() for i, key in enumerate(listed)}


def test_noisy_people_and_their_hard_negatives_are_told_apart(sandbox: Any, sqlite_url: str) -> None:
    sandbox.reset(patients=PEOPLE, medics=5, seed=SEED, noise=True)
    config = make_config(sqlite_url, _sources(sandbox))
    engine = engine_for(config)
    assert all(r.ok for r in run(config, engine, "sweep"))
    assert count(engine, "quarantine") == 0
    truth = _truth()
    landed = rows(
        engine,
        "SELECT c.source, c.id_value, p.person_id FROM crosswalk c JOIN patient p ON p.id = c.entity_id "
        "WHERE c.entity_type = 'patient' AND c.id_type IN ('id', 'unique_id', 'patient_id')",
    )
    assert len(landed) == len(truth)
    people_in: dict[str, set[int]] = defaultdict(set)
    persons_of: dict[int, set[str]] = defaultdict(set)
    for r in landed:
        real = truth[(r["source"], r["id_value"])]
        people_in[r["person_id"]].add(real)
        persons_of[real].add(r["person_id"])
    assert all(len(real) == 1 for real in people_in.values()), "a person holds two real people"
    for j, (original, kind, _) in enumerate(hard_negatives(generate_people(PEOPLE, SEED), SEED)):
        assert not persons_of[PEOPLE + j] & persons_of[original], f"a {kind} was linked to the person it imitates"
    true_pairs = sum(4 * 3 // 2 for _ in persons_of)
    linked = sum(len(list(itertools.combinations(range(n), 2))) for n in _sizes(landed, truth))
    assert linked >= 0.9 * true_pairs  # the benchmark measures it exactly (benchmarks/identity.py)


def _sizes(landed: list[dict[str, Any]], truth: dict[tuple[str, str], int]) -> list[int]:
    """How many of each real person's records share each of its persons."""
    groups: dict[tuple[int, str], int] = defaultdict(int)
    for r in landed:
        groups[(truth[(r["source"], r["id_value"])], r["person_id"])] += 1
    return list(groups.values())
