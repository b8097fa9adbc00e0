"""Which streams each kind of source has, how it authenticates, and which mapping each stream's records take."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from canonical.model import EntityType, Mapped
from connectors import prescrypto
from connectors.client import RetryPolicy, SourceClient
from connectors.stream import Stream
from mappings import prescrypto as prescrypto_mapping
from mappings.context import MappingContext

if TYPE_CHECKING:
    from pipeline.config import SourceConfig

Mapping_ = Callable[[Mapping[str, Any], MappingContext], Mapped]


@dataclass(frozen=True)
class StreamSpec:
    stream: Stream
    mapping: Mapping_
    entity: EntityType  # what one record of the stream is: soft-deleted when it disappears
    links: bool = False  # records carry care-team links: a record's links replace its stored ones


@dataclass(frozen=True)
class Kind:
    streams: dict[str, StreamSpec]
    auth_headers: Callable[[str], dict[str, str]]
    phone_region: str


KINDS: dict[str, Kind] = {
    "prescrypto": Kind(
        streams={
            "patients": StreamSpec(prescrypto.PATIENTS, prescrypto_mapping.to_patient, EntityType.patient),
            "medics": StreamSpec(prescrypto.MEDICS, prescrypto_mapping.to_medic, EntityType.medic),
        },
        auth_headers=prescrypto.auth_headers,
        phone_region="MX",
    ),
}


def stream_names(source: SourceConfig) -> list[str]:
    return list(source.streams or KINDS[source.kind].streams)


def stream_spec(source: SourceConfig, name: str) -> StreamSpec:
    spec = KINDS[source.kind].streams[name]
    return replace(spec, stream=spec.stream.with_page_size(source.page_size))


def phone_region(source: SourceConfig) -> str:
    return source.phone_region or KINDS[source.kind].phone_region


def open_client(name: str, source: SourceConfig, retry: RetryPolicy | None = None) -> SourceClient:
    return SourceClient(
        name,
        str(source.base_url),
        KINDS[source.kind].auth_headers(source.token.get_secret_value()),
        timeout=source.timeout,
        retry=retry or RetryPolicy(attempts=source.retries),
        max_connections=max(2, source.concurrency),
        rate_limit=source.rate_limit,
    )
