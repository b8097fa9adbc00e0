"""The sandbox over real HTTP: the Prescrypto API as documented, fault injection, control routes, data."""

from __future__ import annotations

import base64
import gzip
import time
from collections.abc import Iterator
from typing import Any

import httpx
import phonenumbers
import pytest
from stdnum.mx import curp

from sandbox.people import generate_clinicians, generate_people
from sandbox.prescrypto import DEFAULT_TOKEN, MEDIC_FIELDS, PATIENT_FIELDS, medic_records, patient_records
from sandbox.server import SandboxHandle, running_sandbox

PATIENTS, MEDICS, SEED = 250, 130, 7
AUTH = {"Authorization": f"Token {DEFAULT_TOKEN}"}
PATIENT_LIST = "/prescrypto/api/v2/patient/"
MEDIC_LIST = "/prescrypto/api/v2/medics/"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxHandle]:
    with running_sandbox(patients=PATIENTS, medics=MEDICS, seed=SEED) as handle:
        yield handle


@pytest.fixture
def sandbox(server: SandboxHandle) -> SandboxHandle:
    server.reset(patients=PATIENTS, medics=MEDICS, seed=SEED)
    return server


def get(sandbox: SandboxHandle, path: str, **params: Any) -> httpx.Response:
    return sandbox.client.get(path, params=params, headers=AUTH)


