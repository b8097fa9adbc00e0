"""`daemon --metrics-port`: Prometheus metrics and liveness from a real daemon process, and what they say when
the scheduler or the database is gone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.app.metrics import Metrics, MetricsServer
from pipeline.storage.db import open_engine
from pipeline.storage.run_values import Mode, Status
from pipeline.sync.rows import PageCounts
from pipeline.sync.runner import RunResult
from tests.support import config_yaml, count, engine_for, make_config, prescrypto_source, rows

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, parsed as Prometheus would."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def wait_for(probe, what: str, seconds: float = 90):
    """Poll ``probe`` until it returns something truthy; the bound is on the whole wait, never on a count."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what}")


def get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None


def test_the_daemon_serves_what_its_runs_did_and_what_the_database_holds(sandbox, tmp_path, db_url):
    sources = {
        "rx": prescrypto_source(sandbox, streams=["patients"], schedule="*/15 * * * *"),
        "bad": prescrypto_source(sandbox, streams=["patients"], token="wrong-token", retries=1),
    }
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config_yaml(db_url, sources))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", str(cfg), "daemon", "--metrics-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        health = wait_for(lambda: (r := get(f"{base}/healthz")) is not None and r.status_code == 200 and r, "healthz")
        assert health.text == "ok\n"

        def both_runs_ended():
            response = get(f"{base}/metrics")
            if response is None:
                return None
            found = samples(response.text)
            ended = [k for k in found if k[0] == "patientsync_runs_total"]
            return found if len(ended) == 2 else None

        found = wait_for(both_runs_ended, "the first runs of both sources")
        assert get(f"{base}/nothing-here").status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err

    def value(name: str, **labels: str) -> float:
        return found[(name, tuple(sorted(labels.items())))]

    stream = {"source": "rx", "stream": "patients"}
    assert value("patientsync_records_total", **stream, outcome="fetched") == 230
    assert value("patientsync_records_total", **stream, outcome="inserted") == 230
    assert value("patientsync_records_total", **stream, outcome="unchanged") == 0
    assert value("patientsync_runs_total", **stream, mode="incremental", status="succeeded") == 1
    assert value("patientsync_runs_total", source="bad", stream="patients", mode="incremental", status="failed") == 1
    assert value("patientsync_run_failures_total", source="bad", stream="patients") == 1
    assert ("patientsync_run_failures_total", tuple(sorted(stream.items()))) not in found
    assert value("patientsync_run_duration_seconds_count", **stream, mode="incremental") == 1
    assert value("patientsync_database_up") == 1
    assert value("patientsync_stream_lag_seconds", **stream) >= 0
    assert value("patientsync_stream_lag_seconds", source="bad", stream="patients") == float("inf")  # never ok
    engine = engine_for(make_config(db_url, sources))
    assert value("patientsync_persons") == count(engine, "person", "deleted_at IS NULL") > 0
    assert value("patientsync_open_reviews") == rows(engine, "SELECT count(*) AS n FROM identity_review")[0]["n"]
    # The daemon said when each job runs next; the token never reached a label or a line.
    assert '"event": "next run"' in err and '"job": "rx incremental"' in err
    assert "wrong-token" not in err


def test_healthz_fails_without_the_scheduler_or_the_database(tmp_path):
    good = open_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with good.begin() as conn:
        conn.exec_driver_sql("CREATE VIEW identity_review AS SELECT 1 AS x WHERE 0")
    gone = open_engine("postgresql+psycopg://nobody@127.0.0.1:1/nothing?connect_timeout=2")
    metrics = Metrics(gone, [("rx", "patients")])
    running = {"now": True}
    with MetricsServer(metrics, gone, lambda: running["now"], 0) as server:
        base = f"http://127.0.0.1:{server.port}"
        down = httpx.get(f"{base}/healthz")
        assert down.status_code == 503 and down.text.startswith("the database does not answer")
        found = samples(httpx.get(f"{base}/metrics").text)
        assert found[("patientsync_database_up", ())] == 0  # and the scrape itself still answers
    with MetricsServer(Metrics(good, []), good, lambda: running["now"], 0) as server:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        running["now"] = False
        stopped = httpx.get(f"{base}/healthz")
        assert (stopped.status_code, stopped.text) == (503, "the scheduler is not running\n")


def test_a_skipped_run_counts_as_a_run_but_not_as_time_spent():
    metrics = Metrics(open_engine("sqlite://"), [("rx", "patients")])
    metrics.record(RunResult("rx", "patients", Mode.incremental, Status.skipped, PageCounts(), seconds=9.0))
    metrics.record(RunResult("rx", "patients", Mode.sweep, Status.succeeded, PageCounts(fetched=3), seconds=2.0))
    registry = metrics.registry
    labels = {"source": "rx", "stream": "patients"}
    assert registry.get_sample_value("patientsync_runs_total", {**labels, "mode": "incremental", "status": "skipped"})
    assert (
        registry.get_sample_value("patientsync_run_duration_seconds_count", {**labels, "mode": "incremental"}) is None
    )
    assert registry.get_sample_value("patientsync_run_duration_seconds_sum", {**labels, "mode": "sweep"}) == 2.0
    assert registry.get_sample_value("patientsync_records_total", {**labels, "outcome": "fetched"}) == 3


def test_a_port_in_use_is_a_clear_error(tmp_path, sqlite_url):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config_yaml(sqlite_url, {"rx": prescrypto_source_stub()}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", "--config", str(cfg), "daemon", "--metrics-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    assert proc.returncode == 2
    assert f"--metrics-port {port}: cannot listen on 127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr


def prescrypto_source_stub() -> dict[str, str]:
    return {"kind": "prescrypto", "base_url": "http://127.0.0.1:1/prescrypto", "token": "t"}


def test_a_client_that_sends_half_a_request_is_let_go(monkeypatch):
    from pipeline.app import metrics as module

    monkeypatch.setattr(module, "REQUEST_TIMEOUT", 0.5)
    engine = open_engine("sqlite://")
    with MetricsServer(Metrics(engine, []), engine, lambda: True, 0) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as half:
            half.sendall(b"GET /metr")
            assert half.recv(1024) == b""  # closed by the server, long before the client's own 30 s
        assert httpx.get(f"http://127.0.0.1:{server.port}/healthz").status_code == 200  # still serving
