"""Structured logs (structlog): JSON when not on a terminal, and never a token, SSN or personal datum.

Events never carry record contents by design; ``redact`` is the safety net. It blanks values under personal or
secret keys (names, emails, birth dates, phones, addresses, SSNs, tokens, however a source spells them) at any
depth, and masks the configured secrets, SSN-shaped strings and e-mail addresses wherever they appear; text
that may have come from outside (a library's message, an exception, an error) is masked for phone numbers and
dates too.

Lines are written to whatever ``sys.stderr`` is at that moment, so that while a progress display owns the
terminal (it swaps ``sys.stderr`` for a proxy) they are printed above it instead of through it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from canonical.privacy import REDACTED, is_secret_key, key_words, mask_ssns_and_emails, mask_text
from pipeline.sync.messages import SECRETS

# Words that make a key personal in any source's records: "patient_first_name", "dateOfBirth", "zip_code".
_PERSONAL_WORDS = frozenset(
    {"name", "email", "phone", "telephone", "mobile", "birth", "dob", "curp", "address", "street", "postal", "zip"}
    | {"payload", "record", "body"}
)
# Keys whose text may come from outside the program: masked for every shape, dates and phones included.
_UNTRUSTED = frozenset({"event", "exception", "error", "reason"})
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("auto", "json", "console")


def register_secrets(values: Iterable[str]) -> None:
    """Secrets (source tokens, keys) to mask wherever they would appear in a log line or a message."""
    SECRETS.add(values)


def is_sensitive_key(key: str) -> bool:
    return is_secret_key(key) or any(word in _PERSONAL_WORDS for word in key_words(key))


def _clean(value: Any, untrusted: bool) -> Any:
    if isinstance(value, str):
        if untrusted:
            return mask_text(value, SECRETS.values)
        for secret in SECRETS.values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return mask_ssns_and_emails(value)
    if isinstance(value, dict):
        return {k: REDACTED if is_sensitive_key(str(k)) else _clean(v, untrusted) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, untrusted) for v in value]
    return value


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key == "timestamp":
            continue
        event[key] = REDACTED if is_sensitive_key(key) else _clean(value, key in _UNTRUSTED)
    return event


class _CurrentStderr:
    """``sys.stderr`` as it is at each write: a progress display may have replaced it with its proxy."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "INFO", json: bool | None = None) -> None:
    """Set up structlog for the process; ``json`` defaults to "stderr is not a terminal".

    Standard-library logging (APScheduler, alembic, httpx) goes through the same redaction and renderer.
    """
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"unknown log level (use one of {', '.join(LEVELS)})")
    as_json = not sys.stderr.isatty() if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    handler = logging.StreamHandler(_CurrentStderr())
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
    root.setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    # httpx and httpcore log request URLs, which carry continuation tokens: never below WARNING.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,  # last before rendering, so it also sees formatted exceptions
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
