"""What one walk of a stream has seen, and what a complete walk decides from it: the stored records it did not
see are gone and the quarantine rows of records no longer bad are cleared, unless its listing looks truncated.
Pure: the runner feeds it each committed batch, storage says what is stored."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.sync.batches import Batch
from pipeline.sync.keyset import KeySet
from pipeline.sync.rows import PageCounts


@dataclass
class Walk:
    """What one walk of a stream has seen so far: what decides, at its end, deletions and quarantine."""

    complete: bool  # it started at the stream's very beginning, and nothing since made it partial
    seen: KeySet = field(default_factory=KeySet)
    still_bad: set[str] = field(default_factory=set)
    fetched: int = 0  # records of this reading of the listing (a shifted listing is read again)
    total: int | None = None
    refused: int = 0

    def restart(self, complete: bool) -> None:
        """The listing is read again from its start: only that reading decides."""
        self.seen.clear()
        self.still_bad.clear()
        self.fetched, self.total, self.complete = 0, None, complete

    def take(self, batch: Batch, counts: PageCounts) -> None:
        self.fetched += counts.fetched
        self.seen.update(counts.keys)
        # A record quarantined before mapping (too deep, unstorable) is still listed: its stored version stays live.
        self.seen.update(counts.bad_keys)
        self.still_bad.update(counts.bad_keys)
        if batch.listed is not None:  # listed but not fetched: whether it is still bad is not known
            self.seen.update(batch.listed)
            self.still_bad.update(set(batch.listed).difference(counts.keys))
        self.complete = self.complete and not batch.partial
        self.refused += batch.refused
        self.total = batch.total if batch.total is not None else self.total


def withheld(walk: Walk, gone: int, live: int, max_delete_fraction: float) -> str | None:
    """Why a complete walk's deletions are withheld (its listing looks truncated), or None to settle them.

    A source that answers one page short or empty (an outage, a bug) would otherwise make the walk look
    complete and delete everything after it; then nothing is settled and the next complete walk decides.
    ``gone``: stored live records the walk did not see; ``live``: stored live records in all.
    """
    if not walk.seen and (live or gone):
        return "the sweep saw no records"
    if walk.total is not None and walk.fetched < walk.total:
        return f"the source counts {walk.total} records but the sweep received {walk.fetched}"
    if gone > max_delete_fraction * live:
        return f"{gone} of {live} records would go, more than max_delete_fraction {max_delete_fraction}"
    return None
