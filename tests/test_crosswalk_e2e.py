"""The crosswalk through the sandbox into SQLite and PostgreSQL: a shared identifier stays on every record that
carries it and is reported as a conflict; an identifier a record no longer carries leaves its entity."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event

from canonical.ids import canonical_id
from pipeline.app.status import stream_status
from pipeline.storage import plain
from pipeline.sync.runner import INCREMENTAL, SWEEP
from tests.support import (
    by_stream,
    count,
    engine_for,
    make_config,
    prescrypto_source,
    profiles_source,
    profiles_truth,
    rows,
    run,
    source_patients,
)

UNTOUCHED = "SELECT * FROM crosswalk WHERE entity_id NOT IN (:a, :b, :c) ORDER BY 1, 2, 3, 4, 5"


def _ids(engine: Any, entity_id: str, id_type: str) -> list[str]:
    found = rows(engine, "SELECT id_value FROM crosswalk WHERE entity_id = :e AND id_type = :t", e=entity_id, t=id_type)
    return sorted(r["id_value"] for r in found)


def _conflicts(engine: Any) -> list[dict[str, Any]]:
    return rows(engine, "SELECT * FROM crosswalk_conflict ORDER BY source, entity_type, id_type, id_value")


def _edit(sandbox: Any, patient: dict[str, Any], **fields: Any) -> None:
    assert sandbox.client.patch(f"/_sandbox/prescrypto/patients/{patient['id']}", json=fields).status_code == 200


def test_two_patients_sharing_a_file_number_both_keep_it_and_it_is_one_conflict(sandbox, db_url):
    truth = source_patients(sandbox)
    first = next(p for p in truth[:50] if p["external_patient_file"])  # on the first page, the sharer on the last
    shared = first["external_patient_file"]
    staged = {"name": "Ana Compartida Ruiz", "date_of_birth": "1991-03-04", "gender": "F", "uid": "shares-a-file"}
    assert sandbox.post("/_sandbox/prescrypto/patients", {**staged, "external_patient_file": shared}).status_code == 201
    config = make_config(db_url, {"rx": prescrypto_source(sandbox)})
    engine = engine_for(config)
    assert by_stream(run(config, engine, SWEEP))["rx/patients"].counts.inserted == 231

    holders = sorted([canonical_id("rx", "patient", first["uid"]), canonical_id("rx", "patient", "shares-a-file")])
    for holder in holders:
        assert _ids(engine, holder, "external_patient_file") == [shared]
    assert _conflicts(engine) == [
        {
            "source": "rx",
            "entity_type": "patient",
            "id_type": "external_patient_file",
            "id_value": shared,
            "entities": 2,
            "entity_ids": ",".join(holders),
        }
    ]
    with plain.borrow(engine) as db:
        found = {row["stream"]: row["conflicts"] for row in stream_status(config, db)}
    assert found == {"patients": 1, "medics": 0}

    # The sharer leaves the source: a soft-deleted patient holds no identifier any more, its row stays.
    staged_id = next(p["id"] for p in source_patients(sandbox) if p["uid"] == "shares-a-file")
    assert sandbox.client.delete(f"/_sandbox/prescrypto/patients/{staged_id}").status_code in (200, 204)
    assert by_stream(run(config, engine, SWEEP))["rx/patients"].deleted == 1
    assert _conflicts(engine) == []
    assert count(engine, "crosswalk", "id_type = 'external_patient_file' AND id_value = :v", v=shared) == 2


def test_an_edited_or_removed_file_number_leaves_the_patient_in_one_statement_a_page(sandbox, db_url):
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    run(config, engine, SWEEP)
    first_page = source_patients(sandbox)[:50]
    edited, removed = [p for p in first_page if p["external_patient_file"]][:2]
    gained = next(p for p in first_page if not p["external_patient_file"])
    _edit(sandbox, edited, external_patient_file="EXP-EDITED-1")
    _edit(sandbox, removed, external_patient_file="")
    _edit(sandbox, gained, external_patient_file="EXP-GAINED-1")
    changed = {
        k: canonical_id("rx", "patient", p["uid"]) for k, p in zip("abc", (edited, removed, gained), strict=True)
    }
    others = rows(engine, UNTOUCHED, **changed)

    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if match := re.match(r"(DELETE FROM|INSERT INTO|UPDATE) crosswalk\b", statement):
            statements.append(match.group(1))

    event.listen(engine, "before_cursor_execute", seen)
    result = by_stream(run(config, engine, SWEEP))["rx/patients"]
    event.remove(engine, "before_cursor_execute", seen)

    assert (result.counts.updated, result.counts.unchanged) == (3, 227)
    assert statements == ["DELETE FROM", "INSERT INTO"]  # one page had changes: one of each, whatever its size
    assert _ids(engine, canonical_id("rx", "patient", edited["uid"]), "external_patient_file") == ["EXP-EDITED-1"]
    assert _ids(engine, canonical_id("rx", "patient", removed["uid"]), "external_patient_file") == []
    assert _ids(engine, canonical_id("rx", "patient", gained["uid"]), "external_patient_file") == ["EXP-GAINED-1"]
    for patient in (edited, removed, gained):
        entity_id = canonical_id("rx", "patient", patient["uid"])
        assert _ids(engine, entity_id, "uid") == [patient["uid"]]
        assert _ids(engine, entity_id, "id") == [str(patient["id"])]
    old = [edited["external_patient_file"], removed["external_patient_file"]]
    assert count(engine, "crosswalk", "id_value IN (:a, :b)", a=old[0], b=old[1]) == 0
    assert rows(engine, UNTOUCHED, **changed) == others
    assert _conflicts(engine) == []


def test_a_doctor_one_patient_stops_mentioning_keeps_its_id_while_the_patient_changes_its_own(sandbox, db_url):
    config = make_config(db_url, {"pf": profiles_source(sandbox)})
    engine = engine_for(config)
    run(config, engine, INCREMENTAL)
    profiles = profiles_truth(sandbox)
    mentions: dict[str, list[str]] = {}
    for p in profiles:
        for d in p["patient_doctor"]:
            mentions.setdefault(d["unique_id"], []).append(p["unique_id"])
    moved, doctor = next((p, d) for p in profiles for d in p["patient_doctor"] if len(mentions[d["unique_id"]]) > 1)
    kept = [d for d in moved["patient_doctor"] if d["unique_id"] != doctor["unique_id"]]
    profile = {**moved["patient_profile"], "unique_id": "prof-moved"}
    body = {"patient_profile": profile, "patient_doctor": kept}
    assert sandbox.client.patch(f"/_sandbox/profiles/patients/{moved['unique_id']}", json=body).status_code == 200

    result = by_stream(run(config, engine, INCREMENTAL))["pf/patients"]
    assert (result.counts.updated, result.counts.unchanged) == (1, 229)
    patient_id = canonical_id("pf", "patient", moved["unique_id"])
    assert _ids(engine, patient_id, "profile_unique_id") == ["prof-moved"]
    assert _ids(engine, patient_id, "unique_id") == [moved["unique_id"]]
    doctor_id = canonical_id("pf", "medic", doctor["unique_id"])
    assert _ids(engine, doctor_id, "unique_id") == [doctor["unique_id"]]
    assert count(engine, "patient_medic", "patient_id = :p AND medic_id = :d", p=patient_id, d=doctor_id) == 0
    assert count(engine, "patient_medic", "medic_id = :d", d=doctor_id) == len(mentions[doctor["unique_id"]]) - 1
