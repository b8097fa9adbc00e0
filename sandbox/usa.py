"""Facts about the United States that a US-based source's rendering of a person must respect to look real.

Particle is a US network: it keeps two-letter states, five-digit ZIP codes and ten-digit national phone
numbers, so the shared (Mexican) people are rendered there as living in US cities with large Mexican-born
communities. Area codes are real ones that `phonenumbers` accepts for region US.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class State(NamedTuple):
    code: str  # USPS two-letter code
    zip3: tuple[int, int]  # first three digits of its ZIP codes, inclusive range
    cities: tuple[tuple[str, str], ...]  # (city, telephone area code)


STATES: tuple[State, ...] = (
    State("CA", (900, 961), (("Los Angeles", "213"), ("San Diego", "619"), ("San Jose", "408"), ("Fresno", "559"))),
    State("TX", (750, 799), (("Houston", "713"), ("San Antonio", "210"), ("Dallas", "214"), ("El Paso", "915"))),
    State("AZ", (850, 865), (("Phoenix", "602"), ("Tucson", "520"))),
    State("NM", (870, 884), (("Albuquerque", "505"), ("Las Cruces", "575"))),
    State("IL", (600, 629), (("Chicago", "312"), ("Cicero", "708"))),
    State("FL", (320, 349), (("Miami", "305"), ("Orlando", "407"), ("Tampa", "813"))),
    State("NY", (100, 149), (("New York", "212"), ("Queens", "718"))),
    State("NV", (889, 898), (("Las Vegas", "702"), ("Reno", "775"))),
    State("CO", (800, 816), (("Denver", "303"), ("Aurora", "720"))),
    State("GA", (300, 319), (("Atlanta", "404"), ("Dalton", "706"))),
    State("NC", (270, 289), (("Charlotte", "704"), ("Raleigh", "919"))),
    State("WA", (980, 994), (("Seattle", "206"), ("Yakima", "509"))),
    State("NJ", (70, 89), (("Newark", "973"), ("Elizabeth", "908"))),
)

STREETS: tuple[str, ...] = (
    "Main St",
    "Oak Ave",
    "Maple Dr",
    "Cedar Ln",
    "Mission St",
    "Cesar Chavez Ave",
    "Broadway",
    "Pine St",
    "Washington Blvd",
    "Lincoln Ave",
    "Sunset Blvd",
    "Elm St",
    "Park Ave",
    "Riverside Dr",
    "Alameda St",
    "Central Ave",
)


def phone_digits(r: Callable[[], float], area: str) -> tuple[str, str, str]:
    """(area, exchange, line) of a ten-digit number: the exchange starts 2-9 and is never an N11 service code."""
    exchange = f"{2 + int(r() * 8)}{int(r() * 10)}{int(r() * 10)}"
    if exchange[1:] == "11":
        exchange = exchange[0] + "21"
    return area, exchange, f"{int(r() * 10_000):04d}"
