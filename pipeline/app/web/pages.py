"""What each console page shows, read through storage: the review queue a page at a time, one possible match
compared field by field with its score's waterfall, a person with the origin of each golden value and its
history, and the streams' health. Plain data for the templates; nothing here writes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from canonical.errors import NotFound
from pipeline.app.identity import find_person
from pipeline.app.status import shown_quarantine, stream_status
from pipeline.config import Config
from pipeline.identity.compare import COMPARISONS
from pipeline.identity.golden import survivors
from pipeline.identity.model import MatchModel, probability
from pipeline.identity.profile import profile
from pipeline.storage import identity as store
from pipeline.storage import plain, quarantine, review
from pipeline.storage.db import reading
from pipeline.storage.tables import DEMOGRAPHIC

PAGE = 50  # reviews a queue page lists
HISTORY = 200  # history rows a person page lists

# The rows of a comparison, in the order a steward reads a record; the comparison's level shows on its first row.
FIELDS: tuple[tuple[str, str | None], ...] = (
    ("given_name", "name"),
    ("family_name", "name"),
    ("full_name", "name"),
    ("birth_date", "birth_date"),
    ("sex", None),
    ("address_line", "address"),
    ("city", "city"),
    ("state", None),
    ("postal_code", "postal_code"),
    ("country", None),
    ("email", "email"),
    ("phone", "phone"),
    ("curp", "curp"),
    ("ssn_last4", "ssn_last4"),
)


@dataclass(frozen=True)
class Filter:
    """The queue's filter, from the query string (``ValueError`` names the parameter that is wrong)."""

    source: str | None = None
    low: float = 0.0
    high: float = 1.0
    page: int = 1

    @classmethod
    def parse(cls, params: Any) -> Filter:
        def number(name: str, default: float) -> float:
            text = params.get(name) or ""
            try:
                value = float(text) if text else default
            except ValueError:
                raise ValueError(f"{name}: not a number") from None
            if not 0 <= value <= 1 or math.isnan(value):
                raise ValueError(f"{name}: a score from 0 to 1")
            return value

        low, high = number("low", 0.0), number("high", 1.0)
        if low > high:
            raise ValueError("low: above high")
        page = params.get("page") or "1"
        if not (page.isascii() and page.isdigit() and len(page) <= 6) or int(page) < 1:
            raise ValueError("page: a page number from 1")
        return cls(params.get("source") or None, low, high, int(page))

    def query(self, **changed: Any) -> dict[str, Any]:
        values = {"source": self.source or "", "low": self.low, "high": self.high, "page": self.page, **changed}
        return {k: v for k, v in values.items() if v not in ("", None)}


