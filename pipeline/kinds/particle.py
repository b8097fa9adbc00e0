"""Particle Health: a listing of ids, then each patient's demographics, SSN included (vendor document 004)."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from canonical.model import EntityType
from connectors import particle as api
from connectors.paging import TokenPaginator
from connectors.stream import Stream
from mappings import particle as mapping
from pipeline.kinds.base import Kind, SourceBase, StreamSpec
from sandbox import tokens

# Keys anyone can read (the sandbox's): hashes made with them can be reversed by trying every SSN, so a real
# source may not use them; only the demo, on synthetic people, does.
SANDBOX_SSN_KEY = "sandbox-only-ssn-hash-key"
PUBLISHED_KEYS = frozenset({SANDBOX_SSN_KEY})


class ParticleSource(SourceBase):
    kind: Literal["particle"]
    continuation_param: str = Field("continuation_token", min_length=1)  # the token's query parameter
    ssn_hash_key: SecretStr | None = None  # HMAC key for stored SSN hashes; None keeps no hash

    @field_validator("ssn_hash_key")
    @classmethod
    def _secret_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is None or not key.get_secret_value():  # "${PARTICLE_SSN_KEY:-}" unset: no hash is kept
            return None
        if key.get_secret_value() in PUBLISHED_KEYS:
            raise ValueError("is a key published with patientsync's sandbox: set a secret of your own")
        if len(key.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (an HMAC key: keep it secret, e.g. ${PARTICLE_SSN_KEY})")
        return key

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
        "patients": StreamSpec(api.PATIENTS, mapping.to_patient, EntityType.patient, scrub=mapping.scrub),
    },
    auth_header=api.AUTH_HEADER,
    auth_scheme=api.AUTH_SCHEME,
    phone_region="US",
    sandbox_token=tokens.PARTICLE,
    hashes_ssns=True,
)
