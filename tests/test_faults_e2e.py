"""Faults staged by the sandbox over real HTTP: retries, refused credentials, a process killed mid-run, leases."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from canonical.errors import LeaseHeldError
from connectors.client import RetryPolicy
from pipeline.storage import cursors, leases
from pipeline.sync.runner import SWEEP
from tests.support import (
    by_stream,
    cli,
    config_yaml,
    count,
    engine_for,
    expire_leases,
    make_config,
    prescrypto_source,
    run,
)

PATIENTS = "/prescrypto/api/v2/patient/"


def test_429_500_and_dropped_connections_are_retried(sandbox, db_url):
    sandbox.faults(
        [
            {"path": PATIENTS, "status": 429, "times": 2, "retry_after": 0},
            {"path": PATIENTS, "status": 500, "times": 1, "after": 1},
            {"path": PATIENTS, "status": 503, "times": 1, "after": 2},
            {"path": PATIENTS, "drop": True, "times": 1, "after": 3},
        ]
    )
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    result = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert (result.status, result.counts.inserted) == ("succeeded", 230)
    assert [rule["fired"] for rule in sandbox.fault_counts()] == [2, 1, 1, 1]


class _Clock(threading.Event):
    """A run's stop event that records the waits asked of it and passes them at once: the waits, not the time."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()


def test_retry_after_is_honoured(sandbox, sqlite_url):
    sandbox.faults([{"path": PATIENTS, "status": 429, "times": 1, "retry_after": 7}])
    config = make_config(sqlite_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    clock = _Clock()
    result = by_stream(run(config, engine_for(config), SWEEP, stop=clock))["rx/patients"]
    assert result.status == "succeeded"
    assert 7.0 in clock.waits  # the fast test backoff alone would wait ~10 ms


def test_slow_responses_time_out_and_are_retried(sandbox, sqlite_url):
    sandbox.faults([{"path": PATIENTS, "delay": 2.0, "times": 1}])
    config = make_config(sqlite_url, {"rx": prescrypto_source(sandbox, streams=["patients"], timeout=0.5)})
    result = by_stream(run(config, engine_for(config), SWEEP))["rx/patients"]
    assert (result.status, result.counts.inserted) == ("succeeded", 230)


def test_retries_are_bounded(sandbox, sqlite_url):
    sandbox.faults([{"path": PATIENTS, "status": 500, "times": None}])
    config = make_config(sqlite_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    result = by_stream(run(config, engine_for(config), SWEEP, retry=RetryPolicy(attempts=3, initial_wait=0.01)))
    failed = result["rx/patients"]
    assert failed.status == "failed"
    assert failed.error == "rx/patients: gave up after retries: HTTP 500"
    assert sandbox.fault_counts()[0]["fired"] == 3


def test_401_fails_that_source_at_once_and_the_others_go_on(sandbox, db_url):
    config = make_config(
        db_url,
        {
            "wrong": prescrypto_source(sandbox, token="not-the-token"),
            "right": prescrypto_source(sandbox),
        },
    )
    engine = engine_for(config)
    results = by_stream(run(config, engine, SWEEP))
    for stream in ("patients", "medics"):
        failed = results[f"wrong/{stream}"]
        assert failed.status == "failed"
        assert failed.error == f"wrong/{stream}: HTTP 401: the source refused the credentials (Invalid Token)"
        assert results[f"right/{stream}"].status == "succeeded"
    # no retry of the 401; the good source reads 5 pages and one that shows there is nothing more
    assert sandbox.stats()["paths"]["/prescrypto/api/v2/patient"] == 1 + 6
    assert count(engine, "sync_run", "source = 'wrong' AND status = 'failed'") == 2


def test_cli_exit_status_and_message_on_401(sandbox, tmp_path, sqlite_url):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config_yaml(sqlite_url, {"wrong": prescrypto_source(sandbox, token="nope", streams=["medics"])}))
    proc = cli("--config", str(cfg), "sync")
    assert proc.returncode == 1
    assert "wrong/medics: HTTP 401: the source refused the credentials (Invalid Token)" in proc.stderr
    assert "nope" not in proc.stderr + proc.stdout  # the token never reaches the output
    assert "Traceback" not in proc.stderr

    status = cli("--config", str(cfg), "status")
    assert status.returncode == 0, status.stderr
    assert "wrong/medics: HTTP 401: the source refused the credentials (Invalid Token)" in status.stderr
    assert "wrong/medics: wrong/medics" not in proc.stderr + status.stderr


def test_what_a_stalled_source_has_given_is_committed_while_it_stalls(sandbox, db_url):
    """Records wait for a commit at most ``commit_idle`` once the source stops giving: the first page lands
    while the second hangs, not with it, although neither the records nor the seconds bound is reached."""
    sandbox.faults([{"path": PATIENTS, "delay": 3, "after": 1, "times": 1}])
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=100)})
    engine = engine_for(config)
    commits: list[int] = []
    progress = lambda source, stream, fetched, total: commits.append(fetched)  # noqa: E731
    options = {"commit_records": 5000, "commit_seconds": 600, "commit_idle": 0.3, "progress": progress}
    result = by_stream(run(config, engine, SWEEP, **options))["rx/patients"]
    assert (result.status, result.counts.inserted) == ("succeeded", 230)
    assert commits == [100, 230]  # the first page alone, during the stall; the rest once the walk ended


