"""The load step: a page's rows written with SQL only, inside the caller's transaction; and the SQL that a
complete walk needs to settle deletions.

A page arrives as ``PageRows``, every row already built by the pure steps of ``pipeline.sync``: this module
neither maps nor validates. Canonical rows are updated only where a column really differs (``ON CONFLICT ...
DO UPDATE ... WHERE``), so a record that changed only in fields we do not keep writes no canonical row.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    MetaData,
    Table,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from pipeline.storage.db import among, driver_rows, raised_as_execute_raises, reading, upsert_insert, write_instant
from pipeline.storage.tables import (
    CANONICAL,
    Crosswalk,
    IdentityPending,
    MatchKey,
    PatientKeys,
    PatientMedic,
    PatientOrganization,
    Quarantine,
    SourceRecord,
    table_of,
)

_CHUNK = 1000  # keys per IN (...) list: far below SQLite's and PostgreSQL's parameter limits
# Keys per stored-hash lookup, sent as one parameter (``among``): a commit's group (``commit_records``' default)
# in one statement, compiled once a commit rather than once a thousand records.
_LOOKUP_CHUNK = 5_000
_LINK_TABLES = {"patient_medic": table_of(PatientMedic), "patient_organization": table_of(PatientOrganization)}
Keys = Sequence[Sequence[str]]  # a patient's (key type, key value) pairs: pipeline.identity.keys.match_keys
# A match_key row as ``key_rows`` makes it: a tuple of the table's columns in their order. A patient has some
# 17 keys, and a commit's keys travel from the mapping worker: as dicts they took twice the memory and twice
# the unpickling.
KEY_COLUMNS = ("key_type", "key_value", "patient_id")
Row = dict[str, Any] | tuple[Any, ...]  # a tuple: its table's columns in their order, named beside it


@dataclass
class PageRows:
    """Everything one page writes, as plain rows by table: the load step's whole input."""

    source: str
    stream: str
    canonical: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # table -> rows
    crosswalk: list[dict[str, Any]] = field(default_factory=list)
    # Entities whose crosswalk rows become exactly the page's (records stored before): entity type -> ids.
    described: dict[str, list[str]] = field(default_factory=dict)
    links: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # link table -> rows
    relinked_patients: list[str] = field(default_factory=list)  # their links are replaced by the page's
    # Identity: the page's patients (queued for linking) and their match keys, which replace their stored ones:
    # a match_key row each (a tuple of KEY_COLUMNS), and the patient's whole list as its patient_keys row
    # (``key_rows``).
    patients: list[str] = field(default_factory=list)
    match_keys: list[tuple[str, str, str]] = field(default_factory=list)
    patient_keys: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # source_record rows
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # one row a key


def stored_hashes(conn: Connection, source: str, stream: str, keys: list[str]) -> dict[str, tuple[str, bool]]:
    """The stored ``payload_hash`` of each of ``keys`` that is stored, with whether it is soft-deleted."""
    t = table_of(SourceRecord)
    found: dict[str, tuple[str, bool]] = {}
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        query = select(t.c.source_key, t.c.payload_hash, t.c.deleted_at.is_not(None)).where(
            t.c.source == source, t.c.stream == stream, among(conn, t.c.source_key, chunk)
        )
        for key, digest, deleted in driver_rows(conn, query):  # one a record fetched: no result rows
            found[key] = (digest, bool(deleted))
    return found


# The columns that say when a row changed, set to the transaction's write_instant: the rows were built before
# the transaction began (in a worker, a page ahead), and an incremental export relies on every stamp being taken
# once the write fence is held (pipeline.storage.export.fenced_snapshot).
_STAMPS = ("created_at", "updated_at", "first_seen_at", "last_seen_at")


