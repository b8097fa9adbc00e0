"""Logs never carry tokens, SSNs, names, emails or birth dates: the redaction processor, through structlog."""

from __future__ import annotations

import json

import structlog
from structlog.testing import capture_logs

from pipeline.app import logs
from tests.support import engine_for


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
    for secret in (
        "Homero",
        "hola@prescrypto.com",
        "1990-08-10",
        "tok-4f9a-secret",
        "123-45-6789",
        "123456789",
        "Henrick",
    ):
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


def test_a_real_sync_logs_no_personal_data_even_before_redaction(sandbox, sqlite_url):
    """Events are captured raw (no redaction): the code itself must never put record contents in a log."""
    from pipeline.sync.runner import SWEEP
    from tests.support import make_config, prescrypto_source, run, source_patients

    sandbox.post(
        "/_sandbox/prescrypto/patients",
        {
            "name": "Quarantina Bad Date",
            "date_of_birth": "1990-13-45",
            "uid": "bad-1",
            "email": "quarantina@example.mx",
        },
    )
    sandbox.faults([{"path": "/prescrypto/api/v2/patient/", "status": 503, "times": 1}])
    config = make_config(
        sqlite_url, {"rx": prescrypto_source(sandbox), "bad": prescrypto_source(sandbox, token="a-wrong-token-1234")}
    )
    with capture_logs() as captured:
        run(config, engine_for(config), SWEEP)
    text = json.dumps(captured, default=str)
    assert any(event["event"] == "retrying" for event in captured)  # the capture saw the run
    people = source_patients(sandbox)
    secrets = {"a-wrong-token-1234", "sandbox-prescrypto"}
    for person in people:
        secrets |= {person.get(field) for field in ("name", "email", "date_of_birth", "curp", "phone")}
    for secret in sorted(s for s in secrets if s):
        assert secret not in text


def test_a_sync_of_every_kind_logs_no_ssn_name_or_token(sandbox, sqlite_url):
    """The other kinds too, raw: Particle's SSNs, the profiles' doctors, failed details and quarantined records."""
    from pipeline.sync.runner import INCREMENTAL
    from tests.support import every_source, make_config, particle_truth, profiles_truth, run

    sandbox.post("/_sandbox/particle/patients", {"patient_id": "pt-bad-9", "given_name": "Quentin", "ssn": "98-7"})
    sandbox.faults(
        [
            {"path": "/particle/api/v1/patients/", "status": 500, "times": 2},
            {"path": "/gauges/v1/patients/", "status": 429, "retry_after": 0, "times": 1},
        ]
    )
    config = make_config(sqlite_url, every_source(sandbox))
    with capture_logs() as captured:
        run(config, engine_for(config), INCREMENTAL)
    text = json.dumps(captured, default=str)
    assert sum(event["event"] == "retrying" for event in captured) >= 3
    secrets = {"sandbox-profiles", "sandbox-gauges", "sandbox-particle", "Quentin", "98-7"}
    for person in particle_truth(sandbox).values():
        secrets |= {person.get(f) for f in ("given_name", "family_name", "ssn", "email", "telephone", "date_of_birth")}
        if person.get("ssn"):
            secrets.add(person["ssn"].replace("-", ""))
    for person in profiles_truth(sandbox):
        secrets |= {person.get(f) for f in ("patient_first_name", "patient_last_name", "patient_email_address")}
        secrets |= {d["doctor_first_name"] for d in person["patient_doctor"]}
    for secret in sorted(s for s in secrets if s and len(s) > 3):
        assert secret not in text


def test_standard_library_logs_are_redacted_and_rendered_as_json(capsys):
    import logging

    logs.register_secrets(["stdlib-secret-token-99"])
    logs.configure("INFO", json=True)
    try:
        logging.getLogger("apscheduler.executors").warning("job failed: Token stdlib-secret-token-99 refused")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers = []
    event = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert event["event"] == "job failed: Token [redacted] refused"
    assert (event["level"], event["logger"]) == ("warning", "apscheduler.executors")
