"""What a stored payload may keep: no secret, no full SSN, nothing a database cannot hold, nothing unbounded.

Applied to every record of every source kind before it is hashed and stored (``source_record``, ``quarantine``):

- a value under a secret key (tokens, passwords, the SSN under any spelling: ``social_security_number``,
  ``"ssn "``, fullwidth ``ｓｓｎ``, see ``canonical.privacy``) is replaced; so is the ``value`` of an entry labelled
  as an SSN (``{"type": "SSN", "value": ...}``);
- an SSN-shaped string anywhere, keys and free text included, is masked;
- NUL characters and unpaired surrogates become U+FFFD, NaN and infinite numbers their text (PostgreSQL's
  JSONB refuses them, and one such record would fail its whole page);
- objects and lists nested deeper than ``MAX_DEPTH`` are cut there, and the record is reported too deep (it is
  quarantined: nothing that deep is a patient record).

A flat record with none of these is returned as it is, uncopied: that is nearly every record.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from canonical.privacy import REDACTED, has_ssn, is_secret_key, key_words, mask_ssns, names_ssn

# The rules' version, in every stored digest (pipeline.sync.prepare.payload_hash). A record whose digest as
# fetched is its stored digest passes for unchanged without being redacted again: right only while the rules are
# those it was stored by. Bump it with any change to what redaction stores (here or in canonical.privacy): every
# stored digest then differs, so the next sweep prepares and stores every record again, under the new rules.
# tests/test_store.py fingerprints the rules on a corpus drawn from their own tables, and fails until it is bumped.
# 1: keys split where letters meet digits ("token123456789" is a token), digests tagged as fetched or redacted.
RULES_VERSION = 1
MAX_DEPTH = 32
TRUNCATED = "[truncated: nested too deep]"
# NUL and unpaired surrogates: valid in a Python str (json.loads accepts "\u0000" and "\ud800"),
# refused by PostgreSQL and by UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# What this program itself derives from an SSN (mappings.particle.scrub); kept only in exactly that shape.
_DERIVED = {"ssn_last4": re.compile(r"[0-9]{4}"), "ssn_hmac": re.compile(r"[0-9a-f]{64}")}
# The keys that label an entry such as {"type": "SSN", "value": "..."}, compared by their words ("Type",
# "idType"); every other key of an entry labelled as an SSN holds a part of it ("value", "area", "serial").
_LABELS = frozenset({"type", "system", "kind", "code", "name", "label", "use", "idtype", "identifiertype"})


@dataclass(frozen=True)
class Redacted:
    payload: Any
    too_deep: bool  # something was cut at MAX_DEPTH


def storable_text(value: str) -> str:
    return _UNSTORABLE.sub("\ufffd", value) if _UNSTORABLE.search(value) else value


def is_storable_text(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


def holds_a_mark(payload: Any, ignored: frozenset[str] = frozenset()) -> bool:
    """Whether a stored payload shows where redaction changed it: a masked text (in a value or a key), or a cut
    at ``MAX_DEPTH``. Values under ``ignored`` keys (at the top level) are not looked at."""
    if isinstance(payload, dict):
        return any(holds_a_mark(str(k)) or holds_a_mark(v) for k, v in payload.items() if k not in ignored)
    if isinstance(payload, list):
        return any(holds_a_mark(v) for v in payload)
    return isinstance(payload, str) and (payload == TRUNCATED or REDACTED in payload)


DERIVED_KEYS = frozenset(_DERIVED)  # what a kind's scrub derives (Particle's SSN evidence): ours, not the source's


def redact(payload: Any) -> Redacted:
    """The payload as it may be stored (see the module's rules)."""
    walk = _Walk()
    return Redacted(walk.value(payload, 0), walk.too_deep)


class _Walk:
    def __init__(self) -> None:
        self.too_deep = False

    def value(self, value: Any, depth: int) -> Any:
        if isinstance(value, dict):
            return self._object(value, depth)
        if isinstance(value, list):
            if depth >= MAX_DEPTH:
                self.too_deep = True
                return TRUNCATED
            return [self.value(item, depth + 1) for item in value]
        if isinstance(value, str):
            return _text(value)
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value

    def _object(self, record: dict[str, Any], depth: int) -> Any:
        if depth >= MAX_DEPTH:
            self.too_deep = True
            return TRUNCATED
        if _is_plain(record):
            return record
        labels = {k for k, v in record.items() if _is_label(k) and names_ssn(v)}
        kept: dict[str, Any] = {}
        for key, item in record.items():
            secret = _is_secret(key, item) or (bool(labels) and key not in labels)
            kept[_text(str(key))] = REDACTED if secret and item not in (None, "") else self.value(item, depth + 1)
        return kept


def _is_label(key: str) -> bool:
    return "".join(key_words(key)) in _LABELS


def _is_secret(key: str, value: Any) -> bool:
    derived = _DERIVED.get(key)
    if derived is not None and isinstance(value, str) and derived.fullmatch(value):
        return False
    return is_secret_key(key)


def _text(value: str) -> str:
    value = storable_text(value)
    return mask_ssns(value) if len(value) >= 9 else value


# Keys already found to be neither secret nor unstorable, each with whether it labels an entry: a stream's
# records repeat the same few keys, so most checks are one lookup. Bounded, since a source could send a new
# key with every record.
_PLAIN_KEYS: dict[str, bool] = {}
_PLAIN_KEYS_MAX = 10_000
_PLAIN_KEY_LENGTH_MAX = 64


def _plain_key(key: Any) -> bool | None:
    """None for a key that is not plain; else whether it is a label (``type``, ``system``, ...)."""
    found = _PLAIN_KEYS.get(key)
    if found is not None:
        return found
    if (
        not isinstance(key, str)
        or len(key) > _PLAIN_KEY_LENGTH_MAX
        or key in _DERIVED
        or is_secret_key(key)
        or _text(key) != key
    ):
        return None
    label = _is_label(key)
    if len(_PLAIN_KEYS) < _PLAIN_KEYS_MAX:
        _PLAIN_KEYS[key] = label
    return label


def _is_plain(record: dict[str, Any]) -> bool:
    texts: list[str] = []
    for key, value in record.items():
        label = _plain_key(key)
        if label is None:
            return False
        kind = type(value)
        if kind is str:
            if label and names_ssn(value):
                return False
            texts.append(value)
        elif kind is float:
            if not math.isfinite(value):
                return False
        elif kind is not int and kind is not bool and value is not None:
            return False  # nested lists and objects take the full walk
    # One search over all the record's text instead of one per field; "#" is neither a digit nor an SSN
    # separator, so no match can span two fields.
    joined = "#".join(texts)
    if ("\x00" in joined or not joined.isascii()) and not is_storable_text(joined):
        return False
    return not (len(joined) >= 9 and has_ssn(joined))
