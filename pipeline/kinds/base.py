"""What a source kind declares, and the configuration keys every kind takes.

A kind (``pipeline.kinds.<kind>``) is one declaration: its streams, each with the mapping its records take and
the entity a record is, its auth header, its default phone region, and its configuration model (``SourceBase``
and the keys of its own).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator

from canonical.model import EntityType, Mapped
from connectors import DEFAULT_MAX_RESPONSE_BYTES
from connectors.stream import Stream
from mappings.context import MappingContext

MappingFn = Callable[[Mapping[str, Any], MappingContext], Mapped]
Scrub = Callable[[Any, MappingContext], Any]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Keys anyone can read (the sandbox's): hashes made with them can be reversed by trying every SSN, so a real
# source may not use them; only the demo, on synthetic people, does.
SANDBOX_SSN_KEY = "sandbox-only-ssn-hash-key"
PUBLISHED_KEYS = frozenset({SANDBOX_SSN_KEY})


def hmac_key(key: SecretStr | None) -> SecretStr | None:
    """An SSN hash key as configured: None when unset ("${VAR:-}"), refused when published or short."""
    if key is None or not key.get_secret_value():
        return None
    if key.get_secret_value() in PUBLISHED_KEYS:
        raise ValueError("is a key published with patientsync's sandbox: set a secret of your own")
    if len(key.get_secret_value()) < 16:
        raise ValueError("must be at least 16 characters (an HMAC key: keep it secret, e.g. ${PARTICLE_SSN_KEY})")
    return key


def _cron(expression: str | None) -> str | None:
    if expression is not None:
        try:
            CronTrigger.from_crontab(expression)
        except ValueError as exc:
            raise ValueError(f"{expression!r} is not a cron expression ({exc})") from None
    return expression


class SourceBase(Strict):
    """The keys of every source, whatever its kind (the README's configuration table)."""

    kind: str
    base_url: HttpUrl
    token: SecretStr
    streams: list[str] | None = None  # None: every stream of the kind
    page_size: int = Field(100, ge=1, le=10_000)
    schedule: str | None = "*/15 * * * *"
    full_refresh: str | None = "0 3 * * *"
    timeout: float = Field(30.0, gt=0)
    deadline: float | None = Field(None, gt=0)  # seconds a whole response may take; None: 3 x timeout
    max_response_bytes: int = Field(DEFAULT_MAX_RESPONSE_BYTES, ge=1024, le=1024**3)  # decoded, per response
    retries: int = Field(6, ge=1, le=20)
    phone_region: str | None = None  # None: the kind's default
    concurrency: int = Field(8, ge=1, le=64)
    rate_limit: float | None = Field(None, gt=0)
    max_delete_fraction: float = Field(0.5, gt=0, le=1)  # a sweep deleting more is taken for a truncated listing
    auth_header: str | None = Field(None, pattern=r"^[A-Za-z0-9-]+$")  # None: the kind's header
    auth_scheme: str | None = Field(None, pattern=r"^[A-Za-z0-9-]*$")  # None: the kind's; "" sends the bare token

    _check_schedule = field_validator("schedule", "full_refresh")(_cron)

    def ssn_key(self) -> bytes | None:
        """The HMAC key for the SSN hashes kept for matching; None: no hash is kept."""
        return None

    def secrets(self) -> list[str]:
        """Every secret of this source, to mask wherever it could appear."""
        return [self.token.get_secret_value()]

    def bind(self, stream: Stream) -> Stream:
        """The kind's stream as this source's options shape it (its page size, ...)."""
        return stream.with_page_size(self.page_size)


@dataclass(frozen=True)
class Deferred:
    """``module.name``, a function imported on its first call. The kinds name their mappings this way, so what
    reads only the configuration (``status``) does not import the mappings' libraries (phonenumbers,
    python-stdnum: 45 ms of a command's start). tests/test_kinds.py resolves every one."""

    module: str
    name: str

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)

    @cached_property
    def function(self) -> Callable[..., Any]:
        return getattr(importlib.import_module(self.module), self.name)


@dataclass(frozen=True)
class StreamSpec:
    stream: Stream
    mapping: MappingFn
    entity: EntityType  # what one record of the stream is: soft-deleted when it disappears
    links: bool = False  # records carry care-team links: a record's links replace its stored ones
    scrub: Scrub | None = None  # what the stored payload keeps of a record, beyond the generic redaction

    def bound(self, source: SourceBase) -> StreamSpec:
        return replace(self.imported(), stream=source.bind(self.stream))

    def imported(self) -> StreamSpec:
        """The spec with its mappings imported now: a broken install fails the stream before its first record,
        instead of each record failing its mapping and being quarantined."""
        for deferred in (self.mapping, self.scrub):
            if isinstance(deferred, Deferred):
                deferred.function  # noqa: B018 - imported for its side effect
        return self


@dataclass(frozen=True)
class Kind:
    name: str
    config: type[SourceBase]  # the configuration model of a source of this kind
    streams: dict[str, StreamSpec]  # in the order they run: parents before the streams that fan out of them
    auth_header: str
    auth_scheme: str  # "" sends the bare token
    phone_region: str
    hashes_ssns: bool = False  # its records carry SSNs, kept as an HMAC when the source has an ssn_hash_key
