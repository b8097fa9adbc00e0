"""What PostgreSQL's planner is given: statistics for the tables a linking batch reads while a backfill fills
them, and no JIT. Without them a batch's blocking query scanned every match key (a third of a million rows at
20,000 patients: 9.3 of a 24.7 s backfill), and compiled itself for half of its time."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from pipeline.config import Config
from pipeline.storage import load
from pipeline.storage.db import open_engine
from pipeline.sync import linking
from pipeline.sync.linking import link_pending
from tests.support import engine_for, make_config, prescrypto_source, run

pytestmark = pytest.mark.postgres


def _unlinked(config: Config) -> Config:
    return config.model_copy(update={"identity": config.identity.model_copy(update={"link_during_sync": False})})


def _analyzed(engine: Engine, table: str) -> bool:
    with engine.connect() as conn:  # reltuples stays -1 until the table is first analyzed (or vacuumed)
        return (
            float(conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": table}).scalar()) >= 0
        )


def _histogram_bounds(engine: Engine, table: str, column: str) -> int:
    query = "SELECT cardinality(histogram_bounds::text::text[]) FROM pg_stats WHERE tablename = :t AND attname = :c"
    with engine.connect() as conn:
        return int(conn.execute(text(query), {"t": table, "c": column}).scalar() or 0)


def test_a_linked_backfill_gives_the_planner_the_identity_tables_statistics(sandbox: Any, pg_url: str) -> None:
    sandbox.reset(patients=1100, medics=5, seed=7)  # past the first refresh, at 1,000 rows inserted
    config = make_config(pg_url, {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=100)})
    engine = engine_for(config)
    assert not _analyzed(engine, "match_key")
    with engine.begin() as conn:  # its own statistics (target 100) would replace the run's before they are read
        conn.execute(text("ALTER TABLE source_record SET (autovacuum_enabled = false)"))
    [result] = run(config, engine, "sweep", commit_records=1000)
    assert result.ok and result.counts.inserted == 1100
    assert all(_analyzed(engine, table) for table in ("match_key", "patient", "person", "identity_link"))
    # Sampled at statistics target 10 (11 histogram bounds at most), not the default 100 (101 bounds on a column
    # of 1,000 distinct values): a tenth of the cost in the middle of a bulk load.
    assert 2 <= _histogram_bounds(engine, "source_record", "source_key") <= 11
    with engine.connect() as conn:
        assert conn.execute(text("SHOW jit")).scalar() == "off"


def _refreshes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the statistics refreshes of the runs that follow."""
    refreshes: list[int] = []
    refresh = load.refresh_statistics

    def counted(engine_: Engine, **options: Any) -> None:
        refreshes.append(1)
        refresh(engine_, **options)

    monkeypatch.setattr(load, "refresh_statistics", counted)
    return refreshes


def test_a_run_that_does_not_double_its_streams_records_leaves_the_statistics_alone(
    sandbox: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that inserts fewer records than its stream holds cannot change a plan: it refreshes nothing (a
    daily run of a large stream paid a full ANALYZE of seven tables)."""
    sandbox.reset(patients=1100, medics=5, seed=7)
    # Not linked: what is refreshed does not depend on it, and linking costs the test time.
    config = _unlinked(make_config(pg_url, {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=100)}))
    engine = engine_for(config)
    assert run(config, engine, "sweep", commit_records=1000)[0].ok
    refreshes = _refreshes(monkeypatch)
    sandbox.reset(patients=2100, medics=5, seed=7)  # the same 1,100 and 1,000 more
    [result] = run(config, engine, "sweep", commit_records=1000)
    assert result.ok and result.counts.inserted == 1000
    assert refreshes == []


def test_a_new_streams_first_load_into_a_populated_database_is_refreshed(
    sandbox: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statistics of a table full of one stream's records miss a new stream's: the planner would take its
    (source, stream) for one row and filter the whole stream for every page's lookup. Its first load refreshes
    them at 1,000 records, however many records of other streams are stored."""
    sandbox.reset(patients=1100, medics=5, seed=7)
    first = _unlinked(make_config(pg_url, {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=100)}))
    engine = engine_for(first)
    assert run(first, engine, "sweep", commit_records=1000)[0].ok
    with engine.begin() as conn:
        conn.execute(text("ANALYZE source_record"))  # the statistics count 1,100 records, all of rx
    refreshes = _refreshes(monkeypatch)
    sandbox.reset(patients=1000, medics=5, seed=8)
    second = _unlinked(make_config(pg_url, {"rx2": prescrypto_source(sandbox, streams=["patients"], page_size=100)}))
    [result] = run(second, engine, "sweep", commit_records=1000)
    assert result.ok and result.counts.inserted == 1000
    assert refreshes == [1]


