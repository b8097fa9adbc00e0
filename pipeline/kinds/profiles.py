"""The profiles API: patients with their doctors and hospitals (vendor document 002)."""

from __future__ import annotations

from typing import Literal

from canonical.model import EntityType
from connectors import profiles as api
from pipeline.kinds.base import Deferred, Kind, SourceBase, StreamSpec

MAPPINGS = "mappings.profiles"  # imported on a record's first mapping (Deferred)


class ProfilesSource(SourceBase):
    kind: Literal["profiles"]


KIND = Kind(
    name="profiles",
    config=ProfilesSource,
    streams={"patients": StreamSpec(api.PATIENTS, Deferred(MAPPINGS, "to_patient"), EntityType.patient, links=True)},
    auth_header=api.AUTH_HEADER,
    auth_scheme=api.AUTH_SCHEME,
    phone_region="US",  # the document's numbers are international; "+1..." suggests North America
)
