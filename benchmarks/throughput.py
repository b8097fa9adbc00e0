"""Sync throughput as a fraction of the fetch-only ceiling, against one sandbox (see benchmarks/README.md).

    python -m benchmarks.throughput [--patients 100000] [--page-size 100] [--repeat 1]
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--json PATH]

One run: warm the sandbox, then measure the ceiling, the SQLite backfill and re-sync, the PostgreSQL backfill
and re-sync, and the ceiling again; ratios use the mean of the two ceilings. ``--repeat K`` runs that sequence
K times and reports medians. Exit status 0 whether or not targets are met; 1 only if a result is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from benchmarks import fetch_only
from benchmarks.fetch_only import fetch_all
from pipeline.app import logs
from pipeline.config import Config
from pipeline.storage.db import migrate, open_engine
from pipeline.sync.runner import SWEEP, RunOptions, run_sources
from sandbox.prescrypto import DEFAULT_TOKEN
from sandbox.server import SandboxHandle, running_sandbox

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

CEILING_BEFORE, CEILING_AFTER = "ceiling (before)", "ceiling (after)"
# A re-sync is measured against a ceiling fetched just before and just after it, not at the run's two ends: it
# costs about as much as fetching, and this machine's speed can halve within a run.
BESIDE = (": ceiling before", ": ceiling after")
TARGETS = {  # minimum fraction of the fetch-only ceiling
    "sqlite backfill": 0.50,
    "sqlite re-sync": 0.80,
    "postgres backfill": 0.40,
    "postgres re-sync": 0.80,
}


@dataclass
class Stage:
    name: str
    records: int
    seconds: float
    cpu_seconds: float  # this process (the pipeline, its prefetch thread and the database driver)
    sandbox_cpu_seconds: float | None  # the sandbox process over the same interval

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def make_config(sandbox: SandboxHandle, db_url: str, page_size: int) -> Config:
    """The product's own configuration for one Prescrypto source reading only its patients stream."""
    return fetch_only.make_config(sandbox.url("/prescrypto"), db_url, page_size, DEFAULT_TOKEN)


def sweep(config: Config, engine: Engine, problems: list[str], label: str, expect_unchanged: bool) -> int:
    """One full sweep of the stream; returns the records fetched, noting wrong counts in ``problems``."""
    [result] = run_sources(config, engine, SWEEP, options=RunOptions())
    c = result.counts
    if result.status != "succeeded":
        raise RuntimeError(f"{label}: the sweep {result.status}: {result.error}")
    if expect_unchanged and (c.inserted or c.updated or c.unchanged != c.fetched - c.quarantined):
        problems.append(f"{label}: expected every record unchanged, got {c.inserted} inserted, {c.updated} updated")
    print(
        f"  {label}: fetched {c.fetched}, inserted {c.inserted}, updated {c.updated}, unchanged {c.unchanged}, "
        f"quarantined {c.quarantined}",
        flush=True,
    )
    return c.fetched