def test_the_urls_own_libpq_options_are_kept_beside_ours(pg_url: str) -> None:
    engine = open_engine(f"{pg_url}?options=-c%20statement_timeout%3D4321")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "4321ms"
            assert conn.execute(text("SHOW jit")).scalar() == "off"
    finally:
        engine.dispose()


def test_a_link_pass_over_a_bulk_load_refreshes_them_first(
    sandbox: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.reset(patients=120, medics=5, seed=7)
    config = make_config(pg_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    config = _unlinked(config)
    engine = engine_for(config)
    [result] = run(config, engine, "sweep")
    assert result.ok and not _analyzed(engine, "match_key")
    monkeypatch.setattr(linking, "BATCH", 50)  # 120 queued: a bulk load, for this pass
    assert link_pending(engine, config.identity).linked == 120
    assert _analyzed(engine, "match_key")


def test_a_long_link_pass_refreshes_them_again_as_it_grows_the_tables(
    sandbox: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statistics taken when identity_link was empty made PostgreSQL scan identity_link and patient for every
    chunk of a batch's persons (0.4-1 s a chunk at 300,000 people): the pass takes them again each time the
    patients it has linked double."""
    sandbox.reset(patients=230, medics=5, seed=7)
    config = make_config(pg_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    config = _unlinked(config)
    engine = engine_for(config)
    assert run(config, engine, "sweep")[0].ok
    monkeypatch.setattr(linking, "BATCH", 20)
    links_seen: list[float] = []
    refresh = linking.refresh_statistics

    def refreshed(engine_: Engine, **options: Any) -> None:
        refresh(engine_, **options)
        with engine_.connect() as conn:
            query = text("SELECT reltuples FROM pg_class WHERE relname = 'identity_link'")
            links_seen.append(float(conn.execute(query).scalar()))

    monkeypatch.setattr(linking, "refresh_statistics", refreshed)
    assert link_pending(engine, config.identity).linked == 230
    # At the start (no link yet), then after 20, 40, 80 and 160 patients linked: each sees the links made so far.
    assert len(links_seen) == 5 and links_seen[0] <= 0 and links_seen[-1] >= 160


def test_rows_copied_in_bulk_read_back_as_inserted(pg_url: str) -> None:
    """On PostgreSQL, a bulk of plain rows goes through COPY (insert_rows): every awkward value survives it."""
    import datetime as dt

    from pipeline.storage.db import migrate, open_engine
    from pipeline.storage.identity import history_row, record_history

    engine = open_engine(pg_url)
    migrate(engine)
    at = dt.datetime(2026, 12, 7, 4, 5, 6, 789000, tzinfo=dt.UTC)
    awkward = ["tab\there", "line\nbreak", "back\\slash", "quote \" '", "ñandú 漢字 🙂", "\\N", "", None]
    made = [
        history_row(at, f"p{i}", None, "joined", None, f"q{i}", awkward[i % len(awkward)], "auto", operator="Ana")
        for i in range(80)
    ]
    with engine.begin() as conn:
        record_history(conn, made)
    with engine.connect() as conn:
        back = conn.execute(text("SELECT patient_id, reason, changed_at, operator FROM identity_history ORDER BY id"))
        stored = [tuple(row) for row in back]
    assert stored == [(r["patient_id"], r["reason"], at, "Ana") for r in made]


@pytest.fixture
def staged(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tables merged through a staging table (load._staged), in order."""
    merged: list[str] = []
    merge = load._staged

    def counted(conn: Any, key: tuple[Any, ...], build: Any, rows: Any) -> None:
        merged.append(key[1])
        merge(conn, key, build, rows)

    monkeypatch.setattr(load, "_staged", counted)
    return merged


def test_new_match_keys_are_copied_straight_in_and_stored_ones_merged(pg_url: str, staged: list[str]) -> None:
    """A page's match keys are new almost always (its patients' stored keys are deleted first): COPYed straight
    into match_key, with no staging table and no merge. Should one be stored already, the savepoint's rollback
    leaves nothing behind and the merge lands them all."""
    engine = open_engine(pg_url)
    keys = {f"p{i:03d}": [("name_dob", f"AN:{i}"), ("email", f"p{i}@example.org")] for i in range(40)}
    with engine.begin() as conn:  # 30 patients, 60 keys: past COPY's threshold, all new
        load.write_keys(conn, *load.key_rows({p: listed for p, listed in keys.items() if p < "p030"}))
    assert staged == []
    with engine.begin() as conn:  # all 40: the first 30's keys are stored already
        load.write_keys(conn, *load.key_rows(keys))
    assert staged == ["match_key"]
    with engine.connect() as conn:
        stored = set(conn.execute(text("SELECT patient_id, key_type, key_value FROM match_key")))
    assert stored == {(p, t, v) for p, listed in keys.items() for t, v in listed}


def test_a_linking_batch_sets_its_patients_persons_in_one_statement(sandbox: Any, pg_url: str) -> None:
    """Not one UPDATE a patient (a batch of 5,000 was 5,000 statements): one, joined to the pairs as arrays;
    a patient given no person has none."""
    from sqlalchemy import event

    from pipeline.storage import identity as store

    sandbox.reset(patients=60, medics=5, seed=7)
    config = make_config(pg_url, {"rx": prescrypto_source(sandbox, streams=["patients"], page_size=100)})
    engine = engine_for(config)
    updates: list[bool] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.startswith("UPDATE patient SET person_id"):
            updates.append(executemany)

    event.listen(engine, "before_cursor_execute", seen)
    [result] = run(config, engine, "sweep", commit_records=1000)
    assert result.ok and result.counts.inserted == 60
    assert updates and not any(updates)  # the page's batch, and the run's last link pass if it had any
    with engine.connect() as conn:
        persons = dict(conn.execute(text("SELECT id, person_id FROM patient ORDER BY id")).all())
    assert len(persons) == 60 and None not in persons.values()
    first, second, *_ = sorted(persons)
    with engine.begin() as conn:
        store.set_persons(conn, {first: None, second: persons[first]})
    with engine.connect() as conn:
        after = dict(conn.execute(text("SELECT id, person_id FROM patient ORDER BY id")).all())
    assert after == {**persons, first: None, second: persons[first]}


def test_a_staged_merge_survives_a_rolled_back_savepoint_and_merges_as_values_would(pg_url: str) -> None:
    """On PostgreSQL a bulk upsert is COPYed into a temporary table and merged with the statement's own ON
    CONFLICT clause: a savepoint rolled back takes that table with it, and the next merge makes it again."""
    import datetime as dt

    from pipeline.storage import load
    from pipeline.storage.db import migrate, open_engine
    from pipeline.storage.tables import MatchKey, SourceRecord, table_of

    engine = open_engine(pg_url)
    migrate(engine)
    now = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)

    def record(i: int, digest: str) -> dict[str, Any]:
        return {
            "source": "rx", "stream": "patients", "source_key": f"k{i}", "payload": {"id": i, "name": "Ñ\t\"x\""},
            "payload_hash": digest, "first_seen_at": now, "last_seen_at": now, "deleted_at": None,
        }  # fmt: skip

    keys = [{"key_type": "email", "key_value": f"v{i % 70}", "patient_id": f"p{i % 70}"} for i in range(140)]
    with engine.begin() as conn:
        savepoint = conn.begin_nested()
        load.upsert(conn, table_of(SourceRecord), [record(i, "a") for i in range(60)], keep=("first_seen_at",))
        savepoint.rollback()
        load.upsert(conn, table_of(SourceRecord), [record(i, "b") for i in range(60)], keep=("first_seen_at",))
        load._insert_new(conn, table_of(MatchKey), keys[:70])
        load._insert_new(conn, table_of(MatchKey), keys)  # every one of the second 70 is stored already
    with engine.begin() as conn:  # a changed hash updates, an unchanged row is left as it is
        load.upsert(conn, table_of(SourceRecord), [record(i, "c" if i < 5 else "b") for i in range(60)], keep=())
    with engine.connect() as conn:
        hashes = dict(conn.execute(text("SELECT source_key, payload_hash FROM source_record")).all())
        payload = conn.execute(text("SELECT payload FROM source_record WHERE source_key = 'k7'")).scalar()
        stored_keys = conn.execute(text("SELECT count(*) FROM match_key")).scalar()
    assert hashes == {f"k{i}": "c" if i < 5 else "b" for i in range(60)}
    assert payload == {"id": 7, "name": 'Ñ\t"x"'} and stored_keys == 70


def test_a_value_copy_refuses_is_reported_without_quoting_it(pg_url: str) -> None:
    """COPY runs on psycopg's own cursor: its errors are raised as SQLAlchemy raises a statement's, so that a
    failed run reports the driver's first line with the refused value cut out (a patient detail)."""
    from sqlalchemy.exc import DataError

    from pipeline.storage import load
    from pipeline.storage.db import migrate, open_engine
    from pipeline.storage.tables import SourceRecord, table_of
    from pipeline.sync.messages import run_error

    engine = open_engine(pg_url)
    migrate(engine)
    bad = [
        {"source": "rx", "stream": "patients", "source_key": f"k{i}", "payload": {}, "payload_hash": "h",
         "first_seen_at": "Ana Ruiz 1990-05-01", "last_seen_at": None, "deleted_at": None}
        for i in range(60)
    ]  # fmt: skip
    with pytest.raises(DataError) as refused, engine.begin() as conn:
        load.upsert(conn, table_of(SourceRecord), bad)
    said = run_error("rx", "patients", refused.value)
    assert said.startswith("rx/patients: database: invalid input syntax") and "Ana" not in said
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM source_record")).scalar() == 0
