"""Synthetic Mexican people, shared by every simulated API so that one person can appear in several sources.

Faker is slow per call (tens of microseconds), and the benchmarks want 100,000 people in well under a second
or two, so Faker only fills the pools, once per process with a fixed seed; a `random.Random(seed)` then
combines pool entries. Generation is sequential, so the first N people of a seed are the same whatever the
total: a sandbox reset to 300 people keeps the 250 it had.

A person is source-neutral (sex is male/female/other, the phone is bare digits); each API module decides how
its source renders it (gender codes, phone formats, which fields are empty).
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from faker import Faker

from sandbox.mexico import (
    CURP_BLACKLIST,
    CURP_COMMON_FIRST,
    CURP_PARTICLES,
    STATES,
    curp_check_digit,
)

SPECIALTIES = (
    "Medicina General",
    "Medico Cirujano",
    "Pediatría",
    "Ginecología y Obstetricia",
    "Medicina Interna",
    "Cardiología",
    "Dermatología",
    "Endocrinología",
    "Gastroenterología",
    "Geriatría",
    "Neurología",
    "Oftalmología",
    "Ortopedia",
    "Otorrinolaringología",
    "Psiquiatría",
    "Urología",
    "Nutriología",
)
UNIVERSITIES = (
    "Universidad Nacional Autónoma de México",
    "Instituto Politécnico Nacional",
    "Universidad de Guadalajara",
    "Universidad Autónoma de Nuevo León",
    "Benemérita Universidad Autónoma de Puebla",
    "Universidad Veracruzana",
    "Universidad Anáhuac",
    "Universidad La Salle",
    "Tecnológico de Monterrey",
    "Universidad Autónoma de Yucatán",
    "Universidad Michoacana de San Nicolás de Hidalgo",
)


@dataclass(slots=True)
class Person:
    given_names: str  # one or two: "Ana", "María José"
    surname1: str  # paternal; may carry a particle: "de la Cruz"
    surname2: str  # maternal
    sex: str  # "male", "female" or "other"
    birth_date: str  # YYYY-MM-DD
    curp: str  # always valid and consistent with name, birth date, sex and state; sources may omit it
    email: str  # personal address; not unique
    phone_area: str  # "55", "33", "81" or three digits
    phone_local: str  # the remaining digits: ten in all
    street: str  # "Calle Guatemala 523"
    city: str
    state: str
    zip_code: str  # five digits, within the state's range

    @property
    def full_name(self) -> str:
        return f"{self.given_names} {self.surname1} {self.surname2}"


@dataclass(slots=True)
class Clinician:
    person: Person
    cedula: str  # cédula profesional: 7 or 8 digits
    specialty: str
    alma_mater: str


@dataclass(frozen=True, slots=True)
class _Name:
    text: str
    slug: str  # for email addresses
    letters: str  # CURP letters: initial, first inner vowel, first inner consonant


@dataclass(frozen=True)
class _Pools:
    male: tuple[_Name, ...]
    female: tuple[_Name, ...]
    surnames: tuple[_Name, ...]
    particle_surnames: tuple[_Name, ...]
    streets: tuple[str, ...]
    domains: tuple[str, ...]


def generate_people(n: int, seed: int) -> list[Person]:
    """`n` people born 1930-2020, the same for the same seed."""
    rng = random.Random(f"people:{seed}")
    return _generate(rng, n, dt.date(1930, 1, 1), dt.date(2020, 12, 31))


def generate_clinicians(n: int, seed: int) -> list[Clinician]:
    """`n` practising doctors, born 1950-1998, the same for the same seed."""
    rng = random.Random(f"clinicians:{seed}")
    people = _generate(rng, n, dt.date(1950, 1, 1), dt.date(1998, 12, 31))
    r = rng.random
    clinicians = []
    for p in people:
        digits = 8 if r() < 0.6 else 7  # older cédulas have seven digits
        cedula = str(10 ** (digits - 1) + int(r() * 9 * 10 ** (digits - 1)))
        specialty = SPECIALTIES[int(r() * len(SPECIALTIES))]
        clinicians.append(Clinician(p, cedula, specialty, UNIVERSITIES[int(r() * len(UNIVERSITIES))]))
    return clinicians


def _generate(rng: random.Random, n: int, born_from: dt.date, born_to: dt.date) -> list[Person]:
    # Hot loop: everything bound locally, pools indexed with random() rather than rng.choice.
    pools = _pools()
    r = rng.random
    males, females = pools.male, pools.female
    n_males, n_females = len(males), len(females)
    surnames, particles = pools.surnames, pools.particle_surnames
    n_surnames, n_particles = len(surnames), len(particles)
    streets, domains = pools.streets, pools.domains
    n_streets, n_domains = len(streets), len(domains)
    days = _days(born_from, born_to)
    n_days = len(days)
    states, n_states = STATES, len(STATES)
    letters_of, check_digit = given_letters, curp_check_digit
    out: list[Person] = []
    append = out.append
    for _ in range(n):
        x = r()
        sex = "male" if x < 0.48 else "female" if x < 0.96 else "other"
        if sex == "male" or (sex == "other" and r() < 0.5):
            pool, size = males, n_males
        else:
            pool, size = females, n_females
        g = pool[int(r() * size)]
        given = g.text
        if r() < 0.22 and " " not in given:
            second = pool[int(r() * size)].text
            if second != given and " " not in second:
                given = f"{given} {second}"
        s1 = particles[int(r() * n_particles)] if r() < 0.05 else surnames[int(r() * n_surnames)]
        s2 = particles[int(r() * n_particles)] if r() < 0.05 else surnames[int(r() * n_surnames)]
        birth, yymmdd, year = days[int(r() * n_days)]
        state = states[int(r() * n_states)]
        city, area = state.cities[int(r() * len(state.cities))]
        lo, hi = state.zip_prefixes
        digits = 10 - len(area)
        local = str(2 * 10 ** (digits - 1) + int(r() * 8 * 10 ** (digits - 1)))
        street = f"{streets[int(r() * n_streets)]} {1 + int(r() * 1999)}"
        if r() < 0.15:
            street += f" Int. {1 + int(r() * 40)}"

        g_initial, g_consonant = letters_of(given)
        name4 = s1.letters[:2] + s2.letters[0] + g_initial
        if name4 in CURP_BLACKLIST:
            name4 = name4[0] + "X" + name4[2:]
        female_curp = sex == "female" or (sex == "other" and r() < 0.5)
        # RENAPO's homoclave is a digit for the 1900s and a letter from 2000 on: stdnum reads the century there.
        homoclave = str(int(r() * 10)) if year < 2000 else chr(65 + int(r() * 26))
        head = (
            f"{name4}{yymmdd}{'M' if female_curp else 'H'}{state.curp_code}"
            f"{s1.letters[2]}{s2.letters[2]}{g_consonant}{homoclave}"
        )
        y = r()
        suffix = "" if y < 0.4 else birth[:4] if y < 0.6 else str(int(y * 1000) % 100)
        append(
            Person(
                given_names=given,
                surname1=s1.text,
                surname2=s2.text,
                sex=sex,
                birth_date=birth,
                curp=head + check_digit(head),
                email=f"{g.slug}.{s1.slug}{suffix}@{domains[int(r() * n_domains)]}",
                phone_area=area,
                phone_local=local,
                street=street,
                city=city,
                state=state.name,
                zip_code=f"{lo + int(r() * (hi - lo + 1)):02d}{int(r() * 1000):03d}",
            )
        )
    return out


@functools.cache
def _days(first: dt.date, last: dt.date) -> tuple[tuple[str, str, int], ...]:
    """(ISO date, CURP YYMMDD, year) for every day in the range."""
    out = []
    for ordinal in range(first.toordinal(), last.toordinal() + 1):
        iso = dt.date.fromordinal(ordinal).isoformat()
        out.append((iso, iso[2:4] + iso[5:7] + iso[8:10], int(iso[:4])))
    return tuple(out)


@functools.cache
def _pools() -> _Pools:
    fake = Faker("es_MX")
    fake.seed_instance(0)  # the pools never change; the dataset seed only changes how they combine

    def names(draw: Callable[[], str], k: int) -> list[str]:
        return sorted({" ".join(draw().split()) for _ in range(k)})

    surnames = [_name(s) for s in names(fake.last_name, 4000)]
    # Faker has a dozen "de la ..." surnames among 600; real registries have more, and they are what breaks
    # naive name splitting, so they get drawn more often than their share.
    particles = [s for s in surnames if " " in s.text]
    # Most people write from a free provider; a few from a company domain.
    domains = names(fake.free_email_domain, 200) * 8 + names(fake.domain_name, 10)
    return _Pools(
        male=tuple(_name(g) for g in names(fake.first_name_male, 2000)),
        female=tuple(_name(g) for g in names(fake.first_name_female, 2000)),
        surnames=tuple(surnames),
        particle_surnames=tuple(particles),
        streets=tuple(names(fake.street_name, 1500)),
        domains=tuple(domains),
    )


def _name(text: str) -> _Name:
    words = _ascii_upper(text).split()
    return _Name(text=text, slug="".join(words).lower(), letters=_letters(_curp_word(words, given=False)))


@functools.lru_cache(maxsize=65536)
def given_letters(given: str) -> tuple[str, str]:
    """(initial, first inner consonant) of the given name a CURP is built from."""
    letters = _letters(_curp_word(_ascii_upper(given).split(), given=True))
    return letters[0], letters[2]


def _curp_word(words: list[str], given: bool) -> str:
    words = [w for w in words if w not in CURP_PARTICLES] or words or ["X"]
    # "José Luis" and "María Elena" are filed under their second name: José and María are too common.
    if given and len(words) > 1 and words[0] in CURP_COMMON_FIRST:
        return words[1]
    return words[0]


def _letters(word: str) -> str:
    inner = word[1:]
    vowel = next((c for c in inner if c in "AEIOU"), "X")
    consonant = next((c for c in inner if c not in "AEIOU"), "X")
    return word[0] + vowel + consonant


_NOT_LETTER = re.compile(r"[^A-Z ]")


def _ascii_upper(text: str) -> str:
    # CURP writes Ñ as X; every other accent is dropped.
    text = text.upper().replace("Ñ", "X")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_LETTER.sub("", text)
