"""The gauges API (v1 patients and their measurement gauges), as its document shows it.

Mounted under `/gauges`, so a source's `base_url` is `http://HOST:PORT/gauges`:

    GET  /v1/patients?page=&page_size=&search=   a page of patients in id order (page from 1; page_size 25 by
                                                 default, at most 100); a page past the end is empty. A bare
                                                 list, or {"patients"|"data"|"results": [...]} per the
                                                 `list_shape` switch
    POST /v1/patients                            create from {"patient": {...}}: first_name, last_name and
                                                 date_of_birth required -> 201
    GET  /v1/patients/{id}                       one patient
    PUT  /v1/patients/{id}                       update from {"patient": {...}}, every field optional -> 200
    GET  /v1/patients/{id}/gauges?gauge_type=&start_date=&end_date=
                                                 the patient's readings in recorded_at order, a bare list;
                                                 the dates (YYYY-MM-DD) bound the UTC day of recorded_at,
                                                 both inclusive

Every endpoint wants `X-User-Token: <token>` and answers 401 `{"errors": "Invalid token"}` otherwise. Errors
are the document's: 404 `{"errors": "Patient not found"}`, 403 `{"errors": "You are not authorized to access
this patient"}` (for the patients the `forbidden` switch lists), 422 `{"errors": {field: [messages]}}`.

Patient ids are integers from 1 with a few gaps. Each patient has 0-6 readings (a global integer id each,
numbered from 1 in patient order, then recorded_at order), recorded within the year that ends on the
sandbox's AS_OF day, 2026-06-30; ages are computed on that day too.

The control routes, mounted under `/_sandbox/gauges`:

    GET/POST     /switches           {"list_shape": "list"|"patients"|"data"|"results",
                                      "forbidden": [patient ids], "token": str}
    POST         /patients           stage a raw patient as it is (an id is added when absent) -> 201
    PATCH/DELETE /patients/{id}      merge raw fields into a patient / remove it
    POST         /gauges             stage a raw reading, filed under its patient_id (an id is added when
                                     absent) -> 201
    PATCH/DELETE /gauges/{id}        merge raw fields into a reading / remove it
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox import clock, tokens
from sandbox.people import Person
from sandbox.routing import (
    TOKEN,
    Endpoint,
    Switch,
    both_slashes,
    control_error,
    control_object,
    int_param,
    json_bytes,
    read_json,
    staging_routes,
    switches_route,
    token_guard,
)
from sandbox.store import Deferred, Record, Table, encode

DEFAULT_TOKEN = tokens.GAUGES
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
LIST_SHAPES = ("list", "patients", "data", "results")
MAX_READINGS = 6  # per generated patient

PATIENT_FIELDS = (
    "id",
    "first_name",
    "last_name",
    "date_of_birth",
    "age",
    "gender",
    "phone",
    "email",
    "address",
    "active",
    "created_at",
    "updated_at",
)
ADDRESS_FIELDS = ("street", "city", "state", "zip_code")
GAUGE_FIELDS = (
    "id",
    "patient_id",
    "gauge_type",
    "value",
    "scale_min",
    "scale_max",
    "recorded_at",
    "notes",
    "created_at",
)
SCALES: dict[str, tuple[int, int]] = {
    "mood": (1, 10),
    "anxiety": (1, 10),
    "energy": (1, 10),
    "sleep_quality": (1, 10),
    "pain": (1, 10),
    "medication_adherence": (0, 100),  # a percentage of doses taken
    "social_interaction": (1, 10),
}
READINGS_FROM = dt.date(2025, 7, 1)  # readings fall on READINGS_FROM .. clock.AS_OF, both inclusive
_NOTES = (
    "Feeling better today",
    "Rough night",
    "Skipped the evening dose",
    "After physiotherapy",
    "Stressful week at work",
    "Went for a long walk",
    "Headache since the morning",
    "Visited family",
)
_CREATED_DAYS = clock.days(dt.date(2020, 1, 1))
_GENDERS = {"male": "male", "female": "female", "other": "other"}
_NOT_FOUND = {"errors": "Patient not found"}
_FORBIDDEN = {"errors": "You are not authorized to access this patient"}


class Readings:
    """Gauge readings by patient key (the patient id as a string), each generated patient's made on first use.

    The plan fixes, for every generated patient with readings, its first reading id and how many it has, so
    ids do not depend on the order in which patients are asked for.
    """

    def __init__(self, plan: Sequence[tuple[int, int, int]] = (), seed: int = 0) -> None:
        # plan: (first reading id, patient id, count) in first-id order, patients without readings left out
        self._seed = seed
        self._pending = {str(pid): (first, pid, count) for first, pid, count in plan}
        self._starts = [first for first, _, _ in plan]
        self._start_keys = [str(pid) for _, pid, _ in plan]
        self._lists: dict[str, list[Record]] = {}
        self._moved: dict[str, str] = {}  # reading id -> patient key, for staged readings and changed patient_ids
        self.last_id = max((first + count - 1 for first, _, count in plan), default=0)

    def of(self, key: str) -> list[Record]:
        """The patient's readings in recorded_at order (the list itself: callers that change it re-sort)."""
        planned = self._pending.pop(key, None)
        if planned is not None:
            self._lists[key] = generate_readings(*planned, seed=self._seed)
        return self._lists.setdefault(key, [])

    def next_id(self) -> int:
        self.last_id += 1
        return self.last_id

    def add(self, reading: Record) -> Record:
        if "id" not in reading:
            reading["id"] = self.next_id()
        elif isinstance(reading["id"], int) and not isinstance(reading["id"], bool):
            self.last_id = max(self.last_id, reading["id"])
        key = str(reading.get("patient_id"))
        readings = self.of(key)
        readings.append(reading)
        readings.sort(key=_recorded_order)
        self._moved[str(reading["id"])] = key
        return reading

    def update(self, reading_id: str, fields: dict[str, Any]) -> Record | None:
        reading = self.remove(reading_id)
        return None if reading is None else self.add(reading | fields)

    def remove(self, reading_id: str) -> Record | None:
        for key in self._owners(reading_id):
            readings = self.of(key)
            for i, reading in enumerate(readings):
                if str(reading.get("id")) == reading_id:
                    self._moved.pop(reading_id, None)
                    return readings.pop(i)
        return None

    def _owners(self, reading_id: str) -> list[str]:
        """Keys of the patients whose lists may hold this reading."""
        keys = [self._moved[reading_id]] if reading_id in self._moved else []
        if reading_id.isdigit():
            i = bisect.bisect_right(self._starts, int(reading_id)) - 1
            if i >= 0:
                keys.append(self._start_keys[i])
        return keys


