"""Leases of dead processes: judged by host, pid and start time, and on PostgreSQL by the stream's advisory lock.

The holders here are real processes (this one, a child that exits without releasing) or ids naming a pid that
cannot exist on this host (at or above the kernel's ``pid_max``).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from structlog.testing import capture_logs

from canonical.errors import LeaseHeldError
from pipeline.storage import leases
from pipeline.storage.db import WRITE_FENCE, migrate, open_engine
from pipeline.sync.runner import SWEEP
from tests.support import (
    by_stream,
    count,
    engine_for,
    expire_leases,
    make_config,
    prescrypto_source,
    rows,
    run,
    server_objects,
)

ROOT = Path(__file__).resolve().parents[1]
HOST = socket.gethostname()
STARTED = psutil.Process(os.getpid()).create_time()  # this process's start time, as a holder records it
NO_PID = int(Path("/proc/sys/kernel/pid_max").read_text()) if Path("/proc/sys/kernel/pid_max").exists() else 2**22
KEY = leases.lock_key("rx", "patients")

# A process that takes the stream, starts its run, says its holder id and, once its standard input closes,
# exits without releasing anything (as after a full disk).
CLAIM_AND_EXIT = """
import os, sys
from pipeline.storage import leases, runs
from pipeline.storage.db import open_engine
engine = open_engine(sys.argv[1])
claim = leases.claim_stream(engine, "rx", "patients")
runs.start_run(engine, "rx", "patients", "sweep")
print(claim.holder, flush=True)
sys.stdin.read()
os._exit(0)
"""


def holder(pid: int, started: float | None = STARTED, host: str = HOST) -> str:
    return f"{host}:{pid}:{started:.2f}:0badf00d" if started is not None else f"{host}:{pid}:0badf00d"


def takeovers(captured: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in captured if event["event"] == "lease taken over"]


def exited_child() -> subprocess.Popen[bytes]:
    """A child that has exited and is not reaped yet (a zombie): its pid exists, and it is dead."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # waits for the exit, leaves the zombie
    return child


@pytest.mark.parametrize(
    ("who", "verdict"),
    [
        (holder(os.getpid()), None),  # this process
        (holder(os.getpid(), started=STARTED - 3600), "the holder's pid now belongs to another process"),
        (holder(os.getpid(), started=None), None),  # the older "host:pid:uuid8": the pid alone decides
        (holder(NO_PID, started=None), "the holder's process has exited"),
        (holder(NO_PID), "the holder's process has exited"),
        (holder(NO_PID, host="other-host"), None),  # another host's pids cannot be judged from here
        ("other-host:1:abc", None),
        ("intruder", None),  # in no known format: it may be alive
    ],
    ids=["alive", "pid-reused", "old-format-alive", "old-format-gone", "gone", "other-host", "other-host-old", "odd"],
)
def test_a_holder_is_judged_by_host_pid_and_start_time(who, verdict):
    assert leases.holder_gone(who) == verdict


def test_an_exited_but_unreaped_process_is_dead():
    child = exited_child()
    try:
        assert psutil.pid_exists(child.pid)
        started = psutil.Process(child.pid).create_time()
        assert leases.holder_gone(holder(child.pid, started)) == "the holder's process has exited"
    finally:
        child.wait()


def test_a_new_holder_names_this_host_pid_and_start_time():
    parsed = leases.Holder.parse(leases.new_holder())
    assert parsed is not None
    assert (parsed.host, parsed.pid) == (HOST, os.getpid())
    assert parsed.started == pytest.approx(STARTED, abs=0.01)


@pytest.mark.parametrize(
    ("planted", "taken"),
    [
        (holder(os.getpid()), False),  # a live process (this one, another run): respected
        (holder(os.getpid(), started=STARTED - 3600), True),  # its pid is reused by a younger process
        (holder(os.getpid(), started=None), False),  # older format, live pid
        (holder(NO_PID, started=None), True),  # older format, no such pid
        (holder(NO_PID), True),
        ("other-host:1:abc", False),  # another host: until it lapses
    ],
    ids=["alive", "pid-reused", "old-format-alive", "old-format-gone", "gone", "other-host"],
)
def test_a_lease_row_is_taken_over_only_from_a_holder_known_dead(db_url, planted, taken):
    engine = open_engine(db_url)
    migrate(engine)
    leases.acquire_lease(engine, "rx", "patients", planted)
    ours = leases.new_holder()
    with capture_logs() as captured:
        if taken:
            leases.acquire_lease(engine, "rx", "patients", ours)
        else:
            with pytest.raises(LeaseHeldError) as held:
                leases.acquire_lease(engine, "rx", "patients", ours)
            assert held.value.holder == planted
    assert rows(engine, "SELECT holder FROM sync_lease") == [{"holder": ours if taken else planted}]
    assert [event["previous"] for event in takeovers(captured)] == ([planted] if taken else [])


def test_a_live_process_keeps_the_stream_and_its_lease_is_taken_over_once_it_has_exited(sandbox, db_url):
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    child = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_EXIT, db_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        other = child.stdout.readline().strip()  # the child holds the stream from here until its stdin closes
        skipped = by_stream(run(config, engine, SWEEP))["rx/patients"]
        assert skipped.status == "skipped" and other in skipped.error
        assert count(engine, "patient") == 0
        assert [r["status"] for r in rows(engine, "SELECT status FROM sync_run")] == ["running"]  # left alone
    finally:
        child.stdin.close()
        assert child.wait(timeout=60) == 0
    assert rows(engine, "SELECT holder FROM sync_lease") == [{"holder": other}]  # left behind, not lapsed

    with capture_logs() as captured:
        result = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert (result.status, result.counts.inserted) == ("succeeded", 230)
    assert [event["previous"] for event in takeovers(captured)] == [other]
    assert [r["status"] for r in rows(engine, "SELECT status FROM sync_run ORDER BY id")] == ["abandoned", "succeeded"]
    assert count(engine, "sync_lease") == 0