def test_killed_between_pages_resumes_without_loss_or_duplicates(sandbox, db_url, tmp_path):
    page = 50
    three_pages = page + 2 * (page - 1)  # pages after the first start at the last record already seen
    # Pages 1-3 come at once; the 4th hangs, so the process is surely between pages when it is killed.
    sandbox.faults([{"path": PATIENTS, "delay": 60, "after": 3, "times": 1}])
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config_yaml(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=page)}))
    scratch = tmp_path / "tmp"  # the process's temporary directory: a kill must leave nothing behind in it
    scratch.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", str(cfg), "backfill"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=page)})
    engine = engine_for(config)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if count(engine, "source_record") >= three_pages:
            break
        time.sleep(0.05)
    blocked = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert blocked.status == "skipped" and f":{proc.pid}:" in blocked.error  # the live process holds it
    assert count(engine, "sync_run", "status = 'running'") == 1  # and its run is left alone
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert count(engine, "patient") == three_pages  # three pages committed, nothing of the fourth
    assert not any(p.name.startswith("patientsync") for p in scratch.iterdir())
    with engine.connect() as conn:
        sweep = cursors.load_cursor(conn, "rx", "patients")["sweep"]
    assert sweep["offset"] == three_pages

    sandbox.clear_faults()
    with capture_logs() as captured:  # at once: the killed process's lease is not left to lapse
        result = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert result.status == "succeeded"
    [takeover] = [event for event in captured if event["event"] == "lease taken over"]
    assert f":{proc.pid}:" in takeover["previous"]
    assert result.counts.fetched == 230 - three_pages  # continued from the checkpoint, not from the start
    assert count(engine, "patient") == 230
    assert count(engine, "source_record") == 230
    assert count(engine, "crosswalk", "id_type = 'uid'") == 230
    with engine.connect() as conn:
        duplicates = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT entity_id, id_type FROM crosswalk GROUP BY entity_id, id_type "
                "HAVING count(*) > 1) d"
            )
        ).scalar()
        runs = [row[0] for row in conn.execute(text("SELECT status FROM sync_run ORDER BY id"))]
    assert duplicates == 0
    assert runs[0] == "abandoned" and runs[-1] == "succeeded"