@dataclass
class _Data:
    patients: Table
    readings: Readings


@dataclass
class GaugesState:
    token: str = DEFAULT_TOKEN
    list_shape: str = "list"
    forbidden: set[str] = field(default_factory=set)  # patient ids, as strings
    _data: Deferred[_Data] = field(default_factory=lambda: Deferred(lambda: _Data(Table(), Readings())))

    @property
    def patients(self) -> Table:
        return self._data.get().patients

    @property
    def readings(self) -> Readings:
        return self._data.get().readings

    def load(self, people: Sequence[Person], seed: int) -> None:
        """Replace the data with these people (rendered on first use), and every switch with its default."""

        def build() -> _Data:
            patients = patient_records(people, seed)
            return _Data(Table(patients), Readings(reading_plan([p["id"] for p in patients], seed), seed))

        self._data = Deferred(build)
        self.token = DEFAULT_TOKEN
        self.list_shape = "list"
        self.forbidden = set()


def patient_records(people: Sequence[Person], seed: int) -> list[Record]:
    """The gauges API's view of `people`: integer ids with gaps, lowercase genders, dashed international
    phones, some without email, phone or address, the maternal surname sometimes left out."""
    rng = random.Random(f"gauges-patients:{seed}")
    r = rng.random
    days, n_days = _CREATED_DAYS, len(_CREATED_DAYS)
    times = clock.times_of_day()
    as_of_year, as_of_mmdd = clock.AS_OF.year, clock.AS_OF.isoformat()[4:]
    records: list[Record] = []
    append = records.append
    pid = 0
    for p in people:
        pid += 2 if r() < 0.03 else 1  # deleted patients leave gaps: an id is not a position
        birth = p.birth_date
        local = p.phone_local
        x = r()
        phone = None if x < 0.05 else "" if x < 0.1 else f"+52-{p.phone_area}-{local[:-4]}-{local[-4:]}"
        created = int(r() * n_days)
        created_at = f"{days[created]}T{times[int(r() * 86400)]}.000Z"
        if r() < 0.35 or created == n_days - 1:
            updated_at = created_at
        else:
            updated_at = f"{days[created + 1 + int(r() * (n_days - created - 1))]}T{times[int(r() * 86400)]}.000Z"
        append(
            {
                "id": pid,
                "first_name": p.given_names,
                "last_name": p.surname1 if r() < 0.2 else f"{p.surname1} {p.surname2}",
                "date_of_birth": birth,
                "age": as_of_year - int(birth[:4]) - (birth[4:] > as_of_mmdd),
                "gender": _GENDERS[p.sex],
                "phone": phone,
                "email": None if r() < 0.1 else p.email,
                "address": None
                if r() < 0.1
                else {"street": p.street, "city": p.city, "state": p.state, "zip_code": p.zip_code},
                "active": r() < 0.93,
                "created_at": created_at,
                "updated_at": updated_at,
            }
        )
    return records


