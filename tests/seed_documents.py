"""The vendor documents' examples, parsed from the documents themselves (``../shared/seeds``).

The tests do not need the documents: they read the snapshot in ``tests/examples/documented.json``
(``tests.seed_examples``), which ``python -m tests.cassettes.build`` writes from these parsers. Where the
documents are found (``$PATIENTSYNC_SEEDS``, else ``../shared/seeds`` beside the repository), a test checks
that the snapshot still equals them.

Prescrypto (000, 001), ``parse_responses``: each response follows a status line such as
``[StatusCode: 200]`` or ``[Error: 401] Invalid Token`` and is the JSON value that starts on the next line; the
endpoint is the latest ``METHOD /path`` line above it.

The other three documents each have a layout of their own, read by one parser each; ``parse_examples``
returns every example request body and example response they show, in document order:

- 002 (profiles): ``- URL:\\npatients/patients/ - Method:\\nGET - Response Example:\\n[ ... ]``; a POST or PUT
  shows ``Request Example:`` and then ``Response Example:``, the DELETE ``Response:\\n204 No Content``.
- 003 (gauges): an ``Example Request`` line ``POST /v1/patients HTTP/1.1 <headers> { ... }`` carries its body at
  its end; the responses stand apart from the endpoints under ``Response Format`` (``Patient Response``) and
  ``Error Responses`` (``422 Unprocessable Entity``), each heading followed by its JSON on one line.
- 004 (particle): ``Path:``/``Method:`` lines open an endpoint; ``Required Fields`` and ``Response Model`` are
  followed by a JSON-like block, a curl ``Example Request`` carries its body in ``-d '{...}'``. The blocks use
  typographic quotes and notes beside the fields, repaired by ``_particle_json``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from tests.seed_examples import DocumentedExample, DocumentedResponse

_ROOT = Path(__file__).resolve().parents[1]
SEEDS = Path(os.environ.get("PATIENTSYNC_SEEDS") or _ROOT.parent / "shared" / "seeds")
_STATUS = re.compile(r"^\[(?:StatusCode|Error): (\d{3})\]\s*(.*)$")
_ENDPOINT = re.compile(r"^(GET|POST|PATCH|PUT|DELETE) (/api/\S+)$")


def seeds_found() -> bool:
    return any(SEEDS.glob("000_*.txt"))


def seed_text(seed: str) -> str:
    (file,) = SEEDS.glob(f"{seed}_*.txt")
    return file.read_text(encoding="utf-8")


def parse_responses(seed: str) -> list[DocumentedResponse]:
    """Every documented response of document 000 or 001."""
    lines = seed_text(seed).splitlines()
    decoder = json.JSONDecoder()
    found: list[DocumentedResponse] = []
    method = path = None
    for number, line in enumerate(lines):
        endpoint = _ENDPOINT.match(line.strip())
        if endpoint:
            method, path = endpoint.groups()
        status = _STATUS.match(line.strip())
        if status and method and path:
            body, _ = decoder.raw_decode("\n".join(lines[number + 1 :]).lstrip())
            found.append(
                DocumentedResponse(seed, len(found), method, path, int(status.group(1)), status.group(2).strip(), body)
            )
    return found


def parse_examples(seed: str) -> list[DocumentedExample]:
    """Every example of document 002, 003 or 004 (Prescrypto's are read by ``parse_responses``)."""
    parsers = {"002": _profiles, "003": _gauges, "004": _particle}
    if seed not in parsers:
        raise ValueError(f"no example parser for document {seed}: Prescrypto's are read by parse_responses")
    found = parsers[seed](seed_text(seed))
    return [DocumentedExample(seed, index, *fields) for index, fields in enumerate(found)]


# What a parser finds: method, path, kind, status, title, section, body.
_Found = tuple[str, str, str, int | None, str, str, Any]


# 002 ---------------------------------------------------------------------------------------------------------
_PROFILES_HEADING = re.compile(r"^# (.+)$", re.M)
_PROFILES_ENDPOINT = re.compile(r"^- URL:\n(\S+) - Method:\n([A-Z]+) - ", re.M)
_PROFILES_LABEL = re.compile(r"(Request Example|Response Example|Response):\n")
_PROFILES_STATUS = re.compile(r"(\d{3}) ([A-Z][A-Za-z ]*)$", re.M)


def _profiles(text: str) -> list[_Found]:
    decoder = json.JSONDecoder()
    found: list[_Found] = []
    for label in _PROFILES_LABEL.finditer(text):
        heading = list(_PROFILES_HEADING.finditer(text, 0, label.start()))[-1]
        path, method = list(_PROFILES_ENDPOINT.finditer(text, 0, label.start()))[-1].groups()
        section = f"{heading.group(1)}: {label.group(1)}"
        status_line = _PROFILES_STATUS.match(text, label.end())
        if status_line:  # the DELETE's "204 No Content": a status and no body
            found.append((method, path, "response", int(status_line.group(1)), status_line.group(2), section, None))
            continue
        body, end = decoder.raw_decode(text, label.end())
        assert text.startswith((" - ", "\n"), end) or end == len(text), (
            f"002: unexpected text after the example in {section}"
        )
        if label.group(1).startswith("Request"):
            found.append((method, path, "request", None, "", section, body))
        else:
            # The document states no status for its examples: Django REST framework answers a create with
            # 201 Created and a list, retrieve or update with 200 OK.
            found.append((method, path, "response", 201 if method == "POST" else 200, "", section, body))
    return found


# 003 ---------------------------------------------------------------------------------------------------------
_GAUGES_ENDPOINT = re.compile(r"^Endpoint: ([A-Z]+) (\S+)$")
_GAUGES_REQUEST = re.compile(r"^([A-Z]+) (\S+) HTTP/1\.1 .*?(\{.*)?$")
_GAUGES_STATUS = re.compile(r"^(\d{3}) (.+)$")
_GAUGES_GROUPS = ("Response Format", "Error Responses")
# The document lists its responses apart from the endpoints and does not say which endpoint gives which: these
# are the endpoints the connector meets them on (the 422's fields are those of the create body).
_GAUGES_ANSWERED_BY = {
    "Patient Response": "GET /v1/patients/{id}",
    "Patient Gauge Response": "GET /v1/patients/{patient_id}/gauges",
    "422 Unprocessable Entity": "POST /v1/patients",
    "404 Not Found": "GET /v1/patients/{patient_id}/gauges",
    "403 Forbidden": "GET /v1/patients/{patient_id}/gauges",
}


def _gauges(text: str) -> list[_Found]:
    decoder = json.JSONDecoder()
    lines = [line.strip() for line in text.splitlines()]
    endpoints: set[str] = set()
    found: list[_Found] = []
    group = heading = above = ""
    for line in lines:
        if not line:
            continue
        endpoint = _GAUGES_ENDPOINT.match(line)
        if endpoint:
            endpoints.add(" ".join(endpoint.groups()))
            heading = above  # the endpoint's heading; a description sentence may stand between
        request = _GAUGES_REQUEST.match(line)
        if above == "Example Request" and request and request.group(3):  # a request line ending in its body
            body, end = decoder.raw_decode(request.group(3))
            assert end == len(request.group(3)), "003: unexpected text after a request body"
            found.append((request.group(1), request.group(2), "request", None, "", f"{heading}: {above}", body))
        elif line.startswith("{"):
            body, end = decoder.raw_decode(line)
            assert end == len(line), f"003: unexpected text after the example under {above}"
            method, path = _GAUGES_ANSWERED_BY[above].split(" ")
            assert f"{method} {path}" in endpoints, f"003 documents no endpoint {method} {path}"
            status = _GAUGES_STATUS.match(above)
            code, title = (int(status.group(1)), status.group(2)) if status else (200, "")
            found.append((method, path, "response", code, title, f"{group}: {above}", body))
        if line in _GAUGES_GROUPS:
            group = line
        if not line.endswith("."):
            above = line
    return found


# 004 ---------------------------------------------------------------------------------------------------------
_PARTICLE_LABELS = {"Required Fields": "request", "Response Model": "response"}
# A note beside a field, after its value: `"MA" - Required`, `"token" - Only populated if ...`.
_PARTICLE_NOTE = re.compile(r'(?<=[",\]}\d])\s+- [A-Z][^"]*$')
# A line that ends in a value, with no comma after it.
_PARTICLE_ENDS_VALUE = re.compile(r'(?:["\]}\d]|true|false|null)$')


def _particle_json(block: str) -> Any:
    """A JSON-like block of document 004 as JSON. The document writes JSON with three faults, repaired here:

    - typographic quotes: “ and ” stand for ";
    - notes beside fields (`` - Required``, `` - Only populated if there are over 200 records returned``) are
      dropped;
    - the continuation_token line, whose note stands where its comma belongs, lacks that comma: a comma is put
      back wherever a line ending in a value is followed by a line starting a string (a key or an element),
      which JSON never allows without one.
    """
    lines: list[str] = []
    for raw in block.replace("\u201c", '"').replace("\u201d", '"').splitlines():
        line = _PARTICLE_NOTE.sub("", raw).rstrip()
        if lines and line.lstrip().startswith('"') and _PARTICLE_ENDS_VALUE.search(lines[-1]):
            lines[-1] += ","
        lines.append(line)
    return json.loads("\n".join(lines))


def _particle(text: str) -> list[_Found]:
    lines = text.splitlines()
    found: list[_Found] = []
    heading = above = example = path = method = ""
    number = 0
    while number < len(lines):
        line = lines[number].strip()
        number += 1
        if not line:
            continue
        if line.startswith("Description:"):
            heading = above
        elif line.startswith("Path:"):
            path = line.removeprefix("Path:").strip()
        elif line.startswith("Method:"):
            method = line.removeprefix("Method:").strip()
        elif above in _PARTICLE_LABELS:  # the block, or the one-line value, under a label
            start = number - 1
            if line == "{":
                while lines[number - 1].rstrip() != "}":
                    number += 1
            body = _particle_json("\n".join(lines[start:number]))
            kind = _PARTICLE_LABELS[above]
            status = 200 if kind == "response" else None  # "Successful requests will return a 200 OK"
            found.append((method, path, kind, status, "", f"{heading}: {above}", body))
        elif line.startswith("-d '"):  # a curl example's body: -d '{...}' \
            start = number - 1
            while "}'" not in lines[number - 1]:
                number += 1
            quoted = "\n".join(lines[start:number])
            body = _particle_json(quoted[quoted.index("'") + 1 : quoted.rindex("'")])
            found.append((method, path, "request", None, "", f"{heading}: {example}", body))
        if line == "Example Request":
            example = line
        above = line
    return found