# --- PostgreSQL: the advisory lock decides --------------------------------------------------------------


def advisory_locks(engine: Engine, granted: bool = True) -> int:
    """The streams' advisory locks (not the write fence, which every write transaction holds shared)."""
    return count(
        engine,
        "pg_locks",
        "locktype = 'advisory' AND granted = :granted AND objid <> :fence "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        granted=granted,
        fence=WRITE_FENCE,
    )


class Session:
    """Another PostgreSQL session holding the stream's advisory lock, named as a holder would name it."""

    def __init__(self, url: str, name: str = "") -> None:
        self.engine = open_engine(url)
        self.conn = self.engine.connect()
        self.conn.execute(select(func.set_config("application_name", name, False)))
        assert self.conn.execute(select(func.pg_try_advisory_lock(KEY))).scalar()
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


def test_on_postgresql_a_lease_row_without_its_advisory_lock_is_taken_over(sandbox, pg_url):
    config = make_config(pg_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    leases.acquire_lease(engine, "rx", "patients", "other-host:1:abc")  # live on the clock, from another host
    with capture_logs() as captured:
        result = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert (result.status, result.counts.inserted) == ("succeeded", 230)
    [event] = takeovers(captured)
    assert (event["previous"], event["reason"]) == ("other-host:1:abc", "no session holds the stream's advisory lock")


def test_on_postgresql_a_lease_whose_lock_another_session_holds_is_respected(sandbox, pg_url):
    config = make_config(pg_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    leases.acquire_lease(engine, "rx", "patients", "other-host:1:abc")
    expire_leases(engine)  # lapsed on the clock, but its session still holds the lock
    other = Session(pg_url)
    try:
        skipped = by_stream(run(config, engine, SWEEP))["rx/patients"]
        assert skipped.status == "skipped" and "other-host:1:abc" in skipped.error
        assert count(engine, "patient") == 0
    finally:
        other.close()  # the lock goes with the session
    taken = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert (taken.status, taken.counts.inserted) == ("succeeded", 230)


def test_on_postgresql_the_lingering_session_of_a_dead_holder_is_ended(sandbox, pg_url):
    """The holder's process is gone, but its session still has the lock (closing, or left by a crashed host)."""
    config = make_config(pg_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    dead = holder(NO_PID)
    leases.acquire_lease(engine, "rx", "patients", dead)
    session = Session(pg_url, name=dead)
    try:
        with capture_logs() as captured:
            result = by_stream(run(config, engine, SWEEP))["rx/patients"]
        with pytest.raises(DBAPIError):  # the server ended it
            session.conn.execute(select(1))
    finally:
        session.close()
    assert (result.status, result.counts.inserted) == ("succeeded", 230)
    assert [e["previous"] for e in captured if e["event"] == "session of a dead lease holder ended"] == [dead]
    assert [event["previous"] for event in takeovers(captured)] == [dead]


@pytest.fixture
def app_url(pg_url: str) -> Iterator[str]:
    """``pg_url`` as a role of its own that is not a superuser (as patientsync usually connects)."""
    role = f"patientsync_app_{uuid.uuid4().hex[:8]}"
    create = [f'CREATE ROLE "{role}" LOGIN', f'GRANT ALL ON SCHEMA public TO "{role}"']
    with server_objects(pg_url, create, [f'DROP OWNED BY "{role}"', f'DROP ROLE "{role}"']):
        yield make_url(pg_url).set(username=role).render_as_string(hide_password=False)


@pytest.mark.empty_database  # its own role builds the schema, and so owns it
def test_on_postgresql_a_dead_holders_session_that_cannot_be_ended_is_waited_for_a_bounded_time(
    sandbox, pg_url, app_url, monkeypatch
):
    monkeypatch.setattr(leases, "LOCK_WAIT", dt.timedelta(milliseconds=200))
    config = make_config(app_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    dead = holder(NO_PID)
    session = Session(pg_url, name=dead)  # a superuser's: the role patientsync runs as may not end it
    try:
        with capture_logs() as captured:
            skipped = by_stream(run(config, engine, SWEEP))["rx/patients"]
        assert skipped.status == "skipped" and dead in skipped.error
        assert any(e["event"] == "session of a dead lease holder left to end" for e in captured)
    finally:
        session.close()
    taken = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert (taken.status, taken.counts.inserted) == ("succeeded", 230)
    engine.dispose()


def test_on_postgresql_the_advisory_lock_goes_however_the_run_ends(sandbox, pg_url):
    sources = {
        "ok": prescrypto_source(sandbox, streams=["patients"]),
        "wrong": prescrypto_source(sandbox, streams=["patients"], token="not-the-token"),
    }
    config = make_config(pg_url, sources)
    engine = engine_for(config)
    during: list[int] = []
    results = by_stream(run(config, engine, SWEEP, progress=lambda *_: during.append(advisory_locks(engine))))
    assert (results["ok/patients"].status, results["wrong/patients"].status) == ("succeeded", "failed")
    assert set(during) == {1}  # held for the whole run, on a connection of its own
    assert advisory_locks(engine) == 0

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(make_config(pg_url, {"ok": sources["ok"]}), engine, SWEEP, progress=interrupt)
    assert advisory_locks(engine) == 0
    assert count(engine, "sync_lease") == 0
    named = "datname = current_database() AND application_name LIKE :host"
    assert count(engine, "pg_stat_activity", named, host=f"{HOST}:%") == 0  # pooled sessions lost the name
