"""The golden record: a person's demographic columns, chosen field by field from its live patients.

Survivorship: for each field, the values its patients hold (an empty one, or ``sex`` "unknown", holds none)
are ranked by the field's source priority (``identity.source_priority``: a list of source names per field, or
under ``default`` for every field), then by the most recently updated patient, then by patient id; the first
wins. ``active`` is true when any patient is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def golden_record(
    patients: Sequence[Mapping[str, Any]], fields: Sequence[str], priority: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """The person's columns from its patients' rows (each with ``source``, ``updated_at`` and ``id``)."""
    if len(patients) == 1:  # most persons: nothing to choose between
        only = patients[0]
        return {name: only.get(name) if name != "sex" or only.get("sex") else "unknown" for name in fields}
    record: dict[str, Any] = {}
    for name, survivor in survivors(patients, fields, priority).items():
        if name == "active":
            record[name] = any(p.get("active") for p in patients) if patients else True
        else:
            record[name] = survivor[name] if survivor is not None else ("unknown" if name == "sex" else None)
    return record


def survivors(
    patients: Sequence[Mapping[str, Any]], fields: Sequence[str], priority: Mapping[str, Sequence[str]]
) -> dict[str, Mapping[str, Any] | None]:
    """For each field, the patient whose value the golden record takes (None: no patient holds one; ``active``
    comes from all of them). What the console shows as each value's origin.

    >>> old = {"id": "a", "source": "rx", "city": "Puebla", "email": None}
    >>> new = {"id": "b", "source": "ga", "city": "Toluca", "email": "a@b.mx"}
    >>> {f: p and p["id"] for f, p in survivors([old, new], ["city", "email"], {"city": ["rx"]}).items()}
    {'city': 'a', 'email': 'b'}
    """
    chosen: dict[str, Mapping[str, Any] | None] = {}
    ranked: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}  # the patients in order, once per priority list
    for name in fields:
        if name == "active":
            chosen[name] = None
            continue
        order = tuple(priority.get(name, priority.get("default", ())))
        if order not in ranked:
            ranked[order] = sorted(patients, key=lambda p: _rank(p, list(order)))
        chosen[name] = next((p for p in ranked[order] if _holds(p.get(name), name)), None)
    return chosen


def _holds(value: Any, name: str) -> bool:
    if value is None or value == "":
        return False
    return not (name == "sex" and value == "unknown")


def _rank(patient: Mapping[str, Any], order: list[str]) -> tuple[int, float, str]:
    source = patient.get("source")
    position = order.index(source) if source in order else len(order)
    updated = patient.get("updated_at") or _EPOCH
    if updated.tzinfo is None:
        updated = updated.replace(tzinfo=dt.UTC)
    return position, -updated.timestamp(), str(patient["id"])