def write(conn: Connection, rows: PageRows) -> None:
    """Write one page's rows; the caller commits."""
    at = write_instant(conn)
    for stamped in (*rows.canonical.values(), rows.records):
        if stamped:  # a table's rows share their columns: which are stamps is asked once
            stamp = dict.fromkeys((c for c in _STAMPS if c in stamped[0]), at)
            for row in stamped:
                row.update(stamp)
    for table_name, canonical in rows.canonical.items():
        upsert(conn, table_of(CANONICAL[table_name]), canonical, keep=("created_at",))
    _write_crosswalk(conn, rows)
    for table_name, table in _LINK_TABLES.items():
        if rows.relinked_patients:
            conn.execute(
                delete(table).where(
                    # one parameter, however many patients: a profiles listing is one page of them all
                    table.c.source == rows.source,
                    among(conn, table.c.patient_id, rows.relinked_patients),
                )
            )
        links = rows.links.get(table_name)
        if links:
            _insert_new(conn, table, links)
    _write_match_keys(conn, rows)
    upsert(conn, table_of(SourceRecord), rows.records, keep=("first_seen_at",))
    if rows.records:
        q = table_of(Quarantine)
        landed = [row["source_key"] for row in rows.records]
        conn.execute(
            delete(q).where(q.c.source == rows.source, q.c.stream == rows.stream, among(conn, q.c.source_key, landed))
        )
    upsert(conn, table_of(Quarantine), rows.quarantine)


def _write_match_keys(conn: Connection, rows: PageRows) -> None:
    """The page's patients' match keys in place of their stored ones, and the patients queued for linking."""
    stored_before = rows.described.get("patient")
    if stored_before:
        delete_keys(conn, stored_before)
    write_keys(conn, rows.match_keys, rows.patient_keys)
    if rows.patients:
        queue(conn, rows.patients, rows.records[0]["last_seen_at"] if rows.records else None)


def key_rows(keys: Mapping[str, Keys]) -> tuple[list[tuple[str, str, str]], list[dict[str, Any]]]:
    """Patients' match keys as rows: (match_key rows as KEY_COLUMNS tuples in key order, patient_keys rows). Sorted
    here, in the mapping worker: the load step writes them in key order (``_in_key_order``), and sorting what is
    sorted already costs it one pass."""
    each = sorted((t, v, p) for p, listed in keys.items() for t, v in listed)
    lists = [{"patient_id": p, "match_keys": orjson.dumps(listed).decode()} for p, listed in keys.items()]
    return each, lists


def write_keys(
    conn: Connection, match_keys: Sequence[tuple[str, str, str]], patient_keys: Sequence[dict[str, Any]]
) -> None:
    """Rows made by ``key_rows``; the patients' stored keys are deleted already (``delete_keys``)."""
    if match_keys:
        table = table_of(MatchKey)
        if not _copied_if_new(conn, table, match_keys, KEY_COLUMNS):
            _insert_new(conn, table, match_keys, KEY_COLUMNS)
    upsert(conn, table_of(PatientKeys), patient_keys)


def _copied_if_new(conn: Connection, table: Table, rows: Sequence[Row], columns: tuple[str, ...]) -> bool:
    """PostgreSQL, many rows: COPY them straight into ``table`` under a savepoint, and say whether they landed.

    Rows that are new almost always (the match keys of patients whose stored keys were just deleted) skip the
    staging table and the merge's conflict checks: 1,000 patients' 17,000 keys cost 0.08 s against 0.17-0.26 s.
    Should one be stored already (a patient another record wrote), the savepoint is rolled back and nothing is
    lost: the caller merges them as usual. (A page's identifiers are not sent this way: a record mentions
    entities other records name too, a medic its hospital, so their COPY failed on most pages.)"""
    if conn.dialect.name != "postgresql" or len(rows) < _COPY_FROM:
        return False
    try:
        with conn.begin_nested():
            _copy(conn, table, rows, columns)
    except IntegrityError:
        return False
    return True


def stored_keys(conn: Connection, patient_ids: Sequence[str], holding: str = "", lock: bool = False) -> dict[str, Keys]:
    """Each of these patients' stored match keys (a patient that has none stored is left out); ``holding``: only
    the lists whose JSON text holds it (only they are parsed); ``lock``: their rows locked until the transaction
    ends (PostgreSQL), in patient order."""
    t = table_of(PatientKeys)
    found: dict[str, Keys] = {}
    for start in range(0, len(patient_ids), _CHUNK):
        chunk = list(patient_ids[start : start + _CHUNK])
        query = select(t.c.patient_id, t.c.match_keys).where(among(conn, t.c.patient_id, chunk))
        if holding:  # the others' lists stay in the database (a batch's patients without an SSN: most)
            query = query.where(t.c.match_keys.contains(holding, autoescape=True))
        if lock:
            query = query.order_by(t.c.patient_id).with_for_update()
        for patient_id, listed in conn.execute(query).all():
            if holding in listed:
                found[patient_id] = orjson.loads(listed)  # [[key type, key value], ...]
    return found


