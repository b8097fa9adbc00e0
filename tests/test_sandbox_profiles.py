"""The profiles API in the sandbox over real HTTP: the endpoints of its document, its switches and staging."""

from __future__ import annotations

import re
from typing import Any

import httpx
import phonenumbers
import pytest

from sandbox.profiles import DEFAULT_TOKEN, HOSPITALS, PATIENT_FIELDS, PROFILE_FIELDS
from sandbox.server import SandboxHandle

PATIENTS, MEDICS, SEED = 230, 40, 7  # what the `sandbox` fixture resets to
AUTH = {"Authorization": f"Token {DEFAULT_TOKEN}"}
LIST = "/profiles/patients/patients/"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def get(sandbox: SandboxHandle, path: str, **params: Any) -> httpx.Response:
    return sandbox.client.get(path, params=params, headers=AUTH)


def all_patients(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    response = get(sandbox, LIST)
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("path", [LIST, "/profiles/patients/patients", f"{LIST}pat000001/"])
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Token wrong"}, {"Authorization": DEFAULT_TOKEN}, {"X-User-Token": DEFAULT_TOKEN}]
)
def test_every_endpoint_wants_the_token(sandbox: SandboxHandle, path: str, headers: dict[str, str]) -> None:
    response = sandbox.client.get(path, headers=headers)
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid token."})
    assert sandbox.client.get(path, headers=AUTH).status_code == 200


def test_the_token_can_be_switched(sandbox: SandboxHandle) -> None:
    assert sandbox.switches("profiles", token="rotated")["token"] == "rotated"
    assert get(sandbox, LIST).status_code == 401
    assert sandbox.client.get(LIST, headers={"Authorization": "token rotated"}).status_code == 200


def test_the_list_is_a_bare_list_of_every_patient_with_the_documented_fields(sandbox: SandboxHandle) -> None:
    patients = all_patients(sandbox)
    assert [p["unique_id"] for p in patients] == [f"pat{i:06d}" for i in range(1, PATIENTS + 1)]
    assert all(list(p) == list(PATIENT_FIELDS) for p in patients)
    assert all(list(p["patient_profile"]) == list(PROFILE_FIELDS) for p in patients)
    assert [p["patient_profile"]["unique_id"] for p in patients] == [f"prof{i:06d}" for i in range(1, PATIENTS + 1)]
    assert {p["patient_gender"] for p in patients} == {"Male", "Female", "Other"}
    hospitals = {f"hos{i:03d}": name for i, name in enumerate(HOSPITALS, start=1)}
    for p in patients:
        assert p["patient_first_name"] == p["patient_profile"]["first_name"]
        assert p["patient_initials"] == "".join(w[0] for w in p["patient_first_name"].split() if w != w.lower())
        assert len(p["patient_hospital"]) <= 2 and len(p["patient_doctor"]) <= 3
        assert all(hospitals[h["unique_id"]] == h["hospital_name"] for h in p["patient_hospital"])
        assert all(list(d) == ["unique_id", "doctor_first_name"] for d in p["patient_doctor"])
        assert all(re.fullmatch(r"doc00(0[1-9]|[1-3]\d|40)", d["unique_id"]) for d in p["patient_doctor"])
        assert all(re.fullmatch(r"Dra?\. \S.*", d["doctor_first_name"]) for d in p["patient_doctor"])
        assert STAMP.match(p["date_created"]) and STAMP.match(p["last_updated"])
        assert p["date_created"] <= p["last_updated"] <= "2026-06-30T23:59:59Z"
        for coordinate in (p["patient_latitude"], p["patient_longitude"]):
            assert coordinate is None or re.fullmatch(r"-?\d+\.\d{6}", coordinate)
    for links in ("patient_hospital", "patient_doctor"):
        assert {len(p[links]) for p in patients} >= {0, 1, 2}
    assert any(p["patient_latitude"] is None for p in patients)
    assert any(p["patient_address_line_1"] for p in patients)


def test_mobile_numbers_are_international_and_valid(sandbox: SandboxHandle) -> None:
    mobiles = [p["patient_mobile_number"] for p in all_patients(sandbox)]
    present = [m for m in mobiles if m]
    assert 0 < len(mobiles) - len(present) < len(mobiles) // 4
    regions = set()
    for mobile in present:
        number = phonenumbers.parse(mobile, None)  # no default region: only an international number parses
        assert phonenumbers.is_valid_number(number), mobile
        regions.add(phonenumbers.region_code_for_number(number))
    assert regions == {"MX", "US"}


def test_a_person_is_the_same_human_as_in_prescrypto(sandbox: SandboxHandle) -> None:
    prescrypto = sandbox.client.get(
        "/prescrypto/api/v2/patient/", headers={"Authorization": "Token sandbox-prescrypto"}
    ).json()
    for rx, pf in zip(prescrypto, all_patients(sandbox), strict=True):
        assert f"{pf['patient_first_name']} {pf['patient_last_name']}" == rx["name"]
        assert pf["patient_date_of_birth"] == rx["date_of_birth"]


