"""Logs never carry tokens, SSNs, names, emails or birth dates: the redaction processor, through structlog."""

from __future__ import annotations

import json

import structlog
from structlog.testing import capture_logs

from pipeline import logs


def test_sensitive_keys_secrets_and_ssn_shapes_are_redacted():
    logs.register_secrets(["tok-4f9a-secret"])
    log = structlog.get_logger()
    with capture_logs(processors=[logs.redact]) as captured:
        log.info(
            "mapped",
            source="rx",
            full_name="Homero Peréz",
            email="hola@prescrypto.com",
            date_of_birth="1990-08-10",
            headers={"Authorization": "Token tok-4f9a-secret", "Accept": "application/json"},
            error="HTTP 401 for Token tok-4f9a-secret",
            note="ssn 123-45-6789 seen",
            records=[{"ssn": "123456789", "given_name": "Henrick"}],
        )
    event = captured[0]
    text = json.dumps(event)
    for secret in ("Homero", "hola@prescrypto.com", "1990-08-10", "tok-4f9a-secret", "123-45-6789", "123456789",
                   "Henrick"):
        assert secret not in text
    assert event["source"] == "rx"
    assert event["headers"]["Accept"] == "application/json"
    assert event["error"] == "HTTP 401 for Token [redacted]"


def test_configured_pipeline_renders_json_without_personal_data(capsys):
    logs.configure("INFO", json=True)
    try:
        structlog.get_logger().warning("retrying", source="rx", name="Matilde Montoya", wait_s=0.5)
    finally:
        structlog.reset_defaults()  # the configured logger writes to this test's captured stderr
    line = capsys.readouterr().err.strip().splitlines()[-1]
    event = json.loads(line)
    assert event["event"] == "retrying" and event["name"] == "[redacted]" and event["wait_s"] == 0.5