def delete_keys(conn: Connection, patient_ids: Sequence[str]) -> None:
    """Delete these patients' match_key rows, each by its whole key (their patient_keys rows are replaced by
    ``write_keys``). The lists are read locked: another process replacing the same patient's keys meanwhile (a
    link pass re-keying it while a page rewrites it) would otherwise have its keys left behind for good, as
    nothing finds a match_key row but its patient's list."""
    mk = table_of(MatchKey)
    stored = stored_keys(conn, sorted(patient_ids), lock=True)
    gone = [{"t": t, "v": v, "p": p} for p, listed in stored.items() for t, v in listed]
    if gone:
        where = (mk.c.key_type == bindparam("t"), mk.c.key_value == bindparam("v"), mk.c.patient_id == bindparam("p"))
        conn.execute(delete(mk).where(*where), gone)


def queue(conn: Connection, patient_ids: Sequence[str], now: dt.datetime | None, rekey: bool = False) -> None:
    """Queue patients for the next link pass (pipeline.sync.linking); a queued patient stays queued once."""
    if patient_ids:
        at = now or dt.datetime.now(dt.UTC)
        rows = [{"patient_id": p, "queued_at": at, "rekey": rekey} for p in patient_ids]
        upsert(conn, table_of(IdentityPending), rows, keep=("queued_at",))


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keep: Iterable[str] = (),
    on: tuple[str, ...] | None = None,
) -> None:
    """INSERT ... ON CONFLICT (``on``, a unique key; the primary key by default) DO UPDATE the other columns but
    ``keep`` where any of them differs."""
    if rows:
        columns = tuple(rows[0])
        key = on or _primary_key(table)
        _bulk(
            conn,
            ("upsert", table.name, columns, tuple(keep), key),
            lambda: _upsert_statement(conn, table, columns, keep, key),
            _in_key_order(rows, columns, key),
        )


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """A plain INSERT of rows that all have the same columns: through the driver's executemany, or on
    PostgreSQL, from a few dozen rows on, through COPY (a linking batch's history and new persons, thousands of
    rows: a third of the time of the multi-row INSERTs)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql" and len(rows) >= _COPY_FROM:
        _copy(conn, table, rows, tuple(rows[0]))
        return
    _bulk(conn, ("plain insert", table.name, tuple(rows[0])), lambda: table.insert(), rows)


_COPY_FROM = 50


def _copy(conn: Connection, table: Table, rows: Sequence[Row], names: tuple[str, ...], into: str | None = None) -> None:
    """COPY ... FROM STDIN in the caller's transaction (into ``into``, a staging table, or the table itself):
    the values as the columns' bind processors make them (JSON as its text), written by psycopg's adapters."""
    dialect = conn.dialect
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    pairs = list(enumerate(processors))
    columns = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    driver = conn.connection.driver_connection
    assert driver is not None
    statement = f"COPY {into or table.name} ({columns}) FROM STDIN"
    # Raised as SQLAlchemy raises a statement's errors, so that callers report them by their first line alone
    # (pipeline.sync.messages.database_reason): the driver's text quotes the value it refused.
    with raised_as_execute_raises(conn, statement), driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in _tuples(rows, names):
            copy.write_row([p(row[i]) if p else row[i] for i, p in pairs])


def _staged(conn: Connection, key: tuple[Any, ...], build: Callable[[], Any], rows: Sequence[Row]) -> None:
    """PostgreSQL: the rows COPYed into a temporary table of this connection, then one INSERT ... SELECT with
    the statement's own ON CONFLICT clause. 17,000 match keys (a commit of 1,000 patients): 0.16 s against
    0.29 s as multi-row VALUES statements."""
    table: Table = build().table
    columns = key[2]
    compiled = _COMPILED.get(("staged", *key))
    if compiled is None:
        stage = f"stage_{table.name}_{hashlib.blake2b(','.join(columns).encode(), digest_size=5).hexdigest()}"
        staging = Table(stage, MetaData(), *(Column(c, table.c[c].type) for c in columns))
        merge = build().from_select(list(columns), select(*(staging.c[c] for c in columns)))
        compiled = _Compiled(merge.compile(dialect=conn.dialect).string, columns, (), False, stage)
        _COMPILED[("staged", *key)] = compiled
    # Every time, not once a connection: a rolled-back transaction (a savepoint's too) takes the table with it.
    listed = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in columns)
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {compiled.stage} ON COMMIT DELETE ROWS AS "
        f"SELECT {listed} FROM {table.name} WITH NO DATA"
    )
    _copy(conn, table, rows, columns, into=compiled.stage)
    conn.exec_driver_sql(compiled.sql)
    conn.exec_driver_sql(f"TRUNCATE {compiled.stage}")  # a second merge of this shape in the transaction


def _insert_new(conn: Connection, table: Table, rows: Sequence[Row], columns: tuple[str, ...] | None = None) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: rows whose key is stored already stay as they are. Dict rows, or
    tuples of ``columns``."""
    if columns is not None and list(columns) != [c.name for c in table.columns if c.name in columns]:
        raise ValueError(f"tuple rows of {table.name} must give their columns in the table's order, not {columns}")
    columns = columns or tuple(rows[0])
    ordered = _in_key_order(rows, columns, _primary_key(table))
    _bulk(conn, ("insert", table.name, columns), lambda: upsert_insert(conn, table).on_conflict_do_nothing(), ordered)


