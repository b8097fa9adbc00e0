"""Every message that leaves a run is built here: a stream's error on stderr, in ``sync_run.error``, in ``status``
and ``status --json``, and in the logs.

A message is made of parts the program chose: the source and stream, an HTTP status, what
``connectors.error_bodies`` lets through of an error body, a field name, a database driver's first line with its
quoted parts removed, an exception's type and where it was raised. Never a source's body, a record's content or
an exception's own text (a KeyError names the key it missed; a driver error quotes the value it refused). Then,
whatever it holds, the masks of ``canonical.privacy`` run over it: configured secrets, SSNs in every form,
e-mail addresses, phone numbers and dates cannot survive.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

from canonical.errors import PatientSyncError, SourceError
from canonical.privacy import REDACTED, mask_ssns, mask_text

MAX_LENGTH = 500
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|\([^()]*\)=\([^()]*\)")
_PROJECT = Path(__file__).resolve().parents[2]


class _Secrets:
    """The configured tokens and keys, registered once the configuration is read (``pipeline.app.cli``)."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        self.values.update(v for v in values if v and len(v) >= 4)


SECRETS = _Secrets()


def public(text: str) -> str:
    """``text`` as it may leave the program: bounded, and masked for every secret and personal shape."""
    return mask_text(text[:MAX_LENGTH], SECRETS.values)


# A long run of hex digits is an id (a UUID's last group, a Particle id): nine decimal digits inside it are
# not an SSN. Anything else that holds one, in any form mask_ssns knows, is masked.
_HEX_ID = re.compile(r"[0-9A-Fa-f]{12,}")


def shown_key(key: str) -> str:
    """A record's key as a listing may show it (quarantine, a cursor's anchor): a configured secret or an SSN
    in it is masked, and nothing else, so that the record can be found by it.

    >>> [shown_key(k) for k in ("123-45-6789", "SSN123-45-6789", "ssn123456789", "pt-000865545db305dc")]
    ['[redacted]', 'SSN[redacted]', 'ssn[redacted]', 'pt-000865545db305dc']
    """
    key = key[:MAX_LENGTH]
    for secret in SECRETS.values:
        key = key.replace(secret, REDACTED)
    parts = re.split(f"({_HEX_ID.pattern})", key)  # odd positions: hex ids, kept as they are
    return "".join(part if i % 2 else mask_ssns(part) for i, part in enumerate(parts))


def run_error(source: str, stream: str, exc: BaseException) -> str:
    """The message a failed stream reports for ``exc``."""
    if _is_database_error(exc):
        text = f"{source}/{stream}: database: {database_reason(exc)}"
    elif isinstance(exc, SourceError) or (isinstance(exc, PatientSyncError) and str(exc).startswith(f"{source}/")):
        text = str(exc)  # built from its fields (canonical.errors): it already names the source and stream
    elif isinstance(exc, PatientSyncError):
        text = f"{source}/{stream}: {exc}"
    else:
        text = f"{source}/{stream}: internal error ({type(exc).__name__} at {raised_at(exc)})"
    return public(text)


def _is_database_error(exc: BaseException) -> bool:
    # Commands that read through the driver alone (status) never import SQLAlchemy: until it is loaded, nothing
    # can have raised one of its errors.
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.SQLAlchemyError)


def database_reason(exc: BaseException) -> str:
    """The driver's own first line (e.g. "database is locked"), without the statement, its parameters or any
    value it quotes; ``exc`` is SQLAlchemy's error or the driver's own.

    >>> from sqlalchemy.exc import OperationalError
    >>> database_reason(OperationalError("INSERT ...", {"name": "Ana"}, Exception('invalid input "Ana"\\nDETAIL: x')))
    'invalid input …'
    >>> import sqlite3
    >>> database_reason(sqlite3.OperationalError("no such table: sync_run"))
    'no such table: sync_run'
    """
    orig = getattr(exc, "orig", None) if _is_database_error(exc) else exc
    lines = str(orig).splitlines() if orig is not None else []
    first = _QUOTED.sub("…", lines[0] if lines else type(exc).__name__)[:200]
    if getattr(exc, "connection_invalidated", False):
        return f"connection lost ({first})"
    return first


def raised_at(exc: BaseException) -> str:
    """Where ``exc`` was raised in this project's code ("pipeline/sync/runner.py:123"), else its innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if _is_ours(f.filename)] or frames
    if not ours:
        return "unknown"
    frame = ours[-1]
    path = Path(frame.filename).resolve()
    shown = path.relative_to(_PROJECT) if path.is_relative_to(_PROJECT) else path.name
    return f"{shown}:{frame.lineno}"


def _is_ours(filename: str) -> bool:
    path = Path(filename).resolve()
    return path.is_relative_to(_PROJECT) and "site-packages" not in path.parts


def frames(exc: BaseException) -> list[str]:
    """The traceback as "file:line in function" lines, without any exception's text: for a log to debug by."""
    return [f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__)]