def check_backfill(engine: Engine, patients: int, problems: list[str], label: str) -> None:
    """The patient table must hold every patient of the sandbox except the quarantined ones."""
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM patient")).scalar_one()
        quarantined = conn.execute(text("SELECT count(*) FROM quarantine")).scalar_one()
    ok = stored == patients - quarantined
    print(f"  {label}: {stored} patients stored, {quarantined} quarantined: {'OK' if ok else 'WRONG'}", flush=True)
    if not ok:
        problems.append(f"{label}: {stored} patients stored, expected {patients} - {quarantined} quarantined")


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, from /proc (None where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(name: str, sandbox: SandboxHandle, work: Callable[[], int]) -> Stage:
    """Run ``work`` (which returns a record count) and measure wall time and both processes' CPU."""
    server_before, cpu_before = process_cpu_seconds(sandbox.process.pid), own_cpu_seconds()
    start = time.perf_counter()
    records = work()
    seconds = time.perf_counter() - start
    server_after = process_cpu_seconds(sandbox.process.pid)
    server = None if server_before is None or server_after is None else server_after - server_before
    stage = Stage(name, records, seconds, own_cpu_seconds() - cpu_before, server)
    print(f"  {name}: {records} records in {seconds:.2f}s = {stage.rate:,.0f} records/s", flush=True)
    return stage


@contextmanager
def fresh_pg_database(url: str) -> Iterator[str]:
    """A new empty database on the server of ``url`` (its URL), dropped on exit."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def database_stages(
    sandbox: SandboxHandle, db_url: str, label: str, args: argparse.Namespace, problems: list[str]
) -> list[Stage]:
    """Backfill into an empty database, then re-sync the same (unchanged) records into it."""
    config = make_config(sandbox, db_url, args.page_size)
    engine = open_engine(db_url)
    try:
        migrate(engine)  # not timed: a fresh schema is part of the setup, not of the sync
        backfill = timed(f"{label} backfill", sandbox, lambda: sweep(config, engine, problems, label, False))
        check_backfill(engine, args.patients, problems, f"{label} backfill")
        fetch_config = make_config(sandbox, "sqlite://", args.page_size)
        before = timed(f"{label} re-sync{BESIDE[0]}", sandbox, lambda: fetch_all(fetch_config))
        resync = timed(f"{label} re-sync", sandbox, lambda: sweep(config, engine, problems, label, True))
        after = timed(f"{label} re-sync{BESIDE[1]}", sandbox, lambda: fetch_all(fetch_config))
        return [backfill, before, resync, after]
    finally:
        engine.dispose()


UNLINKED = "sqlite backfill, no linking"
LINKING_COST = 1.30  # a backfill that links may take at most this many times one that does not


def unlinked_backfill(sandbox: SandboxHandle, db_url: str, args: argparse.Namespace, problems: list[str]) -> Stage:
    """The SQLite backfill with identity.link_during_sync off: what linking adds is the difference."""
    config = make_config(sandbox, db_url, args.page_size)
    config = config.model_copy(update={"identity": config.identity.model_copy(update={"link_during_sync": False})})
    engine = open_engine(db_url)
    try:
        migrate(engine)
        return timed(UNLINKED, sandbox, lambda: sweep(config, engine, problems, UNLINKED, False))
    finally:
        engine.dispose()


def one_run(sandbox: SandboxHandle, args: argparse.Namespace, problems: list[str]) -> dict[str, Stage]:
    """The interleaved sequence: ceiling, SQLite, PostgreSQL, ceiling."""
    fetch_config = make_config(sandbox, "sqlite://", args.page_size)
    stages = [timed(CEILING_BEFORE, sandbox, lambda: fetch_all(fetch_config))]
    with tempfile.TemporaryDirectory(prefix="patientsync-bench-") as tmp:
        stages += database_stages(sandbox, f"sqlite:///{tmp}/bench.db", "sqlite", args, problems)
        stages.append(unlinked_backfill(sandbox, f"sqlite:///{tmp}/unlinked.db", args, problems))
    if args.pg_url:
        with fresh_pg_database(args.pg_url) as pg_url:
            stages += database_stages(sandbox, pg_url, "postgres", args, problems)
    stages.append(timed(CEILING_AFTER, sandbox, lambda: fetch_all(fetch_config)))
    for stage in stages:
        if stage.records != args.patients:
            problems.append(f"{stage.name}: {stage.records} records read, the sandbox has {args.patients}")
    return {stage.name: stage for stage in stages}


def summarize(runs: list[dict[str, Stage]]) -> list[dict[str, Any]]:
    """One row per stage: medians over the runs, and the fraction of each run's mean ceiling (of the ceiling
    fetched beside it, for a stage that has one)."""
    ceilings = [(run[CEILING_BEFORE].rate + run[CEILING_AFTER].rate) / 2 for run in runs]
    rows: list[dict[str, Any]] = []
    for name in runs[0]:
        beside = [name + end for end in BESIDE if name + end in runs[0]]
        bounds = [sum(run[b].rate for b in beside) / len(beside) for run in runs] if beside else ceilings
        fractions = [run[name].rate / bound for run, bound in zip(runs, bounds, strict=True)]
        fraction, target = statistics.median(fractions), TARGETS.get(name)
        sandbox_cpu = [s for run in runs if (s := run[name].sandbox_cpu_seconds) is not None]
        rows.append(
            {
                "stage": name,
                "records": runs[0][name].records,
                "seconds": statistics.median(run[name].seconds for run in runs),
                "records_per_s": statistics.median(run[name].rate for run in runs),
                "fraction_of_ceiling": fraction,
                "fractions": fractions,
                "target": target,
                "passed": None if target is None else fraction >= target,
                "cpu_seconds": statistics.median(run[name].cpu_seconds for run in runs),
                "sandbox_cpu_seconds": statistics.median(sandbox_cpu) if len(sandbox_cpu) == len(runs) else None,
            }
        )
    rows.append({"stage": "ceiling (mean)", "records_per_s": statistics.median(ceilings), "fraction_of_ceiling": 1.0})
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    header = f"{'stage':<34}{'records':>9}{'seconds':>9}{'records/s':>11}{'of ceiling':>12}{'target':>8}  {'result':<7}"
    print(header + f"{'cpu s':>8}{'sandbox cpu s':>15}")
    print("-" * (len(header) + 23))
    for row in rows:
        target, passed = row.get("target"), row.get("passed")
        sandbox_cpu = row.get("sandbox_cpu_seconds")
        print(
            f"{row['stage']:<34}"
            + (f"{row['records']:>9}{row['seconds']:>9.2f}" if "records" in row else " " * 18)
            + f"{row['records_per_s']:>11,.0f}{row['fraction_of_ceiling']:>12.3f}"
            + (f"{target:>8.2f}  {'PASS' if passed else 'FAIL':<7}" if target is not None else " " * 17)
            + (f"{row['cpu_seconds']:>8.2f}" if "cpu_seconds" in row else "")
            + (f"{sandbox_cpu:>15.2f}" if sandbox_cpu is not None else "")
        )


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident memory: this process from getrusage, another from /proc (VmHWM)."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000, help="patients in the sandbox (default 100000)")
    parser.add_argument("--page-size", type=int, default=100, help="the source's page_size (default 100)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server for the bench database; '' skips")
    parser.add_argument("--repeat", type=int, default=1, help="run the whole sequence K times, report medians")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    logs.configure(level="WARNING")  # the runner's per-stream INFO lines would interleave with the table

    problems: list[str] = []
    runs: list[dict[str, Stage]] = []
    started = time.perf_counter()
    print(f"starting the sandbox with {args.patients} patients ...", flush=True)
    with running_sandbox(patients=args.patients, medics=40) as sandbox:
        print(f"  up after {time.perf_counter() - started:.1f}s", flush=True)
        timed("warm-up (not counted)", sandbox, lambda: fetch_all(make_config(sandbox, "sqlite://", args.page_size)))
        for k in range(args.repeat):
            print(f"run {k + 1} of {args.repeat}", flush=True)
            runs.append(one_run(sandbox, args, problems))
        sandbox_rss = peak_rss_mb(sandbox.process.pid)
        sandbox_cpu = process_cpu_seconds(sandbox.process.pid)

    rows = summarize(runs)
    print()
    medians = ", medians" if args.repeat > 1 else ""
    print(f"{args.patients} patients, page size {args.page_size}, {args.repeat} run(s){medians}")
    print_table(rows)
    for number, run in enumerate(runs, 1):
        print(f"ceiling run {number}: before {run[CEILING_BEFORE].rate:,.0f}/s, after {run[CEILING_AFTER].rate:,.0f}/s")
    cost = statistics.median(run["sqlite backfill"].seconds / run[UNLINKED].seconds for run in runs)
    verdict = "PASS" if cost <= LINKING_COST else "FAIL"
    print(
        f"linking cost: a linked SQLite backfill takes {cost:.2f}x an unlinked one (target <= {LINKING_COST}) {verdict}"
    )
    own_rss = peak_rss_mb()
    print(f"peak RSS: benchmark {own_rss:.0f} MiB, sandbox {sandbox_rss:.0f} MiB")
    if sandbox_cpu is not None:
        print(f"sandbox CPU, start-up included: {sandbox_cpu:.1f}s")
    figures = {
        "patients": args.patients,
        "page_size": args.page_size,
        "repeat": args.repeat,
        "postgres": bool(args.pg_url),
        "stages": rows,
        "runs": [[{**asdict(stage), "records_per_s": stage.rate} for stage in run.values()] for run in runs],
        "peak_rss_mb": own_rss,
        "sandbox_peak_rss_mb": sandbox_rss,
        "sandbox_cpu_seconds": sandbox_cpu,
    }
    failed = [row["stage"] for row in rows if row.get("passed") is False] + (
        ["linking cost"] if verdict == "FAIL" else []
    )
    return conclude(failed, problems, args.json, {**figures, "linking_cost": cost})


def conclude(failed: list[str], problems: list[str], path: Path | None, figures: dict[str, Any]) -> int:
    """A run's last lines (the missed targets, the correctness problems), its figures written as JSON to
    ``path`` when one is given, and its exit status: 1 when a result was wrong, whatever the targets."""
    print(f"targets missed: {', '.join(failed)}" if failed else "all targets met")
    print("correctness: " + ("; ".join(problems) if problems else "OK"))
    if path:
        figures = {**figures, "targets_missed": failed, "problems": problems}
        path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
