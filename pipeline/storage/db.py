"""Engines and schema migrations: the program creates and upgrades its own database (alembic)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    LargeBinary,
    Select,
    String,
    Table,
    cast,
    create_engine,
    event,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from pipeline.storage.plain import HEAD

MIGRATIONS = Path(__file__).parent / "migrations"


def open_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and write-locking transactions.

    A failing statement's parameters are never part of its error (``hide_parameters``): they are patient data.
    """
    kwargs.setdefault("hide_parameters", True)
    kwargs.setdefault("json_serializer", json_text)
    if url.startswith("sqlite"):
        _create_private(make_url(url).database)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # No JIT: every statement here is short, and a linking batch's blocking query, whose estimated cost passes
    # jit_above_cost, spent half its time compiling (166 of 323 ms for 1,000 patients).
    # connect_args replace the URL's own libpq options: they are kept, ahead of ours.
    given = make_url(url).query.get("options")
    options = " ".join([*([given] if isinstance(given, str) else given or []), "-c jit=off"])
    engine = create_engine(url, pool_pre_ping=True, connect_args={"options": options}, **kwargs)
    event.listen(engine, "begin", _postgres_begin)
    # A page's upsert as multi-row VALUES statements, not one round trip per row (SQLAlchemy does this
    # for psycopg only when asked; its "insertmanyvalues" batching keeps each statement under the
    # parameter limit).
    engine.dialect.use_insertmanyvalues_wo_returning = True  # type: ignore[attr-defined]
    return engine


def json_text(value: Any) -> str:
    """A JSON column's text, by orjson: the standard library's encoder was a tenth of a backfill's load step
    (every stored payload). What orjson refuses (integers beyond 64 bits, keys that are not strings) takes the
    standard encoder."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def _create_private(path: str | None) -> None:
    """Create a new SQLite file readable by its owner only: it holds patient data. SQLite gives its journal and
    WAL files the same permissions. An existing file is left as it is."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (status, analysts) never block the sync
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint in WAL mode; fast commits
    cursor.execute("PRAGMA busy_timeout=30000")
    # 16 MiB of page cache a connection (the default is 2 MiB): a backfill's match keys and links land all over
    # their indexes, and with the default cache most of a commit's inserts read a page back from the file first.
    # 100,000 patients linked: 121 s with 2 MiB, 101 s with 64 MiB (commits of 10,000); 97 s with 16 MiB, 92 s
    # with 64 MiB (commits of 5,000). Every pooled connection grows its own cache, and 64 MiB cost a
    # 20,000-record backfill 60 MiB more peak memory than 16.
    cursor.execute("PRAGMA cache_size=-16384")
    cursor.close()


_READ_ONLY = "patientsync_read_only"
_WRITE_INSTANT = "patientsync_write_instant"
# PostgreSQL: every write transaction holds this advisory lock shared (writers never wait for each other); an
# export's horizon takes it alone for an instant (pipeline.storage.export.fenced_snapshot). SQLite's write lock
# plays the same part there.
WRITE_FENCE = 7270618


def reading(engine: Engine) -> Engine:
    """The engine for read-only work: its transactions neither take nor wait for the write fence (on SQLite they
    start deferred: a lookup beside a long page transaction), and have no ``write_instant``."""
    return engine.execution_options(**{_READ_ONLY: True})


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def write_instant(conn: Connection) -> dt.datetime:
    """The instant every row a write transaction stamps (``updated_at``, ``last_seen_at``, ``deleted_at``,
    ``changed_at``) carries: taken once the transaction holds the write fence. An export's horizon is taken while
    no write holds it, so a row the export's snapshot does not show is stamped after its horizon: ``--since``
    that horizon finds every change once."""
    instant = conn.info.get(_WRITE_INSTANT)
    if instant is None:
        raise RuntimeError("write_instant outside a write transaction")  # a bug, not a user's error
    return instant


def _sqlite_begin(connection: Any) -> None:
    if connection.get_execution_options().get(_READ_ONLY):
        connection.info.pop(_WRITE_INSTANT, None)
        connection.exec_driver_sql("BEGIN")
        return
    # IMMEDIATE takes the write lock up front: a page transaction reads hashes and then writes, and a
    # deferred one would fail with SQLITE_BUSY if another writer committed in between.
    connection.exec_driver_sql("BEGIN IMMEDIATE")
    connection.info[_WRITE_INSTANT] = dt.datetime.now(dt.UTC)


def _postgres_begin(connection: Any) -> None:
    if connection.get_execution_options().get(_READ_ONLY):
        connection.info.pop(_WRITE_INSTANT, None)
        return
    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock_shared({WRITE_FENCE})")
    connection.info[_WRITE_INSTANT] = dt.datetime.now(dt.UTC)


