"""How long the steward's console takes to serve its pages with a thousand possible matches waiting.

The demo's database (``patientsync demo``: the sandbox's noisy people in all four APIs) is made with
``identity.match_threshold: 1.0``, so that nearly every pair the linker would join waits for review instead: the
queue a steward meets on a large first backfill. The console is served as ``patientsync console`` serves it
(uvicorn on 127.0.0.1), and each page is fetched over HTTP ``--repeat`` times: the queue's first, middle and last
pages, the queue filtered by source, the compare page and the person page of ``--sample`` possible matches, and
the streams page. The median and the slowest fetch of each are printed beside the target (300 ms a page); the
target is absolute, so it is printed, never asserted.

    .venv/bin/python -m benchmarks.console_pages [--patients 400] [--repeat 5] [--sample 20] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import create_engine, text

from pipeline import config as config_file
from pipeline.app import logs
from pipeline.app.demo import demo_config, run_demo
from pipeline.app.web.serve import ConsoleServer
from pipeline.storage.db import migrate, open_engine
from pipeline.sync.runner import RunOptions

from .startup import ROOT

TARGET_MS = 300.0


@contextmanager
def _database(dialect: str, pg_url: str, folder: str) -> Iterator[str]:
    if dialect == "sqlite":
        yield f"sqlite:///{folder}/console.db"
        return
    name = f"bench_console_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _measure(url: str, patients: int, repeat: int, sample: int) -> None:
    config = config_file.load(ROOT / "config.yaml", environ={})
    config = config.model_copy(update={"identity": config.identity.model_copy(update={"match_threshold": 1.0})})
    engine = open_engine(url)
    migrate(engine)
    results, _ = run_demo(config, engine, patients, RunOptions())
    assert all(r.ok for r in results), [(r.source, r.stream, r.error) for r in results]
    with engine.connect() as conn:
        reviews = [
            tuple(row)
            for row in conn.execute(
                text("SELECT id, patient_id FROM identity_link WHERE status = 'possible_match' ORDER BY id")
            )
        ]
    pages = -(-len(reviews) // 50)
    print(f"{engine.dialect.name}: {len(reviews)} open possible matches ({pages} queue pages)", flush=True)
    chosen = random.Random(1).sample(reviews, min(sample, len(reviews)))
    served = demo_config(config, "http://127.0.0.1")
    served = served.model_copy(update={"database": served.database.model_copy(update={"url": url})})
    stages = [
        ("queue, first page", ["/review"]),
        ("queue, middle page", [f"/review?page={max(1, pages // 2)}"]),
        ("queue, last page", [f"/review?page={pages}"]),
        ("queue, one source", ["/review?source=demo-particle"]),
        ("compare", [f"/review/{link_id}" for link_id, _ in chosen]),
        ("person", [f"/person/{patient_id}" for _, patient_id in chosen]),
        ("streams", ["/streams"]),
        ("bulk preview, all", ["/review/bulk?action=reject&low=0&high=1"]),
    ]
    with (
        ConsoleServer(served, engine, "127.0.0.1", 0, "bench") as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as client,
    ):
        client.get("/review").raise_for_status()  # templates compiled, connections open
        print(f"  {'page':22} {'fetches':>7} {'median ms':>10} {'slowest ms':>11}  target {TARGET_MS:.0f} ms")
        for label, paths in stages:
            times = []
            for _ in range(repeat):
                for path in paths:
                    start = time.perf_counter()
                    client.get(path).raise_for_status()
                    times.append(1000 * (time.perf_counter() - start))
            median, slowest = statistics.median(times), max(times)
            verdict = "ok" if median <= TARGET_MS else "SLOW"
            print(f"  {label:22} {len(times):7} {median:10.1f} {slowest:11.1f}  {verdict}", flush=True)
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=400, help="sandbox people per API")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sample", type=int, default=20, help="possible matches whose compare and person pages")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test", help="'' skips")
    args = parser.parse_args()
    logs.configure("WARNING", json=False)
    with tempfile.TemporaryDirectory() as folder:
        for dialect in ("sqlite", "postgresql") if args.pg_url else ("sqlite",):
            with _database(dialect, args.pg_url, folder) as url:
                _measure(url, args.patients, args.repeat, args.sample)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
