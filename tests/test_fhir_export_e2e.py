"""The FHIR export end to end: the sandbox's four APIs synced into SQLite and PostgreSQL, then exported; every line
validated against the R4B models, counts and identifiers checked against the database."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from pipeline.app.cli import app
from pipeline.export import bulk
from pipeline.export.bulk import ExportRequest, export_fhir
from pipeline.export.validate import problems
from pipeline.storage import export as store
from tests.support import (
    config_yaml,
    count,
    every_source,
    particle_truth,
    person_of,
    rows,
    run,
    swept,
)

PEOPLE = 40


def _synced(sandbox: Any, db_url: str) -> tuple[Any, Any]:
    return swept(sandbox, db_url, every_source(sandbox), patients=PEOPLE, medics=6, seed=11)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _exported(out: Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    manifest = json.loads((out / "manifest.json").read_text())
    return manifest, {entry["type"]: _lines(Path(entry["url"])) for entry in manifest["output"]}


def test_the_export_validates_and_matches_the_database(sandbox: Any, db_url: str, tmp_path: Path) -> None:
    _, engine = _synced(sandbox, db_url)
    shown: dict[str, tuple[int, int]] = {}
    progress = lambda resource_type, done, total: shown.__setitem__(resource_type, (done, total))  # noqa: E731
    result = export_fhir(engine, ExportRequest(tmp_path / "out"), progress, validate=problems)
    assert result.invalid == 0
    manifest, found = _exported(tmp_path / "out")
    assert shown == {e["type"]: (e["count"], e["count"]) for e in manifest["output"]}  # the bars end full
    assert set(manifest) == {"transactionTime", "request", "requiresAccessToken", "output", "error"}
    assert manifest["requiresAccessToken"] is False and manifest["error"] == []
    assert [e["type"] for e in manifest["output"]] == ["Patient", "Practitioner", "Organization", "Observation"]
    for entry in manifest["output"]:
        assert Path(entry["url"]).is_absolute() and entry["count"] == len(found[entry["type"]])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["manifest.json", "Patient.ndjson", "Practitioner.ndjson", "Organization.ndjson", "Observation.ndjson"]
    )
    for resources in found.values():
        for resource in resources:
            assert problems(resource) == [], resource["id"]

    persons = {r["id"] for r in rows(engine, "SELECT id FROM person WHERE deleted_at IS NULL")}
    assert len(persons) == PEOPLE
    assert {p["id"] for p in found["Patient"]} == persons
    assert len(found["Practitioner"]) == count(engine, "medic", "deleted_at IS NULL")
    assert len(found["Organization"]) == count(engine, "organization", "deleted_at IS NULL")
    assert len(found["Observation"]) == count(engine, "observation", "deleted_at IS NULL") > 0

    # Every crosswalk id of every patient of a person, with its system, and nothing else.
    expected: dict[str, set[tuple[str, str]]] = {}
    for r in rows(engine, "SELECT person_id, source, id_type, id_value FROM person_identifier"):
        expected.setdefault(r["person_id"], set()).add((f"urn:patientsync:{r['source']}:{r['id_type']}", r["id_value"]))
    for patient in found["Patient"]:
        assert {(i["system"], i["value"]) for i in patient["identifier"]} == expected[patient["id"]]
        assert {i["system"].split(":")[2] for i in patient["identifier"]} == {"rx", "pf", "ga", "pa"}

    # References resolve within the export; observations are about persons.
    exported = {f"{t}/{r['id']}" for t, resources in found.items() for r in resources}
    for observation in found["Observation"]:
        assert observation["subject"]["reference"] in exported
    cared = [ref["reference"] for p in found["Patient"] for ref in p.get("generalPractitioner", [])]
    assert cared and set(cared) <= exported

    # No SSN leaves, nor its hash, nor the last four digits as an identifier.
    text_ = "".join(Path(e["url"]).read_text() for e in manifest["output"])
    assert "ssn" not in text_.lower()
    ssns = [d["ssn"] for d in particle_truth(sandbox).values() if d.get("ssn")]
    assert ssns
    for ssn in ssns:
        assert ssn not in text_ and ssn.replace("-", "") not in text_


def test_since_exports_what_changed_and_lists_the_deleted(sandbox: Any, db_url: str, tmp_path: Path) -> None:
    config, engine = _synced(sandbox, db_url)
    with_readings = "SELECT DISTINCT c.id_value FROM crosswalk c JOIN observation o ON o.patient_id = c.entity_id "
    renamed, leaving, moving = sorted(r["id_value"] for r in rows(engine, with_readings + "WHERE c.source = 'ga'"))[:3]
    [rx] = [
        r["id_value"]
        for r in rows(
            engine,
            "SELECT id_value FROM crosswalk WHERE source = 'rx' AND id_type = 'id' AND entity_type = 'patient' LIMIT 1",
        )
    ]
    # A patient of its own person (its birth date no longer agrees), which then leaves its source.
    sandbox.client.patch(
        f"/_sandbox/gauges/patients/{leaving}", json={"date_of_birth": "1901-01-01"}
    ).raise_for_status()
    assert all(r.ok for r in run(config, engine, "sweep"))
    alone = person_of(engine, "ga", leaving, "id")
    first = export_fhir(engine, ExportRequest(tmp_path / "all")).manifest
    since = dt.datetime.fromisoformat(first["transactionTime"])
    readings_before = {o["id"]: o["subject"] for o in _lines(tmp_path / "all" / "Observation.ndjson")}
    sandbox.client.patch(f"/_sandbox/gauges/patients/{renamed}", json={"first_name": "Renamed"}).raise_for_status()
    sandbox.client.delete(f"/_sandbox/gauges/patients/{leaving}").raise_for_status()
    # An identifier alone: no patient column changes, only the crosswalk.
    sandbox.client.patch(
        f"/_sandbox/prescrypto/patients/{rx}", json={"external_patient_file": "EXP-NEW-7"}
    ).raise_for_status()
    # A patient that leaves its person for one of its own: its readings now have another subject.
    sandbox.client.patch(f"/_sandbox/gauges/patients/{moving}", json={"date_of_birth": "1902-02-02"}).raise_for_status()
    assert all(r.ok for r in run(config, engine, "sweep"))
    assert count(engine, "person", "id = :p AND deleted_at IS NOT NULL", p=alone) == 1

    out = tmp_path / "since"
    export_fhir(engine, ExportRequest(out, since=since, overlap=dt.timedelta(0)))
    manifest, found = _exported(out)
    assert "_since=" in manifest["request"]
    changed = {p["id"] for p in found["Patient"]}
    moved = person_of(engine, "ga", moving, "id")
    expected = {person_of(engine, "ga", renamed, "id"), person_of(engine, "rx", rx, "id"), moved}
    assert expected <= changed and len(changed) < PEOPLE  # the unchanged persons are not exported again
    assert alone not in changed
    identifiers = {i["value"] for p in found["Patient"] for i in p["identifier"]}
    assert "EXP-NEW-7" in identifiers
    relinked = [o for o in found["Observation"] if o["subject"]["reference"] == f"Patient/{moved}"]
    assert relinked and all(readings_before[o["id"]] != o["subject"] for o in relinked)
    assert "Practitioner" not in found  # no medic changed: no file, not listed
    assert not (out / "Practitioner.ndjson").exists()
    bundles = [b for entry in manifest["deleted"] for b in _lines(Path(entry["url"]))]
    assert [e["type"] for e in manifest["deleted"]] == ["Bundle"]
    urls = {b["entry"][0]["request"]["url"] for b in bundles}
    assert f"Patient/{alone}" in urls
    assert all(b["entry"][0]["request"]["method"] == "DELETE" and problems(b) == [] for b in bundles)


def test_since_reaches_back_for_a_row_committed_after_the_last_snapshot(
    sandbox: Any, sqlite_url: str, tmp_path: Path
) -> None:
    _, engine = _synced(sandbox, sqlite_url)
    first = export_fhir(engine, ExportRequest(tmp_path / "all")).manifest
    since = dt.datetime.fromisoformat(first["transactionTime"])
    # A writer stamped this person before the first export's snapshot and committed after it.
    late = rows(engine, "SELECT id FROM person ORDER BY id LIMIT 1")[0]["id"]
    with engine.begin() as conn:
        stamped = (since - dt.timedelta(seconds=2)).replace(tzinfo=None)
        conn.execute(
            text("UPDATE person SET full_name = 'Late', updated_at = :t WHERE id = :p"), {"t": stamped, "p": late}
        )
    strict = export_fhir(engine, ExportRequest(tmp_path / "strict", since=since, overlap=dt.timedelta(0))).manifest
    assert strict["output"] == []  # without the overlap it would be missed for good
    export_fhir(engine, ExportRequest(tmp_path / "next", since=since))
    _, found = _exported(tmp_path / "next")
    assert late in {p["id"] for p in found["Patient"]}


def test_chunks_bound_what_is_read_at_once_and_change_nothing(
    sandbox: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, engine = _synced(sandbox, sqlite_url)
    export_fhir(engine, ExportRequest(tmp_path / "whole"))
    sizes: list[int] = []
    chunks = store.Listing.chunks

    def recorded(self: store.Listing, conn: Any, since: Any) -> Any:
        for chunk in chunks(self, conn, since):
            sizes.append(len(chunk))
            yield chunk

    monkeypatch.setattr(store, "CHUNK", 7)
    monkeypatch.setattr(store.Listing, "chunks", recorded)
    export_fhir(engine, ExportRequest(tmp_path / "chunked"))
    assert max(sizes) == 7 and len(sizes) > 10
    for name in ("Patient", "Practitioner", "Organization", "Observation"):
        assert (tmp_path / "whole" / f"{name}.ndjson").read_bytes() == (
            tmp_path / "chunked" / f"{name}.ndjson"
        ).read_bytes()


def test_a_failed_export_leaves_the_previous_one_whole_and_no_partial_file(
    sandbox: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, engine = _synced(sandbox, sqlite_url)
    out = tmp_path / "out"
    export_fhir(engine, ExportRequest(out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    written = 0
    observation = bulk.resources.observation

    def failing(*args: Any) -> Any:
        nonlocal written
        written += 1
        if written > 20:
            raise RuntimeError("disk gone")
        return observation(*args)

    monkeypatch.setattr(bulk.resources, "observation", failing)
    with pytest.raises(RuntimeError):
        export_fhir(engine, ExportRequest(out))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing half-written, nothing replaced


def test_validation_problems_go_to_the_error_file_and_the_files_are_private(
    sandbox: Any, sqlite_url: str, tmp_path: Path
) -> None:
    _, engine = _synced(sandbox, sqlite_url)
    out = tmp_path / "out"

    def refuse_organizations(resource: dict[str, Any]) -> list[str]:
        return (
            ["name: value_error.str.regex", "id: value_error.missing"]
            if resource["resourceType"] == "Organization"
            else []
        )

    result = export_fhir(engine, ExportRequest(out), validate=refuse_organizations)
    organizations = count(engine, "organization", "deleted_at IS NULL")
    assert result.invalid == organizations > 0
    [error] = result.manifest["error"]
    assert error["type"] == "OperationOutcome" and error["count"] == organizations
    outcomes = _lines(Path(error["url"]))
    assert all(problems(o) == [] for o in outcomes)
    assert all(len(o["issue"]) == 2 for o in outcomes)  # one outcome per resource, an issue per problem
    assert {o["issue"][0]["diagnostics"].split(":", 1)[1].strip() for o in outcomes} == {"name: value_error.str.regex"}
    assert out.stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o600}  # patient data, as the database file
    # The next export without problems drops the error file, and its manifest names none.
    assert export_fhir(engine, ExportRequest(out)).manifest["error"] == [] and not Path(error["url"]).exists()


def test_export_from_the_command_line(
    sandbox: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _synced(sandbox, sqlite_url)
    path = tmp_path / "config.yaml"
    sources = every_source(sandbox)
    path.write_text(
        config_yaml(sqlite_url, sources)
        + "export:\n  fhir:\n    identifier_systems:\n      rx:\n        uid: https://prescrypto.example/uid\n"
    )
    cli = CliRunner()
    out = tmp_path / "fhir"
    done = cli.invoke(
        app, ["--config", str(path), "export", "fhir", "--out", str(out), "--type", "Patient", "--validate"]
    )
    assert done.exit_code == 0, done.output
    assert f"{PEOPLE} Patient" in " ".join(done.output.split())
    manifest, found = _exported(out)
    assert list(found) == ["Patient"]
    systems = {i["system"] for p in found["Patient"] for i in p["identifier"]}
    assert "https://prescrypto.example/uid" in systems and "urn:patientsync:rx:uid" not in systems
    bad_type = cli.invoke(app, ["--config", str(path), "export", "fhir", "--out", str(out), "--type", "Patient,Bogus"])
    assert bad_type.exit_code == 2 and "'Bogus'" in bad_type.output
    bad_since = cli.invoke(app, ["--config", str(path), "export", "fhir", "--out", str(out), "--since", "last week"])
    assert bad_since.exit_code == 2 and "ISO 8601" in bad_since.output
    import pipeline.export.validate

    monkeypatch.setattr(pipeline.export.validate, "problems", lambda resource: ["gender: value_error"])
    refused = cli.invoke(app, ["--config", str(path), "export", "fhir", "--out", str(out), "--validate"])
    assert refused.exit_code == 1 and "failed validation" in refused.output
    assert json.loads((out / "manifest.json").read_text())["error"][0]["type"] == "OperationOutcome"
    missing = tmp_path / "typo.db"
    no_db = cli.invoke(
        app, ["--config", str(path), "export", "fhir", "--out", str(out), "--database", f"sqlite:///{missing}"]
    )
    assert no_db.exit_code == 2 and "no such file" in no_db.output and not missing.exists()
