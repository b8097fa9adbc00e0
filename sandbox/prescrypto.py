"""The Prescrypto API (patients and medics, v2), as its vendor documents (000 and 001) show it.

Mounted under `/prescrypto`, so a source's `base_url` is `http://HOST:PORT/prescrypto`:

    GET   /api/v2/patient/?limit=&offset=   a bare list; the DRF envelope when the switch is on
    GET   /api/v2/patient/{uid}             one patient
    POST  /api/v2/patient/                  create: name and date_of_birth required -> 201
    PATCH /api/v2/patient/{id}/             partial update -> 202
    GET   /api/v2/medics/?limit=&offset=    always the envelope; limit at most 100
    GET   /api/v2/medics/{id}/              one medic

Every endpoint wants `Authorization: Token <token>` and answers 401 `{"message": "Invalid Token"}` otherwise.
The control routes, mounted under `/_sandbox/prescrypto`, flip switches (`patients_envelope`, `patients_max_limit`:
a cap on the patients page size that the server applies silently, `token`) and stage raw records (bad ones
included) that no validating endpoint would accept.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from sandbox import tokens
from sandbox.people import Clinician, Person
from sandbox.routing import (
    TOKEN,
    Switch,
    both_slashes,
    drf_object,
    int_param,
    is_page_size,
    json_bytes,
    staging_routes,
    switches_route,
    token_guard,
)
from sandbox.store import Record, Table, encode

DEFAULT_TOKEN = tokens.PRESCRYPTO
MEDICS_MAX_LIMIT = 100
MEDICS_DEFAULT_LIMIT = 15  # the page size in the document's example `next` link

PATIENT_FIELDS = (
    "id",
    "name",
    "email",
    "date_of_birth",
    "external_patient_file",
    "gender",
    "curp",
    "phone",
    "address",
    "state",
    "zip_code",
    "location",
    "uid",
)
MEDIC_FIELDS = (
    "id",
    "name",
    "email",
    "hospital",
    "date_of_birth",
    "cedula_prof",
    "specialty_no",
    "specialty",
    "alma_mater",
    "female",
    "is_active",
    "specialty_verified",
    "campaign",
    "is_admin_membership",
)
_WRITABLE = tuple(f for f in PATIENT_FIELDS if f not in ("id", "uid"))
_CAMPAIGNS = ("CONSULTA2024", "Lanzamiento", "PalabraClaveAsociadaAUnaCampaña")


@dataclass
class PrescryptoState:
    patients: Table = field(default_factory=lambda: Table(keys=("id", "uid")))
    medics: Table = field(default_factory=Table)
    token: str = DEFAULT_TOKEN
    patients_envelope: bool = False
    patients_max_limit: int | None = None  # a server that silently caps the page size below the limit asked
    rng: random.Random = field(default_factory=random.Random)  # uids of created patients

    def load(self, people: Sequence[Person], clinicians: Sequence[Clinician], seed: int) -> None:
        """Replace the data with these people, and every switch with its default."""
        self.patients = Table(patient_records(people, seed), keys=("id", "uid"))
        self.medics = Table(medic_records(clinicians, seed))
        self.token = DEFAULT_TOKEN
        self.patients_envelope = False
        self.patients_max_limit = None
        self.rng = random.Random(f"prescrypto-created:{seed}")


def patient_records(people: Sequence[Person], seed: int) -> list[Record]:
    """Prescrypto's view of `people`: ids with gaps, M/H/F/O genders, mixed phone formats, some blanks."""
    rng = random.Random(f"prescrypto-patients:{seed}")
    r = rng.random
    records: list[Record] = []
    append = records.append
    pid = 0
    for p in people:
        pid += 2 if r() < 0.03 else 1  # deleted patients leave gaps: an id is not a position
        sex = p.sex
        gender = ("H" if r() < 0.25 else "M") if sex == "male" else "F" if sex == "female" else "O"
        no_address = r() < 0.08
        append(
            {
                "id": pid,
                "name": p.full_name,
                "email": "" if r() < 0.12 else p.email,
                "date_of_birth": p.birth_date,
                "external_patient_file": f"EXP-{pid:06d}" if r() < 0.4 else "",
                "gender": gender,
                "curp": p.curp if r() < 0.7 else "",
                "phone": _phone(r(), p.phone_area, p.phone_local),
                "address": "" if no_address else p.street,
                "state": "" if no_address else p.state,
                "zip_code": "" if no_address else p.zip_code,
                "location": "" if no_address else p.city,
                "uid": _uid(rng),
            }
        )
    return records