def all_patients(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    response = get(sandbox, PATIENT_LIST)
    assert response.status_code == 200
    return response.json()


# --- the vendor API ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [PATIENT_LIST, MEDIC_LIST, f"{MEDIC_LIST}1/", "/prescrypto/api/v2/patient/x"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Token wrong"}, {"Authorization": DEFAULT_TOKEN}])
def test_every_endpoint_wants_the_token(sandbox: SandboxHandle, path: str, headers: dict[str, str]) -> None:
    response = sandbox.client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid Token"}


def test_the_token_can_be_switched(sandbox: SandboxHandle) -> None:
    sandbox.post("/_sandbox/prescrypto/switches", {"token": "rotated"})
    assert get(sandbox, PATIENT_LIST).status_code == 401
    assert sandbox.client.get(PATIENT_LIST, headers={"Authorization": "Token rotated"}).status_code == 200


def test_patients_are_a_bare_list_in_id_order_with_the_documented_fields(sandbox: SandboxHandle) -> None:
    patients = all_patients(sandbox)
    assert len(patients) == PATIENTS
    assert all(list(p) == list(PATIENT_FIELDS) for p in patients)
    ids = [p["id"] for p in patients]
    assert ids == sorted(ids) and len(set(ids)) == PATIENTS and isinstance(ids[0], int)
    assert len({p["uid"] for p in patients}) == PATIENTS


def test_patients_page_with_limit_and_offset(sandbox: SandboxHandle) -> None:
    pages = [get(sandbox, PATIENT_LIST, limit=100, offset=offset).json() for offset in (0, 100, 200, 300)]
    assert [len(page) for page in pages] == [100, 100, 50, 0]
    assert [p for page in pages for p in page] == all_patients(sandbox)
    assert get(sandbox, "/prescrypto/api/v2/patient", limit=3).json() == all_patients(sandbox)[:3]


def test_patients_envelope_switch(sandbox: SandboxHandle) -> None:
    sandbox.post("/_sandbox/prescrypto/switches", {"patients_envelope": True})
    first = get(sandbox, PATIENT_LIST, limit=100).json()
    assert set(first) == {"count", "next", "previous", "results"}
    assert first["count"] == PATIENTS and first["previous"] is None and len(first["results"]) == 100
    assert first["next"] == sandbox.url(f"{PATIENT_LIST}?limit=100&offset=100")

    records, url, pages = [], sandbox.url(f"{PATIENT_LIST}?limit=100"), 0
    while url:
        page = sandbox.client.get(url, headers=AUTH).json()
        records += page["results"]
        url, pages = page["next"], pages + 1
    assert pages == 3 and page["previous"] == sandbox.url(f"{PATIENT_LIST}?limit=100&offset=100")

    sandbox.post("/_sandbox/prescrypto/switches", {"patients_envelope": False})
    assert records == all_patients(sandbox)


def test_medics_envelope_caps_the_limit_at_100(sandbox: SandboxHandle) -> None:
    first = get(sandbox, MEDIC_LIST, limit=500).json()
    assert first["count"] == MEDICS and first["previous"] is None
    assert len(first["results"]) == 100
    assert first["next"] == sandbox.url(f"{MEDIC_LIST}?limit=100&offset=100")

    second = sandbox.client.get(first["next"], headers=AUTH).json()
    assert len(second["results"]) == MEDICS - 100 and second["next"] is None
    assert second["previous"] == sandbox.url(f"{MEDIC_LIST}?limit=100&offset=0")

    medics = first["results"] + second["results"]
    assert all(list(m) == list(MEDIC_FIELDS) for m in medics)
    assert len({m["email"] for m in medics}) == MEDICS
    assert {type(m["female"]) for m in medics} == {bool} and {type(m["is_active"]) for m in medics} == {bool}
    assert {m["hospital"] for m in medics} <= {None, 1, 2, 3, 4, 5}
    assert all(m["cedula_prof"].isdigit() for m in medics)


def test_detail_by_uid_and_by_medic_id(sandbox: SandboxHandle) -> None:
    patient = all_patients(sandbox)[17]
    for suffix in ("", "/"):
        assert get(sandbox, f"{PATIENT_LIST}{patient['uid']}{suffix}").json() == patient
    medic = get(sandbox, MEDIC_LIST, limit=5).json()["results"][3]
    assert get(sandbox, f"{MEDIC_LIST}{medic['id']}/").json() == medic

    for missing in (f"{PATIENT_LIST}no-such-uid", f"{MEDIC_LIST}999999/"):
        response = get(sandbox, missing)
        assert response.status_code == 404
        assert response.json() == {"message": "Not found"}


def test_create_patient(sandbox: SandboxHandle) -> None:
    response = sandbox.client.post(PATIENT_LIST, headers=AUTH, json={"name": "Algun Nombre"})
    assert response.status_code == 400
    assert response.json() == {"date_of_birth": ["This field is required."]}
    assert sandbox.client.post(PATIENT_LIST, headers=AUTH, json={}).json() == {
        "name": ["This field is required."],
        "date_of_birth": ["This field is required."],
    }

    before = all_patients(sandbox)
    response = sandbox.client.post(
        PATIENT_LIST, headers=AUTH, json={"name": "Algun Nombre", "date_of_birth": "1994-06-01"}
    )
    assert response.status_code == 201
    created = response.json()
    assert list(created) == list(PATIENT_FIELDS)
    assert created["gender"] == "M" and created["email"] == "" and created["date_of_birth"] == "1994-06-01"
    assert created["id"] > before[-1]["id"] and created["uid"] not in {p["uid"] for p in before}
    assert all_patients(sandbox) == [*before, created]


def test_patch_patient(sandbox: SandboxHandle) -> None:
    patient = all_patients(sandbox)[0]
    response = sandbox.client.patch(f"{PATIENT_LIST}{patient['id']}/", headers=AUTH, json={"name": "Kosmo Kramer"})
    assert response.status_code == 202
    assert response.json() == {**patient, "name": "Kosmo Kramer"}
    assert all_patients(sandbox)[0]["name"] == "Kosmo Kramer"

    response = sandbox.client.patch(f"{PATIENT_LIST}999999/", headers=AUTH, json={"name": "Nadie"})
    assert (response.status_code, response.json()) == (404, {"message": "Not found"})


# --- faults and control routes -----------------------------------------------------------------------


def test_429_with_retry_after_fires_times_then_passes(sandbox: SandboxHandle) -> None:
    sandbox.faults([{"path": PATIENT_LIST, "status": 429, "times": 2, "retry_after": 3}])
    for _ in range(2):
        response = get(sandbox, PATIENT_LIST, limit=1)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
    assert get(sandbox, PATIENT_LIST, limit=1).status_code == 200
    (rule,) = sandbox.fault_counts()
    assert rule["fired"] == 2 and rule["spent"]
    assert get(sandbox, MEDIC_LIST).status_code == 200  # another path: never matched


def test_after_lets_requests_through_then_drops_the_connection(sandbox: SandboxHandle) -> None:
    sandbox.faults({"path": MEDIC_LIST, "drop": True, "after": 1})
    assert get(sandbox, MEDIC_LIST).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        get(sandbox, MEDIC_LIST)
    assert get(sandbox, MEDIC_LIST).status_code == 200


def test_delay_slows_a_response_down(sandbox: SandboxHandle) -> None:
    sandbox.faults({"path": MEDIC_LIST, "delay": 0.3, "status": 503})
    started = time.monotonic()
    assert get(sandbox, MEDIC_LIST).status_code == 503
    assert time.monotonic() - started >= 0.3


def test_bad_fault_rules_are_refused_and_faults_clear(sandbox: SandboxHandle) -> None:
    assert sandbox.post("/_sandbox/faults", [{"path": "/x", "status": 429, "times": "2"}]).status_code == 400
    assert sandbox.post("/_sandbox/faults", [{"path": "/x"}]).status_code == 400
    sandbox.faults({"path": "/prescrypto", "status": 500, "times": None})
    assert get(sandbox, MEDIC_LIST).status_code == 500
    sandbox.clear_faults()
    assert get(sandbox, MEDIC_LIST).status_code == 200


@pytest.mark.parametrize(
    "rule",
    [
        {"headers": {"Bad Name": "x"}},
        {"headers": {"X-Ok": "line\r\nInjected: 1"}},
        {"headers": ["Location", "/x"]},
        {"trickle": -1},
        {"raw_base64": "not base64!"},
        {"gzip_bomb": 1},
        {"gzip_bomb": True},
        {"endless": "yes"},
        {"exact": 1, "status": 500},
        {"raw": "[]", "body": []},  # one body at most
        {"gzip_bomb": 100, "drop": True},
    ],
)
def test_bad_body_rules_are_refused(sandbox: SandboxHandle, rule: dict[str, Any]) -> None:
    assert sandbox.post("/_sandbox/faults", [{"path": "/x", **rule}]).status_code == 400


def test_raw_bodies_headers_and_numbered_bodies_are_served_exactly(sandbox: SandboxHandle) -> None:
    sandbox.faults(
        [
            {"path": PATIENT_LIST, "raw_base64": base64.b64encode(b"\xff\x00[").decode(), "headers": {"X-A": "1"}},
            {"path": PATIENT_LIST, "status": 302, "headers": {"Location": "/elsewhere"}},
            {"path": MEDIC_LIST, "exact": True, "times": None, "body": {"next": "?page={fired}", "n": [1]}},
        ]
    )
    first = get(sandbox, PATIENT_LIST)
    assert (first.status_code, first.content, first.headers["X-A"]) == (200, b"\xff\x00[", "1")
    redirect = sandbox.client.get(PATIENT_LIST, headers=AUTH, follow_redirects=False)
    assert (redirect.status_code, redirect.headers["Location"]) == (302, "/elsewhere")
    assert [get(sandbox, MEDIC_LIST).json()["next"] for _ in range(2)] == ["?page=1", "?page=2"]
    assert get(sandbox, MEDIC_LIST + "1/").status_code == 200  # "exact": a path under it is not matched


def test_a_gzip_bomb_is_the_size_it_says_and_small_on_the_wire(sandbox: SandboxHandle) -> None:
    size = 5 * (1 << 20) + 7
    sandbox.faults({"path": PATIENT_LIST, "gzip_bomb": size})
    with sandbox.client.stream("GET", PATIENT_LIST, headers=AUTH) as response:
        wire = b"".join(response.iter_raw())
    assert response.headers["Content-Encoding"] == "gzip" and len(wire) < 10_000
    assert gzip.decompress(wire) == b" " * (size - 2) + b"[]"


def test_an_endless_body_keeps_coming_and_a_trickle_comes_a_byte_at_a_time(sandbox: SandboxHandle) -> None:
    sandbox.faults([{"path": PATIENT_LIST, "endless": True}, {"path": MEDIC_LIST, "trickle": 0.01}])
    with sandbox.client.stream("GET", PATIENT_LIST, headers=AUTH) as response:
        received = 0
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > 8 << 20:
                break
    assert received > 8 << 20
    with sandbox.client.stream("GET", MEDIC_LIST, headers=AUTH) as response:
        chunks: list[bytes] = []
        for chunk in response.iter_raw():
            chunks.append(chunk)
            if sum(map(len, chunks)) >= 20:
                break
    assert len(chunks) >= 5  # untrickled, the first chunk would hold the whole page (kilobytes)


def test_staged_raw_records_are_served_as_they_are(sandbox: SandboxHandle) -> None:
    raw = {"name": "Fecha Imposible", "date_of_birth": "1990-13-45", "gender": "X", "curp": "NOT-A-CURP"}
    response = sandbox.post("/_sandbox/prescrypto/patients", raw)
    assert response.status_code == 201
    staged = response.json()
    assert staged == {**raw, "id": staged["id"]}
    assert all_patients(sandbox)[-1] == staged

    sandbox.client.patch(f"/_sandbox/prescrypto/patients/{staged['id']}", json={"name": None})
    assert all_patients(sandbox)[-1]["name"] is None
    sandbox.client.delete(f"/_sandbox/prescrypto/patients/{staged['id']}")
    assert len(all_patients(sandbox)) == PATIENTS

    sandbox.post("/_sandbox/prescrypto/medics", {"id": 5000, "name": "Sin Hospital", "hospital": "siete"})
    assert get(sandbox, f"{MEDIC_LIST}5000/").json()["hospital"] == "siete"


def test_stats_count_requests_per_path(sandbox: SandboxHandle) -> None:
    for offset in (0, 100, 200):
        get(sandbox, PATIENT_LIST, limit=100, offset=offset)
    get(sandbox, f"{MEDIC_LIST}1/")
    stats = sandbox.stats()
    assert stats["paths"] == {"/prescrypto/api/v2/patient": 3, "/prescrypto/api/v2/medics/{id}": 1}
    assert stats["prefixes"] == {"/prescrypto": 4} and stats["total"] == 4


def test_reset_regenerates_the_same_data_for_the_same_seed(sandbox: SandboxHandle) -> None:
    first = all_patients(sandbox)
    sandbox.client.patch(f"{PATIENT_LIST}{first[0]['id']}/", headers=AUTH, json={"name": "Cambio"})
    sandbox.reset(patients=PATIENTS, medics=MEDICS, seed=SEED)
    assert all_patients(sandbox) == first
    sandbox.reset(patients=10, seed=SEED + 1)
    other = all_patients(sandbox)
    assert len(other) == 10 and other != first[:10]


# --- the synthetic people ----------------------------------------------------------------------------


def test_generated_curps_are_valid_and_agree_with_the_record(sandbox: SandboxHandle) -> None:
    patients = all_patients(sandbox)
    with_curp = [p for p in patients if p["curp"]]
    assert 0.5 < len(with_curp) / len(patients) < 0.95
    for p in with_curp:
        assert curp.is_valid(p["curp"]), p["curp"]
        assert curp.get_birth_date(p["curp"]).isoformat() == p["date_of_birth"]
    people = generate_people(5000, seed=3)
    assert all(curp.is_valid(p.curp) for p in people)


def test_generated_patients_look_like_real_records(sandbox: SandboxHandle) -> None:
    patients = all_patients(sandbox)
    assert {p["gender"] for p in patients} == {"M", "F", "O", "H"}
    names = [p["name"].split() for p in patients]
    assert all(len(words) >= 3 for words in names)
    assert any(len(words) >= 4 for words in names)  # two given names, or a particle
    assert any(" de la " in p["name"] or " del " in p["name"] for p in patients)
    assert all("1930-01-01" <= p["date_of_birth"] <= "2020-12-31" for p in patients)
    assert {bool(p[k]) for p in patients for k in ("phone", "email", "external_patient_file", "address")} == {
        True,
        False,
    }
    phones = [p["phone"] for p in patients if p["phone"]]
    assert any(ph.startswith("+52 ") for ph in phones) and any(ph.startswith("(") for ph in phones)
    for ph in phones:
        assert phonenumbers.is_valid_number(phonenumbers.parse(ph, "MX")), ph
    assert all(len(p["zip_code"]) == 5 and p["zip_code"].isdigit() for p in patients if p["zip_code"])
    externals = [p["external_patient_file"] for p in patients if p["external_patient_file"]]
    assert len(set(externals)) == len(externals) and externals[0].startswith("EXP-")


def test_generation_is_deterministic_and_prefix_stable() -> None:
    assert patient_records(generate_people(300, seed=5), 5) == patient_records(generate_people(300, seed=5), 5)
    assert generate_people(100, seed=5) == generate_people(300, seed=5)[:100]
    assert generate_people(50, seed=5) != generate_people(50, seed=6)
    assert medic_records(generate_clinicians(50, 5), 5) == medic_records(generate_clinicians(50, 5), 5)


def test_identity_noise_is_deterministic_and_its_hard_negatives_are_valid_people() -> None:
    from dataclasses import asdict

    from stdnum.mx import curp

    from sandbox.app import people_of
    from sandbox.noise import hard_negatives, noisy
    from sandbox.people import generate_people

    people = generate_people(2000, 5)
    derived = hard_negatives(people, 5)
    assert derived == hard_negatives(people, 5)
    assert {kind for _, kind, _ in derived} == {"twin", "household", "namesake"}
    for i, kind, p in derived:
        curp.validate(p.curp)  # a registered person's CURP, not the original's
        assert p.curp != people[i].curp
        original = asdict(people[i])
        differ = {k for k, v in asdict(p).items() if v != original[k]}
        if kind == "twin":
            assert differ == {"given_names", "email", "curp"}
        elif kind == "household":
            assert {"given_names", "birth_date"} <= differ and "street" not in differ and "surname1" not in differ
        else:
            assert not differ & {"given_names", "surname1", "surname2", "birth_date"} and "street" in differ
    everyone = people_of(2000, 5, noise=True)
    assert len(everyone) == len(people) + len(derived)
    gauges_view, again = noisy(everyone, "gauges", 5), noisy(everyone, "gauges", 5)
    assert gauges_view == again and gauges_view != noisy(everyone, "particle", 5)
    changed = sum(a != b for a, b in zip(gauges_view, everyone, strict=True))
    assert 0.1 * len(everyone) < changed < 0.5 * len(everyone)  # some noise on some people, not on all
