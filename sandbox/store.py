"""An in-memory collection that a simulated API lists, pages and edits.

Pages must be cheap at thousands of requests per second, so each record's JSON is encoded once, on first
use, and a page is a join of cached bytes. Lookups by key use an index built on first use and dropped on
any change that could move records or their keys.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, cast

Record = dict[str, Any]
T = TypeVar("T")


def encode(value: Any) -> bytes:
    """JSON as Django REST framework renders it: compact and UTF-8."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class Table:
    """Records in the order the API lists them, findable by any of `keys` (compared as strings)."""

    def __init__(self, records: Iterable[Record] = (), keys: tuple[str, ...] = ("id",)) -> None:
        self._records: list[Record] = list(records)
        self._json: list[bytes | None] = [None] * len(self._records)
        self._keys = keys
        self._index: dict[str, dict[str, int]] | None = None
        ids = [r["id"] for r in self._records if isinstance(r.get("id"), int)]
        self._last_id = max(ids, default=0)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records)

    def encoded(self, start: int, stop: int) -> list[bytes]:
        """The JSON of records[start:stop]."""
        cache, records = self._json, self._records
        stop = min(stop, len(records))
        for i in range(start, stop):
            if cache[i] is None:
                cache[i] = encode(records[i])
        return cast(list[bytes], cache[start:stop])

    def find(self, key: str, value: str) -> int | None:
        """Position of the last record whose `key` is `value`."""
        if self._index is None:
            self._index = {k: {str(r[k]): i for i, r in enumerate(self._records) if k in r} for k in self._keys}
        return self._index[key].get(value)

    def get(self, key: str, value: str) -> Record | None:
        pos = self.find(key, value)
        return None if pos is None else self._records[pos]

    def record_at(self, pos: int) -> Record:
        return self._records[pos]

    def json_at(self, pos: int) -> bytes:
        return self.encoded(pos, pos + 1)[0]

    def next_id(self) -> int:
        # Like a database sequence: an id is never reused, even after its record is deleted.
        self._last_id += 1
        return self._last_id

    def append(self, record: Record) -> Record:
        if isinstance(record.get("id"), int):
            self._last_id = max(self._last_id, record["id"])
        self._records.append(record)
        self._json.append(None)
        if self._index is not None:
            for k in self._keys:
                if k in record:
                    self._index[k][str(record[k])] = len(self._records) - 1
        return record

    def update(self, pos: int, fields: Mapping[str, Any]) -> Record:
        record = self._records[pos]
        record.update(fields)
        if isinstance(record.get("id"), int):
            self._last_id = max(self._last_id, record["id"])
        self._json[pos] = None
        if any(k in fields for k in self._keys):
            self._index = None
        return record

    def replace(self, pos: int, record: Record) -> Record:
        """Put `record` in the place of the one at `pos` (a whole new version: fields it lacks are gone)."""
        self._records[pos] = record
        self._json[pos] = None
        self._index = None
        if isinstance(record.get("id"), int):
            self._last_id = max(self._last_id, record["id"])
        return record

    def remove(self, pos: int) -> Record:
        self._json.pop(pos)
        self._index = None
        return self._records.pop(pos)


class Deferred(Generic[T]):
    """A value built on first use, then kept.

    A reset must stay quick at 100,000 patients, but rendering them for every simulated API takes seconds, so
    each API builds its data when it is first asked for it: a test that never calls an API never pays for it.
    The build is deterministic (its own seeded generator), so when it runs changes nothing it produces.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build: Callable[[], T] | None = build
        self._value: T | None = None

    def get(self) -> T:
        if self._build is not None:
            with paused_gc():
                self._value, self._build = self._build(), None
        return cast(T, self._value)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run a bulk build without the cyclic garbage collector.

    Building 100,000 records makes the collector rescan every live object again and again, which doubles the
    time; the records hold no reference cycles, so reference counting frees whatever the build discards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
