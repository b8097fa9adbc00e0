"""The gauges API: patients and, per stored patient, their readings (vendor document 003)."""

from __future__ import annotations

from typing import Literal

from canonical.model import EntityType
from connectors import gauges as api
from pipeline.kinds.base import Deferred, Kind, SourceBase, StreamSpec

MAPPINGS = "mappings.gauges"  # imported on a record's first mapping (Deferred)


class GaugesSource(SourceBase):
    kind: Literal["gauges"]


KIND = Kind(
    name="gauges",
    config=GaugesSource,
    streams={
        "patients": StreamSpec(api.PATIENTS, Deferred(MAPPINGS, "to_patient"), EntityType.patient),
        "gauges": StreamSpec(api.GAUGES, Deferred(MAPPINGS, "to_gauge"), EntityType.observation),
    },
    auth_header=api.AUTH_HEADER,
    auth_scheme=api.AUTH_SCHEME,
    phone_region="US",
)
