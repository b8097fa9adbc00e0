"""What ``patientsync person`` and ``patientsync review`` show and do: one person with its patients and their
identifiers; the possible matches with their fields side by side; manual decisions, each in the history and
each undoable, applied by a link pass."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, or_, select, update

from pipeline.config import IdentityConfig
from pipeline.storage import identity as store
from pipeline.storage.load import queue
from pipeline.storage.tables import (
    Crosswalk,
    IdentityLink,
    LinkStatus,
    Origin,
    Patient,
    Person,
    table_of,
)
from pipeline.sync.linking import LinkStats, link_pending

# Shown side by side in review; the names and dates among them only where PII may be shown.
REVIEW_FIELDS = ("given_name", "family_name", "birth_date", "sex", "postal_code", "city", "email", "phone", "curp")
PII_FIELDS = frozenset({"given_name", "family_name", "full_name", "birth_date", "email", "phone", "curp"})


class NotFound(LookupError):
    pass


def find_person(engine: Engine, ref: str) -> str:
    """The person id ``ref`` names: a person id, a patient id, or any source identifier of a patient."""
    person, patient, cw = table_of(Person), table_of(Patient), table_of(Crosswalk)
    with engine.connect() as conn:
        if conn.execute(select(person.c.id).where(person.c.id == ref)).first():
            return ref
        found = conn.execute(
            select(patient.c.person_id)
            .where(
                or_(
                    patient.c.id == ref,
                    patient.c.id.in_(select(cw.c.entity_id).where(cw.c.entity_type == "patient", cw.c.id_value == ref)),
                ),
                patient.c.person_id.is_not(None),
            )
            .order_by(patient.c.deleted_at.is_not(None), patient.c.id)
        ).first()
    if found is None:
        raise NotFound("no person, patient or source identifier matches it")
    return str(found[0])


def person_view(engine: Engine, person_id: str) -> dict[str, Any]:
    """The person's golden record, its live patients by source and each patient's identifiers."""
    patient, cw = table_of(Patient), table_of(Crosswalk)
    with engine.connect() as conn:
        golden = store.person_rows(conn, [person_id])[person_id]
        patients = conn.execute(
            select(patient.c.id, patient.c.source)
            .where(patient.c.person_id == person_id, patient.c.deleted_at.is_(None))
            .order_by(patient.c.source, patient.c.id)
        ).all()
        ids = conn.execute(
            select(cw.c.entity_id, cw.c.id_type, cw.c.id_value)
            .where(cw.c.entity_type == "patient", cw.c.entity_id.in_([p.id for p in patients]))
            .order_by(cw.c.entity_id, cw.c.id_type)
        ).all()
        links = store.links_of(conn, [p.id for p in patients])
    by_patient: dict[str, list[dict[str, str]]] = {}
    for entity_id, id_type, id_value in ids:
        by_patient.setdefault(entity_id, []).append({"id_type": id_type, "id_value": id_value})
    return {
        "person": golden,
        "patients": [
            {
                "patient_id": p.id,
                "source": p.source,
                "identifiers": by_patient.get(p.id, []),
                "link": next(
                    (
                        {"status": link["status"], "origin": link["origin"], "score": link["score"]}
                        for link in links.get(p.id, [])
                        if link["person_id"] == person_id
                    ),
                    None,
                ),
            }
            for p in patients
        ],
    }


def review_items(engine: Engine, show_pii: bool) -> list[dict[str, Any]]:
    """Every open possible match: the patient and the person's golden record field by field, and the evidence."""
    link, patient = table_of(IdentityLink), table_of(Patient)
    with engine.connect() as conn:
        rows = (
            conn.execute(
                select(link)
                .join(patient, patient.c.id == link.c.patient_id)
                .where(link.c.status == LinkStatus.possible_match, patient.c.deleted_at.is_(None))
                .order_by(link.c.score.desc(), link.c.id)
            )
            .mappings()
            .all()
        )
        patients = store.patient_rows(conn, [r["patient_id"] for r in rows])
        persons = store.person_rows(conn, [r["person_id"] for r in rows])
    items = []
    for row in rows:
        p, person = patients[row["patient_id"]], persons.get(row["person_id"], {})
        items.append(
            {
                "id": row["id"],
                "patient_id": row["patient_id"],
                "source": p.get("source"),
                "person_id": row["person_id"],
                "score": row["score"],
                "reason": (row["evidence"] or {}).get("reason"),
                "fields": {
                    name: [_shown(name, p.get(name), show_pii), _shown(name, person.get(name), show_pii)]
                    for name in REVIEW_FIELDS
                },
                "evidence": (row["evidence"] or {}).get("fields", {}),
            }
        )
    return items


def _shown(name: str, value: Any, show_pii: bool) -> str | None:
    if value is None:
        return None
    if name in PII_FIELDS and not show_pii:
        return "<hidden>"
    return str(value)


@dataclass
class Decided:
    link_id: int
    patient_id: str
    person_id: str
    status: str
    stats: LinkStats


def decide_manually(engine: Engine, config: IdentityConfig, link_id: int, accept: bool) -> Decided:
    """Accept (a match) or reject (no match) a link, as a manual decision; the link pass then moves the patient."""
    status = LinkStatus.match if accept else LinkStatus.no_match
    row = _link_row(engine, link_id)
    now = dt.datetime.now(dt.UTC)
    link = table_of(IdentityLink)
    with engine.begin() as conn:
        if accept:  # one manual match a patient: accepting another person replaces the earlier acceptance
            conn.execute(
                update(link)
                .where(
                    link.c.patient_id == row["patient_id"],
                    link.c.origin == Origin.manual,
                    link.c.status == LinkStatus.match,
                    link.c.id != link_id,
                )
                .values(status=LinkStatus.no_match, decided_at=now)
            )
        conn.execute(
            update(link).where(link.c.id == link_id).values(status=status, origin=Origin.manual, decided_at=now)
        )
        _history(conn, row, "manual_" + ("accept" if accept else "reject"), row["status"], status, now)
        queue(conn, [row["patient_id"]], now)
    stats = link_pending(engine, config)
    return Decided(link_id, row["patient_id"], row["person_id"], status, stats)


def undo(engine: Engine, config: IdentityConfig, link_id: int) -> Decided:
    """Take a manual decision back: the link is removed and the patient decided again automatically."""
    row = _link_row(engine, link_id)
    if row["origin"] != Origin.manual:
        raise NotFound(f"link {link_id} is no manual decision: there is nothing to undo")
    now = dt.datetime.now(dt.UTC)
    link = table_of(IdentityLink)
    with engine.begin() as conn:
        conn.execute(delete(link).where(link.c.id == link_id))
        _history(conn, row, "manual_undone", row["status"], None, now)
        queue(conn, [row["patient_id"]], now)
    stats = link_pending(engine, config)
    return Decided(link_id, row["patient_id"], row["person_id"], "undone", stats)


def _link_row(engine: Engine, link_id: int) -> dict[str, Any]:
    link = table_of(IdentityLink)
    with engine.connect() as conn:
        row = conn.execute(select(link).where(link.c.id == link_id)).mappings().first()
    if row is None:
        raise NotFound(f"no link {link_id} (see patientsync review list)")
    return dict(row)


def _history(conn: Any, row: dict[str, Any], change: str, before: str, after: str | None, now: dt.datetime) -> None:
    reason = f"link {row['id']}"
    entry = store.history_row(now, row["patient_id"], row["person_id"], change, before, after, reason, Origin.manual)
    store.record_history(conn, [entry])
