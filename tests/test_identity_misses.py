"""The identity benchmark's diagnosis (benchmarks/identity_misses.py): each missed true pair gets the first
cause that holds, and each blocking key type is credited with the pairs it alone brings together."""

from __future__ import annotations

import pytest

from benchmarks.identity_misses import KeyFigures, key_figures, miss_cause

SAME_NAME = {"name": "exact", "address": "exact", "postal_code": "exact"}


@pytest.mark.parametrize(
    ("shared_key", "levels", "probability", "in_review", "cause"),
    [
        # No shared key comes first: whatever the levels say, blocking never met the pair.
        (False, {**SAME_NAME, "birth_date": "exact"}, 1.0, False, "not a candidate"),
        # The name and the birth date both disagree outright: two people of one household.
        (True, {"name": "different", "birth_date": "different", "address": "exact"}, 0.9, False, "apart"),
        (True, {"name": "exact", "birth_date": "exact"}, 0.2, False, "below review"),
        (True, {**SAME_NAME, "birth_date": "different"}, 1.0, True, "review: birth_date veto"),
        (True, {"name": "given_differs", "birth_date": "exact"}, 1.0, True, "review: name veto"),
        (True, {"name": "exact", "birth_date": "near"}, 0.9, True, "review: below match"),
        (True, {"name": "exact", "birth_date": "exact"}, 1.0, True, "review: other"),
        (True, {"name": "exact", "birth_date": "exact"}, 1.0, False, "not linked, other"),
    ],
)
def test_a_missed_pair_gets_the_first_cause_that_holds(
    shared_key: bool, levels: dict[str, str], probability: float, in_review: bool, cause: str
) -> None:
    assert miss_cause(shared_key, levels, probability, in_review, 0.5, 0.99) == cause


def test_a_key_type_is_credited_alone_only_with_pairs_no_other_type_meets() -> None:
    keys = {
        "a1": {("name_dob", "AN:1990"), ("email", "a@x")},
        "a2": {("name_dob", "AN:1990"), ("email", "a@x")},  # one person: met by both types
        "b1": {("name_dob", "BO:1980")},
        "b2": {("name_dob", "BO:1980")},  # one person: met by name_dob alone
        "c1": {("email", "c@x")},
        "c2": {("email", "c@x")},  # two people: a candidate pair that email alone makes
        "s1": {("name_dob", "AN:1990")},  # same source as a1: never a pair
    }
    source_of = {"a1": "p", "a2": "q", "b1": "p", "b2": "q", "c1": "p", "c2": "q", "s1": "p"}
    true = [("a1", "a2"), ("b1", "b2")]
    figures = {k.key_type: k for k in key_figures(keys, source_of, true, bound=10)}
    # s1 holds a1's name_dob key from a1's source: (a2, s1) is a cross-source candidate, not a true pair.
    assert figures["name_dob"] == KeyFigures(
        "name_dob", 0.71, true_pairs=2, true_only=1, candidates=3, candidates_only=2
    )
    assert figures["email"] == KeyFigures("email", 0.57, true_pairs=1, true_only=0, candidates=2, candidates_only=1)


def test_a_block_over_the_bound_meets_nobody_as_in_the_linker() -> None:
    keys = {p: {("dob_zip", "1990:2000")} for p in ("a", "b", "c")}
    source_of = {"a": "p", "b": "q", "c": "q"}
    [figures] = key_figures(keys, source_of, [("a", "b")], bound=2)
    assert (figures.true_pairs, figures.candidates) == (0, 0)
    [figures] = key_figures(keys, source_of, [("a", "b")], bound=3)
    assert (figures.true_pairs, figures.candidates) == (1, 2)
