"""End to end for profiles, gauges and Particle, beside Prescrypto: the sandbox over real HTTP into a real
SQLite file and a real PostgreSQL database. The expected values come from the sandbox's own API, read the way
a client reads it."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest

from canonical.ids import canonical_id
from mappings.particle import ssn_hmac
from pipeline.app.status import stream_status
from pipeline.storage import plain
from pipeline.storage.cursors import load_cursor
from pipeline.sync.runner import INCREMENTAL, SWEEP
from tests.support import (
    PARTICLE_AUTH,
    PROFILES_AUTH,
    SSN_KEY,
    by_stream,
    count,
    engine_for,
    every_source,
    gauges_source,
    gauges_truth,
    make_config,
    particle_source,
    particle_truth,
    profiles_source,
    profiles_truth,
    rows,
    run,
    snapshot,
)


def _ok(results: list[Any]) -> dict[str, Any]:
    found = by_stream(results)
    assert {k: (r.status, r.error) for k, r in found.items()} == {k: ("succeeded", None) for k in found}
    return found


def _crosswalk_kinds(engine: Any) -> dict[tuple[str, str], set[str]]:
    kinds: dict[tuple[str, str], set[str]] = {}
    for row in rows(engine, "SELECT DISTINCT source, entity_type, id_type FROM crosswalk"):
        kinds.setdefault((row["source"], row["entity_type"]), set()).add(row["id_type"])
    return kinds


def _boundary_readings(readings: dict[int, list[dict[str, Any]]]) -> int:
    """Readings on their patient's latest day or the day before: what an incremental pass asks for again
    (start_date is inclusive, and one day early, as the API does not say in which time zone its days are)."""
    total = 0
    for items in readings.values():
        if items:
            since = (
                dt.date.fromisoformat(max(r["recorded_at"][:10] for r in items)) - dt.timedelta(days=1)
            ).isoformat()
            total += sum(1 for r in items if r["recorded_at"][:10] >= since)
    return total


def test_one_sync_lands_every_kind_and_a_second_writes_nothing(sandbox, db_url):
    config = make_config(db_url, every_source(sandbox))
    engine = engine_for(config)
    first = _ok(run(config, engine, INCREMENTAL))
    assert set(first) == {"rx/patients", "rx/medics", "pf/patients", "ga/patients", "ga/gauges", "pa/patients"}

    profiles = profiles_truth(sandbox)
    gauge_patients, readings = gauges_truth(sandbox)
    particle = particle_truth(sandbox)
    doctors = {d["unique_id"] for p in profiles for d in p["patient_doctor"]}
    hospitals = {h["unique_id"] for p in profiles for h in p["patient_hospital"]}
    n_readings = sum(map(len, readings.values()))
    assert len(profiles) == len(gauge_patients) == len(particle) == 230
    assert doctors and hospitals and n_readings > 230

    per_source = Counter(r["source"] for r in rows(engine, "SELECT source FROM source_record WHERE deleted_at IS NULL"))
    assert per_source["pf"] == 230 and per_source["pa"] == 230 and per_source["ga"] == 230 + n_readings
    assert count(engine, "patient") == 4 * 230
    assert count(engine, "medic") == 40 + len(doctors)
    assert count(engine, "observation") == n_readings
    assert count(engine, "patient_medic", "source = 'pf'") == sum(len(p["patient_doctor"]) for p in profiles)
    assert count(engine, "patient_organization", "source = 'pf'") == sum(len(p["patient_hospital"]) for p in profiles)
    assert count(engine, "organization") >= len(hospitals)
    assert _crosswalk_kinds(engine) == {
        ("rx", "patient"): {"id", "uid", "external_patient_file"},
        ("rx", "medic"): {"id"},
        ("rx", "organization"): {"id"},
        ("pf", "patient"): {"unique_id", "profile_unique_id"},
        ("pf", "medic"): {"unique_id"},
        ("pf", "organization"): {"unique_id"},
        ("ga", "patient"): {"id"},
        ("ga", "observation"): {"id"},
        ("pa", "patient"): {"patient_id"},
    }

    # Every reading sits on the canonical patient of its gauges patient, with its values.
    some = next(r for items in readings.values() for r in items if r.get("notes"))
    (obs,) = rows(
        engine,
        "SELECT o.* FROM crosswalk c JOIN observation o ON o.id = c.entity_id "
        "WHERE c.source = 'ga' AND c.entity_type = 'observation' AND c.id_value = :id",
        id=str(some["id"]),
    )
    assert obs["patient_id"] == canonical_id("ga", "patient", str(some["patient_id"]))
    assert (obs["code"], obs["value"], obs["notes"]) == (some["gauge_type"], some["value"], some["notes"])
    assert count(engine, "observation o LEFT JOIN patient p ON p.id = o.patient_id", "p.id IS NULL") == 0

    # Particle: the last four digits on the patient, a keyed hash in the payload, the SSN nowhere.
    with_ssn = [p for p in particle.values() if p.get("ssn")]
    assert with_ssn
    sample = with_ssn[0]
    (patient,) = rows(
        engine, "SELECT * FROM patient WHERE id = :id", id=canonical_id("pa", "patient", sample["patient_id"])
    )
    digits = sample["ssn"].replace("-", "")
    assert patient["ssn_last4"] == digits[-4:]
    (stored,) = rows(
        engine, "SELECT payload FROM source_record WHERE source = 'pa' AND source_key = :k", k=sample["patient_id"]
    )
    assert '"ssn_hmac"' in str(stored["payload"]).replace("'", '"')
    assert ssn_hmac(digits, SSN_KEY.encode()) in str(stored["payload"])
    dump = str(snapshot(engine))
    assert not [p["ssn"] for p in with_ssn if p["ssn"] in dump or p["ssn"].replace("-", "") in dump]

    before = snapshot(engine)
    sandbox.client.delete("/_sandbox/stats")
    second = _ok(run(config, engine, INCREMENTAL))
    assert snapshot(engine) == before
    for key, result in second.items():
        assert (result.counts.inserted, result.counts.updated, result.deleted) == (0, 0, 0), key
    paths = sandbox.stats()["paths"]
    assert paths.get("/particle/api/v1/patients/{id}", 0) == 0  # every detail is stored already
    assert second["ga/gauges"].counts.fetched == _boundary_readings(readings)  # only each patient's last day


def test_profiles_links_follow_the_source_and_deleted_patients_go(sandbox, db_url):
    config = make_config(db_url, {"pf": profiles_source(sandbox)})
    engine = engine_for(config)
    _ok(run(config, engine, INCREMENTAL))
    profiles = profiles_truth(sandbox)
    moved = next(p for p in profiles if p["patient_doctor"] and p["patient_hospital"])
    gone = next(p for p in profiles if p is not moved)
    new_doctor = next(
        d["unique_id"]
        for p in profiles
        for d in p["patient_doctor"]
        if d["unique_id"] not in {x["unique_id"] for x in moved["patient_doctor"]}
    )
    response = sandbox.client.put(
        f"/profiles/patients/patients/{moved['unique_id']}/",
        headers=PROFILES_AUTH,
        json={"doctor_ids": [new_doctor], "hospital_ids": [], "patient_race": "Otra"},
    )
    assert response.status_code == 200
    assert (
        sandbox.client.delete(f"/profiles/patients/patients/{gone['unique_id']}/", headers=PROFILES_AUTH).status_code
        == 204
    )

    result = _ok(run(config, engine, INCREMENTAL))["pf/patients"]
    assert (result.counts.updated, result.deleted) == (1, 1)
    patient_id = canonical_id("pf", "patient", moved["unique_id"])
    assert [
        r["medic_id"] for r in rows(engine, "SELECT medic_id FROM patient_medic WHERE patient_id = :p", p=patient_id)
    ] == [canonical_id("pf", "medic", new_doctor)]
    assert count(engine, "patient_organization", "patient_id = :p", p=patient_id) == 0
    assert rows(engine, "SELECT race FROM patient WHERE id = :p", p=patient_id) == [{"race": "Otra"}]
    (deleted,) = rows(
        engine, "SELECT deleted_at FROM patient WHERE id = :p", p=canonical_id("pf", "patient", gone["unique_id"])
    )
    assert deleted["deleted_at"] is not None
    assert count(engine, "patient", "deleted_at IS NULL") == 229


def test_gauge_readings_come_from_each_patients_watermark_inclusive(sandbox, db_url):
    config = make_config(db_url, {"ga": gauges_source(sandbox)})
    engine = engine_for(config)
    _ok(run(config, engine, INCREMENTAL))
    patients, readings = gauges_truth(sandbox)
    pid, items = next((p, r) for p, r in readings.items() if len(r) >= 2)
    last = dt.date.fromisoformat(max(r["recorded_at"][:10] for r in items))

    def stage(day: dt.date, value: int) -> None:
        reading = {
            "patient_id": pid,
            "gauge_type": "pain",
            "value": value,
            "scale_min": 1,
            "scale_max": 10,
            "recorded_at": f"{day.isoformat()}T23:59:00.000Z",
            "notes": None,
            "created_at": f"{day.isoformat()}T23:59:00.000Z",
        }
        assert sandbox.client.post("/_sandbox/gauges/gauges", json=reading).status_code == 201

    stage(last, 3)  # on the watermark's own day: inside an inclusive start_date
    stage(last + dt.timedelta(days=1), 4)
    stage(last - dt.timedelta(days=2), 5)  # before the watermark's margin: only a sweep sees it
    incremental = _ok(run(config, engine, INCREMENTAL))["ga/gauges"]
    assert (incremental.counts.inserted, incremental.counts.updated) == (2, 0)
    assert count(engine, "observation") == sum(map(len, readings.values())) + 2

    sweep = _ok(run(config, engine, SWEEP))["ga/gauges"]
    assert (sweep.counts.inserted, sweep.counts.updated, sweep.deleted) == (1, 0, 0)
    assert count(engine, "observation", "patient_id = :p", p=canonical_id("ga", "patient", str(pid))) == len(items) + 3


def test_particle_fetches_details_of_new_ids_only_and_soft_deletes_gone_ones(sandbox, db_url):
    config = make_config(db_url, {"pa": particle_source(sandbox)})
    engine = engine_for(config)
    _ok(run(config, engine, INCREMENTAL))
    ids = list(particle_truth(sandbox))
    new = {
        "given_name": "Ada",
        "family_name": "Nueva",
        "date_of_birth": "1990-01-02",
        "gender": "FEMALE",
        "postal_code": "02119",
        "patient_id": "pt-new-1",
        "address_city": "Roxbury",
        "address_state": "MA",
    }
    assert sandbox.client.post("/particle/api/v1/patients", headers=PARTICLE_AUTH, json=new).status_code == 200
    assert sandbox.client.delete(f"/particle/api/v1/patients/{ids[5]}", headers=PARTICLE_AUTH).status_code == 200
    sandbox.client.delete("/_sandbox/stats")

    result = _ok(run(config, engine, INCREMENTAL))["pa/patients"]
    assert (result.counts.inserted, result.deleted) == (1, 1)
    assert sandbox.stats()["paths"]["/particle/api/v1/patients/{id}"] == 1
    assert count(engine, "patient", "deleted_at IS NOT NULL") == 1
    (ada,) = rows(
        engine, "SELECT given_name, sex, state FROM patient WHERE id = :p", p=canonical_id("pa", "patient", "pt-new-1")
    )
    assert ada == {"given_name": "Ada", "sex": "female", "state": "MA"}

    sandbox.client.delete("/_sandbox/stats")
    refresh = _ok(run(config, engine, SWEEP))["pa/patients"]
    assert sandbox.stats()["paths"]["/particle/api/v1/patients/{id}"] == 230  # the full refresh re-reads them all
    assert (refresh.counts.inserted, refresh.counts.updated, refresh.counts.unchanged) == (0, 0, 230)


def test_particle_token_param_is_configurable(sandbox, db_url):
    sandbox.post("/_sandbox/particle/switches", {"token_param": "cursor", "page_size": 60, "last_token": "empty"})
    config = make_config(db_url, {"pa": particle_source(sandbox, continuation_param="cursor")})
    engine = engine_for(config)
    result = _ok(run(config, engine, INCREMENTAL))["pa/patients"]
    assert result.counts.inserted == 230
    assert sandbox.stats()["paths"]["/particle/api/v1/patients"] == 4  # 60 + 60 + 60 + 50


def _stored_keys(engine: Any, source: str, stream: str) -> list[str]:
    return sorted(
        r["source_key"]
        for r in rows(
            engine, "SELECT source_key FROM source_record WHERE source = :s AND stream = :t", s=source, t=stream
        )
    )


def test_particle_listing_resumes_from_its_checkpointed_token(sandbox, db_url):
    config = make_config(db_url, {"pa": particle_source(sandbox)})
    engine = engine_for(config)
    # The first listing page and its 200 details pass; the second listing page fails for good.
    sandbox.faults({"path": "/particle/api/v1/patients", "status": 503, "after": 201, "times": None})
    failed = by_stream(run(config, engine, INCREMENTAL))["pa/patients"]
    assert failed.status == "failed" and "HTTP 503" in (failed.error or "")
    assert count(engine, "source_record", "source = 'pa'") == 200
    (cursor,) = rows(engine, "SELECT cursor FROM sync_state WHERE source = 'pa'")
    assert "continuation_token" in str(cursor["cursor"])

    sandbox.clear_faults()
    sandbox.client.delete("/_sandbox/stats")
    resumed = _ok(run(config, engine, INCREMENTAL))["pa/patients"]
    paths = sandbox.stats()["paths"]
    assert paths["/particle/api/v1/patients"] == 1  # from the token, not from the start
    assert paths["/particle/api/v1/patients/{id}"] == 30
    assert (resumed.counts.inserted, resumed.deleted) == (30, 0)
    assert _stored_keys(engine, "pa", "patients") == sorted(particle_truth(sandbox))


def test_gauge_readings_resume_after_the_last_patient_committed(sandbox, db_url):
    config = make_config(db_url, {"ga": gauges_source(sandbox, page_size=50)})
    engine = engine_for(config)
    _ok(run(make_config(db_url, {"ga": gauges_source(sandbox, streams=["patients"])}), engine, INCREMENTAL))
    # 50 patients' readings (one batch) pass, then every readings request fails.
    sandbox.faults({"path": "/gauges/v1/patients/", "status": 500, "after": 50, "times": None})
    failed = by_stream(run(config, engine, INCREMENTAL))["ga/gauges"]
    assert failed.status == "failed"
    (cursor,) = rows(engine, "SELECT cursor FROM sync_state WHERE source = 'ga' AND stream = 'gauges'")
    assert '"after"' in str(cursor["cursor"]).replace("'", '"')

    sandbox.clear_faults()
    sandbox.client.delete("/_sandbox/stats")
    _ok(run(config, engine, INCREMENTAL))
    assert sandbox.stats()["paths"]["/gauges/v1/patients/{id}/gauges"] == 230 - 50
    _, readings = gauges_truth(sandbox)
    assert _stored_keys(engine, "ga", "gauges") == sorted(str(r["id"]) for items in readings.values() for r in items)


def test_profiles_envelope_pages_resume_from_the_next_link(sandbox, db_url):
    sandbox.post("/_sandbox/profiles/switches", {"envelope": True, "page_size": 50})
    config = make_config(db_url, {"pf": profiles_source(sandbox)})
    engine = engine_for(config)
    sandbox.faults({"path": "/profiles/patients/patients", "status": 502, "after": 2, "times": None})
    assert by_stream(run(config, engine, INCREMENTAL))["pf/patients"].status == "failed"
    assert count(engine, "source_record", "source = 'pf'") == 100
    sandbox.clear_faults()
    sandbox.client.delete("/_sandbox/stats")
    resumed = _ok(run(config, engine, INCREMENTAL))["pf/patients"]
    assert sandbox.stats()["paths"]["/profiles/patients/patients"] == 3  # pages 3, 4 and 5
    assert (resumed.counts.inserted, resumed.deleted) == (130, 0)  # a resumed listing deletes nothing
    assert _stored_keys(engine, "pf", "patients") == sorted(p["unique_id"] for p in profiles_truth(sandbox))


def test_a_particle_record_gone_bad_stays_quarantined_until_a_sweep_reads_it_again(sandbox, db_url):
    config = make_config(db_url, {"pa": particle_source(sandbox)})
    engine = engine_for(config)
    _ok(run(config, engine, INCREMENTAL))
    victim = next(iter(particle_truth(sandbox)))
    assert (
        sandbox.client.patch(f"/_sandbox/particle/patients/{victim}", json={"date_of_birth": "1990-13-01"}).status_code
        == 200
    )
    assert _ok(run(config, engine, SWEEP))["pa/patients"].counts.quarantined == 1
    _ok(run(config, engine, INCREMENTAL))  # lists the id but does not fetch it: the quarantine row stays
    assert count(engine, "quarantine") == 1
    assert (
        sandbox.client.patch(f"/_sandbox/particle/patients/{victim}", json={"date_of_birth": "1990-12-01"}).status_code
        == 200
    )
    _ok(run(config, engine, SWEEP))
    assert count(engine, "quarantine") == 0


@pytest.mark.parametrize("last_token", ["null", "empty", "absent"])
def test_particle_listing_ends_on_a_null_empty_or_missing_token(sandbox, sqlite_url, last_token):
    sandbox.post("/_sandbox/particle/switches", {"page_size": 100, "last_token": last_token})
    config = make_config(sqlite_url, {"pa": particle_source(sandbox)})
    engine = engine_for(config)
    assert _ok(run(config, engine, INCREMENTAL))["pa/patients"].counts.inserted == 230
    with engine.connect() as conn:
        assert load_cursor(conn, "pa", "patients") == {}  # the listing ended: the next one starts over
    sandbox.client.delete("/_sandbox/stats")
    again = _ok(run(config, engine, INCREMENTAL))["pa/patients"]  # lists from the start again, fetches nothing
    assert (again.counts.fetched, again.deleted) == (0, 0)
    assert sandbox.stats()["paths"] == {"/particle/api/v1/patients": 3}


@pytest.mark.parametrize("shape", ["list", "patients", "data", "results"])
def test_gauges_patients_in_any_documented_body_shape_resume_by_page(sandbox, sqlite_url, shape):
    sandbox.post("/_sandbox/gauges/switches", {"list_shape": shape})
    # one page at a time: the fault below is staged on the third request
    config = make_config(sqlite_url, {"ga": gauges_source(sandbox, streams=["patients"], page_size=50, concurrency=1)})
    engine = engine_for(config)
    sandbox.faults({"path": "/gauges/v1/patients", "status": 500, "after": 2, "times": None})
    assert by_stream(run(config, engine, INCREMENTAL))["ga/patients"].status == "failed"
    assert count(engine, "patient") == 100
    sandbox.clear_faults()
    sandbox.client.delete("/_sandbox/stats")
    assert _ok(run(config, engine, INCREMENTAL))["ga/patients"].counts.inserted == 130
    assert sandbox.stats()["paths"] == {"/gauges/v1/patients": 3}  # pages 3, 4 and the short 5th
    assert count(engine, "patient") == 230


def test_a_patient_the_token_may_not_see_is_skipped_and_keeps_its_readings(sandbox, db_url):
    config = make_config(db_url, {"ga": gauges_source(sandbox)})
    engine = engine_for(config)
    _ok(run(config, engine, INCREMENTAL))
    _, readings = gauges_truth(sandbox)
    pid = next(p for p, items in readings.items() if items)
    sandbox.post("/_sandbox/gauges/switches", {"forbidden": [pid]})
    incremental = by_stream(run(config, engine, INCREMENTAL))["ga/gauges"]
    sweep = by_stream(run(config, engine, SWEEP))["ga/gauges"]
    assert (incremental.deleted, sweep.deleted) == (0, 0)  # a sweep that skipped a patient deletes nothing
    warning = "ga/gauges: 1 parent(s) refused with HTTP 403 although the token is good"
    for result in (incremental, sweep):
        assert result.status == "succeeded" and result.error is not None and result.error.startswith(warning)
    with plain.borrow(engine) as db:
        last_run = next(row for row in stream_status(config, db) if row["stream"] == "gauges")["last_run"]
    assert last_run["status"] == "succeeded" and last_run["error"].startswith(warning)  # what status shows
    patient = canonical_id("ga", "patient", str(pid))
    assert count(engine, "observation", "patient_id = :p AND deleted_at IS NULL", p=patient) == len(readings[pid])


def test_a_token_refused_everywhere_fails_the_readings_stream(sandbox, db_url):
    config = make_config(db_url, {"ga": gauges_source(sandbox)})
    engine = engine_for(config)
    _ok(run(make_config(db_url, {"ga": gauges_source(sandbox, streams=["patients"])}), engine, INCREMENTAL))
    sandbox.faults(
        {
            "path": "/gauges/v1/patients",
            "status": 403,
            "times": None,
            "body": {"errors": "You are not authorized to access this patient"},
        }
    )
    failed = by_stream(run(config, engine, INCREMENTAL))["ga/gauges"]
    assert failed.status == "failed"
    assert failed.error == (
        "ga/gauges: HTTP 403: the source refused the credentials (You are not authorized to access this patient)"
    )
    assert count(engine, "observation") == 0


def test_a_reading_dated_in_the_future_does_not_hold_back_the_watermark(sandbox, sqlite_url):
    config = make_config(sqlite_url, {"ga": gauges_source(sandbox)})
    engine = engine_for(config)
    _, readings = gauges_truth(sandbox)
    pid = next(p for p, items in readings.items() if items)
    last = max(r["recorded_at"][:10] for r in readings[pid])

    def stage(when: str) -> None:
        reading = {
            "patient_id": pid,
            "gauge_type": "energy",
            "value": 5,
            "scale_min": 1,
            "scale_max": 10,
            "recorded_at": when,
        }
        assert sandbox.client.post("/_sandbox/gauges/gauges", json=reading).status_code == 201

    stage("2031-01-01T08:00:00.000Z")  # a device whose clock is years ahead
    _ok(run(config, engine, INCREMENTAL))
    stage(f"{last}T23:00:00.000Z")
    assert _ok(run(config, engine, INCREMENTAL))["ga/gauges"].counts.inserted == 1


def test_a_stale_continuation_token_restarts_the_listing(sandbox, db_url):
    config = make_config(db_url, {"pa": particle_source(sandbox)})
    engine = engine_for(config)
    sandbox.faults({"path": "/particle/api/v1/patients", "status": 503, "after": 201, "times": None})
    assert by_stream(run(config, engine, INCREMENTAL))["pa/patients"].status == "failed"
    sandbox.clear_faults()
    # The source no longer accepts the checkpointed token (it expired): the listing starts over.
    sandbox.faults(
        {
            "path": "/particle/api/v1/patients",
            "status": 400,
            "times": 1,
            "body": {"error": "invalid continuation token"},
        }
    )
    sandbox.client.delete("/_sandbox/stats")
    resumed = _ok(run(config, engine, INCREMENTAL))["pa/patients"]
    assert sandbox.stats()["paths"]["/particle/api/v1/patients"] == 3  # the refused token, then pages 1 and 2
    assert (resumed.counts.inserted, resumed.deleted) == (30, 0)
    assert _stored_keys(engine, "pa", "patients") == sorted(particle_truth(sandbox))


def test_a_token_that_may_read_no_patients_readings_fails_the_stream(sandbox, db_url):
    config = make_config(db_url, {"ga": gauges_source(sandbox)})
    engine = engine_for(config)
    _ok(run(make_config(db_url, {"ga": gauges_source(sandbox, streams=["patients"])}), engine, INCREMENTAL))
    patients, _ = gauges_truth(sandbox)
    sandbox.post("/_sandbox/gauges/switches", {"forbidden": [p["id"] for p in patients]})
    failed = by_stream(run(config, engine, INCREMENTAL))["ga/gauges"]
    assert failed.status == "failed"
    assert failed.error == "ga/gauges: HTTP 403: the source refused the credentials (all 230 parents refused)"


def test_the_lease_is_kept_while_one_slow_batch_is_fetched(sandbox, sqlite_url):
    """A batch longer than the lease: without renewals in between, another process could take the stream. The
    lease must move forward while the batch is still being fetched, before its commit renews it."""
    import threading
    import time

    sandbox.reset(patients=30, medics=1, seed=7)
    config = make_config(sqlite_url, {"ga": gauges_source(sandbox, page_size=30, concurrency=1)})
    engine = engine_for(config)
    _ok(run(make_config(sqlite_url, {"ga": gauges_source(sandbox, streams=["patients"])}), engine, INCREMENTAL))
    sandbox.faults({"path": "/gauges/v1/patients/", "delay": 0.05, "times": None})  # 30 x 50 ms: one batch
    ttl = dt.timedelta(seconds=1)  # renewed every third of it
    results: list[Any] = []
    runner = threading.Thread(target=lambda: results.extend(run(config, engine, INCREMENTAL, lease_ttl=ttl)))
    runner.start()
    expiries: set[Any] = set()
    deadline = time.monotonic() + 30
    while len(expiries) < 2 and time.monotonic() < deadline:  # granted, then renewed
        leases = rows(engine, "SELECT expires_at FROM sync_lease WHERE stream = 'gauges'")
        if leases and count(engine, "observation") == 0:  # the batch is not committed yet
            expiries.add(leases[0]["expires_at"])
        time.sleep(0.02)
    runner.join(timeout=60)
    assert len(expiries) == 2
    assert _ok(results)["ga/gauges"].counts.inserted > 0
