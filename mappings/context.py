"""What a mapping may know besides the record itself: passed in, so mappings stay pure."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class MappingContext:
    today: dt.date  # birth dates after this are impossible
    phone_region: str = "MX"  # phonenumbers default region for numbers without a country code
