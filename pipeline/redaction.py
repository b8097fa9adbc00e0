"""What a stored payload may not keep: secrets, and characters or numbers a database cannot hold.

``SECRET_KEYS`` is shared with the log redaction (pipeline.logs), which blanks personal data as well.
"""

from __future__ import annotations

import math
import re
from typing import Any

SECRET_KEYS = frozenset({"token", "password", "ssn", "api_key", "secret", "authorization"})
REDACTED = "[redacted]"
# NUL and unpaired surrogates: valid in a Python str (json.loads accepts "\u0000" and "\ud800"),
# refused by PostgreSQL and by UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> str:
    return _UNSTORABLE.sub("\ufffd", value) if _UNSTORABLE.search(value) else value


def is_storable_text(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


def redact(payload: Any) -> Any:
    """The payload as stored in ``source_record``: secrets (tokens, passwords, SSNs) replaced.

    What PostgreSQL's JSONB cannot hold, and so would fail a whole page, is made storable: NUL characters
    and unpaired surrogates become U+FFFD, and NaN or infinite numbers their text. A flat record with none
    of these is returned as it is, uncopied: that is nearly every record, and this runs for every record.
    """
    if isinstance(payload, dict):
        if _is_plain(payload):
            return payload
        return {redact(k): (REDACTED if str(k).lower() in SECRET_KEYS and v else redact(v)) for k, v in payload.items()}
    if isinstance(payload, list):
        return [redact(item) for item in payload]
    if isinstance(payload, str):
        return storable_text(payload)
    if isinstance(payload, float) and not math.isfinite(payload):
        return str(payload)
    return payload


# Keys already found to be neither secret nor unstorable: a stream's records repeat the same few keys, so
# most checks are one set lookup. Bounded, since a source could send a new key with every record.
_PLAIN_KEYS: set[str] = set()
_PLAIN_KEYS_MAX = 10_000
_PLAIN_KEY_LENGTH_MAX = 64


def _is_plain_key(key: Any) -> bool:
    if key in _PLAIN_KEYS:
        return True
    if not isinstance(key, str) or key.lower() in SECRET_KEYS or not is_storable_text(key):
        return False
    if len(_PLAIN_KEYS) < _PLAIN_KEYS_MAX and len(key) <= _PLAIN_KEY_LENGTH_MAX:
        _PLAIN_KEYS.add(key)
    return True


def _is_plain(record: dict[str, Any]) -> bool:
    for key, value in record.items():
        if not _is_plain_key(key):
            return False
        kind = type(value)
        if kind is str:
            if ("\x00" in value or not value.isascii()) and not is_storable_text(value):
                return False
        elif kind is float:
            if not math.isfinite(value):
                return False
        elif kind is not int and kind is not bool and value is not None:
            return False  # nested lists and objects take the full walk
    return True