def test_on_sqlite_another_hosts_lease_keeps_a_second_process_out_until_it_expires(sandbox, sqlite_url):
    """Its pid cannot be judged from here, so only the clock tells. (On PostgreSQL the advisory lock tells:
    tests/test_leases.py.)"""
    config = make_config(sqlite_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    leases.acquire_lease(engine, "rx", "patients", "other-host:1:abc", ttl=dt.timedelta(minutes=5))
    with pytest.raises(LeaseHeldError):
        leases.acquire_lease(engine, "rx", "patients", "third-host:2:def")
    skipped = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert skipped.status == "skipped" and "other-host:1:abc" in skipped.error
    assert skipped.ok  # another process is doing the work: not a failure, `sync` exits 0
    assert count(engine, "patient") == 0

    expire_leases(engine)  # the holder died: its lease lapses
    taken = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert (taken.status, taken.counts.inserted) == ("succeeded", 230)
    assert count(engine, "sync_lease") == 0  # released at the end


def test_a_lapsed_lease_taken_by_another_process_stops_the_page_commit(sandbox, sqlite_url):
    config = make_config(sqlite_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    taken = []

    def steal(source, stream, done, total):  # after page 1, another process takes the lapsed lease
        if not taken:
            with engine.begin() as conn:
                conn.execute(text("UPDATE sync_lease SET holder = 'thief:9:x'"))
            taken.append(True)

    result = by_stream(run(config, engine, SWEEP, progress=steal))["rx/patients"]
    assert result.status == "failed" and "lease lapsed" in result.error
    assert count(engine, "patient") == 50  # page 2 was not committed


def test_rate_limit_spaces_requests(sandbox, sqlite_url):
    config = make_config(
        sqlite_url, {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=10, rate_limit=40)}
    )
    started = time.monotonic()
    result = by_stream(run(config, engine_for(config), SWEEP))["rx/patients"]
    elapsed = time.monotonic() - started
    assert (result.status, result.counts.inserted) == ("succeeded", 230)
    requests = sandbox.stats()["total"]
    # A page of 10, then pages that start at the last record already seen (9 new each), and one that brings
    # nothing new: a short page is not taken for the end (a server may cap the page size).
    assert requests == 27
    assert elapsed >= (requests - 1) / 40  # evenly spaced: a lower bound, not a speed target


def test_a_database_error_fails_the_stream_not_the_whole_run(sandbox, sqlite_url):
    config = make_config(
        sqlite_url,
        {"a": prescrypto_source(sandbox, streams=["patients"]), "b": prescrypto_source(sandbox, streams=["medics"])},
    )
    engine = engine_for(config)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE sync_lease"))  # every lease acquisition now fails in the database
    results = by_stream(run(config, engine, SWEEP))
    assert set(results) == {"a/patients", "b/medics"}  # the first failure did not stop the second source
    for result in results.values():
        assert result.status == "failed"
        assert result.error.endswith("database: no such table: sync_lease")


def test_killed_at_random_instants_loses_and_duplicates_nothing(sandbox, db_url, tmp_path):
    """SIGKILL at random moments (mid-fetch, mid-transaction, mid-commit): after every kill the committed
    sweep offset equals what is stored, and the finished run holds exactly the source's records."""
    page = 10
    sandbox.faults([{"path": PATIENTS, "delay": 0.1, "times": None}])  # a sweep takes longer than a kill allows
    sources = {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=page)}
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config_yaml(db_url, sources))
    config = make_config(db_url, sources)
    engine = engine_for(config)
    rng = random.Random(20261121)
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "--config", str(cfg), "backfill"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.8, 2.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)  # the next process takes the dead one's lease over at once
        with engine.connect() as conn:
            cursor = cursors.load_cursor(conn, "rx", "patients")
        stored = count(engine, "source_record")
        if stored < 230:  # the first sweep is still under way: its committed position is exactly what landed
            assert cursor.get("sweep", {}).get("offset", 0) == stored
        assert count(engine, "patient") == stored
        # Linked in the page's own transaction: every landed patient has its person (or is still queued).
        unlinked = "person_id IS NULL AND id NOT IN (SELECT patient_id FROM identity_pending)"
        assert count(engine, "patient", unlinked) == 0
        assert count(engine, "patient", "person_id IS NOT NULL AND person_id NOT IN (SELECT id FROM person)") == 0

    sandbox.clear_faults()
    result = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert result.status == "succeeded"
    assert count(engine, "patient") == count(engine, "source_record") == 230
    assert count(engine, "crosswalk", "id_type = 'uid'") == 230
    assert count(engine, "source_record r", "NOT EXISTS (SELECT 1 FROM patient p WHERE p.id = r.entity_id)") == 0
    assert count(engine, "identity_link", "status = 'match'") == 230 == count(engine, "person")  # none twice
