"""Which streams each kind of source has, how it authenticates, and which mapping each stream's records take."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from canonical.model import EntityType, Mapped
from connectors import gauges, particle, prescrypto, profiles
from connectors.client import RetryPolicy, SourceClient
from connectors.paging import TokenPaginator
from connectors.stream import FanOut, Stream
from mappings import gauges as gauges_mapping
from mappings import particle as particle_mapping
from mappings import prescrypto as prescrypto_mapping
from mappings import profiles as profiles_mapping
from mappings.context import MappingContext

if TYPE_CHECKING:
    from pipeline.config import SourceConfig

MappingFn = Callable[[Mapping[str, Any], MappingContext], Mapped]
Scrub = Callable[[Any, MappingContext], Any]


@dataclass(frozen=True)
class StreamSpec:
    stream: Stream | FanOut
    mapping: MappingFn
    entity: EntityType  # what one record of the stream is: soft-deleted when it disappears
    links: bool = False  # records carry care-team links: a record's links replace its stored ones
    scrub: Scrub | None = None  # what the stored payload keeps of a record, beyond the generic redaction


@dataclass(frozen=True)
class Kind:
    streams: dict[str, StreamSpec]
    auth_header: str
    auth_scheme: str  # "" sends the bare token
    phone_region: str
    hashes_ssns: bool = False  # its records carry SSNs, kept as an HMAC when the source has an ssn_hash_key


KINDS: dict[str, Kind] = {
    "prescrypto": Kind(
        streams={
            "patients": StreamSpec(prescrypto.PATIENTS, prescrypto_mapping.to_patient, EntityType.patient),
            "medics": StreamSpec(prescrypto.MEDICS, prescrypto_mapping.to_medic, EntityType.medic),
        },
        auth_header=prescrypto.AUTH_HEADER,
        auth_scheme=prescrypto.AUTH_SCHEME,
        phone_region="MX",
    ),
    "profiles": Kind(
        streams={
            "patients": StreamSpec(profiles.PATIENTS, profiles_mapping.to_patient, EntityType.patient, links=True)
        },
        auth_header=profiles.AUTH_HEADER,
        auth_scheme=profiles.AUTH_SCHEME,
        phone_region="US",  # the document's numbers are international; "+1..." suggests North America
    ),
    "gauges": Kind(
        streams={
            "patients": StreamSpec(gauges.PATIENTS, gauges_mapping.to_patient, EntityType.patient),
            "gauges": StreamSpec(gauges.GAUGES, gauges_mapping.to_gauge, EntityType.observation),
        },
        auth_header=gauges.AUTH_HEADER,
        auth_scheme=gauges.AUTH_SCHEME,
        phone_region="US",
    ),
    "particle": Kind(
        streams={
            "patients": StreamSpec(
                particle.PATIENTS, particle_mapping.to_patient, EntityType.patient, scrub=particle_mapping.scrub
            )
        },
        auth_header=particle.AUTH_HEADER,
        auth_scheme=particle.AUTH_SCHEME,
        phone_region="US",
        hashes_ssns=True,
    ),
}


def stream_names(source: SourceConfig) -> list[str]:
    """The source's streams in the kind's order, which puts parents (gauges patients) before their children."""
    kind = KINDS[source.kind].streams
    return [name for name in kind if name in source.streams] if source.streams else list(kind)


def stream_spec(source: SourceConfig, name: str) -> StreamSpec:
    spec = KINDS[source.kind].streams[name]
    stream = spec.stream
    if isinstance(stream, Stream):
        stream = stream.with_page_size(source.page_size)
        if isinstance(stream.paginator, TokenPaginator):
            stream = replace(stream, paginator=TokenPaginator(source.continuation_param))
    return replace(spec, stream=stream)


def phone_region(source: SourceConfig) -> str:
    return source.phone_region or KINDS[source.kind].phone_region


def mapping_context(source: SourceConfig, today: dt.date) -> MappingContext:
    key = source.ssn_hash_key.get_secret_value().encode() if source.ssn_hash_key else None
    return MappingContext(today=today, phone_region=phone_region(source), ssn_key=key)


def auth_headers(source: SourceConfig) -> dict[str, str]:
    kind = KINDS[source.kind]
    header = source.auth_header or kind.auth_header
    scheme = kind.auth_scheme if source.auth_scheme is None else source.auth_scheme
    token = source.token.get_secret_value()
    return {header: f"{scheme} {token}" if scheme else token}


def open_client(
    name: str, source: SourceConfig, retry: RetryPolicy | None = None, stop: threading.Event | None = None
) -> SourceClient:
    """The source's client; once ``stop`` is set it sends nothing more and cuts retry waits short."""
    return SourceClient(
        name,
        str(source.base_url),
        auth_headers(source),
        timeout=source.timeout,
        retry=retry or RetryPolicy(attempts=source.retries),
        max_connections=max(2, source.concurrency),
        rate_limit=source.rate_limit,
        stop=stop,
        max_response_bytes=source.max_response_bytes,
        deadline=source.deadline,
        secrets=[source.token.get_secret_value()],
    )
