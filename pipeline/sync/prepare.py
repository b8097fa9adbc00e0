"""Getting one record ready for the database: pure steps that can fail only that record, never its page.

``fetched`` finds a raw record's key and digests it as it came; ``prepare`` makes it storable (the kind's scrub,
then ``pipeline.sync.redaction``) and hashes that; ``map_record`` runs the kind's mapping. Whatever any of them
meets (a missing or unusable key, a record nested too deep, a value no mapping can use, a bug), the answer is a
``Rejected`` record with a reason that names the field and quotes no value: the runner quarantines it and writes
the rest of the page.

Why two steps before the mapping: a re-sync meets mostly records it has stored already, and making a record
storable (the redaction's walk) costs several times its digest. A record whose digest as fetched is the stored
one is a record today's rules stored as it came (``payload_hash``), so they would store it as it is again: it
needs nothing more. Only the others are prepared, where they are mapped.
"""

from __future__ import annotations

import hashlib
import json
import math
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
from pipeline.sync.redaction import MAX_DEPTH, RULES_VERSION, redact


@dataclass(frozen=True)
class Fetched:
    """A record with a usable key, not yet made storable."""

    key: str
    raw: Mapping[str, Any]
    digest: str | None  # payload_hash(raw, as_fetched=True) where orjson encodes raw exactly and the kind scrubs none


@dataclass(frozen=True)
class Prepared:
    key: str
    raw: Any  # as fetched: what the mapping reads
    stored: Any  # what source_record keeps
    digest: str  # payload_hash(stored, as_fetched=stored == raw)


@dataclass(frozen=True)
class Rejected:
    key: str  # the record's key, or "sha256:<digest>" when it has none that could be stored
    reason: str  # "<field>: <problem>"
    stored: Any  # what quarantine keeps
    digest: str


@dataclass(frozen=True)
class PreparedPage:
    good: dict[str, Fetched | Prepared]  # by key: the last duplicate of a key on a page wins
    bad: list[Rejected]
    fetched: int


def prepare_page(records: Sequence[Any], spec: StreamSpec, ctx: MappingContext) -> PreparedPage:
    """Every record of a page keyed and digested (``fetched``): what needs no database, so it can run while another
    page is written. A record without a usable key is prepared at once, to be quarantined."""
    good: dict[str, Fetched | Prepared] = {}
    bad: list[Rejected] = []
    for raw in records:
        record = fetched(raw, spec)
        if record is None:
            rejected = prepare(raw, spec, ctx)
            assert isinstance(rejected, Rejected), "a record without a usable key is never prepared"
            bad.append(rejected)
        else:
            good[record.key] = record
    return PreparedPage(good, bad, len(records))


def fetched(raw: Any, spec: StreamSpec) -> Fetched | None:
    """The record keyed, with its digest as it came; None if it is not an object with a usable key."""
    key = spec.stream.record_key(raw) if isinstance(raw, Mapping) else None
    if key is None:
        return None
    # A kind's scrub is a rule of its own, outside redaction's version, and may read the mapping context (Particle's
    # SSN key): the records of a kind that scrubs are prepared, and compared, every time.
    return Fetched(key, raw, None if spec.scrub else _exact_digest(raw))


def finish(record: Fetched | Prepared, spec: StreamSpec, ctx: MappingContext) -> Prepared | Rejected:
    """A fetched record prepared (``prepare``); a prepared one as it is."""
    if isinstance(record, Prepared):
        return record
    return prepare(record.raw, spec, ctx, record.digest)


# Every digest names the redaction rules it was made under, and whether the payload is the record as fetched
# (redaction changed nothing) or a form redaction made. Only a digest of the first kind can equal a record's
# digest as fetched (``fetched``): equal, that record is a payload these same rules stored as it came, so they
# would store it as it is again. A source that sends back a form redaction made (a masked key, say) gets it
# prepared again, which need not store it unchanged: redaction is not idempotent everywhere.
_AS_FETCHED = f"rules {RULES_VERSION}: as fetched\0".encode()
_REDACTED = f"rules {RULES_VERSION}: redacted\0".encode()


def payload_hash(payload: Any, as_fetched: bool = False) -> str:
    """sha256 of the payload's canonical JSON (sorted keys; orjson, as this runs for every record fetched), under
    the tag of what the payload is."""
    return _tagged(_encoded(payload), as_fetched)


def _encoded(payload: Any) -> bytes:
    try:
        return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits, keys that are not strings: the slow, general encoder
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _tagged(encoded: bytes, as_fetched: bool) -> str:
    return hashlib.sha256((_AS_FETCHED if as_fetched else _REDACTED) + encoded).hexdigest()


def stored_digests(payload: Any) -> tuple[str, str]:
    """The digests a stored payload may carry: stored as it was fetched, or a form redaction made."""
    encoded = _encoded(payload)
    return _tagged(encoded, as_fetched=True), _tagged(encoded, as_fetched=False)


def _exact_digest(raw: Mapping[str, Any]) -> str | None:
    """``payload_hash(raw, as_fetched=True)`` when orjson encodes raw exactly: not integers beyond 64 bits (its
    TypeError), not NaN or infinity (which it writes as null, so that a record sending NaN where its stored form
    holds null would pass for unchanged)."""
    try:
        encoded = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    if b"null" in encoded and not _finite(raw):
        return None
    return _tagged(encoded, as_fetched=True)


def _finite(value: Any) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    return True


def prepare(raw: Any, spec: StreamSpec, ctx: MappingContext, digest: str | None = None) -> Prepared | Rejected:
    """The record as it will be stored, with its key; or why it cannot be. ``digest``: raw's, when known."""
    stream = spec.stream
    try:
        redacted = redact(spec.scrub(raw, ctx) if spec.scrub else raw)
    except Exception as exc:  # noqa: BLE001 - one record's oddity must not fail its page
        digest = payload_hash(None)
        return Rejected(_key_or_hash(raw, stream.key, digest), f"record: cannot be stored ({_kind(exc)})", None, digest)
    stored = redacted.payload
    if stored is not raw or digest is None:  # a plain record is raw itself, whose digest may be known
        digest = payload_hash(stored, as_fetched=stored is raw or stored == raw)
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