def _primary_key(table: Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.primary_key.columns)


def _in_key_order(rows: Sequence[Row], columns: tuple[str, ...], key: tuple[str, ...]) -> list[Row]:
    """The rows sorted by their table's ``key`` (stably: of two rows with one key, the later still wins).

    Keys such as canonical ids and match keys are random: inserted as they come, a commit's rows land all over
    the table's B-tree, and once it outgrows the page cache each row costs pages read, dirtied and spilled again.
    In key order a commit walks the tree once (100,000 patients into SQLite, match keys alone: 31 -> 27 s).
    """
    if not isinstance(rows[0], tuple):
        return sorted(rows, key=itemgetter(*key))
    if columns == key:  # the whole row is its key (match_key): compared as it is, sorted already by key_rows
        return sorted(rows)  # type: ignore[type-var]
    return sorted(rows, key=itemgetter(*(columns.index(k) for k in key)))


def _upsert_statement(
    conn: Connection, table: Table, columns: tuple[str, ...], keep: Iterable[str], key: tuple[str, ...]
) -> Any:
    stmt = upsert_insert(conn, table)
    changing = [c for c in columns if c not in key and c not in keep]
    compared = [c for c in changing if c not in ("updated_at", "last_seen_at", "created_at", "run_id")]
    return stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={c: stmt.excluded[c] for c in changing},
        where=or_(*(table.c[c].is_distinct_from(stmt.excluded[c]) for c in compared)),
    )


@dataclass(frozen=True)
class _Compiled:
    sql: str
    columns: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]  # each column's bind processor (dates, JSON, ...)
    positional: bool
    stage: str = ""  # PostgreSQL: the temporary table a staged merge reads (_staged)
    # The date and timestamp columns: _parameters converts each distinct value of theirs once a statement (a
    # commit's rows share their few stamps, and SQLite's conversion to text cost 5 of a 100,000-patient
    # backfill's seconds).
    dated: frozenset[int] = frozenset()


_COMPILED: dict[tuple[Any, ...], _Compiled] = {}


