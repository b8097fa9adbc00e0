"""Canonical ids: uuid5 strings derived from (source, entity type, source key), so a page can be upserted
without first reading ids back, and the same source record always lands on the same canonical row."""

from __future__ import annotations

import uuid

_ID_NAMESPACE = uuid.UUID("5b7c1f0e-2f4e-4d2a-9c57-5e1f3a9b2d11")


def canonical_id(source: str, entity_type: str, key: str) -> str:
    """Stable id of an entity: the same source record always lands on the same canonical row."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{source}\x1f{entity_type}\x1f{key}"))