def upsert_insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_update`` / ``on_conflict_do_nothing``."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe to call at every start, from several processes."""
    if stored_revision(engine) == HEAD:
        return  # the common case: start without loading alembic (a third of a second of imports)
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Two processes starting at once must not both create the tables.
            connection.execute(text("SELECT pg_advisory_xact_lock(7270616)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def stored_revision(engine: Engine) -> str | None:
    """The schema revision alembic recorded in the database; None for a database it never touched."""
    if engine.dialect.name == "sqlite":
        probe = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    else:
        probe = "SELECT to_regclass('alembic_version')"
    with reading(engine).connect() as conn:
        if conn.exec_driver_sql(probe).scalar() is None:
            return None
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def sqlite_revision(path: str) -> str | None:
    """``stored_revision`` of an existing SQLite file, read without changing it: opened read-only, and without
    the engine's connect settings (which would turn on WAL, a write)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)) as conn:
        probe = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        if conn.execute(probe).fetchone() is None:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])


def driver_rows(conn: Connection, query: Select[Any], streamed: bool = False) -> Iterator[tuple[Any, ...]]:
    """The rows of ``query`` as the driver hands them back, without SQLAlchemy's result rows: for the lookups a
    run makes for every record it fetches. Only for columns that need no result processing (text and integers;
    a boolean comes back from SQLite as 0 or 1), and parameters that need no bind processing. Runs in the
    connection's transaction, begun as ``execute`` begins one; ``streamed``: read in slices (on PostgreSQL
    through a server-side cursor), never all rows at once.

    On SQLite, unless streamed, the rows come back packed in one JSON text. sqlite3 lets go of the GIL for every
    row it steps to, and while the prefetch thread keeps it busy, each row waits to take it back: a re-sync's
    stored hashes (100,000 rows) spent 2.8-4.2 s of wall time and 0.6-0.8 s of CPU in the lookup as rows, against
    0.8-1.0 s and 0.5 s packed, and Row objects cost more again (alone: 0.45-0.51 s, driver rows 0.20 s)."""
    if not conn.in_transaction():
        conn.begin()  # what execute's autobegin does: the dialect's begin event (SQLite: BEGIN, a snapshot)
    packed = conn.dialect.name == "sqlite" and not streamed
    if packed:
        rows = query.subquery()
        # As bytes: sqlite3 would decode the text itself, and a stored text that is not UTF-8 would make its
        # error quote the whole packed lookup (every key of the group) where a row's error quotes one value.
        query = select(cast(func.json_group_array(func.json_array(*rows.c)), LargeBinary))
    compiled = query.compile(dialect=conn.dialect)
    params = compiled.construct_params()
    values = tuple(params[name] for name in compiled.positiontup or ()) if compiled.positional else params
    named = streamed and conn.dialect.name == "postgresql"
    cursor = conn.connection.cursor(name="driver_rows") if named else conn.connection.cursor()
    try:
        with raised_as_execute_raises(conn, compiled.string):
            cursor.execute(compiled.string, values)
            if packed:
                (packed_rows,) = cursor.fetchone() or (b"[]",)  # an aggregate: always one row
                try:
                    unpacked = orjson.loads(packed_rows)
                except orjson.JSONDecodeError:
                    raise conn.dialect.loaded_dbapi.DataError("a stored text is not valid UTF-8") from None
                yield from map(tuple, unpacked)
                return
            while sliced := cursor.fetchmany(_SLICE) if streamed else cursor.fetchall():
                yield from sliced
                if not streamed:
                    return
    finally:
        cursor.close()


@contextlib.contextmanager
def raised_as_execute_raises(conn: Connection, statement: str) -> Iterator[None]:
    """A driver's error inside, for work done on the driver's own cursor, raised as ``execute`` raises it:
    SQLAlchemy's error, whose text hides the parameters (patient data; callers report a database error by its
    first line), and a connection the server ended invalidated, so that the pool opens another and no rollback is
    tried on it."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            statement, None, exc, dbapi.Error, hide_parameters=True, connection_invalidated=lost
        ) from exc


_SLICE = 5_000  # rows a streamed read holds at once


def among(conn: Connection, column: Any, keys: list[str]) -> Any:
    """``column IN keys`` with the keys as ONE parameter (an array; in SQLite a JSON list).

    An IN list of N parameters is a new statement for every N, re-rendered and re-prepared at every page;
    one parameter keeps one cached statement. It halves the per-page lookup on both databases.
    """
    if conn.dialect.name == "postgresql":
        return column == func.any(literal(keys, ARRAY(String)))
    return column.in_(select(func.json_each(literal(orjson.dumps(keys).decode())).table_valued("value").c.value))
