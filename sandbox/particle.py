"""The Particle Health Patients API, as its document shows it.

Mounted under `/particle`, so a source's `base_url` is `http://HOST:PORT/particle`:

    GET    /api/v1/patients               {"continuation_token": ..., "patients": [patient_id, ...]}: 200 ids a
                                          page; pass the token back as the query parameter
                                          `continuation_token` for the next page. The last page's token is
                                          null (see the `last_token` switch); a token that does not decode ->
                                          400 {"error": "invalid continuation token"}
    GET    /api/v1/patients/{patient_id}  one patient's demographics
    POST   /api/v1/patients               create, or replace the demographics of an existing patient_id -> 200
                                          with the record; 400 {"error": "<field>: required"}
    DELETE /api/v1/patients/{patient_id}  -> 200 "delete successful"

Every endpoint wants `Authorization: <token>`, the bare token, and answers 401 `{"error": "invalid token"}`
otherwise; an unknown patient is 404 `{"error": "patient not found"}`. A field that a record does not know
(a missing SSN, email or telephone) is absent from it.

Continuation tokens are opaque: URL-safe base64 of a tag of the dataset and the position of the next page, so
a token from before a reset to other data is refused rather than misread. patient_ids are "pt-" and 16 hex
digits. People live in US cities here: two-letter states, ZIP codes and ten-digit national phone numbers.

The control routes, mounted under `/_sandbox/particle`:

    GET/POST     /switches                {"page_size": int >= 1 (200), "token_param": str
                                           ("continuation_token"), "last_token": "null"|"empty"|"absent",
                                           "token": str}
    POST         /patients                stage a raw record as it is (a patient_id is added when absent) -> 201
    PATCH/DELETE /patients/{patient_id}   merge raw fields into a record / remove it
"""

from __future__ import annotations

import base64
import hashlib
import random
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from sandbox import tokens, usa
from sandbox.people import Person
from sandbox.routing import (
    TOKEN,
    Switch,
    both_slashes,
    is_page_size,
    json_bytes,
    read_json,
    staging_routes,
    switches_route,
    token_guard,
)
from sandbox.store import Deferred, Record, Table, encode

DEFAULT_TOKEN = tokens.PARTICLE
DEFAULT_PAGE_SIZE = 200  # "Only populated if there are over 200 records returned"
DEFAULT_TOKEN_PARAM = "continuation_token"
LAST_TOKENS = ("null", "empty", "absent")

PATIENT_FIELDS = (
    "given_name",
    "family_name",
    "date_of_birth",
    "gender",
    "postal_code",
    "patient_id",
    "ssn",
    "email",
    "telephone",
    "address_lines",
    "address_city",
    "address_state",
)
REQUIRED = (
    "given_name",
    "family_name",
    "date_of_birth",
    "gender",
    "postal_code",
    "patient_id",
    "address_city",
    "address_state",
)
_NOT_FOUND = {"error": "patient not found"}


