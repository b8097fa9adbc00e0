"""An in-memory collection that a simulated API lists, pages and edits.

Pages must be cheap at thousands of requests per second, so each record's JSON is encoded once, on first
use, and a page is a join of cached bytes. Lookups by key use an index built on first use and dropped on
any change that could move records or their keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, cast

Record = dict[str, Any]


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

    def remove(self, pos: int) -> Record:
        self._json.pop(pos)
        self._index = None
        return self._records.pop(pos)
