"""What ``export fhir`` costs against dumping the same rows as plain JSON lines (target: at most 2x), its rate,
and whether its memory grows with the tables.

The database is filled by the real pipeline: the sandbox with N patients per API (noise on, as in the demo),
swept by the sources of ``config.yaml`` (four APIs, six streams) into SQLite, or PostgreSQL with ``--pg-url``.
Then, alternating, ``--repeat`` times each:

- dump: the rows the export reads (person, medic, organization and observation rows, in the same chunks by id
  in one read transaction, with each chunk's crosswalk identifiers, and for persons their patients and care
  links) written as orjson lines;
- export: ``export_fhir`` into a fresh directory (no validation, as the command runs by default).

The medians and their ratio are printed, with the export's resources per second. For each size given to
``--patients`` the export's peak traced memory (tracemalloc, a separate pass) is printed too: flat memory means
the same peak at every size.

    .venv/bin/python -m benchmarks.export [--patients 500,2000] [--repeat 3] [--pg-url URL] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import make_url

from pipeline import config as config_file
from pipeline.app.demo import run_demo
from pipeline.export.bulk import ExportRequest, export_fhir, snapshot
from pipeline.storage import export as store
from pipeline.storage.db import migrate, open_engine
from pipeline.sync.runner import RunOptions
from tests.support import server_objects

ROOT = Path(__file__).resolve().parent.parent
TARGET = 2.0  # an export may cost at most this many times the plain dump


def dump(engine: Any, out: Path, related: bool = True) -> int:
    """The rows the export reads, as JSON lines: each table's rows in the same chunks, with their crosswalk rows
    (for a person, its live patients' rows, and their care-team links). What an export costs beyond this is
    building the FHIR resources. ``related=False`` dumps the tables' own rows and their own crosswalk rows only
    (for persons, none), a narrower floor."""
    lines = 0
    with snapshot(engine) as conn, (out / "rows.ndjson").open("wb") as f:
        for listing in store.LISTINGS.values():
            for chunk in listing.chunks(conn, None):
                ids = [row["id"] for row in chunk]
                extra: list[Any] = []
                if listing.entity_type == "patient" and related:
                    members = store.members(conn, ids)
                    extra = [members, *store.care_links(conn, list(members))]
                    found = store.entity_identifiers(conn, "patient", list(members))
                else:
                    found = store.entity_identifiers(conn, listing.entity_type, ids)
                for row in [*chunk, *extra, *found.items()]:
                    f.write(orjson.dumps(row, default=str, option=orjson.OPT_NON_STR_KEYS))
                    f.write(b"\n")
                    lines += 1
    return lines


def fill(url: str, patients: int) -> Any:
    config = config_file.load(ROOT / "config.yaml", environ={})
    engine = open_engine(url)
    migrate(engine)
    started = time.perf_counter()
    results, _ = run_demo(config, engine, patients, RunOptions())
    assert all(r.ok for r in results), [(r.source, r.stream, r.error) for r in results]
    print(f"  filled by the pipeline in {time.perf_counter() - started:.1f} s", flush=True)
    return engine


def _seconds(work: Any) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        work(Path(tmp))
        return time.perf_counter() - started


def measure(engine: Any, repeat: int) -> dict[str, Any]:
    dumps, narrow, exports = [], [], []
    for _ in range(repeat):
        dumps.append(_seconds(lambda out: dump(engine, out)))
        narrow.append(_seconds(lambda out: dump(engine, out, related=False)))
        exports.append(_seconds(lambda out: export_fhir(engine, ExportRequest(out))))
    with tempfile.TemporaryDirectory() as tmp:
        tracemalloc.start()
        manifest = export_fhir(engine, ExportRequest(Path(tmp))).manifest
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    resources = sum(entry["count"] for entry in manifest["output"])
    dump_s, narrow_s, export_s = statistics.median(dumps), statistics.median(narrow), statistics.median(exports)
    return {
        "resources": resources,
        "dump_s": dump_s,
        "narrow_dump_s": narrow_s,
        "export_s": export_s,
        "ratio": export_s / dump_s,
        "ratio_to_narrow": export_s / narrow_s,
        "resources_per_s": resources / export_s,
        "peak_mib": peak / 2**20,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", default="500,2000", help="comma-separated sizes (patients per API)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", default="", help="a PostgreSQL server to measure on instead of SQLite")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    failed = False
    for patients in (int(n) for n in args.patients.split(",")):
        print(f"{patients} patients per API", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            if args.pg_url:
                name = f"patientsync_bench_{uuid.uuid4().hex[:12]}"
                created, dropped = [f'CREATE DATABASE "{name}"'], [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)']
                with server_objects(args.pg_url, created, dropped):
                    engine = fill(make_url(args.pg_url).set(database=name).render_as_string(False), patients)
                    result = measure(engine, args.repeat)
                    engine.dispose()
            else:
                result = measure(fill(f"sqlite:///{tmp}/export.db", patients), args.repeat)
        verdict = "ok" if result["ratio"] <= TARGET else "FAIL"
        failed |= verdict == "FAIL"
        print(
            f"  {result['resources']:,} resources: export {result['export_s']:.2f} s, "
            f"{result['resources_per_s']:,.0f} resources/s; dump of the same rows {result['dump_s']:.2f} s: "
            f"{result['ratio']:.2f}x (target <= {TARGET}) {verdict}; dump of the tables' own rows "
            f"{result['narrow_dump_s']:.2f} s: {result['ratio_to_narrow']:.2f}x; "
            f"export peak traced memory {result['peak_mib']:.1f} MiB",
            flush=True,
        )
        figures[str(patients)] = result
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
