"""The gauges API: patients and, per stored patient, their readings (vendor document 003)."""

from __future__ import annotations

from typing import Literal

from canonical.model import EntityType
from connectors import gauges as api
from mappings import gauges as mapping
from pipeline.kinds.base import Kind, SourceBase, StreamSpec


class GaugesSource(SourceBase):
    kind: Literal["gauges"]


KIND = Kind(
    name="gauges",
    config=GaugesSource,
    streams={
        "patients": StreamSpec(api.PATIENTS, mapping.to_patient, EntityType.patient),
        "gauges": StreamSpec(api.GAUGES, mapping.to_gauge, EntityType.observation),
    },
    auth_header=api.AUTH_HEADER,
    auth_scheme=api.AUTH_SCHEME,
    phone_region="US",
)
