"""Properties of linking, on generated people whose records arrive from three sources in any order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, text

from pipeline.config import IdentityConfig
from pipeline.identity.keys import match_keys
from pipeline.identity.profile import profile
from pipeline.storage.db import migrate, open_engine
from pipeline.storage.identity import replace_keys
from pipeline.storage.load import queue
from pipeline.storage.tables import Patient, table_of
from pipeline.sync.linking import link_pending

GIVEN = ("Delia", "Ramón", "Guadalupe", "Ignacio", "Maricela", "Teodoro", "Xóchitl", "Eusebio")
FAMILY = ("Leiva", "Quintero", "Zamudio", "Barragán", "Villaseñor", "Ochoa", "Echeverría", "Tapia")
SOURCES = ("s1", "s2", "s3")
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


@st.composite
def people(draw: Any, duplicates: bool) -> list[dict[str, Any]]:
    """Patients of 2-5 distinct people (no two share a name or a birth year), each in some of the sources,
    each record with its own noise; with ``duplicates``, a person may appear twice in one source."""
    n = draw(st.integers(2, 5))
    given = draw(st.permutations(GIVEN))[:n]
    family = draw(st.permutations(FAMILY))
    records = []
    for i in range(n):
        born = dt.date(1950 + 7 * i, 1 + i, 3 + i)
        email = f"{given[i].lower()}.{i}@example.mx"
        sources = draw(
            st.lists(st.sampled_from(SOURCES), min_size=1, max_size=4 if duplicates else 3, unique=not duplicates)
        )
        for k, source in enumerate(sources):
            noise = draw(st.sampled_from(("none", "typo", "no_maternal", "swapped", "day_off", "no_email")))
            first, last = given[i], f"{family[i]} {family[-1 - i]}"
            if noise == "typo":
                first = first[:-1] + ("x" if first[-1] != "x" else "y")
            elif noise == "no_maternal":
                last = family[i]
            elif noise == "swapped":
                first, last = last, first
            records.append(
                {
                    "id": f"{source}-{i}-{k}",
                    "person": i,
                    "source": source,
                    "given_name": first,
                    "family_name": last,
                    "full_name": f"{first} {last}",
                    "birth_date": born + dt.timedelta(days=1) if noise == "day_off" else born,
                    "email": None if noise == "no_email" else email,
                    "postal_code": f"0{i}100",
                }
            )
    return records


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path_factory.mktemp('props')}/linking.db"
    engine = open_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()


def _link(engine: Engine, records: list[dict[str, Any]], order: list[int]) -> tuple[set[frozenset[str]], list[Any]]:
    with engine.begin() as conn:
        for table in (
            "patient",
            "person",
            "match_key",
            "patient_keys",
            "identity_link",
            "identity_history",
            "identity_pending",
        ):
            conn.execute(text(f"DELETE FROM {table}"))
        rows = [
            {
                **{k: v for k, v in r.items() if k != "person"},
                "sex": "unknown",
                "active": True,
                "created_at": NOW,
                "updated_at": NOW,
            }
            for r in records
        ]
        conn.execute(insert(table_of(Patient)), rows)
        replace_keys(conn, {r["id"]: match_keys(profile(r, r["source"])) for r in rows})
        for position, i in enumerate(order):  # the queue's order is the order records arrived in
            queue(conn, [rows[i]["id"]], NOW + dt.timedelta(seconds=position))
    link_pending(engine, IdentityConfig())
    with engine.connect() as conn:
        members = conn.execute(text("SELECT person_id, id, source FROM patient")).all()
        auto = conn.execute(
            text(
                "SELECT l.person_id, p.source FROM identity_link l JOIN patient p ON p.id = l.patient_id "
                "WHERE l.status = 'match' AND l.origin = 'auto'"
            )
        ).all()
    persons: dict[str, set[str]] = {}
    for person_id, patient_id, _ in members:
        persons.setdefault(person_id, set()).add(patient_id)
    return {frozenset(p) for p in persons.values()}, auto


_SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(data=st.data())
def test_a_person_never_holds_two_auto_linked_patients_of_one_source(engine: Engine, data: Any) -> None:
    records = data.draw(people(duplicates=True))
    order = data.draw(st.permutations(range(len(records))))
    partition, auto = _link(engine, records, list(order))
    assert len(auto) == len(set(auto)), "two auto-linked patients of one source in one person"
    assert sum(len(p) for p in partition) == len(records)  # every patient has exactly one person


@_SETTINGS
@given(data=st.data())
def test_linking_does_not_depend_on_the_order_records_arrive(engine: Engine, data: Any) -> None:
    records = data.draw(people(duplicates=False))
    first = _link(engine, records, list(range(len(records))))[0]
    shuffled = _link(engine, records, list(data.draw(st.permutations(range(len(records))))))[0]
    assert shuffled == first
    truth = {frozenset(r["id"] for r in records if r["person"] == i) for i in {r["person"] for r in records}}
    assert first == truth  # and on these well-separated people, it finds exactly who is who
