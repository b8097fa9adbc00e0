"""Offset and page-number listings are requested several pages ahead, and still taken strictly in order."""

from __future__ import annotations

from typing import Any

from pipeline.sync.runner import INCREMENTAL, SWEEP
from tests.support import (
    by_stream,
    count,
    engine_for,
    gauges_source,
    make_config,
    prescrypto_source,
    rows,
    run,
    source_patients,
)

PATIENTS = "/prescrypto/api/v2/patient/"


def _live(engine: Any) -> set[str]:
    return {r["k"] for r in rows(engine, "SELECT source_key AS k FROM source_record WHERE deleted_at IS NULL")}


def test_pages_are_requested_ahead_within_concurrency_and_land_exactly_once(sandbox, db_url):
    sandbox.faults([{"path": PATIENTS, "delay": 0.05, "times": None}])  # every page takes 50 ms
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=20, concurrency=8)})
    engine = engine_for(config)
    sandbox.client.delete("/_sandbox/stats")
    result = by_stream(run(config, engine, SWEEP, commit_records=1000))["rx/patients"]
    assert (result.status, result.counts.fetched, result.counts.inserted) == ("succeeded", 230, 230)
    stats = sandbox.stats()
    assert 2 <= stats["max_in_flight"] <= 8  # ahead, and never beyond the source's concurrency
    pages = -(-(230 - 20) // 19) + 1  # the first page, then 19 new records a page
    assert pages + 1 <= stats["total"] <= pages + 1 + 8  # at most a window's worth asked past the end
    sandbox.clear_faults()
    again = by_stream(run(config, engine, INCREMENTAL))["rx/patients"]
    assert (again.counts.fetched, again.counts.inserted) == (0, 0)


def test_a_listing_that_shifts_is_noticed_although_its_pages_were_requested_ahead(sandbox, db_url):
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=20, concurrency=8)})
    engine = engine_for(config)
    run(config, engine, SWEEP)
    doomed = source_patients(sandbox)[:3]
    done = []

    def delete_early_records_after_the_first_commit(source, stream, fetched, total):
        if not done:
            for patient in doomed:
                sandbox.client.delete(f"/_sandbox/prescrypto/patients/{patient['id']}")
            done.append(True)

    sandbox.faults([{"path": PATIENTS, "delay": 0.02, "times": None}])
    result = by_stream(run(config, engine, SWEEP, progress=delete_early_records_after_the_first_commit))["rx/patients"]
    assert result.status == "succeeded" and result.deleted == 3
    sandbox.clear_faults()
    assert _live(engine) == {p["uid"] for p in source_patients(sandbox)}


def test_a_page_number_listing_is_requested_ahead_too(sandbox, sqlite_url):
    sandbox.faults([{"path": "/gauges/v1/patients", "delay": 0.05, "times": None}])
    config = make_config(sqlite_url, {"ga": gauges_source(sandbox, streams=["patients"], page_size=20, concurrency=6)})
    engine = engine_for(config)
    sandbox.client.delete("/_sandbox/stats")
    assert by_stream(run(config, engine, SWEEP))["ga/patients"].counts.inserted == 230
    assert 2 <= sandbox.stats()["max_in_flight"] <= 6
    assert count(engine, "patient") == 230
