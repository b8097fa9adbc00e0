"""The Fellegi-Sunter match model: for each comparison level, m (how often a true match shows it) and u (how
often two different people do), and the prior that two patients are one person.

A pair's match weight is the sum of log2(m/u) over its comparable fields plus the prior's log-odds; its
probability follows. The defaults are the comparisons' declared m and u (``pipeline.identity.compare``), which
work on a new database; ``link --train`` re-estimates them from the stored patients
(``pipeline.identity.training``) and stores the result as a new version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.identity.compare import COMPARISONS, GROUP, agreeing_values, compare
from pipeline.identity.profile import Profile

Levels = Mapping[str, str | None]


# (m, u) per level, as the comparisons declare them (pipeline.identity.compare).
DEFAULT_LEVELS: dict[str, dict[str, tuple[float, float]]] = {
    c.name: {level.label: (level.m, level.u) for level in c.levels} for c in COMPARISONS.values()
}
DEFAULT_PRIOR = 1e-4
TF_MIN_U = 1e-8  # the smallest u a value's frequency may stand for: one record in a hundred million
# A value's frequency may make its level's u at most this many times smaller: tokens of one name are not
# independent (a family's surnames travel together), so their frequencies multiplied overstate its rarity.
TF_MAX_GAIN = 100.0


@dataclass(frozen=True)
class MatchModel:
    prior: float = DEFAULT_PRIOR
    levels: dict[str, dict[str, tuple[float, float]]] = field(default_factory=lambda: DEFAULT_LEVELS)
    version: int = 0  # 0: the defaults; a trained model's version is its identity_model row
    # Term frequencies (trained): per comparison, the share of patients holding each common value, and the
    # share assumed for a value not listed (rarer than any listed). Empty: every pair takes its level's u.
    tf: dict[str, dict[str, float]] = field(default_factory=dict)
    tf_floor: dict[str, float] = field(default_factory=dict)

    def weight(self, comparison: str, level: str, values: tuple[str, ...] | None = None) -> float:
        """log2 m/u of a level; at a ``tf`` level with the agreeing ``values``, u is their frequencies' product:
        agreeing on a rare surname is stronger evidence than agreeing on García."""
        m, u = self.levels[comparison][level]
        table = self.tf.get(comparison)
        if values and table is not None:
            floor = self.tf_floor.get(comparison, TF_MIN_U)
            u = max(math.prod(table.get(v, floor) for v in values), u / TF_MAX_GAIN, TF_MIN_U)
        return math.log2(m / u)

    def score(
        self, levels: Levels, values: Mapping[str, tuple[str, ...]] | None = None
    ) -> tuple[float, dict[str, Any]]:
        """(match probability, evidence): the evidence names each comparable field's level and weight.
        ``values``: the agreeing values of the comparisons at a ``tf`` level (compare.agreeing_values)."""
        total = math.log2(self.prior / (1 - self.prior))
        weights: dict[str, float] = {}
        strongest: dict[str, str] = {}  # group -> its most negative comparison
        for comparison, level in levels.items():
            if level is None or comparison not in self.levels:
                continue
            weights[comparison] = weight = self.weight(comparison, level, values.get(comparison) if values else None)
            group = GROUP.get(comparison)
            if group and weight < 0 and (group not in strongest or weight < weights[strongest[group]]):
                strongest[group] = comparison
        evidence: dict[str, Any] = {}
        for comparison, weight in weights.items():
            group = GROUP.get(comparison)
            counted = 0.0 if group and weight < 0 and strongest[group] != comparison else weight
            total += counted
            evidence[comparison] = {"level": levels[comparison], "weight": round(counted, 2)}
        return probability(total), {"model": self.version, "weight": round(total, 2), "fields": evidence}

    def score_pair(self, a: Profile, b: Profile) -> tuple[float, dict[str, Any], dict[str, str | None]]:
        """(match probability, evidence, levels) of two patients: every comparison, and the agreeing values'
        frequencies where this model has them."""
        levels = compare(a, b)
        probability, evidence = self.score(levels, agreeing_values(a, b, levels) if self.tf else None)
        return probability, evidence, levels

    def to_json(self) -> dict[str, Any]:
        return {
            "prior": self.prior,
            "levels": {c: {lv: list(mu) for lv, mu in ls.items()} for c, ls in self.levels.items()},
            "tf": self.tf,
            "tf_floor": self.tf_floor,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], version: int) -> MatchModel:
        """A stored model; a level it predates keeps its default (m, u)."""
        stored = data["levels"]
        levels: dict[str, dict[str, tuple[float, float]]] = {}
        for c, defaults in DEFAULT_LEVELS.items():
            levels[c] = {}
            for lv, mu in defaults.items():
                m, u = stored.get(c, {}).get(lv, mu)
                levels[c][lv] = (float(m), float(u))
        tf = {c: {v: float(f) for v, f in table.items()} for c, table in data.get("tf", {}).items()}
        floor = {c: float(f) for c, f in data.get("tf_floor", {}).items()}
        return cls(prior=float(data["prior"]), levels=levels, version=version, tf=tf, tf_floor=floor)


def probability(weight: float) -> float:
    """The probability a log2 odds ``weight`` stands for."""
    if weight > 60:
        return 1.0
    odds = 2.0**weight
    return odds / (1 + odds)