def test_one_patient_by_unique_id_with_or_without_the_slash(sandbox: SandboxHandle) -> None:
    patient = all_patients(sandbox)[41]
    for path in (f"{LIST}{patient['unique_id']}/", f"{LIST}{patient['unique_id']}"):
        assert get(sandbox, path).json() == patient
    response = get(sandbox, f"{LIST}pat999999/")
    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


def test_the_envelope_switch_pages_with_next_links(sandbox: SandboxHandle) -> None:
    everyone = all_patients(sandbox)
    assert sandbox.switches("profiles", envelope=True) == {"envelope": True, "page_size": 50, "token": DEFAULT_TOKEN}
    first = get(sandbox, LIST).json()
    assert list(first) == ["count", "next", "previous", "results"]
    assert (first["count"], first["previous"], len(first["results"])) == (PATIENTS, None, 50)
    assert first["next"] == sandbox.url(f"{LIST}?page=2")

    records, url, pages = [], sandbox.url(LIST), []
    while url:
        page = sandbox.client.get(url, headers=AUTH).json()
        records += page["results"]
        pages.append(page)
        url = page["next"]
    assert records == everyone and [len(p["results"]) for p in pages] == [50, 50, 50, 50, 30]
    assert pages[1]["previous"] == sandbox.url(LIST)  # DRF drops `page` for the first page
    assert pages[4]["previous"] == sandbox.url(f"{LIST}?page=4")
    assert get(sandbox, LIST, page="last").json() == pages[4]
    for bad in ("6", "0", "x"):
        assert (get(sandbox, LIST, page=bad).status_code, get(sandbox, LIST, page=bad).json()) == (
            404,
            {"detail": "Invalid page."},
        )

    sandbox.switches("profiles", page_size=100)
    assert [len(get(sandbox, LIST, page=n).json()["results"]) for n in (1, 2, 3)] == [100, 100, 30]
    assert sandbox.post("/_sandbox/profiles/switches", {"page_size": 0}).status_code == 400
    sandbox.switches("profiles", envelope=False)
    assert get(sandbox, LIST, page=2).json() == everyone  # no envelope: `page` means nothing


def test_create_a_patient(sandbox: SandboxHandle) -> None:
    response = sandbox.client.post(LIST, headers=AUTH, json={"patient_first_name": "Ana"})
    assert (response.status_code, response.json()) == (400, {"patient_last_name": ["This field is required."]})
    response = sandbox.client.post(LIST, headers=AUTH, json={})
    assert response.json() == {
        "patient_first_name": ["This field is required."],
        "patient_last_name": ["This field is required."],
    }
    bad = {"patient_first_name": "Ana", "patient_last_name": "Ruiz", "patient_gender": "F", "hospital_ids": ["hos999"]}
    assert sandbox.client.post(LIST, headers=AUTH, json=bad).json() == {
        "patient_gender": ['"F" is not a valid choice.'],
        "hospital_ids": ["Object with unique_id=hos999 does not exist."],
    }
    no_profile_key = {"patient_first_name": "A", "patient_last_name": "R", "patient_profile": {"email": "a@b.mx"}}
    assert sandbox.client.post(LIST, headers=AUTH, json=no_profile_key).json() == {
        "patient_profile": {"unique_id": ["This field is required."]}
    }

    before = all_patients(sandbox)
    body = {
        "patient_profile": {"unique_id": "prof000003", "email": "nueva@example.com"},
        "patient_first_name": "Ana",
        "patient_last_name": "Ruiz Soto",
        "patient_date_of_birth": "1980-01-01",
        "patient_gender": "Female",
        "hospital_ids": ["hos001", "hos002"],
        "doctor_ids": ["doc0001"],
        "purpose": "ignored",
    }
    response = sandbox.client.post(LIST, headers=AUTH, json=body)
    assert response.status_code == 201
    created = response.json()
    assert list(created) == list(PATIENT_FIELDS)
    assert created["unique_id"] == f"pat{PATIENTS + 1:06d}"
    # An existing profile is associated, and the given details update it.
    assert created["patient_profile"] == {**before[2]["patient_profile"], "email": "nueva@example.com"}
    assert [h["unique_id"] for h in created["patient_hospital"]] == ["hos001", "hos002"]
    assert [d["unique_id"] for d in created["patient_doctor"]] == ["doc0001"]
    assert created["patient_doctor"][0]["doctor_first_name"].startswith("Dr")
    assert created["date_created"] == created["last_updated"] and STAMP.match(created["date_created"])
    assert created["patient_email_address"] == "" and created["patient_latitude"] is None
    assert all_patients(sandbox) == [*before, created]


