"""The identity tables read and written with SQL only: the link queue, blocking through match keys, persons
and their members, links and history. Every function runs inside the caller's transaction."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Connection,
    String,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from pipeline.storage.db import among
from pipeline.storage.load import Keys, delete_keys, insert_rows, key_rows, queue, stored_keys, upsert, write_keys
from pipeline.storage.tables import (
    DEMOGRAPHIC,
    Crosswalk,
    IdentityHistory,
    IdentityLink,
    IdentityModel,
    IdentityPending,
    LinkStatus,
    MatchKey,
    Origin,
    Patient,
    PatientKeys,
    Person,
    table_of,
)

_CHUNK = 1000
_KEYS_A_STATEMENT = 17 * _CHUNK  # given keys looked up by one statement: about a chunk of patients' keys
_patient, _person, _key = table_of(Patient), table_of(Person), table_of(MatchKey)
_patient_keys = table_of(PatientKeys)
_link, _history, _pending = table_of(IdentityLink), table_of(IdentityHistory), table_of(IdentityPending)


def _chunks(items: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


# PostgreSQL: linkers of several processes take turns, a batch each (SQLite's one writer already does).
_LINKERS = 7270617


def take_linkers_turn(conn: Connection, wait: bool = True) -> bool:
    """Hold the linkers' lock until the transaction ends; without ``wait``, only if it is free at once."""
    if conn.dialect.name != "postgresql":
        return True
    if wait:
        conn.execute(select(func.pg_advisory_xact_lock(_LINKERS)))
        return True
    return bool(conn.execute(select(func.pg_try_advisory_xact_lock(_LINKERS))).scalar())


def live_patient_ids(conn: Connection, limit: int) -> list[str]:
    return list(conn.execute(select(_patient.c.id).where(_patient.c.deleted_at.is_(None)).limit(limit)).scalars())


def store_model(conn: Connection, model: dict[str, Any], trained_at: dt.datetime, summary: str) -> int:
    """A newly trained model as the next version; returns the version."""
    result = conn.execute(insert(table_of(IdentityModel)).values(model=model, trained_at=trained_at, summary=summary))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def pending(conn: Connection, limit: int) -> list[tuple[str, bool]]:
    """The next queued patients (oldest first) and whether their match keys are to be derived again."""
    query = select(_pending.c.patient_id, _pending.c.rekey).order_by(_pending.c.queued_at, _pending.c.patient_id)
    return [(p, bool(r)) for p, r in conn.execute(query.limit(limit)).all()]


def pending_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(_pending)).scalar() or 0)


def dequeue(conn: Connection, patient_ids: Sequence[str]) -> None:
    for chunk in _chunks(patient_ids):
        conn.execute(delete(_pending).where(among(conn, _pending.c.patient_id, chunk)))


def queue_all(conn: Connection, now: dt.datetime) -> int:
    """Queue every live patient (``link --rebuild``); returns how many."""
    ids = list(conn.execute(select(_patient.c.id).where(_patient.c.deleted_at.is_(None))).scalars())
    for chunk in _chunks(ids):
        queue(conn, chunk, now)
    return len(ids)


def patient_rows(conn: Connection, patient_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Patient rows by id, each with its SSN hash (from its match keys) as ``ssn_hash``."""
    rows: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(patient_ids))):
        for row in conn.execute(select(_patient).where(among(conn, _patient.c.id, chunk))).mappings().all():
            rows[row["id"]] = {**row, "ssn_hash": None}
        for patient_id, keys in stored_keys(conn, chunk, holding='"ssn"').items():
            if patient_id in rows:
                rows[patient_id]["ssn_hash"] = next((value for kind, value in keys if kind == "ssn"), None)
    return rows


def lock_patients(conn: Connection, patient_ids: Sequence[str]) -> None:
    """PostgreSQL: hold these patients' rows until the transaction ends (in id order, as every writer takes
    them). SQLite's one writer needs no lock."""
    if conn.dialect.name == "postgresql":
        for chunk in _chunks(sorted(set(patient_ids))):
            query = select(_patient.c.id).where(among(conn, _patient.c.id, chunk)).order_by(_patient.c.id)
            conn.execute(query.with_for_update()).all()


