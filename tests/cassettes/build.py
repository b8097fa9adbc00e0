"""Writes one vcrpy cassette per documented Prescrypto response: ``python -m tests.cassettes.build``.

Placeholders in documented paths become the ids of the documented records; list endpoints get the query the
connector sends (``limit=100&offset=0``). Tokens are never written: requests carry no Authorization header
in the cassette, and playback does not match on headers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.seed_examples import DocumentedResponse, documented_responses

HERE = Path(__file__).parent
BASE = "https://prescrypto.example"
_PLACEHOLDERS = {"{{Patient_uID}}": "b5555-5555-5555-5555-55555555", "{{patient_ID}}": "1", "{{Medic_ID}}": "1"}
_LISTS = {
    "/api/v2/patient": "/api/v2/patient/?limit=100&offset=0",
    "/api/v2/medics": "/api/v2/medics/?limit=100&offset=0",
}


def request_url(doc: DocumentedResponse) -> str:
    if doc.method == "GET" and doc.path.rstrip("/") in _LISTS:
        return BASE + _LISTS[doc.path.rstrip("/")]
    path = doc.path
    for placeholder, value in _PLACEHOLDERS.items():
        path = path.replace(placeholder, value)
    return BASE + path


def cassette(doc: DocumentedResponse) -> dict[str, Any]:
    return {
        "version": 1,
        "interactions": [{
            "request": {"method": doc.method, "uri": request_url(doc), "body": None, "headers": {}},
            "response": {
                "status": {"code": doc.status, "message": doc.title or "OK"},
                "headers": {"Content-Type": ["application/json"]},
                "body": {"string": json.dumps(doc.body, ensure_ascii=False, indent=1)},
            },
        }],
    }


def all_documented() -> list[DocumentedResponse]:
    return [*documented_responses("000"), *documented_responses("001")]


def render(doc: DocumentedResponse) -> str:
    return yaml.safe_dump(cassette(doc), allow_unicode=True, sort_keys=False, width=120)


def main() -> None:
    for doc in all_documented():
        (HERE / f"{doc.name}.yaml").write_text(render(doc), encoding="utf-8")


if __name__ == "__main__":
    main()