def _bulk(conn: Connection, key: tuple[Any, ...], build: Callable[[], Any], rows: Sequence[Row]) -> None:
    """Execute a statement for every row through the driver's executemany: the statement is compiled once per
    dialect and shape (``key``, whose third item names the rows' columns, in a tuple row's order), and each row
    becomes a tuple (or a dict) converted by the columns' own bind processors.

    Rows go to the driver as they are, with none of SQLAlchemy's per-row parameter handling: on a page of a
    thousand records that handling cost more than the database's own work.
    """
    dialect = conn.dialect
    if dialect.name == "postgresql" and len(rows) >= _COPY_FROM:
        _staged(conn, key, build, rows)
        return
    compiled = _COMPILED.get((dialect.name, *key))
    if compiled is None:
        columns = key[2]
        statement = build().compile(dialect=dialect, column_keys=list(columns))
        positional = bool(dialect.positional)
        names = tuple(statement.positiontup) if positional else tuple(columns)
        types = [statement.binds[name].type.dialect_impl(dialect) for name in names]  # JSONB on PostgreSQL
        processors = tuple(type_.bind_processor(dialect) for type_ in types)
        dated = frozenset(i for i, type_ in enumerate(types) if isinstance(type_, Date | DateTime))
        compiled = _Compiled(statement.string, names, processors, positional, dated=dated)
        _COMPILED[(dialect.name, *key)] = compiled
    conn.exec_driver_sql(compiled.sql, _parameters(compiled, rows, key[2]))


def _parameters(compiled: _Compiled, rows: Sequence[Row], columns: tuple[str, ...]) -> Sequence[Any]:
    """The rows as the driver takes them. Most columns need no conversion: their values are picked in C
    (``itemgetter``), and only the few with a bind processor (dates, JSON) are converted in Python."""
    names, processors = compiled.columns, compiled.processors
    converted = [(i, functools.cache(p) if i in compiled.dated else p) for i, p in enumerate(processors) if p]
    values = _tuples(rows, names)
    if converted:
        values = [_converted(row, converted) for row in values]
    return values if compiled.positional else [dict(zip(names, row, strict=True)) for row in values]


def _tuples(rows: Sequence[Row], names: tuple[str, ...]) -> Sequence[tuple[Any, ...]]:
    """Rows as tuples of ``names``: dict rows picked by name; tuple rows are in that order already."""
    if isinstance(rows[0], tuple):
        return rows  # type: ignore[return-value]
    pick = itemgetter(*names)
    return [pick(row) for row in rows] if len(names) > 1 else [(pick(row),) for row in rows]


def _converted(row: tuple[Any, ...], converters: list[tuple[int, Callable[[Any], Any]]]) -> tuple[Any, ...]:
    out = list(row)
    for i, convert in converters:
        out[i] = convert(out[i])
    return tuple(out)


def _write_crosswalk(conn: Connection, rows: PageRows) -> None:
    """The page's crosswalk rows, after removing those its described entities no longer carry.

    Only the entity a record is about (a Prescrypto patient, a profiles patient) loses identifiers. The entities
    a record merely mentions (a medic's hospital, a patient's doctors) keep theirs: other records mention them
    too, and one record that stopped mentioning them says nothing about their identifiers.
    """
    cw = table_of(Crosswalk)
    # A row of one source and entity type as one string, so the rows to keep are one parameter: entity ids
    # have a fixed length and id types never hold the separator, so no two rows give the same string.
    sep = "\x1f"
    for entity_type, ids in rows.described.items():
        wanted = set(ids)
        carried = [
            f"{r['entity_id']}{sep}{r['id_type']}{sep}{r['id_value']}"
            for r in rows.crosswalk
            if r["entity_id"] in wanted
        ]
        conn.execute(
            delete(cw).where(
                cw.c.source == rows.source,
                cw.c.entity_type == entity_type,
                among(conn, cw.c.entity_id, sorted(ids)),
                ~among(conn, cw.c.entity_id + sep + cw.c.id_type + sep + cw.c.id_value, carried),
            )
        )
    if rows.crosswalk:
        _insert_new(conn, cw, rows.crosswalk)


