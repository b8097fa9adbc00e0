"""The database through its own DB-API driver (sqlite3, psycopg), without SQLAlchemy: for ``status``, which
reads a few counts and must answer in a fraction of a second, and importing SQLAlchemy with the table models
takes longer than that (benchmarks.startup). Everything that writes goes through ``pipeline.storage.db``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.storage.urls import DatabaseUrl

if TYPE_CHECKING:
    from sqlalchemy import Engine

HEAD = "0010"  # the newest schema revision (pipeline/storage/migrations; tests/test_schema.py holds them equal)


def aware(value: dt.datetime) -> dt.datetime:
    """A stored time as UTC: SQLite hands back naive datetimes, and everything stored is UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


class Plain:
    """A DB-API connection and its dialect: statements take ``?`` placeholders on both, and SQLite's stored text
    times and JSON come back as Python values, as SQLAlchemy's column types would give them."""

    def __init__(self, conn: Any, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def value(self, sql: str, *params: Any) -> Any:
        found = self.rows(sql, *params)
        return found[0][0] if found else None

    def revision(self) -> str | None:
        """The schema revision alembic recorded; None for a database it never set up."""
        probe = (
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            if self.dialect == "sqlite"
            else "SELECT to_regclass('alembic_version')::text"
        )
        if self.value(probe) is None:
            return None
        return self.value("SELECT version_num FROM alembic_version")

    @staticmethod
    def time(value: Any) -> dt.datetime | None:
        """A stored time, as UTC."""
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return None if value is None else aware(value)

    @staticmethod
    def json(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value


# Query parameters SQLAlchemy's psycopg dialect reads itself (several hosts) or the engine joins with its own
# (options, beside jit=off): a URL with them is read through the engine, as every other command reads it.
_ENGINE_ONLY = frozenset({"host", "hostaddr", "port", "options"})


def fast_path(url: DatabaseUrl) -> bool:
    """Whether ``connect`` opens ``url`` exactly as the engine would: an existing SQLite file named plainly, or a
    PostgreSQL URL whose query holds no parameter the engine treats apart. Anything else (a new file, memory, a
    SQLite URI) goes the engine's way."""
    keys = [key for key, _ in url.query]
    if url.backend == "postgresql":
        return len(keys) == len(set(keys)) and not _ENGINE_ONLY.intersection(keys)
    database = url.database or ""
    plain_file = url.backend == "sqlite" and database not in ("", ":memory:") and not database.startswith("file:")
    return plain_file and not keys and Path(database).is_file()


@contextlib.contextmanager
def connect(url: DatabaseUrl) -> Iterator[Plain]:
    """A connection to ``url``, which must be on the ``fast_path``, for reading; the driver's errors pass through."""
    if url.backend == "sqlite":
        conn: Any = sqlite3.connect(str(url.database), timeout=30)
    else:
        import psycopg  # noqa: PLC0415 - SQLite users never pay for the PostgreSQL driver

        # As SQLAlchemy's psycopg dialect passes them: an empty part is left out, for libpq's defaults and
        # environment (PGDATABASE, PGUSER, ...) to fill.
        given: dict[str, Any] = {"host": url.host, "port": url.port, "user": url.username, "password": url.password}
        given |= {"dbname": url.database, **dict(url.query)}
        conn = psycopg.connect(autocommit=True, **{key: value for key, value in given.items() if value})
    try:
        yield Plain(conn, url.backend)
    finally:
        conn.close()


def driver_errors() -> tuple[type[Exception], ...]:
    """The errors ``connect``'s drivers raise (psycopg's once it is loaded)."""
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error,) if psycopg is None else (sqlite3.Error, psycopg.Error)


@contextlib.contextmanager
def borrow(engine: Engine) -> Iterator[Plain]:
    """The driver's connection under one of ``engine``'s, for a caller that holds an engine (the console)."""
    pooled = engine.raw_connection()
    try:
        yield Plain(pooled.driver_connection, engine.dialect.name)
    finally:
        pooled.close()  # back to the pool, rolled back
