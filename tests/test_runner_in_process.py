"""The runner against the sandbox's ASGI app in this process (no server): its logic, fast, on both databases."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.sync.runner import SWEEP, RunOptions, run_sources
from sandbox.app import create_app
from sandbox.inprocess import in_process
from tests.support import FAST_RETRY, TODAY, by_stream, count, engine_for, make_config

BASE = "http://sandbox.test"


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(patients=120, medics=20, seed=3)


@pytest.fixture(scope="module")
def big_app() -> Any:
    """Enough patients that a listing's first group goes to a worker process (runner.MAPPED_HERE_BELOW)."""
    return create_app(patients=600, medics=5, seed=3)


def _sources() -> dict[str, dict[str, Any]]:
    common = {"page_size": 25, "concurrency": 4}
    return {
        "rx": {"kind": "prescrypto", "base_url": f"{BASE}/prescrypto", "token": "sandbox-prescrypto", **common},
        "pf": {"kind": "profiles", "base_url": f"{BASE}/profiles", "token": "sandbox-profiles"},
        "ga": {"kind": "gauges", "base_url": f"{BASE}/gauges", "token": "sandbox-gauges", **common},
        "pa": {"kind": "particle", "base_url": f"{BASE}/particle", "token": "sandbox-particle", **common},
    }


def test_batches_are_committed_together_and_the_cursor_covers_exactly_what_is_stored(app, db_url):
    from pipeline.storage.cursors import load_cursor

    config = make_config(db_url, {"rx": {**_sources()["rx"], "streams": ["patients"]}})
    engine = engine_for(config)
    seen: list[tuple[int, int]] = []

    def after_commit(source, stream, done, total):
        with engine.connect() as conn:
            offset = load_cursor(conn, "rx", "patients")["sweep"]["offset"]
        seen.append((count(engine, "source_record"), offset))

    options = RunOptions(
        retry=FAST_RETRY, today=TODAY, transport=in_process(app), commit_records=100, progress=after_commit
    )
    assert by_stream(run_sources(config, engine, SWEEP, options=options))["rx/patients"].status == "succeeded"
    # Pages of 25 (then 24 new each): the first five pages make one transaction, the rest a second; each
    # commit's cursor points just past the records stored, no more, no fewer.
    assert len(seen) == 2 and all(stored == offset for stored, offset in seen) and seen[-1][0] == 120


def test_a_backfill_commits_1000_records_first_then_twice_as_many_each_time_up_to_commit_records(sqlite_url):
    """The first commit lands soon and the mapping worker gets a small group first; later commits grow to
    ``commit_records``, which is where the writer's cost per record is lowest."""
    big = create_app(patients=4500, medics=5, seed=4)
    config = make_config(sqlite_url, {"rx": {**_sources()["rx"], "page_size": 100, "streams": ["patients"]}})
    done: list[int] = []
    options = RunOptions(
        retry=FAST_RETRY,
        today=TODAY,
        transport=in_process(big),
        commit_records=2000,
        commit_seconds=600,  # by records only: the sizes must not depend on this machine's speed
        commit_idle=600,
        progress=lambda source, stream, fetched, total: done.append(fetched),
    )
    result = by_stream(run_sources(config, engine_for(config), SWEEP, options=options))["rx/patients"]
    assert result.status == "succeeded"
    commits = [b - a for a, b in zip([0, *done], done, strict=False)]
    # A group closes with the page that reaches its size: pages of 100 (fewer where a listing repeats a record).
    assert len(commits) == 3 and sum(commits) == 4500, commits
    assert 1000 <= commits[0] < 1100 and 2000 <= commits[1] < 2100, commits


