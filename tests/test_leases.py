"""Leases of dead processes: judged by host, pid and start time.

The holders here are real processes (this one, a child that has exited) or ids naming a pid that cannot exist
on this host (at or above the kernel's ``pid_max``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from structlog.testing import capture_logs

from canonical.errors import LeaseHeldError
from pipeline import state
from pipeline.db import migrate, open_engine
from tests.support import rows

HOST = socket.gethostname()
STARTED = psutil.Process(os.getpid()).create_time()  # this process's start time, as a holder records it
NO_PID = int(Path("/proc/sys/kernel/pid_max").read_text()) if Path("/proc/sys/kernel/pid_max").exists() else 2**22


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
    assert state.holder_gone(who) == verdict


def test_an_exited_but_unreaped_process_is_dead():
    child = exited_child()
    try:
        assert psutil.pid_exists(child.pid)
        started = psutil.Process(child.pid).create_time()
        assert state.holder_gone(holder(child.pid, started)) == "the holder's process has exited"
    finally:
        child.wait()


def test_a_new_holder_names_this_host_pid_and_start_time():
    parsed = state.Holder.parse(state.new_holder())
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
    state.acquire_lease(engine, "rx", "patients", planted)
    ours = state.new_holder()
    with capture_logs() as captured:
        if taken:
            state.acquire_lease(engine, "rx", "patients", ours)
        else:
            with pytest.raises(LeaseHeldError) as held:
                state.acquire_lease(engine, "rx", "patients", ours)
            assert held.value.holder == planted
    assert rows(engine, "SELECT holder FROM sync_lease") == [{"holder": ours if taken else planted}]
    assert [event["previous"] for event in takeovers(captured)] == ([planted] if taken else [])
