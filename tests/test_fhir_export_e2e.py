"""The FHIR export end to end: the sandbox's four APIs synced into SQLite and PostgreSQL, then exported; every line
validated against the R4B models, counts and identifiers checked against the database."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from pipeline.export import bulk
from pipeline.export.bulk import ExportRequest, export_fhir
from pipeline.export.validate import problems
from pipeline.storage import export as store
from pipeline.storage import load
from pipeline.storage.db import migrate, open_engine, write_instant
from tests.support import (
    cli,
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
    export_fhir(engine, ExportRequest(out, since=since))
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


def _cli(config_path: Path, *args: str) -> str:
    done = cli("--config", str(config_path), *args)
    assert done.returncode == 0, done.output
    return done.output


def _exported_persons(out: Path) -> set[str]:
    return {p["id"] for p in _exported(out)[1].get("Patient", [])}


def test_since_the_last_export_a_sync_and_a_backfill_of_unchanged_data_export_nothing(
    sandbox: Any, db_url: str, tmp_path: Path
) -> None:
    sources = every_source(sandbox)
    swept(sandbox, db_url, sources, patients=PEOPLE, medics=6, seed=11)
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(db_url, sources))
    _cli(config, "export", "fhir", "--out", str(tmp_path / "all"))
    horizon = json.loads((tmp_path / "all" / "manifest.json").read_text())["transactionTime"]
    _cli(config, "sync")
    _cli(config, "backfill")
    _cli(config, "export", "fhir", "--out", str(tmp_path / "since"), "--since", horizon)
    manifest = json.loads((tmp_path / "since" / "manifest.json").read_text())
    assert (manifest["output"], manifest["deleted"], manifest["error"]) == ([], [], [])


def test_since_an_instant_before_a_backfill_exports_exactly_the_changed_people(
    sandbox: Any, db_url: str, tmp_path: Path
) -> None:
    sources = every_source(sandbox)
    _, engine = swept(sandbox, db_url, sources, patients=PEOPLE, medics=6, seed=11)
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(db_url, sources))
    ids = "SELECT id_value FROM crosswalk WHERE source = 'rx' AND id_type = 'id' AND entity_type = 'patient'"
    changed = sorted(r["id_value"] for r in rows(engine, ids))[:3]
    for n, rx in enumerate(changed):
        sandbox.client.patch(
            f"/_sandbox/prescrypto/patients/{rx}", json={"email": f"changed-{n}@example.org"}
        ).raise_for_status()
    before = dt.datetime.now(dt.UTC).isoformat()  # by hand, as an operator would give it
    _cli(config, "backfill", "--source", "rx")
    _cli(config, "export", "fhir", "--out", str(tmp_path / "since"), "--since", before)
    manifest, _ = _exported(tmp_path / "since")
    assert [e["type"] for e in manifest["output"]] == ["Patient"] and manifest["deleted"] == []
    assert _exported_persons(tmp_path / "since") == {person_of(engine, "rx", rx, "id") for rx in changed}


def test_a_write_in_flight_during_an_export_is_exported_exactly_once(sandbox: Any, db_url: str, tmp_path: Path) -> None:
    """The case a look-back used to cover: a row stamped before an export's snapshot and committed after it. The
    export waits for the write instead, so the row is in that export, and not again in the next one since it."""
    _, engine = _synced(sandbox, db_url)
    late = rows(engine, "SELECT id FROM person ORDER BY id LIMIT 1")[0]["id"]
    stamped, release = threading.Event(), threading.Event()

    def writer() -> None:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE person SET full_name = 'Late', updated_at = :t WHERE id = :p"),
                {"t": write_instant(conn), "p": late},
            )
            stamped.set()
            release.wait(timeout=30)  # committed once the export says it waits, or never before it ends

    def export() -> None:
        results.append(export_fhir(engine, ExportRequest(tmp_path / "first"), waiting=release.set).manifest)

    results: list[dict[str, Any]] = []
    writing = threading.Thread(target=writer)
    writing.start()
    assert stamped.wait(timeout=30)
    exporting = threading.Thread(target=export)
    exporting.start()
    exporting.join(timeout=60)
    release.set()
    writing.join(timeout=60)
    exporting.join(timeout=60)
    [first] = results
    export_fhir(engine, ExportRequest(tmp_path / "next", since=dt.datetime.fromisoformat(first["transactionTime"])))
    in_first = [p for p in _lines(tmp_path / "first" / "Patient.ndjson") if p["id"] == late]
    assert [p["name"][0]["text"] for p in in_first] == ["Late"]
    assert late not in _exported_persons(tmp_path / "next")


def test_a_page_is_stamped_when_it_is_written_not_when_it_was_built(sqlite_url: str) -> None:
    """Rows are built a page ahead, outside the transaction: their stamps are the transaction's own."""
    engine = open_engine(sqlite_url)
    migrate(engine)
    built = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    record = {
        "entity_id": None,
        "source": "rx",
        "stream": "patients",
        "source_key": "1",
        "payload": {},
        "payload_hash": "h",
        "first_seen_at": built,
        "last_seen_at": built,
        "deleted_at": None,
    }
    organization = {"id": "o1", "name": "Clinic", "created_at": built, "updated_at": built, "deleted_at": None}
    with engine.begin() as conn:
        at = write_instant(conn)
        load.write(conn, load.PageRows("rx", "patients", canonical={"organization": [organization]}, records=[record]))
    assert at > built
    [stored] = rows(engine, "SELECT created_at, updated_at FROM organization")
    [seen] = rows(engine, "SELECT first_seen_at, last_seen_at FROM source_record")
    stamps = {*stored.values(), *seen.values()}
    assert len(stamps) == 1 and "2020" not in str(stamps)


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
    out = tmp_path / "fhir"
    done = cli("--config", str(path), "export", "fhir", "--out", str(out), "--type", "Patient", "--validate")
    assert done.returncode == 0, done.output
    assert f"{PEOPLE} Patient" in " ".join(done.output.split())
    manifest, found = _exported(out)
    assert list(found) == ["Patient"]
    systems = {i["system"] for p in found["Patient"] for i in p["identifier"]}
    assert "https://prescrypto.example/uid" in systems and "urn:patientsync:rx:uid" not in systems
    bad_type = cli("--config", str(path), "export", "fhir", "--out", str(out), "--type", "Patient,Bogus")
    assert bad_type.returncode == 2 and "'Bogus'" in bad_type.output
    bad_since = cli("--config", str(path), "export", "fhir", "--out", str(out), "--since", "last week")
    assert bad_since.returncode == 2 and "ISO 8601" in bad_since.output
    import pipeline.export.validate

    monkeypatch.setattr(pipeline.export.validate, "problems", lambda resource: ["gender: value_error"])
    refused = cli("--config", str(path), "export", "fhir", "--out", str(out), "--validate")
    assert refused.returncode == 1 and "failed validation" in refused.output
    assert json.loads((out / "manifest.json").read_text())["error"][0]["type"] == "OperationOutcome"
    missing = tmp_path / "typo.db"
    no_db = cli("--config", str(path), "export", "fhir", "--out", str(out), "--database", f"sqlite:///{missing}")
    assert no_db.returncode == 2 and "no such file" in no_db.output and not missing.exists()
