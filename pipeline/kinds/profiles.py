"""The profiles API: patients with their doctors and hospitals (vendor document 002)."""

from __future__ import annotations

from typing import Literal

from canonical.model import EntityType
from connectors import profiles as api
from mappings import profiles as mapping
from pipeline.kinds.base import Kind, SourceBase, StreamSpec


class ProfilesSource(SourceBase):
    kind: Literal["profiles"]


KIND = Kind(
    name="profiles",
    config=ProfilesSource,
    streams={"patients": StreamSpec(api.PATIENTS, mapping.to_patient, EntityType.patient, links=True)},
    auth_header=api.AUTH_HEADER,
    auth_scheme=api.AUTH_SCHEME,
    phone_region="US",  # the document's numbers are international; "+1..." suggests North America
)
