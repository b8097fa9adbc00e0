"""The link pass: every queued patient (new, changed or deleted since the last pass) gets its person.

Patients are taken from ``identity_pending`` a batch at a time, each batch in one transaction with its
dequeueing, so a crash loses and duplicates nothing: an interrupted batch is still queued. A patient costs only
its candidates (the patients sharing one of its match keys, found through the key index), never a scan.

For each patient, in queue order:
- deleted: it leaves its person;
- held by a manual match: it stays where a person put it;
- otherwise it is scored against its candidates' persons (``pipeline.identity.decide``) and joins the one it
  matches, or keeps (or gets) a person of its own; possible matches are kept for review.
A person left without a live patient is soft-deleted; every touched person's golden record is recomputed.
A patient with a possible match to a person that gained a member is queued again, once a pass: what set it
apart from the others may have just joined (a namesake's own record of a source, which the patient's record of
that source is apart from), so the order patients arrive in does not decide.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, Engine

from canonical.ids import time_ordered_id
from pipeline.config import IdentityConfig
from pipeline.identity.decide import Decision, Scored, best_per_person, decide
from pipeline.identity.golden import golden_record
from pipeline.identity.keys import ALONE, match_keys
from pipeline.identity.model import MatchModel
from pipeline.identity.profile import Profile, profile
from pipeline.identity.training import MAX_PATIENTS, train_on
from pipeline.storage import identity as store
from pipeline.storage.db import write_instant
from pipeline.storage.load import queue, refresh_statistics
from pipeline.storage.tables import DEMOGRAPHIC, LinkStatus, Origin

log = structlog.get_logger(__name__)

# Patients a link pass decides and commits at once. A commit's cost is the pages it dirties, and the batch's
# links, history and person_id updates land all over their indexes: the larger the database, the fewer rows a
# page shares, unless the batch grows too (500 -> 2,000: 408 -> 361 us a patient at 200,000 patients).
BATCH = 2000
GROWN_BY_LINKING = ("identity_link", "person")  # the tables a pass grows that its own queries read


@dataclass
class LinkStats:
    linked: int = 0  # patients decided
    joined: int = 0  # of them, joined a person holding another patient
    persons_created: int = 0
    persons_deleted: int = 0
    possible: int = 0  # possible matches written for review
    skipped_blocks: int = 0  # match keys too common to block on

    def add(self, other: LinkStats) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    def log(self) -> None:
        if self.linked:
            log.info("patients linked", **vars(self))


def current_model(engine: Engine) -> MatchModel:
    """The newest trained model, or the defaults."""
    with engine.connect() as conn:
        stored = store.latest_model(conn)
    return MatchModel() if stored is None else MatchModel.from_json(stored[1], stored[0])


def link_pending(engine: Engine, config: IdentityConfig, model: MatchModel | None = None) -> LinkStats:
    """Link every queued patient; returns what changed."""
    model = model or current_model(engine)
    stats = LinkStats()
    revisited: set[str] = set()
    with engine.connect() as conn:
        many = store.pending_count(conn) >= BATCH
    # A pass over a bulk load (one not linked as it landed): the planner must see the tables' size, and see it
    # again as the pass grows them (links and persons from none to one a patient), each time the patients
    # linked double. On PostgreSQL, statistics taken when identity_link was empty made the lookup of a batch's
    # persons' links scan both tables: 0.4-1 s a chunk at 300,000 people.
    analyze_at = BATCH if many else None
    if many:
        refresh_statistics(engine)
    while True:
        with engine.begin() as conn:
            store.take_linkers_turn(conn)
            batch = store.pending(conn, BATCH)
            if not batch:
                break
            _settle(conn, _Batch(conn, config, model, stats), batch, revisited)
        if analyze_at is not None and stats.linked >= analyze_at:
            refresh_statistics(engine, tables=GROWN_BY_LINKING)
            analyze_at *= 2
    stats.log()
    return stats


def _settle(conn: Connection, linker: _Batch, batch: list[tuple[str, bool]], revisited: set[str]) -> None:
    """Decide the batch, dequeue it, and queue again (once: ``revisited``) the patients with a possible match to a
    person that gained a member."""
    linker.run(batch)
    store.dequeue(conn, [patient_id for patient_id, _ in batch])
    again = store.reviewing(conn, linker.grown) - revisited if linker.grown else set()
    if again:
        queue(conn, sorted(again), linker.now)
        revisited |= again


def link_in(
    conn: Connection,
    config: IdentityConfig,
    model: MatchModel,
    patient_ids: list[str],
    keys: Sequence[tuple[str, str, str]] | None = None,
) -> LinkStats:
    """Link these patients inside the caller's transaction: the page that wrote them (its rows and their match
    keys are already in it), so a page lands linked or not at all, and costs no commit or queue read of its own.
    ``keys``: the match_key rows the page wrote for them, in key order, which blocking then takes as they are
    instead of reading them back.

    Under a savepoint: should linking fail, the savepoint is rolled back, the page still commits and its patients
    stay queued (``identity_pending``) for the next link pass; the error is raised for the caller to report.
    On PostgreSQL, while another process links (holding the linkers' lock), the page does not wait for it: the
    page already holds its rows, which that linker may be waiting for. Its patients stay queued instead.
    """
    stats = LinkStats()
    if not store.take_linkers_turn(conn, wait=False):
        return stats
    with conn.begin_nested():
        _settle(conn, _Batch(conn, config, model, stats, keys), [(p, False) for p in patient_ids], set())
    return stats


class _Batch:
    """One batch of queued patients, decided one by one against what the batch itself has decided so far; its
    writes are gathered and made at the end, a statement per table."""

    def __init__(
        self,
        conn: Connection,
        config: IdentityConfig,
        model: MatchModel,
        stats: LinkStats,
        keys: Sequence[tuple[str, str, str]] | None = None,
    ) -> None:
        self.conn, self.config, self.model, self.stats = conn, config, model, stats
        self.keys = keys  # the batch's match_key rows, when its caller holds them (link_in)
        self.now = write_instant(conn)
        self.person_of: dict[str, str | None] = {}  # patient -> person, as decided so far
        self.members: dict[str, dict[str, str]] = {}  # person -> {live patient: source}
        self.links: dict[str, list[dict[str, Any]]] = {}  # the batch's patients' stored links
        # What the batch writes: patient.person_id, links by (patient, person) (None: removed), new persons.
        self.moved: dict[str, str | None] = {}
        self.link_writes: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.created: set[str] = set()
        self.grown: set[str] = set()  # persons that gained a member
        self.touched: set[str] = set()  # persons whose golden record is to be recomputed
        self.history: list[dict[str, Any]] = []
        self.rows: dict[str, dict[str, Any]] = {}  # the patient rows read: the batch's and their candidates'
        self.confirmed: dict[str, set[str]] = {}  # person -> its patients a manual decision put there

    def run(self, batch: list[tuple[str, bool]]) -> None:
        conn = self.conn
        ids = [patient_id for patient_id, _ in batch]
        # A patient whose keys are derived again is locked before it is read. A page rewriting it meanwhile (a
        # patient stored before its key list existed has none to lock) then waits, and replaces these keys with
        # its own; unlocked, each could write keys that only the other's list names, which nothing deletes.
        store.lock_patients(conn, [p for p, rekey in batch if rekey])
        rows = self.rows = store.patient_rows(conn, ids)
        rekeyed = {p: match_keys(_profile_of(rows[p])) for p, rekey in batch if rekey and p in rows}
        if rekeyed:
            store.replace_keys(conn, rekeyed)
        keys = self.keys if not rekeyed else None  # keys derived again here are in the database only
        found, skipped = store.candidates(conn, ids, self.config.block_bound, ALONE, keys)
        self.stats.skipped_blocks += skipped
        candidates = {p: found.get(p, set()) for p in ids}
        others = {c for found in candidates.values() for c in found} - set(rows)
        rows.update(store.patient_rows(conn, sorted(others)))
        # Only patients with candidates are scored: the rest (most of a first backfill) need no profile.
        scored = {p for p in ids if candidates[p]} | {c for found in candidates.values() for c in found}
        profiles = {p: _profile_of(rows[p]) for p in scored if p in rows and rows[p]["deleted_at"] is None}
        for p, row in rows.items():
            self.person_of[p] = row["person_id"]
        persons = {row["person_id"] for row in rows.values() if row["person_id"]}
        self.members = store.members(conn, sorted(persons))
        self.links = store.links_of(conn, ids)
        self.confirmed = store.manually_joined(conn, sorted(persons))
        for patient_id in ids:
            if patient_id not in rows:
                continue  # gone from the patient table: nothing to link
            if rows[patient_id]["deleted_at"] is not None:
                self._leave(patient_id, "the patient was deleted")
                self.person_of[patient_id] = self.moved[patient_id] = None
            elif patient_id in profiles:
                self._link(profiles[patient_id], candidates[patient_id], profiles)
            elif self.person_of.get(patient_id) is None and not self.links.get(patient_id):
                # Nobody to compare with, nothing decided before: a person of its own, as scoring would decide.
                self._move(patient_id, rows[patient_id]["source"] or "", self._new_person(), None, "no match")
            else:
                self._link(_profile_of(rows[patient_id]), set(), profiles)
            self.stats.linked += 1
        self._write()

    def _link(self, p: Profile, candidates: set[str], profiles: dict[str, Profile]) -> None:
        links = self.links.get(p.patient_id, [])
        manual = [link for link in links if link["origin"] == Origin.manual]
        held = next((link["person_id"] for link in manual if link["status"] == LinkStatus.match), None)
        if held is not None:
            self._move(p.patient_id, p.source, held, None, "a manual decision holds it", write_link=False)
            return
        rejected = {link["person_id"] for link in manual if link["status"] == LinkStatus.no_match}
        current = self.person_of.get(p.patient_id)
        if current is not None and current not in rejected and self.confirmed.get(current, set()) - {p.patient_id}:
            # A steward accepted another patient into this person, beside this one: they are one person, and
            # scoring again must not part them (until that decision is undone, or this one is rejected).
            return
        pairs = [
            (profiles[c], person)
            for c in sorted(candidates)
            if c in profiles and (person := self.person_of.get(c)) is not None
        ]
        scored = best_per_person(p, pairs, self.model)
        sources_of = {
            person: {source for patient, source in self.members.get(person, {}).items() if patient != p.patient_id}
            for person in scored
        }
        threshold, review = self.config.match_threshold, self.config.review_threshold
        current = self.person_of.get(p.patient_id)
        decision = decide(p, scored, sources_of, rejected, threshold, review, current)
        self._apply(p, decision, links)

    def _apply(self, p: Profile, decision: Decision, links: list[dict[str, Any]]) -> None:
        current = self.person_of.get(p.patient_id)
        if decision.join is not None:
            self._move(p.patient_id, p.source, decision.join.person_id, decision.join, "matched")
        elif current is None or set(self.members.get(current, {})) - {p.patient_id}:
            # No person yet, or it shares one it no longer matches: a person of its own.
            reason = "no match" if current is None else "no longer matches"
            self._move(p.patient_id, p.source, self._new_person(), None, reason)
        kept = {possible.person_id for possible in decision.possible}
        for link in links:  # possible matches the new scores no longer support
            stale = link["status"] == LinkStatus.possible_match and link["person_id"] not in kept
            if stale and link["origin"] == Origin.auto:
                self.link_writes[(p.patient_id, link["person_id"])] = None
                self._changed(p.patient_id, link["person_id"], "possible_match_cleared", "possible_match", None, "")
        manual = {link["person_id"] for link in links if link["origin"] == Origin.manual}
        known = {link["person_id"] for link in links if link["status"] == LinkStatus.possible_match}
        for possible in decision.possible:
            if possible.person_id in manual or possible.person_id == self.person_of.get(p.patient_id):
                continue
            evidence = {**possible.evidence, "reason": possible.reason}
            self._write_link(
                p.patient_id, possible.person_id, LinkStatus.possible_match, possible.probability, evidence
            )
            if possible.person_id not in known:
                self.stats.possible += 1
                self._changed(
                    p.patient_id, possible.person_id, "possible_match", None, "possible_match", possible.reason
                )

    def _write_link(
        self, patient_id: str, person_id: str, status: str, score: float | None, evidence: dict[str, Any] | None
    ) -> None:
        self.link_writes[(patient_id, person_id)] = {
            "status": status,
            "origin": Origin.auto,
            "score": score,
            "evidence": evidence,
            "decided_at": self.now,
        }

    def _move(
        self, patient_id: str, source: str, person_id: str, scored: Scored | None, reason: str, write_link: bool = True
    ) -> None:
        current = self.person_of.get(patient_id)
        if current == person_id:
            return
        if current is not None:
            self._leave(patient_id, reason)
        self.person_of[patient_id] = self.moved[patient_id] = person_id
        if self.members.get(person_id):
            self.stats.joined += 1
            self.grown.add(person_id)
        self.members.setdefault(person_id, {})[patient_id] = source
        self.touched.add(person_id)
        if write_link:
            score = None if scored is None else scored.probability
            self._write_link(
                patient_id, person_id, LinkStatus.match, score, None if scored is None else scored.evidence
            )
        self._changed(patient_id, person_id, "joined", current, person_id, reason)

    def _leave(self, patient_id: str, reason: str) -> None:
        """The patient leaves its person (its automatic match link goes; a manual one stays, to be undone)."""
        current = self.person_of.get(patient_id)
        if current is None:
            return
        self.members.get(current, {}).pop(patient_id, None)
        self.touched.add(current)
        manual = any(
            link["person_id"] == current and link["origin"] == Origin.manual for link in self.links.get(patient_id, [])
        )
        if not manual:
            self.link_writes[(patient_id, current)] = None
        self._changed(patient_id, current, "left", current, None, reason)

    def _new_person(self) -> str:
        person_id = time_ordered_id()  # new persons land at the end of the person index, not all over it
        self.created.add(person_id)
        self.members[person_id] = {}
        self.stats.persons_created += 1
        self._changed(None, person_id, "person_created", None, person_id, "")
        return person_id

    def _write(self) -> None:
        conn, now = self.conn, self.now
        store.set_persons(conn, self.moved)
        store.write_links(conn, self.link_writes)
        touched = sorted(self.touched)
        # A person whose live patients this batch has read (a new person, most often) takes its golden record
        # from those rows; the others' members are read again.
        known = {
            person: [self.rows[m] for m in self.members[person]]
            for person in touched
            if person in self.members and all(m in self.rows for m in self.members[person])
        }
        rows = {**store.member_rows(conn, [p for p in touched if p not in known]), **known}
        emptied = [person for person in touched if not rows.get(person)]
        for person_id in emptied:
            self.stats.persons_deleted += 1
            self._changed(None, person_id, "person_deleted", person_id, None, "no live patient remains")
        store.delete_persons(conn, [p for p in emptied if p not in self.created], now)
        for patient_id, person_id in store.clear_possible_matches(conn, emptied):
            self._changed(patient_id, person_id, "possible_match_cleared", "possible_match", None, "the person is gone")
        priority = self.config.source_priority
        golden = {p: golden_record(rows[p], DEMOGRAPHIC, priority) for p in touched if rows.get(p)}
        created = {p: golden[p] for p in self.created if p in golden}
        store.create_persons(conn, created, now)  # a person created and emptied within the batch is not written
        store.update_persons(conn, {p: g for p, g in golden.items() if p not in created}, now)
        store.record_history(conn, self.history)

    def _changed(
        self,
        patient_id: str | None,
        person_id: str | None,
        change: str,
        before: str | None,
        after: str | None,
        why: str,
    ) -> None:
        self.history.append(store.history_row(self.now, patient_id, person_id, change, before, after, why, Origin.auto))


def train_model(engine: Engine, model: MatchModel, match_threshold: float = 0.99) -> tuple[MatchModel, str]:
    """Train on the stored live patients and the stewards' decisions, and store the model as a new version (used
    from the next link pass)."""
    with engine.connect() as conn:
        rows = store.patient_rows(conn, store.live_patient_ids(conn, MAX_PATIENTS))
        labels = _labels(conn, model)
    profiles = [_profile_of(row) for row in rows.values()]
    trained, summary = train_on(profiles, model, labels=labels, threshold=match_threshold)
    text = f"{summary['patients']} patients; " + ", ".join(
        f"{rule}: {s['pairs']} pairs, ~{s['matches']} matches" for rule, s in summary["rules"].items()
    )
    text += "; " + _label_text(summary["labels"])
    with engine.begin() as conn:
        version = store.store_model(conn, trained.to_json(), dt.datetime.now(dt.UTC), text)
    return MatchModel(trained.prior, trained.levels, version, trained.tf, trained.tf_floor), text


def _labels(conn: Connection, model: MatchModel) -> list[tuple[Profile, Profile, bool]]:
    """The stewards' decisions as labelled pairs: each decided patient beside the best-scoring other live
    member of the person it was accepted into or rejected from."""
    decided = store.manual_decisions(conn)
    members = store.member_rows(conn, sorted({person for _, person, _ in decided}))
    wanted = {patient for patient, _, _ in decided} | {m["id"] for rows in members.values() for m in rows}
    patients = store.patient_rows(conn, sorted(wanted))  # with each one's SSN hash
    labels = []
    for patient_id, person_id, accepted in decided:
        row = patients.get(patient_id)
        if row is None or row["deleted_at"] is not None:
            continue
        mine = _profile_of(row)
        others = [_profile_of(patients[m["id"]]) for m in members.get(person_id, []) if m["id"] != patient_id]
        if others:
            best = max(others, key=lambda other: model.score_pair(mine, other)[0])
            labels.append((mine, best, accepted))
    return labels


def _profile_of(row: dict[str, Any]) -> Profile:
    return profile(row, row.get("source") or "", row.get("ssn_hash"))


def _label_text(labels: dict[str, Any]) -> str:
    if not labels["accepted"] and not labels["rejected"]:
        return "no review decisions to learn from"

    def share(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    return (
        f"{labels['accepted']} accepted and {labels['rejected']} rejected review decisions: among them the model's "
        f"automatic links have precision {share(labels['precision'])}, recall {share(labels['recall'])}"
    )
