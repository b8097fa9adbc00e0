"""The record keys a sweep has seen, in 8 bytes each: a sweep of millions of records must not hold millions of
strings until its end, where they decide what the source no longer has."""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left
from collections.abc import Iterable


class KeySet:
    """A set of strings that only answers ``in``, kept as their sorted 64-bit hashes.

    Python's own string hash serves: the set lives within one process, the hash is cached on the string (the
    runner has just used it as a dict key), and it is keyed per process, so a source cannot craft keys that
    collide. Two keys that do share a hash (about one chance in 30 million for a million keys) make an unseen
    record count as seen: at worst a record the source dropped is kept one sweep longer, never one deleted
    that is still there.

    >>> seen = KeySet()
    >>> seen.update(["007", "8"])
    >>> "007" in seen, "9" in seen, bool(seen), bool(KeySet())
    (True, False, True, False)
    """

    def __init__(self) -> None:
        self._merged = array("q")
        self._runs: list[array[int]] = []  # one sorted run per update, merged at the first lookup

    def update(self, keys: Iterable[str]) -> None:
        run = array("q", sorted(map(hash, keys)))
        if run:
            self._runs.append(run)

    def clear(self) -> None:
        self._merged, self._runs = array("q"), []

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        if self._runs:  # merged without a list of Python ints: twice 8 bytes per key at most
            self._merged = array("q", heapq.merge(self._merged, *self._runs))
            self._runs = []
        wanted = hash(key)
        at = bisect_left(self._merged, wanted)
        return at < len(self._merged) and self._merged[at] == wanted

    def __bool__(self) -> bool:
        return bool(self._merged) or bool(self._runs)
