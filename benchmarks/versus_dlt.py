"""patientsync against dlt's `rest_api` source, side by side, against one sandbox (see benchmarks/README.md).

    python -m benchmarks.versus_dlt [--patients 100000] [--page-size 100] [--delay 0.05]
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--skip-dlt-pg] [--skip-delay] [--json PATH]

Every measurement is the wall time of one whole process (imports and start-up included), started from here
with nothing warm in it: the fetch-only ceiling (benchmarks.fetch_only), ``patientsync backfill`` (its CLI)
and a dlt pipeline (benchmarks/dlt_load.py), each into a database of its own. Stages: ceiling; SQLite backfill
and re-sync of the unchanged data, each tool; the same into PostgreSQL; ceiling again; and a SQLite backfill
with every listing request delayed (``--delay``), each tool. patientsync's re-syncs are measured against a
ceiling taken just before and just after each (this machine's speed drifts over a run). Needs dlt:
``pip install -e '.[bench]'``.

Exit status 1 when a result is wrong (a tool's tables do not hold exactly the sandbox's patients after a
backfill or a re-sync, or a process failed); missed targets are reported, not failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks import dlt_load
from benchmarks.fetch_only import SOURCE, STREAM, prescrypto_source
from benchmarks.throughput import DEFAULT_PG_URL, conclude, fresh_pg_database, process_cpu_seconds
from sandbox.prescrypto import DEFAULT_TOKEN
from sandbox.server import SandboxHandle, running_sandbox

ROOT = Path(__file__).resolve().parent.parent  # the checkout whose code the children import
PATIENTS_PATH = "/prescrypto/api/v2/patient/"
INSTALL_HINT = "dlt is not installed: pip install -e '.[bench]'  (the optional extra: dlt[sqlalchemy,postgres])"

CEILING, PATIENTSYNC, DLT = "fetch-only", "patientsync", "dlt"
CEILING_BEFORE, CEILING_AFTER = "ceiling (before)", "ceiling (after)"
# A stage compared with its own ceiling, fetched just before and just after it: a re-sync costs about as much
# as fetching, so a ceiling taken minutes away, at another speed of the machine, says nothing about it (one run
# saw the ceiling fall from 53,097 to 29,538 records/s between its two ends).
BESIDE = (": ceiling before", ": ceiling after")
STARTUP = {  # what each kind of process imports before its first request
    CEILING: "import benchmarks.fetch_only",
    PATIENTSYNC: "import pipeline.app.cli, pipeline.sync.runner",  # the CLI imports the runner only to run
    DLT: "import dlt, dlt.sources.rest_api",
}
# stage -> (what is compared, at least): "dlt" is patientsync's rate over dlt's in the same stage, "ceiling" its
# fraction of the fetch-only ceiling, "sequential" its rate over page_size / delay (one request at a time).
TARGETS = {
    "sqlite backfill": ("dlt", 1.5),
    "postgres backfill": ("dlt", 1.5),
    "sqlite re-sync": ("ceiling", 0.5),
    "postgres re-sync": ("ceiling", 0.4),
    "sqlite backfill, delayed": ("sequential", 5.0),
}


@dataclass
class Run:
    """One process: a tool doing one stage."""

    stage: str
    tool: str
    records: int
    seconds: float
    cpu_seconds: float  # the child's user + system CPU (its threads and any children it waited for)
    peak_rss_mb: float
    sandbox_cpu_seconds: float | None
    steps: dict[str, float] | None = None  # dlt's own timing of its extract, normalize and load steps

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


class Bench:
    """The sandbox, the scratch directory, and every run so far; ``problems`` collects wrong results."""

    def __init__(self, sandbox: SandboxHandle, tmp: Path, args: argparse.Namespace) -> None:
        self.sandbox, self.tmp, self.args = sandbox, tmp, args
        self.runs: list[Run] = []
        self.problems: list[str] = []

    def child(self, stage: str, tool: str, command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
        """Run one process to its end and record its wall time, CPU and peak memory; returns its stdout."""
        name = f"{len(self.runs):02d}-{stage}-{tool}".replace(" ", "_").replace(",", "")
        out_path, err_path = self.tmp / f"{name}.out", self.tmp / f"{name}.err"
        server_before = process_cpu_seconds(self.sandbox.process.pid)
        with out_path.open("w") as out, err_path.open("w") as err:
            start = time.perf_counter()
            process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            _, status, usage = os.wait4(process.pid, 0)  # wait4: this child's own rusage, not all children's
            seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        server_after = process_cpu_seconds(self.sandbox.process.pid)
        stdout = out_path.read_text()
        if process.returncode != 0:
            tail = err_path.read_text()[-2000:]
            raise RuntimeError(f"{stage} ({tool}): exit status {process.returncode}\n{tail}")
        server = None if server_before is None or server_after is None else server_after - server_before
        self.runs.append(Run(stage, tool, 0, seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, server))
        return stdout

    def counted(self, records: int) -> Run:
        """Give the last run its record count and print it."""
        run = self.runs[-1]
        run.records = records
        if records != self.args.patients:
            self.problems.append(
                f"{run.stage} ({run.tool}): {records} records read, the sandbox has {self.args.patients}"
            )
        print(
            f"  {run.stage:<34}{run.tool:<12} {records} records in {run.seconds:.2f}s = {run.rate:,.0f} records/s",
            flush=True,
        )
        return run

    def startup(self) -> None:
        """Each tool's imports alone, for reading the other figures: every stage pays them once."""
        for tool, code in STARTUP.items():
            self.child("start-up (imports)", tool, [sys.executable, "-c", code], ROOT)
            print(f"  start-up (imports)        {tool:<12} {self.runs[-1].seconds:.2f}s", flush=True)

    # the three kinds of process

    def fetch_only(self, stage: str) -> Run:
        command = [sys.executable, "-m", "benchmarks.fetch_only", self.sandbox.url("/prescrypto")]
        stdout = self.child(stage, CEILING, [*command, "--page-size", str(self.args.page_size)], ROOT)
        return self.counted(int(stdout.split()[-1]))

    def patientsync(self, stage: str, db_url: str, config_path: Path, resync: bool) -> Run:
        """``patientsync backfill`` as a user runs it, then the check of what it stored."""
        if not config_path.exists():
            source = prescrypto_source(
                self.sandbox.url("/prescrypto"), self.args.page_size, DEFAULT_TOKEN, concurrency=self.args.concurrency
            )
            config = {"database": {"url": db_url}, "sources": {SOURCE: source}}
            config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        cli = [sys.executable, "-m", "pipeline", "--config", str(config_path), "--log-level", "WARNING"]
        self.child(stage, PATIENTSYNC, [*cli, "backfill"], ROOT)
        return self.counted(self.check_patientsync(stage, db_url, resync))

    def dlt(self, stage: str, destination: str, credentials: str, workdir: Path) -> Run:
        """One run of the dlt pipeline whose state lives in ``workdir``, then the check of its table."""
        workdir.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "DLT_DATA_DIR": str(workdir / "data"),  # dlt's global data (else ~/.dlt or /var/dlt)
            "DLT_PROJECT_DIR": str(workdir),  # where it looks for .dlt/config.toml: none, so only the arguments
            "RUNTIME__DLTHUB_TELEMETRY": "false",
        }
        command = [sys.executable, str(Path(dlt_load.__file__)), "--base-url", self.sandbox.url("/prescrypto")]
        command += ["--token", DEFAULT_TOKEN, "--page-size", str(self.args.page_size)]
        command += ["--destination", destination, "--credentials", credentials]
        command += ["--pipelines-dir", str(workdir / "pipelines"), "--global-dir", str(workdir / "global")]
        if self.args.dlt_primary_keys and destination == "sqlalchemy":
            command.append("--create-primary-keys")
        stdout = self.child(stage, DLT, command, workdir, env)
        summary = json.loads(stdout.strip().splitlines()[-1])
        self.check_dlt(stage, destination, credentials)
        steps = summary.get("steps", {})
        print("    dlt steps: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in steps.items()), flush=True)
        run = self.counted(summary["row_counts"].get(dlt_load.RESOURCE, 0))
        run.steps = steps
        return run

    # the checks

    def check_patientsync(self, stage: str, db_url: str, resync: bool) -> int:
        """Exactly N live patients and N source records, nothing quarantined; a re-sync changed nothing.
        Returns the records the run fetched (from its sync_run row)."""
        n = self.args.patients
        engine = create_engine(db_url)
        try:
            with engine.connect() as conn:
                patients = conn.execute(text("SELECT count(*) FROM patient WHERE deleted_at IS NULL")).scalar_one()
                records = conn.execute(
                    text("SELECT count(DISTINCT source_key) FROM source_record WHERE source = :s AND stream = :t"),
                    {"s": SOURCE, "t": STREAM},
                ).scalar_one()
                quarantined = conn.execute(text("SELECT count(*) FROM quarantine")).scalar_one()
                run = conn.execute(
                    text("SELECT status, fetched, inserted, updated FROM sync_run ORDER BY id DESC LIMIT 1")
                ).one()
        finally:
            engine.dispose()
        wrong = []
        if (patients, records, quarantined) != (n, n, 0):
            wrong.append(f"{patients} patients, {records} source records, {quarantined} quarantined (expected {n})")
        if run.status != "succeeded":
            wrong.append(f"the run {run.status}")
        if resync and (run.inserted or run.updated):
            wrong.append(f"a re-sync of unchanged data inserted {run.inserted} and updated {run.updated}")
        if wrong:
            self.problems.append(f"{stage} (patientsync): " + "; ".join(wrong))
        print(
            f"    patientsync: {patients} patients, {records} source records, {quarantined} quarantined; "
            f"run fetched {run.fetched}, inserted {run.inserted}, updated {run.updated}: "
            + ("WRONG" if wrong else "OK"),
            flush=True,
        )
        return int(run.fetched)

    def check_dlt(self, stage: str, destination: str, credentials: str) -> None:
        """dlt's table for the resource holds exactly N rows, N distinct ``uid``s."""
        table = dlt_load.RESOURCE
        if destination == "sqlalchemy":  # a dataset on SQLite is a database file of its own beside the main one
            main = Path(make_url(credentials).database or "")
            url = f"sqlite:///{main.with_name(f'{main.stem}__{dlt_load.DATASET}{main.suffix}')}"
        else:
            url, table = pg_url_for_sqlalchemy(credentials), f'"{dlt_load.DATASET}".{table}'
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                rows, distinct = conn.execute(text(f"SELECT count(*), count(DISTINCT uid) FROM {table}")).one()
        finally:
            engine.dispose()
        ok = rows == distinct == self.args.patients
        if not ok:
            self.problems.append(f"{stage} (dlt): {rows} rows, {distinct} distinct uids, expected {self.args.patients}")
        print(f"    dlt: {rows} rows, {distinct} distinct uids: {'OK' if ok else 'WRONG'}", flush=True)


def pg_url_for_dlt(url: str) -> str:
    """dlt's postgres destination takes a plain postgresql:// URL (it connects with psycopg2), and insists on a
    password: a server that trusts the connection never asks for it, so a URL without one gets a placeholder."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql", password=parsed.password or "unused").render_as_string(
        hide_password=False
    )


def pg_url_for_sqlalchemy(url: str) -> str:
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def database_stages(bench: Bench, label: str, ps_url: str, dlt_destination: str, dlt_url: str | None) -> None:
    """Backfill into an empty database, then the same again over the unchanged data: each tool."""
    config_path, workdir = bench.tmp / f"{label}-patientsync.yaml", bench.tmp / f"{label}-dlt"
    bench.patientsync(f"{label} backfill", ps_url, config_path, resync=False)
    if dlt_url is not None:
        bench.dlt(f"{label} backfill", dlt_destination, dlt_url, workdir)
    bench.fetch_only(f"{label} re-sync{BESIDE[0]}")
    bench.patientsync(f"{label} re-sync", ps_url, config_path, resync=True)
    bench.fetch_only(f"{label} re-sync{BESIDE[1]}")
    if dlt_url is not None:
        bench.dlt(f"{label} re-sync", dlt_destination, dlt_url, workdir)


def run_all(bench: Bench) -> None:
    args, tmp = bench.args, bench.tmp
    bench.fetch_only("warm-up (not counted)")
    bench.runs.pop()
    bench.startup()
    bench.fetch_only(CEILING_BEFORE)
    database_stages(bench, "sqlite", f"sqlite:///{tmp}/patientsync.db", "sqlalchemy", f"sqlite:///{tmp}/dlt.db")
    if args.pg_url:
        with ExitStack() as stack:
            ps_url = stack.enter_context(fresh_pg_database(args.pg_url))
            dlt_url = None if args.skip_dlt_pg else pg_url_for_dlt(stack.enter_context(fresh_pg_database(args.pg_url)))
            database_stages(bench, "postgres", ps_url, "postgres", dlt_url)
    bench.fetch_only(CEILING_AFTER)
    if args.delay > 0:
        stage = "sqlite backfill, delayed"
        bench.sandbox.faults({"path": PATIENTS_PATH, "delay": args.delay, "times": None})
        try:
            bench.patientsync(stage, f"sqlite:///{tmp}/delayed-patientsync.db", tmp / "delayed.yaml", resync=False)
            bench.dlt(stage, "sqlalchemy", f"sqlite:///{tmp}/delayed-dlt.db", tmp / "delayed-dlt")
        finally:
            bench.sandbox.clear_faults()


def compare(runs: list[Run], args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per stage both tools ran: their rates, patientsync's over dlt's, each over its ceiling."""
    rate = {(run.stage, run.tool): run.rate for run in runs}

    def ceiling_of(*stages: str) -> float | None:
        found = [rate[(stage, CEILING)] for stage in stages if (stage, CEILING) in rate]
        return sum(found) / len(found) if found else None

    run_ceiling = ceiling_of(CEILING_BEFORE, CEILING_AFTER) or 0.0
    sequential = args.page_size / args.delay if args.delay > 0 else 0.0
    rows = []
    for stage in dict.fromkeys(run.stage for run in runs if run.tool == PATIENTSYNC and run.records):
        ours, theirs = rate[(stage, PATIENTSYNC)], rate.get((stage, DLT))
        delayed = stage.endswith("delayed")
        beside = ceiling_of(*(stage + end for end in BESIDE))
        bound = sequential if delayed else beside or run_ceiling
        measure, at_least = TARGETS.get(stage, (None, None))
        value = {"dlt": None if theirs is None else ours / theirs, "ceiling": ours / bound, "sequential": ours / bound}
        achieved = None if measure is None else value[measure]
        rows.append(
            {
                "stage": stage,
                "patientsync_per_s": ours,
                "dlt_per_s": theirs,
                "patientsync_over_dlt": value["dlt"],
                "bound": "sequential" if delayed else "ceiling beside" if beside else "ceiling",
                "bound_per_s": bound,
                "patientsync_of_bound": ours / bound,
                "dlt_of_bound": None if theirs is None else theirs / bound,
                "target": None if measure is None else {"measure": measure, "at_least": at_least},
                "passed": None if achieved is None else achieved >= (at_least or 0),
            }
        )
    return rows


def print_runs(runs: list[Run]) -> None:
    header = f"{'stage':<34}{'tool':<13}{'records':>8}{'seconds':>9}{'records/s':>11}{'cpu s':>8}{'peak MiB':>10}"
    print(header + f"{'sandbox cpu s':>15}")
    print("-" * (len(header) + 15))
    for run in runs:
        sandbox = "" if run.sandbox_cpu_seconds is None else f"{run.sandbox_cpu_seconds:>15.2f}"
        print(
            f"{run.stage:<34}{run.tool:<13}{run.records:>8}{run.seconds:>9.2f}{run.rate:>11,.0f}"
            f"{run.cpu_seconds:>8.2f}{run.peak_rss_mb:>10.0f}{sandbox}"
        )


def print_comparison(rows: list[dict[str, Any]]) -> None:
    def cell(value: float | None, spec: str, width: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"

    header = f"{'stage':<26}{'patientsync/s':>14}{'dlt/s':>9}{'ps/dlt':>8}  {'bound':<15}{'bound/s':>8}"
    header += f"{'ps of':>7}{'dlt of':>8}  {'target':<20}result"
    print(header)
    print("-" * len(header))
    for row in rows:
        target = row["target"]
        wanted = "" if target is None else f"{target['measure']} >= {target['at_least']:.2f}"
        result = "" if row["passed"] is None else ("PASS" if row["passed"] else "FAIL")
        print(
            f"{row['stage']:<26}{row['patientsync_per_s']:>14,.0f}{cell(row['dlt_per_s'], ',.0f', 9)}"
            f"{cell(row['patientsync_over_dlt'], '.2f', 8)}  {row['bound']:<15}{row['bound_per_s']:>8,.0f}"
            f"{row['patientsync_of_bound']:>7.3f}{cell(row['dlt_of_bound'], '.3f', 8)}  {wanted:<20}{result}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.versus_dlt", description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000, help="patients in the sandbox (default 100000)")
    parser.add_argument("--page-size", type=int, default=100, help="limit of each request, both tools (default 100)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server for scratch databases; '' skips")
    parser.add_argument("--skip-dlt-pg", action="store_true", help="run patientsync's PostgreSQL stages only")
    parser.add_argument(
        "--dlt-primary-keys",
        action="store_true",
        help="dlt's sqlalchemy destination declares uid the primary key (not its default; its SQLite merge needs it)",
    )
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per listing request, last stage; 0 skips")
    parser.add_argument("--concurrency", type=int, default=8, help="patientsync's concurrency setting (default 8)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("dlt") is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2

    started = time.perf_counter()
    print(f"starting the sandbox with {args.patients} patients ...", flush=True)
    with (
        running_sandbox(patients=args.patients, medics=40) as sandbox,
        tempfile.TemporaryDirectory(prefix="patientsync-vs-dlt-") as tmp,
    ):
        print(f"  up after {time.perf_counter() - started:.1f}s", flush=True)
        bench = Bench(sandbox, Path(tmp), args)
        try:
            run_all(bench)
        except RuntimeError as exc:
            bench.problems.append(str(exc))
            print(f"  {exc}", file=sys.stderr, flush=True)

    runs, problems = bench.runs, bench.problems
    print()
    keys = ", dlt's SQLite tables with a primary key" if args.dlt_primary_keys else ""
    print(f"{args.patients} patients, page size {args.page_size}, each stage one whole process{keys}")
    print_runs(runs)
    rows = compare(runs, args) if any(run.stage == CEILING_BEFORE for run in runs) else []
    print()
    print_comparison(rows)
    ceilings = [run for run in runs if run.tool == CEILING and run.records]
    print(
        "ceiling: "
        + ", ".join(f"{run.stage.removeprefix('ceiling ').strip('()')} {run.rate:,.0f}/s" for run in ceilings)
        + (f"; sequential at {args.delay:g} s a request: {args.page_size / args.delay:,.0f}/s" if args.delay else "")
    )
    figures = {
        "patients": args.patients,
        "page_size": args.page_size,
        "delay": args.delay,
        "concurrency": args.concurrency,
        "dlt_primary_keys": args.dlt_primary_keys,
        "runs": [{**asdict(run), "records_per_s": run.rate} for run in runs],
        "comparison": rows,
    }
    return conclude([row["stage"] for row in rows if row["passed"] is False], problems, args.json, figures)


if __name__ == "__main__":
    sys.exit(main())