def replace_keys(conn: Connection, keys: Mapping[str, Keys]) -> None:
    """Write these patients' match keys in place of their stored ones."""
    ids = sorted(keys)
    delete_keys(conn, ids)
    write_keys(conn, *key_rows({p: keys[p] for p in ids}))


def _keys_of(conn: Connection, patient_ids: list[str]) -> Any:
    """These patients' match keys as rows (patient_id, key_type, key_value), unfolded from their patient_keys
    lists in the database, in key order: the index probes made for them then walk the key index in order
    (5,000 patients' keys: 0.45 -> 0.35 s)."""
    key_type: Any
    key_value: Any
    if conn.dialect.name == "postgresql":
        each = func.json_array_elements(cast(_patient_keys.c.match_keys, JSON)).table_valued("value")
        key_type, key_value = (each.c.value.op("->>")(literal_column(str(i))) for i in (0, 1))
    else:
        each = func.json_each(_patient_keys.c.match_keys).table_valued("value")
        key_type, key_value = (func.json_extract(each.c.value, f"$[{i}]") for i in (0, 1))
    return (
        select(_patient_keys.c.patient_id, key_type.label("key_type"), key_value.label("key_value"))
        .select_from(_patient_keys)
        .join(each, true())
        .where(among(conn, _patient_keys.c.patient_id, patient_ids))
        .order_by(key_type, key_value)
    )


def _key_chunks(
    conn: Connection, patient_ids: Sequence[str], keys: Sequence[tuple[str, str, str]] | None
) -> Iterator[Any]:
    """The patients' keys as CTEs of (patient_id, key_type, key_value) rows in key order, materialized so that
    the lookups made for them walk the key index in order: unfolded from ``patient_keys`` a chunk of patients
    at a time; or on SQLite, given ``keys`` (the match_key rows of a page being written, sorted already), sent
    as one JSON parameter, which spares SQLite unfolding and sorting them again (100,000 patients' linked
    backfill: 9.7 -> 6.6 s of blocking). PostgreSQL reads them back: sent as three arrays, they measured 6-13%
    slower."""
    if keys is not None and conn.dialect.name == "sqlite":
        for start in range(0, len(keys), _KEYS_A_STATEMENT):
            given = func.json_each(literal(orjson.dumps(keys[start : start + _KEYS_A_STATEMENT]).decode()))
            value = given.table_valued("value").c.value
            key_type, key_value, patient_id = (value.op("->>")(literal_column(str(i))) for i in range(3))
            m = select(patient_id.label("patient_id"), key_type.label("key_type"), key_value.label("key_value"))
            yield m.cte("m").prefix_with("MATERIALIZED")
        return
    for chunk in _chunks(sorted(set(patient_ids))):
        yield _keys_of(conn, chunk).cte("m").prefix_with("MATERIALIZED")


def candidates(
    conn: Connection,
    patient_ids: Sequence[str],
    bound: int,
    alone: Collection[str],
    keys: Sequence[tuple[str, str, str]] | None = None,
) -> tuple[dict[str, set[str]], int]:
    """For each patient, the other patients that are its candidates: those sharing a key of a type in ``alone``
    or two keys, through the keys held by at most ``bound`` patients; and how many of the patients' keys were
    skipped as too common (a placeholder birth date, a very common name).

    Each key is looked up once, for at most ``bound`` + 1 of its holders (LIMIT), which reads that many index
    entries however many patients hold it: a count, or a join, would read them all and cost more per patient as
    the database grows. Only keys with another holder come back (most of a backfill's keys have none), with
    their holders in one string; the rule is applied to those few here. ``keys``: the patients' match_key rows,
    when the caller holds them (``_key_chunks``)."""
    c = _key.alias("c")
    joined = func.string_agg if conn.dialect.name == "postgresql" else func.group_concat
    shared: dict[tuple[str, str], int] = defaultdict(int)  # (patient, other) -> keys they share
    strong: set[tuple[str, str]] = set()  # pairs sharing a key enough alone
    skipped = 0
    for m in _key_chunks(conn, patient_ids, keys):
        holder = select(c.c.patient_id).where(c.c.key_type == m.c.key_type, c.c.key_value == m.c.key_value)
        held = holder.correlate(m).limit(bound + 1).subquery("held")
        holders = select(joined(held.c.patient_id, " ")).scalar_subquery()  # patient ids are uuids: no space
        looked_up = select(m.c.patient_id, m.c.key_type, holders.label("holders")).subquery("k")
        query = select(looked_up).where(looked_up.c.holders.contains(" "))  # another holder than the patient itself
        for patient_id, key_type, held_by in conn.execute(query):
            others = held_by.split(" ")
            if len(others) > bound:
                skipped += 1
                continue
            for other in others:
                if other != patient_id:
                    shared[(patient_id, other)] += 1
                    if key_type in alone:
                        strong.add((patient_id, other))
    found: dict[str, set[str]] = defaultdict(set)
    for pair, count in shared.items():
        if count >= 2 or pair in strong:
            found[pair[0]].add(pair[1])
    return found, skipped


