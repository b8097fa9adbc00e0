"""A stream's cursor (``sync_state.cursor``) as a value, with its rules in one place.

The cursor holds the **tail**, where an incremental run continues (an offset with its anchor, a page, a
continuation token, a next link, the last parent done), and, while a sweep runs, the **sweep**'s own position
with when it started and whether it was resumed after a crash. Stored as JSON, the tail's keys at the top
and the sweep's under ``"sweep"``:

    {"offset": 937, "anchor": "b5555-...", "sweep": {"offset": 400, "started_at": "2026-...", "resumed": false}}

A checkpoint replaces a position, never merges into it: an empty one (a token listing that ended) forgets
the old token, so the next run lists from the start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from connectors.paging import Checkpoint
from pipeline.storage.run_values import Mode

_SWEEP = "sweep"
_SWEEP_META = ("started_at", "resumed")


@dataclass(frozen=True)
class Sweep:
    position: Checkpoint
    started_at: str | None = None
    resumed: bool = False


@dataclass(frozen=True)
class Cursor:
    tail: Checkpoint = field(default_factory=dict)
    sweep: Sweep | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> Cursor:
        value = value or {}
        raw = value.get(_SWEEP)
        sweep = None
        if isinstance(raw, Mapping) and raw:
            position = {k: v for k, v in raw.items() if k not in _SWEEP_META}
            started = raw.get("started_at")
            sweep = Sweep(position, str(started) if started is not None else None, bool(raw.get("resumed", False)))
        return cls({k: v for k, v in value.items() if k != _SWEEP}, sweep)

    def to_json(self) -> dict[str, Any]:
        if self.sweep is None:
            return dict(self.tail)
        meta: dict[str, Any] = {"resumed": self.sweep.resumed}
        if self.sweep.started_at is not None:
            meta = {"started_at": self.sweep.started_at, **meta}
        return {**self.tail, _SWEEP: {**meta, **self.sweep.position}}

    def start(self, mode: Mode, now: dt.datetime) -> tuple[Cursor, Checkpoint]:
        """The cursor as a walk in ``mode`` begins, and the position it starts from ({} is the start).

        >>> Cursor({"offset": 9}).start(Mode.incremental, dt.datetime(2026, 1, 1))[1]
        {'offset': 9}
        >>> pending = Cursor({"offset": 9}, Sweep({"offset": 4}, "t"))
        >>> cursor, position = pending.start(Mode.sweep, dt.datetime(2026, 1, 1))
        >>> position, cursor.sweep.resumed
        ({'offset': 4}, True)
        """
        if mode is not Mode.sweep:
            return self, dict(self.tail)
        if self.sweep is not None:  # a sweep that did not finish: continue it
            return replace(self, sweep=replace(self.sweep, resumed=True)), dict(self.sweep.position)
        return replace(self, sweep=Sweep({}, now.isoformat())), {}

    def advanced(self, checkpoint: Checkpoint, mode: Mode) -> Cursor:
        """After a committed batch: the checkpoint replaces the position of the walk (a sweep's, or the tail).

        >>> Cursor({"continuation_token": "t2"}).advanced({}, Mode.incremental).to_json()
        {}
        >>> Cursor({"offset": 40}, Sweep({}, "t")).advanced({"offset": 10}, Mode.sweep).to_json()
        {'offset': 40, 'sweep': {'started_at': 't', 'resumed': False, 'offset': 10}}
        """
        if mode is Mode.sweep:
            return replace(self, sweep=replace(self.sweep or Sweep({}), position=dict(checkpoint)))
        return replace(self, tail=dict(checkpoint))

    def swept(self) -> Cursor:
        """After a complete sweep its last position becomes the tail, and the sweep is over.

        >>> Cursor({"offset": 5}, Sweep({"offset": 90}, "t")).swept().to_json()
        {'offset': 90}
        """
        return Cursor(dict(self.sweep.position) if self.sweep else {}, None)
