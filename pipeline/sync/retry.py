"""``quarantine retry``: the stored payloads of quarantined records mapped again with the current code.

A record the current mapping takes lands as a sync would land it (canonical row, crosswalk, care links, match
keys, queued for linking) and leaves quarantine; one it still refuses keeps its row, with the reason of today's
code. Each stream is held by its lease meanwhile, so no run writes it at the same time.

A payload is what ``source_record`` keeps: scrubbed and redacted (``pipeline.sync.redaction``), so it may lack
what the source sent. So a record is judged again only where its stored form shows all that a sync judged it
on (``judged_again``); the others stay as they are, for the source's next answer to decide. The mapping is told
it reads a stored form (``MappingContext.stored``), so it takes no SSN evidence from it: a stored form made by an
older version may hold a source's own. The record's key is the quarantine row's (a payload's may be masked). A
landed record's stored hash is marked as not the source's own: the next run that reads the record maps it again
from what the source sends (its SSN evidence included), and stores that.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import Any

import structlog
from sqlalchemy import Connection, Engine

from canonical.errors import LeaseHeldError
from canonical.privacy import is_secret_key
from mappings.context import MappingContext
from pipeline.bind import mapping_context, stream_spec
from pipeline.config import Config
from pipeline.kinds import StreamSpec, stream_names
from pipeline.storage import leases, load, quarantine
from pipeline.storage.db import reading, utcnow
from pipeline.sync.linking import LinkStats
from pipeline.sync.prepare import Prepared, PreparedPage, Rejected, prepare, stored_digests
from pipeline.sync.redaction import DERIVED_KEYS, holds_a_mark
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
        claim = leases.claim_stream(engine, name, stream)
    except LeaseHeldError as exc:
        result.skipped = str(exc)
        return result
    try:
        ctx = replace(mapping_context(source, utcnow().date()), stored=True)
        after = None
        while True:
            with engine.begin() as conn:
                chunk = quarantine.payloads(conn, name, stream, after, CHUNK)
                if not chunk:
                    break
                after = chunk[-1][0]
                _retry_chunk(conn, name, spec, ctx, chunk, result)
                leases.renew_lease(conn, name, stream, claim.holder, utcnow())
    finally:
        claim.release()
    log.info(
        "quarantine retried", source=name, stream=stream, retried=result.retried, landed=result.landed,
        still_bad=result.still_bad,
    )  # fmt: skip
    return result


def _retry_chunk(
    conn: Connection,
    name: str,
    spec: StreamSpec,
    ctx: MappingContext,
    chunk: list[tuple[str, Any, str]],
    result: Retried,
) -> None:
    stream = spec.stream.name
    good: dict[str, Prepared] = {}
    bad: list[Rejected] = []
    kept = []
    for key, payload, reason in chunk:
        if not judged_again(key, payload, reason, spec.stream.key):
            kept.append(key)
            continue
        # Prepared again (redaction does nothing twice) for the digest and the checks; the key is the row's,
        # since the payload's own may be masked (a Particle id with nine digits in a row).
        record = prepare(payload, spec, ctx)
        if isinstance(record, Rejected):
            bad.append(replace(record, key=key))
        else:
            good[key] = replace(record, key=key, raw={**record.stored, spec.stream.key: key})
    stored = load.stored_hashes(conn, name, stream, list(good))
    # Stale: the record stored since holds this very payload, whether stored as fetched or redacted.
    stale = {key for key, r in good.items() if stored.get(key) in {(d, False) for d in stored_digests(r.stored)}}
    retried = PreparedPage(
        {k: replace(r, digest=not_the_sources(r.digest)) for k, r in good.items() if k not in stale}, bad, len(chunk)
    )
    rows, counts = map_page(retried, stored, spec, ctx, name, utcnow(), None)
    load.write(conn, rows)
    # A landed record's row went with load.write; a stale one's goes here: only the rows of records
    # quarantined again, and those not judged, stay.
    gone = {key for key, _, _ in chunk}.difference(counts.bad_keys, kept)
    quarantine.remove(conn, name, stream, sorted(gone))
    result.retried += len(chunk)
    result.landed += counts.inserted + counts.updated
    result.stale += len(stale)
    result.still_bad += counts.quarantined
    result.kept += len(kept)


def judged_again(key: str, payload: Any, reason: str, key_field: str) -> bool:
    """Whether a quarantined record's stored form still shows all a sync judged it on.

    Not when: no payload was kept; the row is keyed by a hash (the record had no usable key, and storing it may
    have changed the one it had); the payload shows a mark of redaction outside its key (a masked text, which
    may be what was refused, or a cut at the depth limit); or the reason names a secret field (an SSN), whose
    value is never stored. What a kind's scrub derives is not looked at: a stored form's is not taken.

    >>> judged_again("u1", {"uid": "u1", "date_of_birth": "1990-02-30"}, "date_of_birth: no such day", "uid")
    True
    >>> judged_again("u1", {"uid": "u1", "date_of_birth": "[redacted]"}, "date_of_birth: not a date", "uid")
    False
    >>> judged_again("pt-1", {"patient_id": "pt-1"}, "ssn: not a social security number", "patient_id")
    False
    """
    if payload is None or key.startswith("sha256:") or not isinstance(payload, dict):
        return False
    field = re.split(r"[.\[]", reason.split(":", 1)[0])[-1]
    if is_secret_key(field):
        return False
    return not holds_a_mark({k: v for k, v in payload.items() if k != key_field}, DERIVED_KEYS)


def not_the_sources(digest: str) -> str:
    """A stored hash that no payload has: the record's next read differs from it, and is mapped and stored."""
    return hashlib.sha256(f"quarantine retry\0{digest}".encode()).hexdigest()
