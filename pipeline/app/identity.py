"""What ``patientsync person`` and ``patientsync review`` show and do: one person with its patients and their
identifiers; the possible matches with their fields side by side; manual decisions, each in the history and
each undoable, applied by a link pass."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from canonical.errors import NotFound
from pipeline.config import IdentityConfig
from pipeline.identity.compare import COMPARISONS
from pipeline.storage import identity as store
from pipeline.storage.db import write_instant
from pipeline.storage.load import queue
from pipeline.storage.tables import (
    LinkStatus,
    Origin,
)
from pipeline.sync.linking import LinkStats, link_pending

# Shown side by side in review; the names and dates among them only where PII may be shown.
REVIEW_FIELDS = ("given_name", "family_name", "birth_date", "sex", "postal_code", "city", "email", "phone", "curp")
PII_FIELDS = frozenset({"given_name", "family_name", "full_name", "birth_date", "email", "phone", "curp"})


def local_operator(explicit: str | None = None) -> str:
    """Who decides when nobody signs in (the CLI, a console without a token): ``--operator``, else the login
    name of the process."""
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return os.environ.get("USER") or "local"


def find_person(engine: Engine, ref: str) -> str:
    """The person id ``ref`` names: a person id, a patient id, or any source identifier of a patient."""
    with engine.connect() as conn:
        found = store.person_named(conn, ref)
    if found is None:
        raise NotFound("no person, patient or source identifier matches it")
    return found


def person_view(engine: Engine, person_id: str) -> dict[str, Any]:
    """The person's golden record, its live patients by source and each patient's identifiers."""
    with engine.connect() as conn:
        golden = store.person_rows(conn, [person_id])[person_id]
        members = store.members_with_identifiers(conn, person_id)
        links = store.links_of(conn, [patient_id for patient_id, _, _ in members])
    return {
        "person": golden,
        "patients": [
            {
                "patient_id": patient_id,
                "source": source,
                "identifiers": [{"id_type": t, "id_value": v} for t, v in identifiers],
                "link": next(
                    (
                        {"status": link["status"], "origin": link["origin"], "score": link["score"]}
                        for link in links.get(patient_id, [])
                        if link["person_id"] == person_id
                    ),
                    None,
                ),
            }
            for patient_id, source, identifiers in members
        ],
    }


def review_items(engine: Engine, show_pii: bool) -> list[dict[str, Any]]:
    """Every open possible match: the patient and the person's golden record field by field, and the evidence."""
    with engine.connect() as conn:
        rows = store.open_possible_matches(conn)
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


def decide_manually(
    engine: Engine, config: IdentityConfig, link_id: int, accept: bool, operator: str | None = None
) -> Decided:
    """Accept (a match) or reject (no match) a link, as a manual decision by ``operator``; the link pass then
    moves the patient."""
    row = _link_row(engine, link_id)
    with engine.begin() as conn:
        status = _decide(conn, row, accept, write_instant(conn), None, operator)
    stats = link_pending(engine, config)
    return Decided(link_id, row["patient_id"], row["person_id"], status, stats)


def _decide(
    conn: Connection, row: dict[str, Any], accept: bool, now: dt.datetime, batch: str | None, operator: str | None
) -> str:
    status = LinkStatus.match if accept else LinkStatus.no_match
    if accept:  # one manual match a patient: accepting another person replaces the earlier acceptance
        for replaced in store.replace_manual_match(conn, row["patient_id"], row["id"], now):
            change = ("manual_accept_replaced", LinkStatus.match, LinkStatus.no_match)
            _history(conn, replaced, *change, now, batch, operator)
    store.decide_link(conn, row["id"], status, now)
    change = ("manual_" + ("accept" if accept else "reject"), row["status"], status)
    _history(conn, row, *change, now, batch, operator)
    queue(conn, [row["patient_id"]], now)
    return status


def undo(engine: Engine, config: IdentityConfig, link_id: int, operator: str | None = None) -> Decided:
    """Take a manual decision back: the link is removed and the patient decided again automatically."""
    row = _link_row(engine, link_id)
    if row["origin"] != Origin.manual:
        raise NotFound(f"link {link_id} is no manual decision: there is nothing to undo")
    with engine.begin() as conn:
        _undo(conn, row, write_instant(conn), None, operator)
    stats = link_pending(engine, config)
    return Decided(link_id, row["patient_id"], row["person_id"], "undone", stats)


def _undo(conn: Connection, row: dict[str, Any], now: dt.datetime, batch: str | None, operator: str | None) -> None:
    store.delete_link(conn, row["id"])
    _history(conn, row, "manual_undone", row["status"], None, now, batch, operator)
    queue(conn, [row["patient_id"]], now)


@dataclass(frozen=True)
class Selection:
    """Which open possible matches a bulk decision takes: a score band (inclusive) and an agreement pattern
    (comparison -> level; every one named must hold)."""

    low: float = 0.0
    high: float = 1.0
    pattern: Mapping[str, str] = field(default_factory=dict)

    def holds(self, score: float | None, evidence: Mapping[str, Any] | None) -> bool:
        if score is None or not self.low <= score <= self.high:
            return False
        fields = (evidence or {}).get("fields", {})
        return all(fields.get(c, {}).get("level") == level for c, level in self.pattern.items())


def parse_band(text: str) -> tuple[float, float]:
    """ "0.9..0.99" -> (0.9, 0.99).

    >>> parse_band("0.5..0.9")
    (0.5, 0.9)
    """
    low, sep, high = text.partition("..")
    try:
        band = (float(low), float(high))
    except ValueError:
        band = (-1.0, -1.0)
    if not sep or not 0 <= band[0] <= band[1] <= 1:
        raise ValueError(f"--band {text!r}: expected LOW..HIGH, two scores from 0 to 1, LOW first")
    return band


