"""Prescrypto: patients and medics (vendor documents 000 and 001)."""

from __future__ import annotations

from typing import Literal

from canonical.model import EntityType
from connectors import prescrypto as api
from pipeline.kinds.base import Deferred, Kind, SourceBase, StreamSpec

MAPPINGS = "mappings.prescrypto"  # imported on a record's first mapping (Deferred)


class PrescryptoSource(SourceBase):
    kind: Literal["prescrypto"]


KIND = Kind(
    name="prescrypto",
    config=PrescryptoSource,
    streams={
        "patients": StreamSpec(api.PATIENTS, Deferred(MAPPINGS, "to_patient"), EntityType.patient),
        "medics": StreamSpec(api.MEDICS, Deferred(MAPPINGS, "to_medic"), EntityType.medic),
    },
    auth_header=api.AUTH_HEADER,
    auth_scheme=api.AUTH_SCHEME,
    phone_region="MX",
)