def refresh_statistics(engine: Engine, identity: bool = True, tables: Sequence[str] = ()) -> None:
    """Let PostgreSQL's planner see how much the tables a page reads grew during a bulk load.

    Without statistics it guesses that one row matches (source, stream) and scans every stored record of
    the stream to look up a page's hashes, which grows slower with every page of a first backfill; and it
    scanned every match key for a linking batch (a third of a million rows at 20,000 patients), where the key
    index finds each. ``identity``: the identity tables too (a run that links as it goes); ``tables``: these only.

    What those plans need is each table's size and which columns are unique: a sample of 3,000 rows a table
    (statistics target 10) shows both, and costs a tenth of the default 30,000 (seven tables at 50,000 patients:
    1.75-1.89 s -> 0.17-0.20 s). Autovacuum takes the full statistics once the load has grown the tables by a
    tenth again; a run refreshes only while it at least doubles its stream's records (``stream_records``).
    """
    if engine.dialect.name == "postgresql":
        listed = ", ".join(tables or ("source_record", "crosswalk", *(IDENTITY_TABLES if identity else ())))
        with engine.connect() as conn:
            conn.execute(text("SET LOCAL default_statistics_target = 10"))
            conn.execute(text(f"ANALYZE {listed}"))
            conn.commit()


def stream_records(engine: Engine, source: str, stream: str, up_to: int = 1_000_000) -> int:
    """The records of this stream stored so far, counted ``up_to`` a bound (PostgreSQL; 0 on SQLite, which a
    refresh leaves alone).

    A run that inserts fewer than that has not grown the stream enough to change a plan. Counted for the stream,
    not read off the table's statistics: a new stream's records in a large table are what the statistics miss
    (the planner then takes its (source, stream) for one row and filters the whole stream for every lookup).
    The bound keeps the count a fraction of a second on any stream; a larger one's run refreshes (cheaply) once
    it has inserted that many."""
    if engine.dialect.name != "postgresql":
        return 0
    t = table_of(SourceRecord)
    held = select(t.c.source_key).where(t.c.source == source, t.c.stream == stream).limit(up_to).subquery()
    with reading(engine).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(held)).scalar_one())


IDENTITY_TABLES = ("patient", "match_key", "patient_keys", "person", "identity_link")


def missing_records(conn: Connection, source: str, stream: str, seen: Container[str]) -> tuple[dict[str, str], int]:
    """Records stored as live that a complete sweep did not see (key -> canonical id), and how many are live.

    The live rows are streamed, not fetched at once: only the missing ones are kept.
    """
    t = table_of(SourceRecord)
    query = select(t.c.source_key, t.c.entity_id).where(
        t.c.source == source, t.c.stream == stream, t.c.deleted_at.is_(None)
    )
    gone, count = {}, 0
    for key, entity_id in driver_rows(conn, query, streamed=True):  # every record stored: no result rows
        count += 1
        if key not in seen:
            gone[key] = entity_id
    return gone, count


def clear_quarantine(conn: Connection, source: str, stream: str, still_bad: set[str]) -> int:
    """Remove the quarantine rows of records a complete sweep found good again, or no longer found at all."""
    q = table_of(Quarantine)
    stored = conn.execute(select(q.c.source_key).where(q.c.source == source, q.c.stream == stream)).scalars()
    cleared = sorted(set(stored) - still_bad)
    for start in range(0, len(cleared), _CHUNK):
        chunk = cleared[start : start + _CHUNK]
        conn.execute(delete(q).where(q.c.source == source, q.c.stream == stream, q.c.source_key.in_(chunk)))
    return len(cleared)


def soft_delete(conn: Connection, source: str, stream: str, entity_table: str, gone: dict[str, str]) -> None:
    """Mark the records, and the canonical rows they landed on, as deleted; nothing is dropped."""
    now = write_instant(conn)
    t = table_of(SourceRecord)
    entity = table_of(CANONICAL[entity_table])
    keys = sorted(gone)
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        conn.execute(
            update(t)
            .where(and_(t.c.source == source, t.c.stream == stream, t.c.source_key.in_(chunk)))
            .values(deleted_at=now)
        )
        ids = [gone[key] for key in chunk if gone[key]]
        # A canonical row another live record still lands on (the same id spelt "007" before and "7" now) stays.
        still_landed = select(t.c.entity_id).where(
            t.c.source == source, t.c.deleted_at.is_(None), t.c.entity_id.is_not(None)
        )
        conn.execute(
            update(entity)
            .where(entity.c.id.in_(ids), entity.c.id.not_in(still_landed.where(t.c.entity_id.in_(ids))))
            .values(deleted_at=now, updated_at=now)
        )
        if entity_table == "patient":  # it leaves its person at the next link pass
            queue(conn, ids, now)
