"""Identity noise: the same people rendered by each API with the errors real registries make, and the people
who are hardest to tell apart from them.

With noise on (``/_sandbox/reset {"noise": true}``), ``hard_negatives`` adds people after the generated ones,
each derived from one of them: a twin (everything the same but the given name, and so the CURP), a household
member (the surnames, address and home phone, another given name and birth date) and a namesake (the same
names and birth date, somewhere else). ``noisy`` then gives each API its own copy of every person, with typos,
swapped name parts, nicknames, a moved address, a changed surname, a digit off in the birth date and a
missing e-mail. Both are deterministic for a seed: the identity benchmark rebuilds the truth from them.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence

from sandbox.mexico import CURP_BLACKLIST, STATES, curp_check_digit
from sandbox.people import Person, given_letters

HARD_NEGATIVE_SHARE = 0.06  # of the generated people, each kind
# What a source gets wrong about one person, each with its chance per record.
TYPO, SWAPPED, NICKNAME, MOVED, NEW_SURNAME, DATE_DIGIT, NO_EMAIL = 0.05, 0.03, 0.03, 0.05, 0.02, 0.02, 0.1
NICKNAMES = {"José": "Pepe", "Francisco": "Paco", "Guadalupe": "Lupe", "Jesús": "Chucho", "Guillermo": "Memo"}


def hard_negatives(people: Sequence[Person], seed: int) -> list[tuple[int, str, Person]]:
    """(index of the person it is derived from, kind, the new person) for each hard negative."""
    rng = random.Random(f"hard-negatives:{seed}")
    given_pool = sorted({p.given_names for p in people}) or ["Ana"]
    out: list[tuple[int, str, Person]] = []
    n = int(len(people) * HARD_NEGATIVE_SHARE)
    for kind in ("twin", "household", "namesake"):
        for i in rng.sample(range(len(people)), min(n, len(people))):
            p = people[i]
            other = next(g for g in (rng.choice(given_pool) for _ in range(50)) if g != p.given_names)
            if kind == "twin":
                twin = _with_curp(dataclasses.replace(p, given_names=other, email=_email(other, p, rng)), rng)
                out.append((i, kind, twin))
            elif kind == "household":
                year = int(p.birth_date[:4]) + rng.choice((-30, -25, 25, 28))
                born = f"{min(max(year, 1930), 2020)}{p.birth_date[4:8]}{rng.randint(1, 28):02d}"
                member = dataclasses.replace(p, given_names=other, birth_date=born, email=_email(other, p, rng))
                out.append((i, kind, _with_curp(member, rng)))
            else:
                state = rng.choice(STATES)
                city, area = state.cities[0]
                local = str(rng.randint(2 * 10 ** (9 - len(area)), 10 ** (10 - len(area)) - 1))
                namesake = dataclasses.replace(
                    p,
                    street=f"Calle {rng.randint(1, 99)} {rng.randint(1, 1999)}",
                    city=city,
                    state=state.name,
                    zip_code=f"{state.zip_prefixes[0]:02d}{rng.randint(0, 999):03d}",
                    phone_area=area,
                    phone_local=local,
                    email=_email(p.given_names, p, rng),
                    curp=p.curp[:11] + state.curp_code + p.curp[13:],
                )
                out.append((i, kind, _with_curp(namesake, rng)))
    return out


def _email(given: str, p: Person, rng: random.Random) -> str:
    return f"{given.split()[0].lower()}.{rng.randint(100, 999)}@{p.email.partition('@')[2]}"


def _with_curp(p: Person, rng: random.Random) -> Person:
    """``p`` with the CURP its given name, birth date and sex make (another homoclave: another registration)."""
    initial, consonant = given_letters(p.given_names)
    birth = p.birth_date
    sex = p.curp[10] if p.sex == "other" else ("M" if p.sex == "female" else "H")
    homoclave = str(rng.randint(0, 9)) if int(birth[:4]) < 2000 else chr(65 + rng.randint(0, 25))
    name4 = p.curp[:3] + initial
    if name4 in CURP_BLACKLIST:  # RENAPO's rule for a word it will not print: the second letter becomes X
        name4 = name4[0] + "X" + name4[2:]
    head = f"{name4}{birth[2:4]}{birth[5:7]}{birth[8:10]}{sex}{p.curp[11:15]}{consonant}{homoclave}"
    return dataclasses.replace(p, curp=head + curp_check_digit(head))


def noisy(people: Sequence[Person], api: str, seed: int) -> list[Person]:
    """Each person as the API ``api`` holds it: the same person, with that source's errors."""
    r = random.Random(f"noise:{api}:{seed}").random
    out = []
    for p in people:
        given, s1, s2, birth = p.given_names, p.surname1, p.surname2, p.birth_date
        if r() < NICKNAME and given in NICKNAMES:
            given = NICKNAMES[given]
        if r() < TYPO:
            given = _typo(given, r)
        if r() < TYPO:
            s1 = _typo(s1, r)
        if r() < NEW_SURNAME:
            s2 = "Gómez" if s2 != "Gómez" else "Ruiz"  # the maternal surname replaced (married, re-registered)
        if r() < SWAPPED:
            given, s1, s2 = s1, s2, given
        if r() < DATE_DIGIT:
            birth = _digit_off(birth, r)
        changed = dataclasses.replace(p, given_names=given, surname1=s1, surname2=s2, birth_date=birth)
        if r() < MOVED:
            changed = dataclasses.replace(changed, street=f"Avenida {int(r() * 90) + 1} {int(r() * 1999) + 1}")
        if r() < NO_EMAIL:
            changed = dataclasses.replace(changed, email="")
        out.append(changed)
    return out


def _typo(text: str, draw: Callable[[], float]) -> str:
    """One letter changed, dropped or doubled (not the first)."""
    if len(text) < 3:
        return text
    i = 1 + int(draw() * (len(text) - 1))
    kind = int(draw() * 3)
    if kind == 0:
        return text[:i] + ("e" if text[i] != "e" else "a") + text[i + 1 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    return text[:i] + text[i] + text[i:]


def _digit_off(iso: str, draw: Callable[[], float]) -> str:
    """The day one off (a typed digit): still a real date."""
    day = int(iso[8:10])
    day = day + 1 if day < 28 and draw() < 0.5 else max(day - 1, 1)
    return f"{iso[:8]}{day:02d}"
