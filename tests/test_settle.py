"""What a complete walk decides, without HTTP or a database: which walks' deletions are withheld, and what a
walk counts as seen and still bad (pipeline.sync.settle)."""

from __future__ import annotations

import pytest

from pipeline.sync.batches import Batch
from pipeline.sync.rows import PageCounts
from pipeline.sync.settle import Walk, withheld


def walk(seen: list[str], fetched: int | None = None, total: int | None = None) -> Walk:
    w = Walk(complete=True)
    w.take(
        Batch(checkpoint={}, records=[], total=total),
        PageCounts(fetched=len(seen) if fetched is None else fetched, keys=seen),
    )
    return w


@pytest.mark.parametrize(
    "w, gone, live, fraction, reason",
    [
        (walk([]), 0, 0, 0.5, None),  # nothing stored, nothing seen: nothing to withhold
        (walk([]), 5, 5, 0.5, "the sweep saw no records"),  # an empty answer must not delete everything
        (walk(["a"] * 9, fetched=9, total=10), 1, 10, 0.5, "the source counts 10 records but the sweep received 9"),
        (walk(["a"], fetched=10, total=10), 1, 10, 0.5, None),
        (walk(["a"]), 3, 5, 0.5, "3 of 5 records would go, more than max_delete_fraction 0.5"),
        (walk(["a"]), 2, 5, 0.5, None),  # 2 <= 2.5
        (walk(["a"]), 5, 5, 1.0, None),  # 1 turns the guard off
    ],
    ids=["empty", "saw-nothing", "short-of-total", "total-met", "too-many", "within", "guard-off"],
)
def test_when_a_complete_walk_withholds_its_deletions(
    w: Walk, gone: int, live: int, fraction: float, reason: str | None
) -> None:
    assert withheld(w, gone, live, fraction) == reason


def test_a_walk_counts_listed_and_bad_keys_as_seen_and_a_partial_batch_makes_it_incomplete() -> None:
    w = Walk(complete=True)
    w.take(Batch(checkpoint={}, records=[], listed=["a", "b", "c"]), PageCounts(fetched=2, keys=["a", "b"]))
    w.take(Batch(checkpoint={}, records=[], refused=1), PageCounts(fetched=1, keys=["d"], bad_keys=["d"]))
    assert all(key in w.seen for key in "abcd") and "e" not in w.seen
    assert w.still_bad == {"c", "d"}  # listed but not fetched: not known good; quarantined: bad
    assert (w.fetched, w.refused, w.complete) == (3, 1, True)
    w.take(Batch(checkpoint={}, records=[], partial=True), PageCounts())
    assert not w.complete
    w.restart(complete=True)  # the listing is read again: only that reading decides
    assert (bool(w.seen), w.still_bad, w.fetched, w.complete) == (False, set(), 0, True)
