"""The crosswalk through the sandbox into SQLite and PostgreSQL: a shared identifier stays on every record that
carries it and is reported as a conflict."""

from __future__ import annotations

from typing import Any

from pipeline.runner import SWEEP
from pipeline.store import canonical_id
from tests.support import (
    by_stream,
    count,
    engine_for,
    make_config,
    prescrypto_source,
    rows,
    run,
    source_patients,
)


def _ids(engine: Any, entity_id: str, id_type: str) -> list[str]:
    found = rows(engine, "SELECT id_value FROM crosswalk WHERE entity_id = :e AND id_type = :t", e=entity_id, t=id_type)
    return sorted(r["id_value"] for r in found)


def _conflicts(engine: Any) -> list[dict[str, Any]]:
    return rows(engine, "SELECT * FROM crosswalk_conflict ORDER BY source, entity_type, id_type, id_value")


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

    # The sharer leaves the source: a soft-deleted patient holds no identifier any more, its row stays.
    staged_id = next(p["id"] for p in source_patients(sandbox) if p["uid"] == "shares-a-file")
    assert sandbox.client.delete(f"/_sandbox/prescrypto/patients/{staged_id}").status_code in (200, 204)
    assert by_stream(run(config, engine, SWEEP))["rx/patients"].deleted == 1
    assert _conflicts(engine) == []
    assert count(engine, "crosswalk", "id_type = 'external_patient_file' AND id_value = :v", v=shared) == 2