def test_pages_mapped_in_a_worker_process_land_exactly_as_mapped_here(app, db_url, tmp_path):
    """The same sweep, mapped here (into SQLite) and in a worker process (into each database), stores the same
    identifiers, patients and links."""
    from tests.support import rows

    stored = {}
    for workers, url in ((0, f"sqlite:///{tmp_path}/here.db"), (1, db_url)):
        config = make_config(url, _sources())
        engine = engine_for(config)
        options = RunOptions(
            retry=FAST_RETRY, today=TODAY, transport=in_process(app), mapping_workers=workers, commit_records=60
        )
        runs = by_stream(run_sources(config, engine, SWEEP, options=options))
        assert all(r.status == "succeeded" for r in runs.values()), {k: r.error for k, r in runs.items()}
        stored[workers] = [
            rows(
                engine, "SELECT source, entity_type, id_type, id_value, entity_id FROM crosswalk ORDER BY 1, 2, 3, 4, 5"
            ),
            rows(engine, "SELECT id, full_name, phone, curp, postal_code FROM patient ORDER BY id"),
            rows(engine, "SELECT patient_id, medic_id FROM patient_medic ORDER BY 1, 2"),
            count(engine, "observation"),
        ]
    assert stored[0] == stored[1]


def test_only_listing_streams_are_mapped_in_the_worker_process(big_app, db_url, monkeypatch):
    # A stream making a request per record waits on the source, not on mapping: the worker costs it more
    # (start-up, pickling) than it buys. Pages of listings go to the worker; Particle's and gauges readings' not.
    from pipeline.sync import mapper as mapper_module

    sent: list[str] = []
    submit = mapper_module.Mapper.submit

    def recording(self, job):  # type: ignore[no-untyped-def]
        if not self.in_process:
            sent.append(f"{job.kind}/{job.stream}")
        return submit(self, job)

    monkeypatch.setattr(mapper_module.Mapper, "submit", recording)
    config = make_config(db_url, {k: v for k, v in _sources().items() if k in ("ga", "pa")})
    options = RunOptions(retry=FAST_RETRY, today=TODAY, transport=in_process(big_app), mapping_workers=1)
    results = by_stream(run_sources(config, engine_for(config), SWEEP, options=options))
    assert {r.status for r in results.values()} == {"succeeded"}
    assert set(sent) == {"gauges/patients"}


def test_a_resync_of_unchanged_records_never_starts_the_worker_process(big_app, sqlite_url, monkeypatch):
    """A worker costs about a second of CPU to start; a re-sync whose groups hold only a few records to prepare
    (those whose stored form is masked) maps them here, and never starts it, nor even the pool that would (its
    queues start multiprocessing's resource tracker, a process of its own)."""
    from sqlalchemy import text

    from pipeline.sync import mapper as mapper_module

    started: list[int | None] = []  # per run: the worker processes its mapper started; None: no pool at all
    close = mapper_module.Mapper.close

    def counting(self):  # type: ignore[no-untyped-def]
        started.append(len(self.pool._processes) if self.pool is not None else None)
        close(self)

    monkeypatch.setattr(mapper_module.Mapper, "close", counting)
    config = make_config(sqlite_url, {"rx": {**_sources()["rx"], "streams": ["patients"]}})
    engine = engine_for(config)
    options = RunOptions(retry=FAST_RETRY, today=TODAY, transport=in_process(big_app), mapping_workers=1)
    assert by_stream(run_sources(config, engine, SWEEP, options=options))["rx/patients"].counts.inserted == 600
    again = by_stream(run_sources(config, engine, SWEEP, options=options))["rx/patients"]
    with engine.connect() as conn:
        masked = conn.execute(text("SELECT count(*) FROM source_record WHERE payload LIKE '%[redacted]%'")).scalar_one()
    assert again.counts.unchanged == 600 and masked > 0  # some were prepared again, and found unchanged
    assert started == [1, None]  # the backfill's groups of hundreds of new records went to the worker