def test_update_a_patient_with_put(sandbox: SandboxHandle) -> None:
    patients = all_patients(sandbox)
    patient = patients[5]
    doctor = next(d for p in patients for d in p["patient_doctor"] if d not in patient["patient_doctor"])
    change = {
        "patient_mobile_number": "+987654321",
        "patient_race": "African",
        "patient_province": "New Province",
        "hospital_ids": ["hos008"],
        "doctor_ids": [doctor["unique_id"]],
    }
    response = sandbox.client.put(f"{LIST}{patient['unique_id']}/", headers=AUTH, json=change)
    assert response.status_code == 200
    updated = response.json()
    assert updated["last_updated"] > patient["last_updated"] and STAMP.match(updated["last_updated"])
    assert updated == {
        **patient,
        "patient_mobile_number": "+987654321",
        "patient_race": "African",
        "patient_province": "New Province",
        "patient_hospital": [{"unique_id": "hos008", "hospital_name": HOSPITALS[7]}],
        "patient_doctor": [doctor],
        "last_updated": updated["last_updated"],
    }
    assert get(sandbox, f"{LIST}{patient['unique_id']}").json() == updated

    again = sandbox.client.put(f"{LIST}{patient['unique_id']}", headers=AUTH, json={"hospital_ids": []}).json()
    assert again["patient_hospital"] == [] and again["last_updated"] > updated["last_updated"]
    response = sandbox.client.put(f"{LIST}{patient['unique_id']}/", headers=AUTH, json={"patient_last_name": " "})
    assert (response.status_code, response.json()) == (400, {"patient_last_name": ["This field may not be blank."]})
    response = sandbox.client.put(f"{LIST}pat999999/", headers=AUTH, json={"patient_race": "x"})
    assert response.status_code == 404


def test_delete_a_patient(sandbox: SandboxHandle) -> None:
    response = sandbox.client.delete(f"{LIST}pat000010/", headers=AUTH)
    assert (response.status_code, response.content) == (204, b"")
    assert get(sandbox, f"{LIST}pat000010/").status_code == 404
    assert sandbox.client.delete(f"{LIST}pat000010", headers=AUTH).status_code == 404
    remaining = all_patients(sandbox)
    assert len(remaining) == PATIENTS - 1 and "pat000010" not in {p["unique_id"] for p in remaining}


def test_staged_raw_records_are_served_as_they_are(sandbox: SandboxHandle) -> None:
    raw = {"unique_id": "pat-raw", "patient_first_name": None, "patient_date_of_birth": "1990-02-30"}
    response = sandbox.post("/_sandbox/profiles/patients", raw)
    assert (response.status_code, response.json()) == (201, raw)
    assert all_patients(sandbox)[-1] == raw
    assert get(sandbox, f"{LIST}pat-raw/").json() == raw

    keyless = sandbox.post("/_sandbox/profiles/patients", {"patient_gender": "X"}).json()
    assert keyless == {"patient_gender": "X", "unique_id": f"pat{PATIENTS + 1:06d}"}

    patched = sandbox.client.patch("/_sandbox/profiles/patients/pat-raw", json={"patient_profile": "broken"})
    assert patched.json() == {**raw, "patient_profile": "broken"}
    assert get(sandbox, f"{LIST}pat-raw/").json()["patient_profile"] == "broken"
    assert sandbox.client.delete("/_sandbox/profiles/patients/pat-raw").status_code == 200
    assert sandbox.client.delete("/_sandbox/profiles/patients/pat-raw").status_code == 404
    assert [p["unique_id"] for p in all_patients(sandbox)][-2:] == [f"pat{PATIENTS:06d}", keyless["unique_id"]]


def test_reset_regenerates_the_same_patients_for_the_same_seed(sandbox: SandboxHandle) -> None:
    first = all_patients(sandbox)
    sandbox.client.put(f"{LIST}pat000001/", headers=AUTH, json={"patient_race": "Cambio"})
    sandbox.switches("profiles", envelope=True)
    sandbox.reset(patients=PATIENTS, medics=MEDICS, seed=SEED)
    assert all_patients(sandbox) == first  # the switch is back to a bare list, the change gone
    sandbox.reset(patients=20, medics=MEDICS, seed=SEED)
    assert all_patients(sandbox) == first[:20]  # generation is sequential: a smaller set is a prefix
    sandbox.reset(patients=20, medics=MEDICS, seed=SEED + 1)
    assert all_patients(sandbox) != first[:20]


def test_faults_fire_on_profiles_paths(sandbox: SandboxHandle) -> None:
    sandbox.faults({"path": "/profiles/patients/patients/pat000002", "status": 503, "times": 1})
    assert get(sandbox, f"{LIST}pat000001/").status_code == 200
    assert get(sandbox, f"{LIST}pat000002/").status_code == 503
    assert get(sandbox, f"{LIST}pat000002/").status_code == 200
    assert sandbox.stats()["paths"] == {"/profiles/patients/patients/{id}": 3}