def parse_pattern(text: str) -> dict[str, str]:
    """ "name=exact,birth_date=close" -> {comparison: level}, each checked against the declared comparisons."""
    pattern: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        comparison, _, level = part.partition("=")
        declared = COMPARISONS.get(comparison)
        if declared is None:
            raise ValueError(f"--pattern: no comparison {comparison!r} (one of {', '.join(COMPARISONS)})")
        if level not in declared.labels:
            levels = ", ".join(lv.label for lv in declared.levels)
            raise ValueError(f"--pattern: {comparison} has no level {level!r} (one of {levels})")
        pattern[comparison] = level
    return pattern


@dataclass
class Bulk:
    batch: str | None  # None for a dry run
    links: list[dict[str, Any]]  # the decided (or, dry, the selected) links: id, patient_id, person_id, score
    skipped: list[int]  # links left alone: a second acceptance of one patient
    stats: LinkStats | None


def decide_bulk(
    engine: Engine,
    config: IdentityConfig,
    selection: Selection,
    accept: bool,
    dry_run: bool,
    operator: str | None = None,
    only: Collection[int] | None = None,
) -> Bulk:
    """Accept or reject every open possible match the selection holds, highest score first, as manual decisions
    of one batch (``identity_history.batch``; ``undo_batch`` takes them back together). A patient is accepted
    into one person at most: its further links in the band are skipped. ``only``: of those, these links alone
    (the ones a preview showed)."""
    with engine.connect() as conn:
        rows = [
            r
            for r in store.open_possible_matches(conn)
            if selection.holds(r["score"], r["evidence"]) and (only is None or r["id"] in only)
        ]
        held = _held(conn)
    decisions, skipped = _one_question_each([(row, accept) for row in rows], held)
    chosen = [row for row, _ in decisions]
    brief = [{k: r[k] for k in ("id", "patient_id", "person_id", "score")} for r in chosen]
    if dry_run or not chosen:
        return Bulk(None, brief, skipped, None)
    batch, stats = _decide_batch(engine, config, [(row, accept) for row in chosen], operator)
    return Bulk(batch, brief, skipped, stats)


def decide_links(
    engine: Engine, config: IdentityConfig, decisions: Mapping[int, bool], operator: str | None = None
) -> str | None:
    """Accept (True) or reject (False) each of these open possible matches, as manual decisions of one batch;
    returns the batch (None when there was nothing to decide)."""
    with engine.connect() as conn:
        rows = [r for r in store.open_possible_matches(conn) if r["id"] in decisions]
        held = _held(conn)
    chosen, _ = _one_question_each([(row, decisions[row["id"]]) for row in rows], held)
    return _decide_batch(engine, config, chosen, operator)[0] if chosen else None


def _held(conn: Connection) -> set[str]:
    """The patients a steward has accepted into a person: a bulk decision leaves them as they were."""
    return {patient for patient, _, accepted in store.manual_decisions(conn) if accepted}


def _one_question_each(
    decisions: list[tuple[dict[str, Any], bool]], held: set[str]
) -> tuple[list[tuple[dict[str, Any], bool]], list[int]]:
    """The decisions to make, and the links skipped. An acceptance is skipped when its patient was accepted
    into a person by hand already (undo that first), or when either person takes part in another acceptance of
    the batch: the link from a member of B to A's person is the link from A to B the other way round
    (accepting both would swap the patients), and A->B beside B->C would split B. Those wait for the next
    batch, asked against the persons as they then are."""
    chosen, skipped = [], []
    involved: set[str] = set()
    for row, accept in decisions:
        if accept:
            persons = {row["patient_person"] or row["patient_id"], row["person_id"]}
            if row["patient_id"] in held or persons & involved:
                skipped.append(row["id"])
                continue
            involved |= persons
        chosen.append((row, accept))
    return chosen, skipped


def _decide_batch(
    engine: Engine, config: IdentityConfig, decisions: list[tuple[dict[str, Any], bool]], operator: str | None
) -> tuple[str, LinkStats]:
    with engine.begin() as conn:
        now = write_instant(conn)
        batch = f"bulk-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        for row, accept in decisions:
            _decide(conn, row, accept, now, batch, operator)
    return batch, link_pending(engine, config)


def undo_batch(engine: Engine, config: IdentityConfig, batch: str, operator: str | None = None) -> Bulk:
    """Take back every decision of a bulk batch that is still in force."""
    with engine.connect() as conn:
        rows = store.batch_links(conn, batch)
    if rows is None:
        raise NotFound(f"no bulk decision {batch} (its id is printed when it is made, and is in identity_history)")
    with engine.begin() as conn:
        now = write_instant(conn)
        for row in rows:
            _undo(conn, row, now, batch, operator)
    brief = [{k: r[k] for k in ("id", "patient_id", "person_id", "score")} for r in rows]
    return Bulk(batch, brief, [], link_pending(engine, config))


def _link_row(engine: Engine, link_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = store.link_row(conn, link_id)
    if row is None:
        raise NotFound(f"no link {link_id} (see patientsync review list)")
    return row


def _history(
    conn: Connection,
    row: dict[str, Any],
    change: str,
    before: str,
    after: str | None,
    now: dt.datetime,
    batch: str | None,
    operator: str | None,
) -> None:
    reason = f"link {row['id']}"
    entry = store.history_row(
        now, row["patient_id"], row["person_id"], change, before, after, reason, Origin.manual, batch, operator
    )
    store.record_history(conn, [entry])
