"""Names as comparable tokens: folded to ASCII capitals, particles dropped, nicknames resolved.

A source's split of a name into given and family parts is not trusted (Prescrypto's ``name`` is split by a
Spanish two-surname rule that is wrong for many names): a name is compared as its tokens, given names first.

    >>> name_tokens("María José", "de la Cruz Pérez", None)
    ('MARIA', 'JOSE', 'CRUZ', 'PEREZ')
    >>> name_tokens(None, None, "Pepe Leiva-Palacios")
    ('JOSE', 'LEIVA', 'PALACIOS')
    >>> phonetic("Hernández") == phonetic("Ernandes"), phonetic("Jiménez") == phonetic("Ximenez")
    (True, True)
"""

from __future__ import annotations

import functools
import re
import unicodedata

import jellyfish

PARTICLES = frozenset({"DE", "LA", "DEL", "LOS", "LAS", "Y", "E", "VAN", "VON", "DA", "DI", "DOS", "MC"})

# Spanish given-name nicknames, each to the name it stands for: "Pepe" and "José" are one given name.
NICKNAMES = {
    "PEPE": "JOSE",
    "CHEPE": "JOSE",
    "PACO": "FRANCISCO",
    "PANCHO": "FRANCISCO",
    "KIKO": "FRANCISCO",
    "LUPE": "GUADALUPE",
    "LUPITA": "GUADALUPE",
    "CHUCHO": "JESUS",
    "CHUY": "JESUS",
    "MEMO": "GUILLERMO",
    "LALO": "EDUARDO",
    "NACHO": "IGNACIO",
    "TONO": "ANTONIO",
    "TONY": "ANTONIO",
    "BETO": "ALBERTO",
    "BETY": "BEATRIZ",
    "BETTY": "BEATRIZ",
    "CHELA": "GRACIELA",
    "CONCHA": "CONCEPCION",
    "CONCHITA": "CONCEPCION",
    "LOLA": "DOLORES",
    "CHAYO": "ROSARIO",
    "CHARO": "ROSARIO",
    "QUIQUE": "ENRIQUE",
    "RICKY": "RICARDO",
    "RICHI": "RICARDO",
    "POLO": "LEOPOLDO",
    "NANDO": "FERNANDO",
    "FER": "FERNANDO",
    "ALEX": "ALEJANDRO",
    "ALE": "ALEJANDRA",
    "GABY": "GABRIELA",
    "DANY": "DANIEL",
    "JAVI": "JAVIER",
    "MANOLO": "MANUEL",
    "MEMA": "GUILLERMINA",
    "TERE": "TERESA",
    "PATY": "PATRICIA",
    "PATI": "PATRICIA",
    "LETY": "LETICIA",
    "ROCI": "ROCIO",
    "SUSY": "SUSANA",
    "ELI": "ELIZABETH",
    "ISA": "ISABEL",
    "MARU": "MARIA",
    "NENA": "ELENA",
}

_NOT_LETTER = re.compile(r"[^A-Z]+")
_NOT_ALNUM = re.compile(r"[^A-Z0-9]+")


# Small: a patient's whole name is folded once, so a larger cache holds a copy of every name it has met (tens of
# MiB by a few hundred thousand patients) for the tokens and cities that do repeat.
@functools.lru_cache(maxsize=4096)
def fold(text: str, digits: bool = False) -> str:
    """Capital ASCII letters (and ``digits``) between single spaces: accents dropped, Ñ kept as N."""
    ascii_text = unicodedata.normalize("NFKD", text.upper()).encode("ascii", "ignore").decode()
    return (_NOT_ALNUM if digits else _NOT_LETTER).sub(" ", ascii_text).strip()


def name_tokens(given: str | None, family: str | None, full: str | None) -> tuple[str, ...]:
    """The name's tokens, given names first; from ``full`` only when neither part is there. A single letter
    stays, as an initial ("J. Doe")."""
    text = " ".join(part for part in (given, family) if part) or full or ""
    tokens = [t for t in fold(text).split() if t not in PARTICLES]
    return tuple(NICKNAMES.get(t, t) for t in tokens)


def given_count(given: str | None, family: str | None, full: str | None) -> int:
    """How many of ``name_tokens`` are given names, when the source told them apart (0 when it did not)."""
    if not given or not family:
        return 0
    return len(name_tokens(given, None, None))


_SPANISH = ((re.compile(r"^H"), ""), (re.compile("Z"), "S"), (re.compile("X"), "J"), (re.compile("V"), "B"))


@functools.lru_cache(maxsize=65536)
def phonetic(token: str) -> str:
    """A code that Spanish spellings of one name share: silent H, Z/S, X/J and V/B folded before metaphone."""
    word = fold(token).replace(" ", "")
    for pattern, replacement in _SPANISH:
        word = pattern.sub(replacement, word)
    return jellyfish.metaphone(word) if word else ""
