"""Whether linking costs the same per patient as the database grows: two sources of N people each (Prescrypto
and gauges patients, one person in both), swept unlinked, then one link pass over all 2N queued patients.

    python -m benchmarks.link_scaling [--sizes 20000,100000,300000] [--databases sqlite,postgresql] [--pg-url URL]

For each size and database it prints the link pass's seconds and microseconds per patient, and each size's
per-patient cost over the cheapest size's. Target (issue: identity at scale): within 1.3x of each other. The
sweeps are not timed; the machine is noisy, so compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from typing import Any

from sqlalchemy import create_engine, text

from pipeline.app import logs
from pipeline.config import parse
from pipeline.storage.db import migrate, open_engine
from pipeline.sync.linking import link_pending
from pipeline.sync.runner import SWEEP, RunOptions, run_sources
from sandbox import tokens
from sandbox.server import running_sandbox

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET = 1.3


def _measure(url: str, n: int, sandbox_url: str) -> dict[str, Any]:
    sources = {
        "rx": {
            "kind": "prescrypto",
            "base_url": f"{sandbox_url}/prescrypto",
            "token": tokens.PRESCRYPTO,
            "streams": ["patients"],
        },
        "ga": {"kind": "gauges", "base_url": f"{sandbox_url}/gauges", "token": tokens.GAUGES, "streams": ["patients"]},
    }
    config = parse({"database": {"url": url}, "identity": {"link_during_sync": False}, "sources": sources}, {})
    engine = open_engine(url)
    migrate(engine)
    results = run_sources(config, engine, SWEEP, options=RunOptions())
    if not all(r.ok for r in results):
        raise SystemExit(f"sync failed: {[(r.source, r.stream, r.error) for r in results if not r.ok]}")
    start = time.perf_counter()
    stats = link_pending(engine, config.identity)
    seconds = time.perf_counter() - start
    with engine.connect() as conn:
        persons = conn.execute(text("SELECT count(*) FROM person WHERE deleted_at IS NULL")).scalar()
    engine.dispose()
    return {"patients": stats.linked, "persons": persons, "seconds": seconds, "us": 1e6 * seconds / stats.linked}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,100000,300000", help="people per source, comma-separated")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server for the bench databases; '' skips")
    parser.add_argument("--databases", default="sqlite,postgresql", help="which of sqlite, postgresql to measure")
    args = parser.parse_args()
    logs.configure("WARNING", json=False)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            with running_sandbox(patients=n, medics=5) as sandbox:
                targets = [("sqlite", f"sqlite:///{tmp}/link-{n}.db"), ("postgresql", args.pg_url)]
                targets = [(dialect, url) for dialect, url in targets if url and dialect in args.databases.split(",")]
                for dialect, url in targets:
                    name = None
                    if dialect == "postgresql":
                        name = f"bench_{uuid.uuid4().hex[:8]}"
                        admin = create_engine(url, isolation_level="AUTOCOMMIT")
                        with admin.connect() as conn:
                            conn.execute(text(f"CREATE DATABASE {name}"))
                        url = url.rsplit("/", 1)[0] + f"/{name}"
                    try:
                        figure = _measure(url, n, sandbox.url())
                    finally:
                        if name:
                            with admin.connect() as conn:
                                conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
                            admin.dispose()
                    rows.append({"dialect": dialect, "size": n, **figure})
                    print(f"  {dialect} {n}: {figure}", file=sys.stderr)
    print(f"{'database':10} {'people':>8} {'patients':>8} {'persons':>8} {'link s':>8} {'us/patient':>10} {'ratio':>6}")
    worst = 0.0
    for r in rows:
        ratio = r["us"] / min(b["us"] for b in rows if b["dialect"] == r["dialect"])
        worst = max(worst, ratio)
        print(
            f"{r['dialect']:10} {r['size']:8} {r['patients']:8} {r['persons']:8} {r['seconds']:8.1f} "
            f"{r['us']:10.0f} {ratio:6.2f}"
        )
    print(f"target: per-patient cost within {TARGET}x of the cheapest size: {'met' if worst <= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
