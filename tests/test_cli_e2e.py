"""The command line as a user runs it: status, demo and help in this process (``tests.support.cli``); signals,
the daemon's clean stop and what a fresh interpreter imports, in real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    cli,
    config_yaml,
    count,
    engine_for,
    every_source,
    make_config,
    prescrypto_source,
    run,
    source_patients,
)

ROOT = Path(__file__).resolve().parents[1]


def process(*args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGS`` in a process of its own: for what only a process shows."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def interrupt_midway(sandbox, tmp_path, db_url, sources, command, signum) -> tuple[int, str, Any]:
    """Run ``command`` over slow pages, send ``signum`` once 20 patients are stored; (exit status, stderr, engine)."""
    sandbox.faults([{"path": "/prescrypto/api/v2/patient/", "delay": 0.3, "times": None}])
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config_yaml(db_url, sources))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", str(cfg), command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    engine = engine_for(make_config(db_url, sources))
    deadline = time.monotonic() + 60
    while count(engine, "patient") < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err, engine


def test_status_json_shows_cursor_and_last_run(sandbox, tmp_path, db_url):
    sources = {"rx": prescrypto_source(sandbox)}
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config_yaml(db_url, sources))
    assert cli("--config", str(cfg), "backfill").returncode == 0

    proc = cli("--config", str(cfg), "status", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["stream"]: row for row in json.loads(proc.stdout)}
    last_uid = source_patients(sandbox)[-1]["uid"]
    assert rows["patients"]["cursor"] == {"offset": 230, "anchor": last_uid}  # the last record seen
    assert rows["patients"]["records"] == 230 and rows["patients"]["quarantined"] == 0
    assert rows["patients"]["last_run"]["status"] == "succeeded"
    assert rows["patients"]["last_run"]["inserted"] == 230
    assert rows["medics"]["cursor"]["offset"] == 40
    assert rows["medics"]["lag_seconds"] >= 0

    table = cli("--config", str(cfg), "status")
    assert table.returncode == 0 and "patients" in table.stdout and '"offset": 230' in table.stdout


def test_status_counts_identifiers_records_share_and_never_prints_them(sandbox, tmp_path, db_url):
    staged = {"name": "Ana Compartida Ruiz", "date_of_birth": "1991-03-04", "gender": "F"}
    for uid in ("shares-a-file-1", "shares-a-file-2"):
        body = {**staged, "uid": uid, "external_patient_file": "EXP-SHARED-77"}
        assert sandbox.post("/_sandbox/prescrypto/patients", body).status_code == 201
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config_yaml(db_url, {"rx": prescrypto_source(sandbox)}))
    assert cli("--config", str(cfg), "backfill").returncode == 0

    proc = cli("--config", str(cfg), "status", "--json")
    assert proc.returncode == 0, proc.stderr
    assert {row["stream"]: row["conflicts"] for row in json.loads(proc.stdout)} == {"patients": 1, "medics": 0}
    table = cli("--config", str(cfg), "status")
    assert table.returncode == 0, table.stderr
    line = "rx/patients: 1 identifier shared by more than one record (see the crosswalk_conflict view)"
    assert line in table.stdout.splitlines()
    assert "rx/medics" not in table.stdout
    assert "EXP-SHARED-77" not in proc.stdout + table.stdout + table.stderr


def test_demo_uses_a_database_of_its_own_and_leaves_a_real_sources_data_alone(sandbox, tmp_path, monkeypatch):
    db_url = f"sqlite:///{tmp_path}/shared.db"
    sources = {"prescrypto": prescrypto_source(sandbox, streams=["patients"])}
    (tmp_path / "config.yaml").write_text(config_yaml(db_url, sources))
    assert cli("--config", str(tmp_path / "config.yaml"), "backfill").returncode == 0
    engine = engine_for(make_config(db_url, sources))

    monkeypatch.chdir(tmp_path)
    proc = cli("--config", str(tmp_path / "config.yaml"), "demo", "--patients", "60", "--no-noise")
    assert proc.returncode == 0, proc.stderr
    assert "demo database: sqlite:///patientsync-demo.db" in proc.stderr
    assert count(engine, "source_record", "source LIKE 'demo-%'") == 0  # the configured database is left alone
    demo_engine = engine_for(make_config(f"sqlite:///{tmp_path}/patientsync-demo.db", sources))
    assert count(demo_engine, "source_record", "source = 'demo-prescrypto'") == 60

    # Told to use the configured database, it still never touches a real source's data.
    proc = cli(
        "--config", str(tmp_path / "config.yaml"), "demo", "--patients", "60", "--no-noise", "--database", db_url
    )
    assert proc.returncode == 0, proc.stderr
    assert count(engine, "source_record", "source = 'prescrypto' AND deleted_at IS NULL") == 230
    assert count(engine, "source_record", "source = 'demo-prescrypto'") == 60
    with engine.connect() as conn:
        from pipeline.storage.cursors import load_cursor

        assert load_cursor(conn, "prescrypto", "patients")["offset"] == 230


def test_status_shows_every_stream_of_every_kind(sandbox, tmp_path, sqlite_url):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config_yaml(sqlite_url, every_source(sandbox)))
    sync = cli("--config", str(cfg), "sync")
    assert sync.returncode == 0, sync.stderr
    proc = cli("--config", str(cfg), "status", "--json")
    assert proc.returncode == 0, proc.stderr
    found = {(row["source"], row["stream"]): row for row in json.loads(proc.stdout)}
    assert set(found) == {
        ("rx", "patients"),
        ("rx", "medics"),
        ("pf", "patients"),
        ("ga", "patients"),
        ("ga", "gauges"),
        ("pa", "patients"),
    }
    assert all(row["last_run"]["status"] == "succeeded" for row in found.values())
    assert found[("pa", "patients")]["records"] == 230 and found[("pa", "patients")]["cursor"] == {}
    assert found[("ga", "patients")]["cursor"] == {"page": 5}  # 230 patients, 50 a page: the short fifth page
    assert found[("ga", "gauges")]["records"] > 230


def test_daemon_stops_cleanly_on_sigterm(sandbox, tmp_path, sqlite_url):
    # Every page is slow, so SIGTERM arrives mid-sweep: the page in hand is finished and checkpointed.
    sources = {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=10, schedule="* * * * *")}
    status, err, engine = interrupt_midway(sandbox, tmp_path, sqlite_url, sources, "daemon", signal.SIGTERM)
    assert status == 0, err
    stored = count(engine, "patient")
    assert 20 <= stored < 230
    assert count(engine, "sync_run", "status = 'interrupted'") == 1
    assert count(engine, "sync_lease") == 0

    # The next incremental pass continues from the interrupted one's cursor.
    sandbox.clear_faults()
    sandbox.client.delete("/_sandbox/stats")
    result = run(make_config(sqlite_url, sources), engine, "incremental")[0]
    assert result.counts.fetched == 230 - stored
    assert count(engine, "patient") == 230


def test_sigterm_cuts_a_retry_wait_short(sandbox, tmp_path, sqlite_url):
    """The source asks for a minute's pause: the daemon stops at once, not after the wait and its retry."""
    sources = {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=10, schedule="* * * * *")}
    sandbox.faults(
        [{"path": "/prescrypto/api/v2/patient/", "status": 503, "retry_after": 60, "after": 3, "times": None}]
    )
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config_yaml(sqlite_url, sources))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", str(cfg), "daemon"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while not sandbox.fault_counts()[0]["fired"] and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # inside the 60 s wait
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)  # the wait alone is 60 s
    assert proc.returncode == 0, err
    engine = engine_for(make_config(sqlite_url, sources))
    assert count(engine, "patient") == 28  # the three pages committed before the 503s (10, then 9 new each)
    assert count(engine, "sync_run", "status = 'interrupted'") == 1
    assert count(engine, "sync_lease") == 0
    assert sandbox.fault_counts()[0]["fired"] == 1  # no attempt after the stop


