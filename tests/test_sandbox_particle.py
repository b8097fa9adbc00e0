"""The Particle API in the sandbox over real HTTP: continuation tokens, demographics as documented, switches."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import httpx
import phonenumbers
import pytest

from sandbox.particle import DEFAULT_TOKEN, PATIENT_FIELDS, REQUIRED
from sandbox.server import SandboxHandle
from sandbox.usa import STATES

PATIENTS, MEDICS, SEED = 230, 40, 7  # what the `sandbox` fixture resets to
AUTH = {"Authorization": DEFAULT_TOKEN}
LIST = "/particle/api/v1/patients"
HENRICK = {  # the document's example
    "given_name": "Henrick",
    "family_name": "Testingson",
    "date_of_birth": "1957-03-23",
    "gender": "MALE",
    "postal_code": "12345",
    "patient_id": "examplepatientid1",
    "ssn": "123-45-6789",
    "email": "henrick@example.com",
    "telephone": "123-456-7890",
    "address_lines": ["123 Mulberry Court"],
    "address_city": "Roxbury",
    "address_state": "MA",
}


def get(sandbox: SandboxHandle, path: str, **params: Any) -> httpx.Response:
    return sandbox.client.get(path, params=params, headers=AUTH)


def walk(sandbox: SandboxHandle, param: str = "continuation_token") -> list[dict[str, Any]]:
    """Every page of the id list, following the tokens."""
    pages = [get(sandbox, LIST).json()]
    while token := pages[-1].get("continuation_token"):
        response = get(sandbox, LIST, **{param: token})
        assert response.status_code == 200, response.text
        pages.append(response.json())
        assert len(pages) < 1000, "the tokens never end"
    return pages


def all_ids(sandbox: SandboxHandle) -> list[str]:
    return [i for page in walk(sandbox) for i in page["patients"]]


@pytest.mark.parametrize(
    "method, path", [("GET", LIST), ("GET", f"{LIST}/pt-x"), ("DELETE", f"{LIST}/pt-x"), ("POST", LIST)]
)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "wrong"}, {"Authorization": f"Bearer {DEFAULT_TOKEN}"}, {"X-User-Token": DEFAULT_TOKEN}],
)
def test_every_endpoint_wants_the_bare_token(
    sandbox: SandboxHandle, method: str, path: str, headers: dict[str, str]
) -> None:
    response = sandbox.client.request(method, path, headers=headers, json=HENRICK)
    assert (response.status_code, response.json()) == (401, {"error": "invalid token"})
    assert sandbox.client.request(method, path, headers=AUTH, json=HENRICK).status_code != 401


def test_the_token_can_be_switched(sandbox: SandboxHandle) -> None:
    sandbox.switches("particle", token="rotated")
    assert get(sandbox, LIST).status_code == 401
    assert sandbox.client.get(LIST, headers={"Authorization": "rotated"}).status_code == 200


def test_continuation_tokens_walk_every_id_exactly_once(sandbox: SandboxHandle) -> None:
    sandbox.reset(patients=450, medics=MEDICS, seed=SEED)
    pages = walk(sandbox)
    assert [len(p["patients"]) for p in pages] == [200, 200, 50]
    assert all(list(p) == ["continuation_token", "patients"] for p in pages)
    tokens = [p["continuation_token"] for p in pages]
    assert tokens[2] is None and len(set(tokens[:2])) == 2
    assert all(isinstance(t, str) and re.fullmatch(r"[A-Za-z0-9_-]+", t) for t in tokens[:2])  # opaque, URL-safe
    ids = [i for p in pages for i in p["patients"]]
    assert len(ids) == len(set(ids)) == 450
    assert all(re.fullmatch(r"pt-[0-9a-f]{16}", i) for i in ids)
    assert get(sandbox, LIST, continuation_token=tokens[0]).json() == pages[1]  # a token can be replayed


def test_few_patients_fit_one_page_without_a_token(sandbox: SandboxHandle) -> None:
    sandbox.reset(patients=200, medics=MEDICS, seed=SEED)
    (page,) = walk(sandbox)
    assert page["continuation_token"] is None and len(page["patients"]) == 200


@pytest.mark.parametrize("page_size", [1, 7, 229, 230])
def test_the_page_size_switch(sandbox: SandboxHandle, page_size: int) -> None:
    everyone = all_ids(sandbox)
    sandbox.switches("particle", page_size=page_size)
    pages = walk(sandbox)
    assert len(pages) == -(-PATIENTS // page_size)
    assert [i for p in pages for i in p["patients"]] == everyone
    assert all(len(p["patients"]) == page_size for p in pages[:-1])


@pytest.mark.parametrize(
    ("last_token", "expected"),
    [("null", {"continuation_token": None}), ("empty", {"continuation_token": ""}), ("absent", {})],
)
def test_the_last_token_switch(sandbox: SandboxHandle, last_token: str, expected: dict[str, Any]) -> None:
    sandbox.switches("particle", page_size=100, last_token=last_token)
    pages = walk(sandbox)
    assert len(pages) == 3 and all(p["continuation_token"] for p in pages[:2])
    assert {k: v for k, v in pages[2].items() if k != "patients"} == expected
    assert len(pages[2]["patients"]) == 30


def test_the_token_param_switch(sandbox: SandboxHandle) -> None:
    sandbox.switches("particle", page_size=100, token_param="cursor")
    first = get(sandbox, LIST).json()
    assert get(sandbox, LIST, continuation_token=first["continuation_token"]).json() == first  # not read: page 1 again
    pages = walk(sandbox, param="cursor")
    assert [len(p["patients"]) for p in pages] == [100, 100, 30]
    assert sandbox.post("/_sandbox/particle/switches", {"token_param": ""}).status_code == 400
    assert sandbox.post("/_sandbox/particle/switches", {"last_token": "none"}).status_code == 400
    assert sandbox.post("/_sandbox/particle/switches", {"page_size": 0}).status_code == 400


def test_a_token_that_does_not_decode_is_400(sandbox: SandboxHandle) -> None:
    sandbox.switches("particle", page_size=100)
    token = get(sandbox, LIST).json()["continuation_token"]
    other_tag = ("B" if token[0] == "A" else "A") + token[1:]
    for bad in ("garbage", "!!!", other_tag, token + "AAAA", "MTIzOjQ1"):
        response = get(sandbox, LIST, continuation_token=bad)
        assert (response.status_code, response.json()) == (400, {"error": "invalid continuation token"}), bad

    sandbox.reset(patients=PATIENTS, medics=MEDICS, seed=SEED)  # the same data: its tokens still hold
    sandbox.switches("particle", page_size=100)
    assert get(sandbox, LIST, continuation_token=token).status_code == 200
    sandbox.reset(patients=PATIENTS, medics=MEDICS, seed=SEED + 1)  # other data: refused, not misread
    assert get(sandbox, LIST, continuation_token=token).status_code == 400


def test_patients_have_the_documented_fields(sandbox: SandboxHandle) -> None:
    ids = all_ids(sandbox)
    patients = [get(sandbox, f"{LIST}/{i}").json() for i in ids]
    us_states = {s.code for s in STATES}
    for patient_id, p in zip(ids, patients, strict=True):
        assert p["patient_id"] == patient_id
        assert all(p[f] and isinstance(p[f], str) for f in REQUIRED)
        assert [f for f in PATIENT_FIELDS if f in p] == list(p)  # documented fields only, in the document's order
        assert p["gender"] in ("MALE", "FEMALE") and p["address_state"] in us_states
        assert re.fullmatch(r"\d{5}", p["postal_code"]) and re.fullmatch(r"\d{4}-\d\d-\d\d", p["date_of_birth"])
        assert isinstance(p["address_lines"], list) and 1 <= len(p["address_lines"]) <= 2
        if "ssn" in p:
            area, group, serial = p["ssn"].split("-")
            assert (len(area), len(group), len(serial)) == (3, 2, 4)
            assert area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"
        if "telephone" in p:
            assert re.fullmatch(r"\d{3}-\d{3}-\d{4}", p["telephone"]), p["telephone"]
            assert phonenumbers.is_valid_number(phonenumbers.parse(p["telephone"], "US")), p["telephone"]
    for optional in ("ssn", "email", "telephone"):  # some records lack each of them
        assert 0 < sum(optional in p for p in patients) < len(patients)
    assert {p["gender"] for p in patients} == {"MALE", "FEMALE"}

    # The same people as Prescrypto's, in the same order, rendered the Particle way.
    prescrypto = sandbox.client.get(
        "/prescrypto/api/v2/patient/", headers={"Authorization": "Token sandbox-prescrypto"}
    ).json()
    for rx, p in zip(prescrypto, patients, strict=True):
        assert p["date_of_birth"] == rx["date_of_birth"]
        assert _folded(p["given_name"].split()[0]) == _folded(rx["name"].split()[0])


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def test_an_unknown_patient_is_404(sandbox: SandboxHandle) -> None:
    for response in (get(sandbox, f"{LIST}/pt-0000"), sandbox.client.delete(f"{LIST}/pt-0000", headers=AUTH)):
        assert (response.status_code, response.json()) == (404, {"error": "patient not found"})


@pytest.mark.parametrize("missing", REQUIRED)
def test_create_needs_the_required_fields(sandbox: SandboxHandle, missing: str) -> None:
    for body in ({k: v for k, v in HENRICK.items() if k != missing}, {**HENRICK, missing: ""}):
        response = sandbox.client.post(LIST, headers=AUTH, json=body)
        assert (response.status_code, response.json()) == (400, {"error": f"{missing}: required"})
    assert get(sandbox, f"{LIST}/{HENRICK['patient_id']}").status_code == 404


def test_create_then_update_then_delete(sandbox: SandboxHandle) -> None:
    before = all_ids(sandbox)
    response = sandbox.client.post(LIST, headers=AUTH, json={**HENRICK, "purpose_of_use": "TREATMENT"})
    assert (response.status_code, response.json()) == (200, HENRICK)
    assert get(sandbox, f"{LIST}/examplepatientid1").json() == HENRICK
    assert all_ids(sandbox) == [*before, "examplepatientid1"]

    update = {k: v for k, v in HENRICK.items() if k != "ssn"} | {"address_city": "Boston"}
    response = sandbox.client.post(f"{LIST}/", headers=AUTH, json=update)
    assert (response.status_code, response.json()) == (200, update)  # the demographics are replaced whole
    assert get(sandbox, f"{LIST}/examplepatientid1/").json() == update
    assert all_ids(sandbox) == [*before, "examplepatientid1"]

    response = sandbox.client.delete(f"{LIST}/examplepatientid1", headers=AUTH)
    assert (response.status_code, response.json()) == (200, "delete successful")
    assert get(sandbox, f"{LIST}/examplepatientid1").status_code == 404
    removed = before[17]
    assert sandbox.client.delete(f"{LIST}/{removed}", headers=AUTH).status_code == 200
    assert all_ids(sandbox) == [i for i in before if i != removed]


def test_staged_raw_records_are_served_as_they_are(sandbox: SandboxHandle) -> None:
    raw = {"patient_id": "pt-raw-1", "given_name": None, "gender": "UNKNOWN", "ssn": "000-00-0000"}
    response = sandbox.post("/_sandbox/particle/patients", raw)
    assert (response.status_code, response.json()) == (201, raw)
    assert all_ids(sandbox)[-1] == "pt-raw-1" and get(sandbox, f"{LIST}/pt-raw-1").json() == raw

    keyless = sandbox.post("/_sandbox/particle/patients", {"given_name": "Sin Id"}).json()
    assert (
        re.fullmatch(r"pt-[0-9a-f]{16}", keyless["patient_id"]) and keyless["patient_id"] not in all_ids(sandbox)[:-2]
    )

    patched = sandbox.client.patch("/_sandbox/particle/patients/pt-raw-1", json={"address_lines": "not a list"})
    assert patched.json() == {**raw, "address_lines": "not a list"}
    assert get(sandbox, f"{LIST}/pt-raw-1").json()["address_lines"] == "not a list"
    assert sandbox.client.delete("/_sandbox/particle/patients/pt-raw-1").status_code == 200
    assert sandbox.client.delete("/_sandbox/particle/patients/pt-raw-1").status_code == 404
    assert all_ids(sandbox)[-1] == keyless["patient_id"] and len(all_ids(sandbox)) == PATIENTS + 1


def test_reset_regenerates_the_same_data_for_the_same_seed(sandbox: SandboxHandle) -> None:
    ids = all_ids(sandbox)
    sample = [get(sandbox, f"{LIST}/{i}").json() for i in ids[::23]]
    sandbox.client.delete(f"{LIST}/{ids[0]}", headers=AUTH)
    sandbox.switches("particle", page_size=3, last_token="absent")
    sandbox.reset(patients=PATIENTS, medics=MEDICS, seed=SEED)
    pages = walk(sandbox)  # back to 200 a page, with a null last token
    assert [len(p["patients"]) for p in pages] == [200, 30] and pages[-1]["continuation_token"] is None
    assert all_ids(sandbox) == ids and [get(sandbox, f"{LIST}/{i}").json() for i in ids[::23]] == sample
    sandbox.reset(patients=PATIENTS, medics=MEDICS, seed=SEED + 1)
    assert set(all_ids(sandbox)).isdisjoint(ids)


def test_faults_fire_on_the_detail_path_only(sandbox: SandboxHandle) -> None:
    patient_id = all_ids(sandbox)[0]
    sandbox.faults({"path": f"{LIST}/", "status": 500, "times": 2})
    assert get(sandbox, LIST).status_code == 200  # the list path lacks the slash: not matched
    assert [get(sandbox, f"{LIST}/{patient_id}").status_code for _ in range(3)] == [500, 500, 200]
    (rule,) = sandbox.fault_counts()
    assert (rule["fired"], rule["spent"]) == (2, True)
