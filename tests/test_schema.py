"""The migrations build exactly the tables the models declare, on both databases, and upgrade a database
created by an earlier release without losing its rows."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from pipeline.storage.db import MIGRATIONS, migrate, open_engine

pytestmark = pytest.mark.empty_database  # these tests run the migrations themselves


def _alembic(connection) -> AlembicConfig:  # type: ignore[no-untyped-def]
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def test_migrated_schema_equals_the_models(db_url: str) -> None:
    engine = open_engine(db_url)
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    engine.dispose()
    assert diff == [], "a model changed without a migration: add a revision under pipeline/storage/migrations/versions"


def test_upgrade_from_the_first_release_keeps_rows(db_url: str) -> None:
    engine = open_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(_alembic(conn), "0001")
        conn.execute(
            text(
                "INSERT INTO patient (id, sex, active, created_at, updated_at, given_name) "
                "VALUES ('p1', 'male', true, '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', 'Ana')"
            )
        )
    migrate(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT given_name, title, latitude FROM patient")).one()
        columns = {c["name"] for c in inspect(conn).get_columns("patient")}
    engine.dispose()
    assert tuple(row) == ("Ana", None, None)
    assert {"title", "initials", "race", "latitude", "longitude"} <= columns


def test_upgrade_from_0002_keeps_crosswalk_rows_and_lets_two_entities_share_an_identifier(db_url: str) -> None:
    engine = open_engine(db_url)
    stamp = "'2026-01-01T00:00:00+00:00'"
    stored = [
        ("rx", "patient", "uid", "u1", "p1"),
        ("rx", "patient", "external_patient_file", "EXP-1", "p1"),
        ("rx", "patient", "uid", "u2", "p2"),
        ("rx", "organization", "id", "3", "o3"),
    ]
    with engine.begin() as conn:
        command.upgrade(_alembic(conn), "0002")
        conn.execute(
            text(
                "INSERT INTO patient (id, sex, active, created_at, updated_at) "
                f"VALUES ('p1', 'female', true, {stamp}, {stamp}), ('p2', 'male', true, {stamp}, {stamp})"
            )
        )
        conn.execute(
            text("INSERT INTO crosswalk VALUES (:s, :t, :i, :v, :e)"),
            [dict(zip("stive", r, strict=True)) for r in stored],
        )
    migrate(engine)
    with engine.begin() as conn:
        kept = sorted(
            tuple(r)
            for r in conn.execute(text("SELECT source, entity_type, id_type, id_value, entity_id FROM crosswalk"))
        )
        key = inspect(conn).get_pk_constraint("crosswalk")["constrained_columns"]
        indexes = {i["name"]: i["column_names"] for i in inspect(conn).get_indexes("crosswalk")}
        conn.execute(text("INSERT INTO crosswalk VALUES ('rx', 'patient', 'external_patient_file', 'EXP-1', 'p2')"))
        conflicts = [tuple(r) for r in conn.execute(text("SELECT * FROM crosswalk_conflict"))]
        conn.execute(text(f"UPDATE patient SET deleted_at = {stamp} WHERE id = 'p2'"))
        after_delete = conn.execute(text("SELECT count(*) FROM crosswalk_conflict")).scalar()
    engine.dispose()
    assert kept == sorted(stored)
    assert key == ["source", "entity_type", "id_type", "id_value", "entity_id"]  # leads with the lookup columns
    assert indexes["ix_crosswalk_entity"] == ["entity_type", "entity_id"]
    assert conflicts == [("rx", "patient", "external_patient_file", "EXP-1", 2, "p1,p2")]
    assert after_delete == 0  # a soft-deleted patient no longer holds the identifier


def test_head_is_the_newest_migration_and_a_current_database_is_recognised(db_url: str) -> None:
    from alembic.script import ScriptDirectory

    from pipeline.storage.db import stored_revision
    from pipeline.storage.plain import HEAD

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD, "set pipeline.storage.plain.HEAD"
    engine = open_engine(db_url)
    assert stored_revision(engine) is None
    with engine.begin() as conn:
        command.upgrade(_alembic(conn), "0002")
    assert stored_revision(engine) == "0002"
    migrate(engine)  # not current: alembic upgrades it
    assert stored_revision(engine) == HEAD
    engine.dispose()


def test_upgrade_from_0003_queues_the_stored_patients_and_a_link_pass_gives_each_a_person(db_url: str) -> None:
    from pipeline.config import IdentityConfig
    from pipeline.sync.linking import link_pending

    engine = open_engine(db_url)
    stamp = "'2026-01-01T00:00:00+00:00'"
    with engine.begin() as conn:
        command.upgrade(_alembic(conn), "0003")
        conn.execute(
            text(
                "INSERT INTO patient (id, given_name, family_name, birth_date, sex, active, created_at, updated_at) "
                f"VALUES ('p1', 'Delia', 'Leiva Palacios', '1992-02-06', 'female', true, {stamp}, {stamp}), "
                f"('p2', 'Delia', 'Leiva', '1992-02-06', 'female', true, {stamp}, {stamp}), "
                f"('p3', 'Ramón', 'Quintero', '1950-01-01', 'male', true, {stamp}, {stamp})"
            )
        )
        conn.execute(
            text(
                "INSERT INTO source_record (source, stream, source_key, entity_id, payload, payload_hash, "
                f"first_seen_at, last_seen_at) VALUES ('rx', 'patients', '1', 'p1', '{{}}', 'h', {stamp}, {stamp}), "
                f"('ga', 'patients', '1', 'p2', '{{}}', 'h', {stamp}, {stamp}), "
                f"('ga', 'patients', '2', 'p3', '{{}}', 'h', {stamp}, {stamp})"
            )
        )
    migrate(engine)
    with engine.connect() as conn:
        sources = dict(conn.execute(text("SELECT id, source FROM patient")).all())
        queued = conn.execute(text("SELECT count(*) FROM identity_pending WHERE rekey")).scalar()
    stats = link_pending(engine, IdentityConfig())
    with engine.connect() as conn:
        persons = dict(conn.execute(text("SELECT id, person_id FROM patient")).all())
        keys = conn.execute(text("SELECT count(*) FROM match_key")).scalar()
    engine.dispose()
    assert sources == {"p1": "rx", "p2": "ga", "p3": "ga"}
    assert queued == 3 and stats.linked == 3 and keys
    assert persons["p1"] == persons["p2"] != persons["p3"]  # the maternal surname left out, one person


def test_upgrade_to_the_declared_blocking_keys_rekeys_and_relinks_every_stored_patient(db_url: str) -> None:
    from pipeline.config import IdentityConfig
    from pipeline.sync.linking import link_pending

    engine = open_engine(db_url)
    stamp = "'2026-01-01T00:00:00+00:00'"
    with engine.begin() as conn:
        command.upgrade(_alembic(conn), "0005")
        for pid in ("p1", "p2"):
            conn.execute(
                text(
                    "INSERT INTO patient (id, sex, active, created_at, updated_at, given_name, family_name, "
                    f"birth_date, source) VALUES ('{pid}', 'female', true, {stamp}, {stamp}, 'Ana', 'Ruiz', "
                    f"'1990-05-01', 's-{pid}')"
                )
            )
            conn.execute(text(f"INSERT INTO match_key VALUES ('name_year', 'AN+RS:1990', '{pid}')"))
    migrate(engine)
    with engine.connect() as conn:
        queued = conn.execute(text("SELECT patient_id, rekey FROM identity_pending ORDER BY patient_id")).all()
    link_pending(engine, IdentityConfig())
    with engine.connect() as conn:
        types = set(conn.execute(text("SELECT key_type FROM match_key")).scalars())
        persons = set(conn.execute(text("SELECT person_id FROM patient")).scalars())
    engine.dispose()
    assert [(p, bool(r)) for p, r in queued] == [("p1", True), ("p2", True)]
    assert "name_year" not in types and "name_dob" in types
    assert len(persons) == 1 and None not in persons  # one person, found through the new keys


@pytest.mark.parametrize("given", [False, True], ids=["keys read back", "keys given"])
def test_blocking_skips_a_key_held_past_the_bound_and_pairs_the_rest(db_url: str, given: bool) -> None:
    """Blocking on the patients' stored keys, or on the same keys as the page that wrote them holds them."""
    from pipeline.identity.keys import ALONE
    from pipeline.storage import identity as store
    from pipeline.storage.load import key_rows

    engine = open_engine(db_url)
    migrate(engine)
    held = [("dob", "1990-01-01", p) for p in ("p1", "p2", "p3", "p4")]  # four holders: past a bound of three
    held += [("email", "ana@x.mx", p) for p in ("p1", "p2")]  # enough alone
    held += [("dob", "2000-01-01", q) for q in ("q1", "q2", "q3")]  # three holders: within the bound
    held += [("postal_code", "06700", q) for q in ("q1", "q2", "q3")]  # a second shared key
    held += [("postal_code", "44100", r) for r in ("r1", "r2")]  # one shared key, not alone: no candidates
    keys: dict[str, list[tuple[str, str]]] = {}
    for t, v, p in held:
        keys.setdefault(p, []).append((t, v))
    with engine.begin() as conn:
        store.replace_keys(conn, keys)
        rows = key_rows(keys)[0] if given else None
        found, skipped = store.candidates(conn, ["p1", "p2", "p3", "p4", "q1", "q2", "q3", "r1", "r2"], 3, ALONE, rows)
        # On SQLite, given keys are what is blocked on: none given, none looked up, whatever is stored.
        sqlite = conn.dialect.name == "sqlite"
        nothing = store.candidates(conn, ["p1", "q1"], 3, ALONE, []) if given and sqlite else ({}, 0)
    engine.dispose()
    assert nothing == ({}, 0)
    assert dict(found) == {
        "p1": {"p2"},
        "p2": {"p1"},
        "q1": {"q2", "q3"},
        "q2": {"q1", "q3"},
        "q3": {"q1", "q2"},
    }
    assert skipped == 4  # each of p1..p4's crowded birth date
