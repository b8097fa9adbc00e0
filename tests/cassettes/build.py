"""Writes the snapshot of the documented examples and one vcrpy cassette per documented response:
``python -m tests.cassettes.build`` (it needs the vendor documents, see tests.seed_documents).

Each cassette answers the request the connector sends for its response, on the document's base in ``BASES``.
Placeholders in documented paths become the ids of the documented records; list endpoints get the query the
connector sends (Prescrypto's ``limit=100&offset=0``, the gauges API's ``page=1&page_size=100`` and
``start_date=2023-10-01``). The gauges document leaves its list bodies open: its Patient Response also answers
the patients list, and its Patient Gauge Response the gauges list, each as a bare JSON list holding that one
documented record. Request examples get no cassette. Tokens are never written: requests carry no
Authorization header in the cassette, and playback does not match on headers.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import yaml

from tests.seed_examples import (
    OTHER_SEEDS,
    PRESCRYPTO_SEEDS,
    SNAPSHOT,
    DocumentedExample,
    DocumentedResponse,
    documented_examples,
    documented_responses,
    snapshot,
    snapshot_of,
)

HERE = Path(__file__).parent
BASE = "https://prescrypto.example"
BASES = {
    "000": BASE,
    "001": BASE,
    "002": "https://profiles.example",
    "003": "https://gauges.example",
    "004": "https://particle.example",
}
# The ids of the documented records, put in for each document's path placeholders.
_PLACEHOLDERS = {
    "000": {"{{Patient_uID}}": "b5555-5555-5555-5555-55555555", "{{patient_ID}}": "1"},
    "001": {"{{Medic_ID}}": "1"},
    "002": {"<str:unique_id>": "pat123"},
    "003": {"{id}": "1049", "{patient_id}": "1049"},
    "004": {"{patient_id}": "examplepatientid1"},
}
_LISTS = {
    "/api/v2/patient": "/api/v2/patient/?limit=100&offset=0",
    "/api/v2/medics": "/api/v2/medics/?limit=100&offset=0",
}

Documented = DocumentedResponse | DocumentedExample


@dataclass(frozen=True)
class Route:
    """A request of the connector's that a documented response answers."""

    method: str
    path: str  # as documented, placeholders included
    query: str = ""
    one_row_list: bool = False  # a success is served as a bare JSON list holding the documented record


# The documented responses that answer other requests than their own endpoint with no query, by document, method
# and documented path; the first route is the documented endpoint's own.
_ROUTES: dict[tuple[str, str, str], tuple[Route, ...]] = {
    ("003", "GET", "/v1/patients/{id}"): (
        Route("GET", "/v1/patients/{id}"),
        Route("GET", "/v1/patients", "page=1&page_size=100", one_row_list=True),
    ),
    ("003", "GET", "/v1/patients/{patient_id}/gauges"): (
        Route("GET", "/v1/patients/{patient_id}/gauges", "start_date=2023-10-01", one_row_list=True),
    ),
}


@dataclass(frozen=True)
class Cassette:
    """One cassette: the request the connector sends and the documented response that answers it."""

    name: str  # the file's name without .yaml: 003-01-get-v1-patients-200
    example: Documented
    method: str
    url: str
    status: int
    message: str
    body: Any  # None: no body (a 204)

    @property
    def file(self) -> str:
        return f"{self.name}.yaml"


def _routes(doc: Documented) -> tuple[Route, ...]:
    return _ROUTES.get((doc.seed, doc.method, doc.path), (Route(doc.method, doc.path),))


def _url(seed: str, route: Route) -> str:
    if seed in ("000", "001") and route.method == "GET" and route.path.rstrip("/") in _LISTS:
        return BASES[seed] + _LISTS[route.path.rstrip("/")]
    path = route.path
    for placeholder, value in _PLACEHOLDERS[seed].items():
        path = path.replace(placeholder, value)
    url = f"{BASES[seed]}/{path.lstrip('/')}"
    return f"{url}?{route.query}" if route.query else url


def cassettes_of(doc: Documented) -> list[Cassette]:
    """The cassettes of one documented response (two for the gauges Patient Response); none for a request."""
    if doc.status is None:
        return []
    found = []
    for route in _routes(doc):
        served = dataclasses.replace(doc, method=route.method, path=route.path)
        body = [doc.body] if route.one_row_list and doc.status < 300 else doc.body
        message = doc.title or HTTPStatus(doc.status).phrase
        found.append(Cassette(served.name, doc, route.method, _url(doc.seed, route), doc.status, message, body))
    return found


def cassette_file(doc: Documented, url: str | None = None) -> str:
    """The file name of a documented response's cassette; of the one requesting ``url`` when it has several."""
    found = [c for c in cassettes_of(doc) if url is None or c.url == url]
    if len(found) != 1:
        raise LookupError(f"{doc.name}: {len(found)} cassettes{f' for {url}' if url else ''}")
    return found[0].file


def request_url(doc: Documented) -> str:
    """The URL the connector requests for a documented response at its own documented endpoint."""
    return _url(doc.seed, _routes(doc)[0])


def all_documented() -> list[DocumentedResponse]:
    return [*documented_responses("000"), *documented_responses("001")]


def all_examples() -> list[DocumentedExample]:
    return [*documented_examples("002"), *documented_examples("003"), *documented_examples("004")]


def all_cassettes() -> list[Cassette]:
    documented: list[Documented] = [*all_documented(), *all_examples()]
    return [c for doc in documented for c in cassettes_of(doc)]


def cassette(c: Cassette) -> dict[str, Any]:
    headers = {} if c.body is None else {"Content-Type": ["application/json"]}
    text = "" if c.body is None else json.dumps(c.body, ensure_ascii=False, indent=1)
    return {
        "version": 1,
        "interactions": [
            {
                "request": {"method": c.method, "uri": c.url, "body": None, "headers": {}},
                "response": {
                    "status": {"code": c.status, "message": c.message},
                    "headers": headers,
                    "body": {"string": text},
                },
            }
        ],
    }


def render_cassette(c: Cassette) -> str:
    return yaml.safe_dump(cassette(c), allow_unicode=True, sort_keys=False, width=120)


def render(doc: Documented) -> str:
    """The cassette file of a documented response that has one cassette."""
    (only,) = cassettes_of(doc)
    return render_cassette(only)


def main() -> None:
    from tests.seed_documents import parse_examples, parse_responses

    parsed = {seed: parse_responses(seed) for seed in PRESCRYPTO_SEEDS} | {
        seed: parse_examples(seed) for seed in OTHER_SEEDS
    }
    SNAPSHOT.parent.mkdir(exist_ok=True)
    SNAPSHOT.write_text(snapshot_of(parsed), encoding="utf-8")
    snapshot.cache_clear()
    for c in all_cassettes():
        (HERE / c.file).write_text(render_cassette(c), encoding="utf-8")


if __name__ == "__main__":
    main()
