"""How long ``patientsync --help`` and ``patientsync status`` take to start and finish, against the floor.

Each command runs as a new process in a temporary directory holding the repository's ``config.yaml`` (its
database URL pinned to a SQLite file there, whatever ``$PATIENTSYNC_DATABASE_URL`` says) and that migrated,
empty database, ``--repeat`` times; the median wall time is reported beside two floors
measured the same way: an empty interpreter, importing SQLAlchemy and SQLModel (which every command that
opens the database pays but ``status``, which reads through the driver alone), and importing what every command
needs (typer, pydantic, structlog, PyYAML, rich). The target is absolute (0.35 s), so it is printed, never asserted.

    .venv/bin/python -m benchmarks.startup [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 0.35
ROOT = Path(__file__).resolve().parent.parent
PATIENTSYNC = [sys.executable, "-m", "pipeline"]


_COMMAND_FLOOR = "import typer, typer._adapters, pydantic, structlog, yaml, rich.table"


def _median_seconds(command: list[str], cwd: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        config = (ROOT / "config.yaml").read_text()
        config = config.replace("${PATIENTSYNC_DATABASE_URL:-sqlite:///patientsync.db}", "sqlite:///startup.db")
        assert "sqlite:///startup.db" in config, "config.yaml's database URL changed: update this benchmark"
        (cwd / "config.yaml").write_text(config)
        subprocess.run([*PATIENTSYNC, "status"], cwd=cwd, check=True, capture_output=True)  # migrates, warms
        stages = [
            ("python -c pass (floor)", [sys.executable, "-c", "pass"], None),
            ("import sqlalchemy, sqlmodel (floor)", [sys.executable, "-c", "import sqlalchemy, sqlmodel"], None),
            # what every command imports: the command line, the configuration's models, logging
            ("import typer, pydantic, structlog (floor)", [sys.executable, "-c", _COMMAND_FLOOR], None),
            ("patientsync --help", [*PATIENTSYNC, "--help"], TARGET_SECONDS),
            ("patientsync sync --help", [*PATIENTSYNC, "sync", "--help"], None),
            ("patientsync status", [*PATIENTSYNC, "status"], TARGET_SECONDS),
        ]
        print(f"{'command':40} {'median s':>9}  {'target':>6}  result")
        for label, command, target in stages:
            seconds = _median_seconds(command, cwd, args.repeat)
            verdict = "" if target is None else ("ok" if seconds <= target else "FAIL")
            shown = "" if target is None else f"{target:.2f}"
            print(f"{label:40} {seconds:9.3f}  {shown:>6}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
