"""A source's error body is untrusted text: what it says never reaches stderr, the logs (JSON or console),
``sync_run.error``, ``status``, ``status --json`` or the database file. Only the status, a known vendor message
and documented field names may."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog

from connectors.error_bodies import explain
from pipeline.app import logs
from pipeline.sync.messages import database_reason, run_error
from tests.support import config_yaml, every_source
from tests.test_cli_e2e import cli

TOKENS = ["sandbox-prescrypto", "sandbox-profiles", "sandbox-gauges", "sandbox-particle"]
SSNS = ["518-03-6125", "518 03 6125", "518036125", "518.03.6125", "518\u201303\u20136125", "５１８-０３-６１２５"]
PERSONAL = ["Zebulon", "Quixote", "zq@example.org", "1987-06-05", "06/05/1987", "867-5309", "8675309"]
TELLING = (
    f"Invalid Token {' '.join(TOKENS)} for Zebulon Quixote <zq@example.org>, born 1987-06-05 (06/05/1987), "
    f"SSN {' / '.join(SSNS)}, phone +1 (555) 867-5309 or 5558675309"
)
BODIES = {
    "/prescrypto/api/v2/patient/": (401, {"message": TELLING}),
    "/prescrypto/api/v2/medics/": (
        400,
        {"Zebulon Quixote": [TELLING], "email": [TELLING], "date_of_birth": ["This field is required."]},
    ),
    "/profiles/patients/patients/": (403, {"detail": {"name": TELLING, "ssn": SSNS}}),
    "/gauges/v1/patients": (422, {"errors": {"phone": [TELLING], TELLING: "can't be blank"}}),
    "/particle/api/v1/patients": (400, [TELLING, {"error": TELLING}]),
}


def _leaks(text: str) -> list[str]:
    return [s for s in [*TOKENS, *SSNS, *PERSONAL] if s in text]


def test_error_bodies_reach_no_output_log_status_or_database_file(sandbox, tmp_path):
    sandbox.faults([{"path": p, "status": s, "body": b, "times": None} for p, (s, b) in BODIES.items()])
    db = tmp_path / "patientsync.db"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config_yaml(f"sqlite:///{db}", every_source(sandbox)))

    outputs = []
    for log_format in ("json", "console"):
        proc = cli("--config", str(cfg), "--log-format", log_format, "sync")
        assert proc.returncode == 1, proc.stderr  # every stream failed, none crashed
        outputs += [proc.stdout, proc.stderr]
    table, as_json = cli("--config", str(cfg), "status"), cli("--config", str(cfg), "status", "--json")
    outputs += [table.stdout, table.stderr, as_json.stdout, as_json.stderr]
    everything = "\n".join(outputs)
    assert _leaks(everything) == []
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("patientsync.db*"))
    assert [s for s in [*TOKENS, *SSNS, *PERSONAL] if s.encode() in stored] == []

    # What may be said is said: the status, the known message, the documented field names.
    errors = {f"{r['source']}/{r['stream']}": r["last_run"]["error"] for r in json.loads(as_json.stdout)}
    assert errors["rx/patients"] == "rx/patients: HTTP 401: the source refused the credentials"
    assert errors["rx/medics"] == (
        "rx/medics: HTTP 400: email: invalid; date_of_birth: This field is required.; and 1 other field"
    )
    assert (
        errors["pf/patients"]
        == "pf/patients: HTTP 403: the source refused the credentials (name: invalid; ssn: invalid)"
    )
    assert errors["ga/patients"] == "ga/patients: HTTP 422: phone: invalid; and 1 other field"
    assert errors["pa/patients"] == "pa/patients: HTTP 400"
    assert "HTTP 401" in table.stdout + table.stderr


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"message": "Invalid Token"}, "Invalid Token"),
        ({"message": "invalid token."}, "invalid token."),
        (
            {"message": "You do not have sufficient permissions to assign this hospital: 1"},
            "You do not have sufficient permissions to assign this hospital",
        ),
        ({"message": TELLING}, ""),
        ({"errors": "Patient not found"}, "Patient not found"),
        (
            {"errors": {"first_name": ["can't be blank"], "zebulon": ["x"]}},
            "first_name: can't be blank; and 1 other field",
        ),
        ({"field_name": ["This field is required."]}, "field_name: This field is required."),
        (["name@domain.com already exists"], ""),
        ("Zebulon", ""),
        ({"detail": ["Invalid token."]}, "Invalid token."),
    ],
)
def test_what_an_error_body_may_say(body, said):
    assert explain(body) == said


def test_a_crash_or_a_database_error_is_reported_without_its_text():
    try:
        {"Zebulon Quixote": 1}["zq@example.org 518 03 6125"]
    except KeyError as exc:
        message = run_error("rx", "patients", exc)
    assert message.startswith("rx/patients: internal error (KeyError at tests/test_error_privacy.py:")
    assert _leaks(message) == []

    from sqlalchemy.exc import OperationalError

    lost = OperationalError("INSERT INTO patient ...", {"full_name": "Zebulon"}, Exception("server closed"))
    lost.connection_invalidated = True
    assert run_error("rx", "patients", lost) == "rx/patients: database: connection lost (server closed)"
    refused = OperationalError("INSERT ...", {}, Exception('invalid input syntax: "Zebulon Quixote"\nDETAIL: ...'))
    assert database_reason(refused) == "invalid input syntax: …"


def test_the_log_processor_masks_every_ssn_form_and_email(capsys):
    logs.configure("INFO", json=True)
    try:
        structlog.get_logger().warning("odd", note=" ".join(SSNS), who="zq@example.org", count=12)
    finally:
        structlog.reset_defaults()
    event = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert _leaks(json.dumps(event, ensure_ascii=False)) == [] and event["count"] == 12


def test_a_lost_database_connection_mid_page_is_one_line(sandbox, pg_url):
    """PostgreSQL ends the sync's connection in the middle of writing page 2: one line, no statement."""
    from sqlalchemy import create_engine, event, text

    from pipeline.sync.runner import SWEEP
    from tests.support import by_stream, count, engine_for, make_config, prescrypto_source, run

    config = make_config(pg_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    writes = []

    @event.listens_for(engine, "before_cursor_execute")
    def terminate_on_second_page(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO source_record"):
            writes.append(statement)
            if len(writes) == 2:
                with admin.connect() as other:
                    other.execute(
                        text("SELECT pg_terminate_backend(:pid)"), {"pid": cursor.connection.info.backend_pid}
                    )

    result = by_stream(run(config, engine, SWEEP))["rx/patients"]
    admin.dispose()
    assert result.status == "failed"
    assert result.error.startswith("rx/patients: database: connection lost ("), result.error
    assert "\n" not in result.error and "INSERT" not in result.error and len(result.error) < 300
    event.remove(engine, "before_cursor_execute", terminate_on_second_page)
    assert count(engine, "source_record") == 50  # page 1 stayed; page 2 was rolled back with its connection


def test_status_masks_an_error_stored_by_an_older_version(sandbox, tmp_path):
    from sqlalchemy import text

    from tests.support import engine_for, make_config

    db = f"sqlite:///{tmp_path}/patientsync.db"
    sources = {"rx": every_source(sandbox)["rx"]}
    engine = engine_for(make_config(db, sources))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sync_run (source, stream, mode, started_at, status, fetched, inserted, updated, "
                "unchanged, quarantined, deleted, error) VALUES ('rx', 'patients', 'sweep', '2026-01-01', 'failed', "
                "0, 0, 0, 0, 0, 0, :e)"
            ),
            {"e": f"rx/patients: HTTP 401 ({TELLING})"},
        )
    cfg = Path(tmp_path / "config.yaml")
    cfg.write_text(config_yaml(db, sources))
    for args in (("status",), ("status", "--json")):
        proc = cli("--config", str(cfg), *args)
        assert proc.returncode == 0, proc.stderr
        assert [
            s
            for s in [*TOKENS[:1], *SSNS, "zq@example.org", "1987-06-05", "867-5309"]
            if s in proc.stdout + proc.stderr
        ] == []


@pytest.mark.parametrize("args", [("status",), ("state", "show")])
def test_a_database_password_given_as_a_parameter_reaches_no_message(sandbox, tmp_path, args):  # type: ignore[no-untyped-def]
    # Nothing listens on port 9: the command fails to connect, and its message names the database.
    url = "postgresql+psycopg://ps@127.0.0.1:9/p?connect_timeout=2&password=Sup3rSecretPw"
    cfg = Path(tmp_path / "config.yaml")
    cfg.write_text(config_yaml(url, every_source(sandbox)))
    proc = cli("--config", str(cfg), *args)
    assert proc.returncode == 2 and "127.0.0.1:9" in proc.stderr, proc.stderr
    assert "Sup3rSecretPw" not in proc.stdout + proc.stderr
