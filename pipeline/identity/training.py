"""``link --train``: the match model re-estimated from the stored patients, as Splink does it.

- u (how often two different people agree at each level) from random pairs: almost every random pair is two
  different people, and the few the starting model takes for one person are left out.
- m (how often one person agrees with itself) by expectation-maximisation on the pairs of each blocking rule,
  with the fields that rule blocks on held out (the pairs of a "same birth date" rule all agree on the birth
  date, so they cannot say how often one person's records disagree on it).
- the prior from how many matches the EM expects among the pairs of the birth-date rule, divided by how often
  a true match shares its birth date;
- term frequencies (Splink's tf tables): for names, postal codes and cities, the share of patients holding
  each of the MAX_TF_VALUES commonest values, so that agreeing on a rare one weighs more than on a common one;
- the stewards' decisions (``review accept|reject``) as labels: an accepted pair counts in every round of the
  EM as a certain match, so m learns the levels stewards saw one person at (a rejected pair teaches u nothing
  that random pairs do not: it only counts in the estimates); and with the trained model, the share of
  accepted pairs it would link (recall) and of the labelled pairs it would link that were accepted
  (precision). Labels come from the review band, the hardest pairs: these
  estimates are a floor, not the figure on every pair.

Pure: ``pipeline.sync.linking.train_model`` reads the patients and stores the result.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.identity.compare import COMPARISONS, TF_LEVELS, compare
from pipeline.identity.decide import apart, vetoed
from pipeline.identity.keys import match_keys
from pipeline.identity.model import MatchModel
from pipeline.identity.profile import Profile

# Pseudo-pairs of the starting model blended into every estimate: a level no pair showed keeps a small share
# instead of none, so one odd record can never veto a match (an m of 0 would) or prove one (a u of 0).
PSEUDO_PAIRS = 20.0
MIN_PATIENTS = 50
RANDOM_PAIRS = 100_000
MAX_PATIENTS = 200_000
MAX_BLOCK = 50
EM_ROUNDS = 25
MAX_TF_VALUES = 5_000  # per comparison: a value rarer than these takes the rarest one's frequency
# Blocking rules of the EM: (name, the values whose sharing makes pairs, the comparisons it holds out).
RULES: tuple[tuple[str, Callable[[Profile], list[str]], tuple[str, ...]], ...] = (
    ("dob", lambda p: [p.birth_date.isoformat()] if p.birth_date else [], ("birth_date",)),
    ("name_dob", lambda p: [v for t, v in match_keys(p) if t == "name_dob"], ("name", "birth_date")),
)


def _smoothed(counts: dict[str, float], start: dict[str, float]) -> dict[str, float]:
    """Shares of ``counts`` per level, with PSEUDO_PAIRS pairs distributed as ``start`` says."""
    total = sum(counts.values()) + PSEUDO_PAIRS
    return {level: (counts.get(level, 0.0) + PSEUDO_PAIRS * share) / total for level, share in start.items()}


def estimate_u(
    profiles: Sequence[Profile], model: MatchModel, pairs: int, seed: int = 0
) -> dict[str, dict[str, float]]:
    rng = random.Random(seed)
    counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    n = len(profiles)
    for _ in range(min(pairs, n * (n - 1) // 2)):
        a, b = rng.randrange(n), rng.randrange(n)
        if a == b:
            continue
        levels = compare(profiles[a], profiles[b])
        if model.score(levels)[0] >= 0.5:
            # One person's own records, drawn at random: with several sources per person they are a share of
            # the random pairs large enough to make agreement look common among strangers.
            continue
        for comparison, level in levels.items():
            if level is not None:
                counts[comparison][level] += 1
    return {c: _observed(counts[c], {lv: mu[1] for lv, mu in levels.items()}) for c, levels in model.levels.items()}


def _observed(counts: dict[str, float], start: dict[str, float]) -> dict[str, float]:
    """u per level as the random pairs showed it; a level none showed keeps the starting model's u (rare levels
    are rare among random pairs: a sample too small to show one says nothing of how rare)."""
    total = sum(counts.values())
    if not total:
        return dict(start)
    raw = {level: counts[level] / total if counts.get(level) else start[level] for level in start}
    norm = sum(raw.values())
    return {level: value / norm for level, value in raw.items()}


def _block_pairs(profiles: Sequence[Profile], derive: Callable[[Profile], list[str]]) -> list[tuple[Profile, Profile]]:
    blocks: dict[str, list[Profile]] = defaultdict(list)
    for p in profiles:
        for value in derive(p):
            blocks[value].append(p)
    pairs: list[tuple[Profile, Profile]] = []
    for members in blocks.values():
        if 2 <= len(members) <= MAX_BLOCK:
            pairs.extend((a, b) for i, a in enumerate(members) for b in members[i + 1 :])
    return pairs


Label = tuple[Profile, Profile, bool]  # a pair a steward decided: True when accepted as one person


def _em(
    levels_of_pairs: list[dict[str, str | None]],
    m: dict[str, dict[str, float]],
    u: dict[str, dict[str, float]],
    held_out: Sequence[str],
    prior: float,
    labelled: Sequence[tuple[dict[str, str | None], bool]] = (),
) -> tuple[dict[str, dict[str, float]], float]:
    """m per level for every comparison not held out, and the share of matches among these pairs; ``labelled``
    pairs count as certain matches (True) or non-matches in every round, and not in the share."""
    start = m
    m = {c: dict(levels) for c, levels in m.items()}
    share = max(prior, 0.01)
    for _ in range(EM_ROUNDS):
        counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for levels, accepted in labelled:
            if accepted:
                for c, level in levels.items():
                    if level is not None and c not in held_out:
                        counts[c][level] += 1.0
        total = 0.0
        for levels in levels_of_pairs:
            pm, pu = share, 1 - share
            for c, level in levels.items():
                if level is None or c in held_out:
                    continue
                pm *= m[c][level]
                pu *= u[c][level]
            p = pm / (pm + pu) if pm + pu > 0 else 0.0
            total += p
            for c, level in levels.items():
                if level is not None and c not in held_out:
                    counts[c][level] += p
        share = min(max(total / len(levels_of_pairs), 1e-6), 1 - 1e-6)
        for c in m:
            if c not in held_out and counts[c]:
                m[c] = _smoothed(counts[c], start[c])
    return m, share


def train_on(
    profiles: Sequence[Profile],
    model: MatchModel,
    seed: int = 0,
    labels: Sequence[Label] = (),
    threshold: float = 0.99,
) -> tuple[MatchModel, dict[str, Any]]:
    """A model estimated from these patients and the stewards' ``labels``, starting from ``model``; and what it
    was estimated on."""
    if len(profiles) < MIN_PATIENTS:
        raise ValueError(f"{len(profiles)} live patients are too few to train on (at least {MIN_PATIENTS})")
    labelled = [(compare(a, b), accepted) for a, b, accepted in labels]
    u = estimate_u(profiles, model, RANDOM_PAIRS, seed)
    m_default = {c: {level: mu[0] for level, mu in levels.items()} for c, levels in model.levels.items()}
    estimates: dict[str, list[dict[str, float]]] = defaultdict(list)
    summary: dict[str, Any] = {"patients": len(profiles), "rules": {}}
    prior = model.prior
    for key_type, derive, held_out in RULES:
        pairs = _block_pairs(profiles, derive)
        if not pairs:
            continue
        compared = [compare(a, b) for a, b in pairs]
        found_m, share = _em(compared, m_default, u, held_out, model.prior, labelled)
        for c, values in found_m.items():
            if c not in held_out:
                estimates[c].append(values)
        summary["rules"][key_type] = {"pairs": len(pairs), "matches": round(share * len(pairs))}
        if key_type == "dob":
            exact = model.levels["birth_date"]["exact"][0]
            n = len(profiles)
            prior = min(max(share * len(pairs) / exact / (n * (n - 1) / 2), 1e-9), 0.5)
    trained: dict[str, dict[str, tuple[float, float]]] = {}
    for c, model_levels in model.levels.items():
        found = estimates.get(c)
        mean = {lv: sum(e[lv] for e in found) / len(found) for lv in model_levels} if found else m_default[c]
        trained[c] = {lv: (mean[lv], u[c][lv]) for lv in model_levels}
    summary["prior"] = prior
    tf, floor = term_frequencies(profiles)
    result = MatchModel(prior=prior, levels=trained, version=model.version, tf=tf, tf_floor=floor)
    summary["labels"] = label_estimates(result, labels, threshold)
    return result, summary


def term_frequencies(profiles: Sequence[Profile]) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per comparison with a ``tf`` level: the share of the patients holding the field that hold each value (its
    MAX_TF_VALUES commonest), and the share a value not listed is taken to have.

    >>> from pipeline.identity.profile import profile
    >>> rows = [{"id": str(i), "given_name": "Ana", "family_name": f"Ruiz{'x' * (i % 2)}"} for i in range(4)]
    >>> tf, floor = term_frequencies([profile(r, "s") for r in rows])
    >>> tf["name"]["ANA"], tf["name"]["RUIZ"], floor["name"]
    (1.0, 0.5, 0.25)
    """
    tf: dict[str, dict[str, float]] = {}
    floor: dict[str, float] = {}
    for name, comparison in COMPARISONS.items():
        if not TF_LEVELS[name] or comparison.agreeing is None:
            continue
        counts: dict[str, int] = defaultdict(int)
        holders = 0
        for p in profiles:
            values = set(comparison.agreeing(p, p))
            holders += bool(values)
            for value in values:
                counts[value] += 1
        if not holders:
            continue
        common = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:MAX_TF_VALUES]
        tf[name] = {value: n / holders for value, n in common}
        floor[name] = (common[-1][1] if len(common) < len(counts) else 1) / holders
    return tf, floor


def label_estimates(model: MatchModel, labels: Sequence[Label], threshold: float = 0.99) -> dict[str, Any]:
    """What the stewards' labels say of ``model``: how many were accepted and rejected, and the precision and
    recall of the automatic links it would make among them (None where nothing is counted)."""
    accepted = sum(1 for _, _, yes in labels if yes)
    linked = [yes for a, b, yes in labels if _links(model, a, b, threshold)]
    return {
        "accepted": accepted,
        "rejected": len(labels) - accepted,
        "precision": sum(linked) / len(linked) if linked else None,
        "recall": sum(linked) / accepted if accepted else None,
    }


def _links(model: MatchModel, a: Profile, b: Profile, threshold: float) -> bool:
    """Whether the linker would link the pair automatically (the tf values counted, as it counts them)."""
    probability, _, levels = model.score_pair(a, b)
    return probability >= threshold and not vetoed(levels) and not apart(levels)
