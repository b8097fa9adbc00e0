"""What counts as personal or secret, in keys and in free text: one set of rules for payloads, logs and errors.

Keys are compared by their words, whatever their spelling: ``SSN``, ``"ssn "``, fullwidth ``ｓｓｎ``,
``patient_ssn``, ``ssnNumber`` and ``social_security_number`` all name an SSN. Text is masked by shape: an SSN
written in any of its common forms, an e-mail address, a phone number, a date.

    >>> key_words("patientSSN "), is_ssn_key("ｓｓｎ"), is_ssn_key("class_name")
    (('patient', 'ssn'), True, False)
    >>> mask_ssns("ssn 518 03 6125, or 518036125")
    'ssn [redacted], or [redacted]'
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

REDACTED = "[redacted]"

# Keys whose value is a secret in any source: credentials, and the SSN in all its spellings.
_SECRET_WORDS = frozenset({"token", "password", "passwd", "secret", "authorization", "apikey", "credential"})
_SECRET_PHRASES = (("api", "key"), ("social", "security"), ("access", "token"), ("private", "key"))

# An SSN: three, two and four digits, each gap one separator (a space, a dot, a slash or any dash, fullwidth
# and small forms included), or nine digits in a row; not inside a longer run of digits. ``\d`` takes any
# script's digits (fullwidth ones too).
_SEP = r"[\s\-\u2010-\u2015\u2212\ufe58\ufe63\uff0d\uff0e\uff0f./]"
# Written digit first (the lookbehind after it): the regex engine then scans for a digit instead of trying
# every position, twice as fast on a record's text.
SSN_PATTERN = re.compile(rf"\d(?<!\d\d)(?:\d{{2}}{_SEP}\d{{2}}{_SEP}\d{{4}}|\d{{8}})(?!\d)")
# Only from the start of a run of address characters, possessively: linear on long hostile text.
_ADDRESS_CHAR = r"[^\s@<>()\[\]{},;:\"']"
_EMAIL = re.compile(rf"(?<!{_ADDRESS_CHAR}){_ADDRESS_CHAR}++@{_ADDRESS_CHAR}++")
# A phone number as people write one: with its country code (+52 55 1234 5678) or in groups (555-867-5309,
# (55) 1234-5678). A bare run of digits is not taken for one: byte counts and ids look the same.
_PHONE = re.compile(r"(?<![\w+])(?:\+\d[\d\s\-.()]{6,18}\d|\(?\d{2,4}\)?[\s\-.]\d{3,4}[\s\-.]\d{4})(?!\w)")
_DATE = re.compile(r"(?<!\d)(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})(?!\d)")


@functools.lru_cache(maxsize=4096)
def key_words(key: str) -> tuple[str, ...]:
    """A key's words: Unicode width folded (NFKC), case folded, split at non-letters, at camelCase humps and where
    letters meet digits (``token123456789`` names a token).

    >>> key_words("apiKey2"), key_words("password000000001")
    (('api', 'key', '2'), ('password', '000000001'))
    """
    folded = unicodedata.normalize("NFKC", key)
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", folded)
    return tuple(word for word in _WORD_BREAK.split(spaced.casefold()) if word)


_WORD_BREAK = re.compile(r"[^0-9a-z]+|(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])")


def is_ssn_key(key: str) -> bool:
    """``ssn``, ``patient_ssn``, ``SSNumber``, ``ssn2``, ``patientssn``, ``SOCIALSECURITYNUMBER``, ...

    >>> [is_ssn_key(k) for k in ("SSNumber", "ssn2", "patientssn", "SOCIALSECURITYNUMBER", "class_name")]
    [True, True, True, True, False]
    """
    words = key_words(key)
    if any(word.startswith("ssn") or word.endswith("ssn") for word in words):
        return True
    return "socialsec" in "".join(words)


# Bounded: a source may send a new key with every record. A stream's records repeat a few dozen keys, and a record
# that is not plain (pipeline.sync.redaction) asks for each of its keys: 40 of its 73 us.
@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """A key whose value must never be stored or logged: a credential or an SSN, however the source spells it."""
    words = key_words(key)
    if is_ssn_key(key) or any(word in _SECRET_WORDS for word in words):
        return True
    return any(_has_phrase(words, phrase) for phrase in _SECRET_PHRASES) or "".join(words) in _SECRET_WORDS


def names_ssn(value: object) -> bool:
    """A label that says "this is an SSN": ``{"type": "SSN", "value": ...}``, a FHIR system ending in ``us-ssn``."""
    if not isinstance(value, str) or len(value) > 200:
        return False
    # Cheaply first (this runs on every name a record holds): no word "ssn" or "social" can be in it otherwise.
    folded = (value if value.isascii() else unicodedata.normalize("NFKC", value)).casefold()
    if "ssn" not in folded and "social" not in folded:
        return False
    words = key_words(value)  # stricter than for keys: a name such as "Hassn" labels nothing
    return "ssn" in words or "socialsec" in "".join(words)


def _has_phrase(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


def mask_ssns(text: str) -> str:
    """``text`` with every SSN masked: ``\\d`` takes fullwidth digits too, and the separators their dashes.

    >>> mask_ssns("ssn ５１８－０３－６１２５, or 518-03 6125")
    'ssn [redacted], or [redacted]'
    """
    return SSN_PATTERN.sub(REDACTED, text) if SSN_PATTERN.search(text) else text


def has_ssn(text: str) -> bool:
    return SSN_PATTERN.search(text) is not None


def mask_ssns_and_emails(text: str) -> str:
    """The masks that cannot hit a count, a timestamp or an id: for text the program wrote itself."""
    return _EMAIL.sub(REDACTED, mask_ssns(text))


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets, SSNs, e-mail addresses, phone numbers and dates masked.

    For text that may have come from a source (an error message, a library's log line): whatever it holds,
    none of these shapes survives.

    >>> mask_text("Token tok-123 for zq@example.org, born 1987-06-05, call +1 (555) 867-5309", ["tok-123"])
    'Token [redacted] for [redacted], born [redacted], call [redacted]'
    """
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    text = mask_ssns(text)
    text = _EMAIL.sub(REDACTED, text)
    text = _DATE.sub(REDACTED, text)
    return _PHONE.sub(REDACTED, text)
