"""Getting one record ready for the database: pure steps that can fail only that record, never its page.

``prepare`` makes a raw record storable (the kind's scrub, then ``pipeline.sync.redaction``), hashes it and finds its
key; ``map_record`` runs the kind's mapping. Whatever either meets (a missing or unusable key, a record nested
too deep, a value no mapping can use, a bug), the answer is a ``Rejected`` record with a reason that names the
field and quotes no value: the runner quarantines it and writes the rest of the page.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from canonical.errors import RecordError
from canonical.model import Mapped
from connectors.stream import key_problem, record_key
from mappings.context import MappingContext
from pipeline.kinds import StreamSpec
from pipeline.sync.redaction import MAX_DEPTH, redact


@dataclass(frozen=True)
class Prepared:
    key: str
    raw: Any  # as fetched: what the mapping reads
    stored: Any  # what source_record keeps
    digest: str  # payload_hash(stored)


@dataclass(frozen=True)
class Rejected:
    key: str  # the record's key, or "sha256:<digest>" when it has none that could be stored
    reason: str  # "<field>: <problem>"
    stored: Any  # what quarantine keeps
    digest: str


@dataclass(frozen=True)
class PreparedPage:
    good: dict[str, Prepared]  # by key: the last duplicate of a key on a page wins
    bad: list[Rejected]
    fetched: int


def prepare_page(records: Sequence[Any], spec: StreamSpec, ctx: MappingContext) -> PreparedPage:
    """Every record of a page prepared: what needs no database, so it can run while another page is written."""
    good: dict[str, Prepared] = {}
    bad: list[Rejected] = []
    for raw in records:
        record = prepare(raw, spec, ctx)
        if isinstance(record, Rejected):
            bad.append(record)
        else:
            good[record.key] = record
    return PreparedPage(good, bad, len(records))


def payload_hash(payload: Any) -> str:
    """sha256 of the payload's canonical JSON (sorted keys); orjson, as this runs for every record fetched."""
    try:
        encoded = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits, keys that are not strings: the slow, general encoder
        encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


def prepare(raw: Any, spec: StreamSpec, ctx: MappingContext) -> Prepared | Rejected:
    """The record as it will be stored, with its key; or why it cannot be."""
    stream = spec.stream
    try:
        redacted = redact(spec.scrub(raw, ctx) if spec.scrub else raw)
    except Exception as exc:  # noqa: BLE001 - one record's oddity must not fail its page
        digest = payload_hash(None)
        return Rejected(_key_or_hash(raw, stream.key, digest), f"record: cannot be stored ({_kind(exc)})", None, digest)
    stored = redacted.payload
    digest = payload_hash(stored)
    if not isinstance(raw, Mapping):
        return Rejected(f"sha256:{digest}", "record: not a JSON object", stored, digest)
    key = stream.record_key(raw)
    if key is None:
        return Rejected(
            f"sha256:{digest}", f"{stream.key}: {key_problem(raw.get(stream.key), stream.integer_key)}", stored, digest
        )
    if redacted.too_deep:
        return Rejected(key, f"record: nested more than {MAX_DEPTH} levels deep", stored, digest)
    return Prepared(key, raw, stored, digest)


def map_record(record: Prepared, spec: StreamSpec, ctx: MappingContext) -> Mapped | Rejected:
    """The canonical records of a prepared record; or why the mapping could not make them."""
    try:
        return spec.mapping(record.raw, ctx)
    except RecordError as exc:
        reason = str(exc)
    except ValidationError as exc:  # a canonical model refused what the mapping built
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "record"
        reason = f"{where}: refused by the canonical model ({error['type']})"
    except Exception as exc:  # noqa: BLE001 - a mapping bug must cost one record, not its page
        reason = f"record: the mapping failed ({_kind(exc)})"
    return Rejected(record.key, reason, record.stored, record.digest)


def _key_or_hash(raw: Any, key_field: str, digest: str) -> str:
    key = record_key(raw.get(key_field)) if isinstance(raw, Mapping) else None
    return key or f"sha256:{digest}"


def _kind(exc: BaseException) -> str:
    """An exception as its type only: its message may quote the record."""
    return type(exc).__name__