def medic_records(clinicians: Sequence[Clinician], seed: int) -> list[Record]:
    """Prescrypto medics: unique emails (Prescrypto enforces it), hospitals 1-5 or none, mostly active."""
    rng = random.Random(f"prescrypto-medics:{seed}")
    r = rng.random
    records: list[Record] = []
    emails: set[str] = set()
    mid = 0
    for c in clinicians:
        p = c.person
        mid += 1 + int(r() * 3) if r() < 0.2 else 1
        email = p.email
        while email in emails:
            local, _, domain = email.partition("@")
            email = f"{local}{int(r() * 100)}@{domain}"
        emails.add(email)
        hospital = None if r() < 0.15 else 1 + int(r() * 5)
        has_specialty = r() < 0.4
        records.append(
            {
                "id": mid,
                "name": p.full_name,
                "email": email,
                "hospital": hospital,
                "date_of_birth": p.birth_date,
                "cedula_prof": c.cedula,
                "specialty_no": str(rng.randrange(1_000_000, 100_000_000)) if has_specialty else "",
                "specialty": c.specialty,
                "alma_mater": c.alma_mater,
                "female": p.sex == "female" or (p.sex == "other" and r() < 0.5),
                "is_active": r() < 0.92,
                "specialty_verified": has_specialty and r() < 0.6,
                "campaign": _CAMPAIGNS[int(r() * len(_CAMPAIGNS))] if r() < 0.15 else "",
                "is_admin_membership": None if hospital is None else r() < 0.25,
            }
        )
    return records


def _phone(x: float, area: str, local: str) -> str:
    # People type phones every way; all of these parse with `phonenumbers` (region MX).
    head, tail = local[:-4], local[-4:]
    if x < 0.10:
        return ""
    if x < 0.35:
        return f"+52 {area} {head} {tail}"
    if x < 0.55:
        return f"{area} {head} {tail}"
    if x < 0.70:
        return f"({area}) {head}-{tail}"
    if x < 0.85:
        return f"{area}{head}{tail}"
    if x < 0.93:
        return f"+52{area}{head}{tail}"
    return f"{area}-{head}-{tail}"


def _uid(rng: random.Random) -> str:
    # A version-4 UUID, but from the seeded generator so that the same seed gives the same uids.
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


# --- the API -----------------------------------------------------------------------------------------


def api_routes(state: PrescryptoState) -> list[BaseRoute]:
    """Routes of the vendor API, to mount under `/prescrypto`."""

    async def patients(request: Request) -> Response:
        if request.method == "POST":
            return await _create_patient(request, state)
        limit = int_param(request, "limit", minimum=1)
        if state.patients_max_limit is not None:
            limit = min(limit or state.patients_max_limit, state.patients_max_limit)
        offset = int_param(request, "offset", minimum=0) or 0
        if state.patients_envelope:
            return _envelope(request, state.patients, offset, limit)
        stop = len(state.patients) if limit is None else offset + limit
        return json_bytes(b"[" + b",".join(state.patients.encoded(offset, stop)) + b"]")

    async def patient(request: Request) -> Response:
        key = request.path_params["key"]
        table = state.patients
        if request.method == "GET":  # the document looks patients up by uid, but updates them by id
            pos = table.find("uid", key)
            return _not_found() if pos is None else json_bytes(table.json_at(pos))
        pos = table.find("id", key)
        if pos is None:
            return _not_found()
        body = await drf_object(request)
        if isinstance(body, Response):
            return body
        fields, errors = _validate(body, partial=True)
        if errors:
            return JSONResponse(errors, status_code=400)
        return json_bytes(encode(table.update(pos, fields)), status=202)

    async def medics(request: Request) -> Response:
        limit = min(int_param(request, "limit", minimum=1) or MEDICS_DEFAULT_LIMIT, MEDICS_MAX_LIMIT)
        return _envelope(request, state.medics, int_param(request, "offset", minimum=0) or 0, limit)

    async def medic(request: Request) -> Response:
        pos = state.medics.find("id", request.path_params["key"])
        return _not_found() if pos is None else json_bytes(state.medics.json_at(pos))

    authed = token_guard("authorization", "Token", lambda: state.token, {"message": "Invalid Token"})

    return [
        *both_slashes("/api/v2/patient", authed(patients), ["GET", "POST"]),
        *both_slashes("/api/v2/patient/{key}", authed(patient), ["GET", "PATCH"]),
        *both_slashes("/api/v2/medics", authed(medics), ["GET"]),
        *both_slashes("/api/v2/medics/{key}", authed(medic), ["GET"]),
    ]


