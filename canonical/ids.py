"""Canonical ids: uuid5 strings derived from (source, entity type, source key), so a page can be upserted
without first reading ids back, and the same source record always lands on the same canonical row."""

from __future__ import annotations

import os
import time
import uuid

_ID_NAMESPACE = uuid.UUID("5b7c1f0e-2f4e-4d2a-9c57-5e1f3a9b2d11")


def canonical_id(source: str, entity_type: str, key: str) -> str:
    """Stable id of an entity: the same source record always lands on the same canonical row."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{source}\x1f{entity_type}\x1f{key}"))


def time_ordered_id() -> str:
    """A new random id whose first 48 bits are the time in milliseconds (the UUIDv7 layout, RFC 9562): ids
    made one after another sort together, so inserting them touches the end of an index, not a page anywhere.

    >>> a, b = time_ordered_id(), time_ordered_id()
    >>> len(a), a[14], a[:8] <= b[:8]
    (36, '7', True)
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))
