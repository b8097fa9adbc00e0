"""What a mapping may know besides the record itself: passed in, so mappings stay pure."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MappingContext:
    today: dt.date  # birth dates after this are impossible
    phone_region: str = "MX"  # phonenumbers default region for numbers without a country code
    ssn_key: bytes | None = field(default=None, repr=False)  # HMAC key for SSNs; None: SSNs are not kept at all
    # The record is a stored payload (scrubbed and redacted), mapped again by `quarantine retry`, not the
    # source's own: what a kind's scrub derived from a secret (Particle's SSN) is not taken from it.
    stored: bool = False
