"""Binding a source's configuration to what runs it: its streams, its client and its mappings' context."""

from __future__ import annotations

import datetime as dt
import threading

import httpx

from connectors.client import RetryPolicy, SourceClient
from mappings.context import MappingContext
from pipeline.kinds import KINDS, SourceBase, StreamSpec

SourceConfig = SourceBase


def stream_spec(source: SourceConfig, name: str) -> StreamSpec:
    """The kind's stream as this source's options shape it (its page size, its continuation parameter)."""
    return KINDS[source.kind].streams[name].bound(source)


def phone_region(source: SourceConfig) -> str:
    return source.phone_region or KINDS[source.kind].phone_region


def mapping_context(source: SourceConfig, today: dt.date) -> MappingContext:
    return MappingContext(today=today, phone_region=phone_region(source), ssn_key=source.ssn_key())


def auth_headers(source: SourceConfig) -> dict[str, str]:
    kind = KINDS[source.kind]
    header = source.auth_header or kind.auth_header
    scheme = kind.auth_scheme if source.auth_scheme is None else source.auth_scheme
    token = source.token.get_secret_value()
    return {header: f"{scheme} {token}" if scheme else token}


def open_client(
    name: str,
    source: SourceConfig,
    retry: RetryPolicy | None = None,
    stop: threading.Event | None = None,
    transport: httpx.BaseTransport | None = None,
) -> SourceClient:
    """The source's client; once ``stop`` is set it sends nothing more and cuts retry waits short.

    ``transport`` replaces the network (tests: ``sandbox.inprocess.in_process(app)``)."""
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
        transport=transport,
    )