@dataclass
class ParticleState:
    token: str = DEFAULT_TOKEN
    page_size: int = DEFAULT_PAGE_SIZE
    token_param: str = DEFAULT_TOKEN_PARAM
    last_token: str = "null"
    tag: str = ""  # of the dataset, in every continuation token
    rng: random.Random = field(default_factory=random.Random)  # patient_ids of staged records
    _patients: Deferred[Table] = field(default_factory=lambda: Deferred(lambda: Table(keys=("patient_id",))))

    @property
    def patients(self) -> Table:
        return self._patients.get()

    def load(self, people: Sequence[Person], seed: int) -> None:
        """Replace the data with these people (rendered on first use), and every switch with its default."""
        self._patients = Deferred(lambda: Table(patient_records(people, seed), keys=("patient_id",)))
        # The same seed and size give the same data, and so the same tag: a token stays good across such a reset.
        self.tag = hashlib.blake2b(f"particle:{seed}:{len(people)}".encode(), digest_size=6).hexdigest()
        self.rng = random.Random(f"particle-staged:{seed}")
        self.token = DEFAULT_TOKEN
        self.page_size = DEFAULT_PAGE_SIZE
        self.token_param = DEFAULT_TOKEN_PARAM
        self.last_token = "null"

    def new_key(self) -> str:
        while True:
            key = _patient_id(self.rng)
            if self.patients.find("patient_id", key) is None:
                return key

    def continuation(self, position: int) -> str:
        return base64.urlsafe_b64encode(f"{self.tag}:{position}".encode()).rstrip(b"=").decode()

    def position(self, token: str) -> int | None:
        """Where the page that `token` asks for starts; None when it is not a token of this dataset."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return None
        tag, _, position = raw.partition(":")
        return int(position) if tag == self.tag and position.isdigit() else None


def patient_records(people: Sequence[Person], seed: int) -> list[Record]:
    """Particle's view of `people`: MALE/FEMALE, US addresses and phones, accents often dropped, the maternal
    surname often left out or hyphenated, some without SSN, email or telephone."""
    rng = random.Random(f"particle-patients:{seed}")
    r = rng.random
    states, n_states = usa.STATES, len(usa.STATES)
    streets, n_streets = usa.STREETS, len(usa.STREETS)
    phone_digits = usa.phone_digits
    records: list[Record] = []
    append = records.append
    taken: set[str] = set()
    for p in people:
        patient_id = _patient_id(rng)
        while patient_id in taken:
            patient_id = _patient_id(rng)
        taken.add(patient_id)
        sex = p.sex
        gender = "MALE" if sex == "male" else "FEMALE" if sex == "female" else "MALE" if r() < 0.5 else "FEMALE"
        given = p.given_names
        if r() < 0.3:  # a US form has one first name; the second goes unrecorded
            given = given.partition(" ")[0]
        x = r()
        family = p.surname1 if x < 0.45 else f"{p.surname1}-{p.surname2}" if x < 0.6 else f"{p.surname1} {p.surname2}"
        if r() < 0.4:
            given, family = _ascii(given), _ascii(family)
        state = states[int(r() * n_states)]
        city, area = state.cities[int(r() * len(state.cities))]
        low, high = state.zip3
        street = f"{1 + int(r() * 9899)} {streets[int(r() * n_streets)]}"
        record: Record = {
            "given_name": given,
            "family_name": family,
            "date_of_birth": p.birth_date,
            "gender": gender,
            "postal_code": f"{low + int(r() * (high - low + 1)):03d}{int(r() * 100):02d}",
            "patient_id": patient_id,
        }
        if r() >= 0.15:
            record["ssn"] = _ssn(r)
        if r() >= 0.08:
            record["email"] = p.email
        if r() >= 0.1:
            record["telephone"] = "-".join(phone_digits(r, area))
        record["address_lines"] = [street] if r() < 0.8 else [street, f"Apt {1 + int(r() * 40)}"]
        record["address_city"] = city
        record["address_state"] = state.code
        append(record)
    return records


def _patient_id(rng: random.Random) -> str:
    return f"pt-{rng.getrandbits(64):016x}"


def _ssn(r: Callable[[], float]) -> str:
    # Synthetic, but shaped as the SSA issues them: no area 000, 666 or 9xx, no group 00, no serial 0000.
    area = 1 + int(r() * 899)
    if area == 666:
        area = 667
    return f"{area:03d}-{1 + int(r() * 99):02d}-{1 + int(r() * 9999):04d}"


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


# --- the API -----------------------------------------------------------------------------------------


def api_routes(state: ParticleState) -> list[BaseRoute]:
    """Routes of the vendor API, to mount under `/particle`."""

    async def patients(request: Request) -> Response:
        if request.method == "POST":
            return await _create_or_update(request, state)
        table = state.patients
        token = request.query_params.get(state.token_param, "")
        start = 0
        if token:
            position = state.position(token)
            if position is None:
                return JSONResponse({"error": "invalid continuation token"}, status_code=400)
            start = position
        stop = min(start + state.page_size, len(table))
        body: dict[str, Any] = {"continuation_token": state.continuation(stop) if stop < len(table) else None}
        if body["continuation_token"] is None:
            if state.last_token == "empty":
                body["continuation_token"] = ""
            elif state.last_token == "absent":
                del body["continuation_token"]
        body["patients"] = [table.record_at(i).get("patient_id") for i in range(start, stop)]
        return json_bytes(encode(body))

    async def patient(request: Request) -> Response:
        pos = state.patients.find("patient_id", request.path_params["patient_id"])
        if pos is None:
            return JSONResponse(_NOT_FOUND, status_code=404)
        if request.method == "DELETE":
            state.patients.remove(pos)
            return json_bytes(encode("delete successful"))
        return json_bytes(state.patients.json_at(pos))

    authed = token_guard("authorization", "", lambda: state.token, {"error": "invalid token"})

    return [
        *both_slashes("/api/v1/patients", authed(patients), ["GET", "POST"]),
        *both_slashes("/api/v1/patients/{patient_id}", authed(patient), ["GET", "DELETE"]),
    ]


async def _create_or_update(request: Request, state: ParticleState) -> Response:
    try:
        body = await read_json(request)
    except ValueError:
        return JSONResponse({"error": "invalid request body"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "invalid request body"}, status_code=400)
    for name in REQUIRED:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            return JSONResponse({"error": f"{name}: required"}, status_code=400)
    lines = body.get("address_lines")
    if lines is not None and (not isinstance(lines, list) or not all(isinstance(line, str) for line in lines)):
        return JSONResponse({"error": "address_lines: must be a list of strings"}, status_code=400)
    # The record is the documented fields that were given, nothing else (e.g. not "purpose_of_use").
    record = {f: body[f] for f in PATIENT_FIELDS if body.get(f) is not None}
    pos = state.patients.find("patient_id", record["patient_id"])
    if pos is None:
        state.patients.append(record)
    else:  # the new demographics replace the old ones whole
        state.patients.replace(pos, record)
    return json_bytes(encode(record))


# --- control routes ----------------------------------------------------------------------------------


def control_routes(state: ParticleState) -> list[BaseRoute]:
    """Routes to mount under `/_sandbox/particle`: switches, and staging of raw records."""

    switches = switches_route(
        state,
        [
            Switch("page_size", is_page_size, "must be an integer >= 1"),
            Switch("token_param", lambda name: isinstance(name, str) and bool(name), "must be a query parameter name"),
            Switch("last_token", lambda value: value in LAST_TOKENS, f"must be one of {list(LAST_TOKENS)}"),
            TOKEN,
        ],
    )

    return [
        switches,
        *staging_routes("/patients", lambda: state.patients, "patient_id", state.new_key),
    ]