def reading_plan(patient_ids: Sequence[int], seed: int) -> list[tuple[int, int, int]]:
    """(first reading id, patient id, count) for the patients that have readings: 0-6 each, ids from 1."""
    r = random.Random(f"gauges-reading-counts:{seed}").random
    plan = []
    next_id = 1
    for pid in patient_ids:
        count = int(r() * (MAX_READINGS + 1))
        if count:
            plan.append((next_id, pid, count))
            next_id += count
    return plan


def generate_readings(first_id: int, patient_id: int, count: int, seed: int) -> list[Record]:
    """One patient's readings, in recorded_at order: the same for the same seed, whenever they are made."""
    r = random.Random(f"gauges-readings:{seed}:{patient_id}").random
    days = clock.days(READINGS_FROM)
    times = clock.times_of_day()
    span = len(days) * 86400
    types = tuple(SCALES)
    readings = []
    for k, at in enumerate(sorted(int(r() * span) for _ in range(count))):
        gauge_type = types[int(r() * len(types))]
        low, high = SCALES[gauge_type]
        value = 5 * int(r() * 21) if high == 100 else low + int(r() * (high - low + 1))
        # Most readings are stored as they are taken; some are typed in later from a paper diary.
        entered = at if r() < 0.6 else min(at + int(r() * 7200), span - 1)
        readings.append(
            {
                "id": first_id + k,
                "patient_id": patient_id,
                "gauge_type": gauge_type,
                "value": value,
                "scale_min": low,
                "scale_max": high,
                "recorded_at": f"{days[at // 86400]}T{times[at % 86400]}.000Z",
                "notes": _NOTES[int(r() * len(_NOTES))] if r() < 0.4 else None,
                "created_at": f"{days[entered // 86400]}T{times[entered % 86400]}.000Z",
            }
        )
    return readings


_LAST = dt.datetime.max.replace(tzinfo=clock.UTC)


def _recorded_order(reading: Record) -> tuple[dt.datetime, int]:
    # Staged readings may carry any recorded_at: those that are not timestamps go last.
    moment = clock.parse_utc(reading.get("recorded_at"))
    rid = reading.get("id")
    return moment or _LAST, rid if isinstance(rid, int) and not isinstance(rid, bool) else 0


# --- the API -----------------------------------------------------------------------------------------


