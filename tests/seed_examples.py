"""The documented examples of the five vendor documents, as the tests use them.

They are read from ``tests/examples/documented.json``, a snapshot committed with the repository, so a clone
needs nothing beside it. ``python -m tests.cassettes.build`` writes the snapshot (and the cassettes) from the
documents themselves (``tests.seed_documents``); where the documents are found, a test checks that the
snapshot still equals them.

Text inside the examples is kept exactly as documented, e.g. the e-mail addresses that read
``[email\\u00a0protected]`` (with a no-break space).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).parent / "examples" / "documented.json"
PRESCRYPTO_SEEDS = ("000", "001")
OTHER_SEEDS = ("002", "003", "004")


def _slug(method: str, path: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower().replace("{{", "").replace("}}", ""))
    return slug.strip("-")


@dataclass(frozen=True)
class DocumentedResponse:
    seed: str  # the document's number, e.g. "000"
    index: int  # position within the document
    method: str
    path: str  # as documented, placeholders included: /api/v2/patient/{{Patient_uID}}
    status: int
    title: str
    body: Any

    @property
    def name(self) -> str:
        return f"{self.seed}-{self.index:02d}-{_slug(self.method, self.path)}-{self.status}"


@dataclass(frozen=True)
class DocumentedExample:
    """One example of documents 002-004: a request body or a response, as documented."""

    seed: str  # the document's number, e.g. "002"
    index: int  # position among the document's examples, requests and responses counted alike
    method: str
    path: str  # the endpoint as documented, placeholders included: patients/patients/<str:unique_id>/
    kind: str  # "request" or "response"
    status: int | None  # a response's status; None for a request
    title: str  # the status text the document gives with the status ("Unprocessable Entity"), else ""
    section: str  # where the document shows it: "Create a Patient: Request Example"
    body: Any  # the parsed JSON; None where the document shows no body (002's 204)

    @property
    def name(self) -> str:
        return f"{self.seed}-{self.index:02d}-{_slug(self.method, self.path)}-{self.status or self.kind}"


def documented_responses(seed: str) -> list[DocumentedResponse]:
    """Every documented response of document 000 or 001 (Prescrypto), in document order."""
    if seed not in PRESCRYPTO_SEEDS:
        raise ValueError(f"document {seed} has examples, not Prescrypto responses: use documented_examples")
    return [DocumentedResponse(**fields) for fields in snapshot()[seed]]


def documented_examples(seed: str) -> list[DocumentedExample]:
    """Every example of document 002, 003 or 004 (Prescrypto's are read by ``documented_responses``)."""
    if seed not in OTHER_SEEDS:
        raise ValueError(f"no examples of document {seed}: Prescrypto's are read by documented_responses")
    return [DocumentedExample(**fields) for fields in snapshot()[seed]]


def snapshot_of(documented: dict[str, list[DocumentedResponse] | list[DocumentedExample]]) -> str:
    """The snapshot file's text for these examples, by document."""
    as_json = {seed: [asdict(doc) for doc in docs] for seed, docs in documented.items()}
    return json.dumps(as_json, ensure_ascii=False, indent=1) + "\n"


@functools.cache
def snapshot() -> dict[str, list[dict[str, Any]]]:
    """The committed snapshot, by document (read once)."""
    return json.loads(SNAPSHOT.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