def test_a_resync_makes_no_unchanged_record_storable_again(app, db_url, monkeypatch):
    """Redaction's walk is most of what preparing a record costs: a record whose digest as fetched is the stored
    one skips it. Particle's records are scrubbed (their SSN replaced), so their digest as fetched says nothing:
    they are prepared and found unchanged."""
    import json

    from sqlalchemy import text

    from pipeline.sync import prepare as prepare_module
    from pipeline.sync.redaction import holds_a_mark

    redacted: list[str] = []
    redact = prepare_module.redact

    def counting(payload):  # type: ignore[no-untyped-def]
        redacted.append("patient_id" if "patient_id" in payload else "uid")
        return redact(payload)

    config = make_config(db_url, {k: v for k, v in _sources().items() if k in ("rx", "pa")})
    engine = engine_for(config)
    options = RunOptions(retry=FAST_RETRY, today=TODAY, transport=in_process(app), mapping_workers=0)
    assert {r.status for r in run_sources(config, engine, SWEEP, options=options)} == {"succeeded"}
    monkeypatch.setattr(prepare_module, "redact", counting)
    again = by_stream(run_sources(config, engine, SWEEP, options=options))
    assert {r.status for r in again.values()} == {"succeeded"}
    for name in ("rx/patients", "pa/patients"):
        counts = again[name].counts
        assert counts.fetched == counts.unchanged > 0 and counts.inserted == counts.updated == 0, name
    # Only the Prescrypto records whose stored form is not what the source sends (a masked text) are prepared.
    with engine.connect() as conn:
        payloads = conn.execute(text("SELECT payload FROM source_record WHERE source = 'rx' AND stream = 'patients'"))
        masked = sum(holds_a_mark(json.loads(p) if isinstance(p, str) else p) for (p,) in payloads)
    assert redacted.count("uid") == masked < 120 / 10
    assert redacted.count("patient_id") == again["pa/patients"].counts.fetched


_RUNNER = """
import datetime as dt, sys, time
from mappings.context import MappingContext
from pipeline.sync.mapper import Mapper, PageJob
from pipeline.sync.prepare import PreparedPage
job = PageJob("prescrypto", "patients", PreparedPage({}, [], 0), {}, MappingContext(today=dt.date(2026, 1, 1)),
              "rx", dt.datetime.now(dt.UTC), None)
mapper = Mapper(workers=1)
mapper.submit(job).result(timeout=60)
print(*(p.pid for p in mapper.pool._processes.values()), flush=True)
time.sleep(600)
"""


def test_a_mapping_worker_exits_once_its_runner_is_killed() -> None:
    """A worker holds both ends of its pipes, so it never sees its runner die: without a watch of its own it
    would wait for the next page, or to hand back the last, for good (and the fork server with it)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    runner = subprocess.Popen([sys.executable, "-c", _RUNNER], stdout=subprocess.PIPE, text=True)
    assert runner.stdout is not None
    worker = psutil.Process(int(runner.stdout.readline()))
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 60  # a bound, not a measure: the worker looks once a second
    while worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.2)
    gone = not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    if not gone:
        worker.kill()
    assert gone


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_mapping_worker_leaves_ctrl_c_and_sigterm_to_the_runner(signum: str) -> None:
    """A terminal's Ctrl-C reaches the whole process group, a service manager's SIGTERM every process of the
    service: the worker must go on mapping the page in hand while the runner stops, not die with a traceback."""
    import datetime as dt
    import os
    import signal

    from mappings.context import MappingContext
    from pipeline.sync.mapper import Mapper, PageJob
    from pipeline.sync.prepare import PreparedPage

    job = PageJob(
        "prescrypto",
        "patients",
        PreparedPage({}, [], 0),
        {},
        MappingContext(today=TODAY),
        "rx",
        dt.datetime.now(dt.UTC),
        None,
    )
    with Mapper(workers=1) as mapper:
        assert mapper.submit(job).result(timeout=60)[1].fetched == 0  # the worker is up, waiting for the next page
        assert mapper.pool is not None
        (worker,) = mapper.pool._processes.values()
        os.kill(worker.pid, getattr(signal, signum))
        assert mapper.submit(job).result(timeout=60)[1].fetched == 0
        assert worker.is_alive()
