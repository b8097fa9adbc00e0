"""An offset listing that shifts under the walk (records deleted or added before its position) is noticed at
the overlap record and read again, so that one backfill and one sync leave exactly the server's records live."""

from __future__ import annotations

from typing import Any

from pipeline.sync.runner import INCREMENTAL, SWEEP
from tests.support import by_stream, count, engine_for, make_config, prescrypto_source, rows, run, source_patients


def _live_uids(engine: Any) -> set[str]:
    return {
        r["source_key"]
        for r in rows(engine, "SELECT source_key FROM source_record WHERE stream = 'patients' AND deleted_at IS NULL")
    }


def _server_uids(sandbox: Any) -> set[str]:
    return {p["uid"] for p in source_patients(sandbox)}


def _delete(sandbox: Any, patients: list[dict[str, Any]]) -> None:
    for patient in patients:
        assert sandbox.client.delete(f"/_sandbox/prescrypto/patients/{patient['id']}").status_code == 200


def test_records_deleted_before_the_offset_during_a_backfill_are_noticed_and_read_again(sandbox, db_url):
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    run(config, engine, SWEEP)  # stored once, so that the next sweep has something to delete
    doomed = source_patients(sandbox)[:5]
    pages = []

    def delete_at_the_start_after_page_two(source, stream, done, total):
        pages.append(done)
        if len(pages) == 2:
            _delete(sandbox, doomed)

    result = by_stream(run(config, engine, SWEEP, progress=delete_at_the_start_after_page_two))["rx/patients"]
    assert result.status == "succeeded", result.error
    assert result.deleted == 5
    assert _live_uids(engine) == _server_uids(sandbox)  # the 5 gone are soft-deleted, none live one is missed
    assert count(engine, "source_record", "deleted_at IS NOT NULL") == 5

    after = by_stream(run(config, engine, INCREMENTAL))["rx/patients"]
    assert (after.status, after.counts.fetched, after.counts.inserted) == ("succeeded", 0, 0)


def test_deletions_then_appends_are_not_missed_by_the_next_sync(sandbox, db_url):
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    assert by_stream(run(config, engine, SWEEP))["rx/patients"].status == "succeeded"
    _delete(sandbox, source_patients(sandbox)[:5])
    for i in range(5):  # as many appended: the tail offset alone would now point past them
        staged = {"uid": f"appended-{i}", "name": "Ana Nueva", "date_of_birth": "1990-01-01", "gender": "F"}
        assert sandbox.post("/_sandbox/prescrypto/patients", staged).status_code == 201

    result = by_stream(run(config, engine, INCREMENTAL))["rx/patients"]
    assert result.status == "succeeded", result.error
    assert result.counts.inserted == 5 and result.deleted == 5
    assert _live_uids(engine) == _server_uids(sandbox)


def test_a_listing_that_keeps_shifting_fails_the_run_and_deletes_nothing(sandbox, db_url):
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    run(config, engine, SWEEP)

    def delete_one_at_the_start_after_every_page(source, stream, done, total):
        _delete(sandbox, source_patients(sandbox)[:1])

    result = by_stream(run(config, engine, SWEEP, progress=delete_one_at_the_start_after_every_page))["rx/patients"]
    assert result.status == "failed"
    assert result.error == (
        "rx/patients: the listing kept shifting while it was read (3 re-reads from the start): nothing was "
        "deleted, and the next run reads it again"
    )
    assert count(engine, "source_record", "deleted_at IS NOT NULL") == 0


def test_a_keyless_last_record_still_anchors_the_next_page(sandbox, db_url):
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=50)})
    engine = engine_for(config)
    run(config, engine, SWEEP)
    fiftieth = source_patients(sandbox)[49]
    assert (
        sandbox.client.patch(f"/_sandbox/prescrypto/patients/{fiftieth['id']}", json={"uid": None}).status_code == 200
    )
    pages = []

    def delete_one_after_page_one(source, stream, done, total):
        pages.append(done)
        if len(pages) == 1:
            _delete(sandbox, source_patients(sandbox)[10:11])

    result = by_stream(run(config, engine, SWEEP, progress=delete_one_after_page_one))["rx/patients"]
    assert result.status == "succeeded", result.error
    # The record that lost its uid is quarantined (its old version soft-deleted), and so is the deleted one:
    # no other live record is missed.
    assert _live_uids(engine) == _server_uids(sandbox) - {None} and result.deleted == 2


def test_a_server_that_caps_the_page_size_is_read_to_its_end(sandbox, db_url):
    sandbox.post("/_sandbox/prescrypto/switches", {"patients_max_limit": 30})
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=100)})
    engine = engine_for(config)
    result = by_stream(run(config, engine, SWEEP))["rx/patients"]
    assert (result.status, result.counts.fetched) == ("succeeded", 230)
    assert count(engine, "source_record", "deleted_at IS NULL") == 230
