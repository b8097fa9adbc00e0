"""Prescrypto: patients and medics (vendor documents 000 and 001)."""

from __future__ import annotations

from typing import Literal

from canonical.model import EntityType
from connectors import prescrypto as api
from mappings import prescrypto as mapping
from pipeline.kinds.base import Kind, SourceBase, StreamSpec


class PrescryptoSource(SourceBase):
    kind: Literal["prescrypto"]


KIND = Kind(
    name="prescrypto",
    config=PrescryptoSource,
    streams={
        "patients": StreamSpec(api.PATIENTS, mapping.to_patient, EntityType.patient),
        "medics": StreamSpec(api.MEDICS, mapping.to_medic, EntityType.medic),
    },
    auth_header=api.AUTH_HEADER,
    auth_scheme=api.AUTH_SCHEME,
    phone_region="MX",
)
