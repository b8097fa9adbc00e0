"""Structured logs (structlog): JSON when not on a terminal, and never a token, SSN or personal datum.

Events never carry record contents by design; ``redact`` is the safety net. It blanks values under sensitive
keys (names, emails, birth dates, phones, SSNs, tokens) at any depth, masks anything shaped like an SSN, and
masks the configured secrets wherever they appear in a string.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from pipeline.redaction import SECRET_KEYS

# Secrets, and every field that holds personal data in any source's records.
SENSITIVE_KEYS = SECRET_KEYS | frozenset(
    {
        "name",
        "full_name",
        "given_name",
        "family_name",
        "first_name",
        "last_name",
        "patient_first_name",
        "patient_last_name",
        "doctor_first_name",
        "email",
        "patient_email_address",
        "phone",
        "telephone",
        "patient_mobile_number",
        "birth_date",
        "date_of_birth",
        "patient_date_of_birth",
        "curp",
        "address",
        "address_lines",
        "payload",
        "record",
    }
)
REDACTED = "[redacted]"
_SSN = re.compile(r"\b\d{3}-?\d{2}-?\d{4}\b")
_secrets: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Secrets (source tokens) to mask wherever they would appear in a log line."""
    _secrets.update(v for v in values if v and len(v) >= 4)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return _SSN.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in SENSITIVE_KEYS else _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        event[key] = REDACTED if key.lower() in SENSITIVE_KEYS else _clean(value)
    return event


def configure(level: str = "INFO", json: bool | None = None) -> None:
    """Set up structlog for the process; ``json`` defaults to "stderr is not a terminal".

    Standard-library logging (APScheduler, alembic, httpx) goes through the same redaction and renderer.
    """
    as_json = not sys.stderr.isatty() if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    # Libraries' INFO lines (alembic's context, httpx's every request) are noise; their warnings are not.
    root.setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,  # last before rendering, so it also sees formatted exceptions
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
