"""Why true pairs were not linked, and what each blocking key brings: read off a database that
``benchmarks.identity --diagnose`` synced and linked with the default model.

A true pair that did not become one person has one cause, the first of these that holds:
- **not a candidate**: the two patients share no stored match key (blocking never brought them together);
- **apart**: the decision rules keep them apart (``pipeline.identity.decide.apart``): not even a possible match;
- **below review**: their match probability is under ``identity.review_threshold``;
- **review: <field> veto**: a possible match held back by a veto level of that field (a birth date that differs
  beside the same name is a father and son of one name as often as one date mistyped);
- **review: below match**: a possible match under ``identity.match_threshold``;
- **review: other**: a possible match for another reason (the person has a patient of this source, more than
  one person matches);
- **not linked, other**: none of the above (the patient joined another person that scored higher).
Each cause is counted apart for the twin-like pairs, which the rules send to review by design.

For the blocking keys: per key type, the keys a patient holds on average, the true pairs that share a key of
that type, those that share no key of any other type (which removing the type would lose), and the same two
counts over every cross-source candidate pair (what the type costs the linker). Blocks larger than
``identity.block_bound`` count for nothing, as in the linker.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from pipeline.identity.decide import apart, disagreeing

Pair = tuple[str, str]  # two patient ids, sorted
Levels = Mapping[str, str | None]


def miss_cause(
    shared_key: bool,
    levels: Levels,
    probability: float,
    in_review: bool,
    review_threshold: float,
    match_threshold: float,
) -> str:
    """The cause of one true pair's miss (the module's list, in its order).

    >>> miss_cause(False, {}, 1.0, False, 0.5, 0.99)
    'not a candidate'
    >>> miss_cause(True, {"name": "exact", "birth_date": "different"}, 1.0, True, 0.5, 0.99)
    'review: birth_date veto'
    >>> miss_cause(True, {"name": "exact"}, 0.3, False, 0.5, 0.99)
    'below review'
    """
    if not shared_key:
        return "not a candidate"
    if apart(levels):
        return "apart"
    if probability < review_threshold:
        return "below review"
    if in_review:
        vetoed = disagreeing(levels)
        if vetoed is not None:
            return f"review: {vetoed} veto"
        return "review: below match" if probability < match_threshold else "review: other"
    return "not linked, other"


@dataclass(frozen=True)
class KeyFigures:
    key_type: str
    per_patient: float
    true_pairs: int  # true pairs sharing a key of this type
    true_only: int  # ... and no key of another type
    candidates: int  # cross-source pairs sharing a key of this type
    candidates_only: int


def key_figures(
    keys: Mapping[str, Collection[tuple[str, str]]],
    source_of: Mapping[str, str],
    true_pairs: Collection[Pair],
    bound: int,
) -> list[KeyFigures]:
    """Per key type, what it brings (``keys``: each patient's (type, value) keys, as stored)."""
    holders: dict[tuple[str, str], list[str]] = defaultdict(list)
    held: Counter[str] = Counter()
    for patient, listed in keys.items():
        for key in listed:
            holders[key].append(patient)
            held[key[0]] += 1
    types_of: dict[Pair, set[str]] = defaultdict(set)
    for (key_type, _), patients in holders.items():
        if len(patients) > bound:
            continue
        for a, b in itertools.combinations(sorted(patients), 2):
            if source_of[a] != source_of[b]:
                types_of[(a, b)].add(key_type)
    truth = set(true_pairs)

    def count(pairs: Callable[[Pair], bool], key_type: str, only: bool) -> int:
        return sum(1 for p, ts in types_of.items() if pairs(p) and key_type in ts and (not only or len(ts) == 1))

    return [
        KeyFigures(
            key_type=key_type,
            per_patient=round(held[key_type] / max(len(keys), 1), 2),
            true_pairs=count(truth.__contains__, key_type, only=False),
            true_only=count(truth.__contains__, key_type, only=True),
            candidates=count(lambda _: True, key_type, only=False),
            candidates_only=count(lambda _: True, key_type, only=True),
        )
        for key_type in sorted(held)
    ]
