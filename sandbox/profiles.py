"""The profiles API (a Django REST framework patients API keyed by `unique_id`), as its document shows it.

Mounted under `/profiles`, so a source's `base_url` is `http://HOST:PORT/profiles`:

    GET    /patients/patients/               every patient, a bare list; with the `envelope` switch on, DRF's
                                             PageNumberPagination body {count, next, previous, results}, `?page=`
    POST   /patients/patients/               create: patient_first_name and patient_last_name required -> 201
    GET    /patients/patients/{unique_id}/   one patient
    PUT    /patients/patients/{unique_id}/   update the given fields (hospital_ids/doctor_ids replace the
                                             links), bumping last_updated -> 200
    DELETE /patients/patients/{unique_id}/   -> 204, no body

Every path works with and without its trailing slash. Every endpoint wants `Authorization: Token <token>`
and answers 401 `{"detail": "Invalid token."}` otherwise; errors are DRF's: 404 `{"detail": "Not found."}`,
400 `{field: [messages]}`.

Patients are keyed "pat000001", "pat000002", ... (person i of the shared people is "pat{i+1:06d}"), their
profiles "prof000001", ...; each links 0-2 of the hospitals "hos001".."hos008" and 0-3 of the doctors
"doc0001".. (one per shared clinician, so doctor i is Prescrypto's medic i).

The control routes, mounted under `/_sandbox/profiles`:

    GET/POST /switches                   {"envelope": bool, "page_size": int >= 1, "token": str}
    POST     /patients                   stage a raw record as it is (a unique_id is added when absent) -> 201
    PATCH    /patients/{unique_id}       merge raw fields into a record
    DELETE   /patients/{unique_id}       remove a record
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from sandbox import clock, tokens, usa
from sandbox.people import Clinician, Person
from sandbox.routing import (
    TOKEN,
    Switch,
    both_slashes,
    drf_object,
    is_page_size,
    json_bytes,
    staging_routes,
    switches_route,
    token_guard,
)
from sandbox.store import Deferred, Record, Table, encode

DEFAULT_TOKEN = tokens.PROFILES
DEFAULT_PAGE_SIZE = 50

PATIENT_FIELDS = (
    "unique_id",
    "patient_profile",
    "patient_email_address",
    "patient_mobile_number",
    "patient_title",
    "patient_first_name",
    "patient_initials",
    "patient_last_name",
    "patient_date_of_birth",
    "patient_gender",
    "patient_race",
    "patient_physical_address",
    "patient_address_line_1",
    "patient_town",
    "patient_region",
    "patient_province",
    "patient_country",
    "patient_postal_code",
    "patient_latitude",
    "patient_longitude",
    "patient_access_medical_care",
    "patient_hospital",
    "patient_doctor",
    "date_created",
    "last_updated",
)
PROFILE_FIELDS = ("unique_id", "email", "first_name", "last_name")
GENDERS = ("Male", "Female", "Other")
HOSPITALS = (
    "Hospital General de México",
    "Hospital Civil de Guadalajara",
    "Hospital Universitario de Monterrey",
    "Centro Médico ABC",
    "Hospital Ángeles Puebla",
    "Hospital Regional de Alta Especialidad de Oaxaca",
    "Hospital Star Médica Querétaro",
    "Hospital Central de San Luis Potosí",
)
# What the create and update endpoints write: every plain field, as a string (the dates and coordinates may
# also be null).
_TEXT_FIELDS = PATIENT_FIELDS[2:21]
_NULLABLE = frozenset({"patient_date_of_birth", "patient_latitude", "patient_longitude"})
_REQUIRED = ("patient_first_name", "patient_last_name")
_RACES = ("Hispanic", "Hispanic", "Hispanic", "Mestizo", "Indigenous", "Caucasian", "African", "Asian", "")
_CARE = ("Public", "Public", "Private", "")
_CREATED_DAYS = clock.days(dt.date(2019, 1, 1))  # patients registered from 2019 to the sandbox's AS_OF day


@dataclass
class ProfilesState:
    hospitals: dict[str, str] = field(default_factory=dict)  # unique_id -> hospital_name
    doctors: dict[str, str] = field(default_factory=dict)  # unique_id -> doctor_first_name
    token: str = DEFAULT_TOKEN
    envelope: bool = False
    page_size: int = DEFAULT_PAGE_SIZE
    last_number: int = 0  # of the "patNNNNNN" keys handed out: like a database sequence, never reused
    _patients: Deferred[Table] = field(default_factory=lambda: Deferred(lambda: Table(keys=("unique_id",))))

    @property
    def patients(self) -> Table:
        return self._patients.get()

    def load(self, people: Sequence[Person], clinicians: Sequence[Clinician], seed: int) -> None:
        """Replace the data with these people (rendered on first use), and every switch with its default."""
        hospitals = self.hospitals = hospital_directory()
        doctors = self.doctors = doctor_directory(clinicians)
        self._patients = Deferred(lambda: Table(patient_records(people, hospitals, doctors, seed), keys=("unique_id",)))
        self.last_number = len(people)
        self.token = DEFAULT_TOKEN
        self.envelope = False
        self.page_size = DEFAULT_PAGE_SIZE

    def new_key(self) -> str:
        while True:
            self.last_number += 1
            key = f"pat{self.last_number:06d}"
            if self.patients.find("unique_id", key) is None:  # a staged record may have taken it
                return key


def hospital_directory() -> dict[str, str]:
    return {f"hos{i + 1:03d}": name for i, name in enumerate(HOSPITALS)}


def doctor_directory(clinicians: Sequence[Clinician]) -> dict[str, str]:
    """Doctors as the document shows them: "Dr. Smith", the title and the family name ("Dra." for women)."""
    return {
        f"doc{i + 1:04d}": f"{'Dra.' if c.person.sex == 'female' else 'Dr.'} {c.person.surname1}"
        for i, c in enumerate(clinicians)
    }


def patient_records(
    people: Sequence[Person], hospitals: dict[str, str], doctors: dict[str, str], seed: int
) -> list[Record]:
    """The profiles API's view of `people`: Male/Female/Other, international mobiles (a few US, some empty),
    English titles, coordinates as strings, 0-2 hospitals and 0-3 doctors each."""
    rng = random.Random(f"profiles-patients:{seed}")
    r = rng.random
    # The nested objects are shared between records: nothing edits them in place (an update replaces a list).
    hospital_refs = [{"unique_id": k, "hospital_name": v} for k, v in hospitals.items()]
    doctor_refs = [{"unique_id": k, "doctor_first_name": v} for k, v in doctors.items()]
    n_hospitals, n_doctors = len(hospital_refs), len(doctor_refs)
    days, n_days = _CREATED_DAYS, len(_CREATED_DAYS)
    times = clock.times_of_day()
    races, n_races, care, n_care = _RACES, len(_RACES), _CARE, len(_CARE)
    mobile, title = _mobile, _title
    genders = {"male": "Male", "female": "Female", "other": "Other"}
    records: list[Record] = []
    append = records.append
    for number, p in enumerate(people, start=1):
        given, family = p.given_names, f"{p.surname1} {p.surname2}"
        street, _, interior = p.street.partition(" Int. ")
        created = int(r() * n_days)
        created_at = f"{days[created]}T{times[int(r() * 86400)]}Z"
        if r() < 0.4 or created == n_days - 1:  # never edited since it was registered
            updated_at = created_at
        else:
            updated_at = f"{days[created + 1 + int(r() * (n_days - created - 1))]}T{times[int(r() * 86400)]}Z"
        k = r()
        hospital = [] if k < 0.25 or not n_hospitals else [hospital_refs[int(r() * n_hospitals)]]
        if k > 0.75 and n_hospitals > 1:
            second = hospital_refs[int(r() * n_hospitals)]
            if second is not hospital[0]:
                hospital.append(second)
        doctor: list[dict[str, str]] = []
        for _ in range(int(r() * 4) if n_doctors else 0):
            d = doctor_refs[int(r() * n_doctors)]
            if d not in doctor:
                doctor.append(d)
        no_geo = r() < 0.1
        email = p.email
        append(
            {
                "unique_id": f"pat{number:06d}",
                "patient_profile": {
                    "unique_id": f"prof{number:06d}",
                    "email": email,
                    "first_name": given,
                    "last_name": family,
                },
                "patient_email_address": "" if r() < 0.15 else email,
                "patient_mobile_number": mobile(r, p.phone_area, p.phone_local),
                "patient_title": title(r(), p.sex),
                "patient_first_name": given,
                "patient_initials": _initials(given) if " " in given else given[0],
                "patient_last_name": family,
                "patient_date_of_birth": p.birth_date,
                "patient_gender": genders[p.sex],
                "patient_race": races[int(r() * n_races)],
                "patient_physical_address": street,
                "patient_address_line_1": f"Int. {interior}" if interior else "",
                "patient_town": p.city,
                "patient_region": p.state,
                "patient_province": p.state,
                "patient_country": "Mexico",
                "patient_postal_code": p.zip_code,
                # DRF renders a DecimalField as a string; within Mexico's bounding box.
                "patient_latitude": None if no_geo else f"{14.6 + r() * 17.9:.6f}",
                "patient_longitude": None if no_geo else f"{-117.0 + r() * 30.2:.6f}",
                "patient_access_medical_care": care[int(r() * n_care)],
                "patient_hospital": hospital,
                "patient_doctor": doctor,
                "date_created": created_at,
                "last_updated": updated_at,
            }
        )
    return records


def _initials(given: str) -> str:
    # "María del Carmen" -> "MC": particles are not initials.
    return "".join(w[0] for w in given.split() if w[0].isupper())


def _mobile(r: Callable[[], float], area: str, local: str) -> str:
    # Mostly international, as a mobile app stores them; every one parses with `phonenumbers` whatever the
    # default region, and is a valid Mexican (or, for a few people, US) number.
    x = r()
    head, tail = local[:-4], local[-4:]
    if x < 0.08:
        return ""
    if x < 0.50:
        return f"+52 {area} {head} {tail}"
    if x < 0.70:
        return f"+52{area}{local}"
    if x < 0.80:
        return f"+52 ({area}) {head}-{tail}"
    if x < 0.92:
        return f"+52-{area}-{head}-{tail}"
    state = usa.STATES[int(r() * len(usa.STATES))]
    us_area, exchange, line = usa.phone_digits(r, state.cities[int(r() * len(state.cities))][1])
    return f"+1 {us_area} {exchange} {line}"


def _title(x: float, sex: str) -> str:
    if x < 0.12:
        return ""
    if x < 0.17:
        return "Dr."
    if sex == "male":
        return "Mr."
    if sex == "female":
        return "Ms." if x < 0.6 else "Mrs."
    return "Mx."


# --- the API -----------------------------------------------------------------------------------------


def api_routes(state: ProfilesState) -> list[BaseRoute]:
    """Routes of the vendor API, to mount under `/profiles`."""

    async def patients(request: Request) -> Response:
        if request.method == "POST":
            return await _create(request, state)
        table = state.patients
        if not state.envelope:
            return json_bytes(b"[" + b",".join(table.encoded(0, len(table))) + b"]")
        return _page(request, table, state.page_size)

    async def patient(request: Request) -> Response:
        table = state.patients
        pos = table.find("unique_id", request.path_params["unique_id"])
        if pos is None:
            return JSONResponse({"detail": "Not found."}, status_code=404)
        if request.method == "GET":
            return json_bytes(table.json_at(pos))
        if request.method == "DELETE":
            table.remove(pos)
            return Response(status_code=204)
        body = await drf_object(request)
        if isinstance(body, Response):
            return body
        fields, errors = _validate(body, state, partial=True)
        if errors:
            return JSONResponse(errors, status_code=400)
        # Found again: another request may have moved or removed the record while this body arrived.
        pos = state.patients.find("unique_id", request.path_params["unique_id"])
        if pos is None:
            return JSONResponse({"detail": "Not found."}, status_code=404)
        record = state.patients.record_at(pos)
        if "patient_profile" in fields:
            fields["patient_profile"] = {**(record.get("patient_profile") or {}), **fields["patient_profile"]}
        fields["last_updated"] = clock.bumped(record.get("last_updated"), millis=False)
        return json_bytes(encode(state.patients.update(pos, fields)))

    authed = token_guard("authorization", "Token", lambda: state.token, {"detail": "Invalid token."})

    return [
        *both_slashes("/patients/patients", authed(patients), ["GET", "POST"]),
        *both_slashes("/patients/patients/{unique_id}", authed(patient), ["GET", "PUT", "DELETE"]),
    ]


def _page(request: Request, table: Table, page_size: int) -> Response:
    """Django REST framework's PageNumberPagination body; links keep the request's other parameters."""
    count = len(table)
    pages = max(1, -(-count // page_size))  # Django serves an empty first page of an empty list
    raw = request.query_params.get("page", "1")
    try:
        page = pages if raw == "last" else int(raw)
    except ValueError:
        page = 0
    if not 1 <= page <= pages:
        return JSONResponse({"detail": "Invalid page."}, status_code=404)
    start = (page - 1) * page_size
    url = request.url
    following = encode(str(url.include_query_params(page=page + 1))) if page < pages else b"null"
    if page == 1:
        previous = b"null"
    elif page == 2:  # DRF drops the parameter for the first page
        previous = encode(str(url.remove_query_params("page")))
    else:
        previous = encode(str(url.include_query_params(page=page - 1)))
    head = b'{"count":%d,"next":%s,"previous":%s,"results":[' % (count, following, previous)
    return json_bytes(head + b",".join(table.encoded(start, start + page_size)) + b"]}")


async def _create(request: Request, state: ProfilesState) -> Response:
    body = await drf_object(request)
    if isinstance(body, Response):
        return body
    fields, errors = _validate(body, state, partial=False)
    if errors:
        return JSONResponse(errors, status_code=400)
    profile = fields.get("patient_profile")
    if profile is not None:  # an existing profile is associated (and updated), an unknown one created
        existing = next(
            (
                r["patient_profile"]
                for r in state.patients
                if isinstance(r.get("patient_profile"), dict)
                and r["patient_profile"].get("unique_id") == profile["unique_id"]
            ),
            None,
        )
        profile = {f: "" for f in PROFILE_FIELDS} | (existing or {}) | profile
    now = clock.bumped(None, millis=False)
    record: Record = {f: "" for f in PATIENT_FIELDS} | {f: None for f in _NULLABLE} | fields
    record |= {
        "unique_id": state.new_key(),
        "patient_profile": profile,
        "patient_hospital": fields.get("patient_hospital", []),
        "patient_doctor": fields.get("patient_doctor", []),
        "date_created": now,
        "last_updated": now,
    }
    return json_bytes(encode(state.patients.append(record)), status=201)


def _validate(body: dict[str, Any], state: ProfilesState, partial: bool) -> tuple[Record, dict[str, Any]]:
    """The fields to write (hospital_ids and doctor_ids already turned into the nested lists), and DRF-style
    errors per field."""
    fields: Record = {}
    errors: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        if name not in body:
            if not partial and name in _REQUIRED:
                errors[name] = ["This field is required."]
            continue
        value = body[name]
        if value is None:
            if name in _NULLABLE:
                fields[name] = None
            else:
                errors[name] = ["This field may not be null."]
        elif isinstance(value, bool) or not isinstance(value, str | int | float):
            errors[name] = ["Not a valid string."]
        elif name in _REQUIRED and not str(value).strip():
            errors[name] = ["This field may not be blank."]
        elif name == "patient_date_of_birth" and not _is_date(str(value)):
            errors[name] = ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]
        elif name == "patient_gender" and value not in GENDERS:
            errors[name] = [f'"{value}" is not a valid choice.']
        else:
            fields[name] = str(value)
    if "patient_profile" in body:
        profile = body["patient_profile"]
        if not isinstance(profile, dict):
            errors["patient_profile"] = {"non_field_errors": ["Invalid data. Expected a dictionary."]}
        elif not isinstance(profile.get("unique_id"), str) or not profile["unique_id"].strip():
            # "the ProfileSerializer requires a unique_id for association or creation"
            errors["patient_profile"] = {"unique_id": ["This field is required."]}
        else:
            fields["patient_profile"] = {f: str(profile[f]) for f in PROFILE_FIELDS if profile.get(f) is not None}
    for name, target, directory, label in (
        ("hospital_ids", "patient_hospital", state.hospitals, "hospital_name"),
        ("doctor_ids", "patient_doctor", state.doctors, "doctor_first_name"),
    ):
        if name not in body:
            continue
        ids = body[name]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            errors[name] = [f'Expected a list of items but got type "{type(ids).__name__}".']
            continue
        missing = [i for i in ids if i not in directory]
        if missing:
            errors[name] = [f"Object with unique_id={i} does not exist." for i in missing]
            continue
        fields[target] = [{"unique_id": i, label: directory[i]} for i in dict.fromkeys(ids)]
    return fields, errors


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


# --- control routes ----------------------------------------------------------------------------------


def control_routes(state: ProfilesState) -> list[BaseRoute]:
    """Routes to mount under `/_sandbox/profiles`: switches, and staging of raw records."""

    switches = switches_route(
        state,
        [
            Switch("envelope", lambda value: True, "", stored=bool),
            Switch("page_size", is_page_size, "must be an integer >= 1"),
            TOKEN,
        ],
    )

    return [
        switches,
        *staging_routes("/patients", lambda: state.patients, "unique_id", state.new_key),
    ]