def queue(engine: Engine, wanted: Filter) -> dict[str, Any]:
    with reading(engine).connect() as conn:
        rows, total = review.queue_page(conn, wanted.source, wanted.low, wanted.high, (wanted.page - 1) * PAGE, PAGE)
        patients = store.patient_rows(conn, [r["patient_id"] for r in rows])
        persons = store.person_rows(conn, [r["person_id"] for r in rows])
        sources = review.queue_sources(conn)
    items = [
        {
            "id": r["id"],
            "score": r["score"] or 0.0,
            "reason": (r["evidence"] or {}).get("reason") or "possible match",
            "source": r["source"],
            "patient": _brief(patients.get(r["patient_id"], {})),
            "person": _brief(persons.get(r["person_id"], {})),
            "person_id": r["person_id"],
        }
        for r in rows
    ]
    pages = max(1, -(-total // PAGE))
    return {"reviews": items, "total": total, "pages": pages, "filter": wanted, "sources": sources}


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    name = " ".join(str(row[k]) for k in ("given_name", "family_name") if row.get(k)) or row.get("full_name")
    return {"name": name or "(no name)", "birth_date": row.get("birth_date"), "city": row.get("city")}


def compare(engine: Engine, link_id: int, model: MatchModel) -> dict[str, Any]:
    """The link's patient beside each live member of its person, field by field, scored now: each member's
    levels, and the waterfall of the best-scoring member's weights (what moved the score)."""
    with reading(engine).connect() as conn:
        link = store.link_row(conn, link_id)
        if link is None:
            raise NotFound(f"no link {link_id}")
        person = store.person_rows(conn, [link["person_id"]]).get(link["person_id"])
        member_ids = store.members(conn, [link["person_id"]]).get(link["person_id"], {})
        found = store.patient_rows(conn, [link["patient_id"], *member_ids])  # each with its SSN hash
    patient = found.get(link["patient_id"])
    if patient is None or person is None:
        raise NotFound(f"link {link_id}: its patient or person is gone")
    mine = profile(patient, patient.get("source") or "", patient.get("ssn_hash"))
    others = [found[m] for m in sorted(member_ids) if m != patient["id"] and m in found]
    scored: list[dict[str, Any]] = []
    for member in others:
        theirs = profile(member, member.get("source") or "", member.get("ssn_hash"))
        chance, evidence, _ = model.score_pair(mine, theirs)
        scored.append({"row": member, "probability": chance, "evidence": evidence})
    scored.sort(key=lambda s: -float(s["evidence"]["weight"]))
    rows = []
    for name, comparison in FIELDS:
        first = comparison is not None and next(f for f, c in FIELDS if c == comparison) == name
        rows.append(
            {
                "field": name,
                "comparison": comparison if first else None,
                "patient": patient.get(name),
                "members": [
                    {
                        "value": s["row"].get(name),
                        "level": s["evidence"]["fields"].get(comparison, {}).get("level") if first else None,
                        "weight": s["evidence"]["fields"].get(comparison, {}).get("weight") if first else None,
                    }
                    for s in scored
                ],
            }
        )
    return {
        "link": link,
        "patient": patient,
        "person": person,
        "members": scored,
        "rows": rows,
        "waterfall": waterfall(scored[0]["evidence"]) if scored else None,
    }


def waterfall(evidence: dict[str, Any], width: int = 560) -> dict[str, Any]:
    """The score as steps: the prior, then each comparison's weight (largest first), to the total; each step
    with its bar's x and width in an SVG ``width`` wide. Pure.

    >>> w = waterfall({"weight": 10.0, "fields": {"name": {"level": "exact", "weight": 12.0},
    ...                                           "city": {"level": "different", "weight": -1.5}}})
    >>> [(s["label"], s["weight"], s["end"]) for s in w["steps"]]
    [('prior', -0.5, -0.5), ('name', 12.0, 11.5), ('city', -1.5, 10.0)]
    """
    fields = evidence.get("fields", {})
    total = float(evidence.get("weight", 0.0))
    prior = round(total - sum(float(f.get("weight", 0.0)) for f in fields.values()), 2)
    steps, at = [], 0.0
    ordered = sorted(fields.items(), key=lambda item: -abs(float(item[1].get("weight", 0.0))))
    for label, level, weight in [("prior", "", prior)] + [(c, f.get("level") or "", f["weight"]) for c, f in ordered]:
        steps.append({"label": label, "level": level, "weight": float(weight), "start": at, "end": at + weight})
        at += float(weight)
    low = min([0.0] + [min(s["start"], s["end"]) for s in steps])
    high = max([0.0] + [max(s["start"], s["end"]) for s in steps])
    scale = (width - 2) / ((high - low) or 1.0)
    for s in steps:
        s["x"] = round(1 + (min(s["start"], s["end"]) - low) * scale, 1)
        s["width"] = max(1.0, round(abs(s["weight"]) * scale, 1))
        s["end"] = round(s["end"], 2)
    return {"steps": steps, "total": round(total, 2), "probability": probability(total), "zero": 1 + -low * scale}


def person(engine: Engine, config: Config, ref: str) -> dict[str, Any]:
    """The golden record with each value's origin, the members with their identifiers and links, the history."""
    person_id = find_person(engine, ref)
    with reading(engine).connect() as conn:
        golden = store.person_rows(conn, [person_id])[person_id]
        members = store.members_with_identifiers(conn, person_id)
        ids = [patient_id for patient_id, _, _ in members]
        rows = store.member_rows(conn, [person_id]).get(person_id, [])
        links = store.links_of(conn, ids)
        changes = review.history(conn, person_id, ids, HISTORY)
    chosen = survivors(rows, DEMOGRAPHIC, config.identity.source_priority)
    record = [
        {
            "field": name,
            "value": golden.get(name),
            "source": (chosen.get(name) or {}).get("source"),
            "patient_id": (chosen.get(name) or {}).get("id"),
        }
        for name in DEMOGRAPHIC
        if golden.get(name) not in (None, "")
    ]
    return {
        "person": golden,
        "record": record,
        "members": [
            {
                "patient_id": patient_id,
                "source": source,
                "identifiers": identifiers,
                "links": sorted(links.get(patient_id, []), key=lambda link: link["id"]),
            }
            for patient_id, source, identifiers in members
        ],
        "history": changes,
    }


def streams(config: Config, engine: Engine) -> dict[str, Any]:
    with reading(engine).connect() as conn:
        held = shown_quarantine(quarantine.listed(conn))
    with plain.borrow(engine) as db:
        return {"streams": stream_status(config, db), "quarantine": held}


def levels() -> dict[str, list[str]]:
    """Each comparison's levels, strongest first (the bulk form's agreement pattern)."""
    return {name: [level.label for level in comparison.levels] for name, comparison in COMPARISONS.items()}
