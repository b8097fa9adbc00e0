"""Both speed benchmarks compare a re-sync with the ceiling fetched just before and after it, not with the
ceilings at the run's two ends (this machine's speed drifts within a run)."""

from __future__ import annotations

import argparse

from benchmarks import throughput
from benchmarks.versus_dlt import BESIDE, CEILING, CEILING_AFTER, CEILING_BEFORE, PATIENTSYNC, Run, compare


def _run(stage: str, tool: str, seconds: float) -> Run:
    return Run(stage, tool, 100_000, seconds, 0.0, 0.0, None)


def test_a_resync_is_measured_against_its_own_ceiling_and_a_backfill_against_the_runs() -> None:
    runs = [
        _run(CEILING_BEFORE, CEILING, 2.0),  # 50,000 records/s at the start of the run
        _run("sqlite backfill", PATIENTSYNC, 50.0),
        _run("sqlite re-sync" + BESIDE[0], CEILING, 4.0),  # the machine has halved its speed meanwhile
        _run("sqlite re-sync", PATIENTSYNC, 8.0),
        _run("sqlite re-sync" + BESIDE[1], CEILING, 4.0),
        _run(CEILING_AFTER, CEILING, 2.0),
    ]
    args = argparse.Namespace(page_size=100, delay=0.0)
    rows = {row["stage"]: row for row in compare(runs, args)}
    resync, backfill = rows["sqlite re-sync"], rows["sqlite backfill"]
    assert (resync["bound"], resync["bound_per_s"]) == ("ceiling beside", 25_000)
    assert resync["patientsync_of_bound"] == 0.5 and resync["passed"] is True  # 0.25 of the run's ceiling
    assert (backfill["bound"], backfill["bound_per_s"]) == ("ceiling", 50_000)


def test_throughput_measures_a_resync_against_its_own_ceiling() -> None:
    def stage(name: str, seconds: float) -> throughput.Stage:
        return throughput.Stage(name, 100_000, seconds, 0.0, None)

    run = {
        s.name: s
        for s in (
            stage(throughput.CEILING_BEFORE, 2.0),
            stage("sqlite backfill", 50.0),
            stage("sqlite re-sync" + throughput.BESIDE[0], 4.0),
            stage("sqlite re-sync", 8.0),
            stage("sqlite re-sync" + throughput.BESIDE[1], 4.0),
            stage(throughput.CEILING_AFTER, 2.0),
        )
    }
    rows = {row["stage"]: row for row in throughput.summarize([run])}
    assert rows["sqlite re-sync"]["fraction_of_ceiling"] == 0.5  # of 25,000/s beside it, not 50,000/s
    assert rows["sqlite backfill"]["fraction_of_ceiling"] == 0.04
