"""The documented example responses, read straight from the vendor documents in ../shared/seeds.

Each response follows a status line such as ``[StatusCode: 200]`` or ``[Error: 401] Invalid Token`` and is the
JSON value that starts on the next line; the endpoint is the latest ``METHOD /path`` line above it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
_STATUS = re.compile(r"^\[(?:StatusCode|Error): (\d{3})\]\s*(.*)$")
_ENDPOINT = re.compile(r"^(GET|POST|PATCH|PUT|DELETE) (/api/\S+)$")


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
        slug = re.sub(r"[^a-z0-9]+", "-", f"{self.method} {self.path}".lower().replace("{{", "").replace("}}", ""))
        return f"{self.seed}-{self.index:02d}-{slug.strip('-')}-{self.status}"


def documented_responses(seed: str) -> list[DocumentedResponse]:
    (file,) = SEEDS.glob(f"{seed}_*.txt")
    lines = file.read_text(encoding="utf-8").splitlines()
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
            found.append(DocumentedResponse(seed, len(found), method, path, int(status.group(1)),
                                            status.group(2).strip(), body))
    return found
