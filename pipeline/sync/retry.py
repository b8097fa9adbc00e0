"""``quarantine retry``: the stored payloads of quarantined records mapped again with the current code.

A record the current mapping takes lands as a sync would land it (canonical row, crosswalk, care links, match
keys, queued for linking) and leaves quarantine; one it still refuses keeps its row, with the reason of today's
code. Each stream is held by its lease meanwhile, so no run writes it at the same time.

A payload is what ``source_record`` keeps: scrubbed and redacted (``pipeline.sync.redaction``), so it may lack
what the source sent. So:
- the mapping is told it reads a stored form (``MappingContext.stored``: Particle's SSN is its last four digits
  and hash then, and an SSN the scrub could not read still fails);
- a text that redaction masked reaches the mapping as absent, never as ``[redacted]``, and the record's key is
  the quarantine row's own (a payload's may be masked);
- what cannot be judged again stays as it is: a row without a payload, a payload cut at the depth limit (its
  record was too deep), a row keyed by a hash because the record had no usable key (redaction may have
  changed the key it had);
- a landed record's stored hash is marked as not the source's own: the next run that reads the record maps it
  again from what the source sends, and stores that.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import structlog
from sqlalchemy import Connection, Engine

from canonical.errors import LeaseHeldError
from canonical.privacy import REDACTED
from mappings.context import MappingContext
from pipeline.bind import mapping_context, stream_names, stream_spec
from pipeline.config import Config
from pipeline.kinds import StreamSpec
from pipeline.storage import load, quarantine, state
from pipeline.storage.db import reading
from pipeline.sync.linking import LinkStats
from pipeline.sync.prepare import Prepared, PreparedPage, Rejected, prepare
from pipeline.sync.redaction import holds_a_cut
from pipeline.sync.rows import map_page
from pipeline.sync.runner import link

log = structlog.get_logger(__name__)

CHUNK = 500  # records mapped and written per transaction


@dataclass
class Retried:
    source: str
    stream: str
    retried: int = 0
    landed: int = 0  # inserted or updated
    stale: int = 0  # the stored record is this very payload already: only the row goes
    still_bad: int = 0
    kept: int = 0  # rows that cannot be judged again (see the module): they stay as they are
    skipped: str | None = None  # why the stream was not retried (another process runs it)


def retry_quarantine(
    config: Config, engine: Engine, only: list[str] | None = None
) -> tuple[list[Retried], LinkStats | None]:
    """Retry every stream of the chosen sources that has quarantined records; then link what landed."""
    results = []
    for name, source in config.sources.items():
        if only and name not in only:
            continue
        for stream in stream_names(source):
            with reading(engine).connect() as conn:
                if not quarantine.payloads(conn, name, stream, None, 1):
                    continue
            results.append(_retry_stream(config, engine, name, stream))
    # As a sync links what it lands (or leaves it queued for `patientsync link` when told to).
    landed = any(r.landed for r in results)
    stats = link(engine, config.identity) if landed and config.identity.link_during_sync else None
    return results, stats


def _retry_stream(config: Config, engine: Engine, name: str, stream: str) -> Retried:
    result = Retried(name, stream)
    source = config.sources[name]
    spec = stream_spec(source, stream)
    try:
        claim = state.claim_stream(engine, name, stream)
    except LeaseHeldError as exc:
        result.skipped = str(exc)
        return result
    try:
        ctx = replace(mapping_context(source, state.utcnow().date()), stored=True)
        after = None
        while True:
            with engine.begin() as conn:
                chunk = quarantine.payloads(conn, name, stream, after, CHUNK)
                if not chunk:
                    break
                after = chunk[-1][0]
                _retry_chunk(conn, name, spec, ctx, chunk, result)
                state.renew_lease(conn, name, stream, claim.holder, state.utcnow())
    finally:
        claim.release()
    log.info(
        "quarantine retried", source=name, stream=stream, retried=result.retried, landed=result.landed,
        still_bad=result.still_bad,
    )  # fmt: skip
    return result


def _retry_chunk(
    conn: Connection, name: str, spec: StreamSpec, ctx: MappingContext, chunk: list[tuple[str, Any]], result: Retried
) -> None:
    stream = spec.stream.name
    good: dict[str, Prepared] = {}
    bad: list[Rejected] = []
    kept = []
    for key, payload in chunk:
        if payload is None or key.startswith("sha256:") or holds_a_cut(payload):
            kept.append(key)
            continue
        # Prepared again (redaction does nothing twice) for the digest and the checks; the key is the row's,
        # since the payload's own may be masked (a Particle id with nine digits in a row).
        record = prepare(payload, spec, ctx)
        if isinstance(record, Rejected):
            bad.append(replace(record, key=key))
        else:
            good[key] = replace(record, key=key, raw=as_mapped(record.stored, spec.stream.key, key))
    stored = load.stored_hashes(conn, name, stream, list(good))
    stale = {key for key, record in good.items() if stored.get(key) == (record.digest, False)}
    retried = PreparedPage(
        {k: replace(r, digest=not_the_sources(r.digest)) for k, r in good.items() if k not in stale}, bad, len(chunk)
    )
    rows, counts = map_page(retried, stored, spec, ctx, name, state.utcnow(), None)
    load.write(conn, rows)
    # A landed record's row went with load.write; a stale one's goes here: only the rows of records
    # quarantined again, and those not judged, stay.
    gone = {key for key, _ in chunk}.difference(counts.bad_keys, kept)
    quarantine.remove(conn, name, stream, sorted(gone))
    result.retried += len(chunk)
    result.landed += counts.inserted + counts.updated
    result.stale += len(stale)
    result.still_bad += counts.quarantined
    result.kept += len(kept)


def as_mapped(stored: Any, key_field: str, key: str) -> Any:
    """What the mapping reads of a stored payload: masked texts absent, the record's own key in its key field.

    >>> as_mapped({"patient_id": "pt-[redacted]", "phone": "+[redacted]", "name": "Ana"}, "patient_id", "pt-1")
    {'patient_id': 'pt-1', 'phone': None, 'name': 'Ana'}
    """
    raw = unmasked(stored)
    masked = stored.get(key_field)
    if isinstance(masked, str) and REDACTED in masked:
        raw[key_field] = key
    return raw


def unmasked(payload: Any) -> Any:
    """The payload with every text that redaction masked as absent: no mapping may take ``[redacted]`` for a value.

    >>> unmasked({"phone": "+[redacted]", "names": ["Ana", "[redacted]"], "age": 3})
    {'phone': None, 'names': ['Ana', None], 'age': 3}
    """
    if isinstance(payload, dict):
        return {key: unmasked(value) for key, value in payload.items()}
    if isinstance(payload, list):
        return [unmasked(value) for value in payload]
    return None if isinstance(payload, str) and REDACTED in payload else payload


def not_the_sources(digest: str) -> str:
    """A stored hash that no payload has: the record's next read differs from it, and is mapped and stored."""
    return hashlib.sha256(f"quarantine retry\0{digest}".encode()).hexdigest()