async def _create_patient(request: Request, state: PrescryptoState) -> Response:
    body = await drf_object(request)
    if isinstance(body, Response):
        return body
    fields, errors = _validate(body, partial=False)
    if errors:
        return JSONResponse(errors, status_code=400)
    record: Record = {f: "" for f in PATIENT_FIELDS} | fields
    record["gender"] = record["gender"] or "M"  # "if none defined it will default to M"
    record["id"] = state.patients.next_id()
    record["uid"] = _uid(state.rng)
    return json_bytes(encode(state.patients.append(record)), status=201)


def _validate(body: dict[str, Any], partial: bool) -> tuple[Record, dict[str, list[str]]]:
    """The writable fields of `body`, and DRF-style errors per field."""
    fields: Record = {}
    errors: dict[str, list[str]] = {}
    for name in _WRITABLE:
        if name not in body or body[name] is None:
            if not partial and name in ("name", "date_of_birth"):
                errors[name] = ["This field is required."]
            continue
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            errors[name] = ["Not a valid string."]
            continue
        value = str(value).strip()
        if not value and name in ("name", "date_of_birth"):
            errors[name] = ["This field may not be blank."]
        elif name == "date_of_birth" and not _is_date(value):
            errors[name] = ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]
        else:
            fields[name] = value
    return fields, errors


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _envelope(request: Request, table: Table, offset: int, limit: int | None) -> Response:
    """Django REST framework's LimitOffsetPagination body. Without a limit: everything, no links."""
    count = len(table)
    stop = count if limit is None else offset + limit

    def link(at: int) -> bytes:
        return encode(str(request.url.replace(query=f"limit={limit}&offset={at}")))

    following = link(stop) if limit is not None and stop < count else b"null"
    previous = link(max(offset - limit, 0)) if limit is not None and offset > 0 else b"null"
    head = b'{"count":%d,"next":%s,"previous":%s,"results":[' % (count, following, previous)
    return json_bytes(head + b",".join(table.encoded(offset, stop)) + b"]}")


# --- control routes ----------------------------------------------------------------------------------


def control_routes(state: PrescryptoState) -> list[BaseRoute]:
    """Routes to mount under `/_sandbox/prescrypto`: switches, and staging of raw records."""

    switches = switches_route(
        state,
        [
            Switch("patients_envelope", lambda value: True, "", stored=bool),
            Switch(
                "patients_max_limit",
                lambda cap: cap is None or is_page_size(cap),
                "must be an integer of at least 1, or null",
            ),
            TOKEN,
        ],
    )

    # The tables are looked up on each request because a reset replaces them.
    return [
        switches,
        *staging_routes("/patients", lambda: state.patients, "id", lambda: state.patients.next_id()),
        *staging_routes("/medics", lambda: state.medics, "id", lambda: state.medics.next_id()),
    ]


# --- helpers -----------------------------------------------------------------------------------------


def _not_found() -> Response:
    return JSONResponse({"message": "Not found"}, status_code=404)
