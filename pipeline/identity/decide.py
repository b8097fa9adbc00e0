"""What one patient's scored candidates decide: the person it joins, and the possible matches to review.

Pure: the caller reads the candidates (``pipeline.storage.identity``) and writes the outcome.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.identity.compare import BIRTH_DATE, COMPARISONS, NAME
from pipeline.identity.model import MatchModel
from pipeline.identity.profile import Profile

# A pair at a veto level (compare.Level.veto: given names that disagree beside the same surname, another birth
# date) is never linked without an identifier that agrees: the fields of one household (address, postal code,
# phone, surname) are not independent, so twins and siblings or a father and son of one name would otherwise
# score as high as one person does. They are possible matches, for review. When the name and the birth date
# both disagree, only the household's fields agree: two people of one household, not even a possible match.
_VETOES = {c.name: frozenset(level.label for level in c.levels if level.veto) for c in COMPARISONS.values()}
_IDENTIFIERS = tuple(c.name for c in COMPARISONS.values() if c.identifier)
_PERSONAL = (NAME, BIRTH_DATE)
_OWN = ("email", *_IDENTIFIERS)  # fields no two people of one household share
_WHERE = ("address", "postal_code", "phone", "email")  # where a person lives and how to reach them
_APART = {c.name: frozenset(level.label for level in c.levels if level.apart) for c in COMPARISONS.values()}
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
    """Each candidate person's best-scoring member: candidates are (profile, person id). A person with a member
    the patient is ``apart`` from is left out, however well another member scores: a namesake matches the
    person's record from a source that lacks the field (no CURP, no SSN) that sets it apart from another."""
    best: dict[str, Scored] = {}
    excluded: set[str] = set()
    for other, person_id in candidates:
        probability, evidence, levels = model.score_pair(patient, other)
        if apart(levels, same_source=other.source == patient.source):
            excluded.add(person_id)
            continue
        known = best.get(person_id)
        if known is None or probability > known.probability:
            best[person_id] = Scored(person_id, other.patient_id, probability, evidence, levels)
    return {person_id: s for person_id, s in best.items() if person_id not in excluded}


def vetoed(levels: Mapping[str, str | None]) -> bool:
    """A veto level stands, no identifier lifting it: never an automatic link."""
    return disagreeing(levels) is not None


def disagreeing(levels: Mapping[str, str | None]) -> str | None:
    """The field whose outright disagreement keeps the pair apart, unless an identifier agrees."""
    if any(levels.get(f) == "exact" for f in _IDENTIFIERS):
        return None
    return next((f for f, vetoes in _VETOES.items() if levels.get(f) in vetoes), None)


def apart(levels: Mapping[str, str | None], same_source: bool = False) -> bool:
    """Two people, not even a possible match (unless an identifier agrees): a level declared ``apart`` (another
    CURP); two records of one source that it keeps as two people (``_two_of_one_source``); the name and the
    birth date both disagreeing outright, so whatever else agrees is what a household shares; or a veto level
    beside a personal field that disagrees (another e-mail, CURP or SSN: a twin's own)."""
    if any(levels.get(f) == "exact" for f in _IDENTIFIERS):
        return False
    if any(levels.get(f) in labels for f, labels in _APART.items()):
        return True
    if same_source and _two_of_one_source(levels):
        return True
    if all(
        (level := levels.get(c.name)) is not None and (level in _VETOES[c.name] or level == c.levels[-1].label)
        for c in _PERSONAL
    ):
        return True
    return disagreeing(levels) is not None and any(levels.get(f) == "different" for f in _OWN)


def _two_of_one_source(levels: Mapping[str, str | None]) -> bool:
    """Two records one source keeps as two people: another identifier; twin or household evidence (a veto level:
    one registrar meeting twins keeps two records, where two sources' records of one person may split a name
    differently); or nothing in common about where the person lives or how to reach them (address, postal
    code, phone and e-mail: two of them compared, and all those compared differing; a source that registered one
    person twice would have had them at hand)."""
    if any(levels.get(f) == "different" for f in _IDENTIFIERS) or disagreeing(levels) is not None:
        return True
    compared = [level for f in _WHERE if (level := levels.get(f)) is not None]
    return len(compared) >= 2 and all(level == "different" for level in compared)


def _weight(evidence: Mapping[str, Any]) -> float:
    return float(evidence.get("weight", 0.0))


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
        if person_id in rejected or s.probability < review_threshold or apart(s.levels):
            continue
        if s.probability < match_threshold:
            possible.append(Possible(person_id, s.probability, s.evidence, "below the match threshold"))
        elif patient.source in sources_of.get(person_id, ()):
            possible.append(Possible(person_id, s.probability, s.evidence, "the person has a patient of this source"))
        elif (field := disagreeing(s.levels)) is not None:
            possible.append(Possible(person_id, s.probability, s.evidence, f"the {field.replace('_', ' ')}s disagree"))
        else:
            matches.append(s)
    if matches:  # only the best matches count: one a thousand times likelier settles the rest, review included
        floor = max(_weight(m.evidence) for m in matches) - CLEAR_MARGIN
        matches = [m for m in matches if _weight(m.evidence) >= floor]
        possible = [p for p in possible if _weight(p.evidence) >= floor]
    staying = next((m for m in matches if m.person_id == current), None)
    join = staying or (matches[0] if len(matches) == 1 else None)
    reason = "matches more than one person"
    others = [Possible(m.person_id, m.probability, m.evidence, reason) for m in matches if m is not join]
    return Decision(join, possible + others)
