"""The Fellegi-Sunter match model: for each comparison level, m (how often a true match shows it) and u (how
often two different people do), and the prior that two patients are one person.

A pair's match weight is the sum of log2(m/u) over its comparable fields plus the prior's log-odds; its
probability follows. The defaults below work on a new database; ``link --train`` re-estimates them from the
stored patients (``pipeline.identity.training``) and stores the result as a new version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Levels = Mapping[str, str | None]


def _levels(**agreeing: tuple[float, float]) -> dict[str, tuple[float, float]]:
    """The agreeing levels as given, and ``different`` taking what is left of m and of u."""
    m_left = 1 - sum(m for m, _ in agreeing.values())
    u_left = 1 - sum(u for _, u in agreeing.values())
    return {**agreeing, "different": (m_left, u_left)}


# (m, u) per level. u: the share of pairs of different people at that level, m: of pairs of one person; a
# level both shares are tiny for (an identical CURP) is strong evidence, a level true matches often show and
# strangers rarely do is some. Cross-source records of one person disagree on addresses, phones and e-mail
# far more than within one source (a source that keeps another address), so "different" there weighs little.
DEFAULT_LEVELS: dict[str, dict[str, tuple[float, float]]] = {
    "name": _levels(
        exact=(0.55, 1e-5),
        contained=(0.24, 1e-5),
        similar=(0.12, 1e-4),
        one_name=(0.01, 2e-3),
        surname_differs=(0.04, 2e-3),
        given_differs=(0.01, 2e-3),
    ),
    "birth_date": _levels(exact=(0.95, 5e-5), close=(0.025, 4e-4), swapped=(0.005, 5e-5)),
    "address": _levels(exact=(0.45, 1e-5), street=(0.1, 1e-3)),
    "postal_code": _levels(exact=(0.5, 1e-3)),
    "city": _levels(exact=(0.5, 0.02)),
    "email": _levels(exact=(0.85, 1e-5), local=(0.05, 1e-4)),
    "phone": _levels(exact=(0.5, 1e-6), last7=(0.05, 1e-5)),
    "curp": _levels(exact=(0.96, 1e-7), close=(0.02, 1e-6)),
    "ssn": _levels(exact=(0.97, 1e-8)),
    "ssn_last4": _levels(exact=(0.97, 1e-4)),
}
DEFAULT_PRIOR = 1e-4


@dataclass(frozen=True)
class MatchModel:
    prior: float = DEFAULT_PRIOR
    levels: dict[str, dict[str, tuple[float, float]]] = field(default_factory=lambda: DEFAULT_LEVELS)
    version: int = 0  # 0: the defaults; a trained model's version is its identity_model row

    def weight(self, comparison: str, level: str) -> float:
        m, u = self.levels[comparison][level]
        return math.log2(m / u)

    def score(self, levels: Levels) -> tuple[float, dict[str, Any]]:
        """(match probability, evidence): the evidence names each comparable field's level and weight."""
        total = math.log2(self.prior / (1 - self.prior))
        evidence: dict[str, Any] = {}
        for comparison, level in levels.items():
            if level is None or comparison not in self.levels:
                continue
            weight = self.weight(comparison, level)
            total += weight
            evidence[comparison] = {"level": level, "weight": round(weight, 2)}
        return probability(total), {"model": self.version, "weight": round(total, 2), "fields": evidence}

    def to_json(self) -> dict[str, Any]:
        return {
            "prior": self.prior,
            "levels": {c: {lv: list(mu) for lv, mu in ls.items()} for c, ls in self.levels.items()},
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
        return cls(prior=float(data["prior"]), levels=levels, version=version)


def probability(weight: float) -> float:
    """The probability a log2 odds ``weight`` stands for."""
    if weight > 60:
        return 1.0
    odds = 2.0**weight
    return odds / (1 + odds)