def test_help_explains_every_command():
    proc = cli("--help")
    assert proc.returncode == 0
    for command in ("sync", "backfill", "daemon", "status", "sandbox", "demo"):
        assert command in proc.stdout
    assert "--config" in proc.stdout
    backfill = " ".join(cli("backfill", "--help").stdout.split())
    assert "continues from its last checkpoint" in backfill and "--source" in backfill


def test_ctrl_c_during_backfill_checkpoints_and_a_rerun_continues_at_once(sandbox, tmp_path, db_url):
    sources = {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=10)}
    status, err, engine = interrupt_midway(sandbox, tmp_path, db_url, sources, "backfill", signal.SIGINT)
    cfg = tmp_path / "config.yaml"
    assert status == 130, err
    assert "the next run continues from the last checkpoint" in err
    assert count(engine, "sync_lease") == 0  # released: a rerun need not wait for the lease to lapse
    stored = count(engine, "patient")

    sandbox.clear_faults()
    rerun = cli("--config", str(cfg), "backfill")
    assert rerun.returncode == 0, rerun.stderr
    assert count(engine, "patient") == 230
    with engine.connect() as conn:
        from sqlalchemy import text

        fetched = conn.execute(text("SELECT fetched FROM sync_run ORDER BY id DESC")).scalars().first()
    assert fetched == 230 - stored


