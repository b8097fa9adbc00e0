"""The record keys a sweep has seen, in 8 bytes each: a sweep of millions of records must not hold millions of
strings until its end, where they decide what the source no longer has."""

from __future__ import annotations

import hashlib
import heapq
from array import array
from bisect import bisect_left
from collections.abc import Iterable


def _fingerprint(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


class KeySet:
    """A set of strings that only answers ``in``, kept as sorted 64-bit fingerprints.

    Two keys that share a fingerprint (about one chance in 10^8 for a billion keys) would make an unseen
    record count as seen: at worst a record the source dropped is kept one sweep longer, never one deleted
    that is still there.

    >>> seen = KeySet()
    >>> seen.update(["007", "8"])
    >>> "007" in seen, "9" in seen, bool(seen), bool(KeySet())
    (True, False, True, False)
    """

    def __init__(self) -> None:
        self._merged = array("Q")
        self._runs: list[array[int]] = []  # one sorted run per update, merged at the first lookup

    def update(self, keys: Iterable[str]) -> None:
        run = array("Q", sorted(_fingerprint(key) for key in keys))
        if run:
            self._runs.append(run)

    def clear(self) -> None:
        self._merged, self._runs = array("Q"), []

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        if self._runs:  # merged without a list of Python ints: twice 8 bytes per key at most
            self._merged = array("Q", heapq.merge(self._merged, *self._runs))
            self._runs = []
        wanted = _fingerprint(key)
        at = bisect_left(self._merged, wanted)
        return at < len(self._merged) and self._merged[at] == wanted

    def __bool__(self) -> bool:
        return bool(self._merged) or bool(self._runs)