def members(conn: Connection, person_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """Each person's live patients: person id -> {patient id: source}."""
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for chunk in _chunks(sorted(set(person_ids))):
        query = select(_patient.c.person_id, _patient.c.id, _patient.c.source).where(
            among(conn, _patient.c.person_id, chunk), _patient.c.deleted_at.is_(None)
        )
        for person_id, patient_id, source in conn.execute(query).all():
            found[person_id][patient_id] = source or ""
    return found


def links_of(conn: Connection, patient_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Every stored link of these patients."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for chunk in _chunks(sorted(set(patient_ids))):
        for row in conn.execute(select(_link).where(among(conn, _link.c.patient_id, chunk))).mappings().all():
            found[row["patient_id"]].append(dict(row))
    return found


def set_persons(conn: Connection, person_of: Mapping[str, str | None]) -> None:
    """patient.person_id of each of these patients."""
    pairs = sorted(person_of.items())
    if not pairs:
        return
    if conn.dialect.name == "postgresql":
        # One statement joining the pairs as two arrays, not one a patient: a linking batch's 5,000 UPDATEs were
        # 5,000 statements for the server to run and the driver to send.
        given = (
            func.unnest(literal([p for p, _ in pairs], ARRAY(String)), literal([q for _, q in pairs], ARRAY(String)))
            .table_valued("pid", "person")
            .render_derived("given")
        )
        conn.execute(update(_patient).where(_patient.c.id == given.c.pid).values(person_id=given.c.person))
        return
    statement = update(_patient).where(_patient.c.id == bindparam("pid")).values(person_id=bindparam("person"))
    conn.execute(statement, [{"pid": p, "person": person} for p, person in pairs])


def manually_joined(conn: Connection, person_ids: Sequence[str]) -> dict[str, set[str]]:
    """Each of these persons' live patients that a manual decision put there (and that are there still)."""
    found: dict[str, set[str]] = defaultdict(set)
    for chunk in _chunks(sorted(set(person_ids))):
        # By person only, the rest sorted out here: a condition on status would let SQLite's planner scan the
        # status index (every match) instead of looking the persons up.
        query = (
            select(_link.c.person_id, _link.c.patient_id, _link.c.origin, _link.c.status)
            .join(_patient, _patient.c.id == _link.c.patient_id)
            .where(
                among(conn, _link.c.person_id, chunk),
                _patient.c.person_id == _link.c.person_id,
                _patient.c.deleted_at.is_(None),
            )
        )
        for person_id, patient_id, origin, status in conn.execute(query).all():
            if origin == "manual" and status == "match":
                found[person_id].add(patient_id)
    return found


def clear_possible_matches(conn: Connection, person_ids: Sequence[str]) -> list[tuple[str, str]]:
    """Remove the automatic possible matches that point at these persons (gone: nobody left to match); returns
    the (patient, person) pairs removed."""
    removed: list[tuple[str, str]] = []
    for chunk in _chunks(sorted(set(person_ids))):
        where = (among(conn, _link.c.person_id, chunk), _link.c.status == "possible_match", _link.c.origin == "auto")
        removed += [(p, q) for p, q in conn.execute(select(_link.c.patient_id, _link.c.person_id).where(*where))]
        conn.execute(delete(_link).where(*where))
    return removed


def reviewing(conn: Connection, person_ids: Collection[str]) -> set[str]:
    """The patients with an automatic possible match to one of these persons."""
    found: set[str] = set()
    for chunk in _chunks(sorted(person_ids)):
        where = (among(conn, _link.c.person_id, chunk), _link.c.status == "possible_match", _link.c.origin == "auto")
        found.update(conn.execute(select(_link.c.patient_id).where(*where)).scalars())
    return found


def write_links(conn: Connection, links: Mapping[tuple[str, str], dict[str, Any] | None]) -> None:
    """Each (patient, person) link as given: its columns (status, origin, score, evidence, decided_at), or None
    to remove it."""
    gone = [key for key, values in links.items() if values is None]
    if gone:
        statement = delete(_link).where(
            _link.c.patient_id == bindparam("patient"), _link.c.person_id == bindparam("person")
        )
        conn.execute(statement, [{"patient": patient, "person": person} for patient, person in sorted(gone)])
    kept = [{"patient_id": k[0], "person_id": k[1], **v} for k, v in links.items() if v is not None]
    upsert(conn, _link, kept, on=("patient_id", "person_id"))


def history_row(
    at: dt.datetime,
    patient_id: str | None,
    person_id: str | None,
    change: str,
    before: str | None,
    after: str | None,
    reason: str | None,
    origin: str,
    batch: str | None = None,
    operator: str | None = None,
) -> dict[str, Any]:
    """One ``identity_history`` row."""
    return {
        "changed_at": at,
        "patient_id": patient_id,
        "person_id": person_id,
        "change": change,
        "before": before,
        "after": after,
        "reason": reason or None,
        "origin": origin,
        "batch": batch,
        "operator": operator,
    }


def record_history(conn: Connection, changes: list[dict[str, Any]]) -> None:
    insert_rows(conn, _history, changes)


def create_persons(conn: Connection, golden: Mapping[str, Mapping[str, Any]], now: dt.datetime) -> None:
    """New persons with their golden records (the DEMOGRAPHIC columns)."""
    rows = [
        {
            "id": p,
            **{name: record[name] for name in DEMOGRAPHIC},
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        }
        for p, record in sorted(golden.items())
    ]
    insert_rows(conn, _person, rows)


def person_rows(conn: Connection, person_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(person_ids))):
        for row in conn.execute(select(_person).where(among(conn, _person.c.id, chunk))).mappings().all():
            found[row["id"]] = dict(row)
    return found


def member_rows(conn: Connection, person_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Each person's live patient rows."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for chunk in _chunks(sorted(set(person_ids))):
        query = select(_patient).where(among(conn, _patient.c.person_id, chunk), _patient.c.deleted_at.is_(None))
        for row in conn.execute(query).mappings().all():
            found[row["person_id"]].append(dict(row))
    return found


def update_persons(conn: Connection, golden: Mapping[str, Mapping[str, Any]], now: dt.datetime) -> None:
    """Write each person's golden record (the DEMOGRAPHIC columns), live again if it was deleted."""
    if golden:
        values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in DEMOGRAPHIC}
        statement = (
            update(_person)
            .where(_person.c.id == bindparam("pid"))
            .values(**values, updated_at=bindparam("v_updated_at"), deleted_at=None)
        )
        rows = [
            {"pid": person, "v_updated_at": now, **{f"v_{name}": record[name] for name in DEMOGRAPHIC}}
            for person, record in sorted(golden.items())
        ]
        conn.execute(statement, rows)


def delete_persons(conn: Connection, person_ids: Sequence[str], now: dt.datetime) -> None:
    for chunk in _chunks(sorted(person_ids)):
        conn.execute(
            update(_person)
            .where(among(conn, _person.c.id, chunk), _person.c.deleted_at.is_(None))
            .values(deleted_at=now, updated_at=now)
        )


def open_possible_matches(conn: Connection) -> list[dict[str, Any]]:
    """Every open possible match of a live patient (its link row, and the patient's person now as
    ``patient_person``), highest score first."""
    query = (
        select(_link, _patient.c.person_id.label("patient_person"))
        .join(_patient, _patient.c.id == _link.c.patient_id)
        .where(_link.c.status == "possible_match", _patient.c.deleted_at.is_(None))
        .order_by(_link.c.score.desc(), _link.c.id)
    )
    return [dict(row) for row in conn.execute(query).mappings().all()]


def batch_links(conn: Connection, batch: str) -> list[dict[str, Any]] | None:
    """The links a bulk batch decided that are still as it decided them (None: no such batch). Each history row
    names its link ("link 17"); a link decided again since, by hand or by a later batch, is left alone."""
    decided = select(_history.c.reason, _history.c.after, _history.c.changed_at).where(
        _history.c.batch == batch, _history.c.change.in_(("manual_accept", "manual_reject"))
    )
    made = conn.execute(decided).all()
    if not made:
        return None
    rows = []
    for reason, status, changed_at in made:
        link_id = int(str(reason).removeprefix("link "))
        query = select(_link).where(
            _link.c.id == link_id,
            _link.c.origin == "manual",
            _link.c.status == status,
            _link.c.decided_at == changed_at,
        )
        row = conn.execute(query).mappings().first()
        if row is not None:
            rows.append(dict(row))
    return rows


def manual_decisions(conn: Connection) -> list[tuple[str, str, bool]]:
    """Every manual decision in force: (patient, person, accepted)."""
    query = select(_link.c.patient_id, _link.c.person_id, _link.c.status).where(
        _link.c.origin == "manual", _link.c.status.in_(("match", "no_match"))
    )
    return [(patient, person, status == "match") for patient, person, status in conn.execute(query).all()]


def latest_model(conn: Connection) -> tuple[int, dict[str, Any]] | None:
    """The newest trained model (version, JSON), or None before any training."""
    m = table_of(IdentityModel)
    row = conn.execute(select(m.c.version, m.c.model).order_by(m.c.version.desc()).limit(1)).first()
    return None if row is None else (int(row[0]), dict(row[1]))


def person_named(conn: Connection, ref: str) -> str | None:
    """The person ``ref`` names: a person id, a patient id, or any source identifier of a patient (a live patient
    first)."""
    if conn.execute(select(_person.c.id).where(_person.c.id == ref)).first():
        return ref
    cw = table_of(Crosswalk)
    by_identifier = select(cw.c.entity_id).where(cw.c.entity_type == "patient", cw.c.id_value == ref)
    found = conn.execute(
        select(_patient.c.person_id)
        .where(or_(_patient.c.id == ref, _patient.c.id.in_(by_identifier)), _patient.c.person_id.is_not(None))
        .order_by(_patient.c.deleted_at.is_not(None), _patient.c.id)
    ).first()
    return None if found is None else str(found[0])


def members_with_identifiers(conn: Connection, person_id: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """The person's live patients, by source: (patient id, source, [(id_type, id_value), ...])."""
    members = conn.execute(
        select(_patient.c.id, _patient.c.source)
        .where(_patient.c.person_id == person_id, _patient.c.deleted_at.is_(None))
        .order_by(_patient.c.source, _patient.c.id)
    ).all()
    cw = table_of(Crosswalk)
    ids = conn.execute(
        select(cw.c.entity_id, cw.c.id_type, cw.c.id_value)
        .where(cw.c.entity_type == "patient", among(conn, cw.c.entity_id, [m.id for m in members]))
        .order_by(cw.c.entity_id, cw.c.id_type)
    ).all()
    by_patient: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for entity_id, id_type, id_value in ids:
        by_patient[entity_id].append((id_type, id_value))
    return [(m.id, m.source, by_patient[m.id]) for m in members]


def link_row(conn: Connection, link_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(_link).where(_link.c.id == link_id)).mappings().first()
    return None if row is None else dict(row)


def decide_link(conn: Connection, link_id: int, status: str, now: dt.datetime) -> None:
    """A steward's decision on one link."""
    values = {"status": status, "origin": Origin.manual, "decided_at": now}
    conn.execute(update(_link).where(_link.c.id == link_id).values(**values))


def replace_manual_match(conn: Connection, patient_id: str, link_id: int, now: dt.datetime) -> list[dict[str, Any]]:
    """A patient has one manual match: the others it had become no match. Returns them as they were."""
    earlier = (
        _link.c.patient_id == patient_id,
        _link.c.origin == Origin.manual,
        _link.c.status == LinkStatus.match,
        _link.c.id != link_id,
    )
    replaced = [dict(row) for row in conn.execute(select(_link).where(*earlier)).mappings().all()]
    if replaced:
        conn.execute(update(_link).where(*earlier).values(status=LinkStatus.no_match, decided_at=now))
    return replaced


def delete_link(conn: Connection, link_id: int) -> None:
    conn.execute(delete(_link).where(_link.c.id == link_id))