def api_routes(state: GaugesState) -> list[BaseRoute]:
    """Routes of the vendor API, to mount under `/gauges`."""

    async def patients(request: Request) -> Response:
        if request.method == "POST":
            return await _create(request, state)
        table = state.patients
        page = int_param(request, "page", minimum=1) or 1
        size = min(int_param(request, "page_size", minimum=1) or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        start = (page - 1) * size
        search = request.query_params.get("search", "").strip().casefold()
        if search:
            matches = [i for i, p in enumerate(table) if _matches(p, search)][start : start + size]
            items = [table.json_at(i) for i in matches]
        else:
            items = table.encoded(start, start + size)
        body = b"[" + b",".join(items) + b"]"
        if state.list_shape != "list":
            body = b'{"%s":%s}' % (state.list_shape.encode(), body)
        return json_bytes(body)

    def one_patient(endpoint: Callable[[Request, int], Any]) -> Endpoint:
        """The patient-specific endpoints: 404 for an unknown patient, 403 for a forbidden one."""

        async def checked(request: Request) -> Response:
            key = request.path_params["id"]
            pos = state.patients.find("id", key)
            if pos is None:
                return JSONResponse(_NOT_FOUND, status_code=404)
            if key in state.forbidden:
                return JSONResponse(_FORBIDDEN, status_code=403)
            return await endpoint(request, pos)

        return checked

    async def patient(request: Request, pos: int) -> Response:
        if request.method == "GET":
            return json_bytes(state.patients.json_at(pos))
        fields = await _patient_fields(request, partial=True)
        if isinstance(fields, Response):
            return fields
        # Found again: another request may have moved or removed the patient while this body arrived.
        pos_now = state.patients.find("id", request.path_params["id"])
        if pos_now is None:
            return JSONResponse(_NOT_FOUND, status_code=404)
        record = state.patients.record_at(pos_now)
        fields["updated_at"] = clock.bumped(record.get("updated_at"), millis=True)
        return json_bytes(encode(state.patients.update(pos_now, fields)))

    async def gauges(request: Request, pos: int) -> Response:
        params = request.query_params
        bounds: dict[str, dt.date] = {}
        errors: dict[str, list[str]] = {}
        for name in ("start_date", "end_date"):
            if params.get(name):
                day = _date(params[name])
                if day is None:
                    errors[name] = ["must be a valid date"]
                else:
                    bounds[name] = day
        if errors:
            return JSONResponse({"errors": errors}, status_code=422)
        gauge_type = params.get("gauge_type")
        readings = state.readings.of(request.path_params["id"])
        if gauge_type:
            readings = [g for g in readings if g.get("gauge_type") == gauge_type]
        if bounds:
            first, last = bounds.get("start_date", dt.date.min), bounds.get("end_date", dt.date.max)
            readings = [g for g in readings if _recorded_within(g, first, last)]
        return json_bytes(encode(readings))

    authed = token_guard("x-user-token", "", lambda: state.token, {"errors": "Invalid token"})

    return [
        *both_slashes("/v1/patients", authed(patients), ["GET", "POST"]),
        *both_slashes("/v1/patients/{id}", authed(one_patient(patient)), ["GET", "PUT"]),
        *both_slashes("/v1/patients/{id}/gauges", authed(one_patient(gauges)), ["GET"]),
    ]


def _matches(patient: Record, term: str) -> bool:
    return any(
        isinstance(patient.get(f), str) and term in patient[f].casefold() for f in ("first_name", "last_name", "email")
    )


def _recorded_within(reading: Record, first: dt.date, last: dt.date) -> bool:
    moment = clock.parse_utc(reading.get("recorded_at"))
    return moment is not None and first <= moment.date() <= last


def _date(value: Any) -> dt.date | None:
    """A YYYY-MM-DD date, None when `value` is anything else."""
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


async def _create(request: Request, state: GaugesState) -> Response:
    fields = await _patient_fields(request, partial=False)
    if isinstance(fields, Response):
        return fields
    now = clock.bumped(None, millis=True)
    record: Record = {f: None for f in PATIENT_FIELDS} | {"active": True} | fields
    record |= {"id": state.patients.next_id(), "created_at": now, "updated_at": now}
    return json_bytes(encode(state.patients.append(record)), status=201)


async def _patient_fields(request: Request, partial: bool) -> Record | Response:
    """The fields of a {"patient": {...}} body to write (age follows date_of_birth), or the error response."""
    try:
        body = await read_json(request)
    except ValueError:
        return JSONResponse({"errors": "Invalid JSON in request body"}, status_code=400)
    patient = body.get("patient") if isinstance(body, dict) else None
    if not isinstance(patient, dict) or not patient:  # Rails' params.require(:patient) refuses {} too
        return JSONResponse({"errors": "param is missing or the value is empty: patient"}, status_code=400)
    fields: Record = {}
    errors: dict[str, list[str]] = {}
    for name in ("first_name", "last_name"):
        if name in patient or not partial:
            value = patient.get(name)
            if not isinstance(value, str) or not value.strip():
                errors[name] = ["can't be blank"]
            else:
                fields[name] = value.strip()
    if "date_of_birth" in patient or not partial:
        value = patient.get("date_of_birth")
        blank = value is None or (isinstance(value, str) and not value.strip())
        born = _date(value)
        if born is None:
            errors["date_of_birth"] = ["can't be blank", "must be a valid date"] if blank else ["must be a valid date"]
        else:
            fields["date_of_birth"] = born.isoformat()
            fields["age"] = clock.age_on(born.isoformat())
    for name in ("gender", "phone", "email"):
        if name in patient:
            value = patient[name]
            if value is not None and not isinstance(value, str):
                errors[name] = ["must be a string"]
            else:
                fields[name] = value.lower() if name == "gender" and value else value
    if "address" in patient:
        address = patient["address"]
        if address is None:
            fields["address"] = None
        elif not isinstance(address, dict):
            errors["address"] = ["must be an object"]
        else:
            fields["address"] = {f: address.get(f) for f in ADDRESS_FIELDS}
    if errors:
        return JSONResponse({"errors": errors}, status_code=422)
    return fields


# --- control routes ----------------------------------------------------------------------------------


def control_routes(state: GaugesState) -> list[BaseRoute]:
    """Routes to mount under `/_sandbox/gauges`: switches, and staging of raw patients and readings."""

    switches = switches_route(
        state,
        [
            Switch("list_shape", lambda shape: shape in LIST_SHAPES, f"must be one of {list(LIST_SHAPES)}"),
            Switch(
                "forbidden",
                lambda ids: isinstance(ids, list),
                "must be a list of patient ids",
                stored=lambda ids: {str(pid) for pid in ids},
                shown=_ids,
            ),
            TOKEN,
        ],
    )

    async def add_reading(request: Request) -> Response:
        body = await control_object(request)
        if isinstance(body, Response):
            return body
        return JSONResponse(state.readings.add(body), status_code=201)

    async def change_reading(request: Request) -> Response:
        reading_id = request.path_params["id"]
        if request.method == "DELETE":
            removed = state.readings.remove(reading_id)
            return control_error("Not found", 404) if removed is None else JSONResponse(removed)
        body = await control_object(request)
        if isinstance(body, Response):
            return body
        changed = state.readings.update(reading_id, body)
        return control_error("Not found", 404) if changed is None else JSONResponse(changed)

    return [
        switches,
        *staging_routes("/patients", lambda: state.patients, "id", lambda: state.patients.next_id()),
        Route("/gauges", add_reading, methods=["POST"]),
        Route("/gauges/{id}", change_reading, methods=["PATCH", "DELETE"]),
    ]


def _ids(keys: set[str]) -> list[int | str]:
    """Patient ids in order, numbers back as integers."""
    return [int(k) if k.isdigit() else k for k in sorted(keys, key=lambda k: (len(k), k))]
