"""The gauges API in the sandbox over real HTTP: patients and their readings as documented, switches, staging."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
import phonenumbers
import pytest

from sandbox.gauges import ADDRESS_FIELDS, DEFAULT_TOKEN, GAUGE_FIELDS, PATIENT_FIELDS, SCALES
from sandbox.server import SandboxHandle

PATIENTS, MEDICS, SEED = 230, 40, 7  # what the `sandbox` fixture resets to
AUTH = {"X-User-Token": DEFAULT_TOKEN}
LIST = "/gauges/v1/patients"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$")


def get(sandbox: SandboxHandle, path: str, **params: Any) -> httpx.Response:
    return sandbox.client.get(path, params=params, headers=AUTH)


def all_patients(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    patients: list[dict[str, Any]] = []
    page = 1
    while batch := get(sandbox, LIST, page=page, page_size=100).json():
        patients += batch
        page += 1
    return patients


def readings_of(sandbox: SandboxHandle, patient_id: Any, **params: Any) -> list[dict[str, Any]]:
    response = get(sandbox, f"{LIST}/{patient_id}/gauges", **params)
    assert response.status_code == 200, response.text
    return response.json()


def stage_patient(sandbox: SandboxHandle, **fields: Any) -> dict[str, Any]:
    response = sandbox.post("/_sandbox/gauges/patients", {"first_name": "Staged", **fields})
    assert response.status_code == 201
    return response.json()


def stage_reading(sandbox: SandboxHandle, patient_id: Any, recorded_at: str, **fields: Any) -> dict[str, Any]:
    reading = {"patient_id": patient_id, "gauge_type": "pain", "value": 4, "recorded_at": recorded_at, **fields}
    response = sandbox.post("/_sandbox/gauges/gauges", reading)
    assert response.status_code == 201
    return response.json()


@pytest.mark.parametrize("path", [LIST, f"{LIST}/1", f"{LIST}/1/gauges"])
@pytest.mark.parametrize(
    "headers", [{}, {"X-User-Token": "wrong"}, {"Authorization": f"Token {DEFAULT_TOKEN}"}, {"X-User-Token": ""}]
)
def test_every_endpoint_wants_the_token(sandbox: SandboxHandle, path: str, headers: dict[str, str]) -> None:
    response = sandbox.client.get(path, headers=headers)
    assert (response.status_code, response.json()) == (401, {"errors": "Invalid token"})
    assert sandbox.client.get(path, headers=AUTH).status_code == 200


def test_the_token_can_be_switched(sandbox: SandboxHandle) -> None:
    sandbox.switches("gauges", token="rotated")
    assert get(sandbox, LIST).status_code == 401
    assert sandbox.client.get(LIST, headers={"X-User-Token": "rotated"}).status_code == 200


def test_patients_page_by_page_number_and_size(sandbox: SandboxHandle) -> None:
    pages = []
    page = 1
    while batch := get(sandbox, LIST, page=page).json():
        pages.append(batch)
        page += 1
    assert [len(p) for p in pages] == [25] * 9 + [5]  # 25 a page by default; past the end, []
    patients = [p for batch in pages for p in batch]
    ids = [p["id"] for p in patients]
    assert ids == sorted(ids) and len(set(ids)) == PATIENTS and ids[0] == 1
    assert ids[-1] > PATIENTS  # deleted patients leave gaps
    assert patients == all_patients(sandbox)
    assert get(sandbox, LIST, page=3, page_size=7).json() == patients[14:21]
    assert len(get(sandbox, LIST, page_size=500).json()) == 100  # capped
    assert get(sandbox, LIST).json() == get(sandbox, f"{LIST}/", page=1, page_size=25).json()
    assert get(sandbox, LIST, page=4, page_size=100).json() == []


def test_patients_have_the_documented_fields(sandbox: SandboxHandle) -> None:
    patients = all_patients(sandbox)
    assert all(list(p) == list(PATIENT_FIELDS) for p in patients)
    assert {p["gender"] for p in patients} == {"male", "female", "other"}
    assert {p["active"] for p in patients} == {True, False}
    as_of = dt.date(2026, 6, 30)
    for p in patients:
        born = dt.date.fromisoformat(p["date_of_birth"])
        assert p["age"] == as_of.year - born.year - ((as_of.month, as_of.day) < (born.month, born.day))
        assert p["address"] is None or list(p["address"]) == list(ADDRESS_FIELDS)
        assert STAMP.match(p["created_at"]) and STAMP.match(p["updated_at"])
        assert p["created_at"] <= p["updated_at"] <= "2026-06-30T23:59:59.000Z"
        if p["phone"]:
            assert re.fullmatch(r"\+52-\d{2,3}-\d{3,4}-\d{4}", p["phone"]), p["phone"]
            assert phonenumbers.is_valid_number(phonenumbers.parse(p["phone"], None))
    assert {p["phone"] for p in patients} >= {None, ""}
    assert any(p["address"] is None for p in patients) and any(p["email"] is None for p in patients)


def test_the_list_shape_switch(sandbox: SandboxHandle) -> None:
    bare = get(sandbox, LIST, page=2).json()
    assert isinstance(bare, list) and len(bare) == 25
    for shape in ("patients", "data", "results"):
        assert sandbox.switches("gauges", list_shape=shape)["list_shape"] == shape
        assert get(sandbox, LIST, page=2).json() == {shape: bare}
        assert get(sandbox, LIST, page=99).json() == {shape: []}
    assert sandbox.post("/_sandbox/gauges/switches", {"list_shape": "items"}).status_code == 400
    sandbox.switches("gauges", list_shape="list")
    assert get(sandbox, LIST, page=2).json() == bare


def test_search_filters_by_name_or_email(sandbox: SandboxHandle) -> None:
    patients = all_patients(sandbox)
    term = patients[10]["last_name"].split()[0]
    found = get(sandbox, LIST, search=term.upper(), page_size=100).json()
    assert patients[10] in found
    assert all(
        any(term.casefold() in (p[f] or "").casefold() for f in ("first_name", "last_name", "email")) for p in found
    )
    assert get(sandbox, LIST, search="no such person anywhere").json() == []


def test_one_patient_and_the_documented_errors(sandbox: SandboxHandle) -> None:
    patient = all_patients(sandbox)[7]
    assert get(sandbox, f"{LIST}/{patient['id']}").json() == patient
    for missing in (f"{LIST}/999999", f"{LIST}/abc", f"{LIST}/999999/gauges"):
        response = get(sandbox, missing)
        assert (response.status_code, response.json()) == (404, {"errors": "Patient not found"})

    sandbox.switches("gauges", forbidden=[patient["id"]])
    forbidden = {"errors": "You are not authorized to access this patient"}
    for response in (
        get(sandbox, f"{LIST}/{patient['id']}"),
        get(sandbox, f"{LIST}/{patient['id']}/gauges"),
        sandbox.client.put(f"{LIST}/{patient['id']}", headers=AUTH, json={"patient": {"first_name": "X"}}),
    ):
        assert (response.status_code, response.json()) == (403, forbidden)
    assert get(sandbox, f"{LIST}/{patient['id'] + 1000}").status_code == 404  # unknown stays 404
    assert sandbox.switches("gauges")["forbidden"] == [patient["id"]]
    assert patient in all_patients(sandbox)  # the list still shows the patient
    sandbox.switches("gauges", forbidden=[])
    assert get(sandbox, f"{LIST}/{patient['id']}").status_code == 200


def test_readings_have_the_documented_fields_and_ids(sandbox: SandboxHandle) -> None:
    patients = all_patients(sandbox)
    readings = {p["id"]: readings_of(sandbox, p["id"]) for p in patients}
    counts = [len(r) for r in readings.values()]
    assert min(counts) == 0 and max(counts) == 6 and 2 < sum(counts) / len(counts) < 4
    everything = [r for items in readings.values() for r in items]
    assert sorted(r["id"] for r in everything) == list(range(1, len(everything) + 1))  # global ids
    assert {r["gauge_type"] for r in everything} == set(SCALES)
    for patient_id, items in readings.items():
        assert [r["recorded_at"] for r in items] == sorted(r["recorded_at"] for r in items)
        for r in items:
            assert list(r) == list(GAUGE_FIELDS) and r["patient_id"] == patient_id
            assert (r["scale_min"], r["scale_max"]) == SCALES[r["gauge_type"]]
            assert isinstance(r["value"], int) and r["scale_min"] <= r["value"] <= r["scale_max"]
            assert STAMP.match(r["recorded_at"]) and STAMP.match(r["created_at"])
            assert "2025-07-01T00:00:00.000Z" <= r["recorded_at"] <= r["created_at"] <= "2026-06-30T23:59:59.000Z"
            assert r["notes"] is None or isinstance(r["notes"], str)
    assert {r["notes"] is None for r in everything} == {True, False}
    assert {(r["scale_min"], r["scale_max"]) for r in everything} == {(1, 10), (0, 100)}


def test_gauge_type_filter(sandbox: SandboxHandle) -> None:
    patient_id = next(p["id"] for p in all_patients(sandbox) if len(readings_of(sandbox, p["id"])) >= 4)
    items = readings_of(sandbox, patient_id)
    kind = items[0]["gauge_type"]
    assert readings_of(sandbox, patient_id, gauge_type=kind) == [r for r in items if r["gauge_type"] == kind]
    assert readings_of(sandbox, patient_id, gauge_type="no_such_gauge") == []


def test_date_filters_are_inclusive_utc_days(sandbox: SandboxHandle) -> None:
    patient = stage_patient(sandbox)
    pid = patient["id"]
    moments = [
        "2026-03-09T23:59:59.000Z",
        "2026-03-10T00:00:00.000Z",
        "2026-03-10T23:59:59.000Z",
        "2026-03-10T23:30:00-02:00",  # 01:30 UTC on the 11th
        "2026-03-11T00:00:00.000Z",
    ]
    staged = [stage_reading(sandbox, pid, at) for at in moments]
    ids = [r["id"] for r in staged]

    def between(**bounds: str) -> list[int]:
        return [r["id"] for r in readings_of(sandbox, pid, **bounds)]

    assert between() == [ids[0], ids[1], ids[2], ids[4], ids[3]]  # in recorded_at order, as instants
    assert between(start_date="2026-03-10", end_date="2026-03-10") == ids[1:3]
    assert between(start_date="2026-03-10") == [ids[1], ids[2], ids[4], ids[3]]
    assert between(end_date="2026-03-10") == ids[:3]
    assert between(start_date="2026-03-11", end_date="2026-03-11") == [ids[4], ids[3]]
    assert between(start_date="2026-03-12") == []

    # The same on generated data: a reading's own day includes it, the day after excludes it.
    generated = next(r for p in all_patients(sandbox)[:40] for r in readings_of(sandbox, p["id"]))
    day = generated["recorded_at"][:10]
    after = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
    assert generated in readings_of(sandbox, generated["patient_id"], start_date=day, end_date=day)
    assert generated not in readings_of(sandbox, generated["patient_id"], start_date=after)
    assert generated not in readings_of(sandbox, generated["patient_id"], end_date="2025-06-30")


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({"start_date": "2026-13-01"}, {"start_date": ["must be a valid date"]}),
        ({"start_date": "yesterday"}, {"start_date": ["must be a valid date"]}),
        ({"end_date": "2026-02-30"}, {"end_date": ["must be a valid date"]}),
        (
            {"start_date": "2026-1-1", "end_date": "x"},
            {"start_date": ["must be a valid date"], "end_date": ["must be a valid date"]},
        ),
    ],
)
def test_a_malformed_date_is_422(sandbox: SandboxHandle, params: dict[str, str], errors: dict[str, Any]) -> None:
    response = get(sandbox, f"{LIST}/1/gauges", **params)
    assert (response.status_code, response.json()) == (422, {"errors": errors})


def test_create_a_patient(sandbox: SandboxHandle) -> None:
    response = sandbox.client.post(LIST, headers=AUTH, json={"patient": {"gender": "male"}})
    assert response.status_code == 422
    assert response.json() == {  # exactly the document's example
        "errors": {
            "first_name": ["can't be blank"],
            "last_name": ["can't be blank"],
            "date_of_birth": ["can't be blank", "must be a valid date"],
        }
    }
    response = sandbox.client.post(
        LIST, headers=AUTH, json={"patient": {"first_name": "J", "last_name": "D", "date_of_birth": "15/05/2010"}}
    )
    assert response.json() == {"errors": {"date_of_birth": ["must be a valid date"]}}
    assert sandbox.client.post(LIST, headers=AUTH, json={"first_name": "J"}).status_code == 400

    document = {
        "first_name": "John",
        "last_name": "Doe",
        "date_of_birth": "2010-05-15",
        "gender": "male",
        "phone": "+1-555-123-4567",
        "email": "john@example.com",
        "address": {"street": "123 Main St", "city": "Anytown", "state": "CA", "zip_code": "12345"},
    }
    response = sandbox.client.post(LIST, headers=AUTH, json={"patient": document})
    assert response.status_code == 201
    created = response.json()
    assert list(created) == list(PATIENT_FIELDS)
    last = all_patients(sandbox)[-1]
    assert created == last and created == {
        **document,
        "id": created["id"],
        "age": 16,  # on 2026-06-30
        "active": True,
        "created_at": created["created_at"],
        "updated_at": created["created_at"],
    }
    assert created["id"] > all_patients(sandbox)[-2]["id"] and STAMP.match(created["created_at"])
    assert readings_of(sandbox, created["id"]) == []


def test_update_a_patient(sandbox: SandboxHandle) -> None:
    patient = all_patients(sandbox)[3]
    change = {"patient": {"last_name": "Nuevo", "date_of_birth": "2000-07-01", "address": None}}
    response = sandbox.client.put(f"{LIST}/{patient['id']}", headers=AUTH, json=change)
    assert response.status_code == 200
    updated = response.json()
    assert updated["updated_at"] > patient["updated_at"] and STAMP.match(updated["updated_at"])
    assert updated == {
        **patient,
        "last_name": "Nuevo",
        "date_of_birth": "2000-07-01",
        "age": 25,
        "address": None,
        "updated_at": updated["updated_at"],
    }
    assert get(sandbox, f"{LIST}/{patient['id']}").json() == updated
    response = sandbox.client.put(f"{LIST}/{patient['id']}", headers=AUTH, json={"patient": {"first_name": ""}})
    assert (response.status_code, response.json()) == (422, {"errors": {"first_name": ["can't be blank"]}})
    assert sandbox.client.put(f"{LIST}/999999", headers=AUTH, json={"patient": {"first_name": "X"}}).status_code == 404


def test_staged_patients_and_readings(sandbox: SandboxHandle) -> None:
    everyone = all_patients(sandbox)
    staged = stage_patient(sandbox, last_name=None, date_of_birth="1990-13-45", gender="X")
    assert staged == {
        "first_name": "Staged",
        "last_name": None,
        "date_of_birth": "1990-13-45",
        "gender": "X",
        "id": staged["id"],
    }
    assert staged["id"] > everyone[-1]["id"] and all_patients(sandbox)[-1] == staged
    assert (
        sandbox.client.patch(f"/_sandbox/gauges/patients/{staged['id']}", json={"active": "maybe"}).json()["active"]
        == "maybe"
    )

    total = sum(len(readings_of(sandbox, p["id"])) for p in everyone)
    reading = stage_reading(sandbox, staged["id"], "2026-01-01T10:00:00.000Z", value=99, notes="")
    assert reading["id"] == total + 1  # the next global id
    assert readings_of(sandbox, staged["id"]) == [reading]
    explicit = stage_reading(sandbox, staged["id"], "not a time", id=5000)
    assert readings_of(sandbox, staged["id"]) == [reading, explicit]  # not a timestamp: last
    assert stage_reading(sandbox, staged["id"], "2026-01-02T00:00:00.000Z")["id"] == 5001

    # A generated reading moved to another patient by a PATCH, then deleted.
    owner = next(p["id"] for p in everyone if readings_of(sandbox, p["id"]))
    generated = readings_of(sandbox, owner)[0]
    moved = sandbox.client.patch(f"/_sandbox/gauges/gauges/{generated['id']}", json={"patient_id": staged["id"]})
    assert moved.json() == {**generated, "patient_id": staged["id"]}
    assert generated["id"] not in {r["id"] for r in readings_of(sandbox, owner)}
    assert moved.json() in readings_of(sandbox, staged["id"])
    assert sandbox.client.delete(f"/_sandbox/gauges/gauges/{generated['id']}").status_code == 200
    assert generated["id"] not in {r["id"] for r in readings_of(sandbox, staged["id"])}
    assert sandbox.client.delete(f"/_sandbox/gauges/gauges/{generated['id']}").status_code == 404
    assert sandbox.client.patch("/_sandbox/gauges/gauges/999999", json={}).status_code == 404

    assert sandbox.client.delete(f"/_sandbox/gauges/patients/{staged['id']}").status_code == 200
    assert get(sandbox, f"{LIST}/{staged['id']}/gauges").status_code == 404
    assert all_patients(sandbox) == everyone


def test_reset_regenerates_the_same_data_for_the_same_seed(sandbox: SandboxHandle) -> None:
    first = all_patients(sandbox)
    readings = [readings_of(sandbox, p["id"]) for p in first[:30]]
    sandbox.client.put(f"{LIST}/{first[0]['id']}", headers=AUTH, json={"patient": {"first_name": "Cambio"}})
    sandbox.switches("gauges", list_shape="data", forbidden=[first[1]["id"]])
    sandbox.reset(patients=PATIENTS, medics=MEDICS, seed=SEED)
    # Asked for in another order this time: readings do not depend on it.
    assert [readings_of(sandbox, p["id"]) for p in reversed(first[:30])] == readings[::-1]
    assert all_patients(sandbox) == first
    sandbox.reset(patients=30, medics=MEDICS, seed=SEED + 1)
    assert all_patients(sandbox) != first[:30]


def test_faults_fire_on_one_patients_gauges(sandbox: SandboxHandle) -> None:
    patient_id = all_patients(sandbox)[2]["id"]
    sandbox.faults({"path": f"{LIST}/{patient_id}/gauges", "status": 429, "retry_after": 2, "times": 1})
    assert get(sandbox, f"{LIST}/{patient_id}").status_code == 200  # the patient itself: not matched
    response = get(sandbox, f"{LIST}/{patient_id}/gauges")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "2")
    assert get(sandbox, f"{LIST}/{patient_id}/gauges").status_code == 200
    (rule,) = sandbox.fault_counts()
    assert (rule["seen"], rule["fired"]) == (1, 1)
    assert sandbox.stats()["paths"]["/gauges/v1/patients/{id}/gauges"] == 2
