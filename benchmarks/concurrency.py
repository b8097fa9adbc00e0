"""How much the concurrency bound buys where a sync makes one request per record: Particle's detail GETs and
gauges' per-patient readings, against a server that takes ``--delay`` seconds to answer each of them.

    python -m benchmarks.concurrency                     # 400 patients, 50 ms per request, concurrency 1 and 8
    python -m benchmarks.concurrency --patients 1000 --delay 0.02 --concurrency 1 4 8 16

Each stage is a full sweep of the stream into a new SQLite file. Two figures: the speedup over concurrency 1
in the same run (a ratio, so the machine's speed mostly cancels out), and the records per second as a fraction
of the ideal, concurrency / delay (every request in flight all the time; for gauges, requests are counted:
one per patient, however many readings it answers). The target asks for 0.8 of the
ideal at concurrency 8. Exit status 1 when a stage lands the wrong number of records or the target is
missed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.app import logs
from pipeline.config import parse
from pipeline.storage.db import migrate, open_engine
from pipeline.sync.runner import SWEEP, RunOptions, run_sources
from sandbox.server import SandboxHandle, running_sandbox

TARGET_OF_IDEAL_AT_8 = 0.8  # records/s over concurrency / delay
PER_RECORD_PATH = {"particle": "/particle/api/v1/patients/", "gauges": "/gauges/v1/patients/"}


def sources(sandbox: SandboxHandle, kind: str, concurrency: int) -> dict[str, Any]:
    common = {"base_url": sandbox.url(f"/{kind}"), "concurrency": concurrency, "page_size": 100}
    if kind == "particle":
        return {"pa": {"kind": "particle", "token": "sandbox-particle", **common}}
    return {"ga": {"kind": "gauges", "token": "sandbox-gauges", "streams": ["patients", "gauges"], **common}}


def sweep(sandbox: SandboxHandle, kind: str, concurrency: int, delay: float, directory: Path) -> tuple[float, int]:
    """(seconds of the per-record stream, records it fetched), into a fresh SQLite file."""
    url = f"sqlite:///{directory}/{kind}-{concurrency}.db"
    config = parse({"database": {"url": url}, "sources": sources(sandbox, kind, concurrency)}, {})
    engine = open_engine(url)
    migrate(engine)
    if kind == "gauges":  # the parents first, without the delay: only the fan-out is measured
        run_sources(
            config.model_copy(
                update={"sources": {"ga": config.sources["ga"].model_copy(update={"streams": ["patients"]})}}
            ),
            engine,
            SWEEP,
        )
        config = config.model_copy(
            update={"sources": {"ga": config.sources["ga"].model_copy(update={"streams": ["gauges"]})}}
        )
    sandbox.faults({"path": PER_RECORD_PATH[kind], "delay": delay, "times": None})
    started = time.perf_counter()
    (result,) = run_sources(config, engine, SWEEP, options=RunOptions())
    seconds = time.perf_counter() - started
    sandbox.clear_faults()
    engine.dispose()
    if result.status != "succeeded":
        raise SystemExit(f"{kind} at concurrency {concurrency}: {result.status}: {result.error}")
    return seconds, result.counts.fetched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds the server takes per record request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args(argv)
    logs.configure("WARNING", json=False)
    levels = sorted(set([1, *args.concurrency]))
    failed = False
    header = f"{'stream':<18}{'concurrency':>12}{'records':>9}{'seconds':>9}{'speedup':>9}{'of ideal':>9}{'target':>8}"
    print(f"{header}  result")
    with running_sandbox(patients=args.patients, medics=1) as sandbox, tempfile.TemporaryDirectory() as tmp:
        for kind in ("particle", "gauges"):
            base = None
            fetched_at_1 = None
            for level in levels:
                seconds, fetched = sweep(sandbox, kind, level, args.delay, Path(tmp))
                base = base or seconds
                fetched_at_1 = fetched_at_1 if fetched_at_1 is not None else fetched
                speedup = base / seconds
                requests = fetched if kind == "particle" else args.patients  # gauges: one GET a patient
                of_ideal = requests / seconds / (level / args.delay)
                target = TARGET_OF_IDEAL_AT_8 if level == 8 else None
                ok = fetched == fetched_at_1 and (target is None or of_ideal >= target)
                failed |= not ok
                name = "particle details" if kind == "particle" else "gauges readings"
                print(
                    f"{name:<18}{level:>12}{fetched:>9}{seconds:>9.2f}{speedup:>9.2f}{of_ideal:>9.2f}"
                    f"{'' if target is None else f'{target:.1f}':>8}  {'ok' if ok else 'FAIL'}"
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
