"""The migrations build exactly the tables the models declare, on both databases, and upgrade a database
created by the first release without losing its rows."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from pipeline.db import MIGRATIONS, migrate, open_engine


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
    assert diff == [], "a model changed without a migration: add a revision under pipeline/migrations/versions"


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
