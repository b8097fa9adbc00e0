"""Particle Health: a listing of ids, then each patient's demographics, SSN included (vendor document 004)."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from canonical.model import EntityType
from connectors import particle as api
from connectors.paging import TokenPaginator
from connectors.stream import Stream
from pipeline.kinds.base import Deferred, Kind, SourceBase, StreamSpec, hmac_key

MAPPINGS = "mappings.particle"  # imported on a record's first mapping (Deferred)


class ParticleSource(SourceBase):
    kind: Literal["particle"]
    continuation_param: str = Field("continuation_token", min_length=1)  # the token's query parameter
    ssn_hash_key: SecretStr | None = None  # HMAC key for stored SSN hashes; None keeps no hash

    _secret_key = field_validator("ssn_hash_key")(hmac_key)

    def ssn_key(self) -> bytes | None:
        return self.ssn_hash_key.get_secret_value().encode() if self.ssn_hash_key else None

    def secrets(self) -> list[str]:
        return [*super().secrets(), *([self.ssn_hash_key.get_secret_value()] if self.ssn_hash_key else [])]

    def bind(self, stream: Stream) -> Stream:
        bound = super().bind(stream)
        if isinstance(bound.paginator, TokenPaginator):
            return replace(bound, paginator=TokenPaginator(self.continuation_param))
        return bound


KIND = Kind(
    name="particle",
    config=ParticleSource,
    streams={
        "patients": StreamSpec(
            api.PATIENTS, Deferred(MAPPINGS, "to_patient"), EntityType.patient, scrub=Deferred(MAPPINGS, "scrub")
        ),
    },
    auth_header=api.AUTH_HEADER,
    auth_scheme=api.AUTH_SCHEME,
    phone_region="US",
    hashes_ssns=True,
)
