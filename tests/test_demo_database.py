"""`patientsync demo` and its database on SQLite and PostgreSQL: what it prints and stores, every SQL example in
the README runs on it and returns rows, and its FHIR export validates with counts that match the database."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from pipeline.export.bulk import ExportRequest, export_fhir
from pipeline.export.validate import problems
from pipeline.storage.db import open_engine
from sandbox.app import people_of
from tests.console_support import DEMO_PEOPLE
from tests.support import cli, count, rows, server_objects

# One worker builds the demo's databases once, and runs every test that reads them.
pytestmark = pytest.mark.xdist_group("demo")
pytest_plugins = ("tests.console_support",)  # the demo database on PostgreSQL

ROOT = Path(__file__).resolve().parent.parent
DIALECT_MARK = re.compile(r"\((PostgreSQL|SQLite)\)")


def readme_statements() -> list[tuple[str, str | None, str]]:
    """(title, the one dialect it is for or None, statement) for every statement of the README's SQL blocks."""
    found = []
    for block in re.findall(r"```sql\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S):
        title, only = "", None
        for chunk in block.split(";"):
            lines = [line for line in chunk.strip().splitlines() if line.strip()]
            comments = [line for line in lines if line.startswith("--")]
            if comments:
                title = comments[-1].lstrip("- ")
                mark = DIALECT_MARK.search(title)
                only = {"PostgreSQL": "postgresql", "SQLite": "sqlite"}[mark.group(1)] if mark else None
            statement = "\n".join(line for line in lines if not line.startswith("--")).strip()
            if statement:
                found.append((title, only, statement))
    return found


@pytest.fixture(scope="module")
def demo_command(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """`patientsync demo` as the README runs it (the repository's config.yaml, its defaults), in a directory of
    its own: what it printed, and that directory."""
    where = tmp_path_factory.mktemp("demo")
    (where / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    before = Path.cwd()
    os.chdir(where)
    try:
        ran = cli("demo")
    finally:
        os.chdir(before)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout, where


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def demo_engine(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The database `patientsync demo` fills (its defaults: 250 people, noise on): on SQLite the command's own, on
    PostgreSQL a copy of the one the console's tests share."""
    if request.param == "sqlite":
        _, where = request.getfixturevalue("demo_command")
        engine = open_engine(f"sqlite:///{where}/patientsync-demo.db")
        yield engine
        engine.dispose()
        return
    server, template = request.getfixturevalue("pg_server"), request.getfixturevalue("demo_pg")
    name = f"patientsync_demo_{uuid.uuid4().hex[:12]}"
    create = [f'CREATE DATABASE "{name}" TEMPLATE "{template}"']
    with server_objects(server, create, [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)']):
        engine = open_engine(make_url(server).set(database=name).render_as_string(hide_password=False))
        yield engine
        engine.dispose()


def test_demo_prints_what_landed(demo_command: tuple[str, Path]) -> None:
    printed, where = demo_command
    for title in (
        "rows per table",
        "source identifiers in the crosswalk",
        "a few patient rows",
        "a few observation rows",
    ):
        assert title in printed
    # The sandbox's people and their look-alikes (sandbox.noise), each in the four APIs, with noise: each
    # person's records differ between APIs, so a few land apart, in review.
    people = len(people_of(DEMO_PEOPLE, 1, noise=True))
    resolved = re.search(r"(\d+) live patients resolve to (\d+) persons", printed)
    assert resolved is not None and int(resolved.group(1)) == 4 * people
    assert people <= int(resolved.group(2)) <= people * 1.1
    reviews = re.search(r"(\d+) possible matches wait for review", printed)
    assert reviews is not None and int(reviews.group(1)) > 0
    assert not (where / "patientsync.db").exists()  # the configured database is not the demo's
    engine = open_engine(f"sqlite:///{where}/patientsync-demo.db")
    for source in ("demo-prescrypto", "demo-profiles", "demo-gauges", "demo-particle"):
        assert count(engine, "crosswalk", "source = :s AND entity_type = 'patient'", s=source) >= DEMO_PEOPLE, source
    assert count(engine, "patient") == 4 * people
    assert count(engine, "medic", "id IN (SELECT entity_id FROM crosswalk WHERE source = 'demo-prescrypto')") == 40
    assert count(engine, "medic", "id IN (SELECT entity_id FROM crosswalk WHERE source = 'demo-profiles')") > 0
    assert count(engine, "organization") > 0 and count(engine, "observation") > DEMO_PEOPLE
    assert count(engine, "patient_medic") > 0 and count(engine, "patient_organization") > 0
    assert count(engine, "sync_run", "status <> 'succeeded'") == 0
    assert count(engine, "sync_run") == 6  # two Prescrypto streams, profiles, gauges patients and gauges, Particle


def test_the_readme_has_the_examples_this_checks() -> None:
    titles = [title for title, _, _ in readme_statements()]
    assert len(titles) >= 14
    for view in ("person_summary", "patient_latest_observation", "care_team", "identity_review"):
        assert any(view in statement for _, _, statement in readme_statements()), view


@pytest.mark.parametrize("title, only, statement", readme_statements(), ids=lambda v: str(v)[:40])
def test_every_readme_example_returns_rows_on_the_demo(
    demo_engine: Any, title: str, only: str | None, statement: str
) -> None:
    if only is not None and only != demo_engine.dialect.name:
        pytest.skip(f"the README gives this form for {only} only; the other dialect's form is checked there")
    with demo_engine.connect() as conn:
        found = conn.execute(text(statement)).fetchall()
    assert found, f"{title!r} returned no rows on the demo's database"


def test_the_views_answer_on_the_demo(demo_engine: Any) -> None:
    persons = count(demo_engine, "person", "deleted_at IS NULL")
    summary = rows(demo_engine, "SELECT * FROM person_summary")
    assert len(summary) == persons
    assert sum(r["patients"] for r in summary) == count(demo_engine, "patient", "deleted_at IS NULL")
    assert max(r["sources"] for r in summary) == 4
    delia = [r for r in summary if "8a11e908-f718-4a31-9cbc-c2067acd9a12" in r["identifiers"]]
    assert (
        len(delia) == 1 and delia[0]["sources"] == 4 and "demo-profiles:unique_id:pat000001" in delia[0]["identifiers"]
    )
    latest = rows(demo_engine, "SELECT person_id, code, count(*) AS n FROM patient_latest_observation GROUP BY 1, 2")
    assert latest and all(r["n"] == 1 for r in latest)
    open_reviews = count(demo_engine, "identity_link", "status = 'possible_match'")
    assert 0 < len(rows(demo_engine, "SELECT * FROM identity_review")) <= open_reviews
    assert rows(demo_engine, "SELECT count(*) AS n FROM care_team WHERE medic_id IS NOT NULL")[0]["n"] > 0


def test_the_demo_exports_valid_fhir_whose_counts_match(demo_engine: Any, tmp_path: Path) -> None:
    result = export_fhir(demo_engine, ExportRequest(tmp_path), validate=problems)
    assert result.invalid == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    counts = {entry["type"]: entry["count"] for entry in manifest["output"]}
    assert counts == {
        "Patient": count(demo_engine, "person", "deleted_at IS NULL"),
        "Practitioner": count(demo_engine, "medic", "deleted_at IS NULL"),
        "Organization": count(demo_engine, "organization", "deleted_at IS NULL"),
        "Observation": count(demo_engine, "observation", "deleted_at IS NULL"),
    }
    for entry in manifest["output"]:
        lines = Path(entry["url"]).read_text().splitlines()
        assert len(lines) == entry["count"]
        for line in lines:  # the export itself validated; this reads back what reached the file
            assert problems(json.loads(line)) == []