def _modules_after(command: str, cwd: Path) -> str:
    """Run the CLI's ``command`` in a fresh interpreter; the last line it prints: which of the heavy libraries
    the command imported."""
    probe = (
        f"import sys; sys.argv = ['patientsync', {command!r}]\n"
        "from pipeline.app.cli import app\n"
        "try:\n    app()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "heavy = ('sqlalchemy', 'sqlmodel', 'alembic', 'httpx', 'structlog', 'mappings.normalize', 'phonenumbers')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return done.stderr.strip().splitlines()[-1]


def test_help_imports_neither_the_database_nor_the_http_stack(tmp_path: Path) -> None:
    # --help must start fast: the sync path's libraries are imported by the commands that use them.
    assert _modules_after("--help", tmp_path) == "[]"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:db.sqlite?mode=rwc&uri=true"])
def test_status_of_a_database_off_the_drivers_path_is_read_through_the_engine(  # type: ignore[no-untyped-def]
    tmp_path: Path, sandbox, url: str
) -> None:
    (tmp_path / "config.yaml").write_text(config_yaml(url, {"rx": prescrypto_source(sandbox)}))
    done = process("status", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [row["stream"] for row in json.loads(done.stdout)] == ["patients", "medics"]
    made = sorted(p.name for p in tmp_path.iterdir())  # no file named after a URL's missing path ("None")
    assert made == (["config.yaml", "db.sqlite"] if "file:" in url else ["config.yaml"])


def test_status_reads_a_postgresql_url_naming_its_host_in_the_query(  # type: ignore[no-untyped-def]
    tmp_path: Path, sandbox, pg_url: str
) -> None:
    # SQLAlchemy reads "?host=H:P" itself (libpq would take "H:P" for a host name): the engine's way, not the driver's
    server, database = pg_url.rsplit("@", 1)[1].split("/", 1)
    url = f"postgresql+psycopg://postgres@/{database}?host={server}"
    (tmp_path / "config.yaml").write_text(config_yaml(url, {"rx": prescrypto_source(sandbox)}))
    done = process("status", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_status_leaves_a_postgresql_urls_empty_parts_to_libpqs_environment(  # type: ignore[no-untyped-def]
    tmp_path: Path, sandbox, pg_url: str
) -> None:
    # As SQLAlchemy does: "postgresql://user@host/" takes its database from PGDATABASE, not the user's own.
    server, database = pg_url.rsplit("@", 1)[1].split("/", 1)
    sources = {"rx": prescrypto_source(sandbox)}
    (tmp_path / "config.yaml").write_text(config_yaml(f"postgresql+psycopg://postgres@{server}/", sources))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PGDATABASE": database}
    command = [sys.executable, "-m", "pipeline", "status", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=180)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_status_of_a_current_database_reads_it_through_the_driver_alone(  # type: ignore[no-untyped-def]
    tmp_path: Path, sandbox, request: pytest.FixtureRequest, database: str
) -> None:
    # status must start fast: SQLAlchemy and the table models cost more than its whole target, the mappings'
    # libraries a sixth of it (benchmarks.startup)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if database == "sqlite" else request.getfixturevalue("pg_url")
    (tmp_path / "config.yaml").write_text(config_yaml(url, {"rx": prescrypto_source(sandbox)}))
    assert process("status", cwd=tmp_path).returncode == 0  # creates the schema
    assert _modules_after("status", tmp_path) == "['structlog']"
