"""What one patient's scored candidates decide: the person it joins, and the possible matches to review.

Pure: the caller reads the candidates (``pipeline.storage.identity``) and writes the outcome.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.identity.compare import compare
from pipeline.identity.model import MatchModel
from pipeline.identity.profile import Profile

# A pair whose given names (beside the same surnames) or birth dates disagree outright is never linked without
# an identifier that agrees: the fields of one household (address, postal code, phone, e-mail, surname) are not
# independent, so twins and siblings (another given name) or a father and son of one name (another birth date)
# would otherwise score as high as one person does. They are possible matches, for review.
_DISAGREE = {"name": ("given_differs",), "birth_date": ("different",)}
_IDENTIFIERS = ("curp", "ssn")
CLEAR_MARGIN = 10.0  # log2 match weight: a person 2**10 times likelier than another is the one a patient matches


@dataclass(frozen=True)
class Scored:
    person_id: str
    patient_id: str  # the member of the person that scored best
    probability: float
    evidence: dict[str, Any]
    levels: Mapping[str, str | None]


@dataclass(frozen=True)
class Possible:
    person_id: str
    probability: float
    evidence: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class Decision:
    join: Scored | None  # the person the patient belongs to; None: a person of its own
    possible: list[Possible] = field(default_factory=list)


def best_per_person(
    patient: Profile, candidates: Collection[tuple[Profile, str]], model: MatchModel
) -> dict[str, Scored]:
    """Each candidate person's best-scoring member: candidates are (profile, person id)."""
    best: dict[str, Scored] = {}
    for other, person_id in candidates:
        levels = compare(patient, other)
        probability, evidence = model.score(levels)
        known = best.get(person_id)
        if known is None or probability > known.probability:
            best[person_id] = Scored(person_id, other.patient_id, probability, evidence, levels)
    return best


def _disagreeing(levels: Mapping[str, str | None]) -> str | None:
    """The field whose outright disagreement keeps the pair apart, unless an identifier agrees."""
    if any(levels.get(f) == "exact" for f in _IDENTIFIERS):
        return None
    return next((f for f, bad in _DISAGREE.items() if levels.get(f) in bad), None)


def decide(
    patient: Profile,
    scored: Mapping[str, Scored],
    sources_of: Mapping[str, Collection[str]],
    rejected: Collection[str],
    match_threshold: float,
    review_threshold: float,
    current: str | None = None,
) -> Decision:
    """The decision for ``patient`` given each candidate person's best score.

    ``sources_of``: the sources of each person's other live patients (a person holds one patient per source);
    ``rejected``: persons a manual decision put apart from this patient; ``current``: its person now, which it
    keeps when it matches that person and others too (the others become possible matches).
    """
    matches: list[Scored] = []
    possible: list[Possible] = []
    for person_id in sorted(scored):  # sorted: the outcome never depends on the order candidates were read
        s = scored[person_id]
        if person_id in rejected or s.probability < review_threshold:
            continue
        if s.probability < match_threshold:
            possible.append(Possible(person_id, s.probability, s.evidence, "below the match threshold"))
        elif patient.source in sources_of.get(person_id, ()):
            possible.append(Possible(person_id, s.probability, s.evidence, "the person has a patient of this source"))
        elif (field := _disagreeing(s.levels)) is not None:
            possible.append(Possible(person_id, s.probability, s.evidence, f"the {field.replace('_', ' ')}s disagree"))
        else:
            matches.append(s)
    if len(matches) > 1:  # only the best matches count: one a thousand times likelier outranks the rest
        best = max(m.evidence.get("weight", 0.0) for m in matches)
        outranked = [m for m in matches if m.evidence.get("weight", 0.0) < best - CLEAR_MARGIN]
        matches = [m for m in matches if m not in outranked]
        possible += [
            Possible(m.person_id, m.probability, m.evidence, "another person matches better") for m in outranked
        ]
    staying = next((m for m in matches if m.person_id == current), None)
    join = staying or (matches[0] if len(matches) == 1 else None)
    reason = "matches more than one person"
    others = [Possible(m.person_id, m.probability, m.evidence, reason) for m in matches if m is not join]
    return Decision(join, possible + others)
