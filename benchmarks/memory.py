"""Peak memory of a backfill as the stream grows: ``patientsync backfill`` at 20,000 and at 200,000 records.

Each size gets a sandbox of its own and a new SQLite file; the command runs as its own process (the real CLI,
its mapping worker included) and the resident memory of its whole process tree is sampled every 50 ms. The
figure that matters is the ratio: a sync that streams its pages holds the same memory however long the
stream is, so the peak at 200,000 should be within 20% of the peak at 20,000.

    .venv/bin/python -m benchmarks.memory [--small 20000] [--large 200000]

The exit status is 1 when a backfill lands the wrong records; a missed target is printed, not an error.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

from sandbox.server import running_sandbox
from sandbox.tokens import PRESCRYPTO

TARGET_GROWTH = 1.20


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (0 for those that just ended)."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def backfill_peak(patients: int, page_size: int) -> tuple[float, int, float]:
    """(peak MiB of the process tree, patients stored, seconds) of one backfill of ``patients`` records."""
    with running_sandbox(patients=patients, medics=40) as sandbox, tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "memory.db"
        source: dict[str, Any] = {"kind": "prescrypto", "base_url": sandbox.url("/prescrypto"), "token": PRESCRYPTO}
        source |= {"page_size": page_size, "streams": ["patients"]}
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{db}"}, "sources": {"rx": source}}))
        command = [sys.executable, "-m", "pipeline", "--config", str(config), "--log-level", "WARNING", "backfill"]
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peak = 0
        watched = psutil.Process(child.pid)
        stderr: list[bytes] = []
        reader = threading.Thread(target=lambda: stderr.append(child.stderr.read() if child.stderr else b""))
        reader.start()
        while child.poll() is None:
            peak = max(peak, tree_rss(watched))
            time.sleep(0.05)
        reader.join()
        seconds = time.perf_counter() - start
        if child.returncode != 0:
            raise RuntimeError(f"backfill of {patients} exited {child.returncode}: {b''.join(stderr)[-2000:]!r}")
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT count(*) FROM patient").fetchone()[0]
            quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        if stored + quarantined != patients:
            raise RuntimeError(f"backfill of {patients}: {stored} stored + {quarantined} quarantined")
        return peak / 2**20, stored, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    figures = []
    for patients in (args.small, args.large):
        peak, stored, seconds = backfill_peak(patients, args.page_size)
        figures.append(peak)
        print(f"{patients:>8} records: peak {peak:6.0f} MiB (process tree), {stored} stored, {seconds:.1f} s")
    growth = figures[1] / figures[0]
    verdict = "ok" if growth < TARGET_GROWTH else "FAIL"
    print(f"growth {args.small} -> {args.large}: {growth:.2f}x (target < {TARGET_GROWTH:.2f}x) {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
