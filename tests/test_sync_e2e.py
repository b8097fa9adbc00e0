"""End to end: the sandbox over real HTTP into a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import pytest

from canonical.ids import canonical_id
from pipeline.storage.tables import Patient, table_of
from pipeline.sync.runner import INCREMENTAL, SWEEP
from tests.support import (
    by_stream,
    count,
    crosswalk_ids,
    engine_for,
    make_config,
    max_updated,
    patient_row,
    prescrypto_source,
    run,
    snapshot,
    source_medics,
    source_patients,
)


def test_backfill_lands_exactly_the_source(sandbox, db_url):
    config = make_config(db_url, {"rx": prescrypto_source(sandbox)})
    engine = engine_for(config)
    results = by_stream(run(config, engine, SWEEP))

    truth = source_patients(sandbox)
    assert len(truth) == 230
    patients = results["rx/patients"]
    assert (patients.status, patients.counts.fetched, patients.counts.inserted) == ("succeeded", 230, 230)
    assert (patients.counts.quarantined, patients.deleted) == (0, 0)
    assert results["rx/medics"].counts.inserted == 40
    assert count(engine, "patient") == 230
    assert count(engine, "medic") == 40
    hospitals = {m["hospital"] for m in source_medics(sandbox)} - {None}
    assert count(engine, "organization") == len(hospitals)
    with_file = sum(1 for p in truth if p["external_patient_file"])
    assert count(engine, "crosswalk", "entity_type = 'patient'") == 230 * 2 + with_file
    assert count(engine, "source_record", "source = 'rx'") == 270

    # One patient followed from its Prescrypto uid to the canonical row and its other ids.
    sample = truth[17]
    row = patient_row(engine, "rx", sample["uid"])
    ids = crosswalk_ids(engine, row["id"])
    assert row["id"] == canonical_id("rx", "patient", sample["uid"])
    assert row["full_name"] == " ".join(sample["name"].split())
    assert str(row["birth_date"]) == sample["date_of_birth"]
    assert ids["id"] == str(sample["id"]) and ids["uid"] == sample["uid"]


def test_a_sweep_of_an_unchanged_source_writes_no_row(sandbox, db_url):
    # An incremental sync's second run: tests/test_sources_e2e.py, every kind.
    config = make_config(db_url, {"rx": prescrypto_source(sandbox)})
    engine = engine_for(config)
    run(config, engine, SWEEP)
    before, stamp = snapshot(engine), max_updated(engine, table_of(Patient))

    again = by_stream(run(config, engine, SWEEP))
    assert again["rx/patients"].counts.unchanged == 230
    assert again["rx/patients"].counts.inserted == again["rx/patients"].counts.updated == 0
    incremental = by_stream(run(config, engine, INCREMENTAL))
    assert incremental["rx/patients"].counts.fetched == 0  # the tail offset: nothing new to fetch
    assert snapshot(engine) == before
    assert max_updated(engine, table_of(Patient)) == stamp


def test_incremental_sync_fetches_only_appended_records(sandbox, db_url):
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    run(config, engine, INCREMENTAL)
    headers = {"Authorization": "Token sandbox-prescrypto"}
    for n in range(3):
        response = sandbox.client.post(
            "/prescrypto/api/v2/patient/",
            headers=headers,
            json={"name": f"Nueva Paciente {n}", "date_of_birth": "2001-02-03"},
        )
        assert response.status_code == 201
    sandbox.client.delete("/_sandbox/stats")

    result = by_stream(run(config, engine, INCREMENTAL))["rx/patients"]
    assert (result.counts.fetched, result.counts.inserted) == (3, 3)
    assert sandbox.stats()["total"] == 2  # a short page from the stored offset, one that brings nothing new
    assert count(engine, "patient") == 233


def test_sweep_catches_updates_and_soft_deletes(sandbox, db_url):
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    run(config, engine, SWEEP)
    truth = source_patients(sandbox)
    changed, removed = truth[5], truth[100]
    assert (
        sandbox.client.patch(
            f"/_sandbox/prescrypto/patients/{changed['id']}", json={"name": "Renombrada de la Cruz Pérez"}
        ).status_code
        == 200
    )
    assert sandbox.client.delete(f"/_sandbox/prescrypto/patients/{removed['id']}").status_code in (200, 204)

    result = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert (result.counts.updated, result.deleted, result.counts.unchanged) == (1, 1, 228)
    renamed, gone = patient_row(engine, "rx", changed["uid"]), patient_row(engine, "rx", removed["uid"])
    assert (renamed["given_name"], renamed["family_name"]) == ("Renombrada", "de la Cruz Pérez")
    assert gone["deleted_at"] is not None and renamed["deleted_at"] is None
    assert count(engine, "source_record", "deleted_at IS NOT NULL") == 1
    assert count(engine, "patient") == 230  # soft-deleted, never dropped


def test_envelope_body_is_accepted_too(sandbox, db_url):
    sandbox.post("/_sandbox/prescrypto/switches", {"patients_envelope": True})
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    result = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert (result.status, result.counts.inserted) == ("succeeded", 230)


@pytest.mark.parametrize("page_size", [1000])
def test_medics_limit_is_capped_at_100(sandbox, sqlite_url, page_size):
    sandbox.reset(patients=10, medics=250, seed=3)
    config = make_config(sqlite_url, {"rx": prescrypto_source(sandbox, streams=["medics"], page_size=page_size)})
    engine = engine_for(config)
    result = by_stream(run(config, engine, SWEEP))["rx/medics"]
    assert (result.status, result.counts.inserted) == ("succeeded", 250)
    assert sandbox.stats()["total"] == 3


def test_a_sweep_that_sees_no_records_deletes_nothing(sandbox, sqlite_url):
    config = make_config(sqlite_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    run(config, engine, SWEEP)
    sandbox.reset(patients=0)  # the source answers with an empty list
    result = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert (result.status, result.counts.fetched, result.deleted) == ("succeeded", 0, 0)
    assert count(engine, "patient", "deleted_at IS NULL") == 230


def _sweep_with_second_page(sandbox, db_url, body):
    """A backfill, then a sweep whose second patients page is answered with ``body`` (a truncated listing)."""
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    run(config, engine, SWEEP)
    sandbox.faults([{"path": "/prescrypto/api/v2/patient/", "status": 200, "body": body, "after": 1, "times": 1}])
    return config, engine, by_stream(run(config, engine, SWEEP))["rx/patients"]


def test_a_truncated_bare_list_does_not_delete_the_rest(sandbox, db_url):
    last_of_page_1 = source_patients(sandbox)[49]  # a second page that holds only the record it starts at
    config, engine, result = _sweep_with_second_page(sandbox, db_url, [last_of_page_1])
    assert (result.status, result.counts.fetched, result.deleted) == ("succeeded", 50, 0)  # 180 withheld
    assert count(engine, "patient", "deleted_at IS NULL") == 230

    # A real deletion, a small share of the stream, is still applied by the next sweep.
    for patient in source_patients(sandbox)[:2]:
        sandbox.client.delete(f"/_sandbox/prescrypto/patients/{patient['id']}")
    again = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert again.deleted == 2 and count(engine, "patient", "deleted_at IS NULL") == 228


def test_an_envelope_short_of_its_count_does_not_delete(sandbox, sqlite_url):
    sandbox.post("/_sandbox/prescrypto/switches", {"patients_envelope": True})
    body = {"count": 230, "next": None, "previous": None, "results": [source_patients(sandbox)[49]]}
    _, engine, result = _sweep_with_second_page(sandbox, sqlite_url, body)
    assert (result.status, result.counts.fetched, result.deleted) == ("succeeded", 50, 0)
    assert count(engine, "patient", "deleted_at IS NULL") == 230


def test_an_empty_page_that_promises_more_fails_the_stream(sandbox, sqlite_url):
    sandbox.post("/_sandbox/prescrypto/switches", {"patients_envelope": True})
    body = {"count": 230, "next": "http://elsewhere/?offset=100", "previous": None, "results": []}
    _, engine, result = _sweep_with_second_page(sandbox, sqlite_url, body)
    assert result.status == "failed" and "an empty page says there are more" in result.error
    assert count(engine, "patient", "deleted_at IS NULL") == 230


def test_soft_delete_reaches_the_canonical_row_whatever_the_key_spelling(sandbox, db_url):
    sandbox.post(
        "/_sandbox/prescrypto/medics",
        {"id": "0077", "name": "Ana Bond", "email": "a@b.mx", "hospital": 1, "female": True, "is_active": True},
    )
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["medics"])})
    engine = engine_for(config)
    run(config, engine, SWEEP)
    assert count(engine, "medic", "full_name = 'Ana Bond' AND deleted_at IS NULL") == 1
    sandbox.client.delete("/_sandbox/prescrypto/medics/0077")  # stored as medic 77: one spelling
    result = by_stream(run(config, engine, SWEEP))["rx/medics"]
    assert result.deleted == 1
    assert count(engine, "medic", "full_name = 'Ana Bond' AND deleted_at IS NOT NULL") == 1


def test_quarantine_rows_are_cleared_once_records_are_good_again_or_gone(sandbox, db_url):
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    run(config, engine, SWEEP)
    patient = source_patients(sandbox)[3]
    sandbox.client.patch(f"/_sandbox/prescrypto/patients/{patient['id']}", json={"date_of_birth": "2099-01-01"})
    assert by_stream(run(config, engine, SWEEP))["rx/patients"].counts.quarantined == 1
    assert patient_row(engine, "rx", patient["uid"])["birth_date"] is not None  # the last good row stays

    # Reverted at the source: the payload is the stored one again, so nothing is written but the stale row goes.
    sandbox.client.patch(
        f"/_sandbox/prescrypto/patients/{patient['id']}", json={"date_of_birth": patient["date_of_birth"]}
    )
    reverted = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert (reverted.counts.unchanged, reverted.counts.quarantined) == (230, 0)
    assert count(engine, "quarantine") == 0

    # A bad record fixed at the source: the next sweep lands it and clears its row.
    sandbox.post(
        "/_sandbox/prescrypto/patients",
        {"name": "Fecha Mala", "date_of_birth": "1990-13-45", "uid": "bad-then-fixed", "gender": "F"},
    )
    assert by_stream(run(config, engine, SWEEP))["rx/patients"].counts.quarantined == 1
    fixed = next(p for p in source_patients(sandbox) if p["uid"] == "bad-then-fixed")
    sandbox.client.patch(f"/_sandbox/prescrypto/patients/{fixed['id']}", json={"date_of_birth": "1990-12-15"})
    landed = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert (landed.counts.inserted, landed.counts.quarantined) == (1, 0)
    assert count(engine, "quarantine") == 0 and patient_row(engine, "rx", "bad-then-fixed")["birth_date"] is not None

    # A bad record that the source then deletes.
    staged = sandbox.post(
        "/_sandbox/prescrypto/patients", {"name": "Mala Fecha", "date_of_birth": "1990-02-30", "uid": "bad-then-gone"}
    ).json()
    run(config, engine, SWEEP)
    assert count(engine, "quarantine", "source_key = 'bad-then-gone'") == 1
    sandbox.client.delete(f"/_sandbox/prescrypto/patients/{staged['id']}")
    run(config, engine, SWEEP)
    assert count(engine, "quarantine") == 0
